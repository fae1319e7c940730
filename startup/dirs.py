"""The host directories calico/node expects to be mounted, created when they are not.

A missing directory usually means a missing hostPath mount, so each creation comes
with a warning that says what will not work well. Creation uses mode bits 0, as
Calico does (only root, which every node process runs as, uses them).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

from node.config import Paths
from startup.logs import Fatal

log = logging.getLogger(__name__)


def _ensure(path: Path, consequence: str) -> None:
    if path.exists():
        return
    try:
        os.makedirs(path, mode=0o000, exist_ok=True)
    except OSError as exc:
        raise Fatal(f"Unable to create '{path}' error={exc.strerror or exc}") from None
    log.warning("Expected %s to be mounted into the container but it wasn't present. %s", path, consequence)


def ensure_directories(env: Mapping[str, str], paths: Paths | None = None) -> None:
    paths = paths or Paths.from_env(env)
    if env.get("CALICO_NETWORKING_BACKEND", "").lower() == "bird":
        _ensure(paths.run_dir, "'calicoctl node status' may provide incomplete status information")
    _ensure(paths.lib_dir, "Node name may not be detected properly")
    if env.get("CALICO_DISABLE_FILE_LOGGING", "").lower() != "true":
        _ensure(paths.log_dir, "'calicoctl node diags' will not be able to collect calico/node logs")
