// The GEMM family: C[m0:m1, n0:n1] (+)= alpha · op(A) · op(B), every training product of mesp.
//
//   op NT:  C[M,N] = A[M,K] · B[N,K]ᵀ   linear layer, weights in checkpoint layout [out, in]
//   op NN:  C[M,N] = A[M,K] · B[K,N]    e.g. dx = G · W
//   op TN:  C[M,N] = A[K,M]ᵀ · B[K,N]   e.g. dA = ghᵀ x, dB = Gᵀ h
//
// A is always f32 (activations). B may be f32, f16, bf16, q8 or q4 (see dtype.ts) and is decoded while
// packing, so the micro-kernel only ever sees f32. Work is blocked BLIS-style (NC columns, KC of the
// reduction, MC rows): a block of A is packed into row panels [k][MR] so the micro-kernel reads it with one
// pointer and constant offsets, and is reused across all NC columns. The reduction order of every C element
// depends only on K, so any split of the row or column range (threads) gives bit-identical results.

import { fma, hsum } from "./simd";
import { F32, decode_row } from "./dtype";

export const OP_NT: i32 = 0;
export const OP_NN: i32 = 1;
export const OP_TN: i32 = 2;

const MR: i32 = 5; // micro-tile rows (at most; why 5: see tile); GEMM_TILE in src/runtime/kernels.ts mirrors MR, NR (tested)
const NR: i32 = 8; // micro-tile columns (two f32x4)
const KC: i32 = 256; // reduction block
const NC: i32 = 512; // column block (packed B holds KC × NC)
const MC: i32 = 48; // row block: packed A holds MC × KC floats, so MC / MR panels of MR rows (45 rows)
const PACK_A_COLS: i32 = 4 * NR; // narrower column blocks read A in place (packing would not pay)

// scratch layout, in floats
const BP_FLOATS: i32 = KC * NC;
const AP_FLOATS: i32 = MC * KC;
const TILE_FLOATS: i32 = MR * NR;
// a ternary, not max(): AssemblyScript folds it, so gemm_scratch_bytes() is one i32.const the host can read
// from the wasm bytes without instantiating (src/runtime/kernels.ts, kernelConstants)
const ROW_FLOATS: i32 = NR * KC > NC ? NR * KC : NC;

/** The register tile's rows (`MR`): the host's split grain, `GEMM_TILE` in src/runtime/kernels.ts (a test ties them). */
export function gemm_tile_rows(): i32 {
  return MR;
}

/** The register tile's columns (`NR`), as {@link gemm_tile_rows}. */
export function gemm_tile_columns(): i32 {
  return NR;
}

/** Bytes of scratch one gemm call needs (one per concurrent caller). */
export function gemm_scratch_bytes(): i32 {
  return (BP_FLOATS + AP_FLOATS + TILE_FLOATS + ROW_FLOATS) * 4;
}

/**
 * C[m0:m1, n0:n1] = alpha·op(A)·op(B) + (accumulate ? C : 0). Leading dimensions are in elements.
 * B is described by its dtype, data pointer, leading dimension and (quantized only) f16 scales/biases.
 */
