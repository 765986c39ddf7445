/**
 * ZIP archives: how the browser page hands over an adapter's two files as one download, and reads one back.
 * Written archives store their entries (safetensors weights do not compress, so storing costs nothing, and a
 * stored archive is written in one pass with no compressor). {@linkcode unzip} reads stored and deflated
 * entries (what `zip`, Python's zipfile and file managers write), inflating with the web-standard
 * `DecompressionStream`; {@linkcode unzipStore} is its synchronous sibling for stored entries only.
 *
 * @module
 */
import { crc32 } from "./crc32.ts";

/** One file of an archive. */
export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

const LOCAL = 0x04034b50, CENTRAL = 0x02014b50, END = 0x06054b50;
// 1980-01-01 00:00 in DOS time: a fixed stamp, so the same files always give the same archive bytes
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** A ZIP archive (stored entries, UTF-8 names) of `entries`, in order. */
export function zipStore(entries: readonly ZipEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const names = entries.map((e) => enc.encode(e.name));
  const crcs = entries.map((e) => crc32(e.data));
  const localBytes = entries.reduce((n, e, i) => n + 30 + names[i].length + e.data.length, 0);
  const centralBytes = names.reduce((n, b) => n + 46 + b.length, 0);
  if (localBytes + centralBytes > 0xffffffff || entries.length > 0xffff) {
    throw new Error("zip: archive too large for a classic (non-ZIP64) archive");
  }
  const out = new Uint8Array(localBytes + centralBytes + 22);
  const v = new DataView(out.buffer);
  let at = 0;
  const offsets: number[] = [];
  entries.forEach((e, i) => {
    offsets.push(at);
    v.setUint32(at, LOCAL, true);
    v.setUint16(at + 4, 20, true); // version needed
    v.setUint16(at + 6, 0x0800, true); // UTF-8 names
    v.setUint16(at + 8, 0, true); // stored
    v.setUint16(at + 10, 0, true);
    v.setUint16(at + 12, DOS_DATE, true);
    v.setUint32(at + 14, crcs[i], true);
    v.setUint32(at + 18, e.data.length, true);
    v.setUint32(at + 22, e.data.length, true);
    v.setUint16(at + 26, names[i].length, true);
    v.setUint16(at + 28, 0, true);
    out.set(names[i], at + 30);
    out.set(e.data, at + 30 + names[i].length);
    at += 30 + names[i].length + e.data.length;
  });
  const centralAt = at;
  entries.forEach((e, i) => {
    v.setUint32(at, CENTRAL, true);
    v.setUint16(at + 4, 20, true); // made by
    v.setUint16(at + 6, 20, true);
    v.setUint16(at + 8, 0x0800, true);
    v.setUint16(at + 10, 0, true);
    v.setUint16(at + 12, 0, true);
    v.setUint16(at + 14, DOS_DATE, true);
    v.setUint32(at + 16, crcs[i], true);
    v.setUint32(at + 20, e.data.length, true);
    v.setUint32(at + 24, e.data.length, true);
    v.setUint16(at + 28, names[i].length, true);
    // extra, comment, disk, internal and external attributes: zero
    v.setUint32(at + 42, offsets[i], true);
    out.set(names[i], at + 46);
    at += 46 + names[i].length;
  });
  v.setUint32(at, END, true);
  v.setUint16(at + 8, entries.length, true);
  v.setUint16(at + 10, entries.length, true);
  v.setUint32(at + 12, at - centralAt, true);
  v.setUint32(at + 16, centralAt, true);
  return out;
}

/** An entry as the central directory describes it, its data still as stored in the archive. */
interface RawEntry {
  name: string;
  method: number;
  crc: number;
  /** The entry's size once inflated. */
  size: number;
  /** The bytes in the archive (compressed, for method 8). */
  raw: Uint8Array;
}

const STORED = 0, DEFLATE = 8;

