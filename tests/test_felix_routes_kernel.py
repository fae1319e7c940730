"""The route dataplane against real netlink in throwaway network namespaces.

The production code runs unmodified in a thread that joined the namespace
(``startup_netns.in_netns``): pyroute2's sockets and the /proc/sys/net files it writes
then belong to the namespace, never to the host. The checks read the namespace back with
``ip -j`` and ``bridge -j`` through ``ip netns exec``, independently of the code under
test, and ``ip monitor`` shows that an apply with nothing to do changes nothing.
This kernel has no ``dummy`` and no ``ipip`` link types: workloads are veth pairs, and
tunl0's creation fails (which is what the IPIP test is about).
"""
from __future__ import annotations

import json
import logging
import subprocess
import time
from contextlib import contextmanager

import pytest

from netns import Namespace
from node.felix.dataplane.routes import RouteDataplane
from node.felix.dataplane.interfaces import read_interfaces
from node.felix.routes import DesiredRoutes, RouteConfig, RouteModel, desired_routes
from node.felix.types import IPPoolType, RouteType, RouteUpdate, VXLANTunnelEndpoint, WorkloadEndpoint
from startup_netns import in_netns

CALI = "cali1a2b3c4d5e6"
POD_MAC = "ee:aa:bb:cc:dd:05"
EP = WorkloadEndpoint(name=CALI, mac=POD_MAC, ipv4_nets=("10.65.0.5/32",), ipv6_nets=("fd00:65::5/128",))


@pytest.fixture
def ns():
    """A node: eth0 (a veth to an 'uplink' peer) with 192.0.2.10/24, no IPv6 DAD (so no
    address events arrive late), and forwarding off (so the global sysctl is seen)."""
    with Namespace("crt") as ns:
        for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
            ns.run("sysctl", "-qw", f"{key}=0")
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink")
        ns.run("ip", "addr", "add", "192.0.2.10/24", "dev", "eth0")
        ns.run("ip", "link", "set", "uplink", "up")
        ns.run("ip", "link", "set", "eth0", "up")
        yield ns


def add_workload(ns: Namespace, name: str = CALI, up: bool = True) -> None:
    ns.run("ip", "link", "add", name, "type", "veth", "peer", "name", "wl" + name[4:12])
    ns.run("ip", "link", "set", name, "address", "ee:ee:ee:ee:ee:ee")
    if up:
        set_workload_up(ns, name)


def set_workload_up(ns: Namespace, name: str = CALI) -> None:
    ns.run("ip", "link", "set", "wl" + name[4:12], "up")
    ns.run("ip", "link", "set", name, "up")


def routes(ns: Namespace, version: int = 4) -> list[dict]:
    """The main table in detail (plain ``ip route`` hides ``proto boot``)."""
    return json.loads(ns.run("ip", f"-{version}", "-d", "-j", "route", "show", "table", "main").stdout)


def route_to(ns: Namespace, dst: str, version: int = 4) -> dict | None:
    found = [r for r in routes(ns, version) if r["dst"] == dst]
    assert len(found) <= 1, found
    return found[0] if found else None


def neighbours(ns: Namespace, dev: str) -> list[dict]:
    return json.loads(ns.run("ip", "-j", "neigh", "show", "dev", dev).stdout)


def sysctl(ns: Namespace, key: str) -> str:
    return ns.run("sysctl", "-n", key).stdout.strip()


@contextmanager
def netlink_events(ns: Namespace):
    """Everything ``ip monitor`` sees (links, addresses, routes, neighbours) meanwhile."""
    proc = ns.popen("ip", "-o", "monitor", "link", "address", "route", "neigh",
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.3)  # subscribed before anything happens
    events: list[str] = []
    try:
        yield events
        time.sleep(0.3)  # anything in flight arrives
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
        events.extend(line for line in out.splitlines() if line.strip())


