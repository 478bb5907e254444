"""Matching benchmark: per-event ``RuleSet.match`` time for 10 … 10,000 rules, in process.

Rules have a realistic shape (see ``make_rule``): every rule is an ``all`` whose first
child tests the event type (``$.body.type``: ``eq`` one of ~50 types, or ``in`` two of
them), whose second tests the account (``$.body.account``: a large rule set serves many
tenants — one account per 20 rules, so 10,000 rules have 500 accounts and an event fires
a handful of rules, not hundreds), plus numeric thresholds, a regex on an e-mail address,
and nested ``any``/``not`` groups; a few rules listen on every source (``"*"``). Events
are varied (types, accounts, totals, currencies, tiers, e-mails, ~10% of unknown types).

For each rule count: the RuleSet is built from ``rules.schema.parse_rule`` specs, warmed
up (its index is built on first use), then every event is timed individually over a few
passes. When ``RuleSet.match`` accepts ``explain_excluded``, both modes are measured
(``explain``: every considered rule gets a MatchResult and trace, as the worker stores
them; ``lean``: ``explain_excluded=False``).

``candidates_per_event`` is the mean number of rules per event whose type test passes
(what an index on ``$.body.type`` alone leaves to evaluate): with a fixed number of types
it grows linearly with the rule count; an index that also used the account would not.
"""

from __future__ import annotations

import gc
import inspect
import random
import statistics
import time
from typing import Any

NOUNS = ["order", "invoice", "customer", "payment", "refund", "shipment", "ticket",
         "subscription", "issue", "deploy"]
VERBS = ["created", "updated", "paid", "failed", "closed"]
TYPES = [f"{n}.{v}" for n in NOUNS for v in VERBS]  # 50 event types
CURRENCIES = ["usd", "eur", "gbp", "jpy"]
TIERS = ["free", "pro", "gold", "enterprise"]
SOURCE = "shop"
RULES_PER_ACCOUNT = 20  # accounts = rules / 20: 10 rules → 1 account, 10,000 → 500


def make_rule(i: int, rng: random.Random, types: list[str], accounts: int,
              ) -> dict[str, Any]:
    """One rule dict (before parse_rule) of one of four shapes, chosen by ``i % 4``; each
    tests the event type first and the account second."""
    t = types[rng.randrange(len(types))]
    account = {"path": "$.body.account", "op": "eq", "value": f"acct-{rng.randrange(accounts)}"}
    threshold = rng.choice([10, 50, 100, 250, 1000])
    shape = i % 4
    if shape == 0:      # type + numeric threshold
        when: dict[str, Any] = {"all": [
            {"path": "$.body.type", "op": "eq", "value": t},
            account,
            {"path": "$.body.total", "op": "gt", "value": threshold},
        ]}
    elif shape == 1:    # type in two + any(currency, big total)
        when = {"all": [
            {"path": "$.body.type", "op": "in", "value": [t, types[rng.randrange(len(types))]]},
            account,
            {"any": [
                {"path": "$.body.currency", "op": "eq", "value": rng.choice(CURRENCIES)},
                {"path": "$.body.total", "op": "ge", "value": threshold * 10},
            ]},
        ]}
    elif shape == 2:    # type + regex + not(tier)
        when = {"all": [
            {"path": "$.body.type", "op": "eq", "value": t},
            account,
            {"path": "$.body.customer.email", "op": "regex",
             "value": r"@(example|acme)\.(com|org)$"},
            {"not": {"path": "$.body.customer.tier", "op": "eq", "value": rng.choice(TIERS)}},
        ]}
    else:               # type + nested any(all(...), not(...)) + header test
        when = {"all": [
            {"path": "$.body.type", "op": "eq", "value": t},
            account,
            {"any": [
                {"all": [
                    {"path": "$.body.total", "op": "ge", "value": threshold},
                    {"path": "$.body.total", "op": "lt", "value": threshold * 20},
                ]},
                {"not": {"path": "$.body.items[*].sku", "op": "startswith", "value": "TEST-"}},
            ]},
            {"path": "$.headers.x-env", "op": "ne", "value": "staging"},
        ]}
    return {
        "name": f"rule-{i:05d}",
        "source": "*" if i % 50 == 49 else SOURCE,
        "priority": rng.choice([0, 0, 0, 10]),
        "when": when,
        "actions": [{"id": "notify", "type": "webhook", "url": "https://example.com/hook",
                     "json": {"event": "{{ body.id }}", "total": "{{ body.total }}"}}],
    }


