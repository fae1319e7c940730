"""The policy agent's pure pipeline: syncer updates in, desired dataplane out.

One object wires the pieces in Felix's order: the policy calculation and the route
calculation both read the syncer's updates; their messages, with the effective
configuration resolved from them, feed one ``DesiredDataplane`` per IP family. The
running agent and the dry run share it, so what the dry run prints is what the agent
would program.
"""
from __future__ import annotations

import gc
import logging
import os
from typing import Iterable, Mapping

from node.datastore.syncer import SyncSource, SyncStatus, Update, UpdateType
from node.felix import types as t
from node.felix.calc import PolicyCalculation
from node.felix.calc.pod_cidr import PodCIDRBlocks, use_pod_cidr
from node.felix.calc.routes import BLOCK_PREFIX, ROUTE_SOURCE_IPAM, IPAMBlock, RouteCalculation, decode_block
from node.felix.config import FelixConfig, local_value, v1_config_from_node, v1_config_from_spec
from node.felix.desired import OPENSTACK, DesiredDataplane
from node.felix.features import Features, with_overrides
from node.felix.rules.config import allocate_marks
from node.felix.routes import (DesiredRoutes, EndpointPieces, RouteConfig, RouteModel, apply_messages,
                               desired_routes)
from node.model import Resource, stub_from_key

log = logging.getLogger(__name__)

# What the agent follows (Felix's syncer, minus the kinds the iptables dataplane ignores;
# on the Kubernetes datastore also FELIX_KUBERNETES_KINDS).
FELIX_KINDS = ("ClusterInformation", "FelixConfiguration", "Tier", "GlobalNetworkPolicy",
               "StagedGlobalNetworkPolicy", "NetworkPolicy", "StagedNetworkPolicy", "KubernetesNetworkPolicy",
               "KubernetesClusterNetworkPolicy", "StagedKubernetesNetworkPolicy", "GlobalNetworkSet", "NetworkSet", "Profile", "WorkloadEndpoint",
               "HostEndpoint", "IPPool", "Node", "BGPPeer", "BGPConfiguration", "LiveMigration")
# Kubernetes objects Felix's syncer follows on the Kubernetes datastore only: the
# EndpointSlices fill the IP sets of rules that match a Service. (It follows Services too,
# for the BPF dataplane; the iptables dataplane has no use for them.)
FELIX_KUBERNETES_KINDS = ("EndpointSlice",)


# Messages that change only policy (rules, profiles, IP sets): the desired routes do not
# depend on them, so they leave the routes computed last time valid.
_POLICY_ONLY_MESSAGES = (t.ActivePolicyUpdate, t.ActivePolicyRemove, t.ActiveProfileUpdate, t.ActiveProfileRemove,
                         t.IPSetUpdate, t.IPSetDeltaUpdate, t.IPSetRemove)


def tune_gc() -> None:
    """Make CPython's cyclic collector run less often. The agent builds hundreds of
    thousands of small, acyclic, long-lived objects in bursts (a resync, a full render);
    with the default young-generation threshold (700 allocations) the collector walks
    them thousands of times for no garbage, about a fifth of a full computation."""
    gc.set_threshold(50_000, 20, 100)


def felix_sources(env: Mapping[str, str] | None = None) -> list[SyncSource]:
    """Syncer sources, as Felix's syncer picks them from the datastore settings in ``env``
    (the process environment when not given): the resource kinds; on the Kubernetes
    datastore the EndpointSlices (decoded straight into the summaries the service sets
    need); the IPAM blocks (for routes) unless ``USE_POD_CIDR`` is set, when the Nodes'
    pod CIDRs stand in for them (``Pipeline`` makes the blocks)."""
    from node.config import KUBERNETES, datastore_type_from_env
    from node.datastore.kubernetes.keys import native_prefix
    from node.datastore.sources import resource_sources
    from node.felix.calc.services import decode_endpoint_slice

    env = os.environ if env is None else env
    sources = resource_sources(list(FELIX_KINDS))
    if datastore_type_from_env(env) == KUBERNETES:
        sources += [SyncSource(prefix=native_prefix(kind), decode=decode_endpoint_slice)
                    for kind in FELIX_KUBERNETES_KINDS]
    if not use_pod_cidr(env):
        sources.append(SyncSource(prefix=BLOCK_PREFIX, decode=decode_block))
    return sources


