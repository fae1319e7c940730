"""Rules that match a Kubernetes Service: the ``svc:``/``svcnoport:`` IP sets filled from
the Service's EndpointSlices (Felix's serviceindex, and its wiring in the calculation).

The first four tests are Felix's serviceindex_test.go vectors; the rest follow the sets
through the calculation graph and the pipeline, as the syncer hands the slices over."""
from __future__ import annotations

import json
import logging

import pytest

from node.datastore.kubernetes.keys import KubeObject, native_key
from node.datastore.syncer import SyncStatus, Update, UpdateType
from node.felix import types as t
from node.felix.calc import DataplaneView, PolicyCalculation
from node.felix.calc.rule_scanner import IPSetData
from node.felix.calc.services import (EndpointSliceSummary, ServiceIndex, decode_endpoint_slice,
                                      summary_from_object)
from node.felix.pipeline import Pipeline, felix_sources
from node.felix.rules.names import ip_set_name
from node.selector import make_unique_id

from felix_calc_builders import LOCAL, np, ns_profile, put, tier, wep

SVC = IPSetData(service="default/svc1", service_include_ports=True)      # a destination rule's set
SVC_NOPORT = IPSetData(service="default/svc1")                           # a source rule's set


def endpoint_slice(name: str, addresses, ports=((80, "TCP"),), service: str = "svc1", ns: str = "default",
                   **extra) -> dict:
    """An EndpointSlice object; ``addresses`` holds one list of addresses per endpoint
    (or a plain address for a one-address endpoint)."""
    endpoints = [{"addresses": list(a) if isinstance(a, (list, tuple)) else [a]} for a in addresses]
    meta = {"name": name, "namespace": ns}
    if service is not None:
        meta["labels"] = {"kubernetes.io/service-name": service}
    obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"port": port, "protocol": proto} if proto else {"port": port} for port, proto in ports]}
    obj.update(extra)
    return obj


class Recorder:
    """Felix's testRecorder: the sets as the index's callbacks describe them."""

    def __init__(self):
        self.ipsets: dict[str, set[str]] = {}

    def added(self, set_id, member):
        members = self.ipsets.setdefault(set_id, set())
        assert member not in members, f"{member} added twice to {set_id}"
        members.add(member)

    def removed(self, set_id, member):
        members = self.ipsets[set_id]
        members.remove(member)
        if not members:
            del self.ipsets[set_id]


@pytest.fixture
def index():
    rec = Recorder()
    idx = ServiceIndex(rec.added, rec.removed)
    idx.rec = rec
    return idx


def update(idx, obj):
    idx.update_slice(summary_from_object(obj))


# -- Felix's vectors (serviceindex_test.go) ------------------------------------------------

def test_a_service_made_active_then_inactive(index):
    update(index, endpoint_slice("ep1", ["10.0.0.1"]))
    assert index.rec.ipsets == {}                  # no active set: nothing reported
    index.update_set(SVC)
    assert index.rec.ipsets == {SVC.id: {"10.0.0.1,tcp:80"}}
    index.remove_set(SVC.id)
    assert index.members(SVC.id) == frozenset()
    assert SVC.id not in index


def test_creation_and_deletion_of_an_endpoint_slice(index):
    index.update_set(SVC)
    index.update_set(SVC_NOPORT)
    assert index.rec.ipsets == {}
    update(index, endpoint_slice("ep1", ["10.0.0.1"]))
    assert index.rec.ipsets == {SVC.id: {"10.0.0.1,tcp:80"}, SVC_NOPORT.id: {"10.0.0.1/32"}}
    index.remove_slice("default/ep1")
    assert index.rec.ipsets == {}
    index.remove_slice("default/ep1")              # a second delete of an unknown slice is fine
    assert index.rec.ipsets == {}


def test_a_slice_with_several_ports_and_protocols(index):
    update(index, endpoint_slice("ep1", [["10.0.0.1", "10.0.0.2"]], ports=((80, "TCP"), (80, "UDP"), (80, "SCTP"))))
    assert index.rec.ipsets == {}
    index.update_set(SVC)
    assert index.rec.ipsets[SVC.id] == {f"10.0.0.{i},{p}:80" for i in (1, 2) for p in ("tcp", "udp", "sctp")}
    index.update_set(SVC_NOPORT)
    assert index.rec.ipsets[SVC_NOPORT.id] == {"10.0.0.1/32", "10.0.0.2/32"}
    index.remove_set(SVC.id)
    assert index.members(SVC.id) == frozenset() and len(index.members(SVC_NOPORT.id)) == 2


