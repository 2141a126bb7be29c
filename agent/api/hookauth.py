"""Authentication of inbound hooks: bearer token, basic auth or an HMAC body signature.

Every comparison is constant-time. A source with nothing configured is open, which the daemon
allows only while it listens on loopback (``insecure_sources`` is checked at start and on every
reload). Secrets go through ``settings.resolve_secret``: an empty one is a config error, so
"secured" is decided from the credentials as resolved, never from a setting merely being there.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from agent.settings import ConfigError, SourceSettings, SourcesSettings, resolve_secret


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


def _secret(value: SecretStr | None, path: Path | None, what: str) -> bytes | None:
    text = resolve_secret(value, path, what)
    return None if text is None else text.encode()


def credentials_from(s: SourceSettings, where: str) -> HookCredentials:
    """Resolve the auth settings of source ``where`` (``sources.alertmanager``), reading *_file
    secrets. Raises ConfigError naming the setting."""
    a, at = s.auth, f"{where}.auth"
    password = _secret(a.password, a.password_file, f"{at}.password")
    if a.username is not None and not a.username.strip():
        raise ConfigError(f"{at}.username is empty")
    if (a.username is None) != (password is None):
        raise ConfigError(f"{at}: basic auth needs both username and password (or password_file)")
    return HookCredentials(
        bearer=_secret(a.bearer_token, a.bearer_token_file, f"{at}.bearer_token"),
        basic=(a.username.encode() + b":" + password) if a.username and password else None,
        hmac_secret=_secret(a.hmac_secret, a.hmac_secret_file, f"{at}.hmac_secret"),
        hmac_header=a.hmac_header,
        explicit_none=a.type == "none",
    )


def authorized(creds: HookCredentials, headers: Mapping[str, str], body: bytes) -> bool:
    """True when any configured method accepts the request (or none is configured)."""
    if not creds.configured or _header_ok(creds, headers):
        return True
    return signature_ok(creds, headers, body)


def authorized_before_body(creds: HookCredentials, headers: Mapping[str, str]) -> bool | None:
    """Decide from the headers alone where the methods allow: True or False, or ``None`` when
    only an HMAC signature of the body can tell. Lets a stranger be refused unread."""
    if not creds.configured or _header_ok(creds, headers):
        return True
    return None if creds.hmac_secret is not None else False


def _header_ok(creds: HookCredentials, headers: Mapping[str, str]) -> bool:
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
    return ok


def signature_ok(creds: HookCredentials, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the body's HMAC signature verifies (when ``authorized_before_body`` said None)."""
    if creds.hmac_secret is None:
        return False
    sig = headers.get(creds.hmac_header, "").strip().lower().removeprefix("sha256=")
    expected = hmac.new(creds.hmac_secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sig.encode("utf-8", "surrogateescape"), expected.encode())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


def insecure_sources(host: str, hooks: Hooks, generic_names: Iterable[str]) -> list[str]:
    """Enabled sources that would accept anyone although the daemon is reachable off-host.

    Judged from the resolved credentials: a source is secured by a non-empty secret it checks
    (Grafana's own signing secret counts), or opened on purpose with ``auth: {type: none}``.
    """
    if is_loopback(host):
        return []

    def secured(c: HookCredentials | None, extra: bytes | None = None) -> bool:
        return c is not None and (c.configured or c.explicit_none or extra is not None)

    out = [name for name, ok in (
        ("alertmanager", secured(hooks.alertmanager)),
        ("grafana", secured(hooks.grafana, hooks.grafana_signing_secret)),
    ) if hooks.enabled(name) and not ok]
    out += [f"generic.{n}" for n in sorted(generic_names)
            if hooks.enabled(f"generic:{n}") and not secured(hooks.generic.get(n))]
    return out


def hooks_from(sources: SourcesSettings, host: str = "127.0.0.1") -> Hooks:
    """Read every source's secrets (at start and on SIGHUP). Raises ConfigError naming the
    setting."""
    g = sources.grafana
    disabled = {n for n, s in (("alertmanager", sources.alertmanager), ("grafana", g))
                if not s.enabled}
    disabled |= {f"generic:{n}" for n, s in sources.generic.items() if not s.enabled}
    return Hooks(
        alertmanager=credentials_from(sources.alertmanager, "sources.alertmanager"),
        grafana=credentials_from(g, "sources.grafana"),
        grafana_signing_secret=_secret(g.signing_secret, g.signing_secret_file,
                                       "sources.grafana.signing_secret"),
        generic={n: credentials_from(s, f"sources.generic.{n}")
                 for n, s in sources.generic.items()},
        disabled=frozenset(disabled),
        open_allowed=is_loopback(host),
        grafana_signature_header=g.signature_header,
        grafana_timestamp_header=g.timestamp_header,
        grafana_require_timestamp=g.require_timestamp,
    )