def apply(ns: Namespace, dp: RouteDataplane, desired: DesiredRoutes, interfaces=False):
    """``dp.apply`` in the namespace; ``interfaces``: True reads the monitor's picture
    fresh, a dict passes that (possibly stale) picture, False passes none."""
    def work():
        picture = read_interfaces() if interfaces is True else (interfaces or None)
        return dp.apply(desired, picture)
    return in_netns(ns, work)


# --------------------------------------------------------------------------------------
# Workloads.

def test_workload_route_neighbour_and_sysctls_once_up_and_nothing_on_a_repeat(ns):
    add_workload(ns, up=False)
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), [EP])
    dp = RouteDataplane()

    result = apply(ns, dp, desired)
    assert result.in_sync and result.changes == 0  # interface down: nothing yet
    assert route_to(ns, "10.65.0.5") is None and sysctl(ns, f"net.ipv4.conf.{CALI}.proxy_arp") == "0"
    assert sysctl(ns, "net.ipv4.ip_forward") == "1"  # global sysctls do not wait

    set_workload_up(ns)
    with netlink_events(ns) as events:
        result = apply(ns, dp, desired)
    assert result.in_sync and result.changes == 3 and events  # the monitor does see changes
    route = route_to(ns, "10.65.0.5")
    assert route == {"type": "unicast", "dst": "10.65.0.5", "dev": CALI, "protocol": "boot", "scope": "link",
                     "metric": 1024, "flags": []}
    v6 = route_to(ns, "fd00:65::5", 6)
    assert v6["dev"] == CALI and v6["protocol"] == "boot" and v6["metric"] == 1024
    neigh, = [n for n in neighbours(ns, CALI) if n["dst"] == "10.65.0.5"]
    assert neigh["lladdr"] == POD_MAC and neigh["state"] == ["PERMANENT"]
    expected = {f"net.ipv4.conf.{CALI}.proxy_arp": "1", f"net.ipv4.conf.{CALI}.route_localnet": "1",
                f"net.ipv4.conf.{CALI}.forwarding": "1", f"net.ipv4.conf.{CALI}.rp_filter": "1",
                f"net.ipv4.neigh.{CALI}.proxy_delay": "0", f"net.ipv6.conf.{CALI}.accept_ra": "0",
                f"net.ipv6.conf.{CALI}.proxy_ndp": "1", f"net.ipv6.conf.{CALI}.forwarding": "1"}
    assert {k: sysctl(ns, k) for k in expected} == expected

    # For the metrics: two managed routes (one per family) and the reads' durations.
    assert dp.stats.managed == {4: 1, 6: 1} and dp.stats.ifaces == 1
    assert len(dp.stats.resync_seconds) == dp.stats.reads >= 1
    writes = dp.stats.writes, dp.stats.sysctl_writes
    with netlink_events(ns) as events:
        assert apply(ns, dp, desired).changes == 0
        assert apply(ns, dp, desired, interfaces=True).changes == 0
    assert events == [] and (dp.stats.writes, dp.stats.sysctl_writes) == writes

    # Down and up again: the sysctls are written again (something reset one meanwhile).
    ns.run("ip", "link", "set", CALI, "down")
    assert apply(ns, dp, desired, interfaces=True).in_sync
    ns.run("sysctl", "-qw", f"net.ipv4.conf.{CALI}.proxy_arp=0")
    set_workload_up(ns)
    assert apply(ns, dp, desired, interfaces=True).changes == 3  # the kernel dropped the routes at down
    assert {k: sysctl(ns, k) for k in expected} == expected

    # A re-created veth (new index, fresh sysctls) gets everything again.
    ns.run("ip", "link", "del", CALI)
    add_workload(ns)
    assert sysctl(ns, f"net.ipv4.conf.{CALI}.proxy_arp") == "0"
    assert apply(ns, dp, desired, interfaces=True).changes == 3
    assert route_to(ns, "10.65.0.5")["dev"] == CALI
    assert {k: sysctl(ns, k) for k in expected} == expected


