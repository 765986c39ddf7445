/**
 * `train`: fine-tunes a LoRA adapter with exact MeSP gradients. With no arguments it runs the demo: a small
 * random Qwen2 model (the `demo` preset, made once, cached) with the real Qwen tokenizer, fine-tuned on the Lumen dataset shipped in
 * `data/lumen/`, with a generation before and after.
 *
 * A run directory holds the PEFT adapter, the training state `checkpoint.safetensors` (every `--save-every`
 * steps, at the end and when a stop signal arrives, written atomically), `metrics.jsonl` and `loss.svg`; it
 * is locked while a run uses it.
 *
 * @module
 */
import { DEFAULT_ZO_EPS } from "../engine/mezo.ts";
import { LORA_OPTIONS, MAX_SEED } from "../run/run_options.ts";
import { type CommandSpec, givenFlags, ignoredFlag, parseArgs, UsageError, usageLine } from "./args.ts";
import { resolve } from "node:path";
import { Progress } from "./progress.ts";
import {
  adapterRun,
  arenaBudget,
  CACHE_NAME,
  cacheDir,
  MODEL_FLAGS,
  openAdapterFor,
  peakMemoryLine,
  prepareRun,
  runtimeBytes,
  stderrLog,
  threadsOf,
  variantOf,
  warnOtherBase,
  warnTrainingFields,
} from "./common.ts";
import { chooseWeights } from "./weights.ts";
import {
  defaultAimHint,
  defaultTarget,
  mezoIgnored,
  spills,
  TRAIN_FLAGS,
  trainPlanOptions,
} from "./train_flags.ts";
import { CLI_PERMISSIONS, denoCommand } from "./prepare.ts";
import { hubIdOfDir } from "./hub_cache.ts";
import { fitPositions, refuseOverBudget } from "./preflight.ts";
import { longestWithin } from "../data/sequence.ts";
import type { PackFormat } from "../model/pack_layout.ts";
import {
  checkInputFile,
  ensureDir,
  lockRunDir,
  refuseInsideModel,
  removeStaleTemps,
  type RunLock,
} from "./paths.ts";
import { STOP_SIGNALS, trapSignals } from "./signals.ts";
import { endChildren, spawnChild } from "./children.ts";
import {
  CHANGEABLE,
  configDifferences,
  RECORDED_FLAGS,
  RECORDED_SETTINGS,
  recordedConfig,
  refuseDifferences,
  type RunConfig,
  runConfigOfState,
} from "./run_config.ts";
import { sequencesFingerprint } from "../run/train_config.ts";
import { MLX_ADAPTER_CONFIG, MLX_ADAPTER_WEIGHTS } from "../run/export_adapter.ts";
import {
  createSpillFile,
  exists,
  fileSource,
  removeIfExists,
  removePartialWrites,
  statIfExists,
  writeFileAtomic,
} from "../io/deno_files.ts";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfigJson, writeLoraTensors } from "../engine/adapter.ts";
import { loraLayout, resolveTargets } from "../engine/lora.ts";
import {
  openTrainingState,
  readTrainingStateHead,
  TRAINING_STATE_FILE,
  writeTrainingState,
} from "../run/training_state.ts";
import { lossCurveSvg } from "../run/loss_svg.ts";
import { type StoredTrainState, train, type TrainEvent, type TrainState } from "../run/train.ts";
import type { Method } from "../engine/plan.ts";
import { DEFAULT_SCHEDULE, defaultLr } from "../engine/optimizer.ts";
import { formatMB } from "../runtime/arena.ts";
import { processMemory } from "../runtime/memory.ts";
import { readModelConfig } from "../model/pack_files.ts";

/** One line for the command list. */
export const description = "fine-tune a LoRA adapter with exact MeSP gradients (no arguments: the demo)";

const { model: _model, ...modelFlags } = MODEL_FLAGS;

