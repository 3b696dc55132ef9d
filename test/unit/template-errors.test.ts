import { describe, expect, it } from "vitest";
import { OmensError } from "../../engine/errors.js";
import { renderTemplate } from "../../engine/modules/template.js";
import { Secret } from "../../engine/secret.js";

// A template that fails to render says what in the template's own terms, and where.
function failure(text: string, vars: Record<string, unknown> = {}) {
  try {
    renderTemplate(text, "/srv/t/site.conf.hbs", vars, { host: "auth", task: "site" });
  } catch (error) {
    if (!(error instanceof OmensError)) throw error;
    return {
      code: error.code,
      message: error.message,
      line: error.where.line,
      column: error.where.column,
    };
  }
  throw new Error("expected the template to fail");
}

describe("template variables", () => {
  it("a value that holds itself renders, with its secrets revealed and no endless copy", () => {
    const site: Record<string, unknown> = { name: "lab", password: new Secret("pw-0417-lab") };
    site.self = site;
    expect(
      renderTemplate("{{site.self.name}} {{site.password}}\n", "/srv/t/a.hbs", { site }, {}),
    ).toBe("lab pw-0417-lab\n");
  });
});

describe("template render errors", () => {
  it("a missing variable is named by its whole path, at its line and column", () => {
    expect(failure("a\n\n  {{site.deep.deeper}}\n", { site: "s" })).toEqual({
      code: "TEMPLATE_UNDEFINED",
      message: 'template variable "site.deep.deeper" is not defined',
      line: 3,
      column: 5,
    });
    expect(failure("{{port}}\n")).toMatchObject({
      message: 'template variable "port" is not defined',
    });
  });

  it("a path through a missing value names the part that is missing, at its line", () => {
    expect(failure("a\n  {{site.tls.cert}}\n{{owner}}\n{{site.tls.key}}\n", {})).toEqual({
      code: "TEMPLATE_UNDEFINED",
      message:
        'template variable "site" is not defined; also not defined: "owner" (line 3), "site" (line 4)',
      line: 2,
      column: 5,
    });
    expect(failure("{{site.tls.cert}}\n", { site: { name: "s" } }).message).toBe(
      'template variable "site.tls.cert" is not defined',
    );
  });

  it("every undefined name is listed in the one error, which stays at the first", () => {
    const text = "a\nb\n{{siteOwner}}\nc\n  {{siteAdmin}} {{shout site}}\n";
    expect(failure(text, { site: "s" })).toEqual({
      code: "TEMPLATE_UNDEFINED",
      message:
        'template variable "siteOwner" is not defined; also not defined: "siteAdmin" (line 5), helper "shout" (line 5)',
      line: 3,
      column: 3,
    });
  });

  it("an error after undefined names is named after them", () => {
    expect(failure("{{siteOwner}}\n{{> header}}\n").message).toBe(
      'template variable "siteOwner" is not defined; then template partial "header" does not exist: templates have no partials; inline the text or use a helper',
    );
  });

  it("a block helper's undefined parameter is an undefined variable, as a plain use is", () => {
    expect(failure("a\n{{#if debugMode}}\nb\n{{/if}}\n")).toEqual({
      code: "TEMPLATE_UNDEFINED",
      message: 'template variable "debugMode" is not defined',
      line: 2,
      column: 7,
    });
    expect(failure("{{#each extraListeners}}{{this}}{{/each}}\n").message).toBe(
      'template variable "extraListeners" is not defined',
    );
    expect(failure("{{#unless site.tls}}x{{/unless}}\n", { site: {} }).message).toBe(
      'template variable "site.tls" is not defined',
    );
    expect(failure("{{#each hosts}}{{#if self}}*{{/if}}{{/each}}", { hosts: [{}] })).toMatchObject({
      message: 'template variable "self" is not defined',
      column: 22,
    });
  });

  it("a parameter set to false, empty or undefined is defined", () => {
    const text = "{{#if a}}A{{/if}}{{#unless b}}B{{/unless}}{{#each c}}C{{/each}}{{#if d}}D{{/if}}";
    const vars = { a: false, b: "", c: [], d: undefined };
    expect(renderTemplate(text, "/srv/t/x.hbs", vars, {})).toBe("B");
  });

  it("a call of a helper that does not exist is a missing helper, not a missing variable", () => {
    expect(failure("x\n{{shout site}}\n", { site: "s" })).toEqual({
      code: "TEMPLATE_UNDEFINED",
      message: 'template helper "shout" is not defined',
      line: 2,
      column: 3,
    });
    expect(failure("{{#each (pick site)}}{{/each}}\n", { site: "s" })).toMatchObject({
      message: 'template helper "pick" is not defined',
      line: 1,
      column: 10,
    });
  });

  it("a partial is a render error at its line, not a syntax error", () => {
    expect(failure("a\nb\n {{> header}}\n")).toEqual({
      code: "TEMPLATE_RENDER",
      message:
        'template partial "header" does not exist: templates have no partials; inline the text or use a helper',
      line: 3,
      column: 2,
    });
  });

  it("a helper that throws is a render error; an unclosed block is a syntax error with its line", () => {
    expect(failure("{{lookup site 3 4 5}}\n", { site: "s" })).toMatchObject({
      code: "TEMPLATE_RENDER",
      message: expect.stringMatching(/^template error: /) as unknown as string,
    });
    expect(failure("a\n{{#if x}}\nb\n")).toMatchObject({ code: "TEMPLATE_SYNTAX" });
  });
});
