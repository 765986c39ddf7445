// Debian's Chromium driven by the pinned npm playwright-core: the one headless launch (flags, a fresh
// profile), the page-ready wait and the browser tests' skip-or-fail, for bench/ (web.ts, remote.ts) and the
// browser tests alike. It lives in bench/ because tests/ import from bench/ (this, llama_cpp.ts) and bench/
// imports nothing of tests/: a benchmark runs without the test helpers, and the dependency goes one way.
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
export type BrowserContext = Awaited<ReturnType<Playwright["chromium"]["launchPersistentContext"]>>;
export type Page = Awaited<ReturnType<BrowserContext["newPage"]>>;
type LaunchOptions = NonNullable<Parameters<Playwright["chromium"]["launchPersistentContext"]>[1]>;

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

/** A headless Chromium in a profile folder of its own; `close` ends it and removes the folder. */
export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Starts Debian's Chromium headless with {@linkcode FLAGS} and a fresh `--user-data-dir` (a temporary folder
 * named `prefix`…), with playwright's other `options` (downloads, viewport). Throws why it cannot: Chromium
 * missing, playwright-core not loadable.
 */
export async function launchChromium(
  options: Omit<LaunchOptions, "executablePath" | "headless" | "args"> & { prefix?: string } = {},
): Promise<Chromium> {
  const pw = await playwright();
  if (typeof pw === "string") throw new Error(pw);
  const { prefix = "mesp-chromium-", ...rest } = options;
  const profile = await Deno.makeTempDir({ prefix });
  const removeProfile = () => Deno.remove(profile, { recursive: true });
  const context = await pw.chromium.launchPersistentContext(profile, {
    ...rest,
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
  }).catch(async (err) => {
    await removeProfile().catch(() => {});
    throw err;
  });
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        await removeProfile();
      }
    },
  };
}

/**
 * Debian's Chromium, headless with {@linkcode FLAGS} and a fresh profile, opening `url` with no DevTools client
 * attached: a tab as a user has it. For measuring a tab's memory: under playwright, Chromium keeps the bodies
 * of the responses a page fetches for DevTools (its Network domain's buffers), and that is the tab's memory
 * too — a tab streaming the 0.5B's pack peaked at 442.7 MB under playwright and 236.1 MB plain
 * (bench/README.md, "A tab as a user has it"). Such a page reports back over HTTP. `close` ends the browser
 * and removes the profile.
 */
export async function launchPlainChromium(
  url: string,
  prefix = "mesp-chromium-",
): Promise<{ close(): Promise<void> }> {
  await Deno.stat(CHROMIUM);
  const profile = await Deno.makeTempDir({ prefix });
  const child = new Deno.Command(CHROMIUM, {
    args: [...FLAGS, `--user-data-dir=${profile}`, url],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    async close() {
      child.kill();
      await child.status;
      // its helper processes outlive the browser's for a moment, still writing to the profile
      for (let i = 0;; i++) {
        try {
          return await Deno.remove(profile, { recursive: true });
        } catch (err) {
          if (i === 50) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
  };
}

/** Opens `url` in `tab` and waits until the page has set `globalThis.ready = true` (its imports done). */
export async function openReady(tab: Page, url: string): Promise<void> {
  await tab.goto(url);
  await tab.waitForFunction(() => (globalThis as { ready?: boolean }).ready === true);
}

/**
 * A browser test file's `ignore`: true (logging "`what` skipped: why") where Chromium or playwright-core is
 * missing, unless MESP_REQUIRE_RUNTIMES=1 (CI sets it): there the tests run and fail at
 * {@linkcode launchChromium}, naming what is missing.
 */
export async function skipWithoutChromium(what: string): Promise<boolean> {
  const found = await playwright();
  if (typeof found !== "string" || Deno.env.get("MESP_REQUIRE_RUNTIMES") === "1") return false;
  console.log(`${what} skipped: ${found}`);
  return true;
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
