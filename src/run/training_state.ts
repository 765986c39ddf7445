/**
 * A run's resumable training state as one safetensors file: the LoRA parameters, the optimizer moments, and
 * the run's position (step, epoch, cursor, seed, adapter layout) in the metadata, with a checksum over the
 * tensor bytes and the position. One file, so writing it atomically (temp + rename) is enough for a crash to
 * never leave half a state; the checksum and the validation catch a damaged or hand-edited one.
 *
 * The file keeps the name and format tag it had when this was called a "checkpoint"
 * (`checkpoint.safetensors`, `format: mesp-checkpoint`), so runs written before the rename resume.
 *
 * @module
 */
import { type ByteSink, bytesSource } from "../io/source.ts";
import {
  readSafetensorsHeader,
  readTensorF32,
  type TensorEntry,
  writeSafetensors,
} from "../model/safetensors.ts";
import type { TrainState } from "./train.ts";
import { firstNonFinite } from "../model/finite.ts";
import { Checksum } from "../io/checksum.ts";
import { type AdapterValues, piecesOf } from "../engine/adapter_values.ts";

/** The training state's file name inside a run directory (its name from before the rename, kept). */
export const TRAINING_STATE_FILE = "checkpoint.safetensors";

const TENSORS = ["params", "adam_m", "adam_v"] as const;

