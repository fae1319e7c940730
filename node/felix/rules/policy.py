"""Policy and profile chains: one chain per direction, rules translated from the
calculation's ParsedRules (Felix's ``rules/policy.go``).

iptables can AND matches but not OR them, and holds at most 15 ports per multiport match
and one source and one destination CIDR per rule. Where a rule needs an OR (several CIDRs,
named ports next to numeric ports, more than 15 port slots) it becomes a block of rules
that compute the OR into mark bits (AllBlocks = scratch0, ThisBlock = scratch1) before
the main rule, exactly as Felix lays them out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from node.felix.rules import names
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import (
    RETURN, Action, Chain, Match, Rule, clear_mark, log, set_mark, set_masked_mark)
from node.felix.types import ICMPMatch, ParsedRule, Policy, PolicyID, PortRange, Profile

MAX_MULTIPORT_SLOTS = 15

DIRECTION_INGRESS = "ingress"
DIRECTION_EGRESS = "egress"

# An owner is a PolicyID or, for profiles, the profile name.
Owner = PolicyID | str

_NO_MATCH = Match()  # (matches are immutable: every builder starts from this one)


def split_port_list(ports: Sequence[PortRange]) -> list[list[PortRange]]:
    """Groups of at most 15 multiport slots; a single port takes one slot, a range two."""
    splits: list[list[PortRange]] = []
    current: list[PortRange] = []
    free = MAX_MULTIPORT_SLOTS
    for p in ports:
        need = 1 if p.first == p.last else 2
        if free < need:
            splits.append(current)
            current, free = [], MAX_MULTIPORT_SLOTS
        current.append(p)
        free -= need
    if current:
        splits.append(current)
    return splits


def _filter_nets(nets: Sequence[str], ip_version: int, negated: bool) -> tuple[list[str], bool]:
    """The nets of this IP version, and whether the field should remove the rule: it had
    nets but none of this version, or (negated) it excludes everything."""
    if not nets:
        return [], False
    want_v6 = ip_version == 6
    kept: list[str] = []
    for net in nets:
        if (":" in net) != want_v6:
            continue
        if negated and ((ip_version == 4 and net == "0.0.0.0/0") or (ip_version == 6 and net == "::/0")):
            return [], True
        kept.append(net)
    return kept, not kept


@dataclass
class _Nets:
    src: list[str]
    not_src: list[str]
    dst: list[str]
    not_dst: list[str]


# A rule without ipVersion whose protocol is ICMP of one family applies to that family only
# (Felix settles this when it converts the rule; repeated here so a ParsedRule without the
# version still renders like Felix).
_PROTOCOL_IP_VERSION = {"icmp": 4, "icmpv6": 6}


def filter_nets_for_ip_version(rule: ParsedRule, ip_version: int) -> _Nets | None:
    """The rule's nets filtered to one IP version, or None when the rule does not apply
    to that version (its ipVersion differs, a net field lost all its entries, or a negated
    catch-all would make it match nothing)."""
    version = rule.ip_version or _PROTOCOL_IP_VERSION.get(rule.protocol)
    if version and version != ip_version:
        return None
    if not (rule.src_net or rule.not_src_net or rule.dst_net or rule.not_dst_net):
        return _Nets([], [], [], [])
    out = []
    for nets, negated in ((rule.src_net, False), (rule.not_src_net, True),
                          (rule.dst_net, False), (rule.not_dst_net, True)):
        kept, drop = _filter_nets(nets, ip_version, negated)
        if drop:
            return None
        out.append(kept)
    return _Nets(*out)


def _protocol_match(m: Match, protocol: str | int | None) -> Match:
    if protocol is None:
        return m
    if isinstance(protocol, int):
        return m.protocol_num(protocol)
    return m.protocol(protocol)


@dataclass
class _BlockBuilder:
    """Felix's match-block builder: the first block initialises both bits; positive blocks
    OR their alternatives into a bit and AND it into AllBlocks; negated blocks clear
    AllBlocks on any match."""

    all_blocks: int
    this_block: int
    rules: list[Rule] = field(default_factory=list)
    using: bool = False
    done_first_positive: bool = False

    def _init(self, initial: int) -> None:
        if not self.using:
            self.rules.append(Rule((), set_masked_mark(initial, self.all_blocks | self.this_block)))
            self.using = True

    def _positive_bit(self) -> int:
        return self.this_block if self.done_first_positive else self.all_blocks

    def _finish_positive(self) -> None:
        if not self.done_first_positive:
            self.done_first_positive = True
            return
        self.rules.append(Rule(Match().mark_clear(self.this_block), clear_mark(self.all_blocks)))

    def ports(self, protocol, splits: list[list[PortRange]], named_sets: list[str], src: bool) -> None:
        self._init(0)
        bit = self._positive_bit()
        for split in splits:
            m = _protocol_match(Match(), protocol)
            m = m.source_ports(*split) if src else m.dest_ports(*split)
            self.rules.append(Rule(m, set_mark(bit)))
        for set_name in named_sets:
            m = Match().source_ip_port_set(set_name) if src else Match().dest_ip_port_set(set_name)
            self.rules.append(Rule(m, set_mark(bit)))
        self._finish_positive()

    def cidrs(self, cidrs: list[str], src: bool) -> None:
        self._init(0)
        bit = self._positive_bit()
        for cidr in cidrs:
            m = Match().source_net(cidr) if src else Match().dest_net(cidr)
            self.rules.append(Rule(m, set_mark(bit)))
        self._finish_positive()

    def negated_cidrs(self, cidrs: list[str], src: bool) -> None:
        self._init(self.all_blocks)
        for cidr in cidrs:
            m = Match().source_net(cidr) if src else Match().dest_net(cidr)
            self.rules.append(Rule(m, clear_mark(self.all_blocks)))


def _icmp(m: Match, icmp: ICMPMatch | None, ip_version: int, negated: bool) -> Match:
    if icmp is None:
        return m
    if ip_version == 4:
        if icmp.code is None:
            return m.not_icmp_type(icmp.type) if negated else m.icmp_type(icmp.type)
        return (m.not_icmp_type_and_code(icmp.type, icmp.code) if negated
                else m.icmp_type_and_code(icmp.type, icmp.code))
    if icmp.code is None:
        return m.not_icmpv6_type(icmp.type) if negated else m.icmpv6_type(icmp.type)
    return (m.not_icmpv6_type_and_code(icmp.type, icmp.code) if negated
            else m.icmpv6_type_and_code(icmp.type, icmp.code))


def _main_match(rule: ParsedRule, ip_version: int, nets: _Nets, src_ports, src_named,
                dst_ports, dst_named) -> Match:
    """The positive matches, then the negated ones, in Felix's order."""
    def set_name(set_id: str) -> str:
        return names.ip_set_name(set_id, ip_version)

    m = _protocol_match(_NO_MATCH, rule.protocol)
    if nets.src:
        m = m.source_net(nets.src[0])
    for sid in rule.src_ip_set_ids:
        m = m.source_ip_set(set_name(sid))
    if src_ports:
        m = m.source_ports(*src_ports)
    for sid in src_named:
        m = m.source_ip_port_set(set_name(sid))
    if nets.dst:
        m = m.dest_net(nets.dst[0])
    for sid in rule.dst_ip_set_ids:
        m = m.dest_ip_set(set_name(sid))
    for sid in rule.dst_ip_port_set_ids:
        m = m.dest_ip_port_set(set_name(sid))
    if dst_ports:
        m = m.dest_ports(*dst_ports)
    for sid in dst_named:
        m = m.dest_ip_port_set(set_name(sid))
    m = _icmp(m, rule.icmp, ip_version, False)

    if rule.not_protocol is not None:
        m = (m.not_protocol_num(rule.not_protocol) if isinstance(rule.not_protocol, int)
             else m.not_protocol(rule.not_protocol))
    if nets.not_src:
        m = m.not_source_net(nets.not_src[0])
    for sid in rule.not_src_ip_set_ids:
        m = m.not_source_ip_set(set_name(sid))
    if rule.not_src_ports:
        for split in split_port_list(rule.not_src_ports):
            m = m.not_source_ports(*split)
    for sid in rule.not_src_named_port_ip_set_ids:
        m = m.not_source_ip_port_set(set_name(sid))
    if nets.not_dst:
        m = m.not_dest_net(nets.not_dst[0])
    for sid in rule.not_dst_ip_set_ids:
        m = m.not_dest_ip_set(set_name(sid))
    if rule.not_dst_ports:
        for split in split_port_list(rule.not_dst_ports):
            m = m.not_dest_ports(*split)
    for sid in rule.not_dst_named_port_ip_set_ids:
        m = m.not_dest_ip_port_set(set_name(sid))
    return _icmp(m, rule.not_icmp, ip_version, True)


