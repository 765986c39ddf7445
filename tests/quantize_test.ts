import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  dequantize,
  fromMlxU32,
  GROUP_SIZE,
  type QuantBits,
  quantize,
  type ScaleDtype,
  toMlxU32,
} from "../src/model/quantize.ts";
import { bf16BitsToF32, f16BitsToF32 } from "../src/model/dtype.ts";
import { readSafetensorsHeader, readTensorBytes, type SafetensorsFile } from "../src/model/safetensors.ts";
import { fileSource } from "../src/io/deno_files.ts";
import { DTYPE, loadKernels, VARIANTS } from "../src/runtime/kernels.ts";
import { Arena } from "../src/runtime/arena.ts";

const GOLDEN = new URL("./fixtures/golden/mlx_q4/", import.meta.url);

/** Tiny seeded PRNG for test data (mulberry32), independent of the code under test. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Element i of a q4 row, unpacked by hand: byte i>>1, low nibble for even i. */
function nibble(q: Uint8Array, i: number): number {
  return (i & 1) === 0 ? q[i >> 1] & 15 : q[i >> 1] >> 4;
}

const halfValue = (dtype: ScaleDtype) => (dtype === "bf16" ? bf16BitsToF32 : f16BitsToF32);

Deno.test("quantize: a group holding 0..15 scaled by 0.25 and shifted by -1 maps exactly", () => {
  // value of element i: 0.25·(i mod 16) − 1, so min −1, max 2.75, scale 3.75/15 = 0.25 (exact in both)
  const w = Float32Array.from({ length: 128 }, (_, i) => 0.25 * (i % 16) - 1);
  for (const [dtype, scaleBits, biasBits] of [["f16", 0x3400, 0xbc00], ["bf16", 0x3e80, 0xbf80]] as const) {
    const qz = quantize(w, 64, { scaleDtype: dtype });
    assertEquals([...qz.scales], [scaleBits, scaleBits], `${dtype} scales`);
    assertEquals([...qz.biases], [biasBits, biasBits], `${dtype} biases`);
    for (let i = 0; i < 128; i++) assertEquals(nibble(qz.q, i), i % 16, `${dtype} code ${i}`);
    assertEquals(dequantize(qz, 64, { scaleDtype: dtype }), w, `${dtype} dequant`);
  }
});

Deno.test("quantize: q8 codes of a group spanning 0..255/16 are exact, one byte per element", () => {
  const codes = Array.from({ length: 64 }, (_, i) => (i * 37) % 256);
  codes[5] = 0;
  codes[9] = 255;
  const w = Float32Array.from(codes, (k) => k / 16);
  const qz = quantize(w, 64, { bits: 8, scaleDtype: "bf16" });
  assertEquals([...qz.q], codes);
  assertEquals([...qz.scales], [0x3d80]); // 1/16 in bf16
  assertEquals([...qz.biases], [0]);
  assertEquals(dequantize(qz, 64, { bits: 8, scaleDtype: "bf16" }), w);
});

Deno.test("quantize: q4 nibble order (byte b = element 2b low, 2b+1 high) and the MLX u32 words", () => {
  const w = Float32Array.from({ length: 64 }, (_, i) => i % 16); // codes = values (scale 1, bias 0)
  const qz = quantize(w, 64);
  assertEquals([...qz.q.subarray(0, 8)], [0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe]);
  // MLX: element 8j+i in bits 4i..4i+3 of word j
  assertEquals([...toMlxU32(qz.q).subarray(0, 2)], [0x76543210, 0xfedcba98]);
});

Deno.test("quantize: zero-range groups get scale 0, bias = the value rounded, codes 0", () => {
  const w = new Float32Array(192);
  w.fill(0.3, 0, 64); // group 0: all 0.3
  // group 1: all zeros; group 2: all −2
  w.fill(-2, 128, 192);
  for (
    const [dtype, bias03, value03] of [["f16", 0x34cd, 0.300048828125], ["bf16", 0x3e9a, 0.30078125]] as const
  ) {
    for (const bits of [4, 8] as const) {
      const qz = quantize(w, 192, { bits, scaleDtype: dtype });
      assertEquals([...qz.scales], [0, 0, 0], `${dtype} q${bits} scales`);
      assertEquals([...qz.biases], [bias03, 0, 0xc000], `${dtype} q${bits} biases`);
      assert(qz.q.every((b) => b === 0), `${dtype} q${bits} codes`);
      const d = dequantize(qz, 192, { bits, scaleDtype: dtype });
      for (let i = 0; i < 192; i++) assertEquals(d[i], i < 64 ? value03 : i < 128 ? 0 : -2, `dequant ${i}`);
    }
  }
});

