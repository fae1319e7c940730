"""KubeVirt live migration in the policy agent, without the kernel: Felix v3.32's
liveMigrationMonitor cases (felix/dataplane/linux/live_migration_test.go) against the
pure machines (node/felix/live_migration.py), what their states do to the desired
routes (endpoint_mgr.go calculateRoutes), the configuration parameters, and the shell's
timers and IPAM owner swap with a stand-in for the IPAM call.

The GARP/RARP detection on real interfaces, the route changes in the kernel and the
timer driving them are in test_felix_live_migration_kernel.py."""
from __future__ import annotations

import struct
import threading
import time

import pytest

from node.felix import live_migration as lm
from node.felix import types as t
from node.felix.config import FelixConfig
from node.felix.dataplane.live_migration import LiveMigrationShell, OwnerSwapper, Timers
from node.felix.live_migration import Input, LiveMigrationMonitor, State
from node.felix.routes import RouteConfig, RouteModel, desired_routes, render_route
from node.ipam.errors import AlternateOwnerEmpty, AlternateOwnerMismatch, VMOwnerError

WEP1 = t.WorkloadEndpointID("k8s", "pod-1", "ep-1")
WEP2 = t.WorkloadEndpointID("k8s", "pod-2", "ep-2")
NS_WEP = t.WorkloadEndpointID("k8s", "test-ns/virt-launcher-vm1-abc", "ep-1")
ROLES = {"": "", "source": t.LIVE_MIGRATION_SOURCE, "target": t.LIVE_MIGRATION_TARGET}


def update(wid, role="", uid="", vmi="", name=None) -> t.WorkloadEndpointUpdate:
    return t.WorkloadEndpointUpdate(wid, t.WorkloadEndpoint(
        name="cali" + wid.endpoint if name is None else name, live_migration_role=ROLES[role],
        live_migration_uid=uid, live_migration_vmi_name=vmi))


def remove(wid) -> t.WorkloadEndpointRemove:
    return t.WorkloadEndpointRemove(wid)


def machine_in(state: State) -> tuple[LiveMigrationMonitor, t.WorkloadEndpointID]:
    """A monitor whose machine for an endpoint is in ``state`` (Felix's testFSM)."""
    m = LiveMigrationMonitor()
    wid = t.WorkloadEndpointID("k8s", "test-pod", "ep")
    m.interfaces[wid] = "caliep"
    if state is not State.BASE:
        m.machines[wid] = lm._Machine(state=state)
    return m, wid


def states_of(changes) -> list[State]:
    return [c.state for c in changes]


def expect_update(m: LiveMigrationMonitor, state: State) -> None:
    changes = m.take_state_changes()
    assert states_of(changes) == [state]


# --------------------------------------------------------------------------------------
# Section 1: the transition table, every state by every input.

TABLE = [
    (State.BASE, Input.TARGET, State.TARGET),
    (State.BASE, Input.GARP_DETECTED, State.BASE),
    (State.BASE, Input.NO_ROLE, State.BASE),
    (State.BASE, Input.TIMER_POP, State.BASE),
    (State.BASE, Input.SOURCE, State.BASE),
    (State.BASE, Input.DELETED, State.BASE),
    (State.TARGET, Input.TARGET, State.TARGET),
    (State.TARGET, Input.GARP_DETECTED, State.LIVE),
    (State.TARGET, Input.NO_ROLE, State.TIME_WAIT),
    (State.TARGET, Input.TIMER_POP, State.TARGET),
    (State.TARGET, Input.SOURCE, State.BASE),
    (State.TARGET, Input.DELETED, State.BASE),
    (State.LIVE, Input.TARGET, State.LIVE),
    (State.LIVE, Input.GARP_DETECTED, State.LIVE),
    (State.LIVE, Input.NO_ROLE, State.TIME_WAIT),
    (State.LIVE, Input.TIMER_POP, State.LIVE),
    (State.LIVE, Input.SOURCE, State.BASE),
    (State.LIVE, Input.DELETED, State.BASE),
    (State.TIME_WAIT, Input.TARGET, State.TIME_WAIT),
    (State.TIME_WAIT, Input.GARP_DETECTED, State.TIME_WAIT),
    (State.TIME_WAIT, Input.NO_ROLE, State.TIME_WAIT),
    (State.TIME_WAIT, Input.TIMER_POP, State.BASE),
    (State.TIME_WAIT, Input.SOURCE, State.BASE),
    (State.TIME_WAIT, Input.DELETED, State.BASE),
]


