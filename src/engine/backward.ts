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
 * attention one head at a time with P recomputed, the SwiGLU MLP in chunks of its intermediate dimension.
 * The loss's backward is fused with its forward (`loss.ts`). Buffers are the plan's (`plan.ts`, train mode).
 *
 * Each block's backward reads its forward tensors from an {@linkcode AttentionBuffers} /
 * {@linkcode MlpBuffers} resolved once per block, and a `recompute` flag says whether the cheap parts (the
 * probabilities, the chunks' gate/up/SwiGLU, the adapters' h) are recomputed there or were kept.
 *
 * @module
 */
import type { WeightRef } from "../runtime/weight_ref.ts";
import type { Engine, LinearRefs } from "./engine.ts";
import type { LoraPair } from "./lora.ts";
import { restoreInput, savedInput } from "./saved_inputs.ts";
import type { AttentionBuffers, KeyValues, MlpBuffers } from "./blocks.ts";
import {
  attentionForward,
  f32At,
  headRef,
  mlpAdapterInputs,
  mlpChunkActivation,
  mlpChunkForward,
  mlpForward,
} from "./forward.ts";

/**
 * What the MLP backward recomputes of its forward: everything (MeSP), all but the gate/up products (kept
 * by a budget schedule), or nothing (MeBP).
 */
type MlpRecompute = "all" | "activation" | "none";
import { scratchRef } from "./weight_stream.ts";

/** Where gradients go. */
export interface GradSink {
  /** Byte offset of the gradient region. */
  ptr: number;
  /** The region holds one layer's gradients (fused update) rather than the whole model's. */
  perLayer: boolean;
  /** Add to the gradients already there (gradient accumulation) instead of overwriting them. */
  accumulate: boolean;
}

