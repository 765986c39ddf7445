/**
 * The training loop: LoRA fine-tuning with exact MeSP gradients, batch 1 (one sequence per micro-step),
 * optional gradient accumulation and clipping, SGD or AdamW, validation, and a resumable training state. It
 * has no file-system code: persistence is a callback, so the loop runs in Deno, browsers and edge runtimes
 * alike.
 *
 * @module
 */
import { isThenable } from "../util/describe.ts";
import {
  checkBudget,
  checkOptions,
  checkPositions,
  checkSequences,
  LORA_OPTIONS,
  OPTIMIZER_OPTIONS,
  TRAIN_OPTIONS,
} from "./run_options.ts";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { Backward } from "../engine/backward.ts";
import { forwardBackward } from "../engine/step.ts";
import { sequenceLoss } from "../engine/sequence_loss.ts";
import { DEFAULT_ZO_EPS, stepSeed, zoEstimate, zoUpdate } from "../engine/mezo.ts";
import { checkAdapter, type OpenedAdapter, readAdapterLayer } from "../engine/adapter.ts";
import { type AdapterValues, type LayeredValues, layerOf } from "../engine/adapter_values.ts";
import { describeSpill } from "../engine/spill.ts";
import type { SpillFile } from "../io/spill_file.ts";
import { type LoraLayout, loraLayout, type LoraOptions, resolveTargets } from "../engine/lora.ts";
import {
  DEFAULT_SCHEDULE,
  defaultLr,
  defaultOptimizer,
  learningRate,
  Optimizer,
  OPTIMIZER_DEFAULTS,
  type OptimizerOptions,
} from "../engine/optimizer.ts";
import type { Method, OptimizerName } from "../engine/plan.ts";
import { describeSchedule } from "../engine/schedule.ts";
import { formatPlan, type MemoryPlan } from "../runtime/arena.ts";
import { checkPack, type Pack } from "../model/pack.ts";
import type { KernelLocation, Variant } from "../runtime/kernels.ts";
import { longestWithin, type Sequence } from "../data/sequence.ts";
import { seededRandom } from "../util/random.ts";
import { loraInitializer } from "../engine/lora_init.ts";
import { resumedOptions, sequencesFingerprint, type TrainConfig } from "./train_config.ts";

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /**
   * "mesp" (default): exact gradients, structured backward. "mebp": the checkpointed-backprop baseline (same
   * gradients, autograd's memory). "mezo": the zeroth-order baseline (forward passes only, SGD).
   */
  method?: Method;
  /** MeZO's perturbation scale ε (default 1e-3). */
  zoEps?: number;
  /**
   * Longest sequence in tokens (longer ones are cut). On a resume, the state's when left out (JavaScript) or
   * given as `resume.config.seqLen`.
   */
  seqLen: number;
  /** Optimizer steps; or give `epochs`. */
  steps?: number;
  epochs?: number;
  lora?: LoraOptions;
  /** Seed of the LoRA initialisation and the data order. */
  seed?: number;
  /**
   * The optimizer, as the CLI's defaults: AdamW (SGD for MeZO), lr 2e-4 (SGD 1e-4, MeZO 5e-5), a cosine
   * schedule without warmup; each field may be given alone.
   */
  optimizer?: Partial<Omit<OptimizerOptions, "totalSteps">>;
  /** Sequences per optimizer step (gradient accumulation; default 1, update fused into the backward). */
  gradAccum?: number;
  /** Clip the global gradient norm to this (0 = off). */
  clip?: number;
  /** Validate every this many steps (and at the end) when validation data is given; 0: at the end only. */
  valEvery?: number;
  /** Save the training state every this many steps (and at the end); 0: at the end only. */
  saveEvery?: number;
  /**
   * Continue from a saved training state: decoded in memory (`decodeTrainingState`), or still in its file
   * (`openTrainingState`), read from there a layer at a time into the arena or the spill.
   */
  resume?: TrainState | StoredTrainState;
  /** Start from an existing adapter instead of a fresh initialisation. */
  adapter?: OpenedAdapter;
  /**
   * Arena budget in bytes: MeSP (f32 saved inputs) runs the fastest exact schedule that fits (which layer
   * inputs are saved, which forward tensors kept, `schedule.ts`; bitwise the same gradients for every
   * budget); any run whose smallest plan is larger is refused before it starts.
   */
  budget?: number;
  /** Arena bytes the schedule aims at when no `budget` is given, never refused (`EngineOptions.target`). */
  target?: number;
  variant?: Variant;
  /** Kernel threads (default 1); results are bitwise the same for any count. */
  threads?: number;
  /** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
  kernels?: KernelLocation;
  resident?: boolean;
  /** Saved layer inputs in f32 (default, exact) or bf16 (half the memory, near-exact gradients). */
  savedInputDtype?: "f32" | "bf16";
  /** Vocabulary rows per loss chunk (default 512). */
  vocabChunk?: number;
  /** Save every k-th layer's input (default 1); the backward recomputes the rest (less memory, more time). */
  savedInputEvery?: number;
  /** Save this many layer inputs, the rest recomputed with the fewest layer forwards (not with the above). */
  savedInputs?: number;
  /** @deprecated Renamed {@linkcode savedInputDtype}; this name goes in the next release. */
  ckptDtype?: "f32" | "bf16";
  /** @deprecated Renamed {@linkcode savedInputEvery}; this name goes in the next release. */
  ckptEvery?: number;
  /**
   * Keep the saved layer inputs, the adapter and the optimizer's moments in this file instead of the arena,
   * which then holds one layer's (`spill.ts`; MeSP, f32 saved inputs, no gradient accumulation or
   * clipping): much less memory, every layer's input saved, bitwise the same results. The CLI passes a
   * file in the run folder; in a browser worker an OPFS `FileSystemSyncAccessHandle` fits. The state and
   * result then hand the adapter out a layer at a time (`LayeredValues`).
   */
  spill?: SpillFile;
  /** Called with progress, validation and save events. */
  onEvent?: (event: TrainEvent) => void;
  /** Persists the training state (atomically; `writeTrainingState` encodes it); awaited before going on. */
  saveState?: (state: TrainState) => void | Promise<void>;
  /** @deprecated Renamed {@linkcode TrainOptions.saveState}; this name goes in the next release. */
  saveCheckpoint?: (state: TrainState) => void | Promise<void>;
  /** Polled between steps: return (or resolve to) true to stop early (after saving). */
  shouldStop?: () => boolean | Promise<boolean>;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainState {
  /** Optimizer steps done. */
  step: number;
  /** Data position: epoch and index within that epoch's order. */
  epoch: number;
  cursor: number;
  seed: number;
  /**
   * LoRA parameters and (AdamW) moments. Handed to `saveState` as views of the engine's memory (no
   * copies), or a layer at a time from the spill: valid until training continues, so persist or copy them
   * before returning.
   */
  params: AdapterValues;
  m?: AdapterValues;
  v?: AdapterValues;
  /** The adapter layout the parameters belong to. */
  lora: { rank: number; alpha: number; rslora: boolean; targets: string[] };
  optimizer: string;
  /**
   * The options the run was made with (absent in states written before 2026-12-03): a resume takes them
   * where its options leave them out, and refuses given ones the state depends on that differ
   * (`train_config.ts`).
   */
  config?: TrainConfig;
}

