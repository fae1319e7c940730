"""Calico 3.32's operations pages followed as an operator would, against this node: Felix's
metrics (reference/felix/prometheus), logging (operations/troubleshoot/component-logs)
and the troubleshooting commands (operations/troubleshoot/commands). Where a page and
Calico v3.32.1's source disagree, the source is followed and the case says so."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import confd_fixtures as fx
from e2e.probes import eventually
from felix_node import FelixNode, _resource
from node.confd.cluster import confd_log_level
from node.config import DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV
from node.datastore.syncer import SyncStatus, Update, UpdateType

ROOT = Path(__file__).resolve().parents[1]

# Every family Felix v3.32.1 shows by default on Linux in iptables mode (felix/calc,
# felix/dataplane/linux/int_dataplane.go, felix/iptables/table.go, felix/ipsets/ipset_defs.go,
# felix/routetable/route_table.go, felix/labelindex/named_port_index.go, felix/logutils,
# felix/daemon/daemon.go): name -> (type, label names, help). Left out, as the README's
# Known gaps says: felix_route_table_partial_resync_seconds, and the BPF, nftables and
# flow-log (felix_collector_*) families Felix registers but leaves at zero in this mode.
FELIX_V3_32_1 = {
    "felix_active_local_endpoints": ("gauge", (), "Number of active endpoints on this host."),
    "felix_active_local_policies": ("gauge", (), "Number of active policies on this host."),
    "felix_active_local_selectors": ("gauge", (), "Number of active selectors on this host."),
    "felix_calc_graph_output_events": ("counter", (), "Number of events emitted by the calculation graph."),
    "felix_calc_graph_update_time_seconds": (
        "summary", (), "Seconds to update calculation graph for each datastore OnUpdate call."),
    "felix_calc_graph_updates_processed": (
        "counter", ("type",), "Number of datastore updates processed by the calculation graph."),
    "felix_cluster_num_host_endpoints": ("gauge", (), "Total number of host endpoints cluster-wide."),
    "felix_cluster_num_hosts": ("gauge", (), "Total number of calico hosts in the cluster."),
    "felix_cluster_num_policies": ("gauge", (), "Total number of policies cluster-wide."),
    "felix_cluster_num_profiles": ("gauge", (), "Total number of profiles cluster-wide."),
    "felix_cluster_num_tiers": ("gauge", (), "Total number of tiers cluster-wide."),
    "felix_cluster_num_workload_endpoints": ("gauge", (), "Total number of workload endpoints cluster-wide."),
    "felix_exec_time_micros": ("summary", (), "Summary of time taken to fork/exec child processes"),
    "felix_host": ("gauge", ("host",), (
        "Configured Felix hostname (as a label), typically used in grouping/aggregating stats; the label "
        "defaults to the hostname of the host but can be overridden by configuration. The value of the "
        "gauge is always set to 1.")),
    "felix_int_dataplane_addr_msg_batch_size": ("summary", (), (
        "Number of interface address messages processed in each batch. Higher values indicate we're "
        "doing more batching to try to keep up.")),
    "felix_int_dataplane_apply_time_seconds": ("summary", (), (
        "Time in seconds for each incremental update to the dataplane (after the initial resync).")),
    "felix_int_dataplane_failures": (
        "counter", (), "Number of times dataplane updates failed and will be retried."),
    "felix_int_dataplane_iface_msg_batch_size": ("summary", (), (
        "Number of interface state messages processed in each batch. Higher values indicate we're "
        "doing more batching to try to keep up.")),
    "felix_int_dataplane_initial_resync_time_seconds": ("gauge", (), (
        "Time in seconds that it took to do the initial resync with the dataplane and bring the "
        "dataplane into sync for the first time.")),
    "felix_int_dataplane_messages": ("counter", ("type",), "Number dataplane messages by type."),
    "felix_int_dataplane_msg_batch_size": ("summary", (), (
        "Number of messages processed in each batch. Higher values indicate we're doing more batching "
        "to try to keep up.")),
    "felix_ipset_calls": ("counter", (), "Number of ipset commands executed."),
    "felix_ipset_errors": ("counter", (), "Number of ipset command failures."),
    "felix_ipset_lines_executed": ("counter", (), "Number of ipset operations executed."),
    "felix_ipsets_calico": ("gauge", ("ip_version",), "Number of active Calico IP sets."),
    "felix_ipsets_total": ("gauge", (), "Total number of active IP sets."),
    "felix_iptables_chains": ("gauge", ("ip_version", "table"), "Number of active iptables chains."),
    "felix_iptables_lines_executed": (
        "counter", ("ip_version", "table"), "Number of iptables rule updates executed."),
    "felix_iptables_restore_calls": ("counter", (), "Number of iptables-restore calls."),
    "felix_iptables_restore_errors": ("counter", (), "Number of iptables-restore errors."),
    "felix_iptables_rules": ("gauge", ("ip_version", "table"), "Number of active iptables rules."),
    "felix_iptables_save_calls": ("counter", (), "Number of iptables-save calls."),
    "felix_iptables_save_errors": ("counter", (), "Number of iptables-save errors."),
    "felix_label_index_num_active_selectors": (
        "gauge", ("optimized",), "Total number of active selectors in the policy rule label index."),
    "felix_label_index_num_endpoints": (
        "gauge", (), "Total number of endpoints and similar objects in the index."),
    "felix_label_index_selector_evals": ("counter", ("result",), "Total number of selector evaluations."),
    "felix_label_index_strategy_evals": (
        "counter", ("strategy",), "Total number of index scans broken down by scan strategy."),
    "felix_log_errors": ("counter", (), "Number of errors encountered while logging."),
    "felix_logs_dropped": ("counter", (), "Number of logs dropped because the output stream was blocked."),
    # Felix v3.32.1 gives felix_resyncs_started the gauge's help text (async_calc_graph.go);
    # the page describes it otherwise.
    "felix_resync_state": ("gauge", (), "Current datastore state."),
    "felix_resyncs_started": ("counter", (), "Current datastore state."),
    "felix_route_table_conntrack_wait_seconds": (
        "summary", (), "Time waiting for conntrack cleanups to finish."),
    "felix_route_table_num_ifaces": ("gauge", ("table",), (
        "Number of interfaces that Felix is monitoring for the particular routing table.")),
    "felix_route_table_num_routes": ("gauge", ("table",), (
        "Number of routes that Felix is managing in the particular routing table.")),
    "felix_route_table_resync_seconds": ("summary", (), "Time taken to list all the routes during a resync."),
}

# On the page but not registered by Felix v3.32.1 (its route table and iptables code no
# longer have them): the source wins, so they are not served.
DOCUMENTED_BUT_GONE = ("felix_route_table_list_seconds", "felix_route_table_per_iface_sync_seconds",
                       "felix_iptables_lock_acquire_secs", "felix_iptables_lock_retries")

# The page's "CPU / memory metrics" from Go's process collector (the go_* ones are Go's
# runtime's; this agent's runtime metrics are Python's, see the README's Known gaps).
PROCESS_FAMILIES = ("process_cpu_seconds", "process_max_fds", "process_open_fds",
                    "process_resident_memory_bytes", "process_start_time_seconds",
                    "process_virtual_memory_bytes",
                    # not on the page, but Felix v3.32.1's client_golang v1.23.2 has them too
                    "process_virtual_memory_max_bytes", "process_network_receive_bytes",
                    "process_network_transmit_bytes")

METRICS_PORT = 9091


def _scrape(node: FelixNode) -> str:
    return node.ns.run("python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                       f"'http://localhost:{METRICS_PORT}/metrics', timeout=2).read().decode())",
                       check=False).stdout


@pytest.mark.etcd
def test_metrics_endpoint_serves_felixs_families_as_the_page_shows(etcd, tmp_path):
    """reference/felix/prometheus: with FELIX_PROMETHEUSMETRICSENABLED=true, `curl -s
    http://localhost:9091/metrics` lists Felix's families with their help and type: every
    family Felix v3.32.1 shows in iptables mode, by its name, type, labels and help, and
    the process collector's families. The DaemonSet's probes (reference/configure-calico-node:
    `calico-node -felix-live`, `-felix-ready`) pass against the same agent."""
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(etcd.endpoint,)))
    try:
        env = {"FELIX_PROMETHEUSMETRICSENABLED": "true"}  # the port is Felix's default, 9091
        with FelixNode(DatastoreClient(kv), etcd.endpoint, env=env) as node:
            node.namespace_profile("ns1")
            node.write(fx.pool("pool", "10.65.0.0/16"))
            node.add_pod("a", "10.65.0.10", labels={"app": "a"})
            # A rule selector, so the label index scans (felix_label_index_strategy_evals
            # has no series until it has, in Felix too).
            node.write(_resource("NetworkPolicy", "a-from-a", {
                "selector": "app == 'a'", "types": ["Ingress"],
                "ingress": [{"action": "Allow", "source": {"selector": "app == 'a'"}}]}, namespace="ns1"))
            node.start_agent(tmp_path)
            node.wait_ready(40)
            probe = node.ns.run(sys.executable, "-m", "node.cli.calico_node", "-felix-live", "-felix-ready",
                                check=False, cwd=ROOT, env=node.agent_env(), timeout=60)
            assert (probe.returncode, probe.stdout) == (0, ""), probe

            def complete() -> tuple[str, dict] | None:
                text = _scrape(node)
                families = {f.name: f for f in text_string_to_metric_families(text)}
                endpoints = families.get("felix_active_local_endpoints")
                if set(FELIX_V3_32_1) - set(families) or endpoints is None or endpoints.samples[0].value != 1:
                    return None
                return text, families

            scraped = eventually(complete, timeout=60)
            assert scraped, set(FELIX_V3_32_1) - {f.name for f in text_string_to_metric_families(_scrape(node))}
            text, families = scraped
    finally:
        kv.close()
    for name, (typ, labels, help_text) in FELIX_V3_32_1.items():
        family = families[name]
        assert (family.type, family.documentation) == (typ, help_text), name
        assert f"# TYPE {name} {typ}" in text.splitlines(), name  # Go's names: no _total on counters
        for sample in family.samples:
            assert set(sample.labels) - {"quantile"} == set(labels), (name, sample.labels)
    for name in DOCUMENTED_BUT_GONE:
        assert name not in families
    for name in PROCESS_FAMILIES:
        assert name in families, name
    assert 'felix_host{host="node1"} 1' in text.splitlines()


def test_calicoctl_version_dash_help_shows_the_usage():
    """operations/troubleshoot/commands: "For syntax: calicoctl version -help". calicoctl's
    docopt (docopt-go's parseShorts) reads -help as -h, -e, -l, -p, taking the letters it
    does not know, so the help is shown and the exit status is 0."""
    for argv in (["version", "-help"], ["-help"], ["get", "-help"]):
        res = subprocess.run([sys.executable, "-m", "node.cli.calicoctl", *argv], capture_output=True,
                             text=True, timeout=60, cwd=ROOT)
        assert res.returncode == 0, (argv, res.stderr)
        assert res.stdout.startswith("usage: calicoctl"), (argv, res.stdout)
    res = subprocess.run([sys.executable, "-m", "node.cli.calicoctl", "version", "-help"], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert "--client" in res.stdout and "--poll" in res.stdout


def test_rotated_log_files_are_0644_as_calicos_patched_svlogd_leaves_them(tmp_path):
    """operations/troubleshoot/component-logs: files in /var/log/calico/<component>, the
    current one `current`, rotated ones `@<tai64n>`. Calico v3.32.1's image builds svlogd
    with node/patches/svlogd_use_0644_permission_instead_of_0744.patch, so a rotated file
    is left readable (0644), not svlogd's own 0744. (The page says 10 files of 1 MB are
    kept; v3.32.1's log/run scripts give svlogd s10000000 and n5, which is followed.)"""
    from node.supervise.logtee import LogDir

    logdir = LogDir(str(tmp_path), max_bytes=64, backups=5, report=lambda text: None)
    for i in range(6):
        logdir.write(f"line {i} {'x' * 40}\n".encode())
    rotated = sorted(p for p in tmp_path.iterdir() if p.name.startswith("@"))
    assert len(rotated) == 5
    for path in rotated:
        assert oct(path.stat().st_mode & 0o777) == "0o644", path.name
        assert path.name.endswith(".s")


def _bgp_config(name: str, severity: str | None):
    spec = {"logSeverityScreen": severity} if severity else {}
    return fx._res("BGPConfiguration", name, spec)


@pytest.mark.parametrize("configs, env, expected", [
    ({}, "", ("info", "info")),
    ({"default": "Debug"}, "", ("debug", "debug")),
    ({"default": "Debug", "node.me": "Info"}, "", ("info", "info")),
    ({"default": "Info", "node.other": "Debug"}, "", ("info", "info")),
    ({"default": "Warning"}, "", ("none", "info")),  # BIRD's "none" is no logrus level: info
    ({"default": "Fatal", "node.me": None}, "", ("none", "info")),
    ({"default": "Debug"}, "warning", ("warning", "warning")),  # BGP_LOGSEVERITYSCREEN wins
])
def test_confd_log_level_follows_bgp_configuration(configs, env, expected):
    """operations/troubleshoot/component-logs: "BGP log level is configured via the
    BGPConfiguration API". In v3.32.1 that sets BIRD's debug mode (bgp_processor.go) and
    confd's own level too (client.go updateLogLevel: BGP_LOGSEVERITYSCREEN, else the node's
    loglevel key, else the global one, else info; getLogSeverityKVPair narrows severities
    to debug/info/none, and "none" fails logrus.ParseLevel, which confd's SetLevel turns
    into info)."""
    bgp_configs = {name: _bgp_config(name, severity) for name, severity in configs.items()}
    assert confd_log_level(bgp_configs, "me", env) == expected


def test_confd_sets_its_own_level_at_sync_and_when_bgp_configuration_changes(tmp_path):
    from node.confd.daemon import Renderer
    from node.confd.inputs import Settings
    from node.confd.install import Installer

    calls = []
    renderer = Renderer(Settings(nodename="me"), Installer(tmp_path / "out", check=False, reload=False),
                        lambda: None, on_log_level=lambda given, level: calls.append((given, level)))

    def put(name: str, severity: str | None) -> None:
        res = _bgp_config(name, severity)
        renderer.on_updates([Update(UpdateType.UPDATED, f"/bgpconfig/{name}", res, 1)])

    put("default", "Debug")
    assert calls == []  # nothing before the first sync, as confd sets it once in sync
    renderer.on_status(SyncStatus.IN_SYNC)
    assert calls == [("debug", "debug")]
    put("default", "Debug")  # no change: not set again
    renderer.on_updates([Update(UpdateType.UPDATED, "/pool", fx.pool("p", "10.0.0.0/16"), 2)])
    assert calls == [("debug", "debug")]
    put("node.me", "Error")
    assert calls[-1] == ("none", "info")
    renderer.on_updates([Update(UpdateType.DELETED, "/bgpconfig/node.me", _bgp_config("node.me", "Error"), 3)])
    assert calls[-1] == ("debug", "debug")


def test_confd_role_applies_the_level_to_its_log():
    """The role's callback sets the process's level; a "none" sets info and says so, as
    confd's SetLevel warns "Failed to parse log level, defaulting to INFO"."""
    import logging

    from node.cli.roles.confd import set_confd_log_level

    root = logging.getLogger()
    old = root.level
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    logging.getLogger("node.confd").addHandler(handler)
    try:
        set_confd_log_level("debug", "debug")
        assert root.level == logging.DEBUG
        set_confd_log_level("none", "info")
        assert root.level == logging.INFO
        assert any(r.levelno == logging.WARNING and "Failed to parse log level, defaulting to INFO" in r.getMessage()
                   and '"none"' in r.getMessage() for r in records)
    finally:
        logging.getLogger("node.confd").removeHandler(handler)
        root.setLevel(old)


def test_process_families_go_adds_are_read_from_proc(tmp_path):
    """Go's process collector (client_golang v1.23.2, Felix v3.32.1's go.mod) also has
    process_virtual_memory_max_bytes (procfs: "unlimited" is 2^64-1) and the network
    namespace's traffic (IpExt InOctets/OutOctets of /proc/<pid>/net/netstat); they go
    with PrometheusProcessMetricsEnabled like the rest."""
    from node.felix.config import FelixConfig
    from node.felix.metrics import FelixMetrics, GoProcessExtras, exposition
    from prometheus_client import CollectorRegistry

    (tmp_path / "net").mkdir()
    (tmp_path / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units\n"
        "Max open files            1024                 4096                 files\n"
        "Max address space         unlimited            unlimited            bytes\n")
    (tmp_path / "net" / "netstat").write_text(
        "TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 0 0\n"
        "IpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 123456 7890\n")
    registry = CollectorRegistry()
    registry.register(GoProcessExtras(str(tmp_path)))
    lines = exposition(registry).decode().splitlines()
    assert lines == [
        "# HELP process_network_receive_bytes_total Number of bytes received by the process over the network.",
        "# TYPE process_network_receive_bytes_total counter",
        "process_network_receive_bytes_total 123456",
        "# HELP process_network_transmit_bytes_total Number of bytes sent by the process over the network.",
        "# TYPE process_network_transmit_bytes_total counter",
        "process_network_transmit_bytes_total 7890",
        "# HELP process_virtual_memory_max_bytes Maximum amount of virtual memory available in bytes.",
        "# TYPE process_virtual_memory_max_bytes gauge",
        "process_virtual_memory_max_bytes 1.8446744073709552e+19",
    ]
    (tmp_path / "limits").write_text("Max address space         4294967296           unlimited            bytes\n")
    assert "process_virtual_memory_max_bytes 4.294967296e+09" in exposition(registry).decode().splitlines()

    off = FelixConfig.resolve({"FELIX_FELIXHOSTNAME": "n", "FELIX_PROMETHEUSPROCESSMETRICSENABLED": "false"})
    text = FelixMetrics.from_config(off).exposition().decode()
    assert "process_" not in text and "python_gc_collections" in text
