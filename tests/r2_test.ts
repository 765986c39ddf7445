// The browser build with its weights, adapter and training state in an R2 bucket, through a Worker's bucket
// binding (`r2Source`, `r2Files`, and `put` of a `trainingStateStream`). The bucket is miniflare's (npm,
// pinned): workerd's own R2 binding in front of a local store, so the calls, their answers and their errors
// are the runtime's. A run split across 3 invocations, its state stored in the bucket, must give the
// uninterrupted run's losses and adapter bit for bit. Skipped (with a message) where miniflare cannot be
// fetched; CI fetches it (.ci/run).
import { assert, assertEquals } from "./_assert.ts";
import { adapterReference, GENERATED_TOKENS, OPTIONS, PROMPT_TOKENS, tinyRun } from "./_tiny_run.ts";
import { WORKER_PRELUDE } from "./_worker_prelude.ts";

const ROOT = new URL("../", import.meta.url);
const MINIFLARE = "npm:miniflare@4.20260730.0"; // as imported below

/**
 * The worker. `op=train`: one invocation of README's split run, every byte from the bucket (the pack, the
 * token cache, the last state) and the new state put back, the adapter too once the run is done;
 * `op=adapter`: evaluate and generate with the adapter read back from `run-1/`; `op=errors`: what a missing object, one replaced mid-read and a read past the end
 * say. It counts the bucket's calls by key (each `get` and `head` is one R2 operation).
 */
const MAIN = `
import {
  adapterConfigJson, decodeTokenCache, encodeLoraTensors, evaluate, generate, openAdapter, openPack,
  openTrainingState, r2Files, r2Source, train, trainingStateStream,
} from "./mesp.js";
${WORKER_PRELUDE}
/** env.B, counting its calls by kind and key ("get run-1/state"). */
function counted(bucket, calls) {
  const count = (kind, f) => (key, ...args) => {
    calls[kind + " " + key] = (calls[kind + " " + key] ?? 0) + 1;
    return f.call(bucket, key, ...args);
  };
  const list = (options) => {
    calls["list " + (options?.prefix ?? "")] = (calls["list " + (options?.prefix ?? "")] ?? 0) + 1;
    return bucket.list(options);
  };
  return { head: count("head", bucket.head), get: count("get", bucket.get), list };
}
const message = (p) => p.then(() => "no error", (err) => String(err?.message ?? err));

export default {
  async fetch(request, env) {
    const q = new URL(request.url).searchParams;
    const calls = {}, bucket = counted(env.B, calls);
    try {
      if (q.get("op") === "train") {
        const options = JSON.parse(q.get("options"));
        const pack = await openPack(r2Source(bucket, "model.pack"));
        const cache = decodeTokenCache(new Uint8Array(await (await env.B.get("tokens")).arrayBuffer()));
        const data = Array.from({ length: cache.count }, (_, i) => cache.example(i));
        const key = "run-1/state";
        const resume = (await bucket.head(key)) ? (await openTrainingState(r2Source(bucket, key))).state : undefined;
        const start = resume?.step ?? 0;
        let step = start;
        const trained = await train(pack, data, [], {
          ...options,
          kernels,
          resume,
          shouldStop: () => step >= start + 1,
          onEvent: (e) => {
            if (e.type === "step") step = e.step;
          },
          saveState: async (state) => {
            const { byteLength, stream } = trainingStateStream(state, {}, { views: true });
            await env.B.put(key, stream.pipeThrough(new FixedLengthStream(byteLength)));
          },
        });
        // the run done: its adapter next to its state, as README's recipe keeps it
        if (!trained.stopped) {
          await env.B.put("run-1/adapter_model.safetensors", encodeLoraTensors(trained.layout, trained.params));
          await env.B.put("run-1/adapter_config.json", adapterConfigJson(trained.layout));
        }
        const stored = await env.B.head(key);
        return Response.json({ start, losses: trained.losses, params: bits(trained.params), calls, stored: stored.size });
      }
      if (q.get("op") === "adapter") {
        const pack = await openPack(r2Source(bucket, "model.pack"));
        const adapter = await openAdapter(r2Files(bucket, "run-1/"));
        const listed = await r2Files(bucket, "run-1/").list();
        const cache = decodeTokenCache(new Uint8Array(await (await env.B.get("tokens")).arrayBuffer()));
        const data = Array.from({ length: 4 }, (_, i) => cache.example(i));
        const { nll } = await evaluate(pack, data, { adapter, kernels, seqLen: Number(q.get("seqLen")) });
        const tokens = [];
        const prompt = data[0].ids.slice(0, ${PROMPT_TOKENS});
        for await (const t of generate(pack, prompt, { adapter, kernels, maxTokens: ${GENERATED_TOKENS}, temperature: 0 })) tokens.push(t);
        return Response.json({ nll, tokens, listed });
      }
      // errors
      const missing = await message(openPack(r2Source(bucket, "no/such.pack")));
      await env.B.put("x", new Uint8Array(1000).fill(1));
      const x = r2Source(bucket, "x"), into = new Uint8Array(10);
      await x.read(0, into);
      await env.B.put("x", new Uint8Array(1000).fill(2)); // replaced mid-read
      const replaced = await message(x.read(10, into));
      const y = r2Source(bucket, "tokens");
      const pastEnd = await message(y.size().then((size) => y.read(size - 4, new Uint8Array(8))));
      // a range that starts past the end, which R2 itself refuses with an error of its own
      const beyond = await message(y.size().then((size) => y.read(size + 100, new Uint8Array(8))));
      return Response.json({ missing, replaced, pastEnd, beyond });
    } catch (err) {
      return Response.json({ error: String(err?.stack ?? err) });
    }
  },
};
`;

