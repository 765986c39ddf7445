import assert from "node:assert/strict";
import { dirFiles, fileSource, writeFileAtomic } from "../src/io/deno_files.ts";
import {
  blobSource,
  bytesSource,
  fetchSource,
  FileNotFoundError,
  memoryFiles,
  urlFiles,
} from "../src/io/source.ts";
import { memoryRangeCache } from "../src/io/range_cache.ts";
import { serveDir } from "./_http_server.ts";
import { encodeSafetensors, openCheckpoint, readTensorF32 } from "../src/model/safetensors.ts";

/** 0, 1, ..., 255, 0, 1, ... */
function pattern(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(n).map((_, i) => i & 0xff);
}

Deno.test("bytesSource: reads ranges, rejects short reads", async () => {
  const src = bytesSource(pattern(10), "ten");
  assert.equal(await src.size(), 10);
  const out = new Uint8Array(3);
  await src.read(7, out);
  assert.deepEqual([...out], [7, 8, 9]);
  await assert.rejects(src.read(8, out), /ten: short read: wanted bytes 8\.\.11 but the data has 10 bytes/);
  await assert.rejects(src.read(-1, out), /ten: invalid read range/);
});

Deno.test("blobSource: reads ranges of a File", async () => {
  const src = blobSource(new File([pattern(600)], "weights.safetensors"));
  assert.equal(src.name, "weights.safetensors");
  assert.equal(await src.size(), 600);
  const out = new Uint8Array(4);
  await src.read(300, out);
  assert.deepEqual([...out], [44, 45, 46, 47]);
  await assert.rejects(src.read(598, out), /weights\.safetensors: short read: wanted bytes 598\.\.602/);
});

Deno.test("memoryFiles: text, bytes, missing files", async () => {
  const files = memoryFiles({ "config.json": `{"a":1}`, "w.bin": new Uint8Array([1, 2]) }, { name: "mem" });
  assert.equal(await files.readText("config.json"), `{"a":1}`);
  assert.equal(await files.readText("w.bin"), "\x01\x02");
  assert.equal(await files.readText("nope.json"), undefined);
  assert.deepEqual(await files.list!(), ["config.json", "w.bin"]);
  assert.equal(await files.source("w.bin").size(), 2);
  await assert.rejects(files.source("nope.bin").size(), FileNotFoundError);
  await assert.rejects(files.source("nope.bin").read(0, new Uint8Array(1)), /file not found: mem\/nope\.bin/);
});

