/**
 * Remote weights: a pack served over HTTP Range from 127.0.0.1 and trained on through `fetchSource`, next to
 * the same pack held in memory (`bytesSource` over one full download), in Deno, in headless Chromium and in
 * workerd, and the CLI reading it from a local file — all in one run, one after another, on one thread
 * (`--threads N`: Deno, Chromium and the CLI on N; workerd has no Worker, so one).
 *
 *   deno task make-model --preset tiny --out /tmp/tiny
 *   deno task bench:remote --model /tmp/tiny --steps 4 --seq-len 64
 *   deno task make-model --preset qwen2.5-0.5b --out /tmp/m05 --format mlx-q4
 *   deno task bench:remote --model /tmp/m05 --steps 3 --seq-len 256
 *
 * Flags: --steps 4, --seq-len 256, --chunks 512,16384 (the vocabChunk values of the URL runs),
 * --caches memory,cacheapi,opfs,opfs-snapshots,whole (URL runs at chunk 512 whose fetched ranges are kept:
 * `memoryRangeCache()`, the Cache API through `cacheStorageRangeCache`, the Origin Private File System through
 * `opfsRangeCache` (Chromium only: Deno has no OPFS; `opfs-snapshots` with `worker: false`, reading through
 * `File` snapshots); `whole`: `wholeBelow: 64 MB`, a pack that small read whole),
 * --runtimes deno,chromium,workerd, --cache DIR (where the CLI
 * builds the pack once; default under /tmp).
 *
 * What is measured:
 * - requests and bytes per step, counted by the server: every request carries a tag `run/phase` (the phase
 *   is the step in progress, or `open` before training), set by a `fetch` wrapper handed to `fetchSource`;
 * - step time: the median over steps 2…N of the train events' elapsed times (with --repeat N, each
 *   runtime's runs are done N times in turn and the median is over all rounds: the load of a shared machine
 *   drifts between runs);
 * - peak memory: the Deno process's own (`processMemory`), the Chromium tab's (VmHWM of the renderer
 *   processes descended from this one, reset with `clear_refs` when the page is ready), workerd's (VmHWM of
 *   its process after the run) and the CLI's whole-process peak (its own report).
 *
 * Needs -A: Deno reads and writes /proc of other processes only with it. The workerd binary is the one
 * `deno task test` installs (tests/workerd_test.ts); without it, leave workerd out of --runtimes.
 *
 * @module
 */
