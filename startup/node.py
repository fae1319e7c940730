"""This host's Node resource: addresses, AS number, orchestrator reference, and its write.

``desired_node`` reads the stored Node (or starts a new one) and applies the
environment to a copy; ``ensure_node`` writes it only when it differs from what is
stored, with optimistic concurrency: a conflicting write re-reads and recomputes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from node.datastore.client import DatastoreClient
from node.errors import AlreadyExists, CalicoError, Conflict, NotFound
from node.model import Resource, validate_resource
from node.model.schema import Collector, canonical_struct
from startup.asnumber import parse_as_number
from startup.autodetect import HostView
from startup.env import policy_only
from startup.ipconfig import IPConfigError, configure_ips, find_conflicts
from startup.logs import Fatal

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 5


def new_node(name: str) -> Resource:
    return Resource("Node", {"name": name}, {}, {})


def get_node(client: DatastoreClient, name: str) -> Resource | None:
    """The stored Node, or None when there is none yet; other errors are fatal."""
    try:
        return client.get("Node", name)
    except NotFound:
        log.info("Building new node resource Name=%s", name)
        return None
    except CalicoError as exc:
        log.info("Unable to query node configuration Name=%s error=%s", name, exc)
        raise Fatal("Unable to access datastore to query node configuration") from None


def canonical(node: Resource) -> Resource:
    """Go's field order and omission rules, with an empty BGP section removed."""
    spec = dict(node.spec)
    if spec.get("bgp") == {}:
        spec.pop("bgp")
    node.spec = canonical_struct(spec, "NodeSpec", "spec", Collector(), strict=False)
    return node


def clear_node_ips(client: DatastoreClient, node: Resource, clear4: bool, clear6: bool) -> None:
    """Drop stale autodetected addresses from a stored Node so another node may take them."""
    bgp = node.spec.get("bgp") or {}
    if clear4:
        log.info("Clearing out-of-date IPv4 address from this node IP=%s", bgp.get("ipv4Address", ""))
        bgp.pop("ipv4Address", None)
    if clear6:
        log.info("Clearing out-of-date IPv6 address from this node IP=%s", bgp.get("ipv6Address", ""))
        bgp.pop("ipv6Address", None)
    if not (clear4 or clear6):
        return
    try:
        client.update(canonical(node))
    except CalicoError as exc:
        log.warning("Failed to clear node addresses error=%s", exc)


def configure_addresses(client: DatastoreClient, node: Resource, env: Mapping[str, str], host: HostView,
                        k8s_node: Mapping[str, Any] | None) -> bool:
    """Apply IP/IP6 to ``node`` in place and check for conflicts; True if they changed.

    Raises IPConfigError. On failure for a Node that is already stored, addresses that
    were being autodetected are cleared from it (in the datastore too).
    """
    if policy_only(env):
        return False
    auto4, auto6 = env.get("IP") == "autodetect", env.get("IP6") == "autodetect"
    try:
        changed = configure_ips(node.spec, env, host, k8s_node)
    except IPConfigError as exc:
        if node.resource_version:
            clear_node_ips(client, node, auto4, auto6)
        raise IPConfigError(f"failed to configure IP addresses and subnets: {exc}") from None
    bgp = node.spec["bgp"]
    if not bgp.get("ipv4Address") and not bgp.get("ipv6Address"):
        raise IPConfigError("no IPv4 or IPv6 addresses configured or detected, required for Calico networking")
    if changed and env.get("DISABLE_NODE_IP_CHECK") != "true":
        try:
            others = client.list("Node")
        except CalicoError as exc:
            log.error("Unable to query node configuration error=%s", exc)
            raise IPConfigError(f"conflicting node detected: {exc}") from None
        try:
            v4, v6, error = find_conflicts(node.name, node.spec, others)
        except IPConfigError as exc:
            raise IPConfigError(f"conflicting node detected: {exc}") from None
        if error:
            if node.resource_version:
                clear_node_ips(client, node, auto4 and v4, auto6 and v6)
            raise IPConfigError(f"conflicting node detected: {error}")
    return changed


