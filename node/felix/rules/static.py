"""The static chains of each table and the hook rules in the kernel chains (Felix's
``rules/static.go`` and ``int_dataplane.go`` ``setUpIptablesNormal``).

These chains depend only on configuration; they route packets into the dispatch and
endpoint chains and carry the verdict back through mark bits. The order of the rules is
observable (rule IDs chain through it), so it follows Felix rule for rule.
"""
from __future__ import annotations

from dataclasses import dataclass

from node.felix.rules import names
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import (
    ACCEPT, ADDR_TYPE_LOCAL, DROP, NOTRACK, RETURN, Chain, Match, Rule, clear_mark, dnat, dscp,
    goto, jump, masquerade, set_mark)
from node.felix.rules.nat import failsafe_in_chain, failsafe_out_chain
from node.felix.rules.policy import split_port_list
from node.felix.types import PortRange

PROTO_IPIP = 4
PROTO_UDP = 17
PROTO_ICMPV6 = 58

IPIP_IFACE = "tunl0"
VXLAN_IFACE_V4 = "vxlan.calico"
VXLAN_IFACE_V6 = "vxlan-v6.calico"

TABLES = ("raw", "mangle", "nat", "filter")

# The kernel's own chains per table, in iptables-save order.
KERNEL_CHAINS = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}

W = "+"  # iptables interface wildcard


# --------------------------------------------------------------------------------------
# filter

def filter_forward_chain(cfg: RulesConfig) -> Chain:
    """``cali-FORWARD``: clear our marks (but keep accept, set by raw/pre-DNAT), then HEP
    forward ingress, the workload dispatch both ways, HEP forward egress, the CIDR block."""
    rules = [
        Rule((), clear_mark(cfg.all_calico_mark_bits & ~cfg.mark_accept)),
        Rule(Match().mark_clear(cfg.mark_accept), jump(names.CHAIN_FROM_HEP_FORWARD)),
    ]
    for prefix in cfg.workload_iface_prefixes:
        rules.append(Rule(Match().in_interface(prefix + W), jump(names.CHAIN_FROM_WORKLOAD_DISPATCH)))
        rules.append(Rule(Match().out_interface(prefix + W), jump(names.CHAIN_TO_WORKLOAD_DISPATCH)))
    rules.append(Rule((), jump(names.CHAIN_TO_HEP_FORWARD)))
    rules.append(Rule((), jump(names.CHAIN_CIDR_BLOCK)))
    return Chain(names.CHAIN_FORWARD, tuple(rules))


def filter_forward_append_rules(cfg: RulesConfig) -> tuple[Rule, ...]:
    """Appended to the kernel FORWARD chain in every insert mode: accept what policy
    accepted, then tag the rest with the accept bit so mangle POSTROUTING skips normal HEP
    egress policy for forwarded traffic."""
    return (
        Rule(Match().mark_single_bit_set(cfg.mark_accept), cfg.filter_allow,
             ("Policy explicitly accepted packet.",)),
        Rule((), set_mark(cfg.mark_accept)),
    )


def _wireguard_input_rules(cfg: RulesConfig, ip_version: int) -> list[Rule]:
    if ip_version == 4 and cfg.wireguard_enabled:
        return [Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.wireguard_listening_port)
                     .dest_addr_type(ADDR_TYPE_LOCAL), cfg.filter_allow,
                     ("Allow incoming IPv4 Wireguard packets",))]
    if ip_version == 6 and cfg.wireguard_enabled_v6:
        return [Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.wireguard_listening_port_v6)
                     .dest_addr_type(ADDR_TYPE_LOCAL), cfg.filter_allow,
                     ("Allow incoming IPv6 Wireguard packets",))]
    return []


