"""The interface monitor against real netlink in a throwaway namespace.

The monitor is started from a thread that joined the namespace (``in_netns``), so its own
thread and sockets live there; the test changes links with ``ip netns exec`` and waits for
the callbacks. Every test stops the monitor and checks that no thread is left.
"""
from __future__ import annotations

import threading
import time

import pytest

from netns import Namespace
from node.felix.dataplane.interfaces import Interface, InterfaceMonitor, read_interfaces
from startup_netns import in_netns


class Seen:
    """Collects the monitor's callbacks and waits until the latest satisfies a condition."""

    def __init__(self):
        self.snapshots: list[dict[str, Interface]] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot):
        with self.cond:
            self.snapshots.append(snapshot)
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = 5.0) -> dict[str, Interface]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.snapshots:
                    try:
                        if pred(self.snapshots[-1]):
                            return self.snapshots[-1]
                    except KeyError:  # the latest picture lacks the interface asked about
                        pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no callback matched; last: {self.snapshots[-1:]}")
                self.cond.wait(left)


def no_monitor_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name == "interface-monitor"]


@pytest.fixture
def ns():
    with Namespace("cifm") as ns:
        yield ns


def test_read_interfaces_sees_the_namespace(ns):
    ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
    ns.run("ip", "addr", "add", "192.0.2.10/24", "dev", "eth0")
    ifaces = in_netns(ns, read_interfaces)
    assert set(ifaces) == {"lo", "eth0", "peer0"}
    assert ifaces["eth0"].addresses == {"192.0.2.10"} and not ifaces["eth0"].oper_up
    assert ifaces["lo"].oper_up and "127.0.0.1" in ifaces["lo"].addresses


def test_monitor_follows_links_state_and_addresses_then_stops_cleanly(ns):
    seen = Seen()
    monitor = InterfaceMonitor(seen, refresh_interval=60)
    in_netns(ns, monitor.start)
    try:
        assert monitor.in_sync.wait(5)
        first = seen.wait_for(lambda s: True)
        assert set(first) == {"lo"}

        ns.run("ip", "link", "add", "cali1a2b", "type", "veth", "peer", "name", "wl1a2b")
        snap = seen.wait_for(lambda s: "cali1a2b" in s)
        assert not snap["cali1a2b"].oper_up

        ns.run("ip", "link", "set", "wl1a2b", "up")
        ns.run("ip", "link", "set", "cali1a2b", "up")
        snap = seen.wait_for(lambda s: "cali1a2b" in s and s["cali1a2b"].oper_up)
        index = snap["cali1a2b"].index

        ns.run("ip", "addr", "add", "10.9.0.1/24", "dev", "wl1a2b")
        seen.wait_for(lambda s: "10.9.0.1" in s["wl1a2b"].addresses)
        ns.run("ip", "-6", "addr", "add", "fd00:9::1/64", "dev", "wl1a2b", "nodad")
        seen.wait_for(lambda s: "fd00:9::1" in s["wl1a2b"].addresses)
        ns.run("ip", "addr", "del", "10.9.0.1/24", "dev", "wl1a2b")
        seen.wait_for(lambda s: "10.9.0.1" not in s["wl1a2b"].addresses)

        ns.run("ip", "link", "set", "cali1a2b", "down")
        seen.wait_for(lambda s: not s["cali1a2b"].oper_up)
        ns.run("ip", "link", "del", "cali1a2b")
        seen.wait_for(lambda s: "cali1a2b" not in s and "wl1a2b" not in s)

        ns.run("ip", "link", "add", "cali1a2b", "type", "veth", "peer", "name", "wl1a2b")
        snap = seen.wait_for(lambda s: "cali1a2b" in s)
        assert snap["cali1a2b"].index != index  # a recreated veth is a new interface
        # Every callback carried a different picture from the one before.
        changes = [(a, b) for a, b in zip(seen.snapshots, seen.snapshots[1:]) if a == b]
        assert not changes, changes[:1]
    finally:
        monitor.stop()
    assert not monitor.running and no_monitor_threads() and monitor.error is None


def test_periodic_reread_without_events_and_no_callback_when_nothing_changed(ns):
    seen = Seen()
    monitor = InterfaceMonitor(seen, refresh_interval=0.1)
    in_netns(ns, monitor.start)
    try:
        assert monitor.in_sync.wait(5)
        time.sleep(0.8)
        assert monitor.reads >= 4
        assert len(seen.snapshots) == 1
    finally:
        monitor.stop()
    assert no_monitor_threads()


def test_a_failing_callback_does_not_stop_the_monitor(ns):
    calls = []

    def callback(snapshot):
        calls.append(snapshot)
        if len(calls) == 1:
            raise ValueError("consumer bug")

    monitor = InterfaceMonitor(callback, refresh_interval=60)
    in_netns(ns, monitor.start)
    try:
        assert monitor.in_sync.wait(5)
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(calls) >= 2 and "eth0" in calls[-1]
    finally:
        monitor.stop()
    assert monitor.error is None and no_monitor_threads()


def test_stop_before_start_completes_and_double_start():
    monitor = InterfaceMonitor(lambda s: None)
    monitor.stop()  # never started: nothing to do
    monitor = InterfaceMonitor(lambda s: None)
    with Namespace("cifm") as ns:
        in_netns(ns, monitor.start)
        monitor.stop()
        with pytest.raises(RuntimeError):
            monitor.start()
    assert no_monitor_threads()
