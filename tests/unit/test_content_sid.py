"""``content_sid`` (a WhatsApp template) on rule-file templates and notify targets: validated at
load, carried through the route snapshot into each notification's metadata, the target's over
the template's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.domain import Alert, GroupMember, GroupSnapshot, fingerprint_of
from agent.grouping.flush import build_flush, plan
from agent.routing.loader import RulesError, load_rules
from agent.routing.router import route_alert
from tests.unit.test_grouping import NOW, ids, stored

TPL_SID = "HX" + "1" * 32
TARGET_SID = "HX" + "2" * 32
RULES = f"""
templates:
  - name: wa
    channel: whatsapp
    body: "{{{{ alerts[0].labels.alertname }}}}"
    content_sid: {TPL_SID}
routes:
  - name: db
    matchers: ['alertname="PgDown"']
    group_wait: 0s
    notify:
      - {{channel: whatsapp, to: "+351912345678", template: wa}}
      - {{channel: whatsapp, to: "+351912345679", template: wa, content_sid: {TARGET_SID}}}
      - {{channel: whatsapp, to: "+351912345670"}}
      - {{channel: sms, to: "+351912345678", template: wa}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(textwrap.dedent(text))
    return rules


def test_content_sid_reaches_the_notification_metadata(tmp_path: Path) -> None:
    rules = load_rules(_write(tmp_path, RULES),
                       allow_unlisted=frozenset({"sms", "whatsapp"}))  # literal numbers
    labels = {"alertname": "PgDown"}
    a = Alert(source="alertmanager", fingerprint=fingerprint_of(labels), status="firing",
              labels=labels, annotations={})
    [d] = route_alert(rules, a)
    snap = rules.snapshot(d.route)
    m = GroupMember(stored(1, labels, severity=d.severity), "firing", None)
    g = GroupSnapshot(id=1, key=d.group_key, route_id=d.route.id, route=snap,
                      labels=d.group_labels, version=1, last_flush_at=None,
                      created_at=NOW, members=[m])
    f = build_flush(g, snap, plan(g.members, None, snap, NOW, False), NOW, make_id=ids())
    assert [n.metadata.get("content_sid") for n in f.notifications] == [
        TPL_SID, TARGET_SID, None, TPL_SID]


@pytest.mark.parametrize(("text", "fragment"), [
    ("routes: [{notify: [{channel: sms, to: '+351912345678', content_sid: HX" + "1" * 32
     + "}]}]", "content_sid applies to the whatsapp channel only"),
    ("routes: [{notify: [{channel: whatsapp, to: '+351912345678', content_sid: HX1}]}]",
     "content_sid"),
    ("templates: [{name: t, channel: sms, body: x, content_sid: HX" + "1" * 32 + "}]",
     "content_sid applies to the whatsapp channel only"),
])
def test_a_content_sid_is_checked_at_load(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(RulesError) as info:
        load_rules(_write(tmp_path, text), allow_unlisted=frozenset({"sms", "whatsapp"}))
    assert any(fragment in p.message for p in info.value.problems), info.value.problems
