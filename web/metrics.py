"""``GET /metrics``: Prometheus text format.

Values are read from the database and Redis at scrape time (a custom collector), so
every server process answers the same numbers without a multiprocess setup.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from engine.broker import inbox
from engine.outbound.guard import DestinationGuard
from engine.runtime import Runtime
from engine.store.models import Event, Execution, StepRun
from web.context import runtime
from web.throttle import LoginThrottle

bp = Blueprint("metrics", __name__)


class HookwiseCollector(Collector):
    def __init__(self, rt: Runtime):
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        events = GaugeMetricFamily("hookwise_events", "Stored events by source and status",
                                   labels=["source", "status"])
        execs = GaugeMetricFamily("hookwise_executions", "Executions by rule and status",
                                  labels=["rule", "status"])
        steps = GaugeMetricFamily("hookwise_steps", "Step runs by type and status",
                                  labels=["type", "status"])
        with self.rt.db.connect() as conn:
            for src, status, n in conn.execute(
                    select(Event.source, Event.status, func.count())
                    .group_by(Event.source, Event.status)):
                events.add_metric([src, str(status)], n)
            for rule, status, n in conn.execute(
                    select(Execution.rule_name, Execution.status, func.count())
                    .group_by(Execution.rule_name, Execution.status)):
                execs.add_metric([rule, str(status)], n)
            for typ, status, n in conn.execute(
                    select(StepRun.type, StepRun.status, func.count())
                    .group_by(StepRun.type, StepRun.status)):
                steps.add_metric([typ, str(status)], n)
        yield events
        yield execs
        yield steps
        up = GaugeMetricFamily("hookwise_redis_up", "1 when Redis answers")
        queued = GaugeMetricFamily("hookwise_queue_jobs", "Jobs waiting in the queue",
                                   labels=["state"])
        try:
            q = self.rt.queue
            queued.add_metric(["queued"], q.count)
            queued.add_metric(["inbox"], inbox.depth(self.rt.redis, q.name))
            queued.add_metric(["scheduled"], len(q.scheduled_job_registry))
            queued.add_metric(["started"], len(q.started_job_registry))
            up.add_metric([], 1)
            yield queued
            yield destination_states(self.rt)
            yield from login_counters(self.rt)
        except Exception:
            up.add_metric([], 0)
        yield up


def login_counters(rt: Runtime) -> Iterator[Metric]:
    failed, throttled = LoginThrottle(rt.redis).totals()
    fails = CounterMetricFamily("hookwise_login_failures", "Failed UI logins (wrong password)")
    fails.add_metric([], failed)
    refused = CounterMetricFamily("hookwise_login_throttled",
                                  "UI logins refused 429 by the login throttle")
    refused.add_metric([], throttled)
    yield fails
    yield refused


STATES = ("failing", "paused", "probing", "slowed")


def destination_states(rt: Runtime) -> Metric:
    """1 for the state each failing or held destination is in (a healthy one has none)."""
    gauge = GaugeMetricFamily("hookwise_destination_state",
                              "1 for the state of a destination that fails or is held",
                              labels=["destination", "state"])
    for d in DestinationGuard(rt.redis).states():
        for state in STATES:
            gauge.add_metric([d["destination"], state], 1 if d["state"] == state else 0)
    return gauge


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HookwiseCollector(runtime()))
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