/** The tensors of a training state, in the order they are stored and checksummed. */
export type StateTensor = "params" | "adam_m" | "adam_v";

/**
 * A training state left in its file (`openTrainingState`), read as it is needed: a resume then never holds
 * the whole state, only the places it is read into.
 */
export interface StoredTrainState extends Omit<TrainState, "params" | "m" | "v"> {
  /** Elements of the parameters, and of each moment. */
  readonly length: number;
  /** The tensors it holds, in the order {@linkcode StoredTrainState.read} visits them. */
  readonly tensors: readonly StateTensor[];
  /**
   * Reads every tensor from its start, `piece` elements at a time (the last piece may be shorter): piece `i`
   * of tensor `t` into the array `into(t, i)` returns (exactly the piece's length; `undefined`: check only),
   * then calls `done(t, i)`. Checks as it reads (finite values, no negative second moment, the checksum after
   * the last piece) and throws naming the file and the tensor.
   */
  read(
    piece: number,
    into: (t: StateTensor, i: number) => Float32Array | undefined,
    done?: (t: StateTensor, i: number) => void,
  ): Promise<void>;
}

/** Progress and results, as events. */
export type TrainEvent =
  | {
    type: "plan";
    table: string;
    bytes: number;
    /** MeSP: the schedule the budget bought (which inputs and forward tensors are kept), one line. */
    schedule?: string;
    /** A spilled run: what its spill holds and how large it grows, one line. */
    spill?: string;
  }
  | {
    type: "step";
    step: number;
    steps: number;
    loss: number;
    lr: number;
    /** Tokens the step's loss scored (trained targets: for chat data the replies, not the whole sequence). */
    tokens: number;
    /** Those tokens per second since the run (or its resume) started. */
    tokensPerSecond: number;
    elapsed: number;
  }
  | { type: "val"; step: number; loss: number; tokens: number }
  /** The training state was handed to `saveState` (the type keeps its old name so listeners keep working). */
  | { type: "checkpoint"; step: number };

