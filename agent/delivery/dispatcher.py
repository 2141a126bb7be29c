"""The dispatcher: claims due outbox rows, renders, delivers through a channel, records outcomes.

At-least-once: a row is claimed, sent, then marked; a crash in between re-sends it after restart
(claims of a dead process are released at start). Retries are decided here and only here:
a retryable failure spends an attempt and waits a backoff; a wait the far side asked for (a rate
limit, a ``Retry-After``) is a deferral that spends none; both end at ``retry_for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence

from agent.channels.base import (
    AckLink,
    ChannelSender,
    DeliveryError,
    DeliveryResult,
    FailureClass,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from agent.channels.simulator import SimulatorChannel, simulated_outcome
from agent.clock import SYSTEM_CLOCK, Clock, as_clock
from agent.delivery.outcomes import OutcomeWriter
from agent.delivery.pause import ChannelPause, ChannelPaused
from agent.delivery.ratelimit import RateLimiter
from agent.delivery.retry import RetryPolicy
from agent.delivery.slots import Keys, Slots
from agent.delivery.threads import ReplacesLookup, thread_of, update_mode
from agent.domain import FailureReason, Notification, ack_code
from agent.domain import NotificationFailureClass as Class
from agent.loops.backoff import Backoff
from agent.loops.waker import Waker
from agent.observability import Metrics, get_logger
from agent.rendering import TemplateError, render
from agent.store.deliveries import Attempt, AttemptOutcome
from agent.store.notifications import (
    Deferred,
    Delivered,
    Failed,
    NotificationStore,
    Outcome,
    Retry,
)

log = get_logger("dispatcher")
# Channels that get an acknowledge link (no buttons of their own).
ACK_LINK_CHANNELS = frozenset({"email", "sms", "whatsapp", "push", "teams"})


def _pause_key(channel: ChannelSender, name: str, to: str) -> str:
    """What a channel-scoped failure pauses: the channel, or its provider that ``to`` uses."""
    key = getattr(channel, "pause_key", None)
    return key(to) if key is not None else name


def _follows_up(channel: ChannelSender) -> bool:
    """The channel relates a group's later message to its earlier one (edits or threads)."""
    return channel.limits.can_edit or channel.limits.can_thread


