"""Desired routes, neighbours, FDB entries, tunnel devices and sysctls, as plain data.

Pure functions of the calculation's route messages (applied to a ``RouteModel``), the local
workload endpoints and a small ``RouteConfig``; the dataplane diffs their result against
the kernel and applies it with pyroute2. What each piece is, and why, follows Felix v3.32:

* workload routes and static ARP (felix/dataplane/linux/endpoint_mgr.go, routetable):
  ``<ip> dev <cali> proto <DeviceRouteProtocol> scope link metric <NormalRoutePriority>``,
  plus a permanent neighbour entry per IPv4 route pointing at the endpoint's MAC; during
  a KubeVirt live migration (node/felix/live_migration.py) a target endpoint in state
  Target has neither, and one in Live or TimeWait gets ``<ElevatedRoutePriority>``;
* VXLAN (vxlan_mgr.go, route_mgr.go, vxlanfdb): the ``vxlan.calico`` device, one route per
  remote block ``via <VTEP> dev vxlan.calico onlink``, a direct route for remote tunnel
  addresses that are not covered by a block route, neighbour and FDB entries per remote
  VTEP, same-subnet routes via the parent interface when the pool is CrossSubnet, and a
  blackhole per local block of a VXLAN pool;
* IPIP (ipip_mgr.go): ProgramClusterRoutes says who programs the cluster routes of IPIP
  pools and of unencapsulated pools. With Felix's newer default, EnabledIPIPOnly (which
  pairs with the renderer's BGPConfiguration default, EnabledNoEncapOnly), Felix
  programs the IPIP routes and local blackholes like VXLAN's and BIRD the unencapsulated
  ones; EnabledNoEncapOnly and Enabled give Felix the unencapsulated ones
  (noencap_mgr.go); Disabled (v3.32's default) leaves both to BIRD, and Felix only keeps
  ``tunl0``'s address and MTU;
* sysctls (endpoint_mgr.go configureInterface, int_dataplane.go configureKernel).

Routes that compete for the same kernel key (destination, metric) are resolved as Felix's
route table does: the lowest route class wins (local workloads before VXLAN before IPIP
before no-encap before blackholes). Every route carries ``DeviceRouteSourceAddress`` when
set, as Felix's route table gives it to every route it writes.
"""
from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Collection, Iterable, Mapping

from node.felix import netaddr
from node.felix.live_migration import State as LiveMigrationState
from node.felix.types import (IPPoolType, RouteRemove, RouteType, RouteUpdate, RouteUpdateMsg,
                              VXLANTunnelEndpoint, VXLANTunnelEndpointRemove, VXLANTunnelEndpointUpdate,
                              WorkloadEndpoint)

VXLAN_DEVICE_V4 = "vxlan.calico"
VXLAN_DEVICE_V6 = "vxlan-v6.calico"
IPIP_DEVICE = "tunl0"

RTPROT_BOOT = 3
# The protocol Felix marks its own same-subnet, IPIP and blackhole routes with.
FELIX_ROUTE_PROTOCOL = 80

VXLAN_MTU_OVERHEAD = 50
VXLAN_V6_MTU_OVERHEAD = 70
IPIP_MTU_OVERHEAD = 20
DEFAULT_HOST_MTU = 1460

# The kernel treats metric 0 on an IPv6 route as "use 1024"; Felix stores it that way.
IPV6_DEFAULT_METRIC = 1024


class RouteClass(enum.IntEnum):
    """Felix's routetable.RouteClass: who wants a route; the lowest value wins a conflict."""

    LOCAL_WORKLOAD = 0
    BPF_SPECIAL = 1
    WIREGUARD = 2
    VXLAN_SAME_SUBNET = 3
    VXLAN_TUNNEL = 4
    IPIP_SAME_SUBNET = 5
    IPIP_TUNNEL = 6
    NO_ENCAP = 7
    IPAM_BLOCK_DROP = 8


# --------------------------------------------------------------------------------------
# Desired state, as hashable data.

@dataclass(frozen=True)
class Route:
    """One kernel route in the main table. ``dev`` is None for routes with no interface."""

    dst: str
    dev: str | None = None
    gateway: str = ""
    type: str = "unicast"  # unicast | blackhole | unreachable
    proto: int = RTPROT_BOOT
    scope: str = "link"  # link | universe
    metric: int = 0
    src: str = ""
    onlink: bool = False
    mtu: int = 0

    @property
    def version(self) -> int:
        return netaddr.parse_network(self.dst).version


@dataclass(frozen=True, order=True)
class Neighbour:
    """A permanent neighbour (ARP/NDP) entry."""

    ip: str
    dev: str
    mac: str


@dataclass(frozen=True, order=True)
class FDBEntry:
    """A permanent bridge FDB entry on a VXLAN device: frames for ``mac`` go to ``dst``."""

    mac: str
    dev: str
    dst: str


@dataclass(frozen=True)
class VXLANDevice:
    """The VXLAN device Felix keeps in sync (recreated if VNI, parent, local IP, port or MAC differ)."""

    name: str
    vni: int
    port: int
    mtu: int
    mac: str
    address: str  # the tunnel address with its /32 or /128
    parent: str  # the interface holding this node's IP
    local_ip: str
    learning: bool = False
    tx_checksum_offload: bool = True


@dataclass(frozen=True)
class IPIPDevice:
    """``tunl0``: Felix only ensures it exists, is up, has this MTU and only this address."""

    name: str
    mtu: int
    address: str  # the tunnel address with /32
    tx_checksum_offload: bool = True


