"""FCM behind the push channel, against the FCM emulator (token endpoint + messages:send): the
service-account key file, the minted JWT's claims, the access token cached, shared and minted
anew (expiry, a 401), the message body, replacement by tag, the payload budget, the v1 error
table, and neither the key nor a token in details or logs."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.channels import fcm, fcm_auth
from agent.channels.base import (
    AddressError,
    DeliveryError,
    ErrorScope,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.registry import ChannelBuildError, ChannelsSettings, build_channels
from tests.emulators.fcm import FcmEmulator, ServiceAccountKey
from tests.integration.test_teams import deps, group_text

LINK = "https://agent.example/v1/notifications/ntf_1"
DEVICE = "dEvIcE_tOkEn:APA91bH-" + "x" * 120


def message(to: str = "fcm:" + DEVICE, text: str = "disk full on db1", **kw: Any) -> Message:
    base: dict[str, Any] = dict(
        notification_id="ntf_1", channel="push", to=to, text=text, subject="db1 down",
        severity="critical", priority="high", created_at=1_700_000_000.0, thread_key="grp_1",
        link=LINK)
    base.update(kw)
    return Message(**base)


@pytest.fixture
async def emu() -> AsyncIterator[tuple[FcmEmulator, str]]:
    e = FcmEmulator(ServiceAccountKey(token_uri="http://placeholder.invalid/token"))
    async with e.serve() as url:
        e.account.token_uri = f"{url}/token"
        yield e, url


def key_file(e: FcmEmulator, tmp_path: Path) -> Path:
    return e.account.write(tmp_path / "fcm-key.json")


def sender(e: FcmEmulator, url: str, tmp_path: Path, session: aiohttp.ClientSession,
           **kw: Any) -> fcm.FcmSender:
    account = fcm_auth.ServiceAccount.load(key_file(e, tmp_path))
    return fcm.FcmSender(account, url, None, kw.pop("timeout", 2.0), lambda: session, **kw)


# --- settings and the key file --------------------------------------------------------------

def test_enabled_needs_a_readable_service_account_key(tmp_path: Path) -> None:
    with pytest.raises(ChannelBuildError, match=r"channels\.fcm: .*service_account_file"):
        build_channels(ChannelsSettings(fcm={"enabled": True}), deps())
    with pytest.raises(ChannelBuildError, match="cannot read it"):
        build_channels(ChannelsSettings(fcm={"enabled": True, "service_account_file":
                                             tmp_path / "missing.json"}), deps())


@pytest.mark.parametrize(("content", "why"), [
    ("{not json", "not JSON"),
    ('{"type": "authorized_user"}', "not a service-account key"),
    ("KEYLESS", '"private_key" is missing'),
    ("BADKEY", "not an unencrypted PEM RSA private key"),
])
def test_a_malformed_key_file_is_named_and_never_echoed(tmp_path: Path, content: str,
                                                        why: str) -> None:
    account = ServiceAccountKey(token_uri="https://oauth2.googleapis.com/token")
    info = account.info()
    if content == "KEYLESS":
        del info["private_key"]
        content = json.dumps(info)
    elif content == "BADKEY":
        info["private_key"] = "-----BEGIN PRIVATE KEY-----\nTOPSECRETbutBROKEN\n"
        content = json.dumps(info)
    path = tmp_path / "key.json"
    path.write_text(content)
    with pytest.raises(ChannelBuildError) as caught:
        build_channels(ChannelsSettings(fcm={"enabled": True, "service_account_file": path}),
                       deps())
    text = str(caught.value)
    assert "channels.fcm.service_account_file" in text and why in text
    assert "TOPSECRET" not in text and "BEGIN PRIVATE" not in text


# --- the access token -----------------------------------------------------------------------

async def test_the_jwt_carries_google_auth_claims(emu: tuple[FcmEmulator, str], tmp_path: Path,
                                                  session: aiohttp.ClientSession) -> None:
    e, url = emu
    await sender(e, url, tmp_path, session).send(message())
    [jwt] = e.assertions
    assert jwt["header"] == {"typ": "JWT", "alg": "RS256", "kid": e.account.private_key_id}
    claims = jwt["claims"]
    assert (claims["iss"], claims["aud"], claims["scope"]) == (
        e.account.client_email, "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/auth/firebase.messaging")
    assert claims["exp"] - claims["iat"] == 3600


async def test_one_mint_for_many_sends_even_at_once(emu: tuple[FcmEmulator, str],
                                                    tmp_path: Path,
                                                    session: aiohttp.ClientSession) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session)
    await asyncio.gather(*(s.send(message(notification_id=f"ntf_{i}")) for i in range(20)))
    for i in range(5):
        await s.send(message(notification_id=f"ntf_late_{i}"))
    assert (e.mints, e.sends, len(e.messages[DEVICE])) == (1, 25, 25)


async def test_concurrent_sends_share_a_failed_mint_too(emu: tuple[FcmEmulator, str],
                                                        tmp_path: Path,
                                                        session: aiohttp.ClientSession) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session)
    e.token_failures.add("5xx")
    got = await asyncio.gather(*(s.send(message(notification_id=f"ntf_{i}")) for i in range(8)),
                               return_exceptions=True)
    assert all(isinstance(g, RetryableDeliveryError) for g in got)
    assert (len([r for r in e.requests if r.path == "/token"]), e.sends) == (1, 0)
    await s.send(message())  # the next send mints again
    assert (e.mints, e.sends) == (1, 1)


async def test_a_token_is_minted_anew_before_it_expires(emu: tuple[FcmEmulator, str],
                                                        tmp_path: Path,
                                                        session: aiohttp.ClientSession) -> None:
    e, url = emu
    now = [1000.0]
    s = sender(e, url, tmp_path, session, monotonic=lambda: now[0])
    await s.send(message())
    now[0] += e.expires_in - 300  # still valid for a while: kept
    await s.send(message())
    assert e.mints == 1
    now[0] += 100  # within google-auth's 3 min 45 s of its end: minted anew
    await s.send(message())
    assert (e.mints, e.sends) == (2, 3)


async def test_a_401_mints_a_new_token_and_retries_once(emu: tuple[FcmEmulator, str],
                                                        tmp_path: Path,
                                                        session: aiohttp.ClientSession) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session)
    await s.send(message())
    e.expire_all()  # FCM no longer takes the cached token: 401, new token, sent
    result = await s.send(message(notification_id="ntf_2"))
    assert result.provider_ref and result.provider_ref["name"].startswith(
        "projects/alert-agent-test/messages/")
    assert (e.mints, e.sends, len(e.messages[DEVICE])) == (2, 3, 2)


async def test_a_401_after_the_new_token_pauses_the_channel(emu: tuple[FcmEmulator, str],
                                                            tmp_path: Path,
                                                            session: aiohttp.ClientSession
                                                            ) -> None:
    e, url = emu
    e.failures.add("unauthenticated", times=2)
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender(e, url, tmp_path, session).send(message())
    assert (caught.value.scope, caught.value.http_status) == (ErrorScope.CHANNEL, 401)
    assert (e.mints, e.sends) == (2, 2)  # one retry, not a loop


async def test_a_refused_key_pauses_and_a_token_endpoint_outage_retries(
        emu: tuple[FcmEmulator, str], tmp_path: Path, session: aiohttp.ClientSession) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session, timeout=0.3)
    e.token_failures.add("invalid_grant")
    with pytest.raises(PermanentDeliveryError) as refused:
        await s.send(message())
    assert refused.value.scope is ErrorScope.CHANNEL and "invalid_grant" in refused.value.details
    for kind, reason in (("5xx", "provider_unavailable"), ("stall", "timeout"),
                         ("429", "rate_limited"), ("malformed", "network_error")):
        e.token_failures.add(kind)
        with pytest.raises(RetryableDeliveryError) as retry:
            await s.send(message())
        assert retry.value.reason.value == reason, kind
    assert e.sends == 0
    await s.send(message())  # the endpoint is back: minted and sent
    assert (e.mints, e.sends) == (1, 1)


async def test_a_wrong_signature_is_refused_by_the_token_endpoint(
        emu: tuple[FcmEmulator, str], tmp_path: Path, session: aiohttp.ClientSession) -> None:
    e, url = emu
    other = ServiceAccountKey(token_uri=e.account.token_uri,
                              key=fcm_auth.rsa.generate_private_key(65537, 2048))
    account = fcm_auth.ServiceAccount.load(other.write(tmp_path / "other.json"))
    s = fcm.FcmSender(account, url, None, 2.0, lambda: session)
    with pytest.raises(PermanentDeliveryError, match="Invalid JWT Signature") as caught:
        await s.send(message())
    assert caught.value.scope is ErrorScope.CHANNEL and e.mints == 0


async def test_token_url_overrides_the_key_files_token_uri(emu: tuple[FcmEmulator, str],
                                                           tmp_path: Path,
                                                           session: aiohttp.ClientSession
                                                           ) -> None:
    e, url = emu
    good = e.account.token_uri
    e.account.token_uri = "http://127.0.0.1:9/token"  # nobody there
    path = key_file(e, tmp_path)
    built = build_channels(ChannelsSettings(fcm={
        "enabled": True, "service_account_file": path, "api_url": url, "token_url": good}),
        deps(session))["push"]
    await built.send(message())
    assert (e.mints, e.sends) == (1, 1)
    await built.close()


# --- the message ----------------------------------------------------------------------------

async def test_the_message_body(emu: tuple[FcmEmulator, str], tmp_path: Path,
                                session: aiohttp.ClientSession) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session)
    result = await s.send(message())
    [sent] = e.messages[DEVICE]
    assert (sent.title, sent.body, sent.android_priority, sent.apns_priority) == (
        "db1 down", "disk full on db1", "high", "10")
    assert sent.tag and sent.collapse_id == sent.tag
    assert sent.data == {"notification_id": "ntf_1", "status": "firing",
                         "severity": "critical", "link": LINK}
    assert result.provider_ref == {"name": sent.name, "tag": sent.tag}
    await s.send(message(notification_id="ntf_2", severity="info", priority="normal"))
    await s.send(message(notification_id="ntf_3", status="resolved"))
    assert [(m.android_priority, m.apns_priority) for m in e.messages[DEVICE][1:]] == [
        ("normal", "5"), ("normal", "5")]


async def test_a_groups_later_message_replaces_the_earlier_on_the_device(
        emu: tuple[FcmEmulator, str], tmp_path: Path, session: aiohttp.ClientSession) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session)
    first = await s.send(message(text="1 firing"))
    await s.send(message(notification_id="ntf_2", text="2 firing",
                         replaces=first.provider_ref))
    # retract cannot delete on FCM: the resolve replaces the notification instead.
    await s.send(message(notification_id="ntf_3", text="resolved", status="resolved",
                         retract=True, replaces=first.provider_ref))
    assert [m.body for m in e.shown(DEVICE)] == ["resolved"]
    # update: new (and repeats) post a notification of their own; a plain send has no tag.
    await s.send(message(notification_id="ntf_4", text="repeat", update="new"))
    await s.send(message(notification_id="ntf_5", text="other", thread_key=None))
    shown = e.shown(DEVICE)
    assert [m.body for m in shown] == ["resolved", "repeat", "other"]
    assert shown[2].tag is None and len({m.tag for m in shown}) == 3


async def test_a_200_alert_group_is_truncated_under_4096_bytes(
        emu: tuple[FcmEmulator, str], tmp_path: Path, session: aiohttp.ClientSession) -> None:
    e, url = emu
    text = group_text() + "\n\"quoted\" ünïcödé \u2603" * 50
    await sender(e, url, tmp_path, session).send(message(text=text, overflow="split"))
    [sent] = e.messages[DEVICE]  # one notification: parts would only replace each other
    assert 3900 < sent.payload_bytes <= 4096
    assert "truncated" in sent.body and sent.body.endswith(LINK)
    assert sent.body.startswith(text[:1000])


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "cls", "reason", "scope"), [
    ("unregistered", PermanentDeliveryError, "invalid_recipient", ErrorScope.RECIPIENT),
    ("sender_id_mismatch", PermanentDeliveryError, "invalid_recipient", ErrorScope.RECIPIENT),
    ("invalid_argument", PermanentDeliveryError, "provider_rejected", ErrorScope.MESSAGE),
    ("third_party_auth", PermanentDeliveryError, "provider_rejected", ErrorScope.CHANNEL),
    ("5xx", RetryableDeliveryError, "provider_unavailable", ErrorScope.MESSAGE),
    ("429", RetryableDeliveryError, "rate_limited", ErrorScope.MESSAGE),
    ("malformed", RetryableDeliveryError, "network_error", ErrorScope.MESSAGE),
    ("stall", RetryableDeliveryError, "timeout", ErrorScope.MESSAGE),
])
async def test_fcm_errors(emu: tuple[FcmEmulator, str], tmp_path: Path,
                          session: aiohttp.ClientSession, logs: io.StringIO, kind: str,
                          cls: type[DeliveryError], reason: str, scope: ErrorScope) -> None:
    e, url = emu
    s = sender(e, url, tmp_path, session, timeout=0.3)
    e.failures.add(kind, retry_after=30 if kind == "429" else None)
    with pytest.raises(DeliveryError) as caught:
        await s.send(message())
    err = caught.value
    assert (type(err), err.reason.value, err.scope) == (cls, reason, scope)
    if kind == "429":
        assert isinstance(err, RetryableDeliveryError) and err.retry_after == 30
        assert "QUOTA_EXCEEDED" in err.details
    if kind == "unregistered":
        assert err.http_status == 404 and "UNREGISTERED" in err.details
    assert e.sends == 1 and e.mints == 1  # no retry inside the channel
    [token] = e.tokens
    secrets = (token, e.account.pem.splitlines()[5])
    for text in (err.details, str(err), logs.getvalue()):
        assert not any(secret in text for secret in secrets)


async def test_500_internal_is_retried(emu: tuple[FcmEmulator, str], tmp_path: Path,
                                       session: aiohttp.ClientSession) -> None:
    e, url = emu
    e.failures.add("5xx", status=500)
    with pytest.raises(RetryableDeliveryError, match="INTERNAL"):
        await sender(e, url, tmp_path, session).send(message())


async def test_device_sets_of_the_emulator(emu: tuple[FcmEmulator, str], tmp_path: Path,
                                           session: aiohttp.ClientSession) -> None:
    e, url = emu
    e.unregistered.add("gone")
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender(e, url, tmp_path, session).send(message(to="fcm:gone"))
    assert caught.value.scope is ErrorScope.RECIPIENT


def test_addresses_are_checked_by_the_shared_validator(tmp_path: Path) -> None:
    account = ServiceAccountKey(token_uri="https://oauth2.googleapis.com/token")
    built = build_channels(ChannelsSettings(fcm={
        "enabled": True, "service_account_file": account.write(tmp_path / "k.json")}),
        deps())["push"]
    assert built.validate_address("fcm:" + DEVICE) == "fcm:" + DEVICE
    for bad in ("fcm:", "fcm:has space", "fcm:" + "a" * 4097, "fcm:ü"):
        with pytest.raises(AddressError):
            built.validate_address(bad)
