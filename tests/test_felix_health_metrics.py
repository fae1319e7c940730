"""The policy agent's Prometheus metrics: Felix's names, types and labels, and /metrics."""
from __future__ import annotations

import gzip
import http.client
import math
import socket
import threading

import io
import logging
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from node.felix import types as t
from node.felix.calc.members import EndpointData, IPSetMemberIndex
from node.felix.calc.rule_scanner import IPSetData
from node.felix.config import FelixConfig
from node.felix.dataplane.interfaces import Interface, interface_changes
import felix_calc_builders as builders
from node.felix.calc import PolicyCalculation
from node.felix.calc.stats import CalcStats, message_type, update_key_type
from node.model import Resource
from node.felix.metrics import (
    FelixMetrics,
    QuantileSummary,
    _go_float,
    metrics_server,
    start_metrics_server,
)
from node.selector import parse as parse_selector

# Felix v3.32.1's families: name -> (type, label names) as its Go source declares them.
FELIX_FAMILIES = {
    "felix_active_local_endpoints": ("gauge", ()),
    "felix_active_local_policies": ("gauge", ()),
    "felix_active_local_selectors": ("gauge", ()),
    "felix_cluster_num_hosts": ("gauge", ()),
    "felix_cluster_num_workload_endpoints": ("gauge", ()),
    "felix_cluster_num_host_endpoints": ("gauge", ()),
    "felix_cluster_num_policies": ("gauge", ()),
    "felix_cluster_num_profiles": ("gauge", ()),
    "felix_cluster_num_tiers": ("gauge", ()),
    "felix_resync_state": ("gauge", ()),
    "felix_resyncs_started": ("counter", ()),
    "felix_calc_graph_update_time_seconds": ("summary", ()),
    "felix_calc_graph_updates_processed": ("counter", ("type",)),
    "felix_calc_graph_output_events": ("counter", ()),
    "felix_int_dataplane_apply_time_seconds": ("summary", ()),
    "felix_int_dataplane_failures": ("counter", ()),
    "felix_int_dataplane_messages": ("counter", ("type",)),
    "felix_int_dataplane_initial_resync_time_seconds": ("gauge", ()),
    "felix_int_dataplane_msg_batch_size": ("summary", ()),
    "felix_iptables_restore_calls": ("counter", ()),
    "felix_iptables_restore_errors": ("counter", ()),
    "felix_iptables_save_calls": ("counter", ()),
    "felix_iptables_save_errors": ("counter", ()),
    "felix_iptables_chains": ("gauge", ("ip_version", "table")),
    "felix_iptables_rules": ("gauge", ("ip_version", "table")),
    "felix_iptables_lines_executed": ("counter", ("ip_version", "table")),
    "felix_ipset_calls": ("counter", ()),
    "felix_ipset_errors": ("counter", ()),
    "felix_ipset_lines_executed": ("counter", ()),
    "felix_ipsets_calico": ("gauge", ("ip_version",)),
    "felix_ipsets_total": ("gauge", ()),
    "felix_route_table_num_routes": ("gauge", ("table",)),
    "felix_route_table_resync_seconds": ("summary", ()),
    "felix_route_table_num_ifaces": ("gauge", ("table",)),
    "felix_route_table_conntrack_wait_seconds": ("summary", ()),
    "felix_exec_time_micros": ("summary", ()),
    "felix_host": ("gauge", ("host",)),
    "felix_int_dataplane_iface_msg_batch_size": ("summary", ()),
    "felix_int_dataplane_addr_msg_batch_size": ("summary", ()),
    "felix_label_index_num_endpoints": ("gauge", ()),
    "felix_label_index_selector_evals": ("counter", ("result",)),
    "felix_label_index_num_active_selectors": ("gauge", ("optimized",)),
    "felix_label_index_strategy_evals": ("counter", ("strategy",)),
    "felix_logs_dropped": ("counter", ()),
    "felix_log_errors": ("counter", ()),
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def member_index(*selectors: str) -> IPSetMemberIndex:
    """An IP set member index with two endpoints and a set for each selector."""
    index = IPSetMemberIndex(lambda *_: None, lambda *_: None)
    index.update_endpoint("a", {"app": "a"}.items(), (), EndpointData(("10.0.0.1/32",)))
    index.update_endpoint("b", {"app": "b", "tier": "db"}.items(), (), EndpointData(("10.0.0.2/32",)))
    for text in selectors:
        index.update_set(IPSetData(selector=parse_selector(text)))
    return index


def exercised(clock=None) -> FelixMetrics:
    """Metrics with every labelled family given a child, as a running agent would."""
    m = FelixMetrics("node-1", clock=clock or FakeClock())
    m.watch(member_index("app == 'a'"), {"lo": Interface("lo", 1, True, frozenset({"127.0.0.1"}))},
            logging.getLogger("test-exercised"))
    m.observe_calc_updates(0.002, {"WorkloadEndpointKey": 1})
    m.count_messages([t.InSync()])
    m.set_iptables_table(4, "filter", chains=12, rules=80)
    m.count_iptables_lines(4, "filter", 92)
    m.set_ipsets(4, 3)
    m.set_routes(4, 0, 5)
    m.set_route_ifaces(4, 0, 3)
    return m


def parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def family_lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines()
            if line.split("{")[0].split(" ")[0] in (name, f"{name}_sum", f"{name}_count")
            or line.startswith((f"# HELP {name} ", f"# TYPE {name} "))]


