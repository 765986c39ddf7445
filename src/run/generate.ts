/**
 * Text generation with a KV cache: the prompt is prefilled in one pass, then one token per step, sampling
 * with temperature and nucleus (top-p) from a seeded generator.
 *
 * @module
 */
import { checkBudget, checkOptions, GENERATE_OPTIONS } from "./run_options.ts";
import { Engine } from "../engine/engine.ts";
import { embed, finalNorm, layerForward } from "../engine/forward.ts";
import { chunkLogits } from "../engine/loss.ts";
import { type OpenedAdapter, readAdapterInto } from "../engine/adapter.ts";
import { loraLayout } from "../engine/lora.ts";
import { checkPack, type Pack } from "../model/pack.ts";
import type { KernelLocation, Variant } from "../runtime/kernels.ts";
import { describeValue } from "../util/describe.ts";
import { badTokenIdAt } from "../data/sequence.ts";

/** Options for {@linkcode generate}. */
export interface GenerateOptions {
  /** Most new tokens (default 128). */
  maxTokens?: number;
  /** Sampling temperature; 0 = greedy (default 0.7). */
  temperature?: number;
  /** Nucleus sampling mass (default 0.8). */
  topP?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Token ids that end generation (default: the model's, `pack.config.eosTokenIds`; `[]` for none). */
  eosTokenIds?: readonly number[];
  adapter?: OpenedAdapter;
  /** Stream the weights instead of keeping them resident (less memory, slower). */
  streamWeights?: boolean;
  budget?: number;
  variant?: Variant;
  /** Kernel threads (default 1); results are bitwise the same for any count. */
  threads?: number;
  /** Where the wasm files and the pool worker are, or precompiled modules (default: next to mesp). */
  kernels?: KernelLocation;
  /** Sees the full-vocabulary logits each token is sampled from (a buffer reused for the next token). */
  onLogits?: (logits: Float32Array) => void;
}

/**
 * Generates tokens after `prompt`, yielding each as it is sampled (an end-of-sequence id included, then
 * stops). The arguments are checked when it is called, before the first token is asked for.
 */
export function generate(
  pack: Pack,
  prompt: ArrayLike<number>,
  options: GenerateOptions = {},
): AsyncGenerator<number> {
  checkPack(pack, "generate");
  checkOptions("generate options", options, GENERATE_OPTIONS);
  checkBudget("generate options", options.budget);
  checkTokenIds("generate: prompt", prompt, pack.config.vocabSize);
  const maxTokens = options.maxTokens ?? 128;
  const T0 = prompt.length;
  if (T0 < 1) throw new Error("generate: the prompt is empty");
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
  }
  const positions = pack.config.maxPositionEmbeddings;
  if (T0 + maxTokens > positions) {
    throw new RangeError(
      `a ${T0}-token prompt and ${maxTokens} new tokens need ${T0 + maxTokens} positions; ` +
        `the model has ${positions} (lower maxTokens to ${
          Math.max(0, positions - T0)
        } or shorten the prompt)`,
    );
  }
  // the model's own end-of-sequence ids unless the caller says otherwise ([] for none); not bounded by the
  // vocabulary, as a tokenizer's may lie past a small test model's
  const eos = options.eosTokenIds ?? pack.config.eosTokenIds;
  checkTokenIds("generate options: eosTokenIds", eos);
  const sample = sampler(options); // checks temperature and topP before any memory is planned
  return tokens(pack, Int32Array.from(prompt), maxTokens, new Set(eos), sample, options);
}

/**
 * Throws unless `ids` (`what`, e.g. `generate: prompt`) is an array or typed array of integer token ids ≥ 0,
 * and below `vocabSize` when given, naming the first one at fault.
 */
function checkTokenIds(what: string, ids: unknown, vocabSize?: number): asserts ids is ArrayLike<number> {
  if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) && !(ids instanceof DataView))) {
    const hint = Number.isInteger(ids) ? ` (one id is a list of one: [${ids}])` : "";
    throw new TypeError(`${what} must be an array of token ids, got ${describeValue(ids)}${hint}`);
  }
  const list = ids as ArrayLike<unknown>, i = badTokenIdAt(list, vocabSize);
  if (i >= 0) {
    const shown = typeof list[i] === "string" ? JSON.stringify(list[i]) : String(list[i]);
    const range = vocabSize === undefined
      ? "integers ≥ 0"
      : `integers from 0 to ${vocabSize - 1} (the vocabulary)`;
    throw new TypeError(`${what}[${i}] is ${shown}: token ids are ${range}`);
  }
}

