"""Endpoint chains and policy groups against Felix's endpoints_test.go (its rule builder's
expectations, written out), and the spec's Appendix A."""
import pytest

from node.felix.rules import endpoints
from node.felix.rules.config import RulesConfig
from node.felix.rules.core import render_append
from node.felix.rules.endpoints import (
    DIRECTION_INBOUND, DIRECTION_OUTBOUND, PolicyGroup, TierGroups, group_policies, group_tiers,
    policy_group_chain)
from node.felix.types import (
    KIND_GLOBAL_NETWORK_POLICY as GNP, KIND_KUBERNETES_NETWORK_POLICY,
    KIND_STAGED_GLOBAL_NETWORK_POLICY as SGNP, KIND_STAGED_KUBERNETES_NETWORK_POLICY, KIND_STAGED_NETWORK_POLICY,
    HostEndpoint, PolicyID, QoSControls, TierInfo, WorkloadEndpoint)

# endpoints_test.go: accept 0x8, pass 0x10, scratch0 0x20, scratch1 0x40, drop 0x80.
MARKS = dict(mark_accept=0x8, mark_pass=0x10, mark_scratch0=0x20, mark_scratch1=0x40, mark_drop=0x80,
             mark_endpoint=0xFF00, ipip_enabled=True)


def normal_cfg(deny="DROP"):
    return RulesConfig(**MARKS, mangle_allow_action="RETURN", filter_deny_action=deny)


def bodies(chain):
    return [r.body for r in chain.rules]


def gnp(name):
    return PolicyID(name, kind=GNP)


def single_groups(tier="default", ingress=(), egress=(), default_action="Deny"):
    """Felix's tiersToSinglePolGroups: every policy in its own group."""
    return [TierGroups(tier, default_action,
                       tuple(PolicyGroup(DIRECTION_INBOUND, (p,), "") for p in ingress),
                       tuple(PolicyGroup(DIRECTION_OUTBOUND, (p,), "") for p in egress))]


CT = ["-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT"]
CLEAR = "--jump MARK --set-mark 0/0x18"
START = '-m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x10'
RET_POLICY = '-m comment --comment "Return if policy accepted" -m mark --mark 0x8/0x8 --jump RETURN'
RET_PROFILE = '-m comment --comment "Return if profile accepted" -m mark --mark 0x8/0x8 --jump RETURN'


def invalid(v):
    return f"-m conntrack --ctstate INVALID --jump {v}"


def encap_drops(word, v):
    return [f'-m comment --comment "{word} VXLAN encapped packets originating in workloads" '
            f"-p 17 -m multiport --destination-ports 4789 --jump {v}",
            f'-m comment --comment "{word} IPinIP encapped packets originating in workloads" -p 4 --jump {v}']


def end_of_tier(word, v):
    return (f'-m comment --comment "End of tier default. {word} if no policies passed packet" '
            f"-m mark --mark 0/0x10 --jump {v}")


def no_profiles(word, v):
    return f'-m comment --comment "{word} if no profiles matched" --jump {v}'


def profiles(d, *names):
    out = []
    for n in names:
        out += [f"--jump cali-{d}-{n}", RET_PROFILE]
    return out


DENY = [("DROP", "Drop", "DROP"), ("REJECT", "Reject", "REJECT")]


@pytest.mark.parametrize("deny, word, v", DENY)
def test_minimal_workload(deny, word, v):
    tw, fw = endpoints.workload_endpoint_chains(normal_cfg(deny), "cali1234", True, [], [])
    assert tw.name == "cali-tw-cali1234" and fw.name == "cali-fw-cali1234"
    assert bodies(tw) == CT + [invalid(v), CLEAR, no_profiles(word, v)]
    assert bodies(fw) == CT + [invalid(v), CLEAR] + encap_drops(word, v) + [no_profiles(word, v)]


@pytest.mark.parametrize("deny, word, v", DENY)
def test_disabled_workload(deny, word, v):
    for chain in endpoints.workload_endpoint_chains(normal_cfg(deny), "cali1234", False, [], []):
        assert bodies(chain) == [f'-m comment --comment "Endpoint admin disabled" --jump {v}']


def _rate_rules(direction, rate, burst):
    clear = f'-m comment --comment "Clear {direction} packet rate limit mark" --jump MARK --set-mark 0/0x20'
    return [clear,
            f'-m comment --comment "Mark packets within {direction} packet rate limit" -m limit --limit {rate}/sec '
            f'--limit-burst {burst} --jump MARK --set-mark 0x20/0x20',
            f'-m comment --comment "Drop packets over {direction} packet rate limit" -m mark ! --mark 0x20/0x20 '
            '--jump DROP',
            clear]


