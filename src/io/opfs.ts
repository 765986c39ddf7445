/**
 * The parts of the Origin Private File System (the File System Access API, not in Deno's types) that mesp's
 * OPFS files use (`opfs_range_cache.ts`, `opfs_spill_file.ts`), and the opening of its root with an error
 * that names the file it was wanted for.
 *
 * @module
 */

/** The parts of a `FileSystemFileHandle` used here. */
export interface OpfsFileHandle {
  readonly name: string;
  getFile(): Promise<Blob>;
  createWritable(options?: { keepExistingData?: boolean }): Promise<OpfsWritableFile>;
  /** Dedicated workers only. */
  createSyncAccessHandle?(): Promise<OpfsSyncAccessHandle>;
}

/** The parts of a `FileSystemWritableFileStream` used here. */
export interface OpfsWritableFile {
  write(chunk: { type: "write"; position: number; data: Uint8Array }): Promise<void>;
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** The parts of a `FileSystemSyncAccessHandle` used here. */
export interface OpfsSyncAccessHandle {
  read(into: Uint8Array, options: { at: number }): number;
  write(data: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  getSize(): number;
  flush(): void;
  close(): void;
}

/** The part of a `FileSystemDirectoryHandle` used here. */
export interface OpfsDirectoryHandle {
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  /** Deletes a file (`opfsSpillFile`'s `remove`). */
  removeEntry?(name: string): Promise<void>;
}

/** The origin's OPFS root; where there is none, an error that begins with `label` (the file it was for). */
export async function opfsRoot(label: string): Promise<OpfsDirectoryHandle> {
  const storage =
    (globalThis as { navigator?: { storage?: { getDirectory?(): Promise<OpfsDirectoryHandle> } } })
      .navigator?.storage;
  if (typeof storage?.getDirectory !== "function") {
    throw new Error(
      `${label}: the Origin Private File System is not available here (navigator.storage.getDirectory ` +
        `is missing: not a browser, or not a secure context such as https or localhost)`,
    );
  }
  return await storage.getDirectory().catch((err) => {
    throw new Error(`${label}: cannot open the Origin Private File System: ${err?.message ?? err}`, {
      cause: err,
    });
  });
}
