// The browser build in Cloudflare's runtime (npm `workerd`, pinned): the wasm handed in as module imports
// (workerd gives modules no URL and cannot compile wasm from bytes), one thread (no Worker), public API only.
// It trains the tiny model 3 steps from a pack read with HTTP Range requests (through a service binding),
// evaluates and generates with the CLI's adapter, and must agree with the same calls in Deno bit for bit.
// Skipped (with a message) where the workerd binary cannot be installed; CI installs it (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { serveDir } from "./_http_server.ts";
import { WORKER_PRELUDE } from "./_worker_prelude.ts";
import { adapterReference, GENERATED_TOKENS, OPTIONS, PROMPT_TOKENS, tinyRun } from "./_tiny_run.ts";

const ROOT = new URL("../", import.meta.url);
const VERSION = "1.20261117.1";
const PACKAGE = `@cloudflare/workerd-linux-64@${VERSION}`;

/** The workerd binary (installed once with npm into a cache folder), or why there is none. */
async function workerd(): Promise<string> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") throw new Error(`no ${PACKAGE} for this OS`);
  const home = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  const dir = `${home}/mesp-test/workerd-${VERSION}`;
  const bin = `${dir}/node_modules/@cloudflare/workerd-linux-64/bin/workerd`;
  try {
    await Deno.stat(bin);
    return bin;
  } catch { /* install it */ }
  await Deno.mkdir(dir, { recursive: true });
  const out = await new Deno.Command("npm", {
    args: ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", dir, PACKAGE],
    stdout: "null",
    stderr: "piped",
  }).output().catch((err) => ({ success: false, stderr: new TextEncoder().encode(String(err)) }));
  if (!out.success) {
    throw new Error(`npm install ${PACKAGE} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  return bin;
}

/** The worker: mesp's dist/ build with its wasm as module imports, called through the public API only. */
const MAIN = `
import { decodeTokenCache, evaluate, fetchSource, generate, openAdapter, openPack, train, urlFiles } from "./mesp.js";
${WORKER_PRELUDE}
export default {
  async fetch(request, env) {
    const q = new URL(request.url).searchParams;
    const options = JSON.parse(q.get("options"));
    const fetch = (url, init) => env.FIXTURE.fetch(url, init);
    try {
      const pack = await openPack(fetchSource("http://fixture/" + q.get("pack"), { fetch }));
      const res = await fetch("http://fixture/" + q.get("tokens"));
      const cache = decodeTokenCache(new Uint8Array(await res.arrayBuffer()), { name: "tokens" });
      const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
      const trained = await train(pack, data, [], { ...options, kernels });
      const adapter = await openAdapter(urlFiles("http://fixture/run/", { fetch }));
      const evaluated = await evaluate(pack, data.slice(0, 4), { adapter, kernels, seqLen: options.seqLen });
      const tokens = [];
      const prompt = data[0].ids.slice(0, ${PROMPT_TOKENS});
      for await (const t of generate(pack, prompt, { adapter, kernels, maxTokens: ${GENERATED_TOKENS}, temperature: 0 })) tokens.push(t);
      return Response.json({ losses: trained.losses, params: bits(trained.params), nll: evaluated.nll, tokens });
    } catch (err) {
      return Response.json({ error: String(err?.stack ?? err) });
    }
  },
};
`;

const config = (fixtureHost: string, wasm = true, tokenizer = false) => `
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .mesp),
    (name = "fixture", external = (address = "${fixtureHost}", http = ())),
  ],
  sockets = [(name = "http", address = "127.0.0.1:0", http = (), service = "main")],
);
const mesp :Workerd.Worker = (
  modules = [
    (name = "main.js", esModule = embed "main.js"),
    (name = "mesp.js", esModule = embed "mesp.js"),
${tokenizer ? `    (name = "tokenizer.js", esModule = embed "tokenizer.js"),` : ""}
${
  wasm
    ? `    (name = "mesp_relaxed.wasm", wasm = embed "mesp_relaxed.wasm"),
    (name = "mesp_simd.wasm", wasm = embed "mesp_simd.wasm"),`
    : ""
}
  ],
  compatibilityDate = "2025-01-01",
  bindings = [(name = "FIXTURE", service = "fixture")],
);
`;

let bin: string | undefined, skip: string | undefined;
try {
  bin = await workerd();
} catch (err) {
  skip = (err as Error).message;
  console.log(`workerd tests skipped: ${skip}`);
}

/** A port nothing listens on right now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** workerd serving `dir`/config.capnp on 127.0.0.1:`port` (stderr piped: dropped by {@linkcode cleanUp}). */
function startWorkerd(dir: string, port: number): Deno.ChildProcess {
  return new Deno.Command(bin!, {
    args: ["serve", "config.capnp", "--socket-addr", `http=127.0.0.1:${port}`],
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** Writes a worker's folder: its main module, the config reaching `host` as FIXTURE, dist/mesp.js and the wasm. */
async function writeWorker(dir: string, main: string, host: string) {
  await Deno.writeTextFile(`${dir}/main.js`, main);
  await Deno.writeTextFile(`${dir}/config.capnp`, config(host));
  await Deno.copyFile(new URL("dist/mesp.js", ROOT), `${dir}/mesp.js`);
  for (const f of ["mesp_relaxed.wasm", "mesp_simd.wasm"]) {
    await Deno.copyFile(new URL(`dist/wasm/${f}`, ROOT), `${dir}/${f}`);
  }
}

/** The worker's JSON answer to `query`, asked again every 100 ms (up to 10 s) while workerd is starting. */
async function ask(port: number, query: URLSearchParams) {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/?${query}`).catch(() => undefined);
    if (res) return await res.json();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("workerd did not start");
}

