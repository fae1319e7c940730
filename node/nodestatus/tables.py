"""What ``calico-node show-status`` prints (pure): per family, BIRD's status, its BGP
peers and its routes, each as the table Calico draws with olekukonko/tablewriter v0.0.5's
defaults: ``+---+`` borders, headings upper-cased (``_`` as a space) and centred, a cell
that reads as a number right-aligned and any other left-aligned.

(``node.tablewriter`` draws them.)
"""
from __future__ import annotations

from typing import Callable, Sequence

from node import tablewriter
from node.nodestatus.birdtext import FAMILIES, DaemonStatus, Peer, Route

STATUS_HEADER = ("Ready", "Version", "RouteID", "ServerTime", "LastBoot", "LastReconfig")
PEERS_HEADER = ("Peer address", "Peer type", "State", "Since", "BGPState")
ROUTES_HEADER = ("Destination", "Gateway", "Iface", "LearnedFrom", "primary")


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    return tablewriter.table(list(header), [list(r) for r in rows])


def status_table(status: DaemonStatus) -> str:
    return render_table(STATUS_HEADER, [["true" if status.ready else "false", status.version, status.router_id,
                                         status.server_time, status.last_boot_time, status.last_reconfig_time]])


def peers_table(peers: Sequence[Peer]) -> str:
    return render_table(PEERS_HEADER, [[p.peer_ip, p.peer_type, p.state, p.since, p.bgp_state] for p in peers])


def routes_table(routes: Sequence[Route]) -> str:
    return render_table(ROUTES_HEADER, [[r.dest, r.gateway, r.iface, r.learned_from, "*" if r.primary else ""]
                                        for r in routes])


# (class heading, what an error is prefixed with, how the answer is drawn)
_SECTIONS = (
    ("Agent", "status", "Error getting birdStatus", status_table),
    ("BGP", "BGP peers", "Error getting bird BGP peers", peers_table),
    ("Routes", "routes", "Error getting birdRoutes", routes_table),
)


def show_text(query: Callable[[str, str], object]) -> str:
    """The whole ``show-status`` output. ``query(family, class)`` answers as for the
    reporter; an exception it raises is printed in that section's place."""
    out = []
    for family in FAMILIES:
        for cls, heading, failure, draw in _SECTIONS:
            try:
                answer = query(family, cls)
            except Exception as exc:  # noqa: BLE001 - printed, as Calico prints it
                out.append(f"{failure}: {exc}\n")
                continue
            out.append(f"\nbird v{family} {heading}\n")
            out.append(draw(answer))
        out.append("\n\n")
    return "".join(out)