/** The result of {@linkcode train}: the trained adapter and the loss history. */
export interface TrainResult {
  layout: LoraLayout;
  /**
   * The trained parameters: a view of the engine's memory; a spilled run's are read from the spill into an
   * array of their own when first asked for (so keep the spill open until then).
   */
  readonly params: Float32Array;
  steps: number;
  losses: number[];
  valLosses: { step: number; loss: number }[];
  /** Whether the run stopped early (shouldStop). */
  stopped: boolean;
}

/** The order sequences are visited in epoch `epoch`: a seeded shuffle. */
export function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const random = seededRandom((seed ^ Math.imul(epoch + 1, 0x27d4eb2d)) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

/**
 * Refuses hyper-parameters that cannot train: β = 1 divides by a zero bias correction, ε = 0 divides by
 * zero (MeZO) or by √v = 0 (AdamW), non-finite values poison every parameter at the first step.
 */
export function checkHyperparameters(o: OptimizerOptions, zoEps: number, clip: number): void {
  const fail = (what: string, v: unknown, want: string) => {
    throw new Error(`${what} must be ${want}, got ${v}`);
  };
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) fail("the learning rate", o.lr, "a finite number ≥ 0");
  const wd = o.weightDecay ?? 0;
  if (!(Number.isFinite(wd) && wd >= 0)) fail("weight decay", wd, "a finite number ≥ 0");
  if (o.name === "adamw") {
    const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8;
    if (!(b1 >= 0 && b1 < 1)) fail("AdamW β1", b1, "in [0, 1)");
    if (!(b2 >= 0 && b2 < 1)) fail("AdamW β2", b2, "in [0, 1)");
    if (!(Number.isFinite(eps) && eps > 0)) fail("AdamW ε", eps, "a finite number > 0");
  }
  if (!(Number.isFinite(zoEps) && zoEps > 0)) fail("MeZO's ε", zoEps, "a finite number > 0");
  if (!(Number.isFinite(clip) && clip >= 0)) fail("the clipping norm", clip, "a finite number ≥ 0 (0 = off)");
}

/**
 * Throws unless the `lora` options given agree with the layout a resumed state or a starting adapter already
 * has (`whose`): that layout is the run's, so a different rank would be silently ignored otherwise.
 */
function sameLora(
  kept: { rank: number; alpha: number; rslora: boolean; targets: readonly string[] },
  given: LoraOptions,
  whose: string,
): void {
  const differs = (what: string, a: unknown, b: unknown) => {
    throw new Error(
      `train options.lora: ${what} ${b} differs from ${whose} ${a} (the run keeps that layout; leave lora out)`,
    );
  };
  if (given.rank != null && given.rank !== kept.rank) differs("rank", kept.rank, given.rank);
  if (given.alpha != null && given.alpha !== kept.alpha) {
    differs("alpha", kept.alpha, given.alpha);
  }
  if (given.rslora != null && given.rslora !== kept.rslora) {
    differs("rslora", kept.rslora, given.rslora);
  }
  if (given.targets != null) {
    const a = resolveTargets(kept.targets).sort().join(","),
      b = resolveTargets(given.targets).sort().join(",");
    if (a !== b) differs("targets", a, b);
  }
}

