"""Felix v3.32.1's own calculation-graph states, replayed through our calculation.

Each state here is one of felix/calc/states_for_test.go (canned values from
felix/calc/resources_for_test.go and istio_data_for_test.go), translated from the v1 model
keys Felix's test injects into the equivalent v3 resources our syncer delivers, with
Felix's expected dataplane picture: the IP sets (hashed IDs and members), the active
policies (and which are untracked or pre-DNAT) and profiles, and each local endpoint's
tiers with their ingress and egress policies in order.  The sequences are the base tests
of felix/calc/calc_graph_fv_test.go: a state is reached from the previous one by the same
key deltas (deletions first, then new and changed values), and every state is also
checked from scratch.

Translation notes (v1 in Felix's test -> v3 here):
* GlobalNetworkPolicy rules without an action get ``Allow`` (the action decides no set);
  a v1 policy without ``Types`` becomes a v3 one without types, which the update
  processor derives from its rules (both, here, as Felix's "no types" does).
* doNotTrack/preDNAT v3 policies must also say applyOnForward (v3 validation); the
  forward tiers are not part of Felix's expectations and are checked separately.
* A v1 ProfileRules + ProfileLabels pair is one v3 Profile; a Felix state holding only
  the labels (a ``ResourceKey{Kind: Profile}``) is a v3 Profile without rules.  Felix's
  mock dataplane records only which profiles are active, so the rules do not matter.
* Workload IDs: the v3 workload endpoint in namespace ``default`` is workload
  ``default/wl1``; the picture names it ``orch/wl1/ep1`` as Felix's test does.
"""
from __future__ import annotations

import pytest

from node.datastore.syncer import Update, UpdateType
from node.felix import types as t
from node.felix.calc import DataplaneView, PolicyCalculation, calculate
from node.felix.calc.offline import resource_key
from node.model import Resource
from node.selector import make_unique_id, parse

from felix_calc_builders import LOCAL, REMOTE, gnetset, gnp, hep, netset, np, profile, tier, wep, wep_name

# ---------------------------------------------------------------------------------------------
# IP set IDs (felix/calc/resources_for_test.go "Canned selectors"; selectorID and namedPortID
# are felix/calc/utils_selector_test.go, ipSetIDForTag is rule_scanner_test.go).


def selector_id(text: str) -> str:
    return parse(text).unique_id()


def named_port_id(selector: str, proto: str, port: str) -> str:
    return make_unique_id("n", f"{selector_id(selector)},{proto},{port}")


ALL = selector_id("all()")
B_EQ_B = selector_id("b == 'b'")
ALL_LESS_FOOBAR = selector_id("(all()) && !(foo == 'bar')")
TAG1 = make_unique_id("s", "has(tag-1)")          # ipSetIDForTag("tag-1")
TAG2 = make_unique_id("s", "has(tag-2)")
TAG_FOOBAR = selector_id("tag-1 == 'foobar'")
NP_ALL_TCP = named_port_id("all()", "tcp", "tcpport")
NP_ALL_LESS_FOOBAR_TCP = named_port_id("(all()) && !(foo == 'bar')", "tcp", "tcpport")
NP_ALL_TCP2 = named_port_id("all()", "tcp", "tcpport2")
NP_ALL_UDP = named_port_id("all()", "udp", "udpport")
NP_INHERIT = named_port_id("profile == 'prof-1'", "tcp", "tcpport")
NP_ALL_UDP_TCPPORT = named_port_id("all()", "udp", "tcpport")
NP_ALL_TCP_UDPPORT = named_port_id("all()", "tcp", "udpport")
SVC = "svc:Jhwii46PCMT5NlhWsUqZmv7al8TeHFbNQMhoVg"              # states_for_test.go endpointSliceActive
SVC_NOPORT = "svcnoport:T03S_6hogdrGKrNFBcbKTFsH_uKwDHEo8JddOg"  # ...endpointSliceActiveSpecNoPorts


def test_set_ids_are_the_hashes_felix_computes():
    """The hashed names, pinned (independently of our parser) for the canonical forms."""
    assert ALL == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
    assert B_EQ_B == "s:8Fb8HeM2GAxsfgNYVjbNrgSZ2H4cZJI8ODNBVg"
    # Felix hashes the tag selector's text directly; our canonical form must be that text.
    assert TAG1 == selector_id("has(tag-1)")
    # The rule scanner's combined form and the test's spelling are the same selector.
    assert ALL_LESS_FOOBAR == selector_id("(all()) && (!(foo == 'bar'))")
    assert NP_ALL_TCP == "n:RMAIMXhhyW5sWWm_0o9euzK6TlyAbtjf6Ta9Jw"


# ---------------------------------------------------------------------------------------------
# Canned endpoints (resources_for_test.go), as v3 resources.

EP1_NETS = ("10.0.0.1/32", "10.0.0.2/32", "fc00:fe11::1/128", "fc00:fe11::2/128")
EP2_NETS = ("10.0.0.2/32", "10.0.0.3/32", "fc00:fe11::2/128", "fc00:fe11::3/128")
EP1 = frozenset(EP1_NETS)
EP2 = frozenset(EP2_NETS)
EP1_PORTS = (("tcpport", "TCP", 8080), ("tcpport2", "TCP", 1234), ("udpport", "UDP", 9091))
EP2_PORTS = (("tcpport", "TCP", 8080), ("tcpport2", "TCP", 2345), ("udpport", "UDP", 9090))
PROFILES_1 = ("prof-1", "prof-2", "prof-missing")
PROFILES_2 = ("prof-2", "prof-3")


def _ports(ports):
    return [{"name": n, "protocol": p, "port": num} for n, p, num in ports]


def orch_wep(workload: str, endpoint: str, nets, labels=None, profiles=(), ports=(), iface: str = "cali1",
             mac: str | None = None, node: str = LOCAL, ns: str = "default") -> Resource:
    spec = {"orchestrator": "orch", "node": node, "workload": workload, "endpoint": endpoint,
            "interfaceName": iface, "profiles": list(profiles), "ipNetworks": list(nets), "ports": _ports(ports)}
    if mac:
        spec["mac"] = mac
    return Resource("WorkloadEndpoint", {"name": wep_name(node, workload, "orch", endpoint), "namespace": ns,
                                         "labels": dict(labels or {})}, spec)


EP1_LABELS = {"id": "loc-ep-1", "a": "a", "b": "b"}
EP2_LABELS = {"id": "loc-ep-2", "a": "a", "b": "b2"}


def ep1(profiles=PROFILES_1, ports=EP1_PORTS, labels=EP1_LABELS, nets=EP1_NETS) -> Resource:
    """localWlEp1 (and its variants, by argument)."""
    return orch_wep("wl1", "ep1", nets, labels, profiles, ports, "cali1", "01:02:03:04:05:06")


def ep2(profiles=PROFILES_2, ports=EP2_PORTS, labels=EP2_LABELS) -> Resource:
    """localWlEp2."""
    return orch_wep("wl2", "ep2", EP2_NETS, labels, profiles, ports, "cali2")


EP1_DIFFERENT_IPS = ep1(ports=(), nets=("11.0.0.1/32", "11.0.0.2/32", "fc00:fe12::1/128", "fc00:fe12::2/128"))
EP1_NO_PROFILES = ep1(profiles=(), ports=(), labels={})                 # localWlEp1NoProfiles
EP2_NO_PROFILES = ep2(profiles=(), ports=(), labels={})                 # localWlEp2NoProfiles
EP1_LABELS_NO_PROFILES = ep1(profiles=())                               # localWlEp1WithLabelsButNoProfiles
EP2_LABELS_NO_PROFILES = ep2(profiles=())                               # localWlEp2WithLabelsButNoProfiles
EP1_DUPE_PORTS = ep1(ports=(("tcpport", "TCP", 8080), ("tcpport", "TCP", 8081), ("tcpport", "TCP", 8082)))


def host_ep1(ports=(), profiles=PROFILES_1) -> Resource:
    """hostEpWithName (hostEpWithNamedPorts with ``ports``), key "named"."""
    return hep("named", iface="eth1", ips=["10.0.0.1", "10.0.0.2", "fc00:fe11::1", "fc00:fe11::2"],
               labels=EP1_LABELS, profiles=list(profiles), ports=_ports(ports))


def host_ep2() -> Resource:
    """hostEp2NoName, key "unnamed": no interface name."""
    return Resource("HostEndpoint", {"name": "unnamed", "labels": dict(EP2_LABELS)},
                    {"node": LOCAL, "expectedIPs": ["10.0.0.2", "10.0.0.3", "fc00:fe11::2", "fc00:fe11::3"],
                     "profiles": list(PROFILES_2)})