Deno.test("quantize: ties round to even; codes use the stored (rounded) scale and bias, clamped", () => {
  // min 0, max 15 → scale 1, bias 0: (w − bias)/scale = w, so x.5 values are exact ties.
  const w = new Float32Array(64);
  w[1] = 15;
  w.set([0.5, 1.5, 2.5, 3.5, 14.5, 7.49, 7.51], 2);
  const qz = quantize(w, 64);
  assertEquals([2, 3, 4, 5, 6, 7, 8].map((i) => nibble(qz.q, i)), [0, 2, 2, 4, 14, 7, 8]);

  // min 0, max 1: exact scale 1/15 would put 0.5 on the tie 7.5. Stored bf16 scale 0.06689453125 gives
  // 7.47 → 7; stored f16 scale 0.066650390625 gives 7.50 → 8.
  const v = new Float32Array(64);
  v[1] = 1;
  v[2] = 0.5;
  const b = quantize(v, 64, { scaleDtype: "bf16" });
  const f = quantize(v, 64, { scaleDtype: "f16" });
  assertEquals([b.scales[0], f.scales[0]], [0x3d89, 0x2c44]);
  assertEquals([nibble(b.q, 1), nibble(b.q, 2)], [15, 7]);
  assertEquals([nibble(f.q, 1), nibble(f.q, 2)], [15, 8]);

  // Stored biases are coarse in bf16, so codes can fall outside 0..15 and must clamp, not wrap into the
  // nibble. Bottom: 1 + 0.75·2^-7 rounds up to 1 + 2^-7, eight scale steps (2^-12) above the minimum.
  const min = 1 + 0.75 * 2 ** -7;
  const lo = new Float32Array(64).fill(min);
  lo[1] = min + 15 * 2 ** -12;
  const lq = quantize(lo, 64, { scaleDtype: "bf16" });
  assertEquals([lq.biases[0], lq.scales[0]], [0x3f81, 0x3980]); // 1.0078125, 2^-12
  assertEquals([nibble(lq.q, 0), nibble(lq.q, 1)], [0, 7]); // −8 → 0; (max − bias)/scale = 7
  // Top: min 100.2 rounds down to a bias of 100, so the max 100.5 sits 25 steps of 0.02 above it → 15.
  const hi = new Float32Array(64).fill(100.3);
  hi[0] = 100.2;
  hi[1] = 100.5;
  const hq = quantize(hi, 64, { scaleDtype: "bf16" });
  assertEquals(hq.biases[0], 0x42c8); // 100
  assertEquals([nibble(hq.q, 0), nibble(hq.q, 1), nibble(hq.q, 2)], [10, 15, 15]);
});

function maxErrorCheck(bits: QuantBits, dtype: ScaleDtype, seed: number): void {
  const rows = 9, cols = 256;
  const r = rng(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) {
    // mixed magnitudes per group, including offset groups that are all positive
    const g = Math.floor(i / 64);
    w[i] = (r() - 0.5) * 0.1 * (1 + (g % 5)) + (g % 3 === 0 ? 0.2 : 0);
  }
  const qz = quantize(w, cols, { bits, scaleDtype: dtype });
  const d = dequantize(qz, cols, { bits, scaleDtype: dtype });
  const half = halfValue(dtype);
  const levels = 2 ** bits - 1;
  for (let g = 0; g < rows * cols / 64; g++) {
    const group = w.subarray(g * 64, g * 64 + 64);
    const min = Math.min(...group), max = Math.max(...group);
    const exactScale = (max - min) / levels;
    const s = half(qz.scales[g]), b = half(qz.biases[g]);
    // s/2 from rounding the code, plus what rounding the stored scale (×levels) and bias can shift,
    // plus f32 rounding of the dequantized value.
    const bound = s / 2 + levels * Math.abs(s - exactScale) + Math.abs(b - min) + 2 ** -22 * Math.abs(max) +
      2 ** -22 * Math.abs(min);
    for (let i = 0; i < 64; i++) {
      const err = Math.abs(d[g * 64 + i] - group[i]);
      assert(err <= bound, `q${bits} ${dtype} group ${g} element ${i}: error ${err} > bound ${bound}`);
    }
    // and the rounded scale only costs a little: the error stays within 0.51 scale steps here
    assert(
      s / 2 <= exactScale * 0.51 + 1e-12,
      `q${bits} ${dtype} group ${g}: stored scale ${s} vs ${exactScale}`,
    );
  }
}

Deno.test("quantize: max error ≤ scale/2 (+ rounding of the stored scale and bias) on random data", () => {
  for (const bits of [4, 8] as const) {
    for (const dtype of ["f16", "bf16"] as const) maxErrorCheck(bits, dtype, 17 * bits + dtype.length);
  }
});

