"""The local BGP peer of each local workload endpoint (Felix's ActiveBGPPeerCalculator,
felix/calc/active_bpgpeer_calculator.go and its tests), through the whole calculation.

Every step is also checked against a fresh calculation over the same resources, so the
incremental result always equals the from-scratch one."""
from __future__ import annotations

import logging

import pytest

from node.datastore.syncer import Update, UpdateType
from node.felix import types as t
from node.felix.calc import DataplaneView, PolicyCalculation, calculate
from node.felix.calc.offline import resource_key
from node.model import Resource

from felix_calc_builders import (LOCAL, REMOTE, bgp_peer, delete, hep, node, ns_profile, profile, put, tier,
                                 wep)


class Calc:
    """One incremental calculation, its dataplane view, and the resources it was fed."""

    def __init__(self, *resources: Resource, hostname: str = LOCAL):
        self.hostname = hostname
        self.graph = PolicyCalculation(hostname)
        self.view = DataplaneView()
        self.state: dict = {}
        self.put(tier("default"), *resources)
        self.graph.on_in_sync()
        self._flush()

    def put(self, *resources: Resource) -> list:
        return self.batch([("put", res) for res in resources])

    def delete(self, *resources: Resource) -> list:
        return self.batch([("delete", res) for res in resources])

    def batch(self, ops: list[tuple[str, Resource]]) -> list:
        """Puts and deletes as one batch of syncer updates; the messages it produced."""
        updates = []
        for op, res in ops:
            if op == "put":
                self.state[resource_key(res)] = res
                updates += put(res)
            else:
                self.state.pop(resource_key(res), None)
                updates += delete(res)
        self.graph.on_updates(updates)
        return self._flush()

    def _flush(self) -> list:
        msgs = self.graph.take_messages()
        self.view.apply(msgs)
        if self.graph._in_sync:
            fresh = DataplaneView().apply(calculate(self.hostname, list(self.state.values())))
            assert self.view.snapshot() == fresh.snapshot()
        return msgs

    @property
    def peers(self) -> dict[str, str]:
        """Pod name -> its local BGP peer ("" for none), for every local workload."""
        return {k.workload.split("/", 1)[1]: ep.local_bgp_peer for k, ep in self.view.workload_endpoints.items()}

    @property
    def index_active(self) -> bool:
        """Whether the workload selector index exists (nothing else files selectors here)."""
        return self.graph._workload_selectors.active


def pod(name: str, i: int, **kw) -> Resource:
    return wep(name, ips=(f"10.65.0.{i}/32",), **kw)


def updated_pods(msgs: list) -> dict[str, str]:
    return {m.id.workload.split("/", 1)[1]: m.endpoint.local_bgp_peer for m in msgs
            if isinstance(m, t.WorkloadEndpointUpdate)}


# --------------------------------------------------------------------------------------
# Calico's own cases (active_bpgpeer_calculator_test.go), with this host as "my-host".

def colours(*extra: Resource) -> Calc:
    return Calc(ns_profile("ns1"), pod("w-red", 1, labels={"color": "red"}), pod("w-blue", 2, labels={"color": "blue"}),
                pod("w-yellow", 3, labels={"color": "yellow"}), pod("w-red-2", 4, labels={"color": "red"}),
                node(LOCAL, labels={"host": "my-host"}), *extra)


GLOBAL_RED = bgp_peer("global-peer-red", "color == 'red'")
MY_HOST_BLUE = bgp_peer("node-specific-peer-my-host-blue", "color == 'blue'", node_selector="host=='my-host'")
OTHER_HOST_YELLOW = bgp_peer("node-specific-peer-other-host-yellow", "color == 'yellow'",
                             node_selector="host=='other-host'")


def test_peer_without_local_workload_selector_picks_nothing():
    calc = colours(bgp_peer("global-peer-on-nothing"))
    assert set(calc.peers.values()) == {""}
    assert not calc.index_active


