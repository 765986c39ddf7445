// Remote reads in few, large pieces: the tiny model's pack served from 127.0.0.1 and trained on through
// fetchSource, its requests per step counted by the client and compared with what the pack's layout says
// a step must read (computed here from the header, not by the reader), and its results bit for bit the
// local file's, with and without a cache of fetched ranges.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { serveDir } from "./_http_server.ts";
import { bits, OPTIONS, sequences, tinyRun } from "./_tiny_run.ts";
import { dirFiles, fileSource } from "../src/io/deno_files.ts";
import { bytesSource, fetchSource, type WeightSource } from "../src/io/source.ts";
import { memoryRangeCache } from "../src/io/range_cache.ts";
import { openPack } from "../src/model/pack.ts";
import { layerLayout, type PackFormat, vocabSlot } from "../src/model/pack_layout.ts";
import { readModelConfig } from "../src/model/pack_files.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";
import { train, type TrainOptions } from "../src/run/train.ts";
import { type RecomputeOrder, recomputeOrder } from "../src/engine/recompute.ts";
import { evaluate } from "../src/run/evaluate.ts";

/** Requests (and bytes asked for) per phase: "open", then the step in progress. */
type Counts = Map<string, { requests: number; bytes: number }>;

async function run(
  source: WeightSource,
  data: ReturnType<typeof sequences>,
  counter?: { phase: string },
  options: Partial<TrainOptions> = {},
) {
  const pack = await openPack(source);
  if (counter) counter.phase = "1";
  const r = await train(pack, data, [], {
    ...OPTIONS,
    vocabChunk: 512,
    ...options,
    onEvent: (e) => {
      if (e.type === "step" && counter) counter.phase = String(e.step + 1);
    },
  });
  return { losses: r.losses, params: bits(r.params) };
}

/** A fetch that counts requests and the bytes they ask for into `counts`, under the counter's phase. */
const counted = (counts: Counts, counter: { phase: string }): typeof fetch => (input, init) => {
  const range = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get("range") ?? "");
  const c = counts.get(counter.phase) ?? { requests: 0, bytes: 0 };
  c.requests++;
  if (range) c.bytes += Number(range[2]) - Number(range[1]) + 1;
  counts.set(counter.phase, c);
  return fetch(input, init);
};

/**
 * The layers a step after the first reads, in order, for a recompute order: the forward's 0…L−1 then the
 * backward's loads, each a read unless its layer is the one loaded last (layer 0 stays from the step before).
 */
function layerReads(L: number, order: RecomputeOrder): number[] {
  const loads = [
    ...Array(L).keys(),
    ...order.backward.flatMap((s) => s.kind === "forward" || s.kind === "backward" ? [s.layer] : []),
  ];
  return loads.filter((l, i) => l !== (i === 0 ? 0 : loads[i - 1]));
}

/** How many runs of layers going up one at a time `reads` makes (each one response). */
function runsOf(reads: number[]): number {
  return reads.filter((l, i) => i === 0 || reads[i - 1] !== l - 1).length;
}

