/**
 * Weight streaming: the frozen weights a pass needs, read from the pack into the plan's slots as the pass
 * reaches them (docs/architecture.md). One layer's attention block at a time; its MLP a chunk of the
 * intermediate dimension at a time through two slots, the next chunk read while this one computes
 * (`read_ahead.ts`); the vocabulary (embedding, LM head) a chunk of rows at a time through two slots, or one
 * row through slot 0. With `resident` every layer is read once, at creation, and a "load" only re-points.
 *
 * The descriptors the GEMMs take are made here once; loading a unit re-points them (no buffer is allocated;
 * a read is a promise). A step's token rows are copied from the pack's gather without one (`gatheredRow`).
 *
 * @module
 */
import { f32Ref, type WeightRef } from "../runtime/weight_ref.ts";
import { ATTENTION, type AttentionLinear } from "../model/qwen2.ts";
import type { MatrixSlot } from "../model/pack_layout.ts";
import type { Pack, VocabRowViews } from "../model/pack.ts";
import { ReadAhead } from "./read_ahead.ts";
import type { Buffers, Dims } from "./plan.ts";

/** A weight descriptor whose pointers are `base + rel` for the slot (or resident layer) in use. */
interface RelRef {
  ref: WeightRef;
  ptr: number;
  scales: number;
  biases: number;
}

/** MLP chunk [c0, c1) of the intermediate dimension: gate/up rows and down columns, for the chunk in use. */
export interface MlpChunk {
  c0: number;
  c1: number;
  gate: WeightRef;
  up: WeightRef;
  down: WeightRef;
}

/** The per-layer vectors of a Qwen2 layer (biases, norm weights). */
export type LayerVector = "qBias" | "kBias" | "vBias" | "inputNorm" | "postNorm";

/** The weights of a pack, streamed (or resident) into the plan's weight regions. */
export class WeightStream {
  readonly #pack: Pack;
  readonly #p: Buffers;
  readonly #D: Dims;
  readonly #resident: boolean;
  /** Layer whose attention block the slot holds (-1: none), in streaming mode. */
  loadedLayer = -1;
  /** The attention linears' frozen weights, for the layer in use. */
  readonly attention: Record<AttentionLinear, WeightRef>;
  /** The MLP chunks, as stored in the pack; each chunk's descriptors point at it when loaded. */
  readonly chunks: readonly MlpChunk[];
  /** The vocabulary slot in use (a chunk of the embedding / LM head, or one row) as a weight. */
  readonly vocabRef: WeightRef;
  readonly #attentionRel: RelRef[] = [];
  readonly #chunkRel: RelRef[][] = [];
  /** Views the pack reads the attention block and, per MLP slot, each MLP chunk into (streaming). */
  readonly #attnView?: Uint8Array;
  readonly #chunkViews: Uint8Array[][] = [[], []];
  readonly #mlpBase: number[] = [];
  /** MLP chunks streamed through two slots, keyed layer · chunks + chunk: the next one is read ahead. */
  readonly #mlpReads: ReadAhead;
  /** Per-layer vector pointers relative to the layer base. */
  readonly #vec: Record<LayerVector, number>;
  /** Per vocabulary slot, the views of each chunk; single rows go through slot 0. */
  readonly #vocabViews: VocabRowViews[][] = [[], []];
  readonly #rowViews: VocabRowViews;
  /** Offsets of a vocabulary slot's parts from its base, and the bases of the two slots. */
  readonly #vocabParts: { scales: number; biases: number };
  readonly #vocabBase: number[];
  readonly #vocabReads: ReadAhead;
  #layerBase = 0;

