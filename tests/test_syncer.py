"""The list-then-watch Syncer against a real etcd: snapshots, ordering and recovery.

A ``Recorder`` consumer applies every update to a dict the way a real consumer would
and notes anything a correct syncer must never send (NEW for a key it already has,
UPDATED/DELETED for one it does not), so "no duplicates, no lost deletes" is checked
on every test, not just the recovery ones.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading

import pytest

from etcd_server import TcpProxy
from node.config import DatastoreConfig
from node.datastore.etcd import EtcdKV
from node.datastore.syncer import SyncSource, SyncStatus, Syncer, Update, UpdateType
from node.errors import DatastoreError

pytestmark = pytest.mark.etcd

WAIT = 15.0
WAIT_FOR, RESYNC, IN_SYNC = SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC


def as_text(key: str, value: bytes, revision: int) -> str:
    return value.decode()


class Recorder:
    """A consumer that keeps the view a real one would, and flags impossible updates."""

    def __init__(self):
        self._cond = threading.Condition()
        self.statuses: list[SyncStatus] = []
        self.updates: list[Update] = []
        self.view: dict[str, object] = {}
        self.violations: list[str] = []
        self.callback_threads: set[int] = set()

    def on_status(self, status: SyncStatus) -> None:
        with self._cond:
            self.callback_threads.add(threading.get_ident())
            self.statuses.append(status)
            self._cond.notify_all()

    def on_updates(self, updates: list[Update]) -> None:
        with self._cond:
            self.callback_threads.add(threading.get_ident())
            for update in updates:
                known = update.key in self.view
                if update.type is UpdateType.NEW and known:
                    self.violations.append(f"duplicate NEW for {update.key}")
                if update.type is not UpdateType.NEW and not known:
                    self.violations.append(f"{update.type} for unknown {update.key}")
                if update.type is UpdateType.DELETED:
                    self.view.pop(update.key, None)
                else:
                    self.view[update.key] = update.value
                self.updates.append(update)
            self._cond.notify_all()

    def wait_for(self, predicate, what: str, timeout: float = WAIT) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out waiting for {what}; statuses={self.statuses} "
                                     f"view={self.view} violations={self.violations}")

    def wait_for_view(self, expected: dict, timeout: float = WAIT) -> None:
        self.wait_for(lambda r: r.view == expected, f"view {expected}", timeout)

    def wait_for_statuses(self, tail: list[SyncStatus], after: int = 0) -> None:
        """Wait until the statuses recorded since index ``after`` end with ``tail``."""
        self.wait_for(lambda r: r.statuses[after:][-len(tail):] == tail, f"statuses ending {tail}")


def etcd_content(server, prefix: str) -> dict[str, str]:
    with server.client() as client:
        return {meta.key.decode(): value.decode() for value, meta in client.get_prefix(prefix)}


@contextlib.contextmanager
def running(config: DatastoreConfig, sources: list[SyncSource], recorder: Recorder, watch=None, **kwargs):
    """A started syncer that is always stopped, and its client closed, afterwards.
    ``watch(kv, prefix, revision)``, when given, stands in for the client's watch."""
    kv = EtcdKV(config, dial_timeout=2)
    if watch is not None:
        kv.watch = lambda prefix, revision: watch(kv, prefix, revision)
    syncer = Syncer(lambda: kv, sources, recorder, owns_kv=False, **kwargs)
    syncer.start()
    try:
        yield syncer
    finally:
        syncer.stop(timeout=WAIT)
        kv.close()
        assert not syncer._thread.is_alive(), "syncer thread did not stop"


# -- first sync and steady state ------------------------------------------------------


def test_status_goes_wait_resync_in_sync_with_snapshot_in_between(etcd_clean, etcd_clean_config):
    with etcd_clean.client() as client:
        client.put("/calico/a/2", "a2")
        client.put("/calico/a/1", "a1")
        client.put("/calico/b/1", "b1")
        client.put("/calico/c/1", "not watched")
    with etcd_clean.client() as client:
        revisions = {m.key.decode(): m.mod_revision for _, m in client.get_prefix("/calico/")}
    recorder = Recorder()
    sources = [SyncSource("/calico/a/", as_text), SyncSource("/calico/b/", as_text)]
    with running(etcd_clean_config, sources, recorder) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        assert recorder.statuses == [WAIT_FOR, RESYNC, IN_SYNC]
        assert recorder.updates == [
            Update(UpdateType.NEW, "/calico/a/1", "a1", revisions["/calico/a/1"]),
            Update(UpdateType.NEW, "/calico/a/2", "a2", revisions["/calico/a/2"]),
            Update(UpdateType.NEW, "/calico/b/1", "b1", revisions["/calico/b/1"]),
        ]
        assert threading.get_ident() not in recorder.callback_threads
        assert len(recorder.callback_threads) == 1
    assert str(IN_SYNC) == "in-sync" and str(RESYNC) == "resync" and str(WAIT_FOR) == "wait-for-ready"