def test_calico_cases():
    calc = colours(GLOBAL_RED, MY_HOST_BLUE, OTHER_HOST_YELLOW)
    assert calc.peers == {"w-red": "global-peer-red", "w-red-2": "global-peer-red",
                          "w-blue": "node-specific-peer-my-host-blue", "w-yellow": ""}

    # BGP peer deletion.
    calc.delete(GLOBAL_RED)
    assert calc.peers == {"w-red": "", "w-red-2": "", "w-blue": "node-specific-peer-my-host-blue", "w-yellow": ""}
    calc.put(GLOBAL_RED)

    # Endpoint label update: w-red-2 turns blue.
    calc.put(pod("w-red-2", 4, labels={"color": "blue"}))
    assert calc.peers == {"w-red": "global-peer-red", "w-red-2": "node-specific-peer-my-host-blue",
                          "w-blue": "node-specific-peer-my-host-blue", "w-yellow": ""}

    # Endpoint deletion.
    calc.delete(pod("w-red-2", 4))
    assert calc.peers == {"w-red": "global-peer-red", "w-blue": "node-specific-peer-my-host-blue", "w-yellow": ""}
    assert calc.graph._bgp.peer_of.keys() == {k for k in calc.graph._local
                                              if k.workload in ("ns1/w-red", "ns1/w-blue")}


def test_calico_case_selectors_move():
    calc = colours(GLOBAL_RED, MY_HOST_BLUE, OTHER_HOST_YELLOW)
    calc.put(bgp_peer("global-peer-red", "color == 'blue'"))
    calc.put(bgp_peer("node-specific-peer-my-host-blue", "color == 'yellow'", node_selector="host=='my-host'"))
    assert calc.peers == {"w-red": "", "w-red-2": "", "w-blue": "global-peer-red",
                          "w-yellow": "node-specific-peer-my-host-blue"}


def test_calico_case_node_labels_change():
    calc = colours(GLOBAL_RED, MY_HOST_BLUE, OTHER_HOST_YELLOW)
    calc.put(node(LOCAL, labels={"host": "other-host"}))
    assert calc.peers == {"w-red": "global-peer-red", "w-red-2": "global-peer-red", "w-blue": "",
                          "w-yellow": "node-specific-peer-other-host-yellow"}


def test_calico_case_peer_naming_this_node():
    calc = colours(GLOBAL_RED, MY_HOST_BLUE, OTHER_HOST_YELLOW)
    calc.put(bgp_peer("node-specific-peer-my-host-yellow", "color == 'yellow'", node=LOCAL))
    assert calc.peers == {"w-red": "global-peer-red", "w-red-2": "global-peer-red",
                          "w-blue": "node-specific-peer-my-host-blue",
                          "w-yellow": "node-specific-peer-my-host-yellow"}


# --------------------------------------------------------------------------------------
# Which peers apply to this host.

def test_peer_by_node_name_and_peers_for_other_nodes_ignored():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}))
    assert calc.put(bgp_peer("other", "app == 'x'", node=REMOTE)) == []
    assert not calc.index_active
    calc.put(bgp_peer("mine", "app == 'x'", node=LOCAL))
    assert calc.peers == {"a": "mine"}
    # A deletion by key alone (as the syncer sends them).
    calc.graph.on_updates([Update(UpdateType.DELETED, resource_key(bgp_peer("mine")), None, 9)])
    calc.state.pop(resource_key(bgp_peer("mine")))
    calc._flush()
    assert calc.peers == {"a": ""}
    calc.put(bgp_peer("mine", "app == 'x'", node=LOCAL))
    assert calc.peers == {"a": "mine"}
    # The peer moves to another node: the endpoint loses it, and the index goes.
    calc.put(bgp_peer("mine", "app == 'x'", node=REMOTE))
    assert calc.peers == {"a": ""}
    assert not calc.index_active


def test_peer_by_node_selector_follows_the_nodes_labels():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), node(LOCAL, labels={"rack": "r1"}),
                bgp_peer("tor", "app == 'x'", node_selector="rack == 'r2'"))
    assert calc.peers == {"a": ""}
    assert not calc.index_active
    msgs = calc.put(node(LOCAL, labels={"rack": "r2"}))
    assert updated_pods(msgs) == {"a": "tor"}
    # Another node's labels do not matter.
    assert updated_pods(calc.put(node(REMOTE, labels={"rack": "r1"}))) == {}
    assert calc.peers == {"a": "tor"}
    calc.put(node(LOCAL, labels={"rack": "r1"}))
    assert calc.peers == {"a": ""}
    assert not calc.index_active
    calc.put(node(LOCAL, labels={"rack": "r2"}))
    # This host's Node deleted: as if it had no labels.
    calc.delete(node(LOCAL))
    assert calc.peers == {"a": ""}
    calc.put(bgp_peer("tor", "app == 'x'", node_selector="!has(rack)"))
    assert calc.peers == {"a": "tor"}


