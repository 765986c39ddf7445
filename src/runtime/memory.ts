/**
 * Process memory as the operating system sees it: resident set size now and at its peak. Reads Linux's
 * `/proc/self/status`; elsewhere (or without the permission) falls back to `process.memoryUsage()` with
 * `getrusage`'s peak (Node, Deno), or `Deno.memoryUsage()` (no peak). Safe to import in a browser: every
 * runtime API is looked up when called, never at import.
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
  /** `getrusage`: `maxRSS` is the peak resident set size in KiB (Node, and Deno's `process`). */
  resourceUsage?(): { maxRSS: number };
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
      // no /proc (macOS, Windows), or Deno without --allow-all (which /proc needs): fall through
    }
  }
  const node = (globalThis as { process?: NodeLike }).process;
  if (node && typeof node.memoryUsage === "function") {
    const rss = node.memoryUsage().rss;
    const maxRSS = node.resourceUsage?.().maxRSS;
    return maxRSS ? { rss, peak: Math.max(rss, maxRSS * 1024) } : { rss };
  }
  if (typeof deno !== "undefined") return { rss: deno.memoryUsage().rss };
  return { rss: 0 };
}
