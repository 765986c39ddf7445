/**
 * GEMM as the model code calls it: picks the kernel for the whole problem's shape and passes a weight
 * descriptor. Allocation-free per call (descriptors are made once, when the plan is built). With a worker
 * pool, a large GEMM is split across the threads by rows, or by columns when there are few rows (the
 * rank-r products); every element is summed in the same order either way, so results do not depend on the
 * thread count.
 *
 * @module
 */
import { GEMM_TILE, type KernelExports, OP, type WeightDtype } from "./kernels.ts";
import { dtypeCode, type WeightRef } from "./weight_ref.ts";
import type { Pool, Profile } from "./pool.ts";

/** NT products with fewer f32 columns than the packed tile is wide (8) use the unpacked dot-product kernel
 * (measured: for 8 or more the packed path is faster, since packing a LoRA A of r rows is negligible). */
const SKINNY_N = 7;

/** Whether a whole NT problem with `n` columns of a `dtype` operand runs on the dot-product kernel. */
function usesDotKernel(op: number, n: number, dtype: WeightDtype): boolean {
  return op === OP.nt && dtype === "f32" && n <= SKINNY_N;
}

/** Options for {@linkcode Gemm}. */
export interface GemmOptions {
  /** Split large calls across this pool (thread `i` uses the `i`-th scratch area from `scratch`). */
  pool?: Pool;
  /** Time every call into this profile. */
  profile?: Profile;
}

/** Micro-tile height and width of the packed kernel, and the row block of the dot kernel. */
const MR = GEMM_TILE.rows, NR = GEMM_TILE.columns, DOT_ROWS = 4;
/** Columns per thread from which a split by columns beats one by rows (measured: N = 896 yes, 128 no). */
const WIDE = 128;

/** GEMM entry points bound to one kernel instance and one scratch region. */
export class Gemm {
  readonly #k: KernelExports;
  readonly #scratch: number;
  readonly #pool?: Pool;
  readonly #profile?: Profile;

  /**
   * `scratch` must hold `exports.gemm_scratch_bytes()` bytes, times the pool's thread count with a pool.
   * `exports` are the raw kernel exports.
   */
  constructor(exports: KernelExports, scratch: number, options: GemmOptions = {}) {
    this.#k = exports;
    this.#scratch = scratch;
    this.#pool = options.pool;
    this.#profile = options.profile;
  }

  /** Runs rows [m0, m1) and columns [n0, n1) of a problem with `n` columns in total (for kernel choice). */
  run(
    op: number,
    m0: number,
    m1: number,
    n0: number,
    n1: number,
    n: number,
    k: number,
    a: number,
    lda: number,
    b: WeightRef,
    c: number,
    ldc: number,
    alpha: number,
    accumulate: boolean,
  ): void {
    const profile = this.#profile;
    if (!profile) {
      this.#run(op, m0, m1, n0, n1, n, k, a, lda, b, c, ldc, alpha, accumulate);
      return;
    }
    const t0 = performance.now();
    this.#run(op, m0, m1, n0, n1, n, k, a, lda, b, c, ldc, alpha, accumulate);
    const flops = 2 * Math.max(0, m1 - m0) * Math.max(0, n1 - n0) * k;
    profile.add(profile.classifyGemm(op, m1 - m0, n1 - n0, k, b), performance.now() - t0, flops);
  }

  /**
   * How a call is split across `pool`: 0 = not at all, 1 = by rows, 2 = by columns. Columns when each
   * thread gets at least {@linkcode WIDE} of them (each then packs only its part of B: no duplicated
   * dequantization), else rows when each thread gets at least two micro-tiles of them, else columns when
   * each gets two tiles of those; not at all when
   * the call is too small to pay for waking the workers (`pool.minFlops`). A forced policy (`pool.split`)
   * splits its way whenever that gives two pieces.
   */
  static splitOf(pool: Pool, dot: boolean, rows: number, cols: number, k: number): 0 | 1 | 2 {
    if (2 * rows * cols * k < pool.minFlops) return 0;
    const threads = pool.threads, rowGrain = dot ? DOT_ROWS : MR, colGrain = dot ? 2 : NR;
    const rowsOk = rows >= 2 * rowGrain * threads, colsOk = cols >= 2 * colGrain * threads;
    // forced policies split whenever there are two pieces (tests use them on tiny shapes)
    if (pool.split === "rows") return rows > rowGrain ? 1 : 0;
    if (pool.split === "columns") return cols > colGrain ? 2 : 0;
    // wide enough: columns, so each thread packs (decodes) only its own part of B
    if (!dot && colsOk && cols >= WIDE * threads) return 2;
    return rowsOk ? 1 : colsOk ? 2 : 0;
  }

  #run(
    op: number,
    m0: number,
    m1: number,
    n0: number,
    n1: number,
    n: number,
    k: number,
    a: number,
    lda: number,
    b: WeightRef,
    c: number,
    ldc: number,
    alpha: number,
    accumulate: boolean,
  ): void {
    const dot = usesDotKernel(op, n, b.dtype);
    const pool = this.#pool;
    const how = pool ? Gemm.splitOf(pool, dot, m1 - m0, n1 - n0, k) : 0;
    if (dot) {
      const f = how === 0 ? this.#k.gemm_dot : how === 1 ? pool!.gemmDotRows : pool!.gemmDotColumns;
      f(m0, m1, n0, n1, k, a, lda, b.ptr, b.ld, c, ldc, alpha, accumulate ? 1 : 0);
    } else {
      const f = how === 0 ? this.#k.gemm : how === 1 ? pool!.gemmRows : pool!.gemmColumns;
      f(
        op,
        m0,
        m1,
        n0,
        n1,
        k,
        a,
        lda,
        dtypeCode(b),
        b.ptr,
        b.ld,
        b.scales,
        b.biases,
        c,
        ldc,
        alpha,
        accumulate ? 1 : 0,
        this.#scratch,
      );
    }
  }

  /** C[M,N] (+)= alpha · A[M,K] · Bᵀ, B [N,K] (a linear layer). */
  nt(
    m: number,
    n: number,
    k: number,
    a: number,
    lda: number,
    b: WeightRef,
    c: number,
    ldc: number,
    alpha = 1,
    accumulate = false,
  ): void {
    this.run(OP.nt, 0, m, 0, n, n, k, a, lda, b, c, ldc, alpha, accumulate);
  }

  /** C[M,N] (+)= alpha · A[M,K] · B, B [K,N]. */
  nn(
    m: number,
    n: number,
    k: number,
    a: number,
    lda: number,
    b: WeightRef,
    c: number,
    ldc: number,
    alpha = 1,
    accumulate = false,
  ): void {
    this.run(OP.nn, 0, m, 0, n, n, k, a, lda, b, c, ldc, alpha, accumulate);
  }

  /** C[M,N] (+)= alpha · Aᵀ · B, A [K,M], B [K,N]. */
  tn(
    m: number,
    n: number,
    k: number,
    a: number,
    lda: number,
    b: WeightRef,
    c: number,
    ldc: number,
    alpha = 1,
    accumulate = false,
  ): void {
    this.run(OP.tn, 0, m, 0, n, n, k, a, lda, b, c, ldc, alpha, accumulate);
  }
}
