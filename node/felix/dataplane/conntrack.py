"""Removing an address's conntrack flows, in the background: the shell behind the route
dataplane's conntrack cleanup (the decisions are pure, in node/felix/dataplane/routes.py).

As Felix v3.32 does it (felix/conntrack/conntrack.go, felix/routetable/
conntrack_owner_tracker.go):

* an address's flows are removed with the ``conntrack`` tool, twice: ``conntrack
  --family ipv4|ipv6 --delete --orig-src <ip>`` (flows the workload started) and
  ``--delete --reply-src <ip>`` (flows to it, which it answers, DNATed ones included);
* each command is tried up to four times (three retries); an exit status that comes
  with "0 flow entries" on stderr means there was nothing to remove. When the last try
  fails an error is logged with the address, and nothing else happens: route
  programming goes on;
* each address's removal runs in the background, so a slow scan of a big conntrack table
  holds up nothing, except a route for that same address: the route dataplane ``wait``s
  for the address's pending removal before it programs a route for it.

The ``conntrack`` tool rather than pyroute2's conntrack socket: pyroute2 (0.9.7) deletes
by an entry's original tuple as it parsed it, and it keeps no ports for SCTP, DCCP,
UDP-Lite or GRE entries, so the kernel refuses those deletions (EINVAL, seen with SCTP);
and it would have to dump and filter the whole table in Python. The tool deletes each
entry it matched as the kernel gave it, zone included.

Network namespace: each removal runs in a thread started by the caller's thread, and the
commands are child processes of that thread, so they act on the namespace the caller is
in (a new thread and a child process inherit their creator's namespaces), the one whose
routes the route dataplane programs.
"""
from __future__ import annotations

import logging
import subprocess
import threading
import time
from typing import Callable, Iterable

log = logging.getLogger(__name__)

# The tuple fields that hold a workload's address in its flows: the original source when
# it started the flow, the reply source when it received it.
DIRECTIONS = ("--orig-src", "--reply-src")
RETRIES = 3
# How often a wait for a pending removal says it is still waiting (Felix: 10 s).
WAIT_LOG_INTERVAL = 10.0

Runner = Callable[[list[str]], subprocess.CompletedProcess]


def delete_commands(addr: str) -> list[list[str]]:
    """The commands that remove every flow from or to ``addr``."""
    family = "ipv6" if ":" in addr else "ipv4"
    return [["conntrack", "--family", family, "--delete", direction, addr] for direction in DIRECTIONS]


def run_command(argv: list[str]) -> subprocess.CompletedProcess:
    # The tool prints one line per deleted flow on stdout; only stderr says what went wrong.
    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)


def remove_flows(addr: str, run: Runner = run_command) -> bool:
    """Remove ``addr``'s flows in both directions; False (and an error logged) when a
    command still failed after its retries."""
    log.info("Deleting the conntrack entries of %s", addr)
    ok = True
    for argv in delete_commands(addr):
        direction = argv[-2]
        for attempt in range(RETRIES + 1):
            try:
                proc = run(argv)
            except OSError as exc:  # no conntrack tool
                problem, output = str(exc), ""
            else:
                if proc.returncode == 0 or "0 flow entries" in (proc.stderr or ""):
                    break
                problem, output = f"exit status {proc.returncode}", (proc.stderr or "").strip()
            if attempt == RETRIES:
                log.error("Could not delete the conntrack entries of %s (%s) in %d attempts: %s%s", addr, direction,
                          RETRIES + 1, problem, f": {output}" if output else "")
                ok = False
            else:
                log.debug("conntrack %s %s failed (%s %s); trying again", direction, addr, problem, output)
    return ok


class ConntrackCleaner:
    """Background removals, one thread per address, and waits for them by address.

    ``start(addrs)`` starts a removal for each address; ``wait(addr)`` blocks until the
    latest removal started for ``addr`` is over (at once when there is none);
    ``wait_all(timeout)`` waits for every pending one (tests, shutdown). ``remove`` is
    the removal itself (``remove_flows``; tests pass a fake)."""

    def __init__(self, remove: Callable[[str], bool] = remove_flows, clock: Callable[[], float] = time.monotonic):
        self._remove = remove
        self._clock = clock
        self._pending: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self.started = 0
        self.failed = 0
        self.waits = 0  # waits that actually had to block

    def start(self, addrs: Iterable[str]) -> None:
        for addr in addrs:
            thread = threading.Thread(target=self._run, args=(addr,), name=f"conntrack-cleanup-{addr}", daemon=True)
            with self._lock:
                self._pending[addr] = thread  # a wait is for the latest removal of an address
                self.started += 1
            thread.start()

    def _run(self, addr: str) -> None:
        try:
            ok = self._remove(addr)
        except Exception:  # noqa: BLE001 - a removal must never take the agent down
            log.exception("Could not delete the conntrack entries of %s", addr)
            ok = False
        if not ok:
            with self._lock:
                self.failed += 1

    def pending(self, addr: str) -> bool:
        with self._lock:
            thread = self._pending.get(addr)
        return thread is not None and thread.is_alive()

    def wait(self, addr: str) -> float:
        """Block until ``addr``'s pending removal is over; the seconds waited."""
        with self._lock:
            thread = self._pending.pop(addr, None)
        if thread is None:
            return 0.0
        if not thread.is_alive():
            thread.join()
            return 0.0
        started = self._clock()
        log.info("Waiting for the conntrack cleanup of %s before programming its route", addr)
        self.waits += 1
        while True:
            thread.join(WAIT_LOG_INTERVAL)
            waited = self._clock() - started
            if not thread.is_alive():
                log.info("Conntrack cleanup of %s over after %.3fs", addr, waited)
                return waited
            log.info("Conntrack cleanup of %s still running after %.0fs", addr, waited)

    def forget_finished(self) -> None:
        """Drop the record of removals that are over (nobody waited for them)."""
        with self._lock:
            for addr in [a for a, t in self._pending.items() if not t.is_alive()]:
                del self._pending[addr]

    def wait_all(self, timeout: float | None = None) -> bool:
        """Wait for every pending removal; False when some are still running at ``timeout``."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._lock:
            threads = list(self._pending.values())
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - self._clock()))
        self.forget_finished()
        return not any(t.is_alive() for t in threads)


__all__ = ["ConntrackCleaner", "DIRECTIONS", "RETRIES", "delete_commands", "remove_flows", "run_command"]
