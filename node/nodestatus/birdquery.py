"""Ask the running BIRD (IPv4) and BIRD6 over their control sockets, as Calico's status
populators do: a connection per query, 2 s allowed per read, the replies parsed by
``birdtext``.

The sockets are ``$CALICO_RUN_DIR/bird.ctl`` and ``bird6.ctl``. Calico falls back to
``/var/run/bird/`` (a BIRD installed on the host) when those do not answer; that path
would not move with CALICO_RUN_DIR, and on a machine running several nodes it would
report another node's BIRD, so it is not tried: point CALICO_RUN_DIR there instead.
"""
from __future__ import annotations

import os
from pathlib import Path

from node import bird
from node.nodestatus.birdtext import (BirdOutputError, BirdUnavailable, DaemonStatus, Peer, Route, complete_peer,
                                      scan_peers, scan_routes, scan_status, socket_suffix)
from node.nodestatus.status import AGENT, BGP, ROUTES

BIRD_TIMEOUT = 2.0


class BirdQueryError(Exception):
    """BIRD answered, but not with something usable (the query fails)."""


def dial_error(path: Path, exc: BaseException) -> str:
    """Go's wording for a failed ``net.Dial("unix", path)``, e.g. ``dial unix /x: connect:
    no such file or directory``."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, OSError) and cause.errno:
        reason = os.strerror(cause.errno)
        return f"dial unix {path}: connect: {reason[:1].lower()}{reason[1:]}"
    return f"dial unix {path}: {exc}"


class BirdQuery:
    """``query(family, class)`` for ``status.populate`` and ``tables.show_text``."""

    def __init__(self, run_dir: Path, timeout: float = BIRD_TIMEOUT):
        self.run_dir = Path(run_dir)
        self.timeout = timeout

    def socket_path(self, family: str) -> Path:
        return self.run_dir / f"bird{socket_suffix(family)}.ctl"

    def _connect(self, family: str) -> tuple[bird.BirdClient, tuple[str, ...]]:
        path = self.socket_path(family)
        client = bird.BirdClient(path, timeout=self.timeout)
        try:
            greeting = client.connect()
        except bird.BirdUnreachable as exc:
            client.close()
            raise BirdUnavailable(f"Error querying BIRD: unable to connect to BIRDv{family} socket: "
                                  f"{dial_error(path, exc)}") from exc
        except bird.BirdError as exc:
            client.close()
            raise BirdQueryError(f"Error executing command: {exc}") from exc
        return client, greeting.raw

    @staticmethod
    def _command(client: bird.BirdClient, text: str) -> tuple[str, ...]:
        try:
            return client.command(text).raw
        except bird.BirdError as exc:
            raise BirdQueryError(f"Error executing command: {exc}") from exc

    def daemon_status(self, family: str) -> DaemonStatus:
        client, greeting = self._connect(family)
        try:
            return scan_status(greeting + self._command(client, "show status"))
        finally:
            client.close()

    def peers(self, family: str) -> list[Peer]:
        client, greeting = self._connect(family)
        try:
            try:
                peers = scan_peers(greeting + self._command(client, "show protocols"), family)
            except BirdOutputError as exc:
                raise BirdQueryError(f"Error executing command: {exc}") from exc
            return [complete_peer(p, self._command(client, f"show protocols all {p.session}")) for p in peers]
        finally:
            client.close()

    def routes(self, family: str) -> list[Route]:
        client, greeting = self._connect(family)
        try:
            return scan_routes(greeting + self._command(client, "show route"))
        except BirdOutputError as exc:
            raise BirdQueryError(f"Error executing command: {exc}") from exc
        finally:
            client.close()

    def __call__(self, family: str, cls: str):
        if cls == AGENT:
            return self.daemon_status(family)
        if cls == BGP:
            return self.peers(family)
        if cls == ROUTES:
            return self.routes(family)
        raise ValueError(f"unknown CalicoNodeStatus class {cls!r}")
