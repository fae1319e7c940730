"""The calculation graph end to end: Felix's calc-graph states (states_for_test.go) in v3
form, coalescing, validation, in-sync gating and incremental output."""
from __future__ import annotations

import logging

import pytest

from node.felix import types as t
from node.felix.calc import DataplaneView, PolicyCalculation, calculate
from node.model import Resource

from felix_calc_builders import (LOCAL, REMOTE, delete, felix_config, gnetset, gnp, hep, netset, node,
                                      np, ns_profile, pool, profile, put, tier, wep)

GNP = "GlobalNetworkPolicy"
ALL_ID = "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"           # all()
B_EQ_B_ID = "s:8Fb8HeM2GAxsfgNYVjbNrgSZ2H4cZJI8ODNBVg"       # b == "b"
EP1_IPS = frozenset({"10.0.0.1/32", "10.0.0.2/32", "fc00:fe11::1/128", "fc00:fe11::2/128"})
EP1_ID = t.WorkloadEndpointID("orch", "default/wl1", "ep1")
DROP = t.Profile((t.ParsedRule(action="deny"),), (t.ParsedRule(action="deny"),))


def pid(name: str) -> t.PolicyID:
    return t.PolicyID(name, "", GNP)


def local_ep1(**labels) -> Resource:
    """Felix's localWlEp1."""
    return Resource("WorkloadEndpoint", {
        "name": "node1-orch-wl1-ep1", "namespace": "default",
        "labels": labels or {"id": "loc-ep-1", "a": "a", "b": "b"}}, {
        "orchestrator": "orch", "node": LOCAL, "workload": "wl1", "endpoint": "ep1", "interfaceName": "cali1",
        "mac": "01:02:03:04:05:06", "profiles": ["prof-1", "prof-2", "prof-missing"],
        "ipNetworks": ["10.0.0.1/32", "10.0.0.2/32", "fc00:fe11::1/128", "fc00:fe11::2/128"],
        "ports": [{"name": "tcpport", "protocol": "TCP", "port": 8080},
                  {"name": "tcpport2", "protocol": "TCP", "port": 1234},
                  {"name": "udpport", "protocol": "UDP", "port": 9091}]})


def host_ep1(node_name: str = LOCAL) -> Resource:
    """Felix's hostEpWithName."""
    return hep("named", node=node_name, iface="eth1", ips=["10.0.0.1", "10.0.0.2", "fc00:fe11::1", "fc00:fe11::2"],
               labels={"id": "loc-ep-1", "a": "a", "b": "b"}, profiles=["prof-1", "prof-2", "prof-missing"])


def pol1(name: str = "pol-1", tier_name: str = "default", order: float = 20, **spec) -> Resource:
    """Felix's policy1_order20."""
    body = dict(tier=tier_name, order=order, selector="a == 'a'", types=["Ingress", "Egress"],
                ingress=[{"action": "Allow", "source": {"selector": "all()"}}],
                egress=[{"action": "Allow", "source": {"selector": "b == 'b'"}}])
    body.update(spec)
    return gnp(name, **body)


def view_of(resources, hostname=LOCAL, **options) -> DataplaneView:
    return DataplaneView().apply(calculate(hostname, resources, **options))


def tiers_of(view: DataplaneView, ep_id=EP1_ID):
    return [(ti.name, [p.name for p in ti.ingress_policies], [p.name for p in ti.egress_policies], ti.default_action)
            for ti in view.workload_endpoints[ep_id].tiers]


def sets_of(view: DataplaneView) -> dict:
    return {k: m for k, (_typ, m) in view.ipsets.items()}


# --------------------------------------------------------------------------------------
# Felix's calc-graph states.

def test_set_id_constants():
    from node.selector import parse
    assert parse("all()").unique_id() == ALL_ID
    assert parse("b == 'b'").unique_id() == B_EQ_B_ID


def test_local_ep1_with_policy():
    """states_for_test.go localEp1WithPolicy."""
    view = view_of([tier("default", 20), pol1(), local_ep1()])
    assert view.ipsets == {ALL_ID: (t.IPSetType.NET, EP1_IPS), B_EQ_B_ID: (t.IPSetType.NET, EP1_IPS)}
    assert set(view.policies) == {pid("pol-1")}
    assert view.profiles == {"prof-1": DROP, "prof-2": DROP, "prof-missing": DROP}
    ep = view.workload_endpoints[EP1_ID]
    assert ep == t.WorkloadEndpoint(
        name="cali1", mac="01:02:03:04:05:06", profile_ids=("prof-1", "prof-2", "prof-missing"),
        ipv4_nets=("10.0.0.1/32", "10.0.0.2/32"), ipv6_nets=("fc00:fe11::1/128", "fc00:fe11::2/128"),
        tiers=(t.TierInfo("default", (pid("pol-1"),), (pid("pol-1"),), "Deny"),))
    assert view.in_sync


