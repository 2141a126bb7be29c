"""The webhook network policy as a pure function of an address and a port, the URL forms the
API edge refuses without DNS, the CIDR settings, and the resolver that checks every answer."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from agent.channels.base import AddressError, ErrorScope
from agent.channels.netpolicy import (
    REFUSED_DETAIL,
    DestinationRefused,
    NetworkPolicy,
    PolicyResolver,
    embedded_ipv4,
    parse_ipv4_number,
)
from agent.channels.webhook import WebhookChannel, WebhookSettings
from agent.domain import FailureReason
from agent.settings import ConfigError, load_settings

ip = ipaddress.ip_address


def policy(**kw: object) -> NetworkPolicy:
    cfg = WebhookSettings.model_validate(kw.pop("settings", {}))
    listen = kw.pop("listen", None)
    assert not kw
    return cfg.policy(listen)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "want"), [
    ("2130706433", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"), ("169.254.43518", "169.254.169.254"),
    ("0", "0.0.0.0"), ("3405803781", "203.0.113.5"), ("10.0.0.1", "10.0.0.1"),
])
def test_numeric_ipv4_forms_read_as_inet_aton_reads_them(text: str, want: str) -> None:
    assert parse_ipv4_number(text) == ip(want)
    # The C library agrees: these are what a naive client would connect to.
    assert socket.inet_ntoa(socket.inet_aton(text)) == want


@pytest.mark.parametrize("text", ["example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "0x",
                                  "127..1", "4294967296", "1.2.65536", "", "-1", "+1",
                                  "\u0661\u0662\u0667.0.0.1"])
def test_names_and_bad_numbers_are_not_ipv4(text: str) -> None:
    assert parse_ipv4_number(text) is None


@pytest.mark.parametrize(("v6", "v4"), [
    ("::ffff:127.0.0.1", "127.0.0.1"), ("::ffff:169.254.169.254", "169.254.169.254"),
    ("64:ff9b::7f00:1", "127.0.0.1"), ("2002:a9fe:a9fe::1", "169.254.169.254"),
    ("::a9fe:a9fe", "169.254.169.254"),
])
def test_ipv6_forms_carrying_ipv4(v6: str, v4: str) -> None:
    assert embedded_ipv4(ip(v6)) == ip(v4)


@pytest.mark.parametrize("v6", ["::1", "::", "2001:db8::1", "fd00:ec2::254"])
def test_plain_ipv6_carries_no_ipv4(v6: str) -> None:
    assert embedded_ipv4(ip(v6)) is None


DEFAULTS = [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"),
    ("169.254.169.254", "link_local"), ("::ffff:169.254.169.254", "link_local"),
    ("169.254.0.1", "link_local"), ("fe80::1", "link_local"), ("fe80::1%1", "link_local"),
    ("2002:a9fe:a9fe::", "link_local"),
    ("fd00:ec2::254", "metadata"), ("100.100.100.200", "metadata"),
    ("0.0.0.0", "unspecified"), ("0.1.2.3", "unspecified"), ("::", "unspecified"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("224.0.0.1", "not_unicast"), ("255.255.255.255", "not_unicast"),
    ("240.0.0.1", "not_unicast"), ("ff02::1", "not_unicast"),
    # Private ranges are allowed unless denied; public ones too.
    ("10.1.2.3", None), ("172.16.0.1", None), ("192.168.1.1", None), ("fd12:3456::1", None),
    ("100.64.0.1", None), ("203.0.113.5", None), ("2001:db8::1", None),
    ("::ffff:203.0.113.5", None),
]


@pytest.mark.parametrize(("addr", "rule"), DEFAULTS, ids=[a for a, _ in DEFAULTS])
def test_default_policy(addr: str, rule: str | None) -> None:
    assert policy().refusal(ip(addr), 443) == rule


@pytest.mark.parametrize(("addr", "rule"), [
    ("127.0.0.1", None), ("::1", None), ("::ffff:127.0.0.1", None),
    ("169.254.169.254", "link_local"), ("::ffff:169.254.169.254", "link_local"),
    ("fd00:ec2::254", "metadata"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
])
def test_allow_loopback_lifts_only_the_loopback_refusal(addr: str, rule: str | None) -> None:
    assert policy(settings={"allow_loopback": True}).refusal(ip(addr), 80) == rule


def test_denied_networks_win_over_everything() -> None:
    p = policy(settings={"denied_networks": ["10.0.0.0/8", "fd00::/8", "127.0.0.0/8"],
                         "allowed_networks": ["10.1.0.0/16"], "allow_loopback": True})
    assert p.refusal(ip("10.1.2.3"), 80) == "denied"
    assert p.refusal(ip("::ffff:10.1.2.3"), 80) == "denied"
    assert p.refusal(ip("fd12::1"), 80) == "denied"
    assert p.refusal(ip("127.0.0.1"), 80) == "denied"
    assert p.refusal(ip("::1"), 80) is None
    assert p.refusal(ip("192.168.0.1"), 80) == "not_allowed"


def test_allowed_networks_are_an_allow_list() -> None:
    p = policy(settings={"allowed_networks": ["10.1.0.0/16", "2001:db8::/32"]})
    assert p.refusal(ip("10.1.200.3"), 80) is None
    assert p.refusal(ip("::ffff:10.1.200.3"), 80) is None
    assert p.refusal(ip("2001:db8::7"), 80) is None
    assert p.refusal(ip("10.2.0.1"), 80) == "not_allowed"
    assert p.refusal(ip("203.0.113.5"), 80) == "not_allowed"
    assert p.refusal(ip("2001:db9::1"), 80) == "not_allowed"
    # Loopback stays governed by allow_loopback alone.
    assert p.refusal(ip("127.0.0.1"), 80) == "loopback"
    p = policy(settings={"allowed_networks": ["10.1.0.0/16"], "allow_loopback": True})
    assert p.refusal(ip("127.0.0.1"), 80) is None


def test_allowing_everything_still_refuses_the_always_refused() -> None:
    p = policy(settings={"allowed_networks": ["0.0.0.0/0", "::/0"], "allow_loopback": True})
    assert p.refusal(ip("203.0.113.5"), 80) is None
    for addr in ("169.254.169.254", "fe80::1", "fd00:ec2::254", "0.0.0.0", "::ffff:169.254.1.1"):
        assert p.refusal(ip(addr), 80) is not None, addr


def test_the_agents_own_listen_address_is_refused_even_with_loopback_allowed() -> None:
    p = policy(settings={"allow_loopback": True}, listen=("127.0.0.1", 9095))
    assert p.refusal(ip("127.0.0.1"), 9095) == "own_address"
    assert p.refusal(ip("::ffff:127.0.0.1"), 9095) == "own_address"
    assert p.refusal(ip("127.0.0.1"), 9096) is None
    assert p.refusal(ip("127.0.0.2"), 9095) is None  # the listener is bound to 127.0.0.1 only


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "agent.example"])
def test_a_wildcard_listen_address_is_every_local_address(host: str) -> None:
    p = policy(settings={"allow_loopback": True, "allowed_networks": ["0.0.0.0/0", "::/0"]},
               listen=(host, 9095))
    for addr in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert p.refusal(ip(addr), 9095) == "own_address", addr
    # Not an address of this host: bind() says so.
    assert p.refusal(ip("203.0.113.5"), 9095) is None
    assert p.refusal(ip("127.0.0.1"), 80) is None


def _channel(**settings: object) -> WebhookChannel:
    listen = settings.pop("listen", None)
    return WebhookChannel(WebhookSettings.model_validate(settings), b"s",
                          listen=listen)  # type: ignore[arg-type]


REFUSED_URLS = [
    "http://127.0.0.1/", "http://127.0.0.1:8080/x", "http://2130706433/", "http://0177.0.0.1/",
    "http://0x7f.1/", "http://127.1/", "http://127.0.0.1./", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]:80/", "http://0.0.0.0/",
    "http://0/", "http://[::]/", "http://localhost/", "http://LOCALHOST./hook",
    "http://api.localhost:8080/", "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/", "http://[fe80::1%25eth0]/", "http://[fd00:ec2::254]/",
    "https://169.254.43518/", "http://user:pw@127.0.0.1/",
]


@pytest.mark.parametrize("to", REFUSED_URLS)
def test_the_api_edge_refuses_what_it_knows_without_dns(to: str) -> None:
    with pytest.raises(AddressError) as info:
        _channel().validate_address(to)
    assert info.value.code == "invalid_recipient"
    assert info.value.message == "'to' is refused by the webhook network policy (channels.webhook)."


@pytest.mark.parametrize("to", ["http://hooks.example.com/x", "http://10.0.0.5/",
                                "https://[2001:db8::1]/x", "http://203.0.113.5:8080/",
                                "http://[fd12::1]:9000/h", "http://localhost.example.com/"])
def test_the_api_edge_takes_the_rest(to: str) -> None:
    assert _channel().validate_address(to) == to


def test_loopback_urls_pass_the_edge_when_allowed_except_the_agent_itself() -> None:
    ch = _channel(allow_loopback=True, listen=("127.0.0.1", 9095))
    for to in ("http://127.0.0.1:8080/", "http://[::1]:8080/", "http://localhost:8080/"):
        assert ch.validate_address(to) == to
    for to in ("http://127.0.0.1:9095/v1/alerts", "http://localhost:9095/",
               "http://[::ffff:127.0.0.1]:9095/", "http://0.0.0.0:9095/"):
        with pytest.raises(AddressError):
            ch.validate_address(to)


def test_a_numeric_host_must_be_dotted_decimal_even_when_allowed() -> None:
    # 3405803781 is 203.0.113.5: allowed, but other software reads such forms differently.
    with pytest.raises(AddressError, match="dotted-decimal"):
        _channel().validate_address("http://3405803781/")
    with pytest.raises(AddressError, match="dotted-decimal"):
        _channel(allow_loopback=True).validate_address("http://127.1:8080/")


def test_cidr_settings_are_normalised() -> None:
    cfg = WebhookSettings.model_validate({"allowed_networks": [" 10.1.0.0/16", "2001:DB8::/32"],
                                          "denied_networks": ["192.0.2.7"]})
    assert cfg.allowed_networks == ["10.1.0.0/16", "2001:db8::/32"]
    assert cfg.denied_networks == ["192.0.2.7/32"]


@pytest.mark.parametrize(("setting", "value", "says"), [
    ("denied_networks", "10.0.0.0/33", "'10.0.0.0/33' is not a network in CIDR notation"),
    ("denied_networks", "10.0.0.1/8", "has host bits set"),
    ("allowed_networks", "example.com", "'example.com' is not a network"),
    ("allowed_networks", "169.254.0.0/16", "169.254.0.0/16 is always refused"),
    ("allowed_networks", "fd00:ec2::254/128", "is always refused"),
    ("allowed_networks", "127.0.0.0/8", "set channels.webhook.allow_loopback: true"),
])
def test_a_bad_cidr_is_a_config_error_naming_the_setting(tmp_path: Path, setting: str,
                                                         value: str, says: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(f"channels:\n  webhook:\n    {setting}: ['{value}']\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert str(path) in text and says in text
    assert f"channels.webhook.{setting}" in text


def test_a_loopback_allow_is_fine_with_allow_loopback() -> None:
    cfg = WebhookSettings.model_validate({"allowed_networks": ["127.0.0.0/8"],
                                          "allow_loopback": True})
    assert cfg.allowed_networks == ["127.0.0.0/8"]


class Answers(AbstractResolver):
    """Answers each resolve with the next list of addresses (the last one repeats)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        addrs = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [ResolveResult(hostname=host, host=a, port=port,
                              family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                              proto=0, flags=0) for a in addrs]

    async def close(self) -> None:
        return None


