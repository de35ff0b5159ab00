/* /upload: a sheet checked (its column map, every problem of every row), the map fixed,
   then imported all or nothing; the library's import, as `lottrace import --map`. */
"use strict";
(function () {
  const form = document.getElementById("sheet");
  const fileInput = document.getElementById("file");
  const typeSelect = document.getElementById("type");
  const state = document.getElementById("state");
  const mapBox = document.getElementById("map");
  const columnsBody = document.querySelector("#columns tbody");
  const sitesBox = document.getElementById("sites");
  const orderSelect = document.getElementById("order");
  const tomlBox = document.getElementById("toml-box");
  const toml = document.getElementById("toml");
  const problemsBox = document.getElementById("problems");
  const problemsHeading = document.getElementById("problems-h");
  const problemRows = document.getElementById("problem-rows");
  const ready = document.getElementById("ready");
  const readyText = document.getElementById("ready-h");
  const importButton = document.getElementById("import");
  let map = null;      // the map as the server gave it, with the person's fixes
  let sites = [];

  function typeLabel(type) { const k = "field.type." + type; const s = LT.t(k); return s === k ? type : s; }

  function payload() {
    const data = new FormData();
    data.append("file", fileInput.files[0]);
    if (typeSelect.value) data.append("type", typeSelect.value);
    if (map) data.append("map", JSON.stringify(map));
    return data;
  }

  function option(value, text, selected) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    if (selected) o.selected = true;
    return o;
  }

  function drawMap(answer) {
    if (!answer.map) {
      map = null;
      columnsBody.replaceChildren();
      sitesBox.replaceChildren();
      document.getElementById("map-intro").textContent = LT.t("upload.native");
      document.getElementById("columns").hidden = true;
      orderSelect.hidden = true;
      orderSelect.previousElementSibling.hidden = true;
      tomlBox.hidden = true;
      mapBox.hidden = false;
      return;
    }
    map = answer.map;
    document.getElementById("map-intro").textContent = LT.t("upload.map_intro");
    document.getElementById("columns").hidden = false;
    orderSelect.hidden = false;
    orderSelect.previousElementSibling.hidden = false;
    tomlBox.hidden = false;
    const columns = Object.keys(map.columns).concat(Object.keys(answer.unresolved || {}).filter((c) => !(c in map.columns)));
    columnsBody.replaceChildren();
    columns.forEach((column, i) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = column;
      const td = document.createElement("td");
      const select = document.createElement("select");
      select.id = "col-" + i;
      select.setAttribute("aria-label", LT.t("upload.field_for", { column }));
      const chosen = column in map.columns ? map.columns[column] : null;
      select.append(option("", LT.t("upload.drop"), chosen === ""));
      if (chosen === null) select.append(option("?", LT.t("upload.choose"), true));
      for (const f of answer.fields) select.append(option(f, f, f === chosen));
      select.addEventListener("change", () => {
        if (select.value === "?") delete map.columns[column];
        else map.columns[column] = select.value;
      });
      td.append(select);
      const why = answer.unresolved && answer.unresolved[column];
      if (why) {
        const p = document.createElement("p");
        p.className = "problem";
        p.id = "col-" + i + "-why";
        p.textContent = why.near ? LT.t("upload.unmapped_near", { near: why.near }) : LT.t("upload.unmapped");
        select.setAttribute("aria-describedby", p.id);
        select.setAttribute("aria-invalid", "true");
        td.append(p);
      }
      tr.append(th, td);
      columnsBody.append(tr);
    });
    orderSelect.value = map.order || "DMY";
    toml.textContent = answer.toml || "";
    drawSites();
    mapBox.hidden = false;
  }

  /* A site for each type of row, from the user's organisation's sites, when no column gives one. */
  function drawSites() {
    sitesBox.replaceChildren();
    const types = new Set(Object.values((map.values && map.values.type) || {}));
    if (typeSelect.value) types.add(typeSelect.value);
    if (Object.values(map.columns).includes("site")) return;
    [...types].forEach((type, i) => {
      const label = document.createElement("label");
      label.htmlFor = "site-" + i;
      label.textContent = LT.t("upload.site_for", { type: typeLabel(type) });
      const select = document.createElement("select");
      select.id = "site-" + i;
      const current = map.defaults && map.defaults[type] && map.defaults[type].site;
      select.append(option("", LT.t("upload.site_from_sheet"), !current));
      for (const s of sites) select.append(option(s, s, s === current));
      select.addEventListener("change", () => {
        map.defaults = map.defaults || {};
        if (select.value) map.defaults[type] = Object.assign({}, map.defaults[type], { site: select.value });
        else if (map.defaults[type]) delete map.defaults[type].site;
      });
      sitesBox.append(label, select);
    });
  }

  function drawProblems(problems) {
    problemRows.replaceChildren();
    for (const p of problems) {
      const tr = document.createElement("tr");
      const line = document.createElement("td");
      line.textContent = p.line || "—";
      const detail = document.createElement("td");
      detail.textContent = p.detail;
      tr.append(line, detail);
      problemRows.append(tr);
    }
    problemsHeading.textContent = LT.t("upload.problems", { n: problems.length });
    problemsBox.hidden = problems.length === 0;
  }

  async function check() {
    if (!fileInput.files.length) {
      state.textContent = LT.t("upload.no_file");
      state.className = "problem";
      fileInput.focus();
      return;
    }
    state.className = "";
    state.textContent = LT.t("upload.working");
    ready.hidden = true;
    let r;
    try {
      r = await LT.api("/api/upload/check", { method: "POST", body: payload() });
    } catch (err) {
      state.textContent = LT.t("error.network");
      state.className = "problem";
      return;
    }
    state.textContent = "";
    if (r.status === 401) { LT.toLogin(); return; }
    if (!r.ok) { drawProblems([{ detail: (r.body && r.body.detail) || String(r.status) }]); problemsHeading.focus(); return; }
    const answer = r.body;
    if ("fields" in answer) drawMap(answer);
    drawProblems(answer.problems);
    if (answer.ok) {
      readyText.textContent = LT.t("upload.ok", { added: answer.added, dup: answer.duplicates });
      ready.hidden = false;
      readyText.focus();
    } else {
      problemsHeading.focus();
    }
  }

  async function importSheet() {
    importButton.disabled = true;
    try {
      let r;
      try {
        r = await LT.api("/api/upload/import", { method: "POST", body: payload() });
      } catch (err) {
        state.textContent = LT.t("error.network");
        state.className = "problem";
        return;
      }
      if (r.ok) {
        ready.hidden = true;
        problemsBox.hidden = true;
        state.className = "ok";
        state.textContent = LT.t("upload.done", { added: r.body.added, dup: r.body.duplicates });
        state.setAttribute("tabindex", "-1");
        state.focus();
      } else {
        state.className = "problem";
        state.textContent = LT.t("upload.failed");
        drawProblems(r.body.problems || [{ detail: r.body.detail }]);
        ready.hidden = true;
      }
    } finally {
      importButton.disabled = false;
    }
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); map = null; check(); });
  document.getElementById("recheck").addEventListener("click", check);
  orderSelect.addEventListener("change", () => { if (map) map.order = orderSelect.value; });
  typeSelect.addEventListener("change", () => { if (map) drawSites(); });
  importButton.addEventListener("click", importSheet);
  LT.me().then((who) => { if (who) sites = who.sites; if (map) drawSites(); });
})();
