"""Authentication of inbound hooks: bearer token, basic auth or an HMAC body signature.

Every comparison is constant-time. A source with nothing configured is open, which the daemon
allows only while it listens on loopback (``insecure_sources`` is checked at start).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.settings import ConfigError, SourceSettings, SourcesSettings, read_secret_file


@dataclass(frozen=True, slots=True)
class HookCredentials:
    bearer: bytes | None = None
    basic: bytes | None = None  # the expected "user:password" bytes
    hmac_secret: bytes | None = None
    hmac_header: str = "X-Signature"
    explicit_none: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.bearer or self.basic or self.hmac_secret)


def _secret(value: object, path: object, what: str) -> bytes | None:
    from pathlib import Path

    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value().encode()
    if isinstance(path, Path):
        text = read_secret_file(path)
        if not text:
            raise ConfigError(f"{path}: {what} file is empty")
        return text.encode()
    return None


def credentials_from(s: SourceSettings) -> HookCredentials:
    """Resolve a source's auth settings (reading *_file secrets). Raises ConfigError."""
    a = s.auth
    password = _secret(a.password, a.password_file, "password")
    if (a.username is None) != (password is None):
        raise ConfigError("basic auth needs both username and password")
    return HookCredentials(
        bearer=_secret(a.bearer_token, a.bearer_token_file, "bearer token"),
        basic=(a.username.encode() + b":" + password) if a.username and password else None,
        hmac_secret=_secret(a.hmac_secret, a.hmac_secret_file, "HMAC secret"),
        hmac_header=a.hmac_header,
        explicit_none=a.type == "none",
    )


def authorized(creds: HookCredentials, headers: Mapping[str, str], body: bytes) -> bool:
    """True when any configured method accepts the request (or none is configured)."""
    if not creds.configured:
        return True
    ok = False
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    scheme = scheme.lower()
    if creds.bearer is not None and scheme == "bearer":
        ok |= hmac.compare_digest(value.strip().encode("utf-8", "surrogateescape"), creds.bearer)
    if creds.basic is not None and scheme == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            given = b""
        ok |= hmac.compare_digest(given, creds.basic)
    if creds.hmac_secret is not None:
        sig = headers.get(creds.hmac_header, "").strip().lower().removeprefix("sha256=")
        expected = hmac.new(creds.hmac_secret, body, hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(sig.encode("utf-8", "surrogateescape"), expected.encode())
    return ok


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def insecure_sources(host: str, sources: Iterable[tuple[str, SourceSettings]]) -> list[str]:
    """Enabled sources that would accept anyone although the daemon is reachable off-host."""
    if is_loopback(host):
        return []
    out = []
    for name, s in sources:
        if not s.enabled or s.auth.type == "none":
            continue
        a = s.auth
        if not (a.bearer_token or a.bearer_token_file or a.username or a.hmac_secret
                or a.hmac_secret_file):
            out.append(name)
    return out


@dataclass(frozen=True)
class Hooks:
    """Resolved credentials of every hook source."""

    alertmanager: HookCredentials
    grafana: HookCredentials
    grafana_signing_secret: bytes | None
    generic: dict[str, HookCredentials]
    disabled: frozenset[str]
    # True only on loopback: a source without credentials is open there, refused elsewhere.
    open_allowed: bool = True
    grafana_signature_header: str = "X-Grafana-Alerting-Signature"
    grafana_timestamp_header: str = "X-Grafana-Alerting-Timestamp"
    grafana_require_timestamp: bool = False

    def enabled(self, source: str) -> bool:
        return source not in self.disabled


def hooks_from(sources: SourcesSettings, host: str = "127.0.0.1") -> Hooks:
    """Read every source's secrets once at start. Raises ConfigError naming the source."""

    def creds(name: str, s: SourceSettings) -> HookCredentials:
        try:
            return credentials_from(s)
        except ConfigError as exc:
            raise ConfigError(f"sources.{name}: {exc}") from exc

    g = sources.grafana
    disabled = {n for n, s in (("alertmanager", sources.alertmanager), ("grafana", g))
                if not s.enabled}
    disabled |= {f"generic:{n}" for n, s in sources.generic.items() if not s.enabled}
    return Hooks(
        alertmanager=creds("alertmanager", sources.alertmanager),
        grafana=creds("grafana", g),
        grafana_signing_secret=_secret(g.signing_secret, g.signing_secret_file,
                                       "Grafana signing secret"),
        generic={n: creds(f"generic.{n}", s) for n, s in sources.generic.items()},
        disabled=frozenset(disabled),
        open_allowed=is_loopback(host),
        grafana_signature_header=g.signature_header,
        grafana_timestamp_header=g.timestamp_header,
        grafana_require_timestamp=g.require_timestamp,
    )