def test_every_felix_family_with_felix_type_and_labels():
    text = exercised().exposition().decode()
    families = parse(text)
    for name, (typ, labels) in FELIX_FAMILIES.items():
        assert name in families, name
        assert families[name].type == typ, name
        for sample in families[name].samples:
            assert set(sample.labels) - {"quantile"} == set(labels), (name, sample)
        # Felix's Go client names counters without a _total suffix.
        assert f"# TYPE {name} {typ}" in text.splitlines(), name


def test_help_texts_are_felixs():
    families = parse(exercised().exposition().decode())
    assert families["felix_resyncs_started"].documentation == "Current datastore state."
    assert families["felix_int_dataplane_messages"].documentation == "Number dataplane messages by type."
    assert families["felix_int_dataplane_apply_time_seconds"].documentation == (
        "Time in seconds for each incremental update to the dataplane (after the initial resync).")
    assert families["felix_route_table_conntrack_wait_seconds"].documentation == (
        "Time waiting for conntrack cleanups to finish.")
    assert families["felix_host"].documentation.startswith("Configured Felix hostname (as a label)")


def test_counter_lines_are_go_style():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    m.count_ipset_call(lines=7)
    m.count_ipset_call(failed=True, lines=2)
    text = m.exposition().decode()
    assert family_lines(text, "felix_ipset_calls") == [
        "# HELP felix_ipset_calls Number of ipset commands executed.",
        "# TYPE felix_ipset_calls counter",
        "felix_ipset_calls 2",
    ]
    assert "felix_ipset_errors 1" in text.splitlines()
    assert "felix_ipset_lines_executed 9" in text.splitlines()
    assert "_created" not in text
    assert {line.split()[0] for line in text.splitlines() if line.split()[0].endswith("_total")} == {
        "felix_ipsets_total"}  # a gauge whose Felix name ends so


def test_labelled_families_appear_with_their_first_child():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    assert "felix_iptables_chains" not in m.exposition().decode()  # as in Go: no child, no family
    m.set_iptables_table(6, "raw", chains=3, rules=4)
    m.set_iptables_table(4, "filter", chains=10, rules=40)
    m.count_iptables_lines(4, "filter", 5)
    m.count_iptables_lines(4, "filter", 6)
    m.set_ipsets(6, 2)
    m.set_routes(6, 254, 8)
    m.set_route_ifaces(6, 0, 4)
    lines = m.exposition().decode().splitlines()
    chains = [l for l in lines if l.startswith("felix_iptables_chains{")]
    assert chains == ['felix_iptables_chains{ip_version="4",table="filter"} 10',
                      'felix_iptables_chains{ip_version="6",table="raw"} 3']
    assert 'felix_iptables_lines_executed{ip_version="4",table="filter"} 11' in lines
    assert 'felix_ipsets_calico{ip_version="inet6"} 2' in lines
    assert 'felix_route_table_num_routes{table="IPv6:254"} 8' in lines
    assert 'felix_route_table_num_ifaces{table="IPv6:254"} 4' in lines
    assert 'felix_host{host="h"} 1' in lines


def test_families_are_sorted_by_name():
    text = exercised().exposition().decode()
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert names == sorted(names)


def test_sync_status_and_resyncs():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    for status in ("wait-for-ready", "resync", "in-sync", "resync", "in-sync"):
        m.set_sync_status(status)
    families = parse(m.exposition().decode())
    assert families["felix_resync_state"].samples[0].value == 3
    assert families["felix_resyncs_started"].samples[0].value == 2
    from node.datastore.syncer import SyncStatus
    m.set_sync_status(SyncStatus.WAIT_FOR_DATASTORE)
    assert parse(m.exposition().decode())["felix_resync_state"].samples[0].value == 1


def test_calc_stats_set_their_gauges():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    m.set_calc_stats(CalcStats(active_endpoints=4, active_policies=2, active_selectors=9, hosts=3,
                               workload_endpoints=30, host_endpoints=1, tiers=2, policies=7, profiles=5))
    m.set_calc_stats(CalcStats(4, 3, 9, 3, 30, 1, 2, 7, 5))
    m.set_ipsets_total(11)
    values = {f.name: f.samples[0].value for f in parse(m.exposition().decode()).values()
              if f.type == "gauge" and f.samples}
    assert values["felix_active_local_endpoints"] == 4
    assert values["felix_active_local_policies"] == 3
    assert values["felix_active_local_selectors"] == 9
    assert values["felix_cluster_num_hosts"] == 3
    assert values["felix_cluster_num_workload_endpoints"] == 30
    assert values["felix_cluster_num_host_endpoints"] == 1
    assert values["felix_cluster_num_policies"] == 7
    assert values["felix_cluster_num_profiles"] == 5
    assert values["felix_cluster_num_tiers"] == 2
    assert values["felix_ipsets_total"] == 11


