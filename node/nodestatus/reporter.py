"""The CalicoNodeStatus reporter (Calico's ``calico-node -status-reporter``, a part of
node-services): follow the datastore and keep, for every CalicoNodeStatus of this node
with ``updatePeriodSeconds`` set, a thread that reports BIRD's status into it.

Each ``Reporter`` thread reports when it starts, every ``updatePeriodSeconds`` (never on
a timer for 0) and whenever its resource's spec changes; a deletion stops it. A report
asks BIRD (``status.populate``) and writes the status, with ``lastUpdated``, only when
it changed. A write is tried up to 3 times: on a conflict the thread reads the resource
again and reports at once with it; on another error it tries again after 1 s when the
period is over 30 s (a shorter period soon tries anyway). Calico gives up at once for a
period of 0 too, where no timer ever tries again; here 0 retries as a long period does.
A report that fails (BIRD's answer unreadable, the datastore down) is logged with the
resource's name and the thread carries on.
"""
from __future__ import annotations

import datetime as _dt
import logging
import queue
import threading
import time
from typing import Callable

from node.datastore.syncer import SyncStatus, Update, UpdateType
from node.errors import CalicoError, Conflict, NotFound, ValidationError
from node.model.resource import Resource
from node.nodestatus.status import (KIND, Dispatcher, Query, classes_of, for_node, is_newer, populate,
                                    canonical_status, spec_changed, stamped, update_period, validate_status)

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 3
RETRY_PAUSE = 1.0
# Periods up to this many seconds are not retried within a report: the next one is soon.
SHORT_PERIOD = 30

_STOP = object()


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class Reporter:
    """One CalicoNodeStatus's reporting loop. ``client`` needs ``get`` and
    ``update_status`` (a DatastoreClient); ``query`` answers for BIRD (``BirdQuery``).
    ``resource`` must have a valid ``updatePeriodSeconds`` (the dispatcher checks)."""

    def __init__(self, resource: Resource, nodename: str, client, query: Query, *,
                 clock: Callable[[], _dt.datetime] = _utcnow, retry_pause: float = RETRY_PAUSE):
        self.name = resource.name
        self.ident = resource.identifier()
        self.nodename = nodename
        self.current = resource
        self.client = client
        self.query = query
        self.clock = clock
        self.retry_pause = retry_pause
        self.reports = 0    # reports made (BIRD asked), for tests and debugging
        self.writes = 0     # statuses written
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._period: int | None = None
        self._next: float | None = None
        self._warned: tuple[str, ...] = ()
        self._set_period(update_period(resource), time.monotonic())
        self._thread = threading.Thread(target=self._run, name=f"node-status-{self.name}", daemon=True)

    # -- called by the dispatcher's thread --------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def request_update(self, resource: Resource) -> None:
        self._queue.put(("update", resource))

    def stop(self, timeout: float | None = None) -> None:
        """Stop and wait for the thread (a report in progress finishes first)."""
        self._stopping.set()
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the reporter's thread ------------------------------------------------------------

    def _set_period(self, period: int, now: float) -> None:
        """As Calico's ticker: restarted only when the period changes."""
        if period == self._period:
            return
        self._period = period
        self._next = now + period if period > 0 else None
        if period == 0:
            log.debug("%s: periodic updates disabled (updatePeriodSeconds is 0)", self.ident)
        else:
            log.info("%s: reporting every %d s", self.ident, period)

    def _run(self) -> None:
        log.info("%s: reporting this node's status", self.ident)
        self._guarded(self._report)
        while not self._stopping.is_set():
            timeout = None if self._next is None else max(0.0, self._next - time.monotonic())
            try:
                event = self._queue.get(timeout=timeout)
            except queue.Empty:
                now = time.monotonic()
                while self._next is not None and self._next <= now:
                    self._next += self._period or 0
                self._guarded(self._report)
                continue
            if event is _STOP:
                break
            kind, resource = event
            self._guarded(self._take, resource, catch_up=kind == "catch-up")
        log.info("%s: stopped reporting", self.ident)

    def _guarded(self, step, *args, **kwargs) -> None:
        """A failure nobody foresaw ends this step, not the loop: the next one may work."""
        try:
            step(*args, **kwargs)
        except Exception:  # noqa: BLE001
            log.exception("%s: reporting failed unexpectedly", self.ident)

    def _take(self, resource: Resource, catch_up: bool) -> None:
        """A newer version of the resource: adopt it; report at once when its spec
        changed (Calico's restart), or after a conflict."""
        if resource.name != self.name or not is_newer(resource, self.current):
            return
        if not for_node(resource, self.nodename):
            return  # moved to another node: the dispatcher stops this reporter
        try:
            period = update_period(resource)
        except ValidationError as exc:
            log.error("%s: %s", self.ident, exc)
            return
        changed = spec_changed(resource, self.current)
        self.current = resource
        if changed or catch_up:
            self._set_period(period, time.monotonic())
            self._report()

    def _report(self) -> None:
        self.reports += 1
        current = self.current
        try:
            populated = populate(current.status, classes_of(current), self.query)
        except Exception as exc:  # noqa: BLE001 - whatever failed, this report is skipped, the loop lives on
            log.error("%s: failed to read the status from BIRD, not updating it: %s", self.ident, exc)
            log.debug("%s: populate failure", self.ident, exc_info=True)
            return
        if populated.warnings != self._warned:
            for warning in populated.warnings:
                log.warning("%s: %s", self.ident, warning)
            self._warned = populated.warnings
        if populated.status == canonical_status(current.status):
            log.debug("%s: status unchanged", self.ident)
            return
        try:
            validate_status(populated.status, self.ident)
        except ValidationError as exc:
            log.error("%s: not writing a status that does not validate: %s", self.ident, exc)
            return
        self._write(populated.status)

    def _write(self, status: dict) -> None:
        for _ in range(WRITE_ATTEMPTS):
            attempt = self.current.copy()
            attempt.status = stamped(status, self.clock())
            try:
                self.current = self.client.update_status(attempt)
                self.writes += 1
                log.debug("%s: status written", self.ident)
                return
            except Conflict:
                log.warning("%s: update conflict, reading the resource again", self.ident)
                try:
                    fresh = self.client.get(KIND, self.name)
                except CalicoError as exc:
                    log.warning("%s: failed to read the resource again: %s", self.ident, exc)
                    return
                self._queue.put(("catch-up", fresh))
                return
            except NotFound:
                log.info("%s: deleted while its status was being written", self.ident)
                return
            except ValidationError as exc:
                log.error("%s: status not written: %s", self.ident, exc)
                return
            except CalicoError as exc:
                log.warning("%s: failed to write the status; will retry: %s", self.ident, exc)
                if 0 < (self._period or 0) <= SHORT_PERIOD:
                    return
                if self._stopping.wait(self.retry_pause):
                    return
        log.error("%s: status not written after %d attempts", self.ident, WRITE_ATTEMPTS)


