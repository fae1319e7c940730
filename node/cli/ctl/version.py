"""``calicoctl version [--client] [--poll DURATION]``: this tool's version and the cluster's.

The cluster's version and type come from the ClusterInformation ``default`` that
calico/node's startup writes. Lines are laid out as calicoctl prints them
(``Client Version:    v3...``). With ``--poll`` the cluster lines are printed again
whenever they change, until interrupted.
"""
from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import node
from node.cli.ctl._common import CommandFailed, client_from_args
from node.errors import CalicoError, ConfigError

log = logging.getLogger(__name__)

UNKNOWN_COMMIT = "<unknown>"  # what Calico's build stamps when git cannot tell


def register(subparsers) -> None:
    p = subparsers.add_parser("version", help="show the version of calicoctl and of the cluster",
                              description="Show the version of calicoctl and, when it can be reached, "
                                          "of the cluster.")
    p.add_argument("--client", action="store_true", help="show the client version only")
    p.add_argument("--poll", default="", metavar="DURATION",
                   help="re-check the cluster version at this interval (Go duration: 10s, 1m30s...)")
    p.set_defaults(func=cmd_version)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string (``1h10m``, ``1.5s``, ``0``); negative ones are
    refused since a poll interval cannot be negative."""
    body = text[1:] if text[:1] == "+" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError("empty duration")
    return total


def git_revision() -> str:
    """The commit this package's source is checked out at, as Calico stamps its builds;
    ``<unknown>`` when the source is not a git checkout (or git is missing)."""
    here = Path(node.__file__).resolve().parent
    try:
        tracked = subprocess.run(["git", "-C", str(here), "ls-files", "--error-unmatch", "__init__.py"],
                                 capture_output=True, text=True, timeout=5)
        if tracked.returncode != 0:
            return UNKNOWN_COMMIT
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_COMMIT
    return head.stdout.strip() if head.returncode == 0 and head.stdout.strip() else UNKNOWN_COMMIT


def _line(title: str, value: str) -> str:
    return f"{title:<18} {value}"


def show_cluster_version(client, poll: float, sleep: Callable[[float], None] = time.sleep) -> int:
    """Print the cluster's version and type; with ``poll`` keep printing changes."""
    shown = ("", "")
    while True:
        error = None
        try:
            info = client.get("ClusterInformation", "default")
            version = info.spec.get("calicoVersion") or "unknown"
            cluster_type = info.spec.get("clusterType") or "unknown"
            if version != shown[0]:
                print(_line("Cluster Version:", version), flush=True)
            if cluster_type != shown[1]:
                print(_line("Cluster Type:", cluster_type), flush=True)
            shown = (version, cluster_type)
        except CalicoError as exc:
            error = f"unable to retrieve Cluster Version or Type: {exc}"
            shown = ("", "")  # show them again once they can be read
        if not poll:
            if error:
                raise CommandFailed(error)
            return 0
        if error:
            print(error, file=sys.stderr, flush=True)
        sleep(poll)


def cmd_version(args) -> int:
    poll = 0.0
    if args.poll:
        try:
            poll = parse_duration(args.poll)
        except ValueError:
            raise CommandFailed(f"invalid poll duration specified: {args.poll}") from None
    print(_line("Client Version:", node.__version__))
    print(_line("Git commit:", git_revision()), flush=True)
    if args.client:
        return 0
    try:
        client = client_from_args(args)
    except ConfigError as exc:
        log.debug("no datastore client: %s", exc)
        print("Unable to detect installed Calico version")
        return 0
    return show_cluster_version(client, poll)
