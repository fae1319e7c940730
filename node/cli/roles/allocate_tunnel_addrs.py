"""``calico-node allocate-tunnel-addrs``: give this node its IPIP, VXLAN and WireGuard addresses.

    calico-node allocate-tunnel-addrs             follow pools and this Node, reconcile on change
    calico-node allocate-tunnel-addrs --run-once  reconcile once and exit (1 if that failed)

Environment: NODENAME (required), USE_POD_CIDR (when set, there is nothing to do),
FELIX_WIREGUARDHOSTENCRYPTIONENABLED, and the datastore variables (DATASTORE_TYPE,
ETCD_ENDPOINTS, ...).

The long-running form reconciles only while its datastore syncer is in sync and rides
out datastore outages; it exits 1 if the syncer stops for good (a configuration error
or a bug), so that supervisor restarts it.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Mapping

from node.config import datastore_config_from_env
from node.errors import CalicoError

log = logging.getLogger("node.tunnel_ip_allocator")

_TRUE = ("true", "1", "yes", "y", "t", "on")


def register(subparsers) -> None:
    p = subparsers.add_parser("allocate-tunnel-addrs", help="assign this node's tunnel addresses")
    p.add_argument("--run-once", action="store_true", help="reconcile once and exit")
    p.set_defaults(func=run)


def serve(stop: threading.Event, env: Mapping[str, str], run_once: bool = False) -> int:
    """Reconcile until ``stop`` (once with ``run_once``); 1 when it cannot start, the one
    reconcile failed, or the syncer stopped for good (which also sets ``stop``)."""
    from node.cli.follow import follow_datastore
    from node.datastore.factory import kv_for
    from node.ipam.allocator import IPAM
    from node.ipam.tunnel import TunnelAddressAllocator, TunnelAddressDaemon

    nodename = env.get("NODENAME", "")
    if not nodename:
        log.error("NODENAME environment is not set")
        return 1
    if env.get("USE_POD_CIDR", "").lower() in _TRUE:
        log.debug("Using host-local IPAM, no need to allocate a tunnel IP")
        if not run_once:
            stop.wait()
        return 0
    host_encryption = env.get("FELIX_WIREGUARDHOSTENCRYPTIONENABLED", "").lower() in _TRUE
    try:
        config = datastore_config_from_env(env)
        kv = kv_for(config)
    except CalicoError as exc:
        log.error("Failed to create Calico API client: %s", exc)
        return 1
    allocator = TunnelAddressAllocator(IPAM(kv), nodename, host_encryption)
    if run_once:
        try:
            allocator.reconcile()
        except CalicoError as exc:
            log.error("failed to reconcile tunnel address: %s", exc)
            return 1
        finally:
            kv.close()
        return 0
    daemon = TunnelAddressDaemon(allocator)
    return follow_datastore(config, ["IPPool", "Node"], daemon, lambda: daemon.run(stop), stop.set, kv, log)


def run(args) -> int:
    from node.cli.role_logging import setup_role_logging
    from node.cli.stop_signals import stop_on_signals

    setup_role_logging("allocate-tunnel-addrs")
    stop = threading.Event()
    if not args.run_once:
        stop_on_signals(stop)
    return serve(stop, os.environ, args.run_once)
