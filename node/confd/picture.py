"""The BGP picture: everything the BIRD templates lay out, computed in plain Python.

``build_picture(inputs, settings)`` returns one ``FamilyPicture`` per IP family. Every
decision Calico's confd makes (mesh and explicit peers, route reflection, passive side,
filters, communities, pools and encapsulation, block aggregation, service ranges,
router ID, debug level...) is taken here; the templates only print the result.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
from dataclasses import dataclass, field

from node.confd.cluster import Cluster, NodeBGP, build_cluster
from node.confd.filters import (
    BIRD_INT_MAX,
    BirdFilter,
    FilterCall,
    FilterError,
    bird_filters,
    peer_filter_calls,
)
from node.confd import services as services_module
from node.confd.inputs import ConfdInputs, Settings
from node.confd.peerings import NodePeerings, Peering, compute_peerings, go_round_seconds
from node.model import ipam

log = logging.getLogger(__name__)

DEFAULT_ROUTE_PRIORITY = 1024
OVERRIDE_PREFERENCE = 200          # lets an elevated-priority BGP route beat a local workload route
STANDARD_DIRECT_EXCLUDES = ('-"cali*"', '-"kube-ipvs*"', '"*"')
FELIX_TUNNEL_INTERFACES = ("*.cali", "*.calico")
IPIP_INTERFACE = "tunl0"
EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


class RenderError(Exception):
    """The picture cannot be computed (for example, this node's Node does not exist).

    Calico fails the template in that case and leaves the installed files alone.
    """


# --------------------------------------------------------------------------------------
# Picture data.

@dataclass(frozen=True)
class BirdPeer:
    """One ``protocol bgp`` block."""

    name: str
    ip: str
    port: str
    as_number: str
    local_as_number: str
    type: str                       # mesh, global, node or local_workload
    source_addr: str
    ttl_security: str               # "off" or a hop count
    import_calls: tuple[FilterCall, ...]
    export_calls: tuple[FilterCall, ...]
    same_as: bool
    passive: bool
    graceful_restart: str
    keepalive_time: str
    rr_cluster_id: str              # set only when the peer is our route-reflector client
    password: str
    next_hop_keep: bool
    next_hop_self: bool
    num_allow_local_as: str


@dataclass(frozen=True)
class CommunityRule:
    cidr: str
    statements: tuple[str, ...]


@dataclass(frozen=True)
class PoolRule:
    """``if (net ~ cidr) then { [extra ]action; }`` with an explanatory note."""

    cidr: str
    action: str
    extra: str = ""
    note: str = ""

    @property
    def sort_key(self) -> str:
        # Calico sorts whole statements as strings; pool CIDRs are unique, so the
        # statement text without its comment sorts the same way.
        extra = f"{self.extra} " if self.extra else ""
        return f"  if (net ~ {self.cidr}) then {{ {extra}{self.action}; }}"


@dataclass(frozen=True)
class AffineBlock:
    cidr: str
    state: str           # "" for implicitly confirmed
    aggregate: bool      # confirmed blocks aggregate; others fall through to pool rules


@dataclass(frozen=True)
class StaticRoute:
    dest: str
    via: str


@dataclass
class FamilyPicture:
    version: int
    node_name: str
    node_ip: str                     # "" disables BGP in this family's file
    as_number: str
    router_id: str
    debug_mode: str                  # "" for no debug line
    peer_debug_mode: str
    listen_address: str
    listen_port: str
    direct_interfaces: str
    normal_route_priority: int
    elevated_local_pref: int         # bgp_local_pref above this means "elevated priority"
    override_preference: int
    bird_int_max: int
    communities: list[CommunityRule]
    filters: list[BirdFilter]
    peers: list[BirdPeer]
    # bird_aggr.cfg
    blackhole_blocks: list[str]
    static_routes: list[str]
    global_peer_routes: list[StaticRoute]
    node_peer_routes: list[StaticRoute]
    affine_blocks: list[AffineBlock]
    # bird_ipam.cfg
    disabled_pool_rules: list[PoolRule]
    tunnel_interfaces: list[str]
    rr_load_balancer_cidrs: list[str]
    rr_external_cidrs: list[str]
    enabled_pool_rules: list[PoolRule]
    reject_cidrs: list[str]
    wireguard_peer_ips: list[str]
    kernel_pool_rules: list[PoolRule]
    # Which IPIP pools BIRD programs with krt_tunnel (for the start-up capability check).
    krt_tunnel_pools: list[str] = field(default_factory=list)
    # A BGPFilter rule BIRD cannot express fails this family's main file (only).
    filter_error: str = ""

    @property
    def suffix(self) -> str:
        return "" if self.version == 4 else "6"

    @property
    def has_static_protocol(self) -> bool:
        # Any affine block counts, even a host-sized one that has no blackhole route
        # (Calico then emits the static protocol with an empty template; so do we).
        return bool(self.affine_blocks or self.static_routes or self.global_peer_routes
                    or self.node_peer_routes)


@dataclass
class Picture:
    v4: FamilyPicture
    v6: FamilyPicture

    def family(self, version: int) -> FamilyPicture:
        return self.v4 if version == 4 else self.v6


# --------------------------------------------------------------------------------------
# Small rules.

def hash_router_id(nodename: str) -> str:
    """An IPv4-shaped router ID from the node name; never in the multicast range."""
    digest = hashlib.sha256(nodename.encode()).digest()[:4]
    first = digest[0] - 32 if digest[0] > 223 else digest[0]
    return ".".join(str(b) for b in (first, *digest[1:]))


def debug_modes(level: str) -> tuple[str, str]:
    """(device/direct debug setting, bgp_template debug line) for a BIRD log level."""
    if level == "none":
        return "", ""
    if level == "debug":
        return "all", "debug all;"
    return "{ states }", "debug { states, routes, filters, events };"


def community_statement(value: str) -> str | None:
    parts = value.split(":")
    if len(parts) == 2:
        return f"bgp_community.add(({parts[0]}, {parts[1]}));"
    if len(parts) == 3:
        return f"bgp_large_community.add(({parts[0]}, {parts[1]}, {parts[2]}));"
    return None


def _is_community_value(text: str) -> bool:
    parts = text.split(":")
    return len(parts) in (2, 3) and all(p.isdigit() and p.isascii() for p in parts)


def communities(cluster: Cluster, nodename: str, version: int) -> list[CommunityRule]:
    """Prefix advertisements of the node's BGPConfiguration if it has any, else the global ones."""
    source = None
    node_cfg = cluster.node_configs.get(nodename)
    if node_cfg is not None and node_cfg.spec.get("prefixAdvertisements"):
        source = node_cfg
    elif cluster.global_config is not None and cluster.global_config.spec.get("prefixAdvertisements"):
        source = cluster.global_config
    if source is None:
        return []
    named = {}
    for community in source.spec.get("communities") or []:
        named.setdefault(community.get("name"), community.get("value"))
    rules = []
    for adv in source.spec.get("prefixAdvertisements") or []:
        cidr = adv.get("cidr") or ""
        if not cidr or (":" in cidr) != (version == 6):
            continue
        values = set()
        for entry in adv.get("communities") or []:
            if _is_community_value(entry):
                values.add(entry)
            elif named.get(entry):
                values.add(named[entry])
            # An unknown community name is dropped, as in Calico.
        statements = tuple(s for s in (community_statement(v) for v in sorted(values)) if s)
        if statements:
            rules.append(CommunityRule(cidr, statements))
    return rules


def _is_single_ip(cidr: str) -> bool:
    return cidr.endswith("/128") if ":" in cidr else cidr.endswith("/32")


def _is_go_cidr(text: str) -> bool:
    """Whether Go's ``net.ParseCIDR`` reads ``text`` (address/length; no bare address)."""
    try:
        ipam.parse_pod_cidr(text)
    except ValueError:
        return False
    return True


def _config_cidrs(spec: dict, field_name: str) -> list[str]:
    return [b["cidr"] for b in spec.get(field_name) or [] if b.get("cidr")]


def service_routes(cluster: Cluster, settings: Settings, services: dict | None = None,
                   slices: dict | None = None) -> tuple[set[str], set[str]]:
    """(routes to advertise, CIDRs never to program into the kernel).

    The global service ranges: cluster-IP ranges (or ``CALICO_ADVERTISE_CLUSTER_IPS``),
    external-IP ranges and, when aggregation is on, load-balancer ranges; single
    addresses are left to per-Service advertisement, whose routes are added to the
    first set only. A node labelled as excluded from external load balancers keeps only
    the reject entries.
    """
    spec = cluster.global_spec
    aggregate = (spec.get("serviceLoadBalancerAggregation") or "Enabled") == "Enabled"
    groups = {
        "serviceClusterIPs": ([settings.advertise_cluster_ips] if settings.advertise_cluster_ips
                              else _config_cidrs(spec, "serviceClusterIPs")),
        "serviceExternalIPs": [c for c in _config_cidrs(spec, "serviceExternalIPs") if not _is_single_ip(c)],
        "serviceLoadBalancerIPs": ([c for c in _config_cidrs(spec, "serviceLoadBalancerIPs") if not _is_single_ip(c)]
                                   if aggregate else []),
    }
    # Calico checks each range type with Go's net.ParseCIDR, which wants address/length:
    # a bare address (that validation accepts, as a /32 or /128) that is not set aside
    # as a single address fails the whole type, which is then not advertised at all,
    # neither as ranges nor for individual Services.
    cidrs: set[str] = set()
    failed: set[str] = set()
    for name, group in groups.items():
        bad = [cidr for cidr in group if not _is_go_cidr(cidr)]
        if bad:
            log.error("BGPConfiguration(default).spec.%s: %s is not a CIDR (address/length); "
                      "not advertising that range type", name, ", ".join(bad))
            failed.add(name)
            continue
        cidrs.update(group)
    node = cluster.nodes.get(settings.nodename)
    excluded = node is not None and node.labels.get(EXCLUDE_FROM_LB_LABEL) == "true"
    statics = set() if excluded else set(cidrs)
    if services:
        statics |= services_module.service_routes(list(services.values()), list(slices.values()),
                                                  services_module.AdvertisementConfig(
            node_ref=settings.kubernetes_node_name,
            excluded=excluded,
            advertise_cluster_ips=bool(groups["serviceClusterIPs"]) and "serviceClusterIPs" not in failed,
            external_cidrs=([] if "serviceExternalIPs" in failed else _config_cidrs(spec, "serviceExternalIPs")),
            load_balancer_cidrs=([] if "serviceLoadBalancerIPs" in failed
                                 else _config_cidrs(spec, "serviceLoadBalancerIPs")),
            aggregate_load_balancers=aggregate,
        ))
    return statics, cidrs


def _route_key(cidr: str) -> str:
    """How a CIDR is spelled in confd's route keys (first '/' as '-'); ``ls`` sorts these."""
    return cidr.replace("/", "-", 1)


def _family_cidrs(cidrs: set[str], version: int) -> list[str]:
    return sorted((c for c in cidrs if (":" in c) == (version == 6)), key=_route_key)


@dataclass(frozen=True)
class _ClusterRoutePolicy:
    ipip: bool
    no_encap: bool


_POLICIES = {
    "Disabled": _ClusterRoutePolicy(False, False),
    "Enabled": _ClusterRoutePolicy(True, True),
    "EnabledIPIPOnly": _ClusterRoutePolicy(True, False),
    "EnabledNoEncapOnly": _ClusterRoutePolicy(False, True),
}


def cluster_route_policy(value: str | None) -> _ClusterRoutePolicy:
    """Which pools' cluster routes BIRD programs (programClusterRoutes, default EnabledNoEncapOnly)."""
    if value is None:
        return _POLICIES["EnabledNoEncapOnly"]
    if value not in _POLICIES:
        log.warning("Unrecognised BGPConfiguration.programClusterRoutes value %r; treating it as the default.", value)
        return _POLICIES["EnabledNoEncapOnly"]
    return _POLICIES[value]


def _encap(mode: str | None) -> bool:
    return mode in ("Always", "CrossSubnet")


@dataclass
class _PoolRules:
    disabled: list[PoolRule] = field(default_factory=list)
    enabled: list[PoolRule] = field(default_factory=list)
    kernel: list[PoolRule] = field(default_factory=list)
    krt_tunnel_pools: list[str] = field(default_factory=list)


def pool_rules(inputs: ConfdInputs, policy: _ClusterRoutePolicy, version: int,
               local_subnet: str | None) -> _PoolRules:
    """Export and kernel statements for every pool of one family (disabled pools included)."""
    out = _PoolRules()
    seen: dict[str, str] = {}
    for name in sorted(inputs.ip_pools):
        spec = inputs.ip_pools[name].spec
        try:
            net = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
        except ValueError:
            log.error("IPPool(%s).spec.cidr = '%s' is not a CIDR; ignoring the pool", name, spec.get("cidr", ""))
            continue
        if net.version != version:
            continue
        cidr = str(net)
        if cidr in seen:
            log.warning("IPPool %s has the same CIDR %s as IPPool %s; using %s", name, cidr, seen[cidr], seen[cidr])
            continue
        seen[cidr] = name
        vxlan = _encap(spec.get("vxlanMode"))
        ipip = not vxlan and _encap(spec.get("ipipMode"))
        bird_programs = (not vxlan) and (policy.ipip if ipip else policy.no_encap)
        # Export to BGP peers: a pool with BGP export disabled is rejected first thing;
        # every other pool is accepted last, whatever its encapsulation.
        if spec.get("disableBGPExport"):
            out.disabled.append(PoolRule(cidr, "reject", note="BGP export is disabled for this pool."))
        else:
            out.enabled.append(PoolRule(cidr, "accept"))
        # Programming the kernel: BIRD installs only the routes of pools it is responsible
        # for; everything else is Felix's (the v4 rules need this node's subnet).
        if version == 4 and local_subnet is None:
            continue
        if vxlan:
            out.kernel.append(PoolRule(cidr, "reject", note="Felix programs VXLAN routes."))
        elif bird_programs:
            if version == 6:
                continue  # the kernel filter accepts everything else anyway
            extra = ""
            if spec.get("ipipMode") == "Always":
                extra = f'krt_tunnel="{IPIP_INTERFACE}";'
            elif spec.get("ipipMode") == "CrossSubnet":
                extra = (f"if (defined(bgp_next_hop)&&(bgp_next_hop ~ {local_subnet})) then "
                         f'krt_tunnel=""; else krt_tunnel="{IPIP_INTERFACE}";')
            if extra:
                out.krt_tunnel_pools.append(name)
            out.kernel.append(PoolRule(cidr, "accept", extra=extra))
        else:
            out.kernel.append(PoolRule(cidr, "reject", note="Felix programs this pool's cluster routes."))
    for rules in (out.disabled, out.enabled, out.kernel):
        rules.sort(key=lambda r: r.sort_key)
    return out


# --------------------------------------------------------------------------------------
# Peers.

def _peer_name(prefix: str, ip: str, version: int) -> str:
    return f"{prefix}_{ip.replace('.' if version == 4 else ':', '_')}"


class _PeerBuilder:
    def __init__(self, inputs: ConfdInputs, cluster: Cluster, me: NodeBGP, version: int,
                 as_number: str, mesh_password: str, mesh_restart: str):
        self.inputs = inputs
        self.cluster = cluster
        self.me = me
        self.version = version
        self.my_ip = me.ip(version)
        self.as_number = as_number
        self.mesh_password = mesh_password
        self.mesh_restart = mesh_restart

    def calls(self, filters: tuple[str, ...], peer_as: str, node_as: str) -> tuple[tuple, tuple, bool]:
        same_as = peer_as == node_as
        imports = peer_filter_calls(filters, self.inputs.bgp_filters, "import", self.version, same_as)
        exports = peer_filter_calls(filters, self.inputs.bgp_filters, "export", self.version, same_as)
        return tuple(imports), tuple(exports), same_as

    def mesh(self) -> list[BirdPeer]:
        """The full node-to-node mesh, unless we are a route reflector or it is off."""
        if self.me.rr_cluster_id or not self.cluster.mesh_enabled:
            return []
        out = []
        for name, node in self.cluster.nodes.items():
            ip = node.ip(self.version)
            if not ip or ip == self.my_ip or node.rr_cluster_id:
                continue
            peer_as = node.as_num if node.as_num is not None else self.as_number
            port = self.cluster.listen_port(name)
            imports, exports, same_as = self.calls((), peer_as, self.as_number)
            out.append(BirdPeer(
                name=_peer_name("Mesh", ip, self.version), ip=ip, port=str(port) if port else "",
                as_number=peer_as, local_as_number="", type="mesh", source_addr=self.my_ip,
                ttl_security="off", import_calls=imports, export_calls=exports, same_as=same_as,
                # Exactly one side connects: the node whose address sorts higher, as strings.
                passive=ip > self.my_ip,
                graceful_restart=self.mesh_restart, keepalive_time="", rr_cluster_id="",
                password=self.mesh_password, next_hop_keep=False, next_hop_self=False, num_allow_local_as="",
            ))
        return out

    def explicit(self, peering: Peering, prefix: str) -> BirdPeer | None:
        ip = peering.ip
        if not ip or ip == self.my_ip:
            return None
        if peering.local_bgp_peer:
            prefix = "Local_Workload"
        name = _peer_name(prefix, ip, self.version)
        if peering.port > 0:
            name = f"{name}_port_{peering.port}"
        local_as = peering.local_as_num if peering.local_as_num not in ("", "0") else ""
        effective_as = local_as or self.as_number
        imports, exports, same_as = self.calls(peering.filters, peering.as_num, effective_as)
        peer_type = prefix.lower()
        passive = peering.passive_mode
        if (peer_type in ("global", "local_workload") and not passive and peering.calico_node
                and ip > self.my_ip):
            passive = True
        rr_cluster = ""
        my_cluster = self.me.rr_cluster_id
        if my_cluster and peering.as_num == effective_as and peering.rr_cluster_id != my_cluster:
            rr_cluster = my_cluster
        return BirdPeer(
            name=name, ip=ip, port=str(peering.port) if peering.port > 0 else "",
            as_number=peering.as_num, local_as_number=local_as, type=peer_type,
            source_addr=self.my_ip if peering.source_addr == "UseNodeIP" else "",
            ttl_security=str(peering.ttl_security) if peering.ttl_security > 0 else "off",
            import_calls=imports, export_calls=exports, same_as=same_as, passive=passive,
            graceful_restart=peering.restart_time, keepalive_time=peering.keepalive_time,
            rr_cluster_id=rr_cluster, password=peering.password or "",
            next_hop_keep=(peering.next_hop_mode == "Keep"
                           or (peering.keep_next_hop and peering.as_num != effective_as)),
            next_hop_self=peering.next_hop_mode == "Self",
            num_allow_local_as=str(peering.num_allow_local_as) if peering.num_allow_local_as > 0 else "",
        )

    def explicit_all(self, peerings: list[Peering], prefix: str) -> list[BirdPeer]:
        # Remote peers first, then local-workload peers (their names differ, so after the
        # final sort only duplicate names could notice the order).
        ordered = [p for p in peerings if not p.local_bgp_peer] + [p for p in peerings if p.local_bgp_peer]
        return [peer for peer in (self.explicit(p, prefix) for p in ordered) if peer is not None]


def _secret(inputs: ConfdInputs, settings: Settings, ref: dict | None, what: str) -> str:
    if not ref or inputs.secrets is None:
        return ""
    namespace, name, key = settings.secret_namespace, ref.get("name", ""), ref.get("key", "")
    value = inputs.secret_value(namespace, name, key)
    if value is None:
        log.warning("Can't read password referenced by %s in secret %s:%s (%s); the mesh has no password",
                    what, name, key, inputs.secret_problem(namespace, name, key))
        return ""
    return value


# --------------------------------------------------------------------------------------
# The picture.

def _pod_cidr_affinities(inputs: ConfdInputs, nodename: str, version: int) -> list[AffineBlock]:
    """With USE_POD_CIDR (host-local IPAM) this node's blocks are its Node's
    ``status.podCIDRs`` (the Kubernetes Node's ``spec.podCIDRs``), each confirmed, as
    Calico's BGP node processor makes them; BlockAffinity resources are not read."""
    node = inputs.nodes.get(nodename)
    cidrs = ((node.status or {}).get("podCIDRs") or []) if node is not None else []
    blocks = {}
    for index, cidr in enumerate(cidrs):
        try:
            net = ipam.parse_pod_cidr(cidr)  # Go's ParseCIDR, as the agent and Calico: no bare address
        except ValueError:
            log.warning("Node(%s).status.podCIDRs[%d] = '%s' is not a CIDR; ignoring it", nodename, index, cidr)
            continue
        if net.version == version:
            key = ipam.cidr_key_part(str(net))
            blocks[key] = AffineBlock(cidr=key.replace("-", "/"), state="confirmed", aggregate=True)
    return [blocks[k] for k in sorted(blocks)]


def _my_affinities(inputs: ConfdInputs, settings: Settings, version: int) -> list[AffineBlock]:
    nodename = settings.nodename
    if settings.use_pod_cidr:
        return _pod_cidr_affinities(inputs, nodename, version)
    blocks = {}
    for res in inputs.affinities.values():
        spec = res.spec
        if spec.get("node") != nodename or (spec.get("type") or "host") != "host":
            continue
        state = spec.get("state") or ""
        if state == "pending":
            continue  # a pending claim is not ours yet
        try:
            net = ipaddress.ip_network(spec.get("cidr", ""), strict=False)
        except ValueError:
            log.error("BlockAffinity(%s).spec.cidr = '%s' is not a CIDR; ignoring it", res.name, spec.get("cidr", ""))
            continue
        if net.version != version:
            continue
        key = ipam.cidr_key_part(str(net))
        blocks[key] = AffineBlock(cidr=key.replace("-", "/"), state=state,
                                  aggregate=state in ("", "confirmed"))
    return [blocks[k] for k in sorted(blocks)]


def build_family(inputs: ConfdInputs, settings: Settings, cluster: Cluster, peerings: NodePeerings,
                 version: int) -> FamilyPicture:
    nodename = settings.nodename
    me = cluster.nodes.get(nodename)
    if me is None:
        raise RenderError(f"Node {nodename!r} does not exist (or has unusable BGP addresses): "
                          "waiting for it before rendering")
    gspec = cluster.global_spec
    node_ip = me.ip(version)
    as_number = me.as_num if me.as_num is not None else cluster.global_as
    debug_mode, peer_debug_mode = debug_modes(cluster.log_level(nodename))

    if settings.router_id == "hash":
        router_id = hash_router_id(nodename)
    else:
        router_id = settings.router_id or me.ipv4
    listen_address = node_ip if gspec.get("bindMode") == "NodeIP" else ""
    port = cluster.listen_port(nodename)
    patterns = [f'-"{iface}"' for iface in gspec.get("ignoredInterfaces") or []]
    patterns.extend(STANDARD_DIRECT_EXCLUDES)
    nrp_field = "ipv4NormalRoutePriority" if version == 4 else "ipv6NormalRoutePriority"
    nrp = gspec.get(nrp_field) or DEFAULT_ROUTE_PRIORITY

    mesh_restart = go_round_seconds(gspec["nodeMeshMaxRestartTime"]) if gspec.get("nodeMeshMaxRestartTime") else ""
    mesh_password = _secret(inputs, settings, (gspec.get("nodeMeshPassword") or {}).get("secretKeyRef"),
                            "BGPConfiguration default")
    global_peerings, node_peerings = peerings.for_version(version)
    peers: list[BirdPeer] = []
    if node_ip:  # without an address in this family the file has no BGP section
        builder = _PeerBuilder(inputs, cluster, me, version, as_number, mesh_password, mesh_restart)
        peers = builder.mesh() + builder.explicit_all(global_peerings, "Global") + \
            builder.explicit_all(node_peerings, "Node")
        peers.sort(key=lambda p: p.name)

    policy = cluster_route_policy(gspec.get("programClusterRoutes"))
    pools = pool_rules(inputs, policy, version, me.network_v4 if version == 4 else me.network_v6)
    tunnels = list(FELIX_TUNNEL_INTERFACES)
    if not policy.ipip:
        tunnels.append(IPIP_INTERFACE)  # Felix programs the IPIP routes, so do not re-export them

    statics, rejects = service_routes(cluster, settings, inputs.services, inputs.endpoint_slices)
    rr = bool(me.rr_cluster_id)
    lb_cidrs = [c for c in _config_cidrs(gspec, "serviceLoadBalancerIPs") if (":" in c) == (version == 6)]
    ext_cidrs = [c for c in _config_cidrs(gspec, "serviceExternalIPs") if (":" in c) == (version == 6)]

    # With WireGuard on here, Felix routes to the other WireGuard nodes: BIRD must not
    # program routes via them. (Sorted as Calico sorts the whole statements.)
    wireguard = []
    if me.wireguard(version):
        wireguard = sorted((n.ip(version) for name, n in cluster.nodes.items()
                            if name != nodename and n.ip(version) and n.wireguard(version)),
                           key=lambda ip: ip + ")")

    filters: list[BirdFilter] = []
    filter_error = ""
    if node_ip:
        try:
            filters = bird_filters(inputs.bgp_filters, version)
        except FilterError as exc:
            filter_error = str(exc)

    host_len = 32 if version == 4 else 128
    blocks = _my_affinities(inputs, settings, version)
    route_suffix = f"/{host_len}"

    return FamilyPicture(
        version=version, node_name=nodename, node_ip=node_ip, as_number=as_number, router_id=router_id,
        debug_mode=debug_mode, peer_debug_mode=peer_debug_mode,
        listen_address=listen_address, listen_port=str(port) if port else "",
        direct_interfaces=", ".join(patterns),
        normal_route_priority=nrp, elevated_local_pref=BIRD_INT_MAX - nrp,
        override_preference=OVERRIDE_PREFERENCE, bird_int_max=BIRD_INT_MAX,
        communities=communities(cluster, nodename, version),
        filters=filters,
        peers=peers,
        blackhole_blocks=[b.cidr for b in blocks if not b.cidr.endswith(route_suffix)],
        static_routes=_family_cidrs(statics, version),
        global_peer_routes=[StaticRoute(f"{p.ip}{route_suffix}", p.reachable_by)
                            for p in global_peerings if p.reachable_by],
        node_peer_routes=[StaticRoute(f"{p.ip}{route_suffix}", p.reachable_by)
                          for p in node_peerings if p.reachable_by],
        affine_blocks=blocks,
        disabled_pool_rules=pools.disabled,
        tunnel_interfaces=tunnels,
        rr_load_balancer_cidrs=lb_cidrs if rr else [],
        rr_external_cidrs=ext_cidrs if rr else [],
        enabled_pool_rules=pools.enabled,
        reject_cidrs=_family_cidrs(rejects, version),
        wireguard_peer_ips=wireguard,
        kernel_pool_rules=pools.kernel,
        krt_tunnel_pools=pools.krt_tunnel_pools,
        filter_error=filter_error,
    )


def build_picture(inputs: ConfdInputs, settings: Settings) -> Picture:
    """Both families' pictures; raises RenderError when nothing valid can be rendered
    (the installed files must then stay as they are)."""
    if not settings.nodename:
        raise RenderError("NODENAME is not set")
    cluster = build_cluster(inputs)
    peerings = compute_peerings(inputs, cluster, settings)
    return Picture(v4=build_family(inputs, settings, cluster, peerings, 4),
                   v6=build_family(inputs, settings, cluster, peerings, 6))
