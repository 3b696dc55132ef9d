// js-hcl-parser ships no types: parse returns HCL's JSON rendering as a string, and throws on a
// syntax error.
declare module "js-hcl-parser" {
  const hcl: { parse(text: string): string; stringify(json: string): string };
  export default hcl;
}
