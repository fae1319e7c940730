"""Routes, neighbours, FDB entries, tunnel devices and sysctls in the kernel, kept equal
to a ``DesiredRoutes`` (node/felix/routes.py) through pyroute2.

Felix's route table, VXLAN/IPIP device loops, VXLAN FDB and the endpoint manager's
/proc/sys writes (felix/routetable, felix/dataplane/linux/{route_mgr,vxlan_mgr,ipip_mgr,
endpoint_mgr}.go, felix/vxlanfdb), as a pure plan plus a thin applier:

* ``read_kernel(ipr)`` turns netlink dumps into plain data (``KernelState``);
* ``plan(desired, kernel, ownership)`` lists the operations that make the kernel match,
  touching only what differs and only what Felix owns (``Ownership``): routes on
  workload interfaces (any protocol with RemoveExternalRoutes, else ``boot`` or Felix's
  protocol), routes on ``vxlan.calico``, and any route with Felix's exclusive protocol
  (80, or DeviceRouteProtocol when it is not ``boot``) - that covers the blackholes;
  permanent neighbours on the VXLAN devices (those on workload interfaces are set, never
  deleted, as Felix's route table does); FDB entries on VXLAN devices; the tunnel
  devices themselves. Routes and neighbours on an interface that is
  not oper-up are not programmed (the kernel drops them when it goes down);
* ``plan_sysctls`` gives the /proc/sys writes: an interface's once it is oper-up, again
  whenever it comes up with a new index, and the global ones once;
* ``RouteDataplane.apply`` runs the plan. It keeps the kernel state it last read and
  updates it with its own successful writes; it reads the kernel again (one dump of
  links, routes, neighbours, FDB and addresses) on the first apply, every
  ``refresh_interval`` (RouteRefreshInterval), after a failed or device-changing write,
  and whenever the interfaces differ from the last read (an interface that went down or
  was re-created lost its routes). So an apply with nothing changed makes no netlink
  change, and reads nothing unless it must;
* conntrack cleanup, as Felix's route table does it (on by default, as in Felix): when
  an apply deletes a route of ours to a single address, or finds it gone from the kernel
  (its veth was deleted), or the address moves to another interface (a new pod got it),
  the address's conntrack flows are removed, both those it started and those to it
  (``conntrack_cleanups``, ``plan_moves``: pure decisions over the address owners the
  last apply and this one want). A moving route is deleted first; the removals run in
  the background (node/felix/dataplane/conntrack.py) and a route for an address is only
  programmed once that address's removal is over. A failed removal is logged with the
  address and changes nothing else.

``tunl0`` needs the kernel's ipip module: if creating it fails, one warning says so and
the rest is programmed without it; creation is retried silently at each periodic refresh.
With IPIP implicitly off, ``tunl0``'s IPv4 addresses are stripped once (as Felix's
start-up clean-up does), not at every apply: the device is shared.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import os
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from socket import AF_INET, AF_INET6
from typing import Callable, Iterable, Mapping

from node.felix.dataplane.conntrack import ConntrackCleaner
from node.felix.dataplane.interfaces import Interface, link_oper_up
from node.rtnl import IPRoute, NetlinkError, ndmsg
from node.felix.routes import (FELIX_ROUTE_PROTOCOL, IPIP_DEVICE, RTPROT_BOOT, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6,
                               DesiredRoutes, FDBEntry, IPIPDevice, Neighbour, Route, Sysctl, VXLANDevice,
                               resolve_with_links)

log = logging.getLogger(__name__)

MAIN_TABLE = 254
RTNH_F_ONLINK = 4
RTM_F_CLONED = 0x200
RT_SCOPE_NOWHERE = 255
RT_SCOPE_LINK = 253
NUD_PERMANENT = ndmsg.states["permanent"]
NTF_SELF = ndmsg.flags["self"]
AF_BRIDGE = 7

_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 5: "multicast", 6: "blackhole", 7: "unreachable",
          8: "prohibit", 9: "throw"}
_TYPE_NUMBERS = {v: k for k, v in _TYPES.items()}
_SCOPES = {0: "universe", 200: "site", 253: "link", 254: "host"}
_SCOPE_NUMBERS = {v: k for k, v in _SCOPES.items()}
_V6_LINK_LOCAL = ipaddress.ip_network("fe80::/64")
# Interface errors that mean "it went away or went down under us", not a failure.
_GONE = {errno.ENODEV, errno.ENETDOWN, errno.ENXIO}


# --------------------------------------------------------------------------------------
# Kernel state, as plain data.

@dataclass(frozen=True)
class VXLANInfo:
    vni: int
    port: int
    parent_index: int
    local: str
    learning: bool
    l2miss: bool = False
    gbp: bool = False
    flow_based: bool = False  # IFLA_VXLAN_COLLECT_METADATA ("external")


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    kind: str
    oper_up: bool
    admin_up: bool = True
    mtu: int = 0
    mac: str = ""
    vxlan: VXLANInfo | None = None


RouteKey = tuple  # (version, dst network text, metric)


@dataclass
class KernelState:
    """What the kernel holds, as far as the plan needs: every link, the main table's
    routes by key, permanent neighbours (dev, ip) -> MAC and FDB entries (dev, MAC) -> dst
    on every device, addresses and TX checksum offload of the tunnel devices."""

    links: dict[str, Link] = field(default_factory=dict)
    routes: dict[RouteKey, list[Route]] = field(default_factory=dict)
    neighbours: dict[tuple[str, str], str] = field(default_factory=dict)
    fdb: dict[tuple[str, str], str] = field(default_factory=dict)
    addresses: dict[str, frozenset[str]] = field(default_factory=dict)
    tx_checksum: dict[str, bool] = field(default_factory=dict)

    def add_route(self, route: Route) -> None:
        self.routes.setdefault(route_key(route), []).append(route)


@lru_cache(maxsize=1 << 16)
def route_key(route: Route) -> RouteKey:
    """The kernel's identity of a route in one table: destination and metric (TOS 0)."""
    net = ipaddress.ip_network(route.dst, strict=False)
    return (net.version, str(net), route.metric)


@lru_cache(maxsize=1 << 16)
def comparable(route: Route) -> Route:
    """A route as the kernel reports it back: IPv6 routes carry no scope; addresses in
    canonical text."""
    net = ipaddress.ip_network(route.dst, strict=False)
    return Route(dst=str(net), dev=route.dev,
                 gateway=str(ipaddress.ip_address(route.gateway)) if route.gateway else "",
                 type=route.type, proto=route.proto, scope="universe" if net.version == 6 else route.scope,
                 metric=route.metric, src=str(ipaddress.ip_address(route.src)) if route.src else "",
                 onlink=route.onlink, mtu=route.mtu)


def _canonical_cidr(text: str) -> str:
    return str(ipaddress.ip_interface(text))


# --------------------------------------------------------------------------------------
# Ownership.

