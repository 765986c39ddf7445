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
import type { ModelConfig } from "./config.ts";
import {
  align,
  copiesQuantized,
  layerLayout,
  matrixSlot,
  MLP_CHUNK,
  type PackFormat,
} from "./pack_layout.ts";

export const MAGIC = "MESPPACK";
export const VERSION = 2;

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
  config: ModelConfig;
  /** Fingerprint of the source checkpoint (see {@linkcode checkpointFingerprint}). */
  fingerprint: string;
  /** Where the pack came from, for messages. */
  source: string;
  embed: Section;
  layers: Section[];
  norm: Section;
  lmHead?: Section;
  /** Total file size. */
  fileBytes: number;
}

/** Plans the whole pack: header (without fingerprint/source) and sections. */
export function planPack(
  cfg: ModelConfig,
  format: PackFormat,
  mlpChunk = MLP_CHUNK,
): Omit<PackHeader, "fingerprint" | "source"> {
  const bf16Scales = copiesQuantized(cfg, format);
  const layout = layerLayout(cfg, format, bf16Scales, mlpChunk);
  // sections start after a generous header allowance, fixed so offsets never depend on the header text
  let at = 16 + align(4096 + cfg.numLayers * 64);
  const section = (bytes: number): Section => {
    const s = { offset: align(at), bytes };
    at = s.offset + bytes;
    return s;
  };
  const embed = section(matrixSlot(cfg.vocabSize, cfg.hiddenSize, format, bf16Scales, 0).bytes);
  const layers = Array.from({ length: cfg.numLayers }, () => section(layout.bytes));
  const norm = section(cfg.hiddenSize * 4);
  const lmHead = cfg.tieWordEmbeddings
    ? undefined
    : section(matrixSlot(cfg.vocabSize, cfg.hiddenSize, format, bf16Scales, 0).bytes);
  return {
    version: VERSION,
    format,
    bf16Scales,
    mlpChunk,
    config: cfg,
    embed,
    layers,
    norm,
    lmHead,
    fileBytes: align(at),
  };
}
