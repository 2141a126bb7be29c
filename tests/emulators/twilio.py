"""A Twilio Messages API emulator: ``POST /2010-04-01/Accounts/{sid}/Messages.json`` checked as
Twilio checks it (basic auth, form fields, E.164, WhatsApp addresses, body length), answering
``201`` with a message resource or Twilio's own error body, then posting signed status
callbacks to the message's ``StatusCallback``, signed as Twilio signs them.

``GET /2010-04-01/Accounts/{sid}/Messages/{MessageSid}.json`` answers the message resource with
its current ``status`` and ``error_code`` (``404`` code 20404 for an unknown sid); ``settle()``
moves a message's status as the carrier's report would, without a callback.

State: every message by its ``To`` (``+E164``, without ``whatsapp:``) with its sid, body or
content, segments and current status; numbers that are invalid (21211), landlines (21614) or
unsubscribed (21610); numbers whose delivery fails later (``undelivered``/``failed`` with an
``ErrorCode``); WhatsApp numbers with an open 24-hour session (outside it free text fails with
63016 in the callback, as on Twilio). Failures can be scripted for the next N requests or for a
while: ``429`` (code 20429, ``Retry-After``), ``5xx``, a stall, a malformed (truncated) body.

Use::

    emu = TwilioEmulator()
    async with emu.serve() as api_url:         # channels.twilio.api_url
        ...                                    # the agent sends
        await emu.report_all()                 # queued, sent, delivered callbacks
    emu.messages["+351912345678"][0].body
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.emulators.failure_plan import FailurePlan, stall, truncated

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio_emulator_auth_token_0123456789"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_BODY = 1600
FailureKind = Literal["429", "5xx", "stall", "malformed"]
_GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
           "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXT = set("^{}\\[~]|€\f")
ERRORS = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "The 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21656: (400, "The ContentVariables Parameter is invalid."),
    63007: (400, "Twilio could not find a Channel with the specified From address"),
}


def twilio_signature(token: str, url: str, params: list[tuple[str, str]]) -> str:
    """What Twilio puts in ``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL and the sorted
    POST parameters (name + value), keyed with the auth token."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def count_segments(body: str) -> int:
    """Segments of ``body`` as a carrier counts them (GSM-7 153/160, else UCS-2 67/70)."""
    if all(c in _GSM or c in _GSM_EXT for c in body):
        units, single, per = sum(2 if c in _GSM_EXT else 1 for c in body), 160, 153
    else:
        units, single, per = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / per)


@dataclass
class Callback:
    status: str
    error_code: int | None
    http_status: int  # what the agent answered
    at: float


@dataclass
class StoredMessage:
    sid: str
    to: str  # +E164
    from_: str
    channel: Literal["sms", "whatsapp"]
    body: str | None
    content_sid: str | None
    content_variables: dict[str, str] | None
    segments: int
    status_callback: str | None
    messaging_service_sid: str | None
    status: str = "queued"
    error_code: int | None = None
    callbacks: list[Callback] = field(default_factory=list)


@dataclass
class Received:
    path: str
    form: dict[str, str]
    at: float  # time.monotonic()
    status: int = 0


