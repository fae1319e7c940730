"""The policy agent's liveness and readiness (libcalico-go's ``health`` package as Felix
uses it), its HTTP endpoint, and the client calico-node's ``-felix-live``/``-felix-ready``
probes use.

Components register as named reporters and report ``live``/``ready`` as they work. Overall
*live* means every reporter that reports liveness said live within its timeout; overall
*ready* means the same for readiness (a reporter that stops reporting also stops being
ready). With no reporters the agent is live and ready. The endpoint answers
``/liveness`` and ``/readiness`` with 200 and Felix's component table, or 503.
"""
from __future__ import annotations

import http.client
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from node import tablewriter
from node.felix.httpserve import TEXT_PLAIN, BackgroundHTTPServer, Response
from node.model.schema import format_go_duration

log = logging.getLogger(__name__)

# Felix's reporters (felix/daemon/daemon.go, felix/calc/async_calc_graph.go,
# felix/dataplane/linux/int_dataplane.go).
FELIX_STARTUP = "FelixStartup"  # no timeout; ready once the dataplane driver is started
CALC_GRAPH = "CalculationGraph"  # ready iff the datastore syncer is in sync
CALC_GRAPH_REPORT_INTERVAL = 10.0
CALC_GRAPH_TIMEOUT = 30.0
DATAPLANE = "InternalDataplaneMainLoop"  # ready iff the first apply after in-sync is done
DATAPLANE_REPORT_INTERVAL = 10.0

# HTTP statuses (libcalico-go health.go): good with the table, good without content, bad.
STATUS_GOOD = 200
STATUS_GOOD_NO_CONTENT = 204
STATUS_BAD = 503


def dataplane_timeout(watchdog_timeout: float) -> float:
    """The dataplane reporter's timeout: DataplaneWatchdogTimeout, at least two report intervals."""
    floor = 2 * DATAPLANE_REPORT_INTERVAL
    if watchdog_timeout < floor:
        log.warning("Dataplane watchdog timeout (%s) too low, defaulting to %s",
                    _go_duration(watchdog_timeout), _go_duration(floor))
        return floor
    return watchdog_timeout


@dataclass(frozen=True)
class HealthSummary:
    live: bool
    ready: bool
    detail: str  # Felix's component table, as the endpoint returns it


class _Reporter:
    __slots__ = ("name", "reports_live", "reports_ready", "timeout", "live", "ready", "detail",
                 "timestamp")

    def __init__(self, name: str, reports_live: bool, reports_ready: bool, timeout: float, now: float):
        self.name = name
        self.reports_live = reports_live
        self.reports_ready = reports_ready
        self.timeout = timeout
        # Until its first report a reporter counts as live but not ready, as in Felix.
        self.live, self.ready, self.detail = True, False, ""
        self.timestamp = now


