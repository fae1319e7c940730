"""Coalescing the calculation's output into batches (Felix's EventSequencer).

The graph reports every change as it happens; the sequencer keeps only the net effect
until ``flush()``: an IP set created and deleted in one batch never appears, an endpoint
updated twice appears once with its last state, a member added and removed again
cancels out.  It also remembers what it has sent, so a removal is only sent for
something the dataplane has, and an update identical to what was last sent is dropped.

``flush()`` emits in dependency order, as Felix does: config first; then new IP sets,
member deltas, policies, profiles and endpoints; then removals in reverse (endpoints,
profiles, policies, IP sets), so nothing is ever referenced before it exists or removed
while still referenced; then hosts and pools; ``InSync`` last.
"""
from __future__ import annotations

from collections.abc import Hashable

from node.felix import types as t


class EventSequencer:
    def __init__(self) -> None:
        self._added_sets: dict[str, t.IPSetType] = {}
        self._removed_sets: set[str] = set()
        self._added_members: dict[str, set[str]] = {}
        self._removed_members: dict[str, set[str]] = {}
        self._sent_sets: set[str] = set()

        # kind -> id -> pending message (or None for a removal); kind -> id -> last sent.
        self._pending: dict[str, dict[Hashable, object]] = {k: {} for k in _ORDER}
        self._sent: dict[str, dict[Hashable, object]] = {k: {} for k in _ORDER}
        self._config: dict | None = None
        self._in_sync = False

    # ------------------------------------------------------------------ IP sets

    def ipset_added(self, set_id: str, set_type: t.IPSetType) -> None:
        self._added_sets[set_id] = set_type
        self._removed_sets.discard(set_id)
        # A (re)created set starts empty; its members follow.
        self._added_members.pop(set_id, None)
        self._removed_members.pop(set_id, None)

    def ipset_removed(self, set_id: str) -> None:
        if set_id in self._sent_sets:
            self._removed_sets.add(set_id)
        self._added_sets.pop(set_id, None)
        self._added_members.pop(set_id, None)
        self._removed_members.pop(set_id, None)

    def member_added(self, set_id: str, member: str) -> None:
        removed = self._removed_members.get(set_id)
        if removed and member in removed:
            removed.discard(member)
            return
        added = self._added_members.get(set_id)
        if added is None:
            self._added_members[set_id] = {member}
        else:
            added.add(member)

    def member_removed(self, set_id: str, member: str) -> None:
        added = self._added_members.get(set_id)
        if added and member in added:
            added.discard(member)
            return
        removed = self._removed_members.get(set_id)
        if removed is None:
            self._removed_members[set_id] = {member}
        else:
            removed.add(member)

    # ------------------------------------------------------------------ keyed state

    def update(self, kind: str, key: Hashable, message: object) -> None:
        """Queue ``message`` as the new state of ``key`` (kind: one of ``_ORDER``)."""
        self._pending[kind][key] = message

    def remove(self, kind: str, key: Hashable) -> None:
        self._pending[kind][key] = None

    def config(self, config: dict) -> None:
        self._config = config

    def in_sync(self) -> None:
        self._in_sync = True

    # ------------------------------------------------------------------ flush

    def flush(self) -> list:
        out: list = []
        if self._config is not None:
            out.append(t.ConfigUpdate(self._config))
            self._config = None

        for set_id in sorted(self._added_sets):
            members = self._added_members.pop(set_id, set())
            self._removed_members.pop(set_id, None)
            out.append(t.IPSetUpdate(set_id, self._added_sets[set_id], frozenset(members)))
            self._sent_sets.add(set_id)
        self._added_sets.clear()
        for set_id in sorted(set(self._added_members) | set(self._removed_members)):
            added = self._added_members.get(set_id, set())
            removed = self._removed_members.get(set_id, set())
            if added or removed:
                out.append(t.IPSetDeltaUpdate(set_id, frozenset(added), frozenset(removed)))
        self._added_members.clear()
        self._removed_members.clear()

        updates, removals = {}, {}
        for kind in _ORDER:
            updates[kind], removals[kind] = self._take(kind)
        for kind in _UPDATES_FIRST:
            out += updates[kind]
        for kind in _REMOVALS_REVERSED:
            out += removals[kind]

        for set_id in sorted(self._removed_sets):
            out.append(t.IPSetRemove(set_id))
            self._sent_sets.discard(set_id)
        self._removed_sets.clear()

        for kind in _CLUSTER:
            out += removals[kind] + updates[kind]
        if self._in_sync:
            out.append(t.InSync())
            self._in_sync = False
        return out

    def _take(self, kind: str) -> tuple[list, list]:
        pending, sent = self._pending[kind], self._sent[kind]
        updates, removals = [], []
        for key in sorted(pending, key=_sort_key):
            message = pending[key]
            if message is None:
                if key in sent:
                    del sent[key]
                    removals.append(_REMOVE[kind](key))
            elif sent.get(key) != message:
                sent[key] = message
                updates.append(_UPDATE[kind](key, message))
        pending.clear()
        return updates, removals


def _sort_key(key: Hashable) -> tuple:
    return (type(key).__name__, str(key))


_UPDATE = {
    "policy": t.ActivePolicyUpdate,
    "profile": t.ActiveProfileUpdate,
    "wep": t.WorkloadEndpointUpdate,
    "hep": t.HostEndpointUpdate,
    "host": lambda key, msg: t.HostMetadataUpdate(msg),
    "pool": t.IPAMPoolUpdate,
    "bgpconfig": lambda key, msg: t.GlobalBGPConfigUpdate(msg),
}
_REMOVE = {
    "policy": t.ActivePolicyRemove,
    "profile": t.ActiveProfileRemove,
    "wep": t.WorkloadEndpointRemove,
    "hep": t.HostEndpointRemove,
    "host": t.HostMetadataRemove,
    "pool": t.IPAMPoolRemove,
    "bgpconfig": lambda key: t.GlobalBGPConfigUpdate(t.GlobalBGPConfig()),
}
_ORDER = tuple(_UPDATE)
_UPDATES_FIRST = ("policy", "profile", "wep", "hep")
_REMOVALS_REVERSED = ("wep", "hep", "profile", "policy")
_CLUSTER = ("host", "pool", "bgpconfig")