Deno.test("remote pack: opening is 3 requests; a step one response per run of layers going up, one per layer going down, one for the vocabulary, none for the next step's token rows; same bits as the file", async () => {
  const ref = await tinyRun();
  const server = serveDir(ref.dir);
  try {
    const path = `${ref.dir}/${ref.pack}`;
    // two sequences with no token in common (the second's ids shifted), so step 2 gathers new rows
    const [a] = sequences(await Deno.readFile(`${ref.dir}/${ref.tokens}`));
    const A = { ...a, ids: a.ids.subarray(0, OPTIONS.seqLen) };
    const top = Math.max(...A.ids), low = Math.min(...A.ids), V = 151936;
    const shift = top - low + 1 <= V - 1 - top ? top - low + 1 : -low; // disjoint when it fits, else to 0
    const B = { ...A, ids: A.ids.map((x) => x + shift) };
    const local = await run(fileSource(path), [A, B]);
    const localOne = await run(fileSource(path), [A]);

    const url = `${server.origin}/${ref.pack}`;
    const plain: Counts = new Map(), cached: Counts = new Map();
    const c1 = { phase: "open" }, c2 = { phase: "open" };
    const remote = await run(fetchSource(url, { fetch: counted(plain, c1) }), [A, B], c1);
    const kept = await run(
      fetchSource(url, { fetch: counted(cached, c2), cache: memoryRangeCache() }),
      [A],
      c2,
    );
    assertEquals(remote, local, "URL and file train to the same bits");
    assertEquals(kept, localOne, "URL with a cache and file train to the same bits");

    // what a step must read, from the header: each layer twice (forward; the backward's recompute) but the
    // last and the first, which stay in their slots between the passes (this model's MLP is one chunk), the
    // vocabulary once (the loss), and the step's token rows (tied: the target rows are among them)
    const pack = await openPack(fileSource(path));
    const { config: cfg, header } = pack;
    const L = cfg.numLayers;
    const layout = layerLayout(cfg, header.format, header.bf16Scales, header.mlpChunk);
    const v = vocabSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales);
    pack.source.close?.();
    assertEquals([cfg.tieWordEmbeddings, cfg.vocabSize, layout.chunks.length, L], [true, V, 1, 4]);
    // opening: the size (HEAD), the prelude and header (one response), the final norm and the checksum
    // table after it (one response)
    assertEquals(plain.get("open")?.requests, 3, "opening the pack");
    // the first step's token rows: sorted, once each, widened to their whole checksum blocks (none is
    // verified yet), rows closer than a request's worth (1 MB) read as one range, however long
    const firstGather = (ids: Int32Array) => {
      const gap = Math.floor((1 << 20) / v.rowStride), rows = header.vocabBlock;
      const blocks = [...new Set([...ids].map((id) => Math.floor(id / rows)))].sort((x, y) => x - y);
      let requests = 0, bytes = 0, start = -1, end = -1;
      for (const b of blocks) {
        const lo = b * rows, hi = Math.min(V, lo + rows);
        if (start >= 0 && lo - end <= gap) {
          end = hi;
          continue;
        }
        if (start >= 0) bytes += (end - start) * v.rowStride;
        requests++, start = lo, end = hi;
      }
      return { requests, bytes: bytes + (end - start) * v.rowStride };
    };
    const vocabBytes = cfg.vocabSize * v.rowStride;
    // the forward's layers 1…L−1 one response, the backward's L−2…0 one each, the vocabulary one
    const later = { requests: 1 + (L - 1) + 1, bytes: 2 * (L - 1) * layout.bytes + vocabBytes };
    // step 1 gathers its own rows (its loss's pass over the vocabulary keeps step 2's, announced by train)
    // and reads layer 0 in its forward too, still one response
    const gather = firstGather(A.ids);
    assertEquals(plain.get("1"), {
      requests: later.requests + gather.requests,
      bytes: later.bytes + layout.bytes + gather.bytes,
    }, "step 1");
    assertEquals(plain.get("2"), later, "step 2: no token-row reads");
    // evaluation one sequence at a time likewise: the second sequence's rows came with the first's loss
    // pass, so it reads the layers in one response (a forward only) and the vocabulary in another; in a
    // batch (the default here: both at once) the whole evaluation is one gather of both sequences' rows,
    // one response for the layers and one for the vocabulary; the losses are the file's either way
    // from the file, or from the URL counting its requests by phase in `counts`
    const evalRun = async (batch?: number, counts?: Counts) => {
      const counter = { phase: "open" };
      const p = await openPack(
        counts ? fetchSource(url, { fetch: counted(counts, counter) }) : fileSource(path),
      );
      counter.phase = "1";
      return (await evaluate(p, [A, B], {
        seqLen: OPTIONS.seqLen,
        batch,
        onProgress: (done) => counter.phase = String(done + 1),
      })).nll;
    };
    const alone: Counts = new Map(), together: Counts = new Map();
    const fromFile = await evalRun();
    assertEquals(await evalRun(1), fromFile, "batches of 1 and 2 evaluate to the same bits");
    assertEquals(await evalRun(1, alone), fromFile, "URL and file evaluate to the same bits");
    assertEquals(await evalRun(undefined, together), fromFile, "URL, batch of 2");
    assertEquals(alone.get("2"), {
      requests: 2,
      bytes: L * layout.bytes + vocabBytes,
    }, "evaluation one at a time, sequence 2: no token-row reads");
    const both = firstGather(Int32Array.from([...A.ids, ...B.ids]));
    assertEquals([together.get("1"), together.get("2")], [{
      requests: 2 + both.requests,
      bytes: L * layout.bytes + vocabBytes + both.bytes,
    }, undefined], "evaluation of both in one batch: each weight read once");
    // with a cache (the same sequence every step), steps after the first read nothing remotely
    assertEquals([cached.get("2"), cached.get("3")], [undefined, undefined], "steps 2, 3 with a cache");
    assert((cached.get("1")?.requests ?? 0) > 0);
  } finally {
    await server.close();
  }
});