@dataclass(frozen=True)
class Ownership:
    """Which kernel routes are Felix's (routetable/ownershippol/main_route_table_policy.go)."""

    workload_prefixes: tuple[str, ...] = ("cali",)
    device_route_protocol: int = RTPROT_BOOT
    remove_external_routes: bool = True

    @property
    def exclusive_protocols(self) -> frozenset[int]:
        """Protocols only Felix uses: 80, or DeviceRouteProtocol when it is not ``boot``."""
        if self.device_route_protocol == RTPROT_BOOT:
            return frozenset({FELIX_ROUTE_PROTOCOL})
        return frozenset({self.device_route_protocol})

    @property
    def all_protocols(self) -> frozenset[int]:
        return self.exclusive_protocols | {self.device_route_protocol}

    def is_workload(self, name: str | None) -> bool:
        return bool(name) and name.startswith(self.workload_prefixes)

    def route_is_ours(self, route: Route) -> bool:
        if route.proto in self.exclusive_protocols:
            return True
        if route.dev is None:
            return False
        net = ipaddress.ip_network(route.dst, strict=False)
        if net == _V6_LINK_LOCAL:
            return False  # the kernel's own IPv6 bootstrap route
        if self.is_workload(route.dev):
            return self.remove_external_routes or route.proto in self.all_protocols
        return route.dev == (VXLAN_DEVICE_V4 if net.version == 4 else VXLAN_DEVICE_V6)

    def removes_neighbour(self, dev: str, ip: str) -> bool:
        """Whether Felix deletes an unwanted permanent neighbour: only its VXLAN FDB
        module does, for the entries of its device's family (IPv4 on vxlan.calico, IPv6
        on vxlan-v6.calico). Its route table only ever sets the static ARP entries of
        workload interfaces (route_table.go has no neighbour delete): they go with
        their interface, and those of other programs stay."""
        return dev == (VXLAN_DEVICE_V6 if ":" in ip else VXLAN_DEVICE_V4)


# --------------------------------------------------------------------------------------
# Operations.

@dataclass(frozen=True)
class LinkDelete:
    name: str


@dataclass(frozen=True)
class VXLANCreate:
    device: VXLANDevice


@dataclass(frozen=True)
class IPIPCreate:
    device: IPIPDevice


@dataclass(frozen=True)
class LinkSetMTU:
    name: str
    mtu: int


@dataclass(frozen=True)
class LinkSetUp:
    name: str


@dataclass(frozen=True)
class AddressAdd:
    dev: str
    cidr: str
    scope_link: bool = False  # RT_SCOPE_LINK, as Felix adds workload peering addresses


@dataclass(frozen=True)
class AddressDelete:
    dev: str
    cidr: str


@dataclass(frozen=True)
class TxChecksumOff:
    dev: str


@dataclass(frozen=True)
class RouteReplace:
    route: Route


@dataclass(frozen=True)
class RouteDelete:
    route: Route


@dataclass(frozen=True)
class NeighbourSet:
    neighbour: Neighbour


@dataclass(frozen=True)
class NeighbourDelete:
    neighbour: Neighbour


@dataclass(frozen=True)
class FDBSet:
    entry: FDBEntry


@dataclass(frozen=True)
class FDBDelete:
    entry: FDBEntry


DEVICE_OPS = (LinkDelete, VXLANCreate, IPIPCreate, LinkSetMTU, LinkSetUp, AddressAdd, AddressDelete, TxChecksumOff)


# --------------------------------------------------------------------------------------
# Plans (pure).

def vxlan_incompatibility(want: VXLANDevice, have: Link, parent: Link | None) -> str:
    """Why an existing device cannot be kept, or '' when it can: Felix's vxlanLinksIncompat
    (vxlan_mgr.go), which compares the link type, flow-based mode, VNI, underlay
    interface, local address, l2miss, port, GBP and MAC (the port, local address and MAC
    only when both sides have one). Learning is not compared: Felix creates the device
    with learning off but keeps an existing one that learns."""
    if have.kind != "vxlan" or have.vxlan is None:
        return f"link type {have.kind or 'unknown'}"
    info = have.vxlan
    if info.flow_based:
        return "flow-based (external) mode"
    if info.vni != want.vni:
        return f"vni {info.vni} vs {want.vni}"
    if parent is not None and info.parent_index != parent.index:
        return f"parent interface index {info.parent_index} vs {parent.index}"
    if info.local and want.local_ip and ipaddress.ip_address(info.local) != ipaddress.ip_address(want.local_ip):
        return f"local address {info.local} vs {want.local_ip}"
    if info.l2miss:
        return "l2miss on"
    if info.port and info.port != want.port:
        return f"port {info.port} vs {want.port}"
    if info.gbp:
        return "gbp on"
    if have.mac and have.mac.lower() != want.mac.lower():
        return f"MAC {have.mac} vs {want.mac}"
    return ""


def _address_ops(dev: str, want: str, have: frozenset[str]) -> list:
    """Make ``want`` the tunnel device's only address of its family, as Felix's
    ensureAddressOnLink (route_mgr.go) does: every other address of the family goes, the
    IPv6 link-local one the kernel gives vxlan-v6.calico included."""
    want = _canonical_cidr(want)
    version = ipaddress.ip_interface(want).version
    ops: list = []
    for cidr in sorted(have):
        if ipaddress.ip_interface(cidr).version == version and cidr != want:
            ops.append(AddressDelete(dev, cidr))
    if want not in have:
        ops.append(AddressAdd(dev, want))
    return ops


def plan_workload_addresses(desired: Iterable[tuple[str, str]], kernel: KernelState, ownership: Ownership,
                            usable: set[str], families: Iterable[int] = (4, 6)) -> list:
    """Felix's link-address manager: a workload interface holds exactly the addresses
    wanted on it (the local-workload peering address, scope link) besides the IPv6
    link-local ones the kernel gives it; interfaces not up yet wait; addresses of a family
    the agent does not run are left alone. Only interfaces whose addresses were read
    (``kernel.addresses``) or that want one are looked at."""
    families = tuple(families)
    want: dict[str, set[str]] = {}
    for dev, cidr in desired:
        want.setdefault(dev, set()).add(_canonical_cidr(cidr))
    ops: list = []
    devices = {d for d in kernel.addresses if ownership.is_workload(d)} | set(want)
    for dev in sorted(devices):
        if dev not in usable:
            continue
        have, wanted = kernel.addresses.get(dev, frozenset()), want.get(dev, set())
        for cidr in sorted(have - wanted):
            iface = ipaddress.ip_interface(cidr)
            if iface.version in families and not (iface.version == 6 and iface.ip.is_link_local):
                ops.append(AddressDelete(dev, cidr))
        ops += [AddressAdd(dev, cidr, scope_link=True) for cidr in sorted(wanted - have)]
    return ops


def plan_devices(desired: DesiredRoutes, kernel: KernelState, *,
                 ipip_unavailable: bool = False) -> tuple[list, set[str], set[str]]:
    """Device operations, the devices that will be up afterwards, and the devices whose
    kernel routes, neighbours and FDB vanish with them (deleted or re-created)."""
    ops: list = []
    up: set[str] = set()
    vanishing: set[str] = set()
    wanted_vxlan = {d.name for d in desired.vxlan_devices}
    for name in desired.absent_devices:
        if name in kernel.links and name not in wanted_vxlan:
            ops.append(LinkDelete(name))
            vanishing.add(name)
    for dev in desired.vxlan_devices:
        parent = kernel.links.get(dev.parent)
        have = kernel.links.get(dev.name)
        if parent is None:
            continue  # no underlay yet: nothing on this device can work
        if have is not None and vxlan_incompatibility(dev, have, parent):
            ops.append(LinkDelete(dev.name))
            vanishing.add(dev.name)
            have = None
        if have is None:
            ops.append(VXLANCreate(dev))
            ops.append(AddressAdd(dev.name, _canonical_cidr(dev.address)))
            if not dev.tx_checksum_offload:
                ops.append(TxChecksumOff(dev.name))
            ops.append(LinkSetUp(dev.name))
        else:
            if have.mtu != dev.mtu:
                ops.append(LinkSetMTU(dev.name, dev.mtu))
            ops += _address_ops(dev.name, dev.address, kernel.addresses.get(dev.name, frozenset()))
            if not dev.tx_checksum_offload and kernel.tx_checksum.get(dev.name, True):
                ops.append(TxChecksumOff(dev.name))
            if not have.admin_up:
                ops.append(LinkSetUp(dev.name))
        up.add(dev.name)
    ipip = desired.ipip_device
    tunl = kernel.links.get(IPIP_DEVICE)
    if ipip is not None and (tunl is not None or not ipip_unavailable):
        if tunl is None:
            ops.append(IPIPCreate(ipip))
            ops.append(AddressAdd(ipip.name, _canonical_cidr(ipip.address)))
        else:
            if tunl.mtu != ipip.mtu:
                ops.append(LinkSetMTU(ipip.name, ipip.mtu))
            ops += _address_ops(ipip.name, ipip.address, kernel.addresses.get(ipip.name, frozenset()))
        if not ipip.tx_checksum_offload and kernel.tx_checksum.get(ipip.name, True):
            ops.append(TxChecksumOff(ipip.name))
        if tunl is None or not tunl.admin_up:
            ops.append(LinkSetUp(ipip.name))
        up.add(ipip.name)
    elif ipip is None and desired.clean_ipip_addresses and tunl is not None:
        ops += [AddressDelete(IPIP_DEVICE, c) for c in sorted(kernel.addresses.get(IPIP_DEVICE, ()))
                if ipaddress.ip_interface(c).version == 4]
    return ops, up, vanishing


