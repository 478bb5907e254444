"""Memory of process trees, from /proc: RSS, PSS and peaks.

``tree_memory(pid)`` is a snapshot of a process and everything below it. ``TreeSampler``
watches a tree while a stage runs (``hookwise serve``'s children run in sessions of their
own, so the tree is walked through /proc/<pid>/task/*/children, not by process group):
each process's peak RSS (the kernel's VmHWM, so no sample misses it) and the peak of the
tree's summed RSS (sampled every ``interval`` s). Processes are grouped by what they run
(``role``): the supervisor, the web (its server process and the workers it forks), each
RQ worker, the embedded redis-server.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            out.extend(int(x) for x in text)
    except OSError:
        pass
    return out


def descendants(pid: int, limit: int = 1000) -> list[int]:
    """Every process below ``pid`` (children first), at most ``limit``."""
    out: list[int] = []
    todo = children(pid)
    while todo and len(out) < limit:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children(p))
    return out


def tree_memory(pid: int) -> dict[str, Any]:
    """VmRSS (and PSS, which does not count shared pages twice) of pid + every process
    below it, MB."""
    pids = [pid, *descendants(pid)]
    each = [{"pid": p, "rss_mb": round(_status_kb(p, "VmRSS") / 1024, 1),
             "pss_mb": round(_pss_kb(p) / 1024, 1)} for p in pids]
    return {"rss_mb": round(sum(e["rss_mb"] for e in each), 1),
            "pss_mb": round(sum(e["pss_mb"] for e in each), 1),
            "processes": len(pids), "each": each}


def role(pid: int) -> str:
    """What a process runs, from its command line: redis, web, worker or other."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "other"
    words = [a.decode(errors="replace") for a in argv if a]
    if words and "redis-server" in words[0]:
        return "redis"
    for name in ("worker", "web"):  # `-m cli worker [--web …]`, `-m cli web …`
        if "cli" in words and name in words[words.index("cli") + 1:words.index("cli") + 2]:
            return name
    return "other"


class TreeSampler:
    """Peak RSS of each process under ``root`` and of the whole tree, while it runs."""

    def __init__(self, root: int, interval: float = 0.5):
        self.root = root
        self.interval = interval
        self.peak_kb: dict[int, int] = {}  # pid -> VmHWM
        self.roles: dict[int, str] = {}
        self.tree_peak_kb = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _roles_below(self) -> dict[int, str]:
        """Each direct child's role, inherited by the processes it forked."""
        out: dict[int, str] = {}
        for child in children(self.root):
            r = role(child)
            out[child] = r
            out.update({p: r for p in descendants(child)})
        return out

    def sample(self) -> None:
        roles = {self.root: "supervisor", **self._roles_below()}
        total = 0
        for pid, r in roles.items():
            rss = _status_kb(pid, "VmRSS")
            if not rss:
                continue
            total += rss
            self.roles[pid] = r
            self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), _status_kb(pid, "VmHWM"), rss)
        self.tree_peak_kb = max(self.tree_peak_kb, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, Any]:
        """Stop sampling (one last sample first); the peaks in MB."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()
        by_role: dict[str, list[float]] = {}
        for pid, kb in sorted(self.peak_kb.items()):
            by_role.setdefault(self.roles[pid], []).append(round(kb / 1024, 1))
        return {"tree_peak_mb": round(self.tree_peak_kb / 1024, 1),
                "sum_of_peaks_mb": round(sum(self.peak_kb.values()) / 1024, 1),
                "workers_peak_mb": by_role.get("worker", []),
                "web_peak_mb": by_role.get("web", []),
                "redis_peak_mb": by_role.get("redis", []),
                "supervisor_peak_mb": by_role.get("supervisor", []),
                "other_peak_mb": by_role.get("other", []),
                "processes": len(self.peak_kb), "samples": self.samples}
