/**
 * Where weights come from: a byte range reader over a file, a URL or memory, and a model directory made of
 * named files. No Deno APIs here, so the same engine reads from a local file in Deno and from a URL or a
 * user-picked `File` in a browser; the Deno file edge lives in `deno_files.ts`.
 *
 * @module
 */

import { describeValue, isThenable } from "../util/describe.ts";

/** Random-access reader of one weight file. */
export interface WeightSource {
  /** For error messages: a file path or URL. */
  readonly name: string;
  /** Size of the file in bytes. */
  size(): Promise<number>;
  /**
   * Fills `into` completely with bytes `[offset, offset + into.length)`; throws a clear error on a short
   * read. Reading into a caller-provided buffer lets the training loop fill a fixed WebAssembly memory view.
   */
  read(offset: number, into: Uint8Array): Promise<void>;
  /**
   * A hint that reads of consecutive ranges from `offset` up to `end` follow, in that order: a remote source
   * answers them with one response read as they come (see {@linkcode fetchSource}). Never needed for
   * correctness; a read elsewhere leaves it for later (two calls reading one source at once each keep theirs).
   */
  expect?(offset: number, end: number): void;
  /**
   * What one read costs beyond its bytes, in bytes that could be read in its time instead (a remote
   * source: a request's round trip, 1 MB for {@linkcode fetchSource} by default); a reader of scattered
   * ranges reads those closer than this as one. Absent: a read costs little more than its bytes (a local
   * file, memory).
   */
  readonly requestBytes?: number;
  /** Releases the underlying handle, if any. */
  close?(): void;
}

/** Destination of a streamed write (a file being written, a network upload, a growing buffer). */
export interface ByteSink {
  /** Writes all of `chunk`; the caller may reuse `chunk` once the promise resolves. */
  write(chunk: Uint8Array): Promise<void>;
}

/** A model directory: `config.json`, safetensors files, tokenizer files, ... addressed by file name. */
export interface ModelFiles {
  /** For error messages: the directory path or base URL. */
  readonly name: string;
  /** The file's text, or `undefined` when the file does not exist. */
  readText(file: string): Promise<string | undefined>;
  /** A reader for the file; a missing file surfaces as {@linkcode FileNotFoundError} on first use. */
  source(file: string): WeightSource;
  /** File names in the directory, when the backend can list them. */
  list?(): Promise<string[]>;
}

/** Thrown by a {@linkcode WeightSource} whose file does not exist (lets callers tell "missing" from "bad"). */
export class FileNotFoundError extends Error {
  /** @param name the file path or URL that does not exist */
  constructor(name: string, options?: ErrorOptions) {
    super(`file not found: ${name}`, options);
    this.name = "FileNotFoundError";
  }
}

/**
 * Throws unless `value` is a {@linkcode WeightSource} (`where`: the function it was given to), naming what it
 * is instead: a URL or path string, a Promise, bytes.
 */
export function checkWeightSource(value: unknown, where: string): asserts value is WeightSource {
  const v = value as Partial<WeightSource> | null | undefined;
  if (v && typeof v.read === "function" && typeof v.size === "function") return;
  let got = describeValue(value);
  if (typeof value === "string") got += ": wrap a URL in fetchSource(url) (a path: fileSource(path) in Deno)";
  else if (isThenable(value)) got += " — did you forget await?";
  else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    got += ": wrap bytes in bytesSource(bytes)";
  } else if (typeof Blob !== "undefined" && value instanceof Blob) got += ": wrap it in blobSource(file)";
  throw new TypeError(
    `${where}: expected a weight source (fetchSource, bytesSource, blobSource …), got ${got}`,
  );
}

/**
 * Throws unless `value` is {@linkcode ModelFiles} (`where`: the function it was given to), naming what it is
 * instead: a URL or path string, a Promise, an object of file contents.
 */
export function checkModelFiles(value: unknown, where: string): asserts value is ModelFiles {
  const v = value as Partial<ModelFiles> | null | undefined;
  if (v && typeof v.readText === "function" && typeof v.source === "function") return;
  let got = describeValue(value);
  if (typeof value === "string") {
    got += ": wrap a folder's URL in urlFiles(url) (a path: dirFiles(path) in Deno)";
  } else if (isThenable(value)) got += " — did you forget await?";
  else if (v && typeof v === "object" && Object.keys(v).some((k) => k.includes("."))) {
    got = "an object of file contents: wrap it in memoryFiles({ ... })";
  }
  throw new TypeError(`${where}: expected model files (urlFiles, memoryFiles, blobFiles …), got ${got}`);
}

