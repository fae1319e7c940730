"""The messages between the policy agent's calculation and its dataplane, as plain data.

They mirror Felix's ``felixbackend.proto`` messages (ActivePolicyUpdate, WorkloadEndpointUpdate,
IPSetDeltaUpdate, RouteUpdate, ...) because the split between "who applies to whom" (the
calculation, ``node.felix.calc``) and "what the kernel gets" (``node.felix.rules`` and the
dataplane) is the one Felix draws, and its rendering rules are written in terms of them.

Everything here is frozen and hashable: the calculation hands these out, the renderers read
them, nobody mutates them. Tuples, not lists, for the same reason.
"""
from __future__ import annotations

import dataclasses
import enum
import operator
from dataclasses import dataclass, field


def cached_hash(cls):
    """Cache a frozen dataclass's hash: identities like PolicyID and the endpoint keys are
    dict and set keys on every hot path, and the generated ``__hash__`` rebuilds a tuple
    each time. (The cache is per process: string hashes are salted, so it is never
    pickled.)"""
    names = tuple(f.name for f in dataclasses.fields(cls))

    def __hash__(self):
        try:
            return self.__dict__["_hash"]
        except KeyError:
            value = hash(tuple(getattr(self, n) for n in names))
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    cls.__hash__ = __hash__
    cls.__getstate__ = __getstate__
    return cls


def fast_init(cls):
    """Give a frozen dataclass a faster ``__init__`` with the same signature, defaults and
    result. The generated one calls ``object.__setattr__`` once per field; this one sets
    each slot through its descriptor (a slotted class) or the instance dict in one go.
    For the records made once per endpoint or rule of the cluster, which are declared
    with ``slots=True``: a wide record's instance dict costs about four times its slots
    (528 against 129 bytes for an 11-field endpoint), thousands of times over. Plain
    frozen dataclasses only: every field positional, no default factories, no
    ``__post_init__``."""
    fields = dataclasses.fields(cls)
    params = cls.__dataclass_params__
    if (not params.frozen or hasattr(cls, "__post_init__")
            or len(fields) != len(cls.__dataclass_fields__)  # pseudo-fields (InitVar, ClassVar)
            or any(not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING for f in fields)):
        raise TypeError(f"fast_init does not handle {cls.__name__}")
    glob = {"_set": object.__setattr__, "_defaults": {f.name: f.default for f in fields}}
    args = ", ".join(f.name if f.default is dataclasses.MISSING else f"{f.name}=_defaults[{f.name!r}]"
                     for f in fields)
    if "__slots__" in cls.__dict__:
        glob.update({f"_set_{f.name}": cls.__dict__[f.name].__set__ for f in fields})
        body = "\n".join(f"    _set_{f.name}(self, {f.name})" for f in fields)
    else:
        body = "    _set(self, '__dict__', {" + ", ".join(f"{f.name!r}: {f.name}" for f in fields) + "})"
    generated: dict = {}
    exec(f"def __init__(self, {args}):\n{body}\n", glob, generated)
    generated["__init__"].__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = generated["__init__"]
    return cls


_SYMBOLS = {"__lt__": "<", "__le__": "<=", "__gt__": ">", "__ge__": ">="}