Deno.test("fileSource: seeks and reads into caller buffers, including WebAssembly memory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/data.bin`;
    await Deno.writeFile(path, pattern(100_000));
    const src = fileSource(path);
    assert.equal(src.name, path);
    assert.equal(await src.size(), 100_000);
    const memory = new WebAssembly.Memory({ initial: 3 });
    const slot = new Uint8Array(memory.buffer, 65_000, 70_000); // spans a page boundary
    await src.read(12_345, slot);
    for (let i = 0; i < slot.length; i++) if (slot[i] !== ((12_345 + i) & 0xff)) assert.fail(`byte ${i}`);
    // Concurrent reads each take their own handle (its own file position) and land at the right offsets.
    const bufs = Array.from({ length: 20 }, () => new Uint8Array(1000));
    await Promise.all(bufs.map((b, k) => src.read(k * 4999, b)));
    bufs.forEach((b, k) =>
      b.forEach((x, i) => x !== ((k * 4999 + i) & 0xff) && assert.fail(`read ${k}, byte ${i}`))
    );
    await assert.rejects(
      src.read(99_990, new Uint8Array(20)),
      /short read: wanted bytes 99990\.\.100010 but the file has 100000/,
    );
    await src.read(100_000, new Uint8Array(0));
    src.close!();
    // Reopens after close.
    const one = new Uint8Array(1);
    await src.read(300, one);
    assert.equal(one[0], 300 & 0xff);
    src.close!();

    const missing = fileSource(`${dir}/missing.bin`);
    await assert.rejects(missing.size(), FileNotFoundError);
    await assert.rejects(missing.read(0, one), /file not found: .*missing\.bin/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dirFiles + openCheckpoint: a sharded checkpoint on disk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/config.json`, `{"model_type":"qwen2"}`);
    await Deno.writeFile(
      `${dir}/model-00001-of-00002.safetensors`,
      encodeSafetensors([{ name: "a", dtype: "F32", shape: [2], data: new Float32Array([1.5, -2]) }]),
    );
    await Deno.writeFile(
      `${dir}/model-00002-of-00002.safetensors`,
      encodeSafetensors([{ name: "b", dtype: "BF16", shape: [1], data: new Uint16Array([0x4040]) }]),
    );
    await Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({
        metadata: { total_size: 10 },
        weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" },
      }),
    );
    const files = dirFiles(dir);
    assert.equal(await files.readText("config.json"), `{"model_type":"qwen2"}`);
    assert.equal(await files.readText("tokenizer.json"), undefined);
    assert.deepEqual(await files.list!(), [
      "config.json",
      "model-00001-of-00002.safetensors",
      "model-00002-of-00002.safetensors",
      "model.safetensors.index.json",
    ]);
    const ckpt = await openCheckpoint(files);
    try {
      const a = ckpt.get("a");
      assert.deepEqual([...await readTensorF32(a.file, "a")], [1.5, -2]);
      const b = ckpt.get("b");
      assert.deepEqual([...await readTensorF32(b.file, "b")], [3]);
      assert.equal(b.file.source.name, `${dir}/model-00002-of-00002.safetensors`);
    } finally {
      ckpt.close();
    }
    await Deno.remove(`${dir}/model-00002-of-00002.safetensors`);
    await assert.rejects(
      openCheckpoint(files),
      new RegExp(
        `shard "model-00002-of-00002\\.safetensors" named in model\\.safetensors\\.index\\.json is missing in ${dir}`,
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function* chunks() {
  yield new Uint8Array([7]);
  yield pattern(300_000);
}

async function* failingChunks() {
  yield new Uint8Array([1]);
  throw new Error("generator failed");
}

Deno.test("writeFileAtomic: bytes, chunks and sink functions; a failing writer leaves the old file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/adapter.safetensors`;
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...await Deno.readFile(path)], [1, 2, 3]);

    await writeFileAtomic(path, [new Uint8Array([4]), new Uint8Array([5, 6])]);
    assert.deepEqual([...await Deno.readFile(path)], [4, 5, 6]);

    await writeFileAtomic(path, chunks());
    assert.equal((await Deno.stat(path)).size, 300_001);

    await writeFileAtomic(path, async (sink) => {
      await sink.write(new Uint8Array([8, 9]));
      await sink.write(new Uint8Array([10]));
    });
    assert.deepEqual([...await Deno.readFile(path)], [8, 9, 10]);

    // The writer throws after writing part of the new content: the old file must survive untouched.
    await assert.rejects(
      writeFileAtomic(path, async (sink) => {
        await sink.write(pattern(100_000));
        throw new Error("disk on fire");
      }),
      /disk on fire/,
    );
    assert.deepEqual([...await Deno.readFile(path)], [8, 9, 10]);
    await assert.rejects(writeFileAtomic(path, failingChunks()), /generator failed/);
    assert.deepEqual([...await Deno.readFile(path)], [8, 9, 10]);

    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["adapter.safetensors"], "no temporary files left behind");

    await assert.rejects(
      writeFileAtomic(`${dir}/no/such/dir/x.bin`, new Uint8Array(1)),
      Deno.errors.NotFound,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- HTTP ----------------------------------------------------------------------------------------------

interface ServerOptions {
  /** Answer every GET with the whole file (status 200), like a server without Range support. */
  ignoreRange?: boolean;
  /** HEAD is not allowed (forces the range probe). */
  noHead?: boolean;
  /** Send one byte less than the Content-Range promises. */
  shortBody?: boolean;
}

/** A local HTTP server for `files` on an ephemeral port; honours single `bytes=a-b` ranges. */
function serve(files: Record<string, Uint8Array>, options: ServerOptions = {}) {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const name = decodeURIComponent(new URL(req.url).pathname.slice(1));
    const range = req.headers.get("range");
    requests.push(`${req.method} ${name}${range ? ` ${range}` : ""}`);
    const data = files[name];
    if (data === undefined) return new Response("not found", { status: 404 });
    if (req.method === "HEAD") {
      if (options.noHead) return new Response(null, { status: 405 });
      return new Response(null, { headers: { "content-length": String(data.length) } });
    }
    const m = range && !options.ignoreRange ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
    if (!m) return new Response(data.slice());
    const start = Number(m[1]);
    if (start >= data.length) {
      return new Response(null, { status: 416, headers: { "content-range": `bytes */${data.length}` } });
    }
    const end = Math.min(Number(m[2]), data.length - 1);
    const body = data.slice(start, options.shortBody ? end : end + 1);
    return new Response(body, {
      status: 206,
      headers: { "content-range": `bytes ${start}-${end}/${data.length}` },
    });
  });
  const base = `http://127.0.0.1:${server.addr.port}/`;
  return { base, requests, close: () => server.shutdown() };
}