/** Throws unless `[offset, offset+length)` is a valid integer byte range. */
export function checkRange(name: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length)) {
    throw new RangeError(`${name}: invalid read range offset=${offset} length=${length}`);
  }
}

/**
 * A {@linkcode WeightSource} over bytes already in memory.
 *
 * @example
 * ```ts
 * const src = bytesSource(new Uint8Array([1, 2, 3]), "inline");
 * const out = new Uint8Array(2);
 * await src.read(1, out); // out = [2, 3]
 * ```
 */
export function bytesSource(bytes: Uint8Array | ArrayBuffer, name = "<memory>"): WeightSource {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`bytesSource: expected a Uint8Array or ArrayBuffer, got ${describeValue(bytes)}`);
  }
  return {
    name,
    size: () => Promise.resolve(bytes.length),
    read(offset, into) {
      // Reject (not throw) so a bad range fails like every other read error.
      try {
        checkRange(name, offset, into.length);
        const end = offset + into.length;
        if (end > bytes.length) {
          throw new Error(
            `${name}: short read: wanted bytes ${offset}..${end} but the data has ${bytes.length} bytes`,
          );
        }
        into.set(bytes.subarray(offset, end));
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    },
  };
}

/**
 * A {@linkcode WeightSource} over a `Blob`, e.g. a `File` the user picked in a browser. The Blob API
 * hands out fresh buffers, so each read allocates a temporary copy of the range.
 */
export function blobSource(blob: Blob, name?: string): WeightSource {
  const fileName = (blob as { name?: unknown }).name; // a File has one; File may not exist everywhere
  name ??= typeof fileName === "string" ? fileName : "<blob>";
  return {
    name,
    size: () => Promise.resolve(blob.size),
    async read(offset, into) {
      checkRange(name, offset, into.length);
      const end = offset + into.length;
      if (end > blob.size) {
        throw new Error(
          `${name}: short read: wanted bytes ${offset}..${end} but the blob has ${blob.size} bytes`,
        );
      }
      into.set(new Uint8Array(await blob.slice(offset, end).arrayBuffer()));
    },
  };
}

/** Options for {@linkcode fetchSource} and {@linkcode urlFiles}. */
export interface FetchSourceOptions {
  /** Name used in error messages (default: the URL). */
  name?: string;
  /** Extra request headers, e.g. `authorization`. */
  headers?: Record<string, string>;
  /** The fetch implementation (default: `globalThis.fetch`). */
  fetch?: typeof fetch;
  /**
   * Keeps what was fetched, by byte range, and serves a range read again from it (e.g.
   * {@linkcode memoryRangeCache}, {@linkcode opfsRangeCache} for a browser's Origin Private File System, or
   * {@linkcode cacheStorageRangeCache} for the Cache API):
   * a training step reads every layer twice (the forward, and the backward's recompute) and every step the
   * same ranges, so with a cache large enough for the pack only the first reads go to the network.
   */
  cache?: RangeCache;
  /**
   * A file of at most this many bytes is downloaded whole, in one request, at the first read, and every read
   * is then served from that copy (default 0: never). For a small pack this turns a training step's reads
   * (each layer twice, the vocabulary once) into memory reads, at the cost of holding the file; a server
   * that ignores `Range` is then no error for such a file.
   */
  wholeBelow?: number;
  /**
   * What a request is worth in bytes ({@linkcode WeightSource.requestBytes}; default 1 MB): scattered rows
   * (a step's token rows) closer than this are read as one range.
   */
  requestBytes?: number;
}

/**
 * What a request is worth in bytes, by default: about 80 ms of round trip at 100 Mbit/s, or one subrequest
 * of a Cloudflare Worker's 50 on the free plan (where the count, not the bytes, is the limit).
 */
const REQUEST_BYTES = 1 << 20;

/**
 * A store of byte ranges of one file, by offset and length, filled by {@linkcode fetchSource}'s `cache`
 * option. Its entries must be of the file served at that URL (key the cache by a URL that names the
 * content, like a pack's file name, which holds the checkpoint's fingerprint); the pack's checksums catch a
 * stale entry all the same.
 */
