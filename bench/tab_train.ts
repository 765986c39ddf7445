/**
 * One training run in a headless Chromium tab as a user's tab runs it: `dist/mesp.js` from a 127.0.0.1 page
 * that is cross-origin isolated (threads), no DevTools client attached (`launchPlainChromium`: playwright's
 * connection would keep fetched bodies in the tab's memory), the pack fetched with HTTP Range requests into
 * the Origin Private File System in step 1 (`opfsRangeCache`) and read from there after, the sequences the
 * `input_ids` lines of a JSONL file (as the CLI reads them). For `bench:torch`'s tab contestant.
 *
 * @module
 */
import { launchPlainChromium, rendererPeakMB, resetRendererPeak } from "./chromium.ts";
import { rangeReply } from "./range_reply.ts";

/** What {@linkcode tabTrain} runs: the pack, a JSONL file of `{"input_ids": […]}` lines, `train`'s options. */
export interface TabRun {
  pack: string;
  data: string;
  options: Record<string, unknown>;
}

/** What the tab reports: each step's seconds, the losses, the arena and the tab's peak (MB). */
export interface TabResult {
  step_s: number[];
  losses: number[];
  arenaMB: number;
  schedule: string;
  peak_mb: number;
  /** The renderer's size once `dist/mesp.js` was loaded, before the run. */
  idle_mb: number;
}

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

const PAGE = (options: Record<string, unknown>) =>
  `<!doctype html>
<script type="module">
import { fetchSource, opfsRangeCache, openPack, train } from "/dist/mesp.js";
await fetch("/ready");
let out;
try {
  const lines = (await (await fetch("/data")).text()).split("\\n").filter((l) => l.trim());
  const data = lines.map((l) => ({ ids: Int32Array.from(JSON.parse(l).input_ids) }));
  const pack = await openPack(fetchSource(location.origin + "/pack", { cache: opfsRangeCache("bench.pack") }));
  const elapsed = [];
  let plan;
  const onEvent = (e) => {
    if (e.type === "plan") plan = e;
    if (e.type === "step") elapsed.push(e.elapsed);
  };
  const r = await train(pack, data, [], { ...${JSON.stringify(options)}, onEvent });
  out = {
    step_s: elapsed.map((t, i) => t - (i ? elapsed[i - 1] : 0)),
    losses: r.losses,
    arenaMB: plan.bytes / 1e6,
    schedule: plan.schedule,
  };
} catch (err) {
  out = { error: String(err?.stack ?? err) };
}
await fetch("/result", { method: "POST", body: JSON.stringify(out) });
</script>`;

/** Trains `run` in a fresh tab (a fresh profile, so an empty OPFS) and returns what it reported. */
export async function tabTrain(run: TabRun): Promise<TabResult> {
  const pack = await Deno.readFile(run.pack), data = await Deno.readFile(run.data);
  let idle = 0, loaded: ReturnType<typeof setTimeout> | undefined;
  type Reported = Omit<TabResult, "peak_mb" | "idle_mb"> & { error?: string };
  let done!: (r: Reported) => void;
  const result = new Promise<Reported>((resolve, reject) => {
    done = resolve;
    // a page whose imports fail never says /ready
    loaded = setTimeout(() => reject(new Error("the tab's page did not load in 60 s")), 60_000);
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    // cross-origin isolated: SharedArrayBuffer, so the pool's threads
    const headers = new Headers({
      "cache-control": "no-store",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    });
    if (path === "/ready") {
      clearTimeout(loaded);
      await resetRendererPeak();
      idle = await rendererPeakMB();
      return new Response("go", { headers });
    }
    if (path === "/result" && req.method === "POST") {
      done(await req.json());
      return new Response(null, { status: 204 });
    }
    let body: Uint8Array;
    if (path === "/page.html") {
      headers.set("content-type", "text/html");
      body = new TextEncoder().encode(PAGE(run.options));
    } else if (path === "/data") body = data;
    else if (path === "/pack") {
      body = pack;
      headers.set("etag", `"${pack.length}"`);
      headers.set("accept-ranges", "bytes");
    } else if (path.startsWith("/dist/") && !path.includes("..")) {
      try {
        body = await Deno.readFile(`${ROOT}${path.slice(1)}`);
      } catch (err) {
        // a missing file is the page's 404; another error is the benchmark's, said here
        if (err instanceof Deno.errors.NotFound) return new Response("not found", { status: 404, headers });
        throw err;
      }
      headers.set("content-type", path.endsWith(".wasm") ? "application/wasm" : "text/javascript");
    } else return new Response("not found", { status: 404, headers });
    const { body: sent, status } = rangeReply(req, body, headers);
    return new Response(req.method === "HEAD" ? null : sent.slice(), { status, headers });
  });
  let browser: { close(): Promise<void> } | undefined;
  try {
    // inside the try: a launch that fails clears the load timer and stops the server too
    browser = await launchPlainChromium(`http://127.0.0.1:${server.addr.port}/page.html`, "mesp-bench-tab-");
    const r = await result;
    if (r.error) throw new Error(`the tab's run failed: ${r.error}`);
    return { ...r, peak_mb: await rendererPeakMB(), idle_mb: idle };
  } finally {
    clearTimeout(loaded);
    await browser?.close();
    await server.shutdown();
  }
}
