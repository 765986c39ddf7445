/**
 * Merges a LoRA adapter into its base checkpoint: every adapted linear becomes `W + s·B·A` (summed in f64,
 * rounded once to the base's dtype), every other tensor is copied byte for byte, and the files keep the
 * base's names and shards, so the result loads wherever the base does (transformers, mesp, converters).
 *
 * An MLX-quantized base is written dequantized: each quantized tensor as `X.weight` in its scales' dtype
 * (exactly the values mesp computes with), without `X.scales`/`X.biases`; the caller drops `quantization`
 * from its config. Tensors stream one at a time (large ones in chunks), so memory stays at about one
 * linear.
 *
 * @module
 */
import type { ByteSink } from "../io/source.ts";
import type { ModelConfig } from "../model/config.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../model/dtype.ts";
import { LINEAR_PREFIX } from "../model/qwen2.ts";
import { dequantize, fromMlxU32, type QuantBits } from "../model/quantize.ts";
import {
  type Checkpoint,
  type Dtype,
  encodeSafetensorsHeader,
  numel,
  readTensorBytes,
  readTensorF32,
  type SafetensorsFile,
  type TensorInfo,
  type TensorSpec,
} from "../model/safetensors.ts";
import type { LoraLayout, LoraPair } from "../engine/lora.ts";

/** Writes one output file by streaming into a sink (a directory in the CLI, memory in tests). */
export type WriteFile = (name: string, write: (sink: ByteSink) => Promise<void>) => Promise<void>;

/** What {@linkcode mergeAdapter} did. */
export interface MergeResult {
  /** Linears that received `s·B·A`. */
  merged: number;
  /** Quantized tensors written dequantized. */
  dequantized: number;
  /** Safetensors files written (the base's names). */
  files: string[];
  /** Tensor name → file (for a shard index) and the sum of tensor bytes. */
  weightMap: Record<string, string>;
  totalSize: number;
}

const COPY_CHUNK = 1 << 22;

/** What to write for one tensor of the output. */
export interface Planned {
  /** Name, dtype and shape as the merged safetensors file holds it. */
  spec: TensorSpec;
  /** The base tensor it comes from (the codes, for a dequantized one). */
  info: TensorInfo;
  /** The adapter pair merged into it, if any. */
  pair?: LoraPair;
  /** For a dequantized tensor: its scales and biases. */
  quant?: { scales: TensorInfo; biases: TensorInfo; bits: QuantBits };
}

/** The tensors of one base file as the merge writes them (quantized ones as one dequantized weight). */
export function planMergedFile(
  file: SafetensorsFile,
  cfg: ModelConfig,
  pairs: ReadonlyMap<string, LoraPair>,
): Planned[] {
  const out: Planned[] = [];
  const bits = cfg.quantization?.bits as QuantBits | undefined;
  for (const info of file.tensors.values()) {
    const base = info.name.replace(/\.(weight|scales|biases)$/, "");
    const quantized = bits !== undefined && info.dtype === "U32" && info.name.endsWith(".weight") &&
      file.tensors.has(`${base}.scales`);
    if (
      bits !== undefined && /\.(scales|biases)$/.test(info.name) &&
      file.tensors.get(`${base}.weight`)?.dtype === "U32"
    ) {
      continue; // folded into the dequantized weight
    }
    if (quantized) {
      const scales = file.tensors.get(`${base}.scales`)!;
      const biases = file.tensors.get(`${base}.biases`);
      if (!biases) throw new Error(`merge: ${file.source.name}: ${base}.biases is missing`);
      const rows = info.shape[0], cols = (info.shape[1] * 32) / bits;
      out.push({
        spec: { name: info.name, dtype: scales.dtype, shape: [rows, cols] },
        info,
        pair: pairs.get(info.name),
        quant: { scales, biases, bits },
      });
      continue;
    }
    out.push({
      spec: { name: info.name, dtype: info.dtype, shape: info.shape },
      info,
      pair: pairs.get(info.name),
    });
  }
  for (const t of out) {
    if (t.pair && numel(t.spec.shape) !== t.pair.outDim * t.pair.inDim) {
      throw new Error(
        `merge: ${t.spec.name} has shape [${t.spec.shape}], the adapter needs [${t.pair.outDim},${t.pair.inDim}]`,
      );
    }
  }
  return out;
}

