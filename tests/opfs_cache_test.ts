// opfsRangeCache in headless Chromium, through dist/ as a page uses it: the tiny model trained 3 steps from a
// pack served over HTTP Range with its ranges kept in the Origin Private File System. The losses and adapter
// are the CLI's (bit for bit), steps 2 and 3 make no request, a reload reads the pack's ranges from the file
// alone, a different pack at the same URL (another ETag) is detected and its bytes fetched afresh, and in a
// dedicated worker (a sync access handle) the same. Outside a browser the cache fails naming its file.
// Skipped (with a message) where Chromium or playwright-core is missing; CI installs both (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { OPTIONS, printed, sequences, tinyRun } from "./_tiny_run.ts";
import { launchChromium, openReady, skipWithoutChromium } from "../bench/chromium.ts";
import { fetchSource } from "../src/io/source.ts";
import { opfsRangeCache } from "../src/io/opfs_range_cache.ts";
import { bytesSource } from "../src/io/source.ts";
import { openPack } from "../src/model/pack.ts";
import { train } from "../src/run/train.ts";

const ROOT = new URL("../", import.meta.url);
const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;
const DATA = decodeURIComponent(new URL("../data/lumen/train.jsonl", import.meta.url).pathname);

// The run, as a module both the page and the worker import. Each request carries the phase it was made in
// (`open` before training, then the step in progress), so the server can count them per step.
const RUN = `
import { decodeTokenCache, fetchSource, openPack, opfsRangeCache, train } from "/dist/mesp.js";
const bits = (p) => Array.from(new Uint32Array(p.buffer, p.byteOffset, p.length));
export async function trainOpfs(file, options) {
  let phase = "open";
  const tagged = (url, init = {}) => fetch(url, { ...init, headers: { ...init.headers, "x-mesp-tag": phase } });
  const notices = [];
  const cache = opfsRangeCache(file, { ...options, onNotice: (m) => notices.push(m) });
  try {
    const pack = await openPack(fetchSource(new URL("/pack", location.href), { fetch: tagged, cache }));
    const tokens = decodeTokenCache(new Uint8Array(await (await fetch("/tokens")).arrayBuffer()), { name: "tokens" });
    const data = Array.from({ length: tokens.count }, (_, i) => tokens.example(i));
    phase = "1";
    const onEvent = (e) => { if (e.type === "step") phase = String(e.step + 1); };
    const r = await train(pack, data, [], { ...${JSON.stringify(OPTIONS)}, threads: 1, onEvent });
    await cache.flush();
    return { losses: r.losses, params: bits(r.params), notices, stats: cache.stats(), bytes: cache.bytes() };
  } catch (err) {
    return { error: String(err.message ?? err), notices, stats: cache.stats() };
  } finally {
    await cache.close();
  }
}
`;

const PAGE = `<!doctype html>
<script type="module">
import { trainOpfs } from "/run.js";
globalThis.trainOpfs = trainOpfs;
globalThis.trainInWorker = (file, options) => new Promise((resolve) => {
  const w = new Worker("/worker.js", { type: "module" });
  w.onmessage = (e) => { resolve(e.data); w.terminate(); };
  w.onerror = (e) => resolve({ error: "worker: " + e.message });
  w.postMessage([file, options]);
});
globalThis.ready = true;
</script>`;

const WORKER = `
import { trainOpfs } from "/run.js";
onmessage = async (e) => postMessage(await trainOpfs(...e.data));
`;

interface Result {
  losses: number[];
  params: number[];
  notices: string[];
  stats: { fileReads: number; pendingReads: number; blockLoads: number; writes: number };
  bytes: number;
  error?: string;
}

/** The ways the cache reads and writes the file: on the main thread (its own worker, or File snapshots), in a worker. */
const WAYS = {
  "page": { fn: "trainOpfs", options: {} },
  "page-snapshots": { fn: "trainOpfs", options: { worker: false } },
  "worker": { fn: "trainInWorker", options: {} },
} as const;
type Way = keyof typeof WAYS;

const skip = await skipWithoutChromium("OPFS cache tests");

/** A second tiny pack (other weights, same shapes and tokenizer) and its losses, as the library gives them. */
async function otherPack(dir: string, tokens: Uint8Array): Promise<{ bytes: Uint8Array; losses: number[] }> {
  const env = { NO_COLOR: "1", MESP_CACHE: `${dir}/cache` };
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", MAIN, ...args], env }).output();
    assert(out.success, new TextDecoder().decode(out.stderr));
  };
  await run(["make-model", "--preset", "tiny", "--seed", "1", "--out", `${dir}/model`]);
  await run(["train", "--model", `${dir}/model`, "--data", DATA, "--out", `${dir}/run`, "--steps", "1"]);
  const name = [...Deno.readDirSync(`${dir}/cache/packs`)].find((e) => e.name.endsWith(".pack"))!.name;
  const bytes = await Deno.readFile(`${dir}/cache/packs/${name}`);
  const r = await train(await openPack(bytesSource(bytes)), sequences(tokens), [], OPTIONS);
  return { bytes, losses: r.losses };
}

