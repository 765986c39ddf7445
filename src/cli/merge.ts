/**
 * `merge`: base model + adapter → a Hugging Face safetensors model (`W + s·B·A` in the base's dtype; an
 * MLX-quantized base is written dequantized, in its scales' dtype), with the base's other files copied.
 *
 * @module
 */
import { type CommandSpec, parseArgs } from "./args.ts";
import { checkWritable, loadAdapter } from "./adapter_files.ts";
import { stderrLog } from "./common.ts";
import { dirFiles, writeFileAtomic } from "../io/deno_files.ts";
import { INDEX_FILE, openCheckpoint } from "../model/safetensors.ts";
import { mergeAdapter } from "../run/merge.ts";

/** One line for the command list. */
export const description = "merge an adapter into its base model (Hugging Face safetensors, base dtype)";

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
    out: { type: "string", value: "DIR", required: true, description: "directory of the merged model" },
    model: {
      type: "string",
      value: "DIR",
      description: "the base model (default: the adapter's base_model_name_or_path)",
    },
    force: { type: "boolean", description: "write into an existing directory (replacing its model files)" },
  },
  epilog: "example: deno task merge --adapter runs/lumen --out models/lumen-merged",
} as const satisfies CommandSpec;

const WEIGHTS = /\.safetensors$/;

/** Runs `merge`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const log = stderrLog();
  const { model, cfg, layout, params } = await loadAdapter(args.adapter, args.model);
  const out = args.out.replace(/[\\/]+$/, "");
  if (out === model.replace(/[\\/]+$/, "")) throw new Error(`--out ${out} is the base model itself`);
  await checkWritable(`${out}/config.json`, args.force, "a model in");
  await Deno.mkdir(out, { recursive: true });
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
  const names = await dirFiles(model).list!();
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
