/**
 * Loads the compiled kernels (`wasm/`), choosing the fastest variant this runtime can validate.
 * Works from `file:` and `https:` URLs alike; uses no Deno-only API.
 *
 * @module
 */

/** A compiled flavour of the kernels, in the order they are preferred. */
export type Variant = "relaxed" | "simd";

/** All variants, fastest first. */
export const VARIANTS: readonly Variant[] = ["relaxed", "simd"];

/** Weight element types understood by the kernels (codes shared with `asm/kernels/dtype.ts`). */
export const DTYPE = { f32: 0, f16: 1, bf16: 2, q8: 3, q4: 4 } as const;
/** Name of a weight element type. */
export type WeightDtype = keyof typeof DTYPE;

/** GEMM operand layouts (codes shared with `asm/kernels/gemm.ts`). */
export const OP = {
  /** C[M,N] = A[M,K] · B[N,K]ᵀ */
  nt: 0,
  /** C[M,N] = A[M,K] · B[K,N] */
  nn: 1,
  /** C[M,N] = A[K,M]ᵀ · B[K,N] */
  tn: 2,
} as const;

/** The raw exports of the kernel module. Pointers are byte offsets into `memory`. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heap_base(): number;
  gemm_scratch_bytes(): number;
  gemm(
    op: number,
    m0: number,
    m1: number,
    n0: number,
    n1: number,
    k: number,
    a: number,
    lda: number,
    bDtype: number,
    b: number,
    ldb: number,
    bScales: number,
    bBiases: number,
    c: number,
    ldc: number,
    alpha: number,
    accumulate: number,
    scratch: number,
  ): void;
  gemm_dot(
    m0: number,
    m1: number,
    n0: number,
    n1: number,
    k: number,
    a: number,
    lda: number,
    b: number,
    ldb: number,
    c: number,
    ldc: number,
    alpha: number,
    accumulate: number,
  ): void;
  decode_row(
    dtype: number,
    w: number,
    ld: number,
    scales: number,
    biases: number,
    row: number,
    col0: number,
    len: number,
    dst: number,
  ): void;
}

/** A loaded kernel module. */
export interface Kernels {
  readonly variant: Variant;
  readonly module: WebAssembly.Module;
  readonly memory: WebAssembly.Memory;
  readonly exports: KernelExports;
}

/** Options for {@linkcode loadKernels}. */
export interface LoadKernelsOptions {
  /** Force a variant instead of picking the fastest valid one. */
  variant?: Variant;
  /** Where the `wasm/` directory is; defaults to the one next to this module. */
  wasmBase?: string | URL;
}

const FILES: Record<Variant, string> = { relaxed: "mesp_relaxed.wasm", simd: "mesp_simd.wasm" };
const moduleCache = new Map<string, Promise<WebAssembly.Module | undefined>>();

async function compileVariant(base: URL, variant: Variant): Promise<WebAssembly.Module | undefined> {
  const url = new URL(FILES[variant], base);
  const key = url.href;
  let p = moduleCache.get(key);
  if (!p) {
    p = (async () => {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`cannot fetch kernels ${url.href}: HTTP ${res.status}`);
      const bytes = new Uint8Array(await res.arrayBuffer());
      return WebAssembly.validate(bytes) ? await WebAssembly.compile(bytes) : undefined;
    })();
    moduleCache.set(key, p);
  }
  return await p;
}

/**
 * Instantiates the kernel module. Each call returns a fresh instance with its own memory; the compiled
 * module is cached.
 */
export async function loadKernels(options: LoadKernelsOptions = {}): Promise<Kernels> {
  const base = new URL(options.wasmBase ?? new URL("../../wasm/", import.meta.url));
  const candidates = options.variant ? [options.variant] : VARIANTS;
  for (const variant of candidates) {
    const module = await compileVariant(base, variant);
    if (!module) {
      if (options.variant) throw new Error(`this runtime cannot run the "${variant}" kernels`);
      continue;
    }
    const instance = await WebAssembly.instantiate(module, {
      env: {
        abort(_msg: number, _file: number, line: number, col: number) {
          throw new Error(`kernel abort at ${line}:${col}`);
        },
      },
    });
    const exports = instance.exports as unknown as KernelExports;
    return { variant, module, memory: exports.memory, exports };
  }
  throw new Error("this runtime supports none of the kernel variants (WebAssembly SIMD is required)");
}