export interface RangeCache {
  /** Fills `into` with the bytes at `offset` if exactly this range is kept; resolves whether it was. */
  get(offset: number, into: Uint8Array): Promise<boolean>;
  /** Keeps a copy of `bytes`, the file's bytes at `offset` (or not, when full). */
  put(offset: number, bytes: Uint8Array): Promise<void>;
  /**
   * Called by {@linkcode fetchSource} before the first `get`, with the version of the file the server has:
   * a cache that outlives the page (e.g. {@linkcode opfsRangeCache}) drops what it kept of another version.
   */
  identify?(file: CachedFile): Promise<void>;
}

/** The version of a remote file, as its server describes it (for {@linkcode RangeCache.identify}). */
export interface CachedFile {
  /** The URL (or the name given to {@linkcode fetchSource}). */
  name: string;
  /** Its size in bytes. */
  size: number;
  /** The `ETag` of its first response, or `null` when the server sends none (then only the size tells). */
  etag: string | null;
}

const CONTENT_RANGE = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i;
const UNSATISFIED_RANGE = /^\s*bytes\s+\*\/(\d+)\s*$/i;

/**
 * A {@linkcode WeightSource} over HTTP(S) that reads byte ranges with `Range` requests. Every read checks
 * that the server answered `206 Partial Content` with the requested `Content-Range`; a server that ignores
 * `Range` (status 200) is an error rather than a silent whole-file download. The size comes from a `HEAD`
 * request's `Content-Length`, or else from the total of a one-byte range probe. A file whose `ETag` or size
 * changes between responses (replaced on the server mid-run) stops the run with an error.
 */
