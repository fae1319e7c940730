"""Felix's status reports, written to the datastore from a thread of their own.

The agent loop never waits for the datastore here: after each apply it hands over the
endpoint statuses it wants stored (``set_endpoint_statuses`` swaps a dict under a lock),
and this thread, with its own datastore connection from the agent's ``kv_factory``,
brings the datastore in line. What the keys and values are is node/felix/status_report.py.

Process status (``ReportingIntervalSecs``, 0 turns it off): the first report 10 s after
the reporter starts, as Felix waits so that an agent in a tight restart loop never checks
in, then one every interval: the active key on a new lease of ``ReportingTTLSecs`` (none
when 0), then the last-reported key. ``first_update`` stays true until an active report
has been stored.

Endpoint status (``EndpointReportingEnabled``): as Felix's EndpointStatusReporter, at most
one write or deletion every ``EndpointReportingDelaySecs`` (plus up to 10% jitter), so
flapping statuses coalesce and hosts restarting together do not flood the datastore; keys
are taken in the order their status changed. A resync lists this host's keys (in its
region) and queues every one that differs from what is wanted: a key with another status
or that does not parse is rewritten, a key no endpoint wants (an earlier run's, or an
endpoint's that went while the datastore was away) is deleted, a wanted key that is
missing is written. It runs at the first hand-over (before any write, so an unchanged
status is not rewritten) and then every 180 delays (jittered), as Felix's does.

Failures: a datastore that cannot be reached or refuses a write costs nothing but a
retry: the same key is tried again at the next slot, the process report at the next
interval, a failed resync 10 s later; the first failure of a run is a warning, repeats
are debug lines, and recovery is logged. The Kubernetes datastore has no place for these
keys (libcalico-go answers ErrorOperationNotSupported, which Felix logs at debug level):
the first refusal turns that kind of report off for good, with one debug line, and once
nothing is left to report the thread ends and closes its connection. Nothing here raises
into the agent, and the thread survives any error.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, Mapping

from node.datastore.client import OperationNotSupported
from node.errors import NotFound
from node.felix import status_report as sr

log = logging.getLogger(__name__)

PROCESS_START = time.monotonic()  # Felix's processStartTime: uptime counts from here
INITIAL_DELAY = 10.0
RESYNC_DELAYS = 180  # Felix's resync interval, in reporting delays
RESYNC_RETRY = 10.0
JITTER = 0.1
_ABSENT = object()
_UNREADABLE = object()
_NEVER = float("inf")


class StatusReporter:
    """Process and endpoint status reports for ``hostname``; ``start()`` runs the thread."""

    def __init__(self, kv_factory: Callable[[], object], hostname: str, *, region: str = "",
                 interval: float = 30.0, ttl: float = 90.0, endpoint_reporting: bool = False,
                 endpoint_delay: float = 1.0, initial_delay: float = INITIAL_DELAY,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 started_at: float = PROCESS_START, rand: Callable[[], float] = random.random):
        self.hostname = hostname
        self.region = sr.region_string(region)
        self.interval = interval
        self.ttl = ttl
        self.endpoint_reporting = endpoint_reporting
        self.endpoint_delay = max(endpoint_delay, 0.0)
        # (Felix's ticker cannot take a zero delay; here a resync is at most every 10 s.)
        self.resync_interval = max(self.endpoint_delay * RESYNC_DELAYS, RESYNC_RETRY)
        self._kv_factory = kv_factory
        self._clock, self._wall_clock, self._rand = clock, wall_clock, rand
        self._started_at = started_at
        self._active_key = sr.active_status_key(hostname, self.region)
        self._last_key = sr.last_status_key(hostname, self.region)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._kv = None
        # Process status.
        self._next_process = clock() + initial_delay if interval > 0 else _NEVER
        self._first_stored = False
        # Endpoint status: what the agent wants, what the datastore holds as far as we
        # know (key -> status, or _UNREADABLE), and the keys to look at, oldest first.
        self._desired: dict[str, str] | None = None
        self._known: dict[str, object] = {}
        self._dirty: dict[str, None] = {}
        self._next_op = 0.0
        self._next_resync: float | None = None  # None: at the first hand-over
        self._failing: set[str] = set()
        self.process_reports = 0
        self.writes = 0
        self.deletions = 0
        self.resyncs = 0

    @classmethod
    def from_felix(cls, kv_factory: Callable[[], object], hostname: str, config) -> "StatusReporter":
        return cls(kv_factory, hostname, region=config.OpenstackRegion, interval=config.ReportingIntervalSecs,
                   ttl=config.ReportingTTLSecs, endpoint_reporting=config.EndpointReportingEnabled,
                   endpoint_delay=config.EndpointReportingDelaySecs)

    @property
    def enabled(self) -> bool:
        return self.interval > 0 or self.endpoint_reporting

    # -- the agent's side -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="status-reporter", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (a datastore call in flight is not waited for beyond ``timeout``)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)  # the thread closes its datastore connection

    def set_endpoint_statuses(self, desired: Mapping[str, str]) -> None:
        """What should be stored now (key -> status; ``status_report.desired_endpoint_reports``).
        Cheap: the datastore is brought in line by the thread."""
        if not self.endpoint_reporting:
            return
        new = dict(desired)
        with self._lock:
            old = self._desired
            self._desired = new
            if old is None:
                changed = list(new)
            else:
                changed = [k for k in new if old.get(k) != new[k]] + [k for k in old if k not in new]
            for key in changed:
                self._dirty[key] = None
        if changed or old is None:
            self._wake.set()

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                wait = self.run_once()
            except Exception:  # never let the thread die: report, pause, go on
                log.exception("status reporter: unexpected error; carrying on")
                wait = 1.0
            if not self.enabled:  # the datastore refused both kinds of report
                break
            self._wake.wait(wait)
            self._wake.clear()
        kv, self._kv = self._kv, None
        if kv is not None and hasattr(kv, "close"):
            kv.close()

    def run_once(self) -> float:
        """Do whatever is due; the seconds until something else will be."""
        now = self._clock()
        if now >= self._next_process:
            self._report_process()
            if self.interval > 0:  # (a datastore that refuses the reports turns them off)
                self._next_process = self._clock() + self.interval
        if self.endpoint_reporting and self._desired is not None:
            if self._next_resync is None or now >= self._next_resync:
                self._resync()
            if self._clock() >= self._next_op and self._endpoint_step():
                self._next_op = self._clock() + self._jittered(self.endpoint_delay)
        return self._wait_time()

    def _wait_time(self) -> float:
        deadline = self._next_process
        if self.endpoint_reporting and self._desired is not None:
            deadline = min(deadline, self._next_resync if self._next_resync is not None else 0.0)
            if self._dirty:
                deadline = min(deadline, self._next_op)
        return max(0.0, min(deadline - self._clock(), 3600.0))

    def _jittered(self, seconds: float) -> float:
        return seconds * (1 + JITTER * self._rand())

    def _datastore(self):
        if self._kv is None:
            self._kv = self._kv_factory()
        return self._kv

    def _failed(self, what: str, exc: BaseException) -> None:
        if what in self._failing:
            log.debug("status reporter: %s still failing: %s", what, exc)
        else:
            self._failing.add(what)
            log.warning("status reporter: %s failed (is the datastore up?): %s; will retry", what, exc)

    def _succeeded(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            log.info("status reporter: %s works again", what)

    # -- process status -------------------------------------------------------------------

    def _report_process(self) -> None:
        value = sr.status_report_json(sr.iso_timestamp(self._wall_clock()), self._clock() - self._started_at,
                                      not self._first_stored)
        try:
            self._datastore().put(self._active_key, value, ttl=self.ttl)
        except OperationNotSupported:
            log.debug("Datastore doesn't support status reports; not reporting the agent's status")
            self.interval, self._next_process = 0.0, _NEVER
            return
        except Exception as exc:
            self._failed("writing the agent's status", exc)
        else:
            self._first_stored = True
            self._succeeded("writing the agent's status")
        try:
            self._datastore().put(self._last_key, value)
        except OperationNotSupported:
            log.debug("Datastore doesn't support status reports")
        except Exception as exc:
            self._failed("writing the agent's last status", exc)
        else:
            self.process_reports += 1
            self._succeeded("writing the agent's last status")

    # -- endpoint status ------------------------------------------------------------------

    def _unsupported(self) -> None:
        log.debug("Datastore doesn't support endpoint status reports; not reporting them")
        self.endpoint_reporting = False
        with self._lock:
            self._dirty.clear()

    def _resync(self) -> None:
        """Read this host's endpoint status keys and queue every one that is not as wanted."""
        stored: dict[str, object] = {}
        try:
            kv = self._datastore()
            for prefix in (sr.workload_status_prefix(self.hostname, self.region),
                           sr.host_endpoint_status_prefix(self.hostname)):
                items, _ = kv.list(prefix)
                for item in items:
                    if sr.own_endpoint_status_key(item.key, self.hostname, self.region):
                        status = sr.parse_endpoint_status(item.value)
                        stored[item.key] = _UNREADABLE if status is None else status
        except OperationNotSupported:
            self._unsupported()
            return
        except Exception as exc:
            self._failed("reading the endpoint statuses", exc)
            self._next_resync = self._clock() + RESYNC_RETRY
            return
        self._succeeded("reading the endpoint statuses")
        self.resyncs += 1
        with self._lock:
            desired = self._desired or {}
            for key in sorted(set(stored) | set(desired)):
                if stored.get(key, _ABSENT) != desired.get(key, _ABSENT):
                    if key in stored:
                        log.info("Found out-of-sync endpoint status %s (stored %s, wanted %s)", key,
                                 "unreadable" if stored[key] is _UNREADABLE else stored[key],
                                 desired.get(key, "none"))
                    self._dirty[key] = None
            self._known = stored
        self._next_resync = self._clock() + self._jittered(self.resync_interval)

    def _endpoint_step(self) -> bool:
        """Bring the oldest out-of-line key in line; whether the datastore was called."""
        while True:
            with self._lock:
                if not self._dirty:
                    return False
                key = next(iter(self._dirty))
                want = (self._desired or {}).get(key, _ABSENT)
                if self._known.get(key, _ABSENT) == want:
                    del self._dirty[key]
                    continue
            break
        try:
            kv = self._datastore()
            if want is _ABSENT:
                try:
                    kv.delete(key)
                except NotFound:
                    pass
                log.info("Deleted endpoint status %s", key)
            else:
                kv.put(key, sr.endpoint_status_json(want))
                log.info("Wrote endpoint status %s: %s", key, want)
        except OperationNotSupported:
            self._unsupported()
            return True
        except Exception as exc:
            self._failed("writing endpoint statuses", exc)
            return True  # the same key again at the next slot
        self._succeeded("writing endpoint statuses")
        with self._lock:
            if want is _ABSENT:
                self._known.pop(key, None)
                self.deletions += 1
            else:
                self._known[key] = want
                self.writes += 1
            if (self._desired or {}).get(key, _ABSENT) == want:
                self._dirty.pop(key, None)  # else it changed meanwhile: stays queued
        return True