def _connlimit_rule(direction, limit):
    return (f'-m comment --comment "Reject connections over {direction} connection limit" -p tcp -m tcp '
            f'--tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above {limit} --connlimit-mask 0 -j REJECT '
            '--reject-with tcp-reset')


def test_workload_with_packet_rate_limits():
    # "should render a workload endpoint with packet rate limiting QoSControls": the rate
    # rules come first, before conntrack (iptables form: scratch0 marks what is in rate).
    qos = QoSControls(egress_packet_rate=1000, ingress_packet_rate=2000, egress_packet_burst=2000,
                      ingress_packet_burst=4000)
    tw, fw = endpoints.workload_endpoint_chains(normal_cfg(), "cali1234", True, [], [], qos)
    assert bodies(tw) == _rate_rules("ingress", 2000, 4000) + CT + [invalid("DROP"), CLEAR, no_profiles("Drop", "DROP")]
    assert bodies(fw) == (_rate_rules("egress", 1000, 2000) + CT + [invalid("DROP"), CLEAR]
                          + encap_drops("Drop", "DROP") + [no_profiles("Drop", "DROP")])


def test_workload_with_connection_limits():
    # "should render a workload endpoint with connection limiting QoSControls": right
    # after the conntrack rules.
    qos = QoSControls(ingress_max_connections=20, egress_max_connections=10)
    tw, fw = endpoints.workload_endpoint_chains(normal_cfg(), "cali1234", True, [], [], qos)
    assert bodies(tw) == CT + [invalid("DROP"), _connlimit_rule("ingress", 20), CLEAR, no_profiles("Drop", "DROP")]
    assert bodies(fw) == (CT + [invalid("DROP"), _connlimit_rule("egress", 10), CLEAR]
                          + encap_drops("Drop", "DROP") + [no_profiles("Drop", "DROP")])
    # An admin-down endpoint is only dropped; the workload message carries the limits.
    assert all(len(c.rules) == 1 for c in endpoints.workload_endpoint_chains(normal_cfg(), "c", False, [], [], qos))
    chains, _ = endpoints.workload_chains(normal_cfg(), WorkloadEndpoint(name="cali1234", qos_controls=qos), {})
    assert [bodies(c) for c in chains] == [bodies(tw), bodies(fw)]
    plain, _ = endpoints.workload_chains(normal_cfg(), WorkloadEndpoint(name="cali1234"), {})
    assert _connlimit_rule("ingress", 20) not in bodies(plain[0])


def test_workload_with_only_bandwidth_limits_renders_no_rules():
    """Bandwidth limits are tc's (token buckets on the interface): an endpoint with only
    those renders exactly the chains of an endpoint without any limits."""
    qos = QoSControls(ingress_bandwidth=10_000_000, ingress_burst=300_000_000, ingress_peakrate=100_000_000,
                      ingress_minburst=2000, egress_bandwidth=5_000_000, egress_burst=4 * 2**30)
    for cfg in (normal_cfg(), normal_cfg("REJECT")):
        assert ([bodies(c) for c in endpoints.workload_endpoint_chains(cfg, "cali1234", True, [], [], qos)]
                == [bodies(c) for c in endpoints.workload_endpoint_chains(cfg, "cali1234", True, [], [])])
        limited, _ = endpoints.workload_chains(cfg, WorkloadEndpoint(name="cali1234", qos_controls=qos), {})
        plain, _ = endpoints.workload_chains(cfg, WorkloadEndpoint(name="cali1234"), {})
        assert [bodies(c) for c in limited] == [bodies(c) for c in plain]
    # With packet limits as well, only the packet limits show.
    both = QoSControls(ingress_packet_rate=2000, ingress_packet_burst=4000, ingress_bandwidth=10_000_000,
                       ingress_burst=300_000_000)
    rate_only = QoSControls(ingress_packet_rate=2000, ingress_packet_burst=4000)
    assert ([bodies(c) for c in endpoints.workload_endpoint_chains(normal_cfg(), "cali1234", True, [], [], both)]
            == [bodies(c) for c in endpoints.workload_endpoint_chains(normal_cfg(), "cali1234", True, [], [],
                                                                       rate_only)])


@pytest.mark.parametrize("deny, word, v", DENY)
def test_fully_loaded_workload(deny, word, v):
    tiers = single_groups(ingress=(gnp("ai"), gnp("bi")), egress=(gnp("ae"), gnp("be")))
    tw, fw = endpoints.workload_endpoint_chains(normal_cfg(deny), "cali1234", True, tiers, ["prof1", "prof2"])
    assert bodies(tw) == CT + [invalid(v), CLEAR, START,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/ai", RET_POLICY,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/bi", RET_POLICY,
                               end_of_tier(word, v)] + profiles("pri", "prof1", "prof2") + [no_profiles(word, v)]
    assert bodies(fw) == CT + [invalid(v), CLEAR] + encap_drops(word, v) + [
        START,
        "-m mark --mark 0/0x10 --jump cali-po-gnp/ae", RET_POLICY,
        "-m mark --mark 0/0x10 --jump cali-po-gnp/be", RET_POLICY,
        end_of_tier(word, v)] + profiles("pro", "prof1", "prof2") + [no_profiles(word, v)]


def test_workload_with_policy_groups():
    cfg = normal_cfg()
    in_abc = PolicyGroup(DIRECTION_INBOUND, (PolicyID("a"), PolicyID("b"), PolicyID("c")), "all()")
    in_ef = PolicyGroup(DIRECTION_INBOUND, (PolicyID("e"), PolicyID("f")), "someLabel == 'bar'")
    out_ab = PolicyGroup(DIRECTION_OUTBOUND, (PolicyID("a"), PolicyID("b")), "all()")
    out_de = PolicyGroup(DIRECTION_OUTBOUND, (PolicyID("d"), PolicyID("e")), "someLabel == 'bar'")
    tiers = [TierGroups("default", "Deny", (in_abc, in_ef), (out_ab, out_de))]
    tw, fw = endpoints.workload_endpoint_chains(cfg, "cali1234", True, tiers, ["prof1", "prof2"])
    assert in_abc.chain_name.startswith("cali-gi-") and out_de.chain_name.startswith("cali-go-")
    assert bodies(tw) == CT + [invalid("DROP"), CLEAR, START,
                               f"-m mark --mark 0/0x10 --jump {in_abc.chain_name}", RET_POLICY,
                               f"-m mark --mark 0/0x10 --jump {in_ef.chain_name}", RET_POLICY,
                               end_of_tier("Drop", "DROP")] + profiles("pri", "prof1", "prof2") + [
        no_profiles("Drop", "DROP")]
    assert bodies(fw)[6:10] == [f"-m mark --mark 0/0x10 --jump {out_ab.chain_name}", RET_POLICY,
                                f"-m mark --mark 0/0x10 --jump {out_de.chain_name}", RET_POLICY]


def test_staged_policies():
    cfg = normal_cfg()
    # One staged, one enforced: the staged jump is skipped, the tier still drops.
    tiers = single_groups(ingress=(PolicyID("ai", kind=SGNP), gnp("bi")),
                          egress=(gnp("ae"), PolicyID("be", kind=SGNP)))
    tw, fw = endpoints.workload_endpoint_chains(cfg, "cali1234", True, tiers, ["prof1"])
    assert bodies(tw)[3:7] == [START, "-m mark --mark 0/0x10 --jump cali-pi-gnp/bi", RET_POLICY,
                               end_of_tier("Drop", "DROP")]
    assert bodies(fw)[5:9] == [START, "-m mark --mark 0/0x10 --jump cali-po-gnp/ae", RET_POLICY,
                               end_of_tier("Drop", "DROP")]
    # Both staged: start of tier only, no end-of-tier drop.
    tiers = single_groups(ingress=(PolicyID("ai", kind=SGNP), PolicyID("bi", kind=SGNP)))
    tw, _ = endpoints.workload_endpoint_chains(cfg, "cali1234", True, tiers, ["prof1"])
    assert bodies(tw) == CT + [invalid("DROP"), CLEAR, START] + profiles("pri", "prof1") + [
        no_profiles("Drop", "DROP")]
    # A staged group (two staged policies in one group): no jump needed, as its chain
    # would be empty, and no drop.
    grp = PolicyGroup(DIRECTION_INBOUND, (PolicyID("ai", kind=SGNP), PolicyID("bi", kind=SGNP)), "all()")
    tw, _ = endpoints.workload_endpoint_chains(cfg, "cali1234", True,
                                               [TierGroups("default", "Deny", (grp,), ())], ["prof1"])
    assert bodies(tw) == CT + [invalid("DROP"), CLEAR, START] + profiles("pri", "prof1") + [
        no_profiles("Drop", "DROP")]


def test_groups_with_staged_members():
    """endpoints_test.go "should detect staged policies", and what the chains make of it:
    a group is inlined unless it has two enforced members; inlined, only its enforced
    member is jumped to, and a group of staged members only gets no return rule."""
    snp = PolicyID("s", "ns1", KIND_STAGED_NETWORK_POLICY)
    sknp = PolicyID("k", "ns1", KIND_STAGED_KUBERNETES_NETWORK_POLICY)
    staged_only = PolicyGroup(DIRECTION_INBOUND, (snp, sknp), "all()")
    assert (staged_only.should_be_inlined(), staged_only.has_non_staged_policies()) == (True, False)
    mixed = PolicyGroup(DIRECTION_INBOUND, (snp, gnp("a"), sknp), "all()")
    assert (mixed.should_be_inlined(), mixed.has_non_staged_policies()) == (True, True)
    two = PolicyGroup(DIRECTION_INBOUND, (gnp("a"), snp, gnp("b")), "all()")
    assert (two.should_be_inlined(), two.has_non_staged_policies()) == (False, True)
    # The group's name hashes every member, staged ones included.
    assert two.chain_name != PolicyGroup(DIRECTION_INBOUND, (gnp("a"), gnp("b")), "all()").chain_name
    cfg = normal_cfg()
    tw, _ = endpoints.workload_endpoint_chains(
        cfg, "cali1234", True, [TierGroups("default", "Deny", (staged_only, mixed, two), ())], ["prof1"])
    assert bodies(tw)[3:] == [START, "-m mark --mark 0/0x10 --jump cali-pi-gnp/a", RET_POLICY,
                              f"-m mark --mark 0/0x10 --jump {two.chain_name}", RET_POLICY,
                              end_of_tier("Drop", "DROP")] + profiles("pri", "prof1") + [no_profiles("Drop", "DROP")]


def test_untracked_staged_groups_get_no_notrack():
    """Raw chains: a staged-only tier neither returns nor untracks; an enforced policy does both."""
    staged = PolicyID("s", kind=SGNP)
    (th, fh) = endpoints.host_endpoint_raw_chains(normal_cfg(), "eth0", [
        TierGroups("default", "Pass", (PolicyGroup(DIRECTION_INBOUND, (staged,), ""),),
                   (PolicyGroup(DIRECTION_OUTBOUND, (staged,), ""), PolicyGroup(DIRECTION_OUTBOUND, (gnp("e"),), "")))])
    assert bodies(fh) == ["--jump cali-failsafe-in", CLEAR, START]
    assert bodies(th) == ["--jump cali-failsafe-out", CLEAR, START, "-m mark --mark 0/0x10 --jump cali-po-gnp/e",
                          "-m mark --mark 0x8/0x8 --jump NOTRACK", RET_POLICY]


def test_tier_default_action_pass_has_no_end_of_tier_drop():
    tiers = single_groups(ingress=(gnp("ai"), gnp("bi")), default_action="Pass")
    tw, _ = endpoints.workload_endpoint_chains(normal_cfg(), "cali1234", True, tiers, ["prof1"])
    assert bodies(tw) == CT + [invalid("DROP"), CLEAR, START,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/ai", RET_POLICY,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/bi", RET_POLICY,
                               ] + profiles("pri", "prof1") + [no_profiles("Drop", "DROP")]


@pytest.mark.parametrize("deny, word, v", DENY)
def test_host_endpoint_filter_chains(deny, word, v):
    tiers = single_groups(ingress=(gnp("ai"), gnp("bi")), egress=(gnp("ae"), gnp("be")))
    fwd = single_groups(ingress=(gnp("afi"), gnp("bfi")), egress=(gnp("afe"), gnp("bfe")))
    th, fh, thfw, fhfw = endpoints.host_endpoint_filter_chains(normal_cfg(deny), "eth0", tiers, fwd,
                                                               ["prof1", "prof2"])
    assert [c.name for c in (th, fh, thfw, fhfw)] == ["cali-th-eth0", "cali-fh-eth0", "cali-thfw-eth0",
                                                      "cali-fhfw-eth0"]
    assert bodies(th) == CT + [invalid(v), "--jump cali-failsafe-out", CLEAR, START,
                               "-m mark --mark 0/0x10 --jump cali-po-gnp/ae", RET_POLICY,
                               "-m mark --mark 0/0x10 --jump cali-po-gnp/be", RET_POLICY,
                               end_of_tier(word, v)] + profiles("pro", "prof1", "prof2") + [no_profiles(word, v)]
    assert bodies(fh) == CT + [invalid(v), "--jump cali-failsafe-in", CLEAR, START,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/ai", RET_POLICY,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/bi", RET_POLICY,
                               end_of_tier(word, v)] + profiles("pri", "prof1", "prof2") + [no_profiles(word, v)]
    assert bodies(thfw) == CT + [invalid(v), CLEAR, START,
                                 "-m mark --mark 0/0x10 --jump cali-po-gnp/afe", RET_POLICY,
                                 "-m mark --mark 0/0x10 --jump cali-po-gnp/bfe", RET_POLICY,
                                 end_of_tier(word, v)]
    assert bodies(fhfw) == CT + [invalid(v), CLEAR, START,
                                 "-m mark --mark 0/0x10 --jump cali-pi-gnp/afi", RET_POLICY,
                                 "-m mark --mark 0/0x10 --jump cali-pi-gnp/bfi", RET_POLICY,
                                 end_of_tier(word, v)]


def test_host_endpoint_forward_chains_without_tiers_allow_by_default():
    _, _, thfw, fhfw = endpoints.host_endpoint_filter_chains(normal_cfg(), "eth0", [], [], ["p"])
    for chain in (thfw, fhfw):
        assert bodies(chain) == CT + [invalid("DROP"), CLEAR,
                                      '-m comment --comment "Allow forwarded traffic by default" '
                                      "--jump MARK --set-mark 0x8/0x8",
                                      '-m comment --comment "Return for accepted forward traffic" --jump RETURN']
    # Forward tiers exist but none for egress: the egress chain just returns.
    fwd = single_groups(ingress=(gnp("afi"),))
    _, _, thfw, _ = endpoints.host_endpoint_filter_chains(normal_cfg(), "eth0", [], fwd, [])
    assert bodies(thfw) == CT + [invalid("DROP"), CLEAR]


def test_host_endpoint_raw_chains():
    tiers = single_groups(ingress=(gnp("c"),), egress=(gnp("c"),))
    th, fh = endpoints.host_endpoint_raw_chains(normal_cfg(), "eth0", tiers)
    assert (th.name, fh.name) == ("cali-th-eth0", "cali-fh-eth0")
    assert bodies(th) == ["--jump cali-failsafe-out", CLEAR, START,
                          "-m mark --mark 0/0x10 --jump cali-po-gnp/c",
                          "-m mark --mark 0x8/0x8 --jump NOTRACK", RET_POLICY]
    assert bodies(fh) == ["--jump cali-failsafe-in", CLEAR, START,
                          "-m mark --mark 0/0x10 --jump cali-pi-gnp/c",
                          "-m mark --mark 0x8/0x8 --jump NOTRACK", RET_POLICY]


def test_host_endpoint_mangle_ingress_pre_dnat():
    tiers = single_groups(ingress=(gnp("c"),))
    # Mangle allow RETURN: set the accept bit before returning.
    (fh,) = endpoints.host_endpoint_mangle_ingress_chains(normal_cfg(), "eth0", tiers)
    assert fh.name == "cali-fh-eth0"
    assert bodies(fh) == ["-m conntrack --ctstate RELATED,ESTABLISHED --jump MARK --set-mark 0x8/0x8",
                          "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN",
                          invalid("DROP"), "--jump cali-failsafe-in", CLEAR, START,
                          "-m mark --mark 0/0x10 --jump cali-pi-gnp/c", RET_POLICY]
    # ctstate INVALID check disabled, mangle allow ACCEPT.
    cfg = RulesConfig(**MARKS, disable_conntrack_invalid=True, filter_allow_action="RETURN")
    (fh,) = endpoints.host_endpoint_mangle_ingress_chains(cfg, "eth0", tiers)
    assert bodies(fh) == CT + ["--jump cali-failsafe-in", CLEAR, START,
                               "-m mark --mark 0/0x10 --jump cali-pi-gnp/c", RET_POLICY]


def test_host_endpoint_mangle_egress_uses_return():
    tiers = single_groups(egress=(gnp("c"),))
    (th,) = endpoints.host_endpoint_mangle_egress_chains(RulesConfig(**MARKS), "eth0", tiers, ["prof1"])
    assert bodies(th) == ["-m conntrack --ctstate RELATED,ESTABLISHED --jump MARK --set-mark 0x8/0x8",
                          "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN",
                          invalid("DROP"), "--jump cali-failsafe-out", CLEAR, START,
                          "-m mark --mark 0/0x10 --jump cali-po-gnp/c", RET_POLICY,
                          end_of_tier("Drop", "DROP")] + profiles("pro", "prof1") + [
        no_profiles("Drop", "DROP")]


def test_conntrack_invalid_disabled_with_return_allow():
    cfg = RulesConfig(**MARKS, disable_conntrack_invalid=True, filter_allow_action="RETURN")
    tw, fw = endpoints.workload_endpoint_chains(cfg, "cali1234", True, [], [])
    ct = ["-m conntrack --ctstate RELATED,ESTABLISHED --jump MARK --set-mark 0x8/0x8",
          "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN"]
    assert bodies(tw) == ct + [CLEAR, no_profiles("Drop", "DROP")]
    assert bodies(fw) == ct + [CLEAR] + encap_drops("Drop", "DROP") + [no_profiles("Drop", "DROP")]


@pytest.mark.parametrize("vxlan, ipip", [(True, False), (False, True), (True, True)])
def test_encap_drop_flags(vxlan, ipip):
    cfg = normal_cfg().replace(allow_vxlan_packets_from_workloads=vxlan, allow_ipip_packets_from_workloads=ipip)
    _, fw = endpoints.workload_endpoint_chains(cfg, "cali1234", True, [], [])
    vx, ip = encap_drops("Drop", "DROP")
    expected = [] if vxlan else [vx]
    expected += [] if ipip else [ip]
    assert bodies(fw) == CT + [invalid("DROP"), CLEAR] + expected + [no_profiles("Drop", "DROP")]


# --------------------------------------------------------------------------------------
# Policy groups.

def test_group_policies_by_consecutive_selector():
    a, b, c, d = (gnp(n) for n in "abcd")
    sel = {a: "x", b: "x", c: "y", d: "x"}
    groups = group_policies([a, b, c, d], DIRECTION_INBOUND, sel)
    assert [(g.policies, g.selector) for g in groups] == [((a, b), "x"), ((c,), "y"), ((d,), "x")]
    assert group_policies([], DIRECTION_INBOUND, sel) == ()
    tiers = group_tiers([TierInfo("t1", (a, b), (c,), "Pass")], sel)
    assert tiers == (TierGroups("t1", "Pass",
                                (PolicyGroup(DIRECTION_INBOUND, (a, b), "x"),),
                                (PolicyGroup(DIRECTION_OUTBOUND, (c,), "y"),)),)
    assert group_tiers([TierInfo("t1", (a,), (c,))], sel, outbound=False)[0].egress == ()


def _jumps(prefix, names_and_guards):
    return [(f"-m mark --mark 0/0x18 --jump {prefix}{n}" if guarded else f"--jump {prefix}{n}")
            for n, guarded in names_and_guards]


RETURN_ON_VERDICT = '-m comment --comment "Return on verdict" -m mark ! --mark 0/0x18 --jump RETURN'


@pytest.mark.parametrize("direction, policies, expected", [
    (DIRECTION_INBOUND, [gnp("a")], _jumps("cali-pi-gnp/", [("a", False)])),
    (DIRECTION_INBOUND, [gnp("a"), gnp("b")], _jumps("cali-pi-gnp/", [("a", False), ("b", True)])),
    (DIRECTION_INBOUND, [gnp(n) for n in "abcde"],
     _jumps("cali-pi-gnp/", [("a", False), ("b", True), ("c", True), ("d", True), ("e", True)])),
    (DIRECTION_INBOUND, [gnp(n) for n in "abcdef"],
     _jumps("cali-pi-gnp/", [("a", False), ("b", True), ("c", True), ("d", True), ("e", True)])
     + [RETURN_ON_VERDICT] + _jumps("cali-pi-gnp/", [("f", False)])),
    (DIRECTION_OUTBOUND, [gnp(n) for n in "abcdefg"],
     _jumps("cali-po-gnp/", [("a", False), ("b", True), ("c", True), ("d", True), ("e", True)])
     + [RETURN_ON_VERDICT] + _jumps("cali-po-gnp/", [("f", False), ("g", True)])),
    (DIRECTION_OUTBOUND, [PolicyID("a", kind=SGNP), PolicyID("b", kind=SGNP)] + [gnp(n) for n in "cdefghi"],
     _jumps("cali-po-gnp/", [("c", False), ("d", True), ("e", True), ("f", True), ("g", True)])
     + [RETURN_ON_VERDICT] + _jumps("cali-po-gnp/", [("h", False), ("i", True)])),
    (DIRECTION_OUTBOUND, [PolicyID(n, kind=SGNP) for n in "abc"] + [gnp("d"), PolicyID("e", kind=SGNP),
                                                                   gnp("f"), gnp("g")],
     _jumps("cali-po-gnp/", [("d", False), ("f", True), ("g", True)])),
])
def test_policy_group_chain(direction, policies, expected):
    cfg = RulesConfig(**MARKS)
    group = PolicyGroup(direction, tuple(policies), "all()")
    chain = policy_group_chain(cfg, group)
    assert chain.name == group.chain_name
    assert bodies(chain) == expected


def test_workload_and_host_chains_from_messages():
    cfg = normal_cfg()
    a, b = gnp("a"), gnp("b")
    sel = {a: "role == 'db'", b: "role == 'db'"}
    wep = WorkloadEndpoint(name="cali1234", profile_ids=("kns.ns1",),
                           tiers=(TierInfo("default", ingress_policies=(a, b)),))
    chains, groups = endpoints.workload_chains(cfg, wep, sel)
    (group,) = groups
    assert group.name.startswith("cali-gi-") and bodies(group) == [
        "--jump cali-pi-gnp/a", "-m mark --mark 0/0x18 --jump cali-pi-gnp/b"]
    assert f"-m mark --mark 0/0x10 --jump {group.name}" in bodies(chains[0])
    down, _ = endpoints.workload_chains(cfg, WorkloadEndpoint(name="cali1234", state="inactive"), sel)
    assert bodies(down[0]) == ['-m comment --comment "Endpoint admin disabled" --jump DROP']

    hep = HostEndpoint(name="eth0", profile_ids=("projectcalico-default-allow",),
                       tiers=(TierInfo("default", (a,), (b,)),),
                       untracked_tiers=(TierInfo("default", (a,), (), "Pass"),),
                       pre_dnat_tiers=(TierInfo("default", (b,), (), "Pass"),))
    by_table, groups = endpoints.host_chains(cfg, "eth0", hep, {a: "x", b: "y"})
    assert [c.name for c in by_table["filter"]] == ["cali-th-eth0", "cali-fh-eth0", "cali-thfw-eth0",
                                                    "cali-fhfw-eth0"]
    assert [c.name for c in by_table["mangle"]] == ["cali-th-eth0", "cali-fh-eth0"]
    assert [c.name for c in by_table["raw"]] == ["cali-th-eth0", "cali-fh-eth0"]
    assert groups == []
    # A "*" HEP never gets raw chains.
    by_table, _ = endpoints.host_chains(cfg, "any-interface-at-all", hep, {})
    assert by_table["raw"] == []
    assert by_table["filter"][2].name == "cali-thfw-_Nqh4HyA73udmyanQI"


def test_rpf_skip_chain():
    chain = endpoints.rpf_skip_chain(4, {"cali2": ["10.0.0.0/24", "fd00::/64"], "cali1": ["192.168.0.0/16"]})
    assert chain.name == "cali-rpf-skip"
    assert bodies(chain) == ["--in-interface cali1 --source 192.168.0.0/16 --jump ACCEPT",
                             "--in-interface cali2 --source 10.0.0.0/24 --jump ACCEPT"]
    assert bodies(endpoints.rpf_skip_chain(6, {"cali2": ["10.0.0.0/24", "fd00::/64"]})) == [
        "--in-interface cali2 --source fd00::/64 --jump ACCEPT"]


# --------------------------------------------------------------------------------------
# Appendix A of the spec, rendered exactly (default config, no hash comments).

