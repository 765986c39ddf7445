/**
 * `train`: fine-tunes a LoRA adapter with exact MeSP gradients. With no arguments it runs the demo: a tiny
 * Qwen2 model (made once, cached) with the real Qwen tokenizer, fine-tuned on the Lumen dataset shipped in
 * `data/lumen/`, with a generation before and after.
 *
 * A run directory holds the PEFT adapter, `checkpoint.safetensors` (every `--save-every` steps and at the
 * end, written atomically), `metrics.jsonl` and `loss.svg`.
 *
 * @module
 */
import { type CommandSpec, parseArgs, UsageError, usageLine } from "./args.ts";
import { Progress } from "./progress.ts";
import {
  arenaBudget,
  cacheDir,
  MODEL_FLAGS,
  openAdapterDir,
  peakMemoryLine,
  prepareRun,
  stderrLog,
  threadsOf,
  variantOf,
} from "./common.ts";
import { TRAIN_FLAGS } from "./train_flags.ts";
import { CLI_PERMISSIONS, denoCommand } from "./prepare.ts";
import { writeFileAtomic } from "../io/deno_files.ts";
import { ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapterConfigJson, writeLoraTensors } from "../engine/adapter.ts";
import { loraLayout, resolveTargets } from "../engine/lora.ts";
import { CHECKPOINT_FILE, decodeCheckpoint, writeCheckpoint } from "../run/checkpoint.ts";
import { lossCurveSvg } from "../run/loss_svg.ts";
import { train, type TrainEvent, type TrainState } from "../run/train.ts";
import type { Method } from "../engine/plan.ts";
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
    epochs: { type: "number", min: 0, description: "epochs over the data instead of --steps" },
    ...TRAIN_FLAGS,
    lr: {
      type: "number",
      min: 0,
      description: "peak learning rate (default 2e-4 AdamW, 1e-4 SGD, 5e-5 MeZO)",
    },
    zoEps: { type: "number", default: 1e-3, greaterThan: 0, description: "MeZO perturbation scale ε" },
    weightDecay: { type: "number", default: 0, min: 0, description: "weight decay" },
    beta1: { type: "number", default: 0.9, min: 0, lessThan: 1, description: "AdamW β1" },
    beta2: { type: "number", default: 0.999, min: 0, lessThan: 1, description: "AdamW β2" },
    schedule: {
      type: "string",
      choices: ["cosine", "constant"],
      default: "cosine",
      description: "learning-rate schedule",
    },
    warmup: { type: "integer", default: 0, min: 0, description: "linear warmup steps" },
    seed: { type: "integer", default: 0, description: "seed of the LoRA initialisation and data order" },
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
      description: "checkpoint every N steps (0: only at the end)",
    },
    resume: { type: "boolean", description: "continue from the run directory's checkpoint" },
    adapter: {
      type: "string",
      value: "DIR",
      description: "start from this PEFT adapter instead of a fresh one",
    },
    force: { type: "boolean", description: "start over in a run directory that already holds a run" },
    json: { type: "boolean", description: "print step lines as JSON instead of a progress bar" },
  },
  epilog: "examples:\n  deno task train\n" +
    "  deno task train --model models/qwen2.5-0.5b --data train.jsonl --val valid.jsonl --steps 200 --out runs/mine",
} as const satisfies CommandSpec;

const DEMO = {
  data: new URL("../../data/lumen/train.jsonl", import.meta.url).pathname,
  val: new URL("../../data/lumen/valid.jsonl", import.meta.url).pathname,
  out: "runs/lumen",
  prompt: "How long does the Lumen battery last?",
};

