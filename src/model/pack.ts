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
import {
  blockCount,
  type PackHeader,
  planPack,
  readPackHeader,
  StalePackError,
  vocabBlockIndex,
  type VocabBlocks,
  vocabBlocks,
} from "./pack_header.ts";
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
   * sized exactly for those rows: row data and, for quantized packs, scales and biases. The first read of a
   * row verifies its whole checksummed block (a block the rows only partly cover is read again whole, into
   * one buffer of `header.vocabBlock` rows the pack keeps).
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
  const expect = Number.isSafeInteger(header.vocabBlock) && header.vocabBlock > 0
    ? planPack(header.config, header.format, header.mlpChunk, header.vocabBlock)
    : undefined;
  if (
    !expect || JSON.stringify(expect.layers) !== JSON.stringify(header.layers) ||
    expect.fileBytes !== header.fileBytes
  ) {
    throw new StalePackError(`${source.name}: layout does not match this version of mesp`);
  }
  const cfg = header.config;
  const layout = layerLayout(cfg, header.format, header.bf16Scales, header.mlpChunk);
  const vocabSlot = matrixSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales, 0);
  const vocab = vocabBlocks(
    cfg,
    vocabSlot,
    header.vocabBlock,
    blockCount(cfg.numLayers, layout.chunks.length),
  );
  const verify = blockVerifier(source, header, layout, vocab, await readChecksums(source, header, vocab));
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
      await (s.scaleRowBytes
        ? Promise.all([
          data,
          source.read(base + s.scalesOffset + r0 * s.scaleRowBytes, into.scales!),
          source.read(base + s.biasesOffset + r0 * s.scaleRowBytes, into.biases!),
        ])
        : data);
      await verify.vocabRows(head ? 1 : 0, base, r0, r1, into);
    },
  };
}

/** Reads the pack's checksum table (two u32 per block, see {@linkcode blockCount}, {@linkcode vocabBlocks}). */
async function readChecksums(
  source: WeightSource,
  header: PackHeader,
  vocab: VocabBlocks,
): Promise<Uint32Array> {
  const n = vocab.first + vocab.count;
  if (header.checksums?.bytes !== n * 8) throw new StalePackError(`${source.name}: no checksum table`);
  const table = new Uint32Array(n * 2);
  await source.read(header.checksums.offset, new Uint8Array(table.buffer));
  return table;
}

/**
 * Checks blocks against the table as they are read. Each block is verified the first time this process
 * reads it (later reads of an unchanged file return the same bytes), so the cost is one pass over the
 * weights per process, not per step; a block already verified costs one lookup.
 */
function blockVerifier(
  source: WeightSource,
  header: PackHeader,
  layout: LayerLayout,
  vocab: VocabBlocks,
  table: Uint32Array,
) {
  const per = 1 + layout.chunks.length, normIndex = vocab.first - 1, V = header.config.vocabSize;
  const done = new Uint8Array(table.length / 2);
  const sum = new Checksum();
  const name = (i: number) => {
    if (i < normIndex) {
      const b = i % per;
      return `layer ${(i - b) / per} ${b === 0 ? "attention block" : `MLP chunk ${b - 1}`}`;
    }
    if (i === normIndex) return "the final norm";
    const j = i - vocab.first, b = j % vocab.perPart, p = Math.floor(j / vocab.perPart) % vocab.parts.length;
    const m = Math.floor(j / (vocab.perPart * vocab.parts.length)), r0 = b * vocab.rows;
    return `${m ? "the LM head" : "the embedding"} rows [${r0}, ${Math.min(V, r0 + vocab.rows)}) ` +
      `(${vocab.parts[p].name})`;
  };
  const check = (i: number, bytes: Uint8Array) => {
    if (done[i]) return;
    if (!sum.reset().update(bytes).equals(table[2 * i], table[2 * i + 1])) {
      throw new Error(
        `${source.name}: ${name(i)} fails its checksum: the pack file is damaged; delete it and the next ` +
          `run rebuilds it from ${header.source}`,
      );
    }
    done[i] = 1;
  };
  // vocabulary blocks the rows read only partly cover are read whole into one buffer, one at a time
  let blockBuffer: Uint8Array | undefined;
  let queue: Promise<void> = Promise.resolve();
  const checkWhole = (i: number, offset: number, bytes: number) => {
    const run = queue.then(async () => {
      if (done[i]) return;
      blockBuffer ??= new Uint8Array(vocab.rows * vocab.parts[0].rowBytes);
      const into = blockBuffer.subarray(0, bytes);
      await source.read(offset, into);
      check(i, into);
    });
    queue = run.catch(() => {});
    return run;
  };
  return {
    block: (l: number, b: number, bytes: Uint8Array) => check(l * per + b, bytes),
    norm: (bytes: Uint8Array) => check(normIndex, bytes),
    /** Verifies the blocks of rows [r0, r1) of vocabulary matrix `m` (at `base`), just read into `into`. */
    async vocabRows(m: number, base: number, r0: number, r1: number, into: VocabRowViews) {
      for (let p = 0; p < vocab.parts.length && r0 < r1; p++) {
        const part = vocab.parts[p], view = p === 0 ? into.data : p === 1 ? into.scales! : into.biases!;
        for (let b = Math.floor(r0 / vocab.rows); b * vocab.rows < r1; b++) {
          const i = vocabBlockIndex(vocab, m, p, b);
          if (done[i]) continue;
          const b0 = b * vocab.rows, b1 = Math.min(V, b0 + vocab.rows);
          if (b0 >= r0 && b1 <= r1) {
            check(i, view.subarray((b0 - r0) * part.rowBytes, (b1 - r0) * part.rowBytes));
          } else await checkWhole(i, base + part.offset + b0 * part.rowBytes, (b1 - b0) * part.rowBytes);
        }
      }
    },
  };
}
