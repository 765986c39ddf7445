/**
 * The memory plan of a run: every region of the arena, with its bytes and purpose, computed from the model
 * config and the options before anything is loaded (docs/memory_plan.md). `plan` prints it; the engine lays
 * it out once and never allocates again.
 *
 * @module
 */
import type { RegionSpec } from "../runtime/arena.ts";
import type { ModelConfig } from "../model/config.ts";
import { GROUP, layerLayout, matrixSlot, MLP_CHUNK, type PackFormat } from "../model/pack_layout.ts";
import type { LoraLayout } from "./lora.ts";

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
  /** Training method (train mode). */
  method?: Method;
  /** Optimizer (train mode). */
  optimizer?: OptimizerName;
  /**
   * Element type of the layer checkpoints (train mode): "f32" (default, gradients exact) or "bf16" (half the
   * memory; the backward recomputes each layer from a rounded input, so gradients are close, not exact).
   */
  ckptDtype?: "f32" | "bf16";
  /** Keep every k-th layer's input only (default 1: every layer); see `checkpoints.ts`. */
  ckptEvery?: number;
  /** Keep a whole-model gradient buffer (gradient accumulation or clipping; train mode). */
  gradBuffer?: boolean;
  /** Scratch bytes one GEMM call needs (from the kernels). */
  gemmScratch: number;
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
  };
}

/** A streamed weight slot's size, rounded so that the second of a pair starts aligned for SIMD loads. */
function slotBytes(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

/** The regions of a run, in the order they are laid out. */
export function planRegions(cfg: ModelConfig, o: PlanOptions): RegionSpec[] {
  const D = dims(cfg, o);
  const { T, d, qd, kvd, C, Vc, P, L, r } = D;
  const f = 4;
  const regions: RegionSpec[] = [];
  const add = (name: string, bytes: number, purpose: string) => regions.push({ name, bytes, purpose });

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

  if (o.lora) {
    add(
      "lora.params",
      o.lora.totalElements * f,
      `LoRA A and B, rank ${o.lora.rank} on ${o.lora.targets.join(",")}`,
    );
  }

  add("act.x", T * d * f, "residual stream [T, d]");
  add("act.xn", T * d * f, "normed input of a block [T, d]");
  add("act.q", T * qd * f, "queries [T, H·hd]");
  if (o.mode === "generate") {
    add("kv.k", L * P * kvd * f, `key cache [L, ${P}, KV·hd]`);
    add("kv.v", L * P * kvd * f, `value cache [L, ${P}, KV·hd]`);
  } else {
    add("act.k", T * kvd * f, "keys [T, KV·hd]");
    add("act.v", T * kvd * f, "values [T, KV·hd]");
  }
  add("act.att", T * qd * f, "attention output [T, H·hd]");
  add("act.scores", T * P * f, "one head's scores / probabilities [T, T]");
  add("act.rstd", T * f, "RMSNorm 1/rms per row");
  // gate and up chunks; in training also the queries' gradient (the attention backward runs after the MLP's)
  const gu = Math.max(2 * T * C, o.mode === "train" && o.method !== "mezo" ? T * qd : 0) * f;
  add(
    "mlp.gu",
    gu,
    `gate and up chunks 2 × [T, ${C}]${o.mode === "train" ? "; then d(queries) [T, H·hd]" : ""}`,
  );
  if (r) {
    const slots = o.mode === "train" ? 8 : 4;
    add(
      "lora.h",
      slots * T * r * f,
      `adapters' x·Aᵀ${o.mode === "train" ? " and G·B" : ""} [T, r] ×${slots}`,
    );
  }
  if (o.mode === "train" && o.method === "mezo") {
    if (o.gradBuffer) {
      add("lora.grad", o.lora!.totalElements * f, "MeZO's gradient estimate (grad command only)");
    }
  } else if (o.mode === "train") trainRegions(o, D, add);
  add("loss.logits", T * Vc * f, `logits of one vocabulary chunk [T, ${Vc}]`);
  add("loss.rows", 6 * T * f, "per-row max, sum, target logit, logsumexp, loss, weight");
  add("loss.targets", T * 4, "target token per row (i32)");
  if (o.mode === "train") add("loss.erow", d * f, "one decoded LM-head row (the target's, for the gradient)");
  return regions;
}

/** Checkpoint slots a plan needs: one per segment plus the segment's spares. */
export function checkpointSlots(layers: number, every: number): number {
  return Math.ceil(layers / every) + every - 1;
}

/** Regions only training needs: layer checkpoints, the backward working set, gradients, optimizer state. */
function trainRegions(o: PlanOptions, D: Dims, add: (name: string, bytes: number, purpose: string) => void) {
  const { T, d, qd, kvd, C, L } = D;
  const f = 4;
  const lora = o.lora;
  if (!lora) throw new Error("training needs a LoRA layout");
  const bf16 = o.ckptDtype === "bf16";
  const every = o.ckptEvery ?? 1;
  if (!Number.isInteger(every) || every < 1) {
    throw new Error(`checkpoint interval must be a positive integer, got ${every}`);
  }
  const slots = checkpointSlots(L, every);
  add(
    "ckpt",
    slots * T * d * (bf16 ? 2 : 4),
    `layer inputs, ${slots} × [T, d] (${bf16 ? "bf16" : "f32"}${
      every > 1 ? `; 1 in ${every} kept, ${every - 1} recomputed per segment` : ""
    })`,
  );
  // the attention backward's d(attention output) reuses this region: the MLP input is dead by then
  add("act.xn2", T * Math.max(d, qd) * f, "normed MLP input [T, d]; then d(attention output) [T, H·hd]");
  add("act.rstd2", T * f, "MLP RMSNorm 1/rms per row");
  add("mlp.m", T * C * f, `SwiGLU output / its gradient [T, ${C}]`);
  add("grad.x", T * d * f, "gradient of the residual stream [T, d]");
  add("grad.xn", T * d * f, "gradient of a normed block input [T, d]");
  add("grad.k", T * kvd * f, "gradient of the keys [T, KV·hd]");
  add("grad.v", T * kvd * f, "gradient of the values [T, KV·hd]");
  add("grad.scores", T * T * f, "one head's score gradient [T, T]");
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
    add("opt.m", lora.totalElements * f, "AdamW first moments");
    add("opt.v", lora.totalElements * f, "AdamW second moments");
  }
}
