"""The running policy agent: syncer -> calculation -> dataplane, in one loop.

Felix's shape, without its goroutines: the syncer thread and the interface monitor only
queue what they see; one loop thread drains the queue, feeds the pure pipeline, and
applies the result to the kernel in Felix's order (IP set creates and updates, then the
iptables tables, then IP set deletions; routes alongside). Draining whole queues before
applying coalesces bursts. Nothing is programmed before the datastore has been in sync
once and the interfaces have been read (graceful restart: the old rules stay in force
until the first complete apply), and nothing is ever flushed because the datastore went
away: the dataplane just stays as it is until updates flow again.

Convergence: every apply compares the desired state with the kernel picture each
dataplane keeps, so a restart with unchanged inputs writes nothing, and each dataplane
re-reads the kernel on its refresh interval (IptablesRefreshInterval,
IpsetsRefreshInterval, RouteRefreshInterval) and repairs only what drifted. A failed
apply is retried with backoff after a fresh read; the agent never exits because of data.
It exits with Felix's code 129 when its configuration changes after start (supervisor
restarts it with the new configuration), and 0 on SIGTERM, leaving the dataplane in place.

KubeVirt live migration (Felix's liveMigrationMonitor): the endpoint updates of each batch
also feed the per-endpoint state machines (node/felix/live_migration.py); their actions
run in node/felix/dataplane/live_migration.py, whose packet-socket threads queue the VM's
GARP/RARP for this loop and whose convergence timers are deadlines this loop waits for.
The machines' states reach the desired routes through ``Pipeline.desired_routes``.
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from node.config import Paths
from node.datastore.syncer import SyncStatus, Syncer
from node.felix import health as hl
from node.felix.calc.stats import count_key_types
from node.felix.config import FelixConfig, config_file_values, unsupported_features
from node.felix.dataplane.interfaces import InterfaceMonitor, addresses_by_name, host_mtu
from node.felix.dataplane.ipsets import IPSetsDataplane, IPSetsError
from node.felix.dataplane.iptables import IptablesDataplane, IptablesError, detect_backend
from node.felix.dataplane.iptables import from_config as iptables_from_config
from node.felix.dataplane.live_migration import LiveMigrationShell, OwnerSwapper
from node.felix.dataplane.qos import RETRY_INTERVAL as QOS_RETRY_INTERVAL
from node.felix.dataplane.qos import QoSDataplane
from node.felix.dataplane.mtu_file import MTUFileWriter
from node.felix.dataplane.routes import RouteDataplane
from node.felix.features import detect_features
from node.felix.dataplane.status_files import REAPPLY_INTERVAL, StatusFileWriter
from node.felix.endpoint_status import desired_status_files, workload_statuses
from node.felix.live_migration import LiveMigrationMonitor, states_by_interface
from node.felix.pipeline import Pipeline, felix_sources
from node.felix.status_report import desired_endpoint_reports, host_endpoint_statuses
from node.felix.status_reporter import StatusReporter

if TYPE_CHECKING:
    from node.felix.metrics import FelixMetrics

log = logging.getLogger(__name__)

CONFIG_CHANGED_RC = 129

# Felix's log levels -> Python's.
_LOG_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
               "ERROR": logging.ERROR, "FATAL": logging.CRITICAL, "PANIC": logging.CRITICAL}


SCTP_CONNTRACK_MODULE = "nf_conntrack_proto_sctp"


def load_conntrack_sctp(run: Callable[[list[str]], subprocess.CompletedProcess] | None = None) -> bool:
    """Felix's configureKernel: try to load SCTP's conntrack helper, without which some
    kernels mark every SCTP packet INVALID (and the rules drop it). Kernels that build it
    in make modprobe fail; that is only logged. True when modprobe succeeded."""
    run = run or (lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=10))
    try:
        res = run(["modprobe", SCTP_CONNTRACK_MODULE])
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("attempted to modprobe %s: %s", SCTP_CONNTRACK_MODULE, exc)
        return False
    output = ((res.stdout or "") + (res.stderr or "")).strip()
    log.info("attempted to modprobe %s: exit status %d%s", SCTP_CONNTRACK_MODULE, res.returncode,
             f" ({output})" if output else "")
    return res.returncode == 0


def apply_log_level(severity: str) -> None:
    """Set the agent's log level (Felix's LogSeverityScreen) on the root logger."""
    level = _LOG_LEVELS.get((severity or "").upper(), logging.INFO)
    root = logging.getLogger()
    if root.level != level:
        if root.level != logging.NOTSET:
            log.info("log level %s", logging.getLevelName(level))
        root.setLevel(level)


class DebugFileFilter(logging.Filter):
    """Felix's LogDebugFilenameRegex: a debug (or more verbose) line is kept only when the
    name of the source file that logged it matches the pattern (searched, as Go's
    MatchString does); other levels always pass."""

    def __init__(self, pattern: re.Pattern):
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG or bool(self.pattern.search(record.filename or ""))


def apply_debug_file_filter(pattern: re.Pattern | None) -> None:
    """Put ``DebugFileFilter(pattern)`` on the root logger's handlers (where every logger's
    lines pass), replacing an earlier one; None removes it."""
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, DebugFileFilter)]:
            handler.removeFilter(old)
        if pattern is not None:
            handler.addFilter(DebugFileFilter(pattern))


DEFAULT_RUN_DIR = "/var/run/calico"
STATUS_REPORT_INTERVAL = 10.0
MIN_RETRY, MAX_RETRY = 0.1, 30.0
# Felix's iptables sync panics (and so restarts, unready) once a table still fails after
# its retries; the agent keeps retrying instead, but reports the dataplane not ready once
# this many applies in a row have failed, until one succeeds.
FAILED_APPLIES_BEFORE_UNREADY = 3


MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number


@functools.cache
def _libc_function(name: str):
    """A C library function through ctypes, or None (not glibc, or no ctypes); looked up
    once (the trim runs after every apply)."""
    try:
        import ctypes

        return getattr(ctypes.CDLL(None), name)
    except (ImportError, OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Give the pages malloc holds free back to the kernel (glibc's malloc_trim). Reading
    and writing a large table goes through megabytes of short-lived text; without this,
    the freed pages stay in the agent's RSS. It takes well under a millisecond, so the
    agent calls it after every apply (each of which may have read a kernel listing)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the agent starts its threads. glibc gives threads
    that allocate arenas of their own (up to eight per core), and the agent's watch and
    gRPC threads each keep several MB of freed memory in theirs, about 7 MB in all at
    1,000 endpoints. The interpreter lock already serialises most allocation, so two
    arenas cost no speed. An operator's MALLOC_ARENA_MAX wins; False when not applied
    (set by the operator, or not glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    mallopt = _libc_function("mallopt")
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, count))


@dataclass(frozen=True)
class _Updates:
    updates: list


@dataclass(frozen=True)
class _Status:
    status: SyncStatus


@dataclass(frozen=True)
class _Interfaces:
    interfaces: dict


@dataclass(frozen=True)
class _GARPSeen:
    """A live migration target's VM announced itself (GARP/RARP) on its interface."""

    wid: object


