"""``calico-node monitor-addresses`` as a real process in a namespace, against etcd."""
from __future__ import annotations

import subprocess
import time

import pytest

from node.datastore.client import DatastoreClient
from node.model import API_VERSION, from_dict
from startup_harness import NodeHost, datastore, explain, revisions, v3_key
from startup_netns import add_address, add_link

NODE_KEY = v3_key("nodes", "node1")


@pytest.fixture
def node_host(etcd_clean, tmp_path):
    with NodeHost(etcd_clean, tmp_path) as host:
        add_link(host.ns, "eth0", "10.0.0.11/24")
        yield host


def started(host: NodeHost, **env):
    result = host.startup(**env)
    assert result.returncode == 0, explain(result)


def move_address(host: NodeHost, old: str, new: str) -> None:
    host.ns.run("ip", "addr", "del", old, "dev", "eth0")
    add_address(host.ns, "eth0", new)


def wait_for(predicate, timeout: float) -> float | None:
    """Seconds until ``predicate()`` held, or None if it never did within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def node_address(kv) -> str | None:
    node = datastore(kv).get(NODE_KEY)
    return None if node is None else (node["spec"].get("bgp") or {}).get("ipv4Address")


class Monitor:
    """The monitor process; its log goes to a file so a test can wait for it to be running."""

    READY = "Monitoring node addresses every"  # logged once subscribed, just before the loop

    def __init__(self, host: NodeHost, *args: str, **env):
        self.log_path = host.root / f"monitor-{time.monotonic_ns()}.log"
        with open(self.log_path, "w") as log_file:
            self.proc = subprocess.Popen(host.command("monitor-addresses", *args), env=host.env(**env),
                                         stdout=subprocess.PIPE, stderr=log_file, text=True)
        self.stdout = ""

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 30) -> None:
        assert wait_for(lambda: self.READY in self.log or self.proc.poll() is not None, timeout), self.log
        assert self.proc.poll() is None, self.log

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.stdout, _ = self.proc.communicate(timeout=30)
        return self.log

    def __enter__(self) -> "Monitor":
        try:
            self.wait_ready()
        except BaseException:
            self.__exit__()  # not called by ``with`` when __enter__ raises
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def test_poll_picks_up_a_new_address_within_one_interval(node_host, etcd_kv):
    started(node_host, IP="autodetect")
    with Monitor(node_host, "--poll-only", IP="autodetect", AUTODETECT_POLL_INTERVAL="1s") as mon:
        move_address(node_host, "10.0.0.11/24", "10.0.0.12/24")
        took = wait_for(lambda: node_address(etcd_kv) == "10.0.0.12/24", timeout=4.0)
        # The monitor logs the update just after writing it: wait for the line, not only
        # the write, before stopping it (a loaded machine widens that gap).
        logged = wait_for(lambda: "Updated node IP addresses" in mon.log, timeout=5.0)
        err = mon.stop()
    assert took is not None, err
    assert took < 2.0, f"took {took:.2f}s with a 1s poll interval"
    assert logged is not None, err
    assert datastore(etcd_kv)[NODE_KEY]["spec"]["interfaces"] == [{"name": "eth0", "addresses": ["10.0.0.12"]}]


def test_address_events_trigger_a_check_before_the_poll(node_host, etcd_kv):
    started(node_host, IP="autodetect")
    with Monitor(node_host, IP="autodetect", AUTODETECT_POLL_INTERVAL="10m") as mon:
        move_address(node_host, "10.0.0.11/24", "10.0.0.13/24")
        took = wait_for(lambda: node_address(etcd_kv) == "10.0.0.13/24", timeout=5.0)
        err = mon.stop()
    assert took is not None, err


def test_no_change_without_ip_autodetect(node_host, etcd_kv):
    started(node_host)  # IP unset: detected once at first start
    before = revisions(etcd_kv)[NODE_KEY]
    with Monitor(node_host, "--poll-only", AUTODETECT_POLL_INTERVAL="300ms") as mon:
        move_address(node_host, "10.0.0.11/24", "10.0.0.14/24")
        time.sleep(1.5)  # several polls
        err = mon.stop()
    assert revisions(etcd_kv)[NODE_KEY] == before, err
    assert node_address(etcd_kv) == "10.0.0.11/24"


def test_explicit_ip_is_left_alone(node_host, etcd_kv):
    started(node_host, IP="10.0.0.11/24")
    with Monitor(node_host, "--poll-only", IP="10.0.0.11/24", AUTODETECT_POLL_INTERVAL="300ms") as mon:
        move_address(node_host, "10.0.0.11/24", "10.0.0.15/24")
        # spec.interfaces follows the host; the configured address does not.
        took = wait_for(lambda: datastore(etcd_kv)[NODE_KEY]["spec"].get("interfaces") ==
                        [{"name": "eth0", "addresses": ["10.0.0.15"]}], timeout=3.0)
        err = mon.stop()
    assert took is not None, err
    assert node_address(etcd_kv) == "10.0.0.11/24"
    assert "Unable to confirm IPv4 address 10.0.0.11 is assigned to this host" in err


def test_failed_detection_keeps_the_stored_address(node_host, etcd_kv):
    started(node_host, IP="autodetect")
    before = revisions(etcd_kv)[NODE_KEY]
    with Monitor(node_host, "--poll-only", IP="autodetect", AUTODETECT_POLL_INTERVAL="300ms") as mon:
        node_host.ns.run("ip", "addr", "del", "10.0.0.11/24", "dev", "eth0")
        time.sleep(1.2)
        assert mon.proc.poll() is None
        err = mon.stop()
    assert "Autodetection of IPv4 address failed, keeping existing value: 10.0.0.11/24" in err
    assert node_address(etcd_kv) == "10.0.0.11/24"
    # Only spec.interfaces changed (eth0 has no IPv4 address any more).
    assert revisions(etcd_kv)[NODE_KEY] != before
    assert datastore(etcd_kv)[NODE_KEY]["spec"]["interfaces"] == [{"name": "eth0"}]


def test_conflict_clears_the_address_and_exits(node_host, etcd_kv):
    started(node_host, IP="autodetect")
    DatastoreClient(etcd_kv).create(from_dict({"kind": "Node", "apiVersion": API_VERSION,
                                               "metadata": {"name": "node2"},
                                               "spec": {"bgp": {"ipv4Address": "10.0.0.16/24"}}}))
    with Monitor(node_host, "--poll-only", IP="autodetect", AUTODETECT_POLL_INTERVAL="300ms") as mon:
        move_address(node_host, "10.0.0.11/24", "10.0.0.16/24")
        mon.proc.wait(timeout=10)
        err = mon.stop()
    assert mon.proc.returncode == 1, err
    assert "Calico node 'node2' is already using the IPv4 address 10.0.0.16." in err
    assert "IPv4 address conflict" in err and err.rstrip().endswith("Terminating")
    assert "Clearing out-of-date IPv4 address from this node" in err
    assert node_address(etcd_kv) is None


def test_policy_only_mode_does_not_monitor(node_host):
    result = node_host.run("monitor-addresses", env=node_host.env(CALICO_NETWORKING_BACKEND="none"), timeout=30)
    assert result.returncode == 0, explain(result)
    assert "not monitoring" in result.stderr


def test_bad_datastore_config_exits_1(node_host):
    result = node_host.run("monitor-addresses", env=node_host.env(DATASTORE_TYPE="zookeeper"), timeout=30)
    assert result.returncode == 1
    # libcalico-go finds an unknown type when it builds the client (backend NewClient).
    assert result.stdout.startswith("ERROR: Error accessing the Calico datastore: unknown datastore type")
