"""End to end, dual-stack: a three-host cluster with IPv4 and IPv6 (``Cluster(ipv6=True)``:
IP6 autodetected, the default IPv6 pool, FELIX_IPV6SUPPORT=true, pods given an IPv6
address as the CNI plugin's ``assign_ipv6`` does). BIRD6's full mesh over the hosts' IPv6
addresses, the IPv6 pod blocks it carries, the policy agent's IPv6 side of each workload
interface, pod to pod over IPv6 across hosts, and one policy that must behave the same
over both families.
"""
from __future__ import annotations

import ipaddress
import json
import os

import pytest

from e2e.cluster import IPV6_POOL, Cluster, in_ns
from e2e.pods import GATEWAY_V6, host_interface_name
from e2e.probes import eventually

PORT = 8080
NS = "e2e"

NS_PROFILE = f"""\
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {{name: kns.{NS}}}
spec:
  ingress: [{{action: Allow}}]
  egress: [{{action: Allow}}]
  labelsToApply: {{pcns.projectcalico.org/name: {NS}}}
"""


@pytest.fixture(scope="module")
def cluster():
    with Cluster(hosts=3, prefix=f"ds{os.urandom(3).hex()}", ipv6=True) as c:
        c.hosts[0].calicoctl("apply", "-f", "-", stdin=NS_PROFILE)
        # (pod, role) per host: a client and a server on different hosts for each check.
        c.pods = {}
        for host, pods in zip(c.hosts, ((("web1", "web"),), (("db2", "db"),), (("other3", "other"),))):
            for name, role in pods:
                netns, ips = c.add_pod_addresses(host, name, NS, {"role": role})
                c.pods[name] = (netns, ips, host)
                c.listen(netns, PORT)
        yield c


def _v4(c: Cluster, pod: str) -> str:
    return c.pods[pod][1][0]


def _v6(c: Cluster, pod: str) -> str:
    return c.pods[pod][1][1]


def _can(c: Cluster, src: str, dst: str, version: int, proto: str = "tcp") -> bool:
    dst_ip = _v4(c, dst) if version == 4 else _v6(c, dst)
    return c.probe(c.pods[src][0], proto, dst_ip, PORT if proto != "icmp" else 0).ok


def _logs(c: Cluster) -> str:
    return "\n".join(f"--- {h.name}\n{h.log_text()[-1500:]}" for h in c.hosts)


def _ipv6_peers(status: str) -> dict[str, str]:
    """``calicoctl node status``'s IPv6 table: peer address -> INFO column."""
    section = status.partition("IPv6 BGP status")[2]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("|") and "PEER ADDRESS" not in line]
    return {row[0]: row[-1] for row in rows if len(row) >= 5}


def test_pods_are_dual_stack(cluster):
    # One address from each default pool, as the CNI plugin with assign_ipv6 gets them.
    for name, (netns, ips, host) in cluster.pods.items():
        assert len(ips) == 2 and ipaddress.ip_address(ips[0]).version == 4, (name, ips)
        assert ipaddress.ip_address(ips[1]) in ipaddress.ip_network(IPV6_POOL), (name, ips)
    netns, ips, host = cluster.pods["web1"]
    weps = json.loads(host.calicoctl("get", "workloadendpoints", "-n", NS, "-o", "json").stdout)["items"]
    wep = next(w for w in weps if w["spec"]["pod"] == "web1")
    assert wep["spec"]["ipNetworks"] == [f"{ips[0]}/32", f"{ips[1]}/128"]
    # The pod side, as the plugin leaves it: the /128 and a default route via the host
    # side's link-local address.
    addrs = in_ns(netns, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global").stdout
    assert f"{ips[1]}/128" in addrs, addrs
    route = in_ns(netns, "ip", "-6", "route", "show", "default").stdout
    assert f"via {GATEWAY_V6} dev eth0" in route, route


def test_bird6_full_mesh_over_ipv6(cluster):
    # Each host peers with every other host's autodetected IPv6 address.
    def meshed() -> bool:
        for host in cluster.hosts:
            peers = _ipv6_peers(host.calicoctl("node", "status", check=False).stdout)
            want = {h.ip6 for h in cluster.hosts if h is not host}
            if set(peers) != want or any(v != "Established" for v in peers.values()):
                return False
        return True
    assert eventually(meshed, 60), [h.calicoctl("node", "status", check=False).stdout for h in cluster.hosts]
    node = json.loads(cluster.hosts[0].calicoctl("get", "node", "host1", "-o", "json").stdout)
    assert node["spec"]["bgp"]["ipv6Address"] == f"{cluster.hosts[0].ip6}/64"


def test_ipv6_blocks_routed_by_bird(cluster):
    # Every host has a route (proto bird) for each other host's IPv6 pod block, via that
    # host's IPv6 address.
    def routed(host) -> bool:
        routes = json.loads(host.run("ip", "-6", "-j", "route", "show", "proto", "bird").stdout or "[]")
        for name, (_, ips, other) in cluster.pods.items():
            if other is host:
                continue
            if not any(ipaddress.ip_address(ips[1]) in ipaddress.ip_network(r["dst"]) and r.get("gateway") == other.ip6
                       for r in routes if r.get("type", "unicast") == "unicast"):
                return False
        return True
    for host in cluster.hosts:
        assert eventually(lambda: routed(host), 60), (host.name, host.run("ip", "-6", "route").stdout)


def test_agent_programs_the_ipv6_side_of_workload_interfaces(cluster):
    # Felix's configureInterface and route table for IPv6: proxy_ndp and forwarding on,
    # router advertisements off, the /128 routed to the interface (proto boot, metric
    # 1024) and, unlike IPv4, no permanent neighbour entry.
    netns, ips, host = cluster.pods["db2"]
    iface = host_interface_name(NS, "db2")

    def sysctl(name: str) -> str:
        return host.run("cat", f"/proc/sys/net/ipv6/conf/{iface}/{name}").stdout.strip()

    assert eventually(lambda: (sysctl("proxy_ndp"), sysctl("forwarding"), sysctl("accept_ra")) == ("1", "1", "0"),
                      20), host.log_text()[-2000:]
    routes = json.loads(host.run("ip", "-d", "-6", "-j", "route", "show", "dev", iface).stdout)
    assert {"dst": ips[1], "protocol": "boot", "metric": 1024} in [
        {k: r.get(k) for k in ("dst", "protocol", "metric")} for r in routes], routes
    assert host.run("cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
    assert "PERMANENT" not in host.run("ip", "-6", "neigh", "show", "dev", iface).stdout
    assert "PERMANENT" in host.run("ip", "-4", "neigh", "show", "dev", iface).stdout


def test_pod_to_pod_over_ipv6_across_hosts(cluster):
    pairs = [(s, d) for s in cluster.pods for d in cluster.pods if s != d]
    assert eventually(lambda: all(_can(cluster, s, d, 6) for s, d in pairs), 60), _logs(cluster)
    for proto in ("udp", "icmp"):
        assert eventually(lambda: _can(cluster, "web1", "db2", 6, proto), 10), proto
    # The listener sees the pod's own IPv6 address: no NAT between pods.
    result = cluster.probe(cluster.pods["other3"][0], "tcp", _v6(cluster, "web1"), PORT)
    assert result.ok and result.source_seen == _v6(cluster, "other3"), result
    assert all(_can(cluster, s, d, 4) for s, d in pairs)


def test_policy_is_the_same_over_both_families(cluster):
    # Only role=web may reach db, and only on TCP 8080: web1 (host1) and other3 (host3)
    # towards db2 (host2), over IPv4 and IPv6 alike.
    host = cluster.hosts[0]
    host.calicoctl("apply", "-f", "-", stdin=f"""\
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {{name: db-from-web, namespace: {NS}}}
spec:
  selector: role == 'db'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source: {{selector: role == 'web'}}
    destination: {{ports: [{PORT}]}}
""")
    expected = {("web1", "tcp"): True, ("other3", "tcp"): False, ("web1", "udp"): False,
                ("web1", "icmp"): False, ("other3", "icmp"): False}

    def matrix(version: int) -> dict:
        return {(src, proto): _can(cluster, src, "db2", version, proto) for src, proto in expected}
    try:
        for version in (4, 6):
            assert eventually(lambda: matrix(version) == expected, 30), (version, matrix(version), _logs(cluster))
        # db's own connections out are not restricted, in either family.
        assert _can(cluster, "db2", "other3", 4) and _can(cluster, "db2", "other3", 6)
    finally:
        host.calicoctl("delete", "networkpolicy", "db-from-web", "-n", NS, "--skip-not-exists")
    assert eventually(lambda: _can(cluster, "other3", "db2", 6) and _can(cluster, "other3", "db2", 4), 30)
