/**
 * A {@linkcode RangeCache} in the Origin Private File System (browsers, workers): one OPFS file holds the
 * fetched bytes of a remote file at their own offsets, followed by a small record of which ranges are there
 * and of which version of the file (size, ETag) they are. The record persists, so after a reload the pack is
 * read locally; a different version on the server (another size or ETag) discards the kept bytes.
 *
 * Two ways in, chosen by what the context offers:
 * - a dedicated worker: a `FileSystemSyncAccessHandle` reads straight into the caller's buffer and writes each
 *   range as it comes;
 * - the main thread (no sync handles there): reads go through the file's `File` snapshot a block at a time into
 *   reused buffers (a read of an OPFS `File` costs milliseconds in Chromium, however small, so a layer's
 *   many small reads are served by one), and fetched ranges are held in memory until `flushBytes` of them (or a
 *   quiet moment) are written in one batch: each write of a main-thread OPFS file copies the whole file first.
 *
 * @module
 */
import type { CachedFile, RangeCache } from "./source.ts";
import {
  type OpfsDirectoryHandle,
  type OpfsFileHandle,
  opfsRoot,
  type OpfsSyncAccessHandle as SyncFile,
  type OpfsWritableFile as WritableFile,
} from "./opfs.ts";

/** Options for {@linkcode opfsRangeCache}. */
export interface OpfsRangeCacheOptions {
  /** The directory of a file given by name (default: the origin's OPFS root). */
  directory?: OpfsDirectoryHandle;
  /** Main thread: bytes read from the file at once, into one of the cache's buffers (default 4 MB). */
  blockBytes?: number;
  /** Main thread: the buffers of blocks read, reused (default 2: a read may straddle two blocks). */
  blocks?: number;
  /**
   * Main thread: read and write the file through a small worker of the cache's own (started from a `blob:`
   * URL) holding a sync access handle, which reads a block in well under a millisecond; `false` reads through
   * `File` snapshots and writes in batches instead, each copying the whole file (default: a worker where
   * `Worker` and `FileSystemFileHandle` exist).
   */
  worker?: boolean;
  /** Main thread: fetched bytes held in memory before they are written in one batch (default 32 MB). */
  flushBytes?: number;
  /**
   * Notices: the kept bytes were of another version of the file and are discarded; the storage quota is full
   * and nothing more is kept (default: `console.warn`).
   */
  onNotice?: (message: string) => void;
}

/** An OPFS range cache, with what it holds and a way to write what is pending. */
export interface OpfsRangeCache extends RangeCache {
  /** The OPFS file's name. */
  readonly name: string;
  /** Bytes of the remote file kept (written and pending). */
  bytes(): number;
  /** Counts so far: reads served from the file, from ranges not yet written, and blocks read (main thread). */
  stats(): { fileReads: number; pendingReads: number; blockLoads: number; writes: number };
  /** Writes the pending ranges and the record now (otherwise done on its own when the puts pause). */
  flush(): Promise<void>;
  /** Flushes, then releases the file (a worker's sync access handle holds it exclusively). */
  close(): Promise<void>;
}

const MAGIC = new TextEncoder().encode("mespRC1\n");
const TRAILER = 4 + MAGIC.length; // u32 record length, then the magic, at the very end of the file
/** How long after the last put the pending ranges are written (they are written earlier when many). */
const QUIET_MS = 100;

/** A block of the file read into a reused buffer (main thread): bytes `[start, end)`. */
interface Block {
  buf: ArrayBuffer;
  start: number;
  end: number;
  used: number;
}

/** What the file's record says: the remote file's version and the kept ranges `[start, end)`. */
interface Record {
  v: 1;
  size: number;
  etag: string | null;
  ranges: [number, number][];
}

