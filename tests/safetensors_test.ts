import assert from "node:assert/strict";
import { bytesSource, memoryFiles, type WeightSource } from "../src/io/source.ts";
import {
  encodeSafetensors,
  encodeSafetensorsHeader,
  openCheckpoint,
  readSafetensorsHeader,
  readTensorBytes,
  readTensorF32,
  writeSafetensors,
} from "../src/model/safetensors.ts";

// Byte-exact vectors from the reference Rust unit tests (huggingface/safetensors safetensors/src/tensor.rs,
// test_serialization, test_serialization_forced_alignement, test_empty).
const RUST_ATTN_0 = [
  64,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  123,
  34,
  97,
  116,
  116,
  110,
  46,
  48,
  34,
  58,
  123,
  34,
  100,
  116,
  121,
  112,
  101,
  34,
  58,
  34,
  70,
  51,
  50,
  34,
  44,
  34,
  115,
  104,
  97,
  112,
  101,
  34,
  58,
  91,
  49,
  44,
  50,
  44,
  51,
  93,
  44,
  34,
  100,
  97,
  116,
  97,
  95,
  111,
  102,
  102,
  115,
  101,
  116,
  115,
  34,
  58,
  91,
  48,
  44,
  50,
  52,
  93,
  125,
  125,
  0,
  0,
  0,
  0,
  0,
  0,
  128,
  63,
  0,
  0,
  0,
  64,
  0,
  0,
  64,
  64,
  0,
  0,
  128,
  64,
  0,
  0,
  160,
  64,
];
const RUST_ATTN0_ALIGNED = [
  72,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  123,
  34,
  97,
  116,
  116,
  110,
  48,
  34,
  58,
  123,
  34,
  100,
  116,
  121,
  112,
  101,
  34,
  58,
  34,
  70,
  51,
  50,
  34,
  44,
  34,
  115,
  104,
  97,
  112,
  101,
  34,
  58,
  91,
  49,
  44,
  49,
  44,
  50,
  44,
  51,
  93,
  44,
  34,
  100,
  97,
  116,
  97,
  95,
  111,
  102,
  102,
  115,
  101,
  116,
  115,
  34,
  58,
  91,
  48,
  44,
  50,
  52,
  93,
  125,
  125,
  32,
  32,
  32,
  32,
  32,
  32,
  32,
  0,
  0,
  0,
  0,
  0,
  0,
  128,
  63,
  0,
  0,
  0,
  64,
  0,
  0,
  64,
  64,
  0,
  0,
  128,
  64,
  0,
  0,
  160,
  64,
];
const RUST_EMPTY = [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32];
const RUST_EMPTY_METADATA = [
  40,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  123,
  34,
  95,
  95,
  109,
  101,
  116,
  97,
  100,
  97,
  116,
  97,
  95,
  95,
  34,
  58,
  123,
  34,
  102,
  114,
  97,
  109,
  101,
  119,
  111,
  114,
  107,
  34,
  58,
  34,
  112,
  116,
  34,
  125,
  125,
  32,
  32,
  32,
  32,
  32,
];

const ZERO_TO_FIVE = new Float32Array([0, 1, 2, 3, 4, 5]);

Deno.test("writer reproduces the reference Rust test vectors byte for byte", () => {
  assert.deepEqual(
    [...encodeSafetensors([{ name: "attn.0", dtype: "F32", shape: [1, 2, 3], data: ZERO_TO_FIVE }])],
    RUST_ATTN_0,
  );
  assert.deepEqual(
    [...encodeSafetensors([{ name: "attn0", dtype: "F32", shape: [1, 1, 2, 3], data: ZERO_TO_FIVE }])],
    RUST_ATTN0_ALIGNED,
  );
  assert.deepEqual([...encodeSafetensors([])], RUST_EMPTY);
  assert.deepEqual([...encodeSafetensors([], { framework: "pt" })], RUST_EMPTY_METADATA);
});