Deno.test("fetchSource: range reads, size from HEAD", async () => {
  const srv = serve({ "w.bin": pattern(5000) });
  try {
    const src = fetchSource(`${srv.base}w.bin`);
    assert.equal(await src.size(), 5000);
    const out = new Uint8Array(1000);
    await src.read(4000, out);
    for (let i = 0; i < out.length; i++) if (out[i] !== ((4000 + i) & 0xff)) assert.fail(`byte ${i}`);
    await src.read(0, new Uint8Array(0)); // no request
    assert.deepEqual(srv.requests, ["HEAD w.bin", "GET w.bin bytes=4000-4999"]);
    // A read past the end is a short read, not silently fewer bytes.
    await assert.rejects(
      src.read(4500, new Uint8Array(1000)),
      /short read: asked for bytes 4500-5499, server sent Content-Range "bytes 4500-4999\/5000"/,
    );
    await assert.rejects(
      src.read(6000, new Uint8Array(10)),
      /short read: bytes 6000\.\.6010 lie beyond the end of the file/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("fetchSource wholeBelow: a small file is one download, every read then local; a larger one reads ranges", async () => {
  const srv = serve({ "w.bin": pattern(5000), "big.bin": pattern(9000) }, { ignoreRange: true });
  try {
    const src = fetchSource(`${srv.base}w.bin`, { wholeBelow: 5000 });
    const reads = [[4000, 1000], [0, 10], [123, 77], [4000, 1000]];
    await Promise.all(reads.map(async ([at, n]) => {
      const out = new Uint8Array(n);
      await src.read(at, out);
      assert.deepEqual(out, pattern(5000).subarray(at, at + n), `bytes ${at}+${n}`);
    }));
    // a server without Range support is no error for it
    assert.deepEqual(srv.requests, ["HEAD w.bin", "GET w.bin"]);
    await assert.rejects(
      src.read(4990, new Uint8Array(20)),
      /w\.bin: short read: bytes 4990\.\.5010 lie beyond/,
    );
    await assert.rejects(
      fetchSource(`${srv.base}big.bin`, { wholeBelow: 5000 }).read(0, new Uint8Array(4)),
      /ignored the HTTP Range request/,
    );
    await assert.rejects(
      fetchSource(`${srv.base}nope.bin`, { wholeBelow: 5000 }).read(0, new Uint8Array(4)),
      FileNotFoundError,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("fetchSource: size from a range probe when HEAD is refused", async () => {
  const srv = serve({ "w.bin": pattern(777) }, { noHead: true });
  try {
    assert.equal(await fetchSource(`${srv.base}w.bin`).size(), 777);
    assert.deepEqual(srv.requests, ["HEAD w.bin", "GET w.bin bytes=0-0"]);
  } finally {
    await srv.close();
  }
});

Deno.test("fetchSource: a server that ignores Range is a clear error", async () => {
  const srv = serve({ "w.bin": pattern(100) }, { ignoreRange: true, noHead: true });
  try {
    const src = fetchSource(`${srv.base}w.bin`, { name: "remote w.bin" });
    await assert.rejects(
      src.read(10, new Uint8Array(5)),
      /remote w\.bin: the server ignored the HTTP Range request \(status 200/,
    );
    await assert.rejects(src.size(), /ignored the HTTP Range request/);
    // and says what to do for a file small enough to hold
    await assert.rejects(src.size(), /downloaded whole instead, with fetchSource's option wholeBelow/);
  } finally {
    await srv.close();
  }
});

Deno.test("fetchSource: missing file and short body", async () => {
  const srv = serve({ "w.bin": pattern(100) }, { shortBody: true });
  try {
    await assert.rejects(fetchSource(`${srv.base}nope.bin`).size(), FileNotFoundError);
    await assert.rejects(fetchSource(`${srv.base}nope.bin`).read(0, new Uint8Array(4)), FileNotFoundError);
    await assert.rejects(
      fetchSource(`${srv.base}w.bin`).read(10, new Uint8Array(5)),
      /short read: got 4 of 5 bytes/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test('fetchSource, urlFiles: a network failure (a browser\'s bare "Failed to fetch") names the URL and the range', async () => {
  const failing: typeof fetch = () => Promise.reject(new TypeError("Failed to fetch"));
  const url = "https://weights.example/packs/m.pack";
  await assert.rejects(
    fetchSource(url, { fetch: failing }).read(10, new Uint8Array(5)),
    (err: Error) =>
      err.message.startsWith(`cannot fetch ${url} (bytes=10-14): Failed to fetch`) &&
      err.cause instanceof TypeError,
  );
  await assert.rejects(
    fetchSource(url, { fetch: failing, name: "the pack" }).size(),
    new RegExp(`the pack: cannot fetch ${url.replaceAll(".", "\\.")}: Failed to fetch`),
  );
  await assert.rejects(
    urlFiles("https://weights.example/model", { fetch: failing }).readText("config.json"),
    /cannot fetch https:\/\/weights\.example\/model\/config\.json: Failed to fetch/,
  );
  // the likely causes follow an http(s) or relative URL (a page's own, "m.pack"), not another scheme's
  const hint = "(the server is unreachable, or refused the request, or its answer lacks CORS headers";
  for (const [u, hinted] of [[url, true], ["packs/m.pack", true], ["r2:packs/m.pack", false]] as const) {
    await assert.rejects(fetchSource(u, { fetch: failing }).size(), (err: Error) => {
      assert.equal(err.message.includes(hint), hinted, `${u}: ${err.message}`);
      return err.message.startsWith(`cannot fetch ${u}: Failed to fetch`);
    });
  }
  // a body that breaks off mid-read is named too
  const broken: typeof fetch = () =>
    Promise.resolve(
      new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(new Uint8Array(2));
            c.error(new TypeError("network error"));
          },
        }),
        { status: 206, headers: { "content-range": "bytes 0-4/100" } },
      ),
    );
  await assert.rejects(
    fetchSource(url, { fetch: broken }).read(0, new Uint8Array(5)),
    new RegExp(`${url.replaceAll(".", "\\.")}: the response broke off: network error`),
  );
});

Deno.test("fetchSource, urlFiles: a path, a file: URL or a non-URL is refused up front, pointing at the file sources", () => {
  const local = "a local file is read with blobSource(file) or bytesSource(bytes), or in Deno with " +
    "fileSource(path) (dirFiles(path) for a directory) from src/io/deno_files.ts";
  const cases: [() => unknown, string][] = [
    [
      () => fetchSource("/tmp/x.pack"),
      'fetchSource: "/tmp/x.pack" is not an http(s) URL (nor is there a page here to resolve a relative one ' +
      `against); ${local}`,
    ],
    [
      () => fetchSource("file:///tmp/x.pack"),
      `fetchSource: "file:///tmp/x.pack" is not an http(s) URL; ${local}`,
    ],
    [
      () => fetchSource(new URL("file:///tmp/x.pack")),
      'fetchSource: "file:///tmp/x.pack" is not an http(s) URL',
    ],
    [
      () => fetchSource(42 as unknown as string),
      "fetchSource: expected a URL (a string or a URL), got a number (42)",
    ],
    [() => urlFiles("/models/qwen"), 'urlFiles: "/models/qwen" is not an http(s) URL'],
  ];
  for (const [f, message] of cases) {
    assert.throws(f, (err: Error) => err.message.startsWith(message) || assert.fail(err.message));
  }
  // http(s) URLs, and any URL a fetch of the caller's own reads
  fetchSource(new URL("https://weights.example/m.pack"));
  fetchSource("r2:packs/m.pack", { fetch: () => Promise.reject(new Error("unused")) });
});

Deno.test("fetchSource: only a network error (a TypeError) gets the likely network causes, not a denied permission", async () => {
  const hint = "(the server is unreachable, or refused the request, or its answer lacks CORS headers";
  const denied: typeof fetch = () =>
    Promise.reject(new Deno.errors.NotCapable('Requires net access to "weights.example:443"'));
  const err = await fetchSource("https://weights.example/m.pack", { fetch: denied }).size().catch((e) => e);
  assert.equal(
    err.message,
    'cannot fetch https://weights.example/m.pack: Requires net access to "weights.example:443"',
  );
  // a port nobody listens on: Deno's fetch fails with a TypeError
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await fetchSource(`http://127.0.0.1:${port}/m.pack`).size().catch((e) => e);
  assert.ok(refused.message.includes(hint), refused.message);
});

Deno.test("urlFiles + openCheckpoint: a checkpoint over HTTP reads only headers and asked-for tensors", async () => {
  const weights = new Float32Array(10_000).map((_, i) => i);
  const model = encodeSafetensors([
    { name: "model.norm.weight", dtype: "BF16", shape: [2], data: new Uint16Array([0x3f80, 0x4000]) },
    { name: "model.embed_tokens.weight", dtype: "F32", shape: [100, 100], data: weights },
  ]);
  const srv = serve({ "m/model.safetensors": model, "m/config.json": new TextEncoder().encode(`{"x":1}`) });
  try {
    const files = urlFiles(`${srv.base}m`);
    assert.equal(await files.readText("config.json"), `{"x":1}`);
    assert.equal(await files.readText("tokenizer.json"), undefined);
    const ckpt = await openCheckpoint(files);
    const norm = ckpt.get("model.norm.weight");
    assert.deepEqual([...await readTensorF32(norm.file, norm.info.name)], [1, 2]);
    assert.equal(norm.file.source.name, `${srv.base}m/model.safetensors`);
    const fetched = srv.requests.filter((r) => r.includes("model.safetensors"));
    assert.equal(fetched.length, 4, fetched.join("\n")); // HEAD, length, header, one tensor
    assert.ok(fetched.every((r) => r.startsWith("HEAD") || r.includes("bytes=")), "never the whole file");
  } finally {
    await srv.close();
  }
});

/**
 * A `fetch` over `bytes` answering Range requests with byte-stream bodies that hand out at most `most` bytes
 * a pull, counting pulls served through a BYOB request (into the reader's buffer) and those without one
 * (a default reader: the stream must allocate each chunk); `values` answers with a stream of plain chunks.
 */
function byteStreamFetch(bytes: Uint8Array, most: number, values = false) {
  const seen = { byob: 0, plain: 0, viewBytes: new Set<number>() };
  const fetch: typeof globalThis.fetch = (_url, init) => {
    const m = /^bytes=(\d+)-(\d+)$/.exec(new Headers(init?.headers).get("range") ?? "");
    const start = m ? Number(m[1]) : 0, end = m ? Number(m[2]) + 1 : bytes.length;
    let pos = start;
    const body = values
      ? new ReadableStream<Uint8Array>({
        pull(c) {
          if (pos >= end) return c.close();
          const n = Math.min(most, end - pos, 1 + (pos % 997)); // uneven chunks
          c.enqueue(bytes.slice(pos, pos + n));
          pos += n;
        },
      })
      : new ReadableStream({
        type: "bytes",
        pull(c) {
          if (pos >= end) {
            c.close();
            c.byobRequest?.respond(0);
            return;
          }
          const r = c.byobRequest;
          if (!r?.view) {
            seen.plain++;
            const n = Math.min(most, end - pos);
            c.enqueue(bytes.slice(pos, pos + n));
            pos += n;
            return;
          }
          seen.byob++;
          seen.viewBytes.add(r.view.buffer.byteLength);
          const n = Math.min(most, end - pos, r.view.byteLength);
          new Uint8Array(r.view.buffer, r.view.byteOffset, n).set(bytes.subarray(pos, pos + n));
          pos += n;
          r.respond(n);
        },
      });
    const headers: Record<string, string> = m
      ? { "content-range": `bytes ${start}-${end - 1}/${bytes.length}` }
      : { "content-length": String(bytes.length) };
    return Promise.resolve(new Response(body, { status: m ? 206 : 200, headers }));
  };
  return { fetch, seen };
}

Deno.test("fetchSource: range bodies are read through a BYOB reader into a reused scratch buffer, also into WebAssembly memory; a stream of plain chunks still works", async () => {
  const bytes = pattern(3 << 20);
  const memory = new WebAssembly.Memory({ initial: 64 }); // 4 MB, not detachable: BYOB cannot read into it
  const wasm = new Uint8Array(memory.buffer);
  const check = (into: Uint8Array, offset: number) =>
    assert.ok(into.every((b, i) => b === bytes[offset + i]), `bytes at ${offset}`);
  for (const values of [false, true]) {
    const { fetch, seen } = byteStreamFetch(bytes, 100_000, values);
    const src = fetchSource("https://weights.example/w.bin", { fetch });
    // one read of 1.5 MB, straight into WebAssembly memory
    await src.read(1000, wasm.subarray(0, 1.5e6));
    check(wasm.subarray(0, 1.5e6), 1000);
    // an announced run: three consecutive reads, one passing over 5000 bytes, from one response
    src.expect!(2e6, 3e6);
    await src.read(2e6, wasm.subarray(2e6, 2.3e6));
    await src.read(2.3e6, wasm.subarray(2.3e6, 2.6e6));
    await src.read(2.605e6, wasm.subarray(2.605e6, 3e6));
    check(wasm.subarray(2e6, 2.6e6), 2e6);
    check(wasm.subarray(2.605e6, 3e6), 2.605e6);
    // the whole file at once (wholeBelow)
    const whole = fetchSource("https://weights.example/w.bin", {
      fetch: (u, init) =>
        init?.method === "HEAD" ? Promise.resolve(headResponse(bytes.length)) : fetch(u, init),
      wholeBelow: 4 << 20,
    });
    await whole.read(3e6, wasm.subarray(0, 100_000));
    check(wasm.subarray(0, 100_000), 3e6);
    if (values) continue;
    // every pull went into a buffer the reader gave, one size for all (the source's scratch buffer)
    assert.equal(seen.plain, 0, `${seen.plain} pulls without a BYOB request (a default reader)`);
    assert.ok(seen.byob >= 30, `${seen.byob} BYOB pulls`);
    assert.equal(seen.viewBytes.size, 1, `scratch sizes ${[...seen.viewBytes]}`);
    assert.ok([...seen.viewBytes][0] <= 1 << 20, "the scratch buffer is small");
  }
  // more bytes than asked for, in either kind of body, is an error naming the file
  for (const values of [false, true]) {
    const { fetch } = byteStreamFetch(bytes, 50_000, values);
    const long: typeof globalThis.fetch = (u, init) => {
      const h = new Headers(init?.headers), m = /^bytes=(\d+)-(\d+)$/.exec(h.get("range")!)!;
      h.set("range", `bytes=${m[1]}-${Number(m[2]) + 10}`); // the body runs 10 bytes long
      return fetch(u, { ...init, headers: h }).then((res) =>
        new Response(res.body, {
          status: 206,
          headers: { "content-range": `bytes ${m[1]}-${m[2]}/${bytes.length}` },
        })
      );
    };
    await assert.rejects(
      fetchSource("https://weights.example/w.bin", { fetch: long }).read(0, new Uint8Array(200_000)),
      /w\.bin: server sent more than the 200000 bytes asked for/,
    );
  }
});

function headResponse(length: number): Response {
  return new Response(null, { status: 200, headers: { "content-length": String(length) } });
}

Deno.test("urlFiles: cacheFor gives each file its own range cache (a range read again is served from it); one cache for all is refused", async () => {
  const a = new Uint8Array(4096).map((_, i) => i & 255),
    b = new Uint8Array(4096).map((_, i) => (i * 3) & 255);
  const server = serveDir("/nonexistent", {
    routes: {
      "/m/a.bin": { body: a, type: "application/octet-stream" },
      "/m/b.bin": { body: b, type: "application/octet-stream" },
    },
  });
  try {
    assert.throws(
      () => urlFiles(`${server.origin}/m/`, { cache: memoryRangeCache() } as never),
      /^TypeError: urlFiles: options\.cache would be shared by every file .* give cacheFor\(file\)/,
    );
    const asked: string[] = [];
    const files = urlFiles(`${server.origin}/m/`, {
      cacheFor: (file) => (asked.push(file), memoryRangeCache()),
    });
    const sa = files.source("a.bin"), sb = files.source("b.bin");
    for (let round = 0; round < 2; round++) {
      for (const [src, want] of [[sa, a], [sb, b]] as const) {
        const into = new Uint8Array(1000);
        await src.read(100, into);
        assert.deepEqual(Array.from(into), Array.from(want.subarray(100, 1100)));
      }
    }
    assert.deepEqual(asked, ["a.bin", "b.bin"]);
    const gets = server.requests.filter((r) => r.method === "GET").map((r) => `${r.path} ${r.range}`);
    assert.deepEqual(
      gets,
      ["/m/a.bin bytes=100-1099", "/m/b.bin bytes=100-1099"],
      "the second round is cached",
    );
  } finally {
    await server.close();
  }
});
