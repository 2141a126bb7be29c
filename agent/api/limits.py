"""The input caps of ``api.*`` as handlers apply them; each violation names its setting.

Body size and JSON depth are checked where bodies are read (``bodies``); alert counts, labels and
annotations by the ingest parsers (``ingest.common.Limits``); metadata sizes here.
"""

from __future__ import annotations

import orjson

from agent.api.errors import ApiError
from agent.ingest.common import LimitExceeded, Limits
from agent.settings import ApiSettings


def ingest_limits(s: ApiSettings) -> Limits:
    """The parsers' caps from the settings."""
    return Limits(max_alerts=s.max_alerts_per_payload, max_labels=s.max_labels_per_alert,
                  max_label_bytes=s.max_label_bytes, max_annotation_bytes=s.max_annotation_bytes)


def limit_error(exc: LimitExceeded) -> ApiError:
    """A parser's cap violation in the seed's envelope."""
    return ApiError(exc.status, exc.code, exc.message, exc.param)


def check_metadata(value: object, limit: int, param: str) -> None:
    """Refuse metadata whose JSON is longer than ``limit`` bytes (``api.max_metadata_bytes``):
    it is stored, copied into every notification and shown to templates. Raises ApiError 422."""
    if not value:
        return
    size = len(orjson.dumps(value))
    if size > limit:
        raise ApiError(422, "metadata_too_large",
                       f"'{param}' is {size} bytes as JSON; api.max_metadata_bytes is {limit}.",
                       param)
