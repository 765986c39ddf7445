/**
 * MeSP backward (docs/mesp.md): exact LoRA gradients with a working set of one layer. The forward pass kept
 * only each layer's input; here layer `l`'s forward is recomputed from it and then backpropagated, with
 *
 * ```
 * h  = x Aᵀ                 [T, r]     recomputed, never stored
 * dB = s · Gᵀ h             [out, r]
 * gh = s · G B              [T, r]
 * dA = ghᵀ x                [r, in]
 * dx = G W + gh A           [T, in]
 * ```
 *
 * attention one head at a time with P recomputed, the SwiGLU MLP in chunks of its intermediate dimension,
 * and the loss over vocabulary chunks. Buffers are regions of the plan (`plan.ts`, train mode).
 *
 * @module
 */
import { f32Ref, type WeightRef } from "../runtime/weight_ref.ts";
import type { Engine, LinearRefs } from "./engine.ts";
import type { LoraPair } from "./lora.ts";
import { loadCheckpoint } from "./checkpoints.ts";

/** Where gradients go. */
export interface GradSink {
  /** Byte offset of the gradient region. */
  ptr: number;
  /** The region holds one layer's gradients (fused update) rather than the whole model's. */
  perLayer: boolean;
  /** Add to the gradients already there (gradient accumulation) instead of overwriting them. */
  accumulate: boolean;
}

/** Backward of the loss and of every layer, writing LoRA gradients into a {@linkcode GradSink}. */
export class Backward {
  readonly e: Engine;
  readonly sink: GradSink;
  readonly #ref: WeightRef = f32Ref(0, 1);
  readonly #ref2: WeightRef = f32Ref(0, 1);
  /** The loss's target ids (a view made once: the memory never grows). */
  #targets?: Int32Array;

  /**
   * With `mebp`, the layer's forward is recomputed once keeping what an autograd engine keeps (every head's
   * probabilities, each adapter's x·Aᵀ, the full [T, intermediate] gate/up/activation tensors, the MLP input)
   * and the backward reads them instead of recomputing (the MeBP baseline). The arithmetic is the same, so the
   * gradients are bitwise equal to MeSP's; memory and time differ.
   */
  constructor(e: Engine, sink: GradSink, options: { mebp?: boolean } = {}) {
    this.e = e;
    this.sink = sink;
    this.mebp = options.mebp ?? false;
    if (this.mebp && !e.arena.has("mebp.P")) throw new Error("MeBP needs a plan made with method mebp");
  }

  /** Whether this is the MeBP baseline (see the constructor). */
  readonly mebp: boolean;

  /** Byte pointer of the gradient of element offset `off` (pair.a or pair.b) of layer `l`. */
  grad(l: number, off: number): number {
    const le = this.sink.perLayer ? l * this.e.lora!.layerElements : 0;
    return this.sink.ptr + (off - le) * 4;
  }