class NodeStatusReporter:
    """The syncer's consumer: feeds its updates to a ``Dispatcher`` and runs the
    dispatcher's actions on ``Reporter`` threads (Calico's NodeStatusReporter). The
    syncer's callbacks only queue; ``run`` does the work, so a slow report never holds
    the syncer up."""

    def __init__(self, nodename: str, client, query: Query, *, reporter_options: dict | None = None):
        self.nodename = nodename
        self.client = client
        self.query = query
        self.dispatcher = Dispatcher(nodename)
        self.reporters: dict[str, Reporter] = {}
        self._options = reporter_options or {}
        self._events: queue.SimpleQueue = queue.SimpleQueue()

    # syncer callbacks (the syncer's thread)
    def on_status(self, status: SyncStatus) -> None:
        if status is SyncStatus.IN_SYNC:
            self._events.put(status)

    def on_updates(self, updates: list[Update]) -> None:
        self._events.put([(u.key, None if u.type is UpdateType.DELETED else u.value) for u in updates])

    def stop(self) -> None:
        self._events.put(_STOP)

    def run(self) -> None:
        """Until ``stop``: apply what the syncer said, then stop every reporter."""
        try:
            while True:
                event = self._events.get()
                if event is _STOP:
                    break
                if event is SyncStatus.IN_SYNC:
                    if not self.dispatcher.in_sync:
                        log.info("Datastore in sync; reporting for this node's CalicoNodeStatus resources")
                    self.dispatcher.on_in_sync()
                else:
                    for problem in self.dispatcher.on_updates(event):
                        log.error("%s", problem)
                self._apply()
        finally:
            for name in list(self.reporters):
                self.reporters.pop(name).stop()

    def _apply(self) -> None:
        for action in self.dispatcher.actions():
            if action.verb == "start":
                reporter = Reporter(action.resource, self.nodename, self.client, self.query, **self._options)
                self.reporters[action.name] = reporter
                reporter.start()
            elif action.verb == "update":
                self.reporters[action.name].request_update(action.resource)
            else:
                self.reporters.pop(action.name).stop()
