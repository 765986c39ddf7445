/**
 * Writing a weight pack: a one-time conversion of a checkpoint into the layout the engine streams. Each
 * decoder layer is one contiguous blob in the chosen format, so loading a layer is one sequential read
 * straight into its arena slot; the embedding (and an untied LM head) are row-major matrices whose rows are
 * read a token (or a vocabulary chunk) at a time.
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
  matrixSlot,
  type PackFormat,
  type VectorSlot,
} from "./pack_layout.ts";
import { encodePackHeader, type PackHeader, planPack, vocabBlocks } from "./pack_header.ts";
import { mlxShape, readMlxRows, readRowsF32, readVectorF32 } from "./checkpoint_rows.ts";

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
}

/** Rows per conversion chunk: about 4 MB of f32. */
function chunkRows(cols: number): number {
  return Math.max(1, Math.floor((4 << 20) / (cols * 4)));
}

/** Sequential output with padding up to absolute offsets. */
interface Out {
  padTo(offset: number): Promise<void>;
  emit(bytes: Uint8Array): Promise<void>;
}

/** Converted rows [r0, r1) of a matrix: row data and (quantized) raw half scales and biases. */
interface ConvertedRows {
  r0: number;
  data: Uint8Array;
  scales?: Uint8Array;
  biases?: Uint8Array;
}

/**
 * Converts the matrix `base` of the checkpoint into `format`, yielding ~4 MB of source rows at a time. MLX
 * weights in the pack's own bit width are copied as they are (bits, scales and biases).
 */
async function* convertRows(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  base: string,
  rows: number,
  cols: number,
  format: PackFormat,
): AsyncGenerator<ConvertedRows> {
  const quantizedSource = ckpt.has(`${base}.scales`);
  if (quantizedSource) {
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
  const step = chunkRows(cols);
  const f32 = new Float32Array(Math.min(step, rows) * cols);
  const bytes = (u: Uint16Array) => new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const r1 = Math.min(rows, r0 + step), n = r1 - r0;
    if (quantizedSource && copiesQuantized(cfg, format)) {
      const q = await readMlxRows(ckpt, base, r0, r1, rows, cols, cfg.quantization!.bits);
      yield { r0, data: q.data, scales: bytes(q.scales), biases: bytes(q.biases) };
      continue;
    }
    const rowsF32 = f32.subarray(0, n * cols);
    await readRowsF32(ckpt, base, r0, r1, rowsF32);
    if (format === "q4" || format === "q8") {
      const bits = format === "q4" ? 4 : 8;
      const q = quantize(rowsF32, cols, { bits, scaleDtype: "f16", name: base, rowOffset: r0 });
      yield { r0, data: q.q, scales: bytes(q.scales), biases: bytes(q.biases) };
    } else {
      yield { r0, data: encodeDense(rowsF32, format) };
    }
  }
}

/**
 * Streams the matrix `base` into `slot` at absolute offset `at` (the row data as it is converted; scales
 * and biases, 1/16 of the q4 data, are held until the data is written).
 */
async function convertMatrix(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  base: string,
  slot: MatrixSlot,
  format: PackFormat,
  at: number,
  out: Out,
): Promise<void> {
  const scales = new Uint8Array(slot.rows * slot.scaleRowBytes),
    biases = new Uint8Array(slot.rows * slot.scaleRowBytes);
  await out.padTo(at + slot.offset);
  for await (const c of convertRows(ckpt, cfg, base, slot.rows, slot.cols, format)) {
    await out.emit(c.data);
    if (c.scales) scales.set(c.scales, c.r0 * slot.scaleRowBytes);
    if (c.biases) biases.set(c.biases, c.r0 * slot.scaleRowBytes);
  }
  if (slot.scaleRowBytes) {
    await out.padTo(at + slot.scalesOffset);
    await out.emit(scales);
    await out.padTo(at + slot.biasesOffset);
    await out.emit(biases);
  }
}

/** A whole converted matrix in memory (the MLP's, which the pack stores in column chunks). */
interface ConvertedMatrix {
  data: Uint8Array;
  scales: Uint8Array;
  biases: Uint8Array;
  rowBytes: number;
  scaleRowBytes: number;
}

async function convertWhole(
  ckpt: Checkpoint,
  cfg: ModelConfig,
  base: string,
  rows: number,
  cols: number,
  format: PackFormat,
): Promise<ConvertedMatrix> {
  const shape = matrixSlot(rows, cols, format, false, 0);
  const m: ConvertedMatrix = {
    data: new Uint8Array(rows * shape.rowBytes),
    scales: new Uint8Array(rows * shape.scaleRowBytes),
    biases: new Uint8Array(rows * shape.scaleRowBytes),
    rowBytes: shape.rowBytes,
    scaleRowBytes: shape.scaleRowBytes,
  };
  for await (const c of convertRows(ckpt, cfg, base, rows, cols, format)) {
    m.data.set(c.data, c.r0 * shape.rowBytes);
    if (c.scales) m.scales.set(c.scales, c.r0 * shape.scaleRowBytes);
    if (c.biases) m.biases.set(c.biases, c.r0 * shape.scaleRowBytes);
  }
  return m;
}