# ---------------------------------------------------------------------------------------------
# Canned policies, tiers and profiles.

def allow(**rule):
    return {"action": "Allow", **rule}


def pol(name="pol-1", tier_name="default", order=20, ingress=(), egress=(), types=("Ingress", "Egress"),
        selector="a == 'a'", **spec) -> Resource:
    body = {"tier": tier_name, "selector": selector, "ingress": list(ingress), "egress": list(egress)}
    if order is not None:
        body["order"] = order
    if types is not None:
        body["types"] = list(types)
    body.update(spec)
    return gnp(name, **body)


POL1_IN = [allow(source={"selector": "all()"})]
POL1_OUT = [allow(source={"selector": "b == 'b'"})]


def policy1(name="pol-1", tier_name="default", order=20, **spec) -> Resource:
    """policy1_order20 (policy1_tier1_order20 etc. with ``tier_name``)."""
    return pol(name, tier_name, order, POL1_IN, POL1_OUT, **spec)


POL1_INGRESS_ONLY = pol(ingress=POL1_IN, types=["Ingress"])              # policy1_order20_ingress_only
POL1_EGRESS_ONLY = pol(egress=POL1_OUT, types=["Egress"])                # policy1_order20_egress_only
POL1_UNTRACKED = pol(ingress=POL1_IN, egress=POL1_OUT, types=None,       # policy1_order20_untracked
                     doNotTrack=True, applyOnForward=True)
POL1_PRE_DNAT = pol("pre-dnat-pol-1", ingress=POL1_IN, types=None,       # policy1_order20_pre_dnat
                    preDNAT=True, applyOnForward=True)
POL1_NAMED_PORT = pol(ingress=[allow(protocol="TCP", source={"selector": "all()", "ports": ["tcpport"]})],
                      egress=POL1_OUT)                                   # ..._with_selector_and_named_port_tcpport
POL1_NAMED_PORT_NO_SEL = pol(ingress=[allow(protocol="TCP", source={"ports": ["tcpport"]})],
                             egress=POL1_OUT)                            # ..._with_named_port_tcpport
POL1_NEG_NAMED_PORT_NO_SEL = pol(ingress=[allow(protocol="TCP", source={"notPorts": ["tcpport"]})],
                                 egress=POL1_OUT)                        # ..._with_named_port_tcpport_negated
POL1_NEG_NAMED_PORT = pol(ingress=[allow(protocol="TCP", source={"selector": "all()", "notSelector": "foo == 'bar'",
                                                                 "notPorts": ["tcpport"]})],
                          types=["Ingress"])                             # ..._with_selector_and_negated_named_port_tcpport
POL1_NEG_NAMED_PORT_DEST = pol(ingress=[allow(protocol="TCP",
                                              destination={"selector": "all()", "notSelector": "foo == 'bar'",
                                                           "notPorts": ["tcpport"]})],
                               types=["Ingress"])                        # ..._negated_named_port_tcpport_dest
POL1_NAMED_PORT_UDP = pol(ingress=[allow(protocol="UDP", source={"selector": "all()", "ports": ["udpport"]})],
                          egress=POL1_OUT)                               # ..._with_selector_and_named_port_udpport
POL1_NAMED_PORT_TCP2 = pol(ingress=[allow(source={"selector": "b == 'b'"})],
                           egress=[allow(protocol="TCP", source={"selector": "all()", "ports": ["tcpport2"]})])
POL1_MISMATCHED = pol(ingress=[allow(protocol="TCP", source={"ports": ["udpport"]})],
                      egress=[allow(protocol="UDP", source={"ports": ["tcpport"]})])
INHERIT_POL = pol("inherit-pol", ingress=[allow(protocol="TCP", source={"selector": "profile == 'prof-1'",
                                                                        "ports": ["tcpport"]})])
POL1_ALWAYS = policy1(performanceHints=["AssumeNeededOnEveryNode"])      # policy1_order20_always (and _ondemand)


def prof(name, ingress=(), egress=(), labels=None) -> Resource:
    return profile(name, ingress, egress, labels)


PROFILE_RULES_1 = ([allow(source={"selector": "all()"})], [allow(source={"selector": "has(tag-1)"})])
PROFILE_RULES_1_TAG_UPDATE = ([allow(source={"selector": "b == 'b'"})], [allow(source={"selector": "has(tag-2)"})])
PROFILE_RULES_1_NEGATED = ([allow(source={"notSelector": "b == 'b'"})], [allow(source={"notSelector": "has(tag-2)"})])
PROFILE_RULES_TAG_INHERIT = ([allow(source={"selector": "has(tag-1)"})],
                             [allow(source={"selector": "tag-1 == 'foobar'"})])
LABELS_1_TAG1 = {"profile": "prof-1", "tag-1": ""}    # profileLabels1Tag1
LABELS_1 = {"profile": "prof-1"}                      # profileLabels1
LABELS_2 = {"profile": "prof-2"}                      # profileLabels2
LABELS_TAG1 = {"tag-1": "foobar"}                     # profileLabelsTag1


# ---------------------------------------------------------------------------------------------
# The picture Felix's mock dataplane checks (calc_graph_fv_test.go expectCorrectDataplaneState).

EP1_ID, EP2_ID = "orch/wl1/ep1", "orch/wl2/ep2"


def _pol_name(pid: t.PolicyID) -> str:
    return pid.name if pid.kind == t.KIND_GLOBAL_NETWORK_POLICY and not pid.namespace else \
        f"{pid.kind}/{pid.namespace}/{pid.name}"


def _tiers(tiers) -> list:
    return [(ti.name, [_pol_name(p) for p in ti.ingress_policies], [_pol_name(p) for p in ti.egress_policies])
            for ti in tiers]


def picture(view: DataplaneView) -> dict:
    endpoints, untracked, pre_dnat = {}, {}, {}
    for wid, ep in view.workload_endpoints.items():
        key = f"{wid.orchestrator}/{wid.workload.rpartition('/')[2]}/{wid.endpoint}"
        endpoints[key] = _tiers(ep.tiers)
        untracked[key], pre_dnat[key] = [], []
    for hid, ep in view.host_endpoints.items():
        endpoints[hid.endpoint_id] = _tiers(ep.tiers)
        untracked[hid.endpoint_id] = _tiers(ep.untracked_tiers)
        pre_dnat[hid.endpoint_id] = _tiers(ep.pre_dnat_tiers)
    return {
        "ipsets": {k: frozenset(m) for k, (_typ, m) in view.ipsets.items()},
        "policies": {_pol_name(p) for p in view.policies},
        "untracked_policies": {_pol_name(p) for p, body in view.policies.items() if body.untracked},
        "pre_dnat_policies": {_pol_name(p) for p, body in view.policies.items() if body.pre_dnat},
        "profiles": set(view.profiles),
        "endpoints": endpoints,
        "untracked_tiers": untracked,
        "pre_dnat_tiers": pre_dnat,
    }


def both(*names):
    """A tier's ingress and egress lists, both ``names``."""
    return list(names), list(names)


def expect(ipsets=None, policies=(), profiles=(), endpoints=None, untracked=(), pre_dnat=(),
           untracked_tiers=None, pre_dnat_tiers=None) -> dict:
    endpoints = endpoints or {}
    untracked_tiers = untracked_tiers or {}
    pre_dnat_tiers = pre_dnat_tiers or {}
    return {
        "ipsets": {k: frozenset(v) for k, v in (ipsets or {}).items()},
        "policies": set(policies),
        "untracked_policies": set(untracked),
        "pre_dnat_policies": set(pre_dnat),
        "profiles": set(profiles),
        "endpoints": {k: [(n, list(i), list(e)) for n, i, e in v] for k, v in endpoints.items()},
        "untracked_tiers": {k: [(n, list(i), list(e)) for n, i, e in untracked_tiers.get(k, [])]
                            for k in endpoints},
        "pre_dnat_tiers": {k: [(n, list(i), list(e)) for n, i, e in pre_dnat_tiers.get(k, [])] for k in endpoints},
    }


class Sequence:
    """One calculation driven through states as calc_graph_fv_test.go does: each state's
    resources replace the previous state's (deletions first, then new and changed values)."""

    def __init__(self, **options):
        self.options = options
        self.graph = PolicyCalculation(LOCAL, **options)
        self.view = DataplaneView()
        self.current: dict[str, Resource] = {}
        self.synced = False

    def move_to(self, resources) -> dict:
        new = {resource_key(r): r for r in resources}
        updates = [Update(UpdateType.DELETED, k, None, 1) for k in self.current if k not in new]
        updates += [Update(UpdateType.UPDATED if k in self.current else UpdateType.NEW, k, r, 1)
                    for k, r in new.items() if self.current.get(k) != r]
        self.graph.on_updates(updates)
        if not self.synced:
            self.graph.on_in_sync()
            self.synced = True
        self.view.apply(self.graph.take_messages())
        self.current = new
        return picture(self.view)


