"""What the calculation graph counts for Felix's metrics, as plain data (no Prometheus).

* ``update_key_type`` -- the libcalico-go model key type Felix's syncer hands its
  calculation graph for a datastore update: the ``type`` label of
  felix_calc_graph_updates_processed.
* ``message_type`` -- the protobuf type name of a calculation output message: the
  ``type`` label of felix_int_dataplane_messages.
* ``ClusterCounts`` -- Felix's StatsCollector (felix_cluster_num_hosts,
  ..._workload_endpoints, ..._host_endpoints), kept by the graph as keys come and go.
* ``CalcStats`` -- every felix_active_local_* and felix_cluster_num_* value at one moment.

The metrics module reads these; nothing here imports prometheus_client, so the graph can
keep its counts whether or not metrics are on (they change only when an endpoint, Node or
per-host FelixConfiguration comes or goes).
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import NamedTuple

from node.datastore.syncer import Update
from node.felix import types as t
from node.felix.calc import v1
from node.felix.calc.routes import BLOCK_PREFIX
from node.model import Resource, parse_etcd_key

# The key type each kind's update processor gives Felix (libcalico-go's felixsyncer at
# v3.32.1). Felix counts every v1 key that changed; the syncer splits some kinds into
# several keys -- a Node into HostIPKey, five HostConfigKeys, a WireguardKey and a
# ResourceKey; a Profile into ProfileLabelsKey, ProfileRulesKey and a ResourceKey;
# FelixConfiguration ``default``/``node.<host>`` and ClusterInformation into one
# GlobalConfigKey/HostConfigKey (ReadyFlagKey for datastoreReady) per field. Here each
# update counts once, under the key that changes with every update of the resource
# (ResourceKey for Node and Profile) or, for configuration, the key kind its fields take.
_KEY_TYPES = {
    "WorkloadEndpoint": "WorkloadEndpointKey",
    "HostEndpoint": "HostEndpointKey",
    "GlobalNetworkPolicy": "PolicyKey",
    "StagedGlobalNetworkPolicy": "PolicyKey",
    "NetworkPolicy": "PolicyKey",
    "StagedNetworkPolicy": "PolicyKey",
    "StagedKubernetesNetworkPolicy": "PolicyKey",
    "KubernetesNetworkPolicy": "PolicyKey",
    "KubernetesClusterNetworkPolicy": "PolicyKey",
    "Tier": "TierKey",
    "Profile": "ResourceKey",
    "NetworkSet": "NetworkSetKey",
    "GlobalNetworkSet": "NetworkSetKey",
    "IPPool": "IPPoolKey",
    "Node": "ResourceKey",
    "ClusterInformation": "GlobalConfigKey",
    # Kinds without an update processor reach Felix as v3 ResourceKeys: BGPConfiguration,
    # BGPPeer, LiveMigration (and, below, the Kubernetes objects).
}
RESOURCE_KEY = "ResourceKey"
BLOCK_KEY = "BlockKey"


def update_key_type(update: Update) -> str:
    """The model key type name Felix counts ``update`` under."""
    key = update.key
    value = update.value
    if isinstance(value, Resource):
        kind, name = value.kind, value.name
    elif key.startswith(BLOCK_PREFIX):
        return BLOCK_KEY
    else:
        parsed = parse_etcd_key(key)  # a deletion without its value, or a Kubernetes object
        if parsed is None:
            return RESOURCE_KEY
        kind, name = parsed[0], parsed[2]
    if kind == "FelixConfiguration":
        if name == "default":
            return "GlobalConfigKey"
        return "HostConfigKey" if name.startswith("node.") else RESOURCE_KEY  # (selector-scoped: whole)
    return _KEY_TYPES.get(kind, RESOURCE_KEY)


def count_key_types(updates: Iterable[Update], counts: dict[str, int] | None = None) -> dict[str, int]:
    """``counts`` (a new dict when not given) with one more for each update's key type."""
    counts = {} if counts is None else counts
    for update in updates:
        key_type = update_key_type(update)
        counts[key_type] = counts.get(key_type, 0) + 1
    return counts


