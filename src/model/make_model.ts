/**
 * Random Qwen2 checkpoints with real shapes: `config.json`, safetensors weights (one file or HF-style
 * shards with an index), `generation_config.json` and the tokenizer files, in Hugging Face layout
 * (docs/qwen2.md, docs/formats.md) or as an MLX affine-quantized checkpoint.
 *
 * Values are generated lazily from a seeded PRNG, one chunk of rows at a time, straight into the output
 * stream: writing the 3B preset (6 GB in bf16) needs a few MB of memory. Every float tensor has its own
 * random stream keyed by (seed, tensor name), so the values do not depend on the format, the dtype, the
 * shard layout or the chunk size: an `mlx-q4` checkpoint quantizes exactly the weights of the `hf` one.
 *
 * No Deno APIs: files go to a {@linkcode ModelSink} (a directory in the CLI edge, memory in a browser).
 *
 * @module
 */
import type { ByteSink } from "../io/source.ts";
import { configToJson, type ModelConfig, paramCounts, parseModelConfig, type PresetName } from "./config.ts";
import { f32ToBf16, f32ToF16 } from "./dtype.ts";
import { GROUP_SIZE, type QuantBits, quantize, quantizedBytes } from "./quantize.ts";
import {
  type Dtype,
  encodeSafetensorsHeader,
  INDEX_FILE,
  numel,
  SINGLE_FILE,
  type TensorSpec,
} from "./safetensors.ts";
import { modelTensors } from "./qwen2.ts";
import { NormalRng } from "../util/random.ts";

/** Checkpoint layouts {@linkcode makeModel} writes. */
export type ModelFormat = "hf" | "mlx-q4" | "mlx-q8";

/** All formats, for CLI choices. */
export const MODEL_FORMATS: readonly ModelFormat[] = ["hf", "mlx-q4", "mlx-q8"];

/** Float storage types: of every tensor in `hf`; of scales, biases, norms and biases in `mlx-*`. */
export type FloatDtype = "bf16" | "f16" | "f32";

/** All float dtypes, for CLI choices. */
export const FLOAT_DTYPES: readonly FloatDtype[] = ["bf16", "f16", "f32"];

/** HF's default maximum shard size: 5 GB (10^9 bytes). */
export const DEFAULT_SHARD_SIZE = 5_000_000_000;

/** Standard deviation of the random weights, embedding and biases (HF's `initializer_range`). */
const INIT_STD = 0.02;

/** Norm weights are `1 + N(0, NORM_STD²)`. */
const NORM_STD = 0.02;

const SAFETENSORS_DTYPE: Record<FloatDtype, Dtype> = { bf16: "BF16", f16: "F16", f32: "F32" };
const TORCH_DTYPE: Record<FloatDtype, string> = { bf16: "bfloat16", f16: "float16", f32: "float32" };

/** The text of a model's tokenizer files, copied verbatim. */
export interface MakeModelTokenizerFiles {
  /** Contents of `tokenizer.json`. */
  tokenizerJson: string;
  /** Contents of `tokenizer_config.json`. */
  tokenizerConfigJson: string;
}

/** Where {@linkcode makeModel} puts files. */
export interface ModelSink {
  /** Writes a small text file (JSON). */
  writeText(name: string, text: string): Promise<void>;
  /** Writes a file by streaming chunks into `out`; a chunk may be reused once its write resolves. */
  writeFile(name: string, write: (out: ByteSink) => Promise<void>): Promise<void>;
}

/** Progress of {@linkcode makeModel}, reported after every chunk written. */
export interface MakeModelProgress {
  /**
   * 1-based position of the tensor being written in the order it is written (file by file, each file's
   * tensors in its header's order), so it only grows, as `bytes` does.
   */
  tensor: number;
  /** Number of tensors in the checkpoint. */
  tensors: number;
  /** Name of that tensor. */
  name: string;
  /** File it goes to. */
  file: string;
  /** Tensor bytes written so far, over all files. */
  bytes: number;
  /** Tensor bytes in all. */
  totalBytes: number;
}

