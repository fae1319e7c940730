"""The policy agent's calculation graph: datastore updates in, dataplane messages out.

``PolicyCalculation`` is the thin stateful part wiring the pure pieces together, in
Felix's shape::

    Update ─► convert + validate (v1 view) ─┬─► active-rules index: policy selectors × LOCAL
                                            │     endpoints ─► active policies/profiles
                                            │        └─► rule scanner ─► IP sets in use
                                            ├─► member index: IP-set selectors × ALL
                                            │     endpoints and network sets ─► members
                                            ├─► per local endpoint: its ordered tiers
                                            ├─► BGPPeers × LOCAL workload endpoints ─►
                                            │     each one's local BGP peer (see bgp_peers)
                                            ├─► LiveMigrations × LOCAL workload endpoints ─►
                                            │     each one's live migration role (live_migration)
                                            ├─► EndpointSlices × the Services rules name ─►
                                            │     service set members (services)
                                            └─► pools, hosts, config (passed through)
                                                      ▼
                                       EventSequencer ─► take_messages()

Everything is incremental: an update touches only the indexes entries it changes, and
the label indexes report exactly which (selector, endpoint) pairs start or stop matching.
Endpoint tier lists are recomputed only for endpoints marked dirty, and only once the
datastore is in sync (as Felix does, so the dataplane never sees a half-built list).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from node.datastore.kubernetes.keys import parse_native_key
from node.datastore.syncer import SyncStatus, Update, UpdateType
from node.felix import types as t
from node.felix.calc import convert as cv
from node.felix.calc import v1, validation
from node.felix.calc.bgp_peers import ActiveBGPPeers
from node.felix.calc.config_track import ConfigTracker, config_annotations
from node.felix.calc.live_migration import LiveMigrations, vmi_name
from node.felix.calc.members import EndpointData, IPSetMemberIndex, host_net_text, network_set_nets
from node.felix.calc.ordering import PolicyMeta, policy_meta, resolve_tiers, split_tiers
from node.felix.calc.rule_scanner import (DUMMY_DROP_RULES, IPSetData, IPSetRefs, scan_policy,
                                          scan_profile)
from node.felix.calc.sequencer import EventSequencer
from node.felix.calc.services import ServiceIndex, as_summary
from node.felix.calc.stats import CalcStats, ClusterCounts, node_gives_host_keys
from node.felix.calc.workload_selectors import LocalWorkloadSelectors
from node.felix.rules import names
from node.model import Resource, stub_from_key
from node.model.resource import etcd_key
from node.selector import LabelIndex, SelectorError, parse

log = logging.getLogger(__name__)

# Felix's IstioCalculator (IstioAmbientMode=Enabled): every endpoint, local or remote, in
# Istio's ambient mode by its own label or its namespace's (unless its own says "none").
ISTIO_AMBIENT_SELECTOR = ("pcns.istio.io/dataplane-mode == 'ambient' && istio.io/dataplane-mode != 'none'"
                          " || istio.io/dataplane-mode == 'ambient'")
IPSET_ID_ALL_ISTIO_WEPS = names.IPSET_ID_ALL_ISTIO_WEPS

_CONVERSION_ERRORS = (ValueError, TypeError, KeyError, AttributeError, SelectorError)


class PolicyCalculation:
    """Felix's calculation for one host.

    ``workload_source_spoofing`` overrides the datastore's WorkloadSourceSpoofing (as an
    environment setting would); ``suppress_overlaps`` is Felix's IP-set member overlap
    suppression, on unless NFTablesMode is Disabled; ``istio_ambient`` (or a later
    ``enable_istio_ambient()``, once the configuration is known) adds Felix's Istio set.
    """

    def __init__(self, hostname: str, *, workload_source_spoofing: str | None = None,
                 suppress_overlaps: bool = True, istio_ambient: bool = False):
        self.hostname = hostname
        self._spoofing_override = workload_source_spoofing
        self._seq = EventSequencer()
        self._members = IPSetMemberIndex(self._seq.member_added, self._seq.member_removed,
                                         suppress_overlaps)
        self._active = LabelIndex(self._policy_match_started, self._policy_match_stopped)
        self._refs = IPSetRefs()
        # Members of the sets of rules that match a Kubernetes Service, from its EndpointSlices.
        self._services = ServiceIndex(self._seq.member_added, self._seq.member_removed)
        self._config = ConfigTracker(hostname)
        self._in_sync = False
        # The cluster's endpoints and hosts (Felix's stats collector, for its metrics):
        # moved only when a key comes, goes or changes host.
        self._cluster = ClusterCounts()

        # Resource identity -> the v1 key it currently occupies (keys can move: a host
        # endpoint's key includes its node, a pool's its CIDR).
        self._keys: dict[tuple[str, str, str], Hashable] = {}
        self._spoofing_weps: dict[tuple[str, str, str], Resource] = {}

        self._policies: dict[t.PolicyID, v1.Policy] = {}
        self._policy_meta: dict[t.PolicyID, PolicyMeta] = {}
        self._policies_by_tier: dict[str, set[t.PolicyID]] = {}
        self._forced: set[t.PolicyID] = set()
        self._match_counts: dict[t.PolicyID, int] = {}
        self._policies_to_sync: set[t.PolicyID] = set()
        self._active_policies: dict[t.PolicyID, v1.Policy] = {}
        self._tiers: dict[str, v1.Tier] = {}

        self._profiles: dict[str, v1.Profile] = {}
        self._profile_users: dict[str, set[Hashable]] = {}
        self._active_profiles: dict[str, v1.ProfileRules] = {}

        self._local: dict[Hashable, v1.WorkloadEndpoint | v1.HostEndpoint] = {}
        self._dirty: set[Hashable] = set()
        self._pools: dict[tuple[str, str, str], tuple[str, t.IPAMPool]] = {}
        # The label index over the local workload endpoints that BGP peers and live
        # migrations pick them from; fed only while ``active`` (some selector is filed).
        self._workload_selectors = LocalWorkloadSelectors(self._workload_selector_sources)
        # Which BGPPeer each local workload endpoint peers with.
        self._bgp = ActiveBGPPeers(hostname, self._dirty.add, self._workload_selectors)
        # Each local workload endpoint's live migration role; fed only while ``active``
        # (some LiveMigration exists).
        self._lm = LiveMigrations(self._dirty.add, self._workload_selectors, self._local_workload_keys)

        self._handlers: dict[str, Callable[[Resource, bool], None]] = {
            **{kind: self._on_policy for kind in cv.POLICY_KINDS},
            "Tier": self._on_tier,
            "Profile": self._on_profile,
            "WorkloadEndpoint": self._on_workload_endpoint,
            "HostEndpoint": self._on_host_endpoint,
            "NetworkSet": self._on_network_set,
            "GlobalNetworkSet": self._on_network_set,
            "IPPool": self._on_ip_pool,
            "Node": self._on_node,
            "BGPPeer": self._bgp.on_bgp_peer,
            "LiveMigration": self._lm.on_live_migration,
            "BGPConfiguration": self._on_bgp_configuration,
            "FelixConfiguration": self._on_config,
            "ClusterInformation": self._on_config,
        }
        self._istio_ambient = False
        if istio_ambient:
            self.enable_istio_ambient()

    # ================================================================== input

    def on_updates(self, updates: Iterable[Update]) -> None:
        """Apply a batch of syncer updates (kinds the calculation does not use are ignored)."""
        for update in updates:
            deleted = update.type is UpdateType.DELETED
            res = update.value
            if res is None and deleted:
                res = stub_from_key(update.key)
            if not isinstance(res, Resource):
                if not self._on_kubernetes_object(update, deleted):
                    log.warning("Ignoring update for %s: its value is not a resource", update.key)
                continue
            handler = self._handlers.get(res.kind)
            if handler is not None:
                handler(res, deleted)

    def _on_kubernetes_object(self, update: Update, deleted: bool) -> bool:
        """An update of a Kubernetes object only the Kubernetes datastore has; False when
        the update is not one. EndpointSlices feed the service sets; the rest (Services,
        which the iptables dataplane does not use) are ignored."""
        parsed = parse_native_key(update.key)
        if parsed is None:
            return False
        kind, namespace, name = parsed
        if kind == "EndpointSlice":
            summary = None if deleted else as_summary(update.value)
            if summary is None:
                self._services.remove_slice(f"{namespace}/{name}")
            else:
                self._services.update_slice(summary)
        return True

    def on_status(self, status: SyncStatus) -> None:
        """The syncer's status callback (so the graph can serve as its consumer)."""
        if status is SyncStatus.IN_SYNC:
            self.on_in_sync()

    def on_in_sync(self) -> None:
        """The syncer has delivered the whole datastore once."""
        if self._in_sync:
            return
        self._in_sync = True
        for name in sorted(self._profile_users):
            if name not in self._profiles:
                log.warning("End of resync: local endpoints refer to missing or invalid profile %s; "
                            "its rules are replaced with drop rules.", name)
        self._seq.in_sync()

    def stats(self) -> CalcStats:
        """The counts behind Felix's felix_active_local_* and felix_cluster_num_* gauges:
        local endpoints; policies in use here (matching a local endpoint or forced
        everywhere); IP sets the active rules use; the cluster's hosts, endpoints, and
        valid tiers, policies (staged included) and profiles."""
        c = self._cluster
        return CalcStats(len(self._local), len(self._active_policies), len(self._refs.sets), c.hosts,
                         c.workload_endpoints, c.host_endpoints, len(self._tiers), len(self._policies),
                         len(self._profiles))

    def set_suppress_overlaps(self, on: bool) -> None:
        """Felix's IP-set member overlap suppression, on unless NFTablesMode is Disabled,
        once the configuration is known (see ``IPSetMemberIndex.set_suppress_overlaps``)."""
        self._members.set_suppress_overlaps(on)

    @property
    def ipset_members(self) -> IPSetMemberIndex:
        """The IP set member index (Felix's SelectorAndNamedPortIndex), for its metrics."""
        return self._members

    def workload_networks(self) -> Iterable[tuple[str, str, tuple[str, ...]]]:
        """Every usable workload endpoint of the cluster as (datastore key, node, its
        networks as text): what the route calculation needs to switch to routing each
        workload's addresses (RouteSource WorkloadIPs) once the configuration is known."""
        for (kind, namespace, name), key in self._keys.items():
            if isinstance(key, v1.WorkloadEndpointKey):
                data = self._members.endpoint_data(key)
                if data is not None and data.nets:
                    yield etcd_key(kind, name, namespace), key.hostname, data.nets

    def enable_istio_ambient(self) -> None:
        """IstioAmbientMode=Enabled (Felix's IstioCalculator): the ``all-istio-weps`` set
        (``hash:ip``) of every endpoint's addresses, local or remote, that
        ``ISTIO_AMBIENT_SELECTOR`` matches. The member index evaluates it against the
        endpoints it already has, so this may come after the first updates (the agent
        calls it once the configuration is resolved; a change of it restarts the agent,
        as Felix builds its calculation graph only once)."""
        if self._istio_ambient:
            return
        self._istio_ambient = True
        data = IPSetData(selector=parse(ISTIO_AMBIENT_SELECTOR), fixed_id=IPSET_ID_ALL_ISTIO_WEPS)
        self._seq.ipset_added(data.id, t.IPSetType.IP)
        self._members.update_set(data)

    def take_messages(self) -> list:
        """Everything that changed since the last call, coalesced, in dependency order."""
        if self._in_sync:
            pending = self._config.pending()
            if pending is not None:
                self._seq.config(pending)
            self._flush_endpoints()
        return self._seq.flush()

    # ================================================================== helpers

    def _convert(self, res: Resource, fn: Callable[[Resource], Any],
                 check: Callable[..., list[str]] | None = None, *check_args: Any) -> Any:
        """``fn(res)`` checked by ``check``; None (the resource counts as absent) if either
        finds it unusable, with a warning naming the resource."""
        try:
            value = fn(res)
            problems = check(value, *check_args) if check is not None and value is not None else []
        except _CONVERSION_ERRORS as exc:
            problems = [str(exc) or type(exc).__name__]
        if problems:
            return self._invalid(res, problems)
        return value

    @staticmethod
    def _invalid(res: Resource, problems: list[str]) -> None:
        log.warning("Validation failed for %s; treating it as missing: %s",
                    res.identifier(), "; ".join(problems))
        return None

    def _move_key(self, ident: tuple[str, str, str], key: Hashable | None,
                  remove: Callable[[Hashable], None]) -> None:
        """Record that ``ident`` now lives at ``key`` (None: nowhere), removing its old key."""
        old = self._keys.get(ident)
        if old != key:
            self._cluster.endpoint_moved(old, key)
            if old is not None:
                remove(old)
        if key is None:
            self._keys.pop(ident, None)
        else:
            self._keys[ident] = key

    @staticmethod
    def _ident(res: Resource) -> tuple[str, str, str]:
        return (res.kind, res.namespace, res.name)

    def _set_refs(self, owner: Hashable, sets: dict[str, IPSetData]) -> None:
        activated, deactivated = self._refs.update(owner, sets)
        for data in activated:
            self._seq.ipset_added(data.id, data.type)
            if data.service:
                self._services.update_set(data)
            else:
                self._members.update_set(data)
        for set_id in deactivated:
            if set_id in self._services:
                self._services.remove_set(set_id)
            else:
                self._members.remove_set(set_id)
            self._seq.ipset_removed(set_id)

    def _mark_policy_endpoints_dirty(self, pid: t.PolicyID) -> None:
        if self._match_counts.get(pid):
            self._dirty.update(self._active.endpoints_matching(pid))

    # ================================================================== policies and tiers

    def _on_policy(self, res: Resource, deleted: bool) -> None:
        pid = cv.policy_id(res)
        policy = None if deleted else self._convert(res, cv.convert_policy, validation.policy_problems)
        old = self._policies.get(pid)
        if policy == old:
            return
        if policy is None:
            self._remove_policy(pid)
            return
        _warn_unenforced(f"policy {pid.id()}", policy.inbound_rules + policy.outbound_rules)
        self._policies[pid] = policy
        meta = policy_meta(policy)
        old_meta = self._policy_meta.get(pid)
        if old_meta is not None and old_meta.tier != meta.tier:
            self._policies_by_tier[old_meta.tier].discard(pid)
        self._policy_meta[pid] = meta
        self._policies_by_tier.setdefault(meta.tier, set()).add(pid)
        if cv.PERF_HINT_ASSUME_NEEDED in policy.performance_hints:
            self._forced.add(pid)
        else:
            self._forced.discard(pid)
        self._active.update_selector(pid, parse(policy.selector))
        self._policies_to_sync.add(pid)
        self._sync_policies()
        if old_meta is not None and old_meta != meta:
            self._mark_policy_endpoints_dirty(pid)

    def _remove_policy(self, pid: t.PolicyID) -> None:
        if pid not in self._policies:
            return
        del self._policies[pid]
        meta = self._policy_meta.pop(pid)
        self._policies_by_tier[meta.tier].discard(pid)
        self._forced.discard(pid)
        self._active.remove_selector(pid)  # stops every match, marking endpoints dirty
        self._policies_to_sync.add(pid)
        self._sync_policies()

    def _policy_match_started(self, pid: t.PolicyID, ep_key: Hashable) -> None:
        self._match_counts[pid] = self._match_counts.get(pid, 0) + 1
        self._dirty.add(ep_key)
        self._policies_to_sync.add(pid)

    def _policy_match_stopped(self, pid: t.PolicyID, ep_key: Hashable) -> None:
        count = self._match_counts[pid] - 1
        if count:
            self._match_counts[pid] = count
        else:
            del self._match_counts[pid]
        self._dirty.add(ep_key)
        self._policies_to_sync.add(pid)

    def _sync_policies(self) -> None:
        """Bring the policies whose matches changed in the last index operation up to date
        (after the operation, so a policy moving between endpoints is not torn down and
        rebuilt on the way)."""
        while self._policies_to_sync:
            self._sync_policy(self._policies_to_sync.pop())

    def _sync_policy(self, pid: t.PolicyID) -> None:
        """Make the policy active (scanned, its IP sets in use) exactly when it applies to a
        local endpoint or is marked as needed everywhere."""
        policy = self._policies.get(pid)
        wanted = policy is not None and (pid in self._forced or pid in self._match_counts)
        current = self._active_policies.get(pid)
        if wanted:
            if current is policy:
                return
            msg, sets = scan_policy(policy)
            self._active_policies[pid] = policy
            self._set_refs(("policy", pid), sets)
            self._seq.update("policy", pid, msg)
        elif current is not None:
            del self._active_policies[pid]
            self._set_refs(("policy", pid), {})
            self._seq.remove("policy", pid)

    def _on_tier(self, res: Resource, deleted: bool) -> None:
        tier = None if deleted else self._convert(res, cv.convert_tier)
        if tier == self._tiers.get(res.name):
            return
        if tier is None:
            self._tiers.pop(res.name, None)
        else:
            self._tiers[res.name] = tier
        for pid in self._policies_by_tier.get(res.name, ()):
            self._mark_policy_endpoints_dirty(pid)

    # ================================================================== profiles

    def _on_profile(self, res: Resource, deleted: bool) -> None:
        name = res.name
        profile = None if deleted else self._convert(res, cv.convert_profile, validation.profile_problems)
        old = self._profiles.get(name)
        if profile == old:
            return
        if profile is None:
            del self._profiles[name]
        else:
            _warn_unenforced(f"profile {name}", profile.rules.inbound_rules + profile.rules.outbound_rules)
            self._profiles[name] = profile
        old_labels = None if old is None else old.labels
        new_labels = None if profile is None else profile.labels
        if old_labels != new_labels:
            for index in (self._active, self._members):
                if new_labels is None:
                    index.remove_parent(name)
                else:
                    index.update_parent(name, dict(new_labels))
            self._sync_policies()
            if self._workload_selectors.active:
                self._workload_selectors.profile_labels(name, None if new_labels is None else dict(new_labels))
        self._sync_profile(name)

    def _sync_profile(self, name: str) -> None:
        """A profile is active while a local endpoint names it; a missing one drops."""
        if self._profile_users.get(name):
            profile = self._profiles.get(name)
            rules = DUMMY_DROP_RULES if profile is None else profile.rules
            if self._active_profiles.get(name) is rules:
                return
            if profile is None and self._in_sync:
                log.info("Local endpoints use profile %s, which does not exist or is invalid; "
                         "generating a default-drop profile.", name)
            msg, sets = scan_profile(rules)
            self._active_profiles[name] = rules
            self._set_refs(("profile", name), sets)
            self._seq.update("profile", name, msg)
        elif name in self._active_profiles:
            del self._active_profiles[name]
            self._set_refs(("profile", name), {})
            self._seq.remove("profile", name)

    def _set_profile_users(self, ep_key: Hashable, old: Iterable[str], new: Iterable[str]) -> None:
        old, new = set(old), set(new)
        for name in new - old:
            self._profile_users.setdefault(name, set()).add(ep_key)
        for name in old - new:
            users = self._profile_users[name]
            users.discard(ep_key)
            if not users:
                del self._profile_users[name]
        for name in sorted(old ^ new):
            self._sync_profile(name)

    # ================================================================== endpoints

    def _on_workload_endpoint(self, res: Resource, deleted: bool) -> None:
        # One call per endpoint of the cluster at a resync, so ``_ident``, ``_convert``,
        # ``_move_key`` and ``_host_nets`` are inlined here, with their exact behaviour.
        ident = (res.kind, res.namespace, res.name)
        spoofs = not deleted and res.spec.get("allowSpoofedSourcePrefixes")
        if spoofs:
            self._spoofing_weps[ident] = res
        elif self._spoofing_weps:
            self._spoofing_weps.pop(ident, None)
        try:
            key = cv.workload_endpoint_key(res)
        except _CONVERSION_ERRORS as exc:
            key = self._invalid(res, [str(exc) or type(exc).__name__])
        ep = None
        if key is not None and not deleted:
            # The spoofing setting only matters to an endpoint that asks for prefixes
            # (one that does not converts with none, which the check reads first).
            spoofing = self._source_spoofing() if spoofs else ""
            try:
                ep = cv.convert_workload_endpoint(res)
                problems = validation.workload_endpoint_problems(ep, spoofing) if ep is not None else []
            except _CONVERSION_ERRORS as exc:
                problems = [str(exc) or type(exc).__name__]
            if problems:
                ep = self._invalid(res, problems)
        new_key = key if ep is not None else None
        old = self._keys.get(ident)
        if old != new_key:
            self._cluster.endpoint_moved(old, new_key)
            if old is not None:
                self._remove_endpoint(old)
        if new_key is None:
            self._keys.pop(ident, None)
        else:
            self._keys[ident] = new_key
        if ep is not None:
            # The converted networks are canonical text, so a /32 is its own host network.
            v4, v6 = ep.ipv4_nets, ep.ipv6_nets
            if v6 or len(v4) != 1 or not v4[0].endswith("/32"):
                v4 = tuple(host_net_text(n) for n in v4 + v6)
            self._set_endpoint(key, ep, EndpointData(v4, ep.ports))

    def _on_host_endpoint(self, res: Resource, deleted: bool) -> None:
        ident = self._ident(res)
        key = cv.host_endpoint_key(res)
        ep = None if deleted else self._convert(res, cv.convert_host_endpoint, validation.host_endpoint_problems)
        self._move_key(ident, key if ep is not None else None, self._remove_endpoint)
        if ep is not None:
            addrs = ep.expected_ipv4_addrs + ep.expected_ipv6_addrs
            self._set_endpoint(key, ep, EndpointData(tuple(host_net_text(a) for a in addrs), ep.ports))

    def _on_network_set(self, res: Resource, deleted: bool) -> None:
        ident = self._ident(res)
        key = self._convert(res, cv.network_set_key)
        ns = None
        if key is not None and not deleted:
            ns = self._convert(res, cv.convert_network_set, validation.network_set_problems)
        self._move_key(ident, key if ns is not None else None, self._members.remove_endpoint)
        if ns is not None:
            self._members.update_endpoint(key, ns.labels, ns.profile_ids,
                                          EndpointData(tuple(str(n) for n in network_set_nets(ns.nets))))

    def _set_endpoint(self, key: Hashable, ep: v1.WorkloadEndpoint | v1.HostEndpoint,
                      data: EndpointData) -> None:
        self._members.update_endpoint(key, ep.labels, ep.profile_ids, data)
        if getattr(key, "hostname", None) != self.hostname:  # (_is_local, inlined)
            return
        old = self._local.get(key)
        if old == ep:
            return
        self._local[key] = ep
        self._set_profile_users(key, () if old is None else old.profile_ids, ep.profile_ids)
        self._active.update_endpoint(key, ep.labels, ep.profile_ids)  # the index copies them into a dict
        self._sync_policies()
        if isinstance(key, v1.WorkloadEndpointKey):
            if self._lm.active:
                self._lm.endpoint_updated(key)
            if self._workload_selectors.active:
                self._workload_selectors.endpoint_updated(key, ep.labels, ep.profile_ids)
        self._dirty.add(key)

    def _remove_endpoint(self, key: Hashable) -> None:
        self._members.remove_endpoint(key)
        old = self._local.pop(key, None)
        if old is not None:
            self._active.remove_endpoint(key)
            self._sync_policies()
            if self._lm.active and isinstance(key, v1.WorkloadEndpointKey):
                self._lm.endpoint_removed(key)
            if self._workload_selectors.active:
                self._workload_selectors.endpoint_removed(key)
            self._set_profile_users(key, old.profile_ids, ())
            self._dirty.add(key)

    def _workload_selector_sources(self):
        """The local workload endpoints and the profiles, for the workload selector index
        when it is (re)built."""
        endpoints = [(key, ep.labels, ep.profile_ids) for key, ep in self._local.items()
                     if isinstance(key, v1.WorkloadEndpointKey)]
        profiles = [(name, dict(p.labels)) for name, p in self._profiles.items() if p.labels]
        return endpoints, profiles

    def _local_workload_keys(self):
        return [key for key in self._local if isinstance(key, v1.WorkloadEndpointKey)]

    def _flush_endpoints(self) -> None:
        # Endpoints matched by the same policies get the same tiers; policy metadata and
        # tiers do not change during the flush, so the split is worked out once per set.
        splits: dict[frozenset, Any] = {}
        peer_of = self._bgp.peer_of
        role_of = self._lm.role_of
        for key in self._dirty:
            ep = self._local.get(key)
            if isinstance(key, v1.WorkloadEndpointKey):
                msg_id = t.WorkloadEndpointID(key.orchestrator, key.workload, key.endpoint)
                if ep is None:
                    self._seq.remove("wep", msg_id)
                else:
                    tiers = self._split(key, splits).normal
                    peer = peer_of.get(key, "") if peer_of else ""
                    role = role_of.get(key) if role_of else None
                    self._seq.update("wep", msg_id, _workload_message(ep, tiers, peer, role))
            else:
                msg_id = t.HostEndpointID(key.endpoint_id)
                if ep is None:
                    self._seq.remove("hep", msg_id)
                else:
                    self._seq.update("hep", msg_id, _host_message(ep, self._split(key, splits)))
        self._dirty.clear()

    def _split(self, key: Hashable, memo: dict[frozenset, Any]):
        pids = self._active.selectors_matching(key)
        split = memo.get(pids)
        if split is None:
            split = memo[pids] = split_tiers(resolve_tiers(pids, self._policy_meta, self._tiers))
        return split

    # ================================================================== pass-through

    def _on_ip_pool(self, res: Resource, deleted: bool) -> None:
        ident = self._ident(res)
        old = self._pools.pop(ident, None)
        new = None if deleted else self._convert(res, cv.convert_ip_pool)
        if new is not None:
            self._pools[ident] = new
        for pool_id in {p[0] for p in (old, new) if p is not None}:
            # Felix keys pools by CIDR; if two resources share one, the first name wins.
            owners = sorted((i, p) for i, (pid, p) in self._pools.items() if pid == pool_id)
            if owners:
                self._seq.update("pool", pool_id, owners[0][1])
            else:
                self._seq.remove("pool", pool_id)

    def _on_node(self, res: Resource, deleted: bool) -> None:
        host = None if deleted else self._convert(res, cv.convert_node)
        if host is None:
            self._seq.remove("host", res.name)
        else:
            self._seq.update("host", res.name, host)
        self._cluster.host_keys("node", res.name, node_gives_host_keys(res, host))
        if res.name == self.hostname:
            self._bgp.on_node(res.name, None if host is None else dict(host.labels))
            # Selector-scoped FelixConfigurations match on this Node's labels (None when
            # it is gone or invalid, or its metadata has no labels: Felix's nil map).
            labels = res.metadata.get("labels") if host is not None else None
            self._config_changing(lambda: self._config.on_node_labels(labels if isinstance(labels, dict) else None))

    def _on_bgp_configuration(self, res: Resource, deleted: bool) -> None:
        """Only ``default`` reaches the dataplane (service loop prevention, local-workload
        peering addresses); an invalid one counts as absent."""
        if res.name != "default":
            return
        config = None if deleted else self._convert(res, cv.convert_global_bgp_config)
        if config is None:
            self._seq.remove("bgpconfig", "default")
        else:
            self._seq.update("bgpconfig", "default", config)

    def _on_config(self, res: Resource, deleted: bool) -> None:
        if res.kind == "FelixConfiguration" and res.name.startswith("node."):
            # Its fields are HostConfigKeys of that host in Felix's syncer.
            present = not deleted and bool(res.spec or config_annotations(res))
            self._cluster.host_keys("config", res.name[len("node."):], present)
        self._config_changing(lambda: self._config.update(res, deleted))

    def _config_changing(self, change: Callable[[], bool]) -> None:
        """Apply a change to the tracked configuration (``change`` says whether it changed
        anything), following WorkloadSourceSpoofing if it moved."""
        before = self._source_spoofing()
        if change() and self._source_spoofing() != before:
            # Felix restarts on this change; re-validating the affected workloads gives the
            # state a restart would.
            for ident, wep in sorted(self._spoofing_weps.items()):
                self._on_workload_endpoint(wep, False)

    def _source_spoofing(self) -> str:
        if self._spoofing_override is not None:
            return self._spoofing_override
        return self._config.workload_source_spoofing()


