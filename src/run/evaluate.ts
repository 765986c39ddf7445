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
import { Engine } from "../engine/engine.ts";
import { type OpenedAdapter, readAdapterInto } from "../engine/adapter.ts";
import { loraLayout } from "../engine/lora.ts";
import { sequenceLoss } from "../engine/sequence_loss.ts";
import { checkPack, type Pack } from "../model/pack.ts";
import type { KernelLocation, Variant } from "../runtime/kernels.ts";
import { longestWithin, type Sequence } from "../data/sequence.ts";

/** Options for {@linkcode evaluate}. */
export interface EvaluateOptions {
  /** Apply this adapter. */
  adapter?: OpenedAdapter;
  /** Longest sequence; longer ones are cut to it (default: the longest given). */
  seqLen?: number;
  /** Arena budget in bytes. */
  budget?: number;
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
  /** Called after each sequence. */
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
}

/**
 * Scores every predicted position of every sequence (token-weighted over the whole set), with the model's
 * weights streamed one layer at a time.
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
  const e = await Engine.create(pack, {
    mode: "eval",
    seqLen,
    lora,
    budget: options.budget,
    variant: options.variant,
    resident: options.resident,
    threads: options.threads,
    kernels: options.kernels,
  });
  try {
    if (options.adapter) await readAdapterInto(options.adapter, lora!, e.arena.f32("lora.params"));
    let sum = 0, tokens = 0;
    for (let i = 0; i < sequences.length; i++) {
      const ids = sequences[i].ids;
      const T = Math.min(ids.length, seqLen);
      if (T >= 2) {
        // the loss's pass over the vocabulary keeps the next sequence's embedding rows (tied head)
        const after = sequences[i + 1]?.ids;
        if (after) e.weights.expectRows(after, Math.min(after.length, seqLen), false);
        const r = await sequenceLoss(e, ids, trainedOnly ? sequences[i].targets : undefined, T);
        sum += r.sum;
        tokens += r.count;
      }
      options.onProgress?.(i + 1, sequences.length, tokens ? sum / tokens : NaN);
    }
    if (tokens === 0) {
      throw new Error(
        trainedOnly
          ? "nothing to evaluate: no sequence has a trained target"
          : "nothing to evaluate: every sequence is shorter than 2 tokens",
      );
    }
    const nll = sum / tokens;
    return { nll, perplexity: Math.exp(nll), tokens, sequences: sequences.length };
  } finally {
    e.close();
  }
}
