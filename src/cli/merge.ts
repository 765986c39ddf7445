/**
 * `merge`: base model + adapter → a Hugging Face safetensors model (`W + s·B·A` in the base's dtype; an
 * MLX-quantized base is written dequantized, in its scales' dtype), with the base's other files copied;
 * or, with `--format gguf`, one GGUF file llama.cpp runs (`llama-cli -m`), tokenizer included.
 *
 * @module
 */
import { type CommandSpec, parseArgs } from "./args.ts";
import { loadAdapter, readGgufVocab } from "./adapter_files.ts";
import { claimOutputDir, claimOutputFile, refuseInsideModel } from "./paths.ts";
import { stderrLog, warnAdapterRun } from "./common.ts";
import { onStop } from "./signals.ts";
import { Progress } from "./progress.ts";
import { dirFiles, writeFileAtomic } from "../io/deno_files.ts";
import { type Checkpoint, INDEX_FILE, openCheckpoint } from "../model/safetensors.ts";
import { type FloatDtype, mergeAdapter, type MergeResult } from "../run/merge.ts";
import { writeGgufModel } from "../run/gguf_model.ts";
import { formatMB } from "../runtime/arena.ts";
import type { ModelConfig } from "../model/config.ts";
import type { LoraLayout } from "../engine/lora.ts";

/** One line for the command list. */
export const description =
  "merge an adapter into its base model (Hugging Face safetensors in the base dtype, or one GGUF file)";

/** The command's flags. */
export const SPEC = {
  name: "merge",
  description,
  flags: {
    adapter: {
      type: "string",
      value: "DIR",
      required: true,
      description: "the PEFT adapter (a run directory)",
    },
    out: {
      type: "string",
      value: "PATH",
      required: true,
      description: "directory of the merged model (safetensors), or the .gguf file (gguf)",
    },
    format: {
      type: "string",
      choices: ["safetensors", "gguf"],
      default: "safetensors",
      description: "safetensors: a Hugging Face model directory; gguf: one llama.cpp model file",
    },
    dtype: {
      type: "string",
      choices: ["f32", "f16", "bf16"],
      description: "gguf only: the matrices' type (default: the base's; norms and biases are always f32)",
    },
    model: {
      type: "string",
      value: "DIR",
      description: "the base model (default: the adapter's base_model_name_or_path)",
    },
    force: { type: "boolean", description: "write into an existing directory (replacing its model files)" },
  },
  epilog: "examples:\n  deno task merge --adapter runs/lumen --out models/lumen-merged\n" +
    "  deno task merge --adapter runs/lumen --format gguf --out lumen.gguf",
} as const satisfies CommandSpec;

/**
 * A model's weight files, as transformers names them (`model*.safetensors`, `pytorch_model*.bin`, their
 * indexes; any `.safetensors`): the base's of other formats are not copied (only its merged safetensors are
 * the model), and another model's in `--out` are replaced with `--force` (a loader could pick them over the
 * merged ones). A run's own files (`training_args.bin`, `optimizer.pt`, a `.gguf`) are none of these.
 */
const WEIGHTS =
  /^(model|pytorch_model|tf_model|flax_model)([-.][\w.-]*)?\.(safetensors|bin|h5|msgpack)$|\.safetensors$|\.index\.json$/;

/** Runs `merge`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const log = stderrLog();
  const { model, cfg, layout, params } = await loadAdapter(args.adapter, args.model);
  const out = args.out.replace(/[\\/]+$/, "");
  await refuseInsideModel("--out", out, model, args.format === "gguf" ? "file" : "dir");
  if (args.dtype !== undefined && args.format !== "gguf") {
    throw new Error("--dtype applies to --format gguf only");
  }
  await warnAdapterRun(args.adapter, model, log);
  if (args.format === "gguf") {
    await writeGgufFile("--out", out, model, cfg, { layout, params }, args.dtype, args.force);
    return 0;
  }
  // the base's files, merged or copied (config.json last: it marks a complete model)
  const names = await dirFiles(model).list!();
  // what the merged model is: the base's files but its weights of other formats, which are not the merge's
  const written = names.filter((n) => !WEIGHTS.test(n) || n.endsWith(".safetensors") || n === INDEX_FILE);
  const base = await openCheckpoint(dirFiles(model)); // a damaged base fails before --out is made
  // a merge stopped or failed part way leaves no half model: an --out it made goes, shards and all
  const made = !await Deno.stat(out).then(() => true, () => false);
  const forget = onStop(() => {
    if (!made) return;
    Deno.removeSync(out, { recursive: true });
    return `${out} (made by this merge, not finished)`;
  });
  let result;
  try {
    result = await writeMergedDir(
      out,
      model,
      names,
      written,
      base,
      { cfg, layout, params },
      !!args.force,
      log,
    );
  } catch (err) {
    if (made) await Deno.remove(out, { recursive: true }).catch(() => {});
    throw err;
  } finally {
    forget();
    base.close();
  }
  log(
    `wrote ${out}: ${result.merged} linears merged (W + ${layout.scale}·B·A)` +
      (result.dequantized ? `, ${result.dequantized} quantized tensors dequantized` : "") +
      `, ${result.files.length} safetensors file(s)`,
  );
  return 0;
}

/**
 * Writes the merged model into `out`: the merged safetensors, then the base's other files, then its
 * index and config.json (last: it marks a complete model).
 */