/** The demo's model: the `tiny` preset, made once into the cache. */
async function demoModel(cache: string, log: (m: string) => void): Promise<string> {
  const dir = `${cache}/models/tiny`;
  try {
    await Deno.stat(`${dir}/config.json`);
  } catch {
    log(`making the demo model (tiny Qwen2, real Qwen tokenizer) in ${dir}`);
    // in a child process, so its buffers never count toward this process's peak memory
    const main = new URL("./main.ts", import.meta.url).href;
    const args = ["run", ...CLI_PERMISSIONS, main, "make-model", "--preset", "tiny", "--out", dir, "--force"];
    const out = await new Deno.Command(denoCommand(), { args, stdout: "inherit", stderr: "inherit" })
      .output();
    if (!out.success) throw new Error("could not make the demo model");
  }
  return dir;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Generates in a child process, so this process never holds a tokenizer (~180 MB). */
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
  const out = await new Deno.Command(denoCommand(), { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    return `(generation failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)})`;
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** Runs `train`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const threads = threadsOf(args.threads);
  const log = stderrLog();
  const demo = args.model === undefined && args.data === undefined;
  if (!demo && (args.model === undefined || args.data === undefined)) {
    throw new UsageError(`give both --model and --data (or neither, for the demo)\n${usageLine(SPEC)}`);
  }
  const cache = cacheDir(args.cacheDir);
  const model = demo ? await demoModel(cache, log) : args.model!;
  const dataPath = demo ? DEMO.data : args.data!;
  const valPath = demo ? DEMO.val : args.val;
  const out = args.out ?? (demo ? DEMO.out : `runs/${dataPath.split("/").at(-1)!.replace(/\.jsonl?$/, "")}`);
  const method = args.method as Method;
  // MeZO's update is SGD on its estimate (the paper's); the exact methods take --optimizer
  const optimizer = method === "mezo" ? "sgd" : args.optimizer as "adamw" | "sgd";
  const lr = args.lr ?? (method === "mezo" ? 5e-5 : demo ? 2e-3 : optimizer === "adamw" ? 2e-4 : 1e-4);
  const steps = args.steps ?? (demo ? 150 : undefined);

  // everything that can be wrong is checked before the first step; nothing existing is overwritten
  const cfg = await readModelConfig(model);
  if (args.seqLen > cfg.maxPositionEmbeddings) {
    throw new Error(
      `--seq-len ${args.seqLen} is longer than the model allows (${cfg.maxPositionEmbeddings} positions)`,
    );
  }
  resolveTargets(args.targets);
  const ckptPath = `${out}/${CHECKPOINT_FILE}`;
  const holdsRun = await exists(ckptPath) || await exists(`${out}/${ADAPTER_WEIGHTS}`);
  if (holdsRun && !args.resume && !args.force) {
    throw new Error(
      `${out} already holds a run: use --resume to continue it, --force to start over, or another --out`,
    );
  }
  let resume: TrainState | undefined;
  if (args.resume) {
    if (!await exists(ckptPath)) throw new Error(`--resume: ${ckptPath} not found`);
    resume = (await decodeCheckpoint(await Deno.readFile(ckptPath), ckptPath)).state;
    log(`resuming ${out} at step ${resume.step}`);
  }
  const adapter = args.adapter ? await openAdapterDir(args.adapter) : undefined;
  const layout = loraLayout(
    cfg,
    resume?.lora ?? adapter?.config ??
      { rank: args.rank, alpha: args.alpha, rslora: args.rslora, targets: args.targets },
  );
  const { pack, sets: [data, val] } = await prepareRun(
    { ...args, model },
    [dataPath, valPath],
    args.seqLen,
    log,
  );
  await Deno.mkdir(out, { recursive: true });

  if (demo) {
    log(
      `\nbefore training, the model answers "${DEMO.prompt}" with:\n  ${await generateInChild(
        model,
        undefined,
        DEMO.prompt,
        ["--weights", args.weights],
      )}\n`,
    );
  }

  const runMeta = {
    model,
    data: dataPath,
    val: valPath,
    seqLen: args.seqLen,
    optimizer,
    lr,
    weights: args.weights,
  };
  const metrics = await Deno.open(`${out}/metrics.jsonl`, { create: true, append: true, write: true });
  const writeMetric = (o: Record<string, unknown>) =>
    metrics.writeSync(new TextEncoder().encode(JSON.stringify(o) + "\n"));
  let stop = false;
  const onSignal = () => {
    if (stop) Deno.exit(130);
    stop = true;
    log("\nstopping after this step (saving a checkpoint); Ctrl-C again to quit now");
  };
  Deno.addSignalListener("SIGINT", onSignal);
  const bar = args.json
    ? undefined
    : new Progress("train", { total: steps ?? Math.ceil(data.length / args.gradAccum), unit: "step" });
  let sumLoss = 0, nLoss = 0;
  const onEvent = (ev: TrainEvent) => {
    if (ev.type === "plan") {
      log(`memory plan: arena ${formatMB(ev.bytes)}`);
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
        loss: (sumLoss / nLoss).toFixed(4),
        "tok/s": ev.tokensPerSecond.toFixed(0),
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
  const save = async (state: TrainState) => {
    await writeFileAtomic(ckptPath, (sink) => writeCheckpoint(sink, state, runMeta));
    await writeFileAtomic(
      `${out}/${ADAPTER_WEIGHTS}`,
      (sink) => writeLoraTensors(sink, layout, state.params),
    );
    await writeFileAtomic(
      `${out}/${ADAPTER_CONFIG}`,
      new TextEncoder().encode(adapterConfigJson(layout, model)),
    );
  };
  let result;
  try {
    result = await train(pack, data, val, {
      seqLen: args.seqLen,
      steps,
      epochs: args.epochs,
      lora: { rank: args.rank, alpha: args.alpha, rslora: args.rslora, targets: args.targets },
      seed: args.seed,
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
      budget: arenaBudget(args.maxMemory, threads),
      variant: variantOf(args.variant),
      threads,
      resident: args.resident,
      ckptDtype: args.ckpt as "f32" | "bf16",
      vocabChunk: args.vocabChunk,
      ckptEvery: args.ckptEvery,
      method: args.method as Method,
      zoEps: args.zoEps,
      onEvent,
      saveCheckpoint: save,
      shouldStop: () => stop,
    });
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    metrics.close();
  }
  bar?.finish();
  const history = (await Deno.readTextFile(`${out}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  const losses = history.filter((h) => h.loss !== undefined).map((h) => h.loss as number);
  const vals = history.filter((h) => h.val_loss !== undefined).map((h) => ({
    step: h.step as number,
    loss: h.val_loss as number,
  }));
  await writeFileAtomic(
    `${out}/loss.svg`,
    new TextEncoder().encode(lossCurveSvg(losses, vals, { title: `${out}: loss` })),
  );
  const first = result.losses.slice(0, 10), last = result.losses.slice(-10);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  console.error(
    `${result.stopped ? "stopped" : "done"}: ${result.steps} steps; loss ${
      mean(first).toFixed(4)
    } (first 10) → ${mean(last).toFixed(4)} (last 10)` +
      (result.valLosses.length ? `; validation ${result.valLosses.at(-1)!.loss.toFixed(4)}` : "") +
      `\nadapter: ${out}/${ADAPTER_WEIGHTS}  metrics: ${out}/metrics.jsonl  curve: ${out}/loss.svg`,
  );
  if (demo) {
    log(
      `\nafter training, the model answers "${DEMO.prompt}" with:\n  ${await generateInChild(
        model,
        out,
        DEMO.prompt,
        ["--weights", args.weights],
      )}\n`,
    );
  }
  console.error(peakMemoryLine());
  return 0;
}
