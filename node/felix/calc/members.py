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
from typing import NamedTuple

from node.felix import netaddr
from node.felix.calc import v1
from node.felix.calc.rule_scanner import IPSetData, protocol_from, protocol_matches
from node.selector import LabelIndex

MemberCallback = Callable[[str, str], None]
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointData(NamedTuple):
    """An endpoint's contribution inputs: its CIDRs, as text (``str()`` of the network,
    which is what a selector set holds), and its named ports. (A named tuple: one is
    made per endpoint of the cluster, and they are only compared with each other.)"""

    nets: tuple[str, ...] = ()
    ports: tuple[v1.EndpointPort, ...] = ()


def host_net(addr_or_net: str) -> IPNet:
    """A workload's network or a host endpoint's address as a single-address CIDR (Felix
    uses the address and ignores any prefix length)."""
    net = netaddr.parse_network(addr_or_net)
    if net.prefixlen == net.max_prefixlen:
        return net
    return type(net)((int(net.network_address), net.max_prefixlen))


def host_net_text(addr_or_net: str) -> str:
    """``str(host_net(addr_or_net))``, without building the network for canonical IPv4."""
    fast = netaddr.v4_network_text(addr_or_net)
    if fast is None:
        return str(host_net(addr_or_net))
    return fast if fast.endswith("/32") else fast.partition("/")[0] + "/32"


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


def contribution(ep: EndpointData, ipset: IPSetData) -> tuple[str, ...]:
    """The members one (matching) endpoint puts into a set, in Felix's member format (the
    address of a network's text is what precedes its ``/``)."""
    if not ipset.named_port_protocol:
        return ep.nets
    out = []
    for port in ep.ports:
        if port.name == ipset.named_port and protocol_matches(ipset.named_port_protocol, port.protocol):
            proto = protocol_from(port.protocol)
            for net in ep.nets:
                out.append(f"{net.partition('/')[0]},{proto}:{port.port}")
    return tuple(out)


def _is_host(member: str) -> bool:
    """A single address's member (``a.b.c.d/32``, ``.../128``): it can hide nothing."""
    return member.endswith("/128") or (member.endswith("/32") and ":" not in member)