@dataclass(frozen=True, order=True)
class Sysctl:
    """One /proc/sys write. ``best_effort`` ones may fail without failing the interface."""

    path: str  # under /proc/sys, slash separated: net/ipv4/conf/cali1/rp_filter
    value: str
    best_effort: bool = False


# --------------------------------------------------------------------------------------
# Configuration.

@dataclass(frozen=True)
class RouteConfig:
    """The parameters the route side of the dataplane reads (Felix names in comments)."""

    hostname: str
    device_route_protocol: int = RTPROT_BOOT  # DeviceRouteProtocol
    device_route_source_address: str = ""  # DeviceRouteSourceAddress
    device_route_source_address_ipv6: str = ""  # DeviceRouteSourceAddressIPv6
    ipv4_normal_route_priority: int = 1024  # IPv4NormalRoutePriority
    ipv6_normal_route_priority: int = 1024  # IPv6NormalRoutePriority
    ipv4_elevated_route_priority: int = 512  # IPv4ElevatedRoutePriority
    ipv6_elevated_route_priority: int = 512  # IPv6ElevatedRoutePriority
    ipv6_enabled: bool = True  # Ipv6Support
    floating_ips_enabled: bool = False  # FloatingIPs
    ip_forwarding: bool = True  # IPForwarding
    # ProgramClusterRoutes: Felix programs the IPIP pools' / unencapsulated pools' routes.
    program_ipip_cluster_routes: bool = False
    program_noencap_cluster_routes: bool = False
    # Encapsulation: pools' wishes with the FelixConfiguration overrides applied.
    vxlan_enabled: bool = False
    vxlan_enabled_v6: bool = False
    ipip_enabled: bool = False
    ipip_explicitly_set: bool = False  # IpInIpEnabled was configured (no tunl0 clean-up)
    vxlan_vni: int = 4096  # VXLANVNI
    vxlan_port: int = 4789  # VXLANPort
    vxlan_mtu: int = 0  # VXLANMTU (0: host MTU - 50)
    vxlan_mtu_v6: int = 0  # VXLANMTUV6 (0: host MTU - 70)
    ipip_mtu: int = 0  # IpInIpMtu (0: host MTU - 20)
    ipip_tunnel_addr: str = ""  # IpInIpTunnelAddr (from the Node)
    host_mtu: int = DEFAULT_HOST_MTU
    default_rp_filter: str = "1"  # net.ipv4.conf.default.rp_filter, read at start
    checksum_offload_broken: bool = False  # kernels <= 5.7 need TX checksum offload off

    @property
    def effective_vxlan_mtu(self) -> int:
        return self.vxlan_mtu or self.host_mtu - VXLAN_MTU_OVERHEAD

    @property
    def effective_vxlan_mtu_v6(self) -> int:
        return self.vxlan_mtu_v6 or self.host_mtu - VXLAN_V6_MTU_OVERHEAD

    @property
    def effective_ipip_mtu(self) -> int:
        return self.ipip_mtu or self.host_mtu - IPIP_MTU_OVERHEAD

    @property
    def pod_mtu(self) -> int:
        """The MTU pods should use (Felix's determinePodMTU): the smallest MTU of the
        encapsulations in use, else the host's; the CNI plugin reads it from the MTU file."""
        enabled = [mtu for mtu, on in ((self.effective_ipip_mtu, self.ipip_enabled),
                                       (self.effective_vxlan_mtu, self.vxlan_enabled),
                                       (self.effective_vxlan_mtu_v6, self.vxlan_enabled_v6)) if on and mtu]
        return min(enabled) if enabled else self.host_mtu

    @property
    def cluster_route_protocol(self) -> int:
        """Protocol for same-subnet, IPIP and blackhole routes: 80, unless the device route
        protocol was changed from ``boot`` (then that, so one value marks all our routes)."""
        return FELIX_ROUTE_PROTOCOL if self.device_route_protocol == RTPROT_BOOT else self.device_route_protocol

    def source_address(self, version: int) -> str:
        return self.device_route_source_address if version == 4 else self.device_route_source_address_ipv6

    def normal_priority(self, version: int) -> int:
        return self.ipv4_normal_route_priority if version == 4 else self.ipv6_normal_route_priority

    def elevated_priority(self, version: int) -> int:
        return self.ipv4_elevated_route_priority if version == 4 else self.ipv6_elevated_route_priority

    def vxlan_enabled_for(self, version: int) -> bool:
        return self.vxlan_enabled if version == 4 else (self.vxlan_enabled_v6 and self.ipv6_enabled)

    @classmethod
    def from_felix(cls, config, *, hostname: str, vxlan_enabled: bool, vxlan_enabled_v6: bool,
                   ipip_enabled: bool, host_mtu: int = DEFAULT_HOST_MTU, default_rp_filter: str = "1",
                   checksum_offload_broken: bool = False) -> "RouteConfig":
        """Build from a ``node.felix.config.FelixConfig`` plus what the pools and kernel say."""
        return cls(
            hostname=hostname,
            # (a route's protocol is one byte: netlink keeps the low byte of a larger value)
            device_route_protocol=config.DeviceRouteProtocol & 0xFF,
            device_route_source_address=config.DeviceRouteSourceAddress,
            device_route_source_address_ipv6=config.DeviceRouteSourceAddressIPv6,
            ipv4_normal_route_priority=config.IPv4NormalRoutePriority,
            ipv6_normal_route_priority=config.IPv6NormalRoutePriority,
            ipv4_elevated_route_priority=config.IPv4ElevatedRoutePriority,
            ipv6_elevated_route_priority=config.IPv6ElevatedRoutePriority,
            ipv6_enabled=config.Ipv6Support,
            floating_ips_enabled=config.FloatingIPs == "Enabled",
            ip_forwarding=config.IPForwarding == "Enabled",
            program_ipip_cluster_routes=config.ProgramClusterRoutes in ("Enabled", "EnabledIPIPOnly"),
            program_noencap_cluster_routes=config.ProgramClusterRoutes in ("Enabled", "EnabledNoEncapOnly"),
            vxlan_enabled=vxlan_enabled,
            vxlan_enabled_v6=vxlan_enabled_v6,
            ipip_enabled=ipip_enabled,
            ipip_explicitly_set=config.IpInIpEnabled is not None,
            vxlan_vni=config.VXLANVNI,
            vxlan_port=config.VXLANPort,
            vxlan_mtu=config.VXLANMTU,
            vxlan_mtu_v6=config.VXLANMTUV6,
            ipip_mtu=config.IpInIpMtu,
            ipip_tunnel_addr=config.IpInIpTunnelAddr,
            host_mtu=host_mtu,
            default_rp_filter=default_rp_filter.strip() or "1",
            checksum_offload_broken=checksum_offload_broken,
        )