def test_first_apply_is_the_initial_resync_and_stays_out_of_the_summary():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False, clock=FakeClock())
    m.observe_apply(4.0)
    m.observe_apply(0.1)
    m.observe_apply(0.3)
    m.count_apply_failure()
    families = parse(m.exposition().decode())
    assert families["felix_int_dataplane_initial_resync_time_seconds"].samples[0].value == 4.0
    summary = {(s.name, s.labels.get("quantile")): s.value
               for s in families["felix_int_dataplane_apply_time_seconds"].samples}
    assert summary[("felix_int_dataplane_apply_time_seconds_count", None)] == 2
    assert summary[("felix_int_dataplane_apply_time_seconds_sum", None)] == pytest.approx(0.4)
    assert summary[("felix_int_dataplane_apply_time_seconds", "0.5")] == 0.1
    assert summary[("felix_int_dataplane_apply_time_seconds", "0.99")] == 0.3
    assert families["felix_int_dataplane_failures"].samples[0].value == 1


def test_exec_time_is_in_microseconds_and_batches_are_summarised():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False, clock=FakeClock())
    m.observe_exec(0.0025)
    m.observe_batch(3)
    m.observe_route_resync(0.5)
    m.observe_conntrack_wait(0.0)
    m.observe_conntrack_wait(0.25)
    m.count_messages([t.IPSetRemove("s:a"), t.IPSetRemove("s:b"), t.InSync(), t.RouteRemove("10.0.0.0/26")])
    m.count_iptables_restore()
    m.count_iptables_restore(failed=True)
    m.count_iptables_save(failed=True)
    lines = m.exposition().decode().splitlines()
    assert "felix_exec_time_micros_sum 2500" in lines
    assert 'felix_int_dataplane_msg_batch_size{quantile="0.5"} 3' in lines
    assert "felix_route_table_resync_seconds_count 1" in lines
    assert "felix_route_table_conntrack_wait_seconds_count 2" in lines
    assert "felix_route_table_conntrack_wait_seconds_sum 0.25" in lines
    assert "felix_calc_graph_output_events 4" in lines
    assert 'felix_int_dataplane_messages{type="IPSetRemove"} 2' in lines
    assert "felix_iptables_restore_calls 2" in lines
    assert "felix_iptables_restore_errors 1" in lines
    assert "felix_iptables_save_calls 1" in lines
    assert "felix_iptables_save_errors 1" in lines
    assert 'felix_calc_graph_updates_processed{type="WorkloadEndpointKey"} 1' in \
        exercised().exposition().decode().splitlines()


def samples(m: FelixMetrics, name: str) -> dict:
    """One family's samples as {sorted label items: value} ({(): value} when unlabelled)."""
    family = parse(m.exposition().decode())[name]  # (the parser names counters' samples _total)
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name in (name, name + "_total")}


def summary_count(m: FelixMetrics, name: str) -> tuple[float, float]:
    """A summary's (_count, _sum)."""
    family = parse(m.exposition().decode())[name]
    values = {s.name: s.value for s in family.samples}
    return values[name + "_count"], values[name + "_sum"]


def test_label_index_families_before_an_index_is_watched_are_felixs_start():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    assert samples(m, "felix_label_index_num_endpoints") == {(): 0}
    assert samples(m, "felix_label_index_num_active_selectors") == {
        (("optimized", "false"),): 0, (("optimized", "true"),): 0}
    # Felix makes both results' children up front; strategies appear with their first scan.
    assert samples(m, "felix_label_index_selector_evals") == {(("result", "false"),): 0, (("result", "true"),): 0}
    assert "felix_label_index_strategy_evals" not in m.exposition().decode()


