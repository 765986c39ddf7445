/**
 * The record every stage after tokenization passes around: a sequence's token ids and which of them are
 * trained targets.
 *
 * @module
 */

/** A tokenized sequence. */
export interface Sequence {
  ids: Int32Array;
  /** 1 = trained target (ignored by evaluation, which scores every predicted position). */
  targets?: Uint8Array;
}