/** Options for {@linkcode planModel} and {@linkcode makeModel}. */
export interface MakeModelOptions {
  /** `"hf"` (default), or MLX affine quantization `"mlx-q4"` / `"mlx-q8"` (group 64). */
  format?: ModelFormat;
  /**
   * Float storage type. Default: the config's `dtype` when it names one of bfloat16/float16/float32
   * (the `tiny` preset is float32), else bf16. `mlx-*` formats take bf16 or f16 (the scale type) and
   * default to bf16 unless the config says float16.
   */
  dtype?: FloatDtype;
  /** PRNG seed, any safe integer (default 0). */
  seed?: number;
  /** Largest shard in tensor bytes before splitting (default {@linkcode DEFAULT_SHARD_SIZE}). */
  shardSize?: number;
  /** Tokenizer files to copy into the checkpoint (none when omitted). */
  tokenizer?: MakeModelTokenizerFiles;
  /** Called after every chunk of tensor data written. */
  onProgress?: (progress: MakeModelProgress) => void;
  /** Elements generated per chunk (default 2^20); rounded to whole rows. Does not change the output. */
  chunkElements?: number;
  /** Standard deviations of the random weights (default {@linkcode INIT_STD} everywhere, as HF's `initializer_range`). */
  init?: WeightInit;
}

/**
 * Standard deviations of a random checkpoint's weights. HF's 0.02 everywhere makes a near-identity network
 * whose output is almost uniform; the demo model uses unit-gain linears and a wider LM head instead, so a
 * LoRA adapter can learn a peaked distribution quickly.
 */
export interface WeightInit {
  /** `embed_tokens` (default {@linkcode INIT_STD}). */
  embedding?: number;
  /** An untied `lm_head` (default {@linkcode INIT_STD}). */
  lmHead?: number;
  /** Every decoder linear: a number, or `"fan-in"` for `N(0, 1/in)` (default {@linkcode INIT_STD}). */
  linear?: number | "fan-in";
}

/**
 * The initialisation a preset is made with when not the default: the `demo` model has unit-gain decoder
 * linears (`N(0, 1/in)`), unit-variance embeddings and an LM head of std 0.25, whose logits can separate one
 * token from the other 151,935 by ~32 nats once the hidden state points at it (`√d · 0.25 · √d` for d = 128).
 * A wider head makes each LoRA step move the logits further: with 0.25 the demo's adapter learns the answers
 * in half the steps it took with 0.15 (300 instead of 600); with 0.4 the random model starts far above
 * the uniform loss (16.5 nats) and learns no faster.
 */
export const PRESET_INIT: Readonly<Partial<Record<PresetName, WeightInit>>> = Object.freeze({
  demo: Object.freeze({ embedding: 1, lmHead: 0.25, linear: "fan-in" as const }),
});

/** How a planned tensor's bytes derive from its float source tensor. */
export type TensorPart = "values" | "q" | "scales" | "biases";

/** One tensor of a planned checkpoint. */
export interface PlannedTensor extends TensorSpec {
  /** Bytes of data. */
  byteLength: number;
  /** The safetensors file holding it. */
  file: string;
  /** HF name of the float tensor whose random values it stores (itself, or `X.weight` for `X.scales`). */
  source: string;
  /** The float values themselves, or one of the three parts of their MLX quantization. */
  part: TensorPart;
}

/** One safetensors file of a planned checkpoint. */
export interface PlannedFile {
  /** File name (`model.safetensors` or `model-0000i-of-0000n.safetensors`). */
  name: string;
  /** Its tensors in state-dict order. */
  tensors: PlannedTensor[];
  /** Sum of their byte lengths. */
  tensorBytes: number;
  /** Size of the file including its header. */
  fileSize: number;
}

/** What {@linkcode makeModel} writes, computed without generating anything. */
export interface ModelPlan {
  /** The config as written to `config.json` (dtype and quantization set). */
  config: ModelConfig;
  /** The checkpoint format. */
  format: ModelFormat;
  /** Float storage type. */
  dtype: FloatDtype;
  /** Every tensor in state-dict order. */
  tensors: PlannedTensor[];
  /** The safetensors files, in order. */
  files: PlannedFile[];
  /** Sum of tensor bytes (`metadata.total_size` of the index). */
  totalBytes: number;
  /** Sum of safetensors file sizes. */
  fileBytes: number;
  /** Model parameters (float elements before any quantization), as {@linkcode paramCounts}. */
  parameters: number;
  /** Names of the other files written: index (when sharded), configs, tokenizer files. */
  textFiles: string[];
}

