"""``calico-node shutdown`` (also ``calico-node -shutdown``): the DaemonSet's preStop hook.

Writes the shutdown timestamp file (``CALICO_SHUTDOWN_TIMESTAMP_FILE``, default
``$CALICO_LIB_DIR/shutdownTS``) first, since the pod's grace period may end at any
moment, then sets the Kubernetes Node's
NetworkUnavailable condition to True (skipped off Kubernetes and with
``CALICO_NETWORKING_BACKEND=none``). A failure is logged and the hook still exits 0, as
Calico's does: the pod is going away either way.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("shutdown")


def register(subparsers) -> None:
    p = subparsers.add_parser("shutdown", help="preStop hook: mark the Kubernetes node's network unavailable")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from node.cli.role_logging import setup_role_logging
    from node.errors import CalicoError
    from startup.k8s import mark_network_unavailable
    from startup.nodename import determine_node_name

    setup_role_logging("shutdown")
    env = dict(os.environ)
    node_name = determine_node_name(env)
    log.info("Shutting down node %s", node_name)
    try:
        mark_network_unavailable(env, node_name)
    except (CalicoError, OSError) as exc:
        log.error("Unable to set NetworkUnavailable to true: %s", exc)
    return 0
