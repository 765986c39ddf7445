/**
 * A memory budget that buys speed: before a MeSP run, the fastest exact schedule whose plan fits the budget
 * (docs/memory_plan.md, "Schedules"). A schedule says which layers keep their inputs (`ckptEvery`) and which
 * keep forward tensors so that their recompute in the backward is skipped (`keep`):
 *
 * - MLP: the gate and up projections `[T, I]` (2·T·I floats a layer). The backward then recomputes only the
 *   norm, the adapters' inputs and SwiGLU, not the two largest GEMMs of the layer.
 * - attention: the normed input, q, k, v, the attention output and the MLP's input (`T·(2d + 2·H·hd +
 *   2·KV·hd + 1)` floats a layer). The backward then skips the q, k, v and o projections (each head's
 *   probabilities are still recomputed: q·kᵀ and a softmax, cheap for their size).
 *
 * Every schedule runs the same kernels on the same operands in the same order (what is kept is what the
 * recompute would have produced, bit for bit), so the gradients are bitwise the same for every budget
 * (`tests/schedule_test.ts`). Not part of a schedule: the vocabulary chunk, whose size changes the order of
 * the loss's sums (so its bits), and bf16 checkpoints, which are not exact.
 *
 * Time is predicted by counting GEMM FLOPs (they are > 90 % of a step, `bench:step`), and converted to
 * seconds at the GEMM rate `bench:step` measures.
 *
 * @module
 */
import type { ModelConfig } from "../model/config.ts";
import { planMemory } from "../runtime/arena.ts";
import { checkpointSlots, dims, type KeepSchedule, planBuffers, type PlanOptions } from "./plan.ts";

/** GEMM throughput assumed for predicted times: one thread of `bench:step` (45 GFLOP/s, 2026-11-28). */
export const GFLOPS_PER_THREAD = 45;
/** Measured 2-thread speedup of a step (`bench:step`: 1.67–1.81×) per extra thread, for predictions. */
const THREAD_GAIN = 0.7;

/** A chosen schedule, with what it is predicted to cost. */
export interface Schedule {
  /** Keep every k-th layer's input. */
  ckptEvery: number;
  /** Layers keeping forward tensors (the last `mlp` layers their MLP's, the last `attention` their attention's). */
  keep: KeepSchedule;
  /** Arena bytes of its plan. */
  arenaBytes: number;
  /** GEMM work of one step (FLOPs) and that of the default schedule (every input kept, nothing else). */
  flops: number;
  defaultFlops: number;
}

/** GEMM FLOPs of one layer's parts, for sequences of T tokens. */
function layerFlops(cfg: ModelConfig, T: number, r: number) {
  const d = cfg.hiddenSize, qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim;
  const I = cfg.intermediateSize, hd = cfg.headDim, H = cfg.numHeads;
  const lora = (i: number, o: number) => 2 * T * r * (i + o);
  /** q, k, v, o projections with their adapters. */
  const attnLinears = 2 * T * d * (qd + 2 * kvd + qd) + lora(d, qd) + 2 * lora(d, kvd) + lora(qd, d);
  /** q·kᵀ and P·v over every head. */
  const heads = 2 * 2 * H * T * T * hd;
  /** gate and up projections, and down. */
  const gateUp = 2 * 2 * T * d * I + 2 * lora(d, I);
  const down = 2 * T * I * d + lora(I, d);
  const forward = attnLinears + heads + gateUp + down;
  // the backward of frozen weights is one product (dx = G·W) per forward one; attention's is two per head
  const backward = forward + heads + 2 * lora(d, qd) + 2 * lora(I, d);
  return { attnLinears, heads, gateUp, forward, backward };
}

/** GEMM FLOPs of one MeSP step of T tokens under a schedule. */
export function stepFlops(cfg: ModelConfig, o: PlanOptions, ckptEvery: number, keep: KeepSchedule): number {
  const D = dims(cfg, o), L = D.L, f = layerFlops(cfg, D.T, D.r);
  const head = 2 * 2 * D.T * D.V * D.d; // the LM head's logits and their gradient, once each
  // the backward recomputes each layer's forward but the down projection, less what is kept
  const recompute = L * (f.attnLinears + f.heads + f.gateUp) - keep.attention * f.attnLinears -
    keep.mlp * f.gateUp;
  // segments: every layer but the kept one of each segment is run forward once more
  const segments = ckptEvery > 1 ? (L - Math.ceil(L / ckptEvery)) * f.forward : 0;
  return L * (f.forward + f.backward) + recompute + segments + head;
}

/** Predicted seconds for `flops` of GEMM work on `threads` threads. */
export function predictedSeconds(flops: number, threads: number): number {
  return flops / (GFLOPS_PER_THREAD * 1e9 * (1 + THREAD_GAIN * (Math.max(1, threads) - 1)));
}

/** Whether the budget may choose a schedule for these options (exact MeSP training, nothing fixed). */
export function schedulable(o: PlanOptions): boolean {
  return o.mode === "train" && (o.method ?? "mesp") === "mesp" && (o.ckptDtype ?? "f32") === "f32" &&
    o.keep === undefined && o.lora !== undefined;
}

/** Arena bytes of the plan of `o` (with the kernels' `base` offset the arena starts at). */
function arenaBytes(cfg: ModelConfig, o: PlanOptions, base: number): number {
  return planMemory(planBuffers(cfg, o).regions, { base }).bytes;
}

