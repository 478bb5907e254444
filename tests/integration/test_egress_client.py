"""The guarded HTTP client: SSRF targets refused before connecting, allowed loopback
reached (a real sink on loopback), no redirects followed, the connect-time check on the
address it dials. (Address classification and the allow list: tests/unit/test_egress.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from engine.outbound.egress import EgressRefused
from engine.outbound.http import USER_AGENT, build_http_client
from tests.servers import HttpSink, Reply, free_port
from tests.unit.test_egress import make_settings

SSRF_URLS = [
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("[::ffff:7f00:1]", "::ffff:127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("169.254.169.254", "169.254.169.254"),
    ("100.64.0.1", "100.64.0.1"),
    ("10.0.0.1", "10.0.0.1"),
    ("192.168.1.1", "192.168.1.1"),
    ("[fd00::1]", "fd00::1"),
    ("localhost", None),  # ::1 or 127.0.0.1, whichever the resolver lists first
]


@pytest.mark.parametrize(("host", "resolved"), SSRF_URLS)
def test_client_refuses_ssrf_targets(tmp_path: Path, host: str, resolved: str | None) -> None:
    with build_http_client(make_settings(tmp_path)) as client:
        with pytest.raises(EgressRefused) as info:
            client.get(f"http://{host}:{free_port()}/latest/meta-data/")
    message = str(info.value)
    assert message.startswith("egress refused: ")
    assert "allow it with HOOKWISE_EGRESS_ALLOW" in message
    if resolved is not None:
        assert f"resolves to {resolved}," in message
    assert isinstance(info.value, httpx.ConnectError)


def test_client_reaches_allowed_loopback(tmp_path: Path) -> None:
    with HttpSink() as sink, build_http_client(make_settings(tmp_path, "127.0.0.0/8")) as client:
        response = client.get(f"http://0x7f000001:{sink.port}/ping")
        assert response.status_code == 200
        [req] = sink.wait_for(1)
    assert req.path == "/ping"
    assert req.headers["user-agent"] == USER_AGENT


def test_client_does_not_follow_redirects(tmp_path: Path) -> None:
    with HttpSink() as sink, build_http_client(make_settings(tmp_path, "127.0.0.0/8")) as client:
        sink.respond("/r", Reply(status=302, headers={"Location": "http://169.254.169.254/"}))
        response = client.get(f"{sink.url}/r")
    assert response.status_code == 302


def test_connect_time_check_uses_the_resolved_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A public-looking name that resolves to loopback *now* is refused (DNS rebinding),
    and when allowed the client dials the address it checked, not a fresh lookup."""
    real = socket.getaddrinfo

    def fake_getaddrinfo(host: str, *args: object, **kwargs: object) -> list:
        if host == "rebind.example":
            return real("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with HttpSink() as sink:
        with build_http_client(make_settings(tmp_path)) as client:
            with pytest.raises(EgressRefused, match="rebind.example resolves to 127.0.0.1"):
                client.get(f"http://rebind.example:{sink.port}/")
        allowed = make_settings(tmp_path, "127.0.0.0/8")
        with build_http_client(allowed) as client:
            assert client.get(f"http://rebind.example:{sink.port}/x").status_code == 200
        [req] = sink.wait_for(1)
    assert req.headers["host"] == f"rebind.example:{sink.port}"


def test_unresolvable_name_is_a_connect_error(tmp_path: Path) -> None:
    with build_http_client(make_settings(tmp_path)) as client:
        with pytest.raises(httpx.ConnectError) as info:
            client.get("http://no-such-host.invalid/")
    assert not isinstance(info.value, EgressRefused)
