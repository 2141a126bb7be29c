"""An alias file: a YAML (or JSON) mapping of alias -> secret URL, for the channels whose
addresses are aliases of URLs that carry credentials (teams' Workflows URLs, apprise's URLs).

Errors name the file, the line and the alias, never a URL: a YAML error message quotes the line
it is about, and a URL pasted where an alias goes must not be echoed either.
"""

from __future__ import annotations

from typing import Any

import yaml

from agent.channels.base import ChannelConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML (and so JSON) whose mappings refuse a repeated key instead of keeping the last."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ChannelConfigError(f"alias {named(key)} is set twice "
                                     f"(line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _unique_mapping)


def named(alias: object) -> str:
    """An alias as an error may show it: never one of a URL's shape (a URL pasted as key)."""
    text = str(alias)
    if len(text) <= 64 and not set(text) & set(":/?=&@"):
        return f"'{text}'"
    return "of a URL's shape"


def parse_alias_file(text: str, where: str, what: str = "URL") -> dict[str, str]:
    """The alias -> URL mapping in ``text`` (from ``where``, a setting's name). Raises
    ChannelConfigError."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except ChannelConfigError as exc:
        raise ChannelConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        # Not str(exc): the YAML error quotes the line, which holds a URL.
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ChannelConfigError(f"{where}: not valid YAML or JSON{at}") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ChannelConfigError(f"{where}: must be a mapping of alias to {what}")
    return data
