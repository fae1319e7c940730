"""The resource kinds the node reads or writes, and what each one is called.

One ``KindInfo`` per kind: its spec/status structs, whether it is namespaced, the plural
used in etcd keys, the names calicoctl accepts on the command line, and the columns
``calicoctl get`` prints for it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from node.model import validators as v

API_VERSION = "projectcalico.org/v3"

Column = tuple[str, Callable[[dict], str]]


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    namespaced: bool
    spec: str
    aliases: tuple[str, ...]
    status: str | None = None
    status_pointer: bool = False
    name_pattern: re.Pattern = v.NAME_RE
    columns: tuple[Column, ...] = ()
    wide_columns: tuple[Column, ...] = ()
    # Kinds not stored under /calico/resources/v3 (BlockAffinity lives in IPAM keys).
    v3_storage: bool = True
    extra: dict = field(default_factory=dict)


def _part(res: Any, key: str) -> dict:
    """``res[key]`` when it is a mapping, else {}: columns never fail on a foreign shape."""
    value = res.get(key) if isinstance(res, dict) else None
    return value if isinstance(value, dict) else {}


def _spec(*path: str, default: str = "") -> Callable[[dict], str]:
    def get(res: dict) -> str:
        cur: Any = _part(res, "spec")
        for p in path:
            if not isinstance(cur, dict) or p not in cur:
                return default
            cur = cur[p]
        return _text(cur)
    return get


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(_text(x) for x in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_text(x)}" for k, x in value.items())
    return str(value)


def _truncated(get: Callable[[dict], str], limit: int) -> Callable[[dict], str]:
    """calicoctl's joinAndTruncate: past ``limit`` characters, cut and end with "..."."""
    def column(res: dict) -> str:
        text = get(res)
        return text if len(text) <= limit else text[:limit - 3] + "..."
    return column


def _name(res: dict) -> str:
    return _text(_part(res, "metadata").get("name", ""))


def _namespace(res: dict) -> str:
    return _text(_part(res, "metadata").get("namespace", ""))


def _bool_or_dash(*path: str) -> Callable[[dict], str]:
    get = _spec(*path)
    return lambda res: get(res) or "-"


def _peer_node(res: dict) -> str:
    spec = _part(res, "spec")
    if spec.get("node"):
        return _text(spec["node"])
    return _text(spec.get("nodeSelector")) or "(global)"


def _node_asn(res: dict) -> str:
    bgp = _part(res, "spec").get("bgp")
    if not isinstance(bgp, dict) or not bgp:
        return ""
    return _text(bgp["asNumber"]) if "asNumber" in bgp else "(64512)"


def _len(*path: str) -> Callable[[dict], str]:
    def count(res: dict) -> str:
        value = _part(res, "spec").get(path[0])
        return str(len(value)) if isinstance(value, list) else "0"
    return count


def _workload(res: dict) -> str:
    spec = _part(res, "spec")
    return _text(spec.get("workload") or spec.get("pod", ""))


def _go_label_selector(sel: Any) -> str:
    """A metav1.LabelSelector as calicoctl's table template prints it: through the
    String() method Kubernetes generates for its API types, e.g.
    ``&LabelSelector{MatchLabels:map[string]string{app: web,},MatchExpressions:[]...{},}``."""
    sel = sel if isinstance(sel, dict) else {}
    labels = sel.get("matchLabels") if isinstance(sel.get("matchLabels"), dict) else {}
    exprs = sel.get("matchExpressions") if isinstance(sel.get("matchExpressions"), list) else []
    pairs = "".join(f"{k}: {_text(labels[k])}," for k in sorted(labels))
    reqs = ""
    for e in exprs:
        e = e if isinstance(e, dict) else {}
        values = e.get("values") if isinstance(e.get("values"), list) else []
        reqs += (f"LabelSelectorRequirement{{Key:{_text(e.get('key'))},Operator:{_text(e.get('operator'))},"
                 f"Values:[{' '.join(_text(x) for x in values)}],}},")
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{pairs}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{reqs}}},}}")


NAME = ("NAME", _name)
NAMESPACE = ("NAMESPACE", _namespace)

KINDS: dict[str, KindInfo] = {}


def _register(info: KindInfo) -> None:
    KINDS[info.kind] = info


