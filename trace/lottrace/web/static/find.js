/* /find: a buyer finds a lot by code, producer or container (GET /api/find). */
"use strict";
(function () {
  const form = document.getElementById("find");
  const input = document.getElementById("q");
  const found = document.getElementById("found");
  const table = document.getElementById("results");
  const tbody = table.querySelector("tbody");

  function cell(row, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
  }

  async function search(q, push) {
    if (push) history.replaceState(null, "", "?q=" + encodeURIComponent(q));
    found.textContent = "";
    let r;
    try {
      r = await LT.api("/api/find?q=" + encodeURIComponent(q));
    } catch (err) { found.textContent = err.message; return; }
    if (r.status === 401) { LT.signOut(); return; }
    if (!r.ok) { found.textContent = LT.t("error.generic", { detail: (r.body && r.body.detail) || r.status }); return; }
    const rows = r.body.results;
    tbody.replaceChildren();
    for (const x of rows) {
      const tr = document.createElement("tr");
      const a = document.createElement("a");
      a.href = "/lots/" + encodeURIComponent(x.lot);
      a.textContent = x.lot;
      cell(tr, a);
      cell(tr, LT.t("find.by." + x.matched, { by: x.by }));
      cell(tr, x.stage);
      cell(tr, x.kg == null ? "" : LT.fmt(x.kg), "num");
      tbody.appendChild(tr);
    }
    table.hidden = rows.length === 0;
    found.textContent = rows.length
      ? LT.t("find.count", { n: rows.length }) + (r.body.more ? " " + LT.t("find.more") : "")
      : LT.t("find.none", { q: r.body.query });
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    if (q) search(q, true);
  });
  if (!LT.token()) { location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search)); return; }
  LT.me().then((who) => { if (who) LT.showForRole(who.role); });
  const first = new URLSearchParams(location.search).get("q");
  if (first) { input.value = first; search(first, false); }
})();
