/**
 * The pack header: what a pack file holds and where (format, model config, sections, source fingerprint),
 * and the plan of a whole pack file computed from a config.
 *
 * File layout (little-endian):
 * ```
 * "MESPPACK" | u32 version | u32 header bytes | header JSON (padded to 64) | sections, each 64-aligned
 * ```
 *
 * @module
 */
import type { WeightSource } from "../io/source.ts";
import type { ModelConfig } from "./config.ts";
import {
  align,
  copiesQuantized,
  layerLayout,
  MLP_CHUNK,
  type PackFormat,
  type VocabSlot,
  vocabSlot,
} from "./pack_layout.ts";

/** The first 8 bytes of every pack. */
export const MAGIC = "MESPPACK";
/** The pack format version this code reads and writes. */
export const VERSION = 5;
/** Bytes before the header JSON: magic, version, header length. */
const PRELUDE_BYTES = 16;
/**
 * How far the prelude and the header are announced as one read (`WeightSource.expect`): past the header
 * allowance (`planPack`) of packs of up to 191 layers; a longer header is simply a read of its own.
 */
const HEADER_READ_BYTES = 16 << 10;

/** A section of the pack file. */
export interface Section {
  offset: number;
  bytes: number;
}

/** The JSON header of a pack. */
export interface PackHeader {
  version: number;
  format: PackFormat;
  bf16Scales: boolean;
  /** Columns of the MLP's intermediate dimension per stored chunk. */
  mlpChunk: number;
  /** Vocabulary rows per checksummed block of the embedding and an untied LM head. */
  vocabBlock: number;
  config: ModelConfig;
  /** Fingerprint of the source checkpoint (see {@linkcode checkpointFingerprint}). */
  fingerprint: string;
  /** Where the pack came from, for messages. */
  source: string;
  embed: Section;
  layers: Section[];
  norm: Section;
  lmHead?: Section;
  /** Table of checksums, two u32 each (see {@linkcode blockCount}, {@linkcode vocabBlocks}), written last. */
  checksums: Section;
  /** Total file size. */
  fileBytes: number;
}

/** Plans the whole pack: header (without fingerprint/source) and sections. */
export function planPack(
  cfg: ModelConfig,
  format: PackFormat,
  mlpChunk = MLP_CHUNK,
  vocabBlock = VOCAB_BLOCK,
): Omit<PackHeader, "fingerprint" | "source"> {
  const bf16Scales = copiesQuantized(cfg, format);
  const layout = layerLayout(cfg, format, bf16Scales, mlpChunk);
  // sections start after a generous header allowance, fixed so offsets never depend on the header text
  let at = PRELUDE_BYTES + align(4096 + cfg.numLayers * 64);
  const section = (bytes: number): Section => {
    const s = { offset: align(at), bytes };
    at = s.offset + bytes;
    return s;
  };
  const vocab = vocabSlot(cfg.vocabSize, cfg.hiddenSize, format, bf16Scales);
  const embed = section(vocab.bytes);
  const layers = Array.from({ length: cfg.numLayers }, () => section(layout.bytes));
  const norm = section(cfg.hiddenSize * 4);
  const lmHead = cfg.tieWordEmbeddings ? undefined : section(vocab.bytes);
  const first = blockCount(cfg.numLayers, layout.chunks.length);
  const checksums = section((first + vocabBlocks(cfg, vocab, vocabBlock, first).count) * 8);
  return {
    version: VERSION,
    format,
    bf16Scales,
    mlpChunk,
    vocabBlock,
    config: cfg,
    embed,
    layers,
    norm,
    lmHead,
    checksums,
    fileBytes: align(at),
  };
}

/**
 * Blocks with a checksum before the vocabulary's: per layer its attention block then each MLP chunk (the
 * units the engine reads), then the final norm. Block `l·(1 + chunks) + 0` is layer l's attention, `+ 1 + c`
 * its chunk c. The vocabulary blocks follow (see {@linkcode vocabBlocks}).
 */
