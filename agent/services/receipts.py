"""Delivery receipts: Twilio's status callbacks move a ``sent`` sms or whatsapp notification to
``delivered`` or ``failed``. The handler (api/receipts.py) only reads the request and translates
the answer; the checks and the move are here.

A callback is trusted only when ``X-Twilio-Signature`` verifies with the account's auth token
over the URL Twilio requested (``public_url`` + the path + the query) and the POST parameters.
Intermediate statuses (queued, sending, sent, accepted...) change nothing; a receipt for a
message this agent does not know changes nothing either (after a moment's wait: Twilio can
report before the send is recorded), and is answered like any other.

A callback can also never come: the agent was down when Twilio posted it (Twilio does not
retry a status callback that failed), or there is no ``public_url`` to post to. So a message
still ``sent`` is looked up through the API (``GET .../Messages/{sid}.json``) as it crosses each
age of ``channels.twilio.status_poll_after_seconds`` (10 min, 1 h, 6 h, 24 h): a few calls per
message, none for one whose callback came. When the next lookup is due is kept on the row
(``receipt_check_at``), so a restart, a long round or a clock step skips none and repeats none.
What the lookup says moves the row exactly as the callback would have. After the last age, a
message whose carrier never confirmed (some networks send no delivery reports) stays ``sent``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent.channels import twilio
from agent.channels.base import ChannelSender, DeliveryError, ErrorScope
from agent.clock import Clock
from agent.domain import Status
from agent.observability import Metrics, get_logger
from agent.store import Store
from agent.store.receipts import Awaiting, ReceiptChange

log = get_logger("receipts")
# The channels whose receipts arrive at /hooks/twilio/status (one account signs for both).
TWILIO_CHANNELS = ("sms", "whatsapp")
# How often the agent looks for messages whose callback never came (app.py's job), how many
# rows it reads at a time, and at most how many it looks up per round (the rest stay due).
POLL_INTERVAL_SECONDS = 60.0
POLL_BATCH = 100
POLL_ROUND = 1000
# How long a receipt for an id not (yet) recorded waits for the send to be recorded.
UNKNOWN_WAIT_SECONDS = 2.0
UNKNOWN_POLL_SECONDS = 0.05


@runtime_checkable
class SignedReceipts(Protocol):
    """A channel that can tell a genuine status callback of its provider."""

    def receipt_signature_ok(self, url: str, params: Sequence[tuple[str, str]],
                             given: str | None) -> bool: ...


@runtime_checkable
class PolledReceipts(Protocol):
    """A channel that can look up a sent message's outcome at its provider."""

    async def fetch_receipt(self, receipt_id: str) -> twilio.Receipt | None: ...


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """What a callback did: ``outcome`` is ``delivered``, ``read``, ``failed``, ``ignored``
    (an intermediate status, or nothing to move) or ``unknown`` (no such message here)."""

    outcome: str
    notification_id: str | None = None