/**
 * Ranges of a remote file kept in the Origin Private File System, in the OPFS file `file` (a name in the
 * origin's root or `options.directory`, or a handle the page already has). Keyed by the remote file's size and
 * ETag, which {@linkcode fetchSource} hands it ({@linkcode RangeCache.identify}) before the first read: kept
 * bytes of another version are discarded, with a notice. A read is served from the file when the range lies in
 * what is kept, whatever pieces it was fetched in.
 *
 * Errors: where OPFS is missing (not a browser, not a secure context, Deno) the first read fails with an error
 * naming the file; a write that fails (a full storage quota, the file held by another tab) stops the keeping,
 * with a notice naming the file, and later ranges are read from the network as before.
 *
 * @example
 * ```ts
 * const source = fetchSource(url, { cache: opfsRangeCache("qwen-0.5b.pack") });
 * ```
 */
export function opfsRangeCache(
  file: string | OpfsFileHandle,
  options: OpfsRangeCacheOptions = {},
): OpfsRangeCache {
  const name = typeof file === "string" ? file : file.name;
  const label = `OPFS cache file ${JSON.stringify(name)}`;
  const blockBytes = options.blockBytes ?? 4 << 20;
  const flushBytes = options.flushBytes ?? 32 << 20;
  const notice = options.onNotice ?? ((m: string) => console.warn(m));

  let handle: OpfsFileHandle | undefined;
  let sync: SyncFile | undefined; // a worker: the file's sync access handle
  let helper: HelperFile | undefined; // the main thread: a worker of ours holding one
  let snapshot: Blob | undefined; // main thread: the file as last written
  let version: { size: number; etag: string | null } | undefined;
  // kept ranges, sorted, disjoint and merged: [starts[i], ends[i])
  let starts: number[] = [], ends: number[] = [];
  let kept = 0;
  let full = false; // the quota ran out: keep nothing more
  // main thread: fetched ranges not yet written, and the block of the file last read
  let pending: { offset: number; data: Uint8Array }[] = [];
  let pendingBytes = 0;
  let unrecorded = 0; // a worker's (or the helper's) bytes written since the record was
  const blocks: Block[] = Array.from(
    { length: options.blocks ?? 2 },
    () => ({ buf: new ArrayBuffer(0), start: 0, end: 0, used: 0 }),
  );
  let tick = 0;
  let dirty = false; // the record differs from the file's
  let timer: ReturnType<typeof setTimeout> | undefined;
  const counts = { fileReads: 0, pendingReads: 0, blockLoads: 0, writes: 0 };

  // one operation at a time: they share the block buffer, the pending list and the file
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(job: () => Promise<T>): Promise<T> => {
    const next = queue.then(job);
    queue = next.catch(() => {});
    return next;
  };

  async function openHandle(): Promise<OpfsFileHandle> {
    if (typeof file !== "string") return file;
    const dir = options.directory ?? await opfsRoot(label);
    return await dir.getFileHandle(name, { create: true }).catch((err) => {
      throw new Error(`${label}: cannot open or create it: ${err?.message ?? err}`, { cause: err });
    });
  }

  /** The record at the end of a file of `length` bytes, read with `at`, or undefined. */
  async function readRecord(length: number, at: (o: number, n: number) => Promise<Uint8Array>) {
    if (length < TRAILER) return undefined;
    const tail = await at(length - TRAILER, TRAILER);
    if (!MAGIC.every((b, i) => tail[4 + i] === b)) return undefined;
    const n = new DataView(tail.buffer, tail.byteOffset).getUint32(0, true);
    if (n > length - TRAILER) return undefined;
    try {
      const r = JSON.parse(new TextDecoder().decode(await at(length - TRAILER - n, n))) as Record;
      // the record starts where the remote file's bytes end
      return r.v === 1 && r.size === length - TRAILER - n && Array.isArray(r.ranges) ? r : undefined;
    } catch {
      return undefined;
    }
  }

  function encodeRecord(): Uint8Array {
    const json = new TextEncoder().encode(JSON.stringify(
      {
        v: 1,
        size: version!.size,
        etag: version!.etag,
        ranges: starts.map((s, i) => [s, ends[i]]),
      } satisfies Record,
    ));
    const out = new Uint8Array(json.length + TRAILER);
    out.set(json);
    new DataView(out.buffer).setUint32(json.length, json.length, true);
    out.set(MAGIC, json.length + 4);
    return out;
  }

  function setRanges(ranges: [number, number][]) {
    starts = ranges.map((r) => r[0]);
    ends = ranges.map((r) => r[1]);
    kept = ranges.reduce((n, r) => n + r[1] - r[0], 0);
  }

  /** The index of the kept range holding `[offset, end)`, or -1. */
  function holding(offset: number, end: number): number {
    let lo = 0, hi = starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && end <= ends[hi] ? hi : -1;
  }

  function addRange(s: number, e: number) {
    let i = 0;
    while (i < starts.length && ends[i] < s) i++;
    let j = i;
    while (j < starts.length && starts[j] <= e) {
      s = Math.min(s, starts[j]);
      e = Math.max(e, ends[j]);
      j++;
    }
    const removed = ends.slice(i, j).reduce((n, end, k) => n + end - starts[i + k], 0);
    starts.splice(i, j - i, s);
    ends.splice(i, j - i, e);
    kept += e - s - removed;
  }

  /** A write failed (the quota is full, or the file is held elsewhere): keep what is kept, nothing more. */
  function stopKeeping(err: unknown) {
    full = true;
    const why = (err as Error)?.name === "QuotaExceededError"
      ? "the storage quota is full"
      : "writing failed";
    notice(
      `${label}: ${why} (${(err as Error)?.message ?? err}); keeping ${kept} bytes, further ranges are ` +
        `read from the network`,
    );
  }

  async function identify(remote: CachedFile): Promise<void> {
    if (version && version.size === remote.size && version.etag === remote.etag) return;
    handle ??= await openHandle();
    let record: Record | undefined;
    if (!sync && typeof handle.createSyncAccessHandle === "function" && isWorker()) {
      sync = await handle.createSyncAccessHandle().catch((err) => {
        throw new Error(
          `${label}: cannot open it for reading and writing (open in another tab or worker?): ` +
            `${err?.message ?? err}`,
          { cause: err },
        );
      });
    }
    if (!sync && !helper && options.worker !== false && helperWorks(handle)) {
      helper = await startHelper(handle, label, blockBytes).catch((err) => {
        notice(`${label}: ${err?.message ?? err}; reading it through File snapshots instead (slower)`);
        return undefined;
      });
    }
    if (helper) {
      const h = helper;
      record = await readRecord(await h.size(), async (o, n) => {
        const r = await h.read(new ArrayBuffer(n), o, n);
        return new Uint8Array(r.buf, 0, r.got);
      });
    } else if (sync) {
      const s = sync;
      record = await readRecord(s.getSize(), (o, n) => {
        const b = new Uint8Array(n);
        s.read(b, { at: o });
        return Promise.resolve(b);
      });
    } else {
      const f = snapshot = await handle.getFile();
      record = await readRecord(
        f.size,
        async (o, n) => new Uint8Array(await f.slice(o, o + n).arrayBuffer()),
      );
    }
    pending = [];
    pendingBytes = 0;
    for (const b of blocks) b.start = b.end = 0;
    version = { size: remote.size, etag: remote.etag };
    if (record && record.size === remote.size && record.etag === remote.etag) {
      setRanges(record.ranges);
      return;
    }
    if (record) {
      notice(
        `${label} held ranges of another version of ${remote.name} (${record.size} bytes, ETag ` +
          `${record.etag ?? "none"}; the server now has ${remote.size} bytes, ETag ${
            remote.etag ?? "none"
          }): ` +
          `discarding them`,
      );
    }
    setRanges([]);
    full = false; // the space the old bytes took is free again
    if (helper) {
      await helper.truncate(0);
      await helper.flush();
    } else if (sync) {
      sync.truncate(0);
      sync.flush();
    } else if (snapshot!.size > 0) {
      const w = await handle.createWritable();
      await w.close();
      snapshot = await handle.getFile();
    }
  }

  function used(): void {
    if (!version) {
      throw new Error(
        `${label}: used before identify() (fetchSource calls it with the remote file's version)`,
      );
    }
  }

  /** Fills `into` from the file's bytes at `offset` (in the kept range `i`), through the block buffers. */
  async function readKept(offset: number, into: Uint8Array, i: number): Promise<void> {
    let pos = 0;
    while (pos < into.length) {
      const at = offset + pos;
      const b = blocks.find((b) => b.start <= at && at < b.end) ?? await loadBlock(at, starts[i], ends[i]);
      b.used = ++tick;
      const n = Math.min(into.length - pos, b.end - at);
      into.set(new Uint8Array(b.buf, at - b.start, n), pos);
      pos += n;
    }
  }

  /**
   * Reads the aligned block of the file holding `at` (within the kept range `[lo, hi)`) into the buffer of the
   * block used least recently. Aligned, and more than one, so that a pass going backwards over the layers, and
   * reads that straddle two blocks, read each block once too.
   */
  async function loadBlock(at: number, lo: number, hi: number): Promise<Block> {
    const aligned = at - (at % blockBytes);
    const start = Math.max(aligned, lo), end = Math.min(aligned + blockBytes, hi);
    const b = blocks.reduce((x, y) => (y.used < x.used ? y : x));
    b.start = b.end = 0;
    counts.blockLoads++;
    let buf = b.buf.byteLength >= blockBytes ? b.buf : new ArrayBuffer(blockBytes); // once per block buffer
    let got = 0;
    let reader: ReadableStreamBYOBReader | undefined;
    const slice = helper ? undefined : snapshot!.slice(start, end);
    try {
      reader = slice?.stream().getReader({ mode: "byob" });
    } catch { /* no BYOB reads of a Blob's stream: a copy per block */ }
    if (helper) {
      // the buffer goes to the worker and back (transferred, not copied)
      b.buf = new ArrayBuffer(0);
      ({ buf, got } = await helper.read(buf, start, end - start));
    } else if (reader) {
      while (got < end - start) {
        const { done, value } = await reader.read(new Uint8Array(buf, got, end - start - got));
        if (!value) break;
        buf = value.buffer as ArrayBuffer; // the same memory, handed back
        got += value.length;
        if (done) break;
      }
      await reader.cancel().catch(() => {}); // the slice is read: let the blob's reader go
    } else {
      const bytes = new Uint8Array(await slice!.arrayBuffer());
      new Uint8Array(buf).set(bytes);
      got = bytes.length;
    }
    b.buf = buf;
    if (got !== end - start) {
      throw new Error(`${label}: short read: got ${got} of bytes ${start}..${end} (the file changed?)`);
    }
    b.start = start;
    b.end = end;
    return b;
  }

  function schedule() {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      serial(commit).catch((err) => notice(`${label}: writing failed: ${err?.message ?? err}`));
    }, QUIET_MS);
  }

  /** Writes the pending ranges (main thread) and the record. */
  async function commit(): Promise<void> {
    if (!dirty || !version) return;
    const record = () => encodeRecord();
    if (helper) {
      try {
        await helper.flush(); // the ranges' bytes before the record that names them
        const r = record();
        await helper.write(r, version.size);
        await helper.truncate(version.size + r.length);
        await helper.flush();
        dirty = false;
        unrecorded = 0;
        counts.writes++;
      } catch (err) {
        stopKeeping(err);
      }
      return;
    }
    if (sync) {
      try {
        sync.flush(); // the ranges' bytes before the record that names them
        const r = record();
        sync.write(r, { at: version.size });
        sync.truncate(version.size + r.length);
        sync.flush();
        dirty = false;
        unrecorded = 0;
        counts.writes++;
      } catch (err) {
        stopKeeping(err);
      }
      return;
    }
    const batch = pending;
    pending = [];
    pendingBytes = 0;
    let w: WritableFile | undefined;
    try {
      w = await handle!.createWritable({ keepExistingData: true });
      for (const p of batch) await w.write({ type: "write", position: p.offset, data: p.data });
      for (const p of batch) addRange(p.offset, p.offset + p.data.length);
      const r = record();
      await w.write({ type: "write", position: version.size, data: r });
      await w.truncate(version.size + r.length);
      await w.close(); // the batch and the record become the file at once
      dirty = false;
      counts.writes++;
    } catch (err) {
      await w?.abort().catch(() => {});
      // the record in memory says what the file holds: take back what was not written
      const f = snapshot = await handle!.getFile();
      const back = await readRecord(
        f.size,
        async (o, n) => new Uint8Array(await f.slice(o, o + n).arrayBuffer()),
      );
      setRanges(back && back.size === version.size && back.etag === version.etag ? back.ranges : []);
      dirty = false;
      stopKeeping(err);
      return;
    }
    snapshot = await handle!.getFile();
  }

  return {
    name,
    identify: (remote) => serial(() => identify(remote)),
    get(offset, into) {
      return serial(async () => {
        used();
        const end = offset + into.length;
        const i = holding(offset, end);
        if (i >= 0) {
          counts.fileReads++;
          if (sync) {
            if (readSync(sync, offset, into) !== into.length) {
              throw new Error(`${label}: short read of kept bytes ${offset}..${end} (the file changed?)`);
            }
          } else await readKept(offset, into, i);
          return true;
        }
        for (const p of pending) {
          if (p.offset <= offset && end <= p.offset + p.data.length) {
            into.set(p.data.subarray(offset - p.offset, end - p.offset));
            counts.pendingReads++;
            // read again: the bytes fetched so far are being used, write them now rather than after a pause
            if (timer !== undefined) {
              clearTimeout(timer);
              timer = undefined;
              serial(commit).catch((err) => notice(`${label}: writing failed: ${err?.message ?? err}`));
            }
            return true;
          }
        }
        return false;
      });
    },
    put(offset, data) {
      return serial(async () => {
        used();
        if (full || holding(offset, offset + data.length) >= 0 || offset + data.length > version!.size) {
          return;
        }
        if (sync || helper) {
          try {
            if (sync) sync.write(data, { at: offset });
            else await helper!.write(data, offset);
          } catch (err) {
            return stopKeeping(err);
          }
          addRange(offset, offset + data.length);
          unrecorded += data.length;
        } else {
          pending.push({ offset, data: data.slice() });
          pendingBytes += data.length;
        }
        dirty = true;
        // the record too, now and then, so that a page closed in the middle of a download keeps most of it
        if (pendingBytes >= flushBytes || unrecorded >= flushBytes) await commit();
        else schedule();
      });
    },
    bytes: () => kept + pendingBytes,
    stats: () => ({ ...counts }),
    flush: () => serial(commit),
    async close() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await serial(commit);
      sync?.close();
      sync = undefined;
      await helper?.close();
      helper = undefined;
      version = undefined;
    },
  };
}