Deno.test("remote pack, fewer saved inputs: each run of layers the recomputing backward goes up through is one response, and nothing is asked for beyond what is read; same bits as the file", async () => {
  const ref = await tinyRun();
  const server = serveDir(ref.dir);
  try {
    const path = `${ref.dir}/${ref.pack}`;
    const data = sequences(await Deno.readFile(`${ref.dir}/${ref.tokens}`)).slice(0, 1);
    const pack = await openPack(fileSource(path));
    const { config: cfg, header } = pack;
    const layout = layerLayout(cfg, header.format, header.bf16Scales, header.mlpChunk);
    const v = vocabSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales);
    pack.source.close?.();
    for (const options of [{ savedInputs: 2 }, { savedInputEvery: 2 }, { savedInputEvery: 3 }]) {
      const what = JSON.stringify(options);
      const counts: Counts = new Map(), counter = { phase: "open" };
      const source = fetchSource(`${server.origin}/${ref.pack}`, { fetch: counted(counts, counter) });
      const remote = await run(source, data, counter, options);
      assertEquals(remote, await run(fileSource(path), data, undefined, options), `${what}: same bits`);
      const reads = layerReads(cfg.numLayers, recomputeOrder(cfg.numLayers, options));
      assert(runsOf(reads) < reads.length - 1, `${what}: the backward goes up somewhere`);
      assertEquals(counts.get("2"), {
        requests: runsOf(reads) + 1,
        bytes: reads.length * layout.bytes + cfg.vocabSize * v.rowStride,
      }, `${what}: step 2`);
    }
  } finally {
    await server.close();
  }
});

Deno.test("fetchSource: announced consecutive reads are one response; a short skip stays in it, a read elsewhere does not end it, two callers keep one each; a cache serves ranges again", async () => {
  const bytes = new Uint8Array(64 << 10).map((_, i) => (i * 7 + (i >> 8)) & 255);
  const server = serveDir("/nonexistent", {
    routes: { "/f.bin": { body: bytes, type: "application/octet-stream" } },
  });
  try {
    const reads = () => server.requests.filter((r) => r.path === "/f.bin").map((r) => r.range);
    const src = fetchSource(`${server.origin}/f.bin`);
    const read = async (offset: number, n: number) => {
      const into = new Uint8Array(n);
      await src.read(offset, into);
      assertEquals(Array.from(into), Array.from(bytes.subarray(offset, offset + n)), `bytes ${offset}+${n}`);
    };
    src.expect!(1000, 9000);
    await read(1000, 100);
    await Promise.all([read(1100, 900), read(2000, 3000)]); // queued in order
    await read(6000, 500); // 1000 bytes passed over
    assertEquals(reads(), ["bytes=1000-8999"]);
    await read(100, 10); // behind the run: its own request; the run stays (another caller's read?)
    await read(6500, 10); // where the run is: read from it
    await read(6510, 10);
    assertEquals(reads(), ["bytes=1000-8999", "bytes=100-109"]);
    await read(3000, 10); // behind the run, within what was announced: a new run from there
    assertEquals(reads().at(-1), "bytes=3000-8999");
    src.expect!(20000, 30000);
    await read(20000, 10000); // the whole announced range at once: one plain request
    assertEquals(reads().at(-1), "bytes=20000-29999");

    // two callers at once, each announcing its range and reading it in order, interleaved: a response each
    const two = fetchSource(`${server.origin}/f.bin`);
    const before2 = reads().length;
    const readTwo = async (offset: number, n: number) => {
      const into = new Uint8Array(n);
      await two.read(offset, into);
      assertEquals(Array.from(into), Array.from(bytes.subarray(offset, offset + n)), `bytes ${offset}+${n}`);
    };
    two.expect!(0, 8000);
    two.expect!(30000, 38000);
    for (let i = 0; i < 8000; i += 1000) await Promise.all([readTwo(i, 1000), readTwo(30000 + i, 1000)]);
    assertEquals(reads().slice(before2), ["bytes=0-7999", "bytes=30000-37999"]);
    // two announcements are kept: the third forgets the oldest, whose reads are plain requests
    two.expect!(10000, 12000);
    two.expect!(40000, 42000);
    two.expect!(50000, 52000);
    await readTwo(10000, 1000);
    await readTwo(40000, 1000);
    await readTwo(50000, 1000);
    await readTwo(11000, 1000);
    assertEquals(reads().slice(before2 + 2), [
      "bytes=10000-10999",
      "bytes=40000-41999",
      "bytes=50000-51999",
      "bytes=11000-11999",
    ]);
    // and two responses are kept open: a third ends the one read from longest ago
    const three = fetchSource(`${server.origin}/f.bin`);
    const readThree = async (offset: number, n: number) => {
      const into = new Uint8Array(n);
      await three.read(offset, into);
      assertEquals(Array.from(into), Array.from(bytes.subarray(offset, offset + n)), `bytes ${offset}+${n}`);
    };
    const before3 = reads().length;
    three.expect!(0, 8000);
    await readThree(0, 1000);
    three.expect!(30000, 38000);
    await readThree(30000, 1000);
    await readThree(1000, 1000); // the first response is the one read from last now
    three.expect!(50000, 58000);
    await readThree(50000, 1000); // ends the second
    await readThree(2000, 1000);
    await readThree(31000, 1000); // its range is still announced: a new response from there
    assertEquals(reads().slice(before3), [
      "bytes=0-7999",
      "bytes=30000-37999",
      "bytes=50000-57999",
      "bytes=31000-37999",
    ]);

    const cache = memoryRangeCache();
    const cached = fetchSource(`${server.origin}/f.bin`, { cache });
    const again = async (offset: number, n: number) => {
      const into = new Uint8Array(n);
      await cached.read(offset, into);
      assertEquals(Array.from(into), Array.from(bytes.subarray(offset, offset + n)));
    };
    const before = reads().length;
    await again(40000, 1000);
    await again(40000, 1000);
    await again(40000, 500); // another range: not kept yet
    assertEquals(reads().length - before, 2);
    assertEquals(cache.bytes(), 1500);
  } finally {
    await server.close();
  }
});