def test_removed_endpoint_loses_its_route_and_foreign_routes_survive(ns):
    add_workload(ns)
    add_workload(ns, "cali99999999999")
    ns.run("ip", "route", "add", "203.0.113.0/24", "via", "192.0.2.1", "dev", "eth0", "proto", "static")
    ns.run("ip", "route", "add", "198.51.100.0/24", "dev", "eth0", "proto", "boot")  # boot, but not on cali*
    ns.run("ip", "route", "add", "blackhole", "198.18.0.0/16", "proto", "static")
    ns.run("ip", "route", "add", "blackhole", "10.99.0.0/26", "proto", "80")  # ours, left by a previous run
    ns.run("ip", "route", "add", "10.77.0.0/24", "dev", "cali99999999999", "proto", "static")  # on a cali iface
    before = {r["dst"] for r in routes(ns)}
    now = [1000.0]
    dp = RouteDataplane(clock=lambda: now[0])
    cfg = RouteConfig(hostname="node1")

    apply(ns, dp, desired_routes(cfg, RouteModel(), [EP]))
    assert route_to(ns, "10.65.0.5")["dev"] == CALI
    assert route_to(ns, "10.99.0.0/26") is None
    # A workload interface without an endpoint keeps its routes through its grace period
    # (the CNI plugin routes a pod before its endpoint arrives), then loses them.
    assert route_to(ns, "10.77.0.0/24") is not None and dp.recheck_after() == 10.0
    now[0] += 10.0
    apply(ns, dp, desired_routes(cfg, RouteModel(), [EP]))
    assert route_to(ns, "10.77.0.0/24") is None and dp.recheck_after() is None

    assert apply(ns, dp, desired_routes(cfg, RouteModel(), [])).in_sync
    assert route_to(ns, "10.65.0.5") is None and route_to(ns, "fd00:65::5", 6) is None
    # Felix's route table never deletes a static ARP entry: it goes with the veth.
    assert [n["state"] for n in neighbours(ns, CALI) if n["dst"] == "10.65.0.5"] == [["PERMANENT"]]
    assert {r["dst"] for r in routes(ns)} == before - {"10.99.0.0/26", "10.77.0.0/24"}
    assert route_to(ns, "203.0.113.0/24")["gateway"] == "192.0.2.1"
    assert route_to(ns, "198.18.0.0/16")["type"] == "blackhole"


def test_foreign_routes_on_workload_interfaces_kept_without_remove_external_routes(ns):
    add_workload(ns)
    ns.run("ip", "route", "add", "10.77.0.0/24", "dev", CALI, "proto", "static")
    ns.run("ip", "route", "add", "10.78.0.0/24", "dev", CALI, "proto", "boot")
    dp = RouteDataplane(remove_external_routes=False, route_cleanup_grace_period=0)
    apply(ns, dp, desired_routes(RouteConfig(hostname="node1"), RouteModel(), []))
    assert route_to(ns, "10.77.0.0/24") is not None and route_to(ns, "10.78.0.0/24") is None


def test_a_new_pods_route_survives_until_its_endpoint_arrives(ns):
    """The CNI plugin creates the veth and the pod's route, then writes the endpoint: in
    between, the agent leaves the route alone (Felix's 10 s route cleanup grace period);
    once the endpoint has been programmed, the interface has no grace left, so a later
    removal of the endpoint removes the route at once."""
    add_workload(ns)
    ns.run("ip", "route", "add", "10.65.0.5", "dev", CALI, "scope", "link")  # as the CNI plugin does
    now = [50.0]
    dp = RouteDataplane(clock=lambda: now[0])
    cfg = RouteConfig(hostname="node1")
    assert apply(ns, dp, desired_routes(cfg, RouteModel(), []), interfaces=True).in_sync
    assert route_to(ns, "10.65.0.5")["dev"] == CALI
    now[0] += 3.0
    apply(ns, dp, desired_routes(cfg, RouteModel(), [EP]), interfaces=True)  # the endpoint arrives
    assert route_to(ns, "10.65.0.5")["protocol"] == "boot"
    apply(ns, dp, desired_routes(cfg, RouteModel(), []), interfaces=True)  # and goes: no grace now
    assert route_to(ns, "10.65.0.5") is None
    # A re-created veth (a new ifindex) is a new interface with a grace period of its own.
    ns.run("ip", "link", "del", CALI)
    add_workload(ns)
    ns.run("ip", "route", "add", "10.65.0.5", "dev", CALI, "scope", "link")
    apply(ns, dp, desired_routes(cfg, RouteModel(), []), interfaces=True)
    assert route_to(ns, "10.65.0.5") is not None


