/**
 * Opening a weight pack (written by `pack_writer.ts`): the header checked against what the caller expects,
 * and reads of a layer, an MLP chunk or vocabulary rows straight into caller buffers.
 *
 * @module
 */
import type { WeightSource } from "../io/source.ts";
import type { ModelConfig } from "./config.ts";
import {
  type LayerLayout,
  layerLayout,
  type MatrixSlot,
  matrixSlot,
  type PackFormat,
} from "./pack_layout.ts";
import { blockCount, type PackHeader, planPack, readPackHeader, StalePackError } from "./pack_header.ts";
import { Checksum } from "../io/checksum.ts";

/** An opened pack: its header, the layer layout, and reads into caller buffers. */
export interface Pack {
  readonly header: PackHeader;
  readonly config: ModelConfig;
  readonly layout: LayerLayout;
  /** Layout of the embedding (and of an untied LM head), offsets relative to the section. */
  readonly vocabSlot: MatrixSlot;
  readonly source: WeightSource;
  /** Reads layer `l`'s blob into `into` (exactly `layout.bytes` long). */
  readLayer(l: number, into: Uint8Array): Promise<void>;
  /** Reads layer `l`'s attention block into `into` (exactly `layout.attentionBytes` long). */
  readAttention(l: number, into: Uint8Array): Promise<void>;
  /** Reads MLP chunk `c` of layer `l` into `into` (exactly `layout.chunks[c].bytes` long). */
  readMlpChunk(l: number, c: number, into: Uint8Array): Promise<void>;
  /** Reads the final norm weight. */
  readNorm(into: Float32Array): Promise<void>;
  /**
   * Reads vocabulary rows [r0, r1) of the embedding (or the untied LM head with `head: true`) into views
   * sized exactly for those rows: row data and, for quantized packs, scales and biases.
   */
  readVocabRows(r0: number, r1: number, into: VocabRowViews, head?: boolean): Promise<void>;
}

/** Caller buffers for vocabulary rows (each exactly `rows ×` its row size). */
export interface VocabRowViews {
  data: Uint8Array;
  scales?: Uint8Array;
  biases?: Uint8Array;
}

/** Options for {@linkcode openPack}. */
export interface OpenPackOptions {
  /** Refuse a pack whose fingerprint differs (it was made from other weights). */
  fingerprint?: string;
  /** Refuse a pack of another format. */
  format?: PackFormat;
}

