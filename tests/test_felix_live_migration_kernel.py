"""KubeVirt live migration against real kernel objects, in throwaway network namespaces:

* the GARP/RARP detection (node/felix/dataplane/live_migration.py) on the host side of a
  real veth pair: frames sent from the pod's side with a raw socket; a gratuitous ARP and
  a RARP are seen, an ordinary ARP request is not, and closing the watch ends its thread;
* the route side through the real RouteDataplane: the workload's route goes from metric
  1024 to the elevated 512 and back (the kernel keys a route by destination and metric:
  the old one must go, and no conntrack cleanup happens for it), and is suppressed with
  its static ARP entry while the endpoint is a target in Target;
* a whole migration driven like the agent drives it: the machines (pure), the shell
  (packet sockets and a short LiveMigrationRouteConvergenceTime) and the route dataplane,
  from Target to Live on the VM's real GARP, to TimeWait when the role goes, and back to
  the normal priority when the timer fires.

The production code runs unmodified in threads that joined the namespaces
(``startup_netns.in_netns``); the checks read the kernel back with ``ip -j``.
"""
from __future__ import annotations

import json
import os
import queue
import threading
import socket
import struct
import time
from types import SimpleNamespace

import pytest

from netns import Namespace, veth_pair
from node.felix import live_migration as lm
from node.felix import types as t
from node.felix.dataplane.conntrack import ConntrackCleaner
from node.felix.dataplane import live_migration as dataplane_lm
from node.felix.dataplane.live_migration import GARPWatch, LiveMigrationShell, OwnerSwapper
from node.felix.dataplane.routes import RouteDataplane
from node.felix.live_migration import LiveMigrationMonitor, State
from node.felix.routes import RouteConfig, RouteModel, desired_routes
from startup_netns import in_netns

CALI = "cali1a2b3c4d5e6"
POD_MAC = "ee:aa:bb:cc:dd:05"
POD_IP = "10.65.0.5"
WID = t.WorkloadEndpointID("k8s", "vms/virt-launcher-vm1-target", "eth0")
EP = t.WorkloadEndpoint(name=CALI, mac=POD_MAC, ipv4_nets=(POD_IP + "/32",), ipv6_nets=("fd00:65::5/128",))


@pytest.fixture
def node_and_pod():
    """A node namespace and a pod namespace joined by a veth: ``CALI`` on the node's
    side, ``eth0`` (with the pod's MAC) on the pod's side, both up."""
    with Namespace("clm") as node, Namespace("clp") as pod:
        for ns in (node, pod):
            for key in ("net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"):
                ns.run("sysctl", "-qw", f"{key}=0")
        veth_pair(node, CALI, pod, "eth0")
        pod.run("ip", "link", "set", "eth0", "address", POD_MAC)
        yield node, pod


def _frame(ethertype: int, payload: bytes = b"") -> bytes:
    return b"\xff" * 6 + bytes.fromhex(POD_MAC.replace(":", "")) + struct.pack("!H", ethertype) + payload


def arp(sender: str, target: str, op: int = 1) -> bytes:
    """An ARP request (``op`` 1) or reply (2) from the pod for ``target``."""
    mac = bytes.fromhex(POD_MAC.replace(":", ""))
    return _frame(0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + socket.inet_aton(sender)
                  + b"\0" * 6 + socket.inet_aton(target))


def rarp() -> bytes:
    """A RARP request as QEMU sends after a migration (its own MAC, no addresses)."""
    mac = bytes.fromhex(POD_MAC.replace(":", ""))
    return _frame(0x8035, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 3) + mac + b"\0" * 4 + mac + b"\0" * 4)


def send_from_pod(pod: Namespace, *frames: bytes) -> None:
    """Send raw Ethernet frames out of the pod's eth0 (they arrive on ``CALI``)."""
    def work():
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
            sock.bind(("eth0", 0))
            for frame in frames:
                sock.send(frame + b"\0" * max(0, 60 - len(frame)))
    in_netns(pod, work)


def send_from_node(node: Namespace, *frames: bytes) -> None:
    """Send raw frames out of the node's side of the veth (towards the pod)."""
    def work():
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
            sock.bind((CALI, 0))
            for frame in frames:
                sock.send(frame + b"\0" * max(0, 60 - len(frame)))
    in_netns(node, work)


def open_watch(node: Namespace, seen: queue.SimpleQueue) -> GARPWatch:
    """A watch on ``CALI`` whose sockets are made inside the node namespace."""
    return in_netns(node, lambda: GARPWatch(WID, CALI, seen.put))


def _get(q: queue.SimpleQueue, timeout: float):
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return None


# --------------------------------------------------------------------------------------
# GARP/RARP detection on a real veth.

