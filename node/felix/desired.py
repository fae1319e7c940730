"""The desired dataplane of one IP family: Felix's dataplane managers, without the kernel.

The calculation (``node.felix.calc``) says *who applies to whom* in messages
(``node.felix.types``); this module turns those into *what the kernel should hold*: the
four tables (through ``node.felix.rules`` and ``node.felix.tables``) and the IP sets. It
does what Felix's policy, endpoint, masquerade, floating-IP, host-IP and hosts-set
managers do, and keeps their incremental shape: a policy update re-renders that policy's
chains, an endpoint update that endpoint's chains; the dispatch chains are rebuilt only
when the set of endpoint interfaces changes, host endpoints are re-resolved only when
host endpoints or host interfaces change. The tables' refcounting then decides which
chains are programmed, and ``take_changes`` reports exactly what moved.

The kernel sync (the next layer) reads ``tables`` and ``ipsets`` and applies the
difference; the dry run renders them as text.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Mapping

from node.felix import netaddr
from node.felix import types as t
from node.felix.config import FelixConfig, openstack_active, openstack_metadata_ip
from node.felix.features import Features
from node.felix.rules import names
from node.felix.rules.config import RulesConfig
from node.felix.rules.dispatch import (
    endpoint_mark_dispatch_chains,
    host_dispatch_chains_by_table,
    workload_dispatch_chains,
)
from node.felix.rules.endpoints import host_chains, rpf_skip_chain, set_endpoint_mark_chain, workload_chains
from node.felix.rules.epmark import EndpointMarkMapper
from node.felix.rules.nat import (
    cidr_block_chain,
    egress_dscp_chain,
    failsafe_in_chain,
    failsafe_out_chain,
    fip_dnat_chain,
    fip_snat_chain,
    floating_ip_maps,
    nat_outgoing_chain,
)
from node.felix.rules.policy import policy_chains_by_table, profile_chains_by_table
from node.felix.rules.static import kernel_hooks, static_chains
from node.felix.tables import Table, TableChanges

log = logging.getLogger(__name__)

TABLE_NAMES = ("raw", "mangle", "nat", "filter")
KUBE_IPVS_INTERFACE = "kube-ipvs0"  # kube-proxy's IPVS mode creates it
_NO_WEP = t.WorkloadEndpoint(name="")
OPENSTACK = "openstack"


# --------------------------------------------------------------------------------------
# Configuration for the renderers.

@dataclass(frozen=True)
class Encapsulation:
    """Which tunnels are on: Felix's explicit settings win, otherwise the pools decide."""

    ipip: bool = False
    vxlan: bool = False
    vxlan_v6: bool = False


def encapsulation(config: FelixConfig, pools: Iterable[t.IPAMPool]) -> Encapsulation:
    pools = list(pools)

    def version(p: t.IPAMPool) -> int:
        return ipaddress.ip_network(p.cidr, strict=False).version

    ipip = config.IpInIpEnabled
    if ipip is None:
        ipip = any(version(p) == 4 and p.ipip_mode not in ("", "Never") for p in pools)
    vxlan = config.VXLANEnabled
    if vxlan is None:
        vxlan = any(version(p) == 4 and p.vxlan_mode not in ("", "Never") for p in pools)
    # Felix has no IPv6 override: v6 VXLAN follows the pools.
    vxlan_v6 = any(version(p) == 6 and p.vxlan_mode not in ("", "Never") for p in pools)
    return Encapsulation(bool(ipip), bool(vxlan), bool(vxlan_v6))


def rules_config(config: FelixConfig, encap: Encapsulation, kube_ipvs: bool = False,
                 features: Features | None = None) -> RulesConfig:
    """Felix's parameters mapped onto the renderers' config (Felix's rules.Config).
    ``kube_ipvs``: kube-proxy runs in IPVS mode (``kube-ipvs0`` exists); ``features``: what
    this host's iptables and kernel support (a modern host's when not given)."""
    features = features or Features()
    return RulesConfig.from_mark_mask(
        config.mark_mask(),
        kube_ipvs_support=kube_ipvs,
        kube_node_port_ranges=tuple(config.KubeNodePortRanges),
        workload_iface_prefixes=tuple(config.InterfacePrefix),
        failsafe_inbound_host_ports=tuple(config.FailsafeInboundHostPorts),
        failsafe_outbound_host_ports=tuple(config.FailsafeOutboundHostPorts),
        ipip_enabled=encap.ipip,
        ipip_tunnel_address=config.IpInIpTunnelAddr,
        vxlan_enabled=encap.vxlan,
        vxlan_enabled_v6=encap.vxlan_v6,
        vxlan_port=config.VXLANPort,
        vxlan_vni=config.VXLANVNI,
        vxlan_tunnel_address=config.IPv4VXLANTunnelAddr,
        vxlan_tunnel_address_v6=config.IPv6VXLANTunnelAddr,
        allow_vxlan_packets_from_workloads=config.AllowVXLANPacketsFromWorkloads,
        allow_ipip_packets_from_workloads=config.AllowIPIPPacketsFromWorkloads,
        log_prefix=config.LogPrefix,
        log_action_rate_limit=config.LogActionRateLimit,
        log_action_rate_limit_burst=config.LogActionRateLimitBurst,
        endpoint_to_host_action=config.DefaultEndpointToHostAction,
        filter_allow_action=config.filter_allow_action(),
        mangle_allow_action=config.mangle_allow_action(),
        filter_deny_action=config.filter_deny_action(),
        disable_conntrack_invalid=config.DisableConntrackInvalidCheck,
        nat_port_range=config.NATPortRange,
        nat_outgoing_interface_filter=config.IptablesNATOutgoingInterfaceFilter,
        nat_outgoing_address=config.NATOutgoingAddress,
        nat_outgoing_exclusions=config.NATOutgoingExclusions,
        service_loop_prevention=config.ServiceLoopPrevention,
        openstack_special_cases=openstack_active(config),
        openstack_metadata_ip=openstack_metadata_ip(config),
        openstack_metadata_port=config.MetadataPort,
        istio_ambient_mode_enabled=config.IstioAmbientMode == "Enabled",
        istio_dscp_mark=config.IstioDSCPMark,
        masq_fully_random=features.masq_fully_random,
        snat_fully_random=features.snat_fully_random,
    )


