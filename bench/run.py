"""Hookwise benchmark (issue 6): one command, one summary table, one JSON file.

    python bench/run.py            # full run (~6-8 min on 2 cores)
    python bench/run.py --quick    # shorter runs, one server setting (~2 min)
    python bench/run.py --quick --stages receivers   # slow/hanging/flapping (~6 min)

Stages (see bench/README.md for what each figure means):
  matching  in-process RuleSet.match time for 10/100/1,000/10,000 rules   (bench/matching.py)
  sink      the loopback sink's own capacity under wrk (it must not be the limit)
  ingest    wrk → POST /hooks/<source> on `hookwise web` (durable store + enqueue, no
            workers running) beside the same no-op Flask app on gunicorn sync 2 (the
            issue's baseline) and on the same server settings,
            for each server setting in --configs; the best Hookwise setting is chosen
  e2e       a burst of N matching webhooks → rule → webhook step → sink, with 1 then 2
            `hookwise worker` processes; then a paced run at 100 events/s
  memory    RSS of web (server master + workers) and of each worker after the e2e run
  oneproc   the same burst and paced run against `hookwise worker --web` (web and one
            worker in one process, `hookwise serve --one-process`), then its RSS

Receiver stages (issue 11; not in the default run: --stages receivers or --stages all;
bench/receivers.py): `hookwise serve` as shipped against slow receivers
  latency   bursts against a receiver answering after 0/50/200/1,000 ms (--latencies)
  hanging   a fast rule's latency beside a rule whose receiver never answers
  flapping  a receiver down for 30 s, then back: attempts spent, recovery, nothing lost

Every stage starts from a fresh data dir, database and Redis: SQLite and an embedded
redis-server by default; --database-url / --redis-url for real servers (see --help; the
named database is dropped and recreated, the named Redis DB flushed).

Writes bench/results/summary.json; prints the table with the issue's targets and
PASS/MISS. --profile adds py-spy recordings of an ingest run and of a 2-worker burst
(bench/results/profile-*.txt) and prints where the samples went.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import load  # noqa: E402
import matching  # noqa: E402
import pyspy as spy  # noqa: E402
import receivers  # noqa: E402
from memory import tree_memory  # noqa: E402
from stack import (  # noqa: E402
    RESULTS,
    SOURCE,
    SinkProc,
    Stack,
    body_fn,
    burst_figures,
    count_events,
    free_port,
    log,
    server_cmd,
    wait_http,
)

REFERENCE = {"class": "sync", "workers": 2, "threads": 1, "name": "sync 2w"}
TARGETS = {
    "ingest_ratio": 0.60,
    "ingest_p99_ms": 25.0,
    "e2e_2w_per_s": 500.0,
    "e2e_paced_p50_ms": 20.0,
    "match_10k_p50_us": 1000.0,
    "match_ratio": 3.0,
    "rss_mb": 150.0,
}


def parse_configs(spec: str) -> list[dict[str, Any]]:
    """'gthread:2x8,sync:4,granian:2x8' → [{class, workers, threads}, ...]."""
    out = []
    for item in spec.split(","):
        cls, _, shape = item.strip().partition(":")
        w, _, t = shape.partition("x")
        out.append({"class": cls, "workers": int(w), "threads": int(t or 1),
                    "name": f"{cls} {w}w" + (f"x{t}t" if cls in ("gthread", "granian") else "")})
    return out


# -- stages ---------------------------------------------------------------------------


def stage_sink(args: argparse.Namespace) -> dict[str, Any]:
    sink = SinkProc()
    try:
        if load.have_wrk():
            r = load.wrk(sink.port, "/sink", min(args.seconds, 5), args.connections)
        else:
            r = load.timed(sink.port, "/sink", min(args.seconds, 5), args.connections, body_fn)
    finally:
        sink.close()
    return r


def stage_ingest(args: argparse.Namespace) -> dict[str, Any]:
    """Per setting: the no-op app and Hookwise run side by side (each idle while the other
    is loaded) and are measured in alternating rounds, so drift in the machine's other
    load hits both alike; the ratio is the median of the per-round ratios."""
    configs = parse_configs(args.configs)
    rows = []
    use_wrk = load.have_wrk() and not args.python_client
    path = f"/hooks/{SOURCE}"

    def hit(port: int, seconds: float) -> dict[str, Any]:
        if use_wrk:
            return load.wrk(port, path, seconds, args.connections)
        return load.timed(port, path, seconds, args.connections, body_fn)

    for cfg in configs:
        row: dict[str, Any] = {"config": cfg["name"], **cfg}
        noop_stack = Stack(args, "noop")
        stack = Stack(args, "ingest")
        try:
            # the baseline (a no-op Flask app on gunicorn, 2 sync workers) and the
            # no-op on this setting, both measured in the same alternating rounds
            ref_port, noop_port = free_port(), free_port()
            ref = noop_stack.spawn(server_cmd(ref_port, REFERENCE, "noop_app:app"))
            wait_http(ref_port, proc=ref)
            p = noop_stack.spawn(server_cmd(noop_port, cfg, "noop_app:app"))
            wait_http(noop_port, proc=p)
            port = free_port()
            web = stack.web(port, cfg)
            log(f"ingest {cfg['name']}: {args.rounds} rounds of baseline, no-op, hookwise")
            accepted = 0
            for p_ in (ref_port, noop_port, port):
                w = hit(p_, args.warmup)
                if p_ == port:
                    accepted += w["requests"] - w["errors"]
            runs: dict[str, list[dict[str, Any]]] = {"reference": [], "noop": [],
                                                     "hookwise": []}
            for _ in range(args.rounds):
                runs["reference"].append(hit(ref_port, args.seconds / args.rounds))
                runs["noop"].append(hit(noop_port, args.seconds / args.rounds))
                runs["hookwise"].append(hit(port, args.seconds / args.rounds))
            for name, rs in runs.items():
                row[name] = _merge_rounds(rs)
            row["hookwise"]["accepted_total"] = accepted + sum(
                r["requests"] - r["errors"] for r in runs["hookwise"])
            for key, base in (("ratio", "noop"), ("ref_ratio", "reference")):
                ratios = [round(h["rps"] / n["rps"], 3) for n, h in
                          zip(runs[base], runs["hookwise"], strict=True)]
                row[f"round_{key}s"] = ratios
                row[key] = sorted(ratios)[len(ratios) // 2]
            row["web_memory"] = tree_memory(web.pid)
            row["noop_memory"] = tree_memory(p.pid)
            stack.stop(web)
            row["stored_events"] = count_events(stack)
        finally:
            stack.close()
            noop_stack.close()
        log(f"  baseline {row['reference']['rps']}/s, no-op {row['noop']['rps']}/s, "
            f"hookwise {row['hookwise']['rps']}/s (p99 {row['hookwise']['p99_ms']} ms), "
            f"ratio to baseline {row['ref_ratio']}, to same-setting no-op {row['ratio']}")
        rows.append(row)
    best = max(rows, key=lambda r: r["hookwise"]["rps"] if r["hookwise"]["errors"] == 0
               else -1)
    return {"engine": "wrk" if use_wrk else "python", "connections": args.connections,
            "seconds": args.seconds, "rounds": args.rounds, "configs": rows,
            "chosen": best["config"]}


def _merge_rounds(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests/s over all rounds; latency percentiles: the median round's."""
    def med(key: str) -> Any:
        vals = sorted(r[key] for r in rs if r.get(key) is not None)
        return vals[len(vals) // 2] if vals else None
    requests = sum(r["requests"] for r in rs)
    errors = sum(r["errors"] for r in rs)
    seconds = sum(r["seconds"] for r in rs)
    return {"engine": rs[0]["engine"], "connections": rs[0]["connections"],
            "seconds": round(seconds, 2), "requests": requests, "errors": errors,
            "rps": round((requests - sum(r.get("non_2xx", 0) for r in rs)) / seconds, 1),
            "p50_ms": med("p50_ms"), "p90_ms": med("p90_ms"), "p99_ms": med("p99_ms"),
            "max_ms": max((r.get("max_ms") or 0) for r in rs),
            "rounds": [{k: r.get(k) for k in ("rps", "p50_ms", "p99_ms", "errors")}
                       for r in rs]}


def stage_e2e(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    sink = SinkProc()
    stack = Stack(args, "e2e", sink_port=sink.port)
    out: dict[str, Any] = {"web_config": cfg["name"], "events": args.events}
    path = f"/hooks/{SOURCE}"
    try:
        port = free_port()
        web = stack.web(port, cfg)
        workers = [stack.worker()]
        time.sleep(1.0)

        def warm() -> None:
            sink.reset()
            load.burst(port, path, 50, 4, body_fn)
            if not sink.wait_for(50, 60):
                raise RuntimeError("warm-up events were not delivered (rerun with "
                                   "--keep-tmp and see stderr.log in the temp dir)")
            sink.reset()

        for n_workers in (1, 2):
            while len(workers) < n_workers:
                workers.append(stack.worker())
                time.sleep(1.0)
            warm()
            log(f"e2e: burst of {args.events} with {n_workers} worker(s)")
            post = load.burst(port, path, args.events, args.burst_connections, body_fn)
            out[f"burst_{n_workers}w"] = burst_figures(sink, args.events, post,
                                                        args.drain_timeout)
            b = out[f"burst_{n_workers}w"]
            log(f"  {b['delivered']}/{args.events} delivered, {b['delivered_per_s']}/s, "
                f"p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms")
        sink.reset()
        log(f"e2e: paced {args.rate}/s for {args.paced_seconds} s, 2 workers")
        post = load.paced(port, path, args.rate, args.paced_seconds, body_fn)
        n = post["requests"] - post["errors"]
        paced = burst_figures(sink, n, {"rps": args.rate, "errors": post["errors"]}, 60)
        paced.update({"rate": args.rate, "post_p50_ms": post["p50_ms"],
                      "post_p99_ms": post["p99_ms"]})
        for k in ("drain_per_s", "delivered_per_s", "post_rps"):
            paced.pop(k)
        out["paced"] = paced
        log(f"  p50 {paced['p50_ms']} ms, p99 {paced['p99_ms']} ms post→arrival")
        out["memory"] = {"web": tree_memory(web.pid),
                         "workers": [tree_memory(w.pid) for w in workers]}
        if args.profile and spy.have_py_spy():
            out["profile"] = profile_e2e(args, stack, sink, port, workers)
    finally:
        stack.close()
        sink.close()
    return out


def stage_one_process(args: argparse.Namespace) -> dict[str, Any]:
    """`hookwise worker --web`: the burst and the paced run of stage_e2e against web and
    one worker living in one process, then that process's memory."""
    sink = SinkProc()
    stack = Stack(args, "oneproc", sink_port=sink.port)
    out: dict[str, Any] = {"events": args.events}
    path = f"/hooks/{SOURCE}"
    try:
        port = free_port()
        proc = stack.spawn([sys.executable, "-m", "cli", "worker", "--web",
                            f"127.0.0.1:{port}"])
        wait_http(port, proc=proc)
        load.burst(port, path, 50, 4, body_fn)
        if not sink.wait_for(50, 60):
            raise RuntimeError("warm-up events were not delivered")
        sink.reset()
        log(f"one process: burst of {args.events}")
        post = load.burst(port, path, args.events, args.burst_connections, body_fn)
        out["burst"] = b = burst_figures(sink, args.events, post, args.drain_timeout)
        log(f"  {b['delivered']}/{args.events} delivered, {b['delivered_per_s']}/s")
        sink.reset()
        log(f"one process: paced {args.rate}/s for {args.paced_seconds} s")
        post = load.paced(port, path, args.rate, args.paced_seconds, body_fn)
        n = post["requests"] - post["errors"]
        paced = burst_figures(sink, n, {"rps": args.rate, "errors": post["errors"]}, 60)
        out["paced"] = {k: paced[k] for k in ("events", "delivered", "complete", "p50_ms",
                                              "p99_ms")}
        out["paced"].update(post_p50_ms=post["p50_ms"], post_p99_ms=post["p99_ms"])
        out["memory"] = tree_memory(proc.pid)
    finally:
        stack.close()
        sink.close()
    return out


def profile_e2e(args: argparse.Namespace, stack: Stack, sink: SinkProc, port: int,
                workers: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """A further 2-worker burst (not counted) with py-spy on the first worker."""
    sink.reset()
    n = args.events
    dest = RESULTS / "profile-worker.txt"
    rec = spy.record(workers[0].pid, dest, seconds=max(3, n / 300), gil=args.profile_gil)
    time.sleep(0.5)
    load.burst(port, f"/hooks/{SOURCE}", n, args.burst_connections, body_fn)
    sink.wait_for(n, args.drain_timeout)
    rec.wait(timeout=120)
    return spy.summarise(dest) if dest.exists() else {}


def profile_ingest(args: argparse.Namespace, cfg: dict[str, Any]) -> dict[str, Any]:
    stack = Stack(args, "profile")
    dest = RESULTS / "profile-web.txt"
    try:
        port = free_port()
        web = stack.web(port, cfg)
        rec = spy.record(web.pid, dest, seconds=args.seconds, subprocesses=True,
                         gil=args.profile_gil)
        time.sleep(0.5)
        if load.have_wrk():
            load.wrk(port, f"/hooks/{SOURCE}", args.seconds, args.connections)
        else:
            load.timed(port, f"/hooks/{SOURCE}", args.seconds, args.connections, body_fn)
        rec.wait(timeout=120)
    finally:
        stack.close()
    return spy.summarise(dest) if dest.exists() else {}


# -- summary -----------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("PASS" if ok else "MISS")


def summary_rows(res: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    ing = res.get("ingest")
    if ing:
        best = next(r for r in ing["configs"] if r["config"] == ing["chosen"])
        h, n, ref = best["hookwise"], best["noop"], best["reference"]
        for r in ing["configs"]:
            rows.append((f"ingest {r['config']}: hookwise / no-op, same setting",
                         f"{r['hookwise']['rps']:.0f} / {r['noop']['rps']:.0f} req/s "
                         f"= {r['ratio']:.0%}", "", ""))
        rows.append((f"ingest, chosen {ing['chosen']} ({ing['engine']}, "
                     f"{ing['connections']} conns): ratio to the no-op baseline "
                     f"(gunicorn {REFERENCE['name']})",
                     f"{best['ref_ratio']:.0%} ({h['rps']:.0f}/s vs {ref['rps']:.0f}/s)",
                     f">= {TARGETS['ingest_ratio']:.0%}",
                     verdict(best["ref_ratio"] >= TARGETS["ingest_ratio"])))
        rows.append(("ingest p50 / p99 at that load",
                     f"{h['p50_ms']} / {h['p99_ms']} ms (no-op {n['p50_ms']} / {n['p99_ms']})",
                     f"p99 <= {TARGETS['ingest_p99_ms']:g} ms",
                     verdict(h["p99_ms"] <= TARGETS["ingest_p99_ms"])))
        errs = h["errors"]
        if errs:
            rows.append(("ingest errors (non-2xx, socket)", str(errs), "0", "MISS"))
        stored, accepted = best.get("stored_events"), h.get("accepted_total")
        if stored is not None and accepted is not None:
            rows.append(("ingest: 2xx answers / events stored", f"{accepted} / {stored}",
                         "stored >= 2xx", verdict(stored >= accepted)))
    e2e = res.get("e2e")
    if e2e:
        for k in ("burst_1w", "burst_2w"):
            b = e2e.get(k)
            if not b:
                continue
            two = k == "burst_2w"
            rows.append((f"e2e burst {b['events']}, {k[-2]} worker(s), web "
                         f"{e2e['web_config']}: delivered/s",
                         f"{b['delivered_per_s']:.0f}/s (drain {b['drain_per_s']:.0f}/s, "
                         f"posted {b['post_rps']:.0f}/s)"
                         + ("" if b["complete"] else f" ONLY {b['delivered']} delivered"),
                         f">= {TARGETS['e2e_2w_per_s']:g}/s" if two else "",
                         verdict(b["complete"] and b["delivered_per_s"]
                                 >= TARGETS["e2e_2w_per_s"]) if two else ""))
            rows.append((f"e2e burst, {k[-2]} worker(s): post→arrival p50 / p99",
                         f"{b['p50_ms']} / {b['p99_ms']} ms", "", ""))
        p = e2e.get("paced")
        if p:
            rows.append((f"e2e paced {p['rate']:g}/s, 2 workers: post→arrival p50 / p99",
                         f"{p['p50_ms']} / {p['p99_ms']} ms",
                         f"p50 <= {TARGETS['e2e_paced_p50_ms']:g} ms",
                         verdict(p["complete"] and p["p50_ms"] is not None
                                 and p["p50_ms"] <= TARGETS["e2e_paced_p50_ms"])))
        mem = e2e.get("memory")
        if mem:
            web_mb = mem["web"]["rss_mb"]
            w_mb = mem["workers"][0]["rss_mb"]
            web_each = " + ".join(f"{e['rss_mb']:.0f}" for e in mem["web"]["each"])
            rows.append((f"RSS web ({mem['web']['processes']} procs) + one worker",
                         f"({web_each}) + {w_mb:.0f} = {web_mb + w_mb:.0f} MB",
                         f"<= {TARGETS['rss_mb']:g} MB",
                         verdict(web_mb + w_mb <= TARGETS["rss_mb"])))
            web_pss, w_pss = mem["web"]["pss_mb"], mem["workers"][0]["pss_mb"]
            rows.append(("  PSS of the same (shared pages counted once, as a container's "
                         "memory limit counts them)",
                         f"{web_pss:.0f} + {w_pss:.0f} = {web_pss + w_pss:.0f} MB", "", ""))
    one = res.get("oneproc")
    if one:
        b, p, mem = one["burst"], one["paced"], one["memory"]
        rows.append((f"one process (worker --web): burst {b['events']} delivered/s",
                     f"{b['delivered_per_s']:.0f}/s (posted {b['post_rps']:.0f}/s)", "", ""))
        rows.append(("one process: paced post→arrival p50 / p99 (the post alone: p50)",
                     f"{p['p50_ms']} / {p['p99_ms']} ms ({p.get('post_p50_ms')} ms)", "", ""))
        rows.append(("RSS web + one worker as one process (serve --one-process)",
                     f"{mem['rss_mb']:.0f} MB (PSS {mem['pss_mb']:.0f})",
                     f"<= {TARGETS['rss_mb']:g} MB",
                     verdict(mem["rss_mb"] <= TARGETS["rss_mb"])))
    rows += receivers.summary_rows(res)
    m = res.get("matching")
    if m:
        counts = list(m["by_rules"])
        lo, hi = counts[0], counts[-1]
        for mode in m["modes"]:
            cells = " · ".join(f"{int(c):,}: {m['by_rules'][c][mode]['p50_us']:.0f}"
                               for c in counts)
            rows.append((f"match p50 by rule count [{mode}]", f"{cells} µs", "", ""))
            top = m["by_rules"][hi][mode]
            cand = m["by_rules"][hi]["candidates_per_event"]
            rows.append((f"match {int(hi):,} rules [{mode}]: p50 / p99",
                         f"{top['p50_us']:g} / {top['p99_us']:g} µs ({cand:g} type "
                         f"candidates, {top['matched_per_event']:g} matches/event)",
                         f"p50 <= {TARGETS['match_10k_p50_us']:g} µs" if hi == "10000" else "",
                         verdict(top["p50_us"] <= TARGETS["match_10k_p50_us"])
                         if hi == "10000" else ""))
            ratio = m.get(f"ratio_{hi}_{lo}_{mode}")
            rows.append((f"match {int(hi):,} / {lo} rules p50 [{mode}]", f"{ratio}x",
                         f"<= {TARGETS['match_ratio']:g}x",
                         verdict(ratio is not None and ratio <= TARGETS["match_ratio"])))
    sink = res.get("sink")
    if sink:
        rows.append(("sink alone (its ceiling)", f"{sink['rps']:.0f}/s", "", ""))
    return rows


def print_table(res: dict[str, Any]) -> None:
    rows = summary_rows(res)
    widths = [max(len(r[i]) for r in [("figure", "measured", "target", "")] + rows)
              for i in range(4)]
    meta = res["meta"]
    print(f"\nHookwise bench — {meta['when']}, {meta['commit']}, {meta['cpus']} CPUs, "
          f"load {meta['load_before']}, db {meta['database']}, redis {meta['redis']}")
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(("figure", "measured", "target", ""), widths,
                                                strict=True)))
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    profiles = {"profile: web during ingest": res.get("profile_ingest"),
                "profile: worker during a 2-worker burst": (res.get("e2e") or {}).get("profile")}
    for title, s in profiles.items():
        if s:
            print()
            print(spy.format_summary(title, s))


DEFAULT_STAGES = ("matching", "sink", "ingest", "e2e", "oneproc")
RECEIVER_STAGES = ("latency", "hanging", "flapping")
ALL_STAGES = DEFAULT_STAGES + RECEIVER_STAGES


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="short runs, one server setting, fewer match samples")
    ap.add_argument("--stages", "--stage", default=",".join(DEFAULT_STAGES),
                    help="comma list of " + ",".join(ALL_STAGES) + "; 'receivers' = "
                         + ",".join(RECEIVER_STAGES) + ", 'all' = every stage (default: "
                         + ",".join(DEFAULT_STAGES) + ")")
    ap.add_argument("--configs", default="granian:2x8,gthread:2x8,gthread:3x4,sync:4",
                    help="server settings to try: class:WORKERSxTHREADS, comma-separated")
    ap.add_argument("--seconds", type=float, default=12,
                    help="load per server and setting, split over --rounds (whole seconds each)")
    ap.add_argument("--e2e-with", choices=("shipped", "best"), default="shipped",
                    help="server setting for the e2e and memory stages: the first of "
                         "--configs (hookwise web's defaults) or the best ingest one")
    ap.add_argument("--warmup", type=float, default=2, help="wrk warm-up before each")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating no-op/hookwise rounds per setting (--seconds in all)")
    ap.add_argument("--python-client", action="store_true",
                    help="use the asyncio client for ingest even when wrk exists")
    ap.add_argument("--events", type=int, default=3000, help="e2e burst size")
    ap.add_argument("--burst-connections", type=int, default=8)
    ap.add_argument("--rate", type=float, default=100, help="paced run events/s")
    ap.add_argument("--paced-seconds", type=float, default=10)
    ap.add_argument("--drain-timeout", type=float, default=300)
    ap.add_argument("--rules", default="10,100,1000,10000", help="matching rule counts")
    ap.add_argument("--match-events", type=int, default=300)
    ap.add_argument("--match-passes", type=int, default=3)
    ap.add_argument("--types", type=int, default=50, help="distinct event types in rules")
    ap.add_argument("--rules-per-account", type=int, default=matching.RULES_PER_ACCOUNT,
                    help="rules per $.body.account value (accounts = rules / this)")
    ap.add_argument("--database-url", default=None,
                    help="PostgreSQL URL whose database name contains 'bench'; it is DROPPED "
                         "and recreated for every stage (default: SQLite in a temp dir)")
    ap.add_argument("--redis-url", default=None,
                    help="redis://host:port/DB — that DB is FLUSHED for every stage "
                         "(default: an embedded redis-server in a temp dir)")
    ap.add_argument("--profile", action="store_true",
                    help="also py-spy an ingest run and a 2-worker burst (extra runs)")
    ap.add_argument("--profile-gil", action="store_true",
                    help="with --profile: sample only the GIL holder (CPU, not waits)")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep each stage's temp data dir (logs in stderr.log)")
    ap.add_argument("--out", default=str(RESULTS / "summary.json"))
    receivers.add_arguments(ap)
    return ap


def apply_quick(args: argparse.Namespace) -> None:
    given = {a.partition("=")[0] for a in sys.argv[1:]}
    args.configs = args.configs if "--configs" in given else "granian:2x8"
    args.seconds = min(args.seconds, 6)
    args.warmup = min(args.warmup, 1)
    args.events = min(args.events, 1000) if "--events" not in given else args.events
    args.paced_seconds = min(args.paced_seconds, 5)
    args.match_events, args.match_passes = 150, 1
    receivers.apply_quick(args, given)


def parse_stages(spec: str) -> set[str]:
    groups = {"all": ALL_STAGES, "receivers": RECEIVER_STAGES}
    stages = {x for s in spec.split(",") if s.strip()
              for x in groups.get(s.strip(), (s.strip(),))}
    unknown = stages - set(ALL_STAGES)
    if unknown:
        raise SystemExit(f"--stages: unknown {', '.join(sorted(unknown))} (known: "
                         f"{', '.join(ALL_STAGES)}, receivers, all)")
    return stages


def run_meta(args: argparse.Namespace) -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    return {
        "when": time.strftime("%Y-%m-%d %H:%M"), "commit": commit or "?",
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_before": round(os.getloadavg()[0], 2),
        "database": "postgresql" if args.database_url else "sqlite",
        "redis": "url" if args.redis_url else "embedded",
        "load_generator": "wrk" if load.have_wrk() and not args.python_client else "python",
        "args": {k: v for k, v in vars(args).items()},
    }


def guarded(res: dict[str, Any], name: str, fn: Any, *fn_args: Any) -> None:
    """res[name] = fn(*fn_args); a failure is logged and kept as res[name + '_error'],
    so the other stages' figures survive."""
    try:
        res[name] = fn(*fn_args)
    except Exception as exc:
        log(f"{name} failed: {type(exc).__name__}: {exc}")
        res[f"{name}_error"] = f"{type(exc).__name__}: {exc}"


def run_stages(args: argparse.Namespace, stages: set[str], res: dict[str, Any]) -> None:
    if "matching" in stages:
        log("matching: " + args.rules + " rules")
        res["matching"] = matching.run([int(x) for x in args.rules.split(",")],
                                       n_events=args.match_events, passes=args.match_passes,
                                       n_types=args.types,
                                       rules_per_account=args.rules_per_account)
    if "sink" in stages:
        log("sink alone")
        res["sink"] = stage_sink(args)
    chosen = parse_configs(args.configs)[0]
    if "ingest" in stages:
        res["ingest"] = stage_ingest(args)
        if args.e2e_with == "best":
            chosen = next(c for c in parse_configs(args.configs)
                          if c["name"] == res["ingest"]["chosen"])
        if args.profile and spy.have_py_spy():
            log(f"profiling ingest ({chosen['name']})")
            res["profile_ingest"] = profile_ingest(args, chosen)
    if "e2e" in stages:
        guarded(res, "e2e", stage_e2e, args, chosen)
    if "oneproc" in stages:
        guarded(res, "oneproc", stage_one_process, args)
    for name, fn in (("latency", receivers.stage_latency), ("hanging", receivers.stage_hanging),
                     ("flapping", receivers.stage_flapping)):
        if name in stages:
            guarded(res, name, fn, args)


def main() -> None:
    args = build_parser().parse_args()
    if args.quick:
        apply_quick(args)
    if args.redis_url and not (urlparse(args.redis_url).path or "/").strip("/"):
        raise SystemExit("--redis-url must name a DB number (it is flushed), e.g. "
                         "redis://127.0.0.1:6379/3")
    stages = parse_stages(args.stages)
    RESULTS.mkdir(exist_ok=True)
    res: dict[str, Any] = {"meta": run_meta(args)}
    run_stages(args, stages, res)
    res["meta"]["load_after"] = round(os.getloadavg()[0], 2)
    res["summary"] = [dict(zip(("figure", "measured", "target", "verdict"), r, strict=True))
                      for r in summary_rows(res)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, default=str))
    print_table(res)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
