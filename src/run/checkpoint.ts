/**
 * Training checkpoints as one safetensors file: the LoRA parameters, the optimizer moments, and the run's
 * position (step, epoch, cursor, seed, adapter layout) in the metadata. One file, so writing it atomically
 * (temp + rename) is enough for a crash to never leave a half checkpoint.
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
import { assertFinite } from "../model/finite.ts";

/** Checkpoint file name inside a run directory. */
export const CHECKPOINT_FILE = "checkpoint.safetensors";

/**
 * Writes a training state (plus free-form run metadata) as safetensors to `sink`, streaming the tensors
 * from wherever they live (the engine's memory: no copies).
 */
export async function writeCheckpoint(
  sink: ByteSink,
  state: TrainState,
  run: Record<string, unknown> = {},
): Promise<void> {
  // a diverged state must never replace the last good one
  assertFinite(state.params, "checkpoint: LoRA parameters");
  if (state.m) assertFinite(state.m, "checkpoint: AdamW first moment");
  if (state.v) assertFinite(state.v, "checkpoint: AdamW second moment");
  const entries: TensorEntry[] = [{
    name: "params",
    dtype: "F32",
    shape: [state.params.length],
    data: state.params,
  }];
  if (state.m) entries.push({ name: "adam_m", dtype: "F32", shape: [state.m.length], data: state.m });
  if (state.v) entries.push({ name: "adam_v", dtype: "F32", shape: [state.v.length], data: state.v });
  const meta = {
    step: state.step,
    epoch: state.epoch,
    cursor: state.cursor,
    seed: state.seed,
    lora: state.lora,
    optimizer: state.optimizer,
  };
  await writeSafetensors(sink, entries, {
    format: "mesp-checkpoint",
    state: JSON.stringify(meta),
    run: JSON.stringify(run),
  });
}

/** Decodes a checkpoint; throws a clear error for anything that is not one. */
export async function decodeCheckpoint(
  bytes: Uint8Array,
  name = CHECKPOINT_FILE,
): Promise<{ state: TrainState; run: Record<string, unknown> }> {
  const file = await readSafetensorsHeader(bytesSource(bytes, name));
  if (file.metadata.format !== "mesp-checkpoint" || !file.metadata.state) {
    throw new Error(`${name}: not a mesp training checkpoint`);
  }
  const meta = JSON.parse(file.metadata.state);
  const read = async (t: string) => file.tensors.has(t) ? await readTensorF32(file, t) : undefined;
  const params = await read("params");
  if (!params) throw new Error(`${name}: no parameters`);
  return {
    state: { ...meta, params, m: await read("adam_m"), v: await read("adam_v") },
    run: JSON.parse(file.metadata.run ?? "{}"),
  };
}
