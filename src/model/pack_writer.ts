/**
 * Writing a weight pack: a one-time conversion of a checkpoint into the layout the engine streams. Each
 * decoder layer is one contiguous blob in the chosen format, so loading a layer is one sequential read
 * straight into its arena slot; the embedding (and an untied LM head) store each row's data, scales and
 * biases together, so a token's row or a chunk of rows is one read.
 *
 * @module
 */
import type { ByteSink } from "../io/source.ts";
import type { ModelConfig } from "./config.ts";
import { f32ToBf16 } from "./dtype.ts";
import { quantize } from "./quantize.ts";
import type { Checkpoint } from "./safetensors.ts";
import {
  ATTENTION,
  EMBED_TOKENS,
  FINAL_NORM,
  layerTensor,
  LINEAR_PREFIX,
  linearShape,
  LM_HEAD,
} from "./qwen2.ts";
import { Checksum } from "../io/checksum.ts";
import {
  copiesQuantized,
  GROUP,
  type LayerLayout,
  layerLayout,
  type MatrixSlot,
  type PackFormat,
  type VectorSlot,
  type VocabSlot,
  vocabSlot,
} from "./pack_layout.ts";
import { encodePackHeader, type PackHeader, planPack, vocabBlocks } from "./pack_header.ts";
import { MatrixBlocks, mlxShape, readVectorF32 } from "./checkpoint_rows.ts";

/** Options for {@linkcode writePack}. */
export interface WritePackOptions {
  format: PackFormat;
  /** The source's fingerprint, recorded in the header. */
  fingerprint: string;
  /** Called after each section with (done, total) sections. */
  onProgress?: (done: number, total: number, what: string) => void;
  /** MLP chunk (columns of the intermediate dimension) the layers are stored in (default 256). */
  mlpChunk?: number;
  /** Vocabulary rows per checksummed block (default {@linkcode VOCAB_BLOCK}). */
  vocabBlock?: number;
  /**
   * Largest down projection held converted, in bytes (default 16 MB); a larger one (or any, with 0) is read
   * again per MLP chunk: less memory, more reading. The pack's bytes are the same either way.
   */
  heldColumnsBytes?: number;
}

/** Bytes of f32 a conversion step holds: the block of rows (full width, as read) converted at a time. */
const STEP_BYTES = 4 << 20;

/** Rows per conversion step of a matrix `cols` wide (its full rows are read, whatever columns are kept). */
function stepRows(cols: number): number {
  return Math.max(1, Math.floor(STEP_BYTES / (cols * 4)));
}

/** Sequential output with padding up to absolute offsets. */
interface Out {
  padTo(offset: number): Promise<void>;
  emit(bytes: Uint8Array): Promise<void>;
}

/** A converted block of rows: codes or dense values `[n, w]`, and (quantized) raw half scales and biases. */
interface Converted {
  data: Uint8Array;
  scales?: Uint8Array;
  biases?: Uint8Array;
}

/**
 * Converts blocks of checkpoint matrices into the pack's format through buffers sized once for the largest
 * step (about {@linkcode STEP_BYTES} of f32), so that no tensor is ever held whole. MLX weights in the
 * pack's own bit width are copied as they are (bits, scales and biases).
 */
class Converter {
  readonly #ckpt: Checkpoint;
  readonly #cfg: ModelConfig;
  readonly #format: PackFormat;
  readonly #blocks: MatrixBlocks;
  readonly #f32 = new Float32Array(STEP_BYTES / 4);
  readonly #q = new Uint8Array(STEP_BYTES / 4);
  readonly #scales = new Uint16Array(STEP_BYTES / 4 / GROUP);
  readonly #biases = new Uint16Array(STEP_BYTES / 4 / GROUP);
  readonly #half = new Uint16Array(STEP_BYTES / 4);

  constructor(ckpt: Checkpoint, cfg: ModelConfig, format: PackFormat) {
    this.#ckpt = ckpt;
    this.#cfg = cfg;
    this.#format = format;
    this.#blocks = new MatrixBlocks(ckpt);
  }

