"""Signed, expiring acknowledge links, ``{public_url}/ack/{token}``, for the channels with no
chat buttons (email, SMS, WhatsApp, ntfy, Teams).

A token names the notification and the member it was issued to, and when it expires
(``ack.link_ttl``), signed with HMAC-SHA256 under a secret the agent keeps in its data dir. The
page a ``GET`` shows never changes anything (mail scanners and chat unfurlers fetch links); its
form ``POST``s back with a CSRF value bound to the token, so only someone who opened the page
acknowledges. No cookie, no ``Origin`` header needed: mail clients open links in any browser.

ntfy's one-tap ``http`` action carries the form body itself (``AckLink.form``). That gives no
one more than the link does (opening the page shows the same value); what the CSRF value keeps
out is a fetch of the bare URL, and an ntfy client makes the request only when tapped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from agent.channels.base import AckLink
from agent.clock import Clock
from agent.domain import Notification

CSRF_FIELD = "csrf"


class LinkRefused(Exception):
    """A token that is not ours, or no longer valid; ``expired`` says which."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclass(frozen=True, slots=True)
class Claim:
    notification_id: str
    member_id: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AckLinks:
    def __init__(self, secret: Callable[[], bytes], base_url: str, ttl: float,
                 clock: Clock) -> None:
        self._secret_source = secret
        self._secret: bytes | None = None
        self._base = base_url.rstrip("/")
        self._ttl = ttl
        self._clock = clock

    def _key(self) -> bytes:
        if self._secret is None:  # read (or made) on first use: the data dir exists by then
            self._secret = self._secret_source()
        return self._secret

    def _mac(self, purpose: bytes, data: bytes) -> str:
        return _b64(hmac.new(self._key(), purpose + b"\0" + data, hashlib.sha256).digest())

    def link_for(self, n: Notification) -> AckLink | None:
        """The link for a notification about alerts that reached a member; else None."""
        if n.member_id is None or not n.metadata.get("alert_ids"):
            return None
        body = _b64(orjson.dumps({"n": n.id, "m": n.member_id,
                                  "e": int(self._clock.now() + self._ttl)}))
        token = f"{body}.{self._mac(b'link', body.encode())}"
        return AckLink(f"{self._base}/ack/{token}", f"{CSRF_FIELD}={self.csrf(token)}")

    def open(self, token: str) -> Claim:
        """What a token grants; raises LinkRefused."""
        body, _, mac = token.partition(".")
        if not body or not mac or len(token) > 2048:
            raise LinkRefused(expired=False)
        if not hmac.compare_digest(mac.encode(), self._mac(b"link", body.encode()).encode()):
            raise LinkRefused(expired=False)
        try:
            claim = orjson.loads(_unb64(body))
            out = Claim(str(claim["n"]), str(claim["m"]), float(claim["e"]))
        except (ValueError, KeyError, TypeError):
            raise LinkRefused(expired=False) from None
        if out.expires_at <= self._clock.now():
            raise LinkRefused(expired=True)
        return out

    def csrf(self, token: str) -> str:
        """The value the page's form carries back: only a page the agent served has it."""
        return self._mac(b"csrf", token.encode())

    def csrf_ok(self, token: str, value: str) -> bool:
        return hmac.compare_digest(value.encode(), self.csrf(token).encode())