function bitsOf(format: ModelFormat): QuantBits | undefined {
  return format === "mlx-q4" ? 4 : format === "mlx-q8" ? 8 : undefined;
}

function defaultDtype(cfg: ModelConfig, quantized: boolean): FloatDtype {
  if (cfg.dtype === "float32" && !quantized) return "f32";
  if (cfg.dtype === "float16") return "f16";
  return "bf16";
}

/**
 * Greedy sharding in state-dict order exactly like `huggingface_hub`'s `split_state_dict_into_shards`: a
 * tensor that would push the current shard over the limit starts a new one, and a tensor larger than the
 * limit gets a shard of its own (placed before the shard being filled).
 */
function shardTensors<T extends { byteLength: number }>(tensors: T[], limit: number): T[][] {
  const shards: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const t of tensors) {
    if (t.byteLength > limit) {
      shards.push([t]);
      continue;
    }
    if (size + t.byteLength > limit) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.byteLength;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}

const pad5 = (n: number) => String(n).padStart(5, "0");

/**
 * Plans a random checkpoint of `config` without generating anything: tensor names, dtypes, shapes, byte
 * sizes, shard files and total sizes. Throws, naming the field or tensor, on an invalid config or a layer
 * width that cannot be quantized (not a multiple of 64).
 *
 * @example
 * ```ts
 * const plan = planModel(PRESETS["qwen2.5-0.5b"], { dtype: "bf16" });
 * plan.tensors.length; // 290
 * plan.totalBytes; // 988,065,536
 * ```
 */