export function fetchSource(url: string | URL, options: FetchSourceOptions = {}): WeightSource {
  if (!options.fetch) checkHttpUrl(url, "fetchSource");
  const href = String(url);
  const name = options.name ?? href;
  const doFetch = namedFetch(name, options.fetch ?? globalThis.fetch);
  const baseHeaders = options.headers ?? {};
  let sizePromise: Promise<number> | undefined;
  // what the first response said the file is: a later one that differs means it changed mid-run
  let seen: { etag: string | null; size: number | undefined } | undefined;
  const checkUnchanged = (res: Response, size: number | undefined) => {
    const etag = res.headers.get("etag");
    if (!seen) {
      seen = { etag, size };
      return;
    }
    const etagChanged = seen.etag !== null && etag !== null && etag !== seen.etag;
    const sizeChanged = seen.size !== undefined && size !== undefined && size !== seen.size;
    if (etagChanged || sizeChanged) {
      throw new Error(
        `${name} changed on the server while it was being read (` +
          (etagChanged ? `ETag ${seen.etag} → ${etag}` : `size ${seen.size} → ${size} bytes`) +
          `): stopping; start again once the file is stable`,
      );
    }
    seen.etag ??= etag;
    seen.size ??= size;
  };

  /** {@linkcode checkUnchanged} for a response with a body: the body is cancelled before the error. */
  const checkResponseUnchanged = async (res: Response, size: number | undefined) => {
    try {
      checkUnchanged(res, size);
    } catch (err) {
      await res.body?.cancel();
      throw err;
    }
  };

  // identity: a compressed body would make Content-Length and byte ranges refer to the wrong bytes.
  const headers = (extra: Record<string, string>) => ({
    ...baseHeaders,
    "accept-encoding": "identity",
    ...extra,
  });

  async function probeSize(): Promise<number> {
    const head = await doFetch(href, { method: "HEAD", headers: headers({}) });
    await head.body?.cancel();
    if (head.status === 404 || head.status === 410) throw new FileNotFoundError(name);
    const length = head.headers.get("content-length");
    const encoded = (head.headers.get("content-encoding") ?? "identity") !== "identity";
    if (head.ok && length !== null && /^\d+$/.test(length.trim()) && !encoded) {
      checkUnchanged(head, Number(length));
      return Number(length);
    }
    // No usable HEAD: ask for one byte and read the total from Content-Range.
    const res = await doFetch(href, { headers: headers({ range: "bytes=0-0" }) });
    await res.body?.cancel();
    if (res.status === 404 || res.status === 410) throw new FileNotFoundError(name);
    const range = res.headers.get("content-range") ?? "";
    if (res.status === 416) {
      const m = UNSATISFIED_RANGE.exec(range);
      if (m) return Number(m[1]); // empty file
    }
    if (res.status === 200) throw ignoredRange(name);
    const m = CONTENT_RANGE.exec(range);
    if (res.status !== 206 || !m || m[3] === "*") {
      throw new Error(
        `${name}: cannot determine the file size (HEAD and range probe gave status ${res.status})`,
      );
    }
    return Number(m[3]);
  }

  /** A `206` response to `bytes=offset-last`, checked (status, Content-Range, unchanged file). */
  async function rangeResponse(offset: number, last: number): Promise<Response> {
    const res = await doFetch(href, { headers: headers({ range: `bytes=${offset}-${last}` }) });
    if (res.status !== 206) {
      await res.body?.cancel();
      if (res.status === 200) throw ignoredRange(name);
      if (res.status === 404 || res.status === 410) throw new FileNotFoundError(name);
      if (res.status === 416) {
        throw new Error(`${name}: short read: bytes ${offset}..${last + 1} lie beyond the end of the file`);
      }
      throw new Error(`${name}: HTTP ${res.status} ${res.statusText} for bytes ${offset}..${last + 1}`);
    }
    const m = CONTENT_RANGE.exec(res.headers.get("content-range") ?? "");
    if (!m || Number(m[1]) !== offset || Number(m[2]) !== last) {
      await res.body?.cancel();
      const got = res.headers.get("content-range");
      const short = m && Number(m[1]) === offset && Number(m[2]) < last;
      throw new Error(
        `${name}: ${
          short ? "short read: " : ""
        }asked for bytes ${offset}-${last}, server sent Content-Range ${
          got === null ? "(none)" : JSON.stringify(got)
        }`,
      );
    }
    await checkResponseUnchanged(res, m[3] === "*" ? undefined : Number(m[3]));
    if (!res.body) throw new Error(`${name}: short read: empty response body`);
    return res;
  }

  // consecutive reads the caller announced (`expect`) are answered by one response, read as they come. Up to
  // CONCURRENT_RUNS announcements and their responses are kept, so two calls at once on one source (two
  // `train`s, `train` beside `evaluate`) each keep theirs instead of ending the other's at every read.
  const scratch = new ScratchPool();
  const hints: { start: number; end: number }[] = []; // the latest first
  const runs: RangeRun[] = []; // the one taken from last first
  const endRun = (r: RangeRun) => {
    runs.splice(runs.indexOf(r), 1);
    r.done.then(() => r.cancel(), () => {});
  };

  async function readOnce(offset: number, into: Uint8Array): Promise<void> {
    const res = await rangeResponse(offset, offset + into.length - 1);
    await readBodyInto(name, res, into, scratch);
  }

  function readRemote(offset: number, into: Uint8Array): Promise<void> {
    const end = offset + into.length;
    // at or a short way ahead of a run's position (what was between came from the cache): skip to it; the
    // nearest, so one caller does not take over another's run just behind its own
    let r: RangeRun | undefined;
    for (const c of runs) {
      const ok = offset >= c.next && offset - c.next <= RUN_SKIP_BYTES && end <= c.end;
      if (ok && (!r || c.next > r.next)) r = c;
    }
    if (r) {
      runs.splice(runs.indexOf(r), 1);
      if (end < r.end) runs.unshift(r); // else its last bytes: the run is over
      return r.take(into, offset - r.next);
    }
    const hint = hints.find((h) => h.start <= offset && end < h.end);
    if (hint) {
      const r = rangeRun(name, rangeResponse(offset, hint.end - 1), offset, hint.end, scratch);
      runs.unshift(r);
      while (runs.length > CONCURRENT_RUNS) endRun(runs.at(-1)!);
      return r.take(into);
    }
    return readOnce(offset, into);
  }

  /** The whole file, when it is small enough to keep (`wholeBelow`), else `undefined`. */
  async function download(): Promise<Uint8Array | undefined> {
    sizePromise ??= probeSize();
    const size = await sizePromise;
    if (size > wholeBelow) return undefined;
    const res = await doFetch(href, { headers: headers({}) });
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel();
      throw new FileNotFoundError(name);
    }
    if (res.status !== 200) {
      await res.body?.cancel();
      throw new Error(`${name}: HTTP ${res.status} ${res.statusText} for the whole file`);
    }
    await checkResponseUnchanged(res, size);
    const bytes = new Uint8Array(size);
    await readBodyInto(name, res, bytes, scratch);
    return bytes;
  }

  const cache = options.cache, wholeBelow = options.wholeBelow ?? 0;
  let whole: Promise<Uint8Array | undefined> | undefined;
  let identified: Promise<void> | undefined; // the cache told which version of the file this is
  return {
    name,
    requestBytes: options.requestBytes ?? REQUEST_BYTES,
    size() {
      sizePromise ??= probeSize();
      return sizePromise;
    },
    expect(offset, end) {
      const same = hints.findIndex((h) => h.start === offset && h.end === end);
      if (same >= 0) hints.splice(same, 1);
      hints.unshift({ start: offset, end });
      hints.length = Math.min(hints.length, CONCURRENT_RUNS);
    },
    async read(offset, into) {
      checkRange(name, offset, into.length);
      if (into.length === 0) return;
      if (wholeBelow > 0) {
        if (!whole) {
          whole = download();
          whole.catch(() => (whole = undefined)); // a failed download is tried again by the next read
        }
        const bytes = await whole;
        if (bytes) {
          if (offset + into.length > bytes.length) {
            throw new Error(
              `${name}: short read: bytes ${offset}..${offset + into.length} lie beyond the end of the file`,
            );
          }
          return into.set(bytes.subarray(offset, offset + into.length));
        }
      }
      if (cache?.identify) {
        if (!identified) {
          identified = (sizePromise ??= probeSize())
            .then((size) => cache.identify!({ name, size, etag: seen?.etag ?? null }));
          identified.catch(() => (identified = undefined)); // tried again by the next read
        }
        await identified;
      }
      if (cache && await cache.get(offset, into)) return;
      await readRemote(offset, into);
      await cache?.put(offset, into);
    },
  };
}

