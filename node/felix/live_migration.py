"""KubeVirt live migration, as the policy agent follows it: one small state machine per
local workload endpoint (Felix v3.32's liveMigrationMonitor, felix/dataplane/linux/
live_migration.go), without threads or I/O.

The calculation marks an endpoint with its role in a LiveMigration in progress
(``WorkloadEndpoint.live_migration_role``: source, target or none). The role alone cannot
say when the VM is running on the target (KubeVirt only clears the role later), so the
machine also listens for the VM's first gratuitous ARP or RARP on the target's interface,
and keeps the target's routes at an elevated priority for a while after the migration
(LiveMigrationRouteConvergenceTime) so that the rest of the cluster converges on them:

    input \\ state  Base      Target    Live      TimeWait
    Target          Target
    GARPDetected              Live
    NoRole                    TimeWait  TimeWait  (stays)
    TimerPop                                      Base
    Source                    Base      Base      Base
    Deleted                   Base      Base      Base

(an empty cell: no change). A role change on an endpoint update is the input of that
role; an endpoint removal is Deleted. The side effects come back as actions for the
shell (node/felix/dataplane/live_migration.py) to carry out: leaving Target stops the
GARP/RARP detection and leaving TimeWait stops the convergence timer; entering Target
starts the detection, entering TimeWait starts the timer, and entering Live or TimeWait
starts the IPAM owner swap (the target pod becomes its VM's addresses' active owner),
at most once per machine. A machine back in Base is dropped.

What the states mean for routes (Felix's endpoint manager, calculateRoutes): Target
suppresses the endpoint's routes (and so its static ARP entries), Live and TimeWait give
them the elevated priority (IPv4/IPv6ElevatedRoutePriority), Base the normal one.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from node.felix import types as t

log = logging.getLogger(__name__)


class State(enum.Enum):
    BASE = "Base"
    TARGET = "Target"
    LIVE = "Live"
    TIME_WAIT = "TimeWait"

    def __str__(self) -> str:
        return self.value


class Input(enum.Enum):
    NO_ROLE = "NoRole"
    SOURCE = "Source"
    TARGET = "Target"
    GARP_DETECTED = "GARPDetected"
    TIMER_POP = "TimerPop"
    DELETED = "Deleted"

    def __str__(self) -> str:
        return self.value


# Felix's transition table; a pair not listed leaves the state as it is.
TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (State.BASE, Input.TARGET): State.TARGET,
    (State.TARGET, Input.GARP_DETECTED): State.LIVE,
    # The migration finished but no GARP/RARP was seen: settle the routes all the same.
    (State.TARGET, Input.NO_ROLE): State.TIME_WAIT,
    (State.TARGET, Input.SOURCE): State.BASE,
    (State.TARGET, Input.DELETED): State.BASE,
    (State.LIVE, Input.NO_ROLE): State.TIME_WAIT,
    (State.LIVE, Input.SOURCE): State.BASE,  # migrating away again
    (State.LIVE, Input.DELETED): State.BASE,
    (State.TIME_WAIT, Input.TIMER_POP): State.BASE,
    (State.TIME_WAIT, Input.SOURCE): State.BASE,
    (State.TIME_WAIT, Input.DELETED): State.BASE,
}

ROLE_INPUTS = {"": Input.NO_ROLE, t.LIVE_MIGRATION_SOURCE: Input.SOURCE, t.LIVE_MIGRATION_TARGET: Input.TARGET}


def next_state(state: State, event: Input) -> State:
    return TRANSITIONS.get((state, event), state)


# --------------------------------------------------------------------------------------
# Actions for the shell.

@dataclass(frozen=True)
class StartGARPDetection:
    """Watch ``interface`` (the workload's host side) for a gratuitous ARP or a RARP."""

    id: t.WorkloadEndpointID
    interface: str


@dataclass(frozen=True)
class StopGARPDetection:
    id: t.WorkloadEndpointID


@dataclass(frozen=True)
class StartTimer:
    """Deliver TimerPop for ``id`` after ``seconds``."""

    id: t.WorkloadEndpointID
    seconds: float


@dataclass(frozen=True)
class StopTimer:
    id: t.WorkloadEndpointID


@dataclass(frozen=True)
class StartOwnerSwap:
    """Make ``pod`` the active IPAM owner of VMI ``namespace/vmi_name``'s addresses
    (node.ipam.vm.ensure_active_vm_owner_attrs), in the background, with retries."""

    id: t.WorkloadEndpointID
    namespace: str
    pod: str
    vmi_name: str
    migration_uid: str = ""


@dataclass(frozen=True)
class StateChange:
    """What Felix's monitor forwards to the endpoint manager (liveMigrationStateUpdate)."""

    id: t.WorkloadEndpointID
    state: State


def split_workload_id(workload: str) -> tuple[str, str] | None:
    """A Kubernetes workload ID ``<namespace>/<pod>`` as (namespace, pod); None otherwise."""
    namespace, sep, pod = workload.partition("/")
    return (namespace, pod) if sep else None


@dataclass
class _Machine:
    state: State = State.BASE
    migration_uid: str = ""
    swap_started: bool = False  # Felix's sync.Once: one swap per machine


@dataclass
class LiveMigrationMonitor:
    """Every local workload endpoint's machine, and what it needs to act: the role last
    seen, the interface, the migration UID (kept when the LiveMigration goes, for the
    logs) and the VMI name. Feed it the calculation's messages and the shell's events;
    each call returns the actions to carry out, in order. ``states`` is what the route
    side reads: the endpoints not in Base."""

    convergence_time: float = 30.0  # LiveMigrationRouteConvergenceTime, seconds
    roles: dict[t.WorkloadEndpointID, str] = field(default_factory=dict)
    interfaces: dict[t.WorkloadEndpointID, str] = field(default_factory=dict)
    migration_uids: dict[t.WorkloadEndpointID, str] = field(default_factory=dict)
    vmi_names: dict[t.WorkloadEndpointID, str] = field(default_factory=dict)
    machines: dict[t.WorkloadEndpointID, _Machine] = field(default_factory=dict)
    pending: list[StateChange] = field(default_factory=list)

    # -- inputs -------------------------------------------------------------------------

    def on_messages(self, messages: Iterable) -> list:
        actions: list = []
        for msg in messages:
            if isinstance(msg, (t.WorkloadEndpointUpdate, t.WorkloadEndpointRemove)):
                actions += self.on_message(msg)
        return actions

    def on_message(self, msg) -> list:
        if isinstance(msg, t.WorkloadEndpointUpdate):
            wid, ep = msg.id, msg.endpoint
            self.interfaces[wid] = ep.name
            if ep.live_migration_uid:
                self.migration_uids[wid] = ep.live_migration_uid
            if ep.live_migration_vmi_name:
                self.vmi_names[wid] = ep.live_migration_vmi_name
            old, new = self.roles.get(wid, ""), ep.live_migration_role
            self.roles[wid] = new
            if old != new:
                event = ROLE_INPUTS.get(new)
                if event is None:
                    log.warning("Workload endpoint %s has unknown live migration role %r; ignored", _text(wid), new)
                    return []
                return self._execute(wid, event)
            return []
        if isinstance(msg, t.WorkloadEndpointRemove):
            wid = msg.id
            actions = self._execute(wid, Input.DELETED)
            for table in (self.roles, self.interfaces, self.migration_uids, self.vmi_names):
                table.pop(wid, None)
            return actions
        return []

    def on_garp_detected(self, wid: t.WorkloadEndpointID) -> list:
        return self._execute(wid, Input.GARP_DETECTED)

    def on_timer_pop(self, wid: t.WorkloadEndpointID) -> list:
        """A timer that fired just as it was being stopped is ignored, as Felix does."""
        machine = self.machines.get(wid)
        if machine is None or machine.state is not State.TIME_WAIT:
            log.debug("Ignoring stale timer pop for %s (not in TimeWait)", _text(wid))
            return []
        return self._execute(wid, Input.TIMER_POP)

    # -- outputs ------------------------------------------------------------------------

    @property
    def states(self) -> dict[t.WorkloadEndpointID, State]:
        return {wid: m.state for wid, m in self.machines.items() if m.state is not State.BASE}

    def state(self, wid: t.WorkloadEndpointID) -> State:
        machine = self.machines.get(wid)
        return machine.state if machine is not None else State.BASE

    def take_state_changes(self) -> list[StateChange]:
        """The state changes since the last call (Felix's ResolveUpdateBatch)."""
        out, self.pending = self.pending, []
        return out

    # -- the machine --------------------------------------------------------------------

    def _execute(self, wid: t.WorkloadEndpointID, event: Input) -> list:
        machine = self.machines.get(wid)
        if machine is None:
            machine = self.machines[wid] = _Machine()
        uid = self.migration_uids.get(wid)
        if uid:
            machine.migration_uid = uid
        actions = self._handle(wid, machine, event)
        if machine.state is State.BASE:
            del self.machines[wid]
        return actions

    def _handle(self, wid: t.WorkloadEndpointID, machine: _Machine, event: Input) -> list:
        current = machine.state
        new = next_state(current, event)
        if new is current:
            log.debug("Live migration of %s: input %s leaves it in %s", _text(wid), event, current)
            return []
        log.info("Live migration state transition for %s (migration UID %r, input %s): %s -> %s",
                 _text(wid), machine.migration_uid, event, current, new)
        actions: list = []
        if current is State.TARGET:
            actions.append(StopGARPDetection(wid))
        elif current is State.TIME_WAIT:
            actions.append(StopTimer(wid))
        if new is State.TARGET:
            iface = self.interfaces.get(wid, "")
            if iface:
                actions.append(StartGARPDetection(wid, iface))
            else:
                log.warning("No interface name for workload endpoint %s; not watching for its GARP/RARP",
                            _text(wid))
        elif new is State.LIVE:
            actions += self._owner_swap(wid, machine)
        elif new is State.TIME_WAIT:
            actions += self._owner_swap(wid, machine)
            actions.append(StartTimer(wid, self.convergence_time))
        machine.state = new
        self.pending.append(StateChange(wid, new))
        return actions

    def _owner_swap(self, wid: t.WorkloadEndpointID, machine: _Machine) -> list:
        if machine.swap_started:
            return []
        machine.swap_started = True
        vmi_name = self.vmi_names.get(wid, "")
        if not vmi_name:
            log.debug("No VMI name for %s; no IPAM owner swap", _text(wid))
            return []
        parsed = split_workload_id(wid.workload)
        if parsed is None:
            log.warning("Cannot parse workload ID %r of %s for the IPAM owner swap", wid.workload, _text(wid))
            return []
        namespace, pod = parsed
        return [StartOwnerSwap(wid, namespace, pod, vmi_name, machine.migration_uid)]


def _text(wid: t.WorkloadEndpointID) -> str:
    return f"{wid.orchestrator}/{wid.workload}/{wid.endpoint}"


# --------------------------------------------------------------------------------------
# Frames (pure): what counts as the VM announcing itself.

ETH_P_ARP = 0x0806
ETH_P_RARP = 0x8035
_ETH_HEADER = 14
_ARP_FIXED = 8  # hardware type, protocol type, their lengths, operation


def is_garp_or_rarp(frame: bytes) -> bool:
    """An Ethernet frame that is a RARP (EtherType 0x8035) or a gratuitous ARP (the
    sender's protocol address equals the target's), as Felix's isGARPOrRARP decides. A
    truncated ARP, or one inside a VLAN tag, is neither."""
    if len(frame) < _ETH_HEADER:
        return False
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == ETH_P_RARP:
        return True
    if ethertype != ETH_P_ARP:
        return False
    arp = frame[_ETH_HEADER:]
    if len(arp) < _ARP_FIXED:
        return False
    hlen, plen = arp[4], arp[5]
    sender_at = _ARP_FIXED + hlen
    target_at = sender_at + plen + hlen
    if len(arp) < target_at + plen:
        return False
    return arp[sender_at:sender_at + plen] == arp[target_at:target_at + plen]


# --------------------------------------------------------------------------------------
# For the route side.

def states_by_interface(states: Mapping[t.WorkloadEndpointID, State],
                        active: Mapping[t.WorkloadEndpointID, t.WorkloadEndpoint]) -> dict[str, State]:
    """Each interface's live migration state, from the endpoint in charge of it
    (``active``: the endpoint per interface, shadowed ones left out), as Felix's endpoint
    manager reads the state of the endpoint whose routes it sets. Base is left out."""
    if not states:
        return {}
    return {ep.name: states[wid] for wid, ep in active.items() if wid in states and states[wid] is not State.BASE}


__all__ = ["ETH_P_ARP", "ETH_P_RARP", "Input", "LiveMigrationMonitor", "ROLE_INPUTS", "StartGARPDetection",
           "StartOwnerSwap", "StartTimer", "State", "StateChange", "StopGARPDetection", "StopTimer", "TRANSITIONS",
           "is_garp_or_rarp", "next_state", "split_workload_id", "states_by_interface"]