class _Inbox:
    """The syncer's consumer: everything it says goes on the agent's queue, in order."""

    def __init__(self, q: queue.SimpleQueue):
        self._q = q

    def on_updates(self, updates) -> None:
        self._q.put(_Updates(list(updates)))

    def on_status(self, status: SyncStatus) -> None:
        self._q.put(_Status(status))


class Agent:
    """One policy agent for ``hostname``; ``run()`` blocks until ``stop()`` or a restart."""

    def __init__(self, hostname: str, env: Mapping[str, str], kv_factory: Callable[[], object],
                 *, default_rp_filter: str | None = None, manage_log_level: bool = False):
        self.hostname = hostname
        # The process's log level follows LogSeverityScreen (the role's agent; not one
        # embedded in another process, such as a test).
        self._manage_log_level = manage_log_level
        self.env = dict(env)
        self._kv_factory = kv_factory
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        file_config = config_file_values(self.env)
        # Felix's feature detection (iptables --version, /proc/version), once, before the
        # rules that depend on it are rendered.
        self.pipeline = Pipeline(hostname, self.env, file_config, detect_features())
        self.boot_config = FelixConfig.resolve(self.env, file_config=file_config)
        if manage_log_level:  # the config file's, until the datastore's is known
            apply_log_level(self.boot_config.LogSeverityScreen)
            apply_debug_file_filter(self.boot_config.LogDebugFilenameRegex)
        self.health = hl.HealthAggregator()
        hl.register_felix_reporters(self.health, self.boot_config.DataplaneWatchdogTimeout)
        self.metrics: FelixMetrics | None = None
        self._metrics_server = None
        # Until the dataplane starts (and with it the metrics, if on), the datastore
        # updates by key type and the seconds the calculation took over them, so the
        # metrics count the initial sync as Felix's do; dropped then.
        self._early_updates: dict[str, int] | None = {}
        self._early_seconds = 0.0
        self.iptables: dict[int, IptablesDataplane] = {}
        self.ipsets: dict[int, IPSetsDataplane] = {}
        self.routes: RouteDataplane | None = None
        self.status_files: StatusFileWriter | None = None
        self.mtu_file = MTUFileWriter(Paths.from_env(self.env).lib_dir)
        self.qos: QoSDataplane | None = None
        self.status_reporter: StatusReporter | None = None
        self._status_failures: tuple[str, ...] = ()
        self._interfaces: dict | None = None
        self._syncer: Syncer | None = None
        self._monitor: InterfaceMonitor | None = None
        self._status: SyncStatus | None = None
        self._dirty = True
        self._applied_once = False
        self._retry_at = 0.0
        self._retry_delay = MIN_RETRY
        self._next_apply_at = 0.0
        self._periods: list[float] = []
        self._exported: dict = {}
        self._next_status_report = 0.0
        self._rp_filter = default_rp_filter if default_rp_filter is not None else _read_default_rp_filter()
        # KubeVirt live migration: the state machines (pure) and their side effects.
        self.live_migration: LiveMigrationMonitor | None = None
        self.live_migration_shell: LiveMigrationShell | None = None
        self.exit_code: int | None = None
        self._config_generation = 0
        self._failed_applies = 0  # consecutive failed applies

    # -- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)

    def run(self) -> int:
        """The main loop. Returns the process exit code."""
        hl.apply_health_config(self.health, self.boot_config)
        self.health.report(hl.FELIX_STARTUP, live=True, ready=True)
        self._report_calc(False)
        self._report_dataplane()
        self._syncer = Syncer(self._kv_factory, felix_sources(self.env), _Inbox(self._queue),
                              on_fatal=self._on_syncer_fatal, retain_values=False)
        self._monitor = InterfaceMonitor(lambda ifaces: self._queue.put(_Interfaces(dict(ifaces))),
                                         refresh_interval=self.boot_config.InterfaceRefreshInterval)
        self._syncer.start()
        self._monitor.start()
        try:
            while not self._stop.is_set():
                self._drain(self._wait_time())
                if self.exit_code is not None:
                    return self.exit_code
                self._step()
                if self.exit_code is not None:
                    return self.exit_code
            return 0
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self.status_reporter is not None:
            self.status_reporter.stop()
        if self.live_migration_shell is not None:
            self.live_migration_shell.close()
        if self._monitor is not None:
            self._monitor.stop()
        if self._syncer is not None:
            self._syncer.stop(10)
        self.health.stop_http()
        if self._metrics_server is not None:
            self._metrics_server.stop()

    def _on_syncer_fatal(self, exc: BaseException) -> None:
        log.error("datastore syncer stopped: %s; exiting so the agent restarts", exc)
        self.exit_code = 1
        self._queue.put(None)

    # -- the loop ---------------------------------------------------------------------------

    def _wait_time(self) -> float:
        now = time.monotonic()
        deadline = self._next_status_report
        if self._applied_once:
            deadline = min(deadline, self._next_apply_at)
        if self._dirty and self._retry_at:
            deadline = min(deadline, self._retry_at)
        timer = self.live_migration_shell.next_deadline() if self.live_migration_shell is not None else None
        if timer is not None:
            deadline = min(deadline, timer)
        return max(0.0, min(deadline - now, 1.0))

    def _drain(self, timeout: float) -> None:
        """Take everything queued (waiting up to ``timeout`` for the first item)."""
        try:
            item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        while item is not None or not self._queue.empty():
            if item is not None:
                self._handle(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        if self.metrics is not None:
            self.metrics.end_interface_batch()

    def _handle(self, item) -> None:
        if isinstance(item, _Updates):
            timed = self.metrics is not None or self._early_updates is not None
            started = time.monotonic() if timed else 0.0
            self.pipeline.on_updates(item.updates)
            self._dirty = True
            if self.metrics is not None:
                self.metrics.observe_calc_updates(time.monotonic() - started, count_key_types(item.updates))
                self.metrics.set_calc_stats(self.pipeline.policy.stats())
            elif self._early_updates is not None:
                count_key_types(item.updates, self._early_updates)
                self._early_seconds += time.monotonic() - started
        elif isinstance(item, _Status):
            self._status = item.status
            self.pipeline.on_status(item.status)
            if self.metrics is not None:
                self.metrics.set_sync_status(item.status)
            self._report_calc(item.status is SyncStatus.IN_SYNC)
            self._dirty = True
        elif isinstance(item, _Interfaces):
            if self.metrics is not None:
                self.metrics.note_interfaces(item.interfaces)
            self._interfaces = item.interfaces
            self.pipeline.set_interfaces(addresses_by_name(item.interfaces))
            self._dirty = True
        elif isinstance(item, _GARPSeen):
            if self.live_migration is not None:
                self._live_migration_actions(self.live_migration.on_garp_detected(item.wid))

    def _step(self) -> None:
        now = time.monotonic()
        if now >= self._next_status_report:
            self._report_calc(self._status is SyncStatus.IN_SYNC)
            self._report_dataplane()
            self._next_status_report = now + STATUS_REPORT_INTERVAL
        if not self.pipeline.in_sync or self._interfaces is None:
            return  # never a partial picture
        messages = self.pipeline.complete()
        self._follow_live_migration(messages)
        if self.pipeline.config_error is not None:
            # Felix refuses to start with such a configuration; program nothing, stay
            # unready, and restart when the configuration changes.
            self._early_updates = None  # (no metrics before that restart)
            self._report_dataplane(ready=False)
            if self.pipeline.config_changed:
                log.info("Exiting for config change")
                self.exit_code = CONFIG_CHANGED_RC
            return
        if self.pipeline.config is not None and not self.iptables:
            self._start_dataplane()
            self._config_generation = self.pipeline.config_generation
            if self.exit_code is not None:
                return
        elif self.pipeline.config_generation != self._config_generation:
            self._config_generation = self.pipeline.config_generation
            log.info("configuration changed (no restart needed): applying the health timeouts")
            hl.apply_health_config(self.health, self.pipeline.config)
        if messages and self.metrics is not None:
            self.metrics.count_messages(messages)
            # Felix's batch size counts the calculation's messages it drained, plus one
            # (its counter starts at 1 before the first message adds itself).
            self.metrics.observe_batch(len(messages) + 1)
        if self.pipeline.config_changed:
            log.info("Exiting for config change")
            self.exit_code = CONFIG_CHANGED_RC
            return
        if not self._datastore_ready():
            return
        if not self._dirty and now < self._next_apply_at:
            return
        if self._retry_at and now < self._retry_at:
            return
        self._apply()

    # -- live migration ---------------------------------------------------------------------

    def _follow_live_migration(self, messages: list) -> None:
        """Feed the endpoint updates to the live migration machines (made once the
        configuration is known) and fire the convergence timers that are due."""
        if self.live_migration is None:
            if self.pipeline.config is None or self.pipeline.config_error is not None:
                return
            self.live_migration = LiveMigrationMonitor(self.pipeline.config.LiveMigrationRouteConvergenceTime)
            self.live_migration_shell = LiveMigrationShell(
                lambda wid: self._queue.put(_GARPSeen(wid)), OwnerSwapper(self._ipam_client))
        if messages:
            self._live_migration_actions(self.live_migration.on_messages(messages))
        for wid in self.live_migration_shell.due():
            self._live_migration_actions(self.live_migration.on_timer_pop(wid))

    def _live_migration_actions(self, actions: list) -> None:
        self.live_migration_shell.execute(actions)
        if self.live_migration.take_state_changes():
            self._dirty = True  # the routes of the endpoints concerned change

    def _ipam_client(self):
        """An IPAM client on the agent's datastore, for one owner swap (etcd or Kubernetes)."""
        from node.ipam.allocator import IPAM

        return IPAM(self._kv_factory())

    def _datastore_ready(self) -> bool:
        if self.pipeline.cluster_info.get("datastoreReady") is False:
            log.warning("ClusterInformation says the datastore is not ready; not programming")
            self._report_dataplane(ready=False)
            return False
        return True

    # -- the dataplane ----------------------------------------------------------------------

    def _start_dataplane(self) -> None:
        config = self.pipeline.config
        # As Felix: the log level from the merged configuration (so `calicoctl patch
        # felixconfiguration default` with logSeverityScreen takes effect at the restart).
        if self._manage_log_level:
            apply_log_level(config.LogSeverityScreen)
            apply_debug_file_filter(config.LogDebugFilenameRegex)
        load_conntrack_sctp()
        for feature in unsupported_features(config):
            log.warning("Not supported by this agent: %s", feature)
        # Felix writes the MTU file for the CNI plugin as it builds its dataplane, before
        # programming anything, and with RequireMTUFile gives up when it cannot.
        mtu = host_mtu(self._interfaces or {}, config.MTUIfacePattern)
        if self.mtu_file.apply(self.pipeline.pod_mtu(mtu), mtu) is not None and config.RequireMTUFile:
            log.error("RequireMTUFile is set and the MTU file cannot be written: exiting")
            self.exit_code = 1
            return
        if config.DataplaneWatchdogTimeout != self.boot_config.DataplaneWatchdogTimeout:
            # The datastore changed the watchdog: register afresh, then re-report.
            hl.register_felix_reporters(self.health, config.DataplaneWatchdogTimeout)
            self.health.report(hl.FELIX_STARTUP, live=True, ready=True)
            self._report_calc(True)
            self._report_dataplane()
        hl.apply_health_config(self.health, config)
        if config.PrometheusMetricsEnabled:
            # Imported only here: prometheus_client and what it loads cost about 4 MB of
            # the agent's memory, and Felix's default is metrics off.
            from node.felix.metrics import FelixMetrics, start_metrics_server

            self._metrics_started(FelixMetrics.from_config(config))
            self._metrics_server = start_metrics_server(self.metrics, config)
        self._early_updates = None
        backend = detect_backend(config.IptablesBackend)
        for version, dp in self.pipeline.dataplanes.items():
            self.iptables[version] = iptables_from_config(version, dp.tables, config, backend=backend,
                                                          features=self.pipeline.features,
                                                          on_still_alive=self._report_dataplane)
            self.ipsets[version] = IPSetsDataplane(dp.ipsets, refresh_interval=config.IpsetsRefreshInterval)
        # Each dataplane re-reads the kernel on its own interval when applied; apply at least
        # that often even when nothing changed.
        self._periods = [p for p in (config.IpsetsRefreshInterval, config.RouteRefreshInterval) if p > 0]
        self.routes = RouteDataplane.from_felix(config)
        self.qos = QoSDataplane.from_felix(config)
        prefix = endpoint_status_prefix(config.EndpointStatusPathPrefix, self.env,
                                        configured="EndpointStatusPathPrefix" in config.sources)
        if prefix:
            self.status_files = StatusFileWriter(prefix)
            self._periods.append(REAPPLY_INTERVAL)  # the directory is re-read that often
            log.info("writing endpoint status files under %s", self.status_files.directory)
        self._start_status_reports(config)
        log.info("dataplane started for %s: iptables %s backend, IPv%s", self.hostname, backend,
                 "/".join(str(v) for v in self.pipeline.dataplanes))

    def _metrics_started(self, metrics: FelixMetrics) -> None:
        """Take ``metrics`` on: hand them what they watch, the updates counted before they
        existed and the calculation's gauges as they stand."""
        self.metrics = metrics
        metrics.watch(self.pipeline.policy.ipset_members, self._interfaces)
        if self._early_updates:
            metrics.observe_calc_updates(self._early_seconds, self._early_updates)
        metrics.set_calc_stats(self.pipeline.policy.stats())

    def _apply(self) -> None:
        """Felix's apply: IP set updates, tables, IP set deletions; routes alongside."""
        started = time.monotonic()
        failures = []
        for version, sets in self.ipsets.items():
            try:
                sets.apply_updates()
            except IPSetsError as exc:
                failures.append(f"IP sets (IPv{version}): {exc}")
        reschedule = list(self._periods)
        # As Felix: no table is written until the IP sets are, so no rule goes live against
        # a set that is missing or half updated (the retry re-reads and tries both again).
        for version, ipt in (self.iptables.items() if not failures else ()):
            try:
                stats = ipt.apply()
                if stats.reschedule_after is not None:
                    reschedule.append(stats.reschedule_after)
            except IptablesError as exc:
                failures.append(f"iptables (IPv{version}): {exc}")
        self._next_apply_at = time.monotonic() + (min(reschedule) if reschedule else STATUS_REPORT_INTERVAL)
        if not failures:
            for version, sets in self.ipsets.items():
                try:
                    if sets.apply_deletions():
                        self._dirty = True  # more deletions pending
                except IPSetsError as exc:
                    failures.append(f"IP sets (IPv{version}): {exc}")
        # The workload endpoint in charge of each interface, for the routes, QoS and status parts.
        active = next(iter(self.pipeline.dataplanes.values())).active_workload_endpoints()
        migrating = (states_by_interface(self.live_migration.states, active)
                     if self.live_migration is not None else None)
        try:
            mtu = host_mtu(self._interfaces, self.pipeline.config.MTUIfacePattern)
            self.mtu_file.apply(self.pipeline.pod_mtu(mtu), mtu)  # again when it changes
            result = self.routes.apply(self.pipeline.desired_routes(host_mtu=mtu, default_rp_filter=self._rp_filter,
                                                                    live_migration=migrating),
                                       self._interfaces)
            recheck = self.routes.recheck_after()
            if recheck is not None:  # a new interface's grace period: clean up once it ends
                self._next_apply_at = min(self._next_apply_at, time.monotonic() + recheck + 0.05)
            if not result.in_sync:
                failures.append("routes: " + "; ".join(str(f) for f in result.failures))
        except OSError as exc:
            failures.append(f"routes: {exc}")
        if self.qos is not None:
            self._apply_qos(active)
        if self._applied_once or not failures:
            # As Felix's reporter: nothing until the dataplane has been fully in sync once
            # (the old run's files stay until then), then after every apply. Both the
            # status files and the datastore reports follow the same endpoint statuses.
            reporting = self.status_reporter is not None and self.status_reporter.endpoint_reporting
            if self.status_files is not None or reporting:
                statuses = self._workload_statuses(active)
                if self.status_files is not None:
                    self._write_status_files(active, statuses)
                if reporting:
                    self._report_endpoint_statuses(statuses)
        release_freed_memory()
        self._record_apply(time.monotonic() - started, failures)

    def _apply_qos(self, active: Mapping) -> None:
        """The workloads' bandwidth limits (tc token buckets). A failure is logged by the
        QoS dataplane with its interface and endpoint and retried soon, but does not fail
        the apply (Felix only logs it)."""
        result = self.qos.apply(active, self._interfaces)
        if not result.in_sync:
            self._next_apply_at = min(self._next_apply_at, time.monotonic() + QOS_RETRY_INTERVAL)

    def _workload_statuses(self, active: Mapping) -> dict:
        """Each active local workload's status (up or down) after this apply."""
        up, unconfigured = self._endpoint_conditions()
        return workload_statuses(active, up, unconfigured, self.pipeline.peering_addresses, self.pipeline.dataplanes)

    def _write_status_files(self, active: Mapping, statuses: Mapping) -> None:
        """Felix's endpoint status files, once the endpoints' rules are in: a file for each
        active local workload whose interface is up and configured. A failure here is
        retried soon but does not fail the apply (Felix reports from its own loop)."""
        failures = tuple(self.status_files.apply(desired_status_files(active, (), statuses=statuses)))
        if failures:
            if failures != self._status_failures:
                for failure in failures:
                    log.warning("endpoint status: %s; will retry", failure)
            self._next_apply_at = min(self._next_apply_at, time.monotonic() + 1.0)
        self._status_failures = failures

    def _endpoint_conditions(self) -> tuple[list[str], frozenset[str]]:
        """The oper-up interfaces, and those whose configuration failed at the last apply:
        what an endpoint's status depends on besides the endpoint."""
        up = [name for name, iface in (self._interfaces or {}).items() if iface.oper_up]
        return up, self.routes.unconfigured if self.routes is not None else frozenset()

    # -- status reports to the datastore ----------------------------------------------------

    def _start_status_reports(self, config) -> None:
        """Felix's process status reports (ReportingIntervalSecs) and, when enabled, its
        endpoint status reports, written by a thread of their own (node/felix/status_reporter.py)."""
        reporter = StatusReporter.from_felix(self._kv_factory, self.hostname, config)
        if not reporter.enabled:
            log.info("status reports to the datastore are off")
            return
        self.status_reporter = reporter
        reporter.start()
        what = [f"the agent's every {reporter.interval:g}s"] if reporter.interval > 0 else []
        if reporter.endpoint_reporting:
            what.append(f"endpoints' (at most one write every {reporter.endpoint_delay:g}s)")
        log.info("reporting status to the datastore under %s: %s", reporter.region, " and ".join(what))

    def _report_endpoint_statuses(self, workloads: Mapping) -> None:
        """Hand the endpoint statuses after this apply to the reporter (it never blocks)."""
        reporter = self.status_reporter
        up, _ = self._endpoint_conditions()
        hosts = host_endpoint_statuses((dp.host_endpoint_interfaces() for dp in self.pipeline.dataplanes.values()), up)
        reporter.set_endpoint_statuses(desired_endpoint_reports(self.hostname, reporter.region, workloads, hosts))

    def _record_apply(self, seconds: float, failures: list[str]) -> None:
        if self.metrics is not None:
            self.metrics.observe_apply(seconds)
            self._export_counters()
        if failures:
            self._failed_applies += 1
            for failure in failures:
                log.error("dataplane apply failed, will retry after a fresh read: %s", failure)
            if self._failed_applies == FAILED_APPLIES_BEFORE_UNREADY:
                log.error("the dataplane has failed %d applies in a row: reporting not ready until one succeeds",
                          self._failed_applies)
                self._report_dataplane()
            if self.metrics is not None:
                self.metrics.count_apply_failure()
            for ipt in self.iptables.values():
                ipt.refresh()
            for sets in self.ipsets.values():
                sets.queue_resync()  # (read again by the retry's apply, whose failure it reports)
            if self.routes is not None:
                self.routes.refresh()
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, MAX_RETRY)
            self._dirty = True
            return
        if not self._applied_once:
            log.info("first dataplane apply after in-sync complete (%.3fs)", seconds)
        elif self._failed_applies >= FAILED_APPLIES_BEFORE_UNREADY:
            log.info("dataplane apply succeeded after %d failures: ready again", self._failed_applies)
        self._applied_once = True
        self._failed_applies = 0
        self._retry_at = 0.0
        self._retry_delay = MIN_RETRY
        self._dirty = False
        self._report_dataplane()

    def _export_counters(self) -> None:
        """Move the dataplanes' cumulative counters into Felix's metrics (as deltas)."""
        m, seen = self.metrics, self._exported
        for version, ipt in self.iptables.items():
            c = ipt.counters
            calls, errors, saves, save_errors = (c.restore_calls, c.restore_errors, c.save_calls, c.save_errors)
            last = seen.get(("iptables", version), (0, 0, 0, 0, {}))
            for _ in range((calls - last[0]) - (errors - last[1])):
                m.count_iptables_restore()
            for _ in range(errors - last[1]):
                m.count_iptables_restore(failed=True)
            for _ in range((saves - last[2]) - (save_errors - last[3])):
                m.count_iptables_save()
            for _ in range(save_errors - last[3]):
                m.count_iptables_save(failed=True)
            for table, lines in c.lines_executed.items():
                if lines - last[4].get(table, 0):
                    m.count_iptables_lines(version, table, lines - last[4].get(table, 0))
            seen[("iptables", version)] = (calls, errors, saves, save_errors, dict(c.lines_executed))
            for table, (chains, rules) in ipt.table_sizes().items():
                m.set_iptables_table(version, table, chains=chains, rules=rules)
        for version, sets in self.ipsets.items():
            st = sets.stats
            last = seen.get(("ipsets", version), (0, 0, 0))
            calls, lines, errors = st.restore_calls, st.lines, st.errors
            new_calls = calls - last[0]
            if new_calls:
                m.count_ipset_call(lines=lines - last[1])
                for _ in range(new_calls - 1):
                    m.count_ipset_call()
            for _ in range(errors - last[2]):
                m.counters["felix_ipset_errors"].inc()
            seen[("ipsets", version)] = (calls, lines, errors)
            m.set_ipsets(version, st.sets)
            m.set_ipsets_total(st.sets_after_updates)  # (the last family's stays, as in Felix)
            for seconds in _drain(st.exec_starts):
                m.observe_exec(seconds)
        if self.routes is not None:
            rs = self.routes.stats
            for seconds in _drain(rs.resync_seconds):
                m.observe_route_resync(seconds)
            for seconds in _drain(rs.conntrack_waits):
                m.observe_conntrack_wait(seconds)
            for version, routes in rs.managed.items():
                m.set_routes(version, 0, routes)
                m.set_route_ifaces(version, 0, rs.ifaces)

    # -- health -----------------------------------------------------------------------------

    def _report_calc(self, in_sync: bool) -> None:
        self.health.report(hl.CALC_GRAPH, live=True, ready=in_sync)

    def _report_dataplane(self, ready: bool | None = None) -> None:
        if ready is None:
            ready = (self._applied_once and self._interfaces is not None
                     and self._failed_applies < FAILED_APPLIES_BEFORE_UNREADY)
        self.health.report(hl.DATAPLANE, live=True, ready=ready)


def _drain(observations: list[float]) -> list[float]:
    """Take every pending observation out of a dataplane's list."""
    taken = observations[:]
    del observations[:len(taken)]
    return taken


def endpoint_status_prefix(value: str, env: Mapping[str, str], configured: bool = False) -> str:
    """Where endpoint status files go: ``EndpointStatusPathPrefix`` (empty turns them off).
    Left at its default (/var/run/calico), it moves with ``CALICO_RUN_DIR`` as the node's
    other run files do; our confd follows, and Calico's CNI plugin then needs its
    ``endpoint_status_dir`` pointed there."""
    if not configured and value == DEFAULT_RUN_DIR and env.get("CALICO_RUN_DIR"):
        return env["CALICO_RUN_DIR"]
    return value


def _read_default_rp_filter(path: str = "/proc/sys/net/ipv4/conf/default/rp_filter") -> str:
    """Felix copies the host's default rp_filter onto workload interfaces (read at start)."""
    try:
        with open(path) as fh:
            return fh.read().strip() or "1"
    except OSError:
        return "1"