def log_prefix(cfg: RulesConfig, owner: Owner, tier: str) -> str:
    """``LogPrefix`` with ``%t`` (tier), ``%k`` (kind short name, ``pro`` for profiles),
    ``%n`` (name) and ``%p`` (``ns/name``, or name) replaced; other ``%`` text is kept."""
    prefix = cfg.log_prefix or "calico-packet"
    if "%" not in prefix:
        return prefix
    if isinstance(owner, PolicyID):
        kind, name, ns = owner.kind_short, owner.name, owner.namespace
    else:
        kind, name, ns = "pro", owner, ""
    values = {"t": tier, "k": kind, "n": name, "p": f"{ns}/{name}" if ns else name}
    out = []
    i = 0
    while i < len(prefix):
        if prefix[i] == "%" and i + 1 < len(prefix) and prefix[i + 1] in values:
            out.append(values[prefix[i + 1]])
            i += 2
        else:
            out.append(prefix[i])
            i += 1
    return "".join(out)


def _action_rules(cfg: RulesConfig, rule: ParsedRule, match: Match, owner: Owner,
                  tier: str) -> list[Rule]:
    """Allow/pass/deny set their mark bit on the match, then act on the bit in a second
    rule; log logs (rate-limited if configured) and does nothing else."""
    action = rule.action
    if action == "log":
        log_match = Match()
        if cfg.log_action_rate_limit:
            log_match = log_match.limit(cfg.log_action_rate_limit, cfg.log_action_rate_limit_burst)
        return [Rule(log_match + match, log(log_prefix(cfg, owner, tier)))]
    if action in ("", "allow"):
        mark, verdict = cfg.mark_accept, RETURN
    elif action in ("next-tier", "pass"):
        mark, verdict = cfg.mark_pass, RETURN
    elif action == "deny":
        mark, verdict = cfg.mark_drop, cfg.deny_action
    else:
        raise ValueError(f"unknown rule action {action!r}")
    return [Rule(match, set_mark(mark)), _verdict_rule(mark, verdict)]


