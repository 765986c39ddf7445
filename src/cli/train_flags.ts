/**
 * Flags of the training-shaped commands (`train`, `plan`, `grad`) and the plan options they imply.
 *
 * @module
 */
import { type FlagSpec, ignoredFlag } from "./args.ts";
import type { ModelConfig } from "../model/config.ts";
import type { PackFormat } from "../model/pack_layout.ts";
import { loraLayout } from "../engine/lora.ts";
import { defaultOptimizer } from "../engine/optimizer.ts";
import type { Method, OptimizerName, PlanOptions } from "../engine/plan.ts";
import { DEFAULT_PEAK } from "../engine/schedule.ts";
import { formatMB } from "../runtime/arena.ts";
import { runtimeBytes } from "./common.ts";

/** LoRA, optimizer and schedule flags. */
export const TRAIN_FLAGS = {
  method: {
    type: "string",
    choices: ["mesp", "mebp", "mezo"],
    default: "mesp",
    description: "training method",
  },
  seqLen: { type: "integer", default: 256, min: 2, description: "tokens per sequence (longer ones are cut)" },
  rank: { type: "integer", default: 8, min: 1, description: "LoRA rank r" },
  alpha: { type: "number", greaterThan: 0, description: "LoRA alpha (default 2·rank); scale = alpha/r" },
  rslora: { type: "boolean", description: "scale by alpha/√r (rsLoRA)" },
  targets: {
    type: "list",
    default: ["all"],
    description: "linears with adapters: q,k,v,o,gate,up,down or all",
  },
  optimizer: {
    type: "string",
    choices: ["adamw", "sgd"],
    default: defaultOptimizer(),
    description: "optimizer (the paper's memory figures use sgd)",
  },
  gradAccum: { type: "integer", default: 1, min: 1, description: "sequences per optimizer step" },
  clip: { type: "number", default: 0, min: 0, description: "clip the global gradient norm (0 = off)" },
  vocabChunk: { type: "integer", default: 512, min: 1, description: "vocabulary rows per loss chunk" },
  resident: { type: "boolean", description: "keep every layer's weights in memory instead of streaming" },
  ckptEvery: {
    type: "integer",
    min: 1,
    description: "save every k-th layer's input; the backward recomputes the rest, re-running each " +
      "segment once (less memory, more time, the same gradients) (default: what the memory target picks)",
  },
  savedInputs: {
    type: "integer",
    min: 2,
    description: "save N layer inputs ([seq-len, hidden] each); the backward recomputes the rest with the " +
      "fewest layer forwards N allows (the same gradients) (default: what the memory target picks)",
  },
  ckpt: {
    type: "string",
    choices: ["f32", "bf16"],
    default: "f32",
    description: "saved layer inputs: f32 (exact gradients) or bf16 (half the memory, near-exact)",
  },
  spill: {
    type: "string",
    choices: ["auto", "on", "off"],
    default: "auto",
    description:
      "keep the saved layer inputs, the adapter and the optimizer's moments in a file in the run " +
      "folder, memory holding one layer's (the same results, much less memory); auto: where the run " +
      "allows it (MeSP, --ckpt f32, no --grad-accum or --clip)",
  },
} as const satisfies Record<string, FlagSpec>;

/** The parsed subset of {@linkcode TRAIN_FLAGS} a plan needs. */
export interface TrainFlagValues {
  method: string;
  seqLen: number;
  rank: number;
  alpha?: number;
  rslora?: boolean;
  targets: readonly string[];
  optimizer: string;
  gradAccum: number;
  clip: number;
  vocabChunk: number;
  resident?: boolean;
  ckpt: string;
  ckptEvery?: number;
  savedInputs?: number;
  spill: string;
}

/** Whether a run with these flags spills (`--spill`; auto: where the run allows it). */
export function spills(f: TrainFlagValues): boolean {
  if (f.spill !== "auto") return f.spill === "on";
  return f.method === "mesp" && f.ckpt === "f32" && f.gradAccum === 1 && f.clip === 0;
}

/** Plan options of a training run with these flags. */
export function trainPlanOptions(
  cfg: ModelConfig,
  f: TrainFlagValues,
  format: PackFormat,
  gemmScratch: number,
): PlanOptions {
  return {
    mode: "train",
    seqLen: f.seqLen,
    format,
    bf16Scales: cfg.quantization !== undefined && (format === "q4" || format === "q8"),
    lora: loraLayout(cfg, { rank: f.rank, alpha: f.alpha, rslora: f.rslora, targets: f.targets }),
    method: f.method as Method,
    optimizer: f.method === "mezo" ? "sgd" : f.optimizer as OptimizerName,
    gradBuffer: f.gradAccum > 1 || f.clip > 0,
    vocabChunk: f.vocabChunk,
    resident: f.resident,
    savedInputDtype: f.ckpt as "f32" | "bf16",
    savedInputEvery: f.ckptEvery,
    savedInputs: f.savedInputs,
    spill: spills(f),
    gemmScratch,
  };
}

/**
 * The arena the default schedule aims at (`targetSchedule`): {@linkcode DEFAULT_PEAK} less the runtime with
 * `threads` threads, when no `--max-memory` is given (that one is a budget, and refuses).
 */
export function defaultTarget(maxMemory: number | undefined, threads: number): number | undefined {
  return maxMemory === undefined ? Math.max(0, DEFAULT_PEAK - runtimeBytes(threads)) : undefined;
}

/**
 * What to say when the default's {@linkcode DEFAULT_PEAK} aim is out of reach (a predicted whole-process
 * `peak` over it, no schedule flag in `given`), so a user knows why the run saves few inputs (or, `spilled`:
 * that they are all saved, in the spill file, and the arena is over the aim anyway) and what buys the speed
 * back; undefined when there is nothing to say.
 */
export function defaultAimHint(
  peak: number,
  given: ReadonlySet<string>,
  spilled: boolean,
): string | undefined {
  if (peak <= DEFAULT_PEAK || ["maxMemory", "ckptEvery", "savedInputs"].some((f) => given.has(f))) {
    return undefined;
  }
  // a prediction, which errs high (the runtime's part is the most measured): say it is one
  return `the default aims at ${formatMB(DEFAULT_PEAK)}, out of reach here by the plan's prediction ` +
    `(${formatMB(peak)}, which errs high)` +
    (spilled
      ? " (with every input in the spill, what stays in memory exceeds it: `plan` lists each region)"
      : ", so it saves few inputs") +
    `; --max-memory SIZE picks the fastest schedule that fits SIZE`;
}

/** Flags of {@linkcode TRAIN_FLAGS} that MeZO does not use: it runs no backward, so it saves no layer inputs. */
export const UNUSED_BY_MEZO = ["ckpt", "ckptEvery", "savedInputs"] as const;

/** `--flag is ignored` warnings for the flags in `given` that a `--method mezo` run does not use. */
export function mezoIgnored(given: Set<string>): string[] {
  return UNUSED_BY_MEZO.filter((k) => given.has(k)).map((k) =>
    ignoredFlag(k, "MeZO runs no backward, so it saves no layer inputs")
  );
}