import { cpuModel, median, newest, processPeakMB, stepTime } from "./measure.ts";
import { launchChromium, launchPlainChromium, rendererPeakMB, resetRendererPeak } from "./chromium.ts";
import { benchArgs } from "./args.ts";
import { rangeReply } from "./range_reply.ts";
import type { CommandSpec } from "../src/cli/args.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const MAIN = new URL("../src/cli/main.ts", import.meta.url).href;
const MOD = new URL("../mod.ts", import.meta.url).href;
const WORKERD_VERSION = "1.20261117.1"; // as in tests/workerd_test.ts, installed there into this folder
const WORKERD = `${Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`}/mesp-test/` +
  `workerd-${WORKERD_VERSION}/node_modules/@cloudflare/workerd-linux-64/bin/workerd`;

const SPEC = {
  name: "bench:remote",
  program: "deno task",
  description:
    "training on a pack served over HTTP Range, beside the same pack in memory and the CLI on a file",
  flags: {
    model: { type: "string", value: "DIR", required: true, description: "model directory" },
    steps: { type: "integer", default: 4, min: 1, description: "training steps" },
    seqLen: { type: "integer", default: 256, min: 1, description: "tokens per sequence" },
    chunks: { type: "list", default: ["512", "16384"], description: "the vocabChunk values of the URL runs" },
    runtimes: {
      type: "list",
      choices: ["deno", "chromium", "chromium-playwright", "workerd"],
      default: ["deno", "chromium", "workerd"],
      description:
        "where the URL runs train (chromium-playwright: the same tab driven by playwright, as the " +
        "browser tests are: its DevTools connection keeps fetched bodies, which counts in the tab's memory)",
    },
    caches: {
      type: "list",
      choices: ["memory", "cacheapi", "opfs", "opfs-snapshots", "whole"],
      default: ["memory", "cacheapi", "opfs", "opfs-snapshots", "whole"],
      description: "the range caches the URL runs are repeated with",
    },
    optimizer: {
      type: "string",
      choices: ["adamw", "sgd"],
      default: "adamw",
      description: "optimizer of every run (AdamW keeps two moments the size of the adapter)",
    },
    budget: {
      type: "size",
      description:
        "arena budget of the library runs (train's `budget`: the fastest exact schedule that fits, e.g. fewer " +
        "saved inputs; the same bits, so the CLI's losses still compare)",
    },
    saveState: {
      type: "boolean",
      description: "workerd also trains once more streaming the training state up at the end " +
        "(trainingStateStream through a FixedLengthStream, a PUT): the isolate's memory with the upload",
    },
    threads: {
      type: "integer",
      default: 1,
      min: 1,
      description:
        "threads of the Deno, Chromium and CLI runs (the page is cross-origin isolated; workerd: 1)",
    },
    repeat: {
      type: "integer",
      default: 1,
      min: 1,
      description: "rounds of each runtime's runs, interleaved (step time: the median over all rounds)",
    },
    cache: {
      type: "string",
      value: "DIR",
      description: "where the CLI builds the pack once (default under /tmp)",
    },
  },
} as const satisfies CommandSpec;
const args = benchArgs(SPEC);
const model = args.model.replace(/\/$/, "");
const { steps, seqLen, repeat, optimizer, budget, threads } = args;
const chunks = args.chunks.map(Number);
const runtimes: string[] = args.runtimes;
const caches = args.caches as Run["cache"][];
const cache = args.cache ?? `/tmp/mesp-bench-remote/${model.replaceAll("/", "_")}`;

/** The training options every run shares (the CLI gets the same as flags). */
const OPTIONS = {
  seqLen,
  steps,
  seed: 1,
  threads,
  lora: { rank: 8, alpha: 16 },
  optimizer: { name: optimizer, lr: 2e-4, schedule: "cosine" },
  budget,
};
const CLI_FLAGS = [
  "--steps",
  String(steps),
  "--seq-len",
  String(seqLen),
  "--seed",
  "1",
  "--threads",
  String(threads),
  "--rank",
  "8",
  "--alpha",
  "16",
  "--optimizer",
  optimizer,
  "--lr",
  "0.0002",
  "--schedule",
  "cosine",
];

/** One training run: where its pack comes from, its vocabulary chunk, and what keeps fetched ranges. */
interface Run {
  name: string;
  from: "memory" | "url";
  vocabChunk: number;
  /**
   * What keeps fetched bytes: nothing, `memoryRangeCache()`, the Cache API (`cacheStorageRangeCache`), OPFS
   * (`opfsRangeCache`, browsers only), or `fetchSource`'s `wholeBelow: 64 MB` (a pack that small downloaded
   * whole at the first read).
   */
  cache?: "memory" | "cacheapi" | "opfs" | "opfs-snapshots" | "whole";
  /** Stream the training state up with a PUT at the end (workerd: through a `FixedLengthStream`). */
  save?: boolean;
}

/** What a runtime reports of a run. */
interface RunResult {
  name: string;
  elapsed: number[];
  losses: number[];
  error?: string;
  peakMB?: number;
  /** The library runs' arena and the schedule their budget bought (train's plan event). */
  arenaMB?: number;
  schedule?: string;
  /** The size of the WebAssembly memory the run trained in. */
  wasmMB?: number;
  /** With `save`: the state's size and the seconds its upload took. */
  savedMB?: number;
  saveSeconds?: number;
}

/**
 * The runs as every runtime executes them (a module, served to Chromium, embedded in workerd, imported by
 * Deno): `lib` is mesp (mod.ts or dist/mesp.js), `fetch` reaches the bench's server at `base`.
 */
const RUNNER = `
export async function runAll(lib, { fetch, base, runs, options, kernels }) {
  const res = await fetch(base + "/tokens");
  const cache = lib.decodeTokenCache(new Uint8Array(await res.arrayBuffer()), { name: "tokens" });
  const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
  const out = [];
  for (const run of runs) {
    let phase = "open";
    const tagged = (url, init = {}) =>
      fetch(url, { ...init, headers: { ...init.headers, "x-mesp-tag": run.name + "/" + phase } });
    const elapsed = [];
    try {
      const source = run.from === "memory"
        ? lib.bytesSource(new Uint8Array(await (await tagged(base + "/pack")).arrayBuffer()), "pack")
        : lib.fetchSource(base + "/pack", {
          fetch: tagged,
          wholeBelow: run.cache === "whole" ? 64 << 20 : undefined,
          cache: run.cache === "memory"
            ? lib.memoryRangeCache()
            : run.cache === "cacheapi"
            ? lib.cacheStorageRangeCache(await caches.open("mesp-bench-" + run.name + "-" + Date.now()), base + "/pack")
            : run.cache === "opfs" || run.cache === "opfs-snapshots"
            ? lib.opfsRangeCache("mesp-bench-" + run.name + "-" + Date.now() + ".pack", { worker: run.cache === "opfs" })
            : undefined,
        });
      const pack = await lib.openPack(source);
      phase = "1";
      let plan;
      const onEvent = (e) => {
        if (e.type === "plan") plan = { arenaMB: e.bytes / 1e6, schedule: e.schedule };
        if (e.type !== "step") return;
        elapsed.push(e.elapsed);
        phase = String(e.step + 1);
      };
      let saved;
      const saveState = run.save ? async (state) => {
        phase = "save";
        const t0 = performance.now();
        const { byteLength, stream } = lib.trainingStateStream(state, {}, { views: true });
        const body = typeof FixedLengthStream === "function"
          ? stream.pipeThrough(new FixedLengthStream(byteLength))
          : stream;
        const res = await tagged(base + "/state", { method: "PUT", body, duplex: "half" });
        if (!res.ok) throw new Error("PUT " + base + "/state: " + res.status);
        saved = { savedMB: byteLength / 1e6, saveSeconds: (performance.now() - t0) / 1e3 };
      } : undefined;
      const r = await lib.train(pack, data, [], { ...options, vocabChunk: run.vocabChunk, kernels, onEvent, saveState });
      // the trained parameters are a view of the engine's WebAssembly memory: its size
      out.push({ name: run.name, elapsed, losses: r.losses, ...plan, ...saved, wasmMB: r.params.buffer.byteLength / 1e6 });
    } catch (err) {
      out.push({ name: run.name, elapsed, losses: [], error: String(err?.stack ?? err) });
    }
  }
  return out;
}
`;

/** Requests and bytes the server answered, by tag. */
const counts = new Map<string, { requests: number; bytes: number }>();
let packBytes = new Uint8Array();
let tokenBytes = new Uint8Array();

const TYPES: Record<string, string> = { js: "text/javascript", wasm: "application/wasm", html: "text/html" };

/**
 * The page of a Chromium run: the run from its query (`?run=JSON`); it says `/ready` once its imports are done
 * (and waits for the answer, given after the tab's peak is reset), trains, and posts its result to `/result`:
 * no DevTools client is attached to the tab, whose memory that would inflate (`launchPlainChromium`).
 */
function page(): string {
  return `<!doctype html>
