"""Properties of the calculation as a whole.

* Incremental = from scratch: after any random sequence of endpoint, label, policy,
  profile, tier, pool, network-set, node and BGP peer changes, fed in random batches, the messages applied
  to an empty dataplane give exactly what a fresh calculation over the final resources
  gives, and what a brute-force reference (every selector against every endpoint, no
  indexes) computes.
* Scale sanity: 1,000 local and 5,000 remote endpoints with 500 policies compute, and
  one label change produces only the small, expected set of messages.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.felix import types as t
from node.felix.calc import DataplaneView, PolicyCalculation, calculate
from node.felix.calc import convert as cv
from node.felix.calc import validation
from node.felix.calc.members import host_net, network_set_nets
from node.felix.calc.ordering import policy_meta, resolve_tiers, split_tiers
from node.felix.calc.rule_scanner import DUMMY_DROP_RULES, protocol_from, protocol_matches, scan_policy, scan_profile
from node.model import Resource
from node.selector import SelectorError, parse

from felix_calc_builders import (LOCAL, REMOTE, bgp_peer, delete, gnetset, gnp, hep, netset, node, np, pool, profile,
                                 put, tier, wep)

# --------------------------------------------------------------------------------------
# A brute-force reference: no label index, no increments.


def _merged(labels, parents, profiles):
    merged = {}
    for name in reversed(parents):
        if name in profiles:
            merged.update(dict(profiles[name].labels))
    merged.update(dict(labels))
    return merged


def _local_bgp_peers(hostname: str, resources: list[Resource]) -> list[tuple[str, object]]:
    """(name, localWorkloadSelector) of the BGPPeers that apply to ``hostname``, by name."""
    def parsed(text):
        try:
            return parse(text or "")
        except SelectorError:
            return None

    node_labels = {}
    for res in resources:
        if res.kind == "Node" and res.name == hostname:
            node_labels = dict(res.labels)
    peers = []
    for res in resources:
        if res.kind != "BGPPeer":
            continue
        spec = res.spec
        if spec.get("node"):
            applies = spec["node"] == hostname
        else:
            node_sel = parsed(spec.get("nodeSelector"))
            applies = node_sel is not None and node_sel.evaluate(node_labels)
        selector = parsed(spec.get("localWorkloadSelector")) if spec.get("localWorkloadSelector") else None
        if applies and selector is not None:
            peers.append((res.name, selector))
    return sorted(peers)


def reference(hostname: str, resources: list[Resource], suppress_overlaps: bool = True) -> dict:
    def ok(value, check=None, *args):
        return value is not None and (check is None or not check(value, *args))

    def attempt(fn, res):
        try:
            return fn(res)
        except (ValueError, TypeError, KeyError):
            return None

    profiles, tiers, policies, members_of, local, pools, hosts = {}, {}, {}, [], {}, {}, {}
    for res in resources:
        if res.kind == "Profile":
            p = attempt(cv.convert_profile, res)
            if ok(p, validation.profile_problems):
                profiles[res.name] = p
        elif res.kind == "Tier":
            tiers[res.name] = cv.convert_tier(res)
        elif res.kind in ("GlobalNetworkPolicy", "NetworkPolicy"):
            p = attempt(cv.convert_policy, res)
            if ok(p, validation.policy_problems):
                policies[p.id] = p
        elif res.kind == "Node":
            hosts[res.name] = cv.convert_node(res)
        elif res.kind == "IPPool":
            pool_id, ipam_pool = cv.convert_ip_pool(res)
            pools.setdefault(pool_id, (res.name, ipam_pool))
            if res.name < pools[pool_id][0]:
                pools[pool_id] = (res.name, ipam_pool)
    for res in resources:
        if res.kind == "WorkloadEndpoint":
            key = cv.workload_endpoint_key(res)
            ep = cv.convert_workload_endpoint(res)
            if not ok(ep, validation.workload_endpoint_problems, "Disabled"):
                continue
            nets = [host_net(n) for n in ep.ipv4_nets + ep.ipv6_nets]
        elif res.kind == "HostEndpoint":
            key = cv.host_endpoint_key(res)
            ep = cv.convert_host_endpoint(res)
            if not ok(ep, validation.host_endpoint_problems):
                continue
            nets = [host_net(a) for a in ep.expected_ipv4_addrs + ep.expected_ipv6_addrs]
        elif res.kind in ("NetworkSet", "GlobalNetworkSet"):
            ep = cv.convert_network_set(res)
            members_of.append((_merged(ep.labels, ep.profile_ids, profiles), network_set_nets(ep.nets), ()))
            continue
        else:
            continue
        labels = _merged(ep.labels, ep.profile_ids, profiles)
        members_of.append((labels, nets, ep.ports))
        if key.hostname == hostname:
            local[key] = (ep, labels)

    matches = {key: [pid for pid, pol in policies.items() if parse(pol.selector).evaluate(labels)]
               for key, (ep, labels) in local.items()}
    active = {pid for pids in matches.values() for pid in pids}
    active |= {pid for pid, pol in policies.items() if cv.PERF_HINT_ASSUME_NEEDED in pol.performance_hints}
    used_profiles = {name for ep, _ in local.values() for name in ep.profile_ids}

    sets, policy_msgs, profile_msgs = {}, {}, {}
    for pid in active:
        policy_msgs[pid], s = scan_policy(policies[pid])
        sets.update(s)
    for name in used_profiles:
        profile_msgs[name], s = scan_profile(profiles[name].rules if name in profiles else DUMMY_DROP_RULES)
        sets.update(s)

    ipsets = {}
    for set_id, data in sets.items():
        found = set()
        if data.selector is not None:
            for labels, nets, ports in members_of:
                if not data.selector.evaluate(labels):
                    continue
                if not data.named_port_protocol:
                    found |= {str(n) for n in nets}
                    continue
                for port in ports:
                    if port.name == data.named_port and protocol_matches(data.named_port_protocol, port.protocol):
                        found |= {f"{n.network_address},{protocol_from(port.protocol)}:{port.port}" for n in nets}
        if suppress_overlaps:
            cidrs = [ipaddress.ip_network(m) for m in found if "," not in m]
            found = {m for m in found if "," in m or not any(
                c != ipaddress.ip_network(m) and ipaddress.ip_network(m).subnet_of(c)
                for c in cidrs if c.version == ipaddress.ip_network(m).version)}
        ipsets[set_id] = (data.type, frozenset(found))

    metas = {pid: policy_meta(p) for pid, p in policies.items()}
    bgp_peers = _local_bgp_peers(hostname, resources)
    weps, heps = {}, {}
    for key, (ep, labels) in local.items():
        split = split_tiers(resolve_tiers(matches[key], metas, tiers))
        if hasattr(key, "orchestrator"):
            peer = next((name for name, selector in bgp_peers if selector.evaluate(labels)), "")
            weps[t.WorkloadEndpointID(key.orchestrator, key.workload, key.endpoint)] = t.WorkloadEndpoint(
                name=ep.name, mac=ep.mac, profile_ids=ep.profile_ids, ipv4_nets=ep.ipv4_nets,
                ipv6_nets=ep.ipv6_nets, tiers=split.normal,
                ipv4_nat=tuple(t.NatInfo(*n) for n in ep.ipv4_nat), ipv6_nat=tuple(t.NatInfo(*n) for n in ep.ipv6_nat),
                allow_spoofed_source_prefixes=ep.allow_spoofed_source_prefixes, annotations=ep.annotations,
                local_bgp_peer=peer)
        else:
            heps[t.HostEndpointID(key.endpoint_id)] = t.HostEndpoint(
                name=ep.name, profile_ids=ep.profile_ids, tiers=split.normal, untracked_tiers=split.untracked,
                pre_dnat_tiers=split.pre_dnat, forward_tiers=split.forward,
                expected_ipv4_addrs=ep.expected_ipv4_addrs, expected_ipv6_addrs=ep.expected_ipv6_addrs)
    return {"ipsets": ipsets, "policies": policy_msgs, "profiles": profile_msgs, "workload_endpoints": weps,
            "host_endpoints": heps, "pools": {k: v for k, (_n, v) in pools.items()}, "hosts": hosts,
            "config": {"default": {}, "selector": {}, "node": {}, "clusterinfo": {}, "annotations": {}}}


# --------------------------------------------------------------------------------------
# Random resources from a small world, so that matches, shared IPs and overlaps are common.

SELECTORS = ["all()", "app == 'a'", "has(role)", "role == 'y' || team == 'blue'", "!has(app)", "team == 'red'",
             "app in {'a', 'b'} && role != 'x'", "pcns.env == 'prod'", "has(nope"]
RULE_SELECTORS = ["", "all()", "app == 'b'", "has(team)", "role == 'x'", "!has(role)"]
NS_SELECTORS = ["", "env == 'prod'", "all()", "global()"]
WEP_IPS = ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "10.0.1.1/32", "fd00::1/128"]
HEP_IPS = ["10.0.0.1", "10.0.1.1", "10.0.2.2", "fd00::2"]
NETS = ["10.0.0.0/24", "10.0.0.0/16", "10.0.0.1/32", "192.168.0.0/16", "0.0.0.0/0", "fd00::/64"]
PEER_SELECTORS = [None, "", "all()", "has(app)", "role in {'x', 'y'} || team == 'red'", "pcns.env == 'prod'",
                  "has(nope"]
NODE_SELECTORS = ["", "rack == 'r1'", "!has(rack)", "rack =="]
PORTS = [{"name": "http", "protocol": "TCP", "port": 80}, {"name": "http", "protocol": "TCP", "port": 8080},
         {"name": "dns", "protocol": "UDP", "port": 53}]

labels_st = st.dictionaries(st.sampled_from(["app", "role", "team"]), st.sampled_from(["a", "b", "x", "y", "red"]),
                            max_size=3)


@st.composite
def rule_st(draw):
    rule = {"action": draw(st.sampled_from(["Allow", "Deny", "Pass", "Log"]))}
    proto = draw(st.sampled_from([None, "TCP", "UDP"]))
    if proto:
        rule["protocol"] = proto
    for side in ("source", "destination"):
        ent = {}
        sel = draw(st.sampled_from(RULE_SELECTORS))
        if sel:
            ent["selector"] = sel
        not_sel = draw(st.sampled_from(["", "", "has(app)"]))
        if not_sel:
            ent["notSelector"] = not_sel
        ns_sel = draw(st.sampled_from(NS_SELECTORS))
        if ns_sel:
            ent["namespaceSelector"] = ns_sel
        ports = draw(st.sampled_from([[], ["http"], ["dns"]] + ([["http", 443]] if proto else [])))
        if ports:
            ent["ports"] = ports
        if ent:
            rule[side] = ent
    return rule


@st.composite
def policy_st(draw):
    name = draw(st.sampled_from(["g0", "g1", "g2", "n0", "n1"]))
    spec = {"selector": draw(st.sampled_from(SELECTORS)), "tier": draw(st.sampled_from(["default", "t1", "ghost"])),
            "ingress": draw(st.lists(rule_st(), max_size=2)), "egress": draw(st.lists(rule_st(), max_size=2))}
    order = draw(st.sampled_from([None, 1, 5, 5.5]))
    if order is not None:
        spec["order"] = order
    spec["types"] = draw(st.sampled_from([[], ["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    if draw(st.booleans()):
        spec["performanceHints"] = ["AssumeNeededOnEveryNode"]
    if name.startswith("n"):
        return np(name, ns=draw(st.sampled_from(["ns1", "ns2"])), **spec)
    flag = draw(st.sampled_from(["", "doNotTrack", "preDNAT"]))
    if flag:
        spec[flag] = True
        spec["applyOnForward"] = True
    elif draw(st.booleans()):
        spec["applyOnForward"] = True
    if draw(st.booleans()):
        spec["namespaceSelector"] = draw(st.sampled_from(["env == 'prod'", "all()"]))
    return gnp(name, **spec)


@st.composite
def endpoint_st(draw):
    kind = draw(st.sampled_from(["wep", "wep", "hep"]))
    node_name = draw(st.sampled_from([LOCAL, REMOTE]))
    labels = draw(labels_st)
    parents = draw(st.lists(st.sampled_from(["p1", "p2"]), unique=True, max_size=2))
    ports = draw(st.lists(st.sampled_from(PORTS), max_size=2))
    if kind == "hep":
        return hep(draw(st.sampled_from(["h0", "h1"])), node=node_name, iface=draw(st.sampled_from(["eth0", "*", ""])),
                   ips=draw(st.lists(st.sampled_from(HEP_IPS), min_size=1, max_size=2, unique=True)),
                   labels=labels, profiles=parents, ports=ports)
    ns = draw(st.sampled_from(["ns1", "ns2"]))
    return wep(draw(st.sampled_from(["w0", "w1", "w2"])), ns=ns, node=node_name,
               ips=draw(st.lists(st.sampled_from(WEP_IPS), max_size=2, unique=True)),
               labels=labels, profiles=[f"kns.{ns}"] + parents, ports=ports)


@st.composite
def other_st(draw):
    which = draw(st.sampled_from(["profile", "nsprofile", "tier", "netset", "gnetset", "pool"]))
    if which == "profile":
        return profile(draw(st.sampled_from(["p1", "p2"])), ingress=draw(st.lists(rule_st(), max_size=1)),
                       egress=draw(st.lists(rule_st(), max_size=1)), labels=draw(labels_st))
    if which == "nsprofile":
        ns = draw(st.sampled_from(["ns1", "ns2"]))
        return profile(f"kns.{ns}", [{"action": "Allow"}], [{"action": "Allow"}],
                       {"pcns.env": draw(st.sampled_from(["prod", "dev"])), "pcns.projectcalico.org/name": ns})
    if which == "tier":
        return tier(draw(st.sampled_from(["default", "t1"])), draw(st.sampled_from([None, 10, 100])),
                    draw(st.sampled_from(["Deny", "Pass"])))
    if which == "pool":
        return pool(draw(st.sampled_from(["pool0", "pool1"])), draw(st.sampled_from(["10.0.0.0/16", "10.1.0.0/16"])),
                    natOutgoing=draw(st.booleans()))
    nets = draw(st.lists(st.sampled_from(NETS), max_size=3))
    if which == "netset":
        return netset(draw(st.sampled_from(["s0", "s1"])), draw(st.sampled_from(["ns1", "ns2"])), nets, draw(labels_st))
    return gnetset(draw(st.sampled_from(["gs0", "gs1"])), nets, draw(labels_st))


@st.composite
def peer_or_node_st(draw):
    if draw(st.booleans()):
        return node(draw(st.sampled_from([LOCAL, REMOTE])),
                    labels=draw(st.dictionaries(st.just("rack"), st.sampled_from(["r1", "r2"]), max_size=1)))
    where = draw(st.sampled_from(["all", "all", "node", "selector"]))
    return bgp_peer(draw(st.sampled_from(["bp0", "bp1", "bp2"])), draw(st.sampled_from(PEER_SELECTORS)),
                    node=draw(st.sampled_from([LOCAL, REMOTE])) if where == "node" else "",
                    node_selector=draw(st.sampled_from(NODE_SELECTORS)) if where == "selector" else None)


resource_st = st.one_of(policy_st(), endpoint_st(), endpoint_st(), other_st(), peer_or_node_st())
op_st = st.tuples(st.sampled_from(["put", "put", "put", "delete"]), resource_st)


def ident(res: Resource):
    return (res.kind, res.namespace, res.name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(op_st, min_size=1, max_size=6), min_size=1, max_size=8),
       sync_after=st.integers(min_value=0, max_value=8), suppress=st.booleans())
def test_incremental_equals_from_scratch(batches, sync_after, suppress):
    graph = PolicyCalculation(LOCAL, suppress_overlaps=suppress)
    view = DataplaneView()
    state: dict = {}
    for i, batch in enumerate(batches):
        updates = []
        for op, res in batch:
            if op == "put":
                state[ident(res)] = res
                updates += put(res)
            elif ident(res) in state:
                updates += delete(state.pop(ident(res)))
        graph.on_updates(updates)
        if i + 1 >= sync_after:
            graph.on_in_sync()
        view.apply(graph.take_messages())
    graph.on_in_sync()
    view.apply(graph.take_messages())

    final = list(state.values())
    assert view.snapshot() == DataplaneView().apply(calculate(LOCAL, final, suppress_overlaps=suppress)).snapshot()
    assert view.snapshot() == reference(LOCAL, final, suppress_overlaps=suppress)


# --------------------------------------------------------------------------------------
# Scale sanity.

def _ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32"


def test_scale_and_one_label_change():
    """Pod i lives in ns(i % 20) with app((i // 20) % 25); pods 0-999 are local.  Policy p
    lives in ns(p % 20), selects app((p // 20) % 25) and allows from the next app in its
    namespace, so every (namespace, app) pair has 12 pods, two of them local."""
    resources = [tier("default", 1000000, "Deny")]
    for ns in range(20):
        resources.append(profile(f"kns.ns{ns}", [{"action": "Allow"}], [{"action": "Allow"}],
                                 {"pcns.projectcalico.org/name": f"ns{ns}"}))
    for i in range(6000):
        resources.append(wep(f"pod{i}", ns=f"ns{i % 20}", node=LOCAL if i < 1000 else f"node{i % 50 + 2}",
                             ips=[_ip(i + 1)], labels={"app": f"app{(i // 20) % 25}"}))
    for p in range(500):
        resources.append(np(f"pol{p}", ns=f"ns{p % 20}", selector=f"app == 'app{(p // 20) % 25}'",
                            types=["Ingress"],
                            ingress=[{"action": "Allow", "protocol": "TCP",
                                      "source": {"selector": f"app == 'app{(p // 20 + 1) % 25}'"},
                                      "destination": {"ports": [80 + p % 7]}}]))
    graph = PolicyCalculation(LOCAL)
    start = time.monotonic()
    graph.on_updates(put(*resources))
    graph.on_in_sync()
    view = DataplaneView().apply(graph.take_messages())
    print(f"\n6,000 endpoints, 500 policies: {time.monotonic() - start:.1f}s to compute")
    assert len(view.workload_endpoints) == 1000 and len(view.policies) == 500 and len(view.ipsets) == 500
    assert all(len(members) == 12 for _typ, members in view.ipsets.values())
    pod0 = t.WorkloadEndpointID("k8s", "ns0/pod0", "eth0")
    pol = {p: t.PolicyID(f"pol{p}", f"ns{p % 20}", "NetworkPolicy") for p in (0, 20, 480)}
    assert view.workload_endpoints[pod0].tiers == (t.TierInfo("default", (pol[0],), (), "Deny"),)

    # pod0 goes from app0 to app1: it leaves pol480's source set (app0 in ns0) and joins
    # pol0's (app1 in ns0), and is now selected by pol20 instead of pol0.
    src = {p: view.policies[pol[p]].inbound_rules[0].src_ip_set_ids[0] for p in (0, 480)}
    start = time.monotonic()
    graph.on_updates(put(wep("pod0", ns="ns0", ips=[_ip(1)], labels={"app": "app1"})))
    msgs = graph.take_messages()
    print(f"one label change: {(time.monotonic() - start) * 1000:.1f} ms, {len(msgs)} messages")
    assert sorted(msgs, key=repr) == sorted([
        t.IPSetDeltaUpdate(src[480], frozenset(), frozenset({"10.0.0.1/32"})),
        t.IPSetDeltaUpdate(src[0], frozenset({"10.0.0.1/32"}), frozenset()),
        t.WorkloadEndpointUpdate(pod0, replace(view.workload_endpoints[pod0],
                                               tiers=(t.TierInfo("default", (pol[20],), (), "Deny"),))),
    ], key=repr)
