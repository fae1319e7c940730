"""v3 -> v1 conversion: vectors from libcalico-go's update-processor tests (rules_test.go,
networkpolicyprocessor_test.go, globalnetworkpolicyprocessor_test.go,
workloadendpointprocessor_test.go) and the selector prefix rewrite (PrefixVisitor)."""
from __future__ import annotations

import pytest

from node.felix import types as t
from node.felix.calc import convert as cv
from node.felix.calc import v1, validation
from node.model import Resource
from node.selector import parse
from node.selector.rewrite import prefix_labels, rename_labels

from felix_calc_builders import gnp, hep, netset, gnetset, np, node, pool, tier, wep

# --------------------------------------------------------------------------------------
# Selector prefixing.


@pytest.mark.parametrize("text,prefix,expected", [
    ("key == 'value'", "pcns.", 'pcns.key == "value"'),
    ("!has(key) || (has(key) && !key in {'value'})", "pcns.",
     '(!has(pcns.key) || (has(pcns.key) && !pcns.key in {"value"}))'),
    ("a != 'b' && c not in {'y', 'x'} && d contains 'z' && e starts with 'p' && f ends with 's'", "pcsa.",
     '(pcsa.a != "b" && pcsa.c not in {"x", "y"} && pcsa.d contains "z" && pcsa.e starts with "p"'
     ' && pcsa.f ends with "s")'),
    ("all()", "pcns.", "all()"),
    ("global()", "pcns.", "global()"),
    ("", "pcns.", "all()"),
])
def test_prefix_labels(text, prefix, expected):
    assert str(prefix_labels(text, prefix)) == expected


def test_prefix_labels_leaves_the_input_alone_and_rehashes():
    sel = parse("app == 'x'")
    out = prefix_labels(sel, "pcns.")
    assert str(sel) == 'app == "x"'
    assert out.unique_id() == parse('pcns.app == "x"').unique_id()
    assert out.evaluate({"pcns.app": "x"}) and not out.evaluate({"app": "x"})
    assert str(rename_labels("a == 'b' || has(c)", str.upper)) == '(A == "b" || has(C))'


# --------------------------------------------------------------------------------------
# Rules (libcalico-go rules_test.go).

INBOUND = {
    "action": "Allow", "ipVersion": 4, "protocol": "TCP", "icmp": {"type": 1, "code": 4},
    "notProtocol": "UDP", "notICMP": {"type": 3, "code": 6},
    "source": {"nets": ["10.100.10.1/32"], "selector": "mylabel = value1", "ports": [80],
               "notNets": ["192.168.40.1/32"], "notSelector": "has(label1)", "notPorts": [443]},
    "destination": {"nets": ["10.100.1.1/32"], "selector": "", "ports": [443],
                    "notNets": ["192.168.80.1/32"], "notSelector": "has(label2)", "notPorts": [80]},
    "http": {"methods": ["GET", "PUT"], "paths": [{"exact": "/bar"}, {"prefix": "/foo1"}]},
    "metadata": {"annotations": {"fizz": "buzz"}},
}
OUTBOUND = {
    "action": "Allow", "ipVersion": 4, "protocol": 30, "icmp": {"type": 2, "code": 5},
    "notProtocol": 62, "notICMP": {"type": 7, "code": 8},
    "source": {"nets": ["10.100.1.1"], "namespaceSelector": "namespacelabel1 == 'value1'", "ports": [443],
               "notNets": ["192.168.80.1"], "notSelector": "has(label2)", "notPorts": [80]},
    "destination": {"nets": ["10.100.10.1"], "namespaceSelector": "namespacelabel2 == 'value2'", "ports": [80],
                    "notNets": ["192.168.40.1"], "notSelector": "has(label1)", "notPorts": [443]},
}


def test_inbound_rule_conversion():
    r = cv.convert_rule(INBOUND, "namespace2")
    assert r == v1.Rule(
        action="allow", ip_version=4, protocol="tcp", icmp_type=1, icmp_code=4,
        not_protocol="udp", not_icmp_type=3, not_icmp_code=6,
        src_nets=("10.100.10.1/32",),
        src_selector="(projectcalico.org/namespace == 'namespace2') && (mylabel = value1)",
        src_ports=(80,),
        dst_nets=("10.100.1.1/32",),
        dst_selector="projectcalico.org/namespace == 'namespace2'",
        dst_ports=(443,),
        not_src_nets=("192.168.40.1/32",), not_src_selector="has(label1)", not_src_ports=(443,),
        not_dst_nets=("192.168.80.1/32",), not_dst_selector="has(label2)", not_dst_ports=(80,),
        original_selectors=("mylabel = value1", "has(label1)", "has(label2)"),
        has_http_match=True,
        annotations=(("fizz", "buzz"),),
    )
    # The original "mylabel = value1" is not a selector: Felix's validator refuses the rule.
    assert any("source selector" in p for p in validation.rule_problems(r))