<script type="module">
import * as lib from "/dist/mesp.js";
import { runAll } from "/runner.js";
const run = JSON.parse(new URLSearchParams(location.search).get("run"));
await fetch("/ready");
let out;
try {
  out = await runAll(lib, { fetch, base: location.origin, runs: [run], options: ${JSON.stringify(OPTIONS)} });
} catch (err) {
  out = [{ name: run.name, elapsed: [], losses: [], error: String(err?.stack ?? err) }];
}
await fetch("/result", { method: "POST", body: JSON.stringify(out[0]) });
</script>`;
}

/** The Chromium run in progress: called when its page is ready (answered once it returns) and with its result. */
const tab: { ready?: () => Promise<void>; result?: (r: RunResult) => void } = {};

/** The bench's server: the pack (with Range), the token cache, dist/, the runner and the page. */
function serve(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/ready" && tab.ready) {
      await tab.ready();
      return new Response("go", { headers: { "cache-control": "no-store" } });
    }
    if (req.method === "POST" && path === "/result" && tab.result) {
      tab.result(await req.json());
      return new Response(null, { status: 204 });
    }
    if (req.method === "PUT" && path === "/state") {
      // the upload is counted as it arrives and dropped (this process's memory is not what is measured)
      let bytes = 0;
      for await (const chunk of req.body ?? []) bytes += chunk.length;
      const expected = req.headers.get("content-length");
      if (expected !== null && Number(expected) !== bytes) return new Response("short body", { status: 400 });
      return new Response(null, { status: 201 });
    }
    // cross-origin isolated (COOP/COEP), so the page has SharedArrayBuffer and threads
    const headers = new Headers({
      "cache-control": "no-store",
      "accept-ranges": "bytes",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
    });
    let body: Uint8Array;
    if (path === "/pack") body = packBytes;
    else if (path === "/tokens") body = tokenBytes;
    else if (path === "/runner.js") body = new TextEncoder().encode(RUNNER);
    else if (path === "/page.html") body = new TextEncoder().encode(page());
    else if (path.startsWith("/dist/") && !path.includes("..")) {
      try {
        body = await Deno.readFile(`${ROOT}${path.slice(1)}`);
      } catch {
        return new Response("not found", { status: 404 });
      }
    } else return new Response("not found", { status: 404 });
    headers.set("content-type", TYPES[path.split(".").pop()!] ?? "application/octet-stream");
    if (path === "/pack") headers.set("etag", `"${packBytes.length}"`);
    const { body: sent, status } = rangeReply(req, body, headers);
    body = sent;
    const tag = req.headers.get("x-mesp-tag");
    if (tag) {
      const c = counts.get(tag) ?? { requests: 0, bytes: 0 };
      c.requests++;
      c.bytes += body.length;
      counts.set(tag, c);
    }
    return new Response(body.slice(), { status, headers });
  });
}

async function output(cmd: Deno.Command, what: string): Promise<{ stdout: string; stderr: string }> {
  const r = await cmd.output();
  const dec = new TextDecoder();
  const stdout = dec.decode(r.stdout), stderr = dec.decode(r.stderr);
  if (!r.success) throw new Error(`${what} failed:\n${stderr}`);
  return { stdout, stderr };
}

/** Random token ids (8 sequences of T; ordinary tokens only, which the CLI checks), one file per T. */
async function writeData(vocab: number): Promise<string> {
  let s = 0x9e3779b9;
  const next = () => (s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0);
  const lines = Array.from(
    { length: 8 },
    () =>
      JSON.stringify({ input_ids: Array.from({ length: seqLen }, () => next() % Math.min(vocab, 151643)) }),
  );
  const path = `${cache}/data-${seqLen}.jsonl`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** The CLI on the local model (it builds the pack and token cache the other runs are served). */
async function cliRun(data: string, vocabChunk: number): Promise<RunResult> {
  const out = await Deno.makeTempDir({ prefix: "mesp-bench-remote-cli-" });
  const args = [
    "run",
    "-A",
    "--v8-flags=--max-semi-space-size=1",
    MAIN,
    "train",
    "--model",
    model,
    "--data",
    data,
    "--out",
    `${out}/run`,
    "--json",
    "--vocab-chunk",
    String(vocabChunk),
    ...CLI_FLAGS,
  ];
  const cmd = new Deno.Command(Deno.execPath(), { args, env: { NO_COLOR: "1", MESP_CACHE: cache } });
  const { stdout, stderr } = await output(cmd, "CLI train");
  await Deno.remove(out, { recursive: true });
  const lines = stdout.split("\n").filter((l) => l.startsWith('{"step"')).map((l) => JSON.parse(l));
  return {
    name: `cli-${vocabChunk}`,
    elapsed: lines.map((l) => l.elapsed_s),
    losses: lines.map((l) => l.loss),
    peakMB: Number(stderr.match(/peak memory ([\d.]+) MB/)?.[1] ?? NaN),
  };
}

/** One Deno process per run, importing mod.ts, with only network access to the server besides reading. */
async function denoRun(origin: string, run: Run): Promise<RunResult> {
  const dir = await Deno.makeTempDir({ prefix: "mesp-bench-remote-deno-" });
  const script = `
