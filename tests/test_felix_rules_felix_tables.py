"""More of Felix v3.32.1's felix/rules/*_test.go tables, fed to our renderer and compared
as rendered text (what iptables-restore is given), where the other test_felix_rules_*
files do not already: every ruleTestData entry inside whole policy chains, the bare-IP
mixed-family skips, IPv6 annotations, policy-group UIDs, the IPVS set-endpoint-mark
chains of endpoints, more static_test.go configurations, dscp_test.go. Each block names
the Go file and the Describe/It/Entry it follows.

Two places where we render differently from v3.32.1 on purpose (README, "Version deltas")
are pinned here as differences, so a change to either is noticed:
- nat ``cali-POSTROUTING``: a UDP ``--to-ports`` MASQUERADE before each tunnel's MASQUERADE
  while VXLAN is on (newer Calico, issue 12244); v3.32.1 writes only the plain one.
- mangle ``cali-egress-dscp``: one rule per source address where Felix writes one
  ``--source a,b`` rule.
"""
import pytest

from node.felix.rules import nat, policy, static
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import find_chain, render_append
from node.felix.rules.endpoints import (
    DIRECTION_INBOUND, DIRECTION_OUTBOUND, PolicyGroup, TierGroups, host_endpoint_filter_chains,
    set_endpoint_mark_chain, workload_endpoint_chains)
from node.felix.rules.epmark import EndpointMarkMapper
from node.felix.types import (
    KIND_GLOBAL_NETWORK_POLICY as GNP, KIND_STAGED_GLOBAL_NETWORK_POLICY as SGNP, KIND_STAGED_NETWORK_POLICY,
    ParsedRule, Policy, PolicyID)
from test_felix_rules_policy import CFG as POLICY_CFG, FOO, RULE_MATCHES
from test_felix_rules_static import HEP_ACCEPTED, bodies, ipvs_cfg, make_cfg


def _rule(fields, **extra):
    return ParsedRule(**fields, **extra)


def _chain_lines(chain):
    return [render_append(r, chain.name) for r in chain.rules]


# ======================================================================================
# policy_test.go

# "Inbound deny rules should be correctly rendered within a policy" and "Outbound deny
# rules should be correctly rendered within a policy" (ruleTestData): the chains are
# cali-pi-/cali-po-gnp/default.foo; the deny rule's match sets the drop mark, the next
# rule drops on it; the other direction holds only its comment. The Go test checks the
# first rule's match and action; the comment Felix appends to it is rendered here too.
@pytest.mark.parametrize("ipv, fields, match", RULE_MATCHES)
@pytest.mark.parametrize("inbound", [True, False])
def test_deny_rule_within_a_policy(ipv, fields, match, inbound):
    deny = _rule(fields, action="deny")
    pol = Policy(tier="default", inbound_rules=(deny,) if inbound else (),
                 outbound_rules=() if inbound else (deny,))
    pi, po = policy.policy_chains(POLICY_CFG, FOO, pol, ipv)
    assert (pi.name, po.name) == ("cali-pi-gnp/default.foo", "cali-po-gnp/default.foo")
    ruled, empty = (pi, po) if inbound else (po, pi)
    direction = "ingress" if inbound else "egress"
    other = "egress" if inbound else "ingress"
    comment = f'-m comment --comment "GlobalNetworkPolicy default.foo {direction}"'
    assert _chain_lines(ruled) == [
        f"-A {ruled.name} {comment}{' ' + match if match else ''} --jump MARK --set-mark 0x800/0x800",
        f"-A {ruled.name} -m mark --mark 0x800/0x800 --jump DROP"]
    assert _chain_lines(empty) == [
        f'-A {empty.name} -m comment --comment "GlobalNetworkPolicy default.foo {other}"']


# "... within a staged policy" (four tables: inbound/outbound, deny/allow): no chains.
@pytest.mark.parametrize("ipv, fields, match", RULE_MATCHES)
@pytest.mark.parametrize("action", ["deny", ""])
def test_staged_policy_renders_no_chains(ipv, fields, match, action):
    staged = PolicyID("staged:default.foo", kind=SGNP)
    r = _rule(fields, action=action)
    for pol in (Policy(tier="default", inbound_rules=(r,)), Policy(tier="default", outbound_rules=(r,))):
        assert policy.policy_chains(POLICY_CFG, staged, pol, ipv) == []
        assert all(chains == [] for chains in policy.policy_chains_by_table(POLICY_CFG, staged, pol, ipv).values())


