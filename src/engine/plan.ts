/**
 * The memory plan of a run: every region of the arena, with its bytes and purpose, computed from the model
 * config and the options before anything is loaded (docs/memory_plan.md). `plan` prints it; the engine lays
 * it out once and never allocates again.
 *
 * @module
 */
import type { MemoryPlan, RegionSpec } from "../runtime/arena.ts";
import type { ModelConfig } from "../model/config.ts";
import { GROUP, layerLayout, matrixSlot, MLP_CHUNK, type PackFormat } from "../model/pack_layout.ts";
import type { LoraLayout } from "./lora.ts";
import { recomputeOrder } from "./recompute.ts";

/** What a run does, which decides the regions it needs. */
export type RunMode = "eval" | "generate" | "train";

/** Training methods (MeSP is the default; the others are the paper's baselines). */
export type Method = "mesp" | "mebp" | "mezo";

/** Optimizers of the training loop. */
export type OptimizerName = "sgd" | "adamw";

/** Options that shape the plan. */
export interface PlanOptions {
  mode: RunMode;
  /** Longest sequence (tokens) a step processes. */
  seqLen: number;
  /** Element format of the weights. */
  format: PackFormat;
  /** Whether the weights carry bf16 scales (MLX source). */
  bf16Scales?: boolean;
  /** LoRA layout, if an adapter is trained or applied. */
  lora?: LoraLayout;
  /** Rows of the vocabulary processed at once by the loss (default 512). */
  vocabChunk?: number;
  /** Columns of the MLP's intermediate dimension per chunk: the pack's (default 256; a multiple of 64). */
  mlpChunk?: number;
  /** Keep every layer's weights resident instead of streaming one layer at a time. */
  resident?: boolean;
  /** Positions the KV cache holds (generate mode). */
  maxPositions?: number;
  /**
   * Sequences one pass over the weights runs at once (eval mode; default 1): each has its own residual
   * stream, normed input, adapter products and loss rows, so every layer and vocabulary chunk is read once
   * for all of them (`SequenceBatch`).
   */
  batch?: number;
  /** Training method (train mode). */
  method?: Method;
  /** Optimizer (train mode). */
  optimizer?: OptimizerName;
  /**
   * Element type of the saved layer inputs (train mode; `--ckpt`): "f32" (default, gradients exact) or
   * "bf16" (half the memory; the backward recomputes each layer from a rounded input, so gradients are
   * close, not exact).
   */
  savedInputDtype?: "f32" | "bf16";
  /**
   * Save every k-th layer's input only (`--ckpt-every`; default 1: every layer), the segments between
   * re-run once in the backward (`recompute.ts`, `everyKth`).
   */
  savedInputEvery?: number;
  /**
   * Save this many `[T, d]` layer inputs (2 … layers), the others recomputed in the backward with the fewest
   * layer forwards that allows (`recompute.ts`, `fewestRecomputes`); not with `savedInputEvery`.
   */
  savedInputs?: number;
  /**
   * Layers that keep forward tensors for their backward (MeSP, f32, every layer's input saved): the last
   * `mlp` layers keep their gate/up projections, the last `attention` layers their attention tensors, so
   * the backward skips recomputing them (bitwise the same gradients; see `schedule.ts`).
   */
  keep?: KeepSchedule;
  /** Keep a whole-model gradient buffer (gradient accumulation or clipping; train mode). */
  gradBuffer?: boolean;
  /**
   * Spill the saved layer inputs, the adapter's parameters and the optimizer's moments to a file outside the
   * arena (`spill.ts`; MeSP training with f32 saved inputs and the update fused into the backward): the
   * arena keeps one layer's adapter and moments and no saved input.
   */
  spill?: boolean;
  /** Scratch bytes one GEMM call needs (from the kernels). */
  gemmScratch: number;
}

/** How many layers keep forward tensors (the last ones of the model). */
export interface KeepSchedule {
  mlp: number;
  attention: number;
}

/** Floats one layer keeps under {@linkcode KeepSchedule}: the MLP's g and u, the attention's tensors. */
export function keptFloats(D: Dims): { mlp: number; attention: number } {
  const { T, d, qd, kvd, I } = D;
  // xn, q, k, v, attention output, the MLP's input x2, 1/rms
  return { mlp: 2 * T * I, attention: T * (2 * d + 2 * qd + 2 * kvd + 1) };
}