  /** Checks that `base` is a `[rows, cols]` matrix of the checkpoint. */
  check(base: string, rows: number, cols: number): void {
    const ckpt = this.#ckpt;
    if (ckpt.has(`${base}.scales`)) {
      const s = mlxShape(ckpt, base);
      if (s.rows !== rows || s.cols !== cols) {
        throw new Error(`${base} in ${ckpt.name} is [${s.rows}, ${s.cols}], expected [${rows}, ${cols}]`);
      }
    } else {
      const info = ckpt.get(`${base}.weight`).info;
      if (info.shape.length !== 2 || info.shape[0] !== rows || info.shape[1] !== cols) {
        throw new Error(
          `${base}.weight in ${ckpt.name} has shape [${info.shape}], expected [${rows}, ${cols}]`,
        );
      }
    }
  }

  /**
   * Rows [r0, r1) × columns [c0, c1) of the `cols`-wide matrix `base`, converted (at most
   * `stepRows(cols)` rows); the views are reused by the next call.
   */
  async block(
    base: string,
    cols: number,
    r0: number,
    r1: number,
    c0: number,
    c1: number,
  ): Promise<Converted> {
    const format = this.#format, n = r1 - r0, w = c1 - c0;
    const bytes = (u: Uint16Array) => new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
    if (this.#ckpt.has(`${base}.scales`) && copiesQuantized(this.#cfg, format)) {
      const q = await this.#blocks.mlx(base, r0, r1, c0, c1, cols, this.#cfg.quantization!.bits);
      return { data: q.data, scales: bytes(q.scales), biases: bytes(q.biases) };
    }
    const f32 = this.#f32.subarray(0, n * w);
    await this.#blocks.f32(base, r0, r1, c0, c1, f32);
    if (format === "q4" || format === "q8") {
      const bits = format === "q4" ? 4 : 8, groups = n * (w / GROUP);
      const into = {
        q: this.#q.subarray(0, (n * w * bits) / 8),
        scales: this.#scales.subarray(0, groups),
        biases: this.#biases.subarray(0, groups),
      };
      quantize(f32, w, { bits, scaleDtype: "f16", name: base, rowOffset: r0, into });
      return { data: into.q, scales: bytes(into.scales), biases: bytes(into.biases) };
    }
    if (format === "f32") return { data: new Uint8Array(f32.buffer, 0, f32.byteLength) };
    const half = this.#half.subarray(0, n * w);
    if (format === "f16") new Float16Array(half.buffer, 0, n * w).set(f32);
    else f32ToBf16(f32, half);
    return { data: bytes(half) };
  }
}

