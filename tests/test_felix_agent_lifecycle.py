"""The policy agent's life: readiness, drift repair, restarts and datastore outages, with
the real agent in a node namespace (spec Appendix B checks 10 and 11, issue 11's outage
and restart cases)."""
from __future__ import annotations

import re
import signal
import time

import pytest

from e2e.probes import Conversation, EchoServer, eventually
from felix_node import FelixNode, _resource
from node.config import DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV

METRICS = {"FELIX_PROMETHEUSMETRICSENABLED": "true", "FELIX_PROMETHEUSMETRICSPORT": "9091"}


def scrape(node: FelixNode) -> str:
    """The agent's /metrics text, scraped inside the node namespace."""
    return node.ns.run("python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                       "'http://localhost:9091/metrics', timeout=2).read().decode())", check=False).stdout


def metric(node: FelixNode, name: str) -> float:
    """One metric's value (summed over labels), scraped inside the node namespace."""
    total = 0.0
    for line in scrape(node).splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            total += float(m.group(2))
    return total


def labelled(node: FelixNode, name: str, **labels: str) -> float | None:
    """One labelled series' value (None when absent), scraped inside the node namespace."""
    want = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in scrape(node).splitlines():
        if line.startswith(name + want + " "):
            return float(line.split()[-1])
    return None


def _setup(node: FelixNode) -> None:
    node.namespace_profile("ns1")
    node.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
    node.add_pod("a", "10.65.0.10", labels={"app": "a"})
    node.add_pod("b", "10.65.0.11", labels={"app": "b"})
    node.write(_resource("NetworkPolicy", "b-from-a", {
        "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": {"selector": "app == 'a'"}}]}, namespace="ns1"))


@pytest.fixture
def node(etcd, tmp_path):
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(etcd.endpoint,)))
    try:
        with FelixNode(DatastoreClient(kv), etcd.endpoint, env=METRICS) as n:
            _setup(n)
            n.log_dir = tmp_path
            yield n
    finally:
        kv.close()


def test_not_ready_until_first_apply_then_ready(node, etcd, tmp_path):
    # Check 11: with the datastore unreachable the agent is live but not ready, and it has
    # programmed nothing; once etcd is back it syncs, programs and turns ready.
    etcd.stop()
    node.start_agent(tmp_path)
    assert eventually(lambda: node.ns.run("python3", "-c", "import urllib.request as u\ntry:\n"
                                          " u.urlopen('http://localhost:9099/readiness', timeout=1)\n"
                                          "except Exception as e: print(getattr(e, 'code', 'down'))",
                                          check=False).stdout.strip() == "503", 15)
    assert "cali-FORWARD" not in node.iptables_save()
    live = node.ns.run("python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                       "'http://localhost:9099/liveness', timeout=2).status)")
    assert live.stdout.strip() == "200"
    etcd.start()
    node.wait_ready(40)
    assert "cali-FORWARD" in node.iptables_save()


def test_drift_is_repaired_within_a_refresh(node, tmp_path):
    # Check 10: each kind of drift is healed by the periodic refresh (2 s in the harness).
    node.start_agent(tmp_path)
    node.wait_ready(40)
    node.listen("b", 80)
    assert eventually(lambda: node.can("a", "tcp", "b", 80), 10)
    tw = f"cali-tw-{node.pods['b'].interface}"
    save = node.iptables_save()
    pi_chain = next(line[1:].split()[0] for line in save.splitlines() if line.startswith(":cali-pi-"))
    set_name = next(s for s in node.ns.run("ipset", "list", "-n").stdout.split() if s.startswith("cali40s:"))
    breakages = [
        ("a flushed cali-FORWARD", ["iptables-legacy", "-F", "cali-FORWARD"],
         lambda: "-A cali-FORWARD" in node.iptables_save()),
        ("a removed hook rule", ["iptables-legacy", "-D", "FORWARD", "1"],
         lambda: "-A FORWARD -m comment --comment \"cali:wUHhoiAYhphO9Mso\" -j cali-FORWARD" in node.iptables_save()),
        ("a deleted policy chain", ["sh", "-c", f"iptables-legacy -F {tw} && iptables-legacy -F {pi_chain} && "
                                               f"iptables-legacy -X {pi_chain}"],
         lambda: f":{pi_chain}" in node.iptables_save() and f"-A {tw}" in node.iptables_save()),
        ("a destroyed IP set", ["sh", "-c", f"iptables-legacy -F {pi_chain} && ipset destroy {set_name}"],
         lambda: set_name in node.ns.run("ipset", "list", "-n").stdout),
        ("a deleted workload route", ["ip", "route", "del", node.pods["b"].ipv4],
         lambda: node.pods["b"].ipv4 in node.ns.run("ip", "route").stdout),
    ]
    for what, argv, repaired in breakages:
        node.ns.run(*argv)
        assert eventually(repaired, 10), f"{what} was not repaired\n{node.log_text()[-3000:]}"
        assert eventually(lambda: node.can("a", "tcp", "b", 80), 10), f"traffic not back after {what}"


