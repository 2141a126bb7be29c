"""Shared pieces of the payload parsers: the error type, RFC 3339 times, string maps.

Also the Alertmanager-shaped alert list that both Alertmanager (v4) and Grafana's unified
alerting webhook (v1) send, so the two parsers agree field for field.
"""

from __future__ import annotations

import re
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


# RFC 3339 as Go writes it (time.RFC3339Nano): up to nine fractional digits, Z or +hh:mm.
_RFC3339 = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})"
    r"(?P<frac>\.\d{1,9})?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})"
)
# Go's zero time.Time, which Alertmanager sends as the endsAt of a firing alert.
_GO_ZERO_TIME = -62135596800.0


def parse_time(value: object, param: str) -> float | None:
    """RFC 3339 (Go's format) -> unix seconds; Go's zero time, ``None`` and ``""`` -> ``None``.

    Raises IngestError naming ``param`` for anything else.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise IngestError(f"{param}: expected an RFC 3339 time string, got {_kind(value)}", param)
    try:
        return _parse_rfc3339(value)
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
    return whole + float(frac) if frac else whole


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


def check_version(payload: dict[str, Any], expected: str) -> None:
    """Accept the sender's protocol version or none at all; reject any other explicit one."""
    version = payload.get("version")
    if version is None or str(version) == expected:
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
    extra = {k: v for k, v in obj.items() if k not in _ALERT_FIELDS}
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


def _alert_status(
    value: object, ends_at: float | None, received_at: float | None, param: str
) -> str:
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
    payload: dict[str, Any], source: str, received_at: float | None = None
) -> list[Alert]:
    """Every entry of the payload's ``alerts`` array, in order."""
    items = require_alert_list(payload)
    return [
        parse_webhook_alert(item, f"alerts[{i}]", source, received_at)
        for i, item in enumerate(items)
    ]


def group_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """Every top-level field except ``alerts``, verbatim (unknown ones included)."""
    return {k: v for k, v in payload.items() if k != "alerts"}