/** Sizes derived from the config and options, shared by the plan and the engine. */
export interface Dims {
  T: number;
  d: number;
  H: number;
  KV: number;
  hd: number;
  /** Query width H·hd and key/value width KV·hd. */
  qd: number;
  kvd: number;
  I: number;
  V: number;
  L: number;
  r: number;
  /** Vocabulary rows per loss chunk, MLP columns per chunk. */
  Vc: number;
  C: number;
  /** Positions of the rope tables and (generate) the KV cache. */
  P: number;
  /** Sequences per pass over the weights (eval; 1 otherwise). */
  B: number;
}

/** Resolves the dimensions of a run. */
export function dims(cfg: ModelConfig, o: PlanOptions): Dims {
  const T = o.seqLen;
  if (!Number.isInteger(T) || T < 2) throw new Error(`sequence length must be an integer ≥ 2, got ${T}`);
  const Vc = Math.min(o.vocabChunk ?? 512, cfg.vocabSize);
  // the pack stores the MLP in chunks of this many columns, and the engine computes chunk by chunk
  const chunk = o.mlpChunk ?? MLP_CHUNK;
  if (!(chunk > 0) || chunk % GROUP !== 0) {
    throw new Error(`MLP chunk must be a multiple of ${GROUP}, got ${chunk}`);
  }
  const C = Math.min(chunk, cfg.intermediateSize);
  const P = o.mode === "generate" ? (o.maxPositions ?? T) : T;
  const B = o.batch ?? 1;
  if (!Number.isInteger(B) || B < 1) throw new Error(`batch must be a whole number ≥ 1, got ${B}`);
  if (B > 1 && o.mode !== "eval") {
    throw new Error(`a batch of ${B} sequences is for eval mode, not ${o.mode}`);
  }
  return {
    T,
    d: cfg.hiddenSize,
    H: cfg.numHeads,
    KV: cfg.numKvHeads,
    hd: cfg.headDim,
    qd: cfg.numHeads * cfg.headDim,
    kvd: cfg.numKvHeads * cfg.headDim,
    I: cfg.intermediateSize,
    V: cfg.vocabSize,
    L: cfg.numLayers,
    r: o.lora?.rank ?? 0,
    Vc,
    C,
    P,
    B,
  };
}