@lru_cache(maxsize=256)
def _verdict_rule(mark: int, verdict: Action) -> Rule:
    """``-m mark --mark B/B --jump <verdict>``; shared, since rules are immutable."""
    return Rule(Match().mark_single_bit_set(mark), verdict)


def rule_to_iptables_rules(cfg: RulesConfig, rule: ParsedRule, ip_version: int, owner: Owner,
                           tier: str = "") -> list[Rule]:
    """One ParsedRule as iptables rules for one IP version (empty if it does not apply)."""
    nets = filter_nets_for_ip_version(rule, ip_version)
    if nets is None:
        return []
    blocks = _BlockBuilder(cfg.mark_scratch0, cfg.mark_scratch1)

    def set_names(ids) -> list[str]:
        return [names.ip_set_name(i, ip_version) for i in ids]

    src_ports: list[PortRange] = list(rule.src_ports)
    src_named = list(rule.src_named_port_ip_set_ids)
    splits = split_port_list(src_ports)
    if len(splits) + len(src_named) > 1:
        blocks.ports(rule.protocol, splits, set_names(src_named), src=True)
        src_ports, src_named = [], []
    dst_ports: list[PortRange] = list(rule.dst_ports)
    dst_named = list(rule.dst_named_port_ip_set_ids)
    splits = split_port_list(dst_ports)
    if len(splits) + len(dst_named) > 1:
        blocks.ports(rule.protocol, splits, set_names(dst_named), src=False)
        dst_ports, dst_named = [], []
    if len(nets.src) > 1:
        blocks.cidrs(nets.src, src=True)
        nets.src = []
    if len(nets.dst) > 1:
        blocks.cidrs(nets.dst, src=False)
        nets.dst = []
    if len(nets.src) + len(nets.not_src) > 1:
        blocks.negated_cidrs(nets.not_src, src=True)
        nets.not_src = []
    if len(nets.dst) + len(nets.not_dst) > 1:
        blocks.negated_cidrs(nets.not_dst, src=False)
        nets.not_dst = []

    match = _main_match(rule, ip_version, nets, src_ports, src_named, dst_ports, dst_named)
    if blocks.using:
        match = match.mark_single_bit_set(blocks.all_blocks)
    out = blocks.rules + _action_rules(cfg, rule, match, owner, tier)
    if rule.annotations:
        extra = tuple(f"{k}={v}" for k, v in rule.annotations)
        out = [r.with_comments(*extra) for r in out]
    return out