/** The generation itself, on arguments {@linkcode generate} checked. */
async function* tokens(
  pack: Pack,
  prompt: Int32Array,
  maxTokens: number,
  eos: Set<number>,
  sample: (logits: Float32Array) => number,
  options: GenerateOptions,
): AsyncGenerator<number> {
  const T0 = prompt.length;
  const lora = options.adapter ? loraLayout(pack.config, options.adapter.config) : undefined;
  const e = await Engine.create(pack, {
    mode: "generate",
    seqLen: Math.max(2, T0),
    maxPositions: T0 + maxTokens,
    lora,
    resident: !options.streamWeights,
    budget: options.budget,
    variant: options.variant,
    threads: options.threads,
    kernels: options.kernels,
  });
  // a generator may be abandoned mid-way: `finally` runs on return() too, closing the workers
  try {
    if (options.adapter) await readAdapterInto(options.adapter, lora!, e.arena.f32("lora.params"));
    const { L, V } = e.D;
    const logits = new Float32Array(V);
    const one = new Int32Array(1);
    let pos = 0, T = T0, ids: ArrayLike<number> = prompt;
    for (let n = 0; n < maxTokens; n++) {
      await embed(e, ids, T);
      for (let l = 0; l < L; l++) {
        await e.loadLayer(l, L - 1);
        await layerForward(e, l, T, pos); // into layer l's rows of the key/value cache
      }
      finalNorm(e, T);
      await lastRowLogits(e, T - 1, logits);
      options.onLogits?.(logits);
      const next = sample(logits);
      yield next;
      if (eos.has(next)) return;
      pos += T;
      T = 1;
      one[0] = next;
      ids = one;
    }
  } finally {
    e.close();
  }
}

/** Full-vocabulary logits of one row of `act.xn`, streaming the LM head. */
async function lastRowLogits(e: Engine, row: number, out: Float32Array): Promise<void> {
  const { Vc } = e.D;
  for (let c = 0; c < e.weights.vocabChunks; c++) {
    const vc = await e.weights.loadVocabChunk(c);
    const p = chunkLogits(e, row, row + 1, vc) >>> 2;
    out.set(e.F.subarray(p + row * Vc, p + row * Vc + vc), c * Vc);
  }
}

/** Greedy, or temperature + top-p sampling with a seeded xorshift generator. */
export function sampler(
  options: Pick<GenerateOptions, "temperature" | "topP" | "seed">,
): (logits: Float32Array) => number {
  const temperature = options.temperature ?? 0.7, topP = options.topP ?? 0.8;
  if (!(temperature >= 0 && Number.isFinite(temperature))) {
    throw new RangeError(`temperature must be a finite number ≥ 0 (0 = greedy), got ${temperature}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  let s = (options.seed ?? 0) >>> 0 ^ 0x9e3779b9;
  const random = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  // candidate indices and weights, sized on the first call and reused for every token after it
  let cand = new Int32Array(0), w = new Float64Array(0);
  return (logits) => {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    if (cand.length < logits.length) {
      [cand, w] = [new Int32Array(logits.length), new Float64Array(logits.length)];
    }
    // candidates within a factor 1e-6 of the top probability; the rest cannot matter for top-p ≤ 1 − 1e-3
    const cut = logits[best] - temperature * Math.log(1e6);
    let n = 0;
    for (let i = 0; i < logits.length; i++) if (logits[i] >= cut) cand[n++] = i;
    // best first, equal logits in index order; in place (a sort with a comparator copies the candidates,
    // all of a near-uniform vocabulary's, into garbage each token: +26 MB of peak in 12 tokens of the tiny model)
    sortBest(cand, n, logits);
    let total = 0;
    for (let i = 0; i < n; i++) total += w[i] = Math.exp((logits[cand[i]] - logits[best]) / temperature);
    let keep = 0, mass = 0;
    while (keep < n && mass < topP * total) mass += w[keep++];
    let u = random() * mass;
    for (let i = 0; i < keep; i++) {
      u -= w[i];
      if (u <= 0) return cand[i];
    }
    return cand[keep - 1];
  };
}

/**
 * Sorts `idx[0, n)` best first: by logit descending, equal logits by index ascending. A heapsort, in place:
 * nothing allocated.
 */
function sortBest(idx: Int32Array, n: number, logits: Float32Array): void {
  // the heap's root is its worst candidate: moved to the end each time, the best end up first
  const worse = (a: number, b: number) => logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
  const sift = (i: number, size: number) => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const m = l + 1 < size && worse(idx[l + 1], idx[l]) ? l + 1 : l;
      if (!worse(idx[m], idx[i])) return;
      const t = idx[i];
      idx[i] = idx[m];
      idx[m] = t;
      i = m;
    }
  };
  for (let i = (n >> 1) - 1; i >= 0; i--) sift(i, n);
  for (let end = n - 1; end > 0; end--) {
    const t = idx[0];
    idx[0] = idx[end];
    idx[end] = t;
    sift(0, end);
  }
}
