"""Endpoint status files with the real agent: a node namespace running ``calico-node
felix`` against a real etcd, pods on ``cali`` veths. A file per local workload whose
interface is up appears once its rules are in, and goes when the workload or its
interface does; files no endpoint wants (an earlier run's) are removed."""
from __future__ import annotations

import json

import pytest

from e2e.probes import eventually
from felix_node import _resource, felix_node_on_etcd

WAIT = 15.0


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("felix-status-run")
    # An earlier run's file, for an endpoint that no longer exists.
    (run_dir / "endpoint-status").mkdir()
    (run_dir / "endpoint-status" / "k8s ns1%2Fgone eth0").write_text('{"ifaceName":"caligone"}')
    with felix_node_on_etcd(env={"FELIX_ENDPOINTSTATUSPATHPREFIX": str(run_dir)}) as n:
        n.namespace_profile("ns1")
        n.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
        n.add_pod("a", "10.65.0.10", labels={"app": "a"})
        n.start_agent(tmp_path_factory.mktemp("felix-status"))
        n.wait_ready(40)
        n.run_dir = run_dir
        yield n


def files(node) -> dict[str, dict]:
    directory = node.run_dir / "endpoint-status"
    out = {}
    for path in directory.iterdir():
        try:
            out[path.name] = json.loads(path.read_text())
        except ValueError:
            out[path.name] = None  # being written
    return out


def expect_files(node, names: set[str]):
    got = eventually(lambda: set(files(node)) == names, WAIT)
    assert got, f"status files {sorted(files(node))}, expected {sorted(names)}\n{node.log_text()[-2000:]}"


def test_a_file_per_running_workload(node):
    pod = node.pods["a"]
    expect_files(node, {"k8s ns1%2Fa eth0"})  # the earlier run's file is gone
    assert files(node)["k8s ns1%2Fa eth0"] == {"ifaceName": pod.interface, "mac": pod.mac,
                                               "ipv4Nets": ["10.65.0.10/32"]}
    # The rules were in when the file appeared: the endpoint's chains are programmed.
    assert f":cali-tw-{pod.interface}" in node.iptables_save()


def host_side_addresses(node, pod: str) -> set[str]:
    out = node.ns.run("ip", "-4", "-o", "addr", "show", "dev", node.pods[pod].interface).stdout
    return {line.split()[3] for line in out.splitlines()}


def test_the_bgp_peer_that_selects_the_workload_is_named(node):
    """A BGPPeer for this node with a localWorkloadSelector: confd peers with the workloads
    it picks, and learns which from these files; the workload's interface gets the
    BGPConfiguration's localWorkloadPeeringIPV4, the host's end of that session."""
    peer = _resource("BGPPeer", "pods-a", {"node": node.name, "localWorkloadSelector": "app == 'a'",
                                           "asNumber": 65010})
    node.write(peer)
    try:
        # Without the peering address of each family the agent runs (IPv4 and IPv6 here)
        # the workload cannot be configured for its peer: it counts as down, no file.
        node.write(_resource("BGPConfiguration", "default", {"localWorkloadPeeringIPV4": "169.254.0.179"}))
        expect_files(node, set())
        node.write(_resource("BGPConfiguration", "default", {"localWorkloadPeeringIPV4": "169.254.0.179",
                                                             "localWorkloadPeeringIPV6": "fd00:ffff::179"}))
        assert eventually(lambda: files(node).get("k8s ns1%2Fa eth0", {}).get("bgpPeerName") == "pods-a", WAIT), \
            files(node)
        assert eventually(lambda: host_side_addresses(node, "a") == {"169.254.0.179/32"}, WAIT), \
            node.log_text()[-2000:]
    finally:
        node.delete("BGPPeer", "pods-a")
        node.delete("BGPConfiguration", "default")
    assert eventually(lambda: "bgpPeerName" not in files(node).get("k8s ns1%2Fa eth0", {"bgpPeerName": 1}), WAIT)
    assert eventually(lambda: host_side_addresses(node, "a") == set(), WAIT)


def test_interface_down_and_endpoint_deleted_remove_the_file(node):
    pod = node.pods["a"]
    node.ns.run("ip", "link", "set", pod.interface, "down")
    try:
        expect_files(node, set())
    finally:
        node.ns.run("ip", "link", "set", pod.interface, "up")
    expect_files(node, {"k8s ns1%2Fa eth0"})
    node.delete("WorkloadEndpoint", pod.endpoint().name, "ns1")
    try:
        expect_files(node, set())
    finally:
        node.write(pod.endpoint())
    expect_files(node, {"k8s ns1%2Fa eth0"})


def test_no_endpoint_status_reports_in_the_datastore_by_default(node):
    """EndpointReportingEnabled is off by default: the files, but no datastore reports."""
    expect_files(node, {"k8s ns1%2Fa eth0"})
    items, _ = node.client.kv.list("/calico/felix/")
    assert [kv.key for kv in items if "/endpoint/" in kv.key] == []
