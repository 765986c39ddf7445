/**
 * Child processes end with their parent: the parent keeps a list of the children it started and ends them
 * when it is told to stop; a child started with {@linkcode watchParent} ends by itself when its parent is
 * gone, even after a `kill -9` (its stdin, a pipe from the parent, reaches end-of-file).
 *
 * @module
 */

import { removePartialWrites } from "../io/deno_files.ts";

const live = new Set<Deno.ChildProcess>();

/** Spawns `command` (stdin piped: the child may watch it) and tracks it until it exits. */
export function spawnChild(command: Deno.Command): Deno.ChildProcess {
  const child = command.spawn();
  live.add(child);
  child.status.finally(() => live.delete(child));
  return child;
}

/** Sends `signal` to every child still running. */
export function endChildren(signal: Deno.Signal = "SIGTERM"): void {
  for (const child of live) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/**
 * In a child spawned with stdin piped: exits with `code` when the parent's end of stdin closes, removing
 * the temporary files of its writes under way. The pending read keeps the event loop alive, so the child
 * must end with `Deno.exit`.
 */
export function watchParent(code = 1): void {
  const exit = () => (removePartialWrites(), Deno.exit(code));
  Deno.stdin.read(new Uint8Array(1)).then((n) => n === null && exit(), exit);
}