/** A streamed weight slot's size, rounded so that the second of a pair starts aligned for SIMD loads. */
function slotBytes(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

/**
 * Every buffer a plan can hold, by name, with its shape (f32 unless said; T rows, d width, C MLP columns per
 * chunk, Vc vocabulary rows per chunk, P positions, r the LoRA rank). A name is a region of its own or a view
 * of one (`VIEWS`); which of them a run has depends on its mode and method, see {@linkcode planBuffers}.
 */
const BUFFERS = {
  "weights.layers": "all layers' weights, resident (the pack's layer layout × L)",
  "weights.attn": "one layer's attention weights, biases and norms, streamed (the pack's layout)",
  "weights.mlp": "2 slots × one MLP chunk's weights (gate/up rows, down columns), streamed",
  "weights.vocab": "2 slots × Vc embedding / LM-head rows (the pack's vocabulary rows)",
  "weights.norm": "[d] final RMSNorm weight",
  "rope": "[2, P, hd/2] cos, sin",
  "gemm.scratch": "GEMM packing buffers, one area per thread",
  "lora.params": "every adapter's A [r, in] and B [out, r], flat (lora.ts); spilled: one layer's",
  "lora.grad": "the gradients of lora.params: one layer's or all",
  "lora.h":
    "[slots, T, r] the adapters' x·Aᵀ (slot 0 attention's, then gate, up, down of each sequence of the batch) and, in training, G·B (slots 4–7)",
  "lora.h.attn": "[T, r] x·Aᵀ of the attention linear in use",
  "lora.h.gate": "[T, r] xn·A_gateᵀ",
  "lora.h.up": "[T, r] xn·A_upᵀ",
  "lora.h.down": "[T, r] m·A_downᵀ",
  "lora.gh.attn": "[T, r] s·G·B of the attention linear in use",
  "lora.gh.gate": "[T, r] s·dG·B_gate",
  "lora.gh.up": "[T, r] s·dU·B_up",
  "lora.gh.down": "[T, r] s·G·B_down",
  "act.x": "[B, T, d] residual stream of each sequence of the batch (training: [T, max(d, H·hd)])",
  "act.xn": "[B, T, d] normed input of a block (the MLP's too), per sequence of the batch",
  "act.q": "[T, H·hd] queries",
  "act.k": "[T, KV·hd] keys",
  "act.v": "[T, KV·hd] values",
  "kv.k": "[L, P, KV·hd] key cache (generate)",
  "kv.v": "[L, P, KV·hd] value cache (generate)",
  "act.att": "[T, H·hd] attention output",
  "act.scores": "[T, P] one head's scores / probabilities",
  "act.rstd": "[T] 1/rms of a block's input norm",
  "mlp.gu": "[2, T, C] gate and up chunks (training: also the views over it)",
  "mlp.g": "[T, C] gate chunk (the forward's SwiGLU output is written over it)",
  "mlp.u": "[T, C] up chunk",
  "mlp.m": "[T, C] SwiGLU output / its gradient (training)",
  "saved": "[slots, T, d] saved layer inputs (f32 or bf16)",
  "saved.decoded": "[T, d] a bf16 saved input decoded to f32, or a spilled one read back",
  "grad.x": "[T, d] gradient of the residual stream",
  "grad.xn": "[T, d] gradient of a normed block input",
  "grad.q": "[T, H·hd] gradient of the queries",
  "grad.k": "[T, KV·hd] gradient of the keys",
  "grad.v": "[T, KV·hd] gradient of the values",
  "grad.att": "[T, H·hd] gradient of the attention output",
  "grad.scores": "[T, T] one head's score gradient",
  "keep.mlp": "[layers, 2, T, I] gate and up projections of the last keep.mlp layers (budget schedule)",
  "keep.attn":
    "[layers, T, 2d + 2·H·hd + 2·KV·hd + 1] xn, q, k, v, attention output, x2, 1/rms of the last keep.attention layers",
  "mebp.x2": "[T, d] MeBP: the MLP block's input",
  "mebp.P": "[H, T, T] MeBP: every head's attention probabilities",
  "mebp.g": "[T, I] MeBP: gate pre-activations",
  "mebp.u": "[T, I] MeBP: up projections",
  "mebp.m": "[T, I] MeBP: SwiGLU outputs",
  "mebp.h": "[7, T, r] MeBP: each adapter's x·Aᵀ (q, k, v, o, gate, up, down)",
  "opt.m": "AdamW first moments (like lora.params; spilled: one layer's)",
  "opt.v": "AdamW second moments (like lora.params; spilled: one layer's)",
  "loss.logits": "[T, Vc] logits of one vocabulary chunk",
  "loss.rows": "[B, 6, T] per-row max, sum, target logit, logsumexp, loss, weight of each sequence",
  "loss.targets": "[B, T] i32 target token per row (−1: none) of each sequence",
  "loss.erow": "[d] one decoded LM-head row (the target's, for the gradient)",
} as const;

/** The name of a buffer of a plan: a misspelt one is a compile error. */
export type BufferName = keyof typeof BUFFERS;

/** Byte pointer of every buffer of a plan; one the plan lacks throws when read (never address 0). */
export type Buffers = { readonly [K in BufferName]: number };

/** A region of a plan, named by a buffer name. */
export interface BufferRegion extends RegionSpec {
  name: BufferName;
}

/**
 * A buffer that lives inside a region rather than in one of its own: `name` starts `offset` bytes into
 * region `over` and takes `bytes`. Either a part of the region (it is sized for all its parts) or memory
 * shared with another buffer whose lifetime does not overlap; `why` says which, and why it is free then.
 */
export interface BufferView {
  name: BufferName;
  over: BufferName;
  offset: number;
  bytes: number;
  why: string;
}

/** The regions of a run, in the order they are laid out, and the views that share them. */
export interface BufferPlan {
  regions: BufferRegion[];
  views: BufferView[];
}

/** The regions of a run, in the order they are laid out. */
export function planRegions(cfg: ModelConfig, o: PlanOptions): RegionSpec[] {
  return planBuffers(cfg, o).regions;
}

/**
 * Every buffer of a run: the regions, laid out in this order, and the views over them. All lifetime
 * reasoning (which buffers may share memory, and why) is here.
 */
export function planBuffers(cfg: ModelConfig, o: PlanOptions): BufferPlan {
  const D = dims(cfg, o);
  const { T, d, qd, kvd, C, Vc, P, L, r, B } = D;
  const f = 4;
  const regions: BufferRegion[] = [];
  const views: BufferView[] = [];
  const add = (name: BufferName, bytes: number, purpose: string) => regions.push({ name, bytes, purpose });
  const view = (name: BufferName, over: BufferName, offset: number, bytes: number, why: string) =>
    views.push({ name, over, offset, bytes, why });
  const train = o.mode === "train", backward = train && o.method !== "mezo";

  const layer = layerLayout(cfg, o.format, o.bf16Scales ?? false, o.mlpChunk ?? MLP_CHUNK);
  if (o.resident) add("weights.layers", L * layer.bytes, `all ${L} layers' weights, resident (${o.format})`);
  else {
    add(
      "weights.attn",
      layer.attentionBytes,
      `one layer's attention weights and norms (${o.format}), streamed`,
    );
    add(
      "weights.mlp",
      2 * slotBytes(layer.chunkBytes),
      `two chunks of a layer's MLP weights (${o.format}), streamed: one in use, the next read ahead`,
    );
  }
  const vocab = matrixSlot(Vc, d, o.format, o.bf16Scales ?? false, 0);
  add(
    "weights.vocab",
    2 * slotBytes(vocab.bytes),
    `2 × ${Vc} embedding rows: token gather, LM-head chunk in use and the next read ahead (${o.format})`,
  );
  add("weights.norm", d * f, "final RMSNorm weight");
  add("rope", 2 * P * (D.hd / 2) * f, `cos/sin tables for ${P} positions`);
  add("gemm.scratch", o.gemmScratch, "GEMM packing buffers");

  const spill = train && (o.spill ?? false);
  if (spill) checkSpill(o);
  if (o.lora) {
    add(
      "lora.params",
      (spill ? o.lora.layerElements : o.lora.totalElements) * f,
      `LoRA A and B, rank ${o.lora.rank} on ${o.lora.targets.join(",")}${
        spill ? ": one layer's, the rest spilled" : ""
      }`,
    );
  }

  // training: d(attention output) lives here once the MLP backward no longer needs the residual
  const ofBatch = B > 1 ? ` × ${B} sequences` : "";
  add(
    "act.x",
    B * T * (backward ? Math.max(d, qd) : d) * f,
    `residual stream [T, d]${ofBatch}${backward ? "; then d(attention output) [T, H·hd]" : ""}`,
  );
  add("act.xn", B * T * d * f, `normed input of a block [T, d]${ofBatch}`);
  add("act.q", T * qd * f, "queries [T, H·hd]");
  if (o.mode === "generate") {
    add("kv.k", L * P * kvd * f, `key cache [L, ${P}, KV·hd]`);
    add("kv.v", L * P * kvd * f, `value cache [L, ${P}, KV·hd]`);
  } else {
    add("act.k", T * kvd * f, "keys [T, KV·hd]");
    add("act.v", T * kvd * f, "values [T, KV·hd]");
  }
  // training: the loss's logits live here too (the loss runs between the layers' forward and backward)
  add(
    "act.att",
    T * (train ? Math.max(qd, Vc) : qd) * f,
    `attention output [T, H·hd]${train ? `; the loss's logits [T, ${Vc}]` : ""}${
      backward ? "; then d(queries)" : ""
    }`,
  );
  add("act.scores", T * P * f, "one head's scores / probabilities [T, T]");
  add("act.rstd", T * f, "RMSNorm 1/rms per row");
  add("mlp.gu", 2 * T * C * f, `gate and up chunks 2 × [T, ${C}]`);
  view("mlp.g", "mlp.gu", 0, T * C * f, "part: the gate chunk");
  view("mlp.u", "mlp.gu", T * C * f, T * C * f, "part: the up chunk");
  if (backward) {
    view(
      "grad.att",
      "act.x",
      0,
      T * qd * f,
      "shared: the residual stream (the MLP's input) is dead once the MLP backward is done",
    );
    view(
      "grad.q",
      "act.att",
      0,
      T * qd * f,
      "shared: the attention output is dead once o_proj's gradients are done, before the first head's",
    );
    if (o.savedInputDtype === "bf16" || spill) {
      view(
        "saved.decoded",
        "act.x",
        0,
        T * d * f,
        `shared: ${spill ? "read back" : "decoded"} after the last head, when d(attention output) is dead`,
      );
    }
  }
  if (r) {
    // the attention's is used within one linear; gate, up and down live across the MLP's chunks
    const slots = o.mode === "train" ? 8 : 1 + 3 * B;
    add(
      "lora.h",
      slots * T * r * f,
      `adapters' x·Aᵀ${o.mode === "train" ? " and G·B" : ""} [T, r] ×${slots}`,
    );
    const names: BufferName[] = [
      "lora.h.attn",
      "lora.h.gate",
      "lora.h.up",
      "lora.h.down",
      "lora.gh.attn",
      "lora.gh.gate",
      "lora.gh.up",
      "lora.gh.down",
    ];
    for (let i = 0; i < (o.mode === "train" ? 8 : 4); i++) {
      view(names[i], "lora.h", i * T * r * f, T * r * f, `part: slot ${i}`);
    }
  }
  if (o.mode === "train" && o.method === "mezo") {
    if (o.gradBuffer) {
      add("lora.grad", o.lora!.totalElements * f, "MeZO's gradient estimate (grad command only)");
    }
  } else if (o.mode === "train") trainRegions(o, D, add, view);
  if (train) {
    view(
      "loss.logits",
      "act.att",
      0,
      T * Vc * f,
      "shared: the loss runs after the last layer's forward and before the first backward; no attention output is alive",
    );
  } else add("loss.logits", T * Vc * f, `logits of one vocabulary chunk [T, ${Vc}]`);
  add("loss.rows", B * 6 * T * f, `per-row max, sum, target logit, logsumexp, loss, weight${ofBatch}`);
  add("loss.targets", B * T * 4, `target token per row (i32)${ofBatch}`);
  if (o.mode === "train") add("loss.erow", d * f, "one decoded LM-head row (the target's, for the gradient)");
  checkViews(regions, views);
  return { regions, views };
}

