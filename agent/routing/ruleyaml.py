"""Rule-file YAML -> plain data, refusing what would crash the loader or surprise its author.

Rule files hold strings, numbers, booleans, null, lists and mappings; anything else is a problem
with its line (``YamlProblem``), never another exception:

- YAML 1.1 timestamps (``to: 2024-12-01``) stay the strings that were written: a value that only
  looks like a date (``2024-13-45``) would otherwise raise while loading, and a rule file never
  wants a ``datetime``. The same for ``=`` (the ``!!value`` tag);
- booleans are ``true`` and ``false`` only, as in YAML 1.2: ``yes``, ``no``, ``on`` and ``off``
  stay words (``name: off``, ``country: no``), and a boolean setting still takes them (the
  models read "yes" as true); numbers with ``:`` (YAML 1.1 base 60: ``1:30`` is 90) stay text;
- ``!!binary``, ``!!set``, ``!!omap``, ``!!pairs`` and unknown tags are refused;
- an explicitly tagged value that does not parse (``!!int abc``) is refused;
- an alias used inside its own anchor (a cycle), aliases expanding to far more values than the
  file holds (an "alias bomb") and nesting deeper than ``MAX_DEPTH`` are refused: each would
  otherwise end in ``RecursionError`` or exhaust memory;
- mapping keys must be scalars and may not repeat (YAML would keep the last one silently).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from yaml.composer import ComposerError

__all__ = ["MAX_DEPTH", "YamlProblem", "compose", "line_of", "load"]

# Rule files nest a few levels per route level; 100 leaves room for ~45 nested routes.
MAX_DEPTH = 100
# Values an alias may expand to, beyond the file's own size: generous for anchors shared by
# thousands of routes, far below what an exponential alias bomb reaches.
_EXPANSION_PER_CHAR = 20
_EXPANSION_BASE = 100_000

_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ, _MERGE = _TAG + "str", _TAG + "map", _TAG + "seq", _TAG + "merge"
# Kept as the text that was written (see the module docstring).
_AS_TEXT = frozenset({_STR, _TAG + "timestamp", _TAG + "value"})
_BOOL, _NUMBERS = _TAG + "bool", frozenset({_TAG + "int", _TAG + "float"})
_YAML11_BOOLS = frozenset({"yes", "no", "on", "off"})
_CONSTRUCTED = frozenset({_TAG + "null", _BOOL, *_NUMBERS})
_Scalar, _Sequence, _Mapping = yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode


class YamlProblem(Exception):
    """The text is not a usable rule file; ``line`` is 1-based (None when unknown)."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def compose(text: str) -> yaml.Node | None:
    """The node tree of ``text`` (fast parser), for looking up lines; assumes ``load`` passed."""
    return yaml.compose(text, Loader=_FAST)


def line_of(node: yaml.Node | None, loc: Iterable[int | str]) -> int | None:
    """The 1-based line of ``loc`` in a composed document (of the key, for a mapping)."""
    if node is None:
        return None
    line = int(node.start_mark.line)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == part:
                    node, line = v, int(k.start_mark.line)
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = int(node.start_mark.line)
        else:
            break
    return line + 1


