// Loading the PyTorch golden fixtures (tests/fixtures/golden/, written by make_golden.py).
import type { Sequence } from "../src/data/sequence.ts";
import { dirFiles, fileSource } from "../src/io/deno_files.ts";
import { bytesSource } from "../src/io/source.ts";
import { type ModelConfig, parseModelConfig } from "../src/model/config.ts";
import { openPack, type Pack } from "../src/model/pack.ts";
import type { PackFormat } from "../src/model/pack_layout.ts";
import { writePack } from "../src/model/pack_writer.ts";
import {
  openCheckpoint,
  readSafetensorsHeader,
  readTensorBytes,
  type SafetensorsFile,
} from "../src/model/safetensors.ts";

/** Every case directory. */
export const GOLDEN_CASES = [
  "gqa_tied_f32",
  "mha_untied_bf16",
  "mqa_f16_sharded",
  "odd_sizes",
  "head_dim_explicit",
  "new_keys",
  "mlx_q4",
];

/** Path of a case directory. */
export function caseDir(name: string): string {
  return new URL(`./fixtures/golden/${name}`, import.meta.url).pathname;
}

/** A case's config, its weights as an in-memory pack, and its expected values. */
export interface GoldenCase {
  name: string;
  dir: string;
  cfg: ModelConfig;
  pack: Pack;
  expected: SafetensorsFile;
  ids: Int32Array;
  targets: Uint8Array;
  T: number;
}

/** Opens a case, converting its checkpoint into a pack of `format` in memory. */
export async function loadCase(
  name: string,
  format: PackFormat = "f32",
  mlpChunk?: number,
): Promise<GoldenCase> {
  const dir = caseDir(name);
  const files = dirFiles(dir);
  const cfg = parseModelConfig(JSON.parse((await files.readText("config.json"))!), {
    file: `${dir}/config.json`,
  });
  const ckpt = await openCheckpoint(files);
  const chunks: Uint8Array[] = [];
  await writePack(ckpt, cfg, { write: (c) => (chunks.push(c.slice()), Promise.resolve()) }, {
    format,
    fingerprint: name,
    mlpChunk,
  });
  ckpt.close();
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), at += c.length);
  const pack = await openPack(bytesSource(bytes, `${name}.pack`));
  const expected = await readSafetensorsHeader(fileSource(`${dir}/expected.safetensors`));
  const ids = new Int32Array((await readTensorBytes(expected, "input_ids")).buffer);
  const targets = await readTensorBytes(expected, "targets");
  return { name, dir, cfg, pack, expected, ids, targets, T: ids.length };
}

/** An expected tensor as f64 (F64 or F32 stored). */
export async function expectedF64(c: GoldenCase, name: string): Promise<Float64Array> {
  const info = c.expected.tensors.get(name);
  if (!info) throw new Error(`${c.name}: expected.safetensors has no ${name}`);
  const raw = await readTensorBytes(c.expected, name);
  if (info.dtype === "F64") return new Float64Array(raw.buffer);
  if (info.dtype === "F32") return Float64Array.from(new Float32Array(raw.buffer));
  throw new Error(`${name}: dtype ${info.dtype}`);
}

/** Cosine similarity and relative L2 error of `got` against `want`. */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>): { cos: number; rel: number } {
  let dot = 0, gg = 0, ww = 0, dd = 0;
  for (let i = 0; i < want.length; i++) {
    dot += got[i] * want[i];
    gg += got[i] * got[i];
    ww += want[i] * want[i];
    dd += (got[i] - want[i]) ** 2;
  }
  return { cos: dot / Math.sqrt(gg * ww), rel: Math.sqrt(dd / ww) };
}

/** Six short training sequences cut from a case's ids (9–11 tokens), with a mask trained from token 1 or 2. */
export function caseSequences(c: GoldenCase): Sequence[] {
  const data: Sequence[] = [];
  for (let i = 0; i < 6; i++) {
    const ids = Int32Array.from({ length: 9 + (i % 3) }, (_, t) => c.ids[(t + i) % c.T]);
    const targets = Uint8Array.from(ids, (_, t) => (t >= 1 + (i % 2) ? 1 : 0));
    data.push({ ids, targets });
  }
  return data;
}
