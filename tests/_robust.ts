// Helpers of the failure tests (robust_*_test.ts): run the CLI as a user does, corrupt files at known
// places, and check that every file that existed before a failing command is byte-identical afterwards.
import { assert, assertEquals } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { readSafetensorsHeader } from "../src/model/safetensors.ts";
import { CLI_PERMISSIONS } from "../src/cli/prepare.ts";

export const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;

/** The result of one CLI run. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `mesp <args>` in a child process with its own cache. */
export function mesp(cache: string, ...args: string[]): Promise<Ran> {
  return mespIn(Deno.cwd(), cache, ...args);
}

/** The `mesp` command in a child process (stdout piped, for reading step lines as they come). */
export function mespCommand(cwd: string, cache: string, ...args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    // the permissions the deno.json tasks grant
    args: ["run", ...CLI_PERMISSIONS, MAIN, ...args],
    env: { MESP_CACHE: cache, NO_COLOR: "1" },
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs `mesp <args>` in working directory `cwd`. */
export async function mespIn(cwd: string, cache: string, ...args: string[]): Promise<Ran> {
  const out = await mespCommand(cwd, cache, ...args).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Every regular file under `dir` (recursively) with its bytes. */
export async function snapshot(...dirs: string[]): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile) files.set(p, await Deno.readFile(p));
    }
  };
  for (const d of dirs) await walk(d);
  return files;
}

/** Every file of `before` still exists with the same bytes. */
export async function assertUnchanged(before: Map<string, Uint8Array>, what = ""): Promise<void> {
  for (const [path, bytes] of before) {
    const now = await Deno.readFile(path).catch(() => undefined);
    assert(now !== undefined, `${what}: ${path} was removed`);
    assert(
      now.length === bytes.length && now.every((b, i) => b === bytes[i]),
      `${what}: ${path} changed`,
    );
  }
}

/** The failure is a clean user error: exit code, message, no stack trace. */
export function assertFails(r: Ran, code: number, pattern: RegExp, what: string): void {
  assertEquals(r.code, code, `${what}: exit code\n${r.stderr}`);
  assert(pattern.test(r.stderr), `${what}: message should match ${pattern}:\n${r.stderr}`);
  assert(!r.stderr.includes("    at "), `${what}: no stack trace for a user error:\n${r.stderr}`);
}

/** Copies a golden case's directory (files only, recursively) to `to`. */
export async function copyCase(name: string, to: string): Promise<string> {
  const copy = async (from: string, dst: string) => {
    await Deno.mkdir(dst, { recursive: true });
    for await (const e of Deno.readDir(from)) {
      if (e.isDirectory) await copy(`${from}/${e.name}`, `${dst}/${e.name}`);
      else await Deno.copyFile(`${from}/${e.name}`, `${dst}/${e.name}`);
    }
  };
  await copy(caseDir(name), to);
  return to;
}

/** Overwrites bytes of tensor `name` in a safetensors file, `at` bytes into its data. */
export async function patchTensor(path: string, name: string, at: number, bytes: Uint8Array): Promise<void> {
  const src = fileSource(path);
  const info = (await readSafetensorsHeader(src)).tensors.get(name);
  src.close?.();
  assert(info, `${path} has no tensor ${name}`);
  const f = await Deno.open(path, { write: true });
  await f.seek(info.offset + at, Deno.SeekMode.Start);
  await f.write(bytes);
  f.close();
}

/** The little-endian bytes of one f32 value. */
export function f32Bytes(v: number): Uint8Array {
  return new Uint8Array(new Float32Array([v]).buffer);
}

/** A JSONL file of `n` pre-tokenized sequences of `len` ids below `vocab`, every token trained. */
export async function idsData(path: string, n = 4, len = 24, vocab = 250): Promise<string> {
  const lines = [];
  for (let s = 0; s < n; s++) {
    lines.push(
      JSON.stringify({ input_ids: Array.from({ length: len }, (_, i) => (7 * s + 13 * i + 1) % vocab) }),
    );
  }
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** Whether every f32 of every tensor of a safetensors file is finite. */
export async function allFinite(path: string): Promise<boolean> {
  const f = await readSafetensorsHeader(fileSource(path));
  const bytes = await Deno.readFile(path);
  for (const info of f.tensors.values()) {
    if (info.dtype !== "F32") continue;
    const x = new Float32Array(bytes.slice(info.offset, info.offset + info.byteLength).buffer);
    if (!x.every(Number.isFinite)) return false;
  }
  f.source.close?.();
  return true;
}

/** The small training run the robustness tests start: f32 weights, T 24, rank 2, JSON lines. */
export function smallTrain(model: string, data: string, ...extra: string[]): string[] {
  return [
    "train",
    "--model",
    model,
    "--weights",
    "f32",
    "--data",
    data,
    "--seq-len",
    "24",
    "--rank",
    "2",
    "--json",
    ...extra,
  ];
}
