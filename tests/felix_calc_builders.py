"""Resource builders for the policy-agent calculation tests (no tests of its own)."""
from __future__ import annotations

from node.datastore.syncer import Update, UpdateType
from node.felix.calc.offline import resource_key
from node.model import Resource

LOCAL = "node1"
REMOTE = "node2"


def wep_name(node: str, pod: str, orchestrator: str = "k8s", endpoint: str = "eth0") -> str:
    return "-".join(p.replace("-", "--") for p in (node, orchestrator, pod, endpoint))


def wep(pod: str, ns: str = "ns1", node: str = LOCAL, ips=("10.65.0.1/32",), labels=None,
        profiles=None, iface: str | None = None, sa: str = "", ports=(), **spec) -> Resource:
    """A Kubernetes-style workload endpoint (labels as the CNI plugin writes them)."""
    all_labels = {"projectcalico.org/namespace": ns, "projectcalico.org/orchestrator": "k8s"}
    all_labels.update(labels or {})
    body = {"orchestrator": "k8s", "node": node, "pod": pod, "endpoint": "eth0",
            "ipNetworks": list(ips), "profiles": list(profiles if profiles is not None else [f"kns.{ns}"]),
            "interfaceName": ("cali" + pod)[:15] if iface is None else iface, "ports": list(ports)}
    if sa:
        body["serviceAccountName"] = sa
    body.update(spec)
    return Resource("WorkloadEndpoint", {"name": wep_name(node, pod), "namespace": ns, "labels": all_labels}, body)


def hep(name: str, node: str = LOCAL, iface: str = "eth0", ips=(), labels=None, profiles=(), **spec) -> Resource:
    body = {"node": node, "interfaceName": iface, "expectedIPs": list(ips), "profiles": list(profiles)}
    body.update(spec)
    return Resource("HostEndpoint", {"name": name, "labels": dict(labels or {})}, body)


def gnp(name: str, **spec) -> Resource:
    return Resource("GlobalNetworkPolicy", {"name": name}, spec)


def np(name: str, ns: str = "ns1", **spec) -> Resource:
    return Resource("NetworkPolicy", {"name": name, "namespace": ns}, spec)


def tier(name: str, order=None, action: str | None = None) -> Resource:
    spec = {}
    if order is not None:
        spec["order"] = order
    if action is not None:
        spec["defaultAction"] = action
    return Resource("Tier", {"name": name}, spec)


def profile(name: str, ingress=(), egress=(), labels=None) -> Resource:
    spec = {"ingress": list(ingress), "egress": list(egress)}
    if labels:
        spec["labelsToApply"] = dict(labels)
    return Resource("Profile", {"name": name}, spec)


def ns_profile(ns: str, labels=None) -> Resource:
    """The profile a Kubernetes namespace becomes."""
    lab = {f"pcns.{k}": v for k, v in (labels or {}).items()}
    lab["pcns.projectcalico.org/name"] = ns
    return profile(f"kns.{ns}", [{"action": "Allow"}], [{"action": "Allow"}], lab)


def netset(name: str, ns: str, nets, labels=None) -> Resource:
    return Resource("NetworkSet", {"name": name, "namespace": ns, "labels": dict(labels or {})}, {"nets": list(nets)})


def gnetset(name: str, nets, labels=None) -> Resource:
    return Resource("GlobalNetworkSet", {"name": name, "labels": dict(labels or {})}, {"nets": list(nets)})


def pool(name: str, cidr: str, **spec) -> Resource:
    return Resource("IPPool", {"name": name}, {"cidr": cidr, **spec})


def node(name: str, ipv4: str = "", labels=None, **spec) -> Resource:
    body = dict(spec)
    if ipv4:
        body["bgp"] = {"ipv4Address": ipv4}
    return Resource("Node", {"name": name, "labels": dict(labels or {})}, body)


def bgp_peer(name: str, selector: str | None = None, node: str = "", node_selector: str | None = None,
             **spec) -> Resource:
    """A BGPPeer; ``selector`` is its localWorkloadSelector. As Calico's validation
    requires, a peer with a selector has an AS number and no peerIP (it peers with the
    workloads it picks); one without gets a peerIP, as an ordinary peer has."""
    body = {"asNumber": 64512}
    if not selector:
        body["peerIP"] = "10.0.0.9"
    if node:
        body["node"] = node
    if node_selector is not None:
        body["nodeSelector"] = node_selector
    if selector is not None:
        body["localWorkloadSelector"] = selector
    body.update(spec)
    return Resource("BGPPeer", {"name": name}, body)


def live_migration(name: str, source: dict | None = None, target: dict | None = None, uid: str | None = None,
                   ns: str = "default") -> Resource:
    """A LiveMigration; ``source``/``target`` are its spec's source and target as written."""
    meta = {"name": name, "namespace": ns}
    if uid is not None:
        meta["uid"] = uid
    spec = {}
    if source is not None:
        spec["source"] = source
    if target is not None:
        spec["target"] = target
    return Resource("LiveMigration", meta, spec)


def felix_config(name: str, **spec) -> Resource:
    return Resource("FelixConfiguration", {"name": name}, spec)


def put(*resources: Resource) -> list[Update]:
    return [Update(UpdateType.UPDATED, resource_key(r), r, 1) for r in resources]


def delete(*resources: Resource) -> list[Update]:
    return [Update(UpdateType.DELETED, resource_key(r), r, 1) for r in resources]
