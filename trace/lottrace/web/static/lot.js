/* /lots/{lot}: the live passport of a lot the caller may see (GET /api/lots/{lot}/card). */
"use strict";
(function () {
  const code = decodeURIComponent(location.pathname.split("/").pop());
  const state = document.getElementById("state");
  const $ = (id) => document.getElementById(id);

  function svgInto(holder, text, label) {
    holder.replaceChildren();
    if (!text) return;
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const el = doc.documentElement;
    if (!el || el.nodeName !== "svg") return;
    const svg = document.importNode(el, true);
    svg.removeAttribute("id"); // the passport's map id: the holder already has it
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    holder.appendChild(svg);
  }

  function rows(id, items, cols) {
    const tbody = $(id).querySelector("tbody");
    tbody.replaceChildren();
    for (const item of items) {
      const tr = document.createElement("tr");
      for (const [value, cls] of cols(item)) {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        td.textContent = value == null ? "—" : String(value);
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
  }

  const day = (iso) => (iso || "").slice(0, 16).replace("T", " ");
  const n = (x) => (x == null ? null : LT.fmt(x));

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = document.createElement("a");
    a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function show(d) {
    const w = (key) => (d.words && d.words[key]) || key;
    $("lot-code").textContent = d.lot;
    $("lot-kg").textContent = LT.fmt(d.kg);
    $("lot-stage").textContent = w(d.stage);
    document.title = d.lot + " · lottrace";
    rows("exports", d.exports, (x) => [[x.container], [x.destination], [x.buyer_name || x.buyer], [day(x.time)]]);
    $("exports").hidden = d.exports.length === 0;
    rows("producers", d.shares, (s) => [[s.producer], [LT.fmt(Math.round(s.share * 1000) / 10) + " %", "num"], [s.women ? LT.t("lot.yes") : LT.t("lot.no")]]);
    svgInto($("plot-map"), d.map_svg, LT.t("lot.plots"));
    const altitude = {};
    for (const p of d.plots) altitude[p.plot_id] = p.altitude_m;
    rows("harvests", d.harvests, (h) => [[h.lot], [h.producer], [h.variety], [h.process], [n(altitude[h.plot_id]), "num"], [n(h.kg), "num"]]);
    rows("qc", d.qc, (q) => [[q.lot], [q.site], [w(q.result)], [n(q.moisture_pct), "num"], [n(q.cup_score), "num"], [day(q.time)]]);
    rows("certs", d.certifications, (c) => [[c.scheme], [c.certified ? LT.t("lot.yes") : LT.t("lot.no")],
      [c.breaking.map((b) => b.lot + ": " + b.reason).join("; ") + (c.breaking_total > c.breaking.length ? " …" : "")]]);
    const route = $("route");
    route.replaceChildren();
    for (const s of d.steps) {
      const li = document.createElement("li");
      const what = document.createElement("strong");
      what.textContent = w(s.stage) + " · " + s.site;
      li.appendChild(what);
      li.appendChild(document.createTextNode(" " + day(s.time) + (s.hours == null ? "" : " (+" + LT.fmt(Math.round(s.hours * 10) / 10) + " h)") + " · " + s.lot));
      route.appendChild(li);
    }
    $("route-total").textContent = d.total_hours == null ? "" : LT.t("lot.total", { h: LT.fmt(d.total_hours) });
    const problems = d.eudr_problems || [];
    $("eudr-check").textContent = problems.length
      ? LT.t("lot.eudr_bad", { n: problems.length })
      : LT.t("lot.eudr_ok", { n: d.eudr_plots });
    $("eudr-check").className = problems.length ? "problem" : "ok";
    const list = $("eudr-problems");
    list.replaceChildren();
    for (const p of problems) {
      const li = document.createElement("li");
      li.textContent = p.message || p.problem || JSON.stringify(p);
      list.appendChild(li);
    }
    svgInto($("qr"), d.qr_svg, LT.t("lot.qr") + ": " + d.url);
    $("qr-url").href = d.url;
    $("qr-url").textContent = d.url;
    $("head").textContent = d.head.seq + " · " + d.head.hash.slice(0, 16) + "…";
    $("geojson").addEventListener("click", async () => {
      const r = await LT.api("/api/lots/" + encodeURIComponent(d.lot) + "/eudr");
      if (r.ok) download(d.lot + "-eudr.geojson", JSON.stringify(r.body, null, 1), "application/geo+json");
      else $("eudr-check").textContent = LT.t("error.generic", { detail: (r.body && r.body.detail) || r.status });
    });
  }

  async function load() {
    if (!LT.token()) { location.assign("/login?next=" + encodeURIComponent(location.pathname)); return; }
    LT.me().then((who) => { if (who) LT.showForRole(who.role); });
    let r;
    try {
      r = await LT.api("/api/lots/" + encodeURIComponent(code) + "/card");
    } catch (err) { state.textContent = err.message; return; }
    if (r.status === 401) { LT.signOut(); return; }
    if (r.status === 404) { state.textContent = LT.t("lot.missing", { lot: code }); state.className = "problem"; return; }
    if (!r.ok) { state.textContent = LT.t("error.generic", { detail: (r.body && r.body.detail) || r.status }); return; }
    show(r.body);
    state.textContent = "";
    state.hidden = true;
    $("passport").hidden = false;
  }
  load();
})();
