/**
 * A spill file's interface (random-access bytes the engine writes and reads back synchronously between
 * kernels, `src/engine/spill.ts`), and one in memory. The Deno file is `createSpillFile` in `deno_files.ts`.
 *
 * @module
 */

/**
 * Random-access bytes outside the arena, synchronous (the step calls it between kernels): a file opened for
 * reading and writing (`createSpillFile` in the CLI), the Origin Private File System in a browser's dedicated
 * worker (`opfsSpillFile`), or memory ({@linkcode memorySpill}, for tests).
 */
export interface SpillFile {
  /** Fills `into` with the bytes at `position` (written earlier; returns how many were read). */
  read(position: number, into: Uint8Array): number;
  /** Writes `data` at `position` (returns how many were written). */
  write(position: number, data: Uint8Array): number;
}

/** A spill held in memory (tests, and runtimes with memory to spare but a small wasm limit). */
export function memorySpill(): SpillFile & { bytes(): number } {
  let store = new Uint8Array(0);
  return {
    read(position, into) {
      into.set(store.subarray(position, position + into.length));
      return into.length;
    },
    write(position, data) {
      const end = position + data.length;
      if (end > store.length) {
        const grown = new Uint8Array(Math.max(end, store.length * 2));
        grown.set(store);
        store = grown;
      }
      store.set(data, position);
      return data.length;
    },
    bytes: () => store.length,
  };
}