def filter_input_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-INPUT``: encap checks, workload traffic to ``cali-wl-to-host``, then host
    endpoint ingress policy for everything else."""
    deny = cfg.deny_action
    allow = cfg.filter_allow
    rules: list[Rule] = []
    if ip_version == 4 and cfg.ipip_enabled:
        rules.append(Rule(Match().protocol_num(PROTO_IPIP)
                          .source_ip_set(names.ip_set_name(names.IPSET_ID_ALL_HOST_NETS, 4))
                          .dest_addr_type(ADDR_TYPE_LOCAL), allow,
                          ("Allow IPIP packets from Calico hosts",)))
        rules.append(Rule(Match().protocol_num(PROTO_IPIP), deny,
                          (f"{deny} IPIP packets from non-Calico hosts",)))
    if ip_version == 4 and cfg.vxlan_enabled:
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.vxlan_port)
                          .source_ip_set(names.ip_set_name(names.IPSET_ID_ALL_VXLAN_SOURCE_NETS, 4))
                          .dest_addr_type(ADDR_TYPE_LOCAL), allow,
                          ("Allow IPv4 VXLAN packets from allowed hosts",)))
        # Felix uses a plain DROP here, whatever the deny action.
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.vxlan_port)
                          .dest_addr_type(ADDR_TYPE_LOCAL), DROP,
                          ("Drop IPv4 VXLAN packets from non-allowed hosts",)))
    if ip_version == 6 and cfg.vxlan_enabled_v6:
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.vxlan_port)
                          .source_ip_set(names.ip_set_name(names.IPSET_ID_ALL_VXLAN_SOURCE_NETS, 6))
                          .dest_addr_type(ADDR_TYPE_LOCAL), allow,
                          ("Allow IPv6 VXLAN packets from allowed hosts",)))
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.vxlan_port)
                          .dest_addr_type(ADDR_TYPE_LOCAL), deny,
                          (f"{deny} IPv6 VXLAN packets from non-allowed hosts",)))
    rules += _wireguard_input_rules(cfg, ip_version)
    if cfg.kube_ipvs_support:
        # Traffic that IPVS will forward (to a service, or a NodePort) gets its endpoint
        # mark here and skips the to-host rules; cali-OUTPUT polices it.
        rules += [
            Rule((), clear_mark(cfg.mark_endpoint)),
            Rule((), jump(names.CHAIN_FORWARD_CHECK)),
            Rule(Match().mark_not_clear(cfg.mark_endpoint), RETURN),
        ]
    for prefix in cfg.workload_iface_prefixes:
        rules.append(Rule(Match().in_interface(prefix + W), goto(names.CHAIN_WORKLOAD_TO_HOST)))
    rules += [
        Rule(Match().mark_single_bit_set(cfg.mark_accept), allow),
        Rule((), clear_mark(cfg.all_calico_mark_bits)),
        Rule((), jump(names.CHAIN_FROM_HOST_ENDPOINT)),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), allow,
             ("Host endpoint policy accepted packet.",)),
    ]
    return Chain(names.CHAIN_INPUT, tuple(rules))


def icmpv6_router_rules(action) -> list[Rule]:
    """The ICMPv6 types a router must accept from workloads (MLD 130-132, router
    solicitation 133, neighbour solicitation/advertisement 135/136)."""
    return [Rule(Match().protocol_num(PROTO_ICMPV6).icmpv6_type(t), action)
            for t in (130, 131, 132, 133, 135, 136)]


def filter_workload_to_host_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-wl-to-host``: workload egress policy, then ``DefaultEndpointToHostAction``."""
    allow = cfg.filter_allow
    rules: list[Rule] = []
    if ip_version == 6:
        rules += icmpv6_router_rules(allow)
    if cfg.openstack_special_cases:
        if ip_version == 4 and cfg.openstack_metadata_ip:
            rules.append(Rule(Match().protocol("tcp").dest_net(cfg.openstack_metadata_ip)
                              .dest_ports(cfg.openstack_metadata_port), allow))
        dhcp_src, dhcp_dst = (68, 67) if ip_version == 4 else (546, 547)
        rules.append(Rule(Match().protocol("udp").source_ports(dhcp_src).dest_ports(dhcp_dst), allow))
        rules.append(Rule(Match().protocol("udp").dest_ports(53), allow))
    rules.append(Rule((), jump(names.CHAIN_FROM_WORKLOAD_DISPATCH)))
    rules.append(Rule((), cfg.endpoint_to_host, ("Configured DefaultEndpointToHostAction",)))
    return Chain(names.CHAIN_WORKLOAD_TO_HOST, tuple(rules))