async def test_the_resolver_refuses_a_name_with_any_refused_answer() -> None:
    r = PolicyResolver(policy(), Answers(["203.0.113.5", "2001:db8::5"]))
    assert [a["host"] for a in await r.resolve("hooks.example", 443)] == ["203.0.113.5",
                                                                         "2001:db8::5"]
    for answer in (["127.0.0.1"], ["203.0.113.5", "169.254.169.254"], ["::ffff:127.0.0.1"],
                   ["fe80::1%2"]):
        with pytest.raises(DestinationRefused) as info:
            await PolicyResolver(policy(), Answers(answer)).resolve("hooks.example", 443)
        err = info.value.error
        assert (err.reason, err.details, err.scope) == (
            FailureReason.INVALID_RECIPIENT, REFUSED_DETAIL, ErrorScope.RECIPIENT)
        assert "127" not in str(info.value) and "169" not in str(info.value)


async def test_the_resolver_checks_each_answer_not_the_first() -> None:
    # DNS rebinding: a check made earlier saw a public address; the connect's own
    # resolution answers loopback and is refused.
    r = PolicyResolver(policy(), Answers(["203.0.113.5"], ["127.0.0.1"]))
    assert (await r.resolve("rebind.example", 80))[0]["host"] == "203.0.113.5"
    with pytest.raises(DestinationRefused) as info:
        await r.resolve("rebind.example", 80)
    assert info.value.rule == "loopback"


async def test_the_resolver_refuses_the_agents_own_port() -> None:
    p = policy(settings={"allow_loopback": True}, listen=("0.0.0.0", 9095))
    r = PolicyResolver(p, Answers(["127.0.0.1"]))
    assert (await r.resolve("localhost", 8080))[0]["host"] == "127.0.0.1"
    with pytest.raises(DestinationRefused) as info:
        await r.resolve("localhost", 9095)
    assert info.value.rule == "own_address"
