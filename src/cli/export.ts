/**
 * `export`: a trained adapter in the format MLX-LM (`--format mlx`: a directory with `adapters.safetensors`
 * and `adapter_config.json`) or llama.cpp (`--format gguf`: one GGUF LoRA file for `--lora`; `--base` also
 * writes the base model as GGUF, for `-m`) loads.
 *
 * @module
 */
import { type CommandSpec, parseArgs } from "./args.ts";
import { resolve } from "node:path";
import { loadAdapter } from "./adapter_files.ts";
import { claimOutputDir, claimOutputFile, refuseInsideModel } from "./paths.ts";
import { stderrLog, warnAdapterRun } from "./common.ts";
import { writeFileAtomic } from "../io/deno_files.ts";
import { writeSafetensors } from "../model/safetensors.ts";
import { writeGguf } from "../model/gguf.ts";
import { writeGgufFile } from "./merge.ts";
import {
  ggufAdapterMetadata,
  ggufAdapterTensors,
  MLX_ADAPTER_CONFIG,
  MLX_ADAPTER_WEIGHTS,
  mlxAdapterConfigJson,
  mlxAdapterTensors,
} from "../run/export_adapter.ts";

/** One line for the command list. */
export const description = "write a trained adapter for MLX-LM (--format mlx) or llama.cpp (--format gguf)";

/** The command's flags. */
export const SPEC = {
  name: "export",
  description,
  flags: {
    adapter: {
      type: "string",
      value: "DIR",
      required: true,
      description: "the PEFT adapter (a run directory)",
    },
    format: {
      type: "string",
      choices: ["mlx", "gguf"],
      required: true,
      description: "mlx: MLX-LM adapter directory; gguf: llama.cpp LoRA adapter file",
    },
    out: {
      type: "string",
      value: "PATH",
      description: "output directory (mlx) or file (gguf); default <adapter>/mlx or <adapter>/adapter.gguf",
    },
    model: {
      type: "string",
      value: "DIR",
      description: "the base model (default: the adapter's base_model_name_or_path)",
    },
    base: {
      type: "string",
      value: "FILE",
      description: "gguf only: also write the base model as this GGUF file (llama-cli -m FILE --lora …)",
    },
    dtype: {
      type: "string",
      choices: ["f32", "f16", "bf16"],
      description: "with --base: the base's matrices' type (default: the base's own)",
    },
    force: { type: "boolean", description: "replace an existing output" },
  },
  epilog: "examples:\n  deno task export --adapter runs/lumen --format mlx\n" +
    "  deno task export --adapter runs/lumen --format gguf --out lumen-lora.gguf --base lumen-base.gguf",
} as const satisfies CommandSpec;

/** Runs `export`. */
export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, SPEC);
  const log = stderrLog();
  const { model, cfg, layout, params } = await loadAdapter(args.adapter, args.model);
  const adapterDir = args.adapter.replace(/[\\/]+$/, "");
  if (args.base !== undefined && args.format !== "gguf") {
    throw new Error("--base applies to --format gguf only");
  }
  if (args.dtype !== undefined && args.base === undefined) throw new Error("--dtype applies to --base only");
  await warnAdapterRun(args.adapter, model, log);
  if (args.format === "mlx") {
    const out = args.out ?? `${adapterDir}/mlx`;
    await refuseInsideModel("--out", out, model, "dir");
    await claimOutputDir("--out", out, [MLX_ADAPTER_WEIGHTS, MLX_ADAPTER_CONFIG], args.force);
    await writeFileAtomic(
      `${out}/${MLX_ADAPTER_WEIGHTS}`,
      (sink) => writeSafetensors(sink, mlxAdapterTensors(layout, params)).then(() => {}),
    );
    await writeFileAtomic(
      `${out}/${MLX_ADAPTER_CONFIG}`,
      new TextEncoder().encode(mlxAdapterConfigJson(layout, cfg, model)),
    );
    log(
      `wrote ${out}/${MLX_ADAPTER_WEIGHTS} and ${MLX_ADAPTER_CONFIG} (MLX-LM; ${cfg.numLayers} layers, ` +
        `rank ${layout.rank}, scale ${layout.scale})`,
    );
    log(`use: mlx_lm.generate --model <the base in MLX format> --adapter-path ${out} --prompt "…"`);
  } else {
    const out = args.out ?? `${adapterDir}/adapter.gguf`;
    if (args.base !== undefined && resolve(args.base) === resolve(out)) {
      throw new Error(`--base ${args.base} is --out too: the adapter and the base model are two files`);
    }
    // both claimed before either is written
    await refuseInsideModel("--out", out, model, "file");
    await claimOutputFile("--out", out, args.force);
    if (args.base !== undefined) {
      await refuseInsideModel("--base", args.base, model, "file");
      await claimOutputFile("--base", args.base, args.force);
    }
    const tensors = ggufAdapterTensors(layout, params);
    await writeFileAtomic(
      out,
      (sink) => writeGguf(sink, ggufAdapterMetadata(layout), tensors).then(() => {}),
    );
    log(
      `wrote ${out} (llama.cpp LoRA adapter; ${tensors.length} tensors, alpha ${layout.scale * layout.rank})`,
    );
    if (args.base !== undefined) {
      await writeGgufFile("--base", args.base, model, cfg, undefined, args.dtype, args.force);
    }
    log(`use: llama-cli -m ${args.base ?? "<the base as GGUF: --base FILE>"} --lora ${out} -p "…"`);
  }
  return 0;
}