def filter_output_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-OUTPUT``: host-to-workload traffic is not policed (RETURN); encap traffic to
    other Calico hosts is allowed; the rest gets HEP egress policy unless it was DNAT'd
    (that case is policed in mangle POSTROUTING, after the kernel re-routes it)."""
    allow = cfg.filter_allow
    rules = [Rule(Match().mark_single_bit_set(cfg.mark_accept), allow)]
    if cfg.kube_ipvs_support:
        # Marked in cali-INPUT: IPVS is forwarding it; police it as cali-FORWARD would.
        rules.append(Rule(Match().mark_not_clear(cfg.mark_endpoint), goto(names.CHAIN_FORWARD_ENDPOINT_MARK)))
    for prefix in cfg.workload_iface_prefixes:
        rules.append(Rule(Match().out_interface(prefix + W), RETURN))
    if ip_version == 4 and cfg.ipip_enabled:
        rules.append(Rule(Match().protocol_num(PROTO_IPIP)
                          .dest_ip_set(names.ip_set_name(names.IPSET_ID_ALL_HOST_NETS, 4))
                          .src_addr_type(ADDR_TYPE_LOCAL, False), allow,
                          ("Allow IPIP packets to other Calico hosts",)))
    if ip_version == 4 and cfg.vxlan_enabled:
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.vxlan_port)
                          .src_addr_type(ADDR_TYPE_LOCAL, False)
                          .dest_ip_set(names.ip_set_name(names.IPSET_ID_ALL_VXLAN_SOURCE_NETS, 4)),
                          allow, ("Allow IPv4 VXLAN packets to other allowed hosts",)))
    if ip_version == 6 and cfg.vxlan_enabled_v6:
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.vxlan_port)
                          .src_addr_type(ADDR_TYPE_LOCAL, False)
                          .dest_ip_set(names.ip_set_name(names.IPSET_ID_ALL_VXLAN_SOURCE_NETS, 6)),
                          allow, ("Allow IPv6 VXLAN packets to other allowed hosts",)))
    if ip_version == 4 and cfg.wireguard_enabled:
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.wireguard_listening_port)
                          .src_addr_type(ADDR_TYPE_LOCAL, False), allow,
                          ("Allow outgoing IPv4 Wireguard packets",)))
    if ip_version == 6 and cfg.wireguard_enabled_v6:
        rules.append(Rule(Match().protocol_num(PROTO_UDP).dest_ports(cfg.wireguard_listening_port_v6)
                          .src_addr_type(ADDR_TYPE_LOCAL, False), allow,
                          ("Allow outgoing IPv6 Wireguard packets",)))
    rules += [
        Rule((), clear_mark(cfg.all_calico_mark_bits)),
        Rule(Match().not_conntrack_state("DNAT"), jump(names.CHAIN_TO_HOST_ENDPOINT)),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), allow,
             ("Host endpoint policy accepted packet.",)),
    ]
    return Chain(names.CHAIN_OUTPUT, tuple(rules))


def forward_check_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-forward-check`` (IPVS mode): is a packet in INPUT really being forwarded?
    Not if it belongs to a known connection (a reply to a host process); yes if it goes
    to a NodePort on this host or to an address that is not this host's (a service
    address on kube-ipvs0). Forwarded packets get their interface's endpoint mark."""
    this_host = names.ip_set_name(names.IPSET_ID_THIS_HOST_IPS, ip_version)
    rules = [Rule(Match().conntrack_state("RELATED,ESTABLISHED"), RETURN)]
    ranges = [PortRange(lo, hi) for lo, hi in cfg.kube_node_port_ranges]
    for split in split_port_list(ranges):
        for proto in ("tcp", "udp"):
            rules.append(Rule(Match().protocol(proto).dest_ports(*split).dest_ip_set(this_host),
                              goto(names.CHAIN_SET_ENDPOINT_MARK), ("To kubernetes NodePort service",)))
    rules.append(Rule(Match().not_dest_ip_set(this_host), jump(names.CHAIN_SET_ENDPOINT_MARK),
                      ("To kubernetes service",)))
    return Chain(names.CHAIN_FORWARD_CHECK, tuple(rules))


