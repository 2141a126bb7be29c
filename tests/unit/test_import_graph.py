"""The package layout shows the pipeline (issue 11): no cycles between the packages of agent/,
the pure stages import no other stage, and template rendering is a leaf.

Modules are parsed with ``ast``, never imported, so the check sees every import, including the
ones inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "agent"

# Modules any stage may import: the vocabulary (address syntax and the team directory included),
# the leaf renderer and its sandbox.
SHARED = frozenset({"agent.domain", "agent.addresses", "agent.directory", "agent.rendering",
                    "agent.sandbox",
                    # on-call rotations: the directory's teams carry them, the API, the CLI and
                    # (later) escalation ask who is on call; pure, time passed in
                    "agent.oncall"})

# Debts the layout still carries, each with the reason it is not fixed yet. An entry that is no
# longer needed fails the test, so the list cannot outlive the debt.
KNOWN_STAGE_IMPORTS: dict[tuple[str, str], str] = {
    ("agent.routing", "agent.ingest"): (
        "a rule file's `generic:` mappings are compiled by routing/loader.py into "
        "ingest.generic.GenericMapping and carried by RuleSet; the mapping model belongs in "
        "ingest, so moving the compile step out of the loader is its own change"
    ),
    ("agent.routing", "agent.observability"): (
        "routing/loader.py logs the traceback of an internal loader error (_internal_error); "
        "returning it with the Problem for the reloading service (services/rules.py) to log "
        "changes the Problem type the CLI and /v1/rules/status share"
    ),
}

# The pure stages reach no server, database, event loop or clock either: time comes in as an
# argument (see agent/services/rules.py for the reloading that needs one).
_IMPURE = frozenset({"aiohttp", "sqlite3", "asyncio", "time", "watchfiles"})
FORBIDDEN_THIRD_PARTY: dict[str, frozenset[str]] = {
    "agent.ingest": _IMPURE,
    "agent.routing": _IMPURE,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> Iterator[str]:
    """Every module name `path` imports (absolute, relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            yield mod
            # `from agent import x` imports the module agent.x
            for alias in node.names:
                yield f"{mod}.{alias.name}"


def _unit(module: str) -> str | None:
    """The layout unit of an agent module: `agent.X` for a package or a top-level module."""
    parts = module.split(".")
    if parts[0] != "agent" or len(parts) < 2:
        return None
    unit = f"agent.{parts[1]}"
    if (AGENT / parts[1]).is_dir() or (AGENT / f"{parts[1]}.py").is_file():
        return unit
    return None


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Unit → agent units it imports, and unit → top-level third-party/stdlib names it imports."""
    units: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for path in sorted(AGENT.rglob("*.py")):
        src = _unit(_module_name(path))
        if src is None:  # agent/__init__.py
            continue
        deps = units.setdefault(src, set())
        ext = external.setdefault(src, set())
        for mod in _imports(path):
            dst = _unit(mod)
            if dst is None:
                if mod.split(".")[0] != "agent":
                    ext.add(mod.split(".")[0])
            elif dst != src:
                deps.add(dst)
    return units, external


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_find_cycle_reports_the_path() -> None:
    # The checker itself must be able to fail.
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_cycles_between_packages() -> None:
    units, _ = _graph()
    cycle = _find_cycle(units)
    assert cycle is None, "package cycle: " + " -> ".join(cycle or [])


def test_pure_stages_import_no_other_stage() -> None:
    units, external = _graph()
    violations = []
    used_debts = set()
    for stage in ("agent.ingest", "agent.routing", "agent.channels"):
        for dst in sorted(units[stage] - SHARED):
            if (stage, dst) in KNOWN_STAGE_IMPORTS:
                used_debts.add((stage, dst))
            else:
                violations.append(f"{stage} imports {dst}")
        for name in sorted(external[stage] & FORBIDDEN_THIRD_PARTY.get(stage, frozenset())):
            violations.append(f"{stage} imports {name}")
    assert violations == []
    stale = set(KNOWN_STAGE_IMPORTS) - used_debts
    assert not stale, f"allow-list entries no longer needed, remove them: {sorted(stale)}"


# What each stage must not reach: grouping hands notifications to the outbox and never calls
# the dispatcher or a channel; delivery works from outbox rows alone, whatever made them; the
# store holds rows and knows no stage that reads or writes them.
NOT_DOWNSTREAM: dict[str, frozenset[str]] = {
    "agent.grouping": frozenset({"agent.delivery", "agent.channels", "agent.api"}),
    "agent.delivery": frozenset({"agent.ingest", "agent.routing", "agent.grouping",
                                 "agent.services", "agent.api"}),
    "agent.store": frozenset({"agent.ingest", "agent.routing", "agent.grouping",
                              "agent.delivery", "agent.channels", "agent.services",
                              "agent.api"}),
}


def test_stages_reach_only_their_neighbours() -> None:
    units, _ = _graph()
    reached = {stage: sorted(units[stage] & banned) for stage, banned in NOT_DOWNSTREAM.items()}
    assert reached == {stage: [] for stage in NOT_DOWNSTREAM}


def test_rendering_and_sandbox_are_leaves() -> None:
    units, _ = _graph()
    assert AGENT.joinpath("rendering.py").is_file(), "templates render in agent/rendering.py"
    assert units["agent.sandbox"] - {"agent.domain"} == set()
    assert units["agent.rendering"] - {"agent.domain", "agent.sandbox"} == set()


def test_handlers_leave_intake_state_to_the_service() -> None:
    # Resolving an alert lifts inhibitions and updates the active index: the ingest service's
    # job (services/ingest.py), so the API, the CLI and a chat button do it the same way.
    touched = []
    for path in sorted((AGENT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in ("inhibition", "active")
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "intake"):
                touched.append(f"{path.relative_to(ROOT)}:{node.lineno} .intake.{node.attr}")
    assert touched == []


def test_services_know_no_http() -> None:
    # Services are what the API, the CLI and a chat button share: they raise domain errors
    # (services/errors.py) that each caller translates, and never reach back into the API.
    units, external = _graph()
    assert "aiohttp" not in external["agent.services"]
    assert "agent.api" not in units["agent.services"]


def test_api_context_carries_no_wake_callables() -> None:
    # The services wake the loops they feed; a handler has nothing to wake.
    from dataclasses import fields

    from agent.api.context import ApiContext

    names = {f.name for f in fields(ApiContext)}
    assert {"notifications", "intake"} <= names
    assert not {n for n in names if n.startswith("wake_")}