export function gemm(op: i32, m0: i32, m1: i32, n0: i32, n1: i32, K: i32,
                     a: usize, lda: i32,
                     b_dtype: i32, b: usize, ldb: i32, b_scales: usize, b_biases: usize,
                     c: usize, ldc: i32, alpha: f32, accumulate: i32, scratch: usize): void {
  if (m1 <= m0 || n1 <= n0) return;
  if (K <= 0) {
    if (!accumulate) for (let i = m0; i < m1; i++) memory.fill(c + ((<usize>i * ldc + n0) << 2), 0, <usize>(n1 - n0) << 2);
    return;
  }
  // A(i, k) = a + i·ai + k·ak (bytes)
  const ai: usize = op == OP_TN ? 4 : <usize>lda << 2;
  const ak: usize = op == OP_TN ? <usize>lda << 2 : 4;
  const bp = scratch;
  const apack = bp + (<usize>BP_FLOATS << 2);
  const tile_buf = apack + (<usize>AP_FLOATS << 2);
  const rowbuf = tile_buf + (<usize>TILE_FLOATS << 2);
  // B(k, j) rows j-contiguous: use it in place when it is f32 and not transposed
  const direct = op != OP_NT && b_dtype == F32;
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      const acc = pc > 0 || accumulate != 0;
      let bbase: usize, bk: usize, bpanel: usize;
      if (direct) {
        bbase = b + ((<usize>pc * ldb + jc) << 2);
        bk = <usize>ldb << 2;
        bpanel = NR * 4;
      } else {
        if (op == OP_NT) pack_b_nt(b_dtype, b, ldb, b_scales, b_biases, jc, nc, pc, kc, bp, rowbuf);
        else pack_b_nn(b_dtype, b, ldb, b_scales, b_biases, jc, nc, pc, kc, bp, rowbuf);
        bbase = bp;
        bk = NR * 4;
        bpanel = <usize>kc * NR * 4;
      }
      const abase = a + <usize>pc * ak;
      // A is packed per row block when enough column tiles reuse it; with few, packing would cost as much
      // as using it, so the one block is all rows, read in place
      const packA = nc >= PACK_A_COLS;
      const apanel = <usize>kc * MR * 4;
      for (let ic = m0; ic < m1;) {
        let ie = m1;
        if (packA) {
          // the row panels of this block, heights as next_height gives them: at most MC / MR panels (each
          // takes MR rows of the packed area however short it is; 48 is not a multiple of 5)
          ie = ic;
          for (let p: usize = 0; ie < m1 && p < <usize>(MC / MR); p++) {
            const mr = next_height(m1 - ie);
            pack_a(mr, kc, abase + <usize>ie * ai, ai, ak, apack + p * apanel);
            ie += mr;
          }
        }
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = min(NR, nc - jr);
          const bptr = bbase + <usize>(jr / NR) * bpanel;
          const cj = c + (<usize>(jc + jr) << 2);
          let ap = apack;
          for (let i = ic; i < ie;) {
            const mr = next_height(m1 - i);
            const at = packA ? ap : abase + <usize>i * ai;
            const cp = cj + ((<usize>i * ldc) << 2);
            if (nr == NR) tile_any(mr, packA, kc, at, ai, ak, bptr, bk, cp, <usize>ldc << 2, alpha, acc);
            else {
              tile_any(mr, packA, kc, at, ai, ak, bptr, bk, tile_buf, NR * 4, 1.0, false);
              store_tile(tile_buf, mr, nr, cp, ldc, alpha, acc);
            }
            ap += apanel;
            i += mr;
          }
        }
        ic = ie;
      }
    }
  }
}

// mr×8 register tile (mr ≤ MR = 5 and `packed` are compile-time constants at every call site, so the unused
// rows and the other way of reading A fold away): C[i, 0:8] (+)= alpha · Σ_k A(i, k) · B(k, 0:8), summing k
// in order for every element. A is a packed panel [k][MR] (see pack_a: rows 0-3 of one k are one v128, row 4
// the float after it) or read in place, row i at a + i·ai, column k at + k·ak (one pointer per row).
//
// Why 5 rows whose first four are one load and lane shuffles, not 6 broadcast loads: Deno runs wasm without
// a trap handler (denoland/deno#35658), so V8 gives every load its own bounds check (lea, cmp, jae), and a 6×8
// tile's 12 accumulators, 2 B vectors, the row vector and a splat need 16 of x64's 15 allocatable vector
// registers. Measured (bench/README.md, "The micro-kernel's shape"): the k loop is 40 instructions for 10
// FMAs instead of 58 for 12, and the same products are summed in the same order, so the bits are the same.
// @ts-ignore: decorator
@inline function tile(mr: i32, packed: bool, kc: i32, a: usize, ai: usize, ak: usize, b: usize, bk: usize,
                      c: usize, ldcb: usize, alpha: f32, acc: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0);
  let bp = b;
  if (packed) {
    let ap = a;
    for (let k = 0; k < kc; k++) {
      const b0 = v128.load(bp), b1 = v128.load(bp, 16), rows = v128.load(ap);
      let x = v128.shuffle<f32>(rows, rows, 0, 0, 0, 0);
      c00 = fma(x, b0, c00); c01 = fma(x, b1, c01);
      if (mr > 1) {
        x = v128.shuffle<f32>(rows, rows, 1, 1, 1, 1);
        c10 = fma(x, b0, c10); c11 = fma(x, b1, c11);
      }
      if (mr > 2) {
        x = v128.shuffle<f32>(rows, rows, 2, 2, 2, 2);
        c20 = fma(x, b0, c20); c21 = fma(x, b1, c21);
      }
      if (mr > 3) {
        x = v128.shuffle<f32>(rows, rows, 3, 3, 3, 3);
        c30 = fma(x, b0, c30); c31 = fma(x, b1, c31);
      }
      if (mr > 4) {
        x = v128.load32_splat(ap, 16);
        c40 = fma(x, b0, c40); c41 = fma(x, b1, c41);
      }
      ap += <usize>(MR * 4);
      bp += bk;
    }
  } else {
    let a0 = a, a1 = a + ai, a2 = a + 2 * ai, a3 = a + 3 * ai, a4 = a + 4 * ai;
    for (let k = 0; k < kc; k++) {
      const b0 = v128.load(bp), b1 = v128.load(bp, 16);
      let x = v128.load32_splat(a0);
      c00 = fma(x, b0, c00); c01 = fma(x, b1, c01);
      if (mr > 1) {
        x = v128.load32_splat(a1);
        c10 = fma(x, b0, c10); c11 = fma(x, b1, c11);
        a1 += ak;
      }
      if (mr > 2) {
        x = v128.load32_splat(a2);
        c20 = fma(x, b0, c20); c21 = fma(x, b1, c21);
        a2 += ak;
      }
      if (mr > 3) {
        x = v128.load32_splat(a3);
        c30 = fma(x, b0, c30); c31 = fma(x, b1, c31);
        a3 += ak;
      }
      if (mr > 4) {
        x = v128.load32_splat(a4);
        c40 = fma(x, b0, c40); c41 = fma(x, b1, c41);
        a4 += ak;
      }
      a0 += ak;
      bp += bk;
    }
  }
  const va = f32x4.splat(alpha);
  store_row(c, c00, c01, va, acc);
  if (mr > 1) store_row(c + ldcb, c10, c11, va, acc);
  if (mr > 2) store_row(c + 2 * ldcb, c20, c21, va, acc);
  if (mr > 3) store_row(c + 3 * ldcb, c30, c31, va, acc);
  if (mr > 4) store_row(c + 4 * ldcb, c40, c41, va, acc);
}