def test_transient_overlapping_endpoint_slices(index):
    """An endpoint moving between slices is counted once, and stays while either has it."""
    index.update_set(SVC)
    index.update_set(SVC_NOPORT)
    update(index, endpoint_slice("ep1", ["10.0.0.1", "10.0.0.2"]))
    assert len(index.rec.ipsets[SVC.id]) == 2 and len(index.rec.ipsets[SVC_NOPORT.id]) == 2
    update(index, endpoint_slice("ep2", ["10.0.0.1", "10.0.0.3"]))
    assert len(index.rec.ipsets[SVC.id]) == 3 and len(index.rec.ipsets[SVC_NOPORT.id]) == 3
    update(index, endpoint_slice("ep1", ["10.0.0.2"]))            # the move completes
    assert len(index.rec.ipsets[SVC.id]) == 3 and len(index.rec.ipsets[SVC_NOPORT.id]) == 3
    update(index, endpoint_slice("ep2", ["10.0.0.3"]))
    assert index.rec.ipsets == {SVC.id: {"10.0.0.2,tcp:80", "10.0.0.3,tcp:80"},
                                SVC_NOPORT.id: {"10.0.0.2/32", "10.0.0.3/32"}}


# -- which addresses and ports count ---------------------------------------------------------

def test_every_address_counts_whatever_its_conditions_and_family():
    obj = endpoint_slice("ep1", [], ports=((443, None), (None, "UDP"), (53, "UDP")))
    obj["endpoints"] = [
        {"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": False, "terminating": True}},
        {"addresses": ["fd00::0001"], "conditions": {"ready": True}},
        {"addresses": ["10.2.0.0/16"]},                 # a CIDR: the port-less set only
        {"addresses": ["backend.example.com"]},         # an FQDN slice's name: skipped
    ]
    s = summary_from_object(obj)
    assert s.nets == ("10.0.0.1/32", "fd00::1/128", "10.2.0.0/16")
    assert s.ips == ("10.0.0.1", "fd00::1")
    # A port without a number gives no member; no protocol means TCP.
    assert s.ports == ("tcp:443", "udp:53")
    rec = Recorder()
    idx = ServiceIndex(rec.added, rec.removed)
    idx.update_slice(s)
    idx.update_set(SVC)
    assert rec.ipsets[SVC.id] == {"10.0.0.1,tcp:443", "10.0.0.1,udp:53", "fd00::1,tcp:443", "fd00::1,udp:53"}


def test_bad_parts_of_a_slice_are_logged_with_its_name_and_field(caplog):
    obj = endpoint_slice("ep1", ["10.0.0.1"], ports=((80, "TCP"),))
    obj["ports"].append({"port": "http", "protocol": "TCP"})
    obj["endpoints"].append({"addresses": "10.0.0.9"})
    with caplog.at_level(logging.WARNING):
        s = summary_from_object(obj)
    assert s.ips == ("10.0.0.1",) and s.ports == ("tcp:80",)
    assert "EndpointSlice(default/ep1): ports[1].port: 'http' is not a port number" in caplog.text
    assert "EndpointSlice(default/ep1): endpoints[1].addresses is not a list" in caplog.text


def test_a_slice_without_the_service_label_or_moved_to_another_service(index):
    other = IPSetData(service="default/svc2")
    index.update_set(SVC_NOPORT)
    index.update_set(other)
    update(index, endpoint_slice("ep1", ["10.0.0.1"], service=None))
    assert index.rec.ipsets == {}
    update(index, endpoint_slice("ep1", ["10.0.0.1"]))
    assert index.rec.ipsets == {SVC_NOPORT.id: {"10.0.0.1/32"}}
    update(index, endpoint_slice("ep1", ["10.0.0.1"], service="svc2"))
    assert index.rec.ipsets == {other.id: {"10.0.0.1/32"}}
    # A slice of the same name in another namespace is another slice (and Service).
    update(index, endpoint_slice("ep1", ["10.0.0.7"], ns="other"))
    assert index.rec.ipsets == {other.id: {"10.0.0.1/32"}}