# --------------------------------------------------------------------------------------
# IP sets.

def member_version(member: str) -> int | None:
    """The IP family of a set member (``10.0.0.1``, ``10.0.0.0/24``, ``fd00::1,tcp:80``)."""
    return netaddr.version(member)


@lru_cache(maxsize=1 << 16)
def canonical_member(member: str) -> str:
    """Felix writes a /32 or /128 as a bare address and other CIDRs masked."""
    head, comma, rest = member.partition(",")
    text = netaddr.member_text(head)
    return f"{text},{rest}" if comma else text


@dataclass
class IPSet:
    type: t.IPSetType
    members: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class IPSetChanges:
    """What changed since the last report, by set name. A name in both ``deleted`` and
    ``created`` was rewritten with a new type; ``added``/``removed`` are member deltas of
    sets the consumer already has."""

    created: dict[str, IPSet]
    deleted: frozenset[str]
    added: dict[str, frozenset[str]]
    removed: dict[str, frozenset[str]]

    def __bool__(self) -> bool:
        return bool(self.created or self.deleted or self.added or self.removed)


class IPSets:
    """The desired IP sets of one family, by set name, with a change journal kept in
    proportion to the changes (never a scan of every member)."""

    def __init__(self, ip_version: int, max_size: int):
        self.ip_version = ip_version
        self.max_size = max_size
        self.sets: dict[str, IPSet] = {}
        self._known: set[str] = set()   # names the consumer has been told about
        self._fresh: set[str] = set()   # to be written whole
        self._gone: set[str] = set()    # known to the consumer, to be destroyed
        self._added: dict[str, set[str]] = {}
        self._removed: dict[str, set[str]] = {}

    def name(self, set_id: str) -> str:
        return names.ip_set_name(set_id, self.ip_version)

    def _filter(self, members: Iterable[str], set_type: t.IPSetType) -> set[str]:
        out = {canonical_member(m) for m in members if member_version(m) == self.ip_version}
        if set_type == t.IPSetType.IP:
            # Felix's CanonicaliseMember for hash:ip keeps only a CIDR's address (a
            # network set's 10.0.0.0/24 is 10.0.0.0 there, not 256 addresses).
            out = {m.partition("/")[0] for m in out}
        return out

    def replace(self, set_id: str, set_type: t.IPSetType, members: Iterable[str]) -> None:
        name = self.name(set_id)
        new = self._filter(members, set_type)
        old = self.sets.get(name)
        if old is not None and old.type == set_type:
            self._apply_delta(name, old, new - old.members, old.members - new)
            return
        if old is not None:
            self._drop(name)
        self.sets[name] = IPSet(set_type, new)
        self._fresh.add(name)

    def delta(self, set_id: str, added: Iterable[str], removed: Iterable[str]) -> None:
        name = self.name(set_id)
        s = self.sets.get(name)
        if s is None:
            log.warning("IP set %s: member delta for a set that does not exist; ignoring", name)
            return
        self._apply_delta(name, s, self._filter(added, s.type), self._filter(removed, s.type))

    def _apply_delta(self, name: str, s: IPSet, added: set[str], removed: set[str]) -> None:
        journal = name not in self._fresh
        for m in removed:
            if m in s.members and m not in added:
                s.members.discard(m)
                if journal:
                    if m in self._added.get(name, ()):
                        self._added[name].discard(m)
                    else:
                        self._removed.setdefault(name, set()).add(m)
        for m in added:
            if m not in s.members:
                s.members.add(m)
                if journal:
                    if m in self._removed.get(name, ()):
                        self._removed[name].discard(m)
                    else:
                        self._added.setdefault(name, set()).add(m)

    def remove(self, set_id: str) -> None:
        name = self.name(set_id)
        if name in self.sets:
            self._drop(name)

    def _drop(self, name: str) -> None:
        del self.sets[name]
        self._fresh.discard(name)
        if name in self._known:
            self._gone.add(name)
        self._added.pop(name, None)
        self._removed.pop(name, None)

    def take_changes(self) -> IPSetChanges:
        changes = IPSetChanges(
            created={n: IPSet(self.sets[n].type, set(self.sets[n].members)) for n in self._fresh},
            deleted=frozenset(self._gone),
            added={n: frozenset(m) for n, m in self._added.items() if m},
            removed={n: frozenset(m) for n, m in self._removed.items() if m},
        )
        self._known = (self._known - self._gone) | self._fresh
        self._fresh.clear()
        self._gone.clear()
        self._added.clear()
        self._removed.clear()
        return changes

    def render_restore(self) -> str:
        """``ipset restore`` input that creates every set from scratch, sorted."""
        family = "inet" if self.ip_version == 4 else "inet6"
        lines = []
        for name in sorted(self.sets):
            s = self.sets[name]
            lines.append(f"create {name} {s.type.value} family {family} maxelem {self.max_size}")
            lines.extend(f"add {name} {m}" for m in sorted(s.members, key=netaddr.sort_key))
        return "\n".join(lines) + ("\n" if lines else "")


# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataplaneChanges:
    tables: dict[str, TableChanges]
    ipsets: IPSetChanges


class DesiredDataplane:
    """Felix's dataplane managers for one IP family, as pure state.

    Feed it the calculation's messages (``on_messages``) and the host's interfaces with
    their addresses (``set_interfaces``); ``complete()`` does the deferred work Felix does
    at the end of each batch; ``tables``/``ipsets`` then hold the desired state.
    """

    def __init__(self, config: FelixConfig, ip_version: int, hostname: str = "", features: Features | None = None):
        if ip_version not in (4, 6):
            raise ValueError(f"IP version must be 4 or 6, not {ip_version}")
        self.config = config
        self.features = features or Features()
        self.ip_version = ip_version
        self.hostname = hostname
        self.tables = {name: Table(name, ip_version, config.ChainInsertMode) for name in TABLE_NAMES}
        self.ipsets = IPSets(ip_version, config.MaxIpsetSize)
        self._floating_ips = config.FloatingIPs == "Enabled"

        self._pools: dict[str, t.IPAMPool] = {}
        self._hosts: dict[str, t.HostMetadata] = {}
        self._vteps: dict[str, t.VXLANTunnelEndpoint] = {}
        self._selectors: dict[t.PolicyID, str] = {}
        self._policy_users: dict[t.PolicyID, set] = {}  # policy -> endpoint keys using it
        self._endpoint_policies: dict[object, set[t.PolicyID]] = {}
        # Workload endpoints: all known, the active one per interface, and their chains.
        self._weps: dict[t.WorkloadEndpointID, t.WorkloadEndpoint] = {}
        self._active_wep_by_iface: dict[str, t.WorkloadEndpointID] = {}
        self._wep_chains: dict[t.WorkloadEndpointID, list[str]] = {}
        # Policy-group chains, refcounted by the endpoint chains that use them.
        self._group_refs: dict[str, int] = {}
        self._endpoint_groups: dict[object, list[str]] = {}
        # Host endpoints and interfaces.
        self._heps: dict[t.HostEndpointID, t.HostEndpoint] = {}
        self._iface_addrs: dict[str, frozenset[str]] = {}
        self._hep_iface_chains: dict[str, dict[str, list[str]]] = {}
        self._active_hep_by_iface: dict[str, t.HostEndpointID] = {}
        self._host_dispatch: dict[str, set[str]] = {n: set() for n in TABLE_NAMES}

        self._encap: Encapsulation | None = None
        self._kube_ipvs = False
        self.rules: RulesConfig = rules_config(config, encapsulation(config, ()), features=self.features)
        # IPVS mode: each endpoint interface's mark value, and the chains that use them.
        self._epmarks: EndpointMarkMapper | None = None
        self._epmark_dispatch: set[str] = set()
        self._epmark_dirty = False
        self._dscp_dirty = False
        # BGPConfiguration default: its advertised service CIDRs are blocked (Felix's
        # service loop manager) unless something answers for them.
        self._bgp_config = t.GlobalBGPConfig()
        self._cidr_block_dirty = False
        self._dirty_weps: set[t.WorkloadEndpointID] = set()
        self._dirty_ifaces: set[str] = set()
        self._wids_by_iface: dict[str, set[t.WorkloadEndpointID]] = {}
        self._dispatch_dirty = True
        self._heps_dirty = True
        self._pools_dirty = True
        self._fips_dirty = True
        self._rpf_dirty = True
        self._hosts_dirty = True
        self._this_host_dirty = True
        self._wl_dispatch: set[str] = set()
        self.complete()

    # -- inputs --------------------------------------------------------------------------

    def on_messages(self, messages: Iterable[object]) -> None:
        for msg in messages:
            self.on_message(msg)

    def on_message(self, msg: object) -> None:
        if isinstance(msg, t.IPSetUpdate):
            self.ipsets.replace(msg.id, msg.type, msg.members)
        elif isinstance(msg, t.IPSetDeltaUpdate):
            self.ipsets.delta(msg.id, msg.added, msg.removed)
        elif isinstance(msg, t.IPSetRemove):
            self.ipsets.remove(msg.id)
        elif isinstance(msg, t.ActivePolicyUpdate):
            self._update_policy(msg.id, msg.policy)
        elif isinstance(msg, t.ActivePolicyRemove):
            self._remove_policy(msg.id)
        elif isinstance(msg, t.ActiveProfileUpdate):
            for table, chains in profile_chains_by_table(self.rules, msg.id, msg.profile, self.ip_version).items():
                self.tables[table].update_chains(chains)
        elif isinstance(msg, t.ActiveProfileRemove):
            for prefix, tables in ((names.PROFILE_INBOUND_PREFIX, ("filter",)),
                                   (names.PROFILE_OUTBOUND_PREFIX, ("filter", "mangle"))):
                for table in tables:
                    self.tables[table].remove_chain(names.profile_chain_name(prefix, msg.id))
        elif isinstance(msg, t.WorkloadEndpointUpdate):
            self._set_wep(msg.id, msg.endpoint)
        elif isinstance(msg, t.WorkloadEndpointRemove):
            self._set_wep(msg.id, None)
        elif isinstance(msg, t.HostEndpointUpdate):
            old = self._heps.get(msg.id)
            self._heps[msg.id] = msg.endpoint
            self._heps_dirty = True
            if msg.endpoint.dscp is not None or (old is not None and old.dscp is not None):
                self._dscp_dirty = True
        elif isinstance(msg, t.HostEndpointRemove):
            old = self._heps.pop(msg.id, None)
            if old is not None:
                self._heps_dirty = True
                if old.dscp is not None:
                    self._dscp_dirty = True
        elif isinstance(msg, t.IPAMPoolUpdate):
            self._pools[msg.id] = msg.pool
            self._pools_dirty = True
        elif isinstance(msg, t.IPAMPoolRemove):
            if self._pools.pop(msg.id, None) is not None:
                self._pools_dirty = True
        elif isinstance(msg, t.HostMetadataUpdate):
            self._hosts[msg.host.hostname] = msg.host
            self._hosts_dirty = True
        elif isinstance(msg, t.HostMetadataRemove):
            if self._hosts.pop(msg.hostname, None) is not None:
                self._hosts_dirty = True
        elif isinstance(msg, t.VXLANTunnelEndpointUpdate):
            self._vteps[msg.vtep.node] = msg.vtep
            self._hosts_dirty = True
        elif isinstance(msg, t.VXLANTunnelEndpointRemove):
            if self._vteps.pop(msg.node, None) is not None:
                self._hosts_dirty = True
        elif isinstance(msg, t.GlobalBGPConfigUpdate):
            if msg.config.service_cidrs != self._bgp_config.service_cidrs:
                self._cidr_block_dirty = True
            self._bgp_config = msg.config
        # Routes, config and in-sync messages are other layers' business.

    def _set_wep(self, wid: t.WorkloadEndpointID, wep: t.WorkloadEndpoint | None) -> None:
        """Record a workload endpoint and mark the interfaces it was and is on."""
        old = self._weps.pop(wid, None)
        if old is None and wep is None:
            return
        if (old is not None and old.dscp is not None) or (wep is not None and wep.dscp is not None):
            self._dscp_dirty = True
        if old is not None:
            self._wids_by_iface[old.name].discard(wid)
            self._dirty_ifaces.add(old.name)
            if old.allow_spoofed_source_prefixes:
                self._rpf_dirty = True
            if old.ipv4_nat or old.ipv6_nat:
                self._fips_dirty = True
        if wep is not None:
            self._weps[wid] = wep
            self._wids_by_iface.setdefault(wep.name, set()).add(wid)
            self._dirty_ifaces.add(wep.name)
            self._dirty_weps.add(wid)
            if wep.allow_spoofed_source_prefixes:
                self._rpf_dirty = True
            if wep.ipv4_nat or wep.ipv6_nat:
                self._fips_dirty = True

    def set_interfaces(self, addrs_by_iface: Mapping[str, Iterable[str]]) -> None:
        """The host's interfaces and their addresses (all of them; workload interfaces and
        ``InterfaceExclude`` matches are filtered here, as Felix's managers do)."""
        new = {name: frozenset(addrs) for name, addrs in addrs_by_iface.items()}
        if new != self._iface_addrs:
            self._iface_addrs = new
            self._heps_dirty = True
            self._this_host_dirty = True
        self._set_kube_ipvs(KUBE_IPVS_INTERFACE in new and not self.config.BPFEnabled)

    def _set_kube_ipvs(self, on: bool) -> None:
        """kube-proxy's mode decides the static chains (Felix restarts when kube-ipvs0
        comes or goes; re-rendering everything from the new config is the same result)."""
        if on == self._kube_ipvs:
            return
        log.info("kube-proxy %s IPVS mode (%s %s): %s IPVS support", "is in" if on else "left",
                 KUBE_IPVS_INTERFACE, "exists" if on else "is gone", "enabling" if on else "disabling")
        self._kube_ipvs = on
        self._encap = None  # re-derive the rules config and re-render at the next complete()

    # -- policies --------------------------------------------------------------------------

    def _update_policy(self, policy_id: t.PolicyID, policy: t.Policy) -> None:
        for table, chains in policy_chains_by_table(self.rules, policy_id, policy, self.ip_version).items():
            self.tables[table].update_chains(chains)
        old_selector = self._selectors.get(policy_id)
        self._selectors[policy_id] = policy.original_selector
        if old_selector is not None and old_selector != policy.original_selector:
            self._regroup_users(policy_id)

    def _remove_policy(self, policy_id: t.PolicyID) -> None:
        for prefix in (names.POLICY_INBOUND_PREFIX, names.POLICY_OUTBOUND_PREFIX):
            name = names.policy_chain_name(prefix, policy_id)
            for table in ("raw", "mangle", "filter"):
                self.tables[table].remove_chain(name)
        if self._selectors.pop(policy_id, None) is not None:
            self._regroup_users(policy_id)

    def _regroup_users(self, policy_id: t.PolicyID) -> None:
        """A policy's selector decides which neighbours it groups with, so the endpoints
        that use it must re-render (Felix's markEPsWithDirtyPolicies)."""
        for key in self._policy_users.get(policy_id, ()):
            if isinstance(key, t.WorkloadEndpointID):
                self._mark_wep_dirty(key)
            else:
                self._heps_dirty = True

    def _mark_wep_dirty(self, wid: t.WorkloadEndpointID) -> None:
        wep = self._weps.get(wid)
        if wep is not None:
            self._dirty_weps.add(wid)
            self._dirty_ifaces.add(wep.name)

    def _note_policies(self, key: object, tiers_lists: Iterable[Iterable[t.TierInfo]]) -> None:
        new = {pid for tiers in tiers_lists for tier in tiers
               for pid in tier.ingress_policies + tier.egress_policies}
        old = self._endpoint_policies.get(key, set())
        for pid in old - new:
            users = self._policy_users.get(pid)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._policy_users[pid]
        for pid in new - old:
            self._policy_users.setdefault(pid, set()).add(key)
        if new:
            self._endpoint_policies[key] = new
        else:
            self._endpoint_policies.pop(key, None)

    def _set_groups(self, key: object, group_chains: list) -> None:
        """Refcount policy-group chains across endpoints; they live in raw, mangle and
        filter, and the tables' own refcounting decides where they are programmed."""
        new_names = [c.name for c in group_chains]
        for chain in group_chains:
            if self._group_refs.get(chain.name, 0) == 0:
                for table in ("raw", "mangle", "filter"):
                    self.tables[table].update_chain(chain)
            self._group_refs[chain.name] = self._group_refs.get(chain.name, 0) + 1
        for name in self._endpoint_groups.get(key, []):
            count = self._group_refs.get(name, 0) - 1
            if count <= 0:
                self._group_refs.pop(name, None)
                for table in ("raw", "mangle", "filter"):
                    self.tables[table].remove_chain(name)
            else:
                self._group_refs[name] = count
        if new_names:
            self._endpoint_groups[key] = new_names
        else:
            self._endpoint_groups.pop(key, None)

    # -- deferred work ------------------------------------------------------------------

    def complete(self) -> None:
        """Felix's CompleteDeferredWork for every manager, in dependency order."""
        if self._pools_dirty or self._encap is None:
            self._update_pools()
        if self._dirty_ifaces:
            self._update_workloads()
        if self._dispatch_dirty:
            self._update_workload_dispatch()
            self._epmark_dirty = True
        if self._rpf_dirty:
            spoof = {wep.name: wep.allow_spoofed_source_prefixes
                     for wid, wep in self._active_weps() if wep.allow_spoofed_source_prefixes}
            self.tables["raw"].update_chain(rpf_skip_chain(self.ip_version, spoof))
            self._rpf_dirty = False
        if self._heps_dirty:
            self._update_host_endpoints()
            self._epmark_dirty = True
        if self._epmark_dirty:
            self._update_endpoint_mark_dispatch()
        if self._fips_dirty:
            self._update_floating_ips()
        if self._hosts_dirty:
            self._update_host_sets()
        if self._this_host_dirty:
            self._update_this_host()
        if self._dscp_dirty:
            self._update_dscp()
        if self._cidr_block_dirty:
            self.tables["filter"].update_chain(
                cidr_block_chain(self.rules, self._bgp_config.service_cidrs, self.ip_version))
            self._cidr_block_dirty = False

    def _update_workload_dispatch(self) -> None:
        """The dispatch trees depend only on the set of active interface names; Felix
        rebuilds them then, and the table keeps unchanged chains unchanged."""
        ifaces = sorted(self._active_wep_by_iface)
        new = workload_dispatch_chains(self.rules, ifaces)
        table = self.tables["filter"]
        table.update_chains(new)
        table.remove_chains(self._wl_dispatch - {c.name for c in new})
        self._wl_dispatch = {c.name for c in new}
        self._dispatch_dirty = False

    def _active_weps(self):
        for wid in self._active_wep_by_iface.values():
            yield wid, self._weps[wid]

    def active_workload_endpoints(self) -> dict[t.WorkloadEndpointID, t.WorkloadEndpoint]:
        """The workload endpoint in charge of each local interface (shadowed ones left out)."""
        return dict(self._active_weps())

    def host_endpoint_interfaces(self) -> dict[t.HostEndpointID, tuple[str, ...]]:
        """Every local host endpoint with the interfaces it is in charge of, as of the last
        ``complete()`` (``any-interface-at-all`` for the ``*`` one in force; nothing for one
        that resolved to no interface)."""
        out: dict[t.HostEndpointID, list[str]] = {hid: [] for hid in self._heps}
        for iface, hid in self._active_hep_by_iface.items():
            if hid in out:
                out[hid].append(iface)
        return {hid: tuple(sorted(ifaces)) for hid, ifaces in out.items()}

    def _update_pools(self) -> None:
        """Masquerade manager (pool sets, cali-nat-outgoing); a change of encapsulation
        re-renders the static chains (Felix restarts for that)."""
        encap = encapsulation(self.config, self._pools.values())
        if encap != self._encap:
            self._encap = encap
            self.rules = rules_config(self.config, encap, self._kube_ipvs, self.features)
            if self._kube_ipvs and (self._epmarks is None or self._epmarks.mask != self.rules.mark_endpoint):
                self._epmarks = EndpointMarkMapper(self.rules.mark_endpoint, self.rules.mark_non_cali_endpoint)
            elif not self._kube_ipvs:
                self._epmarks = None
            self._install_static()
        pools = [p for p in self._pools.values()
                 if ipaddress.ip_network(p.cidr, strict=False).version == self.ip_version]
        all_pools = [p.cidr for p in pools if tuple(p.allowed_uses) != ("LoadBalancer",)]
        masq = [p.cidr for p in pools if p.masquerade]
        self.ipsets.replace(names.IPSET_ID_ALL_POOLS, t.IPSetType.NET, all_pools)
        self.ipsets.replace(names.IPSET_ID_NAT_OUTGOING_MASQ_POOLS, t.IPSetType.NET, masq)
        self.tables["nat"].update_chain(nat_outgoing_chain(self.rules, bool(masq), self.ip_version))
        self._pools_dirty = False

    def _install_static(self) -> None:
        """Static chains, failsafe and fixed chains, and the kernel hooks, from the
        current rules config. Everything derived from the rules config is re-rendered."""
        cfg = self.rules
        for name, table in self.tables.items():
            table.update_chains(static_chains(cfg, name, self.ip_version))
            hooks = kernel_hooks(cfg, name)
            table.set_hooks(hooks.inserts, hooks.appends)
            if name in ("raw", "mangle", "filter"):
                table.update_chain(failsafe_in_chain(cfg, name, self.ip_version))
                table.update_chain(failsafe_out_chain(cfg, name, self.ip_version))
        self._cidr_block_dirty = True
        self._dscp_dirty = True
        # Everything else rendered from the config must follow it.
        for wid in self._weps:
            self._mark_wep_dirty(wid)
        self._heps_dirty = True
        self._rpf_dirty = True
        self._fips_dirty = True
        self._hosts_dirty = True
        self._dispatch_dirty = True
        self._this_host_dirty = True

    def _update_workloads(self) -> None:
        """Felix's resolveWorkloadEndpoints: per interface the smallest workload ID wins
        (the others are shadowed until it goes); the winner's chains and policy groups
        are rendered when it changes or its data did."""
        dirty, self._dirty_weps = self._dirty_weps, set()
        ifaces, self._dirty_ifaces = self._dirty_ifaces, set()
        for iface in sorted(ifaces):
            candidates = self._wids_by_iface.get(iface)
            new_active = min(candidates) if candidates else None
            old_active = self._active_wep_by_iface.get(iface)
            if old_active is not None and old_active != new_active:
                self._drop_wep_chains(old_active)
                if self._weps.get(old_active, _NO_WEP).allow_spoofed_source_prefixes or (
                        new_active is not None and self._weps[new_active].allow_spoofed_source_prefixes):
                    self._rpf_dirty = True
            if new_active is None:
                self._wids_by_iface.pop(iface, None)
                if self._active_wep_by_iface.pop(iface, None) is not None:
                    self._dispatch_dirty = True
                    if self._epmarks is not None:
                        self._epmarks.release(iface)
                continue
            if old_active != new_active or new_active in dirty:
                self._render_wep(new_active, self._weps[new_active])
            if old_active is None:
                self._dispatch_dirty = True
            self._active_wep_by_iface[iface] = new_active

    def _render_wep(self, wid: t.WorkloadEndpointID, wep: t.WorkloadEndpoint) -> None:
        chains, groups = workload_chains(self.rules, wep, self._selectors)
        if self._epmarks is not None:
            chains.append(set_endpoint_mark_chain(self.rules, wep.name, self._epmarks.mark(wep.name)))
        old = set(self._wep_chains.get(wid, ()))
        self.tables["filter"].update_chains(chains)
        new_names = [c.name for c in chains]
        self.tables["filter"].remove_chains(old - set(new_names))
        self._wep_chains[wid] = new_names
        self._set_groups(wid, groups)
        self._note_policies(wid, [wep.tiers])

    def _drop_wep_chains(self, wid: t.WorkloadEndpointID) -> None:
        self.tables["filter"].remove_chains(self._wep_chains.pop(wid, ()))
        self._set_groups(wid, [])
        self._note_policies(wid, [])

    def _host_ifaces(self) -> dict[str, frozenset[str]]:
        """Host interfaces whose addresses Felix tracks: not workload interfaces and not
        excluded by ``InterfaceExclude`` (those count for neither HEPs nor this-host)."""
        prefixes = tuple(self.config.InterfacePrefix)
        out = {}
        for name, addrs in self._iface_addrs.items():
            if name.startswith(prefixes):
                continue
            if any(p.match(name) for p in self.config.InterfaceExclude):
                continue
            out[name] = addrs
        return out

    def resolve_host_endpoints(self) -> dict[str, t.HostEndpointID]:
        """Felix's resolveHostEndpoints: per interface the smallest-ID HEP naming it or
        (with no name) expecting one of its addresses; the smallest ``*`` HEP as the
        pseudo-interface ``any-interface-at-all``."""
        out: dict[str, t.HostEndpointID] = {}
        for iface, addrs in self._host_ifaces().items():
            best = None
            for hid, hep in self._heps.items():
                if hep.name == "*":
                    continue
                if best is not None and best < hid:
                    continue
                if hep.name == iface:
                    best = hid
                elif hep.name == "" and any(a in addrs for a in hep.expected_ipv4_addrs + hep.expected_ipv6_addrs):
                    best = hid
            if best is not None:
                out[iface] = best
        stars = sorted(hid for hid, hep in self._heps.items() if hep.name == "*")
        if stars:
            out[names.ALL_INTERFACES] = stars[0]
        return out

    def _update_host_endpoints(self) -> None:
        resolved = self.resolve_host_endpoints()
        new_chains: dict[str, dict[str, list[str]]] = {}
        untracked, pre_dnat = set(), set()
        for iface, hid in sorted(resolved.items()):
            hep = self._heps[hid]
            by_table, groups = host_chains(self.rules, iface, hep, self._selectors)
            if self._epmarks is not None:
                by_table["filter"].append(set_endpoint_mark_chain(self.rules, iface, self._epmarks.mark(iface)))
            for table, chains in by_table.items():
                self.tables[table].update_chains(chains)
            new_chains[iface] = {table: [c.name for c in chains] for table, chains in by_table.items()}
            self._set_groups(("hep", iface), groups)
            self._note_policies(("hep", iface), [hep.tiers, hep.forward_tiers, hep.untracked_tiers,
                                                 hep.pre_dnat_tiers])
            if hep.untracked_tiers:
                if iface == names.ALL_INTERFACES:
                    log.warning("DoNotTrack policy is not supported for a HEP with `interfaceName: *`; "
                                "ignoring it (host endpoint %s)", hid.endpoint_id)
                else:
                    untracked.add(iface)
            if hep.pre_dnat_tiers:
                pre_dnat.add(iface)
        for iface, by_table in self._hep_iface_chains.items():
            for table, chain_names in by_table.items():
                keep = set(new_chains.get(iface, {}).get(table, ()))
                self.tables[table].remove_chains(n for n in chain_names if n not in keep)
            if iface not in new_chains:
                self._set_groups(("hep", iface), [])
                self._note_policies(("hep", iface), [])
                if self._epmarks is not None:
                    self._epmarks.release(iface)
        self._hep_iface_chains = new_chains
        self._active_hep_by_iface = resolved
        for table, chains in host_dispatch_chains_by_table(self.rules, resolved, untracked, pre_dnat).items():
            old = self._host_dispatch[table]
            new = {c.name for c in chains}
            self.tables[table].update_chains(chains)
            self.tables[table].remove_chains(old - new)
            self._host_dispatch[table] = new
        self._heps_dirty = False

    def _update_endpoint_mark_dispatch(self) -> None:
        """IPVS mode: the set/from-endpoint-mark dispatch chains over the active workload
        interfaces and host endpoint interfaces (never the ``*`` pseudo-interface)."""
        self._epmark_dirty = False
        table = self.tables["filter"]
        if self._epmarks is None:
            table.remove_chains(self._epmark_dispatch)
            self._epmark_dispatch = set()
            return
        wl = list(self._active_wep_by_iface)
        heps = [i for i in self._active_hep_by_iface if i != names.ALL_INTERFACES]
        marks = {n: self._epmarks.mark(n) for n in wl + heps}
        new = endpoint_mark_dispatch_chains(self.rules, wl, heps, marks)
        table.update_chains(new)
        table.remove_chains(self._epmark_dispatch - {c.name for c in new})
        self._epmark_dispatch = {c.name for c in new}

    def _update_dscp(self) -> None:
        """Felix's DSCP manager: the sources of endpoints with a DSCP value (every local
        workload endpoint and host endpoint, with its addresses of this family) in the
        dscp-src-net set, and a rule per source in ``cali-egress-dscp``."""
        v4 = self.ip_version == 4
        rules: list[tuple[str, int]] = []
        for wep in self._weps.values():
            if wep.dscp is not None:
                addrs = [n.partition("/")[0] for n in (wep.ipv4_nets if v4 else wep.ipv6_nets)]
                if addrs:
                    rules.append((",".join(addrs), wep.dscp))
        for hep in self._heps.values():
            if hep.dscp is not None:
                addrs = list(hep.expected_ipv4_addrs if v4 else hep.expected_ipv6_addrs)
                if addrs:
                    rules.append((",".join(addrs), hep.dscp))
        members = [a for src, _ in rules for a in src.split(",")]
        self.ipsets.replace(names.IPSET_ID_DSCP_ENDPOINTS, t.IPSetType.NET, members)
        self.tables["mangle"].update_chain(egress_dscp_chain(rules))
        self._dscp_dirty = False

    def _update_floating_ips(self) -> None:
        pairs = []
        for wid, wep in self._weps.items():
            if self._floating_ips or wid.orchestrator == OPENSTACK:
                nats = wep.ipv4_nat if self.ip_version == 4 else wep.ipv6_nat
                pairs.extend((n.ext_ip, n.int_ip) for n in nats)
        dnats, snats = floating_ip_maps(pairs)
        self.tables["nat"].update_chain(fip_dnat_chain(dnats))
        self.tables["nat"].update_chain(fip_snat_chain(self.rules, snats))
        self._fips_dirty = False

    def _update_host_sets(self) -> None:
        """all-hosts-net (IPIP, or NAT exclusions of host IPs) and all-vxlan-net (VXLAN)."""
        external = [c for c in self.config.ExternalNodesCIDRList]
        exclude_hosts = self.config.NATOutgoingExclusions == "IPPoolsAndHostIPs"
        if self.ip_version == 4 and (self._encap.ipip or exclude_hosts):
            members = [h.ipv4_addr for h in self._hosts.values() if h.ipv4_addr] + external
            self.ipsets.replace(names.IPSET_ID_ALL_HOST_NETS, t.IPSetType.NET, members)
        elif self.ip_version == 6 and exclude_hosts:
            # The NAT-outgoing exclusion of host IPs needs the nodes' IPv6 addresses too (IPIP,
            # and so the external node CIDRs, are IPv4 only).
            members = [h.ipv6_addr for h in self._hosts.values() if h.ipv6_addr]
            self.ipsets.replace(names.IPSET_ID_ALL_HOST_NETS, t.IPSetType.NET, members)
        else:
            self.ipsets.remove(names.IPSET_ID_ALL_HOST_NETS)
        vxlan_on = self._encap.vxlan if self.ip_version == 4 else self._encap.vxlan_v6
        if vxlan_on:
            # Other nodes' VTEPs of this family (Felix's VXLAN manager keeps its own apart).
            v4 = self.ip_version == 4
            members = [v.parent_device_ip if v4 else v.parent_device_ipv6 for node, v in self._vteps.items()
                       if node != self.hostname and (v.ipv4_addr if v4 else v.ipv6_addr)]
            self.ipsets.replace(names.IPSET_ID_ALL_VXLAN_SOURCE_NETS, t.IPSetType.NET, members + external)
        else:
            self.ipsets.remove(names.IPSET_ID_ALL_VXLAN_SOURCE_NETS)
        self._hosts_dirty = False

    def _update_this_host(self) -> None:
        """this-host: every address on a non-workload interface (Felix's host IP manager)."""
        members = [a for addrs in self._host_ifaces().values() for a in addrs]
        self.ipsets.replace(names.IPSET_ID_THIS_HOST_IPS, t.IPSetType.IP, members)
        self._this_host_dirty = False

    # -- outputs ---------------------------------------------------------------------------

    @property
    def encapsulation(self) -> Encapsulation:
        """The tunnels in use (config overrides, else the pools)."""
        return self._encap


    def take_changes(self) -> DataplaneChanges:
        return DataplaneChanges({n: tbl.take_changes() for n, tbl in self.tables.items()},
                                self.ipsets.take_changes())

    def missing_chains(self) -> dict[str, list[str]]:
        return {n: tbl.missing_chains() for n, tbl in self.tables.items() if tbl.missing_chains()}

    def render_save(self) -> str:
        """All four tables in ``iptables-save`` form (raw, mangle, nat, filter)."""
        return "".join(self.tables[n].render_save() for n in TABLE_NAMES)

    def render_ipsets(self) -> str:
        return self.ipsets.render_restore()