class _Overlaps:
    """The CIDR members of one set, to find members hidden by a containing member.
    Wider members are kept by family and prefix length; single addresses, nearly every
    member and never a container, only as their text, read only when a wider member
    comes or goes (so a set of pod addresses costs no parsing)."""

    def __init__(self) -> None:
        # (version, prefixlen) -> set of network prefixes (address >> host bits).
        self._by_len: dict[tuple[int, int], set[int]] = {}
        self.hosts: set[str] = set()

    @staticmethod
    def _value(net: IPNet, plen: int) -> int:
        return int(net.network_address) >> (net.max_prefixlen - plen)

    def has_wider(self) -> bool:
        return bool(self._by_len)

    def add_text(self, member: str) -> None:
        if _is_host(member):
            self.hosts.add(member)
        else:
            self.add(ipaddress.ip_network(member))

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

    def covered_text(self, member: str) -> bool:
        return bool(self._by_len) and self.covered(ipaddress.ip_network(member))

    def descendants(self, net: IPNet) -> list[IPNet]:
        """Members strictly inside ``net`` (a wider member's)."""
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
        for text in self.hosts:
            host = ipaddress.ip_network(text)
            if host.version == net.version and self._value(host, net.prefixlen) == base:
                out.append(host)
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
        # set ID -> endpoint -> the members that endpoint put in (kept while the set is).
        self._contrib: dict[str, dict[Hashable, tuple[str, ...]]] = {}
        self._refs: dict[str, dict[str, int]] = {}
        self._overlaps: dict[str, _Overlaps] = {}

    # ------------------------------------------------------------------ sets

    def update_set(self, ipset: IPSetData) -> None:
        """Start tracking a set (its ID fixes its content, so an update is a no-op)."""
        if ipset.id in self._sets:
            return
        self._sets[ipset.id] = ipset
        self._refs[ipset.id] = {}
        self._contrib[ipset.id] = {}
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
        del self._contrib[set_id]
        self._overlaps.pop(set_id, None)

    def set_suppress_overlaps(self, on: bool) -> None:
        """Switch overlap suppression on or off (Felix decides it once, from NFTablesMode,
        when it builds its calculation; this is for when the configuration is known only
        after the members are), reporting the members that become hidden or visible."""
        if on == self._suppress:
            return
        self._suppress = on
        for set_id, refs in self._refs.items():
            cidrs = [m for m in refs if "," not in m]
            ov = _Overlaps()
            for m in cidrs:
                ov.add_text(m)
            hidden = [m for m in sorted(cidrs) if ov.covered_text(m)]
            if on:
                self._overlaps[set_id] = ov
                for m in hidden:
                    self._on_removed(set_id, m)
            else:
                del self._overlaps[set_id]
                for m in hidden:
                    self._on_added(set_id, m)

    @property
    def label_index(self) -> LabelIndex:
        """The index matching the sets' selectors with the endpoints (Felix's label index
        metrics watch it)."""
        return self._index

    def endpoint_count(self) -> int:
        """Endpoints and network sets in the index (felix_label_index_num_endpoints)."""
        return len(self._endpoints)

    def members(self, set_id: str) -> frozenset[str]:
        """The set's current members as reported (after overlap suppression)."""
        refs = self._refs.get(set_id, {})
        ov = self._overlaps.get(set_id)
        if ov is None or not ov.has_wider():
            return frozenset(refs)
        return frozenset(m for m in refs if "," in m or not ov.covered_text(m))

    # ------------------------------------------------------------------ endpoints

    def update_endpoint(self, key: Hashable, labels: Iterable[tuple[str, str]],
                        parents: Iterable[str], data: EndpointData) -> None:
        old = self._endpoints.get(key)
        self._endpoints[key] = data
        if old is not None and old != data:
            # Same matches (for now), different addresses or ports: re-contribute.
            for set_id in self._index.selectors_matching(key):
                self._set_contribution(set_id, key, contribution(data, self._sets[set_id]))
        # (The index copies the labels into a dict and does nothing when they and the
        # parents are unchanged.)
        self._index.update_endpoint(key, labels, parents)

    def endpoint_data(self, key: Hashable) -> EndpointData | None:
        return self._endpoints.get(key)

    def remove_endpoint(self, key: Hashable) -> None:
        if key not in self._endpoints:
            return
        self._index.remove_endpoint(key)
        del self._endpoints[key]

    def update_parent(self, parent_id: str, labels: Iterable[tuple[str, str]]) -> None:
        self._index.update_parent(parent_id, dict(labels))

    def remove_parent(self, parent_id: str) -> None:
        self._index.remove_parent(parent_id)

    # ------------------------------------------------------------------ matching

    def _match_started(self, set_id: str, key: Hashable) -> None:
        ipset, data = self._sets[set_id], self._endpoints[key]
        # (``contribution``'s common case, a selector set's CIDRs, inlined.)
        new = contribution(data, ipset) if ipset.named_port_protocol else data.nets
        by_key = self._contrib[set_id]
        if not new or key in by_key:
            self._set_contribution(set_id, key, new)
            return
        # The usual case, a first contribution: ``_set_contribution`` inlined (and
        # ``_member_added`` too without overlap suppression).
        by_key[key] = new
        refs = self._refs[set_id]
        on_added = self._on_added if set_id not in self._overlaps else \
            (lambda set_id, m: self._member_added(set_id, m))
        for m in new:
            count = refs.get(m, 0)
            refs[m] = count + 1
            if count == 0:
                on_added(set_id, m)

    def _match_stopped(self, set_id: str, key: Hashable) -> None:
        if set_id not in self._sets:  # the whole set is being removed (contributions too)
            return
        self._set_contribution(set_id, key, ())

    def _set_contribution(self, set_id: str, key: Hashable, new: tuple[str, ...]) -> None:
        by_key = self._contrib[set_id]
        old = by_key.get(key, ())
        if new == old:
            return
        if new:
            by_key[key] = new
        else:
            by_key.pop(key, None)
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
        if _is_host(member):  # it hides nothing; hidden itself only under a wider member
            ov.hosts.add(member)
            if not ov.covered_text(member):
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
        if _is_host(member):
            ov.hosts.discard(member)
            if not ov.covered_text(member):
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
