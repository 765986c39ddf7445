/**
 * The loss of one sequence by a forward pass only: the one implementation evaluation, validation and MeZO
 * share (training's loss comes with its gradient, in `step.ts`); and of a batch of sequences in one pass
 * over the weights (evaluation), each sequence's bitwise the same as alone.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { forward, forwardBatch } from "./forward.ts";
import { lossForward, lossForwardBatch, lossSum, setTargets } from "./loss.ts";

/**
 * Σ and count of −log p(target) over the trained positions of `ids[0..T)` (`targets[t]` set; every position
 * 1…T−1 when omitted), summed in f64. A sequence with no trained position gives 0 of 0 and costs only the
 * forward pass.
 */
export async function sequenceLoss(
  e: Engine,
  ids: ArrayLike<number>,
  targets: ArrayLike<number> | undefined,
  T: number,
): Promise<{ sum: number; count: number }> {
  await forward(e, ids, T);
  if (setTargets(e, ids, targets, T) === 0) return { sum: 0, count: 0 };
  await lossForward(e, T);
  return lossSum(e, T);
}

/** The mean loss over the trained positions of `ids[0..T)`; an error when none is trained. */
export async function meanSequenceLoss(
  e: Engine,
  ids: ArrayLike<number>,
  targets: ArrayLike<number> | undefined,
  T: number,
): Promise<{ loss: number; tokens: number }> {
  const { sum, count } = await sequenceLoss(e, ids, targets, T);
  if (count === 0) throw new Error("the sequence has no trained tokens");
  return { loss: sum / count, tokens: count };
}

/**
 * Up to `e.D.B` sequences gathered for one pass over the weights ({@linkcode batchLoss}); its buffers are
 * made once, for the engine's batch, and refilled with {@linkcode SequenceBatch.clear} and
 * {@linkcode SequenceBatch.add}.
 */
export class SequenceBatch {
  /** Sequences held. */
  n = 0;
  /** Sequence s's ids, trained targets (undefined: every position) and tokens `[0, lengths[s])`. */
  readonly ids: ArrayLike<number>[];
  readonly targets: (ArrayLike<number> | undefined)[];
  readonly lengths: Int32Array;
  /** Every sequence's ids one after the other (`[0, count)`): the embedding rows to gather. */
  readonly tokens: Int32Array;
  count = 0;
  /** Σ −log p(target) and trained positions of sequence s, once {@linkcode batchLoss} has run. */
  readonly sums: Float64Array;
  readonly counts: Int32Array;
  readonly #T: number;

  constructor(e: Engine) {
    const { B, T } = e.D;
    this.ids = new Array(B);
    this.targets = new Array(B);
    this.lengths = new Int32Array(B);
    this.tokens = new Int32Array(B * T);
    this.sums = new Float64Array(B);
    this.counts = new Int32Array(B);
    this.#T = T;
  }

  /** Whether another sequence fits. */
  get full(): boolean {
    return this.n === this.lengths.length;
  }

  clear(): void {
    this.n = 0;
    this.count = 0;
  }

  /** Adds `ids[0..T)` (2 ≤ T ≤ the plan's length), scored where `targets` is set (every position: undefined). */
  add(ids: ArrayLike<number>, targets: ArrayLike<number> | undefined, T: number): void {
    if (this.full) throw new Error(`the batch holds ${this.lengths.length} sequences`);
    if (!(T >= 2 && T <= this.#T)) throw new Error(`a batch sequence has 2…${this.#T} tokens, got ${T}`);
    const s = this.n++;
    this.ids[s] = ids;
    this.targets[s] = targets;
    this.lengths[s] = T;
    for (let t = 0; t < T; t++) this.tokens[this.count++] = ids[t];
  }
}

/**
 * {@linkcode sequenceLoss} of every sequence of `batch` (into its `sums` and `counts`), reading each layer
 * and vocabulary chunk once for all of them.
 */
export async function batchLoss(e: Engine, batch: SequenceBatch): Promise<void> {
  const { n, ids, lengths } = batch, slots = e.blocks.batch;
  await forwardBatch(e, n, ids, lengths, batch.tokens, batch.count);
  for (let s = 0; s < n; s++) setTargets(e, ids[s], batch.targets[s], lengths[s], slots[s].loss);
  await lossForwardBatch(e, n, lengths);
  for (let s = 0; s < n; s++) {
    const { sum, count } = lossSum(e, lengths[s], slots[s].loss);
    batch.sums[s] = sum;
    batch.counts[s] = count;
  }
}