Deno.test("reader parses the reference Rust test vectors", async () => {
  const a = await readSafetensorsHeader(bytesSource(new Uint8Array(RUST_ATTN_0), "attn_0"));
  assert.deepEqual(a.tensors.get("attn.0"), {
    name: "attn.0",
    dtype: "F32",
    shape: [1, 2, 3],
    offset: 72,
    byteLength: 24,
  });
  assert.deepEqual([...await readTensorF32(a, "attn.0")], [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(a.metadata, {});

  const b = await readSafetensorsHeader(bytesSource(new Uint8Array(RUST_ATTN0_ALIGNED)));
  assert.equal(b.dataOffset, 80);
  assert.equal(b.tensors.get("attn0")!.offset % 8, 0);
  assert.deepEqual([...await readTensorF32(b, "attn0")], [0, 1, 2, 3, 4, 5]);

  const e = await readSafetensorsHeader(bytesSource(new Uint8Array(RUST_EMPTY)));
  assert.equal(e.tensors.size, 0);
  const m = await readSafetensorsHeader(bytesSource(new Uint8Array(RUST_EMPTY_METADATA)));
  assert.deepEqual(m.metadata, { framework: "pt" });
});

Deno.test("writer orders tensors by dtype alignment descending, then name, and pads to 8", () => {
  const header = encodeSafetensorsHeader([
    { name: "b", dtype: "BF16", shape: [1] },
    { name: "w", dtype: "U8", shape: [3] },
    { name: "a", dtype: "BF16", shape: [2] },
    { name: "q", dtype: "U32", shape: [1] },
    { name: "h", dtype: "F16", shape: [] },
    { name: "z", dtype: "F32", shape: [0] },
  ], { format: "pt" });
  // Hand-written: F32 > U32 > BF16 (a, b) > F16 > U8.
  const json = `{"__metadata__":{"format":"pt"},"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},` +
    `"q":{"dtype":"U32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},` +
    `"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},"h":{"dtype":"F16","shape":[],"data_offsets":[10,12]},` +
    `"w":{"dtype":"U8","shape":[3],"data_offsets":[12,15]}}`;
  const padded = json + " ".repeat((8 - json.length % 8) % 8);
  assert.equal(new TextDecoder().decode(header.bytes.subarray(8)), padded);
  assert.equal(new DataView(header.bytes.buffer).getBigUint64(0, true), BigInt(padded.length));
  assert.deepEqual(header.tensors.map((t) => t.name), ["z", "q", "a", "b", "h", "w"]);
  assert.equal(header.fileSize, 8 + padded.length + 15);
});

Deno.test("writer rejects duplicate names, bad dtypes, data of the wrong size", async () => {
  assert.throws(
    () =>
      encodeSafetensorsHeader([{ name: "x", dtype: "F32", shape: [1] }, {
        name: "x",
        dtype: "F16",
        shape: [1],
      }]),
    /tensor "x": duplicate name/,
  );
  assert.throws(
    () => encodeSafetensorsHeader([{ name: "x", dtype: "F12" as "F32", shape: [1] }]),
    /unknown dtype "F12"/,
  );
  assert.throws(
    () => encodeSafetensorsHeader([{ name: "__metadata__", dtype: "F32", shape: [1] }]),
    /reserved/,
  );
  assert.throws(
    () => encodeSafetensors([{ name: "w", dtype: "F32", shape: [2, 2], data: new Float32Array(3) }]),
    /tensor "w" has 12 bytes of data but shape \[2,2\] × F32 needs 16/,
  );
  await assert.rejects(
    writeSafetensors({ write: () => Promise.resolve() }, [{
      name: "w",
      dtype: "BF16",
      shape: [4],
      data: () => new Uint8Array(7),
    }]),
    /tensor "w" has 7 bytes/,
  );
});

Deno.test("writeSafetensors streams lazily in file order and the reader reads it back", async () => {
  const calls: string[] = [];
  const chunks: Uint8Array[] = [];
  const sink = {
    write(chunk: Uint8Array) {
      chunks.push(chunk.slice());
      return Promise.resolve();
    },
  };
  const size = await writeSafetensors(sink, [
    {
      name: "norm",
      dtype: "BF16",
      shape: [2],
      data: () => (calls.push("norm"), new Uint16Array([0x3f80, 0xc000])),
    },
    {
      name: "big",
      dtype: "F32",
      shape: [2, 3],
      data: () => Promise.resolve((calls.push("big"), new Float32Array([1, 2, 3, 4, 5, 6]))),
    },
    { name: "half", dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0x3555]) },
    { name: "packed", dtype: "U32", shape: [1], data: new Uint32Array([0x76543210]) },
  ], { format: "pt" });
  assert.deepEqual(calls, ["big", "norm"]); // F32 first, then U32, BF16, F16
  assert.equal(chunks.length, 5);
  const bytes = new Uint8Array(size);
  let pos = 0;
  for (const c of chunks) bytes.set(c, (pos += c.length) - c.length);
  assert.equal(pos, size);

  const st = await readSafetensorsHeader(bytesSource(bytes, "streamed.safetensors"));
  assert.deepEqual(st.metadata, { format: "pt" });
  assert.deepEqual([...await readTensorF32(st, "big")], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...await readTensorF32(st, "norm")], [1, -2]);
  assert.deepEqual([...await readTensorF32(st, "half")], [1, 0.333251953125]);
  assert.deepEqual([...await readTensorBytes(st, "packed")], [0x10, 0x32, 0x54, 0x76]);
  for (const info of st.tensors.values()) assert.equal(info.offset % 4, 0, `${info.name} aligned`);

  const into = new Float32Array(2);
  assert.equal(await readTensorF32(st, "norm", into), into);
  await assert.rejects(
    readTensorF32(st, "packed"),
    /tensor "packed" has dtype U32; readTensorF32 reads F32, F16 and BF16/,
  );
  await assert.rejects(
    readTensorF32(st, "big", new Float32Array(5)),
    /tensor "big" has 6 elements, buffer has 5/,
  );
  await assert.rejects(
    readTensorBytes(st, "big", new Uint8Array(23)),
    /tensor "big" has 24 bytes, buffer has 23/,
  );
  await assert.rejects(readTensorBytes(st, "nope"), /streamed.safetensors: no tensor "nope"/);
});