# --------------------------------------------------------------------------------------
# The dataplane's copy of the calculation's output.

@dataclass(frozen=True)
class RouteModel:
    """Routes by destination and VTEPs by node, as the messages so far describe them."""

    routes: Mapping[str, RouteUpdate] = field(default_factory=dict)
    vteps: Mapping[str, VXLANTunnelEndpoint] = field(default_factory=dict)


def apply_messages(model: RouteModel, messages: Iterable) -> RouteModel:
    """The model after ``messages`` (updates replace, removes of unknown keys are no-ops)."""
    routes = dict(model.routes)
    vteps = dict(model.vteps)
    for msg in messages:
        if isinstance(msg, RouteUpdateMsg):
            routes[msg.route.dst] = msg.route
        elif isinstance(msg, RouteRemove):
            routes.pop(msg.dst, None)
        elif isinstance(msg, VXLANTunnelEndpointUpdate):
            vteps[msg.vtep.node] = msg.vtep
        elif isinstance(msg, VXLANTunnelEndpointRemove):
            vteps.pop(msg.node, None)
    return RouteModel(routes, vteps)


# --------------------------------------------------------------------------------------
# Helpers.

_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")


def _valid_mac(mac: str) -> bool:
    return bool(mac) and bool(_MAC.match(mac))


def _bare_ip(text: str) -> str:
    """An address given as IP or CIDR (VTEP addresses come both ways), as a bare IP."""
    return text.split("/", 1)[0]


def _version_of(dst: str) -> int | None:
    try:
        return netaddr.parse_network(dst).version
    except ValueError:
        return None


def _has(rt: RouteUpdate, flag: RouteType) -> bool:
    return rt.types & flag == flag


def _default_metric(version: int) -> int:
    """Metric of a route Felix sets without a priority."""
    return 0 if version == 4 else IPV6_DEFAULT_METRIC


# --------------------------------------------------------------------------------------
# Local workloads.

def workload_route_targets(endpoint: WorkloadEndpoint, cfg: RouteConfig, version: int,
                           live_migration: LiveMigrationState | None = None,
                           openstack: bool = False) -> list[tuple[str, str]]:
    """(CIDR, MAC) pairs Felix routes to the endpoint's interface for one family.

    The endpoint's networks (masked, as Felix parses them) plus, with FloatingIPs enabled
    or for an OpenStack endpoint (``openstack``: its orchestrator is "openstack"), each
    NAT's external address. Only admin-up ("active") endpoints have routes, and not
    while they are a live migration's target waiting for the VM (``live_migration`` is
    Target).
    """
    if endpoint.state != "active" or live_migration is LiveMigrationState.TARGET:
        return []
    nets = endpoint.ipv4_nets if version == 4 else endpoint.ipv6_nets
    nats = endpoint.ipv4_nat if version == 4 else endpoint.ipv6_nat
    cidrs = [netaddr.network_text(n) for n in nets]
    if cfg.floating_ips_enabled or openstack:
        suffix = "/32" if version == 4 else "/128"
        cidrs += [netaddr.network_text(nat.ext_ip + suffix) for nat in nats]
    mac = endpoint.mac if _valid_mac(endpoint.mac) else ""
    return [(c, mac) for c in cidrs]


def workload_route_priority(cfg: RouteConfig, version: int, live_migration: LiveMigrationState | None = None) -> int:
    """The metric of a workload's routes: the elevated priority while a migrated VM's
    routes converge (Live, TimeWait), else the normal one (both families alike)."""
    if live_migration in (LiveMigrationState.LIVE, LiveMigrationState.TIME_WAIT):
        return cfg.elevated_priority(version)
    return cfg.normal_priority(version)


def workload_routes(endpoint: WorkloadEndpoint, cfg: RouteConfig,
                    live_migration: LiveMigrationState | None = None,
                    openstack: bool = False) -> list[tuple[RouteClass, Route]]:
    """``<ip> dev <iface> proto <DeviceRouteProtocol> scope link metric <priority> [src]``;
    ``live_migration`` is the endpoint's live migration state (None: Base); ``openstack``
    see ``workload_route_targets``."""
    out = []
    versions = (4, 6) if cfg.ipv6_enabled else (4,)
    for version in versions:
        metric = workload_route_priority(cfg, version, live_migration)
        for cidr, _ in workload_route_targets(endpoint, cfg, version, live_migration, openstack):
            out.append((RouteClass.LOCAL_WORKLOAD,
                        Route(dst=cidr, dev=endpoint.name, proto=cfg.device_route_protocol, scope="link",
                              metric=metric, src=cfg.source_address(version))))
    return out


