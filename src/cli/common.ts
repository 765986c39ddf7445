/**
 * What the model commands share: the flags that pick a model, its weight format, the cache, the memory budget
 * and the kernel variant, and the steps that open them.
 *
 * @module
 */
import { formatMB } from "../runtime/arena.ts";
import { processMemory } from "../runtime/memory.ts";
import { type Variant, VARIANTS } from "../runtime/kernels.ts";
import { type Pack, PACK_FORMATS, type PackFormat } from "../model/pack.ts";
import { loadOrBuildPack } from "../model/pack_files.ts";
import { loadOrBuildTokenCache } from "../data/token_cache_files.ts";
import type { Sequence } from "../run/evaluate.ts";
import { dirFiles } from "../io/deno_files.ts";
import { openAdapter, type OpenedAdapter } from "../engine/adapter.ts";
import type { FlagSpec } from "./args.ts";
import { readModelConfig } from "../model/pack_files.ts";
import { parseJsonl, tokenizeExample } from "../data/dataset.ts";
import type { Tokenizer } from "../text/tokenizer.ts";

/**
 * Memory a Deno process holds besides the arena: the runtime itself (measured idle: 32 MB RSS), the
 * compiled kernels, the JS heap of the host and I/O buffers. Added to the arena to predict the peak.
 */
export const RUNTIME_BYTES = 40e6;

/** Flags every model command takes. */
export const MODEL_FLAGS = {
  model: {
    type: "string",
    value: "DIR",
    required: true,
    description: "model directory (config.json, *.safetensors, tokenizer)",
  },
  weights: {
    type: "string",
    choices: PACK_FORMATS,
    default: "q4",
    description: "weight format the model is packed to (q4 as the MeSP paper; f32/bf16/f16 for exact checks)",
  },
  cacheDir: {
    type: "string",
    value: "DIR",
    description: "weight packs and token caches (default $MESP_CACHE or ~/.cache/mesp)",
  },
  maxMemory: {
    type: "size",
    description: "refuse to start if the predicted whole-process peak is larger (e.g. 100MB)",
  },
  variant: {
    type: "string",
    choices: VARIANTS,
    description: "kernel variant (default: fastest the runtime supports)",
  },
} as const satisfies Record<string, FlagSpec>;

/** The cache directory: the flag, `$MESP_CACHE`, or `~/.cache/mesp`. */
export function cacheDir(flag?: string): string {
  if (flag) return flag;
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  return env("MESP_CACHE") ?? `${env("XDG_CACHE_HOME") ?? `${env("HOME") ?? "."}/.cache`}/mesp`;
}

/** Arena budget from a whole-process `--max-memory`. */
export function arenaBudget(maxMemory?: number): number | undefined {
  if (maxMemory === undefined) return undefined;
  if (maxMemory <= RUNTIME_BYTES) {
    throw new Error(
      `--max-memory ${formatMB(maxMemory)} is below what the runtime alone needs (${
        formatMB(RUNTIME_BYTES)
      })`,
    );
  }
  return maxMemory - RUNTIME_BYTES;
}

/** Opens (building once if needed) the weight pack of `--model` in `--weights`. */
export async function openModelPack(
  args: { model: string; weights: string; cacheDir?: string },
  log: (m: string) => void,
): Promise<Pack> {
  const { pack } = await loadOrBuildPack(args.model, {
    format: args.weights as PackFormat,
    cacheDir: `${cacheDir(args.cacheDir)}/packs`,
    onStatus: log,
  });
  return pack;
}

/**
 * Tokenizes a JSONL file with the model's tokenizer (in a child process, cached) into sequences. A model
 * directory without `tokenizer.json` can still be used with pre-tokenized `{"input_ids": [...]}` lines.
 */
export async function loadSequences(
  dataPath: string,
  args: { model: string; cacheDir?: string },
  seqLen: number,
  log: (m: string) => void,
): Promise<Sequence[]> {
  if (!await fileExists(`${args.model}/tokenizer.json`)) {
    return await pretokenized(dataPath, args.model, seqLen);
  }
  const { cache } = await loadOrBuildTokenCache({
    dataPath,
    tokenizerDir: args.model,
    cacheDir: `${cacheDir(args.cacheDir)}/tokens`,
    seqLen,
    onStatus: log,
  });
  const out: Sequence[] = [];
  for (let i = 0; i < cache.count; i++) out.push(cache.example(i));
  if (out.length === 0) throw new Error(`${dataPath}: no usable examples`);
  return out;
}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function pretokenized(dataPath: string, model: string, seqLen: number): Promise<Sequence[]> {
  const cfg = await readModelConfig(model);
  let text: string;
  try {
    text = await Deno.readTextFile(dataPath);
  } catch {
    throw new Error(`${dataPath}: dataset file not found`);
  }
  const records = parseJsonl(text, { file: dataPath });
  const bad = records.find((r) => r.kind !== "tokens");
  if (bad) {
    throw new Error(
      `${bad.file}:${bad.line}: ${model} has no tokenizer.json, so only pre-tokenized {"input_ids": [...]} lines can be used`,
    );
  }
  const vocab = { vocabSize: cfg.vocabSize } as Tokenizer;
  return records.map((r) => tokenizeExample(r, vocab, { seqLen })).filter((e) => e.ids.length >= 2);
}

/** Opens a PEFT adapter directory. */
export function openAdapterDir(dir: string): Promise<OpenedAdapter> {
  return openAdapter(dirFiles(dir));
}

/** The variant flag as a kernel variant. */
export function variantOf(flag?: string): Variant | undefined {
  return flag as Variant | undefined;
}

/** "peak memory 84.2 MB (whole process, VmHWM)". */
export function peakMemoryLine(): string {
  const m = processMemory();
  return m.peak !== undefined
    ? `peak memory ${formatMB(m.peak)} (whole process, VmHWM)`
    : `memory ${formatMB(m.rss)} (resident now; this platform reports no peak)`;
}

/** Whole-process peak in MB, if known. */
export function peakMB(): number | undefined {
  const m = processMemory();
  return m.peak === undefined ? undefined : +(m.peak / 1e6).toFixed(1);
}

/** A status logger that writes to stderr. */
export function stderrLog(quiet = false): (m: string) => void {
  return (m: string) => {
    if (!quiet) console.error(m);
  };
}
