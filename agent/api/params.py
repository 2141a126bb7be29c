"""Query-parameter parsing shared by the list handlers."""

from __future__ import annotations

from typing import Any

from agent.api.errors import ApiError


def enum_param(query: Any, name: str, choices: type[Any]) -> str | None:
    """The value of query parameter `name` if it is one of `choices`; 422 otherwise."""
    value = query.get(name)
    if value is None:
        return None
    allowed = [c.value for c in choices]
    if value not in allowed:
        raise ApiError(422, f"invalid_{name}", f"Invalid {name} '{value}'. One of: "
                       + ", ".join(allowed) + ".", name)
    return str(value)
