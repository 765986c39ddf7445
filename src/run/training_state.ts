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
import { type ByteSink, bytesSource, type WeightSource } from "../io/source.ts";
import {
  encodeSafetensorsHeader,
  readSafetensorsHeader,
  readTensorF32,
  type SafetensorsFile,
  type TensorEntry,
  writeSafetensors,
} from "../model/safetensors.ts";
import type { StateTensor, StoredTrainState, TrainState } from "./train.ts";
import { firstNonFinite } from "../model/finite.ts";
import { Checksum } from "../io/checksum.ts";
import { type AdapterValues, piecesOf } from "../engine/adapter_values.ts";
import { validateTrainConfig } from "./train_config.ts";
import { describeValue, isThenable } from "../util/describe.ts";

/** The training state's file name inside a run directory (its name from before the rename, kept). */
export const TRAINING_STATE_FILE = "checkpoint.safetensors";

const TENSORS: readonly StateTensor[] = ["params", "adam_m", "adam_v"];

/** What a writer's error calls each tensor. */
const WHAT: Record<StateTensor, string> = {
  params: "LoRA parameters",
  adam_m: "AdamW first moment",
  adam_v: "AdamW second moment",
};

/**
 * The checksum of a state being written, in one walk over its tensors (a spilled run's are read from the
 * spill for it), which also refuses a NaN or ±∞, naming the tensor and the element.
 */
function checkedChecksum(state: string, run: string, tensors: [StateTensor, AdapterValues][]): string {
  const c = new Checksum().update(new TextEncoder().encode(state)).update(new TextEncoder().encode(run));
  for (const [name, values] of tensors) {
    let at = 0;
    for (const piece of piecesOf(values)) {
      const i = firstNonFinite(piece);
      if (i >= 0) {
        throw new Error(`training state: ${WHAT[name]}: non-finite value ${piece[i]} at element ${at + i}`);
      }
      c.update(new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength));
      at += piece.length;
    }
  }
  return c.hex();
}

/** A training state as a safetensors file to be written: its tensors and metadata (checksum included). */
function stateFile(
  state: TrainState,
  run: Record<string, unknown>,
): { entries: TensorEntry[]; metadata: Record<string, string> } {
  const tensors: [StateTensor, AdapterValues][] = [["params", state.params]];
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
    config: state.config,
  });
  const runText = JSON.stringify(run);
  const metadata = {
    format: "mesp-checkpoint",
    state: meta,
    run: runText,
    // before a byte is written: a diverged state must never replace the last good one
    checksum: checkedChecksum(meta, runText, tensors),
  };
  return { entries, metadata };
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
  const { entries, metadata } = stateFile(state, run);
  await writeSafetensors(sink, entries, metadata);
}

/** The largest chunk {@linkcode trainingStateStream} hands out (1 MiB). */
const STREAM_PIECE = 1 << 20;

/** Options of {@linkcode trainingStateStream}. */
export interface TrainingStateStreamOptions {
  /**
   * Hand out the tensors' bytes as views of their memory instead of copies, where that memory is not shared
   * (one thread: workerd, `threads: 1`): no copy and no garbage. In a 128 MB isolate use it: V8 does not
   * collect the copies before the upload ends (uploading a 0.5B AdamW state as copies grew workerd by 55 MB,
   * as views by 3 MB). A view shows the tensor as it is when read, so it is valid while the tensor stays
   * unchanged (in `saveState`: until it returns): an upload that sends it, or a `Blob`/`arrayBuffer()` that
   * copies it, is fine; keeping the chunks themselves is not. Pieces of a spill (a reused buffer) and views
   * of shared memory are copied either way.
   */
  views?: boolean;
}

/**
 * A training state as a stream of its file's bytes, with its size known before the first byte: for an
 * upload that needs a `Content-Length` up front (workerd's `FixedLengthStream`, an R2 binding's `put`, a
 * presigned PUT). The bytes are those {@linkcode writeTrainingState} writes; they are produced as the reader
 * takes them (at most 1 MiB a chunk, each a copy unless `views`), so the state is never held whole. The
 * checksum and the NaN/±∞ check run here, before the stream exists (a diverged state throws), so the state
 * must not change until the stream is read to its end: in `saveState`, await the upload's completion before
 * returning.
 */