def forward_endpoint_mark_chain(cfg: RulesConfig) -> Chain:
    """``cali-forward-endpoint-mark`` (IPVS mode): in OUTPUT, what cali-FORWARD does, with
    the source endpoint found from the mark (non-Calico sources skip egress policy); the
    endpoint mark is cleared before accepting, as the packet may be encapsulated and come
    through again."""
    rules = [Rule(Match().not_mark_matches_with_mask(cfg.mark_non_cali_endpoint, cfg.mark_endpoint),
                  jump(names.CHAIN_FROM_ENDPOINT_MARK))]
    for prefix in cfg.workload_iface_prefixes:
        rules.append(Rule(Match().out_interface(prefix + W), jump(names.CHAIN_TO_WORKLOAD_DISPATCH)))
    rules += [
        Rule((), jump(names.CHAIN_TO_HEP_FORWARD)),
        Rule((), clear_mark(cfg.mark_endpoint)),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), cfg.filter_allow,
             ("Policy explicitly accepted packet.",)),
    ]
    return Chain(names.CHAIN_FORWARD_ENDPOINT_MARK, tuple(rules))


def filter_chains(cfg: RulesConfig, ip_version: int) -> list[Chain]:
    """Felix's StaticFilterTableChains order: FORWARD, INPUT, wl-to-host, failsafe-in,
    (forward-check), OUTPUT, failsafe-out, (forward-endpoint-mark); the two in brackets
    in IPVS mode only."""
    chains = [
        filter_forward_chain(cfg),
        filter_input_chain(cfg, ip_version),
        filter_workload_to_host_chain(cfg, ip_version),
        failsafe_in_chain(cfg, "filter", ip_version),
    ]
    if cfg.kube_ipvs_support:
        chains.append(forward_check_chain(cfg, ip_version))
    chains += [filter_output_chain(cfg, ip_version), failsafe_out_chain(cfg, "filter", ip_version)]
    if cfg.kube_ipvs_support:
        chains.append(forward_endpoint_mark_chain(cfg))
    return chains


# --------------------------------------------------------------------------------------
# nat

def nat_prerouting_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    rules = [Rule((), jump(names.CHAIN_FIP_DNAT))]
    if ip_version == 4 and cfg.openstack_special_cases and cfg.openstack_metadata_ip:
        rules.append(Rule(Match().protocol("tcp").dest_ports(80).dest_net("169.254.169.254/32"),
                          dnat(cfg.openstack_metadata_ip, cfg.openstack_metadata_port)))
    return Chain(names.CHAIN_PREROUTING, tuple(rules))


def tunnel_devices(cfg: RulesConfig, ip_version: int) -> list[str]:
    """Tunnel devices whose traffic from a wrong local source address gets masqueraded
    to the tunnel address: those enabled with an address (WireGuard gets its address
    without a restart, so it only needs to be enabled)."""
    devices = []
    if ip_version == 4 and cfg.ipip_enabled and cfg.ipip_tunnel_address:
        devices.append(IPIP_IFACE)
    if ip_version == 4 and cfg.vxlan_enabled and cfg.vxlan_tunnel_address:
        devices.append(VXLAN_IFACE_V4)
    if ip_version == 6 and cfg.vxlan_enabled_v6 and cfg.vxlan_tunnel_address_v6:
        devices.append(VXLAN_IFACE_V6)
    if ip_version == 4 and cfg.wireguard_enabled and cfg.wireguard_interface_name:
        devices.append(cfg.wireguard_interface_name)
    if ip_version == 6 and cfg.wireguard_enabled_v6 and cfg.wireguard_interface_name_v6:
        devices.append(cfg.wireguard_interface_name_v6)
    return devices


