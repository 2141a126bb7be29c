"""The apprise channel without a network: settings to aliases, build-time URL checks, `to`,
texts and types, and the bounded pool (a fake notifier at the seam, no Apprise call)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from apprise import NotifyType
from pydantic import SecretStr

from agent.app import _channel_secret
from agent.channels.apprise import (
    SOCKET_GRACE_SECONDS,
    AppriseChannel,
    AppriseFailed,
    AppriseSettings,
    Call,
    Target,
    _load,
    load_targets,
    notify_type,
    resolve_urls,
)
from agent.channels.base import (
    AddressError,
    ChannelConfigError,
    DeliveryResult,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.observability import get_logger
from tests.helpers import wait_until

SECRET = "s3cr3tAppriseToken42"
URL = f"json://user:{SECRET}@127.0.0.1:9/hooks/{SECRET}"
TARGET = Target(url=URL, body_maxlen=0, title_maxlen=250, seconds_between=0.0)


def _settings(**kw: object) -> AppriseSettings:
    return AppriseSettings.model_validate({"enabled": True, **kw})


def _message(text: str = "disk full", **kw: object) -> Message:
    fields: dict[str, object] = {
        "notification_id": "ntf_1", "channel": "apprise", "to": "ops", "text": text,
        "subject": "db1", "severity": "critical", "priority": "high", "created_at": 0.0}
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


@pytest.fixture
def root_debug() -> Iterator[None]:
    """Stdlib logging at DEBUG everywhere, so a library's debug line would reach our log."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.setLevel(before)


# --- settings -----------------------------------------------------------------------------


def test_urls_and_urls_file_are_merged(tmp_path: Path) -> None:
    file = tmp_path / "apprise.yaml"
    file.write_text("pager: json://127.0.0.1:9/p\n# a comment\nchat: 'json://127.0.0.1:9/c'\n")
    cfg = _settings(urls={"ops": "json://127.0.0.1:9/o"}, urls_file=str(file))
    got = resolve_urls(cfg, _channel_secret)
    assert {a: u for a, (u, _) in got.items()} == {
        "ops": "json://127.0.0.1:9/o", "pager": "json://127.0.0.1:9/p",
        "chat": "json://127.0.0.1:9/c"}
    assert got["ops"][1] == "channels.apprise.urls"
    assert got["pager"][1] == "channels.apprise.urls_file"


def test_a_json_urls_file_is_read(tmp_path: Path) -> None:
    file = tmp_path / "apprise.json"
    file.write_text('{"ops": "json://127.0.0.1:9/o"}')
    assert list(resolve_urls(_settings(urls_file=str(file)), _channel_secret)) == ["ops"]


def test_an_alias_in_both_places_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "apprise.yaml"
    file.write_text(f"ops: {URL}\n")
    with pytest.raises(ChannelConfigError) as err:
        resolve_urls(_settings(urls={"ops": URL}, urls_file=str(file)), _channel_secret)
    assert "'ops'" in str(err.value) and "urls_file" in str(err.value)
    assert SECRET not in str(err.value)


def test_an_alias_twice_in_the_file_is_a_config_error(tmp_path: Path) -> None:
    file = tmp_path / "apprise.yaml"
    file.write_text(f"ops: {URL}\nops: json://127.0.0.1:9/other\n")
    with pytest.raises(ChannelConfigError, match=r"alias 'ops' is set twice \(line 2\)") as err:
        resolve_urls(_settings(urls_file=str(file)), _channel_secret)
    assert SECRET not in str(err.value)


