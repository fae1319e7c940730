"""``calico-node monitor-addresses``: keep this Node's autodetected addresses current."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("monitor-addresses",
                              help="re-check the node's addresses every AUTODETECT_POLL_INTERVAL and on changes")
    p.add_argument("--poll-only", action="store_true",
                   help="ignore kernel address events and only poll (Calico's own behaviour)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from startup.monitor import MonitorOptions, run

    return run(options=MonitorOptions(netlink_events=not args.poll_only))