def masq_port_range_excluding(port: int) -> str:
    """A MASQUERADE ``--to-ports`` range without ``port``: the wider side of it, never
    below 1024 (one contiguous range is all iptables takes); "" for no port."""
    if not 0 < port <= 65535:
        return ""
    low, high = 1024, 65535
    return f"{low}-{port - 1}" if port - low >= high - port else f"{port + 1}-{high}"


def nat_postrouting_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    rules = [Rule((), jump(names.CHAIN_FIP_SNAT)), Rule((), jump(names.CHAIN_NAT_OUTGOING))]
    # With VXLAN on, a masqueraded UDP flow must not get the VXLAN port as its source:
    # the replies would hit the "Drop VXLAN packets from non-allowed hosts" rule
    # (Calico issue 12244). Only a rule naming a protocol can carry --to-ports, so UDP
    # gets its own rule before the catch-all.
    vxlan_on = cfg.vxlan_enabled if ip_version == 4 else cfg.vxlan_enabled_v6
    udp_ports = masq_port_range_excluding(cfg.vxlan_port) if vxlan_on else ""
    for dev in tunnel_devices(cfg, ip_version):
        if udp_ports:
            rules.append(Rule(Match().protocol_num(PROTO_UDP).out_interface(dev)
                              .not_src_addr_type(ADDR_TYPE_LOCAL, True)
                              .src_addr_type(ADDR_TYPE_LOCAL, False),
                              masquerade(udp_ports, cfg.masq_fully_random)))
        rules.append(Rule(Match().out_interface(dev)
                          .not_src_addr_type(ADDR_TYPE_LOCAL, True)
                          .src_addr_type(ADDR_TYPE_LOCAL, False),
                          masquerade("", cfg.masq_fully_random)))
    return Chain(names.CHAIN_POSTROUTING, tuple(rules))


def nat_output_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    return Chain(names.CHAIN_OUTPUT, (Rule((), jump(names.CHAIN_FIP_DNAT)),))


def nat_chains(cfg: RulesConfig, ip_version: int) -> list[Chain]:
    return [nat_prerouting_chain(cfg, ip_version), nat_postrouting_chain(cfg, ip_version),
            nat_output_chain(cfg, ip_version)]


# --------------------------------------------------------------------------------------
# mangle

def mangle_prerouting_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-PREROUTING`` (mangle): established traffic and raw-accepted traffic pass
    at once; the rest meets pre-DNAT host endpoint policy."""
    allow = cfg.mangle_allow
    return Chain(names.CHAIN_PREROUTING, (
        Rule(Match().conntrack_state("RELATED,ESTABLISHED"), allow),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), allow),
        Rule((), jump(names.CHAIN_FROM_HOST_ENDPOINT)),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), allow,
             ("Host endpoint policy accepted packet.",)),
    ))


def mangle_postrouting_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-POSTROUTING`` (mangle): with Istio ambient mode, DSCP marking of new TCP
    connections between ambient-mode workloads; DSCP marking for traffic leaving the cluster, then
    HEP egress policy for host-originated DNAT'd traffic (allow = RETURN here); forwarded
    traffic (accept bit, or in IPVS mode an endpoint mark) is not host traffic."""
    ipvs = (Rule(Match().mark_not_clear(cfg.mark_endpoint), RETURN),) if cfg.kube_ipvs_support else ()
    istio: tuple[Rule, ...] = ()
    if cfg.istio_ambient_mode_enabled:
        # First, per workload interface prefix: new TCP connections between two Istio
        # ambient-mode endpoints get Istio's DSCP mark.
        mesh = names.ip_set_name(names.IPSET_ID_ALL_ISTIO_WEPS, ip_version)
        istio = tuple(
            Rule(Match().protocol("tcp").conntrack_state("NEW").out_interface(prefix + W)
                 .dest_ip_set(mesh).source_ip_set(mesh), dscp(cfg.istio_dscp_mark))
            for prefix in cfg.workload_iface_prefixes)
    return Chain(names.CHAIN_POSTROUTING, (
        *istio,
        Rule(Match().source_ip_set(names.ip_set_name(names.IPSET_ID_DSCP_ENDPOINTS, ip_version))
             .not_dest_ip_set(names.ip_set_name(names.IPSET_ID_ALL_POOLS, ip_version))
             .not_dest_ip_set(names.ip_set_name(names.IPSET_ID_THIS_HOST_IPS, ip_version)),
             jump(names.CHAIN_EGRESS_DSCP), ("set dscp for traffic leaving cluster.",)),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), RETURN),
        *ipvs,
        Rule((), clear_mark(cfg.all_calico_mark_bits)),
        Rule(Match().conntrack_state("DNAT"), jump(names.CHAIN_TO_HOST_ENDPOINT)),
        Rule(Match().mark_single_bit_set(cfg.mark_accept), RETURN,
             ("Host endpoint policy accepted packet.",)),
    ))