  /** A scratch f32 descriptor (pointer, leading dimension). */
  #f32(ptr: number, ld: number, second = false): WeightRef {
    const r = second ? this.#ref2 : this.#ref;
    r.ptr = ptr;
    r.ld = ld;
    return r;
  }

  /** `[T, r]` slot i of `lora.h` (0–3 forward, 4–7 backward). */
  #slot(i: number, T: number): number {
    return this.e.p["lora.h"] + i * T * this.e.D.r * 4;
  }

  /**
   * The loss and dL/d(final hidden) in one pass over the vocabulary (training): each chunk's logits are
   * computed once; an online log-sum-exp keeps the running max m and sum, and `grad.xn` accumulates
   * Σ exp(x − m)·E_chunk, rescaled whenever m grows. At the end `grad.xn` = w·(softmax·E − E[target]) per row
   * and goes back through the final RMSNorm into `grad.x`. Leaves the per-row losses like `lossForward`.
   */
  async lossForwardBackward(T: number): Promise<void> {
    const e = this.e, { d, Vc } = e.D, p = e.p;
    const r = e.lossRows(), dxn = p["grad.xn"];
    for (let c = 0; c < e.vocabChunks; c++) {
      const vc = await e.loadVocabChunk(c);
      const logits = e.chunkLogits(0, T, vc);
      e.k.ce_chunk_fused(
        logits,
        vc,
        Vc,
        c * Vc,
        r.targets,
        r.max,
        r.sum,
        r.tlogit,
        r.weight,
        dxn,
        d,
        d,
        c === 0 ? 1 : 0,
        0,
        T,
      );
      e.gemm.nn(T, d, vc, logits, Vc, e.vocabRef, dxn, d, 1, c > 0); // acc += p · E_chunk
    }
    e.k.ce_fused_finish(r.loss, r.lse, r.max, r.sum, r.tlogit, r.weight, dxn, d, d, 0, T);
    const erow = p["loss.erow"];
    // the target rows in few reads (tied: the embedding's, gathered already by the forward)
    this.#targets ??= e.I32.subarray(r.targets >> 2, (r.targets >> 2) + e.D.T);
    await e.pack.prefetchRows(this.#targets, T, !e.cfg.tieWordEmbeddings);
    for (let t = 0; t < T; t++) {
      const w = e.F[(r.weight >> 2) + t];
      if (w === 0) continue;
      await e.decodeHeadRow(e.I32[(r.targets >> 2) + t], erow);
      e.k.axpy(dxn + t * d * 4, -w, erow, d); // − w · E[target]
    }
    e.k.rmsnorm_backward(p["grad.x"], dxn, p["act.x"], p["weights.norm"], p["act.rstd"], d, d, d, d, 0, 0, T);
  }

  /**
   * Layer `l`, given dL/d(output) in `grad.x` and its input in its checkpoint: recomputes the forward,
   * writes every LoRA gradient of the layer and leaves dL/d(input) in `grad.x`.
   */
  async layerBackward(l: number, T: number): Promise<void> {
    const e = this.e, { d } = e.D, p = e.p;
    loadCheckpoint(e, l, T, p["act.x"], true);
    if (this.mebp) {
      e.attentionForward(l, T, 0, undefined, { P: p["mebp.P"], h: p["mebp.h"] });
      e.F.copyWithin(p["mebp.x2"] >> 2, p["act.x"] >> 2, (p["act.x"] >> 2) + T * d);
      // MeBP recomputes the whole block as autograd runs it (down projection included), keeping its tensors
      await e.mlpForward(l, T, p["act.xn2"], p["act.rstd2"], {
        g: p["mebp.g"],
        u: p["mebp.u"],
        m: p["mebp.m"],
        h: p["mebp.h"],
      });
    } else {
      e.attentionForward(l, T);
    }
    await this.#mlpBackward(l, T);
    this.#attentionBackward(l, T);
  }

  /** MeBP's `[T, r]` slot i of `mebp.h`: 0–3 q, k, v, o; 4 gate, 5 up, 6 down. */
  #kept(i: number, T: number): number {
    return this.e.p["mebp.h"] + i * T * this.e.D.r * 4;
  }

  /**
   * The MLP block, chunked over the intermediate dimension. On entry `grad.x` is dL/d(output) and `act.x`
   * the block's input x2 (MeBP: x2 is kept in `mebp.x2`, g/u/m and the adapters' h in its regions); on exit
   * `grad.x` holds dL/d(x2) (the residual plus the path through the MLP).
   */
  async #mlpBackward(l: number, T: number): Promise<void> {
    const e = this.e, { d, r, C, I } = e.D, p = e.p, { k, gemm } = e;
    const refs = e.refs(l), s = e.lora?.scale ?? 0, acc = this.sink.accumulate, kept = this.mebp;
    const xn = p["act.xn2"], G = p["grad.x"], dxn = p["grad.xn"];
    const x2 = kept ? p["mebp.x2"] : p["act.x"];
    const hg = kept ? this.#kept(4, T) : this.#slot(1, T);
    const hu = kept ? this.#kept(5, T) : this.#slot(2, T);
    const hd = kept ? this.#kept(6, T) : this.#slot(3, T);
    const ghg = this.#slot(5, T), ghu = this.#slot(6, T), ghd = this.#slot(7, T);
    const gp = refs.gate_proj, up = refs.up_proj, dp = refs.down_proj;
    const ld = kept ? I : C; // g, u, m: MeBP's full [T, I] tensors, MeSP's [T, C] chunk buffers
    if (!kept) {
      k.rmsnorm_forward(xn, p["act.rstd2"], x2, e.vec("postNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
      e.mlpAdapterInputs(l, T, xn, hg, hu);
    }
    if (dp.pair) gemm.nn(T, r, d, G, d, dp.b!, ghd, r, s, false); // gh_d = s·G·B_d
    for (let i = 0; i < e.chunks.length; i++) {
      const c = e.chunks[i], c0 = c.c0, n = c.c1 - c0, first = i === 0;
      await e.loadChunk(l, i);
      const g = kept ? p["mebp.g"] + c0 * 4 : p["mlp.g"];
      const u = kept ? p["mebp.u"] + c0 * 4 : p["mlp.u"];
      const m = kept ? p["mebp.m"] + c0 * 4 : p["mlp.m"];
      // recompute g, u and m = silu(g)·u for this chunk (and h_d, summed over chunks)
      if (!kept) e.mlpChunkForward(l, i, T, xn, hg, hu, hd, g, u, m, C);
      if (dp.pair) {
        // dA_d[:, c] = gh_dᵀ · m
        const dAd = this.grad(l, dp.pair.a) + c0 * 4;
        gemm.tn(r, n, T, ghd, r, this.#f32(m, ld, true), dAd, dp.pair.inDim, 1, acc);
      }
      // dm = G · W_d[:, c] (+ gh_d · A_d[:, c]), over m
      gemm.nn(T, n, d, G, d, c.down.ref, m, ld, 1, false);
      if (dp.pair) {
        gemm.nn(T, n, r, ghd, r, this.#f32(dp.a!.ptr + c0 * 4, dp.a!.ld), m, ld, 1, true);
      }
      k.swiglu_backward(g, u, m, g, u, n, ld, ld, ld, ld, ld, 0, T); // dg over g, du over u
      // dxn += dg · W_g[c] + du · W_u[c]
      gemm.nn(T, d, n, g, ld, c.gate.ref, dxn, d, 1, !first);
      gemm.nn(T, d, n, u, ld, c.up.ref, dxn, d, 1, true);
      if (gp.pair) this.#chunkBGrads(l, T, gp.pair, gp, c0, n, g, ld, hg, ghg, first);
      if (up.pair) this.#chunkBGrads(l, T, up.pair, up, c0, n, u, ld, hu, ghu, first);
    }
    if (dp.pair) {
      gemm.tn(d, r, T, G, d, this.#f32(hd, r), this.grad(l, dp.pair.b), r, s, acc); // dB_d
    }
    this.#finishA(l, T, gp, ghg, xn, dxn);
    this.#finishA(l, T, up, ghu, xn, dxn);
    k.rmsnorm_backward(G, dxn, x2, e.vec("postNorm"), p["act.rstd2"], d, d, d, d, 1, 0, T);
  }

  /** After the chunks of gate/up: dA = ghᵀ·xn and dxn += gh·A. */
  #finishA(l: number, T: number, refs: LinearRefs, gh: number, xn: number, dxn: number): void {
    if (!refs.pair) return;
    const e = this.e, { d, r } = e.D;
    e.gemm.tn(r, d, T, gh, r, this.#f32(xn, d), this.grad(l, refs.pair.a), d, 1, this.sink.accumulate);
    e.gemm.nn(T, d, r, gh, r, refs.a!, dxn, d, 1, true);
  }

  /** For a chunk of gate/up rows: dB[c] = s·dYᵀ·h, gh += s·dY·B[c]. */
  #chunkBGrads(
    l: number,
    T: number,
    pair: LoraPair,
    refs: LinearRefs,
    c0: number,
    n: number,
    dY: number,
    C: number,
    h: number,
    gh: number,
    first: boolean,
  ) {
    const e = this.e, r = e.D.r, s = e.lora!.scale;
    e.gemm.tn(n, r, T, dY, C, this.#f32(h, r), this.grad(l, pair.b) + c0 * r * 4, r, s, this.sink.accumulate);
    e.gemm.nn(T, r, n, dY, C, this.#f32(refs.b!.ptr + c0 * r * 4, r), gh, r, s, !first);
  }

  /**
   * The attention block. On entry `grad.x` is dL/d(x2), `act.q/k/v/att` and `act.xn` hold the recomputed
   * forward; on exit `grad.x` is dL/d(x_l).
   */
  #attentionBackward(l: number, T: number): void {
    const e = this.e, { d, H, KV, hd, qd, kvd } = e.D, p = e.p, { k, gemm } = e;
    const refs = e.refs(l);
    const G = p["grad.x"], att = p["act.att"], datt = p["act.xn2"]; // the MLP input is dead: reuse its region
    // o_proj: d_att = G·W_o (+ LoRA)
    gemm.nn(T, qd, d, G, d, refs.o_proj.w!, datt, qd, 1, false);
    this.#linearLora(l, T, refs.o_proj, att, qd, G, d, datt, qd, 3);
    // per head, with P recomputed (MeBP: kept): dV += Pᵀ·dO, dP = dO·Vᵀ, dS = softmax', dQ = dS·K, dK += dSᵀ·Q
    const q = p["act.q"], dq = p["grad.q"], dk = p["grad.k"], dv = p["grad.v"];
    const dS = p["grad.scores"];
    const scale = 1 / Math.sqrt(hd), rep = H / KV;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / rep), first = h % rep === 0;
      const qh = q + h * hd * 4, dOh = datt + h * hd * 4;
      const S = this.mebp ? p["mebp.P"] + h * T * T * 4 : p["act.scores"];
      if (!this.mebp) {
        gemm.nt(T, T, hd, qh, qd, e.kRefs[g], S, T, 1, false);
        k.softmax_causal_forward(S, S, T, T, scale, 0, 0, T);
      }
      gemm.tn(T, hd, T, S, T, this.#f32(dOh, qd), dv + g * hd * 4, kvd, 1, !first);
      gemm.nt(T, T, hd, dOh, qd, e.vRefs[g], dS, T, 1, false);
      k.softmax_causal_backward(dS, S, dS, T, T, scale, 0, 0, T);
      gemm.nn(T, hd, T, dS, T, e.kRefs[g], dq + h * hd * 4, qd, 1, false);
      gemm.tn(T, hd, T, dS, T, this.#f32(qh, qd), dk + g * hd * 4, kvd, 1, !first);
    }
    const { cos, sin } = e.rope();
    k.rope_backward(dq, cos, sin, H, hd, qd, 0, 0, T);
    k.rope_backward(dk, cos, sin, KV, hd, kvd, 0, 0, T);
    // dxn = dq·W_q + dk·W_k + dv·W_v (+ LoRA)
    const xn = p["act.xn"], dxn = p["grad.xn"];
    gemm.nn(T, d, qd, dq, qd, refs.q_proj.w!, dxn, d, 1, false);
    gemm.nn(T, d, kvd, dk, kvd, refs.k_proj.w!, dxn, d, 1, true);
    gemm.nn(T, d, kvd, dv, kvd, refs.v_proj.w!, dxn, d, 1, true);
    this.#linearLora(l, T, refs.q_proj, xn, d, dq, qd, dxn, d, 0);
    this.#linearLora(l, T, refs.k_proj, xn, d, dk, kvd, dxn, d, 1);
    this.#linearLora(l, T, refs.v_proj, xn, d, dv, kvd, dxn, d, 2);
    // the layer's input: the f32 checkpoint, or the bf16 one decoded into dq's region (dead by now)
    const xl = loadCheckpoint(e, l, T, dq);
    k.rmsnorm_backward(G, dxn, xl, e.vec("inputNorm"), p["act.rstd"], d, d, d, d, 1, 0, T);
  }

  /**
   * LoRA part of a linear's backward, given its input x [T, nIn] and output gradient dY [T, nOut]:
   * h = x·Aᵀ (recomputed; MeBP: kept in slot `kept`), dB = s·dYᵀ·h, gh = s·dY·B, dA = ghᵀ·x, dx += gh·A.
   */
  #linearLora(
    l: number,
    T: number,
    refs: LinearRefs,
    x: number,
    nIn: number,
    dY: number,
    nOut: number,
    dx: number,
    ldx: number,
    kept: number,
  ): void {
    const pair = refs.pair;
    if (!pair) return;
    const e = this.e, r = e.D.r, s = e.lora!.scale, acc = this.sink.accumulate, { gemm } = e;
    const h = this.mebp ? this.#kept(kept, T) : this.#slot(0, T), gh = this.#slot(4, T);
    if (!this.mebp) gemm.nt(T, r, nIn, x, nIn, refs.a!, h, r, 1, false);
    gemm.tn(nOut, r, T, dY, nOut, this.#f32(h, r), this.grad(l, pair.b), r, s, acc);
    gemm.nn(T, r, nOut, dY, nOut, refs.b!, gh, r, s, false);
    gemm.tn(r, nIn, T, gh, r, this.#f32(x, nIn), this.grad(l, pair.a), nIn, 1, acc);
    gemm.nn(T, nIn, r, gh, r, refs.a!, dx, ldx, 1, true);
  }
}