Deno.test("two calls at once on one remote pack (two trains; train beside evaluate): each one's results bit for bit as alone, and about the requests and bytes of one call after the other", async () => {
  const ref = await tinyRun();
  const server = serveDir(ref.dir);
  try {
    const data = sequences(await Deno.readFile(`${ref.dir}/${ref.tokens}`));
    const trainIt = (pack: Awaited<ReturnType<typeof openPack>>) =>
      train(pack, data, [], { ...OPTIONS, steps: 2, vocabChunk: 512 }).then((r) => r.losses);
    const evaluateIt = (pack: Awaited<ReturnType<typeof openPack>>) =>
      evaluate(pack, data.slice(0, 8), { seqLen: OPTIONS.seqLen }).then((r) => [r.nll]);
    // the calls on one fetchSource pack, at once or one after the other: their results, requests and bytes
    const measure = async (calls: (typeof trainIt)[], atOnce: boolean) => {
      let requests = 0, bytes = 0;
      const counting: typeof fetch = (input, init) => {
        const m = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get("range") ?? "");
        if (m) bytes += Number(m[2]) - Number(m[1]) + 1;
        return requests++, fetch(input, init);
      };
      const pack = await openPack(fetchSource(`${server.origin}/${ref.pack}`, { fetch: counting }));
      const results: number[][] = [];
      if (atOnce) results.push(...await Promise.all(calls.map((c) => c(pack))));
      else for (const c of calls) results.push(await c(pack));
      return { results, requests, bytes };
    };
    for (
      const [name, calls] of [["two trains", [trainIt, trainIt]], ["train, evaluate", [
        trainIt,
        evaluateIt,
      ]]] as const
    ) {
      const apart = await measure([...calls], false), together = await measure([...calls], true);
      assertEquals(together.results, apart.results, `${name}: results`);
      // each call keeps its announced ranges and its response (two are kept), so neither ends the other's at
      // every read; where both passes start at once a response may be asked for again, how often depends on
      // how the two calls' reads interleave (train beside an evaluate of one sequence per pass: 35–36 requests
      // at once, 32 one after the other; batched, 20 either way). Before, two trains at once made 642
      // requests where one after the other made 27
      console.log(
        `${name}: at once ${together.requests} requests, ${(together.bytes / 1e6).toFixed(1)} MB; ` +
          `one after the other ${apart.requests}, ${(apart.bytes / 1e6).toFixed(1)} MB`,
      );
      assert(
        together.requests <= apart.requests * 1.25,
        `${name}: ${together.requests} requests at once, ${apart.requests} one after the other`,
      );
      assert(
        together.bytes <= apart.bytes * 1.25,
        `${name}: ${together.bytes} bytes at once, ${apart.bytes} one after the other`,
      );
    }
  } finally {
    await server.close();
  }
});

