"""Any JSON body -> alerts, through a per-source mapping of Jinja2 templates.

A mapping (one source in a rule file) is compiled once with ``compile_mapping`` and applied to
each body with ``parse``. Its keys:

``alerts``        optional dotted path to the array of items to map, e.g. ``checks`` or
                  ``data.results``; a numeric segment indexes an array (``runs.0.jobs``) and
                  ``.`` is the body itself. Absent: the whole body is one item. A path, not a
                  template, because a template renders to a string and the items are data.
``alertname``     required template.
``status``        optional template; the rendered text, case-insensitively, via the synonym
                  table below. Absent or rendered empty: firing. Anything else is an error, so
                  a new state the sender invents is noticed instead of guessed.
``severity``      optional template -> label ``severity``.
``labels``        map of label name -> template.
``annotations``   map of annotation name -> template.
``fingerprint``   optional template; its text (hashed with the mapping name to 16 hex digits)
                  identifies the alert across firing and resolved. Absent or rendered empty:
                  the label-set fingerprint, alertname included.
``starts_at``, ``ends_at``   optional templates -> times: RFC 3339 / ISO 8601 (no offset
                  means UTC), or unix seconds (milliseconds above 10^11). Empty -> none.
                  Times outside the years 1970 to 9000 (UTC) are errors.
``generator_url`` optional template -> link back to the sender.

Template variables: ``payload`` (the whole body), ``item`` (the current item; the body when
there is no ``alerts`` path) and, when the item is an object, its top-level keys directly, so
``{{ monitor.name }}`` works. Templates run in the size-limited sandbox (``agent.sandbox``:
bounded output, memory and time per template, as for notification templates) with
``ChainableUndefined``: a missing field, or a field of a missing field, renders as an empty
string instead of failing the whole delivery, because optional fields come and go between
senders' versions. ``null`` also renders empty and booleans as ``true``/``false``. A label or
annotation that renders empty is left out, as Prometheus treats an empty label as unset.

Status synonyms (numbers are deliberately absent: Uptime Kuma's 0 means down, an exit code's
0 means success; map them in the template, e.g. ``{{ 'up' if heartbeat.status == 1 else
'down' }}``):

    resolved  <- resolved, ok, up, green, success, succeeded, passed, pass, closed, recovered
    firing    <- firing, down, alerting, problem, critical, error, fail, failed, failure, red,
                 open, triggered
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError

from agent.domain import Alert, AlertStatus, IngestBatch, fingerprint_of, parse_iso
from agent.ingest.common import (
    DEFAULT_LIMITS,
    WINDOW,
    IngestError,
    Limits,
    TimeOutOfWindow,
    check_alert,
    check_count,
    in_window,
    parse_time,
    scalar_str,
)
from agent.sandbox import LimitedEnvironment, generate_capped, render_scope

SOURCE_PREFIX = "generic:"

_RESOLVED_WORDS = ("resolved ok up green success succeeded passed pass closed recovered").split()
_FIRING_WORDS = (
    "firing down alerting problem critical error fail failed failure red open triggered"
).split()
STATUS_SYNONYMS: dict[str, str] = {
    **{w: AlertStatus.RESOLVED.value for w in _RESOLVED_WORDS},
    **{w: AlertStatus.FIRING.value for w in _FIRING_WORDS},
}

_TEMPLATE_KEYS = (
    "alertname",
    "status",
    "severity",
    "fingerprint",
    "starts_at",
    "ends_at",
    "generator_url",
)
_MAP_KEYS = ("labels", "annotations")
_SPEC_KEYS = frozenset(("alerts", *_TEMPLATE_KEYS, *_MAP_KEYS))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_EPOCH_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_MILLIS_ABOVE = 1e11  # unix seconds reach 10^11 in the year 5138

_Render = Callable[[Template | None, str], str]


def _finalize(value: Any) -> Any:
    # Python would print None/True; JSON senders mean "" and true.
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


_ENV = LimitedEnvironment(undefined=ChainableUndefined, finalize=_finalize)


@dataclass(frozen=True)
class GenericMapping:
    """A compiled mapping from one sender's JSON to alerts; see the module doc for the keys."""

    name: str
    alertname: Template
    alerts_path: tuple[str, ...] | None = None
    status: Template | None = None
    severity: Template | None = None
    labels: tuple[tuple[str, Template], ...] = ()
    annotations: tuple[tuple[str, Template], ...] = ()
    fingerprint: Template | None = None
    starts_at: Template | None = None
    ends_at: Template | None = None
    generator_url: Template | None = None

    @property
    def source(self) -> str:
        """The ``Alert.source`` of this mapping's alerts."""
        return SOURCE_PREFIX + self.name


