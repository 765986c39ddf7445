// Pack v5 against the v4 writer: every layer and the final norm byte for byte, the vocabulary the same rows
// (data, scales, biases) only interleaved. The reference hashes were taken from v4 packs written by the
// writer before v5 (commit cb33fdc, tests/fixtures/pack_v4_sections.json).
import { assertEquals } from "./_assert.ts";
import { dirFiles } from "../src/io/deno_files.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { writePack } from "../src/model/pack_writer.ts";
import { openCheckpoint } from "../src/model/safetensors.ts";
import { caseDir } from "./_golden.ts";
import { type PackFormat, vocabSlot } from "../src/model/pack_layout.ts";

const REF: Record<string, {
  layers: string[];
  norm: string;
  embed: { data: string; scales?: string; biases?: string };
  lmHead?: { data: string; scales?: string; biases?: string };
}> = JSON.parse(await Deno.readTextFile(new URL("./fixtures/pack_v4_sections.json", import.meta.url)));

const sha = async (b: Uint8Array<ArrayBuffer>) =>
  Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", b)), (x) => x.toString(16).padStart(2, "0"))
    .join("");

Deno.test("pack v5: layers and norm equal the v4 writer's bytes; vocabulary rows are v4's, interleaved", async () => {
  for (const [key, ref] of Object.entries(REF)) {
    const [name, format, chunk] = key.split("/");
    const files = dirFiles(caseDir(name));
    const cfg = parseModelConfig(JSON.parse((await files.readText("config.json"))!), { file: "config.json" });
    const ckpt = await openCheckpoint(files);
    const parts: Uint8Array[] = [];
    const header = await writePack(ckpt, cfg, { write: (c) => (parts.push(c.slice()), Promise.resolve()) }, {
      format: format as PackFormat,
      fingerprint: name,
      mlpChunk: Number(chunk),
    });
    ckpt.close();
    const bytes: Uint8Array<ArrayBuffer> = new Uint8Array(header.fileBytes);
    let at = 0;
    for (const p of parts) (bytes.set(p, at), at += p.length);
    assertEquals(at, header.fileBytes, key);
    const got = await Promise.all(
      header.layers.map((l) => sha(bytes.subarray(l.offset, l.offset + l.bytes))),
    );
    assertEquals(got, ref.layers, `${key}: layers`);
    assertEquals(
      await sha(bytes.subarray(header.norm.offset, header.norm.offset + header.norm.bytes)),
      ref.norm,
    );
    // de-interleave by hand: row r's data, scales, biases at r·stride
    const v = vocabSlot(cfg.vocabSize, cfg.hiddenSize, format as PackFormat, header.bf16Scales);
    for (const [section, want] of [[header.embed, ref.embed], [header.lmHead, ref.lmHead]] as const) {
      if (!section || !want) {
        assertEquals(section === undefined, want === undefined, `${key}: LM head`);
        continue;
      }
      const part = (off: number, width: number) => {
        const out = new Uint8Array(cfg.vocabSize * width);
        for (let r = 0; r < cfg.vocabSize; r++) {
          const o = section.offset + r * v.rowStride + off;
          out.set(bytes.subarray(o, o + width), r * width);
        }
        return sha(out);
      };
      assertEquals(await part(0, v.rowBytes), want.data, `${key}: vocabulary data`);
      if (want.scales) {
        assertEquals(await part(v.rowBytes, v.scaleRowBytes), want.scales, `${key}: scales`);
        assertEquals(
          await part(v.rowBytes + v.scaleRowBytes, v.scaleRowBytes),
          want.biases,
          `${key}: biases`,
        );
      }
    }
  }
});
