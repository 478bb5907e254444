"""Receivers that are not instant (issue 11): `hookwise serve`, as shipped, delivering
to a loopback sink that answers late, never, or not at all for a while.

Stages (run them with ``python bench/run.py --stages latency,hanging,flapping``; see
bench/README.md for the protocol):

  latency   per receiver latency (--latencies, ms): a burst of --latency-events posted
            by --senders keep-alive senders as fast as they are answered; deliveries/s =
            delivered ÷ (last arrival − first send), post→arrival p50/p99, ingest
            req/s, lost; peak RSS per worker and of serve's whole process tree. A
            latency stops after --latency-cap s (delivered so far and the rate).
  hanging   rule A posts to a receiver that never answers (step timeout
            --hang-timeout), rule B on the same events to a fast one; B's post→arrival
            p50/p99 with A beside the same without A (events paced at --hang-rate/s).
  flapping  the receiver refuses connections for --down-s s, a burst is posted as it
            goes down; failed attempts per step (the step rows), time to recover after
            it is back, and that nothing was lost.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import load
from memory import TreeSampler
from stack import (
    HOOK_PATH,
    RULES_YAML,
    SOURCE,
    SinkProc,
    Stack,
    body_fn,
    count_events,
    free_port,
    log,
    query,
)

WARM_EVENTS = 8  # a few per worker: imports, compiled rules, connections
FAST_RULE = "bench-fast"
HANG_RULE = "bench-hang"
FLAP_RULE = "bench-flap"
FLAP_RETRY = "{max_attempts: 20, backoff: exponential, initial_s: 1, max_s: 10}"

PER_S_TARGETS = {0: 1000.0, 200: 900.0, 1000: 400.0}  # issue 11, "Done when"
TARGETS = {
    "p50_ms_at_0": 50.0,
    "tree_mb": 300.0,
    "hang_ratio": 2.0,
}

HANG_RULES_YAML = """
sources:
  - slug: {source}
rules:
{hang_rule}
  - name: {fast_rule}
    source: {source}
    when:
      all:
        - {{path: $.body.type, op: in, value: [order.paid, warmup]}}
    actions:
      - id: out
        type: webhook
        url: http://127.0.0.1:{fast_port}/sink
        json: {{order: "{{{{ body.id }}}}", sent: "{{{{ body.sent }}}}"}}
"""

HANG_RULE_YAML = """
  - name: {hang_rule}
    source: {source}
    when:
      all:
        - {{path: $.body.type, op: eq, value: order.paid}}
    actions:
      - id: out
        type: webhook
        url: http://127.0.0.1:{hang_port}/hang
        timeout_s: {timeout}
        json: {{order: "{{{{ body.id }}}}", sent: "{{{{ body.sent }}}}"}}
"""

FLAP_RULES_YAML = """
sources:
  - slug: {source}
rules:
  - name: {flap_rule}
    source: {source}
    when:
      all:
        - {{path: $.body.type, op: eq, value: order.paid}}
    actions:
      - id: out
        type: webhook
        url: http://127.0.0.1:{sink_port}/sink
        retry: {retry}
        json: {{order: "{{{{ body.id }}}}", sent: "{{{{ body.sent }}}}"}}
