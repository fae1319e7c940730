"""The long-running renderer: follow the datastore, re-render on every change.

The syncer (``node.datastore.syncer``) feeds resource updates into a ``ConfdInputs``; a
poller does the same for endpoint status files (local-workload BGP peers). The render
loop waits until both are in sync, then renders after every batch of changes. There is
no debounce: changes that arrive during a render cause exactly one more render, as in
Calico. A render that cannot be done (this node's Node missing, a bad BGPFilter) waits
for new data; an I/O failure is retried with backoff (250 ms doubling to 5 s).

With a Kubernetes client (``kube_api``, whatever the datastore; see
``node.confd.kubeside``) the renderer also follows the Secrets its BGP passwords name
and, once Service advertisement is configured, Services and EndpointSlices. As Calico's
confd waits for its route generator only when advertisement is configured at start,
rendering waits for the Services and EndpointSlices to be listed only when they are
followed from the first render on; followed from a later change, they do not hold up
rendering (their routes join as they are listed, and a list that fails, say for RBAC,
is retried with backoff while every other change is still rendered). Rendering never
waits for Secrets: a Secret that cannot be read leaves its peers without a password.

A one-shot render (``run(oneshot=True, deadline=...)``) gives up with status 1 when the
datastore is not in sync within ``deadline`` seconds, naming the syncer's last error.
If the syncer itself stops (a bug or a configuration error, never a datastore outage),
``run`` returns 1 so that supervisor restarts the role.

The renderer's own log level follows the BGPConfigurations as Calico's confd's does
(``node.confd.cluster.confd_log_level``): given ``on_log_level``, it is told the level
at the first sync and whenever a BGPConfiguration changes it.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from node.confd.cluster import confd_log_level
from node.confd.cycle import CycleResult, render_cycle
from node.confd.inputs import FOLLOWED_KINDS, ConfdInputs, Settings, read_endpoint_status_dir, secret_data
from node.confd.install import Installer
from node.confd.kubeside import (SECRET_SYNC_WAIT, SecretWatcher, ServiceWatcher, referenced_secrets,
                                 service_advertisement_configured)
from node.confd.services import endpoint_slice_from_doc, service_from_doc, service_summary, slice_summary
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer, SyncStatus, Update, UpdateType
from node.errors import ValidationError

if TYPE_CHECKING:
    from node.datastore.kubernetes.api import KubeAPI
    from node.datastore.kubernetes.informer import Informer

log = logging.getLogger(__name__)

RETRY_INITIAL = 0.25
RETRY_MAX = 5.0
ENDPOINT_STATUS_POLL = 1.0


class Renderer:
    """Holds what the syncer has told us and renders it; also the syncer's callbacks."""

    def __init__(self, settings: Settings, installer: Installer, kv_factory: Callable,
                 *, endpoint_status_poll: float = ENDPOINT_STATUS_POLL, owns_kv: bool = True,
                 kube_api: Callable[[], KubeAPI] | None = None, secret_sync_wait: float = SECRET_SYNC_WAIT,
                 informer_backoff: tuple[float, float] | None = None,
                 on_log_level: Callable[[str, str], None] | None = None, env_log_level: str = ""):
        """``kube_api``: a factory for the Kubernetes client that Secrets and Services are
        read with (None: there is none, so no passwords and no per-Service routes);
        ``informer_backoff``: (initial, maximum) seconds between its retries;
        ``on_log_level``: called with (the level given, the logrus level) when confd's own
        log level changes, ``env_log_level`` being BGP_LOGSEVERITYSCREEN's value."""
        self.settings = settings
        self._on_log_level = on_log_level
        self._env_log_level = env_log_level
        self._log_level: str | None = None  # the level last given to on_log_level
        self.installer = installer
        self.inputs = ConfdInputs(secrets={} if kube_api is not None else None)
        self._cond = threading.Condition()
        self._generation = 0          # bumped on every change to the inputs
        self._rendered = -1           # the generation last rendered
        self._in_sync = False
        self._stop = threading.Event()
        self._poll = endpoint_status_poll
        self.last_result: CycleResult | None = None
        self.renders = 0
        self._fatal: BaseException | None = None
        self._kube_api_factory = kube_api
        self._kube: KubeAPI | None = None
        self._secret_sync_wait = secret_sync_wait
        self._informer_backoff = informer_backoff
        self.secret_watcher: SecretWatcher | None = None
        self._secret_api_errors: set[tuple[str, str]] = set()  # secret_errors from the API (not decoding)
        self.service_watcher: ServiceWatcher | None = None
        # Whether rendering waits for the Services to be listed: only when they were
        # followed before the first render (Calico: advertisement configured at start).
        self._wait_for_services = False
        self._render_started = False  # a render has been attempted (start-up is over)
        # With USE_POD_CIDR the blocks come from the Nodes, and BlockAffinities are not read.
        kinds = [kind for kind in FOLLOWED_KINDS if not (settings.use_pod_cidr and kind == "BlockAffinity")]
        self.syncer = Syncer(kv_factory, resource_sources(kinds, affinity_host=settings.nodename),
                             self, owns_kv=owns_kv, on_fatal=self._syncer_failed)

    # -- syncer callbacks (syncer thread) -------------------------------------------------

    def on_status(self, status: SyncStatus) -> None:
        with self._cond:
            was = self._in_sync
            self._in_sync = status == SyncStatus.IN_SYNC
            if self._in_sync and self._log_level is None:
                self._follow_log_level()
            if self._in_sync and not was:
                log.info("Data is now in sync; rendering BIRD config")
            elif was and not self._in_sync:
                log.info("Datastore sync lost (%s); holding the rendered config until back in sync", status)
            self._cond.notify_all()

    def on_updates(self, updates: list[Update]) -> None:
        with self._cond:
            for update in updates:
                res = update.value
                if update.type == UpdateType.DELETED:
                    self.inputs.remove(res.kind, res.name)
                else:
                    self.inputs.put(res)
            if self._log_level is not None and any(u.value.kind == "BGPConfiguration" for u in updates):
                self._follow_log_level()
            self._changed()

    def _follow_log_level(self) -> None:
        """Calico's confd (updateLogLevel) sets its level at its first sync and whenever a
        log level it reads changes."""
        if self._on_log_level is None:
            return
        given, level = confd_log_level(self.inputs.bgp_configs, self.settings.nodename, self._env_log_level)
        if given != self._log_level:
            self._log_level = given
            self._on_log_level(given, level)

    def _changed(self) -> None:
        """The inputs changed (called holding the condition)."""
        self._generation += 1
        self._cond.notify_all()

    # -- Kubernetes callbacks (informer threads) -------------------------------------------

    def _secret_object(self, name: str, informer: Informer, obj: dict | None) -> None:
        key = (self.settings.secret_namespace, name)
        with self._cond:
            if self.secret_watcher is None or not self.secret_watcher.is_current(name, informer):
                return  # from an informer already stopped
            if obj is None:
                self.inputs.secrets.pop(key, None)
                if key not in self._secret_api_errors:
                    self.inputs.secret_errors.pop(key, None)  # a bad one gone is just gone
            else:
                try:
                    self.inputs.secrets[key] = secret_data(obj, f"Secret({key[0]}/{name})")[2]
                    self.inputs.secret_errors.pop(key, None)
                    self._secret_api_errors.discard(key)
                except ValidationError as exc:
                    log.warning("ignoring a Secret that cannot be read: %s", exc)
                    self.inputs.secrets.pop(key, None)
                    self.inputs.secret_errors[key] = str(exc)
            self._changed()

    def _secret_synced(self, name: str, informer: Informer) -> None:
        key = (self.settings.secret_namespace, name)
        with self._cond:
            if self.secret_watcher is None or not self.secret_watcher.is_current(name, informer):
                return
            if key not in self._secret_api_errors:
                return
            self._secret_api_errors.discard(key)
            self.inputs.secret_errors.pop(key, None)
            if key not in self.inputs.secrets:
                self._changed()  # readable now, but not there: say so at the next render

    def _secret_failed(self, name: str, informer: Informer, text: str) -> None:
        key = (self.settings.secret_namespace, name)
        with self._cond:
            if self.secret_watcher is None or not self.secret_watcher.is_current(name, informer):
                return
            self._secret_api_errors.add(key)
            if self.inputs.secret_errors.get(key) != text:
                self.inputs.secret_errors[key] = text
                if key not in self.inputs.secrets:
                    self._changed()  # the peers' warning names the reason

    # A Service or EndpointSlice event re-renders only when it can change this node's
    # routes (its summary changed), as Calico's route generator re-evaluates only the
    # Service concerned: endpoints elsewhere coming and going, a Service of a type not
    # advertised, a change to fields not read, render nothing.

    def _service_object(self, key: tuple[str, str], obj: dict | None) -> None:
        new = None
        if obj is not None:
            try:
                new = service_from_doc(obj)
            except (AttributeError, TypeError, ValueError) as exc:
                log.warning("ignoring Service %s/%s that cannot be read: %s", key[0], key[1], exc)
        with self._cond:
            old = self.inputs.services.pop(key, None)
            if new is not None:
                self.inputs.services[key] = new
            if service_summary(old) != service_summary(new):
                self._changed()

    def _slice_object(self, key: tuple[str, str], obj: dict | None) -> None:
        new = None
        if obj is not None:
            try:
                new = endpoint_slice_from_doc(obj)
            except (AttributeError, TypeError, ValueError) as exc:
                log.warning("ignoring EndpointSlice %s/%s that cannot be read: %s", key[0], key[1], exc)
        node_ref = self.settings.kubernetes_node_name
        with self._cond:
            old = self.inputs.endpoint_slices.pop(key, None)
            if new is not None:
                self.inputs.endpoint_slices[key] = new
            if slice_summary(old, node_ref) != slice_summary(new, node_ref):
                self._changed()

    def _services_synced(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _start_kubernetes(self) -> None:
        """Make the Kubernetes client, if there is one to make."""
        if self._kube_api_factory is None:
            return
        try:
            self._kube = self._kube_api_factory()
        except Exception as exc:  # a client that cannot be made is no client, as in Calico
            log.warning("cannot make a Kubernetes client (%s): BGP passwords from Secrets and Service "
                        "advertisement are off", exc)
            with self._cond:
                self.inputs.secrets = None
            return
        self.secret_watcher = SecretWatcher(self._kube, self.settings.secret_namespace,
                                            on_object=self._secret_object, on_synced=self._secret_synced,
                                            on_error=self._secret_failed, backoff=self._informer_backoff)

    def _maybe_follow_services(self) -> bool:
        """Start following Services once advertisement is configured (holding the
        condition); True if they were just started before the first render, when
        rendering waits for them to be listed (as Calico's confd waits for a route
        generator started at start-up, and not for one started by a later update)."""
        if self._kube is None or self.service_watcher is not None:
            return False
        if not service_advertisement_configured(self.inputs, self.settings):
            return False
        self.service_watcher = ServiceWatcher(self._kube, on_service=self._service_object,
                                              on_slice=self._slice_object, on_synced=self._services_synced,
                                              backoff=self._informer_backoff).start()
        self._wait_for_services = not self._render_started
        if not self._wait_for_services:
            log.info("Service advertisement configured after start: rendering goes on while Services "
                     "and EndpointSlices are listed")
        return self._wait_for_services

    def _ready(self) -> bool:
        """In sync: the datastore, and the Services when rendering waits for them."""
        return self._in_sync and (not self._wait_for_services or self.service_watcher.synced)

    def _not_ready_reason(self) -> str:
        if not self._in_sync:
            return self.syncer.last_error or f"sync status {self.syncer.status}"
        return self.service_watcher.last_error or "Services and EndpointSlices not listed yet"

    def _track_secrets(self, inputs: ConfdInputs) -> bool:
        """Follow the Secrets ``inputs`` name; True if new ones were started (rendering
        then waits a moment for them, as Calico does)."""
        if self.secret_watcher is None:
            return False
        started, dropped = self.secret_watcher.track(referenced_secrets(inputs))
        if dropped:
            with self._cond:
                for name in dropped:
                    key = (self.settings.secret_namespace, name)
                    self.inputs.secrets.pop(key, None)
                    self.inputs.secret_errors.pop(key, None)
                    self._secret_api_errors.discard(key)
        if started:
            SecretWatcher.wait_settled(started, self._secret_sync_wait)
        return bool(started)

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
        copy = replace(inputs, secrets=secrets, secret_errors=dict(inputs.secret_errors),
                       nodes=dict(inputs.nodes), bgp_configs=dict(inputs.bgp_configs),
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
            while not (self._ready() and self._rendered == self._generation):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def run(self, oneshot: bool = False, deadline: float | None = None) -> int:
        """Render until stopped (exit code 0), or once when ``oneshot`` (1 if that failed,
        or if the datastore was not in sync within ``deadline`` seconds; None waits as
        long as it takes). 1 also when the syncer stops for good."""
        self._start_kubernetes()
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
                            self._ready() and self._generation != self._rendered),
                        None if give_up_at is None else max(0.0, give_up_at - time.monotonic()))
                    if self._fatal is not None:
                        log.error("the datastore syncer stopped (%s); exiting", self._fatal)
                        return 1
                    if self._stop.is_set():
                        break
                    if not ready:
                        what = ("the datastore was not in sync" if not self._in_sync
                                else "the Services and EndpointSlices were not listed")
                        log.error("giving up: %s within %gs, so no BIRD config was rendered (%s)", what, deadline,
                                  self._not_ready_reason())
                        return 1
                    if self._maybe_follow_services():
                        continue  # render once they are listed too
                    self._render_started = True
                    generation, inputs = self._snapshot()
                if self._track_secrets(inputs):
                    with self._cond:
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
            if self.secret_watcher is not None:
                self.secret_watcher.stop()
            if self.service_watcher is not None:
                self.service_watcher.stop()
            if self._kube is not None:
                self._kube.close()