def rules_to_chain_rules(cfg: RulesConfig, rules: Sequence[ParsedRule], ip_version: int,
                         owner: Owner, tier: str, chain_comment: str) -> tuple[Rule, ...]:
    """All rules of one direction; trailing RETURNs are dropped (a RETURN at the end of a
    chain is a no-op), and the chain comment goes on the first rule, which is an empty
    rule when the direction has none."""
    out: list[Rule] = []
    for r in rules:
        out.extend(rule_to_iptables_rules(cfg, r, ip_version, owner, tier))
    while out and out[-1].action is not None and out[-1].action.kind == "return":
        out.pop()
    if not out:
        return (Rule((), None, (chain_comment,)),)  # (an empty rule with the comment)
    out[0] = out[0].with_comments(chain_comment)
    return tuple(out)


def policy_chain_comment(policy_id: PolicyID, direction: str) -> str:
    if policy_id.namespace:
        return f"{policy_id.kind} {policy_id.namespace}/{policy_id.name} {direction}"
    return f"{policy_id.kind} {policy_id.name} {direction}"


def policy_chains(cfg: RulesConfig, policy_id: PolicyID, policy: Policy, ip_version: int,
                  force_programming: bool = False) -> list[Chain]:
    """``cali-pi-<id>`` and ``cali-po-<id>`` for a policy; nothing for a staged policy.
    ``force_programming`` marks them for the filter table when the policy has the
    ``AssumeNeededOnEveryNode`` hint (see ``policy_chains_by_table``)."""
    if policy_id.staged:
        return []
    inbound = Chain(names.policy_chain_name(names.POLICY_INBOUND_PREFIX, policy_id),
                    rules_to_chain_rules(cfg, policy.inbound_rules, ip_version, policy_id,
                                         policy.tier,
                                         policy_chain_comment(policy_id, DIRECTION_INGRESS)),
                    force_programming)
    outbound = Chain(names.policy_chain_name(names.POLICY_OUTBOUND_PREFIX, policy_id),
                     rules_to_chain_rules(cfg, policy.outbound_rules, ip_version, policy_id,
                                          policy.tier,
                                          policy_chain_comment(policy_id, DIRECTION_EGRESS)),
                     force_programming)
    return [inbound, outbound]


PERF_HINT_ASSUME_NEEDED = "AssumeNeededOnEveryNode"


def policy_chains_by_table(cfg: RulesConfig, policy_id: PolicyID, policy: Policy,
                           ip_version: int) -> dict[str, list[Chain]]:
    """Where Felix puts a policy's chains: raw, mangle and filter all get both chains (the
    tables' refcounting programs only the referenced ones); only the filter copies are
    force-programmed for ``AssumeNeededOnEveryNode``."""
    chains = policy_chains(cfg, policy_id, policy, ip_version)
    force = PERF_HINT_ASSUME_NEEDED in policy.perf_hints
    filter_chains = (policy_chains(cfg, policy_id, policy, ip_version, force_programming=True)
                     if force else chains)
    return {"raw": chains, "mangle": chains, "filter": filter_chains}


def profile_chains(cfg: RulesConfig, profile_name: str, profile: Profile,
                   ip_version: int) -> tuple[Chain, Chain]:
    """``cali-pri-<name>`` and ``cali-pro-<name>``; profiles belong to no tier."""
    inbound = Chain(names.profile_chain_name(names.PROFILE_INBOUND_PREFIX, profile_name),
                    rules_to_chain_rules(cfg, profile.inbound_rules, ip_version, profile_name, "",
                                         f"Profile {profile_name} ingress"))
    outbound = Chain(names.profile_chain_name(names.PROFILE_OUTBOUND_PREFIX, profile_name),
                     rules_to_chain_rules(cfg, profile.outbound_rules, ip_version, profile_name, "",
                                          f"Profile {profile_name} egress"))
    return inbound, outbound


def profile_chains_by_table(cfg: RulesConfig, profile_name: str, profile: Profile,
                            ip_version: int) -> dict[str, list[Chain]]:
    """Filter gets both profile chains, mangle only the outbound one (HEP egress there)."""
    inbound, outbound = profile_chains(cfg, profile_name, profile, ip_version)
    return {"filter": [inbound, outbound], "mangle": [outbound]}
