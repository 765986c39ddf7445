/**
 * PEFT LoRA adapters on disk (docs/formats.md): `adapter_config.json` + `adapter_model.safetensors`, read into
 * and written from the engine's flat parameter region.
 *
 * @module
 */
import { type ByteSink, checkModelFiles, type ModelFiles } from "../io/source.ts";
import {
  encodeSafetensors,
  readSafetensorsHeader,
  readTensorF32,
  type SafetensorsFile,
  type TensorEntry,
  writeSafetensors,
} from "../model/safetensors.ts";
import { type LoraLayout, type LoraOptions, parsePeftName, peftName } from "./lora.ts";
import { type AdapterValues, layerOf } from "./adapter_values.ts";
import { describeValue, isThenable } from "../util/describe.ts";

/** The adapter config file name. */
export const ADAPTER_CONFIG = "adapter_config.json";
/** The adapter weights file name. */
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** LoRA options read from an adapter_config.json, and the base model it names. */
export interface AdapterConfig extends Required<Omit<LoraOptions, "targets">> {
  targets: string[];
  baseModel?: string;
}

/** Parses a PEFT LoRA adapter_config.json, rejecting what mesp cannot reproduce exactly. */
export function parseAdapterConfig(text: string, file = ADAPTER_CONFIG): AdapterConfig {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (!j || typeof j !== "object") throw new Error(`${file}: expected a JSON object`);
  if (j.peft_type !== "LORA") {
    throw new Error(`${file}: peft_type is ${JSON.stringify(j.peft_type)}, only "LORA" is supported`);
  }
  const r = j.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) {
    throw new Error(`${file}: r must be a positive integer`);
  }
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !(alpha > 0)) {
    throw new Error(`${file}: lora_alpha must be a positive number`);
  }
  const unsupported: [string, boolean][] = [
    ["use_dora", j.use_dora === true],
    ["fan_in_fan_out", j.fan_in_fan_out === true],
    ["bias", j.bias !== undefined && j.bias !== "none"],
    ["rank_pattern", isNonEmpty(j.rank_pattern)],
    ["alpha_pattern", isNonEmpty(j.alpha_pattern)],
    ["layers_to_transform", j.layers_to_transform != null],
    ["modules_to_save", isNonEmpty(j.modules_to_save)],
    ["lora_bias", j.lora_bias === true],
  ];
  for (const [key, bad] of unsupported) {
    if (bad) throw new Error(`${file}: ${key} = ${JSON.stringify(j[key])} is not supported by mesp`);
  }
  let targets: string[];
  const tm = j.target_modules;
  if (tm === "all-linear") targets = ["all"];
  else if (Array.isArray(tm) && tm.every((t) => typeof t === "string")) {
    targets = tm.map((t) => t.split(".").at(-1)!);
  } else if (tm == null) targets = ["q_proj", "v_proj"]; // PEFT's default for qwen2
  else {throw new Error(
      `${file}: target_modules ${JSON.stringify(tm)} is not supported (use a list of module names)`,
    );}
  return {
    rank: r,
    alpha,
    rslora: j.use_rslora === true,
    targets,
    baseModel: typeof j.base_model_name_or_path === "string" ? j.base_model_name_or_path : undefined,
  };
}

