import { describe, expect, it } from "vitest";
import { apt, getUrl, group, unarchive, uri, user } from "../../engine/index.js";

describe("module builders", () => {
  it("give user, group and apt their `name`, and the task its `taskName`", () => {
    const account = user({ name: "spire", system: true, taskName: "spire account" });
    expect(account.args).toEqual({ name: "spire", system: true });
    expect(account.options.name).toBe("spire account");
    expect(group({ name: "tss" }).args).toEqual({ name: "tss" });
    expect(apt({ name: ["jq"], state: "latest" }).options.name).toBeUndefined();
  });

  it("reject misuse at compile time", () => {
    const misuse = [
      // @ts-expect-error getUrl needs a sha256
      () => getUrl({ url: "http://x/a", dest: "/a" }),
      // @ts-expect-error unarchive's stripComponents is a number
      () => unarchive({ src: "/a.tar.gz", dest: "/a", stripComponents: "1" }),
      // @ts-expect-error a user needs a name
      () => user({ shell: "/bin/sh" }),
      // @ts-expect-error groups is a list of names
      () => user({ name: "spire", groups: "tss" }),
      // @ts-expect-error "installed" is not an apt state
      () => apt({ name: "jq", state: "installed" }),
      // @ts-expect-error uri's status is a number or a list of numbers
      () => uri({ url: "http://x/", status: "200" }),
      // @ts-expect-error "get" is not a method; methods are upper-case
      () => uri({ url: "http://x/", method: "get" }),
    ];
    expect(misuse).toHaveLength(7);
  });
});