def test_the_syncer_decoder_gives_summaries_and_skips_other_keys():
    obj = endpoint_slice("ep1", ["10.0.0.1"])
    key = native_key("EndpointSlice", "default", "ep1")
    assert decode_endpoint_slice(key, json.dumps(obj).encode(), 3) == EndpointSliceSummary(
        "default", "ep1", "default/svc1", ("10.0.0.1/32",), ("10.0.0.1",), ("tcp:80",))
    assert decode_endpoint_slice(native_key("Service", "default", "svc1"), b"{}", 3) is None


def test_sources_follow_endpoint_slices_on_the_kubernetes_datastore_only():
    slices = native_key("EndpointSlice", "", "")
    assert slices in {s.prefix for s in felix_sources({"DATASTORE_TYPE": "kubernetes"})}
    assert slices in {s.prefix for s in felix_sources({"CALICO_DATASTORE_TYPE": "kubernetes"})}
    assert not [s for s in felix_sources({"DATASTORE_TYPE": "etcdv3"}) if s.prefix.startswith("/calico/kubernetes/")]
    # The datastore type as the agent's client settles it: Kubernetes unless etcd is named.
    assert slices in {s.prefix for s in felix_sources({"KUBECONFIG": "/x"})}
    assert slices in {s.prefix for s in felix_sources({})}
    assert slices not in {s.prefix for s in felix_sources({"ETCD_ENDPOINTS": "http://127.0.0.1:2379"})}


# -- through the calculation graph -------------------------------------------------------------

def slice_update(obj, kind=UpdateType.UPDATED, value="object") -> Update:
    meta = obj["metadata"]
    key = native_key("EndpointSlice", meta["namespace"], meta["name"])
    if value == "object":
        value = KubeObject("EndpointSlice", meta["namespace"], meta["name"], obj)
    elif value == "summary":
        value = summary_from_object(obj)
    return Update(kind, key, value, 1)


def slice_delete(ns, name) -> Update:
    return Update(UpdateType.DELETED, native_key("EndpointSlice", ns, name), None, 2)


KUBERNETES_SVC = make_unique_id("svc", "default/kubernetes")
KUBERNETES_SVC_NOPORT = make_unique_id("svcnoport", "default/kubernetes")


def service_policy(**spec):
    body = {"selector": "all()", "types": ["Egress", "Ingress"],
            "egress": [{"action": "Allow", "destination": {"services": {"name": "kubernetes",
                                                                        "namespace": "default"}}}],
            "ingress": [{"action": "Allow", "source": {"services": {"name": "kubernetes", "namespace": "default"}}}]}
    body.update(spec)
    return np("svc-pol", "ns1", **body)


