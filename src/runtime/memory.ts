/**
 * Process memory as the operating system sees it: resident set size now and at its peak. Reads Linux's
 * `/proc/self/status`; elsewhere falls back to `Deno.memoryUsage()` / Node's `process.memoryUsage()` (no
 * peak). Safe to import in a browser: every runtime API is looked up when called, never at import.
 *
 * @module
 */

/** Resident memory of this process, in bytes. */
export interface ProcessMemory {
  /** Resident set size now (`VmRSS`); 0 when the runtime cannot tell (browsers). */
  rss: number;
  /** Peak resident set size since the process started (`VmHWM`); `undefined` without `/proc`. */
  peak?: number;
}

interface DenoLike {
  readTextFileSync(path: string): string;
  memoryUsage(): { rss: number };
}

interface NodeLike {
  memoryUsage(): { rss: number };
}

/** A `kB` field of `/proc/self/status` in bytes, or `undefined` when absent. */
function statusField(status: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, "m").exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/**
 * Parses the `VmRSS` and `VmHWM` lines of a Linux `/proc/<pid>/status` text (exported for tests);
 * `undefined` when `VmRSS` is missing.
 */
export function parseProcStatus(status: string): ProcessMemory | undefined {
  const rss = statusField(status, "VmRSS");
  if (rss === undefined) return undefined;
  const peak = statusField(status, "VmHWM");
  return peak === undefined ? { rss } : { rss, peak };
}

/**
 * Current and peak resident memory of this process.
 *
 * @example
 * ```ts
 * const { rss, peak } = processMemory();
 * console.error(`peak RSS ${formatMB(peak ?? rss)}`);
 * ```
 */
export function processMemory(): ProcessMemory {
  const deno = (globalThis as { Deno?: DenoLike }).Deno;
  if (typeof deno !== "undefined") {
    try {
      const parsed = parseProcStatus(deno.readTextFileSync("/proc/self/status"));
      if (parsed) return parsed;
    } catch {
      // no /proc (macOS, Windows) or no read permission: fall through
    }
    return { rss: deno.memoryUsage().rss };
  }
  const node = (globalThis as { process?: NodeLike }).process;
  if (node && typeof node.memoryUsage === "function") return { rss: node.memoryUsage().rss };
  return { rss: 0 };
}
