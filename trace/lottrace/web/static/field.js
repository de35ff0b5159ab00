/* /field: a form per checkpoint. Check with the ledger's rules (nothing written), confirm
   the summary, save; without a connection the checked form waits in the outbox (app.js)
   with its time fixed, so sending it again later makes the same event. */
"use strict";
(function () {
  const forms = Array.from(document.querySelectorAll("form.checkpoint"));
  const tabs = Array.from(document.querySelectorAll("#types a[data-type]"));
  const result = document.getElementById("result");
  const confirmBox = document.getElementById("confirm");
  const confirmList = document.getElementById("confirm-list");
  const confirmNotes = document.getElementById("confirm-notes");
  const confirmHeading = document.getElementById("confirm-h");
  const saveButton = document.getElementById("save");
  const editButton = document.getElementById("edit");
  const datalist = document.getElementById("open-lots");
  let pending = null;
  let lotsLoaded = {};

  const pad = (n) => String(n).padStart(2, "0");
  function nowLocal() {
    const d = new Date();
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }
  /* "2025-06-01T08:00" (the phone's local time) -> "2025-06-01T08:00:00-05:00" */
  function withOffset(value) {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) return value;
    const off = -d.getTimezoneOffset();
    const sign = off >= 0 ? "+" : "-";
    const abs = Math.abs(off);
    const seconds = value.length === 16 ? value + ":00" : value;
    return `${seconds}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }

  function current() { return forms.find((f) => !f.hidden) || forms[0]; }

  function choose(type, push) {
    for (const f of forms) f.hidden = f.dataset.type !== type;
    for (const a of tabs) {
      if (a.dataset.type === type) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    }
    confirmBox.hidden = true;
    pending = null;
    if (push) history.replaceState(null, "", "?type=" + type);
    loadLots(current());
  }

  function collect(form) {
    const data = {};
    for (const [k, v] of new FormData(form)) {
      const text = String(v).trim();
      if (text !== "") data[k] = text;
    }
    if (data.time) data.time = withOffset(data.time);
    return data;
  }

  function labelOf(form, name) {
    const input = form.querySelector(`[name="${name}"]`);
    const label = input && form.querySelector(`label[for="${input.id}"]`);
    return label ? label.firstChild.textContent.trim() : name;
  }

  function inputFor(form, field) {
    if (!field) return null;
    return form.querySelector(`[name="${field}"]`) ||
      Array.from(form.querySelectorAll("[name]")).find((el) => el.name.startsWith(field + "."));
  }

  function clearProblems(form) {
    form.querySelector(".problems").replaceChildren();
    for (const p of form.querySelectorAll("p.problem")) { p.hidden = true; p.textContent = ""; }
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  function showProblems(form, problems) {
    clearProblems(form);
    const box = form.querySelector(".problems");
    const head = document.createElement("p");
    head.className = "problem";
    head.textContent = LT.t("field.problems");
    const list = document.createElement("ul");
    list.className = "problem-list";
    for (const p of problems) {
      const li = document.createElement("li");
      const input = inputFor(form, p.field);
      if (input) {
        const link = document.createElement("a");
        link.href = "#" + input.id;
        link.textContent = `${labelOf(form, input.name)}: ${p.detail}`;
        link.addEventListener("click", (e) => { e.preventDefault(); input.focus(); });
        li.append(link);
        input.setAttribute("aria-invalid", "true");
        const own = document.getElementById(input.id + "-problem");
        if (own) { own.textContent = p.detail; own.hidden = false; }
      } else {
        li.textContent = p.detail;
      }
      list.append(li);
    }
    box.append(head, list);
    form.hidden = false;
    confirmBox.hidden = true;
    box.scrollIntoView({ block: "start" });
    const first = inputFor(form, problems[0] && problems[0].field);
    if (first) first.focus(); else head.setAttribute("tabindex", "-1"), head.focus();
  }

  function showSummary(form, lines, warnings, note) {
    confirmList.replaceChildren();
    for (const [key, value] of lines) {
      if (key === "type") continue;
      const dt = document.createElement("dt");
      dt.textContent = key === "plot" ? labelOf(form, "plot.id") : labelOf(form, key);
      const dd = document.createElement("dd");
      dd.textContent = value;
      confirmList.append(dt, dd);
    }
    confirmNotes.replaceChildren();
    if (note) {
      const p = document.createElement("p");
      p.className = "problem";
      p.textContent = note;
      confirmNotes.append(p);
    }
    if (warnings.length) {
      const p = document.createElement("p");
      p.textContent = LT.t("field.warnings");
      const ul = document.createElement("ul");
      for (const w of warnings) {
        const li = document.createElement("li");
        li.textContent = w.detail;
        ul.append(li);
      }
      const box = document.createElement("div");
      box.className = "status";
      box.append(p, ul);
      confirmNotes.append(box);
    }
    form.hidden = true;
    confirmBox.hidden = false;
    confirmHeading.focus();
  }

  async function check(event) {
    event.preventDefault();
    const form = event.currentTarget;
    clearProblems(form);
    result.textContent = LT.t("field.checking");
    const data = collect(form);
    let r;
    try {
      r = await LT.api("/api/field/check", { method: "POST", body: data });
    } catch (err) {
      result.textContent = "";
      const lines = Object.entries(data).map(([k, v]) => [k, v]);
      pending = { form, data };
      showSummary(form, lines, [], LT.t("field.unchecked"));
      return;
    }
    result.textContent = "";
    if (r.status === 401) { LT.toLogin(); return; }
    if (!r.ok) { showProblems(form, [{ field: r.body.field, detail: r.body.detail || String(r.status) }]); return; }
    if (!r.body.ok) { showProblems(form, r.body.problems); return; }
    pending = { form, data };
    showSummary(form, r.body.summary, r.body.warnings,
      r.body.duplicate ? LT.t("field.duplicate", { eid: r.body.event_id.slice(0, 12) }) : "");
  }

  function done(form, message) {
    const site = form.querySelector("[name=site]");
    const keep = site ? site.value : "";
    form.reset();
    if (site) site.value = keep;
    for (const t of form.querySelectorAll("input[type=datetime-local]")) t.value = nowLocal();
    clearProblems(form);
    confirmBox.hidden = true;
    form.hidden = false;
    pending = null;
    result.textContent = message;
    result.className = "ok";
    lotsLoaded = {};
    loadLots(form);
    const first = form.querySelector("[name=lot], [name=inputs]");
    if (first) first.focus();
  }

  async function save() {
    if (!pending) return;
    const { form, data } = pending;
    saveButton.disabled = true;
    result.className = "";
    result.textContent = LT.t("field.saving");
    try {
      let r;
      try {
        r = await LT.api("/api/field/events", { method: "POST", body: data });
      } catch (err) {
        await LT.outbox.add(data);
        done(form, LT.t("field.kept"));
        return;
      }
      if (r.status === 401) { LT.toLogin(); return; }
      if (r.status >= 500) {  // the server is there but cannot write now: keep it, send later
        await LT.outbox.add(data);
        done(form, LT.t("field.kept"));
        return;
      }
      if (!r.ok) {
        result.textContent = "";
        showProblems(form, [{ field: r.body.field, detail: r.body.detail || String(r.status) }]);
        return;
      }
      const eid = r.body.event_id.slice(0, 12);
      done(form, LT.t(r.body.added ? "field.saved" : "field.duplicate", { eid }));
    } finally {
      saveButton.disabled = false;
    }
  }

  /* The lots with kg left a checkpoint may draw from: tick one, its kg (all that is left)
     go into the inputs field as LOT=KG|LOT=KG; the kg can be changed. */
  async function loadLots(form) {
    const type = form.dataset.type;
    const pick = form.querySelector(".lotpick");
    if (lotsLoaded[type]) return;
    lotsLoaded[type] = true;
    let r;
    try {
      r = await LT.api("/api/field/lots?type=" + encodeURIComponent(type));
    } catch (err) {
      if (pick) pick.querySelector(".lots-state").textContent = LT.t("field.lots_offline");
      lotsLoaded[type] = false;
      return;
    }
    if (!r.ok) return;
    const lots = r.body.lots;
    datalist.replaceChildren(...lots.map((l) => { const o = document.createElement("option"); o.value = l.lot; return o; }));
    if (!pick) return;
    const list = pick.querySelector(".lots");
    const target = document.getElementById(pick.dataset.for);
    pick.querySelector(".lots-state").textContent = lots.length ? "" : LT.t("field.no_lots");
    list.replaceChildren();
    lots.forEach((l, i) => {
      const li = document.createElement("li");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.id = `${type}-lot-${i}`;
      box.value = l.lot;
      const label = document.createElement("label");
      label.htmlFor = box.id;
      label.textContent = LT.t("field.lot_row", { lot: l.lot, site: l.site, kg: LT.fmt(l.kg_left) });
      const kg = document.createElement("input");
      kg.type = "text";
      kg.inputMode = "decimal";
      kg.value = LT.fmt(l.kg_left);
      kg.setAttribute("aria-label", LT.t("field.kg_of", { lot: l.lot }));
      const compose = () => {
        const parts = Array.from(list.querySelectorAll("li")).filter((row) => row.querySelector("input[type=checkbox]").checked)
          .map((row) => `${row.querySelector("input[type=checkbox]").value}=${row.querySelector("input[type=text]").value.trim()}`);
        target.value = parts.join("|");
      };
      box.addEventListener("change", compose);
      kg.addEventListener("input", () => { if (box.checked) compose(); });
      li.append(box, label, kg);
      list.append(li);
    });
  }

  async function fillSites() {
    const who = await LT.me();
    if (!who) return;
    for (const select of document.querySelectorAll("select[name=site]")) {
      const kinds = select.dataset.kinds ? select.dataset.kinds.split(" ") : [];
      const sites = who.sites.filter((s) => !kinds.length || kinds.includes(s.split(":")[0]));
      for (const s of sites) {
        const o = document.createElement("option");
        o.value = s;
        o.textContent = s;
        select.append(o);
      }
      if (sites.length === 1) select.value = sites[0];
      if (!sites.length) {
        const own = document.getElementById(select.id + "-problem");
        own.textContent = LT.t("field.no_sites");
        own.hidden = false;
      }
    }
  }

  for (const a of tabs) {
    a.addEventListener("click", (e) => { e.preventDefault(); choose(a.dataset.type, true); });
  }
  for (const f of forms) f.addEventListener("submit", check);
  for (const t of document.querySelectorAll("input[type=datetime-local]")) t.value = nowLocal();
  saveButton.addEventListener("click", save);
  editButton.addEventListener("click", () => {
    if (!pending) return;
    const { form } = pending;
    confirmBox.hidden = true;
    form.hidden = false;
    pending = null;
    const first = form.querySelector("input:not([type=hidden]), select");
    if (first) first.focus();
  });
  fillSites();
  loadLots(current());
})();
