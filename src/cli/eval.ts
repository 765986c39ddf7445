/**
 * `eval`: mean negative log-likelihood per predicted token of a JSONL dataset, and perplexity.
 *
 * @module
 */
import { type CommandSpec, givenFlags, parseArgs, usageLine } from "./args.ts";
import { checkInputFile } from "./paths.ts";
import { bf16ScalesOf, fitPositions, refuseOverBudget } from "./preflight.ts";
import { readModelConfig } from "../model/pack_files.ts";
import { loraLayout } from "../engine/lora.ts";
import { Progress } from "./progress.ts";
import {
  adapterRun,
  adapterWeightsDefault,
  arenaBudget,
  MODEL_FLAGS,
  MODEL_OR_BASE_FLAG,
  modelOrBase,
  openAdapterFor,
  peakMB,
  peakMemoryLine,
  prepareRun,
  stderrLog,
  threadsOf,
  variantOf,
  warnOtherBase,
} from "./common.ts";
import { evaluate } from "../run/evaluate.ts";
import { longestWithin } from "../data/sequence.ts";
import { chooseWeights } from "./weights.ts";

/** One line for the command list. */
export const description = "mean NLL per predicted token and perplexity of a JSONL dataset";

/** The command's flags. */
export const SPEC = {
  name: "eval",
  description,
  flags: {
    ...MODEL_FLAGS,
    model: MODEL_OR_BASE_FLAG,
    data: {
      type: "string",
      value: "FILE",
      required: true,
      description: "JSONL dataset (text, prompt/completion, messages or input_ids)",
    },
    adapter: { type: "string", value: "DIR", description: "apply a PEFT LoRA adapter" },
    seqLen: {
      type: "integer",
      default: 1024,
      min: 2,
      description: "cut sequences to this many tokens (with an --adapter train wrote: its run's)",
    },
    score: {
      type: "string",
      choices: ["all", "trained"],
      default: "all",
      description: "score every predicted token, or only the trained targets (chat: the replies; " +
        "what training's validation loss is)",
    },
    batch: {
      type: "integer",
      min: 1,
      description: "sequences per pass over the weights (default: up to 16, as many as 16 MiB more holds " +
        "and --max-memory fits); the same result for any",
    },
    json: { type: "boolean", description: "print one JSON object instead of text" },
  },
  epilog:
    "example: deno task eval --model ~/.cache/mesp/models/demo-2 --data data/lumen/valid.jsonl --adapter runs/lumen",
} as const satisfies CommandSpec;

/** Runs `eval`. */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, SPEC);
  const log = stderrLog(parsed.json);
  const args = { ...parsed, model: await modelOrBase(parsed, usageLine(SPEC), log) };
  const threads = threadsOf(args.threads);
  const cfg = await readModelConfig(args.model);
  await checkInputFile("--data", args.data);
  const seqLenGiven = givenFlags(argv, SPEC).has("seqLen");
  // an adapter's run cut its sequences to its --seq-len: scored alike, its losses are comparable
  const run = await adapterRun(args.adapter, log);
  const recordedSeqLen = seqLenGiven ? undefined : run?.config.seqLen;
  if (typeof recordedSeqLen === "number") {
    args.seqLen = recordedSeqLen;
    log(`--seq-len ${recordedSeqLen}: the adapter's training run's (--seq-len to choose another)`);
  }
  args.seqLen = fitPositions("--seq-len", args.seqLen, seqLenGiven, cfg);
  const adapter = args.adapter ? await openAdapterFor(args.adapter, cfg) : undefined;
  const choice = chooseWeights(cfg, args.weights, adapterWeightsDefault(run)),
    weights = choice.format;
  // planned for the longest sequence once cut to --seq-len (see train's preflight)
  const preflight = (seqLen: number, longest?: { seqLen: number }) =>
    refuseOverBudget(
      cfg,
      {
        mode: "eval",
        seqLen,
        format: weights,
        bf16Scales: bf16ScalesOf(cfg, weights),
        lora: adapter ? loraLayout(cfg, adapter.config) : undefined,
      },
      args.maxMemory,
      threads,
      variantOf(args.variant),
      longest,
    );
  await preflight(2);
  // every predicted position is scored: an example with no trained target counts too
  const { pack, sets: [seqs] } = await prepareRun(
    args,
    [args.data],
    args.seqLen,
    log,
    choice,
    args.score === "all",
  );
  warnOtherBase(run, pack.header.fingerprint, args.model, log);
  await preflight(longestWithin(args.seqLen, seqs), { seqLen: args.seqLen });
  const bar = args.json ? undefined : new Progress("eval", { total: seqs.length, unit: "seq" });
  const r = await evaluate(pack, seqs, {
    adapter,
    seqLen: args.seqLen,
    score: args.score as "all" | "trained",
    budget: arenaBudget(args.maxMemory, threads),
    variant: variantOf(args.variant),
    threads,
    batch: args.batch,
    onProgress: (done, _total, nll) => bar?.update(done, { nll: nll.toFixed(4) }),
  });
  bar?.finish();
  if (!Number.isFinite(r.nll)) {
    throw new Error(`the mean NLL is ${r.nll}: check the model's and adapter's weights`);
  }
  if (args.json) {
    console.log(
      JSON.stringify({
        nll: r.nll,
        perplexity: r.perplexity,
        tokens: r.tokens,
        score: args.score,
        sequences: r.sequences,
        batch: r.batch,
        weights,
        peak_mb: peakMB(),
      }),
    );
  } else {
    console.log(
      `nll ${r.nll.toFixed(4)}  perplexity ${r.perplexity.toFixed(3)}  tokens ${r.tokens}${
        args.score === "trained" ? " (trained targets)" : ""
      }  sequences ${r.sequences}`,
    );
    console.log(peakMemoryLine());
  }
  return 0;
}
