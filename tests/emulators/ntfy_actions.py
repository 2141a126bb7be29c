"""ntfy's action buttons (the ``Actions`` header) parsed as ntfy's server parses them
(server/actions.go, docs "Action buttons"), for the ntfy emulator.

Two forms: a JSON array (the header starts with ``[``), or the "simple" format: actions split
by ``;``, sections by ``,``; a section is ``key=value`` (key ``[-.\\w]+``) or, in the first three
places, a bare value for ``action``, ``label`` and (view and http) ``url``; a value may be
quoted with ``"`` or ``'`` to hold commas; ``headers.X=`` and ``extras.X=`` fill maps. At most
three actions; each needs a known action, a label, and a url for view and http; an http
action's method defaults to POST (the app's default) and GET or HEAD cannot have a body.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("view", "broadcast", "http")
_KEY = re.compile(r"([-.\w]+)\s*=\s*")
_SPACES = " \t\r\n"


class ActionsInvalid(ValueError):
    """ntfy's ``400 {"code": 40018, "error": "invalid request: actions invalid"}``."""


@dataclass
class Action:
    action: str
    label: str
    url: str = ""
    method: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    clear: bool = False
    extras: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """As ntfy's message JSON shows the action (empty fields left out)."""
        out: dict[str, Any] = {"action": self.action, "label": self.label, "clear": self.clear}
        optional = {"url": self.url, "method": self.method, "headers": self.headers,
                    "body": self.body, "extras": self.extras}
        out.update({k: v for k, v in optional.items() if v})
        return out


def parse_actions(raw: str) -> list[Action]:
    """The header's actions; raises ActionsInvalid as ntfy would refuse them."""
    raw = raw.strip()
    actions = _from_json(raw) if raw.startswith("[") else _Simple(raw).parse()
    if len(actions) > 3:
        raise ActionsInvalid("only 3 actions allowed")
    for a in actions:
        a.action, a.method = a.action.lower(), a.method.upper()
        if a.action not in ACTIONS:
            raise ActionsInvalid(f"action '{a.action}' unknown")
        if not a.label:
            raise ActionsInvalid("parameter 'label' is required")
        if a.action in ("view", "http") and not a.url:
            raise ActionsInvalid(f"parameter 'url' is required for action '{a.action}'")
        if a.action == "http" and a.method in ("GET", "HEAD") and a.body:
            raise ActionsInvalid(f"parameter 'body' cannot be set if method is {a.method}")
        if a.action == "http" and not a.method:
            a.method = "POST"
    return actions


def _from_json(raw: str) -> list[Action]:
    try:
        items = json.loads(raw)
        return [Action(action=str(i.get("action", "")), label=str(i.get("label", "")),
                       url=str(i.get("url", "")), method=str(i.get("method", "")),
                       headers=dict(i.get("headers") or {}), body=str(i.get("body", "")),
                       clear=bool(i.get("clear", False)), extras=dict(i.get("extras") or {}))
                for i in items]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ActionsInvalid(str(exc)) from None


class _Simple:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def parse(self) -> list[Action]:
        actions: list[Action] = []
        while self.pos < len(self.text):
            actions.append(self._action())
        return actions

    def _action(self) -> Action:
        a = Action(action="", label="")
        section = 0
        while True:
            key, value, last = self._section()
            _populate(a, section, key, value)
            self._spaces()
            if last:
                return a
            section += 1

    def _section(self) -> tuple[str, str, bool]:
        self._spaces()
        key = ""
        found = _KEY.match(self.text, self.pos)
        if found is not None:
            key, self.pos = found.group(1), found.end()
        ch = self._peek()
        if ch in ("", ",", ";"):
            self.pos += len(ch)
            return key, "", ch in ("", ";")
        if ch in ("\"", "'"):
            return (key, *self._quoted(ch))
        start = self.pos
        while self._peek() not in ("", ",", ";"):
            self.pos += 1
        value, end = self.text[start:self.pos], self._peek()
        self.pos += len(end)
        return key, value, end in ("", ";")

    def _quoted(self, quote: str) -> tuple[str, bool]:
        self.pos += 1
        start, prev = self.pos, ""
        while True:
            ch = self._peek()
            if ch == "":
                raise ActionsInvalid(f"unexpected end of input, quote started at position "
                                     f"{start}")
            if ch == quote and prev != "\\":
                value = self.text[start:self.pos]
                self.pos += 1
                self._spaces()
                end = self._peek()
                if end not in ("", ",", ";"):
                    raise ActionsInvalid(f"unexpected character '{end}' at position {self.pos}")
                self.pos += len(end)
                return value, end in ("", ";")
            prev = ch
            self.pos += 1

    def _spaces(self) -> None:
        while self._peek() and self._peek() in _SPACES:
            self.pos += 1

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""


def _populate(a: Action, section: int, key: str, value: str) -> None:
    if not key:
        positional = {0: "action", 1: "label"}
        if a.action in ("view", "http"):
            positional[2] = "url"
        key = positional.get(section, "")
    if not key:
        raise ActionsInvalid(f"term '{value}' unknown")
    if key.startswith("headers."):
        a.headers[key.removeprefix("headers.")] = value
    elif key.startswith("extras."):
        a.extras[key.removeprefix("extras.")] = value
    elif key.lower() == "clear":
        if value.lower() not in ("true", "yes", "1", "false", "no", "0"):
            raise ActionsInvalid(f"'clear={value}' not allowed")
        a.clear = value.lower() in ("true", "yes", "1")
    elif key.lower() in ("action", "label", "url", "method", "body"):
        setattr(a, key.lower(), value)
    else:
        raise ActionsInvalid(f"key '{key}' unknown")
