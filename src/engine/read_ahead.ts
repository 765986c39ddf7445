/**
 * Read-ahead over two weight slots: while the kernels compute with the unit in one slot, the next unit is
 * read into the other, so streaming weights costs little over keeping them resident. A unit is anything
 * read whole into a slot (an MLP chunk of a layer, a vocabulary chunk), named by a number.
 *
 * The reader must start its I/O before it returns (see `fileSource`); otherwise the read only begins when
 * the caller next awaits and nothing overlaps (still correct).
 *
 * @module
 */

/** Reads unit `key` into slot `slot` (0 or 1). */
export type SlotReader = (key: number, slot: 0 | 1) => Promise<void>;

/** Two slots: one holds the unit in use, the other the unit read ahead (or nothing). */
export class ReadAhead {
  readonly #read: SlotReader;
  /** The unit in the current slot (-1: none) and that slot. */
  #key = -1;
  #slot: 0 | 1 = 0;
  /** A read in flight into the other slot. */
  #pending?: { key: number; done: Promise<void> };

  constructor(read: SlotReader) {
    this.#read = read;
  }

  /** Makes `key` current and returns its slot: the read-ahead's if it was `key`, else a read now. */
  async load(key: number): Promise<0 | 1> {
    const p = this.#pending;
    if (p) {
      this.#pending = undefined;
      if (p.key === key) {
        await p.done; // a failed read-ahead throws here, for the unit that needed it
        this.#key = key;
        this.#slot = this.#slot === 0 ? 1 : 0;
        return this.#slot;
      }
      await p.done.catch(() => {}); // never two reads into one slot
    }
    if (this.#key === key) return this.#slot;
    const spare = this.#slot === 0 ? 1 : 0;
    await this.#read(key, spare);
    this.#key = key;
    this.#slot = spare;
    return spare;
  }

  /**
   * Starts reading `key` into the spare slot, unless it is current or a read is already in flight. Call it
   * right after `load`, before computing with the current slot.
   */
  prefetch(key: number): void {
    if (this.#pending || key === this.#key) return;
    const done = this.#read(key, this.#slot === 0 ? 1 : 0);
    done.catch(() => {}); // reported by `load` if the unit is used; an unused failed read is harmless
    this.#pending = { key, done };
  }

  /**
   * {@linkcode settle} without waiting: when no read is in flight, forgets what the slots hold and returns
   * true; false (and nothing forgotten) while one is.
   */
  settledNow(): boolean {
    if (this.#pending) return false;
    this.#key = -1;
    return true;
  }

  /**
   * Waits for any read in flight and forgets what the slots hold: for a caller about to write into a slot
   * by other means (single rows of the vocabulary).
   */
  async settle(): Promise<void> {
    const p = this.#pending;
    this.#pending = undefined;
    this.#key = -1;
    if (p) await p.done.catch(() => {});
  }
}
