import assert from "node:assert/strict";
import {
  buildTokenCache,
  crc32,
  decodeTokenCache,
  encodeTokenCache,
  invalidUtf8Line,
  resolveTokenCacheOptions,
  sha256Hex,
  tokenCacheKey,
  type TokenCacheMeta,
  tokenizeInWorker,
} from "../src/data/token_cache.ts";
import type { Sequence } from "../src/data/sequence.ts";
import { loadOrBuildTokenCache } from "../src/data/token_cache_files.ts";
import { parseJsonl, PROGRESS_EVERY, tokenizeDataset } from "../src/data/dataset.ts";
import { loadTokenizer } from "../src/text/tokenizer.ts";
import { qwenTokenizerFiles } from "../src/text/qwen_tokenizer_files.ts";
import { QWEN2_5_DEFAULT_SYSTEM } from "../src/text/chat.ts";

const enc = new TextEncoder();

function meta(count: number, overrides: Partial<TokenCacheMeta> = {}): TokenCacheMeta {
  return {
    key: "k",
    datasetSha256: "d",
    tokenizerSha256: "t",
    tokenizerConfigSha256: null,
    datasetFile: "x.jsonl",
    options: { seqLen: 16, defaultSystem: null, appendEosToText: true },
    vocabSize: 1000,
    stats: { records: count, examples: count, truncated: 0, dropped: 0, tokens: 0, targets: 0 },
    ...overrides,
  };
}

const EXAMPLES: Required<Sequence>[] = [
  { ids: Int32Array.of(1, 2, 3), targets: Uint8Array.of(0, 1, 1) },
  { ids: Int32Array.of(999, 0), targets: Uint8Array.of(0, 1) },
  { ids: Int32Array.of(7, 8, 9, 10, 11), targets: Uint8Array.of(0, 0, 0, 1, 1) },
];

