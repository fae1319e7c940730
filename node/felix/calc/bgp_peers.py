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

The selectors live in the index over the local workload endpoints that the calculation
shares between its selector-driven parts (``workload_selectors``): it exists only while
some selector is filed there, so without such peers (almost every cluster) the
calculation skips it entirely.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import NamedTuple, Optional

from node.errors import CalicoError
from node.felix.calc.workload_selectors import LocalWorkloadSelectors
from node.model import Resource, validate_resource
from node.selector import Selector, SelectorError, parse

log = logging.getLogger(__name__)


class _Peer(NamedTuple):
    node: str                          # spec.node ("" when unset)
    node_selector: Optional[Selector]  # spec.nodeSelector; None when it does not parse
    workload_selector: Optional[Selector]  # None when empty or unparsable: picks nothing


class ActiveBGPPeers:
    """Tracks the BGPPeers and this host's Node labels; tells ``on_changed(key)`` whenever
    a local workload endpoint's peer (``peer_of``) changes."""

    def __init__(self, hostname: str, on_changed: Callable[[Hashable], None], selectors: LocalWorkloadSelectors):
        self.hostname = hostname
        self._on_changed = on_changed
        self._node_labels: dict[str, str] = {}
        self._peers: dict[str, _Peer] = {}
        # The applicable peers with a usable localWorkloadSelector: filed in the shared
        # index under their names.
        self._selecting: dict[str, Selector] = {}
        self._selectors = selectors
        selectors.add_user("BGPPeer", self._match_changed)
        # Local workload endpoint key -> its peer's name (endpoints without one absent).
        self.peer_of: dict[Hashable, str] = {}

    @property
    def active(self) -> bool:
        """True while some peer picks endpoints (has a selector in the shared index)."""
        return bool(self._selecting)

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

    # ------------------------------------------------------------------ internals

    def _applies(self, peer: _Peer) -> bool:
        if peer.node:
            return peer.node == self.hostname
        return peer.node_selector is not None and peer.node_selector.evaluate(self._node_labels)

    def _set_selecting(self, name: str, selector: Selector | None) -> None:
        if selector is None:
            if self._selecting.pop(name, None) is None:
                return
        else:
            self._selecting[name] = selector
        self._selectors.set_selector("BGPPeer", name, selector)  # (peer_of follows the matches)

    def _match_changed(self, _peer_name: str, key: Hashable) -> None:
        # (The index is consistent when it calls back, so this is the final answer.)
        matching = self._selectors.selectors_matching("BGPPeer", key)
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
