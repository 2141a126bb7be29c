"""The email channel against a real SMTP server (aiosmtpd): the MIME message as received, TLS
(STARTTLS and implicit), AUTH, threading headers, and the failure table."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr

from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    DeliveryError,
    DeliveryResult,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.email import EmailChannel, EmailSettings, build_email
from agent.observability import get_logger
from tests.emulators.smtp import SmtpEmulator, garbage_server, silent_server
from tests.helpers import wait_until

SENDER = "alerts@example.com"
TO = "ana@example.com"
PASSWORD = "s3cret-Pa55word-for-smtp"


def secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    return file.read_text().strip() if file is not None else None


def make(port: int | None, **over: Any) -> EmailChannel:
    cfg = EmailSettings.model_validate({"enabled": True, "host": "127.0.0.1", "port": port,
                                        "from_address": SENDER, "timeout_seconds": 1.0,
                                        **over})
    return build_email(cfg, secret, get_logger("channel.email"))


def msg(text: str = "disk full on db1", **over: Any) -> Message:
    base = Message(notification_id="ntf_1", channel="email", to=TO, text=text,
                   subject="db1: disk full", severity="critical", priority="high",
                   created_at=1_700_000_000.0, thread_key="grp_1")
    return replace(base, **over)


@dataclass
class Tls:
    server: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls(ca: trustme.CA, tmp_path: Path) -> Tls:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return Tls(ctx, path)


@pytest.fixture
async def plain() -> AsyncIterator[tuple[SmtpEmulator, int]]:
    emu = SmtpEmulator()
    async with emu.serve() as port:
        yield emu, port


@pytest.fixture
async def channels() -> AsyncIterator[list[EmailChannel]]:
    """Channels made by a test, closed at its end."""
    made: list[EmailChannel] = []
    yield made
    for ch in made:
        await ch.close()


def content(part: Any) -> str:
    """A part's decoded text, with the wire's CRLF line ends as LF."""
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


async def outcome(channel: EmailChannel, message: Message) -> DeliveryResult | DeliveryError:
    try:
        return await asyncio.wait_for(channel.send(message), 10)
    except DeliveryError as exc:
        return exc


# -- the message as received --------------------------------------------------------------


async def test_a_message_arrives_as_plain_text_and_the_same_text_escaped_as_html(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    text = 'disk <script>alert("x")</script> & 95% full\nçà 🔥 second line'
    result = await ch.send(msg(text, link="https://agent.example/v1/notifications/ntf_1"))

    [got] = emu.messages[TO]
    assert (got.mail_from, got.rcpt_tos, got.tls, got.user) == (SENDER, [TO], False, None)
    m = got.message
    assert (m["From"], m["To"], m["Subject"]) == (SENDER, TO, "db1: disk full")
    assert result.provider_ref is not None
    assert m["Message-ID"] == result.provider_ref["message_id"]
    assert m["Message-ID"].endswith("@example.com>")
    assert m["Auto-Submitted"] == "auto-generated"
    assert m["In-Reply-To"] is None and m["References"] is None
    assert m.get_content_type() == "multipart/alternative"
    plain_part, html_part = m.iter_parts()
    assert plain_part.get_content_type() == "text/plain"
    assert plain_part.get_content_charset() == "utf-8"
    assert content(plain_part).startswith(text + "\n")
    assert "https://agent.example/v1/notifications/ntf_1" in content(plain_part)
    assert html_part.get_content_type() == "text/html"
    body = content(html_part)
    assert "<script>" not in body
    assert "disk &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 95% full" in body
    assert "çà 🔥 second line" in body
    assert '<pre style="white-space:pre-wrap' in body


@pytest.mark.parametrize(("over", "subject"), [
    ({"subject": "db1\r\nBcc: evil@example.net"}, "db1 Bcc: evil@example.net"),
    ({"subject": "x" * 300}, "x" * 199 + "\u2026"),
    ({"subject": None}, "[CRITICAL] disk full on db1"),
    ({"subject": None, "status": "resolved"}, "[RESOLVED] disk full on db1"),
    ({"subject": "  "}, "[CRITICAL] disk full on db1"),
])
async def test_the_subject_is_one_bounded_line(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel],
        over: dict[str, Any], subject: str) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    await ch.send(msg(**over))
    [got] = emu.messages[TO]
    assert got.message["Subject"] == subject
    assert got.message["Bcc"] is None
    assert b"\nBcc:" not in got.raw


async def test_later_messages_of_the_group_reply_to_the_first(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    first = await ch.send(msg(subject="[FIRING:1] DiskFull"))
    second = await ch.send(msg(notification_id="ntf_2", subject="[FIRING:2] DiskFull",
                               replaces=first.provider_ref))
    third = await ch.send(msg(notification_id="ntf_3", subject="[RESOLVED] DiskFull",
                              status="resolved", replaces=second.provider_ref))
    apart = await ch.send(msg(notification_id="ntf_4", subject="new incident",
                              replaces=third.provider_ref, update="new"))
    assert first.provider_ref and second.provider_ref and third.provider_ref
    id1, id2, id3 = (r.provider_ref["message_id"] for r in (first, second, third))
    m1, m2, m3, m4 = (r.message for r in emu.messages[TO])
    assert m1["Message-ID"] == id1 and m2["Message-ID"] == id2 and m3["Message-ID"] == id3
    assert len({id1, id2, id3}) == 3
    assert (m2["In-Reply-To"], m2["References"]) == (id1, id1)
    assert (m3["In-Reply-To"], m3["References"]) == (id2, f"{id1} {id2}")
    # Same subject as the thread's first message, as a reply: Gmail threads on it.
    assert [m["Subject"] for m in (m1, m2, m3)] == [
        "[FIRING:1] DiskFull", "Re: [FIRING:1] DiskFull", "Re: [FIRING:1] DiskFull"]
    assert "[RESOLVED]" not in m3["Subject"]
    assert content(m3.get_body(("plain",))).startswith("disk full")
    assert m4["In-Reply-To"] is None and m4["Subject"] == "new incident"
    assert apart.provider_ref and apart.provider_ref["references"] == []


async def test_a_ref_that_names_no_message_starts_a_new_thread(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    for ref in ({"chat_id": 1, "message_id": 5}, {"message_id": "no angle brackets"},
                {"message_id": "<a@b>\r\nBcc: x@y"}):
        await ch.send(msg(replaces=ref))
    assert [m.message["In-Reply-To"] for m in emu.messages[TO]] == [None, None, None]


# -- TLS and AUTH ---------------------------------------------------------------------------


async def test_starttls_with_auth_against_a_private_ca(tls: Tls,
                                                       channels: list[EmailChannel]) -> None:
    emu = SmtpEmulator(starttls=tls.server, users={"ana": PASSWORD})
    async with emu.serve() as port:
        ch = make(port, starttls=True, ca_file=str(tls.ca_file), username="ana",
                  password=PASSWORD)
        channels.append(ch)
        await ch.send(msg())
        [got] = emu.messages[TO]
        assert (got.tls, got.user) == (True, "ana")


async def test_implicit_tls(tls: Tls, channels: list[EmailChannel]) -> None:
    emu = SmtpEmulator(implicit_tls=tls.server)
    async with emu.serve() as port:
        ch = make(port, tls=True, ca_file=str(tls.ca_file))
        channels.append(ch)
        await ch.send(msg())
        assert [m.tls for m in emu.messages[TO]] == [True]


async def test_starttls_not_offered_is_a_channel_config_error_and_nothing_goes_in_clear(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port, starttls=True)
    channels.append(ch)
    got = await outcome(ch, msg())
    assert isinstance(got, PermanentDeliveryError)
    assert (got.reason.value, got.scope) == ("channel_not_configured", ErrorScope.CHANNEL)
    assert "STARTTLS" in got.details
    assert emu.messages == {} and "MAIL" not in emu.stages


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_an_untrusted_certificate_is_a_retryable_network_error(
        tls: Tls, channels: list[EmailChannel], mode: str) -> None:
    emu = (SmtpEmulator(starttls=tls.server) if mode == "starttls"
           else SmtpEmulator(implicit_tls=tls.server))
    async with emu.serve() as port:
        ch = make(port, **{mode: True})  # the system CAs only: the test CA is unknown
        channels.append(ch)
        got = await outcome(ch, msg())
        assert isinstance(got, RetryableDeliveryError)
        assert got.reason.value == "network_error"
        assert emu.messages == {}


async def test_refused_credentials_pause_the_channel_and_never_show_the_password(
        tls: Tls, channels: list[EmailChannel], logs: io.StringIO) -> None:
    emu = SmtpEmulator(starttls=tls.server, users={"ana": "another password"})
    async with emu.serve() as port:
        ch = make(port, starttls=True, ca_file=str(tls.ca_file), username="ana",
                  password=PASSWORD)
        channels.append(ch)
        got = await outcome(ch, msg())
    assert isinstance(got, PermanentDeliveryError)
    assert (got.reason.value, got.scope) == ("provider_rejected", ErrorScope.CHANNEL)
    assert "535" in got.details
    assert ("ana", PASSWORD) in emu.auth_attempts  # the server did see it
    for text in (got.details, str(got), logs.getvalue()):
        assert PASSWORD not in text


# -- the failure table ----------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    stage: str
    reply: str
    outcome: str
    reason: str
    scope: ErrorScope = ErrorScope.MESSAGE


REFUSALS = [
    Refusal("MAIL", "421 4.7.0 Try again later", "retryable", "rate_limited"),
    Refusal("RCPT", "450 4.2.1 Receiving mail at a rate that prevents more", "retryable",
            "rate_limited"),
    Refusal("RCPT", "451 4.3.0 Local error in processing", "retryable", "provider_unavailable"),
    Refusal("DATA", "452 4.3.1 Insufficient system storage", "retryable",
            "provider_unavailable"),
    Refusal("RCPT", "550 5.1.1 No such user here", "permanent", "invalid_recipient",
            ErrorScope.RECIPIENT),
    Refusal("RCPT", "553 5.1.3 Mailbox name not allowed", "permanent", "invalid_recipient",
            ErrorScope.RECIPIENT),
    Refusal("RCPT", "554 5.7.1 Relay access denied", "permanent", "provider_rejected",
            ErrorScope.RECIPIENT),
    Refusal("DATA", "552 5.3.4 Message size exceeds fixed limit", "permanent",
            "provider_rejected"),
    Refusal("DATA", "554 5.6.0 Message content rejected", "permanent", "provider_rejected"),
    Refusal("MAIL", "552 5.3.4 Message size exceeds fixed limit", "permanent",
            "provider_rejected"),
    Refusal("MAIL", "530 5.7.0 Authentication required", "permanent", "provider_rejected",
            ErrorScope.CHANNEL),
    Refusal("MAIL", "553 5.7.1 Sender address rejected", "permanent", "provider_rejected",
            ErrorScope.CHANNEL),
    Refusal("AUTH", "535 5.7.8 Authentication credentials invalid", "permanent",
            "provider_rejected", ErrorScope.CHANNEL),
    Refusal("AUTH", "454 4.7.0 Temporary authentication failure", "retryable",
            "provider_unavailable"),
]


@pytest.mark.parametrize("row", REFUSALS, ids=[f"{r.stage}-{r.reply[:3]}" for r in REFUSALS])
async def test_each_smtp_refusal_maps_to_its_outcome(
        channels: list[EmailChannel], logs: io.StringIO, row: Refusal) -> None:
    emu = SmtpEmulator(users={"ana": PASSWORD})
    async with emu.serve() as port:
        ch = make(port, username="ana", password=PASSWORD)
        channels.append(ch)
        # AUTH tries each mechanism the server offers: refuse every try.
        emu.fail(row.stage, row.reply, times=5 if row.stage == "AUTH" else 1)
        got = await outcome(ch, msg())
        assert isinstance(got, DeliveryError), got
        assert (got.failure_class.value, got.reason.value, got.scope) == (
            row.outcome, row.reason, row.scope)
        assert row.reply[:3] in got.details and row.stage in got.details
        if isinstance(got, RetryableDeliveryError):
            assert got.retry_after is None
        assert emu.messages == {}
        for text in (got.details, str(got), logs.getvalue()):
            assert PASSWORD not in text
        # The next message goes out (over the same connection unless the server closed it).
        emu._faults.clear()
        assert isinstance(await outcome(ch, msg()), DeliveryResult)
        assert len(emu.messages[TO]) == 1


async def test_a_refusal_keeps_the_connection_for_the_next_message(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    emu.fail("RCPT", "550 5.1.1 No such user here")
    assert isinstance(await outcome(ch, msg()), PermanentDeliveryError)
    assert isinstance(await outcome(ch, msg()), DeliveryResult)
    assert emu.connections == 1


async def test_a_server_that_closes_the_connection_is_a_retryable_network_error(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    emu.fail("MAIL", "close", times=2)
    got = await outcome(ch, msg())
    assert isinstance(got, RetryableDeliveryError) and got.reason.value == "network_error"
    assert emu.messages == {}


async def test_a_stalled_server_times_out_within_the_timeout(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port, timeout_seconds=0.3)
    channels.append(ch)
    emu.fail("DATA", "stall")
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = await outcome(ch, msg())
    assert isinstance(got, RetryableDeliveryError) and got.reason.value == "timeout"
    assert loop.time() - started < 2.0  # the emulator holds it 5 s
    assert emu.messages == {}


async def test_a_server_that_never_greets_times_out(channels: list[EmailChannel]) -> None:
    async with silent_server() as port:
        ch = make(port, timeout_seconds=0.3)
        channels.append(ch)
        got = await outcome(ch, msg())
    assert isinstance(got, RetryableDeliveryError) and got.reason.value == "timeout"


async def test_a_closed_port_and_a_non_smtp_server_are_network_errors(
        channels: list[EmailChannel]) -> None:
    with socket.socket() as s:  # bound, never listening, closed: nobody answers there
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    ch = make(closed)
    channels.append(ch)
    got = await outcome(ch, msg())
    assert isinstance(got, RetryableDeliveryError) and got.reason.value == "network_error"
    async with garbage_server() as port:
        ch = make(port)
        channels.append(ch)
        got = await outcome(ch, msg())
    assert isinstance(got, RetryableDeliveryError) and got.reason.value == "network_error"


async def test_an_unknown_host_is_a_network_error(channels: list[EmailChannel]) -> None:
    ch = make(25, host="smtp.does-not-exist.invalid")  # .invalid never resolves (RFC 6761)
    channels.append(ch)
    got = await outcome(ch, msg())
    assert isinstance(got, RetryableDeliveryError) and got.reason.value == "network_error"


# -- connection reuse -----------------------------------------------------------------------


async def test_messages_reuse_one_connection(plain: tuple[SmtpEmulator, int],
                                             channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    for i in range(20):
        await ch.send(msg(notification_id=f"ntf_{i}"))
    assert len(emu.messages[TO]) == 20
    assert emu.connections == 1 and {m.connection for m in emu.messages[TO]} == {1}


async def test_concurrent_messages_share_at_most_max_connections(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port, max_connections=2)
    channels.append(ch)
    await asyncio.gather(*(ch.send(msg(notification_id=f"ntf_{i}")) for i in range(30)))
    assert len(emu.messages[TO]) == 30
    assert emu.connections == 2


async def test_a_connection_the_server_dropped_is_replaced(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    await ch.send(msg())
    emu.drop_all()
    await wait_until(lambda: emu.open == 0)
    await ch.send(msg())
    assert [m.connection for m in emu.messages[TO]] == [1, 2]


async def test_a_drop_in_the_middle_of_a_send_on_a_kept_connection_is_tried_once_more(
        plain: tuple[SmtpEmulator, int], channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port)
    channels.append(ch)
    await ch.send(msg())
    emu.fail("MAIL", "close")  # as if the server's idle timeout raced our next command
    await ch.send(msg())
    assert [m.connection for m in emu.messages[TO]] == [1, 2]
    assert ch.pool.reconnects == 1


async def test_idle_connections_are_closed(plain: tuple[SmtpEmulator, int],
                                           channels: list[EmailChannel]) -> None:
    emu, port = plain
    ch = make(port, idle_seconds=0.2)
    channels.append(ch)
    await ch.send(msg())
    assert emu.open == 1
    await wait_until(lambda: emu.open == 0, timeout=5)
    assert ch.pool.idle == 0
    await ch.send(msg())  # and a new one is opened for the next message
    assert emu.connections == 2


async def test_close_quits_the_kept_connections(plain: tuple[SmtpEmulator, int]) -> None:
    emu, port = plain
    ch = make(port, max_connections=3)
    await asyncio.gather(*(ch.send(msg()) for _ in range(3)))
    assert emu.open >= 1
    await ch.close()
    await wait_until(lambda: emu.open == 0, timeout=5)
    assert emu.stages.count("MAIL") == 3


# -- settings and addresses -----------------------------------------------------------------


@pytest.mark.parametrize(("over", "named"), [
    ({"starttls": True, "tls": True}, "channels.email.starttls"),
    ({"from_address": None}, "channels.email.from_address"),
    ({"from_address": "not an address"}, "channels.email.from_address"),
    ({"username": "ana"}, "channels.email.username"),
    ({"password": PASSWORD}, "channels.email.password"),
    ({"host": " "}, "channels.email.host"),
    ({"starttls": True, "ca_file": "/nonexistent/ca.pem"}, "channels.email.ca_file"),
])
def test_settings_that_cannot_work_are_config_errors(over: dict[str, Any], named: str) -> None:
    with pytest.raises(ChannelConfigError) as err:
        make(25, **over)
    assert named in str(err.value) and PASSWORD not in str(err.value)


def test_password_file_and_derived_ports(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    ch = make(25, username="ana", password_file=str(pw))
    assert ch._password == PASSWORD
    assert [make(None, **o)._port for o in ({}, {"starttls": True}, {"tls": True})] == [
        25, 587, 465]


def test_addresses_are_checked_with_the_shared_email_validator() -> None:
    ch = make(25)
    assert ch.validate_address("Ana@Example.COM") == "Ana@example.com"
    for bad in ("ana", "ana@", "@example.com", "ana@example.com\r\nBcc: x@y.z", "a b@c.d"):
        with pytest.raises(AddressError) as err:
            ch.validate_address(bad)
        assert err.value.code == "invalid_email" or "control" in err.value.message


def test_a_login_in_clear_off_loopback_is_logged(logs: io.StringIO) -> None:
    make(25, username="ana", password=PASSWORD)
    assert "smtp_login_without_tls" not in logs.getvalue()
    make(25, host="smtp.example.com", username="ana", password=PASSWORD, starttls=True)
    assert "smtp_login_without_tls" not in logs.getvalue()
    make(25, host="smtp.example.com", username="ana", password=PASSWORD)
    assert "smtp_login_without_tls" in logs.getvalue() and PASSWORD not in logs.getvalue()
