"""``calico-node health``: the node's liveness and readiness checks, with Calico's rules,
messages and exit codes (node/pkg/health in Calico), so the DaemonSet's probes
(``-felix-live -bird-live``, ``-felix-ready -bird-ready``) work unchanged.

Checks (the selected ones run concurrently; the first failure is printed on stdout and
the exit code is 1; success prints nothing and exits 0):

* felix-live / felix-ready: GET Felix's ``/liveness`` / ``/readiness`` on
  ``FELIX_HEALTHHOST:FELIX_HEALTHPORT`` (localhost:9099); 200-399 is OK.
* bird-live / bird6-live: supervisord reports ``confd`` and ``bird`` (``bird6``)
  RUNNING (Calico asks runit with ``sv status``), and BIRD answers ``show status`` on its
  control socket (Calico runs ``birdcl``).
* bird-ready / bird6-ready: BIRD's BGP sessions (``show protocols``). No Calico peers:
  ready. While the node started less than ``threshold-time`` ago (the nodename file's
  mtime; startup rewrites it on every start) every peer must be Established and no
  graceful restart may be in progress; later, one Established peer is enough.

Paths follow ``CALICO_LIB_DIR`` (nodename file; ``CALICO_NODENAME_FILE`` overrides) and
``CALICO_RUN_DIR`` (BIRD and supervisord sockets). When ``CALICO_RUN_DIR`` is not set,
the readiness checks look for a BIRD socket missing from /var/run/calico in
/var/run/bird, as Calico does for non-containerised installs (with it set, a node's
checks never wander into another node's or the host's BIRD).
"""
from __future__ import annotations

import ast
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import Callable, Mapping

from node import bird
from node.config import Paths
from node.felix.health import PROBE_PREFIX, check_felix, felix_health_endpoint
from node.supervise.layout import Layout
from node.supervise.rpc import RUNNING, NoSuchProcess, Supervisor, SupervisorError, status_line

log = logging.getLogger("node.health")

NOT_READY = PROBE_PREFIX  # "calico/node is not ready: "
NO_CHECKS = ("calico/node check error: must specify at least one of -bird-live, -bird6-live, -felix-live, "
             "-bird, -bird6, or -felix")
DEFAULT_THRESHOLD = 30.0
BIRD_TIMEOUT = 2.0  # Calico's read deadline for each line from BIRD
LEGACY_BIRD_RUN_DIR = Path("/var/run/bird")

_PEER_NAME = re.compile(r"^(Global|Node|Mesh)_(.+)$")
_PEER_TYPES = {"Global": "global", "Mesh": "node-to-node mesh", "Node": "node specific"}
_HEADINGS = ["name", "proto", "table", "state", "since", "info"]


class CheckFailed(Exception):
    """One check's failure, worded as Calico prints it."""


@dataclass(frozen=True)
class Selection:
    felix_live: bool = False
    felix_ready: bool = False
    bird_live: bool = False
    bird6_live: bool = False
    bird_ready: bool = False
    bird6_ready: bool = False

    def any(self) -> bool:
        return any((self.felix_live, self.felix_ready, self.bird_live, self.bird6_live,
                    self.bird_ready, self.bird6_ready))


@dataclass(frozen=True)
class BGPPeer:
    peer_ip: str
    peer_type: str
    state: str
    since: str
    bgp_state: str
    info: str


# -- Go-shaped error texts ----------------------------------------------------------------

