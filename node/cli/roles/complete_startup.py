"""``calico-node complete-startup``: once Calico is ready, tell Kubernetes the node's network
is available, then stay up (Calico's complete-startup service in node-services).

    calico-node complete-startup [--timeout 5m] [--interval 1s]

Waits until the components this node runs are ready: BIRD and BIRD6 when BGP runs
(``CALICO_NETWORKING_BACKEND`` not ``none``/``vxlan``), the policy agent when
``FELIX_HEALTHENABLED=true``, checked as ``calico-node health -bird-ready -bird6-ready
-felix-ready`` checks them. After ``--timeout`` it carries on anyway, as Calico does, so a
slow peer cannot keep pods off the node forever. Then it sets the Kubernetes Node's
NetworkUnavailable condition to False (skipped off Kubernetes or with backend ``none``)
and removes the shutdown timestamp file, and sleeps until SIGTERM, so supervisord shows
it running. A failed update exits 1 and supervisord tries again.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("complete-startup")


def register(subparsers) -> None:
    p = subparsers.add_parser("complete-startup",
                              help="once Calico is ready, mark the Kubernetes node's network available")
    p.add_argument("--timeout", default="5m", metavar="DURATION",
                   help="Go duration: how long to wait for readiness before carrying on (default 5m)")
    p.add_argument("--interval", default="1s", metavar="DURATION",
                   help="Go duration: pause between readiness checks (default 1s)")
    p.set_defaults(func=_run)


def readiness_selection(env):
    """Which readiness checks apply: Calico looks at the enabled runit services (BIRD) and
    FELIX_HEALTHENABLED (the agent)."""
    from node.supervise.health import Selection
    from node.supervise.programs import runs_bird

    bird = runs_bird(env)
    return Selection(felix_ready=env.get("FELIX_HEALTHENABLED", "") == "true",
                     bird_ready=bird, bird6_ready=bird)


def wait_until_ready(env, timeout: float, interval: float, stop: threading.Event,
                     threshold: float = 300.0) -> bool:
    """True once every applicable check passes; False when ``timeout`` ran out (or stop)."""
    import time

    from node.supervise.health import run_checks

    selection = readiness_selection(env)
    if not selection.any():
        return True
    log.info("Waiting for Calico to become ready before continuing...")
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        failure = run_checks(selection, threshold, env)
        if failure is None:
            return True
        if time.monotonic() >= deadline:
            break
        log.warning("Calico is not ready yet, waiting... reason=%s", failure)
        stop.wait(interval)
    return False


def serve(stop: threading.Event, env, timeout: float = 300.0, interval: float = 1.0) -> int:
    """Wait for readiness (at most ``timeout``), mark the network available, then wait for
    ``stop``; 1 when the Kubernetes update failed."""
    from startup.k8s import complete_startup

    env = dict(env)
    if not wait_until_ready(env, timeout, interval, stop):
        if stop.is_set():
            return 0
        log.error("Calico failed to become ready, continuing anyway")
    code = complete_startup(env)
    if code != 0:
        return code
    stop.wait()
    return 0


def _run(args) -> int:
    from node.cli.role_logging import setup_role_logging
    from node.cli.stop_signals import stop_on_signals
    from node.model.schema import parse_go_duration

    setup_role_logging("complete-startup")
    try:
        timeout = parse_go_duration(args.timeout) / 1e9
        interval = parse_go_duration(args.interval) / 1e9
    except ValueError as exc:
        print(f"complete-startup: bad duration: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    stop_on_signals(stop)
    return serve(stop, os.environ, timeout, interval)
