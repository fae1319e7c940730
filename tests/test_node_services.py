"""``calico-node node-services``: the node's small services in one process (Calico v3.32's
``-node-services``). The runner's rules with plain functions as services; then the real
command against a real etcd: its services do their work from their threads, SIGTERM stops
them all (exit 0), and a service that cannot start takes the others down (exit 1)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ipam_fixtures import make_node, make_pool
from node.cli.roles.node_services import Service, run_services, services_for
from node.model import Resource

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")


def _waiting(log: list, name: str):
    def serve(stop, env):
        log.append(f"{name} started")
        stop.wait()
        log.append(f"{name} stopped")
        return 0
    return Service(name, serve)


def _run_in_thread(services, stop):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", run_services(services, {}, stop, grace=5)))
    thread.start()
    return thread, result


def _until(check, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_all_run_until_stop_then_exit_0():
    log, stop = [], threading.Event()
    thread, result = _run_in_thread([_waiting(log, "a"), _waiting(log, "b")], stop)
    assert _until(lambda: len(log) == 2)
    stop.set()
    thread.join(10)
    assert result["code"] == 0
    assert sorted(log) == ["a started", "a stopped", "b started", "b stopped"]


@pytest.mark.parametrize("failure", ["status", "exception", "exit"])
def test_one_failing_stops_the_others_and_exits_1(failure, caplog):
    log, stop = [], threading.Event()
    go = threading.Event()

    def failing(stop_, env):
        go.wait(5)
        if failure == "exception":
            raise RuntimeError("boom")
        if failure == "exit":
            sys.exit(3)
        return 2

    thread, result = _run_in_thread([_waiting(log, "a"), Service("bad", failing), _waiting(log, "b")], stop)
    assert _until(lambda: len(log) == 2)
    go.set()
    thread.join(10)
    assert result["code"] == 1 and stop.is_set()
    assert sorted(log) == ["a started", "a stopped", "b started", "b stopped"]
    assert "Node services exiting due to an error in bad" in caplog.text


def test_a_service_that_finishes_leaves_the_others_running():
    log, stop = [], threading.Event()
    thread, result = _run_in_thread([Service("done", lambda s, e: 0), _waiting(log, "a")], stop)
    assert _until(lambda: log == ["a started"])
    time.sleep(0.2)
    assert thread.is_alive() and not stop.is_set()
    stop.set()
    thread.join(10)
    assert result["code"] == 0


def test_failing_while_stopping_still_counts():
    """A service that fails as the others stop (its syncer's fatal error set ``stop``)."""
    def sets_stop_then_fails(stop, env):
        stop.set()
        return 1

    stop = threading.Event()
    thread, result = _run_in_thread([Service("syncer-died", sets_stop_then_fails)], stop)
    thread.join(10)
    assert result["code"] == 1


@pytest.mark.parametrize("env,expected", [
    ({}, ["complete-startup", "tunnel-ip-allocator", "status-reporter", "monitor-addresses"]),
    ({"CALICO_NETWORKING_BACKEND": "vxlan"},
     ["complete-startup", "tunnel-ip-allocator", "status-reporter", "monitor-addresses"]),
    ({"CALICO_NETWORKING_BACKEND": "none"}, ["complete-startup", "tunnel-ip-allocator", "status-reporter"]),
    ({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "CALICO_NETWORKING_BACKEND": "none"},
     ["complete-startup", "tunnel-ip-allocator", "status-reporter", "cni-config-monitor"]),
    ({"KUBECONFIG": "/etc/kube/config"},
     ["complete-startup", "tunnel-ip-allocator", "status-reporter", "monitor-addresses", "cni-config-monitor"]),
    ({"KUBECONFIG": "/etc/kube/config", "CALICO_MANAGE_CNI": "false"},
     ["complete-startup", "tunnel-ip-allocator", "status-reporter", "monitor-addresses"]),
])
def test_which_services_run(env, expected):
    assert [s.name for s in services_for(env)] == expected


# -- the real command ------------------------------------------------------------------------

def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "NODENAME", "KUBE", "FELIX_", "IP"))}
    env.update({"NODENAME": "ns-node", "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": endpoint,
                "CALICO_RUN_DIR": str(tmp_path / "run"), "CALICO_LIB_DIR": str(tmp_path / "lib"),
                "CALICO_CONFIG_DIR": str(tmp_path / "etc"), "CALICO_LOG_DIR": str(tmp_path / "log"),
                "CALICO_NETWORKING_BACKEND": "none", **extra})
    return env


@pytest.mark.etcd
def test_the_services_work_from_one_process_and_stop_together(etcd_clean, client, tmp_path):
    make_node(client, "ns-node", spec={"bgp": {"ipv4Address": "192.0.2.20/24"}})
    make_pool(client, "vx", "10.77.0.0/24", vxlanMode="Always")
    client.create(Resource("CalicoNodeStatus", {"name": "ns-status"},
                           {"node": "ns-node", "classes": ["Agent"], "updatePeriodSeconds": 1}))
    out = (tmp_path / "out.log").open("w")
    proc = subprocess.Popen([CALICO_NODE, "node-services"], env=_env(tmp_path, etcd_clean.endpoint),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The tunnel address allocator, from its thread, gives the node its VXLAN address...
        assert _until(lambda: client.get("Node", "ns-node").spec.get("ipv4VXLANTunnelAddr"), 30), \
            (tmp_path / "out.log").read_text()
        # ... and the status reporter, from its own, reports BIRD (not running: NotReady).
        assert _until(lambda: (client.get("CalicoNodeStatus", "ns-status").status or {}).get("agent"), 30), \
            (tmp_path / "out.log").read_text()
        agent = client.get("CalicoNodeStatus", "ns-status").status["agent"]
        assert agent["birdV4"]["state"] == "NotReady"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    text = (tmp_path / "out.log").read_text()
    for name in ("complete-startup", "tunnel-ip-allocator", "status-reporter"):
        assert f"Starting {name} service" in text
    assert "monitor-addresses" not in text  # not with the backend none
    assert "Node services shutdown complete" in text
    assert "[INFO]" in text and " node-services/" in text  # Calico's layout, one component
    assert "Traceback" not in text


def test_a_service_that_cannot_start_takes_the_others_down(tmp_path):
    """No usable datastore: the allocator and the reporter cannot make a client; the
    process exits 1 at once (supervisord then restarts it), naming what failed."""
    env = _env(tmp_path, "http://127.0.0.1:1", DATASTORE_TYPE="kubernetes", KUBECONFIG=str(tmp_path / "missing"),
               CALICO_MANAGE_CNI="false")
    run = subprocess.run([CALICO_NODE, "node-services"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "Node services exiting due to an error in" in run.stderr
    assert "tunnel-ip-allocator" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr
