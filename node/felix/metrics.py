"""The policy agent's Prometheus metrics: Felix's ``felix_*`` names, types, help texts and
labels, served at ``/metrics`` the way Felix's Go client serves them.

``FelixMetrics`` owns a prometheus_client registry holding the felix_* families, the
process collector with the three families Go's adds (``GoProcessExtras``; all unless
PrometheusProcessMetricsEnabled is false) and Python's runtime
collectors in place of Go's (unless PrometheusGoMetricsEnabled is false). Its methods are
what the agent loop calls; each names the Felix code path that moves the metric.

Two things prometheus_client cannot say the way Felix does, so they are done here:
Felix's counters carry no ``_total`` suffix (``felix_ipset_calls``, not
``felix_ipset_calls_total``) and its summaries publish 0.5/0.9/0.99 quantiles over a
10-minute window. ``exposition()`` therefore writes the text format itself, with Go's
float formatting, sorted families and no ``_created`` series.

The endpoint is plain HTTP, or HTTPS with optional client certificates when the
PrometheusMetrics{Cert,Key,CA}File parameters are set (node/felix/metrics_tls.py).
"""
from __future__ import annotations

import bisect
import gzip
import logging
import math
import random
import threading
import time
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, GCCollector, Gauge, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from node.felix.httpserve import BackgroundHTTPServer, Request, Response
from node.felix.metrics_tls import MetricsTLS, MetricsTLSError, tls_requested
from node.gofloat import format_float64

log = logging.getLogger(__name__)

# libcalico-go's summaries: these quantiles over Go's default window (10 minutes in 5
# buckets: the window covers the last 8 to 10 minutes).
QUANTILES = (0.5, 0.9, 0.99)
WINDOW = 600.0
AGE_BUCKETS = 5
RESERVOIR = 2048  # samples kept per bucket; beyond it quantiles are estimated

# libcalico-go's api.SyncStatus -> felix_resync_state.
RESYNC_STATE = {"wait-for-ready": 1, "resync": 2, "in-sync": 3}

# prometheus/common's text format as Go's promhttp negotiates it by default.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ESCAPINGS = ("allow-utf-8", "underscores", "dots", "values")


# -- Felix's families (felix/calc, felix/dataplane/linux, felix/iptables, felix/ipsets,
# felix/routetable, felix/daemon at v3.32.1) ---------------------------------------------

_GAUGES = (
    ("felix_active_local_endpoints", "Number of active endpoints on this host.", ()),
    ("felix_active_local_policies", "Number of active policies on this host.", ()),
    ("felix_active_local_selectors", "Number of active selectors on this host.", ()),
    ("felix_cluster_num_hosts", "Total number of calico hosts in the cluster.", ()),
    ("felix_cluster_num_host_endpoints", "Total number of host endpoints cluster-wide.", ()),
    ("felix_cluster_num_workload_endpoints", "Total number of workload endpoints cluster-wide.", ()),
    ("felix_cluster_num_tiers", "Total number of tiers cluster-wide.", ()),
    ("felix_cluster_num_policies", "Total number of policies cluster-wide.", ()),
    ("felix_cluster_num_profiles", "Total number of profiles cluster-wide.", ()),
    ("felix_resync_state", "Current datastore state.", ()),
    ("felix_int_dataplane_initial_resync_time_seconds",
     "Time in seconds that it took to do the initial resync with the dataplane and bring the "
     "dataplane into sync for the first time.", ()),
    ("felix_iptables_chains", "Number of active iptables chains.", ("ip_version", "table")),
    ("felix_iptables_rules", "Number of active iptables rules.", ("ip_version", "table")),
    ("felix_ipsets_calico", "Number of active Calico IP sets.", ("ip_version",)),
    ("felix_ipsets_total", "Total number of active IP sets.", ()),
    ("felix_route_table_num_routes",
     "Number of routes that Felix is managing in the particular routing table.", ("table",)),
    ("felix_route_table_num_ifaces",
     "Number of interfaces that Felix is monitoring for the particular routing table.", ("table",)),
)

