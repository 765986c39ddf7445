/**
 * The library's run options checked before any work: a misspelled option name (`step` for `steps`), a value
 * outside its choices (`method: "mesb"`), a number of the wrong kind (`steps: 1.5`, `lr: "0.001"`) is an
 * error naming it, since plain JavaScript callers (the browser build has no types) would otherwise run with
 * a default in its place. Each list of names is the interface's own (`tests/run_options_test.ts` compares
 * them with the source).
 *
 * @module
 */
import { didYouMean } from "../util/nearest.ts";
import { describeValue, isThenable } from "../util/describe.ts";
import { badTokenIdAt } from "../data/sequence.ts";
import { checkKernelLocation, VARIANTS } from "../runtime/kernels.ts";
import { checkOpenedAdapter } from "../engine/adapter.ts";

/** `train`'s options ({@linkcode TrainOptions}). */
export const TRAIN_OPTIONS = [
  "method",
  "zoEps",
  "seqLen",
  "steps",
  "epochs",
  "lora",
  "seed",
  "optimizer",
  "gradAccum",
  "clip",
  "valEvery",
  "saveEvery",
  "resume",
  "adapter",
  "budget",
  "target",
  "variant",
  "threads",
  "kernels",
  "resident",
  "savedInputDtype",
  "vocabChunk",
  "savedInputEvery",
  "savedInputs",
  "ckptDtype",
  "ckptEvery",
  "spill",
  "onEvent",
  "saveState",
  "saveCheckpoint",
  "shouldStop",
] as const;

/** `evaluate`'s options. */
export const EVALUATE_OPTIONS = [
  "adapter",
  "seqLen",
  "budget",
  "batch",
  "variant",
  "resident",
  "threads",
  "kernels",
  "score",
  "onProgress",
] as const;

/** `generate`'s options. */
export const GENERATE_OPTIONS = [
  "maxTokens",
  "temperature",
  "topP",
  "seed",
  "eosTokenIds",
  "adapter",
  "streamWeights",
  "budget",
  "variant",
  "threads",
  "kernels",
  "onLogits",
] as const;

/** `computeGradients`' options. */
export const GRAD_OPTIONS = [
  "method",
  "adapter",
  "lora",
  "seed",
  "zoEps",
  "seqLen",
  "savedInputDtype",
  "savedInputEvery",
  "savedInputs",
  "ckptDtype",
  "ckptEvery",
  "budget",
  "target",
  "variant",
  "threads",
  "kernels",
] as const;

/** An optimizer's options (`train`'s `optimizer`; `totalSteps` is `train`'s own). */
export const OPTIMIZER_OPTIONS = [
  "name",
  "lr",
  "weightDecay",
  "beta1",
  "beta2",
  "eps",
  "schedule",
  "warmup",
] as const;

/** The LoRA options (`lora`). */
export const LORA_OPTIONS = ["rank", "alpha", "rslora", "targets"] as const;

/** What a value must be; `choices` for strings. */
type Kind =
  | "integer"
  | "natural"
  | "count"
  | "seed"
  | "array"
  | "number"
  | "boolean"
  | "string"
  | "function"
  | "object"
  | readonly string[];

/** The largest seed: seeds are 32-bit. */
export const MAX_SEED = 2 ** 32 - 1;

/** Options of a nested object that callers put at the top level: where each belongs. */
const NESTED: Record<string, string> = {
  lr: "optimizer",
  weightDecay: "optimizer",
  beta1: "optimizer",
  beta2: "optimizer",
  eps: "optimizer",
  schedule: "optimizer",
  warmup: "optimizer",
  rank: "lora",
  alpha: "lora",
  rslora: "lora",
  targets: "lora",
};

/** Per option name, what it must be (options not listed are not checked here). */
const KINDS: Record<string, Kind> = {
  method: ["mesp", "mebp", "mezo"],
  score: ["all", "trained"],
  variant: VARIANTS,
  savedInputDtype: ["f32", "bf16"],
  ckptDtype: ["f32", "bf16"],
  name: ["sgd", "adamw"],
  schedule: ["constant", "cosine"],
  seqLen: "integer",
  steps: "integer",
  gradAccum: "integer",
  valEvery: "natural",
  saveEvery: "natural",
  threads: "count",
  vocabChunk: "count",
  savedInputEvery: "count",
  savedInputs: "natural",
  ckptEvery: "count",
  maxTokens: "integer",
  warmup: "natural",
  rank: "integer",
  seed: "seed",
  epochs: "number",
  zoEps: "number",
  clip: "number",
  budget: "number",
  target: "number",
  lr: "number",
  weightDecay: "number",
  beta1: "number",
  beta2: "number",
  eps: "number",
  alpha: "number",
  temperature: "number",
  topP: "number",
  resident: "boolean",
  streamWeights: "boolean",
  rslora: "boolean",
  onEvent: "function",
  saveState: "function",
  saveCheckpoint: "function",
  shouldStop: "function",
  onProgress: "function",
  onLogits: "function",
  targets: "array",
  lora: "object",
  optimizer: "object",
  kernels: "object",
};

