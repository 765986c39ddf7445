/**
 * What a training run is beyond its position: the options a saved training state was made under, recorded
 * in the state, so that a resume continues the same run. Options a resume leaves out are the recorded ones;
 * given ones that differ are refused where the saved parameters, moments or data position depend on them
 * (the method, the sequence length, the data, gradient accumulation, β1/β2/ε, MeZO's ε) and taken where
 * they do not (the step target, the learning rate and its schedule, weight decay, clipping, how often it
 * saves and validates), as the CLI's `--allow-change` lets them change.
 *
 * @module
 */
import type { Method } from "../engine/plan.ts";
import type { OptimizerOptions } from "../engine/optimizer.ts";
import { Checksum } from "../io/checksum.ts";
import type { Sequence } from "../data/sequence.ts";

/** A run's options as its training state records them (every default resolved). */
export interface TrainConfig {
  method: Method;
  seqLen: number;
  /** The optimizer steps the run was to make. */
  steps: number;
  gradAccum: number;
  clip: number;
  zoEps: number;
  optimizer: {
    lr: number;
    schedule: "constant" | "cosine";
    warmup: number;
    weightDecay: number;
    beta1: number;
    beta2: number;
    eps: number;
  };
  /** Fingerprint of the training sequences ({@linkcode sequencesFingerprint}). */
  data: string;
  /** How often it saved and validated (0: at the end only): a resume keeps them unless given. */
  saveEvery?: number;
  valEvery?: number;
}

/**
 * A fingerprint of training sequences: each one's length, every token id and its trained positions (or that
 * it has none: all trained), in order, so sequences cut at other places are other data. `lengths: false` is
 * the fingerprint without the lengths, which CLI runs record as their `data` (kept, so that runs recorded
 * before 2026-12-03 resume; the state's own `config.data` has the lengths).
 */
export function sequencesFingerprint(seqs: readonly Sequence[], options: { lengths?: boolean } = {}): string {
  const c = new Checksum();
  const head = new Uint32Array(2);
  for (const s of seqs) {
    if (options.lengths !== false) {
      head[0] = s.ids.length;
      head[1] = s.targets ? 1 : 0;
      c.update(new Uint8Array(head.buffer));
    }
    // by value: ids given as a plain array (which `train` takes too) hash as the Int32Array they equal
    const ids = s.ids instanceof Int32Array ? s.ids : Int32Array.from(s.ids);
    c.update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    if (s.targets) c.update(s.targets instanceof Uint8Array ? s.targets : Uint8Array.from(s.targets));
  }
  return c.hex();
}

/**
 * Options the saved state depends on (its parameters, moments and data position mean nothing under others):
 * a resume refuses a different one. The optimizer's are named by their field in `TrainConfig.optimizer`.
 */
export const FIXED_OPTIONS = ["method", "seqLen", "gradAccum", "zoEps", "beta1", "beta2", "eps"] as const;

/**
 * Options a resume may change: the target, the learning rate and its schedule and warmup, weight decay and
 * clipping. The saved state stays meaningful under each (the CLI lets them change with `--allow-change`).
 */
export const CHANGEABLE_OPTIONS = ["steps", "lr", "clip", "weightDecay", "warmup", "schedule"] as const;

/** How often the run saves and validates: kept unless given, and free to change (they shape no result). */
export const RUN_SETTINGS = ["saveEvery", "valEvery"] as const;

/** Every option a training state records: {@linkcode FIXED_OPTIONS}, changeable ones and settings. */
export const RECORDED_OPTIONS = [...FIXED_OPTIONS, ...CHANGEABLE_OPTIONS, ...RUN_SETTINGS] as const;

/** One of {@linkcode RECORDED_OPTIONS}. */
export type RecordedOption = typeof RECORDED_OPTIONS[number];

const OPTIMIZER_FIELDS: ReadonlySet<string> = new Set(
  [
    "lr",
    "schedule",
    "warmup",
    "weightDecay",
    "beta1",
    "beta2",
    "eps",
  ] satisfies (keyof TrainConfig["optimizer"])[],
);

/** `key`'s value in `config` (a recorded config, or options shaped like one); undefined when absent. */
export function recordedValue(config: ResumableOptions | TrainConfig, key: RecordedOption): unknown {
  return OPTIMIZER_FIELDS.has(key)
    ? (config.optimizer as Record<string, unknown> | undefined)?.[key]
    : (config as unknown as Record<string, unknown>)[key];
}

