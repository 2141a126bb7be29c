"""Where a webhook may connect: the network policy of ``channels.webhook`` (SSRF guard).

Webhook URLs come from API callers, so the address the agent connects to is checked, not the
name in the URL: a resolver (``PolicyResolver``) checks every address a host name resolves to,
at each connect (DNS rebinding cannot pass a check made earlier), and the channel checks IP
literals itself (aiohttp connects to those without asking the resolver).

The rules, in order, for one address and port::

    always refused   0.0.0.0/8, ::            (unspecified: Linux connects them to this host)
                     169.254.0.0/16, fe80::/10 (link-local: cloud metadata lives there)
                     fd00:ec2::254, 100.100.100.200 (AWS IPv6 and Alibaba metadata)
                     multicast, 240.0.0.0/4, 255.255.255.255 (not a unicast host)
                     the agent's own listen address (host:port of its API)
    denied_networks  refused; wins over everything below
    loopback         127.0.0.0/8, ::1: refused unless allow_loopback
    allowed_networks when set, an allow-list: only addresses inside it (loopback aside, which
                     allow_loopback governs); when empty, every other address, private ranges
                     (RFC 1918, ULA) included

An IPv6 address with an IPv4 one inside (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4,
IPv4-compatible) is checked in both forms: refused when either is.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from agent.channels.base import ErrorScope, PermanentDeliveryError
from agent.channels.http import RefusedConnection
from agent.domain import FailureReason

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The only words a caller reads about a refused destination (stored details, attempts).
REFUSED_DETAIL = "destination refused by network policy"


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# (IP version, first, last) as integers: ``ip in network`` costs ~1 us a network, and every
# webhook delivery checks a dozen.
Range = tuple[int, int, int]
Form = tuple[int, int]  # (IP version, address as an integer)


def _ranges(nets: Iterable[IPNetwork]) -> tuple[Range, ...]:
    return tuple((n.version, int(n.network_address), int(n.broadcast_address)) for n in nets)


def _hit(forms: Sequence[Form], ranges: Sequence[Range]) -> bool:
    return any(v == rv and lo <= x <= hi for v, x in forms for rv, lo, hi in ranges)


UNSPECIFIED = _nets("0.0.0.0/8", "::/128")
LINK_LOCAL = _nets("169.254.0.0/16", "fe80::/10")
METADATA = _nets("fd00:ec2::254/128", "100.100.100.200/32")
NOT_UNICAST = _nets("224.0.0.0/4", "240.0.0.0/4", "ff00::/8")  # 240/4 holds the broadcast
LOOPBACK = _nets("127.0.0.0/8", "::1/128")
_ALWAYS = (("unspecified", UNSPECIFIED), ("link_local", LINK_LOCAL), ("metadata", METADATA),
           ("not_unicast", NOT_UNICAST))
_ALWAYS_RANGES = tuple((rule, _ranges(nets)) for rule, nets in _ALWAYS)
_LOOPBACK_RANGES = _ranges(LOOPBACK)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_KNOWN_MAX = 4096


def parse_networks(values: Iterable[str]) -> list[str]:
    """Each value as a canonical CIDR string; ValueError naming the value when one is not a
    network (a host part set, as in ``10.0.0.1/8``, is an error, not a guess)."""
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.ip_network(value.strip(), strict=True)))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a network in CIDR notation ({exc})") from None
    return out


def _inside(net: IPNetwork, ranges: Sequence[IPNetwork]) -> bool:
    return any(net.version == r.version and net.subnet_of(r) for r in ranges)  # type: ignore[arg-type]


def network_problem(cidr: str, allow_loopback: bool) -> str | None:
    """Why an ``allowed_networks`` entry cannot do what it says, or None: a network the rules
    above refuse anyway (always, or loopback while ``allow_loopback`` is false) would allow
    nothing, which an operator would find out only when deliveries fail."""
    net = ipaddress.ip_network(cidr)
    if any(_inside(net, ranges) for _, ranges in _ALWAYS):
        return f"{cidr} is always refused (link-local, metadata, unspecified or not unicast)"
    if _inside(net, LOOPBACK) and not allow_loopback:
        return f"{cidr} is loopback: set channels.webhook.allow_loopback: true to reach it"
    return None


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and may reach (mapped, NAT64, 6to4, compatible)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or 1 < int(ip) < 2**32:  # NAT64, or IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def parse_ipv4_number(host: str) -> ipaddress.IPv4Address | None:
    """The address of a numeric IPv4 host in any form ``inet_aton`` takes (``2130706433``,
    ``0177.0.0.1``, ``0x7f.1``, ``127.1``), or None when ``host`` is not one."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:], 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part[1:], 8))
            else:
                values.append(int(part, 10) if part.isascii() and part.isdigit() else -1)
        except ValueError:
            return None
        if values[-1] < 0:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


_NUMERIC = frozenset("0123456789abcdefxABCDEFX.")