def key_type(cls):
    """Turn a small annotated class into an immutable identity key that behaves like a
    frozen, ordered dataclass of the same fields (same constructor, attributes, ``repr``,
    equality, ordering and hash value) but is a ``tuple`` underneath: keys are hashed on
    every dict and set operation of the hot paths, and a tuple's hash runs in C where a
    dataclass's runs a Python method.

    Equality and ordering are by type first: a key never equals (nor orders against) a
    plain tuple or a key of another kind, whatever the field values. Methods and
    properties of the class body are kept."""
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    ns = {k: v for k, v in cls.__dict__.items()
          if k not in names and k not in ("__dict__", "__weakref__")}
    params = ", ".join(f"{n}=_defaults[{n!r}]" if n in defaults else n for n in names)
    glob = {"_defaults": defaults, "_new": tuple.__new__}
    exec(f"def __new__(_cls, {params}):\n    return _new(_cls, ({', '.join(names)},))\n", glob, ns)
    ns["__new__"].__qualname__ = f"{cls.__qualname__}.__new__"
    ns["__slots__"] = ()
    ns["_fields"] = names
    ns["__match_args__"] = names
    for i, n in enumerate(names):
        ns[n] = property(operator.itemgetter(i), doc=f"Alias for field number {i}")

    # The dataclass repr, as one f-string (keys are printed when they are sorted by text).
    fields = ", ".join(f"{n}={{self[{i}]!r}}" for i, n in enumerate(names))
    generated: dict = {}
    exec(f"def __repr__(self):\n    return f'{{type(self).__qualname__}}({fields})'\n", {}, generated)
    __repr__ = generated["__repr__"]

    def __getnewargs__(self):
        return tuple(self)

    def _same(op):
        compare = getattr(tuple, op)

        def method(self, other):
            if type(other) is type(self):
                return compare(self, other)
            if op in ("__eq__", "__ne__"):
                return (op == "__ne__") if isinstance(other, tuple) else NotImplemented
            if isinstance(other, tuple):
                raise TypeError(f"'{_SYMBOLS[op]}' not supported between instances of "
                                f"'{type(self).__name__}' and '{type(other).__name__}'")
            return NotImplemented
        method.__name__ = op
        return method

    ns.setdefault("__repr__", __repr__)
    ns["__getnewargs__"] = __getnewargs__
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        ns[op] = _same(op)
    ns["__hash__"] = tuple.__hash__
    new = type(cls.__name__, (tuple,), ns)
    new.__qualname__ = cls.__qualname__
    new.__module__ = cls.__module__
    return new


# --------------------------------------------------------------------------------------
# Policy identity.

KIND_NETWORK_POLICY = "NetworkPolicy"
KIND_GLOBAL_NETWORK_POLICY = "GlobalNetworkPolicy"
KIND_STAGED_NETWORK_POLICY = "StagedNetworkPolicy"
KIND_STAGED_GLOBAL_NETWORK_POLICY = "StagedGlobalNetworkPolicy"
KIND_STAGED_KUBERNETES_NETWORK_POLICY = "StagedKubernetesNetworkPolicy"
KIND_KUBERNETES_NETWORK_POLICY = "KubernetesNetworkPolicy"
KIND_KUBERNETES_CLUSTER_NETWORK_POLICY = "KubernetesClusterNetworkPolicy"

KIND_SHORT_NAMES = {
    KIND_NETWORK_POLICY: "np",
    KIND_GLOBAL_NETWORK_POLICY: "gnp",
    KIND_STAGED_NETWORK_POLICY: "snp",
    KIND_STAGED_GLOBAL_NETWORK_POLICY: "sgnp",
    KIND_STAGED_KUBERNETES_NETWORK_POLICY: "sknp",
    KIND_KUBERNETES_NETWORK_POLICY: "knp",
    KIND_KUBERNETES_CLUSTER_NETWORK_POLICY: "kcnp",
}
STAGED_KINDS = frozenset({KIND_STAGED_NETWORK_POLICY, KIND_STAGED_GLOBAL_NETWORK_POLICY,
                          KIND_STAGED_KUBERNETES_NETWORK_POLICY})


@key_type
class PolicyID:
    """A policy's identity (Felix's types.PolicyID): its v3 kind, namespace and name."""

    name: str
    namespace: str = ""
    kind: str = KIND_GLOBAL_NETWORK_POLICY

    @property
    def kind_short(self) -> str:
        return KIND_SHORT_NAMES.get(self.kind, self.kind)

    @property
    def staged(self) -> bool:
        return self.kind in STAGED_KINDS

    def id(self) -> str:
        """The chain-name suffix: ``<kindShort>/[<ns>/]<name>``."""
        if self.namespace:
            return f"{self.kind_short}/{self.namespace}/{self.name}"
        return f"{self.kind_short}/{self.name}"

    def __str__(self) -> str:
        """Go's String() form, which the policy-group hash reads."""
        return f"{{Name: {self.name}, Namespace: {self.namespace}, Kind: {self.kind}}}"


