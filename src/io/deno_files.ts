/**
 * The Deno edge of model-file I/O: local weight files, model directories, atomic writes, `exists` and spill
 * files. Everything else in `src/` reads weights through the runtime-neutral interfaces of `source.ts`.
 *
 * @module
 */
import type { SpillFile } from "./spill_file.ts";
import {
  type ByteSink,
  checkRange,
  FileNotFoundError,
  type ModelFiles,
  type WeightSource,
} from "./source.ts";

/**
 * A {@linkcode WeightSource} over a local file. Each read takes an idle handle of the file (opening one when
 * all are busy: as many as reads in flight, usually 1–3), seeks it synchronously and starts the read before
 * `read` returns, so a caller can overlap the read with computation (the engine's read-ahead does). Nothing
 * is allocated per read once the handles exist; `close()` closes them (a later read reopens).
 */
export function fileSource(path: string): WeightSource {
  const idle: Deno.FsFile[] = [];
  let fileSize: number | undefined;
  let generation = 0;

  async function openHandle(): Promise<Deno.FsFile> {
    let f: Deno.FsFile;
    try {
      // opening a FIFO would block until a writer appears: look first
      await regularFile(path);
      f = await Deno.open(path, { read: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) throw new FileNotFoundError(path, { cause: err });
      throw withPath(path, path, err);
    }
    if (fileSize === undefined) {
      try {
        const info = await f.stat();
        if (!info.isFile) throw new Error(`${path}: not a regular file`);
        fileSize = info.size;
      } catch (err) {
        f.close();
        throw err;
      }
    }
    return f;
  }

  // an async function runs synchronously up to its first await: the seek and the read's start happen here
  async function readWith(f: Deno.FsFile, gen: number, offset: number, into: Uint8Array): Promise<void> {
    try {
      const end = offset + into.length;
      if (end > fileSize!) {
        throw new Error(
          `${path}: short read: wanted bytes ${offset}..${end} but the file has ${fileSize} bytes`,
        );
      }
      f.seekSync(offset, Deno.SeekMode.Start);
      let pos = 0;
      while (pos < into.length) {
        const n = await f.read(into.subarray(pos));
        if (n === null || n === 0) {
          throw new Error(`${path}: short read: file ended after ${offset + pos} bytes (wanted ${end})`);
        }
        pos += n;
      }
    } finally {
      // a handle from before close() is closed, not reused
      if (gen === generation) idle.push(f);
      else f.close();
    }
  }

  function readAt(offset: number, into: Uint8Array): Promise<void> {
    const gen = generation, f = idle.pop();
    if (f) return readWith(f, gen, offset, into);
    return openHandle().then((h) => readWith(h, gen, offset, into));
  }

  async function size(): Promise<number> {
    if (fileSize === undefined) idle.push(await openHandle());
    return fileSize!;
  }

  return {
    name: path,
    size,
    read(offset, into) {
      try {
        checkRange(path, offset, into.length);
      } catch (err) {
        return Promise.reject(err);
      }
      if (into.length === 0) return size().then(() => {});
      return readAt(offset, into);
    },
    close() {
      // the next read reopens the file and looks at its size again
      generation++;
      fileSize = undefined;
      for (const f of idle.splice(0)) f.close();
    },
  };
}

/**
 * What is at `path` (a file, a directory, a link's target), or undefined when nothing is. Only "not found" is
 * undefined: any other failure to look (no permission, a file where a directory should be) is thrown, as the
 * caller could not create anything there either. `(await statIfExists(p))?.isDirectory` asks for a kind.
 */
export async function statIfExists(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof Deno.errors.NotADirectory) throw throughFile(path, e);
    throw e;
  }
}

/**
 * The error of a path whose way goes through a file (ENOTDIR, which names only the whole path): the first
 * file on the way, e.g. `run/adapter_model.safetensors/checkpoint.safetensors: run/adapter_model.safetensors
 * is a file, not a directory`. Keeps the error's class.
 */