Deno.test("quantize: row chunks (with into buffers) give the same result as the whole matrix", () => {
  const r = rng(3);
  const rows = 10, cols = 192;
  const w = Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
  for (const bits of [4, 8] as const) {
    const whole = quantize(w, cols, { bits, scaleDtype: "bf16" });
    const chunkRows = 3;
    const into = {
      q: new Uint8Array(chunkRows * cols * bits / 8),
      scales: new Uint16Array(chunkRows * 3),
      biases: new Uint16Array(chunkRows * 3),
    };
    for (let r0 = 0; r0 + chunkRows <= rows; r0 += chunkRows) {
      const got = quantize(w.subarray(r0 * cols, (r0 + chunkRows) * cols), cols, {
        bits,
        scaleDtype: "bf16",
        into,
        rowOffset: r0,
      });
      assert(got === into, "returns the into buffers");
      assertEquals(into.q, whole.q.subarray(r0 * cols * bits / 8, (r0 + chunkRows) * cols * bits / 8));
      assertEquals(into.scales, whole.scales.subarray(r0 * 3, r0 * 3 + 9));
      assertEquals(into.biases, whole.biases.subarray(r0 * 3, r0 * 3 + 9));
    }
  }
});

Deno.test("dequantize: bitwise equal to the wasm kernel's decode_row (q4/q8, f16/bf16 scales, all variants)", async () => {
  const r = rng(11);
  const rows = 4, cols = 128, groups = cols / GROUP_SIZE;
  for (const variant of VARIANTS) {
    const kern = await loadKernels({ variant }).catch(() => undefined);
    if (!kern) continue;
    const ar = Arena.create(kern, [
      { name: "w", bytes: rows * cols },
      { name: "s", bytes: rows * groups * 2 },
      { name: "z", bytes: rows * groups * 2 },
      { name: "out", bytes: cols * 4 },
    ]);
    for (const bits of [4, 8] as const) {
      for (const dtype of ["f16", "bf16"] as const) {
        const q = Uint8Array.from({ length: rows * cols * bits / 8 }, () => Math.floor(r() * 256));
        // random half bit patterns of finite, moderately sized values with either sign
        const half = () => {
          const sign = r() < 0.5 ? 0x8000 : 0;
          return dtype === "f16"
            ? sign | (Math.floor(r() * 24 + 2) << 10) | Math.floor(r() * 1024)
            : sign | (Math.floor(r() * 30 + 105) << 7) | Math.floor(r() * 128);
        };
        const scales = Uint16Array.from({ length: rows * groups }, half);
        const biases = Uint16Array.from({ length: rows * groups }, half);
        const mine = dequantize({ q, scales, biases }, cols, { bits, scaleDtype: dtype });
        ar.u8("w").set(q);
        new Uint16Array(kern.memory.buffer, ar.ptr("s"), rows * groups).set(scales);
        new Uint16Array(kern.memory.buffer, ar.ptr("z"), rows * groups).set(biases);
        const code = (bits === 4 ? DTYPE.q4 : DTYPE.q8) | (dtype === "bf16" ? 8 : 0); // 8 = SCALES_BF16
        for (let row = 0; row < rows; row++) {
          kern.exports.decode_row(
            code,
            ar.ptr("w"),
            cols,
            ar.ptr("s"),
            ar.ptr("z"),
            row,
            0,
            cols,
            ar.ptr("out"),
          );
          const theirs = new Uint32Array(kern.memory.buffer, ar.ptr("out"), cols);
          const ours = new Uint32Array(mine.buffer, row * cols * 4, cols);
          assertEquals(ours, theirs, `${variant} q${bits} ${dtype} row ${row}`);
        }
      }
    }
  }
});

async function golden(): Promise<{ model: SafetensorsFile; expected: SafetensorsFile }> {
  const model = await readSafetensorsHeader(fileSource(new URL("model.safetensors", GOLDEN).pathname));
  const expected = await readSafetensorsHeader(fileSource(new URL("expected.safetensors", GOLDEN).pathname));
  return { model, expected };
}

async function u16(file: SafetensorsFile, name: string): Promise<Uint16Array> {
  const b = await readTensorBytes(file, name);
  return new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
}