# "Allow rules should be correctly rendered" inside a chain: the trailing RETURN is a
# no-op at the end of a chain and ProtoRulesToIptablesRules strips it; the comment goes
# on the mark rule.
@pytest.mark.parametrize("ipv, fields, match", RULE_MATCHES)
def test_allow_rule_alone_in_a_chain_loses_its_return(ipv, fields, match):
    rules = policy.rules_to_chain_rules(POLICY_CFG, [_rule(fields, action="allow")], ipv, FOO, "default", "c")
    assert [r.body for r in rules] == [
        f'-m comment --comment "c"{" " + match if match else ""} --jump MARK --set-mark 0x80/0x80']
    # Pass returns as well; deny and log do not.
    rules = policy.rules_to_chain_rules(POLICY_CFG, [_rule(fields, action="pass")], ipv, FOO, "default", "c")
    assert len(rules) == 1 and rules[0].body.endswith("--jump MARK --set-mark 0x100/0x100")
    rules = policy.rules_to_chain_rules(POLICY_CFG, [_rule(fields, action="log")], ipv, FOO, "default", "c")
    assert len(rules) == 1 and rules[0].body.endswith('--jump LOG --log-prefix "calico-packet: " --log-level 5')


# Context "with default renderer": "should skip with mixed source/dest CIDR matches" and
# the negated ones, with bare addresses (no prefix length) of the other family.
@pytest.mark.parametrize("ipv, fields", [
    (6, dict(src_net=("10.0.0.1",))), (4, dict(src_net=("feed::beef",))),
    (6, dict(dst_net=("10.0.0.1",))), (4, dict(dst_net=("feed::beef",))),
    (6, dict(not_src_net=("10.0.0.1",))), (4, dict(not_src_net=("feed::beef",))),
    (6, dict(not_dst_net=("10.0.0.1",))), (4, dict(not_dst_net=("feed::beef",))),
    (6, dict(ip_version=4)),
])
def test_mixed_family_rules_are_skipped(ipv, fields):
    assert policy.rule_to_iptables_rules(POLICY_CFG, ParsedRule(action="", **fields), ipv, FOO, "default") == []
    # (and the chain keeps only its comment)
    assert [r.body for r in policy.rules_to_chain_rules(
        POLICY_CFG, [ParsedRule(action="", **fields)], ipv, FOO, "default", "c")] == ['-m comment --comment "c"']


# "Rules with catch-all negated CIDRs should be filtered out" also when the catch-all is
# one of several negated CIDRs.
@pytest.mark.parametrize("ipv, nets", [(4, ("10.0.0.0/8", "0.0.0.0/0")), (6, ("fd00::/8", "::/0"))])
def test_catch_all_among_negated_cidrs_drops_the_rule(ipv, nets):
    assert policy.rule_to_iptables_rules(POLICY_CFG, ParsedRule(action="", not_src_net=nets), ipv, FOO) == []
    assert policy.rule_to_iptables_rules(POLICY_CFG, ParsedRule(action="", not_dst_net=nets), ipv, FOO) == []


# "rule metadata tests": "IPv6 should include annotations in comments".
def test_annotations_on_every_rule_ipv6():
    rule = ParsedRule(action="", protocol="tcp", annotations=(("testkey00", "testvalue00"), ("testkey01", "testvalue01")))
    out = policy.rule_to_iptables_rules(POLICY_CFG, rule, 6, FOO, "default")
    assert len(out) == 2
    for r in out:
        assert r.comments == ("testkey00=testvalue00", "testkey01=testvalue01")
    # In a chain, the chain's comment comes after the rule's annotations (Felix appends it).
    first = policy.rules_to_chain_rules(POLICY_CFG, [rule], 6, FOO, "default", "GlobalNetworkPolicy x ingress")[0]
    assert first.comments == ("testkey00=testvalue00", "testkey01=testvalue01", "GlobalNetworkPolicy x ingress")


