/**
 * Stores of fetched byte ranges for {@linkcode fetchSource}'s `cache` option: in memory up to a budget, or in
 * the Cache API (browsers, workers, Deno), which keeps them on disk across page loads, so that after the
 * first step (or the first visit) a remote pack is read locally. The Origin Private File System's cache, faster
 * than the Cache API in a browser, is `opfsRangeCache` in `opfs_range_cache.ts`.
 *
 * @module
 */
import type { RangeCache } from "./source.ts";

/** Options for {@linkcode memoryRangeCache}. */
export interface MemoryRangeCacheOptions {
  /** Bytes kept at most (default: no limit). Once full, later ranges are not kept (the first stay). */
  maxBytes?: number;
}

/**
 * Ranges kept in memory. Once `maxBytes` are held, new ranges are not kept: a training step reads the same
 * ranges in the same order every time, so keeping the first ones (rather than evicting) serves that share of
 * every later pass.
 */
export function memoryRangeCache(options: MemoryRangeCacheOptions = {}): RangeCache & { bytes(): number } {
  const max = options.maxBytes ?? Infinity;
  const kept = new Map<string, Uint8Array>();
  let bytes = 0;
  return {
    get(offset, into) {
      const hit = kept.get(`${offset}+${into.length}`);
      if (hit) into.set(hit);
      return Promise.resolve(hit !== undefined);
    },
    put(offset, data) {
      const key = `${offset}+${data.length}`;
      if (!kept.has(key) && bytes + data.length <= max) {
        kept.set(key, data.slice());
        bytes += data.length;
      }
      return Promise.resolve();
    },
    bytes: () => bytes,
  };
}

/** Options for {@linkcode cacheStorageRangeCache}. */
export interface CacheStorageRangeCacheOptions {
  /** The notice that a range could not be kept (a full quota, storage unavailable), once (default `console.warn`). */
  onNotice?: (message: string) => void;
}

/**
 * Ranges kept in a Cache API cache (`await caches.open("mesp")`), one entry per range under `key` (a URL
 * naming the file's content, e.g. the pack's own URL: its name holds the checkpoint's fingerprint). What the
 * browser keeps persists across page loads, within the origin's storage quota; a full quota only stops the
 * keeping, with a notice.
 */
export function cacheStorageRangeCache(
  cache: Cache,
  key: string | URL,
  options: CacheStorageRangeCacheOptions = {},
): RangeCache {
  const notice = options.onNotice ?? ((m: string) => console.warn(m));
  let noticed = false;
  // relative to the page or worker, as fetchSource resolves the pack's own URL
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  let base: URL;
  try {
    base = new URL(String(key), page);
  } catch {
    throw new TypeError(
      `cacheStorageRangeCache: key ${JSON.stringify(String(key))} is not a URL` +
        (page ? "" : " (nor is there a page here to resolve a relative one against)"),
    );
  }
  const request = (offset: number, length: number) => {
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
        // over quota, or storage unavailable: reads go to the network as before
        if (!noticed) {
          noticed = true;
          notice(
            `range cache ${base.href}: cannot keep bytes ${offset}..${
              offset + data.length
            } in the Cache API ` +
              `(${(err as Error)?.message ?? err}); later reads of ranges not kept go to the network`,
          );
        }
      }
    },
  };
}