def configure_as_number(node: Resource, env: Mapping[str, str]) -> bool:
    """AS from the environment onto the Node; True when set. Invalid values are fatal."""
    if policy_only(env):
        return False
    text = env.get("AS", "")
    bgp = node.spec.setdefault("bgp", {})
    if text:
        try:
            asn = parse_as_number(text)
        except ValueError as exc:
            raise Fatal(f"The AS number specified in the environment (AS={text}) is not valid error={exc}") from None
        log.info("Using AS number specified in environment (AS=%d)", asn)
        bgp["asNumber"] = asn
        return True
    if bgp.get("asNumber") is None:
        log.info("No AS number configured on node resource, using global value")
    else:
        log.info("Using AS number %s configured in node resource", bgp["asNumber"])
    return False


def configure_orch_ref(node: Resource, env: Mapping[str, str]) -> bool:
    """CALICO_K8S_NODE_REF names the Kubernetes Node this Calico Node belongs to."""
    ref = env.get("CALICO_K8S_NODE_REF", "")
    if not ref:
        return False
    node.spec["orchRefs"] = [{"nodeName": ref, "orchestrator": "k8s"}]
    return True


@dataclass
class NodePlan:
    current: Resource | None  # as stored (None: no Node yet)
    desired: Resource
    marked: bool  # something asked for the Node to be written

    @property
    def needs_write(self) -> bool:
        if self.current is None:
            return self.marked
        return self.desired.spec != self.current.spec


def desired_node(client: DatastoreClient, name: str, env: Mapping[str, str], host: HostView,
                 k8s_node: Mapping[str, Any] | None) -> NodePlan:
    current = get_node(client, name)
    node = current.copy() if current is not None else new_node(name)
    try:
        marked = configure_addresses(client, node, env, host, k8s_node)
    except IPConfigError as exc:
        raise Fatal(f"Failed to configure IP addresses error={exc}") from None
    marked = configure_as_number(node, env) or marked
    marked = configure_orch_ref(node, env) or marked
    node = canonical(node)
    try:
        # Checked now so that an invalid Node (a bad NODENAME, say) stops startup before
        # anything at all is written.
        validate_resource(node)
    except CalicoError as exc:
        raise Fatal(f"Unable to set node resource configuration error={exc}") from None
    return NodePlan(current, node, marked)


def write_node(client: DatastoreClient, plan: NodePlan, on_create=None) -> Resource | None:
    """Create or update as the plan says; None when nothing needed writing.

    ``on_create`` runs before a create (startup initialises the datastore there, as
    libcalico-go's Node create does). Conflict and AlreadyExists propagate.
    """
    if not plan.needs_write:
        log.debug("Node %s is up to date", plan.desired.name)
        return None
    if plan.current is None:
        if on_create is not None:
            on_create()
        return client.create(plan.desired)
    return client.update(plan.desired)


def ensure_node(client: DatastoreClient, name: str, env: Mapping[str, str], host: HostView,
                k8s_node: Mapping[str, Any] | None, on_create=None,
                first_plan: NodePlan | None = None) -> NodePlan:
    """Compute and write the Node, re-reading and recomputing when another writer got there first."""
    plan = first_plan or desired_node(client, name, env, host, k8s_node)
    attempt = 1
    while True:
        try:
            write_node(client, plan, on_create)
            return plan
        except (Conflict, AlreadyExists) as exc:
            if attempt >= WRITE_ATTEMPTS:
                raise Fatal(f"Unable to set node resource configuration error={exc}") from None
            log.info("Node %s changed while we were updating it; re-reading (%s)", name, exc)
        except CalicoError as exc:
            raise Fatal(f"Unable to set node resource configuration error={exc}") from None
        attempt += 1
        plan = desired_node(client, name, env, host, k8s_node)