/** Opens a pack and checks it against what the caller expects. */
export async function openPack(source: WeightSource, options: OpenPackOptions = {}): Promise<Pack> {
  const size = await source.size();
  const header = await readPackHeader(source, size);
  if (header.fileBytes !== size) {
    throw new StalePackError(
      `${source.name}: file is ${size} bytes, header says ${header.fileBytes} (truncated?)`,
    );
  }
  if (options.fingerprint !== undefined && header.fingerprint !== options.fingerprint) {
    throw new StalePackError(`${source.name}: made from different weights than ${header.source}`);
  }
  if (options.format !== undefined && header.format !== options.format) {
    throw new StalePackError(`${source.name}: format ${header.format}, wanted ${options.format}`);
  }
  const expect = planPack(header.config, header.format, header.mlpChunk);
  if (
    JSON.stringify(expect.layers) !== JSON.stringify(header.layers) || expect.fileBytes !== header.fileBytes
  ) {
    throw new StalePackError(`${source.name}: layout does not match this version of mesp`);
  }
  const cfg = header.config;
  const layout = layerLayout(cfg, header.format, header.bf16Scales, header.mlpChunk);
  const vocabSlot = matrixSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales, 0);
  const verify = blockVerifier(source, header, layout, await readChecksums(source, header, layout));
  return {
    header,
    config: cfg,
    layout,
    vocabSlot,
    source,
    readLayer: (l, into) => {
      if (into.length !== layout.bytes) {
        throw new Error(`layer buffer is ${into.length} bytes, need ${layout.bytes}`);
      }
      return source.read(header.layers[l].offset, into).then(() => {
        verify.block(l, 0, into.subarray(0, layout.attentionBytes));
        layout.chunks.forEach((ch, c) =>
          verify.block(l, 1 + c, into.subarray(ch.offset, ch.offset + ch.bytes))
        );
      });
    },
    readAttention: (l, into) => {
      if (into.length !== layout.attentionBytes) {
        throw new Error(`attention buffer must be ${layout.attentionBytes} bytes`);
      }
      return source.read(header.layers[l].offset, into).then(() => verify.block(l, 0, into));
    },
    readMlpChunk: (l, c, into) => {
      const ch = layout.chunks[c];
      if (into.length !== ch.bytes) throw new Error(`MLP chunk ${c} buffer must be ${ch.bytes} bytes`);
      return source.read(header.layers[l].offset + ch.offset, into).then(() => verify.block(l, 1 + c, into));
    },
    readNorm: (into) => {
      const bytes = new Uint8Array(into.buffer, into.byteOffset, cfg.hiddenSize * 4);
      return source.read(header.norm.offset, bytes).then(() => verify.norm(bytes));
    },
    async readVocabRows(r0, r1, into, head = false) {
      const base = head ? header.lmHead?.offset : header.embed.offset;
      if (base === undefined) throw new Error("this model has no separate LM head (tied embeddings)");
      const s = vocabSlot;
      if (r0 < 0 || r1 > cfg.vocabSize || into.data.length !== (r1 - r0) * s.rowBytes) {
        throw new Error(`vocabulary rows [${r0}, ${r1}) do not fit the vocabulary or the buffer`);
      }
      // all parts at once: a source that can runs them concurrently
      const data = source.read(base + s.offset + r0 * s.rowBytes, into.data);
      if (!s.scaleRowBytes) return await data;
      await Promise.all([
        data,
        source.read(base + s.scalesOffset + r0 * s.scaleRowBytes, into.scales!),
        source.read(base + s.biasesOffset + r0 * s.scaleRowBytes, into.biases!),
      ]);
    },
  };
}

/** Reads the pack's checksum table (two u32 per block, see {@linkcode blockCount}). */
async function readChecksums(
  source: WeightSource,
  header: PackHeader,
  layout: LayerLayout,
): Promise<Uint32Array> {
  const n = blockCount(header.layers.length, layout.chunks.length);
  if (header.checksums?.bytes !== n * 8) throw new StalePackError(`${source.name}: no checksum table`);
  const table = new Uint32Array(n * 2);
  await source.read(header.checksums.offset, new Uint8Array(table.buffer));
  return table;
}

/**
 * Checks blocks against the table as they are read. Each block is verified the first time this process
 * reads it (later reads of an unchanged file return the same bytes), so the cost is one pass over the
 * weights per process, not per step.
 */
function blockVerifier(source: WeightSource, header: PackHeader, layout: LayerLayout, table: Uint32Array) {
  const per = 1 + layout.chunks.length;
  const done = new Uint8Array(table.length / 2);
  const sum = new Checksum();
  const check = (i: number, bytes: Uint8Array, what: () => string) => {
    if (done[i]) return;
    if (!sum.reset().update(bytes).equals(table[2 * i], table[2 * i + 1])) {
      throw new Error(
        `${source.name}: ${what()} fails its checksum: the pack file is damaged; delete it and the next ` +
          `run rebuilds it from ${header.source}`,
      );
    }
    done[i] = 1;
  };
  return {
    block: (l: number, b: number, bytes: Uint8Array) =>
      check(l * per + b, bytes, () => `layer ${l} ${b === 0 ? "attention block" : `MLP chunk ${b - 1}`}`),
    norm: (bytes: Uint8Array) => check(done.length - 1, bytes, () => "the final norm"),
  };
}
