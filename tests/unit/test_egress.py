"""The egress guard: address classification, the allow list and name checks. (The guarded
HTTP client against loopback servers: tests/integration/test_egress_client.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.outbound.egress import EgressRefused, check_host, is_forbidden, refusal_reason
from engine.settings import Settings


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
