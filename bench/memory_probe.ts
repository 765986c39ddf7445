/**
 * Runs one `mesp` command in this process (as `src/cli/main.ts` would) while recording, every few
 * milliseconds the event loop is free, what Linux and V8 say the process holds: `/proc/self/status`
 * (resident anonymous and file-backed memory, the peak) and `Deno.memoryUsage()` (the V8 heap, external
 * buffers). `bench/memory_breakdown.ts` starts it; on its own:
 *
 * ```sh
 * MESP_MEMORY_PROBE=/tmp/probe.jsonl deno run --lock=deno.dev.lock -A bench/memory_probe.ts train --model … --data … --out …
 * ```
 *
 * writes one JSON line per sample (`t` ms since start, MB) and a last line with the maxima. The probe itself
 * costs a few hundred kB of heap (a timer and short strings).
 *
 * @module
 */
import { main } from "../src/cli/main.ts";
import { getHeapSpaceStatistics } from "node:v8";

const out = Deno.env.get("MESP_MEMORY_PROBE");
const t0 = performance.now();
const lines: string[] = [];
const max = { rss: 0, anon: 0, file: 0, heapTotal: 0, heapUsed: 0, external: 0 };

function kB(status: string, key: string): number {
  const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(status);
  return m ? Number(m[1]) * 1024 / 1e6 : NaN;
}

function sample(label?: string): void {
  const s = Deno.readTextFileSync("/proc/self/status"), mu = Deno.memoryUsage();
  const row = {
    t: Math.round(performance.now() - t0),
    rss: kB(s, "VmRSS"),
    hwm: kB(s, "VmHWM"),
    anon: kB(s, "RssAnon"),
    file: kB(s, "RssFile"),
    heapTotal: mu.heapTotal / 1e6,
    heapUsed: mu.heapUsed / 1e6,
    external: mu.external / 1e6,
    // seconds the main thread has run on a CPU: a step's cost on a shared machine (with one kernel thread)
    cpu: Number(Deno.readTextFileSync("/proc/thread-self/schedstat").split(" ")[0]) / 1e9,
    ...(label ? { label } : {}),
  };
  for (const k of Object.keys(max) as (keyof typeof max)[]) max[k] = Math.max(max[k], row[k]);
  lines.push(JSON.stringify(row));
}

/** Samples before and after each call of `obj[name]` (after its promise settles, for async ones). */
function hook(obj: Record<string, unknown>, name: string, label: string): void {
  const f = obj[name] as (...a: unknown[]) => unknown;
  obj[name] = function (this: unknown, ...a: unknown[]) {
    sample(`${label} …`);
    const r = f.apply(this, a);
    if (r instanceof Promise) r.then(() => sample(`${label} done`), () => sample(`${label} failed`));
    else sample(`${label} done`);
    return r;
  };
}

if (out) {
  hook(WebAssembly as unknown as Record<string, unknown>, "compile", "WebAssembly.compile");
  hook(WebAssembly as unknown as Record<string, unknown>, "instantiate", "WebAssembly.instantiate");
  hook(Deno.Command.prototype as unknown as Record<string, unknown>, "spawn", "Deno.Command spawn");
  const log = console.log;
  console.log = (...a: unknown[]) => {
    if (String(a[0]).startsWith('{"step"')) sample(`stdout: ${String(a[0]).slice(0, 60)}`);
    log(...a);
  };
  const error = console.error;
  console.error = (...a: unknown[]) => {
    sample(`stderr: ${String(a[0]).slice(0, 60)}`);
    error(...a);
  };
  sample("start");
  Deno.unrefTimer(setInterval(sample, 20));
}
/**
 * Resident MB by kind of mapping, from `/proc/self/smaps`: the kernels' wasm memory (the largest anonymous
 * read-write mapping), V8 heap pages (anonymous 256 kB chunks), malloc's main heap, executable anonymous
 * memory (V8 and wasm code), other anonymous memory (thread stacks, malloc arenas of other threads, V8's
 * off-heap tables), and the file-backed pages of the deno executable and of other files.
 */
export function mappings(): Record<string, number> {
  const rows: { kb: number; perm: string; name: string; rss: number }[] = [];
  for (const line of Deno.readTextFileSync("/proc/self/smaps").split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      rows.push({ kb: (parseInt(m[2], 16) - parseInt(m[1], 16)) / 1024, perm: m[3], name: m[4], rss: 0 });
    } else if (line.startsWith("Rss:")) rows[rows.length - 1].rss = Number(line.split(/\s+/)[1]) * 1024 / 1e6;
  }
  const exe = Deno.execPath();
  const wasm = rows.filter((r) => !r.name && r.perm === "rw-p").sort((a, b) => b.rss - a.rss)[0];
  const out: Record<string, number> = {};
  const add = (k: string, v: number) => (out[k] = +((out[k] ?? 0) + v).toFixed(2));
  for (const r of rows) {
    if (r === wasm) add("wasm memory", r.rss);
    else if (r.name === exe) {
      add(
        `deno ${r.perm.includes("x") ? "code" : r.perm.startsWith("r-") ? "read-only data" : "data"}`,
        r.rss,
      );
    } else if (r.name.startsWith("/")) add("other files", r.rss);
    else if (r.name === "[heap]") add("malloc heap", r.rss);
    else if (r.name === "[stack]") add("main stack", r.rss);
    else if (!r.name && r.perm.includes("x")) add("executable anonymous (code)", r.rss);
    else if (!r.name && r.kb === 256) add("V8 heap pages", r.rss);
    else add("other anonymous", r.rss);
  }
  return out;
}

const code = await main(Deno.args);
if (out) {
  sample();
  lines.push(JSON.stringify({ mappings: mappings() }));
  const spaces: Record<string, number> = {};
  for (const sp of getHeapSpaceStatistics()) spaces[sp.space_name] = +(sp.space_used_size / 1e6).toFixed(2);
  lines.push(JSON.stringify({ heapSpacesUsed: spaces }));
  lines.push(JSON.stringify({ max }));
  Deno.writeTextFileSync(out, lines.join("\n") + "\n");
}
Deno.exit(code);
