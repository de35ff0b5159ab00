/* lottrace service worker (scope /): the app's pages and files kept for offline use.
   Pages and /static/ files: the network first (so an update shows at once), the copy kept
   when the network fails. The API is never cached: what is logged offline waits in the
   page's IndexedDB outbox (app.js) and is sent when the connection is back. */
"use strict";
const CACHE = "lottrace-shell-@VERSION@";
const SHELL = [
  "/", "/login", "/field", "/upload",
  "/static/app.css", "/static/app.js", "/static/login.js", "/static/home.js",
  "/static/field.js", "/static/upload.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE).then((cache) =>
      Promise.all(SHELL.map((url) =>
        fetch(url, { headers: { Accept: "text/html,*/*" } })
          .then((r) => (r.ok ? cache.put(url, r) : null)).catch(() => null))))
      .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== location.origin) return;
  const page = req.mode === "navigate";
  if (!page && !url.pathname.startsWith("/static/")) return;  // the API: never from a cache
  event.respondWith(
    fetch(req).then((response) => {
      if (response.ok) {
        const copy = response.clone();
        caches.open(CACHE).then((cache) => cache.put(page ? url.pathname : req, copy));
      }
      return response;
    }).catch(() =>
      caches.match(page ? url.pathname : req).then((hit) => hit || Response.error())));
});
