"""py-spy helpers: record a process (and its children) for a while, and summarise the
collapsed stacks into where the samples went.

``summarise(path)`` answers, for a ``py-spy record --format raw`` file:
- ``by_package``: share of samples by the package of the leaf-most frame (sqlalchemy,
  redis, rq, httpcore, flask, werkzeug, json, gunicorn, Hookwise's engine/rules/web, ...),
  i.e. whose code was on CPU;
- ``top_self``: functions most often on top of the stack;
- ``top_hookwise``: Hookwise functions by inclusive share (on the stack at all), i.e.
  which of our calls the time is spent under.

Run on its own: ``python bench/pyspy.py bench/results/profile-worker.txt``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
PROJECT = ("engine", "rules", "web", "bench")


def have_py_spy() -> bool:
    return shutil.which("py-spy") is not None


def record(pid: int, out: Path, seconds: float, *, subprocesses: bool = False,
           rate: int = 200, gil: bool = False) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` in the background; wait on the returned process.
    ``gil``: sample only the thread holding the GIL (Python CPU time, no waiting)."""
    cmd = ["py-spy", "record", "--format", "raw", "-o", str(out), "-r", str(rate),
           "-d", str(max(1, int(seconds))), "-p", str(pid), "--nonblocking"]
    if gil:
        cmd.append("--gil")
    if subprocesses:
        cmd.append("--subprocesses")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rel(file: str) -> tuple[str, ...]:
    """py-spy prints paths relative to their sys.path entry (``sqlalchemy/orm/session.py``,
    ``engine/ingress/ingest.py``, ``socket.py``); cut a full path the same way."""
    parts = Path(file).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return parts[parts.index(marker) + 1:]
    if parts and parts[0] == "/":
        for i, p in enumerate(parts):
            if re.fullmatch(r"python3\.\d+", p):
                return parts[i + 1:]
        for p in PROJECT:
            if p in parts:
                return parts[parts.index(p):]
    return parts


def _package(file: str) -> str:
    parts = _rel(file)
    if not parts:
        return "?"
    head = parts[0].removesuffix(".py")
    return head if len(parts) > 1 or head in PROJECT else f"{head} (stdlib)"


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for raw in stack.split(";"):
        m = FRAME.match(raw.strip())
        if m:
            out.append((m["func"], m["file"]))
        else:
            out.append((raw.strip(), ""))
    return out


def summarise(path: Path, top: int = 12) -> dict[str, Any]:
    by_package: Counter[str] = Counter()
    top_self: Counter[str] = Counter()
    top_ours: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in _frames(stack) if not f[0].startswith("process ")]
        # py-spy --subprocesses prefixes a "process NNN" frame; thread frames too
        frames = [f for f in frames if f[1]]
        if not frames:
            continue
        total += n
        func, file = frames[-1]
        by_package[_package(file)] += n
        top_self[f"{func} ({_short(file)})"] += n
        seen = set()
        for func, file in frames:
            if len(_rel(file)) > 1 and _rel(file)[0] in PROJECT[:3]:
                key = f"{func} ({_short(file)})"
                if key not in seen:
                    seen.add(key)
                    top_ours[key] += n
    def share(c: Counter[str]) -> list[list[Any]]:
        return [[k, round(100 * v / total, 1)] for k, v in c.most_common(top)] if total else []
    return {"samples": total, "by_package": share(by_package), "top_self": share(top_self),
            "top_hookwise": share(top_ours)}


def _short(file: str) -> str:
    return "/".join(_rel(file))


def format_summary(title: str, s: dict[str, Any]) -> str:
    lines = [f"{title}: {s['samples']} samples"]
    for key, label in (("by_package", "on CPU, by package"),
                       ("top_hookwise", "Hookwise functions, inclusive"),
                       ("top_self", "top of stack")):
        lines.append(f"  {label}:")
        lines.extend(f"    {pct:5.1f}%  {name}" for name, pct in s[key])
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(format_summary(arg, summarise(Path(arg))))