def test_peer_without_node_or_node_selector_applies_to_every_node():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), bgp_peer("global", "app == 'x'"))
    assert calc.peers == {"a": "global"}
    calc.put(node(LOCAL, labels={"rack": "r1"}))
    assert calc.peers == {"a": "global"}


# --------------------------------------------------------------------------------------
# Which endpoints a peer picks.

def test_profile_labels_are_inherited():
    calc = Calc(ns_profile("ns1", {"env": "prod"}), ns_profile("ns2", {"env": "dev"}),
                pod("a", 1), pod("b", 2, ns="ns2"), bgp_peer("prod-peer", "pcns.env == 'prod'"))
    assert calc.peers == {"a": "prod-peer", "b": ""}
    msgs = calc.put(ns_profile("ns2", {"env": "prod"}))
    assert updated_pods(msgs) == {"b": "prod-peer"}
    calc.put(ns_profile("ns1", {"env": "dev"}))
    assert calc.peers == {"a": "", "b": "prod-peer"}
    calc.delete(ns_profile("ns2"))
    assert calc.peers == {"a": "", "b": ""}
    # The endpoint's own labels win over its profiles', and an earlier profile's over a
    # later one's.
    calc.put(profile("p1", labels={"team": "blue"}), profile("p2", labels={"team": "red"}),
             pod("c", 3, profiles=["kns.ns1", "p1"]), pod("d", 4, profiles=["kns.ns1", "p2", "p1"]),
             bgp_peer("blue-peer", "team == 'blue'"))
    assert calc.peers == {"a": "", "b": "", "c": "blue-peer", "d": ""}
    calc.put(pod("c", 3, profiles=["kns.ns1", "p1"], labels={"team": "green"}),
             pod("d", 4, profiles=["kns.ns1", "p1", "p2"]))
    assert calc.peers == {"a": "", "b": "", "c": "", "d": "blue-peer"}


def test_the_index_is_built_from_what_is_already_there_and_dropped_with_the_last_peer():
    calc = Calc(profile("p1", labels={"team": "blue"}), ns_profile("ns1"),
                pod("a", 1, profiles=["kns.ns1", "p1"]), pod("b", 2, labels={"team": "blue"}), pod("c", 3))
    assert not calc.index_active
    calc.put(bgp_peer("blue", "team == 'blue'"))
    assert calc.index_active
    assert calc.peers == {"a": "blue", "b": "blue", "c": ""}
    calc.delete(bgp_peer("blue"))
    assert not calc.index_active and calc.graph._bgp.peer_of == {}
    assert calc.peers == {"a": "", "b": "", "c": ""}
    # Changes made while there was no index are picked up when it is built again.
    calc.put(profile("p1", labels={"team": "red"}), pod("c", 3, labels={"team": "blue"}))
    calc.put(bgp_peer("blue", "team == 'blue'"))
    assert calc.peers == {"a": "", "b": "blue", "c": "blue"}


def test_first_peer_by_name_wins_and_deleting_it_falls_to_the_next():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x", "tier": "1"}), pod("b", 2, labels={"app": "x"}))
    calc.put(bgp_peer("peer-m", "app == 'x'"))
    assert calc.peers == {"a": "peer-m", "b": "peer-m"}
    # A later name picking the same endpoints changes nothing.
    assert calc.put(bgp_peer("peer-z", "app == 'x'")) == []
    msgs = calc.put(bgp_peer("peer-a", "tier == '1'"))
    assert updated_pods(msgs) == {"a": "peer-a"}
    calc.delete(bgp_peer("peer-a"))
    assert calc.peers == {"a": "peer-m", "b": "peer-m"}
    calc.delete(bgp_peer("peer-m"))
    assert calc.peers == {"a": "peer-z", "b": "peer-z"}


def test_selector_changes_and_endpoint_label_changes():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), pod("b", 2, labels={"app": "y"}),
                bgp_peer("p", "app == 'x'"))
    assert calc.peers == {"a": "p", "b": ""}
    msgs = calc.put(bgp_peer("p", "app == 'y'"))
    assert updated_pods(msgs) == {"a": "", "b": "p"}
    calc.put(bgp_peer("p", "has(app)"))
    assert calc.peers == {"a": "p", "b": "p"}
    msgs = calc.put(pod("a", 1, labels={"role": "db"}))
    assert updated_pods(msgs) == {"a": ""}
    calc.put(pod("a", 1, labels={"app": "z"}))
    assert calc.peers == {"a": "p", "b": "p"}
    # An empty selector picks nothing.
    calc.put(bgp_peer("p", ""))
    assert calc.peers == {"a": "", "b": ""}
    assert not calc.index_active


