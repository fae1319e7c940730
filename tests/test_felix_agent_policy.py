"""The policy agent for real (spec Appendix B, checks 1-9 and 11): a node namespace running
``calico-node felix`` against a real etcd, pods on ``cali`` veths, an external peer on the
node's eth0, and real TCP, UDP and ICMP between them.

One node serves the whole module; each test writes the resources it needs and removes
them afterwards, and waits for the agent to converge by probing.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from e2e.probes import eventually
from felix_node import EXTERNAL_IP, NODE_IP, _resource, felix_node_on_etcd

WAIT = 15.0


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with felix_node_on_etcd() as n:
        n.namespace_profile("ns1")
        n.namespace_profile("ns2")
        n.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16", "natOutgoing": True}))
        n.add_pod("a", "10.65.0.10", labels={"app": "a"})
        n.add_pod("b", "10.65.0.11", labels={"app": "b"},
                  ports=[{"name": "http", "protocol": "TCP", "port": 8080}])
        n.add_pod("c", "10.65.0.12")
        n.add_pod("d", "10.65.1.13", namespace="ns2", labels={"app": "client"})
        for where in ("a", "b", "c", "d", "external"):
            for port in (80, 81, 8080, 8081):
                n.listen(where, port)
        n.start_agent(tmp_path_factory.mktemp("felix"))
        n.wait_ready(40)
        yield n


@pytest.fixture
def cleanup(node):
    """Delete whatever a test wrote (given as (kind, name, namespace))."""
    written: list[tuple[str, str, str]] = []
    yield written
    # Newest first, each once, tiers after the policies in them.
    order = list(dict.fromkeys(reversed(written)))
    for kind, name, namespace in sorted(order, key=lambda w: w[0] == "Tier"):
        node.delete(kind, name, namespace)


def _write(node, cleanup, res):
    node.write(res)
    cleanup.append((res.kind, res.name, res.namespace))


def expect(node, src, proto, dst, port, ok: bool, timeout: float = WAIT):
    """Wait until the probe gives ``ok``; fail with the agent's log tail otherwise."""
    got = eventually(lambda: node.can(src, proto, dst, port) == ok, timeout)
    assert got, (f"{src} -> {dst} {proto}/{port}: expected {'allowed' if ok else 'blocked'}\n"
                 f"{node.log_text()[-3000:]}")


def test_readiness_and_liveness(node):
    # Check 11 (the before-ready half is in test_felix_agent_lifecycle).
    assert node.ready()
    run = node.ns.run("python3", "-c", "import urllib.request; print(urllib.request.urlopen("
                      "'http://localhost:9099/liveness', timeout=2).status)")
    assert run.stdout.strip() == "200"


def test_no_policy_allows_and_unknown_interfaces_are_dropped(node):
    # Check 1: pods talk freely (the namespace profile allows everything)...
    for proto, port in (("tcp", 80), ("udp", 80), ("icmp", 0)):
        expect(node, "a", proto, "b", port, True)
        expect(node, "b", proto, "a", port, True)
    # ... but a cali veth with no WorkloadEndpoint is dropped both ways.
    stray = node.add_pod("stray", "10.65.0.99", write=False)
    try:
        node.listen("stray", 80)
        expect(node, "stray", "tcp", "a", 80, False)
        expect(node, "a", "tcp", "stray", 80, False)
    finally:
        node.pods.pop("stray")
        from e2e.pods import unwire
        unwire(stray, node.ns.name)


def test_ingress_default_deny_keeps_replies(node, cleanup):
    # Check 2: an ingress policy with no rules on b.
    _write(node, cleanup, _resource("NetworkPolicy", "deny-b", {"selector": "app == 'b'", "types": ["Ingress"]},
                                    namespace="ns1"))
    expect(node, "a", "tcp", "b", 80, False)
    expect(node, "a", "icmp", "b", 0, False)
    expect(node, "b", "tcp", "a", 80, True)   # b's own flows out, and their replies back in
    expect(node, "b", "udp", "a", 80, True)


def test_selector_and_port_allow_follow_labels(node, cleanup):
    # Check 3.
    _write(node, cleanup, _resource("NetworkPolicy", "web", {
        "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "role == 'client'"},
                     "destination": {"ports": [80]}}]}, namespace="ns1"))
    pod_a = node.pods["a"]
    pod_a.labels["role"] = "client"
    node.write(pod_a.endpoint())
    try:
        expect(node, "a", "tcp", "b", 80, True)
        expect(node, "a", "tcp", "b", 81, False)
        expect(node, "c", "tcp", "b", 80, False)
        node.pods["c"].labels["role"] = "client"       # relabel c at runtime
        node.write(node.pods["c"].endpoint())
        expect(node, "c", "tcp", "b", 80, True)
    finally:
        for name in ("a", "c"):
            node.pods[name].labels.pop("role", None)
            node.write(node.pods[name].endpoint())