def test_the_calculation_fills_the_rules_sets_from_slices_and_follows_them():
    graph = PolicyCalculation(LOCAL)
    view = DataplaneView()
    api = endpoint_slice("kubernetes", ["10.0.0.11", "10.0.0.12"], ports=((6443, "TCP"),), service="kubernetes")
    graph.on_updates(put(tier("default", 1000000), ns_profile("ns1"), wep("a")) + [slice_update(api)])
    graph.on_updates(put(service_policy()))
    graph.on_in_sync()
    view.apply(graph.take_messages())
    rules = view.policies[t.PolicyID("svc-pol", "ns1", "NetworkPolicy")]
    assert rules.outbound_rules[0].dst_ip_port_set_ids == (KUBERNETES_SVC,)
    assert rules.inbound_rules[0].src_ip_set_ids == (KUBERNETES_SVC_NOPORT,)
    assert view.ipsets[KUBERNETES_SVC] == (t.IPSetType.IP_AND_PORT,
                                           frozenset({"10.0.0.11,tcp:6443", "10.0.0.12,tcp:6443"}))
    assert view.ipsets[KUBERNETES_SVC_NOPORT] == (t.IPSetType.NET, frozenset({"10.0.0.11/32", "10.0.0.12/32"}))
    # One address goes, the port changes: only that slice's members move (as a delta).
    graph.on_updates([slice_update(dict(api, endpoints=[{"addresses": ["10.0.0.11"]}],
                                        ports=[{"port": 443, "protocol": "TCP"}]), value="summary")])
    msgs = graph.take_messages()
    assert [type(m) for m in msgs] == [t.IPSetDeltaUpdate, t.IPSetDeltaUpdate]
    view.apply(msgs)
    assert view.ipsets[KUBERNETES_SVC][1] == {"10.0.0.11,tcp:443"}
    assert view.ipsets[KUBERNETES_SVC_NOPORT][1] == {"10.0.0.11/32"}
    # The slice deleted (the agent's syncer gives no value), then back.
    graph.on_updates([slice_delete("default", "kubernetes")])
    view.apply(graph.take_messages())
    assert view.ipsets[KUBERNETES_SVC][1] == frozenset() and view.ipsets[KUBERNETES_SVC_NOPORT][1] == frozenset()
    graph.on_updates([slice_update(api)])
    view.apply(graph.take_messages())
    assert len(view.ipsets[KUBERNETES_SVC][1]) == 2
    # Slices of other Services, and Services themselves, change nothing.
    graph.on_updates([slice_update(endpoint_slice("dns", ["10.0.0.53"], service="kube-dns")),
                      Update(UpdateType.NEW, native_key("Service", "default", "kubernetes"),
                             KubeObject("Service", "default", "kubernetes", {}), 3)])
    assert graph.take_messages() == []
    # No rule names the Service any more: its sets go; back again, they come back full.
    graph.on_updates(put(service_policy(egress=[], ingress=[])))
    view.apply(graph.take_messages())
    assert KUBERNETES_SVC not in view.ipsets and KUBERNETES_SVC_NOPORT not in view.ipsets
    graph.on_updates(put(service_policy()))
    view.apply(graph.take_messages())
    assert view.ipsets[KUBERNETES_SVC][1] == {"10.0.0.11,tcp:6443", "10.0.0.12,tcp:6443"}


def test_service_sets_without_slices_stay_empty_quietly(caplog):
    """On etcd there are no EndpointSlices: Felix leaves the sets empty, and so does this."""
    graph = PolicyCalculation(LOCAL)
    with caplog.at_level(logging.WARNING):
        graph.on_updates(put(service_policy(), wep("a", profiles=[])))
        graph.on_in_sync()
        view = DataplaneView().apply(graph.take_messages())
    assert view.ipsets[KUBERNETES_SVC] == (t.IPSetType.IP_AND_PORT, frozenset())
    assert view.ipsets[KUBERNETES_SVC_NOPORT] == (t.IPSetType.NET, frozenset())
    assert "Service" not in caplog.text


# -- through the pipeline (what the agent programs) --------------------------------------------

def test_the_pipeline_programs_the_service_set_and_follows_the_slice():
    pipeline = Pipeline(LOCAL, {"FELIX_IPV6SUPPORT": "false"})
    api = endpoint_slice("kubernetes", ["10.0.0.11"], ports=((6443, "TCP"),), service="kubernetes")
    policy = np("to-api", "ns1", selector="all()", types=["Egress"],
                egress=[{"action": "Allow", "destination": {"services": {"name": "kubernetes",
                                                                        "namespace": "default"}}}])
    pipeline.on_updates(put(tier("default", 1000000), ns_profile("ns1"), wep("a"), policy) + [slice_update(api)])
    pipeline.on_status(SyncStatus.IN_SYNC)
    pipeline.complete()
    dp = pipeline.dataplanes[4]
    name = ip_set_name(KUBERNETES_SVC, 4)
    ipsets = dp.render_ipsets()
    assert f"create {name} hash:ip,port" in ipsets and f"add {name} 10.0.0.11,tcp:6443" in ipsets, ipsets
    assert f"--match-set {name} dst,dst" in dp.render_save()
    pipeline.on_updates([slice_update(dict(api, endpoints=[{"addresses": ["10.0.0.12"]}, {"addresses": ["fd00::5"]}]),
                                      value="summary")])
    pipeline.complete()
    ipsets = dp.render_ipsets()
    assert f"add {name} 10.0.0.12,tcp:6443" in ipsets and "10.0.0.11" not in ipsets, ipsets
    assert "fd00::5" not in ipsets                  # the IPv6 member belongs to the IPv6 set
    pipeline.on_updates([slice_delete("default", "kubernetes")])
    pipeline.complete()
    assert "10.0.0.12" not in dp.render_ipsets()
