"""Real loopback servers for tests: an HTTP sink and an SMTP sink.

    with HttpSink() as sink:
        sink.respond("/hook", Reply(status=500, headers={"Retry-After": "7"}))  # sticky
        sink.queue("/hook", Reply(status=503))      # one-shot, used before the sticky one
        sink.handler = lambda req: Reply(json={"echo": req.path})   # or decide per request
        ... post to sink.url + "/hook" ...
        [req] = sink.wait_for(1)                    # Recorded(method, path, query, headers, body)
        sink.max_in_flight                          # most requests open at once (so far)
        sink.arrived_at[i]                          # time.monotonic() when requests[i] came
        HttpSink(port=p)                            # bind that port (a receiver coming back)
        HttpSink(backlog=1024)                      # more connections at once (default 128)

    with SmtpSink() as smtp:                        # smtp.url is an HOOKWISE_SMTP_URL
        ... send mail to 127.0.0.1:smtp.port ...
        [msg] = smtp.wait_for(1)                    # email.message.EmailMessage
        smtp.envelopes[0].rcpt_tos                  # every envelope recipient (incl. bcc)

Both bind 127.0.0.1 on a free port and run in a daemon thread; ``stop()`` is idempotent.
"""

from __future__ import annotations

import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_UNSET: Any = object()
# a worker opens many connections at once; the standard library's 5 reset some of them
DEFAULT_BACKLOG = 128


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Recorded:
    """One request the HTTP sink received."""

    method: str
    path: str  # without the query string
    query: dict[str, str]  # last value wins; see raw_path for repeats
    raw_path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A scripted HTTP answer. ``json`` wins over ``body``; ``delay`` sleeps first."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = _UNSET
    body: bytes | str = b""
    delay: float = 0.0


class HttpSink:
    """A ThreadingHTTPServer on 127.0.0.1 that records requests and answers as scripted.

    Answer order per request: ``handler(recorded)`` if set and not None, then the next
    queued reply for the path (or for ``"*"``), then the sticky reply for the path (or
    ``"*"``), else ``200 {"ok": true}``.
    """

    def __init__(self, port: int = 0, backlog: int | None = DEFAULT_BACKLOG) -> None:
        self.requests: list[Recorded] = []
        self.arrived_at: list[float] = []  # time.monotonic() of each request, as requests
        self.in_flight = 0  # requests received and not yet answered (or given up on)
        self.max_in_flight = 0
        self._bind_port = port
        # the listen queue; socketserver's 5 resets connections beyond it under load
        self._backlog = backlog
        self.handler: Callable[[Recorded], Reply | None] | None = None
        self._lock = threading.Lock()
        self._queued: dict[str, list[Reply]] = {}
        self._sticky: dict[str, Reply] = {}
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0  # kept after stop(), so a test can still name the closed port

    # -- scripting ---------------------------------------------------------------------
    def respond(self, path: str, reply: Reply) -> None:
        """Answer every request to ``path`` (``"*"``: any path) with ``reply``."""
        with self._lock:
            self._sticky[path] = reply

    def queue(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies``, one each, in order."""
        with self._lock:
            self._queued.setdefault(path, []).extend(replies)

    def _reply_for(self, rec: Recorded) -> Reply:
        if self.handler is not None and (reply := self.handler(rec)) is not None:
            return reply
        with self._lock:
            for key in (rec.path, "*"):
                if self._queued.get(key):
                    return self._queued[key].pop(0)
            for key in (rec.path, "*"):
                if key in self._sticky:
                    return self._sticky[key]
        return Reply(json={"ok": True})

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._port, "HttpSink not started"
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpSink:
        sink = self

        class Handler(_SinkHandler):
            owner = sink

        server_class = ThreadingHTTPServer
        if self._backlog is not None:
            server_class = type("BackloggedHTTPServer", (ThreadingHTTPServer,),
                                {"request_queue_size": self._backlog})
        self._server = server_class(("127.0.0.1", self._bind_port), Handler)
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="HttpSink", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> HttpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Recorded]:
        """The first ``n`` recorded requests, waiting up to ``timeout`` seconds for them."""
        _wait(lambda: len(self.requests) >= n, timeout, f"{n} request(s) at {self.url}")
        with self._lock:
            return list(self.requests[:n])

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)
            self.arrived_at.append(time.monotonic())

    def _opened(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _closed(self) -> None:
        with self._lock:
            self.in_flight -= 1


class _SinkHandler(BaseHTTPRequestHandler):
    owner: HttpSink
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at stop

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return bytes(out)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        rec = Recorded(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            raw_path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        self.owner._opened()
        try:
            self._answer(rec)
        finally:
            self.owner._closed()

    def _answer(self, rec: Recorded) -> None:
        self.owner._record(rec)
        reply = self.owner._reply_for(rec)
        if reply.delay and self.owner._stopping.wait(reply.delay):
            return
        headers = dict(reply.headers)
        if reply.json is not _UNSET:
            payload = json.dumps(reply.json).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
        try:
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


@dataclass(frozen=True)
class Envelope:
    """One message the SMTP sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _SmtpHandler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.sink.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.sink.data_reply:
            return self.sink.data_reply
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.sink._record(Envelope(envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every accepted message.

    ``rcpt_replies`` maps a lower-case recipient to an SMTP reply that refuses it (e.g.
    ``"550 no such user"``); ``data_reply`` refuses every message (e.g. ``"451 later"``).
    """

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply: str | None = None
        self._lock = threading.Lock()
        self._controller: Any = None
        self.port = 0

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [e.message for e in self.envelopes]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        self.port = free_port()  # Controller cannot bind port 0 (it self-connects to check)
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[EmailMessage]:
        """The first ``n`` accepted messages, waiting up to ``timeout`` seconds."""
        _wait(lambda: len(self.envelopes) >= n, timeout, f"{n} message(s) at {self.url}")
        return self.messages[:n]

    def _record(self, envelope: Envelope) -> None:
        with self._lock:
            self.envelopes.append(envelope)