import * as lib from "${MOD}";
import { runAll } from "${origin}/runner.js";
const [r] = await runAll(lib, { fetch, base: "${origin}", runs: [${JSON.stringify(run)}], options: ${
    JSON.stringify(OPTIONS)
  } });
console.log(JSON.stringify({ ...r, peakMB: (lib.processMemory().peak ?? NaN) / 1e6 }));
`;
  await Deno.writeTextFile(`${dir}/main.ts`, script);
  const args = ["run", "-A", "--v8-flags=--max-semi-space-size=1", `${dir}/main.ts`];
  try {
    const { stdout } = await output(
      new Deno.Command(Deno.execPath(), { args, env: { NO_COLOR: "1" } }),
      run.name,
    );
    return JSON.parse(stdout.trim().split("\n").pop()!);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * One run in the one tab of a fresh headless Chromium, with no DevTools client (`launchPlainChromium`) or
 * driven by playwright; the tab's peak from when its page is ready.
 */
async function chromiumRun(
  origin: string,
  run: Run,
  harness: "plain" | "playwright",
): Promise<RunResult & { idleMB: number }> {
  let idleMB = 0, loaded: ReturnType<typeof setTimeout> | undefined;
  const result = new Promise<RunResult>((resolve, reject) => {
    // a page whose imports fail never says /ready
    loaded = setTimeout(
      () => reject(new Error(`Chromium: ${run.name}: the page did not load in 60 s`)),
      60_000,
    );
    tab.ready = async () => {
      clearTimeout(loaded);
      await resetRendererPeak();
      idleMB = await rendererPeakMB();
    };
    tab.result = resolve;
  });
  const url = `${origin}/page.html?${new URLSearchParams({ run: JSON.stringify(run) })}`;
  const prefix = "mesp-bench-remote-chromium-";
  let browser: { close(): Promise<void> } | undefined;
  try {
    // inside the try: a launch that fails clears the load timer too
    if (harness === "plain") browser = await launchPlainChromium(url, prefix);
    else {
      const chromium = browser = await launchChromium({ prefix });
      const page = chromium.context.pages()[0] ?? await chromium.context.newPage();
      await page.goto(url);
    }
    const r = await result;
    return { ...r, peakMB: await rendererPeakMB(), idleMB };
  } finally {
    clearTimeout(loaded);
    tab.ready = tab.result = undefined;
    await browser?.close();
  }
}

/** workerd config: dist/mesp.js with the wasm as module imports; the server reached as a service. */
const workerdConfig = (host: string) => `
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [(name = "main", worker = .mesp), (name = "bench", external = (address = "${host}", http = ()))],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
  v8Flags = ["--trace-gc"],
);
const mesp :Workerd.Worker = (
  modules = [
    (name = "main.js", esModule = embed "main.js"),
    (name = "runner.js", esModule = embed "runner.js"),
    (name = "mesp.js", esModule = embed "mesp.js"),
    (name = "mesp_relaxed.wasm", wasm = embed "mesp_relaxed.wasm"),
    (name = "mesp_simd.wasm", wasm = embed "mesp_simd.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [(name = "BENCH", service = "bench")],
);
`;

const WORKER = `
import * as lib from "./mesp.js";
import { runAll } from "./runner.js";
import relaxed from "./mesp_relaxed.wasm";
import simd from "./mesp_simd.wasm";
const kernels = { modules: { "mesp_relaxed.wasm": relaxed, "mesp_simd.wasm": simd } };
export default {
  async fetch(request, env) {
    const runs = JSON.parse(new URL(request.url).searchParams.get("runs"));
    const fetch = (url, init) => env.BENCH.fetch(url, init);
    return Response.json(await runAll(lib, { fetch, base: "http://bench", runs, options: ${
  JSON.stringify(OPTIONS)
}, kernels }));
  },
};
`;

/**
 * The largest V8 heap (MB, used then committed) in `--trace-gc` lines ("Scavenge 9.6 (11.2) -> …"): the
 * isolate's JavaScript heap before a collection, without its ArrayBuffers (the wasm memory among them).
 */
function gcHeapPeak(trace: string): { used: number; committed: number } | undefined {
  let used = 0, committed = 0, seen = false;
  for (
    const m of trace.matchAll(
      /: (?:Scavenge|Mark-Compact|Minor Mark-Sweep|Mark-Sweep)[^\d]*([\d.]+) \(([\d.]+)\) ->/g,
    )
  ) {
    used = Math.max(used, Number(m[1])), committed = Math.max(committed, Number(m[2])), seen = true;
  }
  return seen ? { used, committed } : undefined;
}

/** One run in one workerd process (no Worker there: one thread); its peak after the run. */
async function workerdRun(
  host: string,
  run: Run,
): Promise<RunResult & { idleMB: number; heapMB?: { used: number; committed: number } }> {
  const dir = await Deno.makeTempDir({ prefix: "mesp-bench-remote-workerd-" });
  await Deno.writeTextFile(`${dir}/main.js`, WORKER);
  await Deno.writeTextFile(`${dir}/runner.js`, RUNNER);
  await Deno.writeTextFile(`${dir}/config.capnp`, workerdConfig(host));
  await Deno.copyFile(`${ROOT}dist/mesp.js`, `${dir}/mesp.js`);
  for (const f of ["mesp_relaxed.wasm", "mesp_simd.wasm"]) {
    await Deno.copyFile(`${ROOT}dist/wasm/${f}`, `${dir}/${f}`);
  }
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  // stdout line-buffered (`stdbuf`, where there is one), so the GC trace is whole when the process is stopped
  const serveArgs = ["serve", "config.capnp", "--socket-addr", `http=127.0.0.1:${port}`];
  const stdbuf = await new Deno.Command("stdbuf", { args: ["--version"], stdout: "null", stderr: "null" })
    .output().then((o) => o.success, () => false);
  const child = new Deno.Command(stdbuf ? "stdbuf" : WORKERD, {
    args: stdbuf ? ["-oL", WORKERD, ...serveArgs] : serveArgs,
    cwd: dir,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const trace = new Response(child.stdout).text();
  try {
    const url = `http://127.0.0.1:${port}/?${new URLSearchParams({ runs: JSON.stringify([run]) })}`;
    let up = false;
    for (let i = 0; i < 200 && !up; i++) {
      up = await Deno.connect({ hostname: "127.0.0.1", port }).then((c) => (c.close(), true), () => false);
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    const idleMB = await processPeakMB(child.pid);
    const [r] = await (await fetch(url)).json() as RunResult[];
    const peakMB = await processPeakMB(child.pid);
    child.kill();
    await child.status;
    return { ...r, peakMB, idleMB, heapMB: gcHeapPeak(await trace) };
  } finally {
    try {
      child.kill();
    } catch { /* stopped already */ }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

// --- the run ---
const cpu = cpuModel();
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
await Deno.mkdir(cache, { recursive: true });
await Deno.remove(`${cache}/tokens`, { recursive: true }).catch(() => {});
const vocab = JSON.parse(await Deno.readTextFile(`${model}/config.json`)).vocab_size as number;
const data = await writeData(vocab);
console.error(`CLI (local file), builds the pack in ${cache} …`);
const cli = await cliRun(data, 512);
const packPath = newest(`${cache}/packs`, ".pack");
packBytes = await Deno.readFile(packPath);
tokenBytes = await Deno.readFile(newest(`${cache}/tokens`, ".tokcache"));
const server = serve();
const origin = `http://127.0.0.1:${server.addr.port}`;

const runs: Run[] = [
  { name: "memory", from: "memory", vocabChunk: 512 },
  ...chunks.map((c): Run => ({ name: `url-${c}`, from: "url", vocabChunk: c })),
  ...caches.map((cache): Run => ({ name: `url-512-${cache}`, from: "url", vocabChunk: 512, cache })),
];
const results: Record<string, RunResult[]> = {};
const failed = (rs: RunResult[]) => rs.filter((r) => r.error).map((r) => `${r.name}: ${r.error}`);
try {
  // rounds after the first are tagged name~round: the server's counts are the first round's
  const round = (name: string, r: number) => (r === 1 ? name : `${name}~${r}`);
  if (runtimes.includes("deno")) {
    results.deno = [];
    for (let r = 1; r <= repeat; r++) {
      for (const run of runs.filter((x) => !x.cache?.startsWith("opfs"))) {
        console.error(`Deno: ${run.name} (round ${r}) …`);
        results.deno.push({ ...await denoRun(origin, { ...run, name: round(run.name, r) }), name: run.name });
      }
    }
  }
  for (const [label, harness] of [["chromium", "plain"], ["chromium-playwright", "playwright"]] as const) {
    if (!runtimes.includes(label)) continue;
    results[label] = [];
    for (let r = 1; r <= repeat; r++) {
      for (const run of runs) {
        console.error(`${label}: ${run.name} (round ${r}) …`);
        const res = await chromiumRun(origin, { ...run, name: round(`${label}-${run.name}`, r) }, harness);
        results[label].push({ ...res, name: run.name });
      }
    }
  }
  if (runtimes.includes("workerd")) {
    const host = server.addr.hostname + ":" + server.addr.port;
    results.workerd = [];
    for (const save of args.saveState ? [false, true] : [false]) {
      const name = save ? "workerd-url-512-save" : "workerd-url-512";
      console.error(`workerd: ${name} …`);
      results.workerd.push(await workerdRun(host, { name, from: "url", vocabChunk: 512, save }));
    }
  }
} finally {
  await server.shutdown();
}
const errors = Object.values(results).flatMap(failed);
if (errors.length) console.error(errors.join("\n"));

// --- the report ---
const mb = (b: number) => (b / 1e6).toFixed(1);
console.log(
  `# ${cpu}, load average ${load} at the start; ${model}, pack ${mb(packBytes.length)} MB, ` +
    `T ${seqLen}, ${steps} steps, ${threads === 1 ? "1 thread" : `${threads} threads (workerd: 1)`}, ${
      optimizer === "sgd" ? "SGD" : "AdamW"
    } rank 8 on all targets` +
    (budget === undefined ? "" : `, arena budget ${mb(budget)} MB`),
);
console.log("\n## Requests and bytes per step (counted by the server)\n");
console.log(
  "| run | vocabChunk | open: requests, MB | step 1: requests, MB | steps 2…N: requests (range), MB (mean) | × pack |",
);
console.log("|---|---:|---:|---:|---:|---:|");
for (const label of ["deno", "chromium", "chromium-playwright"]) {
  const rs = results[label] ?? [];
  for (const r of rs.filter((x, i, all) => all.findIndex((y) => y.name === x.name) === i)) {
    const prefix = label === "deno" ? r.name : `${label}-${r.name}`;
    const c = (phase: string) => counts.get(`${prefix}/${phase}`) ?? { requests: 0, bytes: 0 };
    // steps read different token rows (each its own sequence): the range over steps 2…N, and the mean bytes
    const later = Array.from({ length: steps - 1 }, (_, i) => c(String(i + 2)));
    const req = later.map((x) => x.requests), lo = Math.min(...req), hi = Math.max(...req);
    const meanBytes = later.reduce((n, x) => n + x.bytes, 0) / Math.max(1, later.length);
    const each = later.length ? `${lo === hi ? lo : `${lo}–${hi}`}, ${mb(meanBytes)}` : "–";
    const x = later.length ? (meanBytes / packBytes.length).toFixed(2) : "–";
    const vc = runs.find((run) => prefix.endsWith(run.name))?.vocabChunk;
    console.log(
      `| ${label} ${r.name} | ${vc} | ${c("open").requests}, ${mb(c("open").bytes)} | ` +
        `${c("1").requests}, ${mb(c("1").bytes)} | ${each} | ${x} |`,
    );
  }
}
for (const r of results.workerd ?? []) {
  const c = (phase: string) => counts.get(`${r.name}/${phase}`) ?? { requests: 0, bytes: 0 };
  const later = Array.from({ length: steps - 1 }, (_, i) => c(String(i + 2)));
  const req = later.map((x) => x.requests), lo = Math.min(...req), hi = Math.max(...req);
  const meanBytes = later.reduce((n, x) => n + x.bytes, 0) / Math.max(1, later.length);
  console.log(
    `| ${r.name} | 512 | ${c("open").requests}, ${mb(c("open").bytes)} | ${c("1").requests}, ` +
      `${mb(c("1").bytes)} | ${lo === hi ? lo : `${lo}–${hi}`}, ${mb(meanBytes)} | ` +
      `${(meanBytes / packBytes.length).toFixed(2)} |`,
  );
}

console.log("\n## Step time (median of steps 2…N, s) and peak memory\n");
console.log("| runtime | run | s/step | URL / memory | peak MB | arena MB | losses |");
console.log("|---|---|---:|---:|---:|---:|---|");
const fmtLosses = (l: number[]) => l.map((x) => x.toFixed(5)).join(" ");
console.log(
  `| CLI (local file) | vocabChunk 512 | ${stepTime(cli.elapsed).toFixed(3)} | | ${
    cli.peakMB?.toFixed(1)
  } | | ` +
    `${fmtLosses(cli.losses)} |`,
);
/** Median step time of a run over all its rounds (steps 2…N of each). */
const roundsStepTime = (rs: RunResult[], name: string) =>
  median(
    rs.filter((r) => r.name === name).flatMap((r) => r.elapsed.slice(1).map((t, i) => t - r.elapsed[i])),
  );
for (const [label, rs] of Object.entries(results)) {
  const memory = rs.find((r) => r.name === "memory");
  for (const r of rs.filter((x, i, all) => all.findIndex((y) => y.name === x.name) === i)) {
    const t = roundsStepTime(rs, r.name);
    const ratio = memory && r !== memory ? (t / roundsStepTime(rs, "memory")).toFixed(2) + "×" : "";
    const peak = r.peakMB === undefined ? "" : r.peakMB.toFixed(1);
    // workerd: the process's growth over its idle size bounds what the isolate used (its heap and the wasm
    // memory, which a Worker's 128 MB counts, and the runtime's own buffers, which it does not)
    const idle = (r as { idleMB?: number }).idleMB;
    const heap = (r as { heapMB?: { used: number; committed: number } }).heapMB;
    const above = idle === undefined || r.peakMB === undefined
      ? ""
      : ` (at start ${idle.toFixed(1)}; ${(r.peakMB - idle).toFixed(1)} above${
        heap
          ? `; V8 heap at most ${heap.used.toFixed(1)} used, ${
            heap.committed.toFixed(1)
          } committed, + wasm ` +
            `memory ${r.wasmMB?.toFixed(1)} = ${(heap.committed + (r.wasmMB ?? NaN)).toFixed(1)}`
          : ""
      })`;
    console.log(
      `| ${label} | ${r.name}${r.error ? " (failed)" : ""} | ${
        t.toFixed(3)
      } | ${ratio} | ${peak}${above} | ` +
        `${r.arenaMB?.toFixed(1) ?? ""} | ${fmtLosses(r.losses)} |`,
    );
    if (r.schedule && label === "workerd") console.log(`|  |  schedule: ${r.schedule} | | | | | |`);
    if (r.savedMB !== undefined) {
      console.log(
        `|  |  state streamed up: ${r.savedMB.toFixed(1)} MB in ${r.saveSeconds?.toFixed(1)} s | | | | | |`,
      );
    }
  }
}
const printed = (l: number[]) => l.map((x) => x.toFixed(5)).join();
const same = Object.values(results).flat().filter((r) => !r.error && r.losses.length)
  .every((r) => printed(r.losses) === printed(cli.losses));
console.log(`\nlosses ${same ? "equal the CLI's in every run" : "DIFFER between runs"} (5 decimals)`);
