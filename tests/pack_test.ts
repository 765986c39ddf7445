// Weight packs: every way a pack file can be refused (a stale, foreign, truncated or corrupt pack is a
// StalePackError so callers rebuild it; a wrong buffer or row range is a plain error), every way writing one
// can be refused, and a readable pack whose matrices are the checkpoint's rows.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import { caseDir } from "./_golden.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { bytesSource } from "../src/io/source.ts";
import { type ModelConfig, parseModelConfig } from "../src/model/config.ts";
import { openPack } from "../src/model/pack.ts";
import { encodePackHeader, StalePackError } from "../src/model/pack_header.ts";
import { layerLayout } from "../src/model/pack_layout.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { Checksum } from "../src/io/checksum.ts";
import { checkpointFingerprint } from "../src/model/checkpoint_fingerprint.ts";
import { type Checkpoint, openCheckpoint, readTensorF32 } from "../src/model/safetensors.ts";

async function golden(name: string): Promise<{ cfg: ModelConfig; ckpt: Checkpoint }> {
  const files = dirFiles(caseDir(name));
  const cfg = parseModelConfig(JSON.parse((await files.readText("config.json"))!), { file: name });
  return { cfg, ckpt: await openCheckpoint(files) };
}

/** The pack of a golden case as bytes (f32 unless told). */
async function packBytes(name: string, format: "f32" | "q4" = "f32", cfgEdit?: Partial<ModelConfig>) {
  const { cfg, ckpt } = await golden(name);
  const chunks: Uint8Array[] = [];
  try {
    await writePack(ckpt, { ...cfg, ...cfgEdit }, {
      write: (c) => (chunks.push(c.slice()), Promise.resolve()),
    }, { format, fingerprint: `fp-${name}` });
  } finally {
    ckpt.close();
  }
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) (bytes.set(c, at), at += c.length);
  return bytes;
}

const good = await packBytes("gqa_tied_f32");
const open = (bytes: Uint8Array, options = {}) => openPack(bytesSource(bytes, "t.pack"), options);

/** `bytes` with the ASCII text `from` in the header replaced by `to` (same length). */
function editHeader(bytes: Uint8Array, from: string, to: string): Uint8Array {
  assertEquals(from.length, to.length);
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 8192));
  const at = text.indexOf(from);
  assert(at > 0, `header holds ${from}`);
  const out = bytes.slice();
  out.set(new TextEncoder().encode(to), at);
  return out;
}

Deno.test("openPack refuses what is not a current, complete pack of the expected weights and format", async () => {
  const u32At = (offset: number, value: number) => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(offset, value, true);
    return b;
  };
  const magic = good.slice();
  magic[0] = "X".charCodeAt(0);
  const cases: [string, Uint8Array, Record<string, string>, RegExp][] = [
    ["too short", good.slice(0, 10), {}, /t\.pack: not a mesp pack \(too short: 10 bytes\)/],
    ["another magic", magic, {}, /t\.pack: not a mesp pack$/],
    ["another version", u32At(8, 2), {}, /t\.pack: pack version 2/],
    ["header longer than the file", u32At(12, good.length), {}, /t\.pack: truncated header/],
    ["header not JSON", editHeader(good, '{"version"', '{"version '), {}, /t\.pack: corrupt header/],
    [
      "file cut short",
      good.slice(0, good.length - 64),
      {},
      new RegExp(`file is ${good.length - 64} bytes, header says ${good.length} \\(truncated\\?\\)`),
    ],
    ["other weights", good, { fingerprint: "fp-other" }, /made from different weights than/],
    ["another format", good, { format: "q4" }, /t\.pack: format f32, wanted q4/],
    [
      "a layout this version would not write",
      editHeader(good, '"numLayers":2', '"numLayers":1'),
      {},
      /t\.pack: layout does not match this version of mesp/,
    ],
  ];
  for (const [what, bytes, options, message] of cases) {
    const err = await assertRejects(() => open(bytes, options), message);
    assert(err instanceof StalePackError, `${what}: a StalePackError, so the caller rebuilds the pack`);
  }
  // the same bytes with matching expectations open
  const pack = await open(good, { fingerprint: "fp-gqa_tied_f32", format: "f32" });
  assertEquals(pack.header.format, "f32");
});

Deno.test("an opened pack refuses buffers of the wrong size and rows outside the vocabulary", async () => {
  const pack = await open(good);
  const { layout } = pack;
  await assertRejects(
    () => pack.readLayer(0, new Uint8Array(layout.bytes - 1)),
    `layer buffer is ${layout.bytes - 1} bytes, need ${layout.bytes}`,
  );
  await assertRejects(
    () => pack.readAttention(0, new Uint8Array(layout.attentionBytes + 64)),
    `attention buffer must be ${layout.attentionBytes} bytes`,
  );
  await assertRejects(
    () => pack.readMlpChunk(0, 0, new Uint8Array(1)),
    `MLP chunk 0 buffer must be ${layout.chunks[0].bytes} bytes`,
  );
  const row = new Uint8Array(pack.vocabSlot.rowBytes);
  const V = pack.config.vocabSize;
  await assertRejects(() => pack.readVocabRows(V, V + 1, { data: row }), `vocabulary rows [${V}, ${V + 1})`);
  await assertRejects(
    () => pack.readVocabRows(0, 2, { data: row }),
    "do not fit the vocabulary or the buffer",
  );
  await assertRejects(() => pack.readVocabRows(0, 1, { data: row }, true), "no separate LM head");
});