# ====================================================================== messages

def _workload_message(ep: v1.WorkloadEndpoint, tiers: tuple[t.TierInfo, ...],
                      local_bgp_peer: str = "", live_migration: tuple[str, str] | None = None) -> t.WorkloadEndpoint:
    role, uid = live_migration or ("", "")
    return t.WorkloadEndpoint(
        name=ep.name,
        mac=ep.mac,
        profile_ids=ep.profile_ids,
        ipv4_nets=ep.ipv4_nets,
        ipv6_nets=ep.ipv6_nets,
        tiers=tiers,
        ipv4_nat=tuple(t.NatInfo(ext, int_) for ext, int_ in ep.ipv4_nat) if ep.ipv4_nat else (),
        ipv6_nat=tuple(t.NatInfo(ext, int_) for ext, int_ in ep.ipv6_nat) if ep.ipv6_nat else (),
        allow_spoofed_source_prefixes=ep.allow_spoofed_source_prefixes,
        annotations=ep.annotations,
        qos_controls=ep.qos_controls,
        local_bgp_peer=local_bgp_peer,
        dscp=ep.dscp,
        live_migration_role=role,
        live_migration_uid=uid,
        live_migration_vmi_name=vmi_name(ep.labels),
    )


def _host_message(ep: v1.HostEndpoint, split) -> t.HostEndpoint:
    return t.HostEndpoint(
        name=ep.name,
        profile_ids=ep.profile_ids,
        tiers=split.normal,
        untracked_tiers=split.untracked,
        pre_dnat_tiers=split.pre_dnat,
        forward_tiers=split.forward,
        expected_ipv4_addrs=ep.expected_ipv4_addrs,
        expected_ipv6_addrs=ep.expected_ipv6_addrs,
        dscp=ep.dscp,
    )


def _warn_unenforced(owner: str, rules: Iterable[v1.Rule]) -> None:
    """Say so when a rule has a part the iptables dataplane cannot enforce (Felix renders
    such rules without that part)."""
    for rule in rules:
        if rule.has_http_match:
            log.warning("The %s has a rule with an HTTP match; the iptables dataplane does not "
                        "enforce HTTP matches, so the rule applies without it.", owner)
            break

