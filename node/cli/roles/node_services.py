"""``calico-node node-services`` (Calico's ``calico-node -node-services``): the node's small
long-running services in one process, as Calico v3.32's image runs them.

    calico-node node-services

Each service runs in a thread of its own, as Calico runs each in a goroutine:

| service | runs when |
|---|---|
| complete-startup | always (it skips the Kubernetes update where there is none) |
| tunnel-ip-allocator (``allocate-tunnel-addrs``) | always |
| status-reporter (CalicoNodeStatus) | always |
| monitor-addresses | ``CALICO_NETWORKING_BACKEND`` is not ``none`` |
| cni-config-monitor (``monitor-token``) | ``CALICO_MANAGE_CNI`` is not ``false`` and a Kubernetes configuration exists |

One process instead of one per service is what keeps the node small: each Python
interpreter with its datastore client costs 30-55 MB. As in Calico, a service that fails
stops all the others and the process exits 1, so the supervisor restarts them together;
SIGTERM or SIGINT stops them all and exits 0. Calico starts the token monitor whenever
``CALICO_MANAGE_CNI`` is not ``false``; without a Kubernetes configuration it can only
fail, and would take the other services down with it, over and over, so here it is left
out (and the log says so). Each service is also its own subcommand
(``calico-node monitor-addresses``...), which is what the released ``-monitor-addresses``
style flags run.

The log level comes from ``CALICO_STARTUP_LOGLEVEL`` (Calico's node-services sets it
through the status reporter's logging setup), every line with the component
``node-services``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

log = logging.getLogger("node-services")

# How long the others get to stop once one has failed or a signal came; supervisord's
# own stop timeout for the program is longer.
STOP_GRACE_SECONDS = 8.0


@dataclass(frozen=True)
class Service:
    name: str
    serve: Callable[[threading.Event, Mapping[str, str]], int]


def register(subparsers) -> None:
    p = subparsers.add_parser("node-services",
                              help="run complete-startup, the tunnel address allocator, the status reporter, "
                                   "the address monitor and the CNI token monitor in one process")
    p.set_defaults(func=_run)


def services_for(env: Mapping[str, str]) -> list[Service]:
    """The services this environment runs, in Calico's start order."""
    from node.cli.roles import (allocate_tunnel_addrs, complete_startup, monitor_addresses, monitor_token,
                                status_reporter)
    from node.supervise.programs import runs_monitor, runs_token_monitor

    services = [Service("complete-startup", complete_startup.serve),
                Service("tunnel-ip-allocator", allocate_tunnel_addrs.serve),
                Service("status-reporter", status_reporter.serve)]
    if runs_monitor(env):
        services.append(Service("monitor-addresses", monitor_addresses.serve))
    if runs_token_monitor(env):
        services.append(Service("cni-config-monitor", monitor_token.serve))
    return services


def run_services(services: Sequence[Service], env: Mapping[str, str], stop: threading.Event,
                 grace: float = STOP_GRACE_SECONDS) -> int:
    """Run every service until ``stop`` (0) or until one fails (1: ``stop`` is then set so
    the others end too). A service that returns 0 before ``stop`` has simply finished."""
    failed: list[str] = []

    def one(service: Service) -> None:
        try:
            code = service.serve(stop, env)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            log.exception("%s failed", service.name)
            code = 1
        if code != 0 and not stop.is_set():
            log.error("%s exited with status %s; stopping the other node services", service.name, code)
            failed.append(service.name)
            stop.set()
        elif code != 0:
            failed.append(service.name)

    threads = []
    for service in services:
        log.info("Starting %s service", service.name)
        thread = threading.Thread(target=one, args=(service,), name=service.name, daemon=True)
        thread.start()
        threads.append(thread)
    stop.wait()
    end = time.monotonic() + grace
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        log.warning("Still stopping after %gs, left behind: %s", grace, ", ".join(stuck))
    if failed:
        log.error("Node services exiting due to an error in %s", ", ".join(failed))
        return 1
    log.info("Node services shutdown complete")
    return 0


def _run(args) -> int:  # noqa: ARG001
    from node.cli.role_logging import setup_role_logging
    from node.cli.stop_signals import stop_on_signals
    from node.supervise.programs import runs_token_monitor

    env = dict(os.environ)
    setup_role_logging("node-services", env)
    if env.get("CALICO_MANAGE_CNI") != "false" and not runs_token_monitor(env):
        log.info("No Kubernetes configuration (KUBECONFIG or in-cluster): the CNI token monitor is not "
                 "started (set CALICO_MANAGE_CNI=false to say so)")
    stop = threading.Event()
    stop_on_signals(stop, log)
    return run_services(services_for(env), env, stop)
