"""Bandwidth limits with the real agent: a node namespace running ``calico-node felix``
against a real etcd, a pod on a ``cali`` veth. A WorkloadEndpoint's ``qosControls``
bandwidth settings become token buckets on the pod's interface (and its IFB device);
changing them changes the qdiscs, removing them removes them, and the endpoint's
iptables chains stay as they were (bandwidth is no iptables rule)."""
from __future__ import annotations

import re

import pytest

from e2e.probes import eventually
from felix_node import _resource, felix_node_on_etcd
from node.felix.qos_bandwidth import ifb_device_name

WAIT = 15.0


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with felix_node_on_etcd() as n:
        n.namespace_profile("ns1")
        n.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
        n.add_pod("a", "10.65.0.10")
        n.start_agent(tmp_path_factory.mktemp("felix-qos"))
        n.wait_ready(40)
        yield n


def write_limits(node, qos: dict | None) -> None:
    res = node.pods["a"].endpoint()
    if qos is not None:
        res.spec["qosControls"] = qos
    node.write(res)


def qdiscs(node) -> str:
    return node.ns.run("tc", "qdisc", "show").stdout


def expect(node, pattern: str, present: bool = True) -> None:
    got = eventually(lambda: bool(re.search(pattern, qdiscs(node))) == present, WAIT)
    assert got, f"{pattern!r} {'missing' if present else 'still there'}:\n{qdiscs(node)}\n{node.log_text()[-2000:]}"


def endpoint_chains(node, iface: str) -> list[str]:
    return [line for line in node.iptables_save().splitlines() if f"cali-tw-{iface}" in line
            or f"cali-fw-{iface}" in line]


def test_bandwidth_limits_follow_the_workload_endpoint(node):
    iface = node.pods["a"].interface
    ifb = ifb_device_name(iface)
    assert eventually(lambda: endpoint_chains(node, iface), WAIT)
    chains = endpoint_chains(node, iface)

    write_limits(node, {"ingressBandwidth": 10_000_000, "ingressBurst": 300_000_000,
                        "ingressPeakrate": 100_000_000, "egressBandwidth": 5_000_000})
    expect(node, rf"qdisc tbf \w+: dev {iface} root refcnt \d+ rate 10Mbit .*peakrate 100Mbit")
    expect(node, rf"qdisc ingress ffff: dev {iface} parent ffff:fff1")
    expect(node, rf"qdisc tbf \w+: dev {ifb} root refcnt \d+ rate 5Mbit ")
    assert endpoint_chains(node, iface) == chains  # no iptables rule for bandwidth

    write_limits(node, {"ingressBandwidth": 20_000_000})
    expect(node, rf"qdisc tbf \w+: dev {iface} root refcnt \d+ rate 20Mbit ")
    expect(node, rf"dev {ifb} ", present=False)
    expect(node, rf"qdisc ingress ffff: dev {iface}", present=False)

    write_limits(node, None)
    expect(node, rf"qdisc tbf \w+: dev {iface} ", present=False)
    assert endpoint_chains(node, iface) == chains
    assert "QoS bandwidth" not in node.log_text()  # nothing failed on the way
