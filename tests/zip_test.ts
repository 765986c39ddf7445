import assert from "node:assert/strict";
import { unzipStore, zipStore } from "../src/io/zip.ts";
import { crc32 } from "../src/io/crc32.ts";

const enc = new TextEncoder();

Deno.test("zip: crc32 continues over pieces like one pass (check value 0xCBF43926)", () => {
  assert.deepEqual(crc32(enc.encode("123456789")), 0xcbf43926);
  assert.deepEqual(crc32(enc.encode("56789"), crc32(enc.encode("1234"))), 0xcbf43926);
});

Deno.test("zip: reads an archive written by Python's zipfile (stored entries)", async () => {
  const bytes = await Deno.readFile(new URL("./fixtures/zip/python_stored.zip", import.meta.url));
  const entries = unzipStore(bytes, "python_stored.zip");
  assert.deepEqual(entries.map((e) => e.name), ["adapter_config.json", "dir/ünïcode.bin"]);
  assert.deepEqual(new TextDecoder().decode(entries[0].data), '{"r": 8}\n');
  const expected = new Uint8Array(768).map((_, i) => i % 256);
  assert.deepEqual(entries[1].data, expected);
});

Deno.test("zip: written archives read back, and Python's zipfile lists the same entries", async () => {
  const files = [
    { name: "adapter_config.json", data: enc.encode('{"r": 8}\n') },
    { name: "adapter_model.safetensors", data: new Uint8Array(1000).map((_, i) => (i * 7) & 255) },
  ];
  const zip = zipStore(files);
  assert.deepEqual(unzipStore(zip), files);
  assert.deepEqual(zipStore(files), zip); // fixed timestamps: same files, same bytes
  const python = await tryPython(zip);
  if (python === undefined) {
    console.log("zip: python3 not found, the cross-check with Python's zipfile was skipped");
    return;
  }
  assert.deepEqual(python, "adapter_config.json 9 ok\nadapter_model.safetensors 1000 ok\n");
});

Deno.test("zip: damaged, compressed and foreign archives are refused with their name", () => {
  const zip = zipStore([{ name: "a.txt", data: enc.encode("hello") }]);
  const flipped = zip.slice();
  flipped[30 + 5] ^= 1; // a byte of the data
  assert.throws(() => unzipStore(flipped, "x.zip"), {
    message: new RegExp(escape("x.zip: a.txt fails its CRC-32 check")),
  });
  const deflated = zip.slice();
  new DataView(deflated.buffer).setUint16(zip.length - 22 - 51 + 10, 8, true); // central method = deflate
  assert.throws(() => unzipStore(deflated, "x.zip"), {
    message: new RegExp(escape("a.txt is compressed (method 8)")),
  });
  assert.throws(() => unzipStore(enc.encode("not a zip at all, just text"), "x.zip"), {
    message: new RegExp(escape("not a ZIP archive")),
  });
  assert.throws(() => unzipStore(zip.subarray(0, 20), "x.zip"), {
    message: new RegExp(escape("not a ZIP archive")),
  });
});

/** Python's zipfile as an independent reader: name, size and CRC check of each entry, or undefined. */
async function tryPython(zip: Uint8Array): Promise<string | undefined> {
  const path = await Deno.makeTempFile({ suffix: ".zip" });
  try {
    await Deno.writeFile(path, zip);
    const script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\n" +
      "for i in z.infolist(): print(i.filename, i.file_size, 'ok' if i.compress_type == 0 else 'packed')";
    const out = await new Deno.Command("python3", {
      args: ["-c", script, path],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  } finally {
    await Deno.remove(path);
  }
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