# Felix's protobuf names where ours differ. Our HostMetadataUpdate carries both families,
# the AS number and the labels: Felix's HostMetadataV4V6Update (Felix also sends a
# HostMetadataUpdate and a HostMetadataV6Update for the addresses alone, which have no
# counterpart here).
_MESSAGE_NAMES: dict[type, str] = {
    t.RouteUpdateMsg: "RouteUpdate",
    t.HostMetadataUpdate: "HostMetadataV4V6Update",
    t.HostMetadataRemove: "HostMetadataV4V6Remove",
}


def message_type(message: object) -> str:
    """The protobuf type name Felix's dataplane counts ``message`` under."""
    cls = type(message)
    name = _MESSAGE_NAMES.get(cls)
    if name is None:
        name = _MESSAGE_NAMES[cls] = cls.__name__
    return name


def count_message_types(messages: Iterable[object]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages:
        name = message_type(message)
        counts[name] = counts.get(name, 0) + 1
    return counts


class ClusterCounts:
    """Felix's StatsCollector: the cluster's workload and host endpoints, and its hosts.

    A host counts while some key names it: one of its endpoints, its Node when that gives
    Felix a HostIPKey or HostConfigKey (an IPv4 address, a tunnel address or VXLAN MAC),
    or a ``node.<host>`` FelixConfiguration with a field set. Endpoints count once valid
    (Felix's validation filter passes an invalid new endpoint on without its value, which
    its collector still counts)."""

    __slots__ = ("workload_endpoints", "host_endpoints", "_keys_by_host", "_sources")

    def __init__(self) -> None:
        self.workload_endpoints = 0
        self.host_endpoints = 0
        self._keys_by_host: dict[str, int] = {}
        self._sources: set[tuple[str, str]] = set()  # (source, host): a Node's or config's keys

    @property
    def hosts(self) -> int:
        return len(self._keys_by_host)

    def endpoint_moved(self, old: Hashable | None, new: Hashable | None) -> None:
        """An endpoint's key changed (None: it has none, being gone or invalid). Called
        for every endpoint of the cluster at a resync, hence inlined."""
        hosts = self._keys_by_host
        for key, delta in ((old, -1), (new, 1)):
            cls = type(key)
            if cls is v1.WorkloadEndpointKey:
                self.workload_endpoints += delta
            elif cls is v1.HostEndpointKey:
                self.host_endpoints += delta
            else:
                continue  # None, or a network set's key
            count = hosts.get(key.hostname, 0) + delta
            if count > 0:
                hosts[key.hostname] = count
            else:
                hosts.pop(key.hostname, None)

    def host_keys(self, source: str, host: str, present: bool) -> None:
        """Whether ``source`` ("node" or "config") gives ``host`` keys now."""
        ident = (source, host)
        if present == (ident in self._sources):
            return
        if present:
            self._sources.add(ident)
            self._host(host, 1)
        else:
            self._sources.discard(ident)
            self._host(host, -1)

    def _host(self, host: str, delta: int) -> None:
        count = self._keys_by_host.get(host, 0) + delta
        if count > 0:
            self._keys_by_host[host] = count
        else:
            self._keys_by_host.pop(host, None)


# The Node fields libcalico-go's node processor turns into HostConfigKeys (IPIP, VXLAN).
_NODE_CONFIG_FIELDS = ("ipv4VXLANTunnelAddr", "vxlanTunnelMACAddr", "ipv6VXLANTunnelAddr", "vxlanTunnelMACAddrV6")


def node_gives_host_keys(res: Resource, host: t.HostMetadata | None) -> bool:
    """Whether Felix's syncer would give the Node's host a HostIPKey or HostConfigKey."""
    if host is None:
        return False
    if host.ipv4_addr:
        return True
    spec = res.spec or {}
    bgp = spec.get("bgp") or {}
    return bool(bgp.get("ipv4IPIPTunnelAddr")) or any(spec.get(f) for f in _NODE_CONFIG_FIELDS)


class CalcStats(NamedTuple):
    """The calculation's gauges at one moment (Felix's policy resolver, calc graph and
    stats collector)."""

    active_endpoints: int
    active_policies: int
    active_selectors: int
    hosts: int
    workload_endpoints: int
    host_endpoints: int
    tiers: int
    policies: int
    profiles: int
