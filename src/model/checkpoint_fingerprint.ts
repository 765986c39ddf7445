/**
 * A fingerprint of a checkpoint's contents, recorded in a pack so a pack made from other weights is noticed.
 *
 * @module
 */
import type { ModelFiles } from "../io/source.ts";
import type { Checkpoint } from "./safetensors.ts";

/**
 * A fingerprint of a checkpoint's contents, cheap to compute: the config text, every safetensors file's
 * name, size and header, and 16 samples of 4 KiB spread over its data. A pack records it so weights that
 * changed in place (same shapes, new values) are noticed.
 */
export async function checkpointFingerprint(files: ModelFiles, ckpt: Checkpoint): Promise<string> {
  const parts: Uint8Array[] = [];
  const enc = new TextEncoder();
  parts.push(enc.encode((await files.readText("config.json")) ?? ""));
  for (const [name, f] of [...ckpt.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = await f.source.size();
    parts.push(enc.encode(`${name}:${size}:${JSON.stringify([...f.tensors.values()])}`));
    const span = size - f.dataOffset;
    for (let i = 0; i < 16 && span > 0; i++) {
      const at = f.dataOffset + Math.floor((span * i) / 16);
      const sample = new Uint8Array(Math.min(4096, size - at));
      await f.source.read(at, sample);
      parts.push(sample);
    }
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
}