@pytest.mark.parametrize("start,event,want", TABLE, ids=[f"{s}+{i}->{w}" for s, i, w in TABLE])
def test_transition_table(start, event, want):
    assert lm.next_state(start, event) is want
    m, wid = machine_in(start)
    m._execute(wid, event)
    assert m.state(wid) is want
    # One state change when the state changes, none otherwise; a machine in Base is dropped.
    assert states_of(m.take_state_changes()) == ([want] if want is not start else [])
    assert (wid in m.machines) == (want is not State.BASE)


@pytest.mark.parametrize("start,event,want", [row for row in TABLE if row[0] is not row[2]],
                         ids=[f"{s}+{i}" for s, i, w in TABLE if s is not w])
def test_transition_side_effects(start, event, want):
    # Leaving Target stops the detection, leaving TimeWait the timer; entering Target
    # starts the detection, TimeWait the timer, Live and TimeWait the owner swap.
    m = LiveMigrationMonitor()
    wid = t.WorkloadEndpointID("k8s", "ns1/virt-launcher-vm1", "eth0")
    m.interfaces[wid] = "cali12345"
    m.vmi_names[wid] = "vm1"
    if start is not State.BASE:
        m.machines[wid] = lm._Machine(state=start)
    actions = m._execute(wid, event)
    expected = []
    if start is State.TARGET:
        expected.append(lm.StopGARPDetection(wid))
    if start is State.TIME_WAIT:
        expected.append(lm.StopTimer(wid))
    if want is State.TARGET:
        expected.append(lm.StartGARPDetection(wid, "cali12345"))
    if want in (State.LIVE, State.TIME_WAIT):
        expected.append(lm.StartOwnerSwap(wid, "ns1", "virt-launcher-vm1", "vm1"))
    if want is State.TIME_WAIT:
        expected.append(lm.StartTimer(wid, 30.0))
    assert actions == expected


def test_state_and_input_names():
    assert [str(s) for s in State] == ["Base", "Target", "Live", "TimeWait"]
    assert [str(i) for i in Input] == ["NoRole", "Source", "Target", "GARPDetected", "TimerPop", "Deleted"]


# --------------------------------------------------------------------------------------
# Section 2: endpoint updates and removals drive the machines.

def test_target_role_creates_a_machine_in_target():
    m = LiveMigrationMonitor()
    actions = m.on_message(update(WEP1, "target"))
    assert m.take_state_changes() == [lm.StateChange(WEP1, State.TARGET)]
    assert actions == [lm.StartGARPDetection(WEP1, "caliep-1")]


def test_role_target_to_none_drives_no_role():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    m.take_state_changes()
    m.on_message(update(WEP1, ""))
    expect_update(m, State.TIME_WAIT)  # Target + NoRole


def test_role_target_to_source_drives_source():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    m.take_state_changes()
    actions = m.on_message(update(WEP1, "source"))
    expect_update(m, State.BASE)
    assert actions == [lm.StopGARPDetection(WEP1)]


def test_the_same_role_again_changes_nothing():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    m.take_state_changes()
    assert m.on_message(update(WEP1, "target")) == [] and m.take_state_changes() == []


def test_other_messages_are_ignored():
    m = LiveMigrationMonitor()
    assert m.on_messages([t.HostEndpointUpdate(t.HostEndpointID("h"), t.HostEndpoint(name="eth0")),
                          t.InSync()]) == []
    assert m.machines == {}