def workload_neighbours(endpoint: WorkloadEndpoint, cfg: RouteConfig,
                        live_migration: LiveMigrationState | None = None,
                        openstack: bool = False) -> list[Neighbour]:
    """Permanent ARP entries, IPv4 only (Felix leaves IPv6 neighbours to the kernel);
    they come with the routes (Felix's route targets carry the MAC), so a live migration
    target in Target has none."""
    return [Neighbour(str(netaddr.parse_network(cidr).network_address), endpoint.name, mac.lower())
            for cidr, mac in workload_route_targets(endpoint, cfg, 4, live_migration, openstack) if mac]


def workload_sysctls(iface: str, cfg: RouteConfig, spoofing_allowed: bool = False) -> list[Sysctl]:
    """What Felix writes for a workload interface once it is oper-up, in Felix's order.

    rp_filter copies the host's default (strict checking), except that an endpoint allowed
    to send from spoofed prefixes needs it off.
    """
    out = [Sysctl(f"net/ipv6/conf/{iface}/accept_ra", "0", best_effort=True),
           Sysctl(f"net/ipv4/conf/{iface}/route_localnet", "1"),
           Sysctl(f"net/ipv4/neigh/{iface}/proxy_delay", "0", best_effort=True),
           Sysctl(f"net/ipv4/conf/{iface}/proxy_arp", "1"),
           Sysctl(f"net/ipv4/conf/{iface}/forwarding", "1"),
           Sysctl(f"net/ipv4/conf/{iface}/rp_filter", "0" if spoofing_allowed else cfg.default_rp_filter)]
    if cfg.ipv6_enabled:
        out += [Sysctl(f"net/ipv6/conf/{iface}/proxy_ndp", "1"),
                Sysctl(f"net/ipv6/conf/{iface}/forwarding", "1")]
    return out


def endpoint_sysctls(endpoint: WorkloadEndpoint, cfg: RouteConfig) -> list[Sysctl]:
    return workload_sysctls(endpoint.name, cfg, bool(endpoint.allow_spoofed_source_prefixes))


def global_sysctls(cfg: RouteConfig) -> list[Sysctl]:
    """Host-wide settings Felix applies at start."""
    out = []
    if cfg.ip_forwarding:
        out.append(Sysctl("net/ipv4/ip_forward", "1"))
        if cfg.ipv6_enabled:
            out.append(Sysctl("net/ipv6/conf/all/forwarding", "1"))
    out.append(Sysctl("net/netfilter/nf_conntrack_acct", "1", best_effort=True))
    return out


# --------------------------------------------------------------------------------------
# Cluster routes: Felix's routeManager, shared by the VXLAN, IPIP and no-encap managers.

def _is_remote_tunnel_route(rt: RouteUpdate, pool_type: IPPoolType) -> bool:
    """A remote tunnel address in its own block (a /32 tunnel pool): route it directly."""
    return (rt.ip_pool_type == pool_type and _has(rt, RouteType.REMOTE_TUNNEL)
            and _has(rt, RouteType.REMOTE_WORKLOAD))


def _is_borrowed_tunnel_route(rt: RouteUpdate, pool_type: IPPoolType) -> bool:
    """A remote tunnel address borrowed from another node's block: no block route covers it."""
    return rt.ip_pool_type == pool_type and _has(rt, RouteType.REMOTE_TUNNEL) and rt.borrowed


def _is_local_block(rt: RouteUpdate, pool_type: IPPoolType) -> bool:
    """A local block of this pool type that deserves a blackhole.

    Not a single address: a /32 (or /128) block's blackhole would shadow the CNI plugin's
    route for a new pod, and a single borrowed address means a pod is being set up.
    """
    if not _has(rt, RouteType.LOCAL_WORKLOAD) or rt.ip_pool_type != pool_type or rt.local_workload:
        return False
    return not rt.dst.endswith("/32" if _version_of(rt.dst) == 4 else "/128")


def cluster_routes(cfg: RouteConfig, routes: Iterable[RouteUpdate], version: int, pool_type: IPPoolType,
                   parent_device: str | None, tunnel_route, same_subnet_class: RouteClass,
                   tunnel_class: RouteClass) -> list[tuple[RouteClass, Route]]:
    """Remote routes (no-encap via the parent interface, else ``tunnel_route``) and local
    blackholes for one pool type and family."""
    out = []
    proto = cfg.cluster_route_protocol
    src = cfg.source_address(version)
    metric = _default_metric(version)
    for rt in routes:
        if _version_of(rt.dst) != version:
            continue
        wanted = ((_has(rt, RouteType.REMOTE_WORKLOAD) and rt.ip_pool_type == pool_type)
                  or _is_remote_tunnel_route(rt, pool_type) or _is_borrowed_tunnel_route(rt, pool_type))
        if wanted:
            if (parent_device and (pool_type == IPPoolType.NO_ENCAP or rt.same_subnet)
                    and rt.dst_node_ip):
                out.append((same_subnet_class,
                            Route(dst=rt.dst, dev=parent_device, gateway=rt.dst_node_ip, proto=proto,
                                  scope="universe", metric=metric, src=src, onlink=True)))
            elif tunnel_route is not None:
                route = tunnel_route(rt)
                if route is not None:
                    out.append((tunnel_class, route))
        if _is_local_block(rt, pool_type):
            out.append((RouteClass.IPAM_BLOCK_DROP,
                        Route(dst=rt.dst, type="blackhole", proto=proto, scope="universe", metric=metric,
                              src=src)))
    return out


# --------------------------------------------------------------------------------------
# VXLAN.

def vxlan_device_name(version: int) -> str:
    return VXLAN_DEVICE_V4 if version == 4 else VXLAN_DEVICE_V6