  /**
   * Over the memory `buffer` and the plan's buffers `p`; `slotBytes` are the sizes of one of the two MLP slots
   * and one of the two vocabulary slots (half their regions).
   */
  constructor(
    pack: Pack,
    buffer: ArrayBufferLike,
    p: Buffers,
    D: Dims,
    resident: boolean,
    slotBytes: { mlp: number; vocab: number },
  ) {
    this.#pack = pack;
    this.#p = p;
    this.#D = D;
    this.#resident = resident;
    const layout = pack.layout;

    // weights relative to the attention block's base / an MLP chunk's base
    const rel = (slot: MatrixSlot, group: RelRef[]): WeightRef => {
      const ref = {
        dtype: slot.dtype,
        ptr: 0,
        ld: slot.cols,
        scales: 0,
        biases: 0,
        bf16Scales: slot.bf16Scales,
      };
      group.push({ ref, ptr: slot.offset, scales: slot.scalesOffset, biases: slot.biasesOffset });
      return ref;
    };
    this.attention = Object.fromEntries(
      ATTENTION.map((n) => [n, rel(layout.attention[n], this.#attentionRel)]),
    ) as Record<AttentionLinear, WeightRef>;
    this.chunks = layout.chunks.map((c) => {
      const group: RelRef[] = [];
      this.#chunkRel.push(group);
      return { c0: c.c0, c1: c.c1, gate: rel(c.gate, group), up: rel(c.up, group), down: rel(c.down, group) };
    });
    this.#vec = {
      qBias: layout.qBias.offset,
      kBias: layout.kBias.offset,
      vBias: layout.vBias.offset,
      inputNorm: layout.inputNorm.offset,
      postNorm: layout.postNorm.offset,
    };

    // vocabulary slots: rows of the embedding / LM head, read a chunk (or a token) at a time, two slots so
    // the next chunk is read while this one computes
    const vs = pack.vocabSlot;
    const vocab = p["weights.vocab"], half = slotBytes.vocab;
    const scalesOff = vs.scaleRowBytes ? alignUp(D.Vc * vs.rowBytes) : 0;
    const biasesOff = vs.scaleRowBytes ? alignUp(scalesOff + D.Vc * vs.scaleRowBytes) : 0;
    this.#vocabParts = { scales: scalesOff, biases: biasesOff };
    this.#vocabBase = [vocab, vocab + half];
    this.vocabRef = { dtype: vs.dtype, ptr: 0, ld: D.d, scales: 0, biases: 0, bf16Scales: vs.bf16Scales };
    this.#pointVocab(0);
    const views = (base: number, rows: number) => ({
      data: new Uint8Array(buffer, base, rows * vs.rowBytes),
      scales: vs.scaleRowBytes
        ? new Uint8Array(buffer, base + scalesOff, rows * vs.scaleRowBytes)
        : undefined,
      biases: vs.scaleRowBytes
        ? new Uint8Array(buffer, base + biasesOff, rows * vs.scaleRowBytes)
        : undefined,
    });
    for (const s of [0, 1]) {
      for (let v0 = 0; v0 < D.V; v0 += D.Vc) {
        this.#vocabViews[s].push(views(this.#vocabBase[s], Math.min(D.Vc, D.V - v0)));
      }
    }
    this.#rowViews = views(this.#vocabBase[0], 1);
    this.#vocabReads = new ReadAhead((c, s) =>
      pack.readVocabRows(
        c * D.Vc,
        c * D.Vc + this.#vocabViews[s][c].data.length / vs.rowBytes,
        this.#vocabViews[s][c],
        !pack.config.tieWordEmbeddings,
      )
    );
    this.#mlpReads = new ReadAhead((key, s) => {
      const n = this.chunks.length, i = key % n;
      return pack.readMlpChunk((key - i) / n, i, this.#chunkViews[s][i]);
    });
    if (!resident) {
      this.#attnView = new Uint8Array(buffer, p["weights.attn"], layout.attentionBytes);
      const mlp = p["weights.mlp"], mlpHalf = slotBytes.mlp;
      this.#mlpBase = [mlp, mlp + mlpHalf];
      for (const s of [0, 1]) {
        for (const c of layout.chunks) {
          this.#chunkViews[s].push(new Uint8Array(buffer, this.#mlpBase[s], c.bytes));
        }
      }
    }
    this.#setLayerBase(this.#layerAt(0));
  }

