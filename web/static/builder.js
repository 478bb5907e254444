/* Hookwise rule builder: edit a rule as a form or as YAML, test it on a sample event,
 * backtest it over stored events, save it through the JSON API (/api/v1).
 *
 * The form state (`state`) is the source of truth; `toSpec()` turns it into the rule
 * document of SPEC "Rule files" and `loadSpec()` reads one back. Containers carry
 * `data-loc` attributes equal to the API's error locations (`when.all[1].op`,
 * `actions[0].url`), so a 422 answer is shown beside the field it concerns. */
(function () {
  "use strict";

  // -- tables ---------------------------------------------------------------------------
  const OPS = [
    ["eq", "is (=)"], ["ne", "is not (≠)"], ["gt", "greater than (>)"],
    ["ge", "at least (≥)"], ["lt", "less than (<)"], ["le", "at most (≤)"],
    ["in", "is one of"], ["nin", "is none of"], ["contains", "contains"],
    ["ncontains", "does not contain"], ["startswith", "starts with"],
    ["endswith", "ends with"], ["regex", "matches regex"], ["exists", "exists"],
    ["nexists", "does not exist"], ["empty", "is empty"], ["nempty", "is not empty"],
  ];
  const OP_LABEL = Object.fromEntries(OPS);
  const OP_SYMBOL = { eq: "=", ne: "≠", gt: ">", ge: "≥", lt: "<", le: "≤" };
  const NO_VALUE = new Set(["exists", "nexists", "empty", "nempty"]);
  const LIST_OPS = new Set(["in", "nin"]);
  const NUM_OPS = new Set(["gt", "ge", "lt", "le"]);
  const GROUP_LABEL = {
    all: "ALL of these (and)", any: "ANY of these (or)", not: "NOT — none of this (negate)",
  };
  const STEP_LABEL = {
    webhook: "Webhook", email: "Email", db_write: "Database write", reply: "Reply",
    state: "State", delay: "Delay",
  };
  const STEP_OUTPUTS = {
    webhook: ["status", "headers", "json", "text"], email: ["message_id"],
    db_write: ["rowcount"], reply: ["status", "json", "text"], state: [], delay: [],
  };
  const CONTEXT_CHIPS = [
    ["body", "body"], ["headers", "headers['x-…']"], ["query", "query"],
    ["event.id", "event.id"], ["event.source", "event.source"],
    ["event.received_at", "event.received_at"], ["secrets.NAME", "secrets.NAME"],
    ["state('key')", "state('key')"], ["rule.name", "rule.name"],
  ];
  const METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

  // Each field: k (key in the UI step), label, kind, loc (default k), tpl (a template).
  const STEP_FIELDS = {
    webhook: [
      { k: "method", label: "Method", kind: "select", options: METHODS, cls: "rb-narrow" },
      { k: "url", label: "URL", kind: "text", tpl: true, cls: "rb-grow",
        placeholder: "https://chat.example/api/post" },
      { k: "headers", label: "Headers", kind: "kv", tpl: true },
      { k: "query", label: "Query parameters", kind: "kv", tpl: true, typed: true },
      { k: "payload", label: "Body", kind: "payload", choices: ["none", "json", "body"] },
      { k: "timeout_s", label: "Timeout (s)", kind: "number", cls: "rb-narrow",
        placeholder: "10" },
      { k: "sign", label: "Sign with secret", kind: "text", cls: "rb-grow",
        placeholder: "OUT_SIGNING", hint: "Standard Webhooks headers; a stored secret's name" },
    ],
    email: [
      { k: "to", label: "To", kind: "text", tpl: true, cls: "rb-grow",
        hint: "one address, or several separated by commas" },
      { k: "cc", label: "Cc", kind: "text", tpl: true },
      { k: "bcc", label: "Bcc", kind: "text", tpl: true },
      { k: "from", label: "From", kind: "text", tpl: true, placeholder: "default sender" },
      { k: "reply_to", label: "Reply-To", kind: "text", tpl: true },
      { k: "subject", label: "Subject", kind: "text", tpl: true, cls: "rb-full" },
      { k: "text", label: "Text", kind: "textarea", tpl: true, cls: "rb-full" },
      { k: "html", label: "HTML", kind: "textarea", tpl: true, cls: "rb-full" },
    ],
    db_write: [
      { k: "connection", label: "Connection", kind: "text", placeholder: "default",
        hint: "default, or a stored secret holding a database URL" },
      { k: "table", label: "Table", kind: "text", placeholder: "payments" },
      { k: "mode", label: "Mode", kind: "select", options: ["insert", "upsert"], cls: "rb-narrow" },
      { k: "key", label: "Key columns", kind: "text", hint: "for upsert; comma separated" },
      { k: "values", label: "Values (column → template)", kind: "kv", tpl: true, typed: true },
    ],
    reply: [
      { k: "status", label: "Status", kind: "number", cls: "rb-narrow", placeholder: "200" },
      { k: "content_type", label: "Content type", kind: "text", tpl: true,
        placeholder: "application/json" },
      { k: "headers", label: "Headers", kind: "kv", tpl: true },
      { k: "payload", label: "Body", kind: "payload", choices: ["none", "json", "text", "body"] },
    ],
    state: [
      { k: "key", label: "Key", kind: "text", tpl: true, cls: "rb-grow",
        placeholder: "{{ body.chat.id }}", hint: "which conversation's memory" },
      { k: "ttl_s", label: "Expires after (s)", kind: "number", cls: "rb-narrow" },
      { k: "set", label: "Set (field → value; null deletes)", kind: "kv", tpl: true, typed: true },
    ],
    delay: [
      { k: "seconds", label: "Seconds", kind: "text", tpl: true, placeholder: "30",
        hint: "a number, or a template that renders one" },
    ],
  };
  const PAYLOAD_LABEL = { none: "none", json: "JSON", text: "text", body: "raw body" };

  // -- small helpers ----------------------------------------------------------------------
  const $ = (sel, root) => (root || document).querySelector(sel);
  let uidCounter = 0;
  const uid = (p) => `rb-${p || "f"}-${++uidCounter}`;
  const csrf = ($('meta[name="csrf-token"]') || {}).content || "";

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    let value;
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "value") value = v;
      else if (k === "checked") el.checked = true;
      else if (k === "selected") el.selected = true;
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    if (value !== undefined) el.value = value;
    return el;
  }

  const LITERAL = /^(-?\d+(\.\d+)?([eE][+-]?\d+)?|true|false|null)$/;

  /** Text typed into a value box → a JSON value: numbers, true/false/null and quoted or
   * bracketed JSON are typed; anything else stays the text it is. */
  function parseScalar(text) {
    const t = String(text).trim();
    if (LITERAL.test(t) || /^["[{]/.test(t)) {
      try { return JSON.parse(t); } catch (e) { /* plain text after all */ }
    }
    return text;
  }

  /** The inverse: strings that would read back as something else are shown quoted. */
  function fmtScalar(v) {
    if (v === undefined) return "";
    if (typeof v === "string") {
      const back = parseScalar(v);
      return back === v ? v : JSON.stringify(v);
    }
    return JSON.stringify(v);
  }

  function splitList(text) {
    return String(text || "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  }

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const has = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
  const blank = (v) => v === undefined || v === null || String(v).trim() === "";

  function toNumberish(text) {
    const t = String(text).trim();
    const n = Number(t);
    return t !== "" && Number.isFinite(n) ? n : t;
  }

  function pretty(v) {
    return typeof v === "string" ? v : JSON.stringify(v, null, 2);
  }

  // -- state ----------------------------------------------------------------------------
  const initial = JSON.parse($("#rb-initial").textContent);
  const state = {
    meta: {}, when: null, actions: [], savedName: initial.editing || null, view: "form",
  };
  let lastPathInput = null;

  function newPredicate(path) {
    return { t: "pred", path: path || "", op: "eq", valueText: "", useValuePath: false,
             value_path: "", ignore_case: false, match: "any" };
  }

  function condFromSpec(c) {
    if (isObject(c) && Array.isArray(c.all)) return { t: "group", kind: "all", children: c.all.map(condFromSpec) };
    if (isObject(c) && Array.isArray(c.any)) return { t: "group", kind: "any", children: c.any.map(condFromSpec) };
    if (isObject(c) && has(c, "not")) return { t: "group", kind: "not", children: [condFromSpec(c.not)] };
    const p = newPredicate(isObject(c) ? c.path || "" : "");
    if (!isObject(c)) return p;
    p.op = c.op || "eq";
    if (LIST_OPS.has(p.op) && Array.isArray(c.value)) p.valueText = c.value.map(fmtScalar).join(", ");
    else if (c.value !== undefined && c.value !== null) p.valueText = fmtScalar(c.value);
    if (c.value_path) { p.useValuePath = true; p.value_path = c.value_path; }
    p.ignore_case = !!c.ignore_case;
    p.match = c.match === "all" ? "all" : "any";
    return p;
  }

  function condToSpec(node) {
    if (node.t === "group") {
      const kids = node.children.map(condToSpec);
      if (node.kind === "not") return { not: kids.length === 1 ? kids[0] : { all: kids } };
      return { [node.kind]: kids };
    }
    const out = { path: node.path.trim(), op: node.op };
    if (!NO_VALUE.has(node.op)) {
      if (node.useValuePath) out.value_path = node.value_path.trim();
      else if (LIST_OPS.has(node.op)) out.value = splitList(node.valueText).map(parseScalar);
      else if (!blank(node.valueText)) {
        out.value = NUM_OPS.has(node.op) ? toNumberish(node.valueText) : parseScalar(node.valueText);
      }
    }
    if (node.ignore_case) out.ignore_case = true;
    if (node.match === "all") out.match = "all";
    return out;
  }

  /** Where a group's i-th child sits in the document we send (its error loc). */
  function childLoc(group, loc, i) {
    if (group.kind !== "not") return `${loc}.${group.kind}[${i}]`;
    return group.children.length === 1 ? `${loc}.not` : `${loc}.not.all[${i}]`;
  }

  function kvFromSpec(obj, typed) {
    if (!isObject(obj)) return [];
    return Object.entries(obj).map(([k, v]) => [k, typed ? fmtScalar(v) : String(v ?? "")]);
  }

  function kvToSpec(rows, typed) {
    const out = {};
    for (const [k, v] of rows) {
      if (blank(k) && blank(v)) continue;
      out[k.trim()] = typed ? parseScalar(v) : v;
    }
    return out;
  }

  function recipients(v) {
    return Array.isArray(v) ? v.join(", ") : v || "";
  }

  function stepFromSpec(spec) {
    const s = { type: spec.type || "webhook", id: spec.id || "", on_error: spec.on_error || "stop",
                whenText: "", retryOn: !!spec.retry, retry: { max_attempts: "", backoff: "exponential",
                initial_s: "", max_s: "" }, payload: "none", jsonText: "", bodyText: "" };
    if (spec.when) s.whenText = dumpFlow(spec.when);
    if (isObject(spec.retry)) {
      for (const k of ["max_attempts", "initial_s", "max_s"]) {
        if (spec.retry[k] !== undefined) s.retry[k] = String(spec.retry[k]);
      }
      s.retry.backoff = spec.retry.backoff || "exponential";
    }
    for (const f of STEP_FIELDS[s.type] || []) {
      if (f.kind === "kv") s[f.k] = kvFromSpec(spec[f.k], f.typed);
      else if (f.kind === "payload") {
        for (const c of f.choices) {
          if (c !== "none" && spec[c] !== undefined && spec[c] !== null) {
            s.payload = c;
            if (c === "json") s.jsonText = JSON.stringify(spec.json, null, 2);
            else s.bodyText = spec[c];
          }
        }
      } else if (f.k === "sign") s.sign = isObject(spec.sign) ? spec.sign.secret || "" : "";
      else if (f.k === "key" && s.type === "db_write") s.key = (spec.key || []).join(", ");
      else if (["to", "cc", "bcc"].includes(f.k)) s[f.k] = recipients(spec[f.k]);
      else s[f.k] = spec[f.k] === undefined || spec[f.k] === null ? "" : String(spec[f.k]);
    }
    if (s.type === "webhook" && !s.method) s.method = "POST";
    if (s.type === "db_write" && !s.mode) s.mode = "insert";
    return s;
  }

  /** One step as the API wants it; bad client-side input (JSON, YAML) goes to `errs`. */
  function stepToSpec(s, i, errs) {
    const loc = `actions[${i}]`;
    const out = {};
    if (!blank(s.id)) out.id = s.id.trim();
    out.type = s.type;
    for (const f of STEP_FIELDS[s.type] || []) {
      const v = s[f.k];
      if (f.kind === "kv") {
        const obj = kvToSpec(v || [], f.typed);
        if (Object.keys(obj).length || f.k === "values") out[f.k] = obj;
      } else if (f.kind === "payload") {
        if (s.payload === "json") {
          if (blank(s.jsonText)) errs.push({ loc: `${loc}.json`, message: "write the JSON to send (or choose no body)" });
          else {
            try { out.json = JSON.parse(s.jsonText); } catch (e) {
              errs.push({ loc: `${loc}.json`, message: `not valid JSON: ${e.message}` });
              out.json = s.jsonText;
            }
          }
        } else if (s.payload !== "none") out[s.payload] = s.bodyText || "";
      } else if (f.k === "sign") {
        if (!blank(v)) out.sign = { scheme: "standard", secret: v.trim() };
      } else if (f.k === "key" && s.type === "db_write") {
        const cols = splitList(v);
        if (cols.length) out.key = cols;
      } else if (["to", "cc", "bcc"].includes(f.k)) {
        const list = splitList(v);
        if (list.length) out[f.k] = list.length === 1 ? list[0] : list;
      } else if (f.kind === "number") {
        if (!blank(v)) out[f.k] = toNumberish(v);
      } else if (f.k === "seconds") {
        out.seconds = blank(v) ? "" : toNumberish(v);
      } else if (f.kind === "select") {
        if (!blank(v)) out[f.k] = v;
      } else if (!blank(v)) {
        out[f.k] = v;
      }
    }
    if (!blank(s.whenText)) {
      try {
        out.when = loadYaml(s.whenText);
      } catch (e) {
        errs.push({ loc: `${loc}.when`, message: yamlMessage(e) });
        out.when = s.whenText;
      }
    }
    if (s.on_error === "continue") out.on_error = "continue";
    if (s.retryOn) {
      const r = { backoff: s.retry.backoff };
      for (const k of ["max_attempts", "initial_s", "max_s"]) {
        if (!blank(s.retry[k])) r[k] = toNumberish(s.retry[k]);
      }
      out.retry = r;
    }
    return out;
  }

  function loadSpec(spec) {
    spec = isObject(spec) ? spec : {};
    const known = ["name", "source", "description", "enabled", "priority", "stop", "when", "actions"];
    state.meta = {
      name: spec.name || "", source: spec.source || "*", description: spec.description || "",
      enabled: spec.enabled !== false, priority: spec.priority ?? 0, stop: !!spec.stop,
      extra: Object.fromEntries(Object.entries(spec).filter(([k]) => !known.includes(k))),
    };
    const w = spec.when;
    if (!w) state.when = { t: "group", kind: "all", children: [] };
    else {
      const node = condFromSpec(w);
      state.when = node.t === "group" ? node : { t: "group", kind: "all", children: [node] };
    }
    state.actions = (Array.isArray(spec.actions) ? spec.actions : []).map(stepFromSpec);
  }

  function readMeta() {
    state.meta.name = $("#rb-name").value;
    state.meta.source = $("#rb-source").value;
    state.meta.description = $("#rb-description").value;
    state.meta.priority = $("#rb-priority").value;
    state.meta.enabled = $("#rb-enabled").checked;
    state.meta.stop = $("#rb-stop").checked;
  }

  /** The rule document of the form; `errs` collects problems found before sending. */
  function toSpec(errs) {
    readMeta();
    const m = state.meta;
    const spec = { name: m.name.trim(), source: m.source };
    if (!blank(m.description)) spec.description = m.description;
    spec.enabled = !!m.enabled;
    spec.priority = blank(m.priority) ? 0 : toNumberish(m.priority);
    spec.stop = !!m.stop;
    if (state.when.children.length) spec.when = condToSpec(state.when);
    spec.actions = state.actions.map((s, i) => stepToSpec(s, i, errs));
    return Object.assign(spec, m.extra || {});
  }

  function stepId(s, i) {
    return blank(s.id) ? `step${i + 1}` : s.id.trim();
  }

  function freshStepId(type) {
    const base = { db_write: "save", webhook: "webhook", email: "email", reply: "reply",
                   state: "remember", delay: "wait" }[type] || type;
    const taken = new Set(state.actions.map(stepId));
    if (!taken.has(base)) return base;
    for (let n = 2; ; n++) if (!taken.has(`${base}${n}`)) return `${base}${n}`;
  }

  // -- YAML -----------------------------------------------------------------------------
  function yamlMessage(e) {
    if (e && e.mark) {
      return `YAML error at line ${e.mark.line + 1}, column ${e.mark.column + 1}: ${e.reason || e.message}`;
    }
    return `YAML error: ${e && e.message ? e.message : e}`;
  }

  /** YAML as the server reads it: no timestamps (dates stay strings, as in JSON). */
  function loadYaml(text) {
    return window.jsyaml.load(text, { schema: window.jsyaml.CORE_SCHEMA });
  }

  function dumpFlow(v) {
    return window.jsyaml.dump(v, { flowLevel: 1, lineWidth: 100, noRefs: true }).trim();
  }

  function dumpRule(spec) {
    return window.jsyaml.dump(spec, { lineWidth: 100, noRefs: true, noCompatMode: true });
  }

  // -- rendering: header fields -----------------------------------------------------------
  function renderMeta() {
    const m = state.meta;
    $("#rb-name").value = m.name;
    const sel = $("#rb-source");
    sel.replaceChildren(h("option", { value: "*" }, "* — every source"));
    const slugs = initial.sources.slice();
    if (m.source && m.source !== "*" && !slugs.includes(m.source)) slugs.push(m.source);
    for (const slug of slugs) sel.append(h("option", { value: slug }, slug));
    sel.value = m.source || "*";
    $("#rb-description").value = m.description;
    $("#rb-priority").value = m.priority;
    $("#rb-enabled").checked = m.enabled;
    $("#rb-stop").checked = m.stop;
  }

  // -- rendering: conditions --------------------------------------------------------------
  function renderWhen(focusNode) {
    clearVerdicts();
    const root = $("#rb-when");
    root.replaceChildren(renderGroup(state.when, "when", null, 0));
    if (focusNode && focusNode.focusEl) focusNode.focusEl.focus();
  }

  function renderGroup(node, loc, parent, depth) {
    const kindId = uid("kind");
    const box = h("div", { class: `rb-group rb-group-${node.kind}`, "data-loc": loc });
    const kindSel = h("select", { id: kindId, class: "rb-kind",
      onchange: (e) => { node.kind = e.target.value; renderWhen(); focusLoc(loc, ":scope > .rb-group-head select"); } },
      ["all", "any", "not"].map((k) => h("option", { value: k, selected: k === node.kind }, GROUP_LABEL[k])));
    const head = h("div", { class: "rb-group-head" },
      h("label", { for: kindId, class: "rb-inline-label" }, depth === 0 ? "Match" : "Group"),
      kindSel,
      h("span", { class: "rb-verdict", "aria-live": "polite" }),
      parent ? h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": "Remove this group",
        title: "Remove group",
        onclick: () => { parent.children.splice(parent.children.indexOf(node), 1); renderWhen(); } }, "✕") : null);
    box.append(head);
    const list = h("div", { class: "rb-children" });
    node.children.forEach((child, i) => {
      const cl = childLoc(node, loc, i);
      list.append(child.t === "group" ? renderGroup(child, cl, node, depth + 1) : renderPredicate(child, cl, node));
    });
    if (!node.children.length) {
      list.append(h("p", { class: "rb-empty" }, depth === 0
        ? "No conditions: the rule matches every event of its source."
        : "Empty group: add a condition."));
    }
    box.append(list);
    box.append(h("div", { class: "rb-group-foot" },
      h("button", { type: "button", class: "rb-small outline",
        onclick: () => { const p = newPredicate(); node.children.push(p); renderWhen(); focusFirst(p); } },
        "+ Condition"),
      h("button", { type: "button", class: "rb-small outline secondary",
        onclick: () => {
          const g = { t: "group", kind: "any", children: [newPredicate()] };
          node.children.push(g); renderWhen(); focusFirst(g.children[0]);
        } }, "+ Group")));
    return box;
  }

  function focusLoc(loc, sel) {
    const box = [...document.querySelectorAll("#builder [data-loc]")].find((e) => e.dataset.loc === loc);
    const el = box && box.querySelector(sel);
    if (el) el.focus();
  }

  function focusById(id) {
    const el = document.getElementById(id);
    if (el) el.focus();
  }

  function focusFirst(node) {
    if (node._pathId) focusById(node._pathId);
  }

  function renderPredicate(node, loc, parent) {
    const pathId = uid("path");
    const opId = uid("op");
    const valId = uid("value");
    node._pathId = pathId;
    const pathInput = h("input", { id: pathId, class: "rb-path path-input", value: node.path,
      placeholder: "$.body.type", autocomplete: "off", spellcheck: "false",
      oninput: (e) => { node.path = e.target.value; } });
    const opSel = h("select", { id: opId, value: node.op,
      onchange: (e) => { node.op = e.target.value; rerenderPredicate(); } },
      OPS.map(([op, label]) => h("option", { value: op }, label)));

    const valueWrap = h("div", { class: "rb-field rb-cond-value",
      "data-loc": node.useValuePath ? `${loc}.value_path` : `${loc}.value` });
    if (NO_VALUE.has(node.op)) {
      valueWrap.classList.add("rb-novalue");
      valueWrap.append(h("span", { class: "rb-label-like", "aria-hidden": "true" }, "Value"),
        h("span", { class: "rb-muted" }, "no value needed"));
    } else if (node.useValuePath) {
      valueWrap.append(h("label", { for: valId }, "Compare with path"),
        h("input", { id: valId, class: "rb-path path-input", value: node.value_path,
          placeholder: "$.body.limit", autocomplete: "off", spellcheck: "false",
          oninput: (e) => { node.value_path = e.target.value; } }));
    } else {
      const list = LIST_OPS.has(node.op);
      const numeric = NUM_OPS.has(node.op) && (blank(node.valueText) || typeof toNumberish(node.valueText) === "number");
      valueWrap.append(h("label", { for: valId }, list ? "Values (comma separated)" : "Value"),
        h("input", { id: valId, value: node.valueText, autocomplete: "off", spellcheck: "false",
          type: numeric ? "number" : "text", step: numeric ? "any" : null,
          placeholder: list ? "usd, eur" : numeric ? "1000" : node.op === "regex" ? "^refs/heads/" : "value",
          oninput: (e) => { node.valueText = e.target.value; } }));
    }

    const icId = uid("ic");
    const vpId = uid("vp");
    const mId = uid("match");
    const options = h("div", { class: "rb-cond-options" },
      h("span", { class: "rb-check", "data-loc": `${loc}.ignore_case` },
        h("input", { type: "checkbox", id: icId, checked: node.ignore_case,
          onchange: (e) => { node.ignore_case = e.target.checked; } }),
        h("label", { for: icId }, "ignore case")),
      NO_VALUE.has(node.op) ? null : h("span", { class: "rb-check" },
        h("input", { type: "checkbox", id: vpId, checked: node.useValuePath,
          onchange: (e) => { node.useValuePath = e.target.checked; rerenderPredicate(); } }),
        h("label", { for: vpId }, "compare with another path")),
      h("span", { class: "rb-check", "data-loc": `${loc}.match` },
        h("label", { for: mId }, "several values:"),
        h("select", { id: mId, class: "rb-mini", value: node.match,
          onchange: (e) => { node.match = e.target.value; } },
          h("option", { value: "any" }, "any may match"), h("option", { value: "all" }, "all must match"))));

    const row = h("div", { class: "rb-cond", "data-loc": loc },
      h("div", { class: "rb-cond-main" },
        h("div", { class: "rb-field rb-cond-path", "data-loc": `${loc}.path` },
          h("label", { for: pathId }, "Path"), pathInput),
        h("div", { class: "rb-field rb-cond-op", "data-loc": `${loc}.op` },
          h("label", { for: opId }, "Operator"), opSel),
        valueWrap,
        h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": "Remove this condition",
          title: "Remove condition",
          onclick: () => { parent.children.splice(parent.children.indexOf(node), 1); renderWhen(); } }, "✕")),
      h("div", { class: "rb-cond-foot" }, options, h("span", { class: "rb-verdict", "aria-live": "polite" })));

    function rerenderPredicate() {
      const focused = document.activeElement && document.activeElement.id;
      const fresh = renderPredicate(node, loc, parent);
      row.replaceWith(fresh);
      if (focused === opId) fresh.querySelector(".rb-cond-op select").focus();
      const vp = [...fresh.querySelectorAll(".rb-cond-options input[type=checkbox]")][1];
      if (focused === vpId && vp) vp.focus();
    }
    return row;
  }

  // -- rendering: steps ---------------------------------------------------------------------
  function renderActions(focusSel) {
    const ol = $("#rb-actions");
    ol.replaceChildren(...state.actions.map((s, i) => renderStep(s, i)));
    if (!state.actions.length) {
      ol.append(h("li", { class: "rb-empty" }, "No steps yet. A rule needs at least one: add it below."));
    }
    if (focusSel) {
      const el = ol.querySelector(focusSel);
      if (el) el.focus();
    }
  }

  function chipsFor(i) {
    const chips = CONTEXT_CHIPS.map(([label, expr]) => [label, expr]);
    state.actions.slice(0, i).forEach((prev, j) => {
      const id = stepId(prev, j);
      for (const out of STEP_OUTPUTS[prev.type] || []) chips.push([`steps.${id}.${out}`, `steps.${id}.${out}`]);
    });
    return chips;
  }

  function moveStep(i, delta) {
    const j = i + delta;
    if (j < 0 || j >= state.actions.length) return;
    const [s] = state.actions.splice(i, 1);
    state.actions.splice(j, 0, s);
    renderActions(`li:nth-child(${j + 1}) .rb-move-${delta < 0 ? "up" : "down"}`);
    const btn = $(`#rb-actions li:nth-child(${j + 1}) .rb-move-${delta < 0 ? "up" : "down"}`);
    if (!btn || btn.disabled) {
      const other = $(`#rb-actions li:nth-child(${j + 1}) .rb-move-${delta < 0 ? "down" : "up"}`);
      if (other) other.focus();
    }
  }

  function renderStep(s, i) {
    const loc = `actions[${i}]`;
    const n = i + 1;
    const idId = uid("sid");
    let lastTpl = null;
    const trackTpl = (el) => { el.addEventListener("focus", () => { lastTpl = el; }); return el; };
    const tplFields = [];

    const head = h("div", { class: "rb-step-head" },
      h("span", { class: `rb-step-badge rb-type-${s.type}` }, `${n}`),
      h("strong", {}, STEP_LABEL[s.type] || s.type),
      h("div", { class: "rb-field rb-step-id", "data-loc": `${loc}.id` },
        h("label", { for: idId, class: "rb-inline-label" }, "id"),
        h("input", { id: idId, value: s.id, placeholder: `step${n}`, autocomplete: "off",
          spellcheck: "false", oninput: (e) => { s.id = e.target.value; refreshChips(); } })),
      h("div", { class: "rb-step-tools" },
        h("button", { type: "button", class: "rb-icon rb-move-up", "aria-label": `Move step ${n} up`,
          title: "Move up", disabled: i === 0, onclick: () => moveStep(i, -1) }, "↑"),
        h("button", { type: "button", class: "rb-icon rb-move-down", "aria-label": `Move step ${n} down`,
          title: "Move down", disabled: i === state.actions.length - 1, onclick: () => moveStep(i, 1) }, "↓"),
        h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": `Remove step ${n}`,
          title: "Remove step", onclick: () => {
            state.actions.splice(i, 1); renderActions(); $("#rb-add-step").focus();
          } }, "✕")));

    const grid = h("div", { class: "rb-grid rb-step-fields" });
    for (const f of STEP_FIELDS[s.type] || []) grid.append(renderStepField(s, f, loc, trackTpl, tplFields));

    const chipBox = h("div", { class: "rb-chips" });
    function refreshChips() {
      chipBox.replaceChildren(h("span", { class: "rb-muted" }, "available:"),
        ...chipsFor(i).map(([label, expr]) => h("button", { type: "button", class: "rb-chip",
          title: `Insert {{ ${expr} }}`, "aria-label": `Insert ${label}`,
          onmousedown: (e) => e.preventDefault(),
          onclick: () => insertTemplate(lastTpl || tplFields[0], `{{ ${expr} }}`) }, label)));
    }
    refreshChips();

    // per-step extras: when, on_error, retry
    const whenId = uid("swhen");
    const errId = uid("onerr");
    const retryId = uid("retry");
    const retryBox = h("div", { class: "rb-grid rb-retry", "data-loc": `${loc}.retry`, hidden: !s.retryOn });
    const rid = { m: uid("rm"), b: uid("rb"), i: uid("ri"), x: uid("rx") };
    retryBox.append(
      h("div", { class: "rb-field", "data-loc": `${loc}.retry.max_attempts` },
        h("label", { for: rid.m }, "Max attempts"),
        h("input", { id: rid.m, type: "number", min: 1, value: s.retry.max_attempts, placeholder: "8",
          oninput: (e) => { s.retry.max_attempts = e.target.value; } })),
      h("div", { class: "rb-field", "data-loc": `${loc}.retry.backoff` },
        h("label", { for: rid.b }, "Backoff"),
        h("select", { id: rid.b, value: s.retry.backoff, onchange: (e) => { s.retry.backoff = e.target.value; } },
          h("option", { value: "exponential" }, "exponential"), h("option", { value: "fixed" }, "fixed"))),
      h("div", { class: "rb-field", "data-loc": `${loc}.retry.initial_s` },
        h("label", { for: rid.i }, "First wait (s)"),
        h("input", { id: rid.i, type: "number", min: 0, step: "any", value: s.retry.initial_s, placeholder: "5",
          oninput: (e) => { s.retry.initial_s = e.target.value; } })),
      h("div", { class: "rb-field", "data-loc": `${loc}.retry.max_s` },
        h("label", { for: rid.x }, "Longest wait (s)"),
        h("input", { id: rid.x, type: "number", min: 0, step: "any", value: s.retry.max_s, placeholder: "36000",
          oninput: (e) => { s.retry.max_s = e.target.value; } })));
    const extrasOpen = !blank(s.whenText) || s.retryOn || s.on_error === "continue";
    const extras = h("details", { class: "rb-more", open: extrasOpen },
      h("summary", {}, "Only if…, on error, retry"),
      h("div", { class: "rb-grid" },
        h("div", { class: "rb-field rb-full", "data-loc": `${loc}.when` },
          h("label", { for: whenId }, "Run only when (a condition, YAML or JSON; empty = always)"),
          h("textarea", { id: whenId, rows: 2, spellcheck: "false", class: "rb-code",
            placeholder: "{path: $.body.data.object.receipt_email, op: exists}", value: s.whenText,
            oninput: (e) => { s.whenText = e.target.value; } })),
        h("div", { class: "rb-field", "data-loc": `${loc}.on_error` },
          h("label", { for: errId }, "If this step fails"),
          h("select", { id: errId, value: s.on_error, onchange: (e) => { s.on_error = e.target.value; } },
            h("option", { value: "stop" }, "stop the chain"), h("option", { value: "continue" }, "continue with the next step"))),
        h("div", { class: "rb-field rb-check-field" },
          h("span", { class: "rb-check" },
            h("input", { type: "checkbox", id: retryId, checked: s.retryOn,
              onchange: (e) => { s.retryOn = e.target.checked; retryBox.hidden = !s.retryOn; } }),
            h("label", { for: retryId }, "Custom retry schedule")))),
      retryBox);

    return h("li", { class: `rb-step rb-step-${s.type}`, "data-loc": loc },
      head, grid, chipBox, extras, h("div", { class: "rb-step-result", "aria-live": "polite" }));
  }

  function renderStepField(s, f, loc, trackTpl, tplFields) {
    const id = uid(f.k);
    const cls = `rb-field ${f.cls || ""}`;
    const hint = f.hint ? h("small", { id: `${id}-hint` }, f.hint) : null;
    const described = f.hint ? `${id}-hint` : null;
    const bind = (el, key) => { el.addEventListener("input", () => { s[key] = el.value; }); return el; };
    if (f.kind === "kv") return renderKv(s, f, loc, trackTpl, tplFields);
    if (f.kind === "payload") {
      const wrap = h("div", { class: "rb-field rb-full rb-payload", "data-loc": `${loc}.${s.payload === "none" ? "json" : s.payload}` });
      const selId = uid("payload");
      const sel = h("select", { id: selId, class: "rb-mini", value: s.payload,
        onchange: (e) => {
          s.payload = e.target.value;
          const fresh = renderStepField(s, f, loc, trackTpl, tplFields);
          wrap.replaceWith(fresh);
          fresh.querySelector("select").focus();
        } },
        f.choices.map((c) => h("option", { value: c }, PAYLOAD_LABEL[c])));
      wrap.append(h("div", { class: "rb-payload-head" }, h("label", { for: selId }, f.label), sel));
      if (s.payload === "json") {
        const taId = uid("json");
        const ta = trackTpl(h("textarea", { id: taId, rows: 5, class: "rb-code", spellcheck: "false",
          "aria-label": "JSON to send", value: s.jsonText,
          placeholder: '{"text": "Paid {{ body.data.object.amount / 100 }}"}',
          oninput: (e) => { s.jsonText = e.target.value; } }));
        tplFields.push(ta);
        wrap.append(ta, h("small", {}, "JSON; strings are templates, a lone {{ expression }} keeps its type"));
      } else if (s.payload !== "none") {
        const ta = trackTpl(h("textarea", { rows: 4, spellcheck: "false", "aria-label": `${PAYLOAD_LABEL[s.payload]} to send`,
          value: s.bodyText, oninput: (e) => { s.bodyText = e.target.value; } }));
        tplFields.push(ta);
        wrap.append(ta);
      }
      return wrap;
    }
    let input;
    if (f.kind === "select") {
      input = h("select", { id, value: s[f.k] || f.options[0] }, f.options.map((o) => h("option", { value: o }, o)));
      input.addEventListener("change", () => { s[f.k] = input.value; });
      s[f.k] = s[f.k] || f.options[0];
    } else if (f.kind === "textarea") {
      input = bind(h("textarea", { id, rows: 3, value: s[f.k] || "", spellcheck: "false", "aria-describedby": described }), f.k);
    } else {
      input = bind(h("input", { id, value: s[f.k] || "", autocomplete: "off", spellcheck: "false",
        type: f.kind === "number" ? "number" : "text", step: f.kind === "number" ? "any" : null,
        placeholder: f.placeholder || null, "aria-describedby": described }), f.k);
    }
    if (f.tpl) { trackTpl(input); tplFields.push(input); input.classList.add("rb-tpl"); }
    return h("div", { class: cls, "data-loc": `${loc}.${f.k}` }, h("label", { for: id }, f.label), input, hint);
  }

  function renderKv(s, f, loc, trackTpl, tplFields) {
    const rows = s[f.k] || (s[f.k] = []);
    const wrap = h("fieldset", { class: "rb-field rb-full rb-kv", "data-loc": `${loc}.${f.k}` });
    const draw = (focusLast) => {
      wrap.replaceChildren(h("legend", {}, f.label));
      rows.forEach((row, r) => {
        const kId = uid("k");
        const vId = uid("v");
        const vInput = h("input", { id: vId, value: row[1], autocomplete: "off", spellcheck: "false",
          class: "rb-tpl", oninput: (e) => { row[1] = e.target.value; } });
        if (f.tpl) { trackTpl(vInput); tplFields.push(vInput); }
        wrap.append(h("div", { class: "rb-kv-row" },
          h("label", { for: kId, class: "rb-sr" }, `${f.label} ${r + 1} name`),
          h("input", { id: kId, value: row[0], placeholder: f.k === "values" ? "column" : "name", autocomplete: "off", spellcheck: "false",
            oninput: (e) => { row[0] = e.target.value; } }),
          h("label", { for: vId, class: "rb-sr" }, `${f.label} ${r + 1} value`),
          vInput,
          h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": `Remove ${f.label} row ${r + 1}`,
            onclick: () => { rows.splice(r, 1); draw(); wrap.querySelector(".rb-kv-add").focus(); } }, "✕")));
      });
      wrap.append(h("button", { type: "button", class: "rb-small outline secondary rb-kv-add",
        onclick: () => { rows.push(["", ""]); draw(true); } }, `+ ${f.k === "values" ? "Column" : "Row"}`));
      if (focusLast) {
        const inputs = wrap.querySelectorAll(".rb-kv-row input");
        if (inputs.length) inputs[inputs.length - 2].focus();
      }
    };
    draw();
    return wrap;
  }

  function insertTemplate(el, text) {
    if (!el || !document.contains(el)) return;
    el.focus();
    const start = el.selectionStart ?? el.value.length;
    const end = el.selectionEnd ?? el.value.length;
    el.setRangeText(text, start, end, "end");
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function newStep(type) {
    const s = stepFromSpec({ type, id: freshStepId(type) });
    if (type === "webhook") s.payload = "json";
    if (type === "reply") s.payload = "json";
    if (type === "db_write") s.values = [["", ""]];
    if (type === "state") s.set = [["", ""]];
    return s;
  }

  // -- errors and notices -----------------------------------------------------------------
  function clearErrors() {
    document.querySelectorAll(".rb-error-msg").forEach((e) => e.remove());
    document.querySelectorAll("[aria-invalid=true]").forEach((e) => e.removeAttribute("aria-invalid"));
    document.querySelectorAll(".rb-has-error").forEach((e) => e.classList.remove("rb-has-error"));
    const sum = $("#rb-summary");
    sum.hidden = true;
    sum.replaceChildren();
  }

  function parentLoc(loc) {
    const m = loc.match(/^(.*)(\.[^.[\]]+|\[\d+\])$/);
    return m ? m[1] : "";
  }

  /** Show each error beside the element whose data-loc is its loc (or the nearest
   * enclosing one); what cannot be placed goes into the summary at the top. */
  function showErrors(errors, headline) {
    clearErrors();
    const byLoc = new Map();
    const scope = state.view === "form" ? "#builder [data-loc]" : "#rb-yaml [data-loc]";
    document.querySelectorAll(scope).forEach((el) => {
      if (!byLoc.has(el.dataset.loc) && !el.closest("[hidden]")) byLoc.set(el.dataset.loc, el);
    });
    const unplaced = [];
    let first = null;
    for (const err of errors) {
      let loc = err.loc || "";
      let el = null;
      while (loc && !(el = byLoc.get(loc))) loc = parentLoc(loc);
      if (!el) { unplaced.push(err); continue; }
      const shown = loc !== err.loc
        ? `${err.message} (at ${err.loc.slice(loc.length).replace(/^\./, "")})` : err.message;
      const msg = h("small", { class: "rb-error-msg", role: "alert" }, shown);
      const host = el.matches(".rb-step, .rb-group") ? el.querySelector(":scope > .rb-step-head, :scope > .rb-group-head") : null;
      if (el.matches(".rb-cond")) el.querySelector(".rb-cond-foot").before(msg);
      else if (host) host.after(msg);
      else if (el.tagName === "OL") el.after(msg);
      else el.append(msg);
      const fold = el.closest("details");
      if (fold) fold.open = true;
      el.classList.add("rb-has-error");
      const input = el.querySelector("input, select, textarea");
      if (input) input.setAttribute("aria-invalid", "true");
      first = first || el;
    }
    if (unplaced.length || headline) {
      const sum = $("#rb-summary");
      sum.append(h("strong", {}, headline || "The rule is not valid:"));
      if (unplaced.length) {
        sum.append(h("ul", {}, unplaced.map((e) => h("li", {}, e.loc ? h("code", {}, e.loc) : null, e.loc ? " — " : null, e.message))));
      }
      sum.hidden = false;
    }
    const target = first || $("#rb-summary");
    if (target && target.scrollIntoView) target.scrollIntoView({ block: "center", behavior: "instant" });
  }

  function notice(text, kind) {
    const n = $("#rb-notice");
    n.className = `rb-notice rb-notice-${kind || "ok"}`;
    n.textContent = text;
    n.hidden = false;
  }

  // -- API --------------------------------------------------------------------------------
  async function api(method, url, body) {
    const opts = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.headers["X-CSRFToken"] = csrf;
      opts.body = JSON.stringify(body);
    }
    let res;
    try { res = await fetch(url, opts); } catch (e) {
      return { status: 0, data: { error: "network", message: `The server could not be reached: ${e.message}` } };
    }
    let data = null;
    try { data = await res.json(); } catch (e) { data = { error: "bad_response", message: `HTTP ${res.status}` }; }
    return { status: res.status, data };
  }

  function apiFailed(r) {
    if (r.status === 422 && r.data && Array.isArray(r.data.errors)) {
      showErrors(r.data.errors, r.data.errors.length ? null : r.data.message);
    } else {
      showErrors([], (r.data && r.data.message) || `Request failed (HTTP ${r.status})`);
    }
  }

  /** The rule from the current view; null (errors shown) when it cannot be built. */
  function currentSpec() {
    if (state.view === "yaml" && !yamlToForm()) return null;
    const errs = [];
    const spec = toSpec(errs);
    if (errs.length) { showErrors(errs); return null; }
    return spec;
  }

  // -- sample event and the JSONPath tree -------------------------------------------------
  function readSample() {
    const err = $("#rb-sample-error");
    err.hidden = true;
    const text = $("#rb-sample-body").value;
    let body = text;
    if (text.trim()) {
      try { body = JSON.parse(text); } catch (e) { /* a text body, as sent */ }
    } else body = {};
    const obj = (sel, name) => {
      const t = $(sel).value.trim();
      if (!t) return {};
      try {
        const v = JSON.parse(t);
        if (isObject(v)) return v;
        throw new Error("not an object");
      } catch (e) {
        err.textContent = `${name} must be a JSON object: ${e.message}`;
        err.hidden = false;
        return null;
      }
    };
    const headers = obj("#rb-sample-headers", "Headers");
    const query = obj("#rb-sample-query", "Query");
    if (headers === null || query === null) return null;
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
    return { body, headers: lower, query };
  }

  function pathSegment(key) {
    if (typeof key === "number") return `[${key}]`;
    if (/^[A-Za-z0-9_][\w-]*$/.test(key)) return `.${key}`;
    return key.includes("'") ? `["${key}"]` : `['${key}']`;
  }

  function renderTree() {
    const box = $("#rb-tree");
    const sample = readSample();
    if (!sample) return;
    const roots = [["body", sample.body], ["headers", sample.headers], ["query", sample.query]]
      .filter(([k, v]) => k === "body" || (isObject(v) && Object.keys(v).length));
    const isEmptyBody = isObject(sample.body) && !Object.keys(sample.body).length;
    if (isEmptyBody && roots.length === 1) {
      box.replaceChildren(h("small", {}, "Paste a sample above to see its fields."));
      return;
    }
    const ul = h("ul", { class: "rb-tree-root" });
    for (const [k, v] of roots) ul.append(treeNode(k, v, `$.${k}`, 0));
    box.replaceChildren(ul);
  }

  function treeNode(key, value, path, depth) {
    const keyBtn = h("button", { type: "button", class: "rb-key", "data-path": path, title: `Use ${path}`,
      onclick: (e) => { e.preventDefault(); e.stopPropagation(); usePath(path); } }, String(key));
    const container = Array.isArray(value) || isObject(value);
    if (!container) {
      const shown = typeof value === "string" ? JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}…` : value) : JSON.stringify(value);
      return h("li", {}, keyBtn, h("code", { class: `rb-leaf rb-leaf-${value === null ? "null" : typeof value}` }, shown));
    }
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const count = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    const kids = h("ul", {}, entries.slice(0, 200).map(([k, v]) => treeNode(k, v, path + pathSegment(k), depth + 1)));
    return h("li", {}, h("details", { open: depth < 3 },
      h("summary", {}, keyBtn, h("span", { class: "rb-muted" }, ` ${count}`)), kids));
  }

  function usePath(path) {
    let target = lastPathInput && document.contains(lastPathInput) ? lastPathInput : null;
    if (state.view !== "form") return;
    if (!target) {
      const p = newPredicate(path);
      state.when.children.push(p);
      renderWhen();
      const op = document.getElementById(p._pathId);
      lastPathInput = op;
      if (op) op.closest(".rb-cond").querySelector(".rb-cond-op select").focus();
      return;
    }
    target.value = path;
    target.dispatchEvent(new Event("input", { bubbles: true }));
    target.focus();
  }

  async function loadRecent() {
    const sel = $("#rb-recent");
    const source = $("#rb-source").value;
    const url = source && source !== "*" ? `/api/v1/events?source=${encodeURIComponent(source)}&limit=20` : "/api/v1/events?limit=20";
    const r = await api("GET", url);
    const items = r.status === 200 && r.data && Array.isArray(r.data.items) ? r.data.items : [];
    sel.replaceChildren(h("option", { value: "" }, items.length ? `— choose one of ${items.length} stored events —` : "— no stored events yet —"),
      ...items.map((ev) => h("option", { value: ev.id },
        `${(ev.received_at || "").replace("T", " ").slice(0, 19)} · ${ev.source || source} · ${ev.status || ""} · ${String(ev.id).slice(0, 8)}`)));
  }

  async function pickEvent(id) {
    if (!id) return;
    const r = await api("GET", `/api/v1/events/${encodeURIComponent(id)}`);
    if (r.status !== 200) { apiFailed(r); return; }
    const ev = r.data.event || r.data;
    $("#rb-sample-body").value = pretty(ev.body === undefined ? {} : ev.body);
    $("#rb-sample-headers").value = JSON.stringify(ev.headers || {}, null, 2);
    $("#rb-sample-query").value = JSON.stringify(ev.query || {}, null, 2);
    renderTree();
  }

  // -- test -------------------------------------------------------------------------------
  function clearVerdicts() {
    document.querySelectorAll("#rb-when .rb-verdict").forEach((v) => { v.textContent = ""; v.className = "rb-verdict"; });
    document.querySelectorAll("#rb-when .rb-pass, #rb-when .rb-fail, #rb-when .rb-skip")
      .forEach((e) => e.classList.remove("rb-pass", "rb-fail", "rb-skip"));
  }

  function seenText(t) {
    const seen = t.seen || [];
    if (!seen.length) return "nothing at that path";
    const shown = seen.map((v) => (typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v))).join(", ");
    return `saw ${shown}${t.seen_count ? ` (${t.seen_count} in all)` : ""}`;
  }

  /** Paint the form's conditions with the trace (their locs mirror the trace's shape). */
  function paintTrace(t, loc) {
    const el = document.querySelector(`#rb-when [data-loc="${loc}"]`);
    if (el) {
      const verdict = el.querySelector(":scope > .rb-group-head > .rb-verdict, :scope > .rb-cond-foot > .rb-verdict");
      const cls = t.skipped ? "rb-skip" : t.result ? "rb-pass" : "rb-fail";
      el.classList.add(cls);
      if (verdict) {
        verdict.className = `rb-verdict ${cls}`;
        verdict.textContent = t.skipped ? "not evaluated" : `${t.result ? "✓ true" : "✗ false"}${t.path ? ` — ${seenText(t)}` : ""}`;
      }
    }
    if (Array.isArray(t.all)) t.all.forEach((c, i) => paintTrace(c, `${loc}.all[${i}]`));
    if (Array.isArray(t.any)) t.any.forEach((c, i) => paintTrace(c, `${loc}.any[${i}]`));
    if (t.not) paintTrace(t.not, `${loc}.not`);
  }

  function traceNode(t) {
    const cls = t.skipped ? "rb-skip" : t.result ? "rb-pass" : "rb-fail";
    const mark = t.skipped ? "–" : t.result ? "✓" : "✗";
    const icon = h("span", { class: "rb-mark", "aria-label": t.skipped ? "not evaluated" : t.result ? "true" : "false" }, mark);
    if (t.skipped) return h("li", { class: cls }, icon, h("code", {}, t.condition || ""), h("span", { class: "rb-muted" }, " not evaluated"));
    for (const kind of ["all", "any"]) {
      if (Array.isArray(t[kind])) {
        return h("li", { class: `${cls} rb-trace-group` }, icon, h("strong", {}, kind === "all" ? "ALL of" : "ANY of"),
          h("ul", {}, t[kind].map(traceNode)));
      }
    }
    if (t.not) return h("li", { class: `${cls} rb-trace-group` }, icon, h("strong", {}, "NOT"), h("ul", {}, traceNode(t.not)));
    const rhs = t.value_path ? ` ${t.value_path}` : has(t, "value") ? ` ${JSON.stringify(t.value)}` : "";
    return h("li", { class: cls }, icon,
      h("code", {}, `${t.path} `, h("span", { class: "rb-op" }, OP_SYMBOL[t.op] || OP_LABEL[t.op] || t.op), rhs),
      h("span", { class: "rb-seen" }, ` ${seenText(t)}`));
  }

  function renderResult(res) {
    const out = $("#rb-result");
    const verdict = res.matched
      ? h("p", { class: "rb-banner rb-pass" }, h("strong", {}, "✓ Matches"), " — the steps below would run.")
      : h("p", { class: "rb-banner rb-fail" }, h("strong", {}, "✗ No match"), res.reason ? ` — ${res.reason}` : "");
    const parts = [verdict];
    if (res.trace && Object.keys(res.trace).length) {
      parts.push(h("h3", {}, "Conditions"), h("ul", { class: "rb-trace" }, traceNode(res.trace)));
      paintTrace(res.trace, "when");
    } else if (res.matched) {
      parts.push(h("p", { class: "rb-muted" }, "No conditions: every event matches."));
    }
    if (res.steps && res.steps.length) {
      parts.push(h("h3", {}, "Steps"));
      const ol = h("ol", { class: "rb-step-previews" });
      res.steps.forEach((st) => {
        let detail;
        if (st.error) detail = h("p", { class: "rb-fail rb-step-error" }, `✗ ${st.error}`);
        else if (!st.would_run) detail = h("p", { class: "rb-muted" }, `skipped — ${st.skipped_reason || "its condition is false"}`);
        else detail = h("pre", { class: "rb-rendered" }, JSON.stringify(st.rendered, null, 2));
        ol.append(h("li", { class: st.error ? "rb-fail" : st.would_run ? "rb-pass" : "rb-skip" },
          h("div", {}, h("strong", {}, st.id),
            st.id === st.type ? null : h("span", { class: "rb-muted" }, ` · ${STEP_LABEL[st.type] || st.type}`)), detail));
      });
      parts.push(ol);
    }
    out.replaceChildren(...parts);
  }

  async function runTest() {
    clearErrors();
    const spec = currentSpec();
    if (!spec) return;
    const sample = readSample();
    if (!sample) return;
    const btn = $("#rb-test");
    btn.setAttribute("aria-busy", "true");
    const r = await api("POST", "/api/v1/rules/test", { rule: spec, event: sample });
    btn.removeAttribute("aria-busy");
    if (r.status !== 200) { apiFailed(r); return; }
    renderResult(r.data);
    renderTree();
  }

  // -- backtest ---------------------------------------------------------------------------
  async function runBacktest() {
    clearErrors();
    const spec = currentSpec();
    if (!spec) return;
    const btn = $("#rb-backtest");
    btn.setAttribute("aria-busy", "true");
    const limit = Number($("#rb-backtest-n").value) || 50;
    const r = await api("POST", "/api/v1/rules/backtest", { rule: spec, limit });
    btn.removeAttribute("aria-busy");
    if (r.status !== 200) { apiFailed(r); return; }
    const box = $("#rb-backtest-result");
    const items = r.data.items || [];
    if (!items.length) { box.replaceChildren(h("p", { class: "rb-muted" }, "No stored events for this source yet.")); return; }
    box.replaceChildren(
      h("p", {}, h("strong", {}, `${r.data.matched} of ${r.data.total}`), " recent events would have matched."),
      h("table", { class: "rb-backtest striped" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Event"), h("th", { scope: "col" }, "Matched"), h("th", { scope: "col" }, "Why"))),
        h("tbody", {}, items.map((it) => h("tr", {},
          h("td", {}, h("a", { href: `/events/${encodeURIComponent(it.event_id)}` }, String(it.event_id).slice(0, 8)),
            h("br"), h("small", { class: "rb-muted" }, (it.received_at || "").replace("T", " ").slice(0, 19))),
          h("td", {}, h("span", { class: `rb-pill ${it.matched ? "rb-pass" : "rb-fail"}` }, it.matched ? "yes" : "no")),
          h("td", {}, h("small", {}, it.reason || (it.matched ? "all conditions true" : ""))))))));
  }

  // -- save -------------------------------------------------------------------------------
  async function save() {
    clearErrors();
    $("#rb-notice").hidden = true;
    const spec = currentSpec();
    if (!spec) return;
    const btn = $("#rb-save");
    btn.setAttribute("aria-busy", "true");
    const previous = state.savedName;
    const creating = !previous;
    const r = creating
      ? await api("POST", "/api/v1/rules", spec)
      : await api("PUT", `/api/v1/rules/${encodeURIComponent(spec.name)}`, spec);
    btn.removeAttribute("aria-busy");
    if (r.status === 409) {
      showErrors([{ loc: "name", message: (r.data && r.data.message) || "a rule with this name already exists" }]);
      return;
    }
    if (r.status !== 200 && r.status !== 201) { apiFailed(r); return; }
    const name = (r.data && r.data.name) || spec.name;
    state.savedName = name;
    $("#builder").dataset.editing = name;
    $("#rb-title").textContent = name;
    document.title = `Edit ${name} · Hookwise`;
    history.replaceState(null, "", `/rules/${encodeURIComponent(name)}/edit`);
    const version = r.data && r.data.version ? ` (version ${r.data.version})` : "";
    const renamed = previous && previous !== name ? ` The rule ${previous} is still there; delete it from the rules list if it is no longer wanted.` : "";
    notice(`${creating || r.status === 201 ? "Created" : "Saved"} rule ${name}${version}.${renamed}`, "ok");
  }

  // -- views ------------------------------------------------------------------------------
  function showView(view) {
    state.view = view;
    $("#rb-form").hidden = view !== "form";
    $("#rb-yaml").hidden = view !== "yaml";
    $("#rb-tab-form").setAttribute("aria-selected", String(view === "form"));
    $("#rb-tab-yaml").setAttribute("aria-selected", String(view === "yaml"));
  }

  function formToYaml() {
    clearErrors();
    const spec = toSpec([]); // lenient: bad JSON stays as its text, to be fixed in YAML
    $("#rb-yaml-text").value = dumpRule(spec);
    $("#rb-yaml-error").hidden = true;
    showView("yaml");
  }

  /** Read the YAML back into the form; false (error shown, YAML kept) when it does not parse. */
  function yamlToForm() {
    const err = $("#rb-yaml-error");
    let doc;
    try {
      doc = loadYaml($("#rb-yaml-text").value);
    } catch (e) {
      err.textContent = yamlMessage(e);
      err.hidden = false;
      showView("yaml");
      $("#rb-yaml-text").focus();
      return false;
    }
    if (isObject(doc) && Array.isArray(doc.rules) && doc.rules.length === 1 && !doc.name) doc = doc.rules[0];
    if (!isObject(doc)) {
      err.textContent = "The YAML must be one rule: a mapping with name, source, when, actions.";
      err.hidden = false;
      return false;
    }
    err.hidden = true;
    loadSpec(doc);
    renderAll();
    showView("form");
    return true;
  }

  function renderAll() {
    renderMeta();
    renderWhen();
    renderActions();
  }

  // -- wiring -----------------------------------------------------------------------------
  function init() {
    loadSpec(initial.rule);
    renderAll();
    document.addEventListener("focusin", (e) => {
      if (e.target.classList && e.target.classList.contains("path-input")) lastPathInput = e.target;
    });
    $("#rb-tab-form").addEventListener("click", () => { if (state.view !== "form") yamlToForm(); });
    $("#rb-tab-yaml").addEventListener("click", () => { if (state.view !== "yaml") formToYaml(); });
    $(".rb-views").addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const next = state.view === "form" ? "#rb-tab-yaml" : "#rb-tab-form";
        $(next).click();
        $(next).focus();
      }
    });
    $("#rb-add-step").addEventListener("click", () => {
      state.actions.push(newStep($("#rb-new-step").value));
      renderActions(`li:last-child .rb-step-fields input, li:last-child .rb-step-fields select`);
    });
    $("#rb-test").addEventListener("click", runTest);
    $("#rb-save").addEventListener("click", save);
    $("#rb-backtest").addEventListener("click", runBacktest);
    $("#rb-form").addEventListener("submit", (e) => { e.preventDefault(); save(); });
    $("#rb-source").addEventListener("change", loadRecent);
    $("#rb-recent").addEventListener("change", (e) => pickEvent(e.target.value));
    for (const sel of ["#rb-sample-body", "#rb-sample-headers", "#rb-sample-query"]) {
      let timer = null;
      $(sel).addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(renderTree, 250); });
    }
    document.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "s") { e.preventDefault(); save(); }
      if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); runTest(); }
    });
    loadRecent();
    window.hookwiseBuilder = { state, toSpec: () => toSpec([]), loadSpec: (s) => { loadSpec(s); renderAll(); } };
  }

  init();
})();
