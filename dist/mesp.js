/* @ts-self-types="./mesp.d.ts" */
var __defProp = Object.defineProperty;
var __getOwnPropNames = Object.getOwnPropertyNames;
var __esm = (fn, res) => function __init() {
  return fn && (res = (0, fn[__getOwnPropNames(fn)[0]])(fn = 0)), res;
};
var __export = (target, all) => {
  for (var name in all)
    __defProp(target, name, { get: all[name], enumerable: true });
};

// src/util/describe.ts
function describeValue(value) {
  if (value === null || value === void 0) return String(value);
  if (typeof value === "string") return "a string";
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return `a ${typeof value} (${String(value)})`;
  }
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  if (isThenable(value)) return "a Promise";
  const name = value.constructor?.name;
  return name && name !== "Object" ? `a${/^[AEIO]/.test(name) ? "n" : ""} ${name}` : "an object";
}
function isThenable(value) {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof value.then === "function";
}
var init_describe = __esm({
  "src/util/describe.ts"() {
  }
});

// src/io/source.ts
function checkWeightSource(value, where) {
  const v = value;
  if (v && typeof v.read === "function" && typeof v.size === "function") return;
  let got = describeValue(value);
  if (typeof value === "string") got += ": wrap a URL in fetchSource(url) (a path: fileSource(path) in Deno)";
  else if (isThenable(value)) got += " \u2014 did you forget await?";
  else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    got += ": wrap bytes in bytesSource(bytes)";
  } else if (typeof Blob !== "undefined" && value instanceof Blob) got += ": wrap it in blobSource(file)";
  throw new TypeError(`${where}: expected a weight source (fetchSource, bytesSource, blobSource \u2026), got ${got}`);
}
function checkModelFiles(value, where) {
  const v = value;
  if (v && typeof v.readText === "function" && typeof v.source === "function") return;
  let got = describeValue(value);
  if (typeof value === "string") {
    got += ": wrap a folder's URL in urlFiles(url) (a path: dirFiles(path) in Deno)";
  } else if (isThenable(value)) got += " \u2014 did you forget await?";
  else if (v && typeof v === "object" && Object.keys(v).some((k) => k.includes("."))) {
    got = "an object of file contents: wrap it in memoryFiles({ ... })";
  }
  throw new TypeError(`${where}: expected model files (urlFiles, memoryFiles, blobFiles \u2026), got ${got}`);
}
function checkRange(name, offset, length) {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length)) {
    throw new RangeError(`${name}: invalid read range offset=${offset} length=${length}`);
  }
}
function bytesSource(bytes, name = "<memory>") {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`bytesSource: expected a Uint8Array or ArrayBuffer, got ${describeValue(bytes)}`);
  }
  return {
    name,
    size: () => Promise.resolve(bytes.length),
    read(offset, into) {
      try {
        checkRange(name, offset, into.length);
        const end = offset + into.length;
        if (end > bytes.length) {
          throw new Error(`${name}: short read: wanted bytes ${offset}..${end} but the data has ${bytes.length} bytes`);
        }
        into.set(bytes.subarray(offset, end));
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    }
  };
}
function blobSource(blob, name) {
  const fileName = blob.name;
  name ??= typeof fileName === "string" ? fileName : "<blob>";
  return {
    name,
    size: () => Promise.resolve(blob.size),
    async read(offset, into) {
      checkRange(name, offset, into.length);
      const end = offset + into.length;
      if (end > blob.size) {
        throw new Error(`${name}: short read: wanted bytes ${offset}..${end} but the blob has ${blob.size} bytes`);
      }
      into.set(new Uint8Array(await blob.slice(offset, end).arrayBuffer()));
    }
  };
}
function fetchSource(url, options = {}) {
  if (!options.fetch) checkHttpUrl(url, "fetchSource");
  const href = String(url);
  const name = options.name ?? href;
  const doFetch = namedFetch(name, options.fetch ?? globalThis.fetch);
  const baseHeaders = options.headers ?? {};
  let sizePromise;
  let seen;
  const checkUnchanged = (res, size) => {
    const etag = res.headers.get("etag");
    if (!seen) {
      seen = {
        etag,
        size
      };
      return;
    }
    const etagChanged = seen.etag !== null && etag !== null && etag !== seen.etag;
    const sizeChanged = seen.size !== void 0 && size !== void 0 && size !== seen.size;
    if (etagChanged || sizeChanged) {
      throw new Error(`${name} changed on the server while it was being read (` + (etagChanged ? `ETag ${seen.etag} \u2192 ${etag}` : `size ${seen.size} \u2192 ${size} bytes`) + `): stopping; start again once the file is stable`);
    }
    seen.etag ??= etag;
    seen.size ??= size;
  };
  const checkResponseUnchanged = async (res, size) => {
    try {
      checkUnchanged(res, size);
    } catch (err) {
      await res.body?.cancel();
      throw err;
    }
  };
  const headers = (extra) => ({
    ...baseHeaders,
    "accept-encoding": "identity",
    ...extra
  });
  async function probeSize() {
    const head = await doFetch(href, {
      method: "HEAD",
      headers: headers({})
    });
    await head.body?.cancel();
    if (head.status === 404 || head.status === 410) throw new FileNotFoundError(name);
    const length = head.headers.get("content-length");
    const encoded = (head.headers.get("content-encoding") ?? "identity") !== "identity";
    if (head.ok && length !== null && /^\d+$/.test(length.trim()) && !encoded) {
      checkUnchanged(head, Number(length));
      return Number(length);
    }
    const res = await doFetch(href, {
      headers: headers({
        range: "bytes=0-0"
      })
    });
    await res.body?.cancel();
    if (res.status === 404 || res.status === 410) throw new FileNotFoundError(name);
    const range = res.headers.get("content-range") ?? "";
    if (res.status === 416) {
      const m2 = UNSATISFIED_RANGE.exec(range);
      if (m2) return Number(m2[1]);
    }
    if (res.status === 200) throw ignoredRange(name);
    const m = CONTENT_RANGE.exec(range);
    if (res.status !== 206 || !m || m[3] === "*") {
      throw new Error(`${name}: cannot determine the file size (HEAD and range probe gave status ${res.status})`);
    }
    return Number(m[3]);
  }
  async function rangeResponse(offset, last) {
    const res = await doFetch(href, {
      headers: headers({
        range: `bytes=${offset}-${last}`
      })
    });
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
      throw new Error(`${name}: ${short ? "short read: " : ""}asked for bytes ${offset}-${last}, server sent Content-Range ${got === null ? "(none)" : JSON.stringify(got)}`);
    }
    await checkResponseUnchanged(res, m[3] === "*" ? void 0 : Number(m[3]));
    if (!res.body) throw new Error(`${name}: short read: empty response body`);
    return res;
  }
  const scratch = new ScratchPool();
  const hints = [];
  const runs = [];
  const endRun = (r) => {
    runs.splice(runs.indexOf(r), 1);
    r.done.then(() => r.cancel(), () => {
    });
  };
  async function readOnce(offset, into) {
    const res = await rangeResponse(offset, offset + into.length - 1);
    await readBodyInto(name, res, into, scratch);
  }
  function readRemote(offset, into) {
    const end = offset + into.length;
    let r;
    for (const c of runs) {
      const ok = offset >= c.next && offset - c.next <= RUN_SKIP_BYTES && end <= c.end;
      if (ok && (!r || c.next > r.next)) r = c;
    }
    if (r) {
      runs.splice(runs.indexOf(r), 1);
      if (end < r.end) runs.unshift(r);
      return r.take(into, offset - r.next);
    }
    const hint = hints.find((h) => h.start <= offset && end < h.end);
    if (hint) {
      const r2 = rangeRun(name, rangeResponse(offset, hint.end - 1), offset, hint.end, scratch);
      runs.unshift(r2);
      while (runs.length > CONCURRENT_RUNS) endRun(runs.at(-1));
      return r2.take(into);
    }
    return readOnce(offset, into);
  }
  async function download() {
    sizePromise ??= probeSize();
    const size = await sizePromise;
    if (size > wholeBelow) return void 0;
    const res = await doFetch(href, {
      headers: headers({})
    });
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
  let whole;
  let identified;
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
      hints.unshift({
        start: offset,
        end
      });
      hints.length = Math.min(hints.length, CONCURRENT_RUNS);
    },
    async read(offset, into) {
      checkRange(name, offset, into.length);
      if (into.length === 0) return;
      if (wholeBelow > 0) {
        if (!whole) {
          whole = download();
          whole.catch(() => whole = void 0);
        }
        const bytes = await whole;
        if (bytes) {
          if (offset + into.length > bytes.length) {
            throw new Error(`${name}: short read: bytes ${offset}..${offset + into.length} lie beyond the end of the file`);
          }
          return into.set(bytes.subarray(offset, offset + into.length));
        }
      }
      if (cache?.identify) {
        if (!identified) {
          identified = (sizePromise ??= probeSize()).then((size) => cache.identify({
            name,
            size,
            etag: seen?.etag ?? null
          }));
          identified.catch(() => identified = void 0);
        }
        await identified;
      }
      if (cache && await cache.get(offset, into)) return;
      await readRemote(offset, into);
      await cache?.put(offset, into);
    }
  };
}
function rangeRun(name, response, start, end, scratch) {
  let body;
  let failed;
  const r = {
    next: start,
    end,
    done: Promise.resolve(),
    take(into, skip = 0) {
      r.next += skip + into.length;
      const last = r.next === end;
      const job = r.done.then(async () => {
        if (failed) throw failed;
        try {
          body ??= new BodyReader(name, (await response).body, scratch);
          if (await body.fill(into, skip) < into.length) {
            throw new Error(`${name}: short read: the response ended before byte ${end}`);
          }
          if (last) body.release();
        } catch (err) {
          failed = brokenBody(name, err);
          body?.cancel();
          throw failed;
        }
      });
      r.done = job.catch(() => {
      });
      return job;
    },
    cancel() {
      if (body) body.cancel();
      else response.then((res) => res.body?.cancel(), () => {
      });
    }
  };
  return r;
}
function namedFetch(name, doFetch) {
  return async (input, init) => {
    try {
      return await doFetch(input, init);
    } catch (err) {
      if (err?.name === "AbortError") throw err;
      const url = input instanceof Request ? input.url : String(input);
      const range = new Headers(init?.headers).get("range");
      const network = err?.name === "TypeError";
      const why = network && (/^https?:/i.test(url) || !/^[a-z][a-z0-9+.-]*:/i.test(url)) ? ` (the server is unreachable, or refused the request, or its answer lacks CORS headers for this page's origin)` : "";
      throw new Error(`${name === url ? "" : `${name}: `}cannot fetch ${url}${range ? ` (${range})` : ""}: ${err?.message ?? err}${why}`, {
        cause: err
      });
    }
  };
}
function checkHttpUrl(url, where) {
  if (typeof url !== "string" && !(url instanceof URL)) {
    throw new TypeError(`${where}: expected a URL (a string or a URL), got ${describeValue(url)}`);
  }
  const page = globalThis.location?.href;
  let resolved;
  try {
    resolved = new URL(url, page);
  } catch {
  }
  const protocol = resolved?.protocol;
  if (protocol === "http:" || protocol === "https:") return resolved.href;
  throw new TypeError(`${where}: ${JSON.stringify(String(url))} is not an http(s) URL` + (protocol === void 0 && !page ? " (nor is there a page here to resolve a relative one against)" : "") + "; a local file is read with blobSource(file) or bytesSource(bytes), or in Deno with fileSource(path) (dirFiles(path) for a directory) from src/io/deno_files.ts");
}
function brokenBody(name, err) {
  if (!(err instanceof TypeError)) return err;
  return new Error(`${name}: the response broke off: ${err.message}`, {
    cause: err
  });
}
function ignoredRange(name) {
  return new Error(`${name}: the server ignored the HTTP Range request (status 200 instead of 206 Partial Content); streaming weights needs a server that supports byte ranges (a file small enough to hold can be downloaded whole instead, with fetchSource's option wholeBelow: its size limit in bytes)`);
}
async function readBodyInto(name, res, into, scratch) {
  if (!res.body) throw new Error(`${name}: short read: empty response body`);
  const body = new BodyReader(name, res.body, scratch);
  let pos, more;
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
function fileUrl(base, file) {
  return new URL(file.split("/").map(encodeURIComponent).join("/"), base).href;
}
function urlFiles(baseUrl, options = {}) {
  if (options.cache !== void 0) {
    throw new TypeError("urlFiles: options.cache would be shared by every file (one file's bytes served for another's at the same offsets); give cacheFor(file), a cache per file");
  }
  const { cacheFor, ...each } = options;
  let base = options.fetch ? String(baseUrl) : checkHttpUrl(baseUrl, "urlFiles");
  if (!base.endsWith("/")) base += "/";
  const name = options.name ?? base;
  const doFetch = namedFetch(name, options.fetch ?? globalThis.fetch);
  return {
    name,
    async readText(file) {
      const url = fileUrl(base, file);
      const res = await doFetch(url, {
        headers: options.headers ?? {}
      });
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel();
        return void 0;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
      }
      return await res.text();
    },
    source(file) {
      return fetchSource(fileUrl(base, file), {
        ...each,
        name: void 0,
        cache: cacheFor?.(file)
      });
    }
  };
}
function memoryFiles(files, options = {}) {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  return mapFiles(files, options.name ?? "<memory>", {
    text: (data) => Promise.resolve(typeof data === "string" ? data : decoder.decode(data)),
    open: (data, path) => bytesSource(typeof data === "string" ? encoder.encode(data) : data, path)
  });
}
function blobFiles(files, options = {}) {
  return mapFiles(files, options.name ?? "<files>", {
    text: (blob) => blob.text(),
    open: (blob, path) => blobSource(blob, path)
  });
}
function mapFiles(files, name, how) {
  const map = files instanceof Map ? files : new Map(Object.entries(files));
  return {
    name,
    readText(file) {
      const data = map.get(file);
      return data === void 0 ? Promise.resolve(void 0) : how.text(data);
    },
    source(file) {
      const data = map.get(file);
      const path = `${name}/${file}`;
      if (data === void 0) {
        const missing = () => Promise.reject(new FileNotFoundError(path));
        return {
          name: path,
          size: missing,
          read: missing
        };
      }
      return how.open(data, path);
    },
    list() {
      return Promise.resolve([
        ...map.keys()
      ].sort());
    }
  };
}
var FileNotFoundError, REQUEST_BYTES, CONTENT_RANGE, UNSATISFIED_RANGE, CONCURRENT_RUNS, RUN_SKIP_BYTES, SCRATCH_BYTES, ScratchPool, BodyReader;
var init_source = __esm({
  "src/io/source.ts"() {
    init_describe();
    FileNotFoundError = class extends Error {
      /** @param name the file path or URL that does not exist */
      constructor(name, options) {
        super(`file not found: ${name}`, options);
        this.name = "FileNotFoundError";
      }
    };
    REQUEST_BYTES = 1 << 20;
    CONTENT_RANGE = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i;
    UNSATISFIED_RANGE = /^\s*bytes\s+\*\/(\d+)\s*$/i;
    CONCURRENT_RUNS = 2;
    RUN_SKIP_BYTES = 4 << 20;
    SCRATCH_BYTES = 256 << 10;
    ScratchPool = class {
      #free = [];
      take() {
        return this.#free.pop() ?? new ArrayBuffer(SCRATCH_BYTES);
      }
      /** Keeps `buffer` for the next body (not a detached one, nor more than a few). */
      give(buffer) {
        if (buffer.byteLength === SCRATCH_BYTES && this.#free.length < 4) this.#free.push(buffer);
      }
    };
    BodyReader = class {
      #name;
      #pool;
      #byob;
      #reader;
      #scratch;
      /** What the default reader handed out and the caller has not taken yet. */
      #left;
      #pending = false;
      constructor(name, body, pool) {
        this.#name = name;
        this.#pool = pool;
        try {
          this.#byob = body.getReader({
            mode: "byob"
          });
          this.#scratch = pool.take();
        } catch {
          this.#reader = body.getReader();
        }
      }
      /** The body's next bytes, at most `max` (a view valid until the next call), or `undefined` at its end. */
      async #next(max) {
        if (this.#byob) {
          const n = Math.min(max, SCRATCH_BYTES);
          this.#scratch ??= this.#pool.take();
          this.#pending = true;
          const { done, value } = await this.#byob.read(new Uint8Array(this.#scratch, 0, n));
          this.#pending = false;
          this.#scratch = value ? value.buffer : void 0;
          return done ? void 0 : value;
        }
        if (!this.#left?.length) {
          const { done, value } = await this.#reader.read();
          if (done) return void 0;
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
      async fill(into, skip = 0) {
        for (let left = skip; left > 0; ) {
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
      async more() {
        return await this.#next(1) !== void 0;
      }
      /** Done with the body: the reader's lock released and the scratch buffer back in the pool. */
      release() {
        (this.#byob ?? this.#reader)?.releaseLock();
        this.#byob = this.#reader = void 0;
        if (this.#scratch && !this.#pending) this.#pool.give(this.#scratch);
        this.#scratch = this.#left = void 0;
      }
      /** Cancels the rest of the body (errors ignored) and releases it. */
      cancel() {
        const reader = this.#byob ?? this.#reader;
        this.#byob = this.#reader = void 0;
        reader?.cancel().catch(() => {
        });
        if (this.#scratch && !this.#pending) this.#pool.give(this.#scratch);
        this.#scratch = this.#left = void 0;
      }
    };
  }
});

// src/text/tokenizer.ts
var tokenizer_exports = {};
__export(tokenizer_exports, {
  createStreamDecoder: () => createStreamDecoder,
  loadTokenizer: () => loadTokenizer
});
async function loadTokenizer(files, options = {}) {
  if (files && typeof files.readText === "function") {
    files = await readTokenizerFiles(files);
  }
  if (typeof files?.tokenizerJson !== "string") {
    throw new TypeError(`loadTokenizer: expected model files or { tokenizerJson, tokenizerConfigJson? } as strings, got ${describeValue(files)}`);
  }
  return await buildFromModule(files, options);
}
async function readTokenizerFiles(files) {
  const [tokenizerJson, tokenizerConfigJson, generationConfigJson] = await Promise.all([
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json"
  ].map((f) => files.readText(f)));
  if (tokenizerJson === void 0) {
    throw new FileNotFoundError(`${files.name.replace(/\/+$/, "")}/tokenizer.json (loadTokenizer needs it)`);
  }
  return {
    tokenizerJson,
    tokenizerConfigJson,
    generationConfigJson
  };
}
function buildFromModule(files, options) {
  if (options.module !== void 0) {
    if (typeof options.module?.buildTokenizer !== "function") {
      return Promise.reject(new TypeError('loadTokenizer options.module: expected the tokenizer module (import * as tokenizer from "./tokenizer.js", beside mesp.js), which exports buildTokenizer'));
    }
    return Promise.resolve().then(() => options.module.buildTokenizer(files));
  }
  let url;
  try {
    url = tokenizerModule();
  } catch {
    return Promise.reject(new Error(`loadTokenizer: this runtime gives modules no URL (workerd), so the tokenizer's module cannot be found: import it with your worker (import * as tokenizer from "./tokenizer.js", the file beside mesp.js, as an ES module) and pass loadTokenizer(files, { module: tokenizer })`));
  }
  return import(url).then((m) => m.buildTokenizer(files), (err) => {
    throw new Error(`loadTokenizer: cannot load the tokenizer's module ${url} (${err?.message ?? err}): it must sit beside mesp.js, or pass loadTokenizer(files, { module }) with it imported yourself`, {
      cause: err
    });
  });
}
function tokenizerModule() {
  return new URL("./tokenizer.js", import.meta.url).href;
}
function createStreamDecoder(tokenizer, options = {}) {
  const skip = options.skipSpecialTokens === true;
  const bytes = new TextDecoder("utf-8", {
    ignoreBOM: true
  });
  let pendingBytes = false;
  const flushBytes = () => {
    if (!pendingBytes) return "";
    pendingBytes = false;
    return bytes.decode();
  };
  return {
    push(id) {
      if (tokenizer.isAddedToken(id)) {
        const before = flushBytes();
        return skip && tokenizer.isSpecialToken(id) ? before : before + tokenizer.decode([
          id
        ]);
      }
      pendingBytes = true;
      return bytes.decode(tokenizer.tokenBytes(id), {
        stream: true
      });
    },
    flush: flushBytes
  };
}
var init_tokenizer = __esm({
  "src/text/tokenizer.ts"() {
    init_source();
    init_describe();
  }
});

// src/util/nearest.ts
function nearest(name, candidates) {
  let best, bestDistance = 3;
  for (const c of candidates) {
    const d = distance(c, name);
    if (d < bestDistance) [best, bestDistance] = [
      c,
      d
    ];
  }
  return best;
}
function didYouMean(name, candidates) {
  const near = nearest(name, candidates);
  return near ? ` (did you mean "${near}"?)` : "";
}
function distance(a, b) {
  let prev = Array.from({
    length: b.length + 1
  }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [
      i
    ];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

// src/runtime/kernels.ts
init_describe();
var VARIANTS = [
  "relaxed",
  "simd"
];
var DTYPE = {
  f32: 0,
  f16: 1,
  bf16: 2,
  q8: 3,
  q4: 4
};
var GEMM_TILE = {
  rows: 5,
  columns: 8
};
var OP = {
  /** C[M,N] = A[M,K] · B[N,K]ᵀ */
  nt: 0,
  /** C[M,N] = A[M,K] · B[K,N] */
  nn: 1,
  /** C[M,N] = A[K,M]ᵀ · B[K,N] */
  tn: 2
};
var KERNEL_FILES = [
  "mesp_relaxed.wasm",
  "mesp_simd.wasm",
  "mesp_relaxed_threads.wasm",
  "mesp_simd_threads.wasm"
];
var KERNEL_LOCATION_OPTIONS = [
  "wasmBase",
  "modules",
  "workerUrl"
];
var LOAD_KERNELS_OPTIONS = [
  ...KERNEL_LOCATION_OPTIONS,
  "variant",
  "shared",
  "memoryBytes"
];
function checkKernelLocation(location, where, known = KERNEL_LOCATION_OPTIONS) {
  if (location === void 0) return;
  if (location === null || typeof location !== "object") {
    throw new TypeError(`${where} must be an object, got ${describeValue(location)}`);
  }
  const o = location;
  for (const name of Object.keys(o)) {
    if (!known.includes(name)) {
      throw new TypeError(`${where}: unknown option "${name}"${didYouMean(name, known)}`);
    }
  }
  for (const name of [
    "wasmBase",
    "workerUrl"
  ]) {
    const url = o[name];
    if (url !== void 0 && typeof url !== "string" && !(url instanceof URL)) {
      throw new TypeError(`${where}: ${name} must be a URL (a string or a URL), got ${describeValue(url)}`);
    }
  }
  const modules = o.modules;
  if (modules === void 0) return;
  if (modules === null || typeof modules !== "object") {
    throw new TypeError(`${where}: modules must be an object of modules by file name, got ${describeValue(modules)}`);
  }
  for (const [file, module] of Object.entries(modules)) {
    if (!KERNEL_FILES.includes(file)) {
      throw new TypeError(`${where}: modules has "${file}", not a kernel file${didYouMean(file, KERNEL_FILES)}; they are ${KERNEL_FILES.join(", ")}`);
    }
    if (module !== void 0 && !(module instanceof WebAssembly.Module)) {
      const bytes = module instanceof ArrayBuffer || ArrayBuffer.isView(module);
      throw new TypeError(`${where}: modules["${file}"] must be a WebAssembly.Module, got ${describeValue(module)}` + (bytes ? ": compile the bytes first (await WebAssembly.compile(bytes)); in Cloudflare Workers, import the .wasm file, which gives a module" : ""));
    }
  }
}
var FILES = {
  relaxed: "mesp_relaxed.wasm",
  simd: "mesp_simd.wasm"
};
var THREAD_FILES = {
  relaxed: "mesp_relaxed_threads.wasm",
  simd: "mesp_simd_threads.wasm"
};
var SHARED_MAXIMA = [
  65536,
  32768,
  16384,
  8192
];
var INITIAL_PAGES = 16;
var moduleCache = /* @__PURE__ */ new Map();
var bytesCache = /* @__PURE__ */ new Map();
async function fetchBytes(url) {
  let p = bytesCache.get(url.href);
  if (!p) {
    p = (async () => {
      let res;
      try {
        res = await fetch(url);
      } catch (err) {
        throw new Error(`cannot fetch kernels ${url.href}: ${err.message}`);
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`cannot fetch kernels ${url.href}: HTTP ${res.status} ${res.statusText}`.trimEnd());
      }
      return new Uint8Array(await res.arrayBuffer());
    })();
    p.catch(() => bytesCache.delete(url.href));
    bytesCache.set(url.href, p);
  }
  return await p;
}
async function moduleOf(location, file, pages) {
  if (location.modules) return location.modules[file];
  const url = new URL(file, wasmBaseOf(location));
  const key = pages === void 0 ? url.href : `${url.href}#${pages}`;
  let p = moduleCache.get(key);
  if (!p) {
    p = (async () => {
      let bytes = await fetchBytes(url);
      if (pages !== void 0) bytes = withMemoryLimits(bytes, pages, pages);
      if (!WebAssembly.validate(bytes)) return void 0;
      try {
        return await WebAssembly.compile(bytes);
      } catch (err) {
        throw new Error(`cannot compile kernels ${url.href}: ${err.message} (a runtime that forbids compiling WebAssembly from bytes, such as Cloudflare Workers, needs the kernels option { modules }: the .wasm files imported as modules, see "Cloudflare Workers / workerd" in mesp's README)`, {
          cause: err
        });
      }
    })();
    p.catch(() => moduleCache.delete(key));
    moduleCache.set(key, p);
  }
  return await p;
}
function wasmBaseOf(location) {
  if (location.wasmBase !== void 0) {
    const given = String(location.wasmBase);
    const page = globalThis.location?.href;
    let url;
    try {
      url = new URL(given, page);
    } catch {
      throw new TypeError(`kernels.wasmBase ${JSON.stringify(given)} is not a URL${page ? "" : " (no page here to resolve it against)"}`);
    }
    const last = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
    if (last !== "" && !last.includes(".")) url.pathname += "/";
    return url;
  }
  const here = import.meta.url;
  try {
    return new URL("./wasm/", here);
  } catch {
    throw new Error(`cannot locate mesp's wasm files: this module has no URL here (import.meta.url is ${here}); pass the kernels option { modules } (precompiled WebAssembly.Modules) or { wasmBase }`);
  }
}
function leb(b, at) {
  let v = 0, shift = 0, x;
  do {
    x = b[at++];
    v += (x & 127) * 2 ** shift;
    shift += 7;
  } while (x & 128);
  return [
    v,
    at
  ];
}
function toLeb(v) {
  const out = [];
  do {
    let x = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) x |= 128;
    out.push(x);
  } while (v > 0);
  return out;
}
function importEntries(wasm, body) {
  const entries = [];
  let [count, p] = leb(wasm, body);
  for (; count > 0; count--) {
    for (let name = 0; name < 2; name++) {
      const [len, q] = leb(wasm, p);
      p = q + len;
    }
    const kind = wasm[p++], at = p;
    if (kind === 0) [, p] = leb(wasm, p);
    else if (kind === 1) p = wasm[p + 1] & 1 ? leb(wasm, leb(wasm, p + 2)[1])[1] : leb(wasm, p + 2)[1];
    else if (kind === 2) p = wasm[p] & 1 ? leb(wasm, leb(wasm, p + 1)[1])[1] : leb(wasm, p + 1)[1];
    else if (kind === 3) p += 2;
    else if (kind === 4) [, p] = leb(wasm, p + 1);
    else throw new Error(`kernel module: unknown import kind ${kind}`);
    entries.push({
      kind,
      at,
      end: p
    });
  }
  return entries;
}
function withMemoryLimits(wasm, min, max) {
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = leb(wasm, at + 1);
    const memory = id === 2 ? importEntries(wasm, body).find((e) => e.kind === 2) : void 0;
    if (memory) {
      const limits = [
        wasm[memory.at] | 1,
        ...toLeb(min),
        ...toLeb(max)
      ];
      const content = [
        ...wasm.subarray(body, memory.at),
        ...limits,
        ...wasm.subarray(memory.end, body + size)
      ];
      return new Uint8Array([
        ...wasm.subarray(0, at),
        2,
        ...toLeb(content.length),
        ...content,
        ...wasm.subarray(body + size)
      ]);
    }
    at = body + size;
  }
  throw new Error("kernel module imports no memory");
}
async function kernelConstants(options = {}) {
  checkKernelLocation(options, "kernels", LOAD_KERNELS_OPTIONS);
  if (!options.modules) {
    const candidates = options.variant ? [
      options.variant
    ] : VARIANTS;
    for (const variant of candidates) {
      const bytes = await fetchBytes(new URL(FILES[variant], wasmBaseOf(options)));
      if (!WebAssembly.validate(bytes)) continue;
      const c = exportedConstants(bytes, [
        "heap_base",
        "gemm_scratch_bytes"
      ]);
      if (c.heap_base !== void 0 && c.gemm_scratch_bytes !== void 0) {
        return {
          variant,
          heapBase: c.heap_base,
          gemmScratchBytes: c.gemm_scratch_bytes
        };
      }
      break;
    }
  }
  const k = await loadKernels({
    ...options,
    shared: false
  });
  return {
    variant: k.variant,
    heapBase: k.exports.heap_base(),
    gemmScratchBytes: k.exports.gemm_scratch_bytes()
  };
}
function sleb(b, at) {
  let v = 0, shift = 0, x;
  do {
    x = b[at++];
    v |= (x & 127) << shift;
    shift += 7;
  } while (x & 128);
  if (shift < 32 && x & 64) v |= -1 << shift;
  return [
    v,
    at
  ];
}
function exportedConstants(wasm, names) {
  const text = new TextDecoder();
  let imported = 0;
  const wanted = /* @__PURE__ */ new Map();
  const out = {};
  let at = 8;
  while (at < wasm.length) {
    const id = wasm[at];
    const [size, body] = leb(wasm, at + 1);
    let p = body;
    if (id === 2) {
      imported += importEntries(wasm, p).filter((e) => e.kind === 0).length;
    } else if (id === 7) {
      let count;
      [count, p] = leb(wasm, p);
      for (; count > 0; count--) {
        const [len, q] = leb(wasm, p);
        const name = text.decode(wasm.subarray(q, q + len));
        const kind = wasm[q + len];
        let index;
        [index, p] = leb(wasm, q + len + 1);
        if (kind === 0 && names.includes(name)) wanted.set(index, name);
      }
    } else if (id === 10) {
      let count;
      [count, p] = leb(wasm, p);
      for (let i = 0; i < count; i++) {
        const [len, q] = leb(wasm, p);
        const name = wanted.get(imported + i);
        if (name !== void 0 && wasm[q] === 0 && wasm[q + 1] === 65) {
          const [v, r] = sleb(wasm, q + 2);
          if (r === q + len - 1 && wasm[r] === 11) out[name] = v;
        }
        p = q + len;
      }
    }
    at = body + size;
  }
  return out;
}
function threadsUnavailable() {
  const g = globalThis;
  if (g.crossOriginIsolated === false) {
    return "the page is not cross-origin isolated (serve it with the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp to get SharedArrayBuffer)";
  }
  if (typeof g.SharedArrayBuffer !== "function") return "this runtime has no SharedArrayBuffer";
  if (typeof g.Worker !== "function") return "this runtime has no Worker";
  if (typeof Atomics !== "object") return "this runtime has no Atomics";
  return void 0;
}
function sharedMemory(pages) {
  if (pages !== void 0) {
    try {
      return new WebAssembly.Memory({
        initial: pages,
        maximum: pages,
        shared: true
      });
    } catch {
      return void 0;
    }
  }
  for (const maximum of SHARED_MAXIMA) {
    try {
      return new WebAssembly.Memory({
        initial: INITIAL_PAGES,
        maximum,
        shared: true
      });
    } catch {
    }
  }
  return void 0;
}
function kernelImports(memory) {
  const env = {
    abort(_msg, _file, line, col) {
      throw new Error(`kernel abort at ${line}:${col}`);
    }
  };
  if (memory) env.memory = memory;
  return {
    env
  };
}
async function loadShared(location, variant, bytes) {
  if (threadsUnavailable()) return void 0;
  const pages = bytes === void 0 ? void 0 : Math.max(INITIAL_PAGES, Math.ceil(bytes / 65536));
  if (pages !== void 0 && pages > 65536) return void 0;
  const module = await moduleOf(location, THREAD_FILES[variant], pages);
  const memory = module && sharedMemory(pages);
  if (!module || !memory) return void 0;
  const instance = await WebAssembly.instantiate(module, kernelImports(memory));
  const exports = instance.exports;
  return {
    variant,
    module,
    memory,
    exports,
    shared: true
  };
}
async function loadKernels(options = {}) {
  checkKernelLocation(options, "loadKernels options", LOAD_KERNELS_OPTIONS);
  const candidates = options.variant ? [
    options.variant
  ] : VARIANTS;
  for (const variant of candidates) {
    if (options.shared) {
      const k = await loadShared(options, variant, options.memoryBytes);
      if (k) return k;
    }
    const module = await moduleOf(options, FILES[variant]);
    if (!module) {
      if (options.variant) {
        throw new Error(options.modules ? `the kernels option gives no module for ${FILES[variant]}` : `this runtime cannot run the "${variant}" kernels`);
      }
      continue;
    }
    const instance = await WebAssembly.instantiate(module, kernelImports());
    const exports = instance.exports;
    return {
      variant,
      module,
      memory: exports.memory,
      exports,
      shared: false
    };
  }
  throw new Error(options.modules ? `the kernels option gives no module for ${candidates.map((v) => FILES[v]).join(" or ")}` : "this runtime supports none of the kernel variants (WebAssembly SIMD is required)");
}

// src/runtime/arena.ts
var TAIL_GUARD = 64;
var PAGE = 65536;
function planMemory(specs, options = {}) {
  const base = options.base ?? 0;
  const seen = /* @__PURE__ */ new Set();
  const regions = [];
  let at = base;
  for (const s of specs) {
    if (seen.has(s.name)) throw new Error(`memory plan: duplicate region "${s.name}"`);
    seen.add(s.name);
    const align2 = s.align ?? 64;
    if (!Number.isInteger(s.bytes) || s.bytes < 0) {
      throw new Error(`memory plan: region "${s.name}" has invalid size ${s.bytes}`);
    }
    if (align2 <= 0 || (align2 & align2 - 1) !== 0) {
      throw new Error(`memory plan: region "${s.name}" has invalid alignment ${align2}`);
    }
    at = Math.ceil(at / align2) * align2;
    regions.push({
      name: s.name,
      bytes: s.bytes,
      align: align2,
      purpose: s.purpose ?? "",
      offset: at
    });
    at += s.bytes;
  }
  const end = Math.ceil(at / 64) * 64 + TAIL_GUARD;
  return {
    regions,
    base,
    end,
    bytes: end - base
  };
}
function formatMB(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
function parseSize(text) {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b?)?\s*$/i.exec(text);
  if (!m) throw new Error(`cannot read size "${text}" (examples: 100MB, 1.5GB, 512MiB)`);
  const unit = (m[2] ?? "").toLowerCase().replace(/b$/, "");
  const scale = {
    "": 1,
    k: 1e3,
    m: 1e6,
    g: 1e9,
    t: 1e12,
    ki: 1024,
    mi: 1024 ** 2,
    gi: 1024 ** 3,
    ti: 1024 ** 4
  };
  if (!(unit in scale)) throw new Error(`cannot read size "${text}": unknown unit`);
  return Math.round(Number(m[1]) * scale[unit]);
}
function formatPlan(plan, options = {}) {
  const rows = [
    ...plan.regions
  ].sort((a, b) => b.bytes - a.bytes).map((r) => [
    r.name,
    formatMB(r.bytes),
    r.purpose
  ]);
  let total = plan.bytes;
  for (const e of options.extra ?? []) {
    rows.push([
      e.name,
      formatMB(e.bytes),
      e.purpose
    ]);
    total += e.bytes;
  }
  rows.push([
    "total",
    formatMB(total),
    ""
  ]);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padStart(w1)}  ${r[2]}`.trimEnd()).join("\n");
}
var PlanTooLargeError = class extends Error {
  /** The plan that did not fit. */
  plan;
  /** The budget in bytes. */
  budget;
  constructor(plan, budget, needed, table) {
    super(`memory plan needs ${formatMB(needed)} but the budget is ${budget < 5e4 ? `${budget} bytes` : formatMB(budget)} (a byte count; 100 MB is 100e6):
${table}`);
    this.name = "PlanTooLargeError";
    this.plan = plan;
    this.budget = budget;
  }
};
var WASM32_BYTES = 2 ** 32;
function checkAddressable(plan, hint = "plan less") {
  if (plan.end <= WASM32_BYTES) return;
  throw new RangeError(`memory plan needs ${formatMB(plan.end)}, more than WebAssembly's 32-bit memory holds (${formatMB(WASM32_BYTES)}): ${hint}
${formatPlan(plan)}`);
}
var Arena = class _Arena {
  /** The kernels whose memory this arena lays out. */
  kernels;
  /** The placed plan. */
  plan;
  #byName;
  constructor(kernels, plan) {
    this.kernels = kernels;
    this.plan = plan;
    this.#byName = new Map(plan.regions.map((r) => [
      r.name,
      r
    ]));
  }
  /** Lays out `specs` after the module's static data, checks the budget, and grows memory once. */
  static create(kernels, specs, options = {}) {
    const base = Math.ceil(kernels.exports.heap_base() / 64) * 64;
    const plan = planMemory(specs, {
      base
    });
    checkAddressable(plan);
    if (options.budget !== void 0 && plan.bytes > options.budget) {
      throw new PlanTooLargeError(plan, options.budget, plan.bytes, formatPlan(plan));
    }
    const have = kernels.memory.buffer.byteLength;
    if (plan.end > have) kernels.memory.grow(Math.ceil((plan.end - have) / PAGE));
    return new _Arena(kernels, plan);
  }
  /** The region called `name`; throws if the plan has none. */
  region(name) {
    const r = this.#byName.get(name);
    if (!r) throw new Error(`memory plan has no region "${name}"`);
    return r;
  }
  /** Whether the plan has a region called `name`. */
  has(name) {
    return this.#byName.has(name);
  }
  /** Byte offset of region `name`. */
  ptr(name) {
    return this.region(name).offset;
  }
  /** The whole region as bytes. */
  u8(name) {
    const r = this.region(name);
    return new Uint8Array(this.kernels.memory.buffer, r.offset, r.bytes);
  }
  /** The whole region as f32 (its size must be a multiple of 4). */
  f32(name) {
    const r = this.region(name);
    return new Float32Array(this.kernels.memory.buffer, r.offset, r.bytes >>> 2);
  }
  /** The whole region as i32. */
  i32(name) {
    const r = this.region(name);
    return new Int32Array(this.kernels.memory.buffer, r.offset, r.bytes >>> 2);
  }
  /** Current size of linear memory in bytes (constant after creation unless something else grows it). */
  memoryBytes() {
    return this.kernels.memory.buffer.byteLength;
  }
};

// src/runtime/weight_ref.ts
function dtypeCode(w) {
  const quantized = w.dtype === "q4" || w.dtype === "q8";
  return DTYPE[w.dtype] | (quantized && w.bf16Scales ? SCALES_BF16 : 0);
}
var SCALES_BF16 = 8;
function f32Ref(ptr, ld) {
  return {
    dtype: "f32",
    ptr,
    ld,
    scales: 0,
    biases: 0
  };
}

// src/runtime/gemm.ts
var SKINNY_N = 7;
function usesDotKernel(op, n, dtype) {
  return op === OP.nt && dtype === "f32" && n <= SKINNY_N;
}
var MR = GEMM_TILE.rows;
var NR = GEMM_TILE.columns;
var DOT_ROWS = 4;
var WIDE = 128;
var Gemm = class _Gemm {
  #k;
  #scratch;
  #pool;
  #profile;
  /**
   * `scratch` must hold `exports.gemm_scratch_bytes()` bytes, times the pool's thread count with a pool.
   * `exports` are the raw kernel exports.
   */
  constructor(exports, scratch, options = {}) {
    this.#k = exports;
    this.#scratch = scratch;
    this.#pool = options.pool;
    this.#profile = options.profile;
  }
  /** Runs rows [m0, m1) and columns [n0, n1) of a problem with `n` columns in total (for kernel choice). */
  run(op, m0, m1, n0, n1, n, k, a, lda, b, c, ldc, alpha, accumulate) {
    const profile = this.#profile;
    if (!profile) {
      this.#run(op, m0, m1, n0, n1, n, k, a, lda, b, c, ldc, alpha, accumulate);
      return;
    }
    const t0 = performance.now();
    this.#run(op, m0, m1, n0, n1, n, k, a, lda, b, c, ldc, alpha, accumulate);
    const flops = 2 * Math.max(0, m1 - m0) * Math.max(0, n1 - n0) * k;
    profile.add(profile.classifyGemm(op, m1 - m0, n1 - n0, k, b), performance.now() - t0, flops);
  }
  /**
   * How a call is split across `pool`: 0 = not at all, 1 = by rows, 2 = by columns. Columns when each
   * thread gets at least {@linkcode WIDE} of them (each then packs only its part of B: no duplicated
   * dequantization), else rows when each thread gets at least two micro-tiles of them, else columns when
   * each gets two tiles of those; not at all when
   * the call is too small to pay for waking the workers (`pool.minFlops`). A forced policy (`pool.split`)
   * splits its way whenever that gives two pieces.
   */
  static splitOf(pool, dot, rows, cols, k) {
    if (2 * rows * cols * k < pool.minFlops) return 0;
    const threads = pool.threads, rowGrain = dot ? DOT_ROWS : MR, colGrain = dot ? 2 : NR;
    const rowsOk = rows >= 2 * rowGrain * threads, colsOk = cols >= 2 * colGrain * threads;
    if (pool.split === "rows") return rows > rowGrain ? 1 : 0;
    if (pool.split === "columns") return cols > colGrain ? 2 : 0;
    if (!dot && colsOk && cols >= WIDE * threads) return 2;
    return rowsOk ? 1 : colsOk ? 2 : 0;
  }
  #run(op, m0, m1, n0, n1, n, k, a, lda, b, c, ldc, alpha, accumulate) {
    const dot = usesDotKernel(op, n, b.dtype);
    const pool = this.#pool;
    const how = pool ? _Gemm.splitOf(pool, dot, m1 - m0, n1 - n0, k) : 0;
    if (dot) {
      const f = how === 0 ? this.#k.gemm_dot : how === 1 ? pool.gemmDotRows : pool.gemmDotColumns;
      f(m0, m1, n0, n1, k, a, lda, b.ptr, b.ld, c, ldc, alpha, accumulate ? 1 : 0);
    } else {
      const f = how === 0 ? this.#k.gemm : how === 1 ? pool.gemmRows : pool.gemmColumns;
      f(op, m0, m1, n0, n1, k, a, lda, dtypeCode(b), b.ptr, b.ld, b.scales, b.biases, c, ldc, alpha, accumulate ? 1 : 0, this.#scratch);
    }
  }
  /** C[M,N] (+)= alpha · A[M,K] · Bᵀ, B [N,K] (a linear layer). */
  nt(m, n, k, a, lda, b, c, ldc, alpha = 1, accumulate = false) {
    this.run(OP.nt, 0, m, 0, n, n, k, a, lda, b, c, ldc, alpha, accumulate);
  }
  /** C[M,N] (+)= alpha · A[M,K] · B, B [K,N]. */
  nn(m, n, k, a, lda, b, c, ldc, alpha = 1, accumulate = false) {
    this.run(OP.nn, 0, m, 0, n, n, k, a, lda, b, c, ldc, alpha, accumulate);
  }
  /** C[M,N] (+)= alpha · Aᵀ · B, A [K,M], B [K,N]. */
  tn(m, n, k, a, lda, b, c, ldc, alpha = 1, accumulate = false) {
    this.run(OP.tn, 0, m, 0, n, n, k, a, lda, b, c, ldc, alpha, accumulate);
  }
};

// src/runtime/memory.ts
function statusField(status, field) {
  const m = new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, "m").exec(status);
  return m ? Number(m[1]) * 1024 : void 0;
}
function parseProcStatus(status) {
  const rss = statusField(status, "VmRSS");
  if (rss === void 0) return void 0;
  const peak = statusField(status, "VmHWM");
  return peak === void 0 ? {
    rss
  } : {
    rss,
    peak
  };
}
function processMemory() {
  const deno = globalThis.Deno;
  if (typeof deno !== "undefined") {
    try {
      const parsed = parseProcStatus(deno.readTextFileSync("/proc/self/status"));
      if (parsed) return parsed;
    } catch {
    }
  }
  const node = globalThis.process;
  if (node && typeof node.memoryUsage === "function") {
    const rss = node.memoryUsage().rss;
    const maxRSS = node.resourceUsage?.().maxRSS;
    return maxRSS ? {
      rss,
      peak: Math.max(rss, maxRSS * 1024)
    } : {
      rss
    };
  }
  if (typeof deno !== "undefined") return {
    rss: deno.memoryUsage().rss
  };
  return {
    rss: 0
  };
}

// mod.ts
init_source();

// src/io/range_cache.ts
function memoryRangeCache(options = {}) {
  const max = options.maxBytes ?? Infinity;
  const kept2 = /* @__PURE__ */ new Map();
  let bytes = 0;
  return {
    get(offset, into) {
      const hit = kept2.get(`${offset}+${into.length}`);
      if (hit) into.set(hit);
      return Promise.resolve(hit !== void 0);
    },
    put(offset, data) {
      const key = `${offset}+${data.length}`;
      if (!kept2.has(key) && bytes + data.length <= max) {
        kept2.set(key, data.slice());
        bytes += data.length;
      }
      return Promise.resolve();
    },
    bytes: () => bytes
  };
}
function cacheStorageRangeCache(cache, key, options = {}) {
  const notice = options.onNotice ?? ((m) => console.warn(m));
  let noticed = false;
  const page = globalThis.location?.href;
  let base;
  try {
    base = new URL(String(key), page);
  } catch {
    throw new TypeError(`cacheStorageRangeCache: key ${JSON.stringify(String(key))} is not a URL` + (page ? "" : " (nor is there a page here to resolve a relative one against)"));
  }
  const request = (offset, length) => {
    const u = new URL(base);
    u.searchParams.set("mesp-range", `${offset}+${length}`);
    return u.href;
  };
  return {
    async get(offset, into) {
      const res = await cache.match(request(offset, into.length));
      if (!res) return false;
      const body = new Uint8Array(await res.arrayBuffer());
      if (body.length !== into.length) return false;
      into.set(body);
      return true;
    },
    async put(offset, data) {
      try {
        await cache.put(request(offset, data.length), new Response(data.slice()));
      } catch (err) {
        if (!noticed) {
          noticed = true;
          notice(`range cache ${base.href}: cannot keep bytes ${offset}..${offset + data.length} in the Cache API (${err?.message ?? err}); later reads of ranges not kept go to the network`);
        }
      }
    }
  };
}

// src/io/r2.ts
init_source();
function r2Source(bucket, key, options = {}) {
  const name = options.name ?? `r2:${key}`;
  return fetchSource(name, {
    ...options,
    name,
    fetch: bucketFetch(bucket, key)
  });
}
function r2Files(bucket, prefix = "", options = {}) {
  const name = options.name ?? `r2:${prefix}`;
  return {
    name,
    async readText(file) {
      const where = options.name ? `${name}/${file}` : `r2:${prefix}${file}`;
      let object;
      try {
        object = await bucket.get(prefix + file);
      } catch (err) {
        throw new Error(`cannot read ${where}: ${err?.message ?? err}`, {
          cause: err
        });
      }
      if (!object) return void 0;
      if (!("body" in object)) throw new Error(`${where}: the bucket answered without a body`);
      return await new Response(object.body).text();
    },
    source(file) {
      return r2Source(bucket, prefix + file, {
        ...options,
        name: void 0
      });
    },
    list: bucket.list && (async () => {
      const files = [];
      for (let cursor, more = true; more; ) {
        const page = await bucket.list({
          prefix,
          cursor
        });
        for (const o of page.objects) files.push(o.key.slice(prefix.length));
        more = page.truncated;
        cursor = page.cursor;
      }
      return files.sort();
    })
  };
}
var RANGE = /^bytes=(\d+)-(\d+)$/;
function bucketFetch(bucket, key) {
  const found = (object, status, headers, body) => new Response(body ?? null, {
    status,
    headers: {
      etag: object.httpEtag,
      ...headers
    }
  });
  const missing = () => new Response(null, {
    status: 404,
    statusText: "no such object"
  });
  return async (_input, init) => {
    if (init?.method === "HEAD") {
      const object2 = await bucket.head(key);
      return object2 ? found(object2, 200, {
        "content-length": String(object2.size)
      }) : missing();
    }
    const range = new Headers(init?.headers).get("range");
    if (range === null) {
      const object2 = await bucket.get(key);
      if (!object2) return missing();
      return found(object2, 200, {
        "content-length": String(object2.size)
      }, object2.body);
    }
    const m = RANGE.exec(range);
    if (!m) throw new Error(`r2:${key}: unsupported range ${range}`);
    const offset = Number(m[1]), length = Number(m[2]) - offset + 1;
    let object;
    try {
      object = await bucket.get(key, {
        range: {
          offset,
          length
        }
      });
    } catch (err) {
      const info = await bucket.head(key);
      if (info && offset >= info.size) return found(info, 416, {
        "content-range": `bytes */${info.size}`
      });
      throw err;
    }
    if (!object) return missing();
    const body = object.body;
    if (offset + length > object.size) {
      await body?.cancel();
      return found(object, 416, {
        "content-range": `bytes */${object.size}`
      });
    }
    return found(object, 206, {
      "content-range": `bytes ${offset}-${offset + length - 1}/${object.size}`,
      "content-length": String(length)
    }, body);
  };
}

// src/io/opfs.ts
async function opfsRoot(label2) {
  const storage = globalThis.navigator?.storage;
  if (typeof storage?.getDirectory !== "function") {
    throw new Error(`${label2}: the Origin Private File System is not available here (navigator.storage.getDirectory is missing: not a browser, or not a secure context such as https or localhost)`);
  }
  return await storage.getDirectory().catch((err) => {
    throw new Error(`${label2}: cannot open the Origin Private File System: ${err?.message ?? err}`, {
      cause: err
    });
  });
}

// src/io/opfs_range_cache.ts
var MAGIC = new TextEncoder().encode("mespRC1\n");
var TRAILER = 4 + MAGIC.length;
var QUIET_MS = 100;
function opfsRangeCache(file, options = {}) {
  const name = typeof file === "string" ? file : file.name;
  const label2 = `OPFS cache file ${JSON.stringify(name)}`;
  const blockBytes = options.blockBytes ?? 4 << 20;
  const flushBytes = options.flushBytes ?? 32 << 20;
  const notice = options.onNotice ?? ((m) => console.warn(m));
  let handle;
  let sync;
  let helper;
  let snapshot;
  let version;
  let starts = [], ends = [];
  let kept2 = 0;
  let full = false;
  let pending = [];
  let pendingBytes = 0;
  let unrecorded = 0;
  const blocks = Array.from({
    length: options.blocks ?? 2
  }, () => ({
    buf: new ArrayBuffer(0),
    start: 0,
    end: 0,
    used: 0
  }));
  let tick = 0;
  let dirty = false;
  let timer;
  const counts = {
    fileReads: 0,
    pendingReads: 0,
    blockLoads: 0,
    writes: 0
  };
  let queue = Promise.resolve();
  const serial = (job) => {
    const next = queue.then(job);
    queue = next.catch(() => {
    });
    return next;
  };
  async function openHandle() {
    if (typeof file !== "string") return file;
    const dir = options.directory ?? await opfsRoot(label2);
    return await dir.getFileHandle(name, {
      create: true
    }).catch((err) => {
      throw new Error(`${label2}: cannot open or create it: ${err?.message ?? err}`, {
        cause: err
      });
    });
  }
  async function readRecord(length, at) {
    if (length < TRAILER) return void 0;
    const tail = await at(length - TRAILER, TRAILER);
    if (!MAGIC.every((b, i) => tail[4 + i] === b)) return void 0;
    const n = new DataView(tail.buffer, tail.byteOffset).getUint32(0, true);
    if (n > length - TRAILER) return void 0;
    try {
      const r = JSON.parse(new TextDecoder().decode(await at(length - TRAILER - n, n)));
      return r.v === 1 && r.size === length - TRAILER - n && Array.isArray(r.ranges) ? r : void 0;
    } catch {
      return void 0;
    }
  }
  function encodeRecord() {
    const json2 = new TextEncoder().encode(JSON.stringify({
      v: 1,
      size: version.size,
      etag: version.etag,
      ranges: starts.map((s, i) => [
        s,
        ends[i]
      ])
    }));
    const out = new Uint8Array(json2.length + TRAILER);
    out.set(json2);
    new DataView(out.buffer).setUint32(json2.length, json2.length, true);
    out.set(MAGIC, json2.length + 4);
    return out;
  }
  function setRanges(ranges) {
    starts = ranges.map((r) => r[0]);
    ends = ranges.map((r) => r[1]);
    kept2 = ranges.reduce((n, r) => n + r[1] - r[0], 0);
  }
  function holding(offset, end) {
    let lo = 0, hi = starts.length - 1;
    while (lo <= hi) {
      const mid = lo + hi >> 1;
      if (starts[mid] <= offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && end <= ends[hi] ? hi : -1;
  }
  function addRange(s, e) {
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
    kept2 += e - s - removed;
  }
  function stopKeeping(err) {
    full = true;
    const why = err?.name === "QuotaExceededError" ? "the storage quota is full" : "writing failed";
    notice(`${label2}: ${why} (${err?.message ?? err}); keeping ${kept2} bytes, further ranges are read from the network`);
  }
  async function identify(remote) {
    if (version && version.size === remote.size && version.etag === remote.etag) return;
    handle ??= await openHandle();
    let record;
    if (!sync && typeof handle.createSyncAccessHandle === "function" && isWorker()) {
      sync = await handle.createSyncAccessHandle().catch((err) => {
        throw new Error(`${label2}: cannot open it for reading and writing (open in another tab or worker?): ${err?.message ?? err}`, {
          cause: err
        });
      });
    }
    if (!sync && !helper && options.worker !== false && helperWorks(handle)) {
      helper = await startHelper(handle, label2, blockBytes).catch((err) => {
        notice(`${label2}: ${err?.message ?? err}; reading it through File snapshots instead (slower)`);
        return void 0;
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
        s.read(b, {
          at: o
        });
        return Promise.resolve(b);
      });
    } else {
      const f = snapshot = await handle.getFile();
      record = await readRecord(f.size, async (o, n) => new Uint8Array(await f.slice(o, o + n).arrayBuffer()));
    }
    pending = [];
    pendingBytes = 0;
    for (const b of blocks) b.start = b.end = 0;
    version = {
      size: remote.size,
      etag: remote.etag
    };
    if (record && record.size === remote.size && record.etag === remote.etag) {
      setRanges(record.ranges);
      return;
    }
    if (record) {
      notice(`${label2} held ranges of another version of ${remote.name} (${record.size} bytes, ETag ${record.etag ?? "none"}; the server now has ${remote.size} bytes, ETag ${remote.etag ?? "none"}): discarding them`);
    }
    setRanges([]);
    full = false;
    if (helper) {
      await helper.truncate(0);
      await helper.flush();
    } else if (sync) {
      sync.truncate(0);
      sync.flush();
    } else if (snapshot.size > 0) {
      const w = await handle.createWritable();
      await w.close();
      snapshot = await handle.getFile();
    }
  }
  function used() {
    if (!version) {
      throw new Error(`${label2}: used before identify() (fetchSource calls it with the remote file's version)`);
    }
  }
  async function readKept(offset, into, i) {
    let pos = 0;
    while (pos < into.length) {
      const at = offset + pos;
      const b = blocks.find((b2) => b2.start <= at && at < b2.end) ?? await loadBlock(at, starts[i], ends[i]);
      b.used = ++tick;
      const n = Math.min(into.length - pos, b.end - at);
      into.set(new Uint8Array(b.buf, at - b.start, n), pos);
      pos += n;
    }
  }
  async function loadBlock(at, lo, hi) {
    const aligned = at - at % blockBytes;
    const start = Math.max(aligned, lo), end = Math.min(aligned + blockBytes, hi);
    const b = blocks.reduce((x, y) => y.used < x.used ? y : x);
    b.start = b.end = 0;
    counts.blockLoads++;
    let buf = b.buf.byteLength >= blockBytes ? b.buf : new ArrayBuffer(blockBytes);
    let got = 0;
    let reader;
    const slice = helper ? void 0 : snapshot.slice(start, end);
    try {
      reader = slice?.stream().getReader({
        mode: "byob"
      });
    } catch {
    }
    if (helper) {
      b.buf = new ArrayBuffer(0);
      ({ buf, got } = await helper.read(buf, start, end - start));
    } else if (reader) {
      while (got < end - start) {
        const { done, value } = await reader.read(new Uint8Array(buf, got, end - start - got));
        if (!value) break;
        buf = value.buffer;
        got += value.length;
        if (done) break;
      }
      await reader.cancel().catch(() => {
      });
    } else {
      const bytes = new Uint8Array(await slice.arrayBuffer());
      new Uint8Array(buf).set(bytes);
      got = bytes.length;
    }
    b.buf = buf;
    if (got !== end - start) {
      throw new Error(`${label2}: short read: got ${got} of bytes ${start}..${end} (the file changed?)`);
    }
    b.start = start;
    b.end = end;
    return b;
  }
  function schedule() {
    if (timer !== void 0) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = void 0;
      serial(commit).catch((err) => notice(`${label2}: writing failed: ${err?.message ?? err}`));
    }, QUIET_MS);
  }
  async function commit() {
    if (!dirty || !version) return;
    const record = () => encodeRecord();
    if (helper) {
      try {
        await helper.flush();
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
        sync.flush();
        const r = record();
        sync.write(r, {
          at: version.size
        });
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
    let w;
    try {
      w = await handle.createWritable({
        keepExistingData: true
      });
      for (const p of batch) await w.write({
        type: "write",
        position: p.offset,
        data: p.data
      });
      for (const p of batch) addRange(p.offset, p.offset + p.data.length);
      const r = record();
      await w.write({
        type: "write",
        position: version.size,
        data: r
      });
      await w.truncate(version.size + r.length);
      await w.close();
      dirty = false;
      counts.writes++;
    } catch (err) {
      await w?.abort().catch(() => {
      });
      const f = snapshot = await handle.getFile();
      const back = await readRecord(f.size, async (o, n) => new Uint8Array(await f.slice(o, o + n).arrayBuffer()));
      setRanges(back && back.size === version.size && back.etag === version.etag ? back.ranges : []);
      dirty = false;
      stopKeeping(err);
      return;
    }
    snapshot = await handle.getFile();
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
              throw new Error(`${label2}: short read of kept bytes ${offset}..${end} (the file changed?)`);
            }
          } else await readKept(offset, into, i);
          return true;
        }
        for (const p of pending) {
          if (p.offset <= offset && end <= p.offset + p.data.length) {
            into.set(p.data.subarray(offset - p.offset, end - p.offset));
            counts.pendingReads++;
            if (timer !== void 0) {
              clearTimeout(timer);
              timer = void 0;
              serial(commit).catch((err) => notice(`${label2}: writing failed: ${err?.message ?? err}`));
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
        if (full || holding(offset, offset + data.length) >= 0 || offset + data.length > version.size) {
          return;
        }
        if (sync || helper) {
          try {
            if (sync) sync.write(data, {
              at: offset
            });
            else await helper.write(data, offset);
          } catch (err) {
            return stopKeeping(err);
          }
          addRange(offset, offset + data.length);
          unrecorded += data.length;
        } else {
          pending.push({
            offset,
            data: data.slice()
          });
          pendingBytes += data.length;
        }
        dirty = true;
        if (pendingBytes >= flushBytes || unrecorded >= flushBytes) await commit();
        else schedule();
      });
    },
    bytes: () => kept2 + pendingBytes,
    stats: () => ({
      ...counts
    }),
    flush: () => serial(commit),
    async close() {
      if (timer !== void 0) clearTimeout(timer);
      timer = void 0;
      await serial(commit);
      sync?.close();
      sync = void 0;
      await helper?.close();
      helper = void 0;
      version = void 0;
    }
  };
}
function readSync(sync, offset, into) {
  try {
    return sync.read(into, {
      at: offset
    });
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    const copy = new Uint8Array(into.length);
    const n = sync.read(copy, {
      at: offset
    });
    into.set(copy);
    return n;
  }
}
function isWorker() {
  const g = globalThis;
  return g.WorkerGlobalScope !== void 0 && g.document === void 0;
}
var HELPER = `
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
function helperWorks(handle) {
  const g = globalThis;
  return typeof g.Worker === "function" && g.document !== void 0 && g.FileSystemFileHandle !== void 0 && handle instanceof g.FileSystemFileHandle;
}
async function startHelper(handle, label2, writeBytes) {
  let spare = new ArrayBuffer(0);
  const url = URL.createObjectURL(new Blob([
    HELPER
  ], {
    type: "text/javascript"
  }));
  const worker = new Worker(url);
  URL.revokeObjectURL(url);
  const waiting = [];
  worker.onmessage = (e) => {
    const w = waiting.shift();
    if (e.data.error === void 0) w.resolve(e.data);
    else w.reject(Object.assign(new Error(`${label2}: ${e.data.error}`), {
      name: e.data.name ?? "Error"
    }));
  };
  worker.onerror = (e) => {
    e.preventDefault();
    for (const w of waiting.splice(0)) w.reject(new Error(`${label2}: its worker failed: ${e.message}`));
  };
  const call2 = (m, transfer = []) => new Promise((resolve, reject) => {
    waiting.push({
      resolve,
      reject
    });
    worker.postMessage(m, transfer);
  });
  try {
    await call2({
      op: "open",
      handle
    });
  } catch (err) {
    worker.terminate();
    throw new Error(`cannot open it for reading and writing (open in another tab?): ${err.message}`, {
      cause: err
    });
  }
  return {
    size: async () => (await call2({
      op: "size"
    })).size,
    async read(buf, at, n) {
      const r = await call2({
        op: "read",
        buf,
        at,
        n
      }, [
        buf
      ]);
      return {
        buf: r.buf,
        got: r.got
      };
    },
    async write(data, at) {
      for (let pos = 0; pos < data.length; ) {
        const buf = spare.byteLength ? spare : new ArrayBuffer(writeBytes);
        spare = new ArrayBuffer(0);
        const n = Math.min(buf.byteLength, data.length - pos);
        new Uint8Array(buf, 0, n).set(data.subarray(pos, pos + n));
        spare = (await call2({
          op: "write",
          buf,
          n,
          at: at + pos
        }, [
          buf
        ])).buf;
        pos += n;
      }
    },
    async truncate(size) {
      await call2({
        op: "truncate",
        size
      });
    },
    async flush() {
      await call2({
        op: "flush"
      });
    },
    async close() {
      await call2({
        op: "close"
      }).catch(() => {
      });
      worker.terminate();
    }
  };
}

// src/io/opfs_spill_file.ts
async function opfsSpillFile(name, options = {}) {
  const label2 = `OPFS spill file ${JSON.stringify(name)}`;
  const dir = options.directory ?? await opfsRoot(label2);
  if (!isDedicatedWorker()) {
    throw new Error(`${label2}: needs a dedicated worker (FileSystemSyncAccessHandle exists only there, not on a page's main thread, nor in a shared or service worker): call train in a Worker`);
  }
  const file = await dir.getFileHandle(name, {
    create: true
  }).catch((err) => {
    throw new Error(`${label2}: cannot open or create it: ${err?.message ?? err}`, {
      cause: err
    });
  });
  if (typeof file.createSyncAccessHandle !== "function") {
    throw new Error(`${label2}: this browser has no FileSystemSyncAccessHandle (createSyncAccessHandle)`);
  }
  let handle = await file.createSyncAccessHandle().catch((err) => {
    throw new Error(`${label2}: cannot open it for reading and writing (held by another tab or worker?): ${err?.message ?? err}`, {
      cause: err
    });
  });
  handle.truncate(0);
  const at = {
    at: 0
  };
  const open = () => {
    if (!handle) throw new Error(`${label2}: used after close()`);
    return handle;
  };
  const move = (position, bytes, write) => {
    const h = open();
    let done = 0;
    try {
      while (done < bytes.length) {
        at.at = position + done;
        const part = done ? bytes.subarray(done) : bytes;
        const n = write ? h.write(part, at) : h.read(part, at);
        if (!n) break;
        done += n;
      }
    } catch (err) {
      const why = err?.name === "QuotaExceededError" ? "the storage quota is full: " : "";
      throw new Error(`${label2}: cannot ${write ? "write" : "read"} ${bytes.length} bytes at byte ${position}: ${why}${err?.message ?? err}`, {
        cause: err
      });
    }
    if (done < bytes.length) {
      throw new Error(write ? `${label2}: wrote ${done} of ${bytes.length} bytes at byte ${position} (the storage quota is full?)` : `${label2}: read ${done} of ${bytes.length} bytes at byte ${position}: the file ends at byte ${h.getSize()} (changed by someone else?)`);
    }
    return done;
  };
  const close = () => {
    handle?.close();
    handle = void 0;
  };
  return {
    name,
    read: (position, into) => move(position, into, false),
    write: (position, data) => move(position, data, true),
    size: () => open().getSize(),
    close,
    async remove() {
      close();
      if (typeof dir.removeEntry !== "function") {
        throw new Error(`${label2}: cannot remove it: its directory handle has no removeEntry`);
      }
      await dir.removeEntry(name).catch((err) => {
        throw new Error(`${label2}: cannot remove it: ${err?.message ?? err}`, {
          cause: err
        });
      });
    }
  };
}
function isDedicatedWorker() {
  const scope = globalThis.DedicatedWorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}

// src/io/crc32.ts
var crcTable;
function crc32(bytes, crc = 0) {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c2 = n;
      for (let k = 0; k < 8; k++) c2 = c2 & 1 ? 3988292384 ^ c2 >>> 1 : c2 >>> 1;
      crcTable[n] = c2 >>> 0;
    }
  }
  const table = crcTable;
  let c = (crc ^ 4294967295) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 255] ^ c >>> 8;
  return (c ^ 4294967295) >>> 0;
}

// src/io/zip.ts
var LOCAL = 67324752;
var CENTRAL = 33639248;
var END = 101010256;
var DOS_DATE = 0 << 9 | 1 << 5 | 1;
function zipStore(entries) {
  const enc = new TextEncoder();
  const names = entries.map((e) => enc.encode(e.name));
  const crcs = entries.map((e) => crc32(e.data));
  const localBytes = entries.reduce((n, e, i) => n + 30 + names[i].length + e.data.length, 0);
  const centralBytes = names.reduce((n, b) => n + 46 + b.length, 0);
  if (localBytes + centralBytes > 4294967295 || entries.length > 65535) {
    throw new Error("zip: archive too large for a classic (non-ZIP64) archive");
  }
  const out = new Uint8Array(localBytes + centralBytes + 22);
  const v = new DataView(out.buffer);
  let at = 0;
  const offsets = [];
  entries.forEach((e, i) => {
    offsets.push(at);
    v.setUint32(at, LOCAL, true);
    v.setUint16(at + 4, 20, true);
    v.setUint16(at + 6, 2048, true);
    v.setUint16(at + 8, 0, true);
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
    v.setUint16(at + 4, 20, true);
    v.setUint16(at + 6, 20, true);
    v.setUint16(at + 8, 2048, true);
    v.setUint16(at + 10, 0, true);
    v.setUint16(at + 12, 0, true);
    v.setUint16(at + 14, DOS_DATE, true);
    v.setUint32(at + 16, crcs[i], true);
    v.setUint32(at + 20, e.data.length, true);
    v.setUint32(at + 24, e.data.length, true);
    v.setUint16(at + 28, names[i].length, true);
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
var STORED = 0;
var DEFLATE = 8;
function readDirectory(bytes, name) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (v.getUint32(i, true) === END) {
      end = i;
      break;
    }
  }
  if (end < 0) throw new Error(`${name}: not a ZIP archive (no end-of-directory record)`);
  const count = v.getUint16(end + 10, true);
  let at = v.getUint32(end + 16, true);
  if (count === 65535 || at === 4294967295) {
    throw new Error(`${name}: a ZIP64 archive; only classic ZIP archives are read (zip without -fz writes one)`);
  }
  const dec = new TextDecoder();
  const out = [];
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
    if (packed === 4294967295 || size === 4294967295) {
      throw new Error(`${name}: ${entryName} needs ZIP64 (4 GB or more); only classic archives are read`);
    }
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL) {
      throw new Error(`${name}: ${entryName}: local header is damaged`);
    }
    const dataAt = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (dataAt + packed > bytes.length) throw new Error(`${name}: ${entryName} is cut short`);
    out.push({
      name: entryName,
      method,
      crc,
      size,
      raw: bytes.subarray(dataAt, dataAt + packed)
    });
    at += 46 + skip;
  }
  return out;
}
function checked(e, data, name) {
  if (crc32(data) !== e.crc) throw new Error(`${name}: ${e.name} fails its CRC-32 check (corrupt)`);
  return {
    name: e.name,
    data
  };
}
function unzipStore(bytes, name = "archive.zip") {
  return readDirectory(bytes, name).map((e) => {
    if (e.method !== STORED) {
      throw new Error(`${name}: ${e.name} is compressed (method ${e.method}); only stored entries are read (unzip reads deflated ones)`);
    }
    return checked(e, e.raw, name);
  });
}
async function unzip(bytes, name = "archive.zip") {
  const out = [];
  for (const e of readDirectory(bytes, name)) {
    if (e.method === STORED) out.push(checked(e, e.raw, name));
    else if (e.method === DEFLATE) out.push(checked(e, await inflate(e, name), name));
    else {
      throw new Error(`${name}: ${e.name} is compressed with method ${e.method}; only stored (0) and deflated (8) entries are read`);
    }
  }
  return out;
}
async function inflate(e, name) {
  if (e.size > 1032 * e.raw.length + 64) {
    throw new Error(`${name}: ${e.name} records ${e.size} bytes for ${e.raw.length} deflated ones, more than deflate can expand to (corrupt)`);
  }
  const out = new Uint8Array(e.size);
  let at = 0;
  const reader = new Blob([
    e.raw
  ]).stream().pipeThrough(new DecompressionStream("deflate-raw")).getReader();
  for (; ; ) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw new Error(`${name}: ${e.name} does not inflate (corrupt): ${err?.message ?? err}`);
    }
    if (chunk.done) break;
    if (at + chunk.value.length > e.size) {
      await reader.cancel().catch(() => {
      });
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

// src/io/hub.ts
init_source();
var HUB_ENDPOINT = "https://huggingface.co";
var HUB_ID = /^([A-Za-z0-9][\w.-]*)\/([A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?$/;
function parseHubId(text) {
  const m = HUB_ID.exec(text);
  if (!m || m[3]?.includes("..") || m[3]?.startsWith("/") || m[3]?.endsWith("/")) return void 0;
  return {
    repo: `${m[1]}/${m[2]}`,
    revision: m[3] ?? "main"
  };
}
function normalizeEndpoint(endpoint = HUB_ENDPOINT) {
  let url;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`HF_ENDPOINT ${JSON.stringify(endpoint)} is not a URL (e.g. https://huggingface.co)`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error(`HF_ENDPOINT ${endpoint}: only http and https endpoints are supported`);
  }
  return url.href.replace(/\/+$/, "");
}
function hubFileUrl(repo, revision, file, endpoint) {
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${normalizeEndpoint(endpoint)}/${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}
function hubFiles(id, options = {}) {
  const repo = id?.repo, revision = id?.revision ?? "main";
  if (typeof repo !== "string" || !parseHubId(repo) || repo.includes("@")) {
    throw new TypeError(`hubFiles: expected { repo: "org/name", revision? } (parseHubId("org/name@revision") makes one), got ` + (typeof id === "string" ? JSON.stringify(id) : `repo ${JSON.stringify(repo)}`));
  }
  if (typeof revision !== "string" || revision === "") {
    throw new TypeError(`hubFiles: revision must be a branch, tag or commit hash (default "main"), got ${JSON.stringify(revision)}`);
  }
  const base = hubFileUrl(repo, revision, "", options.endpoint);
  return urlFiles(base, {
    name: `${repo}@${revision}`,
    fetch: options.fetch,
    cacheFor: options.cacheFor,
    headers: options.token ? {
      authorization: `Bearer ${options.token}`
    } : void 0
  });
}

// src/model/config.ts
var DEFAULT_ROPE_THETA = 1e4;
function isObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
function parseModelConfig(json2, options = {}) {
  const file = options.file ?? "config.json";
  const fail = (field, why) => {
    throw new Error(`${file}: ${field}: ${why}`);
  };
  if (!isObject(json2)) return fail("(top level)", "expected a JSON object");
  const c = json2;
  const int = (key, fallback, min = 1, max = Number.MAX_SAFE_INTEGER) => {
    const v = c[key] ?? fallback;
    if (v === void 0) return fail(key, "missing required field");
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) {
      return fail(key, `expected an integer \u2265 ${min}, got ${JSON.stringify(v)}`);
    }
    if (v > max) return fail(key, `${v} is beyond what any model can hold here (at most ${max})`);
    return v;
  };
  const size = (key, fallback) => int(key, fallback, 1, 1 << 24);
  const optInt = (key) => c[key] === void 0 || c[key] === null ? void 0 : int(key, void 0, 0);
  const positive = (key, v) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(key, `expected a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const bool = (key, fallback) => {
    const v = c[key] ?? fallback;
    if (typeof v !== "boolean") return fail(key, `expected true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const modelType = c.model_type;
  if (modelType !== "qwen2") {
    fail("model_type", `unsupported model type ${JSON.stringify(modelType)}; mesp supports "qwen2" (Qwen2 / Qwen2.5)`);
  }
  let architecture = "Qwen2ForCausalLM";
  if (c.architectures !== void 0 && c.architectures !== null) {
    const a = c.architectures;
    if (!Array.isArray(a) || a.length !== 1 || typeof a[0] !== "string") {
      fail("architectures", `expected ["Qwen2ForCausalLM"], got ${JSON.stringify(a)}`);
    }
    architecture = a[0];
    if (architecture !== "Qwen2ForCausalLM") {
      fail("architectures", `unsupported architecture ${JSON.stringify(architecture)}; expected "Qwen2ForCausalLM"`);
    }
  }
  const hiddenSize = size("hidden_size");
  const intermediateSize = size("intermediate_size");
  const numLayers = size("num_hidden_layers");
  const numHeads = size("num_attention_heads");
  const numKvHeads = size("num_key_value_heads", numHeads);
  const vocabSize = size("vocab_size");
  for (const [key, n] of [
    [
      "vocab_size",
      vocabSize
    ],
    [
      "intermediate_size",
      intermediateSize
    ]
  ]) {
    if (n * hiddenSize > 2 ** 31) {
      fail(key, `${n} \xD7 hidden_size ${hiddenSize} is more than 2^31 weights in one matrix`);
    }
  }
  if (numHeads % numKvHeads !== 0) {
    fail("num_key_value_heads", `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  }
  let headDim;
  if (c.head_dim !== void 0 && c.head_dim !== null) {
    headDim = size("head_dim");
  } else {
    if (hiddenSize % numHeads !== 0) {
      fail("num_attention_heads", `${numHeads} does not divide hidden_size ${hiddenSize} (and there is no head_dim)`);
    }
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) fail("head_dim", `rotary embedding needs an even head dimension, got ${headDim}`);
  const hiddenAct = c.hidden_act ?? "silu";
  if (hiddenAct !== "silu") {
    fail("hidden_act", `unsupported activation ${JSON.stringify(hiddenAct)}; expected "silu"`);
  }
  if (bool("use_sliding_window", false)) {
    fail("use_sliding_window", "sliding-window attention is unsupported");
  }
  if (c.layer_types !== void 0 && c.layer_types !== null) {
    const lt = c.layer_types;
    if (!Array.isArray(lt) || lt.length !== numLayers) {
      fail("layer_types", `expected a list of ${numLayers} layer types`);
    }
    const other = lt.findIndex((t) => t !== "full_attention");
    if (other >= 0) {
      fail(`layer_types[${other}]`, `unsupported layer type ${JSON.stringify(lt[other])}`);
    }
  }
  const ropeTheta = parseRope(c, fail);
  const rmsNormEps = positive("rms_norm_eps", c.rms_norm_eps ?? 1e-6);
  const tieWordEmbeddings = bool("tie_word_embeddings", false);
  const maxPositionEmbeddings = int("max_position_embeddings", 32768);
  const bosTokenId = optInt("bos_token_id");
  const padTokenId = optInt("pad_token_id");
  let eosTokenIds = [];
  const eos = c.eos_token_id;
  if (eos !== void 0 && eos !== null) {
    const list = Array.isArray(eos) ? eos : [
      eos
    ];
    if (!list.every((t) => typeof t === "number" && Number.isSafeInteger(t) && t >= 0)) {
      fail("eos_token_id", `expected a token id or a list of token ids, got ${JSON.stringify(eos)}`);
    }
    eosTokenIds = list;
  }
  const dtypeValue = c.dtype ?? c.torch_dtype;
  if (dtypeValue !== void 0 && dtypeValue !== null && typeof dtypeValue !== "string") {
    fail(c.dtype !== void 0 ? "dtype" : "torch_dtype", `expected a string, got ${JSON.stringify(dtypeValue)}`);
  }
  const dtype = typeof dtypeValue === "string" ? dtypeValue : void 0;
  const quantization = parseQuantization(c, fail);
  const cfg = {
    architecture,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    ropeTheta,
    rmsNormEps,
    tieWordEmbeddings,
    maxPositionEmbeddings,
    eosTokenIds
  };
  if (bosTokenId !== void 0) cfg.bosTokenId = bosTokenId;
  if (padTokenId !== void 0) cfg.padTokenId = padTokenId;
  if (dtype !== void 0) cfg.dtype = dtype;
  if (quantization !== void 0) cfg.quantization = quantization;
  return cfg;
}
function parseRope(c, fail) {
  const theta = (field, v) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      return fail(field, `expected a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const isDefaultType = (r) => (r.rope_type ?? r.type ?? "default") === "default";
  const scaling = c.rope_scaling;
  if (scaling !== void 0 && scaling !== null) {
    const onlyDefault = isObject(scaling) && isDefaultType(scaling) && Object.keys(scaling).every((k) => k === "rope_type" || k === "type" || k === "rope_theta");
    if (!onlyDefault) fail("rope_scaling", `RoPE scaling is unsupported, got ${JSON.stringify(scaling)}`);
  }
  let fromParams;
  const params = c.rope_parameters;
  if (params !== void 0 && params !== null) {
    if (!isObject(params)) {
      return fail("rope_parameters", `expected an object, got ${JSON.stringify(params)}`);
    }
    if (!isDefaultType(params)) {
      fail("rope_parameters.rope_type", `unsupported RoPE type ${JSON.stringify(params.rope_type ?? params.type)}`);
    }
    const extra = Object.keys(params).find((k) => ![
      "rope_type",
      "type",
      "rope_theta"
    ].includes(k));
    if (extra !== void 0) fail(`rope_parameters.${extra}`, "RoPE scaling is unsupported");
    if (params.rope_theta !== void 0) fromParams = theta("rope_parameters.rope_theta", params.rope_theta);
  }
  const top = c.rope_theta === void 0 || c.rope_theta === null ? void 0 : theta("rope_theta", c.rope_theta);
  if (top !== void 0 && fromParams !== void 0 && top !== fromParams) {
    fail("rope_theta", `${top} conflicts with rope_parameters.rope_theta ${fromParams}`);
  }
  return fromParams ?? top ?? DEFAULT_ROPE_THETA;
}
function parseQuantization(c, fail) {
  const qc = c.quantization_config;
  if (isObject(qc) && qc.quant_method !== void 0) {
    fail("quantization_config.quant_method", `unsupported quantization ${JSON.stringify(qc.quant_method)}`);
  }
  const key = c.quantization !== void 0 && c.quantization !== null ? "quantization" : "quantization_config";
  const q = c[key];
  if (q === void 0 || q === null) return void 0;
  if (!isObject(q)) return fail(key, `expected an object, got ${JSON.stringify(q)}`);
  const bits = q.bits;
  const groupSize = q.group_size;
  if (bits !== 4 && bits !== 8) {
    fail(`${key}.bits`, `unsupported bits ${JSON.stringify(bits)}; expected 4 or 8`);
  }
  if (groupSize !== 64) {
    fail(`${key}.group_size`, `unsupported group size ${JSON.stringify(groupSize)}; expected 64`);
  }
  if (q.mode !== void 0 && q.mode !== "affine") {
    fail(`${key}.mode`, `unsupported quantization mode ${JSON.stringify(q.mode)}; expected "affine"`);
  }
  for (const [k, v] of Object.entries(q)) {
    if (k === "bits" || k === "group_size" || k === "mode") continue;
    const same = isObject(v) && v.bits === bits && v.group_size === groupSize;
    if (!same) fail(`${key}.${k}`, `unsupported per-layer quantization ${JSON.stringify(v)}`);
  }
  return {
    groupSize,
    bits
  };
}
function configToJson(cfg, options = {}) {
  const out = {
    architectures: [
      cfg.architecture
    ],
    attention_dropout: 0
  };
  if (cfg.bosTokenId !== void 0) out.bos_token_id = cfg.bosTokenId;
  if (cfg.eosTokenIds.length > 0) {
    out.eos_token_id = cfg.eosTokenIds.length === 1 ? cfg.eosTokenIds[0] : [
      ...cfg.eosTokenIds
    ];
  }
  if (cfg.headDim * cfg.numHeads !== cfg.hiddenSize) out.head_dim = cfg.headDim;
  Object.assign(out, {
    hidden_act: "silu",
    hidden_size: cfg.hiddenSize,
    initializer_range: 0.02,
    intermediate_size: cfg.intermediateSize,
    max_position_embeddings: cfg.maxPositionEmbeddings,
    max_window_layers: cfg.numLayers,
    model_type: "qwen2",
    num_attention_heads: cfg.numHeads,
    num_hidden_layers: cfg.numLayers,
    num_key_value_heads: cfg.numKvHeads
  });
  if (cfg.padTokenId !== void 0) out.pad_token_id = cfg.padTokenId;
  if (cfg.quantization) {
    const q = {
      group_size: cfg.quantization.groupSize,
      bits: cfg.quantization.bits
    };
    out.quantization = q;
    out.quantization_config = {
      ...q
    };
  }
  Object.assign(out, {
    rms_norm_eps: cfg.rmsNormEps,
    rope_scaling: null,
    rope_theta: cfg.ropeTheta,
    sliding_window: cfg.maxPositionEmbeddings,
    tie_word_embeddings: cfg.tieWordEmbeddings
  });
  if (cfg.dtype !== void 0) out.torch_dtype = cfg.dtype;
  if (options.transformersVersion !== void 0) out.transformers_version = options.transformersVersion;
  out.use_cache = true;
  out.use_sliding_window = false;
  out.vocab_size = cfg.vocabSize;
  return out;
}
function qwen25(hiddenSize, intermediateSize, numLayers, numHeads) {
  return Object.freeze({
    architecture: "Qwen2ForCausalLM",
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads: 2,
    headDim: hiddenSize / numHeads,
    vocabSize: 151936,
    ropeTheta: 1e6,
    rmsNormEps: 1e-6,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 32768,
    bosTokenId: 151643,
    eosTokenIds: Object.freeze([
      151645,
      151643
    ]),
    dtype: "bfloat16"
  });
}
var PRESETS = Object.freeze({
  "qwen2.5-0.5b": qwen25(896, 4864, 24, 14),
  "qwen2.5-1.5b": qwen25(1536, 8960, 28, 12),
  "qwen2.5-3b": qwen25(2048, 11008, 36, 16),
  "tiny": Object.freeze({
    ...qwen25(64, 256, 4, 4),
    dtype: "float32"
  }),
  // the demo of `train`: wide enough, and with an untied LM head, for LoRA to memorise a small dataset
  "demo": Object.freeze({
    ...qwen25(128, 512, 4, 4),
    tieWordEmbeddings: false
  })
});
function paramCounts(cfg) {
  const h = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const perLayer = h * q + q + 2 * (h * kv + kv) + q * h + 3 * h * cfg.intermediateSize + 2 * h;
  const embedding = cfg.vocabSize * h;
  const lmHead = cfg.tieWordEmbeddings ? 0 : embedding;
  const total = embedding + cfg.numLayers * perLayer + h + lmHead;
  return {
    perLayer,
    embedding,
    lmHead,
    finalNorm: h,
    total,
    nonEmbedding: total - embedding - lmHead
  };
}

// src/model/safetensors.ts
init_source();

// src/model/dtype.ts
if (new Uint8Array(new Uint16Array([
  1
]).buffer)[0] !== 1) {
  throw new Error("mesp needs a little-endian platform (safetensors and WebAssembly memory are little-endian)");
}
var scratchF32 = new Float32Array(1);
var scratchU32 = new Uint32Array(scratchF32.buffer);
function f32Bits(x) {
  scratchF32[0] = x;
  return scratchU32[0];
}
function bitsToF32(bits) {
  scratchU32[0] = bits;
  return scratchF32[0];
}
function bf16FromBits(u) {
  if ((u & 2147483647) > 2139095040) return 32704;
  return u + 32767 + (u >>> 16 & 1) >>> 16;
}
function f16FromBits(f) {
  const sign = f >>> 16 & 32768;
  const exp = f & 2139095040;
  if (exp >= 1199570944) {
    if (exp === 2139095040 && (f & 8388607) !== 0) return sign | 32256;
    return sign | 31744;
  }
  if (exp <= 939524096) {
    if (exp < 855638016) return sign;
    const e = exp >>> 23;
    let sig2 = 8388608 | f & 8388607;
    const lost = f & (1 << 113 - e) - 1;
    sig2 >>>= 113 - e;
    if ((sig2 & 16383) !== 4096 || lost !== 0) sig2 += 4096;
    return sign | sig2 >>> 13;
  }
  let sig = f & 8388607;
  if ((sig & 16383) !== 4096) sig += 4096;
  return sign | (exp - 939524096 >>> 13) + (sig >>> 13);
}
function f16ToBits(h) {
  const sign = (h & 32768) << 16;
  const exp = h >>> 10 & 31;
  let mant = h & 1023;
  if (exp === 31) return (sign | 2139095040 | mant << 13) >>> 0;
  if (exp !== 0) return (sign | exp + 112 << 23 | mant << 13) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = 113;
  while ((mant & 1024) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | e << 23 | (mant & 1023) << 13) >>> 0;
}
function f32ToBf16Bits(x) {
  return bf16FromBits(f32Bits(x));
}
function bf16BitsToF32(bits) {
  return bitsToF32((bits & 65535) << 16);
}
function f32ToF16Bits(x) {
  return f16FromBits(f32Bits(x));
}
function f16BitsToF32(bits) {
  return bitsToF32(f16ToBits(bits & 65535));
}
function output(what, length, dst, make) {
  if (dst === void 0) return make();
  if (dst.length !== length) {
    throw new RangeError(`${what}: destination has ${dst.length} elements, need ${length}`);
  }
  return dst;
}
function f32ToBf16(src, dst) {
  const out = output("f32ToBf16", src.length, dst, () => new Uint16Array(src.length));
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = bf16FromBits(bits[i]);
  return out;
}
function bf16ToF32(src, dst) {
  const out = output("bf16ToF32", src.length, dst, () => new Float32Array(src.length));
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
function f32ToF16(src, dst) {
  const out = output("f32ToF16", src.length, dst, () => new Uint16Array(src.length));
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16FromBits(bits[i]);
  return out;
}
function f16ToF32(src, dst) {
  const out = output("f16ToF32", src.length, dst, () => new Float32Array(src.length));
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = f16ToBits(src[i]);
  return out;
}

// src/model/finite.ts
function firstNonFinite(x) {
  let poison = 0;
  for (let i = 0; i < x.length; i++) poison += x[i] * 0;
  if (poison === 0) return -1;
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}
function assertFinite(x, what, cols = 0, rowOffset = 0) {
  const i = firstNonFinite(x);
  if (i < 0) return;
  const at = cols > 0 ? `row ${rowOffset + Math.floor(i / cols)}, column ${i % cols}` : `element ${i}`;
  throw new Error(`${what}: non-finite value ${x[i]} at ${at}`);
}
function assertFiniteHalf(bits, dtype, what) {
  const exp = dtype === "bf16" ? 32640 : 31744;
  for (let i = 0; i < bits.length; i++) {
    if ((bits[i] & exp) === exp) {
      throw new Error(`${what}: non-finite ${dtype} value (bits 0x${bits[i].toString(16)}) at element ${i}`);
    }
  }
}

// src/model/safetensors.ts
var DTYPE_BITS = Object.freeze({
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64
});
var DTYPE_ORDER = new Map(Object.keys(DTYPE_BITS).map((d, i) => [
  d,
  i
]));
var MAX_HEADER_SIZE = 1e8;
function numel(shape) {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
function byteSize(dtype, shape) {
  const bits = numel(shape) * DTYPE_BITS[dtype];
  if (!Number.isSafeInteger(bits)) return `shape ${JSON.stringify(shape)} is too large`;
  if (bits % 8 !== 0) return `shape ${JSON.stringify(shape)} of ${dtype} is not a whole number of bytes`;
  return bits / 8;
}
function isDtype(s) {
  return typeof s === "string" && DTYPE_ORDER.has(s);
}
function isObject2(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
var isIndex = (v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
async function readSafetensorsHeader(source) {
  const file = source.name;
  const fail = (why) => {
    throw new Error(`safetensors ${file}: ${why}`);
  };
  const fileSize = await source.size();
  if (fileSize < 8) fail(`file too small (${fileSize} bytes; the 8-byte header length is missing)`);
  const prefix = new Uint8Array(8);
  await source.read(0, prefix);
  const view = new DataView(prefix.buffer);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi > 0 || n > MAX_HEADER_SIZE) fail(`header length ${n} exceeds the maximum ${MAX_HEADER_SIZE}`);
  if (8 + n > fileSize) {
    fail(`header length ${n} runs past the end of the file (${fileSize} bytes): truncated?`);
  }
  const headerBytes = new Uint8Array(n);
  await source.read(8, headerBytes);
  let text = "";
  try {
    text = new TextDecoder("utf-8", {
      fatal: true,
      ignoreBOM: true
    }).decode(headerBytes);
  } catch {
    fail("header is not valid UTF-8");
  }
  let header;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON (${err.message})`);
  }
  if (!isObject2(header)) return fail("header is not a JSON object");
  const duplicate = findDuplicateKey(text);
  if (duplicate) fail(`duplicate key ${JSON.stringify(duplicate)} in the header`);
  const metadata = {};
  const entries = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (value === null) continue;
      if (!isObject2(value)) fail("__metadata__ must be an object mapping strings to strings");
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== "string") {
          fail(`__metadata__[${JSON.stringify(k)}] must be a string, got ${JSON.stringify(v)}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor ${JSON.stringify(name)}`;
    if (!isObject2(value)) {
      fail(`${where}: expected {dtype, shape, data_offsets}, got ${JSON.stringify(value)}`);
    }
    const { dtype, shape, data_offsets: offsets } = value;
    if (dtype === void 0) fail(`${where}: missing dtype`);
    if (!isDtype(dtype)) fail(`${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      fail(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex)) {
      fail(`${where}: data_offsets must be [begin, end], got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets;
    if (end < begin) fail(`${where}: data_offsets end ${end} is before begin ${begin}`);
    entries.push({
      name,
      dtype,
      shape,
      begin,
      end
    });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const tensors = /* @__PURE__ */ new Map();
  const dataOffset = 8 + n;
  let expected = 0;
  let previous = "";
  for (const e of entries) {
    const where = `tensor ${JSON.stringify(e.name)}`;
    if (e.begin > expected) {
      fail(`${where}: gap in the data buffer: begins at ${e.begin} but the previous tensor ends at ${expected}`);
    }
    if (e.begin < expected) {
      fail(`${where}: overlaps tensor ${JSON.stringify(previous)} (begins at ${e.begin}, which ends at ${expected})`);
    }
    const size = byteSize(e.dtype, e.shape);
    if (typeof size === "string") fail(`${where}: ${size}`);
    if (e.end - e.begin !== size) {
      fail(`${where}: data_offsets span ${e.end - e.begin} bytes but shape ${JSON.stringify(e.shape)} \xD7 ${e.dtype} needs ${size} bytes`);
    }
    tensors.set(e.name, {
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
      offset: dataOffset + e.begin,
      byteLength: e.end - e.begin
    });
    expected = e.end;
    previous = e.name;
  }
  const dataEnd = dataOffset + expected;
  if (dataEnd < fileSize) {
    fail(`${fileSize - dataEnd} trailing bytes after the last tensor (data ends at ${dataEnd})`);
  }
  if (dataEnd > fileSize) {
    fail(`file truncated: tensor data ends at byte ${dataEnd} but the file has ${fileSize} bytes`);
  }
  return {
    source,
    metadata,
    tensors,
    dataOffset
  };
}
function findDuplicateKey(text) {
  const stack = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 34) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 34) j += text.charCodeAt(j) === 92 ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1));
        const keys = stack[stack.length - 1];
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === 123) {
      stack.push(/* @__PURE__ */ new Set());
      expectKey = true;
    } else if (ch === 91) {
      stack.push(null);
    } else if (ch === 125 || ch === 93) {
      stack.pop();
    } else if (ch === 44) {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return void 0;
}
function tensorInfo(file, name) {
  const info = file.tensors.get(name);
  if (!info) throw new Error(`safetensors ${file.source.name}: no tensor ${JSON.stringify(name)}`);
  return info;
}
async function readTensorF32(file, name, into) {
  const info = tensorInfo(file, name);
  const count = numel(info.shape);
  const where = `safetensors ${file.source.name}: tensor ${JSON.stringify(name)}`;
  if (into !== void 0 && into.length !== count) {
    throw new RangeError(`${where} has ${count} elements, buffer has ${into.length}`);
  }
  const out = into ?? new Float32Array(count);
  switch (info.dtype) {
    case "F32":
      await file.source.read(info.offset, new Uint8Array(out.buffer, out.byteOffset, info.byteLength));
      break;
    case "BF16":
    case "F16": {
      const half = new Uint16Array(count);
      await file.source.read(info.offset, new Uint8Array(half.buffer));
      if (info.dtype === "BF16") bf16ToF32(half, out);
      else f16ToF32(half, out);
      break;
    }
    default:
      throw new Error(`${where} has dtype ${info.dtype}; readTensorF32 reads F32, F16 and BF16`);
  }
  assertFinite(out, where, info.shape.length === 2 ? info.shape[1] : 0);
  return out;
}
var SINGLE_FILE = "model.safetensors";
var INDEX_FILE = "model.safetensors.index.json";
async function openCheckpoint(files) {
  const dir = files.name;
  const opened = /* @__PURE__ */ new Map();
  const where = /* @__PURE__ */ new Map();
  try {
    const single = await openIfExists(files.source(SINGLE_FILE));
    if (single) {
      opened.set(SINGLE_FILE, single);
      for (const info of single.tensors.values()) where.set(info.name, {
        file: single,
        info
      });
    } else {
      const text = await files.readText(INDEX_FILE);
      if (text === void 0) throw new Error(`no ${SINGLE_FILE} or ${INDEX_FILE} in ${dir}`);
      const weightMap = parseIndex(text, `${dir}/${INDEX_FILE}`);
      for (const shard of new Set(weightMap.values())) {
        const st = await openIfExists(files.source(shard));
        if (!st) {
          throw new Error(`shard ${JSON.stringify(shard)} named in ${INDEX_FILE} is missing in ${dir}`);
        }
        opened.set(shard, st);
      }
      for (const [tensor, shard] of weightMap) {
        const file = opened.get(shard);
        const info = file.tensors.get(tensor);
        if (!info) {
          throw new Error(`${dir}/${INDEX_FILE} maps tensor ${JSON.stringify(tensor)} to ${JSON.stringify(shard)}, which does not contain it`);
        }
        where.set(tensor, {
          file,
          info
        });
      }
    }
  } catch (err) {
    for (const f of opened.values()) f.source.close?.();
    throw err;
  }
  return {
    name: dir,
    files: opened,
    get(name) {
      const loc = where.get(name);
      if (!loc) throw new Error(`missing tensor ${JSON.stringify(name)} in ${dir}`);
      return loc;
    },
    has: (name) => where.has(name),
    names: () => [
      ...where.keys()
    ].sort(),
    close() {
      for (const f of opened.values()) f.source.close?.();
    }
  };
}
async function openIfExists(source) {
  try {
    return await readSafetensorsHeader(source);
  } catch (err) {
    if (err instanceof FileNotFoundError) return void 0;
    throw err;
  }
}
function parseIndex(text, file) {
  let json2;
  try {
    json2 = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: invalid JSON (${err.message})`);
  }
  if (!isObject2(json2)) throw new Error(`${file}: expected a JSON object`);
  if (json2.metadata !== void 0 && json2.metadata !== null && !isObject2(json2.metadata)) {
    throw new Error(`${file}: metadata must be an object`);
  }
  const wm = json2.weight_map;
  if (!isObject2(wm)) throw new Error(`${file}: weight_map must be an object mapping tensor names to files`);
  const map = /* @__PURE__ */ new Map();
  for (const [tensor, shard] of Object.entries(wm)) {
    if (typeof shard !== "string") {
      throw new Error(`${file}: weight_map[${JSON.stringify(tensor)}] must be a file name, got ${JSON.stringify(shard)}`);
    }
    if (shard === "" || shard === "." || shard === ".." || /[\\/]/.test(shard)) {
      throw new Error(`${file}: weight_map[${JSON.stringify(tensor)}] = ${JSON.stringify(shard)} is not a plain file name`);
    }
    map.set(tensor, shard);
  }
  return map;
}
function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i);
    const y = b.codePointAt(i);
    if (x !== y) return x - y;
    if (x > 65535) i++;
  }
  return a.length - b.length;
}
function encodeSafetensorsHeader(entries, metadata) {
  const seen = /* @__PURE__ */ new Set();
  for (const e of entries) {
    const where = `safetensors writer: tensor ${JSON.stringify(e.name)}`;
    if (e.name === "__metadata__") throw new Error(`${where}: reserved name`);
    if (seen.has(e.name)) throw new Error(`${where}: duplicate name`);
    seen.add(e.name);
    if (!isDtype(e.dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(e.dtype)}`);
    if (!e.shape.every(isIndex)) throw new Error(`${where}: invalid shape ${JSON.stringify(e.shape)}`);
  }
  const sorted = [
    ...entries
  ].sort((a, b) => DTYPE_ORDER.get(b.dtype) - DTYPE_ORDER.get(a.dtype) || compareCodePoints(a.name, b.name));
  const header = {};
  if (metadata !== void 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new Error(`safetensors writer: __metadata__[${JSON.stringify(k)}] must be a string`);
      }
    }
    header.__metadata__ = metadata;
  }
  const tensors = [];
  let offset = 0;
  for (const e of sorted) {
    const size = byteSize(e.dtype, e.shape);
    if (typeof size === "string") {
      throw new Error(`safetensors writer: tensor ${JSON.stringify(e.name)}: ${size}`);
    }
    const placed = {
      name: e.name,
      dtype: e.dtype,
      shape: [
        ...e.shape
      ],
      begin: offset,
      end: offset + size
    };
    tensors.push(placed);
    header[e.name] = {
      dtype: e.dtype,
      shape: placed.shape,
      data_offsets: [
        placed.begin,
        placed.end
      ]
    };
    offset += size;
  }
  const json2 = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json2.length / 8) * 8;
  const bytes = new Uint8Array(8 + n).fill(32, 8 + json2.length);
  new DataView(bytes.buffer).setUint32(0, n, true);
  bytes.set(json2, 8);
  return {
    bytes,
    tensors,
    fileSize: 8 + n + offset
  };
}
function asBytes(v) {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}
function checkDataLength(t, length) {
  if (length !== t.end - t.begin) {
    throw new Error(`safetensors writer: tensor ${JSON.stringify(t.name)} has ${length} bytes of data but shape ${JSON.stringify(t.shape)} \xD7 ${t.dtype} needs ${t.end - t.begin}`);
  }
}
async function writeSafetensors(sink, entries, metadata) {
  const header = encodeSafetensorsHeader(entries, metadata);
  const byName = new Map(entries.map((e) => [
    e.name,
    e
  ]));
  await sink.write(header.bytes);
  for (const t of header.tensors) {
    const { data } = byName.get(t.name);
    const produced = typeof data === "function" ? await data() : data;
    if (ArrayBuffer.isView(produced)) {
      const bytes = asBytes(produced);
      checkDataLength(t, bytes.length);
      await sink.write(bytes);
      continue;
    }
    let written = 0;
    for (const piece of produced) {
      const bytes = asBytes(piece);
      written += bytes.length;
      if (written > t.end - t.begin) checkDataLength(t, written);
      await sink.write(bytes);
    }
    checkDataLength(t, written);
  }
  return header.fileSize;
}
function encodeSafetensors(entries, metadata) {
  const header = encodeSafetensorsHeader(entries, metadata);
  const byName = new Map(entries.map((e) => [
    e.name,
    e
  ]));
  const out = new Uint8Array(header.fileSize);
  out.set(header.bytes);
  let pos = header.bytes.length;
  for (const t of header.tensors) {
    const bytes = asBytes(byName.get(t.name).data);
    checkDataLength(t, bytes.length);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

// src/model/quantize.ts
var GROUP_SIZE = 64;
function quantizedBytes(rows, cols, bits) {
  return rows * cols * bits / 8;
}
function checkBits(bits, where) {
  if (bits !== 4 && bits !== 8) throw new Error(`${where}: bits must be 4 or 8, got ${bits}`);
}
function checkCols(cols, where) {
  if (!Number.isSafeInteger(cols) || cols <= 0 || cols % GROUP_SIZE !== 0) {
    throw new Error(`${where}: the row length must be a positive multiple of ${GROUP_SIZE}, got ${cols}`);
  }
}
function checkLength(what, actual, expected, where) {
  if (actual !== expected) {
    throw new RangeError(`${where}: ${what} has ${actual} elements, expected ${expected}`);
  }
}
function quantize(w, cols, options = {}) {
  const name = options.name ?? "quantize";
  const bits = options.bits ?? 4;
  checkBits(bits, name);
  checkCols(cols, name);
  if (w.length % cols !== 0) {
    throw new RangeError(`${name}: ${w.length} values are not a whole number of rows of ${cols}`);
  }
  const rows = w.length / cols;
  const groups = cols / GROUP_SIZE;
  const bf16 = (options.scaleDtype ?? "f16") === "bf16";
  const toHalf = bf16 ? f32ToBf16Bits : f32ToF16Bits;
  const fromHalf = bf16 ? bf16BitsToF32 : f16BitsToF32;
  const out = options.into ?? {
    q: new Uint8Array(options.scalesOnly ? 0 : quantizedBytes(rows, cols, bits)),
    scales: new Uint16Array(rows * groups),
    biases: new Uint16Array(rows * groups)
  };
  if (!options.scalesOnly) checkLength("into.q", out.q.length, quantizedBytes(rows, cols, bits), name);
  checkLength("into.scales", out.scales.length, rows * groups, name);
  checkLength("into.biases", out.biases.length, rows * groups, name);
  const rowOffset = options.rowOffset ?? 0;
  const levels = (1 << bits) - 1;
  const q = out.q;
  for (let g = 0; g < rows * groups; g++) {
    const start = g * GROUP_SIZE;
    const end = start + GROUP_SIZE;
    let min = Infinity;
    let max = -Infinity;
    let poison = 0;
    for (let i = start; i < end; i++) {
      const v = w[i];
      poison += v * 0;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    if (poison !== 0) {
      const i = w.subarray(start, end).findIndex((v) => !Number.isFinite(v)) + start;
      const row = Math.floor(i / cols);
      throw new Error(`${name}: row ${row + rowOffset}, column ${i - row * cols}: non-finite value ${w[i]}`);
    }
    const scaleBits = toHalf((max - min) / levels);
    const biasBits = toHalf(min);
    const scale = fromHalf(scaleBits);
    const bias = fromHalf(biasBits);
    if (!Number.isFinite(scale) || !Number.isFinite(bias)) {
      const row = Math.floor(g / groups);
      throw new Error(`${name}: row ${row + rowOffset}, group ${g - row * groups}: range [${min}, ${max}] does not fit in ${bf16 ? "bf16" : "f16"} scales/biases`);
    }
    out.scales[g] = scaleBits;
    out.biases[g] = biasBits;
    if (options.scalesOnly) continue;
    if (scale === 0) {
      q.fill(0, start * bits >> 3, end * bits >> 3);
      continue;
    }
    for (let i = start; i < end; i++) {
      const x = (w[i] - bias) / scale;
      let r = Math.floor(x + 0.5);
      if (r - x === 0.5 && (r & 1) !== 0) r--;
      r = r < 0 ? 0 : r > levels ? levels : r;
      if (bits === 8) q[i] = r;
      else if ((i & 1) === 0) q[i >> 1] = r;
      else q[i >> 1] |= r << 4;
    }
  }
  return out;
}
function dequantize(qz, cols, options = {}) {
  const name = options.name ?? "dequantize";
  const bits = options.bits ?? 4;
  checkBits(bits, name);
  checkCols(cols, name);
  const groups = cols / GROUP_SIZE;
  checkLength("biases", qz.biases.length, qz.scales.length, name);
  if (qz.scales.length % groups !== 0) {
    throw new RangeError(`${name}: ${qz.scales.length} scales are not a whole number of rows of ${groups}`);
  }
  const rows = qz.scales.length / groups;
  checkLength("q (bytes)", qz.q.length, quantizedBytes(rows, cols, bits), name);
  const out = options.into ?? new Float32Array(rows * cols);
  checkLength("into", out.length, rows * cols, name);
  const fromHalf = (options.scaleDtype ?? "f16") === "bf16" ? bf16BitsToF32 : f16BitsToF32;
  const q = qz.q;
  for (let g = 0; g < rows * groups; g++) {
    const scale = fromHalf(qz.scales[g]);
    const bias = fromHalf(qz.biases[g]);
    const start = g * GROUP_SIZE;
    if (bits === 4) {
      for (let i = start, b = start >> 1; i < start + GROUP_SIZE; i += 2, b++) {
        const byte = q[b];
        out[i] = Math.fround(scale * (byte & 15)) + bias;
        out[i + 1] = Math.fround(scale * (byte >>> 4)) + bias;
      }
    } else {
      for (let i = start; i < start + GROUP_SIZE; i++) out[i] = Math.fround(scale * q[i]) + bias;
    }
  }
  return out;
}

// src/io/checksum.ts
var rotl = (x, r) => x << r | x >>> 32 - r;
function fmix(h) {
  h = Math.imul(h ^ h >>> 16, 2246822507);
  h = Math.imul(h ^ h >>> 13, 3266489909);
  return (h ^ h >>> 16) >>> 0;
}
var Checksum = class {
  #a = 0;
  #b = 0;
  #length = 0;
  #pending = 0;
  #pendingBytes = 0;
  #scratch;
  constructor() {
    this.reset();
  }
  /** Starts over. */
  reset() {
    this.#a = 2538058380 | 0;
    this.#b = 2166136261 | 0;
    this.#length = 0;
    this.#pending = 0;
    this.#pendingBytes = 0;
    return this;
  }
  /** Adds bytes. Aligned input is read as 32-bit words in place (no copy, no allocation but a view). */
  update(bytes) {
    const n = bytes.length;
    this.#length += n;
    let i = 0;
    while (this.#pendingBytes > 0 && i < n) this.#push(bytes[i++]);
    const words = n - i >>> 2;
    if (words > 0) {
      if ((bytes.byteOffset + i & 3) === 0) {
        this.#words(new Uint32Array(bytes.buffer, bytes.byteOffset + i, words), words);
      } else {
        const scratch = this.#scratch ??= new Uint32Array(16384);
        const u8 = new Uint8Array(scratch.buffer);
        for (let w = 0; w < words; w += scratch.length) {
          const k = Math.min(scratch.length, words - w);
          u8.set(bytes.subarray(i + w * 4, i + (w + k) * 4));
          this.#words(scratch, k);
        }
      }
      i += words * 4;
    }
    while (i < n) this.#push(bytes[i++]);
    return this;
  }
  #push(byte) {
    this.#pending |= byte << 8 * this.#pendingBytes;
    if (++this.#pendingBytes === 4) {
      this.#mix(this.#pending);
      this.#pending = 0;
      this.#pendingBytes = 0;
    }
  }
  #words(w, n) {
    let a = this.#a, b = this.#b;
    for (let i = 0; i < n; i++) {
      const x = w[i];
      const k = Math.imul(rotl(Math.imul(x, 3432918353), 15), 461845907);
      a = Math.imul(rotl(a ^ k, 13), 5) + 3864292196 | 0;
      b = Math.imul(b ^ x, 16777619) ^ b >>> 15;
    }
    this.#a = a;
    this.#b = b;
  }
  #mix(x) {
    const k = Math.imul(rotl(Math.imul(x, 3432918353), 15), 461845907);
    this.#a = Math.imul(rotl(this.#a ^ k, 13), 5) + 3864292196 | 0;
    this.#b = Math.imul(this.#b ^ x, 16777619) ^ this.#b >>> 15;
  }
  #high = 0;
  #low = 0;
  /** Computes the value into #high and #low; the state is left as it was. */
  #finish() {
    let a = this.#a, b = this.#b;
    const tail = this.#pending ^ Math.imul(this.#length, 625341585) ^ Math.floor(this.#length / 2 ** 32);
    a = Math.imul(rotl(a ^ Math.imul(tail, 3432918353), 13), 5) + 3864292196 | 0;
    b = Math.imul(b ^ tail, 16777619);
    this.#high = fmix(a ^ b);
    this.#low = fmix(b + Math.imul(a, 668265263) | 0);
  }
  /** Whether the value is `high`:`low` (two unsigned 32-bit halves), without allocating. */
  equals(high, low) {
    this.#finish();
    return this.#high === high && this.#low === low;
  }
  /** The value's two unsigned 32-bit halves written at `into[at]`, `into[at + 1]`. */
  writeTo(into, at) {
    this.#finish();
    into[at] = this.#high;
    into[at + 1] = this.#low;
  }
  /** The value as 16 hex digits. */
  hex() {
    this.#finish();
    return this.#high.toString(16).padStart(8, "0") + this.#low.toString(16).padStart(8, "0");
  }
};

// src/model/checkpoint_fingerprint.ts
async function contentChecksum(source, size, onBytes) {
  const sum = new Checksum();
  const chunk = new Uint8Array(Math.min(size, 4 << 20));
  for (let at = 0; at < size; at += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, size - at));
    await source.read(at, part);
    sum.update(part);
    onBytes?.(part.length);
  }
  return sum.hex();
}
async function checkpointFingerprint(files, ckpt, checksumOf, options = {}) {
  let total = 0, done = 0;
  for (const f of ckpt.files.values()) total += await f.source.size();
  const report = options.onProgress;
  checksumOf ??= (_name, source, size) => contentChecksum(source, size, report && ((n) => report(done += n, total)));
  const enc = new TextEncoder();
  const parts = [
    await files.readText("config.json") ?? ""
  ];
  for (const [name, f] of [
    ...ckpt.files
  ].sort(([a], [b]) => a < b ? -1 : 1)) {
    const size = await f.source.size();
    parts.push(`${name}:${size}:${JSON.stringify([
      ...f.tensors.values()
    ])}:${await checksumOf(name, f.source, size)}`);
  }
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(parts.join("\n"))));
  return [
    ...digest
  ].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// src/model/pack.ts
init_source();

// src/model/qwen2.ts
var LINEARS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj"
];
var ATTENTION = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj"
];
function linearShape(cfg, name) {
  const d = cfg.hiddenSize, q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim;
  const i = cfg.intermediateSize;
  switch (name) {
    case "q_proj":
      return [
        q,
        d
      ];
    case "k_proj":
    case "v_proj":
      return [
        kv,
        d
      ];
    case "o_proj":
      return [
        d,
        q
      ];
    case "gate_proj":
    case "up_proj":
      return [
        i,
        d
      ];
    case "down_proj":
      return [
        d,
        i
      ];
  }
}
var LINEAR_PREFIX = {
  q_proj: "self_attn.q_proj",
  k_proj: "self_attn.k_proj",
  v_proj: "self_attn.v_proj",
  o_proj: "self_attn.o_proj",
  gate_proj: "mlp.gate_proj",
  up_proj: "mlp.up_proj",
  down_proj: "mlp.down_proj"
};
var BIASED = [
  "q_proj",
  "k_proj",
  "v_proj"
];
var LAYER_NORMS = [
  "input_layernorm",
  "post_attention_layernorm"
];
var EMBED_TOKENS = "model.embed_tokens";
var FINAL_NORM = "model.norm";
var LM_HEAD = "lm_head";
function layerTensor(l, path) {
  return `model.layers.${l}.${path}`;
}
function modelTensors(cfg) {
  const d = cfg.hiddenSize;
  const out = [
    {
      name: `${EMBED_TOKENS}.weight`,
      shape: [
        cfg.vocabSize,
        d
      ],
      kind: "embedding"
    }
  ];
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const linear2 of LINEARS) {
      const base = layerTensor(l, LINEAR_PREFIX[linear2]), shape = linearShape(cfg, linear2);
      out.push({
        name: `${base}.weight`,
        shape,
        kind: "linear"
      });
      if (BIASED.includes(linear2)) out.push({
        name: `${base}.bias`,
        shape: [
          shape[0]
        ],
        kind: "bias"
      });
    }
    for (const norm of LAYER_NORMS) {
      out.push({
        name: `${layerTensor(l, norm)}.weight`,
        shape: [
          d
        ],
        kind: "norm"
      });
    }
  }
  out.push({
    name: `${FINAL_NORM}.weight`,
    shape: [
      d
    ],
    kind: "norm"
  });
  if (!cfg.tieWordEmbeddings) {
    out.push({
      name: `${LM_HEAD}.weight`,
      shape: [
        cfg.vocabSize,
        d
      ],
      kind: "linear"
    });
  }
  return out;
}

// src/model/pack_layout.ts
var GROUP = 64;
var ALIGN = 64;
var MLP_CHUNK = 256;
function dtypeOf(format) {
  return format;
}
var align = (n) => Math.ceil(n / ALIGN) * ALIGN;
function matrixSlot(rows, cols, format, bf16Scales, at) {
  const quantized = format === "q4" || format === "q8";
  if (quantized && cols % GROUP !== 0) {
    throw new Error(`${format} weights need every input dimension to be a multiple of ${GROUP}, but a matrix has ${cols} columns; use --weights f16 or f32 for this model`);
  }
  const elem = {
    q4: 0.5,
    q8: 1,
    bf16: 2,
    f16: 2,
    f32: 4
  }[format];
  const rowBytes = cols * elem;
  const scaleRowBytes = quantized ? cols / GROUP * 2 : 0;
  const offset = align(at);
  const scalesOffset = align(offset + rows * rowBytes);
  const biasesOffset = align(scalesOffset + rows * scaleRowBytes);
  const end = quantized ? biasesOffset + rows * scaleRowBytes : offset + rows * rowBytes;
  return {
    rows,
    cols,
    dtype: dtypeOf(format),
    bf16Scales: quantized && bf16Scales,
    offset,
    scalesOffset: quantized ? scalesOffset : 0,
    biasesOffset: quantized ? biasesOffset : 0,
    rowBytes,
    scaleRowBytes,
    bytes: end - offset
  };
}
function vocabSlot(rows, cols, format, bf16Scales) {
  const m = matrixSlot(rows, cols, format, bf16Scales, 0);
  const rowStride = m.rowBytes + 2 * m.scaleRowBytes;
  return {
    rows,
    cols,
    dtype: m.dtype,
    bf16Scales: m.bf16Scales,
    rowBytes: m.rowBytes,
    scaleRowBytes: m.scaleRowBytes,
    rowStride,
    bytes: rows * rowStride
  };
}
function vectorSlot(length, at) {
  return {
    length,
    offset: align(at),
    bytes: length * 4
  };
}
function layerLayout(cfg, format, bf16Scales = false, mlpChunk = MLP_CHUNK) {
  if (!(mlpChunk > 0) || mlpChunk % GROUP !== 0) {
    throw new Error(`MLP chunk must be a multiple of ${GROUP}, got ${mlpChunk}`);
  }
  let at = 0;
  const attention = {};
  for (const name of ATTENTION) {
    const [o, i] = linearShape(cfg, name);
    const slot = matrixSlot(o, i, format, bf16Scales, at);
    attention[name] = slot;
    at = slot.offset + slot.bytes;
  }
  const vec = (n) => {
    const v = vectorSlot(n, at);
    at = v.offset + v.bytes;
    return v;
  };
  const q = cfg.numHeads * cfg.headDim, kv = cfg.numKvHeads * cfg.headDim, d = cfg.hiddenSize;
  const qBias = vec(q), kBias = vec(kv), vBias = vec(kv);
  const inputNorm = vec(d), postNorm = vec(d);
  const attentionBytes = align(at);
  const chunks = [];
  let offset = attentionBytes;
  for (let c0 = 0; c0 < cfg.intermediateSize; c0 += mlpChunk) {
    const c1 = Math.min(cfg.intermediateSize, c0 + mlpChunk), n = c1 - c0;
    const gate = matrixSlot(n, d, format, bf16Scales, 0);
    const up = matrixSlot(n, d, format, bf16Scales, gate.offset + gate.bytes);
    const down = matrixSlot(d, n, format, bf16Scales, up.offset + up.bytes);
    const bytes = align(down.offset + down.bytes);
    chunks.push({
      c0,
      c1,
      offset,
      gate,
      up,
      down,
      bytes
    });
    offset += bytes;
  }
  const chunkBytes = Math.max(...chunks.map((c) => c.bytes));
  return {
    attention,
    qBias,
    kBias,
    vBias,
    inputNorm,
    postNorm,
    attentionBytes,
    mlpChunk,
    chunks,
    chunkBytes,
    bytes: offset
  };
}
function copiesQuantized(cfg, format) {
  const q = cfg.quantization;
  return q !== void 0 && q.groupSize === GROUP && (q.bits === 4 && format === "q4" || q.bits === 8 && format === "q8");
}

// src/model/pack_header.ts
var MAGIC2 = "MESPPACK";
var VERSION = 5;
var PRELUDE_BYTES = 16;
var HEADER_READ_BYTES = 16 << 10;
function planPack(cfg, format, mlpChunk = MLP_CHUNK, vocabBlock = VOCAB_BLOCK) {
  const bf16Scales = copiesQuantized(cfg, format);
  const layout = layerLayout(cfg, format, bf16Scales, mlpChunk);
  let at = PRELUDE_BYTES + align(4096 + cfg.numLayers * 64);
  const section = (bytes) => {
    const s = {
      offset: align(at),
      bytes
    };
    at = s.offset + bytes;
    return s;
  };
  const vocab = vocabSlot(cfg.vocabSize, cfg.hiddenSize, format, bf16Scales);
  const embed2 = section(vocab.bytes);
  const layers = Array.from({
    length: cfg.numLayers
  }, () => section(layout.bytes));
  const norm = section(cfg.hiddenSize * 4);
  const lmHead = cfg.tieWordEmbeddings ? void 0 : section(vocab.bytes);
  const first = blockCount(cfg.numLayers, layout.chunks.length);
  const checksums = section((first + vocabBlocks(cfg, vocab, vocabBlock, first).count) * 8);
  return {
    version: VERSION,
    format,
    bf16Scales,
    mlpChunk,
    vocabBlock,
    config: cfg,
    embed: embed2,
    layers,
    norm,
    lmHead,
    checksums,
    fileBytes: align(at)
  };
}
function blockCount(layers, chunks) {
  return layers * (1 + chunks) + 1;
}
var VOCAB_BLOCK = 512;
function vocabBlocks(cfg, slot, rows, first) {
  const perMatrix = Math.ceil(cfg.vocabSize / rows);
  return {
    rows,
    rowStride: slot.rowStride,
    perMatrix,
    first,
    count: (cfg.tieWordEmbeddings ? 1 : 2) * perMatrix
  };
}
function vocabBlockIndex(v, m, b) {
  return v.first + m * v.perMatrix + b;
}
var StalePackError = class extends Error {
  constructor(message) {
    super(message);
    this.name = "StalePackError";
  }
};
function encodePackHeader(header) {
  const json2 = new TextEncoder().encode(JSON.stringify(header));
  if (PRELUDE_BYTES + json2.length > header.embed.offset) {
    throw new Error(`pack header too large (${json2.length} bytes)`);
  }
  const out = new Uint8Array(PRELUDE_BYTES + json2.length);
  out.set(new TextEncoder().encode(MAGIC2));
  new DataView(out.buffer).setUint32(8, VERSION, true);
  new DataView(out.buffer).setUint32(12, json2.length, true);
  out.set(json2, PRELUDE_BYTES);
  return out;
}
async function readPackHeader(source, size) {
  if (size < PRELUDE_BYTES) {
    throw new StalePackError(`${source.name}: not a mesp pack (too short: ${size} bytes)`);
  }
  source.expect?.(0, Math.min(size, HEADER_READ_BYTES));
  const pre = new Uint8Array(PRELUDE_BYTES);
  await source.read(0, pre);
  if (new TextDecoder().decode(pre.subarray(0, 8)) !== MAGIC2) {
    throw new StalePackError(`${source.name}: not a mesp pack`);
  }
  const dv = new DataView(pre.buffer);
  if (dv.getUint32(8, true) !== VERSION) {
    throw new StalePackError(`${source.name}: pack version ${dv.getUint32(8, true)}, this mesp reads version ${VERSION}: rebuild it from its checkpoint (writePack; the CLI rebuilds its cached packs by itself)`);
  }
  const len = dv.getUint32(12, true);
  if (PRELUDE_BYTES + len > size) throw new StalePackError(`${source.name}: truncated header`);
  const hb = new Uint8Array(len);
  await source.read(PRELUDE_BYTES, hb);
  try {
    return JSON.parse(new TextDecoder().decode(hb));
  } catch {
    throw new StalePackError(`${source.name}: corrupt header`);
  }
}

// src/model/pack_vocab.ts
var STAGING_BYTES = 1 << 20;
var GATHER_GAP_BYTES = 64 << 10;
var KEPT_GATHERS = 2;
var VocabReader = class {
  #source;
  #slot;
  #blocks;
  #bases;
  #checks;
  #gapBytes;
  /** Rows a gathered range may span at most (no limit where a request is dear: one response streams it). */
  #mostBytes;
  #sum = new Checksum();
  #staging = new Uint8Array(0);
  /** Scales and biases of a chunk, moved aside while its rows are rearranged in place. */
  #aside = new Uint8Array(0);
  /** 32-bit views of the buffers `#planar` copies between, made once per buffer (not once a chunk). */
  #wordViews = /* @__PURE__ */ new Map();
  /** Per matrix: the rows gathered by the last `KEPT_GATHERS` prefetches, then a spare to build the next in. */
  #stores = [
    [],
    []
  ];
  #ids = new Int32Array(0);
  /**
   * Per matrix: ids announced by `expect` (sorted, unique), waiting for the next pass over the matrix, and
   * the rows of the ids of the last announcement taken from a pass.
   */
  #wanted = [];
  #ahead = [];
  #queue = Promise.resolve();
  #busy = false;
  constructor(source, slot, blocks, bases, checks, gapBytes) {
    const request = source.requestBytes ?? 0;
    this.#gapBytes = gapBytes ?? Math.max(GATHER_GAP_BYTES, request);
    this.#mostBytes = request > 0 ? Infinity : Math.max(STAGING_BYTES, this.#gapBytes);
    this.#source = source;
    this.#slot = slot;
    this.#blocks = blocks;
    this.#bases = bases;
    this.#checks = checks;
    for (const m of [
      0,
      1
    ]) {
      this.#stores[m] = Array.from({
        length: KEPT_GATHERS + 1
      }, emptyStore);
      this.#wanted[m] = emptyStore();
      this.#ahead[m] = {
        ...emptyStore(),
        have: new Uint8Array(0)
      };
    }
  }
  /**
   * Runs `job` after the calls before it. When nothing is queued it starts at once, so its first read is
   * under way when this returns (a read-ahead overlaps the caller's compute).
   */
  #serial(job) {
    const run = this.#busy ? this.#queue.then(job) : (this.#busy = true, job());
    const settled = run.catch(() => {
    }).then(() => {
      if (this.#queue === settled) this.#busy = false;
    });
    this.#queue = settled;
    return run;
  }
  /** Reads rows [r0, r1) of matrix `m` (0 embedding, 1 LM head) into `into`. */
  read(m, r0, r1, into) {
    return this.#serial(() => this.#read(m, r0, r1, into));
  }
  /**
   * Copies row `id` of matrix `m` into `into` (views sized for one row) when a kept gather holds it;
   * whether it did. Synchronous: a step's token rows cost no promise, closure or view each.
   */
  copyGathered(m, id, into) {
    const store = this.#gathered(m, id), at = this.#gatheredAt;
    if (!store) return false;
    const { rowBytes: d, scaleRowBytes: q, rowStride: stride } = this.#slot, o = at * stride;
    copyBytes(into.data, store.rows, o, d);
    if (q) copyBytes(into.scales, store.rows, o + d, q), copyBytes(into.biases, store.rows, o + d + q, q);
    return true;
  }
  /** The row's index in the store {@linkcode VocabReader.#gathered} last found (a field: no tuple per row). */
  #gatheredAt = -1;
  /** The kept gather of matrix `m` holding row `id` (its index there in `#gatheredAt`), or undefined. */
  #gathered(m, id) {
    const stores = this.#stores[m];
    for (let g = 0; g < KEPT_GATHERS; g++) {
      const at = find(stores[g], id);
      if (at >= 0) return this.#gatheredAt = at, stores[g];
    }
    return void 0;
  }
  /** Gathers the rows of the valid ids among `ids[0..count)` so that reading one of them alone is local. */
  prefetch(m, ids, count) {
    return this.#serial(() => this.#prefetch(m, ids, count));
  }
  /**
   * Announces ids whose rows a later `prefetch` of matrix `m` will ask for: the next pass over the whole
   * matrix (reads from row 0 on, like the loss's vocabulary chunks) keeps their rows as it reads them, so
   * that `prefetch` then reads none of them. Replaces an announcement not yet taken up by a pass.
   */
  expect(m, ids, count) {
    const w = this.#wanted[m];
    w.count = this.#sortedIds(ids, count);
    if (w.ids.length < w.count) w.ids = new Int32Array(w.count);
    w.ids.set(this.#ids.subarray(0, w.count));
  }
  /** Sorts the valid ids among `ids[0..count)` into `#ids`, each once; how many. */
  #sortedIds(ids, count) {
    const V = this.#slot.rows;
    if (this.#ids.length < count) this.#ids = new Int32Array(count);
    let n = 0;
    for (let t = 0; t < count; t++) {
      const id = ids[t];
      if (Number.isInteger(id) && id >= 0 && id < V) this.#ids[n++] = id;
    }
    const sorted = this.#ids.subarray(0, n).sort();
    let u = 0;
    for (let i = 0; i < n; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[u++] = sorted[i];
    return u;
  }
  /** A pass over matrix `m` begins: the announced ids, if any, become the ones it keeps rows of. */
  #startPass(m) {
    const w = this.#wanted[m], a = this.#ahead[m], stride = this.#slot.rowStride;
    if (!w.count) return;
    if (a.ids.length < w.count) a.ids = new Int32Array(w.count), a.have = new Uint8Array(w.count);
    if (a.rows.length < w.count * stride) a.rows = new Uint8Array(w.count * stride);
    a.ids.set(w.ids.subarray(0, w.count));
    a.have.fill(0, 0, w.count);
    a.count = w.count;
    w.count = 0;
  }
  /** Keeps the announced rows among the verified stored rows `bytes` of matrix `m`, from row `row` on. */
  #keepAhead(m, row, bytes) {
    const a = this.#ahead[m], stride = this.#slot.rowStride, end = row + bytes.length / stride;
    for (let i = lowerBound(a, row); i < a.count && a.ids[i] < end; i++) {
      if (a.have[i]) continue;
      const o = (a.ids[i] - row) * stride;
      a.rows.set(bytes.subarray(o, o + stride), i * stride);
      a.have[i] = 1;
    }
  }
  async #read(m, r0, r1, into) {
    const s = this.#slot, base = this.#bases[m], B = this.#blocks.rows, V = s.rows;
    if (r1 === r0 + 1) {
      const store = this.#gathered(m, r0), at = this.#gatheredAt;
      if (store) {
        return scatter(s, store.rows.subarray(at * s.rowStride, (at + 1) * s.rowStride), 0, 1, into);
      }
    }
    if (r1 === r0) return;
    if (r0 === 0 && r1 > 1) this.#startPass(m);
    const first = Math.floor(r0 / B), last = Math.floor((r1 - 1) / B);
    const a = this.#unverified(m, first) ? first * B : r0;
    const b = this.#unverified(m, last) ? Math.min(V, (last + 1) * B) : r1;
    const start = base + a * s.rowStride;
    if (r1 - r0 > 1) this.#source.expect?.(start, base + V * s.rowStride);
    const whole = a === r0 && b === r1 ? contiguous(s, into, r1 - r0) : void 0;
    if (whole) {
      await this.#source.read(start, whole);
      this.#verifyRange(m, r0, r1, whole);
      this.#keepAhead(m, r0, whole);
      this.#planar(whole, r1 - r0);
      return;
    }
    await this.#stream(m, a, b, (row, bytes) => {
      this.#keepAhead(m, row, bytes);
      const lo = Math.max(row, r0), hi = Math.min(row + bytes.length / s.rowStride, r1);
      if (hi > lo) {
        scatter(s, bytes.subarray((lo - row) * s.rowStride, (hi - row) * s.rowStride), lo - r0, hi - lo, into);
      }
    });
  }
  #unverified(m, b) {
    return !this.#checks.done(vocabBlockIndex(this.#blocks, m, b));
  }
  /** Verifies the unverified blocks wholly inside rows [a, b), whose stored bytes are `bytes`. */
  #verifyRange(m, a, b, bytes) {
    const B = this.#blocks.rows, stride = this.#slot.rowStride, V = this.#slot.rows;
    for (let k = Math.ceil(a / B); k * B < b; k++) {
      const k0 = k * B, k1 = Math.min(V, k0 + B);
      if (k1 > b || !this.#unverified(m, k)) continue;
      this.#checks.verify(vocabBlockIndex(this.#blocks, m, k), this.#sum.reset().update(bytes.subarray((k0 - a) * stride, (k1 - a) * stride)));
    }
  }
  /**
   * Reads rows [a, b) of matrix `m` through the staging buffer, handing each piece to `visit` (first row,
   * stored bytes) once the unverified blocks it completes are verified (blocks wholly inside [a, b) only).
   */
  async #stream(m, a, b, visit) {
    const s = this.#slot, base = this.#bases[m], B = this.#blocks.rows, V = s.rows, stride = s.rowStride;
    const per = Math.max(1, Math.floor(STAGING_BYTES / stride));
    if (this.#staging.length < Math.min(b - a, per) * stride) {
      this.#staging = new Uint8Array(Math.min(Math.max(b - a, B), per) * stride);
    }
    if (b - a > per) this.#source.expect?.(base + a * stride, base + b * stride);
    let k = -1;
    for (let row = a; row < b; row += per) {
      const n = Math.min(per, b - row), bytes = this.#staging.subarray(0, n * stride);
      await this.#source.read(base + row * stride, bytes);
      for (let r = row; r < row + n; ) {
        const blk = Math.floor(r / B), k0 = blk * B, k1 = Math.min(V, k0 + B), to = Math.min(k1, row + n);
        if (k0 >= a && k1 <= b && this.#unverified(m, blk)) {
          if (k !== blk) this.#sum.reset(), k = blk;
          this.#sum.update(bytes.subarray((r - row) * stride, (to - row) * stride));
          if (to === k1) this.#checks.verify(vocabBlockIndex(this.#blocks, m, blk), this.#sum);
        }
        r = to;
      }
      visit(row, bytes);
    }
  }
  /** `bytes`' whole buffer as 32-bit words. */
  #words(bytes) {
    let view = this.#wordViews.get(bytes.buffer);
    if (!view || view.length !== bytes.buffer.byteLength >>> 2) {
      if (this.#wordViews.size > 4) this.#wordViews.clear();
      view = new Uint32Array(bytes.buffer, 0, bytes.buffer.byteLength >>> 2);
      this.#wordViews.set(bytes.buffer, view);
    }
    return view;
  }
  /** Rearranges `n` stored rows in `bytes` in place into data rows, then scales, then biases. */
  #planar(bytes, n) {
    const { rowBytes: d, scaleRowBytes: q, rowStride: stride } = this.#slot;
    if (!q) return;
    if (this.#aside.length < n * 2 * q) this.#aside = new Uint8Array(n * 2 * q);
    const aside = this.#aside;
    if ((bytes.byteOffset | stride | d | q) % 4 === 0) {
      const [from, to] = [
        this.#words(bytes),
        this.#words(aside)
      ];
      const [w, o] = [
        q / 4,
        bytes.byteOffset / 4
      ];
      for (let r = 0; r < n; r++) {
        const at = o + (r * stride + d) / 4;
        for (let i = 0; i < w; i++) {
          to[r * w + i] = from[at + i];
          to[(n + r) * w + i] = from[at + w + i];
        }
      }
    } else {
      for (let r = 0; r < n; r++) {
        const at = r * stride + d;
        for (let i = 0; i < q; i++) {
          aside[r * q + i] = bytes[at + i];
          aside[(n + r) * q + i] = bytes[at + q + i];
        }
      }
    }
    for (let r = 1; r < n; r++) bytes.copyWithin(r * d, r * stride, r * stride + d);
    bytes.set(aside.subarray(0, 2 * n * q), n * d);
  }
  async #prefetch(m, ids, count) {
    const s = this.#slot, V = s.rows, B = this.#blocks.rows, stride = s.rowStride;
    const u = this.#sortedIds(ids, count), sorted = this.#ids;
    const stores = this.#stores[m], next = stores[KEPT_GATHERS], ahead = this.#ahead[m];
    for (let g = 0; g < KEPT_GATHERS; g++) {
      let all = true;
      for (let i = 0; i < u && all; i++) all = find(stores[g], sorted[i]) >= 0;
      if (all) return;
    }
    if (next.ids.length < u) next.ids = new Int32Array(u);
    if (next.rows.length < u * stride) next.rows = new Uint8Array(u * stride);
    next.ids.set(sorted.subarray(0, u));
    next.count = u;
    const gap = Math.floor(this.#gapBytes / stride);
    const most = Math.max(1, Math.floor(this.#mostBytes / stride));
    let runStart = -1, runEnd = -1, firstId = 0;
    const flush = async (upTo) => {
      if (runStart < 0) return;
      const from = firstId;
      await this.#stream(m, runStart, runEnd, (row, bytes) => {
        const rows = bytes.length / stride;
        for (let i = from; i < upTo; i++) {
          const id = next.ids[i];
          if (id >= row && id < row + rows && !this.#gathered(m, id) && kept(ahead, id) < 0) {
            next.rows.set(bytes.subarray((id - row) * stride, (id - row + 1) * stride), i * stride);
          }
        }
      });
      runStart = -1;
    };
    for (let i = 0; i < u; i++) {
      const id = next.ids[i], old = this.#gathered(m, id), at = this.#gatheredAt;
      const k = old ? -1 : kept(ahead, id);
      if (old || k >= 0) {
        const from = old ? old.rows : ahead.rows, o = (old ? at : k) * stride;
        next.rows.set(from.subarray(o, o + stride), i * stride);
        continue;
      }
      const blk = Math.floor(id / B), whole = this.#unverified(m, blk);
      const lo = whole ? blk * B : id, hi = whole ? Math.min(V, (blk + 1) * B) : id + 1;
      if (runStart >= 0 && lo - runEnd <= gap && Math.max(hi, runEnd) - runStart <= Math.max(most, B)) {
        runEnd = Math.max(runEnd, hi);
        continue;
      }
      await flush(i);
      runStart = lo, runEnd = hi, firstId = i;
    }
    await flush(u);
    stores.copyWithin(1, 0, KEPT_GATHERS);
    stores[0] = next;
  }
};
function emptyStore() {
  return {
    ids: new Int32Array(0),
    count: 0,
    rows: new Uint8Array(0)
  };
}
function lowerBound(store, id) {
  let lo = 0, hi = store.count;
  while (lo < hi) {
    const mid = lo + hi >>> 1;
    if (store.ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
function kept(ahead, id) {
  const k = find(ahead, id);
  return k >= 0 && ahead.have[k] ? k : -1;
}
function find(store, id) {
  let lo = 0, hi = store.count - 1;
  while (lo <= hi) {
    const mid = lo + hi >>> 1, v = store.ids[mid];
    if (v === id) return mid;
    if (v < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
function copyBytes(dst, src, from, n) {
  for (let i = 0; i < n; i++) dst[i] = src[from + i];
}
function scatter(s, bytes, at, n, into) {
  const { rowBytes: d, scaleRowBytes: q, rowStride: stride } = s;
  if (!q) return into.data.set(bytes.subarray(0, n * d), at * d);
  for (let r = 0; r < n; r++) {
    const o = r * stride;
    into.data.set(bytes.subarray(o, o + d), (at + r) * d);
    into.scales.set(bytes.subarray(o + d, o + d + q), (at + r) * q);
    into.biases.set(bytes.subarray(o + d + q, o + stride), (at + r) * q);
  }
}
function contiguous(s, into, n) {
  const d = into.data;
  if (!s.scaleRowBytes) return d;
  const { scales, biases } = into;
  if (!scales || !biases || scales.buffer !== d.buffer || biases.buffer !== d.buffer || scales.byteOffset !== d.byteOffset + n * s.rowBytes || biases.byteOffset !== scales.byteOffset + n * s.scaleRowBytes) return void 0;
  return new Uint8Array(d.buffer, d.byteOffset, n * s.rowStride);
}

// src/model/pack.ts
init_describe();
async function openPack(source, options = {}) {
  checkWeightSource(source, "openPack");
  const size = await source.size();
  const header = await readPackHeader(source, size);
  if (header.fileBytes !== size) {
    throw new StalePackError(`${source.name}: file is ${size} bytes, header says ${header.fileBytes} (truncated?)`);
  }
  if (options.fingerprint !== void 0 && header.fingerprint !== options.fingerprint) {
    throw new StalePackError(`${source.name}: made from different weights than ${header.source}`);
  }
  if (options.format !== void 0 && header.format !== options.format) {
    throw new StalePackError(`${source.name}: format ${header.format}, wanted ${options.format}`);
  }
  const expect = Number.isSafeInteger(header.vocabBlock) && header.vocabBlock > 0 ? planPack(header.config, header.format, header.mlpChunk, header.vocabBlock) : void 0;
  if (!expect || JSON.stringify(expect.layers) !== JSON.stringify(header.layers) || expect.fileBytes !== header.fileBytes) {
    throw new StalePackError(`${source.name}: layout does not match this version of mesp`);
  }
  const cfg = header.config;
  const layout = layerLayout(cfg, header.format, header.bf16Scales, header.mlpChunk);
  const vocab = vocabSlot(cfg.vocabSize, cfg.hiddenSize, header.format, header.bf16Scales);
  const blocks = vocabBlocks(cfg, vocab, header.vocabBlock, blockCount(cfg.numLayers, layout.chunks.length));
  const norm = new Uint8Array(cfg.hiddenSize * 4), table = header.checksums;
  if (table && table.offset - (header.norm.offset + norm.length) <= (source.requestBytes ?? 0)) {
    source.expect?.(header.norm.offset, table.offset + table.bytes);
  }
  await source.read(header.norm.offset, norm);
  const verify = blockVerifier(source, header, layout, blocks, await readChecksums(source, header, blocks));
  const rows = new VocabReader(source, vocab, blocks, [
    header.embed.offset,
    header.lmHead?.offset
  ], verify, options.gatherGapBytes);
  const layerEnd = (l) => header.layers[l].offset + layout.bytes;
  const checkRows = (r0, r1, into, head) => {
    if (head && !header.lmHead) throw new Error("this model has no separate LM head (tied embeddings)");
    if (!(r0 >= 0 && r1 >= r0 && r1 <= cfg.vocabSize) || into.data.length !== (r1 - r0) * vocab.rowBytes) {
      throw new Error(`vocabulary rows [${r0}, ${r1}) do not fit the vocabulary or the buffer`);
    }
  };
  return {
    header,
    config: cfg,
    layout,
    vocabSlot: vocab,
    source,
    readLayer: (l, into) => {
      if (into.length !== layout.bytes) {
        throw new Error(`layer buffer is ${into.length} bytes, need ${layout.bytes}`);
      }
      source.expect?.(header.layers[l].offset, layerEnd(l));
      return source.read(header.layers[l].offset, into).then(() => {
        verify.block(l, 0, into.subarray(0, layout.attentionBytes));
        layout.chunks.forEach((ch, c) => verify.block(l, 1 + c, into.subarray(ch.offset, ch.offset + ch.bytes)));
      });
    },
    readAttention: (l, into, through = l) => {
      if (into.length !== layout.attentionBytes) {
        throw new Error(`attention buffer must be ${layout.attentionBytes} bytes`);
      }
      if (!(Number.isInteger(through) && through >= l && through < cfg.numLayers)) {
        throw new Error(`layers ${l}\u2026${through} are not a run of this model's ${cfg.numLayers} layers`);
      }
      source.expect?.(header.layers[l].offset, layerEnd(through));
      return source.read(header.layers[l].offset, into).then(() => verify.block(l, 0, into));
    },
    readMlpChunk: (l, c, into) => {
      const ch = layout.chunks[c];
      if (into.length !== ch.bytes) throw new Error(`MLP chunk ${c} buffer must be ${ch.bytes} bytes`);
      source.expect?.(header.layers[l].offset + ch.offset, layerEnd(l));
      return source.read(header.layers[l].offset + ch.offset, into).then(() => verify.block(l, 1 + c, into));
    },
    readNorm: (into) => {
      try {
        verify.norm(norm);
        new Uint8Array(into.buffer, into.byteOffset, norm.length).set(norm);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    },
    readVocabRows(r0, r1, into, head = false) {
      try {
        checkRows(r0, r1, into, head);
      } catch (err) {
        return Promise.reject(err);
      }
      if (into.scales && (into.scales.length !== (r1 - r0) * vocab.scaleRowBytes || into.biases?.length !== into.scales.length)) {
        return Promise.reject(new Error(`vocabulary rows [${r0}, ${r1}): scales or biases of the wrong size`));
      }
      return rows.read(head ? 1 : 0, r0, r1, into);
    },
    prefetchRows(ids, count, head = false) {
      if (head && !header.lmHead) {
        return Promise.reject(new Error("this model has no separate LM head (tied embeddings)"));
      }
      return rows.prefetch(head ? 1 : 0, ids, Math.min(count, ids.length));
    },
    copyGatheredRow(id, into, head = false) {
      if (head && !header.lmHead) throw new Error("this model has no separate LM head (tied embeddings)");
      return rows.copyGathered(head ? 1 : 0, id, into);
    },
    expectRows(ids, count, head = false) {
      if (head && !header.lmHead) throw new Error("this model has no separate LM head (tied embeddings)");
      rows.expect(head ? 1 : 0, ids, Math.min(count, ids.length));
    }
  };
}
function checkPack(pack, where) {
  const p = pack;
  if (p && typeof p === "object" && typeof p.config === "object" && p.config !== null && typeof p.header === "object" && typeof p.readLayer === "function") return;
  const source = p;
  const got = isThenable(pack) ? "a Promise \u2014 did you forget await?" : typeof source?.read === "function" && typeof source.size === "function" ? "a weight source: pass it to openPack first" : describeValue(pack);
  throw new TypeError(`${where}: the first argument must be an opened pack (await openPack(source)); got ${got}`);
}
async function readChecksums(source, header, vocab) {
  const n = vocab.first + vocab.count;
  if (header.checksums?.bytes !== n * 8) throw new StalePackError(`${source.name}: no checksum table`);
  const table = new Uint32Array(n * 2);
  await source.read(header.checksums.offset, new Uint8Array(table.buffer));
  return table;
}
function blockVerifier(source, header, layout, vocab, table) {
  const per = 1 + layout.chunks.length, normIndex = vocab.first - 1, V = header.config.vocabSize;
  const done = new Uint8Array(table.length / 2);
  const sum = new Checksum();
  const name = (i) => {
    if (i < normIndex) {
      const b2 = i % per;
      return `layer ${(i - b2) / per} ${b2 === 0 ? "attention block" : `MLP chunk ${b2 - 1}`}`;
    }
    if (i === normIndex) return "the final norm";
    const j = i - vocab.first, b = j % vocab.perMatrix, m = Math.floor(j / vocab.perMatrix), r0 = b * vocab.rows;
    return `${m ? "the LM head" : "the embedding"} rows [${r0}, ${Math.min(V, r0 + vocab.rows)})`;
  };
  const verify = (i, s) => {
    if (done[i]) return;
    if (!s.equals(table[2 * i], table[2 * i + 1])) {
      throw new Error(`${source.name}: ${name(i)} fails its checksum: the pack file is damaged; delete it and the next run rebuilds it from ${header.source}`);
    }
    done[i] = 1;
  };
  const check = (i, bytes) => {
    if (!done[i]) verify(i, sum.reset().update(bytes));
  };
  return {
    block: (l, b, bytes) => check(l * per + b, bytes),
    norm: (bytes) => check(normIndex, bytes),
    done: (i) => done[i] === 1,
    verify
  };
}

// src/model/checkpoint_rows.ts
var MatrixBlocks = class {
  #ckpt;
  #raw = new Uint8Array(0);
  #mlx = {
    data: new Uint8Array(0),
    scales: new Uint16Array(0),
    biases: new Uint16Array(0)
  };
  constructor(ckpt) {
    this.#ckpt = ckpt;
  }
  #rawBuffer(bytes) {
    if (this.#raw.length < bytes) this.#raw = new Uint8Array(bytes);
    return this.#raw.subarray(0, bytes);
  }
  /** The block of `base` as f32 (row-major `[r1 − r0, c1 − c0]`) in `into`, whatever its stored dtype. */
  async f32(base, r0, r1, c0, c1, into) {
    const ckpt = this.#ckpt, w = c1 - c0, n = r1 - r0;
    if (ckpt.has(`${base}.scales`)) {
      const { cols, bits } = mlxShape(ckpt, base);
      const { data, scales, biases } = await this.mlx(base, r0, r1, c0, c1, cols, bits);
      const groups = w / GROUP, rowBytes = w * bits / 8;
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < w; c++) {
          const g = r * groups + Math.floor(c / GROUP);
          const qv = bits === 4 ? data[r * rowBytes + (c >> 1)] >> (c & 1) * 4 & 15 : data[r * rowBytes + c];
          into[r * w + c] = Math.fround(Math.fround(bf16BitsToF32(scales[g]) * qv) + bf16BitsToF32(biases[g]));
        }
      }
    } else {
      const { file, info } = ckpt.get(`${base}.weight`);
      const cols = info.shape.length === 1 ? info.shape[0] : info.shape[1];
      const size = info.dtype === "F32" ? 4 : info.dtype === "F16" || info.dtype === "BF16" ? 2 : 0;
      if (!size) throw new Error(`tensor ${info.name} has dtype ${info.dtype}; expected F32, F16 or BF16`);
      const raw = this.#rawBuffer(n * cols * size);
      await file.source.read(info.offset + r0 * cols * size, raw);
      if (size === 4) {
        const f = new Float32Array(raw.buffer, 0, n * cols);
        for (let r = 0; r < n; r++) into.set(f.subarray(r * cols + c0, r * cols + c1), r * w);
      } else {
        const h = new Uint16Array(raw.buffer, 0, n * cols);
        const conv = info.dtype === "F16" ? f16BitsToF32 : bf16BitsToF32;
        for (let r = 0; r < n; r++) {
          for (let c = 0; c < w; c++) into[r * w + c] = conv(h[r * cols + c0 + c]);
        }
      }
    }
    const bad = firstNonFinite(into.subarray(0, n * w));
    if (bad >= 0) {
      throw new Error(`${base}.weight in ${ckpt.name}: non-finite value ${into[bad]} at row ${r0 + Math.floor(bad / w)}, column ${c0 + bad % w}`);
    }
  }
  /**
   * The block of the MLX matrix `base` (`cols` columns of `bits`, 64-aligned columns) as its raw codes
   * (`[n, w·bits/8]`), bf16 scales and biases (`[n, w/64]`), in buffers reused by the next call.
   */
  async mlx(base, r0, r1, c0, c1, cols, bits) {
    const ckpt = this.#ckpt, n = r1 - r0, w = c1 - c0;
    const wt = ckpt.get(`${base}.weight`), s = ckpt.get(`${base}.scales`), b = ckpt.get(`${base}.biases`);
    if (s.info.dtype === "F16" || b.info.dtype === "F16") {
      throw new Error(`${base} in ${ckpt.name}: f16 MLX scales are not supported yet (bf16 expected)`);
    }
    const rowBytes = cols * bits / 8, groups = cols / GROUP;
    const outRow = w * bits / 8, outGroups = w / GROUP, g0 = c0 / GROUP, b0 = c0 * bits / 8;
    const out = this.#mlx;
    if (out.data.length < n * outRow) out.data = new Uint8Array(n * outRow);
    if (out.scales.length < n * outGroups) {
      out.scales = new Uint16Array(n * outGroups);
      out.biases = new Uint16Array(n * outGroups);
    }
    const data = out.data.subarray(0, n * outRow);
    const scales = out.scales.subarray(0, n * outGroups), biases = out.biases.subarray(0, n * outGroups);
    const raw = this.#rawBuffer(n * rowBytes);
    await wt.file.source.read(wt.info.offset + r0 * rowBytes, raw);
    for (let r = 0; r < n; r++) {
      data.set(raw.subarray(r * rowBytes + b0, r * rowBytes + b0 + outRow), r * outRow);
    }
    const half = new Uint16Array(this.#rawBuffer(n * groups * 2).buffer, 0, n * groups);
    for (const [t, into] of [
      [
        s,
        scales
      ],
      [
        b,
        biases
      ]
    ]) {
      await t.file.source.read(t.info.offset + r0 * groups * 2, new Uint8Array(half.buffer, 0, n * groups * 2));
      for (let r = 0; r < n; r++) {
        into.set(half.subarray(r * groups + g0, r * groups + g0 + outGroups), r * outGroups);
      }
    }
    assertFiniteHalf(scales, "bf16", `${base}.scales in ${ckpt.name}`);
    assertFiniteHalf(biases, "bf16", `${base}.biases in ${ckpt.name}`);
    return {
      data,
      scales,
      biases
    };
  }
};
async function readVectorF32(ckpt, name, length) {
  const { file, info } = ckpt.get(name);
  if (info.shape.length !== 1 || info.shape[0] !== length) {
    throw new Error(`tensor ${name} in ${ckpt.name} has shape [${info.shape}], expected [${length}]`);
  }
  const out = new Float32Array(length);
  await readDenseRows(file.source, {
    ...info,
    shape: [
      1,
      length
    ]
  }, 0, 1, out);
  assertFinite(out, `tensor ${name} in ${ckpt.name}`);
  return out;
}
async function readDenseRows(source, info, r0, r1, into) {
  const cols = info.shape.length === 1 ? info.shape[0] : info.shape[1];
  const size = info.dtype === "F32" ? 4 : info.dtype === "F16" || info.dtype === "BF16" ? 2 : 0;
  if (!size) throw new Error(`tensor ${info.name} has dtype ${info.dtype}; expected F32, F16 or BF16`);
  const raw = new Uint8Array((r1 - r0) * cols * size);
  await source.read(info.offset + r0 * cols * size, raw);
  const n = (r1 - r0) * cols;
  if (size === 4) into.set(new Float32Array(raw.buffer, 0, n));
  else {
    const h = new Uint16Array(raw.buffer, 0, n);
    const conv = info.dtype === "F16" ? f16BitsToF32 : bf16BitsToF32;
    for (let i = 0; i < n; i++) into[i] = conv(h[i]);
  }
}
function mlxShape(ckpt, base) {
  const w = ckpt.get(`${base}.weight`).info, s = ckpt.get(`${base}.scales`).info;
  const b = ckpt.get(`${base}.biases`).info;
  if (w.dtype !== "U32" || w.shape.length !== 2 || s.shape.length !== 2) {
    throw new Error(`${base} in ${ckpt.name}: expected MLX quantized U32 weight with 2-D scales`);
  }
  const [rows, words] = w.shape;
  const cols = s.shape[1] * GROUP;
  const bits = words * 32 / cols;
  if (s.shape[0] !== rows || b.shape.join() !== s.shape.join() || bits !== 4 && bits !== 8) {
    throw new Error(`${base} in ${ckpt.name}: inconsistent MLX shapes weight [${w.shape}] scales [${s.shape}]`);
  }
  if (s.dtype !== "BF16" && s.dtype !== "F16") {
    throw new Error(`${base}.scales in ${ckpt.name}: dtype ${s.dtype}`);
  }
  return {
    rows,
    cols,
    bits
  };
}

// src/model/pack_writer.ts
var STEP_BYTES = 4 << 20;
function stepRows(cols) {
  return Math.max(1, Math.floor(STEP_BYTES / (cols * 4)));
}
var Converter = class {
  #ckpt;
  #cfg;
  #format;
  #blocks;
  #f32 = new Float32Array(STEP_BYTES / 4);
  #q = new Uint8Array(STEP_BYTES / 4);
  #scales = new Uint16Array(STEP_BYTES / 4 / GROUP);
  #biases = new Uint16Array(STEP_BYTES / 4 / GROUP);
  #half = new Uint16Array(STEP_BYTES / 4);
  constructor(ckpt, cfg, format) {
    this.#ckpt = ckpt;
    this.#cfg = cfg;
    this.#format = format;
    this.#blocks = new MatrixBlocks(ckpt);
  }
  /** Checks that `base` is a `[rows, cols]` matrix of the checkpoint. */
  check(base, rows, cols) {
    const ckpt = this.#ckpt;
    if (ckpt.has(`${base}.scales`)) {
      const s = mlxShape(ckpt, base);
      if (s.rows !== rows || s.cols !== cols) {
        throw new Error(`${base} in ${ckpt.name} is [${s.rows}, ${s.cols}], expected [${rows}, ${cols}]`);
      }
    } else {
      const info = ckpt.get(`${base}.weight`).info;
      if (info.shape.length !== 2 || info.shape[0] !== rows || info.shape[1] !== cols) {
        throw new Error(`${base}.weight in ${ckpt.name} has shape [${info.shape}], expected [${rows}, ${cols}]`);
      }
    }
  }
  /**
   * Rows [r0, r1) × columns [c0, c1) of the `cols`-wide matrix `base`, converted (at most
   * `stepRows(cols)` rows); the views are reused by the next call.
   */
  async block(base, cols, r0, r1, c0, c1) {
    const format = this.#format, n = r1 - r0, w = c1 - c0;
    const bytes = (u) => new Uint8Array(u.buffer, u.byteOffset, u.byteLength);
    if (this.#ckpt.has(`${base}.scales`) && copiesQuantized(this.#cfg, format)) {
      const q = await this.#blocks.mlx(base, r0, r1, c0, c1, cols, this.#cfg.quantization.bits);
      return {
        data: q.data,
        scales: bytes(q.scales),
        biases: bytes(q.biases)
      };
    }
    const f32 = this.#f32.subarray(0, n * w);
    await this.#blocks.f32(base, r0, r1, c0, c1, f32);
    if (format === "q4" || format === "q8") {
      const bits = format === "q4" ? 4 : 8, groups = n * (w / GROUP);
      const into = {
        q: this.#q.subarray(0, n * w * bits / 8),
        scales: this.#scales.subarray(0, groups),
        biases: this.#biases.subarray(0, groups)
      };
      quantize(f32, w, {
        bits,
        scaleDtype: "f16",
        name: base,
        rowOffset: r0,
        into
      });
      return {
        data: into.q,
        scales: bytes(into.scales),
        biases: bytes(into.biases)
      };
    }
    if (format === "f32") return {
      data: new Uint8Array(f32.buffer, 0, f32.byteLength)
    };
    const half = this.#half.subarray(0, n * w);
    if (format === "f16") new Float16Array(half.buffer, 0, n * w).set(f32);
    else f32ToBf16(f32, half);
    return {
      data: bytes(half)
    };
  }
};
var HeldParts = class {
  #scales = new Uint8Array(0);
  #biases = new Uint8Array(0);
  views(bytes) {
    if (this.#scales.length < bytes) {
      this.#scales = new Uint8Array(bytes), this.#biases = new Uint8Array(bytes);
    }
    return [
      this.#scales.subarray(0, bytes),
      this.#biases.subarray(0, bytes)
    ];
  }
};
var HELD_COLUMNS_BYTES = 16 << 20;
var HeldColumns = class {
  #data = new Uint8Array(0);
  #scales = new Uint8Array(0);
  #biases = new Uint8Array(0);
  #staging = new Uint8Array(0);
  #rowBytes = 0;
  #scaleRowBytes = 0;
  /** The full-width bytes of `matrix` (`rows` × `cols`), whose chunk `slot` is `slotCols` wide. */
  static bytes(rows, cols, slot) {
    return rows * cols * (slot.rowBytes + 2 * slot.scaleRowBytes) / slot.cols;
  }
  /** Converts rows [0, rows) of the `cols`-wide matrix `base` whole; `slot` is one of its chunks' slots. */
  async fill(conv, base, rows, cols, slot) {
    const rowBytes = slot.rowBytes * cols / slot.cols, scaleRowBytes = slot.scaleRowBytes * cols / slot.cols;
    if (this.#data.length < rows * rowBytes) this.#data = new Uint8Array(rows * rowBytes);
    if (this.#scales.length < rows * scaleRowBytes) {
      this.#scales = new Uint8Array(rows * scaleRowBytes), this.#biases = new Uint8Array(rows * scaleRowBytes);
    }
    this.#rowBytes = rowBytes, this.#scaleRowBytes = scaleRowBytes;
    const step = stepRows(cols);
    for (let r = 0; r < rows; r += step) {
      const c = await conv.block(base, cols, r, Math.min(rows, r + step), 0, cols);
      this.#data.set(c.data, r * rowBytes);
      if (c.scales) this.#scales.set(c.scales, r * scaleRowBytes);
      if (c.biases) this.#biases.set(c.biases, r * scaleRowBytes);
    }
  }
  /** Writes columns [c0, c0 + slot.cols) into `slot` at absolute offset `at`: data, scales, biases. */
  async write(slot, c0, at, out) {
    const parts = [
      [
        this.#data,
        this.#rowBytes,
        slot.rowBytes,
        slot.offset
      ]
    ];
    if (slot.scaleRowBytes) {
      parts.push([
        this.#scales,
        this.#scaleRowBytes,
        slot.scaleRowBytes,
        slot.scalesOffset
      ]);
      parts.push([
        this.#biases,
        this.#scaleRowBytes,
        slot.scaleRowBytes,
        slot.biasesOffset
      ]);
    }
    for (const [full, fullRow, row, offset] of parts) {
      if (this.#staging.length < slot.rows * row) this.#staging = new Uint8Array(slot.rows * row);
      const from = c0 * row / slot.cols;
      for (let r = 0; r < slot.rows; r++) {
        this.#staging.set(full.subarray(r * fullRow + from, r * fullRow + from + row), r * row);
      }
      await out.padTo(at + offset);
      await out.emit(this.#staging.subarray(0, slot.rows * row));
    }
  }
};
async function writeMatrix(conv, held, base, cols, r0, c0, slot, at, out) {
  const [scales, biases] = held.views(slot.rows * slot.scaleRowBytes);
  await out.padTo(at + slot.offset);
  const step = stepRows(cols);
  for (let r = 0; r < slot.rows; r += step) {
    const n = Math.min(step, slot.rows - r);
    const c = await conv.block(base, cols, r0 + r, r0 + r + n, c0, c0 + slot.cols);
    await out.emit(c.data);
    if (c.scales) scales.set(c.scales, r * slot.scaleRowBytes);
    if (c.biases) biases.set(c.biases, r * slot.scaleRowBytes);
  }
  if (slot.scaleRowBytes) {
    await out.padTo(at + slot.scalesOffset);
    await out.emit(scales);
    await out.padTo(at + slot.biasesOffset);
    await out.emit(biases);
  }
}
async function writeVocab(conv, base, slot, at, out) {
  const { rows, cols, rowBytes: d, scaleRowBytes: q, rowStride } = slot;
  conv.check(base, rows, cols);
  await out.padTo(at);
  const step = stepRows(cols), buf = new Uint8Array(Math.min(step, rows) * rowStride);
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const c = await conv.block(base, cols, r0, r0 + n, 0, cols);
    if (!q) {
      await out.emit(c.data);
      continue;
    }
    for (let r = 0; r < n; r++) {
      buf.set(c.data.subarray(r * d, (r + 1) * d), r * rowStride);
      buf.set(c.scales.subarray(r * q, (r + 1) * q), r * rowStride + d);
      buf.set(c.biases.subarray(r * q, (r + 1) * q), r * rowStride + d + q);
    }
    await out.emit(buf.subarray(0, n * rowStride));
  }
}
async function writePack(ckpt, cfg, sink, options) {
  const { format } = options;
  const plan = planPack(cfg, format, options.mlpChunk, options.vocabBlock);
  const header = {
    ...plan,
    fingerprint: options.fingerprint,
    source: ckpt.name
  };
  const layout = layerLayout(cfg, format, plan.bf16Scales, plan.mlpChunk);
  const vocab = vocabSlot(cfg.vocabSize, cfg.hiddenSize, format, plan.bf16Scales);
  let written = 0;
  const blocks = blockRanges(header, layout, vocab);
  const inFileOrder = blocks.toSorted((a, b) => a.start - b.start);
  let k = 0;
  const zeros = new Uint8Array(4096);
  const out = {
    async emit(bytes) {
      const end = written + bytes.length;
      while (k < inFileOrder.length && inFileOrder[k].start < end) {
        const b = inFileOrder[k];
        const from = Math.max(b.start, written), to = Math.min(b.end, end);
        if (to > from) b.sum.update(bytes.subarray(from - written, to - written));
        if (b.end > end) break;
        k++;
      }
      await sink.write(bytes);
      written = end;
    },
    async padTo(offset) {
      if (offset < written) throw new Error(`pack writer: overlap at byte ${offset}`);
      while (offset > written) await out.emit(zeros.subarray(0, Math.min(zeros.length, offset - written)));
    }
  };
  await out.emit(encodePackHeader(header));
  const total = cfg.numLayers + 2 + (plan.lmHead ? 1 : 0);
  let done = 0;
  const progress = (what) => options.onProgress?.(++done, total, what);
  const vector = async (name, slot, at) => {
    await out.padTo(at + slot.offset);
    await out.emit(new Uint8Array((await readVectorF32(ckpt, name, slot.length)).buffer));
  };
  const conv = new Converter(ckpt, cfg, format), held = new HeldParts(), columns = new HeldColumns();
  const heldColumnsBytes = options.heldColumnsBytes ?? HELD_COLUMNS_BYTES;
  await writeVocab(conv, EMBED_TOKENS, vocab, plan.embed.offset, out);
  progress("embedding");
  for (let l = 0; l < cfg.numLayers; l++) {
    const at = plan.layers[l].offset;
    for (const name of ATTENTION) {
      const base = layerTensor(l, LINEAR_PREFIX[name]), slot = layout.attention[name];
      conv.check(base, slot.rows, slot.cols);
      await writeMatrix(conv, held, base, slot.cols, 0, 0, slot, at, out);
    }
    await vector(`${layerTensor(l, LINEAR_PREFIX.q_proj)}.bias`, layout.qBias, at);
    await vector(`${layerTensor(l, LINEAR_PREFIX.k_proj)}.bias`, layout.kBias, at);
    await vector(`${layerTensor(l, LINEAR_PREFIX.v_proj)}.bias`, layout.vBias, at);
    await vector(`${layerTensor(l, "input_layernorm")}.weight`, layout.inputNorm, at);
    await vector(`${layerTensor(l, "post_attention_layernorm")}.weight`, layout.postNorm, at);
    const [I, d] = linearShape(cfg, "gate_proj");
    const gate = layerTensor(l, LINEAR_PREFIX.gate_proj), up = layerTensor(l, LINEAR_PREFIX.up_proj);
    const down = layerTensor(l, LINEAR_PREFIX.down_proj);
    conv.check(gate, I, d), conv.check(up, I, d), conv.check(down, d, I);
    const holdDown = HeldColumns.bytes(d, I, layout.chunks[0].down) <= heldColumnsBytes;
    if (holdDown) await columns.fill(conv, down, d, I, layout.chunks[0].down);
    for (const c of layout.chunks) {
      await writeMatrix(conv, held, gate, d, c.c0, 0, c.gate, at + c.offset, out);
      await writeMatrix(conv, held, up, d, c.c0, 0, c.up, at + c.offset, out);
      if (holdDown) await columns.write(c.down, c.c0, at + c.offset, out);
      else await writeMatrix(conv, held, down, I, 0, c.c0, c.down, at + c.offset, out);
    }
    progress(`layer ${l}`);
  }
  await vector(`${FINAL_NORM}.weight`, {
    length: cfg.hiddenSize,
    offset: 0,
    bytes: cfg.hiddenSize * 4
  }, plan.norm.offset);
  progress("final norm");
  if (plan.lmHead) {
    await writeVocab(conv, LM_HEAD, vocab, plan.lmHead.offset, out);
    progress("lm_head");
  }
  const table = new Uint32Array(blocks.length * 2);
  blocks.forEach((b, i) => b.sum.writeTo(table, 2 * i));
  await out.padTo(plan.checksums.offset);
  await out.emit(new Uint8Array(table.buffer));
  await out.padTo(plan.fileBytes);
  return header;
}
function blockRanges(header, layout, vocab) {
  const blocks = [];
  for (const { offset } of header.layers) {
    blocks.push({
      start: offset,
      end: offset + layout.attentionBytes,
      sum: new Checksum()
    });
    for (const c of layout.chunks) {
      blocks.push({
        start: offset + c.offset,
        end: offset + c.offset + c.bytes,
        sum: new Checksum()
      });
    }
  }
  blocks.push({
    start: header.norm.offset,
    end: header.norm.offset + header.norm.bytes,
    sum: new Checksum()
  });
  const v = vocabBlocks(header.config, vocab, header.vocabBlock, blocks.length);
  for (const section of header.lmHead ? [
    header.embed,
    header.lmHead
  ] : [
    header.embed
  ]) {
    for (let r0 = 0; r0 < vocab.rows; r0 += v.rows) {
      const start = section.offset + r0 * vocab.rowStride;
      const end = start + (Math.min(vocab.rows, r0 + v.rows) - r0) * vocab.rowStride;
      blocks.push({
        start,
        end,
        sum: new Checksum()
      });
    }
  }
  return blocks;
}

// src/util/random.ts
function seededRandom(seed) {
  let x = seed >>> 0;
  const next32 = () => {
    const z = splitmix32(x);
    x = x + 2654435769 >>> 0;
    return z;
  };
  const s = [
    next32(),
    next32(),
    next32(),
    next32()
  ];
  return () => {
    const r = Math.imul(rotl2(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl2(s[3], 11);
    return r / 2 ** 32;
  };
}
function rotl2(x, k) {
  return (x << k | x >>> 32 - k) >>> 0;
}
function fnv1a(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
function splitmix32(x) {
  x = x + 2654435769 | 0;
  x = Math.imul(x ^ x >>> 16, 2246822507);
  x = Math.imul(x ^ x >>> 13, 3266489909);
  return (x ^ x >>> 16) >>> 0;
}
var NormalRng = class {
  #a;
  #b;
  #c;
  #d;
  #spare = 0;
  #hasSpare = false;
  /** A generator for stream `stream` (e.g. a tensor name) of seed `seed`. */
  constructor(seed, stream) {
    let h = fnv1a(`${seed}:${stream}`);
    const next = () => h = splitmix32(h);
    this.#a = next() | 0;
    this.#b = next() | 0;
    this.#c = next() | 0;
    this.#d = next() | 0;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }
  /** Fills `out` with `mean + std · N(0, 1)` values. */
  fill(out, mean, std) {
    let a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    let i = 0;
    const n = out.length;
    if (this.#hasSpare && n > 0) {
      out[i++] = mean + std * this.#spare;
      this.#hasSpare = false;
    }
    while (i < n) {
      let u, v, s;
      do {
        let r = Math.imul(b, 5);
        r = Math.imul(r << 7 | r >>> 25, 9);
        let t = b << 9;
        c ^= a;
        d ^= b;
        b ^= c;
        a ^= d;
        c ^= t;
        d = d << 11 | d >>> 21;
        u = r * 4656612873077393e-25;
        r = Math.imul(b, 5);
        r = Math.imul(r << 7 | r >>> 25, 9);
        t = b << 9;
        c ^= a;
        d ^= b;
        b ^= c;
        a ^= d;
        c ^= t;
        d = d << 11 | d >>> 21;
        v = r * 4656612873077393e-25;
        s = u * u + v * v;
      } while (s >= 1 || s === 0);
      const m = Math.sqrt(-2 * Math.log(s) / s);
      out[i++] = mean + std * u * m;
      if (i < n) out[i++] = mean + std * v * m;
      else {
        this.#spare = v * m;
        this.#hasSpare = true;
      }
    }
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
  }
};

// src/model/make_model.ts
var MODEL_FORMATS = [
  "hf",
  "mlx-q4",
  "mlx-q8"
];
var FLOAT_DTYPES = [
  "bf16",
  "f16",
  "f32"
];
var DEFAULT_SHARD_SIZE = 5e9;
var INIT_STD = 0.02;
var NORM_STD = 0.02;
var SAFETENSORS_DTYPE = {
  bf16: "BF16",
  f16: "F16",
  f32: "F32"
};
var TORCH_DTYPE = {
  bf16: "bfloat16",
  f16: "float16",
  f32: "float32"
};
var PRESET_INIT = Object.freeze({
  demo: Object.freeze({
    embedding: 1,
    lmHead: 0.25,
    linear: "fan-in"
  })
});
function bitsOf(format) {
  return format === "mlx-q4" ? 4 : format === "mlx-q8" ? 8 : void 0;
}
function defaultDtype(cfg, quantized) {
  if (cfg.dtype === "float32" && !quantized) return "f32";
  if (cfg.dtype === "float16") return "f16";
  return "bf16";
}
function shardTensors(tensors, limit) {
  const shards = [];
  let current = [];
  let size = 0;
  for (const t of tensors) {
    if (t.byteLength > limit) {
      shards.push([
        t
      ]);
      continue;
    }
    if (size + t.byteLength > limit) {
      shards.push(current);
      current = [];
      size = 0;
    }
    current.push(t);
    size += t.byteLength;
  }
  if (current.length > 0) shards.push(current);
  return shards;
}
var pad5 = (n) => String(n).padStart(5, "0");
function planModel(config, options = {}) {
  const format = options.format ?? "hf";
  if (!MODEL_FORMATS.includes(format)) {
    throw new Error(`make-model: unknown format ${JSON.stringify(format)}; expected ${MODEL_FORMATS.join(", ")}`);
  }
  const bits = bitsOf(format);
  const dtype = options.dtype ?? defaultDtype(config, bits !== void 0);
  if (!FLOAT_DTYPES.includes(dtype)) {
    throw new Error(`make-model: unknown dtype ${JSON.stringify(dtype)}; expected ${FLOAT_DTYPES.join(", ")}`);
  }
  if (bits !== void 0 && dtype === "f32") {
    throw new Error(`make-model: format ${format} stores scales and biases in bf16 or f16, not f32`);
  }
  const shardSize = options.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isSafeInteger(shardSize) || shardSize <= 0) {
    throw new Error(`make-model: shard size must be a positive number of bytes, got ${shardSize}`);
  }
  const written = {
    ...config,
    dtype: TORCH_DTYPE[dtype]
  };
  delete written.quantization;
  if (bits !== void 0) written.quantization = {
    groupSize: GROUP_SIZE,
    bits
  };
  parseModelConfig(configToJson(written), {
    file: "make-model config"
  });
  const st = SAFETENSORS_DTYPE[dtype];
  const tensors = [];
  for (const t of modelTensors(written)) {
    const quantized = bits !== void 0 && (t.kind === "linear" || t.kind === "embedding");
    if (!quantized) {
      tensors.push({
        name: t.name,
        dtype: st,
        shape: t.shape,
        byteLength: numel(t.shape) * (dtype === "f32" ? 4 : 2),
        source: t.name,
        part: "values"
      });
      continue;
    }
    const [rows, cols] = t.shape;
    if (cols % GROUP_SIZE !== 0) {
      throw new Error(`make-model: ${format}: ${t.name} has ${cols} input columns, not a multiple of ${GROUP_SIZE}`);
    }
    const base = t.name.replace(/\.weight$/, "");
    const groups = cols / GROUP_SIZE;
    tensors.push({
      name: `${base}.weight`,
      dtype: "U32",
      shape: [
        rows,
        cols * bits / 32
      ],
      byteLength: quantizedBytes(rows, cols, bits),
      source: t.name,
      part: "q"
    }, {
      name: `${base}.scales`,
      dtype: st,
      shape: [
        rows,
        groups
      ],
      byteLength: rows * groups * 2,
      source: t.name,
      part: "scales"
    }, {
      name: `${base}.biases`,
      dtype: st,
      shape: [
        rows,
        groups
      ],
      byteLength: rows * groups * 2,
      source: t.name,
      part: "biases"
    });
  }
  const shards = shardTensors(tensors, shardSize);
  const metadata = {
    format: bits === void 0 ? "pt" : "mlx"
  };
  const files = shards.map((shard, i) => {
    const name = shards.length === 1 ? SINGLE_FILE : `model-${pad5(i + 1)}-of-${pad5(shards.length)}.safetensors`;
    const planned = shard.map((t) => ({
      ...t,
      file: name
    }));
    return {
      name,
      tensors: planned,
      tensorBytes: planned.reduce((s, t) => s + t.byteLength, 0),
      fileSize: encodeSafetensorsHeader(planned, metadata).fileSize
    };
  });
  const all = files.flatMap((f) => f.tensors);
  const textFiles = [
    ...files.length > 1 ? [
      INDEX_FILE
    ] : [],
    "generation_config.json",
    ...options.tokenizer ? [
      "tokenizer.json",
      "tokenizer_config.json"
    ] : [],
    "config.json"
  ];
  return {
    config: written,
    format,
    dtype,
    tensors: all,
    files,
    totalBytes: all.reduce((s, t) => s + t.byteLength, 0),
    fileBytes: files.reduce((s, f) => s + f.fileSize, 0),
    parameters: paramCounts(written).total,
    textFiles
  };
}
function generationConfig(cfg) {
  const out = {};
  if (cfg.bosTokenId !== void 0) out.bos_token_id = cfg.bosTokenId;
  if (cfg.eosTokenIds.length > 0) out.eos_token_id = [
    ...cfg.eosTokenIds
  ];
  const pad = cfg.padTokenId ?? cfg.bosTokenId;
  if (pad !== void 0) out.pad_token_id = pad;
  return out;
}
var json = (v) => JSON.stringify(v, null, 2) + "\n";
async function makeModel(config, sink, options = {}) {
  const plan = planModel(config, options);
  const seed = options.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`make-model: seed must be a safe integer, got ${seed}`);
  const chunkElements = options.chunkElements ?? 1 << 20;
  if (!Number.isSafeInteger(chunkElements) || chunkElements <= 0) {
    throw new Error(`make-model: chunkElements must be a positive integer, got ${chunkElements}`);
  }
  const init = options.init ?? {};
  for (const [name, std] of Object.entries(init)) {
    if (std !== "fan-in" && !(typeof std === "number" && std > 0 && Number.isFinite(std))) {
      throw new Error(`make-model: init.${name} must be a positive number, got ${JSON.stringify(std)}`);
    }
  }
  const writer = new TensorWriter(plan, seed, chunkElements, init, options.onProgress);
  const metadata = {
    format: plan.format === "hf" ? "pt" : "mlx"
  };
  for (const file of plan.files) {
    await sink.writeFile(file.name, async (out) => {
      const header = encodeSafetensorsHeader(file.tensors, metadata);
      await out.write(header.bytes);
      const byName = new Map(file.tensors.map((t) => [
        t.name,
        t
      ]));
      for (const placed of header.tensors) await writer.write(byName.get(placed.name), out);
    });
  }
  if (plan.files.length > 1) {
    const weightMap = {};
    for (const t of [
      ...plan.tensors
    ].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) {
      weightMap[t.name] = t.file;
    }
    await sink.writeText(INDEX_FILE, json({
      metadata: {
        total_size: plan.totalBytes
      },
      weight_map: weightMap
    }));
  }
  await sink.writeText("generation_config.json", json(generationConfig(plan.config)));
  if (options.tokenizer) {
    await sink.writeText("tokenizer.json", options.tokenizer.tokenizerJson);
    await sink.writeText("tokenizer_config.json", options.tokenizer.tokenizerConfigJson);
  }
  await sink.writeText("config.json", json(configToJson(plan.config)));
  return plan;
}
var TensorWriter = class {
  #plan;
  #seed;
  #bits;
  #chunk;
  #init;
  #onProgress;
  #shapes;
  #f32;
  #half;
  #q;
  #scales;
  #biases;
  #bytes = 0;
  /** Tensors begun so far (the one being written included). */
  #tensors = 0;
  /** Scales and biases of the last quantized tensor (MLX files store them apart from its codes). */
  #cached;
  constructor(plan, seed, chunk, init, onProgress) {
    this.#plan = plan;
    this.#seed = seed;
    this.#init = init;
    this.#bits = bitsOf(plan.format);
    this.#chunk = chunk;
    this.#onProgress = onProgress;
    const floats = modelTensors(plan.config);
    this.#shapes = new Map(floats.map((t) => [
      t.name,
      t.shape
    ]));
    const capacity = Math.max(chunk, ...floats.map((t) => t.shape[t.shape.length - 1]));
    this.#f32 = new Float32Array(capacity);
    this.#half = new Uint16Array(capacity);
    this.#q = new Uint8Array(capacity);
    this.#scales = new Uint16Array(Math.ceil(capacity / GROUP_SIZE));
    this.#biases = new Uint16Array(Math.ceil(capacity / GROUP_SIZE));
  }
  async write(t, out) {
    let written = 0;
    this.#tensors++;
    const emit = async (bytes) => {
      await out.write(bytes);
      written += bytes.length;
      this.#bytes += bytes.length;
      this.#onProgress?.({
        tensor: this.#tensors,
        tensors: this.#plan.tensors.length,
        name: t.name,
        file: t.file,
        bytes: this.#bytes,
        totalBytes: this.#plan.totalBytes
      });
    };
    if (t.part === "values") await this.#writeValues(t, emit);
    else if (t.part === "q") await this.#writeCodes(t, emit);
    else {
      const cached = await this.#scalesAndBiases(t);
      const half = t.part === "scales" ? cached.scales : cached.biases;
      await emit(new Uint8Array(half.buffer, half.byteOffset, half.byteLength));
    }
    if (written !== t.byteLength) {
      throw new Error(`make-model: internal error: wrote ${written} bytes for ${t.name}, planned ${t.byteLength}`);
    }
  }
  /** Rows × columns of the float source tensor (a vector is one row). */
  #matrix(t) {
    const shape = this.#shapes.get(t.source);
    return shape.length === 1 ? [
      1,
      shape[0]
    ] : [
      shape[0],
      shape[1]
    ];
  }
  /** Standard deviation of a non-norm tensor with `cols` input columns. */
  #std(name, cols) {
    if (name === "model.embed_tokens.weight") return this.#init.embedding ?? INIT_STD;
    if (name === "lm_head.weight") return this.#init.lmHead ?? INIT_STD;
    const linear2 = this.#init.linear;
    if (!name.endsWith("_proj.weight") || linear2 === void 0) return INIT_STD;
    return linear2 === "fan-in" ? 1 / Math.sqrt(cols) : linear2;
  }
  /** Calls `each(values, firstRow, rowCount)` for consecutive chunks of whole rows of the source tensor. */
  async #generate(t, each) {
    const [rows, cols] = this.#matrix(t);
    const rng = new NormalRng(this.#seed, t.source);
    const norm = /(layernorm|\.norm)\.weight$/.test(t.source);
    const mean = norm ? 1 : 0;
    const std = norm ? NORM_STD : this.#std(t.source, cols);
    const step = Math.max(1, Math.floor(this.#chunk / cols));
    for (let r0 = 0; r0 < rows; r0 += step) {
      const n = Math.min(step, rows - r0);
      const values = this.#f32.subarray(0, n * cols);
      rng.fill(values, mean, std);
      await each(values, r0, n);
    }
  }
  async #writeValues(t, emit) {
    const dtype = this.#plan.dtype;
    await this.#generate(t, async (values) => {
      if (dtype === "f32") return await emit(new Uint8Array(values.buffer, 0, values.byteLength));
      const half = this.#half.subarray(0, values.length);
      if (dtype === "bf16") f32ToBf16(values, half);
      else f32ToF16(values, half);
      await emit(new Uint8Array(half.buffer, 0, half.byteLength));
    });
  }
  /** Quantizes one chunk of rows; codes into the scratch, scales/biases where given. */
  #quantize(t, values, row0, rows, scales, biases, scalesOnly = false) {
    const [, cols] = this.#matrix(t);
    const q = this.#q.subarray(0, quantizedBytes(rows, cols, this.#bits));
    quantize(values, cols, {
      bits: this.#bits,
      scaleDtype: this.#plan.dtype === "f16" ? "f16" : "bf16",
      name: t.source,
      rowOffset: row0,
      scalesOnly,
      into: {
        q,
        scales,
        biases
      }
    });
    return q;
  }
  async #writeCodes(t, emit) {
    const groups = this.#matrix(t)[1] / GROUP_SIZE;
    await this.#generate(t, async (values, row0, rows) => {
      const scales = this.#scales.subarray(0, rows * groups);
      const biases = this.#biases.subarray(0, rows * groups);
      await emit(this.#quantize(t, values, row0, rows, scales, biases));
    });
  }
  async #scalesAndBiases(t) {
    if (this.#cached?.source === t.source) return this.#cached;
    this.#cached = void 0;
    const [rows, cols] = this.#matrix(t);
    const groups = cols / GROUP_SIZE;
    const scales = new Uint16Array(rows * groups);
    const biases = new Uint16Array(rows * groups);
    await this.#generate(t, (values, row0, n) => {
      const range = [
        row0 * groups,
        (row0 + n) * groups
      ];
      this.#quantize(t, values, row0, n, scales.subarray(...range), biases.subarray(...range), true);
    });
    this.#cached = {
      source: t.source,
      scales,
      biases
    };
    return this.#cached;
  }
};

// mod.ts
init_tokenizer();

// src/text/chat.ts
var QWEN2_5_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
var ROLES = [
  "system",
  "user",
  "assistant"
];
function validateChatMessage(message, where) {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new Error(`${where}: a message must be an object with "role" and "content"`);
  }
  const m = message;
  if (m.role === "tool" || m.tool_calls !== void 0) {
    throw new Error(`${where}: tool messages and "tool_calls" are not supported (plain chat only)`);
  }
  if (typeof m.role !== "string" || !ROLES.includes(m.role)) {
    throw new Error(`${where}: role must be one of ${ROLES.join(", ")}; got ${JSON.stringify(m.role)}`);
  }
  if (typeof m.content !== "string") {
    throw new Error(`${where}: "content" must be a string; got ${m.content === null ? "null" : typeof m.content}`);
  }
}
function renderChat(messages, options = {}) {
  messages.forEach((m, i) => validateChatMessage(m, `messages[${i}]`));
  const defaultSystem = options.defaultSystem === void 0 ? QWEN2_5_DEFAULT_SYSTEM : options.defaultSystem;
  let out = "";
  let start = 0;
  if (messages.length > 0 && messages[0].role === "system") {
    out += `<|im_start|>system
${messages[0].content}<|im_end|>
`;
    start = 1;
  } else if (defaultSystem !== null) {
    out += `<|im_start|>system
${defaultSystem}<|im_end|>
`;
  }
  for (let i = start; i < messages.length; i++) {
    out += `<|im_start|>${messages[i].role}
${messages[i].content}<|im_end|>
`;
  }
  if (options.addGenerationPrompt) out += "<|im_start|>assistant\n";
  return out;
}
var JINJA_ESCAPES = {
  n: "\n",
  t: "	",
  r: "\r",
  "'": "'",
  '"': '"',
  "\\": "\\"
};
function chatDefaultsFromTemplate(chatTemplate) {
  if (chatTemplate === void 0 || chatTemplate === "") return {
    defaultSystem: QWEN2_5_DEFAULT_SYSTEM
  };
  if (!chatTemplate.includes("<|im_start|>")) {
    throw new Error("chat_template is not ChatML (no <|im_start|>); mesp renders only Qwen ChatML chats");
  }
  const literal = /(['"])<\|im_start\|>system\\n((?:\\.|(?!\1)[^\\])*?)<\|im_end\|>\\n\1/.exec(chatTemplate);
  if (!literal) return {
    defaultSystem: null
  };
  const defaultSystem = literal[2].replace(/\\(.)/g, (m, c) => JINJA_ESCAPES[c] ?? m);
  return {
    defaultSystem
  };
}

// src/data/dataset.ts
function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
function parseMessages(value, field, where) {
  if (!Array.isArray(value)) {
    throw new Error(`${where}: "${field}" must be an array of messages, got ${describe(value)}`);
  }
  if (value.length === 0) throw new Error(`${where}: "${field}" is empty`);
  return value.map((m, i) => {
    validateChatMessage(m, `${where}: ${field}[${i}]`);
    return {
      role: m.role,
      content: m.content
    };
  });
}
function parseIds(value, field, where, allowIgnore) {
  if (!Array.isArray(value)) {
    throw new Error(`${where}: "${field}" must be an array of integers, got ${describe(value)}`);
  }
  value.forEach((v, i) => {
    const ok = Number.isInteger(v) && (v >= 0 || allowIgnore && v === -100);
    if (!ok) {
      const wanted = allowIgnore ? "a non-negative integer or -100" : "a non-negative integer";
      throw new Error(`${where}: ${field}[${i}] must be ${wanted}, got ${JSON.stringify(v)}`);
    }
  });
  return value;
}
function parseRecord(obj, file, line) {
  const where = `${file}:${line}`;
  if (obj.input_ids !== void 0) {
    const inputIds = parseIds(obj.input_ids, "input_ids", where, false);
    if (inputIds.length < 2) throw new Error(`${where}: "input_ids" needs at least 2 tokens to train on`);
    if (obj.labels === void 0) return {
      kind: "tokens",
      inputIds,
      file,
      line
    };
    const labels = parseIds(obj.labels, "labels", where, true);
    if (labels.length !== inputIds.length) {
      throw new Error(`${where}: "labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`);
    }
    labels.forEach((l, i) => {
      if (l !== -100 && l !== inputIds[i]) {
        throw new Error(`${where}: labels[${i}] is ${l} but input_ids[${i}] is ${inputIds[i]} (use -100 or the same id)`);
      }
    });
    if (!labels.some((l, i) => i > 0 && l !== -100)) {
      throw new Error(`${where}: "labels" has no target (all -100)`);
    }
    return {
      kind: "tokens",
      inputIds,
      labels,
      file,
      line
    };
  }
  if (obj.prompt !== void 0 && obj.completion !== void 0) {
    if (typeof obj.prompt === "string" && typeof obj.completion === "string") {
      const messages = [
        {
          role: "user",
          content: obj.prompt
        },
        {
          role: "assistant",
          content: obj.completion
        }
      ];
      return {
        kind: "chat",
        messages,
        trainFrom: 0,
        file,
        line
      };
    }
    if (Array.isArray(obj.prompt) && Array.isArray(obj.completion)) {
      const prompt = parseMessages(obj.prompt, "prompt", where);
      const completion = parseMessages(obj.completion, "completion", where);
      if (!completion.some((m) => m.role === "assistant")) {
        throw new Error(`${where}: "completion" has no assistant message to train on`);
      }
      return {
        kind: "chat",
        messages: [
          ...prompt,
          ...completion
        ],
        trainFrom: prompt.length,
        file,
        line
      };
    }
    throw new Error(`${where}: "prompt" and "completion" must both be strings or both be message arrays; got ${describe(obj.prompt)} and ${describe(obj.completion)}`);
  }
  if (obj.messages !== void 0) {
    if (Array.isArray(obj.tools) ? obj.tools.length > 0 : obj.tools !== void 0 && obj.tools !== null) {
      throw new Error(`${where}: "tools" are not supported (plain chat only)`);
    }
    const messages = parseMessages(obj.messages, "messages", where);
    if (!messages.some((m) => m.role === "assistant")) {
      throw new Error(`${where}: "messages" has no assistant message to train on`);
    }
    return {
      kind: "chat",
      messages,
      trainFrom: 0,
      file,
      line
    };
  }
  if (obj.text !== void 0) {
    if (typeof obj.text !== "string") {
      throw new Error(`${where}: "text" must be a string, got ${describe(obj.text)}`);
    }
    if (obj.text.length === 0) throw new Error(`${where}: "text" is empty`);
    return {
      kind: "text",
      text: obj.text,
      file,
      line
    };
  }
  if (obj.prompt === void 0 !== (obj.completion === void 0)) {
    const [has, lacks] = obj.prompt === void 0 ? [
      "completion",
      "prompt"
    ] : [
      "prompt",
      "completion"
    ];
    throw new Error(`${where}: "${has}" without "${lacks}" (a prompt+completion record needs both)`);
  }
  const keys = Object.keys(obj).slice(0, 8).map((k) => JSON.stringify(k)).join(", ");
  throw new Error(`${where}: unknown record shape (keys: ${keys || "none"}); expected "text", "prompt"+"completion", "messages" or "input_ids"`);
}
function parseJsonl(text, options) {
  const { file } = options;
  const lines = (text.charCodeAt(0) === 65279 ? text.slice(1) : text).split("\n");
  const records = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === "") continue;
    let value;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      const why = e.message.replace(/ \(line 1 column (\d+)\)$/, "").replace(/ at position (\d+)$/, (_, at) => ` at column ${Number(at) + 1}`);
      const hint = /^\s*[\[{]\s*$/.test(raw) ? " (this reads JSON Lines: one whole JSON object per line; a JSON array or an object over several lines is not)" : "";
      throw new Error(`${file}:${i + 1}: invalid JSON: ${why}${hint}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error(`${file}:${i + 1}: each line must be a JSON object, got ${describe(value)}`);
    }
    records.push(parseRecord(value, file, i + 1));
  }
  if (records.length === 0) throw new Error(`${file}: no records (the dataset is empty)`);
  return records;
}
var PROGRESS_EVERY = 1e3;
function tokenizeChat(record, tokenizer, defaultSystem, seqLen) {
  const opts = {
    defaultSystem
  };
  const ids = tokenizer.encode(renderChat(record.messages, opts));
  const targets = new Uint8Array(ids.length);
  const prefixLength = (text, what) => {
    const prefix = tokenizer.encode(text);
    const ok = prefix.length <= ids.length && prefix.every((id, k) => id === ids[k]);
    if (!ok) {
      throw new Error(`${record.file}:${record.line}: the tokens of ${what} are not a prefix of the conversation's tokens; cannot place the loss mask`);
    }
    return prefix.length;
  };
  for (let i = Math.max(record.trainFrom, 0); i < record.messages.length; i++) {
    if (record.messages[i].role !== "assistant") continue;
    const before = record.messages.slice(0, i);
    const start = prefixLength(renderChat(before, {
      ...opts,
      addGenerationPrompt: true
    }), `the prompt before message ${i}`);
    if (start >= seqLen) break;
    const end = prefixLength(renderChat(record.messages.slice(0, i + 1), opts), `messages 0..${i}`);
    targets.fill(1, start, end);
  }
  return {
    ids,
    targets
  };
}
function tokenizeExample(record, tokenizer, options) {
  const { seqLen } = options;
  if (!Number.isInteger(seqLen) || seqLen < 2) {
    throw new Error(`seqLen must be an integer \u2265 2, got ${seqLen}`);
  }
  let ids;
  let targets;
  if (record.kind === "text") {
    const list = tokenizer.encode(record.text);
    const eos = tokenizer.tokenToId("<|endoftext|>");
    if (options.appendEosToText !== false && eos !== void 0 && list[list.length - 1] !== eos) {
      list.push(eos);
    }
    ids = list;
    targets = new Uint8Array(list.length).fill(1);
  } else if (record.kind === "chat") {
    const defaultSystem = options.chatDefaults ? options.chatDefaults.defaultSystem : QWEN2_5_DEFAULT_SYSTEM;
    ({ ids, targets } = tokenizeChat(record, tokenizer, defaultSystem, seqLen));
  } else {
    record.inputIds.forEach((id, i) => {
      if (id >= tokenizer.vocabSize) {
        throw new Error(`${record.file}:${record.line}: input_ids[${i}] = ${id} is outside the tokenizer's vocabulary (${tokenizer.vocabSize} tokens; a model's embedding may have more rows, padding)`);
      }
    });
    ids = record.inputIds;
    targets = record.labels ? Uint8Array.from(record.labels, (l) => l === -100 ? 0 : 1) : new Uint8Array(ids.length).fill(1);
  }
  targets[0] = 0;
  const n = Math.min(ids.length, seqLen);
  return {
    ids: Int32Array.from({
      length: n
    }, (_, k) => ids[k]),
    targets: targets.slice(0, n),
    truncated: ids.length - n
  };
}
function tokenizeDataset(records, tokenizer, options) {
  const stats = {
    records: records.length,
    examples: 0,
    truncated: 0,
    dropped: 0,
    tokens: 0,
    targets: 0,
    longest: 0
  };
  const examples = [];
  let done = 0;
  for (const record of records) {
    if (++done % PROGRESS_EVERY === 0) options.onProgress?.(done, records.length);
    const ex = tokenizeExample(record, tokenizer, options);
    if (ex.truncated > 0) stats.truncated++;
    stats.longest = Math.max(stats.longest, ex.ids.length + ex.truncated);
    let count = 0;
    for (const t of ex.targets) count += t;
    if (count === 0 && !(options.keepUntrained && ex.ids.length >= 2)) {
      stats.dropped++;
      continue;
    }
    examples.push(ex);
    stats.examples++;
    stats.tokens += ex.ids.length;
    stats.targets += count;
  }
  options.onProgress?.(records.length, records.length);
  return {
    examples,
    stats
  };
}

// src/data/token_cache.ts
init_describe();
var TOKEN_CACHE_VERSION = 1;
var MAGIC3 = [
  77,
  69,
  83,
  80,
  84,
  79,
  75,
  0
];
var FIXED = 24;
async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
function resolveTokenCacheOptions(options, tokenizerConfigJson) {
  if (!Number.isInteger(options.seqLen) || options.seqLen < 2) {
    throw new Error(`seqLen must be an integer \u2265 2, got ${options.seqLen}`);
  }
  let defaultSystem = options.defaultSystem;
  if (defaultSystem === void 0) {
    let template;
    if (tokenizerConfigJson !== void 0) {
      try {
        template = JSON.parse(tokenizerConfigJson).chat_template;
      } catch (e) {
        throw new Error(`tokenizer_config.json: invalid JSON: ${e.message}`);
      }
    }
    defaultSystem = chatDefaultsFromTemplate(typeof template === "string" ? template : void 0).defaultSystem;
  }
  return {
    seqLen: options.seqLen,
    defaultSystem,
    appendEosToText: options.appendEosToText !== false,
    ...options.keepUntrained ? {
      keepUntrained: true
    } : {}
  };
}
function tokenCacheKey(parts) {
  const o = parts.options;
  const canonical = JSON.stringify({
    format: "mesp-token-cache",
    version: TOKEN_CACHE_VERSION,
    dataset: parts.datasetSha256,
    tokenizer: parts.tokenizerSha256,
    tokenizerConfig: parts.tokenizerConfigSha256,
    options: {
      appendEosToText: o.appendEosToText,
      defaultSystem: o.defaultSystem,
      seqLen: o.seqLen,
      ...o.keepUntrained ? {
        keepUntrained: true
      } : {}
    }
  });
  return sha256Hex(new TextEncoder().encode(canonical));
}
function checkLittleEndian() {
  if (new Uint8Array(Uint32Array.of(1).buffer)[0] !== 1) {
    throw new Error("token cache: big-endian hosts are not supported");
  }
}
function encodeTokenCache(examples, meta) {
  checkLittleEndian();
  let total = 0;
  examples.forEach((ex, i) => {
    if (ex.ids.length !== ex.targets.length) {
      throw new Error(`example ${i}: ${ex.ids.length} ids but ${ex.targets.length} targets`);
    }
    total += ex.ids.length;
  });
  if (total > 4294967295) throw new Error(`token cache: ${total} tokens exceed the u32 offset range`);
  let json2 = new TextEncoder().encode(JSON.stringify(meta));
  const padded = Math.ceil(json2.length / 8) * 8;
  if (padded !== json2.length) {
    const p = new Uint8Array(padded).fill(32);
    p.set(json2);
    json2 = p;
  }
  const offsetsAt = FIXED + json2.length;
  const idsAt = offsetsAt + 4 * (examples.length + 1);
  const targetsAt = idsAt + 4 * total;
  const out = new Uint8Array(targetsAt + total);
  out.set(MAGIC3, 0);
  const view = new DataView(out.buffer);
  view.setUint32(8, TOKEN_CACHE_VERSION, true);
  view.setUint32(12, json2.length, true);
  out.set(json2, FIXED);
  const offsets = new Uint32Array(out.buffer, offsetsAt, examples.length + 1);
  const ids = new Int32Array(out.buffer, idsAt, total);
  const targets = out.subarray(targetsAt);
  let at = 0;
  examples.forEach((ex, i) => {
    offsets[i] = at;
    ids.set(ex.ids, at);
    targets.set(ex.targets, at);
    at += ex.ids.length;
  });
  offsets[examples.length] = at;
  view.setUint32(16, crc32(out.subarray(FIXED)), true);
  return out;
}
function decodeTokenCache(input, options = {}) {
  checkLittleEndian();
  const name = options.name ?? "token cache";
  let bytes = input instanceof ArrayBuffer ? new Uint8Array(input) : input;
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${name}: expected the token cache's bytes (a Uint8Array or ArrayBuffer), got ${describeValue(bytes)}`);
  }
  const fail = (why) => {
    throw new Error(`${name}: ${why}`);
  };
  if (bytes.length < FIXED) fail(`too short (${bytes.length} bytes)`);
  if (!MAGIC3.every((b, i) => bytes[i] === b)) fail("bad magic (not a mesp token cache)");
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== TOKEN_CACHE_VERSION) fail(`format version ${version}, expected ${TOKEN_CACHE_VERSION}`);
  const jsonLength = view.getUint32(12, true);
  if (jsonLength % 8 !== 0 || FIXED + jsonLength > bytes.length) fail(`bad header length ${jsonLength}`);
  if (crc32(bytes.subarray(FIXED)) !== view.getUint32(16, true)) fail("checksum mismatch (file is corrupt)");
  let meta;
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes.subarray(FIXED, FIXED + jsonLength)));
  } catch (e) {
    return fail(`header JSON: ${e.message}`);
  }
  const count = meta?.stats?.examples;
  if (typeof meta?.key !== "string" || !Number.isInteger(count) || !Number.isInteger(meta.vocabSize)) {
    fail("header lacks key, stats.examples or vocabSize");
  }
  const offsetsAt = FIXED + jsonLength;
  if (offsetsAt + 4 * (count + 1) > bytes.length) fail(`truncated: ${count} examples announced`);
  const offsets = new Uint32Array(bytes.buffer, bytes.byteOffset + offsetsAt, count + 1);
  const total = offsets[count];
  const idsAt = offsetsAt + 4 * (count + 1);
  const expected = idsAt + 5 * total;
  if (bytes.length !== expected) fail(`size ${bytes.length} bytes, expected ${expected} for ${total} tokens`);
  const ids = new Int32Array(bytes.buffer, bytes.byteOffset + idsAt, total);
  const targets = bytes.subarray(idsAt + 4 * total);
  if (offsets[0] !== 0) fail("offsets[0] is not 0");
  for (let i = 0; i < count; i++) {
    if (offsets[i + 1] <= offsets[i]) fail(`example ${i} is empty or offsets are not increasing`);
    if (targets[offsets[i]] !== 0) fail(`example ${i}: its first token is marked as a target`);
  }
  for (let k = 0; k < total; k++) {
    if (ids[k] < 0 || ids[k] >= meta.vocabSize) {
      fail(`token ${k}: id ${ids[k]} outside vocabulary ${meta.vocabSize}`);
    }
    if (targets[k] > 1) fail(`token ${k}: target byte ${targets[k]} is not 0 or 1`);
  }
  return {
    meta,
    count,
    offsets,
    ids,
    targets,
    example(i) {
      if (!Number.isInteger(i) || i < 0 || i >= count) {
        throw new RangeError(`${name}: no example ${i} (count ${count})`);
      }
      return {
        ids: ids.subarray(offsets[i], offsets[i + 1]),
        targets: targets.subarray(offsets[i], offsets[i + 1])
      };
    }
  };
}
function invalidUtf8Line(b) {
  const decoder = new TextDecoder("utf-8", {
    fatal: true
  });
  for (let start = 0, line = 1; start <= b.length; line++) {
    let end = b.indexOf(10, start);
    if (end < 0) end = b.length;
    try {
      decoder.decode(b.subarray(start, end));
    } catch {
      return line;
    }
    start = end + 1;
  }
  return 1;
}
function noTargetMessage(file, seqLen, seqLenName = "seqLen") {
  return `${file}: no example has a training target within the first ${seqLen} tokens (${seqLenName})`;
}
async function buildTokenCache(job, onProgress) {
  const { loadTokenizer: loadTokenizer2 } = await Promise.resolve().then(() => (init_tokenizer(), tokenizer_exports));
  const text = (b, what) => {
    try {
      return new TextDecoder("utf-8", {
        fatal: true
      }).decode(b);
    } catch {
      throw new Error(`${what}:${invalidUtf8Line(b)}: not valid UTF-8`);
    }
  };
  const tokenizerJson = text(job.tokenizerJsonBytes, "tokenizer.json");
  const tokenizerConfigJson = job.tokenizerConfigBytes && text(job.tokenizerConfigBytes, "tokenizer_config.json");
  const options = resolveTokenCacheOptions(job.options, tokenizerConfigJson);
  const [datasetSha256, tokenizerSha256, tokenizerConfigSha256] = await Promise.all([
    sha256Hex(job.datasetBytes),
    sha256Hex(job.tokenizerJsonBytes),
    job.tokenizerConfigBytes ? sha256Hex(job.tokenizerConfigBytes) : null
  ]);
  const key = await tokenCacheKey({
    datasetSha256,
    tokenizerSha256,
    tokenizerConfigSha256,
    options
  });
  const records = parseJsonl(text(job.datasetBytes, job.datasetFile), {
    file: job.datasetFile
  });
  const tokenizer = await loadTokenizer2({
    tokenizerJson,
    tokenizerConfigJson
  });
  const { examples, stats } = tokenizeDataset(records, tokenizer, {
    seqLen: options.seqLen,
    chatDefaults: {
      defaultSystem: options.defaultSystem
    },
    appendEosToText: options.appendEosToText,
    keepUntrained: options.keepUntrained,
    onProgress
  });
  if (examples.length === 0) {
    throw new Error(noTargetMessage(job.datasetFile, options.seqLen, job.seqLenName));
  }
  return encodeTokenCache(examples, {
    key,
    datasetSha256,
    tokenizerSha256,
    tokenizerConfigSha256,
    datasetFile: job.datasetFile,
    options,
    vocabSize: tokenizer.vocabSize,
    stats
  });
}
async function tokenizeInWorker(job, onProgress) {
  const worker = new Worker(new URL("./tokenize_worker.js", import.meta.url).href, {
    type: "module"
  });
  try {
    return await new Promise((resolve, reject) => {
      worker.onmessage = (e) => {
        const reply = e.data;
        if ("progress" in reply) onProgress?.(reply.progress, reply.total);
        else if (reply.ok) resolve(reply.bytes);
        else reject(new Error(reply.error));
      };
      worker.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`tokenize worker failed: ${e.message}`));
      };
      const transfer = [
        job.datasetBytes.buffer,
        job.tokenizerJsonBytes.buffer
      ];
      if (job.tokenizerConfigBytes) transfer.push(job.tokenizerConfigBytes.buffer);
      worker.postMessage(job, [
        ...new Set(transfer)
      ]);
    });
  } finally {
    worker.terminate();
  }
}

// src/runtime/kernel_exports.ts
var KERNEL_PARAMS = {
  heap_base: [],
  gemm: [
    "op",
    "m0",
    "m1",
    "n0",
    "n1",
    "K",
    "a",
    "lda",
    "bDtype",
    "b",
    "ldb",
    "bScales",
    "bBiases",
    "c",
    "ldc",
    "alpha",
    "accumulate",
    "scratch"
  ],
  gemm_dot: [
    "m0",
    "m1",
    "n0",
    "n1",
    "K",
    "a",
    "lda",
    "b",
    "ldb",
    "c",
    "ldc",
    "alpha",
    "accumulate"
  ],
  gemm_scratch_bytes: [],
  gemm_tile_columns: [],
  gemm_tile_rows: [],
  decode_row: [
    "dtype",
    "w",
    "ld",
    "scales",
    "biases",
    "row",
    "col0",
    "len",
    "dst"
  ],
  rmsnorm_forward: [
    "y",
    "rstd",
    "x",
    "w",
    "d",
    "ldX",
    "ldY",
    "eps",
    "r0",
    "r1"
  ],
  rmsnorm_backward: [
    "dx",
    "dy",
    "x",
    "w",
    "rstd",
    "d",
    "ldDx",
    "ldDy",
    "ldX",
    "accumulate",
    "r0",
    "r1"
  ],
  rope_forward: [
    "x",
    "cos",
    "sin",
    "nHeads",
    "headDim",
    "ld",
    "pos0",
    "r0",
    "r1"
  ],
  rope_backward: [
    "dx",
    "cos",
    "sin",
    "nHeads",
    "headDim",
    "ld",
    "pos0",
    "r0",
    "r1"
  ],
  softmax_causal_forward: [
    "p",
    "s",
    "nCols",
    "ld",
    "scale",
    "qPos0",
    "r0",
    "r1"
  ],
  softmax_causal_backward: [
    "ds",
    "p",
    "dp",
    "nCols",
    "ld",
    "scale",
    "qPos0",
    "r0",
    "r1"
  ],
  swiglu_forward: [
    "m",
    "g",
    "u",
    "nCols",
    "ldM",
    "ldG",
    "ldU",
    "r0",
    "r1"
  ],
  swiglu_backward: [
    "dg",
    "du",
    "dm",
    "g",
    "u",
    "nCols",
    "ldDg",
    "ldDu",
    "ldDm",
    "ldG",
    "ldU",
    "r0",
    "r1"
  ],
  ce_chunk_forward: [
    "logits",
    "vc",
    "ld",
    "v0",
    "targets",
    "rowMax",
    "rowSum",
    "targetLogit",
    "first",
    "r0",
    "r1"
  ],
  ce_finish: [
    "loss",
    "logsum",
    "rowMax",
    "rowSum",
    "targetLogit",
    "r0",
    "r1"
  ],
  ce_chunk_fused: [
    "logits",
    "vc",
    "ld",
    "v0",
    "targets",
    "rowMax",
    "rowSum",
    "targetLogit",
    "rowWeight",
    "acc",
    "ldAcc",
    "d",
    "first",
    "r0",
    "r1"
  ],
  ce_fused_finish: [
    "loss",
    "logsum",
    "rowMax",
    "rowSum",
    "targetLogit",
    "rowWeight",
    "acc",
    "ldAcc",
    "d",
    "r0",
    "r1"
  ],
  axpy: [
    "y",
    "alpha",
    "x",
    "n"
  ],
  scale: [
    "x",
    "alpha",
    "n"
  ],
  sum_squares: [
    "x",
    "n"
  ],
  f32_to_bf16: [
    "dst",
    "src",
    "n"
  ],
  exp_array: [
    "y",
    "x",
    "n"
  ],
  log_array: [
    "y",
    "x",
    "n"
  ],
  sgd_update: [
    "p",
    "g",
    "n",
    "lr",
    "weightDecay"
  ],
  adamw_update: [
    "p",
    "g",
    "m",
    "v",
    "n",
    "lr",
    "beta1",
    "beta2",
    "eps",
    "weightDecay",
    "biasC1",
    "biasC2"
  ],
  normal_fill: [
    "out",
    "n",
    "seed",
    "offset"
  ],
  zo_perturb: [
    "p",
    "n",
    "seed",
    "offset",
    "eps"
  ],
  zo_update: [
    "p",
    "n",
    "seed",
    "offset",
    "coeff",
    "lr",
    "weightDecay"
  ]
};

// src/runtime/pool.ts
var ROW_TASKS = [
  "rmsnorm_forward",
  "rmsnorm_backward",
  "rope_forward",
  "rope_backward",
  "softmax_causal_forward",
  "softmax_causal_backward",
  "swiglu_forward",
  "swiglu_backward",
  "ce_chunk_forward",
  "ce_finish",
  "ce_chunk_fused",
  "ce_fused_finish"
];
var TASKS = [
  "gemm",
  "gemm_dot",
  ...ROW_TASKS
];
var CTL = {
  /** Task generation: bumped once per posted task; workers wait on it. */
  seq: 0,
  /**
   * Claim word: `(generation & 0xffff) << 16 | shares << 8 | next share`, claimed with compare-and-swap;
   * one atomic read tells a thread whether the task is still current and which share is next.
   */
  claim: 1,
  /** Shares finished; the caller waits for it to reach `shares`. */
  done: 2,
  /** Task id (index in {@linkcode TASKS}). */
  fn: 3,
  /** Number of arguments. */
  nargs: 4,
  /** Index of the range's first argument (the range is `args[lo], args[lo + 1]`). */
  lo: 5,
  /** Range pieces are multiples of this (except the last). */
  grain: 6,
  /** Index of the scratch pointer argument, −1 if none. */
  scratchArg: 7,
  /** Bytes between two threads' scratch areas. */
  scratchStride: 8,
  /** Set by a worker whose share threw. */
  errors: 9,
  /** Set by {@linkcode Pool.close}: workers leave their loop. */
  quit: 10
};
var ARGS_AT = 64;
var MAX_ARGS = 24;
var CONTROL_BYTES = ARGS_AT + MAX_ARGS * 8;
var MR2 = GEMM_TILE.rows;
var NR2 = GEMM_TILE.columns;
var DOT_ROWS2 = 4;
var DOT_COLUMNS = 2;
var FORMALS = 18;
var ROW_FORMALS = 15;
var CALL_ARITIES = [
  7,
  8,
  9,
  10,
  11,
  12,
  13,
  15,
  18
];
for (const name of TASKS) {
  const n = KERNEL_PARAMS[name].length;
  const most = ROW_TASKS.includes(name) ? ROW_FORMALS : FORMALS;
  if (n > most || !CALL_ARITIES.includes(n)) {
    throw new Error(`pool: no call shape for ${name}'s ${n} parameters`);
  }
}
var Executor = class {
  #fns;
  #ctl;
  #args;
  #a = new Float64Array(MAX_ARGS);
  #thread;
  /** The first error a share threw since the owner last cleared it. */
  failure = void 0;
  /** `exports` of this thread's instance; `thread` picks its scratch area (0 = the caller). */
  constructor(exports, control, thread) {
    const ex = exports;
    this.#fns = TASKS.map((name) => ex[name]);
    this.#ctl = new Int32Array(control, 0, ARGS_AT / 4);
    this.#args = new Float64Array(control, ARGS_AT, MAX_ARGS);
    this.#thread = thread;
  }
  /** Claims shares of task generation `gen` and runs them until none is left (or the task changed). */
  work(gen) {
    const ctl = this.#ctl, tag = gen & 65535;
    for (; ; ) {
      const v = Atomics.load(ctl, CTL.claim), share = v & 255, shares = v >>> 8 & 255;
      if (v >>> 16 !== tag || share >= shares) return;
      if (Atomics.compareExchange(ctl, CTL.claim, v, v + 1) !== v) continue;
      try {
        this.#run(share, shares);
      } catch (err) {
        Atomics.store(ctl, CTL.errors, 1);
        this.failure ??= err;
      }
      if (Atomics.add(ctl, CTL.done, 1) + 1 === shares) Atomics.notify(ctl, CTL.done);
    }
  }
  /** Share `share` of `shares` of the posted task, with this thread's scratch. */
  #run(share, shares) {
    const ctl = this.#ctl, a = this.#a, n = ctl[CTL.nargs], lo = ctl[CTL.lo], grain = ctl[CTL.grain];
    for (let i = 0; i < n; i++) a[i] = this.#args[i];
    const units = Math.ceil((a[lo + 1] - a[lo]) / grain);
    const u0 = Math.floor(units * share / shares), u1 = Math.floor(units * (share + 1) / shares);
    if (u1 <= u0) return;
    const s0 = a[lo] + u0 * grain;
    a[lo + 1] = Math.min(a[lo + 1], a[lo] + u1 * grain);
    a[lo] = s0;
    const sa = ctl[CTL.scratchArg];
    if (sa >= 0) a[sa] += this.#thread * ctl[CTL.scratchStride];
    call(this.#fns[ctl[CTL.fn]], a, n);
  }
};
function call(f, a, n) {
  switch (n) {
    case 7:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
      break;
    case 8:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
      break;
    case 9:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
      break;
    case 10:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
      break;
    case 11:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
      break;
    case 12:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
      break;
    case 13:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]);
      break;
    case 15:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14]);
      break;
    case 18:
      f(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15], a[16], a[17]);
      break;
    default:
      throw new Error(`pool: no call shape for ${n} arguments`);
  }
}
function availableThreads() {
  const n = globalThis.navigator?.hardwareConcurrency;
  return typeof n === "number" && n >= 1 ? Math.floor(n) : 1;
}
var MAX_THREADS = 255;
var Pool = class _Pool {
  /** Threads per split call, the caller included. */
  threads;
  /** Entry points with the raw signatures; row kernels split their `(r0, r1)` across the threads. */
  exports;
  /** `gemm` split by rows (`m0, m1`, in micro-tiles of 6) or by columns (`n0, n1`, in tiles of 8). */
  gemmRows;
  gemmColumns;
  /** The unpacked skinny GEMM (`gemm_dot`), split by rows in blocks of 4, or by columns in pairs. */
  gemmDotRows;
  gemmDotColumns;
  /** The kernels this pool works for, with `pool` set (what the engine is given). */
  kernels;
  /** Row kernels with fewer rows run unsplit. */
  minRows;
  /** GEMMs with fewer floating-point operations run unsplit. */
  minFlops;
  /** GEMM split policy. */
  split;
  /** Split calls posted so far (each ran on every thread). */
  posted = 0;
  #raw;
  #ctl;
  #args;
  #main;
  #workers;
  #canBlock;
  #scratchStride;
  #closed = false;
  #lastError = "";
  constructor(kernels, control, workers, options) {
    this.threads = options.threads;
    this.minRows = options.minRows ?? 16;
    this.minFlops = options.minFlops ?? 1e6;
    this.split = options.split ?? "auto";
    this.#raw = kernels.exports;
    this.#ctl = new Int32Array(control, 0, ARGS_AT / 4);
    this.#args = new Float64Array(control, ARGS_AT, MAX_ARGS);
    this.#main = new Executor(kernels.exports, control, 0);
    this.#workers = workers;
    this.#scratchStride = kernels.exports.gemm_scratch_bytes();
    this.#canBlock = canBlock(this.#ctl);
    for (const w of workers) {
      w.onmessage = (ev) => {
        if (ev.data?.error) this.#lastError = String(ev.data.error);
      };
    }
    this.gemmRows = this.#gemmSplitting("gemm", "m0", MR2);
    this.gemmColumns = this.#gemmSplitting("gemm", "n0", NR2);
    this.gemmDotRows = this.#gemmSplitting("gemm_dot", "m0", DOT_ROWS2);
    this.gemmDotColumns = this.#gemmSplitting("gemm_dot", "n0", DOT_COLUMNS);
    const ex = {
      ...kernels.exports
    };
    for (const name of ROW_TASKS) ex[name] = this.#rowSplitting(name);
    this.exports = ex;
    this.kernels = {
      ...kernels,
      pool: this
    };
  }
  /**
   * Starts `threads − 1` workers on the shared memory of `kernels` (a threads build, see
   * `loadKernels({ shared: true })`). Grow the memory to the plan first. The plan's GEMM scratch region must
   * hold `threads · gemm_scratch_bytes()` bytes.
   */
  static async start(kernels, options) {
    const threads = options.threads;
    if (!Number.isInteger(threads) || threads < 2 || threads > MAX_THREADS) {
      throw new Error(`a pool needs at least 2 threads (and at most ${MAX_THREADS}), got ${threads}`);
    }
    if (!kernels.shared) throw new Error("a pool needs the threads build of the kernels (shared memory)");
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const url = options.workerUrl ?? workerUrlHere();
    const workers = [];
    const ready = [];
    const ctl = new Int32Array(control, 0, ARGS_AT / 4);
    try {
      for (let i = 1; i < threads; i++) {
        const w = new Worker(url, {
          type: "module"
        });
        workers.push(w);
        ready.push(new Promise((resolve, reject) => {
          w.onmessage = (ev) => {
            if (ev.data?.ready) return resolve();
            const why = ev.data?.error ?? "no reason";
            reject(new Error(`pool worker ${i} (${url}) failed to start: ${why}`));
          };
          w.onerror = (ev) => {
            ev.preventDefault();
            workerLoadFailure(url, ev.message).then((why) => reject(new Error(`pool worker ${i} failed to start: ${why}`)));
          };
        }));
        const init = {
          module: kernels.module,
          memory: kernels.memory,
          control,
          thread: i,
          spinMs: options.spinMs ?? 0.2
        };
        w.postMessage(init);
      }
      await Promise.all(ready);
    } catch (err) {
      stop(ctl, workers);
      throw err;
    }
    for (const w of workers) w.onerror = null;
    return new _Pool(kernels, control, workers, options);
  }
  /**
   * An entry point with the raw signature of GEMM `name` that runs it as a split task: the range that starts
   * at parameter `start` (`m0` rows or `n0` columns) is cut into shares on multiples of `grain`, and the
   * `scratch` parameter, if any, is thread 0's area (thread `i` uses the `i`-th after it). Where the
   * arguments go is found from the parameter names of the generated interface.
   */
  #gemmSplitting(name, start, grain) {
    const id = TASKS.indexOf(name), params = KERNEL_PARAMS[name];
    const nargs = params.length, lo = params.indexOf(start), scratchArg = params.indexOf("scratch");
    const x = this.#args;
    return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17) => {
      x[0] = a0;
      x[1] = a1;
      x[2] = a2;
      x[3] = a3;
      x[4] = a4;
      x[5] = a5;
      x[6] = a6;
      x[7] = a7;
      x[8] = a8;
      x[9] = a9;
      x[10] = a10;
      x[11] = a11;
      x[12] = a12;
      x[13] = a13;
      x[14] = a14;
      x[15] = a15;
      x[16] = a16;
      x[17] = a17;
      this.#post(id, nargs, lo, grain, scratchArg);
    };
  }
  /**
   * A row kernel's entry point: splits its trailing `(r0, r1)` across the threads, or runs it unsplit here
   * when the range is shorter than `minRows`. (Its own 15 parameters, not 18: row kernels are called
   * often, and storing unused arguments costs ~8 ns a call, measured.)
   */
  #rowSplitting(name) {
    const id = TASKS.indexOf(name), nargs = KERNEL_PARAMS[name].length, lo = nargs - 2;
    const f = this.#raw[name];
    const x = this.#args, min = this.minRows;
    return (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14) => {
      x[0] = a0;
      x[1] = a1;
      x[2] = a2;
      x[3] = a3;
      x[4] = a4;
      x[5] = a5;
      x[6] = a6;
      x[7] = a7;
      x[8] = a8;
      x[9] = a9;
      x[10] = a10;
      x[11] = a11;
      x[12] = a12;
      x[13] = a13;
      x[14] = a14;
      if (!(x[lo + 1] - x[lo] >= min)) {
        return f(a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14);
      }
      this.#post(id, nargs, lo, 1, -1);
    };
  }
  /** Posts the task whose arguments are written, claims shares here too, waits until all are done. */
  #post(fn, nargs, lo, grain, scratchArg) {
    if (this.#closed) throw new Error("the worker pool is closed");
    this.posted++;
    const ctl = this.#ctl, shares = this.threads;
    ctl[CTL.fn] = fn;
    ctl[CTL.nargs] = nargs;
    ctl[CTL.lo] = lo;
    ctl[CTL.grain] = grain;
    ctl[CTL.scratchArg] = scratchArg;
    ctl[CTL.scratchStride] = this.#scratchStride;
    Atomics.store(ctl, CTL.done, 0);
    const gen = Atomics.load(ctl, CTL.seq) + 1 | 0;
    Atomics.store(ctl, CTL.claim, (gen & 65535) << 16 | shares << 8);
    Atomics.store(ctl, CTL.seq, gen);
    Atomics.notify(ctl, CTL.seq);
    this.#main.work(gen);
    this.#wait(shares);
    const failure = this.#main.failure;
    this.#main.failure = void 0;
    if (Atomics.load(ctl, CTL.errors)) {
      Atomics.store(ctl, CTL.errors, 0);
      if (failure) throw failure;
      throw new Error(`pool: ${TASKS[fn]} failed in a worker${this.#lastError ? `: ${this.#lastError}` : ""}`);
    }
  }
  /** Until every share is done: poll briefly, then sleep on the counter where the runtime allows it. */
  #wait(shares) {
    const ctl = this.#ctl;
    let v = Atomics.load(ctl, CTL.done);
    for (let i = 0; v !== shares && (i < 2e4 || !this.#canBlock); i++) v = Atomics.load(ctl, CTL.done);
    while (v !== shares) {
      Atomics.wait(ctl, CTL.done, v);
      v = Atomics.load(ctl, CTL.done);
    }
  }
  /** Ends the workers. Idempotent; the pool's split entry points throw afterwards. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    stop(this.#ctl, this.#workers);
  }
};
function workerUrlHere() {
  const here = import.meta.url;
  try {
    return new URL("./worker.js", here);
  } catch {
    throw new Error(`cannot locate mesp's pool worker: this module has no URL here (import.meta.url is ${here}); pass the kernels option { workerUrl }, or threads: 1`);
  }
}
async function workerLoadFailure(url, message) {
  if (message) return `${message} (${url})`;
  try {
    const res = await fetch(url, {
      method: "HEAD"
    });
    await res.body?.cancel();
    if (!res.ok) return `cannot load ${url}: HTTP ${res.status} ${res.statusText}`.trimEnd();
  } catch (err) {
    return `cannot load ${url}: ${err.message}`;
  }
  return `the worker script ${url} failed to load or to run`;
}
function stop(ctl, workers) {
  Atomics.store(ctl, CTL.quit, 1);
  Atomics.store(ctl, CTL.claim, -1);
  Atomics.add(ctl, CTL.seq, 1);
  Atomics.notify(ctl, CTL.seq);
  for (const w of workers) {
    w.onmessage = null;
    w.terminate();
  }
}
function canBlock(ctl) {
  try {
    Atomics.wait(ctl, CTL.quit, 1, 0);
    return true;
  } catch {
    return false;
  }
}
function kernelCategory(name) {
  if (name.startsWith("softmax")) return "softmax";
  if (name.startsWith("ce_")) return "loss";
  if (name.startsWith("rmsnorm") || name.startsWith("rope") || name.startsWith("swiglu")) return "norm";
  return "elementwise";
}
function kernelEntries(kernels, profile) {
  const base = kernels.pool?.exports ?? kernels.exports;
  if (!profile) return base;
  const ex = {};
  for (const [name, v] of Object.entries(base)) {
    if (typeof v !== "function") {
      ex[name] = v;
      continue;
    }
    const f = v, cat = kernelCategory(name);
    ex[name] = (...args) => {
      const t0 = performance.now();
      const r = f(...args);
      profile.add(cat, performance.now() - t0);
      return r;
    };
  }
  return ex;
}
async function startKernels(specsOf, options = {}) {
  checkKernelLocation(options.kernels, "kernels");
  const threads = options.threads ?? 1;
  const location = options.kernels ?? {};
  const budget = {
    budget: options.budget
  };
  if (threads > 1) {
    const single2 = await kernelConstants({
      ...location,
      variant: options.variant
    });
    const specs = specsOf(single2.gemmScratchBytes * threads);
    const plan = planMemory(specs, {
      base: Math.ceil(single2.heapBase / 64) * 64
    });
    checkAddressable(plan);
    if (options.budget !== void 0 && plan.bytes > options.budget) {
      throw new PlanTooLargeError(plan, options.budget, plan.bytes, formatPlan(plan));
    }
    const shared = await loadKernels({
      ...location,
      variant: single2.variant,
      shared: true,
      memoryBytes: plan.end
    });
    if (shared.shared && shared.exports.heap_base() === single2.heapBase && shared.exports.gemm_scratch_bytes() === single2.gemmScratchBytes) {
      const arena = Arena.create(shared, specs, budget);
      const cores = availableThreads();
      if (threads > cores) {
        (options.onNotice ?? console.warn)(`mesp: ${threads} threads asked for and the runtime reports ${cores} core${cores === 1 ? "" : "s"}: the threads beyond them take turns, which slows every step`);
      }
      const pool = await Pool.start(shared, {
        workerUrl: location.workerUrl,
        ...options.poolOptions,
        threads
      });
      return {
        kernels: pool.kernels,
        arena
      };
    }
    const why = threadsUnavailable() ?? (shared.shared ? "the threads build lays out memory differently" : `no threads build or shared memory of ${Math.ceil(plan.end / 2 ** 20)} MB could be had`);
    (options.onNotice ?? console.warn)(`mesp: ${threads} threads asked for, running on 1: ${why}`);
    if (!shared.shared) {
      return {
        kernels: shared,
        arena: Arena.create(shared, specsOf(shared.exports.gemm_scratch_bytes()), budget)
      };
    }
  }
  const single = await loadKernels({
    ...location,
    variant: options.variant
  });
  const scratch = single.exports.gemm_scratch_bytes();
  return {
    kernels: single,
    arena: Arena.create(single, specsOf(scratch), budget)
  };
}

// src/engine/recompute.ts
function order(slots, saveAt, backward, recomputed) {
  const through = new Array(backward.length).fill(-1);
  let next = -1, nextThrough = -1;
  for (let i = backward.length - 1; i >= 0; i--) {
    const s = backward[i];
    if (s.kind !== "forward" && s.kind !== "backward") continue;
    through[i] = next === s.layer + 1 || next === s.layer ? nextThrough : s.layer;
    next = s.layer, nextThrough = through[i];
  }
  return {
    slots,
    saveAt,
    backward,
    recomputed,
    through
  };
}
function everyKth(layers, k) {
  if (!Number.isInteger(k) || k < 1) {
    throw new Error(`saved-input interval must be a positive integer, got ${k}`);
  }
  k = Math.min(k, layers);
  const kept2 = Math.ceil(layers / k);
  const saveAt = Array.from({
    length: layers
  }, (_, l) => l % k === 0 ? l / k : -1);
  const backward = [];
  const slot = (l) => l % k === 0 ? l / k : kept2 + l % k - 1;
  let recomputed = 0;
  for (let l0 = Math.floor((layers - 1) / k) * k; l0 >= 0; l0 -= k) {
    const l1 = Math.min(layers, l0 + k);
    if (l1 - l0 > 1) {
      backward.push({
        kind: "restore",
        layer: l0,
        slot: slot(l0)
      });
      for (let l = l0; l < l1 - 1; l++) {
        backward.push({
          kind: "forward",
          layer: l
        }, {
          kind: "save",
          layer: l + 1,
          slot: slot(l + 1)
        });
        recomputed++;
      }
    }
    for (let l = l1 - 1; l >= l0; l--) backward.push({
      kind: "backward",
      layer: l,
      slot: slot(l)
    });
  }
  return order(kept2 + k - 1, saveAt, backward, recomputed);
}
var tables = /* @__PURE__ */ new Map();
function recomputeTable(layers) {
  const hit = tables.get(layers);
  if (hit) return hit;
  const N = layers, grid = () => Array.from({
    length: N + 1
  }, () => new Array(N + 1).fill(Infinity));
  const back = {
    cost: grid(),
    split: grid()
  }, first = {
    cost: grid(),
    split: grid()
  };
  for (let s = 0; s <= N; s++) {
    back.cost[1][s] = first.cost[1][s] = 0;
    back.split[1][s] = first.split[1][s] = 0;
  }
  for (let n = 2; n <= N; n++) {
    for (let s = 1; s <= N; s++) {
      for (let c = 1; c < n; c++) {
        const cost = c + back.cost[n - c][s - 1] + back.cost[c][s];
        if (cost < back.cost[n][s]) [back.cost[n][s], back.split[n][s]] = [
          cost,
          c
        ];
      }
    }
    for (let s = 0; s <= N; s++) {
      first.cost[n][s] = back.cost[n][s];
      first.split[n][s] = 0;
      for (let c = 1; c < n && s > 0; c++) {
        const cost = first.cost[n - c][s - 1] + back.cost[c][s];
        if (cost < first.cost[n][s]) [first.cost[n][s], first.split[n][s]] = [
          cost,
          c
        ];
      }
    }
  }
  const table = {
    back,
    first
  };
  tables.set(layers, table);
  return table;
}
function recomputedLayers(layers, slots) {
  if (slots >= layers) return 0;
  return slots < 1 ? Infinity : recomputeTable(layers).first.cost[layers][slots - 1];
}
function fewestRecomputes(layers, slots) {
  if (slots >= layers) return everyKth(layers, 1);
  if (!Number.isInteger(slots) || slots < 2) {
    throw new Error(`saved inputs must be a whole number \u2265 2 (or \u2265 the ${layers} layers), got ${slots}`);
  }
  const { back, first } = recomputeTable(layers);
  const saveAt = new Array(layers).fill(-1), steps = [];
  const free = Array.from({
    length: slots - 1
  }, (_, i) => slots - 1 - i);
  let current = -1, recomputed = 0;
  const backStretch = (a, n, slot) => {
    if (n === 1) {
      steps.push({
        kind: "backward",
        layer: a,
        slot
      });
      current = -1;
      return;
    }
    const c = back.split[n][free.length], next = free.pop();
    if (current !== a) steps.push({
      kind: "restore",
      layer: a,
      slot
    });
    for (let l = a; l < a + c; l++) steps.push({
      kind: "forward",
      layer: l
    });
    recomputed += c;
    steps.push({
      kind: "save",
      layer: a + c,
      slot: next
    });
    current = a + c;
    backStretch(a + c, n - c, next);
    free.push(next);
    backStretch(a, c, slot);
  };
  const stretches = [];
  const forwardStretch = (a, n, slot) => {
    const c = first.split[n][free.length];
    if (c === 0) return void stretches.push([
      a,
      n,
      slot
    ]);
    const next = free.pop();
    saveAt[a + c] = next;
    forwardStretch(a + c, n - c, next);
    stretches.push([
      a,
      c,
      slot
    ]);
  };
  saveAt[0] = 0;
  forwardStretch(0, layers, 0);
  for (const [a, n, slot] of stretches) {
    backStretch(a, n, slot);
    free.push(slot);
  }
  return order(slots, saveAt, steps, recomputed);
}
function recomputeOrder(layers, o) {
  if (o.savedInputs === void 0) return everyKth(layers, o.savedInputEvery ?? 1);
  if ((o.savedInputEvery ?? 1) !== 1) {
    throw new Error(`give saved inputs (${o.savedInputs}) or an interval (every ${o.savedInputEvery}), not both`);
  }
  return fewestRecomputes(layers, o.savedInputs);
}

// src/engine/plan.ts
function keptFloats(D) {
  const { T, d, qd, kvd, I } = D;
  return {
    mlp: 2 * T * I,
    attention: T * (2 * d + 2 * qd + 2 * kvd + 1)
  };
}
function dims(cfg, o) {
  const T = o.seqLen;
  if (!Number.isInteger(T) || T < 2) throw new Error(`sequence length must be an integer \u2265 2, got ${T}`);
  const Vc = Math.min(o.vocabChunk ?? 512, cfg.vocabSize);
  const chunk = o.mlpChunk ?? MLP_CHUNK;
  if (!(chunk > 0) || chunk % GROUP !== 0) {
    throw new Error(`MLP chunk must be a multiple of ${GROUP}, got ${chunk}`);
  }
  const C = Math.min(chunk, cfg.intermediateSize);
  const P = o.mode === "generate" ? o.maxPositions ?? T : T;
  const B = o.batch ?? 1;
  if (!Number.isInteger(B) || B < 1) throw new Error(`batch must be a whole number \u2265 1, got ${B}`);
  if (B > 1 && o.mode !== "eval") {
    throw new Error(`a batch of ${B} sequences is for eval mode, not ${o.mode}`);
  }
  return {
    T,
    d: cfg.hiddenSize,
    H: cfg.numHeads,
    KV: cfg.numKvHeads,
    hd: cfg.headDim,
    qd: cfg.numHeads * cfg.headDim,
    kvd: cfg.numKvHeads * cfg.headDim,
    I: cfg.intermediateSize,
    V: cfg.vocabSize,
    L: cfg.numLayers,
    r: o.lora?.rank ?? 0,
    Vc,
    C,
    P,
    B
  };
}
function slotBytes(bytes) {
  return Math.ceil(bytes / 64) * 64;
}
var BUFFERS = {
  "weights.layers": "all layers' weights, resident (the pack's layer layout \xD7 L)",
  "weights.attn": "one layer's attention weights, biases and norms, streamed (the pack's layout)",
  "weights.mlp": "2 slots \xD7 one MLP chunk's weights (gate/up rows, down columns), streamed",
  "weights.vocab": "2 slots \xD7 Vc embedding / LM-head rows (the pack's vocabulary rows)",
  "weights.norm": "[d] final RMSNorm weight",
  "rope": "[2, P, hd/2] cos, sin",
  "gemm.scratch": "GEMM packing buffers, one area per thread",
  "lora.params": "every adapter's A [r, in] and B [out, r], flat (lora.ts); spilled: one layer's",
  "lora.grad": "the gradients of lora.params: one layer's or all",
  "lora.h": "[slots, T, r] the adapters' x\xB7A\u1D40 (slot 0 attention's, then gate, up, down of each sequence of the batch) and, in training, G\xB7B (slots 4\u20137)",
  "lora.h.attn": "[T, r] x\xB7A\u1D40 of the attention linear in use",
  "lora.h.gate": "[T, r] xn\xB7A_gate\u1D40",
  "lora.h.up": "[T, r] xn\xB7A_up\u1D40",
  "lora.h.down": "[T, r] m\xB7A_down\u1D40",
  "lora.gh.attn": "[T, r] s\xB7G\xB7B of the attention linear in use",
  "lora.gh.gate": "[T, r] s\xB7dG\xB7B_gate",
  "lora.gh.up": "[T, r] s\xB7dU\xB7B_up",
  "lora.gh.down": "[T, r] s\xB7G\xB7B_down",
  "act.x": "[B, T, d] residual stream of each sequence of the batch (training: [T, max(d, H\xB7hd)])",
  "act.xn": "[B, T, d] normed input of a block (the MLP's too), per sequence of the batch",
  "act.q": "[T, H\xB7hd] queries",
  "act.k": "[T, KV\xB7hd] keys",
  "act.v": "[T, KV\xB7hd] values",
  "kv.k": "[L, P, KV\xB7hd] key cache (generate)",
  "kv.v": "[L, P, KV\xB7hd] value cache (generate)",
  "act.att": "[T, H\xB7hd] attention output",
  "act.scores": "[T, P] one head's scores / probabilities",
  "act.rstd": "[T] 1/rms of a block's input norm",
  "mlp.gu": "[2, T, C] gate and up chunks (training: also the views over it)",
  "mlp.g": "[T, C] gate chunk (the forward's SwiGLU output is written over it)",
  "mlp.u": "[T, C] up chunk",
  "mlp.m": "[T, C] SwiGLU output / its gradient (training)",
  "saved": "[slots, T, d] saved layer inputs (f32 or bf16)",
  "saved.decoded": "[T, d] a bf16 saved input decoded to f32, or a spilled one read back",
  "grad.x": "[T, d] gradient of the residual stream",
  "grad.xn": "[T, d] gradient of a normed block input",
  "grad.q": "[T, H\xB7hd] gradient of the queries",
  "grad.k": "[T, KV\xB7hd] gradient of the keys",
  "grad.v": "[T, KV\xB7hd] gradient of the values",
  "grad.att": "[T, H\xB7hd] gradient of the attention output",
  "grad.scores": "[T, T] one head's score gradient",
  "keep.mlp": "[layers, 2, T, I] gate and up projections of the last keep.mlp layers (budget schedule)",
  "keep.attn": "[layers, T, 2d + 2\xB7H\xB7hd + 2\xB7KV\xB7hd + 1] xn, q, k, v, attention output, x2, 1/rms of the last keep.attention layers",
  "mebp.x2": "[T, d] MeBP: the MLP block's input",
  "mebp.P": "[H, T, T] MeBP: every head's attention probabilities",
  "mebp.g": "[T, I] MeBP: gate pre-activations",
  "mebp.u": "[T, I] MeBP: up projections",
  "mebp.m": "[T, I] MeBP: SwiGLU outputs",
  "mebp.h": "[7, T, r] MeBP: each adapter's x\xB7A\u1D40 (q, k, v, o, gate, up, down)",
  "opt.m": "AdamW first moments (like lora.params; spilled: one layer's)",
  "opt.v": "AdamW second moments (like lora.params; spilled: one layer's)",
  "loss.logits": "[T, Vc] logits of one vocabulary chunk",
  "loss.rows": "[B, 6, T] per-row max, sum, target logit, logsumexp, loss, weight of each sequence",
  "loss.targets": "[B, T] i32 target token per row (\u22121: none) of each sequence",
  "loss.erow": "[d] one decoded LM-head row (the target's, for the gradient)"
};
function planRegions(cfg, o) {
  return planBuffers(cfg, o).regions;
}
function planBuffers(cfg, o) {
  const D = dims(cfg, o);
  const { T, d, qd, kvd, C, Vc, P, L, r, B } = D;
  const f = 4;
  const regions = [];
  const views = [];
  const add = (name, bytes, purpose) => regions.push({
    name,
    bytes,
    purpose
  });
  const view = (name, over, offset, bytes, why) => views.push({
    name,
    over,
    offset,
    bytes,
    why
  });
  const train2 = o.mode === "train", backward = train2 && o.method !== "mezo";
  const layer = layerLayout(cfg, o.format, o.bf16Scales ?? false, o.mlpChunk ?? MLP_CHUNK);
  if (o.resident) add("weights.layers", L * layer.bytes, `all ${L} layers' weights, resident (${o.format})`);
  else {
    add("weights.attn", layer.attentionBytes, `one layer's attention weights and norms (${o.format}), streamed`);
    add("weights.mlp", 2 * slotBytes(layer.chunkBytes), `two chunks of a layer's MLP weights (${o.format}), streamed: one in use, the next read ahead`);
  }
  const vocab = matrixSlot(Vc, d, o.format, o.bf16Scales ?? false, 0);
  add("weights.vocab", 2 * slotBytes(vocab.bytes), `2 \xD7 ${Vc} embedding rows: token gather, LM-head chunk in use and the next read ahead (${o.format})`);
  add("weights.norm", d * f, "final RMSNorm weight");
  add("rope", 2 * P * (D.hd / 2) * f, `cos/sin tables for ${P} positions`);
  add("gemm.scratch", o.gemmScratch, "GEMM packing buffers");
  const spill = train2 && (o.spill ?? false);
  if (spill) checkSpill(o);
  if (o.lora) {
    add("lora.params", (spill ? o.lora.layerElements : o.lora.totalElements) * f, `LoRA A and B, rank ${o.lora.rank} on ${o.lora.targets.join(",")}${spill ? ": one layer's, the rest spilled" : ""}`);
  }
  const ofBatch = B > 1 ? ` \xD7 ${B} sequences` : "";
  add("act.x", B * T * (backward ? Math.max(d, qd) : d) * f, `residual stream [T, d]${ofBatch}${backward ? "; then d(attention output) [T, H\xB7hd]" : ""}`);
  add("act.xn", B * T * d * f, `normed input of a block [T, d]${ofBatch}`);
  add("act.q", T * qd * f, "queries [T, H\xB7hd]");
  if (o.mode === "generate") {
    add("kv.k", L * P * kvd * f, `key cache [L, ${P}, KV\xB7hd]`);
    add("kv.v", L * P * kvd * f, `value cache [L, ${P}, KV\xB7hd]`);
  } else {
    add("act.k", T * kvd * f, "keys [T, KV\xB7hd]");
    add("act.v", T * kvd * f, "values [T, KV\xB7hd]");
  }
  add("act.att", T * (train2 ? Math.max(qd, Vc) : qd) * f, `attention output [T, H\xB7hd]${train2 ? `; the loss's logits [T, ${Vc}]` : ""}${backward ? "; then d(queries)" : ""}`);
  add("act.scores", T * P * f, "one head's scores / probabilities [T, T]");
  add("act.rstd", T * f, "RMSNorm 1/rms per row");
  add("mlp.gu", 2 * T * C * f, `gate and up chunks 2 \xD7 [T, ${C}]`);
  view("mlp.g", "mlp.gu", 0, T * C * f, "part: the gate chunk");
  view("mlp.u", "mlp.gu", T * C * f, T * C * f, "part: the up chunk");
  if (backward) {
    view("grad.att", "act.x", 0, T * qd * f, "shared: the residual stream (the MLP's input) is dead once the MLP backward is done");
    view("grad.q", "act.att", 0, T * qd * f, "shared: the attention output is dead once o_proj's gradients are done, before the first head's");
    if (o.savedInputDtype === "bf16" || spill) {
      view("saved.decoded", "act.x", 0, T * d * f, `shared: ${spill ? "read back" : "decoded"} after the last head, when d(attention output) is dead`);
    }
  }
  if (r) {
    const slots = o.mode === "train" ? 8 : 1 + 3 * B;
    add("lora.h", slots * T * r * f, `adapters' x\xB7A\u1D40${o.mode === "train" ? " and G\xB7B" : ""} [T, r] \xD7${slots}`);
    const names = [
      "lora.h.attn",
      "lora.h.gate",
      "lora.h.up",
      "lora.h.down",
      "lora.gh.attn",
      "lora.gh.gate",
      "lora.gh.up",
      "lora.gh.down"
    ];
    for (let i = 0; i < (o.mode === "train" ? 8 : 4); i++) {
      view(names[i], "lora.h", i * T * r * f, T * r * f, `part: slot ${i}`);
    }
  }
  if (o.mode === "train" && o.method === "mezo") {
    if (o.gradBuffer) {
      add("lora.grad", o.lora.totalElements * f, "MeZO's gradient estimate (grad command only)");
    }
  } else if (o.mode === "train") trainRegions(o, D, add, view);
  if (train2) {
    view("loss.logits", "act.att", 0, T * Vc * f, "shared: the loss runs after the last layer's forward and before the first backward; no attention output is alive");
  } else add("loss.logits", T * Vc * f, `logits of one vocabulary chunk [T, ${Vc}]`);
  add("loss.rows", B * 6 * T * f, `per-row max, sum, target logit, logsumexp, loss, weight${ofBatch}`);
  add("loss.targets", B * T * 4, `target token per row (i32)${ofBatch}`);
  if (o.mode === "train") add("loss.erow", d * f, "one decoded LM-head row (the target's, for the gradient)");
  checkViews(regions, views);
  return {
    regions,
    views
  };
}
function checkViews(regions, views) {
  for (const v of views) {
    const over = regions.find((r) => r.name === v.over);
    if (!over) throw new Error(`memory plan: view "${v.name}" is over "${v.over}", which the plan lacks`);
    if (v.offset < 0 || v.offset + v.bytes > over.bytes) {
      throw new Error(`memory plan: view "${v.name}" (${v.bytes} bytes from ${v.offset}) overruns "${v.over}" (${over.bytes})`);
    }
  }
}
function bufferPointers(plan, views) {
  const at = new Map(plan.regions.map((r) => [
    r.name,
    r.offset
  ]));
  for (const v of views) at.set(v.name, at.get(v.over) + v.offset);
  const p = {};
  for (const name of Object.keys(BUFFERS)) {
    const ptr = at.get(name);
    if (ptr !== void 0) p[name] = ptr;
    else {
      Object.defineProperty(p, name, {
        get() {
          throw new Error(`memory plan has no buffer "${name}" (not planned for this mode/method)`);
        }
      });
    }
  }
  return Object.freeze(p);
}
function trainRegions(o, D, add, view) {
  const { T, d, kvd, C, L } = D;
  const f = 4;
  const lora = o.lora;
  if (!lora) throw new Error("training needs a LoRA layout");
  const bf16 = o.savedInputDtype === "bf16";
  const every = o.savedInputEvery ?? 1;
  const order2 = recomputeOrder(L, o);
  const spill = o.spill ?? false;
  if (!spill) {
    add("saved", order2.slots * T * d * (bf16 ? 2 : 4), `saved layer inputs, ${order2.slots} \xD7 [T, d] (${bf16 ? "bf16" : "f32"}${order2.recomputed ? `; ${order2.recomputed} layer forwards recomputed` : ""})`);
  }
  add("mlp.m", T * Math.max(C, T) * f, `SwiGLU output / its gradient [T, ${C}]; then d(scores) [T, T]`);
  add("grad.x", T * d * f, "gradient of the residual stream [T, d]");
  add("grad.xn", T * d * f, "gradient of a normed block input [T, d]");
  add("grad.k", T * kvd * f, "gradient of the keys [T, KV\xB7hd]");
  add("grad.v", T * kvd * f, "gradient of the values [T, KV\xB7hd]");
  view("grad.scores", "mlp.m", 0, T * T * f, "shared: the attention backward runs after the MLP's, whose SwiGLU output is then dead");
  const keep = o.keep;
  if (keep && (keep.mlp > 0 || keep.attention > 0)) {
    for (const [what, n] of Object.entries(keep)) {
      if (!Number.isInteger(n) || n < 0 || n > L) {
        throw new Error(`keep.${what} must be a whole number of layers in 0\u2026${L}, got ${n}`);
      }
    }
    if ((o.method ?? "mesp") !== "mesp" || bf16 || every !== 1 || order2.slots < L) {
      throw new Error("kept forward tensors need MeSP with every layer's input saved in f32");
    }
    const kept2 = keptFloats(D);
    if (keep.mlp) {
      add("keep.mlp", keep.mlp * kept2.mlp * f, `gate and up [T, ${D.I}] \xD7 2 of ${keep.mlp} layer(s), kept`);
    }
    if (keep.attention) {
      add("keep.attn", keep.attention * kept2.attention * f, `xn, q, k, v, attention output, MLP input of ${keep.attention} layer(s), kept`);
    }
  }
  if (o.method === "mebp") {
    const { H, I, r } = D;
    add("mebp.x2", T * d * f, "MeBP: the MLP block's input, kept [T, d]");
    add("mebp.P", H * T * T * f, `MeBP: every head's attention probabilities, kept [H, T, T]`);
    add("mebp.g", T * I * f, "MeBP: gate pre-activations, kept [T, intermediate]");
    add("mebp.u", T * I * f, "MeBP: up projections, kept [T, intermediate]");
    add("mebp.m", T * I * f, "MeBP: SwiGLU outputs, kept [T, intermediate]");
    add("mebp.h", 7 * T * r * f, "MeBP: each adapter's x\xB7A\u1D40, kept 7 \xD7 [T, r]");
  }
  const whole = (o.gradBuffer ?? false) || o.method === "mebp";
  add("lora.grad", (whole ? lora.totalElements : lora.layerElements) * f, whole ? "LoRA gradients of every layer (accumulation / clipping)" : "one layer's LoRA gradients (update fused into backward)");
  if (o.optimizer === "adamw") {
    const n = spill ? lora.layerElements : lora.totalElements, of = spill ? ": one layer's, the rest spilled" : "";
    add("opt.m", n * f, `AdamW first moments${of}`);
    add("opt.v", n * f, `AdamW second moments${of}`);
  }
}
function checkSpill(o) {
  const why = (o.method ?? "mesp") !== "mesp" ? `the ${o.method} method` : o.gradBuffer ? "a whole-model gradient buffer (gradient accumulation or clipping)" : o.savedInputDtype === "bf16" ? "bf16 saved inputs" : void 0;
  if (why) {
    throw new Error(`spill needs MeSP training with f32 saved inputs and the update fused into each layer's backward, not ${why}`);
  }
}

// src/engine/blocks.ts
function slotOf(layers, l, n) {
  return l >= layers - n ? l - (layers - n) : -1;
}
function resolveBlocks(p, D, options) {
  const lora = options.lora, h = lora ? p["lora.h.attn"] : 0, f = 4;
  const attention = {
    x: p["act.x"],
    xn: p["act.xn"],
    rstd: p["act.rstd"],
    q: p["act.q"],
    att: p["act.att"],
    probs: p["act.scores"],
    probsStride: 0,
    h: [
      h,
      h,
      h,
      h
    ]
  };
  const mlp = {
    x: p["act.x"],
    xn: p["act.xn"],
    rstd: p["act.rstd"],
    hg: lora ? p["lora.h.gate"] : 0,
    hu: lora ? p["lora.h.up"] : 0,
    hd: lora ? p["lora.h.down"] : 0,
    g: p["mlp.g"],
    u: p["mlp.u"],
    ld: D.C,
    step: 0,
    m: p["mlp.g"],
    ldm: D.C,
    mStep: 0
  };
  const keep = options.keep, floats = keptFloats(D);
  const keptAttention = Array.from({
    length: D.L
  }, (_, l) => {
    const s = slotOf(D.L, l, keep?.attention ?? 0);
    if (s < 0) return void 0;
    const { T, d, qd, kvd } = D;
    const xn = p["keep.attn"] + s * floats.attention * f, q = xn + T * d * f, k = q + T * qd * f;
    const v = k + T * kvd * f, att = v + T * kvd * f, x2 = att + T * qd * f, rstd = x2 + T * d * f;
    return {
      kv: {
        k,
        v
      },
      buffers: {
        ...attention,
        xn,
        rstd,
        q,
        att
      },
      x2
    };
  });
  const keptMlp = Array.from({
    length: D.L
  }, (_, l) => {
    const s = slotOf(D.L, l, keep?.mlp ?? 0);
    if (s < 0) return void 0;
    const g = p["keep.mlp"] + s * floats.mlp * f, u = g + D.T * D.I * f;
    return {
      ...mlp,
      g,
      u,
      ld: D.I,
      step: 4,
      m: p["mlp.m"],
      ldm: D.C,
      mStep: 0
    };
  });
  const layerKv = options.cache ? void 0 : {
    k: p["act.k"],
    v: p["act.v"]
  };
  const kvBytes = D.P * D.kvd * f;
  const kv = Array.from({
    length: D.L
  }, (_, l) => layerKv ?? {
    k: p["kv.k"] + l * kvBytes,
    v: p["kv.v"] + l * kvBytes
  });
  return {
    kv,
    attention,
    mlp,
    keptAttention,
    keptMlp,
    batch: batchSlots(p, D, attention, mlp, lora)
  };
}
function batchSlots(p, D, attention, mlp, lora) {
  const { T, d, r } = D, f = 4;
  return Array.from({
    length: D.B
  }, (_, s) => {
    const x = p["act.x"] + s * T * d * f, xn = p["act.xn"] + s * T * d * f;
    const h = (i) => lora ? p["lora.h"] + (1 + 3 * s + i) * T * r * f : 0;
    const b = p["loss.rows"] + s * 6 * T * f;
    return {
      x,
      xn,
      attention: s === 0 ? attention : {
        ...attention,
        x,
        xn
      },
      mlp: s === 0 ? mlp : {
        ...mlp,
        x,
        xn,
        hg: h(0),
        hu: h(1),
        hd: h(2)
      },
      loss: {
        max: b,
        sum: b + T * f,
        tlogit: b + 2 * T * f,
        lse: b + 3 * T * f,
        loss: b + 4 * T * f,
        weight: b + 5 * T * f,
        targets: p["loss.targets"] + s * T * 4
      }
    };
  });
}

// src/engine/lora.ts
var SHORT = {
  q: "q_proj",
  k: "k_proj",
  v: "v_proj",
  o: "o_proj",
  gate: "gate_proj",
  up: "up_proj",
  down: "down_proj"
};
function resolveTargets(targets) {
  if (!targets) return [
    ...LINEARS
  ];
  if (targets.length === 0) {
    throw new Error('LoRA targets: the list is empty (leave it out, or ["all"], for all)');
  }
  const set = /* @__PURE__ */ new Set();
  for (const t of targets) {
    if (t === "all" || t === "all-linear") {
      LINEARS.forEach((l) => set.add(l));
      continue;
    }
    const name = SHORT[t] ?? (LINEARS.includes(t) ? t : void 0);
    if (!name) {
      throw new Error(`unknown LoRA target "${t}" (choose from ${Object.keys(SHORT).join(", ")}, or all)`);
    }
    set.add(name);
  }
  return LINEARS.filter((l) => set.has(l));
}
function loraLayout(cfg, options = {}) {
  const rank = options.rank ?? 8;
  if (!Number.isInteger(rank) || rank < 1) {
    throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
  }
  const alpha = options.alpha ?? 2 * rank;
  if (!(alpha > 0)) throw new Error(`LoRA alpha must be positive, got ${alpha}`);
  const rslora = options.rslora ?? false;
  const targets = resolveTargets(options.targets);
  const pairs = [];
  let at = 0;
  for (let layer = 0; layer < cfg.numLayers; layer++) {
    const row = [];
    for (const target of targets) {
      const [outDim, inDim] = linearShape(cfg, target);
      row.push({
        layer,
        target,
        inDim,
        outDim,
        a: at,
        b: at + rank * inDim
      });
      at += rank * (inDim + outDim);
    }
    pairs.push(row);
  }
  return {
    rank,
    alpha,
    rslora,
    scale: rslora ? alpha / Math.sqrt(rank) : alpha / rank,
    targets,
    pairs,
    layerElements: cfg.numLayers ? at / cfg.numLayers : 0,
    totalElements: at
  };
}
function findPair(layout, layer, target) {
  return layout.pairs[layer].find((p) => p.target === target);
}
function peftName(pair, which) {
  return `base_model.model.model.layers.${pair.layer}.${LINEAR_PREFIX[pair.target]}.lora_${which}.weight`;
}
function parsePeftName(name) {
  const m = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
  if (!m) return void 0;
  const target = m[3];
  if (!LINEARS.includes(target) || LINEAR_PREFIX[target] !== `${m[2]}.${target}`) return void 0;
  return {
    layer: Number(m[1]),
    target,
    which: m[4]
  };
}

// src/engine/read_ahead.ts
var ReadAhead = class {
  #read;
  /** The unit in the current slot (-1: none) and that slot. */
  #key = -1;
  #slot = 0;
  /** A read in flight into the other slot. */
  #pending;
  constructor(read) {
    this.#read = read;
  }
  /** Makes `key` current and returns its slot: the read-ahead's if it was `key`, else a read now. */
  async load(key) {
    const p = this.#pending;
    if (p) {
      this.#pending = void 0;
      if (p.key === key) {
        await p.done;
        this.#key = key;
        this.#slot = this.#slot === 0 ? 1 : 0;
        return this.#slot;
      }
      await p.done.catch(() => {
      });
    }
    if (this.#key === key) return this.#slot;
    const spare = this.#slot === 0 ? 1 : 0;
    await this.#read(key, spare);
    this.#key = key;
    this.#slot = spare;
    return spare;
  }
  /**
   * Starts reading `key` into the spare slot, unless it is current or a read is already in flight. Call it
   * right after `load`, before computing with the current slot.
   */
  prefetch(key) {
    if (this.#pending || key === this.#key) return;
    const done = this.#read(key, this.#slot === 0 ? 1 : 0);
    done.catch(() => {
    });
    this.#pending = {
      key,
      done
    };
  }
  /**
   * {@linkcode settle} without waiting: when no read is in flight, forgets what the slots hold and returns
   * true; false (and nothing forgotten) while one is.
   */
  settledNow() {
    if (this.#pending) return false;
    this.#key = -1;
    return true;
  }
  /**
   * Waits for any read in flight and forgets what the slots hold: for a caller about to write into a slot
   * by other means (single rows of the vocabulary).
   */
  async settle() {
    const p = this.#pending;
    this.#pending = void 0;
    this.#key = -1;
    if (p) await p.done.catch(() => {
    });
  }
};

// src/engine/weight_stream.ts
var WeightStream = class {
  #pack;
  #p;
  #D;
  #resident;
  /** Layer whose attention block the slot holds (-1: none), in streaming mode. */
  loadedLayer = -1;
  /** The attention linears' frozen weights, for the layer in use. */
  attention;
  /** The MLP chunks, as stored in the pack; each chunk's descriptors point at it when loaded. */
  chunks;
  /** The vocabulary slot in use (a chunk of the embedding / LM head, or one row) as a weight. */
  vocabRef;
  #attentionRel = [];
  #chunkRel = [];
  /** Views the pack reads the attention block and, per MLP slot, each MLP chunk into (streaming). */
  #attnView;
  #chunkViews = [
    [],
    []
  ];
  #mlpBase = [];
  /** MLP chunks streamed through two slots, keyed layer · chunks + chunk: the next one is read ahead. */
  #mlpReads;
  /** Per-layer vector pointers relative to the layer base. */
  #vec;
  /** Per vocabulary slot, the views of each chunk; single rows go through slot 0. */
  #vocabViews = [
    [],
    []
  ];
  #rowViews;
  /** Offsets of a vocabulary slot's parts from its base, and the bases of the two slots. */
  #vocabParts;
  #vocabBase;
  #vocabReads;
  #layerBase = 0;
  /**
   * Over the memory `buffer` and the plan's buffers `p`; `slotBytes` are the sizes of one of the two MLP slots
   * and one of the two vocabulary slots (half their regions).
   */
  constructor(pack, buffer, p, D, resident, slotBytes2) {
    this.#pack = pack;
    this.#p = p;
    this.#D = D;
    this.#resident = resident;
    const layout = pack.layout;
    const rel = (slot, group) => {
      const ref = {
        dtype: slot.dtype,
        ptr: 0,
        ld: slot.cols,
        scales: 0,
        biases: 0,
        bf16Scales: slot.bf16Scales
      };
      group.push({
        ref,
        ptr: slot.offset,
        scales: slot.scalesOffset,
        biases: slot.biasesOffset
      });
      return ref;
    };
    this.attention = Object.fromEntries(ATTENTION.map((n) => [
      n,
      rel(layout.attention[n], this.#attentionRel)
    ]));
    this.chunks = layout.chunks.map((c) => {
      const group = [];
      this.#chunkRel.push(group);
      return {
        c0: c.c0,
        c1: c.c1,
        gate: rel(c.gate, group),
        up: rel(c.up, group),
        down: rel(c.down, group)
      };
    });
    this.#vec = {
      qBias: layout.qBias.offset,
      kBias: layout.kBias.offset,
      vBias: layout.vBias.offset,
      inputNorm: layout.inputNorm.offset,
      postNorm: layout.postNorm.offset
    };
    const vs = pack.vocabSlot;
    const vocab = p["weights.vocab"], half = slotBytes2.vocab;
    const scalesOff = vs.scaleRowBytes ? alignUp(D.Vc * vs.rowBytes) : 0;
    const biasesOff = vs.scaleRowBytes ? alignUp(scalesOff + D.Vc * vs.scaleRowBytes) : 0;
    this.#vocabParts = {
      scales: scalesOff,
      biases: biasesOff
    };
    this.#vocabBase = [
      vocab,
      vocab + half
    ];
    this.vocabRef = {
      dtype: vs.dtype,
      ptr: 0,
      ld: D.d,
      scales: 0,
      biases: 0,
      bf16Scales: vs.bf16Scales
    };
    this.#pointVocab(0);
    const views = (base, rows) => ({
      data: new Uint8Array(buffer, base, rows * vs.rowBytes),
      scales: vs.scaleRowBytes ? new Uint8Array(buffer, base + scalesOff, rows * vs.scaleRowBytes) : void 0,
      biases: vs.scaleRowBytes ? new Uint8Array(buffer, base + biasesOff, rows * vs.scaleRowBytes) : void 0
    });
    for (const s of [
      0,
      1
    ]) {
      for (let v0 = 0; v0 < D.V; v0 += D.Vc) {
        this.#vocabViews[s].push(views(this.#vocabBase[s], Math.min(D.Vc, D.V - v0)));
      }
    }
    this.#rowViews = views(this.#vocabBase[0], 1);
    this.#vocabReads = new ReadAhead((c, s) => pack.readVocabRows(c * D.Vc, c * D.Vc + this.#vocabViews[s][c].data.length / vs.rowBytes, this.#vocabViews[s][c], !pack.config.tieWordEmbeddings));
    this.#mlpReads = new ReadAhead((key, s) => {
      const n = this.chunks.length, i = key % n;
      return pack.readMlpChunk((key - i) / n, i, this.#chunkViews[s][i]);
    });
    if (!resident) {
      this.#attnView = new Uint8Array(buffer, p["weights.attn"], layout.attentionBytes);
      const mlp = p["weights.mlp"], mlpHalf = slotBytes2.mlp;
      this.#mlpBase = [
        mlp,
        mlp + mlpHalf
      ];
      for (const s of [
        0,
        1
      ]) {
        for (const c of layout.chunks) {
          this.#chunkViews[s].push(new Uint8Array(buffer, this.#mlpBase[s], c.bytes));
        }
      }
    }
    this.#setLayerBase(this.#layerAt(0));
  }
  /** Reads what a resident engine keeps (every layer) and the final norm. */
  async readResident(norm) {
    await this.#pack.readNorm(norm);
    if (!this.#resident) return;
    const bytes = this.#pack.layout.bytes;
    const all = new Uint8Array(norm.buffer, this.#p["weights.layers"], this.#D.L * bytes);
    for (let l = 0; l < this.#D.L; l++) {
      await this.#pack.readLayer(l, all.subarray(l * bytes, (l + 1) * bytes));
    }
  }
  /** Where layer `l`'s attention block is: its resident copy, or the streamed slot. */
  #layerAt(l) {
    return this.#resident ? this.#p["weights.layers"] + l * this.#pack.layout.bytes : this.#p["weights.attn"];
  }
  /** Absolute pointer of a per-layer vector (bias or norm weight) of the layer in use. */
  vec(name) {
    return this.#layerBase + this.#vec[name];
  }
  /** Points the attention descriptors (and the per-layer vectors) at the attention block starting at `base`. */
  #setLayerBase(base) {
    this.#layerBase = base;
    setBase(this.#attentionRel, base);
  }
  /**
   * Makes layer `l`'s attention block current (reads it into its slot unless resident or already there).
   * `through`: layers l + 1…through are loaded right after this one, in order (see `Pack.readAttention`).
   */
  async loadLayer(l, through = l) {
    if (this.#resident) {
      this.#setLayerBase(this.#layerAt(l));
      return;
    }
    if (this.loadedLayer !== l) {
      this.loadedLayer = -1;
      await this.#pack.readAttention(l, this.#attnView, through);
      this.loadedLayer = l;
    }
    this.#mlpReads.prefetch(l * this.chunks.length);
  }
  /** Makes the weight descriptors point at layer `l` (checking a streamed layer is in the slot). */
  useLayer(l) {
    if (!this.#resident && this.loadedLayer !== l) throw new Error(`layer ${l} is not loaded`);
    const base = this.#layerAt(l);
    if (this.#layerBase !== base) this.#setLayerBase(base);
  }
  /** Makes MLP chunk `i` of layer `l` current (reads it into the MLP slot unless resident or already there). */
  async loadChunk(l, i) {
    if (this.#resident) {
      setBase(this.#chunkRel[i], this.#layerAt(l) + this.#pack.layout.chunks[i].offset);
      return;
    }
    const n = this.chunks.length, key = l * n + i;
    const slot = await this.#mlpReads.load(key);
    setBase(this.#chunkRel[i], this.#mlpBase[slot]);
    if (i + 1 < n) this.#mlpReads.prefetch(key + 1);
  }
  /** Number of vocabulary chunks. */
  get vocabChunks() {
    return this.#vocabViews[0].length;
  }
  /** Reads vocabulary chunk `c` (embedding, or the untied LM head) into the vocabulary slot; its row count. */
  async loadVocabChunk(c) {
    const slot = await this.#vocabReads.load(c);
    this.#pointVocab(slot);
    if (c + 1 < this.vocabChunks) this.#vocabReads.prefetch(c + 1);
    return Math.min(this.#D.Vc, this.#D.V - c * this.#D.Vc);
  }
  /**
   * Reads row `id` of the embedding (`head`: of the LM head, the embedding when tied) into row 0 of the
   * vocabulary slot; `vocabRef` then points at it.
   */
  async readRow(id, head) {
    await this.#vocabReads.settle();
    this.#pointVocab(0);
    await this.#pack.readVocabRows(id, id + 1, this.#rowViews, head && !this.#pack.config.tieWordEmbeddings);
    return this.vocabRef;
  }
  /**
   * {@linkcode readRow} without a promise, when the last `prefetchRows` gathered the row and no read-ahead
   * is in flight (as in a step's token loops); undefined otherwise, for `readRow` to read it.
   */
  gatheredRow(id, head) {
    if (!this.#vocabReads.settledNow()) return void 0;
    this.#pointVocab(0);
    const lmHead = head && !this.#pack.config.tieWordEmbeddings;
    return this.#pack.copyGatheredRow(id, this.#rowViews, lmHead) ? this.vocabRef : void 0;
  }
  /**
   * Announces the rows `ids[0..count)` that `readRow` is about to be asked for, so the pack fetches them in
   * few reads (sorted, once each, neighbours merged) instead of one read a row.
   */
  async prefetchRows(ids, count, head) {
    await this.#vocabReads.settle();
    await this.#pack.prefetchRows(ids, count, head && !this.#pack.config.tieWordEmbeddings);
  }
  /**
   * Announces rows a later `prefetchRows` will ask for, so the next pass over the vocabulary (the loss's)
   * keeps them as it reads them instead of the gather reading them: the next sequence's embedding rows
   * (`head` false), taken from the loss's pass when the head is the embedding (tied), or an untied head's
   * target rows, from the same step's pass. Tied, the targets are among the embedding rows gathered
   * already: `head` then does nothing.
   */
  expectRows(ids, count, head) {
    const tied = this.#pack.config.tieWordEmbeddings;
    if (head && tied) return;
    this.#pack.expectRows(ids, count, head);
  }
  /** Points `vocabRef` at vocabulary slot `s`. */
  #pointVocab(s) {
    const base = this.#vocabBase[s];
    this.vocabRef.ptr = base;
    this.vocabRef.scales = base + this.#vocabParts.scales;
    this.vocabRef.biases = base + this.#vocabParts.biases;
  }
};
function setBase(group, base) {
  for (const r of group) {
    r.ref.ptr = base + r.ptr;
    r.ref.scales = base + r.scales;
    r.ref.biases = base + r.biases;
  }
}
function alignUp(n) {
  return Math.ceil(n / 64) * 64;
}
function scratchRef() {
  return f32Ref(0, 1);
}

// src/engine/schedule.ts
var GFLOPS_PER_THREAD = 45;
var THREAD_GAIN = 0.7;
var NONE = {
  mlp: 0,
  attention: 0
};
function layerFlops(cfg, T, r) {
  const d = cfg.hiddenSize, qd = cfg.numHeads * cfg.headDim, kvd = cfg.numKvHeads * cfg.headDim;
  const I = cfg.intermediateSize, hd = cfg.headDim, H = cfg.numHeads;
  const lora = (i, o) => 2 * T * r * (i + o);
  const attnLinears = 2 * T * d * (qd + 2 * kvd + qd) + lora(d, qd) + 2 * lora(d, kvd) + lora(qd, d);
  const heads = 2 * 2 * H * T * T * hd;
  const gateUp = 2 * 2 * T * d * I + 2 * lora(d, I);
  const down = 2 * T * I * d + lora(I, d);
  const forward2 = attnLinears + heads + gateUp + down;
  const backward = forward2 + heads + 2 * lora(d, qd) + 2 * lora(I, d);
  return {
    attnLinears,
    heads,
    gateUp,
    forward: forward2,
    backward
  };
}
function stepFlops(cfg, o, s) {
  const D = dims(cfg, o), L = D.L, f = layerFlops(cfg, D.T, D.r);
  const head = 2 * 2 * D.T * D.V * D.d;
  const recompute = L * (f.attnLinears + f.heads + f.gateUp) - s.keep.attention * f.attnLinears - s.keep.mlp * f.gateUp;
  const inputs = recomputeOrder(L, s).recomputed * f.forward;
  return L * (f.forward + f.backward) + recompute + inputs + head;
}
function predictedSeconds(flops, threads) {
  return flops / (GFLOPS_PER_THREAD * 1e9 * (1 + THREAD_GAIN * (Math.max(1, threads) - 1)));
}
function schedulable(o) {
  return o.mode === "train" && (o.method ?? "mesp") === "mesp" && (o.savedInputDtype ?? "f32") === "f32" && o.keep === void 0 && o.lora !== void 0;
}
function givenInputs(o) {
  return {
    savedInputEvery: o.savedInputEvery,
    savedInputs: o.savedInputs
  };
}
function costOf(cfg, o, choice, base = 0) {
  const planned = {
    ...o,
    ...choice
  };
  const order2 = recomputeOrder(dims(cfg, o).L, planned);
  return {
    ...choice,
    slots: order2.slots,
    recomputed: order2.recomputed,
    arenaBytes: planMemory(planBuffers(cfg, planned).regions, {
      base
    }).bytes,
    flops: stepFlops(cfg, o, choice),
    defaultFlops: stepFlops(cfg, o, {
      keep: NONE
    })
  };
}
function largest(lo, hi, fits) {
  if (hi < lo || !fits(lo)) return void 0;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
function chooseSchedule(cfg, o, budget, base = 0) {
  const L = dims(cfg, o).L, given = givenInputs(o);
  const at = (inputs, keep = NONE) => costOf(cfg, o, {
    ...inputs,
    keep
  }, base);
  const first = at(given);
  if (first.arenaBytes > budget) {
    if (given.savedInputEvery !== void 0 || given.savedInputs !== void 0) return void 0;
    const n = largest(2, L - 1, (n2) => at({
      savedInputs: n2
    }).arenaBytes <= budget);
    return n === void 0 ? void 0 : at({
      savedInputs: n
    });
  }
  if (first.slots < L || (given.savedInputEvery ?? 1) !== 1) return first;
  const fit = (keep) => largest(0, L, (n) => at(given, keep(n)).arenaBytes <= budget) ?? 0;
  const mlp = fit((n) => ({
    mlp: n,
    attention: 0
  }));
  const attention = mlp === L ? fit((n) => ({
    mlp: L,
    attention: n
  })) : 0;
  return at(given, {
    mlp,
    attention
  });
}
function smallestSchedule(cfg, o, base = 0) {
  const given = givenInputs(o);
  if (given.savedInputEvery !== void 0 || given.savedInputs !== void 0) {
    return costOf(cfg, o, {
      ...given,
      keep: NONE
    }, base);
  }
  return costOf(cfg, o, {
    savedInputs: Math.min(2, dims(cfg, o).L),
    keep: NONE
  }, base);
}
function targetSchedule(cfg, o, target, base = 0) {
  const fits = chooseSchedule(cfg, o, target, base);
  if (fits) return fits;
  const given = givenInputs(o);
  if (given.savedInputEvery !== void 0 || given.savedInputs !== void 0) {
    return smallestSchedule(cfg, o, base);
  }
  if (o.spill) return costOf(cfg, o, {
    keep: NONE
  }, base);
  const L = dims(cfg, o).L;
  let n = Math.min(2, L);
  while (n < L && recomputedLayers(L, n) > L) n++;
  return costOf(cfg, o, {
    savedInputs: n,
    keep: NONE
  }, base);
}
function ordinal(n) {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : [
    "th",
    "st",
    "nd",
    "rd"
  ][n % 10] ?? "th"}`;
}
function describeSchedule(s, L, threads = 1) {
  const layers = (n) => n === 0 ? "none" : n === L ? `all ${L}` : n === 1 ? `layer ${L - 1}` : `layers ${L - n}\u2013${L - 1}`;
  const every = s.savedInputEvery ?? 1;
  const recomputed = `${s.recomputed} layer forwards recomputed`;
  const inputs = every > 1 ? `the input of every ${ordinal(every)} layer saved (${s.slots} slots; ${recomputed})` : s.slots < L ? `${s.slots} of ${L} layer inputs saved (${recomputed})` : "every layer's input saved";
  const ratio = s.defaultFlops / s.flops;
  return `${inputs}; MLP gate/up kept: ${layers(s.keep.mlp)}; attention kept: ${layers(s.keep.attention)}; step \u2248 ${(s.flops / 1e9).toFixed(0)} GFLOP (${ratio.toFixed(2)}\xD7 the speed of every input saved), \u2248 ${predictedSeconds(s.flops, threads).toFixed(1)} s at ${GFLOPS_PER_THREAD} GFLOP/s per thread`;
}
function scheduled(cfg, o, budget, target) {
  if (!schedulable(o)) return o;
  let s;
  if (budget !== void 0) s = chooseSchedule(cfg, o, budget) ?? smallestSchedule(cfg, o);
  else if (target !== void 0) s = targetSchedule(cfg, o, target);
  else return o;
  return {
    ...o,
    savedInputEvery: s.savedInputEvery,
    savedInputs: s.savedInputs,
    keep: s.keep
  };
}
function scheduleOf(cfg, o) {
  return costOf(cfg, o, {
    ...givenInputs(o),
    keep: o.keep ?? NONE
  });
}

// src/engine/spill.ts
function spillLayout(slots, T, d, lora, moments) {
  const inputBytes = T * d * 4, layerBytes = lora.layerElements * 4, all = lora.totalElements * 4;
  const params = slots * inputBytes;
  const m = moments ? params + all : 0, v = moments ? m + all : 0;
  return {
    inputs: 0,
    inputBytes,
    params,
    m,
    v,
    layerBytes,
    bytes: params + (moments ? 3 : 1) * all
  };
}
var NAMES = {
  params: "adapter",
  m: "first moment",
  v: "second moment"
};
function label(part, index) {
  if (part === "input") return `saved input ${index}`;
  return part === "reservation" ? "its reservation" : `layer ${index}'s ${NAMES[part]}`;
}
function planSpill(cfg, o) {
  if (!o.spill || o.mode !== "train" || !o.lora) return void 0;
  const D = dims(cfg, o);
  return spillLayout(recomputeOrder(D.L, o).slots, D.T, D.d, o.lora, o.optimizer === "adamw");
}
function describeSpill(s) {
  const mb = (b) => `${(b / 1e6).toFixed(1)} MB`;
  const inputs = s.params / s.inputBytes, adapter = (s.m || s.bytes) - s.params;
  return `${mb(s.bytes)} in a file in the run folder: ${inputs} saved layer inputs ${mb(s.params)}, the adapter ${mb(adapter)}${s.m ? `, AdamW's moments ${mb(2 * adapter)}` : ""}`;
}
var Spill = class {
  file;
  layout;
  #x;
  #decoded;
  #params;
  #m;
  #v;
  /** The layer whose adapter `lora.params` holds now (−1: none). */
  #resident = -1;
  constructor(file, layout, memory, at) {
    this.file = file;
    this.layout = layout;
    const view = (ptr, n) => new Uint8Array(memory, ptr, n);
    this.#x = view(at.x, layout.inputBytes);
    this.#decoded = view(at.decoded, layout.inputBytes);
    this.#params = view(at.params, layout.layerBytes);
    if (at.m) this.#m = view(at.m, layout.layerBytes);
    if (at.v) this.#v = view(at.v, layout.layerBytes);
  }
  // what is read or written is named only for an error: a label built per call would be garbage per layer
  #read(position, into, part, index) {
    const got = this.file.read(position, into);
    if (got !== into.length) {
      throw new Error(`spill: read ${got} of ${into.length} bytes of ${label(part, index)} at byte ${position}`);
    }
  }
  #write(position, data, part, index) {
    const put = this.file.write(position, data);
    if (put !== data.length) {
      throw new Error(`spill: wrote ${put} of ${data.length} bytes of ${label(part, index)} at byte ${position}`);
    }
  }
  #input(slot) {
    return this.layout.inputs + slot * this.layout.inputBytes;
  }
  /**
   * Writes the whole file once (zeros, through the arena's layer of adapter, before it is filled), so that a
   * disk without room for it fails here, before the first step, naming the file.
   */
  reserve() {
    this.#params.fill(0);
    for (let at = 0; at < this.layout.bytes; at += this.#params.length) {
      const n = Math.min(this.#params.length, this.layout.bytes - at);
      this.#write(at, n === this.#params.length ? this.#params : this.#params.subarray(0, n), "reservation", 0);
    }
    this.#resident = -1;
  }
  /** Saves the residual stream as saved input `slot`. */
  saveInput(slot) {
    this.#write(this.#input(slot), this.#x, "input", slot);
  }
  /** Reads saved input `slot` back into the residual stream. */
  restoreInput(slot) {
    this.#read(this.#input(slot), this.#x, "input", slot);
  }
  /** Reads saved input `slot` into the read-back buffer. */
  readInput(slot) {
    this.#read(this.#input(slot), this.#decoded, "input", slot);
  }
  /** Makes the arena's one layer of adapter hold layer `l`'s. */
  loadAdapter(l) {
    if (this.#resident === l) return;
    this.#read(this.layout.params + l * this.layout.layerBytes, this.#params, "params", l);
    this.#resident = l;
  }
  /** Reads layer `l`'s AdamW moments into the arena's one layer of them. */
  loadMoments(l) {
    this.loadMoment("m", l);
    this.loadMoment("v", l);
  }
  /** Reads layer `l`'s first (`m`) or second (`v`) AdamW moment alone (saving walks one after the other). */
  loadMoment(which, l) {
    const into = which === "m" ? this.#m : this.#v;
    if (into) {
      this.#read(this.layout[which] + l * this.layout.layerBytes, into, which, l);
    }
  }
  /**
   * Writes the arena's layer of adapter (and moments) as layer `l`'s, which it then holds: after the layer's
   * update, or to fill the spill before the first step.
   */
  storeLayer(l) {
    this.store("params", l);
    this.store("m", l);
    this.store("v", l);
  }
  /**
   * Writes the arena's layer of one part (the adapter, a moment; absent moments are nothing) as layer `l`'s:
   * a resume fills the spill a tensor at a time, as the training state's file holds them.
   */
  store(part, l) {
    const data = part === "params" ? this.#params : part === "m" ? this.#m : this.#v;
    if (data) {
      this.#write(this.layout[part] + l * this.layout.layerBytes, data, part, l);
    }
    if (part === "params") this.#resident = l;
  }
};

// src/engine/engine.ts
function enginePlanOptions(pack, options, gemmScratch) {
  const { spillFile, ...planned } = options;
  return {
    ...planned,
    spill: spillFile !== void 0,
    format: pack.header.format,
    bf16Scales: pack.header.bf16Scales,
    mlpChunk: pack.layout.mlpChunk,
    gemmScratch
  };
}
function scheduledOptions(pack, options, gemmScratch) {
  const o = scheduled(pack.config, enginePlanOptions(pack, options, gemmScratch), options.budget, options.target);
  return o.savedInputEvery === options.savedInputEvery && o.savedInputs === options.savedInputs && o.keep === options.keep ? options : {
    ...options,
    savedInputEvery: o.savedInputEvery,
    savedInputs: o.savedInputs,
    keep: o.keep
  };
}
function addressHint(o) {
  return o.mode === "generate" ? `it holds ${o.maxPositions ?? o.seqLen} positions: a shorter prompt or fewer maxTokens (--max-tokens)` : `it holds ${o.seqLen} positions, for the longest sequence once cut to seqLen: cut them shorter (seqLen, --seq-len)`;
}
var Engine = class _Engine {
  cfg;
  pack;
  kernels;
  k;
  arena;
  gemm;
  D;
  lora;
  options;
  /** f32 and i32 views of the whole linear memory (the memory never grows after creation). */
  F;
  I32;
  /** Byte pointers of the plan's buffers (one the plan lacks throws when read). */
  p;
  /** Where each block's tensors go, every layer's (`blocks.ts`). */
  blocks;
  /** The frozen weights, streamed into their slots (or resident). */
  weights;
  /** Which layer inputs a training step saves and how its backward recomputes the rest. */
  recompute;
  /** Where the saved inputs, the adapter and its moments live when spilled (the arena holds one layer's). */
  spill;
  /** Per-layer descriptors; in streaming mode every layer shares the slot's frozen weights. */
  #linears = [];
  #rope;
  constructor(pack, kernels, arena, D, options) {
    this.cfg = pack.config;
    this.pack = pack;
    this.kernels = kernels;
    this.k = kernelEntries(kernels, options.profile);
    this.arena = arena;
    this.D = D;
    this.lora = options.lora;
    this.options = options;
    this.recompute = recomputeOrder(D.L, options);
    this.F = new Float32Array(kernels.memory.buffer);
    this.I32 = new Int32Array(kernels.memory.buffer);
    const planned = planBuffers(pack.config, enginePlanOptions(pack, options, arena.region("gemm.scratch").bytes));
    this.p = bufferPointers(arena.plan, planned.views);
    this.blocks = resolveBlocks(this.p, D, {
      lora: !!options.lora,
      keep: options.keep,
      cache: arena.has("kv.k")
    });
    this.gemm = new Gemm(kernels.exports, this.p["gemm.scratch"], {
      pool: kernels.pool,
      profile: options.profile
    });
    this.weights = new WeightStream(pack, kernels.memory.buffer, this.p, D, options.resident ?? false, {
      mlp: options.resident ? 0 : arena.region("weights.mlp").bytes / 2,
      vocab: arena.region("weights.vocab").bytes / 2
    });
    if (options.spillFile) {
      const layout = planSpill(pack.config, enginePlanOptions(pack, options, 0));
      const adamw = options.optimizer === "adamw";
      this.spill = new Spill(options.spillFile, layout, kernels.memory.buffer, {
        x: this.p["act.x"],
        decoded: this.p["saved.decoded"],
        params: this.p["lora.params"],
        m: adamw ? this.p["opt.m"] : 0,
        v: adamw ? this.p["opt.v"] : 0
      });
    }
    const attention = this.weights.attention;
    for (let l = 0; l < D.L; l++) {
      const refs = {};
      for (const n of LINEARS) {
        const pair = this.lora ? findPair(this.lora, l, n) : void 0;
        const first = this.spill ? l * this.lora.layerElements * 4 : 0;
        const base = pair ? this.p["lora.params"] - first : 0;
        refs[n] = {
          w: attention[n],
          pair,
          a: pair ? f32Ref(base + pair.a * 4, pair.inDim) : void 0,
          b: pair ? f32Ref(base + pair.b * 4, D.r) : void 0
        };
      }
      this.#linears.push(refs);
    }
    const cos = this.p["rope"];
    this.#rope = {
      cos,
      sin: cos + D.P * (D.hd / 2) * 4
    };
    this.#fillRope();
  }
  /** Plans the arena for `pack` and `options`, loads the kernels, lays out memory once. */
  static async create(pack, options) {
    checkPack(pack, "Engine.create");
    if (![
      "eval",
      "generate",
      "train"
    ].includes(options?.mode)) {
      throw new TypeError(`Engine.create: mode must be "eval", "generate" or "train", got ${options?.mode}`);
    }
    const D = dims(pack.config, enginePlanOptions(pack, options, 0));
    let resolved = options;
    const { kernels, arena } = await startKernels((scratch) => {
      resolved = scheduledOptions(pack, options, scratch);
      const { regions } = planBuffers(pack.config, enginePlanOptions(pack, resolved, scratch));
      checkAddressable(planMemory(regions), addressHint(options));
      return regions;
    }, options);
    try {
      const e = new _Engine(pack, kernels, arena, D, resolved);
      await e.weights.readResident(e.arena.f32("weights.norm"));
      return e;
    } catch (err) {
      kernels.pool?.close();
      throw err;
    }
  }
  /**
   * The memory plan {@linkcode Engine.create} lays out for `options` (with all `threads` granted), without
   * allocating it: what a caller shows, or refuses against a budget, first. Reads the kernels' scratch size
   * and where the arena starts from the wasm bytes, instantiating nothing (`kernelConstants`).
   */
  static async plan(pack, options) {
    checkPack(pack, "Engine.plan");
    const kernels = await kernelConstants({
      ...options.kernels,
      variant: options.variant
    });
    const scratch = kernels.gemmScratchBytes * (options.threads ?? 1);
    const base = Math.ceil(kernels.heapBase / 64) * 64;
    const resolved = scheduledOptions(pack, options, scratch);
    return planMemory(planBuffers(pack.config, enginePlanOptions(pack, resolved, scratch)).regions, {
      base
    });
  }
  /**
   * The plan options of an engine over `pack` with `options` (all `threads` granted), before the budget's
   * schedule: what `schedule.ts` chooses from.
   */
  static async planOptions(pack, options) {
    const kernels = await kernelConstants({
      ...options.kernels,
      variant: options.variant
    });
    return enginePlanOptions(pack, options, kernels.gemmScratchBytes * (options.threads ?? 1));
  }
  /** Stops the kernel workers, if any (live workers keep the process running). Memory views stay valid. */
  close() {
    this.kernels.pool?.close();
  }
  /** The schedule this engine runs (which inputs and forward tensors are kept), with its predicted cost. */
  schedule() {
    return scheduleOf(this.cfg, enginePlanOptions(this.pack, this.options, this.arena.region("gemm.scratch").bytes));
  }
  /**
   * Makes layer `l`'s weights and (spilled) adapter the ones in use, before the layer runs; `through`: layers
   * l + 1…through are loaded right after, in order (a remote pack reads them as one response).
   */
  async loadLayer(l, through = l) {
    await this.weights.loadLayer(l, through);
    this.spill?.loadAdapter(l);
  }
  /** Descriptors of layer `l`'s linears. */
  refs(l) {
    return this.#linears[l];
  }
  /** The MLP chunks of a layer (descriptors of the chunk loaded last). */
  get chunks() {
    return this.weights.chunks;
  }
  /** Absolute pointer of a per-layer vector (bias or norm weight) of the layer in use. */
  vec(name) {
    return this.weights.vec(name);
  }
  /** cos/sin of (position · θ_i) in f64, rounded to f32, for every planned position. */
  #fillRope() {
    const { hd, P } = this.D;
    const half = hd / 2;
    const cos = this.p["rope"] / 4, sin = cos + P * half;
    for (let i = 0; i < half; i++) {
      const invFreq = 1 / Math.pow(this.cfg.ropeTheta, 2 * i / hd);
      for (let pos = 0; pos < P; pos++) {
        this.F[cos + pos * half + i] = Math.cos(pos * invFreq);
        this.F[sin + pos * half + i] = Math.sin(pos * invFreq);
      }
    }
  }
  /** Pointers of the rope tables. */
  rope() {
    return this.#rope;
  }
  /** Linear memory size now (constant after creation). */
  memoryBytes() {
    return this.kernels.memory.buffer.byteLength;
  }
};

// src/engine/saved_inputs.ts
function saveInput(e, slot, T) {
  if (e.spill) return e.spill.saveInput(slot);
  const n = T * e.D.d, x = e.p["act.x"], at = e.p["saved"];
  if (e.options.savedInputDtype === "bf16") e.k.f32_to_bf16(at + slot * n * 2, x, n);
  else e.F.copyWithin((at >>> 2) + slot * n, x >>> 2, (x >>> 2) + n);
}
function restoreInput(e, slot, T) {
  if (e.spill) return e.spill.restoreInput(slot);
  const n = T * e.D.d, at = e.p["saved"], x = e.p["act.x"];
  if (e.options.savedInputDtype === "bf16") {
    e.k.decode_row(DTYPE.bf16, at + slot * n * 2, n, 0, 0, 0, 0, n, x);
  } else e.F.copyWithin(x >>> 2, (at >>> 2) + slot * n, (at >>> 2) + slot * n + n);
}
function savedInput(e, slot, T) {
  if (e.spill) {
    e.spill.readInput(slot);
    return e.p["saved.decoded"];
  }
  const n = T * e.D.d, at = e.p["saved"];
  if (e.options.savedInputDtype !== "bf16") return at + slot * n * 4;
  const dst = e.p["saved.decoded"];
  e.k.decode_row(DTYPE.bf16, at + slot * n * 2, n, 0, 0, 0, 0, n, dst);
  return dst;
}

// src/engine/forward.ts
async function embed(e, ids, T, row0 = 0) {
  await e.weights.prefetchRows(ids, T, false);
  await embedGathered(e, ids, T, row0);
}
async function embedGathered(e, ids, T, row0) {
  const { d, V } = e.D, x = e.p["act.x"];
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < V)) {
      throw new Error(`token id ${id} at position ${t} is outside the vocabulary (${V})`);
    }
    const ref = e.weights.gatheredRow(id, false) ?? await e.weights.readRow(id, false);
    e.k.decode_row(dtypeCode(ref), ref.ptr, d, ref.scales, ref.biases, 0, 0, d, x + (row0 + t) * d * 4);
  }
}
function linear(e, T, x, ldx, refs, out, ldo, nOut, nIn, bias, accumulate, h) {
  if (bias) {
    for (let t = 0; t < T; t++) e.F.copyWithin((out >>> 2) + t * ldo, bias >>> 2, (bias >>> 2) + nOut);
  }
  e.gemm.nt(T, nOut, nIn, x, ldx, refs.w, out, ldo, 1, accumulate || bias !== 0);
  if (refs.pair) {
    const r = e.D.r;
    e.gemm.nt(T, r, nIn, x, ldx, refs.a, h, r, 1, false);
    e.gemm.nt(T, nOut, r, h, r, refs.b, out, ldo, e.lora.scale, true);
  }
}
async function layerForward(e, l, T, pos0 = 0) {
  attentionForward(e, l, T, pos0, e.blocks.kv[l], e.blocks.attention);
  await mlpForward(e, l, T, e.blocks.mlp);
}
var kRef = scratchRef();
var vRef = scratchRef();
function headRef(ref, base, g, hd, kvd) {
  ref.ptr = base + g * hd * 4;
  ref.ld = kvd;
  return ref;
}
function attentionForward(e, l, T, pos0, kv, to) {
  const { d, H, KV, hd, qd, kvd } = e.D;
  const { k, gemm } = e;
  e.weights.useLayer(l);
  const refs = e.refs(l);
  const { x, xn, q, att, rstd } = to;
  const kNew = kv.k + pos0 * kvd * 4, vNew = kv.v + pos0 * kvd * 4;
  k.rmsnorm_forward(xn, rstd, x, e.vec("inputNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
  linear(e, T, xn, d, refs.q_proj, q, qd, qd, d, e.vec("qBias"), false, to.h[0]);
  linear(e, T, xn, d, refs.k_proj, kNew, kvd, kvd, d, e.vec("kBias"), false, to.h[1]);
  linear(e, T, xn, d, refs.v_proj, vNew, kvd, kvd, d, e.vec("vBias"), false, to.h[2]);
  const { cos, sin } = e.rope();
  k.rope_forward(q, cos, sin, H, hd, qd, pos0, 0, T);
  k.rope_forward(kNew, cos, sin, KV, hd, kvd, pos0, 0, T);
  const nk = pos0 + T;
  const scale = 1 / Math.sqrt(hd), rep = H / KV;
  for (let h = 0; h < H; h++) {
    const g = Math.floor(h / rep), s = to.probs + h * to.probsStride;
    gemm.nt(T, nk, hd, q + h * hd * 4, qd, headRef(kRef, kv.k, g, hd, kvd), s, nk, 1, false);
    k.softmax_causal_forward(s, s, nk, nk, scale, pos0, 0, T);
    gemm.nn(T, hd, nk, s, nk, headRef(vRef, kv.v, g, hd, kvd), att + h * hd * 4, qd, 1, false);
  }
  linear(e, T, att, qd, refs.o_proj, x, d, d, qd, 0, true, to.h[3]);
}
async function mlpForward(e, l, T, to) {
  e.weights.useLayer(l);
  mlpInputs(e, T, to);
  mlpAdapterInputs(e, l, T, to);
  for (let i = 0; i < e.chunks.length; i++) {
    await e.weights.loadChunk(l, i);
    mlpChunkDown(e, l, i, T, to);
  }
  mlpAdapterDown(e, l, T, to);
}
function mlpInputs(e, T, to) {
  const d = e.D.d;
  e.k.rmsnorm_forward(to.xn, to.rstd, to.x, e.vec("postNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
}
function mlpChunkDown(e, l, i, T, to) {
  const c = e.chunks[i];
  mlpChunkForward(e, l, i, T, to);
  e.gemm.nt(T, e.D.d, c.c1 - c.c0, to.m + c.c0 * to.mStep, to.ldm, c.down, to.x, e.D.d, 1, true);
}
function mlpAdapterDown(e, l, T, to) {
  const dp = e.refs(l).down_proj, { d, r } = e.D;
  if (dp.pair) e.gemm.nt(T, d, r, to.hd, r, dp.b, to.x, d, e.lora.scale, true);
}
function mlpAdapterInputs(e, l, T, to) {
  const { d, r } = e.D, refs = e.refs(l);
  if (refs.gate_proj.pair) e.gemm.nt(T, r, d, to.xn, d, refs.gate_proj.a, to.hg, r, 1, false);
  if (refs.up_proj.pair) e.gemm.nt(T, r, d, to.xn, d, refs.up_proj.a, to.hu, r, 1, false);
}
var blockRef = scratchRef();
function f32At(ref, ptr, ld) {
  ref.ptr = ptr;
  ref.ld = ld;
  return ref;
}
function mlpChunkForward(e, l, i, T, to) {
  mlpChunkGateUp(e, l, i, T, to);
  mlpChunkActivation(e, l, i, T, to);
}
function mlpChunkGateUp(e, l, i, T, to) {
  const { d, r } = e.D, { gemm } = e;
  const refs = e.refs(l), s = e.lora?.scale ?? 0;
  const c = e.chunks[i], n = c.c1 - c.c0, ld = to.ld;
  const g = to.g + c.c0 * to.step, u = to.u + c.c0 * to.step;
  const gp = refs.gate_proj, up = refs.up_proj;
  gemm.nt(T, n, d, to.xn, d, c.gate, g, ld, 1, false);
  if (gp.pair) gemm.nt(T, n, r, to.hg, r, f32At(blockRef, gp.b.ptr + c.c0 * r * 4, r), g, ld, s, true);
  gemm.nt(T, n, d, to.xn, d, c.up, u, ld, 1, false);
  if (up.pair) gemm.nt(T, n, r, to.hu, r, f32At(blockRef, up.b.ptr + c.c0 * r * 4, r), u, ld, s, true);
}
function mlpChunkActivation(e, l, i, T, to) {
  const r = e.D.r, { k, gemm } = e, dp = e.refs(l).down_proj;
  const c = e.chunks[i], n = c.c1 - c.c0, ld = to.ld, ldm = to.ldm;
  const g = to.g + c.c0 * to.step, u = to.u + c.c0 * to.step, m = to.m + c.c0 * to.mStep;
  k.swiglu_forward(m, g, u, n, ldm, ld, ld, 0, T);
  if (dp.pair) gemm.nt(T, r, n, m, ldm, f32At(blockRef, dp.a.ptr + c.c0 * 4, dp.a.ld), to.hd, r, 1, i > 0);
}
function finalNorm(e, T, slot = e.blocks.batch[0]) {
  const d = e.D.d, p = e.p;
  e.k.rmsnorm_forward(slot.xn, p["act.rstd"], slot.x, p["weights.norm"], d, d, d, e.cfg.rmsNormEps, 0, T);
}
async function forward(e, ids, T) {
  await embed(e, ids, T);
  for (let l = 0; l < e.D.L; l++) {
    await e.loadLayer(l, e.D.L - 1);
    await layerForward(e, l, T);
  }
  finalNorm(e, T);
}
async function forwardBatch(e, n, ids, lengths, tokens2, count) {
  const { L, T } = e.D, slots = e.blocks.batch;
  await e.weights.prefetchRows(tokens2, count, false);
  for (let s = 0; s < n; s++) await embedGathered(e, ids[s], lengths[s], s * T);
  for (let l = 0; l < L; l++) {
    await e.loadLayer(l, L - 1);
    for (let s = 0; s < n; s++) attentionForward(e, l, lengths[s], 0, e.blocks.kv[l], slots[s].attention);
    for (let s = 0; s < n; s++) {
      mlpInputs(e, lengths[s], slots[s].mlp);
      mlpAdapterInputs(e, l, lengths[s], slots[s].mlp);
    }
    for (let i = 0; i < e.chunks.length; i++) {
      await e.weights.loadChunk(l, i);
      for (let s = 0; s < n; s++) mlpChunkDown(e, l, i, lengths[s], slots[s].mlp);
    }
    for (let s = 0; s < n; s++) mlpAdapterDown(e, l, lengths[s], slots[s].mlp);
  }
  for (let s = 0; s < n; s++) finalNorm(e, lengths[s], slots[s]);
}

// src/engine/backward.ts
var Backward = class {
  e;
  sink;
  /** Whether this is the MeBP baseline (see the constructor). */
  mebp;
  #ref = scratchRef();
  #ref2 = scratchRef();
  #kRef = scratchRef();
  #vRef = scratchRef();
  /** The backward's MLP working buffers (the forward's, but for the SwiGLU output). */
  #recomputedMlp;
  /**
   * MeBP's kept tensors: every head's probabilities, each adapter's h (slots 0–3 of `mebp.h` attention's,
   * 4–6 the MLP's), the whole [T, I] gate, up and SwiGLU output.
   */
  #mebpAttention;
  #mebpMlp;
  /**
   * With `mebp`, the layer's forward is recomputed once keeping what an autograd engine keeps (every head's
   * probabilities, each adapter's x·Aᵀ, the full [T, intermediate] gate/up/activation tensors, the MLP input)
   * and the backward reads them instead of recomputing (the MeBP baseline). The arithmetic is the same, so the
   * gradients are bitwise equal to MeSP's; memory and time differ.
   */
  constructor(e, sink, options = {}) {
    this.e = e;
    this.sink = sink;
    this.mebp = options.mebp ?? false;
    if (this.mebp && !e.arena.has("mebp.P")) throw new Error("MeBP needs a plan made with method mebp");
    const { p, D } = e;
    this.#recomputedMlp = {
      ...e.blocks.mlp,
      m: p["mlp.m"]
    };
    if (this.mebp) {
      const h = (i) => p["mebp.h"] + i * D.T * D.r * 4;
      this.#mebpAttention = {
        ...e.blocks.attention,
        probs: p["mebp.P"],
        probsStride: D.T * D.T * 4,
        h: [
          h(0),
          h(1),
          h(2),
          h(3)
        ]
      };
      this.#mebpMlp = {
        ...e.blocks.mlp,
        hg: h(4),
        hu: h(5),
        hd: h(6),
        g: p["mebp.g"],
        u: p["mebp.u"],
        ld: D.I,
        step: 4,
        m: p["mebp.m"],
        ldm: D.I,
        mStep: 4
      };
    }
  }
  /** Byte pointer of the gradient of element offset `off` (pair.a or pair.b) of layer `l`. */
  grad(l, off) {
    const le = this.sink.perLayer ? l * this.e.lora.layerElements : 0;
    return this.sink.ptr + (off - le) * 4;
  }
  /** A scratch f32 descriptor (pointer, leading dimension). */
  #f32(ptr, ld, second = false) {
    return f32At(second ? this.#ref2 : this.#ref, ptr, ld);
  }
  /**
   * Layer `l`, given dL/d(output) in `grad.x` and its input in saved-input slot `slot`: recomputes the
   * forward (but what the schedule kept, `kept.ts`), writes every LoRA gradient of the layer and leaves
   * dL/d(input) in `grad.x`.
   */
  async layerBackward(l, T, slot) {
    const e = this.e, { d } = e.D, p = e.p, b = e.blocks, kv = b.kv[l];
    const keptAtt = b.keptAttention[l];
    if (this.mebp || !keptAtt) restoreInput(e, slot, T);
    if (this.mebp) {
      const att2 = this.#mebpAttention, mlp2 = this.#mebpMlp;
      attentionForward(e, l, T, 0, kv, att2);
      e.F.copyWithin(p["mebp.x2"] >>> 2, p["act.x"] >>> 2, (p["act.x"] >>> 2) + T * d);
      await mlpForward(e, l, T, mlp2);
      await this.#mlpBackward(l, T, mlp2, p["mebp.x2"], "none");
      this.#attentionBackward(l, T, slot, kv, att2, false);
      return;
    }
    const att = keptAtt?.buffers ?? b.attention;
    if (!keptAtt) attentionForward(e, l, T, 0, kv, att);
    const mlp = b.keptMlp[l];
    const x2 = keptAtt?.x2 ?? p["act.x"];
    await this.#mlpBackward(l, T, mlp ?? this.#recomputedMlp, x2, mlp ? "activation" : "all");
    this.#attentionBackward(l, T, slot, keptAtt?.kv ?? kv, att, true);
  }
  /**
   * The MLP block, chunked over the intermediate dimension. On entry `grad.x` is dL/d(output), `x2` the
   * block's input and `t` its tensors (what `recompute` says is recomputed here, chunk by chunk); on exit
   * `grad.x` holds dL/d(x2) (the residual plus the path through the MLP).
   */
  async #mlpBackward(l, T, t, x2, recompute) {
    const e = this.e, { d, r } = e.D, p = e.p, { k, gemm } = e;
    const refs = e.refs(l), s = e.lora?.scale ?? 0, acc = this.sink.accumulate;
    const G = p["grad.x"], dxn = p["grad.xn"], { xn, hg, hu, hd, ld, ldm } = t;
    const ghg = p["lora.gh.gate"], ghu = p["lora.gh.up"], ghd = p["lora.gh.down"];
    const gp = refs.gate_proj, up = refs.up_proj, dp = refs.down_proj;
    if (recompute !== "none") {
      k.rmsnorm_forward(xn, t.rstd, x2, e.vec("postNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
      mlpAdapterInputs(e, l, T, t);
    }
    if (dp.pair) gemm.nn(T, r, d, G, d, dp.b, ghd, r, s, false);
    for (let i = 0; i < e.chunks.length; i++) {
      const c = e.chunks[i], c0 = c.c0, n = c.c1 - c0, first = i === 0;
      await e.weights.loadChunk(l, i);
      const g = t.g + c0 * t.step, u = t.u + c0 * t.step, m = t.m + c0 * t.mStep;
      if (recompute === "all") mlpChunkForward(e, l, i, T, t);
      else if (recompute === "activation") mlpChunkActivation(e, l, i, T, t);
      if (dp.pair) {
        gemm.tn(r, n, T, ghd, r, this.#f32(m, ldm, true), this.grad(l, dp.pair.a) + c0 * 4, dp.pair.inDim, 1, acc);
      }
      gemm.nn(T, n, d, G, d, c.down, m, ldm, 1, false);
      if (dp.pair) gemm.nn(T, n, r, ghd, r, this.#f32(dp.a.ptr + c0 * 4, dp.a.ld), m, ldm, 1, true);
      k.swiglu_backward(g, u, m, g, u, n, ld, ld, ldm, ld, ld, 0, T);
      gemm.nn(T, d, n, g, ld, c.gate, dxn, d, 1, !first);
      gemm.nn(T, d, n, u, ld, c.up, dxn, d, 1, true);
      if (gp.pair) this.#chunkBGrads(l, T, gp.pair, gp, c0, n, g, ld, hg, ghg, first);
      if (up.pair) this.#chunkBGrads(l, T, up.pair, up, c0, n, u, ld, hu, ghu, first);
    }
    if (dp.pair) gemm.tn(d, r, T, G, d, this.#f32(hd, r), this.grad(l, dp.pair.b), r, s, acc);
    this.#finishA(l, T, gp, ghg, xn, dxn);
    this.#finishA(l, T, up, ghu, xn, dxn);
    k.rmsnorm_backward(G, dxn, x2, e.vec("postNorm"), t.rstd, d, d, d, d, 1, 0, T);
  }
  /** After the chunks of gate/up: dA = ghᵀ·xn and dxn += gh·A. */
  #finishA(l, T, refs, gh, xn, dxn) {
    if (!refs.pair) return;
    const e = this.e, { d, r } = e.D;
    e.gemm.tn(r, d, T, gh, r, this.#f32(xn, d), this.grad(l, refs.pair.a), d, 1, this.sink.accumulate);
    e.gemm.nn(T, d, r, gh, r, refs.a, dxn, d, 1, true);
  }
  /** For a chunk of gate/up rows: dB[c] = s·dYᵀ·h, gh += s·dY·B[c]. */
  #chunkBGrads(l, T, pair, refs, c0, n, dY, ld, h, gh, first) {
    const e = this.e, r = e.D.r, s = e.lora.scale, acc = this.sink.accumulate;
    e.gemm.tn(n, r, T, dY, ld, this.#f32(h, r), this.grad(l, pair.b) + c0 * r * 4, r, s, acc);
    e.gemm.nn(T, r, n, dY, ld, this.#f32(refs.b.ptr + c0 * r * 4, r), gh, r, s, !first);
  }
  /**
   * The attention block. On entry `grad.x` is dL/d(x2), `t` (q, attention output, normed input, 1/rms) and
   * keys/values `kv` hold the forward, `t` its probabilities and adapter products too (recomputed here when
   * `recompute`); on exit `grad.x` is dL/d(x_l).
   */
  #attentionBackward(l, T, slot, kv, t, recompute) {
    const e = this.e, { d, H, KV, hd, qd, kvd } = e.D, p = e.p, { k, gemm } = e;
    const refs = e.refs(l);
    const G = p["grad.x"], att = t.att, datt = p["grad.att"];
    gemm.nn(T, qd, d, G, d, refs.o_proj.w, datt, qd, 1, false);
    this.#linearLora(l, T, refs.o_proj, att, qd, G, d, datt, qd, t.h[3], recompute);
    const q = t.q, dq = p["grad.q"], dk = p["grad.k"], dv = p["grad.v"];
    const dS = p["grad.scores"];
    const scale = 1 / Math.sqrt(hd), rep = H / KV;
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / rep), first = h % rep === 0;
      const qh = q + h * hd * 4, dOh = datt + h * hd * 4, S = t.probs + h * t.probsStride;
      const kh = headRef(this.#kRef, kv.k, g, hd, kvd), vh = headRef(this.#vRef, kv.v, g, hd, kvd);
      if (recompute) {
        gemm.nt(T, T, hd, qh, qd, kh, S, T, 1, false);
        k.softmax_causal_forward(S, S, T, T, scale, 0, 0, T);
      }
      gemm.tn(T, hd, T, S, T, this.#f32(dOh, qd), dv + g * hd * 4, kvd, 1, !first);
      gemm.nt(T, T, hd, dOh, qd, vh, dS, T, 1, false);
      k.softmax_causal_backward(dS, S, dS, T, T, scale, 0, 0, T);
      gemm.nn(T, hd, T, dS, T, kh, dq + h * hd * 4, qd, 1, false);
      gemm.tn(T, hd, T, dS, T, this.#f32(qh, qd), dk + g * hd * 4, kvd, 1, !first);
    }
    const { cos, sin } = e.rope();
    k.rope_backward(dq, cos, sin, H, hd, qd, 0, 0, T);
    k.rope_backward(dk, cos, sin, KV, hd, kvd, 0, 0, T);
    const xl = savedInput(e, slot, T);
    const xn = t.xn, dxn = p["grad.xn"];
    if (xn === p["act.xn"]) {
      k.rmsnorm_forward(xn, t.rstd, xl, e.vec("inputNorm"), d, d, d, e.cfg.rmsNormEps, 0, T);
    }
    gemm.nn(T, d, qd, dq, qd, refs.q_proj.w, dxn, d, 1, false);
    gemm.nn(T, d, kvd, dk, kvd, refs.k_proj.w, dxn, d, 1, true);
    gemm.nn(T, d, kvd, dv, kvd, refs.v_proj.w, dxn, d, 1, true);
    this.#linearLora(l, T, refs.q_proj, xn, d, dq, qd, dxn, d, t.h[0], recompute);
    this.#linearLora(l, T, refs.k_proj, xn, d, dk, kvd, dxn, d, t.h[1], recompute);
    this.#linearLora(l, T, refs.v_proj, xn, d, dv, kvd, dxn, d, t.h[2], recompute);
    k.rmsnorm_backward(G, dxn, xl, e.vec("inputNorm"), t.rstd, d, d, d, d, 1, 0, T);
  }
  /**
   * LoRA part of a linear's backward, given its input x [T, nIn] and output gradient dY [T, nOut]:
   * h = x·Aᵀ (into `h`, recomputed when `recompute`, else kept there), dB = s·dYᵀ·h, gh = s·dY·B,
   * dA = ghᵀ·x, dx += gh·A.
   */
  #linearLora(l, T, refs, x, nIn, dY, nOut, dx, ldx, h, recompute) {
    const pair = refs.pair;
    if (!pair) return;
    const e = this.e, r = e.D.r, s = e.lora.scale, acc = this.sink.accumulate, { gemm } = e;
    const gh = e.p["lora.gh.attn"];
    if (recompute) gemm.nt(T, r, nIn, x, nIn, refs.a, h, r, 1, false);
    gemm.tn(nOut, r, T, dY, nOut, this.#f32(h, r), this.grad(l, pair.b), r, s, acc);
    gemm.nn(T, r, nOut, dY, nOut, refs.b, gh, r, s, false);
    gemm.tn(r, nIn, T, gh, r, this.#f32(x, nIn), this.grad(l, pair.a), nIn, 1, acc);
    gemm.nn(T, nIn, r, gh, r, refs.a, dx, ldx, 1, true);
  }
};

// src/engine/kept.ts
async function trainingLayerForward(e, l, T) {
  const b = e.blocks, kept2 = b.keptAttention[l], p = e.p;
  attentionForward(e, l, T, 0, kept2?.kv ?? b.kv[l], kept2?.buffers ?? b.attention);
  if (kept2) e.F.copyWithin(kept2.x2 >>> 2, p["act.x"] >>> 2, (p["act.x"] >>> 2) + T * e.D.d);
  await mlpForward(e, l, T, b.keptMlp[l] ?? b.mlp);
}

// src/engine/loss.ts
function lossRows(e) {
  return e.blocks.batch[0].loss;
}
var targetViews = /* @__PURE__ */ new WeakMap();
function lossTargets(e) {
  let v = targetViews.get(e);
  if (!v) {
    const at = e.p["loss.targets"] >>> 2;
    targetViews.set(e, v = e.I32.subarray(at, at + e.D.T));
  }
  return v;
}
function setTargets(e, ids, trained, T, r = lossRows(e)) {
  let n = 0;
  for (let t = 0; t < T; t++) {
    const ok = t + 1 < T && (trained ? trained[t + 1] !== 0 : true);
    e.I32[(r.targets >>> 2) + t] = ok ? ids[t + 1] : -1;
    if (ok) n++;
  }
  for (let t = 0; t < T; t++) {
    e.F[(r.weight >>> 2) + t] = e.I32[(r.targets >>> 2) + t] >= 0 && n ? 1 / n : 0;
  }
  return n;
}
function lossSum(e, T, r = lossRows(e)) {
  let sum = 0, count = 0;
  for (let t = 0; t < T; t++) {
    if (e.I32[(r.targets >>> 2) + t] < 0) continue;
    sum += e.F[(r.loss >>> 2) + t];
    count++;
  }
  return {
    sum,
    count
  };
}
function trainedFrom(e, r, T) {
  const at = r.targets >>> 2;
  let t = 0;
  while (t < T && e.I32[at + t] < 0) t++;
  return t;
}
function trainedTo(e, r, T) {
  const at = r.targets >>> 2;
  let t = T;
  while (t > 0 && e.I32[at + t - 1] < 0) t--;
  return t;
}
function chunkLogits(e, row0, row1, vc, xn = e.p["act.xn"]) {
  const logits = e.p["loss.logits"], { d, Vc } = e.D;
  e.gemm.run(OP.nt, row0, row1, 0, vc, vc, d, xn, d, e.weights.vocabRef, logits, Vc, 1, false);
  return logits;
}
async function lossForward(e, T) {
  await lossForwardSlots(e, 1, T, void 0);
}
async function lossForwardBatch(e, n, lengths) {
  await lossForwardSlots(e, n, 0, lengths);
}
async function lossForwardSlots(e, n, T, lengths) {
  const { Vc } = e.D, slots = e.blocks.batch;
  let any = false;
  for (let s = 0; s < n && !any; s++) {
    const r = slots[s].loss, Ts = lengths ? lengths[s] : T;
    any = trainedFrom(e, r, Ts) < trainedTo(e, r, Ts);
  }
  if (!any) return;
  for (let c = 0; c < e.weights.vocabChunks; c++) {
    const vc = await e.weights.loadVocabChunk(c);
    for (let s = 0; s < n; s++) {
      const r = slots[s].loss, Ts = lengths ? lengths[s] : T;
      const lo = trainedFrom(e, r, Ts), hi = trainedTo(e, r, Ts);
      if (lo >= hi) continue;
      const logits = chunkLogits(e, lo, hi, vc, slots[s].xn);
      e.k.ce_chunk_forward(logits, vc, Vc, c * Vc, r.targets, r.max, r.sum, r.tlogit, c === 0 ? 1 : 0, lo, hi);
    }
  }
  for (let s = 0; s < n; s++) {
    const r = slots[s].loss, Ts = lengths ? lengths[s] : T;
    const lo = trainedFrom(e, r, Ts), hi = trainedTo(e, r, Ts);
    if (lo < hi) e.k.ce_finish(r.loss, r.lse, r.max, r.sum, r.tlogit, lo, hi);
  }
}
async function lossForwardBackward(e, T) {
  const { d, Vc } = e.D, p = e.p;
  const r = lossRows(e), dxn = p["grad.xn"], lo = trainedFrom(e, r, T), hi = trainedTo(e, r, T);
  e.F.fill(0, dxn >>> 2, (dxn >>> 2) + lo * d);
  e.F.fill(0, (dxn >>> 2) + hi * d, (dxn >>> 2) + T * d);
  e.weights.expectRows(lossTargets(e), T, true);
  for (let c = 0; c < e.weights.vocabChunks; c++) {
    const vc = await e.weights.loadVocabChunk(c);
    const logits = chunkLogits(e, lo, hi, vc);
    const first = c === 0 ? 1 : 0;
    e.k.ce_chunk_fused(logits, vc, Vc, c * Vc, r.targets, r.max, r.sum, r.tlogit, r.weight, dxn, d, d, first, lo, hi);
    e.gemm.run(OP.nn, lo, hi, 0, d, d, vc, logits, Vc, e.weights.vocabRef, dxn, d, 1, c > 0);
  }
  e.k.ce_fused_finish(r.loss, r.lse, r.max, r.sum, r.tlogit, r.weight, dxn, d, d, lo, hi);
  const erow = p["loss.erow"];
  await e.weights.prefetchRows(lossTargets(e), T, true);
  for (let t = 0; t < T; t++) {
    const w = e.F[(r.weight >>> 2) + t];
    if (w === 0) continue;
    const id = e.I32[(r.targets >>> 2) + t];
    const ref = e.weights.gatheredRow(id, true) ?? await e.weights.readRow(id, true);
    e.k.decode_row(dtypeCode(ref), ref.ptr, d, ref.scales, ref.biases, 0, 0, d, erow);
    e.k.axpy(dxn + t * d * 4, -w, erow, d);
  }
  e.k.rmsnorm_backward(p["grad.x"], dxn, p["act.x"], p["weights.norm"], p["act.rstd"], d, d, d, d, 0, 0, T);
}

// src/engine/step.ts
async function forwardBackward(e, bw, ids, trained, T, afterLayer) {
  const { L } = e.D, order2 = e.recompute;
  if (T > e.D.T) throw new Error(`sequence of ${T} tokens is longer than the plan's ${e.D.T}`);
  await embed(e, ids, T);
  for (let l = 0; l < L; l++) {
    if (order2.saveAt[l] >= 0) saveInput(e, order2.saveAt[l], T);
    await e.loadLayer(l, L - 1);
    await trainingLayerForward(e, l, T);
  }
  finalNorm(e, T);
  const tokens2 = setTargets(e, ids, trained, T);
  if (tokens2 === 0) throw new Error("the sequence has no trained tokens");
  await lossForwardBackward(e, T);
  const { sum } = lossSum(e, T);
  for (let i = 0; i < order2.backward.length; i++) {
    const s = order2.backward[i];
    if (s.kind === "restore") restoreInput(e, s.slot, T);
    else if (s.kind === "save") saveInput(e, s.slot, T);
    else {
      await e.loadLayer(s.layer, order2.through[i]);
      if (s.kind === "forward") await layerForward(e, s.layer, T);
      else {
        await bw.layerBackward(s.layer, T, s.slot);
        afterLayer?.(s.layer);
      }
    }
  }
  return {
    loss: sum / tokens2,
    tokens: tokens2
  };
}

// src/engine/sequence_loss.ts
async function sequenceLoss(e, ids, targets, T) {
  await forward(e, ids, T);
  if (setTargets(e, ids, targets, T) === 0) return {
    sum: 0,
    count: 0
  };
  await lossForward(e, T);
  return lossSum(e, T);
}
async function meanSequenceLoss(e, ids, targets, T) {
  const { sum, count } = await sequenceLoss(e, ids, targets, T);
  if (count === 0) throw new Error("the sequence has no trained tokens");
  return {
    loss: sum / count,
    tokens: count
  };
}
var SequenceBatch = class {
  /** Sequences held. */
  n = 0;
  /** Sequence s's ids, trained targets (undefined: every position) and tokens `[0, lengths[s])`. */
  ids;
  targets;
  lengths;
  /** Every sequence's ids one after the other (`[0, count)`): the embedding rows to gather. */
  tokens;
  count = 0;
  /** Σ −log p(target) and trained positions of sequence s, once {@linkcode batchLoss} has run. */
  sums;
  counts;
  #T;
  constructor(e) {
    const { B, T } = e.D;
    this.ids = new Array(B);
    this.targets = new Array(B);
    this.lengths = new Int32Array(B);
    this.tokens = new Int32Array(B * T);
    this.sums = new Float64Array(B);
    this.counts = new Int32Array(B);
    this.#T = T;
  }
  /** Whether another sequence fits. */
  get full() {
    return this.n === this.lengths.length;
  }
  clear() {
    this.n = 0;
    this.count = 0;
  }
  /** Adds `ids[0..T)` (2 ≤ T ≤ the plan's length), scored where `targets` is set (every position: undefined). */
  add(ids, targets, T) {
    if (this.full) throw new Error(`the batch holds ${this.lengths.length} sequences`);
    if (!(T >= 2 && T <= this.#T)) throw new Error(`a batch sequence has 2\u2026${this.#T} tokens, got ${T}`);
    const s = this.n++;
    this.ids[s] = ids;
    this.targets[s] = targets;
    this.lengths[s] = T;
    for (let t = 0; t < T; t++) this.tokens[this.count++] = ids[t];
  }
};
async function batchLoss(e, batch) {
  const { n, ids, lengths } = batch, slots = e.blocks.batch;
  await forwardBatch(e, n, ids, lengths, batch.tokens, batch.count);
  for (let s = 0; s < n; s++) setTargets(e, ids[s], batch.targets[s], lengths[s], slots[s].loss);
  await lossForwardBatch(e, n, lengths);
  for (let s = 0; s < n; s++) {
    const { sum, count } = lossSum(e, lengths[s], slots[s].loss);
    batch.sums[s] = sum;
    batch.counts[s] = count;
  }
}

// src/engine/mezo.ts
var DEFAULT_ZO_EPS = 1e-3;
async function zoEstimate(e, batch, seqLen, seed, eps) {
  const p = e.p["lora.params"], n = e.lora.totalElements;
  const mean = async () => {
    let loss = 0, tokens2 = 0;
    for (const s of batch) {
      const r = await meanSequenceLoss(e, s.ids, s.targets, Math.min(s.ids.length, seqLen));
      loss += r.loss / batch.length;
      tokens2 += r.tokens;
    }
    return {
      loss,
      tokens: tokens2
    };
  };
  e.k.zo_perturb(p, n, seed, 0, eps);
  const plus = await mean();
  e.k.zo_perturb(p, n, seed, 0, -2 * eps);
  const minus = await mean();
  e.k.zo_perturb(p, n, seed, 0, eps);
  return {
    lossPlus: plus.loss,
    lossMinus: minus.loss,
    coeff: (plus.loss - minus.loss) / (2 * eps),
    tokens: plus.tokens
  };
}
function zoUpdate(e, seed, coeff, lr, weightDecay) {
  e.k.zo_update(e.p["lora.params"], e.lora.totalElements, seed, 0, coeff, lr, weightDecay);
}
function stepSeed(seed, step) {
  let h = Math.imul(seed >>> 0 ^ 2654435769, 2246822507) ^ Math.imul(step + 1, 3266489909);
  h = Math.imul(h ^ h >>> 16, 2146121005);
  return (h ^ h >>> 15) >>> 0;
}

// src/engine/adapter.ts
init_source();

// src/engine/adapter_values.ts
function layerOf(values, l, perLayer) {
  if (values instanceof Float32Array) return values.subarray(l * perLayer, (l + 1) * perLayer);
  return values.layer(l);
}
function* piecesOf(values) {
  if (values instanceof Float32Array) {
    yield values;
    return;
  }
  for (let l = 0; l < values.layers; l++) yield values.layer(l);
}

// src/engine/adapter.ts
init_describe();
var ADAPTER_CONFIG = "adapter_config.json";
var ADAPTER_WEIGHTS = "adapter_model.safetensors";
function parseAdapterConfig(text, file = ADAPTER_CONFIG) {
  let j;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${e.message})`);
  }
  if (!j || typeof j !== "object") throw new Error(`${file}: expected a JSON object`);
  if (j.peft_type !== "LORA") {
    throw new Error(`${file}: peft_type is ${JSON.stringify(j.peft_type)}, only "LORA" is supported`);
  }
  const r = j.r;
  if (typeof r !== "number" || !Number.isInteger(r) || r < 1) {
    throw new Error(`${file}: r must be a positive integer`);
  }
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== "number" || !(alpha > 0)) {
    throw new Error(`${file}: lora_alpha must be a positive number`);
  }
  const unsupported = [
    [
      "use_dora",
      j.use_dora === true
    ],
    [
      "fan_in_fan_out",
      j.fan_in_fan_out === true
    ],
    [
      "bias",
      j.bias !== void 0 && j.bias !== "none"
    ],
    [
      "rank_pattern",
      isNonEmpty(j.rank_pattern)
    ],
    [
      "alpha_pattern",
      isNonEmpty(j.alpha_pattern)
    ],
    [
      "layers_to_transform",
      j.layers_to_transform != null
    ],
    [
      "modules_to_save",
      isNonEmpty(j.modules_to_save)
    ],
    [
      "lora_bias",
      j.lora_bias === true
    ]
  ];
  for (const [key, bad] of unsupported) {
    if (bad) throw new Error(`${file}: ${key} = ${JSON.stringify(j[key])} is not supported by mesp`);
  }
  let targets;
  const tm = j.target_modules;
  if (tm === "all-linear") targets = [
    "all"
  ];
  else if (Array.isArray(tm) && tm.every((t) => typeof t === "string")) {
    targets = tm.map((t) => t.split(".").at(-1));
  } else if (tm == null) targets = [
    "q_proj",
    "v_proj"
  ];
  else {
    throw new Error(`${file}: target_modules ${JSON.stringify(tm)} is not supported (use a list of module names)`);
  }
  return {
    rank: r,
    alpha,
    rslora: j.use_rslora === true,
    targets,
    baseModel: typeof j.base_model_name_or_path === "string" ? j.base_model_name_or_path : void 0
  };
}
function isNonEmpty(v) {
  if (v == null) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}
async function openAdapter(files) {
  checkModelFiles(files, "openAdapter");
  const text = await files.readText(ADAPTER_CONFIG);
  if (text === void 0) {
    throw new Error(`${files.name} has no ${ADAPTER_CONFIG}: not a PEFT adapter directory`);
  }
  const config = parseAdapterConfig(text, `${files.name}/${ADAPTER_CONFIG}`);
  const weights = await readSafetensorsHeader(files.source(ADAPTER_WEIGHTS));
  return {
    config,
    weights,
    name: files.name
  };
}
function checkOpenedAdapter(adapter, where) {
  const a = adapter;
  const config = a?.config;
  const weights = a?.weights;
  if (typeof a === "object" && a !== null && typeof config === "object" && config !== null && typeof config.rank === "number" && Array.isArray(config.targets) && typeof weights?.tensors?.get === "function" && typeof a.name === "string") return;
  let got = describeValue(adapter);
  if (isThenable(adapter)) got += " \u2014 did you forget await?";
  else if (typeof a?.readText === "function" && typeof a.source === "function") {
    got = "model files: pass them to openAdapter first";
  } else if (typeof a === "string") {
    got += ": open the adapter's directory as files (urlFiles(url); in Deno dirFiles(path) from src/io/deno_files.ts) and pass them to openAdapter";
  } else if (a && "layout" in a && "params" in a) {
    got = 'a train result: write it as adapter files and open those, openAdapter(memoryFiles({ "adapter_config.json": adapterConfigJson(result.layout), "adapter_model.safetensors": encodeLoraTensors(result.layout, result.params) }))';
  }
  throw new TypeError(`${where ? `${where}: ` : ""}adapter: expected an opened adapter (await openAdapter(files)), got ${got}`);
}
function checkAdapter(adapter, layout) {
  checkOpenedAdapter(adapter);
  const seen = /* @__PURE__ */ new Set();
  for (const pair of layout.pairs.flat()) {
    for (const which of [
      "A",
      "B"
    ]) {
      const name = peftName(pair, which);
      const info = adapter.weights.tensors.get(name);
      if (!info) {
        throw new Error(`${adapter.name}: adapter has no tensor ${name}; was it made for another model?`);
      }
      const shape = which === "A" ? [
        layout.rank,
        pair.inDim
      ] : [
        pair.outDim,
        layout.rank
      ];
      if (info.shape.join() !== shape.join()) {
        const rankSide = which === "A" ? 0 : 1, other = 1 - rankSide;
        const why = info.shape.length === 2 && info.shape[other] === shape[other] ? `its config's r is ${layout.rank}, but the tensor has rank ${info.shape[rankSide]}` : `this model needs [${shape}] (an adapter for a model of other sizes?)`;
        throw new Error(`${adapter.name}: ${name} has shape [${info.shape}]: ${why}`);
      }
      seen.add(name);
    }
  }
  for (const name of adapter.weights.tensors.keys()) {
    if (seen.has(name)) continue;
    const parsed = parsePeftName(name);
    throw new Error(`${adapter.name}: unexpected tensor ${name}` + (parsed ? ` (layer ${parsed.layer} ${parsed.target}: not in this model's layers/targets)` : ""));
  }
}
async function readAdapterLayer(adapter, layout, l, into) {
  const first = l * layout.layerElements;
  for (const pair of layout.pairs[l]) {
    for (const [which, at, n] of [
      [
        "A",
        pair.a,
        pair.inDim
      ],
      [
        "B",
        pair.b,
        pair.outDim
      ]
    ]) {
      const start = at - first;
      await readTensorF32(adapter.weights, peftName(pair, which), into.subarray(start, start + layout.rank * n));
    }
  }
}
async function readAdapterInto(adapter, layout, params) {
  checkAdapter(adapter, layout);
  const n = layout.layerElements;
  for (let l = 0; l < layout.pairs.length; l++) {
    await readAdapterLayer(adapter, layout, l, params.subarray(l * n, (l + 1) * n));
  }
}
function loraTensorEntries(layout, values, extra = {}) {
  return loraEntries(layout, (at, n) => values.subarray(at, at + n), extra);
}
function loraEntries(layout, data, extra) {
  const entries = [];
  for (const pair of layout.pairs.flat()) {
    const a = data(pair.a, layout.rank * pair.inDim, pair.layer);
    const b = data(pair.b, layout.rank * pair.outDim, pair.layer);
    entries.push({
      name: peftName(pair, "A"),
      dtype: "F32",
      shape: [
        layout.rank,
        pair.inDim
      ],
      data: a
    });
    entries.push({
      name: peftName(pair, "B"),
      dtype: "F32",
      shape: [
        pair.outDim,
        layout.rank
      ],
      data: b
    });
  }
  for (const [name, data2] of Object.entries(extra)) {
    entries.push({
      name,
      dtype: "F32",
      shape: [
        data2.length
      ],
      data: data2
    });
  }
  return entries;
}
async function writeLoraTensors(sink, layout, values, extra = {}) {
  const n = layout.layerElements;
  const entries = values instanceof Float32Array ? loraTensorEntries(layout, values, extra) : loraEntries(layout, (at, count, l) => () => layerOf(values, l, n).subarray(at - l * n, at - l * n + count), extra);
  await writeSafetensors(sink, entries, {
    format: "pt"
  });
}
function encodeLoraTensors(layout, values, extra = {}) {
  checkLayout(layout, "encodeLoraTensors");
  if (!(values instanceof Float32Array) || values.length !== layout.totalElements) {
    const v = values;
    const hint = v && typeof v === "object" && "params" in v ? " (a train result: pass result.params)" : "";
    throw new TypeError(`encodeLoraTensors: values must be the layout's ${layout.totalElements} parameters as a Float32Array, got ${describeValue(values)}${values instanceof Float32Array ? ` of ${values.length}` : ""}${hint}`);
  }
  return encodeSafetensors(loraTensorEntries(layout, values, extra), {
    format: "pt"
  });
}
function adapterConfigJson(layout, baseModel) {
  checkLayout(layout, "adapterConfigJson");
  const cfg = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel ?? null,
    bias: "none",
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: layout.alpha,
    lora_dropout: 0,
    modules_to_save: null,
    peft_type: "LORA",
    r: layout.rank,
    rank_pattern: {},
    revision: null,
    target_modules: [
      ...layout.targets
    ],
    task_type: "CAUSAL_LM",
    use_dora: false,
    use_rslora: layout.rslora
  };
  return JSON.stringify(cfg, null, 2) + "\n";
}
function checkLayout(layout, where) {
  const l = layout;
  if (l && Array.isArray(l.pairs) && Array.isArray(l.targets) && typeof l.totalElements === "number") return;
  const hint = l && typeof l === "object" && "layout" in l ? " (a train result: pass result.layout)" : "";
  throw new TypeError(`${where}: expected a LoRA layout, got ${describeValue(layout)}${hint}`);
}

// src/engine/optimizer.ts
function defaultOptimizer(method) {
  return method === "mezo" ? "sgd" : "adamw";
}
function defaultLr(name, method) {
  return method === "mezo" ? 5e-5 : name === "adamw" ? 2e-4 : 1e-4;
}
var DEFAULT_SCHEDULE = "cosine";
var OPTIMIZER_DEFAULTS = Object.freeze({
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  warmup: 0
});
function learningRate(o, step) {
  const warmup = o.warmup ?? OPTIMIZER_DEFAULTS.warmup;
  if (warmup > 0 && step < warmup) return o.lr * (step + 1) / warmup;
  if ((o.schedule ?? DEFAULT_SCHEDULE) === "constant") return o.lr;
  const total = Math.max(o.totalSteps ?? 1, warmup + 1);
  const progress = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return o.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}
var Optimizer = class {
  options;
  #k;
  #params;
  #m;
  #v;
  /** `params`, `m`, `v` are byte offsets of the parameter region and (AdamW) the moment regions. */
  constructor(k, options, params, m = 0, v = 0) {
    if (!(options.lr >= 0)) throw new Error(`learning rate must be \u2265 0, got ${options.lr}`);
    if (options.name === "adamw" && (!m || !v)) throw new Error("AdamW needs its moment regions in the plan");
    this.options = options;
    this.#k = k;
    this.#params = params;
    this.#m = m;
    this.#v = v;
  }
  /**
   * Updates parameters [off, off + n) (element offsets) from gradients at byte pointer `grad`, scaled by
   * `gradScale` first when it is not 1 (clipping), at optimizer step `step` (0-based).
   */
  update(off, n, grad, step, gradScale = 1) {
    const o = this.options, k = this.#k;
    if (gradScale !== 1) k.scale(grad, gradScale, n);
    const lr = learningRate(o, step);
    const p = this.#params + off * 4;
    if (o.name === "sgd") {
      k.sgd_update(p, grad, n, lr, o.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay);
      return;
    }
    const b1 = o.beta1 ?? OPTIMIZER_DEFAULTS.beta1, b2 = o.beta2 ?? OPTIMIZER_DEFAULTS.beta2;
    const t = step + 1;
    k.adamw_update(p, grad, this.#m + off * 4, this.#v + off * 4, n, lr, b1, b2, o.eps ?? OPTIMIZER_DEFAULTS.eps, o.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay, 1 - b1 ** t, 1 - b2 ** t);
  }
};

// src/io/spill_file.ts
function memorySpill() {
  let store = new Uint8Array(0);
  return {
    read(position, into) {
      into.set(store.subarray(position, position + into.length));
      return into.length;
    },
    write(position, data) {
      const end = position + data.length;
      if (end > store.length) {
        const grown = new Uint8Array(Math.max(end, store.length * 2));
        grown.set(store);
        store = grown;
      }
      store.set(data, position);
      return data.length;
    },
    bytes: () => store.length
  };
}

// src/run/train.ts
init_describe();

// src/run/run_options.ts
init_describe();

// src/data/sequence.ts
function longestWithin(seqLen, ...sets) {
  let longest = 2;
  for (const set of sets) for (const s of set) longest = Math.max(longest, Math.min(s.ids.length, seqLen));
  return longest;
}
function badTokenIdAt(ids, vocabSize = Infinity) {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) return i;
  }
  return -1;
}

// src/run/run_options.ts
var TRAIN_OPTIONS = [
  "method",
  "zoEps",
  "seqLen",
  "steps",
  "epochs",
  "lora",
  "seed",
  "optimizer",
  "gradAccum",
  "clip",
  "valEvery",
  "saveEvery",
  "resume",
  "adapter",
  "budget",
  "target",
  "variant",
  "threads",
  "kernels",
  "resident",
  "savedInputDtype",
  "vocabChunk",
  "savedInputEvery",
  "savedInputs",
  "ckptDtype",
  "ckptEvery",
  "spill",
  "onEvent",
  "saveState",
  "saveCheckpoint",
  "shouldStop"
];
var EVALUATE_OPTIONS = [
  "adapter",
  "seqLen",
  "budget",
  "batch",
  "variant",
  "resident",
  "threads",
  "kernels",
  "score",
  "onProgress"
];
var GENERATE_OPTIONS = [
  "maxTokens",
  "temperature",
  "topP",
  "seed",
  "eosTokenIds",
  "adapter",
  "streamWeights",
  "budget",
  "variant",
  "threads",
  "kernels",
  "onLogits"
];
var GRAD_OPTIONS = [
  "method",
  "adapter",
  "lora",
  "seed",
  "zoEps",
  "seqLen",
  "savedInputDtype",
  "savedInputEvery",
  "savedInputs",
  "ckptDtype",
  "ckptEvery",
  "budget",
  "target",
  "variant",
  "threads",
  "kernels"
];
var OPTIMIZER_OPTIONS = [
  "name",
  "lr",
  "weightDecay",
  "beta1",
  "beta2",
  "eps",
  "schedule",
  "warmup"
];
var LORA_OPTIONS = [
  "rank",
  "alpha",
  "rslora",
  "targets"
];
var MAX_SEED = 2 ** 32 - 1;
var NESTED = {
  lr: "optimizer",
  weightDecay: "optimizer",
  beta1: "optimizer",
  beta2: "optimizer",
  eps: "optimizer",
  schedule: "optimizer",
  warmup: "optimizer",
  rank: "lora",
  alpha: "lora",
  rslora: "lora",
  targets: "lora"
};
var KINDS = {
  method: [
    "mesp",
    "mebp",
    "mezo"
  ],
  score: [
    "all",
    "trained"
  ],
  variant: VARIANTS,
  savedInputDtype: [
    "f32",
    "bf16"
  ],
  ckptDtype: [
    "f32",
    "bf16"
  ],
  name: [
    "sgd",
    "adamw"
  ],
  schedule: [
    "constant",
    "cosine"
  ],
  seqLen: "integer",
  steps: "integer",
  gradAccum: "integer",
  valEvery: "natural",
  saveEvery: "natural",
  threads: "count",
  vocabChunk: "count",
  savedInputEvery: "count",
  savedInputs: "natural",
  ckptEvery: "count",
  maxTokens: "integer",
  warmup: "natural",
  rank: "integer",
  seed: "seed",
  epochs: "number",
  zoEps: "number",
  clip: "number",
  budget: "number",
  target: "number",
  lr: "number",
  weightDecay: "number",
  beta1: "number",
  beta2: "number",
  eps: "number",
  alpha: "number",
  temperature: "number",
  topP: "number",
  resident: "boolean",
  streamWeights: "boolean",
  rslora: "boolean",
  onEvent: "function",
  saveState: "function",
  saveCheckpoint: "function",
  shouldStop: "function",
  onProgress: "function",
  onLogits: "function",
  targets: "array",
  lora: "object",
  optimizer: "object",
  kernels: "object"
};
function checkOptions(where, options, known) {
  if (options === null || typeof options !== "object" || isThenable(options)) {
    throw new TypeError(`${where}: options must be an object, got ${describeValue(options)}${isThenable(options) ? " (a forgotten await?)" : ""}`);
  }
  for (const [name, value] of Object.entries(options)) {
    if (!known.includes(name)) {
      const home = NESTED[name];
      const hint = home && known.includes(home) ? ` (it belongs in ${home}: { ${name} })` : didYouMean(name, known);
      throw new TypeError(`${where}: unknown option "${name}"${hint}`);
    }
    if (value === void 0 || value === null) continue;
    if (name === "adapter") checkOpenedAdapter(value, where);
    if (name === "resume") checkResumeValue(value, where);
    if (name === "kernels") checkKernelLocation(value, `${where}.kernels`);
    const kind = KINDS[name];
    const bad = (want) => {
      const got = typeof value === "string" ? JSON.stringify(value) : typeof value === "object" || typeof value === "function" ? describeValue(value) + (isThenable(value) ? " (a forgotten await?)" : "") : String(value);
      throw new TypeError(`${where}: ${name} must be ${want}, got ${got}`);
    };
    if (Array.isArray(kind)) {
      if (!kind.includes(value)) bad(`one of ${kind.map((c) => JSON.stringify(c)).join(", ")}`);
    } else if (kind === "integer") {
      if (!Number.isSafeInteger(value)) bad("an integer");
    } else if (kind === "seed") {
      if (!Number.isSafeInteger(value) || value < 0 || value > MAX_SEED) {
        bad(`an integer from 0 to ${MAX_SEED}`);
      }
    } else if (kind === "count") {
      if (!Number.isSafeInteger(value) || value < 1) bad("an integer \u2265 1");
    } else if (kind === "natural") {
      if (!Number.isSafeInteger(value) || value < 0) bad("an integer \u2265 0");
    } else if (kind === "array") {
      if (!Array.isArray(value)) bad("an array");
    } else if (kind === "number") {
      if (typeof value !== "number") bad("a number");
    } else if (kind === "object") {
      if (value === null || typeof value !== "object") bad("an object");
    } else if (kind !== void 0 && typeof value !== kind) bad(`a ${kind}`);
  }
}
function checkBudget(where, budget, name = "budget") {
  if (budget !== void 0 && !(Number.isFinite(budget) && budget >= 0)) {
    throw new RangeError(`${where}: ${name} must be a byte count \u2265 0, got ${budget}`);
  }
}
function checkSequences(what, sequences, seqLen, need, vocabSize) {
  if (!Array.isArray(sequences)) {
    throw new TypeError(`${what} sequences must be an array of { ids, targets? }, got ${describeValue(sequences)}`);
  }
  let scored = false;
  for (let i = 0; i < sequences.length; i++) {
    const s = sequences[i], at = `${what} sequence ${i}`;
    if (!s || typeof s.ids?.length !== "number") {
      const hint = isThenable(s) ? " (it is a Promise: a forgotten await?)" : s && "input_ids" in s ? " (it has input_ids: a sequence's token ids are its ids)" : "";
      throw new TypeError(`${at}: no ids${hint}`);
    }
    if ("labels" in s) {
      throw new TypeError(`${at} has labels, which train does not read: its targets is a 0/1 mask per token (1 = trained), e.g. targets: Uint8Array.from(labels, (l) => l === -100 ? 0 : 1)`);
    }
    const n = s.ids.length, targets = s.targets;
    if (targets && targets.length !== n) {
      throw new RangeError(`${at}: ${targets.length} targets for ${n} tokens (one per token)`);
    }
    const t = badTokenIdAt(s.ids, vocabSize);
    if (t >= 0) {
      throw new RangeError(`${at}: ids[${t}] is ${s.ids[t]}, not a token id (an integer from 0 to ${vocabSize - 1})`);
    }
    if (targets) {
      for (let t2 = 0; t2 < n; t2++) {
        if (targets[t2] !== 0 && targets[t2] !== 1) {
          throw new RangeError(`${at}: targets[${t2}] is ${targets[t2]}; targets is a 0/1 mask per token (1 = trained), not Hugging Face labels (-100 = ignored)`);
        }
      }
    }
    const T = Math.min(n, seqLen);
    let any = false;
    for (let t2 = 1; t2 < T && !any; t2++) any = !targets || targets[t2] !== 0;
    scored ||= any;
    if (need !== "each") continue;
    if (!any) {
      throw new RangeError(`${at}: no trained token${n < 2 ? ` (it has ${n} token${n === 1 ? "" : "s"})` : ` in its first ${T}`}`);
    }
  }
  if (need === "any" && sequences.length > 0 && !scored) {
    throw new RangeError(`${what} set: no sequence has a trained token${Number.isFinite(seqLen) ? ` within seqLen ${seqLen}` : ""}`);
  }
}
function checkPositions(where, what, tokens2, positions) {
  if (tokens2 <= positions) return;
  throw new RangeError(`${where}: ${what} is ${tokens2} tokens, longer than the model allows (${positions} positions; give seqLen \u2264 ${positions} to cut longer sequences)`);
}
function checkResumeValue(value, where) {
  const v = value;
  const isState = typeof v === "object" && typeof v.step === "number" && typeof v.optimizer === "string" && (typeof v.read === "function" || typeof v.params === "object" && v.params !== null);
  if (isState) return;
  let got = describeValue(value);
  if (isThenable(value)) got += " \u2014 did you forget await?";
  else if (typeof v === "object" && typeof v.state === "object" && "run" in v) {
    got = "{ state, run }: pass its .state (resume: (await openTrainingState(source)).state)";
  } else if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    got += ": the file's bytes; open them first (resume: (await openTrainingState(bytesSource(bytes))).state)";
  } else if (typeof v === "object" && "losses" in v && "layout" in v) {
    got = "a train result, which holds no optimizer state or data position: resume from the state saveState was given";
  }
  throw new TypeError(`${where}: resume: expected a training state, got ${got}`);
}

// src/engine/lora_init.ts
function initLora(layout, params, seed) {
  const init = loraInitializer(layout, seed), n = layout.layerElements;
  for (let l = 0; l < layout.pairs.length; l++) init(l, params.subarray(l * n, (l + 1) * n));
}
function loraInitializer(layout, seed) {
  const random = seededRandom(seed);
  let next = 0;
  return (l, into) => {
    if (l !== next) throw new Error(`LoRA initialisation: layer ${l} asked for, ${next} is next`);
    next++;
    into.fill(0);
    const first = l * layout.layerElements;
    for (const pair of layout.pairs[l]) {
      const bound = 1 / Math.sqrt(pair.inDim), a = pair.a - first;
      for (let i = 0; i < layout.rank * pair.inDim; i++) into[a + i] = (2 * random() - 1) * bound;
    }
  };
}

// src/run/train_config.ts
function sequencesFingerprint(seqs, options = {}) {
  const c = new Checksum();
  const head = new Uint32Array(2);
  for (const s of seqs) {
    if (options.lengths !== false) {
      head[0] = s.ids.length;
      head[1] = s.targets ? 1 : 0;
      c.update(new Uint8Array(head.buffer));
    }
    const ids = s.ids instanceof Int32Array ? s.ids : Int32Array.from(s.ids);
    c.update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    if (s.targets) c.update(s.targets instanceof Uint8Array ? s.targets : Uint8Array.from(s.targets));
  }
  return c.hex();
}
var FIXED_OPTIONS = [
  "method",
  "seqLen",
  "gradAccum",
  "zoEps",
  "beta1",
  "beta2",
  "eps"
];
var CHANGEABLE_OPTIONS = [
  "steps",
  "lr",
  "clip",
  "weightDecay",
  "warmup",
  "schedule"
];
var RUN_SETTINGS = [
  "saveEvery",
  "valEvery"
];
var RECORDED_OPTIONS = [
  ...FIXED_OPTIONS,
  ...CHANGEABLE_OPTIONS,
  ...RUN_SETTINGS
];
var OPTIMIZER_FIELDS = /* @__PURE__ */ new Set([
  "lr",
  "schedule",
  "warmup",
  "weightDecay",
  "beta1",
  "beta2",
  "eps"
]);
function recordedValue(config, key) {
  return OPTIMIZER_FIELDS.has(key) ? config.optimizer?.[key] : config[key];
}
function resumedOptions(options, recorded, dataFingerprint) {
  const differences = [];
  for (const key of FIXED_OPTIONS) {
    const given = recordedValue(options, key), was = recordedValue(recorded, key);
    const name = OPTIMIZER_FIELDS.has(key) ? `optimizer.${key}` : key;
    if (given !== void 0 && given !== was) differences.push(`${name} ${given} (the state's ${was})`);
  }
  if (dataFingerprint !== void 0 && dataFingerprint !== recorded.data) {
    differences.push(`data: other training sequences (fingerprint ${dataFingerprint}, the state's ${recorded.data}; the state's position is in its own data's order)`);
  }
  if (differences.length > 0) {
    throw new Error(`train options: resume: these differ from the run the training state was made by:
  ${differences.join("\n  ")}
give the state's values (resume.config), or leave them out, or start a new run without resume`);
  }
  const resumed = {
    ...options
  };
  const optimizer = {
    ...options.optimizer
  };
  for (const key of RECORDED_OPTIONS) {
    if (key === "steps" && options.epochs != null) continue;
    const into = OPTIMIZER_FIELDS.has(key) ? optimizer : resumed;
    into[key] = recordedValue(options, key) ?? recordedValue(recorded, key);
  }
  resumed.optimizer = optimizer;
  return resumed;
}
var isNumber = (v) => typeof v === "number" && Number.isFinite(v);
function validateTrainConfig(name, raw) {
  const bad = (field, v, want) => {
    throw new Error(`${name}: state field config.${field} is ${JSON.stringify(v)}, expected ${want}`);
  };
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) bad("(all)", raw, "an object");
  const c = raw;
  if (c.method !== "mesp" && c.method !== "mebp" && c.method !== "mezo") {
    bad("method", c.method, '"mesp", "mebp" or "mezo"');
  }
  for (const f of [
    "seqLen",
    "steps",
    "gradAccum"
  ]) {
    if (!(Number.isSafeInteger(c[f]) && c[f] >= 1)) bad(f, c[f], "an integer \u2265 1");
  }
  for (const f of [
    "clip",
    "zoEps"
  ]) if (!isNumber(c[f])) bad(f, c[f], "a finite number");
  for (const f of [
    "saveEvery",
    "valEvery"
  ]) {
    if (c[f] !== void 0 && !(Number.isSafeInteger(c[f]) && c[f] >= 0)) {
      bad(f, c[f], "an integer \u2265 0");
    }
  }
  if (typeof c.data !== "string") bad("data", c.data, "a fingerprint");
  const o = c.optimizer;
  if (!o || typeof o !== "object" || Array.isArray(o)) bad("optimizer", o, "an object");
  for (const f of [
    "lr",
    "warmup",
    "weightDecay",
    "beta1",
    "beta2",
    "eps"
  ]) {
    if (!isNumber(o[f])) bad(`optimizer.${f}`, o[f], "a finite number");
  }
  if (o.schedule !== "constant" && o.schedule !== "cosine") {
    bad("optimizer.schedule", o.schedule, '"constant" or "cosine"');
  }
  return raw;
}

// src/run/train.ts
function epochOrder(n, seed, epoch) {
  const order2 = Uint32Array.from({
    length: n
  }, (_, i) => i);
  const random = seededRandom((seed ^ Math.imul(epoch + 1, 668265261)) >>> 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order2[i];
    order2[i] = order2[j];
    order2[j] = t;
  }
  return order2;
}
function checkHyperparameters(o, zoEps, clip) {
  const fail = (what, v, want) => {
    throw new Error(`${what} must be ${want}, got ${v}`);
  };
  if (!(Number.isFinite(o.lr) && o.lr >= 0)) fail("the learning rate", o.lr, "a finite number \u2265 0");
  const wd = o.weightDecay ?? 0;
  if (!(Number.isFinite(wd) && wd >= 0)) fail("weight decay", wd, "a finite number \u2265 0");
  if (o.name === "adamw") {
    const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8;
    if (!(b1 >= 0 && b1 < 1)) fail("AdamW \u03B21", b1, "in [0, 1)");
    if (!(b2 >= 0 && b2 < 1)) fail("AdamW \u03B22", b2, "in [0, 1)");
    if (!(Number.isFinite(eps) && eps > 0)) fail("AdamW \u03B5", eps, "a finite number > 0");
  }
  if (!(Number.isFinite(zoEps) && zoEps > 0)) fail("MeZO's \u03B5", zoEps, "a finite number > 0");
  if (!(Number.isFinite(clip) && clip >= 0)) fail("the clipping norm", clip, "a finite number \u2265 0 (0 = off)");
}
function sameLora(kept2, given, whose) {
  const differs = (what, a, b) => {
    throw new Error(`train options.lora: ${what} ${b} differs from ${whose} ${a} (the run keeps that layout; leave lora out)`);
  };
  if (given.rank != null && given.rank !== kept2.rank) differs("rank", kept2.rank, given.rank);
  if (given.alpha != null && given.alpha !== kept2.alpha) {
    differs("alpha", kept2.alpha, given.alpha);
  }
  if (given.rslora != null && given.rslora !== kept2.rslora) {
    differs("rslora", kept2.rslora, given.rslora);
  }
  if (given.targets != null) {
    const a = resolveTargets(kept2.targets).sort().join(","), b = resolveTargets(given.targets).sort().join(",");
    if (a !== b) differs("targets", a, b);
  }
}
var NonFiniteError = class extends Error {
  /** The optimizer step (1-based) at which it appeared. */
  step;
  /** @param message where and what to try; @param step the 1-based step */
  constructor(message, step) {
    super(message);
    this.name = "NonFiniteError";
    this.step = step;
  }
};
function trainEngineOptions(pack, options, planLen = options.seqLen) {
  const method = options.method ?? "mesp";
  const kept2 = options.resume?.lora ?? options.adapter?.config;
  if (kept2 && options.lora) {
    sameLora(kept2, options.lora, options.resume ? "the resumed state's" : "the adapter's");
  }
  const loraOptions = kept2 ?? options.lora ?? {};
  return {
    mode: "train",
    method,
    seqLen: planLen,
    lora: loraLayout(pack.config, loraOptions),
    optimizer: options.optimizer?.name ?? options.resume?.optimizer ?? defaultOptimizer(method),
    // MeBP holds every gradient until the optimizer step; MeSP fuses the update into each layer's backward
    gradBuffer: method === "mebp" || (options.gradAccum ?? 1) > 1 || (options.clip ?? 0) > 0,
    budget: options.budget,
    target: options.target,
    variant: options.variant,
    threads: options.threads,
    kernels: options.kernels,
    resident: options.resident,
    savedInputDtype: options.savedInputDtype ?? options.ckptDtype,
    vocabChunk: options.vocabChunk,
    savedInputEvery: options.savedInputEvery ?? options.ckptEvery,
    savedInputs: options.savedInputs,
    spillFile: options.spill
  };
}
async function planTraining(pack, options, data, val = []) {
  checkPack(pack, "planTraining");
  checkOptions("planTraining options", options, TRAIN_OPTIONS);
  if (options.lora) checkOptions("planTraining options.lora", options.lora, LORA_OPTIONS);
  if (options.resume?.config) {
    options = resumedOptions(options, options.resume.config, data && sequencesFingerprint(data));
  }
  const planLen = data ? longestWithin(options.seqLen, data, val) : options.seqLen;
  return await Engine.plan(pack, trainEngineOptions(pack, options, planLen));
}
async function train(pack, data, val, options) {
  checkPack(pack, "train");
  checkOptions("train options", options, TRAIN_OPTIONS);
  if (options.optimizer) checkOptions("train options.optimizer", options.optimizer, OPTIMIZER_OPTIONS);
  if (options.lora) checkOptions("train options.lora", options.lora, LORA_OPTIONS);
  checkBudget("train options", options.budget);
  checkBudget("train options", options.target, "target");
  if (!Array.isArray(data) || !Array.isArray(val)) {
    throw new TypeError("train(pack, data, val, options): data and val are arrays of sequences (val [] for none)");
  }
  if (data.length === 0) throw new Error("the training set is empty");
  checkSequences("training", data, Infinity, "none", pack.config.vocabSize);
  const dataFingerprint = sequencesFingerprint(data);
  const recorded = options.resume?.config;
  if (recorded) options = resumedOptions(options, recorded, dataFingerprint);
  if (!Number.isSafeInteger(options.seqLen) || options.seqLen < 2) {
    throw new RangeError(`train options: seqLen must be an integer \u2265 2, got ${options.seqLen}` + (options.resume && !recorded ? " (this resumed state records no seqLen: give it)" : ""));
  }
  checkSequences("training", data, options.seqLen, "each", pack.config.vocabSize);
  checkSequences("validation", val, options.seqLen, "any", pack.config.vocabSize);
  const method = options.method ?? "mesp";
  const cfg = pack.config;
  const seqLen = options.seqLen;
  checkPositions("train", "the longest sequence", longestWithin(seqLen, data, val), cfg.maxPositionEmbeddings);
  const accum = options.gradAccum ?? 1;
  if (!Number.isInteger(accum) || accum < 1) {
    throw new Error(`train options: gradAccum must be a positive integer, got ${accum}`);
  }
  const clip = options.clip ?? 0;
  const resumedSeed = options.resume?.seed;
  if (resumedSeed !== void 0 && options.seed != null && options.seed !== resumedSeed) {
    throw new Error(`train options: seed ${options.seed} differs from the resumed state's ${resumedSeed} (the data order and MeZO's perturbations follow it; leave seed out)`);
  }
  const seed = resumedSeed ?? options.seed ?? 0;
  if (options.steps != null && options.epochs != null) {
    throw new TypeError("train options: give steps or epochs, not both");
  }
  const steps = options.steps ?? Math.ceil((options.epochs ?? 1) * data.length / accum);
  if (!(steps >= 1)) throw new Error(`nothing to train: ${steps} steps`);
  if (options.resume && options.resume.step >= steps) {
    throw new Error(`train: nothing to train: the resumed state is at step ${options.resume.step}, and the run's target is ${steps} steps (give steps above ${options.resume.step} to train it further)`);
  }
  const given = options.optimizer ?? {};
  const name = given.name ?? options.resume?.optimizer ?? defaultOptimizer(method);
  const optOptions = {
    ...given,
    name,
    lr: given.lr ?? defaultLr(name, method),
    schedule: given.schedule ?? DEFAULT_SCHEDULE,
    totalSteps: steps
  };
  if (method === "mezo" && optOptions.name !== "sgd") {
    throw new Error(`MeZO updates with SGD (optimizer.name "sgd", --optimizer sgd), not ${optOptions.name}`);
  }
  const zoEps = options.zoEps ?? DEFAULT_ZO_EPS;
  checkHyperparameters(optOptions, zoEps, clip);
  const config = {
    method,
    seqLen,
    steps,
    gradAccum: accum,
    clip,
    zoEps,
    optimizer: {
      lr: optOptions.lr,
      schedule: optOptions.schedule,
      warmup: optOptions.warmup ?? OPTIMIZER_DEFAULTS.warmup,
      weightDecay: optOptions.weightDecay ?? OPTIMIZER_DEFAULTS.weightDecay,
      beta1: optOptions.beta1 ?? OPTIMIZER_DEFAULTS.beta1,
      beta2: optOptions.beta2 ?? OPTIMIZER_DEFAULTS.beta2,
      eps: optOptions.eps ?? OPTIMIZER_DEFAULTS.eps
    },
    data: dataFingerprint,
    saveEvery: options.saveEvery ?? 0,
    valEvery: options.valEvery ?? 0
  };
  const engineOptions = trainEngineOptions(pack, options, longestWithin(seqLen, data, val));
  const layout = engineOptions.lora;
  const gradBuffer = engineOptions.gradBuffer;
  const e = await Engine.create(pack, engineOptions);
  try {
    const schedule = method === "mesp" ? describeSchedule(e.schedule(), cfg.numLayers, e.kernels.pool?.threads ?? 1) : void 0;
    const spilled = e.spill && describeSpill(e.spill.layout);
    options.onEvent?.({
      type: "plan",
      table: formatPlan(e.arena.plan),
      bytes: e.arena.plan.bytes,
      schedule,
      spill: spilled
    });
    const adamw = optOptions.name === "adamw";
    const arenaParams = e.arena.f32("lora.params");
    const arenaM = adamw ? e.arena.f32("opt.m") : void 0;
    const arenaV = adamw ? e.arena.f32("opt.v") : void 0;
    const spill = e.spill, layerN = layout.layerElements, L = cfg.numLayers;
    let step = 0, epoch = 0, cursor = 0;
    const r = options.resume;
    const stored = r && "read" in r ? r : void 0, decoded = stored ? void 0 : r;
    if (r) {
      if ((stored?.length ?? decoded.params.length) !== layout.totalElements) {
        throw new Error("training state does not match this adapter layout");
      }
      if (r.optimizer !== optOptions.name) {
        throw new Error(`training state was made with ${r.optimizer}, not ${optOptions.name}`);
      }
      const moments = stored ? stored.tensors.includes("adam_m") && stored.tensors.includes("adam_v") : decoded.m && decoded.v;
      if (arenaM && !moments) throw new Error("training state has no AdamW moments");
      ({ step, epoch, cursor } = r);
    }
    if (options.adapter && !r) checkAdapter(options.adapter, layout);
    spill?.reserve();
    const init = loraInitializer(layout, seed);
    const inArena = (x, l) => spill ? x : x.subarray(l * layerN, (l + 1) * layerN);
    if (stored) {
      const arenaOf = {
        params: arenaParams,
        adam_m: arenaM,
        adam_v: arenaV
      };
      const part = {
        params: "params",
        adam_m: "m",
        adam_v: "v"
      };
      await stored.read(layerN, (t, l) => arenaOf[t] && inArena(arenaOf[t], l), (t, l) => {
        if (arenaOf[t]) spill?.store(part[t], l);
      });
    } else {
      for (let l = 0; l < L; l++) {
        const p = inArena(arenaParams, l), lm = arenaM && inArena(arenaM, l), lv = arenaV && inArena(arenaV, l);
        if (decoded) {
          p.set(layerOf(decoded.params, l, layerN));
          lm?.set(layerOf(decoded.m, l, layerN));
          lv?.set(layerOf(decoded.v, l, layerN));
        } else {
          if (options.adapter) await readAdapterLayer(options.adapter, layout, l, p);
          else init(l, p);
          lm?.fill(0);
          lv?.fill(0);
        }
        spill?.storeLayer(l);
      }
    }
    const layered = (view, load) => ({
      length: layout.totalElements,
      layers: L,
      layer(l) {
        load(l);
        return view;
      }
    });
    const params = spill ? layered(arenaParams, (l) => spill.loadAdapter(l)) : arenaParams;
    const m = arenaM && (spill ? layered(arenaM, (l) => spill.loadMoment("m", l)) : arenaM);
    const v = arenaV && (spill ? layered(arenaV, (l) => spill.loadMoment("v", l)) : arenaV);
    const opt = new Optimizer(e.k, optOptions, e.p["lora.params"], adamw ? e.p["opt.m"] : void 0, adamw ? e.p["opt.v"] : void 0);
    const gradPtr = method === "mezo" ? 0 : e.p["lora.grad"];
    const bw = method === "mezo" ? void 0 : new Backward(e, {
      ptr: gradPtr,
      perLayer: !gradBuffer,
      accumulate: false
    }, {
      mebp: method === "mebp"
    });
    let order2 = epochOrder(data.length, seed, epoch);
    let nextOrder;
    let lastIndex = 0;
    const next = () => {
      if (cursor >= data.length) {
        epoch++;
        cursor = 0;
        order2 = nextOrder ?? epochOrder(data.length, seed, epoch);
        nextOrder = void 0;
      }
      lastIndex = order2[cursor++];
      return data[lastIndex];
    };
    const peek = () => data[cursor < data.length ? order2[cursor] : (nextOrder ??= epochOrder(data.length, seed, epoch + 1))[0]];
    const snapshot = () => ({
      step,
      epoch,
      cursor,
      seed,
      params,
      m,
      v,
      lora: {
        rank: layout.rank,
        alpha: layout.alpha,
        rslora: layout.rslora,
        targets: [
          ...layout.targets
        ]
      },
      optimizer: optOptions.name,
      config
    });
    const losses = [];
    const valLosses = [];
    const validate = async () => {
      if (!val.length) return;
      let sum = 0, count = 0;
      for (let i = 0; i < val.length; i++) {
        const s = val[i], T = Math.min(s.ids.length, seqLen);
        if (T < 2) continue;
        const after = i + 1 < val.length ? val[i + 1] : step < steps ? peek() : void 0;
        if (after) e.weights.expectRows(after.ids, Math.min(after.ids.length, seqLen), false);
        const r2 = await sequenceLoss(e, s.ids, s.targets, T);
        sum += r2.sum;
        count += r2.count;
      }
      if (!Number.isFinite(sum)) {
        throw new NonFiniteError(`step ${step}: the validation loss is ${sum / count}${hint()}`, step);
      }
      if (count) {
        valLosses.push({
          step,
          loss: sum / count
        });
        options.onEvent?.({
          type: "val",
          step,
          loss: sum / count,
          tokens: count
        });
      }
    };
    let spilledFinite = true;
    const fused = spill ? (l) => {
      spill.loadMoments(l);
      opt.update(0, layerN, gradPtr, step);
      spilledFinite &&= Number.isFinite(e.k.sum_squares(e.p["lora.params"], layerN));
      spill.storeLayer(l);
    } : (l) => opt.update(l * layerN, layerN, gradPtr, step);
    const saveState = options.saveState ?? options.saveCheckpoint;
    let saved = step;
    const hint = () => `; nothing after step ${saved} was saved. Try a lower learning rate (now ${optOptions.lr}), gradient clipping (clip: 1, --clip 1) or warmup; if it happens at the first step, check the model's weights`;
    const paramsFinite = () => spill ? spilledFinite : Number.isFinite(e.k.sum_squares(e.p["lora.params"], layout.totalElements));
    const checkLoss = (value, what) => {
      if (!Number.isFinite(value)) {
        throw new NonFiniteError(`step ${step + 1}: ${what} is ${value} (sequence ${lastIndex} of the training data)${hint()}`, step + 1);
      }
    };
    const t0 = performance.now();
    let tokensSeen = 0, stopped = false;
    while (step < steps) {
      const stop2 = options.shouldStop?.();
      if (isThenable(stop2) ? await stop2 : stop2) {
        stopped = true;
        break;
      }
      let loss = 0, tokens2 = 0;
      if (!bw) {
        const batch = [];
        for (let micro = 0; micro < accum; micro++) batch.push(next());
        const zs = stepSeed(seed, step);
        const est = await zoEstimate(e, batch, seqLen, zs, zoEps);
        checkLoss(est.lossPlus, "the loss at \u03B8 + \u03B5z");
        checkLoss(est.lossMinus, "the loss at \u03B8 \u2212 \u03B5z");
        zoUpdate(e, zs, est.coeff, learningRate(optOptions, step), optOptions.weightDecay ?? 0);
        loss = (est.lossPlus + est.lossMinus) / 2;
        tokens2 = est.tokens;
      } else {
        for (let micro = 0; micro < accum; micro++) {
          const s = next();
          const T = Math.min(s.ids.length, seqLen);
          if (step + 1 < steps || micro + 1 < accum) {
            const after = peek();
            e.weights.expectRows(after.ids, Math.min(after.ids.length, seqLen), false);
          }
          bw.sink.accumulate = micro > 0;
          const r2 = await forwardBackward(e, bw, s.ids, s.targets, T, gradBuffer ? void 0 : fused);
          checkLoss(r2.loss, "the loss");
          loss += r2.loss / accum;
          tokens2 += r2.tokens;
        }
      }
      if (bw && gradBuffer) {
        let scale = 1 / accum;
        if (clip > 0) {
          const norm = Math.sqrt(e.k.sum_squares(gradPtr, layout.totalElements)) * scale;
          if (norm > clip) scale *= clip / norm;
        }
        opt.update(0, layout.totalElements, gradPtr, step, scale);
      }
      if (!paramsFinite()) {
        throw new NonFiniteError(`step ${step + 1}: the update made LoRA parameters non-finite (learning rate ${learningRate(optOptions, step)})${hint()}`, step + 1);
      }
      step++;
      tokensSeen += tokens2;
      losses.push(loss);
      const elapsed = (performance.now() - t0) / 1e3;
      options.onEvent?.({
        type: "step",
        step,
        steps,
        loss,
        lr: learningRate(optOptions, step - 1),
        tokens: tokens2,
        tokensPerSecond: tokensSeen / elapsed,
        elapsed
      });
      if (options.valEvery && step % options.valEvery === 0 && step < steps) await validate();
      if (options.saveEvery && step % options.saveEvery === 0 && step < steps && saveState) {
        await saveState(snapshot());
        saved = step;
        options.onEvent?.({
          type: "checkpoint",
          step
        });
      }
    }
    if (!stopped) await validate();
    if (saveState) {
      await saveState(snapshot());
      options.onEvent?.({
        type: "checkpoint",
        step
      });
    }
    const result = {
      layout,
      steps: step,
      losses,
      valLosses,
      stopped
    };
    if (params instanceof Float32Array) return {
      ...result,
      params
    };
    let gathered;
    return {
      ...result,
      get params() {
        if (!gathered) {
          gathered = new Float32Array(layout.totalElements);
          for (let l = 0; l < L; l++) gathered.set(params.layer(l), l * layerN);
        }
        return gathered;
      }
    };
  } finally {
    e.close();
  }
}

// src/run/evaluate.ts
var BATCH_BYTES = 16 * 2 ** 20;
var MOST_BATCH = 16;
async function evaluate(pack, sequences, options = {}) {
  checkPack(pack, "evaluate");
  checkOptions("evaluate options", options, EVALUATE_OPTIONS);
  if (options.seqLen !== void 0 && options.seqLen < 2) {
    throw new RangeError(`evaluate options: seqLen must be at least 2, got ${options.seqLen}`);
  }
  checkBudget("evaluate options", options.budget);
  const trainedOnly = options.score === "trained";
  checkSequences("evaluation", sequences, options.seqLen ?? Infinity, trainedOnly ? "any" : "none", pack.config.vocabSize);
  if (sequences.length === 0) throw new Error("nothing to evaluate: the dataset is empty");
  const seqLen = longestWithin(options.seqLen ?? Infinity, sequences);
  checkPositions("evaluate", "the longest sequence", seqLen, pack.config.maxPositionEmbeddings);
  const lora = options.adapter ? loraLayout(pack.config, options.adapter.config) : void 0;
  const engineOptions = {
    mode: "eval",
    seqLen,
    lora,
    budget: options.budget,
    variant: options.variant,
    resident: options.resident,
    threads: options.threads,
    kernels: options.kernels
  };
  if (options.batch !== void 0 && !(Number.isInteger(options.batch) && options.batch >= 1)) {
    throw new RangeError(`evaluate options: batch must be a whole number \u2265 1, got ${options.batch}`);
  }
  const batch = options.batch !== void 0 ? Math.min(options.batch, sequences.length) : await defaultBatch(pack, engineOptions, sequences.length);
  const e = await Engine.create(pack, {
    ...engineOptions,
    batch
  });
  try {
    if (options.adapter) await readAdapterInto(options.adapter, lora, e.arena.f32("lora.params"));
    let current = new SequenceBatch(e), ahead = new SequenceBatch(e);
    let sum = 0, tokens2 = 0, from = 0;
    let to = fill(current, sequences, from, seqLen, trainedOnly);
    while (from < sequences.length) {
      const next = fill(ahead, sequences, to, seqLen, trainedOnly);
      if (ahead.n) e.weights.expectRows(ahead.tokens, ahead.count, false);
      if (current.n) await batchLoss(e, current);
      for (let i = from, s = 0; i < to; i++) {
        if (Math.min(sequences[i].ids.length, seqLen) >= 2) {
          sum += current.sums[s];
          tokens2 += current.counts[s++];
        }
        options.onProgress?.(i + 1, sequences.length, tokens2 ? sum / tokens2 : NaN);
      }
      [current, ahead, from, to] = [
        ahead,
        current,
        to,
        next
      ];
    }
    if (tokens2 === 0) {
      throw new Error(trainedOnly ? "nothing to evaluate: no sequence has a trained target" : "nothing to evaluate: every sequence is shorter than 2 tokens");
    }
    const nll = sum / tokens2;
    return {
      nll,
      perplexity: Math.exp(nll),
      tokens: tokens2,
      sequences: sequences.length,
      batch
    };
  } finally {
    e.close();
  }
}
function fill(batch, sequences, from, seqLen, trainedOnly) {
  batch.clear();
  let i = from;
  for (; i < sequences.length && !batch.full; i++) {
    const T = Math.min(sequences[i].ids.length, seqLen);
    if (T >= 2) batch.add(sequences[i].ids, trainedOnly ? sequences[i].targets : void 0, T);
  }
  return i;
}
async function defaultBatch(pack, options, count) {
  const planned = await Engine.planOptions(pack, options);
  const bytes = (batch2) => planMemory(planRegions(pack.config, {
    ...planned,
    batch: batch2
  })).bytes;
  const one = bytes(1), each = bytes(2) - one;
  let batch = Math.max(1, Math.min(count, MOST_BATCH, 1 + Math.floor(BATCH_BYTES / each)));
  while (batch > 1 && options.budget !== void 0 && bytes(batch) > options.budget) batch--;
  return batch;
}

// src/run/generate.ts
init_describe();
function generate(pack, prompt, options = {}) {
  checkPack(pack, "generate");
  checkOptions("generate options", options, GENERATE_OPTIONS);
  checkBudget("generate options", options.budget);
  checkTokenIds("generate: prompt", prompt, pack.config.vocabSize);
  const maxTokens = options.maxTokens ?? 128;
  const T0 = prompt.length;
  if (T0 < 1) throw new Error("generate: the prompt is empty");
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new RangeError(`maxTokens must be a positive integer, got ${maxTokens}`);
  }
  const positions = pack.config.maxPositionEmbeddings;
  if (T0 + maxTokens > positions) {
    throw new RangeError(`a ${T0}-token prompt and ${maxTokens} new tokens need ${T0 + maxTokens} positions; the model has ${positions} (lower maxTokens to ${Math.max(0, positions - T0)} or shorten the prompt)`);
  }
  const eos = options.eosTokenIds ?? pack.config.eosTokenIds;
  checkTokenIds("generate options: eosTokenIds", eos);
  const sample = sampler(options);
  return tokens(pack, Int32Array.from(prompt), maxTokens, new Set(eos), sample, options);
}
function checkTokenIds(what, ids, vocabSize) {
  if (!Array.isArray(ids) && !(ArrayBuffer.isView(ids) && !(ids instanceof DataView))) {
    const hint = Number.isInteger(ids) ? ` (one id is a list of one: [${ids}])` : "";
    throw new TypeError(`${what} must be an array of token ids, got ${describeValue(ids)}${hint}`);
  }
  const list = ids, i = badTokenIdAt(list, vocabSize);
  if (i >= 0) {
    const shown = typeof list[i] === "string" ? JSON.stringify(list[i]) : String(list[i]);
    const range = vocabSize === void 0 ? "integers \u2265 0" : `integers from 0 to ${vocabSize - 1} (the vocabulary)`;
    throw new TypeError(`${what}[${i}] is ${shown}: token ids are ${range}`);
  }
}
async function* tokens(pack, prompt, maxTokens, eos, sample, options) {
  const T0 = prompt.length;
  const lora = options.adapter ? loraLayout(pack.config, options.adapter.config) : void 0;
  const e = await Engine.create(pack, {
    mode: "generate",
    seqLen: Math.max(2, T0),
    maxPositions: T0 + maxTokens,
    lora,
    resident: !options.streamWeights,
    budget: options.budget,
    variant: options.variant,
    threads: options.threads,
    kernels: options.kernels
  });
  try {
    if (options.adapter) await readAdapterInto(options.adapter, lora, e.arena.f32("lora.params"));
    const { L, V } = e.D;
    const logits = new Float32Array(V);
    const one = new Int32Array(1);
    let pos = 0, T = T0, ids = prompt;
    for (let n = 0; n < maxTokens; n++) {
      await embed(e, ids, T);
      for (let l = 0; l < L; l++) {
        await e.loadLayer(l, L - 1);
        await layerForward(e, l, T, pos);
      }
      finalNorm(e, T);
      await lastRowLogits(e, T - 1, logits);
      options.onLogits?.(logits);
      const next = sample(logits);
      yield next;
      if (eos.has(next)) return;
      pos += T;
      T = 1;
      one[0] = next;
      ids = one;
    }
  } finally {
    e.close();
  }
}
async function lastRowLogits(e, row, out) {
  const { Vc } = e.D;
  for (let c = 0; c < e.weights.vocabChunks; c++) {
    const vc = await e.weights.loadVocabChunk(c);
    const p = chunkLogits(e, row, row + 1, vc) >>> 2;
    out.set(e.F.subarray(p + row * Vc, p + row * Vc + vc), c * Vc);
  }
}
function sampler(options) {
  const temperature = options.temperature ?? 0.7, topP = options.topP ?? 0.8;
  if (!(temperature >= 0 && Number.isFinite(temperature))) {
    throw new RangeError(`temperature must be a finite number \u2265 0 (0 = greedy), got ${temperature}`);
  }
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
  let s = (options.seed ?? 0) >>> 0 ^ 2654435769;
  const random = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  let cand = new Int32Array(0), w = new Float64Array(0);
  return (logits) => {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    if (temperature <= 0) return best;
    if (cand.length < logits.length) {
      [cand, w] = [
        new Int32Array(logits.length),
        new Float64Array(logits.length)
      ];
    }
    const cut = logits[best] - temperature * Math.log(1e6);
    let n = 0;
    for (let i = 0; i < logits.length; i++) if (logits[i] >= cut) cand[n++] = i;
    sortBest(cand, n, logits);
    let total = 0;
    for (let i = 0; i < n; i++) total += w[i] = Math.exp((logits[cand[i]] - logits[best]) / temperature);
    let keep = 0, mass = 0;
    while (keep < n && mass < topP * total) mass += w[keep++];
    let u = random() * mass;
    for (let i = 0; i < keep; i++) {
      u -= w[i];
      if (u <= 0) return cand[i];
    }
    return cand[keep - 1];
  };
}
function sortBest(idx, n, logits) {
  const worse = (a, b) => logits[a] < logits[b] || logits[a] === logits[b] && a > b;
  const sift = (i, size) => {
    for (; ; ) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const m = l + 1 < size && worse(idx[l + 1], idx[l]) ? l + 1 : l;
      if (!worse(idx[m], idx[i])) return;
      const t = idx[i];
      idx[i] = idx[m];
      idx[m] = t;
      i = m;
    }
  };
  for (let i = (n >> 1) - 1; i >= 0; i--) sift(i, n);
  for (let end = n - 1; end > 0; end--) {
    const t = idx[0];
    idx[0] = idx[end];
    idx[end] = t;
    sift(0, end);
  }
}

// src/run/grad.ts
async function computeGradients(pack, seq, options = {}) {
  checkPack(pack, "computeGradients");
  checkOptions("computeGradients options", options, GRAD_OPTIONS);
  if (options.lora) checkOptions("computeGradients options.lora", options.lora, LORA_OPTIONS);
  checkBudget("computeGradients options", options.budget);
  checkBudget("computeGradients options", options.target, "target");
  const method = options.method ?? "mesp";
  const layout = loraLayout(pack.config, options.adapter?.config ?? options.lora ?? {});
  checkSequences("computeGradients", [
    seq
  ], options.seqLen ?? Infinity, "each", pack.config.vocabSize);
  const T = Math.min(seq.ids.length, options.seqLen ?? seq.ids.length);
  if (T < 2) throw new Error("the sequence needs at least 2 tokens");
  checkPositions("computeGradients", "the sequence", T, pack.config.maxPositionEmbeddings);
  const e = await Engine.create(pack, {
    mode: "train",
    method,
    seqLen: T,
    lora: layout,
    gradBuffer: true,
    savedInputDtype: options.savedInputDtype ?? options.ckptDtype,
    savedInputEvery: options.savedInputEvery ?? options.ckptEvery,
    savedInputs: options.savedInputs,
    budget: options.budget,
    target: options.target,
    variant: options.variant,
    threads: options.threads,
    kernels: options.kernels
  });
  try {
    const params = e.arena.f32("lora.params");
    if (options.adapter) await readAdapterInto(options.adapter, layout, params);
    else initLora(layout, params, options.seed ?? 0);
    const grads = e.arena.f32("lora.grad");
    if (method === "mezo") {
      const zs = stepSeed(options.seed ?? 0, 0);
      const est = await zoEstimate(e, [
        seq
      ], T, zs, options.zoEps ?? DEFAULT_ZO_EPS);
      e.k.normal_fill(e.p["lora.grad"], layout.totalElements, zs, 0);
      e.k.scale(e.p["lora.grad"], est.coeff, layout.totalElements);
      const loss2 = (await meanSequenceLoss(e, seq.ids, seq.targets, T)).loss;
      return {
        layout,
        loss: loss2,
        tokens: est.tokens,
        params: params.slice(),
        grads: grads.slice(),
        coeff: est.coeff
      };
    }
    const bw = new Backward(e, {
      ptr: e.p["lora.grad"],
      perLayer: false,
      accumulate: false
    }, {
      mebp: method === "mebp"
    });
    const { loss, tokens: tokens2 } = await forwardBackward(e, bw, seq.ids, seq.targets, T);
    return {
      layout,
      loss,
      tokens: tokens2,
      params: params.slice(),
      grads: grads.slice()
    };
  } finally {
    e.close();
  }
}

// src/run/training_state.ts
init_source();
init_describe();
var TRAINING_STATE_FILE = "checkpoint.safetensors";
var TENSORS = [
  "params",
  "adam_m",
  "adam_v"
];
var WHAT = {
  params: "LoRA parameters",
  adam_m: "AdamW first moment",
  adam_v: "AdamW second moment"
};
function checkedChecksum(state, run, tensors) {
  const c = new Checksum().update(new TextEncoder().encode(state)).update(new TextEncoder().encode(run));
  for (const [name, values] of tensors) {
    let at = 0;
    for (const piece of piecesOf(values)) {
      const i = firstNonFinite(piece);
      if (i >= 0) {
        throw new Error(`training state: ${WHAT[name]}: non-finite value ${piece[i]} at element ${at + i}`);
      }
      c.update(new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength));
      at += piece.length;
    }
  }
  return c.hex();
}
function stateFile(state, run) {
  const tensors = [
    [
      "params",
      state.params
    ]
  ];
  if (state.m) tensors.push([
    "adam_m",
    state.m
  ]);
  if (state.v) tensors.push([
    "adam_v",
    state.v
  ]);
  const entries = tensors.map(([name, values]) => ({
    name,
    dtype: "F32",
    shape: [
      values.length
    ],
    data: values instanceof Float32Array ? values : () => piecesOf(values)
  }));
  const meta = JSON.stringify({
    step: state.step,
    epoch: state.epoch,
    cursor: state.cursor,
    seed: state.seed,
    lora: state.lora,
    optimizer: state.optimizer,
    config: state.config
  });
  const runText = JSON.stringify(run);
  const metadata = {
    format: "mesp-checkpoint",
    state: meta,
    run: runText,
    // before a byte is written: a diverged state must never replace the last good one
    checksum: checkedChecksum(meta, runText, tensors)
  };
  return {
    entries,
    metadata
  };
}
async function writeTrainingState(sink, state, run = {}) {
  const { entries, metadata } = stateFile(state, run);
  await writeSafetensors(sink, entries, metadata);
}
var STREAM_PIECE = 1 << 20;
function trainingStateStream(state, run = {}, options = {}) {
  const { entries, metadata } = stateFile(state, run);
  const byteLength = encodeSafetensorsHeader(entries, metadata).fileSize;
  const viewed = /* @__PURE__ */ new WeakSet();
  const written = options.views ? entries.map((e) => viewsOf(e, viewed)) : entries;
  const { readable, writable } = new TransformStream();
  const writer = writable.getWriter();
  const write = async (chunk) => {
    if (viewed.has(chunk)) return await writer.write(chunk);
    for (let at = 0; at < chunk.length; at += STREAM_PIECE) {
      await writer.write(chunk.slice(at, at + STREAM_PIECE));
    }
  };
  writeSafetensors({
    write
  }, written, metadata).then(() => writer.close(), (err) => writer.abort(err)).catch(() => void 0);
  return {
    byteLength,
    stream: readable
  };
}
function viewsOf(e, viewed) {
  const data = e.data;
  if (!ArrayBuffer.isView(data) || !(data.buffer instanceof ArrayBuffer)) return e;
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const pieces = [];
  for (let at = 0; at < bytes.length; at += STREAM_PIECE) {
    const piece = bytes.subarray(at, at + STREAM_PIECE);
    viewed.add(piece);
    pieces.push(piece);
  }
  return {
    ...e,
    data: () => pieces
  };
}
var isCount = (v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
function validateState(name, meta) {
  const bad = (field, v, want) => {
    throw new Error(`${name}: state field ${field} is ${JSON.stringify(v)}, expected ${want}`);
  };
  if (!meta || typeof meta !== "object" || Array.isArray(meta)) bad("(all)", meta, "an object");
  const m = meta;
  for (const f of [
    "step",
    "epoch",
    "cursor"
  ]) if (!isCount(m[f])) bad(f, m[f], "an integer \u2265 0");
  if (!(typeof m.seed === "number" && Number.isSafeInteger(m.seed))) bad("seed", m.seed, "an integer");
  if (m.optimizer !== "sgd" && m.optimizer !== "adamw") bad("optimizer", m.optimizer, '"sgd" or "adamw"');
  const l = m.lora;
  if (!l || typeof l !== "object") bad("lora", l, "an object");
  if (!(isCount(l.rank) && l.rank >= 1)) bad("lora.rank", l.rank, "an integer \u2265 1");
  if (!(typeof l.alpha === "number" && Number.isFinite(l.alpha) && l.alpha > 0)) {
    bad("lora.alpha", l.alpha, "a finite number > 0");
  }
  if (typeof l.rslora !== "boolean") bad("lora.rslora", l.rslora, "true or false");
  const t = l.targets;
  if (!Array.isArray(t) || t.length === 0 || !t.every((x) => typeof x === "string")) {
    bad("lora.targets", t, "a non-empty list of names");
  }
  return {
    step: m.step,
    epoch: m.epoch,
    cursor: m.cursor,
    seed: m.seed,
    optimizer: m.optimizer,
    lora: {
      rank: l.rank,
      alpha: l.alpha,
      rslora: l.rslora,
      targets: [
        ...t
      ]
    },
    ...m.config === void 0 ? {} : {
      config: validateTrainConfig(name, m.config)
    }
  };
}
async function readStateHeader(source, name) {
  const file = await readSafetensorsHeader(source);
  if (file.metadata.format !== "mesp-checkpoint" || !file.metadata.state) {
    throw new Error(`${name}: not a mesp training state`);
  }
  const parse = (field, text) => {
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new Error(`${name}: metadata ${field} is not JSON (${err.message})`);
    }
  };
  const state = validateState(name, parse("state", file.metadata.state));
  for (const [t, info] of file.tensors) {
    if (!TENSORS.includes(t)) throw new Error(`${name}: unexpected tensor ${t}`);
    if (info.dtype !== "F32" || info.shape.length !== 1) {
      throw new Error(`${name}: tensor ${t} is ${info.dtype} [${info.shape}], expected a 1-D F32`);
    }
  }
  const length = file.tensors.get("params")?.shape[0] ?? 0;
  if (length === 0) throw new Error(`${name}: no parameters`);
  const has = (t) => file.tensors.has(t);
  if (state.optimizer === "adamw" && (!has("adam_m") || !has("adam_v"))) {
    throw new Error(`${name}: an AdamW training state without moments`);
  }
  const tensors = TENSORS.filter(has);
  for (const t of tensors) {
    const n = file.tensors.get(t).shape[0];
    if (n !== length) throw new Error(`${name}: ${t} has ${n} elements, params ${length}`);
  }
  const checksum = file.metadata.checksum;
  if (checksum === void 0) throw new Error(`${name}: no checksum (written by an older mesp?)`);
  const run = parse("run", file.metadata.run ?? "{}");
  return {
    name,
    file,
    state,
    run: run && typeof run === "object" ? run : {},
    tensors,
    length,
    checksum
  };
}
var StateCheck = class {
  #h;
  #sum = new Checksum();
  constructor(h) {
    this.#h = h;
    const text = new TextEncoder();
    this.#sum.update(text.encode(h.file.metadata.state)).update(text.encode(h.file.metadata.run ?? ""));
  }
  /** Elements `[at, at + values.length)` of tensor `t`. */
  piece(t, at, values) {
    this.#sum.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    const i = firstNonFinite(values);
    if (i >= 0) {
      throw new Error(`safetensors ${this.#h.name}: tensor ${JSON.stringify(t)}: non-finite value ${values[i]} at element ${at + i}`);
    }
    if (t === "adam_v" && values.some((x) => x < 0)) {
      throw new Error(`${this.#h.name}: adam_v holds a negative second moment`);
    }
  }
  /** After the last piece: throws unless the checksum is the recorded one. */
  finish() {
    const actual = this.#sum.hex();
    if (actual !== this.#h.checksum) {
      throw new Error(`${this.#h.name}: checksum mismatch (recorded ${this.#h.checksum}, contents ${actual}): the file is damaged`);
    }
  }
};
async function decodeTrainingState(bytes, name = "the training state's bytes") {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) {
    const hint = isThenable(bytes) ? " (a forgotten await?)" : "";
    throw new TypeError(`decodeTrainingState: expected the state file's bytes (a Uint8Array), got ${describeValue(bytes)}${hint}`);
  }
  const h = await readStateHeader(bytesSource(bytes, name), name);
  const check = new StateCheck(h);
  const values = {};
  for (const t of h.tensors) {
    const info = h.file.tensors.get(t);
    const at = bytes.byteOffset + info.offset;
    const x = at % 4 === 0 ? new Float32Array(bytes.buffer, at, info.byteLength / 4) : await readTensorF32(h.file, t);
    check.piece(t, 0, x);
    values[t] = x;
  }
  check.finish();
  return {
    state: {
      ...h.state,
      params: values.params,
      m: values.adam_m,
      v: values.adam_v
    },
    run: h.run
  };
}
var CHECK_PIECE = 1 << 16;
async function openTrainingState(source, name = source.name) {
  const h = await readStateHeader(source, name);
  const state = {
    ...h.state,
    length: h.length,
    tensors: h.tensors,
    read: (piece, into, done) => readPieces(h, piece, into, done)
  };
  await state.read(CHECK_PIECE, () => void 0);
  return {
    state,
    run: h.run
  };
}
async function readPieces(h, piece, into, done) {
  if (!(Number.isSafeInteger(piece) && piece > 0)) throw new RangeError(`${h.name}: pieces of ${piece}`);
  const check = new StateCheck(h);
  let scratch;
  try {
    for (const t of h.tensors) {
      const offset = h.file.tensors.get(t).offset;
      h.file.source.expect?.(offset, offset + h.length * 4);
      for (let i = 0, at = 0; at < h.length; i++, at += piece) {
        const n = Math.min(piece, h.length - at);
        const x = into(t, i) ?? (scratch ??= new Float32Array(piece)).subarray(0, n);
        if (x.length !== n) {
          throw new RangeError(`${h.name}: piece ${i} of ${t} has ${n} elements, not ${x.length}`);
        }
        await h.file.source.read(offset + at * 4, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
        check.piece(t, at, x);
        done?.(t, i);
      }
    }
    check.finish();
  } finally {
    h.file.source.close?.();
  }
}

// src/run/loss_svg.ts
function lossCurveSvg(train2, val = [], options = {}) {
  const W = options.width ?? 720, H = options.height ?? 400;
  const left = 60, right = 20, top = 36, bottom = 44;
  const all = [
    ...train2,
    ...val.map((v) => v.loss)
  ].filter(Number.isFinite);
  const lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
  const pad = (hi - lo) * 0.05 || 0.5;
  const y0 = lo - pad, y1 = hi + pad;
  const first = options.firstStep ?? 1;
  const steps = Math.max(first + train2.length - 1, ...val.map((v) => v.step), first);
  const X = (step) => left + (step - first) / Math.max(1, steps - first) * (W - left - right);
  const Y = (loss) => top + (1 - (loss - y0) / (y1 - y0)) * (H - top - bottom);
  const path = (pts) => pts.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const raw = train2.map((l, i) => [
    X(first + i),
    Y(l)
  ]);
  const k = Math.max(1, Math.round(train2.length / 25));
  const smooth = train2.map((_, i) => {
    const s = train2.slice(Math.max(0, i - k + 1), i + 1);
    return [
      X(first + i),
      Y(s.reduce((a, b) => a + b, 0) / s.length)
    ];
  });
  const ticks = 5;
  const grid = [];
  for (let i = 0; i <= ticks; i++) {
    const v = y0 + (y1 - y0) * i / ticks, y = Y(v);
    grid.push(`<line x1="${left}" x2="${W - right}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#eee"/>`);
    grid.push(`<text x="${left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${v.toFixed(2)}</text>`);
  }
  const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(options.title ?? "loss")}</text>
${grid.join("\n")}
<line x1="${left}" x2="${left}" y1="${top}" y2="${H - bottom}" stroke="#999"/>
<line x1="${left}" x2="${W - right}" y1="${H - bottom}" y2="${H - bottom}" stroke="#999"/>
<text x="${left}" y="${H - bottom + 16}" text-anchor="middle">${first}</text>
<text x="${W - right}" y="${H - bottom + 16}" text-anchor="middle">${steps}</text>
<text x="${(left + W - right) / 2}" y="${H - 10}" text-anchor="middle">step</text>
<path d="${path(raw)}" fill="none" stroke="#9ecae1" stroke-width="1"/>
<path d="${path(smooth)}" fill="none" stroke="#08519c" stroke-width="2"/>
${val.map((v) => `<circle cx="${X(v.step).toFixed(1)}" cy="${Y(v.loss).toFixed(1)}" r="3.5" fill="#e6550d"/>`).join("\n")}
<text x="${W - right}" y="${top + 12}" text-anchor="end" fill="#08519c">train (running mean)</text>
${val.length ? `<text x="${W - right}" y="${top + 26}" text-anchor="end" fill="#e6550d">validation</text>` : ""}
</svg>
`;
}

// mod.ts
var writeCheckpoint = writeTrainingState;
var decodeCheckpoint = decodeTrainingState;
export {
  ATTENTION,
  Arena,
  Backward,
  DTYPE,
  DTYPE_BITS,
  Engine,
  FileNotFoundError,
  Gemm,
  HUB_ENDPOINT,
  KERNEL_FILES,
  LINEARS,
  NonFiniteError,
  Optimizer,
  PRESETS,
  PlanTooLargeError,
  StalePackError,
  TRAINING_STATE_FILE,
  VARIANTS,
  adapterConfigJson,
  blobFiles,
  blobSource,
  buildTokenCache,
  bytesSource,
  cacheStorageRangeCache,
  chatDefaultsFromTemplate,
  checkpointFingerprint,
  computeGradients,
  createStreamDecoder,
  decodeCheckpoint,
  decodeTokenCache,
  decodeTrainingState,
  dequantize,
  encodeLoraTensors,
  encodeSafetensors,
  encodeTokenCache,
  evaluate,
  fetchSource,
  formatMB,
  formatPlan,
  forwardBackward,
  generate,
  hubFileUrl,
  hubFiles,
  learningRate,
  loadKernels,
  loadTokenizer,
  loraLayout,
  lossCurveSvg,
  makeModel,
  memoryFiles,
  memoryRangeCache,
  memorySpill,
  openAdapter,
  openCheckpoint,
  openPack,
  openTrainingState,
  opfsRangeCache,
  opfsSpillFile,
  paramCounts,
  parseAdapterConfig,
  parseHubId,
  parseJsonl,
  parseModelConfig,
  parseSize,
  peftName,
  piecesOf,
  planMemory,
  planModel,
  planPack,
  planRegions,
  planTraining,
  processMemory,
  quantize,
  r2Files,
  r2Source,
  readAdapterInto,
  readSafetensorsHeader,
  readTensorF32,
  renderChat,
  sampler,
  sequencesFingerprint,
  tokenizeDataset,
  tokenizeExample,
  tokenizeInWorker,
  train,
  trainingStateStream,
  unzip,
  unzipStore,
  urlFiles,
  writeCheckpoint,
  writeLoraTensors,
  writePack,
  writeSafetensors,
  writeTrainingState,
  zipStore,
  zoEstimate,
  zoUpdate
};