/** The adapter's pairs by the name of the base weight each adapts; throws if the base lacks one. */
export function pairsByWeight(base: Checkpoint, layout: LoraLayout): Map<string, LoraPair> {
  const pairs = new Map<string, LoraPair>();
  for (const row of layout.pairs) {
    for (const pair of row) {
      const name = `model.layers.${pair.layer}.${LINEAR_PREFIX[pair.target]}.weight`;
      if (!base.has(name)) throw new Error(`merge: the base ${base.name} has no ${name} for the adapter`);
      pairs.set(name, pair);
    }
  }
  return pairs;
}

/** `W + s·B·A` for one pair, in place on the f32 weight `w` `[out, in]`. */
function addDelta(w: Float32Array, layout: LoraLayout, pair: LoraPair, params: Float32Array): void {
  const r = layout.rank, n = pair.inDim, s = layout.scale;
  const a = params.subarray(pair.a, pair.a + r * n);
  const b = params.subarray(pair.b, pair.b + r * pair.outDim);
  const row = new Float64Array(n);
  for (let o = 0; o < pair.outDim; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      for (let i = 0; i < n; i++) row[i] += bk * a[k * n + i];
    }
    for (let i = 0; i < n; i++) w[o * n + i] = w[o * n + i] + s * row[i];
  }
}

/** Float dtypes a merged or converted tensor can be written in. */
export type FloatDtype = "F32" | "F16" | "BF16";

function isFloat(dtype: Dtype): dtype is FloatDtype {
  return dtype === "F32" || dtype === "F16" || dtype === "BF16";
}

