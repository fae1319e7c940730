"""The route side of the calculation: Felix's L3 route resolver and VXLAN resolver.

Input is the datastore syncer's ``Update`` stream for IPPools, Nodes, IPAM blocks (decoded
by ``decode_block``) and this host's WorkloadEndpoints (with Felix's ``RouteSource`` set
to ``WorkloadIPs``: every node's WorkloadEndpoints and no blocks); output is batches of
``RouteUpdateMsg``/``RouteRemove`` and ``VXLANTunnelEndpointUpdate``/``Remove`` messages.

How Felix computes a route (felix/calc/l3_route_resolver.go): every CIDR it knows something
about (a pool, a block or a borrowed address in a block, a node's own address, a tunnel
address, a local workload's address) gets one ``RouteUpdate``, built by walking from the
widest enclosing CIDR down to the CIDR itself and letting each level contribute: pools the
encapsulation type, NAT and cross-subnet; blocks the owning node; node addresses the host
flags; references (workloads, tunnel addresses) the final owner. A VTEP
(felix/calc/vxlan_resolver.go) is sent only once a node has both a VXLAN tunnel address and
a node IP for the family.

The calculation is incremental: a change marks the CIDRs it can affect dirty (the CIDR, the
CIDRs it encloses, the routes pointing at a changed node), only those are recomputed, and
``take_messages`` hands out the difference between what the dataplane was last told and
what is true now. Messages are ordered as Felix's event sequencer orders them: route
removes, VTEP removes, VTEP updates, route updates.

BlockAffinity records are not an input: Felix takes a block's owner from the block's own
``affinity`` field and its syncer does not even watch affinities, so they are ignored.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from node.datastore.syncer import Update, UpdateType
from node.felix import netaddr
from node.felix.types import (IPPoolType, RouteRemove, RouteType, RouteUpdate, RouteUpdateMsg,
                              VXLANTunnelEndpoint, VXLANTunnelEndpointRemove, VXLANTunnelEndpointUpdate)
from node.model import ipam as ipam_records
from node.model.cnet import parse_cidr_or_ip
from node.model.resource import Resource, stub_from_key

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where libcalico-go keeps allocation blocks: both families, then one each.
BLOCK_PREFIX = ipam_records.block_prefix()
BLOCK_PREFIX_V4 = ipam_records.block_prefix(4)
BLOCK_PREFIX_V6 = ipam_records.block_prefix(6)

# The allocation attribute naming the node an address was handed to.
_ATTR_NODE = "node"

# Reference kinds, in Felix's order: the first reference on a CIDR (by node, then kind)
# decides the route's owner.
REF_WEP = 0
REF_WIREGUARD = 1
REF_IPIP = 2
REF_VXLAN = 3

# Felix's RouteSource: where the routes to other nodes' workloads come from. From IPAM
# blocks (each affine block is one route to its node), or, for clusters whose addresses
# are not handed out by Calico's IPAM, from every workload's own addresses.
ROUTE_SOURCE_IPAM = "CalicoIPAM"
ROUTE_SOURCE_WORKLOAD_IPS = "WorkloadIPs"
ROUTE_SOURCES = (ROUTE_SOURCE_IPAM, ROUTE_SOURCE_WORKLOAD_IPS)

# Felix never sends a route for the all-zero host address.
_EMPTY_DSTS = frozenset({"0.0.0.0/32", "::/128"})


# --------------------------------------------------------------------------------------
# Blocks as the syncer hands them over.

@dataclass(frozen=True)
class IPAMBlock:
    """What routing needs from one allocation block.

    ``host`` is the node the block is affine to ('' for none; ``virtual:`` owners count,
    as in libcalico-go's ``Host()``); ``non_affine`` lists the allocated addresses owned
    by another node, as ``(address, node)``: each becomes its own /32 or /128 route.
    """

    cidr: str
    host: str = ""
    non_affine: tuple[tuple[str, str], ...] = ()


def block_from_value(raw: bytes | str) -> IPAMBlock:
    """Summarise a stored AllocationBlock (libcalico-go's ``Host`` and ``NonAffineAllocations``).

    Read as leniently as Felix reads it: an allocation whose attribute index points nowhere
    is skipped, not the whole block (the allocator, which writes blocks, is stricter).
    """
    rec = ipam_records.decode_block(raw)
    cidr = ipaddress.ip_network(rec.get("cidr") or "", strict=False)
    kind, _, owner = (rec.get("affinity") or "").partition(":")
    host = owner if kind in ("host", "virtual") else ""
    attributes = rec.get("attributes") or []
    non_affine = []
    for ordinal, idx in enumerate(rec.get("allocations") or []):
        if idx is None:
            continue
        address = cidr.network_address + ordinal
        if not isinstance(idx, int) or not 0 <= idx < len(attributes):
            log.warning("block %s: address %s has no attributes; no route for it", cidr, address)
            continue
        node = ((attributes[idx] or {}).get("secondary") or {}).get(_ATTR_NODE) or ""
        if host and node == host:
            continue  # affine to the block: covered by the block route
        if not node:
            # Felix warns and skips: without a node there is nowhere to route it (this is
            # also what a released address in cooldown looks like).
            log.debug("block %s: address %s has no node recorded; no route for it", cidr, address)
            continue
        non_affine.append((str(address), node))
    return IPAMBlock(str(cidr), host, tuple(non_affine))


def decode_block(key: str, value: bytes, revision: int) -> IPAMBlock | None:
    """SyncSource decoder for ``BLOCK_PREFIX``: None for keys that are not blocks."""
    if ipam_records.parse_block_key(key) is None:
        return None
    return block_from_value(value)


# --------------------------------------------------------------------------------------
# Small parsing helpers with libcalico-go's semantics.

def _parse_ip(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _host_net(addr: Address) -> Network:
    return ipaddress.ip_network(addr)


def vtep_mac(node: str, version: int = 4) -> str:
    """The MAC Felix derives for a node that has none recorded: 'f' + SHA-1(name)[:5].

    Both ends compute the same value, so the VXLAN device and its peers' FDB agree.
    """
    name = node if version == 4 else node + "-v6"
    digest = hashlib.sha1(name.encode()).digest()
    return ":".join(f"{b:02x}" for b in b"f" + digest[:5])


# --------------------------------------------------------------------------------------
# Pools.

@dataclass(frozen=True)
class _Pool:
    cidr: Network
    type: IPPoolType
    nat_outgoing: bool
    cross_subnet: bool
    ipip: bool  # ipipMode != Never, for the encapsulation decision
    vxlan: bool


def _pool_from_resource(res: Resource) -> _Pool | None:
    """The v1 pool libcalico-go gives Felix (IPPoolV3ToV1), or None if the CIDR is bad."""
    spec = res.spec or {}
    try:
        cidr = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
    except ValueError:
        log.warning("IPPool %s has an unusable cidr %r; ignoring it", res.name, spec.get("cidr"))
        return None
    ipip = spec.get("ipipMode") in ("Always", "CrossSubnet")
    vxlan = spec.get("vxlanMode") in ("Always", "CrossSubnet")
    cross = spec.get("ipipMode") == "CrossSubnet" or spec.get("vxlanMode") == "CrossSubnet"
    uses = spec.get("allowedUses") or ["Workload", "Tunnel"]
    if list(uses) == ["LoadBalancer"]:
        # Load-balancer-only pools hold no workload or tunnel addresses.
        pool_type = IPPoolType.NONE
    elif vxlan:
        pool_type = IPPoolType.VXLAN
    elif ipip:
        pool_type = IPPoolType.IPIP
    else:
        pool_type = IPPoolType.NO_ENCAP
    return _Pool(cidr, pool_type, bool(spec.get("natOutgoing")), cross, ipip, vxlan)


@dataclass(frozen=True)
class Encapsulation:
    """Which tunnels Felix runs (proto.Encapsulation); a change means a Felix restart."""

    ipip_enabled: bool = False
    vxlan_enabled: bool = False
    vxlan_enabled_v6: bool = False


def encapsulation_from_pools(pools: Iterable[_Pool], ipip_override: bool | None = None,
                             vxlan_override: bool | None = None) -> Encapsulation:
    """Felix's EncapsulationCalculator: IPIP if any pool uses it, VXLAN per family;
    ``IpInIpEnabled``/``VXLANEnabled`` override (there is no v6 VXLAN override)."""
    pools = list(pools)
    ipip = any(p.ipip for p in pools) if ipip_override is None else ipip_override
    vxlan = (any(p.vxlan and p.cidr.version == 4 for p in pools)
             if vxlan_override is None else vxlan_override)
    vxlan6 = any(p.vxlan and p.cidr.version == 6 for p in pools)
    return Encapsulation(ipip, vxlan, vxlan6)


# --------------------------------------------------------------------------------------
# Nodes.

@dataclass(frozen=True)
class _NodeInfo:
    """What the L3 resolver keeps per node (l3rrNodeInfo)."""

    v4_addr: Address | None = None
    v4_net: Network | None = None
    v6_addr: Address | None = None
    v6_net: Network | None = None
    tunnel_refs: tuple[tuple[Network, int], ...] = ()
    addresses: frozenset = frozenset()  # every host address, as host networks

    def addr(self, version: int) -> Address | None:
        return self.v4_addr if version == 4 else self.v6_addr


def _find_node_address(spec: Mapping, addr_type: str, version: int) -> tuple[Address, Network] | None:
    for entry in spec.get("addresses") or []:
        if entry.get("type") != addr_type:
            continue
        parsed = parse_cidr_or_ip(entry.get("address") or "")
        if parsed is not None and parsed[0].version == version:
            return parsed
    return None


def _l3_node_info(spec: Mapping) -> _NodeInfo | None:
    """The node's addresses as the L3 resolver reads them, or None when it has none.

    The BGP addresses win; without them the InternalIP (then ExternalIP) addresses are used.
    """
    bgp = spec.get("bgp") or None
    v4 = v6 = None
    if bgp and (bgp.get("ipv4Address") or bgp.get("ipv6Address")):
        if bgp.get("ipv4Address"):
            v4 = parse_cidr_or_ip(bgp["ipv4Address"])
        if bgp.get("ipv6Address"):
            v6 = parse_cidr_or_ip(bgp["ipv6Address"])
    else:
        v4 = _find_node_address(spec, "InternalIP", 4) or _find_node_address(spec, "ExternalIP", 4)
        v6 = _find_node_address(spec, "InternalIP", 6) or _find_node_address(spec, "ExternalIP", 6)
    if v4 is not None and v4[0].version != 4:
        v4 = None
    if v6 is not None and v6[0].version != 6:
        v6 = None
    if v4 is None and v6 is None:
        return None
    refs = []
    wg = spec.get("wireguard") or {}
    for text, ref in ((wg.get("interfaceIPv4Address"), REF_WIREGUARD),
                      (wg.get("interfaceIPv6Address"), REF_WIREGUARD),
                      ((bgp or {}).get("ipv4IPIPTunnelAddr"), REF_IPIP),
                      (spec.get("ipv4VXLANTunnelAddr"), REF_VXLAN),
                      (spec.get("ipv6VXLANTunnelAddr"), REF_VXLAN)):
        addr = _parse_ip(text)
        if addr is not None:
            refs.append((_host_net(addr), ref))
    addresses = set()
    for parsed in (v4, v6):
        if parsed is not None:
            addresses.add(_host_net(parsed[0]))
    for entry in spec.get("addresses") or []:
        parsed = parse_cidr_or_ip(entry.get("address") or "")
        if parsed is not None:
            addresses.add(_host_net(parsed[0]))
    # The all-zero address stands for "unset" in Felix and is never a host address.
    addresses -= {ipaddress.ip_network("0.0.0.0/32"), ipaddress.ip_network("::/128")}
    return _NodeInfo(v4_addr=v4[0] if v4 else None, v4_net=v4[1] if v4 else None,
                     v6_addr=v6[0] if v6 else None, v6_net=v6[1] if v6 else None,
                     tunnel_refs=tuple(refs), addresses=frozenset(addresses))


@dataclass
class _VTEPInputs:
    """The VXLAN resolver's per-node inputs (node IPs from BGP, tunnel config)."""

    ipv4: str | None = None
    ipv6: str | None = None
    tunnel_v4: str | None = None
    tunnel_v6: str | None = None
    mac_v4: str | None = None
    mac_v6: str | None = None


def _bgp_ip(text: str | None, version: int) -> tuple[bool, str | None]:
    """(parsed ok, bare IP or None); an empty value parses as "no address"."""
    if not text:
        return True, None
    parsed = parse_cidr_or_ip(text)
    if parsed is None or parsed[0].version != version:
        return False, None
    return True, str(parsed[0])


def _tunnel_ip(text: str | None) -> str | None:
    addr = _parse_ip(text)
    return str(addr) if addr is not None else None


def vtep_for(node: str, inputs: _VTEPInputs) -> VXLANTunnelEndpoint | None:
    """The node's VTEP once a family is complete (tunnel address and node IP), else None."""
    has_v4 = inputs.tunnel_v4 is not None and inputs.ipv4 is not None
    has_v6 = inputs.tunnel_v6 is not None and inputs.ipv6 is not None
    if not has_v4 and not has_v6:
        return None
    return VXLANTunnelEndpoint(
        node=node,
        mac=(inputs.mac_v4 or vtep_mac(node, 4)) if has_v4 else "",
        ipv4_addr=inputs.tunnel_v4 if has_v4 else "",
        parent_device_ip=inputs.ipv4 if has_v4 else "",
        mac_v6=(inputs.mac_v6 or vtep_mac(node, 6)) if has_v6 else "",
        ipv6_addr=inputs.tunnel_v6 if has_v6 else "",
        parent_device_ipv6=inputs.ipv6 if has_v6 else "",
    )


# --------------------------------------------------------------------------------------
# What is known about one CIDR (Felix's RouteInfo).

@dataclass
class _Info:
    pool: _Pool | None = None
    block_node: str | None = None
    hosts: list[str] = field(default_factory=list)  # kept sorted
    refs: dict[tuple[str, int], int] = field(default_factory=dict)  # (node, kind) -> count

    def empty(self) -> bool:
        return self.pool is None and self.block_node is None and not self.hosts and not self.refs

    def sorted_refs(self) -> list[tuple[str, int]]:
        return sorted(self.refs)


def _supernet(cidr: Network, prefix: int) -> Network:
    """The network of length ``prefix`` that encloses ``cidr``."""
    if prefix == cidr.prefixlen:
        return cidr  # (networks are kept masked)
    bits = cidr.max_prefixlen
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    return type(cidr)((int(cidr.network_address) & mask, prefix))


# --------------------------------------------------------------------------------------

class RouteCalculation:
    """Felix's L3 route and VXLAN resolvers, fed by syncer updates (see the module doc)."""

    def __init__(self, hostname: str, route_source: str = ROUTE_SOURCE_IPAM):
        self.hostname = hostname
        self.route_source = _route_source(route_source)
        self._workload_ips = self.route_source == ROUTE_SOURCE_WORKLOAD_IPS
        self._index: dict[Network, _Info] = {}
        # How many indexed CIDRs have each (family, prefix length): the only lengths a
        # walk towards the root needs to look at.
        self._prefix_counts: dict[tuple[int, int], int] = {}
        # Inputs, per key, so a re-sent or partially applied update is an upsert.
        self._pools_by_name: dict[str, _Pool] = {}
        # Blocks are kept in both modes (they are few), but indexed only with CalicoIPAM.
        self._block_routes: dict[str, dict[Network, str]] = {}
        self._block_claims: dict[Network, dict[str, str]] = {}  # dst -> block key -> node
        self._nodes: dict[str, _NodeInfo] = {}
        self._vtep_inputs: dict[str, _VTEPInputs] = {}
        # Workloads routed from their own addresses: key -> (node, networks). This host's
        # only with CalicoIPAM, every node's with WorkloadIPs.
        self._wep_nets: dict[str, tuple[str, tuple[Network, ...]]] = {}
        # Work to do at the next flush.
        self._dirty: set[Network] = set()
        self._dirty_parents: set[Network] = set()
        self._dirty_vteps: set[str] = set()
        # Results: as computed now, and as last handed out.
        self._current: dict[Network, RouteUpdate] = {}
        self._routes_by_node: dict[str, set[Network]] = {}
        self._published: dict[Network, RouteUpdate] = {}
        self._changed: set[Network] = set()
        self._vteps: dict[str, VXLANTunnelEndpoint] = {}
        self._published_vteps: dict[str, VXLANTunnelEndpoint] = {}
        self._changed_vteps: set[str] = set()

    # -- public API ---------------------------------------------------------------------

    def on_updates(self, updates: Iterable[Update]) -> None:
        """Apply a batch of syncer updates (any kinds; the ones routing ignores are skipped)."""
        for update in updates:
            value = update.value
            gone = update.type == UpdateType.DELETED
            if gone and value is None and not update.key.startswith(BLOCK_PREFIX):
                value = stub_from_key(update.key)  # from a syncer that keeps no values
            if isinstance(value, IPAMBlock) or (gone and update.key.startswith(BLOCK_PREFIX)):
                self._on_block(update.key, None if gone else value)
            elif isinstance(value, Resource):
                if value.kind == "IPPool":
                    self._on_pool(value.name, None if gone else value)
                elif value.kind == "Node":
                    self._on_node(value.name, None if gone else value)
                elif value.kind == "WorkloadEndpoint":
                    # (With CalicoIPAM, a remote workload never routed as local changes
                    # nothing: skipped without the call, there being thousands of them.)
                    if gone or self._workload_ips or update.key in self._wep_nets or \
                            (value.spec or {}).get("node") == self.hostname:
                        self._on_workload(update.key, None if gone else value)
        self._flush()

    def take_messages(self) -> list:
        """Everything that changed since the last call, coalesced, in Felix's order."""
        route_removes, route_updates = [], []
        for dst in sorted(self._changed, key=_net_sort_key):
            new, old = self._current.get(dst), self._published.get(dst)
            if new == old:
                continue
            if new is None:
                route_removes.append(RouteRemove(str(dst)))
                del self._published[dst]
            else:
                route_updates.append(RouteUpdateMsg(new))
                self._published[dst] = new
        self._changed.clear()
        vtep_removes, vtep_updates = [], []
        for node in sorted(self._changed_vteps):
            new_vtep, old_vtep = self._vteps.get(node), self._published_vteps.get(node)
            if new_vtep == old_vtep:
                continue
            if new_vtep is None:
                vtep_removes.append(VXLANTunnelEndpointRemove(node))
                del self._published_vteps[node]
            else:
                vtep_updates.append(VXLANTunnelEndpointUpdate(new_vtep))
                self._published_vteps[node] = new_vtep
        self._changed_vteps.clear()
        return route_removes + vtep_removes + vtep_updates + route_updates

    def routes(self) -> dict[str, RouteUpdate]:
        """Every route as computed now, by destination."""
        return {str(dst): rt for dst, rt in self._current.items()}

    def vteps(self) -> dict[str, VXLANTunnelEndpoint]:
        """Every complete VTEP as computed now, by node."""
        return dict(self._vteps)

    def encapsulation(self, ipip_override: bool | None = None,
                      vxlan_override: bool | None = None) -> Encapsulation:
        """Which encapsulations the pools ask for (see ``encapsulation_from_pools``)."""
        return encapsulation_from_pools(self._effective_pools().values(), ipip_override, vxlan_override)

    # -- pools ----------------------------------------------------------------------------

    def _effective_pools(self) -> dict[Network, _Pool]:
        """One pool per CIDR: libcalico-go syncs the pool with the lowest name."""
        out: dict[Network, tuple[str, _Pool]] = {}
        for name, pool in self._pools_by_name.items():
            cur = out.get(pool.cidr)
            if cur is None or name < cur[0]:
                out[pool.cidr] = (name, pool)
        return {cidr: pool for cidr, (_, pool) in out.items()}

    def _on_pool(self, name: str, res: Resource | None) -> None:
        old = self._pools_by_name.pop(name, None)
        new = _pool_from_resource(res) if res is not None else None
        if new is not None:
            self._pools_by_name[name] = new
        effective = self._effective_pools()
        for cidr in {p.cidr for p in (old, new) if p is not None}:
            self._update(cidr, lambda info, pool=effective.get(cidr): setattr(info, "pool", pool))

    # -- blocks ---------------------------------------------------------------------------

    def _on_block(self, key: str, block: IPAMBlock | None) -> None:
        new: dict[Network, str] = {}
        if block is not None:
            for text, node in block.non_affine:
                new[_host_net(ipaddress.ip_address(text))] = node
            if block.host:
                new[ipaddress.ip_network(block.cidr)] = block.host
        old = self._block_routes.get(key, {})
        if not self._workload_ips:
            self._index_block(key, old, new)
        if new:
            self._block_routes[key] = new
        else:
            self._block_routes.pop(key, None)

    def _index_block(self, key: str, old: Mapping[Network, str], new: Mapping[Network, str]) -> None:
        for dst in set(old) | set(new):
            if old.get(dst) == new.get(dst):
                continue
            claims = self._block_claims.setdefault(dst, {})
            if dst in new:
                claims[key] = new[dst]
            else:
                claims.pop(key, None)
            if not claims:
                del self._block_claims[dst]
            # Blocks never overlap in a valid datastore; if two claim a CIDR anyway, the
            # one with the lowest key wins so the answer does not depend on event order.
            owner = claims[min(claims)] if claims else None
            self._update(dst, lambda info, owner=owner: setattr(info, "block_node", owner))

    # -- nodes ----------------------------------------------------------------------------

    def _on_node(self, name: str, res: Resource | None) -> None:
        spec = (res.spec or {}) if res is not None else None
        self._on_node_l3(name, _l3_node_info(spec) if spec is not None else None)
        self._on_node_vtep(name, spec)

    def _on_node_l3(self, name: str, new: _NodeInfo | None) -> None:
        old = self._nodes.get(name)
        if old == new:
            return
        if name == self.hostname and ((old.v4_net if old else None) != (new.v4_net if new else None) or
                                      (old.v6_net if old else None) != (new.v6_net if new else None)):
            # Our own subnet decides "same subnet" for every route that names a node.
            for nets in self._routes_by_node.values():
                self._dirty.update(nets)
        # Tunnel addresses are reference counted: add the new before dropping the old.
        for cidr, ref in (new.tunnel_refs if new else ()):
            self._update(cidr, lambda info, k=(name, ref): _incref(info, k))
        for cidr, ref in (old.tunnel_refs if old else ()):
            self._update(cidr, lambda info, k=(name, ref): _decref(info, k))
        for cidr in (old.addresses if old else ()):
            self._update(cidr, lambda info: _remove_host(info, name))
        if new is None:
            self._nodes.pop(name, None)
        else:
            self._nodes[name] = new
        for cidr in (new.addresses if new else ()):
            self._update(cidr, lambda info: _add_host(info, name))
        # Routes naming this node carry its IP and its same-subnet answer.
        self._dirty.update(self._routes_by_node.get(name, ()))

    def _on_node_vtep(self, name: str, spec: Mapping | None) -> None:
        inputs = self._vtep_inputs.get(name) or _VTEPInputs()
        if spec is None:
            inputs = _VTEPInputs()
        else:
            bgp = spec.get("bgp")
            if bgp is None:
                inputs.ipv4 = inputs.ipv6 = None
            else:
                ok4, ipv4 = _bgp_ip(bgp.get("ipv4Address"), 4)
                ok6, ipv6 = _bgp_ip(bgp.get("ipv6Address"), 6)
                if ok4 and ok6:
                    inputs.ipv4, inputs.ipv6 = ipv4, ipv6
                else:
                    # Felix logs and keeps the addresses it had.
                    log.error("node %s: cannot parse its BGP addresses; keeping the previous ones", name)
            inputs.tunnel_v4 = _tunnel_ip(spec.get("ipv4VXLANTunnelAddr"))
            inputs.tunnel_v6 = _tunnel_ip(spec.get("ipv6VXLANTunnelAddr"))
            inputs.mac_v4 = spec.get("vxlanTunnelMACAddr") or None
            inputs.mac_v6 = spec.get("vxlanTunnelMACAddrV6") or None
        if inputs == _VTEPInputs():
            self._vtep_inputs.pop(name, None)
        else:
            self._vtep_inputs[name] = inputs
        self._dirty_vteps.add(name)

    # -- local workloads ------------------------------------------------------------------

    def _on_workload(self, key: str, res: Resource | None) -> None:
        """A workload's addresses are references: they mark an IP as a live pod of its node
        (with CalicoIPAM only this node's pods are references; blocks route the rest)."""
        new = None
        spec = (res.spec or {}) if res is not None else None
        node = spec.get("node") if spec is not None else None
        if type(node) is str and node and (self._workload_ips or node == self.hostname):
            nets = _workload_networks(spec.get("ipNetworks") or [])
            if nets:
                new = (node, nets)
        self._set_workload(key, self._wep_nets.get(key), new)

    def _set_workload(self, key: str, old: tuple[str, tuple[Network, ...]] | None,
                      new: tuple[str, tuple[Network, ...]] | None) -> None:
        if old == new:
            return
        if new is not None:  # add the new references before dropping the old
            ref = (new[0], REF_WEP)
            for cidr in new[1]:
                self._update(cidr, lambda info: _incref(info, ref))
        if old is not None:
            ref = (old[0], REF_WEP)
            for cidr in old[1]:
                self._update(cidr, lambda info: _decref(info, ref))
        if new is not None:
            self._wep_nets[key] = new
        else:
            self._wep_nets.pop(key, None)

    # -- the route source -----------------------------------------------------------------

    def set_route_source(self, route_source: str,
                         workloads: Iterable[tuple[str, str, Iterable[str]]] = ()) -> None:
        """Switch where remote workloads' routes come from (Felix reads RouteSource before
        it builds its resolver; the agent learns the datastore's value only once it is in
        sync, after the updates have been fed). ``workloads`` gives every workload of the
        cluster as (datastore key, node, networks): with CalicoIPAM only this node's were
        kept, so switching to WorkloadIPs needs the others from whoever kept them."""
        route_source = _route_source(route_source)
        if route_source == self.route_source:
            return
        log.info("route calculation: routes to other nodes' workloads now come from %s",
                 "their addresses (RouteSource WorkloadIPs)" if route_source == ROUTE_SOURCE_WORKLOAD_IPS
                 else "IPAM blocks (RouteSource CalicoIPAM)")
        if route_source == ROUTE_SOURCE_WORKLOAD_IPS:
            for key, routes in self._block_routes.items():
                self._index_block(key, routes, {})
            for key, node, nets in workloads:
                if key not in self._wep_nets and node:
                    parsed = _workload_networks(nets)
                    if parsed:
                        self._set_workload(key, None, (node, parsed))
        else:
            for key, entry in list(self._wep_nets.items()):
                if entry[0] != self.hostname:
                    self._set_workload(key, entry, None)
            for key, routes in self._block_routes.items():
                self._index_block(key, {}, routes)
        self.route_source = route_source
        self._workload_ips = route_source == ROUTE_SOURCE_WORKLOAD_IPS
        self._flush()

    # -- the index and the flush ----------------------------------------------------------

    def _update(self, cidr: Network, change) -> None:
        """Apply ``change`` to what is known about ``cidr`` and mark what it can affect."""
        info = self._index.get(cidr)
        indexed = info is not None
        if not indexed:
            info = _Info()
        change(info)
        length = (cidr.version, cidr.prefixlen)
        if info.empty():
            if indexed:
                del self._index[cidr]
                self._prefix_counts[length] -= 1
                if not self._prefix_counts[length]:
                    del self._prefix_counts[length]
        elif not indexed:
            self._index[cidr] = info
            self._prefix_counts[length] = self._prefix_counts.get(length, 0) + 1
        self._dirty.add(cidr)
        if cidr.prefixlen < cidr.max_prefixlen:
            self._dirty_parents.add(cidr)

    def _flush(self) -> None:
        if self._dirty_parents:
            # Anything a changed CIDR encloses may inherit from it: a CIDR is inside a
            # parent when, cut to the parent's length, its address is the parent's (the
            # comparison ``_supernet(cidr, prefix) in parents`` makes, done on integers).
            by_length: dict[tuple[int, int], set[int]] = {}
            for net in self._dirty_parents:
                by_length.setdefault((net.version, net.prefixlen), set()).add(int(net.network_address))
            lengths = sorted(by_length)
            for cidr in self._index:
                version, plen, bits = cidr.version, cidr.prefixlen, cidr.max_prefixlen
                value = int(cidr.network_address)
                for length in lengths:
                    v, prefix = length
                    if v == version and prefix <= plen and \
                            (value >> (bits - prefix)) << (bits - prefix) in by_length[length]:
                        self._dirty.add(cidr)
                        break
            self._dirty_parents = set()
        # The index does not change while the dirty CIDRs are computed, so what encloses
        # them is looked up once per distinct enclosing network.
        lengths = sorted(self._prefix_counts)
        enclosing: dict[tuple[int, int, int], _Info | None] = {}
        for cidr in self._dirty:
            new = self._compute(cidr, lengths, enclosing)
            old = self._current.get(cidr)
            if new == old:
                continue
            if old is not None and old.dst_node_name:
                names = self._routes_by_node[old.dst_node_name]
                names.discard(cidr)
                if not names:
                    del self._routes_by_node[old.dst_node_name]
            if new is None:
                del self._current[cidr]
            else:
                self._current[cidr] = new
                if new.dst_node_name:
                    self._routes_by_node.setdefault(new.dst_node_name, set()).add(cidr)
            self._changed.add(cidr)
        self._dirty = set()
        for node in self._dirty_vteps:
            inputs = self._vtep_inputs.get(node)
            vtep = vtep_for(node, inputs) if inputs is not None else None
            if vtep != self._vteps.get(node):
                if vtep is None:
                    del self._vteps[node]
                else:
                    self._vteps[node] = vtep
                self._changed_vteps.add(node)
        self._dirty_vteps = set()

    def _compute(self, cidr: Network, lengths: list[tuple[int, int]],
                 enclosing: dict) -> RouteUpdate | None:
        """The RouteUpdate for one CIDR, from everything enclosing it (Felix's flush).
        ``lengths`` is ``sorted(self._prefix_counts)`` and ``enclosing`` a memo of index
        entries by (family bits, prefix, address >> host bits), both valid while the
        index is unchanged."""
        own_info = self._index.get(cidr)
        if own_info is None:
            return None
        dst = str(cidr)
        if dst in _EMPTY_DSTS:
            return None
        types = RouteType.CIDR_INFO
        pool_type = IPPoolType.NONE
        dst_node = ""
        nat = borrowed = local_workload = False
        cross_subnet = block_seen = block_matches = has_tunnel_ref = False
        block_node = ""
        block_types = RouteType.CIDR_INFO
        own_version, own_prefix, bits = cidr.version, cidr.prefixlen, cidr.max_prefixlen
        for version, prefix in lengths:
            if version != own_version or prefix > own_prefix:
                continue
            if prefix == own_prefix:
                info = own_info
            else:
                key = (bits, prefix, int(cidr.network_address) >> (bits - prefix))
                if key in enclosing:
                    info = enclosing[key]
                else:
                    info = enclosing[key] = self._index.get(_supernet(cidr, prefix))
            if info is None:
                continue
            if info.pool is not None:
                if info.pool.type != IPPoolType.NONE:
                    pool_type = info.pool.type
                nat = nat or info.pool.nat_outgoing
                cross_subnet = cross_subnet or info.pool.cross_subnet
            if info.block_node is not None:
                if block_seen and block_node != info.block_node:
                    borrowed = True
                else:
                    block_seen, block_node = True, info.block_node
                dst_node = info.block_node
                if prefix == own_prefix:  # (the enclosing network is the CIDR itself)
                    block_matches = True
                # Held back until the walk ends: a tunnel address inside a wider block is
                # not a workload.
                block_types |= (RouteType.LOCAL_WORKLOAD if info.block_node == self.hostname
                                else RouteType.REMOTE_WORKLOAD)
            if info.hosts:
                dst_node = info.hosts[0]
                types |= RouteType.LOCAL_HOST if dst_node == self.hostname else RouteType.REMOTE_HOST
            if info.refs:
                ref_node, ref_kind = info.sorted_refs()[0]
                dst_node = ref_node
                if block_seen and block_node != dst_node:
                    borrowed = True
                if ref_kind == REF_WEP:
                    if ref_node == self.hostname:
                        local_workload = True
                        types |= RouteType.LOCAL_WORKLOAD
                    else:
                        types |= RouteType.REMOTE_WORKLOAD
                else:
                    has_tunnel_ref = True
                    types |= RouteType.LOCAL_TUNNEL if ref_node == self.hostname else RouteType.REMOTE_TUNNEL
        if block_seen and (not has_tunnel_ref or block_matches):
            types |= block_types
        dst_ip = ""
        node_info = self._nodes.get(dst_node) if dst_node else None
        if node_info is not None:
            addr = node_info.addr(cidr.version)
            dst_ip = str(addr) if addr is not None else ""
        same_subnet = cross_subnet and node_info is not None and self._in_our_subnet(node_info, cidr.version)
        return RouteUpdate(dst=dst, types=types, ip_pool_type=pool_type, dst_node_name=dst_node,
                           dst_node_ip=dst_ip, same_subnet=same_subnet, nat_outgoing=nat,
                           local_workload=local_workload, borrowed=borrowed)

    def _in_our_subnet(self, other: _NodeInfo, version: int) -> bool:
        """Is the other node's IP inside our own node's subnet (an unknown IP reads as all-zero)?"""
        mine = self._nodes.get(self.hostname)
        if mine is None:
            return False
        net = mine.v4_net if version == 4 else mine.v6_net
        if net is None:
            return False
        addr = other.addr(version) or ipaddress.ip_address(0 if version == 4 else "::")
        return addr in net


def _route_source(value: str) -> str:
    """As Felix's resolver reads RouteSource: WorkloadIPs, or else CalicoIPAM (``none``
    gives the parameter's zero value, the empty string)."""
    return ROUTE_SOURCE_WORKLOAD_IPS if value == ROUTE_SOURCE_WORKLOAD_IPS else ROUTE_SOURCE_IPAM


def _workload_networks(texts: Iterable) -> tuple[Network, ...]:
    """A workload's ``ipNetworks`` as networks (what cannot be parsed is left out)."""
    nets = []
    for text in texts:
        if type(text) is str and netaddr.v4_network_text(text) is not None:
            nets.append(netaddr.parse_network(text))  # canonical IPv4: the same network, parsed fast
            continue
        parsed = parse_cidr_or_ip(text)
        if parsed is not None:
            nets.append(parsed[1])
    return tuple(nets)


def _incref(info: _Info, key: tuple[str, int]) -> None:
    info.refs[key] = info.refs.get(key, 0) + 1


def _decref(info: _Info, key: tuple[str, int]) -> None:
    count = info.refs.get(key, 0) - 1
    if count > 0:
        info.refs[key] = count
    else:
        info.refs.pop(key, None)


def _add_host(info: _Info, name: str) -> None:
    """Several nodes may claim one address; keep them sorted so the choice is stable."""
    info.hosts.append(name)
    info.hosts.sort()


def _remove_host(info: _Info, name: str) -> None:
    if name in info.hosts:
        info.hosts.remove(name)


def _net_sort_key(net: Network) -> tuple:
    return (net.version, int(net.network_address), net.prefixlen)


def compute_from_scratch(hostname: str, updates: Iterable[Update], route_source: str = ROUTE_SOURCE_IPAM
                         ) -> tuple[dict[str, RouteUpdate], dict[str, VXLANTunnelEndpoint]]:
    """Routes and VTEPs for a final state given in one go (what a fresh Felix would send)."""
    calc = RouteCalculation(hostname, route_source)
    calc.on_updates(list(updates))
    return calc.routes(), calc.vteps()


__all__ = ["BLOCK_PREFIX", "BLOCK_PREFIX_V4", "BLOCK_PREFIX_V6", "Encapsulation", "IPAMBlock",
           "ROUTE_SOURCES", "ROUTE_SOURCE_IPAM", "ROUTE_SOURCE_WORKLOAD_IPS", "RouteCalculation",
           "block_from_value", "compute_from_scratch", "decode_block",
           "encapsulation_from_pools", "vtep_for", "vtep_mac"]
