"""Egress guard: outgoing steps may not reach private, loopback or metadata addresses.

The check runs at connect time on every address a host name resolves to, inside the
HTTP client's network backend (``GuardedBackend``), so a name that resolved to a public
address when a rule was saved but resolves to ``127.0.0.1`` now (DNS rebinding) is still
refused. Numeric spellings (``0x7f000001``, ``2130706433``, ``[::ffff:7f00:1]``) are
normalised by ``getaddrinfo`` before the check, and addresses embedding an IPv4 address
(IPv4-mapped, NAT64, 6to4, Teredo) are judged by the embedded address too.

``HOOKWISE_EGRESS_ALLOW`` exempts networks (``settings.egress_allow_networks``) and host
names (``settings.egress_allow_hosts``; ``*.example.com`` or ``.example.com`` match
sub-domains).

    is_forbidden(ip)                      -> reason or None (pure, ignores the allow list)
    refusal_reason(host, ip, settings)    -> reason or None (honours the allow list)
    check_host(host, port, settings)      -> resolved, checked addresses or EgressRefused
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from collections.abc import Iterable

import httpcore
import httpx

from rules.errors import HookwiseError

if typing.TYPE_CHECKING:
    from engine.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_HINT = "allow it with HOOKWISE_EGRESS_ALLOW"
METADATA_ADDRESSES = frozenset({"169.254.169.254", "fd00:ec2::254"})
CGNAT = ipaddress.ip_network("100.64.0.0/10")
THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressRefused(HookwiseError, httpx.ConnectError):
    """A request was refused because its host resolves to a forbidden address.

    It is an ``httpx.ConnectError`` (so code catching httpx errors sees it) and a
    ``HookwiseError``; ``host``, ``address`` and ``reason`` say what was refused.
    """

    def __init__(self, host: str, address: str, reason: str):
        self.host = host
        self.address = address
        self.reason = reason
        super().__init__(f"egress refused: {host} resolves to {address}, {reason}; {ALLOW_HINT}")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 address, if it carries one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # (server, client): the client is the reachable end
    return None


def _reason_v4(ip: ipaddress.IPv4Address) -> str | None:
    if str(ip) in METADATA_ADDRESSES:
        return "the cloud metadata address"
    if ip in THIS_NETWORK:
        return "an unspecified (0.0.0.0/8) address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip in CGNAT:
        return "a carrier-grade NAT (100.64.0.0/10) address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _reason_v6(ip: ipaddress.IPv6Address) -> str | None:
    embedded = _embedded_v4(ip)
    if embedded is not None:
        inner = _reason_v4(embedded)
        return f"{inner} (embedded in IPv6)" if inner else None
    if str(ip) in METADATA_ADDRESSES:
        return "the cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if ip.is_site_local:
        return "a site-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a non-public address"
    return None


def _parse(ip: str | IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return ip
    text = ip.strip().strip("[]").split("%", 1)[0]  # brackets and IPv6 zone ids
    return ipaddress.ip_address(text)


def is_forbidden(ip: str | IPAddress) -> str | None:
    """Why ``ip`` may not be reached (e.g. ``"a loopback address"``), or None if public.

    Pure classification: the allow list is not consulted (see ``refusal_reason``).
    Raises ``ValueError`` if ``ip`` is not an IP address literal.
    """
    addr = _parse(ip)
    if isinstance(addr, ipaddress.IPv4Address):
        return _reason_v4(addr)
    return _reason_v6(addr)


def host_allowed(host: str, settings: Settings) -> bool:
    """True if ``host`` is listed in HOOKWISE_EGRESS_ALLOW (exactly or by ``*.suffix``)."""
    name = host.lower().rstrip(".")
    for allowed in settings.egress_allow_hosts:
        allowed = allowed.lower().rstrip(".")
        if allowed.startswith("*."):
            allowed = allowed[1:]
        if name == allowed or (allowed.startswith(".") and name.endswith(allowed)):
            return True
    return False


def address_allowed(ip: str | IPAddress, settings: Settings) -> bool:
    """True if ``ip`` (or the IPv4 address it embeds) is inside an allowed network."""
    addr = _parse(ip)
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and (inner := _embedded_v4(addr)) is not None:
        candidates.append(inner)
    return any(
        c.version == net.version and c in net
        for c in candidates
        for net in settings.egress_allow_networks
    )


def refusal_reason(host: str, ip: str | IPAddress, settings: Settings) -> str | None:
    """Why connecting to ``ip`` (resolved from ``host``) is refused, honouring the allow list."""
    reason = is_forbidden(ip)
    if reason is None or host_allowed(host, settings) or address_allowed(ip, settings):
        return None
    return reason


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in resolver order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(seen)


def check_host(host: str, port: int, settings: Settings) -> list[str]:
    """Resolve ``host`` and return its addresses; raise ``EgressRefused`` if any is forbidden.

    One forbidden address refuses the whole host: a name mixing public and private
    records is either misconfigured or an attack. Resolver failures raise ``OSError``.
    """
    addresses = resolve(host, port)
    for address in addresses:
        reason = refusal_reason(host, address, settings)
        if reason is not None:
            raise EgressRefused(host, address, reason)
    return addresses


class GuardedBackend(httpcore.SyncBackend):
    """An httpcore network backend that checks resolved addresses before connecting.

    It connects to the checked IP itself (never re-resolving the name), so the address
    that was checked is the address that is used. TLS still verifies the original host
    name: httpcore passes it as ``server_hostname`` when it starts TLS.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = check_host(host, port, self.settings)
        except OSError as exc:  # name resolution failed
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:  # try the next address; timeouts end it
                last = exc
        assert last is not None
        raise last
