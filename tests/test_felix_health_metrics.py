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

from node.felix.calc.members import EndpointData, IPSetMemberIndex
from node.felix.calc.rule_scanner import IPSetData
from node.felix.config import FelixConfig
from node.felix.dataplane.interfaces import Interface, interface_changes
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
    m.observe_calc_update(0.002, "WorkloadEndpointKey")
    m.count_message("WorkloadEndpointUpdate")
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


def test_setters_move_their_gauges_and_leave_others():
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    m.set_active_local(endpoints=4, policies=2, selectors=9)
    m.set_cluster(hosts=3, workload_endpoints=30, host_endpoints=1, policies=7, profiles=5, tiers=2)
    m.set_active_local(policies=3)
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
    m.count_calc_output_events(4)
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
