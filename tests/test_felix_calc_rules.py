"""Rule scanning: v1 rules to ParsedRules and IP-set IDs (Felix's rule_scanner_test.go
vectors, libcalico-go's selector unique-ID vectors, the spec's worked examples)."""
from __future__ import annotations

import pytest

from node.felix import types as t
from node.felix.calc import convert as cv
from node.felix.calc import v1
from node.felix.calc.rule_scanner import (DUMMY_DROP_RULES, IPSetData, IPSetRefs, parse_rule,
                                          protocol_from, protocol_matches, scan_policy, scan_profile)
from node.selector import parse

from felix_calc_builders import gnp, np

SEL1 = "a == 'b'"
SEL3 = "has(foo3)"
SEL4 = "d in {'a', 'b'}"


def sid(text: str) -> str:
    return parse(text).unique_id()


# --------------------------------------------------------------------------------------
# Set IDs.

@pytest.mark.parametrize("selector,set_id", [
    # libcalico-go parser_test.go
    ("", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" all() ", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" (all() )", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    ("! (has( b)||! has(a ))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"),
    ('! (a == "b"&&! c != "d")', "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"),
])
def test_selector_set_ids_in_rules(selector, set_id):
    """A rule's source selector becomes exactly libcalico-go's unique ID."""
    parsed, sets = parse_rule(v1.Rule(action="allow", src_selector=selector or "all()"))
    assert parsed.src_ip_set_ids == (set_id,)
    assert [(s.id, s.type) for s in sets] == [(set_id, t.IPSetType.NET)]


def test_knp_peer_example_from_the_spec():
    """Spec §4.2 / Appendix A: the set the renderer names cali40s:Rz2tLuROzxUubxYL2oDTxjK."""
    policy = cv.convert_policy(np("knp.default.allow-from-a", ns="ns1", tier="default", order=1000,
                                  selector="projectcalico.org/orchestrator == 'k8s' && app == 'web'",
                                  types=["Ingress"],
                                  ingress=[{"action": "Allow", "protocol": "TCP",
                                            "source": {"selector": "projectcalico.org/orchestrator == 'k8s' "
                                                                   "&& app == 'client'"},
                                            "destination": {"ports": [80]}}]))
    msg, sets = scan_policy(policy)
    rule = msg.inbound_rules[0]
    assert rule.src_ip_set_ids == ("s:Rz2tLuROzxUubxYL2oDTxjKDZFNthCyRhpTDwQ",)
    assert ("cali40" + rule.src_ip_set_ids[0])[:31] == "cali40s:Rz2tLuROzxUubxYL2oDTxjK"
    assert str(sets[rule.src_ip_set_ids[0]].selector) == \
        '(projectcalico.org/namespace == "ns1" && (projectcalico.org/orchestrator == "k8s" && app == "client"))'
    assert rule == t.ParsedRule(action="allow", protocol="tcp", src_ip_set_ids=rule.src_ip_set_ids,
                                dst_ports=(t.PortRange(80, 80),))
    assert msg.original_selector == \
        '((projectcalico.org/orchestrator == "k8s" && app == "web") && projectcalico.org/namespace == "ns1")'
    assert (msg.namespace, msg.tier, msg.untracked, msg.pre_dnat) == ("ns1", "default", False, False)


def test_service_set_ids():
    """rule_scanner_test.go: dest service -> svc:, src service -> svcnoport:."""
    parsed, sets = parse_rule(v1.Rule(action="", dst_service="svc", dst_service_namespace="default"))
    assert parsed.dst_ip_port_set_ids == ("svc:Jhwii46PCMT5NlhWsUqZmv7al8TeHFbNQMhoVg",)
    assert sets[0].type is t.IPSetType.IP_AND_PORT
    parsed, sets = parse_rule(v1.Rule(action="", src_service="svc", src_service_namespace="default"))
    assert parsed.src_ip_set_ids == ("svcnoport:T03S_6hogdrGKrNFBcbKTFsH_uKwDHEo8JddOg",)
    assert sets[0].type is t.IPSetType.NET


# --------------------------------------------------------------------------------------
# Rule conversion table (rule_scanner_test.go).

@pytest.mark.parametrize("rule,expected", [
    (v1.Rule(action=""), t.ParsedRule(action="")),
    (v1.Rule(action="deny"), t.ParsedRule(action="deny")),
    (v1.Rule(action="", ip_version=4), t.ParsedRule(action="", ip_version=4)),
    (v1.Rule(action="", protocol=123), t.ParsedRule(action="", protocol=123)),
    (v1.Rule(action="", src_nets=("10.0.0.0/16",)), t.ParsedRule(action="", src_net=("10.0.0.0/16",))),
    (v1.Rule(action="", dst_nets=("10.0.0.0/16",)), t.ParsedRule(action="", dst_net=("10.0.0.0/16",))),
    (v1.Rule(action="", src_ports=(10,)), t.ParsedRule(action="", src_ports=(t.PortRange(10, 10),))),
    (v1.Rule(action="", dst_ports=(10,)), t.ParsedRule(action="", dst_ports=(t.PortRange(10, 10),))),
    (v1.Rule(action="", not_protocol=123), t.ParsedRule(action="", not_protocol=123)),
    (v1.Rule(action="", not_src_nets=("10.0.0.0/16",)), t.ParsedRule(action="", not_src_net=("10.0.0.0/16",))),
    (v1.Rule(action="", not_dst_nets=("10.0.0.0/16",)), t.ParsedRule(action="", not_dst_net=("10.0.0.0/16",))),
    (v1.Rule(action="", not_src_ports=(10,)), t.ParsedRule(action="", not_src_ports=(t.PortRange(10, 10),))),
    (v1.Rule(action="", not_dst_ports=(10,)), t.ParsedRule(action="", not_dst_ports=(t.PortRange(10, 10),))),
    (v1.Rule(action="", annotations=(("key", "value"),)), t.ParsedRule(action="", annotations=(("key", "value"),))),
    (v1.Rule(action="", src_selector=SEL1), t.ParsedRule(action="", src_ip_set_ids=(sid(SEL1),))),
    (v1.Rule(action="", dst_selector=SEL1), t.ParsedRule(action="", dst_ip_set_ids=(sid(SEL1),))),
    (v1.Rule(action="", not_src_selector=SEL1), t.ParsedRule(action="", not_src_ip_set_ids=(sid(SEL1),))),
    (v1.Rule(action="", not_dst_selector=SEL1), t.ParsedRule(action="", not_dst_ip_set_ids=(sid(SEL1),))),
    # Only negative selectors: they cannot be combined.
    (v1.Rule(action="", not_src_selector=SEL3, not_dst_selector=SEL4),
     t.ParsedRule(action="", not_src_ip_set_ids=(sid(SEL3),), not_dst_ip_set_ids=(sid(SEL4),))),
    # Positive selectors absorb the negative ones.
    (v1.Rule(action="", src_selector=SEL1, dst_selector="b == 'c'", not_src_selector=SEL3, not_dst_selector=SEL4),
     t.ParsedRule(action="", src_ip_set_ids=(sid("(a == 'b') && !(has(foo3))"),),
                  dst_ip_set_ids=(sid("(b == 'c') && !(d in {'a', 'b'})"),))),
])
def test_rule_conversion_table(rule, expected):
    assert parse_rule(rule)[0] == expected


def test_icmp_ip_version_and_ranges():
    parsed, _ = parse_rule(v1.Rule(action="allow", protocol="icmp", icmp_type=8, not_icmp_type=3, not_icmp_code=1))
    assert (parsed.ip_version, parsed.icmp, parsed.not_icmp) == (4, t.ICMPMatch(8), t.ICMPMatch(3, 1))
    assert parse_rule(v1.Rule(action="allow", protocol="icmpv6"))[0].ip_version == 6
    assert parse_rule(v1.Rule(action="allow", protocol=1))[0].ip_version is None
    assert parse_rule(v1.Rule(action="allow", protocol="icmp", ip_version=4, icmp_code=3))[0].icmp is None
    parsed, _ = parse_rule(v1.Rule(action="allow", protocol="tcp", dst_ports=(80, "1000:2000", 443)))
    assert parsed.dst_ports == (t.PortRange(80, 80), t.PortRange(1000, 2000), t.PortRange(443, 443))


# --------------------------------------------------------------------------------------
# Named ports.

def test_named_port_ids_and_the_selector_optimisation():
    # Named ports only: the selector set is dropped, the named-port set is filtered by it.
    parsed, sets = parse_rule(v1.Rule(action="allow", protocol="tcp", dst_selector="app == 'db'",
                                      dst_ports=("postgres",)))
    assert parsed.dst_ip_set_ids == ()
    (np_set,) = sets
    # MakeUniqueID("n", "s:aTHMmtqeppKyLzbhenKiYRuErfad2JwXIwqQsg,tcp,postgres")
    assert np_set.id == "n:n9PQzZsSwQZtty2mdN55SUNe0a2oBXJDvM7B-Q"
    assert (np_set.type, np_set.named_port, np_set.named_port_protocol) == (t.IPSetType.IP_AND_PORT, "postgres", "tcp")
    assert parsed.dst_named_port_ip_set_ids == (np_set.id,)
    # With numeric ports as well, the selector set stays.
    parsed, sets = parse_rule(v1.Rule(action="allow", protocol="tcp", dst_selector="app == 'db'",
                                      dst_ports=("postgres", 5432)))
    assert parsed.dst_ip_set_ids == (sid("app == 'db'"),)
    assert parsed.dst_ports == (t.PortRange(5432, 5432),)
    # No protocol: "any", and no selector: all().
    parsed, sets = parse_rule(v1.Rule(action="allow", src_ports=("http",)))
    assert sets[0].named_port_protocol == "any" and str(sets[0].selector) == "all()"
    assert sets[0].id == "n:FvKMFOOSYvkZZJ0ch1bwT7bt3AAgySwlMLqMDA"
    # Negated named ports use the positive selector of their side.
    parsed, sets = parse_rule(v1.Rule(action="allow", protocol="udp", src_selector="has(x)", not_src_ports=("dns",)))
    assert str(sets[0].selector) == "has(x)" and sets[0].named_port_protocol == "udp"
    assert parsed.not_src_named_port_ip_set_ids == (sets[0].id,)
    assert parsed.src_ip_set_ids == (sid("has(x)"),)


@pytest.mark.parametrize("named,proto,matches", [
    ("tcp", "tcp", True), ("tcp", "TCP", True), ("tcp", "udp", False), ("any", "udp", True),
    ("any", 0, True), ("tcp", 0, False), ("tcp", 6, True), ("udp", 17, True), ("any", 6, False),
])
def test_named_port_protocol_matching(named, proto, matches):
    assert protocol_matches(named, proto) is matches


@pytest.mark.parametrize("proto,expected", [("udp", "udp"), (17, "udp"), ("sctp", "sctp"), (132, "sctp"),
                                            ("tcp", "tcp"), ("icmp", "tcp"), (0, "tcp")])
def test_protocol_from(proto, expected):
    assert protocol_from(proto) == expected


# --------------------------------------------------------------------------------------
# Policies, profiles and set references.

def test_scan_policy_keeps_both_directions():
    msg, sets = scan_policy(cv.convert_policy(gnp("p", selector="a  ==  'A' ", types=["Ingress"],
                                                  ingress=[{"action": "Allow", "source": {"selector": "all()"}}],
                                                  egress=[{"action": "Deny", "source": {"selector": "b == 'b'"}}],
                                                  preDNAT=True)))
    assert msg.original_selector == 'a == "A"'
    assert msg.inbound_rules[0].src_ip_set_ids == (sid("all()"),)
    assert msg.outbound_rules[0].src_ip_set_ids == (sid("b == 'b'"),)
    assert set(sets) == {sid("all()"), sid("b == 'b'")}
    assert msg.pre_dnat and not msg.untracked


def test_missing_profile_rules_drop():
    msg, sets = scan_profile(DUMMY_DROP_RULES)
    assert msg == t.Profile((t.ParsedRule(action="deny"),), (t.ParsedRule(action="deny"),)) and sets == {}


def test_ip_set_refs():
    refs = IPSetRefs()
    a, b = IPSetData(parse("has(a)")), IPSetData(parse("has(b)"))
    assert refs.update("p1", {a.id: a}) == ([a], [])
    assert refs.update("p2", {a.id: a, b.id: b}) == ([b], [])
    assert refs.update("p1", {}) == ([], [])
    assert refs.update("p2", {b.id: b}) == ([], [a.id])
    assert refs.update("p2", {}) == ([], [b.id])
    assert refs.sets == {}


# --------------------------------------------------------------------------------------
# ParsedRule -> dataplane rule (Felix's rule_convert_test.go table, from v3 input).

@pytest.mark.parametrize("v3_rule,expected", [
    ({"action": "Allow", "ipVersion": 4}, t.ParsedRule(action="allow", ip_version=4)),
    ({"action": "Allow", "ipVersion": 6}, t.ParsedRule(action="allow", ip_version=6)),
    ({"action": "Allow", "ipVersion": 0}, t.ParsedRule(action="allow")),
    ({"action": "Allow", "protocol": "TCP", "source": {"ports": [10, 11, "12:13", "123"]}},
     t.ParsedRule(action="allow", protocol="tcp", src_ports=(t.PortRange(10, 10), t.PortRange(11, 11),
                                                             t.PortRange(12, 13), t.PortRange(123, 123)))),
    ({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 10}, "notICMP": {"type": 11}},
     t.ParsedRule(action="allow", protocol="icmp", ip_version=4, icmp=t.ICMPMatch(10), not_icmp=t.ICMPMatch(11))),
])
def test_rule_convert_table(v3_rule, expected):
    assert parse_rule(cv.convert_rule(v3_rule, ""))[0] == expected


