/**
 * Plain-loop f64 reference implementations of mesp's non-GEMM kernels (asm/kernels/), written from the
 * math (docs/qwen2.md, docs/mesp.md) and checked by central finite differences in tests/ops_test.ts.
 * Model-level tests reuse them. Also an exact TypeScript mirror of the kernels' counter-based normal
 * generator (rng.ts), so the host can reproduce MeZO's z bit for bit.
 *
 * Layouts are row-major and dense unless a field says otherwise.
 *
 * @module
 */

/** Anything indexable by number: number[], Float32Array, Float64Array. */
export type Vec = ArrayLike<number>;

/** Shape of a row-wise op. */
export interface Rows {
  /** Number of rows. */
  rows: number;
  /** Values per row. */
  d: number;
}

// ---------------------------------------------------------------- finite differences

/** Central differences (f(x + h·e_i) − f(x − h·e_i)) / 2h of a scalar function, for every i. */
export function centralDiff(f: (x: Float64Array) => number, x: Vec, h = 1e-5): Float64Array {
  const xx = Float64Array.from(x);
  const g = new Float64Array(xx.length);
  for (let i = 0; i < xx.length; i++) {
    const keep = xx[i];
    xx[i] = keep + h;
    const fp = f(xx);
    xx[i] = keep - h;
    const fm = f(xx);
    xx[i] = keep;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Σ a[i]·b[i] in f64. */
export function dotF64(a: Vec, b: Vec): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

// ---------------------------------------------------------------- RMSNorm

/** y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps), per row. x: [rows, d], w: [d]. */
export function rmsnormForward(
  x: Vec,
  w: Vec,
  o: Rows & { eps: number },
): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(o.rows * o.d), rstd = new Float64Array(o.rows);
  for (let t = 0; t < o.rows; t++) {
    let ss = 0;
    for (let i = 0; i < o.d; i++) ss += x[t * o.d + i] ** 2;
    const r = 1 / Math.sqrt(ss / o.d + o.eps);
    rstd[t] = r;
    for (let i = 0; i < o.d; i++) y[t * o.d + i] = x[t * o.d + i] * r * w[i];
  }
  return { y, rstd };
}

/** dx of rmsnormForward for upstream gradient dy: rstd · (w⊙dy − x̂ · mean(x̂ ⊙ w⊙dy)). */
export function rmsnormBackward(dy: Vec, x: Vec, o: Rows & { w: Vec; eps: number }): Float64Array {
  const { rstd } = rmsnormForward(x, o.w, o);
  const dx = new Float64Array(o.rows * o.d);
  for (let t = 0; t < o.rows; t++) {
    const r = rstd[t];
    let c = 0;
    for (let i = 0; i < o.d; i++) c += x[t * o.d + i] * r * o.w[i] * dy[t * o.d + i];
    c /= o.d;
    for (let i = 0; i < o.d; i++) {
      dx[t * o.d + i] = r * (o.w[i] * dy[t * o.d + i] - x[t * o.d + i] * r * c);
    }
  }
  return dx;
}

// ---------------------------------------------------------------- RoPE

/** cos/sin tables [maxPos, headDim/2] of angle p · theta^(−2j/headDim), in f64 (docs/qwen2.md). */
export function ropeTables(
  maxPos: number,
  o: { headDim: number; theta: number },
): { cos: Float64Array; sin: Float64Array } {
  const half = o.headDim / 2;
  const cos = new Float64Array(maxPos * half), sin = new Float64Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let j = 0; j < half; j++) {
      const a = p / o.theta ** ((2 * j) / o.headDim);
      cos[p * half + j] = Math.cos(a);
      sin[p * half + j] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** Options of the RoPE references. x rows are [nHeads · headDim], dense. */
export interface RopeOptions {
  /** Rows (tokens). */
  rows: number;
  /** Heads per row. */
  nHeads: number;
  /** Values per head (even). */
  headDim: number;
  /** Position of row 0 (row t uses table row pos0 + t). */
  pos0: number;
  /** cos table [maxPos, headDim/2]. */
  cos: Vec;
  /** sin table [maxPos, headDim/2]. */
  sin: Vec;
}

/** NeoX rotate_half RoPE: out = x·cos + rotate_half(x)·sin per head. */
export function ropeForward(x: Vec, o: RopeOptions): Float64Array {
  return rope(x, o, 1);
}

/** Gradient of ropeForward: the transposed (inverse) rotation of dy. */
export function ropeBackward(dy: Vec, o: RopeOptions): Float64Array {
  return rope(dy, o, -1);
}

function rope(x: Vec, o: RopeOptions, sign: number): Float64Array {
  const half = o.headDim / 2, width = o.nHeads * o.headDim;
  const out = new Float64Array(o.rows * width);
  for (let t = 0; t < o.rows; t++) {
    for (let h = 0; h < o.nHeads; h++) {
      const base = t * width + h * o.headDim;
      for (let i = 0; i < half; i++) {
        const c = o.cos[(o.pos0 + t) * half + i], s = sign * o.sin[(o.pos0 + t) * half + i];
        const a = x[base + i], b = x[base + half + i];
        out[base + i] = a * c - b * s;
        out[base + half + i] = b * c + a * s;
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- causal softmax

/** Options of the causal softmax references: scores [rows, cols], query row i at position qPos0 + i. */
export interface SoftmaxOptions {
  /** Query rows. */
  rows: number;
  /** Key columns. */
  cols: number;
  /** Multiplies the scores before the softmax (1/√head_dim). */
  scale: number;
  /** Absolute position of query row 0. */
  qPos0: number;
}

/** Number of visible key columns of query row i. */
export function visibleCols(i: number, o: SoftmaxOptions): number {
  return Math.max(0, Math.min(o.cols, o.qPos0 + i + 1));
}

/** p = softmax(scale · s) over the visible columns j ≤ qPos0 + i, 0 elsewhere. */
export function softmaxCausalForward(s: Vec, o: SoftmaxOptions): Float64Array {
  const p = new Float64Array(o.rows * o.cols);
  for (let i = 0; i < o.rows; i++) {
    const nv = visibleCols(i, o);
    let m = -Infinity;
    for (let j = 0; j < nv; j++) m = Math.max(m, o.scale * s[i * o.cols + j]);
    let sum = 0;
    for (let j = 0; j < nv; j++) sum += Math.exp(o.scale * s[i * o.cols + j] - m);
    for (let j = 0; j < nv; j++) p[i * o.cols + j] = Math.exp(o.scale * s[i * o.cols + j] - m) / sum;
  }
  return p;
}

/** ds = scale · p ⊙ (dp − Σ p ⊙ dp) on visible columns (gradient with respect to s). */
export function softmaxCausalBackward(dp: Vec, p: Vec, o: SoftmaxOptions): Float64Array {
  const ds = new Float64Array(o.rows * o.cols);
  for (let i = 0; i < o.rows; i++) {
    const nv = visibleCols(i, o);
    let c = 0;
    for (let j = 0; j < nv; j++) c += p[i * o.cols + j] * dp[i * o.cols + j];
    for (let j = 0; j < nv; j++) ds[i * o.cols + j] = o.scale * p[i * o.cols + j] * (dp[i * o.cols + j] - c);
  }
  return ds;
}

// ---------------------------------------------------------------- SwiGLU

/** σ(x) in f64. */
export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** m = silu(g) ⊙ u, elementwise. */
export function swigluForward(g: Vec, u: Vec): Float64Array {
  return Float64Array.from(g, (gv, i) => gv * sigmoid(gv) * u[i]);
}

/** dg = dm·u·σ(g)(1 + g(1 − σ(g))), du = dm·silu(g). */
export function swigluBackward(dm: Vec, o: { g: Vec; u: Vec }): { dg: Float64Array; du: Float64Array } {
  const n = dm.length;
  const dg = new Float64Array(n), du = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = o.g[i], s = sigmoid(g);
    dg[i] = dm[i] * o.u[i] * s * (1 + g * (1 - s));
    du[i] = dm[i] * g * s;
  }
  return { dg, du };
}

// ---------------------------------------------------------------- cross-entropy

/** Per-row cross-entropy of logits [rows, vocab] against targets: loss = logsumexp − logit[target]. */
export function crossEntropy(
  logits: Vec,
  targets: ArrayLike<number>,
  o: { rows: number; vocab: number },
): { loss: Float64Array; lse: Float64Array } {
  const loss = new Float64Array(o.rows), lse = new Float64Array(o.rows);
  for (let t = 0; t < o.rows; t++) {
    let m = -Infinity;
    for (let j = 0; j < o.vocab; j++) m = Math.max(m, logits[t * o.vocab + j]);
    let s = 0;
    for (let j = 0; j < o.vocab; j++) s += Math.exp(logits[t * o.vocab + j] - m);
    lse[t] = m + Math.log(s);
    const tg = targets[t];
    loss[t] = tg >= 0 && tg < o.vocab ? lse[t] - logits[t * o.vocab + tg] : 0;
  }
  return { loss, lse };
}

/** Σ_t weight[t] · loss[t], the scalar the backward differentiates. */
export function weightedLoss(
  logits: Vec,
  targets: ArrayLike<number>,
  o: { rows: number; vocab: number; weights: Vec },
): number {
  const { loss } = crossEntropy(logits, targets, o);
  return dotF64(loss, o.weights);
}

/** d weightedLoss / d logits = weight[t] · (softmax − onehot(target)). */
export function crossEntropyBackward(
  logits: Vec,
  targets: ArrayLike<number>,
  o: { rows: number; vocab: number; weights: Vec },
): Float64Array {
  const { lse } = crossEntropy(logits, targets, o);
  const d = new Float64Array(o.rows * o.vocab);
  for (let t = 0; t < o.rows; t++) {
    const w = o.weights[t];
    if (w === 0) continue;
    for (let j = 0; j < o.vocab; j++) {
      d[t * o.vocab + j] = w * (Math.exp(logits[t * o.vocab + j] - lse[t]) - (j === targets[t] ? 1 : 0));
    }
  }
  return d;
}

// ---------------------------------------------------------------- optimizers (torch.optim formulas)

/** torch.optim.SGD (no momentum): p − lr · (g + weightDecay · p). */
export function sgdStep(p: Vec, g: Vec, o: { lr: number; weightDecay: number }): Float64Array {
  return Float64Array.from(p, (pv, i) => pv - o.lr * (g[i] + o.weightDecay * pv));
}

/** AdamW state: parameters and both moments (updated in place by adamwStep). */
export interface AdamState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** Options of one AdamW step; `step` counts from 1. */
export interface AdamOptions {
  /** Learning rate. */
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** One torch.optim.AdamW step (decoupled weight decay, bias-corrected), in f64, in place. */
export function adamwStep(s: AdamState, g: Vec, o: AdamOptions): void {
  const bc1 = 1 - o.beta1 ** o.step, bc2 = 1 - o.beta2 ** o.step;
  for (let i = 0; i < s.p.length; i++) {
    s.p[i] *= 1 - o.lr * o.weightDecay;
    s.m[i] = o.beta1 * s.m[i] + (1 - o.beta1) * g[i];
    s.v[i] = o.beta2 * s.v[i] + (1 - o.beta2) * g[i] * g[i];
    s.p[i] -= (o.lr / bc1) * s.m[i] / (Math.sqrt(s.v[i]) / Math.sqrt(bc2) + o.eps);
  }
}

// ---------------------------------------------------------------- counter-based normals (mirror of rng.ts)

const f = Math.fround;
const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

function bitsOf(x: number): number {
  F32[0] = x;
  return U32[0];
}

function fromBits(b: number): number {
  U32[0] = b >>> 0;
  return F32[0];
}

/** High 32 bits of the 64-bit product of two u32. */
function mulhi32(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** Philox-4x32-10 (Random123): counter [4] and key [2] as u32, returns the four output words. */
export function philox4x32(ctr: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  let c0 = ctr[0] >>> 0, c1 = ctr[1] >>> 0, c2 = ctr[2] >>> 0, c3 = ctr[3] >>> 0;
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi32(c0, 0xd2511f53), lo0 = Math.imul(c0, 0xd2511f53) >>> 0;
    const hi1 = mulhi32(c2, 0xcd9e8d57), lo1 = Math.imul(c2, 0xcd9e8d57) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
    k0 = (k0 + 0x9e3779b9) >>> 0;
    k1 = (k1 + 0xbb67ae85) >>> 0;
  }
  return Uint32Array.of(c0, c1, c2, c3);
}

/** The f32 log of asm/kernels/math.ts (log4), bit for bit; x positive normal. */
export function logF32(x: number): number {
  const bits = bitsOf(x);
  let e = (bits >>> 23) - 126;
  const m = fromBits((bits & 0x007fffff) | 0x3f000000);
  let r: number;
  if (m < f(0.707106781186547524)) {
    e -= 1;
    r = f(f(m + m) - 1);
  } else r = f(m - 1);
  const z = f(r * r);
  let y = f(7.0376836292e-2);
  for (
    const c of [
      -1.1514610310e-1,
      1.1676998740e-1,
      -1.2420140846e-1,
      1.4249322787e-1,
      -1.6668057665e-1,
      2.0000714765e-1,
      -2.4999993993e-1,
      3.3333331174e-1,
    ]
  ) {
    y = f(f(y * r) + f(c));
  }
  y = f(f(y * r) * z);
  y = f(y + f(e * f(-2.12194440e-4)));
  y = f(y + f(z * -0.5));
  return f(f(r + y) + f(e * 0.693359375));
}

function sinSmall(x: number): number {
  const z = f(x * x);
  let y = f(-1.9515295891e-4);
  y = f(f(y * z) + f(8.3321608736e-3));
  y = f(f(y * z) + f(-1.6666654611e-1));
  return f(f(f(y * z) * x) + x);
}

function cosSmall(x: number): number {
  const z = f(x * x);
  let y = f(2.443315711809948e-5);
  y = f(f(y * z) + f(-1.388731625493765e-3));
  y = f(f(y * z) + f(4.166664568298827e-2));
  y = f(f(f(y * z) * z) - f(z * 0.5));
  return f(y + 1);
}

const TWO_PI_2_24 = f(2 * Math.PI / 2 ** 24);

/**
 * z[index] ~ N(0, 1) of the kernels' generator (asm/kernels/rng.ts) for a u32 seed and index < 2^32, as an
 * f32 value; bit-identical to `normal_fill`.
 */
export function normalAt(seed: number, index: number): number {
  const blk = Math.floor(index / 16), j = (index >>> 2) & 3, l = index & 3;
  const x = philox4x32([blk * 4 + l, 0, 0, 0], [seed, 0]);
  const xu = j < 2 ? x[0] : x[2], xt = j < 2 ? x[1] : x[3];
  const u = f(((xu >>> 8) + 1) * 2 ** -24);
  const r = f(Math.sqrt(f(logF32(u) * -2)));
  const w = (xt >>> 8) + (1 << 21);
  const q = (w >>> 22) & 3;
  const phi = f(((w & 0x3fffff) - (1 << 21)) * TWO_PI_2_24);
  const s = sinSmall(phi), c = cosSmall(phi);
  // cos θ = c, −s, −c, s and sin θ = s, c, −s, −c for quadrants 0..3
  const v = (j & 1) ? [s, c, -s, -c][q] : [c, -s, -c, s][q];
  return f(r * v);
}