function throughFile(path: string, err: Error): Error {
  const parts = path.split("/");
  for (let n = 1; n < parts.length; n++) {
    const dir = parts.slice(0, n).join("/");
    if (dir === "" || dir === ".") continue;
    try {
      if (!Deno.statSync(dir).isDirectory) {
        err.message = `${path}: ${dir} is a file, not a directory`;
        return err;
      }
    } catch {
      return err; // not there after all, or not readable: the OS's own words
    }
  }
  return err;
}

/** Whether something is at `path` ({@linkcode statIfExists}: only "not found" is false). */
export async function exists(path: string): Promise<boolean> {
  return await statIfExists(path) !== undefined;
}

/**
 * Removes the file or empty directory at `path`, if there is one; any other failure (no permission, a
 * directory that is not empty) is thrown, naming the path.
 */
export async function removeIfExists(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw withPath(`cannot remove ${path}`, path, e);
  }
}

/** Throws unless `path` is a regular file (NotFound passes through). */
async function regularFile(path: string): Promise<void> {
  const info = await Deno.stat(path);
  if (info.isDirectory) throw new Error(`${path} is a directory, not a file`);
  if (!info.isFile) throw new Error(`${path} is not a regular file (a FIFO or a device?)`);
}

/**
 * `err` with `prefix` before its message unless it names `path` already: Deno's I/O errors name no file
 * ("No space left on device (os error 28)"). The error keeps its class (e.g. `Deno.errors.NotFound`).
 */
function withPath(prefix: string, path: string, err: unknown): Error {
  if (!(err instanceof Error)) return new Error(`${prefix}: ${String(err)}`);
  // Deno quotes the path it names; a temporary file beside `path` (`path.tmp-…`) is not `path`
  if (!err.message.includes(`'${path}'`)) err.message = `${prefix}: ${err.message}`;
  return err;
}

function joinPath(dir: string, file: string): string {
  return dir === "" ? file : `${dir.replace(/[\\/]+$/, "")}/${file}`;
}

/**
 * A local model directory as {@linkcode ModelFiles}.
 *
 * @example
 * ```ts
 * const files = dirFiles("models/Qwen2.5-0.5B-Instruct");
 * const config = JSON.parse((await files.readText("config.json"))!);
 * ```
 */
export function dirFiles(path: string): ModelFiles {
  return {
    name: path,
    async readText(file) {
      const p = joinPath(path, file);
      try {
        await regularFile(p);
        return await Deno.readTextFile(p);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) return undefined;
        throw withPath(p, p, err);
      }
    },
    source: (file) => fileSource(joinPath(path, file)),
    async list() {
      const names: string[] = [];
      for await (const entry of Deno.readDir(path)) if (entry.isFile) names.push(entry.name);
      return names.sort();
    },
  };
}

/** What {@linkcode writeFileAtomic} writes: bytes, a sequence of chunks, or a function that streams into a sink. */
export type AtomicData =
  | Uint8Array
  | Iterable<Uint8Array>
  | AsyncIterable<Uint8Array>
  | ((sink: ByteSink) => Promise<void>);

/** Options for {@linkcode writeFileAtomic}. */
export interface WriteFileAtomicOptions {
  /** File permissions of the new file (default: 0o644 before umask). */
  mode?: number;
}

async function writeAll(file: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  let pos = 0;
  while (pos < chunk.length) pos += await file.write(chunk.subarray(pos));
}

/** The temporary files of the {@linkcode writeFileAtomic} calls under way. */
const partialWrites = new Set<string>();

/**
 * Removes the temporary files of the atomic writes under way (for a process about to exit on a signal, which
 * would leave them behind: a merge's is the size of a model) and returns their paths. Synchronous, so that it
 * runs to its end right before exit.
 */
export function removePartialWrites(): string[] {
  const removed: string[] = [];
  for (const tmp of partialWrites) {
    try {
      Deno.removeSync(tmp);
      removed.push(tmp);
    } catch {
      // renamed into place a moment ago, or gone: nothing partial is left
    }
  }
  partialWrites.clear();
  return removed;
}

