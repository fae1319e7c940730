"""Docker for tests: the machine's daemon, the node image, and a daemon in a namespace.

* ``system_docker()`` - a client for the machine's Docker daemon. When none answers, one
  is started (scripts/dockerd.py: no iptables rules, bridge or forwarding changes) and
  stopped when the test process exits; a daemon that was already running is left alone.
* ``node_image()`` - ``make image`` once per test process (cached by Docker and by
  scripts/build_image.py, so a repeat takes seconds); returns the tag.
* ``NamespacedDockerd`` - a second, private dockerd whose containers live in a network
  namespace made for the test. It runs in that namespace and in a mount namespace of its
  own where ``/run`` and ``/var/lib`` are empty tmpfs and ``/sys`` is the namespace's
  sysfs. A container started there with ``--net=host`` (as ``calicoctl node run``
  starts calico-node) therefore shares the test namespace's network, and its
  ``-v /run:/run``, ``-v /var/run/calico`` and ``-v /var/lib/calico`` mounts land in
  those tmpfs: nothing of the host's network, /run or /var/lib is touched. Closing it
  removes every container, stops the daemon, ends anything left in the namespace,
  deletes the namespace and the daemon's directory.
"""
from __future__ import annotations

import atexit
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from netns import Closing, Namespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import dockerd as dockerd_script  # noqa: E402  (scripts/dockerd.py)

IMAGE = "calico-node-py:latest"
_started: dict = {}


def system_docker() -> docker.DockerClient:
    """A client for the machine's daemon, starting one for this test run if needed."""
    if "client" not in _started:
        log = Path(tempfile.gettempdir()) / "calico-node-py-test-dockerd.log"
        daemon = dockerd_script.ensure_dockerd(log)
        if daemon is not None:
            atexit.register(daemon.stop)
        _started["daemon"] = daemon
        _started["client"] = docker.from_env(timeout=300)
    return _started["client"]


def node_image() -> str:
    """Build the node image with ``make image`` (once per test process)."""
    if "image" not in _started:
        system_docker()
        started = time.monotonic()
        run = subprocess.run(["make", "-s", "image"], cwd=REPO, capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, f"make image failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
        _started["image"] = IMAGE
        _started["image_seconds"] = time.monotonic() - started
    return _started["image"]


# Inside the daemon's own mount namespace: the namespace's sysfs (keeping the cgroup
# mounts dockerd needs), and empty /run and /var/lib for the containers' host mounts.
_MOUNT_SETUP = """set -e
mount --rbind /sys/fs/cgroup "$CGROUP_KEEP"
mount -t sysfs sysfs /sys
mount --move "$CGROUP_KEEP" /sys/fs/cgroup
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /var/lib
mkdir -p /var/lib/calico /run/calico
exec dockerd "$@"
"""


class NamespacedDockerd(Closing):
    """A private dockerd whose host-network containers live in a fresh network namespace."""

    def __init__(self, prefix: str = "cimg"):
        self.ns = Namespace(prefix)
        self.dir = Path(tempfile.mkdtemp(prefix="calico-dockerd-"))
        self.socket = self.dir / "docker.sock"
        self.base_url = f"unix://{self.socket}"
        self.daemon: dockerd_script.StartedDockerd | None = None
        self.client: docker.DockerClient | None = None

    def setup(self) -> None:
        """Run by ``with``; on failure ``close()`` undoes what was done."""
        self.ns.__enter__()
        keep = self.dir / "cgroup"
        for sub in ("data", "exec", "cgroup"):
            (self.dir / sub).mkdir()
        args = ["--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
                "-H", self.base_url, "--pidfile", str(self.dir / "docker.pid"),
                *dockerd_script.QUIET_NETWORK_OPTIONS]
        command = ["nsenter", f"--net=/run/netns/{self.ns.name}", "unshare", "--mount", "--propagation", "private",
                   "--", "env", f"CGROUP_KEEP={keep}", "sh", "-c", _MOUNT_SETUP, "sh", *args]
        self.daemon = dockerd_script.start_dockerd(command, self.base_url, self.dir / "dockerd.log")
        self.client = docker.DockerClient(base_url=self.base_url, timeout=300)

    def load_image(self, source: docker.DockerClient, tag: str) -> None:
        """Copy ``tag`` from another daemon into this one (docker save | docker load)."""
        assert self.client is not None
        self.client.images.load(source.images.get(tag).save(chunk_size=1 << 20, named=tag))
        self.client.images.get(tag)

    @property
    def env(self) -> dict[str, str]:
        """Environment that points Docker clients (calicoctl's too) at this daemon."""
        return {"DOCKER_HOST": self.base_url}

    def close(self) -> None:
        try:
            if self.client is not None:
                for container in self.client.containers.list(all=True):
                    try:
                        container.remove(force=True)
                    except docker.errors.APIError:
                        pass
                self.client.close()
        except Exception:
            pass  # the daemon is gone already: the namespace sweep below ends what is left
        finally:
            if self.daemon is not None:
                self.daemon.stop()
            self._kill_namespace_processes()
            self.ns.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_namespace_processes(self) -> None:
        if not self.ns._open:
            return
        for signal in ("TERM", "KILL"):
            pids = subprocess.run(["ip", "netns", "pids", self.ns.name], capture_output=True, text=True).stdout.split()
            if not pids:
                return
            subprocess.run(["kill", f"-{signal}", *pids], capture_output=True)
            time.sleep(1)

    def log_tail(self) -> str:
        return self.daemon.log_tail(40) if self.daemon else ""


def ns_command(ns: Namespace, argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv`` run inside ``ns`` with ``env`` set (for subprocess)."""
    return ["ip", "netns", "exec", ns.name, "env", *(f"{k}={v}" for k, v in env.items()), *argv]
