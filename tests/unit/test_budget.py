"""Size budgets: every part fits, nothing is lost when splitting, truncation says so."""

from __future__ import annotations

import random

import pytest

from agent.channels.budget import fit, split, truncate, utf8_bytes, utf16_units


def _alerts(n: int) -> str:
    return "\n".join(f"🔥 DiskFull on db{i}.example.com: / is {90 + i % 10}% full"
                     for i in range(n))


@pytest.mark.parametrize("measure", [len, utf8_bytes, utf16_units])
@pytest.mark.parametrize("limit", [120, 500, 4096])
def test_split_parts_fit_and_keep_every_line(measure: object, limit: int) -> None:
    text = _alerts(200)
    parts = split(text, limit, measure=measure, max_parts=1000)  # type: ignore[arg-type]
    assert len(parts) > 1
    assert all(measure(p) <= limit for p in parts)  # type: ignore[operator]
    # Numbered (i/n) and, without the labels, the same lines in the same order.
    n = len(parts)
    lines: list[str] = []
    for i, p in enumerate(parts, 1):
        label, _, body = p.partition("\n")
        assert label == f"({i}/{n})"
        lines.extend(body.split("\n"))
    assert lines == text.split("\n")


def test_a_line_longer_than_the_budget_is_cut_between_words_and_kept_whole() -> None:
    words = [f"w{i:04d}" for i in range(2000)]
    text = " ".join(words)
    parts = split(text, 300, max_parts=1000)
    assert all(len(p) <= 300 for p in parts)
    assert " ".join(p.partition("\n")[2] for p in parts).split() == words


def test_random_texts_always_fit() -> None:
    rng = random.Random(7)
    alphabet = "ab \n€😀<&>"
    for _ in range(200):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3000)))
        limit = rng.randint(40, 800)
        for measure in (len, utf8_bytes, utf16_units):
            for part in fit(text, limit, "split", link="http://127.0.0.1/x", measure=measure):
                assert measure(part) <= limit
            assert measure(fit(text, limit, "truncate", measure=measure)[0]) <= limit


def test_past_max_parts_the_last_part_is_truncated_visibly_with_the_link() -> None:
    parts = split(_alerts(500), 500, link="https://agent.example/v1/notifications/ntf_1",
                  max_parts=3)
    assert len(parts) == 3 and all(len(p) <= 500 for p in parts)
    assert parts[-1].endswith("full text at https://agent.example/v1/notifications/ntf_1")
    assert "truncated" in parts[-1]


def test_truncate_says_how_much_was_cut() -> None:
    text = "x" * 1000
    out = truncate(text, 100)
    assert len(out) <= 100
    kept = out.split("\n")[0]
    assert out.endswith(f"… truncated, {1000 - len(kept)} more characters")


def test_text_within_budget_is_untouched() -> None:
    assert fit("short", 10, "split") == ["short"]
    assert fit("short", None, "truncate") == ["short"]
    assert truncate("exactly10!", 10) == "exactly10!"
