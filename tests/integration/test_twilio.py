"""The sms and whatsapp channels against the Twilio emulator: the request Twilio gets (basic
auth, form fields, StatusCallback, WhatsApp addresses and templates), Twilio's error codes mapped
to failure classes, reasons and scopes, the settings a channel needs, and the callback reader."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    DeliveryError,
    ErrorScope,
    FailureClass,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.registry import ChannelBuildError, ChannelDeps, ChannelsSettings, build_channels
from agent.channels.sms import SmsChannel, build_sms
from agent.channels.twilio import TwilioSettings, receipt_of
from agent.channels.whatsapp import WhatsAppChannel, build_whatsapp
from agent.domain import FailureReason, NotificationFailureClass
from agent.observability import get_logger
from tests.emulators.twilio import ACCOUNT_SID, AUTH_TOKEN, TwilioEmulator

TO = "+351912345678"
FROM = "+15017122661"
WA_FROM = "+14155238886"
PUBLIC = "https://agent.example"
CONTENT_SID = "HX" + "b5c7d9e1" * 4


def _secret(value: SecretStr | None, file: Path | None, what: str) -> str | None:
    return None if value is None else value.get_secret_value()


def _settings(url: str, **extra: Any) -> TwilioSettings:
    return TwilioSettings.model_validate({
        "enabled": True, "account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN,
        "from_number": FROM, "api_url": url, "whatsapp_from": WA_FROM, "timeout_seconds": 0.5,
        **extra})


@pytest.fixture
async def emu() -> AsyncIterator[tuple[TwilioEmulator, str]]:
    e = TwilioEmulator()
    async with e.serve() as url:
        yield e, url


def _sms(url: str, session: aiohttp.ClientSession, **extra: Any) -> SmsChannel:
    return build_sms(_settings(url, **extra), _secret, lambda: session, PUBLIC)


def _wa(url: str, session: aiohttp.ClientSession, **extra: Any) -> WhatsAppChannel:
    channel = build_whatsapp(_settings(url, **extra), _secret, lambda: session, PUBLIC)
    assert channel is not None
    return channel


def _msg(to: str = TO, text: str = "disk full", **kw: Any) -> Message:
    fields: dict[str, Any] = {
        "notification_id": "ntf_1", "channel": "sms", "to": to, "text": text,
        "subject": "db1", "severity": "critical", "priority": "high", "created_at": 0.0,
        "link": f"{PUBLIC}/v1/notifications/ntf_1", **kw}
    return Message(**fields)


async def test_an_sms_is_posted_as_twilio_wants_it(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    result = await _sms(url, session).send(_msg())
    [req] = e.requests
    assert req.status == 201
    assert req.form == {"To": TO, "From": FROM, "Body": "db1\ndisk full",
                        "StatusCallback": f"{PUBLIC}/hooks/twilio/status"}
    [stored] = e.messages[TO]
    assert result.receipt_id == stored.sid and result.http_status == 201
    assert result.provider_ref == {"sid": stored.sid, "to": TO, "segments": "1"}


async def test_a_messaging_service_is_the_sender_when_set(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    service = "MG" + "0a1b2c3d" * 4
    await _sms(url, session, messaging_service_sid=service).send(_msg())
    assert e.requests[0].form["MessagingServiceSid"] == service
    assert "From" not in e.requests[0].form


async def test_a_long_sms_keeps_to_the_segment_budget(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    await _sms(url, session, max_segments=2).send(_msg(text="disk full on db1. " * 200))
    [stored] = e.messages[TO]
    assert stored.segments == 2 and stored.body is not None
    assert stored.body.endswith(f"full text at {PUBLIC}/v1/notifications/ntf_1")


async def test_whatsapp_addresses_carry_the_prefix_both_ways(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    channel = _wa(url, session)
    assert channel.validate_address(f"whatsapp:{TO}") == TO
    assert channel.validate_address(TO) == TO
    await channel.send(_msg(to=f"whatsapp:{TO}", channel="whatsapp"))
    assert e.requests[0].form["To"] == f"whatsapp:{TO}"
    assert e.requests[0].form["From"] == f"whatsapp:{WA_FROM}"
    assert e.messages[TO][0].body == "db1\ndisk full"


async def test_whatsapp_with_a_content_sid_sends_the_template(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    await _wa(url, session).send(_msg(channel="whatsapp", text="disk\nfull\ton db1",
                                      metadata={"content_sid": CONTENT_SID}))
    form = e.requests[0].form
    assert "Body" not in form and form["ContentSid"] == CONTENT_SID
    assert orjson.loads(form["ContentVariables"]) == {
        "1": "db1", "2": "critical", "3": "disk full on db1",
        "4": f"{PUBLIC}/v1/notifications/ntf_1"}
    assert e.requests[0].status == 201


async def test_a_malformed_content_sid_is_refused_before_twilio(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    with pytest.raises(PermanentDeliveryError, match="content_sid"):
        await _wa(url, session).send(_msg(channel="whatsapp", metadata={"content_sid": "HX1"}))
    assert e.requests == []


@pytest.mark.parametrize(("setup", "cls", "reason", "scope"), [
    ("invalid", FailureClass.PERMANENT, FailureReason.INVALID_RECIPIENT, ErrorScope.RECIPIENT),
    ("landline", FailureClass.PERMANENT, FailureReason.INVALID_RECIPIENT, ErrorScope.RECIPIENT),
    ("unsubscribed", FailureClass.PERMANENT, FailureReason.PROVIDER_REJECTED,
     ErrorScope.RECIPIENT),
    ("bad_token", FailureClass.PERMANENT, FailureReason.PROVIDER_REJECTED, ErrorScope.CHANNEL),
    ("429", FailureClass.RETRYABLE, FailureReason.RATE_LIMITED, ErrorScope.MESSAGE),
    ("5xx", FailureClass.RETRYABLE, FailureReason.PROVIDER_UNAVAILABLE, ErrorScope.MESSAGE),
    ("stall", FailureClass.RETRYABLE, FailureReason.TIMEOUT, ErrorScope.MESSAGE),
    ("malformed", FailureClass.RETRYABLE, FailureReason.NETWORK_ERROR, ErrorScope.MESSAGE),
])
async def test_twilio_errors_map_to_failure_classes(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession, logs: io.StringIO,
        setup: str, cls: FailureClass, reason: FailureReason, scope: ErrorScope) -> None:
    e, url = emu
    extra: dict[str, Any] = {}
    if setup == "invalid":
        e.invalid.add(TO)
    elif setup == "landline":
        e.landlines.add(TO)
    elif setup == "unsubscribed":
        e.unsubscribed.add(TO)
    elif setup == "bad_token":
        extra["auth_token"] = "not-the-token-0123456789"
    else:
        e.fail(setup, retry_after=30 if setup == "429" else None)  # type: ignore[arg-type]
    with pytest.raises(DeliveryError) as info:
        await _sms(url, session, **extra).send(_msg())
    err = info.value
    assert (err.failure_class, err.reason, err.scope) == (cls, reason, scope)
    if setup == "429":
        assert isinstance(err, RetryableDeliveryError) and err.retry_after == 30.0
        assert "20429" in err.details
    codes = {"invalid": "21211", "landline": "21614", "unsubscribed": "21610",
             "bad_token": "20003"}
    if setup in codes:
        assert f"Twilio error {codes[setup]}" in err.details
    for secret in (AUTH_TOKEN, "not-the-token-0123456789"):
        assert secret not in err.details and secret not in logs.getvalue()


async def test_outside_the_whatsapp_window_the_error_says_to_configure_content_sid(
        session: aiohttp.ClientSession) -> None:
    # Twilio may refuse at once with 63016 (it usually reports it in the callback instead).
    from aiohttp import web

    from tests.helpers import serve

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"code": 63016, "status": 400, "message": "Failed to send "
                                  "freeform message because you are outside the allowed window",
                                  "more_info": "https://www.twilio.com/docs/errors/63016"},
                                 status=400)

    async with serve(refuse) as url:
        with pytest.raises(PermanentDeliveryError) as info:
            await _wa(url, session).send(_msg(channel="whatsapp"))
    assert "content_sid" in info.value.details and "63016" in info.value.details


async def test_addresses_are_checked_as_e164(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    _, url = emu
    channel = _sms(url, session)
    assert channel.validate_address("+351 912 345 678") == TO
    for bad in ("912345678", "+1", "ops", "+351 000"):
        with pytest.raises(AddressError) as info:
            channel.validate_address(bad)
        assert info.value.code == "invalid_phone"


async def test_rates_are_the_sender_then_the_recipient(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    _, url = emu
    sender, recipient = _sms(url, session, rate_per_second=3.0).rates(TO)
    assert (sender.key, sender.per_second) == (f"twilio:{FROM}", 3.0)
    assert recipient.key == f"sms:{TO}"
    wa_sender, wa_recipient = _wa(url, session).rates(TO)
    assert (wa_sender.key, wa_sender.per_second) == (f"twilio:whatsapp:{WA_FROM}", 80.0)
    assert wa_recipient.key == f"whatsapp:{TO}"


def _deps() -> ChannelDeps:
    return ChannelDeps(secret=_secret, generated_secret=lambda n: n, logger=get_logger)


@pytest.mark.parametrize(("twilio", "problem"), [
    ({"account_sid": None}, "channels.twilio.account_sid"),
    ({"account_sid": "AC123"}, "channels.twilio.account_sid"),
    ({"auth_token": None}, "channels.twilio.auth_token"),
    ({"from_number": None}, "channels.twilio.from_number or channels.twilio.messaging_service_sid"),
    ({"from_number": "not a sender!"}, "channels.twilio.from_number"),
    ({"messaging_service_sid": "MG1"}, "channels.twilio.messaging_service_sid"),
    ({"whatsapp_from": "+1"}, "channels.twilio.whatsapp_from"),
])
def test_enabled_without_what_it_needs_names_the_setting(twilio: dict[str, Any],
                                                         problem: str) -> None:
    cfg = ChannelsSettings.model_validate({"console": {"enabled": False},
                                           "in_app": {"enabled": False},
                                           "webhook": {"enabled": False},
                                           "twilio": {**_settings("http://127.0.0.1:9").model_dump(),
                                                      **twilio}})
    with pytest.raises(ChannelBuildError) as info:
        build_channels(cfg, _deps())
    assert len(info.value.problems) == 1  # said once for the two channels of the section
    assert problem in info.value.problems[0]


def test_whatsapp_is_built_only_with_whatsapp_from() -> None:
    base = {"console": {"enabled": False}, "in_app": {"enabled": False},
            "webhook": {"enabled": False}}
    cfg = _settings("http://127.0.0.1:9").model_dump()
    built = build_channels(ChannelsSettings.model_validate({**base, "twilio": cfg}), _deps())
    assert set(built) == {"sms", "whatsapp"}
    cfg["whatsapp_from"] = None
    built = build_channels(ChannelsSettings.model_validate({**base, "twilio": cfg}), _deps())
    assert set(built) == {"sms"}
    cfg["enabled"] = False
    assert build_channels(ChannelsSettings.model_validate({**base, "twilio": cfg}),
                          _deps()) == {}


def test_a_sender_may_be_a_short_code_or_an_alphanumeric_id() -> None:
    from agent.channels.twilio import sms_sender

    url = "http://127.0.0.1:9"
    for sender in ("12345", "ACME Ops", FROM):
        assert sms_sender(_settings(url, from_number=sender)).form == {"From": sender}
    with pytest.raises(ChannelConfigError):
        sms_sender(_settings(url, from_number="+1000"))


SID = "SM" + "0" * 32


@pytest.mark.parametrize(("params", "outcome", "reason", "klass"), [
    ({"MessageStatus": "delivered"}, "delivered", None, None),
    ({"MessageStatus": "read"}, "read", None, None),
    ({"MessageStatus": "sent"}, None, None, None),
    ({"MessageStatus": "queued"}, None, None, None),
    ({"SmsStatus": "delivered"}, "delivered", None, None),
    ({"MessageStatus": "undelivered", "ErrorCode": "30003"}, "failed",
     FailureReason.PROVIDER_REJECTED, NotificationFailureClass.PERMANENT),
    ({"MessageStatus": "undelivered", "ErrorCode": "30005"}, "failed",
     FailureReason.INVALID_RECIPIENT, NotificationFailureClass.PERMANENT),
    ({"MessageStatus": "failed", "ErrorCode": "63016"}, "failed",
     FailureReason.PROVIDER_REJECTED, NotificationFailureClass.PERMANENT),
    ({"MessageStatus": "failed", "ErrorCode": "30008"}, "failed",
     FailureReason.PROVIDER_REJECTED, NotificationFailureClass.TEMPORARY),
    ({"MessageStatus": "failed"}, "failed",
     FailureReason.PROVIDER_REJECTED, NotificationFailureClass.TEMPORARY),
])
def test_reading_a_status_callback(params: dict[str, str], outcome: str | None,
                                   reason: FailureReason | None,
                                   klass: NotificationFailureClass | None) -> None:
    receipt = receipt_of({"MessageSid": SID, **params})
    assert receipt is not None
    assert (receipt.sid, receipt.outcome, receipt.reason, receipt.failure_class) == (
        SID, outcome, reason, klass)
    if params.get("ErrorCode") == "63016":
        assert receipt.details is not None and "content_sid" in receipt.details
    assert receipt_of({"MessageSid": "SM1", **params}) is None


async def test_the_acknowledge_link_ends_the_sms_and_survives_its_budget(
        emu: tuple[TwilioEmulator, str], session: aiohttp.ClientSession) -> None:
    e, url = emu
    ack = f"{PUBLIC}/ack/eyJuIjoibnRmXzEifQ.sig"
    await _sms(url, session).send(_msg(ack_url=ack))
    await _sms(url, session, max_segments=2).send(_msg(text="disk full on db1. " * 200,
                                                       ack_url=ack))
    short, long = e.messages[TO]
    assert short.body == f"db1\ndisk full\nAck: {ack}"
    assert long.segments == 2 and long.body is not None and long.body.endswith(ack)
    await _wa(url, session).send(_msg(ack_url=ack, channel="whatsapp"))
    assert e.all_messages()[-1].body == f"db1\ndisk full\nAck: {ack}"