/** Reads kept bytes with a sync access handle; a view it refuses (shared memory) goes through a copy. */
function readSync(sync: SyncFile, offset: number, into: Uint8Array): number {
  try {
    return sync.read(into, { at: offset });
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const copy = new Uint8Array(into.length);
    const n = sync.read(copy, { at: offset });
    into.set(copy);
    return n;
  }
}

/** A dedicated worker: the one place sync access handles exist. */
function isWorker(): boolean {
  const g = globalThis as { WorkerGlobalScope?: unknown; document?: unknown };
  return g.WorkerGlobalScope !== undefined && g.document === undefined;
}

/** The file through a worker's sync access handle, for the main thread (every call one message). */
interface HelperFile {
  size(): Promise<number>;
  /** Reads `n` bytes at `at` into `buf` (transferred there and back); the bytes read. */
  read(buf: ArrayBuffer, at: number, n: number): Promise<{ buf: ArrayBuffer; got: number }>;
  /** Writes `data` at `at`, copied through one buffer that goes to the worker and back (no copy kept). */
  write(data: Uint8Array, at: number): Promise<void>;
  truncate(size: number): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** The helper worker: one sync access handle, one message at a time, answered in order. */
const HELPER = `
let file;
onmessage = async ({ data: m }) => {
  try {
    if (m.op === "open") {
      file = await m.handle.createSyncAccessHandle();
      return postMessage({ ok: true });
    }
    if (m.op === "read") {
      const got = file.read(new Uint8Array(m.buf, 0, m.n), { at: m.at });
      return postMessage({ ok: true, got, buf: m.buf }, [m.buf]);
    }
    if (m.op === "write") {
      file.write(new Uint8Array(m.buf, 0, m.n), { at: m.at });
      return postMessage({ ok: true, buf: m.buf }, [m.buf]);
    }
    if (m.op === "truncate") file.truncate(m.size);
    else if (m.op === "flush") file.flush();
    else if (m.op === "close") file.close();
    postMessage({ ok: true, size: m.op === "size" ? file.getSize() : undefined });
  } catch (err) {
    postMessage({ error: String(err && err.message || err), name: err && err.name });
  }
};`;

/** Whether a helper worker can hold `handle`: a real handle (it is posted to the worker) and a `Worker`. */
function helperWorks(handle: OpfsFileHandle): boolean {
  const g = globalThis as { Worker?: unknown; FileSystemFileHandle?: new () => unknown; document?: unknown };
  return typeof g.Worker === "function" && g.document !== undefined && g.FileSystemFileHandle !== undefined &&
    handle instanceof g.FileSystemFileHandle;
}

async function startHelper(handle: OpfsFileHandle, label: string, writeBytes: number): Promise<HelperFile> {
  let spare = new ArrayBuffer(0); // the buffer writes are copied through, between the worker's turns
  const url = URL.createObjectURL(new Blob([HELPER], { type: "text/javascript" }));
  const worker = new Worker(url);
  URL.revokeObjectURL(url);
  type Reply = {
    ok?: boolean;
    error?: string;
    name?: string;
    got?: number;
    buf?: ArrayBuffer;
    size?: number;
  };
  const waiting: { resolve(r: Reply): void; reject(e: Error): void }[] = [];
  worker.onmessage = (e: MessageEvent<Reply>) => {
    const w = waiting.shift()!;
    if (e.data.error === undefined) w.resolve(e.data);
    else w.reject(Object.assign(new Error(`${label}: ${e.data.error}`), { name: e.data.name ?? "Error" }));
  };
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    for (const w of waiting.splice(0)) w.reject(new Error(`${label}: its worker failed: ${e.message}`));
  };
  const call = (m: object, transfer: Transferable[] = []) =>
    new Promise<Reply>((resolve, reject) => {
      waiting.push({ resolve, reject });
      worker.postMessage(m, transfer);
    });
  try {
    await call({ op: "open", handle });
  } catch (err) {
    worker.terminate();
    throw new Error(
      `cannot open it for reading and writing (open in another tab?): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return {
    size: async () => (await call({ op: "size" })).size!,
    async read(buf, at, n) {
      const r = await call({ op: "read", buf, at, n }, [buf]);
      return { buf: r.buf!, got: r.got! };
    },
    async write(data, at) {
      for (let pos = 0; pos < data.length;) {
        // a lost buffer (a write that failed stays in the worker) is made again
        const buf = spare.byteLength ? spare : new ArrayBuffer(writeBytes);
        spare = new ArrayBuffer(0);
        const n = Math.min(buf.byteLength, data.length - pos);
        new Uint8Array(buf, 0, n).set(data.subarray(pos, pos + n));
        spare = (await call({ op: "write", buf, n, at: at + pos }, [buf])).buf!;
        pos += n;
      }
    },
    async truncate(size) {
      await call({ op: "truncate", size });
    },
    async flush() {
      await call({ op: "flush" });
    },
    async close() {
      await call({ op: "close" }).catch(() => {});
      worker.terminate();
    },
  };
}