/** A NaN or ±∞ loss or parameter: the run stops at that step; nothing after the last save is written. */
export class NonFiniteError extends Error {
  /** The optimizer step (1-based) at which it appeared. */
  readonly step: number;
  /** @param message where and what to try; @param step the 1-based step */
  constructor(message: string, step: number) {
    super(message);
    this.name = "NonFiniteError";
    this.step = step;
  }
}

/** The engine a training with `options` runs on (its layout, optimizer state and gradient buffers). */
function trainEngineOptions(pack: Pack, options: TrainOptions, planLen = options.seqLen): EngineOptions {
  const method = options.method ?? "mesp";
  const kept = options.resume?.lora ?? options.adapter?.config;
  if (kept && options.lora) {
    sameLora(kept, options.lora, options.resume ? "the resumed state's" : "the adapter's");
  }
  const loraOptions = kept ?? options.lora ?? {};
  return {
    mode: "train",
    method,
    seqLen: planLen,
    lora: loraLayout(pack.config, loraOptions),
    optimizer: options.optimizer?.name ?? options.resume?.optimizer as OptimizerName | undefined ??
      defaultOptimizer(method),
    // MeBP holds every gradient until the optimizer step; MeSP fuses the update into each layer's backward
    gradBuffer: method === "mebp" || (options.gradAccum ?? 1) > 1 || (options.clip ?? 0) > 0,
    budget: options.budget,
    target: options.target,
    variant: options.variant,
    threads: options.threads,
    kernels: options.kernels,
    resident: options.resident,
    savedInputDtype: options.savedInputDtype ?? options.ckptDtype,
    vocabChunk: options.vocabChunk,
    savedInputEvery: options.savedInputEvery ?? options.ckptEvery,
    savedInputs: options.savedInputs,
    spillFile: options.spill,
  };
}

/**
 * The memory plan {@linkcode train} would lay out for `options`, computed without loading any weights or
 * allocating the arena: to show it, or to refuse a budget before the work starts (compare its `bytes` with
 * the budget; it does not throw: `train` with `budget` throws `PlanTooLargeError`). `train` plans for the
 * longest of `data` and `val` once cut to `seqLen`: give them for its plan, leave them out for `seqLen`'s
 * (what the longest data could need).
 */
export async function planTraining(
  pack: Pack,
  options: TrainOptions,
  data?: readonly Sequence[],
  val: readonly Sequence[] = [],
): Promise<MemoryPlan> {
  checkPack(pack, "planTraining");
  checkOptions("planTraining options", options, TRAIN_OPTIONS);
  if (options.lora) checkOptions("planTraining options.lora", options.lora, LORA_OPTIONS);
  if (options.resume?.config) {
    options = resumedOptions(options, options.resume.config, data && sequencesFingerprint(data));
  }
  const planLen = data ? longestWithin(options.seqLen, data, val) : options.seqLen;
  return await Engine.plan(pack, trainEngineOptions(pack, options, planLen));
}

