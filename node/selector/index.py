"""Incremental index of which selectors match which endpoints.

Endpoints (workload/host endpoints, nodes, ...) have their own labels and an ordered list of
parents (profiles, namespaces) whose labels they inherit: own labels win, then the first
parent in the list that has the label (Calico's label-inheritance rule).  Selectors,
endpoints and parents can each be added, changed and removed at any time; the index calls
``on_match_started(selector_id, endpoint_id)`` / ``on_match_stopped(...)`` exactly when a
pair starts or stops matching.

Nothing here compares every selector with every endpoint.  Two indexes keep the work
proportional to the selectors and endpoints that can actually be affected:

* Each selector's *index terms* (``Selector.index_terms``) name the label values (or label
  names, for ``has()``-like selectors) at least one of which any matching endpoint must
  have.  Selectors are filed under those terms, so an endpoint update only evaluates the
  selectors filed under its own labels, plus the selectors it matched before.
* Selectors that cannot be narrowed that way (``all()``, ``!has(a)``, ``a != "x"``, ...)
  are filed under the label names they mention: their result can only change when one of
  those labels changes, so an update only evaluates the ones mentioning a changed label
  (a brand-new endpoint is checked against all of them once).
* Endpoints are filed by label name/value (those with a label at all are the union of its
  values' sets), so a selector update only evaluates the endpoints that have one of its
  index terms (every endpoint only for a selector that cannot be narrowed).

Memory, which grows with the endpoints (tens of thousands on a busy node):

* Label maps are interned: endpoints with equal own or effective labels (the pods of one
  workload, as a rule) share one dict, its uses counted and dropped with the last one.
  Stored label dicts are never mutated, and a caller's mapping is always copied.
* An endpoint's matching selectors (usually one to three) are a tuple while there are at
  most ``_SMALL`` of them, a set beyond that so that adding or removing one stays cheap.

Callbacks run after the index is consistent again, so they may query it.
"""
from __future__ import annotations

import types
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Optional

from node.selector.ast import Matcher, Terms
from node.selector.parser import Selector, parse

MatchCallback = Callable[[Hashable, Hashable], None]

_EMPTY: frozenset = frozenset()

# The largest match set an endpoint keeps as a tuple (a 1-tuple is a quarter of an empty
# set's size; much beyond 8 the linear scans of a removal would start to cost).
_SMALL = 8


def _ignore(_selector_id: Hashable, _endpoint_id: Hashable) -> None:
    pass


def _add(index: dict, key: Hashable, item: Hashable) -> None:
    members = index.get(key)
    if members is None:
        index[key] = {item}
    else:
        members.add(item)


def _discard(index: dict, key: Hashable, item: Hashable) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(item)
        if not members:
            del index[key]


def _add2(index: dict, key: Hashable, value: Hashable, item: Hashable) -> None:
    by_value = index.get(key)
    if by_value is None:
        index[key] = {value: {item}}
    else:
        _add(by_value, value, item)


def _discard2(index: dict, key: Hashable, value: Hashable, item: Hashable) -> None:
    by_value = index.get(key)
    if by_value is not None:
        _discard(by_value, value, item)
        if not by_value:
            del index[key]


# An endpoint: its own (interned) labels and its ordered parents, as the pair (own, parents).
_Endpoint = tuple


class _Parent:
    """A parent's labels (None until known, or after deletion) and the endpoints naming it;
    kept while either is present so that parents and children can arrive in any order."""
    __slots__ = ("labels", "children")

    def __init__(self) -> None:
        self.labels: Optional[dict[str, str]] = None
        self.children: set = set()


def _strategy(endpoints: set | frozenset, terms: dict) -> str:
    """The scan strategy that produced ``endpoints`` from ``terms``, in Felix's words. One
    label's values (any value: "label-name") are Felix's strategies; terms over several
    labels (an ``||`` of them, which Felix would answer with a full scan) are a union of
    several index entries, as "multi-value" is."""
    if not endpoints:
        return "no-match"
    if len(terms) == 1:
        (values,) = terms.values()
        if values is None:
            return "label-name"
        return "single-value" if len(values) == 1 else "multi-value"
    return "multi-value"


