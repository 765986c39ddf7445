/**
 * The engine: one kernel instance, one arena laid out by the plan, and the model's forward pass streaming
 * one layer's weights at a time from a pack (docs/architecture.md, docs/mesp.md). Training adds the backward
 * pass on top (`backward.ts`); evaluation and generation use this file alone.
 *
 * Everything the step loop touches is a region of the plan; weight descriptors and typed-array views are
 * made once here, so the forward pass allocates no buffers.
 *
 * @module
 */
import { type Arena, type MemoryPlan, planMemory } from "../runtime/arena.ts";
import { dtypeCode, f32Ref, type WeightRef } from "../runtime/weight_ref.ts";
import { Gemm } from "../runtime/gemm.ts";
import {
  type KernelExports,
  type KernelLocation,
  loadKernels,
  OP,
  type Variant,
} from "../runtime/kernels.ts";
import {
  kernelEntries,
  type PooledKernels,
  type PoolOptions,
  type Profile,
  startKernels,
} from "../runtime/pool.ts";
import type { ModelConfig } from "../model/config.ts";
import { ATTENTION, type Linear, LINEARS } from "../model/qwen2.ts";
import type { MatrixSlot } from "../model/pack_layout.ts";
import type { Pack, VocabRowViews } from "../model/pack.ts";
import { findPair, type LoraLayout, type LoraPair } from "./lora.ts";
import { ReadAhead } from "./read_ahead.ts";
import { type Dims, dims, type PlanOptions, planRegions } from "./plan.ts";

/** The plan options of an engine over `pack`: the caller's options and what the pack's layout fixes. */
function enginePlanOptions(pack: Pack, options: EngineOptions, gemmScratch: number): PlanOptions {
  return {
    ...options,
    format: pack.header.format,
    bf16Scales: pack.header.bf16Scales,
    mlpChunk: pack.layout.mlpChunk,
    gemmScratch,
  };
}