def test_outbound_rule_conversion_without_namespace():
    r = cv.convert_rule(OUTBOUND, "")
    assert (r.protocol, r.not_protocol) == (30, 62)
    assert (r.icmp_type, r.icmp_code, r.not_icmp_type, r.not_icmp_code) == (2, 5, 7, 8)
    assert r.src_nets == ("10.100.1.1/32",) and r.dst_nets == ("10.100.10.1/32",)
    # The pcns prefix keeps the namespace out of the selector.
    assert r.src_selector == 'pcns.namespacelabel1 == "value1"'
    assert r.dst_selector == 'pcns.namespacelabel2 == "value2"'
    assert (r.not_src_selector, r.not_dst_selector) == ("has(label2)", "has(label1)")
    assert (r.src_ports, r.dst_ports, r.not_src_ports, r.not_dst_ports) == ((443,), (80,), (80,), (443,))
    assert r.not_src_nets == ("192.168.80.1/32",) and r.not_dst_nets == ("192.168.40.1/32",)
    assert not r.has_http_match and r.annotations == ()


def test_rules_conversion_in_a_namespace():
    rules = cv.convert_rules([INBOUND, OUTBOUND], "namespace1")
    assert rules[0].src_selector == "(projectcalico.org/namespace == 'namespace1') && (mylabel = value1)"
    assert rules[0].dst_selector == "projectcalico.org/namespace == 'namespace1'"
    assert rules[1].src_selector == 'pcns.namespacelabel1 == "value1"'
    assert rules[1].dst_selector == 'pcns.namespacelabel2 == "value2"'


@pytest.mark.parametrize("entity,ns,expected", [
    ({"selector": "has(foo)"}, "", "has(foo)"),
    ({"ports": [80]}, "", ""),
    ({"selector": "projectcalico.org/orchestrator == 'k8s'", "namespaceSelector": "key == 'value'"}, "namespace",
     "(pcns.key == \"value\") && (projectcalico.org/orchestrator == 'k8s')"),
    ({"namespaceSelector": "!has(key) || (has(key) && !key in {'value'})"}, "namespace",
     '(!has(pcns.key) || (has(pcns.key) && !pcns.key in {"value"}))'),
    ({"serviceAccounts": {"names": ["sa1", "sa2"], "selector": "key == 'value1'"}}, "namespace",
     "(projectcalico.org/namespace == 'namespace') && ((pcsa.key == \"value1\") && "
     "(projectcalico.org/serviceaccount in {\"sa1\", \"sa2\"}))"),
    ({"namespaceSelector": "nskey == 'nsvalue'",
      "serviceAccounts": {"names": ["sa3"], "selector": "key == 'value2'"}}, "namespace",
     "(pcns.nskey == \"nsvalue\") && ((pcsa.key == \"value2\") && "
     "(projectcalico.org/serviceaccount in {\"sa3\"}))"),
    ({"serviceAccounts": {"names": ["sa1", "sa2"], "selector": "key == 'value1'"}}, "",
     "(pcsa.key == \"value1\") && (projectcalico.org/serviceaccount in {\"sa1\", \"sa2\"})"),
    ({"serviceAccounts": {}}, "", ""),
    ({"namespaceSelector": "nskey == 'nsvalue'", "selector": "has(label1)",
      "serviceAccounts": {"names": ["sa3"], "selector": "key == 'value2'"}}, "namespace",
     "(pcns.nskey == \"nsvalue\") && (((pcsa.key == \"value2\") && "
     "(projectcalico.org/serviceaccount in {\"sa3\"})) && (has(label1)))"),
    ({"namespaceSelector": "namespace == 'red'", "selector": "has(label1)"}, "namespace",
     '(pcns.namespace == "red") && (has(label1))'),
    ({"namespaceSelector": "all()", "selector": "has(label2)"}, "namespace",
     "(has(projectcalico.org/namespace)) && (has(label2))"),
    ({"namespaceSelector": "global()", "selector": "has(label3)"}, "namespace",
     "(!has(projectcalico.org/namespace)) && (has(label3))"),
    # notSelector alone scopes to the namespace but is itself kept apart.
    ({"notSelector": "has(x)"}, "ns1", "projectcalico.org/namespace == 'ns1'"),
    # The service-account names list alone, canonicalised.
    ({"serviceAccounts": {"names": ["b", "a"]}}, "", 'projectcalico.org/serviceaccount in {"a", "b"}'),
])
def test_entity_rule_selectors(entity, ns, expected):
    assert cv.entity_rule_selector(entity, ns) == expected