def test_waits_for_datastore_until_etcd_is_reachable(etcd_clean):
    proxy = TcpProxy(etcd_clean.client_port)  # not accepting yet: etcd looks down
    recorder = Recorder()
    config = DatastoreConfig(etcd_endpoints=(proxy.endpoint,))
    try:
        with running(config, [SyncSource("/calico/a/", as_text)], recorder,
                     initial_backoff=0.05, max_backoff=0.5) as syncer:
            assert syncer.wait_for_status(WAIT_FOR, WAIT)
            assert not syncer.wait_for_status(IN_SYNC, 1.0)
            proxy.start()
            assert syncer.wait_for_status(IN_SYNC, WAIT)
            assert recorder.statuses == [WAIT_FOR, RESYNC, IN_SYNC]
    finally:
        proxy.close()


def test_updates_after_snapshot_arrive_in_order(etcd_clean, etcd_clean_config):
    with etcd_clean.client() as client:
        client.put("/calico/a/existing", "e")
    recorder = Recorder()
    with running(etcd_clean_config, [SyncSource("/calico/a/", as_text)], recorder) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        snapshot = len(recorder.updates)
        with EtcdKV(etcd_clean_config) as kv:
            r1 = kv.create("/calico/a/x", b"x1")
            r2 = kv.update("/calico/a/x", b"x2", r1)
            r3 = kv.create("/calico/a/y", b"y1")
            kv.delete("/calico/a/x")
            r4 = kv.current_revision()
            r5 = kv.put("/calico/a/y", b"y2")
            kv.put("/calico/elsewhere", b"ignored")
        recorder.wait_for(lambda r: r.updates and r.updates[-1].revision == r5, "last update")
        assert recorder.updates[snapshot:] == [
            Update(UpdateType.NEW, "/calico/a/x", "x1", r1),
            Update(UpdateType.UPDATED, "/calico/a/x", "x2", r2),
            Update(UpdateType.NEW, "/calico/a/y", "y1", r3),
            Update(UpdateType.DELETED, "/calico/a/x", "x2", r4),
            Update(UpdateType.UPDATED, "/calico/a/y", "y2", r5),
        ]
        assert recorder.view == {"/calico/a/existing": "e", "/calico/a/y": "y2"}
        assert recorder.statuses == [WAIT_FOR, RESYNC, IN_SYNC]
        assert recorder.violations == []


# -- recovery ----------------------------------------------------------------------------


def test_compaction_before_watch_resyncs_with_only_the_difference(etcd, etcd_config, caplog):
    caplog.set_level(logging.INFO, logger="node.datastore.syncer")
    with etcd.client() as client:
        for name in ("k0", "k1", "k2", "k3"):
            client.put(f"/calico/a/{name}", f"{name}-v1")
    changed = threading.Event()

    def meddle_then_watch(kv: EtcdKV, prefix: str, start_revision: int):
        # Runs on the syncer thread after its list and before its watch: change etcd
        # and compact, so the watch from list revision + 1 is already compacted.
        if not changed.is_set():
            changed.set()
            with etcd.client() as client:
                client.put("/calico/a/k1", "k1-v2")
                client.delete("/calico/a/k2")
                client.put("/calico/a/k9", "k9-v1")
                _, meta = client.get("/calico/a/k9")
                client.compact(meta.mod_revision, physical=True)
        return EtcdKV.watch(kv, prefix, start_revision)

    recorder = Recorder()
    source = SyncSource("/calico/a/", lambda key, value, revision: value.decode())
    with running(etcd_config, [source], recorder, watch=meddle_then_watch):
        recorder.wait_for_statuses([WAIT_FOR, RESYNC, IN_SYNC, RESYNC, IN_SYNC])
        assert changed.is_set()
        assert any("compaction" in r.getMessage() for r in caplog.records)
        snapshot, diff = recorder.updates[:4], recorder.updates[4:]
        assert [(u.type, u.key) for u in snapshot] == [(UpdateType.NEW, f"/calico/a/k{i}") for i in range(4)]
        assert sorted((u.type.value, u.key, u.value) for u in diff) == [
            ("deleted", "/calico/a/k2", "k2-v1"),
            ("new", "/calico/a/k9", "k9-v1"),
            ("updated", "/calico/a/k1", "k1-v2"),
        ]
        assert recorder.view == etcd_content(etcd, "/calico/a/")
        # The watch resumed after the re-list.
        with etcd.client() as client:
            client.put("/calico/a/k3", "k3-v2")
        recorder.wait_for_view(etcd_content(etcd, "/calico/a/"))
        assert recorder.violations == []


