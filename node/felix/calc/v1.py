"""Felix's "v1" view of the datastore, as plain frozen data.

libcalico-go's felix syncer hands Felix converted values rather than the v3 resources:
policies with one combined selector per entity rule, endpoints with parsed networks and
their identity taken from the resource name, profiles split into rules and labels.  The
calculation works on this view (``convert`` builds it), so Felix's rules can be followed
field by field.  Everything is hashable so that "did it change?" is a plain ``==``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from node.felix.types import PolicyID, QoSControls, fast_init, key_type

# Policy metadata flags (Felix's policyMetadataFlags).
FLAG_DO_NOT_TRACK = 1
FLAG_PRE_DNAT = 2
FLAG_APPLY_ON_FORWARD = 4
FLAG_INGRESS = 8
FLAG_EGRESS = 16

Port = int | str  # a number, "first:last", or a port name


@fast_init
@dataclass(frozen=True, slots=True)
class Rule:
    """A rule after selector namespacing (libcalico-go's model.Rule)."""

    action: str
    ip_version: int | None = None
    protocol: int | str | None = None  # lower-case name or number
    icmp_type: int | None = None
    icmp_code: int | None = None
    not_protocol: int | str | None = None
    not_icmp_type: int | None = None
    not_icmp_code: int | None = None

    src_nets: tuple[str, ...] = ()
    src_selector: str = ""
    src_ports: tuple[Port, ...] = ()
    src_service: str = ""
    src_service_namespace: str = ""
    dst_nets: tuple[str, ...] = ()
    dst_selector: str = ""
    dst_ports: tuple[Port, ...] = ()
    dst_service: str = ""
    dst_service_namespace: str = ""

    not_src_nets: tuple[str, ...] = ()
    not_src_selector: str = ""
    not_src_ports: tuple[Port, ...] = ()
    not_dst_nets: tuple[str, ...] = ()
    not_dst_selector: str = ""
    not_dst_ports: tuple[Port, ...] = ()

    # The v3 selectors as written, kept because Felix validates them too.
    original_selectors: tuple[str, ...] = ()
    has_http_match: bool = False
    annotations: tuple[tuple[str, str], ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Policy:
    """A NetworkPolicy or GlobalNetworkPolicy (libcalico-go's model.Policy)."""

    id: PolicyID
    selector: str
    tier: str = "default"
    order: float | None = None
    namespace: str = ""
    inbound_rules: tuple[Rule, ...] = ()
    outbound_rules: tuple[Rule, ...] = ()
    types: tuple[str, ...] = ()  # lower-case
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False
    performance_hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProfileRules:
    inbound_rules: tuple[Rule, ...] = ()
    outbound_rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Tier:
    order: float | None
    default_action: str  # "Deny" or "Pass"


@dataclass(frozen=True)
class EndpointPort:
    name: str
    protocol: int | str  # lower-case name or number
    port: int


@key_type
class WorkloadEndpointKey:
    hostname: str
    orchestrator: str
    workload: str  # "<namespace>/<workload>"
    endpoint: str


@key_type
class HostEndpointKey:
    hostname: str
    endpoint_id: str


@key_type
class NetworkSetKey:
    name: str  # "<namespace>/<name>" for a NetworkSet, "<name>" for a GlobalNetworkSet


@fast_init
@dataclass(frozen=True, slots=True)
class WorkloadEndpoint:
    name: str  # the interface
    labels: tuple[tuple[str, str], ...] = ()
    profile_ids: tuple[str, ...] = ()
    mac: str = ""
    ipv4_nets: tuple[str, ...] = ()
    ipv6_nets: tuple[str, ...] = ()
    ipv4_nat: tuple[tuple[str, str], ...] = ()  # (external, internal)
    ipv6_nat: tuple[tuple[str, str], ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    allow_spoofed_source_prefixes: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    qos_controls: QoSControls | None = None
    dscp: int | None = None  # qosControls.dscp: egress traffic leaving the cluster is marked


@dataclass(frozen=True)
class HostEndpoint:
    name: str  # the interface, "*" or ""
    labels: tuple[tuple[str, str], ...] = ()
    profile_ids: tuple[str, ...] = ()
    expected_ipv4_addrs: tuple[str, ...] = ()
    expected_ipv6_addrs: tuple[str, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    dscp: int | None = None  # from the qos.projectcalico.org/dscp annotation


@dataclass(frozen=True)
class NetworkSet:
    nets: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    profile_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    """A Profile's two halves: rules (used while a local endpoint names it) and the labels
    it hands down to every endpoint naming it."""

    rules: ProfileRules = field(default_factory=ProfileRules)
    labels: tuple[tuple[str, str], ...] = ()