def test_label_index_families_follow_the_ip_set_member_index():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    # The index worked before the metrics started (the start-of-day sets): that counts.
    index = member_index("app == 'a'", "tier == 'db' && app != 'x'")
    m.watch_label_index(index)
    assert samples(m, "felix_label_index_num_endpoints") == {(): 2}
    assert samples(m, "felix_label_index_num_active_selectors") == {
        (("optimized", "false"),): 0, (("optimized", "true"),): 2}
    assert samples(m, "felix_label_index_strategy_evals") == {(("strategy", "endpoint-single-value"),): 2}
    # "app == 'a'" is answered by the index alone; the second evaluates its one candidate.
    assert samples(m, "felix_label_index_selector_evals") == {(("result", "false"),): 0, (("result", "true"),): 1}

    # A network set joins the index; selectors it cannot narrow scan every endpoint.
    index.update_endpoint(("netset", "n"), {"role": "ext"}.items(), (), EndpointData(("192.0.2.0/24",)))
    index.update_set(IPSetData(selector=parse_selector("all()")))
    index.update_set(IPSetData(selector=parse_selector("app != 'a'")))
    index.update_set(IPSetData(selector=parse_selector("app in {'a', 'b'} && tier != 'web'")))
    index.update_set(IPSetData(selector=parse_selector("has(role)")))
    index.update_set(IPSetData(selector=parse_selector("app == 'nothing'")))
    index.update_set(IPSetData(selector=parse_selector("app == 'a'")))  # known: no scan
    assert samples(m, "felix_label_index_num_endpoints") == {(): 3}
    assert samples(m, "felix_label_index_num_active_selectors") == {
        (("optimized", "false"),): 2, (("optimized", "true"),): 5}
    assert samples(m, "felix_label_index_strategy_evals") == {
        (("strategy", "endpoint-full-scan"),): 2, (("strategy", "endpoint-label-name"),): 1,
        (("strategy", "endpoint-multi-value"),): 1, (("strategy", "endpoint-no-match"),): 1,
        (("strategy", "endpoint-single-value"),): 2}
    # all(): 3 true; app != 'a': 2 true, 1 false; the multi-value one: 2 true.
    assert samples(m, "felix_label_index_selector_evals") == {(("result", "false"),): 1, (("result", "true"),): 8}

    index.remove_endpoint("b")
    index.remove_set(IPSetData(selector=parse_selector("all()")).id)
    assert samples(m, "felix_label_index_num_endpoints") == {(): 2}
    assert samples(m, "felix_label_index_num_active_selectors") == {
        (("optimized", "false"),): 1, (("optimized", "true"),): 5}
    assert 'felix_label_index_selector_evals{result="true"} 8' in m.exposition().decode().splitlines()


def iface(name: str, index: int, up: bool = True, *addrs: str) -> Interface:
    return Interface(name, index, up, frozenset(addrs))


def test_interface_changes_count_felixs_notifications():
    eth0 = iface("eth0", 2, True, "192.0.2.10")
    start = {"lo": iface("lo", 1, True, "127.0.0.1"), "eth0": eth0, "kube-ipvs0": iface("kube-ipvs0", 3, False)}
    excluded = (re.compile("^kube-ipvs0$"),)
    # Start of day: every interface appears; the excluded one gets no address notification.
    assert interface_changes(None, start, excluded) == (3, 2)
    assert interface_changes(start, dict(start), excluded) == (0, 0)
    veth = {**start, "cali1": iface("cali1", 7, False)}
    assert interface_changes(start, veth, excluded) == (1, 1)  # a veth appears, down
    up = {**veth, "cali1": iface("cali1", 7, True, "fe80::1")}
    assert interface_changes(veth, up, excluded) == (1, 1)  # up, and its link-local address
    assert interface_changes(up, {**up, "kube-ipvs0": iface("kube-ipvs0", 3, False, "10.96.0.1")},
                             excluded) == (0, 0)  # addresses of an excluded interface
    recreated = {**start, "cali1": iface("cali1", 9, True)}  # a new pod's veth, same name
    assert interface_changes(up, recreated, excluded) == (2, 2)
    renamed = {**start, "cali2": iface("cali2", 9, True)}  # same index, new name
    assert interface_changes(recreated, renamed, excluded) == (2, 2)
    assert interface_changes(renamed, start, excluded) == (1, 1)  # gone


def test_interface_batches_are_observed_per_inbox_batch():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False, clock=FakeClock(),
                     interface_excludes=(re.compile("^kube-ipvs0$"),))
    start = {"lo": iface("lo", 1, True, "127.0.0.1"), "eth0": iface("eth0", 2, True, "192.0.2.10")}
    m.watch(None, start, logging.getLogger("test-batches"))  # the start-of-day batch
    assert summary_count(m, "felix_int_dataplane_iface_msg_batch_size") == (1, 2)
    assert summary_count(m, "felix_int_dataplane_addr_msg_batch_size") == (1, 2)
    # Two pictures in one batch: a veth appears, then comes up with an address.
    veth = {**start, "cali1": iface("cali1", 7, False)}
    m.note_interfaces(veth)
    m.note_interfaces({**veth, "cali1": iface("cali1", 7, True, "fe80::1")})
    m.end_interface_batch()
    assert summary_count(m, "felix_int_dataplane_iface_msg_batch_size") == (2, 4)
    assert summary_count(m, "felix_int_dataplane_addr_msg_batch_size") == (2, 4)
    # A batch without interface changes observes nothing; one with only a state change
    # observes only the state summary.
    m.end_interface_batch()
    m.note_interfaces({**veth, "cali1": iface("cali1", 7, False, "fe80::1")})
    m.end_interface_batch()
    assert summary_count(m, "felix_int_dataplane_iface_msg_batch_size") == (3, 5)
    assert summary_count(m, "felix_int_dataplane_addr_msg_batch_size") == (2, 4)
    assert 'felix_int_dataplane_iface_msg_batch_size{quantile="0.99"} 2' in m.exposition().decode().splitlines()


# -- the calculation's and the dataplane's families, fed by the agent -----------------------

