// The desk's own script: small conveniences only; every page works without it.
"use strict";
document.addEventListener("click", (event) => {
  const back = event.target.closest("[data-back]");
  if (back && window.history.length > 1) { event.preventDefault(); window.history.back(); }
});
// htmx sends the session's CSRF token with every request it makes (forms carry it too).
document.addEventListener("htmx:configRequest", (event) => {
  const meta = document.querySelector("meta[name=csrf-token]");
  if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
});