def _vtep_family(vtep: VXLANTunnelEndpoint, version: int) -> tuple[str, str, str]:
    """(tunnel address, MAC, parent IP) of a VTEP for one family ('' parts when absent)."""
    if version == 4:
        return _bare_ip(vtep.ipv4_addr), vtep.mac, vtep.parent_device_ip
    return _bare_ip(vtep.ipv6_addr), vtep.mac_v6, vtep.parent_device_ipv6


def remote_vteps(cfg: RouteConfig, vteps: Mapping[str, VXLANTunnelEndpoint],
                 version: int) -> dict[str, VXLANTunnelEndpoint]:
    """Other nodes' VTEPs that have this family (the manager skips the rest)."""
    return {node: v for node, v in vteps.items()
            if node != cfg.hostname and _vtep_family(v, version)[0]}


def vxlan_parent_address(cfg: RouteConfig, vteps: Mapping[str, VXLANTunnelEndpoint], version: int) -> str:
    """The IP whose interface is the VXLAN parent: this node's VTEP parent IP ('' if unknown)."""
    local = vteps.get(cfg.hostname)
    if local is None or not _vtep_family(local, version)[0]:
        return ""
    return _vtep_family(local, version)[2]


def vxlan_routes(cfg: RouteConfig, model: RouteModel, version: int,
                 parent_device: str | None) -> list[tuple[RouteClass, Route]]:
    """VXLAN pools' routes: via the remote VTEP on the VXLAN device, or via the node IP on
    the parent interface for same-subnet CrossSubnet destinations; local blackholes."""
    if not cfg.vxlan_enabled_for(version):
        return []
    dev = vxlan_device_name(version)
    mtu = cfg.effective_vxlan_mtu if version == 4 else cfg.effective_vxlan_mtu_v6
    remotes = remote_vteps(cfg, model.vteps, version)
    src = cfg.source_address(version)
    metric = _default_metric(version)

    def tunnel_route(rt: RouteUpdate) -> Route | None:
        if _is_remote_tunnel_route(rt, IPPoolType.VXLAN) or _is_borrowed_tunnel_route(rt, IPPoolType.VXLAN):
            # The address *is* the remote VTEP: reach it directly on the device.
            return Route(dst=rt.dst, dev=dev, proto=cfg.device_route_protocol, scope="link", metric=metric,
                         src=src, mtu=mtu)
        vtep = remotes.get(rt.dst_node_name)
        if vtep is None:
            return None  # programmed once the VTEP arrives
        return Route(dst=rt.dst, dev=dev, gateway=_vtep_family(vtep, version)[0], proto=cfg.device_route_protocol,
                     scope="universe", metric=metric, src=src, onlink=True, mtu=mtu)

    return cluster_routes(cfg, model.routes.values(), version, IPPoolType.VXLAN, parent_device, tunnel_route,
                          RouteClass.VXLAN_SAME_SUBNET, RouteClass.VXLAN_TUNNEL)


def vxlan_neighbours_and_fdb(cfg: RouteConfig, model: RouteModel,
                             version: int) -> tuple[list[Neighbour], list[FDBEntry]]:
    """Per remote VTEP: ``<tunnel IP> lladdr <MAC>`` and ``<MAC> dst <node IP>`` (permanent)."""
    if not cfg.vxlan_enabled_for(version):
        return [], []
    dev = vxlan_device_name(version)
    neighbours, fdb = [], []
    for vtep in remote_vteps(cfg, model.vteps, version).values():
        addr, mac, parent_ip = _vtep_family(vtep, version)
        if not _valid_mac(mac):
            continue  # Felix skips a VTEP with a bad MAC rather than block the others
        neighbours.append(Neighbour(addr, dev, mac.lower()))
        fdb.append(FDBEntry(mac.lower(), dev, _bare_ip(parent_ip)))
    return neighbours, fdb


def vxlan_allowed_sources(cfg: RouteConfig, model: RouteModel, version: int,
                          external_node_cidrs: Iterable[str] = ()) -> list[str]:
    """Members of the all-VXLAN-sources IP set: ExternalNodesCIDRList plus every remote VTEP's node IP."""
    out = list(external_node_cidrs)
    out += [_bare_ip(_vtep_family(v, version)[2]) for v in remote_vteps(cfg, model.vteps, version).values()]
    return out


def vxlan_device(cfg: RouteConfig, model: RouteModel, version: int, parent_device: str | None) -> VXLANDevice | None:
    """The local VXLAN device, once this node's VTEP is known and its parent interface found."""
    if not cfg.vxlan_enabled_for(version) or not parent_device:
        return None
    local = model.vteps.get(cfg.hostname)
    if local is None:
        return None
    addr, mac, parent_ip = _vtep_family(local, version)
    if not addr or not _valid_mac(mac):
        return None
    return VXLANDevice(name=vxlan_device_name(version), vni=cfg.vxlan_vni, port=cfg.vxlan_port,
                       mtu=cfg.effective_vxlan_mtu if version == 4 else cfg.effective_vxlan_mtu_v6,
                       mac=mac.lower(), address=f"{addr}/{32 if version == 4 else 128}", parent=parent_device,
                       local_ip=_bare_ip(parent_ip), learning=False,
                       tx_checksum_offload=not cfg.checksum_offload_broken)


# --------------------------------------------------------------------------------------
# IPIP and unencapsulated pools.

