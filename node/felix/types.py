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


@cached_hash
@dataclass(frozen=True, order=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class TierInfo:
    """One tier of an endpoint's policy list, with the policies that apply per direction."""

    name: str
    ingress_policies: tuple[PolicyID, ...] = ()
    egress_policies: tuple[PolicyID, ...] = ()
    default_action: str = "Deny"


# --------------------------------------------------------------------------------------
# Endpoints.

@cached_hash
@dataclass(frozen=True, order=True)
class WorkloadEndpointID:
    orchestrator: str
    workload: str
    endpoint: str


@dataclass(frozen=True)
class NatInfo:
    ext_ip: str
    int_ip: str


@dataclass(frozen=True)
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


@cached_hash
@dataclass(frozen=True, order=True)
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


@dataclass(frozen=True)
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