def test_update_key_types_are_felixs_model_key_types():
    """The ``type`` label of felix_calc_graph_updates_processed: the model key type
    libcalico-go's felix syncer gives each update, deletions by key alone included."""
    from node.datastore.kubernetes.keys import native_key
    from node.datastore.syncer import Update, UpdateType
    from node.felix.calc.routes import IPAMBlock
    from node.felix.calc.services import EndpointSliceSummary
    from node.model import ipam as ipam_records

    def key_type(res, deleted=False):
        (update,) = (builders.delete if deleted else builders.put)(res)
        if deleted:
            update = Update(UpdateType.DELETED, update.key, None, 2)  # (the agent's syncer keeps no values)
        return update_key_type(update)

    assert key_type(builders.wep("a")) == key_type(builders.wep("a"), deleted=True) == "WorkloadEndpointKey"
    assert key_type(builders.hep("h")) == "HostEndpointKey"
    for res in (builders.gnp("g"), builders.np("n"),
                Resource("StagedNetworkPolicy", {"name": "s", "namespace": "a"}, {}),
                Resource("KubernetesNetworkPolicy", {"name": "k", "namespace": "a"}, {})):
        assert key_type(res) == key_type(res, deleted=True) == "PolicyKey", res.kind
    assert key_type(builders.tier("t")) == "TierKey"
    assert key_type(builders.netset("n", "a", ["10.0.0.0/8"])) == key_type(builders.gnetset("g", [])) == "NetworkSetKey"
    assert key_type(builders.pool("p", "10.65.0.0/16")) == "IPPoolKey"
    assert key_type(builders.felix_config("default")) == "GlobalConfigKey"
    assert key_type(builders.felix_config("node.node1"), deleted=True) == "HostConfigKey"
    assert key_type(builders.felix_config("gpu-nodes")) == "ResourceKey"  # selector-scoped: whole
    assert key_type(Resource("ClusterInformation", {"name": "default"}, {})) == "GlobalConfigKey"
    for res in (builders.node("n1"), builders.profile("p"), builders.bgp_peer("b"),
                builders.live_migration("m"), Resource("BGPConfiguration", {"name": "default"}, {})):
        assert key_type(res) == key_type(res, deleted=True) == "ResourceKey", res.kind
    block = ipam_records.block_key("10.65.0.0/26")
    assert update_key_type(Update(UpdateType.NEW, block, IPAMBlock("10.65.0.0/26", "n1"), 1)) == "BlockKey"
    assert update_key_type(Update(UpdateType.DELETED, block, None, 2)) == "BlockKey"
    slice_key = native_key("EndpointSlice", "a", "s")
    assert update_key_type(Update(UpdateType.NEW, slice_key, EndpointSliceSummary("a", "s", "a/svc"), 1)) == \
        update_key_type(Update(UpdateType.DELETED, slice_key, None, 2)) == "ResourceKey"


def test_message_types_are_felixs_protobuf_names():
    assert message_type(t.RouteUpdateMsg(t.RouteUpdate("10.65.0.0/26"))) == "RouteUpdate"
    assert message_type(t.HostMetadataUpdate(t.HostMetadata("n1", "192.0.2.1"))) == "HostMetadataV4V6Update"
    assert message_type(t.HostMetadataRemove("n1")) == "HostMetadataV4V6Remove"
    assert message_type(t.InSync()) == "InSync"
    removal = t.WorkloadEndpointRemove(t.WorkloadEndpointID("k8s", "a/b", "eth0"))
    assert message_type(removal) == "WorkloadEndpointRemove"


def test_calculation_stats_follow_felixs_counting():
    """felix_active_local_* (policy resolver, calc graph) and felix_cluster_num_* (stats
    collector) from the calculation's own state, as keys come, go and move."""
    calc = PolicyCalculation(builders.LOCAL)

    def apply(updates) -> CalcStats:
        calc.on_updates(updates)
        return calc.stats()

    policy = builders.np("b-from-a", selector="app == 'b'", types=["Ingress"],
                         ingress=[{"action": "Allow", "source": {"selector": "app == 'a'"}},
                                  {"action": "Allow", "source": {"selector": "app == 'z'", "nets": ["10.9.0.0/16"]}}])
    unused = builders.gnp("unused", selector="app == 'nothing'",
                          ingress=[{"action": "Allow", "source": {"selector": "role == 'x'"}}])
    stats = apply(builders.put(
        builders.tier("default"), builders.ns_profile("ns1"), builders.profile("other"), policy, unused,
        builders.node(builders.LOCAL, "192.0.2.1"), builders.node(builders.REMOTE, "192.0.2.2"),
        builders.node("node3"),  # no address and no tunnel: no key names its host
        builders.wep("a", labels={"app": "a"}), builders.wep("b", labels={"app": "b"}, ips=("10.65.0.2/32",)),
        builders.wep("c", node=builders.REMOTE, labels={"app": "b"}, ips=("10.65.1.1/32",)),
        builders.hep("remote-eth0", node="node4", iface="eth0")))
    assert stats == CalcStats(active_endpoints=2, active_policies=1, active_selectors=2, hosts=3,
                              workload_endpoints=3, host_endpoints=1, tiers=1, policies=2, profiles=2)
    # A tunnel address gives node3 a HostConfigKey; a node.<host> FelixConfiguration with a
    # field set names its host too; one with nothing set does not.
    stats = apply(builders.put(builders.node("node3", ipv4VXLANTunnelAddr="10.65.2.0"),
                               builders.felix_config("node.node5", logSeverityScreen="Debug"),
                               builders.felix_config("node.node6")))
    assert stats.hosts == 6 - 1
    # The host endpoint moves from node4 to node7 (its key follows its node), which only
    # it names; a local endpoint goes, and the policy stops matching anything here.
    stats = apply(builders.put(builders.hep("remote-eth0", node="node7", iface="eth0"))
                  + builders.delete(builders.wep("b", labels={"app": "b"}, ips=("10.65.0.2/32",))))
    assert stats == CalcStats(active_endpoints=1, active_policies=0, active_selectors=0, hosts=5,
                              workload_endpoints=3 - 1, host_endpoints=1, tiers=1, policies=2, profiles=2)
    # Forced policies are active without a match; an invalid endpoint does not count.
    forced = builders.gnp("forced", selector="app == 'nothing'", performanceHints=["AssumeNeededOnEveryNode"],
                          ingress=[{"action": "Allow", "source": {"selector": "role == 'y'"}}])
    stats = apply(builders.put(forced, builders.wep("bad", ips=("not-an-ip",))))
    assert (stats.active_policies, stats.active_selectors, stats.policies, stats.workload_endpoints) == (1, 1, 3, 2)