def from_scratch(resources, **options) -> dict:
    return picture(DataplaneView().apply(calculate(LOCAL, resources, **options)))


def run_sequence(states, **options):
    """Move through ``(name, resources, expected)`` states; check each incrementally and
    from scratch."""
    seq = Sequence(**options)
    for name, resources, expected in states:
        assert seq.move_to(resources) == expected, f"incremental, state {name}"
        assert from_scratch(resources, **options) == expected, f"from scratch, state {name}"
    # And back again, in reverse (calc_graph_fv_test.go's reverseStateOrder expansion).
    for name, resources, expected in reversed(states):
        assert seq.move_to(resources) == expected, f"reversed, state {name}"


# ---------------------------------------------------------------------------------------------
# The states (states_for_test.go).  Each function returns (name, resources, expected).

DEFAULT_TIER = tier("default", 20)                     # TierKey{Name: "default"} = tier1_order20
P1 = ("pol-1",)


def local_ep1_with_policy():
    return ("localEp1WithPolicy", [DEFAULT_TIER, policy1(), ep1()],
            expect({ALL: EP1, B_EQ_B: EP1}, P1, PROFILES_1, {EP1_ID: [("default", *both("pol-1"))]}))


def local_ep2_with_policy():
    return ("localEp2WithPolicy", [DEFAULT_TIER, policy1(), ep2()],
            expect({ALL: EP2, B_EQ_B: ()}, P1, PROFILES_2, {EP2_ID: [("default", *both("pol-1"))]}))


def local_eps_with_policy():
    return ("localEpsWithPolicy", [DEFAULT_TIER, policy1(), ep1(), ep2()],
            expect({ALL: EP1 | EP2, B_EQ_B: EP1}, P1, PROFILES_1 + PROFILES_2,
                   {EP1_ID: [("default", *both("pol-1"))], EP2_ID: [("default", *both("pol-1"))]}))


def local_eps_with_policy_updated_ips():
    new_ep1 = {"11.0.0.1/32", "11.0.0.2/32", "fc00:fe12::1/128", "fc00:fe12::2/128"}
    return ("localEpsWithPolicyUpdatedIPs", [DEFAULT_TIER, policy1(), EP1_DIFFERENT_IPS, ep2()],
            expect({ALL: new_ep1 | EP2, B_EQ_B: new_ep1}, P1, PROFILES_1 + PROFILES_2,
                   {EP1_ID: [("default", *both("pol-1"))], EP2_ID: [("default", *both("pol-1"))]}))


def local_ep1_with_ingress_policy():
    return ("localEp1WithIngressPolicy", [POL1_INGRESS_ONLY, ep1()],
            expect({ALL: EP1}, P1, PROFILES_1, {EP1_ID: [("default", ["pol-1"], [])]}))


TIER1 = tier("tier-1", 20)
TIER2 = tier("tier-2", 30)


def local_ep1_with_policy_and_tier():
    return ("localEp1WithPolicyAndTier", [TIER1, policy1(tier_name="tier-1"), ep1()],
            expect({ALL: EP1, B_EQ_B: EP1}, P1, PROFILES_1, {EP1_ID: [("tier-1", *both("pol-1"))]}))


def local_ep2_with_policy_and_tier():
    return ("localEp2WithPolicyAndTier", [TIER1, policy1(tier_name="tier-1"), ep2()],
            expect({ALL: EP2, B_EQ_B: ()}, P1, PROFILES_2, {EP2_ID: [("tier-1", *both("pol-1"))]}))


def local_eps_with_policy_and_tier():
    return ("localEpsWithPolicyAndTier", [TIER1, policy1(tier_name="tier-1"), ep1(), ep2()],
            expect({ALL: EP1 | EP2, B_EQ_B: EP1}, P1, PROFILES_1 + PROFILES_2,
                   {EP1_ID: [("tier-1", *both("pol-1"))], EP2_ID: [("tier-1", *both("pol-1"))]}))


def local_ep1_two_tiers(tier_of_policy):
    name = "localEp1WithTwoTiersPolicyInTier" + tier_of_policy[-1]
    return (name, [TIER1, TIER2, policy1(tier_name=tier_of_policy), ep1()],
            expect({ALL: EP1, B_EQ_B: EP1}, P1, PROFILES_1, {EP1_ID: [(tier_of_policy, *both("pol-1"))]}))


def policy_order_state(orders, expected, tier_name="default"):
    """policyOrderState / commercialPolicyOrderState: three policies in one tier, no types."""
    resources = [ep1()]
    if tier_name != "default":
        resources.append(TIER1)
    resources += [pol(f"pol-{i + 1}", tier_name, o, POL1_IN, POL1_OUT, types=None) for i, o in enumerate(orders)]
    return (f"policies {expected} in {tier_name}", resources,
            expect({ALL: EP1, B_EQ_B: EP1}, ("pol-1", "pol-2", "pol-3"), PROFILES_1,
                   {EP1_ID: [(tier_name, *both(*expected))]}))


def tier_order_state(orders, expected):
    """tierOrderState."""
    resources = [ep1()]
    for i, order in enumerate(orders):
        resources += [tier(f"tier-{i + 1}", order), policy1(f"tier-{i + 1}-pol", tier_name=f"tier-{i + 1}")]
    return (f"tier-order-state{expected}", resources,
            expect({ALL: EP1, B_EQ_B: EP1}, [f"{n}-pol" for n in expected], PROFILES_1,
                   {EP1_ID: [(n, *both(f"{n}-pol")) for n in expected]}))


def host_ep1_with_policy():
    return ("hostEp1WithPolicy", [DEFAULT_TIER, policy1(), host_ep1()],
            expect({ALL: EP1, B_EQ_B: EP1}, P1, PROFILES_1, {"named": [("default", *both("pol-1"))]}))


def host_ep2_with_policy():
    return ("hostEp2WithPolicy", [DEFAULT_TIER, policy1(), host_ep2()],
            expect({ALL: EP2, B_EQ_B: ()}, P1, PROFILES_2, {"unnamed": [("default", *both("pol-1"))]}))


def host_ep1_with_ingress_policy():
    return ("hostEp1WithIngressPolicy", [POL1_INGRESS_ONLY, host_ep1()],
            expect({ALL: EP1}, P1, PROFILES_1, {"named": [("default", ["pol-1"], [])]}))


def host_ep1_with_egress_policy():
    return ("hostEp1WithEgressPolicy", [POL1_EGRESS_ONLY, host_ep1()],
            expect({B_EQ_B: EP1}, P1, PROFILES_1, {"named": [("default", [], ["pol-1"])]}))


def host_ep1_with_untracked_policy():
    return ("hostEp1WithUntrackedPolicy", [POL1_UNTRACKED, host_ep1()],
            expect({ALL: EP1, B_EQ_B: EP1}, P1, PROFILES_1, {"named": []}, untracked=P1,
                   untracked_tiers={"named": [("default", *both("pol-1"))]}))


def host_ep1_with_tracked_and_untracked_policy():
    return ("hostEp1WithTrackedAndUntrackedPolicy", [POL1_UNTRACKED, policy1("pol-2"), host_ep1()],
            expect({ALL: EP1, B_EQ_B: EP1}, ("pol-1", "pol-2"), PROFILES_1,
                   {"named": [("default", *both("pol-2"))]}, untracked=P1,
                   untracked_tiers={"named": [("default", *both("pol-1"))]}))


def host_ep1_with_pre_dnat_policy():
    return ("hostEp1WithPreDNATPolicy", [POL1_PRE_DNAT, host_ep1()],
            expect({ALL: EP1}, ["pre-dnat-pol-1"], PROFILES_1, {"named": []}, pre_dnat=["pre-dnat-pol-1"],
                   pre_dnat_tiers={"named": [("default", ["pre-dnat-pol-1"], [])]}))


NETSET1 = gnetset("netset-1", ["12.0.0.0/24", "12.0.0.0/24", "12.1.0.0/24", "10.0.0.1/32", "feed:beef::/32",
                               "feed:beef:0::/32"], {"a": "b"})
NETSET1_B_EQ_B = gnetset("netset-1", ["12.0.0.0/24", "12.0.0.0/24", "12.1.0.0/24", "10.0.0.1/32"],
                         {"foo": "bar", "b": "b"})
NETSET2 = gnetset("netset-2", ["12.0.0.0/24", "13.1.0.0/24"], {"a": "b"})


