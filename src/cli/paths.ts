/**
 * The paths a user gives. The one rule of every command that writes: an empty path is refused (an unset
 * shell variable must not mean `/`; the flag parser does that), nothing that exists is replaced without
 * `--force`, a directory is never taken for a file, and a run directory is locked while a run uses it (two
 * trainings into one `--out` would interleave). Inputs must be regular files: a directory gives a clear
 * error, a FIFO would block the read forever.
 *
 * @module
 */
import { statIfExists } from "../io/deno_files.ts";

/** {@linkcode statIfExists}, its errors naming `path` (and the flag that gave it). */
async function statOf(path: string, flag?: string): Promise<Deno.FileInfo | undefined> {
  const named = flag ? `${flag} ${path}` : path;
  try {
    return await statIfExists(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotADirectory) {
      throw new Error(`${named}: one of the folders on its path is a file`, { cause: err });
    }
    throw new Error(`${named}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Where a write to `path` lands: its folder after symlinks, then its name as given (a rename replaces a link
 * itself, where the link is: a Hub snapshot's files are links into its blobs). A folder not made yet is
 * resolved from its nearest existing one, the rest normalised (`..` included) without the disk.
 */
function landing(path: string): Promise<string> {
  return inRealParent(resolve(path));
}

/** Folder `abs` (absolute, normalised) after symlinks; the part not made yet appended as it is. */
async function realFolder(abs: string): Promise<string> {
  try {
    return await Deno.realPath(abs);
  } catch {
    return abs === "/" ? abs : await inRealParent(abs);
  }
}

/** `abs`'s name as it is, in its parent folder after symlinks ({@linkcode realFolder}). */
async function inRealParent(abs: string): Promise<string> {
  const slash = abs.lastIndexOf("/");
  return `${(await realFolder(abs.slice(0, slash) || "/")).replace(/\/$/, "")}/${abs.slice(slash + 1)}`;
}

/** `path` made absolute and normalised (`.`, `..`, repeated slashes), without looking at the disk. */
function resolve(path: string): string {
  const parts: string[] = [];
  const abs = path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
  for (const part of abs.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/**
 * Throws unless output `path` (given as `flag`; a `dir`ectory or one file) is outside model directory `model`:
 * its weights must not be replaced, nor a file added among them (a `.safetensors` there would be read as one
 * of its shards). `--force` does not lift this.
 */
export async function refuseInsideModel(flag: string, path: string, model: string, kind: "dir" | "file") {
  const dir = await realFolder(resolve(model));
  const out = kind === "dir" ? await realFolder(resolve(path)) : await landing(path);
  if (out === dir) {
    throw new Error(`${flag} ${path} is the model ${model} itself: give the output a place of its own`);
  }
  if (kind === "file" && out.slice(0, out.lastIndexOf("/")) === dir) {
    throw new Error(
      `${flag} ${path} is inside the model directory ${model}: writing there changes the model (even with ` +
        `--force); give the output a place of its own`,
    );
  }
}

/** Checks that input `path` (given as `flag`) is a regular file. */
export async function checkInputFile(flag: string, path: string): Promise<void> {
  const info = await statOf(path, flag);
  if (!info) throw new Error(`${flag} ${path}: file not found`);
  if (info.isDirectory) throw new Error(`${flag} ${path} is a directory; give a file`);
  if (!info.isFile) throw new Error(`${flag} ${path} is not a regular file (a FIFO or a device?)`);
}

/** Checks that input `path` (given as `flag`) is a directory, the one that holds `what`. */
export async function checkInputDir(flag: string, path: string, what: string): Promise<void> {
  const info = await statOf(path, flag);
  if (!info) throw new Error(`${flag} ${path}: not found`);
  if (!info.isDirectory) throw new Error(`${flag} ${path} is a file; give the directory that holds ${what}`);
}

/**
 * Checks a file the command is about to write (`flag` names it in errors): not a directory, not an
 * existing file unless `force`, and its directory exists or can be made.
 */
export async function claimOutputFile(flag: string, path: string, force: boolean): Promise<void> {
  const info = await statOf(path, flag);
  if (info?.isDirectory) {
    throw new Error(`${flag} ${path} is a directory; this output is one file: give its path`);
  }
  if (info && !force) {
    throw new Error(`${flag} ${path} already exists; use --force to replace it, or another ${flag}`);
  }
  if (info && !info.isFile) throw new Error(`${flag} ${path} is not a regular file`);
  const slash = path.lastIndexOf("/");
  if (slash > 0) await ensureDir(flag, path.slice(0, slash));
}

/**
 * Checks a directory the command is about to write `files` into (`flag` names it in errors): not a file, none
 * of `files` a directory there, nor a file unless `force` (other files are left alone), and made when
 * missing.
 */
export async function claimOutputDir(
  flag: string,
  dir: string,
  files: readonly string[],
  force: boolean,
): Promise<void> {
  const info = await statOf(dir, flag);
  if (info && !info.isDirectory) {
    throw new Error(`${flag} ${dir} exists and is not a directory (this output is a directory of files)`);
  }
  if (info) {
    for (const f of files) {
      const there = await statOf(`${dir}/${f}`, flag);
      if (there?.isDirectory) {
        throw new Error(`${flag} ${dir}/${f} is a directory; this output writes a file there`);
      }
      if (there && !force) {
        throw new Error(`${flag} ${dir} already holds ${f}; use --force to replace it, or another ${flag}`);
      }
    }
  }
  await ensureDir(flag, dir);
}

/** Makes directory `dir` (and its parents), with an error naming it when it cannot be made. */
export async function ensureDir(flag: string, dir: string): Promise<void> {
  const info = await statOf(dir, flag);
  if (info && !info.isDirectory) throw new Error(`${flag}: ${dir} exists and is not a directory`);
  if (info) return;
  try {
    await Deno.mkdir(dir, { recursive: true });
  } catch (err) {
    throw new Error(`${flag}: cannot make directory ${dir}: ${(err as Error).message}`);
  }
}

/** Name of the lock file of a run directory. */
export const LOCK_FILE = ".lock";

/** A held lock; `release()` frees it (idempotent, synchronous so that it also runs right before exit). */
export interface RunLock {
  release(): void;
}

/**
 * Locks run directory `dir` for this process: an exclusive OS lock on `dir/.lock`, which also records the
 * process id for messages. The kernel frees the lock when the process ends, even by `kill -9`, so a lock
 * file left behind is simply taken over; a lock held by a live run is an error naming that run.
 */
export async function lockRunDir(dir: string): Promise<RunLock> {
  const path = `${dir}/${LOCK_FILE}`;
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true, create: true });
  } catch (err) {
    throw new Error(`cannot lock ${dir}: ${(err as Error).message}`);
  }
  if (!await file.tryLock(true)) {
    let owner: { pid?: number; started?: string } = {};
    try {
      owner = JSON.parse(await Deno.readTextFile(path));
    } catch {
      // being written
    }
    file.close();
    throw new Error(
      `${dir} is in use by another run (process ${owner.pid ?? "?"}, since ${owner.started ?? "?"}); ` +
        `wait for it, or give another --out`,
    );
  }
  await file.truncate(0);
  await file.write(
    new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, started: new Date().toISOString() })),
  );
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        Deno.removeSync(path);
      } catch {
        // already gone
      }
      file.close(); // closing frees the OS lock
    },
  };
}

/** `name.tmp-<hex>`: what an interrupted atomic write leaves behind. */
const TEMP = /\.tmp-[0-9a-f]+$/;

/** Removes interrupted atomic writes (`*.tmp-*`) from `dir`; returns their names. Call with the lock held. */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && TEMP.test(e.name)) {
      await Deno.remove(`${dir}/${e.name}`);
      removed.push(e.name);
    }
  }
  return removed.sort();
}

/**
 * Under `deno task` the command runs in the folder of `deno.json`, not where the user typed it; Deno says
 * where that was in `INIT_CWD`. Moves there, so the relative paths a user gives (and the default `runs/`)
 * mean what they would in any other command. Only when running in this checkout's root, as `deno task` does
 * (another program's `INIT_CWD`, e.g. npm's, is not followed elsewhere), and only with the right to read it.
 */
export function enterTaskCaller(root: URL): void {
  if (root.protocol !== "file:") return;
  const granted = Deno.permissions.querySync({ name: "env", variable: "INIT_CWD" }).state === "granted";
  const from = granted ? Deno.env.get("INIT_CWD") : undefined;
  if (!from) return;
  // compared as real paths (a checkout reached through a symlink), a Windows URL path without its "/"
  const real = (p: string) => {
    try {
      return Deno.realPathSync(p);
    } catch {
      return p;
    }
  };
  const path = decodeURIComponent(root.pathname).replace(/^\/([A-Za-z]:)/, "$1");
  const here = real(Deno.cwd());
  if (here !== real(path) || real(from) === here) return;
  try {
    Deno.chdir(from);
  } catch {
    // a folder since removed or not readable: stay in the checkout, as before
  }
}