def test_rule_services_and_invalid_cidrs():
    r = cv.convert_rule({"action": "Allow", "destination": {"services": {"name": "kube-dns",
                                                                          "namespace": "kube-system"}}}, "")
    assert (r.src_selector, r.dst_service, r.dst_service_namespace) == ("", "kube-dns", "kube-system")
    r = cv.convert_rule({"action": "Allow", "source": {"services": {"name": "kube-dns",
                                                                     "namespace": "kube-system"}}}, "")
    assert (r.dst_selector, r.src_service, r.src_service_namespace) == ("", "kube-dns", "kube-system")
    r = cv.convert_rule({"action": "Deny", "destination": {"nets": ["10.2402.0.0/16", "10.0.0.0/8"],
                                                          "ports": [4789]}}, "")
    assert r.dst_nets == ("10.0.0.0/8",)


@pytest.mark.parametrize("v3,expected", [("Allow", "allow"), ("Deny", "deny"), ("Log", "log"),
                                         ("Pass", "next-tier")])
def test_actions(v3, expected):
    assert cv.convert_rule({"action": v3}, "").action == expected


@pytest.mark.parametrize("v3,expected", [("TCP", "tcp"), ("ICMPv6", "icmpv6"), ("UDPLite", "udplite"),
                                         (6, 6), ("17", 17)])
def test_protocols(v3, expected):
    assert cv.convert_rule({"action": "Allow", "protocol": v3}, "").protocol == expected


def test_nets_are_masked_and_printed_like_go():
    r = cv.convert_rule({"action": "Allow", "source": {"nets": ["10.1.2.3/8", "fd00:0:0::1/64", "::1"]}}, "")
    assert r.src_nets == ("10.0.0.0/8", "fd00::/64", "::1/128")


# --------------------------------------------------------------------------------------
# Policies (network/global policy processor tests).

def test_network_policy_selectors():
    p = cv.convert_policy(np("p", ns="namespace1"))
    assert p.selector == "projectcalico.org/namespace == 'namespace1'"
    assert (p.id, p.tier, p.namespace) == (t.PolicyID("p", "namespace1", "NetworkPolicy"), "default", "namespace1")
    assert cv.convert_policy(np("p", ns="namespace2", selector="mylabel == 'selectme'")).selector == \
        "(mylabel == 'selectme') && projectcalico.org/namespace == 'namespace2'"
    assert cv.convert_policy(np("p", ns="namespace2", selector="mylabel == 'selectme'",
                                serviceAccountSelector="role == 'development'")).selector == \
        "((mylabel == 'selectme') && projectcalico.org/namespace == 'namespace2') && pcsa.role == \"development\""
    # An unparseable service-account selector is dropped, not the policy.
    assert cv.convert_policy(np("p", ns="namespace2", selector="mylabel == 'selectme'",
                                serviceAccountSelector="role 'development'")).selector == \
        "(mylabel == 'selectme') && projectcalico.org/namespace == 'namespace2'"
    # No all() rewrite for namespaced policies.
    assert cv.convert_policy(np("p", ns="namespace2", selector="mylabel == 'selectme'",
                                serviceAccountSelector="all()")).selector == \
        "((mylabel == 'selectme') && projectcalico.org/namespace == 'namespace2') && all()"


@pytest.mark.parametrize("spec,expected", [
    ({"serviceAccountSelector": "role == 'development'"}, "(mylabel == 'selectme') && pcsa.role == \"development\""),
    ({"serviceAccountSelector": "role 'development'"}, "mylabel == 'selectme'"),
    ({"serviceAccountSelector": "all()"}, "(mylabel == 'selectme') && has(projectcalico.org/serviceaccount)"),
    ({"namespaceSelector": "name == 'testing'"}, "(mylabel == 'selectme') && pcns.name == \"testing\""),
    ({"namespaceSelector": "name 'testing'"}, "mylabel == 'selectme'"),
    ({"namespaceSelector": "all()"}, "(mylabel == 'selectme') && has(projectcalico.org/namespace)"),
    ({"namespaceSelector": "name == 'testing'", "serviceAccountSelector": "role == 'development'"},
     "((mylabel == 'selectme') && pcns.name == \"testing\") && pcsa.role == \"development\""),
])
def test_global_policy_selectors(spec, expected):
    assert cv.convert_policy(gnp("p", selector="mylabel == 'selectme'", **spec)).selector == expected


