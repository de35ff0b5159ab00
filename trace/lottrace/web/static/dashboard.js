/* /dashboard: leg delays by route and month, bottlenecks, the map, stuck lots (GET
   /api/dashboard with the filters; each chart's CSV from /api/dashboard/{chart}.csv). */
"use strict";
(function () {
  const form = document.getElementById("filters");
  const $ = (id) => document.getElementById(id);
  const names = { delays: "dash.delays", bottlenecks: "dash.bottlenecks", map: "dash.map", stuck: "dash.stuck" };

  function params() {
    const p = new URLSearchParams();
    for (const name of ["season", "coop", "route", "since", "until"]) {
      const v = form.elements[name].value;
      if (v) p.set(name, v);
    }
    return p.toString();
  }

  function svgInto(holder, text) {
    holder.replaceChildren();
    const doc = new DOMParser().parseFromString(text, "image/svg+xml");
    const el = doc.documentElement;
    if (el && el.nodeName === "svg") holder.appendChild(document.importNode(el, true));
  }

  function options(select, items, keep) {
    const first = select.options[0];
    select.replaceChildren(first);
    for (const [value, label] of items) {
      const o = document.createElement("option");
      o.value = value; o.textContent = label;
      select.appendChild(o);
    }
    select.value = keep;
    if (select.value !== keep) select.value = "";
  }

  function show(d) {
    options($("season"), d.seasons.map((s) => [s, s]), form.elements.season.value);
    options($("coop"), d.coops.map((c) => [c.site, c.name ? c.name + " (" + c.site + ")" : c.site]), form.elements.coop.value);
    options($("route"), d.routes.map((r) => [r.from_site + ">" + r.to_site, r.from_site + " → " + r.to_site + " (" + r.count + ")"]), form.elements.route.value);
    $("legs").textContent = LT.t("dash.legs", { n: LT.fmt(d.legs) });
    svgInto($("fig-delays"), d.svg.delays);
    svgInto($("fig-bottlenecks"), d.svg.bottlenecks);
    svgInto($("fig-map"), d.svg.map);
    const m = d.map;
    $("unplaced").textContent = m.unplaced_total
      ? LT.t("dash.unplaced", { n: m.unplaced_total, sites: m.unplaced.join(", ") + (m.unplaced_total > m.unplaced.length ? "…" : "") })
      : "";
    const tbody = $("stuck").querySelector("tbody");
    tbody.replaceChildren();
    for (const s of d.stuck) {
      const tr = document.createElement("tr");
      const cells = [[s.lot], [s.stage], [s.site], [LT.fmt(s.age_hours), "num"], [LT.fmt(s.over_hours), "num"], [s.next], [LT.fmt(s.kg_left), "num"]];
      for (const [v, cls] of cells) {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        if (v === s.lot) {
          const a = document.createElement("a");
          a.href = "/lots/" + encodeURIComponent(s.lot);
          a.textContent = s.lot;
          td.appendChild(a);
        } else td.textContent = v;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    $("stuck-count").textContent = LT.t("dash.stuck_count", { shown: d.stuck.length, n: d.stuck_total });
  }

  async function load() {
    $("legs").textContent = LT.t("dash.loading");
    let r;
    try {
      r = await LT.api("/api/dashboard?" + params());
    } catch (err) { $("legs").textContent = err.message; return; }
    if (r.status === 401) { LT.signOut(); return; }
    if (!r.ok) { $("legs").textContent = LT.t("error.generic", { detail: (r.body && r.body.detail) || r.status }); return; }
    show(r.body);
    document.body.dataset.drawn = "yes";
  }

  async function csv(chart) {
    const r = await LT.api("/api/dashboard/" + chart + ".csv?" + params());
    if (!r.ok) { $("legs").textContent = LT.t("error.generic", { detail: (r.body && r.body.detail) || r.status }); return; }
    const url = URL.createObjectURL(new Blob([r.body], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url; a.download = "lottrace-" + chart + ".csv";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  for (const b of document.querySelectorAll("button.csv")) {
    b.textContent = LT.t("dash.csv", { chart: LT.t(names[b.dataset.chart]) });
    b.addEventListener("click", () => csv(b.dataset.chart));
  }
  form.addEventListener("submit", (ev) => { ev.preventDefault(); delete document.body.dataset.drawn; load(); });
  if (!LT.token()) { location.assign("/login?next=" + encodeURIComponent(location.pathname)); return; }
  LT.me().then((who) => { if (who) LT.showForRole(who.role); });
  load();
})();
