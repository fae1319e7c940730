"""The one list-then-watch syncer that every datastore consumer uses.

It mirrors libcalico-go's watchersyncer: list each key prefix, hand the consumer the
snapshot, then follow etcd's watch from just after the list revision. Every failure
mode ends in the same recovery, a fresh list compared against what the consumer has
already been told, so the consumer only ever sees the *difference*: no duplicate
updates after a resync and no deletes lost while we were disconnected.

Threads: one syncer thread owns the cache and calls the callbacks (in order); one
thread per source blocks on its etcd watch and feeds events to the syncer thread
through a queue.

A consumer's callback that raises never loses an update. The syncer records what it
has told the consumer *before* calling ``on_updates``, so when that call raises it
treats every key of the failed batch as unconfirmed: it forgets their revisions
(keeping a key whose last update was a delete, so that a re-list that does not find it
sends the delete again), tells the consumer ``RESYNC_IN_PROGRESS``, backs off like
after a datastore error, and re-lists. The re-list then resends each of those keys in
its current state: NEW if the consumer did not hold the key before the failed batch,
UPDATED if it did, DELETED if it is gone. Because the consumer may have applied part of
the batch before raising, it must apply NEW and UPDATED as upserts and ignore a DELETED
for a key it does not hold. (The alternative, ending the process so supervisor
restarts it, would turn one bad update into a restart loop of the whole role and
throw away every other consumer's state; this keeps the role up and visibly out of
sync until the consumer copes.)

A DELETED update carries the value the consumer was last given, unless the syncer was
built with ``retain_values=False``: it then keeps only each key's revision and a delete
carries ``None``, for consumers (the policy agent) that hold what they need of every
value themselves and identify deletions by key; the decoded values are then freed as
soon as the consumer has taken them.

``on_status`` failures get the same treatment: the syncer does not trust the consumer
to know its status until a call succeeds, so it re-sends the status before anything
else, never delivers updates or ``IN_SYNC`` on top of a failed status call, and backs
off and re-lists if the failure was on ``IN_SYNC``. A consumer can therefore never stay
believing it is in sync while the syncer is not.

Datastore errors are transient (back off, re-list). Anything else escaping the syncer
thread is a bug or a configuration error (for example ``kv_factory`` raising
ConfigError): the syncer tells the consumer ``WAIT_FOR_DATASTORE``, records the
exception in ``failure`` and calls ``on_fatal`` so the role can exit non-zero and be
restarted.
"""
from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from node.datastore.records import DELETE, WatchEvent
from node.errors import Compacted, DatastoreError

if TYPE_CHECKING:  # (either backend's; etcd's named for its gRPC-free records' sake)
    from node.datastore.etcd import EtcdKV, Watch

log = logging.getLogger(__name__)

INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 5.0
# Like libcalico-go, hand the consumer at most this many updates per callback (watch
# events, or the values of a listing as they are decoded).
MAX_UPDATES_PER_CALLBACK = 1000


class SyncStatus(enum.Enum):
    """libcalico-go's api.SyncStatus; the values are its String() forms."""

    WAIT_FOR_DATASTORE = "wait-for-ready"
    RESYNC_IN_PROGRESS = "resync"
    IN_SYNC = "in-sync"

    def __str__(self) -> str:
        return self.value


class UpdateType(enum.Enum):
    """libcalico-go's api.UpdateType (without "unknown")."""

    NEW = "new"
    UPDATED = "updated"
    DELETED = "deleted"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Update:
    """One change for the consumer. For DELETED, ``value`` is the last value it was given
    (``None`` from a syncer that does not retain values)."""

    type: UpdateType
    key: str
    value: Any
    revision: int


@dataclass(frozen=True)
class SyncSource:
    """A key prefix to follow and how to decode its values.

    ``decode(key, value, mod_revision)`` returns the decoded resource, or None for keys
    the consumer does not care about. If it raises, the key is logged and skipped.
    """

    prefix: str
    decode: Callable[[str, bytes, int], Any]
    # Records every listing of the prefix includes though no datastore stores them (the
    # default-allow profile, which libcalico-go's backends add to every list of profiles).
    builtin: tuple = ()


class SyncerCallbacks(Protocol):
    def on_status(self, status: SyncStatus) -> None: ...

    def on_updates(self, updates: list[Update]) -> None: ...


# The revision of a key whose delivery failed: it matches no etcd revision, so the next
# list resends the key.
UNCONFIRMED = 0


@dataclass(slots=True)
class _Known:
    revision: int
    value: Any
    # Set on unconfirmed keys the consumer did not hold before the failed batch.
    resend_as_new: bool = False


class _Backoff:
    """Exponential retry delay, capped; waits on the stop event so stop() is prompt."""

    def __init__(self, initial: float, maximum: float):
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def reset(self) -> None:
        self._next = self.initial

    def wait(self, stop: threading.Event) -> None:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        stop.wait(delay)


