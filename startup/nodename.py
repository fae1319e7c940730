"""Which name this node has, and the nodename file that remembers it.

The order is Calico's: NODENAME (trimmed, case kept), the nodename file (verbatim, not
even trimmed), HOSTNAME (trimmed, lower-cased), then the OS hostname (the same). Other
components (BIRD health, Felix, the tunnel allocator) read the file, and its mtime
marks when this node last started, so it is rewritten on every start.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Callable, Mapping

from node.config import Paths
from startup.logs import Fatal

log = logging.getLogger(__name__)


def nodename_file(env: Mapping[str, str]) -> Path:
    """CALICO_NODENAME_FILE, else ``nodename`` under CALICO_LIB_DIR (/var/lib/calico)."""
    explicit = env.get("CALICO_NODENAME_FILE", "")
    return Path(explicit) if explicit else Paths.from_env(env).nodename_file


def read_nodename_file(path: Path) -> str:
    """The stored name exactly as written; empty when the file does not exist."""
    try:
        return path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        log.debug("File does not exist: %s", path)
        return ""
    except OSError as exc:
        raise Fatal(f"Failed to read {path} error={exc.strerror or exc}") from None


def os_hostname() -> str:
    return socket.gethostname()


def determine_node_name(env: Mapping[str, str], hostname: Callable[[], str] = os_hostname) -> str:
    """The node name by Calico's precedence, logging which source won."""
    name = env.get("NODENAME", "").strip()
    if name:
        log.info("Using NODENAME environment for node name %s", name)
    else:
        path = nodename_file(env)
        name = read_nodename_file(path)
        if name:
            log.info("Using stored node name %s from %s", name, path)
        else:
            name = env.get("HOSTNAME", "").strip().lower()
            if name:
                log.info("Using HOSTNAME environment (lowercase) for node name %s", name)
            else:
                try:
                    name = hostname().strip().lower()
                except OSError as exc:
                    raise Fatal(f"Unable to determine hostname error={exc}") from None
                if not name:
                    raise Fatal("Unable to determine hostname: the OS hostname is empty; set NODENAME")
                log.warning("Using auto-detected node name. It is recommended that an explicit value is "
                            "supplied using the NODENAME environment variable.")
    log.info("Determined node name: %s", name)
    return name


def write_nodename_file(path: Path, name: str) -> None:
    """Write the name with mode 0644 and no trailing newline (readers take it verbatim)."""
    log.debug("Writing %s to %s", name, path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(name.encode("utf-8", "surrogateescape"))
    except OSError as exc:
        raise Fatal(f"Unable to write to {path} error={exc.strerror or exc}") from None