/** Scales and biases of one stored matrix, held until its data is written (1/16 of q4 data, at most d·d/32). */
class HeldParts {
  #scales = new Uint8Array(0);
  #biases = new Uint8Array(0);
  views(bytes: number): [Uint8Array, Uint8Array] {
    if (this.#scales.length < bytes) {
      (this.#scales = new Uint8Array(bytes), this.#biases = new Uint8Array(bytes));
    }
    return [this.#scales.subarray(0, bytes), this.#biases.subarray(0, bytes)];
  }
}

/**
 * Largest down projection held converted (one layer's, in the pack's format) to cut the MLP chunks' column
 * slices from; a larger one is read again per chunk. 16 MB: the q4 of a 7B's is 38 MB and re-read; the
 * 0.5B's is 2.4 MB (f32: 17 MB, re-read), within what its training run holds anyway.
 */
const HELD_COLUMNS_BYTES = 16 << 20;

/**
 * A matrix converted once at full width, for its chunks' column slices (the down projection's, one per MLP
 * chunk): cutting each from whole rows read again would read the matrix once per chunk (19 times for the
 * 0.5B's; from a URL, 19 downloads of it). Column slices of a converted row are the slice's conversion:
 * quantization groups lie along rows, and chunks start and end on group bounds.
 */
class HeldColumns {
  #data = new Uint8Array(0);
  #scales = new Uint8Array(0);
  #biases = new Uint8Array(0);
  #staging = new Uint8Array(0);
  #rowBytes = 0;
  #scaleRowBytes = 0;

  /** The full-width bytes of `matrix` (`rows` × `cols`), whose chunk `slot` is `slotCols` wide. */
  static bytes(rows: number, cols: number, slot: MatrixSlot): number {
    return (rows * cols * (slot.rowBytes + 2 * slot.scaleRowBytes)) / slot.cols;
  }

  /** Converts rows [0, rows) of the `cols`-wide matrix `base` whole; `slot` is one of its chunks' slots. */
  async fill(conv: Converter, base: string, rows: number, cols: number, slot: MatrixSlot): Promise<void> {
    const rowBytes = (slot.rowBytes * cols) / slot.cols,
      scaleRowBytes = (slot.scaleRowBytes * cols) / slot.cols;
    if (this.#data.length < rows * rowBytes) this.#data = new Uint8Array(rows * rowBytes);
    if (this.#scales.length < rows * scaleRowBytes) {
      (this.#scales = new Uint8Array(rows * scaleRowBytes),
        this.#biases = new Uint8Array(rows * scaleRowBytes));
    }
    this.#rowBytes = rowBytes, this.#scaleRowBytes = scaleRowBytes;
    const step = stepRows(cols);
    for (let r = 0; r < rows; r += step) {
      const c = await conv.block(base, cols, r, Math.min(rows, r + step), 0, cols);
      this.#data.set(c.data, r * rowBytes);
      if (c.scales) this.#scales.set(c.scales, r * scaleRowBytes);
      if (c.biases) this.#biases.set(c.biases, r * scaleRowBytes);
    }
  }

  /** Writes columns [c0, c0 + slot.cols) into `slot` at absolute offset `at`: data, scales, biases. */
  async write(slot: MatrixSlot, c0: number, at: number, out: Out): Promise<void> {
    const parts: [Uint8Array, number, number, number][] = [[
      this.#data,
      this.#rowBytes,
      slot.rowBytes,
      slot.offset,
    ]];
    if (slot.scaleRowBytes) {
      parts.push([this.#scales, this.#scaleRowBytes, slot.scaleRowBytes, slot.scalesOffset]);
      parts.push([this.#biases, this.#scaleRowBytes, slot.scaleRowBytes, slot.biasesOffset]);
    }
    for (const [full, fullRow, row, offset] of parts) {
      if (this.#staging.length < slot.rows * row) this.#staging = new Uint8Array(slot.rows * row);
      const from = (c0 * row) / slot.cols;
      for (let r = 0; r < slot.rows; r++) {
        this.#staging.set(full.subarray(r * fullRow + from, r * fullRow + from + row), r * row);
      }
      await out.padTo(at + offset);
      await out.emit(this.#staging.subarray(0, slot.rows * row));
    }
  }
}

/**
 * Streams rows [r0, r0 + slot.rows) × columns [c0, c0 + slot.cols) of the `cols`-wide matrix `base` into
 * `slot` at absolute offset `at`: the data as it is converted, then the held scales and biases. The whole
 * matrix (attention), a row slice (gate and up of an MLP chunk) or a column slice (down).
 */
async function writeMatrix(
  conv: Converter,
  held: HeldParts,
  base: string,
  cols: number,
  r0: number,
  c0: number,
  slot: MatrixSlot,
  at: number,
  out: Out,
): Promise<void> {
  const [scales, biases] = held.views(slot.rows * slot.scaleRowBytes);
  await out.padTo(at + slot.offset);
  const step = stepRows(cols);
  for (let r = 0; r < slot.rows; r += step) {
    const n = Math.min(step, slot.rows - r);
    const c = await conv.block(base, cols, r0 + r, r0 + r + n, c0, c0 + slot.cols);
    await out.emit(c.data);
    if (c.scales) scales.set(c.scales, r * slot.scaleRowBytes);
    if (c.biases) biases.set(c.biases, r * slot.scaleRowBytes);
  }
  if (slot.scaleRowBytes) {
    await out.padTo(at + slot.scalesOffset);
    await out.emit(scales);
    await out.padTo(at + slot.biasesOffset);
    await out.emit(biases);
  }
}

/** Streams the vocabulary matrix `base` into its section at `at`, row-interleaved (see `VocabSlot`). */
async function writeVocab(
  conv: Converter,
  base: string,
  slot: VocabSlot,
  at: number,
  out: Out,
): Promise<void> {
  const { rows, cols, rowBytes: d, scaleRowBytes: q, rowStride } = slot;
  conv.check(base, rows, cols);
  await out.padTo(at);
  const step = stepRows(cols), buf = new Uint8Array(Math.min(step, rows) * rowStride);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const c = await conv.block(base, cols, r0, r0 + n, 0, cols);
    if (!q) {
      await out.emit(c.data);
      continue;
    }
    for (let r = 0; r < n; r++) {
      buf.set(c.data.subarray(r * d, (r + 1) * d), r * rowStride);
      buf.set(c.scales!.subarray(r * q, (r + 1) * q), r * rowStride + d);
      buf.set(c.biases!.subarray(r * q, (r + 1) * q), r * rowStride + d + q);
    }
    await out.emit(buf.subarray(0, n * rowStride));
  }
}

/**
 * Writes a pack for `ckpt` to `sink`, streaming through fixed buffers: every matrix is converted a block of
 * ~4 MB of f32 rows at a time, so the conversion never holds a tensor whole, whatever the model's size. The
 * one exception is a layer's down projection, held converted up to {@linkcode HELD_COLUMNS_BYTES} so that
 * each byte of the checkpoint is read once (larger, its MLP chunks' columns are cut from rows read again).
 */
export async function writePack(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  sink: ByteSink,
  options: WritePackOptions,
): Promise<PackHeader> {
  const { format } = options;
  const plan = planPack(cfg, format, options.mlpChunk, options.vocabBlock);
  const header: PackHeader = { ...plan, fingerprint: options.fingerprint, source: ckpt.name };
  const layout = layerLayout(cfg, format, plan.bf16Scales, plan.mlpChunk);
  const vocab = vocabSlot(cfg.vocabSize, cfg.hiddenSize, format, plan.bf16Scales);
  let written = 0;
  const blocks = blockRanges(header, layout, vocab);
  const inFileOrder = blocks.toSorted((a, b) => a.start - b.start);
  let k = 0; // the first block that does not end before `written`
  const zeros = new Uint8Array(4096);
  const out: Out = {
    async emit(bytes) {
      // every block's checksum is taken from the bytes as they pass
      const end = written + bytes.length;
      while (k < inFileOrder.length && inFileOrder[k].start < end) {
        const b = inFileOrder[k];
        const from = Math.max(b.start, written), to = Math.min(b.end, end);
        if (to > from) b.sum.update(bytes.subarray(from - written, to - written));
        if (b.end > end) break;
        k++;
      }
      await sink.write(bytes);
      written = end;
    },
    async padTo(offset) {
      if (offset < written) throw new Error(`pack writer: overlap at byte ${offset}`);
      while (offset > written) await out.emit(zeros.subarray(0, Math.min(zeros.length, offset - written)));
    },
  };
  await out.emit(encodePackHeader(header));
  const total = cfg.numLayers + 2 + (plan.lmHead ? 1 : 0);
  let done = 0;
  const progress = (what: string) => options.onProgress?.(++done, total, what);
  const vector = async (name: string, slot: VectorSlot, at: number) => {
    await out.padTo(at + slot.offset);
    await out.emit(new Uint8Array((await readVectorF32(ckpt, name, slot.length)).buffer));
  };
  const conv = new Converter(ckpt, cfg, format), held = new HeldParts(), columns = new HeldColumns();
  const heldColumnsBytes = options.heldColumnsBytes ?? HELD_COLUMNS_BYTES;

  await writeVocab(conv, EMBED_TOKENS, vocab, plan.embed.offset, out);
  progress("embedding");
  for (let l = 0; l < cfg.numLayers; l++) {
    const at = plan.layers[l].offset;
    for (const name of ATTENTION) {
      const base = layerTensor(l, LINEAR_PREFIX[name]), slot = layout.attention[name];
      conv.check(base, slot.rows, slot.cols);
      await writeMatrix(conv, held, base, slot.cols, 0, 0, slot, at, out);
    }
    await vector(`${layerTensor(l, LINEAR_PREFIX.q_proj)}.bias`, layout.qBias, at);
    await vector(`${layerTensor(l, LINEAR_PREFIX.k_proj)}.bias`, layout.kBias, at);
    await vector(`${layerTensor(l, LINEAR_PREFIX.v_proj)}.bias`, layout.vBias, at);
    await vector(`${layerTensor(l, "input_layernorm")}.weight`, layout.inputNorm, at);
    await vector(`${layerTensor(l, "post_attention_layernorm")}.weight`, layout.postNorm, at);
    const [I, d] = linearShape(cfg, "gate_proj");
    const gate = layerTensor(l, LINEAR_PREFIX.gate_proj), up = layerTensor(l, LINEAR_PREFIX.up_proj);
    const down = layerTensor(l, LINEAR_PREFIX.down_proj);
    conv.check(gate, I, d), conv.check(up, I, d), conv.check(down, d, I);
    const holdDown = HeldColumns.bytes(d, I, layout.chunks[0].down) <= heldColumnsBytes;
    if (holdDown) await columns.fill(conv, down, d, I, layout.chunks[0].down);
    for (const c of layout.chunks) {
      await writeMatrix(conv, held, gate, d, c.c0, 0, c.gate, at + c.offset, out);
      await writeMatrix(conv, held, up, d, c.c0, 0, c.up, at + c.offset, out);
      if (holdDown) await columns.write(c.down, c.c0, at + c.offset, out);
      else await writeMatrix(conv, held, down, I, 0, c.c0, c.down, at + c.offset, out);
    }
    progress(`layer ${l}`);
  }
  await vector(
    `${FINAL_NORM}.weight`,
    { length: cfg.hiddenSize, offset: 0, bytes: cfg.hiddenSize * 4 },
    plan.norm.offset,
  );
  progress("final norm");
  if (plan.lmHead) {
    await writeVocab(conv, LM_HEAD, vocab, plan.lmHead.offset, out);
    progress("lm_head");
  }
  const table = new Uint32Array(blocks.length * 2);
  blocks.forEach((b, i) => b.sum.writeTo(table, 2 * i));
  await out.padTo(plan.checksums.offset);
  await out.emit(new Uint8Array(table.buffer));
  await out.padTo(plan.fileBytes);
  return header;
}

/** The checksummed blocks of a pack in table order (see {@linkcode blockCount}, {@linkcode vocabBlocks}). */
function blockRanges(
  header: Pick<PackHeader, "layers" | "norm" | "embed" | "lmHead" | "vocabBlock" | "config">,
  layout: LayerLayout,
  vocab: VocabSlot,
): { start: number; end: number; sum: Checksum }[] {
  const blocks = [];
  for (const { offset } of header.layers) {
    blocks.push({ start: offset, end: offset + layout.attentionBytes, sum: new Checksum() });
    for (const c of layout.chunks) {
      blocks.push({ start: offset + c.offset, end: offset + c.offset + c.bytes, sum: new Checksum() });
    }
  }
  blocks.push({
    start: header.norm.offset,
    end: header.norm.offset + header.norm.bytes,
    sum: new Checksum(),
  });
  const v = vocabBlocks(header.config, vocab, header.vocabBlock, blocks.length);
  for (const section of header.lmHead ? [header.embed, header.lmHead] : [header.embed]) {
    for (let r0 = 0; r0 < vocab.rows; r0 += v.rows) {
      const start = section.offset + r0 * vocab.rowStride;
      const end = start + (Math.min(vocab.rows, r0 + v.rows) - r0) * vocab.rowStride;
      blocks.push({ start, end, sum: new Checksum() });
    }
  }
  return blocks;
}