def test_a_broken_urls_file_names_the_line_not_its_text(tmp_path: Path) -> None:
    file = tmp_path / "apprise.yaml"
    file.write_text(f"ops: {URL}\n  bad: [\n")
    with pytest.raises(ChannelConfigError, match="urls_file: not valid YAML or JSON") as err:
        resolve_urls(_settings(urls_file=str(file)), _channel_secret)
    assert SECRET not in str(err.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "apprise.yaml"
    file.write_text(f"- {URL}\n")
    with pytest.raises(ChannelConfigError, match="mapping of alias to Apprise URL"):
        resolve_urls(_settings(urls_file=str(file)), _channel_secret)


def test_enabled_without_a_url_names_the_settings() -> None:
    with pytest.raises(ChannelConfigError, match=r"channels\.apprise\.urls .*urls_file"):
        resolve_urls(_settings(), _channel_secret)


def test_an_alias_of_a_urls_shape_is_refused_without_echo() -> None:
    with pytest.raises(ChannelConfigError, match="alias of a URL's shape") as err:
        resolve_urls(_settings(urls={URL: URL}), _channel_secret)
    assert SECRET not in str(err.value)


def test_a_url_apprise_cannot_load_names_its_alias_only(
        root_debug: None, logs: io.StringIO) -> None:
    bad = f"nosuchservice://user:{SECRET}@host/{SECRET}"
    with pytest.raises(ChannelConfigError) as err:
        load_targets({"pager": (bad, "channels.apprise.urls")}, 5.0)
    assert "channels.apprise.urls" in str(err.value) and "'pager'" in str(err.value)
    assert SECRET not in str(err.value)
    assert SECRET not in logs.getvalue()


def test_a_url_the_plugin_refuses_is_a_config_error() -> None:
    # A parseable scheme whose plugin refuses its parts (a Discord URL without a token).
    with pytest.raises(ChannelConfigError, match="'chat'"):
        load_targets({"chat": ("discord://", "channels.apprise.urls")}, 5.0)


def test_apprises_socket_timeouts_are_capped_just_above_ours() -> None:
    long = _load("json://127.0.0.1:9/x?cto=100&rto=100", 5.0)
    assert (long.socket_connect_timeout, long.socket_read_timeout) == (
        5.0 + SOCKET_GRACE_SECONDS, 5.0 + SOCKET_GRACE_SECONDS)
    short = _load("json://127.0.0.1:9/x?cto=2&rto=3", 5.0)
    assert (short.socket_connect_timeout, short.socket_read_timeout) == (2.0, 3.0)


def test_targets_keep_the_plugins_limits() -> None:
    targets = load_targets({"ops": ("json://127.0.0.1:9/x", "channels.apprise.urls")}, 5.0)
    plugin = _load("json://127.0.0.1:9/x", 5.0)
    assert targets["ops"] == Target("json://127.0.0.1:9/x", plugin.body_maxlen,
                                    plugin.title_maxlen, 0.0)


# --- addresses --------------------------------------------------------------------------


def test_to_is_an_alias() -> None:
    channel = AppriseChannel({"ops": TARGET, "db": TARGET})
    assert channel.validate_address("ops") == "ops"
    with pytest.raises(AddressError) as err:
        channel.validate_address("nobody")
    assert err.value.message.endswith("(one of: db, ops).")
    assert SECRET not in err.value.message


@pytest.mark.parametrize("to", [URL, "json://127.0.0.1/x", "mailto:someone@example.com",
                                "discord://webhook_id/webhook_token"])
def test_a_url_as_to_is_refused_without_echo(to: str) -> None:
    channel = AppriseChannel({"ops": TARGET})
    with pytest.raises(AddressError) as err:
        channel.validate_address(to)
    assert "never a URL" in err.value.message and to not in err.value.message


async def test_an_alias_gone_from_the_settings_fails_for_that_recipient() -> None:
    channel = AppriseChannel({"ops": TARGET}, notifier=lambda call: True)
    with pytest.raises(PermanentDeliveryError) as err:
        await channel.send(_message(to="gone"))
    assert (err.value.reason.value, err.value.scope.value) == ("invalid_recipient", "recipient")
    await channel.close()


# --- what is sent -------------------------------------------------------------------------


@pytest.mark.parametrize(("severity", "status", "expected"), [
    ("critical", "firing", NotifyType.FAILURE), ("warning", "firing", NotifyType.WARNING),
    ("info", "firing", NotifyType.INFO), ("critical", "resolved", NotifyType.SUCCESS)])
def test_the_notify_type_follows_severity(severity: str, status: str,
                                          expected: NotifyType) -> None:
    assert notify_type(_message(severity=severity, status=status)) == expected


async def test_a_long_text_is_cut_to_the_services_limit_with_the_link() -> None:
    calls: list[Call] = []
    small = Target(url=URL, body_maxlen=100, title_maxlen=20, seconds_between=0.0)
    channel = AppriseChannel({"ops": small}, notifier=lambda c: calls.append(c) or True)
    link = "https://agent.example/v1/notifications/ntf_1"
    result = await channel.send(_message("word " * 100, subject="t" * 30, link=link))
    [call] = calls
    assert len(call.body) <= 100 and link in call.body and "truncated" in call.body
    assert len(call.title) <= 20
    assert result.provider_ref == {"alias": "ops", "parts": 1}
    await channel.close()


async def test_split_sends_numbered_parts_in_order() -> None:
    calls: list[Call] = []
    small = Target(url=URL, body_maxlen=100, title_maxlen=250, seconds_between=0.0)
    channel = AppriseChannel({"ops": small}, notifier=lambda c: calls.append(c) or True)
    result = await channel.send(_message("word " * 50, overflow="split"))
    assert len(calls) > 1 and calls[0].body.startswith(f"(1/{len(calls)})")
    assert all(len(c.body) <= 100 for c in calls)
    assert result.provider_ref == {"alias": "ops", "parts": len(calls)}
    await channel.close()


async def test_a_service_without_titles_keeps_room_for_the_title_in_the_body() -> None:
    calls: list[Call] = []
    untitled = Target(url=URL, body_maxlen=100, title_maxlen=0, seconds_between=0.0)
    channel = AppriseChannel({"ops": untitled}, notifier=lambda c: calls.append(c) or True)
    await channel.send(_message("word " * 100, subject="db1 disk"))
    [call] = calls
    assert len(call.title) + 2 + len(call.body) <= 100
    await channel.close()


def test_rates_follow_apprises_own_spacing() -> None:
    slow = Target(url=URL, body_maxlen=0, title_maxlen=0, seconds_between=2.0)
    channel = AppriseChannel({"ops": TARGET, "sms": slow})
    assert channel.rates("ops") == ()
    [rate] = channel.rates("sms")
    assert (rate.key, rate.per_second, rate.burst) == ("apprise:sms", 0.5, 1.0)
    assert channel.destination_key("sms") == "apprise:sms"


# --- outcomes -----------------------------------------------------------------------------


async def test_true_is_delivered_false_is_retryable() -> None:
    answers = iter([True, False])
    channel = AppriseChannel({"ops": TARGET}, notifier=lambda call: next(answers))
    assert isinstance(await channel.send(_message()), DeliveryResult)
    with pytest.raises(RetryableDeliveryError) as err:
        await channel.send(_message())
    assert (err.value.reason.value, err.value.retry_after) == ("provider_unavailable", None)
    assert "Apprise reported failure" in err.value.details and SECRET not in str(err.value)
    await channel.close()


async def test_an_exception_from_apprise_is_technical_and_hides_its_text(
        logs: io.StringIO) -> None:
    def boom(call: Call) -> bool:
        raise ValueError(f"cannot reach {call.url}")

    channel = AppriseChannel({"ops": TARGET}, notifier=boom,
                             logger=get_logger("channel.apprise"))
    with pytest.raises(AppriseFailed) as err:
        await channel.send(_message())
    # Not a DeliveryError: the dispatcher records a crash as a technical failure.
    assert str(err.value) == "Apprise raised ValueError"
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert SECRET not in logs.getvalue() and "apprise_raised" in logs.getvalue()
    await channel.close()


async def test_a_call_past_the_timeout_is_retryable_and_a_full_pool_defers() -> None:
    gate = threading.Event()

    def hang(call: Call) -> bool:
        gate.wait(5.0)  # bounded: released below
        return True

    channel = AppriseChannel({"ops": TARGET}, max_workers=1, timeout_seconds=0.2,
                             notifier=hang)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RetryableDeliveryError) as first:
            await channel.send(_message())
        assert (first.value.reason.value, first.value.retry_after) == ("timeout", None)
        assert loop.time() - started < 1.0
        # The only worker is held past its deadline: refused at once, waiting asked for.
        assert channel.pool.overrun == 1
        started = loop.time()
        with pytest.raises(RetryableDeliveryError) as second:
            await channel.send(_message())
        assert (second.value.reason.value, second.value.retry_after) == ("throttled", 0.2)
        assert loop.time() - started < 0.1
        gate.set()  # the stuck call returns: its worker is free again
        await wait_until(lambda: channel.pool.running == 0, timeout=5.0)
        assert channel.pool.overrun == 0
        assert isinstance(await channel.send(_message()), DeliveryResult)
    finally:
        gate.set()
        await channel.close()