interface Bucket {
  put(key: string, value: Uint8Array): Promise<unknown>;
}
interface Miniflare {
  dispatchFetch(url: string): Promise<Response>;
  getR2Bucket(name: string): Promise<Bucket>;
  dispose(): Promise<void>;
}
type MiniflareClass = new (options: Record<string, unknown>) => Miniflare;

let MiniflareCtor: MiniflareClass | undefined, skip: string | undefined;
try {
  // a literal specifier, so that `deno cache tests/r2_test.ts` (.ci/run) fetches it
  // (its own types, undici's Response, are not Deno's: the test uses the few above)
  // deno-lint-ignore no-import-prefix
  MiniflareCtor = (await import("npm:miniflare@4.20260730.0")).Miniflare as unknown as MiniflareClass;
} catch (err) {
  skip = `cannot load ${MINIFLARE}: ${(err as Error).message}`;
  console.log(`R2 tests skipped: ${skip}`);
}

/** A miniflare worker running {@linkcode MAIN} with dist/ and the wasm, and an empty bucket `B`. */
async function startWorker(): Promise<Miniflare> {
  const file = (f: string) => Deno.readFile(new URL(f, ROOT));
  return new MiniflareCtor!({
    modulesRoot: "/",
    modules: [
      { type: "ESModule", path: "/main.js", contents: MAIN },
      {
        type: "ESModule",
        path: "/mesp.js",
        contents: await Deno.readTextFile(new URL("dist/mesp.js", ROOT)),
      },
      {
        type: "CompiledWasm",
        path: "/mesp_relaxed.wasm",
        contents: await file("dist/wasm/mesp_relaxed.wasm"),
      },
      { type: "CompiledWasm", path: "/mesp_simd.wasm", contents: await file("dist/wasm/mesp_simd.wasm") },
    ],
    compatibilityDate: "2025-01-01",
    r2Buckets: ["B"],
  });
}

async function ask(mf: Miniflare, query: Record<string, string>) {
  const res = await mf.dispatchFetch(`http://worker/?${new URLSearchParams(query)}`);
  return await res.json();
}

Deno.test({
  name:
    "R2: a run split across invocations, its pack, state and adapter in a bucket, equals the uninterrupted run",
  // CI sets MESP_REQUIRE_RUNTIMES=1: there a missing runtime fails instead of skipping
  ignore: skip !== undefined && Deno.env.get("MESP_REQUIRE_RUNTIMES") !== "1",
  // miniflare keeps its workerd process and sockets between the calls of one test
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (skip) throw new Error(skip);
    const ref = await tinyRun();
    const mf = await startWorker();
    try {
      const bucket = await mf.getR2Bucket("B");
      await bucket.put("model.pack", await Deno.readFile(`${ref.dir}/${ref.pack}`));
      await bucket.put("tokens", await Deno.readFile(`${ref.dir}/${ref.tokens}`));

      const losses: number[] = [];
      let last: { params: number[] } | undefined;
      for (let i = 0; i < OPTIONS.steps; i++) {
        const got = await ask(mf, { op: "train", options: JSON.stringify(OPTIONS) });
        assertEquals(got.error, undefined);
        assertEquals(got.start, i, `invocation ${i + 1} resumed from step ${got.start}`);
        assert(got.stored > 0, `invocation ${i + 1} stored no state`);
        // what README's recipe counts: the pack's size and its 9 announced runs; the state looked for, then
        // read back in ranged gets only (its header's two, then each of AdamW's 3 tensors checked and
        // filled: 2 + 2 × 3), never per piece, and its size asked once more; none before there is one
        console.log(`invocation ${i + 1}: bucket calls ${JSON.stringify(got.calls)}`);
        const expected: Record<string, number> = { "head model.pack": 1, "get model.pack": 9 };
        if (i === 0) expected["head run-1/state"] = 1;
        else Object.assign(expected, { "head run-1/state": 2, "get run-1/state": 2 + 2 * 3 });
        assertEquals(got.calls, expected, `invocation ${i + 1}'s bucket calls`);
        losses.push(...got.losses);
        last = got;
      }
      assertEquals(losses, ref.losses);
      assertEquals(last!.params.length, ref.params.length, "adapter sizes differ");
      assert(last!.params.every((b, i) => b === ref.params[i]), "adapters differ");

      const adapted = await ask(mf, { op: "adapter", seqLen: String(OPTIONS.seqLen) });
      assertEquals(adapted.error, undefined);
      assertEquals(adapted.listed, ["adapter_config.json", "adapter_model.safetensors", "state"]);
      const { nll, tokens } = await adapterReference(ref);
      assert(Object.is(adapted.nll, nll), `nll ${adapted.nll} vs ${nll}`);
      assertEquals(adapted.tokens, tokens);

      const errors = await ask(mf, { op: "errors" });
      assertEquals(errors.error, undefined);
      assertEquals(errors.missing, "file not found: r2:no/such.pack");
      assert(
        /^r2:x changed on the server while it was being read \(ETag .+ → .+\)/.test(errors.replaced),
        errors.replaced,
      );
      assert(
        /^r2:tokens: short read: bytes \d+\.\.\d+ lie beyond the end of the file$/.test(errors.pastEnd),
        errors.pastEnd,
      );
      assert(
        /^r2:tokens: short read: bytes \d+\.\.\d+ lie beyond the end of the file$/.test(errors.beyond),
        errors.beyond,
      );
    } finally {
      await mf.dispose();
    }
  },
});