def host_ep1_with_network_sets(*sets):
    name = "hostEp1WithPolicy" + {0: "", 1: "AndANetworkSet", 2: "AndTwoNetworkSets"}[len(sets)]
    if NETSET1_B_EQ_B in sets:
        name += "MatchingBEqB"
    all_members, beqb = set(EP1), set(EP1)
    if NETSET1 in sets:
        all_members |= {"12.0.0.0/24", "12.1.0.0/24", "feed:beef::/32"}
    if NETSET2 in sets:
        all_members |= {"12.0.0.0/24", "13.1.0.0/24"}
    if NETSET1_B_EQ_B in sets:
        all_members |= {"12.0.0.0/24", "12.1.0.0/24"}
        beqb |= {"12.0.0.0/24", "12.1.0.0/24"}
    return (name, [DEFAULT_TIER, policy1(), host_ep1(), *sets],
            expect({ALL: all_members, B_EQ_B: beqb}, P1, PROFILES_1, {"named": [("default", *both("pol-1"))]}))


def np_members(nets, *port_specs):
    return {f"{n.partition('/')[0]},{proto}:{port}" for n in nets for proto, port in port_specs}


def local_ep1_named_port(policy=POL1_NAMED_PORT, name="localEp1WithNamedPortPolicy"):
    """localEp1WithNamedPortPolicy and the NoSelector / negated NoSelector variants."""
    return (name, [DEFAULT_TIER, policy, ep1()],
            expect({NP_ALL_TCP: np_members(EP1, ("tcp", 8080)), B_EQ_B: EP1}, P1, PROFILES_1,
                   {EP1_ID: [("default", *both("pol-1"))]}))


def local_ep1_named_port_udp():
    return ("localEp1WithNamedPortPolicyUDP", [DEFAULT_TIER, POL1_NAMED_PORT_UDP, ep1()],
            expect({NP_ALL_UDP: np_members(EP1, ("udp", 9091)), B_EQ_B: EP1}, P1, PROFILES_1,
                   {EP1_ID: [("default", *both("pol-1"))]}))


def local_ep1_negated_named_port(policy=POL1_NEG_NAMED_PORT, name="localEp1WithNegatedNamedPortPolicy"):
    """No Tier resource in this state (it starts from ``empty``)."""
    return (name, [ep1(), policy],
            expect({NP_ALL_LESS_FOOBAR_TCP: np_members(EP1, ("tcp", 8080)), ALL_LESS_FOOBAR: EP1}, P1, PROFILES_1,
                   {EP1_ID: [("default", ["pol-1"], [])]}))


def local_host_ep1_named_port():
    return ("localHostEp1WithNamedPortPolicy", [host_ep1(EP1_PORTS, ["prof-1"]), POL1_NAMED_PORT],
            expect({NP_ALL_TCP: np_members(EP1, ("tcp", 8080)), B_EQ_B: EP1}, P1, ["prof-1"],
                   {"named": [("default", *both("pol-1"))]}))


TWO_EPS = {EP1_ID: [("default", *both("pol-1"))], EP2_ID: [("default", *both("pol-1"))]}


def local_eps_named_ports():
    return ("localEpsWithNamedPortsPolicy", [DEFAULT_TIER, POL1_NAMED_PORT, ep1(), ep2()],
            expect({NP_ALL_TCP: np_members(EP1 | EP2, ("tcp", 8080)), B_EQ_B: EP1}, P1,
                   PROFILES_1 + PROFILES_2, TWO_EPS))


def local_eps_named_ports_tcpport2():
    return ("localEpsWithNamedPortsPolicyTCPPort2", [DEFAULT_TIER, POL1_NAMED_PORT_TCP2, ep1(), ep2()],
            expect({NP_ALL_TCP2: np_members(EP1, ("tcp", 1234)) | np_members(EP2, ("tcp", 2345)), B_EQ_B: EP1},
                   P1, PROFILES_1 + PROFILES_2, TWO_EPS))


def local_eps_mismatched_named_ports():
    return ("localEpsWithMismatchedNamedPortsPolicy", [DEFAULT_TIER, POL1_MISMATCHED, ep1(), ep2()],
            expect({NP_ALL_UDP_TCPPORT: (), NP_ALL_TCP_UDPPORT: ()}, P1, PROFILES_1 + PROFILES_2, TWO_EPS))


INHERIT_EPS = {EP1_ID: [("default", *both("inherit-pol"))], EP2_ID: [("default", *both("inherit-pol"))]}


def inherited(name, resources, members, profiles=PROFILES_1 + PROFILES_2, policy=True):
    if not policy:
        return (name, resources, expect({}, (), profiles, {EP1_ID: [], EP2_ID: []}))
    return (name, resources + [INHERIT_POL], expect({NP_INHERIT: members}, ["inherit-pol"], profiles, INHERIT_EPS))


def inherited_states():
    """localEpsWithOverlappingIPsAndInheritedLabels and the states built on it."""
    p1, p2 = prof("prof-1", labels=LABELS_1), prof("prof-2", labels=LABELS_1)
    ep1_8080 = np_members(EP1, ("tcp", 8080))
    ep2_8080 = np_members(EP2, ("tcp", 8080))
    return {
        "none": inherited("localEpsWithOverlappingIPsAndInheritedLabels", [ep1(), ep2(), p1], (), policy=False),
        "ep1": inherited("localEpsAndNamedPortPolicyMatchingInheritedLabelOnEP1", [ep1(), ep2(), p1], ep1_8080),
        "both": inherited("localEpsAndNamedPortPolicyMatchingInheritedLabelBothEPs", [ep1(), ep2(), p1, p2],
                          ep1_8080 | ep2_8080),
        "dupes": inherited("localEpsAndNamedPortPolicyDuplicatePorts", [EP1_DUPE_PORTS, ep2(), p1, p2],
                           np_members(EP1, ("tcp", 8080), ("tcp", 8081), ("tcp", 8082)) | ep2_8080),
        "not_ep2": inherited("localEpsAndNamedPortPolicyNoLongerMatchingInheritedLabelOnEP2",
                             [ep1(), ep2(), p1, prof("prof-2", labels=LABELS_2)], ep1_8080),
        "neither": inherited("localEpsAndNamedPortPolicyNoLongerMatchingInheritedLabelOnEP1",
                             [ep1(), ep2(), prof("prof-1", labels=LABELS_2), prof("prof-2", labels=LABELS_2)], ()),
        "ep2_no_profiles": inherited("localEpsAndNamedPortPolicyEP2ProfileRemoved",
                                     [ep1(), EP2_LABELS_NO_PROFILES, p1, p2], ep1_8080, PROFILES_1),
        "no_profiles": inherited("localEpsAndNamedPortPolicyBothEPsProfilesRemoved",
                                 [EP1_LABELS_NO_PROFILES, EP2_LABELS_NO_PROFILES, p1, p2], (), ()),
    }


NO_TIERS = {EP1_ID: [], EP2_ID: []}


def local_eps_with_profile(rules=PROFILE_RULES_1, name="localEpsWithProfile", ipsets=None):
    return (name, [prof("prof-1", *rules, labels=LABELS_1_TAG1), ep1(), ep2()],
            expect(ipsets or {ALL: EP1 | EP2, TAG1: EP1}, (), PROFILES_1 + PROFILES_2, NO_TIERS))


def local_eps_with_updated_profile():
    return local_eps_with_profile(PROFILE_RULES_1_TAG_UPDATE, "localEpsWithUpdatedProfile", {B_EQ_B: EP1, TAG2: ()})


def local_eps_with_updated_profile_negated_tags():
    return local_eps_with_profile(PROFILE_RULES_1_NEGATED, "localEpsWithUpdatedProfileNegatedTags",
                                  {B_EQ_B: EP1, TAG2: ()})


def local_eps_with_non_matching_profile():
    return ("localEpsWithNonMatchingProfile", [prof("prof-1", *PROFILE_RULES_1, labels=LABELS_1_TAG1),
                                               EP1_NO_PROFILES, EP2_NO_PROFILES],
            expect({}, (), (), NO_TIERS))


def with_profile_tag_inherit():
    return ("withProfileTagInherit", [prof("prof-1", *PROFILE_RULES_TAG_INHERIT, labels=LABELS_1_TAG1)], expect())


def local_eps_with_tag_inherit_profile():
    return ("localEpsWithTagInheritProfile",
            [prof("prof-1", *PROFILE_RULES_TAG_INHERIT, labels=LABELS_1_TAG1), ep1(), ep2()],
            expect({TAG1: EP1, TAG_FOOBAR: ()}, (), PROFILES_1 + PROFILES_2, NO_TIERS))


