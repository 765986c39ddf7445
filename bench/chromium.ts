// Debian's Chromium driven by the pinned npm playwright-core, shared by bench/web.ts and the browser tests.
// Never `playwright install` (it downloads a browser, which fails here).

import { processPeakMB } from "./measure.ts";

/** Debian's `chromium` package. */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags of every headless run: no sandbox (root in CI), no GPU, no network of Chromium's own. */
export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export type Playwright = typeof import("npm:playwright-core@1.65.1");

/** playwright-core, or why it cannot run here (Chromium missing, the package not loadable). */
export async function playwright(): Promise<Playwright | string> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    return `${CHROMIUM} is missing (apt-get install -y chromium)`;
  }
  try {
    // deno-lint-ignore no-import-prefix
    return await import("npm:playwright-core@1.65.1");
  } catch (err) {
    return `npm:playwright-core@1.65.1 cannot be loaded (${(err as Error).message.split("\n")[0]})`;
  }
}

/** The Chromium renderer processes descended from this process (a tab and its workers live there). */
export async function rendererPids(): Promise<number[]> {
  const parent = new Map<number, number>();
  const renderers: number[] = [];
  for await (const e of Deno.readDir("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      if ((await Deno.readTextFile(`/proc/${pid}/cmdline`)).includes("--type=renderer")) renderers.push(pid);
    } catch { /* the process ended */ }
  }
  const mine = (pid: number): boolean => {
    for (let p = pid; p > 1; p = parent.get(p) ?? 0) if (p === Deno.pid) return true;
    return false;
  };
  return renderers.filter(mine);
}

/** The largest VmHWM (MB) of the renderers. */
export async function rendererPeakMB(): Promise<number> {
  let peak = 0;
  for (const pid of await rendererPids()) peak = Math.max(peak, await processPeakMB(pid).catch(() => 0));
  return peak;
}

/** Resets the renderers' VmHWM to their current RSS (Linux `clear_refs` 5), to measure one stage's peak. */
export async function resetRendererPeak(): Promise<void> {
  for (const pid of await rendererPids()) await Deno.writeTextFile(`/proc/${pid}/clear_refs`, "5");
}