_COUNTERS = (
    ("felix_resyncs_started", "Current datastore state.", ()),  # sic: Felix reuses the help text
    ("felix_calc_graph_updates_processed",
     "Number of datastore updates processed by the calculation graph.", ("type",)),
    ("felix_calc_graph_output_events", "Number of events emitted by the calculation graph.", ()),
    ("felix_int_dataplane_failures", "Number of times dataplane updates failed and will be retried.", ()),
    ("felix_int_dataplane_messages", "Number dataplane messages by type.", ("type",)),
    ("felix_iptables_restore_calls", "Number of iptables-restore calls.", ()),
    ("felix_iptables_restore_errors", "Number of iptables-restore errors.", ()),
    ("felix_iptables_save_calls", "Number of iptables-save calls.", ()),
    ("felix_iptables_save_errors", "Number of iptables-save errors.", ()),
    ("felix_iptables_lines_executed", "Number of iptables rule updates executed.", ("ip_version", "table")),
    ("felix_ipset_calls", "Number of ipset commands executed.", ()),
    ("felix_ipset_errors", "Number of ipset command failures.", ()),
    ("felix_ipset_lines_executed", "Number of ipset operations executed.", ()),
    ("felix_logs_dropped", "Number of logs dropped because the output stream was blocked.", ()),
    ("felix_log_errors", "Number of errors encountered while logging.", ()),
)

_SUMMARIES = (
    ("felix_calc_graph_update_time_seconds",
     "Seconds to update calculation graph for each datastore OnUpdate call."),
    ("felix_int_dataplane_apply_time_seconds",
     "Time in seconds for each incremental update to the dataplane (after the initial resync)."),
    ("felix_int_dataplane_msg_batch_size",
     "Number of messages processed in each batch. Higher values indicate we're doing more "
     "batching to try to keep up."),
    ("felix_int_dataplane_iface_msg_batch_size",
     "Number of interface state messages processed in each batch. Higher values indicate "
     "we're doing more batching to try to keep up."),
    ("felix_int_dataplane_addr_msg_batch_size",
     "Number of interface address messages processed in each batch. Higher values indicate "
     "we're doing more batching to try to keep up."),
    ("felix_route_table_resync_seconds", "Time taken to list all the routes during a resync."),
    # Not felix_route_table_partial_resync_seconds ("Time taken to resync the routes of a
    # single interface."): Felix re-lists one interface's routes when it comes up, but the
    # route dataplane here re-reads the whole table then (node/felix/dataplane/routes.py,
    # observed above), so it has nothing to put there, and Felix would not show it empty
    # once a workload interface has come up.
    ("felix_route_table_conntrack_wait_seconds", "Time waiting for conntrack cleanups to finish."),
    ("felix_exec_time_micros", "Summary of time taken to fork/exec child processes"),
)

# felix/labelindex's families (name, type, help), read from the IP set member index when
# scraped.
LABEL_INDEX_FAMILIES = (
    ("felix_label_index_num_endpoints", "gauge", "Total number of endpoints and similar objects in the index."),
    ("felix_label_index_selector_evals", "counter", "Total number of selector evaluations."),
    ("felix_label_index_num_active_selectors", "gauge",
     "Total number of active selectors in the policy rule label index."),
    ("felix_label_index_strategy_evals", "counter", "Total number of index scans broken down by scan strategy."),
)

FELIX_HOST_HELP = (
    "Configured Felix hostname (as a label), typically used in grouping/aggregating stats; the "
    "label defaults to the hostname of the host but can be overridden by configuration. The "
    "value of the gauge is always set to 1.")


class GoCounter(Collector):
    """A counter (optionally labelled) exposed under its exact name, as Go's client does."""

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = ()):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._values: dict[tuple[str, ...], float] = {} if self.labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, *labelvalues: str) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labelvalues)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labelvalues: str) -> float:
        with self._lock:
            return self._values.get(self._key(labelvalues), 0.0)

    def _key(self, labelvalues: tuple) -> tuple[str, ...]:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labelvalues}")
        return tuple(str(v) for v in labelvalues)

    def collect(self):
        metric = Metric(self.name, self.documentation, "counter")
        with self._lock:
            items = sorted(self._values.items())
        for key, value in items:
            metric.add_sample(self.name, dict(zip(self.labelnames, key)), value)
        yield metric


