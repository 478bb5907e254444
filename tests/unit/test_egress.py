"""The egress guard: address classification, the allow list, and the guarded client."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from engine.outbound.egress import EgressRefused, check_host, is_forbidden, refusal_reason
from engine.outbound.http import USER_AGENT, build_http_client
from engine.settings import Settings
from tests.servers import HttpSink, free_port


def make_settings(tmp_path: Path, allow: str = "") -> Settings:
    return Settings.from_env(
        {
            "HOOKWISE_DATA_DIR": str(tmp_path),
            "HOOKWISE_SECRET_KEY": "x",
            "HOOKWISE_EGRESS_ALLOW": allow,
        }
    )


FORBIDDEN = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("::ffff:7f00:1", "loopback"),  # IPv4-mapped 127.0.0.1
    ("::ffff:10.0.0.1", "private"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.2.1", "private"),  # TEST-NET-1
    ("fd00::1", "unique-local"),
    ("fc00::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
    ("2002:a00:1::1", "private"),  # 6to4 around 10.0.0.1
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 around 127.0.0.1
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
    ("[::1]", "loopback"),
]

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.32.0.1",  # just above 172.16/12
    "2606:2800:220:1:248:1893:25c8:1946",
    "2001:4860:4860::8888",
    "::ffff:93.184.216.34",  # IPv4-mapped public
    "2002:5db8:d822::1",  # 6to4 around 93.184.216.34
]


@pytest.mark.parametrize(("ip", "reason"), FORBIDDEN)
def test_forbidden_addresses(ip: str, reason: str) -> None:
    found = is_forbidden(ip)
    assert found is not None and reason in found, (ip, found)


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_pass(ip: str) -> None:
    assert is_forbidden(ip) is None


def test_not_an_address_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        is_forbidden("example.com")


def test_allow_list_by_network_host_and_suffix(tmp_path: Path) -> None:
    s = make_settings(tmp_path, "127.0.0.0/8, 10.1.0.0/16, internal.svc, *.corp.example")
    assert refusal_reason("x", "127.0.0.2", s) is None
    assert refusal_reason("x", "::ffff:127.0.0.1", s) is None  # embedded v4 in the allowed net
    assert refusal_reason("x", "10.1.2.3", s) is None
    assert "private" in (refusal_reason("x", "10.2.0.1", s) or "")
    assert refusal_reason("internal.svc", "10.9.9.9", s) is None
    assert refusal_reason("INTERNAL.SVC.", "10.9.9.9", s) is None
    assert refusal_reason("db.corp.example", "192.168.0.5", s) is None
    assert refusal_reason("corp.example.evil", "192.168.0.5", s) is not None
    assert "loopback" in (refusal_reason("x", "::1", s) or "")  # v6 loopback not in 127/8


def test_check_host_resolves_names(tmp_path: Path) -> None:
    with pytest.raises(EgressRefused) as info:
        check_host("localhost", 80, make_settings(tmp_path))
    assert info.value.host == "localhost"
    assert "loopback" in info.value.reason
    assert "127.0.0.1" in check_host("localhost", 80, make_settings(tmp_path, "127.0.0.0/8, ::1"))


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
    from tests.servers import Reply

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
