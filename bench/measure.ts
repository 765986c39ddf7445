/**
 * What the benchmarks share to read a measurement: CPU time of the machine and of this process (to tell a
 * quiet run from one that shared the CPU), the CPU's name, the median (and a median element), the median step
 * time and a process's peak memory.
 *
 * @module
 */

/**
 * CPU seconds used so far by the whole machine (`busy`) and by this process, all its threads (`own`), from
 * Linux `/proc`; zeros elsewhere. Other programs on a shared machine take cores from the threads being
 * measured: `busy − own` over a wall-clock interval is the cores they used.
 */
export function cpuSeconds(): { busy: number; own: number } {
  try {
    const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    const s = Deno.readTextFileSync("/proc/self/stat"), rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    // user nice system irq softirq steal; this process's utime + stime
    return { busy: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100, own: (+rest[11] + +rest[12]) / 100 };
  } catch {
    return { busy: 0, own: 0 };
  }
}

/**
 * The machine's mean runnable tasks (about its busy cores) over `seconds`, from the 1-minute load average
 * (`Deno.loadavg()[0]`, which needs `--allow-sys=loadavg`) read at its start (`before`) and end (`after`):
 * the kernel moves that average toward the current count every 5 s with weight 1 − e^(−5/60), so
 * `after = before·a + mean·(1 − a)` with `a = e^(−seconds/60)`, a mean weighted toward the interval's end.
 */
export function busyCores(before: number, after: number, seconds: number): number {
  if (!(seconds > 0)) return 0;
  const a = Math.exp(-seconds / 60);
  return Math.max(0, (after - before * a) / (1 - a));
}

/** /proc/cpuinfo: Deno reads /proc files only with -A, so under a task's narrower flags `cat` (--allow-run) reads it. */
function procCpuinfo(): string {
  try {
    return Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    return new TextDecoder().decode(new Deno.Command("cat", { args: ["/proc/cpuinfo"] }).outputSync().stdout);
  }
}

/**
 * The CPU's model name, family/model and widest x86 vector extension (Linux `/proc/cpuinfo`): kernel speed
 * differs between machines, and a virtual machine's "AMD EPYC" alone does not tell Zen 3 (family 25 model 1,
 * AVX2) from Zen 4 (family 25 model 17, AVX-512), so every table names all three.
 */
export function cpuModel(): string {
  try {
    const info = procCpuinfo();
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, "m").exec(info)?.[1];
    const flags = ` ${field("flags") ?? ""} `;
    const simd = flags.includes(" avx512f ") ? "AVX-512" : flags.includes(" avx2 ") ? "AVX2" : "no AVX2";
    const family = field("cpu family"), model = field("model");
    return `${field("model name") ?? "unknown CPU"}${
      family === undefined ? "" : ` (family ${family} model ${model}, ${simd})`
    }`;
  } catch {
    return "unknown CPU";
  }
}

/** The median (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Index of a median element: the middle one in sorted order (the upper middle for an even count). */
export function medianIndex(xs: readonly number[]): number {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  return order[order.length >> 1];
}

/** Median seconds per step over steps 2… of cumulative elapsed times (step 1 includes compiling, first reads). */
export function stepTime(elapsed: readonly number[]): number {
  const per = elapsed.slice(1).map((t, i) => t - elapsed[i]);
  return median(per.length ? per : elapsed);
}

/** Peak resident memory (VmHWM) of a Linux process, in MB. */
export async function processPeakMB(pid: number): Promise<number> {
  const m = (await Deno.readTextFile(`/proc/${pid}/status`)).match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 / 1e6 : NaN;
}

/** The newest file with this ending in `dir` (the one the CLI just made or checked). */
export function newest(dir: string, ext: string): string {
  const found = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(ext))
    .map((e) => ({
      path: `${dir}/${e.name}`,
      mtime: Deno.statSync(`${dir}/${e.name}`).mtime?.getTime() ?? 0,
    }))
    .sort((a, b) => b.mtime - a.mtime);
  if (!found.length) throw new Error(`no ${ext} in ${dir}`);
  return found[0].path;
}