class HealthAggregator:
    """Felix's HealthAggregator: named reporters, their latest reports, the summary.

    Thread-safe; ``clock`` (monotonic seconds) is injectable so tests control time.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._reporters: dict[str, _Reporter] = {}
        self._overrides: dict[str, float] = {}
        self._last: tuple[bool, bool, str] | None = None
        self._ever_ready = False
        self._server = BackgroundHTTPServer("Health", {
            "/liveness": lambda request: self._respond("live"),
            "/readiness": lambda request: self._respond("ready"),
        })

    # -- reporters ------------------------------------------------------------------------

    def register_reporter(self, name: str, *, live: bool = True, ready: bool = True,
                          timeout: float = 0.0) -> None:
        """Declare a reporter and which kinds of health it reports.

        ``timeout`` (seconds) is how long its reports stay valid; 0 means forever.
        Registering again starts the reporter afresh.
        """
        with self._lock:
            self._reporters[name] = _Reporter(name, live, ready, float(timeout or 0.0), self._clock())

    def report(self, name: str, *, live: bool, ready: bool, detail: str = "") -> None:
        """Record a reporter's current health; also refreshes its timeout."""
        with self._lock:
            reporter = self._reporters.get(name)
            if reporter is None:
                raise KeyError(f"health reporter {name!r} is not registered")
            if (reporter.live, reporter.ready, reporter.detail) != (live, ready, detail):
                log.info("Health of component changed: name=%s newReport=%s oldReport=%s", name,
                         _format_report(reporter, live, ready), _format_report(reporter, reporter.live, reporter.ready))
                reporter.live, reporter.ready, reporter.detail = live, ready, detail
            reporter.timestamp = self._clock()

    def set_timeout_overrides(self, overrides: Mapping[str, float] | Iterable[tuple[str, float]]) -> None:
        """Replace the per-reporter timeouts (HealthTimeoutOverrides; 0 means no timeout).

        Overrides apply to whatever reporter has the name, now or registered later, and
        bypass the dataplane reporter's floor, as in Felix.
        """
        items = overrides.items() if isinstance(overrides, Mapping) else overrides
        with self._lock:
            self._overrides = {name: float(seconds) for name, seconds in items}

    # -- summary --------------------------------------------------------------------------

    def summary(self) -> HealthSummary:
        """Overall liveness and readiness now, with Felix's per-component table."""
        with self._lock:
            now = self._clock()
            live = ready = True
            rows = []
            for reporter in sorted(self._reporters.values(), key=lambda r: r.name):
                override = self._overrides.get(reporter.name)
                timeout = reporter.timeout if override is None else override
                timed_out = timeout != 0 and now - reporter.timestamp > timeout
                r_live, live_text = _judge(reporter.reports_live, timed_out, reporter.live, "live")
                r_ready, ready_text = _judge(reporter.reports_ready, timed_out, reporter.ready, "ready")
                if not r_live:
                    live = False
                    log.warning("Reporter is not live: %s. name=%s", live_text, reporter.name)
                if not r_ready:
                    ready = False
                    (log.warning if self._ever_ready else log.info)(
                        "Reporter is not ready: %s. name=%s", ready_text, reporter.name)
                timeout_text = "-" if timeout == 0 else _go_duration(timeout)
                if override is not None:
                    timeout_text += " (override)"
                rows.append([reporter.name, timeout_text, live_text, ready_text, reporter.detail])
            detail = render_table(["COMPONENT", "TIMEOUT", "LIVENESS", "READINESS", "DETAIL"], rows)
            if self._last != (live, ready, detail):
                self._last = (live, ready, detail)
                log.info("Overall health status changed: live=%s ready=%s\n%s",
                         _go_bool(live), _go_bool(ready), detail)
            if ready:
                self._ever_ready = True
            return HealthSummary(live, ready, detail)

    # -- HTTP -----------------------------------------------------------------------------

    def _respond(self, quality: str) -> Response:
        summary = self.summary()
        good = summary.live if quality == "live" else summary.ready
        body = summary.detail.encode()
        if not good:
            status = STATUS_BAD
        else:
            status = STATUS_GOOD if body else STATUS_GOOD_NO_CONTENT
        headers = [("Content-Type", TEXT_PLAIN)] if body else []
        return Response(status, body, headers)

    def serve_http(self, enabled: bool, host: str = "localhost", port: int = 9099) -> None:
        """Felix's ServeHTTP: start the endpoint if enabled (a running one is left as it is),
        stop it if not. Felix calls this each time its configuration is loaded."""
        if enabled:
            if self._server.running:
                log.info("Health enabled.  Server is already running. host=%s port=%s", host, port)
                return
            log.info("Health enabled.  Starting server. host=%s port=%s", host, port)
            self._server.start(host, port)
        elif self._server.running:
            log.info("Health disabled.  Stopping server.")
            self._server.stop()

    def stop_http(self) -> None:
        self._server.stop()

    @property
    def http_address(self) -> tuple[str, int] | None:
        """The endpoint's bound (host, port), or None when not listening."""
        return self._server.address


def _judge(reports: bool, timed_out: bool, latest: bool, word: str) -> tuple[bool, str]:
    if not reports:
        return True, "-"
    if timed_out:
        return False, "timed out"
    if latest:
        return True, f"reporting {word}"
    return False, f"reporting non-{word}"


