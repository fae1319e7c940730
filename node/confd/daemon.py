"""The long-running renderer: follow the datastore, re-render on every change.

The syncer (``node.datastore.syncer``) feeds resource updates into a ``ConfdInputs``; a
poller does the same for endpoint status files (local-workload BGP peers). The render
loop waits until both are in sync, then renders after every batch of changes. There is
no debounce: changes that arrive during a render cause exactly one more render, as in
Calico. A render that cannot be done (this node's Node missing, a bad BGPFilter) waits
for new data; an I/O failure is retried with backoff (250 ms doubling to 5 s).

A one-shot render (``run(oneshot=True, deadline=...)``) gives up with status 1 when the
datastore is not in sync within ``deadline`` seconds, naming the syncer's last error.
If the syncer itself stops (a bug or a configuration error, never a datastore outage),
``run`` returns 1 so that supervisor restarts the role.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Callable

from node.confd.cycle import CycleResult, render_cycle
from node.confd.inputs import (ENDPOINT_SLICE_KIND, FOLLOWED_KINDS, KUBERNETES_KINDS, SECRET_KIND, SERVICE_KIND,
                               ConfdInputs, Settings, read_endpoint_status_dir, secret_data)
from node.confd.install import Installer
from node.confd.services import endpoint_slice_from_doc, service_from_doc
from node.datastore.kubernetes.keys import KubeObject
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer, SyncStatus, Update, UpdateType
from node.errors import ValidationError

log = logging.getLogger(__name__)

RETRY_INITIAL = 0.25
RETRY_MAX = 5.0
ENDPOINT_STATUS_POLL = 1.0


class Renderer:
    """Holds what the syncer has told us and renders it; also the syncer's callbacks."""

    def __init__(self, settings: Settings, installer: Installer, kv_factory: Callable,
                 *, endpoint_status_poll: float = ENDPOINT_STATUS_POLL, owns_kv: bool = True,
                 kubernetes: bool = False):
        self.settings = settings
        self.installer = installer
        # With the Kubernetes datastore the renderer also follows Secrets (BGP passwords,
        # from its own namespace), Services and EndpointSlices.
        self.inputs = ConfdInputs(secrets={} if kubernetes else None)
        self._cond = threading.Condition()
        self._generation = 0          # bumped on every change to the inputs
        self._rendered = -1           # the generation last rendered
        self._in_sync = False
        self._stop = threading.Event()
        self._poll = endpoint_status_poll
        self.last_result: CycleResult | None = None
        self.renders = 0
        self._fatal: BaseException | None = None
        kinds = list(FOLLOWED_KINDS) + (list(KUBERNETES_KINDS) if kubernetes else [])
        self.syncer = Syncer(kv_factory, resource_sources(kinds, affinity_host=settings.nodename,
                                                          namespaces={SECRET_KIND: settings.secret_namespace}),
                             self, owns_kv=owns_kv, on_fatal=self._syncer_failed)

    # -- syncer callbacks (syncer thread) -------------------------------------------------

    def on_status(self, status: SyncStatus) -> None:
        with self._cond:
            was = self._in_sync
            self._in_sync = status == SyncStatus.IN_SYNC
            if self._in_sync and not was:
                log.info("Data is now in sync; rendering BIRD config")
            elif was and not self._in_sync:
                log.info("Datastore sync lost (%s); holding the rendered config until back in sync", status)
            self._cond.notify_all()

    def on_updates(self, updates: list[Update]) -> None:
        with self._cond:
            for update in updates:
                res = update.value
                if isinstance(res, KubeObject):
                    self._kubernetes_update(res, update.type == UpdateType.DELETED)
                elif update.type == UpdateType.DELETED:
                    self.inputs.remove(res.kind, res.name)
                else:
                    self.inputs.put(res)
            self._generation += 1
            self._cond.notify_all()

    def _kubernetes_update(self, obj: KubeObject, deleted: bool) -> None:
        """A Secret, Service or EndpointSlice from the Kubernetes datastore."""
        key = (obj.namespace, obj.name)
        if obj.kind == SECRET_KIND:
            if deleted:
                self.inputs.secrets.pop(key, None)
                return
            try:
                self.inputs.secrets[key] = secret_data(obj.obj, f"Secret({obj.namespace}/{obj.name})")[2]
            except ValidationError as exc:
                log.warning("ignoring a Secret that cannot be read: %s", exc)
                self.inputs.secrets.pop(key, None)
        elif obj.kind == SERVICE_KIND:
            if deleted:
                self.inputs.services.pop(key, None)
            else:
                self.inputs.services[key] = service_from_doc(obj.obj)
        elif obj.kind == ENDPOINT_SLICE_KIND:
            if deleted:
                self.inputs.endpoint_slices.pop(key, None)
            else:
                self.inputs.endpoint_slices[key] = endpoint_slice_from_doc(obj.obj)

    def _syncer_failed(self, exc: BaseException) -> None:
        with self._cond:
            self._fatal = exc
            self._cond.notify_all()

    # -- endpoint status files --------------------------------------------------------------

    def scan_endpoint_status(self) -> None:
        workloads = read_endpoint_status_dir(self.settings.endpoint_status_dir)
        with self._cond:
            if workloads != self.inputs.local_workloads:
                log.info("Local workload BGP peers changed: %s", ", ".join(sorted(workloads)) or "none")
                self.inputs.local_workloads = workloads
                self._generation += 1
                self._cond.notify_all()

    def _endpoint_status_loop(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.scan_endpoint_status()
            except Exception:
                log.exception("scanning endpoint status files failed")

    # -- render loop ------------------------------------------------------------------------

    def _snapshot(self) -> tuple[int, ConfdInputs]:
        inputs = self.inputs
        secrets = None if inputs.secrets is None else dict(inputs.secrets)
        copy = replace(inputs, secrets=secrets, nodes=dict(inputs.nodes), bgp_configs=dict(inputs.bgp_configs),
                       bgp_peers=dict(inputs.bgp_peers), bgp_filters=dict(inputs.bgp_filters),
                       ip_pools=dict(inputs.ip_pools), affinities=dict(inputs.affinities),
                       local_workloads=dict(inputs.local_workloads), services=dict(inputs.services),
                       endpoint_slices=dict(inputs.endpoint_slices))
        return self._generation, copy

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def wait_rendered(self, timeout: float) -> bool:
        """True once everything known so far has been rendered (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self._in_sync and self._rendered == self._generation):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def run(self, oneshot: bool = False, deadline: float | None = None) -> int:
        """Render until stopped (exit code 0), or once when ``oneshot`` (1 if that failed,
        or if the datastore was not in sync within ``deadline`` seconds; None waits as
        long as it takes). 1 also when the syncer stops for good."""
        self.scan_endpoint_status()
        poller = threading.Thread(target=self._endpoint_status_loop, name="confd-endpoint-status", daemon=True)
        poller.start()
        self.syncer.start()
        give_up_at = time.monotonic() + deadline if oneshot and deadline is not None else None
        retry_delay = 0.0
        try:
            while not self._stop.is_set():
                if retry_delay:
                    self._stop.wait(retry_delay)
                with self._cond:
                    ready = self._cond.wait_for(
                        lambda: self._stop.is_set() or self._fatal is not None or (
                            self._in_sync and self._generation != self._rendered),
                        None if give_up_at is None else max(0.0, give_up_at - time.monotonic()))
                    if self._fatal is not None:
                        log.error("the datastore syncer stopped (%s); exiting", self._fatal)
                        return 1
                    if self._stop.is_set():
                        break
                    if not ready:
                        why = self.syncer.last_error or f"sync status {self.syncer.status}"
                        log.error("giving up: the datastore was not in sync within %gs, so no BIRD config "
                                  "was rendered (%s)", deadline, why)
                        return 1
                    generation, inputs = self._snapshot()
                try:
                    result = render_cycle(inputs, self.settings, self.installer)
                except OSError as exc:
                    retry_delay = min(max(retry_delay * 2, RETRY_INITIAL), RETRY_MAX)
                    log.error("installing BIRD config failed: %s; retrying in %.2fs", exc, retry_delay)
                    if oneshot:
                        return 1
                    continue
                retry_delay = 0.0
                with self._cond:
                    self.last_result = result
                    self.renders += 1
                    self._rendered = generation
                    self._cond.notify_all()
                if oneshot:
                    return 0 if result.ok else 1
            if oneshot:
                log.error("stopped before the one-shot render")
                return 1
            return 0
        finally:
            self._stop.set()
            # A one-shot that gave up does not wait for a dial in progress (the thread is
            # a daemon thread and the process is about to exit).
            self.syncer.stop(timeout=1.0 if oneshot else None)
            poller.join(timeout=5)