Deno.test("token cache: crc32 and sha256 match published check values", async () => {
  assert.equal(crc32(enc.encode("123456789")), 0xcbf43926); // CRC-32/ISO-HDLC check value
  assert.equal(
    await sha256Hex(enc.encode("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

Deno.test("token cache: encode/decode round trip with zero-copy views", () => {
  const bytes = encodeTokenCache(EXAMPLES, meta(3));
  assert.deepEqual(Array.from(bytes.subarray(0, 8)), [0x4d, 0x45, 0x53, 0x50, 0x54, 0x4f, 0x4b, 0]);
  const cache = decodeTokenCache(bytes);
  assert.equal(cache.count, 3);
  assert.deepEqual(Array.from(cache.offsets), [0, 3, 5, 10]);
  assert.deepEqual(cache.meta, meta(3));
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(cache.example(i).ids, EXAMPLES[i].ids);
    assert.deepEqual(cache.example(i).targets, EXAMPLES[i].targets);
  }
  assert.equal(cache.example(1).ids.buffer, bytes.buffer); // a view, not a copy
  // an ArrayBuffer (what Response.arrayBuffer() gives) is its bytes; before, "bad magic"
  assert.deepEqual(decodeTokenCache(bytes.slice().buffer).example(2).ids, EXAMPLES[2].ids);
  assert.throws(() => decodeTokenCache("x" as never), /expected the token cache's bytes/);
  assert.throws(() => cache.example(3), RangeError);
  // Size: 24 fixed + padded JSON + 4·4 offsets + 5·10 ids/targets.
  const jsonLength = new DataView(bytes.buffer).getUint32(12, true);
  assert.equal(jsonLength % 8, 0);
  assert.equal(bytes.length, 24 + jsonLength + 16 + 50);
  // An unaligned view still decodes (by copying).
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assert.deepEqual(decodeTokenCache(shifted.subarray(1)).example(2).ids, EXAMPLES[2].ids);
});

Deno.test("token cache: corruption and inconsistency are detected", () => {
  const good = encodeTokenCache(EXAMPLES, meta(3));
  const mutate = (f: (b: Uint8Array) => void) => {
    const b = good.slice();
    f(b);
    return b;
  };
  const name = { name: "c.tokcache" };
  assert.throws(() => decodeTokenCache(good.subarray(0, 10), name), /c\.tokcache: too short/);
  assert.throws(() => decodeTokenCache(mutate((b) => (b[0] = 0x58)), name), /bad magic/);
  assert.throws(() => decodeTokenCache(mutate((b) => (b[8] = 2)), name), /format version 2, expected 1/);
  assert.throws(() => decodeTokenCache(mutate((b) => (b[b.length - 12] ^= 1)), name), /checksum mismatch/);
  assert.throws(() => decodeTokenCache(good.subarray(0, good.length - 1), name), /checksum mismatch|size/);
  // Consistent checksums, inconsistent content: encode accepts it, decode must not.
  const bad = (examples: Required<Sequence>[], m = meta(examples.length)) => encodeTokenCache(examples, m);
  assert.throws(
    () => decodeTokenCache(bad([{ ids: Int32Array.of(1, 2), targets: Uint8Array.of(1, 1) }]), name),
    /example 0: its first token is marked as a target/,
  );
  assert.throws(
    () => decodeTokenCache(bad([{ ids: Int32Array.of(1, 1000), targets: Uint8Array.of(0, 1) }]), name),
    /token 1: id 1000 outside vocabulary 1000/,
  );
  assert.throws(
    () => decodeTokenCache(bad([{ ids: Int32Array.of(1, 2), targets: Uint8Array.of(0, 2) }]), name),
    /target byte 2/,
  );
  assert.throws(() => decodeTokenCache(bad(EXAMPLES, meta(2)), name), /size \d+ bytes, expected/);
  assert.throws(
    () => encodeTokenCache([{ ids: Int32Array.of(1), targets: new Uint8Array(2) }], meta(1)),
    /1 ids but 2/,
  );
});

Deno.test("token cache: key changes with every input", async () => {
  const options = resolveTokenCacheOptions({ seqLen: 256 });
  assert.deepEqual(options, { seqLen: 256, defaultSystem: QWEN2_5_DEFAULT_SYSTEM, appendEosToText: true });
  const base = { datasetSha256: "a", tokenizerSha256: "b", tokenizerConfigSha256: null, options };
  const k = await tokenCacheKey(base);
  assert.match(k, /^[0-9a-f]{64}$/);
  assert.equal(await tokenCacheKey({ ...base }), k);
  const variants = [
    { ...base, datasetSha256: "x" },
    { ...base, tokenizerSha256: "x" },
    { ...base, tokenizerConfigSha256: "x" },
    { ...base, options: { ...options, seqLen: 128 } },
    { ...base, options: { ...options, defaultSystem: null } },
    { ...base, options: { ...options, appendEosToText: false } },
  ];
  for (const v of variants) assert.notEqual(await tokenCacheKey(v), k);
  assert.throws(() => resolveTokenCacheOptions({ seqLen: 1 }), /seqLen/);
});

const DATASET = [
  '{"messages": [{"role": "user", "content": "What colours does Lumen come in?"}, ' +
  '{"role": "assistant", "content": "Graphite, Sand and Sage."}]}',
  '{"prompt": "你好", "completion": "你好！"}',
  '{"text": "Lumen is a solar desk lamp."}',
  '{"input_ids": [1, 2, 3]}',
].join("\n") + "\n";

Deno.test("token cache: inline build and Worker build give identical bytes matching tokenizeDataset", async () => {
  const files = await qwenTokenizerFiles();
  const job = () => ({
    datasetBytes: enc.encode(DATASET),
    datasetFile: "mem.jsonl",
    tokenizerJsonBytes: enc.encode(files.tokenizerJson),
    tokenizerConfigBytes: enc.encode(files.tokenizerConfigJson),
    options: { seqLen: 64 },
  });
  const inline = await buildTokenCache(job());
  const viaWorker = await tokenizeInWorker(job());
  assert.deepEqual(viaWorker, inline);
  const cache = decodeTokenCache(viaWorker);
  // Reference: the same pipeline called directly with the tokenizer in this thread.
  const tok = await loadTokenizer(files);
  const { examples, stats } = tokenizeDataset(parseJsonl(DATASET, { file: "mem.jsonl" }), tok, {
    seqLen: 64,
  });
  assert.equal(cache.count, 4);
  assert.deepEqual(cache.meta.stats, stats);
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(cache.example(i).ids, examples[i].ids);
    assert.deepEqual(cache.example(i).targets, examples[i].targets);
  }
  assert.equal(cache.meta.vocabSize, 151665);
  assert.equal(cache.meta.options.defaultSystem, QWEN2_5_DEFAULT_SYSTEM);
  assert.equal(cache.meta.datasetSha256, await sha256Hex(enc.encode(DATASET)));
  // Errors from inside the worker come back with file and line.
  const broken = { ...job(), datasetBytes: enc.encode('{"text": "ok"}\n{"text": 1}\n') };
  await assert.rejects(tokenizeInWorker(broken), /mem\.jsonl:2: "text" must be a string/);
  // a long file reports its progress from the worker: every PROGRESS_EVERY records, then the end
  const long = { ...job(), datasetBytes: enc.encode('{"text": "one two"}\n'.repeat(2 * PROGRESS_EVERY + 5)) };
  const reports: string[] = [];
  await tokenizeInWorker(long, (done, total) => void reports.push(`${done}/${total}`));
  const n = 2 * PROGRESS_EVERY + 5;
  assert.deepEqual(reports, [`${PROGRESS_EVERY}/${n}`, `${2 * PROGRESS_EVERY}/${n}`, `${n}/${n}`]);
});

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "mesp_token_cache_" });
  const files = await qwenTokenizerFiles();
  await Deno.mkdir(`${dir}/model`);
  await Deno.writeTextFile(`${dir}/model/tokenizer.json`, files.tokenizerJson);
  await Deno.writeTextFile(`${dir}/model/tokenizer_config.json`, files.tokenizerConfigJson);
  await Deno.writeTextFile(`${dir}/train.jsonl`, DATASET);
  return dir;
}

Deno.test("token cache files: build, reuse, stale and corrupt rebuilds, atomic writes", async () => {
  const dir = await setup();
  try {
    const opts = {
      dataPath: `${dir}/train.jsonl`,
      tokenizerDir: `${dir}/model`,
      cacheDir: `${dir}/cache`,
      seqLen: 64,
    };
    const first = await loadOrBuildTokenCache(opts);
    assert.equal(first.built, true);
    assert.equal(first.reason, "no cache");
    assert.equal(first.cache.count, 4);
    assert.match(first.path, /\/cache\/train\.jsonl-[0-9a-f]{8}-T64\.tokcache$/);

    const again = await loadOrBuildTokenCache(opts);
    assert.deepEqual([again.built, again.reason, again.path], [false, "up to date", first.path]);
    assert.deepEqual(again.cache.ids, first.cache.ids);

    const noEos = await loadOrBuildTokenCache({ ...opts, appendEosToText: false });
    assert.deepEqual([noEos.built, noEos.reason, noEos.path], [true, "stale (options changed)", first.path]);

    // another sequence length is another file: switching back and forth tokenizes each length once
    const shorter = await loadOrBuildTokenCache({ ...opts, seqLen: 32 });
    assert.deepEqual([shorter.built, shorter.reason], [true, "no cache"]);
    assert.match(shorter.path, /-T32\.tokcache$/);
    // At 32 tokens the chat with the default system prompt has no assistant token left: dropped.
    assert.deepEqual([shorter.cache.meta.stats.records, shorter.cache.meta.stats.dropped], [4, 1]);
    const back = await loadOrBuildTokenCache({ ...opts, appendEosToText: false });
    assert.deepEqual([back.built, back.reason], [false, "up to date"]);

    await Deno.writeTextFile(`${dir}/train.jsonl`, DATASET + '{"text": "one more"}\n');
    const changed = await loadOrBuildTokenCache({ ...opts, seqLen: 32 });
    assert.deepEqual([changed.built, changed.reason, changed.cache.meta.stats.records], [
      true,
      "stale (dataset changed)",
      5,
    ]);

    const bytes = await Deno.readFile(changed.path);
    bytes[bytes.length - 3] ^= 0xff;
    await Deno.writeFile(changed.path, bytes);
    const repaired = await loadOrBuildTokenCache({ ...opts, seqLen: 32, isolation: "worker" });
    assert.equal(repaired.built, true);
    assert.match(repaired.reason, /^corrupt: .*checksum mismatch/);
    assert.deepEqual(repaired.cache.ids, changed.cache.ids);

    const names = [...Deno.readDirSync(`${dir}/cache`)].map((e) => e.name).sort();
    const base = (p: string) => p.slice(p.lastIndexOf("/") + 1);
    assert.deepEqual(names, [base(repaired.path), base(first.path)]); // one per length, no temp files left

    // A bad line fails the build in the child process with file and line, and leaves no temp file.
    await Deno.writeTextFile(`${dir}/train.jsonl`, '{"text": "a"}\n{"oops": 1}\n');
    await assert.rejects(loadOrBuildTokenCache(opts), /train\.jsonl:2: unknown record shape/);
    assert.equal([...Deno.readDirSync(`${dir}/cache`)].length, 2); // the two lengths' caches, nothing new
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("token cache: a dataset that is not UTF-8 is named with the line of its first bad bytes", async () => {
  const files = await qwenTokenizerFiles();
  const lines = DATASET.split("\n");
  const bytes = new Uint8Array([
    ...enc.encode(`${lines[0]}\n${lines[1]}\n{"text": "caf`),
    0xe9, // Latin-1 é: not UTF-8
    ...enc.encode(`"}\n${lines[3]}\n`),
  ]);
  await assert.rejects(
    buildTokenCache({
      datasetBytes: bytes,
      datasetFile: "latin1.jsonl",
      tokenizerJsonBytes: enc.encode(files.tokenizerJson),
      tokenizerConfigBytes: enc.encode(files.tokenizerConfigJson),
      options: { seqLen: 64 },
    }),
    /^Error: latin1\.jsonl:3: not valid UTF-8$/,
  );
  assert.equal(invalidUtf8Line(new Uint8Array([0x41, 0x0a, 0x0a, 0xff])), 3);
  assert.equal(invalidUtf8Line(new Uint8Array([0xc3])), 1); // cut off mid-character, no newline
});

Deno.test("token cache: no trained token within the sequence length is named as the caller names it", async () => {
  const files = await qwenTokenizerFiles();
  const job = (seqLenName?: string) =>
    buildTokenCache({
      // a chat's assistant turn starts well past its 4th token
      datasetBytes: enc.encode(DATASET.split("\n")[0] + "\n"),
      datasetFile: "chat.jsonl",
      tokenizerJsonBytes: enc.encode(files.tokenizerJson),
      tokenizerConfigBytes: enc.encode(files.tokenizerConfigJson),
      options: { seqLen: 4 },
      seqLenName,
    });
  await assert.rejects(job(), {
    message: "chat.jsonl: no example has a training target within the first 4 tokens (seqLen)",
  });
  await assert.rejects(job("Sequence length"), {
    message: "chat.jsonl: no example has a training target within the first 4 tokens (Sequence length)",
  });
});