/**
 * Throws unless every option of `options` (given to `where`, e.g. `train`) is one of `known` and of its kind:
 * `train options: unknown option "step" (did you mean "steps"?)`. Undefined and null values are not checked.
 */
export function checkOptions(where: string, options: object, known: readonly string[]): void {
  if (options === null || typeof options !== "object" || isThenable(options)) {
    throw new TypeError(
      `${where}: options must be an object, got ${describeValue(options)}${
        isThenable(options) ? " (a forgotten await?)" : ""
      }`,
    );
  }
  for (const [name, value] of Object.entries(options)) {
    if (!known.includes(name)) {
      const home = NESTED[name];
      const hint = home && known.includes(home)
        ? ` (it belongs in ${home}: { ${name} })`
        : didYouMean(name, known);
      throw new TypeError(`${where}: unknown option "${name}"${hint}`);
    }
    if (value === undefined || value === null) continue; // null: the default (alpha), or said by its own check
    if (name === "adapter") checkOpenedAdapter(value, where); // what openAdapter resolves to
    if (name === "resume") checkResumeValue(value, where);
    if (name === "kernels") checkKernelLocation(value, `${where}.kernels`);
    const kind = KINDS[name];
    const bad = (want: string) => {
      // values as written; anything else by its kind ("a Promise": a forgotten await), not "[object Promise]"
      const got = typeof value === "string"
        ? JSON.stringify(value)
        : typeof value === "object" || typeof value === "function"
        ? describeValue(value) + (isThenable(value) ? " (a forgotten await?)" : "")
        : String(value);
      throw new TypeError(`${where}: ${name} must be ${want}, got ${got}`);
    };
    if (Array.isArray(kind)) {
      if (!kind.includes(value)) bad(`one of ${kind.map((c) => JSON.stringify(c)).join(", ")}`);
    } else if (kind === "integer") {
      if (!Number.isSafeInteger(value)) bad("an integer");
    } else if (kind === "seed") {
      // seeds are 32-bit (a larger one would wrap to a smaller one's stream; a state keeps it as an integer)
      if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > MAX_SEED) {
        bad(`an integer from 0 to ${MAX_SEED}`);
      }
    } else if (kind === "count") {
      if (!Number.isSafeInteger(value) || (value as number) < 1) bad("an integer ≥ 1");
    } else if (kind === "natural") {
      if (!Number.isSafeInteger(value) || (value as number) < 0) bad("an integer ≥ 0");
    } else if (kind === "array") {
      if (!Array.isArray(value)) bad("an array");
    } else if (kind === "number") {
      if (typeof value !== "number") bad("a number"); // its range (NaN too) is the function's own check
    } else if (kind === "object") {
      if (value === null || typeof value !== "object") bad("an object");
    } else if (kind !== undefined && typeof value !== kind) bad(`a ${kind}`);
  }
}

/** Throws unless `budget` (bytes of arena) is absent or a finite number ≥ 0. */
export function checkBudget(where: string, budget: number | undefined, name = "budget"): void {
  if (budget !== undefined && !(Number.isFinite(budget) && budget >= 0)) {
    throw new RangeError(`${where}: ${name} must be a byte count ≥ 0, got ${budget}`);
  }
}

/** What {@linkcode checkSequences} reads of a sequence. */
interface SequenceLike {
  ids: ArrayLike<number>;
  targets?: ArrayLike<number>;
}

/**
 * Throws, naming the first sequence at fault (`training sequence 37: …`), unless each has its ids as an
 * array of token ids below `vocabSize` and targets (when given) a 0/1 mask, one per token; and, as `need`
 * says, a trained token within its first `seqLen` in `"each"` sequence (training: a step over one without
 * would fail hours into a run) or in `"any"` (a validation set that scores nothing would give no loss).
 */
