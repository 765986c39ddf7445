// Root cause 5: stale or corrupt weight packs. The fingerprint covers every byte of the checkpoint (hashed
// once, again only when size or mtime change), and every pack block carries a checksum checked when read.
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  assertFails,
  assertUnchanged,
  copyCase,
  f32Bytes,
  idsData,
  mesp,
  patchTensor,
  snapshot,
} from "./_robust.ts";
import { caseDir } from "./_golden.ts";
import { Checksum, checksumHex } from "../src/io/checksum.ts";
import { dirFiles, fileSource, writeFileAtomic } from "../src/io/deno_files.ts";
import { bytesSource } from "../src/io/source.ts";
import { openPack, type VocabRowViews } from "../src/model/pack.ts";
import { readModelConfig } from "../src/model/pack_files.ts";
import { type PackHeader as Header, readPackHeader } from "../src/model/pack_header.ts";
import type { PackFormat } from "../src/model/pack_layout.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openCheckpoint, readSafetensorsHeader } from "../src/model/safetensors.ts";

const tmp = await Deno.makeTempDir({ prefix: "mesp-pack-" });
const data = await idsData(`${tmp}/train.jsonl`);
// without --json, so the status lines (hashing, packing) are printed
const evalArgs = (model: string) => ["eval", "--model", model, "--weights", "f32", "--data", data];
const nll = (stdout: string) => +/nll ([\d.]+)/.exec(stdout)![1];

Deno.test("pack: Checksum is split-independent and sees every flipped bit", () => {
  const bytes = new Uint8Array(4099).map((_, i) => (i * 2654435761) >>> 24);
  const whole = checksumHex(bytes);
  for (const cuts of [[1], [3, 5], [4, 8, 4000], [4098]]) {
    const c = new Checksum();
    let at = 0;
    for (const n of cuts) (c.update(bytes.subarray(at, at + n)), at += n);
    assertEquals(c.update(bytes.subarray(at)).hex(), whole, `cut at ${cuts}`);
  }
  // unaligned views hash like aligned copies
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  assertEquals(checksumHex(shifted.subarray(1)), whole);
  const seen = new Set([whole]);
  for (let bit = 0; bit < 8 * 64; bit++) {
    const b = bytes.slice(0, 64);
    const ref = checksumHex(bytes.subarray(0, 64));
    b[bit >> 3] ^= 1 << (bit & 7);
    const h = checksumHex(b);
    assert(h !== ref && !seen.has(h), `bit ${bit}`);
    seen.add(h);
  }
  assert(
    checksumHex(bytes.subarray(0, 8)) !== checksumHex(bytes.subarray(0, 8), new Uint8Array(1)),
    "length counts",
  );
});

Deno.test("pack: a checkpoint edited in place (one value, far from any sampled block) gets a new pack", async () => {
  const model = await copyCase("gqa_tied_f32", `${tmp}/edited`);
  const cache = `${tmp}/cache-edit`;
  const first = await mesp(cache, ...evalArgs(model));
  assertEquals(first.code, 0, first.stderr);
  assert(first.stderr.includes("hashing"), first.stderr);
  // unchanged: neither hashed nor packed again
  const again = await mesp(cache, ...evalArgs(model));
  assert(!again.stderr.includes("hashing") && !again.stderr.includes("packing"), again.stderr);
  assertEquals(nll(again.stdout), nll(first.stdout));
  // a new mtime, same bytes: hashed again, the same pack reused
  const file = `${model}/model.safetensors`;
  await Deno.utime(file, new Date(), new Date(Date.now() + 5000));
  const touched = await mesp(cache, ...evalArgs(model));
  assert(touched.stderr.includes("hashing") && !touched.stderr.includes("packing"), touched.stderr);
  // one weight changed in the middle of the largest tensor, between the blocks the old fingerprint sampled
  const st = await readSafetensorsHeader(fileSource(file));
  const big = [...st.tensors.values()].sort((a, b) => b.byteLength - a.byteLength)[0];
  const size = (await Deno.stat(file)).size, span = size - st.dataOffset;
  const at = st.dataOffset + Math.floor(span / 16) + 4096 + 256; // just past the second sample
  assert(at > big.offset && at < big.offset + big.byteLength - 4, "inside the tensor");
  await patchTensor(file, big.name, (at - big.offset) & ~3, f32Bytes(3.5));
  const edited = await mesp(cache, ...evalArgs(model));
  assertEquals(edited.code, 0, edited.stderr);
  assert(edited.stderr.includes("packing"), `a new pack is built:\n${edited.stderr}`);
  assert(nll(edited.stdout) !== nll(first.stdout), "and used");
});