Deno.test("prefetchRows: sorted token rows closer than the gap are one request; rows then read locally, as stored", async () => {
  const ref = await tinyRun();
  const server = serveDir(ref.dir);
  try {
    const local = await openPack(fileSource(`${ref.dir}/${ref.pack}`));
    const s = local.vocabSlot, V = local.config.vocabSize;
    const row = async (pack: typeof local, id: number) => {
      const v = {
        data: new Uint8Array(s.rowBytes),
        scales: new Uint8Array(s.scaleRowBytes),
        biases: new Uint8Array(s.scaleRowBytes),
      };
      await pack.readVocabRows(id, id + 1, v);
      return [...v.data, ...v.scales, ...v.biases];
    };
    // rows 10 and 20 lie 360 bytes apart, 3000 is 107 KB on, 50000 another 1.7 MB; 60000 to 135000 follow
    // 0.9 MB apart. A remote source's request is worth 1 MB: rows closer than that are one range however
    // long it grows (3 MB here; a local source's ranges stop at 1 MB); with a gap of 64 KB they are 7, but
    // rows 10 and 20 come from the opening's header response, asked for 16 KB and still open: 6 requests
    const ids = Int32Array.from([50000, 20, 3000, 10, 20, -1, V, 60000, 85000, 110000, 135000]);
    for (const [gap, want] of [[undefined, 2], [64 << 10, 6], [1 << 20, 2]] as const) {
      let requests = 0;
      const counting: typeof fetch = (input, init) => (requests++, fetch(input, init));
      const pack = await openPack(fetchSource(`${server.origin}/${ref.pack}`, { fetch: counting }), {
        gatherGapBytes: gap,
      });
      // every block verified first (one announced run), so the gather reads rows, not blocks
      const chunk = 4096,
        all = (n: number) => ({
          data: new Uint8Array(n * s.rowBytes),
          scales: new Uint8Array(n * s.scaleRowBytes),
          biases: new Uint8Array(n * s.scaleRowBytes),
        });
      for (let r0 = 0; r0 < V; r0 += chunk) {
        await pack.readVocabRows(r0, Math.min(V, r0 + chunk), all(Math.min(V, r0 + chunk) - r0));
      }
      const before = requests;
      await pack.prefetchRows(ids, ids.length);
      assertEquals(requests - before, want, `gap ${gap ?? "default"}`);
      for (const id of [10, 20, 3000, 50000, 60000, 85000, 135000]) {
        assertEquals(await row(pack, id), await row(local, id), `row ${id}`);
      }
      assertEquals(requests - before, want, "gathered rows are read locally");
    }
    local.source.close?.();
  } finally {
    await server.close();
  }
});

Deno.test("a step's token rows (embedding and loss targets) are copied from the gather, none read alone; the same losses", async () => {
  const ref = await tinyRun();
  const bytes = await Deno.readFile(`${ref.dir}/${ref.pack}`);
  const data = sequences(await Deno.readFile(`${ref.dir}/${ref.tokens}`));
  const pack = await openPack(bytesSource(bytes, "t.pack"));
  let alone = 0, copied = 0;
  const watched: typeof pack = {
    ...pack,
    readVocabRows: (
      r0,
      r1,
      into,
      head,
    ) => (alone += r1 - r0 === 1 ? 1 : 0, pack.readVocabRows(r0, r1, into, head)),
    copyGatheredRow: (id, into, head) => (copied++, pack.copyGatheredRow(id, into, head)),
  };
  const r = await train(watched, data, [], OPTIONS);
  assertEquals(bits(r.params), ref.params, "the same adapter, bit for bit");
  assertEquals(alone, 0, "no row read alone");
  assert(copied >= 3 * OPTIONS.seqLen, `every token's row copied (${copied})`);
});