class LabelIndex:
    """Tracks matches between selectors and (label-inheriting) endpoints incrementally."""

    def __init__(self, on_match_started: MatchCallback | None = None,
                 on_match_stopped: MatchCallback | None = None):
        self._on_started = on_match_started or _ignore
        self._on_stopped = on_match_stopped or _ignore

        # Selectors and the indexes over them.
        self._selectors: dict[Hashable, Selector] = {}
        self._matchers: dict[Hashable, Matcher] = {}
        self._terms: dict[Hashable, Terms] = {}
        self._sels_by_value: dict[str, dict[str, set]] = {}  # label -> value -> sel ids
        self._sels_by_label: dict[str, set] = {}             # label -> sel ids (any value)
        self._unnarrowed: set = set()                         # sel ids without terms
        self._unnarrowed_by_label: dict[str, set] = {}       # label -> unnarrowed sel ids

        # Endpoints, parents and the indexes over effective (inherited) labels.
        self._endpoints: dict[Hashable, _Endpoint] = {}
        self._parents: dict[Hashable, _Parent] = {}
        self._labels: dict[Hashable, dict[str, str]] = {}
        # Shared label dicts (own and effective labels), by the hash of their values, and
        # how many uses each has.
        self._interned: dict[int, list] = {}   # key -> [the shared dict, its uses]
        # label -> value -> endpoint ids (the endpoints with a label at all are the union
        # of its value sets: each has one value).
        self._eps_by_value: dict[str, dict[str, set]] = {}

        # Current matches, both ways round (an endpoint's as a tuple while few, see _SMALL).
        self._sel_matches: dict[Hashable, set] = {}
        self._ep_matches: dict[Hashable, tuple | set] = {}

        # What finding a new selector's matches cost, for Felix's label index metrics: the
        # scans of the endpoints by strategy (Felix's names: "full-scan", "single-value",
        # "multi-value", "label-name", "no-match"), and the selector evaluations they made
        # that matched and that did not (none when the index alone gives the matches).
        self.scans: dict[str, int] = {}
        self.evaluations = [0, 0]

    # ----------------------------------------------------------------- selectors

    def update_selector(self, selector_id: Hashable, selector: Selector | str) -> None:
        """Add or replace a selector (a ``Selector`` or selector text)."""
        if isinstance(selector, str):
            selector = parse(selector)
        old = self._selectors.get(selector_id)
        if old is not None:
            if old == selector:
                return
            self._unfile_selector(selector_id)
        self._selectors[selector_id] = selector
        self._matchers[selector_id] = match = selector.matcher
        self._file_selector(selector_id, selector)

        labels = self._labels
        narrowing, exact = selector.search_plan()
        if not narrowing:
            new = {ep for ep, ep_labels in labels.items() if match(ep_labels)}
            scanned, strategy = len(labels), "full-scan"
        else:
            # Each term set is read straight from the index when it is one label value
            # (no copy); only what is kept as the matches is a new set.
            found = sorted(((self._endpoints_with(t, copy=False), t) for t in narrowing),
                           key=lambda pair: len(pair[0]))
            if len(found) > 1:
                candidates = found[0][0].intersection(*(eps for eps, _ in found[1:]))
            else:
                candidates = set(found[0][0]) if exact else found[0][0]
            new = candidates if exact else {ep for ep in candidates if match(labels[ep])}
            scanned = 0 if exact else len(candidates)
            strategy = _strategy(*found[0])
        self.scans[strategy] = self.scans.get(strategy, 0) + 1
        if scanned:
            self.evaluations[0] += len(new)
            self.evaluations[1] += scanned - len(new)
        self._set_selector_matches(selector_id, self._sel_matches.get(selector_id, _EMPTY), new)

    def remove_selector(self, selector_id: Hashable) -> None:
        """Forget a selector; every match it had stops.  Unknown ids are ignored."""
        if selector_id not in self._selectors:
            return
        self._unfile_selector(selector_id)
        del self._selectors[selector_id]
        del self._matchers[selector_id]
        self._set_selector_matches(selector_id, self._sel_matches.get(selector_id, _EMPTY), set())

    def _file_selector(self, sel_id: Hashable, selector: Selector) -> Terms:
        terms = selector.index_terms()
        self._terms[sel_id] = terms
        if terms is None:
            self._unnarrowed.add(sel_id)
            for label in selector.label_names():
                _add(self._unnarrowed_by_label, label, sel_id)
            return None
        for label, values in terms.items():
            if values is None:
                _add(self._sels_by_label, label, sel_id)
            else:
                for value in values:
                    _add2(self._sels_by_value, label, value, sel_id)
        return terms

    def _unfile_selector(self, sel_id: Hashable) -> None:
        terms = self._terms.pop(sel_id)
        if terms is None:
            self._unnarrowed.discard(sel_id)
            for label in self._selectors[sel_id].label_names():
                _discard(self._unnarrowed_by_label, label, sel_id)
            return
        for label, values in terms.items():
            if values is None:
                _discard(self._sels_by_label, label, sel_id)
            else:
                for value in values:
                    _discard2(self._sels_by_value, label, value, sel_id)

    def _endpoints_with(self, terms: dict, copy: bool = True) -> set | frozenset:
        """Endpoints satisfying at least one index term: a superset of the matches. With
        ``copy=False`` the result may be the index's own set, to be read, not kept."""
        if not copy and len(terms) == 1:
            (label, values), = terms.items()
            if values is not None and len(values) == 1:
                (value,) = values
                return self._eps_by_value.get(label, {}).get(value) or _EMPTY
        found: set = set()
        for label, values in terms.items():
            by_value = self._eps_by_value.get(label)
            if not by_value:
                continue
            if values is None:
                for members in by_value.values():
                    found |= members
                continue
            for value in values:
                members = by_value.get(value)
                if members:
                    found |= members
        return found

    def _set_selector_matches(self, sel_id: Hashable, old: set | frozenset, new: set) -> None:
        stopped = old - new
        started = new - old
        if new:
            self._sel_matches[sel_id] = new
        else:
            self._sel_matches.pop(sel_id, None)
        ep_matches = self._ep_matches
        for ep in stopped:
            members = ep_matches[ep]
            if type(members) is tuple:
                if len(members) == 1:
                    del ep_matches[ep]
                else:
                    i = members.index(sel_id)
                    ep_matches[ep] = members[:i] + members[i + 1:]
            else:
                members.discard(sel_id)
                if len(members) <= _SMALL // 2:  # (not at _SMALL: no flip-flopping)
                    if members:
                        ep_matches[ep] = tuple(members)
                    else:
                        del ep_matches[ep]
        for ep in started:  # (sel_id is in none of their match sets yet)
            members = ep_matches.get(ep)
            if members is None:
                ep_matches[ep] = (sel_id,)
            elif type(members) is tuple:
                ep_matches[ep] = (members + (sel_id,) if len(members) < _SMALL
                                  else {*members, sel_id})
            else:
                members.add(sel_id)
        on_stopped, on_started = self._on_stopped, self._on_started
        for ep in stopped:
            on_stopped(sel_id, ep)
        for ep in started:
            on_started(sel_id, ep)

    # ----------------------------------------------------------------- endpoints

    def update_endpoint(self, endpoint_id: Hashable, labels: Mapping[str, str],
                        parent_ids: Iterable[Hashable] = ()) -> None:
        """Add or replace an endpoint's own labels and its ordered parent list."""
        own = dict(labels)  # (the caller's labels, copied once: kept unless shared)
        parents = tuple(parent_ids)
        ep = self._endpoints.get(endpoint_id)
        if ep is not None and ep[1] == parents and ep[0] == own:
            return
        own = self._share(own)
        if ep is None:
            ep = self._endpoints[endpoint_id] = (own, parents)
            known = self._parents
            for parent_id in (parents if len(parents) < 2 else set(parents)):
                parent = known.get(parent_id)  # (_attach, inlined)
                if parent is None:
                    parent = known[parent_id] = _Parent()
                parent.children.add(endpoint_id)
            if len(parents) == 1:  # (_effective_labels' usual case, inlined)
                inherited = known[parents[0]].labels
                if inherited:
                    merged = dict(inherited)
                    merged.update(own)
                    self._apply_labels(endpoint_id, self._share(merged))
                    return
            self._apply_labels(endpoint_id, self._effective_labels(ep))
            return
        old_own, old_parents = ep
        if old_parents != parents:
            old_parents, new_parents = set(old_parents), set(parents)
            for parent_id in old_parents - new_parents:
                self._detach(parent_id, endpoint_id)
            for parent_id in new_parents - old_parents:
                self._attach(parent_id, endpoint_id)
        ep = self._endpoints[endpoint_id] = (own, parents)
        self._release(old_own)
        self._apply_labels(endpoint_id, self._effective_labels(ep))

    def remove_endpoint(self, endpoint_id: Hashable) -> None:
        """Forget an endpoint; every match it had stops.  Unknown ids are ignored."""
        ep = self._endpoints.pop(endpoint_id, None)
        if ep is None:
            return
        for parent_id in set(ep[1]):
            self._detach(parent_id, endpoint_id)
        self._release(ep[0])
        labels = self._labels.pop(endpoint_id)
        self._release(labels)
        for label, value in labels.items():
            _discard2(self._eps_by_value, label, value, endpoint_id)
        self._set_endpoint_matches(endpoint_id, self._ep_matches.get(endpoint_id, _EMPTY), set())

    def _apply_labels(self, ep_id: Hashable, new: dict[str, str]) -> None:
        """Re-index an endpoint whose effective labels may have changed to ``new``, an
        interned reference that this takes over (keeps or releases)."""
        labels = self._labels
        old = labels.get(ep_id)
        eps_by_value = self._eps_by_value
        if old is None:
            # A new endpoint: file every label (the helpers inlined: this runs for every
            # endpoint of a resync).
            for label, value in new.items():
                by_value = eps_by_value.get(label)
                if by_value is None:
                    eps_by_value[label] = {value: {ep_id}}
                else:
                    members = by_value.get(value)
                    if members is None:
                        by_value[value] = {ep_id}
                    else:
                        members.add(ep_id)
            changed = None
            if not self._selectors:
                labels[ep_id] = new
                return  # nothing to match (as at a resync, before any selector)
        elif old is new or old == new:
            self._release(new)
            return
        else:
            changed = [k for k, v in new.items() if old.get(k) != v]
            changed += [k for k in old if k not in new]
            for label in changed:
                if label in old:
                    _discard2(eps_by_value, label, old[label], ep_id)
                if label in new:
                    _add2(eps_by_value, label, new[label], ep_id)
            self._release(old)
        labels[ep_id] = new

        # Candidates: selectors filed under one of the endpoint's labels ...
        candidates: set = set()
        sels_by_value, sels_by_label = self._sels_by_value, self._sels_by_label
        if sels_by_value or sels_by_label:
            for label, value in new.items():
                by_value = sels_by_value.get(label)
                if by_value is not None:
                    members = by_value.get(value)
                    if members:
                        candidates |= members
                members = sels_by_label.get(label)
                if members:
                    candidates |= members
        # ... plus un-narrowed selectors whose inputs changed, plus previous matches.
        old_matches = self._ep_matches.get(ep_id, _EMPTY)
        if changed is None:
            candidates |= self._unnarrowed
        else:
            by_label = self._unnarrowed_by_label
            for label in changed:
                members = by_label.get(label)
                if members:
                    candidates |= members
            candidates.update(old_matches)  # (a tuple or a set)
        if not candidates and not old_matches:
            return  # nothing matched before or can match now

        matchers = self._matchers
        now = {sel for sel in candidates if matchers[sel](new)}
        self._set_endpoint_matches(ep_id, old_matches, now)

    def _set_endpoint_matches(self, ep_id: Hashable, old: tuple | set | frozenset,
                              new: set) -> None:
        stopped = [sel for sel in old if sel not in new] if type(old) is tuple else old - new
        started = new.difference(old)
        if not stopped and not started:
            return
        if new:
            self._ep_matches[ep_id] = tuple(new) if len(new) <= _SMALL else new
        else:
            self._ep_matches.pop(ep_id, None)
        sel_matches = self._sel_matches
        for sel in stopped:
            _discard(sel_matches, sel, ep_id)
        for sel in started:
            members = sel_matches.get(sel)  # (_add, inlined)
            if members is None:
                sel_matches[sel] = {ep_id}
            else:
                members.add(ep_id)
        for sel in stopped:
            self._on_stopped(sel, ep_id)
        for sel in started:
            self._on_started(sel, ep_id)

    # ----------------------------------------------------------------- parents

    def update_parent(self, parent_id: Hashable, labels: Mapping[str, str]) -> None:
        """Set a parent's (profile's, namespace's) labels; its children re-evaluate."""
        parent = self._parents.get(parent_id)
        if parent is None:
            parent = self._parents[parent_id] = _Parent()
        new = dict(labels)
        if parent.labels == new:
            return
        parent.labels = new
        self._refresh_children(parent)

    def remove_parent(self, parent_id: Hashable) -> None:
        """Drop a parent's labels; endpoints still naming it simply inherit nothing."""
        parent = self._parents.get(parent_id)
        if parent is None or parent.labels is None:
            return
        parent.labels = None
        if not parent.children:
            del self._parents[parent_id]
            return
        self._refresh_children(parent)

    def _refresh_children(self, parent: _Parent) -> None:
        for ep_id in list(parent.children):
            self._apply_labels(ep_id, self._effective_labels(self._endpoints[ep_id]))

    def _attach(self, parent_id: Hashable, ep_id: Hashable) -> None:
        parent = self._parents.get(parent_id)
        if parent is None:
            parent = self._parents[parent_id] = _Parent()
        parent.children.add(ep_id)

    def _detach(self, parent_id: Hashable, ep_id: Hashable) -> None:
        parent = self._parents[parent_id]
        parent.children.discard(ep_id)
        if not parent.children and parent.labels is None:
            del self._parents[parent_id]

    def _effective_labels(self, ep: _Endpoint) -> dict[str, str]:
        """The endpoint's labels after inheritance, interned, with one more user counted."""
        own, parents = ep
        if not parents:
            return self._share(own)
        if len(parents) == 1:  # the common case, without the loop
            parent_labels = self._parents[parents[0]].labels
            if not parent_labels:
                return self._share(own)
            merged = dict(parent_labels)
            merged.update(own)
            return self._share(merged)
        merged: dict[str, str] = {}
        # Later parents first so that earlier ones, then the endpoint's own labels, win.
        for parent_id in reversed(parents):
            parent_labels = self._parents[parent_id].labels
            if parent_labels:
                merged.update(parent_labels)
        if not merged:
            return self._share(own)
        merged.update(own)
        return self._share(merged)

    # ----------------------------------------------------------------- label interning

    def _share(self, labels: dict[str, str]) -> dict[str, str]:
        """The interned dict equal to ``labels`` (which becomes it if there is none yet),
        with one more use counted; each use is given back with ``_release``.  Nobody else
        may hold or mutate ``labels`` from now on.  Keyed by the hash of the values alone
        (cheaper than the items; equality is checked, and a collision only goes unshared)."""
        key = hash(tuple(labels.values()))
        entry = self._interned.get(key)
        if entry is None:
            self._interned[key] = [labels, 1]
            return labels
        found = entry[0]
        if found is labels or found == labels:
            entry[1] += 1
            return found
        return labels  # a hash collision (rare): this one stays unshared and uncounted

    def _release(self, labels: dict[str, str]) -> None:
        """Give back one use of a dict from ``_share``; the last one drops it."""
        key = hash(tuple(labels.values()))
        entry = self._interned.get(key)
        if entry is not None and entry[0] is labels:
            if entry[1] == 1:
                del self._interned[key]
            else:
                entry[1] -= 1

    # ----------------------------------------------------------------- queries

    def endpoints_matching(self, selector_id: Hashable) -> frozenset:
        """Ids of the endpoints the selector currently matches (empty if unknown)."""
        return frozenset(self._sel_matches.get(selector_id, _EMPTY))

    def selectors_matching(self, endpoint_id: Hashable) -> frozenset:
        """Ids of the selectors currently matching the endpoint (empty if unknown)."""
        return frozenset(self._ep_matches.get(endpoint_id, _EMPTY))

    def effective_labels(self, endpoint_id: Hashable) -> Mapping[str, str]:
        """The endpoint's labels after inheritance (read-only view); KeyError if unknown."""
        return types.MappingProxyType(self._labels[endpoint_id])

    def get_selector(self, selector_id: Hashable) -> Selector | None:
        return self._selectors.get(selector_id)

    def selector_counts(self) -> tuple[int, int]:
        """(selectors the index narrows down, selectors it cannot: each endpoint update
        evaluates those mentioning a changed label, a new one all endpoints)."""
        unnarrowed = len(self._unnarrowed)
        return len(self._selectors) - unnarrowed, unnarrowed

    def stats(self) -> dict[str, int]:
        """Sizes, including how many selectors could not be narrowed (slow path)."""
        return {
            "selectors": len(self._selectors),
            "unnarrowed_selectors": len(self._unnarrowed),
            "endpoints": len(self._endpoints),
            "parents": len(self._parents),
            "matches": sum(len(m) for m in self._sel_matches.values()),
        }
