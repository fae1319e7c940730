"""The live migration state machines' side effects (node/felix/live_migration.py), as
Felix's liveMigrationMonitor carries them out:

* GARP/RARP detection: two AF_PACKET raw sockets bound to the workload's host-side
  interface, one for ARP and one for RARP frames (the kernel hands a protocol-bound
  packet socket only frames arriving on the interface: what the VM sends). They are
  opened by the caller, the agent's loop thread, so they belong to the agent's network
  namespace whatever thread reads them; a background thread reads them until it sees a
  RARP or a gratuitous ARP (``is_garp_or_rarp``), reports it once (the agent's loop
  then feeds GARPDetected to the machine) and stops. The machine leaving Target closes
  them. An interface that cannot be opened (gone already) is logged and not watched, as
  Felix does: the machine then waits for the role to go (Target -> TimeWait);
* the convergence timer: a deadline per endpoint that the agent's loop waits for
  (``next_deadline``) and collects (``due``); stopping one removes it;
* the IPAM owner swap: ``node.ipam.vm.ensure_active_vm_owner_attrs`` in a background
  thread, over an IPAM client made for it on the agent's datastore, with Felix's
  retries: up to 5 attempts, 100 ms apart and doubling, 30 s in all; an
  ``AlternateOwnerEmpty``/``AlternateOwnerMismatch`` (the target pod is gone, or another
  pod is the alternate owner) ends it at once, logged.
"""
from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from typing import Callable, Iterable

from node.felix import live_migration as lm
from node.felix import types as t

log = logging.getLogger(__name__)

OWNER_SWAP_ATTEMPTS = 5
OWNER_SWAP_FIRST_BACKOFF = 0.1  # seconds, doubling
OWNER_SWAP_DEADLINE = 30.0  # seconds, for all attempts
_MAX_FRAME = 65536


def _text(wid: t.WorkloadEndpointID) -> str:
    return f"{wid.orchestrator}/{wid.workload}/{wid.endpoint}"


# --------------------------------------------------------------------------------------
# GARP/RARP detection.

def open_packet_socket(interface: str, ethertype: int) -> socket.socket:
    """A raw packet socket receiving the frames of one EtherType that arrive on
    ``interface``, in the calling thread's network namespace. It is bound before it has
    a protocol, so it never sees another interface's frames."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((interface, ethertype))  # (Python puts the protocol in network order)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class GARPWatch:
    """Watch one interface for the VM's first gratuitous ARP or RARP; ``on_detected(wid)``
    is called (from the watch's thread) at most once. ``close()`` stops and joins it."""

    def __init__(self, wid: t.WorkloadEndpointID, interface: str,
                 on_detected: Callable[[t.WorkloadEndpointID], None]):
        self.wid = wid
        self.interface = interface
        self._on_detected = on_detected
        self._socks: list[socket.socket] = []
        self._stop_r = self._stop_w = -1
        self.detected = False
        try:
            for ethertype in (lm.ETH_P_ARP, lm.ETH_P_RARP):
                self._socks.append(open_packet_socket(interface, ethertype))
            self._stop_r, self._stop_w = os.pipe()
            self._thread = threading.Thread(target=self._run, name=f"garp-{interface}", daemon=True)
            self._thread.start()
        except BaseException:  # no descriptor outlives a watch that could not start
            self._close_pipe()
            self._close_sockets()
            raise

    def _run(self) -> None:
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in self._socks}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == self._stop_r:
                    return
                try:
                    frame = by_fd[fd].recv(_MAX_FRAME)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError as exc:
                    # ENETDOWN and the like: the interface went down or away.
                    log.debug("GARP/RARP detection on %s stopped: %s", self.interface, exc)
                    return
                if lm.is_garp_or_rarp(frame):
                    log.info("Detected GARP/RARP packet on workload interface %s (%s)", self.interface,
                             _text(self.wid))
                    self.detected = True
                    self._on_detected(self.wid)
                    return

    def close(self) -> None:
        if self._stop_w >= 0:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass
        self._thread.join()
        self._close_pipe()
        self._close_sockets()

    def _close_pipe(self) -> None:
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._stop_r = self._stop_w = -1

    def _close_sockets(self) -> None:
        for sock in self._socks:
            sock.close()
        self._socks = []