/** After a test: stops workerd (if it was started), then the fixture server, and removes the worker's folder. */
async function cleanUp(
  child: Deno.ChildProcess | undefined,
  server: { close(): Promise<void> },
  dir: string,
) {
  if (child) {
    child.kill();
    await child.stderr.cancel();
    await child.status;
  }
  await server.close();
  await Deno.remove(dir, { recursive: true });
}

Deno.test({
  name: "dist/ in workerd with wasm modules: train, evaluate and generate like Deno, bit for bit",
  // CI sets MESP_REQUIRE_RUNTIMES=1: there a missing runtime fails instead of skipping
  ignore: skip !== undefined && Deno.env.get("MESP_REQUIRE_RUNTIMES") !== "1",
  async fn() {
    if (skip) throw new Error(skip);
    const ref = await tinyRun();
    const server = serveDir(ref.dir);
    const dir = await Deno.makeTempDir({ prefix: "mesp-workerd-" });
    let child: Deno.ChildProcess | undefined;
    try {
      await writeWorker(dir, MAIN, server.host);
      const port = freePort();
      child = startWorkerd(dir, port);
      const query = new URLSearchParams({
        options: JSON.stringify(OPTIONS),
        pack: ref.pack,
        tokens: ref.tokens,
      });
      const got = await ask(port, query);
      assertEquals(got.error, undefined);
      assertEquals(got.losses, ref.losses);
      assertEquals(got.params.length, ref.params.length, "adapter sizes differ");
      assert(got.params.every((b: number, i: number) => b === ref.params[i]), "adapters differ");

      // the same evaluation and generation in Deno, with the CLI's adapter
      const { nll, tokens } = await adapterReference(ref);
      assert(Object.is(got.nll, nll), `nll ${got.nll} vs ${nll}`);
      assertEquals(got.tokens, tokens);
    } finally {
      await cleanUp(child, server, dir);
    }
  },
});

/** A worker loading the kernels as a page would, from a URL: the error workerd's refusal to compile gives. */
const FETCHED_KERNELS = `
import { loadKernels } from "./mesp.js";
export default {
  async fetch(request, env) {
    globalThis.fetch = (url, init) => env.FIXTURE.fetch(url, init); // the kernels' fetch reaches the fixture
    const errors = [];
    const bytes = new Uint8Array(await (await fetch("http://fixture/dist/wasm/mesp_simd.wasm")).arrayBuffer());
    for (const options of [{ wasmBase: "http://fixture/dist/wasm/" }, { modules: { "mesp_simd.wasm": bytes } }]) {
      try {
        await loadKernels(options);
        errors.push(null);
      } catch (err) {
        errors.push(String(err?.message ?? err));
      }
    }
    return Response.json({ errors });
  },
};
`;