def resolve_config(env: Mapping[str, str], config_specs: Mapping[str, dict] | None,
                   own_node: Resource | None, file_config: Mapping[str, str] | None = None) -> FelixConfig:
    """Felix's precedence: defaults < FelixConfiguration default < the FelixConfiguration
    whose nodeSelector matches this host (the calculation picks it: ``selector``) <
    node.<host> and the host values derived from this host's Node < the config file <
    ``FELIX_*`` environment. Each FelixConfiguration's config.projectcalico.org/
    annotations override its fields (``config_specs["annotations"]``, by slot)."""
    specs = config_specs or {}
    annotations = specs.get("annotations") or {}

    def v1(slot: str) -> dict[str, str]:
        return v1_config_from_spec(specs.get(slot), annotations.get(slot))

    host = v1("node")
    host.update(v1_config_from_node(own_node.spec if own_node is not None else None))
    # ClusterInformation's fields (ClusterType, ClusterGUID, CalicoVersion) are global
    # parameters too, as libcalico-go's update processor hands them to Felix.
    global_config = {**v1_config_from_spec(specs.get("clusterinfo")), **v1("default")}
    return FelixConfig.resolve(env, global_config=global_config, selector_config=v1("selector"),
                               host_config=host, file_config=file_config)


# The parameters whose change Felix applies without restarting (its handledConfigChanges;
# CalicoVersion and ClusterGUID are not parameters here).
LIVE_PARAMS = frozenset({"ClusterType", "HealthTimeoutOverrides"})


