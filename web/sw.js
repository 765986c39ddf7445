// The page's service worker: keeps the page and the library (web/ and dist/) so the page opens offline once
// it has been loaded. Network first, so a new version is picked up whenever the server is there; the cache
// answers only when the network fails. Nothing else (a model folder given by URL) goes through it.
const CACHE = "mesp-web-v1";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (e) => e.waitUntil(self.clients.claim()));

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  const scope = new URL("../", self.location.href).pathname; // the folder holding web/ and dist/
  const mine = url.origin === self.location.origin && e.request.method === "GET" &&
    !e.request.headers.has("range") &&
    (url.pathname.startsWith(`${scope}web/`) || url.pathname.startsWith(`${scope}dist/`));
  if (!mine) return;
  e.respondWith((async () => {
    const cache = await caches.open(CACHE);
    try {
      const response = await fetch(e.request);
      if (response.ok) await cache.put(e.request, response.clone());
      return response;
    } catch (err) {
      const cached = await cache.match(e.request, { ignoreSearch: true });
      if (cached) return cached;
      throw err;
    }
  })());
});
