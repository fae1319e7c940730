"""Which addresses belong in each active IP set (Felix's SelectorAndNamedPortIndex).

Every endpoint in the cluster takes part, local or remote: workload endpoints (their
``ipNetworks``), host endpoints (their ``expectedIPs``) and network sets (their ``nets``),
each with inherited profile labels.  A selector set holds the CIDRs of every matching
endpoint; a named-port set holds ``IP,proto:port`` for each matching endpoint's ports
with that name and a matching protocol.  A member shared by several endpoints is
reference-counted, so it leaves the set only with its last contributor.

Matching goes through ``node.selector.LabelIndex`` (keyed by IP-set ID), so a label change
re-evaluates only the sets that can be affected.  Changes are reported through
``on_added(set_id, member)`` / ``on_removed(set_id, member)``.

Felix v3.32 also drops a CIDR member that another member of the same set contains
(``10.0.0.5/32`` under ``10.0.0.0/24``) unless ``NFTablesMode`` is ``Disabled``;
``suppress_overlaps`` does the same, computed from the current members so the result
does not depend on the order in which members arrived.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from node.felix import netaddr
from node.felix.calc import v1
from node.felix.calc.rule_scanner import IPSetData, protocol_from, protocol_matches
from node.selector import LabelIndex

MemberCallback = Callable[[str, str], None]
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EndpointData:
    """An endpoint's contribution inputs: its CIDRs and its named ports."""

    nets: tuple[IPNet, ...] = ()
    ports: tuple[v1.EndpointPort, ...] = ()


def host_net(addr_or_net: str) -> IPNet:
    """A workload's network or a host endpoint's address as a single-address CIDR (Felix
    uses the address and ignores any prefix length)."""
    net = netaddr.parse_network(addr_or_net)
    if net.prefixlen == net.max_prefixlen:
        return net
    return type(net)((int(net.network_address), net.max_prefixlen))


def network_set_nets(nets: Iterable[str]) -> tuple[IPNet, ...]:
    """A network set's CIDRs; ``/0`` becomes two ``/1`` halves (ipset cannot hold /0)."""
    out: list[IPNet] = []
    for text in nets:
        net = ipaddress.ip_network(text, strict=False)
        if net.prefixlen == 0:
            out.extend(net.subnets(prefixlen_diff=1))
        else:
            out.append(net)
    return tuple(out)


def contribution(ep: EndpointData, ipset: IPSetData) -> list[str]:
    """The members one (matching) endpoint puts into a set, in Felix's member format."""
    if not ipset.named_port_protocol:
        return [str(net) for net in ep.nets]
    out = []
    for port in ep.ports:
        if port.name == ipset.named_port and protocol_matches(ipset.named_port_protocol, port.protocol):
            proto = protocol_from(port.protocol)
            for net in ep.nets:
                out.append(f"{net.network_address},{proto}:{port.port}")
    return out


class _Overlaps:
    """The CIDR members of one set, by family and prefix length, to find members hidden by
    a containing member."""

    def __init__(self) -> None:
        # (version, prefixlen) -> set of network prefixes (address >> host bits).
        self._by_len: dict[tuple[int, int], set[int]] = {}

    @staticmethod
    def _value(net: IPNet, plen: int) -> int:
        return int(net.network_address) >> (net.max_prefixlen - plen)

    def add(self, net: IPNet) -> None:
        self._by_len.setdefault((net.version, net.prefixlen), set()).add(self._value(net, net.prefixlen))

    def remove(self, net: IPNet) -> None:
        key = (net.version, net.prefixlen)
        values = self._by_len[key]
        values.discard(self._value(net, net.prefixlen))
        if not values:
            del self._by_len[key]

    def covered(self, net: IPNet) -> bool:
        """Is ``net`` inside another (shorter-prefix) member?"""
        for (version, plen), values in self._by_len.items():
            if version == net.version and plen < net.prefixlen and self._value(net, plen) in values:
                return True
        return False

    def descendants(self, net: IPNet) -> list[IPNet]:
        """Members strictly inside ``net``."""
        out = []
        base = self._value(net, net.prefixlen)
        cls = type(net)
        for (version, plen), values in self._by_len.items():
            if version != net.version or plen <= net.prefixlen:
                continue
            shift = plen - net.prefixlen
            for v in values:
                if v >> shift == base:
                    out.append(cls((v << (net.max_prefixlen - plen), plen)))
        return out