# ======================================================================================
# endpoints_test.go

# Describe "PolicyGroups": "should make sensible UIDs" (no two alike, stable per call).
def test_policy_group_uids_are_distinct_and_stable():
    def pid(n):
        return PolicyID(n)
    groups = [
        PolicyGroup(DIRECTION_INBOUND, (), "all()"),
        PolicyGroup(DIRECTION_OUTBOUND, (), "all()"),
        PolicyGroup(DIRECTION_INBOUND, (pid("a"),), "all()"),
        PolicyGroup(DIRECTION_INBOUND, (), "a == 'b'"),
        PolicyGroup(DIRECTION_INBOUND, (pid("a"), pid("b")), "all()"),
        PolicyGroup(DIRECTION_INBOUND, (pid("ab"),), "all()"),
        PolicyGroup(DIRECTION_INBOUND, (pid("aaa"), pid("bbb")), "all()"),
        PolicyGroup(DIRECTION_INBOUND, (pid("aaab"), pid("bb")), "all()"),
    ]
    uids = [g.unique_id for g in groups]
    assert len(set(uids)) == len(uids)
    assert PolicyGroup(DIRECTION_INBOUND, (), "all()").unique_id == uids[0]
    assert all(len(u) == 20 for u in uids)


# "should detect staged policies".
def test_policy_group_staged_detection():
    snp = PolicyID("foo", "namespace", KIND_STAGED_NETWORK_POLICY)
    assert not PolicyGroup(DIRECTION_INBOUND, (snp,), "all()").has_non_staged_policies()
    assert not PolicyGroup(DIRECTION_INBOUND, (PolicyID("bar", kind=SGNP),), "all()").has_non_staged_policies()
    assert PolicyGroup(DIRECTION_INBOUND, (snp, PolicyID("bar", "namespace", GNP)),
                       "all()").has_non_staged_policies()


MARKS = dict(mark_accept=0x8, mark_pass=0x10, mark_scratch0=0x20, mark_scratch1=0x40, mark_drop=0x80,
             mark_endpoint=0xFF00, ipip_enabled=True)
IPVS_EP_CFG = RulesConfig(**MARKS, mangle_allow_action="RETURN", kube_ipvs_support=True,
                          mark_non_cali_endpoint=0x100)


# "with normal config" and IPVS on: every workload and host endpoint render also carries
# cali-sm-<iface>, setting the interface's endpoint mark (setEndpointMarkRules: cali1234
# gets 0xd400, eth0 0xa200, in the 0xff00 mask).
def test_set_endpoint_mark_chains_of_endpoints():
    mapper = EndpointMarkMapper(0xFF00, 0x100)
    for iface, mark in (("cali1234", 0xD400), ("eth0", 0xA200)):
        assert mapper.mark(iface) == mark
        chain = set_endpoint_mark_chain(IPVS_EP_CFG, iface, mapper.mark(iface))
        assert chain.name == f"cali-sm-{iface}"
        assert [r.body for r in chain.rules] == [f"--jump MARK --set-mark {mark:#x}/0xff00"]
    # IPVS changes nothing in the endpoint chains themselves.
    plain = RulesConfig(**MARKS, mangle_allow_action="RETURN")
    assert ([c.rules for c in workload_endpoint_chains(IPVS_EP_CFG, "cali1234", True, [], ["prof1"])]
            == [c.rules for c in workload_endpoint_chains(plain, "cali1234", True, [], ["prof1"])])
    assert ([c.rules for c in host_endpoint_filter_chains(IPVS_EP_CFG, "eth0", [], [], ["prof1"])]
            == [c.rules for c in host_endpoint_filter_chains(plain, "eth0", [], [], ["prof1"])])