def mangle_chains(cfg: RulesConfig, ip_version: int) -> list[Chain]:
    return [failsafe_in_chain(cfg, "mangle", ip_version),
            failsafe_out_chain(cfg, "mangle", ip_version),
            mangle_prerouting_chain(cfg, ip_version),
            mangle_postrouting_chain(cfg, ip_version)]


# --------------------------------------------------------------------------------------
# raw

def _wireguard_marks_host_traffic(cfg: RulesConfig) -> bool:
    return (((cfg.wireguard_enabled and bool(cfg.wireguard_interface_name))
             or (cfg.wireguard_enabled_v6 and bool(cfg.wireguard_interface_name_v6)))
            and cfg.wireguard_encrypt_host_traffic)


def _vxlan_on(cfg: RulesConfig, ip_version: int) -> bool:
    return (ip_version == 4 and cfg.vxlan_enabled) or (ip_version == 6 and cfg.vxlan_enabled_v6)


def raw_prerouting_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    """``cali-PREROUTING`` (raw): mark workload traffic with scratch0, skip or apply the
    strict RPF check to it, send the rest to untracked host endpoint policy."""
    from_wl = cfg.mark_scratch0
    rules = [Rule((), clear_mark(cfg.all_calico_mark_bits))]
    if _wireguard_marks_host_traffic(cfg):
        rules.append(Rule((), jump(names.CHAIN_WIREGUARD_INCOMING_MARK)))
    if _vxlan_on(cfg, ip_version):
        rules.append(Rule(Match().protocol("udp").dest_port(cfg.vxlan_port), NOTRACK))
    for prefix in cfg.workload_iface_prefixes:
        rules.append(Rule(Match().in_interface(prefix + W), set_mark(from_wl)))
    rules.append(Rule(Match().mark_matches_with_mask(from_wl, from_wl), jump(names.CHAIN_RPF_SKIP)))
    if cfg.openstack_special_cases and ip_version == 4:
        rules.append(Rule(Match().protocol("udp").source_net("0.0.0.0").source_ports(68)
                          .dest_ports(67), ACCEPT))
    rules.append(Rule(Match().mark_matches_with_mask(from_wl, from_wl).rpf_check_failed(),
                      cfg.deny_action))
    rules.append(Rule(Match().mark_clear(from_wl), jump(names.CHAIN_FROM_HOST_ENDPOINT)))
    rules.append(Rule(Match().mark_single_bit_set(cfg.mark_accept), ACCEPT))
    return Chain(names.CHAIN_PREROUTING, tuple(rules))


