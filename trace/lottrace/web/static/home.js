/* /: hello and what the signed-in user can do (the cards for its role). */
"use strict";
(function () {
  const signin = document.getElementById("signin");
  if (!LT.token()) return;
  signin.hidden = true;
  LT.me().then((who) => {
    if (!who) return;
    document.getElementById("hello").textContent = LT.t("home.hello", who);
    LT.showForRole(who.role);
  });
})();