def test_fully_loaded_rule():
    v3_rule = {
        "action": "Allow", "ipVersion": 4, "protocol": 123, "notProtocol": "TCP",
        "icmp": {"type": 10, "code": 12}, "notICMP": {"type": 11, "code": 13},
        "source": {"nets": ["10.0.0.0/8"], "ports": [10], "notNets": ["12.0.0.0/8"], "notPorts": [11],
                   "selector": "has(original-src)", "notSelector": "has(original-not-src)"},
        "destination": {"nets": ["11.0.0.0/16"], "ports": ["123:456"], "notNets": ["13.0.0.0/16"],
                        "notPorts": ["678:910"], "notSelector": "has(original-not-dst)"},
        "metadata": {"annotations": {"key": "value"}},
    }
    parsed, sets = parse_rule(cv.convert_rule(v3_rule, ""))
    assert parsed == t.ParsedRule(
        action="allow", ip_version=4, protocol=123,
        src_net=("10.0.0.0/8",), src_ports=(t.PortRange(10, 10),),
        src_ip_set_ids=(sid("(has(original-src)) && (!(has(original-not-src)))"),),
        dst_net=("11.0.0.0/16",), dst_ports=(t.PortRange(123, 456),),
        icmp=t.ICMPMatch(10, 12), not_protocol="tcp",
        not_src_net=("12.0.0.0/8",), not_src_ports=(t.PortRange(11, 11),),
        not_dst_net=("13.0.0.0/16",), not_dst_ports=(t.PortRange(678, 910),),
        not_dst_ip_set_ids=(sid("has(original-not-dst)"),),
        not_icmp=t.ICMPMatch(11, 13), annotations=(("key", "value"),))
    assert sorted(s.id for s in sets) == sorted({sid("(has(original-src)) && (!(has(original-not-src)))"),
                                   sid("has(original-not-dst)")})
