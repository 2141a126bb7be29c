"""A team's ``oncall:`` in the rule files: what loads, every problem with its file and line, and
``oncall:team_x`` resolving in the directory to whoever is on call at the instant given."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import directory as people
from agent.routing.loader import RulesError, load_rules

PEOPLE = """\
members:
  - {id: mem_ana, name: Ana, approved: true, addresses: {email: ana@example.com}}
  - {id: mem_raj, name: Raj, approved: true, addresses: {email: raj@example.com}}
  - {id: mem_lee, name: Lee, approved: true}
  - {id: mem_out, name: Out, approved: true}
  - {id: mem_no, name: Nolan, approved: false, addresses: {email: no@example.com}}
"""


def team(oncall: str, members: str = "[mem_ana, mem_raj, mem_lee, mem_no]") -> str:
    return f"""\
teams:
  - id: team_platform
    members: {members}
    oncall:
{oncall}"""


ROTATION = """\
      members: [mem_ana, mem_raj]
      length: 1w
      handoff: "2026-12-07T09:00:00"
      timezone: Europe/Lisbon
"""


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def load(tmp_path: Path, text: str) -> people.Directory:
    (tmp_path / "people.yaml").write_text(PEOPLE + text)
    return load_rules(tmp_path).directory


def problem(tmp_path: Path, text: str) -> tuple[int | None, str]:
    (tmp_path / "people.yaml").write_text(PEOPLE + text)
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    [found] = info.value.problems
    assert found.file == "people.yaml", found
    return found.line, found.message


def line(text: str, needle: str) -> int:
    """The 1-based line in the file (``PEOPLE`` then ``text``) of ``needle`` in ``text``."""
    found = next(i for i, s in enumerate(text.splitlines(), 1) if needle in s)
    return len(PEOPLE.splitlines()) + found


def test_the_issue_shape_loads(tmp_path: Path) -> None:
    # Unquoted timestamps too: the rule-file YAML keeps them as the text written.
    d = load(tmp_path, team(ROTATION + """\
      overrides:
        - {member: mem_lee, start: 2026-12-10T18:00:00, end: "2026-12-11T09:00:00Z"}
        - {member: mem_raj, start: "2026-12-20T00:00:00+01:00", end: 2026-12-21T00:00:00}