/**
 * Announced ranges, and responses answering them, that {@linkcode fetchSource} keeps at once: one per call
 * reading the source at the same time, for two. Each open response holds a connection (a browser has six
 * per host) and what the server sent ahead of the reads.
 */
const CONCURRENT_RUNS = 2;

/**
 * How far ahead of a run's position a read may start and still be answered by the run (the bytes between
 * passed over): less than a new request costs, and what a cache hit leaves out of a layer or a chunk.
 */
const RUN_SKIP_BYTES = 4 << 20;

/** One ranged response read piece by piece by consecutive reads. */
interface RangeRun {
  /** Where the next read must start, and where the response ends. */
  next: number;
  readonly end: number;
  /** Fills `into` with the next bytes (after the reads before it), after passing over `skip` bytes. */
  take(into: Uint8Array, skip?: number): Promise<void>;
  /** Settles when the reads taken so far have. */
  done: Promise<void>;
  cancel(): void;
}

function rangeRun(
  name: string,
  response: Promise<Response>,
  start: number,
  end: number,
  scratch: ScratchPool,
): RangeRun {
  let body: BodyReader | undefined;
  let failed: unknown;
  const r: RangeRun = {
    next: start,
    end,
    done: Promise.resolve(),
    take(into, skip = 0) {
      r.next += skip + into.length;
      const last = r.next === end;
      const job = r.done.then(async () => {
        if (failed) throw failed;
        try {
          body ??= new BodyReader(name, (await response).body!, scratch);
          if (await body.fill(into, skip) < into.length) {
            throw new Error(`${name}: short read: the response ended before byte ${end}`);
          }
          if (last) body.release(); // its last bytes: the scratch buffer goes back to the pool
        } catch (err) {
          failed = brokenBody(name, err);
          body?.cancel();
          throw failed;
        }
      });
      r.done = job.catch(() => {});
      return job;
    },
    cancel() {
      if (body) body.cancel();
      else response.then((res) => res.body?.cancel(), () => {});
    },
  };
  return r;
}

/**
 * Bytes per read of a response body (the scratch buffer a BYOB reader fills): a read costs a promise and,
 * in workerd, a trip out of the isolate, so not too small; the buffer is held while a body is read.
 */
const SCRATCH_BYTES = 256 << 10;