def test_local_ep1_with_named_port_policy():
    """localEp1WithNamedPortPolicy: the named-port set replaces the all() set."""
    policy = pol1(ingress=[{"action": "Allow", "protocol": "TCP",
                            "source": {"selector": "all()", "ports": ["tcpport"]}}])
    view = view_of([tier("default", 20), policy, local_ep1()])
    np_id = view.policies[pid("pol-1")].inbound_rules[0].src_named_port_ip_set_ids[0]
    assert view.ipsets == {
        np_id: (t.IPSetType.IP_AND_PORT, frozenset({"10.0.0.1,tcp:8080", "10.0.0.2,tcp:8080",
                                                    "fc00:fe11::1,tcp:8080", "fc00:fe11::2,tcp:8080"})),
        B_EQ_B_ID: (t.IPSetType.NET, EP1_IPS)}
    assert np_id == "n:RMAIMXhhyW5sWWm_0o9euzK6TlyAbtjf6Ta9Jw"  # MakeUniqueID("n", ALL_ID + ",tcp,tcpport")


@pytest.mark.parametrize("orders,expected", [
    ((10, 20, 30), ["pol-1", "pol-2", "pol-3"]),   # commLocalEp1WithOneTierPolicy123
    ((30, 20, 10), ["pol-3", "pol-2", "pol-1"]),   # ...321
    ((10, 10, 10), ["pol-1", "pol-2", "pol-3"]),   # ...Alpha
])
def test_policy_order_states(orders, expected):
    resources = [local_ep1(), tier("tier-1", 20)]
    resources += [pol1(f"pol-{i + 1}", tier_name="tier-1", order=o) for i, o in enumerate(orders)]
    view = view_of(resources)
    assert tiers_of(view) == [("tier-1", expected, expected, "Deny")]


@pytest.mark.parametrize("orders,expected", [
    ((10, 20, 30), ["tier-1", "tier-2", "tier-3"]),   # localEp1WithTiers123
    ((30, 20, 10), ["tier-3", "tier-2", "tier-1"]),   # ...321
    ((10, 10, 10), ["tier-1", "tier-2", "tier-3"]),   # ...Alpha
    ((20, 20, 20), ["tier-1", "tier-2", "tier-3"]),   # ...Alpha2
    ((20, 20, 10), ["tier-3", "tier-1", "tier-2"]),   # ...Alpha3
])
def test_tier_order_states(orders, expected):
    resources = [local_ep1()]
    for i, order in enumerate(orders):
        resources += [tier(f"tier-{i + 1}", order), pol1(f"tier-{i + 1}-pol", tier_name=f"tier-{i + 1}")]
    view = view_of(resources)
    assert [name for name, *_ in tiers_of(view)] == expected
    assert sets_of(view) == {ALL_ID: EP1_IPS, B_EQ_B_ID: EP1_IPS}


def test_host_ep1_with_policy_ingress_only_and_egress_only():
    """hostEp1WithPolicy / hostEp1WithIngressPolicy / hostEp1WithEgressPolicy."""
    view = view_of([tier("default", 20), pol1(), host_ep1()])
    ep = view.host_endpoints[t.HostEndpointID("named")]
    assert ep == t.HostEndpoint(
        name="eth1", profile_ids=("prof-1", "prof-2", "prof-missing"),
        tiers=(t.TierInfo("default", (pid("pol-1"),), (pid("pol-1"),), "Deny"),),
        expected_ipv4_addrs=("10.0.0.1", "10.0.0.2"), expected_ipv6_addrs=("fc00:fe11::1", "fc00:fe11::2"))
    assert sets_of(view) == {ALL_ID: EP1_IPS, B_EQ_B_ID: EP1_IPS}

    view = view_of([pol1(types=["Ingress"], egress=[]), host_ep1()])
    assert view.host_endpoints[t.HostEndpointID("named")].tiers == (
        t.TierInfo("default", (pid("pol-1"),), (), "Deny"),)
    assert sets_of(view) == {ALL_ID: EP1_IPS}

    view = view_of([pol1(types=["Egress"], ingress=[]), host_ep1()])
    assert view.host_endpoints[t.HostEndpointID("named")].tiers == (
        t.TierInfo("default", (), (pid("pol-1"),), "Deny"),)
    assert sets_of(view) == {B_EQ_B_ID: EP1_IPS}


def test_host_ep1_untracked_pre_dnat_and_both():
    """hostEp1WithUntrackedPolicy / hostEp1WithPreDNATPolicy / hostEp1WithTrackedAndUntrackedPolicy."""
    untracked = pol1(types=[], doNotTrack=True, applyOnForward=True)
    view = view_of([untracked, host_ep1()])
    ep = view.host_endpoints[t.HostEndpointID("named")]
    assert (ep.tiers, ep.pre_dnat_tiers, ep.forward_tiers) == ((), (), ())
    assert ep.untracked_tiers == (t.TierInfo("default", (pid("pol-1"),), (pid("pol-1"),), "Pass"),)
    assert view.policies[pid("pol-1")].untracked

    pre_dnat = pol1("pre-dnat-pol-1", types=[], egress=[], preDNAT=True, applyOnForward=True)
    view = view_of([pre_dnat, host_ep1()])
    ep = view.host_endpoints[t.HostEndpointID("named")]
    assert (ep.tiers, ep.untracked_tiers) == ((), ())
    assert ep.pre_dnat_tiers == (t.TierInfo("default", (pid("pre-dnat-pol-1"),), (), "Pass"),)
    assert sets_of(view) == {ALL_ID: EP1_IPS}

    view = view_of([untracked, pol1("pol-2"), host_ep1()])
    ep = view.host_endpoints[t.HostEndpointID("named")]
    assert ep.tiers == (t.TierInfo("default", (pid("pol-2"),), (pid("pol-2"),), "Deny"),)
    assert ep.untracked_tiers == (t.TierInfo("default", (pid("pol-1"),), (pid("pol-1"),), "Pass"),)


def test_forward_tiers_and_untracked_policy_on_a_workload():
    view = view_of([pol1(applyOnForward=True), host_ep1()])
    ep = view.host_endpoints[t.HostEndpointID("named")]
    assert ep.forward_tiers == ep.tiers == (t.TierInfo("default", (pid("pol-1"),), (pid("pol-1"),), "Deny"),)
    # A doNotTrack policy matching a workload is active but never in its tiers.
    view = view_of([pol1(doNotTrack=True, applyOnForward=True), local_ep1()])
    assert set(view.policies) == {pid("pol-1")}
    assert view.workload_endpoints[EP1_ID].tiers == ()


def test_host_ep1_with_network_sets():
    """hostEp1WithPolicyAndANetworkSet / ...TwoNetworkSets / ...ANetworkSetMatchingBEqB."""
    net_set1 = gnetset("netset-1", ["12.0.0.0/24", "12.0.0.0/24", "12.1.0.0/24", "10.0.0.1/32", "feed:beef::/32",
                                    "feed:beef:0::/32"], {"a": "b"})
    base = [tier("default", 20), pol1(), host_ep1()]
    view = view_of(base + [net_set1])
    assert sets_of(view) == {ALL_ID: EP1_IPS | {"12.0.0.0/24", "12.1.0.0/24", "feed:beef::/32"},
                             B_EQ_B_ID: EP1_IPS}
    net_set2 = gnetset("netset-2", ["12.0.0.0/24", "13.1.0.0/24"], {"a": "b"})
    view = view_of(base + [net_set1, net_set2])
    assert sets_of(view)[ALL_ID] == EP1_IPS | {"12.0.0.0/24", "12.1.0.0/24", "feed:beef::/32", "13.1.0.0/24"}
    net_set1_b = gnetset("netset-1", ["12.0.0.0/24", "12.0.0.0/24", "12.1.0.0/24", "10.0.0.1/32"],
                         {"foo": "bar", "b": "b"})
    view = view_of(base + [net_set1_b])
    assert sets_of(view) == {ALL_ID: EP1_IPS | {"12.0.0.0/24", "12.1.0.0/24"},
                             B_EQ_B_ID: EP1_IPS | {"12.0.0.0/24", "12.1.0.0/24"}}


def test_remote_endpoints_feed_sets_but_get_no_messages():
    view = view_of([pol1(), local_ep1(), wep("remote", ns="default", node=REMOTE, ips=["10.9.0.1/32"],
                                                labels={"b": "b"})])
    assert sets_of(view)[B_EQ_B_ID] == EP1_IPS | {"10.9.0.1/32"}
    assert list(view.workload_endpoints) == [EP1_ID]


# --------------------------------------------------------------------------------------
# Overlap suppression (Felix's MemberDeduplicator test, through network sets).

def test_overlap_suppression_sequence():
    graph = PolicyCalculation(LOCAL)
    view = DataplaneView()
    graph.on_updates(put(gnp("p", selector="all()", ingress=[{"action": "Allow", "source": {"selector": "has(m)"}}]),
                         hep("h", iface="eth0", labels={"x": "y"})))
    graph.on_in_sync()
    view.apply(graph.take_messages())
    set_id = next(iter(view.ipsets))

    def step(*resources, removed=()):
        graph.on_updates(put(*resources) + delete(*removed))
        view.apply(graph.take_messages())
        return view.ipsets[set_id][1]

    ip1, ip2, ip3 = (gnetset(n, [c], {"m": "1"}) for n, c in (("ip1", "10.0.0.1"), ("ip2", "10.0.0.2"),
                                                                 ("ip3", "11.0.0.2")))
    mask, ip4 = gnetset("mask", ["10.0.0.0/24"], {"m": "1"}), gnetset("ip4", ["10.0.0.3"], {"m": "1"})
    assert step(ip1, ip2, ip3) == {"10.0.0.1/32", "10.0.0.2/32", "11.0.0.2/32"}
    assert step(mask) == {"10.0.0.0/24", "11.0.0.2/32"}
    assert step(ip4) == {"10.0.0.0/24", "11.0.0.2/32"}
    assert step(removed=[mask]) == {"10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "11.0.0.2/32"}
    # Descendants on different levels.
    a, b = gnetset("a", ["10.1.1.1"], {"m": "1"}), gnetset("b", ["10.1.2.1"], {"m": "1"})
    c, d = gnetset("c", ["10.1.1.0/24"], {"m": "1"}), gnetset("d", ["10.1.0.0/16"], {"m": "1"})
    base = {"10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "11.0.0.2/32"}
    assert step(a, b, c) == base | {"10.1.1.0/24", "10.1.2.1/32"}
    assert step(d) == base | {"10.1.0.0/16"}
    assert step(removed=[d]) == base | {"10.1.1.0/24", "10.1.2.1/32"}
    assert step(removed=[c]) == base | {"10.1.1.1/32", "10.1.2.1/32"}
    # Without suppression every distinct member is listed.
    plain = view_of([gnp("p", selector="all()", ingress=[{"action": "Allow", "source": {"selector": "has(m)"}}]),
                     hep("h", iface="eth0"), ip1, mask], suppress_overlaps=False)
    assert next(iter(plain.ipsets.values()))[1] == {"10.0.0.1/32", "10.0.0.0/24"}


# --------------------------------------------------------------------------------------
# Labels, namespaces and profiles.

def test_label_inheritance_endpoint_wins_then_first_profile():
    resources = [profile("p1", labels={"a": "from-p1", "b": "from-p1"}), profile("p2", labels={"b": "from-p2",
                                                                                               "c": "from-p2"}),
                 wep("w", ns="ns1", labels={"a": "own"}, profiles=["p1", "p2"]),
                 gnp("sel-a", selector="a == 'own' && b == 'from-p1' && c == 'from-p2'", ingress=[{"action": "Allow"}])]
    view = view_of(resources)
    assert set(view.policies) == {pid("sel-a")}
    assert view.profiles["p1"] == view.profiles["p2"] == t.Profile()


def test_namespace_selector_reaches_pods_and_network_sets():
    resources = [ns_profile("prod", {"env": "prod"}), ns_profile("dev", {"env": "dev"}),
                 wep("web", ns="prod", labels={"app": "web"}, ips=["10.65.0.5/32"]),
                 wep("cli", ns="dev", node=REMOTE, labels={"app": "cli"}, ips=["10.65.1.9/32"]),
                 netset("corp", "prod", ["192.168.0.0/16"]),
                 np("allow-prod", ns="prod", selector="app == 'web'",
                    ingress=[{"action": "Allow", "source": {"namespaceSelector": "env == 'prod'"}},
                             {"action": "Allow", "source": {"namespaceSelector": "env == 'dev'",
                                                            "selector": "app == 'cli'"}}])]
    view = view_of(resources)
    rules = view.policies[t.PolicyID("allow-prod", "prod", "NetworkPolicy")].inbound_rules
    members = sets_of(view)
    assert members[rules[0].src_ip_set_ids[0]] == {"10.65.0.5/32", "192.168.0.0/16"}
    assert members[rules[1].src_ip_set_ids[0]] == {"10.65.1.9/32"}


def test_namespace_label_change_is_incremental():
    graph = PolicyCalculation(LOCAL)
    resources = [ns_profile("prod", {"env": "prod"}), ns_profile("dev", {"env": "dev"}),
                 wep("web", ns="prod", labels={"app": "web"}, ips=["10.65.0.5/32"]),
                 wep("cli", ns="dev", node=REMOTE, labels={"app": "cli"}, ips=["10.65.1.9/32"]),
                 np("allow", ns="prod", selector="app == 'web'",
                    ingress=[{"action": "Allow", "source": {"namespaceSelector": "env == 'prod'"}}])]
    graph.on_updates(put(*resources))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    set_id = next(iter(view.ipsets))
    graph.on_updates(put(ns_profile("dev", {"env": "prod"})))
    msgs = graph.take_messages()
    assert msgs == [t.IPSetDeltaUpdate(set_id, frozenset({"10.65.1.9/32"}), frozenset())]


# --------------------------------------------------------------------------------------
# Batching and coalescing.

def test_set_created_and_deleted_in_one_batch_emits_nothing():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(local_ep1()))
    graph.on_in_sync()
    first = graph.take_messages()
    assert {type(m) for m in first} == {t.ConfigUpdate, t.ActiveProfileUpdate, t.WorkloadEndpointUpdate, t.InSync}
    graph.on_updates(put(pol1()) + delete(pol1()))
    assert graph.take_messages() == []


def test_endpoint_updated_twice_emits_its_last_state_and_unsent_deletes_vanish():
    graph = PolicyCalculation(LOCAL)
    graph.on_in_sync()
    graph.take_messages()
    ep = wep("a", ns="ns1", iface="cali-a", profiles=[])
    ep2 = wep("a", ns="ns1", iface="cali-b", profiles=[])
    graph.on_updates(put(ep, ep2))
    msgs = graph.take_messages()
    assert [m.endpoint.name for m in msgs] == ["cali-b"]
    graph.on_updates(put(wep("b", ns="ns1", profiles=[])) + delete(wep("b", ns="ns1", profiles=[])))
    assert graph.take_messages() == []
    # A label change that alters no tier, profile or set sends nothing.
    graph.on_updates(put(wep("a", ns="ns1", iface="cali-b", profiles=[], labels={"new": "label"})))
    assert graph.take_messages() == []
    graph.on_updates(delete(ep2))
    assert graph.take_messages() == [t.WorkloadEndpointRemove(t.WorkloadEndpointID("k8s", "ns1/a", "eth0"))]


def test_set_removed_and_readded_in_one_batch_is_sent_whole():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(pol1(), local_ep1()))
    graph.on_in_sync()
    graph.take_messages()
    graph.on_updates(delete(pol1()) + put(pol1()))
    msgs = graph.take_messages()
    # The policy is unchanged, so it is not re-sent; its sets were deleted and re-created.
    assert sorted(type(m).__name__ for m in msgs) == ["IPSetUpdate", "IPSetUpdate"]
    assert all(m.members == EP1_IPS for m in msgs if isinstance(m, t.IPSetUpdate))


def test_messages_come_in_dependency_order():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(pol1(), local_ep1(), pool("p", "10.0.0.0/16"), node(LOCAL, "10.1.1.1/24")))
    graph.on_in_sync()
    kinds = [type(m).__name__ for m in graph.take_messages()]
    assert kinds == ["ConfigUpdate", "IPSetUpdate", "IPSetUpdate", "ActivePolicyUpdate", "ActiveProfileUpdate",
                     "ActiveProfileUpdate", "ActiveProfileUpdate", "WorkloadEndpointUpdate", "HostMetadataUpdate",
                     "IPAMPoolUpdate", "InSync"]
    graph.on_updates(delete(local_ep1()))
    kinds = [type(m).__name__ for m in graph.take_messages()]
    assert kinds == ["WorkloadEndpointRemove", "ActiveProfileRemove", "ActiveProfileRemove",
                     "ActiveProfileRemove", "ActivePolicyRemove", "IPSetRemove", "IPSetRemove"]


def test_endpoints_and_config_wait_for_in_sync():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(pol1(), local_ep1(), felix_config("default", logSeverityScreen="Info")))
    before = graph.take_messages()
    assert not any(isinstance(m, (t.WorkloadEndpointUpdate, t.ConfigUpdate, t.InSync)) for m in before)
    assert any(isinstance(m, t.ActivePolicyUpdate) for m in before)
    graph.on_in_sync()
    after = graph.take_messages()
    assert after[0] == t.ConfigUpdate({"default": {"logSeverityScreen": "Info"}, "selector": {}, "node": {},
                                       "clusterinfo": {}, "annotations": {}})
    assert [type(m) for m in after[1:]] == [t.WorkloadEndpointUpdate, t.InSync]
    graph.on_in_sync()
    assert graph.take_messages() == []


def test_config_updates():
    graph = PolicyCalculation(LOCAL)
    graph.on_in_sync()
    assert graph.take_messages()[0] == t.ConfigUpdate({"default": {}, "selector": {}, "node": {}, "clusterinfo": {},
                                                       "annotations": {}})
    graph.on_updates(put(felix_config(f"node.{LOCAL}", ipipEnabled=True), felix_config("node.other", bpfEnabled=True),
                         Resource("ClusterInformation", {"name": "default"}, {"datastoreReady": True})))
    assert graph.take_messages() == [t.ConfigUpdate({"default": {}, "selector": {}, "node": {"ipipEnabled": True},
                                                     "clusterinfo": {"datastoreReady": True}, "annotations": {}})]
    graph.on_updates(put(felix_config("node.other", bpfEnabled=False)))
    assert graph.take_messages() == []


# --------------------------------------------------------------------------------------
# Validation: unusable resources are logged and treated as absent.

def test_invalid_policy_is_logged_and_its_previous_version_removed(caplog):
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(pol1(), local_ep1()))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    bad = pol1(ingress=[{"action": "Allow", "source": {"selector": "a == "}}])
    with caplog.at_level(logging.WARNING):
        graph.on_updates(put(bad, gnp("other", selector="has(", ingress=[])))
    assert "GlobalNetworkPolicy(pol-1)" in caplog.text and "GlobalNetworkPolicy(other)" in caplog.text
    view.apply(graph.take_messages())
    assert view.policies == {} and view.ipsets == {}
    assert view.workload_endpoints[EP1_ID].tiers == ()
    # The rest carries on: the endpoint and its profiles are untouched.
    assert set(view.profiles) == {"prof-1", "prof-2", "prof-missing"}


def test_spoofing_workloads_need_the_config(caplog):
    spoofer = wep("s", ns="ns1", profiles=[], allowSpoofedSourcePrefixes=["8.8.8.0/24"], ips=["10.0.0.7/32"])
    graph = PolicyCalculation(LOCAL)
    with caplog.at_level(logging.WARNING):
        graph.on_updates(put(spoofer, gnp("p", selector="all()", ingress=[{"action": "Allow",
                                                                          "source": {"selector": "all()"}}])))
    assert "WorkloadEndpoint(ns1/node1-k8s-s-eth0)" in caplog.text
    assert "spoofing requested but not enabled" in caplog.text
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    assert view.workload_endpoints == {}
    graph.on_updates(put(felix_config("default", workloadSourceSpoofing="Any")))
    view.apply(graph.take_messages())
    ep = view.workload_endpoints[t.WorkloadEndpointID("k8s", "ns1/s", "eth0")]
    assert ep.allow_spoofed_source_prefixes == ("8.8.8.0/24",)
    assert next(iter(view.ipsets.values()))[1] == {"10.0.0.7/32"}
    assert set(view.policies) == {t.PolicyID("p", "", GNP)}
    # An explicit setting (environment) overrides the datastore.
    assert view_of([spoofer], workload_source_spoofing="Any").workload_endpoints


def test_malformed_resources_do_not_disturb_the_rest(caplog):
    bad_wep = Resource("WorkloadEndpoint", {"name": "not-a-valid-wep-name-at-all", "namespace": "ns1"},
                       {"ipNetworks": ["10.0.0.9/32"], "interfaceName": "calix"})
    bad_types = Resource("WorkloadEndpoint", {"name": "node1-k8s-x-eth0", "namespace": "ns1"},
                         {"ipNetworks": "10.0.0.9/32", "interfaceName": "calix"})
    no_iface = wep("noiface", iface="", profiles=[])
    with caplog.at_level(logging.WARNING):
        view = view_of([bad_wep, bad_types, no_iface, tier("t", "high"), local_ep1(), pol1()])
    assert set(view.workload_endpoints) == {EP1_ID}
    for name in ("not-a-valid-wep-name-at-all", "node1-k8s-x-eth0", "node1-k8s-noiface-eth0", "Tier(t)"):
        assert name in caplog.text


def test_unknown_kinds_are_ignored():
    bgp = Resource("BGPPeer", {"name": "b"}, {"peerIP": "10.0.0.1"})
    assert view_of([bgp, local_ep1()]).policies == {}


SNP, SGNP, SKNP = t.KIND_STAGED_NETWORK_POLICY, t.KIND_STAGED_GLOBAL_NETWORK_POLICY, \
    t.KIND_STAGED_KUBERNETES_NETWORK_POLICY
WEB_ID = t.WorkloadEndpointID("k8s", "ns1/web", "eth0")


def staged(kind: str, name: str, ns: str = "", **spec) -> Resource:
    return Resource(kind, {"name": name, **({"namespace": ns} if ns else {})}, spec)


