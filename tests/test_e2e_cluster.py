"""End to end: a multi-host cluster in network namespaces running the real entrypoint
``calico-node start`` per host (``e2e.cluster``), pods added as the CNI plugin adds them,
real BGP between the hosts' BIRDs and real TCP/UDP/ICMP between pods.

One three-host BIRD cluster serves the mesh, policy, NAT, route-reflector, restart and
scale scenarios (each leaves the cluster as it found it); the VXLAN and the three-member
etcd scenarios build their own.
"""
from __future__ import annotations

import ipaddress
import json
import os
import time

import pytest

from e2e.cluster import OUTSIDE_IP, Cluster
from e2e.probes import eventually

PORT = 8080


def apply(host, yaml_text: str) -> None:
    host.calicoctl("apply", "-f", "-", stdin=yaml_text)


def delete(host, kind: str, name: str, namespace: str = "") -> None:
    args = ["delete", kind, name, "--skip-not-exists"] + (["-n", namespace] if namespace else [])
    host.calicoctl(*args)


NS_PROFILE = """\
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.%(ns)s}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
  labelsToApply: {pcns.projectcalico.org/name: %(ns)s%(extra)s}
"""


@pytest.fixture(scope="module")
def cluster():
    with Cluster(hosts=3, prefix=f"e2e{os.urandom(3).hex()}") as c:
        for ns in ("e2e", "other"):
            apply(c.hosts[0], NS_PROFILE % {"ns": ns, "extra": ""})
        c.pods = {}
        for i, host in enumerate(c.hosts):
            for j, role in enumerate(("web", "db")):
                name = f"{role}{i + 1}"
                netns, ip = c.add_pod(host, name, "e2e", {"role": role})
                c.pods[name] = (netns, ip, host)
                c.listen(netns, PORT)
        c.listen(c.outside, PORT)
        yield c


def can(c: Cluster, src: str, dst: str, proto: str = "tcp", port: int = PORT) -> bool:
    dst_ip = OUTSIDE_IP if dst == "outside" else c.pods[dst][1]
    return c.probe(c.pods[src][0], proto, dst_ip, port).ok


def all_pairs_ok(c: Cluster) -> bool:
    return all(can(c, s, d) for s in c.pods for d in c.pods if s != d)


def test_full_mesh_routes_and_pod_to_pod(cluster):
    # Every host learns every other host's pod blocks from BGP (routes of proto bird).
    assert eventually(lambda: all_pairs_ok(cluster), 60), _logs(cluster)
    for host in cluster.hosts:
        routes = json.loads(host.run("ip", "-j", "route", "show", "proto", "bird").stdout or "[]")
        nets = [ipaddress.ip_network(r["dst"]) for r in routes if "/" in r["dst"]]
        others = [cluster.pods[p][1] for p in cluster.pods if cluster.pods[p][2] is not host]
        assert all(any(ipaddress.ip_address(ip) in n for n in nets) for ip in others), (host.name, routes)
    for proto in ("udp", "icmp"):
        assert eventually(lambda: can(cluster, "web1", "db2", proto, PORT if proto != "icmp" else 0), 10)


def test_policy_matrix_across_hosts(cluster):
    # Appendix B's checks 2, 3 and 5 with the endpoints on different hosts.
    host = cluster.hosts[0]
    apply(host, """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: db-from-web, namespace: e2e}
spec:
  selector: role == 'db'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {selector: role == 'web'}
    destination: {ports: [8080]}
""")
    try:
        assert eventually(lambda: can(cluster, "web1", "db2") and not can(cluster, "db1", "db2")
                          and not can(cluster, "web1", "db2", "udp"), 30), _logs(cluster)
        assert can(cluster, "db2", "web1")              # db's own flows out are not restricted
        # A higher tier denies web3 -> db1 before the default tier's allow.
        apply(host, """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.no-web3}
spec:
  tier: security
  selector: role == 'db'
  types: [Ingress]
  ingress:
  - action: Deny
    source: {nets: ["%s/32"]}
  - action: Pass
""" % cluster.pods["web3"][1])
        assert eventually(lambda: not can(cluster, "web3", "db1") and can(cluster, "web2", "db1"), 30)
    finally:
        delete(host, "globalnetworkpolicy", "security.no-web3")
        delete(host, "tier", "security")
        delete(host, "networkpolicy", "db-from-web", "e2e")
    assert eventually(lambda: all_pairs_ok(cluster), 30)


