/**
 * Weights, adapters and training states in a Cloudflare R2 bucket, read through the Worker's bucket binding
 * (`env.BUCKET`) instead of over HTTP. The bucket answers as a server of Range requests would, so
 * {@linkcode fetchSource} reads it unchanged: announced runs as one ranged `get`, the range caches, and the
 * check that the object was not replaced mid-run (its ETag). Only the binding's documented calls are used
 * (`head`, `get` with a `range`, `list`), so any object with those methods will do.
 *
 * @module
 */

import { fetchSource, type FetchSourceOptions, type ModelFiles, type WeightSource } from "./source.ts";

/** What {@linkcode r2Source} needs to know of an R2 object: its size and ETag. */
export interface R2ObjectInfo {
  readonly size: number;
  /** The ETag in quotes, as an HTTP header carries it. */
  readonly httpEtag: string;
}

/** An R2 object with its bytes (`get`'s answer when the object exists). */
export interface R2ObjectWithBody extends R2ObjectInfo {
  readonly body: ReadableStream<Uint8Array>;
}

/** The part of an R2 bucket binding mesp uses (a Worker's `env.BUCKET` has it). */
export interface R2BucketLike {
  head(key: string): Promise<R2ObjectInfo | null>;
  get(
    key: string,
    options?: { range?: { offset: number; length: number } },
  ): Promise<R2ObjectWithBody | R2ObjectInfo | null>;
  /** Used by {@linkcode r2Files}' `list` only. */
  list?(options?: { prefix?: string; cursor?: string }): Promise<{
    objects: { key: string }[];
    truncated: boolean;
    cursor?: string;
  }>;
}

/** Options for {@linkcode r2Source} and {@linkcode r2Files}: those of {@linkcode fetchSource} that apply. */
export type R2SourceOptions = Omit<FetchSourceOptions, "fetch" | "headers">;

/**
 * A {@linkcode WeightSource} over the object `key` of an R2 bucket binding: a pack, a stored training state
 * (`openTrainingState(r2Source(env.BUCKET, "run-1/state"))`), a safetensors file. Reads are ranged `get`s;
 * an object replaced while it is read (another ETag or size) stops the run, as with {@linkcode fetchSource}.
 * A missing object is a `FileNotFoundError` naming `r2:KEY` (or `options.name`).
 *
 * @example
 * ```ts ignore
 * const pack = await openPack(r2Source(env.MODELS, "qwen2.5-0.5b.pack", { cache: memoryRangeCache() }));
 * ```
 */
export function r2Source(bucket: R2BucketLike, key: string, options: R2SourceOptions = {}): WeightSource {
  const name = options.name ?? `r2:${key}`;
  return fetchSource(name, { ...options, name, fetch: bucketFetch(bucket, key) });
}

/**
 * A model directory in an R2 bucket: the objects under `prefix` (e.g. `"run-1/"` for an adapter's
 * `adapter_config.json` and `adapter_model.safetensors`, for {@linkcode openAdapter}).
 */
export function r2Files(bucket: R2BucketLike, prefix = "", options: R2SourceOptions = {}): ModelFiles {
  const name = options.name ?? `r2:${prefix}`;
  return {
    name,
    async readText(file) {
      const where = options.name ? `${name}/${file}` : `r2:${prefix}${file}`;
      let object;
      try {
        object = await bucket.get(prefix + file);
      } catch (err) {
        throw new Error(`cannot read ${where}: ${(err as Error)?.message ?? err}`, { cause: err });
      }
      if (!object) return undefined;
      if (!("body" in object)) throw new Error(`${where}: the bucket answered without a body`);
      return await new Response(object.body).text();
    },
    source(file) {
      return r2Source(bucket, prefix + file, { ...options, name: undefined });
    },
    list: bucket.list && (async () => {
      const files: string[] = [];
      for (let cursor: string | undefined, more = true; more;) {
        const page = await bucket.list!({ prefix, cursor });
        for (const o of page.objects) files.push(o.key.slice(prefix.length));
        more = page.truncated;
        cursor = page.cursor;
      }
      return files.sort();
    }),
  };
}

const RANGE = /^bytes=(\d+)-(\d+)$/;

/**
 * The bucket's object `key` as an HTTP server of it would answer {@linkcode fetchSource}'s requests: `HEAD`,
 * `GET` with `Range: bytes=a-b` (206, or 416 past the end) and `GET` of the whole object (200), with its
 * size and ETag; 404 when it does not exist.
 */
function bucketFetch(bucket: R2BucketLike, key: string): typeof fetch {
  const found = (object: R2ObjectInfo, status: number, headers: Record<string, string>, body?: BodyInit) =>
    new Response(body ?? null, { status, headers: { etag: object.httpEtag, ...headers } });
  const missing = () => new Response(null, { status: 404, statusText: "no such object" });
  return async (_input, init) => {
    if (init?.method === "HEAD") {
      const object = await bucket.head(key);
      return object ? found(object, 200, { "content-length": String(object.size) }) : missing();
    }
    const range = new Headers(init?.headers).get("range");
    if (range === null) {
      const object = await bucket.get(key);
      if (!object) return missing();
      return found(object, 200, { "content-length": String(object.size) }, (object as R2ObjectWithBody).body);
    }
    const m = RANGE.exec(range);
    if (!m) throw new Error(`r2:${key}: unsupported range ${range}`);
    const offset = Number(m[1]), length = Number(m[2]) - offset + 1;
    let object;
    try {
      object = await bucket.get(key, { range: { offset, length } });
    } catch (err) {
      // R2 refuses a range that starts at or past the end (error 10039) instead of answering 416
      const info = await bucket.head(key);
      if (info && offset >= info.size) return found(info, 416, { "content-range": `bytes */${info.size}` });
      throw err;
    }
    if (!object) return missing();
    const body = (object as R2ObjectWithBody).body;
    if (offset + length > object.size) {
      await body?.cancel();
      return found(object, 416, { "content-range": `bytes */${object.size}` });
    }
    return found(object, 206, {
      "content-range": `bytes ${offset}-${offset + length - 1}/${object.size}`,
      "content-length": String(length),
    }, body);
  };
}
