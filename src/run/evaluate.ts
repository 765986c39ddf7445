/**
 * Evaluation: mean negative log-likelihood per predicted token over a dataset, streaming the weights.
 *
 * @module
 */
import {
  checkBudget,
  checkOptions,
  checkPositions,
  checkSequences,
  EVALUATE_OPTIONS,
} from "./run_options.ts";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { type OpenedAdapter, readAdapterInto } from "../engine/adapter.ts";
import { loraLayout } from "../engine/lora.ts";
import { planRegions } from "../engine/plan.ts";
import { batchLoss, SequenceBatch } from "../engine/sequence_loss.ts";
import { planMemory } from "../runtime/arena.ts";
import { checkPack, type Pack } from "../model/pack.ts";
import type { KernelLocation, Variant } from "../runtime/kernels.ts";
import { longestWithin, type Sequence } from "../data/sequence.ts";

/** Options for {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** Apply this adapter. */
  adapter?: OpenedAdapter;
  /** Longest sequence; longer ones are cut to it (default: the longest given). */
  seqLen?: number;
  /** Arena budget in bytes (a smaller batch is chosen to fit it). */
  budget?: number;
  /**
   * Sequences scored in one pass over the weights, each reading every layer and vocabulary chunk once for
   * all of them (the results are bitwise the same for any batch). Default: as many as {@linkcode
   * BATCH_BYTES} more memory holds, at most {@linkcode MOST_BATCH}; with a `budget`, at most what fits it.
   */
  batch?: number;
  /** Kernel variant. */
  variant?: Variant;
  /** Keep all layers resident instead of streaming. */
  resident?: boolean;
  /** Kernel threads (default 1); results are bitwise the same for any count. */
  threads?: number;
  /** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
  kernels?: KernelLocation;
  /**
   * Which positions are scored: `"all"` (default) every predicted position 1…T−1, the perplexity of the whole
   * text; `"trained"` only each sequence's trained targets (for chat data the assistant's replies), what
   * training's loss and its validation loss score.
   */
  score?: "all" | "trained";
  /** Called after each sequence (a batch's at once, when the batch is done). */
  onProgress?: (done: number, total: number, meanNll: number) => void;
}

/** What {@linkcode evaluate} measured. */
export interface EvaluateResult {
  /** Mean negative log-likelihood per predicted token (nats). */
  nll: number;
  /** exp(nll). */
  perplexity: number;
  /** Predicted tokens scored (positions 1 … T−1 of every sequence, or its trained targets). */
  tokens: number;
  sequences: number;
  /** Sequences scored per pass over the weights. */
  batch: number;
}

/** Memory a default batch may add to one sequence's plan: the residual streams of its other sequences. */
export const BATCH_BYTES = 16 * 2 ** 20;
/** The largest default batch. */
export const MOST_BATCH = 16;

/**
 * Scores every predicted position of every sequence (token-weighted over the whole set), with the model's
 * weights streamed one layer at a time, once per batch of sequences.
 */
export async function evaluate(
  pack: Pack,
  sequences: readonly Sequence[],
  options: EvaluateOptions = {},
): Promise<EvaluateResult> {
  checkPack(pack, "evaluate");
  checkOptions("evaluate options", options, EVALUATE_OPTIONS);
  if (options.seqLen !== undefined && options.seqLen < 2) {
    throw new RangeError(`evaluate options: seqLen must be at least 2, got ${options.seqLen}`);
  }
  checkBudget("evaluate options", options.budget);
  const trainedOnly = options.score === "trained";
  checkSequences(
    "evaluation",
    sequences,
    options.seqLen ?? Infinity,
    trainedOnly ? "any" : "none",
    pack.config.vocabSize,
  );
  if (sequences.length === 0) throw new Error("nothing to evaluate: the dataset is empty");
  // memory for the longest sequence, cut to seqLen (not for seqLen itself)
  const seqLen = longestWithin(options.seqLen ?? Infinity, sequences);
  checkPositions("evaluate", "the longest sequence", seqLen, pack.config.maxPositionEmbeddings);
  const lora = options.adapter ? loraLayout(pack.config, options.adapter.config) : undefined;
  const engineOptions: EngineOptions = {
    mode: "eval",
    seqLen,
    lora,
    budget: options.budget,
    variant: options.variant,
    resident: options.resident,
    threads: options.threads,
    kernels: options.kernels,
  };
  if (options.batch !== undefined && !(Number.isInteger(options.batch) && options.batch >= 1)) {
    throw new RangeError(`evaluate options: batch must be a whole number ≥ 1, got ${options.batch}`);
  }
  const batch = options.batch !== undefined
    ? Math.min(options.batch, sequences.length)
    : await defaultBatch(pack, engineOptions, sequences.length);
  const e = await Engine.create(pack, { ...engineOptions, batch });
  try {
    if (options.adapter) await readAdapterInto(options.adapter, lora!, e.arena.f32("lora.params"));
    // the batch being scored, and the next one, whose embedding rows the loss's pass over the vocabulary
    // keeps (tied head) for its gather
    let current = new SequenceBatch(e), ahead = new SequenceBatch(e);
    let sum = 0, tokens = 0, from = 0;
    let to = fill(current, sequences, from, seqLen, trainedOnly);
    while (from < sequences.length) {
      const next = fill(ahead, sequences, to, seqLen, trainedOnly);
      if (ahead.n) e.weights.expectRows(ahead.tokens, ahead.count, false);
      if (current.n) await batchLoss(e, current);
      for (let i = from, s = 0; i < to; i++) {
        if (Math.min(sequences[i].ids.length, seqLen) >= 2) {
          sum += current.sums[s];
          tokens += current.counts[s++];
        }
        options.onProgress?.(i + 1, sequences.length, tokens ? sum / tokens : NaN);
      }
      [current, ahead, from, to] = [ahead, current, to, next];
    }
    if (tokens === 0) {
      throw new Error(
        trainedOnly
          ? "nothing to evaluate: no sequence has a trained target"
          : "nothing to evaluate: every sequence is shorter than 2 tokens",
      );
    }
    const nll = sum / tokens;
    return { nll, perplexity: Math.exp(nll), tokens, sequences: sequences.length, batch };
  } finally {
    e.close();
  }
}

/** Fills `batch` with sequences from index `from` on (cut to `seqLen`; shorter than 2 skipped); the next index. */
function fill(
  batch: SequenceBatch,
  sequences: readonly Sequence[],
  from: number,
  seqLen: number,
  trainedOnly: boolean,
): number {
  batch.clear();
  let i = from;
  for (; i < sequences.length && !batch.full; i++) {
    const T = Math.min(sequences[i].ids.length, seqLen);
    if (T >= 2) batch.add(sequences[i].ids, trainedOnly ? sequences[i].targets : undefined, T);
  }
  return i;
}

/**
 * The default batch: up to {@linkcode MOST_BATCH} of the `count` sequences, as many as
 * {@linkcode BATCH_BYTES} more than one sequence's plan holds, and no more than the budget's plan fits.
 */
async function defaultBatch(pack: Pack, options: EngineOptions, count: number): Promise<number> {
  const planned = await Engine.planOptions(pack, options);
  const bytes = (batch: number) => planMemory(planRegions(pack.config, { ...planned, batch })).bytes;
  const one = bytes(1), each = bytes(2) - one;
  let batch = Math.max(1, Math.min(count, MOST_BATCH, 1 + Math.floor(BATCH_BYTES / each)));
  while (batch > 1 && options.budget !== undefined && bytes(batch) > options.budget) batch--;
  return batch;
}