def load(text: str) -> Any:
    """Parse one rule file into plain data. Raises YamlProblem (never another YAML error)."""
    try:
        node = yaml.compose(text, Loader=_FAST)
    except (yaml.YAMLError, RecursionError) as exc:
        raise _located(text, exc) from None
    if node is None:
        return None
    return _Builder(text).build(node)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml11_only(node: yaml.ScalarNode) -> bool:
    """A boolean or a number only in YAML 1.1 (see the module docstring)."""
    if node.tag == _BOOL:
        return node.value.lower() in _YAML11_BOOLS
    return node.tag in _NUMBERS and ":" in node.value


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _Builder:
    """Node tree -> data, like PyYAML's SafeConstructor but strict (see the module docstring).

    Strings (nearly every scalar of a rule file) are taken as they are; other scalars go through
    PyYAML's own constructor. Several times faster than ``yaml.safe_load`` on large files.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.scalars = yaml.SafeLoader("")
        self.open: set[int] = set()  # ids of the collections being built: a revisit is a cycle
        self.budget = _EXPANSION_PER_CHAR * len(text) + _EXPANSION_BASE

    def build(self, node: yaml.Node) -> Any:
        if node.__class__ is _Scalar:
            return node.value if node.tag == _STR else self.scalar(node)
        if id(node) in self.open:
            raise _located(self.text, YamlProblem(
                _line(node), "recursive alias: an anchor is used inside itself"))
        if len(self.open) >= MAX_DEPTH:
            raise YamlProblem(_line(node), f"nested more than {MAX_DEPTH} levels deep")
        # Counted per collection, not per value: cheaper, and as good at catching a bomb.
        self.budget -= len(node.value) + 1
        if self.budget < 0:
            raise YamlProblem(_line(node), "aliases expand this file to too many values "
                                           "(an alias used over and over inside another?)")
        self.open.add(id(node))
        try:
            if node.__class__ is _Sequence and node.tag == _SEQ:
                return [self.build(n) for n in node.value]
            if node.__class__ is _Mapping and node.tag == _MAP:
                return self.mapping(node)
            raise YamlProblem(_line(node), f"unsupported YAML tag {_short(node.tag)} (rule "
                                           "files hold strings, numbers, lists and mappings)")
        finally:
            self.open.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag in _AS_TEXT or _yaml11_only(node):
            return node.value
        if node.tag not in _CONSTRUCTED:
            raise YamlProblem(_line(node), f"unsupported YAML tag {_short(node.tag)} (rule "
                                           "files hold strings, numbers, lists and mappings)")
        try:
            return self.scalars.construct_object(node)
        except Exception:  # ValueError, KeyError...: an explicit !!int/!!bool that is not one
            raise YamlProblem(_line(node), f"{node.value[:40]!r} is not a valid "
                                           f"{_short(node.tag)}") from None

    def mapping(self, node: yaml.MappingNode) -> dict[Any, Any]:
        merged: dict[Any, Any] | None = None
        out: dict[Any, Any] = {}
        for k, v in node.value:
            if k.__class__ is not _Scalar:
                raise YamlProblem(_line(k), "a mapping key must be a plain value, "
                                            "not a list or a mapping")
            if k.tag == _STR:
                key = k.value
            elif k.tag == _MERGE:
                if merged is not None:
                    raise YamlProblem(_line(k), "duplicate key '<<'")
                merged = self.merge(v)
                continue
            else:
                key = self.scalar(k)
            if key in out:
                raise YamlProblem(_line(k), f"duplicate key '{key}' (the earlier one would be "
                                            "ignored)")
            out[key] = self.build(v)
        # Explicit keys win over merged ones, as in YAML.
        return out if merged is None else {**merged, **out}

    def merge(self, value: yaml.Node) -> dict[Any, Any]:
        """``<<: *a`` or ``<<: [*a, *b]``: earlier sources win, as in PyYAML."""
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        into: dict[Any, Any] = {}
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise YamlProblem(_line(src), "'<<' merges a mapping or a list of mappings")
            for key, item in self.build(src).items():
                into.setdefault(key, item)
        return into


class _LineFinder(yaml.SafeLoader):
    """The pure-Python composer, used only once a problem is known, to say where it is.

    It words errors better than libyaml (it names the character), and here it also stops at a
    recursive alias (at the alias, not its anchor) and at ``MAX_DEPTH`` before Python's own
    recursion limit does.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise ComposerError(None, None, f"recursive alias *{event.anchor}: the anchor "
                                                "is used inside itself", mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)


def _located(text: str, fallback: BaseException) -> YamlProblem:
    """The problem as the pure-Python composer reports it, else ``fallback`` as best we can."""
    exc: BaseException = fallback
    try:
        yaml.compose(text, Loader=_LineFinder)
    except yaml.YAMLError as slow_exc:
        exc = slow_exc
    except RecursionError:
        pass
    if isinstance(exc, YamlProblem):
        return exc
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        return YamlProblem(mark.line + 1 if mark is not None else None,
                           f"invalid YAML: {exc.problem}")
    if isinstance(exc, RecursionError):
        return YamlProblem(None, f"invalid YAML: nested more than {MAX_DEPTH} levels deep")
    return YamlProblem(None, f"invalid YAML: {exc}")