/**
 * Scratch buffers for {@linkcode BodyReader}s, reused from body to body: a source reads hundreds of MB a
 * training step, and a fresh buffer per read is garbage until V8 collects it (see `BodyReader`).
 */
class ScratchPool {
  readonly #free: ArrayBuffer[] = [];
  take(): ArrayBuffer {
    return this.#free.pop() ?? new ArrayBuffer(SCRATCH_BYTES);
  }
  /** Keeps `buffer` for the next body (not a detached one, nor more than a few). */
  give(buffer: ArrayBuffer): void {
    if (buffer.byteLength === SCRATCH_BYTES && this.#free.length < 4) this.#free.push(buffer);
  }
}

/**
 * A response body copied into caller buffers. Where the body is a byte stream (fetch in Deno, browsers,
 * workerd) it is read with a BYOB reader into one scratch buffer, reused read after read: a default reader
 * hands out a fresh buffer per read (4 KB each in workerd, ~100,000 per step of the 0.5B), garbage that V8
 * frees only at its next collection, ~100 MB above workerd's idle size over a step. Not straight into the
 * caller's buffer: a BYOB read detaches the buffer it fills, which WebAssembly memory forbids. Other bodies
 * (a `ReadableStream` of values) go through the default reader.
 */
class BodyReader {
  readonly #name: string;
  readonly #pool: ScratchPool;
  #byob?: ReadableStreamBYOBReader;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #scratch?: ArrayBuffer;
  /** What the default reader handed out and the caller has not taken yet. */
  #left?: Uint8Array;
  #pending = false;

  constructor(name: string, body: ReadableStream<Uint8Array>, pool: ScratchPool) {
    this.#name = name;
    this.#pool = pool;
    try {
      this.#byob = body.getReader({ mode: "byob" });
      this.#scratch = pool.take();
    } catch {
      this.#reader = body.getReader(); // not a byte stream
    }
  }

  /** The body's next bytes, at most `max` (a view valid until the next call), or `undefined` at its end. */
  async #next(max: number): Promise<Uint8Array | undefined> {
    if (this.#byob) {
      const n = Math.min(max, SCRATCH_BYTES);
      this.#scratch ??= this.#pool.take();
      this.#pending = true;
      const { done, value } = await this.#byob.read(new Uint8Array(this.#scratch, 0, n));
      this.#pending = false;
      // the read detached the buffer it was given: its bytes come back in a new one, kept for the next read
      this.#scratch = value ? value.buffer as ArrayBuffer : undefined;
      return done ? undefined : value;
    }
    if (!this.#left?.length) {
      const { done, value } = await this.#reader!.read();
      if (done) return undefined;
      this.#left = value;
    }
    const out = this.#left.subarray(0, max);
    this.#left = this.#left.subarray(out.length);
    return out;
  }

  /**
   * Passes over `skip` bytes, then fills `into`; resolves how many bytes of `into` it filled (fewer only
   * when the body ended first).
   */
  async fill(into: Uint8Array, skip = 0): Promise<number> {
    for (let left = skip; left > 0;) {
      const chunk = await this.#next(left);
      if (!chunk) return 0;
      left -= chunk.length;
    }
    let pos = 0;
    while (pos < into.length) {
      const chunk = await this.#next(into.length - pos);
      if (!chunk) break;
      into.set(chunk, pos);
      pos += chunk.length;
    }
    return pos;
  }

