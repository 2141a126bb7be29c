"""Library log records (aiohttp, asyncio) come out as JSON lines like our own events.

A client's malformed HTTP request used to reach stderr as aiohttp's multi-line "Error handling
request" traceback (found by the OpenAPI fuzz: schemathesis probes with a NUL byte in a header).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from typing import Any

from aiohttp.test_utils import TestClient


def _events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_malformed_request_is_one_warning_without_traceback(
    client: TestClient[Any, Any], stream: io.StringIO
) -> None:
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer sk_live_secretsecretsecret\r\nX-Probe: \x00\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert status_line.split()[1] == b"400", status_line
    events = _events(stream)  # every line parses as JSON
    bad = [e for e in events if e["event"] == "bad_http_request"]
    assert len(bad) == 1, events
    assert bad[0]["level"] == "warning" and bad[0]["status"] == 400
    assert "exception" not in bad[0]
    assert "secretsecret" not in stream.getvalue()


def test_library_errors_keep_their_traceback_inside_one_json_line(stream: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("some.library").exception("it failed: %s", "why")
    (event,) = [e for e in _events(stream) if e["event"] == "library_log"]
    assert event["component"] == "some.library"
    assert event["level"] == "error"
    assert event["message"] == "it failed: why"
    assert "RuntimeError: boom" in event["exception"]