def _agent():
    from node.felix.agent import Agent

    agent = Agent(builders.LOCAL, {}, kv_factory=lambda: None, default_rp_filter="1")
    agent._interfaces = {}
    return agent


def _updates(updates):
    from node.felix.agent import _Updates
    return _Updates(updates)


def test_agent_feeds_the_calculation_and_dataplane_message_families(monkeypatch):
    """Each family moves when the agent does the matching work: the datastore updates
    (the initial sync's too, counted before the metrics existed), the gauges after each
    batch, and the calculation's messages as the dataplane takes them."""
    from node.datastore.syncer import SyncStatus
    from node.felix.agent import _Status

    agent = _agent()
    a = builders.wep("a", labels={"app": "a"})
    policy = builders.np("to-a", selector="app == 'a'", types=["Ingress"],
                         ingress=[{"action": "Allow", "source": {"selector": "app == 'b'"}}])
    agent._handle(_updates(builders.put(builders.tier("default"), builders.ns_profile("ns1"), policy,
                                        builders.node(builders.LOCAL, "192.0.2.1"),
                                        builders.node(builders.REMOTE, "192.0.2.2"), a,
                                        builders.wep("b", node=builders.REMOTE, labels={"app": "b"},
                                                     ips=("10.65.1.1/32",)))))
    agent._handle(_Status(SyncStatus.IN_SYNC))
    m = FelixMetrics(builders.LOCAL, process_metrics=False, runtime_metrics=False, clock=FakeClock())
    agent._metrics_started(m)  # (the agent makes them as its dataplane starts)
    assert samples(m, "felix_calc_graph_updates_processed") == {
        (("type", "PolicyKey"),): 1, (("type", "ResourceKey"),): 3, (("type", "TierKey"),): 1,
        (("type", "WorkloadEndpointKey"),): 2}
    assert summary_count(m, "felix_calc_graph_update_time_seconds")[0] == 7
    gauges = {name: samples(m, name)[()] for name in (
        "felix_active_local_endpoints", "felix_active_local_policies", "felix_active_local_selectors",
        "felix_cluster_num_hosts", "felix_cluster_num_workload_endpoints", "felix_cluster_num_host_endpoints",
        "felix_cluster_num_tiers", "felix_cluster_num_policies", "felix_cluster_num_profiles")}
    assert gauges == {"felix_active_local_endpoints": 1, "felix_active_local_policies": 1,
                      "felix_active_local_selectors": 1, "felix_cluster_num_hosts": 2,
                      "felix_cluster_num_workload_endpoints": 2, "felix_cluster_num_host_endpoints": 0,
                      "felix_cluster_num_tiers": 1, "felix_cluster_num_policies": 1, "felix_cluster_num_profiles": 1}
    assert "felix_int_dataplane_messages" not in m.exposition().decode()

    # The first batch of messages (the whole initial state, ending with InSync).
    agent.iptables = {4: None}  # (as if the dataplane had started: nothing touches the kernel here)
    monkeypatch.setattr(agent, "_apply", lambda: None)
    agent._step()
    messages = samples(m, "felix_int_dataplane_messages")
    by_type = {labels[0][1]: value for labels, value in messages.items()}
    assert by_type["WorkloadEndpointUpdate"] == 1 and by_type["ActivePolicyUpdate"] == 1
    assert by_type["ActiveProfileUpdate"] == 1 and by_type["IPSetUpdate"] == 1
    assert by_type["HostMetadataV4V6Update"] == 2 and by_type["InSync"] == 1 and by_type["RouteUpdate"] >= 1
    first = sum(by_type.values())
    assert samples(m, "felix_calc_graph_output_events") == {(): first}

    # A change: the local endpoint goes and a local host endpoint comes.
    agent._handle(_updates(builders.delete(a) + builders.put(builders.hep("eth0", iface="eth0"))))
    assert samples(m, "felix_calc_graph_updates_processed")[(("type", "WorkloadEndpointKey"),)] == 3
    assert samples(m, "felix_calc_graph_updates_processed")[(("type", "HostEndpointKey"),)] == 1
    assert samples(m, "felix_cluster_num_workload_endpoints") == {(): 1}
    assert samples(m, "felix_cluster_num_host_endpoints") == {(): 1}
    assert samples(m, "felix_active_local_endpoints") == {(): 1}
    assert samples(m, "felix_active_local_policies") == {(): 0}
    agent._step()
    by_type = {labels[0][1]: value for labels, value in samples(m, "felix_int_dataplane_messages").items()}
    assert by_type["WorkloadEndpointRemove"] == 1 and by_type["HostEndpointUpdate"] == 1
    assert by_type["ActivePolicyRemove"] == 1 and by_type["InSync"] == 1
    assert samples(m, "felix_calc_graph_output_events") == {(): sum(by_type.values())} != {(): first}
    # Felix's batch size: each batch's messages plus one (its counter starts at 1).
    assert summary_count(m, "felix_int_dataplane_msg_batch_size") == (2, sum(by_type.values()) + 2)