Deno.test("golden mlx_q4: dequantize of the stored U32/BF16 tensors equals dequant.* bit for bit", async () => {
  const { model, expected } = await golden();
  try {
    const names = [...expected.tensors.keys()].filter((n) => n.startsWith("dequant."));
    assertEquals(names.length, 3, "the fixture has three dequant.* tensors");
    for (const dn of names) {
      const base = dn.slice("dequant.".length).replace(/\.weight$/, "");
      const info = model.tensors.get(`${base}.weight`)!;
      assertEquals(info.dtype, "U32");
      const [rows, words] = info.shape;
      const cols = words * 8;
      const u32Bytes = await readTensorBytes(model, `${base}.weight`);
      const q = fromMlxU32(new Uint32Array(u32Bytes.buffer, u32Bytes.byteOffset, u32Bytes.length / 4));
      const scales = await u16(model, `${base}.scales`);
      const biases = await u16(model, `${base}.biases`);
      assertEquals(model.tensors.get(`${base}.scales`)!.shape, [rows, cols / 64]);
      const d = dequantize({ q, scales, biases }, cols, { scaleDtype: "bf16", name: base });
      const want = await readTensorBytes(expected, dn);
      assertEquals(
        new Uint32Array(d.buffer),
        new Uint32Array(want.buffer, want.byteOffset, want.length / 4),
        `${dn} bits`,
      );

      // Re-quantizing the dequantized weights recovers the file's codes, scales and biases in every group
      // whose codes span the full 0..15 range (then min = bias and (max − min)/15 = scale exactly).
      const back = quantize(d, cols, { scaleDtype: "bf16" });
      let full = 0;
      for (let g = 0; g < scales.length; g++) {
        const codes = Array.from({ length: 64 }, (_, i) => nibble(q, g * 64 + i));
        if (Math.min(...codes) !== 0 || Math.max(...codes) !== 15) continue;
        full++;
        assertEquals(back.scales[g], scales[g], `${base} group ${g} scale`);
        assertEquals(back.biases[g], biases[g], `${base} group ${g} bias`);
        assertEquals(
          Array.from({ length: 64 }, (_, i) => nibble(back.q, g * 64 + i)),
          codes,
          `${base} group ${g}`,
        );
      }
      assert(full >= scales.length / 2, `${base}: only ${full} of ${scales.length} groups span 0..15`);
    }
  } finally {
    model.source.close?.();
    expected.source.close?.();
  }
});

Deno.test("toMlxU32 / fromMlxU32: the same little-endian bytes (views, no copies)", () => {
  const r = rng(5);
  const q = Uint8Array.from({ length: 64 }, () => Math.floor(r() * 256));
  const u = toMlxU32(q);
  assert(u.buffer === q.buffer, "an aligned toMlxU32 is a view");
  for (let j = 0; j < 16; j++) {
    // word j assembled by hand from eight nibbles, element 8j+i at bits 4i
    let word = 0;
    for (let i = 0; i < 8; i++) word += nibble(q, 8 * j + i) * 2 ** (4 * i);
    assertEquals(u[j], word, `word ${j}`);
    // and for q8: element 4j+i at bits 8i
    assertEquals(u[j], q[4 * j] + q[4 * j + 1] * 2 ** 8 + q[4 * j + 2] * 2 ** 16 + q[4 * j + 3] * 2 ** 24);
  }
  const back = fromMlxU32(u);
  assert(back.buffer === q.buffer && back.byteOffset === 0 && back.length === 64, "fromMlxU32 is a view");
  // unaligned input: copied, same values
  const odd = new Uint8Array(69).subarray(1, 65);
  odd.set(q);
  assertEquals(toMlxU32(odd), u);
});

Deno.test("quantize / dequantize: errors name the tensor, row, column or group", async () => {
  const w = new Float32Array(128);
  await assertRejects(() => quantize(w, 96), "multiple of 64, got 96");
  await assertRejects(
    () => quantize(w.subarray(0, 100), 64),
    "100 values are not a whole number of rows of 64",
  );
  await assertRejects(() => quantize(w, 64, { bits: 3 as QuantBits }), "bits must be 4 or 8, got 3");
  const nan = new Float32Array(128);
  nan[64 + 7] = NaN;
  await assertRejects(
    () => quantize(nan, 64, { name: "x.weight", rowOffset: 10 }),
    "x.weight: row 11, column 7: non-finite value NaN",
  );
  const big = new Float32Array(128);
  big[100] = 2e6; // range 2e6/15 > 65504: does not fit f16 scales (fits bf16)
  await assertRejects(() => quantize(big, 64, { name: "y" }), "y: row 1, group 0: range [0, 2000000]");
  quantize(big, 64, { scaleDtype: "bf16" });
  await assertRejects(
    () =>
      quantize(w, 64, {
        into: { q: new Uint8Array(10), scales: new Uint16Array(2), biases: new Uint16Array(2) },
      }),
    "into.q has 10 elements, expected 64",
  );
  const qz = quantize(w, 64);
  await assertRejects(() => dequantize(qz, 64, { bits: 8 }), "q (bytes) has 64 elements, expected 128");
  await assertRejects(() => dequantize(qz, 192), "2 scales are not a whole number of rows of 3");
  await assertRejects(() => toMlxU32(new Uint8Array(6)), "6 bytes are not a whole number of u32");
});
