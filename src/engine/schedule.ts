/**
 * A memory budget that buys speed: before a MeSP run, the fastest exact schedule whose plan fits the budget
 * (docs/memory_plan.md, "Schedules"). A schedule says which layer inputs are saved (`savedInputs` slots, or
 * every `savedInputEvery`-th input, `recompute.ts`) and which layers keep forward tensors so that their
 * recompute in the backward is skipped (`keep`):
 *
 * - MLP: the gate and up projections `[T, I]` (2·T·I floats a layer). The backward then recomputes only the
 *   norm, the adapters' inputs and SwiGLU, not the two largest GEMMs of the layer.
 * - attention: the normed input, q, k, v, the attention output and the MLP's input (`T·(2d + 2·H·hd +
 *   2·KV·hd + 1)` floats a layer). The backward then skips the q, k, v and o projections (each head's
 *   probabilities are still recomputed: q·kᵀ and a softmax, cheap for their size).
 *
 * Every schedule runs the same kernels on the same operands in the same order (what is kept or recomputed
 * is what the forward produced, bit for bit), so the gradients are bitwise the same for every budget
 * (`tests/schedule_test.ts`). Not part of a schedule: the vocabulary chunk, whose size changes the order of
 * the loss's sums (so its bits), and bf16 saved inputs, which are not exact.
 *
 * Without a budget the CLI aims at {@linkcode DEFAULT_PEAK} ({@linkcode targetSchedule}): the fastest exact
 * schedule predicted to fit it, or, when none does, the fewest saved inputs whose recompute is at most one
 * forward pass more (L layer forwards; the extreme, 2 slots, would cost several); spilled (`spill.ts`), where
 * saved inputs cost the arena nothing, every input.
 *
 * Time is predicted by counting GEMM FLOPs (they are > 90 % of a step, `bench:step`), and converted to
 * seconds at the GEMM rate `bench:step` measures.
 *
 * @module
 */
import type { ModelConfig } from "../model/config.ts";
import { planMemory } from "../runtime/arena.ts";
import { dims, type KeepSchedule, planBuffers, type PlanOptions } from "./plan.ts";
import { recomputedLayers, recomputeOrder } from "./recompute.ts";

/** GEMM throughput assumed for predicted times: one thread of `bench:step` (45 GFLOP/s, 2026-11-28). */
const GFLOPS_PER_THREAD = 45;
/** Measured 2-thread speedup of a step (`bench:step`: 1.67–1.81×) per extra thread, for predictions. */
const THREAD_GAIN = 0.7;

/** Whole-process peak (bytes, 100 MB as `--max-memory` counts) the CLI's default schedule aims at without one. */
export const DEFAULT_PEAK = 100e6;

/** What a schedule fixes: the saved inputs (a count, or an interval) and the kept forward tensors. */
export interface ScheduleChoice {
  /** Save every k-th layer's input (`--ckpt-every`); undefined with `savedInputs`. */
  savedInputEvery?: number;
  /** Saved-input slots, with the fewest recomputes they allow; undefined: every `savedInputEvery`-th. */
  savedInputs?: number;
  /** Layers keeping forward tensors (the last `mlp` layers their MLP's, the last `attention` theirs). */
  keep: KeepSchedule;
}

/** A chosen schedule, with what it is predicted to cost. */
export interface Schedule extends ScheduleChoice {
  /** `[T, d]` saved-input slots of its plan, and the layer forwards its backward recomputes for them. */
  slots: number;
  recomputed: number;
  /** Arena bytes of its plan. */
  arenaBytes: number;
  /** GEMM work of one step (FLOPs) and that of every input saved, nothing else kept. */
  flops: number;
  defaultFlops: number;
}