/** The options of `train` a resume fills in or checks. */
export interface ResumableOptions {
  method?: Method;
  seqLen: number;
  steps?: number;
  epochs?: number;
  gradAccum?: number;
  clip?: number;
  zoEps?: number;
  optimizer?: Partial<Omit<OptimizerOptions, "totalSteps">>;
  saveEvery?: number;
  valEvery?: number;
}

/**
 * `options` for resuming a state made under `recorded`, over data with `dataFingerprint` (undefined: not
 * known yet, as when only planning): each option left out is the recorded one; a given one that the saved
 * state depends on and that differs is refused, listing every difference.
 */
export function resumedOptions<T extends ResumableOptions>(
  options: T,
  recorded: TrainConfig,
  dataFingerprint?: string,
): T {
  const differences: string[] = [];
  for (const key of FIXED_OPTIONS) {
    const given = recordedValue(options, key), was = recordedValue(recorded, key);
    const name = OPTIMIZER_FIELDS.has(key) ? `optimizer.${key}` : key;
    if (given !== undefined && given !== was) differences.push(`${name} ${given} (the state's ${was})`);
  }
  if (dataFingerprint !== undefined && dataFingerprint !== recorded.data) {
    differences.push(
      `data: other training sequences (fingerprint ${dataFingerprint}, the state's ${recorded.data}; the ` +
        `state's position is in its own data's order)`,
    );
  }
  if (differences.length > 0) {
    throw new Error(
      `train options: resume: these differ from the run the training state was made by:\n  ` +
        `${
          differences.join("\n  ")
        }\ngive the state's values (resume.config), or leave them out, or start a new run without resume`,
    );
  }
  // every option left out is the recorded one; epochs given stand for the steps
  const resumed = { ...options } as Record<string, unknown>;
  const optimizer: Record<string, unknown> = { ...options.optimizer };
  for (const key of RECORDED_OPTIONS) {
    if (key === "steps" && options.epochs != null) continue;
    const into = OPTIMIZER_FIELDS.has(key) ? optimizer : resumed;
    into[key] = recordedValue(options, key) ?? recordedValue(recorded, key);
  }
  resumed.optimizer = optimizer;
  return resumed as T;
}

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Validates a recorded config (`raw`, decoded from a state file `name`) field by field; throws naming the
 * first bad one.
 */
export function validateTrainConfig(name: string, raw: unknown): TrainConfig {
  const bad = (field: string, v: unknown, want: string): never => {
    throw new Error(`${name}: state field config.${field} is ${JSON.stringify(v)}, expected ${want}`);
  };
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) bad("(all)", raw, "an object");
  const c = raw as Record<string, unknown>;
  if (c.method !== "mesp" && c.method !== "mebp" && c.method !== "mezo") {
    bad("method", c.method, '"mesp", "mebp" or "mezo"');
  }
  for (const f of ["seqLen", "steps", "gradAccum"]) {
    if (!(Number.isSafeInteger(c[f]) && (c[f] as number) >= 1)) bad(f, c[f], "an integer ≥ 1");
  }
  for (const f of ["clip", "zoEps"]) if (!isNumber(c[f])) bad(f, c[f], "a finite number");
  for (const f of ["saveEvery", "valEvery"]) {
    if (c[f] !== undefined && !(Number.isSafeInteger(c[f]) && (c[f] as number) >= 0)) {
      bad(f, c[f], "an integer ≥ 0");
    }
  }
  if (typeof c.data !== "string") bad("data", c.data, "a fingerprint");
  const o = c.optimizer as Record<string, unknown> | undefined;
  if (!o || typeof o !== "object" || Array.isArray(o)) bad("optimizer", o, "an object");
  for (const f of ["lr", "warmup", "weightDecay", "beta1", "beta2", "eps"]) {
    if (!isNumber(o![f])) bad(`optimizer.${f}`, o![f], "a finite number");
  }
  if (o!.schedule !== "constant" && o!.schedule !== "cosine") {
    bad("optimizer.schedule", o!.schedule, '"constant" or "cosine"');
  }
  return raw as TrainConfig;
}