def local_eps_with_tag_overridden_profile():
    return ("localEpsWithTagOverriddenProfile",
            [prof("prof-1", *PROFILE_RULES_TAG_INHERIT, labels=LABELS_TAG1), ep1(), ep2()],
            expect({TAG1: EP1, TAG_FOOBAR: EP1}, (), PROFILES_1 + PROFILES_2, NO_TIERS))


def with_profile_tag_overridden():
    return ("withProfileTagOverridden", [prof("prof-1", *PROFILE_RULES_TAG_INHERIT, labels=LABELS_TAG1)], expect())


def with_policy_always():
    return ("withPolicyAlways", [POL1_ALWAYS], expect({ALL: (), B_EQ_B: ()}, P1))


def local_ep1_with_policy_always():
    name, _resources, expected = local_ep1_with_policy()
    return ("localEp1WithPolicyAlways", [DEFAULT_TIER, POL1_ALWAYS, ep1()], expected)


def with_policy():
    return ("withPolicy", [DEFAULT_TIER, policy1()], expect())


def initialised_store():
    return ("initialisedStore", [], expect())


# ---------------------------------------------------------------------------------------------
# calc_graph_fv_test.go baseTests.

@pytest.mark.parametrize("states", [
    pytest.param([local_ep1_with_policy, local_ep2_with_policy], id="ep1-then-ep2"),
    pytest.param([local_ep1_with_policy_and_tier, local_ep2_with_policy_and_tier], id="ep1-then-ep2-tier"),
    pytest.param([local_ep1_with_ingress_policy, local_ep2_with_policy], id="ingress-only-then-ep2"),
    pytest.param([local_ep1_with_policy, local_eps_with_policy, local_ep2_with_policy], id="overlapping-ips"),
    pytest.param([local_ep1_with_policy_and_tier, local_eps_with_policy_and_tier, local_ep2_with_policy_and_tier],
                 id="overlapping-ips-tier"),
    pytest.param([local_eps_with_policy, initialised_store, local_eps_with_policy], id="empty-and-back"),
    pytest.param([local_eps_with_policy, local_eps_with_policy_updated_ips, local_ep1_with_ingress_policy],
                 id="ip-updates"),
    pytest.param([local_eps_with_profile, local_eps_with_updated_profile], id="profile-update"),
    pytest.param([local_eps_with_non_matching_profile, local_eps_with_profile], id="profile-list-changes"),
    pytest.param([local_ep1_with_policy, local_ep1_with_policy_and_tier], id="policy-changes-tier"),
    pytest.param([lambda: local_ep1_two_tiers("tier-1"), lambda: local_ep1_two_tiers("tier-2"),
                  lambda: local_ep1_two_tiers("tier-1")], id="policy-moves-between-tiers"),
    pytest.param([host_ep1_with_policy, host_ep2_with_policy, host_ep1_with_ingress_policy,
                  host_ep1_with_egress_policy], id="host-endpoints"),
    pytest.param([lambda: host_ep1_with_network_sets(), lambda: host_ep1_with_network_sets(NETSET1),
                  lambda: host_ep1_with_network_sets(NETSET1_B_EQ_B), host_ep2_with_policy,
                  lambda: host_ep1_with_network_sets(NETSET1), lambda: host_ep1_with_network_sets(NETSET1, NETSET2)],
                 id="network-sets"),
    pytest.param([host_ep1_with_untracked_policy], id="untracked"),
    pytest.param([host_ep1_with_tracked_and_untracked_policy], id="tracked-and-untracked"),
    pytest.param([host_ep1_with_untracked_policy, host_ep1_with_policy, host_ep1_with_ingress_policy],
                 id="untracked-to-tracked"),
    pytest.param([host_ep1_with_untracked_policy, host_ep1_with_tracked_and_untracked_policy, host_ep1_with_policy],
                 id="untracked-mixed-tracked"),
    pytest.param([host_ep1_with_pre_dnat_policy, host_ep1_with_egress_policy], id="pre-dnat-then-egress"),
    pytest.param([with_profile_tag_inherit, local_eps_with_tag_inherit_profile], id="tag-inherit"),
    pytest.param([local_eps_with_tag_overridden_profile, with_profile_tag_overridden], id="tag-overridden"),
    pytest.param([local_ep1_named_port], id="named-port"),
    pytest.param([local_ep1_named_port_udp], id="named-port-udp"),
    pytest.param([lambda: inherited_states()["dupes"]], id="named-port-duplicates"),
    pytest.param([lambda: local_ep1_named_port(POL1_NAMED_PORT_NO_SEL, "localEp1WithNamedPortPolicyNoSelector")],
                 id="named-port-no-selector"),
    pytest.param([lambda: local_ep1_named_port(POL1_NEG_NAMED_PORT_NO_SEL,
                                               "localEp1WithNegatedNamedPortPolicyNoSelector")],
                 id="negated-named-port-no-selector"),
    pytest.param([local_ep1_negated_named_port], id="negated-named-port"),
    pytest.param([lambda: local_ep1_negated_named_port(POL1_NEG_NAMED_PORT_DEST,
                                                       "localEp1WithNegatedNamedPortPolicyDest")],
                 id="negated-named-port-dest"),
    pytest.param([local_host_ep1_named_port], id="host-named-port"),
    pytest.param([host_ep1_with_policy, local_host_ep1_named_port, host_ep1_with_policy], id="host-named-port-seq"),
    pytest.param([local_eps_named_ports], id="named-ports-overlapping-ips"),
    pytest.param([local_ep1_named_port, local_eps_named_ports], id="named-ports-ep1-then-both"),
    pytest.param([local_eps_named_ports_tcpport2], id="named-ports-different-port-numbers"),
    pytest.param([local_eps_mismatched_named_ports], id="named-ports-mismatched-protocol"),
    pytest.param([local_eps_named_ports, local_eps_named_ports_tcpport2], id="named-port-update"),
    pytest.param([host_ep1_with_policy, local_ep1_named_port, host_ep1_with_policy], id="add-remove-named-ports"),
    pytest.param([host_ep1_with_policy, lambda: local_ep1_named_port(POL1_NAMED_PORT_NO_SEL, "NoSelector"),
                  host_ep1_with_policy], id="add-remove-named-ports-no-selector"),
    pytest.param([host_ep1_with_policy, local_eps_named_ports, host_ep1_with_policy], id="add-remove-named-ports-eps"),
    pytest.param([lambda: inherited_states()[k] for k in ("none", "ep1", "both", "not_ep2", "neither")],
                 id="inherited-label-named-port"),
    pytest.param([lambda: inherited_states()[k] for k in ("both", "dupes", "both")], id="inherited-duplicate-ports"),
    pytest.param([lambda: inherited_states()[k] for k in ("both", "ep2_no_profiles", "no_profiles", "both")],
                 id="inherited-profiles-removed"),
    pytest.param([local_eps_with_tag_inherit_profile, local_ep1_with_policy, local_eps_with_profile],
                 id="inherited-profile-cleanup"),
    pytest.param([local_eps_with_profile, lambda: policy_order_state((10, 20, 30), ["pol-1", "pol-2", "pol-3"]),
                  local_eps_with_non_matching_profile, local_eps_with_tag_inherit_profile, local_eps_with_policy,
                  local_eps_with_policy_updated_ips, host_ep1_with_policy, local_eps_with_updated_profile,
                  with_profile_tag_inherit, local_ep1_with_ingress_policy, local_eps_with_non_matching_profile,
                  local_eps_with_updated_profile_negated_tags, host_ep1_with_untracked_policy,
                  local_eps_with_tag_inherit_profile, local_ep1_with_policy, local_eps_with_profile],
                 id="long-random-sequence"),
    pytest.param([local_eps_with_profile, lambda: policy_order_state((10, 20, 30), ["pol-1", "pol-2", "pol-3"]),
                  local_eps_with_non_matching_profile, local_eps_with_tag_inherit_profile,
                  host_ep1_with_untracked_policy, local_eps_with_tag_inherit_profile,
                  local_eps_mismatched_named_ports, local_ep1_with_policy,
                  lambda: local_ep1_named_port(POL1_NAMED_PORT_NO_SEL, "NoSelector"), local_eps_with_profile,
                  lambda: inherited_states()["both"], local_ep1_with_ingress_policy,
                  local_eps_with_non_matching_profile, local_eps_with_updated_profile_negated_tags,
                  local_eps_with_policy, local_eps_with_policy_updated_ips, host_ep1_with_policy,
                  local_eps_with_updated_profile, with_profile_tag_inherit, local_ep1_named_port_udp],
                 id="another-long-sequence"),
    pytest.param([with_policy_always, local_ep1_with_policy_always], id="always-programmed"),
    pytest.param([with_policy, local_ep1_with_policy_always, with_policy_always, local_ep1_with_policy],
                 id="always-then-on-demand"),
])
def test_calc_graph_fv_base_tests(states):
    run_sequence([make() for make in states])


