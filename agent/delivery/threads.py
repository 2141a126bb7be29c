"""Which earlier message a notification of an alert group edits or replies to.

A group's thread is its key plus its id: ids are never reused, so the next incident of the same
labels (after every alert resolved and the group was dropped) starts a new message instead of
editing a resolved one. Per route target (``update:``): ``edit`` (default) edits the group's
latest delivered message on that channel and recipient (an edit keeps the message, a refused
edit's fallback is the new message); ``thread`` replies under the first one; ``new`` posts
anew. A repeat of a still-firing group posts anew in every mode: an edit notifies nobody, and a
repeat is a reminder. Later edits then reach the repeat, the latest message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from agent.channels.base import UpdateMode
from agent.domain import Notification

ReplacesLookup = Callable[[Notification], Awaitable[dict[str, Any] | None]]
_MODES: dict[Any, UpdateMode] = {"edit": "edit", "thread": "thread", "new": "new"}


class ThreadRefs(Protocol):
    async def first_ref(self, thread_key: str, channel: str,
                        recipient: str) -> dict[str, Any] | None: ...

    async def latest_ref(self, thread_key: str, channel: str,
                         recipient: str) -> dict[str, Any] | None: ...


def thread_of(metadata: Mapping[str, Any]) -> str | None:
    """The thread key of a group's notification (None for a plain API send)."""
    key = metadata.get("group_key")
    if not isinstance(key, str):
        return None
    gid = metadata.get("group_id")
    return f"{key}#{gid}" if isinstance(gid, int) else key


def update_mode(metadata: Mapping[str, Any]) -> UpdateMode:
    """How this notification relates to the group's earlier message (see the module doc)."""
    if metadata.get("reason") == "repeat":
        return "new"
    return _MODES.get(metadata.get("update"), "edit")


def replaces_lookup(refs: ThreadRefs) -> ReplacesLookup:
    """The dispatcher's hook: the provider ref a notification edits or replies to, or None."""

    async def lookup(n: Notification) -> dict[str, Any] | None:
        thread = thread_of(n.metadata)
        mode = update_mode(n.metadata)
        if thread is None or mode == "new":
            return None
        if mode == "thread":
            return await refs.first_ref(thread, n.channel, n.recipient)
        return await refs.latest_ref(thread, n.channel, n.recipient)

    return lookup