@pytest.mark.parametrize("spec,expected", [
    ({"serviceAccountSelector": "role == 'development'"}, 'pcsa.role == "development"'),
    ({"namespaceSelector": "name == 'testing'"}, 'pcns.name == "testing"'),
    ({"namespaceSelector": "name == 'testing'", "serviceAccountSelector": "role == 'development'"},
     '(pcns.name == "testing") && pcsa.role == "development"'),
    # all() is rewritten everywhere in the combined string, the policy's own selector too.
    ({"selector": "all()", "namespaceSelector": "has(a)"}, "(has(projectcalico.org/namespace)) && has(pcns.a)"),
])
def test_global_policy_selectors_without_own_selector(spec, expected):
    assert cv.convert_policy(gnp("p", **spec)).selector == expected


def test_policy_fields():
    p = cv.convert_policy(gnp("g", tier="t1", order=5, types=["Ingress", "Egress"], doNotTrack=True,
                              applyOnForward=True, performanceHints=["AssumeNeededOnEveryNode"],
                              ingress=[{"action": "Pass"}]))
    assert p == v1.Policy(id=t.PolicyID("g", "", "GlobalNetworkPolicy"), selector="", tier="t1", order=5.0,
                          inbound_rules=(v1.Rule(action="next-tier"),), types=("ingress", "egress"),
                          do_not_track=True, apply_on_forward=True,
                          performance_hints=("AssumeNeededOnEveryNode",))


# --------------------------------------------------------------------------------------
# Endpoints, sets, tiers, pools, nodes.

def test_workload_endpoint_key_comes_from_the_name():
    res = Resource("WorkloadEndpoint", {"name": "host1-orchestrator1-workload1-endpoint1", "namespace": "namespace1"},
                   {"ipNetworks": ["10.100.10.1"], "interfaceName": "iface1"})
    assert cv.workload_endpoint_key(res) == v1.WorkloadEndpointKey("host1", "orchestrator1",
                                                                    "namespace1/workload1", "endpoint1")
    res.metadata["name"] = "node--a-k8s-my--pod-eth0"
    assert cv.workload_endpoint_key(res) == v1.WorkloadEndpointKey("node-a", "k8s", "namespace1/my-pod", "eth0")
    res.metadata["name"] = "just-three-parts"
    with pytest.raises(ValueError):
        cv.workload_endpoint_key(res)


def test_workload_endpoint_conversion():
    res = Resource("WorkloadEndpoint", {
        "name": "host2-orchestrator2-workload2-endpoint2", "namespace": "namespace2",
        "labels": {"testLabel": "label", "projectcalico.org/namespace": "namespace2",
                   "projectcalico.org/orchestrator": "orchestrator2", "pcns.fake": "x", "pcsa.fake": "y"},
        "annotations": {"b": "2", "a": "1"}}, {
        "node": "host2", "interfaceName": "iface2", "mac": "01:23:45:67:89:AB", "profiles": ["testProfile"],
        "ipNetworks": ["10.100.10.1", "fd00::1/128"],
        "ipNATs": [{"internalIP": "10.100.1.1", "externalIP": "10.1.10.1"}],
        "ports": [{"name": "portname", "protocol": 30, "port": 8080}, {"name": "", "protocol": "TCP", "port": 1}],
        "allowSpoofedSourcePrefixes": ["8.8.8.8/32"], "serviceAccountName": "sa1"})
    ep = cv.convert_workload_endpoint(res)
    assert ep == v1.WorkloadEndpoint(
        name="iface2", mac="01:23:45:67:89:ab", profile_ids=("testProfile",),
        labels=(("projectcalico.org/namespace", "namespace2"), ("projectcalico.org/orchestrator", "orchestrator2"),
                ("projectcalico.org/serviceaccount", "sa1"), ("testLabel", "label")),
        ipv4_nets=("10.100.10.1/32",), ipv6_nets=("fd00::1/128",), ipv4_nat=(("10.1.10.1", "10.100.1.1"),),
        ports=(v1.EndpointPort("portname", 30, 8080),), allow_spoofed_source_prefixes=("8.8.8.8/32",),
        annotations=(("a", "1"), ("b", "2")))
    # Felix refuses spoofing unless configured, and a numbered port protocol.
    assert validation.workload_endpoint_problems(ep, "Any") == [
        "port 'portname': protocol must be tcp, udp or sctp, not 30"]
    assert "source IP spoofing requested but not enabled in Felix configuration" in \
        validation.workload_endpoint_problems(ep, "Disabled")