def test_gratuitous_arp_from_the_pod_is_detected_and_an_ordinary_arp_is_not(node_and_pod):
    node, pod = node_and_pod
    seen: queue.SimpleQueue = queue.SimpleQueue()
    watch = open_watch(node, seen)
    try:
        send_from_pod(pod, arp(POD_IP, "10.65.0.1"), arp(POD_IP, "10.65.0.9", op=2))  # request, reply
        assert _get(seen, 0.5) is None and not watch.detected
        # The host's own frames towards the pod do not count, not even a gratuitous ARP.
        send_from_node(node, arp("169.254.1.1", "169.254.1.1"), rarp())
        assert _get(seen, 0.5) is None
        send_from_pod(pod, arp(POD_IP, POD_IP))
        assert _get(seen, 5) == WID and watch.detected
        send_from_pod(pod, arp(POD_IP, POD_IP), rarp())  # one report only: the watch is done
        assert _get(seen, 0.5) is None
    finally:
        watch.close()
    assert not watch._thread.is_alive()


def test_rarp_from_the_pod_is_detected(node_and_pod):
    node, pod = node_and_pod
    seen: queue.SimpleQueue = queue.SimpleQueue()
    watch = open_watch(node, seen)
    try:
        send_from_pod(pod, rarp())
        assert _get(seen, 5) == WID
    finally:
        watch.close()


def test_closing_the_watch_ends_its_thread_and_sockets(node_and_pod):
    node, pod = node_and_pod
    seen: queue.SimpleQueue = queue.SimpleQueue()
    watch = open_watch(node, seen)
    socks = list(watch._socks)
    assert watch._thread.is_alive() and len(socks) == 2
    watch.close()
    assert not watch._thread.is_alive()
    assert all(s.fileno() == -1 for s in socks)
    send_from_pod(pod, arp(POD_IP, POD_IP))
    assert _get(seen, 0.3) is None


def test_watch_of_a_missing_interface_fails_to_open(node_and_pod):
    node, _ = node_and_pod
    with pytest.raises(OSError):
        in_netns(node, lambda: GARPWatch(WID, "calinosuchlink", lambda wid: None))


def test_a_watch_whose_thread_cannot_start_leaves_no_descriptor(node_and_pod, monkeypatch):
    node, _ = node_and_pod
    before = set(os.listdir("/proc/self/fd"))

    class Unstartable(threading.Thread):
        def start(self):
            raise RuntimeError("can't start new thread")
    # Only the watch's own threads fail (in_netns needs a working one).
    monkeypatch.setattr(dataplane_lm, "threading", SimpleNamespace(Thread=Unstartable))
    with pytest.raises(RuntimeError, match="can't start new thread"):
        in_netns(node, lambda: GARPWatch(WID, CALI, lambda wid: None))
    assert set(os.listdir("/proc/self/fd")) <= before


def test_watch_ends_when_its_interface_goes(node_and_pod):
    node, pod = node_and_pod
    seen: queue.SimpleQueue = queue.SimpleQueue()
    watch = open_watch(node, seen)
    try:
        node.run("ip", "link", "del", CALI)
        watch._thread.join(5)
        assert not watch._thread.is_alive() and _get(seen, 0.1) is None
    finally:
        watch.close()


# --------------------------------------------------------------------------------------
# Routes through the real route dataplane.

def routes(ns: Namespace, version: int = 4) -> list[dict]:
    return json.loads(ns.run("ip", f"-{version}", "-d", "-j", "route", "show", "table", "main").stdout)


def routes_to(ns: Namespace, dst: str, version: int = 4) -> list[tuple[str, int]]:
    return [(r["dev"], r.get("metric", 0)) for r in routes(ns, version) if r["dst"] == dst]


def permanent_neighbours(ns: Namespace) -> list[str]:
    return [n["dst"] for n in json.loads(ns.run("ip", "-j", "neigh", "show", "dev", CALI).stdout)
            if "PERMANENT" in n.get("state", [])]


class Removals:
    """ConntrackCleaner's removal stand-in: which addresses the dataplane cleaned up."""

    def __init__(self):
        self.addrs: list[str] = []

    def __call__(self, addr: str) -> bool:
        self.addrs.append(addr)
        return True


def apply(ns: Namespace, dp: RouteDataplane, state: State | None):
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), [EP],
                             live_migration={CALI: state} if state is not None else None)
    return in_netns(ns, lambda: dp.apply(desired))


def test_metric_moves_to_the_elevated_priority_and_back_without_conntrack_cleanup(node_and_pod):
    node, _ = node_and_pod
    removals = Removals()
    dp = RouteDataplane(conntrack=ConntrackCleaner(removals))
    assert apply(node, dp, None).in_sync
    assert routes_to(node, POD_IP) == [(CALI, 1024)] and routes_to(node, "fd00:65::5", 6) == [(CALI, 1024)]

    for state in (State.LIVE, State.TIME_WAIT):
        assert apply(node, dp, state).in_sync
        # Replaced, not added: the 1024 route went when the 512 one came.
        assert routes_to(node, POD_IP) == [(CALI, 512)]
        assert routes_to(node, "fd00:65::5", 6) == [(CALI, 512)]
        assert permanent_neighbours(node) == [POD_IP]

    assert apply(node, dp, None).in_sync
    assert routes_to(node, POD_IP) == [(CALI, 1024)] and routes_to(node, "fd00:65::5", 6) == [(CALI, 1024)]
    dp.conntrack.wait_all(5)
    assert removals.addrs == []  # the address never left its interface
    assert apply(node, dp, None).changes == 0


