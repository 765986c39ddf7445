/**
 * Opening a weight pack (written by `pack_writer.ts`): the header checked against what the caller expects,
 * and reads of a layer, an MLP chunk or vocabulary rows straight into caller buffers.
 *
 * @module
 */
import { checkWeightSource, type WeightSource } from "../io/source.ts";
import type { ModelConfig } from "./config.ts";
import { type LayerLayout, layerLayout, type PackFormat, type VocabSlot, vocabSlot } from "./pack_layout.ts";
import {
  blockCount,
  type PackHeader,
  planPack,
  readPackHeader,
  StalePackError,
  type VocabBlocks,
  vocabBlocks,
} from "./pack_header.ts";
import { Checksum } from "../io/checksum.ts";
import { VocabReader, type VocabRowViews } from "./pack_vocab.ts";
import { describeValue, isThenable } from "../util/describe.ts";

export type { VocabRowViews } from "./pack_vocab.ts";

/** An opened pack: its header, the layer layout, and reads into caller buffers. */
export interface Pack {
  readonly header: PackHeader;
  readonly config: ModelConfig;
  readonly layout: LayerLayout;
  /** Layout of the embedding (and of an untied LM head): row-interleaved, see {@linkcode VocabSlot}. */
  readonly vocabSlot: VocabSlot;
  readonly source: WeightSource;
  /** Reads layer `l`'s blob into `into` (exactly `layout.bytes` long). */
  readLayer(l: number, into: Uint8Array): Promise<void>;
  /**
   * Reads layer `l`'s attention block into `into` (exactly `layout.attentionBytes` long). `through` (≥ l):
   * the caller reads layers l…through next, in order (each layer's attention block, then its MLP chunks):
   * a remote source answers them all with one response.
   */
  readAttention(l: number, into: Uint8Array, through?: number): Promise<void>;
  /** Reads MLP chunk `c` of layer `l` into `into` (exactly `layout.chunks[c].bytes` long). */
  readMlpChunk(l: number, c: number, into: Uint8Array): Promise<void>;
  /** Reads the final norm weight. */
  readNorm(into: Float32Array): Promise<void>;
  /**
   * Reads vocabulary rows [r0, r1) of the embedding (or the untied LM head with `head: true`) into views
   * sized exactly for those rows: row data and, for quantized packs, scales and biases. One read of the
   * stored rows (a row's data, scales and biases lie together); the first read of a row verifies its whole
   * checksummed block (a block the rows only partly cover is read whole, through one buffer the pack keeps).
   */
  readVocabRows(r0: number, r1: number, into: VocabRowViews, head?: boolean): Promise<void>;
  /**
   * Gathers the rows of the token ids `ids[0..count)` (ids outside the vocabulary are skipped): sorted, each
   * once, neighbours read as one range, so that a step's embedding (or target) rows cost a few reads
   * instead of one each. A later `readVocabRows(id, id + 1)` of a gathered id is then served from memory,
   * until the next gather of the same matrix.
   */
  prefetchRows(ids: ArrayLike<number>, count: number, head?: boolean): Promise<void>;
  /**
   * Copies row `id` into `into` (views sized for one row) when the last completed `prefetchRows` of that
   * matrix gathered it, and says whether it did: synchronous, so a step's token rows cost no promise each.
   * False for a row not gathered (then `readVocabRows(id, id + 1)` reads it).
   */
  copyGatheredRow(id: number, into: VocabRowViews, head?: boolean): boolean;
  /**
   * Announces token ids a later `prefetchRows` of the same matrix will gather (the next sequence's, or an
   * untied head's targets): the next pass over the whole matrix (chunks read from row 0 on, as the loss
   * reads them) keeps their rows as they go by, so that gather reads nothing. A hint: without a pass
   * between, the gather reads the rows as before. The last announcement not yet taken up by a pass counts.
   */
  expectRows(ids: ArrayLike<number>, count: number, head?: boolean): void;
}

/** Options for {@linkcode openPack}. */
export interface OpenPackOptions {
  /** Refuse a pack whose fingerprint differs (it was made from other weights). */
  fingerprint?: string;
  /** Refuse a pack of another format. */
  format?: PackFormat;
  /**
   * `prefetchRows` reads token rows closer than this many bytes as one range (default 64 KB, or the
   * source's `requestBytes` when larger: 1 MB for `fetchSource`; the longest range is at least 1 MB, and
   * unbounded where the source has a `requestBytes`, which answers a range as one response however long).
   * Larger trades bytes for fewer reads: for 256 random tokens of the 0.5B's q4 rows from a local file,
   * about 205 reads and 1.7 MB at 64 KB, 107 and 17 MB at 256 KB, 57 and 43 MB at 1 MB.
   */
  gatherGapBytes?: number;
}