/** Fine-tunes a LoRA adapter on `data` with exact gradients; `val` is scored every `valEvery` steps. */
export async function train(
  pack: Pack,
  data: readonly Sequence[],
  val: readonly Sequence[],
  options: TrainOptions,
): Promise<TrainResult> {
  checkPack(pack, "train");
  checkOptions("train options", options, TRAIN_OPTIONS);
  if (options.optimizer) checkOptions("train options.optimizer", options.optimizer, OPTIMIZER_OPTIONS);
  if (options.lora) checkOptions("train options.lora", options.lora, LORA_OPTIONS);
  checkBudget("train options", options.budget);
  checkBudget("train options", options.target, "target");
  if (!Array.isArray(data) || !Array.isArray(val)) {
    throw new TypeError(
      "train(pack, data, val, options): data and val are arrays of sequences (val [] for none)",
    );
  }
  if (data.length === 0) throw new Error("the training set is empty");
  checkSequences("training", data, Infinity, "none", pack.config.vocabSize);
  const dataFingerprint = sequencesFingerprint(data);
  // a resume continues the run its state was made by: the state's options where these leave them out (its
  // seqLen too), before anything is checked against them
  const recorded = options.resume?.config;
  if (recorded) options = resumedOptions(options, recorded, dataFingerprint);
  if (!Number.isSafeInteger(options.seqLen) || options.seqLen < 2) {
    throw new RangeError(
      `train options: seqLen must be an integer ≥ 2, got ${options.seqLen}` +
        (options.resume && !recorded ? " (this resumed state records no seqLen: give it)" : ""),
    );
  }
  checkSequences("training", data, options.seqLen, "each", pack.config.vocabSize);
  checkSequences("validation", val, options.seqLen, "any", pack.config.vocabSize);
  const method = options.method ?? "mesp";
  const cfg = pack.config;
  const seqLen = options.seqLen;
  // a generous seqLen is a bound, as in evaluate: the sequences themselves must fit the positions
  checkPositions(
    "train",
    "the longest sequence",
    longestWithin(seqLen, data, val),
    cfg.maxPositionEmbeddings,
  );
  const accum = options.gradAccum ?? 1;
  if (!Number.isInteger(accum) || accum < 1) {
    throw new Error(`train options: gradAccum must be a positive integer, got ${accum}`);
  }
  const clip = options.clip ?? 0;
  const resumedSeed = options.resume?.seed;
  if (resumedSeed !== undefined && options.seed != null && options.seed !== resumedSeed) {
    throw new Error(
      `train options: seed ${options.seed} differs from the resumed state's ${resumedSeed} (the data order ` +
        `and MeZO's perturbations follow it; leave seed out)`,
    );
  }
  const seed = resumedSeed ?? options.seed ?? 0;
  if (options.steps != null && options.epochs != null) {
    throw new TypeError("train options: give steps or epochs, not both");
  }
  const steps = options.steps ?? Math.ceil(((options.epochs ?? 1) * data.length) / accum);
  if (!(steps >= 1)) throw new Error(`nothing to train: ${steps} steps`);
  if (options.resume && options.resume.step >= steps) {
    throw new Error(
      `train: nothing to train: the resumed state is at step ${options.resume.step}, and the run's target is ` +
        `${steps} steps (give steps above ${options.resume.step} to train it further)`,
    );
  }
  const given = options.optimizer ?? {};
  // a resumed state keeps the optimizer it was made with
  const name = given.name ?? options.resume?.optimizer as OptimizerName | undefined ??
    defaultOptimizer(method);
  const optOptions: OptimizerOptions = {
    ...given,
    name,
    lr: given.lr ?? defaultLr(name, method),
    schedule: given.schedule ?? DEFAULT_SCHEDULE,
    totalSteps: steps,
  };
  if (method === "mezo" && optOptions.name !== "sgd") {
    throw new Error(`MeZO updates with SGD (optimizer.name "sgd", --optimizer sgd), not ${optOptions.name}`);
  }
  const zoEps = options.zoEps ?? DEFAULT_ZO_EPS;
  checkHyperparameters(optOptions, zoEps, clip);
  // what the saved states record of this run, for a resume to continue it
  const config: TrainConfig = {
    method,
    seqLen,
    steps,
    gradAccum: accum,
    clip,
    zoEps,
    optimizer: {
      lr: optOptions.lr,
      schedule: optOptions.schedule!,
      warmup: optOptions.warmup ?? OPTIMIZER_DEFAULTS.warmup,
      weightDecay: optOptions.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay,
      beta1: optOptions.beta1 ?? OPTIMIZER_DEFAULTS.beta1,
      beta2: optOptions.beta2 ?? OPTIMIZER_DEFAULTS.beta2,
      eps: optOptions.eps ?? OPTIMIZER_DEFAULTS.eps,
    },
    data: dataFingerprint,
    saveEvery: options.saveEvery ?? 0,
    valEvery: options.valEvery ?? 0,
  };
  // memory for the longest sequence the run will see, not for seqLen: a generous seqLen costs nothing
  const engineOptions = trainEngineOptions(pack, options, longestWithin(seqLen, data, val));
  const layout = engineOptions.lora!;
  const gradBuffer = engineOptions.gradBuffer;
  const e = await Engine.create(pack, engineOptions);
  try {
    const schedule = method === "mesp"
      ? describeSchedule(e.schedule(), cfg.numLayers, e.kernels.pool?.threads ?? 1)
      : undefined;
    const spilled = e.spill && describeSpill(e.spill.layout);
    options.onEvent?.({
      type: "plan",
      table: formatPlan(e.arena.plan),
      bytes: e.arena.plan.bytes,
      schedule,
      spill: spilled,
    });
    const adamw = optOptions.name === "adamw";
    // the arena's adapter and moments: all of them, or (spilled) one layer's
    const arenaParams = e.arena.f32("lora.params");
    const arenaM = adamw ? e.arena.f32("opt.m") : undefined;
    const arenaV = adamw ? e.arena.f32("opt.v") : undefined;
    const spill = e.spill, layerN = layout.layerElements, L = cfg.numLayers;
    let step = 0, epoch = 0, cursor = 0;
    const r = options.resume;
    const stored = r && "read" in r ? r : undefined, decoded = stored ? undefined : r as TrainState;
    if (r) {
      if ((stored?.length ?? decoded!.params.length) !== layout.totalElements) {
        throw new Error("training state does not match this adapter layout");
      }
      if (r.optimizer !== optOptions.name) {
        throw new Error(`training state was made with ${r.optimizer}, not ${optOptions.name}`);
      }
      const moments = stored
        ? stored.tensors.includes("adam_m") && stored.tensors.includes("adam_v")
        : decoded!.m && decoded!.v;
      if (arenaM && !moments) throw new Error("training state has no AdamW moments");
      ({ step, epoch, cursor } = r);
    }
    // a layer at a time, into its place in the arena or (spilled) the arena's one layer and on to the spill
    if (options.adapter && !r) checkAdapter(options.adapter, layout);
    spill?.reserve();
    const init = loraInitializer(layout, seed);
    const inArena = (x: Float32Array, l: number) => spill ? x : x.subarray(l * layerN, (l + 1) * layerN);
    if (stored) {
      // tensor after tensor, as the file holds and checksums them
      const arenaOf = { params: arenaParams, adam_m: arenaM, adam_v: arenaV };
      const part = { params: "params", adam_m: "m", adam_v: "v" } as const;
      await stored.read(layerN, (t, l) => arenaOf[t] && inArena(arenaOf[t], l), (t, l) => {
        if (arenaOf[t]) spill?.store(part[t], l);
      });
    } else {
      for (let l = 0; l < L; l++) {
        const p = inArena(arenaParams, l),
          lm = arenaM && inArena(arenaM, l),
          lv = arenaV && inArena(arenaV, l);
        if (decoded) {
          p.set(layerOf(decoded.params, l, layerN));
          lm?.set(layerOf(decoded.m!, l, layerN));
          lv?.set(layerOf(decoded.v!, l, layerN));
        } else {
          if (options.adapter) await readAdapterLayer(options.adapter, layout, l, p);
          else init(l, p);
          lm?.fill(0);
          lv?.fill(0);
        }
        spill?.storeLayer(l);
      }
    }
    /** A spilled tensor a layer at a time (`load` brings layer l into `view`). */
    const layered = (view: Float32Array, load: (l: number) => void): LayeredValues => ({
      length: layout.totalElements,
      layers: L,
      layer(l) {
        load(l);
        return view;
      },
    });
    const params: AdapterValues = spill ? layered(arenaParams, (l) => spill.loadAdapter(l)) : arenaParams;
    // each moment reads only itself: saving walks m, then v
    const m = arenaM && (spill ? layered(arenaM, (l) => spill.loadMoment("m", l)) : arenaM);
    const v = arenaV && (spill ? layered(arenaV, (l) => spill.loadMoment("v", l)) : arenaV);

    const opt = new Optimizer(
      e.k,
      optOptions,
      e.p["lora.params"],
      adamw ? e.p["opt.m"] : undefined,
      adamw ? e.p["opt.v"] : undefined,
    );
    const gradPtr = method === "mezo" ? 0 : e.p["lora.grad"]; // MeZO has no gradient buffer
    const bw = method === "mezo"
      ? undefined
      : new Backward(e, { ptr: gradPtr, perLayer: !gradBuffer, accumulate: false }, {
        mebp: method === "mebp",
      });
    let order = epochOrder(data.length, seed, epoch);
    let nextOrder: Uint32Array | undefined; // the next epoch's, once `peek` needed it
    let lastIndex = 0; // the data index of the last sequence drawn, for error messages
    const next = (): Sequence => {
      if (cursor >= data.length) {
        epoch++;
        cursor = 0;
        order = nextOrder ?? epochOrder(data.length, seed, epoch);
        nextOrder = undefined;
      }
      lastIndex = order[cursor++];
      return data[lastIndex];
    };
    /** The sequence `next` will return, without drawing it. */
    const peek = (): Sequence =>
      data[
        cursor < data.length ? order[cursor] : (nextOrder ??= epochOrder(data.length, seed, epoch + 1))[0]
      ];
    const snapshot = (): TrainState => ({
      step,
      epoch,
      cursor,
      seed,
      params,
      m,
      v,
      lora: { rank: layout.rank, alpha: layout.alpha, rslora: layout.rslora, targets: [...layout.targets] },
      optimizer: optOptions.name,
      config,
    });
    const losses: number[] = [];
    const valLosses: { step: number; loss: number }[] = [];
    const validate = async () => {
      if (!val.length) return;
      let sum = 0, count = 0;
      for (let i = 0; i < val.length; i++) {
        const s = val[i], T = Math.min(s.ids.length, seqLen);
        if (T < 2) continue;
        // the loss's pass keeps the rows of what comes next: the next validation sequence, or training's
        const after = i + 1 < val.length ? val[i + 1] : step < steps ? peek() : undefined;
        if (after) e.weights.expectRows(after.ids, Math.min(after.ids.length, seqLen), false);
        const r = await sequenceLoss(e, s.ids, s.targets, T);
        sum += r.sum;
        count += r.count;
      }
      if (!Number.isFinite(sum)) {
        throw new NonFiniteError(`step ${step}: the validation loss is ${sum / count}${hint()}`, step);
      }
      if (count) {
        valLosses.push({ step, loss: sum / count });
        options.onEvent?.({ type: "val", step, loss: sum / count, tokens: count });
      }
    };
    // spilled: the arena's one layer is layer l's (its backward just ran); its moments come in for the
    // update, and the layer goes back to the spill with a check that it stayed finite
    let spilledFinite = true;
    const fused = spill
      ? (l: number) => {
        spill.loadMoments(l);
        opt.update(0, layerN, gradPtr, step);
        spilledFinite &&= Number.isFinite(e.k.sum_squares(e.p["lora.params"], layerN));
        spill.storeLayer(l);
      }
      : (l: number) => opt.update(l * layerN, layerN, gradPtr, step);
    const saveState = options.saveState ?? options.saveCheckpoint;
    let saved = step; // the step of the last state handed to saveState (or resumed from)
    const hint = () =>
      `; nothing after step ${saved} was saved. Try a lower learning rate (now ${optOptions.lr}), ` +
      `gradient clipping (clip: 1, --clip 1) or warmup; if it happens at the first step, check the model's weights`;
    // one wasm pass over the parameters, in f64 (no overflow): NaN or ∞ exactly when a parameter is
    const paramsFinite = () =>
      spill ? spilledFinite : Number.isFinite(e.k.sum_squares(e.p["lora.params"], layout.totalElements));
    const checkLoss = (value: number, what: string) => {
      if (!Number.isFinite(value)) {
        throw new NonFiniteError(
          `step ${step + 1}: ${what} is ${value} (sequence ${lastIndex} of the training data)${hint()}`,
          step + 1,
        );
      }
    };
    const t0 = performance.now();
    let tokensSeen = 0, stopped = false;
    while (step < steps) {
      // an async callback's Promise is truthy, and would stop every run before its first step: awaited, but
      // only then (an await per step of a plain callback would be a promise per step)
      const stop = options.shouldStop?.();
      if (isThenable(stop) ? await stop : stop) {
        stopped = true;
        break;
      }
      let loss = 0, tokens = 0;
      if (!bw) {
        // MeZO: one perturbation direction per step, shared by the step's sequences
        const batch: Sequence[] = [];
        for (let micro = 0; micro < accum; micro++) batch.push(next());
        const zs = stepSeed(seed, step);
        const est = await zoEstimate(e, batch, seqLen, zs, zoEps);
        checkLoss(est.lossPlus, "the loss at θ + εz");
        checkLoss(est.lossMinus, "the loss at θ − εz");
        zoUpdate(e, zs, est.coeff, learningRate(optOptions, step), optOptions.weightDecay ?? 0);
        loss = (est.lossPlus + est.lossMinus) / 2;
        tokens = est.tokens;
      } else {
        for (let micro = 0; micro < accum; micro++) {
          const s = next();
          const T = Math.min(s.ids.length, seqLen);
          if (step + 1 < steps || micro + 1 < accum) {
            // the loss's pass over the vocabulary keeps the next sequence's embedding rows (tied head)
            const after = peek();
            e.weights.expectRows(after.ids, Math.min(after.ids.length, seqLen), false);
          }
          bw.sink.accumulate = micro > 0;
          const r = await forwardBackward(e, bw, s.ids, s.targets, T, gradBuffer ? undefined : fused);
          checkLoss(r.loss, "the loss");
          loss += r.loss / accum;
          tokens += r.tokens;
        }
      }
      if (bw && gradBuffer) {
        let scale = 1 / accum;
        if (clip > 0) {
          const norm = Math.sqrt(e.k.sum_squares(gradPtr, layout.totalElements)) * scale;
          if (norm > clip) scale *= clip / norm;
        }
        opt.update(0, layout.totalElements, gradPtr, step, scale);
      }
      if (!paramsFinite()) {
        throw new NonFiniteError(
          `step ${step + 1}: the update made LoRA parameters non-finite (learning rate ${
            learningRate(optOptions, step)
          })${hint()}`,
          step + 1,
        );
      }
      step++;
      tokensSeen += tokens;
      losses.push(loss);
      const elapsed = (performance.now() - t0) / 1000;
      options.onEvent?.({
        type: "step",
        step,
        steps,
        loss,
        lr: learningRate(optOptions, step - 1),
        tokens,
        tokensPerSecond: tokensSeen / elapsed,
        elapsed,
      });
      if (options.valEvery && step % options.valEvery === 0 && step < steps) await validate();
      if (options.saveEvery && step % options.saveEvery === 0 && step < steps && saveState) {
        await saveState(snapshot());
        saved = step;
        options.onEvent?.({ type: "checkpoint", step });
      }
    }
    if (!stopped) await validate();
    if (saveState) {
      await saveState(snapshot());
      options.onEvent?.({ type: "checkpoint", step });
    }
    const result = { layout, steps: step, losses, valLosses, stopped };
    if (params instanceof Float32Array) return { ...result, params };
    let gathered: Float32Array | undefined;
    return {
      ...result,
      get params() {
        // read only when asked: the CLI never does, so its peak holds one layer
        if (!gathered) {
          gathered = new Float32Array(layout.totalElements);
          for (let l = 0; l < L; l++) gathered.set(params.layer(l), l * layerN);
        }
        return gathered;
      },
    };
  } finally {
    // live workers would keep the process running
    e.close();
  }
}