@pytest.mark.parametrize("orders,expected,tier_name", [
    ((10, 20, 30), ["pol-1", "pol-2", "pol-3"], "default"),   # localEp1WithOneTierPolicy123
    ((30, 20, 10), ["pol-3", "pol-2", "pol-1"], "default"),   # localEp1WithOneTierPolicy321
    ((10, 10, 10), ["pol-1", "pol-2", "pol-3"], "default"),   # localEp1WithOneTierPolicyAlpha
    ((10, 20, 30), ["pol-1", "pol-2", "pol-3"], "tier-1"),    # commLocalEp1WithOneTierPolicy123
    ((30, 20, 10), ["pol-3", "pol-2", "pol-1"], "tier-1"),    # commLocalEp1WithOneTierPolicy321
    ((10, 10, 10), ["pol-1", "pol-2", "pol-3"], "tier-1"),    # commLocalEp1WithOneTierPolicyAlpha
])
def test_policy_order_states(orders, expected, tier_name):
    run_sequence([policy_order_state(orders, expected, tier_name)])


def test_policy_order_sequence():
    """calc_graph_fv_test.go: 123 -> 321 -> Alpha, in the default tier and in tier-1."""
    for tier_name in ("default", "tier-1"):
        run_sequence([policy_order_state((10, 20, 30), ["pol-1", "pol-2", "pol-3"], tier_name),
                      policy_order_state((30, 20, 10), ["pol-3", "pol-2", "pol-1"], tier_name),
                      policy_order_state((10, 10, 10), ["pol-1", "pol-2", "pol-3"], tier_name)])


def test_tier_order_sequence():
    """calc_graph_fv_test.go "And tier ordering": 123, 321, Alpha, Alpha2, 321, Alpha3."""
    run_sequence([tier_order_state((10, 20, 30), ["tier-1", "tier-2", "tier-3"]),
                  tier_order_state((30, 20, 10), ["tier-3", "tier-2", "tier-1"]),
                  tier_order_state((10, 10, 10), ["tier-1", "tier-2", "tier-3"]),
                  tier_order_state((20, 20, 20), ["tier-1", "tier-2", "tier-3"]),
                  tier_order_state((30, 20, 10), ["tier-3", "tier-2", "tier-1"]),
                  tier_order_state((20, 20, 10), ["tier-3", "tier-1", "tier-2"])])


def test_complex_profile_and_policy_sequence():
    """calc_graph_fv_test.go "String together some complex updates with profiles and policies"."""
    run_sequence([local_eps_with_profile(), policy_order_state((10, 20, 30), ["pol-1", "pol-2", "pol-3"], "tier-1"),
                  tier_order_state((30, 20, 10), ["tier-3", "tier-2", "tier-1"]),
                  local_eps_with_non_matching_profile(), local_eps_with_policy_and_tier(),
                  local_eps_with_updated_profile(), local_eps_with_non_matching_profile(),
                  local_eps_with_updated_profile_negated_tags(), local_ep1_with_policy_and_tier(),
                  tier_order_state((20, 20, 20), ["tier-1", "tier-2", "tier-3"]), local_eps_with_profile()])


# ---------------------------------------------------------------------------------------------
# Istio ambient (states_for_test.go istio*; istio_data_for_test.go), with IstioAmbientMode on.

ISTIO = "all-istio-weps"


def ns_to_profile(name: str, labels: dict) -> Resource:
    """libcalico-go's NamespaceToProfile: kns.<name>, allow-all rules, pcns. labels plus the name."""
    lab = {f"pcns.{k}": v for k, v in labels.items()}
    lab["pcns.projectcalico.org/name"] = name
    return profile(f"kns.{name}", [allow()], [allow()], lab)


def istio_wep(workload, nets, ns, labels=None):
    """Felix's test gives the profile ID as the namespace name itself ("istio-ambient")."""
    return orch_wep(workload, "ep1", nets, {"projectcalico.org/namespace": ns, **(labels or {})}, [ns],
                    iface="cali" + workload[:11], ns=ns)


def istio_profile(name, labels):
    """The ResourceKey{Name: <ns>, Kind: Profile} value: namespaceToProfile's labels under the
    profile name the endpoints use."""
    kns = ns_to_profile(name, labels)
    return profile(name, kns.spec["ingress"], kns.spec["egress"], kns.spec["labelsToApply"])


AMBIENT = {"istio.io/dataplane-mode": "ambient"}
NONE = {"istio.io/dataplane-mode": "none"}


def test_istio_states():
    wep_ambient = istio_wep("istio-wep-ambient", ["10.10.1.1/32", "fc00:fe10::1/128"], "istio-ambient", AMBIENT)
    wep_none = istio_wep("istio-wep-none", ["10.10.3.1/32", "fc00:fe10::3/128"], "istio-none")
    wep_regular = istio_wep("regular-wep", ["10.10.4.1/32", "fc00:fe10::4/128"], "regular")
    wep_direct = istio_wep("istio-wep-direct-ambient", ["10.10.5.1/32", "fc00:fe10::5/128"], "regular", AMBIENT)
    wep_edge = istio_wep("ambient-ns-but-pod-none", ["10.10.9.1/32"], "istio-ambient", NONE)
    p_ambient, p_none = istio_profile("istio-ambient", AMBIENT), istio_profile("istio-none", NONE)
    p_regular = istio_profile("regular", {})
    run_sequence([
        ("istioWithAmbientPod", [p_ambient, wep_ambient],
         expect({ISTIO: {"10.10.1.1/32", "fc00:fe10::1/128"}}, (), ["istio-ambient"],
                {"orch/istio-wep-ambient/ep1": []})),
        ("istioWithMixedPods", [p_ambient, p_none, p_regular, wep_ambient, wep_none, wep_regular, wep_direct],
         expect({ISTIO: {"10.10.1.1/32", "fc00:fe10::1/128", "10.10.5.1/32", "fc00:fe10::5/128"}}, (),
                ["istio-ambient", "istio-none", "regular"],
                {f"orch/{w}/ep1": [] for w in ("istio-wep-ambient", "istio-wep-none", "regular-wep",
                                                "istio-wep-direct-ambient")})),
        ("istioSelectorEdgeCases", [p_ambient, wep_edge],
         expect({ISTIO: ()}, (), ["istio-ambient"], {"orch/ambient-ns-but-pod-none/ep1": []})),
    ], istio_ambient=True)


# ---------------------------------------------------------------------------------------------
# Behaviours Felix's states leave to libcalico-go's update processors (v3 -> v1): checked
# end to end with the selectors updateprocessors/rules.go builds.

def test_namespaced_policy_selectors_namespace_and_service_account_selectors_and_global():
    """GetEntityRuleSelector (libcalico-go updateprocessors/rules.go): a namespaced policy's
    rule selector is limited to its namespace; a namespaceSelector selects pcns. labels, its
    all() means "in some namespace" and global() "in no namespace"; serviceAccounts become
    pcsa. labels and the projectcalico.org/serviceaccount label the WEP processor adds."""
    resources = [
        ns_to_profile("ns1", {"env": "prod"}), ns_to_profile("ns2", {"env": "dev"}),
        profile("ksa.ns1.sa1", labels={"pcsa.role": "api"}),
        wep("a", ns="ns1", ips=["10.1.0.1/32"], labels={"app": "web"}, sa="sa1", profiles=["kns.ns1", "ksa.ns1.sa1"]),
        wep("b", ns="ns2", node=REMOTE, ips=["10.2.0.1/32"], labels={"app": "web"}),
        netset("ns1-nets", "ns1", ["192.168.1.0/24"], {"app": "web"}),
        gnetset("global-nets", ["172.16.0.0/16"], {"app": "web"}),
        hep("h1", iface="eth0", ips=["192.0.2.1"], labels={"app": "web"}),
        np("p", ns="ns1", selector="all()", ingress=[
            allow(source={"selector": "app == 'web'"}),
            allow(source={"namespaceSelector": "env == 'dev'"}),
            allow(source={"namespaceSelector": "all()", "selector": "app == 'web'"}),
            allow(source={"namespaceSelector": "global()"}),
            allow(source={"serviceAccounts": {"names": ["sa1"]}}),
            allow(source={"serviceAccounts": {"selector": "role == 'api'"}}),
            allow(source={"notSelector": "app == 'web'"}),
        ]),
    ]
    view = DataplaneView().apply(calculate(LOCAL, resources))
    rules = view.policies[t.PolicyID("p", "ns1", "NetworkPolicy")].inbound_rules
    sets = {k: m for k, (_typ, m) in view.ipsets.items()}
    expected = [
        ("(projectcalico.org/namespace == 'ns1') && (app == 'web')", {"10.1.0.1/32", "192.168.1.0/24"}),
        ("pcns.env == 'dev'", {"10.2.0.1/32"}),
        ("(has(projectcalico.org/namespace)) && (app == 'web')", {"10.1.0.1/32", "10.2.0.1/32", "192.168.1.0/24"}),
        ("!has(projectcalico.org/namespace)", {"172.16.0.0/16", "192.0.2.1/32"}),
        ("(projectcalico.org/namespace == 'ns1') && (projectcalico.org/serviceaccount in { 'sa1' })",
         {"10.1.0.1/32"}),
        ("(projectcalico.org/namespace == 'ns1') && (pcsa.role == 'api')", {"10.1.0.1/32"}),
        # notSelector in a namespaced policy: the namespace becomes the positive selector,
        # and the rule scanner folds the negation into it.
        ("(projectcalico.org/namespace == 'ns1') && (!(app == 'web'))", set()),
    ]
    for rule, (selector, members) in zip(rules, expected):
        assert rule.src_ip_set_ids == (selector_id(selector),), selector
        assert rule.not_src_ip_set_ids == ()
        assert sets[selector_id(selector)] == members, selector