def ipip_device(cfg: RouteConfig, local_ipv4: str, parent_device: str | None) -> IPIPDevice | None:
    """``tunl0`` with IpInIpTunnelAddr/32 and the IPIP MTU.

    Felix configures it only once it has found the interface holding this node's IPv4
    address and knows the tunnel address.
    """
    if not cfg.ipip_enabled or not local_ipv4 or not parent_device or not cfg.ipip_tunnel_addr:
        return None
    return IPIPDevice(name=IPIP_DEVICE, mtu=cfg.effective_ipip_mtu, address=f"{cfg.ipip_tunnel_addr}/32",
                      tx_checksum_offload=not cfg.checksum_offload_broken)


def ipip_routes(cfg: RouteConfig, model: RouteModel,
                parent_device: str | None) -> list[tuple[RouteClass, Route]]:
    """IPIP pools' routes, which Felix owns with ProgramClusterRoutes Enabled or
    EnabledIPIPOnly: ``<block> via <node IP> dev tunl0 onlink proto 80``; else BIRD
    programs them."""
    if not cfg.ipip_enabled or not cfg.program_ipip_cluster_routes:
        return []
    proto = cfg.cluster_route_protocol

    def tunnel_route(rt: RouteUpdate) -> Route | None:
        if not rt.dst_node_ip:
            return None
        return Route(dst=rt.dst, dev=IPIP_DEVICE, gateway=rt.dst_node_ip, proto=proto, scope="universe",
                     metric=0, src=cfg.source_address(4), onlink=True, mtu=cfg.effective_ipip_mtu)

    return cluster_routes(cfg, model.routes.values(), 4, IPPoolType.IPIP, parent_device, tunnel_route,
                          RouteClass.IPIP_SAME_SUBNET, RouteClass.IPIP_TUNNEL)


def noencap_routes(cfg: RouteConfig, model: RouteModel, version: int,
                   parent_device: str | None) -> list[tuple[RouteClass, Route]]:
    """Unencapsulated pools' routes (via the node IP on the parent interface), which Felix
    owns with ProgramClusterRoutes Enabled or EnabledNoEncapOnly and no overlay for the
    family."""
    if not cfg.program_noencap_cluster_routes:
        return []
    if version == 4 and (cfg.vxlan_enabled or cfg.ipip_enabled):
        return []
    if version == 6 and (not cfg.ipv6_enabled or cfg.vxlan_enabled_v6):
        return []
    return cluster_routes(cfg, model.routes.values(), version, IPPoolType.NO_ENCAP, parent_device, None,
                          RouteClass.NO_ENCAP, RouteClass.NO_ENCAP)


# --------------------------------------------------------------------------------------
# Putting it together.

def resolve_routes(candidates: Iterable[tuple[RouteClass, Route]],
                   up_links: Mapping[str, int] | None = None) -> list[Route]:
    """One route per kernel key (destination, metric), as Felix's route table picks it.

    ``up_links`` maps the oper-up interfaces to their ifindex; routes on other interfaces
    are left out, and the higher ifindex wins a tie within a class. Without it every
    interface counts as up and the tie goes to the greater name.
    """
    return _resolve(candidates, up_links)[0]


def _resolve(candidates: Iterable[tuple[RouteClass, Route]], up_links: Mapping[str, int] | None
             ) -> tuple[list[Route], tuple[tuple[RouteClass, Route], ...]]:
    """``resolve_routes``, and every candidate of the keys more than one candidate claims
    (so that the dataplane can pick again once it knows which interfaces are up)."""
    best: dict[tuple, tuple[RouteClass, tuple, Route]] = {}
    first: dict[tuple, tuple[RouteClass, Route]] = {}
    contested: dict[tuple, list[tuple[RouteClass, Route]]] = {}
    for cls, route in candidates:
        key = route_sort_key(route)  # (the kernel key, in listing order)
        if key in first:
            contested.setdefault(key, [first[key]]).append((cls, route))
        else:
            first[key] = (cls, route)
        if route.dev is None:
            rank: tuple = (0, "")
        elif up_links is None:
            rank = (0, route.dev)
        elif route.dev in up_links:
            rank = (up_links[route.dev], route.dev)
        else:
            continue
        cur = best.get(key)
        if cur is None or cls < cur[0] or (cls == cur[0] and rank > cur[1]):
            best[key] = (cls, rank, route)
    return ([best[key][2] for key in sorted(best)],
            tuple(candidate for key in sorted(contested) for candidate in contested[key]))


def resolve_with_links(desired: "DesiredRoutes", up_links: Mapping[str, int]) -> tuple[Route, ...]:
    """``desired.routes`` with each contested kernel key picked again among the
    candidates whose interface is up (``up_links``: name -> ifindex), as Felix's route
    table picks: lowest class, then highest ifindex. A key none of whose candidates can
    be used keeps its first pick (the dataplane leaves it out as any route on a down
    interface)."""
    if not desired.contested:
        return desired.routes
    again = {route_sort_key(route): route for route in resolve_routes(desired.contested, up_links)}
    routes = [again.get(route_sort_key(route), route) for route in desired.routes]
    return tuple(routes)


def route_sort_key(route: Route) -> tuple:
    """Order routes by family, destination, prefix length and metric (as ``ip route`` lists them)."""
    net = netaddr.parse_network(route.dst)
    return (net.version, int(net.network_address), net.prefixlen, route.metric)