/** Every view lies inside a region of the plan. */
function checkViews(regions: readonly BufferRegion[], views: readonly BufferView[]): void {
  for (const v of views) {
    const over = regions.find((r) => r.name === v.over);
    if (!over) throw new Error(`memory plan: view "${v.name}" is over "${v.over}", which the plan lacks`);
    if (v.offset < 0 || v.offset + v.bytes > over.bytes) {
      throw new Error(
        `memory plan: view "${v.name}" (${v.bytes} bytes from ${v.offset}) overruns "${v.over}" (${over.bytes})`,
      );
    }
  }
}

/**
 * The pointers of a laid-out plan's buffers: each region's offset, each view's region offset plus its own.
 * A buffer the plan lacks throws when read, naming it.
 */
export function bufferPointers(plan: MemoryPlan, views: readonly BufferView[]): Buffers {
  const at = new Map<string, number>(plan.regions.map((r) => [r.name, r.offset]));
  for (const v of views) at.set(v.name, at.get(v.over)! + v.offset);
  const p: Record<string, number> = {};
  for (const name of Object.keys(BUFFERS)) {
    const ptr = at.get(name);
    if (ptr !== undefined) p[name] = ptr;
    else {
      Object.defineProperty(p, name, {
        get() {
          throw new Error(`memory plan has no buffer "${name}" (not planned for this mode/method)`);
        },
      });
    }
  }
  return Object.freeze(p) as Buffers;
}