def test_disconnect_resyncs_with_only_the_difference(etcd_clean):
    with etcd_clean.client() as client:
        for name in ("k0", "k1", "k2", "k3"):
            client.put(f"/calico/a/{name}", f"{name}-v1")
    recorder = Recorder()
    with TcpProxy(etcd_clean.client_port) as proxy:
        config = DatastoreConfig(etcd_endpoints=(proxy.endpoint,))
        with running(config, [SyncSource("/calico/a/", as_text)], recorder,
                     initial_backoff=0.05, max_backoff=0.5) as syncer:
            assert syncer.wait_for_status(IN_SYNC, WAIT)
            before = len(recorder.updates)
            marker = len(recorder.statuses)

            proxy.cut()
            assert syncer.wait_for_status(WAIT_FOR, WAIT)
            # Changes the syncer cannot see: it is disconnected.
            with etcd_clean.client() as client:
                client.put("/calico/a/k1", "k1-v2")
                client.delete("/calico/a/k2")
                client.delete("/calico/a/k3")
                client.put("/calico/a/k3", "k3-v2")  # deleted and re-created
                client.put("/calico/a/k9", "k9-v1")
            proxy.restore()

            recorder.wait_for_statuses([WAIT_FOR, RESYNC, IN_SYNC], after=marker)
            assert recorder.statuses[marker:] == [WAIT_FOR, RESYNC, IN_SYNC]
            diff = recorder.updates[before:]
            assert sorted((u.type.value, u.key, u.value) for u in diff) == [
                ("deleted", "/calico/a/k2", "k2-v1"),
                ("new", "/calico/a/k9", "k9-v1"),
                ("updated", "/calico/a/k1", "k1-v2"),
                ("updated", "/calico/a/k3", "k3-v2"),
            ]
            assert recorder.view == etcd_content(etcd_clean, "/calico/a/")
            assert recorder.violations == []


def test_without_retained_values_deletes_carry_no_value_and_nothing_is_kept(etcd_clean):
    """The policy agent's syncer: values go to the consumer and are not kept; a delete,
    whether watched or found by a resync, names only the key."""
    with etcd_clean.client() as client:
        for name in ("k0", "k1", "k2"):
            client.put(f"/calico/a/{name}", f"{name}-v1")
    recorder = Recorder()
    with TcpProxy(etcd_clean.client_port) as proxy:
        config = DatastoreConfig(etcd_endpoints=(proxy.endpoint,))
        with running(config, [SyncSource("/calico/a/", as_text)], recorder, retain_values=False,
                     initial_backoff=0.05, max_backoff=0.5) as syncer:
            assert syncer.wait_for_status(IN_SYNC, WAIT)
            assert recorder.view == {f"/calico/a/k{i}": f"k{i}-v1" for i in range(3)}
            with etcd_clean.client() as client:
                client.delete("/calico/a/k0")
            recorder.wait_for(lambda r: "/calico/a/k0" not in r.view, "the watched delete")
            before, marker = len(recorder.updates), len(recorder.statuses)
            proxy.cut()
            assert syncer.wait_for_status(WAIT_FOR, WAIT)
            with etcd_clean.client() as client:
                client.delete("/calico/a/k1")
                client.put("/calico/a/k2", "k2-v2")
            proxy.restore()
            recorder.wait_for_statuses([WAIT_FOR, RESYNC, IN_SYNC], after=marker)
            assert sorted((u.type.value, u.key, u.value) for u in recorder.updates[before:]) == [
                ("deleted", "/calico/a/k1", None), ("updated", "/calico/a/k2", "k2-v2")]
            watched_delete = [u for u in recorder.updates if u.key == "/calico/a/k0"][-1]
            assert (watched_delete.type, watched_delete.value) == (UpdateType.DELETED, None)
            assert [k.value for k in syncer._known[0].values()] == [None]
            assert recorder.violations == []