class IPSetMemberIndex:
    """Members of the active selector and named-port sets, kept up to date as endpoints,
    profiles (label parents) and sets change."""

    def __init__(self, on_added: MemberCallback, on_removed: MemberCallback,
                 suppress_overlaps: bool = True):
        self._on_added = on_added
        self._on_removed = on_removed
        self._suppress = suppress_overlaps
        self._index = LabelIndex(self._match_started, self._match_stopped)
        self._sets: dict[str, IPSetData] = {}
        self._endpoints: dict[Hashable, EndpointData] = {}
        self._labels: dict[Hashable, tuple] = {}
        # (set ID, endpoint) -> the members that endpoint put in.
        self._contrib: dict[tuple[str, Hashable], tuple[str, ...]] = {}
        self._refs: dict[str, dict[str, int]] = {}
        self._overlaps: dict[str, _Overlaps] = {}

    # ------------------------------------------------------------------ sets

    def update_set(self, ipset: IPSetData) -> None:
        """Start tracking a set (its ID fixes its content, so an update is a no-op)."""
        if ipset.id in self._sets:
            return
        self._sets[ipset.id] = ipset
        self._refs[ipset.id] = {}
        if self._suppress:
            self._overlaps[ipset.id] = _Overlaps()
        if ipset.selector is not None:  # service sets have no members here
            self._index.update_selector(ipset.id, ipset.selector)

    def remove_set(self, set_id: str) -> None:
        """Forget a set without reporting member removals (the set itself goes away)."""
        if self._sets.pop(set_id, None) is None:
            return
        self._index.remove_selector(set_id)  # _match_stopped sees the set gone: no events
        del self._refs[set_id]
        self._overlaps.pop(set_id, None)

    def members(self, set_id: str) -> frozenset[str]:
        """The set's current members as reported (after overlap suppression)."""
        refs = self._refs.get(set_id, {})
        ov = self._overlaps.get(set_id)
        if ov is None:
            return frozenset(refs)
        return frozenset(m for m in refs if "," in m or not ov.covered(ipaddress.ip_network(m)))

    # ------------------------------------------------------------------ endpoints

    def update_endpoint(self, key: Hashable, labels: Iterable[tuple[str, str]],
                        parents: Iterable[str], data: EndpointData) -> None:
        labels = tuple(labels)
        parents = tuple(parents)
        old = self._endpoints.get(key)
        self._endpoints[key] = data
        if old is not None and old != data:
            # Same matches (for now), different addresses or ports: re-contribute.
            for set_id in self._index.selectors_matching(key):
                self._set_contribution(set_id, key, contribution(data, self._sets[set_id]))
        if self._labels.get(key) != (labels, parents):
            self._labels[key] = (labels, parents)
            self._index.update_endpoint(key, dict(labels), parents)

    def remove_endpoint(self, key: Hashable) -> None:
        if key not in self._endpoints:
            return
        self._index.remove_endpoint(key)
        del self._endpoints[key]
        del self._labels[key]

    def update_parent(self, parent_id: str, labels: Iterable[tuple[str, str]]) -> None:
        self._index.update_parent(parent_id, dict(labels))

    def remove_parent(self, parent_id: str) -> None:
        self._index.remove_parent(parent_id)

    # ------------------------------------------------------------------ matching

    def _match_started(self, set_id: str, key: Hashable) -> None:
        self._set_contribution(set_id, key, contribution(self._endpoints[key], self._sets[set_id]))

    def _match_stopped(self, set_id: str, key: Hashable) -> None:
        if set_id not in self._sets:  # the whole set is being removed
            self._contrib.pop((set_id, key), None)
            return
        self._set_contribution(set_id, key, [])

    def _set_contribution(self, set_id: str, key: Hashable, members: list[str]) -> None:
        new = tuple(members)
        old = self._contrib.get((set_id, key), ())
        if new == old:
            return
        if new:
            self._contrib[(set_id, key)] = new
        else:
            self._contrib.pop((set_id, key), None)
        refs = self._refs[set_id]
        for m in new:  # additions first, so a member moving between endpoints stays
            count = refs.get(m, 0)
            refs[m] = count + 1
            if count == 0:
                self._member_added(set_id, m)
        for m in old:
            count = refs[m] - 1
            if count:
                refs[m] = count
            else:
                del refs[m]
                self._member_removed(set_id, m)

    def _member_added(self, set_id: str, member: str) -> None:
        ov = self._overlaps.get(set_id)
        if ov is None or "," in member:
            self._on_added(set_id, member)
            return
        net = ipaddress.ip_network(member)
        hidden = ov.covered(net)
        ov.add(net)
        if hidden:
            return
        self._on_added(set_id, member)
        for inner in ov.descendants(net):
            # Visible until now only if nothing but ``net`` covers it.
            ov.remove(net)
            was_visible = not ov.covered(inner)
            ov.add(net)
            if was_visible:
                self._on_removed(set_id, str(inner))

    def _member_removed(self, set_id: str, member: str) -> None:
        ov = self._overlaps.get(set_id)
        if ov is None or "," in member:
            self._on_removed(set_id, member)
            return
        net = ipaddress.ip_network(member)
        ov.remove(net)
        if ov.covered(net):
            return
        self._on_removed(set_id, member)
        for inner in ov.descendants(net):
            if not ov.covered(inner):
                self._on_added(set_id, str(inner))