# "should render a fully-loaded workload endpoint - both staged, end-of-tier action is
# pass" and "- staged policy group, end-of-tier pass": egress side (the ingress side is in
# test_felix_rules_endpoints), with REJECT as the deny action.
@pytest.mark.parametrize("grouped", [False, True])
def test_all_staged_egress_has_no_jumps_and_no_end_of_tier_drop(grouped):
    cfg = RulesConfig(**MARKS, mangle_allow_action="RETURN", filter_deny_action="REJECT")
    ae, be = PolicyID("ae", kind=SGNP), PolicyID("be", kind=SGNP)
    egress = ((PolicyGroup(DIRECTION_OUTBOUND, (ae, be), "all()"),) if grouped else
              (PolicyGroup(DIRECTION_OUTBOUND, (ae,), ""), PolicyGroup(DIRECTION_OUTBOUND, (be,), "")))
    _, fw = workload_endpoint_chains(cfg, "cali1234", True, [TierGroups("default", "Deny", (), egress)],
                                     ["prof1", "prof2"])
    assert [r.body for r in fw.rules] == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "-m conntrack --ctstate INVALID --jump REJECT",
        "--jump MARK --set-mark 0/0x18",
        '-m comment --comment "Reject VXLAN encapped packets originating in workloads" '
        "-p 17 -m multiport --destination-ports 4789 --jump REJECT",
        '-m comment --comment "Reject IPinIP encapped packets originating in workloads" -p 4 --jump REJECT',
        '-m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x10',
        "--jump cali-pro-prof1",
        '-m comment --comment "Return if profile accepted" -m mark --mark 0x8/0x8 --jump RETURN',
        "--jump cali-pro-prof2",
        '-m comment --comment "Return if profile accepted" -m mark --mark 0x8/0x8 --jump RETURN',
        '-m comment --comment "Reject if no profiles matched" --jump REJECT',
    ]


# "should render a host endpoint" with REJECT and a tier whose default action is Pass:
# the forward chains lose their end-of-tier drop too (endOfTierDrop && DefaultAction != Pass).
def test_host_endpoint_pass_tier_forward_chains():
    cfg = RulesConfig(**MARKS, mangle_allow_action="RETURN")
    fwd = [TierGroups("default", "Pass", (PolicyGroup(DIRECTION_INBOUND, (PolicyID("afi", kind=GNP),), ""),),
                      (PolicyGroup(DIRECTION_OUTBOUND, (PolicyID("afe", kind=GNP),), ""),))]
    _, _, thfw, fhfw = host_endpoint_filter_chains(cfg, "eth0", [], fwd, ["prof1"])
    head = ["-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
            "-m conntrack --ctstate INVALID --jump DROP",
            "--jump MARK --set-mark 0/0x18",
            '-m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x10']
    ret = '-m comment --comment "Return if policy accepted" -m mark --mark 0x8/0x8 --jump RETURN'
    assert [r.body for r in thfw.rules] == head + ["-m mark --mark 0/0x10 --jump cali-po-gnp/afe", ret]
    assert [r.body for r in fhfw.rules] == head + ["-m mark --mark 0/0x10 --jump cali-pi-gnp/afi", ret]


# ======================================================================================
# static_test.go

# Describe "with openstack special-cases and RETURN action": cali-wl-to-host returns
# (FilterAllowAction) where the plain special cases accept, the NDP rules included.
def test_openstack_workload_to_host_with_return_action():
    cfg = make_cfg(workload_iface_prefixes=("tap",), openstack_special_cases=True,
                   openstack_metadata_ip="10.0.0.1", openstack_metadata_port=1234, filter_allow_action="RETURN")
    tail = ["--jump cali-from-wl-dispatch",
            '-m comment --comment "Configured DefaultEndpointToHostAction" --jump RETURN']
    assert bodies(static.filter_chains(cfg, 4), "cali-wl-to-host") == [
        "-p tcp --destination 10.0.0.1 -m multiport --destination-ports 1234 --jump RETURN",
        "-p udp -m multiport --source-ports 68 -m multiport --destination-ports 67 --jump RETURN",
        "-p udp -m multiport --destination-ports 53 --jump RETURN",
        *tail]
    assert bodies(static.filter_chains(cfg, 6), "cali-wl-to-host") == [
        *(f"-p 58 -m icmp6 --icmpv6-type {t} --jump RETURN" for t in (130, 131, 132, 133, 135, 136)),
        "-p udp -m multiport --source-ports 546 -m multiport --destination-ports 547 --jump RETURN",
        "-p udp -m multiport --destination-ports 53 --jump RETURN",
        *tail]