def test_source_and_no_role_on_a_new_endpoint_make_no_machine():
    m = LiveMigrationMonitor()
    assert m.on_message(update(WEP1, "source")) == [] and m.on_message(update(WEP2, "")) == []
    assert m.machines == {} and m.take_state_changes() == []


def test_removal_drives_deleted_and_forgets_the_endpoint():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target", uid="uid-1", vmi="vm"))
    m.take_state_changes()
    actions = m.on_message(remove(WEP1))
    expect_update(m, State.BASE)
    assert actions == [lm.StopGARPDetection(WEP1)]
    for table in (m.roles, m.interfaces, m.migration_uids, m.vmi_names, m.machines):
        assert WEP1 not in table


def test_removal_of_an_unknown_endpoint_is_safe():
    m = LiveMigrationMonitor()
    assert m.on_message(remove(WEP1)) == []
    assert m.take_state_changes() == [] and m.machines == {}


def test_update_keeps_the_interface_name():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    assert m.interfaces[WEP1] == "caliep-1"


def test_a_role_unknown_to_us_is_ignored(caplog):
    m = LiveMigrationMonitor()
    bad = t.WorkloadEndpointUpdate(WEP1, t.WorkloadEndpoint(name="cali1", live_migration_role="sideways"))
    assert m.on_message(bad) == [] and m.machines == {}
    assert "unknown live migration role 'sideways'" in caplog.text


# --------------------------------------------------------------------------------------
# Section 3: the machines' lifecycle.

def test_machine_made_on_first_input_and_dropped_back_in_base():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    assert list(m.machines) == [WEP1]
    m.on_message(update(WEP1, "source"))
    assert m.machines == {}


def test_inputs_for_one_endpoint_reuse_its_machine():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    first = m.machines[WEP1]
    m.take_state_changes()
    m.on_garp_detected(WEP1)
    assert m.machines == {WEP1: first}
    expect_update(m, State.LIVE)


def test_state_changes_are_taken_once():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    assert len(m.take_state_changes()) == 1 and m.take_state_changes() == []


def test_no_interface_name_means_no_detection(caplog):
    m = LiveMigrationMonitor()
    actions = m.on_message(update(WEP1, "target", name=""))
    assert actions == [] and m.state(WEP1) is State.TARGET
    assert "No interface name" in caplog.text


# --------------------------------------------------------------------------------------
# Section 4: whole migrations.

def test_missed_garp():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    expect_update(m, State.TARGET)
    m.on_message(update(WEP1, ""))
    expect_update(m, State.TIME_WAIT)


def test_happy_path_target_garp_no_role_timer():
    m = LiveMigrationMonitor(convergence_time=7.5)
    m.on_message(update(WEP1, "target"))
    expect_update(m, State.TARGET)
    assert m.on_garp_detected(WEP1) == [lm.StopGARPDetection(WEP1)]  # no VMI name: no swap
    expect_update(m, State.LIVE)
    assert m.on_message(update(WEP1, "")) == [lm.StartTimer(WEP1, 7.5)]
    expect_update(m, State.TIME_WAIT)
    assert m.on_timer_pop(WEP1) == [lm.StopTimer(WEP1)]
    expect_update(m, State.BASE)
    assert m.machines == {}


def test_re_migration_and_deletion_during_migration():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    expect_update(m, State.TARGET)
    m.on_message(update(WEP1, "source"))
    expect_update(m, State.BASE)
    m.on_message(update(WEP2, "target"))
    expect_update(m, State.TARGET)
    m.on_message(remove(WEP2))
    expect_update(m, State.BASE)


def test_two_endpoints_are_independent():
    m = LiveMigrationMonitor()
    m.on_messages([update(WEP1, "target"), update(WEP2, "target")])
    assert m.take_state_changes() == [lm.StateChange(WEP1, State.TARGET), lm.StateChange(WEP2, State.TARGET)]
    m.on_garp_detected(WEP1)
    assert m.take_state_changes() == [lm.StateChange(WEP1, State.LIVE)]
    assert m.states == {WEP1: State.LIVE, WEP2: State.TARGET}