def test_namespace_selector_follows_namespace_labels(node, cleanup):
    # Check 4: d lives in ns2; allow from namespaces labelled env=prod.
    _write(node, cleanup, _resource("NetworkPolicy", "from-prod", {
        "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": {"namespaceSelector": "env == 'prod'"}}]}, namespace="ns1"))
    try:
        expect(node, "d", "tcp", "b", 80, False)
        node.namespace_profile("ns2", {"env": "prod"})
        expect(node, "d", "tcp", "b", 80, True)
        node.namespace_profile("ns2", {"env": "dev"})
        expect(node, "d", "tcp", "b", 80, False)
    finally:
        node.namespace_profile("ns2")


def test_tiers_order_pass_and_default_action(node, cleanup):
    # Check 5: an earlier tier's deny beats a later allow; Pass goes on to the next tier;
    # a tier whose defaultAction is Pass does not drop at its end.
    _write(node, cleanup, _resource("Tier", "security", {"order": 100, "defaultAction": "Deny"}))
    _write(node, cleanup, _resource("NetworkPolicy", "allow-all-b", {
        "selector": "app == 'b'", "types": ["Ingress"], "ingress": [{"action": "Allow"}]}, namespace="ns1"))
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "security.deny-81", {
        "tier": "security", "order": 1, "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [81]}},
                    {"action": "Pass"}]}))
    expect(node, "a", "tcp", "b", 81, False)   # denied in tier security
    expect(node, "a", "tcp", "b", 80, True)    # passed on, allowed in default
    # Same order, names decide: "security.a-allow" sorts before "security.deny-81".
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "security.a-allow", {
        "tier": "security", "order": 1, "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [81]}}]}))
    expect(node, "a", "tcp", "b", 81, True)
    # Without the Pass rule, traffic no policy in the tier decides is dropped at its end...
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "security.deny-81", {
        "tier": "security", "order": 1, "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [81]}}]}))
    expect(node, "a", "tcp", "b", 80, False)
    # ... unless the tier's default action is Pass.
    _write(node, cleanup, _resource("Tier", "security", {"order": 100, "defaultAction": "Pass"}))
    expect(node, "a", "tcp", "b", 80, True)


def test_egress_nets_icmp_and_named_ports(node, cleanup):
    # Check 6: egress from a allowed only to 10.65.0.0/24 except c's /32, plus ICMP echo;
    # ingress to b only on its named port "http" (8080), not 8081.
    _write(node, cleanup, _resource("NetworkPolicy", "a-egress", {
        "selector": "app == 'a'", "types": ["Egress"],
        "egress": [{"action": "Allow", "protocol": "TCP",
                    "destination": {"nets": ["10.65.0.0/24"], "notNets": ["10.65.0.12/32"]}},
                   {"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8}}]}, namespace="ns1"))
    _write(node, cleanup, _resource("NetworkPolicy", "b-http", {
        "selector": "app == 'b'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["http"]}},
                    {"action": "Allow", "protocol": "ICMP"}]}, namespace="ns1"))
    expect(node, "a", "tcp", "b", 8080, True)
    expect(node, "a", "tcp", "b", 8081, False)
    expect(node, "a", "tcp", "c", 80, False)       # excepted by notNets
    expect(node, "a", "udp", "c", 80, False)       # only TCP and ICMP leave a
    expect(node, "a", "icmp", "c", 0, True)
    expect(node, "a", "tcp", "d", 80, False)       # 10.65.1.13 is outside the allowed net


@pytest.mark.parametrize("action, ok", [("Drop", False), ("Accept", True)])
def test_workload_to_host_action(node, cleanup, action, ok):
    # Check 7: pod -> host follows DefaultEndpointToHostAction (changing it restarts the
    # agent with Felix's code 129, as Felix does); host -> pod is always allowed. (The
    # resource takes Calico's spelling, Drop/Accept/Return; only FELIX_* variables take any case.)
    restarts = node.restarts
    _write(node, cleanup, _resource("FelixConfiguration", f"node.{node.name}",
                                    {"defaultEndpointToHostAction": action}))
    if action != "Drop":  # Drop is the default: writing it changes nothing
        assert eventually(lambda: node.restarts > restarts, WAIT), node.log_text()[-3000:]
    node.wait_ready(40)
    expect(node, "a", "icmp", "node", 0, ok)
    expect(node, "node", "icmp", "a", 0, True)


def test_nat_outgoing(node):
    # Check 9: the pool has natOutgoing: a -> external arrives from the node's address;
    # pod -> pod keeps the pod's address.
    result = eventually(lambda: node.probe("a", "tcp", "external", 80), WAIT)
    assert result.ok and result.source_seen == NODE_IP, result
    result = node.probe("a", "tcp", "b", 80)
    assert result.ok and result.source_seen == node.pods["a"].ipv4


def test_host_endpoint_failsafe_forward_prednat_and_untracked(node, cleanup):
    # Check 8: a HostEndpoint on eth0 with no policy: failsafe ports (22) pass, others drop.
    node.listen("node", 22)
    node.listen("node", 8080)
    _write(node, cleanup, _resource("HostEndpoint", "node1-eth0", {
        "node": node.name, "interfaceName": "eth0", "expectedIPs": [NODE_IP]}, labels={"role": "host"}))
    expect(node, "external", "tcp", "node", 22, True)
    expect(node, "external", "tcp", "node", 8080, False)
    # Forwarded traffic (external -> pod) is not affected without applyOnForward policy.
    expect(node, "external", "tcp", "b", 80, True)
    # A normal GNP opens 8080 on the host.
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "host-8080", {
        "selector": "role == 'host'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8080]}}]}))
    expect(node, "external", "tcp", "node", 8080, True)
    # An applyOnForward policy now governs forwarded traffic too: only port 81 forwards.
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "fwd-81", {
        "selector": "role == 'host'", "types": ["Ingress"], "applyOnForward": True,
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [81]}}]}))
    expect(node, "external", "tcp", "b", 81, True)
    expect(node, "external", "tcp", "b", 80, False)
    # A preDNAT deny from the external peer wins over everything in filter.
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "prednat-deny", {
        "selector": "role == 'host'", "types": ["Ingress"], "preDNAT": True, "applyOnForward": True,
        "ingress": [{"action": "Deny", "protocol": "TCP", "source": {"nets": [f"{EXTERNAL_IP}/32"]},
                     "destination": {"ports": [8080]}}]}))
    expect(node, "external", "tcp", "node", 8080, False)
    node.delete("GlobalNetworkPolicy", "prednat-deny")
    # A doNotTrack allow takes effect: the untracked chains accept and mark NOTRACK.
    _write(node, cleanup, _resource("GlobalNetworkPolicy", "untracked-8081", {
        "selector": "role == 'host'", "types": ["Ingress", "Egress"], "doNotTrack": True, "applyOnForward": True,
        "ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [8081]}}],
        "egress": [{"action": "Allow", "protocol": "TCP", "source": {"ports": [8081]}}]}))
    node.listen("node", 8081)
    expect(node, "external", "tcp", "node", 8081, True)
    raw = node.iptables_save("raw")
    assert "-A cali-fh-eth0" in raw and "NOTRACK" in raw