const NONE: KeepSchedule = { mlp: 0, attention: 0 };

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
export function stepFlops(cfg: ModelConfig, o: PlanOptions, s: ScheduleChoice): number {
  const D = dims(cfg, o), L = D.L, f = layerFlops(cfg, D.T, D.r);
  const head = 2 * 2 * D.T * D.V * D.d; // the LM head's logits and their gradient, once each
  // the backward recomputes each layer's forward but the down projection, less what is kept
  const recompute = L * (f.attnLinears + f.heads + f.gateUp) - s.keep.attention * f.attnLinears -
    s.keep.mlp * f.gateUp;
  // inputs not saved: whole layer forwards run again to recompute them
  const inputs = recomputeOrder(L, s).recomputed * f.forward;
  return L * (f.forward + f.backward) + recompute + inputs + head;
}

/** Predicted seconds for `flops` of GEMM work on `threads` threads. */
export function predictedSeconds(flops: number, threads: number): number {
  return flops / (GFLOPS_PER_THREAD * 1e9 * (1 + THREAD_GAIN * (Math.max(1, threads) - 1)));
}

/** Whether the budget may choose a schedule for these options (exact MeSP training, nothing fixed). */
function schedulable(o: PlanOptions): boolean {
  return o.mode === "train" && (o.method ?? "mesp") === "mesp" && (o.savedInputDtype ?? "f32") === "f32" &&
    o.keep === undefined && o.lora !== undefined;
}

/** The saved-input part of options `o`, as given. */
function givenInputs(o: PlanOptions): Omit<ScheduleChoice, "keep"> {
  return { savedInputEvery: o.savedInputEvery, savedInputs: o.savedInputs };
}

/** `choice` for options `o`, with its predicted cost (the arena laid out from `base`). */
function costOf(cfg: ModelConfig, o: PlanOptions, choice: ScheduleChoice, base = 0): Schedule {
  const planned = { ...o, ...choice };
  const order = recomputeOrder(dims(cfg, o).L, planned);
  return {
    ...choice,
    slots: order.slots,
    recomputed: order.recomputed,
    arenaBytes: planMemory(planBuffers(cfg, planned).regions, { base }).bytes,
    flops: stepFlops(cfg, o, choice),
    defaultFlops: stepFlops(cfg, o, { keep: NONE }),
  };
}