def test_an_address_two_endpoints_claim_goes_to_the_up_interface(ns):
    """A pod's address still on the old pod's interface while the new pod's is up (an IP
    reused during churn): Felix's route table routes it through the interface that is up,
    and between two up ones through the newer (higher ifindex); the names decide nothing."""
    old, new = "califfffffffff1", "cali00000000001"  # the old pod's name sorts higher
    add_workload(ns, old, up=False)
    add_workload(ns, new)
    both = [WorkloadEndpoint(name=old, ipv4_nets=("10.65.0.7/32",)),
            WorkloadEndpoint(name=new, ipv4_nets=("10.65.0.7/32",))]
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), both)
    assert [r.dev for r in desired.routes] == [old]  # the pick before the links are known
    dp = RouteDataplane()
    assert apply(ns, dp, desired, interfaces=True).in_sync
    assert route_to(ns, "10.65.0.7")["dev"] == new
    assert apply(ns, dp, desired, interfaces=True).changes == 0
    set_workload_up(ns, old)  # both up: the older interface has the lower ifindex
    assert apply(ns, dp, desired, interfaces=True).changes == 0
    assert route_to(ns, "10.65.0.7")["dev"] == new
    ns.run("ip", "link", "set", new, "down")
    assert apply(ns, dp, desired, interfaces=True).in_sync
    assert route_to(ns, "10.65.0.7")["dev"] == old
    # Without the interface monitor's picture the dataplane reads the links itself.
    ns.run("ip", "link", "set", new, "up")
    assert apply(ns, RouteDataplane(), desired).in_sync
    assert route_to(ns, "10.65.0.7")["dev"] == new


def test_drift_is_repaired_on_refresh(ns):
    add_workload(ns)
    now = [0.0]
    dp = RouteDataplane(refresh_interval=90, clock=lambda: now[0])
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), [EP])
    apply(ns, dp, desired, interfaces=True)
    ns.run("ip", "route", "del", "10.65.0.5", "dev", CALI)
    assert apply(ns, dp, desired, interfaces=True).changes == 0  # the cache is trusted in between
    now[0] = 91.0
    assert apply(ns, dp, desired, interfaces=True).changes == 1
    assert route_to(ns, "10.65.0.5")["dev"] == CALI


# --------------------------------------------------------------------------------------
# VXLAN.

LOCAL_MAC, REMOTE_MAC = "66:00:00:00:00:01", "66:00:00:00:00:02"


def vxlan_desired(**cfg) -> DesiredRoutes:
    config = RouteConfig(hostname="node1", vxlan_enabled=True, **cfg)
    model = RouteModel(
        routes={"10.244.1.0/26": RouteUpdate("10.244.1.0/26", RouteType.REMOTE_WORKLOAD, IPPoolType.VXLAN,
                                             "node2", "192.0.2.11"),
                "10.244.0.0/26": RouteUpdate("10.244.0.0/26", RouteType.LOCAL_WORKLOAD, IPPoolType.VXLAN, "node1",
                                             "192.0.2.10")},
        vteps={"node1": VXLANTunnelEndpoint("node1", LOCAL_MAC, "10.244.0.1", "192.0.2.10"),
               "node2": VXLANTunnelEndpoint("node2", REMOTE_MAC, "10.244.1.0", "192.0.2.11")})
    return desired_routes(config, model, [], {4: "eth0"}, "192.0.2.10")


def vxlan_link(ns: Namespace) -> dict:
    link, = json.loads(ns.run("ip", "-d", "-j", "link", "show", "vxlan.calico").stdout)
    return link