# --------------------------------------------------------------------------------------
# Rules, as Felix's rule scanner hands them to the renderer (proto.Rule).

ACTION_ALLOW = "allow"
ACTION_DENY = "deny"
ACTION_PASS = "next-tier"
ACTION_LOG = "log"


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int


@dataclass(frozen=True)
class ICMPMatch:
    """ICMP type, optionally with a code (``code`` None means "any code")."""

    type: int
    code: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class ParsedRule:
    """One rule after selector namespacing and IP-set scanning.

    Selectors are already replaced by IP-set IDs (``s:...`` for selector sets, ``n:...`` for
    named-port sets); the renderer turns IDs into set names for its IP version. ``protocol``
    is a lower-case name (``tcp``, ``icmpv6``) or a number.
    """

    action: str
    ip_version: int | None = None
    protocol: str | int | None = None
    src_net: tuple[str, ...] = ()
    src_ports: tuple[PortRange, ...] = ()
    src_named_port_ip_set_ids: tuple[str, ...] = ()
    src_ip_set_ids: tuple[str, ...] = ()
    dst_net: tuple[str, ...] = ()
    dst_ports: tuple[PortRange, ...] = ()
    dst_named_port_ip_set_ids: tuple[str, ...] = ()
    dst_ip_set_ids: tuple[str, ...] = ()
    dst_ip_port_set_ids: tuple[str, ...] = ()
    icmp: ICMPMatch | None = None
    not_protocol: str | int | None = None
    not_src_net: tuple[str, ...] = ()
    not_src_ports: tuple[PortRange, ...] = ()
    not_src_named_port_ip_set_ids: tuple[str, ...] = ()
    not_src_ip_set_ids: tuple[str, ...] = ()
    not_dst_net: tuple[str, ...] = ()
    not_dst_ports: tuple[PortRange, ...] = ()
    not_dst_named_port_ip_set_ids: tuple[str, ...] = ()
    not_dst_ip_set_ids: tuple[str, ...] = ()
    not_icmp: ICMPMatch | None = None
    # Rule metadata annotations, rendered as "k=v" comments (sorted by key).
    annotations: tuple[tuple[str, str], ...] = ()
    # Felix's rule_id is the rule's position-independent identity (unused by iptables rendering).
    rule_id: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class Policy:
    """An active policy (proto.Policy)."""

    namespace: str = ""
    inbound_rules: tuple[ParsedRule, ...] = ()
    outbound_rules: tuple[ParsedRule, ...] = ()
    untracked: bool = False
    pre_dnat: bool = False
    original_selector: str = ""
    perf_hints: tuple[str, ...] = ()
    tier: str = ""


@dataclass(frozen=True)
class Profile:
    inbound_rules: tuple[ParsedRule, ...] = ()
    outbound_rules: tuple[ParsedRule, ...] = ()


@cached_hash
@dataclass(frozen=True)
class TierInfo:
    """One tier of an endpoint's policy list, with the policies that apply per direction."""

    name: str
    ingress_policies: tuple[PolicyID, ...] = ()
    egress_policies: tuple[PolicyID, ...] = ()
    default_action: str = "Deny"


# --------------------------------------------------------------------------------------
# Endpoints.

@key_type
class WorkloadEndpointID:
    orchestrator: str
    workload: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class QoSControls:
    """A workload's limits (proto.QoSControls; DSCP is the endpoint's ``dscp``). Ingress
    is traffic to the workload, egress from it; zero means no limit. The packet-rate and
    connection limits are iptables rules (``rules.endpoints``); the bandwidth limits are
    tc token buckets (``qos_bandwidth``): bandwidth and peakrate in bits per second,
    burst in bits, minburst in bytes (zero: the interface's MTU)."""

    ingress_packet_rate: int = 0
    ingress_packet_burst: int = 0
    egress_packet_rate: int = 0
    egress_packet_burst: int = 0
    ingress_max_connections: int = 0
    egress_max_connections: int = 0
    ingress_bandwidth: int = 0
    ingress_burst: int = 0
    ingress_peakrate: int = 0
    ingress_minburst: int = 0
    egress_bandwidth: int = 0
    egress_burst: int = 0
    egress_peakrate: int = 0
    egress_minburst: int = 0