# --- compiling ---------------------------------------------------------------------------------


def compile_mapping(name: str, spec: Mapping[str, Any]) -> GenericMapping:
    """Compile a rule file's mapping for source ``name``.

    Raises IngestError (a ValueError) whose ``param`` and message name the key and, for a
    template, the line of its syntax error; the caller adds which source and file.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise IngestError(
            f"generic source name {name!r}: use letters, digits, '_', '.', '-'", "name"
        )
    if not isinstance(spec, Mapping):
        raise IngestError("expected a map of keys, one per mapping field", None)
    unknown = sorted(str(k) for k in spec if k not in _SPEC_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_SPEC_KEYS))
        raise IngestError(f"unknown key {unknown[0]!r} (allowed: {allowed})", unknown[0])
    if spec.get("alertname") in (None, ""):
        raise IngestError("alertname: required", "alertname")
    templates = {
        key: _compile_template(key, spec[key])
        for key in _TEMPLATE_KEYS
        if spec.get(key) is not None
    }
    labels = _compile_map("labels", spec.get("labels"))
    if any(label == "alertname" for label, _ in labels):
        raise IngestError(
            "labels.alertname: set it with the alertname key",
            "labels.alertname",
        )
    if "severity" in templates and any(label == "severity" for label, _ in labels):
        raise IngestError(
            "severity given twice (severity and labels.severity)",
            "labels.severity",
        )
    return GenericMapping(
        name=name,
        alertname=templates["alertname"],
        alerts_path=_compile_path(spec.get("alerts")),
        status=templates.get("status"),
        severity=templates.get("severity"),
        labels=labels,
        annotations=_compile_map("annotations", spec.get("annotations")),
        fingerprint=templates.get("fingerprint"),
        starts_at=templates.get("starts_at"),
        ends_at=templates.get("ends_at"),
        generator_url=templates.get("generator_url"),
    )


def _compile_template(param: str, source: object) -> Template:
    text = scalar_str(source, param)
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise IngestError(
            f"{param}: template syntax error on line {exc.lineno}: {exc.message}",
            param,
        ) from exc


def _compile_map(key: str, value: object) -> tuple[tuple[str, Template], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise IngestError(f"{key}: expected a map of name -> template", key)
    compiled: list[tuple[str, Template]] = []
    for field, body in value.items():
        if not isinstance(field, str) or not field:
            raise IngestError(f"{key}: names must be non-empty strings", key)
        compiled.append((field, _compile_template(f"{key}.{field}", body)))
    return tuple(compiled)


def _compile_path(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise IngestError("alerts: expected a dotted path such as 'checks'", "alerts")
    path = value.strip()
    if "{" in path or "}" in path:
        raise IngestError(
            "alerts: a dotted path such as 'data.checks', not a template",
            "alerts",
        )
    if path == ".":
        return ()
    segments = tuple(path.split("."))
    if any(not s for s in segments):
        raise IngestError(f"alerts: empty segment in {path!r}", "alerts")
    return segments


# --- applying ----------------------------------------------------------------------------------


def parse(mapping: GenericMapping, payload: object,
          limits: Limits = DEFAULT_LIMITS) -> IngestBatch:
    """Apply a compiled mapping to a decoded JSON body.

    Raises IngestError (LimitExceeded past ``limits``).
    """
    path = mapping.alerts_path
    if path is None:
        items: list[Any] = [payload]
        group: dict[str, Any] = {}
    else:
        items = _select(payload, path)
        group = _group(payload, path)
        check_count(len(items), ".".join(path) or "alerts", limits)
    alerts = []
    for i, item in enumerate(items):
        alert = _map_item(mapping, payload, item, i)
        check_alert(alert, "" if path is None else f"{'.'.join(path) or 'alerts'}[{i}].",
                    limits)
        alerts.append(alert)
    return IngestBatch(source=mapping.source, alerts=alerts, group=group)


def _select(payload: object, path: tuple[str, ...]) -> list[Any]:
    node = payload
    for depth, segment in enumerate(path):
        where = ".".join(path[: depth + 1])
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            raise IngestError(f"alerts: the body has no {where!r}", where)
    if not isinstance(node, list):
        where = ".".join(path) or "."
        raise IngestError(f"alerts: {where!r} is not an array", where)
    return node


def _group(payload: object, path: tuple[str, ...]) -> dict[str, Any]:
    # The body around the items, minus the branch holding them (already in each alert).
    if not isinstance(payload, dict) or not path:
        return {}
    return {k: v for k, v in payload.items() if k != path[0]}


def _map_item(mapping: GenericMapping, payload: object, item: object, index: int) -> Alert:
    variables: dict[str, Any] = dict(item) if isinstance(item, dict) else {}
    variables["payload"] = payload
    variables["item"] = item
    where = f"item {index}: " if mapping.alerts_path is not None else ""

    def text(template: Template | None, param: str) -> str:
        if template is None:
            return ""
        try:
            with render_scope():
                return generate_capped(template, variables).strip()
        except Exception as exc:  # a template is user code: any failure is a mapping error
            raise IngestError(f"{where}{param}: {type(exc).__name__}: {exc}", param) from exc

    alertname = text(mapping.alertname, "alertname")
    if not alertname:
        raise IngestError(f"{where}alertname: rendered empty", "alertname")
    labels = {"alertname": alertname}
    labels.update(_rendered_map(mapping.labels, text, "labels"))
    severity = text(mapping.severity, "severity")
    if severity:
        labels["severity"] = severity
    key = text(mapping.fingerprint, "fingerprint")
    fingerprint = (
        fingerprint_of({"__generic_source__": mapping.name, "__key__": key})
        if key
        else fingerprint_of(labels)
    )
    return Alert(
        source=mapping.source,
        fingerprint=fingerprint,
        status=_status(text(mapping.status, "status"), where),
        labels=labels,
        annotations=_rendered_map(mapping.annotations, text, "annotations"),
        starts_at=_time(text(mapping.starts_at, "starts_at"), "starts_at", where),
        ends_at=_time(text(mapping.ends_at, "ends_at"), "ends_at", where),
        generator_url=text(mapping.generator_url, "generator_url") or None,
        extra=dict(item) if isinstance(item, dict) else {"item": item},
    )


def _rendered_map(
    templates: tuple[tuple[str, Template], ...], text: _Render, key: str
) -> dict[str, str]:
    rendered = ((field, text(template, f"{key}.{field}")) for field, template in templates)
    return {field: value for field, value in rendered if value}


def _status(value: str, where: str) -> str:
    if not value:
        return AlertStatus.FIRING.value
    status = STATUS_SYNONYMS.get(value.lower())
    if status is None:
        raise IngestError(
            f"{where}status: {value[:64]!r} is neither a firing nor a resolved word "
            f"({', '.join(STATUS_SYNONYMS)})",
            "status",
        )
    return status


def _time(value: str, param: str, where: str) -> float | None:
    if not value:
        return None
    if _EPOCH_NUMBER.fullmatch(value) and math.isfinite(number := float(value)):
        ts = number / 1000.0 if abs(number) >= _MILLIS_ABOVE else number
    else:
        try:
            return parse_time(value, param)
        except TimeOutOfWindow as exc:
            raise IngestError(f"{where}{exc.message}", param) from exc
        except IngestError:
            pass
        try:
            ts = parse_iso(value)
        except ValueError as exc:
            raise IngestError(
                f"{where}{param}: {value[:64]!r} is neither a time nor unix seconds", param
            ) from exc
    if not in_window(ts):
        raise IngestError(f"{where}{param}: {value[:64]!r} lies outside {WINDOW}", param)
    return ts