def test_vxlan_device_routes_fdb_and_neighbour(ns):
    dp = RouteDataplane()
    desired = vxlan_desired()
    result = apply(ns, dp, desired)
    assert result.in_sync, result.failures

    link = vxlan_link(ns)
    data = link["linkinfo"]["info_data"]
    assert (data["id"], data["port"], data["local"], data["learning"]) == (4096, 4789, "192.0.2.10", False)
    assert data["link"] == "eth0" and link["address"] == LOCAL_MAC and link["mtu"] == 1410
    assert "UP" in link["flags"]
    addrs = json.loads(ns.run("ip", "-4", "-j", "addr", "show", "dev", "vxlan.calico").stdout)[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs] == [("10.244.0.1", 32)]

    route = route_to(ns, "10.244.1.0/26")
    assert (route["gateway"], route["dev"], route["protocol"], route["flags"]) == (
        "10.244.1.0", "vxlan.calico", "boot", ["onlink"])
    assert route_to(ns, "10.244.0.0/26") == {"type": "blackhole", "dst": "10.244.0.0/26", "protocol": "80",
                                              "scope": "global", "flags": []}
    neigh, = neighbours(ns, "vxlan.calico")
    assert (neigh["dst"], neigh["lladdr"], neigh["state"]) == ("10.244.1.0", REMOTE_MAC, ["PERMANENT"])
    fdb = json.loads(ns.run("bridge", "-j", "fdb", "show", "dev", "vxlan.calico").stdout)
    assert [(f["mac"], f["dst"], f["state"]) for f in fdb] == [(REMOTE_MAC, "192.0.2.11", "permanent")]
    assert "self" in fdb[0]["flags"]

    with netlink_events(ns) as events:
        assert apply(ns, dp, desired).changes == 0
        assert apply(ns, dp, desired, interfaces=True).changes == 0
    assert events == []

    # An MTU change keeps the device; a VNI change re-creates it with everything on it.
    index = link["ifindex"]
    assert apply(ns, dp, vxlan_desired(vxlan_mtu=1400)).in_sync
    assert vxlan_link(ns)["ifindex"] == index and vxlan_link(ns)["mtu"] == 1400
    assert apply(ns, dp, vxlan_desired(vxlan_vni=4097)).in_sync
    link = vxlan_link(ns)
    assert link["ifindex"] != index and link["linkinfo"]["info_data"]["id"] == 4097
    assert route_to(ns, "10.244.1.0/26")["dev"] == "vxlan.calico"
    assert len(neighbours(ns, "vxlan.calico")) == 1

    # VXLAN off: the device goes, and with it Felix's blackhole.
    off = desired_routes(RouteConfig(hostname="node1"), RouteModel(), [])
    assert apply(ns, dp, off).in_sync
    assert ns.run("ip", "link", "show", "vxlan.calico", check=False).returncode != 0
    assert route_to(ns, "10.244.0.0/26") is None and route_to(ns, "10.244.1.0/26") is None


def test_tx_checksum_offload_turned_off_when_asked(ns):
    dp = RouteDataplane()
    assert apply(ns, dp, vxlan_desired(checksum_offload_broken=True)).in_sync

    def offload():  # read with ETHTOOL_GTXCSUM (there is no ethtool binary here)
        from pyroute2.ethtool.ioctl import IoctlEthtool
        tool = IoctlEthtool("vxlan.calico")
        try:
            return tool.get_offload_flags()["tx-checksumming"]
        finally:
            tool.close()

    assert in_netns(ns, offload) is False
    with netlink_events(ns) as events:
        assert apply(ns, dp, vxlan_desired(checksum_offload_broken=True)).changes == 0
    assert events == []


# --------------------------------------------------------------------------------------
# IPIP on a kernel without the ipip module.

