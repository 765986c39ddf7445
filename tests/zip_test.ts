import assert from "node:assert/strict";
import { unzip, unzipStore, zipStore } from "../src/io/zip.ts";
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

// The deflated fixtures, written by independent implementations: python_deflated.zip by Python's zipfile
// (ZIP_DEFLATED: adapter_config.json = '{"r": 8, "lora_alpha": 16}\n', dir/ünïcode.bin = DEFLATED_DATA), and
// infozip_deflated.zip by Info-ZIP's `zip -r infozip_deflated.zip lora` of the same two files as
// lora/adapter_config.json (too small: stored) and lora/adapter_model.safetensors (deflated), with its folder entry.
const DEFLATED_CONFIG = '{"r": 8, "lora_alpha": 16}\n';
const DEFLATED_DATA = new Uint8Array(7000).map((_, i) => (i < 4000 ? (i * i) % 251 : 0));
const fixture = (name: string) => Deno.readFile(new URL(`./fixtures/zip/${name}`, import.meta.url));

Deno.test("zip: unzip reads deflated entries of Python's zipfile and Info-ZIP's zip", async () => {
  const python = await unzip(await fixture("python_deflated.zip"), "python_deflated.zip");
  assert.deepEqual(python.map((e) => e.name), ["adapter_config.json", "dir/ünïcode.bin"]);
  assert.deepEqual(new TextDecoder().decode(python[0].data), DEFLATED_CONFIG);
  assert.deepEqual(python[1].data, DEFLATED_DATA);
  const infozip = await unzip(await fixture("infozip_deflated.zip"), "infozip_deflated.zip");
  assert.deepEqual(infozip.map((e) => e.name), [
    "lora/",
    "lora/adapter_model.safetensors",
    "lora/adapter_config.json",
  ]);
  assert.deepEqual(infozip[1].data, DEFLATED_DATA);
  assert.deepEqual(new TextDecoder().decode(infozip[2].data), DEFLATED_CONFIG);
  // stored archives read the same as with unzipStore
  const stored = await fixture("python_stored.zip");
  assert.deepEqual(await unzip(stored), unzipStore(stored));
  // unzipStore still refuses deflate, and points at unzip
  const deflated = await fixture("python_deflated.zip");
  assert.throws(() => unzipStore(deflated, "p.zip"), {
    message: new RegExp(escape("p.zip: adapter_config.json is compressed (method 8)") + ".*unzip reads"),
  });
});

Deno.test("zip: unzip names the entry whose inflated bytes are wrong, and refuses other methods", async () => {
  const bytes = await fixture("python_deflated.zip");
  const entry = "dir/ünïcode.bin";
  const central = centralOffsets(bytes);
  const v = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  // a wrong CRC-32 in the directory: inflates fine, fails the check
  const badCrc = bytes.slice();
  v(badCrc).setUint32(central[1] + 16, v(badCrc).getUint32(central[1] + 16, true) ^ 1, true);
  await assert.rejects(() => unzip(badCrc, "x.zip"), {
    message: new RegExp(escape(`x.zip: ${entry} fails its CRC-32 check`)),
  });
  // a recorded size too small: refused before inflating past it
  const short = bytes.slice();
  v(short).setUint32(central[1] + 24, 100, true);
  await assert.rejects(() => unzip(short, "x.zip"), {
    message: new RegExp(escape(`x.zip: ${entry} inflates to more than its recorded 100 bytes`)),
  });
  // ZIP64's end record (as `zip -fz` writes it) moves the directory's offset elsewhere: said, not "damaged"
  const zip64 = bytes.slice();
  v(zip64).setUint32(zip64.length - 22 + 16, 0xffffffff, true); // no comment: the end record is last
  await assert.rejects(() => unzip(zip64, "x.zip"), { message: /x\.zip: a ZIP64 archive; only classic ZIP/ });
  // a recorded size deflate cannot reach (4 GB here): refused before it is allocated
  const huge = bytes.slice();
  v(huge).setUint32(central[1] + 24, 0xfffffff0, true);
  await assert.rejects(() => unzip(huge, "x.zip"), {
    message: new RegExp(
      escape(`x.zip: ${entry} records 4294967280 bytes for`) + ".*more than deflate can expand",
    ),
  });
  // a damaged deflate stream: named whichever way the inflater notices
  const damaged = bytes.slice();
  const dataAt = v(bytes).getUint32(central[1] + 42, true) + 30 + v(bytes).getUint16(
    v(bytes).getUint32(central[1] + 42, true) + 26,
    true,
  );
  for (let i = 0; i < 8; i++) damaged[dataAt + i] ^= 0xff;
  await assert.rejects(() => unzip(damaged, "x.zip"), {
    message: new RegExp(`^${escape(`x.zip: ${entry}`)} (does not inflate|inflates to|fails its CRC-32)`),
  });
  const bzip2 = bytes.slice();
  v(bzip2).setUint16(central[0] + 10, 12, true);
  await assert.rejects(() => unzip(bzip2, "x.zip"), {
    message: new RegExp(escape("x.zip: adapter_config.json is compressed with method 12")),
  });
});

Deno.test("zip: unzip reads what this machine's zip writes, also streamed (data descriptors)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/adapter_model.safetensors`, DEFLATED_DATA);
    await Deno.writeTextFile(`${dir}/adapter_config.json`, DEFLATED_CONFIG);
    let run;
    try {
      run = (args: string[]) => new Deno.Command("zip", { args, cwd: dir, stdout: "piped" }).output();
      await run(["-q", "a.zip", "adapter_config.json", "adapter_model.safetensors"]);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      console.log("zip: no zip command here, the committed Info-ZIP fixture stands in");
      return;
    }
    const plain = await unzip(await Deno.readFile(`${dir}/a.zip`), "a.zip");
    assert.deepEqual(plain.map((e) => [e.name, e.data]), [
      ["adapter_config.json", enc.encode(DEFLATED_CONFIG)],
      ["adapter_model.safetensors", DEFLATED_DATA],
    ]);
    // to stdout, zip cannot seek back: sizes and CRC come after the data (general purpose flag bit 3)
    const streamed = await run(["-q", "-", "adapter_model.safetensors"]);
    assert.ok(new DataView(streamed.stdout.buffer).getUint16(6, true) & 8, "no data descriptor");
    assert.deepEqual((await unzip(streamed.stdout, "streamed.zip"))[0].data, DEFLATED_DATA);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The offsets of an archive's central directory entries. */
function centralOffsets(bytes: Uint8Array): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 22; // the fixtures have no archive comment
  const out: number[] = [];
  let at = v.getUint32(end + 16, true);
  for (let i = 0; i < v.getUint16(end + 10, true); i++) {
    out.push(at);
    at += 46 + v.getUint16(at + 28, true) + v.getUint16(at + 30, true) + v.getUint16(at + 32, true);
  }
  return out;
}

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