def test_stale_timer_pop_is_ignored():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    assert m.on_timer_pop(WEP1) == [] and m.state(WEP1) is State.TARGET
    assert m.on_timer_pop(WEP2) == [] and WEP2 not in m.machines


# --------------------------------------------------------------------------------------
# Section 5: the timers (the shell's deadlines, on a test clock).

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_timer_fires_once_after_the_convergence_time():
    clock = Clock()
    timers = Timers(clock)
    timers.start(WEP1, 30.0)
    assert timers.next_deadline() == 130.0 and timers.due() == []
    clock.now = 129.9
    assert timers.due() == []
    clock.now = 130.0
    assert timers.due() == [WEP1] and timers.due() == [] and timers.next_deadline() is None


def test_stopped_timer_never_fires():
    clock = Clock()
    timers = Timers(clock)
    timers.start(WEP1, 0.5)
    timers.start(WEP2, 1.0)
    timers.stop(WEP1)
    clock.now += 5
    assert timers.due() == [WEP2]


def test_monitor_and_shell_timer_round_trip():
    # TimeWait starts the timer; the Source input stops it (no TimerPop afterwards).
    clock = Clock()
    shell = LiveMigrationShell(lambda wid: None, None, clock=clock, open_watch=FakeWatch)
    m = LiveMigrationMonitor(convergence_time=0.05)
    shell.execute(m.on_message(update(WEP1, "target")))
    shell.execute(m.on_message(update(WEP1, "")))
    assert m.state(WEP1) is State.TIME_WAIT and shell.next_deadline() == pytest.approx(100.05)
    clock.now += 1
    for wid in shell.due():
        shell.execute(m.on_timer_pop(wid))
    assert m.state(WEP1) is State.BASE and m.machines == {}

    shell.execute(m.on_message(update(WEP2, "target")))
    shell.execute(m.on_message(update(WEP2, "")))
    shell.execute(m.on_message(update(WEP2, "source")))
    clock.now += 1
    assert shell.due() == [] and m.states == {}


class FakeWatch:
    """Stands in for GARPWatch (no packet sockets): records that it was opened and closed."""

    opened: list = []

    def __init__(self, wid, interface, on_detected):
        self.wid, self.interface, self.on_detected = wid, interface, on_detected
        self.closed = False
        FakeWatch.opened.append(self)

    def close(self):
        self.closed = True


def test_leaving_target_closes_the_watch_and_a_missing_interface_is_logged(caplog):
    FakeWatch.opened = []
    shell = LiveMigrationShell(lambda wid: None, None, open_watch=FakeWatch)
    m = LiveMigrationMonitor()
    shell.execute(m.on_message(update(WEP1, "target")))
    watch, = FakeWatch.opened
    assert watch.interface == "caliep-1" and shell.watches == {WEP1: watch} and not watch.closed
    shell.execute(m.on_message(update(WEP1, "source")))
    assert watch.closed and shell.watches == {}

    def gone(wid, interface, on_detected):
        raise OSError(19, "No such device")
    shell = LiveMigrationShell(lambda wid: None, None, open_watch=gone)
    shell.execute(m.on_message(update(WEP2, "target")))
    assert shell.watches == {} and m.state(WEP2) is State.TARGET
    assert "Failed to open packet capture for GARP detection on caliep-2" in caplog.text


# --------------------------------------------------------------------------------------
# Section 6: which frames count.

SRC = bytes.fromhex("001122334455")
BCAST = b"\xff" * 6


def arp_frame(sender_ip: bytes, target_ip: bytes, op: int = 1, ethertype: int = 0x0806) -> bytes:
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + SRC + sender_ip + b"\0" * 6 + target_ip
    return BCAST + SRC + struct.pack("!H", ethertype) + arp


def test_rarp_is_detected():
    assert lm.is_garp_or_rarp(BCAST + SRC + b"\x80\x35")
    assert lm.is_garp_or_rarp(BCAST + SRC + b"\x80\x35" + bytes(28))


