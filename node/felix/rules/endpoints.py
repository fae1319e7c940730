"""Per-endpoint chains and policy groups (Felix's ``rules/endpoints.go`` and the grouping
half of ``dataplane/linux/endpoint_mgr.go``).

An endpoint chain walks the endpoint's tiers in order, jumping to each policy (or policy
group) chain and reading the verdict back from the accept/pass mark bits, then falls back
to the profiles. Workloads get ``cali-tw-``/``cali-fw-`` in filter; host endpoints get
``th``/``fh``/``thfw``/``fhfw`` in filter, ``th`` (normal) and ``fh`` (pre-DNAT) in
mangle, and ``th``/``fh`` (untracked) in raw.

Consecutive policies with the same selector always apply to the same endpoints, so Felix
puts them in one shared group chain (``cali-gi-``/``cali-go-``) that many endpoint chains
can jump to; a group of one is inlined.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

from node.felix.rules import names
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import (
    ACCEPT, DROP, NOTRACK, RETURN, Action, Chain, Match, Rule, clear_mark, jump, lazy_property, limit_num_connections,
    limit_packet_rate, set_mark, set_masked_mark)
from node.felix.types import HostEndpoint, PolicyID, QoSControls, TierInfo, WorkloadEndpoint, cached_hash

DIRECTION_INBOUND = "inbound"
DIRECTION_OUTBOUND = "outbound"

MAX_POLICY_GROUP_UID_LENGTH = names.MAX_CHAIN_NAME_LENGTH - len(names.POLICY_GROUP_INBOUND_PREFIX)
RETURN_STRIDE = 5

CHAIN_TYPE_NORMAL = "normal"
CHAIN_TYPE_UNTRACKED = "untracked"
CHAIN_TYPE_PRE_DNAT = "pre-dnat"
CHAIN_TYPE_FORWARD = "forward"


# --------------------------------------------------------------------------------------
# Policy groups.

@cached_hash
@dataclass(frozen=True)
class PolicyGroup:
    """Consecutive policies of one tier and direction sharing one selector."""

    direction: str
    policies: tuple[PolicyID, ...]
    selector: str

    @lazy_property
    def unique_id(self) -> str:
        """SHA3-224 over ``selector``, direction, count and each policy's Go String(), one
        per line; base64url, cut to 20 characters so the chain name fits in 28."""
        h = hashlib.sha3_224()
        for line in (self.selector, self.direction, str(len(self.policies)),
                     *(str(p) for p in self.policies)):
            h.update(line.encode())
            h.update(b"\n")
        return base64.urlsafe_b64encode(h.digest()).decode()[:MAX_POLICY_GROUP_UID_LENGTH]

    @property
    def chain_name(self) -> str:
        prefix = (names.POLICY_GROUP_INBOUND_PREFIX if self.direction == DIRECTION_INBOUND
                  else names.POLICY_GROUP_OUTBOUND_PREFIX)
        return prefix + self.unique_id

    def should_be_inlined(self) -> bool:
        """A group with at most one non-staged policy gets no chain of its own."""
        return sum(1 for p in self.policies if not p.staged) <= 1

    def has_non_staged_policies(self) -> bool:
        return any(not p.staged for p in self.policies)


@cached_hash
@dataclass(frozen=True)
class TierGroups:
    """A tier with its policies grouped per direction (Felix's TierPolicyGroups)."""

    name: str
    default_action: str = "Deny"
    ingress: tuple[PolicyGroup, ...] = ()
    egress: tuple[PolicyGroup, ...] = ()


def group_policies(policy_ids: Sequence[PolicyID], direction: str,
                   selectors: Mapping[PolicyID, str]) -> tuple[PolicyGroup, ...]:
    """Split a tier's policy list into runs of equal selector (the active policies'
    ``original_selector``; a policy with no known selector groups under "")."""
    return _group_policies(tuple((pid, selectors.get(pid, "")) for pid in policy_ids), direction)


@lru_cache(maxsize=8192)
def _group_policies(policies: tuple[tuple[PolicyID, str], ...], direction: str) -> tuple[PolicyGroup, ...]:
    """Grouping is a pure function of the (policy, selector) list; endpoints selected by
    the same policies share the result (and its hashed group names)."""
    groups: list[PolicyGroup] = []
    run: list[PolicyID] = []
    run_sel = ""
    for pid, sel in policies:
        if run and sel != run_sel:
            groups.append(PolicyGroup(direction, tuple(run), run_sel))
            run = []
        if not run:
            run_sel = sel
        run.append(pid)
    if run:
        groups.append(PolicyGroup(direction, tuple(run), run_sel))
    return tuple(groups)


def group_tiers(tiers: Sequence[TierInfo], selectors: Mapping[PolicyID, str],
                inbound: bool = True, outbound: bool = True) -> tuple[TierGroups, ...]:
    return tuple(TierGroups(
        name=t.name, default_action=t.default_action,
        ingress=group_policies(t.ingress_policies, DIRECTION_INBOUND, selectors) if inbound else (),
        egress=group_policies(t.egress_policies, DIRECTION_OUTBOUND, selectors) if outbound else (),
    ) for t in tiers)


def group_chains(tiers: Sequence[TierGroups]) -> list[PolicyGroup]:
    """The groups among ``tiers`` that need their own chain (not inlined), once each."""
    seen: dict[str, PolicyGroup] = {}
    for t in tiers:
        for g in (*t.ingress, *t.egress):
            if not g.should_be_inlined() and g.chain_name not in seen:
                seen[g.chain_name] = g
    return list(seen.values())


@lru_cache(maxsize=8192)
def policy_group_chain(cfg: RulesConfig, group: PolicyGroup) -> Chain:
    """A group chain: jump to each non-staged policy; from the second on, only while no
    verdict (accept or pass) is set; every 5 jumps, return if a verdict is set. A pure
    function of immutable inputs, so the endpoints (and IP families) sharing a group
    share its chain."""
    prefix = (names.POLICY_INBOUND_PREFIX if group.direction == DIRECTION_INBOUND
              else names.POLICY_OUTBOUND_PREFIX)
    verdict_bits = cfg.mark_pass | cfg.mark_accept
    rules: list[Rule] = []
    count = -1
    for pid in group.policies:
        if pid.staged:
            continue
        count += 1
        if count and count % RETURN_STRIDE == 0:
            rules.append(Rule(Match().mark_not_clear(verdict_bits), RETURN, ("Return on verdict",)))
        m = Match() if count % RETURN_STRIDE == 0 else Match().mark_clear(verdict_bits)
        rules.append(Rule(m, jump(names.policy_chain_name(prefix, pid))))
    return Chain(group.chain_name, tuple(rules))


# --------------------------------------------------------------------------------------
# Endpoint chains.

def _conntrack_rules(cfg: RulesConfig, allow: Action) -> list[Rule]:
    rules = []
    if allow != ACCEPT:
        # Returning rather than accepting: flag the packet as allowed first.
        rules.append(Rule(Match().conntrack_state("RELATED,ESTABLISHED"), set_mark(cfg.mark_accept)))
    rules.append(Rule(Match().conntrack_state("RELATED,ESTABLISHED"), allow))
    if not cfg.disable_conntrack_invalid:
        rules.append(Rule(Match().conntrack_state("INVALID"), cfg.deny_action))
    return rules


def endpoint_chain(cfg: RulesConfig, *, name: str, endpoint_prefix: str, tiers: Sequence[TierGroups],
                   profile_ids: Sequence[str], inbound: bool, failsafe_chain: str,
                   chain_type: str, admin_up: bool, allow: Action,
                   allow_vxlan_encap: bool = True, allow_ipip_encap: bool = True) -> Chain:
    """One endpoint chain, section by section (spec §3.7.1). ``inbound`` selects the
    ingress policies (``cali-pi-``/``cali-pri-``), else egress (``cali-po-``/``cali-pro-``)."""
    return Chain(names.endpoint_chain_name(endpoint_prefix, name),
                 _endpoint_rules(cfg, tuple(tiers), tuple(profile_ids), inbound, failsafe_chain, chain_type,
                                 admin_up, allow, allow_vxlan_encap, allow_ipip_encap))


@lru_cache(maxsize=8192)
def _endpoint_rules(cfg: RulesConfig, tiers: tuple[TierGroups, ...], profile_ids: tuple[str, ...],
                    inbound: bool, failsafe_chain: str, chain_type: str, admin_up: bool, allow: Action,
                    allow_vxlan_encap: bool, allow_ipip_encap: bool,
                    limits: tuple[int, int, int] = (0, 0, 0)) -> tuple[Rule, ...]:
    """An endpoint chain's rules. They do not depend on the interface (only the chain's
    name and rule IDs do), so endpoints with the same policies and profiles share them:
    replicas of one workload cost one rendering. ``limits`` is a workload's (packet
    rate, burst, connections) limit in this chain's direction (``qos_limits``)."""
    deny = cfg.deny_action
    if not admin_up:
        return (Rule((), deny, ("Endpoint admin disabled",)),)

    # The chain is assembled from small rule sequences that recur across endpoints (each
    # a pure function of its arguments, built once), so a new combination of policies
    # and profiles costs little more than the joining.
    if chain_type != CHAIN_TYPE_NORMAL:
        limits = (0, 0, 0)
    rules: list[Rule] = list(_head_rules(cfg, chain_type, allow, failsafe_chain, allow_vxlan_encap,
                                         allow_ipip_encap, limits, "ingress" if inbound else "egress"))
    policy_prefix = names.POLICY_INBOUND_PREFIX if inbound else names.POLICY_OUTBOUND_PREFIX
    untracked = chain_type == CHAIN_TYPE_UNTRACKED
    for tier in tiers:
        groups = tier.ingress if inbound else tier.egress
        if not groups:
            continue
        rules.append(_tier_start_rule(cfg, tier.name))
        end_of_tier_drop = False
        for group in groups:
            non_staged = group.has_non_staged_policies()
            if non_staged:
                end_of_tier_drop = True
            if group.should_be_inlined():
                targets = [names.policy_chain_name(policy_prefix, p)
                           for p in group.policies if not p.staged]
            else:
                targets = [group.chain_name]
            for target in targets:
                rules += _jump_rules(cfg, target, non_staged, untracked)
        if chain_type in (CHAIN_TYPE_NORMAL, CHAIN_TYPE_FORWARD):
            if end_of_tier_drop and tier.default_action != "Pass":
                rules.append(_tier_end_rule(cfg, tier.name))

    if not tiers and chain_type == CHAIN_TYPE_FORWARD:
        rules.append(Rule((), set_mark(cfg.mark_accept), ("Allow forwarded traffic by default",)))
        rules.append(Rule((), RETURN, ("Return for accepted forward traffic",)))

    if chain_type == CHAIN_TYPE_NORMAL:
        profile_prefix = names.PROFILE_INBOUND_PREFIX if inbound else names.PROFILE_OUTBOUND_PREFIX
        for profile in profile_ids:
            rules += _profile_rules(cfg, profile_prefix, profile)
        rules.append(_no_profile_rule(cfg))
    return tuple(rules)


@lru_cache(maxsize=256)
def _head_rules(cfg: RulesConfig, chain_type: str, allow: Action, failsafe_chain: str,
                allow_vxlan_encap: bool, allow_ipip_encap: bool, limits: tuple[int, int, int] = (0, 0, 0),
                direction: str = "") -> tuple[Rule, ...]:
    """The packet-rate limit, conntrack, the connection limit, failsafes, the mark reset
    and the encap drops. The rate limit marks packets within the rate in scratch0 and
    drops the rest (Felix's iptables form; the mark is cleared on both sides)."""
    deny = cfg.deny_action
    rate, burst, connections = limits
    rules: list[Rule] = []
    if rate:
        mark = cfg.mark_scratch0
        clear = Rule((), clear_mark(mark), (f"Clear {direction} packet rate limit mark",))
        rules += [clear,
                  Rule((), limit_packet_rate(rate, burst, mark), (f"Mark packets within {direction} packet rate limit",)),
                  Rule(Match().not_mark_matches_with_mask(mark, mark), DROP,
                       (f"Drop packets over {direction} packet rate limit",)),
                  clear]
    if chain_type != CHAIN_TYPE_UNTRACKED:
        rules += _conntrack_rules(cfg, allow)
    if connections:
        rules.append(Rule((), limit_num_connections(connections),
                          (f"Reject connections over {direction} connection limit",)))
    if failsafe_chain:
        rules.append(Rule((), jump(failsafe_chain)))
    rules.append(Rule((), clear_mark(cfg.mark_accept | cfg.mark_pass)))
    if not allow_vxlan_encap:
        rules.append(Rule(Match().protocol_num(17).dest_ports(cfg.vxlan_port), deny,
                          (f"{deny} VXLAN encapped packets originating in workloads",)))
    if not allow_ipip_encap:
        rules.append(Rule(Match().protocol_num(4), deny,
                          (f"{deny} IPinIP encapped packets originating in workloads",)))
    return tuple(rules)


@lru_cache(maxsize=1024)
def _tier_start_rule(cfg: RulesConfig, tier_name: str) -> Rule:
    return Rule((), clear_mark(cfg.mark_pass), (f"Start of tier {tier_name}",))


@lru_cache(maxsize=8192)
def _jump_rules(cfg: RulesConfig, target: str, non_staged: bool, untracked: bool) -> tuple[Rule, ...]:
    """Jump to a policy (group) chain unless a tier passed; return once one accepted."""
    rules = [Rule(Match().mark_clear(cfg.mark_pass), jump(target))]
    if non_staged:
        if untracked:
            rules.append(Rule(Match().mark_single_bit_set(cfg.mark_accept), NOTRACK))
        rules.append(Rule(Match().mark_single_bit_set(cfg.mark_accept), RETURN,
                          ("Return if policy accepted",)))
    return tuple(rules)


@lru_cache(maxsize=1024)
def _tier_end_rule(cfg: RulesConfig, tier_name: str) -> Rule:
    deny = cfg.deny_action
    return Rule(Match().mark_clear(cfg.mark_pass), deny,
                (f"End of tier {tier_name}. {deny} if no policies passed packet",))


@lru_cache(maxsize=4096)
def _profile_rules(cfg: RulesConfig, profile_prefix: str, profile: str) -> tuple[Rule, ...]:
    return (Rule((), jump(names.profile_chain_name(profile_prefix, profile))),
            Rule(Match().mark_single_bit_set(cfg.mark_accept), RETURN, ("Return if profile accepted",)))


@lru_cache(maxsize=64)
def _no_profile_rule(cfg: RulesConfig) -> Rule:
    deny = cfg.deny_action
    return Rule((), deny, (f"{deny} if no profiles matched",))


def qos_limits(qos: QoSControls | None) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(packet rate, burst, connections) to the workload and from it."""
    if qos is None:
        return (0, 0, 0), (0, 0, 0)
    return ((qos.ingress_packet_rate, qos.ingress_packet_burst, qos.ingress_max_connections),
            (qos.egress_packet_rate, qos.egress_packet_burst, qos.egress_max_connections))


def workload_endpoint_chains(cfg: RulesConfig, iface: str, admin_up: bool,
                             tiers: Sequence[TierGroups], profile_ids: Sequence[str],
                             qos: QoSControls | None = None) -> list[Chain]:
    """``cali-tw-<iface>`` (to the workload: its ingress) and ``cali-fw-<iface>`` (from
    it: its egress, which also drops VXLAN/IPIP encap unless allowed), with the
    workload's packet-rate and connection limits. Filter table."""
    to_rules, from_rules = _workload_endpoint_rules(cfg, admin_up, tiers, profile_ids, qos)
    return [Chain(names.endpoint_chain_name(names.WORKLOAD_TO_ENDPOINT_PREFIX, iface), to_rules),
            Chain(names.endpoint_chain_name(names.WORKLOAD_FROM_ENDPOINT_PREFIX, iface), from_rules)]


def _workload_endpoint_rules(cfg: RulesConfig, admin_up: bool, tiers: Sequence[TierGroups],
                             profile_ids: Sequence[str],
                             qos: QoSControls | None = None) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
    """The rules of a workload's two chains (``endpoint_chain`` without the names)."""
    allow = cfg.filter_allow
    tiers, profile_ids = tuple(tiers), tuple(profile_ids)
    to_limits, from_limits = qos_limits(qos)
    return (_endpoint_rules(cfg, tiers, profile_ids, True, "", CHAIN_TYPE_NORMAL, admin_up, allow,
                            True, True, to_limits),
            _endpoint_rules(cfg, tiers, profile_ids, False, "", CHAIN_TYPE_NORMAL, admin_up, allow,
                            cfg.allow_vxlan_packets_from_workloads, cfg.allow_ipip_packets_from_workloads,
                            from_limits))


def host_endpoint_filter_chains(cfg: RulesConfig, iface: str, tiers: Sequence[TierGroups],
                                forward_tiers: Sequence[TierGroups],
                                profile_ids: Sequence[str]) -> list[Chain]:
    """Filter: ``cali-th-`` (egress), ``cali-fh-`` (ingress), with failsafes and profiles;
    ``cali-thfw-``/``cali-fhfw-`` for forwarded traffic, allowed when no forward tiers."""
    allow = cfg.filter_allow
    common = dict(name=iface, admin_up=True, allow=allow)
    return [
        endpoint_chain(cfg, endpoint_prefix=names.HOST_TO_ENDPOINT_PREFIX, tiers=tiers,
                       profile_ids=profile_ids, inbound=False,
                       failsafe_chain=names.CHAIN_FAILSAFE_OUT, chain_type=CHAIN_TYPE_NORMAL, **common),
        endpoint_chain(cfg, endpoint_prefix=names.HOST_FROM_ENDPOINT_PREFIX, tiers=tiers,
                       profile_ids=profile_ids, inbound=True,
                       failsafe_chain=names.CHAIN_FAILSAFE_IN, chain_type=CHAIN_TYPE_NORMAL, **common),
        endpoint_chain(cfg, endpoint_prefix=names.HOST_TO_ENDPOINT_FORWARD_PREFIX, tiers=forward_tiers,
                       profile_ids=profile_ids, inbound=False, failsafe_chain="",
                       chain_type=CHAIN_TYPE_FORWARD, **common),
        endpoint_chain(cfg, endpoint_prefix=names.HOST_FROM_ENDPOINT_FORWARD_PREFIX, tiers=forward_tiers,
                       profile_ids=profile_ids, inbound=True, failsafe_chain="",
                       chain_type=CHAIN_TYPE_FORWARD, **common),
    ]


def host_endpoint_mangle_egress_chains(cfg: RulesConfig, iface: str, tiers: Sequence[TierGroups],
                                       profile_ids: Sequence[str]) -> list[Chain]:
    """Mangle ``cali-th-``: the filter layout with allow = RETURN (mangle is for marking,
    not accepting); polices host-originated traffic after DNAT."""
    return [endpoint_chain(cfg, name=iface, endpoint_prefix=names.HOST_TO_ENDPOINT_PREFIX,
                           tiers=tiers, profile_ids=profile_ids, inbound=False,
                           failsafe_chain=names.CHAIN_FAILSAFE_OUT, chain_type=CHAIN_TYPE_NORMAL,
                           admin_up=True, allow=RETURN)]


def host_endpoint_mangle_ingress_chains(cfg: RulesConfig, iface: str,
                                        pre_dnat_tiers: Sequence[TierGroups]) -> list[Chain]:
    """Mangle ``cali-fh-``: pre-DNAT policy, ingress only, no drops, no profiles."""
    return [endpoint_chain(cfg, name=iface, endpoint_prefix=names.HOST_FROM_ENDPOINT_PREFIX,
                           tiers=pre_dnat_tiers, profile_ids=(), inbound=True,
                           failsafe_chain=names.CHAIN_FAILSAFE_IN, chain_type=CHAIN_TYPE_PRE_DNAT,
                           admin_up=True, allow=cfg.mangle_allow)]


def host_endpoint_raw_chains(cfg: RulesConfig, iface: str,
                             untracked_tiers: Sequence[TierGroups]) -> list[Chain]:
    """Raw ``cali-th-`` and ``cali-fh-``: untracked policy (allow = NOTRACK + ACCEPT), no
    conntrack rules, no drops, no profiles."""
    return [
        endpoint_chain(cfg, name=iface, endpoint_prefix=names.HOST_TO_ENDPOINT_PREFIX,
                       tiers=untracked_tiers, profile_ids=(), inbound=False,
                       failsafe_chain=names.CHAIN_FAILSAFE_OUT, chain_type=CHAIN_TYPE_UNTRACKED,
                       admin_up=True, allow=ACCEPT),
        endpoint_chain(cfg, name=iface, endpoint_prefix=names.HOST_FROM_ENDPOINT_PREFIX,
                       tiers=untracked_tiers, profile_ids=(), inbound=True,
                       failsafe_chain=names.CHAIN_FAILSAFE_IN, chain_type=CHAIN_TYPE_UNTRACKED,
                       admin_up=True, allow=ACCEPT),
    ]


# --------------------------------------------------------------------------------------
# From the calculation's endpoint messages.

def workload_chains(cfg: RulesConfig, wep: WorkloadEndpoint,
                    selectors: Mapping[PolicyID, str]) -> tuple[list[Chain], list[Chain]]:
    """A WorkloadEndpoint's filter chains and the policy-group chains they jump to (those
    go into filter, mangle and raw, as Felix does). An endpoint whose state is not
    ``active`` is admin-down."""
    # Only the selectors of the endpoint's own policies matter; with them as part of the
    # key the rendering is a pure function of immutable values, which both IP families
    # (and endpoints with the same interface, policies and profiles) share.
    tier_infos, profile_ids = tuple(wep.tiers), tuple(wep.profile_ids)
    sels = tuple(selectors.get(pid, "") for tier in tier_infos
                 for pids in (tier.ingress_policies, tier.egress_policies) for pid in pids)
    args = (cfg, wep.name, wep.state == "active", tier_infos, profile_ids, sels, wep.qos_controls)
    try:
        chains, groups = _workload_chains(*args)
    except TypeError:  # unhashable parts (lists where tuples belong): render uncached
        chains, groups = _workload_chains.__wrapped__(*args)
    return list(chains), list(groups)


@lru_cache(maxsize=4096)
def _workload_chains(cfg: RulesConfig, iface: str, admin_up: bool, tier_infos: tuple[TierInfo, ...],
                     profile_ids: tuple[str, ...], sels: tuple[str, ...],
                     qos: QoSControls | None = None) -> tuple[tuple[Chain, ...], tuple[Chain, ...]]:
    to_rules, from_rules, groups = _workload_bodies(cfg, admin_up, tier_infos, profile_ids, sels, qos)
    return (Chain(names.endpoint_chain_name(names.WORKLOAD_TO_ENDPOINT_PREFIX, iface), to_rules),
            Chain(names.endpoint_chain_name(names.WORKLOAD_FROM_ENDPOINT_PREFIX, iface), from_rules)), groups


@lru_cache(maxsize=4096)
def _workload_bodies(cfg: RulesConfig, admin_up: bool, tier_infos: tuple[TierInfo, ...],
                     profile_ids: tuple[str, ...], sels: tuple[str, ...], qos: QoSControls | None = None):
    """What does not depend on the interface: both chains' rules and the group chains
    (endpoints with the same policies, profiles and limits share them)."""
    pids = (pid for tier in tier_infos for pids in (tier.ingress_policies, tier.egress_policies) for pid in pids)
    tiers = group_tiers(tier_infos, dict(zip(pids, sels)))
    to_rules, from_rules = _workload_endpoint_rules(cfg, admin_up, tiers, profile_ids, qos)
    return to_rules, from_rules, tuple(policy_group_chain(cfg, g) for g in group_chains(tiers))


def host_chains(cfg: RulesConfig, iface: str, hep: HostEndpoint,
                selectors: Mapping[PolicyID, str]) -> tuple[dict[str, list[Chain]], list[Chain]]:
    """A HostEndpoint's chains per table for one interface (``ALL_INTERFACES`` for a ``*``
    HEP), and its policy-group chains. Raw chains only when it has untracked tiers (never
    for ``*``), mangle ``fh`` only with pre-DNAT tiers."""
    normal = group_tiers(hep.tiers, selectors)
    forward = group_tiers(hep.forward_tiers, selectors)
    by_table: dict[str, list[Chain]] = {
        "filter": host_endpoint_filter_chains(cfg, iface, normal, forward, hep.profile_ids),
        "mangle": host_endpoint_mangle_egress_chains(cfg, iface, normal, hep.profile_ids),
        "raw": [],
    }
    all_tiers = list(normal) + list(forward)
    if hep.pre_dnat_tiers:
        pre_dnat = group_tiers(hep.pre_dnat_tiers, selectors, outbound=False)
        by_table["mangle"] += host_endpoint_mangle_ingress_chains(cfg, iface, pre_dnat)
        all_tiers += pre_dnat
    if hep.untracked_tiers and iface != names.ALL_INTERFACES:
        untracked = group_tiers(hep.untracked_tiers, selectors)
        by_table["raw"] = host_endpoint_raw_chains(cfg, iface, untracked)
        all_tiers += untracked
    return by_table, [policy_group_chain(cfg, g) for g in group_chains(all_tiers)]


def set_endpoint_mark_chain(cfg: RulesConfig, iface: str, mark: int | None) -> Chain:
    """IPVS mode: ``cali-sm-<iface>`` puts the interface's value in the endpoint mark bits
    (empty when no value was left for it, as in Felix)."""
    rules = (Rule((), set_masked_mark(mark, cfg.mark_endpoint)),) if mark is not None else ()
    return Chain(names.endpoint_chain_name(names.SET_ENDPOINT_MARK_PREFIX, iface), rules)


def rpf_skip_chain(ip_version: int, spoof_prefixes: Mapping[str, Sequence[str]]) -> Chain:
    """Raw ``cali-rpf-skip``: accept (skipping the RPF check) sources a workload may spoof
    (``allowSpoofedSourcePrefixes``), per interface, for this IP family. Felix walks a Go
    map here, so its interface order is arbitrary; ours is sorted."""
    rules = []
    for iface in sorted(spoof_prefixes):
        for cidr in spoof_prefixes[iface]:
            if (6 if ":" in cidr else 4) == ip_version:
                rules.append(Rule(Match().in_interface(iface).source_net(cidr), ACCEPT))
    return Chain(names.CHAIN_RPF_SKIP, tuple(rules))