def _format_report(reporter: _Reporter, live: bool, ready: bool) -> str:
    parts = []
    if reporter.reports_live:
        parts.append("live" if live else "non-live")
    if reporter.reports_ready:
        parts.append("ready" if ready else "non-ready")
    return ",".join(parts)


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def _go_duration(seconds: float) -> str:
    return format_go_duration(int(round(seconds * 1e9)))


# -- Felix's wiring ---------------------------------------------------------------------

def register_felix_reporters(aggregator: HealthAggregator, watchdog_timeout: float = 90.0) -> None:
    """Register Felix's three reporters with Felix's kinds and timeouts."""
    aggregator.register_reporter(FELIX_STARTUP, live=True, ready=True, timeout=0)
    aggregator.register_reporter(CALC_GRAPH, live=True, ready=True, timeout=CALC_GRAPH_TIMEOUT)
    aggregator.register_reporter(DATAPLANE, live=True, ready=True,
                                 timeout=dataplane_timeout(watchdog_timeout))


def apply_health_config(aggregator: HealthAggregator, config) -> None:
    """Apply a FelixConfig: HealthTimeoutOverrides, then HealthEnabled/HealthHost/HealthPort."""
    aggregator.set_timeout_overrides(config.HealthTimeoutOverrides)
    aggregator.serve_http(config.HealthEnabled, config.HealthHost, config.HealthPort)


# -- Felix's table (olekukonko/tablewriter v0.0.5 with its defaults) ----------------------

def render_table(header: list[str], rows: list[list[str]]) -> str:
    """The bordered table Felix's health endpoint returns (trailing newline trimmed)."""
    return tablewriter.table(header, rows).rstrip("\n")


# -- calico-node's probe client (node/pkg/health/health.go) -----------------------------

PROBE_PREFIX = "calico/node is not ready: "
_PROBE_WORDS = {"readiness": "felix is not ready", "liveness": "Felix is not live"}


def felix_health_endpoint(env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """(host, port) of Felix's endpoint as the probe reads them: FELIX_HEALTHHOST
    (localhost), FELIX_HEALTHPORT (9099); a non-integer port is refused, as calico-node
    refuses to start."""
    env = os.environ if env is None else env
    host = env.get("FELIX_HEALTHHOST") or "localhost"
    raw_port = env.get("FELIX_HEALTHPORT") or "9099"
    try:
        port = int(raw_port, 10)
    except ValueError:
        raise ValueError(f'Failed to parse value for port "{raw_port}"') from None
    return host, port


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_felix(probe: str, host: str = "localhost", port: int = 9099, *,
                timeout: float = 5.0) -> tuple[bool, str]:
    """GET Felix's /readiness or /liveness (``probe``) → (ok, calico-node's failure message).

    OK is any status 200-399. ``timeout`` bounds the whole request, as calico-node's
    --threshold-time does; the message is '' when OK.
    """
    if probe not in _PROBE_WORDS:
        raise ValueError(f"probe must be 'readiness' or 'liveness', not {probe!r}")
    hostport = _join_host_port(host, port)
    url = f"http://{hostport}/{probe}"
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", f"/{probe}", headers={"User-Agent": "Go-http-client/1.1"})
        conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        response = conn.getresponse()
        response.read()
        status = response.status
    except (socket.timeout, TimeoutError):
        return False, f"{PROBE_PREFIX}{_PROBE_WORDS[probe]}: Get \"{url}\": context deadline exceeded"
    except ConnectionRefusedError:
        return False, (f"{PROBE_PREFIX}{_PROBE_WORDS[probe]}: Get \"{url}\": "
                       f"dial tcp {hostport}: connect: connection refused")
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        return False, f"{PROBE_PREFIX}{_PROBE_WORDS[probe]}: Get \"{url}\": {reason}"
    finally:
        conn.close()
    if status < 200 or status >= 400:
        return False, f"{PROBE_PREFIX}{_PROBE_WORDS[probe]}: {probe} probe reporting {status}"
    return True, ""