@dataclass(frozen=True)
class NatInfo:
    ext_ip: str
    int_ip: str


@fast_init
@dataclass(frozen=True, slots=True)
class WorkloadEndpoint:
    """A local workload endpoint as the dataplane sees it (proto.WorkloadEndpoint)."""

    name: str  # the host-side interface
    state: str = "active"
    mac: str = ""
    profile_ids: tuple[str, ...] = ()
    ipv4_nets: tuple[str, ...] = ()
    ipv6_nets: tuple[str, ...] = ()
    tiers: tuple[TierInfo, ...] = ()
    ipv4_nat: tuple[NatInfo, ...] = ()
    ipv6_nat: tuple[NatInfo, ...] = ()
    allow_spoofed_source_prefixes: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    qos_controls: QoSControls | None = None
    # The BGPPeer whose localWorkloadSelector picks this endpoint (the first by name of
    # those that apply to this node), for the endpoint status file confd reads.
    local_bgp_peer: str = ""
    # Felix's QoSPolicy: the DSCP value its traffic leaving the cluster is marked with.
    dscp: int | None = None
    # Live migration (Felix's LiveMigrationCalculator, proto LiveMigrationRole/Uid and
    # LiveMigrationVmiName): this endpoint's role in a LiveMigration in progress
    # (LIVE_MIGRATION_SOURCE, LIVE_MIGRATION_TARGET or "" for none), that LiveMigration's
    # metadata.uid, and the KubeVirt VMI name from the pod's labels (vmi.kubevirt.io/id,
    # else vm.kubevirt.io/name; "" for other workloads).
    live_migration_role: str = ""
    live_migration_uid: str = ""
    live_migration_vmi_name: str = ""


LIVE_MIGRATION_SOURCE = "source"
LIVE_MIGRATION_TARGET = "target"


@key_type
class HostEndpointID:
    endpoint_id: str


@dataclass(frozen=True)
class HostEndpoint:
    """A host endpoint of this host (proto.HostEndpoint). ``name`` is the interface name,
    ``*`` for all interfaces, or empty when it is matched by its expected IPs."""

    name: str = ""
    profile_ids: tuple[str, ...] = ()
    tiers: tuple[TierInfo, ...] = ()
    untracked_tiers: tuple[TierInfo, ...] = ()
    pre_dnat_tiers: tuple[TierInfo, ...] = ()
    forward_tiers: tuple[TierInfo, ...] = ()
    expected_ipv4_addrs: tuple[str, ...] = ()
    expected_ipv6_addrs: tuple[str, ...] = ()
    dscp: int | None = None  # as on WorkloadEndpoint


# --------------------------------------------------------------------------------------
# IP sets.

class IPSetType(enum.Enum):
    """proto.IPSetUpdate's types, valued by the ipset type they become."""

    IP = "hash:ip"
    IP_AND_PORT = "hash:ip,port"
    NET = "hash:net"


# --------------------------------------------------------------------------------------
# Pools, hosts, routes and tunnels.

@dataclass(frozen=True)
class IPAMPool:
    cidr: str
    masquerade: bool = False
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    allowed_uses: tuple[str, ...] = ("Workload", "Tunnel")


@dataclass(frozen=True)
class HostMetadata:
    hostname: str
    ipv4_addr: str = ""  # bare address (the Node's bgp.ipv4Address without its prefix length)
    ipv6_addr: str = ""
    asnumber: str = ""
    labels: tuple[tuple[str, str], ...] = ()


class RouteType(enum.IntFlag):
    CIDR_INFO = 0
    REMOTE_WORKLOAD = 1
    REMOTE_HOST = 2
    LOCAL_WORKLOAD = 4
    LOCAL_HOST = 8
    REMOTE_TUNNEL = 16
    LOCAL_TUNNEL = 32


class IPPoolType(enum.Enum):
    NONE = 0
    NO_ENCAP = 1
    VXLAN = 2
    IPIP = 3