def plan_routes(desired: Iterable[Route], kernel: KernelState, ownership: Ownership, usable: set[str],
                families: Iterable[int] = (4, 6), vanishing: set[str] = frozenset(),
                grace: frozenset[str] = frozenset()) -> list:
    """Deletes of our routes nobody wants, then replaces of missing or different ones.
    Routes through an interface not in ``usable`` (oper-up, or a tunnel this plan brings
    up) are left out, as Felix leaves them until the interface comes up. Routes through
    an interface in ``grace`` (in its cleanup grace period) are not deleted."""
    families = set(families)
    want: dict[RouteKey, Route] = {}
    for route in desired:
        if route.dev is not None and route.dev not in usable:
            continue
        key = route_key(route)
        if key[0] in families:
            want[key] = comparable(route)
    ops: list = []
    for key in sorted(kernel.routes, key=_key_order):
        if key[0] not in families:
            continue
        for route in kernel.routes[key]:
            if route.dev in vanishing or key in want or route.dev in grace or not ownership.route_is_ours(route):
                continue
            ops.append(RouteDelete(route))
    for key in sorted(want, key=_key_order):
        have = [r for r in kernel.routes.get(key, ()) if r.dev not in vanishing]
        if want[key] not in have:
            ops.append(RouteReplace(want[key]))
    return ops


ROUTE_CLEANUP_GRACE_PERIOD = 10.0  # seconds (Felix's routeCleanupGracePeriod)


def in_grace_period(first_seen: Mapping[tuple[str, int], float], expired: Iterable[tuple[str, int]],
                    ownership: Ownership, now: float, period: float = ROUTE_CLEANUP_GRACE_PERIOD) -> frozenset[str]:
    """Workload interfaces whose unexpected routes are left alone for now (Felix's route
    cleanup grace period): seen less than ``period`` ago, keyed by name and ifindex (a
    re-created veth starts again), unless ``expired`` (it has held a route we wanted).
    The CNI plugin routes a new pod before its endpoint reaches the agent; deleting that
    route would cut the pod off until it does."""
    expired = set(expired)
    return frozenset(name for (name, index), seen in first_seen.items()
                     if ownership.is_workload(name) and now - seen < period and (name, index) not in expired)


@lru_cache(maxsize=1 << 16)
def _key_order(key: RouteKey) -> tuple:
    net = ipaddress.ip_network(key[1])
    return (key[0], int(net.network_address), net.prefixlen, key[2])


def plan_neighbours(desired: Iterable[Neighbour], kernel: KernelState, ownership: Ownership, usable: set[str],
                    vanishing: set[str] = frozenset()) -> list:
    """Permanent ARP/NDP entries: the static ARP entries of workload interfaces are set
    (never deleted, as Felix's route table never deletes them); those on the VXLAN
    devices are set and, when unwanted, deleted (``Ownership.removes_neighbour``)."""
    want = {(n.dev, str(ipaddress.ip_address(n.ip))): n.mac.lower() for n in desired if n.dev in usable}
    ops: list = []
    for (dev, ip), mac in sorted(kernel.neighbours.items()):
        if dev in vanishing or (dev, ip) in want or not ownership.removes_neighbour(dev, ip):
            continue
        ops.append(NeighbourDelete(Neighbour(ip, dev, mac)))
    for (dev, ip), mac in sorted(want.items()):
        if kernel.neighbours.get((dev, ip)) != mac or dev in vanishing:
            ops.append(NeighbourSet(Neighbour(ip, dev, mac)))
    return ops


def plan_fdb(desired: Iterable[FDBEntry], kernel: KernelState, usable: set[str],
             vanishing: set[str] = frozenset()) -> list:
    """Permanent FDB entries (MAC -> remote VTEP) on the VXLAN devices."""
    vxlan_devs = (VXLAN_DEVICE_V4, VXLAN_DEVICE_V6)
    want = {(e.dev, e.mac.lower()): str(ipaddress.ip_address(e.dst)) for e in desired if e.dev in usable}
    ops: list = []
    for (dev, mac), dst in sorted(kernel.fdb.items()):
        if dev in vanishing or dev not in vxlan_devs or (dev, mac) in want:
            continue
        ops.append(FDBDelete(FDBEntry(mac, dev, dst)))
    for (dev, mac), dst in sorted(want.items()):
        if kernel.fdb.get((dev, mac)) != dst or dev in vanishing:
            ops.append(FDBSet(FDBEntry(mac, dev, dst)))
    return ops


def plan(desired: DesiredRoutes, kernel: KernelState, ownership: Ownership, *, families: Iterable[int] = (4, 6),
         ipip_unavailable: bool = False, grace: frozenset[str] = frozenset(), route_sync: bool = True) -> list:
    """Every operation, in the order they can run: devices (deleted, created, configured,
    up), then route deletes and replaces, then neighbours and FDB entries. ``grace``:
    interfaces whose routes are not cleaned up yet (``in_grace_period``). Without
    ``route_sync`` (Felix's RouteSyncDisabled: its route tables, with their static ARP
    entries, and its link-address managers are dummies) routes, neighbours and workload
    addresses are neither written nor removed."""
    return _plan(desired, kernel, ownership, families, ipip_unavailable, grace, route_sync)[0]


def _plan(desired: DesiredRoutes, kernel: KernelState, ownership: Ownership, families: Iterable[int],
          ipip_unavailable: bool, grace: frozenset[str], route_sync: bool = True
          ) -> tuple[list, set[str], tuple[Route, ...]]:
    """``plan``, the interfaces routes may use (oper-up, or tunnels the plan brings up),
    and the desired routes with their conflicts settled among those interfaces."""
    device_ops, tunnels_up, vanishing = plan_devices(desired, kernel, ipip_unavailable=ipip_unavailable)
    usable = {name for name, link in kernel.links.items() if link.oper_up and name not in vanishing} | tunnels_up
    routes = resolve_with_links(desired, {name: kernel.links[name].index if name in kernel.links else 0
                                          for name in usable})
    ops = device_ops
    if route_sync:
        ops = (ops
               + plan_workload_addresses(desired.workload_addresses, kernel, ownership, usable, families)
               + plan_routes(routes, kernel, ownership, usable, families, vanishing, grace)
               + plan_neighbours(desired.neighbours, kernel, ownership, usable, vanishing))
    ops += plan_fdb(desired.fdb, kernel, usable, vanishing)
    return ops, usable, routes