/**
 * Writes a file so that readers see either the old content or the complete new one, never a partial
 * file: the data goes to `path + ".tmp-<random>"`, is fsynced, then renamed over `path`. If writing
 * fails the temporary file is removed and `path` is left untouched; a signal's exit removes it through
 * {@linkcode removePartialWrites}.
 *
 * @example
 * ```ts
 * await writeFileAtomic("out/adapter_model.safetensors", (sink) => writeSafetensors(sink, entries));
 * ```
 */
export async function writeFileAtomic(
  path: string,
  data: AtomicData,
  options: WriteFileAtomicOptions = {},
): Promise<void> {
  const random = crypto.getRandomValues(new Uint32Array(2));
  const tmp = `${path}.tmp-${random[0].toString(16)}${random[1].toString(16)}`;
  const dir = await Deno.stat(path).catch(() => undefined);
  if (dir?.isDirectory) throw new Error(`cannot write ${path}: it is a directory`);
  let file: Deno.FsFile;
  partialWrites.add(tmp); // before it exists: a signal while it is made must find it
  try {
    file = await Deno.open(tmp, { write: true, createNew: true, mode: options.mode ?? 0o644 });
  } catch (err) {
    partialWrites.delete(tmp);
    throw withPath(`cannot write ${path}`, path, err);
  }
  let closed = false;
  try {
    if (data instanceof Uint8Array) {
      await writeAll(file, data);
    } else if (typeof data === "function") {
      await data({ write: (chunk) => writeAll(file, chunk) });
    } else if (Symbol.asyncIterator in data) {
      for await (const chunk of data) await writeAll(file, chunk);
    } else {
      for (const chunk of data) await writeAll(file, chunk);
    }
    await file.sync();
    file.close();
    closed = true;
    await Deno.rename(tmp, path);
  } catch (err) {
    if (!closed) file.close();
    await Deno.remove(tmp).catch(() => {});
    throw withPath(`cannot write ${path}`, path, err);
  } finally {
    partialWrites.delete(tmp);
  }
  await syncDir(path);
}

/** Makes the rename durable by fsyncing the parent directory (best effort: not possible on every OS). */
async function syncDir(path: string): Promise<void> {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Directories cannot be opened or synced on some platforms; the rename itself is still atomic.
  }
}

/** A spill file (`SpillFile`, `src/engine/spill.ts`) on disk, deleted by `close`. */
export interface DenoSpillFile extends SpillFile {
  readonly path: string;
  close(): void;
}

/** Spill files of runs in `dir` that ended without deleting theirs (killed): `.spill-*.tmp`. */
const SPILL_NAME = /^\.spill-.*\.tmp$/;

/**
 * Creates a spill file in `dir` (the run folder: on the disk the user chose, not a `/tmp` that may be
 * memory), with a name of its own, after removing the ones killed runs left there.
 */
export function createSpillFile(dir: string): DenoSpillFile {
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isFile && SPILL_NAME.test(entry.name)) Deno.removeSync(`${dir}/${entry.name}`);
  }
  const path = Deno.makeTempFileSync({ dir, prefix: ".spill-", suffix: ".tmp" });
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true, write: true });
  } catch (err) {
    throw withPath(`cannot open the spill file ${path}`, path, err);
  }
  const move = (position: number, bytes: Uint8Array, io: (p: Uint8Array) => number | null, what: string) => {
    let done = 0;
    try {
      file.seekSync(position, Deno.SeekMode.Start);
      while (done < bytes.length) {
        // whole at once (no view made in the step), the rest of a short read or write after
        const n = io(done ? bytes.subarray(done) : bytes);
        if (!n) break;
        done += n;
      }
    } catch (err) {
      throw withPath(`cannot ${what} the spill file ${path}`, path, err);
    }
    if (done < bytes.length) {
      throw new Error(`cannot ${what} the spill file ${path}: stopped at byte ${position + done}`);
    }
    return done;
  };
  return {
    path,
    read: (position, into) => move(position, into, (p) => file.readSync(p), "read"),
    write: (position, data) => move(position, data, (p) => file.writeSync(p), "write"),
    close() {
      file.close();
      try {
        Deno.removeSync(path);
      } catch (err) {
        // another run started in the same folder removed it as stale (this run kept its open handle)
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    },
  };
}
