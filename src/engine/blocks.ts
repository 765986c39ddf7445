/**
 * Where each block's tensors go, resolved once when the engine is made (the plan fixes every pointer), so
 * no pass builds a descriptor per layer: the working buffers of a layer's forward and, per layer, what a
 * budget schedule (`schedule.ts`) keeps from the training forward for the backward. The last `keep.mlp`
 * layers keep their MLP's gate and up projections (`keep.mlp`, `[2, T, I]` a layer), the last
 * `keep.attention` layers their attention tensors (`keep.attn`: xn, q, k, v, attention output, the MLP's
 * input x2, 1/rms), written where the working buffers would have been (`kept.ts`).
 *
 * @module
 */
import { type Buffers, type Dims, type KeepSchedule, keptFloats } from "./plan.ts";

/** Where keys and values are written and read: byte pointers of `[positions, KV·hd]` rows. */
export interface KeyValues {
  k: number;
  v: number;
}

/**
 * Where an attention block's tensors go: the residual stream `x` `[T, d]` it reads and adds to, its normed
 * input `xn` `[T, d]` and 1/rms `rstd`, the queries `q` and the attention output `att` `[T, H·hd]`; head h's
 * probabilities at `probs + h·probsStride` (stride 0: one buffer, recomputed per head), and `h[i]` holds
 * x·Aᵀ of q, k, v, o.
 */
export interface AttentionBuffers {
  x: number;
  xn: number;
  rstd: number;
  q: number;
  att: number;
  probs: number;
  probsStride: number;
  h: readonly [number, number, number, number];
}

/**
 * Where an MLP block's tensors go: the residual stream `x` it reads and adds to, its normed input `xn` and
 * 1/rms `rstd`, the adapters' products `hg`, `hu`,
 * `hd`, and chunk [c0, c1)'s gate and up at `g + c0·step`, `u + c0·step` (`[T, ·]`, leading dimension `ld`),
 * its SwiGLU output at `m + c0·mStep` (leading dimension `ldm`). Chunk buffers have step 0 (reused by every
 * chunk); whole `[T, I]` tensors step 4.
 */
export interface MlpBuffers {
  x: number;
  xn: number;
  rstd: number;
  hg: number;
  hu: number;
  hd: number;
  g: number;
  u: number;
  ld: number;
  step: number;
  m: number;
  ldm: number;
  mStep: number;
}

/** A layer's kept attention tensors. */
export interface KeptAttention {
  kv: KeyValues;
  buffers: AttentionBuffers;
  /** The MLP block's input (the residual after attention) `[T, d]`. */
  x2: number;
}

/** Pointers of the loss's per-row vectors of one sequence (`[T]` each, in `loss.rows`) and its targets (i32). */
export interface LossRows {
  max: number;
  sum: number;
  tlogit: number;
  lse: number;
  loss: number;
  weight: number;
  targets: number;
}

/**
 * One sequence's buffers in a batch (eval mode runs `D.B` sequences per pass over the weights; slot 0 is
 * every other mode's only one): its residual stream `x` and final normed `xn` `[T, d]`, the attention and MLP
 * descriptors over them, and its loss rows.
 */
export interface BatchSlot {
  x: number;
  xn: number;
  attention: AttentionBuffers;
  mlp: MlpBuffers;
  loss: LossRows;
}

/** Every block descriptor an engine's passes use. */
export interface Blocks {
  /**
   * Where layer l writes and reads its keys and values: its rows of the key/value cache (generation), else
   * `act.k`/`act.v` for every layer.
   */
  readonly kv: readonly KeyValues[];
  /** The attention block's working buffers: one head's scores, one adapter product at a time. */
  readonly attention: AttentionBuffers;
  /** The forward's MLP working buffers: chunk buffers, the SwiGLU output over the gate chunk (dead by then). */
  readonly mlp: MlpBuffers;
  /** Layer l's kept attention tensors, or undefined when the schedule does not keep them. */
  readonly keptAttention: readonly (KeptAttention | undefined)[];
  /** Layer l's MLP buffers with its kept gate and up, or undefined when the schedule does not keep them. */
  readonly keptMlp: readonly (MlpBuffers | undefined)[];
  /** The batch's slots (`D.B` of them); slot 0 is over the buffers above. */
  readonly batch: readonly BatchSlot[];
}

/** The slot of layer `l` among the last `n` layers, or −1 when it is not one of them. */
function slotOf(layers: number, l: number, n: number): number {
  return l >= layers - n ? l - (layers - n) : -1;
}