def test_staged_policies_are_calculated_as_the_kinds_they_stage():
    """libcalico-go's staged processors: the enforced form under the staged kind (so their
    rules' IP sets are calculated too); a staged deletion is never sent."""
    rule = {"action": "Allow", "source": {"selector": "role == 'db'"}}
    resources = [
        tier("default"), wep("web", labels={"app": "web"}), wep("db", ips=("10.65.0.2/32",), labels={"role": "db"}),
        staged(SNP, "snp", "ns1", selector="app == 'web'", order=10, types=["Ingress"], ingress=[rule]),
        staged(SGNP, "sgnp", stagedAction="Learn", selector="app == 'web'", order=20, types=["Egress"],
               egress=[{"action": "Deny"}]),
        staged(SGNP, "gone", stagedAction="Delete"),
        staged(SKNP, "sknp", "ns1", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Ingress"]),
    ]
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(*resources))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    snp_id, sgnp_id, sknp_id = (t.PolicyID("snp", "ns1", SNP), t.PolicyID("sgnp", "", SGNP),
                                t.PolicyID("sknp", "ns1", SKNP))
    assert set(view.policies) == {snp_id, sgnp_id, sknp_id}
    assert view.workload_endpoints[WEB_ID].tiers == (
        t.TierInfo("default", (snp_id, sknp_id), (sgnp_id,), "Deny"),)
    (set_id,) = view.policies[snp_id].inbound_rules[0].src_ip_set_ids
    assert sets_of(view)[set_id] == frozenset({"10.65.0.2/32"})
    assert view.policies[sknp_id].inbound_rules == ()
    # Staging a deletion instead withdraws the policy, and the IP set its rule used.
    graph.on_updates(put(staged(SNP, "snp", "ns1", stagedAction="Delete")))
    view.apply(graph.take_messages())
    assert set(view.policies) == {sgnp_id, sknp_id} and set_id not in view.ipsets
    assert view.workload_endpoints[WEB_ID].tiers == (t.TierInfo("default", (sknp_id,), (sgnp_id,), "Deny"),)


def test_a_staged_policy_sorts_after_its_enforced_namesake():
    """Equal order: Felix breaks the tie on "<name>/<namespace>/<kind>"."""
    resources = [tier("default"), wep("web", labels={"app": "web"}),
                 staged(SGNP, "p", selector="all()", order=5, types=["Ingress"]),
                 gnp("p", selector="all()", order=5, types=["Ingress"]),
                 gnp("q", selector="all()", order=5, types=["Ingress"])]
    (info,) = view_of(resources).workload_endpoints[WEB_ID].tiers
    assert info.ingress_policies == (t.PolicyID("p", "", GNP), t.PolicyID("p", "", SGNP), t.PolicyID("q", "", GNP))


def test_staged_kubernetes_policy_converts_as_a_kubernetes_network_policy():
    from node.felix.calc import convert as cv
    policy = cv.convert_policy(staged(SKNP, "sknp", "ns1", podSelector={"matchLabels": {"app": "web"}},
                                      stagedAction="Set"))
    assert (policy.id, policy.tier, policy.order, policy.types, policy.namespace) == (
        t.PolicyID("sknp", "ns1", SKNP), "default", 1000.0, ("ingress",), "ns1")
    assert policy.selector == ("(projectcalico.org/orchestrator == 'k8s' && app == 'web') && "
                               "projectcalico.org/namespace == 'ns1'")
    # A rule that does not convert makes the whole staged policy unusable.
    with pytest.raises(ValueError, match=r"spec.ingress\[0\]"):
        cv.convert_policy(staged(SKNP, "bad", "ns1", ingress=[{"ports": [{"port": "99999"}]}]))


# --------------------------------------------------------------------------------------
# Tiers, forced policies, profiles, pools, hosts, endpoint moves.

def test_tiers_missing_changed_and_deleted():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(local_ep1(), pol1("in-ghost", tier_name="ghost"), pol1("in-t1", tier_name="t1"),
                         tier("t1", 50, "Pass")))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    assert tiers_of(view) == [("t1", ["in-t1"], ["in-t1"], "Pass"), ("ghost", ["in-ghost"], ["in-ghost"], "Deny")]
    graph.on_updates(put(tier("ghost", 10)))
    view.apply(graph.take_messages())
    assert [name for name, *_ in tiers_of(view)] == ["ghost", "t1"]
    graph.on_updates(delete(tier("t1", 50, "Pass")))
    msgs = graph.take_messages()
    assert [type(m) for m in msgs] == [t.WorkloadEndpointUpdate]
    view.apply(msgs)
    assert tiers_of(view)[1] == ("t1", ["in-t1"], ["in-t1"], "Deny")


def test_assume_needed_on_every_node():
    """withPolicyAlways: active with no local endpoint at all."""
    view = view_of([pol1(performanceHints=["AssumeNeededOnEveryNode"])])
    assert set(view.policies) == {pid("pol-1")}
    assert sets_of(view) == {ALL_ID: frozenset(), B_EQ_B_ID: frozenset()}
    assert view_of([pol1()]).policies == {}