/** Options for {@linkcode Engine.create}. */
export interface EngineOptions
  extends Omit<PlanOptions, "format" | "bf16Scales" | "gemmScratch" | "mlpChunk"> {
  /** Arena budget in bytes: creation fails, showing the plan, if the plan is larger. */
  budget?: number;
  /** Kernel variant (default: the fastest this runtime validates). */
  variant?: Variant;
  /**
   * Threads for the kernels (default 1). With 2 or more, where the runtime allows it, a worker pool splits
   * GEMMs and row kernels (bitwise the same results); call `e.close()` when done, since live
   * workers keep the process running.
   */
  threads?: number;
  /** Split thresholds of the pool (tests and benchmarks). */
  poolOptions?: Omit<PoolOptions, "threads">;
  /** Collects kernel time by category (benchmarks). */
  profile?: Profile;
  /** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
  kernels?: KernelLocation;
}

/** Descriptors of one linear: the frozen weight and, if adapted, LoRA's A and B. */
export interface LinearRefs {
  /** The frozen weight (attention linears; the MLP's are per chunk, see `Engine.chunks`). */
  w?: WeightRef;
  pair?: LoraPair;
  a?: WeightRef;
  b?: WeightRef;
}

/** A weight descriptor whose pointers are `base + rel` for the layer in use. */
export interface RelRef {
  ref: WeightRef;
  ptr: number;
  scales: number;
  biases: number;
}

/** Whole-model forward over a pack, with LoRA when a layout is given. */
export class Engine {
  readonly cfg: ModelConfig;
  readonly pack: Pack;
  readonly kernels: PooledKernels;
  readonly k: KernelExports;
  readonly arena: Arena;
  readonly gemm: Gemm;
  readonly D: Dims;
  readonly lora?: LoraLayout;
  readonly options: EngineOptions;
  /** f32 and i32 views of the whole linear memory (the memory never grows after creation). */
  readonly F: Float32Array;
  readonly I32: Int32Array;
  /** Region pointers, by name. */
  readonly p: Record<string, number>;
  /** Layer whose weights the slot holds (-1: none), in streaming mode. */
  loadedLayer = -1;
  /** Per-layer descriptors; in streaming mode every layer shares the slot's. */
  readonly #linears: Record<Linear, LinearRefs>[] = [];
  readonly #rel: RelRef[] = [];
  /** MLP chunks [c0, c1): gate/up rows and down columns, as stored in the pack (descriptors of the chunk in use). */
  readonly chunks: { c0: number; c1: number; gate: RelRef; up: RelRef; down: RelRef; rel: RelRef[] }[] = [];
  /** Views the pack reads the attention block and, per MLP slot, each MLP chunk into (streaming). */
  readonly #attnView?: Uint8Array;
  readonly #chunkViews: Uint8Array[][] = [[], []];
  /** Base of each MLP slot. */
  readonly #mlpBase: number[] = [];
  /** MLP chunks streamed through two slots, keyed layer · chunks + chunk: the next one is read ahead. */
  readonly #mlpReads: ReadAhead;
  /** Per-layer vector pointers relative to the layer base. */
  readonly #vec: { qBias: number; kBias: number; vBias: number; inputNorm: number; postNorm: number };
  /** Key/value descriptors per kv head (pointers set by {@linkcode Engine.attentionForward}). */
  readonly kRefs: WeightRef[] = [];
  readonly vRefs: WeightRef[] = [];
  /** A spare f32 descriptor for column/row blocks of LoRA matrices. */
  readonly tmpRef: WeightRef = f32Ref(0, 1);
  /** The vocabulary slot in use (a chunk of the embedding / LM head, or one row) as a weight. */
  readonly vocabRef: WeightRef;
  /** Per vocabulary slot, the views of each chunk; single rows go through slot 0. */
  readonly #vocabViews: VocabRowViews[][] = [[], []];
  readonly #rowViews: VocabRowViews;
  /** Offsets of a vocabulary slot's parts from its base, and the bases of the two slots. */
  readonly #vocabParts: { scales: number; biases: number };
  readonly #vocabBase: number[] = [];
  /** Vocabulary chunks streamed through two slots: the next one is read ahead. */
  readonly #vocabReads: ReadAhead;
  #layerBase = 0;

  private constructor(pack: Pack, kernels: PooledKernels, arena: Arena, D: Dims, options: EngineOptions) {
    this.cfg = pack.config;
    this.pack = pack;
    this.kernels = kernels;
    this.k = kernelEntries(kernels, options.profile);
    this.arena = arena;
    this.D = D;
    this.lora = options.lora;
    this.options = options;
    this.F = new Float32Array(kernels.memory.buffer);
    this.I32 = new Int32Array(kernels.memory.buffer);
    this.p = Object.fromEntries(arena.plan.regions.map((r) => [r.name, r.offset]));
    // regions shared by buffers whose lifetimes do not overlap (see plan.ts)
    this.p["mlp.g"] = this.p["mlp.gu"];
    this.p["mlp.u"] = this.p["mlp.gu"] + D.T * D.C * 4;
    this.p["grad.q"] = this.p["mlp.gu"];
    this.gemm = new Gemm(kernels.exports, this.p["gemm.scratch"], {
      pool: kernels.pool,
      profile: options.profile,
    });
    const layout = pack.layout;

    // weights relative to the attention block's base / an MLP chunk's base; LoRA descriptors per layer
    const rel = (slot: MatrixSlot, group: RelRef[]): RelRef => {
      const r: RelRef = {
        ref: { dtype: slot.dtype, ptr: 0, ld: slot.cols, scales: 0, biases: 0, bf16Scales: slot.bf16Scales },
        ptr: slot.offset,
        scales: slot.scalesOffset,
        biases: slot.biasesOffset,
      };
      group.push(r);
      return r;
    };
    const attention = Object.fromEntries(ATTENTION.map((n) => [n, rel(layout.attention[n], this.#rel).ref]));
    for (let l = 0; l < D.L; l++) {
      const refs = {} as Record<Linear, LinearRefs>;
      for (const n of LINEARS) {
        const pair = this.lora ? findPair(this.lora, l, n) : undefined;
        const base = this.p["lora.params"] ?? 0;
        refs[n] = {
          w: attention[n],
          pair,
          a: pair ? f32Ref(base + pair.a * 4, pair.inDim) : undefined,
          b: pair ? f32Ref(base + pair.b * 4, D.r) : undefined,
        };
      }
      this.#linears.push(refs);
    }
    for (const c of layout.chunks) {
      const group: RelRef[] = [];
      this.chunks.push({
        c0: c.c0,
        c1: c.c1,
        gate: rel(c.gate, group),
        up: rel(c.up, group),
        down: rel(c.down, group),
        rel: group,
      });
    }
    this.#vec = {
      qBias: layout.qBias.offset,
      kBias: layout.kBias.offset,
      vBias: layout.vBias.offset,
      inputNorm: layout.inputNorm.offset,
      postNorm: layout.postNorm.offset,
    };
    for (let g = 0; g < D.KV; g++) {
      this.kRefs.push(f32Ref(0, D.kvd));
      this.vRefs.push(f32Ref(0, D.kvd));
    }

    // vocabulary slots: rows of the embedding / LM head, read a chunk (or a token) at a time, two slots so
    // the next chunk is read while this one computes
    const vs = pack.vocabSlot;
    const vregion = arena.region("weights.vocab");
    const scalesOff = vs.scaleRowBytes ? alignUp(D.Vc * vs.rowBytes) : 0;
    const biasesOff = vs.scaleRowBytes ? alignUp(scalesOff + D.Vc * vs.scaleRowBytes) : 0;
    this.#vocabParts = { scales: scalesOff, biases: biasesOff };
    this.#vocabBase = [vregion.offset, vregion.offset + vregion.bytes / 2];
    this.vocabRef = {
      dtype: vs.dtype,
      ptr: 0,
      ld: D.d,
      scales: 0,
      biases: 0,
      bf16Scales: vs.bf16Scales,
    };
    this.#pointVocab(0);
    const buf = kernels.memory.buffer;
    const views = (base: number, rows: number) => ({
      data: new Uint8Array(buf, base, rows * vs.rowBytes),
      scales: vs.scaleRowBytes ? new Uint8Array(buf, base + scalesOff, rows * vs.scaleRowBytes) : undefined,
      biases: vs.scaleRowBytes ? new Uint8Array(buf, base + biasesOff, rows * vs.scaleRowBytes) : undefined,
    });
    for (const s of [0, 1]) {
      for (let v0 = 0; v0 < D.V; v0 += D.Vc) {
        this.#vocabViews[s].push(views(this.#vocabBase[s], Math.min(D.Vc, D.V - v0)));
      }
    }
    this.#rowViews = views(this.#vocabBase[0], 1);
    this.#vocabReads = new ReadAhead((c, s) =>
      pack.readVocabRows(
        c * D.Vc,
        c * D.Vc + this.#vocabViews[s][c].data.length / vs.rowBytes,
        this.#vocabViews[s][c],
        !this.cfg.tieWordEmbeddings,
      )
    );
    this.#mlpReads = new ReadAhead((key, s) => {
      const n = this.chunks.length, i = key % n;
      return pack.readMlpChunk((key - i) / n, i, this.#chunkViews[s][i]);
    });
    if (!options.resident) {
      this.#attnView = new Uint8Array(buf, this.p["weights.attn"], layout.attentionBytes);
      const mlp = arena.region("weights.mlp");
      this.#mlpBase = [mlp.offset, mlp.offset + mlp.bytes / 2];
      for (const s of [0, 1]) {
        for (const c of layout.chunks) {
          this.#chunkViews[s].push(new Uint8Array(buf, this.#mlpBase[s], c.bytes));
        }
      }
    }
    this.#setLayerBase(options.resident ? this.p["weights.layers"] : this.p["weights.attn"]);
    this.#fillRope();
  }

  /** Plans the arena for `pack` and `options`, loads the kernels, lays out memory once. */
  static async create(pack: Pack, options: EngineOptions): Promise<Engine> {
    const plan = (gemmScratch: number) => enginePlanOptions(pack, options, gemmScratch);
    const D = dims(pack.config, plan(0));
    // kernels, the arena laid out once, and (threads > 1) the worker pool on it
    const { kernels, arena } = await startKernels(
      (scratch) => planRegions(pack.config, plan(scratch)),
      options,
    );
    try {
      const e = new Engine(pack, kernels, arena, D, options);
      await pack.readNorm(e.arena.f32("weights.norm"));
      if (options.resident) {
        const all = arena.u8("weights.layers");
        const bytes = pack.layout.bytes;
        for (let l = 0; l < D.L; l++) await pack.readLayer(l, all.subarray(l * bytes, (l + 1) * bytes));
      }
      return e;
    } catch (err) {
      kernels.pool?.close();
      throw err;
    }
  }

  /**
   * The memory plan {@linkcode Engine.create} lays out for `options` (with all `threads` granted), without
   * allocating it: what a caller shows, or refuses against a budget, first. Loads the kernels only to size
   * their scratch and find where the arena starts.
   */
  static async plan(pack: Pack, options: EngineOptions): Promise<MemoryPlan> {
    const kernels = await loadKernels({ ...options.kernels, variant: options.variant });
    const scratch = kernels.exports.gemm_scratch_bytes() * (options.threads ?? 1);
    const base = Math.ceil(kernels.exports.heap_base() / 64) * 64; // where the arena starts (Arena.create)
    return planMemory(planRegions(pack.config, enginePlanOptions(pack, options, scratch)), { base });
  }

  /** Stops the kernel workers, if any (live workers keep the process running). Memory views stay valid. */
  close(): void {
    this.kernels.pool?.close();
  }

  /** Descriptors of layer `l`'s linears. */
  refs(l: number): Record<Linear, LinearRefs> {
    return this.#linears[l];
  }

  /** Absolute pointer of a per-layer vector (bias or norm weight) of the current layer. */
  vec(name: "qBias" | "kBias" | "vBias" | "inputNorm" | "postNorm"): number {
    return this.#layerBase + this.#vec[name];
  }

  /** Points the attention descriptors (and the per-layer vectors) at the attention block starting at `base`. */
  #setLayerBase(base: number): void {
    this.#layerBase = base;
    this.#setBase(this.#rel, base);
  }

  #setBase(group: RelRef[], base: number): void {
    for (const r of group) {
      r.ref.ptr = base + r.ptr;
      r.ref.scales = base + r.scales;
      r.ref.biases = base + r.biases;
    }
  }

  /** cos/sin of (position · θ_i) in f64, rounded to f32, for every planned position. */
  #fillRope(): void {
    const { hd, P } = this.D;
    const half = hd / 2;
    const cos = this.p["rope"] / 4, sin = cos + P * half;
    for (let i = 0; i < half; i++) {
      const invFreq = 1 / Math.pow(this.cfg.ropeTheta, (2 * i) / hd);
      for (let pos = 0; pos < P; pos++) {
        this.F[cos + pos * half + i] = Math.cos(pos * invFreq);
        this.F[sin + pos * half + i] = Math.sin(pos * invFreq);
      }
    }
  }

  /** Makes layer `l`'s attention block current (reads it into its slot unless resident or already there). */
  async loadLayer(l: number): Promise<void> {
    if (this.options.resident) {
      this.#setLayerBase(this.p["weights.layers"] + l * this.pack.layout.bytes);
      return;
    }
    if (this.loadedLayer !== l) {
      this.loadedLayer = -1;
      await this.pack.readAttention(l, this.#attnView!);
      this.loadedLayer = l;
    }
    // every pass over a layer starts its MLP at chunk 0: read it while the attention computes
    this.#mlpReads.prefetch(l * this.chunks.length);
  }

  /** Makes MLP chunk `i` of layer `l` current (reads it into the MLP slot unless resident or already there). */
  async loadChunk(l: number, i: number): Promise<void> {
    if (this.options.resident) {
      const base = this.p["weights.layers"] + l * this.pack.layout.bytes + this.pack.layout.chunks[i].offset;
      this.#setBase(this.chunks[i].rel, base);
      return;
    }
    const n = this.chunks.length, key = l * n + i;
    const slot = await this.#mlpReads.load(key);
    this.#setBase(this.chunks[i].rel, this.#mlpBase[slot]);
    if (i + 1 < n) this.#mlpReads.prefetch(key + 1);
  }

  /** Points `vocabRef` at vocabulary slot `s`. */
  #pointVocab(s: number): void {
    const base = this.#vocabBase[s];
    this.vocabRef.ptr = base;
    this.vocabRef.scales = base + this.#vocabParts.scales;
    this.vocabRef.biases = base + this.#vocabParts.biases;
  }

  /** Embeds tokens `ids[0..T)` into rows `row0…` of the residual stream `act.x`. */
  async embed(ids: ArrayLike<number>, T: number, row0 = 0): Promise<void> {
    const { d, V } = this.D;
    const v = this.#rowViews, ref = this.vocabRef;
    await this.#vocabReads.settle();
    this.#pointVocab(0);
    await this.pack.prefetchRows(ids, T); // the step's rows in few reads (sorted, once each, neighbours merged)
    const x = this.p["act.x"];
    const code = dtypeCode(ref);
    for (let t = 0; t < T; t++) {
      const id = ids[t];
      if (!(id >= 0 && id < V)) {
        throw new Error(`token id ${id} at position ${t} is outside the vocabulary (${V})`);
      }
      await this.pack.readVocabRows(id, id + 1, v);
      this.k.decode_row(code, ref.ptr, d, ref.scales, ref.biases, 0, 0, d, x + (row0 + t) * d * 4);
    }
  }

  /**
   * One linear over rows [0, T): out (+)= in·Wᵀ (+ bias) + s·(in·Aᵀ)·Bᵀ. With `accumulate` the result is
   * added to `out` (a residual connection); a bias is written first (rows copied) when given.
   */
  linear(
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
    h = this.p["lora.h"] ?? 0,
  ): void {
    if (bias) {
      for (let t = 0; t < T; t++) this.F.copyWithin((out >> 2) + t * ldo, bias >> 2, (bias >> 2) + nOut);
    }
    this.gemm.nt(T, nOut, nIn, x, ldx, refs.w!, out, ldo, 1, accumulate || bias !== 0);
    if (refs.pair) {
      const r = this.D.r;
      this.gemm.nt(T, r, nIn, x, ldx, refs.a!, h, r, 1, false);
      this.gemm.nt(T, nOut, r, h, r, refs.b!, out, ldo, this.lora!.scale, true);
    }
  }

  /**
   * Layer `l` on rows [0, T) of `act.x`, in place: the pre-norm attention block, then the MLP, each added
   * to the residual. Queries are at absolute positions pos0…; keys/values are written at rows pos0… of
   * `kv` (the cache of this layer, or the plan's `act.k`/`act.v` with pos0 = 0) and attention reads rows
   * 0 … pos0+T−1 of it.
   */
  async layerForward(l: number, T: number, pos0 = 0, kv?: { k: number; v: number }): Promise<void> {
    this.attentionForward(l, T, pos0, kv);
    await this.mlpForward(l, T, this.p["act.xn"], this.p["act.rstd"]);
  }

  /** Makes the weight descriptors point at layer `l` (checking a streamed layer is in the slot). */
  useLayer(l: number): void {
    const base = this.options.resident
      ? this.p["weights.layers"] + l * this.pack.layout.bytes
      : this.p["weights.attn"];
    if (!this.options.resident && this.loadedLayer !== l) throw new Error(`layer ${l} is not loaded`);
    if (this.#layerBase !== base) this.#setLayerBase(base);
  }

  /**
   * The attention block of layer `l`: x += o_proj(attention(rope(q), rope(k), v)) with q, k, v from
   * rmsnorm(x) (kept in `act.xn`, 1/rms in `act.rstd`); q and the attention output stay in `act.q`,
   * `act.att`. MeBP passes `keep` to store every head's probabilities ([H, T, T] at `keep.P`) and each
   * adapter's x·Aᵀ ([T, r] at `keep.h` + i·T·r, i = 0…3 for q, k, v, o) instead of discarding them.
   */
  attentionForward(
    l: number,
    T: number,
    pos0 = 0,
    kv?: { k: number; v: number },
    keep?: { P: number; h: number },
  ): void {
    const { d, H, KV, hd, qd, kvd } = this.D;
    const { k, p, gemm } = this;
    this.useLayer(l);
    const refs = this.#linears[l];
    const x = p["act.x"], xn = p["act.xn"], q = p["act.q"], att = p["act.att"], rstd = p["act.rstd"];
    const kBase = kv?.k ?? p["act.k"], vBase = kv?.v ?? p["act.v"];
    const kNew = kBase + pos0 * kvd * 4, vNew = vBase + pos0 * kvd * 4;
    const hSlot = (i: number) => (keep ? keep.h + i * T * this.D.r * 4 : p["lora.h"] ?? 0);
    k.rmsnorm_forward(xn, rstd, x, this.vec("inputNorm"), d, d, d, this.cfg.rmsNormEps, 0, T);
    this.linear(T, xn, d, refs.q_proj, q, qd, qd, d, this.vec("qBias"), false, hSlot(0));
    this.linear(T, xn, d, refs.k_proj, kNew, kvd, kvd, d, this.vec("kBias"), false, hSlot(1));
    this.linear(T, xn, d, refs.v_proj, vNew, kvd, kvd, d, this.vec("vBias"), false, hSlot(2));
    const { cos, sin } = this.rope();
    k.rope_forward(q, cos, sin, H, hd, qd, pos0, 0, T);
    k.rope_forward(kNew, cos, sin, KV, hd, kvd, pos0, 0, T);
    const nk = pos0 + T;
    for (let g = 0; g < KV; g++) {
      this.kRefs[g].ptr = kBase + g * hd * 4;
      this.vRefs[g].ptr = vBase + g * hd * 4;
    }
    const scale = 1 / Math.sqrt(hd), rep = H / KV;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / rep), s = keep ? keep.P + h * T * nk * 4 : p["act.scores"];
      gemm.nt(T, nk, hd, q + h * hd * 4, qd, this.kRefs[g], s, nk, 1, false);
      k.softmax_causal_forward(s, s, nk, nk, scale, pos0, 0, T);
      gemm.nn(T, hd, nk, s, nk, this.vRefs[g], att + h * hd * 4, qd, 1, false);
    }
    this.linear(T, att, qd, refs.o_proj, x, d, d, qd, 0, true, hSlot(3));
  }

  /** Pointers of the rope tables. */
  rope(): { cos: number; sin: number } {
    const cos = this.p["rope"];
    return { cos, sin: cos + this.D.P * (this.D.hd / 2) * 4 };
  }

  /**
   * The MLP block of layer `l`: xn = rmsnorm(x) (into `xn`, 1/rms into `rstd`), x += down(silu(gate(xn)) ·
   * up(xn)), streaming the weights one chunk of the intermediate dimension at a time. MeBP passes `keep` to
   * store the full [T, I] gate, up and SwiGLU tensors and the adapters' h (at `keep.h` slots 4–6 for gate,
   * up, down; see `attentionForward`) instead of discarding them chunk by chunk.
   */
  async mlpForward(
    l: number,
    T: number,
    xn: number,
    rstd: number,
    keep?: { g: number; u: number; m: number; h: number },
  ): Promise<void> {
    const { d, r, C, I } = this.D;
    const { k, p, gemm } = this;
    this.useLayer(l);
    k.rmsnorm_forward(xn, rstd, p["act.x"], this.vec("postNorm"), d, d, d, this.cfg.rmsNormEps, 0, T);
    const x = p["act.x"], ld = keep ? I : C;
    const h = (i: number) => (keep ? keep.h + (4 + i) * T * r * 4 : (p["lora.h"] ?? 0) + (1 + i) * T * r * 4);
    const hg = h(0), hu = h(1), hd = h(2);
    this.mlpAdapterInputs(l, T, xn, hg, hu);
    for (let i = 0; i < this.chunks.length; i++) {
      const c = this.chunks[i], n = c.c1 - c.c0;
      const g = keep ? keep.g + c.c0 * 4 : p["mlp.g"], u = keep ? keep.u + c.c0 * 4 : p["mlp.u"];
      const m = keep ? keep.m + c.c0 * 4 : g; // the forward pass writes m over g
      await this.loadChunk(l, i);
      this.mlpChunkForward(l, i, T, xn, hg, hu, hd, g, u, m, ld);
      gemm.nt(T, d, n, m, ld, c.down.ref, x, d, 1, true);
    }
    const dp = this.#linears[l].down_proj;
    if (dp.pair) gemm.nt(T, d, r, hd, r, dp.b!, x, d, this.lora!.scale, true);
  }

  /** The gate and up adapters' inputs h_g = xn·A_gᵀ, h_u = xn·A_uᵀ ([T, r]), shared by every chunk. */
  mlpAdapterInputs(l: number, T: number, xn: number, hg: number, hu: number): void {
    const { d, r } = this.D, refs = this.#linears[l];
    if (refs.gate_proj.pair) {
      this.gemm.nt(T, r, d, xn, d, refs.gate_proj.a!, hg, r, 1, false);
    }
    if (refs.up_proj.pair) this.gemm.nt(T, r, d, xn, d, refs.up_proj.a!, hu, r, 1, false);
  }

  /**
   * MLP chunk `i` of layer `l` (loaded): g = xn·W_g[c]ᵀ (+ s·h_g·B_g[c]ᵀ), u likewise, m = silu(g)·u, all
   * [T, n] with leading dimension `ld` (m may alias g), and h_d (+)= m·A_d[:, c]ᵀ. The one implementation
   * of this arithmetic for the forward pass and both backward passes, so MeBP's kept tensors are bitwise
   * MeSP's recomputed ones.
   */
  mlpChunkForward(
    l: number,
    i: number,
    T: number,
    xn: number,
    hg: number,
    hu: number,
    hd: number,
    g: number,
    u: number,
    m: number,
    ld: number,
  ): void {
    const { d, r } = this.D, { k, gemm } = this;
    const refs = this.#linears[l], s = this.lora?.scale ?? 0;
    const c = this.chunks[i], n = c.c1 - c.c0;
    const gp = refs.gate_proj, up = refs.up_proj, dp = refs.down_proj;
    gemm.nt(T, n, d, xn, d, c.gate.ref, g, ld, 1, false);
    if (gp.pair) this.#loraChunkB(T, hg, gp, c.c0, n, g, ld, s);
    gemm.nt(T, n, d, xn, d, c.up.ref, u, ld, 1, false);
    if (up.pair) this.#loraChunkB(T, hu, up, c.c0, n, u, ld, s);
    k.swiglu_forward(m, g, u, n, ld, ld, ld, 0, T);
    if (dp.pair) {
      // h_d += m_c · A_d[:, c]ᵀ
      this.tmpRef.ptr = dp.a!.ptr + c.c0 * 4;
      this.tmpRef.ld = dp.a!.ld;
      gemm.nt(T, r, n, m, ld, this.tmpRef, hd, r, 1, i > 0);
    }
  }

  /** out[:, 0:n) += s · h · B[c0:c0+n)ᵀ (the chunk's rows of B). */
  #loraChunkB(
    T: number,
    h: number,
    refs: LinearRefs,
    c0: number,
    n: number,
    out: number,
    ldo: number,
    s: number,
  ): void {
    const r = this.D.r;
    this.tmpRef.ptr = refs.b!.ptr + c0 * r * 4;
    this.tmpRef.ld = r;
    this.gemm.nt(T, n, r, h, r, this.tmpRef, out, ldo, s, true);
  }

  /** Final RMSNorm of rows [0, T) of `act.x` into `act.xn` (rstd kept in `act.rstd`). */
  finalNorm(T: number): void {
    const d = this.D.d;
    this.k.rmsnorm_forward(
      this.p["act.xn"],
      this.p["act.rstd"],
      this.p["act.x"],
      this.p["weights.norm"],
      d,
      d,
      d,
      this.cfg.rmsNormEps,
      0,
      T,
    );
  }

  /** Pointers of the loss's per-row vectors. */
  lossRows(): {
    max: number;
    sum: number;
    tlogit: number;
    lse: number;
    loss: number;
    weight: number;
    targets: number;
  } {
    const T = this.D.T, b = this.p["loss.rows"];
    return {
      max: b,
      sum: b + T * 4,
      tlogit: b + 2 * T * 4,
      lse: b + 3 * T * 4,
      loss: b + 4 * T * 4,
      weight: b + 5 * T * 4,
      targets: this.p["loss.targets"],
    };
  }

  /** Reads vocabulary chunk `c` (embedding, or the untied LM head) into the vocabulary slot. */
  async loadVocabChunk(c: number): Promise<number> {
    const slot = await this.#vocabReads.load(c);
    this.#pointVocab(slot);
    if (c + 1 < this.vocabChunks) this.#vocabReads.prefetch(c + 1);
    return Math.min(this.D.Vc, this.D.V - c * this.D.Vc);
  }

  /**
   * Decodes row `id` of the LM head (the embedding when tied) into f32 at `dst`, through row 0 of the
   * vocabulary slot.
   */
  async decodeHeadRow(id: number, dst: number): Promise<void> {
    const ref = this.vocabRef;
    await this.#vocabReads.settle();
    this.#pointVocab(0);
    await this.pack.readVocabRows(id, id + 1, this.#rowViews, !this.cfg.tieWordEmbeddings);
    this.k.decode_row(dtypeCode(ref), ref.ptr, this.D.d, ref.scales, ref.biases, 0, 0, this.D.d, dst);
  }

  /** Number of vocabulary chunks. */
  get vocabChunks(): number {
    return this.#vocabViews[0].length;
  }

  /** logits[row0:row1, 0:vc) = act.xn · E[v0:v0+vc)ᵀ for the chunk in the slot (ld = Vc). */
  chunkLogits(row0: number, row1: number, vc: number): number {
    const logits = this.p["loss.logits"];
    this.gemm.run(
      OP.nt,
      row0,
      row1,
      0,
      vc,
      vc,
      this.D.d,
      this.p["act.xn"],
      this.D.d,
      this.vocabRef,
      logits,
      this.D.Vc,
      1,
      false,
    );
    return logits;
  }

  /**
   * Per-row next-token loss of rows [0, T) (targets in `loss.targets`, i32; −1 for rows without a target):
   * streams the LM head chunk by chunk with an online log-sum-exp. Leaves −log p(target) per row in
   * `loss.rows.loss` and log Σ exp in `.lse` (with `.max`) for the backward pass.
   */
  async lossForward(T: number): Promise<void> {
    const r = this.lossRows();
    for (let c = 0; c < this.vocabChunks; c++) {
      const vc = await this.loadVocabChunk(c);
      const logits = this.chunkLogits(0, T, vc);
      this.k.ce_chunk_forward(
        logits,
        vc,
        this.D.Vc,
        c * this.D.Vc,
        r.targets,
        r.max,
        r.sum,
        r.tlogit,
        c === 0 ? 1 : 0,
        0,
        T,
      );
    }
    this.k.ce_finish(r.loss, r.lse, r.max, r.sum, r.tlogit, 0, T);
  }

  /** Full forward of `ids[0..T)` through every layer into `act.x` (streaming weights), then the final norm. */
  async forward(ids: ArrayLike<number>, T: number): Promise<void> {
    await this.embed(ids, T);
    for (let l = 0; l < this.D.L; l++) {
      await this.loadLayer(l);
      await this.layerForward(l, T);
    }
    this.finalNorm(T);
  }

  /** Sets the loss targets for a sequence: row t predicts ids[t+1] where targets[t+1] is set. */
  setTargets(ids: ArrayLike<number>, trained: ArrayLike<number> | undefined, T: number): number {
    const r = this.lossRows();
    let n = 0;
    for (let t = 0; t < T; t++) {
      const ok = t + 1 < T && (trained ? trained[t + 1] !== 0 : true);
      this.I32[(r.targets >> 2) + t] = ok ? ids[t + 1] : -1;
      if (ok) n++;
    }
    for (let t = 0; t < T; t++) {
      this.F[(r.weight >> 2) + t] = this.I32[(r.targets >> 2) + t] >= 0 && n ? 1 / n : 0;
    }
    return n;
  }

  /** Σ and count of the per-row losses of trained rows, in f64 (for means over many sequences). */
  lossSum(T: number): { sum: number; count: number } {
    const r = this.lossRows();
    let sum = 0, count = 0;
    for (let t = 0; t < T; t++) {
      if (this.I32[(r.targets >> 2) + t] < 0) continue;
      sum += this.F[(r.loss >> 2) + t];
      count++;
    }
    return { sum, count };
  }

  /** Linear memory size now (constant after creation). */
  memoryBytes(): number {
    return this.kernels.memory.buffer.byteLength;
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / 64) * 64;
}