def test_workload_endpoint_qos_limits(caplog):
    """The packet-rate and connection limits reach the endpoint message; a rate without
    a burst gets Calico's 5; values out of their documented range are logged with the
    endpoint and field and not applied (Felix would refuse to render them)."""
    ep = cv.convert_workload_endpoint(wep("a", qosControls={"ingressPacketRate": 100, "egressPacketRate": 50,
                                                            "egressPacketBurst": 80, "ingressMaxConnections": 7,
                                                            "ingressBandwidth": 1000000}))
    assert ep.qos_controls == t.QoSControls(ingress_packet_rate=100, ingress_packet_burst=5, egress_packet_rate=50,
                                            egress_packet_burst=80, ingress_max_connections=7,
                                            ingress_bandwidth=1000000, ingress_burst=4 * 2**30)
    # DSCP alone is no limit (it is the endpoint's dscp).
    assert cv.convert_workload_endpoint(wep("b", qosControls={"dscp": 10})).qos_controls is None
    assert cv.convert_workload_endpoint(wep("c")).qos_controls is None
    bad = cv.convert_workload_endpoint(wep("d", qosControls={"ingressPacketRate": 20000, "egressPacketRate": 10,
                                                             "egressPacketBurst": 0, "egressMaxConnections": -1}))
    assert bad.qos_controls == t.QoSControls(egress_packet_rate=10, egress_packet_burst=5)
    assert "qosControls.ingressPacketRate 20000 is not between 0 and 10000; not applied" in caplog.text
    assert "qosControls.egressMaxConnections -1 is not between 0 and 4294967295" in caplog.text
    assert "ns1/" in caplog.text  # the endpoint is named


def test_workload_endpoint_bandwidth_limits(caplog):
    """The bandwidth limits reach the endpoint message (tc's, not iptables'): a bandwidth
    without a burst gets the documented 4Gi bits; values outside libcalico-go's documented
    ranges, and settings without what they refine, are logged with the endpoint and field
    and dropped on their own."""
    full = {"ingressBandwidth": 10_000_000, "ingressBurst": 300_000_000, "ingressPeakrate": 100_000_000,
            "ingressMinburst": 2000, "egressBandwidth": 10**15, "egressBurst": 0xFFFFFFFF * 8,
            "egressPeakrate": 101 * 10**13, "egressMinburst": 10**8}
    assert cv.convert_workload_endpoint(wep("a", qosControls=full)).qos_controls == t.QoSControls(
        ingress_bandwidth=10_000_000, ingress_burst=300_000_000, ingress_peakrate=100_000_000, ingress_minburst=2000,
        egress_bandwidth=10**15, egress_burst=0xFFFFFFFF * 8, egress_peakrate=101 * 10**13, egress_minburst=10**8)
    assert caplog.text == ""
    # The smallest values of each range; no burst: 4Gi bits.
    low = {"egressBandwidth": 1000, "egressPeakrate": 1010, "egressMinburst": 1000}
    assert cv.convert_workload_endpoint(wep("b", qosControls=low)).qos_controls == t.QoSControls(
        egress_bandwidth=1000, egress_burst=4294967296, egress_peakrate=1010, egress_minburst=1000)

    bad = cv.convert_workload_endpoint(wep("c", qosControls={
        "ingressBandwidth": 999, "ingressBurst": 5000,             # too small: ingress has nothing left
        "egressBandwidth": 2_000_000, "egressBurst": 0xFFFFFFFF * 8 + 1, "egressPeakrate": 1_000_000,
        "egressMinburst": 10**8 + 1})).qos_controls
    assert bad == t.QoSControls(egress_bandwidth=2_000_000, egress_burst=4 * 2**30)
    text = caplog.text
    assert "ns1/" in text  # the endpoint is named
    assert "qosControls.ingressBandwidth 999 is not between 1000 and 1000000000000000; not applied" in text
    assert "qosControls.ingressBurst is set without ingressBandwidth; not applied" in text
    assert "qosControls.egressBurst 34359738361 is not between 1000 and 34359738360; not applied" in text
    assert "qosControls.egressMinburst 100000001 is not between 1000 and 100000000; not applied" in text
    assert "qosControls.egressPeakrate 1000000 is not above egressBandwidth 2000000; not applied" in text

    caplog.clear()
    odd = cv.convert_workload_endpoint(wep("d", qosControls={
        "ingressBandwidth": 5_000_000, "ingressMinburst": 1500, "egressBandwidth": "10M",
        "egressPeakrate": 20_000_000})).qos_controls
    assert odd == t.QoSControls(ingress_bandwidth=5_000_000, ingress_burst=4 * 2**30)
    assert "qosControls.ingressMinburst is set without ingressPeakrate; not applied" in caplog.text
    assert "qosControls.egressBandwidth '10M' is not between 1000 and 1000000000000000" in caplog.text
    assert "qosControls.egressPeakrate is set without egressBandwidth; not applied" in caplog.text
    assert cv.convert_workload_endpoint(wep("e", qosControls={"ingressBurst": 5000})).qos_controls is None


