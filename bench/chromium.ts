// Debian's Chromium driven by the pinned npm playwright-core, shared by bench/web.ts and the browser tests.
// Never `playwright install` (it downloads a browser, which fails here).

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
