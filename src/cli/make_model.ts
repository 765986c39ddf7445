/**
 * `make-model`: writes a random Qwen2 checkpoint with real shapes and the real Qwen tokenizer files into a
 * directory, in Hugging Face layout or MLX-quantized. The Deno edge of `src/model/make_model.ts`.
 *
 * @module
 */
import { MAX_SEED } from "../run/run_options.ts";
import { formatCount } from "../util/count.ts";
import { type CommandSpec, parseArgs } from "./args.ts";
import { Progress } from "./progress.ts";
import { type PresetName, PRESETS } from "../model/config.ts";
import {
  FLOAT_DTYPES,
  makeModel,
  MODEL_FORMATS,
  type ModelPlan,
  type ModelSink,
  planModel,
  PRESET_INIT,
} from "../model/make_model.ts";
import { INDEX_FILE } from "../model/safetensors.ts";
import { writeFileAtomic } from "../io/deno_files.ts";
import { formatMB } from "../runtime/arena.ts";
import { processMemory } from "../runtime/memory.ts";
import { qwenTokenizerFiles } from "../text/qwen_tokenizer_files.ts";

/** One line for the command list. */
export const description =
  "write a random Qwen2 checkpoint (real shapes, Qwen tokenizer) for tests and demos";

const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** The command's flags. */
export const SPEC = {
  name: "make-model",
  description,
  flags: {
    preset: {
      type: "string",
      value: "NAME",
      choices: PRESET_NAMES,
      required: true,
      description: "model shape",
    },
    out: {
      type: "string",
      value: "DIR",
      required: true,
      description: "output directory (created if missing)",
    },
    dtype: {
      type: "string",
      choices: FLOAT_DTYPES,
      description:
        "float storage type (default: bf16, f32 for tiny); for mlx formats the scale/bias type (bf16 or f16)",
    },
    format: {
      type: "string",
      value: "FORMAT",
      choices: MODEL_FORMATS,
      default: "hf",
      description: "hf safetensors, or MLX affine-quantized (group 64)",
    },
    seed: {
      type: "integer",
      default: 0,
      min: 0,
      max: MAX_SEED,
      description: "PRNG seed; same seed, same bytes",
    },
    shardSize: {
      type: "size",
      default: "5GB",
      min: 1,
      description: "split into model-0000i-of-0000n.safetensors above this many tensor bytes",
    },
    force: { type: "boolean", description: "write into a non-empty DIR (replaces its model files)" },
    dryRun: { type: "boolean", description: "print the tensors, files and sizes; write nothing" },
  },
  epilog: "example: deno task make-model --preset qwen2.5-0.5b --out models/random-0.5b --format mlx-q4",
} as const satisfies CommandSpec;

/** Plan as text: one line per tensor, then per file, then totals. */
export function formatModelPlan(plan: ModelPlan): string {
  const lines = plan.tensors.map((t) =>
    `${t.name.padEnd(52)} ${t.dtype.padEnd(4)} ${JSON.stringify(t.shape).padEnd(16)} ${
      String(t.byteLength).padStart(12)
    }  ${t.file}`
  );
  lines.push("");
  for (const f of plan.files) {
    lines.push(`${f.name}: ${f.tensors.length} tensors, ${formatMB(f.fileSize)}`);
  }
  lines.push(
    `${plan.tensors.length} tensors, ${formatCount(plan.parameters)} parameters, ` +
      `${formatCount(plan.totalBytes)} tensor bytes (${formatMB(plan.fileBytes)} on disk), ` +
      `format ${plan.format}, dtype ${plan.dtype}`,
  );
  return lines.join("\n");
}

const MODEL_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors$/;

async function prepareDir(dir: string, force: boolean): Promise<string[]> {
  const existing: string[] = [];
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new Error(`--out ${dir} exists and is not a directory`);
    for await (const e of Deno.readDir(dir)) existing.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(dir, { recursive: true });
  }
  if (existing.length > 0 && !force) {
    throw new Error(`--out ${dir} is not empty (${existing.length} entries); use --force to write into it`);
  }
  return existing;
}

function dirSink(dir: string): ModelSink {
  const path = (name: string) => `${dir.replace(/[\\/]+$/, "")}/${name}`;
  return {
    writeText: (name, text) => writeFileAtomic(path(name), new TextEncoder().encode(text)),
    writeFile: (name, write) => writeFileAtomic(path(name), write),
  };
}

/** Runs `make-model` with its flags; resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const config = PRESETS[args.preset];
  const options = { format: args.format, dtype: args.dtype, seed: args.seed, shardSize: args.shardSize };
  const plan = planModel(config, options);
  if (args.dryRun) {
    console.log(formatModelPlan(plan));
    return 0;
  }
  const existing = await prepareDir(args.out, args.force);
  const tokenizer = await qwenTokenizerFiles();
  const progress = new Progress("make-model", { total: plan.totalBytes, unit: "bytes" });
  await makeModel(config, dirSink(args.out), {
    ...options,
    init: PRESET_INIT[args.preset],
    tokenizer,
    onProgress(p) {
      // bytes only: tensors differ in size by 1000×, so a tensor count beside the bar would disagree with it
      progress.update(p.bytes, { rss: formatMB(processMemory().rss) });
    },
  });
  progress.finish();
  // With --force, model files of an earlier, differently sharded checkpoint would shadow the new one.
  const wanted = new Set([...plan.files.map((f) => f.name), ...plan.textFiles]);
  for (const name of existing) {
    if ((MODEL_FILE.test(name) || name === INDEX_FILE) && !wanted.has(name)) {
      await Deno.remove(`${args.out}/${name}`);
    }
  }
  const mem = processMemory();
  console.error(
    `wrote ${args.out}: ${plan.files.length} safetensors file(s), ${plan.tensors.length} tensors, ` +
      `${formatMB(plan.fileBytes)}; peak RSS ${formatMB(mem.peak ?? mem.rss)}`,
  );
  return 0;
}