class Pipeline:
    """Syncer consumer that keeps the desired dataplane of both families up to date.

    ``on_updates``/``on_status`` take the syncer's callbacks; ``complete()`` moves the
    calculations' messages into the desired state (Felix's batch boundary) and returns
    the messages it applied. The configuration is resolved once, at the first in-sync:
    Felix restarts when it changes later, and ``config_changed`` says so.
    """

    def __init__(self, hostname: str, env: Mapping[str, str], file_config: Mapping[str, str] | None = None,
                 detected_features: Features | None = None):
        self.hostname = hostname
        self.env = dict(env)
        # What this host's iptables and kernel support (detected by the caller; a modern
        # host's when not given), and the same once FeatureDetectOverride is applied.
        self.detected_features = detected_features or Features()
        self.features = self.detected_features
        self.file_config = dict(file_config or {})  # the Felix config file's values, read at start
        boot = FelixConfig.resolve(self.env, file_config=self.file_config)
        # Felix suppresses IP-set members that another member contains unless NFTablesMode
        # is Disabled (it reads the setting, not the dataplane Auto picks): a first guess from
        # the local sources, settled in ``complete`` once the datastore's is known.
        self.policy = PolicyCalculation(
            hostname, workload_source_spoofing=local_value("WorkloadSourceSpoofing", self.env, self.file_config),
            suppress_overlaps=local_value("NFTablesMode", self.env, self.file_config) != "Disabled")
        # Felix knows RouteSource before it builds its route resolver; here the local
        # sources give a first guess and ``_start`` switches once the datastore's is known.
        self.routes = RouteCalculation(
            hostname, local_value("RouteSource", self.env, self.file_config) or ROUTE_SOURCE_IPAM)
        # USE_POD_CIDR (host-local IPAM): the Nodes' pod CIDRs are the blocks, and IPAM
        # blocks are not followed (as Felix's syncer does it).
        self._pod_cidr_blocks = PodCIDRBlocks() if use_pod_cidr(self.env) else None
        self.config: FelixConfig | None = None
        self.config_changed = False
        self.config_generation = 0  # bumped when a parameter Felix applies live changes
        # Why the configuration cannot be used (Felix would refuse to start): nothing is
        # rendered until it changes.
        self.config_error: str | None = None
        self._boot_config = boot
        self._own_node: Resource | None = None
        self._config_specs: dict | None = None
        self.in_sync = False
        self.dataplanes: dict[int, DesiredDataplane] = {}
        self.route_model = RouteModel()
        self._weps: dict[t.WorkloadEndpointID, t.WorkloadEndpoint] = {}
        self._pending: list = []
        self._interfaces: dict[str, frozenset[str]] = {}
        # The last desired routes and the arguments they were computed with; None once
        # anything they depend on changed.
        self._routes_cache: tuple[tuple, DesiredRoutes] | None = None
        self._endpoint_routes = EndpointPieces()
        self._bgp_config = t.GlobalBGPConfig()

    @property
    def cluster_info(self) -> dict:
        """ClusterInformation ``default``'s spec as last seen (empty before in-sync)."""
        return dict((self._config_specs or {}).get("clusterinfo") or {})

    def env_value(self, name: str) -> str | None:
        for key, value in self.env.items():
            if key.upper() == f"FELIX_{name.upper()}" and value:
                return value
        return None

    # -- syncer callbacks ---------------------------------------------------------------

    def on_updates(self, updates: Iterable[Update]) -> None:
        resources, blocks = [], []
        pod_cidr_blocks = self._pod_cidr_blocks
        for update in updates:
            value = update.value
            if isinstance(value, IPAMBlock) or update.key.startswith(BLOCK_PREFIX):
                if pod_cidr_blocks is None:  # (with USE_POD_CIDR, Felix does not follow them)
                    blocks.append(update)
                continue
            resources.append(update)
            if value is None and update.type is UpdateType.DELETED:
                value = stub_from_key(update.key)  # the agent's syncer keeps no values
            if pod_cidr_blocks is not None and isinstance(value, Resource) and value.kind == "Node":
                blocks.extend(pod_cidr_blocks.node_updated(
                    value.name, None if update.type is UpdateType.DELETED else value, update.revision))
            if isinstance(value, Resource) and value.kind == "Node" and value.name == self.hostname:
                self._own_node = None if update.type is UpdateType.DELETED else value
                self._routes_cache = None
                if self.config is not None:
                    self._check_config()
        self.policy.on_updates(resources)
        self.routes.on_updates(resources + blocks)

    def on_status(self, status: SyncStatus) -> None:
        self.policy.on_status(status)
        if status is SyncStatus.IN_SYNC:
            self.in_sync = True

    # -- batches ----------------------------------------------------------------------------

    def complete(self) -> list:
        """Apply what the calculations produced since the last call; returns the messages."""
        messages = self.policy.take_messages() + self.routes.take_messages()
        for msg in messages:
            if isinstance(msg, t.ConfigUpdate):
                self._config_specs = msg.config
                if self.config is not None:
                    self._check_config()
        if self.config is None:
            if not self.in_sync:
                self._pending.extend(messages)
                return []
            messages = self._pending + messages
            self._pending = []
            self._start(messages)
            if self.config_error is None and self.config.RouteSource != self.routes.route_source:
                self.routes.set_route_source(self.config.RouteSource, self.policy.workload_networks())
                messages += self.routes.take_messages()
            if self.config_error is None:
                self.policy.set_suppress_overlaps(self.config.NFTablesMode != "Disabled")
                messages += self.policy.take_messages()
            if self.config_error is None and self.config.IstioAmbientMode == "Enabled":
                # Felix builds its Istio calculator only when the mode is on at start.
                self.policy.enable_istio_ambient()
                messages += self.policy.take_messages()
        if self.config_error is not None:
            return []
        if any(not isinstance(msg, _POLICY_ONLY_MESSAGES) for msg in messages):
            self._routes_cache = None
        for msg in messages:
            if isinstance(msg, t.WorkloadEndpointUpdate):
                self._weps[msg.id] = msg.endpoint
            elif isinstance(msg, t.WorkloadEndpointRemove):
                self._weps.pop(msg.id, None)
            elif isinstance(msg, t.GlobalBGPConfigUpdate):
                self._bgp_config = msg.config
        self.route_model = apply_messages(self.route_model, messages)
        for dp in self.dataplanes.values():
            dp.on_messages(messages)
            dp.complete()
        return messages

    def _start(self, messages: list) -> None:
        self.config = resolve_config(self.env, self._config_specs, self._own_node, self.file_config)
        for problem in self.config.problems:
            log.warning("configuration: %s", problem)
        families = (4, 6) if self.config.Ipv6Support else (4,)
        if self.config.errors:
            # Felix refuses to start with these: nothing programmed, not ready, and a
            # restart once the configuration changes.
            self.config_error = "; ".join(self.config.errors)
            log.error("configuration: %s; programming nothing until the configuration changes", self.config_error)
            return
        try:
            allocate_marks(self.config.mark_mask())
        except ValueError as exc:
            self.config_error = str(exc)
            log.error("configuration: %s; programming nothing until the configuration changes", exc)
            return
        self.features = with_overrides(self.detected_features, self.config.FeatureDetectOverride)
        self.dataplanes = {v: DesiredDataplane(self.config, v, self.hostname, self.features) for v in families}
        for dp in self.dataplanes.values():
            dp.set_interfaces(self._interfaces)  # what the interface monitor reported so far

    def _check_config(self) -> None:
        new = resolve_config(self.env, self._config_specs, self._own_node, self.file_config)
        if new == self.config:
            return
        if self.config is not None and new.differs_only_in(self.config, LIVE_PARAMS):
            # Felix takes these without restarting; the agent re-reads ``config``.
            self.config = new
            self.config_generation += 1
        else:
            self.config_changed = True

    @property
    def bgp_config(self) -> t.GlobalBGPConfig:
        """BGPConfiguration ``default`` as the dataplane last heard of it."""
        return self._bgp_config

    @property
    def peering_addresses(self) -> dict[int, str]:
        return {4: self._bgp_config.local_workload_peering_ipv4, 6: self._bgp_config.local_workload_peering_ipv6}

    def set_interfaces(self, addrs_by_iface: Mapping[str, Iterable[str]]) -> None:
        interfaces = {name: frozenset(addrs) for name, addrs in addrs_by_iface.items()}
        if interfaces != self._interfaces:
            self._routes_cache = None
        self._interfaces = interfaces
        for dp in self.dataplanes.values():
            dp.set_interfaces(addrs_by_iface)
            dp.complete()

    # -- routes -----------------------------------------------------------------------------

    def desired_routes(self, host_mtu: int | None = None, default_rp_filter: str = "1",
                       live_migration: Mapping | None = None) -> DesiredRoutes:
        """Routes, neighbours, tunnel devices and sysctls the route side should make true,
        with the tunnel parents found among the interfaces given to ``set_interfaces``.

        Computed again only after something they depend on changed (a message other
        than a policy, profile or IP set one, the interfaces, this host's Node, or the
        arguments): the agent asks at every apply. A computation reuses the parts of
        the endpoints that did not change; from scratch, at 1,000 local endpoints, it
        costs about 12 ms and 2 MB of short-lived objects. ``live_migration`` (interface ->
        live migration state, from the agent's monitor) is handed to ``routes.desired_routes``."""
        if self.config is None:
            raise RuntimeError("the configuration is not known before the datastore is in sync")
        args = (host_mtu, default_rp_filter, tuple(sorted((live_migration or {}).items(), key=lambda kv: kv[0])))
        if self._routes_cache is not None and self._routes_cache[0] == args:
            return self._routes_cache[1]
        routes = self._compute_desired_routes(host_mtu, default_rp_filter, live_migration)
        self._routes_cache = (args, routes)
        return routes

    def pod_mtu(self, host_mtu: int | None = None) -> int:
        """The MTU pods should use, as Felix writes it to its MTU file for the CNI plugin."""
        if self.config is None:
            raise RuntimeError("the configuration is not known before the datastore is in sync")
        return self._route_config(host_mtu, "1").pod_mtu

    def _route_config(self, host_mtu: int | None, default_rp_filter: str) -> RouteConfig:
        encap = self.dataplanes[4].encapsulation
        kwargs = {"host_mtu": host_mtu} if host_mtu else {}
        return RouteConfig.from_felix(self.config, hostname=self.hostname, vxlan_enabled=encap.vxlan,
                                      vxlan_enabled_v6=encap.vxlan_v6, ipip_enabled=encap.ipip,
                                      default_rp_filter=default_rp_filter,
                                      checksum_offload_broken=self.features.checksum_offload_broken, **kwargs)

    def _compute_desired_routes(self, host_mtu: int | None, default_rp_filter: str,
                                live_migration: Mapping | None = None) -> DesiredRoutes:
        cfg = self._route_config(host_mtu, default_rp_filter)
        own = self.route_model.vteps.get(self.hostname)
        local_ipv4, local_ipv6 = self._own_address("ipv4Address"), self._own_address("ipv6Address")
        # As Felix's managers: IPIP and no-encap routes leave through the interface with
        # this node's own address of the family (HostMetadata/HostMetadataV6), VXLAN
        # through the one with its VTEP's parent address.
        parents = self._ifaces_with({4: local_ipv4, 6: local_ipv6})
        vxlan_parents = self._ifaces_with({4: own.parent_device_ip, 6: own.parent_device_ipv6} if own else {})
        # The peering address goes on the interface of the endpoint in charge of it, as
        # the desired dataplane resolves it.
        active = self.dataplanes[4].active_workload_endpoints()
        return desired_routes(cfg, self.route_model, self._weps.values(), parents, local_ipv4,
                              memo=self._endpoint_routes, vxlan_parent_devices=vxlan_parents,
                              peering_addresses=self.peering_addresses, peering_endpoints=active.values(),
                              workload_interfaces=[name for name in self._interfaces
                                                   if name.startswith(tuple(self.config.InterfacePrefix))],
                              live_migration=live_migration,
                              openstack_interfaces={ep.name for wid, ep in self._weps.items()
                                                    if wid.orchestrator == OPENSTACK})

    def _own_address(self, field: str) -> str:
        """This host's address from its Node's ``spec.bgp`` (``ipv4Address``/``ipv6Address``)."""
        bgp = ((self._own_node.spec or {}).get("bgp") or {}) if self._own_node is not None else {}
        return (bgp.get(field) or "").split("/")[0]

    def _ifaces_with(self, ips: Mapping[int, str]) -> dict[int, str]:
        found = {version: self._iface_with(ip) for version, ip in ips.items()}
        return {version: dev for version, dev in found.items() if dev}

    def _iface_with(self, ip: str) -> str:
        if not ip:
            return ""
        for name, addrs in sorted(self._interfaces.items()):
            if ip in addrs:
                return name
        return ""
