"""``calico-node monitor-token``: keep the CNI plugin's kubeconfig holding a fresh token
(Calico's CNI token monitor, ``calico-node -monitor-token``; see ``node/cni_token.py``).

    calico-node monitor-token             refresh for ever, until SIGTERM
    calico-node monitor-token --run-once  write the kubeconfig once and exit (1 if that failed)

Environment: KUBECONFIG (else the in-cluster service account), CALICO_CNI_SERVICE_ACCOUNT,
CNI_TOKEN_REFRESH_INTERVAL, CALICO_CNI_NET_DIR, CALICO_MANAGE_CNI, and
CALICO_STARTUP_LOGLEVEL for the log level.

As in Calico, the monitor cannot start without a Kubernetes client configuration or the
service account's namespace file: it exits 1 saying which is missing (supervision then
retries it with backoff). With ``CALICO_MANAGE_CNI=false`` there is nothing to manage: it
says so and waits for SIGTERM (``--run-once`` exits 0), so that a supervisor that starts
it anyway does not see it fail. ``node-services`` runs ``serve`` in a thread of its own.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

log = logging.getLogger("cni-config-monitor")


def register(subparsers) -> None:
    from node.cni_token import DEFAULT_SERVICE_ACCOUNT_DIR

    p = subparsers.add_parser("monitor-token",
                              help="keep the CNI plugin's kubeconfig (calico-kubeconfig) holding a fresh token")
    p.add_argument("--run-once", action="store_true",
                   help="request one token, write the kubeconfig and exit")
    p.add_argument("--service-account-dir", default=DEFAULT_SERVICE_ACCOUNT_DIR, metavar="DIR",
                   help="calico-node's own service account (namespace, token, ca.crt; default %(default)s)")
    p.set_defaults(func=_run)


def serve(stop: threading.Event, env: Mapping[str, str], service_account_dir: str | None = None,
          run_once: bool = False) -> int:
    """The monitor until ``stop`` (or one refresh with ``run_once``); 1 when it cannot start."""
    from node.cni_token import DEFAULT_SERVICE_ACCOUNT_DIR, TokenMonitor, check_kube_config, read_namespace
    from node.errors import CalicoError, ConfigError

    env = dict(env)
    service_account_dir = service_account_dir or DEFAULT_SERVICE_ACCOUNT_DIR
    if env.get("CALICO_MANAGE_CNI") == "false":
        log.info("CALICO_MANAGE_CNI=false: the CNI plugin's kubeconfig is not managed by calico-node; "
                 "nothing to do")
        if not run_once:
            stop.wait()
        return 0
    try:
        source = check_kube_config(env, service_account_dir)
        namespace = read_namespace(service_account_dir)
    except ConfigError as exc:
        log.error("The CNI token monitor cannot start: %s", exc)
        return 1
    monitor = TokenMonitor(env, namespace, service_account_dir)
    log.info("Keeping %s current for service account %s/%s (Kubernetes configuration: %s)",
             monitor.path, namespace, monitor.service_account, source)
    if run_once:
        try:
            monitor.refresh()
        except CalicoError as exc:
            log.error("Failed to write the CNI kubeconfig (%s/%s): %s", namespace, monitor.service_account, exc)
            return 1
        return 0
    monitor.run(stop)
    return 0


def _run(args) -> int:
    from node.cli.role_logging import setup_role_logging
    from node.cli.stop_signals import stop_on_signals

    setup_role_logging("monitor-token")
    stop = threading.Event()
    stop_on_signals(stop)
    return serve(stop, os.environ, args.service_account_dir, args.run_once)