def test_gratuitous_arp_is_detected_request_or_reply():
    assert lm.is_garp_or_rarp(arp_frame(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 1])))
    assert lm.is_garp_or_rarp(arp_frame(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 1]), op=2))


def test_ordinary_arp_and_other_frames_are_not():
    assert not lm.is_garp_or_rarp(arp_frame(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))
    ipv4 = BCAST + SRC + b"\x08\x00" + bytes(20)
    assert not lm.is_garp_or_rarp(ipv4)
    assert not lm.is_garp_or_rarp(arp_frame(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 1]))[:40])  # truncated
    assert not lm.is_garp_or_rarp(b"\x00" * 10)
    # An ARP inside an 802.1Q tag: Felix only looks at the outer EtherType.
    tagged = BCAST + SRC + b"\x81\x00\x00\x05" + arp_frame(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 1]))[12:]
    assert not lm.is_garp_or_rarp(tagged)


# --------------------------------------------------------------------------------------
# Section 7: the migration UID and VMI name, and the IPAM owner swap.

def test_uid_kept_on_the_machine_and_forgotten_with_the_endpoint():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target", uid="uid-abc-123"))
    assert m.migration_uids[WEP1] == "uid-abc-123" and m.machines[WEP1].migration_uid == "uid-abc-123"
    m.on_garp_detected(WEP1)
    m.on_message(update(WEP1, "", uid=""))  # the LiveMigration is gone: the UID stays for the logs
    assert m.machines[WEP1].migration_uid == "uid-abc-123"
    m.on_message(remove(WEP1))
    assert WEP1 not in m.migration_uids


def test_empty_uid_and_vmi_name_are_not_stored():
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target"))
    assert WEP1 not in m.migration_uids and WEP1 not in m.vmi_names
    m.on_message(update(WEP2, "target", uid="u", vmi="my-vmi"))
    assert m.vmi_names[WEP2] == "my-vmi"


def test_owner_swap_needs_a_vmi_name_and_a_namespaced_workload_id():
    m = LiveMigrationMonitor()
    m.on_message(update(NS_WEP, "target", uid="uid-1"))
    assert [a for a in m.on_garp_detected(NS_WEP) if isinstance(a, lm.StartOwnerSwap)] == []
    m = LiveMigrationMonitor()
    m.on_message(update(WEP1, "target", vmi="my-vmi"))  # "pod-1": no namespace
    assert [a for a in m.on_garp_detected(WEP1) if isinstance(a, lm.StartOwnerSwap)] == []


def test_owner_swap_on_live_and_on_missed_garp_once_per_machine():
    swap = lm.StartOwnerSwap(NS_WEP, "test-ns", "virt-launcher-vm1-abc", "my-vmi", "uid-1")
    m = LiveMigrationMonitor()
    m.on_message(update(NS_WEP, "target", uid="uid-1", vmi="my-vmi"))
    assert swap in m.on_garp_detected(NS_WEP)  # Target -> Live
    assert [a for a in m.on_message(update(NS_WEP, "")) if isinstance(a, lm.StartOwnerSwap)] == []  # -> TimeWait

    m = LiveMigrationMonitor()
    m.on_message(update(NS_WEP, "target", uid="uid-1", vmi="my-vmi"))
    assert swap in m.on_message(update(NS_WEP, ""))  # Target -> TimeWait (missed GARP)

    # A new machine (after Base) may swap again: the next migration to this node.
    m.on_timer_pop(NS_WEP)
    m.on_message(update(NS_WEP, "target", uid="uid-2", vmi="my-vmi"))
    assert lm.StartOwnerSwap(NS_WEP, "test-ns", "virt-launcher-vm1-abc", "my-vmi", "uid-2") in \
        m.on_garp_detected(NS_WEP)


