// The Cache API range cache (`cacheStorageRangeCache`) on Deno's own Cache API: ranges kept and served back
// byte for byte, another length or an unknown range a miss; a cache that cannot keep (a full quota) says so
// once and leaves reads working. The memory cache's budget keeps the first ranges.
import { assert, assertEquals } from "./_assert.ts";
import { cacheStorageRangeCache, memoryRangeCache } from "../src/io/range_cache.ts";

Deno.test("cacheStorageRangeCache: ranges kept in the Cache API and served back, misses are misses", async () => {
  const name = `mesp-test-${crypto.randomUUID()}`;
  const cache = await caches.open(name);
  try {
    const notices: string[] = [];
    const c = cacheStorageRangeCache(cache, "https://example.test/model.pack", {
      onNotice: (m) => notices.push(m),
    });
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 255);
    await c.put(1000, data);
    const back = new Uint8Array(300);
    assert(await c.get(1000, back), "a kept range missed");
    assertEquals(back, data);
    assert(!(await c.get(1000, new Uint8Array(299))), "another length hit");
    assert(!(await c.get(1001, new Uint8Array(300))), "another offset hit");
    // another file's key does not see this one's ranges
    const other = cacheStorageRangeCache(cache, "https://example.test/other.pack");
    assert(!(await other.get(1000, new Uint8Array(300))), "another key hit");
    assertEquals(notices, []);
  } finally {
    await caches.delete(name);
  }
});

Deno.test("cacheStorageRangeCache: a cache that cannot keep ranges says so once, naming the key", async () => {
  const full = {
    match: () => Promise.resolve(undefined),
    put: () => Promise.reject(new DOMException("quota exceeded", "QuotaExceededError")),
  } as unknown as Cache;
  const notices: string[] = [];
  const c = cacheStorageRangeCache(full, "https://example.test/model.pack", {
    onNotice: (m) => notices.push(m),
  });
  await c.put(0, new Uint8Array(10));
  await c.put(10, new Uint8Array(10));
  assert(!(await c.get(0, new Uint8Array(10))), "nothing was kept, yet a hit");
  assertEquals(notices.length, 1, `notices: ${JSON.stringify(notices)}`);
  assert(
    notices[0].startsWith("range cache https://example.test/model.pack: cannot keep bytes 0..10") &&
      notices[0].includes("quota exceeded"),
    notices[0],
  );
});

Deno.test("memoryRangeCache: within its budget the first ranges are kept, later ones are not", async () => {
  const c = memoryRangeCache({ maxBytes: 15 });
  await c.put(0, new Uint8Array(10).fill(1));
  await c.put(10, new Uint8Array(10).fill(2)); // over the budget: not kept
  await c.put(20, new Uint8Array(5).fill(3));
  const a = new Uint8Array(10), b = new Uint8Array(10), d = new Uint8Array(5);
  assert(await c.get(0, a) && a.every((x) => x === 1), "the first range");
  assert(!(await c.get(10, b)), "a range over the budget was kept");
  assert(await c.get(20, d) && d.every((x) => x === 3), "a range that still fits");
  assertEquals(c.bytes(), 15);
});

Deno.test("cacheStorageRangeCache: a relative key needs a page to resolve it against, and says so", () => {
  const cache = {} as Cache;
  let message = "";
  try {
    cacheStorageRangeCache(cache, "/packs/model.pack");
  } catch (err) {
    message = (err as Error).message;
  }
  assertEquals(
    message,
    'cacheStorageRangeCache: key "/packs/model.pack" is not a URL (nor is there a page here to resolve a relative one against)',
  );
});