/** Regions only training needs: saved layer inputs, the backward working set, gradients, optimizer state. */
function trainRegions(
  o: PlanOptions,
  D: Dims,
  add: (name: BufferName, bytes: number, purpose: string) => void,
  view: (name: BufferName, over: BufferName, offset: number, bytes: number, why: string) => void,
) {
  const { T, d, kvd, C, L } = D;
  const f = 4;
  const lora = o.lora;
  if (!lora) throw new Error("training needs a LoRA layout");
  const bf16 = o.savedInputDtype === "bf16";
  const every = o.savedInputEvery ?? 1;
  const order = recomputeOrder(L, o);
  const spill = o.spill ?? false;
  // spilled, the saved inputs are all in the file: read back over act.x ("saved.decoded")
  if (!spill) {
    add(
      "saved",
      order.slots * T * d * (bf16 ? 2 : 4),
      `saved layer inputs, ${order.slots} × [T, d] (${bf16 ? "bf16" : "f32"}${
        order.recomputed ? `; ${order.recomputed} layer forwards recomputed` : ""
      })`,
    );
  }
  add("mlp.m", T * Math.max(C, T) * f, `SwiGLU output / its gradient [T, ${C}]; then d(scores) [T, T]`);
  add("grad.x", T * d * f, "gradient of the residual stream [T, d]");
  add("grad.xn", T * d * f, "gradient of a normed block input [T, d]");
  add("grad.k", T * kvd * f, "gradient of the keys [T, KV·hd]");
  add("grad.v", T * kvd * f, "gradient of the values [T, KV·hd]");
  view(
    "grad.scores",
    "mlp.m",
    0,
    T * T * f,
    "shared: the attention backward runs after the MLP's, whose SwiGLU output is then dead",
  );
  const keep = o.keep;
  if (keep && (keep.mlp > 0 || keep.attention > 0)) {
    for (const [what, n] of Object.entries(keep)) {
      if (!Number.isInteger(n) || n < 0 || n > L) {
        throw new Error(`keep.${what} must be a whole number of layers in 0…${L}, got ${n}`);
      }
    }
    if ((o.method ?? "mesp") !== "mesp" || bf16 || every !== 1 || order.slots < L) {
      throw new Error("kept forward tensors need MeSP with every layer's input saved in f32");
    }
    const kept = keptFloats(D);
    if (keep.mlp) {
      add("keep.mlp", keep.mlp * kept.mlp * f, `gate and up [T, ${D.I}] × 2 of ${keep.mlp} layer(s), kept`);
    }
    if (keep.attention) {
      add(
        "keep.attn",
        keep.attention * kept.attention * f,
        `xn, q, k, v, attention output, MLP input of ${keep.attention} layer(s), kept`,
      );
    }
  }
  if (o.method === "mebp") {
    const { H, I, r } = D;
    add("mebp.x2", T * d * f, "MeBP: the MLP block's input, kept [T, d]");
    add("mebp.P", H * T * T * f, `MeBP: every head's attention probabilities, kept [H, T, T]`);
    add("mebp.g", T * I * f, "MeBP: gate pre-activations, kept [T, intermediate]");
    add("mebp.u", T * I * f, "MeBP: up projections, kept [T, intermediate]");
    add("mebp.m", T * I * f, "MeBP: SwiGLU outputs, kept [T, intermediate]");
    add("mebp.h", 7 * T * r * f, "MeBP: each adapter's x·Aᵀ, kept 7 × [T, r]");
  }
  // MeBP holds all LoRA gradients until the optimizer step, like an autograd engine
  const whole = (o.gradBuffer ?? false) || o.method === "mebp";
  add(
    "lora.grad",
    (whole ? lora.totalElements : lora.layerElements) * f,
    whole
      ? "LoRA gradients of every layer (accumulation / clipping)"
      : "one layer's LoRA gradients (update fused into backward)",
  );
  if (o.optimizer === "adamw") {
    const n = spill ? lora.layerElements : lora.totalElements,
      of = spill ? ": one layer's, the rest spilled" : "";
    add("opt.m", n * f, `AdamW first moments${of}`);
    add("opt.v", n * f, `AdamW second moments${of}`);
  }
}

/** Refuses a spill where a step needs more than one layer's adapter at a time, or rounded saved inputs. */
function checkSpill(o: PlanOptions): void {
  const why = (o.method ?? "mesp") !== "mesp"
    ? `the ${o.method} method`
    : o.gradBuffer
    ? "a whole-model gradient buffer (gradient accumulation or clipping)"
    : o.savedInputDtype === "bf16"
    ? "bf16 saved inputs"
    : undefined;
  if (why) {
    throw new Error(
      `spill needs MeSP training with f32 saved inputs and the update fused into each layer's backward, not ${why}`,
    );
  }
}
