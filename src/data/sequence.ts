/**
 * The record every stage after tokenization passes around: a sequence's token ids and which of them are
 * trained targets.
 *
 * @module
 */

/** A tokenized sequence. `targets[t] = 1`: token t is predicted from position t−1 and counts in the loss. */
export interface Sequence {
  /** Token ids. */
  ids: Int32Array;
  /**
   * One byte per token: 1 = trained target, 0 = context only (`targets[0]` is always 0). Absent: every
   * position 1…T−1 is trained. Evaluation scores every predicted position unless told `score: "trained"`.
   */
  targets?: Uint8Array;
}

/** The positions the longest of `sets`' sequences takes once cut to `seqLen` (at least 2). */
export function longestWithin(seqLen: number, ...sets: readonly (readonly Sequence[])[]): number {
  let longest = 2;
  for (const set of sets) for (const s of set) longest = Math.max(longest, Math.min(s.ids.length, seqLen));
  return longest;
}

/** The index of the first of `ids` that is not a token id (an integer from 0 to `vocabSize` − 1), or −1. */
export function badTokenIdAt(ids: ArrayLike<unknown>, vocabSize = Infinity): number {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isSafeInteger(id) || (id as number) < 0 || (id as number) >= vocabSize) return i;
  }
  return -1;
}