class ReceiptService:
    def __init__(self, store: Store, metrics: Metrics, clock: Clock,
                 channels: Mapping[str, ChannelSender], public_url: str,
                 unknown_wait_seconds: float = UNKNOWN_WAIT_SECONDS,
                 poll_after: Sequence[float] = ()) -> None:
        self._unknown_wait = unknown_wait_seconds
        self._poll_after = sorted(poll_after)
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._channels = channels  # filled at start-up
        self._public_url = public_url.rstrip("/")

    def _verifier(self) -> SignedReceipts | None:
        for name in TWILIO_CHANNELS:
            channel = self._channels.get(name)
            if isinstance(channel, SignedReceipts):
                return channel
        return None

    @property
    def twilio_configured(self) -> bool:
        """Whether a Twilio channel is built (else the hook does not exist)."""
        return self._verifier() is not None

    def twilio_signature_ok(self, raw_query: str, params: Sequence[tuple[str, str]],
                            given: str | None, path: str = twilio.STATUS_PATH) -> bool:
        """Whether a request Twilio made to ``path`` is signed by the configured account;
        ``raw_query`` is the query string as requested (empty for none)."""
        verifier = self._verifier()
        if verifier is None:
            return False
        url = self._public_url + path + (f"?{raw_query}" if raw_query else "")
        return verifier.receipt_signature_ok(url, params, given)

    async def twilio_status(self, params: Sequence[tuple[str, str]]) -> ReceiptResult:
        """Apply one verified status callback."""
        receipt = twilio.receipt_of(dict(params))
        if receipt is None:
            log.warning("twilio_receipt_unreadable", fields=sorted({k for k, _ in params}))
            return ReceiptResult("ignored")
        if receipt.outcome is None:
            return ReceiptResult("ignored")
        waited = 0.0
        while True:
            now = self._clock.now()
            change = await self._apply(receipt, now)
            if change is not None:
                break
            # Twilio may report before the dispatcher has recorded the send (the 201 and the
            # outcome's commit are milliseconds apart): an unknown id is looked up again for a
            # moment before it is ignored. A known one had nothing left to change.
            if waited >= self._unknown_wait or await self._store.receipts.known(receipt.sid):
                log.debug("twilio_receipt_unchanged", sid=receipt.sid, status=receipt.status)
                return ReceiptResult("ignored")
            await asyncio.sleep(UNKNOWN_POLL_SECONDS)
            waited += UNKNOWN_POLL_SECONDS
        self._observe(change, receipt, now)
        return ReceiptResult(receipt.outcome, change.id)

    async def poll(self) -> dict[str, int]:
        """Look up the rows due (periodic; tests call it), at most ``POLL_ROUND`` of them:
        what is left stays due for the next round. How many lookups ended how (the metric's
        outcomes)."""
        outcomes: dict[str, int] = {}
        done = 0
        while done < POLL_ROUND:
            rows = await self._store.receipts.due_checks(self._clock.now(),
                                                         min(POLL_BATCH, POLL_ROUND - done))
            for row in rows:
                try:
                    outcome = await self._poll_one(row)
                except Exception:  # a bug on one row must not stall every later round
                    log.exception("twilio_receipt_poll_crashed", notification_id=row.id)
                    await self._store.receipts.check_again(
                        row.id, self._next_check(row.sent_at, self._clock.now()))
                    outcome = "error"
                if outcome is None:  # the account refused: the rest wait for the next round
                    return outcomes
                if outcome:  # "": nothing was asked (see _poll_one)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
            done += len(rows)
            if len(rows) < POLL_BATCH:
                break
        return outcomes

    def _next_check(self, sent_at: float, now: float) -> float | None:
        """The next age at which a row still ``sent`` is asked about; None after the last."""
        return next((sent_at + age for age in self._poll_after if sent_at + age > now), None)

    async def _poll_one(self, row: Awaiting) -> str | None:
        """One lookup; its outcome ("" when none was made), None when the channel as a whole
        cannot be asked (the row stays due)."""
        channel = self._channels.get(row.channel)
        now = self._clock.now()
        next_check = self._next_check(row.sent_at, now)
        if row.status != Status.SENT or not isinstance(channel, PolledReceipts):
            # Moved another way (acknowledged), or the channel is gone: nothing to ask.
            await self._store.receipts.check_again(row.id, None)
            return ""
        try:
            receipt = await channel.fetch_receipt(row.provider_id)
        except DeliveryError as exc:
            log.warning("twilio_receipt_poll_failed", notification_id=row.id,
                        reason=exc.reason.value, error=exc.details)
            self._metrics.receipt_polls.labels(row.channel, "error").inc()
            if exc.scope is ErrorScope.CHANNEL:
                return None
            await self._store.receipts.check_again(row.id, next_check)
            return "error"
        if receipt is None:
            log.warning("twilio_message_unknown", notification_id=row.id, sid=row.provider_id)
            outcome = "unknown"
        elif receipt.outcome is None:
            outcome = "pending"
            if next_check is None:
                log.info("twilio_no_final_status", notification_id=row.id, sid=row.provider_id,
                         status=receipt.status, hint="the carrier sent no delivery report; "
                         "the notification stays sent")
        else:
            change = await self._apply(receipt, now)
            if change is not None:
                self._observe(change, receipt, now)
            outcome = receipt.outcome if change is not None else "unchanged"
        if outcome in ("pending", "unknown", "unchanged"):
            await self._store.receipts.check_again(row.id, next_check)
        self._metrics.receipt_polls.labels(row.channel, outcome).inc()
        return outcome

    async def _apply(self, receipt: twilio.Receipt, now: float) -> ReceiptChange | None:
        if receipt.outcome == "failed":
            assert receipt.reason is not None and receipt.details is not None
            assert receipt.failure_class is not None
            return await self._store.receipts.failed(
                receipt.sid, now, receipt.reason.value, receipt.details,
                receipt.failure_class.value)
        return await self._store.receipts.delivered(receipt.sid, now,
                                                    read=receipt.outcome == "read")

    def _observe(self, change: ReceiptChange, receipt: twilio.Receipt, now: float) -> None:
        """The metrics and log lines of the dispatcher's own outcomes (delivery/dispatcher.py
        ``_observe``), now that the outcome is known."""
        if not change.moved:
            log.info("notification_read", notification_id=change.id, channel=change.channel)
            return
        if change.status is Status.DELIVERED:
            self._metrics.notifications.labels(change.channel, "delivered").inc()
            self._metrics.delivery_latency.labels(change.channel).observe(
                max(0.0, now - change.due_at))
            log.info("notification_delivered", notification_id=change.id,
                     channel=change.channel, receipt=receipt.status)
            return
        assert receipt.reason is not None
        self._metrics.notifications.labels(change.channel, "failed").inc()
        self._metrics.delivery_failures.labels(change.channel, receipt.reason.value).inc()
        self._metrics.dead_letters.labels(change.channel).inc()  # exact at the next refresh
        log.warning("notification_failed", notification_id=change.id, channel=change.channel,
                    reason=receipt.reason, details=receipt.details, receipt=receipt.status)
