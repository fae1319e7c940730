"""Chains whose content comes from a single setting or list: failsafe ports, NAT outgoing,
floating-IP NAT, blocked service CIDRs, egress DSCP (Felix's ``rules/nat.go``, ``dscp.go``
and the failsafe part of ``static.go``).

They sit apart from the hook chains because they change for different reasons (a pool
gains natOutgoing, a service CIDR is advertised) while the hook chains stay put.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable, Mapping, Sequence

from node.felix.rules import names
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import (
    ACCEPT, RETURN, Action, Chain, Match, Rule, dnat, dscp, join_host_port, masquerade, snat)


def _net_version(net: str) -> int | None:
    try:
        return ipaddress.ip_network(net, strict=False).version
    except ValueError:
        return None


def _failsafe_rules(entries, ip_version: int, port_side: str, net_side: str) -> list[Rule]:
    """One ACCEPT per entry: ``-p <proto> -m multiport --<side>-ports <port>`` plus the
    entry's net (when it has one of this IP family; entries of the other family, or with a
    net that does not parse, are skipped as Felix skips them)."""
    rules = []
    for pp in entries:
        m = Match().protocol(pp.protocol)
        m = m.dest_ports(pp.port) if port_side == "dst" else m.source_ports(pp.port)
        if pp.net:
            if _net_version(pp.net) != ip_version:
                continue
            m = m.source_net(pp.net) if net_side == "src" else m.dest_net(pp.net)
        rules.append(Rule(m, ACCEPT))
    return rules


def failsafe_in_chain(cfg: RulesConfig, table: str, ip_version: int) -> Chain:
    """``cali-failsafe-in``: inbound failsafe ports; the raw copy also accepts replies to
    the outbound failsafe ports (raw runs before conntrack)."""
    rules = _failsafe_rules(cfg.failsafe_inbound_host_ports, ip_version, "dst", "src")
    if table == "raw":
        rules += _failsafe_rules(cfg.failsafe_outbound_host_ports, ip_version, "src", "src")
    return Chain(names.CHAIN_FAILSAFE_IN, tuple(rules))


def failsafe_out_chain(cfg: RulesConfig, table: str, ip_version: int) -> Chain:
    """``cali-failsafe-out``: outbound failsafe ports; the raw copy also accepts replies to
    the inbound failsafe ports."""
    rules = _failsafe_rules(cfg.failsafe_outbound_host_ports, ip_version, "dst", "dst")
    if table == "raw":
        rules += _failsafe_rules(cfg.failsafe_inbound_host_ports, ip_version, "src", "dst")
    return Chain(names.CHAIN_FAILSAFE_OUT, tuple(rules))


def _nat_outgoing_rule(cfg: RulesConfig, ip_version: int, protocol: str, action: Action) -> Rule:
    m = (Match().source_ip_set(names.ip_set_name(names.IPSET_ID_NAT_OUTGOING_MASQ_POOLS, ip_version))
         .not_dest_ip_set(names.ip_set_name(names.IPSET_ID_ALL_POOLS, ip_version)))
    if cfg.nat_outgoing_exclusions == "IPPoolsAndHostIPs":
        m = m.not_dest_ip_set(names.ip_set_name(names.IPSET_ID_ALL_HOST_NETS, ip_version))
    if protocol:
        m = m.protocol(protocol)
    if cfg.nat_outgoing_interface_filter:
        m = m.out_interface(cfg.nat_outgoing_interface_filter)
    return Rule(m, action)


def nat_outgoing_chain(cfg: RulesConfig, active: bool, ip_version: int) -> Chain:
    """``cali-nat-outgoing``: empty unless some pool of this family has natOutgoing; then
    masquerade (or SNAT to ``NATOutgoingAddress``) traffic from masq pools to non-pool
    destinations, with per-protocol port-range rules first when ``NATPortRange`` is set."""
    if not active:
        return Chain(names.CHAIN_NAT_OUTGOING, ())
    if cfg.nat_outgoing_address:
        default = snat(cfg.nat_outgoing_address, cfg.snat_fully_random)
    else:
        default = masquerade("", cfg.masq_fully_random)
    if cfg.nat_port_range is not None and cfg.nat_port_range[1] > 0:
        to_ports = f"{cfg.nat_port_range[0]}-{cfg.nat_port_range[1]}"
        if cfg.nat_outgoing_address:
            ranged = snat(join_host_port(cfg.nat_outgoing_address, to_ports), cfg.snat_fully_random)
        else:
            ranged = masquerade(to_ports, cfg.masq_fully_random)
        rules = (
            _nat_outgoing_rule(cfg, ip_version, "tcp", ranged),
            _nat_outgoing_rule(cfg, ip_version, "tcp", RETURN),
            _nat_outgoing_rule(cfg, ip_version, "udp", ranged),
            _nat_outgoing_rule(cfg, ip_version, "udp", RETURN),
            _nat_outgoing_rule(cfg, ip_version, "", default),
        )
    else:
        rules = (_nat_outgoing_rule(cfg, ip_version, "", default),)
    return Chain(names.CHAIN_NAT_OUTGOING, rules)


def floating_ip_maps(nat_infos: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """From (external IP, internal IP) pairs to the DNAT map (ext → int) and the reverse
    SNAT map (int → ext); clashes resolve to the alphabetically smallest IP, as Felix's
    floating-IP manager does."""
    dnats: dict[str, str] = {}
    for ext, internal in nat_infos:
        cur = dnats.get(ext)
        if cur is None or internal < cur:
            dnats[ext] = internal
    snats: dict[str, str] = {}
    for ext, internal in dnats.items():
        cur = snats.get(internal)
        if cur is None or ext < cur:
            snats[internal] = ext
    return dnats, snats


def fip_dnat_chain(dnats: Mapping[str, str]) -> Chain:
    """``cali-fip-dnat``: one DNAT per floating IP, sorted by external IP."""
    return Chain(names.CHAIN_FIP_DNAT, tuple(
        Rule(Match().dest_net(ext), dnat(dnats[ext])) for ext in sorted(dnats)))


def fip_snat_chain(cfg: RulesConfig, snats: Mapping[str, str]) -> Chain:
    """``cali-fip-snat``: hairpin SNAT for traffic from a workload to its own floating IP."""
    return Chain(names.CHAIN_FIP_SNAT, tuple(
        Rule(Match().dest_net(internal).source_net(internal),
             snat(snats[internal], cfg.snat_fully_random))
        for internal in sorted(snats)))


def cidr_block_chain(cfg: RulesConfig, cidrs: Sequence[str], ip_version: int) -> Chain:
    """``cali-cidr-block``: drop or reject (``ServiceLoopPrevention``) traffic to advertised
    service CIDRs of this family that nothing answers, so it cannot loop; empty when the
    prevention is Disabled."""
    action = cfg.block_cidr_action
    rules = []
    if action is not None:
        for cidr in sorted(cidrs):
            if (":" in cidr) == (ip_version == 6):
                rules.append(Rule(Match().dest_net(cidr), action))
    return Chain(names.CHAIN_CIDR_BLOCK, tuple(rules))


def egress_dscp_chain(dscp_rules: Sequence[tuple[str, int]] = ()) -> Chain:
    """``cali-egress-dscp``: ``(source addresses, DSCP value)`` pairs, sorted by addresses
    (the addresses are a comma-joined list of bare IPs), as Felix's DSCP manager orders
    them. Felix puts an endpoint's addresses in one ``--source a,b`` rule, which iptables
    stores as one rule per address (both with the same rule ID, so the chain would never
    read back as written): here each address has its own rule; one address, the usual
    case, gives Felix's rule exactly."""
    return Chain(names.CHAIN_EGRESS_DSCP, tuple(
        Rule(Match().source_net(addr), dscp(value)) for src, value in sorted(dscp_rules) for addr in src.split(",")))