def test_a_new_endpoint_gets_its_peer_in_its_first_message():
    calc = Calc(ns_profile("ns1"), bgp_peer("p", "app == 'x'"))
    msgs = calc.put(pod("a", 1, labels={"app": "x"}))
    assert updated_pods(msgs) == {"a": "p"}
    calc.delete(pod("a", 1))
    assert calc.graph._bgp.peer_of == {}
    assert calc.put(pod("a", 1, labels={"app": "x"}))[-1].endpoint.local_bgp_peer == "p"


def test_remote_and_host_endpoints_never_get_a_peer():
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), pod("r", 2, node=REMOTE, labels={"app": "x"}),
                hep("h", labels={"app": "x"}, ips=["10.0.0.5"]), bgp_peer("p", "app == 'x'"))
    assert calc.peers == {"a": "p"}
    assert len(calc.view.host_endpoints) == 1
    assert set(calc.graph._bgp.peer_of) == {k for k in calc.graph._local if getattr(k, "workload", "") == "ns1/a"}


# --------------------------------------------------------------------------------------
# Bad selectors.

def test_bad_selectors_are_logged_with_the_peers_name_and_skipped(caplog):
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), pod("b", 2, labels={"app": "y"}),
                node(LOCAL, labels={"rack": "r1"}), bgp_peer("good", "app == 'x'"))
    with caplog.at_level(logging.ERROR):
        msgs = calc.put(bgp_peer("bad-workloads", "app == ", node=LOCAL),
                        bgp_peer("aaa-bad-nodes", "app == 'y'", node_selector="rack =="))
    assert msgs == []
    assert calc.peers == {"a": "good", "b": ""}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("BGPPeer bad-workloads" in e and "localWorkloadSelector" in e for e in errors)
    assert any("BGPPeer aaa-bad-nodes" in e and "nodeSelector" in e for e in errors)
    # Fixed, each starts picking endpoints.
    calc.put(bgp_peer("bad-workloads", "app == 'y'", node=LOCAL))
    assert calc.peers == {"a": "good", "b": "bad-workloads"}
    calc.put(bgp_peer("aaa-bad-nodes", "app == 'y'", node_selector="rack == 'r1'"))
    assert calc.peers == {"a": "good", "b": "aaa-bad-nodes"}
    # Broken again: the peer's matches go, the others stay.
    with caplog.at_level(logging.ERROR):
        calc.put(bgp_peer("aaa-bad-nodes", "app == 'y'", node_selector="rack in"))
    assert calc.peers == {"a": "good", "b": "bad-workloads"}


@pytest.mark.parametrize("spec,field", [
    ({"localWorkloadSelector": 5}, "localWorkloadSelector"), ({"nodeSelector": ["x"]}, "nodeSelector"),
    ({"node": 7}, "node"), ({"peerIP": "bogus"}, "peerIP"),
    ({"node": LOCAL, "nodeSelector": "all()"}, "nodeSelector"),
    # Calico's rules for a local-workload peer: its own AS number, no peerIP or peerSelector.
    ({"asNumber": None}, "asNumber"), ({"peerIP": "10.0.0.9"}, "peerIP"),
    ({"peerSelector": "all()", "asNumber": None}, "peerSelector")])
