"""``calico-node monitor-addresses``: keep this Node's autodetected addresses current."""
from __future__ import annotations

import os
import threading
from typing import Mapping


def register(subparsers) -> None:
    p = subparsers.add_parser("monitor-addresses",
                              help="re-check the node's addresses every AUTODETECT_POLL_INTERVAL and on changes")
    p.add_argument("--poll-only", action="store_true",
                   help="ignore kernel address events and only poll (Calico's own behaviour)")
    p.set_defaults(func=_run)


def serve(stop: threading.Event, env: Mapping[str, str], poll_only: bool = False) -> int:
    """The monitor in a process whose logging is already set up (node-services)."""
    from startup.monitor import MonitorOptions, run

    return run(env, MonitorOptions(netlink_events=not poll_only), stop, own_logging=False)


def _run(args) -> int:
    from node.cli.stop_signals import stop_on_signals
    from startup.monitor import MonitorOptions, run

    stop = threading.Event()
    stop_on_signals(stop)
    return run(os.environ, MonitorOptions(netlink_events=not args.poll_only), stop)