function isNonEmpty(v: unknown): boolean {
  if (v == null) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

/** An adapter opened from a directory: its options and its weights file. */
export interface OpenedAdapter {
  config: AdapterConfig;
  weights: SafetensorsFile;
  name: string;
}

/** Opens `adapter_config.json` and the header of `adapter_model.safetensors` from a directory. */
export async function openAdapter(files: ModelFiles): Promise<OpenedAdapter> {
  checkModelFiles(files, "openAdapter");
  const text = await files.readText(ADAPTER_CONFIG);
  if (text === undefined) {
    throw new Error(`${files.name} has no ${ADAPTER_CONFIG}: not a PEFT adapter directory`);
  }
  const config = parseAdapterConfig(text, `${files.name}/${ADAPTER_CONFIG}`);
  const weights = await readSafetensorsHeader(files.source(ADAPTER_WEIGHTS));
  return { config, weights, name: files.name };
}

/**
 * Throws unless `adapter` is what {@linkcode openAdapter} resolves to, saying what was passed instead (`where`:
 * whose option it is, e.g. `evaluate options`): a path, model files or a train result would otherwise fail on
 * a missing property deep inside.
 */
export function checkOpenedAdapter(adapter: unknown, where?: string): asserts adapter is OpenedAdapter {
  const a = adapter as Record<string, unknown> | null | undefined;
  const config = a?.config as Partial<AdapterConfig> | undefined;
  const weights = a?.weights as Partial<SafetensorsFile> | undefined;
  if (
    typeof a === "object" && a !== null && typeof config === "object" && config !== null &&
    typeof config.rank === "number" && Array.isArray(config.targets) &&
    typeof weights?.tensors?.get === "function" && typeof a.name === "string"
  ) return;
  let got = describeValue(adapter);
  if (isThenable(adapter)) got += " — did you forget await?";
  else if (typeof a?.readText === "function" && typeof a.source === "function") {
    got = "model files: pass them to openAdapter first";
  } else if (typeof a === "string") {
    got += ": open the adapter's directory as files (urlFiles(url); in Deno dirFiles(path) from " +
      "src/io/deno_files.ts) and pass them to openAdapter";
  } else if (a && "layout" in a && "params" in a) {
    got = "a train result: write it as adapter files and open those, openAdapter(memoryFiles({ " +
      '"adapter_config.json": adapterConfigJson(result.layout), "adapter_model.safetensors": ' +
      "encodeLoraTensors(result.layout, result.params) }))";
  }
  throw new TypeError(
    `${where ? `${where}: ` : ""}adapter: expected an opened adapter (await openAdapter(files)), got ${got}`,
  );
}

/**
 * Checks that an adapter fits `layout`: every pair present with the right shape, and nothing else in the
 * file (an adapter made for another model — other sizes, layers or targets — is refused with the first
 * mismatch).
 */
export function checkAdapter(adapter: OpenedAdapter, layout: LoraLayout): void {
  checkOpenedAdapter(adapter);
  const seen = new Set<string>();
  for (const pair of layout.pairs.flat()) {
    for (const which of ["A", "B"] as const) {
      const name = peftName(pair, which);
      const info = adapter.weights.tensors.get(name);
      if (!info) {
        throw new Error(`${adapter.name}: adapter has no tensor ${name}; was it made for another model?`);
      }
      const shape = which === "A" ? [layout.rank, pair.inDim] : [pair.outDim, layout.rank];
      if (info.shape.join() !== shape.join()) {
        // the rank side comes from adapter_config.json's r, the other from the model's sizes
        const rankSide = which === "A" ? 0 : 1, other = 1 - rankSide;
        const why = info.shape.length === 2 && info.shape[other] === shape[other]
          ? `its config's r is ${layout.rank}, but the tensor has rank ${info.shape[rankSide]}`
          : `this model needs [${shape}] (an adapter for a model of other sizes?)`;
        throw new Error(`${adapter.name}: ${name} has shape [${info.shape}]: ${why}`);
      }
      seen.add(name);
    }
  }
  for (const name of adapter.weights.tensors.keys()) {
    if (seen.has(name)) continue;
    const parsed = parsePeftName(name);
    throw new Error(
      `${adapter.name}: unexpected tensor ${name}` +
        (parsed ? ` (layer ${parsed.layer} ${parsed.target}: not in this model's layers/targets)` : ""),
    );
  }
}

/** Copies layer `l`'s adapter tensors into `into` (that layer's `layout.layerElements`; checked first). */
export async function readAdapterLayer(
  adapter: OpenedAdapter,
  layout: LoraLayout,
  l: number,
  into: Float32Array,
): Promise<void> {
  const first = l * layout.layerElements;
  for (const pair of layout.pairs[l]) {
    for (const [which, at, n] of [["A", pair.a, pair.inDim], ["B", pair.b, pair.outDim]] as const) {
      const start = at - first;
      await readTensorF32(
        adapter.weights,
        peftName(pair, which),
        into.subarray(start, start + layout.rank * n),
      );
    }
  }
}

/**
 * Copies an adapter's tensors into `params` (the engine's `lora.params`, laid out by `layout`), after
 * {@linkcode checkAdapter}.
 */
export async function readAdapterInto(
  adapter: OpenedAdapter,
  layout: LoraLayout,
  params: Float32Array,
): Promise<void> {
  checkAdapter(adapter, layout);
  const n = layout.layerElements;
  for (let l = 0; l < layout.pairs.length; l++) {
    await readAdapterLayer(adapter, layout, l, params.subarray(l * n, (l + 1) * n));
  }
}

/** LoRA tensors (or their gradients: same names and shapes) with PEFT names, as views of `values`. */
function loraTensorEntries(
  layout: LoraLayout,
  values: Float32Array,
  extra: Record<string, Float32Array> = {},
): (TensorEntry & { data: Float32Array })[] {
  return loraEntries(layout, (at, n) => values.subarray(at, at + n), extra);
}

/** PEFT-named entries of every pair's A and B, their data from `data(offset, elements)`, then `extra`. */
function loraEntries<D extends TensorEntry["data"]>(
  layout: LoraLayout,
  data: (at: number, n: number, layer: number) => D,
  extra: Record<string, Float32Array>,
): (TensorEntry & { data: D | Float32Array })[] {
  const entries: (TensorEntry & { data: D | Float32Array })[] = [];
  for (const pair of layout.pairs.flat()) {
    const a = data(pair.a, layout.rank * pair.inDim, pair.layer);
    const b = data(pair.b, layout.rank * pair.outDim, pair.layer);
    entries.push({ name: peftName(pair, "A"), dtype: "F32", shape: [layout.rank, pair.inDim], data: a });
    entries.push({ name: peftName(pair, "B"), dtype: "F32", shape: [pair.outDim, layout.rank], data: b });
  }
  for (const [name, data] of Object.entries(extra)) {
    entries.push({ name, dtype: "F32", shape: [data.length], data });
  }
  return entries;
}

/**
 * Streams LoRA tensors (see {@linkcode loraTensorEntries}) as a safetensors file to `sink`; layered values
 * (a spilled run's) are read a layer at a time as the writer reaches each tensor.
 */
export async function writeLoraTensors(
  sink: ByteSink,
  layout: LoraLayout,
  values: AdapterValues,
  extra: Record<string, Float32Array> = {},
): Promise<void> {
  const n = layout.layerElements;
  const entries = values instanceof Float32Array
    ? loraTensorEntries(layout, values, extra)
    : loraEntries(layout, (at, count, l) => () =>
      layerOf(values, l, n).subarray(at - l * n, at - l * n + count), extra);
  await writeSafetensors(sink, entries, { format: "pt" });
}

/** LoRA tensors as safetensors bytes (for small adapters and tests; large ones stream). */
export function encodeLoraTensors(
  layout: LoraLayout,
  values: Float32Array,
  extra: Record<string, Float32Array> = {},
): Uint8Array {
  checkLayout(layout, "encodeLoraTensors");
  if (!(values instanceof Float32Array) || values.length !== layout.totalElements) {
    const v = values as unknown as Record<string, unknown>;
    const hint = v && typeof v === "object" && "params" in v ? " (a train result: pass result.params)" : "";
    throw new TypeError(
      `encodeLoraTensors: values must be the layout's ${layout.totalElements} parameters as a Float32Array, ` +
        `got ${describeValue(values)}${values instanceof Float32Array ? ` of ${values.length}` : ""}${hint}`,
    );
  }
  return encodeSafetensors(loraTensorEntries(layout, values, extra), { format: "pt" });
}

/** adapter_config.json as PEFT writes it (sorted keys, indent 2). */
export function adapterConfigJson(layout: LoraLayout, baseModel?: string): string {
  checkLayout(layout, "adapterConfigJson");
  const cfg: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel ?? null,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: layout.alpha,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: "LORA",
    r: layout.rank,
    rank_pattern: {},
    revision: null,
    target_modules: [...layout.targets],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: layout.rslora,
  };
  return JSON.stringify(cfg, null, 2) + "\n";
}

/** Throws unless `layout` is a {@linkcode LoraLayout} (a train result's `layout`, `loraLayout(...)`). */
function checkLayout(layout: unknown, where: string): asserts layout is LoraLayout {
  const l = layout as Partial<LoraLayout> | null | undefined;
  if (l && Array.isArray(l.pairs) && Array.isArray(l.targets) && typeof l.totalElements === "number") return;
  const hint = l && typeof l === "object" && "layout" in l ? " (a train result: pass result.layout)" : "";
  throw new TypeError(`${where}: expected a LoRA layout, got ${describeValue(layout)}${hint}`);
}