_register(KindInfo(
    "Node", "nodes", False, "NodeSpec", ("node", "nodes", "no", "nos"),
    status="NodeStatus",
    columns=(NAME,),
    wide_columns=(NAME, ("ASN", _node_asn), ("IPV4", _spec("bgp", "ipv4Address")),
                  ("IPV6", _spec("bgp", "ipv6Address"))),
))
_register(KindInfo(
    "IPPool", "ippools", False, "IPPoolSpec", ("ippool", "ippools", "ipp", "ipps", "pool", "pools"),
    status="IPPoolStatus", status_pointer=True,
    columns=(NAME, ("CIDR", _spec("cidr")), ("SELECTOR", _spec("nodeSelector"))),
    wide_columns=(NAME, ("CIDR", _spec("cidr")), ("NAT", _spec("natOutgoing", default="false")),
                  ("IPIPMODE", _spec("ipipMode", default="Never")),
                  ("VXLANMODE", _spec("vxlanMode", default="Never")),
                  ("DISABLED", _spec("disabled", default="false")),
                  ("DISABLEBGPEXPORT", _spec("disableBGPExport", default="false")),
                  ("SELECTOR", _spec("nodeSelector")), ("ASSIGNMENTMODE", _spec("assignmentMode"))),
))
_register(KindInfo(
    "BGPConfiguration", "bgpconfigurations", False, "BGPConfigurationSpec",
    ("bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"),
    columns=(NAME, ("LOGSEVERITY", _spec("logSeverityScreen")),
             ("MESHENABLED", _bool_or_dash("nodeToNodeMeshEnabled")), ("ASNUMBER", _bool_or_dash("asNumber"))),
))
_register(KindInfo(
    "BGPPeer", "bgppeers", False, "BGPPeerSpec", ("bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"),
    columns=(NAME, ("PEERIP", _spec("peerIP")), ("NODE", _peer_node), ("ASN", _spec("asNumber", default="0"))),
))
_register(KindInfo(
    "BGPFilter", "bgpfilters", False, "BGPFilterSpec",
    ("bgpfilter", "bgpfilters", "bgpf", "bgpfs", "bf", "bfs"),
    columns=(NAME, ("NUMEXPORTV4", _len("exportV4")), ("NUMIMPORTV4", _len("importV4")),
             ("NUMEXPORTV6", _len("exportV6")), ("NUMIMPORTV6", _len("importV6"))),
))
_register(KindInfo(
    "FelixConfiguration", "felixconfigurations", False, "FelixConfigurationSpec",
    ("felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"),
    columns=(NAME,),
))
_register(KindInfo(
    "ClusterInformation", "clusterinformations", False, "ClusterInformationSpec",
    ("clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"),
    columns=(NAME, ("CLUSTERGUID", _spec("clusterGUID")), ("CLUSTERTYPE", _spec("clusterType")),
             ("CALICOVERSION", _spec("calicoVersion")), ("DATASTOREREADY", _spec("datastoreReady"))),
))
_register(KindInfo(
    "WorkloadEndpoint", "workloadendpoints", True, "WorkloadEndpointSpec",
    ("workloadendpoint", "workloadendpoints", "wep", "weps"),
    columns=(("WORKLOAD", _workload), ("NODE", _spec("node")), ("NETWORKS", _spec("ipNetworks")),
             ("INTERFACE", _spec("interfaceName"))),
    wide_columns=(NAME, ("WORKLOAD", _workload), ("NODE", _spec("node")), ("NETWORKS", _spec("ipNetworks")),
                  ("INTERFACE", _spec("interfaceName")), ("PROFILES", _spec("profiles")),
                  ("NATS", _spec("ipNATs"))),
))
_register(KindInfo(
    "HostEndpoint", "hostendpoints", False, "HostEndpointSpec", ("hostendpoint", "hostendpoints", "hep", "heps"),
    columns=(NAME, ("NODE", _spec("node"))),
    wide_columns=(NAME, ("NODE", _spec("node")), ("INTERFACE", _spec("interfaceName")),
                  ("IPS", _spec("expectedIPs")), ("PROFILES", _spec("profiles"))),
))
_register(KindInfo(
    "NetworkPolicy", "networkpolicies", True, "NetworkPolicySpec",
    ("networkpolicy", "networkpolicies", "policy", "np", "policies", "pol", "pols"),
    name_pattern=v.NETWORK_POLICY_NAME_RE,
    columns=(NAME, ("TIER", _spec("tier", default="default"))),
    wide_columns=(NAME, ("TIER", _spec("tier", default="default")), ("ORDER", _spec("order")),
                  ("SELECTOR", _spec("selector"))),
))
# v3.32's KubernetesNetworkPolicy: a Kubernetes NetworkPolicy as the policy agent enforces
# it. Only the Kubernetes datastore has these (converted from networking.k8s.io objects);
# they are read-only here.
_register(KindInfo(
    "KubernetesNetworkPolicy", "kubernetesnetworkpolicies", True, "NetworkPolicySpec",
    ("kubernetesnetworkpolicy", "kubernetesnetworkpolicies", "knp", "knps"),
    name_pattern=v.NAME_RE,
    columns=(NAME, ("TIER", _spec("tier", default="default"))),
    wide_columns=(NAME, ("TIER", _spec("tier", default="default")), ("ORDER", _spec("order")),
                  ("SELECTOR", _spec("selector"))),
    extra={"read_only": "Kubernetes NetworkPolicies are read-only here; change them through the Kubernetes API"},
))
# A Kubernetes ClusterNetworkPolicy (policy.networking.k8s.io) as the policy agent enforces
# it, in the kube-admin or kube-baseline tier. Only the Kubernetes datastore has these;
# like Calico's calicoctl, ours has no command for them (no aliases, not_in_calicoctl).
_register(KindInfo(
    "KubernetesClusterNetworkPolicy", "kubernetesclusternetworkpolicies", False, "GlobalNetworkPolicySpec", (),
    name_pattern=v.NAME_RE,
    extra={"read_only": "Kubernetes ClusterNetworkPolicies are read-only here; change them through the Kubernetes API",
           "not_in_calicoctl": True},
))
# libcalico-go's internal LiveMigration: a workload's live migration in progress, which the
# policy agent follows. Namespaced, stored like any namespaced v3 resource in etcd (where
# an orchestrator such as OpenStack's writes it); the Kubernetes datastore has it read-only,
# converted from KubeVirt's VirtualMachineInstanceMigrations (no Calico CRD). An internal
# kind, so calicoctl has no command for it, as in Calico (no aliases, not_in_calicoctl).
_register(KindInfo(
    "LiveMigration", "livemigrations", True, "LiveMigrationSpec", (),
    name_pattern=v.NAME_RE,
    extra={"not_in_calicoctl": True},
))
_register(KindInfo(
    "GlobalNetworkPolicy", "globalnetworkpolicies", False, "GlobalNetworkPolicySpec",
    ("globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps"),
    name_pattern=v.GLOBAL_NETWORK_POLICY_NAME_RE,
    columns=(NAME, ("TIER", _spec("tier", default="default"))),
    wide_columns=(NAME, ("TIER", _spec("tier", default="default")), ("ORDER", _spec("order")),
                  ("SELECTOR", _spec("selector"))),
))
# Staged policies: what a policy would do, recorded without enforcing it.
_register(KindInfo(
    "StagedNetworkPolicy", "stagednetworkpolicies", True, "StagedNetworkPolicySpec",
    ("stagednetworkpolicy", "stagednetworkpolicies", "stagedpolicy", "snp", "stagedpolicies", "spol", "spols"),
    name_pattern=v.NETWORK_POLICY_NAME_RE,
    columns=(NAME, ("TIER", _spec("tier", default="default"))),
    wide_columns=(NAME, ("TIER", _spec("tier", default="default")), ("ORDER", _spec("order")),
                  ("SELECTOR", _spec("selector"))),
))
_register(KindInfo(
    "StagedGlobalNetworkPolicy", "stagedglobalnetworkpolicies", False, "StagedGlobalNetworkPolicySpec",
    ("stagedglobalnetworkpolicy", "stagedglobalnetworkpolicies", "sgnp", "sgnps"),
    name_pattern=v.GLOBAL_NETWORK_POLICY_NAME_RE,
    columns=(NAME, ("TIER", _spec("tier", default="default"))),
    wide_columns=(NAME, ("TIER", _spec("tier", default="default")), ("ORDER", _spec("order")),
                  ("SELECTOR", _spec("selector"))),
))
_register(KindInfo(
    "StagedKubernetesNetworkPolicy", "stagedkubernetesnetworkpolicies", True, "StagedKubernetesNetworkPolicySpec",
    ("stagedkubernetesnetworkpolicy", "stagedkubernetesnetworkpolicies", "stagedkubernetespolicy", "sknp",
     "stagedkubernetespolicies", "skpol", "skpols"),
    columns=(NAME,),
    wide_columns=(NAME, ("PODSELECTOR", lambda res: _go_label_selector(_part(res, "spec").get("podSelector")))),
))
_register(KindInfo(
    "Profile", "profiles", False, "ProfileSpec", ("profile", "profiles", "pro", "pros"),
    columns=(NAME,),
    wide_columns=(NAME, ("LABELS", _spec("labelsToApply"))),
))
_register(KindInfo(
    "Tier", "tiers", False, "TierSpec", ("tier", "tiers"),
    status="TierStatus",
    name_pattern=v.TIER_NAME_RE,
    columns=(NAME, ("ORDER", _spec("order"))),
))
_register(KindInfo(
    "IPAMConfiguration", "ipamconfigurations", False, "IPAMConfigurationSpec",
    ("ipamconfiguration", "ipamconfigurations", "ipamconfig", "ipamconfigs"),
    columns=(NAME, ("STRICTAFFINITY", _spec("strictAffinity", default="false")),
             ("AUTOALLOCATEBLOCKS", _spec("autoAllocateBlocks", default="false"))),
))
_register(KindInfo(
    "IPReservation", "ipreservations", False, "IPReservationSpec",
    ("ipreservation", "ipreservations", "reservation", "reservations"),
    columns=(NAME,),
    wide_columns=(NAME, ("CIDRS", _spec("reservedCIDRs"))),
))
_register(KindInfo(
    "BlockAffinity", "blockaffinities", False, "BlockAffinitySpec",
    ("blockaffinity", "blockaffinities", "affinity", "affinities"),
    columns=(NAME, ("NODE", _spec("node")), ("CIDR", _spec("cidr")), ("STATE", _spec("state"))),
    v3_storage=False,
))