export function checkSequences(
  what: string,
  sequences: readonly SequenceLike[],
  seqLen: number,
  need: "each" | "any" | "none",
  vocabSize: number,
): void {
  if (!Array.isArray(sequences)) {
    throw new TypeError(
      `${what} sequences must be an array of { ids, targets? }, got ${describeValue(sequences)}`,
    );
  }
  let scored = false;
  for (let i = 0; i < sequences.length; i++) {
    const s = sequences[i], at = `${what} sequence ${i}`;
    if (!s || typeof s.ids?.length !== "number") {
      const hint = isThenable(s)
        ? " (it is a Promise: a forgotten await?)"
        : s && "input_ids" in s
        ? " (it has input_ids: a sequence's token ids are its ids)"
        : "";
      throw new TypeError(`${at}: no ids${hint}`);
    }
    if ("labels" in s) {
      throw new TypeError(
        `${at} has labels, which train does not read: its targets is a 0/1 mask per token (1 = trained), ` +
          `e.g. targets: Uint8Array.from(labels, (l) => l === -100 ? 0 : 1)`,
      );
    }
    const n = s.ids.length, targets = s.targets;
    if (targets && targets.length !== n) {
      throw new RangeError(`${at}: ${targets.length} targets for ${n} tokens (one per token)`);
    }
    const t = badTokenIdAt(s.ids, vocabSize);
    if (t >= 0) {
      throw new RangeError(
        `${at}: ids[${t}] is ${s.ids[t]}, not a token id (an integer from 0 to ${vocabSize - 1})`,
      );
    }
    if (targets) {
      for (let t = 0; t < n; t++) {
        if (targets[t] !== 0 && targets[t] !== 1) {
          throw new RangeError(
            `${at}: targets[${t}] is ${targets[t]}; targets is a 0/1 mask per token (1 = trained), ` +
              `not Hugging Face labels (-100 = ignored)`,
          );
        }
      }
    }
    const T = Math.min(n, seqLen);
    let any = false;
    for (let t = 1; t < T && !any; t++) any = !targets || targets[t] !== 0;
    scored ||= any;
    if (need !== "each") continue;
    if (!any) {
      throw new RangeError(
        `${at}: no trained token${
          n < 2 ? ` (it has ${n} token${n === 1 ? "" : "s"})` : ` in its first ${T}`
        }`,
      );
    }
  }
  // a validation set that scores nothing would give no validation loss, silently
  if (need === "any" && sequences.length > 0 && !scored) {
    throw new RangeError(
      `${what} set: no sequence has a trained token${
        Number.isFinite(seqLen) ? ` within seqLen ${seqLen}` : ""
      }`,
    );
  }
}

/**
 * Throws unless a sequence of `tokens` positions (`what`) fits the model's `positions`: past them the rotary
 * positions are ones the model never saw, and the scores would be wrong without any error.
 */
export function checkPositions(where: string, what: string, tokens: number, positions: number): void {
  if (tokens <= positions) return;
  throw new RangeError(
    `${where}: ${what} is ${tokens} tokens, longer than the model allows (${positions} positions; give ` +
      `seqLen ≤ ${positions} to cut longer sequences)`,
  );
}

/**
 * Throws unless `value` is a training state as `decodeTrainingState` or `openTrainingState` give it (their
 * `.state`), naming what it is instead: a Promise (a forgotten await), their whole `{ state, run }`, the
 * file's bytes, a train result.
 */
function checkResumeValue(value: unknown, where: string): void {
  const v = value as Record<string, unknown>;
  const isState = typeof v === "object" && typeof v.step === "number" && typeof v.optimizer === "string" &&
    (typeof v.read === "function" || (typeof v.params === "object" && v.params !== null));
  if (isState) return;
  let got = describeValue(value);
  if (isThenable(value)) got += " — did you forget await?";
  else if (typeof v === "object" && typeof v.state === "object" && "run" in v) {
    got = "{ state, run }: pass its .state (resume: (await openTrainingState(source)).state)";
  } else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    got +=
      ": the file's bytes; open them first (resume: (await openTrainingState(bytesSource(bytes))).state)";
  } else if (typeof v === "object" && "losses" in v && "layout" in v) {
    got =
      "a train result, which holds no optimizer state or data position: resume from the state saveState was given";
  }
  throw new TypeError(`${where}: resume: expected a training state, got ${got}`);
}