export function planModel(config: ModelConfig, options: MakeModelOptions = {}): ModelPlan {
  const format = options.format ?? "hf";
  if (!MODEL_FORMATS.includes(format)) {
    throw new Error(
      `make-model: unknown format ${JSON.stringify(format)}; expected ${MODEL_FORMATS.join(", ")}`,
    );
  }
  const bits = bitsOf(format);
  const dtype = options.dtype ?? defaultDtype(config, bits !== undefined);
  if (!FLOAT_DTYPES.includes(dtype)) {
    throw new Error(
      `make-model: unknown dtype ${JSON.stringify(dtype)}; expected ${FLOAT_DTYPES.join(", ")}`,
    );
  }
  if (bits !== undefined && dtype === "f32") {
    throw new Error(`make-model: format ${format} stores scales and biases in bf16 or f16, not f32`);
  }
  const shardSize = options.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isSafeInteger(shardSize) || shardSize <= 0) {
    throw new Error(`make-model: shard size must be a positive number of bytes, got ${shardSize}`);
  }

  const written: ModelConfig = { ...config, dtype: TORCH_DTYPE[dtype] };
  delete written.quantization;
  if (bits !== undefined) written.quantization = { groupSize: GROUP_SIZE, bits };
  // Round trip through the config parser: rejects shapes the engine could not load.
  parseModelConfig(configToJson(written), { file: "make-model config" });

  const st = SAFETENSORS_DTYPE[dtype];
  const tensors: Omit<PlannedTensor, "file">[] = [];
  for (const t of modelTensors(written)) {
    const quantized = bits !== undefined && (t.kind === "linear" || t.kind === "embedding");
    if (!quantized) {
      tensors.push({
        name: t.name,
        dtype: st,
        shape: t.shape,
        byteLength: numel(t.shape) * (dtype === "f32" ? 4 : 2),
        source: t.name,
        part: "values",
      });
      continue;
    }
    const [rows, cols] = t.shape;
    if (cols % GROUP_SIZE !== 0) {
      throw new Error(
        `make-model: ${format}: ${t.name} has ${cols} input columns, not a multiple of ${GROUP_SIZE}`,
      );
    }
    const base = t.name.replace(/\.weight$/, "");
    const groups = cols / GROUP_SIZE;
    // MLX parameter order of a QuantizedLinear / QuantizedEmbedding: weight, scales, biases.
    tensors.push(
      {
        name: `${base}.weight`,
        dtype: "U32",
        shape: [rows, (cols * bits) / 32],
        byteLength: quantizedBytes(rows, cols, bits),
        source: t.name,
        part: "q",
      },
      {
        name: `${base}.scales`,
        dtype: st,
        shape: [rows, groups],
        byteLength: rows * groups * 2,
        source: t.name,
        part: "scales",
      },
      {
        name: `${base}.biases`,
        dtype: st,
        shape: [rows, groups],
        byteLength: rows * groups * 2,
        source: t.name,
        part: "biases",
      },
    );
  }

  const shards = shardTensors(tensors, shardSize);
  const metadata = { format: bits === undefined ? "pt" : "mlx" };
  const files: PlannedFile[] = shards.map((shard, i) => {
    const name = shards.length === 1
      ? SINGLE_FILE
      : `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
    const planned = shard.map((t) => ({ ...t, file: name }));
    return {
      name,
      tensors: planned,
      tensorBytes: planned.reduce((s, t) => s + t.byteLength, 0),
      fileSize: encodeSafetensorsHeader(planned, metadata).fileSize,
    };
  });
  const all = files.flatMap((f) => f.tensors);
  const textFiles = [
    ...(files.length > 1 ? [INDEX_FILE] : []),
    "generation_config.json",
    ...(options.tokenizer ? ["tokenizer.json", "tokenizer_config.json"] : []),
    "config.json",
  ];
  return {
    config: written,
    format,
    dtype,
    tensors: all,
    files,
    totalBytes: all.reduce((s, t) => s + t.byteLength, 0),
    fileBytes: files.reduce((s, f) => s + f.fileSize, 0),
    parameters: paramCounts(written).total,
    textFiles,
  };
}

/** `generation_config.json` like Qwen2.5-Instruct's: bos, the eos list, pad (default: bos). */
function generationConfig(cfg: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (cfg.bosTokenId !== undefined) out.bos_token_id = cfg.bosTokenId;
  if (cfg.eosTokenIds.length > 0) out.eos_token_id = [...cfg.eosTokenIds];
  const pad = cfg.padTokenId ?? cfg.bosTokenId;
  if (pad !== undefined) out.pad_token_id = pad;
  return out;
}

const json = (v: unknown) => JSON.stringify(v, null, 2) + "\n";

/**
 * Writes a random checkpoint of `config` into `sink`: the safetensors file(s) first, then the shard index,
 * `generation_config.json`, the tokenizer files and finally `config.json` (so a directory with a config is
 * complete). Returns the plan it followed (see {@linkcode planModel}).
 *
 * Weights are `N(0, 0.02²)` (embedding, projections, q/k/v biases) and norms `1 + N(0, 0.02²)`, drawn
 * with xoshiro128** and the Marsaglia polar method from a stream per tensor keyed by (seed, name).
 *
 * @example
 * ```ts
 * const sink = memoryModelSink();
 * await makeModel(PRESETS.tiny, sink, { format: "mlx-q4", seed: 1 });
 * sink.files.get("config.json");
 * ```
 */
export async function makeModel(
  config: ModelConfig,
  sink: ModelSink,
  options: MakeModelOptions = {},
): Promise<ModelPlan> {
  const plan = planModel(config, options);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`make-model: seed must be a safe integer, got ${seed}`);
  const chunkElements = options.chunkElements ?? 1 << 20;
  if (!Number.isSafeInteger(chunkElements) || chunkElements <= 0) {
    throw new Error(`make-model: chunkElements must be a positive integer, got ${chunkElements}`);
  }
  const init = options.init ?? {};
  for (const [name, std] of Object.entries(init)) {
    if (std !== "fan-in" && !(typeof std === "number" && std > 0 && Number.isFinite(std))) {
      throw new Error(`make-model: init.${name} must be a positive number, got ${JSON.stringify(std)}`);
    }
  }
  const writer = new TensorWriter(plan, seed, chunkElements, init, options.onProgress);
  const metadata = { format: plan.format === "hf" ? "pt" : "mlx" };
  for (const file of plan.files) {
    await sink.writeFile(file.name, async (out) => {
      const header = encodeSafetensorsHeader(file.tensors, metadata);
      await out.write(header.bytes);
      const byName = new Map(file.tensors.map((t) => [t.name, t]));
      for (const placed of header.tensors) await writer.write(byName.get(placed.name)!, out);
    });
  }
  if (plan.files.length > 1) {
    const weightMap: Record<string, string> = {};
    for (const t of [...plan.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      weightMap[t.name] = t.file;
    }
    await sink.writeText(
      INDEX_FILE,
      json({ metadata: { total_size: plan.totalBytes }, weight_map: weightMap }),
    );
  }
  await sink.writeText("generation_config.json", json(generationConfig(plan.config)));
  if (options.tokenizer) {
    await sink.writeText("tokenizer.json", options.tokenizer.tokenizerJson);
    await sink.writeText("tokenizer_config.json", options.tokenizer.tokenizerConfigJson);
  }
  await sink.writeText("config.json", json(configToJson(plan.config)));
  return plan;
}

/** Generates tensors chunk by chunk into a byte stream, reusing one set of scratch buffers. */
class TensorWriter {
  readonly #plan: ModelPlan;
  readonly #seed: number;
  readonly #bits: QuantBits | undefined;
  readonly #chunk: number;
  readonly #init: WeightInit;
  readonly #onProgress?: (progress: MakeModelProgress) => void;
  readonly #shapes: Map<string, number[]>;
  readonly #f32: Float32Array;
  readonly #half: Uint16Array;
  readonly #q: Uint8Array;
  readonly #scales: Uint16Array;
  readonly #biases: Uint16Array;
  #bytes = 0;
  /** Tensors begun so far (the one being written included). */
  #tensors = 0;
  /** Scales and biases of the last quantized tensor (MLX files store them apart from its codes). */
  #cached?: { source: string; scales: Uint16Array; biases: Uint16Array };

  constructor(
    plan: ModelPlan,
    seed: number,
    chunk: number,
    init: WeightInit,
    onProgress?: (p: MakeModelProgress) => void,
  ) {
    this.#plan = plan;
    this.#seed = seed;
    this.#init = init;
    this.#bits = bitsOf(plan.format);
    this.#chunk = chunk;
    this.#onProgress = onProgress;
    const floats = modelTensors(plan.config);
    this.#shapes = new Map(floats.map((t) => [t.name, t.shape]));
    // A chunk is whole rows of at most max(chunk, row length) elements.
    const capacity = Math.max(chunk, ...floats.map((t) => t.shape[t.shape.length - 1]));
    this.#f32 = new Float32Array(capacity);
    this.#half = new Uint16Array(capacity);
    this.#q = new Uint8Array(capacity);
    this.#scales = new Uint16Array(Math.ceil(capacity / GROUP_SIZE));
    this.#biases = new Uint16Array(Math.ceil(capacity / GROUP_SIZE));
  }

  async write(t: PlannedTensor, out: ByteSink): Promise<void> {
    let written = 0;
    this.#tensors++;
    const emit = async (bytes: Uint8Array) => {
      await out.write(bytes);
      written += bytes.length;
      this.#bytes += bytes.length;
      this.#onProgress?.({
        tensor: this.#tensors,
        tensors: this.#plan.tensors.length,
        name: t.name,
        file: t.file,
        bytes: this.#bytes,
        totalBytes: this.#plan.totalBytes,
      });
    };
    if (t.part === "values") await this.#writeValues(t, emit);
    else if (t.part === "q") await this.#writeCodes(t, emit);
    else {
      const cached = await this.#scalesAndBiases(t);
      const half = t.part === "scales" ? cached.scales : cached.biases;
      await emit(new Uint8Array(half.buffer, half.byteOffset, half.byteLength));
    }
    if (written !== t.byteLength) {
      throw new Error(
        `make-model: internal error: wrote ${written} bytes for ${t.name}, planned ${t.byteLength}`,
      );
    }
  }

  /** Rows × columns of the float source tensor (a vector is one row). */
  #matrix(t: PlannedTensor): [number, number] {
    const shape = this.#shapes.get(t.source)!;
    return shape.length === 1 ? [1, shape[0]] : [shape[0], shape[1]];
  }

  /** Standard deviation of a non-norm tensor with `cols` input columns. */
  #std(name: string, cols: number): number {
    if (name === "model.embed_tokens.weight") return this.#init.embedding ?? INIT_STD;
    if (name === "lm_head.weight") return this.#init.lmHead ?? INIT_STD;
    const linear = this.#init.linear;
    if (!name.endsWith("_proj.weight") || linear === undefined) return INIT_STD;
    return linear === "fan-in" ? 1 / Math.sqrt(cols) : linear;
  }

  /** Calls `each(values, firstRow, rowCount)` for consecutive chunks of whole rows of the source tensor. */
  async #generate(
    t: PlannedTensor,
    each: (values: Float32Array, row0: number, rows: number) => Promise<void> | void,
  ): Promise<void> {
    const [rows, cols] = this.#matrix(t);
    const rng = new NormalRng(this.#seed, t.source);
    const norm = /(layernorm|\.norm)\.weight$/.test(t.source);
    const mean = norm ? 1 : 0;
    const std = norm ? NORM_STD : this.#std(t.source, cols);
    const step = Math.max(1, Math.floor(this.#chunk / cols));
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      const values = this.#f32.subarray(0, n * cols);
      rng.fill(values, mean, std);
      await each(values, r0, n);
    }
  }

  async #writeValues(t: PlannedTensor, emit: (b: Uint8Array) => Promise<void>): Promise<void> {
    const dtype = this.#plan.dtype;
    await this.#generate(t, async (values) => {
      if (dtype === "f32") return await emit(new Uint8Array(values.buffer, 0, values.byteLength));
      const half = this.#half.subarray(0, values.length);
      if (dtype === "bf16") f32ToBf16(values, half);
      else f32ToF16(values, half);
      await emit(new Uint8Array(half.buffer, 0, half.byteLength));
    });
  }

  /** Quantizes one chunk of rows; codes into the scratch, scales/biases where given. */
  #quantize(
    t: PlannedTensor,
    values: Float32Array,
    row0: number,
    rows: number,
    scales: Uint16Array,
    biases: Uint16Array,
    scalesOnly = false,
  ): Uint8Array {
    const [, cols] = this.#matrix(t);
    const q = this.#q.subarray(0, quantizedBytes(rows, cols, this.#bits!));
    quantize(values, cols, {
      bits: this.#bits!,
      scaleDtype: this.#plan.dtype === "f16" ? "f16" : "bf16",
      name: t.source,
      rowOffset: row0,
      scalesOnly,
      into: { q, scales, biases },
    });
    return q;
  }

  async #writeCodes(t: PlannedTensor, emit: (b: Uint8Array) => Promise<void>): Promise<void> {
    const groups = this.#matrix(t)[1] / GROUP_SIZE;
    await this.#generate(t, async (values, row0, rows) => {
      // scales and biases are regenerated (and cached) when their own tensors come up in the file
      const scales = this.#scales.subarray(0, rows * groups);
      const biases = this.#biases.subarray(0, rows * groups);
      await emit(this.#quantize(t, values, row0, rows, scales, biases));
    });
  }

  async #scalesAndBiases(t: PlannedTensor): Promise<{ scales: Uint16Array; biases: Uint16Array }> {
    if (this.#cached?.source === t.source) return this.#cached;
    this.#cached = undefined; // let the previous tensor's go before allocating
    const [rows, cols] = this.#matrix(t);
    const groups = cols / GROUP_SIZE;
    const scales = new Uint16Array(rows * groups);
    const biases = new Uint16Array(rows * groups);
    await this.#generate(t, (values, row0, n) => {
      const range = [row0 * groups, (row0 + n) * groups] as const;
      this.#quantize(t, values, row0, n, scales.subarray(...range), biases.subarray(...range), true);
    });
    this.#cached = { source: t.source, scales, biases };
    return this.#cached;
  }
}

/** A {@linkcode ModelSink} keeping files in memory (tests, browsers). */
export interface MemoryModelSink extends ModelSink {
  /** Written files by name. */
  files: Map<string, Uint8Array>;
}

/** A {@linkcode ModelSink} that collects every file in memory. */
export function memoryModelSink(): MemoryModelSink {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    writeText(name, text) {
      files.set(name, new TextEncoder().encode(text));
      return Promise.resolve();
    },
    async writeFile(name, write) {
      const chunks: Uint8Array[] = [];
      await write({
        write(chunk) {
          chunks.push(chunk.slice()); // the writer reuses its buffers
          return Promise.resolve();
        },
      });
      const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
      let pos = 0;
      for (const c of chunks) {
        out.set(c, pos);
        pos += c.length;
      }
      files.set(name, out);
    },
  };
}
