/**
 * What the model commands share: the flags that pick a model, its weight format, the cache, the memory budget
 * and the kernel variant, and the steps that open them.
 *
 * @module
 */
import { formatMB } from "../runtime/arena.ts";
import { processMemory } from "../runtime/memory.ts";
import { type Variant, VARIANTS } from "../runtime/kernels.ts";
import { availableThreads, MAX_THREADS } from "../runtime/pool.ts";
import type { Pack } from "../model/pack.ts";
import { PACK_FORMATS, type PackFormat } from "../model/pack_layout.ts";
import { prepare } from "./prepare.ts";
import { checkInputDir, ensureDir } from "./paths.ts";
import type { Sequence } from "../data/sequence.ts";
import { dirFiles, exists, fileSource } from "../io/deno_files.ts";
import { readTrainingStateHead, TRAINING_STATE_FILE } from "../run/training_state.ts";
import { recordedConfig, type RunConfig } from "./run_config.ts";
import {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  checkAdapter,
  openAdapter,
  type OpenedAdapter,
} from "../engine/adapter.ts";
import { loraLayout } from "../engine/lora.ts";
import type { ModelConfig } from "../model/config.ts";
import { type FlagSpec, UsageError } from "./args.ts";
import { resolveModelDir } from "./hub_cache.ts";
import { chooseWeights, type WeightsChoice, type WeightsDefault } from "./weights.ts";
import { knownFingerprint, readModelConfig } from "../model/pack_files.ts";

/**
 * Memory a Deno process holds besides the arena: the runtime itself (an idle Deno is 32 MB), Deno's code
 * pages that file I/O, the child process and the WebAssembly compiler touch (~20 MB), the compiled kernels
 * and the host's heap. Measured as whole-process VmHWM minus the arena: 63.2–66.2 MB over the README's memory
 * table and `bench:paper` (Qwen2.5-0.5B to 3B, every method, T 128–1024, one thread), 67.3 MB for the 0.5B
 * step of `bench/memory_breakdown.ts`, and up to 69.4 MB for the demo model in a fresh clone (`--threads 1
 * --max-memory 75MB` peaked at 77.4 MB when 67 MB was assumed). Rounded up, so that `--max-memory` errs on
 * the safe side. Added to the arena to predict the peak.
 */
export const RUNTIME_BYTES = 72e6;

/**
 * Memory each kernel worker adds (its own V8 isolate, code pages, malloc arena and stack; the wasm memory is
 * shared): 9.4–13 MB measured (`bench/memory_breakdown.ts`: 11–13 MB per worker; the demo model's
 * `--threads 2` peak 90.3 MB against 84.2 predicted with 10 MB), the largest taken.
 */
export const WORKER_BYTES = 13e6;

/** The process's memory besides the arena with `threads` kernel threads (see `RUNTIME_BYTES`). */
export function runtimeBytes(threads: number): number {
  return RUNTIME_BYTES + (threads - 1) * WORKER_BYTES;
}

/** `--model` of a command that applies an `--adapter`, whose base it defaults to ({@linkcode modelOrBase}). */
export const MODEL_OR_BASE_FLAG = {
  type: "string",
  value: "DIR",
  description:
    "model directory or Hub id org/name[@revision] (default with --adapter: the base the adapter " +
    "names, base_model_name_or_path)",
} as const satisfies FlagSpec;

/**
 * The model of a command that applies an adapter: `--model`, else the base the `--adapter` names
 * (`base_model_name_or_path`, which `train` sets to its `--model`), a Hub id looked up in the cache.
 */
export async function modelOrBase(
  args: { model?: string; adapter?: string },
  usage: string,
  log: (m: string) => void,
): Promise<string> {
  if (args.model !== undefined) return args.model;
  if (args.adapter === undefined) throw new UsageError(`missing required flag --model\n${usage}`);
  const adapter = await openAdapterDir(args.adapter);
  adapter.weights.source.close?.();
  const base = adapter.config.baseModel;
  if (!base) {
    throw new UsageError(
      `${args.adapter}/${ADAPTER_CONFIG} names no base model (base_model_name_or_path): give --model`,
    );
  }
  const dir = (await resolveModelDir(base))?.dir ?? base;
  log(`--model ${dir}: the adapter's base model (base_model_name_or_path; --model to use another)`);
  return dir;
}

