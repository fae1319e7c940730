"""``calico-node monitor-addresses`` on Kubernetes: each check reads this host's
Kubernetes Node again (Calico's MonitorIPAddressSubnets), so the
``kubernetes-internal-ip`` method follows a changed InternalIP, and a Node that can no
longer be read ends the monitor. A real process in its own network namespace, against
the API stand-in."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdd_fixtures import kube  # noqa: F401  (fixture)
from kdd_fixtures import k8s_node
from netns import Namespace
from startup_netns import NetnsRelay, add_link

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")
IPV4_ANNOTATION = "projectcalico.org/IPv4Address"


@pytest.fixture
def node_ns(kube, tmp_path):  # noqa: F811
    """A namespace whose eth0 has two addresses; the stand-in reachable from it."""
    with Namespace("kmon") as ns:
        add_link(ns, "eth0", "10.0.0.11/24", "10.0.0.12/24")
        with NetnsRelay(ns, ("127.0.0.1", kube.port)) as relay:
            kubeconfig = tmp_path / "node-kubeconfig"
            kubeconfig.write_text(kube.kubeconfig(tmp_path / "unused").read_text().replace(kube.url, relay.endpoint))
            yield ns, kubeconfig


def _env(kubeconfig: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kubeconfig),
           "NODENAME": "node1", "CALICO_LIB_DIR": str(tmp_path / "lib"), "CALICO_RUN_DIR": str(tmp_path / "run"),
           "CALICO_LOG_DIR": str(tmp_path / "log"), "FELIX_IPV6SUPPORT": "false", "IP": "autodetect",
           "IP_AUTODETECTION_METHOD": "kubernetes-internal-ip", "AUTODETECT_POLL_INTERVAL": "300ms"}
    env.update(extra)
    return env


def _in_ns(ns: Namespace, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns.name, CALICO_NODE, *args]


def _set_internal_ip(kube, address: str) -> None:  # noqa: F811
    node = kube.get("v1", "nodes", "node1")
    node["status"]["addresses"] = [{"type": "InternalIP", "address": address},
                                   {"type": "Hostname", "address": "node1"}]
    kube.update("v1", "nodes", node, subresource="status")


def _stored_ipv4(kube) -> str | None:  # noqa: F811
    node = kube.get("v1", "nodes", "node1")
    return None if node is None else (node["metadata"].get("annotations") or {}).get(IPV4_ANNOTATION)


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class _Monitor:
    def __init__(self, ns: Namespace, env: dict[str, str], log_path: Path):
        self.log_path = log_path
        with open(log_path, "w") as log_file:
            self.proc = subprocess.Popen(_in_ns(ns, "monitor-addresses", "--poll-only"), env=env,
                                         stdout=subprocess.PIPE, stderr=log_file, text=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def __enter__(self) -> "_Monitor":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=30)


def test_monitor_follows_a_changed_internal_ip(kube, node_ns, tmp_path):  # noqa: F811
    ns, kubeconfig = node_ns
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    env = _env(kubeconfig, tmp_path)
    started = subprocess.run(_in_ns(ns, "startup", "--no-kernel-prep"), env=env, capture_output=True, text=True,
                             timeout=60)
    assert started.returncode == 0, started.stderr
    assert _stored_ipv4(kube) == "10.0.0.11/24"
    # At debug level each pass logs "Checking node IP address" first: two lines mean one
    # pass is over, so the monitor has seen the old InternalIP before it changes.
    with _Monitor(ns, dict(env, CALICO_STARTUP_LOGLEVEL="debug"), tmp_path / "monitor.log") as mon:
        assert _wait(lambda: mon.log.count("Checking node IP address every") >= 2 or mon.proc.poll() is not None,
                     30), mon.log
        assert mon.proc.poll() is None and _stored_ipv4(kube) == "10.0.0.11/24", mon.log
        _set_internal_ip(kube, "10.0.0.12")
        followed = _wait(lambda: _stored_ipv4(kube) == "10.0.0.12/24", 10)
        assert followed, f"the Node still has {_stored_ipv4(kube)}:\n{mon.log}"
        assert _wait(lambda: "Updated node IP addresses" in mon.log, 5), mon.log
        assert mon.proc.poll() is None, mon.log


def test_monitor_exits_when_the_kubernetes_node_cannot_be_read(kube, node_ns, tmp_path):  # noqa: F811
    ns, kubeconfig = node_ns
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    env = _env(kubeconfig, tmp_path, CALICO_STARTUP_LOGLEVEL="debug")
    with _Monitor(ns, env, tmp_path / "monitor.log") as mon:
        assert _wait(lambda: mon.log.count("Checking node IP address every") >= 2 or mon.proc.poll() is not None,
                     30), mon.log
        assert mon.proc.poll() is None, mon.log  # a pass read the Node fine
        kube.delete("v1", "nodes", "node1")
        assert mon.proc.wait(timeout=15) == 1, mon.log
    log = mon.log
    assert "failed to read Node from datastore: nodes 'node1' not found" in log
    assert log.rstrip().endswith("Terminating")
