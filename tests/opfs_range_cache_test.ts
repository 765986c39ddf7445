// opfsRangeCache's main-thread way (File snapshots, batched writes) over an in-memory stand-in for an OPFS
// directory that behaves like Chromium's: a writable stream works on a copy that replaces the file at close,
// and a write past the quota throws QuotaExceededError. Every read is compared with the served bytes. The
// real thing (and the worker's sync access handle) is tested in Chromium by opfs_cache_test.ts.
import { assert, assertEquals } from "./_assert.ts";
import { fetchSource } from "../src/io/source.ts";
import { opfsRangeCache } from "../src/io/opfs_range_cache.ts";

/** A directory of in-memory files; `quota` bounds a file's size. */
function fakeDirectory(quota = Infinity) {
  const files = new Map<string, Uint8Array>();
  const dir = {
    getFileHandle(name: string) {
      if (!files.has(name)) files.set(name, new Uint8Array(0));
      return Promise.resolve({
        name,
        getFile: () => Promise.resolve(new Blob([files.get(name)!.slice()])),
        createWritable(options: { keepExistingData?: boolean } = {}) {
          let swap = options.keepExistingData ? files.get(name)!.slice() : new Uint8Array(0);
          const resize = (n: number) => {
            if (n > quota) throw new DOMException(`${n} bytes`, "QuotaExceededError");
            const next = new Uint8Array(n);
            next.set(swap.subarray(0, Math.min(n, swap.length)));
            swap = next;
          };
          return Promise.resolve({
            write({ position, data }: { position: number; data: Uint8Array }) {
              if (position + data.length > swap.length) resize(position + data.length);
              swap.set(data, position);
              return Promise.resolve();
            },
            truncate: (n: number) => Promise.resolve(resize(n)),
            close: () => Promise.resolve(void files.set(name, swap)),
            abort: () => Promise.resolve(),
          });
        },
      });
    },
  };
  return { dir, files };
}

/** A server of `bytes` with Range, its ETag given, counting its range requests. */
function server(bytes: () => Uint8Array, etag: () => string) {
  const seen = { ranges: 0 };
  const doFetch = (_: string | URL | Request, init?: RequestInit) => {
    const b = bytes();
    const headers = { "content-length": String(b.length), etag: etag() };
    if (init?.method === "HEAD") return Promise.resolve(new Response(null, { headers }));
    const m = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get("range") ?? "")!;
    const s = Number(m[1]), e = Number(m[2]);
    seen.ranges++;
    return Promise.resolve(
      new Response(b.slice(s, e + 1), {
        status: 206,
        headers: { ...headers, "content-range": `bytes ${s}-${e}/${b.length}` },
      }),
    );
  };
  return { doFetch, seen };
}

function random(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) out[i] = (s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24;
  return out;
}

// reads like a step's: runs of pieces forwards, then the same backwards (the backward pass over the layers)
const READS: [number, number][] = [];
for (let l = 0; l < 8; l++) for (let p = 0; p < 4; p++) READS.push([l * 40_000 + p * 10_000, 10_000]);
READS.push(...READS.slice().reverse(), [5_000, 30_000], [320_000, 1]);

async function readAll(source: ReturnType<typeof fetchSource>, pack: Uint8Array) {
  for (const [o, n] of READS) {
    const into = new Uint8Array(n);
    await source.read(o, into);
    assert(into.every((b, i) => b === pack[o + i]), `bytes ${o}..${o + n} differ`);
  }
}

Deno.test("opfsRangeCache: kept across instances (a reload), exact bytes, blocks; another ETag discards", async () => {
  const { dir, files } = fakeDirectory();
  let pack = random(400_000, 1), etag = '"v1"';
  const { doFetch, seen } = server(() => pack, () => etag);
  const notices: string[] = [];
  const open = () =>
    opfsRangeCache("p.pack", { directory: dir, blockBytes: 64 << 10, onNotice: (m) => notices.push(m) });

  const first = open();
  await readAll(fetchSource("http://x/p.pack", { fetch: doFetch, cache: first }), pack);
  const fetched = seen.ranges;
  assert(fetched > 0);
  await first.close();
  // the file: the pack's bytes where they are kept, then the record
  const file = files.get("p.pack")!;
  assert(file.length > pack.length && file.subarray(0, 320_000).every((b, i) => b === pack[i]));
  assertEquals(first.bytes(), 320_001);

  const again = open();
  await readAll(fetchSource("http://x/p.pack", { fetch: doFetch, cache: again }), pack);
  assertEquals(seen.ranges, fetched, "a reload fetched ranges");
  const s = again.stats();
  assertEquals(s.pendingReads, 0);
  assertEquals(s.fileReads, READS.length);
  // 64 KB blocks over 320 KB, forwards and backwards: a block is read again only when it is left
  assert(s.blockLoads <= 14, JSON.stringify(s));
  assertEquals(notices, []);

  pack = random(400_000, 2);
  etag = '"v2"';
  const changed = open();
  await readAll(fetchSource("http://x/p.pack", { fetch: doFetch, cache: changed }), pack);
  assert(seen.ranges > fetched, "the changed file was not fetched");
  assert(
    notices.length === 1 && notices[0].includes('"p.pack"') && notices[0].includes('ETag "v1"'),
    notices[0],
  );
  await changed.close();

  // a damaged record: nothing is trusted, the bytes are fetched again
  files.get("p.pack")![files.get("p.pack")!.length - 1] ^= 0xff;
  const before = seen.ranges;
  const damaged = open();
  await readAll(fetchSource("http://x/p.pack", { fetch: doFetch, cache: damaged }), pack);
  assert(seen.ranges > before);
  await damaged.close();
});

Deno.test("opfsRangeCache: a full quota stops the keeping with a notice naming the file; reads stay right", async () => {
  const { dir } = fakeDirectory(100_000);
  const pack = random(400_000, 3);
  const { doFetch, seen } = server(() => pack, () => '"q"');
  const notices: string[] = [];
  const cache = opfsRangeCache("q.pack", {
    directory: dir,
    flushBytes: 50_000,
    onNotice: (m) => notices.push(m),
  });
  const source = fetchSource("http://x/q.pack", { fetch: doFetch, cache });
  await readAll(source, pack);
  const once = seen.ranges;
  await readAll(source, pack);
  assert(seen.ranges > once, "nothing read again from the network: more kept than the quota allows?");
  assertEquals(notices.length, 1);
  assert(notices[0].includes('OPFS cache file "q.pack"') && notices[0].includes("quota"), notices[0]);
  await cache.close();
});