class Recorder:
    """ensure_active_vm_owner_attrs's stand-in: fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls: list[tuple] = []
        self.done = threading.Event()
        self.times: list[float] = []

    def __call__(self, ipam, network_name, namespace, vmi_name, target_pod):
        self.calls.append((ipam, network_name, namespace, vmi_name, target_pod))
        self.times.append(time.monotonic())
        if self.errors:
            exc = self.errors.pop(0)
            if not self.errors and not isinstance(exc, Exception):
                self.done.set()
            raise exc
        self.done.set()


class FakeKV:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class FakeIPAM:
    def __init__(self):
        self.kv = FakeKV()


SWAP = lm.StartOwnerSwap(NS_WEP, "test-ns", "virt-launcher-vm1-abc", "my-vmi", "uid-1")


def test_owner_swap_calls_ipam_once_with_felix_arguments_and_closes_its_client(caplog):
    caplog.set_level("INFO")
    made = []
    rec = Recorder()
    swapper = OwnerSwapper(lambda: made.append(FakeIPAM()) or made[-1], rec)
    swapper.start(SWAP).join(5)
    assert rec.calls == [(made[0], "", "test-ns", "my-vmi", "virt-launcher-vm1-abc")]
    assert made[0].kv.closed
    assert "Successfully swapped IPAM owner attributes for test-ns/virt-launcher-vm1-abc" in caplog.text


def test_owner_swap_retries_transient_errors_with_doubling_backoff(caplog):
    rec = Recorder(VMOwnerError("etcd down"), RuntimeError("connection reset"), VMOwnerError("race"))
    made = []
    swapper = OwnerSwapper(lambda: made.append(FakeIPAM()) or made[-1], rec, first_backoff=0.05)
    swapper.start(SWAP).join(5)
    assert len(rec.calls) == 4 and len(made) == 1  # one client for the whole swap
    gaps = [b - a for a, b in zip(rec.times, rec.times[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2
    assert caplog.text.count("Transient error swapping IPAM owner attributes") == 3


def test_owner_swap_gives_up_after_five_attempts(caplog):
    rec = Recorder(*[VMOwnerError(f"try {i}") for i in range(10)])
    OwnerSwapper(FakeIPAM, rec, first_backoff=0.001).start(SWAP).join(5)
    assert len(rec.calls) == 5 and "Exhausted retries for IPAM owner attribute swap" in caplog.text


@pytest.mark.parametrize("error", [AlternateOwnerEmpty("10.65.0.5"),
                                   AlternateOwnerMismatch("10.65.0.5", "ns/a", "ns/b")])
def test_owner_swap_stops_at_a_non_retryable_error(error, caplog):
    rec = Recorder(error)
    OwnerSwapper(FakeIPAM, rec).start(SWAP).join(5)
    assert len(rec.calls) == 1
    assert "Non-retryable error swapping IPAM owner attributes" in caplog.text


def test_owner_swap_overall_deadline(caplog):
    rec = Recorder(*[VMOwnerError("slow") for _ in range(10)])
    OwnerSwapper(FakeIPAM, rec, first_backoff=0.2, deadline=0.3).start(SWAP).join(5)
    assert len(rec.calls) == 2 and "Gave up retrying the IPAM owner swap" in caplog.text


def test_owner_swap_stop_cuts_the_wait_short():
    rec = Recorder(*[VMOwnerError("down") for _ in range(10)])
    swapper = OwnerSwapper(FakeIPAM, rec, first_backoff=10.0)
    thread = swapper.start(SWAP)
    time.sleep(0.1)
    started = time.monotonic()
    swapper.stop()
    assert not thread.is_alive() and time.monotonic() - started < 2 and len(rec.calls) == 1


def test_shell_runs_the_swap_once_for_a_whole_migration():
    rec = Recorder()
    shell = LiveMigrationShell(lambda wid: None, OwnerSwapper(FakeIPAM, rec), open_watch=FakeWatch)
    m = LiveMigrationMonitor()
    shell.execute(m.on_message(update(NS_WEP, "target", uid="uid-1", vmi="my-vmi")))
    shell.execute(m.on_garp_detected(NS_WEP))
    assert rec.done.wait(5)
    shell.execute(m.on_message(update(NS_WEP, "")))
    time.sleep(0.2)
    shell.close()
    assert len(rec.calls) == 1


# --------------------------------------------------------------------------------------
# Routes: Target suppresses, Live/TimeWait elevate, Base is normal (both families).

CALI = "cali1a2b3c4d5e6"
EP = t.WorkloadEndpoint(name=CALI, mac="ee:aa:bb:cc:dd:05", ipv4_nets=("10.65.0.5/32",),
                        ipv6_nets=("fd00:65::5/128",))
OTHER = t.WorkloadEndpoint(name="cali99999999999", mac="ee:aa:bb:cc:dd:06", ipv4_nets=("10.65.0.6/32",))


def workload_lines(desired) -> list[str]:
    return [render_route(r) for r in desired.routes] + [f"{n.ip} {n.dev}" for n in desired.neighbours]


@pytest.mark.parametrize("state,metric4,metric6", [(None, 1024, 1024), (State.LIVE, 512, 512),
                                                   (State.TIME_WAIT, 512, 512)])
def test_route_priority_by_state(state, metric4, metric6):
    cfg = RouteConfig(hostname="node1")
    desired = desired_routes(cfg, RouteModel(), [EP, OTHER], live_migration={CALI: state} if state else None)
    assert workload_lines(desired) == [
        f"10.65.0.5 dev {CALI} proto boot scope link metric {metric4}",
        "10.65.0.6 dev cali99999999999 proto boot scope link metric 1024",
        f"fd00:65::5 dev {CALI} proto boot scope link metric {metric6}",
        f"10.65.0.5 {CALI}", "10.65.0.6 cali99999999999"]


def test_target_has_no_routes_nor_neighbours_but_keeps_its_sysctls():
    cfg = RouteConfig(hostname="node1")
    base = desired_routes(cfg, RouteModel(), [EP, OTHER])
    desired = desired_routes(cfg, RouteModel(), [EP, OTHER], live_migration={CALI: State.TARGET})
    assert workload_lines(desired) == ["10.65.0.6 dev cali99999999999 proto boot scope link metric 1024",
                                       "10.65.0.6 cali99999999999"]
    assert desired.sysctls == base.sysctls and any(CALI in s.path for s in desired.sysctls)


def test_configured_priorities_per_family_and_the_memo_follows_the_state():
    cfg = RouteConfig(hostname="node1", ipv4_normal_route_priority=2000, ipv6_normal_route_priority=3000,
                      ipv4_elevated_route_priority=100, ipv6_elevated_route_priority=200)
    from node.felix.routes import EndpointPieces

    memo = EndpointPieces()
    metrics = []
    for state in (None, State.TARGET, State.LIVE, State.TIME_WAIT, None):
        desired = desired_routes(cfg, RouteModel(), [EP], memo=memo, live_migration={CALI: state} if state else {})
        metrics.append(tuple(r.metric for r in desired.routes))
    assert metrics == [(2000, 3000), (), (100, 200), (100, 200), (2000, 3000)]


def test_felix_parameters_and_their_route_config():
    default = FelixConfig.resolve({})
    assert (default.IPv4ElevatedRoutePriority, default.IPv6ElevatedRoutePriority,
            default.LiveMigrationRouteConvergenceTime) == (512, 512, 30.0)
    env = {"FELIX_IPV4ELEVATEDROUTEPRIORITY": "100", "FELIX_IPv6ElevatedRoutePriority": "200",
           "FELIX_LIVEMIGRATIONROUTECONVERGENCETIME": "2.5"}
    cfg = FelixConfig.resolve(env)
    assert (cfg.IPv4ElevatedRoutePriority, cfg.IPv6ElevatedRoutePriority,
            cfg.LiveMigrationRouteConvergenceTime) == (100, 200, 2.5)
    rc = RouteConfig.from_felix(cfg, hostname="n", vxlan_enabled=False, vxlan_enabled_v6=False, ipip_enabled=False)
    assert (rc.elevated_priority(4), rc.elevated_priority(6), rc.normal_priority(4)) == (100, 200, 1024)
    bad = FelixConfig.resolve({"FELIX_IPV4ELEVATEDROUTEPRIORITY": "0", "FELIX_IPV6ELEVATEDROUTEPRIORITY": "2147483647"})
    assert (bad.IPv4ElevatedRoutePriority, bad.IPv6ElevatedRoutePriority) == (512, 512)
    assert len(bad.problems) == 2
    # From a FelixConfiguration: a metav1.Duration for the time, integers for the priorities.
    from node.felix.config import v1_config_from_spec

    spec = {"liveMigrationRouteConvergenceTime": "1m30s", "ipv4ElevatedRoutePriority": 256}
    cfg = FelixConfig.resolve({}, global_config=v1_config_from_spec(spec))
    assert (cfg.LiveMigrationRouteConvergenceTime, cfg.IPv4ElevatedRoutePriority) == (90.0, 256)


def test_states_by_interface_follows_the_endpoint_in_charge():
    active = {WEP1: t.WorkloadEndpoint(name="cali1"), WEP2: t.WorkloadEndpoint(name="cali2")}
    shadowed = t.WorkloadEndpointID("k8s", "pod-3", "ep-3")  # same interface as WEP1, not in charge
    states = {WEP1: State.LIVE, shadowed: State.TARGET, t.WorkloadEndpointID("k8s", "gone", "x"): State.TARGET}
    assert lm.states_by_interface(states, active) == {"cali1": State.LIVE}


# --------------------------------------------------------------------------------------
# The dry run: routes as an agent just started has them.

DRY_RUN_RESOURCES = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool4}
spec: {cidr: 10.65.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: kns.vms}
spec: {ingress: [{action: Allow}], egress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-virt--launcher--vm1--tgt-eth0
  namespace: vms
  labels: {vm.kubevirt.io/name: vm1, kubevirt.io/migrationJobUID: job-1}
spec: {orchestrator: k8s, node: node1, pod: virt-launcher-vm1-tgt, endpoint: eth0,
       interfaceName: calia1a1a1a1a1a, ipNetworks: [10.65.0.10/32], profiles: [kns.vms]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-k8s-web-eth0, namespace: vms}
spec: {orchestrator: k8s, node: node1, pod: web, endpoint: eth0, interfaceName: calib2b2b2b2b2b,
       ipNetworks: [10.65.0.11/32], profiles: [kns.vms]}
"""

