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
import type { SpillFile } from "../io/spill_file.ts";
import type { LoraLayout } from "./lora.ts";
import { dims, type PlanOptions } from "./plan.ts";
import { recomputeOrder } from "./recompute.ts";
import type { ModelConfig } from "../model/config.ts";

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

/** What each spilled part is called in error messages. */
const NAMES = { params: "adapter", m: "first moment", v: "second moment" } as const;

/** What a read or write of the spill moves: a saved input, a layer's adapter or moment, the reservation. */
type SpillPart = keyof typeof NAMES | "input" | "reservation";

function label(part: SpillPart, index: number): string {
  if (part === "input") return `saved input ${index}`;
  return part === "reservation" ? "its reservation" : `layer ${index}'s ${NAMES[part]}`;
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

/** The spill file of a spilled plan (`o.spill`), or undefined without one. */
export function planSpill(cfg: ModelConfig, o: PlanOptions): SpillLayout | undefined {
  if (!o.spill || o.mode !== "train" || !o.lora) return undefined;
  const D = dims(cfg, o);
  return spillLayout(recomputeOrder(D.L, o).slots, D.T, D.d, o.lora, o.optimizer === "adamw");
}

/** One line saying what a spill holds and how large it grows, e.g. for `plan`. */
export function describeSpill(s: SpillLayout): string {
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const inputs = s.params / s.inputBytes, adapter = (s.m || s.bytes) - s.params;
  return `${mb(s.bytes)} in a file in the run folder: ${inputs} saved layer inputs ${mb(s.params)}, ` +
    `the adapter ${mb(adapter)}${s.m ? `, AdamW's moments ${mb(2 * adapter)}` : ""}`;
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

  // what is read or written is named only for an error: a label built per call would be garbage per layer
  #read(position: number, into: Uint8Array, part: SpillPart, index: number): void {
    const got = this.file.read(position, into);
    if (got !== into.length) {
      throw new Error(
        `spill: read ${got} of ${into.length} bytes of ${label(part, index)} at byte ${position}`,
      );
    }
  }

  #write(position: number, data: Uint8Array, part: SpillPart, index: number): void {
    const put = this.file.write(position, data);
    if (put !== data.length) {
      throw new Error(
        `spill: wrote ${put} of ${data.length} bytes of ${label(part, index)} at byte ${position}`,
      );
    }
  }

  #input(slot: number): number {
    return this.layout.inputs + slot * this.layout.inputBytes;
  }

  /**
   * Writes the whole file once (zeros, through the arena's layer of adapter, before it is filled), so that a
   * disk without room for it fails here, before the first step, naming the file.
   */
  reserve(): void {
    this.#params.fill(0);
    for (let at = 0; at < this.layout.bytes; at += this.#params.length) {
      const n = Math.min(this.#params.length, this.layout.bytes - at);
      this.#write(
        at,
        n === this.#params.length ? this.#params : this.#params.subarray(0, n),
        "reservation",
        0,
      );
    }
    this.#resident = -1;
  }

  /** Saves the residual stream as saved input `slot`. */
  saveInput(slot: number): void {
    this.#write(this.#input(slot), this.#x, "input", slot);
  }

  /** Reads saved input `slot` back into the residual stream. */
  restoreInput(slot: number): void {
    this.#read(this.#input(slot), this.#x, "input", slot);
  }

  /** Reads saved input `slot` into the read-back buffer. */
  readInput(slot: number): void {
    this.#read(this.#input(slot), this.#decoded, "input", slot);
  }

  /** Makes the arena's one layer of adapter hold layer `l`'s. */
  loadAdapter(l: number): void {
    if (this.#resident === l) return;
    this.#read(this.layout.params + l * this.layout.layerBytes, this.#params, "params", l);
    this.#resident = l;
  }

  /** Reads layer `l`'s AdamW moments into the arena's one layer of them. */
  loadMoments(l: number): void {
    this.loadMoment("m", l);
    this.loadMoment("v", l);
  }

  /** Reads layer `l`'s first (`m`) or second (`v`) AdamW moment alone (saving walks one after the other). */
  loadMoment(which: "m" | "v", l: number): void {
    const into = which === "m" ? this.#m : this.#v;
    if (into) {
      this.#read(this.layout[which] + l * this.layout.layerBytes, into, which, l);
    }
  }

  /**
   * Writes the arena's layer of adapter (and moments) as layer `l`'s, which it then holds: after the layer's
   * update, or to fill the spill before the first step.
   */
  storeLayer(l: number): void {
    this.store("params", l);
    this.store("m", l);
    this.store("v", l);
  }

  /**
   * Writes the arena's layer of one part (the adapter, a moment; absent moments are nothing) as layer `l`'s:
   * a resume fills the spill a tensor at a time, as the training state's file holds them.
   */
  store(part: "params" | "m" | "v", l: number): void {
    const data = part === "params" ? this.#params : part === "m" ? this.#m : this.#v;
    if (data) {
      this.#write(this.layout[part] + l * this.layout.layerBytes, data, part, l);
    }
    if (part === "params") this.#resident = l;
  }
}
