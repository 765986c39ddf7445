// The generator of src/runtime/kernel_exports.ts (asm/interface.ts) on declarations written here in the form
// asc 0.28's `--bindings raw` gives them; tests/build_test.ts checks the committed file against the real ones.
import { assert, assertEquals } from "./_assert.ts";
import { interfaceModule, parseDeclarations } from "../asm/interface.ts";

const DTS = `declare namespace __AdaptedExports {
  /** Exported memory */
  export const memory: WebAssembly.Memory;
  /**
   * asm/kernels/norm/rms
   * @param y \`usize\`
   * @param ld_x \`i32\`
   * @param eps \`f32\`
   */
  export function rms(y: number, ld_x: number, eps: number): void;
  /**
   * asm/kernels/index/heap_base
   * @returns \`usize\`
   */
  export function heap_base(): number;
}
/** Instantiates the compiled WebAssembly module with the given imports. */
export declare function instantiate(module: WebAssembly.Module, imports: {
}): Promise<typeof __AdaptedExports>;
`;

Deno.test("kernel interface: asc declarations → names (camelCase), AssemblyScript types, source file", () => {
  assertEquals(parseDeclarations(DTS), [
    {
      name: "rms",
      source: "asm/kernels/norm.ts",
      params: [{ name: "y", type: "usize" }, { name: "ldX", type: "i32" }, { name: "eps", type: "f32" }],
      result: "void",
    },
    { name: "heap_base", source: "asm/kernels/index.ts", params: [], result: "usize" },
  ]);
  const code = interfaceModule(parseDeclarations(DTS));
  assert(code.includes("  rms(y: number, ldX: number, eps: number): void;"), code);
  assert(code.includes("  heap_base(): number;"), code);
  assert(code.includes('  rms: ["y", "ldX", "eps"],'), code);
  assert(code.includes("asm/kernels/norm.ts: y usize, ldX i32, eps f32 */"), code);
});

Deno.test("kernel interface: what it cannot represent is an error, not a wrong interface", () => {
  const cases: [string, string][] = [
    [
      DTS.replace("export const memory: WebAssembly.Memory;", "export const FLAG: { valueOf(): number };"),
      "FLAG",
    ],
    [
      DTS.replace("@param eps `f32`", "@param eps `~lib/string/String`"),
      "unsupported type ~lib/string/String",
    ],
    [DTS.replace("@param eps `f32`", "@param eps `v128`"), "unsupported type v128"],
    [DTS.replace("@param ld_x `i32`\n", ""), "do not match"],
    [DTS.replace("declare namespace __AdaptedExports", "declare namespace Other"), "no __AdaptedExports"],
  ];
  for (const [dts, message] of cases) {
    let error = "";
    try {
      parseDeclarations(dts);
    } catch (e) {
      error = (e as Error).message;
    }
    assert(error.includes(message), `want an error with "${message}", got "${error}"`);
  }
});
