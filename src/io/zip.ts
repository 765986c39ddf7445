/**
 * ZIP archives of stored (uncompressed) entries: how the browser page hands over an adapter's two files as
 * one download, and reads one back. Safetensors weights do not compress, so storing costs nothing, and a
 * stored archive is written in one pass with no compressor. Reading accepts stored entries only and says so
 * for anything else.
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

/** The entries of a ZIP archive of stored entries; `name` is for error messages. */
export function unzipStore(bytes: Uint8Array, name = "archive.zip"): ZipEntry[] {
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
  const dec = new TextDecoder();
  const out: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || v.getUint32(at, true) !== CENTRAL) {
      throw new Error(`${name}: central directory entry ${i} is damaged`);
    }
    const method = v.getUint16(at + 10, true);
    const crc = v.getUint32(at + 16, true);
    const size = v.getUint32(at + 20, true);
    const nameLen = v.getUint16(at + 28, true);
    const skip = nameLen + v.getUint16(at + 30, true) + v.getUint16(at + 32, true);
    const local = v.getUint32(at + 42, true);
    const entryName = dec.decode(bytes.subarray(at + 46, at + 46 + nameLen));
    if (method !== 0) {
      throw new Error(`${name}: ${entryName} is compressed (method ${method}); only stored entries are read`);
    }
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL) {
      throw new Error(`${name}: ${entryName}: local header is damaged`);
    }
    const dataAt = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataAt + size > bytes.length) throw new Error(`${name}: ${entryName} is cut short`);
    const data = bytes.subarray(dataAt, dataAt + size);
    if (crc32(data) !== crc) throw new Error(`${name}: ${entryName} fails its CRC-32 check (corrupt)`);
    out.push({ name: entryName, data });
    at += 46 + skip;
  }
  return out;
}