"""))
    rotation = d.teams["team_platform"].oncall
    assert rotation is not None
    assert (rotation.members, rotation.length.total_seconds(), rotation.timezone) == (
        ("mem_ana", "mem_raj"), 604800.0, "Europe/Lisbon")
    assert rotation.handoff == datetime(2026, 12, 7, 9)
    # A naive override time is Lisbon's wall clock (UTC+0 in December); one with an offset is
    # that instant.
    assert [(o.member, o.start, o.end) for o in rotation.overrides] == [
        ("mem_lee", utc("2026-12-10T18:00"), utc("2026-12-11T09:00")),
        ("mem_raj", utc("2026-12-19T23:00"), utc("2026-12-21T00:00"))]
    found = people.on_call(d, "team_platform", utc("2026-12-10T20:00"))
    assert found is not None and (found.members, found.next) == (("mem_lee",), ("mem_ana",))
    assert people.on_call(d, "team_nope", 0.0) is None


def test_a_team_without_oncall_has_no_rotation(tmp_path: Path) -> None:
    d = load(tmp_path, "teams:\n  - id: team_platform\n    members: [mem_ana]\n")
    assert d.teams["team_platform"].oncall is None
    assert people.on_call(d, "team_platform", 0.0) is None


@pytest.mark.parametrize(("oncall", "needle", "words"), [
    (ROTATION.replace("[mem_ana, mem_raj]", "[mem_ana, mem_ghost]"), "      members: [mem_ana,",
     "team 'team_platform': oncall: unknown member 'mem_ghost'"),
    (ROTATION.replace("[mem_ana, mem_raj]", "[mem_ana, mem_out]"), "      members: [mem_ana,",
     "oncall: member 'mem_out' is not in the team"),
    (ROTATION.replace("[mem_ana, mem_raj]", "[]"), "      members: []", "at least 1 item"),
    (ROTATION.replace("Europe/Lisbon", "Mars/Base"), "timezone:", "unknown time zone"),
    (ROTATION.replace("Europe/Lisbon", "../../etc/passwd"), "timezone:", "unknown time zone"),
    (ROTATION.replace("1w", "0s"), "length:", "at least 1h"),
    (ROTATION.replace("1w", "30m"), "length:", "at least 1h"),
    (ROTATION.replace("1w", "-1d"), "length:", "invalid duration"),
    (ROTATION.replace('"2026-12-07T09:00:00"', '"2026-12-07T09:00:00Z"'), "handoff:",
     "without an offset"),
    (ROTATION.replace('"2026-12-07T09:00:00"', '"next monday"'), "handoff:",
     "invalid date and time"),
    (ROTATION.replace('"2026-12-07T09:00:00"', "1765098000"), "handoff:",
     "a date and time like"),
    (ROTATION + "      overrides:\n        - {member: mem_ghost, start: 2026-12-10T00:00:00, "
     "end: 2026-12-11T00:00:00}\n", "mem_ghost", "overrides[0]: unknown member 'mem_ghost'"),
    (ROTATION + "      overrides:\n        - {member: mem_out, start: 2026-12-10T00:00:00, "
     "end: 2026-12-11T00:00:00}\n", "mem_out", "overrides[0]: member 'mem_out' is not in"),
    (ROTATION + "      overrides:\n        - {member: mem_lee, start: 2026-12-10T00:00:00, "
     "end: 2026-12-10T00:00:00}\n", "{member: mem_lee", "overrides[0]: end must be after start"),
    # 01:00 Lisbon (UTC+0) is the same instant as 02:00+01:00: empty, so refused.
    (ROTATION + "      overrides:\n        - {member: mem_lee, start: 2026-12-10T01:00:00, "
     "end: '2026-12-10T02:00:00+01:00'}\n", "{member: mem_lee", "end must be after start"),
    (ROTATION + "      overrides:\n"
     "        - {member: mem_lee, start: 2026-12-10T00:00:00, end: 2026-12-15T00:00:00}\n"
     "        - {member: mem_raj, start: 2026-12-11T00:00:00, end: 2026-12-12T00:00:00}\n",
     "mem_raj, start", "overrides[1] overlaps overrides[0]"),
    (ROTATION + "      overrides:\n        - {member: mem_lee, start: tomorrow, "
     "end: 2026-12-10T00:00:00}\n", "{member: mem_lee", "invalid date and time 'tomorrow'"),
    (ROTATION + "      shift: 1w\n", "shift:", "Extra inputs are not permitted"),
])
def test_rotation_problems_name_file_and_line(tmp_path: Path, oncall: str, needle: str,
                                              words: str) -> None:
    text = team(oncall)
    at, message = problem(tmp_path, text)
    assert words in message, message
    assert at == line(text, needle), (at, message)


def test_overlaps_are_found_whatever_the_order(tmp_path: Path) -> None:
    # The long override is listed last; the two short ones inside it do not touch each other.
    text = team(ROTATION + """\
      overrides:
        - {member: mem_raj, start: 2026-12-11T00:00:00, end: 2026-12-12T00:00:00}
        - {member: mem_ana, start: 2026-12-13T00:00:00, end: 2026-12-14T00:00:00}
        - {member: mem_lee, start: 2026-12-10T00:00:00, end: 2026-12-20T00:00:00}
""")
    (tmp_path / "people.yaml").write_text(PEOPLE + text)
    with pytest.raises(RulesError) as info:
        load_rules(tmp_path)
    assert sorted(p.message.split(": ", 2)[-1] for p in info.value.problems) == [
        "overrides[2] overlaps overrides[0]", "overrides[2] overlaps overrides[1]"]


def test_back_to_back_overrides_do_not_overlap(tmp_path: Path) -> None:
    d = load(tmp_path, team(ROTATION + """\
      overrides:
        - {member: mem_raj, start: 2026-12-11T00:00:00, end: 2026-12-12T00:00:00}
        - {member: mem_lee, start: 2026-12-12T00:00:00, end: 2026-12-13T00:00:00}