def test_restart_converges_without_writes_or_dropped_connections(node, tmp_path):
    # SIGKILL, then start again with the same inputs: the established connection keeps
    # working throughout, and the new agent issues no iptables-restore at all.
    node.start_agent(tmp_path)
    node.wait_ready(40)
    # The route side's and the ipset processes' metrics are fed (the two pods' routes;
    # each route for one address first checks for a pending conntrack cleanup).
    assert eventually(lambda: metric(node, "felix_route_table_num_routes") >= 2, 10)
    assert metric(node, "felix_route_table_num_ifaces") >= 2
    assert metric(node, "felix_route_table_resync_seconds_count") >= 1
    assert metric(node, "felix_route_table_conntrack_wait_seconds_count") >= 2
    assert metric(node, "felix_exec_time_micros_count") >= 1
    assert f'felix_host{{host="{node.name}"}} 1' in scrape(node).splitlines()  # FelixHostname is the node
    # The label index's (the two pods; the policy's source set, narrowed by its labels),
    # the interface monitor's batches (the start of day at least) and the logging ones.
    assert metric(node, "felix_label_index_num_endpoints") >= 2
    assert metric(node, "felix_label_index_strategy_evals") >= 1
    assert metric(node, "felix_int_dataplane_iface_msg_batch_size_count") >= 1
    assert metric(node, "felix_int_dataplane_addr_msg_batch_size_count") >= 1
    lines = scrape(node).splitlines()
    assert any(re.fullmatch(r'felix_label_index_num_active_selectors\{optimized="true"\} [1-9]\d*', line)
               for line in lines)
    assert {"felix_log_errors 0", "felix_logs_dropped 0"} <= set(lines)
    # The calculation's families: the two local pods, the one policy (used here, with its
    # source selector's set), the three tiers and three profiles (the namespace's two and the
    # default-allow one every datastore lists, as Felix's syncer delivers it); the updates
    # and messages of the initial sync by Felix's type names; the IP sets programmed.
    assert {"felix_active_local_endpoints 2", "felix_active_local_policies 1", "felix_active_local_selectors 1",
            "felix_cluster_num_workload_endpoints 2", "felix_cluster_num_host_endpoints 0",
            "felix_cluster_num_hosts 1", "felix_cluster_num_policies 1", "felix_cluster_num_tiers 3",
            "felix_cluster_num_profiles 3"} <= set(lines), [l for l in lines if "_local_" in l or "_num_" in l]
    assert labelled(node, "felix_calc_graph_updates_processed", type="WorkloadEndpointKey") >= 2
    assert labelled(node, "felix_calc_graph_updates_processed", type="PolicyKey") >= 1
    assert labelled(node, "felix_int_dataplane_messages", type="WorkloadEndpointUpdate") >= 2
    assert labelled(node, "felix_int_dataplane_messages", type="InSync") == 1
    assert metric(node, "felix_calc_graph_output_events") == metric(node, "felix_int_dataplane_messages") > 0
    assert metric(node, "felix_ipsets_total") >= 1
    server = EchoServer(node.pods["b"].netns, 7000)
    try:
        with Conversation(node.pods["a"].netns, node.pods["b"].ipv4, 7000) as talk:
            assert eventually(lambda: talk.say("hello") == "hello", 10)
            node.stop_agent(signal.SIGKILL)
            assert talk.say("while down") == "while down"
            node.start_agent(tmp_path)
            node.wait_ready(40)
            assert eventually(lambda: metric(node, "felix_iptables_save_calls") > 0, 10)
            assert metric(node, "felix_iptables_restore_calls") == 0, node.log_text()[-3000:]
            assert metric(node, "felix_ipset_calls") == 0
            assert talk.say("after restart") == "after restart"
    finally:
        server.close()