async def test_a_send_waits_for_a_busy_worker_within_the_timeout() -> None:
    lock = threading.Lock()
    active = peak = 0
    release = threading.Event()

    def work(call: Call) -> bool:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(0.05)  # never set: a short, bounded piece of work
        with lock:
            active -= 1
        return True

    channel = AppriseChannel({"ops": TARGET}, max_workers=2, timeout_seconds=5.0,
                             notifier=work)
    results = await asyncio.gather(*(channel.send(_message()) for _ in range(8)))
    assert all(isinstance(r, DeliveryResult) for r in results)
    assert peak == 2 and channel.pool.running == 0
    await channel.close()


async def test_no_worker_free_within_the_timeout_is_a_deferral() -> None:
    gate = threading.Event()
    channel = AppriseChannel({"ops": TARGET}, max_workers=1, timeout_seconds=0.3,
                             notifier=lambda call: gate.wait(5.0))
    try:
        first = asyncio.ensure_future(channel.send(_message()))
        await wait_until(lambda: channel.pool.running == 1, timeout=5.0)
        # Waits for the worker the first call holds, which outlives this wait too.
        with pytest.raises(RetryableDeliveryError) as err:
            await channel.send(_message())
        assert (err.value.reason.value, err.value.retry_after) == ("throttled", 0.3)
        with pytest.raises(RetryableDeliveryError):
            await first
    finally:
        gate.set()
        await channel.close()