Deno.test({
  name: "dist/ in workerd: kernels fetched by URL, or given as bytes, fail saying modules are needed",
  ignore: skip !== undefined && Deno.env.get("MESP_REQUIRE_RUNTIMES") !== "1",
  async fn() {
    if (skip) throw new Error(skip);
    const server = serveDir(ROOT);
    const dir = await Deno.makeTempDir({ prefix: "mesp-workerd-kernels-" });
    let child: Deno.ChildProcess | undefined;
    try {
      await writeWorker(dir, FETCHED_KERNELS, server.host);
      const port = freePort();
      child = startWorkerd(dir, port);
      const { errors } = await ask(port, new URLSearchParams());
      const [fetched, bytes] = errors as string[];
      assert(
        fetched?.startsWith("cannot compile kernels http://fixture/dist/wasm/mesp_relaxed.wasm: ") &&
          fetched.includes("disallowed by embedder") &&
          fetched.includes("needs the kernels option { modules }"),
        String(fetched),
      );
      assert(
        bytes?.startsWith(
          'loadKernels options: modules["mesp_simd.wasm"] must be a WebAssembly.Module, got a Uint8Array',
        ),
        String(bytes),
      );
    } finally {
      await cleanUp(child, server, dir);
    }
  },
});

/** A worker loading the real Qwen tokenizer: without its module (the error says how), then with it. */
const TOKENIZER = `
import { createStreamDecoder, loadTokenizer } from "./mesp.js";
import * as tokenizer from "./tokenizer.js";
export default {
  async fetch(request, env) {
    const text = (path) => env.FIXTURE.fetch("http://fixture/" + path).then((r) => r.text());
    const files = { tokenizerJson: await text("model/tokenizer.json"), tokenizerConfigJson: await text("model/tokenizer_config.json") };
    let missing = null;
    try {
      await loadTokenizer(files);
    } catch (err) {
      missing = String(err?.message ?? err);
    }
    try {
      const tok = await loadTokenizer(files, { module: tokenizer });
      const ids = tok.encode(new URL(request.url).searchParams.get("text"));
      const decoder = createStreamDecoder(tok);
      const back = ids.map((id) => decoder.push(id)).join("") + decoder.flush();
      return Response.json({ missing, ids, back });
    } catch (err) {
      return Response.json({ missing, error: String(err?.stack ?? err) });
    }
  },
};
`;

Deno.test({
  name:
    "dist/ in workerd: loadTokenizer with its module handed in encodes as Deno does; without it, says how",
  ignore: skip !== undefined && Deno.env.get("MESP_REQUIRE_RUNTIMES") !== "1",
  async fn() {
    if (skip) throw new Error(skip);
    const ref = await tinyRun();
    const server = serveDir(ref.dir);
    const dir = await Deno.makeTempDir({ prefix: "mesp-workerd-tokenizer-" });
    let child: Deno.ChildProcess | undefined;
    try {
      await Deno.writeTextFile(`${dir}/main.js`, TOKENIZER);
      await Deno.writeTextFile(`${dir}/config.capnp`, config(server.host, false, true));
      for (const f of ["mesp.js", "tokenizer.js"]) {
        await Deno.copyFile(new URL(`dist/${f}`, ROOT), `${dir}/${f}`);
      }
      const port = freePort();
      child = startWorkerd(dir, port);
      const text = "How long is the warranty? 保修期多长？ 🙂";
      const got = await ask(port, new URLSearchParams({ text }));
      assertEquals(got.error, undefined);
      assert(
        String(got.missing).includes("gives modules no URL") &&
          String(got.missing).includes("loadTokenizer(files, { module: tokenizer })"),
        String(got.missing),
      );
      const { loadTokenizer } = await import("../src/text/tokenizer.ts");
      const read = (f: string) => Deno.readTextFile(`${ref.dir}/model/${f}`);
      const tok = await loadTokenizer({
        tokenizerJson: await read("tokenizer.json"),
        tokenizerConfigJson: await read("tokenizer_config.json"),
      });
      assertEquals(got.ids, tok.encode(text));
      assertEquals(got.back, text);
    } finally {
      await cleanUp(child, server, dir);
    }
  },
});

/**
 * A worker streaming `total` bytes of `big.bin` through `fetchSource` into WebAssembly memory (as training
 * does): ranges of `range` bytes, alternately one read each and an announced run read in 1 MB pieces.
 */
