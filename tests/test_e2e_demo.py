"""``make demo``'s program: a full run prints what the README promises (a dual-stack
cluster) and leaves nothing behind; Ctrl-C in the middle also leaves nothing behind."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from e2e.cluster import cleanup

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix + "-")]


def _demo() -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "KEEP"}
    return subprocess.Popen([sys.executable, "-m", "e2e.demo"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _reap(proc: subprocess.Popen) -> list[str]:
    """The namespaces the demo left behind, which are then removed anyway (with what runs
    in them: etcd and calico-node run in sessions of their own, so killing the demo's
    process group does not end them), and its work directory."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    prefix = f"demo{proc.pid % 10000}"  # e2e/demo.py's cluster prefix
    left = _leftovers(prefix)
    cleanup(prefix)
    for workdir in Path(tempfile.gettempdir()).glob(f"{prefix}-????????"):  # mkdtemp(prefix=prefix + "-")
        shutil.rmtree(workdir, ignore_errors=True)
    return left


def test_demo_runs_and_tears_down():
    proc = _demo()
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        leftovers = _reap(proc)
    assert proc.returncode == 0, out
    for expected in ("host1: Calico node started successfully", "== calicoctl node status on host3",
                     "node-to-node mesh", "Established", "Connectivity before any policy",
                     "Connectivity with the policy", "Tearing down the cluster"):
        assert expected in out, out
    # Dual-stack: BIRD6's mesh over the hosts' IPv6 addresses, pods with both families.
    assert "| fd00:30::12  | node-to-node mesh | up" in out and "No IPv6 peers found" not in out, out
    assert "web-1  on host1: 10.244." in out and ", fd00:244:" in out, out
    assert leftovers == []


def test_ctrl_c_tears_down():
    proc = _demo()
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            if "Calico node started successfully" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        leftovers = _reap(proc)
    assert proc.returncode == 130, out
    assert "Interrupted; tearing down." in out
    assert leftovers == []
