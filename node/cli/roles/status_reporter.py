"""``calico-node status-reporter`` (Calico's ``calico-node -status-reporter``, which
node-services runs): report BIRD's status into this node's CalicoNodeStatus resources.

    calico-node status-reporter

Follows the datastore's CalicoNodeStatus resources and reports into those whose
``spec.node`` is this node and whose ``spec.updatePeriodSeconds`` is set, every that many
seconds (0: once, and again when the spec changes): BIRD's and BIRD6's status (class
Agent), their BGP peers (BGP) and their routes (Routes). See ``node.nodestatus``.

Environment: NODENAME (else the nodename file, CALICO_NODENAME_FILE or under
CALICO_LIB_DIR), CALICO_RUN_DIR (BIRD's control sockets bird.ctl and bird6.ctl),
CALICO_STARTUP_LOGLEVEL (this command's log level) and the datastore variables
(DATASTORE_TYPE, ETCD_ENDPOINTS, KUBECONFIG...). A BIRD that is not running is reported
as NotReady, so this runs whatever the networking backend. It rides out datastore
outages and exits 1 only when its syncer stops for good (a configuration error or a
bug), so that supervisor restarts it.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

log = logging.getLogger("node.nodestatus")


def register(subparsers) -> None:
    p = subparsers.add_parser("status-reporter",
                              help="report BIRD's status into this node's CalicoNodeStatus resources")
    p.set_defaults(func=run)


def node_name(env: Mapping[str, str]) -> str:
    """NODENAME, else the nodename file the startup stage wrote (as node-services has
    NODENAME exported from it)."""
    from startup.nodename import nodename_file

    name = env.get("NODENAME", "").strip()
    if name:
        return name
    try:
        return nodename_file(env).read_text().strip()
    except OSError:
        return ""


def serve(stop: threading.Event, env: Mapping[str, str]) -> int:
    """Report until ``stop``; 1 when it cannot start or its syncer stops for good (which
    also sets ``stop``)."""
    from node.cli.follow import follow_datastore
    from node.config import Paths, datastore_config_from_env
    from node.datastore.client import DatastoreClient
    from node.datastore.factory import kv_for
    from node.errors import CalicoError
    from node.nodestatus.birdquery import BirdQuery
    from node.nodestatus.reporter import NodeStatusReporter
    from startup.nodename import nodename_file

    nodename = node_name(env)
    if not nodename:
        log.error("NODENAME environment is not set (and there is no nodename file at %s)", nodename_file(env))
        return 1
    try:
        config = datastore_config_from_env(env)
        kv = kv_for(config)
    except CalicoError as exc:
        log.error("Failed to create Calico API client: %s", exc)
        return 1
    paths = Paths.from_env(env)
    reporter = NodeStatusReporter(nodename, DatastoreClient(kv), BirdQuery(paths.run_dir))
    # The reporter has a stop of its own (a queue entry): ``stop`` is passed on to it.
    threading.Thread(target=lambda: (stop.wait(), reporter.stop()), name="status-reporter-stop",
                     daemon=True).start()
    log.info("Starting the node status reporter for node %s (BIRD sockets in %s)", nodename, paths.run_dir)
    return follow_datastore(config, ["CalicoNodeStatus"], reporter, reporter.run, stop.set, kv, log)


def run(args) -> int:  # noqa: ARG001
    from node.cli.role_logging import setup_role_logging
    from node.cli.stop_signals import stop_on_signals

    setup_role_logging("status-reporter")
    stop = threading.Event()
    stop_on_signals(stop, log)
    return serve(stop, os.environ)