/** The command's flags. */
export const SPEC = {
  name: "train",
  description,
  flags: {
    model: { ...MODEL_FLAGS.model, required: false },
    ...modelFlags,
    data: { type: "string", value: "FILE", description: "training JSONL" },
    val: {
      type: "string",
      value: "FILE",
      description: "validation JSONL (loss every --val-every steps and at the end)",
    },
    out: { type: "string", value: "DIR", description: "run directory (default runs/<data name>)" },
    steps: { type: "integer", min: 1, description: "optimizer steps (default: one epoch)" },
    epochs: { type: "number", greaterThan: 0, description: "epochs over the data instead of --steps" },
    ...TRAIN_FLAGS,
    lr: {
      type: "number",
      greaterThan: 0, // 0 would train an adapter that stays the base model
      description: "peak learning rate (default 2e-4 AdamW, 1e-4 SGD, 5e-5 MeZO)",
    },
    zoEps: {
      type: "number",
      default: DEFAULT_ZO_EPS,
      greaterThan: 0,
      description: "MeZO perturbation scale ε",
    },
    weightDecay: { type: "number", default: 0, min: 0, description: "weight decay" },
    beta1: { type: "number", default: 0.9, min: 0, lessThan: 1, description: "AdamW β1" },
    beta2: { type: "number", default: 0.999, min: 0, lessThan: 1, description: "AdamW β2" },
    schedule: {
      type: "string",
      choices: ["cosine", "constant"],
      default: DEFAULT_SCHEDULE,
      description: "learning-rate schedule",
    },
    warmup: { type: "integer", default: 0, min: 0, description: "linear warmup steps" },
    seed: {
      type: "integer",
      default: 0,
      min: 0,
      max: MAX_SEED,
      description: "seed of the LoRA initialisation and data order",
    },
    valEvery: {
      type: "integer",
      default: 0,
      min: 0,
      description: "validate every N steps (0: only at the end)",
    },
    saveEvery: {
      type: "integer",
      default: 0,
      min: 0,
      description: "save the training state (checkpoint.safetensors) every N steps (0: only at the end)",
    },
    resume: {
      type: "boolean",
      description: "continue the run in --out to its own target (flags not given keep their recorded values)",
    },
    allowChange: {
      type: "list",
      choices: CHANGEABLE,
      description: "with --resume: flags that may differ from the recorded run (e.g. steps to train longer)",
    },
    adapter: {
      type: "string",
      value: "DIR",
      description: "start from this PEFT adapter instead of a fresh one",
    },
    force: {
      type: "boolean",
      description: "start over in a run directory that already holds a run (its files are replaced)",
    },
    json: { type: "boolean", description: "print step lines as JSON instead of a progress bar" },
  },
  epilog: "examples:\n  deno task train\n" +
    "  deno task train --model models/qwen2.5-0.5b --data train.jsonl --val valid.jsonl --steps 200 --out runs/mine",
} as const satisfies CommandSpec;

/** The demo's training data, inside the repository. */
const DEMO_DATA = "data/lumen/train.jsonl";

/**
 * The demo: memorising the Lumen answers on a small random base (the `demo` preset) takes more steps, a larger
 * rank and a larger learning rate than fine-tuning a real model; these apply only when the flag is not given.
 */
const DEMO = {
  data: new URL(`../../${DEMO_DATA}`, import.meta.url).pathname,
  val: new URL("../../data/lumen/valid.jsonl", import.meta.url).pathname,
  out: "runs/lumen",
  prompt: "How long is the warranty?", // the first training question; trained answer "Lumen has a 2-year warranty."
  steps: 300,
  rank: 32,
  lr: 3e-3,
  vocabChunk: 4096,
};

/**
 * The demo's model: the `demo` preset, made once into the cache. The directory name changes with the preset's
 * shape or initialisation (`demo-2`: LM head std 0.25), so a model cached by an older mesp is not reused.
 */
async function demoModel(cache: string, log: (m: string) => void): Promise<string> {
  const dir = `${cache}/models/demo-2`;
  if (!await exists(`${dir}/config.json`)) {
    log(`making the demo model (a random 128-wide Qwen2 with the real Qwen tokenizer) in ${dir}`);
    // in a child process, so its buffers never count toward this process's peak memory
    const main = new URL("./main.ts", import.meta.url).href;
    const args = ["run", ...CLI_PERMISSIONS, main, "make-model", "--preset", "demo", "--out", dir, "--force"];
    const child = spawnChild(
      new Deno.Command(denoCommand(), { args, stdin: "null", stdout: "inherit", stderr: "inherit" }),
    );
    if (!(await child.status).success) throw new Error("could not make the demo model");
  }
  return dir;
}

/**
 * The demo's run directory: `runs/lumen`, or when an earlier demo run is there (never overwritten) the first free
 * `runs/lumen-2`, `-3`, …, so `deno task train` works every time; `--resume`/`--force` mean the last one.
 */
async function demoOut(last: boolean | undefined): Promise<string> {
  const dir = (i: number) => (i === 1 ? DEMO.out : `${DEMO.out}-${i}`);
  let i = 1;
  while (await exists(dir(i + 1)) || (await exists(dir(i)) && !last)) i++;
  return dir(i);
}