def test_etcd_restart_drops_out_of_sync_and_converges(etcd, etcd_config):
    with etcd.client() as client:
        for name in ("k0", "k1", "k2"):
            client.put(f"/calico/a/{name}", f"{name}-v1")
    recorder = Recorder()
    with running(etcd_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=0.05, max_backoff=0.5) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        marker = len(recorder.statuses)
        with etcd.client() as client:
            client.put("/calico/a/k1", "k1-v2")
            client.delete("/calico/a/k0")
        etcd.stop()
        assert syncer.wait_for_status(WAIT_FOR, WAIT)
        etcd.start()
        with etcd.client() as client:  # may land before or after the syncer reconnects
            client.delete("/calico/a/k2")
            client.put("/calico/a/k7", "k7-v1")
        recorder.wait_for_statuses([IN_SYNC], after=marker)
        recorder.wait_for_view(etcd_content(etcd, "/calico/a/"))
        assert recorder.view == {"/calico/a/k1": "k1-v2", "/calico/a/k7": "k7-v1"}
        assert WAIT_FOR in recorder.statuses[marker:]
        assert recorder.violations == []


# -- decoding ------------------------------------------------------------------------------


def test_malformed_value_is_logged_and_skipped_while_others_sync(etcd_clean, etcd_clean_config, caplog):
    caplog.set_level(logging.WARNING, logger="node.datastore.syncer")
    with etcd_clean.client() as client:
        client.put("/calico/a/good1", json.dumps({"n": 1}))
        client.put("/calico/a/bad", "{not json")
        client.put("/calico/a/good2", json.dumps({"n": 2}))
    decode = lambda key, value, revision: json.loads(value)  # noqa: E731
    recorder = Recorder()
    with running(etcd_clean_config, [SyncSource("/calico/a/", decode)], recorder) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        assert recorder.view == {"/calico/a/good1": {"n": 1}, "/calico/a/good2": {"n": 2}}
        assert any("/calico/a/bad" in r.getMessage() for r in caplog.records)

        with etcd_clean.client() as client:
            client.put("/calico/a/bad2", "[")  # malformed from the start: never surfaces
            client.put("/calico/a/good1", "also bad")  # a known key turning malformed is withdrawn
            client.put("/calico/a/bad", json.dumps({"fixed": True}))
            client.put("/calico/a/good3", json.dumps({"n": 3}))
        recorder.wait_for_view({"/calico/a/good2": {"n": 2}, "/calico/a/bad": {"fixed": True},
                                "/calico/a/good3": {"n": 3}})
        assert any("/calico/a/bad2" in r.getMessage() for r in caplog.records)
        assert recorder.statuses == [WAIT_FOR, RESYNC, IN_SYNC]
        assert recorder.violations == []


def test_decode_returning_none_ignores_the_key(etcd_clean, etcd_clean_config):
    with etcd_clean.client() as client:
        client.put("/calico/a/keep", "k")
        client.put("/calico/a/skip", "s")
    decode = lambda key, value, revision: None if key.endswith("skip") else value.decode()  # noqa: E731
    recorder = Recorder()
    with running(etcd_clean_config, [SyncSource("/calico/a/", decode)], recorder) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        with etcd_clean.client() as client:
            client.delete("/calico/a/skip")
            client.put("/calico/a/last", "l")
        recorder.wait_for_view({"/calico/a/keep": "k", "/calico/a/last": "l"})
        assert [u.key for u in recorder.updates] == ["/calico/a/keep", "/calico/a/last"]


def test_stop_joins_every_thread_it_started_and_closes_its_client(etcd_clean_config):
    made: list[EtcdKV] = []

    def factory() -> EtcdKV:
        made.append(EtcdKV(etcd_clean_config))
        return made[-1]

    sources = [SyncSource("/calico/a/", as_text), SyncSource("/calico/b/", as_text)]
    syncer = Syncer(factory, sources, Recorder())
    syncer.start()
    try:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        assert any(t.name.startswith("syncer-watch-") for t in threading.enumerate())
    finally:
        syncer.stop(timeout=WAIT)
    leftovers = [t.name for t in threading.enumerate()
                 if t.name == "datastore-syncer" or t.name.startswith("syncer-watch-")]
    assert leftovers == []
    assert len(made) == 1
    with pytest.raises(DatastoreError, match="closed"):
        made[0].get("/calico/a/x")


# -- consumers that fail ---------------------------------------------------------------