/** Flags every model command takes. */
export const MODEL_FLAGS = {
  model: {
    type: "string",
    value: "DIR",
    required: true,
    description: "model directory (config.json, *.safetensors, tokenizer), or a Hub id org/name[@revision]",
  },
  weights: {
    type: "string",
    choices: PACK_FORMATS,
    description:
      "weight format the model is packed to (default: q4 for train/grad/plan, as the MeSP paper; the checkpoint's own precision for eval/generate)",
  },
  cacheDir: {
    type: "string",
    value: "DIR",
    description: "weight packs and token caches (default $MESP_CACHE or ~/.cache/mesp)",
  },
  maxMemory: {
    type: "size",
    description: "refuse to start if the predicted whole-process peak is larger (e.g. 100MB)",
  },
  variant: {
    type: "string",
    choices: VARIANTS,
    description: "kernel variant (default: fastest the runtime supports)",
  },
  threads: {
    type: "integer",
    min: 1,
    max: MAX_THREADS,
    description: "kernel threads (default: every core; results are bitwise the same for any count)",
  },
} as const satisfies Record<string, FlagSpec>;

/** How errors name the cache directory when no `--cache-dir` was given. */
export const CACHE_NAME = "the cache directory ($MESP_CACHE, else ~/.cache/mesp)";

/** The cache directory: the flag, `$MESP_CACHE`, or `~/.cache/mesp`. */
export function cacheDir(flag?: string): string {
  if (flag) return flag;
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  const set = env("MESP_CACHE");
  // an empty variable must not make the cache the filesystem's root
  if (set !== undefined && set.trim() === "") {
    throw new Error("$MESP_CACHE is set but empty (an unset variable?)");
  }
  return set ?? `${env("XDG_CACHE_HOME") || `${env("HOME") || "."}/.cache`}/mesp`;
}

/**
 * A `--max-memory` for messages, in MB; a tiny one also as the bytes it is (`--max-memory 100` asks for 100
 * bytes: a size without a unit is bytes).
 */
export function shownSize(bytes: number): string {
  return formatMB(bytes) +
    (bytes < 1e6 ? ` (${bytes} bytes: a size without a unit is bytes; ${bytes}MB?)` : "");
}

/** Arena budget from a whole-process `--max-memory` with `threads` kernel threads. */
export function arenaBudget(maxMemory: number | undefined, threads: number): number | undefined {
  if (maxMemory === undefined) return undefined;
  const runtime = runtimeBytes(threads);
  if (maxMemory <= runtime) {
    throw new Error(
      `--max-memory ${shownSize(maxMemory)} is below what the runtime alone needs with ${threads} thread${
        threads > 1 ? "s" : ""
      } (${formatMB(runtime)}; --threads 1 needs the least)`,
    );
  }
  return maxMemory - runtime;
}

/**
 * Packs the model (once) and tokenizes the datasets (once) in a child process, then opens the results: the
 * pack and one list of sequences per dataset path (undefined paths give empty lists).
 */
export async function prepareRun(
  args: { model: string; weights?: string; cacheDir?: string },
  data: (string | undefined)[],
  seqLen: number,
  log: (m: string) => void,
  choice: WeightsDefault | WeightsChoice = "q4",
  keepUntrained = false,
): Promise<{ pack: Pack; sets: Sequence[][]; weights: PackFormat }> {
  const paths = data.filter((d): d is string => d !== undefined);
  // a command that needed the format earlier (for its memory check) hands in the choice it made
  const weights = typeof choice === "object" && "line" in choice
    ? choice
    : chooseWeights(await readModelConfig(args.model), args.weights, choice);
  log(weights.line);
  const cache = cacheDir(args.cacheDir);
  await ensureDir(args.cacheDir ? "--cache-dir" : CACHE_NAME, cache);
  const { pack, sets } = await prepare({
    model: args.model,
    weights: weights.format,
    cacheDir: cache,
    data: paths,
    seqLen,
    ...(keepUntrained ? { keepUntrained } : {}),
  }, log);
  let i = 0;
  return { pack, sets: data.map((d) => (d === undefined ? [] : sets[i++])), weights: weights.format };
}

/**
 * Opens the PEFT adapter directory `dir` for the model of `cfg`, checking that it fits it (every pair, each
 * shape) before anything is packed or tokenized.
 */
export async function openAdapterFor(dir: string, cfg: ModelConfig): Promise<OpenedAdapter> {
  const adapter = await openAdapterDir(dir);
  checkAdapter(adapter, loraLayout(cfg, adapter.config));
  return adapter;
}

/** Opens a PEFT adapter directory. */
export async function openAdapterDir(dir: string): Promise<OpenedAdapter> {
  await checkInputDir("--adapter", dir, ADAPTER_FILES);
  if (!await exists(`${dir}/${ADAPTER_CONFIG}`) && await exists(`${dir}/metrics.jsonl`)) {
    throw new Error(
      `--adapter ${dir} holds a training run that has not saved an adapter yet (train saves at the end, and ` +
        `every --save-every steps)`,
    );
  }
  return await openAdapter(dirFiles(dir));
}

/** What an adapter's directory holds, for messages. */
const ADAPTER_FILES = `${ADAPTER_CONFIG} and ${ADAPTER_WEIGHTS}`;

/** The configuration a training run recorded, and the file it is recorded in. */
export interface AdapterRun {
  config: Partial<RunConfig>;
  path: string;
}