/** Generates in a child process, so this process never holds a tokenizer (~100 MB). */
async function generateInChild(
  model: string,
  adapter: string | undefined,
  prompt: string,
  extra: string[],
): Promise<string> {
  const main = new URL("./main.ts", import.meta.url).href;
  const args = [
    "run",
    ...CLI_PERMISSIONS,
    main,
    "generate",
    "--model",
    model,
    "--prompt",
    prompt,
    "--temperature",
    "0",
    "--max-tokens",
    "40",
    ...extra,
  ];
  if (adapter) args.push("--adapter", adapter);
  const out = await spawnChild(
    new Deno.Command(denoCommand(), { args, stdin: "null", stdout: "piped", stderr: "piped" }),
  ).output();
  if (!out.success) {
    return `(generation failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)})`;
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/**
 * `--resume --out DIR` without `--model` and `--data`: the paths the run recorded (its fingerprints are
 * checked against what they hold, as for given paths); a demo run's stay the demo's.
 */
async function useRecordedPaths(
  args: { out?: string; model?: string; data?: string; val?: string },
  log: (m: string) => void,
) {
  const statePath = `${args.out}/${TRAINING_STATE_FILE}`;
  // before anything is made or packed (the demo's model would be, for a run that is not there)
  if (!await exists(statePath)) throw await missingState(args.out!);
  const { run } = await readTrainingStateHead(fileSource(statePath), statePath);
  if (typeof run.model !== "string" || typeof run.data !== "string") return;
  // a demo run stays the demo (runs recorded before the flag: by the demo's data, in whichever clone)
  if (run.demo === true || (run.demo === undefined && run.data.endsWith(DEMO_DATA))) return;
  args.model = run.model;
  args.data = run.data;
  if (args.val === undefined && typeof run.val === "string") args.val = run.val;
  log(
    `--resume: the run's recorded --model ${run.model} --data ${run.data}${
      args.val ? ` --val ${args.val}` : ""
    }`,
  );
}

/** The error of a `--resume` whose run directory `out` holds no training state, saying what it holds. */
async function missingState(out: string): Promise<Error> {
  const present: string[] = [];
  for (const f of RUN_FILES) if (await exists(`${out}/${f}`)) present.push(f);
  return new Error(
    `--resume: ${out}/${TRAINING_STATE_FILE} not found: the run ${
      present.length
        ? `stopped before it saved a training state (${present.join(", ")} only)`
        : "is not there"
    }; --force starts it over`,
  );
}

/** What `export` writes into a run's directory by default (`--format gguf`, `--format mlx`). */
const EXPORT_FILES = ["adapter.gguf", `mlx/${MLX_ADAPTER_WEIGHTS}`, `mlx/${MLX_ADAPTER_CONFIG}`];

/** The files a run writes into its directory. */
const RUN_FILES = [TRAINING_STATE_FILE, ADAPTER_WEIGHTS, ADAPTER_CONFIG, "metrics.jsonl", "loss.svg"];

/** Runs `train`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const given = givenFlags(argv, SPEC);
  const log = stderrLog();
  if (args.resume && args.out !== undefined && args.model === undefined && args.data === undefined) {
    await useRecordedPaths(args, log);
  }
  const demo = args.model === undefined && args.data === undefined;
  if (!demo && (args.model === undefined || args.data === undefined)) {
    const recorded = args.resume
      ? "; with --resume, neither: --out R --resume takes the run's recorded ones"
      : "";
    throw new UsageError(
      `give both --model and --data (or neither, for the demo${recorded})\n${usageLine(SPEC)}`,
    );
  }
  if (args.resume && args.force) {
    throw new UsageError(
      `--resume continues the run in --out, --force replaces it: give one\n${usageLine(SPEC)}`,
    );
  }
  if (args.allowChange.length > 0 && !args.resume) {
    throw new UsageError(`--allow-change applies to --resume only\n${usageLine(SPEC)}`);
  }
  const cache = cacheDir(args.cacheDir);
  if (demo) await ensureDir(args.cacheDir ? "--cache-dir" : CACHE_NAME, cache);
  const model = demo ? await demoModel(cache, log) : args.model!;
  const dataPath = demo ? DEMO.data : args.data!;
  const out = args.out ??
    (demo
      ? await demoOut(args.resume || args.force)
      : `runs/${dataPath.split("/").at(-1)!.replace(/\.jsonl?$/, "")}`);
  const cfg = await readModelConfig(model);
  await refuseInsideModel("--out", out, model, "dir");
  resolveTargets(args.targets);
  await checkInputFile("--data", dataPath);
  if (args.val !== undefined) await checkInputFile("--val", args.val);

  // a stop signal exits at once before training (releasing the lock), saves during it
  let training = false, stop = false, savedStep: number | undefined;
  let lock: RunLock | undefined;
  const created = !await exists(out);
  const trap = trapSignals((signal, count) => {
    if (!training || count > 1) {
      if (training) {
        log(
          `\n${signal} again: quitting without saving; ` +
            (savedStep === undefined
              ? `nothing of this run was saved (--force starts it over)`
              : `--resume continues from the state saved at step ${savedStep}`),
        );
      }
      endChildren();
      removePartialWrites(); // a save cut short leaves no .tmp- file
      lock?.release();
      let removed = false;
      if (created && !training) {
        try {
          Deno.removeSync(out); // as a failed start: an --out made for this run and still empty goes
          removed = true;
        } catch {
          // it holds something after all (a removal is not recursive), or is gone
        }
      }
      if (!training) {
        log(
          `\n${signal}: stopped before training began; ` +
            (removed ? `removed ${out} (made for this run)` : `nothing was trained or saved`),
        );
      }
      Deno.exit(STOP_SIGNALS[signal]);
    }
    stop = true;
    log(
      `\n${signal}: stopping after this step (saving the training state); send it again (a second later) ` +
        `to quit now without saving`,
    );
  });
  try {
    await ensureDir("--out", out);
    lock = await lockRunDir(out);
  } catch (err) {
    trap.dispose();
    throw err;
  }
  try {
    return await trainInto(out, {
      args,
      given,
      cfg,
      model,
      dataPath,
      demo,
      log,
      setTraining: (on: boolean) => (training = on),
      saved: (step: number) => (savedStep = step),
      shouldStop: () => stop,
      exitCode: () => trap.exitCode,
    });
  } catch (err) {
    // a run that never started leaves no empty directory behind
    if (created && !training) {
      lock.release();
      await Deno.remove(out).catch(() => {});
    }
    throw err;
  } finally {
    trap.dispose();
    lock.release();
  }
}

type TrainArgs = ReturnType<typeof parseArgs<typeof SPEC>>;

/** The rest of `train`, with `out` created and locked. */
async function trainInto(out: string, c: {
  args: TrainArgs;
  given: Set<string>;
  cfg: Awaited<ReturnType<typeof readModelConfig>>;
  model: string;
  dataPath: string;
  demo: boolean;
  log: (m: string) => void;
  setTraining: (on: boolean) => void;
  /** The training state in the run folder is now that of step `step`. */
  saved: (step: number) => void;
  shouldStop: () => boolean;
  exitCode: () => number;
}): Promise<number> {
  const { given, cfg, model, dataPath, demo, log } = c;
  const stale = await removeStaleTemps(out);
  if (stale.length) log(`removed ${stale.length} interrupted write(s) from ${out}: ${stale.join(", ")}`);
  const statePath = `${out}/${TRAINING_STATE_FILE}`;
  const present: string[] = [];
  for (const f of RUN_FILES) if (await exists(`${out}/${f}`)) present.push(f);
  // a run that failed before its first step leaves only an empty metrics.jsonl: nothing to keep or resume
  // (kept for --resume, which says that the run stopped before it saved)
  if (
    !c.args.resume && present.length === 1 && present[0] === "metrics.jsonl" &&
    (await Deno.stat(`${out}/metrics.jsonl`)).size === 0
  ) {
    await Deno.remove(`${out}/metrics.jsonl`);
    present.length = 0;
  }
  if (present.length && !c.args.resume && !c.args.force) {
    throw new Error(
      `${out} already holds a run (${
        present.join(", ")
      }): use --resume to continue it, --force to start over, ` +
        `or another --out`,
    );
  }

  // --resume: flags not given take the recorded values; given ones must match them
  let resume: StoredTrainState | undefined;
  let recorded: Partial<RunConfig> | undefined;
  const args = { ...c.args };
  // flags with defaults of their own take the demo's values when not typed (a resumed demo records them)
  if (demo && !given.has("rank")) args.rank = DEMO.rank;
  if (demo && !given.has("vocabChunk")) args.vocabChunk = DEMO.vocabChunk;
  if (args.resume) {
    if (!await exists(statePath)) throw await missingState(out);
    // checked whole through one small buffer, then read again a layer at a time into the arena or the spill
    const saved = await openTrainingState(fileSource(statePath), statePath);
    resume = saved.state;
    // the CLI's record of the run, else what the library recorded (a state saved by a library caller or the
    // web page): flags not given take those values either way
    recorded = recordedConfig(saved.run) ?? runConfigOfState(resume);
    if (!recorded) log(`warning: ${statePath} records no run configuration; the flags cannot be checked`);
    else if (!recordedConfig(saved.run)) {
      log(
        `notice: ${statePath} was saved by the library (or the web page): flags not given take its options`,
      );
    }
    const now: Partial<RunConfig> = {};
    const rec = (recorded ?? {}) as Record<string, unknown>;
    const mut = args as Record<string, unknown>;
    for (const key of RECORDED_FLAGS) {
      if (given.has(key)) (now as Record<string, unknown>)[key] = normalized(key, args);
      else if (key in rec) mut[key] = rec[key];
    }
    for (const key of RECORDED_SETTINGS) if (!given.has(key) && key in rec) mut[key] = rec[key];
    if (given.has("steps")) now.steps = args.steps;
    refuseDifferences(out, configDifferences(rec, now, args.allowChange));
    log(`resuming ${out} at step ${resume.step}`);
    c.saved(resume.step);
  }
  args.seqLen = fitPositions("--seq-len", args.seqLen, given.has("seqLen"), cfg);
  // q4 unless given (or recorded), falling back to a float format for shapes q4 cannot group
  const choice = chooseWeights(
    cfg,
    args.weights,
    "q4",
    args.resume && !given.has("weights") ? "as the run recorded" : "--weights",
  );
  args.weights = choice.format;
  if (given.has("steps") && given.has("epochs")) {
    throw new UsageError(`give --steps or --epochs, not both\n${usageLine(SPEC)}`);
  }
  const valPath = demo ? DEMO.val : args.val;
  const method = args.method as Method;
  // MeZO's update is SGD on its estimate (the paper's); the exact methods take --optimizer
  const optimizer = method === "mezo" ? "sgd" : args.optimizer as "adamw" | "sgd";
  const lr = args.lr ?? (demo && method !== "mezo" ? DEMO.lr : defaultLr(optimizer, method));
  const threads = threadsOf(args.threads);
  const budget = arenaBudget(args.maxMemory, threads);
  const adapter = args.adapter ? await openAdapterFor(args.adapter, cfg) : undefined;
  const layout = loraLayout(
    cfg,
    resume?.lora ?? adapter?.config ??
      { rank: args.rank, alpha: args.alpha, rslora: args.rslora, targets: args.targets },
  );
  for (const w of ignoredFlags(given, args, method, optimizer, adapter !== undefined, resume !== undefined)) {
    log(`warning: ${w}`);
  }
  if (args.adapter) await warnTrainingFields(args.adapter, log);
  const narrowest = layout.pairs.flat().reduce(
    (a, p) => (Math.min(p.inDim, p.outDim) < Math.min(a.inDim, a.outDim) ? p : a),
  );
  const width = Math.min(narrowest.inDim, narrowest.outDim);
  if (layout.rank > width && !resume && !adapter) {
    log(
      `warning: --rank ${layout.rank} is above the narrowest target's width (${narrowest.target}: ` +
        `${narrowest.inDim} in, ${narrowest.outDim} out): a rank above min(in, out) adds parameters and ` +
        `memory, not expressiveness`,
    );
  }
  const plan = trainPlanOptions(cfg, args, args.weights as PackFormat, 0);
  // memory is planned for the longest sequence once cut to --seq-len: what cannot fit even the shortest is
  // refused now, before packing and tokenizing; the longest sequence's plan once the data is known
  const preflight = (seqLen: number, longest?: { seqLen: number }) =>
    refuseOverBudget(
      cfg,
      { ...plan, seqLen, lora: layout, gradBuffer: plan.gradBuffer || method === "mebp" },
      args.maxMemory,
      threads,
      variantOf(args.variant),
      longest,
    );
  await preflight(2);
  const { pack, sets: [data, val], weights } = await prepareRun(
    { ...args, model },
    [dataPath, valPath],
    args.seqLen,
    log,
    choice,
  );
  await preflight(longestWithin(args.seqLen, data, val), { seqLen: args.seqLen });
  // a starting adapter trained on other weights of the same shapes: it applies, but says so
  if (adapter && !resume) {
    warnOtherBase(await adapterRun(args.adapter, log), pack.header.fingerprint, model, log);
  }
  // the run's own target: --steps, --epochs, the recorded one, or one epoch
  const steps = given.has("steps")
    ? args.steps!
    : given.has("epochs")
    ? Math.ceil((args.epochs! * data.length) / args.gradAccum)
    : recorded?.steps ?? args.steps ?? (demo ? DEMO.steps : Math.ceil(data.length / args.gradAccum));
  if (args.warmup >= steps && args.warmup > 0) {
    log(
      `warning: --warmup ${args.warmup} is not below the run's ${steps} steps: the learning rate rises the ` +
        `whole run and never reaches --lr ${lr} (at most ${
          Number(((lr * steps) / args.warmup).toPrecision(3))
        })`,
    );
  }
  const config: RunConfig = {
    ...Object.fromEntries(RECORDED_FLAGS.map((k) => [k, normalized(k, args)])) as Omit<
      RunConfig,
      "steps" | "model" | "data"
    >,
    lr,
    // the layout trained: --adapter's or the state's where one was given (their flags were ignored)
    rank: layout.rank,
    alpha: layout.alpha,
    rslora: layout.rslora,
    targets: layout.targets,
    steps,
    saveEvery: args.saveEvery,
    valEvery: args.valEvery,
    model: pack.header.fingerprint,
    data: sequencesFingerprint(data, { lengths: false }),
  };
  if (resume && recorded) {
    const now = { model: config.model, data: config.data, ...(given.has("epochs") ? { steps } : {}) };
    // --epochs is compared as the steps it makes: say so
    const lines = configDifferences(recorded, now, args.allowChange).map((l) =>
      l.startsWith("--steps:") ? `${l} (from --epochs ${args.epochs})` : l
    );
    refuseDifferences(out, lines);
  }
  if (resume && resume.step >= steps) {
    throw new Error(
      given.has("steps") || given.has("epochs")
        ? `--resume: the run in ${out} is at step ${resume.step}, and ${
          given.has("steps") ? `--steps ${steps}` : `--epochs ${args.epochs} (${steps} steps)`
        } is not above it: nothing to train`
        : `--resume: the run in ${out} is complete (step ${resume.step} of ${steps}); ` +
          `--allow-change steps --steps N trains it further`,
    );
  }
  if (args.force && present.length) {
    log(`--force: replacing the run in ${out}`);
    // a file that stays would be the old run's beside the new one: stop instead, before removing any (a
    // directory in a file's place is seen first; a removal the OS refuses still stops part-way)
    for (const f of [...RUN_FILES, ...EXPORT_FILES]) {
      if ((await statIfExists(`${out}/${f}`))?.isDirectory) {
        throw new Error(`--force: ${out}/${f} is a directory, not a file of a run: move it away first`);
      }
    }
    // `export`'s default outputs are the old run's adapter: gone with it (the mlx folder only if then empty)
    const removed: string[] = [];
    for (const f of [...RUN_FILES, ...EXPORT_FILES]) if (await removeIfExists(`${out}/${f}`)) removed.push(f);
    const mlxGone = await removeIfExists(`${out}/mlx`).catch((e) => {
      if ((e as { code?: string }).code !== "ENOTEMPTY") throw e; // the user's own files in it stay
      return false;
    });
    if (mlxGone) removed.push("mlx/");
    log(`--force: removed ${removed.join(", ") || "nothing"} from ${out}`);
  } else if (resume) {
    const stale: string[] = [];
    for (const f of EXPORT_FILES) if (await exists(`${out}/${f}`)) stale.push(f);
    if (stale.length) {
      log(
        `notice: ${stale.map((f) => `${out}/${f}`).join(", ")} ${
          stale.length === 1 ? "holds" : "hold"
        } the adapter as exported before this ` +
          `resume: export again once it ends`,
      );
    }
  }
  if (resume) await keepMetricsUpTo(`${out}/metrics.jsonl`, resume.step);

  if (demo && !resume) {
    log(
      `demo: a rank-${args.rank} LoRA adapter, ${steps} steps at lr ${lr}, on ${DEMO.data} (validation ` +
        `${DEMO.val}), saved in ${out}. The base is a small random model, so this shows the adapter ` +
        `memorising answers (the warranty one best; not every answer in 300 steps), not a useful model; add --model Qwen/Qwen2.5-0.5B-Instruct --data … to ` +
        `train a real one (README, "With internet, start here").`,
    );
    log(
      `\nbefore training, the model answers "${DEMO.prompt}" with:\n  ${await generateInChild(
        model,
        undefined,
        DEMO.prompt,
        ["--weights", weights],
      )}\n`,
    );
  }

  // absolute, so that `train --out R --resume` finds them from any working directory
  const runMeta = {
    config,
    demo,
    model: resolve(model),
    data: resolve(dataPath),
    val: valPath === undefined ? null : resolve(valPath),
  };
  const metricsPath = `${out}/metrics.jsonl`;
  const metrics = await Deno.open(metricsPath, { create: true, append: true, write: true });
  const utf8 = new TextEncoder(); // one for the run: a row is written every step
  const writeMetric = (o: Record<string, unknown>) => {
    try {
      metrics.writeSync(utf8.encode(JSON.stringify(o) + "\n"));
    } catch (err) {
      throw new Error(`cannot append to ${metricsPath}: ${(err as Error).message}`);
    }
  };
  const bar = args.json
    ? undefined
    : new Progress("train", { total: steps, unit: "step", start: resume?.step ?? 0 });
  let sumLoss = 0, nLoss = 0;
  const onEvent = (ev: TrainEvent) => {
    if (ev.type === "plan") {
      log(`memory plan: arena ${formatMB(ev.bytes)}${ev.schedule ? `; schedule: ${ev.schedule}` : ""}`);
      if (ev.spill) log(`spill: ${ev.spill}`);
      const hint = ev.schedule && method === "mesp" &&
        defaultAimHint(ev.bytes + runtimeBytes(threads), given, !!ev.spill);
      if (hint) log(hint);
    } else if (ev.type === "step") {
      sumLoss += ev.loss;
      nLoss++;
      const mem = processMemory();
      const row = {
        step: ev.step,
        loss: +ev.loss.toFixed(5),
        lr: ev.lr,
        tokens: ev.tokens,
        tokens_per_s: +ev.tokensPerSecond.toFixed(1),
        elapsed_s: +ev.elapsed.toFixed(2),
        rss_mb: +(mem.rss / 1e6).toFixed(1),
      };
      writeMetric(row);
      if (args.json) console.log(JSON.stringify(row));
      bar?.update(ev.step, {
        // the mean since the last tenth step, so it moves less than one step's loss
        "mean loss": (sumLoss / nLoss).toFixed(4),
        // the loss's tokens: for chat data the replies, not the prompt the forward pass also reads
        "trained tok/s": ev.tokensPerSecond.toFixed(0),
        mem: formatMB(mem.peak ?? mem.rss),
      });
      if (ev.step % 10 === 0) sumLoss = nLoss = 0;
    } else if (ev.type === "val") {
      writeMetric({ step: ev.step, val_loss: +ev.loss.toFixed(5), val_tokens: ev.tokens });
      const line = `step ${ev.step}: validation loss ${ev.loss.toFixed(4)}`;
      if (bar) bar.log(line);
      else console.log(JSON.stringify({ step: ev.step, val_loss: ev.loss }));
    }
  };
  // three atomic writes, the state first: it is what --resume continues from (and a second signal may cut the
  // rest). A kill -9 between them leaves the adapter one save older than the state, never a torn file.
  const save = async (state: TrainState) => {
    await writeFileAtomic(statePath, (sink) => writeTrainingState(sink, state, runMeta));
    c.saved(state.step); // what --resume continues from, even if a second signal ends the rest
    await writeFileAtomic(
      `${out}/${ADAPTER_WEIGHTS}`,
      (sink) => writeLoraTensors(sink, layout, state.params),
    );
    await writeFileAtomic(
      `${out}/${ADAPTER_CONFIG}`,
      // a Hub model's id, as PEFT adapters name their base; else the model directory
      // (absolute, as the run records it: a relative path would mean another model from another folder)
      new TextEncoder().encode(adapterConfigJson(layout, hubIdOfDir(model) ?? resolve(model))),
    );
  };
  let result, spillError: unknown;
  // the spill lives in the run folder (the user's disk; a /tmp may be memory) while the run does
  const spill = spills(args) ? createSpillFile(out) : undefined;
  c.setTraining(true);
  try {
    result = await train(pack, data, val, {
      seqLen: args.seqLen,
      steps,
      // an adapter's or the saved state's layout is the run's (--rank etc. were warned about above)
      lora: adapter || resume
        ? undefined
        : { rank: args.rank, alpha: args.alpha, rslora: args.rslora, targets: args.targets },
      // resumed: the state's own seed (a state without a recorded run has no --seed to take)
      seed: resume && !given.has("seed") ? undefined : args.seed,
      optimizer: {
        name: optimizer,
        lr,
        weightDecay: args.weightDecay,
        beta1: args.beta1,
        beta2: args.beta2,
        schedule: args.schedule as "cosine" | "constant",
        warmup: args.warmup,
      },
      gradAccum: args.gradAccum,
      clip: args.clip,
      valEvery: args.valEvery,
      saveEvery: args.saveEvery,
      resume,
      adapter,
      budget,
      variant: variantOf(args.variant),
      threads,
      resident: args.resident,
      savedInputDtype: args.ckpt as "f32" | "bf16",
      vocabChunk: args.vocabChunk,
      savedInputEvery: args.ckptEvery,
      savedInputs: args.savedInputs,
      target: defaultTarget(args.maxMemory, threads),
      method,
      zoEps: args.zoEps,
      onEvent,
      saveState: save,
      shouldStop: c.shouldStop,
      spill,
    });
  } finally {
    c.setTraining(false);
    metrics.close();
    try {
      spill?.close();
    } catch (err) {
      // a failed run's own error is the one to report (the next run removes a spill left behind)
      if (result === undefined) log(`warning: ${(err as Error).message}`);
      else spillError = err;
    }
  }
  if (spillError !== undefined) throw spillError;
  bar?.finish();
  const history = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").filter((l) => l)
    .map((l) => JSON.parse(l));
  const losses = history.filter((h) => h.loss !== undefined).map((h) => h.loss as number);
  const vals = history.filter((h) => h.val_loss !== undefined).map((h) => ({
    step: h.step as number,
    loss: h.val_loss as number,
  }));
  await writeFileAtomic(
    `${out}/loss.svg`,
    new TextEncoder().encode(lossCurveSvg(losses, vals, { title: `${out}: loss` })),
  );
  // means over the whole run's steps (a resumed run's too, from metrics.jsonl), in windows that do not
  // overlap: its first steps and its last
  const rows = history.filter((h) => h.loss !== undefined) as { step: number; loss: number }[];
  const n = rows.length, w = Math.min(10, Math.floor(n / 2));
  const mean = (from: number, to: number) =>
    `${(rows.slice(from, to).reduce((a, r) => a + r.loss, 0) / (to - from)).toFixed(4)} (steps ${
      rows[from].step
    }–${rows[to - 1].step})`;
  const trained = n === 0
    ? ""
    : n === 1
    ? `; loss ${rows[0].loss.toFixed(4)}`
    : n < 4
    ? `; mean loss ${mean(0, n)}`
    : `; mean loss ${mean(0, w)} → ${mean(n - w, n)}`;
  console.error(
    (result.stopped
      ? `stopped at step ${result.steps} of ${steps} (training state saved; --resume continues)`
      : `done: ${result.steps} step${result.steps === 1 ? "" : "s"}`) +
      trained +
      (result.valLosses.length ? `; validation ${result.valLosses.at(-1)!.loss.toFixed(4)}` : "") +
      `\nadapter: ${out}/${ADAPTER_WEIGHTS}  metrics: ${out}/metrics.jsonl  curve: ${out}/loss.svg`,
  );
  if (result.stopped) return c.exitCode() || 130;
  if (demo) {
    log(
      `\nafter training, the model answers "${DEMO.prompt}" with:\n  ${await generateInChild(
        model,
        out,
        DEMO.prompt,
        ["--weights", weights],
      )}\n`,
    );
    log(
      `next: deno task generate --model ${model} --adapter ${out} --prompt "${DEMO.prompt}" --temperature 0\n` +
        `      deno task export --adapter ${out} --format mlx   (or --format gguf --out lumen-lora.gguf)`,
    );
  }
  console.error(peakMemoryLine());
  return 0;
}

/** Flags that were given but have no effect in this run, as warnings. */
function ignoredFlags(
  given: Set<string>,
  args: TrainArgs,
  method: Method,
  optimizer: string,
  layoutFixed: boolean,
  resuming: boolean,
): string[] {
  const rules: [string, boolean, string][] = [
    ["adapter", resuming, "the resumed training state holds the adapter's parameters"],
    ["optimizer", method === "mezo", "MeZO always updates with SGD"],
    ["beta1", optimizer !== "adamw", "β1 is AdamW's; this run uses SGD"],
    ["beta2", optimizer !== "adamw", "β2 is AdamW's; this run uses SGD"],
    ["zoEps", method !== "mezo", "ε is MeZO's perturbation; --method is not mezo"],
    ["valEvery", args.val === undefined, "there is no --val set"],
    ...LORA_OPTIONS.map((k): [string, boolean, string] => [
      k,
      layoutFixed,
      "the adapter layout comes from --adapter or the saved training state",
    ]),
  ];
  return rules.filter(([key, ignored]) => ignored && given.has(key)).map(([key, , why]) =>
    ignoredFlag(key, why)
  )
    .concat(method === "mezo" ? mezoIgnored(given) : []);
}

/** A recorded flag's value in the form it is compared: targets as resolved module names, alpha resolved. */
function normalized(key: typeof RECORDED_FLAGS[number], args: TrainArgs): unknown {
  if (key === "targets") return resolveTargets(args.targets);
  if (key === "alpha") return args.alpha ?? 2 * args.rank;
  return (args as Record<string, unknown>)[key] ?? null;
}

/**
 * Drops metric rows after `step` (written by a run that ended after its last save), so a resumed
 * run's curve has each step once.
 */
async function keepMetricsUpTo(path: string, step: number): Promise<void> {
  if (!await exists(path)) return;
  const lines = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim());
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l).step ?? 0) <= step;
    } catch {
      return false; // a line cut by a kill
    }
  });
  if (kept.length !== lines.length) {
    await writeFileAtomic(path, new TextEncoder().encode(kept.map((l) => l + "\n").join("")));
  }
}
