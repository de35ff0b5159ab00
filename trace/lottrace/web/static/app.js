/* lottrace web app: the shell every page shares.
   LT.t(key, values)      a message of the page's language (from body data-i18n)
   LT.token() / LT.setToken(t) / LT.signOut()   the token, kept in localStorage
   LT.api(path, options)  fetch with Authorization: Bearer; resolves {ok, status, body};
                          rejects with LT.Offline when the server cannot be reached
   LT.me()                who the token is (GET /api/me), once per page
   LT.outbox              checkpoints kept in IndexedDB until sent (add, count, flush)
   LT.num(text)           a number typed with a decimal comma or point, or NaN
   LT.fmt(n)              a number written in the page's language */
"use strict";
(function () {
  const body = document.body;
  const words = JSON.parse(body.dataset.i18n || "{}");
  const lang = body.dataset.lang || "es";
  const TOKEN = "lottrace.token";

  function t(key, values) {
    let text = words[key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }

  class Offline extends Error {}

  function token() { return localStorage.getItem(TOKEN); }
  function setToken(value) { localStorage.setItem(TOKEN, value); }
  /* Sign out: what this user leaves on the phone goes with them (issue #19, F6, F10). The
     outbox is emptied, after saying how many checkpoints are not sent and asking, so that the
     next user's token never sends them as theirs; the pages the service worker kept, but the
     shell, are deleted (their addresses name the lots looked at). */
  const SHELL_PAGES = ["/", "/login", "/field", "/upload"];
  async function signOut() {
    let items = [];
    try { items = await outbox.all(); } catch (err) { items = []; }
    if (items.length && !window.confirm(t("outbox.signout", { n: items.length }))) return false;
    try { await tx("readwrite", (s) => s.clear()); } catch (err) { /* no IndexedDB: nothing kept */ }
    try {
      if ("caches" in window) {
        for (const key of await caches.keys()) {
          const cache = await caches.open(key);
          for (const req of await cache.keys()) {
            const path = new URL(req.url).pathname;
            if (!SHELL_PAGES.includes(path) && !path.startsWith("/static/")) await cache.delete(req);
          }
        }
      }
    } catch (err) { /* no cache storage: nothing kept */ }
    localStorage.removeItem(TOKEN);
    location.assign("/login");
    return true;
  }

  function toLogin() {
    location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    const tok = opts.token || token();
    if (tok) headers.Authorization = "Bearer " + tok;
    let payload = opts.body;
    if (payload !== undefined && !(payload instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(path, { method: opts.method || "GET", headers, body: payload });
    } catch (err) {
      unreachable = true;
      connection();
      throw new Offline(t("error.network"));
    }
    if (unreachable) { unreachable = false; connection(); }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) data = await response.json();
    else data = await response.text();
    return { ok: response.ok, status: response.status, body: data };
  }

  let mePromise = null;
  function me() {
    if (!mePromise) {
      mePromise = api("/api/me").then((r) => {
        if (r.status === 401) { localStorage.removeItem(TOKEN); toLogin(); return null; }
        return r.ok ? r.body : null;
      }).catch(() => null);
    }
    return mePromise;
  }

  /* Show only what a role may use: elements with data-role="field qc" are hidden for others. */
  function showForRole(role) {
    for (const el of document.querySelectorAll("[data-role]")) {
      const roles = el.dataset.role.split(" ");
      const item = el.closest("li") || el;
      item.hidden = !roles.includes(role);
    }
  }

  function num(text) {
    const s = String(text).trim().replace(/\s/g, "");
    if (!/^[-+]?(\d+([.,]\d*)?|[.,]\d+)$/.test(s)) return NaN;
    return Number(s.replace(",", "."));
  }

  /* As lottrace.numfmt writes numbers: 1234.5 in English, 1234,5 in Spanish (no grouping,
     so what is shown can be typed back). */
  function fmt(n) {
    const text = new Intl.NumberFormat("en-US", { maximumFractionDigits: 3, useGrouping: false }).format(n);
    return lang === "es" ? text.replace(".", ",") : text;
  }

  /* ------------------------------------------------------------------ the outbox */

  const DB = "lottrace", STORE = "outbox";
  function openDb() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  async function tx(mode, work) {
    const db = await openDb();
    return new Promise((resolve, reject) => {
      const store = db.transaction(STORE, mode).objectStore(STORE);
      const req = work(store);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  const outbox = {
    add(form) { return tx("readwrite", (s) => s.add({ form, kept: new Date().toISOString() })).then(show); },
    all() { return tx("readonly", (s) => s.getAll()); },
    remove(id) { return tx("readwrite", (s) => s.delete(id)); },
    put(item) { return tx("readwrite", (s) => s.put(item)); },
    async count() { return (await outbox.all()).filter((i) => !i.problem).length; },
    sending: false,
    /* Send what waits, oldest first; stop at the first that cannot reach the server. */
    async flush() {
      if (outbox.sending || !token()) return 0;
      outbox.sending = true;
      let sent = 0;
      try {
        for (const item of await outbox.all()) {
          if (item.problem) continue;
          let r;
          try {
            r = await api("/api/field/events", { method: "POST", body: item.form });
          } catch (err) { break; }
          if (r.ok) { await outbox.remove(item.id); sent += 1; }
          else if (r.status >= 400 && r.status < 500 && r.status !== 401 && r.status !== 408 && r.status !== 429) {
            item.problem = (r.body && r.body.detail) || String(r.status);
            await outbox.put(item);
          } else break;
        }
      } finally {
        outbox.sending = false;
      }
      await show(sent);
      document.dispatchEvent(new CustomEvent("lt:outbox", { detail: { sent } }));
      return sent;
    },
  };

  async function show(sent) {
    const line = document.getElementById("outbox");
    if (!line) return;
    let items = [];
    try { items = await outbox.all(); } catch (err) { return; }
    const waiting = items.filter((i) => !i.problem).length;
    const failed = items.filter((i) => i.problem);
    const parts = [];
    if (waiting) parts.push(t("outbox.waiting", { n: waiting }));
    if (typeof sent === "number" && sent) parts.push(t("outbox.sent", { n: sent }));
    for (const f of failed) parts.push(t("outbox.failed", { lot: f.form.lot || "?", detail: f.problem }));
    line.textContent = parts.join(" · ");
    line.dataset.waiting = String(waiting);
    line.hidden = parts.length === 0;
  }

  /* Offline is what the browser says or what the last call to the server found: a
     phone on a network without the server (or a browser that has not noticed) still
     says navigator.onLine. */
  let unreachable = false;
  function connection() {
    const off = document.getElementById("offline");
    if (off) off.hidden = navigator.onLine && !unreachable;
  }

  /* ------------------------------------------------------------------ start */

  window.LT = { t, lang, token, setToken, signOut, api, me, num, fmt, outbox, Offline, showForRole, toLogin };

  document.addEventListener("DOMContentLoaded", () => {
    const logout = document.getElementById("logout");
    if (token() && logout) { logout.hidden = false; logout.addEventListener("click", (e) => { e.preventDefault(); signOut(); }); }
    if (body.dataset.auth === "required" && !token()) { toLogin(); return; }
    if (token()) me().then((who) => { if (who) showForRole(who.role); });
    else showForRole("");  // signed out: no page links but home and sign in
    connection();
    window.addEventListener("online", () => { connection(); outbox.flush(); });
    window.addEventListener("offline", connection);
    show().then(() => { if (navigator.onLine) outbox.flush(); });
    setInterval(() => { if (navigator.onLine) outbox.flush(); }, 30000);
    if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
  });
})();