const STREAM = `
import { fetchSource } from "./mesp.js";
let memory; // one for every request, as an engine's arena
export default {
  async fetch(request, env) {
    const q = new URL(request.url).searchParams;
    const total = Number(q.get("total")), range = Number(q.get("range")), size = Number(q.get("size"));
    const src = fetchSource("http://fixture/big.bin", { fetch: (url, init) => env.FIXTURE.fetch(url, init) });
    memory ??= new WebAssembly.Memory({ initial: Math.ceil(range / 65536) });
    const into = new Uint8Array(memory.buffer, 0, range);
    let sum = 0;
    try {
      for (let done = 0, i = 0; done < total; done += range, i++) {
        const offset = (i * range) % (size - range);
        if (i % 2) {
          src.expect(offset, offset + range);
          for (let at = 0; at < range; at += 1 << 20) {
            await src.read(offset + at, into.subarray(at, Math.min(range, at + (1 << 20))));
          }
        } else await src.read(offset, into);
        sum += into[0] + into[range - 1];
      }
      return Response.json({ sum });
    } catch (err) {
      return Response.json({ error: String(err?.stack ?? err) });
    }
  },
};
`;

/** Peak resident memory (VmHWM) of a process, MB. */
async function peakMB(pid: number): Promise<number> {
  const m = (await Deno.readTextFile(`/proc/${pid}/status`)).match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1000 : NaN;
}

Deno.test({
  name: "fetchSource in workerd: streaming 400 MB into WebAssembly memory adds < 30 MB to the process's peak",
  ignore: (skip !== undefined && Deno.env.get("MESP_REQUIRE_RUNTIMES") !== "1") || Deno.build.os !== "linux",
  async fn() {
    if (skip) throw new Error(skip);
    // workerd's default stream reader hands out a fresh 4 KB buffer per read, garbage until V8 collects it:
    // read that way, these 400 MB raised the peak by ~100 MB; through fetchSource's BYOB scratch, by 13-15 MB
    const size = 64 << 20, range = 8 << 20, total = 400e6;
    const big = new Uint8Array(size).map((_, i) => (i * 2654435761) >>> 24);
    const server = serveDir("/nonexistent", {
      routes: { "/big.bin": { body: big, type: "application/octet-stream" } },
    });
    const dir = await Deno.makeTempDir({ prefix: "mesp-workerd-stream-" });
    let child: Deno.ChildProcess | undefined;
    try {
      await Deno.writeTextFile(`${dir}/main.js`, STREAM);
      await Deno.writeTextFile(`${dir}/config.capnp`, config(server.host, false));
      await Deno.copyFile(new URL("dist/mesp.js", ROOT), `${dir}/mesp.js`);
      const port = freePort();
      child = startWorkerd(dir, port);
      const run = (total: number) =>
        ask(port, new URLSearchParams({ total: String(total), range: String(range), size: String(size) }));
      // a first, short run pages in the code and sizes the heap; then the long one
      assertEquals((await run(2 * range)).error, undefined);
      const before = await peakMB(child.pid);
      const got = await run(total);
      const after = await peakMB(child.pid);
      assertEquals(got.error, undefined);
      // the same sum in Deno
      let sum = 0;
      for (let done = 0, i = 0; done < total; done += range, i++) {
        const offset = (i * range) % (size - range);
        sum += big[offset] + big[offset + range - 1];
      }
      assertEquals(got.sum, sum);
      console.log(`workerd streamed ${total / 1e6} MB: its peak rose by ${(after - before).toFixed(1)} MB`);
      assert(
        after - before < 30,
        `the peak rose by ${(after - before).toFixed(1)} MB (${before} → ${after})`,
      );
    } finally {
      await cleanUp(child, server, dir);
    }
  },
});

/**
 * README's recipe for a run longer than one invocation: each request opens the stored training state over
 * HTTP Range (`openTrainingState(fetchSource(…))`, never holding it whole), trains `per` more steps, and
 * streams the new state up with a PUT, never held whole: of unknown length, or with `length` set through a
 * `FixedLengthStream` (a Content-Length, as R2 and presigned PUTs need).
 */