async def test_a_closed_channel_refuses_sends() -> None:
    channel = AppriseChannel({"ops": TARGET}, notifier=lambda call: True)
    await channel.close()
    with pytest.raises(PermanentDeliveryError):
        await channel.send(_message())


def test_settings_defaults() -> None:
    cfg = AppriseSettings()
    assert (cfg.enabled, cfg.urls, cfg.urls_file, cfg.max_workers, cfg.timeout_seconds) == (
        False, {}, None, 4, 30.0)
    assert isinstance(_settings(urls={"ops": URL}).urls["ops"], SecretStr)


def test_urllib3_records_of_apprise_workers_are_dropped_others_kept(
        root_debug: None, logs: io.StringIO) -> None:
    load_targets({"ops": ("json://127.0.0.1:9/x", "channels.apprise.urls")}, 5.0)  # quiets
    log = logging.getLogger("urllib3.connectionpool")

    def emit(text: str) -> None:
        log.warning("Failed to parse headers (url=%s)", text)

    worker = threading.Thread(target=emit, args=(f"http://h/{SECRET}",), name="apprise-worker_0")
    worker.start()
    worker.join(5.0)
    other = threading.Thread(target=emit, args=("http://h/other-code",), name="fcm-token")
    other.start()
    other.join(5.0)
    assert SECRET not in logs.getvalue() and "other-code" in logs.getvalue()