def wireguard_incoming_mark_chain(cfg: RulesConfig) -> Chain:
    """``cali-wireguard-incoming-mark``: mark packets from anywhere but lo, the WireGuard
    devices and workloads, so the RPF check lets decrypted host traffic through."""
    rules = [Rule(Match().in_interface("lo"), RETURN),
             Rule(Match().in_interface(cfg.wireguard_interface_name), RETURN),
             Rule(Match().in_interface(cfg.wireguard_interface_name_v6), RETURN)]
    for prefix in cfg.workload_iface_prefixes:
        rules.append(Rule(Match().in_interface(prefix + W), RETURN))
    rules.append(Rule((), set_mark(cfg.mark_wireguard)))
    return Chain(names.CHAIN_WIREGUARD_INCOMING_MARK, tuple(rules))


def raw_output_chain(cfg: RulesConfig, ip_version: int) -> Chain:
    rules = [Rule((), clear_mark(cfg.all_calico_mark_bits)),
             Rule((), jump(names.CHAIN_TO_HOST_ENDPOINT))]
    if _vxlan_on(cfg, ip_version):
        rules.append(Rule(Match().protocol("udp").dest_port(cfg.vxlan_port), NOTRACK))
    rules.append(Rule(Match().mark_single_bit_set(cfg.mark_accept), ACCEPT))
    return Chain(names.CHAIN_OUTPUT, tuple(rules))


def raw_chains(cfg: RulesConfig, ip_version: int) -> list[Chain]:
    return [failsafe_in_chain(cfg, "raw", ip_version),
            failsafe_out_chain(cfg, "raw", ip_version),
            raw_prerouting_chain(cfg, ip_version),
            wireguard_incoming_mark_chain(cfg),
            raw_output_chain(cfg, ip_version)]


def static_chains(cfg: RulesConfig, table: str, ip_version: int) -> list[Chain]:
    """Every static chain of a table, in Felix's order. (Chains nothing references, such
    as ``cali-wireguard-incoming-mark`` without WireGuard, are still returned; the table's
    refcounting keeps them out of the dataplane.)"""
    if table == "filter":
        return filter_chains(cfg, ip_version)
    if table == "nat":
        return nat_chains(cfg, ip_version)
    if table == "mangle":
        return mangle_chains(cfg, ip_version)
    if table == "raw":
        return raw_chains(cfg, ip_version)
    raise ValueError(f"unknown table {table!r}")


# --------------------------------------------------------------------------------------
# Kernel-chain hooks.

@dataclass(frozen=True)
class KernelHooks:
    """Rules for the kernel chains: ``inserts`` go at the top in insert mode (bottom in
    append mode); ``appends`` always go last."""

    inserts: dict[str, tuple[Rule, ...]]
    appends: dict[str, tuple[Rule, ...]]


def kernel_hooks(cfg: RulesConfig, table: str) -> KernelHooks:
    """The jumps from the kernel chains into ours. The nat POSTROUTING jump is always
    appended, so kube-proxy's masquerade chain runs (and clears its mark) first; filter
    FORWARD gets the two static append rules."""
    def j(chain: str) -> tuple[Rule, ...]:
        return (Rule((), jump(chain)),)

    if table == "raw":
        return KernelHooks({"PREROUTING": j(names.CHAIN_PREROUTING),
                            "OUTPUT": j(names.CHAIN_OUTPUT)}, {})
    if table == "filter":
        return KernelHooks({"FORWARD": j(names.CHAIN_FORWARD),
                            "INPUT": j(names.CHAIN_INPUT),
                            "OUTPUT": j(names.CHAIN_OUTPUT)},
                           {"FORWARD": filter_forward_append_rules(cfg)})
    if table == "nat":
        return KernelHooks({"PREROUTING": j(names.CHAIN_PREROUTING),
                            "OUTPUT": j(names.CHAIN_OUTPUT)},
                           {"POSTROUTING": j(names.CHAIN_POSTROUTING)})
    if table == "mangle":
        return KernelHooks({"PREROUTING": j(names.CHAIN_PREROUTING),
                            "POSTROUTING": j(names.CHAIN_POSTROUTING)}, {})
    raise ValueError(f"unknown table {table!r}")