Deno.test("expectRows: a pass over the vocabulary from row 0 keeps the announced rows; the gather after it reads nothing, rows as stored", async () => {
  for (const [name, format] of [["mlx_q4", "q4"], ["mha_untied_bf16", "f32"]] as const) {
    // checksum blocks of 64 rows and chunks of 100: the first pass reads partly covered blocks whole
    const bytes = await packBytes(name, format, 64);
    const heads = name === "mlx_q4" ? [false] : [false, true];
    for (const head of heads) {
      const what = `${name}${head ? " head" : ""}`;
      let reads = 0;
      const mem = bytesSource(bytes, "t.pack");
      const counting: WeightSource = { ...mem, read: (o, into) => (reads++, mem.read(o, into)) };
      const pack = await openPack(counting), ref = await openPack(bytesSource(bytes, "ref.pack"));
      const s = pack.vocabSlot, V = pack.config.vocabSize;
      const views = (n: number) => ({
        data: new Uint8Array(n * s.rowBytes),
        scales: s.scaleRowBytes ? new Uint8Array(n * s.scaleRowBytes) : undefined,
        biases: s.scaleRowBytes ? new Uint8Array(n * s.scaleRowBytes) : undefined,
      });
      const row = async (p: typeof pack, id: number) => {
        const v = views(1);
        await p.readVocabRows(id, id + 1, v, head);
        return [...v.data, ...(v.scales ?? []), ...(v.biases ?? [])];
      };
      const pass = async () => {
        for (let r0 = 0; r0 < V; r0 += 100) {
          await pack.readVocabRows(r0, Math.min(V, r0 + 100), views(Math.min(V, r0 + 100) - r0), head);
        }
      };
      const ids = Int32Array.from([200, 3, 77, 3, -1, V, 255, 130]);
      pack.expectRows(Int32Array.from([5, 6]), 2, head); // replaced by the next announcement
      pack.expectRows(ids, ids.length, head);
      await pass();
      let before = reads;
      await pack.prefetchRows(ids, ids.length, head);
      assertEquals(reads - before, 0, `${what}: the announced rows came with the pass`);
      for (const id of [3, 77, 130, 200, 255]) {
        assertEquals(await row(pack, id), await row(ref, id), `${what} row ${id}`);
      }
      assertEquals(reads - before, 0, `${what}: and are read locally`);
      // copied without a promise: the same bytes; a row not gathered is not copied
      for (const id of [3, 77, 130, 200, 255]) {
        const v = views(1);
        assert(pack.copyGatheredRow(id, v, head), `${what} row ${id} gathered`);
        assertEquals(
          [...v.data, ...(v.scales ?? []), ...(v.biases ?? [])],
          await row(ref, id),
          `${what} ${id}`,
        );
      }
      assert(!pack.copyGatheredRow(4, views(1), head), `${what}: row 4 was not gathered`);
      // the announcement was taken up: another pass keeps nothing new, so new ids are read
      await pass();
      before = reads;
      await pack.prefetchRows(Int32Array.from([5, 6]), 2, head);
      assert(reads > before, `${what}: an announcement counts once`);
      // a pass that does not start at row 0 keeps nothing
      pack.expectRows(Int32Array.from([150, 250]), 2, head);
      for (let r0 = 100; r0 < V; r0 += 100) {
        await pack.readVocabRows(r0, Math.min(V, r0 + 100), views(Math.min(V, r0 + 100) - r0), head);
      }
      before = reads;
      await pack.prefetchRows(Int32Array.from([150, 250]), 2, head);
      assert(reads > before, `${what}: no pass from row 0, no rows kept`);
      assertEquals(await row(pack, 250), await row(ref, 250), `${what} row 250`);
    }
    if (name === "mlx_q4") {
      const pack = await openPack(bytesSource(bytes));
      await assertRejects(() => pack.expectRows([1], 1, true), "no separate LM head");
    }
  }
});

/** The pack of golden case `name` in `format` with checksummed vocabulary blocks of `vocabBlock` rows. */
async function packBytes(name: string, format: PackFormat, vocabBlock: number): Promise<Uint8Array> {
  const dir = caseDir(name);
  const ckpt = await openCheckpoint(dirFiles(dir));
  const parts: Uint8Array[] = [];
  try {
    const header = await writePack(ckpt, await readModelConfig(dir), {
      write: (c) => (parts.push(c.slice()), Promise.resolve()),
    }, { format, fingerprint: "fp", vocabBlock });
    const bytes = new Uint8Array(header.fileBytes);
    let at = 0;
    for (const p of parts) (bytes.set(p, at), at += p.length);
    return bytes;
  } finally {
    ckpt.close();
  }
}
