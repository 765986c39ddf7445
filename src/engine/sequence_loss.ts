/**
 * The loss of one sequence by a forward pass only: the one implementation evaluation, validation and MeZO
 * share (training's loss comes with its gradient, in `step.ts`).
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { forward } from "./forward.ts";
import { lossForward, lossSum, setTargets } from "./loss.ts";

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