@fast_init
@dataclass(frozen=True, slots=True)
class RouteUpdate:
    """What Felix's L3 route resolver knows about one CIDR (proto.RouteUpdate)."""

    dst: str
    types: RouteType = RouteType.CIDR_INFO
    ip_pool_type: IPPoolType = IPPoolType.NONE
    dst_node_name: str = ""
    dst_node_ip: str = ""
    same_subnet: bool = False
    nat_outgoing: bool = False
    local_workload: bool = False
    borrowed: bool = False


@dataclass(frozen=True)
class VXLANTunnelEndpoint:
    node: str
    mac: str = ""
    ipv4_addr: str = ""
    parent_device_ip: str = ""
    mac_v6: str = ""
    ipv6_addr: str = ""
    parent_device_ipv6: str = ""


# --------------------------------------------------------------------------------------
# The messages themselves. The calculation emits them in batches; a batch is a list.

@dataclass(frozen=True)
class ConfigUpdate:
    """The effective configuration changed (Felix restarts on most such changes)."""

    config: dict = field(hash=False, compare=True)


@dataclass(frozen=True)
class GlobalBGPConfig:
    """What the dataplane takes from BGPConfiguration ``default`` (Felix's
    GlobalBGPConfigUpdate): the advertised service CIDRs, which ServiceLoopPrevention
    blocks, and the host-side address of local-workload BGP sessions."""

    service_cluster_cidrs: tuple[str, ...] = ()
    service_external_cidrs: tuple[str, ...] = ()
    service_loadbalancer_cidrs: tuple[str, ...] = ()
    local_workload_peering_ipv4: str = ""
    local_workload_peering_ipv6: str = ""

    @property
    def service_cidrs(self) -> tuple[str, ...]:
        return self.service_cluster_cidrs + self.service_external_cidrs + self.service_loadbalancer_cidrs


@dataclass(frozen=True)
class GlobalBGPConfigUpdate:
    """BGPConfiguration ``default`` changed; an empty config when it went away."""

    config: GlobalBGPConfig


@dataclass(frozen=True)
class InSync:
    """The calculation has seen the whole datastore once (Felix's DataplaneInSync)."""


@dataclass(frozen=True)
class IPSetUpdate:
    id: str
    type: IPSetType
    members: frozenset[str]


@dataclass(frozen=True)
class IPSetDeltaUpdate:
    id: str
    added: frozenset[str]
    removed: frozenset[str]


@dataclass(frozen=True)
class IPSetRemove:
    id: str


@dataclass(frozen=True)
class ActivePolicyUpdate:
    id: PolicyID
    policy: Policy


@dataclass(frozen=True)
class ActivePolicyRemove:
    id: PolicyID


@dataclass(frozen=True)
class ActiveProfileUpdate:
    id: str  # the profile name
    profile: Profile


@dataclass(frozen=True)
class ActiveProfileRemove:
    id: str


@dataclass(frozen=True)
class WorkloadEndpointUpdate:
    id: WorkloadEndpointID
    endpoint: WorkloadEndpoint


@dataclass(frozen=True)
class WorkloadEndpointRemove:
    id: WorkloadEndpointID


@dataclass(frozen=True)
class HostEndpointUpdate:
    id: HostEndpointID
    endpoint: HostEndpoint


@dataclass(frozen=True)
class HostEndpointRemove:
    id: HostEndpointID


@dataclass(frozen=True)
class HostMetadataUpdate:
    host: HostMetadata


@dataclass(frozen=True)
class HostMetadataRemove:
    hostname: str


@dataclass(frozen=True)
class IPAMPoolUpdate:
    id: str  # the pool's CIDR with '/' replaced by '-', as Felix keys pools
    pool: IPAMPool


@dataclass(frozen=True)
class IPAMPoolRemove:
    id: str


@dataclass(frozen=True)
class RouteUpdateMsg:
    route: RouteUpdate


@dataclass(frozen=True)
class RouteRemove:
    dst: str


@dataclass(frozen=True)
class VXLANTunnelEndpointUpdate:
    vtep: VXLANTunnelEndpoint


@dataclass(frozen=True)
class VXLANTunnelEndpointRemove:
    node: str
