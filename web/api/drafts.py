"""``/api/v1/rules/test`` and ``/api/v1/rules/backtest``: try a draft rule without
saving it. Nothing is stored, sent or written."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from engine.run.dryrun import dry_run
from engine.run.replay import backtest
from engine.store.conversations import StateStore
from engine.store.queries import get_event
from web.api.errors import body, not_found
from web.api.models import BacktestOut, BacktestRequest, DryRunOut, RuleTestRequest
from web.api.registry import operation
from web.api.rules import parse_draft
from web.context import runtime


@operation("POST", "/rules/test", tag="rules", summary="Dry-run a draft rule on one event",
           description="Answers the match trace (or why it did not match) and every step "
                       "rendered as it would be sent, with secrets as placeholders. Nothing "
                       "is stored or sent. Problems in the rule are located relative to it.",
           body=RuleTestRequest, responses={200: DryRunOut}, errors=(400, 404, 422))
def test_rule() -> Response:
    req = body(RuleTestRequest)
    spec = parse_draft(req.rule)
    rt = runtime()
    sample: dict[str, Any]
    if req.event_id is not None:
        stored = get_event(rt.db, req.event_id)
        if stored is None:
            raise not_found(f"event {req.event_id!r}")
        ev = stored["event"]
        sample = {"body": ev["body"], "headers": ev["headers"], "query": ev["query"],
                  "source": ev["source"],
                  "event": {"id": ev["id"], "source": ev["source"],
                            "received_at": ev["received_at"]}}
    else:
        assert req.event is not None
        sample = {"body": req.event.body, "headers": req.event.headers,
                  "query": req.event.query, "source": req.event.source}
    report = dry_run(spec, state=StateStore(rt.db).get, **sample)
    return jsonify(report.as_dict())


@operation("POST", "/rules/backtest", tag="rules", summary="Backtest a draft rule",
           description="Evaluates the rule's conditions over the newest stored events of its "
                       "source (or of `source`, as if the rule were written for it), newest "
                       "first. Nothing runs.",
           body=BacktestRequest, responses={200: BacktestOut}, errors=(400, 422))
def backtest_rule() -> Response:
    req = body(BacktestRequest)
    spec = parse_draft(req.rule)
    if req.source:  # evaluate the draft as if it were written for that source
        spec = spec.model_copy(update={"source": req.source})
    rows = backtest(runtime(), spec, limit=req.limit)
    return jsonify({"items": [r.__dict__ for r in rows],
                    "matched": sum(r.matched for r in rows), "total": len(rows)})
