"""Which BGPPeer each local workload endpoint peers with (Felix's ActiveBGPPeerCalculator).

A BGPPeer applies to this host when its ``spec.node`` names the host, or, with no
``spec.node``, when its ``spec.nodeSelector`` matches the labels of the host's own Node
(an empty selector matches every node; one that does not parse, none). An applicable
peer's ``spec.localWorkloadSelector`` picks local workload endpoints by their labels,
including those inherited from their profiles; an empty selector, or one that does not
parse, picks none. Each endpoint's peer is the first by name of the peers picking it,
and the endpoint's message carries that name (``WorkloadEndpoint.local_bgp_peer``).
As Felix's validation filter does, a BGPPeer that fails Calico's validation (a selector
that does not parse among them) counts as missing; the error names the peer and field.

Almost no cluster has such peers, so the selector index over the local endpoints exists
only while at least one applicable peer has a usable ``localWorkloadSelector``: it is
built from the calculation's current endpoints and profiles when the first one appears,
and dropped with the last. Until then the calculation skips it entirely (``active``).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import NamedTuple, Optional

from node.errors import CalicoError
from node.model import Resource, validate_resource
from node.selector import LabelIndex, Selector, SelectorError, parse

log = logging.getLogger(__name__)

# What the calculation hands over when the index is (re)built: its local workload
# endpoints as (key, own labels, profile ids) and its profiles as (name, labels).
Sources = Callable[[], tuple[Iterable[tuple[Hashable, Mapping[str, str], tuple[str, ...]]],
                             Iterable[tuple[str, Mapping[str, str]]]]]


class _Peer(NamedTuple):
    node: str                          # spec.node ("" when unset)
    node_selector: Optional[Selector]  # spec.nodeSelector; None when it does not parse
    workload_selector: Optional[Selector]  # None when empty or unparsable: picks nothing


class ActiveBGPPeers:
    """Tracks the BGPPeers and this host's Node labels; tells ``on_changed(key)`` whenever
    a local workload endpoint's peer (``peer_of``) changes."""

    def __init__(self, hostname: str, on_changed: Callable[[Hashable], None], sources: Sources):
        self.hostname = hostname
        self._on_changed = on_changed
        self._sources = sources
        self._node_labels: dict[str, str] = {}
        self._peers: dict[str, _Peer] = {}
        # The applicable peers with a usable localWorkloadSelector: the index's selectors.
        self._selecting: dict[str, Selector] = {}
        self._index: LabelIndex | None = None
        # Local workload endpoint key -> its peer's name (endpoints without one absent).
        self.peer_of: dict[Hashable, str] = {}

    @property
    def active(self) -> bool:
        """True while some peer may pick endpoints: only then do endpoint and profile
        changes need to be passed in."""
        return self._index is not None

    # ------------------------------------------------------------------ inputs

    def on_bgp_peer(self, res: Resource, deleted: bool) -> None:
        name = res.name
        if not deleted:
            try:
                validate_resource(res)
            except CalicoError as exc:
                log.error("BGPPeer %s is invalid, so it selects no workload endpoint: %s", name, exc)
                deleted = True
        if deleted:
            self._peers.pop(name, None)
            self._set_selecting(name, None)
            return
        # (Validated, so these checks only guard against what the validator lets by.)
        spec = res.spec if isinstance(res.spec, dict) else {}
        node = spec.get("node") or ""
        if not isinstance(node, str):
            log.error("BGPPeer %s: spec.node %r is not a node name; the peer is ignored.", name, node)
            node, node_selector = "", None
        elif node:
            node_selector = None  # (not consulted)
        else:
            node_selector = _parse(name, "nodeSelector", spec.get("nodeSelector"),
                                   "the peer applies to no node")
        workload_selector = None
        text = spec.get("localWorkloadSelector")
        if text:
            workload_selector = _parse(name, "localWorkloadSelector", text,
                                       "it selects no workload endpoints")
        peer = self._peers[name] = _Peer(node, node_selector, workload_selector)
        self._set_selecting(name, workload_selector if self._applies(peer) else None)

    def on_node(self, name: str, labels: Mapping[str, str] | None) -> None:
        """A Node's labels (None: the Node is gone or unusable, as if it had none)."""
        if name != self.hostname:
            return
        labels = dict(labels or {})
        if labels == self._node_labels:
            return
        self._node_labels = labels
        for peer_name, peer in sorted(self._peers.items()):
            if peer.node:
                continue  # (a peer naming its node does not depend on the labels)
            self._set_selecting(peer_name, peer.workload_selector if self._applies(peer) else None)

    # Only while ``active``:

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

    def _applies(self, peer: _Peer) -> bool:
        if peer.node:
            return peer.node == self.hostname
        return peer.node_selector is not None and peer.node_selector.evaluate(self._node_labels)

    def _set_selecting(self, name: str, selector: Selector | None) -> None:
        if selector is None:
            if self._selecting.pop(name, None) is None:
                return
            self._index.remove_selector(name)  # (every match stops: peer_of follows)
            if not self._selecting:
                self._index = None
            return
        if self._index is None:
            self._index = self._build_index()
        self._selecting[name] = selector
        self._index.update_selector(name, selector)

    def _build_index(self) -> LabelIndex:
        index = LabelIndex(self._match_changed, self._match_changed)
        endpoints, profiles = self._sources()
        for name, labels in profiles:
            index.update_parent(name, labels)
        for key, labels, profile_ids in endpoints:
            index.update_endpoint(key, labels, profile_ids)
        return index

    def _match_changed(self, _peer_name: str, key: Hashable) -> None:
        # (The index is consistent when it calls back, so this is the final answer.)
        matching = self._index.selectors_matching(key)
        peer = min(matching) if matching else ""
        if peer == self.peer_of.get(key, ""):
            return
        if peer:
            self.peer_of[key] = peer
        else:
            del self.peer_of[key]
        self._on_changed(key)


def _parse(peer: str, field: str, text, consequence: str) -> Selector | None:
    if text is None:
        text = ""
    if isinstance(text, str):
        try:
            return parse(text)
        except SelectorError as exc:
            problem = str(exc)
    else:
        problem = "not a string"
    log.error("BGPPeer %s: spec.%s %r is not a valid selector (%s); %s.", peer, field, text, problem,
              consequence)
    return None