export function blockCount(layers: number, chunks: number): number {
  return layers * (1 + chunks) + 1;
}

/**
 * Default rows per checksummed vocabulary block: the engine's default LM-head chunk, so reading a chunk
 * verifies its own bytes, while a token's row costs one block read the first time.
 */
export const VOCAB_BLOCK = 512;

/**
 * The checksummed blocks of the embedding (matrix 0) and an untied LM head (matrix 1): `rows` stored
 * (row-interleaved, see {@linkcode VocabSlot}) rows each, the last one shorter, so a block is one contiguous
 * range. In the table they follow the blocks of {@linkcode blockCount} from index `first`, matrix by matrix,
 * in row order.
 */
export interface VocabBlocks {
  rows: number;
  /** Bytes of a stored row. */
  rowStride: number;
  /** Blocks per matrix. */
  perMatrix: number;
  first: number;
  /** Blocks of every matrix. */
  count: number;
}

/** The vocabulary blocks of a pack whose vocabulary matrices are laid out as `slot` (see {@linkcode VocabBlocks}). */
export function vocabBlocks(cfg: ModelConfig, slot: VocabSlot, rows: number, first: number): VocabBlocks {
  const perMatrix = Math.ceil(cfg.vocabSize / rows);
  return {
    rows,
    rowStride: slot.rowStride,
    perMatrix,
    first,
    count: (cfg.tieWordEmbeddings ? 1 : 2) * perMatrix,
  };
}

/** Table index of block `b` of vocabulary matrix `m` (0 the embedding, 1 the LM head). */
export function vocabBlockIndex(v: VocabBlocks, m: number, b: number): number {
  return v.first + m * v.perMatrix + b;
}

/** Thrown when a pack is stale, foreign, truncated or corrupt; callers rebuild it. */
export class StalePackError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StalePackError";
  }
}

/** The start of a pack file: prelude and header JSON. */
export function encodePackHeader(header: PackHeader): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (PRELUDE_BYTES + json.length > header.embed.offset) {
    throw new Error(`pack header too large (${json.length} bytes)`);
  }
  const out = new Uint8Array(PRELUDE_BYTES + json.length);
  out.set(new TextEncoder().encode(MAGIC));
  new DataView(out.buffer).setUint32(8, VERSION, true);
  new DataView(out.buffer).setUint32(12, json.length, true);
  out.set(json, PRELUDE_BYTES);
  return out;
}

/** Reads the header of the pack in `source` (`size` bytes); a {@linkcode StalePackError} if it is not one. */
export async function readPackHeader(source: WeightSource, size: number): Promise<PackHeader> {
  if (size < PRELUDE_BYTES) {
    throw new StalePackError(`${source.name}: not a mesp pack (too short: ${size} bytes)`);
  }
  // the prelude and the header JSON follow one another: a remote source answers both with one response
  source.expect?.(0, Math.min(size, HEADER_READ_BYTES));
  const pre = new Uint8Array(PRELUDE_BYTES);
  await source.read(0, pre);
  if (new TextDecoder().decode(pre.subarray(0, 8)) !== MAGIC) {
    throw new StalePackError(`${source.name}: not a mesp pack`);
  }
  const dv = new DataView(pre.buffer);
  if (dv.getUint32(8, true) !== VERSION) {
    throw new StalePackError(
      `${source.name}: pack version ${dv.getUint32(8, true)}, this mesp reads version ${VERSION}: rebuild ` +
        `it from its checkpoint (writePack; the CLI rebuilds its cached packs by itself)`,
    );
  }
  const len = dv.getUint32(12, true);
  if (PRELUDE_BYTES + len > size) throw new StalePackError(`${source.name}: truncated header`);
  const hb = new Uint8Array(len);
  await source.read(PRELUDE_BYTES, hb);
  try {
    return JSON.parse(new TextDecoder().decode(hb));
  } catch {
    throw new StalePackError(`${source.name}: corrupt header`);
  }
}