def test_all_interfaces_host_endpoint_and_forward_tiers():
    """A host endpoint with interfaceName "*" reaches the dataplane under that name with its
    tiers; applyOnForward policies are in its forward tiers as well as its normal ones, and
    doNotTrack/preDNAT ones only in their own lists (event_sequencer.go tierInfoToProtoTierInfo)."""
    star = hep("all-ifaces", iface="*", ips=["10.0.0.1"], labels=EP1_LABELS)
    resources = [star, policy1("fwd", applyOnForward=True), policy1("plain"),
                 pol("untracked", ingress=POL1_IN, egress=POL1_OUT, types=None, doNotTrack=True, applyOnForward=True),
                 pol("pre", ingress=POL1_IN, types=None, preDNAT=True, applyOnForward=True)]
    view = DataplaneView().apply(calculate(LOCAL, resources))
    ep = view.host_endpoints[t.HostEndpointID("all-ifaces")]
    assert ep.name == "*"
    assert _tiers(ep.tiers) == [("default", ["fwd", "plain"], ["fwd", "plain"])]
    assert _tiers(ep.forward_tiers) == [("default", ["fwd"], ["fwd"])]
    assert _tiers(ep.untracked_tiers) == [("default", ["untracked"], ["untracked"])]
    assert _tiers(ep.pre_dnat_tiers) == [("default", ["pre"], [])]
    assert [ti.default_action for ti in ep.untracked_tiers + ep.pre_dnat_tiers] == ["Pass", "Pass"]


def test_policy_without_order_sorts_last_and_ties_break_on_name_namespace_kind():
    """policy_sorter.go PolKVLess: no order is +Inf; equal orders compare
    "<name>/<namespace>/<kind>" strings."""
    ep = wep("w", ns="ns1", labels={"a": "a"})
    resources = [ep, gnp("z", selector="a == 'a'", ingress=[allow()], order=5),
                 gnp("a", selector="a == 'a'", ingress=[allow()]),
                 np("a", ns="ns1", selector="a == 'a'", ingress=[allow()], order=5),
                 gnp("m", selector="a == 'a'", ingress=[allow()], order=5)]
    view = DataplaneView().apply(calculate(LOCAL, resources))
    (ep_msg,) = view.workload_endpoints.values()
    order = [(p.name, p.namespace) for p in ep_msg.tiers[0].ingress_policies]
    # "a/ns1/NetworkPolicy" < "m//GlobalNetworkPolicy" < "z//GlobalNetworkPolicy"; then no order.
    assert order == [("a", "ns1"), ("m", ""), ("z", ""), ("a", "")]


def test_shared_ip_set_ids_live_while_any_rule_uses_them():
    """rule_scanner.go: an IP set's ID is the hash of its selector's canonical form, so rules
    of different policies and profiles that say the same thing (however spelled) share one
    set, which lives while any active rule uses it."""
    pol_a = pol("a", ingress=[allow(source={"selector": "b == 'b'"})], types=["Ingress"])
    pol_b = pol("b", ingress=[allow(source={"selector": 'b=="b"'})], types=["Ingress"])
    prof_1 = prof("prof-1", [allow(source={"selector": "b == \"b\""})])
    seq = Sequence()
    assert seq.move_to([pol_a, pol_b, prof_1, ep1()])["ipsets"] == {B_EQ_B: EP1}
    assert seq.view.policies[t.PolicyID("b")].inbound_rules[0].src_ip_set_ids == (B_EQ_B,)
    assert seq.move_to([pol_b, prof_1, ep1()])["ipsets"] == {B_EQ_B: EP1}
    assert seq.move_to([prof_1, ep1()])["ipsets"] == {B_EQ_B: EP1}
    # The profile stays active (the endpoint names it), so its set stays; once the
    # endpoint no longer names it, the set goes.
    assert seq.move_to([prof_1, ep1(profiles=("prof-2",))])["ipsets"] == {}


def test_endpoint_profile_order_is_kept():
    """event_sequencer.go ModelWorkloadEndpointToProto / ModelHostEndpointToProto: the
    endpoint's profile IDs go to the dataplane in the endpoint's order (the rules render
    them in that order)."""
    view = DataplaneView().apply(calculate(LOCAL, [ep1(profiles=("prof-z", "prof-a", "prof-m")),
                                                   host_ep1(profiles=("prof-b", "prof-a"))]))
    (wep_msg,) = view.workload_endpoints.values()
    (hep_msg,) = view.host_endpoints.values()
    assert wep_msg.profile_ids == ("prof-z", "prof-a", "prof-m")
    assert hep_msg.profile_ids == ("prof-b", "prof-a")


def test_named_ports_with_sctp_numeric_protocols_and_any():
    """ipsetmember ProtocolFrom / MatchesModelProtocol: a rule's protocol picks the named
    port protocol (udp, sctp, else tcp; by name or number); an endpoint port matches by name
    or number, and a port without a protocol only an "any" set."""
    ep = ep1(ports=(("p", "SCTP", 7), ("p", "UDP", 8), ("p", "TCP", 9)))
    cases = [("SCTP", "sctp", {("sctp", 7)}), (132, "sctp", {("sctp", 7)}), (17, "udp", {("udp", 8)}),
             ("TCP", "tcp", {("tcp", 9)}), (6, "tcp", {("tcp", 9)})]
    for proto, set_proto, members in cases:
        policy = pol(ingress=[allow(protocol=proto, destination={"ports": ["p"]})], types=["Ingress"])
        sets = from_scratch([policy, ep])["ipsets"]
        assert sets == {named_port_id("all()", set_proto, "p"): np_members(EP1, *members)}, proto


# ---------------------------------------------------------------------------------------------
# felix/labelindex/named_port_index_test.go, on our member index directly.

def _index_outputs(endpoints, parents, ipsets):
    """Drive IPSetMemberIndex with the test's endpoints (labels, CIDRs, ports, parents),
    parents (labels) and sets (selector, protocol, port); return each set's members."""
    from node.felix.calc import v1
    from node.felix.calc.members import EndpointData, IPSetMemberIndex
    from node.felix.calc.rule_scanner import IPSetData

    members: dict[str, set] = {}
    index = IPSetMemberIndex(lambda s, m: members.setdefault(s, set()).add(m),
                             lambda s, m: members[s].remove(m), suppress_overlaps=False)
    for name, labels in parents.items():
        index.update_parent(name, labels.items())
    for key, (labels, cidrs, ports, ep_parents) in endpoints.items():
        data = EndpointData(tuple(cidrs), tuple(v1.EndpointPort(n, p, num) for n, p, num in ports))
        index.update_endpoint(key, labels.items(), tuple(ep_parents), data)
    ids = {}
    for name, (sel, proto, port) in ipsets.items():
        data = IPSetData(parse(sel), port, proto)
        index.update_set(data)
        ids[name] = data.id
    return {name: members.get(uid, set()) for name, uid in ids.items()}