export function trainingStateStream(
  state: TrainState,
  run: Record<string, unknown> = {},
  options: TrainingStateStreamOptions = {},
): { byteLength: number; stream: ReadableStream<Uint8Array> } {
  const { entries, metadata } = stateFile(state, run);
  const byteLength = encodeSafetensorsHeader(entries, metadata).fileSize;
  // views: each tensor held whole in unshared memory is handed out as 1 MiB views of itself, each marked, so
  // that nothing else in that memory (a piece of a reused buffer) passes for one; the rest is copied
  const viewed = new WeakSet<Uint8Array>();
  const written = options.views ? entries.map((e) => viewsOf(e, viewed)) : entries;
  // a TransformStream applies backpressure: each write waits until the reader has taken the piece before
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const write = async (chunk: Uint8Array) => {
    if (viewed.has(chunk)) return await writer.write(chunk);
    // copies of at most 1 MiB: a runtime that holds a chunk to send it holds that much, not a tensor
    for (let at = 0; at < chunk.length; at += STREAM_PIECE) {
      await writer.write(chunk.slice(at, at + STREAM_PIECE));
    }
  };
  writeSafetensors({ write }, written, metadata)
    .then(() => writer.close(), (err) => writer.abort(err))
    .catch(() => undefined); // a reader that cancelled has its own error
  return { byteLength, stream: readable };
}

/** `e` with its data as marked views of at most 1 MiB, where it is one array in unshared memory. */
function viewsOf(e: TensorEntry, viewed: WeakSet<Uint8Array>): TensorEntry {
  const data = e.data;
  if (!ArrayBuffer.isView(data) || !(data.buffer instanceof ArrayBuffer)) return e;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; at += STREAM_PIECE) {
    const piece = bytes.subarray(at, at + STREAM_PIECE);
    viewed.add(piece);
    pieces.push(piece);
  }
  return { ...e, data: () => pieces };
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
    ...(m.config === undefined ? {} : { config: validateTrainConfig(name, m.config) }),
  };
}

/** A training state's file read up to its tensor data: the header checked, the metadata validated. */
interface StateHeader {
  name: string;
  file: SafetensorsFile;
  state: Omit<TrainState, "params" | "m" | "v">;
  run: Record<string, unknown>;
  /** The tensors present, in checksum order, and their element count (each has the same). */
  tensors: StateTensor[];
  length: number;
  checksum: string;
}

/**
 * Reads and checks everything of a training state but its tensor values: a wrong format, a bad or missing
 * field, unexpected, missing or wrongly shaped tensors, no checksum, a truncated file (the header reader).
 */
async function readStateHeader(source: WeightSource, name: string): Promise<StateHeader> {
  const file = await readSafetensorsHeader(source);
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
  const length = file.tensors.get("params")?.shape[0] ?? 0;
  if (length === 0) throw new Error(`${name}: no parameters`);
  const has = (t: StateTensor) => file.tensors.has(t);
  if (state.optimizer === "adamw" && (!has("adam_m") || !has("adam_v"))) {
    throw new Error(`${name}: an AdamW training state without moments`);
  }
  const tensors = TENSORS.filter(has);
  for (const t of tensors) {
    const n = file.tensors.get(t)!.shape[0];
    if (n !== length) throw new Error(`${name}: ${t} has ${n} elements, params ${length}`);
  }
  const checksum = file.metadata.checksum;
  if (checksum === undefined) throw new Error(`${name}: no checksum (written by an older mesp?)`);
  const run = parse("run", file.metadata.run ?? "{}");
  return { name, file, state, run: run && typeof run === "object" ? run : {}, tensors, length, checksum };
}

/**
 * Checks a state's tensor values as they come, in checksum order (params, adam_m, adam_v, each from its
 * start, in pieces of any size): finite, no negative second moment, and at the end the checksum.
 */
class StateCheck {
  readonly #h: StateHeader;
  readonly #sum = new Checksum();

  constructor(h: StateHeader) {
    this.#h = h;
    const text = new TextEncoder();
    this.#sum.update(text.encode(h.file.metadata.state)).update(text.encode(h.file.metadata.run ?? ""));
  }

  /** Elements `[at, at + values.length)` of tensor `t`. */
  piece(t: StateTensor, at: number, values: Float32Array): void {
    this.#sum.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    const i = firstNonFinite(values);
    if (i >= 0) {
      throw new Error(
        `safetensors ${this.#h.name}: tensor ${JSON.stringify(t)}: non-finite value ${values[i]} at element ${
          at + i
        }`,
      );
    }
    if (t === "adam_v" && values.some((x) => x < 0)) {
      throw new Error(`${this.#h.name}: adam_v holds a negative second moment`);
    }
  }

  /** After the last piece: throws unless the checksum is the recorded one. */
  finish(): void {
    const actual = this.#sum.hex();
    if (actual !== this.#h.checksum) {
      throw new Error(
        `${this.#h.name}: checksum mismatch (recorded ${this.#h.checksum}, contents ${actual}): the file is damaged`,
      );
    }
  }
}