def test_tunl0_failure_is_one_warning_and_the_rest_is_programmed(ns, caplog):
    add_workload(ns)
    cfg = RouteConfig(hostname="node1", ipip_enabled=True, ipip_tunnel_addr="10.244.0.1")
    desired = desired_routes(cfg, RouteModel(), [EP], {4: "eth0"}, "192.0.2.10")
    assert desired.ipip_device is not None
    now = [0.0]
    dp = RouteDataplane(refresh_interval=90, clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="node.felix.dataplane.routes"):
        results = [apply(ns, dp, desired) for _ in range(3)]
        now[0] = 91.0  # a periodic refresh retries creating it, quietly
        results.append(apply(ns, dp, desired))
        dp.refresh()
        results.append(apply(ns, dp, desired))
    assert all(r.in_sync for r in results)
    # (the route side's own records: another test's background thread may log meanwhile)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name == "node.felix.dataplane.routes"]
    assert len(warnings) == 1 and "tunl0" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    assert len([r for r in caplog.records if "still fails" in r.getMessage()]) == 2
    assert route_to(ns, "10.65.0.5")["dev"] == CALI
    assert ns.run("ip", "link", "show", "tunl0", check=False).returncode != 0


def test_a_monitor_picture_older_than_our_own_device_changes_does_not_confuse_it(ns):
    stale = in_netns(ns, read_interfaces)  # taken before vxlan.calico exists
    dp = RouteDataplane()
    desired = vxlan_desired()
    assert apply(ns, dp, desired, stale).in_sync
    result = apply(ns, dp, desired, stale)
    assert result.in_sync and result.changes == 0, result
    assert route_to(ns, "10.244.1.0/26")["dev"] == "vxlan.calico"


# --------------------------------------------------------------------------------------
# Local-workload BGP peering addresses.

def addresses(ns: Namespace, dev: str) -> list[tuple[str, str]]:
    data = json.loads(ns.run("ip", "-j", "addr", "show", "dev", dev).stdout)
    return sorted((f"{a['local']}/{a['prefixlen']}", a["scope"]) for a in data[0]["addr_info"])


@pytest.mark.parametrize("with_monitor", [False, True])
def test_peering_address_on_the_interface_of_a_peered_workload(ns, with_monitor):
    """BGPConfiguration's localWorkloadPeeringIPV4/V6 go (scope link) on the interface of a
    workload with a local BGP peer, and only there; other addresses a workload interface
    carries are removed, its IPv6 link-local one kept."""
    add_workload(ns)
    other = "cali9f9f9f9f9f9"
    add_workload(ns, other)
    ns.run("ip", "addr", "add", "10.99.0.1/24", "dev", other)  # left by someone: not ours to keep
    cfg = RouteConfig(hostname="node1")
    peering = {4: "169.254.0.179", 6: "fd00:ffff::179"}
    peered = WorkloadEndpoint(name=CALI, mac=POD_MAC, ipv4_nets=("10.65.0.5/32",), local_bgp_peer="peer-a")
    dp = RouteDataplane()
    desired = desired_routes(cfg, RouteModel(), [peered], peering_addresses=peering)
    assert desired.workload_addresses == ((CALI, "169.254.0.179/32"), (CALI, "fd00:ffff::179/128"))
    assert apply(ns, dp, desired, interfaces=with_monitor).in_sync
    # The kernel gives an IPv6 address a prefix route on the interface; as Felix, the
    # next apply removes it (a workload interface carries only the routes we want).
    assert apply(ns, dp, desired, interfaces=with_monitor).in_sync
    have = dict(addresses(ns, CALI))
    # (The kernel takes an IPv6 address's scope from the address itself.)
    assert have["169.254.0.179/32"] == "link" and "fd00:ffff::179/128" in have
    assert [a for a in addresses(ns, other) if not a[0].startswith("fe80:")] == []
    assert any(a[0].startswith("fe80:") for a in addresses(ns, other))
    # Nothing more to do.
    dp2 = RouteDataplane()
    with netlink_events(ns) as events:
        assert apply(ns, dp2, desired, interfaces=with_monitor).changes == 0, events
    assert not [e for e in events if "179" in e]
    # The peer goes: so do the addresses.
    unpeered = desired_routes(cfg, RouteModel(), [EP], peering_addresses=peering)
    assert apply(ns, dp, unpeered, interfaces=with_monitor).in_sync
    assert apply(ns, dp, unpeered, interfaces=with_monitor).in_sync
    assert [a for a in addresses(ns, CALI) if not a[0].startswith("fe80:")] == []


