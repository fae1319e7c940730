"""Conntrack cleanup when a workload's route goes away or moves (node/felix/dataplane/
routes.py's pure decisions, node/felix/dataplane/conntrack.py's shell), as Felix v3.32.1
does it: felix/routetable/conntrack_owner_tracker.go (and its _test.go, whose cases the
decision tests follow), route_table.go (applyUpdates: deletes, then the moves' early
deletes, then the cleanups start, then each route waits for its address's cleanup) and
felix/conntrack/conntrack.go (``conntrack --family F --delete --orig-src|--reply-src IP``,
three retries, "0 flow entries" is no error).

The kernel tests use a node namespace and pod namespaces joined by ``cali`` veth pairs,
real flows (an iptables rule with a conntrack match turns connection tracking on in the
node namespace) and entries added with ``conntrack -I``, and read the table back with the
``conntrack`` tool, independently of the code under test.
"""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from contextlib import ExitStack

import pytest

from netns import Namespace
from node.felix.dataplane.conntrack import ConntrackCleaner, delete_commands, remove_flows
from node.felix.dataplane.routes import (AddressOwner, AddressOwners, KernelState, Link, Ownership, RouteDataplane,
                                         RouteDelete, RouteReplace, cleanup_after_delete, conntrack_cleanups,
                                         needs_early_cleanup, plan, plan_moves, single_address, vanished_routes)
from node.felix.routes import DesiredRoutes, Route, RouteConfig, RouteModel, desired_routes
from node.felix.types import WorkloadEndpoint
from startup_netns import in_netns

OWN = Ownership(("cali",))
CALI_A = "calia0a0a0a0a0a"
CALI_B = "calib0b0b0b0b0b"
IP = "10.65.0.5"
LINKS = {"eth0": Link("eth0", 2, "veth", True), CALI_A: Link(CALI_A, 5, "veth", True),
         CALI_B: Link(CALI_B, 6, "veth", True), "vxlan.calico": Link("vxlan.calico", 7, "vxlan", True)}


def wl_route(dst=IP + "/32", dev=CALI_A, metric=1024, proto=3, **kw) -> Route:
    return Route(dst=dst, dev=dev, proto=proto, scope="link", metric=metric, **kw)


def kernel(*routes: Route, links=None) -> KernelState:
    state = KernelState(links=dict(LINKS if links is None else links))
    for route in routes:
        state.add_route(route)
    return state


def owners(*routes: Route, links=None) -> AddressOwners:
    links = LINKS if links is None else links
    return AddressOwners(routes, links, {name for name, link in links.items() if link.oper_up}, OWN)


def cleanups_of(previous: tuple[Route, ...], desired: tuple[Route, ...], state: KernelState,
                grace: frozenset[str] = frozenset()) -> tuple[tuple[str, ...], list]:
    """The addresses the dataplane would clean up if every planned write succeeded, and
    the moves' deletes (which it runs after the plan's own deletes)."""
    ops = plan(DesiredRoutes(routes=desired), state, OWN, grace=grace)
    was, want = owners(*previous), owners(*desired)
    moves = plan_moves(ops, state, OWN, was, want)
    deleted = [(op.route, state.links[op.route.dev].index if op.route.dev else 0)
               for op in ops + moves if isinstance(op, RouteDelete)]
    return conntrack_cleanups(deleted, (), was, want), moves


# --------------------------------------------------------------------------------------
# The decision (pure).

def test_a_deleted_workload_route_cleans_up_its_address_only():
    other = wl_route("10.65.0.6/32", CALI_B)
    cleaned, moves = cleanups_of((wl_route(), other), (other,), kernel(wl_route(), other))
    assert cleaned == (IP,) and moves == []


def test_a_moved_address_is_deleted_first_then_cleaned_up():
    """A pod's address taken by a new pod on another veth (conntrack_owner_tracker_test
    MovedRoute): the old route is deleted before the new one is written."""
    new = wl_route(dev=CALI_B)
    cleaned, moves = cleanups_of((wl_route(),), (new,), kernel(wl_route()))
    assert moves == [RouteDelete(wl_route())] and cleaned == (IP,)
    assert plan(DesiredRoutes(routes=(new,)), kernel(wl_route()), OWN) == [RouteReplace(new)]
    # The same veth name re-created (a new index) is a move too.
    relinked = dict(LINKS, **{CALI_A: Link(CALI_A, 9, "veth", True)})
    assert needs_early_cleanup(IP, 5, owners(wl_route()), owners(wl_route(), links=relinked))