def test_target_suppresses_the_routes_and_static_arp(node_and_pod):
    node, _ = node_and_pod
    dp = RouteDataplane(conntrack=ConntrackCleaner(Removals()))
    assert apply(node, dp, State.TARGET).in_sync
    assert routes_to(node, POD_IP) == [] and routes_to(node, "fd00:65::5", 6) == []
    assert permanent_neighbours(node) == []
    # ...but the interface is configured as any workload's.
    assert node.run("sysctl", "-n", f"net.ipv4.conf.{CALI}.proxy_arp").stdout.strip() == "1"
    assert apply(node, dp, State.LIVE).in_sync
    assert routes_to(node, POD_IP) == [(CALI, 512)] and permanent_neighbours(node) == [POD_IP]


# --------------------------------------------------------------------------------------
# A whole migration, driven as the agent's loop drives it.

class Driver:
    """The agent's live migration loop in miniature: machines -> shell -> routes."""

    def __init__(self, node: Namespace, convergence: float, swaps: list):
        self.node = node
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.monitor = LiveMigrationMonitor(convergence_time=convergence)
        self.shell = LiveMigrationShell(self.events.put, OwnerSwapper(object, lambda *args: swaps.append(args)))
        self.dp = RouteDataplane(conntrack=ConntrackCleaner(Removals()))

    def endpoint(self, role: str) -> None:
        ep = t.WorkloadEndpoint(name=CALI, mac=POD_MAC, ipv4_nets=(POD_IP + "/32",), live_migration_role=role,
                                live_migration_uid="uid-1", live_migration_vmi_name="vm1")
        actions = self.monitor.on_message(t.WorkloadEndpointUpdate(WID, ep))
        in_netns(self.node, lambda: self.shell.execute(actions))  # packet sockets in the node namespace
        self.apply()

    def garp(self, timeout: float) -> bool:
        try:
            wid = self.events.get(timeout=timeout)
        except queue.Empty:
            return False
        self.shell.execute(self.monitor.on_garp_detected(wid))
        self.apply()
        return True

    def timers(self) -> None:
        for wid in self.shell.due():
            self.shell.execute(self.monitor.on_timer_pop(wid))
        self.apply()

    def apply(self) -> None:
        active = {WID: EP}
        states = lm.states_by_interface(self.monitor.states, active)
        desired = desired_routes(RouteConfig(hostname="node1", ipv6_enabled=False), RouteModel(), [EP],
                                 live_migration=states)
        assert in_netns(self.node, lambda: self.dp.apply(desired)).in_sync


def test_a_whole_migration_with_the_vm_announcing_itself(node_and_pod):
    node, pod = node_and_pod
    swaps: list = []
    drv = Driver(node, 0.5, swaps)
    try:
        drv.endpoint(t.LIVE_MIGRATION_TARGET)
        assert drv.monitor.state(WID) is State.TARGET and routes_to(node, POD_IP) == []
        assert list(drv.shell.watches) == [WID]

        send_from_pod(pod, arp(POD_IP, "10.65.0.1"))  # the VM's ordinary traffic: still Target
        assert not drv.garp(0.3) and routes_to(node, POD_IP) == []
        send_from_pod(pod, arp(POD_IP, POD_IP))  # the VM runs here now
        assert drv.garp(5)
        assert drv.monitor.state(WID) is State.LIVE and routes_to(node, POD_IP) == [(CALI, 512)]
        assert drv.shell.watches == {}  # leaving Target closed the packet sockets
        deadline = time.monotonic() + 5
        while not swaps and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [s[1:] for s in swaps] == [("", "vms", "vm1", "virt-launcher-vm1-target")]

        drv.endpoint("")  # KubeVirt clears the role: the routes stay elevated while they converge
        assert drv.monitor.state(WID) is State.TIME_WAIT and routes_to(node, POD_IP) == [(CALI, 512)]
        drv.timers()
        assert routes_to(node, POD_IP) == [(CALI, 512)]  # not yet
        time.sleep(0.6)
        drv.timers()
        assert drv.monitor.state(WID) is State.BASE and routes_to(node, POD_IP) == [(CALI, 1024)]
        assert len(swaps) == 1  # once per migration
    finally:
        drv.shell.close()


def test_a_migration_whose_announcement_was_missed(node_and_pod):
    node, _ = node_and_pod
    swaps: list = []
    drv = Driver(node, 0.3, swaps)
    try:
        drv.endpoint(t.LIVE_MIGRATION_TARGET)
        assert routes_to(node, POD_IP) == []
        drv.endpoint("")  # Target -> TimeWait: elevated routes, the detection stops
        assert drv.shell.watches == {} and routes_to(node, POD_IP) == [(CALI, 512)]
        time.sleep(0.4)
        drv.timers()
        assert routes_to(node, POD_IP) == [(CALI, 1024)] and drv.monitor.machines == {}
        drv.shell.swapper.stop()
        assert [s[1:] for s in swaps] == [("", "vms", "vm1", "virt-launcher-vm1-target")]
    finally:
        drv.shell.close()
