"""The email channel: SMTP through ``aiosmtplib``, with STARTTLS or implicit TLS and optional AUTH.

Each message is one multipart/alternative mail (channels/email_mime.py) to the one address in
``to``; its ``Message-ID`` is ours and is the provider ref, so a later message of the same alert
group is sent as a reply to it (``In-Reply-To``/``References``): mail clients thread the group.
Connections are kept and reused (channels/smtp_pool.py).

The failure table (SMTP reply codes, RFC 5321 section 4.2)::

    connection refused, DNS, TLS handshake, dropped    retryable, network_error
    timeout (connect or any command)                   retryable, timeout
    421, 450 (try later: often a rate limit)           retryable, rate_limited (a wait, no attempt)
    other 4xx (451, 452, 454, ...)                     retryable, provider_unavailable
    5xx on RCPT: 550, 551, 553                         permanent, invalid_recipient, scope recipient
    other 5xx on RCPT                                  permanent, provider_rejected, scope recipient
    5xx on DATA (552 size, 554 content), 552 on MAIL   permanent, provider_rejected, scope message
    5xx on AUTH (535), 530 anywhere, 5xx on MAIL FROM  permanent, provider_rejected, scope channel
    STARTTLS or AUTH not offered when configured       permanent, channel_not_configured, scope
                                                       channel (never sent in clear)

Channel-scoped failures pause the channel (delivery/pause.py). The password (and its base64
forms, as AUTH sends it) is removed from every detail; no log line carries it.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosmtplib
from pydantic import Field, SecretStr

from agent import addresses
from agent.channels import email_mime, http
from agent.channels.base import (
    ChannelConfigError,
    ChannelSettings,
    DeliveryError,
    DeliveryResult,
    ErrorScope,
    Limits,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
    require_text_address,
)
from agent.channels.smtp_pool import SmtpPool
from agent.domain import FailureReason

SETTING = "channels.email"
RATE_CODES = (421, 450)  # "try again later": most often the server's rate limit
RECIPIENT_UNKNOWN = (550, 551, 553)


class EmailSettings(ChannelSettings):
    """``channels.email``."""

    enabled: bool = False
    host: str = "localhost"
    # None: 465 with ``tls``, 587 with ``starttls``, else 25.
    port: int | None = Field(default=None, ge=1, le=65535)
    starttls: bool = False  # upgrade with STARTTLS; a server not offering it is an error
    tls: bool = False  # implicit TLS from the first byte (port 465)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    from_address: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    # A CA bundle (PEM) to trust for the server's certificate instead of the system's.
    ca_file: Path | None = None
    # Open connections kept to the server, each carrying one message at a time.
    max_connections: int = Field(default=2, ge=1, le=100)
    # A kept connection unused this long is closed (QUIT).
    idle_seconds: float = Field(default=30.0, gt=0)


class _NotOffered(Exception):
    """The server does not offer what the settings require (STARTTLS, AUTH)."""


class EmailChannel:
    name = "email"
    local = False
    limits = Limits(max_subject_chars=email_mime.MAX_SUBJECT_CHARS, can_thread=True,
                    overflow="truncate")

    def __init__(self, config: EmailSettings, *, sender: str, password: str | None,
                 tls_context: ssl.SSLContext | None, logger: Any) -> None:
        self._config = config
        self._sender = sender
        self._domain = _ascii_domain(sender)
        self._username = config.username
        self._password = password
        self._tls_context = tls_context
        self._log = logger
        self._port = config.port or (465 if config.tls else 587 if config.starttls else 25)
        self._local_hostname: str | None = None
        self._redact = http.Redactor(_secret_forms(config.username, password))
        self.pool = SmtpPool(self._connect, size=config.max_connections,
                             idle_seconds=config.idle_seconds, timeout=config.timeout_seconds)

    def validate_address(self, to: str) -> str:
        """One email address (syntax only, no DNS): ``invalid_email`` otherwise."""
        require_text_address(to, max_chars=320)
        return addresses.email(to)

    async def send(self, message: Message) -> DeliveryResult:
        mail, ref = email_mime.build(message, self._sender, self._domain)

        async def transaction(conn: aiosmtplib.SMTP) -> None:
            await conn.send_message(mail, sender=self._sender, recipients=[message.to])

        try:
            await self.pool.run(transaction)
        except Exception as exc:
            error = self._classify(exc)
            if error is None:
                raise
            raise error from exc
        return DeliveryResult(provider_ref=ref)

    async def _connect(self) -> aiosmtplib.SMTP:
        """A connection ready for mail: greeted, upgraded to TLS and logged in as configured."""
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        conn = aiosmtplib.SMTP(
            hostname=self._config.host, port=self._port, use_tls=self._config.tls,
            start_tls=False, tls_context=self._tls_context,
            timeout=self._config.timeout_seconds, local_hostname=self._local_hostname)
        await conn.connect()
        try:
            if self._config.starttls:
                await conn.ehlo()
                if not conn.supports_extension("starttls"):
                    raise _NotOffered("the server does not offer STARTTLS "
                                      f"({SETTING}.starttls is true): not sending in clear")
                await conn.starttls()
            if self._username is not None:
                await conn.ehlo()
                if not conn.supports_extension("auth"):
                    raise _NotOffered(f"the server does not offer AUTH ({SETTING}.username "
                                      "is set)")
                await conn.login(self._username, self._password or "")
        except BaseException:
            conn.close()
            raise
        self._log.debug("smtp_connected", host=self._config.host, port=self._port,
                        tls=conn.get_transport_info("sslcontext") is not None)
        return conn

    def _classify(self, exc: BaseException) -> DeliveryError | None:
        """The delivery error for what the pool raised; None for a crash of our own."""
        if isinstance(exc, _NotOffered):
            return PermanentDeliveryError(FailureReason.CHANNEL_NOT_CONFIGURED, str(exc),
                                          scope=ErrorScope.CHANNEL)
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
            return self._reply(exc.recipients[0], "RCPT")
        if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code > 0:
            return self._reply(exc, _stage(exc))
        if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts and the pool's
            return RetryableDeliveryError(FailureReason.TIMEOUT, "SMTP server timed out")
        if isinstance(exc, aiosmtplib.SMTPNotSupported):  # SMTPUTF8 for a non-ASCII address
            return PermanentDeliveryError(FailureReason.INVALID_RECIPIENT,
                                          self._detail(f"SMTP: {exc.message}"),
                                          scope=ErrorScope.RECIPIENT)
        if isinstance(exc, aiosmtplib.SMTPException | OSError):
            # Refused, DNS, TLS handshake, dropped, a malformed reply (code -1).
            what = exc.message if isinstance(exc, aiosmtplib.SMTPException) else (
                exc.strerror or str(exc) or type(exc).__name__)
            return RetryableDeliveryError(FailureReason.NETWORK_ERROR,
                                          self._detail(f"SMTP connection failed: {what}"))
        return None

    def _reply(self, exc: aiosmtplib.SMTPResponseException, stage: str) -> DeliveryError:
        code = exc.code
        details = self._detail(f"SMTP {code} at {stage}: {exc.message}")
        if 400 <= code < 500:
            reason = (FailureReason.RATE_LIMITED if code in RATE_CODES
                      else FailureReason.PROVIDER_UNAVAILABLE)
            return RetryableDeliveryError(reason, details)
        if code == 530 or stage in ("AUTH", "EHLO", "connect", "command") or (
                stage == "MAIL" and code != 552):
            # Credentials, TLS or our sender refused: every message would fail alike.
            return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details,
                                          scope=ErrorScope.CHANNEL)
        if stage == "RCPT":
            reason = (FailureReason.INVALID_RECIPIENT if code in RECIPIENT_UNKNOWN
                      else FailureReason.PROVIDER_REJECTED)
            return PermanentDeliveryError(reason, details, scope=ErrorScope.RECIPIENT)
        return PermanentDeliveryError(FailureReason.PROVIDER_REJECTED, details)

    def _detail(self, text: str) -> str:
        return self._redact(" ".join(text.split()))[:300]

    async def close(self) -> None:
        await self.pool.close()


def _stage(exc: aiosmtplib.SMTPResponseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return "RCPT"
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "MAIL"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "DATA"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "AUTH"
    if isinstance(exc, aiosmtplib.SMTPHeloError):
        return "EHLO"
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return "connect"
    return "command"  # STARTTLS refused: the other commands of a send raise the above


def _secret_forms(username: str | None, password: str | None) -> list[str]:
    """The password as written and as AUTH PLAIN and AUTH LOGIN send it (base64)."""
    if not password:
        return []
    forms = [password, base64.b64encode(password.encode()).decode()]
    if username is not None:
        plain = f"\0{username}\0{password}".encode()
        forms.append(base64.b64encode(plain).decode())
    return forms


def _ascii_domain(address: str) -> str:
    domain = address.rpartition("@")[2]
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "alert-agent.invalid"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ChannelConfigError(f"{SETTING}.ca_file cannot be read as a PEM CA bundle "
                                 f"({type(exc).__name__})") from None


def build_email(config: EmailSettings,
                secret: Callable[[SecretStr | None, Path | None, str], str | None],
                logger: Any) -> EmailChannel:
    """The channel from its settings; a ChannelConfigError names the setting that is wrong."""
    if config.starttls and config.tls:
        raise ChannelConfigError(f"{SETTING}.starttls and {SETTING}.tls are exclusive: "
                                 "STARTTLS upgrades a plain connection (587), tls is TLS from "
                                 "the start (465)")
    if not config.from_address:
        raise ChannelConfigError(f"{SETTING}.from_address is required when the channel is "
                                 "enabled")
    try:
        sender = addresses.email(config.from_address)
    except addresses.AddressError as exc:
        raise ChannelConfigError(f"{SETTING}.from_address: {exc.message}") from None
    if not config.host.strip():
        raise ChannelConfigError(f"{SETTING}.host must not be blank")
    password = secret(config.password, config.password_file, f"{SETTING}.password")
    if config.username is not None and not password:
        raise ChannelConfigError(f"{SETTING}.username is set without {SETTING}.password "
                                 "(or password_file)")
    if config.username is None and password:
        raise ChannelConfigError(f"{SETTING}.password is set without {SETTING}.username")
    tls = _tls_context(config.ca_file) if config.tls or config.starttls else None
    if config.username is not None and tls is None and not _loopback(config.host):
        # Allowed (a relay on a trusted network), but the operator should know.
        logger.warning("smtp_login_without_tls", host=config.host,
                       hint=f"set {SETTING}.starttls or {SETTING}.tls")
    return EmailChannel(config, sender=sender, password=password, tls_context=tls,
                        logger=logger)