def test_datastore_outage_keeps_the_dataplane(node, etcd, tmp_path):
    # Stop etcd for 60 s with an established connection: nothing is removed, the
    # connection keeps working; a policy change written after etcd returns lands within 5 s.
    node.start_agent(tmp_path)
    node.wait_ready(40)
    server = EchoServer(node.pods["b"].netns, 7000)
    try:
        node.listen("a", 80)
        with Conversation(node.pods["a"].netns, node.pods["b"].ipv4, 7000) as talk:
            assert eventually(lambda: talk.say("before") == "before", 10)
            tables = {t: node.iptables_save(t) for t in ("raw", "mangle", "nat", "filter")}
            sets = node.ns.run("ipset", "save").stdout
            routes = node.ns.run("ip", "route").stdout
            etcd.stop()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert talk.say("during") == "during"
                time.sleep(5)
            assert {t: node.iptables_save(t) for t in tables} == tables or \
                _same_rules(tables, {t: node.iptables_save(t) for t in tables})
            assert node.ns.run("ipset", "save").stdout == sets
            assert node.ns.run("ip", "route").stdout == routes
            assert not node.ready()  # out of sync: not ready, but nothing was flushed
            etcd.start()
            assert node.can("b", "tcp", "a", 80)
            node.write(_resource("NetworkPolicy", "a-deny", {"selector": "app == 'a'", "types": ["Ingress"]},
                                 namespace="ns1"))
            written = time.monotonic()
            assert eventually(lambda: not node.can("b", "tcp", "a", 80, timeout=0.5), 10, interval=0.1)
            assert time.monotonic() - written < 5.0, node.log_text()[-3000:]
            assert talk.say("after") == "after"
            assert node.ready()
    finally:
        server.close()


def _same_rules(before: dict, after: dict) -> bool:
    """iptables-save output without the packet counters and timestamps."""
    def strip(text: str) -> list[str]:
        return [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if not line.startswith("#")]
    return all(strip(before[t]) == strip(after[t]) for t in before)


def test_mtu_file_for_the_cni_plugin_follows_the_host_and_the_pools(node, tmp_path):
    """Felix's MTU file (under CALICO_LIB_DIR): the host interface's MTU without
    encapsulation, less VXLAN's 50 bytes once a VXLAN pool exists, and again after the
    host's MTU changes (the interface monitor sees it)."""
    mtu_file = tmp_path / f"lib-{node.name}" / "mtu"

    def content() -> str:
        return mtu_file.read_text() if mtu_file.exists() else ""
    node.start_agent(tmp_path)
    node.wait_ready(30)
    assert eventually(lambda: content() == "1500", 10), content()
    node.write(_resource("IPPool", "vxlan-pool", {"cidr": "10.77.0.0/16", "vxlanMode": "Always"}))
    assert eventually(lambda: content() == "1450", 15), content()
    node.ns.run("ip", "link", "set", "eth0", "mtu", "1400")
    assert eventually(lambda: content() == "1350", 15), content()


def test_log_level_follows_the_merged_configuration(etcd, tmp_path):
    """As Felix: LogSeverityScreen from FelixConfiguration sets the agent's level (the
    environment does not set it here), so debug lines appear once it says Debug."""
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(etcd.endpoint,)))
    try:
        with FelixNode(DatastoreClient(kv), etcd.endpoint, env={"FELIX_LOGSEVERITYSCREEN": ""}) as n:
            _setup(n)
            n.write(_resource("FelixConfiguration", "default", {"logSeverityScreen": "Debug"}))
            n.start_agent(tmp_path)
            n.wait_ready(30)
            assert eventually(lambda: "[DEBUG]" in n.log_text(), 10), n.log_text()[-2000:]
    finally:
        kv.close()


def test_apply_log_level_maps_felix_levels():
    import logging

    from node.felix.agent import apply_log_level
    root = logging.getLogger()
    before = root.level
    try:
        for felix, python in (("Debug", logging.DEBUG), ("warning", logging.WARNING), ("FATAL", logging.CRITICAL),
                              ("trace", logging.DEBUG), ("Info", logging.INFO), ("nonsense", logging.INFO)):
            apply_log_level(felix)
            assert root.level == python, felix
    finally:
        root.setLevel(before)
