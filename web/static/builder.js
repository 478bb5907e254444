/* Hookwise rule builder: edit a rule as a form or as YAML, test it on a sample event,
 * backtest it over stored events, save it through the JSON API (/api/v1).
 *
 * The form state (`state`) is the source of truth; `toSpec()` turns it into the rule
 * document of SPEC "Rule files" and `loadSpec()` reads one back. Containers carry
 * `data-loc` attributes equal to the API's error locations (`when.all[1].op`,
 * `actions[0].url`), so a 422 answer is shown beside the field it concerns. */
(function () {
  "use strict";

  // -- wording ----------------------------------------------------------------------------
  // What the language has (operators, step types and their fields, choices, defaults) comes
  // from the server, `language` in #rb-initial (rules.vocabulary.describe). These tables only
  // say how the builder words and lays it out; anything they do not mention still shows,
  // under its own name.
  const OP_LABEL = {
    eq: "is (=)", ne: "is not (≠)", gt: "greater than (>)", ge: "at least (≥)",
    lt: "less than (<)", le: "at most (≤)", in: "is one of", nin: "is none of",
    contains: "contains", ncontains: "does not contain", startswith: "starts with",
    endswith: "ends with", regex: "matches regex", exists: "exists", nexists: "does not exist",
    empty: "is empty", nempty: "is not empty",
  };
  const OP_SYMBOL = { eq: "=", ne: "≠", gt: ">", ge: "≥", lt: "<", le: "≤" };
  const OP_PLACEHOLDER = { regex: "^refs/heads/" };
  const GROUP_LABEL = {
    all: "ALL of these (and)", any: "ANY of these (or)", not: "NOT — none of this (negate)",
  };
  const CHOICE_LABEL = {
    match: { any: "any may match", all: "all must match" },
    on_error: { stop: "stop the chain", continue: "continue with the next step" },
  };
  // label, what it does (the "Add a step" list), the id a new step of the type gets
  const STEP_TEXT = {
    webhook: { label: "Webhook", blurb: "send an HTTP request", id: "webhook" },
    email: { label: "Email", blurb: "send a message", id: "email" },
    db_write: { label: "Database write", blurb: "insert or upsert a row", id: "save" },
    reply: { label: "Reply", blurb: "answer the caller", id: "reply" },
    state: { label: "State", blurb: "remember values per conversation", id: "remember" },
    delay: { label: "Delay", blurb: "wait before the next step", id: "wait" },
    branch: { label: "Branch", blurb: "run the first case that holds", id: "route" },
    foreach: { label: "For each", blurb: "run steps once per item of a list", id: "each" },
    set: { label: "Set", blurb: "name values computed once", id: "vars" },
    emit: { label: "Emit", blurb: "raise an event on another source", id: "emit" },
  };
  // what each action returns (the engine's, not the rule language's): template chips
  const STEP_OUTPUTS = {
    webhook: ["status", "headers", "json", "text"], email: ["message_id"],
    db_write: ["rowcount"], reply: ["status", "json", "text"], state: [], delay: [],
    branch: ["case"], foreach: ["items"], set: [], emit: ["event_id", "source"],
  };
  const CONTEXT_CHIPS = [
    ["body", "body"], ["headers", "headers['x-…']"], ["query", "query"],
    ["event.id", "event.id"], ["event.source", "event.source"],
    ["event.received_at", "event.received_at"], ["secrets.NAME", "secrets.NAME"],
    ["state('key')", "state('key')"], ["rule.name", "rule.name"],
  ];
  const RETRY_LABEL = {
    max_attempts: "Max attempts", backoff: "Backoff", initial_s: "First wait (s)",
    max_s: "Longest wait (s)",
  };
  const PAYLOAD_LABEL = { none: "none", json: "JSON", text: "text", body: "raw body" };
  const PAYLOADS = ["json", "text", "body"]; // shown as one "Body" choice where a step has them

  // How each step type's form is laid out: k (the field), label, and optionally cls,
  // placeholder (else the field's default), hint, widget "textarea", part (edit only this
  // field of an object), firstRow (a new step starts with one empty row), keyHint and add
  // (a mapping's key placeholder and "+ …" button). {k: "payload"} groups PAYLOADS.
  const STEP_LAYOUT = {
    webhook: [
      { k: "method", label: "Method", cls: "rb-narrow" },
      { k: "url", label: "URL", cls: "rb-grow", placeholder: "https://chat.example/api/post" },
      { k: "connection", label: "Connection", list: "rb-connections", placeholder: "none",
        hint: "a stored connection: the URL is then relative to its base URL" },
      { k: "headers", label: "Headers" },
      { k: "query", label: "Query parameters" },
      { k: "payload", label: "Body" },
      { k: "timeout_s", label: "Timeout (s)", cls: "rb-narrow" },
      { k: "sign", label: "Sign with secret", part: "secret", cls: "rb-grow",
        placeholder: "OUT_SIGNING", hint: "Standard Webhooks headers; a stored secret's name" },
    ],
    email: [
      { k: "to", label: "To", cls: "rb-grow", hint: "one address, or several separated by commas" },
      { k: "cc", label: "Cc" },
      { k: "bcc", label: "Bcc" },
      { k: "from", label: "From", placeholder: "default sender" },
      { k: "reply_to", label: "Reply-To" },
      { k: "subject", label: "Subject", cls: "rb-full" },
      { k: "text", label: "Text", widget: "textarea", cls: "rb-full" },
      { k: "html", label: "HTML", widget: "textarea", cls: "rb-full" },
    ],
    db_write: [
      { k: "connection", label: "Connection", hint: "default, or a stored secret holding a database URL" },
      { k: "table", label: "Table", placeholder: "payments" },
      { k: "mode", label: "Mode", cls: "rb-narrow" },
      { k: "key", label: "Key columns", hint: "for upsert; comma separated" },
      { k: "values", label: "Values (column → template)", firstRow: true, keyHint: "column", add: "Column" },
    ],
    reply: [
      { k: "status", label: "Status", cls: "rb-narrow" },
      { k: "content_type", label: "Content type", placeholder: "application/json" },
      { k: "headers", label: "Headers" },
      { k: "payload", label: "Body" },
    ],
    state: [
      { k: "key", label: "Key", cls: "rb-grow", placeholder: "{{ body.chat.id }}",
        hint: "which conversation's memory" },
      { k: "ttl_s", label: "Expires after (s)", cls: "rb-narrow" },
      { k: "set", label: "Set (field → value; null deletes)", firstRow: true },
    ],
    delay: [
      { k: "seconds", label: "Seconds", placeholder: "30", hint: "a number, or a template that renders one" },
    ],
    branch: [
      { k: "cases", label: "Cases (the first that holds runs)" },
      { k: "else", label: "Else (no case holds)" },
    ],
    foreach: [
      { k: "items", label: "Items", cls: "rb-grow", path: true, placeholder: "$.body.line_items[*]",
        hint: "a path to a list; click a list in the sample to use its [*]" },
      { k: "as", label: "Each item is called", cls: "rb-narrow" },
      { k: "max_items", label: "At most", cls: "rb-narrow" },
      { k: "concurrency", label: "In parallel", cls: "rb-narrow", hint: "1 = one after the other" },
      { k: "steps", label: "For each item, run" },
    ],
    set: [
      { k: "values", label: "Values (name → template)", firstRow: true, keyHint: "name", add: "Value" },
    ],
    emit: [
      { k: "source", label: "Source", cls: "rb-grow", list: "rb-sources", placeholder: "deploys",
        hint: "a source of this instance; rules on it see the new event" },
      { k: "headers", label: "Headers" },
      { k: "payload", label: "Body" },
    ],
  };

  // How a field of each kind (rules.vocabulary) is edited; other kinds get a YAML box.
  const WIDGET_OF_KIND = {
    choice: "select", integer: "number", number: "number", text: "text", mapping: "kv",
    list: "list", "text|list": "one-or-list", "number|text": "numberish",
  };

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

  // -- the language, as the server describes it -------------------------------------------
  const initial = JSON.parse($("#rb-initial").textContent);
  // the stored connections, offered by a webhook step's Connection box
  document.body.append(h("datalist", { id: "rb-connections" },
    (initial.connections || []).map((name) => h("option", { value: name }))));
  // the sources of this instance, offered by an emit step's Source box
  document.body.append(h("datalist", { id: "rb-sources" },
    (initial.sources || []).map((name) => h("option", { value: name }))));
  const LANG = initial.language;
  const byName = (fields) => Object.fromEntries(fields.map((f) => [f.name, f]));
  const humanize = (name) => name.charAt(0).toUpperCase() + name.slice(1).replace(/_/g, " ");

  const OPS = LANG.operators.map((o) => o.name);
  const OPERATOR = Object.fromEntries(LANG.operators.map((o) => [o.name, o]));
  /** What an operator's value is: "none" (exists…), "list" (in, nin) or "one". */
  const opTakes = (op) => (OPERATOR[op] || {}).value;
  /** Whether an operator compares by order (gt…): its value box is a number box. */
  const opOrdered = (op) => !!(OPERATOR[op] || {}).ordered;
  const PREDICATE = byName(LANG.predicate);
  const MATCH = PREDICATE.match;
  const STEP_COMMON = byName(LANG.step);
  const ON_ERROR = STEP_COMMON.on_error;
  const RETRY_FIELDS = STEP_COMMON.retry.fields;
  const STEP_TYPES = LANG.steps.map((m) => m.type);
  const STEP_SUMMARY = Object.fromEntries(LANG.steps.map((m) => [m.type, m.summary]));
  const STEP_FIELDS = Object.fromEntries(LANG.steps.map((m) => [m.type, formFields(m)]));

  /** A step type's form: its fields as the server lists them, ordered and worded by
   * STEP_LAYOUT; fields the layout does not mention come last, labelled by their name. */
  function formFields(model) {
    const fields = byName(model.fields);
    const shown = new Set();
    const out = [];
    for (const look of STEP_LAYOUT[model.type] || []) {
      if (look.k === "payload") {
        const choices = PAYLOADS.filter((c) => fields[c]);
        choices.forEach((c) => shown.add(c));
        if (choices.length) out.push({ ...look, widget: "payload", choices: ["none", ...choices] });
      } else if (fields[look.k]) {
        shown.add(look.k);
        out.push(formField(fields[look.k], look));
      }
    }
    for (const f of model.fields) {
      if (!shown.has(f.name)) out.push(formField(f, { k: f.name, label: humanize(f.name) }));
    }
    return out;
  }

  /** One form field: the server's facts about `f` (kind, default, choices, template) with
   * the layout's wording; `widget` is how it is edited. */
  function formField(f, look) {
    const scalarDefault = typeof f.default === "string" || typeof f.default === "number";
    const field = {
      ...look,
      // a flow block's step lists and a branch's cases are edited in place; any other
      // list of objects as YAML
      widget: look.part ? "part" : look.widget
        || (f.kind === "list" && f.items === "step" ? "steps" : null)
        || (f.kind === "list" && f.items === "object" ? (f.name === "cases" ? "cases" : "yaml") : null)
        || WIDGET_OF_KIND[f.kind] || "yaml",
      tpl: f.template, typed: f.values === "any", required: f.required, default: f.default,
      placeholder: look.placeholder || (scalarDefault ? String(f.default) : null),
    };
    if (f.choices) field.options = defaultFirst(f.choices, f.default);
    if (look.part) field.rest = defaults(f.fields); // the object's other fields keep their defaults
    return field;
  }

  /** Choices with the default first: a select shows its first option until one is picked. */
  function defaultFirst(choices, dflt) {
    return choices.includes(dflt) ? [dflt, ...choices.filter((c) => c !== dflt)] : choices;
  }

  function defaults(fields) {
    return Object.fromEntries(fields.filter((f) => f.default !== null).map((f) => [f.name, f.default]));
  }

  // -- state ----------------------------------------------------------------------------
  const state = {
    meta: {}, when: null, actions: [], savedName: initial.editing || null, view: "form",
  };
  let lastPathInput = null;

  function newPredicate(path) {
    return { t: "pred", path: path || "", op: OPS[0], valueText: "", useValuePath: false,
             value_path: "", ignore_case: PREDICATE.ignore_case.default, match: MATCH.default };
  }

  function condFromSpec(c) {
    if (isObject(c) && Array.isArray(c.all)) return { t: "group", kind: "all", children: c.all.map(condFromSpec) };
    if (isObject(c) && Array.isArray(c.any)) return { t: "group", kind: "any", children: c.any.map(condFromSpec) };
    if (isObject(c) && has(c, "not")) return { t: "group", kind: "not", children: [condFromSpec(c.not)] };
    const p = newPredicate(isObject(c) ? c.path || "" : "");
    if (!isObject(c)) return p;
    p.op = c.op || OPS[0];
    if (opTakes(p.op) === "list" && Array.isArray(c.value)) p.valueText = c.value.map(fmtScalar).join(", ");
    else if (c.value !== undefined && c.value !== null) p.valueText = fmtScalar(c.value);
    if (c.value_path) { p.useValuePath = true; p.value_path = c.value_path; }
    p.ignore_case = !!c.ignore_case;
    p.match = MATCH.choices.includes(c.match) ? c.match : MATCH.default;
    return p;
  }

  function condToSpec(node) {
    if (node.t === "group") {
      const kids = node.children.map(condToSpec);
      if (node.kind === "not") return { not: kids.length === 1 ? kids[0] : { all: kids } };
      return { [node.kind]: kids };
    }
    const out = { path: node.path.trim(), op: node.op };
    if (opTakes(node.op) !== "none") {
      if (node.useValuePath) out.value_path = node.value_path.trim();
      else if (opTakes(node.op) === "list") out.value = splitList(node.valueText).map(parseScalar);
      else if (!blank(node.valueText)) {
        out.value = opOrdered(node.op) ? toNumberish(node.valueText) : parseScalar(node.valueText);
      }
    }
    if (node.ignore_case) out.ignore_case = true;
    if (node.match !== MATCH.default) out.match = node.match;
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

  function listText(v) {
    return Array.isArray(v) ? v.join(", ") : v || "";
  }

  function stepFromSpec(spec) {
    const s = { type: spec.type || STEP_TYPES[0], id: spec.id || "", on_error: spec.on_error || ON_ERROR.default,
                whenText: "", retryOn: !!spec.retry, retry: {}, payload: "none", jsonText: "", bodyText: "" };
    if (spec.when) s.whenText = dumpFlow(spec.when);
    const retry = isObject(spec.retry) ? spec.retry : {};
    for (const f of RETRY_FIELDS) {
      if (f.kind === "choice") s.retry[f.name] = retry[f.name] || f.default;
      else s.retry[f.name] = retry[f.name] === undefined ? "" : String(retry[f.name]);
    }
    for (const f of STEP_FIELDS[s.type] || []) {
      const v = spec[f.k];
      if (f.widget === "kv") s[f.k] = kvFromSpec(v, f.typed);
      else if (f.widget === "payload") {
        for (const c of f.choices) {
          if (c !== "none" && spec[c] !== undefined && spec[c] !== null) {
            s.payload = c;
            if (c === "json") s.jsonText = JSON.stringify(spec.json, null, 2);
            else s.bodyText = spec[c];
          }
        }
      } else if (f.widget === "part") s[f.k] = isObject(v) ? v[f.part] || "" : "";
      else if (f.widget === "list" || f.widget === "one-or-list") s[f.k] = listText(v);
      else if (f.widget === "select") s[f.k] = blank(v) ? (f.default ?? f.options[0]) : String(v);
      else if (f.widget === "yaml") s[f.k] = v === undefined || v === null ? "" : dumpFlow(v);
      else if (f.widget === "steps") s[f.k] = (Array.isArray(v) ? v : []).map(stepFromSpec);
      else if (f.widget === "cases") s[f.k] = (Array.isArray(v) ? v : []).map(caseFromSpec);
      else s[f.k] = v === undefined || v === null ? "" : String(v);
    }
    return s;
  }

  /** A condition as the form's tree: always a group at the top (an empty one: none). */
  function whenFromSpec(w) {
    if (!w) return { t: "group", kind: "all", children: [] };
    const node = condFromSpec(w);
    return node.t === "group" ? node : { t: "group", kind: "all", children: [node] };
  }

  /** The inverse for a step's or a case's own condition: a lone condition in an ALL group
   * is written as itself; null for none. */
  function whenToSpec(root) {
    if (!root.children.length) return null;
    if (root.kind === "all" && root.children.length === 1) return condToSpec(root.children[0]);
    return condToSpec(root);
  }

  /** One case of a branch: its name, its condition (edited like the rule's) and steps. */
  function caseFromSpec(c) {
    c = isObject(c) ? c : {};
    const known = ["name", "when", "steps"];
    return { name: c.name === undefined || c.name === null ? "" : String(c.name), when: whenFromSpec(c.when),
             steps: (Array.isArray(c.steps) ? c.steps : []).map(stepFromSpec),
             extra: Object.fromEntries(Object.entries(c).filter(([k]) => !known.includes(k))) };
  }

  function caseToSpec(c, loc, errs) {
    const out = {};
    if (!blank(c.name)) out.name = c.name.trim();
    const when = whenToSpec(c.when);
    if (when) out.when = when;
    out.steps = c.steps.map((st, j) => stepToSpec(st, `${loc}.steps[${j}]`, errs));
    return Object.assign(out, c.extra || {});
  }

  function newCase() {
    return { name: "", when: { t: "group", kind: "all", children: [newPredicate()] }, steps: [], extra: {} };
  }

  /** One step as the API wants it; bad client-side input (JSON, YAML) goes to `errs`. */
  function stepToSpec(s, loc, errs) {
    const out = {};
    if (!blank(s.id)) out.id = s.id.trim();
    out.type = s.type;
    for (const f of STEP_FIELDS[s.type] || []) {
      const v = s[f.k];
      if (f.widget === "kv") {
        const obj = kvToSpec(v || [], f.typed);
        if (Object.keys(obj).length || f.required) out[f.k] = obj;
      } else if (f.widget === "payload") {
        if (s.payload === "json") {
          if (blank(s.jsonText)) errs.push({ loc: `${loc}.json`, message: "write the JSON to send (or choose no body)" });
          else {
            try { out.json = JSON.parse(s.jsonText); } catch (e) {
              errs.push({ loc: `${loc}.json`, message: `not valid JSON: ${e.message}` });
              out.json = s.jsonText;
            }
          }
        } else if (s.payload !== "none") out[s.payload] = s.bodyText || "";
      } else if (f.widget === "part") {
        if (!blank(v)) out[f.k] = { ...f.rest, [f.part]: v.trim() };
      } else if (f.widget === "list" || f.widget === "one-or-list") {
        const list = splitList(v);
        if (list.length) out[f.k] = list.length === 1 && f.widget === "one-or-list" ? list[0] : list;
      } else if (f.widget === "number") {
        if (!blank(v)) out[f.k] = toNumberish(v);
      } else if (f.widget === "numberish") {
        // a required one goes out blank too, so the server says what it wants there
        if (!blank(v)) out[f.k] = toNumberish(v);
        else if (f.required) out[f.k] = "";
      } else if (f.widget === "steps") {
        if ((v || []).length || f.required) out[f.k] = (v || []).map((st, j) => stepToSpec(st, `${loc}.${f.k}[${j}]`, errs));
      } else if (f.widget === "cases") {
        out[f.k] = (v || []).map((c, j) => caseToSpec(c, `${loc}.${f.k}[${j}]`, errs));
      } else if (f.widget === "yaml") {
        if (!blank(v)) {
          try { out[f.k] = loadYaml(v); } catch (e) {
            errs.push({ loc: `${loc}.${f.k}`, message: yamlMessage(e) });
            out[f.k] = v;
          }
        }
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
    if (s.on_error !== ON_ERROR.default) out.on_error = s.on_error;
    if (s.retryOn) {
      const r = {};
      for (const f of RETRY_FIELDS) {
        const v = s.retry[f.name];
        if (f.kind === "choice") r[f.name] = v;
        else if (!blank(v)) r[f.name] = toNumberish(v);
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
    state.when = whenFromSpec(spec.when);
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
    spec.actions = state.actions.map((s, i) => stepToSpec(s, `actions[${i}]`, errs));
    return Object.assign(spec, m.extra || {});
  }

  function stepText(type) {
    return STEP_TEXT[type] || { label: type, blurb: STEP_SUMMARY[type] || "", id: type };
  }

  function stepId(s, i) {
    return blank(s.id) ? `step${i + 1}` : s.id.trim();
  }

  /** The step lists a step holds (a block's), each with its loc relative to the step. */
  function subLists(s) {
    const out = [];
    for (const f of STEP_FIELDS[s.type] || []) {
      if (f.widget === "steps") out.push({ list: s[f.k] || [], key: f.k });
      if (f.widget === "cases") (s[f.k] || []).forEach((c, j) => out.push({ list: c.steps, key: `${f.k}[${j}].steps` }));
    }
    return out;
  }

  /** Every step of `list` and of the blocks in it, depth first. */
  function allSteps(list, out) {
    out = out || [];
    list.forEach((s, i) => { out.push([s, i]); for (const sub of subLists(s)) allSteps(sub.list, out); });
    return out;
  }

  function freshStepId(type) {
    const base = stepText(type).id;
    // step ids are unique across the whole rule, blocks included
    const taken = new Set(allSteps(state.actions).map(([s, i]) => stepId(s, i)));
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

  /** YAML as the server reads it (rules/validation.py, _CORE_12): the YAML 1.2 core schema
      (no, on, 12:30 and dates are strings), except that an integer with a leading zero
      (01234) stays a string, as in JSON, and 0b101 is text. See docs/conditions.md. */
  const YAML_SCHEMA = (() => {
    const y = window.jsyaml;
    const INT = /^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$/;
    const FLOAT = /^(?:[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
    const like = (base, re) => new y.Type(base.tag,
      Object.assign({}, base.options, { resolve: (d) => d !== null && re.test(d) }));
    return y.FAILSAFE_SCHEMA.extend({
      implicit: [y.types.null, y.types.bool, like(y.types.int, INT), like(y.types.float, FLOAT)] });
  })();

  function loadYaml(text) {
    return window.jsyaml.load(text, { schema: YAML_SCHEMA });
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
    root.replaceChildren(renderGroup(state.when, "when", null, 0, RULE_WHEN));
    if (focusNode && focusNode.focusEl) focusNode.focusEl.focus();
  }

  // How a condition tree is drawn again after a change, and worded at its top: the rule's
  // own (in #rb-when), or a branch case's (inside the steps).
  const RULE_WHEN = { redraw: () => renderWhen(), head: "Match",
    empty: "No conditions: the rule matches every event of its source." };
  const CASE_WHEN = { redraw: () => renderActions(), head: "When",
    empty: "No conditions: this case always holds (later cases never run)." };

  function renderGroup(node, loc, parent, depth, ui) {
    const kindId = uid("kind");
    const box = h("div", { class: `rb-group rb-group-${node.kind}`, "data-loc": loc });
    const kindSel = h("select", { id: kindId, class: "rb-kind",
      onchange: (e) => { node.kind = e.target.value; ui.redraw(); focusLoc(loc, ":scope > .rb-group-head select"); } },
      ["all", "any", "not"].map((k) => h("option", { value: k, selected: k === node.kind }, GROUP_LABEL[k])));
    const head = h("div", { class: "rb-group-head" },
      h("label", { for: kindId, class: "rb-inline-label" }, depth === 0 ? ui.head : "Group"),
      kindSel,
      h("span", { class: "rb-verdict", "aria-live": "polite" }),
      parent ? h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": "Remove this group",
        title: "Remove group",
        onclick: () => { parent.children.splice(parent.children.indexOf(node), 1); ui.redraw(); } }, "✕") : null);
    box.append(head);
    const list = h("div", { class: "rb-children" });
    node.children.forEach((child, i) => {
      const cl = childLoc(node, loc, i);
      list.append(child.t === "group" ? renderGroup(child, cl, node, depth + 1, ui) : renderPredicate(child, cl, node, ui));
    });
    if (!node.children.length) {
      list.append(h("p", { class: "rb-empty" }, depth === 0 ? ui.empty : "Empty group: add a condition."));
    }
    box.append(list);
    box.append(h("div", { class: "rb-group-foot" },
      h("button", { type: "button", class: "rb-small outline",
        onclick: () => { const p = newPredicate(); node.children.push(p); ui.redraw(); focusFirst(p); } },
        "+ Condition"),
      h("button", { type: "button", class: "rb-small outline secondary",
        onclick: () => {
          const g = { t: "group", kind: "any", children: [newPredicate()] };
          node.children.push(g); ui.redraw(); focusFirst(g.children[0]);
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

  function renderPredicate(node, loc, parent, ui) {
    const pathId = uid("path");
    const opId = uid("op");
    const valId = uid("value");
    node._pathId = pathId;
    const pathInput = h("input", { id: pathId, class: "rb-path path-input", value: node.path,
      placeholder: "$.body.type", autocomplete: "off", spellcheck: "false",
      oninput: (e) => { node.path = e.target.value; } });
    const opSel = h("select", { id: opId, value: node.op,
      onchange: (e) => { node.op = e.target.value; rerenderPredicate(); } },
      OPS.map((op) => h("option", { value: op }, OP_LABEL[op] || op)));

    const valueWrap = h("div", { class: "rb-field rb-cond-value",
      "data-loc": node.useValuePath ? `${loc}.value_path` : `${loc}.value` });
    if (opTakes(node.op) === "none") {
      valueWrap.classList.add("rb-novalue");
      valueWrap.append(h("span", { class: "rb-label-like", "aria-hidden": "true" }, "Value"),
        h("span", { class: "rb-muted" }, "no value needed"));
    } else if (node.useValuePath) {
      valueWrap.append(h("label", { for: valId }, "Compare with path"),
        h("input", { id: valId, class: "rb-path path-input", value: node.value_path,
          placeholder: "$.body.limit", autocomplete: "off", spellcheck: "false",
          oninput: (e) => { node.value_path = e.target.value; } }));
    } else {
      const list = opTakes(node.op) === "list";
      const numeric = opOrdered(node.op) && (blank(node.valueText) || typeof toNumberish(node.valueText) === "number");
      valueWrap.append(h("label", { for: valId }, list ? "Values (comma separated)" : "Value"),
        h("input", { id: valId, value: node.valueText, autocomplete: "off", spellcheck: "false",
          type: numeric ? "number" : "text", step: numeric ? "any" : null,
          placeholder: list ? "usd, eur" : numeric ? "1000" : OP_PLACEHOLDER[node.op] || "value",
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
      opTakes(node.op) === "none" ? null : h("span", { class: "rb-check" },
        h("input", { type: "checkbox", id: vpId, checked: node.useValuePath,
          onchange: (e) => { node.useValuePath = e.target.checked; rerenderPredicate(); } }),
        h("label", { for: vpId }, "compare with another path")),
      h("span", { class: "rb-check", "data-loc": `${loc}.match` },
        h("label", { for: mId }, "several values:"),
        h("select", { id: mId, class: "rb-mini", value: node.match,
          onchange: (e) => { node.match = e.target.value; } },
          choiceOptions("match", MATCH.choices))));

    const row = h("div", { class: "rb-cond", "data-loc": loc },
      h("div", { class: "rb-cond-main" },
        h("div", { class: "rb-field rb-cond-path", "data-loc": `${loc}.path` },
          h("label", { for: pathId }, "Path"), pathInput),
        h("div", { class: "rb-field rb-cond-op", "data-loc": `${loc}.op` },
          h("label", { for: opId }, "Operator"), opSel),
        valueWrap,
        h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": "Remove this condition",
          title: "Remove condition",
          onclick: () => { parent.children.splice(parent.children.indexOf(node), 1); ui.redraw(); } }, "✕")),
      h("div", { class: "rb-cond-foot" }, options, h("span", { class: "rb-verdict", "aria-live": "polite" })));

    function rerenderPredicate() {
      const focused = document.activeElement && document.activeElement.id;
      const fresh = renderPredicate(node, loc, parent, ui);
      row.replaceWith(fresh);
      if (focused === opId) fresh.querySelector(".rb-cond-op select").focus();
      const vp = [...fresh.querySelectorAll(".rb-cond-options input[type=checkbox]")][1];
      if (focused === vpId && vp) vp.focus();
    }
    return row;
  }

  // -- rendering: steps ---------------------------------------------------------------------
  // The chain is a list of steps; a flow block (branch, foreach) holds lists of its own,
  // drawn the same way inside it. Every change redraws the whole chain (renderActions);
  // a step keeps a key across redraws (data-key), so focus goes back where it was.
  const TOP = { prefix: "", chips: CONTEXT_CHIPS, where: "the chain" };

  function renderActions(focusSel) {
    const ol = $("#rb-actions");
    ol.replaceChildren(...stepItems(state.actions, "actions", TOP));
    if (!state.actions.length) {
      ol.append(h("li", { class: "rb-empty" }, "No steps yet. A rule needs at least one: add it below."));
    }
    if (focusSel) {
      const el = ol.querySelector(focusSel);
      if (el) el.focus();
    }
  }

  const keyOf = (s) => s._key || (s._key = uid("step"));
  const inStep = (s, sel) => `[data-key="${keyOf(s)}"] > ${sel}`;

  function stepItems(list, listLoc, ctx) {
    return list.map((s, i) => renderStep(s, i, list, `${listLoc}[${i}]`, ctx));
  }

  /** A block's own list of steps, with its own "add a step" row. */
  function renderStepList(list, listLoc, ctx, label) {
    const ol = h("ol", { class: "rb-steps rb-nested", "data-loc": listLoc }, stepItems(list, listLoc, ctx));
    if (!list.length) ol.append(h("li", { class: "rb-empty" }, "No steps here yet."));
    const selId = uid("newstep");
    const sel = h("select", { id: selId, class: "rb-mini" }, stepTypeOptions());
    const add = h("div", { class: "rb-add-step rb-add-nested" },
      h("label", { for: selId, class: "rb-inline-label" }, "Add a step"), sel,
      h("button", { type: "button", class: "rb-small outline secondary",
        "aria-label": `Add a step to ${label} (${ctx.where})`,
        onclick: () => {
          const st = newStep(sel.value);
          list.push(st);
          renderActions(`${inStep(st, ".rb-step-fields")} input, ${inStep(st, ".rb-step-fields")} select`);
        } }, "+ Step"));
    return h("div", { class: "rb-block-list" }, ol, add);
  }

  /** The template chips a step may use: what its block's context offers (the event, an
   * item…) and the results of every step before it in its list, blocks' steps included. */
  function chipsFor(list, i, ctx) {
    const chips = ctx.chips.slice();
    for (const [prev, j] of allSteps(list.slice(0, i))) chips.push(...outputChips(prev, j));
    return chips;
  }

  function outputChips(s, i) {
    const id = stepId(s, i);
    const outs = s.type === "set"
      ? (s.values || []).map(([k]) => k.trim()).filter((k) => k !== "")
      : STEP_OUTPUTS[s.type] || [];
    return outs.map((out) => [`steps.${id}.${out}`, `steps.${id}.${out}`]);
  }

  /** What the steps inside a block see besides what the block itself sees. */
  // Numbers: step 2's foreach steps are 2.1, 2.2…; its cases' steps 2.1.1 (case 1, step 1)
  // and its else steps 2.else.1.
  function innerContext(s, list, i, ctx, n, where, key) {
    const chips = chipsFor(list, i, ctx);
    if (s.type === "foreach") {
      const name = blank(s.as) ? "item" : s.as.trim();
      chips.unshift([name, name], ["loop.index", "loop.index"]);
    }
    const m = /^cases\[(\d+)\]/.exec(key || "");
    const prefix = m ? `${n}.${Number(m[1]) + 1}.` : key === "else" ? `${n}.else.` : `${n}.`;
    return { prefix, chips, where, step: n };
  }

  function moveStep(list, i, delta) {
    const j = i + delta;
    if (j < 0 || j >= list.length) return;
    const [s] = list.splice(i, 1);
    list.splice(j, 0, s);
    const dir = delta < 0 ? "up" : "down";
    renderActions(inStep(s, `.rb-step-head .rb-move-${dir}`));
    const btn = $(`#rb-actions ${inStep(s, `.rb-step-head .rb-move-${dir}`)}`);
    if (!btn || btn.disabled) {
      const other = $(`#rb-actions ${inStep(s, `.rb-step-head .rb-move-${dir === "up" ? "down" : "up"}`)}`);
      if (other) other.focus();
    }
  }

  /** A collapsed step's head says what it does: its URL, recipient, table, items… */
  function stepGist(s) {
    if (s.type === "branch") return `${(s.cases || []).length} case(s)${(s.else || []).length ? " + else" : ""}`;
    if (s.type === "foreach") return `${s.items || "?"} → ${(s.steps || []).length} step(s)`;
    for (const k of ["url", "to", "table", "key", "source", "seconds"]) if (!blank(s[k])) return String(s[k]);
    return "";
  }

  function renderStep(s, i, list, loc, ctx) {
    const n = `${ctx.prefix}${i + 1}`;
    const idId = uid("sid");
    let lastTpl = null;
    const trackTpl = (el) => { el.addEventListener("focus", () => { lastTpl = el; }); return el; };
    const tplFields = [];
    const collapsed = !!s._collapsed;
    const top = list === state.actions;

    const head = h("div", { class: "rb-step-head" },
      h("button", { type: "button", class: "rb-icon rb-collapse", "aria-expanded": String(!collapsed),
        "aria-label": `${collapsed ? "Expand" : "Collapse"} step ${n}`, title: collapsed ? "Expand" : "Collapse",
        onclick: () => { s._collapsed = !collapsed; renderActions(inStep(s, ".rb-step-head .rb-collapse")); } },
        collapsed ? "▸" : "▾"),
      h("span", { class: `rb-step-badge rb-type-${s.type}` }, n),
      h("strong", {}, stepText(s.type).label),
      collapsed ? h("span", { class: "rb-muted rb-gist" }, stepGist(s)) : null,
      h("div", { class: "rb-field rb-step-id", "data-loc": `${loc}.id` },
        h("label", { for: idId, class: "rb-inline-label" }, "id"),
        h("input", { id: idId, value: s.id, placeholder: `step${i + 1}`, autocomplete: "off",
          spellcheck: "false", oninput: (e) => { s.id = e.target.value; refreshChips(); } })),
      h("div", { class: "rb-step-tools" },
        h("button", { type: "button", class: "rb-icon rb-move-up", "aria-label": `Move step ${n} up`,
          title: "Move up", disabled: i === 0, onclick: () => moveStep(list, i, -1) }, "↑"),
        h("button", { type: "button", class: "rb-icon rb-move-down", "aria-label": `Move step ${n} down`,
          title: "Move down", disabled: i === list.length - 1, onclick: () => moveStep(list, i, 1) }, "↓"),
        h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": `Remove step ${n}`,
          title: "Remove step", onclick: () => {
            list.splice(i, 1);
            if (top) { renderActions(); $("#rb-add-step").focus(); return; }
            const near = list[Math.min(i, list.length - 1)];
            renderActions(near ? inStep(near, ".rb-step-head .rb-remove") : null);
          } }, "✕")));

    const grid = h("div", { class: "rb-grid rb-step-fields" });
    for (const f of STEP_FIELDS[s.type] || []) {
      if (f.widget === "steps" || f.widget === "cases") {
        const where = `step ${n} (${stepId(s, i)})`;
        grid.append(renderBlockField(s, f, loc, (key) => innerContext(s, list, i, ctx, n, where, key)));
      } else grid.append(renderStepField(s, f, loc, trackTpl, tplFields));
    }

    const chipBox = h("div", { class: "rb-chips" });
    function refreshChips() {
      chipBox.replaceChildren(h("span", { class: "rb-muted" }, "available:"),
        ...chipsFor(list, i, ctx).map(([label, expr]) => h("button", { type: "button", class: "rb-chip",
          title: `Insert {{ ${expr} }}`, "aria-label": `Insert ${label}`,
          onmousedown: (e) => e.preventDefault(),
          onclick: () => insertTemplate(lastTpl || tplFields[0], `{{ ${expr} }}`) }, label)));
    }
    refreshChips();
    if (!tplFields.length) chipBox.hidden = true; // nothing here takes a template

    // per-step extras: when, on_error, retry
    const whenId = uid("swhen");
    const errId = uid("onerr");
    const retryId = uid("retry");
    const retryBox = h("div", { class: "rb-grid rb-retry", "data-loc": `${loc}.retry`, hidden: !s.retryOn });
    for (const f of RETRY_FIELDS) retryBox.append(renderRetryField(s, f, loc));
    const extrasOpen = !blank(s.whenText) || s.retryOn || s.on_error !== ON_ERROR.default;
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
            choiceOptions("on_error", ON_ERROR.choices))),
        h("div", { class: "rb-field rb-check-field" },
          h("span", { class: "rb-check" },
            h("input", { type: "checkbox", id: retryId, checked: s.retryOn,
              onchange: (e) => { s.retryOn = e.target.checked; retryBox.hidden = !s.retryOn; } }),
            h("label", { for: retryId }, "Custom retry schedule")))),
      retryBox);

    const body = h("div", { class: "rb-step-body", hidden: collapsed }, grid, chipBox, extras);
    return h("li", { class: `rb-step rb-step-${s.type}${top ? "" : " rb-step-inner"}`, "data-loc": loc,
      "data-key": keyOf(s) }, head, body, h("div", { class: "rb-step-result", "aria-live": "polite" }));
  }

  /** A flow block's nested part: a step list (a foreach's steps, a branch's else) or a
   * branch's cases, each with its name, its condition tree and its steps. */
  function renderBlockField(s, f, loc, contextOf) {
    const floc = `${loc}.${f.k}`;
    if (f.widget === "steps") {
      return h("div", { class: "rb-field rb-full rb-block", "data-loc": floc },
        h("span", { class: "rb-block-label" }, f.label),
        renderStepList(s[f.k], floc, contextOf(f.k), f.label.toLowerCase()));
    }
    const ctx = contextOf("cases[0]");
    const cases = s[f.k];
    const box = h("div", { class: "rb-field rb-full rb-block rb-cases", "data-loc": floc },
      h("span", { class: "rb-block-label" }, f.label));
    cases.forEach((c, j) => {
      const cloc = `${floc}[${j}]`;
      const nameId = uid("case");
      const label = `case ${j + 1}`; // not its name: that changes as it is typed
      const move = (d) => {
        const k = j + d;
        if (k < 0 || k >= cases.length) return;
        cases.splice(j, 1); cases.splice(k, 0, c);
        renderActions(`[data-case="${keyOf(c)}"] .rb-case-tools .rb-move-${d < 0 ? "up" : "down"}`);
      };
      box.append(h("div", { class: "rb-case", "data-loc": cloc, "data-case": keyOf(c) },
        h("div", { class: "rb-case-head" },
          h("strong", {}, `Case ${j + 1}`),
          h("div", { class: "rb-field rb-case-name", "data-loc": `${cloc}.name` },
            h("label", { for: nameId, class: "rb-inline-label" }, "name"),
            h("input", { id: nameId, value: c.name, placeholder: String(j), autocomplete: "off", spellcheck: "false",
              oninput: (e) => { c.name = e.target.value; } })),
          h("div", { class: "rb-step-tools rb-case-tools" },
            h("button", { type: "button", class: "rb-icon rb-move-up", "aria-label": `Move ${label} of step ${ctx.step} up`,
              disabled: j === 0, onclick: () => move(-1) }, "↑"),
            h("button", { type: "button", class: "rb-icon rb-move-down", "aria-label": `Move ${label} of step ${ctx.step} down`,
              disabled: j === cases.length - 1, onclick: () => move(1) }, "↓"),
            h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": `Remove ${label} of step ${ctx.step}`,
              onclick: () => { cases.splice(j, 1); renderActions(inStep(s, ".rb-step-body .rb-add-case")); } }, "✕"))),
        h("div", { class: "rb-case-when" },
          renderGroup(c.when, `${cloc}.when`, null, 0, CASE_WHEN)),
        h("span", { class: "rb-block-label" }, "Then run"),
        renderStepList(c.steps, `${cloc}.steps`, { ...contextOf(`cases[${j}]`), where: `${label} of ${ctx.where}` }, label)));
    });
    box.append(h("button", { type: "button", class: "rb-small outline rb-add-case",
      "aria-label": `Add a case to step ${ctx.step}`,
      onclick: () => {
        const c = newCase();
        cases.push(c);
        renderActions();
        focusFirst(c.when.children[0]);
      } }, "+ Case"));
    return box;
  }

  function choiceOptions(name, choices) {
    return choices.map((c) => h("option", { value: c }, (CHOICE_LABEL[name] || {})[c] || c));
  }

  /** One box of the retry schedule: a select for a choice, else a number box whose
   * placeholder is the default and whose minimum is the field's lower bound. */
  function renderRetryField(s, f, loc) {
    const id = uid("retry");
    const set = (e) => { s.retry[f.name] = e.target.value; };
    const numeric = f.kind === "integer" || f.kind === "number";
    const input = f.kind === "choice"
      ? h("select", { id, value: s.retry[f.name], onchange: set }, choiceOptions(f.name, f.choices))
      : h("input", { id, type: numeric ? "number" : "text", min: f.ge ?? f.gt,
          step: f.kind === "number" ? "any" : null, value: s.retry[f.name],
          placeholder: f.default === null ? null : String(f.default), oninput: set });
    return h("div", { class: "rb-field", "data-loc": `${loc}.retry.${f.name}` },
      h("label", { for: id }, RETRY_LABEL[f.name] || humanize(f.name)), input);
  }

  function renderStepField(s, f, loc, trackTpl, tplFields) {
    const id = uid(f.k);
    const cls = `rb-field ${f.cls || ""}`;
    const hint = f.hint ? h("small", { id: `${id}-hint` }, f.hint) : null;
    const described = f.hint ? `${id}-hint` : null;
    const bind = (el, key) => { el.addEventListener("input", () => { s[key] = el.value; }); return el; };
    if (f.widget === "kv") return renderKv(s, f, loc, trackTpl, tplFields);
    if (f.widget === "payload") {
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
    if (f.widget === "select") {
      input = h("select", { id, value: s[f.k] || f.options[0] }, f.options.map((o) => h("option", { value: o }, o)));
      input.addEventListener("change", () => { s[f.k] = input.value; });
      s[f.k] = s[f.k] || f.options[0];
    } else if (f.widget === "textarea") {
      input = bind(h("textarea", { id, rows: 3, value: s[f.k] || "", spellcheck: "false", "aria-describedby": described }), f.k);
    } else if (f.widget === "yaml") {
      input = bind(h("textarea", { id, rows: 2, value: s[f.k] || "", spellcheck: "false", class: "rb-code",
        "aria-describedby": described }), f.k);
    } else {
      const number = f.widget === "number";
      input = bind(h("input", { id, value: s[f.k] || "", autocomplete: "off", spellcheck: "false",
        type: number ? "number" : "text", step: number ? "any" : null, class: f.path ? "rb-path path-input" : null,
        placeholder: f.placeholder || null, list: f.list || null, "aria-describedby": described }), f.k);
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
          h("input", { id: kId, value: row[0], placeholder: f.keyHint || "name", autocomplete: "off", spellcheck: "false",
            oninput: (e) => { row[0] = e.target.value; } }),
          h("label", { for: vId, class: "rb-sr" }, `${f.label} ${r + 1} value`),
          vInput,
          h("button", { type: "button", class: "rb-icon rb-remove", "aria-label": `Remove ${f.label} row ${r + 1}`,
            onclick: () => { rows.splice(r, 1); draw(); wrap.querySelector(".rb-kv-add").focus(); } }, "✕")));
      });
      wrap.append(h("button", { type: "button", class: "rb-small outline secondary rb-kv-add",
        onclick: () => { rows.push(["", ""]); draw(true); } }, `+ ${f.add || "Row"}`));
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

  function stepTypeOptions() {
    return STEP_TYPES.map((type) => {
      const text = stepText(type);
      return h("option", { value: type }, text.blurb ? `${text.label} — ${text.blurb}` : text.label);
    });
  }

  function newStep(type) {
    const s = stepFromSpec({ type, id: freshStepId(type) });
    for (const f of STEP_FIELDS[type] || []) {
      if (f.widget === "payload" && f.choices.includes("json")) s.payload = "json";
      if (f.firstRow) s[f.k] = [["", ""]];
      if (f.widget === "cases") s[f.k] = [newCase()];
    }
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

  // The segment that selects exactly `key` (rules/paths.py reads it so, as jsonpath-ng
  // does): .name for a plain ASCII name, else ['…'] with \ and ' escaped by a backslash
  // (a\b is ['a\\b'], it's is ['it\'s'], both quotes work). null when the path cannot be
  // put in a path box: it holds one line, so a key with a line break cannot be typed there.
  const NO_PATH = "cannot pick this key: it has a line break, which a one-line path box cannot hold " +
    "(in a rule file, write the path as a double-quoted YAML string with \\n)";
  function pathSegment(key) {
    if (typeof key === "number") return `[${key}]`;
    if (/[\r\n]/.test(key)) return null;
    if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return `.${key}`;
    return `['${key.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}']`;
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

  function noPath(e) {  // a key (or one inside it) no path box can hold: say so
    e.preventDefault(); e.stopPropagation();
    const err = $("#rb-sample-error");
    err.textContent = `${e.currentTarget.textContent}: ${NO_PATH}`;
    err.hidden = false;
  }

  function treeNode(key, value, path, depth) {  // path null: it cannot be picked
    const keyBtn = path === null
      ? h("button", { type: "button", class: "rb-key", "aria-disabled": "true", "data-nopath": "",
        title: NO_PATH, onclick: noPath }, String(key))
      : h("button", { type: "button", class: "rb-key", "data-path": path, title: `Use ${path}`,
        onclick: (e) => { e.preventDefault(); e.stopPropagation(); usePath(path); } }, String(key));
    const note = path === null && pathSegment(key) === null  // this key, not one above it
      ? h("small", { class: "rb-muted rb-nopath" }, ` (${NO_PATH})`) : null;
    const container = Array.isArray(value) || isObject(value);
    if (!container) {
      const shown = typeof value === "string" ? JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}…` : value) : JSON.stringify(value);
      return h("li", {}, keyBtn, note, h("code", { class: `rb-leaf rb-leaf-${value === null ? "null" : typeof value}` }, shown));
    }
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
    const count = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
    const child = (k) => { const s = path === null ? null : pathSegment(k); return s === null ? null : path + s; };
    const kids = h("ul", {}, entries.slice(0, 200).map(([k, v]) => treeNode(k, v, child(k), depth + 1)));
    // a list also offers its every item, path[*] (what a foreach's items are)
    const each = Array.isArray(value) && path !== null
      ? h("button", { type: "button", class: "rb-key rb-each", "data-path": `${path}[*]`,
        title: `Use ${path}[*] (each item)`, "aria-label": `Use ${path}[*], each item of ${key}`,
        onclick: (e) => { e.preventDefault(); e.stopPropagation(); usePath(`${path}[*]`); } }, "[*]")
      : null;
    return h("li", {}, h("details", { open: depth < 3 },
      h("summary", {}, keyBtn, note, h("span", { class: "rb-muted" }, ` ${count}`), each ? " " : null, each), kids));
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
        `${(ev.received_at || "").replace("T", " ").slice(0, 19)} · ${ev.source || source} · ${ev.status || ""} · …${String(ev.id).slice(-8)}`)));
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
    if (res.trace && Object.keys(res.trace).length && !res.trace.always) {
      parts.push(h("h3", {}, "Conditions"), h("ul", { class: "rb-trace" }, traceNode(res.trace)));
      paintTrace(res.trace, "when");
    } else if (res.matched) {
      parts.push(h("p", { class: "rb-muted" }, "No conditions: every event matches."));
    }
    if (res.steps && res.steps.length) {
      parts.push(h("h3", {}, "Steps"), stepPreviews(res.steps));
    }
    out.replaceChildren(...parts);
  }

  /** The dry run's steps as a tree: a branch's case and the steps it would run, a
   *  foreach's items each with its steps. */
  function stepPreviews(steps) {
    const ol = h("ol", { class: "rb-step-previews" });
    steps.forEach((st) => {
      let detail;
      if (st.error) detail = h("p", { class: "rb-fail rb-step-error" }, `✗ ${st.error}`);
      else if (!st.would_run) detail = h("p", { class: "rb-muted" }, `skipped — ${st.skipped_reason || "its condition is false"}`);
      else if (st.type === "branch") {
        detail = h("p", { class: "rb-case" }, st.case === null || st.case === undefined
          ? "no case holds: nothing runs" : st.case === "else" ? "no case holds: else runs" : `case ${st.case} runs`);
      } else if (st.type === "foreach") {
        const n = (st.items || []).length;
        detail = h("p", { class: "rb-muted" }, `${n} item${n === 1 ? "" : "s"}`);
      } else detail = h("pre", { class: "rb-rendered" }, JSON.stringify(st.rendered, null, 2));
      const inner = [];
      if (Array.isArray(st.steps) && st.steps.length) inner.push(stepPreviews(st.steps));
      if (Array.isArray(st.items)) {
        st.items.forEach((item, i) => inner.push(h("div", { class: "rb-item" },
          h("p", { class: "rb-muted" }, `item ${i}`), stepPreviews(item))));
      }
      ol.append(h("li", { class: st.error ? "rb-fail" : st.would_run ? "rb-pass" : "rb-skip" },
        h("div", {}, h("strong", {}, st.id),
          st.id === st.type ? null : h("span", { class: "rb-muted" }, ` · ${stepText(st.type).label}`)), detail,
        ...inner));
    });
    return ol;
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
          h("td", {}, h("a", { href: `/events/${encodeURIComponent(it.event_id)}`, title: it.event_id }, `…${String(it.event_id).slice(-8)}`),
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
    const renaming = !creating && previous !== spec.name;
    // a changed name renames the stored rule (same rule, its history follows), then saves
    let r = renaming
      ? await api("PATCH", `/api/v1/rules/${encodeURIComponent(previous)}`, { name: spec.name })
      : null;
    if (!r || r.status === 200) {
      if (renaming) state.savedName = spec.name; // renamed even if the save below fails
      r = creating
        ? await api("POST", "/api/v1/rules", spec)
        : await api("PUT", `/api/v1/rules/${encodeURIComponent(spec.name)}`, spec);
    }
    btn.removeAttribute("aria-busy");
    if (r.status === 409) {
      // The API's message names the API call; people get a sentence about their rule.
      showErrors([{ loc: "name", message: `a rule named ${spec.name} already exists: choose another name, or open that rule to change it` }]);
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
    const renamed = renaming ? ` (renamed from ${previous}; its versions and past executions moved with it)` : "";
    notice(`${creating || r.status === 201 ? "Created" : "Saved"} rule ${name}${version}${renamed}.`, "ok");
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
  /** Leaving with unsaved changes asks first: the rule on screen is compared with the rule
   * as it was opened or last saved (a save sets #builder's data-editing). */
  function guardUnsavedChanges() {
    const snapshot = () => { try { return JSON.stringify(toSpec([])); } catch (e) { return null; } };
    let saved = snapshot();
    let yamlEdited = false;
    $("#rb-yaml-text").addEventListener("input", () => { yamlEdited = true; });
    new MutationObserver(() => { saved = snapshot(); yamlEdited = false; })
      .observe($("#builder"), { attributes: true, attributeFilter: ["data-editing"] });
    window.addEventListener("beforeunload", (e) => {
      if (snapshot() === saved && !(yamlEdited && state.view === "yaml")) return;
      e.preventDefault();
      e.returnValue = "";
    });
  }

  function init() {
    $("#rb-new-step").replaceChildren(...stepTypeOptions());
    loadSpec(initial.rule);
    renderAll();
    guardUnsavedChanges();
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
      renderActions(":scope > li:last-child > .rb-step-body > .rb-step-fields input, :scope > li:last-child > .rb-step-body > .rb-step-fields select");
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