def test_route_sync_disabled_programs_sysctls_but_no_routes(ns):
    """Felix's policy-only mode (RouteSyncDisabled): workload interfaces are still
    configured, but the main table is someone else's: nothing added, nothing removed."""
    add_workload(ns)
    ns.run("ip", "route", "add", "10.65.0.9/32", "dev", CALI, "proto", "boot", "scope", "link")
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), [EP])
    dp = RouteDataplane(route_sync=False)
    assert apply(ns, dp, desired).in_sync
    assert route_to(ns, "10.65.0.5") is None and route_to(ns, "10.65.0.9") is not None
    assert not [n for n in neighbours(ns, CALI) if n["dst"] == "10.65.0.5"]
    assert sysctl(ns, f"net.ipv4.conf.{CALI}.proxy_arp") == "1"


# --------------------------------------------------------------------------------------
# As Felix v3.32.1 keeps them: which existing VXLAN devices are replaced, which
# addresses a tunnel device keeps, whose permanent neighbours go.

def test_an_existing_vxlan_device_is_recreated_only_for_what_felix_compares(ns):
    """vxlanLinksIncompat (vxlan_mgr.go) ignores learning (Felix creates the device
    without it, but keeps one that learns) and replaces a device with l2miss on."""
    ns.run("ip", "link", "add", "vxlan.calico", "address", LOCAL_MAC, "type", "vxlan", "id", "4096",
           "dstport", "4789", "dev", "eth0", "local", "192.0.2.10", "learning")
    index = vxlan_link(ns)["ifindex"]
    dp = RouteDataplane()
    assert apply(ns, dp, vxlan_desired()).in_sync
    link = vxlan_link(ns)
    assert link["ifindex"] == index and link["linkinfo"]["info_data"]["learning"] is True
    assert route_to(ns, "10.244.1.0/26")["dev"] == "vxlan.calico"

    ns.run("ip", "link", "del", "vxlan.calico")
    ns.run("ip", "link", "add", "vxlan.calico", "address", LOCAL_MAC, "type", "vxlan", "id", "4096",
           "dstport", "4789", "dev", "eth0", "local", "192.0.2.10", "nolearning", "l2miss")
    index = vxlan_link(ns)["ifindex"]
    dp.refresh()
    assert apply(ns, dp, vxlan_desired()).in_sync
    link = vxlan_link(ns)
    assert link["ifindex"] != index and not link["linkinfo"]["info_data"].get("l2miss")
    assert route_to(ns, "10.244.1.0/26")["dev"] == "vxlan.calico"


def test_the_v6_vxlan_device_ends_with_only_its_tunnel_address(ns):
    """ensureAddressOnLink removes every other IPv6 address, the link-local one the
    kernel adds when the device comes up included; the routes stay."""
    ns.run("ip", "-6", "addr", "add", "fd00:192::10/64", "dev", "eth0", "nodad")
    model = RouteModel(
        routes={"fd00:244:1::/122": RouteUpdate("fd00:244:1::/122", RouteType.REMOTE_WORKLOAD, IPPoolType.VXLAN,
                                                "node2", "fd00:192::11")},
        vteps={"node1": VXLANTunnelEndpoint("node1", "", "", "", mac_v6=LOCAL_MAC, ipv6_addr="fd00:244::1",
                                            parent_device_ipv6="fd00:192::10"),
               "node2": VXLANTunnelEndpoint("node2", "", "", "", mac_v6=REMOTE_MAC, ipv6_addr="fd00:244:1::",
                                            parent_device_ipv6="fd00:192::11")})
    desired = desired_routes(RouteConfig(hostname="node1", vxlan_enabled_v6=True), model, [], {6: "eth0"})
    dp = RouteDataplane()
    assert apply(ns, dp, desired).in_sync
    deadline = time.monotonic() + 5
    while not [a for a in addresses(ns, "vxlan-v6.calico") if a[0].startswith("fe80:")]:
        assert time.monotonic() < deadline, "the kernel never gave the device its link-local address"
        time.sleep(0.05)
    assert apply(ns, dp, desired).in_sync
    assert [a for a in addresses(ns, "vxlan-v6.calico") if ":" in a[0]] == [("fd00:244::1/128", "global")]
    route = route_to(ns, "fd00:244:1::/122", 6)
    assert (route["gateway"], route["dev"], route["flags"]) == ("fd00:244:1::", "vxlan-v6.calico", ["onlink"])
    with netlink_events(ns) as events:
        assert apply(ns, dp, desired, interfaces=True).changes == 0
    assert events == []