const SPLIT = `
import { decodeTokenCache, fetchSource, openPack, openTrainingState, train, trainingStateStream } from "./mesp.js";
${WORKER_PRELUDE}
export default {
  async fetch(request, env) {
    const q = new URL(request.url).searchParams;
    const options = JSON.parse(q.get("options")), per = Number(q.get("per"));
    const fetch = (url, init) => env.FIXTURE.fetch(url, init);
    const stateUrl = "http://fixture/store/run-1/state";
    try {
      const pack = await openPack(fetchSource("http://fixture/" + q.get("pack"), { fetch }));
      const res = await fetch("http://fixture/" + q.get("tokens"));
      const cache = decodeTokenCache(new Uint8Array(await res.arrayBuffer()), { name: "tokens" });
      const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
      const stored = (await fetch(stateUrl, { method: "HEAD" })).ok;
      const resume = stored ? (await openTrainingState(fetchSource(stateUrl, { fetch }))).state : undefined;
      const start = resume?.step ?? 0;
      let step = start, views = 0;
      const trained = await train(pack, data, [], {
        ...options,
        kernels,
        resume,
        shouldStop: () => step >= start + per,
        onEvent: (e) => {
          if (e.type === "step") step = e.step;
        },
        saveState: async (state) => {
          // streamed: the upload consumes the state as it is made, never holding it whole; with its size
          // up front (a Content-Length) where the store needs one
          const { byteLength, stream } = trainingStateStream(state, {}, { views: true });
          // counts the chunks that are views of the engine's memory (unshared here), not copies
          const counted = stream.pipeThrough(new TransformStream({
            transform(chunk, out) {
              if (chunk.buffer === state.params.buffer) views++;
              out.enqueue(chunk);
            },
          }));
          const body = q.get("length") ? counted.pipeThrough(new FixedLengthStream(byteLength)) : counted;
          const res = await fetch(stateUrl, { method: "PUT", body });
          if (!res.ok) throw new Error("PUT " + stateUrl + ": " + res.status);
        },
      });
      return Response.json({
        start,
        losses: trained.losses,
        steps: trained.steps,
        params: bits(trained.params),
        views,
      });
    } catch (err) {
      return Response.json({ error: String(err?.stack ?? err) });
    }
  },
};
`;

Deno.test({
  name:
    "workerd: a run split across invocations (state stored over HTTP) equals the uninterrupted run, bit for bit",
  ignore: skip !== undefined && Deno.env.get("MESP_REQUIRE_RUNTIMES") !== "1",
  async fn() {
    if (skip) throw new Error(skip);
    const ref = await tinyRun();
    const server = serveDir(ref.dir, { writable: "/store/" });
    const dir = await Deno.makeTempDir({ prefix: "mesp-workerd-split-" });
    let child: Deno.ChildProcess | undefined;
    try {
      await writeWorker(dir, SPLIT, server.host);
      const port = freePort();
      child = startWorkerd(dir, port);
      const query = new URLSearchParams({
        options: JSON.stringify(OPTIONS),
        pack: ref.pack,
        tokens: ref.tokens,
        per: "1",
      });
      const losses: number[] = [];
      let last: { params: number[] } | undefined;
      for (let i = 0; i < OPTIONS.steps; i++) {
        // every other upload with its length up front
        if (i % 2 === 1) query.set("length", "1");
        else query.delete("length");
        const got = await ask(port, query);
        assertEquals(got.error, undefined);
        assertEquals(got.start, i, `invocation ${i + 1} resumed from step ${got.start}`);
        assertEquals(got.steps, i + 1);
        // params, adam_m, adam_v each one view of at most 1 MiB (this state is small): no copies
        assertEquals(got.views, 3, `invocation ${i + 1}: chunks uploaded as views`);
        losses.push(...got.losses);
        last = got;
      }
      assertEquals(losses, ref.losses);
      assertEquals(last!.params.length, ref.params.length, "adapter sizes differ");
      assert(last!.params.every((b: number, i: number) => b === ref.params[i]), "adapters differ");
      // every invocation stored its state; those after the first read it back in Range requests only (never a
      // whole download), one per tensor and pass (the check, then the fill) besides the header's two:
      // 2 + 2 × 3 for AdamW (one per 256 KiB piece before: 17 for this state)
      const state = server.requests.filter((r) => r.path === "/store/run-1/state");
      const puts = state.filter((r) => r.method === "PUT");
      assertEquals(puts.length, OPTIONS.steps);
      puts.forEach((p, i) => {
        assert(p.received! > 0, `upload ${i + 1}: nothing stored`);
        // the announced size is the size that arrived (a wrong one fails the FixedLengthStream)
        assertEquals(
          p.contentLength,
          i % 2 === 1 ? String(p.received) : null,
          `upload ${i + 1}'s Content-Length`,
        );
      });
      const gets = state.filter((r) => r.method === "GET");
      assert(gets.length > 0, "the stored state was never read");
      for (const g of gets) {
        assert(/^bytes=\d+-\d+$/.test(g.range ?? ""), `the state was read with Range ${g.range}`);
      }
      assert(gets.length <= (OPTIONS.steps - 1) * (2 + 2 * 3), `${gets.length} reads of the state`);
    } finally {
      await cleanUp(child, server, dir);
    }
  },
});