def test_agent_without_metrics_only_counts_until_its_dataplane_starts():
    """Before the configuration is known the agent cannot tell whether metrics are on: it
    counts updates by key type (a small dict) and nothing else."""
    agent = _agent()
    agent._handle(_updates(builders.put(builders.wep("a"), builders.wep("b"), builders.tier("default"))))
    assert agent.metrics is None and agent._early_updates == {"WorkloadEndpointKey": 2, "TierKey": 1}


def _listing(*names: str) -> dict[str, str]:
    return {name: f"Name: {name}\nType: hash:net\nRevision: 7\nHeader: family inet hashsize 1024 maxelem 1048576\n"
                  "Size in memory: 552\nReferences: 0\nNumber of entries: 0\nMembers:\n" for name in names}


def test_ipset_gauges_are_the_kernels_sets_after_updates_and_after_deletions():
    """felix_ipsets_total: the owned sets in the kernel once the creates and updates are
    in (a stale set still there), one family's figure as Felix's unlabelled gauge holds;
    felix_ipsets_calico: per family, after the stale sets are deleted."""
    from node.felix.dataplane.ipsets import IPSetsDataplane
    from node.felix.desired import IPSets
    from test_felix_ipsets_plan import FakeIpset

    agent = _agent()
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    agent.metrics = m
    v4 = IPSets(4, 1048576)
    v4.replace("s:a", t.IPSetType.NET, ["10.0.0.1"])
    v4.replace("s:b", t.IPSetType.NET, ["10.0.0.2"])
    v6 = IPSets(6, 1048576)
    v6.replace("s:a", t.IPSetType.NET, ["fd00::1"])
    agent.ipsets = {4: IPSetsDataplane(v4, runner=FakeIpset(_listing("cali40stale", "cali40old"))),
                    6: IPSetsDataplane(v6, runner=FakeIpset({}))}
    for sets in agent.ipsets.values():
        sets.apply_updates()
    agent._export_counters()
    lines = m.exposition().decode().splitlines()
    assert 'felix_ipsets_calico{ip_version="inet"} 4' in lines  # (nothing deleted yet)
    assert "felix_ipsets_total 1" in lines  # IPv6's, applied last
    del agent.ipsets[6]
    for sets in agent.ipsets.values():
        sets.apply_deletions()
        sets.apply_updates()
    agent._export_counters()
    lines = m.exposition().decode().splitlines()
    assert 'felix_ipsets_calico{ip_version="inet"} 2' in lines
    assert "felix_ipsets_total 2" in lines


class _BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("no space left on device")