# Describe "with RETURN accept action": "should include the expected forward chain".
@pytest.mark.parametrize("ipv", [4, 6])
def test_forward_chain_with_return_accept_action(ipv):
    cfg = make_cfg(filter_allow_action="RETURN", mangle_allow_action="RETURN")
    assert bodies(static.filter_chains(cfg, ipv), "cali-FORWARD") == [
        "--jump MARK --set-mark 0/0xe0",
        "-m mark --mark 0/0x10 --jump cali-from-hep-forward",
        "--in-interface cali+ --jump cali-from-wl-dispatch",
        "--out-interface cali+ --jump cali-to-wl-dispatch",
        "--jump cali-to-hep-forward",
        "--jump cali-cidr-block",
    ]


# "with default config and IPVS=true": cali-INPUT and cali-OUTPUT without IPIP, and the
# chain counts ("should return only the expected filter/raw chains", nat chains).
@pytest.mark.parametrize("deny", ["DROP", "REJECT"])
@pytest.mark.parametrize("ipv", [4, 6])
def test_ipvs_input_output_without_ipip(deny, ipv):
    cfg = ipvs_cfg(filter_deny_action=deny)
    assert bodies(static.filter_chains(cfg, ipv), "cali-INPUT") == [
        "--jump MARK --set-mark 0/0xff000",
        "--jump cali-forward-check",
        "-m mark ! --mark 0/0xff000 --jump RETURN",
        "--in-interface cali+ --goto cali-wl-to-host",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(static.filter_chains(cfg, ipv), "cali-OUTPUT") == [
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "-m mark ! --mark 0/0xff000 --goto cali-forward-endpoint-mark",
        "--out-interface cali+ --jump RETURN",
        "--jump MARK --set-mark 0/0xf0",
        "-m conntrack ! --ctstate DNAT --jump cali-to-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert len(static.filter_chains(cfg, ipv)) == 8
    assert len(static.raw_chains(cfg, ipv)) == 5
    assert len(static.nat_chains(cfg, ipv)) == 3
    # raw OUTPUT and mangle PREROUTING are as without IPVS.
    assert bodies(static.raw_chains(cfg, ipv), "cali-OUTPUT") == bodies(static.raw_chains(make_cfg(), ipv),
                                                                        "cali-OUTPUT")
    assert bodies(static.mangle_chains(cfg, ipv), "cali-PREROUTING") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]


# Describe "with multiple KubePortRanges": the whole cali-forward-check chain.
@pytest.mark.parametrize("ipv", [4, 6])
def test_forward_check_with_multiple_node_port_ranges(ipv):
    ranges = tuple((30030 + 100 * i, 30040 + 100 * i) for i in range(9))
    cfg = ipvs_cfg().replace(kube_node_port_ranges=ranges)
    first = ",".join(f"{30030 + 100 * i}:{30040 + 100 * i}" for i in range(7))
    second = "30730:30740,30830:30840"
    this_host = f"cali{ipv}0this-host"
    node_port = '-m comment --comment "To kubernetes NodePort service"'
    assert bodies(static.filter_chains(cfg, ipv), "cali-forward-check") == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN",
        *(f"{node_port} -p {proto} -m multiport --destination-ports {ports} "
          f"-m set --match-set {this_host} dst --goto cali-set-endpoint-mark"
          for ports in (first, second) for proto in ("tcp", "udp")),
        f'-m comment --comment "To kubernetes service" -m set ! --match-set {this_host} dst '
        "--jump cali-set-endpoint-mark",
    ]