_register(KindInfo(
    "GlobalNetworkSet", "globalnetworksets", False, "GlobalNetworkSetSpec",
    ("globalnetworkset", "globalnetworksets", "gnetsets"),
    columns=(NAME,),
    wide_columns=(NAME, ("NETS", _truncated(_spec("nets"), 80))),
))
_register(KindInfo(
    "NetworkSet", "networksets", True, "NetworkSetSpec", ("networkset", "networksets", "netsets"),
    columns=(NAME,),
    wide_columns=(NAME, ("NETS", _truncated(_spec("nets"), 80))),
))
_register(KindInfo(
    "KubeControllersConfiguration", "kubecontrollersconfigurations", False, "KubeControllersConfigurationSpec",
    ("kubecontrollersconfiguration", "kubecontrollersconfigurations", "kubecontrollersconfig",
     "kubecontrollersconfigs"),
    status="KubeControllersConfigurationStatus",
    columns=(NAME,),
))
_register(KindInfo(
    "CalicoNodeStatus", "caliconodestatuses", False, "CalicoNodeStatusSpec",
    ("caliconodestatus", "caliconodestatuses", "nodestatus", "nodestatuses"),
    status="CalicoNodeStatusStatus",
    columns=(NAME, ("NODE", _spec("node"))),
    wide_columns=(NAME, ("NODE", _spec("node")), ("CLASSES", _spec("classes"))),
))

_ALIASES = {alias: info.kind for info in KINDS.values() for alias in info.aliases}


class UnknownKind(ValueError):
    pass


def kind_info(name: str) -> KindInfo:
    """Look a kind up by its kind name (any case), plural or short name, as calicoctl does."""
    if name in KINDS:
        return KINDS[name]
    lower = name.lower()
    for info in KINDS.values():
        if info.kind.lower() == lower:
            return info
    if lower in _ALIASES:
        return KINDS[_ALIASES[lower]]
    raise UnknownKind(f"resource type '{name}' is not supported")
