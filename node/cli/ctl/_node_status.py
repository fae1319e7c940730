"""``calicoctl node status``: is the policy agent running, and how are BIRD's BGP peers.

As calicoctl: the policy agent counts as running when a process's argv is
``calico-felix ...`` or ``calico-node -felix ...`` (compared position by position, either
position matching is enough); BIRD and BIRD6 are found by argv[0] ``bird``/``bird6`` and
asked ``show protocols`` over their control sockets, and the rows named
``Global_*``, ``Node_*`` and ``Mesh_*`` become the peer table.

The sockets are looked for in ``$CALICO_RUN_DIR`` (default ``/var/run/calico``, where
the node image puts them), then in ``/var/run/bird`` (a BIRD installed on the host).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from node import bird, tablewriter
from node.cli.ctl._common import CommandFailed
from node.supervise.health import parse_peer_row as parse_bgp_row

FALLBACK_RUN_DIR = Path("/var/run/bird")
BIRD_TIMEOUT = 2.0  # per line, as calicoctl
EXPECTED_HEADINGS = ["name", "proto", "table", "state", "since", "info"]
HEADERS = ("Peer address", "Peer type", "State", "Since", "Info")


def running_argvs() -> list[list[str]]:
    """The argv of every process we can read."""
    import psutil

    out = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline")
        if cmdline:
            out.append(list(cmdline))
    return out


def ps_contains(pattern: Sequence[str], argvs: Iterable[Sequence[str]]) -> bool:
    """calicoctl's psContains: a process matches if any position of ``pattern`` equals
    the same position of its argv."""
    for argv in argvs:
        for i, word in enumerate(pattern):
            if i >= len(argv):
                break
            if argv[i] == word:
                return True
    return False


@dataclass(frozen=True)
class Peer:
    address: str
    type: str
    state: str
    since: str
    info: str


def parse_peer_row(row: str, separator: str) -> Peer | None:
    """One ``show protocols`` row as a peer, or None for other protocols."""
    peer = parse_bgp_row(row, "6" if separator == ":" else "4")
    if peer is None:
        return None
    info = peer.bgp_state + (" " + peer.info if peer.info else "")
    return Peer(peer.peer_ip, peer.peer_type, peer.state, peer.since, info)


def peers_from_reply(reply: bird.Reply, version: int) -> list[Peer]:
    separator = "." if version == 4 else ":"
    peers = []
    for code, text in reply.lines:
        if code == 0:
            break
        if code == 1:
            continue
        if code == 2002:
            if text.split() != EXPECTED_HEADINGS:
                raise CommandFailed("error executing command: unknown BIRD table output format")
        elif code == 1002:
            peer = parse_peer_row(text, separator)
            if peer is not None:
                peers.append(peer)
        else:
            raise CommandFailed("error executing command: unexpected output line from BIRD")
    return peers


def render_table(peers: Sequence[Peer]) -> str:
    """The peer table as calicoctl draws it: tablewriter v0.0.5's defaults (upper-case,
    centred headings; an info cell of several words wider than 30 columns wraps)."""
    return tablewriter.table(list(HEADERS), [[p.address, p.type, p.state, p.since, p.info] for p in peers])


def _go_dial_error(path: Path, exc: BaseException | None) -> str:
    """The error Go's net.Dial("unix", path) gives, e.g. ``dial unix /x: connect: no such
    file or directory``."""
    cause = exc.__cause__ if exc is not None and isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, OSError) and cause.errno:
        reason = os.strerror(cause.errno)
        return f"dial unix {path}: connect: {reason[:1].lower()}{reason[1:]}"
    return f"dial unix {path}: {exc}"


def bird_peers(version: int, run_dir: Path, out: Callable[[str], None]) -> None:
    """Print one family's section: heading, then the table or why there is none."""
    suffix = "" if version == 4 else "6"
    out(f"\nIPv{version} BGP status\n")
    client = None
    error: BaseException | None = None
    path = run_dir / f"bird{suffix}.ctl"
    for path in (run_dir / f"bird{suffix}.ctl", FALLBACK_RUN_DIR / f"bird{suffix}.ctl"):
        candidate = bird.BirdClient(path, timeout=BIRD_TIMEOUT)
        try:
            candidate.connect()
        except bird.BirdError as exc:
            error = exc
            candidate.close()
            continue
        client = candidate
        break
    if client is None:
        out(f"Error querying BIRD: unable to connect to BIRDv{version} socket: {_go_dial_error(path, error)}")
        return
    try:
        try:
            reply = client.command("show protocols")
        except bird.BirdError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
                raise CommandFailed(f"error executing command: unable to write to BIRD socket: {cause}") from None
            raise CommandFailed(f"error executing command: {_reply_failure(exc)}") from None
    finally:
        client.close()
    peers = peers_from_reply(reply, version)
    if not peers:
        out(f"No IPv{version} peers found.\n")
        return
    out(render_table(peers))


def _reply_failure(exc: bird.BirdError) -> str:
    if "unexpected line" in str(exc):
        return "unexpected output line from BIRD"
    if isinstance(exc.__cause__, TimeoutError) or "timed out" in str(exc):
        return "i/o timeout"
    return str(exc)


def node_status(run_dir: Path, out: Callable[[str], None],
                argvs: Callable[[], list[list[str]]] = running_argvs) -> None:
    processes = argvs()
    if not ps_contains(["calico-felix"], processes) and not ps_contains(["calico-node", "-felix"], processes):
        raise CommandFailed("Calico process is not running.")
    out("Calico process is running.\n")
    bird4, bird6 = ps_contains(["bird"], processes), ps_contains(["bird6"], processes)
    if bird4 or bird6:
        if bird4:
            bird_peers(4, run_dir, out)
        else:
            out("\nINFO: BIRDv4 process: 'bird' is not running.\n")
        if bird6:
            bird_peers(6, run_dir, out)
        else:
            out("\nINFO: BIRDv6 process: 'bird6' is not running.\n")
    else:
        out("\nThe BGP backend process (BIRD) is not running.\n")
    out("\n")
