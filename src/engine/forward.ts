/**
 * The model's forward pass over an {@linkcode Engine}: embedding, then per layer the pre-norm attention
 * block and the SwiGLU MLP (each added to the residual stream `act.x`), then the final norm. Weights are
 * loaded by the caller a layer at a time (`e.loadLayer`); the MLP loads its own chunks.
 *
 * The same functions recompute a layer in the backward pass (`backward.ts`), so what MeBP keeps and what MeSP
 * recomputes is bitwise the same. Where a block's tensors go is resolved once per engine (`blocks.ts`:
 * {@linkcode AttentionBuffers}, {@linkcode MlpBuffers}), never per layer or line.
 *
 * @module
 */
import type { Engine, LinearRefs } from "./engine.ts";
import { dtypeCode, type WeightRef } from "../runtime/weight_ref.ts";
import { scratchRef } from "./weight_stream.ts";
import type { AttentionBuffers, BatchSlot, KeyValues, MlpBuffers } from "./blocks.ts";

/** Embeds tokens `ids[0..T)` into rows `row0…` of the residual stream `act.x`. */
export async function embed(e: Engine, ids: ArrayLike<number>, T: number, row0 = 0): Promise<void> {
  await e.weights.prefetchRows(ids, T, false);
  await embedGathered(e, ids, T, row0);
}

/** {@linkcode embed} once `prefetchRows` has gathered the rows (with others: a batch's, in one gather). */
async function embedGathered(e: Engine, ids: ArrayLike<number>, T: number, row0: number): Promise<void> {
  const { d, V } = e.D, x = e.p["act.x"];
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < V)) {
      throw new Error(`token id ${id} at position ${t} is outside the vocabulary (${V})`);
    }
    const ref = e.weights.gatheredRow(id, false) ?? await e.weights.readRow(id, false);
    e.k.decode_row(dtypeCode(ref), ref.ptr, d, ref.scales, ref.biases, 0, 0, d, x + (row0 + t) * d * 4);
  }
}

/**
 * One linear over rows [0, T): out (+)= in·Wᵀ (+ bias) + s·(in·Aᵀ)·Bᵀ, with in·Aᵀ into `h`. With
 * `accumulate` the result is added to `out` (a residual connection); a bias is written first (rows copied).
 */
export function linear(
  e: Engine,
  T: number,
  x: number,
  ldx: number,
  refs: LinearRefs,
  out: number,
  ldo: number,
  nOut: number,
  nIn: number,
  bias: number,
  accumulate: boolean,
  h: number,
): void {
  if (bias) {
    for (let t = 0; t < T; t++) e.F.copyWithin((out >>> 2) + t * ldo, bias >>> 2, (bias >>> 2) + nOut);
  }
  e.gemm.nt(T, nOut, nIn, x, ldx, refs.w!, out, ldo, 1, accumulate || bias !== 0);
  if (refs.pair) {
    const r = e.D.r;
    e.gemm.nt(T, r, nIn, x, ldx, refs.a!, h, r, 1, false);
    e.gemm.nt(T, nOut, r, h, r, refs.b!, out, ldo, e.lora!.scale, true);
  }
}

/**
 * Layer `l` on rows [0, T) of `act.x`, in place: the attention block, then the MLP. Queries are at absolute
 * positions pos0…; keys/values are written at rows pos0… of the layer's (`blocks.kv[l]`: its cache, or
 * `act.k`/`act.v` with pos0 = 0) and attention reads rows 0 … pos0+T−1 of them.
 */
export async function layerForward(e: Engine, l: number, T: number, pos0 = 0): Promise<void> {
  attentionForward(e, l, T, pos0, e.blocks.kv[l], e.blocks.attention);
  await mlpForward(e, l, T, e.blocks.mlp);
}

/** Per-head key/value descriptors, re-pointed for each use (no allocation). */
const kRef: WeightRef = scratchRef(), vRef: WeightRef = scratchRef();

/** Head group g's keys (or values) in `[positions, KV·hd]` rows at `base`, as a GEMM operand. */
export function headRef(ref: WeightRef, base: number, g: number, hd: number, kvd: number): WeightRef {
  ref.ptr = base + g * hd * 4;
  ref.ld = kvd;
  return ref;
}

/**
 * The attention block of layer `l`: x += o_proj(attention(rope(q), rope(k), v)) with q, k, v from
 * rmsnorm(x) (into `to.xn`, 1/rms into `to.rstd`); q and the attention output stay in `to.q`, `to.att`,
 * keys and values in `kv`, probabilities and adapter products in `to`'s.
 */
