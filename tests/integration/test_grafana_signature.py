"""Grafana's webhook HMAC (contact point ``hmacConfig``): the header names operators choose, a
timestamp that can be required, and a timestamp from the future told apart from an old one."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from agent.app import create_app
from agent.settings import GrafanaSourceSettings, Settings

Client = TestClient[Any, Any]
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "grafana-firing.json"
RAW = json.dumps(json.loads(SAMPLE.read_text())).encode()
SECRET = b"gsecret"


def signature(stamp: str | None = None, body: bytes = RAW) -> str:
    """As Grafana's HMAC round tripper signs: hex HMAC-SHA256 of ``<unix s>:<body>`` or body."""
    message = body if stamp is None else stamp.encode() + b":" + body
    return hmac.new(SECRET, message, hashlib.sha256).hexdigest()


def now_s(offset: float = 0) -> str:
    return str(int(time.time() + offset))


@pytest.fixture
def grafana_settings(settings: Settings) -> Settings:
    settings.sources.grafana.signing_secret = SecretStr(SECRET.decode())
    return settings


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as c:
        yield c


async def post(c: Client, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    resp = await c.post("/hooks/grafana", data=RAW,
                        headers={"Content-Type": "application/json", **headers})
    return resp.status, await resp.json()


def code(body: dict[str, Any]) -> str:
    return str(body["error"]["code"])


async def test_custom_header_names(grafana_settings: Settings) -> None:
    g = grafana_settings.sources.grafana
    g.timestamp_header = "X-Sent-At"
    g.signature_header = "X-Hub-Sig"
    async with running(grafana_settings) as c:
        ts = now_s()
        status, _ = await post(c, {"X-Hub-Sig": signature(ts), "X-Sent-At": ts})
        assert status == 200
        # The default names are no longer read: the timestamp is not seen, so the signature of
        # "<ts>:<body>" does not verify; a signature in the default header is not looked at.
        status, body = await post(c, {"X-Hub-Sig": signature(ts),
                                       "X-Grafana-Alerting-Timestamp": ts})
        assert (status, code(body)) == (401, "invalid_signature")
        status, body = await post(c, {"X-Grafana-Alerting-Signature": signature()})
        assert (status, code(body)) == (401, "invalid_signature")
        # A timestamp in the configured header is checked for age like the default one.
        old = now_s(-3600)
        status, body = await post(c, {"X-Hub-Sig": signature(old), "X-Sent-At": old})
        assert (status, code(body)) == (401, "stale_signature")


async def test_require_timestamp(grafana_settings: Settings) -> None:
    unsigned_ts = {"X-Grafana-Alerting-Signature": signature()}
    async with running(grafana_settings) as c:
        assert (await post(c, unsigned_ts))[0] == 200  # optional by default
    grafana_settings.sources.grafana.require_timestamp = True
    async with running(grafana_settings) as c:
        status, body = await post(c, unsigned_ts)
        assert (status, code(body)) == (401, "missing_signature_timestamp")
        assert "X-Grafana-Alerting-Timestamp" in body["error"]["message"]
        assert body["error"]["type"] == "authentication_error"
        ts = now_s()
        status, _ = await post(c, {"X-Grafana-Alerting-Signature": signature(ts),
                                   "X-Grafana-Alerting-Timestamp": ts})
        assert status == 200


async def test_future_timestamp_is_not_called_too_old(grafana_settings: Settings) -> None:
    async with running(grafana_settings) as c:
        def signed(ts: str) -> dict[str, str]:
            return {"X-Grafana-Alerting-Signature": signature(ts),
                    "X-Grafana-Alerting-Timestamp": ts}

        status, body = await post(c, signed(now_s(3600)))
        assert (status, code(body)) == (401, "signature_timestamp_in_future")
        assert "future" in body["error"]["message"] and "old" not in body["error"]["message"]
        status, body = await post(c, signed(now_s(-3600)))
        assert (status, code(body)) == (401, "stale_signature")
        assert "too old" in body["error"]["message"]
        # A sender's clock a minute ahead of ours is skew, not an attack.
        assert (await post(c, signed(now_s(60))))[0] == 200
        status, body = await post(c, signed("soon"))
        assert (status, code(body)) == (401, "invalid_signature_timestamp")


def test_settings_validation() -> None:
    g = GrafanaSourceSettings()
    assert (g.signature_header, g.timestamp_header, g.require_timestamp) == (
        "X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Timestamp", False)
    with pytest.raises(ValidationError, match="require_timestamp"):
        GrafanaSourceSettings(require_timestamp=True)  # nothing is signed without a secret
    assert GrafanaSourceSettings(require_timestamp=True, signing_secret_file=Path("/s")) \
        .require_timestamp
    for bad in ("", "X Bad", "X:Bad", "É"):
        with pytest.raises(ValidationError):
            GrafanaSourceSettings(timestamp_header=bad)
        with pytest.raises(ValidationError):
            GrafanaSourceSettings(signature_header=bad)