Deno.test({
  name:
    "opfsRangeCache in headless Chromium (page, page without its worker, worker): the CLI's losses; 0 requests after step 1 and after a reload; a changed pack detected",
  ignore: skip,
  async fn() {
    const ref = await tinyRun();
    const tokens = await Deno.readFile(`${ref.dir}/${ref.tokens}`);
    const v1 = await Deno.readFile(`${ref.dir}/${ref.pack}`);
    const tmp = await Deno.makeTempDir({ prefix: "mesp-opfs-" });
    const v2 = await otherPack(tmp, tokens);
    let pack: Uint8Array = v1;
    const server = serveDir(ROOT, {
      override: (path) => (path === "/pack" ? pack : path === "/tokens" ? tokens : undefined),
      routes: {
        "/page.html": { body: PAGE, type: "text/html" },
        "/run.js": { body: RUN, type: "text/javascript" },
        "/worker.js": { body: WORKER, type: "text/javascript" },
      },
    });
    const browser = await launchChromium({ prefix: "mesp-opfs-chromium-" });
    try {
      const tab = browser.context.pages()[0] ?? await browser.context.newPage();
      const load = () => openReady(tab, `${server.origin}/page.html`);
      /** One run, and the requests it made for the pack by phase (`open`, `1`, `2`, `3`). */
      const run = async (how: Way, file: string) => {
        const before = server.requests.length;
        const r = await tab.evaluate(
          // deno-lint-ignore no-explicit-any
          ([f, name, options]) => (globalThis as any)[f](name, options),
          [WAYS[how].fn, file, WAYS[how].options] as const,
        ) as Result;
        assertEquals(r.error, undefined, `${how}: ${r.error}`);
        const seen = server.requests.slice(before).filter((q) => q.path === "/pack");
        const ranges = (phase: string) => seen.filter((q) => q.tag === phase && q.range).length;
        return { r, seen, ranges };
      };
      const same = (r: Result, losses: number[], what: string) =>
        assertEquals(r.losses, losses, `${what}: losses differ`);

      for (const how of Object.keys(WAYS) as Way[]) {
        const file = `mesp-test-${how}.pack`;
        pack = v1;
        await load();
        // first visit: the pack fetched once, in step 1 (and the header at open); later steps read the file
        const first = await run(how, file);
        same(first.r, ref.losses, `${how}, first visit`);
        assertEquals(first.r.losses.map(printed), ref.cliLosses, `${how}: not the CLI's losses`);
        assert(
          first.r.params.length === ref.cliParams.length &&
            first.r.params.every((b, i) => b === ref.cliParams[i]),
          `${how}: the adapter is not the CLI's (bit for bit)`,
        );
        assert(first.ranges("1") > 0, `${how}: step 1 fetched nothing`);
        assertEquals(
          first.seen.filter((q) => q.tag === "2" || q.tag === "3").length,
          0,
          `${how}: steps 2, 3`,
        );
        assert(
          first.r.stats.fileReads > 0,
          `${how}: nothing read from the file: ${JSON.stringify(first.r.stats)}`,
        );
        assertEquals(first.r.notices, []);

        // a reload: every range from the file (a HEAD asks the server which version it has)
        await load();
        const again = await run(how, file);
        same(again.r, ref.losses, `${how}, after a reload`);
        assertEquals(again.seen.filter((q) => q.range).length, 0, `${how}: ranges fetched after a reload`);
        assert(
          again.seen.length <= 1 && again.seen.every((q) => q.method === "HEAD"),
          JSON.stringify(again.seen),
        );
        assertEquals(again.r.stats.pendingReads, 0);
        assertEquals(again.r.notices, []);

        // another pack at the same URL (other weights, another ETag): the kept bytes are not used
        pack = v2.bytes;
        await load();
        const changed = await run(how, file);
        same(changed.r, v2.losses, `${how}, changed pack`);
        assert(changed.ranges("1") > 0, `${how}: the changed pack was not fetched`);
        assert(
          changed.r.notices.length === 1 && changed.r.notices[0].includes(`"${file}"`) &&
            changed.r.notices[0].includes("another version"),
          changed.r.notices.join("\n"),
        );
        assert(v2.losses.some((l, i) => l !== ref.losses[i]), "the second pack trains like the first");
      }
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("opfsRangeCache without OPFS (Deno): the first read fails naming the cache file", async () => {
  const bytes = new Uint8Array(100);
  const fake = (_: string | URL | Request, init?: RequestInit) =>
    Promise.resolve(
      init?.method === "HEAD"
        ? new Response(null, { headers: { "content-length": "100", etag: '"a"' } })
        : new Response(bytes.slice(0, 10), { status: 206, headers: { "content-range": "bytes 0-9/100" } }),
    );
  const source = fetchSource("http://x/model.pack", { fetch: fake, cache: opfsRangeCache("model.pack") });
  let message = "";
  await source.read(0, new Uint8Array(10)).catch((err) => (message = err.message));
  assert(
    message.includes('OPFS cache file "model.pack"') && message.includes("Origin Private File System"),
    message,
  );
});
