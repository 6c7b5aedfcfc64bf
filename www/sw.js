// The shell's service worker: after the first visit the page opens and runs with the network off.
// It keeps the shell and the engine (the files `ASSETS` names, written here by build.mjs with
// the build's `VERSION`) in one cache per build, answers those requests from it, and leaves every
// other request (models, fixtures) to the network; the models a user keeps are in the page's own
// cache (OPFS or IndexedDB), not here. A new build's worker takes over only once no page of the
// old one is open, so a page never mixes one build's script with another's wasm.

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(`glassbox-shell-${VERSION}`)
      .then((cache) => cache.addAll(ASSETS)),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("glassbox-shell-") && n !== `glassbox-shell-${VERSION}`).map((n) => caches.delete(n)))),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  // The page is the same whatever its query (`?model=`, `?backend=`) or fragment.
  const page = request.mode === "navigate" && (url.pathname.endsWith("/") || url.pathname.endsWith("/index.html"));
  const path = page ? "./" : "." + url.pathname.slice(new URL(".", self.location.href).pathname.length - 1);
  if (!ASSETS.includes(path)) return;
  event.respondWith(
    caches.open(`glassbox-shell-${VERSION}`).then(async (cache) => (await cache.match(path)) ?? fetch(request)),
  );
});
