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

  // The events list's bulk-retry form sends the filters shown now (htmx pushes them
  // into the address without reloading the page).
  document.addEventListener("submit", function (evt) {
    var form = evt.target;
    if (!(form instanceof HTMLFormElement) || form.id !== "bulk-retry-form") return;
    var params = new URLSearchParams(window.location.search);
    var inputs = form.querySelectorAll("input[data-filter]");
    for (var i = 0; i < inputs.length; i++) inputs[i].value = params.get(inputs[i].dataset.filter) || "";
  }, true);

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


  // Live regions: <div data-live hx-get="…" hx-trigger="every Ns">. htmx polls them; here
  // the polls are skipped while the tab is hidden (and one runs when it shows again),
  // data-live="here" polls the page's current address (filters pushed by htmx), an
  // answer equal to what is shown is not swapped, open <details data-key> stay open,
  // and rows (tr[data-id]) that were not there before are marked new.
  function liveOf(elt) {
    return elt && elt.closest ? elt.closest("[data-live]") : null;
  }
  function normal(html) {
    return String(html).replace(/name="csrf_token" value="[^"]*"/g, "").replace(/\s+/g, " ").trim();
  }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var live = evt.detail.elt;
    if (live && live.hasAttribute && live.hasAttribute("data-live") && document.visibilityState === "hidden") {
      evt.preventDefault();
    }
  });
  document.addEventListener("htmx:configRequest", function (evt) {
    var live = evt.detail.elt;
    if (live && live.getAttribute && live.getAttribute("data-live") === "here") {
      evt.detail.path = window.location.pathname + window.location.search;
    }
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var target = evt.detail.target;
    if (!target || !target.hasAttribute || !target.hasAttribute("data-live")) return;
    if (!evt.detail.xhr || evt.detail.xhr.status !== 200 ||
        evt.detail.xhr.responseURL.indexOf("/login") !== -1) {
      evt.detail.shouldSwap = false;  // logged out or an error: keep what is shown
      return;
    }
    if (normal(evt.detail.serverResponse) === normal(target.innerHTML)) {
      evt.detail.shouldSwap = false;
      return;
    }
    var open = {};
    var details = target.querySelectorAll("details[data-key]");
    for (var i = 0; i < details.length; i++) open[details[i].dataset.key] = details[i].open;
    var seen = {};
    var rows = target.querySelectorAll("tr[data-id]");
    for (var j = 0; j < rows.length; j++) seen[rows[j].dataset.id] = true;
    target._liveState = {open: open, seen: seen, rows: rows.length};
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    var target = evt.detail.target;
    var state = target && target._liveState;
    if (!state) return;
    target._liveState = null;
    var details = target.querySelectorAll("details[data-key]");
    for (var i = 0; i < details.length; i++) {
      var key = details[i].dataset.key;
      if (Object.prototype.hasOwnProperty.call(state.open, key)) details[i].open = state.open[key];
    }
    if (!state.rows) return;
    var rows = target.querySelectorAll("tr[data-id]");
    for (var j = 0; j < rows.length; j++) {
      if (!state.seen[rows[j].dataset.id]) rows[j].classList.add("row-new");
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "visible" || !window.htmx) return;
    var lives = document.querySelectorAll("[data-live][hx-get]");
    for (var i = 0; i < lives.length; i++) {
      var el = lives[i];
      var path = el.getAttribute("data-live") === "here"
        ? window.location.pathname + window.location.search : el.getAttribute("hx-get");
      window.htmx.ajax("GET", path, {source: el, target: el, swap: "innerHTML"});
    }
  });

  // Source form: the hint under the verify scheme follows the selection.
  document.addEventListener("change", function (evt) {
    if (evt.target.id !== "verify-scheme") return;
    var help = document.getElementById("scheme-help");
    if (!help || !help.dataset.hints) return;
    var hints = JSON.parse(help.dataset.hints);
    help.textContent = hints[evt.target.value] || "";
  });
})();