"""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("receiver stages (latency, hanging, flapping)")
    g.add_argument("--latencies", default="0,50,200,1000",
                   help="receiver latencies for the latency stage, ms")
    g.add_argument("--destination-concurrency", type=int, default=0,
                   help="latency: configure the receiver's destination with this concurrency")
    g.add_argument("--latency-events", type=int, default=2000, help="burst per latency")
    g.add_argument("--latency-cap", type=float, default=120,
                   help="stop a latency after this many s from the first send")
    g.add_argument("--senders", type=int, default=16, help="keep-alive senders of a burst")
    g.add_argument("--serve-args", default="",
                   help="extra `hookwise serve` options, e.g. '--workers 1 --web-workers 1'")
    g.add_argument("--hang-rate", type=float, default=20, help="hanging: events/s")
    g.add_argument("--hang-seconds", type=float, default=10, help="hanging: posting time")
    g.add_argument("--hang-timeout", type=float, default=10,
                   help="the hanging rule's step timeout_s")
    g.add_argument("--hang-cap", type=float, default=120,
                   help="hanging: stop waiting for the fast rule after this many s")
    g.add_argument("--down-s", type=float, default=30, help="flapping: seconds down")
    g.add_argument("--flap-events", type=int, default=1000, help="flapping: burst size")
    g.add_argument("--flap-cap", type=float, default=120,
                   help="flapping: stop waiting this many s after the receiver is back")


def apply_quick(args: argparse.Namespace, given: set[str]) -> None:
    """--quick: fewer events and shorter caps (flags given explicitly win)."""
    quick = {"latency_events": 500, "latency_cap": 30, "hang_rate": 10, "hang_seconds": 5,
             "hang_cap": 30, "flap_events": 200, "flap_cap": 60}
    for name, value in quick.items():
        if "--" + name.replace("_", "-") not in given:
            setattr(args, name, value)


# -- shared --------------------------------------------------------------------------------


@dataclass
class Served:
    stack: Stack
    port: int
    sampler: TreeSampler


@contextmanager
def served(args: argparse.Namespace, label: str, rules: str) -> Iterator[Served]:
    """A fresh `hookwise serve` (defaults: web + 2 workers + embedded Redis) with
    ``rules`` applied, its process tree sampled for memory from the start."""
    stack = Stack(args, label, rules=rules, embedded_redis=False)
    sampler: TreeSampler | None = None
    try:
        port = free_port()
        proc = stack.serve(port, tuple(shlex.split(args.serve_args)))
        sampler = TreeSampler(proc.pid)
        yield Served(stack, port, sampler)
    finally:
        if sampler is not None:
            sampler.stop()
        stack.close()


def warm(port: int, sink: SinkProc, kind: str = "order.paid") -> None:
    """A few events through to ``sink`` before measuring; then forget them."""
    def body(i: int) -> dict[str, Any]:
        return {**body_fn(i), "type": kind, "id": f"warm-{i}"}

    load.burst(port, HOOK_PATH, WARM_EVENTS, 4, body)
    if not sink.wait_for(WARM_EVENTS, 60):
        raise RuntimeError("warm-up events were not delivered (rerun with --keep-tmp and "
                           "see stderr.log in the temp dir)")
    sink.reset()


def accepted(post: dict[str, Any]) -> int:
    """Posts answered 2xx, from a load.burst / load.paced result."""
    return int(post["requests"]) - int(post["errors"])


def censored_pct(lat_sorted: list[float], n: int, p: float) -> float | None:
    """The p-th of ``n`` post→arrival times of which only ``lat_sorted`` arrived: None
    when that one had not arrived (it is later than the cap)."""
    k = min(n - 1, int(n * p))
    return round(lat_sorted[k], 1) if 0 <= k < len(lat_sorted) else None


def delivery_figures(sink: SinkProc, accepted: int, t0: float, cap: float) -> dict[str, Any]:
    """Wait until ``accepted`` distinct steps arrived or ``cap`` s after ``t0`` (the first
    send, time.time()); then delivered (distinct Idempotency-Keys), deliveries/s =
    delivered ÷ (last arrival − first send), post→arrival p50/p99 over all accepted
    events (None: not arrived within the cap)."""
    complete = sink.wait_for(accepted, max(0.0, t0 + cap - time.time()), field="distinct")
    st = sink.stats()
    arrivals = st["arrivals"]
    lat = sorted((a - s) * 1000 for a, s in arrivals if s is not None)
    last = max((a for a, _ in arrivals), default=t0)
    delivered = int(st["distinct"])
    return {
        "accepted": accepted, "delivered": delivered, "complete": complete,
        "capped_at_s": None if complete else cap,
        "lost": accepted - delivered if complete else None,
        "duplicates": int(st["count"]) - delivered,
        "seconds": round(last - t0, 2),
        "deliveries_per_s": round(delivered / max(last - t0, 1e-6), 1) if delivered else 0.0,
        "p50_ms": censored_pct(lat, accepted, 0.5), "p99_ms": censored_pct(lat, accepted, 0.99),
        "first_ms": round(lat[0], 1) if lat else None,
    }


# -- latency -------------------------------------------------------------------------------


def stage_latency(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"events": args.latency_events, "senders": args.senders,
                           "cap_s": args.latency_cap, "by_latency": {}}
    for ms in [int(x) for x in args.latencies.split(",")]:
        try:
            out["by_latency"][str(ms)] = latency_run(args, ms)
        except Exception as exc:  # keep the other latencies' figures
            log(f"latency {ms} ms failed: {type(exc).__name__}: {exc}")
            out["by_latency"][str(ms)] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def latency_run(args: argparse.Namespace, ms: int) -> dict[str, Any]:
    sink = SinkProc(latency_ms=ms)
    try:
        rules = RULES_YAML.format(source=SOURCE, sink_port=sink.port)
        if args.destination_concurrency:  # the cap across workers (Redis leases) in play
            rules = rules.replace("\nrules:", "\ndestinations: [{host: 127.0.0.1, concurrency: "
                                  f"{args.destination_concurrency}}}]\nrules:", 1)
        with served(args, f"lat{ms}", rules) as s:
            warm(s.port, sink)
            log(f"latency {ms} ms: burst of {args.latency_events} from {args.senders} "
                f"senders (cap {args.latency_cap:g} s)")
            t0 = time.time()
            post = load.burst(s.port, HOOK_PATH, args.latency_events, args.senders, body_fn)
            fig = delivery_figures(sink, accepted(post), t0,
                                   args.latency_cap)
            fig.update(latency_ms=ms, ingest_rps=post["rps"], post_errors=post["errors"],
                       post_p50_ms=post["p50_ms"], post_p99_ms=post["p99_ms"],
                       stored_events=count_events(s.stack), memory=s.sampler.stop())
    finally:
        sink.close()
    mem = fig["memory"]
    log(f"  {fig['delivered']}/{fig['accepted']} delivered in {fig['seconds']} s = "
        f"{fig['deliveries_per_s']}/s, p50 {fig['p50_ms']} ms, p99 {fig['p99_ms']} ms, "
        f"ingest {fig['ingest_rps']}/s, tree peak {mem['tree_peak_mb']} MB")
    return fig


# -- hanging -------------------------------------------------------------------------------


def stage_hanging(args: argparse.Namespace) -> dict[str, Any]:
    """The fast rule alone, then beside a rule whose receiver never answers."""
    out: dict[str, Any] = {"rate": args.hang_rate, "seconds": args.hang_seconds,
                           "timeout_s": args.hang_timeout, "cap_s": args.hang_cap}
    out["without"] = hanging_run(args, with_hang=False)
    out["with"] = hanging_run(args, with_hang=True)
    a, b = out["without"]["p50_ms"], out["with"]["p50_ms"]
    out["p50_ratio"] = round(b / a, 2) if a and b else None
    return out


def hanging_run(args: argparse.Namespace, *, with_hang: bool) -> dict[str, Any]:
    fast = SinkProc()
    hang = SinkProc(hang=True) if with_hang else None
    try:
        hang_rule = HANG_RULE_YAML.format(hang_rule=HANG_RULE, source=SOURCE,
                                          hang_port=hang.port, timeout=args.hang_timeout
                                          ) if hang else ""
        rules = HANG_RULES_YAML.format(source=SOURCE, fast_rule=FAST_RULE,
                                       fast_port=fast.port, hang_rule=hang_rule)
        with served(args, "hang" if hang else "nohang", rules) as s:
            warm(s.port, fast, kind="warmup")  # only the fast rule matches these
            log(f"hanging: {args.hang_rate:g}/s for {args.hang_seconds:g} s, "
                f"{'with' if hang else 'without'} the hanging rule")
            t0 = time.time()
            post = load.paced(s.port, HOOK_PATH, args.hang_rate, args.hang_seconds, body_fn)
            posted = time.time()
            fig = delivery_figures(fast, accepted(post), t0, args.hang_cap)
            fig.update(post_errors=post["errors"], memory=s.sampler.stop())
            if hang:
                fig["hanging_receiver"] = held(hang, posted + args.hang_timeout + 2)
    finally:
        fast.close()
        if hang:
            hang.close()
    log(f"  fast rule: {fig['delivered']}/{fig['accepted']} delivered, p50 "
        f"{fig['p50_ms']} ms, p99 {fig['p99_ms']} ms")
    return fig


def held(hang: SinkProc, until: float) -> dict[str, Any]:
    """The hanging sink's figures at ``until`` (time.time()), when the last request posted
    to it has had its step timeout to end: requests, connections, still open, and the
    longest a request was held unanswered."""
    time.sleep(max(0.0, until - time.time()))
    st = hang.stats(since=10**9)
    return {k: st[k] for k in ("count", "connections", "open", "held_max_s")}


# -- flapping ------------------------------------------------------------------------------


def stage_flapping(args: argparse.Namespace) -> dict[str, Any]:
    """A burst posted as the receiver goes down for --down-s s; then until delivered."""
    sink = SinkProc()
    try:
        rules = FLAP_RULES_YAML.format(source=SOURCE, flap_rule=FLAP_RULE,
                                       sink_port=sink.port, retry=FLAP_RETRY)
        with served(args, "flap", rules) as s:
            warm(s.port, sink)
            before = query(s.stack, "select coalesce(max(id), 0) from step_runs")[0][0]
            log(f"flapping: receiver down for {args.down_s:g} s, burst of "
                f"{args.flap_events}, then up to {args.flap_cap:g} s to deliver")
            sink.down(args.down_s)
            t0 = time.time()
            post = load.burst(s.port, HOOK_PATH, args.flap_events, args.senders, body_fn)
            fig = delivery_figures(sink, accepted(post), t0,
                                   args.down_s + args.flap_cap)
            fig.update(down_s=args.down_s, retry=FLAP_RETRY, post_errors=post["errors"],
                       **recovery(sink), attempts=step_attempts(s.stack, int(before)),
                       memory=s.sampler.stop())
    finally:
        sink.close()
    a = fig["attempts"]
    log(f"  {fig['delivered']}/{fig['accepted']} delivered, back after "
        f"{fig.get('first_after_up_s')} s, all after {fig.get('all_after_up_s')} s; failed "
        f"attempts per step mean {a['failed_per_step_mean']}, max {a['failed_per_step_max']}")
    return fig


def recovery(sink: SinkProc) -> dict[str, Any]:
    """Seconds from the receiver being back to its first and its last arrival."""
    st = sink.stats()
    outage = st["outages"][-1] if st["outages"] else [None, None]
    down, up = outage
    arrivals = [a for a, _ in st["arrivals"]]
    if up is None or not arrivals:
        return {"outage": outage, "first_after_up_s": None, "all_after_up_s": None}
    return {"outage_s": round(up - down, 2),
            "first_after_up_s": round(min(arrivals) - up, 2),
            "all_after_up_s": round(max(arrivals) - up, 2)}


def step_attempts(stack: Stack, after_id: int) -> dict[str, Any]:
    """From the step rows (id > ``after_id``): attempts per step, how many of them failed
    (every attempt but a succeeded step's last), and the steps' statuses."""
    rows = query(stack, f"select status, attempts from step_runs where id > {after_id}")
    failed = [int(n) - (1 if str(st).endswith("succeeded") else 0) for st, n in rows]
    statuses = Counter(str(st).rpartition(".")[2] for st, _ in rows)
    return {"steps": len(rows), "attempts": sum(int(n) for _, n in rows),
            "statuses": dict(statuses),
            "failed_attempts": sum(failed),
            "failed_per_step_mean": round(sum(failed) / len(rows), 2) if rows else None,
            "failed_per_step_max": max(failed, default=None),
            "by_attempts": dict(sorted(Counter(int(n) for _, n in rows).items()))}


# -- summary -------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "MISS")


def _ms(v: float | None, cap: float | None) -> str:
    """A censored post→arrival figure: ms, or later than the cap."""
    return f"> {cap:g} s" if v is None else f"{v:g} ms"


def summary_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    if res.get("latency"):
        rows += _latency_rows(res["latency"])
    if res.get("hanging"):
        rows += _hanging_rows(res["hanging"])
    if res.get("flapping"):
        rows += _flapping_rows(res["flapping"])
    return rows


def _latency_rows(lat: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for ms, f in lat["by_latency"].items():
        name = f"serve, receiver {ms} ms, burst {lat['events']}"
        if "error" in f:
            rows.append((name, f"failed: {f['error']}", "", "MISS"))
            continue
        target = PER_S_TARGETS.get(int(ms))
        capped = f" (capped at {f['capped_at_s']:g} s)" if f["capped_at_s"] else ""
        rows.append((f"{name}: deliveries/s",
                     f"{f['deliveries_per_s']:g}/s, {f['delivered']} of {f['accepted']} "
                     f"in {f['seconds']:g} s{capped}",
                     f">= {target:g}/s" if target else "",
                     verdict(f["complete"] and f["deliveries_per_s"] >= target)
                     if target else ""))
        p50_ok = (f["p50_ms"] is not None and f["p50_ms"] <= TARGETS["p50_ms_at_0"]
                  ) if ms == "0" else None
        rows.append(("  post→arrival p50 / p99; ingest; lost",
                     f"{_ms(f['p50_ms'], f['capped_at_s'])} / "
                     f"{_ms(f['p99_ms'], f['capped_at_s'])}; {f['ingest_rps']:g} req/s; "
                     + ("lost — (capped)" if f["lost"] is None else f"lost {f['lost']}"),
                     f"p50 <= {TARGETS['p50_ms_at_0']:g} ms" if ms == "0" else "",
                     verdict(p50_ok) if ms == "0" else ""))
        mem = f["memory"]
        workers = " + ".join(f"{w:.0f}" for w in mem["workers_peak_mb"])
        rows.append(("  peak RSS: process tree; workers; web",
                     f"{mem['tree_peak_mb']:.0f} MB; {workers} MB; "
                     f"{sum(mem['web_peak_mb']):.0f} MB", f"<= {TARGETS['tree_mb']:g} MB",
                     verdict(mem["tree_peak_mb"] <= TARGETS["tree_mb"])))
    return rows


def _hanging_rows(h: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    a, b = h["without"], h["with"]
    cap = h["cap_s"]
    rows = [(f"hanging (paced {h['rate']:g}/s for {h['seconds']:g} s): fast rule p50 / p99 "
             "without / with the hanging rule",
             f"{_ms(a['p50_ms'], cap)} / {_ms(a['p99_ms'], cap)} vs "
             f"{_ms(b['p50_ms'], cap)} / {_ms(b['p99_ms'], cap)} "
             f"({b['delivered']} of {b['accepted']} delivered)",
             f"p50 <= {TARGETS['hang_ratio']:g}x",
             verdict(h["p50_ratio"] is not None and h["p50_ratio"] <= TARGETS["hang_ratio"]))]
    hr = b.get("hanging_receiver") or {}
    if hr:
        rows.append(("  hanging receiver: requests; longest held",
                     f"{hr['count']}; {hr['held_max_s']:g} s",
                     f"<= {h['timeout_s']:g} s (+1)",
                     verdict(hr["held_max_s"] <= h["timeout_s"] + 1)))
    return rows


def _flapping_rows(f: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    a = f["attempts"]
    return [
        (f"flapping (down {f['down_s']:g} s, burst {f['accepted']}): failed attempts per "
         "step, mean / max",
         f"{a['failed_per_step_mean']} / {a['failed_per_step_max']} "
         f"({a['failed_attempts']} in all)", "", ""),
        ("  back → first / last delivery",
         f"{f.get('first_after_up_s')} / {f.get('all_after_up_s')} s", "", ""),
        ("  delivered; lost",
         f"{f['delivered']} of {f['accepted']}; "
         + ("— (capped)" if f["lost"] is None else str(f["lost"])), "0 lost",
         verdict(f["lost"] == 0)),
    ]