def test_nat_outgoing_to_the_outside(cluster):
    # The default pool has natOutgoing: the outside sees the host's address; pods see pods.
    netns, ip, host = cluster.pods["web2"]
    result = eventually(lambda: cluster.probe(netns, "tcp", OUTSIDE_IP, PORT), 20)
    assert result.ok and result.source_seen == host.ip, result
    result = cluster.probe(netns, "tcp", cluster.pods["db3"][1], PORT)
    assert result.ok and result.source_seen == ip, result


def test_route_reflector_without_the_mesh(cluster):
    # host1 becomes the route reflector; the mesh is switched off; traffic keeps flowing.
    h1 = cluster.hosts[0]
    original = json.loads(h1.calicoctl("get", "node", "host1", "-o", "json").stdout)
    node = json.loads(json.dumps(original))
    node["metadata"]["labels"] = {**node["metadata"].get("labels", {}), "route-reflector": "true"}
    node["spec"]["bgp"]["routeReflectorClusterID"] = "224.0.0.1"
    apply(h1, json.dumps(node))
    apply(h1, """\
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-with-rr}
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false, asNumber: 64512}
""")
    try:
        def rr_topology() -> bool:
            s2 = cluster.hosts[1].calicoctl("node", "status", check=False).stdout
            s1 = h1.calicoctl("node", "status", check=False).stdout
            return ("172.30.0.11" in s2 and "172.30.0.13" not in s2 and "Established" in s2
                    and s1.count("Established") == 2)
        assert eventually(rr_topology, 60), [h.calicoctl("node", "status", check=False).stdout
                                             for h in cluster.hosts]
        assert eventually(lambda: can(cluster, "web2", "db3") and can(cluster, "web3", "db2"), 60)
    finally:
        apply(h1, """\
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: true, asNumber: 64512}
""")
        delete(h1, "bgppeer", "peer-with-rr")
        current = json.loads(h1.calicoctl("get", "node", "host1", "-o", "json").stdout)
        current["metadata"]["labels"] = original["metadata"].get("labels", {})
        current["spec"]["bgp"].pop("routeReflectorClusterID", None)
        h1.calicoctl("replace", "-f", "-", stdin=json.dumps(current))
    assert eventually(lambda: all_pairs_ok(cluster), 90), [h.calicoctl("node", "status", check=False).stdout
                                                         for h in cluster.hosts]


def test_host_restart_resumes_without_leaks(cluster):
    host = cluster.hosts[2]
    assert cluster.stop_host(host) == 0
    cluster.start_host(host)
    cluster.wait_started(host)
    assert eventually(lambda: all_pairs_ok(cluster), 90), _logs(cluster)
    check = host.calicoctl("ipam", "check", check=False)
    assert check.returncode == 0 and "found 0 problems" in check.stdout, check.stdout


