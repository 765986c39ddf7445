/**
 * Stop requests: Ctrl-C (SIGINT), SIGTERM (what `docker stop`, systemd and Slurm send) and SIGHUP (a closed
 * terminal). A command that can save asks to be told; the exit code is 128 + the signal number, as a shell
 * reports a process killed by it.
 *
 * @module
 */

import { removePartialWrites } from "../io/deno_files.ts";
import { endChildren } from "./children.ts";

/** The signals that ask a command to stop, with their exit codes. */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
/** One of {@linkcode STOP_SIGNALS}. */
export type StopSignal = keyof typeof STOP_SIGNALS;

/** Listening for stop signals; `dispose()` restores the default handling. */
export interface SignalTrap {
  /** The first signal received, if any. */
  readonly received: StopSignal | undefined;
  /** Its exit code (0 when none was received). */
  readonly exitCode: number;
  dispose(): void;
}

/**
 * Signals this close together are one request. One Ctrl-C under `deno task` arrives twice: the terminal
 * sends SIGINT to the whole process group, and the task runner forwards its own copy to the command.
 */
export const SAME_REQUEST_MS = 1000;

/**
 * Calls `onSignal(signal, count)` for every stop request (`count` is how many have arrived so far); a signal
 * within {@linkcode SAME_REQUEST_MS} of the last counted one is the same request and is not counted again.
 * Signals the platform cannot listen to (Windows has only SIGINT) are skipped.
 */
export function trapSignals(onSignal: (signal: StopSignal, count: number) => void): SignalTrap {
  let received: StopSignal | undefined;
  let count = 0, last = -Infinity;
  const handlers: [StopSignal, () => void][] = [];
  for (const signal of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    const handler = () => {
      const now = performance.now();
      if (now - last < SAME_REQUEST_MS) return;
      last = now;
      received ??= signal;
      onSignal(signal, ++count);
    };
    try {
      Deno.addSignalListener(signal, handler);
      handlers.push([signal, handler]);
    } catch {
      // not supported on this platform
    }
  }
  return {
    get received() {
      return received;
    },
    get exitCode() {
      return received ? STOP_SIGNALS[received] : 0;
    },
    dispose() {
      for (const [signal, handler] of handlers.splice(0)) Deno.removeSignalListener(signal, handler);
    },
  };
}

/**
 * For a command with nothing to save (all but `train`, which traps its own): a stop signal ends its
 * children, removes the temporary files of the writes under way (saying which), and exits with the signal's
 * code. Without this the process would die leaving them, a merge's the size of a model.
 */
export function exitCleanlyOnSignal(): SignalTrap {
  return trapSignals((signal) => {
    endChildren();
    const removed = [...removePartialWrites().map((p) => `the partial ${p}`), ...runStopCleanups()];
    console.error(`\n${signal}: stopped${removed.length ? `; removed ${removed.join(", ")}` : ""}`);
    Deno.exit(STOP_SIGNALS[signal]);
  });
}

/** What a stop removes besides partial writes: each returns a description of what it removed, or nothing. */
const stopCleanups = new Set<() => string | undefined>();

/**
 * Registers `cleanup` (synchronous) to run when {@linkcode exitCleanlyOnSignal} stops the process, e.g. an
 * output directory a command made and has not finished; call the returned function once it is no longer
 * wanted.
 */
export function onStop(cleanup: () => string | undefined): () => void {
  stopCleanups.add(cleanup);
  return () => stopCleanups.delete(cleanup);
}

function runStopCleanups(): string[] {
  const done: string[] = [];
  for (const cleanup of stopCleanups) {
    try {
      const what = cleanup();
      if (what) done.push(what);
    } catch {
      // best effort: the process is exiting
    }
  }
  stopCleanups.clear();
  return done;
}