/** Backward of every layer, writing LoRA gradients into a {@linkcode GradSink}. */
export class Backward {
  readonly e: Engine;
  readonly sink: GradSink;
  /** Whether this is the MeBP baseline (see the constructor). */
  readonly mebp: boolean;
  readonly #ref: WeightRef = scratchRef();
  readonly #ref2: WeightRef = scratchRef();
  readonly #kRef: WeightRef = scratchRef();
  readonly #vRef: WeightRef = scratchRef();
  /** The backward's MLP working buffers (the forward's, but for the SwiGLU output). */
  readonly #recomputedMlp: MlpBuffers;
  /**
   * MeBP's kept tensors: every head's probabilities, each adapter's h (slots 0–3 of `mebp.h` attention's,
   * 4–6 the MLP's), the whole [T, I] gate, up and SwiGLU output.
   */
  readonly #mebpAttention?: AttentionBuffers;
  readonly #mebpMlp?: MlpBuffers;

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
    const { p, D } = e;
    // m of its own: dm is written over it
    this.#recomputedMlp = { ...e.blocks.mlp, m: p["mlp.m"] };
    if (this.mebp) {
      const h = (i: number) => p["mebp.h"] + i * D.T * D.r * 4;
      this.#mebpAttention = {
        ...e.blocks.attention,
        probs: p["mebp.P"],
        probsStride: D.T * D.T * 4,
        h: [h(0), h(1), h(2), h(3)],
      };
      this.#mebpMlp = {
        ...e.blocks.mlp,
        hg: h(4),
        hu: h(5),
        hd: h(6),
        g: p["mebp.g"],
        u: p["mebp.u"],
        ld: D.I,
        step: 4,
        m: p["mebp.m"],
        ldm: D.I,
        mStep: 4,
      };
    }
  }

  /** Byte pointer of the gradient of element offset `off` (pair.a or pair.b) of layer `l`. */
  grad(l: number, off: number): number {
    const le = this.sink.perLayer ? l * this.e.lora!.layerElements : 0;
    return this.sink.ptr + (off - le) * 4;
  }

  /** A scratch f32 descriptor (pointer, leading dimension). */
  #f32(ptr: number, ld: number, second = false): WeightRef {
    return f32At(second ? this.#ref2 : this.#ref, ptr, ld);
  }

  /**
   * Layer `l`, given dL/d(output) in `grad.x` and its input in saved-input slot `slot`: recomputes the
   * forward (but what the schedule kept, `kept.ts`), writes every LoRA gradient of the layer and leaves
   * dL/d(input) in `grad.x`.
   */
  async layerBackward(l: number, T: number, slot: number): Promise<void> {
    const e = this.e, { d } = e.D, p = e.p, b = e.blocks, kv: KeyValues = b.kv[l];
    const keptAtt = b.keptAttention[l];
    if (this.mebp || !keptAtt) restoreInput(e, slot, T);
    if (this.mebp) {
      const att = this.#mebpAttention!, mlp = this.#mebpMlp!;
      attentionForward(e, l, T, 0, kv, att);
      e.F.copyWithin(p["mebp.x2"] >>> 2, p["act.x"] >>> 2, (p["act.x"] >>> 2) + T * d);
      // MeBP recomputes the whole block as autograd runs it (down projection included), keeping its tensors
      await mlpForward(e, l, T, mlp);
      await this.#mlpBackward(l, T, mlp, p["mebp.x2"], "none");
      this.#attentionBackward(l, T, slot, kv, att, false);
      return;
    }
    // MeSP: the attention block recomputed from the layer's input, unless kept with the MLP's input x2
    const att = keptAtt?.buffers ?? b.attention;
    if (!keptAtt) attentionForward(e, l, T, 0, kv, att);
    const mlp = b.keptMlp[l];
    const x2 = keptAtt?.x2 ?? p["act.x"];
    await this.#mlpBackward(l, T, mlp ?? this.#recomputedMlp, x2, mlp ? "activation" : "all");
    this.#attentionBackward(l, T, slot, keptAtt?.kv ?? kv, att, true);
  }

  /**
   * The MLP block, chunked over the intermediate dimension. On entry `grad.x` is dL/d(output), `x2` the
   * block's input and `t` its tensors (what `recompute` says is recomputed here, chunk by chunk); on exit
   * `grad.x` holds dL/d(x2) (the residual plus the path through the MLP).
   */
  async #mlpBackward(
    l: number,
    T: number,
    t: MlpBuffers,
    x2: number,
    recompute: MlpRecompute,
  ): Promise<void> {
    const e = this.e, { d, r } = e.D, p = e.p, { k, gemm } = e;
    const refs = e.refs(l), s = e.lora?.scale ?? 0, acc = this.sink.accumulate;
    const G = p["grad.x"], dxn = p["grad.xn"], { xn, hg, hu, hd, ld, ldm } = t;
    const ghg = p["lora.gh.gate"], ghu = p["lora.gh.up"], ghd = p["lora.gh.down"];
    const gp = refs.gate_proj, up = refs.up_proj, dp = refs.down_proj;
    if (recompute !== "none") {
      k.rmsnorm_forward(xn, t.rstd, x2, e.vec("postNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
      mlpAdapterInputs(e, l, T, t);
    }
    if (dp.pair) gemm.nn(T, r, d, G, d, dp.b!, ghd, r, s, false); // gh_d = s·G·B_d
    for (let i = 0; i < e.chunks.length; i++) {
      const c = e.chunks[i], c0 = c.c0, n = c.c1 - c0, first = i === 0;
      await e.weights.loadChunk(l, i);
      const g = t.g + c0 * t.step, u = t.u + c0 * t.step, m = t.m + c0 * t.mStep;
      // recompute g, u (unless kept) and m = silu(g)·u for this chunk (and h_d, summed over chunks)
      if (recompute === "all") mlpChunkForward(e, l, i, T, t);
      else if (recompute === "activation") mlpChunkActivation(e, l, i, T, t);
      // dA_d[:, c] = gh_dᵀ · m
      if (dp.pair) {
        gemm.tn(
          r,
          n,
          T,
          ghd,
          r,
          this.#f32(m, ldm, true),
          this.grad(l, dp.pair.a) + c0 * 4,
          dp.pair.inDim,
          1,
          acc,
        );
      }
      // dm = G · W_d[:, c] (+ gh_d · A_d[:, c]), over m
      gemm.nn(T, n, d, G, d, c.down, m, ldm, 1, false);
      if (dp.pair) gemm.nn(T, n, r, ghd, r, this.#f32(dp.a!.ptr + c0 * 4, dp.a!.ld), m, ldm, 1, true);
      k.swiglu_backward(g, u, m, g, u, n, ld, ld, ldm, ld, ld, 0, T); // dg over g, du over u
      // dxn += dg · W_g[c] + du · W_u[c]
      gemm.nn(T, d, n, g, ld, c.gate, dxn, d, 1, !first);
      gemm.nn(T, d, n, u, ld, c.up, dxn, d, 1, true);
      if (gp.pair) this.#chunkBGrads(l, T, gp.pair, gp, c0, n, g, ld, hg, ghg, first);
      if (up.pair) this.#chunkBGrads(l, T, up.pair, up, c0, n, u, ld, hu, ghu, first);
    }
    if (dp.pair) gemm.tn(d, r, T, G, d, this.#f32(hd, r), this.grad(l, dp.pair.b), r, s, acc); // dB_d
    this.#finishA(l, T, gp, ghg, xn, dxn);
    this.#finishA(l, T, up, ghu, xn, dxn);
    k.rmsnorm_backward(G, dxn, x2, e.vec("postNorm"), t.rstd, d, d, d, d, 1, 0, T);
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
    ld: number,
    h: number,
    gh: number,
    first: boolean,
  ) {
    const e = this.e, r = e.D.r, s = e.lora!.scale, acc = this.sink.accumulate;
    e.gemm.tn(n, r, T, dY, ld, this.#f32(h, r), this.grad(l, pair.b) + c0 * r * 4, r, s, acc);
    e.gemm.nn(T, r, n, dY, ld, this.#f32(refs.b!.ptr + c0 * r * 4, r), gh, r, s, !first);
  }

  /**
   * The attention block. On entry `grad.x` is dL/d(x2), `t` (q, attention output, normed input, 1/rms) and
   * keys/values `kv` hold the forward, `t` its probabilities and adapter products too (recomputed here when
   * `recompute`); on exit `grad.x` is dL/d(x_l).
   */
  #attentionBackward(
    l: number,
    T: number,
    slot: number,
    kv: KeyValues,
    t: AttentionBuffers,
    recompute: boolean,
  ): void {
    const e = this.e, { d, H, KV, hd, qd, kvd } = e.D, p = e.p, { k, gemm } = e;
    const refs = e.refs(l);
    const G = p["grad.x"], att = t.att, datt = p["grad.att"];
    // o_proj: d_att = G·W_o (+ LoRA)
    gemm.nn(T, qd, d, G, d, refs.o_proj.w!, datt, qd, 1, false);
    this.#linearLora(l, T, refs.o_proj, att, qd, G, d, datt, qd, t.h[3], recompute);
    // per head, with P recomputed (or kept): dV += Pᵀ·dO, dP = dO·Vᵀ, dS = softmax', dQ = dS·K, dK += dSᵀ·Q
    const q = t.q, dq = p["grad.q"], dk = p["grad.k"], dv = p["grad.v"];
    const dS = p["grad.scores"];
    const scale = 1 / Math.sqrt(hd), rep = H / KV;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / rep), first = h % rep === 0;
      const qh = q + h * hd * 4, dOh = datt + h * hd * 4, S = t.probs + h * t.probsStride;
      const kh = headRef(this.#kRef, kv.k, g, hd, kvd), vh = headRef(this.#vRef, kv.v, g, hd, kvd);
      if (recompute) {
        gemm.nt(T, T, hd, qh, qd, kh, S, T, 1, false);
        k.softmax_causal_forward(S, S, T, T, scale, 0, 0, T);
      }
      gemm.tn(T, hd, T, S, T, this.#f32(dOh, qd), dv + g * hd * 4, kvd, 1, !first);
      gemm.nt(T, T, hd, dOh, qd, vh, dS, T, 1, false);
      k.softmax_causal_backward(dS, S, dS, T, T, scale, 0, 0, T);
      gemm.nn(T, hd, T, dS, T, kh, dq + h * hd * 4, qd, 1, false);
      gemm.tn(T, hd, T, dS, T, this.#f32(qh, qd), dk + g * hd * 4, kvd, 1, !first);
    }
    const { cos, sin } = e.rope();
    k.rope_backward(dq, cos, sin, H, hd, qd, 0, 0, T);
    k.rope_backward(dk, cos, sin, KV, hd, kvd, 0, 0, T);
    // the layer's input: the f32 slot, or the bf16 one decoded (over d(attention output), dead by now)
    const xl = savedInput(e, slot, T);
    // the normed input and 1/rms: kept, or recomputed (the MLP backward wrote its own over them; the same
    // kernel on the same input gives the same bits)
    const xn = t.xn, dxn = p["grad.xn"];
    if (xn === p["act.xn"]) {
      k.rmsnorm_forward(xn, t.rstd, xl, e.vec("inputNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
    }
    // dxn = dq·W_q + dk·W_k + dv·W_v (+ LoRA)
    gemm.nn(T, d, qd, dq, qd, refs.q_proj.w!, dxn, d, 1, false);
    gemm.nn(T, d, kvd, dk, kvd, refs.k_proj.w!, dxn, d, 1, true);
    gemm.nn(T, d, kvd, dv, kvd, refs.v_proj.w!, dxn, d, 1, true);
    this.#linearLora(l, T, refs.q_proj, xn, d, dq, qd, dxn, d, t.h[0], recompute);
    this.#linearLora(l, T, refs.k_proj, xn, d, dk, kvd, dxn, d, t.h[1], recompute);
    this.#linearLora(l, T, refs.v_proj, xn, d, dv, kvd, dxn, d, t.h[2], recompute);
    k.rmsnorm_backward(G, dxn, xl, e.vec("inputNorm"), t.rstd, d, d, d, d, 1, 0, T);
  }

  /**
   * LoRA part of a linear's backward, given its input x [T, nIn] and output gradient dY [T, nOut]:
   * h = x·Aᵀ (into `h`, recomputed when `recompute`, else kept there), dB = s·dYᵀ·h, gh = s·dY·B,
   * dA = ghᵀ·x, dx += gh·A.
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
    h: number,
    recompute: boolean,
  ): void {
    const pair = refs.pair;
    if (!pair) return;
    const e = this.e, r = e.D.r, s = e.lora!.scale, acc = this.sink.accumulate, { gemm } = e;
    const gh = e.p["lora.gh.attn"];
    if (recompute) gemm.nt(T, r, nIn, x, nIn, refs.a!, h, r, 1, false);
    gemm.tn(nOut, r, T, dY, nOut, this.#f32(h, r), this.grad(l, pair.b), r, s, acc);
    gemm.nn(T, r, nOut, dY, nOut, refs.b!, gh, r, s, false);
    gemm.tn(r, nIn, T, gh, r, this.#f32(x, nIn), this.grad(l, pair.a), nIn, 1, acc);
    gemm.nn(T, nIn, r, gh, r, refs.a!, dx, ldx, 1, true);
  }
}
