"""Grafana webhook payloads -> alerts, and the contact point's HMAC signature.

Two formats arrive at the same endpoint and are told apart by shape:

* Unified alerting (Grafana 8+, ``"version": "1"``): Alertmanager's shape plus group fields
  ``orgId``, ``title``, ``state``, ``message`` (kept in ``group``) and per-alert
  ``silenceURL``, ``dashboardURL``, ``panelURL``, ``values``, ``valueString``, ``imageURL``,
  ``ruleUID``, ... (kept in ``Alert.extra``).
* Legacy dashboard alerting (Grafana < 11, no ``alerts`` array): one rule's state change with
  ``ruleId``, ``ruleName``, ``ruleUrl``, ``state``, ``evalMatches``, ``tags``, ``title``,
  ``message``, ``imageUrl``, ``orgId``, ``dashboardId``, ``panelId``. It maps to ONE alert per
  rule, not one per eval match: legacy state is per rule and its ``ok`` notification carries
  no matches, so per-match alerts could never be resolved. The matches stay in
  ``extra["evalMatches"]`` with a readable ``extra["valueString"]``.

  labels       {alertname: ruleName} + the rule's ``tags`` (+ ``grafana_state: no_data``)
  annotations  summary <- title, description <- message (when non-empty)
  fingerprint  stable per rule: ruleId (or ruleName when absent) + tags, not the state
  status       alerting -> firing, ok -> resolved, no_data -> firing with the label
               ``grafana_state="no_data"`` so routes can tell it apart; paused, pending and
               unknown -> no alert (an empty batch): they neither start nor end a problem.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from agent.domain import Alert, AlertStatus, IngestBatch, fingerprint_of
from agent.ingest.common import (
    DEFAULT_LIMITS,
    IngestError,
    Limits,
    check_alert,
    check_count,
    check_version,
    group_fields,
    optional_str,
    parse_webhook_alerts,
    require_object,
    scalar_str,
    str_map,
)

SOURCE = "grafana"
VERSION = "1"

# Grafana's default signature header (hmacConfig.header overrides it).
SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
# Grafana has no default: hmacConfig.timestampHeader names it, and a timestamp is signed only
# when it is set. This is the name Grafana's own webhook fixtures use.
TIMESTAMP_HEADER = "X-Grafana-Alerting-Timestamp"
# A signed request older than this is a replay; one from further ahead than this is a sender
# whose clock is wrong (or a forged future stamp), told apart in the error.
MAX_AGE_SECONDS = 300.0
MAX_FUTURE_SKEW_SECONDS = 300.0
_UNIX_SECONDS = re.compile(r"[0-9]{1,15}")  # Grafana: strconv.FormatInt(now.Unix(), 10)

NO_DATA_LABEL = "grafana_state"
_LEGACY_STATUS: dict[str, str | None] = {
    "alerting": AlertStatus.FIRING.value,
    "no_data": AlertStatus.FIRING.value,
    "ok": AlertStatus.RESOLVED.value,
    "paused": None,
    "pending": None,
    "unknown": None,
}
_LEGACY_MARKERS = ("ruleName", "ruleId", "evalMatches")


def parse(payload: object, *, received_at: float | None = None,
          limits: Limits = DEFAULT_LIMITS) -> IngestBatch:
    """A Grafana webhook body (decoded JSON, unified or legacy) -> alerts and group fields.

    ``received_at`` decides only a unified alert that lacks ``status``. Raises IngestError
    (LimitExceeded past ``limits``).
    """
    obj = require_object(payload)
    if "alerts" not in obj and any(k in obj for k in _LEGACY_MARKERS):
        return parse_legacy(obj, limits)
    check_version(obj, VERSION)
    alerts = parse_webhook_alerts(obj, SOURCE, received_at, limits)
    return IngestBatch(source=SOURCE, alerts=alerts, group=group_fields(obj))


def parse_legacy(payload: object, limits: Limits = DEFAULT_LIMITS) -> IngestBatch:
    """A legacy (dashboard) alerting webhook body -> at most one alert; see the module doc."""
    obj = require_object(payload)
    raw_matches = obj.get("evalMatches")
    if isinstance(raw_matches, list):
        check_count(len(raw_matches), "evalMatches", limits)
    rule_name = optional_str(obj.get("ruleName"), "ruleName")
    if rule_name is None:
        raise IngestError("ruleName: required by a legacy Grafana alert", "ruleName")
    status = _legacy_status(obj.get("state"))
    tags = str_map(obj.get("tags"), "tags")
    matches = _eval_matches(obj.get("evalMatches"))
    group = {k: v for k, v in obj.items() if k != "evalMatches"}
    if status is None:
        return IngestBatch(source=SOURCE, alerts=[], group=group)
    rule_id = obj.get("ruleId")
    if rule_id is not None and (isinstance(rule_id, bool) or not isinstance(rule_id, int | str)):
        raise IngestError("ruleId: expected a number or a string", "ruleId")
    labels = {**tags, "alertname": rule_name}
    if obj["state"] == "no_data":
        labels[NO_DATA_LABEL] = "no_data"
    rule_key = str(rule_id) if rule_id is not None and rule_id != "" else rule_name
    alert = Alert(
        source=SOURCE,
        fingerprint=fingerprint_of({**tags, "__grafana_legacy_rule__": rule_key}),
        status=status,
        labels=labels,
        annotations=_legacy_annotations(obj),
        generator_url=optional_str(obj.get("ruleUrl"), "ruleUrl"),
        extra=_legacy_extra(obj, matches),
    )
    check_alert(alert, "", limits)
    return IngestBatch(source=SOURCE, alerts=[alert], group=group)


def _legacy_status(state: object) -> str | None:
    if isinstance(state, str) and state in _LEGACY_STATUS:
        return _LEGACY_STATUS[state]
    expected = ", ".join(_LEGACY_STATUS)
    raise IngestError(f"state: expected one of {expected}; got {state!r}", "state")


def _eval_matches(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise IngestError("evalMatches: expected an array", "evalMatches")
    matches: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        param = f"evalMatches[{i}]"
        match = require_object(item, param)
        metric = match.get("metric")
        metric = "" if metric is None else scalar_str(metric, f"{param}.metric")
        number = match.get("value")
        if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise IngestError(f"{param}.value: expected a number or null", f"{param}.value")
        tags = str_map(match.get("tags"), f"{param}.tags")
        matches.append({"metric": metric, "value": number, "tags": tags})
    return matches


def _legacy_annotations(obj: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = {}
    title = optional_str(obj.get("title"), "title")
    message = optional_str(obj.get("message"), "message")
    if title:
        annotations["summary"] = title
    if message:
        annotations["description"] = message
    return annotations


def _legacy_extra(obj: dict[str, Any], matches: list[dict[str, Any]]) -> dict[str, Any]:
    extra: dict[str, Any] = {"state": obj["state"], "evalMatches": matches}
    for key in ("ruleId", "orgId", "dashboardId", "panelId", "imageUrl"):
        if obj.get(key) is not None:
            extra[key] = obj[key]
    if matches:
        extra["valueString"] = ", ".join(_match_text(m) for m in matches)
    return extra


def _match_text(match: dict[str, Any]) -> str:
    # Same bracketed shape as unified alerting's valueString, so templates read alike.
    tags = ", ".join(f"{k}={v}" for k, v in sorted(match["tags"].items()))
    return f"[ metric='{match['metric']}' labels={{{tags}}} value={match['value']} ]"


def verify_signature(
    secret: bytes, body: bytes, signature: str | None, timestamp: str | None
) -> bool:
    """Whether ``signature`` is Grafana's HMAC-SHA256 of ``body`` under ``secret``.

    With a timestamp header value, Grafana signs ``timestamp + ":" + body``. Hex is compared
    in constant time. An empty secret verifies nothing (Grafana refuses to sign with one).
    Checking that the timestamp is recent is the caller's job; see ``check_timestamp``.
    """
    if not secret or not signature:
        return False
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    if timestamp:
        mac.update(timestamp.encode() + b":")
    mac.update(body)
    given = signature.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(mac.hexdigest().encode(), given)


def check_timestamp(timestamp: str, received_at: float, max_age: float = MAX_AGE_SECONDS,
                    max_skew: float = MAX_FUTURE_SKEW_SECONDS) -> str | None:
    """Why a signature timestamp is refused: ``"invalid"`` (not unix seconds), ``"too_old"``
    (a signed body replayed later), ``"in_future"`` (beyond the clock skew allowed); else None.
    """
    stamp = timestamp.strip()
    if not _UNIX_SECONDS.fullmatch(stamp):
        return "invalid"
    age = received_at - int(stamp)
    if age > max_age:
        return "too_old"
    if -age > max_skew:
        return "in_future"
    return None
