"""Inhibition: an active alert matching a rule's source matchers mutes the alerts matching its
target matchers that share the ``equal`` labels (Alertmanager ``inhibit_rules``).

An in-memory index of active source alerts, rebuilt from the store at start and after a rules
reload; changes observed while a rebuild reads the store are replayed on top of its snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.routing.ruleset import InhibitRule

AlertKey = tuple[str, str]  # (source, fingerprint)


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule]) -> None:
        self.rules = tuple(rules)
        # Per rule: equal-label values -> active source alerts with those values.
        self._sources: list[dict[tuple[str, ...], set[AlertKey]]] = [{} for _ in self.rules]
        self._log: list[tuple[AlertKey, Mapping[str, str], bool]] | None = None

    def observe(self, key: AlertKey, labels: Mapping[str, str], active: bool) -> None:
        """An alert became active (firing) or stopped being active."""
        if self._log is not None:
            self._log.append((key, labels, active))
        self._apply(key, labels, active)

    def _apply(self, key: AlertKey, labels: Mapping[str, str], active: bool) -> None:
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not all(m.matches(labels) for m in rule.source):
                continue
            values = tuple(labels.get(n, "") for n in rule.equal)
            if active:
                index.setdefault(values, set()).add(key)
            else:
                keys = index.get(values)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[values]

    def inhibited(self, key: AlertKey, labels: Mapping[str, str]) -> bool:
        """True when an active source alert other than this one mutes it."""
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not all(m.matches(labels) for m in rule.target):
                continue
            keys = index.get(tuple(labels.get(n, "") for n in rule.equal))
            if keys and (len(keys) > 1 or key not in keys):
                return True
        return False

    def begin_rebuild(self) -> None:
        """Start recording observations; the store snapshot is read next."""
        self._log = []

    def finish_rebuild(self, active: Iterable[tuple[AlertKey, Mapping[str, str]]]) -> None:
        """Replace the index with the snapshot, then replay what happened meanwhile."""
        log, self._log = self._log or [], None
        self._sources = [{} for _ in self.rules]
        for key, labels in active:
            self._apply(key, labels, True)
        for key, labels, is_active in log:
            self._apply(key, labels, is_active)
