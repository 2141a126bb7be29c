"""A real SMTP server for the email channel's tests: aiosmtpd in the test's own event loop.

On 127.0.0.1 with a random port, plain, with STARTTLS (``starttls=`` a server SSLContext) or with
implicit TLS (``implicit_tls=``), with AUTH when ``users`` are given. It stores each message it
accepts by recipient, parsed with the stdlib parser (``emu.messages["ana@example.com"]``), counts
connections (opened, open now) and can be told to answer, at a stage (``MAIL``, ``RCPT``,
``DATA``, ``AUTH``) and for the next N times, a reply of its own (``"550 5.1.1 No such user"``),
``close`` (drop the connection) or ``stall`` (answer nothing until released or STALL_SECONDS).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.emulators.failure_plan import STALL_SECONDS


@dataclass
class Received:
    """One accepted message."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    connection: int  # which connection carried it (1 for the first opened)
    tls: bool
    user: str | None
    at: float  # monotonic
    _parsed: EmailMessage | None = None

    @property
    def message(self) -> EmailMessage:
        """The message as the stdlib parser reads it (parsed on first use: the bench's sink
        does not pay for it)."""
        if self._parsed is None:
            parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self._parsed = parsed
        return self._parsed


@dataclass
class _Fault:
    action: str  # an SMTP reply line, "close" or "stall"
    times: int


@dataclass
class SmtpEmulator:
    """State and behaviour of the server; ``serve()`` runs it."""

    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    users: dict[str, str] | None = None
    messages: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))
    connections: int = 0  # opened so far
    stages: list[str] = field(default_factory=list)  # MAIL, RCPT, DATA, AUTH as they came
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)  # (user, password)
    _faults: dict[str, list[_Fault]] = field(default_factory=lambda: defaultdict(list))
    _live: set[_Server] = field(default_factory=set)
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._live)

    def all(self) -> list[Received]:
        return sorted((m for ms in self.messages.values() for m in ms), key=lambda m: m.at)

    def fail(self, stage: str, action: str, times: int = 1) -> None:
        """Answer ``action`` at ``stage`` for its next ``times`` commands."""
        self._faults[stage].append(_Fault(action, times))

    def drop_all(self) -> None:
        """Close every open connection (a server restart, its idle timeout)."""
        for server in list(self._live):
            if server.transport is not None:
                server.transport.close()

    def _fault(self, stage: str) -> str | None:
        self.stages.append(stage)
        faults = self._faults[stage]
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault.action

    async def _act(self, server: SMTP, stage: str) -> str | None:
        """The reply a fault at ``stage`` makes; None to go on normally."""
        action = self._fault(stage)
        if action == "close":
            if server.transport is not None:
                server.transport.close()
            return "421 4.3.0 closing"  # never read: the connection is gone
        if action == "stall":
            await asyncio.wait([asyncio.ensure_future(self._release.wait())],
                               timeout=STALL_SECONDS)
        elif action is not None:
            return action
        return None

    # -- aiosmtpd hooks --------------------------------------------------------------------

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        reply = await self._act(server, "MAIL")
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        reply = await self._act(server, "RCPT")
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await self._act(server, "DATA")
        if reply is not None:
            return reply
        raw = envelope.original_content or b""
        assert isinstance(server, _Server)
        user = session.auth_data.login.decode() if isinstance(
            session.auth_data, LoginPassword) else None
        got = Received(envelope.mail_from or "", list(envelope.rcpt_tos), raw, server.number,
                       _over_tls(server), user, time.monotonic())
        for rcpt in envelope.rcpt_tos:
            self.messages[rcpt].append(got)
        return "250 2.0.0 OK: queued"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.auth_attempts.append((user, password))
        action = self._fault("AUTH")
        if action is not None:
            return AuthResult(success=False, handled=False, message=action)
        ok = self.users is not None and self.users.get(user) == password
        # handled=False: aiosmtpd answers the refusal (535) itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # -- running ---------------------------------------------------------------------------

    def _factory(self) -> _Server:
        self.connections += 1
        kwargs: dict[str, Any] = {}
        if self.users is not None:
            kwargs["authenticator"] = self._authenticate
            # A plain test server offers AUTH without TLS (the client is what is tested).
            kwargs["auth_require_tls"] = self.starttls is not None
        server = _Server(self, self.connections, hostname="smtp.test", tls_context=self.starttls,
                         loop=asyncio.get_running_loop(), **kwargs)
        return server

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[int]:
        """Run on 127.0.0.1; yields the port."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(self._factory, "127.0.0.1", 0, ssl=self.implicit_tls)
        try:
            yield server.sockets[0].getsockname()[1]
        finally:
            self._release.set()
            server.close()
            self.drop_all()
            await server.wait_closed()


def _over_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _Server(SMTP):
    """aiosmtpd's protocol, telling the emulator which connections are open."""

    def __init__(self, emu: SmtpEmulator, number: int, **kwargs: Any) -> None:
        super().__init__(emu, **kwargs)
        self.emu = emu
        self.number = number

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.emu._live.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.emu._live.discard(self)
        super().connection_lost(error)


@asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A server that accepts and never greets (a stalled SMTP server); yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # until the client goes away

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()


@asynccontextmanager
async def garbage_server() -> AsyncIterator[int]:
    """A server that greets with a line that is not SMTP and closes; yields its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOT SMTP AT ALL\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