  /** Whether the body has bytes after those read (it is read to its end to know). */
  async more(): Promise<boolean> {
    return (await this.#next(1)) !== undefined;
  }

  /** Done with the body: the reader's lock released and the scratch buffer back in the pool. */
  release(): void {
    (this.#byob ?? this.#reader)?.releaseLock();
    this.#byob = this.#reader = undefined;
    if (this.#scratch && !this.#pending) this.#pool.give(this.#scratch);
    this.#scratch = this.#left = undefined;
  }

  /** Cancels the rest of the body (errors ignored) and releases it. */
  cancel(): void {
    const reader = this.#byob ?? this.#reader;
    this.#byob = this.#reader = undefined;
    reader?.cancel().catch(() => {});
    if (this.#scratch && !this.#pending) this.#pool.give(this.#scratch);
    this.#scratch = this.#left = undefined;
  }
}

/**
 * `fetch` whose failures name the URL: a browser's network error is a bare `TypeError: Failed to fetch`
 * (refused connection, DNS, a cross-origin response without CORS headers), which alone says nothing of which
 * file. The error says the URL, the range asked for, and keeps the original as its `cause`.
 */
function namedFetch(name: string, doFetch: typeof fetch): typeof fetch {
  return async (input, init) => {
    try {
      return await doFetch(input, init);
    } catch (err) {
      if ((err as Error)?.name === "AbortError") throw err;
      const url = input instanceof Request ? input.url : String(input);
      const range = new Headers(init?.headers).get("range");
      // the likely causes of a bare network error (a TypeError, "Failed to fetch"), for http(s) and relative
      // URLs (a page's own); not of another error (Deno's NotCapable says which --allow-net is missing), nor
      // for another scheme's fetch (an R2 bucket's, r2:KEY), which says its own
      const network = (err as Error)?.name === "TypeError";
      const why = network && (/^https?:/i.test(url) || !/^[a-z][a-z0-9+.-]*:/i.test(url))
        ? ` (the server is unreachable, or refused the request, or its answer lacks CORS headers for this ` +
          `page's origin)`
        : "";
      throw new Error(
        `${name === url ? "" : `${name}: `}cannot fetch ${url}${range ? ` (${range})` : ""}: ${
          (err as Error)?.message ?? err
        }${why}`,
        { cause: err },
      );
    }
  };
}

/**
 * `url` (given to `where`) as an absolute http(s) URL, resolved against the page or worker where there is
 * one; throws unless it is one, what the default `fetch` can read by range. A local path would otherwise fail
 * as `Invalid URL`, and a `file:` URL at Deno's first request (`HEAD` is not supported there). Another scheme
 * goes through a `fetch` of the caller's own, which this check leaves to it.
 */
function checkHttpUrl(url: unknown, where: string): string {
  if (typeof url !== "string" && !(url instanceof URL)) {
    throw new TypeError(`${where}: expected a URL (a string or a URL), got ${describeValue(url)}`);
  }
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  let resolved: URL | undefined;
  try {
    resolved = new URL(url, page);
  } catch {
    // not a URL, nor one relative to a page
  }
  const protocol = resolved?.protocol;
  if (protocol === "http:" || protocol === "https:") return resolved!.href;
  throw new TypeError(
    `${where}: ${JSON.stringify(String(url))} is not an http(s) URL` +
      (protocol === undefined && !page
        ? " (nor is there a page here to resolve a relative one against)"
        : "") +
      "; a local file is read with blobSource(file) or bytesSource(bytes), or in Deno with fileSource(path) " +
      "(dirFiles(path) for a directory) from src/io/deno_files.ts",
  );
}

/** A response body that failed while being read (a bare `TypeError` in browsers), named. */
function brokenBody(name: string, err: unknown): unknown {
  if (!(err instanceof TypeError)) return err;
  return new Error(`${name}: the response broke off: ${err.message}`, { cause: err });
}

function ignoredRange(name: string): Error {
  return new Error(
    `${name}: the server ignored the HTTP Range request (status 200 instead of 206 Partial Content); ` +
      `streaming weights needs a server that supports byte ranges (a file small enough to hold can be ` +
      `downloaded whole instead, with fetchSource's option wholeBelow: its size limit in bytes)`,
  );
}

/** Copies a response body into `into`, failing unless it has exactly `into.length` bytes. */
async function readBodyInto(
  name: string,
  res: Response,
  into: Uint8Array,
  scratch: ScratchPool,
): Promise<void> {
  if (!res.body) throw new Error(`${name}: short read: empty response body`);
  const body = new BodyReader(name, res.body, scratch);
  let pos: number, more: boolean;
  try {
    pos = await body.fill(into);
    more = pos === into.length && await body.more();
  } catch (err) {
    body.cancel();
    throw brokenBody(name, err);
  }
  if (more) {
    body.cancel();
    throw new Error(`${name}: server sent more than the ${into.length} bytes asked for`);
  }
  body.release();
  if (pos !== into.length) {
    throw new Error(`${name}: short read: got ${pos} of ${into.length} bytes`);
  }
}

/** Encodes a file name relative to a directory URL, keeping `/` separators. */
function fileUrl(base: string, file: string): string {
  return new URL(file.split("/").map(encodeURIComponent).join("/"), base).href;
}

/** Options for {@linkcode urlFiles}: {@linkcode fetchSource}'s for every file, with a range cache per file. */
export interface UrlFilesOptions extends Omit<FetchSourceOptions, "cache"> {
  /**
   * The range cache of the file `file` (its name in the directory), called at each `source(file)`; none
   * where it returns `undefined`. With an {@linkcode opfsRangeCache} per weight file, a checkpoint read twice
   * (a fingerprint's read of every byte, then packing) is downloaded once. One cache for all files would
   * serve one file's bytes for another's, so `cache` itself is refused.
   */
  cacheFor?: (file: string) => RangeCache | undefined;
}

/**
 * A model directory served over HTTP(S): `readText` fetches whole small files (404 → `undefined`) and
 * `source` gives a {@linkcode fetchSource} for range reads.
 *
 * @example
 * ```ts
 * const files = urlFiles("https://example.com/Qwen2.5-0.5B-Instruct/");
 * const config = await files.readText("config.json");
 * ```
 */
export function urlFiles(baseUrl: string | URL, options: UrlFilesOptions = {}): ModelFiles {
  if ((options as FetchSourceOptions).cache !== undefined) {
    throw new TypeError(
      "urlFiles: options.cache would be shared by every file (one file's bytes served for another's at the " +
        "same offsets); give cacheFor(file), a cache per file",
    );
  }
  const { cacheFor, ...each } = options; // `each`: every file's fetchSource options
  // relative to the page (where there is one), as the files' URLs are made from it
  let base = options.fetch ? String(baseUrl) : checkHttpUrl(baseUrl, "urlFiles");
  if (!base.endsWith("/")) base += "/";
  const name = options.name ?? base;
  const doFetch = namedFetch(name, options.fetch ?? globalThis.fetch);
  return {
    name,
    async readText(file) {
      const url = fileUrl(base, file);
      const res = await doFetch(url, { headers: options.headers ?? {} });
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel();
        return undefined;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
      }
      return await res.text();
    },
    source(file) {
      return fetchSource(fileUrl(base, file), { ...each, name: undefined, cache: cacheFor?.(file) });
    },
  };
}

/** Options for {@linkcode memoryFiles}. */
export interface MemoryFilesOptions {
  /** Name used in error messages (default `"<memory>"`). */
  name?: string;
}

/**
 * A model directory held in memory: file name → bytes or text. Handy for tests and for files a browser
 * user picked.
 */
export function memoryFiles(
  files: Record<string, Uint8Array | string> | Map<string, Uint8Array | string>,
  options: MemoryFilesOptions = {},
): ModelFiles {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  return mapFiles(files, options.name ?? "<memory>", {
    text: (data) => Promise.resolve(typeof data === "string" ? data : decoder.decode(data)),
    open: (data, path) => bytesSource(typeof data === "string" ? encoder.encode(data) : data, path),
  });
}

/**
 * A model directory of `Blob`s, e.g. the `File`s of a folder a browser user picked or dropped: name →
 * blob. Files are read in ranges as needed, never whole, so a multi-gigabyte checkpoint can be converted
 * without holding it in memory.
 */
export function blobFiles(
  files: Record<string, Blob> | Map<string, Blob>,
  options: MemoryFilesOptions = {},
): ModelFiles {
  return mapFiles(files, options.name ?? "<files>", {
    text: (blob) => blob.text(),
    open: (blob, path) => blobSource(blob, path),
  });
}

/** A model directory over a name → file map, given how to read a file's text and how to open it. */
function mapFiles<T>(
  files: Record<string, T> | Map<string, T>,
  name: string,
  how: { text(file: T): Promise<string>; open(file: T, path: string): WeightSource },
): ModelFiles {
  const map = files instanceof Map ? files : new Map(Object.entries(files));
  return {
    name,
    readText(file) {
      const data = map.get(file);
      return data === undefined ? Promise.resolve(undefined) : how.text(data);
    },
    source(file) {
      const data = map.get(file);
      const path = `${name}/${file}`;
      if (data === undefined) {
        const missing = () => Promise.reject(new FileNotFoundError(path));
        return { name: path, size: missing, read: missing };
      }
      return how.open(data, path);
    },
    list() {
      return Promise.resolve([...map.keys()].sort());
    },
  };
}
