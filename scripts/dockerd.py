"""Make sure a Docker daemon answers, starting one that leaves the host's network alone.

Used by ``make image`` (scripts/build_image.py) and by the test fixtures. When a daemon
already answers (``DOCKER_HOST`` or the default socket) it is used as it is. Otherwise
``dockerd`` is started with the options that keep it from changing the host's network
configuration: no iptables or ip6tables rules, no docker0 bridge and no forwarding
sysctl. Builds then use ``--network=host`` and the node's containers run with host
networking, neither of which needs those.

Run as a script it ensures a daemon and leaves it running::

    python3 scripts/dockerd.py          # prints what it did
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# Options that keep dockerd off the host's network configuration (see the docstring).
QUIET_NETWORK_OPTIONS = ("--iptables=false", "--ip6tables=false", "--ip-forward=false",
                         "--ip-masq=false", "--bridge=none")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class DockerdError(RuntimeError):
    """dockerd is missing, or could not be started or reached."""


def answers(base_url: str, timeout: float = 5.0) -> bool:
    """Whether a Docker daemon answers a ping at ``base_url``."""
    import docker

    try:
        client = docker.APIClient(base_url=base_url, timeout=timeout, version="auto")
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:
        return False
    finally:
        client.close()


@dataclass
class StartedDockerd:
    """A dockerd this process started: stop() ends it (and the containerd it runs)."""

    proc: subprocess.Popen
    base_url: str
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_dockerd(command: list[str], base_url: str, log_path: Path,
                  timeout: float = START_TIMEOUT) -> StartedDockerd:
    """Run ``command`` (dockerd, or something that execs it) and wait until a daemon
    answers at ``base_url``. The process is in its own session, so it outlives the caller
    unless stopped."""
    if not _which("dockerd"):
        raise DockerdError("dockerd is not installed (Debian package docker.io; make setup installs it)")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    started = StartedDockerd(proc, base_url, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DockerdError(f"dockerd exited with status {proc.returncode}; its log ({log_path}) ends:\n"
                               f"{started.log_tail()}")
        if answers(base_url, timeout=2):
            return started
        time.sleep(0.3)
    started.stop()
    raise DockerdError(f"dockerd did not answer at {base_url} within {timeout:.0f}s; its log ({log_path}) ends:\n"
                       f"{started.log_tail()}")


def _which(name: str) -> str | None:
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


def ensure_dockerd(log_path: Path) -> StartedDockerd | None:
    """None when a daemon already answers; else the one started here on the default socket.

    A ``DOCKER_HOST`` that does not answer is an error: a daemon somewhere else is not
    ours to start.
    """
    configured = os.environ.get("DOCKER_HOST", "")
    base_url = configured or DEFAULT_SOCKET
    if answers(base_url):
        return None
    if configured:
        raise DockerdError(f"DOCKER_HOST={configured} does not answer; start that daemon or unset DOCKER_HOST")
    return start_dockerd(["dockerd", *QUIET_NETWORK_OPTIONS], base_url, log_path)


def main() -> int:
    log_path = Path("/var/log/calico-node-py/dockerd.log")
    try:
        started = ensure_dockerd(log_path)
    except DockerdError as exc:
        print(f"dockerd: {exc}", file=sys.stderr)
        return 1
    if started is None:
        print("dockerd: a Docker daemon is already running")
    else:
        print(f"dockerd: started dockerd (pid {started.proc.pid}, log {log_path}) without iptables rules, "
              "bridge or forwarding changes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
