/**
 * Spill: what a MeSP training step needs only one layer at a time, kept outside the arena in a file the
 * caller provides (docs/memory_plan.md, "Spill"). Three things qualify: the saved layer inputs (written by
 * the forward, read back by the backward), the adapter's parameters and the optimizer's moments (a layer's
 * are read when the layer runs and written back by its fused update). The arena then holds one layer's
 * adapter and moments and no saved input at all, so every layer's input can be saved (nothing recomputed)
 * for less memory than the few slots an arena can afford.
 *
 * The bytes written are read back unchanged (f32 in, f32 out), so gradients, losses and adapters are bitwise
 * those of the same run without a spill (`tests/spill_test.ts`). The file's pages are the operating
 * system's: it writes them back and reclaims them under pressure, like the pack's.
 *
 * @module
 */
import type { LoraLayout } from "./lora.ts";

/**
 * Random-access bytes outside the arena, synchronous (the step calls it between kernels): a file opened for
 * reading and writing (`denoSpillFile` in the CLI), a `FileSystemSyncAccessHandle` of the Origin Private File
 * System in a browser worker (`{ read: (at, b) => h.read(b, { at }), write: (at, b) => h.write(b, { at }) }`
 * fits), or memory ({@linkcode memorySpill}, for tests).
 */
export interface SpillFile {
  /** Fills `into` with the bytes at `position` (written earlier; returns how many were read). */
  read(position: number, into: Uint8Array): number;
  /** Writes `data` at `position` (returns how many were written). */
  write(position: number, data: Uint8Array): number;
}

/** A spill held in memory (tests, and runtimes with memory to spare but a small wasm limit). */
export function memorySpill(): SpillFile & { bytes(): number } {
  let store = new Uint8Array(0);
  return {
    read(position, into) {
      into.set(store.subarray(position, position + into.length));
      return into.length;
    },
    write(position, data) {
      const end = position + data.length;
      if (end > store.length) {
        const grown = new Uint8Array(Math.max(end, store.length * 2));
        grown.set(store);
        store = grown;
      }
      store.set(data, position);
      return data.length;
    },
    bytes: () => store.length,
  };
}

/** Where each spilled thing lives in the file (byte offsets). */
export interface SpillLayout {
  /** `slots` saved inputs of `inputBytes` each, from 0. */
  inputs: number;
  inputBytes: number;
  /** The adapter's parameters, layer after layer (`layerBytes` each), then the two AdamW moments (or 0). */
  params: number;
  m: number;
  v: number;
  layerBytes: number;
  /** The file's size. */
  bytes: number;
}

/** The layout of a spill for `slots` saved `[T, d]` f32 inputs, the adapter `lora`, AdamW moments or not. */
export function spillLayout(
  slots: number,
  T: number,
  d: number,
  lora: LoraLayout,
  moments: boolean,
): SpillLayout {
  const inputBytes = T * d * 4, layerBytes = lora.layerElements * 4, all = lora.totalElements * 4;
  const params = slots * inputBytes;
  const m = moments ? params + all : 0, v = moments ? m + all : 0;
  return { inputs: 0, inputBytes, params, m, v, layerBytes, bytes: params + (moments ? 3 : 1) * all };
}

/** The arena buffers a spill reads into and writes from (byte pointers). */
export interface SpillBuffers {
  /** The residual stream `[T, d]` (saved from, restored into) and where a saved input is read back to. */
  x: number;
  decoded: number;
  /** One layer's adapter, and (AdamW) one layer's moments (0 without). */
  params: number;
  m: number;
  v: number;
}

/**
 * The engine's side of a spill: reads and writes its regions through views made once (no allocation in the
 * step), and tracks which layer's adapter the arena's one-layer `lora.params` holds, so that a layer run
 * twice in a row (the backward of the last one right after its forward) is read once. Saved inputs move
 * whole `[T, d]` planned rows whatever a sequence's length (the rows past it are never read).
 */
export class Spill {
  readonly file: SpillFile;
  readonly layout: SpillLayout;
  readonly #x: Uint8Array;
  readonly #decoded: Uint8Array;
  readonly #params: Uint8Array;
  readonly #m?: Uint8Array;
  readonly #v?: Uint8Array;
  /** The layer whose adapter `lora.params` holds now (−1: none). */
  #resident = -1;

  constructor(file: SpillFile, layout: SpillLayout, memory: ArrayBufferLike, at: SpillBuffers) {
    this.file = file;
    this.layout = layout;
    const view = (ptr: number, n: number) => new Uint8Array(memory, ptr, n);
    this.#x = view(at.x, layout.inputBytes);
    this.#decoded = view(at.decoded, layout.inputBytes);
    this.#params = view(at.params, layout.layerBytes);
    if (at.m) this.#m = view(at.m, layout.layerBytes);
    if (at.v) this.#v = view(at.v, layout.layerBytes);
  }

  #read(position: number, into: Uint8Array, what: string): void {
    const got = this.file.read(position, into);
    if (got !== into.length) {
      throw new Error(`spill: read ${got} of ${into.length} bytes of ${what} at byte ${position}`);
    }
  }

  #write(position: number, data: Uint8Array, what: string): void {
    const put = this.file.write(position, data);
    if (put !== data.length) {
      throw new Error(`spill: wrote ${put} of ${data.length} bytes of ${what} at byte ${position}`);
    }
  }

  #input(slot: number): number {
    return this.layout.inputs + slot * this.layout.inputBytes;
  }

  /** Saves the residual stream as saved input `slot`. */
  saveInput(slot: number): void {
    this.#write(this.#input(slot), this.#x, `saved input ${slot}`);
  }

  /** Reads saved input `slot` back into the residual stream. */
  restoreInput(slot: number): void {
    this.#read(this.#input(slot), this.#x, `saved input ${slot}`);
  }

  /** Reads saved input `slot` into the read-back buffer. */
  readInput(slot: number): void {
    this.#read(this.#input(slot), this.#decoded, `saved input ${slot}`);
  }

  /** Makes the arena's one layer of adapter hold layer `l`'s. */
  loadAdapter(l: number): void {
    if (this.#resident === l) return;
    this.#read(this.layout.params + l * this.layout.layerBytes, this.#params, `layer ${l}'s adapter`);
    this.#resident = l;
  }

  /** Reads layer `l`'s AdamW moments into the arena's one layer of them. */
  loadMoments(l: number): void {
    const at = l * this.layout.layerBytes;
    if (this.#m) this.#read(this.layout.m + at, this.#m, `layer ${l}'s first moment`);
    if (this.#v) this.#read(this.layout.v + at, this.#v, `layer ${l}'s second moment`);
  }

  /**
   * Writes the arena's layer of adapter (and moments) as layer `l`'s, which it then holds: after the layer's
   * update, or to fill the spill before the first step.
   */
  storeLayer(l: number): void {
    const at = l * this.layout.layerBytes;
    this.#write(this.layout.params + at, this.#params, `layer ${l}'s adapter`);
    if (this.#m) this.#write(this.layout.m + at, this.#m, `layer ${l}'s first moment`);
    if (this.#v) this.#write(this.layout.v + at, this.#v, `layer ${l}'s second moment`);
    this.#resident = l;
  }
}
