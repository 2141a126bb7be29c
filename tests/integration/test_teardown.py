"""One teardown per resource (issue 11): a step whose teardown raises does not skip the others,
so the dispatcher and the grouper are stopped before their store closes, the data dir is
released, and the log names the step that failed."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from agent.app import RUNTIME, create_app
from agent.settings import Settings


async def test_a_failing_teardown_step_skips_no_other(settings: Settings,
                                                      stream: io.StringIO) -> None:
    app = create_app(settings)
    rt = app[RUNTIME]
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert rt.dispatcher.running and rt.grouper.running
    seen_at_close: dict[str, Any] = {}
    real_close = rt.store.close

    async def close() -> None:
        seen_at_close.update(dispatcher=rt.dispatcher.running, grouper=rt.grouper.running)
        await real_close()

    async def flush_fails() -> None:
        raise OSError("disk I/O error")

    rt.store.close = close
    # Runs at shutdown before the grouper and dispatcher stop (reverse start order).
    rt.api.intake.flush_receipts = flush_fails
    with pytest.raises(OSError, match="disk I/O error"):
        await server.close()
    assert seen_at_close == {"dispatcher": False, "grouper": False}
    failed = [e for e in map(orjson.loads, stream.getvalue().splitlines())
              if e.get("event") == "teardown_failed"]
    assert [(e["step"], e["error"]) for e in failed] == [("load_intake", "disk I/O error")]
    # The data dir lock was released too: another agent starts on it.
    again = TestServer(create_app(settings), host="127.0.0.1")
    await again.start_server()
    await again.close()