class FailsOnce(Recorder):
    """A Recorder whose on_updates (or on_status) raises, once, before applying anything,
    on the first batch (or status) that ``trigger`` picks."""

    def __init__(self, update_trigger=None, status_trigger=None):
        super().__init__()
        self.update_trigger = update_trigger
        self.status_trigger = status_trigger
        self.failures: list[object] = []

    def on_status(self, status: SyncStatus) -> None:
        with self._cond:
            if not self.failures and self.status_trigger and self.status_trigger(self, status):
                self.failures.append(status)
                self._cond.notify_all()
                raise RuntimeError(f"consumer cannot take {status}")
        super().on_status(status)

    def on_updates(self, updates: list[Update]) -> None:
        with self._cond:
            hit = [u for u in updates if self.update_trigger and self.update_trigger(u)]
            if not self.failures and hit:
                self.failures.append(hit[0])
                self._cond.notify_all()
                raise RuntimeError(f"consumer cannot apply {hit[0].key}")
        super().on_updates(updates)


def test_update_that_the_consumer_fails_on_in_the_snapshot_is_sent_again(etcd_clean, etcd_clean_config, caplog):
    caplog.set_level(logging.INFO, logger="node.datastore.syncer")
    with etcd_clean.client() as client:
        for name in ("k0", "k1", "k2"):
            client.put(f"/calico/a/{name}", f"{name}-v1")
    recorder = FailsOnce(update_trigger=lambda u: u.key == "/calico/a/k1")
    with running(etcd_clean_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=0.05, max_backoff=0.5) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        assert len(recorder.failures) == 1
        # Never in sync before the snapshot was applied.
        assert recorder.statuses == [WAIT_FOR, RESYNC, IN_SYNC]
        assert recorder.view == etcd_content(etcd_clean, "/calico/a/")
        assert [u.type for u in recorder.updates] == [UpdateType.NEW] * 3
        assert recorder.violations == []
        assert any("cannot apply /calico/a/k1" in r.getMessage() for r in caplog.records)


def test_a_large_listing_arrives_in_bounded_batches_and_a_failed_batch_loses_nothing(
        etcd_clean, etcd_clean_config, monkeypatch):
    """Listed values go to the consumer in batches of at most MAX_UPDATES_PER_CALLBACK
    as they are decoded (so a consumer never holds a whole large listing's values at
    once); a consumer failing on a middle batch still ends up with every key once."""
    import node.datastore.syncer as syncer_module

    monkeypatch.setattr(syncer_module, "MAX_UPDATES_PER_CALLBACK", 4)
    names = [f"k{i:02d}" for i in range(10)]
    with etcd_clean.client() as client:
        for name in names:
            client.put(f"/calico/a/{name}", f"{name}-v1")
    batches: list[list[str]] = []

    class Batches(FailsOnce):
        def on_updates(self, updates):
            batches.append([u.key.rsplit("/", 1)[1] for u in updates])
            super().on_updates(updates)

    recorder = Batches(update_trigger=lambda u: u.key == "/calico/a/k05")
    with running(etcd_clean_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=0.05, max_backoff=0.5) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        # First attempt: one batch applied, the second refused (and nothing after it sent).
        assert batches[:2] == [names[0:4], names[4:8]]
        assert all(len(b) <= 4 for b in batches)
        # The re-list sends only what the consumer does not hold, as NEW.
        assert batches[2:] == [names[4:8], names[8:10]]
        assert recorder.view == etcd_content(etcd_clean, "/calico/a/")
        assert [u.type for u in recorder.updates] == [UpdateType.NEW] * 10
        assert recorder.violations == []


@pytest.mark.parametrize("failing", ["updated", "deleted", "new"])
def test_watched_update_that_the_consumer_fails_on_is_sent_again(etcd_clean, etcd_clean_config, failing):
    with etcd_clean.client() as client:
        for name in ("k0", "k1", "k2"):
            client.put(f"/calico/a/{name}", f"{name}-v1")
    key = {"updated": "/calico/a/k1", "deleted": "/calico/a/k2", "new": "/calico/a/k9"}[failing]
    recorder = FailsOnce(update_trigger=lambda u: u.key == key and u.type.value == failing)
    with running(etcd_clean_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=0.05, max_backoff=0.5) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        marker = len(recorder.statuses)
        with etcd_clean.client() as client:
            client.put("/calico/a/k1", "k1-v2")
            client.delete("/calico/a/k2")
            client.put("/calico/a/k9", "k9-v1")
        recorder.wait_for(lambda r: r.failures, "the consumer to fail")
        # The consumer is told it is out of sync, then gets every change after a re-list.
        recorder.wait_for_statuses([RESYNC, IN_SYNC], after=marker)
        assert recorder.statuses[marker:] == [RESYNC, IN_SYNC]
        recorder.wait_for_view({"/calico/a/k0": "k0-v1", "/calico/a/k1": "k1-v2", "/calico/a/k9": "k9-v1"})
        assert recorder.violations == []
        # And the watch carries on after the recovery.
        with etcd_clean.client() as client:
            client.put("/calico/a/k0", "k0-v2")
        recorder.wait_for_view({"/calico/a/k0": "k0-v2", "/calico/a/k1": "k1-v2", "/calico/a/k9": "k9-v1"})
        assert recorder.violations == []