# --------------------------------------------------------------------------------------
# Conntrack cleanup (pure): whose flows go when a route goes away or moves.
#
# Felix's ConntrackCleanupManager (felix/routetable/conntrack_owner_tracker.go) and its
# calls from the route table (route_table.go applyUpdates, doFullResync). Only routes to
# a single address (/32, /128) count. Each address has an owner: the index of the
# interface its route goes through (0 for none) and whether that route leads off the
# host (Felix's remote route classes: VXLAN, IPIP, no-encap, WireGuard). ``previous``
# holds the owners the last apply wanted, ``desired`` those this apply wants. Then:
#
# * a route of ours that an apply deletes, or that left the kernel since we last looked
#   (its interface went away), has its address cleaned up, unless the address is still
#   wanted on that same interface, or it is wanted where the last apply already wanted it
#   (so this was a stray route);
# * a route about to be replaced by one through another interface (a pod's address taken
#   by a new pod) is first deleted and its address cleaned up, unless the last apply
#   already wanted it where it is now wanted, or the route leads off the host both
#   before and after (a remote workload stays remote);
# * the route for an address is not programmed until that address's cleanup is over.

@dataclass(frozen=True)
class AddressOwner:
    """Where a wanted single-address route sends its address: the interface's index (0
    for no interface, -1 for a tunnel device this apply creates) and whether the route
    leads off this host."""

    ifindex: int
    remote: bool = False


# What Felix's tracker sees for an address it has no record of (Go's zero value).
NO_OWNER = AddressOwner(0, False)


@lru_cache(maxsize=1 << 16)
def single_address(route: Route) -> str | None:
    """The address a /32 or /128 route goes to (canonical text); None for wider routes."""
    version, net, _ = route_key(route)
    addr, _, prefixlen = net.partition("/")
    return addr if int(prefixlen) == (32 if version == 4 else 128) else None


def route_is_remote(route: Route, ownership: Ownership) -> bool:
    """Whether a route we program leads off this host: every unicast route except those
    to local workloads (blackholes, Felix's IPAM block drops, do not)."""
    return route.type == "unicast" and not ownership.is_workload(route.dev)


class AddressOwners(Mapping[str, AddressOwner]):
    """The owner of each single address the desired routes lead to, counting the routes
    an apply programs (its IP families, through interfaces it may use). Built at the
    first lookup: most applies delete and move nothing, and never look."""

    def __init__(self, routes: Iterable[Route], links: Mapping[str, Link], usable: Iterable[str],
                 ownership: Ownership, families: Iterable[int] = (4, 6)):
        self._args = (routes, links, usable, ownership, tuple(families))
        self._owners: dict[str, AddressOwner] | None = None

    def _built(self) -> dict[str, AddressOwner]:
        if self._owners is None:
            routes, links, usable, ownership, families = self._args
            usable = set(usable)
            owners: dict[str, AddressOwner] = {}
            for route in routes:
                if route.dev is not None and route.dev not in usable:
                    continue
                addr = single_address(route)
                if addr is None or route_key(route)[0] not in families:
                    continue
                link = links.get(route.dev) if route.dev is not None else None
                index = 0 if route.dev is None else (link.index if link is not None else -1)
                owners.setdefault(addr, AddressOwner(index, route_is_remote(route, ownership)))
            self._owners, self._args = owners, None
        return self._owners

    def __getitem__(self, addr: str) -> AddressOwner:
        return self._built()[addr]

    def __iter__(self):
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())


def needs_early_cleanup(addr: str, old_ifindex: int, previous: Mapping[str, AddressOwner],
                        desired: Mapping[str, AddressOwner]) -> bool:
    """Whether the kernel's route for ``addr`` through ``old_ifindex``, about to be
    replaced, must first be deleted and its flows removed (Felix's CIDRNeedsEarlyCleanup)."""
    want, had = desired.get(addr), previous.get(addr)
    if want is not None and had is not None and want.ifindex == had.ifindex:
        return False  # already wanted there: the old route is a stray
    if want is not None and want.ifindex == old_ifindex:
        return False  # not moving (a metric or attribute change)
    if (want or NO_OWNER).remote and (had or NO_OWNER).remote:
        return False  # remote before and after: it may be the same remote workload
    return True


def cleanup_after_delete(addr: str, ifindex: int, previous: Mapping[str, AddressOwner],
                         desired: Mapping[str, AddressOwner]) -> bool:
    """Whether deleting (or losing) our route for ``addr`` through ``ifindex`` removes
    the address's flows (Felix's OnDataplaneRouteDeleted)."""
    want = desired.get(addr)
    if want is None:
        return True
    if want.ifindex == ifindex:
        return False  # staying on this interface
    # Already wanted there by the last apply: the deleted route was a stray.
    return (previous.get(addr) or NO_OWNER).ifindex != want.ifindex


def _ifindex(route: Route, links: Mapping[str, Link]) -> int:
    if route.dev is None:
        return 0
    link = links.get(route.dev)
    return link.index if link is not None else -1


def plan_moves(ops: Iterable, kernel: KernelState, ownership: Ownership, previous: Mapping[str, AddressOwner],
               desired: Mapping[str, AddressOwner]) -> list[RouteDelete]:
    """Deletes to run before the replaces in ``ops``: the kernel's route of ours for the
    same key when its address moves to another interface and needs its flows removed
    (``needs_early_cleanup``)."""
    deletes: list[RouteDelete] = []
    for op in ops:
        if not isinstance(op, RouteReplace):
            continue
        addr = single_address(op.route)
        if addr is None:
            continue
        for old in kernel.routes.get(route_key(op.route), ()):
            if old.dev is not None and old.dev not in kernel.links:
                continue
            if ownership.route_is_ours(old) and needs_early_cleanup(addr, _ifindex(old, kernel.links), previous,
                                                                    desired):
                deletes.append(RouteDelete(old))
    return deletes


def vanished_routes(before: KernelState, after: KernelState, ownership: Ownership) -> list[tuple[Route, int]]:
    """Our single-address routes the last view held that a fresh read no longer finds,
    each with the index its interface had then."""
    gone: list[tuple[Route, int]] = []
    for key, routes in before.routes.items():
        if key in after.routes:
            continue
        for route in routes:
            if single_address(route) is not None and ownership.route_is_ours(route):
                gone.append((route, _ifindex(route, before.links)))
    return gone


def conntrack_cleanups(deleted: Iterable[tuple[Route, int]], vanished: Iterable[tuple[Route, int]],
                       previous: Mapping[str, AddressOwner], desired: Mapping[str, AddressOwner]) -> tuple[str, ...]:
    """The addresses whose conntrack flows are to be removed, sorted: of our routes this
    apply deleted (``deleted``: route and its interface's index; wider routes are
    ignored) and of those that left the kernel (``vanished``, see ``vanished_routes``).
    A vanished route whose address is wanted again counts as a move."""
    out: set[str] = set()
    for route, ifindex in deleted:
        addr = single_address(route)
        if addr is not None and cleanup_after_delete(addr, ifindex, previous, desired):
            out.add(addr)
    for route, ifindex in vanished:
        addr = single_address(route)
        if addr is None:
            continue
        if addr in desired and not needs_early_cleanup(addr, ifindex, previous, desired):
            continue
        if cleanup_after_delete(addr, ifindex, previous, desired):
            out.add(addr)
    return tuple(sorted(out, key=lambda a: (":" in a, ipaddress.ip_address(a))))


# --------------------------------------------------------------------------------------
# Sysctls (pure).

def sysctl_interface(path: str) -> str | None:
    """The interface a sysctl belongs to (``net/ipv4/conf/<if>/...``), None when global."""
    parts = path.split("/")
    if len(parts) >= 5 and parts[0] == "net" and parts[1] in ("ipv4", "ipv6") and parts[2] in ("conf", "neigh"):
        return None if parts[3] in ("all", "default") else parts[3]
    return None


Applied = Mapping[str | None, tuple[int, frozenset[Sysctl]]]