/**
 * The fastest exact schedule whose arena fits `budget` bytes, for MeSP options `o` (`o.ckptEvery` fixed when
 * given); undefined when none fits. With room to spare, layers keep MLP tensors first (the most work saved
 * per byte), then attention tensors; short of room, every k-th input only, k the fastest that fits.
 */
export function chooseSchedule(
  cfg: ModelConfig,
  o: PlanOptions,
  budget: number,
  base = 0,
): Schedule | undefined {
  const D = dims(cfg, o), L = D.L, none: KeepSchedule = { mlp: 0, attention: 0 };
  const defaultFlops = stepFlops(cfg, o, 1, none);
  const at = (ckptEvery: number, keep: KeepSchedule): Schedule => ({
    ckptEvery,
    keep,
    arenaBytes: arenaBytes(cfg, { ...o, ckptEvery, keep }, base),
    flops: stepFlops(cfg, o, ckptEvery, keep),
    defaultFlops,
  });
  const fixed = o.ckptEvery;
  const first = at(fixed ?? 1, none);
  if (first.arenaBytes > budget) {
    if (fixed !== undefined) return undefined;
    // fewer kept inputs: the k with the least recompute among those that fit
    let best: Schedule | undefined;
    for (let k = 2; k <= L; k++) {
      if (checkpointSlots(L, k) >= checkpointSlots(L, k - 1) && best) continue;
      const s = at(k, none);
      if (s.arenaBytes <= budget && (!best || s.flops < best.flops)) best = s;
    }
    return best;
  }
  if ((fixed ?? 1) !== 1) return first;
  // room to spare: MLP tensors, layer by layer, then attention tensors (bytes grow linearly in layers)
  const fit = (keep: (n: number) => KeepSchedule): number => {
    let lo = 0, hi = L;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (at(1, keep(mid)).arenaBytes <= budget) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  };
  const mlp = fit((n) => ({ mlp: n, attention: 0 }));
  const attention = mlp === L ? fit((n) => ({ mlp: L, attention: n })) : 0;
  return at(1, { mlp, attention });
}

/** The schedule of `o` with the smallest arena (for a refusal's message). */
export function smallestSchedule(cfg: ModelConfig, o: PlanOptions, base = 0): Schedule {
  const D = dims(cfg, o), none: KeepSchedule = { mlp: 0, attention: 0 };
  const ks = o.ckptEvery !== undefined ? [o.ckptEvery] : Array.from({ length: D.L }, (_, i) => i + 1);
  let best: Schedule | undefined;
  for (const k of ks) {
    const s: Schedule = {
      ckptEvery: k,
      keep: none,
      arenaBytes: arenaBytes(cfg, { ...o, ckptEvery: k, keep: none }, base),
      flops: stepFlops(cfg, o, k, none),
      defaultFlops: stepFlops(cfg, o, 1, none),
    };
    if (!best || s.arenaBytes < best.arenaBytes) best = s;
  }
  return best!;
}

/** 2 → "2nd", 3 → "3rd", 4 → "4th", 11 → "11th", 22 → "22nd". */
function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : ["th", "st", "nd", "rd"][n % 10] ?? "th"}`;
}

/** One line describing a schedule: what is kept, the predicted work relative to the default's. */
export function describeSchedule(s: Schedule, L: number, threads = 1): string {
  const layers = (n: number) =>
    n === 0 ? "none" : n === L ? `all ${L}` : n === 1 ? `layer ${L - 1}` : `layers ${L - n}–${L - 1}`;
  const inputs = s.ckptEvery === 1
    ? "every layer's input"
    : `the input of every ${ordinal(s.ckptEvery)} layer`;
  const ratio = s.defaultFlops / s.flops;
  return `${inputs}; MLP gate/up kept: ${layers(s.keep.mlp)}; attention kept: ${layers(s.keep.attention)}; ` +
    `step ≈ ${(s.flops / 1e9).toFixed(0)} GFLOP (${ratio.toFixed(2)}× the default's speed), ` +
    `≈ ${predictedSeconds(s.flops, threads).toFixed(1)} s at ${GFLOPS_PER_THREAD} GFLOP/s per thread`;
}

/**
 * `o` with the schedule a `budget` (arena bytes) buys: the fastest exact one that fits, or, when none does,
 * the smallest (whose plan the caller then refuses, showing it). Options the budget may not schedule
 * (another method, bf16 checkpoints, a fixed `keep`) and no budget come back as they are.
 */
export function scheduled<O extends PlanOptions>(cfg: ModelConfig, o: O, budget: number | undefined): O {
  if (budget === undefined || !schedulable(o)) return o;
  const s = chooseSchedule(cfg, o, budget) ?? smallestSchedule(cfg, o);
  return { ...o, ckptEvery: s.ckptEvery, keep: s.keep };
}

/** The schedule options `o` run with (their `ckptEvery` and `keep`), with its predicted cost. */
export function scheduleOf(cfg: ModelConfig, o: PlanOptions): Schedule {
  const keep = o.keep ?? { mlp: 0, attention: 0 }, ckptEvery = o.ckptEvery ?? 1;
  return {
    ckptEvery,
    keep,
    arenaBytes: arenaBytes(cfg, o, 0),
    flops: stepFlops(cfg, o, ckptEvery, keep),
    defaultFlops: stepFlops(cfg, o, 1, { mlp: 0, attention: 0 }),
  };
}
