"""``calico-node show-status`` (Calico's ``calico-node -show-status``): print what the
CalicoNodeStatus reporter would report, as tables, once.

    calico-node show-status

For IPv4, then IPv6: BIRD's status, its BGP peers and its routes, each under a heading
(``bird v4 status``...), or the error that stood in the way (``Error getting birdStatus:
Error querying BIRD: unable to connect to BIRDv4 socket: ...`` when BIRD is not
running). Reads BIRD's control sockets in CALICO_RUN_DIR (bird.ctl, bird6.ctl); exits 0,
as Calico's does, whatever it printed.
"""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("show-status", help="print BIRD's status, BGP peers and routes as tables")
    p.set_defaults(func=run)


def run(args) -> int:  # noqa: ARG001
    from node.config import Paths
    from node.nodestatus.birdquery import BirdQuery
    from node.nodestatus.tables import show_text

    sys.stdout.write(show_text(BirdQuery(Paths.from_env().run_dir)))
    sys.stdout.flush()
    return 0
