/**
 * `grad`: the loss and every LoRA gradient of the first sequence of a dataset, written as safetensors with
 * PEFT tensor names (the gradient of a parameter under that parameter's name) plus `loss`.
 *
 * @module
 */
import { LORA_OPTIONS, MAX_SEED } from "../run/run_options.ts";
import { type CommandSpec, givenFlags, ignoredFlag, parseArgs } from "./args.ts";
import { bf16ScalesOf, fitPositions, refuseOverBudget } from "./preflight.ts";
import { readModelConfig } from "../model/pack_files.ts";
import { loraLayout } from "../engine/lora.ts";
import {
  arenaBudget,
  MODEL_FLAGS,
  openAdapterFor,
  prepareRun,
  stderrLog,
  threadsOf,
  variantOf,
  warnTrainingFields,
} from "./common.ts";
import { chooseWeights } from "./weights.ts";
import { defaultTarget, TRAIN_FLAGS } from "./train_flags.ts";
import { checkInputFile, claimOutputFile, refuseInsideModel } from "./paths.ts";
import { writeFileAtomic } from "../io/deno_files.ts";
import { writeLoraTensors } from "../engine/adapter.ts";
import { computeGradients } from "../run/grad.ts";
import type { Method } from "../engine/plan.ts";
import { assertFinite } from "../model/finite.ts";

/** One line for the command list. */
export const description = "loss and every LoRA gradient of the first sequence, as safetensors (PEFT names)";

const { method, seqLen, rank, alpha, rslora, targets, ckpt, ckptEvery, savedInputs } = TRAIN_FLAGS;

/** The command's flags. */
export const SPEC = {
  name: "grad",
  description,
  flags: {
    ...MODEL_FLAGS,
    data: {
      type: "string",
      value: "FILE",
      required: true,
      description: "JSONL dataset; its first sequence is used",
    },
    out: { type: "string", value: "FILE", required: true, description: "output .safetensors" },
    adapter: {
      type: "string",
      value: "DIR",
      description: "differentiate at this PEFT adapter (default: fresh init)",
    },
    method,
    seqLen,
    rank,
    alpha,
    rslora,
    targets,
    ckpt,
    ckptEvery,
    savedInputs,
    seed: {
      type: "integer",
      default: 0,
      min: 0,
      max: MAX_SEED,
      description: "seed of the fresh initialisation",
    },
    force: { type: "boolean", description: "replace --out if it exists" },
  },
  epilog:
    "example: deno task grad --model models/tiny --data data/lumen/train.jsonl --adapter runs/lumen --out grads.safetensors",
} as const satisfies CommandSpec;

/** Runs `grad`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  await refuseInsideModel("--out", args.out, args.model, "file");
  await claimOutputFile("--out", args.out, args.force);
  const threads = threadsOf(args.threads);
  const log = stderrLog();
  const cfg = await readModelConfig(args.model);
  await checkInputFile("--data", args.data);
  const given = givenFlags(argv, SPEC);
  args.seqLen = fitPositions("--seq-len", args.seqLen, given.has("seqLen"), cfg);
  const adapter = args.adapter ? await openAdapterFor(args.adapter, cfg) : undefined;
  if (args.adapter) await warnTrainingFields(args.adapter, log);
  for (const key of adapter ? LORA_OPTIONS : []) {
    if (given.has(key)) {
      log(`warning: ${ignoredFlag(key, "the adapter layout comes from --adapter")}`);
    }
  }
  const lora = { rank: args.rank, alpha: args.alpha, rslora: args.rslora, targets: args.targets };
  const choice = chooseWeights(cfg, args.weights, "q4");
  args.weights = choice.format;
  await refuseOverBudget(
    cfg,
    {
      mode: "train",
      method: args.method as Method,
      seqLen: args.seqLen,
      format: args.weights,
      bf16Scales: bf16ScalesOf(cfg, args.weights),
      lora: loraLayout(cfg, adapter?.config ?? lora),
      gradBuffer: true,
      savedInputDtype: args.ckpt as "f32" | "bf16",
      savedInputEvery: args.ckptEvery,
      savedInputs: args.savedInputs,
    },
    args.maxMemory,
    threads,
    variantOf(args.variant),
  );
  const { pack, sets: [[first]] } = await prepareRun(args, [args.data], args.seqLen, log, choice);
  const r = await computeGradients(pack, first, {
    method: args.method as Method,
    adapter,
    lora,
    seed: args.seed,
    seqLen: args.seqLen,
    savedInputDtype: args.ckpt as "f32" | "bf16",
    savedInputEvery: args.ckptEvery,
    savedInputs: args.savedInputs,
    budget: arenaBudget(args.maxMemory, threads),
    target: defaultTarget(args.maxMemory, threads),
    variant: variantOf(args.variant),
    threads,
  });
  assertFinite([r.loss], "grad: the loss");
  assertFinite(r.grads, "grad: the LoRA gradients");
  await writeFileAtomic(
    args.out,
    (sink) => writeLoraTensors(sink, r.layout, r.grads, { loss: new Float32Array([r.loss]) }),
  );
  console.log(
    `loss ${r.loss.toFixed(6)} over ${r.tokens} tokens; ${
      r.layout.pairs.flat().length * 2
    } gradient tensors → ${args.out}`,
  );
  return 0;
}
