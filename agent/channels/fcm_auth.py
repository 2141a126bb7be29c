"""OAuth 2 access tokens for FCM, minted from a service-account key (RFC 7523 JWT bearer grant).

As google-auth does it (google/oauth2/service_account.py ``_make_authorization_grant_assertion``,
google/auth/jwt.py ``encode``, google/oauth2/_client.py ``jwt_grant``): an RS256 JWT with the
header ``{"typ": "JWT", "alg": "RS256", "kid": <private_key_id>}`` and the claims ``iss`` (the
service account's email), ``scope``, ``aud`` (always ``https://oauth2.googleapis.com/token``,
also when the assertion is posted to another token endpoint: google-auth #835, and Google's
"OAuth 2.0 for Server to Server Applications"), ``iat`` and ``exp = iat + 3600``, POSTed
form-encoded as ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>``. The
answer's ``access_token`` is used until ``expires_in`` is nearly over (google-auth refreshes
3 min 45 s before: ``_helpers.REFRESH_THRESHOLD``).

One mint at a time: concurrent sends wait for the same one, and share its failure. Neither the
key nor a token is ever logged or put in an error's details.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from agent.channels import http
from agent.channels.base import (
    ChannelConfigError,
    ErrorScope,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.domain import FailureReason

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600  # google-auth _DEFAULT_TOKEN_LIFETIME_SECS
REFRESH_MARGIN = 225.0  # google-auth REFRESH_THRESHOLD (3 min 45 s)
_SETTING = "channels.fcm.service_account_file"


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The parts of a service-account JSON key the agent uses."""

    project_id: str
    client_email: str
    token_uri: str
    private_key_id: str | None
    key: rsa.RSAPrivateKey
    pem: str  # kept only to redact it

    @classmethod
    def load(cls, path: Path) -> ServiceAccount:
        """Read and check the key file; raises ChannelConfigError naming the setting and what
        is wrong, never the file's content."""
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ChannelConfigError(f"{_SETTING}: {path}: cannot read it: {why}") from None
        try:
            info = json.loads(raw)
        except json.JSONDecodeError as exc:  # its message says where, never what
            raise ChannelConfigError(f"{_SETTING}: {path}: not JSON ({exc.msg} at line "
                                     f"{exc.lineno})") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ChannelConfigError(f"{_SETTING}: {path}: not a service-account key "
                                     "(\"type\": \"service_account\")")
        fields = {}
        for name in ("project_id", "private_key", "client_email", "token_uri"):
            value = info.get(name)
            if not isinstance(value, str) or not value.strip():
                raise ChannelConfigError(f"{_SETTING}: {path}: \"{name}\" is missing")
            fields[name] = value.strip()
        if not fields["token_uri"].startswith(("https://", "http://")):
            raise ChannelConfigError(f"{_SETTING}: {path}: \"token_uri\" is not an http(s) URL")
        try:
            key = serialization.load_pem_private_key(fields["private_key"].encode(), None)
        except (ValueError, TypeError):
            key = None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ChannelConfigError(f"{_SETTING}: {path}: \"private_key\" is not an "
                                     "unencrypted PEM RSA private key")
        kid = info.get("private_key_id")
        return cls(fields["project_id"], fields["client_email"], fields["token_uri"],
                   kid if isinstance(kid, str) and kid else None, key, fields["private_key"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(account: ServiceAccount, now: float) -> str:
    """The signed JWT that asks for an FCM access token (claims as google-auth makes them)."""
    header: dict[str, Any] = {"typ": "JWT", "alg": "RS256"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    iat = int(now)
    claims = {"iat": iat, "exp": iat + ASSERTION_SECONDS, "iss": account.client_email,
              "aud": GOOGLE_TOKEN_URI, "scope": SCOPE}
    signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}".encode()
    signature = account.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{_b64(signature)}"


def _token_error(reply: http.HttpReply) -> None:
    """The token endpoint's refusals: the key itself is refused (``invalid_grant``: revoked or
    deleted key, clock skew; ``invalid_client``...), so every send would fail alike."""
    if 200 <= reply.status < 300 or reply.status in (408, 425, 429) or reply.status >= 500:
        return
    body = reply.json()
    error = body.get("error") if isinstance(body, dict) else None
    description = body.get("error_description") if isinstance(body, dict) else None
    what = f"HTTP {reply.status}"
    if isinstance(error, str):
        what += f" {error[:64]}"
    if isinstance(description, str):
        what += f": {description[:160]}"
    raise PermanentDeliveryError(FailureReason.PROVIDER_REJECTED,
                                 f"FCM token endpoint refused the service account key: {what}",
                                 http_status=reply.status, scope=ErrorScope.CHANNEL)


class AccessTokens:
    """The current access token, minted when there is none or it is about to expire."""

    def __init__(self, account: ServiceAccount, token_url: str,
                 session: Callable[[], aiohttp.ClientSession], timeout: aiohttp.ClientTimeout,
                 *, logger: Any = None, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._account = account
        self._url = token_url
        self._session = session
        self._timeout = timeout
        self._log = logger
        self._wall = wall
        self._monotonic = monotonic
        self._token: str | None = None
        self._refresh_at = 0.0
        self._minting: asyncio.Future[str] | None = None
        self.mints = 0  # successful mints, for tests and logs

    async def get(self) -> str:
        """A valid access token (a cached one, or one minted now, once for every caller)."""
        if self._token is not None and self._monotonic() < self._refresh_at:
            return self._token
        if self._minting is None:
            self._minting = asyncio.ensure_future(self._mint())
            self._minting.add_done_callback(self._minted)
        # Shielded: one caller cancelled must not cancel the mint the others wait for.
        return await asyncio.shield(self._minting)

    def invalidate(self, token: str) -> None:
        """FCM refused ``token``: the next ``get`` mints anew (unless already done)."""
        if self._token == token:
            self._token = None

    def _minted(self, task: asyncio.Future[str]) -> None:
        self._minting = None
        if not task.cancelled():
            task.exception()  # seen: a failure nobody waits for any more is not an error

    async def _mint(self) -> str:
        body = urlencode({"grant_type": JWT_GRANT_TYPE,
                          "assertion": assertion(self._account, self._wall())}).encode()
        redact = http.Redactor([self._account.pem])
        reply = await http.call(
            self._session(), "POST", self._url, data=body, redact=redact, timeout=self._timeout,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body_hook=_token_error, body_in_details=False)
        answer = reply.json()
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise RetryableDeliveryError(FailureReason.PROVIDER_UNAVAILABLE,
                                         "FCM token endpoint answered without an access token",
                                         http_status=reply.status)
        expires_in = answer.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) \
            and expires_in > 0 else float(ASSERTION_SECONDS)
        self._token = token
        # Early enough that no request goes out with a token about to lapse; a very short
        # lifetime (a test's) keeps half of it.
        self._refresh_at = self._monotonic() + max(lifetime - REFRESH_MARGIN, lifetime / 2)
        self.mints += 1
        if self._log is not None:
            self._log.info("fcm_access_token_minted", expires_in=lifetime)
        return token

    async def close(self) -> None:
        minting = self._minting
        if minting is not None:
            minting.cancel()
            await asyncio.gather(minting, return_exceptions=True)