_TOS_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, ancillary, flags, peer = s.recvmsg(64, socket.CMSG_SPACE(1))
    tos = ancillary[0][2][0] if ancillary else -1
    s.sendto(str(tos).encode(), peer)
"""


def test_dscp_marks_workload_traffic_leaving_the_cluster(node):
    """qosControls.dscp: the workload's packets to outside the cluster carry the DSCP value
    (AF21 = 18, so TOS 72); packets within the pools do not."""
    echo = node.external.popen(sys.executable, "-c", _TOS_ECHO, "5353", stdout=subprocess.PIPE, text=True)
    pod = node.pods["a"]
    try:
        assert echo.stdout.readline().strip() == "ready"
        marked = pod.endpoint()
        marked.spec["qosControls"] = {"dscp": "AF21"}
        node.write(marked)

        def tos_seen() -> str:
            return node.probe("a", "udp", "external", 5353).source_seen

        assert eventually(lambda: tos_seen() == "72", WAIT), (tos_seen(), node.log_text()[-2000:])
        assert "-j DSCP --set-dscp 0x12" in node.iptables_save("mangle")
        node.write(pod.endpoint())
        assert eventually(lambda: tos_seen() == "0", WAIT), tos_seen()
    finally:
        node.write(pod.endpoint())
        echo.kill()
        echo.wait()


def test_service_loop_prevention(node):
    """BGPConfiguration default advertises a service CIDR that nothing on this node answers:
    traffic to it is dropped rather than sent on (here, to the upstream peer, which would
    answer)."""
    node.external.run("ip", "addr", "add", "10.96.0.50/32", "dev", "lo")
    try:
        expect(node, "a", "tcp", "10.96.0.50", 80, True)  # routed upstream by default
        node.write(_resource("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
        expect(node, "a", "tcp", "10.96.0.50", 80, False)
        assert "-A cali-cidr-block -d 10.96.0.0/12" in node.iptables_save()
        node.delete("BGPConfiguration", "default")
        expect(node, "a", "tcp", "10.96.0.50", 80, True)
    finally:
        node.delete("BGPConfiguration", "default")
        node.external.run("ip", "addr", "del", "10.96.0.50/32", "dev", "lo")