def test_profiles_become_active_with_their_users():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(profile("p1", ingress=[{"action": "Allow", "source": {"selector": "has(z)"}}])))
    graph.on_in_sync()
    assert [type(m) for m in graph.take_messages()] == [t.ConfigUpdate, t.InSync]
    graph.on_updates(put(wep("a", profiles=["p1"])))
    view = DataplaneView().apply(graph.take_messages())
    assert list(view.profiles) == ["p1"] and len(view.ipsets) == 1
    graph.on_updates(put(profile("p1", egress=[{"action": "Deny"}])))
    msgs = graph.take_messages()
    view.apply(msgs)
    assert view.profiles["p1"] == t.Profile((), (t.ParsedRule(action="deny"),)) and view.ipsets == {}
    graph.on_updates(delete(profile("p1")))
    view.apply(graph.take_messages())
    assert view.profiles["p1"] == DROP
    graph.on_updates(delete(wep("a", profiles=["p1"])))
    view.apply(graph.take_messages())
    assert view.profiles == {} and view.workload_endpoints == {}


def test_host_endpoint_moving_between_nodes():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(pol1(), host_ep1()))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    assert list(view.host_endpoints) == [t.HostEndpointID("named")]
    graph.on_updates(put(host_ep1(node_name=REMOTE)))
    view.apply(graph.take_messages())
    assert view.host_endpoints == {} and view.policies == {}


def test_pools_and_hosts_pass_through():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(pool("p1", "10.65.0.0/16", natOutgoing=True), node("n2", "10.0.0.12/24")))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    assert view.pools == {"10.65.0.0-16": t.IPAMPool("10.65.0.0/16", True)}
    assert view.hosts == {"n2": t.HostMetadata("n2", "10.0.0.12")}
    graph.on_updates(put(pool("p1", "10.66.0.0/16")) + delete(node("n2")))
    msgs = graph.take_messages()
    assert msgs == [t.HostMetadataRemove("n2"), t.IPAMPoolRemove("10.65.0.0-16"),
                    t.IPAMPoolUpdate("10.66.0.0-16", t.IPAMPool("10.66.0.0/16"))]


def test_deletions_without_a_value_are_found_by_key():
    from node.datastore.syncer import Update, UpdateType
    from node.felix.calc.offline import resource_key
    resources = [pol1(), local_ep1(), host_ep1(), tier("default", 20), pool("p", "10.0.0.0/16")]
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(*resources))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    assert view.workload_endpoints and view.host_endpoints and view.pools
    graph.on_updates([Update(UpdateType.DELETED, resource_key(r), None, 2) for r in resources])
    view.apply(graph.take_messages())
    assert view.snapshot() == DataplaneView().apply(calculate(LOCAL, [])).snapshot()


def test_http_matches_are_rendered_without_the_http_part_and_logged(caplog):
    policy = pol1(ingress=[{"action": "Allow", "http": {"methods": ["GET"]}, "source": {"selector": "all()"}}])
    with caplog.at_level(logging.WARNING):
        view = view_of([policy, local_ep1()])
    assert "policy gnp/pol-1 has a rule with an HTTP match" in caplog.text
    assert view.policies[pid("pol-1")].inbound_rules == (t.ParsedRule(action="allow", src_ip_set_ids=(ALL_ID,)),)


def test_service_matches_without_endpoint_slices_get_empty_sets():
    # (The slices that fill them: test_felix_calc_services.)
    policy = pol1(egress=[{"action": "Allow", "destination": {"services": {"name": "kube-dns",
                                                                          "namespace": "kube-system"}}}])
    view = view_of([policy, local_ep1()])
    svc = view.policies[pid("pol-1")].outbound_rules[0].dst_ip_port_set_ids[0]
    assert view.ipsets[svc] == (t.IPSetType.IP_AND_PORT, frozenset())


def test_workload_without_networks_appears_once_it_has_one():
    graph = PolicyCalculation(LOCAL)
    graph.on_updates(put(wep("a", ips=(), profiles=[])))
    graph.on_in_sync()
    assert [type(m) for m in graph.take_messages()] == [t.ConfigUpdate, t.InSync]
    graph.on_updates(put(wep("a", ips=["10.0.0.5/32"], profiles=[])))
    (msg,) = graph.take_messages()
    assert msg.endpoint.ipv4_nets == ("10.0.0.5/32",)


def test_syncer_status_callback():
    from node.datastore.syncer import SyncStatus
    graph = PolicyCalculation(LOCAL)
    graph.on_status(SyncStatus.RESYNC_IN_PROGRESS)
    assert graph.take_messages() == []
    graph.on_status(SyncStatus.IN_SYNC)
    assert graph.take_messages()[-1] == t.InSync()