function checksumOf(state: string, run: string, tensors: AdapterValues[]): string {
  const c = new Checksum().update(new TextEncoder().encode(state)).update(new TextEncoder().encode(run));
  for (const values of tensors) {
    for (const t of piecesOf(values)) c.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  return c.hex();
}

/** Throws naming `what` and the element when `values` hold a NaN or ±∞. */
function assertFiniteValues(values: AdapterValues, what: string): void {
  let at = 0;
  for (const piece of piecesOf(values)) {
    const i = firstNonFinite(piece);
    if (i >= 0) throw new Error(`${what}: non-finite value ${piece[i]} at element ${at + i}`);
    at += piece.length;
  }
}

/**
 * Writes a training state (plus free-form run metadata) as safetensors to `sink`, streaming the tensors
 * from wherever they live (the engine's memory: no copies). A state with a NaN or ±∞ is refused.
 */
export async function writeTrainingState(
  sink: ByteSink,
  state: TrainState,
  run: Record<string, unknown> = {},
): Promise<void> {
  // a diverged state must never replace the last good one
  assertFiniteValues(state.params, "training state: LoRA parameters");
  if (state.m) assertFiniteValues(state.m, "training state: AdamW first moment");
  if (state.v) assertFiniteValues(state.v, "training state: AdamW second moment");
  const tensors: [string, AdapterValues][] = [["params", state.params]];
  if (state.m) tensors.push(["adam_m", state.m]);
  if (state.v) tensors.push(["adam_v", state.v]);
  const entries: TensorEntry[] = tensors.map(([name, values]) => ({
    name,
    dtype: "F32",
    shape: [values.length],
    data: values instanceof Float32Array ? values : () => piecesOf(values),
  }));
  const meta = JSON.stringify({
    step: state.step,
    epoch: state.epoch,
    cursor: state.cursor,
    seed: state.seed,
    lora: state.lora,
    optimizer: state.optimizer,
  });
  const runText = JSON.stringify(run);
  await writeSafetensors(sink, entries, {
    format: "mesp-checkpoint",
    state: meta,
    run: runText,
    checksum: checksumOf(meta, runText, tensors.map(([, t]) => t)),
  });
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Validates the decoded `state` metadata field by field; throws naming the first bad one. */
function validateState(name: string, meta: unknown): Omit<TrainState, "params" | "m" | "v"> {
  const bad = (field: string, v: unknown, want: string): never => {
    throw new Error(`${name}: state field ${field} is ${JSON.stringify(v)}, expected ${want}`);
  };
  if (!meta || typeof meta !== "object" || Array.isArray(meta)) bad("(all)", meta, "an object");
  const m = meta as Record<string, unknown>;
  for (const f of ["step", "epoch", "cursor"]) if (!isCount(m[f])) bad(f, m[f], "an integer ≥ 0");
  if (!(typeof m.seed === "number" && Number.isSafeInteger(m.seed))) bad("seed", m.seed, "an integer");
  if (m.optimizer !== "sgd" && m.optimizer !== "adamw") bad("optimizer", m.optimizer, '"sgd" or "adamw"');
  const l = m.lora as Record<string, unknown> | undefined;
  if (!l || typeof l !== "object") bad("lora", l, "an object");
  if (!(isCount(l!.rank) && (l!.rank as number) >= 1)) bad("lora.rank", l!.rank, "an integer ≥ 1");
  if (!(typeof l!.alpha === "number" && Number.isFinite(l!.alpha) && l!.alpha > 0)) {
    bad("lora.alpha", l!.alpha, "a finite number > 0");
  }
  if (typeof l!.rslora !== "boolean") bad("lora.rslora", l!.rslora, "true or false");
  const t = l!.targets;
  if (!Array.isArray(t) || t.length === 0 || !t.every((x) => typeof x === "string")) {
    bad("lora.targets", t, "a non-empty list of names");
  }
  return {
    step: m.step as number,
    epoch: m.epoch as number,
    cursor: m.cursor as number,
    seed: m.seed as number,
    optimizer: m.optimizer as string,
    lora: {
      rank: l!.rank as number,
      alpha: l!.alpha as number,
      rslora: l!.rslora as boolean,
      targets: [...t as string[]],
    },
  };
}

/**
 * Decodes a training state; throws a clear error for anything that is not a complete, intact one: a wrong
 * format, a bad or missing field, unexpected or wrongly shaped tensors, a checksum mismatch, a NaN. The
 * tensors are views of `bytes` where their offsets allow it (copies otherwise).
 */
export async function decodeTrainingState(
  bytes: Uint8Array,
  name = TRAINING_STATE_FILE,
): Promise<{ state: TrainState; run: Record<string, unknown> }> {
  const file = await readSafetensorsHeader(bytesSource(bytes, name));
  if (file.metadata.format !== "mesp-checkpoint" || !file.metadata.state) {
    throw new Error(`${name}: not a mesp training state`);
  }
  const parse = (field: string, text: string) => {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new Error(`${name}: metadata ${field} is not JSON (${(err as Error).message})`);
    }
  };
  const state = validateState(name, parse("state", file.metadata.state));
  for (const [t, info] of file.tensors) {
    if (!(TENSORS as readonly string[]).includes(t)) throw new Error(`${name}: unexpected tensor ${t}`);
    if (info.dtype !== "F32" || info.shape.length !== 1) {
      throw new Error(`${name}: tensor ${t} is ${info.dtype} [${info.shape}], expected a 1-D F32`);
    }
  }
  // views of `bytes` where aligned (a file read whole is): a resume holds the state once, not twice
  const read = async (t: string) => {
    const info = file.tensors.get(t);
    if (!info) return undefined;
    const at = bytes.byteOffset + info.offset;
    if (at % 4 !== 0) return await readTensorF32(file, t);
    const view = new Float32Array(bytes.buffer, at, info.byteLength / 4);
    assertFiniteValues(view, `safetensors ${name}: tensor ${JSON.stringify(t)}`);
    return view;
  };
  const params = await read("params");
  if (!params || params.length === 0) throw new Error(`${name}: no parameters`);
  const m = await read("adam_m"), v = await read("adam_v");
  if (state.optimizer === "adamw" && (!m || !v)) {
    throw new Error(`${name}: an AdamW training state without moments`);
  }
  for (const [t, x] of [["adam_m", m], ["adam_v", v]] as const) {
    if (x && x.length !== params.length) {
      throw new Error(`${name}: ${t} has ${x.length} elements, params ${params.length}`);
    }
  }
  if (v && v.some((x) => x < 0)) throw new Error(`${name}: adam_v holds a negative second moment`);
  const recorded = file.metadata.checksum;
  if (recorded === undefined) throw new Error(`${name}: no checksum (written by an older mesp?)`);
  const actual = checksumOf(file.metadata.state, file.metadata.run ?? "", [
    params,
    ...(m ? [m] : []),
    ...(v ? [v] : []),
  ]);
  if (actual !== recorded) {
    throw new Error(
      `${name}: checksum mismatch (recorded ${recorded}, contents ${actual}): the file is damaged`,
    );
  }
  const run = parse("run", file.metadata.run ?? "{}");
  return { state: { ...state, params, m, v }, run: run && typeof run === "object" ? run : {} };
}