def make_event(i: int, rng: random.Random, types: list[str], accounts: int,
               ) -> dict[str, Any]:
    from rules.document import build_event_document

    t = rng.choice(types) if rng.random() < 0.9 else f"unknown.{i % 7}"
    body = {
        "id": f"evt-{i}", "type": t, "account": f"acct-{rng.randrange(accounts)}",
        "total": round(rng.uniform(1, 5000), 2),
        "currency": rng.choice(CURRENCIES),
        "customer": {"id": f"cus_{i}", "tier": rng.choice(TIERS),
                     "email": f"user{i}@{rng.choice(['example.com', 'acme.org', 'mail.net'])}"},
        "items": [{"sku": rng.choice(["TEST-1", "SKU-2", "SKU-3"]), "qty": rng.randint(1, 5)}
                  for _ in range(rng.randint(1, 4))],
    }
    headers = {"content-type": "application/json",
               "x-env": rng.choice(["prod", "prod", "staging"])}
    return build_event_document(body, headers, {}, {"id": f"evt-{i}", "source": SOURCE})


def _time_mode(ruleset: Any, events: list[dict[str, Any]], passes: int,
               kwargs: dict[str, Any]) -> dict[str, Any]:
    for doc in events[:50]:  # warm-up (builds the index, fills caches)
        ruleset.match(doc, SOURCE, **kwargs)
    samples: list[float] = []
    matched = 0
    gc.collect()
    gc_was = gc.isenabled()
    gc.disable()  # time matching, not a collection triggered by earlier allocations
    try:
        for _ in range(passes):
            for doc in events:
                t0 = time.perf_counter_ns()
                results = ruleset.match(doc, SOURCE, **kwargs)
                samples.append((time.perf_counter_ns() - t0) / 1000)
                matched += sum(1 for r in results if r.matched)
    finally:
        if gc_was:
            gc.enable()
    samples.sort()
    return {
        "p50_us": round(samples[len(samples) // 2], 1),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1),
        "mean_us": round(statistics.fmean(samples), 1),
        "matched_per_event": round(matched / (passes * len(events)), 1),
        "results_per_event": len(results),
    }


def run(counts: list[int], n_events: int = 300, passes: int = 3, n_types: int = 50,
        rules_per_account: int = RULES_PER_ACCOUNT, seed: int = 6) -> dict[str, Any]:
    from rules.match import RuleSet
    from rules.schema import parse_rule

    types = TYPES[:n_types] if n_types <= len(TYPES) else TYPES + [
        f"custom.t{k}" for k in range(n_types - len(TYPES))]
    params = inspect.signature(RuleSet.match).parameters
    modes: dict[str, dict[str, Any]] = {"explain": {}}
    if "explain_excluded" in params:
        modes = {"explain": {"explain_excluded": True}, "lean": {"explain_excluded": False}}
    out: dict[str, Any] = {"events": n_events, "passes": passes, "types": n_types,
                           "rules_per_account": rules_per_account,
                           "modes": list(modes), "by_rules": {}}
    for count in counts:
        accounts = max(1, count // rules_per_account)
        rng = random.Random(seed)
        events = [make_event(i, rng, types, accounts) for i in range(n_events)]
        rrng = random.Random(seed + count)
        specs = [parse_rule(make_rule(i, rrng, types, accounts)) for i in range(count)]
        t0 = time.perf_counter()
        ruleset = RuleSet(specs, version=count)
        ruleset.match(events[0], SOURCE)
        build_ms = (time.perf_counter() - t0) * 1000
        by_type: dict[str, int] = {}
        for spec in specs:
            cond = spec.when.all[0]  # type: ignore[union-attr]
            values = cond.value if cond.op == "in" else [cond.value]
            for v in set(values):
                by_type[v] = by_type.get(v, 0) + 1
        candidates = statistics.fmean(by_type.get(e["body"]["type"], 0) for e in events)
        row: dict[str, Any] = {"build_ms": round(build_ms, 1), "accounts": accounts,
                               "candidates_per_event": round(candidates, 1)}
        for mode, kwargs in modes.items():
            row[mode] = _time_mode(ruleset, events, passes, kwargs)
        out["by_rules"][str(count)] = row
    lo, hi = str(min(counts)), str(max(counts))
    for mode in modes:
        a = out["by_rules"][lo][mode]["p50_us"]
        b = out["by_rules"][hi][mode]["p50_us"]
        out[f"ratio_{hi}_{lo}_{mode}"] = round(b / a, 2) if a else None
    return out


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    print(json.dumps(run([10, 100, 1000, 10000]), indent=2))
