"""Where this instance listens: ``hookwise serve`` records it in the data dir, so other
commands (``send``, ``events``, ``replay``) and the workers find it.

    write_record(data_dir, host, port)  -> the record file (``serve.json``)
    read_record(data_dir)               -> {"url", "host", "port", "pid", ...} or None
    base_url(data_dir)                  -> "http://127.0.0.1:8000" or None
    is_own_inspector(url, data_dir)     -> True for exactly this instance's /inspect/<name>

The record names the serving process; a record whose process is gone is ignored (a
``serve`` killed with SIGKILL leaves one behind).
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx

RECORD_FILE = "serve.json"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
UNSPECIFIED = frozenset({"0.0.0.0", "::", ""})
INSPECT_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
INSPECT_PATH = re.compile(rf"^/inspect/{INSPECT_NAME}$")


def record_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / RECORD_FILE


def url_for(host: str, port: int) -> str:
    """The URL a client on this machine reaches ``host:port`` at (0.0.0.0 → 127.0.0.1)."""
    if host in UNSPECIFIED:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def write_record(data_dir: str | Path, host: str, port: int, *,
                 pid: int | None = None) -> Path:
    path = record_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"url": url_for(host, port), "host": host, "port": port,
           "pid": pid or os.getpid(), "started_at": datetime.now(UTC).isoformat()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc) + "\n")
    tmp.replace(path)
    return path


def clear_record(data_dir: str | Path, *, pid: int | None = None) -> None:
    """Remove the record (only this process's, when ``pid`` is given)."""
    path = record_path(data_dir)
    try:
        if pid is not None and json.loads(path.read_text()).get("pid") != pid:
            return
        path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_record(data_dir: str | Path) -> dict[str, Any] | None:
    """The running ``serve``'s record, or None (none, unreadable, or its process gone)."""
    try:
        doc = json.loads(record_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("url"), str):
        return None
    return doc if _alive(doc.get("pid")) else None


def base_url(data_dir: str | Path) -> str | None:
    doc = read_record(data_dir)
    return doc["url"] if doc else None


def is_own_inspector(url: str | httpx.URL, data_dir: str | Path) -> bool:
    """True when ``url`` is exactly ``<this instance>/inspect/<name>`` (any query): the
    one private address outgoing steps may reach without HOOKWISE_EGRESS_ALLOW. The
    path must match as written — no dots, no percent-escapes, nothing after the name."""
    parts = urlsplit(str(url))
    if parts.scheme != "http" or parts.username or parts.password:
        return False
    if not INSPECT_PATH.match(parts.path):
        return False
    doc = read_record(data_dir)
    if doc is None:
        return False
    try:
        port = parts.port or 80
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    own = str(doc.get("host", "")).lower()
    if port != doc.get("port"):
        return False
    if own in UNSPECIFIED or own in LOOPBACK_NAMES:
        return host in LOOPBACK_NAMES
    return host == own


_client: httpx.Client | None = None  # (httpx is imported late: 'serve' stays lean)
_lock = threading.Lock()


def inspector_client() -> httpx.Client:
    """A plain client for this instance's own inspector (only ever sent requests that
    ``is_own_inspector`` accepted; never follows redirects)."""
    import httpx

    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = httpx.Client(follow_redirects=False, trust_env=False)
    return _client