@dataclass
class TwilioEmulator:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    messages: dict[str, list[StoredMessage]] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)  # 21211
    landlines: set[str] = field(default_factory=set)  # 21614
    unsubscribed: set[str] = field(default_factory=set)  # 21610
    # Numbers whose messages fail after acceptance: number -> (final status, ErrorCode).
    undeliverable: dict[str, tuple[str, int]] = field(default_factory=dict)
    # WhatsApp numbers inside the 24-hour session window (free text allowed).
    whatsapp_sessions: set[str] = field(default_factory=set)
    # Seconds after a 201 to post the callbacks by itself; None: only when report() is called.
    callback_delay: float | None = None
    # Seconds to hold each 201 back: with callback_delay 0 the callbacks then arrive first,
    # before the agent has even read the message's sid (a race Twilio can win too).
    answer_delay: float = 0.0
    # How the emulator signs (tests of refusals change these).
    sign_token: str | None = None
    signed_url: Callable[[str], str] = field(default=lambda url: url)
    plan: FailurePlan = field(default_factory=FailurePlan)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None

    # -- set-up and assertions --------------------------------------------------------------

    def fail(self, kind: FailureKind, *, times: int | None = 1, seconds: float | None = None,
             retry_after: float | None = None, status: int | None = None) -> None:
        """Answer ``kind`` for the next ``times`` requests, or for ``seconds``."""
        self.plan.add(kind, times=times, seconds=seconds, retry_after=retry_after,
                      status=status)

    def all_messages(self) -> list[StoredMessage]:
        return [m for ms in self.messages.values() for m in ms]

    def by_sid(self, sid: str) -> StoredMessage:
        return next(m for m in self.all_messages() if m.sid == sid)

    # -- serving ----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.handle)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages/{msid}.json", self.handle)
        return app

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1; yields the base URL (``api_url``)."""
        server = TestServer(self.app(), host="127.0.0.1")
        await server.start_server()
        self._session = aiohttp.ClientSession()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            self.plan.release.set()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._session.close()
            await server.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        got = Received(request.path, form, time.monotonic())
        self.requests.append(got)
        resp = await self._answer(request, form)
        got.status = resp.status
        return resp

    async def _answer(self, request: web.Request, form: dict[str, str]) -> web.StreamResponse:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _error(20003)
        if request.match_info["sid"] != self.account_sid:
            return _error(20404)
        fault = self.plan.take()
        if fault is not None:
            return await self._fault(request, fault.kind, fault.retry_after, fault.status)
        if request.method == "GET":  # fetch one message: its status as it is now
            found = [m for m in self.all_messages() if m.sid == request.match_info["msid"]]
            return web.json_response(self._resource(found[0])) if found else _error(20404)
        if request.content_type != "application/x-www-form-urlencoded":
            return _error(21604)
        resp = self._create(form)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return resp

    async def _fault(self, request: web.Request, kind: str, retry_after: float | None,
                     status: int | None) -> web.StreamResponse:
        if kind == "429":
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            return _error(20429, headers=headers)
        if kind == "5xx":
            return _error(20500, status=status or 500)
        if kind == "stall":
            return await stall(self.plan)
        return await truncated(request, b'{"sid": "SM')

    def _create(self, form: dict[str, str]) -> web.Response:
        to_field = form.get("To", "")
        if not to_field:
            return _error(21604)
        whatsapp = to_field.startswith("whatsapp:")
        to = to_field.removeprefix("whatsapp:")
        sender = form.get("From", "")
        service = form.get("MessagingServiceSid")
        if not sender and not service:
            return _error(21603)
        if whatsapp != sender.startswith("whatsapp:") and not service:
            return _error(63007)
        if not E164.fullmatch(to) or to in self.invalid:
            return _error(21211, to=to)
        if to in self.landlines and not whatsapp:
            return _error(21614)
        if to in self.unsubscribed:
            return _error(21610)
        body = form.get("Body")
        content_sid = form.get("ContentSid")
        variables: dict[str, str] | None = None
        if content_sid:
            try:
                parsed = orjson.loads(form.get("ContentVariables") or "{}")
            except orjson.JSONDecodeError:
                return _error(21656)
            if not isinstance(parsed, dict) or not all(
                    isinstance(v, str) and v and "\n" not in v for v in parsed.values()):
                return _error(21656)
            variables = parsed
        elif not body:
            return _error(21602)
        if body is not None and len(body) > MAX_BODY:
            return _error(21617)
        msg = StoredMessage(
            sid="SM" + secrets.token_hex(16), to=to, from_=sender or (service or ""),
            channel="whatsapp" if whatsapp else "sms", body=body, content_sid=content_sid,
            content_variables=variables, segments=count_segments(body or ""),
            status_callback=form.get("StatusCallback"), messaging_service_sid=service)
        self.messages.setdefault(to, []).append(msg)
        if self.callback_delay is not None and msg.status_callback:
            self._spawn(self._report_later(msg, self.callback_delay))
        return web.json_response(self._resource(msg), status=201)

    def _resource(self, m: StoredMessage) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC), usegmt=True).replace("GMT", "+0000")
        prefix = "whatsapp:" if m.channel == "whatsapp" else ""
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{m.sid}"
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": m.body or "",
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": m.error_code, "error_message": None,
            "from": m.from_, "messaging_service_sid": m.messaging_service_sid,
            "num_media": "0", "num_segments": str(m.segments), "price": None,
            "price_unit": "USD", "sid": m.sid, "status": m.status,
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": prefix + m.to,
            "uri": f"{uri}.json",
        }

    # -- status callbacks -------------------------------------------------------------------

    def outcome_of(self, m: StoredMessage) -> list[tuple[str, int | None]]:
        """The statuses Twilio reports for ``m``, in order."""
        if m.channel == "whatsapp" and m.content_sid is None and m.to not in self.whatsapp_sessions:
            return [("queued", None), ("failed", 63016)]
        final = self.undeliverable.get(m.to)
        if final is not None:
            return [("queued", None), ("sent", None), (final[0], final[1])]
        return [("queued", None), ("sent", None), ("delivered", None)]

    async def report(self, m: StoredMessage,
                     statuses: list[tuple[str, int | None]] | None = None) -> list[int]:
        """Post ``m``'s status callbacks (its outcome by default); the agent's answers."""
        answers = []
        for status, code in statuses if statuses is not None else self.outcome_of(m):
            answers.append(await self.post_callback(m, status, code))
        return answers

    def settle(self, m: StoredMessage, status: str | None = None,
               code: int | None = None) -> None:
        """The carrier reported to Twilio, but no callback reaches the agent (it was down;
        Twilio does not retry a callback): only a fetch of the message sees the status, by
        default its outcome's last."""
        if status is None:
            status, code = self.outcome_of(m)[-1]
        m.status, m.error_code = status, code

    async def report_all(self) -> None:
        """Post the callbacks of every message that has not reported yet."""
        for m in self.all_messages():
            if not m.callbacks and m.status_callback:
                await self.report(m)

    async def post_callback(self, m: StoredMessage, status: str, code: int | None = None,
                            extra: dict[str, str] | None = None) -> int:
        """Post one signed status callback; the agent's HTTP status."""
        assert m.status_callback is not None and self._session is not None
        prefix = "whatsapp:" if m.channel == "whatsapp" else ""
        params = [("AccountSid", self.account_sid), ("ApiVersion", "2010-04-01"),
                  ("From", m.from_), ("MessageSid", m.sid), ("MessageStatus", status),
                  ("SmsSid", m.sid), ("SmsStatus", status), ("To", prefix + m.to)]
        if m.messaging_service_sid:
            params.append(("MessagingServiceSid", m.messaging_service_sid))
        if m.channel == "whatsapp":
            params += [("ChannelPrefix", "whatsapp"), ("ChannelToAddress", m.to)]
        if code is not None:
            params.append(("ErrorCode", str(code)))
        params += list((extra or {}).items())
        token = self.sign_token if self.sign_token is not None else self.auth_token
        sig = twilio_signature(token, self.signed_url(m.status_callback), params)
        async with self._session.post(
                m.status_callback, data=params,
                headers={"X-Twilio-Signature": sig, "User-Agent": "TwilioProxy/1.1"}) as resp:
            await resp.read()
            answer = resp.status
        m.status, m.error_code = status, code
        m.callbacks.append(Callback(status, code, answer, time.monotonic()))
        return answer

    async def _report_later(self, m: StoredMessage, delay: float) -> None:
        await asyncio.sleep(delay)  # Twilio's callbacks come after the 201, never before
        await self.report(m)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _error(code: int, *, status: int | None = None, headers: dict[str, str] | None = None,
           **fmt: str) -> web.Response:
    http_status, message = ERRORS[code]
    status = status or http_status
    return web.json_response(
        {"code": code, "message": message.format(**fmt), "status": status,
         "more_info": f"https://www.twilio.com/docs/errors/{code}"},
        status=status, headers=headers)