def _errno_text(exc: BaseException | None) -> str:
    """An OS error as Go's syscall.Errno prints it (lower-case strerror)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) if exc is not None else "unknown error"


# -- BIRD ------------------------------------------------------------------------------

def bird_socket(paths: Paths, ipv: str, env: Mapping[str, str]) -> Path:
    primary = paths.bird6_socket if ipv == "6" else paths.bird_socket
    if env.get("CALICO_RUN_DIR"):
        return primary
    if primary.exists() and not primary.is_dir():
        return primary
    log.debug("BIRD socket %s does not exist, trying %s", primary, LEGACY_BIRD_RUN_DIR)
    return LEGACY_BIRD_RUN_DIR / primary.name


def _connect(path: Path, ipv: str) -> bird.BirdClient:
    client = bird.BirdClient(path, timeout=BIRD_TIMEOUT)
    try:
        client.connect()
    except bird.BirdError as exc:
        client.close()
        raise CheckFailed(f"error querying BIRD: unable to connect to BIRDv{ipv} socket: "
                          f"dial unix {path}: connect: {_errno_text(exc.__cause__ or exc)}") from None
    return client


def _raw(reply: bird.Reply, index: int) -> str:
    code, text = reply.lines[index]
    return f"{code:04d}{' ' if index == len(reply.lines) - 1 else '-'}{text}"


def parse_peer_row(row: str, ipv: str) -> BGPPeer | None:
    """One row of ``show protocols`` as a Calico BGP peer, or None if it is not one."""
    columns = row.split()
    if len(columns) < 6 or columns[1] != "BGP":
        return None
    m = _PEER_NAME.match(columns[0])
    if not m:
        return None
    return BGPPeer(peer_ip=m.group(2).replace("_", ":" if ipv == "6" else "."), peer_type=_PEER_TYPES[m.group(1)],
                   state=columns[3], since=columns[4], bgp_state=columns[5], info=" ".join(columns[6:]))


def scan_peers(reply: bird.Reply, ipv: str) -> list[BGPPeer]:
    peers = []
    for index, (code, text) in enumerate(reply.lines):
        if code == 0:
            break
        if code == 1:
            continue
        if code == 2002:
            if text.split() != _HEADINGS:
                raise CheckFailed("error executing command: unknown BIRD table output format")
        elif code == 1002:
            peer = parse_peer_row(text, ipv)
            if peer is not None:
                peers.append(peer)
        else:
            raise CheckFailed(f"error executing command: unexpected output line from BIRD: '{_raw(reply, index)}'")
    return peers


def _read_failure(exc: bird.BirdError, path: Path) -> str:
    """A failure reading BIRD's reply, worded as Calico's scanner words it: a line that is
    not BIRD's ``NNNN-``/``NNNN `` form is an unexpected output line, quoted."""
    prefix = f"unexpected line from BIRD at {path}: "
    text = str(exc)
    if text.startswith(prefix):
        try:
            line = ast.literal_eval(text[len(prefix):])
        except (ValueError, SyntaxError):
            line = text[len(prefix):]
        return f"unexpected output line from BIRD: '{line}'"
    return text


def get_peers(path: Path, ipv: str) -> list[BGPPeer]:
    client = _connect(path, ipv)
    try:
        reply = client.command("show protocols")
    except bird.BirdError as exc:
        raise CheckFailed(f"error executing command: {_read_failure(exc, path)}") from None
    finally:
        client.close()
    return scan_peers(reply, ipv)


def gr_in_progress(path: Path, ipv: str) -> bool:
    client = _connect(path, ipv)
    try:
        reply = client.command("show status")
    except bird.BirdError as exc:
        raise CheckFailed(_read_failure(exc, path)) from None
    finally:
        client.close()
    for index, (code, _text) in enumerate(reply.lines):
        if code == 13:
            break
        if code == 24:
            return True
        if code not in (1, 1000, 1011):
            raise CheckFailed(f"unexpected output line from BIRD: '{_raw(reply, index)}'")
    return False


def check_bird_ready(ipv: str, threshold: float, nodename_file: Path, socket: Path,
                     now: Callable[[], float] = time.time) -> None:
    try:
        started = os.stat(nodename_file).st_mtime
    except OSError as exc:
        raise CheckFailed(f"failed to stat() nodename file: stat {nodename_file}: {_errno_text(exc)}") from None
    peers = get_peers(socket, ipv)
    others = [p.peer_ip for p in peers if p.bgp_state != "Established"]
    established = len(peers) - len(others)
    log.info("Number of node(s) with BGP peering established = %d", established)
    if not peers:
        log.debug("There are no bgp peers, returning ready.")
    elif now() - started < threshold:
        # Just after a start every session must be up, so a rolling update waits for BGP.
        if others:
            raise CheckFailed(f"BGP not established with {','.join(others)}")
        if gr_in_progress(socket, ipv):
            raise CheckFailed("graceful restart in progress")
    elif established == 0:
        # Later one session is enough, so a mesh does not go unready when some nodes go down.
        raise CheckFailed(f"BGP not established with {','.join(others)}")


