"""A Firebase Cloud Messaging emulator: Google's OAuth 2 token endpoint and FCM HTTP v1
``messages:send``, on 127.0.0.1.

As Google does (RFC 7523, "OAuth 2.0 for Server to Server Applications", FCM reference):

- ``POST /token``, form-encoded ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` and
  ``assertion``: an RS256 JWT whose signature is checked with the public key of the throwaway
  service account made here (``ServiceAccountKey``), with ``iss`` that account's email, ``aud``
  ``https://oauth2.googleapis.com/token``, ``scope`` FCM's, ``iat`` within 5 minutes of now
  and ``exp`` at most an hour after it. Else ``400 {"error": "invalid_grant" | ...,
  "error_description": ...}``. Answers ``{"access_token", "expires_in", "token_type":
  "Bearer"}``; tokens can be expired or revoked.
- ``POST /v1/projects/{project}/messages:send`` with ``Authorization: Bearer <token>``: a token
  not issued, expired or revoked is ``401 UNAUTHENTICATED``; another project ``403
  PERMISSION_DENIED``; the body must be ``{"message": {...}}`` with a ``token`` of FCM's
  characters, known fields only, string ``data`` values, ``android.priority`` normal/high,
  ``apns-collapse-id`` of at most 64 bytes and a payload (the message less its token) of at most
  4,096 bytes, else ``400 INVALID_ARGUMENT``. Answers ``{"name":
  "projects/{project}/messages/{id}"}``.
- Errors in FCM's v1 body (``error.code``, ``message``, ``status``, ``details`` with an
  ``FcmError``): scheduled ``unregistered`` (404), ``sender_id_mismatch`` (403),
  ``invalid_argument`` (400), ``third_party_auth`` (401), ``unauthenticated`` (401, no FcmError),
  ``429`` (QUOTA_EXCEEDED, with ``Retry-After`` when asked), ``5xx`` (503 UNAVAILABLE, or 500
  INTERNAL), ``stall`` and ``malformed``; ``unregistered``/``foreign`` device sets answer the
  first two for those tokens. The token endpoint has its own plan (``token_failures``:
  ``invalid_grant``, ``429``, ``5xx``, ``stall``, ``malformed``).

``emu.messages[device_token]`` is every message received for a device; ``emu.shown(token)`` is
the notification drawer: a message with the tag of an earlier one replaces it.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.emulators.failure_plan import FailurePlan, stall, truncated
from tests.helpers import serve

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PAYLOAD_LIMIT = 4096
DEVICE_TOKEN = re.compile(r"[A-Za-z0-9_:-]{1,4096}")
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
                  "token", "topic", "condition"}
SEND_PATH = re.compile(r"/v1/projects/([^/]+)/messages:send")
_KEY: rsa.RSAPrivateKey | None = None


def _throwaway_key() -> rsa.RSAPrivateKey:
    global _KEY
    if _KEY is None:  # one per test process: making a 2048-bit key takes a while
        _KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEY


@dataclass
class ServiceAccountKey:
    """A throwaway service account, as the Firebase console downloads it."""

    token_uri: str
    project_id: str = "alert-agent-test"
    client_email: str = "fcm-sender@alert-agent-test.iam.gserviceaccount.com"
    private_key_id: str = "0123456789abcdef0123456789abcdef01234567"
    key: rsa.RSAPrivateKey = field(default_factory=_throwaway_key)

    @property
    def pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    def info(self) -> dict[str, str]:
        return {
            "type": "service_account", "project_id": self.project_id,
            "private_key_id": self.private_key_id, "private_key": self.pem,
            "client_email": self.client_email, "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(self.info(), indent=2))
        path.chmod(0o600)
        return path


@dataclass
class Sent:
    """One message FCM accepted for a device."""

    name: str
    title: str
    body: str
    tag: str | None
    collapse_id: str | None
    android_priority: str
    apns_priority: str | None
    data: dict[str, str]
    payload_bytes: int


@dataclass
class Request:
    path: str
    status: int  # 0 until answered
    at: float


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _fcm_error(status: int, grpc: str, message: str, code: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": grpc}
    if code is not None:
        error["details"] = [{"@type": FCM_ERROR, "errorCode": code}]
    return web.json_response({"error": error}, status=status, headers=headers)


def _invalid(message: str) -> web.Response:
    return _fcm_error(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT")


def _oauth_error(error: str, description: str, status: int = 400) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


@dataclass
class FcmEmulator:
    account: ServiceAccountKey
    expires_in: int = 3599
    # Device tokens FCM no longer knows (404 UNREGISTERED) or that belong to another project's
    # sender (403 SENDER_ID_MISMATCH).
    unregistered: set[str] = field(default_factory=set)
    foreign: set[str] = field(default_factory=set)
    messages: dict[str, list[Sent]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry (monotonic)
    requests: list[Request] = field(default_factory=list)
    failures: FailurePlan = field(default_factory=FailurePlan)  # messages:send
    token_failures: FailurePlan = field(default_factory=FailurePlan)
    mints: int = 0
    assertions: list[dict[str, Any]] = field(default_factory=list)  # decoded JWT claims
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run on 127.0.0.1 (random port); yields the base URL."""
        async with serve(self.handle) as url:
            try:
                yield url
            finally:
                self.failures.release.set()
                self.token_failures.release.set()

    @property
    def sends(self) -> int:
        return sum(1 for r in self.requests if r.path != "/token")

    def expire_all(self) -> None:
        """Every access token issued so far expires now."""
        self.tokens = dict.fromkeys(self.tokens, 0.0)

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    def shown(self, device: str) -> list[Sent]:
        """The device's notification drawer: one entry per tag (the latest), untagged ones
        each on their own."""
        drawer: list[Sent] = []
        for sent in self.messages.get(device, []):
            drawer = [s for s in drawer if sent.tag is None or s.tag != sent.tag]
            drawer.append(sent)
        return drawer

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = Request(request.path, 0, time.monotonic())  # counted on arrival (a stall too)
        self.requests.append(seen)
        if request.path == "/token" and request.method == "POST":
            resp = await self._token(request, body)
        elif SEND_PATH.fullmatch(request.path) and request.method == "POST":
            resp = await self._send(request, body)
        else:
            resp = _fcm_error(404, "NOT_FOUND", "The requested URL was not found.")
        seen.status = resp.status
        return resp

    # --- the token endpoint ---------------------------------------------------------------

    async def _token(self, request: web.Request, body: bytes) -> web.StreamResponse:
        fault = self.token_failures.take()
        if fault is not None:
            if fault.kind == "invalid_grant":
                return _oauth_error("invalid_grant", "Invalid JWT Signature.")
            return await self._common_fault(request, fault.kind, fault.retry_after, fault.status,
                                            oauth=True)
        if request.content_type != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request", "Bad Request")
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        if form.get("grant_type") != JWT_GRANT:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type: "
                                + form.get("grant_type", ""))
        problem = self._check_assertion(form.get("assertion", ""))
        if problem is not None:
            return _oauth_error("invalid_grant", problem)
        token = "ya29.emu_" + secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.expires_in
        self.mints += 1
        return web.json_response({"access_token": token, "expires_in": self.expires_in,
                                  "token_type": "Bearer"})

    def _check_assertion(self, jwt: str) -> str | None:
        parts = jwt.split(".")
        if len(parts) != 3:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except ValueError:
            return "Invalid JWT: malformed."
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            return "Invalid JWT: unsupported algorithm."
        try:
            self.account.key.public_key().verify(
                signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(),
                hashes.SHA256())
        except InvalidSignature:
            return "Invalid JWT Signature."
        self.assertions.append({"header": header, "claims": claims})
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if claims.get("iss") != self.account.client_email:
            return "Invalid grant: account not found"
        if claims.get("aud") != GOOGLE_TOKEN_URI:
            return "Invalid JWT: Failed audience check."
        if SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid OAuth scope or ID token audience provided."
        if not isinstance(iat, int) or not isinstance(exp, int) or abs(iat - now) > 300 \
                or exp <= now or exp - iat > 3600:
            return ("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                    "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        return None

    # --- messages:send --------------------------------------------------------------------

    async def _send(self, request: web.Request, body: bytes) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme != "Bearer" or self.tokens.get(token, 0.0) <= time.monotonic():
            return _fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                              "credentials. Expected OAuth 2 access token, login cookie or "
                              "other valid authentication credential.")
        match = SEND_PATH.fullmatch(request.path)
        assert match is not None
        if match.group(1) != self.account.project_id:
            return _fcm_error(403, "PERMISSION_DENIED", "Permission "
                              "'cloudmessaging.messages.create' denied on resource")
        fault = self.failures.take()
        if fault is not None:
            return await self._send_fault(request, fault.kind, fault.retry_after, fault.status)
        try:
            payload = json.loads(body)
        except ValueError:
            return _fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict) or set(payload) != {"message"}:
            return _fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. "
                              "Unknown name or missing \"message\".")
        return self._deliver(message)

    def _deliver(self, message: dict[str, Any]) -> web.Response:
        unknown = set(message) - MESSAGE_FIELDS
        if unknown:
            return _fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received. "
                              f"Unknown name \"{sorted(unknown)[0]}\" at 'message'")
        device = message.get("token")
        if not isinstance(device, str) or not DEVICE_TOKEN.fullmatch(device):
            return _invalid("The registration token is not a valid FCM registration token")
        if device in self.unregistered:
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                              "UNREGISTERED")
        if device in self.foreign:
            return _fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                              "SENDER_ID_MISMATCH")
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return _invalid("Invalid value at 'message.data[0].value' (TYPE_STRING)")
        android = message.get("android", {})
        priority = android.get("priority", "normal")
        if priority not in ("normal", "high"):
            return _invalid(f"Invalid value at 'message.android.priority' ({priority})")
        headers = message.get("apns", {}).get("headers", {})
        collapse = headers.get("apns-collapse-id")
        if collapse is not None and (not isinstance(collapse, str)
                                     or len(collapse.encode()) > 64):
            return _invalid("apns-collapse-id must be at most 64 bytes")
        rest = {k: v for k, v in message.items() if k != "token"}
        size = len(json.dumps(rest, separators=(",", ":"), ensure_ascii=False).encode())
        if size > PAYLOAD_LIMIT:
            return _invalid("Message is too big")  # Request contains an invalid argument.
        notification = message.get("notification", {})
        name = f"projects/{self.account.project_id}/messages/0:{next(self._ids)}%emu"
        self.messages.setdefault(device, []).append(Sent(
            name, notification.get("title", ""), notification.get("body", ""),
            android.get("notification", {}).get("tag"), collapse, priority,
            headers.get("apns-priority"), dict(data), size))
        return web.json_response({"name": name})

    async def _send_fault(self, request: web.Request, kind: str, retry_after: float | None,
                          status: int | None) -> web.StreamResponse:
        if kind == "unregistered":
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.",
                              "UNREGISTERED")
        if kind == "sender_id_mismatch":
            return _fcm_error(403, "PERMISSION_DENIED", "SenderId mismatch",
                              "SENDER_ID_MISMATCH")
        if kind == "invalid_argument":
            return _invalid("Request contains an invalid argument.")
        if kind == "third_party_auth":
            return _fcm_error(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push "
                              "Service", "THIRD_PARTY_AUTH_ERROR")
        if kind == "unauthenticated":
            return _fcm_error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                              "credentials.")
        return await self._common_fault(request, kind, retry_after, status, oauth=False)

    async def _common_fault(self, request: web.Request, kind: str, retry_after: float | None,
                            status: int | None, *, oauth: bool) -> web.StreamResponse:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        if kind == "429":
            if oauth:
                return web.json_response({"error": "rate_limit_exceeded"}, status=429,
                                         headers=headers)
            return _fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric "
                              "'Send requests'", "QUOTA_EXCEEDED", headers)
        if kind == "5xx":
            code = status or 503
            if oauth:
                return web.json_response({"error": "internal_failure"}, status=code,
                                         headers=headers)
            grpc = "INTERNAL" if code == 500 else "UNAVAILABLE"
            return _fcm_error(code, grpc, "The service is currently unavailable.", grpc,
                              headers)
        if kind == "stall":
            return await stall(self.failures if not oauth else self.token_failures)
        if kind == "malformed":
            return await truncated(request)
        raise ValueError(f"unknown fault {kind!r}")