def test_unchanged_routes_and_changes_on_the_same_interface_clean_nothing():
    state = kernel(wl_route())
    assert cleanups_of((wl_route(),), (wl_route(),), state) == ((), [])
    # An attribute change rewrites the route in place, no move.
    mtu = wl_route(mtu=1400)
    assert cleanups_of((wl_route(),), (mtu,), state) == ((), [])
    # A metric change (ChangeOfPrioritySameInterface): a new key, the old one deleted on
    # the interface the address stays on.
    cleaned, _ = cleanups_of((wl_route(),), (wl_route(metric=100),), state)
    assert cleaned == ()
    # ... and a route at another metric on another interface goes with a cleanup
    # (ChangeOfPriorityDifferentInterface), unless the last apply already wanted the
    # address where it is wanted now (DeletedStaleRoute: the other route was a stray).
    stray = wl_route(dev=CALI_B, metric=100)
    assert cleanups_of((), (wl_route(),), kernel(wl_route(), stray))[0] == (IP,)
    assert cleanups_of((wl_route(),), (wl_route(),), kernel(wl_route(), stray))[0] == ()


def test_routes_kept_for_the_grace_period_clean_nothing_until_deleted():
    cni_route = wl_route(proto=4)  # the CNI plugin's, before the endpoint arrives
    assert cleanups_of((), (), kernel(cni_route), grace=frozenset({CALI_A})) == ((), [])
    assert cleanups_of((), (), kernel(cni_route))[0] == (IP,)  # grace over, deleted


def test_remote_to_remote_moves_clean_nothing_local_to_remote_does():
    """MovedRouteRemoteToRemote; a workload that left this host (live migration) is cleaned."""
    tunnel = Route(dst=IP + "/32", dev="vxlan.calico", gateway="10.65.1.0", proto=3, scope="link", onlink=True)
    same_subnet = Route(dst=IP + "/32", dev="eth0", gateway="192.0.2.11", proto=80, scope="universe")
    assert not needs_early_cleanup(IP, 7, owners(tunnel), owners(same_subnet))
    assert needs_early_cleanup(IP, 5, owners(wl_route()), owners(tunnel))
    assert owners(tunnel)[IP] == AddressOwner(7, True) and owners(wl_route())[IP] == AddressOwner(5, False)
    # A blackhole (an IPAM block drop) does not lead off the host.
    assert not owners(Route(dst=IP + "/32", type="blackhole", proto=80, scope="universe"))[IP].remote


def test_only_single_addresses_are_tracked():
    """BlockRouteRemovalLeavesWorkloadIP: a /26 going away touches nothing, even when a
    workload holds the block's first address."""
    block = Route(dst="10.65.0.0/26", type="blackhole", proto=80, scope="universe")
    workload = wl_route("10.65.0.0/32")
    assert single_address(block) is None and single_address(workload) == "10.65.0.0"
    assert cleanups_of((block, workload), (workload,), kernel(block, workload)) == ((), [])
    assert single_address(wl_route("fd00:65::5/128")) == "fd00:65::5"
    assert cleanups_of((wl_route("fd00:65::5/128"),), (), kernel(wl_route("fd00:65::5/128")))[0] == ("fd00:65::5",)


def test_routes_that_left_the_kernel():
    """The veth was deleted (its routes with it): cleaned up when the address is not
    wanted, or wanted elsewhere; not when it is wanted on the same interface again."""
    before = kernel(wl_route(), wl_route("10.65.0.0/26", proto=80))
    gone_links = {k: v for k, v in LINKS.items() if k != CALI_A}
    after = kernel(links=gone_links)
    vanished = vanished_routes(before, after, OWN)
    assert vanished == [(wl_route(), 5)]  # single addresses only
    assert conntrack_cleanups((), vanished, owners(wl_route()), owners(links=gone_links)) == (IP,)
    moved = owners(wl_route(dev=CALI_B), links=gone_links)
    assert conntrack_cleanups((), vanished, owners(wl_route()), moved) == (IP,)
    # An interface flap: the route is wanted on the same interface again.
    assert conntrack_cleanups((), vanished, owners(wl_route()), owners(wl_route())) == ()
    # Still there (on whatever interface): not vanished.
    assert vanished_routes(before, kernel(wl_route(dev=CALI_B)), OWN) == []