def test_other_programs_permanent_neighbours_on_workload_interfaces_stay(ns):
    """Felix's route table only sets static ARP entries; an unwanted one on vxlan.calico
    (the VXLAN FDB module's) is deleted."""
    add_workload(ns)
    ns.run("ip", "neigh", "add", "10.65.0.77", "lladdr", "ee:aa:bb:cc:dd:77", "dev", CALI, "nud", "permanent")
    ns.run("ip", "-6", "neigh", "add", "fd00:65::77", "lladdr", "ee:aa:bb:cc:dd:77", "dev", CALI, "nud", "permanent")
    dp = RouteDataplane(route_cleanup_grace_period=0)
    assert apply(ns, dp, vxlan_desired()).in_sync
    ns.run("ip", "neigh", "add", "10.244.9.0", "lladdr", "66:00:00:00:00:09", "dev", "vxlan.calico", "nud", "permanent")
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), [EP])
    desired = DesiredRoutes(**{**vxlan_desired().__dict__, "routes": desired.routes + vxlan_desired().routes,
                               "neighbours": desired.neighbours + vxlan_desired().neighbours})
    dp.refresh()
    assert apply(ns, dp, desired).in_sync
    assert {n["dst"] for n in neighbours(ns, CALI) if "PERMANENT" in n["state"]} == {
        "10.65.0.5", "10.65.0.77", "fd00:65::77"}
    assert [n["dst"] for n in neighbours(ns, "vxlan.calico")] == ["10.244.1.0"]


def test_tunl0_addresses_are_stripped_once_when_ipip_is_implicitly_off(ns):
    """cleanUpIPIPAddrs runs once at Felix's start (and Felix restarts when the
    encapsulation changes): tunl0 is shared, so an address someone adds afterwards (an
    L4 load balancer's, say) stays. This kernel has no ipip module: a veth named tunl0
    stands in (Felix looks the device up by name, whatever its type)."""
    ns.run("ip", "link", "add", "tunl0", "type", "veth", "peer", "name", "tunl0peer")
    ns.run("ip", "addr", "add", "10.244.0.1/32", "dev", "tunl0")
    ns.run("ip", "addr", "add", "fd00::1/128", "dev", "tunl0", "nodad")

    def v4() -> list[str]:
        return [a for a, _ in addresses(ns, "tunl0") if ":" not in a]

    off = DesiredRoutes(clean_ipip_addresses=True)
    dp = RouteDataplane()
    assert apply(ns, dp, off).in_sync
    assert v4() == [] and ("fd00::1/128", "global") in addresses(ns, "tunl0")
    ns.run("ip", "addr", "add", "198.51.100.7/32", "dev", "tunl0")
    for _ in range(2):
        dp.refresh()
        assert apply(ns, dp, off).in_sync
    assert v4() == ["198.51.100.7/32"]
    # IPIP explicitly configured (IpInIpEnabled=false): no clean-up; implicitly off again
    # (a restart for Felix): one more.
    assert apply(ns, dp, DesiredRoutes()).in_sync
    assert apply(ns, dp, off).in_sync
    assert v4() == []