def plan_sysctls(desired: Iterable[Sysctl], links: Mapping[str, Link], applied: Applied) -> list[Sysctl]:
    """The writes still to do: an interface's sysctls once it is oper-up and again when it
    came back with a new index (a re-created veth), changed values, and global ones once.
    ``applied`` maps an interface (None: global) to (ifindex, sysctls written)."""
    by_iface: dict[str | None, list[Sysctl]] = {}
    for sysctl in desired:
        by_iface.setdefault(sysctl_interface(sysctl.path), []).append(sysctl)
    out: list[Sysctl] = []
    for iface, sysctls in by_iface.items():
        if iface is None:
            done = applied.get(None, (0, frozenset()))[1]
            out += [s for s in sysctls if s not in done]
            continue
        link = links.get(iface)
        if link is None or not link.oper_up:
            continue
        index, done = applied.get(iface, (0, frozenset()))
        out += [s for s in sysctls if index != link.index or s not in done]
    return out


# --------------------------------------------------------------------------------------
# Reading the kernel.

def _mac(text) -> str:
    return (text or "").lower()


def link_from_msg(msg) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    vxlan = None
    if kind == "vxlan":
        data = info.get_attr("IFLA_INFO_DATA")
        if data is not None:
            vxlan = VXLANInfo(vni=data.get_attr("IFLA_VXLAN_ID") or 0, port=data.get_attr("IFLA_VXLAN_PORT") or 0,
                              parent_index=data.get_attr("IFLA_VXLAN_LINK") or 0,
                              local=data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6") or "",
                              learning=bool(data.get_attr("IFLA_VXLAN_LEARNING")),
                              l2miss=bool(data.get_attr("IFLA_VXLAN_L2MISS")),
                              gbp=bool(data.get_attr("IFLA_VXLAN_GBP")),
                              flow_based=bool(data.get_attr("IFLA_VXLAN_COLLECT_METADATA")))
    return Link(name=msg.get_attr("IFLA_IFNAME"), index=msg["index"], kind=kind or "", oper_up=link_oper_up(msg),
                admin_up=bool(msg["flags"] & 1), mtu=msg.get_attr("IFLA_MTU") or 0,
                mac=_mac(msg.get_attr("IFLA_ADDRESS")), vxlan=vxlan)


def route_from_msg(msg, names: Mapping[int, str]) -> Route | None:
    """A main-table route as plain data; None for what Felix never manages (cached
    clones, TOS routes, routes through an interface not seen in the link dump)."""
    if msg["flags"] & RTM_F_CLONED or msg["tos"]:
        return None
    table = msg.get_attr("RTA_TABLE") or msg["table"]
    if table != MAIN_TABLE:
        return None
    version = 4 if msg["family"] == AF_INET else 6
    dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if version == 4 else "::")
    rtype = _TYPES.get(msg["type"], str(msg["type"]))
    oif = msg.get_attr("RTA_OIF")
    if msg.get_attr("RTA_MULTIPATH") is not None or (rtype != "unicast" and (oif or 0) <= 1):
        dev = None
    else:
        dev = names.get(oif)
        if dev is None:
            return None
    metrics = msg.get_attr("RTA_METRICS")
    mtu = (metrics.get_attr("RTAX_MTU") or 0) if metrics is not None else 0
    return Route(dst=str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)), dev=dev,
                 gateway=msg.get_attr("RTA_GATEWAY") or "", type=rtype, proto=msg["proto"],
                 scope="universe" if version == 6 else _SCOPES.get(msg["scope"], str(msg["scope"])),
                 metric=msg.get_attr("RTA_PRIORITY") or 0, src=msg.get_attr("RTA_PREFSRC") or "",
                 onlink=bool(msg["flags"] & RTNH_F_ONLINK), mtu=mtu)


def read_links(ipr: IPRoute) -> dict[str, Link]:
    return {link.name: link for link in (link_from_msg(m) for m in ipr.get_links())}


def links_from_interfaces(ipr: IPRoute, interfaces: Mapping[str, Interface], detailed: Iterable[str]) -> dict[str, Link]:
    """Links from the interface monitor's picture, with only the ``detailed`` ones (the
    tunnel devices, whose kind, MTU and VXLAN settings matter) asked from the kernel:
    a full link dump is the slowest part of a read."""
    links = {name: Link(name, i.index, "", i.oper_up, mtu=i.mtu) for name, i in interfaces.items()}
    for name in detailed:
        links.pop(name, None)  # asked by name: the picture may predate our own changes
        try:
            msgs = ipr.link("get", ifname=name)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise
            continue
        for msg in msgs:
            links[name] = link_from_msg(msg)
    return links