def test_the_tracker_rules_one_by_one():
    was = {IP: AddressOwner(10)}
    assert cleanup_after_delete(IP, 10, was, {})  # DeletedRoute
    assert not cleanup_after_delete(IP, 10, {}, {IP: AddressOwner(10)})  # staying
    assert cleanup_after_delete(IP, 11, {}, {IP: AddressOwner(10)})  # new owner, old route elsewhere
    assert not cleanup_after_delete(IP, 11, was, {IP: AddressOwner(10)})  # a stray
    assert needs_early_cleanup(IP, 10, was, {IP: AddressOwner(11)})  # MovedRoute
    assert not needs_early_cleanup(IP, 10, {IP: AddressOwner(11)}, {IP: AddressOwner(11)})  # already there
    assert not needs_early_cleanup(IP, 10, {}, {IP: AddressOwner(10)})  # not moving
    # Nothing known before: Felix's zero value (no interface, a local class).
    assert needs_early_cleanup(IP, 10, {}, {IP: AddressOwner(11, True)})


# --------------------------------------------------------------------------------------
# The shell, with a fake conntrack tool.

def done(argv, rc=0, stderr=""):
    return subprocess.CompletedProcess(argv, rc, None, stderr)


def test_commands_and_retries_as_felix(caplog):
    assert delete_commands(IP) == [["conntrack", "--family", "ipv4", "--delete", "--orig-src", IP],
                                   ["conntrack", "--family", "ipv4", "--delete", "--reply-src", IP]]
    assert delete_commands("fd00:65::5")[1] == ["conntrack", "--family", "ipv6", "--delete", "--reply-src",
                                                "fd00:65::5"]
    calls = []

    def nothing_there(argv):
        calls.append(argv)
        return done(argv, 1, "conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n")
    assert remove_flows(IP, nothing_there) and calls == delete_commands(IP)

    calls.clear()

    def broken(argv):
        calls.append(argv)
        return done(argv, 1, "conntrack: Operation failed: invalid parameters\n")
    with caplog.at_level(logging.ERROR, logger="node.felix.dataplane.conntrack"):
        assert not remove_flows(IP, broken)
    assert calls == [delete_commands(IP)[0]] * 4 + [delete_commands(IP)[1]] * 4  # three retries each
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(IP in e and "invalid parameters" in e for e in errors)

    flaky = iter([done([], 1, "interrupted"), done([], 0), done([], 0)])
    assert remove_flows(IP, lambda argv: next(flaky))

    def missing(argv):
        raise FileNotFoundError(2, "No such file or directory", "conntrack")
    assert not remove_flows(IP, missing)


def test_cleaner_waits_for_the_latest_removal_of_an_address():
    release = threading.Event()
    removed = []

    def remove(addr):
        release.wait(10)
        removed.append(addr)
        return addr != "10.65.0.6"
    cleaner = ConntrackCleaner(remove)
    assert cleaner.wait(IP) == 0.0  # nothing pending
    cleaner.start([IP, "10.65.0.6"])
    assert cleaner.pending(IP)
    threading.Timer(0.2, release.set).start()
    assert cleaner.wait(IP) >= 0.1 and IP in removed
    assert cleaner.wait_all(10) and cleaner.started == 2 and cleaner.failed == 1
    assert not cleaner.pending("10.65.0.6")


# --------------------------------------------------------------------------------------
# Kernel: a node namespace, pods on cali veths, real conntrack entries.

def _ep(name: str, mac: str, v4: str = IP, v6: str = "fd00:65::5") -> WorkloadEndpoint:
    return WorkloadEndpoint(name=name, mac=mac, ipv4_nets=(f"{v4}/32",), ipv6_nets=(f"{v6}/128",))


MAC_A, MAC_B = "ee:aa:00:00:00:0a", "ee:aa:00:00:00:0b"
CFG = RouteConfig(hostname="node1")