class _Reservoir:
    """Observations of one age bucket: a count and at most RESERVOIR of them (uniform sample)."""

    __slots__ = ("count", "values")

    def __init__(self) -> None:
        self.count = 0
        self.values: list[float] = []

    def add(self, value: float, rng: random.Random) -> None:
        self.count += 1
        if len(self.values) < RESERVOIR:
            self.values.append(value)
        else:
            slot = rng.randrange(self.count)
            if slot < RESERVOIR:
                self.values[slot] = value


class QuantileSummary(Collector):
    """A summary with Felix's quantiles (0.5, 0.9, 0.99) over Go's sliding window.

    Like Go's, the window is cut into AGE_BUCKETS slots of WINDOW/AGE_BUCKETS and covers the
    current slot and the four before it; an empty window gives NaN quantiles. Quantiles
    are exact (nearest rank) until a slot holds more than RESERVOIR observations, then
    estimated from a uniform sample of each slot. ``_sum`` and ``_count`` are all-time.
    """

    def __init__(self, name: str, documentation: str, clock: Callable[[], float] = time.monotonic,
                 seed: int = 0):
        self.name = name
        self.documentation = documentation
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._slot_len = WINDOW / AGE_BUCKETS
        self._slots: dict[int, _Reservoir] = {}
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        self.observe_many(value, 1)

    def observe_many(self, value: float, count: int) -> None:
        """``count`` observations of ``value`` (under one lock)."""
        if count <= 0:
            return
        with self._lock:
            reservoir = self._slots.setdefault(self._current_slot(), _Reservoir())
            for _ in range(count):
                reservoir.add(value, self._rng)
            self._sum += value * count
            self._count += count

    def _current_slot(self) -> int:
        slot = int(self._clock() // self._slot_len)
        for old in [s for s in self._slots if s <= slot - AGE_BUCKETS]:
            del self._slots[old]
        return slot

    def quantiles(self) -> dict[float, float]:
        with self._lock:
            self._current_slot()
            weighted = []
            total = 0.0
            for reservoir in self._slots.values():
                weight = reservoir.count / len(reservoir.values)
                weighted.extend((v, weight) for v in reservoir.values)
                total += reservoir.count
        if not weighted:
            return {q: math.nan for q in QUANTILES}
        weighted.sort()
        cumulative, acc = [], 0.0
        for _, weight in weighted:
            acc += weight
            cumulative.append(acc)
        out = {}
        for q in QUANTILES:
            rank = max(1.0, math.ceil(q * total - 1e-9))
            index = min(bisect.bisect_left(cumulative, rank - 1e-9), len(weighted) - 1)
            out[q] = weighted[index][0]
        return out

    def collect(self):
        quantiles = self.quantiles()
        with self._lock:
            total, count = self._sum, self._count
        metric = Metric(self.name, self.documentation, "summary")
        for q in QUANTILES:
            metric.add_sample(self.name, {"quantile": _go_float(q)}, quantiles[q])
        metric.add_sample(self.name + "_sum", {}, total)
        metric.add_sample(self.name + "_count", {}, count)
        yield metric


class _LabelIndexCollector(Collector):
    """Felix's label index families, read from the watched IP set member index (Felix's
    SelectorAndNamedPortIndex) at each scrape; until one is watched, what Felix shows at
    its start. The index counts its work itself, so the start-of-day scans count too.

    * num_endpoints: the endpoints and network sets in the index.
    * num_active_selectors: the IP sets' selectors, ``optimized`` when the index files
      them under label values or names (an endpoint update then evaluates them only if
      it has one), as Felix's label restriction index does; ours also narrows an ``||``
      of different labels, which Felix counts as unoptimized.
    * strategy_evals: each scan of the endpoints for a new IP set's selector, by strategy
      ("endpoint-" and Felix's strategy names; our index holds inherited labels, so a
      scan is never of the parents); terms on several labels unioned count as
      "multi-value", where Felix would scan everything.
    * selector_evals: the selector evaluations those scans made, by ``result``; a
      selector that the index answers alone (``a == "x"``, ``has(a)``, ``a in {...}``
      and conjunctions of these) makes none.
    """

    def __init__(self) -> None:
        self.source = None  # an IPSetMemberIndex (node/felix/calc/members.py)

    def collect(self):
        source = self.source
        endpoints, narrowed, unnarrowed, scans, (true, false) = 0, 0, 0, {}, (0, 0)
        if source is not None:  # (len()s and C-level copies: safe beside the agent thread)
            index = source.label_index
            endpoints = source.endpoint_count()
            narrowed, unnarrowed = index.selector_counts()
            scans, (true, false) = dict(index.scans), tuple(index.evaluations)
        samples = {
            "felix_label_index_num_endpoints": [({}, endpoints)],
            "felix_label_index_selector_evals": [({"result": "false"}, false), ({"result": "true"}, true)],
            "felix_label_index_num_active_selectors": [({"optimized": "false"}, unnarrowed),
                                                       ({"optimized": "true"}, narrowed)],
            "felix_label_index_strategy_evals": [({"strategy": "endpoint-" + strategy}, count)
                                                 for strategy, count in sorted(scans.items())],
        }
        for name, typ, documentation in LABEL_INDEX_FAMILIES:
            metric = Metric(name, documentation, typ)
            for labels, value in samples[name]:
                metric.add_sample(name, labels, value)
            yield metric


class GoProcessExtras(Collector):
    """The families Go's process collector (client_golang v1.23, Felix v3.32.1's) has
    beyond prometheus_client's ProcessCollector: the address-space limit and the
    network traffic of the process's network namespace, read from /proc as Go's procfs
    reads them. An unlimited address space is procfs's 2^64-1; a file that cannot be
    read leaves its families out."""

    def __init__(self, proc: str = "/proc/self"):
        self.proc = proc

    def collect(self):
        try:
            with open(f"{self.proc}/limits") as f:
                for line in f:
                    if line.startswith("Max address space"):
                        soft = line[len("Max address space"):].split()[0]
                        limit = float(2 ** 64 - 1) if soft == "unlimited" else float(int(soft))
                        metric = Metric("process_virtual_memory_max_bytes",
                                        "Maximum amount of virtual memory available in bytes.", "gauge")
                        metric.add_sample("process_virtual_memory_max_bytes", {}, limit)
                        yield metric
                        break
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(f"{self.proc}/net/netstat") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for names, values in zip(lines[::2], lines[1::2]):
            if not names.startswith("IpExt:"):
                continue
            fields = dict(zip(names.split()[1:], values.split()[1:]))
            for key, name, help_text in (
                    ("InOctets", "process_network_receive_bytes_total",
                     "Number of bytes received by the process over the network."),
                    ("OutOctets", "process_network_transmit_bytes_total",
                     "Number of bytes sent by the process over the network.")):
                if key in fields:
                    metric = Metric(name, help_text, "counter")
                    metric.add_sample(name, {}, float(fields[key]))
                    yield metric


class _CountingErrors:
    """A logging handler's ``handleError`` that counts into felix_log_errors first."""

    def __init__(self, handler: logging.Handler, counter: "GoCounter"):
        self.original = handler.handleError
        self.counter = counter

    def __call__(self, record: logging.LogRecord) -> None:
        self.counter.inc()
        self.original(record)


class FelixMetrics:
    """Felix's metrics for this host, and the setters the agent loop calls."""

    def __init__(self, hostname: str, *, process_metrics: bool = True, runtime_metrics: bool = True,
                 clock: Callable[[], float] = time.monotonic, interface_excludes: Iterable = ()):
        self.registry = CollectorRegistry(auto_describe=True)
        self.gauges: dict[str, Gauge] = {}
        self.counters: dict[str, GoCounter] = {}
        self.summaries: dict[str, QuantileSummary] = {}
        for name, doc, labels in _GAUGES:
            self.gauges[name] = Gauge(name, doc, labels, registry=self.registry)
        for name, doc, labels in _COUNTERS:
            self.counters[name] = GoCounter(name, doc, labels)
            self.registry.register(self.counters[name])
        for name, doc in _SUMMARIES:
            self.summaries[name] = QuantileSummary(name, doc, clock)
            self.registry.register(self.summaries[name])
        host = Gauge("felix_host", FELIX_HOST_HELP, ["host"], registry=self.registry)
        host.labels(hostname).set(1)
        self._label_index = _LabelIndexCollector()
        self.registry.register(self._label_index)
        self.interface_excludes = tuple(interface_excludes)
        self._interfaces = None  # the interface picture last noted
        self._iface_batch = [0, 0]  # state and address notifications since the batch began
        if process_metrics:
            ProcessCollector(registry=self.registry)
            self.registry.register(GoProcessExtras())
        if runtime_metrics:
            GCCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._done_first_apply = False
        self._first_apply_lock = threading.Lock()
        self._calc_stats = None  # the CalcStats last set

    @classmethod
    def from_config(cls, config, clock: Callable[[], float] = time.monotonic) -> "FelixMetrics":
        """From a FelixConfig: FelixHostname, PrometheusProcessMetricsEnabled,
        PrometheusGoMetricsEnabled, InterfaceExclude."""
        return cls(config.FelixHostname, process_metrics=config.PrometheusProcessMetricsEnabled,
                   runtime_metrics=config.PrometheusGoMetricsEnabled, clock=clock,
                   interface_excludes=config.InterfaceExclude)

    def watch(self, ipset_members=None, interfaces: Mapping | None = None,
              logger: logging.Logger | None = None) -> None:
        """What the agent hands over once, when the metrics start: the IP set member index
        (``watch_label_index``), the interface picture it has (Felix's start-of-day batch
        of interface notifications) and the logger whose handlers' errors count
        (``count_log_errors``; the root logger when not given)."""
        if ipset_members is not None:
            self.watch_label_index(ipset_members)
        if interfaces is not None:
            self.note_interfaces(interfaces)
            self.end_interface_batch()
        self.count_log_errors(logger if logger is not None else logging.getLogger())

    # -- calculation graph ----------------------------------------------------------------

    def set_calc_stats(self, stats) -> None:
        """The calculation's gauges from a ``CalcStats`` (node/felix/calc/stats.py): this
        host's active endpoints, policies and selectors (Felix's policy resolver and calc
        graph) and the cluster-wide counts (its stats collector). Felix moves each as the
        update that changes it is processed; the agent sets them after each batch of
        updates, so they show the same values at batch boundaries. Unchanged values are
        not set again."""
        if stats == self._calc_stats:
            return
        self._calc_stats = stats
        gauges = self.gauges
        gauges["felix_active_local_endpoints"].set(stats.active_endpoints)
        gauges["felix_active_local_policies"].set(stats.active_policies)
        gauges["felix_active_local_selectors"].set(stats.active_selectors)
        gauges["felix_cluster_num_hosts"].set(stats.hosts)
        gauges["felix_cluster_num_workload_endpoints"].set(stats.workload_endpoints)
        gauges["felix_cluster_num_host_endpoints"].set(stats.host_endpoints)
        gauges["felix_cluster_num_tiers"].set(stats.tiers)
        gauges["felix_cluster_num_policies"].set(stats.policies)
        gauges["felix_cluster_num_profiles"].set(stats.profiles)

    def set_sync_status(self, status) -> None:
        """The syncer's status (a SyncStatus or its string): felix_resync_state 1/2/3, and a
        resync start counted each time it says "resync"."""
        value = str(status)
        self.gauges["felix_resync_state"].set(RESYNC_STATE[value])
        if value == "resync":
            self.counters["felix_resyncs_started"].inc()

    def observe_calc_updates(self, seconds: float, counts: Mapping[str, int]) -> None:
        """A batch of datastore updates the calculation took ``seconds`` over; ``counts``
        holds how many of each model key type it had (``WorkloadEndpointKey``,
        ``PolicyKey``..., see ``node.felix.calc.stats.update_key_type``). Felix times each
        update alone; the calculation here takes a batch in one pass, so each update is
        observed at the batch's mean (the summary's sum and count are Felix's, its
        quantiles are of batch means)."""
        total = sum(counts.values())
        if not total:
            return
        processed = self.counters["felix_calc_graph_updates_processed"]
        for key_type, n in counts.items():
            processed.inc(n, key_type)
        self.summaries["felix_calc_graph_update_time_seconds"].observe_many(seconds / total, total)

    def count_messages(self, messages: Iterable) -> None:
        """Messages the calculation emitted and the dataplane took (one batch): each is a
        calc graph output event and a dataplane message of its protobuf type
        (``WorkloadEndpointUpdate``..., see ``node.felix.calc.stats.message_type``)."""
        from node.felix.calc.stats import count_message_types

        counts = count_message_types(messages)
        received = self.counters["felix_int_dataplane_messages"]
        for message_type, n in counts.items():
            received.inc(n, message_type)
        self.counters["felix_calc_graph_output_events"].inc(sum(counts.values()))

    # -- label index (felix/labelindex) ------------------------------------------------------

    def watch_label_index(self, ipset_members) -> None:
        """Report on an ``IPSetMemberIndex`` (Felix's SelectorAndNamedPortIndex), read when
        scraped (see ``_LabelIndexCollector``)."""
        self._label_index.source = ipset_members

    # -- logging (felix/logutils) ---------------------------------------------------------

    def count_log_errors(self, logger: logging.Logger) -> None:
        """Count each error a handler of ``logger`` meets writing a record (its
        ``handleError``: a write that failed, a record that could not be formatted) in
        felix_log_errors. Felix also counts there the logs it drops when an output's queue
        is full; the agent writes its logs synchronously and drops none, so
        felix_logs_dropped stays at 0, as Felix's own does (Felix registers it but nothing
        increments it). Counting moves to these metrics if another set counted before."""
        for handler in logger.handlers:
            counting = handler.__dict__.get("handleError")
            if isinstance(counting, _CountingErrors):
                counting.counter = self.counters["felix_log_errors"]
            else:
                handler.handleError = _CountingErrors(handler, self.counters["felix_log_errors"])

    # -- dataplane loop --------------------------------------------------------------------

    def observe_batch(self, size: int) -> None:
        """Messages taken from the calculation graph in one batch."""
        self.summaries["felix_int_dataplane_msg_batch_size"].observe(size)

    def note_interfaces(self, interfaces: Mapping) -> None:
        """A new interface picture from the monitor: the state and address notifications
        Felix's interface monitor would have given since the last one join this batch."""
        from node.felix.dataplane.interfaces import interface_changes

        states, addrs = interface_changes(self._interfaces, interfaces, self.interface_excludes)
        self._interfaces = interfaces
        self._iface_batch[0] += states
        self._iface_batch[1] += addrs

    def end_interface_batch(self) -> None:
        """The end of a batch of the agent's inbox: its interface notifications, each kind
        observed when there were some (as Felix observes its interface update batches)."""
        states, addrs = self._iface_batch
        if states:
            self.summaries["felix_int_dataplane_iface_msg_batch_size"].observe(states)
        if addrs:
            self.summaries["felix_int_dataplane_addr_msg_batch_size"].observe(addrs)
        self._iface_batch = [0, 0]

    def observe_apply(self, seconds: float) -> None:
        """One dataplane apply: the first sets the initial-resync gauge, the rest feed the
        apply-time summary (Felix keeps the slow first one out of it)."""
        with self._first_apply_lock:
            first, self._done_first_apply = not self._done_first_apply, True
        if first:
            self.gauges["felix_int_dataplane_initial_resync_time_seconds"].set(seconds)
        else:
            self.summaries["felix_int_dataplane_apply_time_seconds"].observe(seconds)

    def count_apply_failure(self) -> None:
        """An apply that left the dataplane dirty (it will be retried)."""
        self.counters["felix_int_dataplane_failures"].inc()

    # -- iptables --------------------------------------------------------------------------

    def count_iptables_restore(self, *, failed: bool = False) -> None:
        self.counters["felix_iptables_restore_calls"].inc()
        if failed:
            self.counters["felix_iptables_restore_errors"].inc()

    def count_iptables_save(self, *, failed: bool = False) -> None:
        self.counters["felix_iptables_save_calls"].inc()
        if failed:
            self.counters["felix_iptables_save_errors"].inc()

    def set_iptables_table(self, ip_version: int, table: str, *, chains: int, rules: int) -> None:
        """Chains and rules programmed in one table (``ip_version`` 4 or 6, ``table`` "filter"...)."""
        self.gauges["felix_iptables_chains"].labels(str(ip_version), table).set(chains)
        self.gauges["felix_iptables_rules"].labels(str(ip_version), table).set(rules)

    def count_iptables_lines(self, ip_version: int, table: str, lines: int) -> None:
        """Lines of iptables-restore input written for one table."""
        self.counters["felix_iptables_lines_executed"].inc(lines, str(ip_version), table)

    # -- IP sets ---------------------------------------------------------------------------

    def count_ipset_call(self, *, failed: bool = False, lines: int = 0) -> None:
        """One ``ipset restore`` run with ``lines`` operations; failed ones also count as errors."""
        self.counters["felix_ipset_calls"].inc()
        if failed:
            self.counters["felix_ipset_errors"].inc()
        if lines:
            self.counters["felix_ipset_lines_executed"].inc(lines)

    def set_ipsets(self, ip_version: int, calico: int) -> None:
        """One family's Calico IP sets in the kernel after an apply, stale ones deleted
        (labelled "inet"/"inet6" as Felix does)."""
        self.gauges["felix_ipsets_calico"].labels("inet6" if ip_version == 6 else "inet").set(calico)

    def set_ipsets_total(self, total: int) -> None:
        """One family's Calico IP sets in the kernel once its creates and updates are in
        (before stale sets are deleted). Felix's gauge has no family label and each
        family's IP set writer sets it after its updates, so it shows one family's count:
        here the last family applied, IPv6 when it is on."""
        self.gauges["felix_ipsets_total"].set(total)

    def observe_exec(self, seconds: float) -> None:
        """Time to start a child process (ipset), in microseconds as Felix records it."""
        self.summaries["felix_exec_time_micros"].observe(seconds * 1e6)

    # -- routes ----------------------------------------------------------------------------

    def set_routes(self, ip_version: int, table_index: int, routes: int) -> None:
        """Routes managed in one routing table, labelled "IPv4:254" as Felix does (0 = main)."""
        index = table_index or 254
        self.gauges["felix_route_table_num_routes"].labels(f"IPv{ip_version}:{index}").set(routes)

    def set_route_ifaces(self, ip_version: int, table_index: int, ifaces: int) -> None:
        """Interfaces the route table follows (workload and tunnel devices), labelled as
        ``set_routes``."""
        index = table_index or 254
        self.gauges["felix_route_table_num_ifaces"].labels(f"IPv{ip_version}:{index}").set(ifaces)

    def observe_route_resync(self, seconds: float) -> None:
        self.summaries["felix_route_table_resync_seconds"].observe(seconds)

    def observe_conntrack_wait(self, seconds: float) -> None:
        """A route for a single address waited this long for its conntrack cleanup (0
        when none was pending), as Felix observes before each such route."""
        self.summaries["felix_route_table_conntrack_wait_seconds"].observe(seconds)

    # -- exposition ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Everything in the registry in Prometheus text format 0.0.4, as Felix serves it."""
        return exposition(self.registry)


# -- text format ------------------------------------------------------------------------

def _go_float(value: float) -> str:
    """A float as Go's Prometheus text writer prints it (strconv 'g', shortest; a zero
    is "0")."""
    return "0" if value == 0 else format_float64(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_TYPE_NAMES = {"unknown": "untyped", "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram"}


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in text format 0.0.4 with Go's conventions: families sorted by name and
    their metrics by labels, a counter named as its samples are, labels sorted (quantile/le
    last), no _created series, no empty labelled family."""
    families = []
    for family in registry.collect():
        samples = [s for s in family.samples if s.name != family.name + "_created"]
        if not samples:
            continue  # Go leaves out a labelled family until it has a child
        exposed = family.name
        if family.type in ("counter", "info") and samples:
            exposed = samples[0].name
        families.append((exposed, family, samples))
    out = []
    for exposed, family, samples in sorted(families, key=lambda item: item[0]):
        out.append(f"# HELP {exposed} {_escape_help(family.documentation)}")
        out.append(f"# TYPE {exposed} {_TYPE_NAMES.get(family.type, family.type)}")
        # Go orders a family's metrics by label values; a summary's own lines keep their order.
        samples = sorted(samples, key=lambda s: sorted(
            (k, v) for k, v in s.labels.items() if k not in ("quantile", "le")))
        for sample in samples:
            labels = sorted((k, v) for k, v in sample.labels.items() if k not in ("quantile", "le"))
            labels += [(k, sample.labels[k]) for k in ("quantile", "le") if k in sample.labels]
            label_text = ""
            if labels:
                label_text = "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"
            line = f"{sample.name}{label_text} {_go_float(sample.value)}"
            if sample.timestamp is not None:
                line += f" {int(float(sample.timestamp) * 1000)}"
            out.append(line)
    return ("\n".join(out) + "\n").encode() if out else b""


# -- endpoint ---------------------------------------------------------------------------

def _content_type(accept: str) -> str:
    """Go's promhttp text answer, echoing a recognised escaping scheme the client asked for."""
    escaping = "underscores"
    for part in accept.split(","):
        for param in part.split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key == "escaping" and value in _ESCAPINGS:
                escaping = value
    return f"{CONTENT_TYPE}; escaping={escaping}"


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def metrics_server(metrics: FelixMetrics, tls: MetricsTLS | None = None) -> BackgroundHTTPServer:
    """An (unstarted) server for ``/metrics`` only; other paths get Go's 404. Over TLS
    when given ``tls`` (node/felix/metrics_tls.py)."""

    def serve(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        body = metrics.exposition()
        response_headers = [("Content-Type", _content_type(headers.get("accept", "")))]
        if _accepts_gzip(headers.get("accept-encoding", "")):
            body = gzip.compress(body)
            response_headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, response_headers)

    if tls is None:
        return BackgroundHTTPServer("Prometheus http metrics", {"/metrics": serve})
    return BackgroundHTTPServer("Prometheus https metrics", {"/metrics": serve}, tls=tls.context)


def start_metrics_server(metrics: FelixMetrics, config, env: Mapping[str, str] | None = None
                         ) -> BackgroundHTTPServer | None:
    """Serve ``metrics`` on PrometheusMetricsHost:PrometheusMetricsPort when
    PrometheusMetricsEnabled (else None); the caller stops the returned server.

    Over TLS when PrometheusMetricsCertFile or PrometheusMetricsKeyFile is set, as Felix
    decides; when TLS cannot be set up (a file missing, unset or unreadable, a bad
    ``TLS_CIPHER_SUITES`` in ``env``) the error is logged and nothing is served (None),
    as Felix serves nothing then, and the agent carries on.
    """
    if not config.PrometheusMetricsEnabled:
        return None
    tls = None
    if tls_requested(config):
        try:
            tls = MetricsTLS.from_config(config, env)
        except MetricsTLSError as exc:
            log.error("Prometheus metrics enabled, but its https server cannot start: %s", exc)
            return None
        log.info("Prometheus metrics enabled.  Starting metrics https server. host=%s port=%s "
                 "clientAuth=%s", config.PrometheusMetricsHost, config.PrometheusMetricsPort,
                 config.PrometheusMetricsClientAuth)
    else:
        log.info("Prometheus metrics enabled.  Starting metrics http server. host=%s port=%s",
                 config.PrometheusMetricsHost, config.PrometheusMetricsPort)
    server = metrics_server(metrics, tls)
    server.start(config.PrometheusMetricsHost, config.PrometheusMetricsPort)
    return server