/** Opens a pack and checks it against what the caller expects. */
export async function openPack(source: WeightSource, options: OpenPackOptions = {}): Promise<Pack> {
  checkWeightSource(source, "openPack");
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
  const vocab = vocabSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales);
  const blocks = vocabBlocks(cfg, vocab, header.vocabBlock, blockCount(cfg.numLayers, layout.chunks.length));
  // the final norm is read now, with the checksum table when that follows it closely (a tied model's: one
  // remote response for both), and kept: a training step's first read would be one request more for it
  const norm = new Uint8Array(cfg.hiddenSize * 4), table = header.checksums;
  if (table && table.offset - (header.norm.offset + norm.length) <= (source.requestBytes ?? 0)) {
    source.expect?.(header.norm.offset, table.offset + table.bytes);
  }
  await source.read(header.norm.offset, norm);
  const verify = blockVerifier(source, header, layout, blocks, await readChecksums(source, header, blocks));
  const rows = new VocabReader(
    source,
    vocab,
    blocks,
    [header.embed.offset, header.lmHead?.offset],
    verify,
    options.gatherGapBytes,
  );
  // a layer's reads run in file order to its end: a remote source can answer them as one response
  const layerEnd = (l: number) => header.layers[l].offset + layout.bytes;
  const checkRows = (r0: number, r1: number, into: VocabRowViews, head: boolean) => {
    if (head && !header.lmHead) throw new Error("this model has no separate LM head (tied embeddings)");
    if (!(r0 >= 0 && r1 >= r0 && r1 <= cfg.vocabSize) || into.data.length !== (r1 - r0) * vocab.rowBytes) {
      throw new Error(`vocabulary rows [${r0}, ${r1}) do not fit the vocabulary or the buffer`);
    }
  };
  return {
    header,
    config: cfg,
    layout,
    vocabSlot: vocab,
    source,
    readLayer: (l, into) => {
      if (into.length !== layout.bytes) {
        throw new Error(`layer buffer is ${into.length} bytes, need ${layout.bytes}`);
      }
      source.expect?.(header.layers[l].offset, layerEnd(l));
      return source.read(header.layers[l].offset, into).then(() => {
        verify.block(l, 0, into.subarray(0, layout.attentionBytes));
        layout.chunks.forEach((ch, c) =>
          verify.block(l, 1 + c, into.subarray(ch.offset, ch.offset + ch.bytes))
        );
      });
    },
    readAttention: (l, into, through = l) => {
      if (into.length !== layout.attentionBytes) {
        throw new Error(`attention buffer must be ${layout.attentionBytes} bytes`);
      }
      if (!(Number.isInteger(through) && through >= l && through < cfg.numLayers)) {
        throw new Error(`layers ${l}…${through} are not a run of this model's ${cfg.numLayers} layers`);
      }
      source.expect?.(header.layers[l].offset, layerEnd(through));
      return source.read(header.layers[l].offset, into).then(() => verify.block(l, 0, into));
    },
    readMlpChunk: (l, c, into) => {
      const ch = layout.chunks[c];
      if (into.length !== ch.bytes) throw new Error(`MLP chunk ${c} buffer must be ${ch.bytes} bytes`);
      source.expect?.(header.layers[l].offset + ch.offset, layerEnd(l));
      return source.read(header.layers[l].offset + ch.offset, into).then(() => verify.block(l, 1 + c, into));
    },
    readNorm: (into) => {
      try {
        verify.norm(norm);
        new Uint8Array(into.buffer, into.byteOffset, norm.length).set(norm);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    },
    readVocabRows(r0, r1, into, head = false) {
      try {
        checkRows(r0, r1, into, head);
      } catch (err) {
        return Promise.reject(err);
      }
      if (
        into.scales && (into.scales.length !== (r1 - r0) * vocab.scaleRowBytes ||
          into.biases?.length !== into.scales.length)
      ) {
        return Promise.reject(
          new Error(`vocabulary rows [${r0}, ${r1}): scales or biases of the wrong size`),
        );
      }
      return rows.read(head ? 1 : 0, r0, r1, into);
    },
    prefetchRows(ids, count, head = false) {
      if (head && !header.lmHead) {
        return Promise.reject(new Error("this model has no separate LM head (tied embeddings)"));
      }
      return rows.prefetch(head ? 1 : 0, ids, Math.min(count, ids.length));
    },
    copyGatheredRow(id, into, head = false) {
      if (head && !header.lmHead) throw new Error("this model has no separate LM head (tied embeddings)");
      return rows.copyGathered(head ? 1 : 0, id, into);
    },
    expectRows(ids, count, head = false) {
      if (head && !header.lmHead) throw new Error("this model has no separate LM head (tied embeddings)");
      rows.expect(head ? 1 : 0, ids, Math.min(count, ids.length));
    },
  };
}

/**
 * Throws unless `pack` is what {@linkcode openPack} resolves to, saying what was passed instead: `where` (the
 * function, e.g. `train`) would otherwise fail on a missing property deep inside.
 */
export function checkPack(pack: unknown, where: string): asserts pack is Pack {
  const p = pack as Partial<Pack> | null | undefined;
  if (
    p && typeof p === "object" && typeof p.config === "object" && p.config !== null &&
    typeof p.header === "object" && typeof p.readLayer === "function"
  ) return;
  const source = p as Partial<WeightSource> | null | undefined;
  const got = isThenable(pack)
    ? "a Promise — did you forget await?"
    : typeof source?.read === "function" && typeof source.size === "function"
    ? "a weight source: pass it to openPack first"
    : describeValue(pack);
  throw new TypeError(
    `${where}: the first argument must be an opened pack (await openPack(source)); got ${got}`,
  );
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
    const j = i - vocab.first,
      b = j % vocab.perMatrix,
      m = Math.floor(j / vocab.perMatrix),
      r0 = b * vocab.rows;
    return `${m ? "the LM head" : "the embedding"} rows [${r0}, ${Math.min(V, r0 + vocab.rows)})`;
  };
  const verify = (i: number, s: Checksum) => {
    if (done[i]) return;
    if (!s.equals(table[2 * i], table[2 * i + 1])) {
      throw new Error(
        `${source.name}: ${name(i)} fails its checksum: the pack file is damaged; delete it and the next ` +
          `run rebuilds it from ${header.source}`,
      );
    }
    done[i] = 1;
  };
  const check = (i: number, bytes: Uint8Array) => {
    if (!done[i]) verify(i, sum.reset().update(bytes));
  };
  return {
    block: (l: number, b: number, bytes: Uint8Array) => check(l * per + b, bytes),
    norm: (bytes: Uint8Array) => check(normIndex, bytes),
    done: (i: number) => done[i] === 1,
    verify,
  };
}
