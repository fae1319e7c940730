"""One label index over this host's workload endpoints, for the calculations that pick
local workload endpoints by selector (Felix has them add "extra computed selectors" to
its active rules calculator's index, so they share it).

Its users are the BGP peers' ``localWorkloadSelector`` (``bgp_peers``) and the live
migrations' ``spec.target.selector`` (``live_migration``). Selectors match an endpoint's
own labels and those inherited from its profiles, as policy selectors do. Each user
files its selectors under its own name and hears, for its own selectors only,
``on_match_changed(selector_id, endpoint_key)`` whenever a pair starts or stops
matching (the index is consistent by then, so the callback may query it).

Almost no cluster has such selectors, so the index exists only while at least one is
filed: it is built from the calculation's current endpoints and profiles when the first
one appears, and dropped with the last. Until then the calculation skips it entirely
(``active``).
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping

from node.selector import LabelIndex, Selector

# What the calculation hands over when the index is (re)built: its local workload
# endpoints as (key, own labels, profile ids) and its profiles as (name, labels).
Sources = Callable[[], tuple[Iterable[tuple[Hashable, Mapping[str, str], tuple[str, ...]]],
                             Iterable[tuple[str, Mapping[str, str]]]]]
MatchChanged = Callable[[Hashable, Hashable], None]


class LocalWorkloadSelectors:
    def __init__(self, sources: Sources):
        self._sources = sources
        self._users: dict[str, MatchChanged] = {}
        self._filed: set[tuple[str, Hashable]] = set()
        self._index: LabelIndex | None = None

    def add_user(self, user: str, on_match_changed: MatchChanged) -> None:
        self._users[user] = on_match_changed

    @property
    def active(self) -> bool:
        """True while some selector is filed: only then do endpoint and profile changes
        need to be passed in."""
        return self._index is not None

    # ------------------------------------------------------------------ selectors

    def set_selector(self, user: str, selector_id: Hashable, selector: Selector | None) -> None:
        """File (or replace) one of ``user``'s selectors; None removes it (every match it
        had stops)."""
        sel_id = (user, selector_id)
        if selector is None:
            if sel_id not in self._filed:
                return
            self._filed.discard(sel_id)
            self._index.remove_selector(sel_id)
            if not self._filed:
                self._index = None
            return
        if self._index is None:
            self._index = self._build_index()
        self._filed.add(sel_id)
        self._index.update_selector(sel_id, selector)

    def selectors_matching(self, user: str, key: Hashable) -> list:
        """``user``'s selectors matching the endpoint (its selector ids)."""
        if self._index is None:
            return []
        return [sid for owner, sid in self._index.selectors_matching(key) if owner == user]

    def endpoints_matching(self, user: str, selector_id: Hashable) -> frozenset:
        if self._index is None:
            return frozenset()
        return self._index.endpoints_matching((user, selector_id))

    # ------------------------------------------------------------------ endpoints (only while active)

    def endpoint_updated(self, key: Hashable, labels: Mapping[str, str], profile_ids: Iterable[str]) -> None:
        self._index.update_endpoint(key, labels, profile_ids)

    def endpoint_removed(self, key: Hashable) -> None:
        self._index.remove_endpoint(key)

    def profile_labels(self, name: str, labels: Mapping[str, str] | None) -> None:
        """A profile's labels changed (None: the profile is gone)."""
        if labels is None:
            self._index.remove_parent(name)
        else:
            self._index.update_parent(name, labels)

    # ------------------------------------------------------------------ internals

    def _build_index(self) -> LabelIndex:
        index = LabelIndex(self._match_changed, self._match_changed)
        endpoints, profiles = self._sources()
        for name, labels in profiles:
            index.update_parent(name, labels)
        for key, labels, profile_ids in endpoints:
            index.update_endpoint(key, labels, profile_ids)
        return index

    def _match_changed(self, sel_id: tuple[str, Hashable], key: Hashable) -> None:
        self._users[sel_id[0]](sel_id[1], key)