def read_kernel(ipr: IPRoute, families: Iterable[int] = (4, 6), tunnels: Iterable[str] = (),
                links: dict[str, Link] | None = None, address_devices: Iterable[str] = ()) -> KernelState:
    """One dump of everything the plan looks at; ``tunnels`` are the devices whose
    addresses and TX checksum offload matter, ``address_devices`` other devices whose
    addresses matter (workload interfaces that hold or should hold one)."""
    families = tuple(families)
    state = KernelState(links=links if links is not None else read_links(ipr))
    names = {link.index: name for name, link in state.links.items()}
    for version in families:
        for msg in ipr.get_routes(family=AF_INET if version == 4 else AF_INET6, table=MAIN_TABLE):
            route = route_from_msg(msg, names)
            if route is not None:
                state.add_route(route)
    for msg in ipr.get_neighbours():
        dev = names.get(msg["ifindex"])
        mac = msg.get_attr("NDA_LLADDR")
        family = {AF_INET: 4, AF_INET6: 6}.get(msg["family"])
        if dev is None or not mac or not msg["state"] & NUD_PERMANENT or family not in families:
            continue
        state.neighbours[(dev, str(ipaddress.ip_address(msg.get_attr("NDA_DST"))))] = _mac(mac)
    vxlan_indexes = {link.index: name for name, link in state.links.items() if link.kind == "vxlan"}
    if vxlan_indexes:
        for msg in ipr.get_neighbours(family=AF_BRIDGE):
            dev = vxlan_indexes.get(msg["ifindex"])
            mac = msg.get_attr("NDA_LLADDR")
            if dev is None or not mac or not msg["state"] & NUD_PERMANENT:
                continue
            state.fdb[(dev, _mac(mac))] = msg.get_attr("NDA_DST") or ""
    tunnels = [t for t in tunnels if t in state.links]
    with_addresses = set(tunnels) | {d for d in address_devices if d in state.links}
    if with_addresses:
        wanted = {state.links[t].index: t for t in with_addresses}
        addrs: dict[str, set[str]] = {t: set() for t in with_addresses}
        for msg in ipr.get_addr():
            dev = wanted.get(msg["index"])
            if dev is not None:
                addrs[dev].add(_canonical_cidr(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"))
        state.addresses = {t: frozenset(a) for t, a in addrs.items()}
        state.tx_checksum = {t: tx_checksumming(t) for t in tunnels}
    return state


def tx_checksumming(dev: str) -> bool:
    """Whether TX checksum offload is on (ETHTOOL_GTXCSUM); True when unknown."""
    from pyroute2.ethtool.ioctl import IoctlEthtool

    tool = IoctlEthtool(dev)
    try:
        return bool(tool.get_offload_flags().get("tx-checksumming", True))
    except Exception:  # noqa: BLE001 - a device without ethtool support keeps its default
        return True
    finally:
        tool.close()


# --------------------------------------------------------------------------------------
# The applier.

@dataclass
class RouteStats:
    """Counters for metrics and tests: netlink writes done, failures, full reads; and, until
    the metrics take them, the seconds of each full read (felix_route_table_resync_seconds)
    and of each wait for an address's conntrack cleanup before its route
    (felix_route_table_conntrack_wait_seconds), and the routes managed per family."""

    writes: int = 0
    errors: int = 0
    reads: int = 0
    sysctl_writes: int = 0
    resync_seconds: list[float] = field(default_factory=list)
    conntrack_waits: list[float] = field(default_factory=list)
    ifaces: int = 0  # workload and tunnel interfaces present at the last apply
    # (routes, usable interfaces, families) of the last apply, counted only when asked
    # (``managed``): the count is for the metrics, not worth a pass over every route per apply.
    last_routes: tuple = ((), frozenset(), ())

    @property
    def managed(self) -> dict[int, int]:
        """Routes the last apply managed, per family (Felix's felix_route_table_num_routes)."""
        routes, usable, families = self.last_routes
        managed = dict.fromkeys(families, 0)
        for route in routes:
            family = route_key(route)[0]
            if family in managed and (route.dev is None or route.dev in usable):
                managed[family] += 1
        return managed


_TUNNEL_DEVICES = frozenset({IPIP_DEVICE, VXLAN_DEVICE_V4, VXLAN_DEVICE_V6})
_MAX_PENDING_OBSERVATIONS = 1000  # observations kept when no metrics take them


def _observe(into: list[float], seconds: float) -> None:
    if len(into) < _MAX_PENDING_OBSERVATIONS:
        into.append(seconds)


@dataclass(frozen=True)
class ApplyResult:
    changes: int
    failures: tuple[str, ...] = ()

    @property
    def in_sync(self) -> bool:
        return not self.failures


class RouteDataplane:
    """Applies ``DesiredRoutes`` to the current network namespace (see the module doc).

    ``apply(desired, interfaces)`` takes the interface monitor's latest picture when the
    agent has one (then an unchanged picture costs no netlink request at all); without
    it, each apply dumps the links to notice interface changes.

    ``conntrack_cleanup=False`` turns the conntrack cleanup off (Felix's
    WithConntrackCleanup); ``conntrack`` is the cleaner to use (tests pass one with a
    fake removal). ``self.conntrack`` is None when the cleanup is off.
    """

    def __init__(self, *, workload_prefixes: Iterable[str] = ("cali",), device_route_protocol: int = RTPROT_BOOT,
                 remove_external_routes: bool = True, families: Iterable[int] = (4, 6),
                 refresh_interval: float = 90.0, proc_sys: str = "/proc/sys",
                 clock: Callable[[], float] = time.monotonic,
                 route_cleanup_grace_period: float = ROUTE_CLEANUP_GRACE_PERIOD,
                 conntrack_cleanup: bool = True, conntrack: ConntrackCleaner | None = None,
                 route_sync: bool = True):
        self.ownership = Ownership(tuple(workload_prefixes), device_route_protocol, remove_external_routes)
        # False: Felix's RouteSyncDisabled (see ``plan``); no routes, so no conntrack cleanup.
        self.route_sync = route_sync
        conntrack_cleanup = conntrack_cleanup and route_sync
        self.families = tuple(families)
        self.refresh_interval = refresh_interval
        self.proc_sys = proc_sys
        self.stats = RouteStats()
        self._clock = clock
        self._kernel: KernelState | None = None
        self._read_at = 0.0
        self._tunnels: tuple[str, ...] = ()
        self._ipip_unavailable = False
        self._ipip_warned = False
        # Felix strips tunl0's addresses once, at start, when IPIP is implicitly off
        # (cleanUpIPIPAddrs); tunl0 is shared, so an address added later stays. Felix
        # restarts when the encapsulation changes: here, each time the clean-up becomes
        # wanted it is done once (retried until its deletes succeed).
        self._ipip_clean_wanted = False
        self._ipip_clean_pending = False
        self._applied: dict[str | None, tuple[int, frozenset[Sysctl]]] = {}
        # Interfaces whose sysctls could not all be written at the last apply (Felix's
        # "reconfigure" set: their endpoints are reported down).
        self.unconfigured: frozenset[str] = frozenset()
        # Workload interfaces that have wanted an address (their addresses are read).
        self._address_devices: set[str] = set()
        self._swept_addresses = False
        self._sysctl_warned: set[str] = set()
        self.route_cleanup_grace_period = route_cleanup_grace_period
        self._first_seen: dict[tuple[str, int], float] = {}
        self._grace_expired: set[tuple[str, int]] = set()
        self._grace_ends: float | None = None
        # Conntrack cleanup (Felix's route table has it on): the cleaner, the owners of the
        # addresses the last apply wanted, and the kernel view it ended with.
        self.conntrack: ConntrackCleaner | None = (conntrack or ConntrackCleaner()) if conntrack_cleanup else None
        self._owners: Mapping[str, AddressOwner] = {}
        self._last_view: KernelState | None = None

    @classmethod
    def from_felix(cls, config, **kwargs) -> "RouteDataplane":
        """Built from a ``node.felix.config.FelixConfig``: InterfacePrefix,
        DeviceRouteProtocol, RemoveExternalRoutes, Ipv6Support, RouteRefreshInterval,
        RouteSyncDisabled."""
        return cls(workload_prefixes=tuple(config.InterfacePrefix),
                   device_route_protocol=config.DeviceRouteProtocol & 0xFF,  # (one byte, as netlink writes it)
                   remove_external_routes=config.RemoveExternalRoutes,
                   families=(4, 6) if config.Ipv6Support else (4,),
                   refresh_interval=config.RouteRefreshInterval, route_sync=not config.RouteSyncDisabled, **kwargs)

    def refresh(self) -> None:
        """Read the kernel again at the next apply (and retry a tunl0 that failed)."""
        self._kernel = None
        self._ipip_unavailable = False

    # -- reading -----------------------------------------------------------------------------

    def _view(self, ipr: IPRoute, desired: DesiredRoutes, interfaces: Mapping[str, Interface] | None) -> KernelState:
        tunnels = tuple(sorted({d.name for d in desired.vxlan_devices} | {IPIP_DEVICE}))
        due = self.refresh_interval > 0 and self._clock() - self._read_at >= self.refresh_interval
        links = None
        if self._kernel is not None and not due and tunnels == self._tunnels:
            if interfaces is not None:
                if _same_interfaces(interfaces, self._kernel.links):
                    return self._kernel
            else:
                links = read_links(ipr)
                if _link_states(links) == _link_states(self._kernel.links):
                    self._kernel.links = links
                    return self._kernel
        if due:
            self._ipip_unavailable = False
        if links is None and interfaces is not None:
            links = links_from_interfaces(ipr, interfaces, tunnels)
        # Workload interfaces whose addresses matter: those that should have one or had
        # one, and at the first read (Felix's start-of-day resync) every one with an
        # address besides IPv6 link-local, known from the interface monitor's picture when
        # there is one (otherwise every workload interface is read).
        self._address_devices |= {dev for dev, _ in desired.workload_addresses}
        address_devices = set(self._address_devices)
        if not self._swept_addresses:
            if interfaces is not None:
                address_devices |= {name for name, i in interfaces.items()
                                    if self.ownership.is_workload(name) and _has_routable_address(i.addresses)}
            else:
                links = links if links is not None else read_links(ipr)
                address_devices |= {name for name in links if self.ownership.is_workload(name)}
            self._swept_addresses = True
        started = time.perf_counter()
        self._kernel = read_kernel(ipr, self.families, tunnels, links, address_devices)
        _observe(self.stats.resync_seconds, time.perf_counter() - started)
        self._tunnels = tunnels
        self._read_at = self._clock()
        self.stats.reads += 1
        return self._kernel

    # -- applying ----------------------------------------------------------------------------

    def apply(self, desired: DesiredRoutes, interfaces: Mapping[str, Interface] | None = None) -> ApplyResult:
        failures: list[str] = []
        changes = 0
        if desired.clean_ipip_addresses and not self._ipip_clean_wanted:
            self._ipip_clean_pending = True
        self._ipip_clean_wanted = desired.clean_ipip_addresses
        if desired.clean_ipip_addresses and not self._ipip_clean_pending:
            desired = replace(desired, clean_ipip_addresses=False)
        ipip_clean_failed = False
        with IPRoute() as ipr:
            before = self._last_view
            kernel = self._view(ipr, desired, interfaces)
            grace = self._grace(kernel, desired)
            ops, usable, routes = _plan(desired, kernel, self.ownership, self.families, self._ipip_unavailable,
                                        grace, self.route_sync)
            stale = False
            indexes = {name: link.index for name, link in kernel.links.items()}
            self.stats.last_routes = (routes, usable, self.families if self.route_sync else ())
            self.stats.ifaces = sum(1 for name in kernel.links
                                    if self.ownership.is_workload(name) or name in _TUNNEL_DEVICES)

            def run(op) -> bool:
                nonlocal stale, changes, ipip_clean_failed
                try:
                    done = self._execute(ipr, op, indexes)
                except NetlinkError as exc:
                    stale = True
                    if isinstance(op, AddressDelete) and op.dev == IPIP_DEVICE:
                        ipip_clean_failed = True
                    if isinstance(op, IPIPCreate):
                        self._ipip_failed(exc)
                    elif exc.code in _GONE:
                        log.debug("%s: interface gone or down (%s)", op, exc)
                    else:
                        failures.append(f"{op}: {exc}")
                    return False
                except OSError as exc:
                    stale = True
                    ipip_clean_failed = ipip_clean_failed or (isinstance(op, AddressDelete) and op.dev == IPIP_DEVICE)
                    failures.append(f"{op}: {exc}")
                    return False
                if not done:
                    stale = True
                    return False
                changes += 1
                self.stats.writes += 1
                if isinstance(op, DEVICE_OPS):
                    stale = True
                else:
                    _record(kernel, op)
                return True

            cleaner = self.conntrack
            if cleaner is None:
                for op in ops:
                    run(op)
            else:
                # Devices and deletes; then the moves' deletes; then the conntrack cleanups
                # start, and each replace waits for its own address's cleanup.
                split = next((i for i, op in enumerate(ops) if not isinstance(op, DEVICE_OPS + (RouteDelete,))),
                             len(ops))
                wanted = AddressOwners(routes, kernel.links, usable, self.ownership, self.families)
                vanished = (vanished_routes(before, kernel, self.ownership)
                            if before is not None and before is not kernel else ())
                deleted = []
                for op in ops[:split] + plan_moves(ops[split:], kernel, self.ownership, self._owners, wanted):
                    if run(op) and isinstance(op, RouteDelete):
                        deleted.append((op.route, _ifindex(op.route, kernel.links)))
                cleaner.forget_finished()
                cleaner.start(conntrack_cleanups(deleted, vanished, self._owners, wanted))
                self._owners = wanted
                for op in ops[split:]:
                    if isinstance(op, RouteReplace):
                        addr = single_address(op.route)
                        if addr is not None:
                            _observe(self.stats.conntrack_waits, cleaner.wait(addr))
                    run(op)
            self._last_view = kernel
            if stale:
                self._kernel = None
            links = kernel.links
            if any(isinstance(op, (VXLANCreate, IPIPCreate, LinkSetUp, LinkDelete)) for op in ops):
                links = read_links(ipr)
        for failure in failures:
            log.warning("Route dataplane: %s", failure)
        if desired.clean_ipip_addresses and not ipip_clean_failed:
            self._ipip_clean_pending = False
        failures += self._apply_sysctls(desired.sysctls, links)
        self.stats.errors += len(failures)
        return ApplyResult(changes, tuple(failures))

    def _grace(self, kernel: KernelState, desired: DesiredRoutes) -> frozenset[str]:
        """Note when each interface was first seen and which have held a route we want
        (their grace is over for good); return those still in their grace period."""
        now, period = self._clock(), self.route_cleanup_grace_period
        seen = {(name, link.index) for name, link in kernel.links.items()}
        self._first_seen = {key: self._first_seen.get(key, now) for key in seen}
        wanted = {route.dev for route in desired.routes if route.dev is not None}
        wanted.update(route.dev for _, route in desired.contested if route.dev is not None)
        self._grace_expired = {key for key in seen if key in self._grace_expired or key[0] in wanted}
        grace = in_grace_period(self._first_seen, self._grace_expired, self.ownership, now, period)
        ends = [at + period for key, at in self._first_seen.items() if key[0] in grace]
        self._grace_ends = min(ends) if ends else None
        return grace

    def recheck_after(self) -> float | None:
        """Seconds until an interface's grace period ends (its stale routes can then go),
        None when none is running: the caller applies again then."""
        if self._grace_ends is None:
            return None
        return max(0.0, self._grace_ends - self._clock())

    def _ipip_failed(self, exc: NetlinkError) -> None:
        self._ipip_unavailable = True
        if not self._ipip_warned:
            self._ipip_warned = True
            log.warning("Cannot create the IPIP device %s: %s. The kernel has no usable ipip support; "
                        "carrying on without it (IPIP traffic will not flow on this node)", IPIP_DEVICE,
                        exc.args[1] if len(exc.args) > 1 else exc)
        else:
            log.debug("Creating %s still fails: %s", IPIP_DEVICE, exc)

    def _execute(self, ipr: IPRoute, op, indexes: dict[str, int]) -> bool:
        """Run one operation; False when the interface it needs is not there (skipped)."""
        if isinstance(op, VXLANCreate):
            dev = op.device
            parent = indexes.get(dev.parent)
            if parent is None:
                return False
            local_key = "vxlan_local6" if ":" in dev.local_ip else "vxlan_local"
            if _create_link(ipr, dev.name, kind="vxlan", vxlan_id=dev.vni, vxlan_port=dev.port, vxlan_link=parent,
                            vxlan_learning=int(dev.learning), address=dev.mac, mtu=dev.mtu,
                            **{local_key: dev.local_ip}):
                log.info("Created VXLAN device %s (VNI %d, port %d, parent %s)", dev.name, dev.vni, dev.port,
                         dev.parent)
            indexes[dev.name] = ipr.link_lookup(ifname=dev.name)[0]
            return True
        if isinstance(op, IPIPCreate):
            # Loading the ipip module for this request makes the kernel create its fallback
            # tunl0 first, so the request itself can fail with EEXIST: the device is there.
            if _create_link(ipr, op.device.name, kind="ipip", mtu=op.device.mtu):
                log.info("Created IPIP device %s", op.device.name)
            indexes[op.device.name] = ipr.link_lookup(ifname=op.device.name)[0]
            return True
        if isinstance(op, LinkDelete):
            index = indexes.pop(op.name, None)
            if index is None:
                return False
            ipr.link("del", index=index)
            log.info("Deleted device %s", op.name)
            return True
        if isinstance(op, TxChecksumOff):
            from pyroute2.ethtool.ioctl import IoctlEthtool

            tool = IoctlEthtool(op.dev)
            try:
                tool.set_offload_flag("tx-checksumming", 0)
            finally:
                tool.close()
            return True
        name = _op_device(op)
        index = indexes.get(name) if name is not None else 0
        if index is None:
            return False
        if isinstance(op, LinkSetMTU):
            ipr.link("set", index=index, mtu=op.mtu)
        elif isinstance(op, LinkSetUp):
            ipr.link("set", index=index, state="up")
        elif isinstance(op, (AddressAdd, AddressDelete)):
            iface = ipaddress.ip_interface(op.cidr)
            extra = {"scope": RT_SCOPE_LINK} if isinstance(op, AddressAdd) and op.scope_link else {}
            try:
                ipr.addr("add" if isinstance(op, AddressAdd) else "del", index=index, address=str(iface.ip),
                         prefixlen=iface.network.prefixlen, **extra)
            except NetlinkError as exc:
                # Already there (our picture was older than the kernel) / already gone.
                if exc.code not in ((errno.EEXIST,) if isinstance(op, AddressAdd) else (errno.EADDRNOTAVAIL,)):
                    raise
        elif isinstance(op, RouteReplace):
            ipr.route("replace", **_route_args(op.route, index))
        elif isinstance(op, RouteDelete):
            try:
                ipr.route("del", **_route_args(op.route, index, delete=True))
            except NetlinkError as exc:
                if exc.code != errno.ESRCH:
                    raise
        elif isinstance(op, NeighbourSet):
            n = op.neighbour
            ipr.neigh("replace", dst=n.ip, lladdr=n.mac, ifindex=index, state=NUD_PERMANENT,
                      family=AF_INET6 if ":" in n.ip else AF_INET)
        elif isinstance(op, NeighbourDelete):
            n = op.neighbour
            try:
                ipr.neigh("del", dst=n.ip, ifindex=index, family=AF_INET6 if ":" in n.ip else AF_INET)
            except NetlinkError as exc:
                if exc.code != errno.ENOENT:
                    raise
        elif isinstance(op, FDBSet):
            e = op.entry
            ipr.fdb("replace", ifindex=index, lladdr=e.mac, dst=e.dst, state=NUD_PERMANENT, flags=NTF_SELF)
        elif isinstance(op, FDBDelete):
            e = op.entry
            kwargs = {"dst": e.dst} if e.dst else {}
            try:
                ipr.fdb("del", ifindex=index, lladdr=e.mac, state=NUD_PERMANENT, flags=NTF_SELF, **kwargs)
            except NetlinkError as exc:
                if exc.code != errno.ENOENT:
                    raise
        else:
            raise TypeError(f"unknown route dataplane operation {op!r}")
        return True

    # -- sysctls -----------------------------------------------------------------------------

    def _apply_sysctls(self, desired: Iterable[Sysctl], links: Mapping[str, Link]) -> list[str]:
        desired = list(desired)
        # Forget interfaces that went down or away, so they are configured when back up.
        for iface in [i for i in self._applied if i is not None]:
            link = links.get(iface)
            if link is None or not link.oper_up or link.index != self._applied[iface][0]:
                del self._applied[iface]
        failures = []
        unconfigured: set[str] = set()
        for sysctl in plan_sysctls(desired, links, self._applied):
            iface = sysctl_interface(sysctl.path)
            try:
                with open(os.path.join(self.proc_sys, sysctl.path), "w") as f:
                    f.write(sysctl.value)
            except OSError as exc:
                if sysctl.best_effort or (iface is not None and not os.path.exists(
                        os.path.join(self.proc_sys, "net/ipv4/conf", iface))):
                    log.debug("sysctl %s=%s not set: %s", sysctl.path, sysctl.value, exc)
                    if sysctl.best_effort:
                        self._mark_applied(iface, links, sysctl)
                    continue
                failures.append(f"sysctl {sysctl.path}={sysctl.value}: {exc}")
                if iface is not None:
                    unconfigured.add(iface)
                if sysctl.path not in self._sysctl_warned:  # retried each apply, reported once
                    self._sysctl_warned.add(sysctl.path)
                    log.warning("Route dataplane: cannot set sysctl %s=%s: %s; will retry", sysctl.path,
                                sysctl.value, exc)
                continue
            self.stats.sysctl_writes += 1
            self._mark_applied(iface, links, sysctl)
        self.unconfigured = frozenset(unconfigured)
        return failures

    def _mark_applied(self, iface: str | None, links: Mapping[str, Link], sysctl: Sysctl) -> None:
        index = links[iface].index if iface is not None else 0
        old_index, done = self._applied.get(iface, (index, frozenset()))
        if old_index != index:
            done = frozenset()
        self._applied[iface] = (index, done | {sysctl})


def _create_link(ipr: IPRoute, name: str, **attrs) -> bool:
    """Add a link; False when one of that name appeared meanwhile (EEXIST, as Felix takes
    it: the next read checks it is what we want, and the plan replaces it if not)."""
    try:
        ipr.link("add", ifname=name, **attrs)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
        log.info("Device %s already exists (created by someone else, or by the kernel)", name)
        return False
    return True


def _op_device(op) -> str | None:
    if isinstance(op, (LinkSetMTU, LinkSetUp)):
        return op.name
    if isinstance(op, (AddressAdd, AddressDelete)):
        return op.dev
    if isinstance(op, (RouteReplace, RouteDelete)):
        return op.route.dev
    if isinstance(op, (NeighbourSet, NeighbourDelete)):
        return op.neighbour.dev
    if isinstance(op, (FDBSet, FDBDelete)):
        return op.entry.dev
    return None


def _route_args(route: Route, index: int, delete: bool = False) -> dict:
    net = ipaddress.ip_network(route.dst, strict=False)
    args = {"family": AF_INET if net.version == 4 else AF_INET6, "dst": str(net.network_address),
            "dst_len": net.prefixlen, "table": MAIN_TABLE, "proto": route.proto,
            "type": _TYPE_NUMBERS.get(route.type, 1)}
    if route.metric:
        args["priority"] = route.metric
    if index:
        args["oif"] = index
    if delete:
        args["scope"] = RT_SCOPE_NOWHERE  # the kernel's wildcard; pyroute2 would send universe
        return args
    args["scope"] = _SCOPE_NUMBERS.get(route.scope, 0) if net.version == 4 else 0
    if route.gateway:
        args["gateway"] = route.gateway
    if route.src:
        args["prefsrc"] = route.src
    if route.onlink:
        args["flags"] = RTNH_F_ONLINK
    if route.mtu:
        args["metrics"] = {"mtu": route.mtu}
    return args


def _record(kernel: KernelState, op) -> None:
    """Keep the cached kernel state in step with a successful write."""
    if isinstance(op, RouteReplace):
        kernel.routes[route_key(op.route)] = [op.route]
    elif isinstance(op, RouteDelete):
        key = route_key(op.route)
        left = [r for r in kernel.routes.get(key, ()) if r != op.route]
        if left:
            kernel.routes[key] = left
        else:
            kernel.routes.pop(key, None)
    elif isinstance(op, NeighbourSet):
        kernel.neighbours[(op.neighbour.dev, op.neighbour.ip)] = op.neighbour.mac
    elif isinstance(op, NeighbourDelete):
        kernel.neighbours.pop((op.neighbour.dev, op.neighbour.ip), None)
    elif isinstance(op, FDBSet):
        kernel.fdb[(op.entry.dev, op.entry.mac)] = op.entry.dst
    elif isinstance(op, FDBDelete):
        kernel.fdb.pop((op.entry.dev, op.entry.mac), None)


def _link_states(links: Mapping[str, Link]) -> dict[str, tuple[int, bool]]:
    return {name: (link.index, link.oper_up) for name, link in links.items()}


def _has_routable_address(addresses: Iterable[str]) -> bool:
    return any(not ipaddress.ip_address(a).is_link_local or ":" not in a for a in addresses)


def _same_interfaces(interfaces: Mapping[str, Interface], links: Mapping[str, Link]) -> bool:
    return {n: (i.index, i.oper_up) for n, i in interfaces.items()} == _link_states(links)


__all__ = ["AddressAdd", "AddressDelete", "AddressOwner", "AddressOwners", "ApplyResult", "FDBDelete",
           "FDBSet", "IPIPCreate", "KernelState", "Link", "LinkDelete", "LinkSetMTU", "LinkSetUp",
           "NeighbourDelete", "NeighbourSet", "Ownership", "RouteDataplane", "RouteDelete", "RouteReplace",
           "RouteStats", "TxChecksumOff", "VXLANCreate", "VXLANInfo", "cleanup_after_delete", "comparable",
           "conntrack_cleanups", "link_from_msg", "needs_early_cleanup", "plan", "plan_devices", "plan_fdb",
           "plan_moves", "plan_neighbours", "plan_routes", "plan_sysctls", "read_kernel", "route_from_msg",
           "route_is_remote", "route_key", "single_address", "sysctl_interface", "vanished_routes",
           "vxlan_incompatibility"]