async function writeMergedDir(
  out: string,
  model: string,
  names: readonly string[],
  written: readonly string[],
  base: Checkpoint,
  adapter: { cfg: ModelConfig; layout: LoraLayout; params: Float32Array },
  force: boolean,
  log: (m: string) => void,
): Promise<MergeResult> {
  await claimOutputDir("--out", out, written, force);
  await replaceOtherWeights(out, written, force, log);
  const { cfg, layout, params } = adapter;
  let progress: Progress | undefined;
  const result = await mergeAdapter(
    base,
    cfg,
    layout,
    params,
    (name, write) => writeFileAtomic(`${out}/${name}`, write),
    (bytes, total) => (progress ??= new Progress("merge", { total, unit: "bytes" })).update(bytes),
  );
  progress?.finish();
  // the other files of the base: tokenizer, generation config, index; config.json last (it marks a complete model)
  for (const name of written) {
    if (WEIGHTS.test(name) || name === "config.json" || name === INDEX_FILE) continue;
    await writeFileAtomic(`${out}/${name}`, await Deno.readFile(`${model}/${name}`));
  }
  if (names.includes(INDEX_FILE)) {
    const index = JSON.parse(await Deno.readTextFile(`${model}/${INDEX_FILE}`));
    index.metadata = { ...index.metadata, total_size: result.totalSize };
    index.weight_map = result.weightMap;
    await writeFileAtomic(
      `${out}/${INDEX_FILE}`,
      new TextEncoder().encode(JSON.stringify(index, null, 2) + "\n"),
    );
  }
  const config = JSON.parse(await Deno.readTextFile(`${model}/config.json`));
  if (result.dequantized > 0) {
    delete config.quantization;
    delete config.quantization_config;
  }
  await writeFileAtomic(
    `${out}/config.json`,
    new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n"),
  );
  return result;
}

/**
 * Refuses (or with `force` removes) weight files in `out` that the merge does not write (not in `written`):
 * another model's shards or index beside the merged ones would be loaded instead of them, or mixed in.
 */
async function replaceOtherWeights(
  out: string,
  written: readonly string[],
  force: boolean,
  log: (m: string) => void,
): Promise<void> {
  const others = (await dirFiles(out).list!()).filter((n) => WEIGHTS.test(n) && !written.includes(n));
  if (others.length === 0) return;
  if (!force) {
    throw new Error(
      `--out ${out} holds another model's weights (${others.join(", ")}); use --force to replace them, or ` +
        `another --out`,
    );
  }
  log(`--force: removing ${others.map((n) => `${out}/${n}`).join(", ")} (another model's weights)`);
  for (const n of others) await Deno.remove(`${out}/${n}`);
}

/**
 * Writes `model` (with `adapter` merged, when given) as the GGUF file `out` (given as `flag`); shared with
 * `export --base`.
 */
export async function writeGgufFile(
  flag: string,
  out: string,
  model: string,
  cfg: ModelConfig,
  adapter: { layout: LoraLayout; params: Float32Array } | undefined,
  dtype: string | undefined,
  force: boolean | undefined,
): Promise<void> {
  await claimOutputFile(flag, out, !!force);
  const vocab = await readGgufVocab(model, cfg);
  const base = await openCheckpoint(dirFiles(model));
  let result;
  try {
    await writeFileAtomic(out, async (sink) => {
      result = await writeGgufModel(base, cfg, sink, {
        vocab,
        adapter,
        dtype: dtype?.toUpperCase() as FloatDtype | undefined,
      });
    });
  } finally {
    base.close();
  }
  const r = result!;
  stderrLog()(
    `wrote ${out}: GGUF (llama.cpp qwen2), ${r.tensors} tensors in ${r.dtype}, ${formatMB(r.fileSize)}` +
      (adapter
        ? `; ${r.merged} linears merged (W + ${adapter.layout.scale}·B·A)`
        : "; the base, no adapter") +
      (r.dequantized ? `; ${r.dequantized} quantized tensors dequantized` : ""),
  );
}