export function attentionForward(
  e: Engine,
  l: number,
  T: number,
  pos0: number,
  kv: KeyValues,
  to: AttentionBuffers,
): void {
  const { d, H, KV, hd, qd, kvd } = e.D;
  const { k, gemm } = e;
  e.weights.useLayer(l);
  const refs = e.refs(l);
  const { x, xn, q, att, rstd } = to;
  const kNew = kv.k + pos0 * kvd * 4, vNew = kv.v + pos0 * kvd * 4;
  k.rmsnorm_forward(xn, rstd, x, e.vec("inputNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
  linear(e, T, xn, d, refs.q_proj, q, qd, qd, d, e.vec("qBias"), false, to.h[0]);
  linear(e, T, xn, d, refs.k_proj, kNew, kvd, kvd, d, e.vec("kBias"), false, to.h[1]);
  linear(e, T, xn, d, refs.v_proj, vNew, kvd, kvd, d, e.vec("vBias"), false, to.h[2]);
  const { cos, sin } = e.rope();
  k.rope_forward(q, cos, sin, H, hd, qd, pos0, 0, T);
  k.rope_forward(kNew, cos, sin, KV, hd, kvd, pos0, 0, T);
  const nk = pos0 + T;
  const scale = 1 / Math.sqrt(hd), rep = H / KV;
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / rep), s = to.probs + h * to.probsStride;
    gemm.nt(T, nk, hd, q + h * hd * 4, qd, headRef(kRef, kv.k, g, hd, kvd), s, nk, 1, false);
    k.softmax_causal_forward(s, s, nk, nk, scale, pos0, 0, T);
    gemm.nn(T, hd, nk, s, nk, headRef(vRef, kv.v, g, hd, kvd), att + h * hd * 4, qd, 1, false);
  }
  linear(e, T, att, qd, refs.o_proj, x, d, d, qd, 0, true, to.h[3]);
}

/**
 * The MLP block of layer `l`: xn = rmsnorm(x) (into `to.xn`, 1/rms into `to.rstd`), x += down(silu(gate(xn))
 * · up(xn)), streaming the weights one chunk of the intermediate dimension at a time.
 */
export async function mlpForward(e: Engine, l: number, T: number, to: MlpBuffers): Promise<void> {
  e.weights.useLayer(l);
  mlpInputs(e, T, to);
  mlpAdapterInputs(e, l, T, to);
  for (let i = 0; i < e.chunks.length; i++) {
    await e.weights.loadChunk(l, i);
    mlpChunkDown(e, l, i, T, to);
  }
  mlpAdapterDown(e, l, T, to);
}

