"""Felix's MTU file: ``$CALICO_LIB_DIR/mtu`` (``/var/lib/calico/mtu``) holds the MTU pods
should use, as a bare decimal number.

The CNI plugin reads it when its own ``mtu`` is 0 (Calico's manifests' ``veth_mtu: "0"``,
"work it out"), so pods get the tunnel's MTU rather than 1500 on an encapsulated network.
Felix writes it once at start; the agent writes it whenever the value differs from the
file (at start, and when the host's MTU or the encapsulation changes), and looks at the
file again every ``reread_interval`` (and after a failure), so a file someone removed or
changed comes back.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

from node.files import write_atomically

log = logging.getLogger(__name__)

FILE_NAME = "mtu"
REREAD_INTERVAL = 90.0


class MTUFileWriter:
    def __init__(self, lib_dir: str | os.PathLike, *, reread_interval: float = REREAD_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.path = Path(lib_dir) / FILE_NAME
        self.reread_interval = reread_interval
        self._clock = clock
        self._read_at = float("-inf")
        self._written: int | None = None  # what the file holds, as far as we know
        self._failure: str | None = None
        self.writes = 0

    def apply(self, pod_mtu: int, host_mtu: int | None = None) -> str | None:
        """Make the file hold ``pod_mtu``; None on success, else the failure (naming the
        file; logged once while it stays the same, and tried again at the next call)."""
        now = self._clock()
        if self._written is None or now - self._read_at >= self.reread_interval:
            self._written = self._read()
            self._read_at = now
        if self._written == pod_mtu:
            return None
        if host_mtu is not None and pod_mtu > host_mtu:
            log.warning("the pods' MTU %d is larger than the host interface's MTU %d", pod_mtu, host_mtu)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, str(pod_mtu), 0o644)  # the old number or the new, never half
        except OSError as exc:
            self._written = None
            failure = f"cannot write the MTU file {self.path} ({exc}); pods' MTU may not be set properly"
            if failure != self._failure:
                log.error("%s", failure)
            self._failure = failure
            return failure
        log.info("pod MTU %d written to %s", pod_mtu, self.path)
        self._failure = None
        self._written = pod_mtu
        self.writes += 1
        return None

    def _read(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None
