"""SMS length: GSM-7 (extension characters count two) 160 single / 153 per segment, else UCS-2
70 / 67; a text over the segment budget is truncated with a visible marker and the link."""

from __future__ import annotations

import pytest

from agent.channels.base import Message
from agent.channels.sms import fit, is_gsm, segments, septets
from agent.channels.twilio import compose
from tests.emulators.twilio import count_segments

LINK = "https://agent.example/v1/notifications/ntf_1"


@pytest.mark.parametrize(("text", "expected"), [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("€" * 80, 1), ("€" * 81, 2),  # two septets each
    ("é" * 160, 1),  # in the GSM alphabet
    ("ç" * 70, 1), ("ç" * 71, 2), ("ç" * 134, 2), ("ç" * 135, 3),  # not in it: UCS-2
    ("a" * 159 + "😀", 3),  # one emoji makes all of it UCS-2 (two units for the emoji)
])
def test_segments(text: str, expected: int) -> None:
    assert segments(text) == expected


def test_a_two_septet_character_is_not_split_across_segments() -> None:
    # 152 septets, then '€' (2) does not fit the first segment's last septet: 306 septets
    # that two full segments would hold need three.
    text = "a" * 152 + "€" + "a" * 152
    assert septets(text) == 306 and segments(text) == 3


def test_a_text_within_the_budget_is_sent_as_it_is() -> None:
    text = "x" * (153 * 4)
    assert fit(text, 4, LINK) == text


@pytest.mark.parametrize(("text", "gsm"), [
    ("disk full on db1 " * 100, True),
    ("disque plein sur db1 ça déborde " * 60, False),  # ç is not GSM-7
    ("{json: [1,2]} €uro ^ " * 80, True),  # extension characters
])
@pytest.mark.parametrize("budget", [1, 2, 4, 10])
def test_a_long_text_is_truncated_to_the_budget_with_marker_and_link(
        text: str, gsm: bool, budget: int) -> None:
    out = fit(text, budget, LINK)
    assert segments(out) <= budget and count_segments(out) <= budget
    if not gsm and budget == 1:  # 70 characters: the link would leave no room for the text
        assert out.endswith("more characters") and len(out.split("\n")[0]) > 20
        return
    assert out.endswith(f"more characters: full text at {LINK}")
    # GSM-7 stays GSM-7: the marker says "..." rather than "…".
    assert is_gsm(out) == gsm
    assert ("...  truncated" not in out) and (("... truncated" in out) == gsm)
    kept = out.rsplit("\n", 1)[0]
    assert text.startswith(kept)
    assert str(len(text) - len(kept)) in out.rsplit("\n", 1)[1]


def test_without_a_link_the_marker_stands_alone() -> None:
    out = fit("word " * 400, 2)
    assert out.endswith("more characters") and segments(out) <= 2


def _message(text: str, subject: str | None) -> Message:
    return Message(notification_id="ntf_1", channel="sms", to="+351912345678", text=text,
                   subject=subject, severity="critical", priority="high", created_at=0.0)


def test_the_subject_leads_unless_the_text_starts_with_it() -> None:
    assert compose(_message("disk full", "db1")) == "db1\ndisk full"
    assert compose(_message("[FIRING:1] disk\n- full", "[FIRING:1] disk")) == \
        "[FIRING:1] disk\n- full"
    assert compose(_message("   ", None)) == "(critical)"
