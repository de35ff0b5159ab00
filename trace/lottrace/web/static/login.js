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
    location.assign(sameOrigin(new URLSearchParams(location.search).get("next")));
  });

  /* Where to go after signing in: only a path of this server. Browsers read "/\host" and
     "/<TAB>/host" as "//host", so the text is resolved as the browser would and its origin
     compared (issue #19, F7). */
  function sameOrigin(next) {
    if (!next || next[0] !== "/" || /[\\\u0000-\u001f\u007f]/.test(next)) return "/";
    let u;
    try { u = new URL(next, location.origin); } catch (err) { return "/"; }
    if (u.origin !== location.origin || !u.pathname.startsWith("/") || u.pathname.startsWith("//")) return "/";
    return u.pathname + u.search + u.hash;
  }
})();