/** The pack a model's eval built in `cache`. */
function packOf(cache: string): string {
  const names = [...Deno.readDirSync(`${cache}/packs`)].map((e) => e.name).filter((n) => n.endsWith(".pack"));
  assertEquals(names.length, 1);
  return `${cache}/packs/${names[0]}`;
}

/**
 * Evaluates golden case `name` once (building its pack in `cache`), then for each case flips one bit of the
 * byte at the offset `at` gives (from the pack's header) and checks that eval names the damaged block and
 * the pack to delete, and changes no file; the intact pack works again at the end.
 */
async function flippedPackCases(
  name: string,
  cache: string,
  cases: [string, (h: Header) => number, RegExp][],
) {
  const model = await copyCase(name, `${tmp}/${cache}-model`);
  assertEquals((await mesp(cache, ...evalArgs(model))).code, 0);
  const path = packOf(cache);
  const good = await Deno.readFile(path);
  const src = fileSource(path);
  const header = await readPackHeader(src, good.length);
  src.close?.();
  for (const [what, at, want] of cases) {
    const bad = good.slice();
    bad[at(header)] ^= 0x04;
    await Deno.writeFile(path, bad);
    const before = await snapshot(model, `${cache}/packs`);
    const r = await mesp(cache, ...evalArgs(model));
    assertFails(
      r,
      1,
      new RegExp(`${want.source}: the pack file is damaged; delete it and the next run rebuilds it`),
      what,
    );
    await assertUnchanged(before, what);
  }
  await Deno.writeFile(path, good);
  assertEquals((await mesp(cache, ...evalArgs(model))).code, 0, "the intact pack still works");
}

Deno.test("pack: a flipped byte in a pack's layer, MLP chunk, norm or embedding is named when read; nothing changes", async () => {
  // f32 rows of 64 columns: 256 bytes; the 256-row vocabulary is one block of the default 512 rows
  await flippedPackCases("gqa_tied_f32", `${tmp}/cache-flip`, [
    ["attention", (h) => h.layers[1].offset + 100, /layer 1 attention block fails its checksum/],
    ["mlp", (h) => h.layers[0].offset + h.layers[0].bytes - 200, /layer 0 MLP chunk 0 fails its checksum/],
    ["norm", (h) => h.norm.offset + 8, /the final norm fails its checksum/],
    [
      "embedding",
      (h) => h.embed.offset + 5 * 256 + 9,
      /the embedding rows \[0, 256\) fails its checksum/,
    ],
  ]);
});

Deno.test("pack: a flipped byte in an untied model's embedding row or LM-head row is named when read; nothing changes", async () => {
  // the embedding is read a token row at a time (its block then read whole), the LM head a chunk at a time
  await flippedPackCases("mha_untied_bf16", `${tmp}/cache-flip-untied`, [
    [
      "embedding",
      (h) => h.embed.offset + 200 * 256 + 3,
      /the embedding rows \[0, 256\) fails its checksum/,
    ],
    [
      "lm head",
      (h) => h.lmHead!.offset + 100 * 256 + 7,
      /the LM head rows \[0, 256\) fails its checksum/,
    ],
  ]);
});

/** The pack of golden case `name` in `format` with checksummed vocabulary blocks of 64 rows, as bytes. */
async function smallBlockPack(name: string, format: PackFormat): Promise<Uint8Array> {
  const dir = caseDir(name), path = `${tmp}/${name}-${format}-64.pack`;
  const ckpt = await openCheckpoint(dirFiles(dir));
  const cfg = await readModelConfig(dir);
  try {
    await writeFileAtomic(
      path,
      (sink) => writePack(ckpt, cfg, sink, { format, fingerprint: "fp", vocabBlock: 64 }).then(() => {}),
    );
  } finally {
    ckpt.close();
  }
  return await Deno.readFile(path);
}

