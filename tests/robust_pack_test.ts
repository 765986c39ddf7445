// Root cause 5: stale or corrupt weight packs. The fingerprint covers every byte of the checkpoint (hashed
// once, again only when size or mtime change), and every pack block carries a checksum checked when read.
import { assert, assertEquals } from "./_assert.ts";
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
import { Checksum, checksumHex } from "../src/io/checksum.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { readPackHeader } from "../src/model/pack_header.ts";
import { readSafetensorsHeader } from "../src/model/safetensors.ts";

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

Deno.test("pack: a flipped byte in a pack's layer, MLP chunk or norm is named when read; nothing changes", async () => {
  const model = await copyCase("gqa_tied_f32", `${tmp}/flipped`);
  const cache = `${tmp}/cache-flip`;
  assertEquals((await mesp(cache, ...evalArgs(model))).code, 0);
  const path = packOf(cache);
  const good = await Deno.readFile(path);
  const src = fileSource(path);
  const header = await readPackHeader(src, good.length);
  src.close?.();
  const cases: [string, number, RegExp][] = [
    ["attention", header.layers[1].offset + 100, /layer 1 attention block fails its checksum/],
    ["mlp", header.layers[0].offset + header.layers[0].bytes - 200, /layer 0 MLP chunk 0 fails its checksum/],
    ["norm", header.norm.offset + 8, /the final norm fails its checksum/],
  ];
  for (const [what, offset, want] of cases) {
    const bad = good.slice();
    bad[offset] ^= 0x04;
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
});

Deno.test("pack: cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
