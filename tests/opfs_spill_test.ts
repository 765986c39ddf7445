// opfsSpillFile in headless Chromium, through dist/ as a page uses it: a dedicated worker trains the tiny model
// 3 steps with its saved inputs, adapter and AdamW moments spilled to an OPFS file (sync access handle, on 1
// thread and on 2, where the arena is shared memory), and gets the CLI's losses and adapter bit for bit (the
// CLI spills to a file on disk) and the library's in-memory run's. A spill that drops every 7th write does
// not (the comparison can fail). The file is gone after `remove`. A storage quota smaller than the spill
// fails naming the file; so does opening it on the page's main thread, and in Deno (no OPFS).
// Skipped (with a message) where Chromium or playwright-core is missing; CI installs both (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { OPTIONS, printed, tinyRun } from "./_tiny_run.ts";
import { launchChromium, openReady, skipWithoutChromium } from "../bench/chromium.ts";
import { opfsSpillFile } from "../src/io/opfs_spill_file.ts";

const ROOT = new URL("../", import.meta.url);

const WORKER = (pack: string, tokens: string) => `
import { decodeTokenCache, fetchSource, openPack, opfsSpillFile, train } from "/dist/mesp.js";
const bits = (p) => Array.from(new Uint32Array(p.buffer, p.byteOffset, p.length));

async function run({ file, threads, dropWrites }) {
  const pack = await openPack(fetchSource(new URL("/fixture/${pack}", location.href)));
  const res = await fetch("/fixture/${tokens}");
  const cache = decodeTokenCache(new Uint8Array(await res.arrayBuffer()), { name: "tokens" });
  const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
  const spill = await opfsSpillFile(file);
  let size = 0, planned = "", out;
  try {
    let n = 0;
    // the broken variant: every 7th write is lost (the file keeps what was there)
    const used = dropWrites
      ? { read: (p, b) => spill.read(p, b), write: (p, d) => (++n % 7 === 0 ? d.length : spill.write(p, d)) }
      : spill;
    const onEvent = (e) => {
      if (e.type === "plan") planned = e.spill ?? "";
      if (e.type === "step") size = spill.size();
    };
    const r = await train(pack, data, [], { ...${JSON.stringify(OPTIONS)}, threads, spill: used, onEvent });
    // a spilled run's parameters are read from the file: before it is removed
    out = { losses: r.losses, params: bits(r.params), size, planned, isolated: crossOriginIsolated };
  } finally {
    await spill.remove();
  }
  const root = await navigator.storage.getDirectory();
  out.removed = await root.getFileHandle(file).then(() => false, () => true);
  return out;
}

onmessage = async (e) => {
  try {
    postMessage(await run(e.data));
  } catch (err) {
    postMessage({ error: String(err.message ?? err) });
  }
};
`;

const PAGE = `<!doctype html>
<script type="module">
import { opfsSpillFile } from "/dist/mesp.js";
globalThis.inWorker = (job) => new Promise((resolve) => {
  const w = new Worker("/spill_worker.js", { type: "module" });
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
  w.onerror = (e) => resolve({ error: "worker: " + e.message });
  w.postMessage(job);
});
globalThis.onMainThread = (file) => opfsSpillFile(file).then(() => "opened", (err) => String(err.message ?? err));
globalThis.ready = true;
</script>`;

interface Result {
  losses: number[];
  params: number[];
  size: number;
  /** The plan event's line on the spill. */
  planned: string;
  isolated: boolean;
  removed: boolean;
  error?: string;
}

const skip = await skipWithoutChromium("OPFS spill tests");

Deno.test({
  name:
    "opfsSpillFile in a dedicated worker in headless Chromium (1 and 2 threads): the CLI's losses and adapter bit for bit; a spill that drops writes does not; a full quota and the main thread named",
  ignore: skip,
  async fn() {
    const ref = await tinyRun();
    const server = serveDir(ROOT, {
      isolate: true, // 2 threads: the arena is a SharedArrayBuffer, read into and written from in place
      mounts: { "/fixture/": ref.dir },
      routes: {
        "/page.html": { body: PAGE, type: "text/html" },
        "/spill_worker.js": { body: WORKER(ref.pack, ref.tokens), type: "text/javascript" },
      },
    });
    const browser = await launchChromium({ prefix: "mesp-opfs-spill-" });
    const ctx = browser.context;
    try {
      const tab = ctx.pages()[0] ?? await ctx.newPage();
      await openReady(tab, `${server.origin}/page.html`);
      const inWorker = (job: { file: string; threads: number; dropWrites?: boolean }) =>
        // deno-lint-ignore no-explicit-any
        tab.evaluate((j) => (globalThis as any).inWorker(j), job) as Promise<Result>;
      /** What differs from the reference runs (empty: nothing). */
      const differences = (r: Result) =>
        [
          r.error && `error: ${r.error}`,
          JSON.stringify(r.losses) !== JSON.stringify(ref.losses) && "losses ≠ the in-memory run's",
          JSON.stringify(r.losses?.map(printed)) !== JSON.stringify(ref.cliLosses) && "losses ≠ the CLI's",
          JSON.stringify(r.params) !== JSON.stringify(ref.params) && "adapter ≠ the in-memory run's",
          JSON.stringify(r.params) !== JSON.stringify(ref.cliParams) && "adapter ≠ the CLI's",
        ].filter(Boolean);

      let spillBytes = 0;
      for (const threads of [1, 2]) {
        const r = await inWorker({ file: `mesp-spill-${threads}.tmp`, threads });
        assertEquals(differences(r), [], `${threads} thread(s)`);
        assert(r.isolated && r.planned.includes("saved layer inputs"), `not spilled: ${r.planned}`);
        assert(r.size > 0 && r.removed, `${threads} thread(s): size ${r.size}, removed ${r.removed}`);
        spillBytes = r.size;
      }

      const broken = await inWorker({ file: "mesp-spill-broken.tmp", threads: 1, dropWrites: true });
      assert(differences(broken).length > 0, "a spill that drops every 7th write reproduced the run");

      // a quota smaller than the spill: the reservation before the first step fails, naming the file
      const cdp = await ctx.newCDPSession(tab);
      await cdp.send("Storage.overrideQuotaForOrigin", {
        origin: server.origin,
        quotaSize: Math.floor(spillBytes / 2),
      });
      const full = await inWorker({ file: "mesp-spill-quota.tmp", threads: 1 });
      assert(
        full.error?.includes('OPFS spill file "mesp-spill-quota.tmp"') &&
          full.error.includes("the storage quota is full"),
        full.error ?? "the run did not fail",
      );
      await cdp.send("Storage.overrideQuotaForOrigin", { origin: server.origin });

      // deno-lint-ignore no-explicit-any
      const main = await tab.evaluate((f) => (globalThis as any).onMainThread(f), "main.tmp") as string;
      assert(main.includes('OPFS spill file "main.tmp"') && main.includes("dedicated worker"), main);
    } finally {
      await browser.close();
      await server.close();
    }
  },
});

Deno.test("opfsSpillFile without OPFS (Deno): fails naming the file", async () => {
  let message = "";
  await opfsSpillFile("run.spill").catch((err) => (message = err.message));
  assert(
    message.includes('OPFS spill file "run.spill"') && message.includes("Origin Private File System"),
    message,
  );
});
