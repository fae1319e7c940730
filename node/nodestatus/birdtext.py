"""BIRD's answers as records: ``show status``, ``show protocols``, ``show protocols all
NAME`` and ``show route`` (pure).

Each scanner reads a reply as BIRD wrote it (``node.bird.Reply.raw``: a four-digit code
then ``-`` or a space, or a leading space for a continuation line), preceded by the
connection's ``0001 ... ready.`` greeting, and applies the line rules of Calico's status
populators, so Calico's own test vectors hold. Where Calico's rule throws data away or
fails on output BIRD really produces, the rule here keeps going; each such place says so.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Iterable

log = logging.getLogger(__name__)

IPV4 = "4"
IPV6 = "6"
FAMILIES = (IPV4, IPV6)


def socket_suffix(family: str) -> str:
    """``bird.ctl`` serves IPv4, ``bird6.ctl`` IPv6."""
    return "" if family == IPV4 else "6"


def address_separator(family: str) -> str:
    """What the ``_`` in a protocol name such as ``Mesh_10_0_0_1`` stand for."""
    return "." if family == IPV4 else ":"


class BirdUnavailable(Exception):
    """BIRD's control socket does not answer (BIRD is not running, e.g. BGP is off): the
    reporter records that as NotReady / no peers / no routes instead of failing."""


class BirdOutputError(ValueError):
    """A reply the scanner cannot read; the whole query fails, as in Calico."""


# --------------------------------------------------------------------------------------
# show status

@dataclass(frozen=True)
class DaemonStatus:
    ready: bool = False
    version: str = ""
    router_id: str = ""
    server_time: str = ""
    last_boot_time: str = ""
    last_reconfig_time: str = ""


_STATUS_FIELDS = (("Router ID is ", "router_id"), ("Current server time is ", "server_time"),
                  ("Last reboot on ", "last_boot_time"), ("Last reconfiguration on ", "last_reconfig_time"))


def _status_text(status: DaemonStatus, text: str) -> DaemonStatus:
    if "BIRD" in text and "ready" in text:
        return replace(status, ready=True)  # the greeting: BIRD answered
    if text.startswith("BIRD "):
        # Calico keeps the version only when it starts with "v" (its own BIRD's
        # "BIRD v0.3.3+birdv1.6.8"), which would leave Debian's "BIRD 1.6.8" blank.
        return replace(status, version=text[len("BIRD "):])
    for prefix, name in _STATUS_FIELDS:
        if text.startswith(prefix):
            return replace(status, **{name: text[len(prefix):]})
    return status


def scan_status(lines: Iterable[str]) -> DaemonStatus:
    status = DaemonStatus()
    for line in lines:
        if line.startswith("0013"):
            break
        if line.startswith(("0001", "1000", "1011")):
            status = _status_text(status, line[5:])
        elif line.startswith(" "):
            status = _status_text(status, line[1:])
        else:
            # e.g. "0024-Graceful restart recovery in progress", which BIRD prints after
            # every field read here: what was read stands.
            log.warning("unexpected output line from BIRD: %s", line)
            break
    return status


# --------------------------------------------------------------------------------------
# show protocols, show protocols all NAME

EXPECTED_HEADINGS = ["name", "proto", "table", "state", "since", "info"]
# Protocol name prefix (as confd names BGP sessions) -> CalicoNodePeer.type.
PEER_TYPES = {"Global": "GlobalPeer", "Mesh": "NodeMesh", "Node": "NodePeer"}
LOCAL_WORKLOAD = "Local_Workload"
_SESSION = re.compile(r"^(Global|Node|Mesh|Local_Workload)_(.+?)(?:_port_\d+)?$")


def parse_session_name(name: str, family: str) -> tuple[str, str] | None:
    """(prefix, peer address) of a BGP protocol named the way confd names them, e.g.
    ``Mesh_fd00__2`` -> ("Mesh", "fd00::2"); None for other names.

    Beyond Calico's Global/Node/Mesh: ``Local_Workload_*`` (peers chosen by a BGPPeer's
    localWorkloadSelector) and the ``_port_N`` suffix confd adds for a peer on another
    port, which Calico would fold into the address (``10.0.0.1.port.179``)."""
    m = _SESSION.match(name)
    if m is None:
        return None
    return m.group(1), m.group(2).replace("_", address_separator(family))


@dataclass(frozen=True)
class Peer:
    """One BGP session: ``state`` is the protocol's (up, start, down...), ``bgp_state`` and
    ``peer_ip`` come from ``show protocols all``."""

    session: str
    peer_type: str
    state: str
    since: str
    info: str = ""
    peer_ip: str = ""
    bgp_state: str = ""


def _peer_row(text: str, family: str) -> Peer | None:
    columns = text.split()
    if len(columns) < 6 or columns[1] != "BGP":
        return None  # not a BGP session (kernel, device, direct...), or one without info
    parsed = parse_session_name(columns[0], family)
    if parsed is None or parsed[0] == LOCAL_WORKLOAD:
        if parsed is None:
            log.warning("BGP protocol %s is not named as confd names peers (Mesh_, Node_, Global_); "
                        "it is not reported", columns[0])
        return None  # (a local workload's session has no CalicoNodePeer type)
    return Peer(session=columns[0], peer_type=parsed[0], state=columns[3], since=columns[4],
                info=" ".join(columns[6:]))


def scan_peers(lines: Iterable[str], family: str) -> list[Peer]:
    """The BGP sessions in a ``show protocols`` reply."""
    peers = []
    for line in lines:
        if line.startswith("0000"):
            break
        if line.startswith("0001"):
            continue
        if line.startswith("2002"):
            if line[5:].split() != EXPECTED_HEADINGS:
                raise BirdOutputError("unknown BIRD table output format")
            continue
        if line.startswith("1002"):
            text = line[5:]
        elif line.startswith(" "):
            text = line[1:]
        else:
            raise BirdOutputError(f"unexpected output line from BIRD: {line}")
        peer = _peer_row(text, family)
        if peer is not None:
            peers.append(peer)
    return peers


def _labelled(line: str, label: str) -> str | None:
    if label not in line:
        return None
    return line.replace(label, " ").strip()


def complete_peer(peer: Peer, lines: Iterable[str]) -> Peer:
    """``peer`` with the BGP state and neighbour address of its ``show protocols all`` reply."""
    bgp_state, peer_ip = peer.bgp_state, peer.peer_ip
    for line in lines:
        if line.startswith("0000"):
            break
        value = _labelled(line, "BGP state:")
        if value is not None:
            bgp_state = value
            continue
        value = _labelled(line, "Neighbor address:")
        if value is not None:
            peer_ip = value
    return replace(peer, bgp_state=bgp_state, peer_ip=peer_ip)


# --------------------------------------------------------------------------------------
# show route

@dataclass(frozen=True)
class Route:
    """One route of BIRD's table; ``learned_from`` is the protocol's name."""

    dest: str
    gateway: str
    iface: str
    learned_from: str
    primary: bool = False


_VIA = re.compile(r"(?P<dest>\S*)\s*via\s(?P<gateway>\S*)\s*on\s(?P<iface>.*)\s\[(?P<source>\S*)\s.*\].*")
_DEV = re.compile(r"(?P<dest>\S*)\s*dev\s(?P<iface>.*)\s\[(?P<source>\S*)\s.*\].*")
# Routes without a next hop; BIRD prints the kind where the next hop would be.
_KINDS = ("blackhole", "unreachable", "prohibited", "multipath")
_NO_NEXT_HOP = re.compile(r"(?P<dest>\S*)\s*(?P<kind>blackhole|unreachable|prohibited|multipath)"
                          r"\s\[(?P<source>\S*)\s.*\].*")


def _route_text(text: str, previous_dest: str) -> tuple[Route | None, str]:
    """The route on one line of ``show route`` (a line without a destination belongs to
    the one above), and the destination the next line inherits."""
    if " via " in text:
        m, gateway, iface = _VIA.search(text), None, None
    elif " dev " in text:
        m, gateway, iface = _DEV.search(text), "N/A", None
    else:
        kind = next((k for k in _KINDS if f" {k} " in text), None)
        m = _NO_NEXT_HOP.search(text) if kind else None
        gateway, iface = "N/A", kind
    own_dest = text.split()[0] if text[:1] and not text[:1].isspace() else ""
    if m is None:
        # Calico fails on "prohibited" and "multipath" routes (and then attributes the
        # lines below to no destination); here the kinds above are read, a multipath
        # route's "\tvia ... weight N" next-hop lines are skipped and anything else is
        # logged and skipped, the destination carried on either way.
        if text.lstrip().startswith("via ") and "[" not in text:
            log.debug("next hop of a multipath route: %s", text.strip())
        else:
            log.warning("route line from BIRD not understood, skipped: %s", text.strip())
        return None, own_dest or previous_dest
    dest = m.group("dest") or previous_dest
    if not dest:
        log.warning("route line from BIRD has no destination, skipped: %s", text.strip())
        return None, ""
    route = Route(dest=dest,
                  gateway=m.group("gateway") if gateway is None else gateway,
                  iface=m.group("iface") if iface is None else iface,
                  learned_from=m.group("source"),
                  primary="] *" in text)
    return route, dest


def scan_routes(lines: Iterable[str]) -> list[Route]:
    """Every route of a ``show route`` reply (either family), alternatives included (only
    the one marked ``*`` is primary)."""
    routes = []
    previous = ""
    for line in lines:
        if line.startswith("0000"):
            break
        if line.startswith("0001"):
            continue
        if line.startswith("1007"):
            text = line[5:]
        elif line.startswith(" "):
            text = line[1:]
        else:
            raise BirdOutputError(f"unexpected output line from BIRD: {line}")
        route, previous = _route_text(text, previous)
        if route is not None:
            routes.append(route)
    return routes