def host_address(host: str) -> tuple[IPAddress | None, bool]:
    """The IP address a URL host writes, and whether it is written canonically. (None, True)
    for a host name."""
    name = host[:-1] if host.endswith(".") else host
    if ":" not in name and not _NUMERIC.issuperset(name):
        return None, True  # a name: the common case, without two failed parses
    try:
        return ipaddress.ip_address(name), name == host
    except ValueError:
        pass
    v4 = parse_ipv4_number(name)
    return (v4, False) if v4 is not None else (None, True)


def is_localhost_name(host: str) -> bool:
    """``localhost`` and its subdomains: loopback without asking DNS (RFC 6761 section 6.3)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


@dataclass(frozen=True, slots=True)
class OwnAddress:
    """Where the agent's API listens: ``ip`` None for every address of the host (``0.0.0.0``,
    ``::`` or a host name)."""

    ip: IPAddress | None
    port: int

    @classmethod
    def of(cls, host: str, port: int) -> OwnAddress:
        ip, _ = host_address(host.strip("[]"))
        if ip is not None and ip in UNSPECIFIED[0 if ip.version == 4 else 1]:
            ip = None
        return cls(ip, port)

    def reached_by(self, ip: IPAddress, port: int) -> bool:
        """Whether a connection to ``ip:port`` ends at the agent's own listener."""
        if port != self.port:
            return False
        if self.ip is not None:
            return ip == self.ip or any(ip in r for r in UNSPECIFIED)
        return _is_local(ip)


def _is_local(ip: IPAddress) -> bool:
    """Whether ``ip`` is an address of this host: only those can be bound to."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """The rules above, for one agent."""

    allow_loopback: bool = False
    allowed: tuple[Range, ...] = ()
    denied: tuple[Range, ...] = ()
    own: OwnAddress | None = None
    # host_refusal by (host, port): every delivery asks, mostly for a few receivers.
    _known: dict[tuple[str, int], str | None] = field(default_factory=dict, compare=False,
                                                      repr=False)

    @classmethod
    def from_settings(cls, allow_loopback: bool, allowed: Iterable[str], denied: Iterable[str],
                      listen: tuple[str, int] | None) -> NetworkPolicy:
        return cls(allow_loopback, _ranges(ipaddress.ip_network(c) for c in allowed),
                   _ranges(ipaddress.ip_network(c) for c in denied),
                   None if listen is None else OwnAddress.of(*listen))

    def refusal(self, ip: IPAddress, port: int) -> str | None:
        """The rule that refuses ``ip:port`` (``link_local``, ``loopback``, ``denied`` ...), or
        None when a webhook may connect there."""
        addrs: list[IPAddress] = [ip]
        inner = embedded_ipv4(ip)
        if inner is not None:
            addrs.append(inner)
        forms = [(a.version, int(a)) for a in addrs]
        for rule, ranges in _ALWAYS_RANGES:
            if _hit(forms, ranges):
                return rule
        if self.own is not None and any(self.own.reached_by(a, port) for a in addrs):
            return "own_address"
        if _hit(forms, self.denied):
            return "denied"
        if _hit(forms, _LOOPBACK_RANGES):
            return None if self.allow_loopback else "loopback"
        if self.allowed and not _hit(forms, self.allowed):
            return "not_allowed"
        return None

    def host_refusal(self, host: str, port: int) -> str | None:
        """The rule refusing a URL host known without DNS (an IP literal in any form, a
        ``localhost`` name), ``not_dotted_decimal`` for an allowed IPv4 address written in
        another form (``3405803781``: software reads those differently), or None (a host
        name: its addresses are checked at connect)."""
        key = (host, port)
        if key in self._known:
            return self._known[key]
        if len(self._known) >= _KNOWN_MAX:
            self._known.clear()
        rule = self._known[key] = self._host_refusal(host, port)
        return rule

    def _host_refusal(self, host: str, port: int) -> str | None:
        ip, canonical = host_address(host)
        if ip is None:
            if not is_localhost_name(host):
                return None
            return self.refusal(ipaddress.IPv4Address("127.0.0.1"), port) \
                or self.refusal(ipaddress.IPv6Address("::1"), port)
        return self.refusal(ip, port) or (None if canonical else "not_dotted_decimal")


class DestinationRefused(RefusedConnection):
    """The policy refused every address of a destination; ``rule`` says which rule (logs)."""

    def __init__(self, rule: str) -> None:
        super().__init__(PermanentDeliveryError(FailureReason.INVALID_RECIPIENT, REFUSED_DETAIL,
                                                scope=ErrorScope.RECIPIENT))
        self.rule = rule


class PolicyResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses a host name when any of its addresses is refused
    (not only the refused ones: a name answering a public and an internal address is a probe,
    not a receiver). Each connect resolves (or takes the connector's cache of answers that
    passed): the address checked is the address connected to."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner  # the default one needs a running loop: made on first use

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            rule = self._policy.refusal(_answer_ip(answer), answer["port"] or port)
            if rule is not None:
                raise DestinationRefused(rule)
        return answers

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _answer_ip(answer: ResolveResult | dict[str, Any]) -> IPAddress:
    return ipaddress.ip_address(str(answer["host"]))
