// Hookwise UI: small progressive enhancements; every page works without them.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // htmx requests carry the CSRF token as a header (the server checks every POST).
  document.addEventListener("htmx:configRequest", function (evt) {
    evt.detail.headers["X-CSRFToken"] = csrfToken();
  });

  // <form data-confirm="…">: ask before destructive submits.
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      evt.preventDefault();
      evt.stopImmediatePropagation();
    }
  }, true);

  // <button data-copy="#selector">: copy that element's text.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
    return Promise.resolve();
  }

  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest ? evt.target.closest("[data-copy]") : null;
    if (!btn) return;
    var src = document.querySelector(btn.dataset.copy);
    if (!src) return;
    var label = btn.textContent;
    copyText(src.textContent.trim()).then(function () {
      btn.textContent = "Copied";
      btn.classList.add("copied");
      setTimeout(function () { btn.textContent = label; btn.classList.remove("copied"); }, 1500);
    });
  });

  // Status bars: segment widths come as data-width (the CSP allows no inline styles;
  // styles set from a script are fine). Again after each htmx swap (the dashboard).
  function sizeSegments(root) {
    var segs = (root || document).querySelectorAll("[data-width]");
    for (var i = 0; i < segs.length; i++) {
      segs[i].style.width = parseFloat(segs[i].dataset.width) + "%";
    }
  }
  sizeSegments(document);
  document.addEventListener("htmx:afterSettle", function (evt) { sizeSegments(evt.target); });

  // Source form: the hint under the verify scheme follows the selection.
  document.addEventListener("change", function (evt) {
    if (evt.target.id !== "verify-scheme") return;
    var help = document.getElementById("scheme-help");
    if (!help || !help.dataset.hints) return;
    var hints = JSON.parse(help.dataset.hints);
    help.textContent = hints[evt.target.value] || "";
  });
})();
