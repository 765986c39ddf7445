// The plan's two constants (heap_base, gemm_scratch_bytes) read from the wasm bytes, and startKernels with a
// pool instantiating only the threads build (issue 14: the single-thread instance it made only to read them
// stayed alive next to the threads build).
import { assert, assertEquals } from "./_assert.ts";
import {
  exportedConstants,
  KERNEL_FILES,
  kernelConstants,
  kernelImports,
  loadKernels,
  VARIANTS,
} from "../src/runtime/kernels.ts";
import { startKernels } from "../src/runtime/pool.ts";

const NAMES = ["heap_base", "gemm_scratch_bytes"] as const;

Deno.test("kernel constants: read from every shipped build's bytes, equal to what its instance returns", async () => {
  for (const file of KERNEL_FILES) {
    const bytes = await Deno.readFile(new URL(`../wasm/${file}`, import.meta.url));
    const read = exportedConstants(bytes, NAMES);
    // the reference: the instance itself (threads builds import a shared memory)
    const memory = file.includes("threads")
      ? new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true })
      : undefined;
    const { instance } = await WebAssembly.instantiate(bytes, kernelImports(memory));
    const ex = instance.exports as { heap_base(): number; gemm_scratch_bytes(): number };
    assertEquals(read, { heap_base: ex.heap_base(), gemm_scratch_bytes: ex.gemm_scratch_bytes() }, file);
  }
  for (const variant of VARIANTS) {
    const k = await loadKernels({ variant });
    assertEquals(await kernelConstants({ variant }), {
      variant,
      heapBase: k.exports.heap_base(),
      gemmScratchBytes: k.exports.gemm_scratch_bytes(),
    });
  }
  assertEquals(
    (await kernelConstants()).variant,
    (await loadKernels()).variant,
    "the variant loadKernels picks",
  );
});

/** A hand-assembled module: imports one function, exports `a` = i32.const -3, `b` = 3 + 4 (not a constant). */
function handModule(): Uint8Array<ArrayBuffer> {
  const str = (s: string) => [s.length, ...new TextEncoder().encode(s)];
  const section = (id: number, body: number[]) => [id, body.length, ...body];
  const body = (code: number[]) => [code.length + 1, 0, ...code];
  return new Uint8Array([
    0,
    0x61,
    0x73,
    0x6d,
    1,
    0,
    0,
    0,
    ...section(1, [1, 0x60, 0, 1, 0x7f]), // type 0: () -> i32
    ...section(2, [1, ...str("env"), ...str("f"), 0, 0]), // function 0 is imported
    ...section(3, [2, 0, 0]), // functions 1 and 2
    ...section(7, [2, ...str("a"), 0, 1, ...str("b"), 0, 2]),
    ...section(10, [2, ...body([0x41, 0x7d, 0x0b]), ...body([0x41, 3, 0x41, 4, 0x6a, 0x0b])]),
  ]);
}

Deno.test("kernel constants: only bodies that are one i32.const count, indices after the imports", async () => {
  const bytes = handModule();
  const { instance } = await WebAssembly.instantiate(bytes, { env: { f: () => 0 } });
  const ex = instance.exports as { a(): number; b(): number };
  assertEquals([ex.a(), ex.b()], [-3, 7]); // the module is valid and means what the comment says
  assertEquals(exportedConstants(bytes, ["a", "b", "missing"]), { a: -3 });
});

Deno.test("kernel constants: startKernels with a pool instantiates only the threads build here", async () => {
  const original = WebAssembly.instantiate;
  let instances = 0;
  const spy = ((...args: Parameters<typeof original>) => {
    instances++;
    return original(...args);
  }) as typeof original;
  (WebAssembly as { instantiate: typeof original }).instantiate = spy;
  let started;
  try {
    started = await startKernels((scratch) => [{ name: "scratch", bytes: scratch }], { threads: 2 });
  } finally {
    (WebAssembly as { instantiate: typeof original }).instantiate = original;
  }
  try {
    assert(started.kernels.shared && started.kernels.pool?.threads === 2, "expected a 2-thread pool");
    // the workers instantiate in their own isolates; this thread makes one instance, the shared one
    assertEquals(instances, 1);
    assertEquals(started.arena.region("scratch").bytes, 2 * started.kernels.exports.gemm_scratch_bytes());
  } finally {
    started.kernels.pool?.close();
  }
});