def test_log_errors_count_handler_failures_and_no_log_is_dropped(monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", False)  # (no traceback on stderr)
    logger = logging.getLogger("test-log-errors")
    logger.propagate = False
    broken, fine = logging.StreamHandler(_BrokenStream()), logging.StreamHandler(io.StringIO())
    for handler in (broken, fine):
        logger.addHandler(handler)
    try:
        m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
        m.count_log_errors(logger)
        logger.warning("one")
        logger.warning("two %s")  # (no arguments: formatted as is)
        logger.warning("three %d", "not a number")  # cannot be formatted: both handlers fail
        assert samples(m, "felix_log_errors") == {(): 4}
        assert fine.stream.getvalue().splitlines() == ["one", "two %s"]
        # Metrics made afresh take the counting over; nothing counts twice.
        again = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
        again.count_log_errors(logger)
        logger.warning("four")
        assert samples(again, "felix_log_errors") == {(): 1}
        assert samples(m, "felix_log_errors") == {(): 4}
        # Records are written synchronously, never dropped: Felix's dropped count is 0 too.
        assert samples(again, "felix_logs_dropped") == {(): 0}
    finally:
        for handler in (broken, fine):
            logger.removeHandler(handler)


def test_summary_quantiles_nearest_rank_and_empty_nan():
    clock = FakeClock()
    s = QuantileSummary("x", "doc", clock)
    assert all(math.isnan(v) for v in s.quantiles().values())
    for v in range(1, 101):
        s.observe(float(v))
    assert s.quantiles() == {0.5: 50.0, 0.9: 90.0, 0.99: 99.0}


def test_summary_window_forgets_old_observations_but_not_sum_and_count():
    clock = FakeClock()
    clock.now = 0.0
    s = QuantileSummary("x", "doc", clock)
    s.observe(100.0)
    clock.now = 120.0 * 4 + 1  # still within the 5 buckets of 2 minutes
    s.observe(1.0)
    assert s.quantiles()[0.99] == 100.0
    clock.now = 120.0 * 5  # the first bucket has aged out
    assert s.quantiles() == {0.5: 1.0, 0.9: 1.0, 0.99: 1.0}
    clock.now = 120.0 * 9
    assert math.isnan(s.quantiles()[0.5])
    lines = list(s.collect())[0].samples
    assert [(x.name, x.value) for x in lines[3:]] == [("x_sum", 101.0), ("x_count", 2)]


def test_summary_estimates_beyond_the_reservoir():
    s = QuantileSummary("x", "doc", FakeClock())
    for i in range(20_000):
        s.observe(float(i % 1000))
    q = s.quantiles()
    assert q[0.5] == pytest.approx(500, abs=40)
    assert q[0.9] == pytest.approx(900, abs=40)


@pytest.mark.parametrize("value, text", [
    (0.0, "0"), (-0.0, "0"), (1.0, "1"), (-1.0, "-1"), (3.0, "3"), (2.5, "2.5"), (0.1, "0.1"),
    (123456.0, "123456"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (4.2319872e7, "4.2319872e+07"),
    (0.0001, "0.0001"), (1e-5, "1e-05"), (1.5e-7, "1.5e-07"), (-2e21, "-2e+21"), (1e100, "1e+100"),
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
])
def test_go_float_formatting(value, text):
    assert _go_float(value) == text


def test_process_and_runtime_collectors_follow_config():
    with_all = parse(FelixMetrics.from_config(FelixConfig.resolve({"FELIX_FELIXHOSTNAME": "n"}))
                     .exposition().decode())
    assert "process_resident_memory_bytes" in with_all
    assert with_all["process_cpu_seconds"].type == "counter"
    assert "python_gc_collections" in with_all
    config = FelixConfig.resolve({"FELIX_FELIXHOSTNAME": "n", "FELIX_PROMETHEUSPROCESSMETRICSENABLED": "false",
                                  "FELIX_PROMETHEUSGOMETRICSENABLED": "false"})
    without = parse(FelixMetrics.from_config(config).exposition().decode())
    assert not any(name.startswith(("process_", "python_")) for name in without)
    assert without["felix_host"].samples[0].labels == {"host": "n"}


# -- the endpoint ---------------------------------------------------------------------------

def fetch(port: int, path: str, headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def served():
    m = exercised()
    server = metrics_server(m)
    server.start("127.0.0.1", 0)
    yield m, server.address[1]
    server.stop()


def test_metrics_endpoint_serves_the_families(served):
    m, port = served
    m.count_ipset_call()
    status, headers, body = fetch(port, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    families = parse(body.decode())
    assert set(FELIX_FAMILIES) <= set(families)
    assert families["felix_ipset_calls"].samples[0].value == 1
    assert families["felix_int_dataplane_apply_time_seconds"].type == "summary"


def test_metrics_endpoint_gzip_and_escaping_negotiation(served):
    _, port = served
    status, headers, body = fetch(port, "/metrics", {"Accept-Encoding": "gzip",
                                                     "Accept": "text/plain;version=0.0.4;escaping=allow-utf-8"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["content-type"].endswith("; escaping=allow-utf-8")
    assert b"# TYPE felix_host gauge" in gzip.decompress(body)


def test_metrics_endpoint_only_at_metrics(served):
    _, port = served
    assert fetch(port, "/")[0] == 404
    assert fetch(port, "/metrics/")[0] == 404
    assert fetch(port, "/readiness")[0] == 404


def test_metrics_server_from_config_and_clean_stop():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    assert start_metrics_server(m, FelixConfig.resolve({})) is None  # disabled by default
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads_before = set(threading.enumerate())
    config = FelixConfig.resolve({"FELIX_PROMETHEUSMETRICSENABLED": "true",
                                  "FELIX_PROMETHEUSMETRICSHOST": "127.0.0.1",
                                  "FELIX_PROMETHEUSMETRICSPORT": str(port)})
    server = start_metrics_server(m, config)
    try:
        assert server.address == ("127.0.0.1", port)
        assert b"felix_host" in fetch(port, "/metrics")[2]
    finally:
        server.stop()
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(ConnectionRefusedError):
        fetch(port, "/metrics")


def test_default_metrics_endpoint_config():
    c = FelixConfig.resolve({})
    assert (c.PrometheusMetricsEnabled, c.PrometheusMetricsHost, c.PrometheusMetricsPort) == (False, "", 9091)
    assert c.PrometheusProcessMetricsEnabled is True
