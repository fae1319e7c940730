"""``calico-node hostpath-init`` (Calico's ``calico-node -hostpath-init``): prepare the
host directories for a calico-node that runs as a non-root user.

    calico-node hostpath-init

Run as root (Calico runs it in an init container) before the node starts as the user
``NODE_USER_ID`` (default 1000). It creates, where missing, with mode 0700:

    $CALICO_LIB_DIR  (/var/lib/calico)
    $CALICO_RUN_DIR  (/var/run/calico)
    $CALICO_LOG_DIR/cni  (/var/log/calico/cni)

and makes ``NODE_USER_ID`` (group 0) the owner of the first two, of ``$CALICO_LOG_DIR``
and of everything in ``$CALICO_LOG_DIR/cni`` (the CNI plugin may have written logs
there already). An entry of that tree that cannot be read is skipped. Symbolic links
are re-owned themselves, never what they point to, so a link planted in the log tree
cannot hand a file elsewhere on the host to that user.

A NODE_USER_ID that is not a number, or a directory that cannot be created or re-owned,
stops it with ``panic: <what failed>`` on stderr and exit status 2, as Calico's panics.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DEFAULT_UID = 1000


def register(subparsers) -> None:
    p = subparsers.add_parser("hostpath-init",
                              help="create the host directories and give them to NODE_USER_ID (non-root node)")
    p.set_defaults(func=_run)


class _Panic(Exception):
    pass


def _mkdir(path: Path) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise _Panic(f"Unable to create directory {path}: {exc.strerror or exc}") from None


def _chown(path: Path | str, uid: int) -> None:
    try:
        os.chown(path, uid, 0, follow_symlinks=False)
    except OSError as exc:
        raise _Panic(f"Unable to chown {path}: {exc.strerror or exc}") from None


def init_hostpaths(env, uid: int) -> None:
    from node.config import Paths

    paths = Paths.from_env(env)
    for directory in (paths.lib_dir, paths.run_dir):
        _mkdir(directory)
        _chown(directory, uid)
    cni = paths.log_dir / "cni"
    _mkdir(cni)
    _chown(paths.log_dir, uid)
    _chown(cni, uid)
    for root, dirs, files in os.walk(cni, onerror=lambda exc: None):
        for name in (*dirs, *files):
            _chown(os.path.join(root, name), uid)


def parse_uid(env) -> int:
    raw = env.get("NODE_USER_ID", "") or str(DEFAULT_UID)
    try:
        return int(raw, 10)
    except ValueError:
        raise _Panic(f"Failed to parse value for UID {raw}") from None


def _run(args) -> int:  # noqa: ARG001
    env = os.environ
    try:
        init_hostpaths(env, parse_uid(env))
    except _Panic as exc:
        print(f"panic: {exc}", file=sys.stderr)
        return 2
    return 0
