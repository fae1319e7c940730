"""``calico-node pod add``'s parts: the veth wiring (``e2e.pods.wire``) as Calico's CNI
plugin leaves a dual-stack pod, and the ``--ip``/``--ipv6`` choices."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from e2e.pods import GATEWAY_V4, GATEWAY_V6, HOST_SIDE_MAC, Pod, unwire, wire
from ipam_fixtures import ipam_keys, make_node, make_pool
from netns import Namespace
from node.cli import calico_node
from node.cli.roles import pod as pod_role
from node.cli.roles.pod import PodError, _parse_ips

POD_V4, POD_V6 = "10.65.0.5", "fd00:65::5"


def _sysctl(ns: Namespace, path: str) -> str:
    return ns.run("cat", f"/proc/sys/{path}").stdout.strip()


@pytest.fixture
def namespaces():
    with Namespace("pwh") as host, Namespace("pwp") as pod:
        yield host, pod


def test_dual_stack_pod_is_wired_as_the_cni_plugin_does(namespaces):
    host, pod_ns = namespaces
    pod = Pod("ns1", "p1", "node1", [POD_V4, POD_V6])
    wire(pod, host.name, pod_ns.name)
    try:
        iface = pod.interface
        # Host side: Calico's MAC, the link-local address derived from it, no DAD.
        link = json.loads(host.run("ip", "-j", "addr", "show", "dev", iface).stdout)[0]
        assert link["address"] == HOST_SIDE_MAC
        assert [a["local"] for a in link["addr_info"] if a["family"] == "inet6"] == [GATEWAY_V6]
        assert _sysctl(host, f"net/ipv6/conf/{iface}/accept_dad") == "0"
        assert _sysctl(host, f"net/ipv6/conf/{iface}/disable_ipv6") == "0"
        # Pod side: the /32 and /128, the two default routes, IPv6 on, DAD off, no forwarding.
        addrs = pod_ns.run("ip", "-o", "addr", "show", "dev", "eth0", "scope", "global").stdout
        assert f"{POD_V4}/32" in addrs and f"{POD_V6}/128" in addrs, addrs
        assert "tentative" not in pod_ns.run("ip", "-6", "addr", "show", "dev", "eth0").stdout
        assert pod_ns.run("ip", "route", "show", "default").stdout.split()[:5] == [
            "default", "via", GATEWAY_V4, "dev", "eth0"]
        assert f"{GATEWAY_V4} dev eth0 scope link" in pod_ns.run("ip", "route").stdout
        assert pod_ns.run("ip", "-6", "route", "show", "default").stdout.split()[:5] == [
            "default", "via", GATEWAY_V6, "dev", "eth0"]
        for path in ("net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6",
                     "net/ipv6/conf/lo/disable_ipv6", "net/ipv6/conf/eth0/accept_dad",
                     "net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"):
            assert _sysctl(pod_ns, path) == "0", path
        assert pod.mac and pod.mac != HOST_SIDE_MAC and pod.netns == pod_ns.name
        # With the route the policy agent adds, the host reaches the pod over IPv6 at once
        # (nothing waits for DAD), and the pod answers through its link-local gateway.
        host.run("ip", "addr", "add", "fd00:99::1/128", "dev", "lo")
        host.run("ip", "-6", "route", "add", f"{POD_V6}/128", "dev", iface)
        ping = host.run("ping", "-c1", "-W2", "-n", "-I", "fd00:99::1", POD_V6, check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        unwire(pod, host.name)


def test_ipv4_only_pod_gets_no_ipv6_configuration(namespaces):
    host, pod_ns = namespaces
    pod = Pod("ns1", "p2", "node1", [POD_V4])
    wire(pod, host.name, pod_ns.name)
    try:
        assert pod_ns.run("ip", "-6", "route", "show", "default").stdout == ""
        assert _sysctl(pod_ns, "net/ipv6/conf/eth0/accept_dad") != "0"
        assert pod_ns.run("ip", "route", "show", "default").stdout.split()[:3] == ["default", "via", GATEWAY_V4]
    finally:
        unwire(pod, host.name)


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.1", ["10.0.0.1"]),
    ("fd00::1", ["fd00::1"]),
    ("fd00::1, 10.0.0.1", ["10.0.0.1", "fd00::1"]),  # IPv4 first, as IPAM gives them
])
def test_ip_flag_takes_one_address_per_family(text, expected):
    assert _parse_ips(text) == expected


@pytest.mark.parametrize("text, message", [
    ("10.0.0.1,10.0.0.2", "one IPv4 and one IPv6"),
    ("fd00::1,fd00::2", "one IPv4 and one IPv6"),
    ("10.0.0.300", "does not appear to be an IPv4 or IPv6 address"),
])
def test_ip_flag_refusals(text, message):
    with pytest.raises(PodError, match=message):
        _parse_ips(text)


def test_ip_and_ipv6_flags_exclude_each_other(capsys):
    # --ipv6 asks IPAM; --ip says not to ask it.
    with pytest.raises(SystemExit) as exc:
        calico_node.main(["pod", "add", "web", "--ipv6", "--ip", "10.0.0.1"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_failed_ipv6_assignment_gives_the_ipv4_address_back(client, etcd_kv, monkeypatch, capsys):
    # --ipv6 without an IPv6 pool: IPAM assigns the IPv4 address, then fails for IPv6.
    # Like the runtime's DEL after a failed ADD, pod add must give the IPv4 address back.
    make_pool(client, "v4", "10.16.0.0/26", blockSize=26)
    make_node(client, "n1")
    monkeypatch.setattr(pod_role, "_context", lambda: ("n1", client))
    args = SimpleNamespace(name="web", namespace="default", labels="", ports="", ip="", ipv6=True, netns="")
    assert pod_role.cmd_add(args) == 1
    assert capsys.readouterr().err == "pod add: cannot find a qualified ippool\n"
    assert not [k for k in ipam_keys(etcd_kv) if "/handle/" in k], ipam_keys(etcd_kv)
    blocks = [json.loads(v) for k, v in ipam_keys(etcd_kv).items() if "/assignment/" in k]
    assert all(a is None for b in blocks for a in b["allocations"]), blocks