"""))
    found = people.on_call(d, "team_platform", utc("2026-12-11T12:00"))
    assert found is not None and (found.members, found.next) == (("mem_raj",), ("mem_lee",))


# --- `to: oncall:team_x` ------------------------------------------------------------------------


def test_oncall_resolves_to_the_member_on_call_at_the_instant(tmp_path: Path) -> None:
    d = load(tmp_path, team(ROTATION))
    first = people.resolve(d, "email", "oncall:team_platform", at=utc("2026-12-08T00:00"))
    assert first.fan_out and first.recipients == (
        people.Recipient("ana@example.com", "mem_ana"),)
    second = people.resolve(d, "email", "oncall:team_platform", at=utc("2026-12-15T00:00"))
    assert second.recipients == (people.Recipient("raj@example.com", "mem_raj"),)
    assert people.is_reference("oncall:team_platform")


@pytest.mark.parametrize(("to", "channel", "at", "code", "words"), [
    ("oncall:team_nope", "email", "2026-12-08T00:00", "recipient_not_found", "team_nope"),
    ("oncall:team_plain", "email", "2026-12-08T00:00", "recipient_not_found",
     "with an on-call rotation"),
    # mem_lee is on call but has no email address; mem_no is on call but not approved.
    ("oncall:team_platform", "email", "2026-12-10T12:00", "recipient_not_approved",
     "Nobody on call for 'team_platform'"),
    ("oncall:team_platform", "email", "2026-12-12T12:00", "recipient_not_approved",
     "(mem_no)"),
])
def test_oncall_targets_nobody_can_reach_are_refused(tmp_path: Path, to: str, channel: str,
                                                     at: str, code: str, words: str) -> None:
    d = load(tmp_path, team(ROTATION + """\
      overrides:
        - {member: mem_lee, start: 2026-12-10T00:00:00, end: 2026-12-11T00:00:00}
        - {member: mem_no, start: 2026-12-12T00:00:00, end: 2026-12-13T00:00:00}
""") + "  - id: team_plain\n    members: [mem_ana]\n")
    with pytest.raises(people.Refused) as info:
        people.resolve(d, channel, to, at=utc(at))
    assert info.value.code == code and words in info.value.message, info.value.message


def test_resolving_oncall_without_an_instant_is_a_caller_bug(tmp_path: Path) -> None:
    d = load(tmp_path, team(ROTATION))
    with pytest.raises(ValueError, match="needs the instant"):
        people.resolve(d, "email", "oncall:team_platform")


@pytest.mark.parametrize(("to", "words"), [
    ("oncall:team_nope", "No such team with an on-call rotation: 'team_nope'"),
    ("oncall:team_plain", "No such team with an on-call rotation: 'team_plain'"),
])
def test_rule_targets_name_a_team_with_a_rotation(tmp_path: Path, to: str, words: str) -> None:
    text = (team(ROTATION) + "  - id: team_plain\n    members: [mem_ana]\n"
            f"routes:\n  - notify: [{{channel: email, to: '{to}'}}]\n")
    at, message = problem(tmp_path, text)
    assert words in message and at == line(text, "notify:"), (at, message)


def test_a_rule_target_whose_on_call_member_has_no_address_loads(tmp_path: Path) -> None:
    # As for a team: who is on call changes, so an unreachable one is the notification's
    # failure (recipient_not_approved) when it happens, not a rules error.
    text = team(ROTATION.replace("[mem_ana, mem_raj]", "[mem_lee]")) + (
        "routes:\n  - notify: [{channel: email, to: 'oncall:team_platform'}]\n")
    assert load(tmp_path, text).teams["team_platform"].oncall is not None