function encode(values: Float32Array, dtype: Dtype): Uint8Array {
  if (dtype === "F32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const half = dtype === "BF16" ? f32ToBf16(values) : dtype === "F16" ? f32ToF16(values) : undefined;
  if (!half) throw new Error(`merge: cannot write a merged weight as ${dtype}`);
  return new Uint8Array(half.buffer);
}

/** Raw little-endian floats of `dtype` → f32. */
function decode(raw: Uint8Array, dtype: FloatDtype): Float32Array {
  if (dtype === "F32") return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const half = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
  return dtype === "BF16" ? bf16ToF32(half) : f16ToF32(half);
}

/**
 * Streams one planned tensor into `sink` as `dtype` (default: its merged dtype, `spec.dtype`): merged and
 * dequantized tensors are computed whole (one linear), any other is copied, or converted, in chunks.
 */
export async function writePlanned(
  sink: ByteSink,
  file: SafetensorsFile,
  t: Planned,
  layout: LoraLayout | undefined,
  params: Float32Array | undefined,
  dtype: Dtype = t.spec.dtype,
): Promise<void> {
  if (t.quant && !t.pair) {
    await writeDequantizedRows(sink, file, t, dtype);
    return;
  }
  if (t.quant) {
    const { scales, biases, bits } = t.quant;
    const [rows, cols] = t.spec.shape;
    const half = (info: TensorInfo) =>
      readTensorBytes(file, info.name).then((b) => new Uint16Array(b.buffer));
    const q = fromMlxU32(new Uint32Array((await readTensorBytes(file, t.info.name)).buffer));
    const w = dequantize({ q, scales: await half(scales), biases: await half(biases) }, cols, {
      bits,
      scaleDtype: scales.dtype === "BF16" ? "bf16" : "f16",
      name: t.info.name,
    });
    if (w.length !== rows * cols) throw new Error(`merge: ${t.info.name}: unexpected quantized shape`);
    if (t.pair) addDelta(w, layout!, t.pair, params!);
    await sink.write(encode(w, dtype));
    return;
  }
  if (t.pair) {
    const w = await readTensorF32(file, t.info.name);
    addDelta(w, layout!, t.pair, params!);
    await sink.write(encode(w, dtype));
    return;
  }
  const from = t.info.dtype;
  if (from !== dtype && !(isFloat(from) && isFloat(dtype))) {
    throw new Error(`merge: cannot convert ${t.info.name} from ${from} to ${dtype}`);
  }
  const buf = new Uint8Array(Math.min(COPY_CHUNK, t.info.byteLength));
  for (let at = 0; at < t.info.byteLength; at += buf.length) {
    const chunk = buf.subarray(0, Math.min(buf.length, t.info.byteLength - at));
    await file.source.read(t.info.offset + at, chunk);
    await sink.write(from === dtype ? chunk : encode(decode(chunk, from as FloatDtype), dtype));
  }
}

/**
 * Streams a quantized tensor with no adapter (the embedding, an untied head) into `sink` dequantized, a few
 * rows at a time: whole, the 0.5B's embedding alone is 545 MB of f32 (the merge peaked at ~1 GB).
 */
async function writeDequantizedRows(
  sink: ByteSink,
  file: SafetensorsFile,
  t: Planned,
  dtype: Dtype,
): Promise<void> {
  const { scales, biases, bits } = t.quant!;
  const [rows, cols] = t.spec.shape;
  // bytes per row of the codes, the scales and the biases (a row is whole groups, whole u32 words)
  const qRow = t.info.byteLength / rows, sRow = scales.byteLength / rows, bRow = biases.byteLength / rows;
  const per = Math.max(1, Math.floor(COPY_CHUNK / (cols * 4)));
  const rowsOf = async (info: TensorInfo, rowBytes: number, from: number, n: number) => {
    const bytes = new Uint8Array(n * rowBytes);
    await file.source.read(info.offset + from * rowBytes, bytes);
    return bytes;
  };
  for (let r = 0; r < rows; r += per) {
    const n = Math.min(per, rows - r);
    const w = dequantize(
      {
        q: await rowsOf(t.info, qRow, r, n),
        scales: new Uint16Array((await rowsOf(scales, sRow, r, n)).buffer),
        biases: new Uint16Array((await rowsOf(biases, bRow, r, n)).buffer),
      },
      cols,
      { bits, scaleDtype: scales.dtype === "BF16" ? "bf16" : "f16", name: t.info.name },
    );
    if (w.length !== n * cols) throw new Error(`merge: ${t.info.name}: unexpected quantized shape`);
    await sink.write(encode(w, dtype));
  }
}

/**
 * Writes the merged checkpoint through `writeFile`, one safetensors file per base file (same names, same
 * tensors). Every pair of `layout` must find its linear's weight in the base. `onProgress` is told the
 * tensor bytes written so far and in all, before the first tensor and after each.
 */
export async function mergeAdapter(
  base: Checkpoint,
  cfg: ModelConfig,
  layout: LoraLayout,
  params: Float32Array,
  writeFile: WriteFile,
  onProgress?: (tensorBytes: number, totalSize: number) => void,
): Promise<MergeResult> {
  const pairs = pairsByWeight(base, layout);
  let merged = 0, dequantized = 0, totalSize = 0, written = 0;
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  // every file planned first: the total is known before the first byte is written
  const plans = [...base.files].map(([fileName, file]) => {
    const planned = planMergedFile(file, cfg, pairs);
    // a dequantized file is a plain PyTorch-style one
    const metadata = planned.some((t) => t.quant) ? { ...file.metadata, format: "pt" } : file.metadata;
    const header = encodeSafetensorsHeader(planned.map((t) => t.spec), metadata);
    for (const t of header.tensors) {
      weightMap[t.name] = fileName;
      totalSize += t.end - t.begin;
    }
    return { fileName, file, planned, header };
  });
  onProgress?.(0, totalSize);
  for (const { fileName, file, planned, header } of plans) {
    const byName = new Map(planned.map((t) => [t.spec.name, t]));
    await writeFile(fileName, async (sink) => {
      await sink.write(header.bytes);
      for (const placed of header.tensors) {
        const t = byName.get(placed.name)!;
        await writePlanned(sink, file, t, layout, params);
        if (t.pair) merged++;
        if (t.quant) dequantized++;
        written += placed.end - placed.begin;
        onProgress?.(written, totalSize);
      }
    });
    files.push(fileName);
  }
  if (merged !== pairs.size) {
    throw new Error(`merge: internal error: merged ${merged} of ${pairs.size} linears`);
  }
  return { merged, dequantized, files, weightMap, totalSize };
}
