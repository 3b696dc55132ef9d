// The HCL v1 parser ships no types; lint only calls `parse`, which returns JSON text or an error text.
declare module "js-hcl-parser" {
  const hcl: { parse(text: string): string; stringify(json: string): string };
  export default hcl;
}