def check_bird_live(binary: str, socket: Path, supervisor: Supervisor) -> None:
    for service in ("confd", binary):
        try:
            info = supervisor.process_info(service)
        except NoSuchProcess:
            # Calico's `sv status` of a service that is not there fails: exit status 1.
            log.warning("liveness: no %s program in supervisord", service)
            raise CheckFailed(f"{binary}/confd is not live: exit status 1") from None
        except SupervisorError as exc:
            raise CheckFailed(f"{binary}/confd is not live: {exc}") from None
        if info.get("statename") != RUNNING:
            raise CheckFailed(f"{binary}/confd is not live: service {service} is not running. "
                              f"Output << {status_line(info)} >>")
    client = bird.BirdClient(socket, timeout=BIRD_TIMEOUT)
    try:
        greeting = client.connect()
        reply = client.command("show status")
    except bird.BirdError as exc:
        # Calico runs birdcl, which exits 1 when it cannot talk to BIRD.
        log.warning("liveness: %s does not answer on %s: %s", binary, socket, exc)
        raise CheckFailed(f"{binary} is not live: exit status 1") from None
    finally:
        client.close()
    # What birdcl prints: every line but code 0000's, each ending in a newline.
    output = "".join(f"{text}\n" for code, text in (*greeting.lines, *reply.lines) if code != 0)
    if not output.startswith("BIRD") or not reply.ok:
        raise CheckFailed(f"bad response from {binary}: {output}")


# -- running the selection --------------------------------------------------------------

def run_checks(selection: Selection, threshold: float, env: Mapping[str, str] | None = None) -> str | None:
    """Run the selected checks concurrently; the first failure's message, or None."""
    env = os.environ if env is None else env
    if not selection.any():
        return NO_CHECKS
    paths = Paths.from_env(env)
    from startup.nodename import nodename_file

    jobs: list[tuple[str, Callable[[], None]]] = []
    if selection.felix_live or selection.felix_ready:
        host, port = felix_health_endpoint(env)

        def felix(probe: str) -> Callable[[], None]:
            def job() -> None:
                ok, message = check_felix(probe, host, port, timeout=threshold)
                if not ok:
                    raise CheckFailed(message[len(NOT_READY):] if message.startswith(NOT_READY) else message)
            return job

        if selection.felix_live:
            jobs.append(("felix-live", felix("liveness")))
        if selection.felix_ready:
            jobs.append(("felix-ready", felix("readiness")))
    supervisor = Supervisor(Layout(paths).server_url, timeout=threshold)
    for ipv, binary, live, ready, label in (("4", "bird", selection.bird_live, selection.bird_ready, "BIRD"),
                                            ("6", "bird6", selection.bird6_live, selection.bird6_ready, "BIRD6")):
        if live:
            # Calico's liveness check asks /var/run/calico only (no /var/run/bird fallback).
            ctl = paths.bird6_socket if ipv == "6" else paths.bird_socket
            jobs.append((f"{binary}-live", lambda b=binary, s=ctl: check_bird_live(b, s, supervisor)))
        if ready:
            def ready_job(ipv=ipv, socket=bird_socket(paths, ipv, env), label=label) -> None:
                try:
                    check_bird_ready(ipv, threshold, nodename_file(env), socket)
                except CheckFailed as exc:
                    raise CheckFailed(f"{label} is not ready: {exc}") from None
            jobs.append((f"{binary}-ready", ready_job))

    results: Queue = Queue()

    def worker(name: str, job: Callable[[], None]) -> None:
        try:
            job()
            results.put((name, None))
        except CheckFailed as exc:
            results.put((name, f"{NOT_READY}{exc}"))
        except Exception as exc:  # a bug in a check must still fail the probe, with a message
            log.error("check %s failed unexpectedly", name, exc_info=exc)
            results.put((name, f"{NOT_READY}{name}: unexpected {type(exc).__name__}: {exc}"))

    for name, job in jobs:
        threading.Thread(target=worker, args=(name, job), name=f"health-{name}", daemon=True).start()
    # Each check bounds itself (HTTP by the threshold, BIRD by 2 s per reply line, supervisord
    # by the threshold); this bound only guards against a check that never returns.
    deadline = time.monotonic() + threshold + 2 * BIRD_TIMEOUT + 5
    for _ in jobs:
        try:
            _name, failure = results.get(timeout=max(0.0, deadline - time.monotonic()))
        except Empty:
            return f"{NOT_READY}health checks did not finish within {threshold:g}s"
        if failure is not None:
            return failure
    return None