/**
 * Writes the block of `m` made of rows [r0, r0 + slot.rows) and columns [c0, c0 + slot.cols) into `slot`
 * at absolute offset `at` (row slices of gate/up, column blocks of down).
 */
async function emitBlock(m: ConvertedMatrix, r0: number, c0: number, slot: MatrixSlot, at: number, out: Out) {
  const colByte = c0 * (slot.rowBytes / slot.cols), colGroupByte = slot.scaleRowBytes ? (c0 / GROUP) * 2 : 0;
  const gather = (src: Uint8Array, srcRow: number, start: number, width: number) => {
    const dst = new Uint8Array(slot.rows * width);
    for (let r = 0; r < slot.rows; r++) {
      dst.set(src.subarray((r0 + r) * srcRow + start, (r0 + r) * srcRow + start + width), r * width);
    }
    return dst;
  };
  await out.padTo(at + slot.offset);
  await out.emit(gather(m.data, m.rowBytes, colByte, slot.rowBytes));
  if (slot.scaleRowBytes) {
    await out.padTo(at + slot.scalesOffset);
    await out.emit(gather(m.scales, m.scaleRowBytes, colGroupByte, slot.scaleRowBytes));
    await out.padTo(at + slot.biasesOffset);
    await out.emit(gather(m.biases, m.scaleRowBytes, colGroupByte, slot.scaleRowBytes));
  }
}

function encodeDense(x: Float32Array, format: "f32" | "f16" | "bf16"): Uint8Array {
  if (format === "f32") return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  const out = new Uint16Array(x.length);
  if (format === "f16") new Float16Array(out.buffer).set(x);
  else f32ToBf16(x, out);
  return new Uint8Array(out.buffer);
}

/**
 * Writes a pack for `ckpt` to `sink`, streaming: the embedding and the attention matrices ~4 MB of rows at a
 * time; one layer's three MLP matrices whole (converted), since they are stored in column chunks.
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
  const vocab = matrixSlot(cfg.vocabSize, cfg.hiddenSize, format, plan.bf16Scales, 0);
  let written = 0;
  const blocks = blockRanges(header, layout, vocab);
  const inFileOrder = blocks.toSorted((a, b) => a.start - b.start);
  let k = 0; // the first block that does not end before `written`
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
      if (offset > written) await out.emit(new Uint8Array(offset - written));
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

  await convertMatrix(ckpt, cfg, EMBED_TOKENS, vocab, format, plan.embed.offset, out);
  progress("embedding");
  for (let l = 0; l < cfg.numLayers; l++) {
    const at = plan.layers[l].offset;
    for (const name of ATTENTION) {
      await convertMatrix(
        ckpt,
        cfg,
        layerTensor(l, LINEAR_PREFIX[name]),
        layout.attention[name],
        format,
        at,
        out,
      );
    }
    await vector(`${layerTensor(l, LINEAR_PREFIX.q_proj)}.bias`, layout.qBias, at);
    await vector(`${layerTensor(l, LINEAR_PREFIX.k_proj)}.bias`, layout.kBias, at);
    await vector(`${layerTensor(l, LINEAR_PREFIX.v_proj)}.bias`, layout.vBias, at);
    await vector(`${layerTensor(l, "input_layernorm")}.weight`, layout.inputNorm, at);
    await vector(`${layerTensor(l, "post_attention_layernorm")}.weight`, layout.postNorm, at);
    const [I, d] = linearShape(cfg, "gate_proj");
    const gate = await convertWhole(ckpt, cfg, layerTensor(l, LINEAR_PREFIX.gate_proj), I, d, format);
    const up = await convertWhole(ckpt, cfg, layerTensor(l, LINEAR_PREFIX.up_proj), I, d, format);
    const down = await convertWhole(ckpt, cfg, layerTensor(l, LINEAR_PREFIX.down_proj), d, I, format);
    for (const c of layout.chunks) {
      await emitBlock(gate, c.c0, 0, c.gate, at + c.offset, out);
      await emitBlock(up, c.c0, 0, c.up, at + c.offset, out);
      await emitBlock(down, 0, c.c0, c.down, at + c.offset, out);
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
    await convertMatrix(ckpt, cfg, LM_HEAD, vocab, format, plan.lmHead.offset, out);
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
export function blockRanges(
  header: Pick<PackHeader, "layers" | "norm" | "embed" | "lmHead" | "vocabBlock" | "config">,
  layout: LayerLayout,
  vocab: MatrixSlot,
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
    for (const part of v.parts) {
      for (let r0 = 0; r0 < vocab.rows; r0 += v.rows) {
        const start = section.offset + part.offset + r0 * part.rowBytes;
        const end = start + (Math.min(vocab.rows, r0 + v.rows) - r0) * part.rowBytes;
        blocks.push({ start, end, sum: new Checksum() });
      }
    }
  }
  return blocks;
}
