"""The ntfy emulator parses action buttons as ntfy does: the cases of ntfy's own
server/actions_test.go (TestParseActions), and the agent's Acknowledge button."""

from __future__ import annotations

import pytest

from agent.channels.push import ack_action
from tests.emulators.ntfy_actions import ActionsInvalid, parse_actions


def test_ntfys_own_cases() -> None:
    assert parse_actions("[]") == []
    basic = parse_actions("action=http, label=Open door, url=https://door.lan/open; "
                          "view, Show portal, https://door.lan")
    assert [(a.action, a.label, a.url) for a in basic] == [
        ("http", "Open door", "https://door.lan/open"),
        ("view", "Show portal", "https://door.lan")]
    as_json = parse_actions('[{"action":"http","label":"Open door","url":"https://door.lan/open"},'
                            ' {"action":"view","label":"Show portal","url":"https://door.lan"}]')
    assert [(a.action, a.label, a.url) for a in as_json] == [
        (a.action, a.label, a.url) for a in basic]
    [other] = parse_actions("action=http, label=Open door, url=https://door.lan/open, "
                            "body=this is a body, method=PUT")
    assert (other.method, other.body) == ("PUT", "this is a body")
    [extras] = parse_actions("action=broadcast, label=Do a thing, extras.command=some command, "
                             "extras.some_param=a parameter")
    assert extras.extras == {"command": "some command", "some_param": "a parameter"}
    [headers] = parse_actions("action=http, label=Send request, url=http://example.com, "
                              "method=GET, headers.Content-Type=application/json, "
                              "headers.Authorization=Basic sdasffsf")
    assert headers.headers == {"Content-Type": "application/json",
                               "Authorization": "Basic sdasffsf"}
    [quotes] = parse_actions(
        'action=http, "Look ma, \\"quotes\\"; and semicolons", url=http://example.com')
    assert (quotes.label, quotes.url) == ('Look ma, \\"quotes\\"; and semicolons',
                                          "http://example.com")
    [single] = parse_actions(
        "action=http, '\"quotes\" and \\'single quotes\\'', url=http://example.com")
    assert single.label == "\"quotes\" and \\'single quotes\\'"
    [order] = parse_actions('label="Out of order!" , action="http", url=http://example.com')
    assert (order.action, order.label, order.url) == ("http", "Out of order!",
                                                      "http://example.com")
    [spaces] = parse_actions("action = http, label = 'this is a label', "
                             "url = \"http://google.com\"")
    assert (spaces.label, spaces.url) == ("this is a label", "http://google.com")
    [unicode] = parse_actions("action = http, 'Кохайтеся а не воюйте, 💙🫤', "
                              "url = \"http://google.com\"")
    assert unicode.label == "Кохайтеся а не воюйте, 💙🫤"


@pytest.mark.parametrize(("raw", "error"), [
    ('label="Out of order!" x, action="http", url=http://example.com',
     "unexpected character 'x' at position 22"),
    ('label="", action="http", url=http://example.com', "parameter 'label' is required"),
    ('label=, action="http", url=http://example.com', "parameter 'label' is required"),
    ('label="xx", action="http", url=http://example.com, what is this anyway',
     "term 'what is this anyway' unknown"),
    ("fdsfdsf", "action 'fdsfdsf' unknown"),
    ("aaa=a, \"bbb, 'ccc, ddd, eee \"", "key 'aaa' unknown"),
    ('action=http, label="omg the end quote is missing',
     "unexpected end of input, quote started at position 20"),
    ("view, a, https://x; view, b, https://x; view, c, https://x; view, d, https://x",
     "only 3 actions allowed"),
])
def test_ntfys_refusals(raw: str, error: str) -> None:
    with pytest.raises(ActionsInvalid, match=error.replace("(", r"\(")):
        parse_actions(raw)


def test_the_acknowledge_button_is_a_one_tap_post_of_the_links_form() -> None:
    url = "https://agent.example/ack/eyJuIjoibnRmXzEifQ.c2lnbmF0dXJl-_"
    [tap] = parse_actions(ack_action(url, "csrf=Zm9vYmFy-_x"))
    assert (tap.action, tap.label, tap.url, tap.method, tap.body, tap.clear) == (
        "http", "Acknowledge", url, "POST", "csrf=Zm9vYmFy-_x", True)
    assert tap.headers == {"Content-Type": "application/x-www-form-urlencoded"}
    [view] = parse_actions(ack_action(url, None))
    assert (view.action, view.url, view.method, view.body) == ("view", url, "", "")
    odd = "https://agent.example/a,b;c/ack/eyJuIjoibnRmXzEifQ.c2ln"  # a public_url with , and ;
    [tap] = parse_actions(ack_action(odd, "csrf=x"))
    assert (tap.url, tap.body) == (odd, "csrf=x")