/**
 * Decodes a training state held in memory; throws a clear error for anything that is not a complete, intact
 * one: a wrong format, a bad or missing field, unexpected or wrongly shaped tensors, a checksum mismatch, a
 * NaN. The tensors are views of `bytes` where their offsets allow it (copies otherwise). A state in a file
 * is better opened with {@linkcode openTrainingState}, which never holds it whole.
 */
export async function decodeTrainingState(
  bytes: Uint8Array,
  name = "the training state's bytes",
): Promise<{ state: TrainState; run: Record<string, unknown> }> {
  if ((bytes as unknown) instanceof ArrayBuffer) bytes = new Uint8Array(bytes as unknown as ArrayBuffer);
  if (!(bytes instanceof Uint8Array)) {
    const hint = isThenable(bytes) ? " (a forgotten await?)" : "";
    throw new TypeError(
      `decodeTrainingState: expected the state file's bytes (a Uint8Array), got ${
        describeValue(bytes)
      }${hint}`,
    );
  }
  const h = await readStateHeader(bytesSource(bytes, name), name);
  const check = new StateCheck(h);
  const values: Partial<Record<StateTensor, Float32Array>> = {};
  for (const t of h.tensors) {
    const info = h.file.tensors.get(t)!;
    // views of `bytes` where aligned (a file read whole is): a resume holds the state once, not twice
    const at = bytes.byteOffset + info.offset;
    const x = at % 4 === 0
      ? new Float32Array(bytes.buffer, at, info.byteLength / 4)
      : await readTensorF32(h.file, t);
    check.piece(t, 0, x);
    values[t] = x;
  }
  check.finish();
  return { state: { ...h.state, params: values.params!, m: values.adam_m, v: values.adam_v }, run: h.run };
}

/**
 * A stored training state's position and free-form run metadata, from its header alone (nothing checked
 * beyond the header: for defaults such as the paths a run recorded, which what is then opened is checked
 * against, and for saying which step an adapter beside it is from).
 */
export async function readTrainingStateHead(
  source: WeightSource,
  name = source.name,
): Promise<{ state: Omit<TrainState, "params" | "m" | "v">; run: Record<string, unknown> }> {
  try {
    const h = await readStateHeader(source, name);
    return { state: h.state, run: h.run };
  } finally {
    source.close?.();
  }
}

/** Elements a piece of {@linkcode openTrainingState}'s checking pass holds (256 KiB). */
const CHECK_PIECE = 1 << 16;

/**
 * Opens a training state in a file (any {@linkcode WeightSource}: `fileSource` in Deno, `blobSource` of an
 * OPFS `File` in a browser) without holding it: it is checked whole here (everything
 * {@linkcode decodeTrainingState} checks), through one buffer of 256 KiB, and `train`'s `resume` then reads
 * it again a layer at a time straight into the arena or the spill, checked again as it goes. The source is
 * closed after each pass (a `fileSource` reopens for the next).
 */
export async function openTrainingState(
  source: WeightSource,
  name = source.name,
): Promise<{ state: StoredTrainState; run: Record<string, unknown> }> {
  const h = await readStateHeader(source, name);
  const state: StoredTrainState = {
    ...h.state,
    length: h.length,
    tensors: h.tensors,
    read: (piece, into, done) => readPieces(h, piece, into, done),
  };
  // nothing of the file (its step, its run configuration) is trusted before all of it is checked
  await state.read(CHECK_PIECE, () => undefined);
  return { state, run: h.run };
}

/** {@linkcode StoredTrainState.read} of the state `h`. */
async function readPieces(
  h: StateHeader,
  piece: number,
  into: (t: StateTensor, i: number) => Float32Array | undefined,
  done?: (t: StateTensor, i: number) => void,
): Promise<void> {
  if (!(Number.isSafeInteger(piece) && piece > 0)) throw new RangeError(`${h.name}: pieces of ${piece}`);
  const check = new StateCheck(h);
  let scratch: Float32Array | undefined;
  try {
    for (const t of h.tensors) {
      const offset = h.file.tensors.get(t)!.offset;
      // each tensor is read piece after piece: announced as one run, a remote source answers it with one
      // response read as it comes (one request a tensor, not one a piece: a Worker's subrequests)
      h.file.source.expect?.(offset, offset + h.length * 4);
      for (let i = 0, at = 0; at < h.length; i++, at += piece) {
        const n = Math.min(piece, h.length - at);
        const x = into(t, i) ?? (scratch ??= new Float32Array(piece)).subarray(0, n);
        if (x.length !== n) {
          throw new RangeError(`${h.name}: piece ${i} of ${t} has ${n} elements, not ${x.length}`);
        }
        await h.file.source.read(offset + at * 4, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
        check.piece(t, at, x);
        done?.(t, i);
      }
    }
    check.finish();
  } finally {
    h.file.source.close?.();
  }
}