MIGRATION = """---
apiVersion: projectcalico.org/v3
kind: LiveMigration
metadata: {name: mig1, namespace: vms, uid: job-1}
spec:
  source: {workload: {orchestratorID: k8s, workloadID: vms/virt-launcher-vm1-src}}
  target: {selector: "kubevirt.io/migrationJobUID == 'job-1'"}
"""


def test_dry_run_holds_back_a_migration_targets_routes(tmp_path):
    from node.felix.dryrun import dry_run

    plain, migrating = tmp_path / "plain.yaml", tmp_path / "migrating.yaml"
    plain.write_text(DRY_RUN_RESOURCES)
    migrating.write_text(DRY_RUN_RESOURCES + MIGRATION)
    env = {"FELIX_IPV6SUPPORT": "false"}

    def workload_routes(path):
        text = dry_run("node1", env, files=[str(path)], what="routes", interfaces={"eth0": ["10.0.0.11"]})
        return [line for line in text.splitlines() if line.startswith("10.65.")]
    assert workload_routes(plain) == ["10.65.0.10 dev calia1a1a1a1a1a proto boot scope link metric 1024",
                                      "10.65.0.11 dev calib2b2b2b2b2b proto boot scope link metric 1024"]
    # The target is in Target until its VM announces itself, which a dry run never sees.
    assert workload_routes(migrating) == ["10.65.0.11 dev calib2b2b2b2b2b proto boot scope link metric 1024"]
