"""Run a real BIRD for a test: inside a throwaway network namespace, foreground, with its
control socket in a test directory. Always stopped (by its pid) when the test ends."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from netns import Namespace
from node import bird
from e2e.probes import eventually as wait_for  # noqa: F401 (used here and by importers)


class BirdProcess:
    def __init__(self, ns: Namespace, config: Path, socket_path: Path, binary: str = "bird"):
        self.ns = ns
        self.config = config
        self.socket_path = socket_path
        self.binary = binary
        self.proc: subprocess.Popen | None = None
        self.log = socket_path.with_suffix(".log")

    def start(self, timeout: float = 10.0) -> "BirdProcess":
        logfile = open(self.log, "w")
        # In the foreground logging to stderr (-d), here the log file; -f would log to
        # syslog, which without /dev/log glibc writes to the machine's console.
        self.proc = self.ns.popen(self.binary, "-d", "-c", str(self.config), "-s", str(self.socket_path),
                                  stdout=logfile, stderr=subprocess.STDOUT)
        logfile.close()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.binary} exited ({self.proc.returncode}): {self.log.read_text()}")
                try:
                    with bird.BirdClient(self.socket_path, timeout=2):
                        return self
                except bird.BirdError:
                    time.sleep(0.05)
            raise RuntimeError(f"{self.binary} did not open {self.socket_path}: {self.log.read_text()}")
        except BaseException:
            self.stop()  # callers never get the object (nor __exit__) when start fails
            raise

    @property
    def pid(self) -> int | None:
        """BIRD's own pid (``ip netns exec`` execs it, so this is the Popen pid)."""
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc, grace=5)

    def __enter__(self) -> "BirdProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
