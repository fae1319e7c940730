"""kube-proxy IPVS mode with the real agent: a node namespace with ``kube-ipvs0`` (a service
address on it, as kube-proxy sets up), pods on ``cali`` veths, real TCP.

IPVS itself is not in this kernel, so each half of an IPVS-forwarded packet's path is
driven separately, as it happens for real:
- INPUT: a pod's packet to a service address (on kube-ipvs0, so not in ``this-host``) is
  classed as forwarded: it gets the pod interface's endpoint mark and skips the to-host
  rules (a pod's packet to the node's own address still meets them);
- OUTPUT: IPVS sends the packet on with that mark, so cali-OUTPUT polices it as forwarded
  (the source pod's egress policy by mark, then the destination pod's ingress policy). A
  host socket with the same mark (SO_MARK) makes exactly such a packet.
"""
from __future__ import annotations

import re

import pytest

from e2e.probes import eventually
from felix_node import _resource, felix_node_on_etcd

WAIT = 15.0
SERVICE_IP = "10.96.0.10"
NON_CALI_MARK = 0x200000  # the lowest endpoint bit of Felix's default mark mask


def add_kube_ipvs0(node) -> None:
    node.ns.run("ip", "link", "add", "kube-ipvs0", "type", "bridge")
    node.ns.run("ip", "addr", "add", f"{SERVICE_IP}/32", "dev", "kube-ipvs0")
    node.ns.run("ip", "link", "set", "kube-ipvs0", "up")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with felix_node_on_etcd() as n:
        n.namespace_profile("ns1")
        n.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
        n.add_pod("client", "10.65.0.10", labels={"app": "client"})
        n.add_pod("server", "10.65.0.11", labels={"app": "server"})
        for port in (80, 81, 82):
            n.listen("server", port)
        n.listen("node", 80)
        # Egress of the client: nothing to port 81. Ingress of the server: nothing to 82.
        n.write(_resource("GlobalNetworkPolicy", "client-egress", {
            "selector": "app == 'client'", "types": ["Egress"],
            "egress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [81]}},
                       {"action": "Allow"}]}))
        n.write(_resource("GlobalNetworkPolicy", "server-ingress", {
            "selector": "app == 'server'", "types": ["Ingress"],
            "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [82]}},
                        {"action": "Allow"}]}))
        add_kube_ipvs0(n)
        n.start_agent(tmp_path_factory.mktemp("felix-ipvs"))
        n.wait_ready(40)
        yield n


def expect(node, src, dst, port, ok: bool, mark: int = 0):
    got = eventually(lambda: node.can(src, "tcp", dst, port, mark=mark) == ok, WAIT)
    assert got, (f"{src} -> {dst} tcp/{port} (mark {mark:#x}): expected {'allowed' if ok else 'blocked'}\n"
                 f"{node.iptables_save()[-3000:]}\n{node.log_text()[-2000:]}")


def endpoint_mark(node, pod: str) -> int:
    """The mark the agent gave the pod's interface, as programmed in its cali-sm- chain."""
    iface = node.pods[pod].interface
    found = re.search(rf"-A cali-sm-{iface} .*--set-x?mark (0x[0-9a-f]+)/0xffe00000", node.iptables_save())
    assert found, node.iptables_save()
    return int(found.group(1), 16)


def sm_packets(node, pod: str) -> int:
    iface = node.pods[pod].interface
    text = node.ns.run("iptables-legacy", "-w", "-t", "filter", "-L", f"cali-sm-{iface}", "-v", "-x", "-n").stdout
    rows = [line.split() for line in text.splitlines()[2:] if line.strip()]
    return sum(int(r[0]) for r in rows)


def test_ipvs_support_is_on(node):
    assert eventually(lambda: "-A cali-INPUT" in node.iptables_save()
                      and ":cali-forward-check" in node.iptables_save(), WAIT)
    assert "kube-proxy is in IPVS mode" in node.log_text()


def test_pod_to_service_address_is_classed_as_forwarded(node):
    # To the node's own address the pod meets the to-host rules (DefaultEndpointToHostAction
    # Drop); to a service address the packet is IPVS's to forward: marked, not dropped.
    expect(node, "client", "node", 80, False)
    before = sm_packets(node, "client")
    expect(node, "client", SERVICE_IP, 80, True)
    assert sm_packets(node, "client") > before


def test_forwarded_packets_get_source_egress_and_destination_ingress_policy(node):
    mark = endpoint_mark(node, "client")
    # Carrying the client's mark: the client's egress policy applies (81 denied) and then
    # the server's ingress policy (82 denied).
    expect(node, "node", "server", 80, True, mark=mark)
    expect(node, "node", "server", 81, False, mark=mark)
    expect(node, "node", "server", 82, False, mark=mark)
    # From a source that is not a Calico endpoint: only the server's ingress policy.
    expect(node, "node", "server", 81, True, mark=NON_CALI_MARK)
    expect(node, "node", "server", 82, False, mark=NON_CALI_MARK)
    # The host's own traffic to a workload is not policed at all.
    expect(node, "node", "server", 82, True)


def test_kube_ipvs0_going_and_coming_back_switches_ipvs_support(node):
    mark = endpoint_mark(node, "client")
    node.ns.run("ip", "link", "del", "kube-ipvs0")
    try:
        assert eventually(lambda: ":cali-forward-check" not in node.iptables_save(), WAIT), node.log_text()[-2000:]
        assert ":cali-sm-" not in node.iptables_save()
        # The mark means nothing any more: such packets are the host's own, not policed.
        expect(node, "node", "server", 81, True, mark=mark)
    finally:
        add_kube_ipvs0(node)
    assert eventually(lambda: ":cali-forward-check" in node.iptables_save(), WAIT), node.log_text()[-2000:]
    expect(node, "client", SERVICE_IP, 80, True)
    expect(node, "node", "server", 81, False, mark=endpoint_mark(node, "client"))