# "with IPv4 VXLAN enabled": "IPv4: Should return expected VXLAN notrack PREROUTING
# chain" / "... OUTPUT chain", and the IPv6 twin under "with IPv6 VXLAN enabled".
@pytest.mark.parametrize("deny", ["DROP", "REJECT"])
@pytest.mark.parametrize("ipv", [4, 6])
def test_vxlan_notrack_raw_chains(deny, ipv):
    cfg = make_cfg(ipip_enabled=True, ipip_tunnel_address="10.0.0.1", filter_deny_action=deny,
                   **({"vxlan_enabled": True} if ipv == 4 else {"vxlan_enabled_v6": True}))
    raw = static.raw_chains(cfg, ipv)
    assert bodies(raw, "cali-PREROUTING") == [
        "--jump MARK --set-mark 0/0xf0",
        "-p udp --dport 4789 --jump NOTRACK",
        "--in-interface cali+ --jump MARK --set-mark 0x40/0x40",
        "-m mark --mark 0x40/0x40 --jump cali-rpf-skip",
        f"-m mark --mark 0x40/0x40 -m rpfilter --invert --validmark --jump {deny}",
        "-m mark --mark 0/0x40 --jump cali-from-host-endpoint",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(raw, "cali-OUTPUT") == [
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-to-host-endpoint",
        "-p udp --dport 4789 --jump NOTRACK",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
    ]


# "with IPIP enabled" + "with IPv4 VXLAN enabled" (no VXLAN tunnel address yet): v3.32.1
# has cali-POSTROUTING = fip-snat, nat-outgoing, the tunl0 MASQUERADE. Ours adds the UDP
# MASQUERADE keeping off the VXLAN port before it (newer Calico; README "Version deltas").
# With that rule taken out, the chain is v3.32.1's.
def test_nat_postrouting_ipip_with_vxlan_on_differs_only_by_the_udp_rule():
    cfg = make_cfg(ipip_enabled=True, ipip_tunnel_address="10.0.0.1", vxlan_enabled=True)
    got = bodies(static.nat_chains(cfg, 4), "cali-POSTROUTING")
    felix_v3_32_1 = [
        "--jump cali-fip-snat",
        "--jump cali-nat-outgoing",
        "--out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out -m addrtype --src-type LOCAL "
        "--jump MASQUERADE",
    ]
    assert [b for b in got if "--to-ports" not in b] == felix_v3_32_1
    assert got[2] == ("-p 17 --out-interface tunl0 -m addrtype ! --src-type LOCAL --limit-iface-out "
                      "-m addrtype --src-type LOCAL --jump MASQUERADE --to-ports 4790-65535")
    # Without VXLAN the chain is v3.32.1's exactly ("with IPIP enabled", NAT postrouting).
    assert bodies(static.nat_chains(cfg.replace(vxlan_enabled=False), 4), "cali-POSTROUTING") == felix_v3_32_1


# Describe "with WireGuard enabled" ("should include the expected input chain"), both
# families on, and the tunnel MASQUERADE StaticNATPostroutingChains adds per WireGuard device.
@pytest.mark.parametrize("ipv", [4, 6])
def test_wireguard_input_and_nat(ipv):
    cfg = make_cfg(wireguard_enabled=True, wireguard_enabled_v6=True, mark_wireguard=0x100000,
                   wireguard_encrypt_host_traffic=True)
    port, dev = (51820, "wireguard.cali") if ipv == 4 else (51821, "wg-v6.cali")
    assert bodies(static.filter_chains(cfg, ipv), "cali-INPUT") == [
        f'-m comment --comment "Allow incoming IPv{ipv} Wireguard packets" -p 17 '
        f"-m multiport --destination-ports {port} -m addrtype --dst-type LOCAL --jump ACCEPT",
        "--in-interface cali+ --goto cali-wl-to-host",
        "-m mark --mark 0x10/0x10 --jump ACCEPT",
        "--jump MARK --set-mark 0/0xf0",
        "--jump cali-from-host-endpoint",
        HEP_ACCEPTED + " -m mark --mark 0x10/0x10 --jump ACCEPT",
    ]
    assert bodies(static.nat_chains(cfg, ipv), "cali-POSTROUTING") == [
        "--jump cali-fip-snat", "--jump cali-nat-outgoing",
        f"--out-interface {dev} -m addrtype ! --src-type LOCAL --limit-iface-out "
        "-m addrtype --src-type LOCAL --jump MASQUERADE"]


# Describe "with Istio DSCP rules": the DSCP rule (value 10) opens mangle
# cali-POSTROUTING, then the rest of checkManglePostrouting's chain; none when disabled.
@pytest.mark.parametrize("ipv", [4, 6])
def test_istio_dscp_rule(ipv):
    cfg = make_cfg(istio_ambient_mode_enabled=True, istio_dscp_mark=10)
    weps = f"cali{ipv}0all-istio-weps"
    got = bodies(static.mangle_chains(cfg, ipv), "cali-POSTROUTING")
    assert got[0] == (f"-p tcp -m conntrack --ctstate NEW --out-interface cali+ -m set --match-set {weps} dst "
                      f"-m set --match-set {weps} src --jump DSCP --set-dscp 10")
    assert got[1:] == bodies(static.mangle_chains(make_cfg(), ipv), "cali-POSTROUTING")
    # One rule per workload interface prefix.
    two = bodies(static.mangle_chains(cfg.replace(workload_iface_prefixes=("cali", "tap")), ipv),
                 "cali-POSTROUTING")
    assert [b.split("--out-interface ")[1].split()[0] for b in two[:2]] == ["cali+", "tap+"]
    assert not any("DSCP --set-dscp" in b for b in bodies(static.mangle_chains(make_cfg(), ipv), "cali-POSTROUTING"))


# StaticRawTableChains: always the same five chains, in Felix's order, the WireGuard mark
# chain included (unreferenced, so unprogrammed, when WireGuard is off: then its mark is
# 0, rendered as Felix's SetMarkAction{0}). StaticRawPreroutingChain jumps to it only
# with WireguardEncryptHostTraffic.
def test_raw_chain_list_and_wireguard_incoming_mark():
    chains = static.raw_chains(make_cfg(), 4)
    assert [c.name for c in chains] == ["cali-failsafe-in", "cali-failsafe-out", "cali-PREROUTING",
                                        "cali-wireguard-incoming-mark", "cali-OUTPUT"]
    assert bodies(chains, "cali-wireguard-incoming-mark") == [
        "--in-interface lo --jump RETURN", "--in-interface wireguard.cali --jump RETURN",
        "--in-interface wg-v6.cali --jump RETURN", "--in-interface cali+ --jump RETURN",
        "--jump MARK --set-mark 0x0/0x0"]
    no_host = make_cfg(wireguard_enabled=True, mark_wireguard=0x100000, wireguard_encrypt_host_traffic=False)
    assert "--jump cali-wireguard-incoming-mark" not in bodies(static.raw_chains(no_host, 4), "cali-PREROUTING")
    assert bodies(static.raw_chains(no_host, 4), "cali-PREROUTING") == bodies(chains, "cali-PREROUTING")


# ======================================================================================
# dscp_test.go

# "should render empty chain for no policies" and the single-address rules of "should
# render correct (IPv6) chain for policies" are Felix's exactly. Felix's comma-joined
# "--source a,b" rule is one rule per address here (see the module docstring).
def test_egress_dscp_chain_vectors():
    assert nat.egress_dscp_chain([]).rules == ()
    v4 = nat.egress_dscp_chain([("192.168.10.20", 10), ("192.168.10.100,172.17.1.100", 40),
                                ("192.168.20.1", 0)])
    assert v4.name == "cali-egress-dscp"
    assert [r.body for r in v4.rules] == [
        "--source 192.168.10.100 --jump DSCP --set-dscp 40",
        "--source 172.17.1.100 --jump DSCP --set-dscp 40",
        "--source 192.168.10.20 --jump DSCP --set-dscp 10",
        "--source 192.168.20.1 --jump DSCP --set-dscp 0",
    ]
    v6 = nat.egress_dscp_chain([("dead:beef::1:20", 10), ("dead:beef::2:2", 22)])
    assert [r.body for r in v6.rules] == ["--source dead:beef::1:20 --jump DSCP --set-dscp 10",
                                          "--source dead:beef::2:2 --jump DSCP --set-dscp 22"]


def test_find_chain_returns_none_for_absent_chains():
    # static_test.go's findChain: forward-check/forward-endpoint-mark are nil without IPVS.
    chains = static.filter_chains(make_cfg(), 4)
    assert find_chain(chains, "cali-forward-check") is None
    assert find_chain(chains, "cali-forward-endpoint-mark") is None
