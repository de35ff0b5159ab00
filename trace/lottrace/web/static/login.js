/* /login: the token pasted once, checked with /api/me, kept in localStorage. */
"use strict";
(function () {
  const form = document.getElementById("login");
  const problem = document.getElementById("login-problem");
  const input = document.getElementById("token");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    problem.hidden = true;
    const tok = input.value.trim();
    let r;
    try {
      r = await LT.api("/api/me", { token: tok });
    } catch (err) {
      problem.textContent = LT.t("login.offline");
      problem.hidden = false;
      return;
    }
    if (!r.ok) {
      problem.textContent = LT.t("login.bad");
      problem.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    LT.setToken(tok);
    const next = new URLSearchParams(location.search).get("next");
    location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
  });
})();