class Dispatcher:
    def __init__(
        self,
        notifications: NotificationStore,
        channels: Mapping[str, ChannelSender],
        metrics: Metrics,
        *,
        retry: RetryPolicy,
        max_in_flight: int = 128,
        max_in_flight_per_channel: int | None = None,
        max_in_flight_per_destination: int | None = None,
        claim_batch: int = 256,
        poll_interval: float = 1.0,
        claim_lease: float = 300.0,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
        pause: ChannelPause | None = None,
        replaces: ReplacesLookup | None = None,
        link_base: str | None = None,
        recipient_problem: Callable[[Notification], str | None] | None = None,
        ack_link: Callable[[Notification], AckLink | None] | None = None,
        record_retry_pauses: tuple[float, ...] = (0.1, 0.5, 2.0),
    ) -> None:
        clock = as_clock(clock)
        self._store = notifications
        self._pause = pause if pause is not None else ChannelPause(metrics)
        # The hook for edit-on-resolve: finds the earlier message's provider ref.
        self._replaces = replaces
        # The agent's public URL: a message cut to its size budget links to the whole of it.
        self._link_base = link_base.rstrip("/") if link_base else None
        self._limiter = RateLimiter()
        self._simulator = SimulatorChannel()
        # Why a queued row may no longer go out (its member was unapproved by a reload since).
        self._recipient_problem = recipient_problem
        # The acknowledge link of a notification that reaches a member (links.py), or None.
        self._ack_link = ack_link
        self._channels = channels
        self._metrics = metrics
        self._retry = retry
        self._max_in_flight = max_in_flight
        self._claim_batch = claim_batch
        # Claim when this many slots are free (or nothing runs): a claim per finished delivery
        # would cost a store operation per delivery for one row each.
        self._refill = max(1, min(claim_batch, max_in_flight // 8))
        self._outcomes = OutcomeWriter(lambda o: self._store.complete(o, self._clock()),
                                       record_retry_pauses)
        # A capped key that finished nothing for two polls is stuck (see slots.py).
        self._slots = Slots(max_in_flight_per_channel or max_in_flight,
                            max_in_flight_per_destination or max_in_flight,
                            2 * poll_interval, clock.now)
        self._poll = poll_interval
        self._lease = claim_lease
        self._clock = clock.now
        self._waker = Waker(poll_interval, clock)
        # The rows stay due while the store refuses the claim: without a back-off the loop
        # would claim again at once, forever.
        self._claim_backoff: Backoff[str] = Backoff(poll_interval, 30.0)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stopped: asyncio.Future[None] | None = None  # ends the wait for a free slot

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        """New due work may exist: look now instead of at the next poll."""
        self._waker.wake()

    async def start(self) -> None:
        self._pause.track(key for name, ch in self._channels.items()
                          for key in getattr(ch, "pause_keys", (name,)))
        released = await self._store.release_claims()
        if released:
            log.warning("outbox_claims_released", count=released)
        self._stopped = asyncio.get_running_loop().create_future()
        self._loop_task = asyncio.create_task(self._run(), name="dispatcher")
        self._metrics.dispatcher_running.set(1)

    async def stop(self, grace: float) -> None:
        """Stop claiming; give in-flight deliveries ``grace`` seconds, then cancel them.

        A cancelled delivery's row stays queued (claim released at the next start).
        """
        self._stopping = True
        self._waker.wake()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self._give_back(self._slots.drain())
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                log.warning("deliveries_abandoned_at_shutdown", count=len(pending))
                await asyncio.wait(pending)
        await self._outcomes.close()
        self._metrics.dispatcher_running.set(0)

    async def run_until_idle(self) -> int:
        """Deliver everything due now, wait for it, return how many rows were claimed.

        For tests and tools: no background loop, no sleeps (a delivery that never ends blocks
        it; ``wake()`` makes it look at stuck destinations again after the clock moved).
        """
        total = 0
        while True:
            self._waker.clear()
            _, rows, back = await self._round()
            total += len(rows)
            if not rows and not self._tasks:
                return total
            if rows and not back:
                continue
            if self._tasks:
                woken = asyncio.ensure_future(self._waker.wait())
                await asyncio.wait({*self._tasks, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()

    def _free(self) -> int:
        """Rows to claim now: free slots not promised to parked rows."""
        return min(self._claim_batch, self._max_in_flight - len(self._tasks) - self._slots.parked)

    async def _round(self) -> tuple[int, list[Notification], list[Notification]]:
        """Give back the parked rows of stuck destinations, claim what the free slots allow
        and admit it; (rows asked for, claimed rows, rows given back for a poll interval)."""
        await self._give_back([n for n, _ in self._slots.evict_stuck()], stuck=True)
        limit = self._free()
        if limit <= 0:
            return 0, [], []
        rows = await self._store.claim_due(self._clock(), limit, self._lease,
                                           self._retry.max_attempts)
        back, stuck = self._admit(rows)
        await self._give_back(stuck, stuck=True)
        await self._give_back(back)
        # Rows of a stuck destination left the due range: claiming again makes progress.
        return limit, rows, back

    async def _run(self) -> None:
        while not self._stopping:
            free = self._free()
            if free < self._refill and self._tasks:
                waits: set[asyncio.Future[None]] = set(self._tasks)
                if self._stopped is not None:
                    waits.add(self._stopped)
                # Bounded: a destination that stops answering is found stuck by time alone.
                await asyncio.wait(waits, timeout=self._poll,
                                   return_when=asyncio.FIRST_COMPLETED)
                if self._slots.parked:
                    await self._give_back([n for n, _ in self._slots.evict_stuck()],
                                          stuck=True)
                continue
            self._waker.clear()
            try:
                asked, rows, back = await self._round()
            except Exception as exc:  # the store is down: keep the loop alive, retry later
                failures, delay = self._claim_backoff.failed("claim")
                log.error("outbox_claim_failed", error=str(exc), failures=failures,
                          retry_in=delay)
                await self._waker.sleep(delay)
                continue
            self._claim_backoff.succeeded("claim")
            if rows and len(rows) == asked and not back:
                continue  # there may be more due right now
            if not self._stopping:
                await self._waker.idle(self._store.next_due_at)

    def _keys(self, n: Notification) -> Keys:
        channel = self._channels.get(n.channel)
        destination = getattr(channel, "destination_key", None)
        return n.channel, destination(n.recipient) if destination is not None else n.channel

    def _admit(self, rows: Sequence[Notification]
               ) -> tuple[list[Notification], list[Notification]]:
        """Start what fits the caps, park what may wait; (rows to give back, rows of stuck
        destinations to give back for longer)."""
        back: list[Notification] = []
        stuck: list[Notification] = []
        for n in rows:
            keys = self._keys(n)
            if self._slots.fits(keys):
                self._slots.take(keys)
                self._start(n, keys)
            elif self._slots.stalled_for(keys):
                stuck.append(n)
            elif not self._slots.park(n, keys):
                back.append(n)
        return back, stuck

    def _start(self, n: Notification, keys: Keys) -> None:
        task = asyncio.create_task(self._deliver(n))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, keys))

    def _finished(self, keys: Keys, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        for n, ready in self._slots.release(keys):
            self._start(n, ready)

    async def _give_back(self, rows: Sequence[Notification], stuck: bool = False) -> None:
        """Rows that cannot start go back to the outbox untried, due again after a poll
        interval, or (a stuck destination) after ten: the claim then reaches other rows."""
        if not rows:
            return
        later = self._poll * (10 if stuck else 1)
        try:
            await self._store.unclaim([n.id for n in rows], self._clock() + later)
        except Exception as exc:  # their claim lease expires instead
            log.error("outbox_unclaim_failed", count=len(rows), error=str(exc))

    async def _deliver(self, n: Notification) -> None:
        self._metrics.in_flight.inc()
        try:
            outcome = await self._attempt(n)
            if n.parent_id is not None and isinstance(outcome, Delivered | Failed):
                outcome.parent_id = n.parent_id  # settled with it (a team send's status)
            await self._outcomes.record(outcome)
            if isinstance(outcome, Deferred | Retry):
                # Due again sooner than the loop may look (a throttle of a few ms).
                self._waker.wake_by(outcome.due_at)
        except Exception as exc:  # never lose the loop to one row; its claim lease expires
            log.error("delivery_record_failed", notification_id=n.id, error=str(exc))
            return
        finally:
            self._metrics.in_flight.dec()
        self._observe(n, outcome)

    async def _attempt(self, n: Notification) -> Outcome:
        """Deliver once; the outcome carries its row for the deliveries table."""
        started = self._clock()
        thread_key = thread_of(n.metadata)
        channel = self._channels.get(n.channel)
        # Only a channel that can edit or thread ever looks its earlier messages up: the others'
        # attempts stay out of the thread index (one random-keyed page less per delivery).
        stored_thread = thread_key if channel is not None and _follows_up(channel) else None

        def attempt(outcome: AttemptOutcome, err: DeliveryError | None = None, *,
                    failure_class: FailureClass | None = None, retry_after: float | None = None,
                    result: DeliveryResult | None = None) -> Attempt:
            return Attempt(
                attempt=n.attempts + 1, channel=n.channel, started_at=started,
                finished_at=self._clock(), outcome=outcome,
                failure_reason=None if err is None else err.reason.value,
                failure_class=failure_class or (None if err is None else err.failure_class),
                failure_details=None if err is None else err.details,
                http_status=(err.http_status if err is not None
                             else None if result is None else result.http_status),
                retry_after=retry_after,
                provider_ref=None if result is None else result.provider_ref,
                thread_key=stored_thread, recipient=n.recipient,
            )

        try:
            text = render(n.template_body, n.metadata) if n.template_body else (n.message or "")
        except TemplateError as exc:
            err = PermanentDeliveryError(FailureReason.TEMPLATE_RENDER_ERROR, str(exc)[:500])
            return Failed(n.id, started, err.reason, err.details, attempt("failed", err),
                          failure_class=Class.TECHNICAL)
        rendered = text if n.template_body else None
        simulator = n.simulated and simulated_outcome(n.recipient) is not None
        problem = (self._recipient_problem(n) if self._recipient_problem is not None
                   and not simulator else None)
        if problem is not None:
            err = PermanentDeliveryError(FailureReason.RECIPIENT_NOT_APPROVED, problem)
            return Failed(n.id, started, err.reason, err.details, attempt("failed", err),
                          failure_class=Class.PERMANENT)
        if n.simulated and (channel is None or not channel.local):
            if not simulator:
                return Delivered(n.id, started, self._clock(), rendered, attempt("delivered"))
            # A simulator address: the outcome it names, through the real retry paths.
            message = await self._message(n, self._simulator, text, None)
            return await self._outcome(n, functools.partial(self._simulator.send, message),
                                       attempt, started, rendered)
        if channel is None:
            err = PermanentDeliveryError(
                FailureReason.CHANNEL_NOT_CONFIGURED,
                f"channel '{n.channel}' is not configured on this agent",
            )
            return Failed(n.id, started, err.reason, err.details, attempt("failed", err),
                          failure_class=Class.TECHNICAL)
        pause_key = _pause_key(channel, n.channel, n.recipient)
        hold = self._pause.hold(pause_key, started)
        if hold is not None:  # nothing tried: no attempt row, no attempt spent
            return Deferred(n.id, hold, FailureReason.CHANNEL_PAUSED,
                            f"channel '{pause_key}' is paused after its credentials were refused")
        waits = await self._behind_earlier(n, channel, started) or self._throttle(
            n, channel, started)
        if waits is not None:
            return waits
        message = await self._message(n, channel, text, thread_key)
        return await self._outcome(n, functools.partial(self._send, channel, message, pause_key),
                                   attempt,
                                   started, rendered)

    async def _outcome(self, n: Notification, send: Callable[[], Awaitable[DeliveryResult]],
                       attempt: Callable[..., Attempt], started: float,
                       rendered: str | None) -> Outcome:
        """Send once and turn the answer (or the error) into the row's outcome."""
        try:
            result = await send()
        except ChannelPaused as exc:
            cause = exc.error
            self._metrics.delivery_failures.labels(n.channel, cause.reason.value).inc()
            return Deferred(n.id, exc.resume_at, FailureReason.CHANNEL_PAUSED,
                            f"channel paused: {cause.details}", attempt("deferred", cause))
        except RetryableDeliveryError as exc:
            self._metrics.delivery_failures.labels(n.channel, exc.reason.value).inc()
            return self._later(n, exc, attempt)
        except PermanentDeliveryError as exc:
            self._metrics.delivery_failures.labels(n.channel, exc.reason.value).inc()
            return Failed(n.id, self._clock(), exc.reason, exc.details, attempt("failed", exc),
                          failure_class=Class.PERMANENT)
        except DeliveryError as exc:
            return Failed(n.id, self._clock(), exc.reason, exc.details, attempt("failed", exc),
                          failure_class=Class.PERMANENT)
        except Exception as exc:  # a channel bug must not wedge the row: fail it loudly
            log.exception("channel_crashed", notification_id=n.id, channel=n.channel)
            crash = DeliveryError(FailureReason.PROVIDER_REJECTED,
                                  f"internal channel error: {type(exc).__name__}")
            return Failed(n.id, self._clock(), crash.reason, crash.details,
                          attempt("failed", crash, failure_class=FailureClass.TECHNICAL),
                          failure_class=Class.TECHNICAL)
        # receipt_id: the provider reports the outcome later; the row is ``sent`` until then.
        done = self._clock()
        return Delivered(n.id, started, done, rendered,
                         attempt("delivered", result=result), receipt_id=result.receipt_id,
                         receipt_check_at=(None if result.receipt_check_after is None
                                           else done + result.receipt_check_after))

    async def _behind_earlier(self, n: Notification, channel: ChannelSender,
                              now: float) -> Outcome | None:
        """A deferral while the group's earlier notification to the same channel and recipient
        is still queued (or in flight): this one edits or replies to that message, so it waits
        for it to be delivered instead of posting a second message. Nothing is tried."""
        gid = n.metadata.get("group_id")
        if (self._replaces is None or not isinstance(gid, int) or not _follows_up(channel)
                or update_mode(n.metadata) == "new"):
            return None
        due = await self._store.earlier_queued_due(gid, n.channel, n.recipient, n.seq)
        if due is None:
            return None
        return Deferred(n.id, max(due, now) + self._poll, FailureReason.WAITING_FOR_EARLIER,
                        "waiting for the group's earlier message to be delivered")

    def _throttle(self, n: Notification, channel: ChannelSender,
                  now: float) -> Outcome | None:
        """A deferral when a rate bucket of the channel has no token for ``n`` (nothing is
        tried: no attempt row, no attempt spent), a failure past ``retry_for``, else None."""
        rates = getattr(channel, "rates", None)
        if rates is None:
            return None
        wait_until = self._limiter.take(rates(n.recipient), now, n.priority)
        if wait_until is None:
            return None
        if self._retry.within_deadline(n.retry_from, wait_until):
            return Deferred(n.id, wait_until, FailureReason.THROTTLED,
                            f"waiting for the '{n.channel}' rate limit")
        return Failed(n.id, now, FailureReason.RATE_LIMITED,
                      f"gave up after {self._retry.retry_for:g} s waiting for the "
                      f"'{n.channel}' rate limit", failure_class=Class.TEMPORARY)

    async def _message(self, n: Notification, channel: ChannelSender, text: str,
                       thread_key: str | None) -> Message:
        overflow = n.metadata.get("overflow")
        ack = (self._ack_link(n) if self._ack_link is not None and channel.name in
               ACK_LINK_CHANNELS and n.metadata.get("status") != "resolved" else None)
        return Message(
            notification_id=n.id, channel=n.channel, to=n.recipient, text=text,
            subject=n.subject, severity=n.severity, priority=n.priority,
            metadata=n.metadata, created_at=n.created_at, simulated=n.simulated,
            thread_key=thread_key,
            status="resolved" if n.metadata.get("status") == "resolved" else "firing",
            # Only a channel that can edit or thread has use for the earlier message (one query).
            replaces=(await self._replaces(n) if self._replaces is not None
                      and _follows_up(channel) else None),
            attempt=n.attempts + 1,  # attempts counts the tries that reached an outcome
            update=update_mode(n.metadata),
            retract=n.metadata.get("retract") is True,
            overflow="split" if overflow == "split" else "truncate" if overflow == "truncate"
            else None,
            link=None if self._link_base is None else f"{self._link_base}/v1/notifications/{n.id}",
            ack_url=ack.url if ack else None, ack_form=ack.form if ack else None,
            ack_code=ack_code(n.id) if ack else None,
        )

    async def _send(self, channel: ChannelSender, message: Message,
                    pause_key: str) -> DeliveryResult:
        """``channel.send``, telling the pause how it went; raises ChannelPaused instead of a
        channel-scoped error."""
        try:
            result = await channel.send(message)
        except DeliveryError as exc:
            resume_at = self._pause.observe(pause_key, exc, self._clock())
            if resume_at is not None:
                raise ChannelPaused(exc, resume_at) from exc
            raise
        except Exception:
            self._pause.observe(pause_key, None, self._clock())
            raise
        self._pause.observe(pause_key, None, self._clock())
        return result

    def _later(self, n: Notification, exc: RetryableDeliveryError,
               attempt: Callable[..., Attempt]) -> Outcome:
        """A retryable failure: wait (deferral, no attempt spent) when the far side asked for a
        wait (rate limit, ``Retry-After``), else retry after a backoff; fail past the limits."""
        t = self._clock()
        ra = exc.retry_after
        if exc.reason is FailureReason.RATE_LIMITED or ra is not None:
            at = t + self._retry.deferral(n.deferrals + 1, ra)
            rates = getattr(self._channels.get(n.channel), "rates", None)
            # A simulator's rate limit (test keys) must not hold the real channel's buckets.
            if (exc.reason is FailureReason.RATE_LIMITED and ra is not None and rates is not None
                    and not n.simulated):
                self._limiter.hold(rates(n.recipient), at, t)
            if self._retry.within_deadline(n.retry_from, at):
                return Deferred(n.id, at, exc.reason, exc.details,
                                attempt("deferred", exc, retry_after=ra))
            return Failed(n.id, t, exc.reason,
                          f"gave up after {self._retry.retry_for:g} s: {exc.details}",
                          attempt("failed", exc, retry_after=ra), failure_class=Class.TEMPORARY)
        done = n.budget_attempts + 1  # since creation, or since a re-drive
        at = t + self._retry.delay(done, ra)
        if not self._retry.should_retry(done, n.severity):
            return Failed(n.id, t, exc.reason, f"gave up after {done} attempts: {exc.details}",
                          attempt("failed", exc, retry_after=ra), failure_class=Class.TEMPORARY)
        if not self._retry.within_deadline(n.retry_from, at):
            return Failed(n.id, t, exc.reason,
                          f"gave up after {self._retry.retry_for:g} s: {exc.details}",
                          attempt("failed", exc, retry_after=ra), failure_class=Class.TEMPORARY)
        return Retry(n.id, at, exc.reason, exc.details, attempt("retry", exc, retry_after=ra))

    def _observe(self, n: Notification, o: Outcome) -> None:
        if isinstance(o, Delivered) and o.receipt_id is not None:
            # Delivered (or failed) when the receipt comes: services/receipts.py counts it then.
            self._metrics.notifications.labels(n.channel, "sent").inc()
            log.info("notification_sent", notification_id=n.id, channel=n.channel,
                     attempts=n.attempts + 1)
        elif isinstance(o, Delivered):
            outcome = "simulated" if n.simulated else "delivered"
            self._metrics.notifications.labels(n.channel, outcome).inc()
            self._metrics.delivery_latency.labels(n.channel).observe(
                max(0.0, o.delivered_at - n.due_at)
            )
            log.info("notification_delivered", notification_id=n.id, channel=n.channel,
                     simulated=n.simulated, attempts=n.attempts + 1)
        elif isinstance(o, Deferred):
            self._metrics.notifications.labels(n.channel, "deferred").inc()
            # Many rows wait while a channel is paused or throttled: the pause itself is
            # logged once, the throttle shows in the metric.
            emit = (log.debug if o.reason in (FailureReason.CHANNEL_PAUSED,
                                              FailureReason.THROTTLED,
                                              FailureReason.WAITING_FOR_EARLIER) else log.info)
            emit("notification_deferred", notification_id=n.id, channel=n.channel,
                 reason=o.reason, retry_in=round(o.due_at - self._clock(), 3),
                 attempts=n.attempts)
        elif isinstance(o, Failed):
            self._metrics.notifications.labels(n.channel, "failed").inc()
            self._metrics.dead_letters.labels(n.channel).inc()  # exact again at the next refresh
            log.warning("notification_failed", notification_id=n.id, channel=n.channel,
                        reason=o.reason, details=o.details, attempts=n.attempts + 1)
        else:
            self._metrics.notifications.labels(n.channel, "retried").inc()
            log.info("notification_retry_scheduled", notification_id=n.id, channel=n.channel,
                     reason=o.reason, retry_in=round(o.due_at - self._clock(), 3),
                     attempts=n.attempts + 1)
