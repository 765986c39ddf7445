/**
 * What a training run is: the values of the flags that shape its result, recorded in every saved training
 * state, plus fingerprints of its model and its data. `--resume` takes the recorded values for flags it is
 * not given, refuses given values that differ (listing every difference), and lets `--allow-change` change
 * only what the saved state does not depend on.
 *
 * @module
 */
import { kebabCase } from "./args.ts";
import type { TrainState } from "../run/train.ts";
import {
  CHANGEABLE_OPTIONS,
  FIXED_OPTIONS,
  RECORDED_OPTIONS,
  recordedValue,
  RUN_SETTINGS,
} from "../run/train_config.ts";

/** The recorded flags (train's flag keys), and the content fingerprints. */
export interface RunConfig {
  weights: string;
  seqLen: number;
  method: string;
  optimizer: string;
  lr: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  schedule: string;
  warmup: number;
  seed: number;
  rank: number;
  alpha: number | null;
  rslora: boolean;
  targets: string[];
  gradAccum: number;
  clip: number;
  zoEps: number;
  ckpt: string;
  /** The run's own target: optimizer steps. */
  steps: number;
  /** How often it saves and validates ({@linkcode RECORDED_SETTINGS}; absent in runs before 2026-12-03). */
  saveEvery?: number;
  valEvery?: number;
  /** Fingerprint of the model's weights (the pack's). */
  model: string;
  /** Fingerprint of the training sequences (token ids and trained positions). */
  data: string;
}

/**
 * Flags the CLI records beyond the library's options ({@linkcode FIXED_OPTIONS}, {@linkcode
 * CHANGEABLE_OPTIONS}): the weight format, the optimizer, the seed, the adapter's layout, the checkpointing.
 * A library state records these in its own fields ({@linkcode runConfigOfState}).
 */
const CLI_RECORDED = ["weights", "optimizer", "seed", "rank", "alpha", "rslora", "targets", "ckpt"] as const;

/**
 * Flags whose recorded value `--resume` uses when they are not given: the CLI's own, and the library's
 * options that have a flag (`--steps` is the run's target, compared on its own; `eps` has no flag).
 */
export const RECORDED_FLAGS = [
  ...CLI_RECORDED,
  ...FIXED_OPTIONS.filter((k): k is Exclude<typeof k, "eps"> => k !== "eps"),
  ...CHANGEABLE_OPTIONS.filter((k): k is Exclude<typeof k, "steps"> => k !== "steps"),
] as const satisfies readonly (keyof RunConfig)[];

/**
 * Flags whose recorded value `--resume` uses when they are not given, and which may change freely: how often
 * the run saves and validates shapes none of its results.
 */
export const RECORDED_SETTINGS = RUN_SETTINGS satisfies readonly (keyof RunConfig)[];

/**
 * What `--allow-change` may change on `--resume`: the library's {@linkcode CHANGEABLE_OPTIONS} as flags. The
 * saved state (parameters, moments, data position) stays meaningful under each; everything else needs a new
 * run.
 */
export const CHANGEABLE: readonly string[] = CHANGEABLE_OPTIONS.map(kebabCase);

/** Reads the recorded config of a training state's run metadata (undefined for states without one). */
export function recordedConfig(run: Record<string, unknown>): Partial<RunConfig> | undefined {
  const c = run.config;
  return c && typeof c === "object" && !Array.isArray(c) ? c as Partial<RunConfig> : undefined;
}

/**
 * The flags a state saved by the library records in its `config` (and its layout, seed and optimizer), as
 * the CLI records them: for resuming such a state with the CLI. Undefined for a state without one. Not the
 * data: the library checks its own fingerprint of it (another function than the CLI's `data`).
 */
export function runConfigOfState(
  state: Pick<TrainState, "optimizer" | "seed" | "lora" | "config">,
): Partial<RunConfig> | undefined {
  const c = state.config;
  if (!c) return undefined;
  // every option the state records, by the library's own table (eps has no flag); then its layout and seed
  const out: Record<string, unknown> = {};
  for (const key of RECORDED_OPTIONS) {
    const value = recordedValue(c, key);
    if (key !== "eps" && value !== undefined) out[key] = value;
  }
  return {
    ...out,
    optimizer: state.optimizer,
    seed: state.seed,
    rank: state.lora.rank,
    alpha: state.lora.alpha,
    rslora: state.lora.rslora,
    targets: state.lora.targets,
  };
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** A readable value for the list of differences. */
function show(key: keyof RunConfig, v: unknown): string {
  if (key === "model" || key === "data") return `fingerprint ${v}`;
  return Array.isArray(v) ? v.join(",") : v === null ? "(default)" : String(v);
}

/**
 * The differences between the recorded config and this invocation's values, as lines
 * `--lr: recorded 0.001, now 0.002`, leaving out the keys in `allowed` (kebab-case flag names).
 */
export function configDifferences(
  recorded: Partial<RunConfig>,
  now: Partial<RunConfig>,
  allowed: readonly string[],
): string[] {
  const lines: string[] = [];
  for (const key of Object.keys(now) as (keyof RunConfig)[]) {
    if (!(key in recorded) || same(recorded[key], now[key]) || allowed.includes(kebabCase(key))) continue;
    const label = key === "model"
      ? "--model (its weights)"
      : key === "data"
      ? "--data (its contents)"
      : `--${kebabCase(key)}`;
    lines.push(`${label}: recorded ${show(key, recorded[key])}, now ${show(key, now[key])}`);
  }
  return lines;
}

/** Throws the list of differences, with what can be done about them. */
export function refuseDifferences(dir: string, lines: string[]): void {
  if (lines.length === 0) return;
  throw new Error(
    `--resume: this is not the run recorded in ${dir}:\n  ${lines.join("\n  ")}\n` +
      `--allow-change ${CHANGEABLE.join(",")} lets those change; anything else is a new run ` +
      `(--force to start over, or another --out)`,
  );
}