/** The largest n in [lo, hi] with `fits(n)` (monotone: true up to some n), or undefined. */
function largest(lo: number, hi: number, fits: (n: number) => boolean): number | undefined {
  if (hi < lo || !fits(lo)) return undefined;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The fastest exact schedule whose arena fits `budget` bytes, for MeSP options `o` (`o.savedInputEvery` or
 * `o.savedInputs` fixed when given); undefined when none fits. With room to spare, layers keep MLP tensors
 * first (the most work saved per byte), then attention tensors; short of room, the most saved inputs that
 * fit (each one fewer costs more recompute).
 */
export function chooseSchedule(
  cfg: ModelConfig,
  o: PlanOptions,
  budget: number,
  base = 0,
): Schedule | undefined {
  const L = dims(cfg, o).L, given = givenInputs(o);
  const at = (inputs: Omit<ScheduleChoice, "keep">, keep = NONE) => costOf(cfg, o, { ...inputs, keep }, base);
  const first = at(given);
  if (first.arenaBytes > budget) {
    if (given.savedInputEvery !== undefined || given.savedInputs !== undefined) return undefined;
    // fewer saved inputs: the most that fit (arena bytes grow with them, recompute shrinks)
    const n = largest(2, L - 1, (n) => at({ savedInputs: n }).arenaBytes <= budget);
    return n === undefined ? undefined : at({ savedInputs: n });
  }
  if (first.slots < L || (given.savedInputEvery ?? 1) !== 1) return first;
  // room to spare: MLP tensors, layer by layer, then attention tensors (bytes grow linearly in layers)
  const fit = (keep: (n: number) => KeepSchedule) =>
    largest(0, L, (n) => at(given, keep(n)).arenaBytes <= budget) ?? 0;
  const mlp = fit((n) => ({ mlp: n, attention: 0 }));
  const attention = mlp === L ? fit((n) => ({ mlp: L, attention: n })) : 0;
  return at(given, { mlp, attention });
}

/** The schedule of `o` with the smallest arena (for a refusal's message). */
export function smallestSchedule(cfg: ModelConfig, o: PlanOptions, base = 0): Schedule {
  const given = givenInputs(o);
  if (given.savedInputEvery !== undefined || given.savedInputs !== undefined) {
    return costOf(cfg, o, { ...given, keep: NONE }, base);
  }
  return costOf(cfg, o, { savedInputs: Math.min(2, dims(cfg, o).L), keep: NONE }, base);
}

/**
 * The default schedule for a target of `target` arena bytes: the fastest exact one that fits, else the
 * fewest saved inputs whose recompute is at most one forward pass (L layer forwards); never refused.
 */
export function targetSchedule(cfg: ModelConfig, o: PlanOptions, target: number, base = 0): Schedule {
  const fits = chooseSchedule(cfg, o, target, base);
  if (fits) return fits;
  const given = givenInputs(o);
  if (given.savedInputEvery !== undefined || given.savedInputs !== undefined) {
    return smallestSchedule(cfg, o, base);
  }
  // spilled, the saved inputs cost the arena nothing: fewer would only cost time
  if (o.spill) return costOf(cfg, o, { keep: NONE }, base);
  const L = dims(cfg, o).L;
  let n = Math.min(2, L);
  while (n < L && recomputedLayers(L, n) > L) n++;
  return costOf(cfg, o, { savedInputs: n, keep: NONE }, base);
}

/** 2 → "2nd", 3 → "3rd", 4 → "4th", 11 → "11th", 22 → "22nd". */
function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : ["th", "st", "nd", "rd"][n % 10] ?? "th"}`;
}

/** One line describing a schedule: what is saved and kept, the predicted work relative to the default's. */
export function describeSchedule(s: Schedule, L: number, threads = 1): string {
  const layers = (n: number) =>
    n === 0 ? "none" : n === L ? `all ${L}` : n === 1 ? `layer ${L - 1}` : `layers ${L - n}–${L - 1}`;
  const every = s.savedInputEvery ?? 1;
  const recomputed = `${s.recomputed} layer forwards recomputed`;
  const inputs = every > 1
    ? `the input of every ${ordinal(every)} layer saved (${s.slots} slots; ${recomputed})`
    : s.slots < L
    ? `${s.slots} of ${L} layer inputs saved (${recomputed})`
    : "every layer's input saved";
  const ratio = s.defaultFlops / s.flops;
  return `${inputs}; MLP gate/up kept: ${layers(s.keep.mlp)}; attention kept: ${layers(s.keep.attention)}; ` +
    `step ≈ ${(s.flops / 1e9).toFixed(0)} GFLOP (${ratio.toFixed(2)}× the speed of every input saved), ` +
    `≈ ${predictedSeconds(s.flops, threads).toFixed(1)} s at ${GFLOPS_PER_THREAD} GFLOP/s per thread`;
}

/**
 * `o` with the schedule a `budget` (arena bytes) buys: the fastest exact one that fits, or, when none does,
 * the smallest (whose plan the caller then refuses, showing it). Without a budget, `target` (arena bytes)
 * chooses as {@linkcode targetSchedule} does, never refused. Options no budget may schedule (another method,
 * bf16 saved inputs, a fixed `keep`), and neither given, come back as they are.
 */
export function scheduled<O extends PlanOptions>(
  cfg: ModelConfig,
  o: O,
  budget: number | undefined,
  target?: number,
): O {
  if (!schedulable(o)) return o;
  let s: Schedule;
  if (budget !== undefined) s = chooseSchedule(cfg, o, budget) ?? smallestSchedule(cfg, o);
  else if (target !== undefined) s = targetSchedule(cfg, o, target);
  else return o;
  return { ...o, savedInputEvery: s.savedInputEvery, savedInputs: s.savedInputs, keep: s.keep };
}

/** The schedule options `o` run with (their saved inputs and `keep`), with its predicted cost. */
export function scheduleOf(cfg: ModelConfig, o: PlanOptions): Schedule {
  return costOf(cfg, o, { ...givenInputs(o), keep: o.keep ?? NONE });
}