@dataclass(frozen=True)
class DesiredRoutes:
    """Everything the route side of the dataplane should make true."""

    routes: tuple[Route, ...] = ()
    neighbours: tuple[Neighbour, ...] = ()
    fdb: tuple[FDBEntry, ...] = ()
    vxlan_devices: tuple[VXLANDevice, ...] = ()
    ipip_device: IPIPDevice | None = None
    # Devices Felix deletes because their encapsulation is off.
    absent_devices: tuple[str, ...] = ()
    # IPIP off and not explicitly configured: Felix strips tunl0's addresses.
    clean_ipip_addresses: bool = False
    sysctls: tuple[Sysctl, ...] = ()
    # (workload interface, address): the host side of a local-workload BGP session.
    workload_addresses: tuple[tuple[str, str], ...] = ()
    # Every (class, route) of the kernel keys several candidates claim (e.g. a pod's
    # address still routed to the old pod's interface): ``routes`` holds each key's pick
    # as if every interface were up; the dataplane picks again (``resolve_with_links``).
    contested: tuple[tuple[RouteClass, Route], ...] = ()


class EndpointPieces:
    """Each local endpoint's routes, neighbours and sysctls as last computed, so that a
    new desired state recomputes only the endpoints that changed (by identity: the
    endpoints are immutable, and a caller holds the same object until it changes) or
    whose interface's live migration state changed. Everything is forgotten when the
    configuration changes."""

    def __init__(self) -> None:
        self._cfg: RouteConfig | None = None
        self._by_name: dict[str, tuple] = {}

    def pieces(self, cfg: RouteConfig, endpoints: list[WorkloadEndpoint],
               live_migration: Mapping[str, LiveMigrationState] | None = None,
               openstack_interfaces: Collection[str] = ()) -> list[tuple]:
        """(routes, neighbours, sysctls) per endpoint, in the order given;
        ``live_migration``: interface -> live migration state (absent: Base);
        ``openstack_interfaces``: the interfaces of OpenStack endpoints."""
        if cfg != self._cfg:
            self._cfg, self._by_name = cfg, {}
        states = live_migration or {}
        old, new = self._by_name, {}
        out = []
        for ep in endpoints:
            state = states.get(ep.name)
            openstack = ep.name in openstack_interfaces
            hit = old.get(ep.name)
            if hit is None or hit[0] is not ep or hit[1] is not state or hit[2] != openstack:
                hit = (ep, state, openstack, workload_routes(ep, cfg, state, openstack),
                       workload_neighbours(ep, cfg, state, openstack), endpoint_sysctls(ep, cfg))
            new[ep.name] = hit
            out.append(hit[3:])
        self._by_name = new  # (endpoints gone are dropped)
        return out


def desired_routes(cfg: RouteConfig, model: RouteModel, endpoints: Iterable[WorkloadEndpoint] = (),
                   parent_devices: Mapping[int, str] | None = None, local_ipv4: str = "",
                   up_links: Mapping[str, int] | None = None, memo: EndpointPieces | None = None,
                   vxlan_parent_devices: Mapping[int, str] | None = None,
                   peering_addresses: Mapping[int, str] | None = None,
                   peering_endpoints: Iterable[WorkloadEndpoint] | None = None,
                   workload_interfaces: Iterable[str] = (),
                   live_migration: Mapping[str, LiveMigrationState] | None = None,
                   openstack_interfaces: Collection[str] = ()) -> DesiredRoutes:
    """The whole desired state.

    ``parent_devices`` maps a family to the interface holding this node's address of that
    family (Felix's HostMetadata: the IPIP and no-encap routes go through it);
    ``vxlan_parent_devices`` to the interface holding this node's VTEP parent address of
    that family (the VXLAN device and routes), the same as ``parent_devices`` when not
    given; ``local_ipv4`` is this node's IPv4 address, which gates the IPIP device;
    ``up_links`` see ``resolve_routes``. Neighbours and sysctls are listed for every
    endpoint: the dataplane writes them once the interface exists and is up, as Felix
    does. ``memo`` carries the endpoints' parts over from the previous computation.
    ``peering_addresses`` (family -> BGPConfiguration's localWorkloadPeeringIPV4/V6) goes
    on the interface of every endpoint with a local BGP peer among ``peering_endpoints``
    (the endpoints in charge of their interfaces; all of ``endpoints`` when not given).
    ``workload_interfaces``: the host's workload-prefixed interfaces; as Felix configures
    every one that comes up, those without an endpoint get the usual sysctls too.
    ``live_migration``: the live migration state of the endpoint in charge of each
    interface (node/felix/live_migration.py; interfaces not listed are in Base): Target
    takes the interface's routes and neighbours away, Live and TimeWait raise its routes'
    priority (``workload_routes``). ``openstack_interfaces``: the interfaces of endpoints
    whose orchestrator is OpenStack, whose floating IPs are routed to them as with
    FloatingIPs enabled.
    """
    parents = dict(parent_devices or {})
    vxlan_parents = parents if vxlan_parent_devices is None else dict(vxlan_parent_devices)
    endpoints = sorted(endpoints, key=lambda ep: ep.name)
    candidates: list[tuple[RouteClass, Route]] = []
    neighbours: list[Neighbour] = []
    fdb: list[FDBEntry] = []
    sysctls: list[Sysctl] = global_sysctls(cfg)
    if memo is None:
        memo = EndpointPieces()
    for ep_routes, ep_neighbours, ep_sysctls in memo.pieces(cfg, endpoints, live_migration,
                                                                 openstack_interfaces):
        candidates += ep_routes
        neighbours += ep_neighbours
        sysctls += ep_sysctls
    for name in sorted(set(workload_interfaces) - {ep.name for ep in endpoints}):
        sysctls += workload_sysctls(name, cfg, False)
    devices, absent = [], []
    for version in (4, 6):
        if not cfg.vxlan_enabled_for(version):
            if version == 4 or cfg.ipv6_enabled:  # without IPv6 Felix leaves v6 devices alone
                absent.append(vxlan_device_name(version))
            continue
        candidates += vxlan_routes(cfg, model, version, vxlan_parents.get(version))
        n, f = vxlan_neighbours_and_fdb(cfg, model, version)
        neighbours += n
        fdb += f
        device = vxlan_device(cfg, model, version, vxlan_parents.get(version))
        if device is not None:
            devices.append(device)
    candidates += ipip_routes(cfg, model, parents.get(4))
    for version in (4, 6):
        candidates += noencap_routes(cfg, model, version, parents.get(version))
    routes, contested = _resolve(candidates, up_links)
    return DesiredRoutes(
        routes=tuple(routes),
        contested=contested,
        neighbours=tuple(sorted(set(neighbours))),
        fdb=tuple(sorted(set(fdb))),
        vxlan_devices=tuple(devices),
        ipip_device=ipip_device(cfg, local_ipv4, parents.get(4)),
        absent_devices=tuple(absent),
        clean_ipip_addresses=not cfg.ipip_enabled and not cfg.ipip_explicitly_set,
        sysctls=tuple(sysctls),
        workload_addresses=workload_peering_addresses(
            cfg, endpoints if peering_endpoints is None else peering_endpoints, peering_addresses or {}),
    )