def test_appendix_a():
    from node.felix.rules import dispatch, policy
    from node.felix.types import ParsedRule, Policy, PortRange, Profile
    cfg = RulesConfig()
    knp = PolicyID("allow-from-a", "ns1", KIND_KUBERNETES_NETWORK_POLICY)
    wep = WorkloadEndpoint(name="cali1a2b3c4d5e6", profile_ids=("kns.ns1", "ksa.ns1.default"),
                           ipv4_nets=("10.65.0.5/32",),
                           tiers=(TierInfo("default", ingress_policies=(knp,)),))
    pol = Policy(namespace="ns1", tier="default", inbound_rules=(
        ParsedRule(action="allow", protocol="tcp",
                   src_ip_set_ids=("s:Rz2tLuROzxUubxYL2oDTxjK5ZvSdeEBPyqYMbQ",),
                   dst_ports=(PortRange(80, 80),)),))
    (tw, fw), groups = endpoints.workload_chains(cfg, wep, {knp: "app == 'web'"})
    pi, _ = policy.policy_chains(cfg, knp, pol, 4)
    pri_kns, _ = policy.profile_chains(cfg, "kns.ns1", Profile((ParsedRule(action="allow"),),
                                                               (ParsedRule(action="allow"),)), 4)
    pri_ksa, _ = policy.profile_chains(cfg, "ksa.ns1.default", Profile(), 4)
    to_dispatch = dispatch.workload_dispatch_chains(cfg, ["cali1a2b3c4d5e6"])[1]
    lines = [render_append(r, c.name) for c in (tw, pi, pri_kns, pri_ksa, to_dispatch) for r in c.rules]
    assert lines == [
        "-A cali-tw-cali1a2b3c4d5e6 -m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "-A cali-tw-cali1a2b3c4d5e6 -m conntrack --ctstate INVALID --jump DROP",
        "-A cali-tw-cali1a2b3c4d5e6 --jump MARK --set-mark 0/0x30000",
        '-A cali-tw-cali1a2b3c4d5e6 -m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x20000',
        "-A cali-tw-cali1a2b3c4d5e6 -m mark --mark 0/0x20000 --jump cali-pi-knp/ns1/allow-from-a",
        '-A cali-tw-cali1a2b3c4d5e6 -m comment --comment "Return if policy accepted" '
        "-m mark --mark 0x10000/0x10000 --jump RETURN",
        '-A cali-tw-cali1a2b3c4d5e6 -m comment --comment "End of tier default. Drop if no policies passed packet" '
        "-m mark --mark 0/0x20000 --jump DROP",
        "-A cali-tw-cali1a2b3c4d5e6 --jump cali-pri-kns.ns1",
        '-A cali-tw-cali1a2b3c4d5e6 -m comment --comment "Return if profile accepted" '
        "-m mark --mark 0x10000/0x10000 --jump RETURN",
        "-A cali-tw-cali1a2b3c4d5e6 --jump cali-pri-ksa.ns1.default",
        '-A cali-tw-cali1a2b3c4d5e6 -m comment --comment "Return if profile accepted" '
        "-m mark --mark 0x10000/0x10000 --jump RETURN",
        '-A cali-tw-cali1a2b3c4d5e6 -m comment --comment "Drop if no profiles matched" --jump DROP',
        '-A cali-pi-knp/ns1/allow-from-a -m comment --comment "KubernetesNetworkPolicy ns1/allow-from-a ingress" '
        "-p tcp -m set --match-set cali40s:Rz2tLuROzxUubxYL2oDTxjK src -m multiport --destination-ports 80 "
        "--jump MARK --set-mark 0x10000/0x10000",
        '-A cali-pri-kns.ns1 -m comment --comment "Profile kns.ns1 ingress" --jump MARK --set-mark 0x10000/0x10000',
        '-A cali-pri-ksa.ns1.default -m comment --comment "Profile ksa.ns1.default ingress"',
        "-A cali-to-wl-dispatch --out-interface cali1a2b3c4d5e6 --goto cali-tw-cali1a2b3c4d5e6",
        '-A cali-to-wl-dispatch -m comment --comment "Unknown interface" --jump DROP',
    ]
    assert groups == []
    # "The cali-fw-… chain is the same shape. It adds the two encap-drop rules after the
    # clear-mark rule and has no tier section, so it goes straight to the cali-pro- profiles."
    assert bodies(fw) == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
        "-m conntrack --ctstate INVALID --jump DROP",
        "--jump MARK --set-mark 0/0x30000",
        '-m comment --comment "Drop VXLAN encapped packets originating in workloads" '
        "-p 17 -m multiport --destination-ports 4789 --jump DROP",
        '-m comment --comment "Drop IPinIP encapped packets originating in workloads" -p 4 --jump DROP',
        "--jump cali-pro-kns.ns1",
        '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 --jump RETURN',
        "--jump cali-pro-ksa.ns1.default",
        '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 --jump RETURN',
        '-m comment --comment "Drop if no profiles matched" --jump DROP',
    ]