# --------------------------------------------------------------------------------------
# Convergence timers.

class Timers:
    """One deadline per endpoint, on the agent's clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._deadlines: dict[t.WorkloadEndpointID, float] = {}

    def start(self, wid: t.WorkloadEndpointID, seconds: float) -> None:
        self._deadlines[wid] = self._clock() + max(0.0, seconds)

    def stop(self, wid: t.WorkloadEndpointID) -> None:
        self._deadlines.pop(wid, None)

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    def due(self) -> list[t.WorkloadEndpointID]:
        """The endpoints whose timer has fired (each reported once), earliest first."""
        now = self._clock()
        fired = sorted((deadline, wid) for wid, deadline in self._deadlines.items() if deadline <= now)
        for _, wid in fired:
            del self._deadlines[wid]
        return [wid for _, wid in fired]

    def __len__(self) -> int:
        return len(self._deadlines)


# --------------------------------------------------------------------------------------
# The IPAM owner swap.

def _default_ensure(ipam, network_name, namespace, vmi_name, target_pod) -> None:
    from node.ipam.vm import ensure_active_vm_owner_attrs

    ensure_active_vm_owner_attrs(ipam, network_name=network_name, namespace=namespace, vmi_name=vmi_name,
                                 target_pod=target_pod)


def _not_retryable(exc: BaseException) -> bool:
    """AlternateOwnerEmpty/AlternateOwnerMismatch (node.ipam.errors.VMOwnerNotRetryable)."""
    return getattr(exc, "retryable", True) is False


class OwnerSwapper:
    """Runs owner swaps in background threads. ``ipam_factory()`` makes the IPAM client a
    swap uses (closed afterwards through its ``kv``, when it has one); ``ensure`` is
    ``ensure_active_vm_owner_attrs``'s stand-in for tests."""

    def __init__(self, ipam_factory: Callable[[], object], ensure: Callable[..., None] | None = None, *,
                 attempts: int = OWNER_SWAP_ATTEMPTS, first_backoff: float = OWNER_SWAP_FIRST_BACKOFF,
                 deadline: float = OWNER_SWAP_DEADLINE):
        self._ipam_factory = ipam_factory
        self._ensure = ensure or _default_ensure
        self.attempts = attempts
        self.first_backoff = first_backoff
        self.deadline = deadline
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, action: lm.StartOwnerSwap) -> threading.Thread:
        log.info("Starting IPAM owner attribute swap for live migration of %s (namespace %s, pod %s, VMI %s, "
                 "migration UID %r)", _text(action.id), action.namespace, action.pod, action.vmi_name,
                 action.migration_uid)
        self._threads = [th for th in self._threads if th.is_alive()]
        thread = threading.Thread(target=self._run, args=(action,), name=f"ipam-swap-{action.pod}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def _run(self, action: lm.StartOwnerSwap) -> None:
        where = f"{action.namespace}/{action.pod} (VMI {action.vmi_name})"
        give_up_at = time.monotonic() + self.deadline
        backoff = self.first_backoff
        ipam = None
        try:
            for attempt in range(1, self.attempts + 1):
                if time.monotonic() >= give_up_at:
                    log.warning("Gave up retrying the IPAM owner swap for %s after %gs", where, self.deadline)
                    return
                try:
                    if ipam is None:
                        ipam = self._ipam_factory()
                    self._ensure(ipam, "", action.namespace, action.vmi_name, action.pod)
                except Exception as exc:  # noqa: BLE001 - anything else may pass: retry
                    if _not_retryable(exc):
                        log.warning("Non-retryable error swapping IPAM owner attributes for %s: %s", where, exc)
                        return
                    log.warning("Transient error swapping IPAM owner attributes for %s (attempt %d), will retry: "
                                "%s", where, attempt, exc)
                else:
                    log.info("Successfully swapped IPAM owner attributes for %s", where)
                    return
                if attempt < self.attempts:
                    wait = backoff
                    if time.monotonic() + wait > give_up_at:
                        wait = max(0.0, give_up_at - time.monotonic())
                        self._stop.wait(wait)
                        log.warning("Gave up retrying the IPAM owner swap for %s after %gs", where, self.deadline)
                        return
                    if self._stop.wait(wait):
                        log.warning("Stopped retrying the IPAM owner swap for %s (shutting down)", where)
                        return
                    backoff *= 2
            log.warning("Exhausted retries for IPAM owner attribute swap for %s", where)
        finally:
            _close_client(ipam)

    def stop(self, timeout: float = 5.0) -> None:
        """Cut the retry waits short and wait (briefly) for the swaps under way."""
        self._stop.set()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        self._threads = [th for th in self._threads if th.is_alive()]


def _close_client(ipam) -> None:
    kv = getattr(ipam, "kv", None)
    close = getattr(kv, "close", None)
    if close is not None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort
            log.debug("closing the IPAM swap's datastore client: %s", exc)


# --------------------------------------------------------------------------------------
# The whole shell.

class LiveMigrationShell:
    """Carries out the machines' actions. ``on_garp(wid)`` is called from a watch's thread
    when it sees the VM's GARP/RARP (the agent queues it for its loop); timers are
    deadlines the agent's loop waits for (``next_deadline``) and collects (``due``)."""

    def __init__(self, on_garp: Callable[[t.WorkloadEndpointID], None], swapper: OwnerSwapper | None,
                 clock: Callable[[], float] = time.monotonic,
                 open_watch: Callable[..., GARPWatch] = GARPWatch):
        self._on_garp = on_garp
        self.swapper = swapper
        self.timers = Timers(clock)
        self.watches: dict[t.WorkloadEndpointID, GARPWatch] = {}
        self._open_watch = open_watch

    def execute(self, actions: Iterable) -> None:
        for action in actions:
            if isinstance(action, lm.StartGARPDetection):
                self._start_watch(action)
            elif isinstance(action, lm.StopGARPDetection):
                watch = self.watches.pop(action.id, None)
                if watch is not None:
                    watch.close()
            elif isinstance(action, lm.StartTimer):
                log.debug("Starting elevated routing timer for %s (%gs)", _text(action.id), action.seconds)
                self.timers.start(action.id, action.seconds)
            elif isinstance(action, lm.StopTimer):
                self.timers.stop(action.id)
            elif isinstance(action, lm.StartOwnerSwap):
                if self.swapper is None:
                    log.warning("No datastore IPAM client: not swapping the IPAM owner of %s", _text(action.id))
                else:
                    self.swapper.start(action)
            else:
                raise TypeError(f"unknown live migration action {action!r}")

    def _start_watch(self, action: lm.StartGARPDetection) -> None:
        old = self.watches.pop(action.id, None)
        if old is not None:
            old.close()
        try:
            self.watches[action.id] = self._open_watch(action.id, action.interface, self._on_garp)
        except (OSError, RuntimeError) as exc:  # no socket, no descriptor, no thread: Felix only logs
            log.warning("Failed to open packet capture for GARP detection on %s (%s): %s", action.interface,
                        _text(action.id), exc)

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def due(self) -> list[t.WorkloadEndpointID]:
        return self.timers.due()

    def close(self) -> None:
        for watch in self.watches.values():
            watch.close()
        self.watches.clear()
        if self.swapper is not None:
            self.swapper.stop(timeout=1.0)  # a swap in the middle of a datastore call is left to finish alone


__all__ = ["GARPWatch", "LiveMigrationShell", "OWNER_SWAP_ATTEMPTS", "OWNER_SWAP_DEADLINE",
           "OWNER_SWAP_FIRST_BACKOFF", "OwnerSwapper", "Timers", "open_packet_socket"]
