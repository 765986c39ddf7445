// dist/ as a web page uses it: a plain <script type="module"> import from a 127.0.0.1 page, in headless
// Chromium, with and without cross-origin isolation (COOP/COEP). Each trains the tiny model 3 steps from a
// pack read with HTTP Range requests, with the CLI's losses bit for bit; without isolation it asks for 2
// threads and gets 1, with a notice. A wasm or worker URL that 404s is named in the error.
// Skipped (with a message) where Chromium or playwright-core is missing; CI installs both (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { OPTIONS, tinyRun } from "./_tiny_run.ts";
import { launchChromium, openReady, skipWithoutChromium } from "../bench/chromium.ts";

const ROOT = new URL("../", import.meta.url);

const page = (pack: string, tokens: string) =>
  `<!doctype html>
<script type="module">
import { decodeTokenCache, fetchSource, openPack, train } from "/dist/mesp.js";
const bits = (p) => Array.from(new Uint32Array(p.buffer, p.byteOffset, p.length));
globalThis.trainTiny = async (threads, kernels) => {
  const pack = await openPack(fetchSource(new URL("/fixture/${pack}", location.href)));
  const res = await fetch("/fixture/${tokens}");
  const cache = decodeTokenCache(new Uint8Array(await res.arrayBuffer()), { name: "tokens" });
  const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
  try {
    const r = await train(pack, data, [], { ...${JSON.stringify(OPTIONS)}, threads, kernels });
    return { losses: r.losses, params: bits(r.params), isolated: crossOriginIsolated };
  } catch (err) {
    return { error: String(err.message ?? err) };
  }
};
globalThis.openUrl = async (url) => {
  try {
    await openPack(fetchSource(url));
    return "opened";
  } catch (err) {
    return String(err.message ?? err);
  }
};
globalThis.ready = true;
</script>`;

const skip = await skipWithoutChromium("browser tests");

Deno.test({
  name:
    "dist/ in headless Chromium, with and without COOP/COEP: the CLI's losses bit for bit; bad URLs named (wasm, worker, an unreachable pack)",
  ignore: skip,
  async fn() {
    const ref = await tinyRun();
    const browser = await launchChromium();
    const ctx = browser.context;
    try {
      // both pages side by side, in tabs of one browser
      await Promise.all([true, false].map(async (isolate) => {
        const server = serveDir(ROOT, {
          isolate,
          mounts: { "/fixture/": ref.dir },
          routes: { "/page.html": { body: page(ref.pack, ref.tokens), type: "text/html" } },
        });
        try {
          const tab = await ctx.newPage();
          const warnings: string[] = [];
          tab.on("console", (m) => {
            if (m.type() === "warning") warnings.push(m.text());
          });
          await openReady(tab, `${server.origin}/page.html`);
          // deno-lint-ignore no-explicit-any
          const run = (threads: number, kernels?: unknown): Promise<any> =>
            // deno-lint-ignore no-explicit-any
            tab.evaluate(([t, k]) => (globalThis as any).trainTiny(t, k), [threads, kernels] as const);
          const got = await run(2);
          assertEquals(got.error, undefined);
          assertEquals(got.isolated, isolate);
          assertEquals(got.losses, ref.losses, `isolated ${isolate}: losses differ`);
          assert(
            got.params.length === ref.params.length &&
              got.params.every((b: number, i: number) => b === ref.params[i]),
            `isolated ${isolate}: adapters differ`,
          );
          const notice = warnings.filter((w) => w.includes("2 threads asked for, running on 1"));
          if (isolate) assertEquals(notice, []);
          else {assert(
              notice.length === 1 && notice[0].includes("cross-origin isolated"),
              warnings.join("\n"),
            );}
          const packReads = server.requests.filter((q) => q.path === `/fixture/${ref.pack}` && q.range);
          assert(
            packReads.length > 0 && packReads.every((q) => q.status === 206),
            "the pack is not read in ranges",
          );

          const noWasm = await run(1, { wasmBase: `${server.origin}/nowhere/` });
          assert(
            noWasm.error?.includes(`${server.origin}/nowhere/mesp_relaxed.wasm: HTTP 404`),
            noWasm.error,
          );
          // a pack URL nothing answers: Chromium says only "Failed to fetch"; the error adds the URL
          const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
          const gone = `http://127.0.0.1:${(l.addr as Deno.NetAddr).port}/packs/model.pack`;
          l.close();
          // deno-lint-ignore no-explicit-any
          const unreachable = await tab.evaluate((u) => (globalThis as any).openUrl(u), gone);
          assert(
            unreachable.includes(`cannot fetch ${gone}`) && unreachable.includes("Failed to fetch"),
            unreachable,
          );
          if (isolate) {
            const noWorker = await run(2, { workerUrl: `${server.origin}/nowhere/worker.js` });
            assert(
              noWorker.error?.includes(`cannot load ${server.origin}/nowhere/worker.js: HTTP 404`),
              noWorker.error,
            );
          }
          await tab.close();
        } finally {
          await server.close();
        }
      }));
    } finally {
      await browser.close();
    }
  },
});