def test_workload_endpoint_without_networks_is_not_rendered():
    assert cv.convert_workload_endpoint(wep("a", ips=())) is None


@pytest.mark.parametrize("mac,expected", [("01-23-45-67-89-AB", "01:23:45:67:89:ab"),
                                          ("0123.4567.89ab", "01:23:45:67:89:ab")])
def test_macs(mac, expected):
    assert cv.normalise_mac(mac) == expected


def test_host_endpoint_and_network_sets():
    res = hep("h1", node="n1", iface="eth0", ips=["10.0.0.1", "bogus", "fd00::2"], labels={"r": "h"},
              profiles=["p1"], ports=[{"name": "ssh", "protocol": "TCP", "port": 22}])
    assert cv.host_endpoint_key(res) == v1.HostEndpointKey("n1", "h1")
    assert cv.convert_host_endpoint(res) == v1.HostEndpoint(
        name="eth0", labels=(("r", "h"),), profile_ids=("p1",), expected_ipv4_addrs=("10.0.0.1",),
        expected_ipv6_addrs=("fd00::2",), ports=(v1.EndpointPort("ssh", "tcp", 22),))
    ns = netset("ns-set", "ns1", ["10.1.0.0/16", "1.2.3.4", "nope"], {"a": "b"})
    assert cv.network_set_key(ns) == v1.NetworkSetKey("ns1/ns-set")
    assert cv.convert_network_set(ns) == v1.NetworkSet(
        ("10.1.0.0/16", "1.2.3.4/32"), (("a", "b"), ("projectcalico.org/namespace", "ns1")), ("kns.ns1",))
    g = gnetset("g-set", ["0.0.0.0/0"], {"a": "b"})
    assert cv.network_set_key(g) == v1.NetworkSetKey("g-set")
    assert cv.convert_network_set(g) == v1.NetworkSet(("0.0.0.0/0",), (("a", "b"),), ())


def test_tiers_pools_and_nodes():
    assert cv.convert_tier(tier("t", 10, "Pass")) == v1.Tier(10.0, "Pass")
    assert cv.convert_tier(tier("t")) == v1.Tier(None, "Deny")
    assert cv.convert_ip_pool(pool("p", "10.65.0.0/16", natOutgoing=True, vxlanMode="CrossSubnet")) == (
        "10.65.0.0-16", t.IPAMPool("10.65.0.0/16", True, "Never", "CrossSubnet", ("Workload", "Tunnel")))
    assert cv.convert_ip_pool(pool("p", "fd00::/64", allowedUses=["LoadBalancer"]))[1].allowed_uses == ("LoadBalancer",)
    assert cv.convert_node(node("n1", "10.0.0.11/24", labels={"z": "1"})) == t.HostMetadata(
        "n1", ipv4_addr="10.0.0.11", labels=(("z", "1"),))
    n = node("n2", addresses=[{"address": "fd00::9", "type": "InternalIP"},
                              {"address": "192.168.1.5/24", "type": "InternalIP"}])
    n.spec["bgp"] = {"ipv6Address": "fd00::5/64", "asNumber": 65001}
    assert cv.convert_node(n) == t.HostMetadata("n2", ipv4_addr="192.168.1.5", ipv6_addr="fd00::5", asnumber="65001")
