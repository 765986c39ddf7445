/**
 * `merge`: base model + adapter → a Hugging Face safetensors model (`W + s·B·A` in the base's dtype; an
 * MLX-quantized base is written dequantized, in its scales' dtype), with the base's other files copied;
 * or, with `--format gguf`, one GGUF file llama.cpp runs (`llama-cli -m`), tokenizer included.
 *
 * @module
 */
import { type CommandSpec, parseArgs } from "./args.ts";
import { loadAdapter, readGgufVocab } from "./adapter_files.ts";
import { claimOutputDir, claimOutputFile } from "./paths.ts";
import { adapterRun, cacheDir, stderrLog, warnOtherBase } from "./common.ts";
import { modelFingerprint } from "../model/pack_files.ts";
import { dirFiles, writeFileAtomic } from "../io/deno_files.ts";
import { INDEX_FILE, openCheckpoint } from "../model/safetensors.ts";
import { type FloatDtype, mergeAdapter } from "../run/merge.ts";
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

const WEIGHTS = /\.safetensors$/;

/** Runs `merge`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const log = stderrLog();
  const { model, cfg, layout, params } = await loadAdapter(args.adapter, args.model);
  const out = args.out.replace(/[\\/]+$/, "");
  if (out === model.replace(/[\\/]+$/, "")) throw new Error(`--out ${out} is the base model itself`);
  if (args.dtype !== undefined && args.format !== "gguf") {
    throw new Error("--dtype applies to --format gguf only");
  }
  const trained = await adapterRun(args.adapter, log);
  if (trained?.config.model !== undefined) {
    warnOtherBase(
      trained,
      await modelFingerprint(model, { cacheDir: cacheDir(), onStatus: log }),
      model,
      log,
    );
  }
  if (args.format === "gguf") {
    await writeGgufFile("--out", out, model, cfg, { layout, params }, args.dtype, args.force);
    return 0;
  }
  // the base's files, merged or copied (config.json last: it marks a complete model)
  const names = await dirFiles(model).list!();
  await claimOutputDir("--out", out, names, args.force);
  const base = await openCheckpoint(dirFiles(model));
  let result;
  try {
    result = await mergeAdapter(
      base,
      cfg,
      layout,
      params,
      (name, write) => writeFileAtomic(`${out}/${name}`, write),
    );
  } finally {
    base.close();
  }
  // the other files of the base: tokenizer, generation config, index; config.json last (it marks a complete model)
  for (const name of names) {
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
  log(
    `wrote ${out}: ${result.merged} linears merged (W + ${layout.scale}·B·A)` +
      (result.dequantized ? `, ${result.dequantized} quantized tensors dequantized` : "") +
      `, ${result.files.length} safetensors file(s)`,
  );
  return 0;
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
