"""Structured logging (structlog) and the Prometheus metrics of the daemon."""

from __future__ import annotations

import logging
import platform
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import disable_created_metrics as _disable_created_metrics

from agent import __version__
from agent.domain import Channel

# Anything shaped like one of our API keys or webhook secrets is scrubbed from every log line,
# wherever it hides (a URL, an exception message, a nested dict).
_SECRET_PATTERN = re.compile(r"\b(sk_(?:live|test)_|whsec_)[A-Za-z0-9_\-]{6,}")
_SECRET_KEYS = frozenset(
    {"api_key", "authorization", "password", "secret", "signing_secret", "token", "key"}
)
REDACTED = "[redacted]"


def _is_secret_name(name: object) -> bool:
    return str(name).lower() in _SECRET_KEYS


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        # Most values hold neither prefix: two substring checks cost less than the regex.
        if "sk_" not in value and "whsec_" not in value:
            return value
        return _SECRET_PATTERN.sub(lambda m: m.group(1) + REDACTED, value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_name(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-named fields and mask key-shaped strings."""
    for k in list(event_dict):
        event_dict[k] = REDACTED if _is_secret_name(k) else _scrub(event_dict[k])
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog once per process: JSON lines off a TTY, pretty on one."""
    out = stream or sys.stderr
    pretty = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if pretty else structlog.processors.JSONRenderer()
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    bridge_stdlib_logging()


class StdlibBridge(logging.Handler):
    """Stdlib log records (aiohttp, asyncio, libraries) as structlog JSON lines.

    Without it they reach stderr through logging's last-resort handler as multi-line text and
    tracebacks, which break one-JSON-object-per-line logs. A malformed request from a client
    (aiohttp's ``BadHttpMessage``) is the client's fault, not ours: one warning, no traceback,
    and only the first line of the reason (the rest echoes raw header bytes).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log = structlog.get_logger(component=record.name)
            exc = record.exc_info[1] if record.exc_info else None
            if isinstance(exc, HttpProcessingError):
                reason = (exc.message or "").strip().splitlines()
                log.warning("bad_http_request", status=exc.code,
                            reason=reason[0] if reason else "")
                return
            method = record.levelname.lower()
            if method not in ("debug", "info", "warning", "error", "critical"):
                method = "error"
            kw: dict[str, Any] = {"exc_info": record.exc_info} if record.exc_info else {}
            getattr(log, method)("library_log", message=record.getMessage(), **kw)
        except Exception:  # logging must never raise into the code that logged
            self.handleError(record)


def bridge_stdlib_logging() -> None:
    """Route stdlib logging through structlog (idempotent: one bridge on the root logger)."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, StdlibBridge)]:
        root.removeHandler(h)
    root.addHandler(StdlibBridge())


def get_logger(name: str) -> Any:
    """A bound structlog logger carrying the component name."""
    return structlog.get_logger(component=name)


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
OUTCOMES = ("delivered", "failed", "retried", "deferred", "simulated", "cancelled", "sent")
GROUP_FLUSH_STAGES = ("load", "plan", "record", "round")


class Metrics:
    """Every metric of the daemon, registered on one injected registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # *_created series double the scrape size and nobody graphs them.
        _disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("alert_agent_build", "Build information.", registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.notifications_accepted = Counter(
            "alert_agent_notifications_accepted_total",
            "Notifications accepted by the API and durably queued.",
            ["channel"],
            registry=r,
        )
        self.notifications = Counter(
            "alert_agent_notifications_total",
            "Delivery outcomes by channel (delivered, failed, retried, deferred, simulated, "
            "cancelled; sent: handed to a provider that reports delivery later, counted again "
            "as delivered or failed when it does).",
            ["channel", "outcome"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "alert_agent_delivery_failures_total",
            "Delivery attempts that failed, by channel and reason (retryable or not).",
            ["channel", "reason"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "alert_agent_delivery_latency_seconds",
            "From due (accepted or scheduled time) to delivered.",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.acknowledgments = Counter(
            "alert_agent_acknowledgments_total",
            "First acknowledgments of alerts or notifications, by the channel they came "
            "through (api, cli, slack, telegram, link, sms).",
            ["channel"],
            registry=r,
        )
        self.acks_refused = Counter(
            "alert_agent_ack_refused_total",
            "Acknowledgments refused, by channel and reason (not_allowed: not a member allowed "
            "for the alert; bad_signature: the callback failed verification; expired: a chat "
            "button older than ack.link_ttl).",
            ["channel", "reason"],
            registry=r,
        )
        self.receipt_polls = Counter(
            "alert_agent_receipt_polls_total",
            "Lookups of sent messages whose status callback never came, by channel and outcome "
            "(delivered, read, failed; pending: no final status yet; unchanged; unknown: the "
            "provider does not know the message; error: it could not be asked).",
            ["channel", "outcome"],
            registry=r,
        )
        self.escalation_steps = Counter(
            "alert_agent_escalation_steps_total",
            "Escalation steps fired, and cancelled: by an acknowledgment, by the resolve of the "
            "group's last firing alert, or because nothing was left to escalate when due.",
            ["outcome"],
            registry=r,
        )
        self.time_to_acknowledge = Histogram(
            "alert_agent_time_to_acknowledge_seconds",
            "From an alert's first notification (its creation) to its first acknowledgment.",
            buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400),
            registry=r,
        )
        self.outbox_depth = Gauge(
            "alert_agent_outbox_depth",
            "Queued notifications; state=due is ready to send, scheduled waits for its time.",
            ["state"],
            registry=r,
        )
        self.outbox_oldest_due_age = Gauge(
            "alert_agent_outbox_oldest_due_age_seconds",
            "Age of the oldest notification that is due and not yet delivered.",
            registry=r,
        )
        self.in_flight = Gauge(
            "alert_agent_deliveries_in_flight", "Deliveries currently in progress.", registry=r
        )
        self.http_requests = Counter(
            "alert_agent_http_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "alert_agent_http_request_duration_seconds",
            "HTTP request handling time by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "alert_agent_rate_limited_total", "Requests refused with 429.", registry=r
        )
        self.auth_failures = Counter(
            "alert_agent_auth_failures_total", "Requests refused with 401.", registry=r
        )
        self.store_commits = Counter(
            "alert_agent_store_commits_total", "Group-commit transactions.", registry=r
        )
        self.store_commit_size = Histogram(
            "alert_agent_store_commit_operations",
            "Operations per group-commit transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.store_errors = Counter(
            "alert_agent_store_errors_total", "Store transactions that failed.", registry=r
        )
        self.rows_pruned = Counter(
            "alert_agent_store_rows_pruned_total", "Rows deleted by retention, by table.",
            ["table"], registry=r,
        )
        self.store_size = Gauge(
            "alert_agent_store_size_bytes", "Size of the database files (db + WAL).", registry=r
        )
        self.dispatcher_running = Gauge(
            "alert_agent_dispatcher_running", "1 while the dispatcher loop runs.", registry=r
        )
        self.channel_paused = Gauge(
            "alert_agent_channel_paused",
            "1 while a channel is paused by a channel-scoped failure (e.g. its token refused); "
            "its notifications wait instead of failing.", ["channel"], registry=r,
        )
        self.channel_pauses = Counter(
            "alert_agent_channel_pauses_total",
            "Times a channel was paused by a channel-scoped failure.", ["channel"], registry=r,
        )
        self.idempotency_expired = Counter(
            "alert_agent_idempotency_keys_expired_total", "Idempotency keys removed.", registry=r
        )
        self.alerts_received = Counter(
            "alert_agent_alerts_received_total", "Alerts received, by source.", ["source"],
            registry=r,
        )
        self.alerts_invalid = Counter(
            "alert_agent_alerts_invalid_total",
            "Payloads rejected as malformed or unauthenticated, by source.", ["source"],
            registry=r,
        )
        self.alerts_outcome = Counter(
            "alert_agent_alerts_stored_total",
            "Stored alerts by outcome (created, updated, resolved, stale).", ["outcome"],
            registry=r,
        )
        self.group_notifications = Counter(
            "alert_agent_group_notifications_total",
            "Notifications queued by alert groups.", registry=r,
        )
        self.groups_muted = Counter(
            "alert_agent_groups_muted_total",
            "Group flushes suppressed by time intervals or inhibition.", registry=r,
        )
        self.group_flush_failures = Counter(
            "alert_agent_group_flush_failures_total",
            "Group flushes that failed, by stage (load: reading the group back, plan: deciding "
            "and rendering, record: storing the outcome, round: the whole round, e.g. the "
            "store is down). A failing group is retried with exponential back-off.",
            ["stage"], registry=r,
        )
        self.rules_reload_success = Gauge(
            "alert_agent_rules_last_reload_successful",
            "1 when the last rules reload succeeded.", registry=r,
        )
        self.rules_reload_timestamp = Gauge(
            "alert_agent_rules_last_reload_success_timestamp_seconds",
            "When the rules were last loaded successfully.", registry=r,
        )
        self.rules_config_hash = Gauge(
            "alert_agent_rules_config_hash",
            "Hash of the loaded rule files (first 52 bits), to spot divergent hosts.", registry=r,
        )
        self.rules_reloads = Counter(
            "alert_agent_rules_reloads_total", "Rules reloads by outcome.", ["outcome"],
            registry=r,
        )
        self.active_alerts = Gauge(
            "alert_agent_alerts_active", "Alerts currently active.", registry=r
        )
        self.alert_groups = Gauge(
            "alert_agent_alert_groups", "Alert groups currently tracked.", registry=r
        )
        self.dead_letters = Gauge(
            "alert_agent_dead_letters",
            "Failed notifications still stored (dead letters), by channel; a re-drive or "
            "retention takes them off.", ["channel"], registry=r,
        )
        for src in ("alertmanager", "grafana", "generic", "api"):
            self.alerts_received.labels(src)
            self.alerts_invalid.labels(src)
        for outcome in ("created", "updated", "resolved", "stale"):
            self.alerts_outcome.labels(outcome)
        for outcome in ("success", "failure"):
            self.rules_reloads.labels(outcome)
        for stage in GROUP_FLUSH_STAGES:
            self.group_flush_failures.labels(stage)
        for ch in Channel:
            self.notifications_accepted.labels(ch.value)
            self.channel_paused.labels(ch.value)
            self.channel_pauses.labels(ch.value)
            self.dead_letters.labels(ch.value)
            for outcome in OUTCOMES:
                self.notifications.labels(ch.value, outcome)
        for state in ("due", "scheduled"):
            self.outbox_depth.labels(state)
