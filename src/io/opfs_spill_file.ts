/**
 * A spill file (`SpillFile`, `src/engine/spill.ts`) in the Origin Private File System of a browser: a
 * `FileSystemSyncAccessHandle`, which reads and writes synchronously, as the step needs between kernels,
 * straight from and into the wasm arena (shared memory too). Sync access handles exist only in dedicated
 * workers, so `train` runs in one (the web page's compute worker does). The file's bytes are the browser's
 * to keep on disk; they count against the origin's storage quota.
 *
 * @module
 */
import type { SpillFile } from "./spill_file.ts";
import { type OpfsDirectoryHandle, opfsRoot, type OpfsSyncAccessHandle } from "./opfs.ts";

/** Options for {@linkcode opfsSpillFile}. */
export interface OpfsSpillFileOptions {
  /** The directory the file is made in (default: the origin's OPFS root). */
  directory?: OpfsDirectoryHandle;
}

/** An OPFS spill file: a {@linkcode SpillFile}, its size, and ways to let go of it. */
export interface OpfsSpillFile extends SpillFile {
  /** The OPFS file's name. */
  readonly name: string;
  /** The file's size now (bytes): the whole spill once `train` has reserved it. */
  size(): number;
  /** Releases the sync access handle (it holds the file exclusively); the file stays. */
  close(): void;
  /** Releases the handle and deletes the file: its bytes are of no use once the run is over. */
  remove(): Promise<void>;
}

/**
 * Opens (or creates) the OPFS file `name` in `options.directory` (default: the origin's root) as an empty
 * spill file, for `train(…, { spill })`. Read and write throw errors naming the file: a write the storage
 * quota refuses (`train` reserves the whole spill before the first step, so that is where a full quota shows),
 * a read that comes back short, a use after `close`. Opening fails naming the file where OPFS is missing (not a
 * browser, not a secure context), outside a dedicated worker (no sync access handles there), and when the file
 * is held by another tab or worker.
 *
 * @example
 * ```ts
 * // in a dedicated worker
 * const spill = await opfsSpillFile("run.spill");
 * try {
 *   const result = await train(pack, data, [], { ...options, spill });
 *   // … result.params is read from the spill: use it before removing the file
 * } finally {
 *   await spill.remove();
 * }
 * ```
 */
export async function opfsSpillFile(
  name: string,
  options: OpfsSpillFileOptions = {},
): Promise<OpfsSpillFile> {
  const label = `OPFS spill file ${JSON.stringify(name)}`;
  const dir = options.directory ?? await opfsRoot(label);
  if (!isDedicatedWorker()) {
    throw new Error(
      `${label}: needs a dedicated worker (FileSystemSyncAccessHandle exists only there, not on a page's ` +
        `main thread, nor in a shared or service worker): call train in a Worker`,
    );
  }
  const file = await dir.getFileHandle(name, { create: true }).catch((err) => {
    throw new Error(`${label}: cannot open or create it: ${err?.message ?? err}`, { cause: err });
  });
  if (typeof file.createSyncAccessHandle !== "function") {
    throw new Error(`${label}: this browser has no FileSystemSyncAccessHandle (createSyncAccessHandle)`);
  }
  let handle: OpfsSyncAccessHandle | undefined = await file.createSyncAccessHandle().catch((err) => {
    throw new Error(
      `${label}: cannot open it for reading and writing (held by another tab or worker?): ${
        err?.message ?? err
      }`,
      { cause: err },
    );
  });
  handle.truncate(0); // a spill starts empty (a run that was killed may have left one)

  const at = { at: 0 }; // one options object for every call: nothing is allocated in the step
  const open = (): OpfsSyncAccessHandle => {
    if (!handle) throw new Error(`${label}: used after close()`);
    return handle;
  };
  /** Moves all of `bytes` at `position` (a short read or write goes on with the rest; 0 stops). */
  const move = (position: number, bytes: Uint8Array, write: boolean): number => {
    const h = open();
    let done = 0;
    try {
      while (done < bytes.length) {
        at.at = position + done;
        const part = done ? bytes.subarray(done) : bytes;
        const n = write ? h.write(part, at) : h.read(part, at);
        if (!n) break;
        done += n;
      }
    } catch (err) {
      const why = (err as Error)?.name === "QuotaExceededError" ? "the storage quota is full: " : "";
      throw new Error(
        `${label}: cannot ${write ? "write" : "read"} ${bytes.length} bytes at byte ${position}: ${why}` +
          `${(err as Error)?.message ?? err}`,
        { cause: err },
      );
    }
    if (done < bytes.length) {
      throw new Error(
        write
          ? `${label}: wrote ${done} of ${bytes.length} bytes at byte ${position} (the storage quota is full?)`
          : `${label}: read ${done} of ${bytes.length} bytes at byte ${position}: the file ends at byte ` +
            `${h.getSize()} (changed by someone else?)`,
      );
    }
    return done;
  };
  const close = () => {
    handle?.close();
    handle = undefined;
  };
  return {
    name,
    read: (position, into) => move(position, into, false),
    write: (position, data) => move(position, data, true),
    size: () => open().getSize(),
    close,
    async remove() {
      close();
      if (typeof dir.removeEntry !== "function") {
        throw new Error(`${label}: cannot remove it: its directory handle has no removeEntry`);
      }
      await dir.removeEntry(name).catch((err) => {
        throw new Error(`${label}: cannot remove it: ${err?.message ?? err}`, { cause: err });
      });
    },
  };
}

/** A dedicated worker's global scope: the one place sync access handles exist. */
function isDedicatedWorker(): boolean {
  const scope = (globalThis as { DedicatedWorkerGlobalScope?: new () => unknown }).DedicatedWorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}
