"""What ``calico-node show-status`` prints (pure): per family, BIRD's status, its BGP
peers and its routes, each as the table Calico draws with olekukonko/tablewriter v0.0.5's
defaults: ``+---+`` borders, headings upper-cased (``_`` as a space) and centred, a cell
that reads as a number right-aligned and any other left-aligned.

tablewriter also wraps a cell of several words longer than 30 characters onto more
lines; no cell here has such words (addresses, protocol names, BIRD's times), so cells
are never wrapped.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from node.nodestatus.birdtext import FAMILIES, DaemonStatus, Peer, Route

_DECIMAL = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})*|\d+)(?:\.\d+)?$")

STATUS_HEADER = ("Ready", "Version", "RouteID", "ServerTime", "LastBoot", "LastReconfig")
PEERS_HEADER = ("Peer address", "Peer type", "State", "Since", "BGPState")
ROUTES_HEADER = ("Destination", "Gateway", "Iface", "LearnedFrom", "primary")


def _title(text: str) -> str:
    chars = list(text)
    for i, ch in enumerate(chars):
        if ch == "_":
            chars[i] = " "
        elif ch == ".":
            # A dot between digits (a number) stays.
            before = i == 0 or chars[i - 1].isdigit() or chars[i - 1] == " "
            after = i == len(chars) - 1 or chars[i + 1].isdigit() or chars[i + 1] == " "
            if not (before and after):
                chars[i] = " "
    title = "".join(chars).strip()
    return (title or (" " if text else "")).upper()


def _centre(text: str, width: int) -> str:
    gap = width - len(text)
    if gap <= 0:
        return text
    left = gap // 2
    return " " * left + text + " " * (gap - left)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    titles = [_title(h) for h in header]
    widths = [max([len(titles[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]
    border = "+" + "+".join("-" * (w + 2) for w in widths) + "+\n"

    def cell(text: str, width: int) -> str:
        return text.rjust(width) if _DECIMAL.match(text.strip()) else text.ljust(width)

    out = [border, "|" + "".join(f" {_centre(t, w)} |" for t, w in zip(titles, widths)) + "\n", border]
    for row in rows:
        out.append("|" + "".join(f" {cell(c, w)} |" for c, w in zip(row, widths)) + "\n")
    out.append(border)
    return "".join(out)


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