  /** Reads what a resident engine keeps (every layer) and the final norm. */
  async readResident(norm: Float32Array): Promise<void> {
    await this.#pack.readNorm(norm);
    if (!this.#resident) return;
    const bytes = this.#pack.layout.bytes;
    const all = new Uint8Array(norm.buffer, this.#p["weights.layers"], this.#D.L * bytes);
    for (let l = 0; l < this.#D.L; l++) {
      await this.#pack.readLayer(l, all.subarray(l * bytes, (l + 1) * bytes));
    }
  }

  /** Where layer `l`'s attention block is: its resident copy, or the streamed slot. */
  #layerAt(l: number): number {
    return this.#resident ? this.#p["weights.layers"] + l * this.#pack.layout.bytes : this.#p["weights.attn"];
  }

  /** Absolute pointer of a per-layer vector (bias or norm weight) of the layer in use. */
  vec(name: LayerVector): number {
    return this.#layerBase + this.#vec[name];
  }

  /** Points the attention descriptors (and the per-layer vectors) at the attention block starting at `base`. */
  #setLayerBase(base: number): void {
    this.#layerBase = base;
    setBase(this.#attentionRel, base);
  }

  /**
   * Makes layer `l`'s attention block current (reads it into its slot unless resident or already there).
   * `through`: layers l + 1…through are loaded right after this one, in order (see `Pack.readAttention`).
   */
  async loadLayer(l: number, through = l): Promise<void> {
    if (this.#resident) {
      this.#setLayerBase(this.#layerAt(l));
      return;
    }
    if (this.loadedLayer !== l) {
      this.loadedLayer = -1;
      await this.#pack.readAttention(l, this.#attnView!, through);
      this.loadedLayer = l;
    }
    // every pass over a layer starts its MLP at chunk 0: read it while the attention computes
    this.#mlpReads.prefetch(l * this.chunks.length);
  }

  /** Makes the weight descriptors point at layer `l` (checking a streamed layer is in the slot). */
  useLayer(l: number): void {
    if (!this.#resident && this.loadedLayer !== l) throw new Error(`layer ${l} is not loaded`);
    const base = this.#layerAt(l);
    if (this.#layerBase !== base) this.#setLayerBase(base);
  }

  /** Makes MLP chunk `i` of layer `l` current (reads it into the MLP slot unless resident or already there). */
  async loadChunk(l: number, i: number): Promise<void> {
    if (this.#resident) {
      setBase(this.#chunkRel[i], this.#layerAt(l) + this.#pack.layout.chunks[i].offset);
      return;
    }
    const n = this.chunks.length, key = l * n + i;
    const slot = await this.#mlpReads.load(key);
    setBase(this.#chunkRel[i], this.#mlpBase[slot]);
    if (i + 1 < n) this.#mlpReads.prefetch(key + 1);
  }

  /** Number of vocabulary chunks. */
  get vocabChunks(): number {
    return this.#vocabViews[0].length;
  }

  /** Reads vocabulary chunk `c` (embedding, or the untied LM head) into the vocabulary slot; its row count. */
  async loadVocabChunk(c: number): Promise<number> {
    const slot = await this.#vocabReads.load(c);
    this.#pointVocab(slot);
    if (c + 1 < this.vocabChunks) this.#vocabReads.prefetch(c + 1);
    return Math.min(this.#D.Vc, this.#D.V - c * this.#D.Vc);
  }

  /**
   * Reads row `id` of the embedding (`head`: of the LM head, the embedding when tied) into row 0 of the
   * vocabulary slot; `vocabRef` then points at it.
   */
  async readRow(id: number, head: boolean): Promise<WeightRef> {
    await this.#vocabReads.settle();
    this.#pointVocab(0);
    await this.#pack.readVocabRows(id, id + 1, this.#rowViews, head && !this.#pack.config.tieWordEmbeddings);
    return this.vocabRef;
  }

  /**
   * {@linkcode readRow} without a promise, when the last `prefetchRows` gathered the row and no read-ahead
   * is in flight (as in a step's token loops); undefined otherwise, for `readRow` to read it.
   */
  gatheredRow(id: number, head: boolean): WeightRef | undefined {
    if (!this.#vocabReads.settledNow()) return undefined;
    this.#pointVocab(0);
    const lmHead = head && !this.#pack.config.tieWordEmbeddings;
    return this.#pack.copyGatheredRow(id, this.#rowViews, lmHead) ? this.vocabRef : undefined;
  }

  /**
   * Announces the rows `ids[0..count)` that `readRow` is about to be asked for, so the pack fetches them in
   * few reads (sorted, once each, neighbours merged) instead of one read a row.
   */
  async prefetchRows(ids: ArrayLike<number>, count: number, head: boolean): Promise<void> {
    await this.#vocabReads.settle();
    await this.#pack.prefetchRows(ids, count, head && !this.#pack.config.tieWordEmbeddings);
  }

  /**
   * Announces rows a later `prefetchRows` will ask for, so the next pass over the vocabulary (the loss's)
   * keeps them as it reads them instead of the gather reading them: the next sequence's embedding rows
   * (`head` false), taken from the loss's pass when the head is the embedding (tied), or an untied head's
   * target rows, from the same step's pass. Tied, the targets are among the embedding rows gathered
   * already: `head` then does nothing.
   */
  expectRows(ids: ArrayLike<number>, count: number, head: boolean): void {
    const tied = this.#pack.config.tieWordEmbeddings;
    if (head && tied) return;
    this.#pack.expectRows(ids, count, head);
  }

  /** Points `vocabRef` at vocabulary slot `s`. */
  #pointVocab(s: number): void {
    const base = this.#vocabBase[s];
    this.vocabRef.ptr = base;
    this.vocabRef.scales = base + this.#vocabParts.scales;
    this.vocabRef.biases = base + this.#vocabParts.biases;
  }
}

function setBase(group: readonly RelRef[], base: number): void {
  for (const r of group) {
    r.ref.ptr = base + r.ptr;
    r.ref.scales = base + r.scales;
    r.ref.biases = base + r.biases;
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / 64) * 64;
}

/** A spare f32 descriptor, re-pointed before each use. */
export function scratchRef(): WeightRef {
  return f32Ref(0, 1);
}
