"""One Kubernetes collection, followed as a client-go informer follows it.

The renderer reads a few Kubernetes objects that are not part of Calico's key space and
that it may read whatever the datastore: the Secrets its BGPPeers name (one informer
per Secret, field-selected on its name) and, when Service advertisement is configured,
every Service and EndpointSlice. ``Informer`` lists the collection, then watches it
from the list's resourceVersion, keeping a store of what it has seen (each object's
resourceVersion, not the object: the handler keeps what it needs of it):

* the handler hears of each object that appears, changes or goes (``on_object``), and
  that the store is complete (``on_synced``, after every successful list);
* a watch the server ends is resumed from the last resourceVersion seen (events and
  bookmarks); a 410 Gone lists again at once;
* any other failure (the server unreachable, a 403 because RBAC does not grant the
  verb, a malformed answer) is handed to ``on_error`` with the error's text, and the
  informer lists again after a backoff (client-go's reflector: 0.8 s doubling to
  30 s). What the store held stays as it was meanwhile, as in client-go.

Every callback runs on the informer's own thread, in order.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from node.datastore.kubernetes.api import KubeAPI, ResourcePath
from node.errors import DatastoreError

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
BACKOFF_INITIAL = 0.8
BACKOFF_MAX = 30.0

ObjectKey = tuple[str, str]  # (namespace, name)


def _key(obj: dict) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _rv(obj: dict) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class _Relist(Exception):
    """Internal: the watch's resourceVersion is gone (410); list again without backoff."""


class Informer:
    """List-then-watch of one collection (see the module docstring).

    ``on_object(key, obj)`` gets ``obj`` None when the object went away; ``on_synced()``
    follows every successful list; ``on_error(text)`` every failed list or watch.
    ``what`` names the collection in logs and errors, e.g. "Secret kube-system/bgp-pw".
    """

    def __init__(self, api: KubeAPI, path: ResourcePath, *, namespace: str = "", field_selector: str = "",
                 what: str = "", on_object: Callable[[ObjectKey, dict | None], None],
                 on_synced: Callable[[], None] = lambda: None, on_error: Callable[[str], None] = lambda text: None,
                 backoff_initial: float = BACKOFF_INITIAL, backoff_max: float = BACKOFF_MAX):
        self.api = api
        self.path = path
        self.namespace = namespace
        self.field_selector = field_selector
        self.what = what or path.collection(namespace)
        self._on_object = on_object
        self._on_synced = on_synced
        self._on_error = on_error
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        # What has been seen: each object's resourceVersion (the handler keeps what it
        # needs of the objects themselves).
        self._store: dict[ObjectKey, str] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream = None
        self._thread: threading.Thread | None = None
        self._settled = threading.Event()   # the first list has answered, or failed
        self.synced = False                 # a list has succeeded
        self.last_error = ""                # the last failure's text ('' after a good list)

    @property
    def collection(self) -> str:
        return self.path.collection(self.namespace)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> "Informer":
        if self._thread is not None:
            raise RuntimeError(f"informer for {self.what} already started")
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.path.plural}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop following the collection; no callback runs once this returns (unless a
        request in flight outlives ``timeout``)."""
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def wait_settled(self, timeout: float) -> bool:
        """True once the first list has answered or failed (within ``timeout`` seconds)."""
        return self._settled.wait(timeout)

    # -- the loop -----------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stop.is_set():
            try:
                rv = self._list()
                delay = self._backoff_initial
                self._watch(rv)
            except _Relist:
                continue
            except DatastoreError as exc:
                if self._stop.is_set():
                    return
                self._failed(str(exc))
            except Exception as exc:  # keep following whatever goes wrong; say what it was
                if self._stop.is_set():
                    return
                log.exception("following %s failed", self.what)
                self._failed(f"following {self.what} failed: {exc}")
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._backoff_max)

    def _failed(self, text: str) -> None:
        if text != self.last_error:
            log.warning("cannot follow %s: %s; retrying", self.what, text)
        else:
            log.debug("still cannot follow %s: %s", self.what, text)
        self.last_error = text
        self._settled.set()
        self._on_error(text)

    def _list(self) -> str:
        items, rv = self.api.list(self.collection, field_selector=self.field_selector)
        if self._stop.is_set():
            return rv
        listed = {_key(obj): obj for obj in items}
        for key in sorted(set(self._store) - set(listed)):
            del self._store[key]
            self._on_object(key, None)
        for key in sorted(listed):
            obj = listed[key]
            seen = _rv(obj)
            if seen and self._store.get(key) == seen:
                continue
            self._store[key] = seen
            self._on_object(key, obj)
        if self.last_error:
            log.info("following %s again", self.what)
        self.last_error = ""
        self.synced = True
        self._settled.set()
        self._on_synced()
        return rv

    def _watch(self, rv: str) -> None:
        """Follow the watch from ``rv`` until stopped; resumes when the server ends it."""
        while not self._stop.is_set():
            stream = self.api.watch(self.collection, rv, field_selector=self.field_selector,
                                    timeout_seconds=WATCH_TIMEOUT_SECONDS)
            with self._lock:
                self._stream = stream
            if self._stop.is_set():
                stream.close()
                return
            try:
                for kind, obj in stream:
                    if self._stop.is_set():
                        return
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            log.info("watch of %s: resourceVersion %s is gone; listing again", self.what, rv)
                            raise _Relist()
                        raise DatastoreError(f"watch of {self.collection}: {obj.get('code')} "
                                             f"{obj.get('reason', '')}: {obj.get('message', '')}")
                    rv = _rv(obj) or rv
                    if kind == "BOOKMARK":
                        continue
                    key = _key(obj)
                    if kind == "DELETED":
                        if self._store.pop(key, None) is not None:
                            self._on_object(key, None)
                    elif kind in ("ADDED", "MODIFIED"):
                        self._store[key] = _rv(obj)
                        self._on_object(key, obj)
            finally:
                stream.close()
                with self._lock:
                    self._stream = None