def test_consumer_failing_on_a_delete_that_is_then_recreated_gets_the_new_value(etcd_clean, etcd_clean_config):
    with etcd_clean.client() as client:
        client.put("/calico/a/k0", "k0-v1")
    recorder = FailsOnce(update_trigger=lambda u: u.type is UpdateType.DELETED)
    # A long backoff leaves time to re-create the key before the re-list.
    with running(etcd_clean_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=1.0, max_backoff=1.0) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        with etcd_clean.client() as client:
            client.delete("/calico/a/k0")
        recorder.wait_for(lambda r: r.failures, "the consumer to fail")
        with etcd_clean.client() as client:
            client.put("/calico/a/k0", "k0-v2")
        recorder.wait_for_view({"/calico/a/k0": "k0-v2"})
        assert recorder.updates[-1].type is UpdateType.UPDATED  # it still held k0-v1
        assert recorder.violations == []


def test_failed_status_call_out_of_sync_is_repeated_so_the_consumer_never_stays_in_sync(etcd, etcd_config):
    with etcd.client() as client:
        client.put("/calico/a/k0", "k0-v1")
    recorder = FailsOnce(status_trigger=lambda r, s: s is WAIT_FOR and IN_SYNC in r.statuses)
    with running(etcd_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=0.05, max_backoff=0.5) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        etcd.stop()
        recorder.wait_for(lambda r: r.failures, "on_status to fail")
        assert syncer.wait_for_status(WAIT_FOR, WAIT)
        # While etcd is still down, the consumer must learn it is no longer in sync.
        recorder.wait_for(lambda r: r.statuses[-1] is WAIT_FOR, "WAIT_FOR_DATASTORE to be sent again")
        assert recorder.statuses == [WAIT_FOR, RESYNC, IN_SYNC, WAIT_FOR]
        etcd.start()
        with etcd.client() as client:
            client.put("/calico/a/k1", "k1-v1")
        recorder.wait_for_view({"/calico/a/k0": "k0-v1", "/calico/a/k1": "k1-v1"})
        recorder.wait_for_statuses([IN_SYNC])
        assert recorder.violations == []


def test_failed_in_sync_call_is_retried_after_a_resync(etcd_clean, etcd_clean_config):
    with etcd_clean.client() as client:
        client.put("/calico/a/k0", "k0-v1")
    recorder = FailsOnce(status_trigger=lambda r, s: s is IN_SYNC)
    with running(etcd_clean_config, [SyncSource("/calico/a/", as_text)], recorder,
                 initial_backoff=0.05, max_backoff=0.5) as syncer:
        assert syncer.wait_for_status(IN_SYNC, WAIT)
        # The syncer only claims IN_SYNC once the consumer has taken it.
        assert recorder.statuses == [WAIT_FOR, RESYNC, RESYNC, IN_SYNC]
        assert recorder.failures == [IN_SYNC]
        assert [u.key for u in recorder.updates] == ["/calico/a/k0"]  # the snapshot was not sent twice
        assert syncer.last_error == ""


def test_unexpected_failure_stops_the_syncer_and_reports_it(etcd_clean_config):
    from node.errors import ConfigError

    def factory():
        raise ConfigError("ETCD_CA_CERT_FILE=/x: no PEM certificate in the file")

    fatal: list[BaseException] = []
    recorder = Recorder()
    syncer = Syncer(factory, [SyncSource("/calico/a/", as_text)], recorder, on_fatal=fatal.append)
    syncer.start()
    syncer._thread.join(WAIT)
    assert not syncer._thread.is_alive()
    assert isinstance(syncer.failure, ConfigError) and fatal == [syncer.failure]
    assert "no PEM certificate" in syncer.last_error
    assert recorder.statuses == [WAIT_FOR]
    syncer.stop(WAIT)