Deno.test("readTensorBytes fills a view into WebAssembly memory", async () => {
  const file = encodeSafetensors([{
    name: "w",
    dtype: "BF16",
    shape: [3],
    data: new Uint16Array([1, 2, 3]),
  }]);
  const st = await readSafetensorsHeader(bytesSource(file));
  const memory = new WebAssembly.Memory({ initial: 1 });
  const slot = new Uint8Array(memory.buffer, 1000, 6);
  await readTensorBytes(st, "w", slot);
  assert.deepEqual([...new Uint16Array(memory.buffer, 1000, 3)], [1, 2, 3]);
});

Deno.test("readSafetensorsHeader reads only the length and the header, never tensor data", async () => {
  const big = new Float32Array(100_000);
  const file = encodeSafetensors([{ name: "w", dtype: "F32", shape: [100_000], data: big }]);
  const reads: [number, number][] = [];
  const inner = bytesSource(file);
  const counting: WeightSource = {
    name: "counting",
    size: () => inner.size(),
    read(offset, into) {
      reads.push([offset, into.length]);
      return inner.read(offset, into);
    },
  };
  const st = await readSafetensorsHeader(counting);
  const total = reads.reduce((s, [, n]) => s + n, 0);
  assert.equal(total, st.dataOffset);
  assert.ok(total < 200, `read ${total} bytes`);
});

// --- validation --------------------------------------------------------------------------------------

/** A file with the given header text (padded like the writer) followed by `dataBytes` zero bytes. */
function fileWith(header: string, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const n = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + n + dataBytes);
  new DataView(out.buffer).setUint32(0, n, true);
  out.fill(0x20, 8, 8 + n);
  out.set(json, 8);
  return out;
}

async function rejects(bytes: Uint8Array, pattern: RegExp): Promise<void> {
  await assert.rejects(readSafetensorsHeader(bytesSource(bytes, "bad.safetensors")), (err: Error) => {
    assert.match(err.message, /^safetensors bad\.safetensors: /);
    assert.match(err.message, pattern);
    return true;
  });
}

const t = (dtype: string, shape: number[], begin: number, end: number) =>
  JSON.stringify({ dtype, shape, data_offsets: [begin, end] });

