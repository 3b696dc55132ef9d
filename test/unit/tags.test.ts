import { describe, expect, it } from "vitest";
import { parseTagList, tagSelector } from "../../engine/runner/tags.js";

describe("tag selection", () => {
  const all = tagSelector({});

  it("selects every task but those tagged never by default", () => {
    expect(all([])).toBe(true);
    expect(all(["config"])).toBe(true);
    expect(all(["never"])).toBe(false);
    expect(all(["never", "debug"])).toBe(false);
  });

  it("--tags selects tasks sharing a tag, and always those tagged always", () => {
    const only = tagSelector({ only: ["config"] });
    expect(only(["config"])).toBe(true);
    expect(only(["service"])).toBe(false);
    expect(only([])).toBe(false);
    expect(only(["always"])).toBe(true);
    expect(only(["never", "config"])).toBe(true);
  });

  it("a never task runs when --tags names never or another of its tags", () => {
    expect(tagSelector({ only: ["never"] })(["never"])).toBe(true);
    expect(tagSelector({ only: ["debug"] })(["never", "debug"])).toBe(true);
  });

  it("understands tagged and untagged", () => {
    expect(tagSelector({ only: ["tagged"] })(["x"])).toBe(true);
    expect(tagSelector({ only: ["tagged"] })([])).toBe(false);
    expect(tagSelector({ only: ["untagged"] })([])).toBe(true);
    expect(tagSelector({ skip: ["untagged"] })([])).toBe(false);
    expect(tagSelector({ skip: ["tagged"] })(["x"])).toBe(false);
  });

  it("--skip-tags wins over --tags; always is only skipped when named", () => {
    expect(tagSelector({ only: ["config"], skip: ["config"] })(["config"])).toBe(false);
    expect(tagSelector({ skip: ["service"] })(["always"])).toBe(true);
    expect(tagSelector({ skip: ["always"] })(["always"])).toBe(false);
    expect(tagSelector({ skip: ["all"] })(["always"])).toBe(true);
    expect(tagSelector({ skip: ["all", "always"] })(["always"])).toBe(false);
  });

  it("reads comma-separated flag values", () => {
    expect(parseTagList(" a, b ,,c")).toEqual(["a", "b", "c"]);
    expect(parseTagList(undefined)).toBeUndefined();
  });
});