Deno.test("an opened pack reads the checkpoint's rows: layer 1's q_proj and an embedding row (f32)", async () => {
  const pack = await open(good);
  const { ckpt } = await golden("gqa_tied_f32");
  try {
    const q = await readTensorF32(
      ckpt.get("model.layers.1.self_attn.q_proj.weight").file,
      "model.layers.1.self_attn.q_proj.weight",
    );
    const attn = new Uint8Array(pack.layout.attentionBytes);
    await pack.readAttention(1, attn);
    const slot = pack.layout.attention.q_proj;
    assertEquals(new Float32Array(attn.buffer, slot.offset, slot.rows * slot.cols), q);
    const e = await readTensorF32(ckpt.get("model.embed_tokens.weight").file, "model.embed_tokens.weight");
    const d = pack.config.hiddenSize, row = new Uint8Array(d * 4);
    await pack.readVocabRows(7, 8, { data: row });
    assertEquals(new Float32Array(row.buffer), e.subarray(7 * d, 8 * d));
  } finally {
    ckpt.close();
  }
});

Deno.test("writing a pack refuses shapes the format cannot hold and checkpoints that do not match the config", async () => {
  // q4 groups rows by 64 columns; this model's down_proj has 96
  await assertRejects(
    () => packBytes("gqa_tied_f32", "q4"),
    "q4 weights need every input dimension to be a multiple of 64, but a matrix has 96 columns",
  );
  await assertRejects(
    () => packBytes("gqa_tied_f32", "f32", { vocabSize: 300 }),
    /model\.embed_tokens\.weight in .*gqa_tied_f32 has shape \[256,64\], expected \[300, 64\]/,
  );
  await assertRejects(() => packBytes("gqa_tied_f32", "f32", { numLayers: 3 }), /model\.layers\.2\./);
  const { cfg, ckpt } = await golden("gqa_tied_f32");
  ckpt.close();
  await assertRejects(
    () => layerLayout(cfg, "f32", false, 100),
    "MLP chunk must be a multiple of 64, got 100",
  );
  const header = (await open(good)).header;
  await assertRejects(
    () => encodePackHeader({ ...header, embed: { offset: 64, bytes: header.embed.bytes } }),
    /pack header too large \(\d+ bytes\)/,
  );
});

Deno.test("writePack reads each byte of the checkpoint once, however many MLP chunks (a URL's model is downloaded once)", async () => {
  // the chunks' contents are checked against PyTorch by forward_test and grad_test (mlpChunk 64)
  for (
    const [name, format] of [["gqa_tied_f32", "f32"], ["gqa_tied_f32", "bf16"], ["mlx_q4", "q4"], [
      "mlx_q4",
      "f32",
    ]] as const
  ) {
    const files = dirFiles(caseDir(name));
    const cfg = parseModelConfig(JSON.parse((await files.readText("config.json"))!));
    const ckpt = await openCheckpoint(files);
    let read = 0, size = 0;
    for (const f of ckpt.files.values()) {
      size += await f.source.size();
      const plain = f.source.read.bind(f.source);
      f.source.read = (offset, into) => (read += into.length, plain(offset, into));
    }
    const chunks = layerLayout(cfg, format, false, 64).chunks.length;
    assert(chunks >= 2, `${name}: ${chunks} MLP chunks`);
    const pack = async (heldColumnsBytes?: number) => {
      const sum = new Checksum();
      read = 0;
      const options = { format, fingerprint: name, mlpChunk: 64, heldColumnsBytes };
      await writePack(ckpt, cfg, { write: (b) => (sum.update(b), Promise.resolve()) }, options);
      return { sum: sum.hex(), read };
    };
    const held = await pack(), reread = await pack(0);
    ckpt.close();
    assert(held.read <= size, `${name} → ${format}: read ${held.read} bytes of a ${size}-byte checkpoint`);
    assert(reread.read > size, `${name} → ${format}: the down projection read again per chunk`);
    assertEquals(held.sum, reread.sum, `${name} → ${format}: the same pack either way`);
  }
});

Deno.test("checkpointFingerprint reports its progress over every byte, and the fingerprint is the same with it", async () => {
  const files = dirFiles(caseDir("mqa_f16_sharded"));
  const ckpt = await openCheckpoint(files);
  let size = 0;
  for (const f of ckpt.files.values()) size += await f.source.size();
  const seen: [number, number][] = [];
  const withProgress = await checkpointFingerprint(files, ckpt, undefined, {
    onProgress: (done, total) => seen.push([done, total]),
  });
  assertEquals(withProgress, await checkpointFingerprint(files, ckpt));
  ckpt.close();
  assert(seen.length >= ckpt.files.size, `a report per read at least (${seen.length})`);
  assertEquals(seen.at(-1), [size, size]);
  assert(seen.every(([d], i) => i === 0 || d > seen[i - 1][0]), "done only grows");
});