def test_scale_three_hosts_fifty_pods_twenty_policies(cluster):
    # 50 pods per host (150) with 20 policies: pod s<h>-<k> has app a<k % 10>; policy p
    # selects a<p % 10> and allows only from a<(p + 1) % 10>. Every probe checked is right
    # within 60 s of the last write.
    added: dict[str, tuple] = {}
    try:
        for h, host in enumerate(cluster.hosts):
            for k in range(50):
                name = f"s{h}-{k}"
                netns, ip = cluster.add_pod(host, name, "other", {"app": f"a{k % 10}"})
                added[name] = (host, netns, ip)
        for p in range(20):
            apply(cluster.hosts[0], f"""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: p{p}, namespace: other}}
spec:
  selector: app == 'a{p % 10}'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {{selector: app == 'a{(p + 1) % 10}'}}
    destination: {{ports: [{PORT}]}}
""")
        started = time.monotonic()
        # (source, target, allowed): cross-host pairs, allowed and denied.
        checks = [("s1-1", "s0-0", True), ("s2-2", "s0-0", False), ("s0-4", "s2-3", True),
                  ("s1-9", "s2-3", False), ("s2-0", "s1-9", True), ("s0-9", "s1-9", False)]
        for target in {t for _, t, _ in checks}:
            cluster.listen(added[target][1], PORT)

        def converged() -> bool:
            return all(cluster.probe(added[src][1], "tcp", added[dst][2], PORT).ok == ok for src, dst, ok in checks)
        assert eventually(converged, 60), _logs(cluster)
        assert time.monotonic() - started < 60
    finally:
        for p in range(20):
            delete(cluster.hosts[0], "networkpolicy", f"p{p}", "other")
        for name, (host, _, _) in added.items():
            cluster.del_pod(host, name, "other")


def _logs(c: Cluster) -> str:
    return "\n".join(f"--- {h.name}\n{h.log_text()[-1500:]}" for h in c.hosts)


def test_vxlan_backend_pod_to_pod():
    with Cluster(hosts=2, backend="vxlan", prefix=f"vx{os.urandom(3).hex()}") as c:
        apply(c.hosts[0], NS_PROFILE % {"ns": "e2e", "extra": ""})
        a_ns, a_ip = c.add_pod(c.hosts[0], "a", "e2e")
        b_ns, b_ip = c.add_pod(c.hosts[1], "b", "e2e")
        c.listen(b_ns, PORT)
        assert eventually(lambda: c.probe(a_ns, "tcp", b_ip, PORT).ok, 60), _logs(c)
        routes = c.hosts[0].run("ip", "route").stdout
        assert "vxlan.calico" in routes and "onlink" in routes
        programs = c.hosts[0].run("supervisorctl", "-c", f"{c.hosts[0].dirs}/etc/supervisord.conf", "status",
                                  check=False).stdout
        assert "felix" in programs and "bird" not in programs, programs  # VXLAN: no BGP


def test_three_member_etcd_survives_member_loss():
    with Cluster(hosts=2, etcd_members=3, prefix=f"ha{os.urandom(3).hex()}") as c:
        h1 = c.hosts[0]
        apply(h1, NS_PROFILE % {"ns": "e2e", "extra": ""})
        a_ns, a_ip = c.add_pod(c.hosts[0], "a", "e2e", {"app": "a"})
        b_ns, b_ip = c.add_pod(c.hosts[1], "b", "e2e", {"app": "b"})
        c.listen(b_ns, PORT)
        assert eventually(lambda: c.probe(a_ns, "tcp", b_ip, PORT).ok, 60), _logs(c)
        c.stop_etcd_member(0)                      # one member killed mid-run
        assert c.probe(a_ns, "tcp", b_ip, PORT).ok
        apply(h1, """\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: b-deny, namespace: e2e}
spec: {selector: app == 'b', types: [Ingress]}
""")
        assert eventually(lambda: not c.probe(a_ns, "tcp", b_ip, PORT).ok, 30), _logs(c)
        c.start_etcd_member(0)                     # back, then another member restarted
        c.stop_etcd_member(1)
        c.start_etcd_member(1)
        delete(h1, "networkpolicy", "b-deny", "e2e")
        assert eventually(lambda: c.probe(a_ns, "tcp", b_ip, PORT).ok, 30), _logs(c)
        # Nothing written twice or lost: one endpoint per pod, IPAM consistent.
        weps = h1.calicoctl("get", "workloadendpoints", "-n", "e2e", "-o", "json").stdout
        assert len(json.loads(weps)["items"]) == 2
        check = h1.calicoctl("ipam", "check", check=False)
        assert check.returncode == 0 and "found 0 problems" in check.stdout, check.stdout
