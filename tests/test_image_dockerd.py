"""The dockerd that make image and the tests start when none runs (scripts/dockerd.py):
it must answer, leave this machine's links, iptables and forwarding as they were, and be
gone once stopped. Checked on a private instance (own socket, data and exec roots) so the
machine's own daemon, if any, is not involved."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from docker_env import dockerd_script  # scripts/dockerd.py

pytestmark = pytest.mark.docker


def _host_network() -> dict[str, str]:
    state = {
        "links": subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout,
        "ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text(),
    }
    for tool in ("iptables-legacy-save", "iptables-nft-save", "ip6tables-legacy-save", "ip6tables-nft-save"):
        run = subprocess.run([tool], capture_output=True, text=True)
        if run.returncode == 0:
            state[tool] = "\n".join(line for line in run.stdout.splitlines() if not line.startswith(("#", ":")))
    # Link counters change all the time; keep names and flags only.
    state["links"] = "\n".join(line.split(" link/")[0].rsplit(" qlen", 1)[0] for line in state["links"].splitlines())
    return state


def test_quiet_dockerd_leaves_the_host_network_alone():
    before = _host_network()
    root = Path(tempfile.mkdtemp(prefix="calico-quiet-dockerd-"))
    socket = f"unix://{root}/docker.sock"
    command = ["dockerd", *dockerd_script.QUIET_NETWORK_OPTIONS, "--data-root", str(root / "data"),
               "--exec-root", str(root / "exec"), "-H", socket, "--pidfile", str(root / "docker.pid")]
    daemon = dockerd_script.start_dockerd(command, socket, root / "dockerd.log")
    try:
        assert dockerd_script.answers(socket)
        during = _host_network()
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert daemon.proc.poll() is not None
    assert not dockerd_script.answers(socket)
    assert during == before
    assert _host_network() == before


def test_a_docker_host_that_does_not_answer_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(dockerd_script.DockerdError, match="does not answer"):
        dockerd_script.ensure_dockerd(tmp_path / "log")
