// merge dequantizes a quantized tensor with no adapter (an MLX base's embedding) a few rows at a time, so its
// peak holds no whole f32 copy (the 0.5B's embedding is 545 MB of it): the streamed bytes must be those of
// the whole tensor dequantized at once, across many pieces and a short last one.
import { assertEquals } from "./_assert.ts";
import { writePlanned } from "../src/run/merge.ts";
import { dequantize, quantize, toMlxU32 } from "../src/model/quantize.ts";
import { encodeSafetensors, readSafetensorsHeader } from "../src/model/safetensors.ts";
import { f32ToBf16 } from "../src/model/dtype.ts";
import { bytesSource } from "../src/io/source.ts";

Deno.test("merge: an unadapted quantized tensor streamed in rows equals it dequantized whole", async () => {
  // 20,001 rows of 64: more than one 4 MiB piece of f32 rows (16,384), the last piece short
  const rows = 20_001, cols = 64;
  const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
  const qz = quantize(w, cols, { bits: 4, scaleDtype: "bf16" });
  const name = "model.embed_tokens";
  const file = await readSafetensorsHeader(bytesSource(encodeSafetensors([
    { name: `${name}.weight`, dtype: "U32", shape: [rows, (cols * 4) / 32], data: toMlxU32(qz.q) },
    { name: `${name}.scales`, dtype: "BF16", shape: [rows, cols / 64], data: qz.scales },
    { name: `${name}.biases`, dtype: "BF16", shape: [rows, cols / 64], data: qz.biases },
  ])));
  const info = (n: string) => file.tensors.get(`${name}.${n}`)!;
  const parts: Uint8Array[] = [];
  await writePlanned(
    { write: (b) => (parts.push(b.slice()), Promise.resolve()) },
    file,
    {
      spec: { name: `${name}.weight`, dtype: "BF16", shape: [rows, cols] },
      info: info("weight"),
      quant: { scales: info("scales"), biases: info("biases"), bits: 4 },
    },
    undefined,
    undefined,
  );
  const got = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (got.set(p, at), at + p.length), 0);
  const whole = f32ToBf16(dequantize(qz, cols, { bits: 4, scaleDtype: "bf16" }));
  assertEquals(got, new Uint8Array(whole.buffer));
  assertEquals(parts.length > 1, true);
});