Deno.test("validation: length prefix and header size", async () => {
  await rejects(new Uint8Array(5), /file too small \(5 bytes/);
  const tooBig = new Uint8Array(16);
  new DataView(tooBig.buffer).setUint32(0, 100_000_001, true);
  await rejects(tooBig, /header length 100000001 exceeds the maximum 100000000/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setUint32(4, 1, true); // 2^32
  await rejects(huge, /header length 4294967296 exceeds the maximum/);
  const beyond = fileWith(`{"a":${t("F32", [1], 0, 4)}}`, 4);
  new DataView(beyond.buffer).setUint32(0, beyond.length, true);
  await rejects(beyond, new RegExp(`header length ${beyond.length} runs past the end of the file`));
});

Deno.test("validation: header text", async () => {
  const badUtf8 = fileWith(`{"a":1}`, 0);
  badUtf8[10] = 0xff;
  await rejects(badUtf8, /header is not valid UTF-8/);
  await rejects(fileWith(`{"a":`, 0), /header is not valid JSON/);
  await rejects(fileWith(`[1,2]`, 0), /header is not a JSON object/);
  await rejects(fileWith(`{"a":${t("F32", [1], 0, 4)},"a":${t("F32", [1], 4, 8)}}`, 8), /duplicate key "a"/);
  await rejects(
    fileWith(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4),
    /duplicate key "dtype"/,
  );
  await rejects(fileWith(`{"__metadata__":{"format":1}}`, 0), /__metadata__\["format"\] must be a string/);
  await rejects(fileWith(`{"__metadata__":[1]}`, 0), /__metadata__ must be an object/);
});

Deno.test("validation: tensor entries", async () => {
  await rejects(fileWith(`{"w.0":${t("F12", [1], 0, 4)}}`, 4), /tensor "w\.0": unknown dtype "F12"/);
  await rejects(fileWith(`{"w":{"shape":[1],"data_offsets":[0,4]}}`, 4), /tensor "w": missing dtype/);
  await rejects(
    fileWith(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4),
    /tensor "w": shape must be/,
  );
  await rejects(
    fileWith(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, 4),
    /tensor "w": data_offsets must be/,
  );
  await rejects(
    fileWith(`{"w":${t("F32", [1], 4, 0)}}`, 4),
    /tensor "w": data_offsets end 0 is before begin 4/,
  );
  await rejects(fileWith(`{"w":7}`, 0), /tensor "w": expected \{dtype, shape, data_offsets\}/);
  await rejects(
    fileWith(`{"w":${t("F4", [3], 0, 1)}}`, 1),
    /tensor "w": shape \[3\] of F4 is not a whole number of bytes/,
  );
});

Deno.test("validation: offsets must tile the data buffer", async () => {
  await rejects(
    fileWith(`{"a":${t("F32", [1], 0, 4)},"b":${t("F32", [1], 8, 12)}}`, 12),
    /tensor "b": gap in the data buffer: begins at 8 but the previous tensor ends at 4/,
  );
  await rejects(
    fileWith(`{"b":${t("F32", [1], 4, 8)}}`, 8),
    /tensor "b": gap in the data buffer: begins at 4 but the previous tensor ends at 0/,
  );
  await rejects(
    fileWith(`{"a":${t("F32", [2], 0, 8)},"b":${t("F32", [2], 4, 12)}}`, 12),
    /tensor "b": overlaps tensor "a"/,
  );
  await rejects(
    fileWith(`{"a":${t("BF16", [2, 3], 0, 24)}}`, 24),
    /tensor "a": data_offsets span 24 bytes but shape \[2,3\] × BF16 needs 12 bytes/,
  );
  await rejects(fileWith(`{"a":${t("F32", [1], 0, 4)}}`, 7), /3 trailing bytes after the last tensor/);
  const good = fileWith(`{"a":${t("F32", [4], 0, 16)}}`, 16);
  await rejects(
    good.subarray(0, good.length - 4),
    /file truncated: tensor data ends at byte \d+ but the file has/,
  );
  // Zero-size tensors and scalars are valid.
  const ok = await readSafetensorsHeader(
    bytesSource(
      fileWith(`{"e":${t("F32", [0, 5], 0, 0)},"s":${t("F64", [], 0, 8)},"f":${t("F4", [2], 8, 9)}}`, 9),
    ),
  );
  assert.deepEqual([...ok.tensors.keys()], ["e", "s", "f"]);
});

// --- sharded checkpoints -----------------------------------------------------------------------------

function shardedModel() {
  const shard1 = encodeSafetensors([
    { name: "model.embed_tokens.weight", dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    { name: "model.norm.weight", dtype: "BF16", shape: [2], data: new Uint16Array([0x3f80, 0x4000]) },
  ], { format: "pt" });
  const shard2 = encodeSafetensors([
    {
      name: "model.layers.0.mlp.up_proj.weight",
      dtype: "F16",
      shape: [2],
      data: new Uint16Array([0x3c00, 0xc000]),
    },
  ], { format: "pt" });
  const index = {
    metadata: { total_size: 16 + 4 + 4, total_parameters: 8 },
    weight_map: {
      "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
      "model.norm.weight": "model-00001-of-00002.safetensors",
      "model.layers.0.mlp.up_proj.weight": "model-00002-of-00002.safetensors",
    },
  };
  return { shard1, shard2, index };
}

Deno.test("openCheckpoint: sharded round trip", async () => {
  const { shard1, shard2, index } = shardedModel();
  const files = memoryFiles({
    "model.safetensors.index.json": JSON.stringify(index),
    "model-00001-of-00002.safetensors": shard1,
    "model-00002-of-00002.safetensors": shard2,
  }, { name: "sharded" });
  const ckpt = await openCheckpoint(files);
  assert.deepEqual(ckpt.names(), [
    "model.embed_tokens.weight",
    "model.layers.0.mlp.up_proj.weight",
    "model.norm.weight",
  ]);
  assert.deepEqual([...ckpt.files.keys()].sort(), [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
  ]);
  const read = async (name: string) => {
    const { file, info } = ckpt.get(name);
    return [...await readTensorF32(file, info.name)];
  };
  assert.deepEqual(await read("model.embed_tokens.weight"), [1, 2, 3, 4]);
  assert.deepEqual(await read("model.norm.weight"), [1, 2]);
  assert.deepEqual(await read("model.layers.0.mlp.up_proj.weight"), [1, -2]);
  assert.equal(
    ckpt.get("model.layers.0.mlp.up_proj.weight").file.source.name,
    "sharded/model-00002-of-00002.safetensors",
  );
  assert.ok(ckpt.has("model.norm.weight"));
  assert.ok(!ckpt.has("lm_head.weight"));
  assert.throws(() => ckpt.get("lm_head.weight"), /missing tensor "lm_head.weight" in sharded/);
  ckpt.close();
});

Deno.test("openCheckpoint: single file preferred; missing files and bad indexes are clear errors", async () => {
  const { shard1, shard2, index } = shardedModel();
  const single = await openCheckpoint(
    memoryFiles({ "model.safetensors": shard1, "model.safetensors.index.json": "{" }),
  );
  assert.deepEqual(single.names(), ["model.embed_tokens.weight", "model.norm.weight"]);

  await assert.rejects(
    openCheckpoint(memoryFiles({ "config.json": "{}" }, { name: "empty" })),
    /no model\.safetensors or model\.safetensors\.index\.json in empty/,
  );
  await assert.rejects(
    openCheckpoint(memoryFiles({
      "model.safetensors.index.json": JSON.stringify(index),
      "model-00001-of-00002.safetensors": shard1,
    }, { name: "half" })),
    /shard "model-00002-of-00002\.safetensors" named in model\.safetensors\.index\.json is missing in half/,
  );
  const wrongShard = structuredClone(index);
  wrongShard.weight_map["model.norm.weight"] = "model-00002-of-00002.safetensors";
  await assert.rejects(
    openCheckpoint(memoryFiles({
      "model.safetensors.index.json": JSON.stringify(wrongShard),
      "model-00001-of-00002.safetensors": shard1,
      "model-00002-of-00002.safetensors": shard2,
    }, { name: "m" })),
    /m\/model\.safetensors\.index\.json maps tensor "model\.norm\.weight" to "model-00002-of-00002\.safetensors", which does not contain it/,
  );
  await assert.rejects(
    openCheckpoint(memoryFiles({ "model.safetensors.index.json": "{nope" }, { name: "m" })),
    /m\/model\.safetensors\.index\.json: invalid JSON/,
  );
  await assert.rejects(
    openCheckpoint(memoryFiles({ "model.safetensors.index.json": `{"metadata":{}}` }, { name: "m" })),
    /weight_map must be an object/,
  );
  await assert.rejects(
    openCheckpoint(
      memoryFiles({ "model.safetensors.index.json": `{"weight_map":{"w":"../secret.safetensors"}}` }),
    ),
    /weight_map\["w"\] = "\.\.\/secret\.safetensors" is not a plain file name/,
  );
  // A corrupt shard reports the shard's name.
  await assert.rejects(
    openCheckpoint(memoryFiles({
      "model.safetensors.index.json": JSON.stringify(index),
      "model-00001-of-00002.safetensors": shard1,
      "model-00002-of-00002.safetensors": shard2.subarray(0, shard2.length - 1),
    }, { name: "m" })),
    /safetensors m\/model-00002-of-00002\.safetensors: file truncated/,
  );
});