def test_invalid_peers_are_logged_and_pick_nothing(caplog, spec, field):
    """As Felix's validation filter: a BGPPeer Calico's validation refuses counts as missing."""
    calc = Calc(ns_profile("ns1"), pod("a", 1, labels={"app": "x"}), bgp_peer("good", "app == 'x'"))
    with caplog.at_level(logging.ERROR):
        calc.put(bgp_peer("aaa-odd", "app == 'x'", **spec))
    assert calc.peers == {"a": "good"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("BGPPeer aaa-odd" in e and f"spec.{field}" in e for e in errors), errors
    # Fixed, it takes over.
    calc.put(bgp_peer("aaa-odd", "app == 'x'"))
    assert calc.peers == {"a": "aaa-odd"}


# --------------------------------------------------------------------------------------
# Cost: nothing without peers; an update re-sends only the endpoints whose peer changed.

def test_only_endpoints_whose_peer_changes_are_sent_again():
    pods = [pod(f"p{i}", i + 1, labels={"app": f"a{i % 5}"}) for i in range(50)]
    calc = Calc(ns_profile("ns1"), *pods)
    assert not calc.index_active
    msgs = calc.put(bgp_peer("p", "app == 'a3'"))
    assert updated_pods(msgs) == {f"p{i}": "p" for i in range(3, 50, 5)}
    msgs = calc.put(pod("p0", 1, labels={"app": "a3"}))
    assert updated_pods(msgs) == {"p0": "p"}
    # A label change that moves no peer changes no message.
    assert calc.put(pod("p8", 9, labels={"app": "a3", "extra": "1"})) == []


def test_bgp_peer_is_a_kind_the_agent_follows(tmp_path):
    from node.felix.dryrun import load_files
    from node.felix.pipeline import FELIX_KINDS, felix_sources
    from node.model import etcd_prefix

    assert "BGPPeer" in FELIX_KINDS
    assert etcd_prefix("BGPPeer", "") in {s.prefix for s in felix_sources()}
    path = tmp_path / "peer.yaml"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\n"
                    "spec: {asNumber: 64512, localWorkloadSelector: \"app == 'x'\"}\n")
    resources, problems = load_files([str(path)])
    assert problems == []
    assert [r.identifier() for r in resources if r.kind == "BGPPeer"] == ["BGPPeer(tor)"]


# --------------------------------------------------------------------------------------
# Incremental = from scratch = brute force, over random peer, node, profile and endpoint
# changes (the general property test in test_felix_calc_properties.py mixes these with
# everything else; this one keeps them dense).

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from test_felix_calc_properties import labels_st, reference  # noqa: E402

_PEER_SELECTORS = ["all()", "has(app)", "app in {'a', 'b'}", "role == 'x' || team == 'red'", "pcns.env == 'prod'",
                   "!has(team)", "", "has(nope"]
_NODE_SELECTORS = ["", "rack == 'r1'", "!has(rack)", "rack =="]


@st.composite
def _peer_world_st(draw):
    which = draw(st.sampled_from(["wep", "wep", "peer", "peer", "node", "profile"]))
    if which == "wep":
        i = draw(st.integers(0, 3))
        return pod(f"w{i}", i + 1, node=draw(st.sampled_from([LOCAL, LOCAL, REMOTE])), labels=draw(labels_st),
                   profiles=["kns.ns1"] + draw(st.lists(st.sampled_from(["p1", "p2"]), unique=True, max_size=2)))
    if which == "peer":
        where = draw(st.sampled_from(["all", "node", "selector"]))
        return bgp_peer(draw(st.sampled_from(["bp0", "bp1", "bp2", "bp3"])), draw(st.sampled_from(_PEER_SELECTORS)),
                        node=draw(st.sampled_from([LOCAL, LOCAL, REMOTE])) if where == "node" else "",
                        node_selector=draw(st.sampled_from(_NODE_SELECTORS)) if where == "selector" else None)
    if which == "node":
        return node(LOCAL, labels=draw(st.dictionaries(st.just("rack"), st.sampled_from(["r1", "r2"]), max_size=1)))
    if draw(st.booleans()):
        return ns_profile("ns1", {"env": draw(st.sampled_from(["prod", "dev"]))})
    return profile(draw(st.sampled_from(["p1", "p2"])), labels=draw(labels_st))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(st.tuples(st.sampled_from(["put", "put", "put", "delete"]), _peer_world_st()),
                                 min_size=1, max_size=5), min_size=1, max_size=8))
def test_incremental_peers_equal_from_scratch_and_brute_force(batches):
    logging.disable(logging.ERROR)  # (bad selectors are drawn on purpose)
    try:
        calc = Calc()
        for batch in batches:
            calc.batch(batch)  # (checked against a fresh calculation too)
            assert calc.view.snapshot() == reference(LOCAL, list(calc.state.values()))
        if not any(e.local_bgp_peer for e in calc.view.workload_endpoints.values()):
            assert calc.graph._bgp.peer_of == {}
    finally:
        logging.disable(logging.NOTSET)