/** What the descriptors depend on besides the buffers' pointers and the sizes. */
export interface BlockOptions {
  /** LoRA adapters are applied (their `x·Aᵀ` buffers exist). */
  lora: boolean;
  /** What the budget schedule keeps. */
  keep?: KeepSchedule;
  /** Keys and values go to a per-layer cache (`kv.k`, `kv.v`: generation). */
  cache: boolean;
}

/** Resolves every block descriptor of a plan's buffers `p` (called once, by the engine's constructor). */
export function resolveBlocks(p: Buffers, D: Dims, options: BlockOptions): Blocks {
  const lora = options.lora, h = lora ? p["lora.h.attn"] : 0, f = 4;
  const attention: AttentionBuffers = {
    x: p["act.x"],
    xn: p["act.xn"],
    rstd: p["act.rstd"],
    q: p["act.q"],
    att: p["act.att"],
    probs: p["act.scores"],
    probsStride: 0,
    h: [h, h, h, h],
  };
  const mlp: MlpBuffers = {
    x: p["act.x"],
    xn: p["act.xn"],
    rstd: p["act.rstd"],
    hg: lora ? p["lora.h.gate"] : 0,
    hu: lora ? p["lora.h.up"] : 0,
    hd: lora ? p["lora.h.down"] : 0,
    g: p["mlp.g"],
    u: p["mlp.u"],
    ld: D.C,
    step: 0,
    m: p["mlp.g"],
    ldm: D.C,
    mStep: 0,
  };
  const keep = options.keep, floats = keptFloats(D);
  const keptAttention = Array.from({ length: D.L }, (_, l): KeptAttention | undefined => {
    const s = slotOf(D.L, l, keep?.attention ?? 0);
    if (s < 0) return undefined;
    const { T, d, qd, kvd } = D;
    const xn = p["keep.attn"] + s * floats.attention * f, q = xn + T * d * f, k = q + T * qd * f;
    const v = k + T * kvd * f, att = v + T * kvd * f, x2 = att + T * qd * f, rstd = x2 + T * d * f;
    return { kv: { k, v }, buffers: { ...attention, xn, rstd, q, att }, x2 };
  });
  const keptMlp = Array.from({ length: D.L }, (_, l): MlpBuffers | undefined => {
    const s = slotOf(D.L, l, keep?.mlp ?? 0);
    if (s < 0) return undefined;
    const g = p["keep.mlp"] + s * floats.mlp * f, u = g + D.T * D.I * f;
    // the SwiGLU output goes to the `mlp.m` chunk buffer: g must survive
    return { ...mlp, g, u, ld: D.I, step: 4, m: p["mlp.m"], ldm: D.C, mStep: 0 };
  });
  const layerKv = options.cache ? undefined : { k: p["act.k"], v: p["act.v"] };
  const kvBytes = D.P * D.kvd * f;
  const kv = Array.from(
    { length: D.L },
    (_, l) => layerKv ?? { k: p["kv.k"] + l * kvBytes, v: p["kv.v"] + l * kvBytes },
  );
  return { kv, attention, mlp, keptAttention, keptMlp, batch: batchSlots(p, D, attention, mlp, lora) };
}

/**
 * Slot s of the batch: rows s·T… of `act.x` and `act.xn`, its gate, up and down adapter products at slots
 * 1 + 3s… of `lora.h` (the attention's slot 0 is shared: used within one linear), its loss rows and
 * targets; the scratch buffers (queries, attention, the MLP's chunks, 1/rms) are shared, used within one
 * block of one sequence.
 */
function batchSlots(
  p: Buffers,
  D: Dims,
  attention: AttentionBuffers,
  mlp: MlpBuffers,
  lora: boolean,
): BatchSlot[] {
  const { T, d, r } = D, f = 4;
  return Array.from({ length: D.B }, (_, s): BatchSlot => {
    const x = p["act.x"] + s * T * d * f, xn = p["act.xn"] + s * T * d * f;
    const h = (i: number) => lora ? p["lora.h"] + (1 + 3 * s + i) * T * r * f : 0;
    const b = p["loss.rows"] + s * 6 * T * f;
    return {
      x,
      xn,
      attention: s === 0 ? attention : { ...attention, x, xn },
      mlp: s === 0 ? mlp : { ...mlp, x, xn, hg: h(0), hu: h(1), hd: h(2) },
      loss: {
        max: b,
        sum: b + T * f,
        tlogit: b + 2 * T * f,
        lse: b + 3 * T * f,
        loss: b + 4 * T * f,
        weight: b + 5 * T * f,
        targets: p["loss.targets"] + s * T * 4,
      },
    };
  });
}