def workload_peering_addresses(cfg: RouteConfig, endpoints: Iterable[WorkloadEndpoint],
                               peering: Mapping[int, str]) -> tuple[tuple[str, str], ...]:
    """Felix's endpoint managers give the interface of a workload with a local BGP peer the
    configured peering address of each family (/32, /128), so BIRD can reach it from there."""
    families = (4, 6) if cfg.ipv6_enabled else (4,)
    out = []
    for ep in endpoints:
        if ep.local_bgp_peer:
            for version in families:
                addr = peering.get(version)
                if addr:
                    out.append((ep.name, f"{addr}/{32 if version == 4 else 128}"))
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------
# Text, for the dry run: close to what ``ip route``/``ip neigh``/``bridge fdb`` print.

_PROTO_NAMES = {2: "kernel", 3: "boot", 4: "static", 12: "bird"}


def render_route(route: Route) -> str:
    """``ip route`` style; unlike ``ip route`` it always names the protocol."""
    net = ipaddress.ip_network(route.dst, strict=False)
    dst = str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
    parts = [] if route.type == "unicast" else [route.type]
    parts.append(dst)
    if route.gateway:
        parts += ["via", route.gateway]
    if route.dev is not None:
        parts += ["dev", route.dev]
    parts += ["proto", _PROTO_NAMES.get(route.proto, str(route.proto))]
    if route.scope != "universe":
        parts += ["scope", route.scope]
    if route.src:
        parts += ["src", route.src]
    if route.metric:
        parts += ["metric", str(route.metric)]
    if route.onlink:
        parts.append("onlink")
    if route.mtu:
        parts += ["mtu", str(route.mtu)]
    return " ".join(parts)


def render_neighbour(neigh: Neighbour) -> str:
    return f"{neigh.ip} dev {neigh.dev} lladdr {neigh.mac} PERMANENT"


def render_fdb(entry: FDBEntry) -> str:
    return f"{entry.mac} dev {entry.dev} dst {entry.dst} self permanent"


def render_vxlan_device(dev: VXLANDevice) -> str:
    learning = "learning" if dev.learning else "nolearning"
    return (f"{dev.name}: vxlan id {dev.vni} local {dev.local_ip} dev {dev.parent} dstport {dev.port} "
            f"{learning} mtu {dev.mtu} address {dev.mac} addr {dev.address}"
            + ("" if dev.tx_checksum_offload else " tx-checksumming off"))


def render_ipip_device(dev: IPIPDevice) -> str:
    return (f"{dev.name}: ipip mtu {dev.mtu} addr {dev.address}"
            + ("" if dev.tx_checksum_offload else " tx-checksumming off"))


def render_sysctl(sysctl: Sysctl) -> str:
    """``sysctl`` style: path separators become dots, dots inside names become slashes."""
    key = ".".join(part.replace(".", "/") for part in sysctl.path.split("/"))
    return f"{key} = {sysctl.value}" + (" (best effort)" if sysctl.best_effort else "")


def render(desired: DesiredRoutes) -> list[str]:
    """Every desired item as text, grouped as a dry run prints them."""
    lines = [render_vxlan_device(d) for d in desired.vxlan_devices]
    if desired.ipip_device is not None:
        lines.append(render_ipip_device(desired.ipip_device))
    lines += [f"delete link {name}" for name in desired.absent_devices]
    if desired.clean_ipip_addresses:
        lines.append(f"flush addresses of {IPIP_DEVICE}")
    lines += [render_route(r) for r in desired.routes]
    lines += [render_neighbour(n) for n in desired.neighbours]
    lines += [render_fdb(f) for f in desired.fdb]
    lines += [render_sysctl(s) for s in desired.sysctls]
    return lines


__all__ = ["DesiredRoutes", "EndpointPieces", "FDBEntry", "IPIPDevice", "Neighbour", "Route", "RouteClass", "RouteConfig",
           "RouteModel", "Sysctl", "VXLANDevice", "apply_messages", "cluster_routes", "desired_routes",
           "endpoint_sysctls", "global_sysctls", "ipip_device", "ipip_routes", "noencap_routes", "render",
           "render_fdb", "render_ipip_device", "render_neighbour", "render_route", "render_sysctl",
           "render_vxlan_device", "resolve_routes", "resolve_with_links", "remote_vteps", "route_sort_key",
           "vxlan_allowed_sources", "vxlan_device", "vxlan_device_name", "vxlan_neighbours_and_fdb", "vxlan_parent_address", "vxlan_routes",
           "workload_neighbours", "workload_route_priority", "workload_route_targets", "workload_routes",
           "workload_sysctls"]