class Cluster:
    """A node namespace (eth0 192.0.2.10/24, connection tracking on) and pods added on
    ``cali`` veths; everything is deleted at the end, also when a test fails."""

    def __init__(self, stack):
        self.stack = stack
        self.node = stack.enter_context(Namespace("cctn"))
        for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
            self.node.run("sysctl", "-qw", f"{key}=0")
        self.node.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink")
        self.node.run("ip", "addr", "add", "192.0.2.10/24", "dev", "eth0")
        for link in ("uplink", "eth0"):
            self.node.run("ip", "link", "set", link, "up")
        # Connection tracking runs in a namespace once something there uses it.
        self.node.run("iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "NEW,ESTABLISHED", "-j", "ACCEPT")

    def add_pod(self, cali: str, mac: str, ip: str = IP) -> Namespace:
        pod = self.stack.enter_context(Namespace("cctp"))
        self.node.run("ip", "link", "add", cali, "type", "veth", "peer", "name", "eth0", "netns", pod.name)
        self.node.run("ip", "link", "set", cali, "address", "ee:ee:ee:ee:ee:ee")
        self.node.run("ip", "link", "set", cali, "up")
        pod.run("ip", "link", "set", "eth0", "address", mac)
        pod.run("ip", "link", "set", "eth0", "up")
        pod.run("ip", "addr", "add", f"{ip}/32", "dev", "eth0")
        # As the CNI plugin sets a pod up: everything via 169.254.1.1, the host's veth end.
        pod.run("ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        pod.run("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        pod.run("ip", "neigh", "add", "169.254.1.1", "lladdr", "ee:ee:ee:ee:ee:ee", "dev", "eth0", "nud", "permanent")
        return pod

    def apply(self, dp: RouteDataplane, endpoints):
        return in_netns(self.node, dp.apply, desired_routes(CFG, RouteModel(), endpoints))

    def flows(self) -> list[str]:
        out = []
        for family in ("ipv4", "ipv6"):
            out += self.node.run("conntrack", "-L", "-f", family).stdout.splitlines()
        return out

    def insert(self, *args: str) -> None:
        self.node.run("conntrack", "-I", *args, "-t", "300")

    def route(self, dst: str, version: int = 4) -> str:
        return self.node.run("ip", f"-{version}", "route", "show", "table", "main", dst).stdout.strip()


def udp(ns: Namespace, dst: str, port: int) -> None:
    ns.run("bash", "-c", f"echo x > /dev/udp/{dst}/{port}")


def mentions(flows: list[str], addr: str) -> list[str]:
    return [f for f in flows if f"={addr} " in f]


@pytest.fixture
def cluster():
    with ExitStack() as stack:
        yield Cluster(stack)


def _flows_for_pod(c: Cluster, pod: Namespace) -> None:
    """Real flows to and from the pod, and entries for it (IPv6 too) and for 10.65.0.6."""
    udp(c.node, IP, 7001)  # node -> pod: the pod's address is the reply source
    udp(pod, "192.0.2.10", 7002)  # pod -> node: the pod's address is the original source
    c.insert("-p", "tcp", "-s", "192.0.2.99", "-d", IP, "--sport", "40000", "--dport", "80", "--state", "ESTABLISHED")
    c.insert("-p", "udp", "-s", "fd00:65::5", "-d", "fd00::1", "--sport", "1000", "--dport", "53")
    c.insert("-p", "udp", "-s", "fd00::1", "-d", "fd00:65::5", "--sport", "1001", "--dport", "53")
    c.insert("-p", "udp", "-s", "10.65.0.6", "-d", "192.0.2.10", "--sport", "1000", "--dport", "53")
    c.insert("-p", "tcp", "-s", "192.0.2.99", "-d", "10.65.0.6", "--sport", "40001", "--dport", "80",
             "--state", "ESTABLISHED")
    deadline = time.monotonic() + 5
    while len(mentions(flows := c.flows(), IP)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the pod's packet crosses the veth
    assert len(mentions(flows, IP)) == 3, flows  # the two real ones and the inserted one
    assert any("dport=7001" in f for f in flows) and any("dport=7002" in f for f in flows), flows
    assert len(mentions(flows, "fd00:65::5")) == 2 and len(mentions(flows, "10.65.0.6")) == 2, flows


def test_removing_an_endpoint_removes_its_flows_and_keeps_others(cluster):
    c = cluster
    pod = c.add_pod(CALI_A, MAC_A)
    dp = RouteDataplane()
    assert c.apply(dp, [_ep(CALI_A, MAC_A)]).in_sync
    assert f"dev {CALI_A}" in c.route(IP)
    _flows_for_pod(c, pod)

    assert c.apply(dp, []).in_sync  # the endpoint is gone (its veth is still there)
    assert c.route(IP) == "" and c.route("fd00:65::5", 6) == ""
    assert dp.conntrack.wait_all(30) and dp.conntrack.started == 2 and dp.conntrack.failed == 0
    flows = c.flows()
    assert mentions(flows, IP) == [] and mentions(flows, "fd00:65::5") == [], flows
    assert len(mentions(flows, "10.65.0.6")) == 2, flows  # another address's flows stay
    # Nothing more to clean up on a repeat.
    assert c.apply(dp, []).changes == 0 and dp.conntrack.started == 2


def test_a_deleted_veth_cleans_up_at_the_next_apply(cluster):
    """The CNI plugin deletes the pod's veth (the kernel drops its routes), then the
    endpoint goes: the route is no longer there to delete, its flows still go."""
    c = cluster
    pod = c.add_pod(CALI_A, MAC_A)
    dp = RouteDataplane()
    assert c.apply(dp, [_ep(CALI_A, MAC_A)]).in_sync
    _flows_for_pod(c, pod)
    c.node.run("ip", "link", "del", CALI_A)
    assert c.apply(dp, []).in_sync
    assert dp.conntrack.wait_all(30)
    flows = c.flows()
    assert mentions(flows, IP) == [] and mentions(flows, "fd00:65::5") == [] and len(mentions(flows, "10.65.0.6")) == 2


def test_an_address_moving_to_a_new_pod_is_cleaned_before_its_new_route(cluster):
    """A pod's address reused by a new pod on another veth: the old route is deleted, the
    flows removed, and only then the new route written (the removal sees no route)."""
    c = cluster
    pod = c.add_pod(CALI_A, MAC_A)
    c.add_pod(CALI_B, MAC_B)
    seen = []

    def remove(addr):
        seen.append((addr, c.route(addr, 6 if ":" in addr else 4)))
        return remove_flows(addr)
    dp = RouteDataplane(conntrack=ConntrackCleaner(remove))
    assert c.apply(dp, [_ep(CALI_A, MAC_A)]).in_sync
    _flows_for_pod(c, pod)
    # Each single-address route written first looked for a pending cleanup (none yet).
    assert len(dp.stats.conntrack_waits) >= 2 and not any(dp.stats.conntrack_waits)
    dp.stats.conntrack_waits.clear()

    assert c.apply(dp, [_ep(CALI_B, MAC_B)]).in_sync  # both veths still there
    assert len(dp.stats.conntrack_waits) >= 2  # the moved routes waited for their cleanups
    assert sorted(seen) == [(IP, ""), ("fd00:65::5", "")]
    assert f"dev {CALI_B}" in c.route(IP) and f"dev {CALI_B}" in c.route("fd00:65::5", 6)
    assert dp.conntrack.wait_all(30)
    flows = c.flows()
    assert mentions(flows, IP) == [] and mentions(flows, "fd00:65::5") == [] and len(mentions(flows, "10.65.0.6")) == 2
    # The new owner's flows are its own: nothing is cleaned up again.
    udp(c.node, IP, 7003)
    assert c.apply(dp, [_ep(CALI_B, MAC_B)]).changes == 0 and len(seen) == 2
    assert any("dport=7003" in f for f in c.flows())


def test_a_failed_cleanup_is_logged_and_routes_are_still_programmed(cluster, caplog):
    c = cluster
    c.add_pod(CALI_A, MAC_A)
    c.add_pod(CALI_B, MAC_B)
    dp = RouteDataplane(conntrack=ConntrackCleaner(
        lambda addr: remove_flows(addr, lambda argv: done(argv, 1, "conntrack: something broke\n"))))
    assert c.apply(dp, [_ep(CALI_A, MAC_A)]).in_sync
    with caplog.at_level(logging.ERROR, logger="node.felix.dataplane.conntrack"):
        result = c.apply(dp, [_ep(CALI_B, MAC_B)])
        assert dp.conntrack.wait_all(30)
    assert result.in_sync and f"dev {CALI_B}" in c.route(IP)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(IP in e and "something broke" in e for e in errors), errors
    assert any("fd00:65::5" in e for e in errors) and dp.conntrack.failed == 2


def test_cleanup_can_be_turned_off(cluster):
    c = cluster
    pod = c.add_pod(CALI_A, MAC_A)
    dp = RouteDataplane(conntrack_cleanup=False)
    assert dp.conntrack is None
    assert c.apply(dp, [_ep(CALI_A, MAC_A)]).in_sync
    _flows_for_pod(c, pod)
    assert c.apply(dp, []).in_sync and c.route(IP) == ""
    assert len(mentions(c.flows(), IP)) == 3