class _Stop:
    """Queue sentinel that wakes the syncer thread for shutdown."""


class _ConsumerFailed(Exception):
    """Internal: a callback raised; the syncer backs off and re-lists."""


class Syncer:
    """Keep a consumer in step with the keys under a set of prefixes.

    ``kv_factory()`` is called when the syncer first needs a client (and again only if
    that call failed); the client redials by itself, so the syncer keeps using it. By
    default the syncer owns that client and closes it in ``stop()``; pass
    ``owns_kv=False`` when the factory hands out a client shared with others.
    """

    def __init__(self, kv_factory: Callable[[], EtcdKV], sources: list[SyncSource],
                 callbacks: SyncerCallbacks, *, owns_kv: bool = True,
                 initial_backoff: float = INITIAL_BACKOFF, max_backoff: float = MAX_BACKOFF,
                 on_fatal: Callable[[BaseException], None] | None = None, retain_values: bool = True):
        if not sources:
            raise ValueError("a syncer needs at least one source")
        self._kv_factory = kv_factory
        self._owns_kv = owns_kv
        self._sources = list(sources)
        self._callbacks = callbacks
        self._backoff = _Backoff(initial_backoff, max_backoff)
        self._kv: EtcdKV | None = None
        # What the consumer has been told, per source: key -> revision and decoded value.
        self._known: list[dict[str, _Known]] = [{} for _ in self._sources]
        self._retain_values = retain_values
        # Watch events (and watch failures) from the per-source threads.
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        # The live watch per source; queue items tagged with an older watch are stale.
        self._watches: list[Watch | None] = [None] * len(self._sources)
        self._watch_threads: list[threading.Thread | None] = [None] * len(self._sources)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: SyncStatus | None = None
        # The status the consumer last accepted; None while a failed on_status call
        # leaves it unknown (the next status is then re-sent even if unchanged).
        self._consumer_status: SyncStatus | None = None
        self._status_cond = threading.Condition()
        self._on_fatal = on_fatal
        self._failure: BaseException | None = None
        self._last_error: str = ""

    # -- public API ---------------------------------------------------------------

    @property
    def status(self) -> SyncStatus | None:
        with self._status_cond:
            return self._status

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("syncer already started")
        self._thread = threading.Thread(target=self._run, name="datastore-syncer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop watching and join every thread the syncer started."""
        self._stop.set()
        self._events.put(_Stop())
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def failure(self) -> BaseException | None:
        """The exception that ended the syncer thread, if one did (see the module docstring)."""
        with self._status_cond:
            return self._failure

    @property
    def last_error(self) -> str:
        """Why the syncer is not in sync: the last datastore or consumer error ('' when none)."""
        with self._status_cond:
            return self._last_error

    def wait_for_status(self, status: SyncStatus, timeout: float) -> bool:
        """True once the current status is ``status``; False if ``timeout`` passes first."""
        with self._status_cond:
            return self._status_cond.wait_for(lambda: self._status == status, timeout)

    # -- syncer thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._tell_not_in_sync(SyncStatus.WAIT_FOR_DATASTORE)
            while not self._stop.is_set():
                synced_at = None
                try:
                    self._resync_all()
                    synced_at = time.monotonic()
                    self._set_last_error("")
                    self._follow_watches()
                except DatastoreError as exc:
                    if self._stop.is_set():
                        break
                    log.warning("datastore unavailable (%s); will resync", exc)
                    self._set_last_error(str(exc))
                    self._recover(SyncStatus.WAIT_FOR_DATASTORE, synced_at)
                except _ConsumerFailed as exc:
                    if self._stop.is_set():
                        break
                    log.warning("%s; will re-list and send again", exc)
                    self._set_last_error(str(exc))
                    self._recover(SyncStatus.RESYNC_IN_PROGRESS, synced_at)
        except Exception as exc:  # recorded and reported through on_fatal, not re-raised
            log.exception("datastore syncer failed unexpectedly; it has stopped")
            self._fail(exc)
        finally:
            self._stop_watches()
            if self._owns_kv and self._kv is not None:
                self._kv.close()

    def _recover(self, status: SyncStatus, synced_at: float | None) -> None:
        """Drop the watches, tell the consumer it is out of sync, and back off."""
        self._stop_watches()
        self._tell_not_in_sync(status)
        # Back off from the minimum again only if the last session was healthy for a
        # while; a flapping datastore (or a consumer failing on every attempt) keeps the
        # longer delays.
        if synced_at is not None and time.monotonic() - synced_at > self._backoff.maximum:
            self._backoff.reset()
        self._backoff.wait(self._stop)

    def _fail(self, exc: BaseException) -> None:
        with self._status_cond:
            self._failure = exc
            self._last_error = f"syncer stopped: {exc}"
        self._tell_not_in_sync(SyncStatus.WAIT_FOR_DATASTORE)
        if self._on_fatal is not None:
            try:
                self._on_fatal(exc)
            except Exception:
                log.exception("syncer on_fatal callback failed")

    def _set_last_error(self, text: str) -> None:
        with self._status_cond:
            self._last_error = text

    def _client(self) -> EtcdKV:
        if self._kv is None:
            self._kv = self._kv_factory()
        return self._kv

    def _resync_all(self) -> None:
        """List every source and watch each one from just after its list (etcd accepting
        every watch first), then send the consumer the difference and say it is in sync.
        Watching before sending puts nothing between the last difference and IN_SYNC, so a
        consumer that acts on the difference is ready as it does (the watches' events wait
        in the queue until then)."""
        kv = self._client()
        listings = [self._list(kv, index) for index in range(len(self._sources))]
        self._set_status(SyncStatus.RESYNC_IN_PROGRESS)
        revisions = [revision for _, revision in listings]
        for index, revision in enumerate(revisions):
            self._start_watch(index, revision + 1)
        for index, revision in enumerate(revisions):
            # One source at a time, each listing dropped once sent: a consumer that keeps
            # what it needs lets the decoded values go before the next kind is decoded.
            items, listings[index] = listings[index][0], None
            self._send_diff(index, items, revision)
            del items
        self._set_status(SyncStatus.IN_SYNC)

    def _list(self, kv, index: int):
        source = self._sources[index]
        items, revision = kv.list(source.prefix)
        if source.builtin:
            stored = {item.key for item in items}
            items = [*items, *(item for item in source.builtin if item.key not in stored)]
        return items, revision

    def _resync_source(self, index: int) -> None:
        """Recover one source whose watch fell behind a compaction."""
        self._stop_watch(index)
        self._set_status(SyncStatus.RESYNC_IN_PROGRESS)
        items, revision = self._list(self._client(), index)
        self._start_watch(index, revision + 1)
        self._send_diff(index, items, revision)
        self._set_status(SyncStatus.IN_SYNC)

    def _follow_watches(self) -> None:
        """Apply watch events until stopped; raise DatastoreError when a watch fails."""
        while True:
            batch = [self._events.get()]
            while len(batch) < MAX_UPDATES_PER_CALLBACK:
                try:
                    batch.append(self._events.get_nowait())
                except queue.Empty:
                    break
            updates: list[tuple[int, Update]] = []
            for item in batch:
                if isinstance(item, _Stop):
                    self._send(updates)
                    return
                watch, index, payload = item
                if watch is not self._watches[index]:
                    continue  # from a watch we already replaced
                if isinstance(payload, WatchEvent):
                    update = self._apply_event(index, payload)
                    if update is not None:
                        updates.append((index, update))
                    continue
                self._send(updates)
                updates = []
                if isinstance(payload, Compacted):
                    log.info("watch on %s fell behind compaction (%s); re-listing it",
                             self._sources[index].prefix, payload)
                    self._resync_source(index)
                    continue
                raise payload
            self._send(updates)

    # -- watches ------------------------------------------------------------------

    def _start_watch(self, index: int, start_revision: int) -> None:
        watch = self._client().watch(self._sources[index].prefix, start_revision)
        thread = threading.Thread(target=self._pump_watch, args=(index, watch),
                                  name=f"syncer-watch-{self._sources[index].prefix}", daemon=True)
        self._watches[index] = watch
        self._watch_threads[index] = thread
        thread.start()

    def _pump_watch(self, index: int, watch: Watch) -> None:
        try:
            for event in watch:
                self._events.put((watch, index, event))
        except DatastoreError as exc:
            self._events.put((watch, index, exc))
        except Exception as exc:  # keep the syncer informed whatever goes wrong
            log.exception("watch on %s failed", watch.prefix)
            self._events.put((watch, index, DatastoreError(f"watch on {watch.prefix} failed: {exc}")))

    def _stop_watch(self, index: int) -> None:
        watch, thread = self._watches[index], self._watch_threads[index]
        self._watches[index] = None
        self._watch_threads[index] = None
        if watch is not None:
            watch.cancel()
        if thread is not None:
            thread.join()

    def _stop_watches(self) -> None:
        for index in range(len(self._sources)):
            self._stop_watch(index)

    # -- cache and diffs ----------------------------------------------------------

    def _decode(self, index: int, key: str, value: bytes, revision: int) -> Any:
        try:
            return self._sources[index].decode(key, value, revision)
        except Exception as exc:
            log.warning("skipping %s at revision %d: cannot decode value: %s", key, revision, exc)
            log.debug("decode failure for %s", key, exc_info=True)
            return None

    def _send_diff(self, index: int, items, list_revision: int) -> None:
        """Send the updates that turn what the consumer knows into this listing, in
        batches of at most MAX_UPDATES_PER_CALLBACK as they are decoded. The consumer
        converts and drops each batch's values while the next is decoded, rather than
        all of a large listing's decoded values living at once: the objects it keeps
        then fill the allocator's memory densely (about 3 MB less resident memory for
        the policy agent at 6,000 endpoints)."""
        known = self._known[index]
        updates: list[tuple[int, Update]] = []
        listed = set()
        for item in items:
            listed.add(item.key)
            old = known.get(item.key)
            if old is not None and old.revision == item.mod_revision:
                continue
            update = self._store(index, item.key, item.value, item.mod_revision)
            if update is not None:
                updates.append((index, update))
                if len(updates) >= MAX_UPDATES_PER_CALLBACK:
                    self._send(updates)
                    updates = []
        for key in sorted(set(known) - listed):
            updates.append((index, Update(UpdateType.DELETED, key, known.pop(key).value, list_revision)))
            if len(updates) >= MAX_UPDATES_PER_CALLBACK:
                self._send(updates)
                updates = []
        self._send(updates)

    def _apply_event(self, index: int, event: WatchEvent) -> Update | None:
        if event.type == DELETE:
            old = self._known[index].pop(event.key, None)
            if old is None:
                return None  # never told the consumer about it
            return Update(UpdateType.DELETED, event.key, old.value, event.mod_revision)
        return self._store(index, event.key, event.value or b"", event.mod_revision)

    def _store(self, index: int, key: str, raw: bytes, revision: int) -> Update | None:
        """Record a new value; a value that no longer decodes withdraws the old one."""
        known = self._known[index]
        value = self._decode(index, key, raw, revision)
        old = known.get(key)
        if value is None:
            if old is None:
                return None
            del known[key]
            return Update(UpdateType.DELETED, key, old.value, revision)
        known[key] = _Known(revision, value if self._retain_values else None)
        new = old is None or old.resend_as_new
        return Update(UpdateType.NEW if new else UpdateType.UPDATED, key, value, revision)

    # -- callbacks ----------------------------------------------------------------

    def _set_status(self, status: SyncStatus) -> None:
        """Tell the consumer ``status``; raise _ConsumerFailed if on_status raises."""
        # Only this thread writes the status, so reading it unlocked here is safe.
        if status == self._status and status == self._consumer_status:
            return
        if status != self._status:
            log.info("datastore syncer: %s -> %s", self._status, status)
        else:
            log.info("datastore syncer: telling the consumer %s again", status)
        try:
            self._callbacks.on_status(status)
        except Exception as exc:
            log.exception("syncer status callback failed for %s", status)
            self._consumer_status = None
            if status != SyncStatus.IN_SYNC:
                self._publish(status)
            raise _ConsumerFailed(f"the consumer failed to take status {status}: {exc}") from exc
        self._consumer_status = status
        # Publish after the callback, so a waiter that sees IN_SYNC knows the consumer
        # has already been given everything that came before it.
        self._publish(status)

    def _tell_not_in_sync(self, status: SyncStatus) -> None:
        """Like _set_status for a not-in-sync status; a failure is logged and the status
        is re-sent at the next status change or re-list attempt."""
        try:
            self._set_status(status)
        except _ConsumerFailed:
            pass

    def _publish(self, status: SyncStatus) -> None:
        with self._status_cond:
            self._status = status
            self._status_cond.notify_all()

    def _send(self, updates: list[tuple[int, Update]]) -> None:
        """Give the consumer ``updates``; if it raises, mark them for re-sending (see the
        module docstring) and raise _ConsumerFailed."""
        if not updates:
            return
        try:
            self._callbacks.on_updates([update for _, update in updates])
        except Exception as exc:
            log.exception("syncer update callback failed on %d update(s)", len(updates))
            self._unconfirm(updates)
            raise _ConsumerFailed(f"the consumer failed to apply {len(updates)} update(s): {exc}") from exc

    def _unconfirm(self, updates: list[tuple[int, Update]]) -> None:
        """Make the next list resend every key of a batch the consumer may not have applied."""
        held_before: dict[tuple[int, str], bool] = {}
        last: dict[tuple[int, str], Update] = {}
        for index, update in updates:
            held_before.setdefault((index, update.key), update.type is not UpdateType.NEW)
            last[(index, update.key)] = update
        for (index, key), update in last.items():
            known = self._known[index]
            # For a delete, keep the value the consumer may still hold, so a list that
            # does not find the key sends DELETED again.
            value = update.value if update.type is UpdateType.DELETED else known[key].value
            known[key] = _Known(UNCONFIRMED, value, resend_as_new=not held_before[(index, key)])
