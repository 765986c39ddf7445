/**
 * What `export` and `merge` share: a trained PEFT adapter read back into the engine's flat parameter layout,
 * with the config of the base model it was trained on, and output paths that are never overwritten
 * without `--force`.
 *
 * @module
 */
import { openAdapterDir } from "./common.ts";
import { readAdapterInto } from "../engine/adapter.ts";
import { type LoraLayout, loraLayout } from "../engine/lora.ts";
import type { ModelConfig } from "../model/config.ts";
import { readModelConfig } from "../model/pack_files.ts";
import { resolveModelDir } from "./hub_cache.ts";
import type { GgufValue } from "../model/gguf.ts";
import { ggufVocabMetadata } from "../text/gguf_vocab.ts";

/** An adapter's parameters with the layout and base config they belong to. */
export interface LoadedAdapter {
  /** The base model directory. */
  model: string;
  cfg: ModelConfig;
  layout: LoraLayout;
  params: Float32Array;
}

/**
 * Reads the PEFT adapter in `dir` for the base model `model` (default: the adapter's
 * `base_model_name_or_path`, which `train` sets to the model directory).
 */
export async function loadAdapter(dir: string, model?: string): Promise<LoadedAdapter> {
  const adapter = await openAdapterDir(dir);
  let base = model ?? adapter.config.baseModel;
  if (!base) {
    throw new Error(`${dir}/adapter_config.json names no base model (base_model_name_or_path): give --model`);
  }
  let cfg: ModelConfig;
  try {
    // a Hub id (as PEFT adapters trained elsewhere name their base) is looked up in the Hugging Face cache
    base = (await resolveModelDir(base))?.dir ?? base;
    cfg = await readModelConfig(base);
  } catch (err) {
    const hint = model ? "" : ` (the adapter's base_model_name_or_path; give --model to use another)`;
    throw new Error(`base model ${base}${hint}: ${(err as Error).message}`);
  }
  const layout = loraLayout(cfg, adapter.config);
  const params = new Float32Array(layout.totalElements);
  await readAdapterInto(adapter, layout, params);
  adapter.weights.source.close?.();
  return { model: base, cfg, layout, params };
}

/**
 * The `tokenizer.*` GGUF metadata of the model in `dir` (its `tokenizer.json`, `tokenizer_config.json`,
 * and the special ids of its config).
 */
export async function readGgufVocab(dir: string, cfg: ModelConfig): Promise<Record<string, GgufValue>> {
  const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
  let tokenizer: string;
  try {
    tokenizer = await read("tokenizer.json");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new Error(`${dir}/tokenizer.json is missing: a GGUF model carries its tokenizer, so it is needed`);
  }
  const config = await read("tokenizer_config.json").catch(() => undefined);
  return ggufVocabMetadata(
    tokenizer,
    config,
    cfg.vocabSize,
    { bos: cfg.bosTokenId, eos: cfg.eosTokenIds[0], pad: cfg.padTokenId },
    `${dir}/tokenizer.json`,
  );
}