/** The central directory's entries of a ZIP archive; `name` is for error messages. */
function readDirectory(bytes: Uint8Array, name: string): RawEntry[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 0xffff); i--) {
    if (v.getUint32(i, true) === END) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error(`${name}: not a ZIP archive (no end-of-directory record)`);
  const count = v.getUint16(end + 10, true);
  let at = v.getUint32(end + 16, true);
  // ZIP64 (`zip -fz`, or archives past 4 GB / 65535 entries) keeps the real values in a record of its own
  if (count === 0xffff || at === 0xffffffff) {
    throw new Error(
      `${name}: a ZIP64 archive; only classic ZIP archives are read (zip without -fz writes one)`,
    );
  }
  const dec = new TextDecoder();
  const out: RawEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || v.getUint32(at, true) !== CENTRAL) {
      throw new Error(`${name}: central directory entry ${i} is damaged`);
    }
    const flags = v.getUint16(at + 8, true);
    const method = v.getUint16(at + 10, true);
    const crc = v.getUint32(at + 16, true);
    const packed = v.getUint32(at + 20, true);
    const size = v.getUint32(at + 24, true);
    const nameLen = v.getUint16(at + 28, true);
    const skip = nameLen + v.getUint16(at + 30, true) + v.getUint16(at + 32, true);
    const local = v.getUint32(at + 42, true);
    const entryName = dec.decode(bytes.subarray(at + 46, at + 46 + nameLen));
    if (flags & 1) throw new Error(`${name}: ${entryName} is encrypted; only plain archives are read`);
    if (packed === 0xffffffff || size === 0xffffffff) {
      throw new Error(`${name}: ${entryName} needs ZIP64 (4 GB or more); only classic archives are read`);
    }
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL) {
      throw new Error(`${name}: ${entryName}: local header is damaged`);
    }
    const dataAt = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataAt + packed > bytes.length) throw new Error(`${name}: ${entryName} is cut short`);
    out.push({ name: entryName, method, crc, size, raw: bytes.subarray(dataAt, dataAt + packed) });
    at += 46 + skip;
  }
  return out;
}

function checked(e: RawEntry, data: Uint8Array, name: string): ZipEntry {
  if (crc32(data) !== e.crc) throw new Error(`${name}: ${e.name} fails its CRC-32 check (corrupt)`);
  return { name: e.name, data };
}

/**
 * The entries of a ZIP archive of stored entries; `name` is for error messages. Compressed entries are
 * refused: {@linkcode unzip} reads those.
 */
export function unzipStore(bytes: Uint8Array, name = "archive.zip"): ZipEntry[] {
  return readDirectory(bytes, name).map((e) => {
    if (e.method !== STORED) {
      throw new Error(
        `${name}: ${e.name} is compressed (method ${e.method}); only stored entries are read (unzip reads deflated ones)`,
      );
    }
    return checked(e, e.raw, name);
  });
}

/**
 * The entries of a ZIP archive of stored or deflated entries (method 0 or 8); `name` is for error messages.
 * Each inflated entry is checked against its size and CRC-32 and named when it fails.
 */
export async function unzip(bytes: Uint8Array, name = "archive.zip"): Promise<ZipEntry[]> {
  const out: ZipEntry[] = [];
  for (const e of readDirectory(bytes, name)) {
    if (e.method === STORED) out.push(checked(e, e.raw, name));
    else if (e.method === DEFLATE) out.push(checked(e, await inflate(e, name), name));
    else {
      throw new Error(
        `${name}: ${e.name} is compressed with method ${e.method}; only stored (0) and deflated (8) entries are read`,
      );
    }
  }
  return out;
}

/**
 * The inflated bytes of a deflated entry, never more than the size the directory records (a damaged or
 * hostile entry is refused, not inflated without end).
 */
async function inflate(e: RawEntry, name: string): Promise<Uint8Array> {
  // deflate expands at most 1032:1, so a larger recorded size is a lie told before any memory is taken
  if (e.size > 1032 * e.raw.length + 64) {
    throw new Error(
      `${name}: ${e.name} records ${e.size} bytes for ${e.raw.length} deflated ones, more than deflate ` +
        `can expand to (corrupt)`,
    );
  }
  const out = new Uint8Array(e.size);
  let at = 0;
  const reader = new Blob([e.raw as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw new Error(`${name}: ${e.name} does not inflate (corrupt): ${(err as Error)?.message ?? err}`);
    }
    if (chunk.done) break;
    if (at + chunk.value.length > e.size) {
      await reader.cancel().catch(() => {});
      throw new Error(`${name}: ${e.name} inflates to more than its recorded ${e.size} bytes (corrupt)`);
    }
    out.set(chunk.value, at);
    at += chunk.value.length;
  }
  if (at !== e.size) {
    throw new Error(`${name}: ${e.name} inflates to ${at} bytes, not its recorded ${e.size} (corrupt)`);
  }
  return out;
}