// One tile of any height ≤ MR, dispatched to a specialised copy for each way of reading A.
function tile_any(mr: i32, packed: bool, kc: i32, a: usize, ai: usize, ak: usize, b: usize, bk: usize,
                  c: usize, ldcb: usize, alpha: f32, acc: bool): void {
  if (packed) {
    switch (mr) {
      case 5: tile(5, true, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      case 4: tile(4, true, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      case 3: tile(3, true, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      case 2: tile(2, true, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      default: tile(1, true, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc);
    }
  } else {
    switch (mr) {
      case 5: tile(5, false, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      case 4: tile(4, false, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      case 3: tile(3, false, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      case 2: tile(2, false, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc); break;
      default: tile(1, false, kc, a, ai, ak, b, bk, c, ldcb, alpha, acc);
    }
  }
}

// Packs rows [0, mr) of A(i, k) = a + i·ai + k·ak, k < kc, into a panel [k][MR] (rows past mr unwritten:
// the tile's load of rows 0-3 may read them, but never uses their lanes).
function pack_a(mr: i32, kc: i32, a: usize, ai: usize, ak: usize, dst: usize): void {
  if (ak == 4) {
    // rows contiguous in k (NT, NN): four k at a time from each row
    let k = 0;
    for (; k + 4 <= kc; k += 4) {
      for (let r = 0; r < mr; r++) {
        const v = v128.load(a + <usize>r * ai + (<usize>k << 2));
        const d = dst + (<usize>(k * MR + r) << 2);
        store<f32>(d, f32x4.extract_lane(v, 0));
        store<f32>(d, f32x4.extract_lane(v, 1), MR * 4);
        store<f32>(d, f32x4.extract_lane(v, 2), MR * 8);
        store<f32>(d, f32x4.extract_lane(v, 3), MR * 12);
      }
    }
    for (; k < kc; k++) {
      for (let r = 0; r < mr; r++) {
        store<f32>(dst + (<usize>(k * MR + r) << 2), load<f32>(a + <usize>r * ai + (<usize>k << 2)));
      }
    }
  } else {
    // TN: the mr rows of one k are contiguous
    for (let k = 0; k < kc; k++) {
      const s = a + <usize>k * ak, d = dst + (<usize>(k * MR) << 2);
      for (let r = 0; r < mr; r++) store<f32>(d + (<usize>r << 2), load<f32>(s + (<usize>r << 2)));
    }
  }
}

// Heights of the row tiles covering m rows: 5s, with the remainder spread so no tile is lower than 3 when
// avoidable (6 = 3 + 3 rather than 5 + 1, 7 = 4 + 3): short tiles cannot hide the FMA latency.
// @ts-ignore: decorator
@inline function next_height(left: i32): i32 {
  if (left >= 8 || left == 5) return 5;
  if (left >= 5) return left - 3; // 6 → 3 + 3, 7 → 4 + 3
  return left;
}

// @ts-ignore: decorator
@inline function store_row(cp: usize, v0: v128, v1: v128, va: v128, acc: bool): void {
  if (acc) {
    v128.store(cp, fma(v0, va, v128.load(cp)));
    v128.store(cp, fma(v1, va, v128.load(cp, 16)), 16);
  } else {
    v128.store(cp, f32x4.mul(v0, va));
    v128.store(cp, f32x4.mul(v1, va), 16);
  }
}

// Writes the valid mr × nr corner of an unscaled tile into C with the same rounding as store_row.
function store_tile(tile: usize, mr: i32, nr: i32, c: usize, ldc: i32, alpha: f32, acc: bool): void {
  for (let i = 0; i < mr; i++) {
    const t = tile + <usize>i * NR * 4;
    const cp = c + ((<usize>i * ldc) << 2);
    for (let j = 0; j < nr; j++) {
      const v = load<f32>(t + (<usize>j << 2));
      const o = cp + (<usize>j << 2);
      // same operation as the vector path: fma(v, alpha, c) or v * alpha
      if (acc) store<f32>(o, f32x4.extract_lane(fma(f32x4.splat(v), f32x4.splat(alpha), f32x4.splat(load<f32>(o))), 0));
      else store<f32>(o, v * alpha);
    }
  }
}

// Packs B(k, j) = W[jc + j, pc + k] (W row-major [N, ldb], any dtype) into NR-wide panels [k][NR],
// zero-padding the last panel. Rows are decoded 8 at a time into rowbuf[NR][kc] and transposed.
function pack_b_nt(bt: i32, b: usize, ldb: i32, bs: usize, bb: usize,
                   jc: i32, nc: i32, pc: i32, kc: i32, dst: usize, rowbuf: usize): void {
  const rowb = <usize>kc << 2;
  for (let jr = 0; jr < nc; jr += NR) {
    const nr = min(NR, nc - jr);
    for (let j = 0; j < NR; j++) {
      const r = rowbuf + <usize>j * rowb;
      if (j < nr) decode_row(bt, b, ldb, bs, bb, jc + jr + j, pc, kc, r);
      else memory.fill(r, 0, rowb);
    }
    const panel = dst + <usize>(jr / NR) * kc * NR * 4;
    let k = 0;
    for (; k + 4 <= kc; k += 4) {
      const ko = <usize>k << 2;
      transpose4(rowbuf + ko, rowb, panel + <usize>k * NR * 4, NR * 4);
      transpose4(rowbuf + 4 * rowb + ko, rowb, panel + <usize>k * NR * 4 + 16, NR * 4);
    }
    for (; k < kc; k++) {
      for (let j = 0; j < NR; j++)
        store<f32>(panel + ((<usize>k * NR + j) << 2), load<f32>(rowbuf + <usize>j * rowb + (<usize>k << 2)));
    }
  }
}

// 4×4 transpose: src rows (stride sb bytes) → dst rows (stride db bytes).
// @ts-ignore: decorator
@inline function transpose4(src: usize, sb: usize, dst: usize, db: usize): void {
  const r0 = v128.load(src), r1 = v128.load(src + sb), r2 = v128.load(src + 2 * sb), r3 = v128.load(src + 3 * sb);
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5); // a0 b0 a1 b1
  const t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5); // c0 d0 c1 d1
  const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7); // a2 b2 a3 b3
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7); // c2 d2 c3 d3
  v128.store(dst, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst + db, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * db, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * db, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
}

// Packs B(k, j) = W[pc + k, jc + j] (W row-major [K, ldb], any dtype) into NR-wide panels [k][NR].
function pack_b_nn(bt: i32, b: usize, ldb: i32, bs: usize, bb: usize,
                   jc: i32, nc: i32, pc: i32, kc: i32, dst: usize, rowbuf: usize): void {
  const panels = (nc + NR - 1) / NR;
  // zero the padding columns of the last row buffer once; decode_row only writes nc values
  memory.fill(rowbuf + (<usize>nc << 2), 0, <usize>(panels * NR - nc) << 2);
  const panelb = <usize>kc * NR * 4;
  for (let k = 0; k < kc; k++) {
    decode_row(bt, b, ldb, bs, bb, pc + k, jc, nc, rowbuf);
    let d = dst + <usize>k * NR * 4;
    let s = rowbuf;
    for (let p = 0; p < panels; p++) {
      v128.store(d, v128.load(s));
      v128.store(d, v128.load(s, 16), 16);
      d += panelb;
      s += NR * 4;
    }
  }
}

/**
 * NT with few f32 columns (x·Aᵀ for a LoRA A [r, K]): dot products along K, no packing. Blocks of 4 rows ×
 * 2 columns keep 8 accumulators; each (i, j) sums in a fixed order, so any split of the ranges gives the same
 * bits. The host picks this or `gemm` from the whole problem's shape (never from a thread's sub-range).
 */
export function gemm_dot(m0: i32, m1: i32, n0: i32, n1: i32, K: i32, a: usize, lda: i32, b: usize, ldb: i32,
                     c: usize, ldc: i32, alpha: f32, accumulate: i32): void {
  const K4 = K & ~3;
  const lab = <usize>lda << 2, lbb = <usize>ldb << 2;
  let i = m0;
  for (; i + 4 <= m1; i += 4) {
    const a0 = a + <usize>i * lab;
    for (let j = n0; j < n1; j += 2) {
      const two = j + 1 < n1;
      const b0 = b + <usize>j * lbb;
      const b1 = two ? b0 + lbb : b0;
      let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s10 = f32x4.splat(0), s11 = f32x4.splat(0);
      let s20 = f32x4.splat(0), s21 = f32x4.splat(0), s30 = f32x4.splat(0), s31 = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) {
        const o = <usize>k << 2;
        const w0 = v128.load(b0 + o), w1 = v128.load(b1 + o);
        let x = v128.load(a0 + o);
        s00 = fma(x, w0, s00); s01 = fma(x, w1, s01);
        x = v128.load(a0 + lab + o);
        s10 = fma(x, w0, s10); s11 = fma(x, w1, s11);
        x = v128.load(a0 + 2 * lab + o);
        s20 = fma(x, w0, s20); s21 = fma(x, w1, s21);
        x = v128.load(a0 + 3 * lab + o);
        s30 = fma(x, w0, s30); s31 = fma(x, w1, s31);
      }
      dot_out(s00, a0, b0, K4, K, c, i, j, ldc, alpha, accumulate);
      dot_out(s10, a0 + lab, b0, K4, K, c, i + 1, j, ldc, alpha, accumulate);
      dot_out(s20, a0 + 2 * lab, b0, K4, K, c, i + 2, j, ldc, alpha, accumulate);
      dot_out(s30, a0 + 3 * lab, b0, K4, K, c, i + 3, j, ldc, alpha, accumulate);
      if (two) {
        dot_out(s01, a0, b1, K4, K, c, i, j + 1, ldc, alpha, accumulate);
        dot_out(s11, a0 + lab, b1, K4, K, c, i + 1, j + 1, ldc, alpha, accumulate);
        dot_out(s21, a0 + 2 * lab, b1, K4, K, c, i + 2, j + 1, ldc, alpha, accumulate);
        dot_out(s31, a0 + 3 * lab, b1, K4, K, c, i + 3, j + 1, ldc, alpha, accumulate);
      }
    }
  }
  for (; i < m1; i++) {
    const ar = a + <usize>i * lab;
    for (let j = n0; j < n1; j++) {
      const br = b + <usize>j * lbb;
      let s = f32x4.splat(0);
      for (let k = 0; k < K4; k += 4) s = fma(v128.load(ar + (<usize>k << 2)), v128.load(br + (<usize>k << 2)), s);
      dot_out(s, ar, br, K4, K, c, i, j, ldc, alpha, accumulate);
    }
  }
}

// Finishes one dot product: lane sum, scalar tail k ∈ [K4, K), scale, store.
// @ts-ignore: decorator
@inline function dot_out(s: v128, ar: usize, br: usize, K4: i32, K: i32, c: usize, i: i32, j: i32, ldc: i32,
                         alpha: f32, accumulate: i32): void {
  let t = hsum(s);
  for (let k = K4; k < K; k++) t += load<f32>(ar + (<usize>k << 2)) * load<f32>(br + (<usize>k << 2));
  const o = c + ((<usize>i * ldc + j) << 2);
  store<f32>(o, accumulate ? t * alpha + load<f32>(o) : t * alpha);
}
