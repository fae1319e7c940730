"""Felix's status reports with the real agent: a node namespace running ``calico-node
felix`` against a real etcd, with short reporting intervals. The agent's status key lives
on a lease that runs out once the agent is killed (its last-reported status stays); an
endpoint status key per local workload and host endpoint, as networking-calico reads
them, follows the interface and the endpoint; keys an earlier run left for endpoints that
are gone are removed at start, other hosts' and regions' are left alone."""
from __future__ import annotations

import json
import signal

import pytest

from e2e.probes import eventually
from felix_node import _resource, felix_node_on_etcd

WAIT = 20.0
HOST = "node1"
REGION = "region-r1"
ROOT = f"/calico/felix/v2/{REGION}/host/{HOST}"
ACTIVE, LAST = f"{ROOT}/status", f"{ROOT}/last_reported_status"
POD_KEY = f"{ROOT}/workload/k8s/ns1%2fa/endpoint/eth0"
HEP_KEY = f"/calico/felix/v1/host/{HOST}/endpoint/hep-dummy"
HEP_MISSING_KEY = f"/calico/felix/v1/host/{HOST}/endpoint/hep-missing"
STALE = {  # an earlier run's reports of endpoints that are gone
    f"{ROOT}/workload/k8s/ns1%2fgone/endpoint/eth0": '{"status":"up"}',
    f"/calico/felix/v1/host/{HOST}/endpoint/old-hep": '{"status":"down"}',
}
OTHERS = {  # not this agent's to touch
    f"/calico/felix/v2/{REGION}/host/node2/workload/k8s/ns1%2fx/endpoint/eth0": '{"status":"up"}',
    f"/calico/felix/v2/no-region/host/{HOST}/workload/k8s/ns1%2fx/endpoint/eth0": '{"status":"up"}',
    "/calico/felix/v1/host/node2/endpoint/hep": '{"status":"up"}',
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    env = {"FELIX_REPORTINGINTERVALSECS": "1", "FELIX_REPORTINGTTLSECS": "3",
           "FELIX_ENDPOINTREPORTINGENABLED": "true", "FELIX_ENDPOINTREPORTINGDELAYSECS": "0.1",
           "FELIX_OPENSTACKREGION": "r1"}
    with felix_node_on_etcd(env=env) as n:
        for key, value in {**STALE, **OTHERS}.items():
            n.client.kv.put(key, value)
        n.namespace_profile("ns1")
        n.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
        n.add_pod("a", "10.65.0.10", labels={"app": "a"})
        # A host interface for a host endpoint (a veth: this kernel may lack dummy links).
        n.ns.run("ip", "link", "add", "hep0", "type", "veth", "peer", "name", "hep0peer")
        n.ns.run("ip", "link", "set", "hep0peer", "up")
        n.ns.run("ip", "link", "set", "hep0", "up")
        n.write(_resource("HostEndpoint", "hep-dummy", {"node": HOST, "interfaceName": "hep0"}))
        n.write(_resource("HostEndpoint", "hep-missing", {"node": HOST, "interfaceName": "nosuch0"}))
        n.start_agent(tmp_path_factory.mktemp("felix-status-reports"))
        n.wait_ready(40)
        yield n


def stored(node, prefix: str = "/calico/felix/") -> dict[str, object]:
    items, _ = node.client.kv.list(prefix)
    return {kv.key: json.loads(kv.value) for kv in items}


def endpoint_statuses(node) -> dict[str, str]:
    return {k: v["status"] for k, v in stored(node).items() if "/endpoint/" in k}


def expect_statuses(node, expected: dict[str, str]) -> None:
    want = {**expected, **{k: json.loads(v)["status"] for k, v in OTHERS.items()}}
    assert eventually(lambda: endpoint_statuses(node) == want, WAIT), \
        f"endpoint statuses {endpoint_statuses(node)}, expected {want}\n{node.log_text()[-3000:]}"


def test_endpoint_statuses_replace_an_earlier_runs(node):
    expect_statuses(node, {POD_KEY: "up", HEP_KEY: "up", HEP_MISSING_KEY: "error"})


def test_the_agents_status_is_reported(node):
    # The first report comes 10 s after the agent starts, as Felix's.
    assert eventually(lambda: ACTIVE in stored(node) and not stored(node)[ACTIVE]["first_update"], WAIT), \
        node.log_text()[-3000:]
    report = stored(node)
    assert set(report[ACTIVE]) == {"time", "uptime", "first_update"}
    assert report[ACTIVE]["time"].endswith("Z") and report[ACTIVE]["uptime"] >= 10
    assert set(report[LAST]) == {"time", "uptime", "first_update"}


def test_statuses_follow_the_interfaces(node):
    pod = node.pods["a"]
    node.ns.run("ip", "link", "set", pod.interface, "down")
    node.ns.run("ip", "link", "set", "hep0", "down")
    try:
        expect_statuses(node, {POD_KEY: "down", HEP_KEY: "down", HEP_MISSING_KEY: "error"})
    finally:
        node.ns.run("ip", "link", "set", pod.interface, "up")
        node.ns.run("ip", "link", "set", "hep0", "up")
    expect_statuses(node, {POD_KEY: "up", HEP_KEY: "up", HEP_MISSING_KEY: "error"})


def test_a_deleted_endpoint_loses_its_status(node):
    pod = node.pods["a"]
    node.delete("WorkloadEndpoint", pod.endpoint().name, "ns1")
    node.delete("HostEndpoint", "hep-missing")
    try:
        expect_statuses(node, {HEP_KEY: "up"})
    finally:
        node.write(pod.endpoint())
    expect_statuses(node, {POD_KEY: "up", HEP_KEY: "up"})


def test_the_status_expires_when_the_agent_dies(node):
    assert eventually(lambda: ACTIVE in stored(node), WAIT)
    node.stop_agent(signal.SIGKILL)
    # The lease (3 s) runs out with nobody renewing it; the last report stays.
    assert eventually(lambda: ACTIVE not in stored(node), 10.0), stored(node)
    assert LAST in stored(node)
    # Endpoint statuses are left as they were, as Felix leaves them.
    assert endpoint_statuses(node)[POD_KEY] == "up"
