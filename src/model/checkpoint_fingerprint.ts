/**
 * A fingerprint of a checkpoint's contents, recorded in a pack so a pack made from other weights is noticed.
 *
 * @module
 */
import type { ModelFiles, WeightSource } from "../io/source.ts";
import { Checksum } from "../io/checksum.ts";
import type { Checkpoint } from "./safetensors.ts";

/** The checksum of every byte of `source` (`size` bytes), read 4 MiB at a time; `onBytes(n)` after each. */
export async function contentChecksum(
  source: WeightSource,
  size: number,
  onBytes?: (bytes: number) => void,
): Promise<string> {
  const sum = new Checksum();
  const chunk = new Uint8Array(Math.min(size, 4 << 20));
  for (let at = 0; at < size; at += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, size - at));
    await source.read(at, part);
    sum.update(part);
    onBytes?.(part.length);
  }
  return sum.hex();
}

/** Options for {@linkcode checkpointFingerprint}. */
export interface FingerprintProgress {
  /** Told the bytes hashed so far of all (with the default checksums: a large model takes a while). */
  onProgress?: (done: number, total: number) => void;
}

/** Gives the content checksum of one checkpoint file (e.g. from a cache keyed by size and mtime). */
export type ContentChecksum = (name: string, source: WeightSource, size: number) => Promise<string>;

/**
 * A fingerprint of a checkpoint's contents: the config text, every safetensors file's name, size, header and
 * the checksum of every byte. A pack records it so weights that changed in place (same shapes, new values)
 * are noticed. `checksumOf` lets an edge that can see modification times hash a file only when it changed.
 */
export async function checkpointFingerprint(
  files: ModelFiles,
  ckpt: Checkpoint,
  checksumOf?: ContentChecksum,
  options: FingerprintProgress = {},
): Promise<string> {
  let total = 0, done = 0;
  for (const f of ckpt.files.values()) total += await f.source.size();
  const report = options.onProgress;
  checksumOf ??= (_name, source, size) =>
    contentChecksum(source, size, report && ((n) => report(done += n, total)));
  const enc = new TextEncoder();
  const parts: string[] = [(await files.readText("config.json")) ?? ""];
  for (const [name, f] of [...ckpt.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = await f.source.size();
    parts.push(
      `${name}:${size}:${JSON.stringify([...f.tensors.values()])}:${await checksumOf(name, f.source, size)}`,
    );
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(parts.join("\n"))));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}