def test_named_port_index_two_endpoints_overlapping_ips_named_port_selectors():
    """named_port_index_test.go "two endpoints overlapping IPs named port selectors"."""
    endpoints = {"endpoint1": ({"a": "A", "b": "B"}, ["10.0.0.1/32", "10.0.0.2/32"], [("http", "tcp", 8080)],
                               ["parent"]),
                 "endpoint2": ({"b": "B", "c": "C"}, ["10.0.0.2/32", "10.0.0.3/32"], [("http", "tcp", 8081)],
                               ["parent"])}
    ipsets = {"hasA": ("has(a)", "", ""), "hasAHTTP": ("has(a)", "tcp", "http"),
              "hasAAndBHTTP": ("has(a) && has(b)", "tcp", "http"), "hasBHTTP": ("has(b)", "tcp", "http"),
              "hasBAndParentAHTTP": ("has(b) && has(parentLabelA)", "tcp", "http")}
    assert _index_outputs(endpoints, {"parent": {"parentLabelA": "A"}}, ipsets) == {
        "hasA": {"10.0.0.1/32", "10.0.0.2/32"},
        "hasAHTTP": {"10.0.0.1,tcp:8080", "10.0.0.2,tcp:8080"},
        "hasAAndBHTTP": {"10.0.0.1,tcp:8080", "10.0.0.2,tcp:8080"},
        "hasBHTTP": {"10.0.0.1,tcp:8080", "10.0.0.2,tcp:8080", "10.0.0.2,tcp:8081", "10.0.0.3,tcp:8081"},
        "hasBAndParentAHTTP": {"10.0.0.1,tcp:8080", "10.0.0.2,tcp:8080", "10.0.0.2,tcp:8081", "10.0.0.3,tcp:8081"},
    }


@pytest.mark.parametrize("parent_labels,expected", [
    # "single endpoint single parent multiple IP sets"
    ({"parentLabelA": "A"}, {"aEqualsA", "hasA", "parentLabelA", "epAndParent"}),
    # "single endpoint no parent labels multiple IP sets"
    ({}, {"aEqualsA", "hasA", "parentLabelNotA", "epAndNotParent"}),
    # "single endpoint parent label B multiple IP sets"
    ({"parentLabelB": "B"}, {"aEqualsA", "hasA", "parentLabelNotA", "epAndNotParent"}),
])
def test_named_port_index_parent_label_sets(parent_labels, expected):
    ipsets = {"aEqualsA": "a == 'A'", "hasA": "has(a)", "notA": "a != 'A'", "parentLabelA": "parentLabelA == 'A'",
              "parentLabelNotA": "parentLabelA != 'A'", "epAndParent": "a == 'A' && parentLabelA == 'A'",
              "epAndNotParent": "a == 'A' && parentLabelA != 'A'", "notEpAndParent": "a != 'A' && parentLabelA == 'A'"}
    out = _index_outputs({"endpoint1": ({"a": "A", "b": "B"}, ["10.0.0.1/32"], [], ["parent"])},
                         {"parent": parent_labels}, {k: (v, "", "") for k, v in ipsets.items()})
    assert out == {k: ({"10.0.0.1/32"} if k in expected else set()) for k in ipsets}


def test_named_port_index_network_sets_and_host_endpoint_labels():
    """named_port_index_test.go: equivalent network set CIDRs once; network sets inherit
    profile labels; a host endpoint label with an empty value is matched by has()."""
    sel = gnp("p", selector="all()", ingress=[allow(source={"selector": "villain == 'ghost'"})])
    host = hep("h", iface="eth0", ips=["1.2.3.4"])
    sets = from_scratch([sel, host, gnetset("blinky", ["192.168.4.10/16"], {"villain": "ghost"}),
                         gnetset("inky", ["192.168.20.1/16"], {"villain": "ghost"})])["ipsets"]
    assert sets == {selector_id("villain == 'ghost'"): {"192.168.0.0/16"}}
    # A namespaced NetworkSet's profile is its namespace's (kns.<ns>).
    sel = gnp("p", selector="all()", ingress=[allow(source={"selector": "villain == 'ghost' && "
                                                                         "pcns.superhero == 'scooby'"})])
    sets = from_scratch([sel, host, ns_to_profile("doo", {"superhero": "scooby"}),
                         netset("scary-ns", "doo", ["192.168.20.1/16"], {"villain": "ghost"})])["ipsets"]
    assert list(sets.values()) == [{"192.168.0.0/16"}]
    sel = gnp("p", selector="all()", ingress=[allow(source={"selector": "has(label2)"})])
    seq = Sequence()
    labelled = hep("h", iface="eth0", ips=["1.2.3.4", "aa:bb::cc:dd"], labels={"label2": ""})
    assert seq.move_to([sel, labelled])["ipsets"] == {selector_id("has(label2)"): {"1.2.3.4/32", "aa:bb::cc:dd/128"}}
    relabelled = hep("h", iface="eth0", ips=["1.2.3.4", "aa:bb::cc:dd"], labels={"label1": "value1"})
    assert seq.move_to([sel, relabelled])["ipsets"] == {selector_id("has(label2)"): set()}


# ---------------------------------------------------------------------------------------------
# Overlap suppression follows NFTablesMode as Felix reads it (calc_graph.go:
# NewSelectorAndNamedPortIndex(conf.NFTablesMode != "Disabled"), v3.32.1 commit 03d49bf09f):
# on with the default Auto, even though the iptables dataplane is the one Auto picks here.

OVERLAPPING = [gnp("p", selector="all()", ingress=[allow(source={"selector": "has(m)"})]),
               hep("h", iface="eth0", ips=["192.0.2.1"]),
               gnetset("one", ["10.0.0.1/32"], {"m": ""}), gnetset("net", ["10.0.0.0/24"], {"m": ""}),
               gnetset("other", ["11.0.0.1/32"], {"m": ""})]


def _pipeline_sets(resources, env=None):
    from node.datastore.syncer import SyncStatus
    from node.felix.calc.offline import updates_from_resources
    from node.felix.pipeline import Pipeline

    pipe = Pipeline(LOCAL, env or {}, None)
    pipe.on_updates(updates_from_resources(resources))
    pipe.on_status(SyncStatus.IN_SYNC)
    pipe.complete()
    return {name: set(s.members) for name, s in pipe.dataplanes[4].ipsets.sets.items() if name.startswith("cali40s:")}


@pytest.mark.parametrize("env,config,suppressed", [
    ({}, None, True),                                               # default Auto
    ({"FELIX_NFTABLESMODE": "Auto"}, None, True),
    ({"FELIX_NFTABLESMODE": "Disabled"}, None, False),
    ({}, {"nftablesMode": "Disabled"}, False),                      # only the datastore says so
    ({"FELIX_NFTABLESMODE": "Disabled"}, {"nftablesMode": "Auto"}, False),   # env wins
    ({}, {"nftablesMode": "Auto"}, True),
])
def test_pipeline_suppresses_overlapping_members_unless_nftables_mode_is_disabled(env, config, suppressed):
    from felix_calc_builders import felix_config

    resources = list(OVERLAPPING)
    if config is not None:
        resources.append(felix_config("default", **config))
    (members,) = _pipeline_sets(resources, env).values()
    full = {"10.0.0.1", "10.0.0.0/24", "11.0.0.1"}
    assert members == (full - {"10.0.0.1"} if suppressed else full)


def test_switching_suppression_reports_the_hidden_members():
    graph = PolicyCalculation(LOCAL, suppress_overlaps=False)
    view = DataplaneView()
    graph.on_updates([Update(UpdateType.NEW, resource_key(r), r, 1) for r in OVERLAPPING])
    graph.on_in_sync()
    view.apply(graph.take_messages())
    (set_id,) = view.ipsets
    assert view.ipsets[set_id][1] == {"10.0.0.1/32", "10.0.0.0/24", "11.0.0.1/32"}
    graph.set_suppress_overlaps(True)
    msgs = graph.take_messages()
    assert msgs == [t.IPSetDeltaUpdate(set_id, frozenset(), frozenset({"10.0.0.1/32"}))]
    view.apply(msgs)
    # From then on it behaves as a calculation built with suppression on.
    graph.on_updates([Update(UpdateType.DELETED, resource_key(OVERLAPPING[3]), None, 2)])
    view.apply(graph.take_messages())
    assert view.ipsets[set_id][1] == {"10.0.0.1/32", "11.0.0.1/32"}
    graph.set_suppress_overlaps(False)
    assert graph.take_messages() == []


def test_no_op_policy_updates_are_squashed():
    """calc_graph_test.go "should squash no-op policy updates": localEp1WithPolicy, then the
    same policy again, sends nothing."""
    seq = Sequence()
    _name, resources, expected = local_ep1_with_policy()
    assert seq.move_to(resources) == expected
    seq.graph.on_updates([Update(UpdateType.UPDATED, resource_key(policy1()), policy1(), 2)])
    assert seq.graph.take_messages() == []
