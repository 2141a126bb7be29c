"""A Microsoft Teams Workflows webhook emulator: flows made from "Post to a channel when a
webhook request is received", on 127.0.0.1.

It checks what a flow and the Teams connector check: the flow id in the path and the ``sig``
signature (``401 DirectApiAuthorizationRequired`` / ``DirectApiInvalidAuthorizationSignature``
as Logic Apps answers them, ``404 WorkflowNotFound`` for an unknown flow), a JSON body with
``type: message`` and adaptive card attachments whose content is an AdaptiveCard with a
``version`` and a ``body`` (``400 TriggerInputSchemaMismatch`` otherwise), and the connector's
~28 KB message limit (``413 RequestEntityTooLarge``, "Request Entity too large"). A real flow
answers 202 first and fails later, silently; the emulator refuses at once so that a budget bug
shows in tests. Success answers ``202`` (empty), ``200`` (empty) or ``200`` with the body ``1``
(``answer``). Posted cards are kept per webhook name, in order.

    emu = TeamsEmulator()
    async with emu.serve() as base:
        url = emu.add_webhook("ops")           # the full webhook URL (with its sig)
        ...
        emu.cards["ops"]                      # [PostedCard, ...]
        emu.failures.add("429", times=2, retry_after=3)
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from tests.emulators.failure_plan import FailurePlan, stall, truncated
from tests.helpers import serve

# The Teams connector's message size limit, "about 28 KB" (Microsoft Teams connector reference,
# known issues and limitations): the stricter reading, 28,000 bytes of the webhook body.
MAX_BYTES = 28_000
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
Answer = Literal["202", "200", "200-1"]


@dataclass
class PostedCard:
    """One card as the flow would post it to the Teams channel."""

    content: dict[str, Any]
    size: int  # bytes of the webhook body
    at: float  # time.monotonic() of arrival

    @property
    def texts(self) -> list[str]:
        """The text of every TextBlock, in order."""
        return [b.get("text", "") for b in self.content.get("body", [])
                if isinstance(b, dict) and b.get("type") == "TextBlock"]

    @property
    def urls(self) -> list[str]:
        """The targets of the card's Action.OpenUrl buttons."""
        return [a.get("url", "") for a in self.content.get("actions", [])
                if isinstance(a, dict) and a.get("type") == "Action.OpenUrl"]


@dataclass
class Request:
    method: str
    path: str
    status: int
    at: float


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


@dataclass
class TeamsEmulator:
    answer: Answer = "202"
    max_bytes: int = MAX_BYTES
    base_url: str = ""
    # flow id -> (name, sig)
    flows: dict[str, tuple[str, str]] = field(default_factory=dict)
    cards: dict[str, list[PostedCard]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    failures: FailurePlan = field(default_factory=FailurePlan)

    def add_webhook(self, name: str) -> str:
        """A new flow for the Teams channel ``name``; its webhook URL (the sig included)."""
        flow = secrets.token_hex(16)
        sig = secrets.token_urlsafe(32)
        self.flows[flow] = (name, sig)
        self.cards.setdefault(name, [])
        return (f"{self.base_url}/workflows/{flow}/triggers/manual/paths/invoke"
                f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}")

    def sig(self, name: str) -> str:
        """The signature of webhook ``name`` (a secret tests check for leaks)."""
        return next(s for n, s in self.flows.values() if n == name)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Run on 127.0.0.1 (random port); yields the base URL."""
        async with serve(self.handle) as url:
            self.base_url = url
            try:
                yield url
            finally:  # before the server closes: a stalled request ends now
                self.failures.release.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = await self._answer(request, body)
        self.requests.append(Request(request.method, request.path, resp.status,
                                     time.monotonic()))
        return resp

    async def _answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        parts = request.path.strip("/").split("/")
        if (len(parts) != 6 or parts[0] != "workflows" or parts[2:] != [
                "triggers", "manual", "paths", "invoke"] or parts[1] not in self.flows):
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "The trigger accepts POST only.")
        name, sig = self.flows[parts[1]]
        given = request.query.get("sig")
        if not given:
            return _error(401, "DirectApiAuthorizationRequired",
                          "The request must be authenticated only by Shared Access scheme.")
        if not secrets.compare_digest(given, sig):
            return _error(401, "DirectApiInvalidAuthorizationSignature",
                          "The provided signature is not valid.")
        fault = self.failures.take()
        if fault is not None:
            return await self._fault(request, fault.kind, fault.retry_after, fault.status)
        if len(body) > self.max_bytes:
            return _error(413, "RequestEntityTooLarge", "Request Entity too large")
        problem, content = _check(request, body)
        if problem is not None or content is None:
            return _error(400, "TriggerInputSchemaMismatch", problem or "no card")
        self.cards[name].append(PostedCard(content, len(body), time.monotonic()))
        if self.answer == "202":
            return web.Response(status=202)
        return web.Response(status=200, text="1" if self.answer == "200-1" else "")

    async def _fault(self, request: web.Request, kind: str, retry_after: float | None,
                     status: int | None) -> web.StreamResponse:
        if kind == "429":
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return _error(429, "WorkflowTriggerIsThrottled",
                          "The workflow trigger is throttled; retry later.", headers)
        if kind == "5xx":
            return _error(status or 502, "BadGateway", "The flow could not be reached.")
        if kind == "stall":
            return await stall(self.failures)
        if kind == "malformed":
            return await truncated(request)
        if kind == "not_found":  # the flow was deleted
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        if kind == "unauthorized":  # the signature was regenerated
            return _error(401, "DirectApiInvalidAuthorizationSignature",
                          "The provided signature is not valid.")
        raise ValueError(f"unknown fault {kind!r}")


def _check(request: web.Request, body: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, card content): what the template's trigger schema and Teams refuse."""
    if not request.content_type.startswith("application/json"):
        return "Content-Type must be application/json", None
    try:
        data = json.loads(body)
    except ValueError:
        return "the body is not JSON", None
    if not isinstance(data, dict) or data.get("type") != "message":
        return "type must be 'message'", None
    attachments = data.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return "attachments must hold one card", None
    att = attachments[0]
    if not isinstance(att, dict) or att.get("contentType") != CARD_CONTENT_TYPE:
        return f"contentType must be {CARD_CONTENT_TYPE}", None
    return _check_card(att.get("content"))


def _check_card(content: Any) -> tuple[str | None, dict[str, Any] | None]:
    if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
        return "content.type must be AdaptiveCard", None
    if not isinstance(content.get("version"), str):
        return "content.version is required", None
    blocks = content.get("body")
    if not isinstance(blocks, list) or not blocks:
        return "content.body must be a list of elements", None
    for b in blocks:
        if not isinstance(b, dict) or not isinstance(b.get("type"), str):
            return "every body element needs a type", None
        if b["type"] == "TextBlock" and not isinstance(b.get("text"), str):
            return "a TextBlock needs a text", None
    for a in content.get("actions", []):
        if not isinstance(a, dict) or a.get("type") != "Action.OpenUrl" \
                or not isinstance(a.get("url"), str):
            return "an action must be Action.OpenUrl with a url", None
    return None, content