/** The MLP block's input norm: `to.xn` = rmsnorm(`to.x`), 1/rms into `to.rstd`. */
function mlpInputs(e: Engine, T: number, to: MlpBuffers): void {
  const d = e.D.d;
  e.k.rmsnorm_forward(to.xn, to.rstd, to.x, e.vec("postNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
}

/** Chunk `i` (loaded) of the MLP: its g, u and m, and x += m·W_down[:, c]ᵀ. */
function mlpChunkDown(e: Engine, l: number, i: number, T: number, to: MlpBuffers): void {
  const c = e.chunks[i];
  mlpChunkForward(e, l, i, T, to);
  e.gemm.nt(T, e.D.d, c.c1 - c.c0, to.m + c.c0 * to.mStep, to.ldm, c.down, to.x, e.D.d, 1, true);
}

/** x += s·h_d·B_downᵀ once every chunk has added to h_d. */
function mlpAdapterDown(e: Engine, l: number, T: number, to: MlpBuffers): void {
  const dp = e.refs(l).down_proj, { d, r } = e.D;
  if (dp.pair) e.gemm.nt(T, d, r, to.hd, r, dp.b!, to.x, d, e.lora!.scale, true);
}

/** The gate and up adapters' inputs h_g = xn·A_gᵀ, h_u = xn·A_uᵀ ([T, r]), shared by every chunk. */
export function mlpAdapterInputs(e: Engine, l: number, T: number, to: MlpBuffers): void {
  const { d, r } = e.D, refs = e.refs(l);
  if (refs.gate_proj.pair) e.gemm.nt(T, r, d, to.xn, d, refs.gate_proj.a!, to.hg, r, 1, false);
  if (refs.up_proj.pair) e.gemm.nt(T, r, d, to.xn, d, refs.up_proj.a!, to.hu, r, 1, false);
}

/** A spare f32 descriptor for column/row blocks of LoRA matrices. */
const blockRef: WeightRef = scratchRef();

/** `ref` pointed at f32 `[·, ld]` rows from `ptr`. */
export function f32At(ref: WeightRef, ptr: number, ld: number): WeightRef {
  ref.ptr = ptr;
  ref.ld = ld;
  return ref;
}

/**
 * MLP chunk `i` of layer `l` (loaded): g = xn·W_g[c]ᵀ (+ s·h_g·B_g[c]ᵀ), u likewise, m = silu(g)·u, all
 * [T, n] (m may alias g), and h_d (+)= m·A_d[:, c]ᵀ. The one implementation of this arithmetic for the
 * forward pass and both backward passes, so kept tensors are bitwise the recomputed ones.
 */
export function mlpChunkForward(e: Engine, l: number, i: number, T: number, to: MlpBuffers): void {
  mlpChunkGateUp(e, l, i, T, to);
  mlpChunkActivation(e, l, i, T, to);
}

/** The first half of {@linkcode mlpChunkForward}: chunk `i`'s g and u (the layer's largest products). */
function mlpChunkGateUp(e: Engine, l: number, i: number, T: number, to: MlpBuffers): void {
  const { d, r } = e.D, { gemm } = e;
  const refs = e.refs(l), s = e.lora?.scale ?? 0;
  const c = e.chunks[i], n = c.c1 - c.c0, ld = to.ld;
  const g = to.g + c.c0 * to.step, u = to.u + c.c0 * to.step;
  const gp = refs.gate_proj, up = refs.up_proj;
  gemm.nt(T, n, d, to.xn, d, c.gate, g, ld, 1, false);
  // out[:, 0:n) += s · h · B[c0:c0+n)ᵀ (the chunk's rows of B)
  if (gp.pair) gemm.nt(T, n, r, to.hg, r, f32At(blockRef, gp.b!.ptr + c.c0 * r * 4, r), g, ld, s, true);
  gemm.nt(T, n, d, to.xn, d, c.up, u, ld, 1, false);
  if (up.pair) gemm.nt(T, n, r, to.hu, r, f32At(blockRef, up.b!.ptr + c.c0 * r * 4, r), u, ld, s, true);
}

/** The second half of {@linkcode mlpChunkForward}: m = silu(g)·u and h_d (+)= m·A_d[:, c]ᵀ. */
export function mlpChunkActivation(e: Engine, l: number, i: number, T: number, to: MlpBuffers): void {
  const r = e.D.r, { k, gemm } = e, dp = e.refs(l).down_proj;
  const c = e.chunks[i], n = c.c1 - c.c0, ld = to.ld, ldm = to.ldm;
  const g = to.g + c.c0 * to.step, u = to.u + c.c0 * to.step, m = to.m + c.c0 * to.mStep;
  k.swiglu_forward(m, g, u, n, ldm, ld, ld, 0, T);
  if (dp.pair) gemm.nt(T, r, n, m, ldm, f32At(blockRef, dp.a!.ptr + c.c0 * 4, dp.a!.ld), to.hd, r, 1, i > 0);
}

/**
 * Final RMSNorm of rows [0, T) of `act.x` into `act.xn` (rstd kept in `act.rstd`); of another slot's
 * residual stream into its `xn` with `slot`.
 */
export function finalNorm(e: Engine, T: number, slot: BatchSlot = e.blocks.batch[0]): void {
  const d = e.D.d, p = e.p;
  e.k.rmsnorm_forward(slot.xn, p["act.rstd"], slot.x, p["weights.norm"], d, d, d, e.cfg.rmsNormEps, 0, T);
}

/** Full forward of `ids[0..T)` through every layer into `act.x` (streaming weights), then the final norm. */
export async function forward(e: Engine, ids: ArrayLike<number>, T: number): Promise<void> {
  await embed(e, ids, T);
  for (let l = 0; l < e.D.L; l++) {
    await e.loadLayer(l, e.D.L - 1);
    await layerForward(e, l, T);
  }
  finalNorm(e, T);
}

/**
 * {@linkcode forward} of `n` sequences at once, sequence s (`ids[s][0..lengths[s])`) in slot s of the batch
 * (`blocks.batch`), reading every layer's weights once for all of them: their embedding rows in one gather
 * (`tokens[0..count)`, every sequence's ids), then per layer each one's attention, then the MLP chunk by
 * chunk, each chunk applied to every sequence. Each sequence's arithmetic is {@linkcode forward}'s, in the
 * same order: its results are bitwise the same.
 */
export async function forwardBatch(
  e: Engine,
  n: number,
  ids: readonly ArrayLike<number>[],
  lengths: ArrayLike<number>,
  tokens: ArrayLike<number>,
  count: number,
): Promise<void> {
  const { L, T } = e.D, slots = e.blocks.batch;
  await e.weights.prefetchRows(tokens, count, false);
  for (let s = 0; s < n; s++) await embedGathered(e, ids[s], lengths[s], s * T);
  for (let l = 0; l < L; l++) {
    await e.loadLayer(l, L - 1);
    for (let s = 0; s < n; s++) attentionForward(e, l, lengths[s], 0, e.blocks.kv[l], slots[s].attention);
    for (let s = 0; s < n; s++) {
      mlpInputs(e, lengths[s], slots[s].mlp);
      mlpAdapterInputs(e, l, lengths[s], slots[s].mlp);
    }
    for (let i = 0; i < e.chunks.length; i++) {
      await e.weights.loadChunk(l, i);
      for (let s = 0; s < n; s++) mlpChunkDown(e, l, i, lengths[s], slots[s].mlp);
    }
    for (let s = 0; s < n; s++) mlpAdapterDown(e, l, lengths[s], slots[s].mlp);
  }
  for (let s = 0; s < n; s++) finalNorm(e, lengths[s], slots[s]);
}
