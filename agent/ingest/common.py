"""Shared pieces of the payload parsers: the error type, RFC 3339 times, string maps, and the
caps on what one payload may carry.

Also the Alertmanager-shaped alert list that both Alertmanager (v4) and Grafana's unified
alerting webhook (v1) send, so the two parsers agree field for field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agent.domain import Alert, AlertStatus, fingerprint_of, parse_iso


class IngestError(ValueError):
    """The payload is not what the source sends; ``param`` names the offending field.

    ``param`` is a path such as ``alerts[3].labels``; ``None`` means the body as a whole.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class LimitExceeded(IngestError):
    """A well-formed payload over one of the input caps; ``code`` and ``status`` for the API."""

    def __init__(self, status: int, code: str, message: str, param: str | None) -> None:
        super().__init__(message, param)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on one payload (the ``api.max_*`` settings), so one body stays cheap to handle."""

    max_alerts: int = 10_000
    max_labels: int = 128  # per alert; annotations have the same cap
    max_label_bytes: int = 4096  # a label's name or value; an annotation's name
    max_annotation_bytes: int = 16_384  # an annotation's value: free text


DEFAULT_LIMITS = Limits()


def check_count(n: int, param: str, limits: Limits) -> None:
    """Refuse a payload of more than ``limits.max_alerts`` items (before parsing them)."""
    if n > limits.max_alerts:
        raise LimitExceeded(
            413, "too_many_alerts",
            f"{param}: {n} entries in one payload exceed api.max_alerts_per_payload "
            f"({limits.max_alerts}); send smaller groups (Alertmanager: max_alerts)", param)


def check_alert(alert: Alert, param: str, limits: Limits) -> None:
    """Refuse an alert with too many, or too long, labels or annotations.

    ``param`` is the alert's path with a trailing dot (``alerts[3].``) or empty.
    """
    if _within(alert, limits):
        return
    _check_strings(alert.labels, f"{param}labels", "label", limits.max_label_bytes, limits)
    _check_strings(alert.annotations, f"{param}annotations", "annotation",
                   limits.max_annotation_bytes, limits)


def _within(alert: Alert, limits: Limits) -> bool:
    # Run on every alert of every payload, so cheap: a string of at most cap/4 characters is
    # at most cap bytes in UTF-8 (nothing to encode), and short totals settle it in C.
    labels, annotations, most = alert.labels, alert.annotations, limits.max_labels
    if len(labels) > most or len(annotations) > most:
        return False
    name = label = limits.max_label_bytes // 4
    text = limits.max_annotation_bytes // 4
    if (sum(map(len, labels)) + sum(map(len, labels.values())) <= label
            and sum(map(len, annotations)) <= name
            and sum(map(len, annotations.values())) <= text):
        return True
    for k, v in labels.items():
        if len(k) > name or len(v) > label:
            return False
    for k, v in annotations.items():
        if len(k) > name or len(v) > text:
            return False
    return True


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _check_strings(values: Mapping[str, str], param: str, kind: str, value_cap: int,
                   limits: Limits) -> None:
    if len(values) > limits.max_labels:
        raise LimitExceeded(
            422, f"too_many_{kind}s",
            f"{param}: {len(values)} {kind}s exceed api.max_labels_per_alert "
            f"({limits.max_labels})", param)
    name_cap = limits.max_label_bytes
    for name, value in values.items():
        if _utf8_len(name) > name_cap:
            short = f"{param}.{name[:64]}..."
            raise LimitExceeded(
                422, f"{kind}_too_long",
                f"{short}: a {kind} name of {_utf8_len(name)} bytes exceeds "
                f"api.max_label_bytes ({name_cap})", short)
        if _utf8_len(value) > value_cap:
            setting = "api.max_label_bytes" if kind == "label" else "api.max_annotation_bytes"
            raise LimitExceeded(
                422, f"{kind}_too_long",
                f"{param}.{name}: a value of {_utf8_len(value)} bytes exceeds {setting} "
                f"({value_cap})", f"{param}.{name}")


# RFC 3339 as Go writes it (time.RFC3339Nano): up to nine fractional digits, Z or +hh:mm.
_RFC3339 = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})"
    r"(?P<frac>\.\d{1,9})?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})"
)
# Go's zero time.Time, which Alertmanager sends as the endsAt of a firing alert.
_GO_ZERO_TIME = -62135596800.0
# Times are accepted from 1970 through the year 9000 (UTC): nothing real lies outside, and a
# year past 9999 or before 1 could not even be formatted later.
MIN_TIME = 0.0  # 1970-01-01T00:00:00Z
MAX_TIME = 221876928000.0  # 9001-01-01T00:00:00Z, excluded
WINDOW = "the years 1970 to 9000 (UTC)"


class TimeOutOfWindow(IngestError):
    """A well-formed time outside the accepted window."""


class _OutsideWindow(ValueError):
    pass


def in_window(ts: float) -> bool:
    """Whether unix seconds ``ts`` lie in the accepted window (NaN and infinities do not)."""
    return MIN_TIME <= ts < MAX_TIME


def parse_time(value: object, param: str) -> float | None:
    """RFC 3339 (Go's format) -> unix seconds; Go's zero time, ``None`` and ``""`` -> ``None``.

    Raises IngestError naming ``param`` for anything else (TimeOutOfWindow for a time outside
    the years 1970 to 9000).
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IngestError(f"{param}: expected an RFC 3339 time string, got {_kind(value)}", param)
    try:
        return _parse_rfc3339(value)
    except _OutsideWindow as exc:
        raise TimeOutOfWindow(f"{param}: {exc}", param) from exc
    except ValueError as exc:
        raise IngestError(f"{param}: {exc}", param) from exc


@lru_cache(maxsize=4096)
def _parse_rfc3339(value: str) -> float | None:
    # Cached: the alerts of one payload share a few timestamps (every endsAt of a firing
    # Alertmanager alert is the zero time).
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {value[:64]!r}")
    try:
        # datetime keeps microseconds only; the fraction is added separately to keep Go's ns.
        whole = parse_iso(match["base"] + match["tz"])
    except ValueError as exc:
        raise ValueError(f"invalid time {value[:64]!r}: {exc}") from exc
    if whole == _GO_ZERO_TIME:
        return None
    frac = match["frac"]
    ts = whole + float(frac) if frac else whole
    if not in_window(ts):
        raise _OutsideWindow(f"{value[:64]!r} lies outside {WINDOW}")
    return ts


def _kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def scalar_str(value: object, param: str) -> str:
    """A JSON scalar as a label-style string: strings as-is, numbers and booleans coerced."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise IngestError(f"{param}: expected a string, got {_kind(value)}", param)


def str_map(value: object, param: str) -> dict[str, str]:
    """Labels or annotations: an object of strings; ``null`` is empty.

    Senders emit strings only; numbers and booleans are coerced rather than rejected.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestError(f"{param}: expected an object, got {_kind(value)}", param)
    if all(type(v) is str for v in value.values()):  # the common case: nothing to coerce
        return dict(value)
    return {str(k): scalar_str(v, f"{param}.{k}") for k, v in value.items()}


def optional_str(value: object, param: str) -> str | None:
    """A string field that may be absent, ``null`` or empty (-> ``None``)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IngestError(f"{param}: expected a string, got {_kind(value)}", param)
    return value


def require_object(payload: object, param: str | None = None) -> dict[str, Any]:
    """The payload as a JSON object, or IngestError."""
    if not isinstance(payload, dict):
        where = f"{param}: " if param else ""
        raise IngestError(f"{where}expected a JSON object, got {_kind(payload)}", param)
    return payload


def check_version(payload: dict[str, Any], expected: str, *also: str) -> None:
    """Accept the sender's protocol version(s) or none at all; reject any other explicit one."""
    version = payload.get("version")
    if version is None or str(version) in (expected, *also):
        return
    raise IngestError(
        f"version: unsupported webhook version {version!r} (expected {expected!r})", "version"
    )


def require_alert_list(payload: dict[str, Any]) -> list[Any]:
    """The payload's ``alerts`` array, or IngestError naming ``alerts``."""
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        got = "missing" if "alerts" not in payload else _kind(alerts)
        raise IngestError(f"alerts: expected an array of alerts, got {got}", "alerts")
    return alerts


# The per-alert fields of Alertmanager's template.Alert; anything else is source-specific.
_ALERT_FIELDS = frozenset(
    {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
)


def parse_webhook_alert(
    item: object, param: str, source: str, received_at: float | None = None
) -> Alert:
    """One Alertmanager-shaped alert; fields outside Alertmanager's set go to ``extra``.

    ``received_at`` only matters when ``status`` is missing: an ``endsAt`` at or before it
    means resolved (without it, any ``endsAt`` does).
    """
    obj = require_object(item, param)
    labels = str_map(obj.get("labels"), f"{param}.labels")
    annotations = str_map(obj.get("annotations"), f"{param}.annotations")
    starts_at = parse_time(obj.get("startsAt"), f"{param}.startsAt")
    ends_at = parse_time(obj.get("endsAt"), f"{param}.endsAt")
    status = _alert_status(obj.get("status"), ends_at, received_at, f"{param}.status")
    fingerprint = optional_str(obj.get("fingerprint"), f"{param}.fingerprint")
    # Alertmanager sends exactly its fields: the comprehension only when there is more.
    extra = None if obj.keys() <= _ALERT_FIELDS else {
        k: v for k, v in obj.items() if k not in _ALERT_FIELDS}
    return Alert(
        source=source,
        fingerprint=fingerprint or fingerprint_of(labels),
        status=status,
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=optional_str(obj.get("generatorURL"), f"{param}.generatorURL"),
        extra=extra or None,
    )


_STATUSES = frozenset(s.value for s in AlertStatus)


def _alert_status(
    value: object, ends_at: float | None, received_at: float | None, param: str
) -> str:
    if type(value) is str and value in _STATUSES:  # as senders write it: no enum lookup
        return value
    if value is None or value == "":
        ended = ends_at is not None and (received_at is None or ends_at <= received_at)
        return AlertStatus.RESOLVED.value if ended else AlertStatus.FIRING.value
    if isinstance(value, str):
        try:
            return AlertStatus(value.strip().lower()).value
        except ValueError:
            pass
    raise IngestError(f"{param}: expected 'firing' or 'resolved', got {value!r}", param)


def parse_webhook_alerts(
    payload: dict[str, Any], source: str, received_at: float | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Alert]:
    """Every entry of the payload's ``alerts`` array, in order, each within ``limits``."""
    items = require_alert_list(payload)
    check_count(len(items), "alerts", limits)
    alerts = []
    for i, item in enumerate(items):
        alert = parse_webhook_alert(item, f"alerts[{i}]", source, received_at)
        check_alert(alert, f"alerts[{i}].", limits)
        alerts.append(alert)
    return alerts


def group_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Every top-level field except ``alerts``, verbatim (unknown ones included)."""
    return {k: v for k, v in payload.items() if k != "alerts"}