/**
 * The run configuration recorded beside the adapter in `dir` (train's `--out` keeps the run's state there);
 * undefined for an adapter without one.
 */
export async function adapterRun(
  dir: string | undefined,
  log: (m: string) => void,
): Promise<AdapterRun | undefined> {
  if (dir === undefined) return undefined;
  await checkInputDir("--adapter", dir, ADAPTER_FILES);
  const path = `${dir}/${TRAINING_STATE_FILE}`;
  if (!await exists(path)) return undefined;
  try {
    const { state, run } = await readTrainingStateHead(fileSource(path), path);
    const config = recordedConfig(run);
    if (config?.steps !== undefined && state.step < config.steps) {
      log(
        `notice: --adapter ${dir} is its run's state at step ${state.step} of ${config.steps} (the run ` +
          `stopped early, or is still training and saves again later)`,
      );
    }
    return config && { config, path };
  } catch (err) {
    log(`notice: ${(err as Error).message}; the adapter's training run is unknown`);
    return undefined;
  }
}

/**
 * Warns when the adapter's training `run` recorded other base weights than `fingerprint` (a model of the same
 * shapes, e.g. another seed or fine-tune): the adapter applies, but its scores and text are not its run's.
 */
export function warnOtherBase(
  run: AdapterRun | undefined,
  fingerprint: string,
  model: string,
  log: (m: string) => void,
): void {
  const trainedOn = run?.config.model;
  if (trainedOn === undefined || trainedOn === fingerprint) return;
  log(
    `warning: the adapter was trained on other weights than --model ${model} (its run recorded ` +
      `fingerprint ${trainedOn.slice(0, 16)}, this model's is ${fingerprint.slice(0, 16)}): ` +
      `it applies, but what it learned was for that base`,
  );
}

/**
 * For a command that bakes adapter `dir` into files for use elsewhere (`merge`, `export`): names the step of
 * a run that stopped early or is still training, and warns when the run trained on other weights than
 * `model`'s. Best effort: the fingerprint comes from the checksums packing remembered in the default cache
 * (a model packed elsewhere, or changed since, is not hashed again for a warning: it is not compared).
 */
export async function warnAdapterRun(dir: string, model: string, log: (m: string) => void): Promise<void> {
  const run = await adapterRun(dir, log);
  if (run?.config.model === undefined) return;
  let packs;
  try {
    packs = `${cacheDir()}/packs`; // prepare_child.ts keeps packs and their checksums there
  } catch {
    return; // an unusable $MESP_CACHE: nothing remembered to compare with
  }
  const fingerprint = await knownFingerprint(model, { cacheDir: packs });
  if (fingerprint !== undefined) warnOtherBase(run, fingerprint, model, log);
}

/**
 * The default weights of a command that applies an adapter whose training `run` is known ({@linkcode
 * adapterRun}): those the run recorded, else the checkpoint's own precision.
 */
export function adapterWeightsDefault(run: AdapterRun | undefined): WeightsDefault {
  const format = run?.config.weights;
  return run && PACK_FORMATS.includes(format as PackFormat)
    ? { format: format as PackFormat, recordedIn: run.path }
    : "checkpoint";
}

/**
 * Warns about adapter_config.json fields that change how PEFT trains but that mesp does not apply
 * (`lora_dropout`: mesp trains and differentiates without dropout).
 */
export async function warnTrainingFields(dir: string, log: (m: string) => void): Promise<void> {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(await Deno.readTextFile(`${dir}/${ADAPTER_CONFIG}`));
  } catch {
    return; // openAdapterDir reports a missing or invalid file
  }
  if (typeof j.lora_dropout === "number" && j.lora_dropout > 0) {
    log(
      `warning: ${dir}/${ADAPTER_CONFIG}: lora_dropout ${j.lora_dropout} is ignored (mesp uses no dropout)`,
    );
  }
}

/** The threads flag, or every core the runtime reports. */
export function threadsOf(flag?: number): number {
  return flag ?? availableThreads();
}

/** The variant flag as a kernel variant. */
export function variantOf(flag?: string): Variant | undefined {
  return flag as Variant | undefined;
}

/** "peak memory 84.2 MB (whole process, VmHWM)". */
export function peakMemoryLine(): string {
  const m = processMemory();
  return m.peak !== undefined
    ? `peak memory ${formatMB(m.peak)} (whole process, VmHWM)`
    : `memory ${formatMB(m.rss)} (resident now; this platform reports no peak)`;
}

/** Whole-process peak in MB, if known. */
export function peakMB(): number | undefined {
  const m = processMemory();
  return m.peak === undefined ? undefined : +(m.peak / 1e6).toFixed(1);
}

/** A status logger that writes to stderr. */
export function stderrLog(quiet = false): (m: string) => void {
  return (m: string) => {
    if (!quiet) console.error(m);
  };
}
