"""Crash safety under load: while 2,000 webhook notifications are being accepted, the real
daemon is SIGKILLed 5 times and restarted on the same data dir; every notification that got a
2xx must reach the local sink (duplicates are allowed by at-least-once, and counted).

The scenario is bench/bench_crash.py's (which runs it bigger: 20 kills in 10,000 sends).
"""

from __future__ import annotations

from pathlib import Path

from bench.bench_crash import CrashConfig, report, run_crash

SENDS, KILLS = 2000, 5


async def test_sigkill_storm_loses_no_accepted_notification(tmp_path: Path) -> None:
    cfg = CrashConfig(sends=SENDS, kills=KILLS, concurrency=16, max_seconds=90.0)
    fig = await run_crash(cfg, tmp_path)
    print(report(fig, cfg))  # shown with -rP: the duplicate count of this run
    assert fig.over_budget is None, report(fig, cfg)
    assert fig.kills == KILLS
    assert fig.accepted == SENDS
    assert (fig.lost, fig.lost_ids) == (0, [])
    assert fig.delivered == SENDS
    assert fig.unexpected == 0, "a notification reached the sink that no client was told about"
    assert fig.non_2xx == {}, fig.non_2xx
    assert fig.final_exit_code == 0
    assert fig.duplicates <= fig.accepted  # counted, not bounded: at-least-once re-sends
    logs = sorted(tmp_path.glob("daemon*.stderr"))
    assert len(logs) == KILLS + 1
    for path in logs:
        text = path.read_text(errors="replace")
        assert "Traceback" not in text and '"unhandled_error"' not in text, path.name