Deno.test("pack: vocabulary rows are verified per block of rows (data, scales and biases stored together), however they are read", async () => {
  const V = 256, d = 64;
  // q4 rows: 32 bytes of data, 2 bytes each of scales and biases (one per 64 columns, kept from MLX), stored
  // together: 36 bytes a row
  const q4 = await smallBlockPack("mlx_q4", "q4");
  const f32 = await smallBlockPack("mha_untied_bf16", "f32");
  const rowBytes = { q4: { data: d / 2, scales: 2, biases: 2 }, f32: { data: d * 4, scales: 0, biases: 0 } };
  const open = async (bytes: Uint8Array, flip?: (h: Header) => number) => {
    const bad = bytes.slice();
    if (flip) bad[flip(await readPackHeader(bytesSource(bytes), bytes.length))] ^= 0x10;
    return await openPack(bytesSource(bad, "t.pack"));
  };
  /** Fresh buffers for rows [r0, r1). */
  const views = (format: "q4" | "f32", r0: number, r1: number): VocabRowViews => {
    const b = rowBytes[format], n = r1 - r0;
    return format === "q4"
      ? {
        data: new Uint8Array(n * b.data),
        scales: new Uint8Array(n * b.scales),
        biases: new Uint8Array(n * b.biases),
      }
      : { data: new Uint8Array(n * b.data) };
  };
  // intact: every row alone, concurrently (partly covered blocks share one buffer), then unaligned chunks
  for (const [bytes, format, heads] of [[q4, "q4", [false]], [f32, "f32", [false, true]]] as const) {
    for (const head of heads) {
      const pack = await open(bytes);
      await Promise.all(
        Array.from({ length: V }, (_, r) => pack.readVocabRows(r, r + 1, views(format, r, r + 1), head)),
      );
      const again = await open(bytes);
      for (let r0 = 0; r0 < V; r0 += 100) {
        await again.readVocabRows(r0, Math.min(V, r0 + 100), views(format, r0, Math.min(V, r0 + 100)), head);
      }
    }
  }
  // the q4 vocabulary section: 256 rows of 36 bytes (32 of data, 2 of scales, 2 of biases)
  const q4Row = (h: Header, r: number) => h.embed.offset + r * 36;
  const cases: {
    what: string;
    bytes: Uint8Array;
    format: "q4" | "f32";
    flip: (h: Header) => number;
    head?: boolean;
    /** Row ranges read without complaint first (other blocks), then the range that fails. */
    fine: [number, number][];
    fails: [number, number];
    want: RegExp;
  }[] = [
    {
      what: "q4 data, last row of a block, its first row read",
      bytes: q4,
      format: "q4",
      flip: (h) => q4Row(h, 127) + 31,
      fine: [[0, 64], [128, 256], [63, 64]],
      fails: [64, 65],
      want: /t\.pack: the embedding rows \[64, 128\) fails its checksum/,
    },
    {
      what: "q4 scales, read in an unaligned chunk",
      bytes: q4,
      format: "q4",
      flip: (h) => q4Row(h, 200) + 32,
      fine: [[0, 100], [100, 192]],
      fails: [150, 250],
      want: /t\.pack: the embedding rows \[192, 256\) fails its checksum/,
    },
    {
      what: "q4 biases, one row read",
      bytes: q4,
      format: "q4",
      flip: (h) => q4Row(h, 0) + 35,
      fine: [[64, 256]],
      fails: [3, 4],
      want: /t\.pack: the embedding rows \[0, 64\) fails its checksum/,
    },
    {
      what: "untied LM head, a whole block read; the embedding's same rows are intact",
      bytes: f32,
      format: "f32",
      flip: (h) => h.lmHead!.offset + 130 * 256,
      head: true,
      fine: [[0, 128], [192, 256]],
      fails: [128, 192],
      want: /t\.pack: the LM head rows \[128, 192\) fails its checksum/,
    },
  ];
  for (const c of cases) {
    const pack = await open(c.bytes, c.flip);
    for (const [r0, r1] of c.fine) await pack.readVocabRows(r0, r1, views(c.format, r0, r1), c.head);
    if (c.head) await pack.readVocabRows(0, V, views(c.format, 0, V)); // the embedding
    const [r0, r1] = c.fails;
    await assertRejects(() => pack.readVocabRows(r0, r1, views(c.format, r0, r1), c.head), c.want);
  }
});

Deno.test("pack: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
