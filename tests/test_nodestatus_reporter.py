"""The CalicoNodeStatus reporter against real etcd and the Kubernetes stand-in: Calico's
nodestatus_test.go cases (BIRD played by a mock, as there), the dispatcher's decisions,
and the status-only write both datastores offer."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from e2e.probes import eventually
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401 (fixtures)
from kube_standin import Res
from node.datastore.client import DatastoreClient
from node.datastore.factory import kv_for
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer
from node.errors import Conflict, DatastoreError, NotFound
from node.model.resource import Resource, etcd_key
from node.nodestatus import birdtext as bt
from node.nodestatus.birdquery import BirdQuery
from node.nodestatus.reporter import NodeStatusReporter
from node.nodestatus.status import Dispatcher, is_newer, spec_changed

NODE = "node-a"
BOOT_FIRST = "2021-09-19 20:48:51"
BOOT_SECOND = "2021-09-19 20:48:52"


class MockBird:
    """BIRD as Calico's mockBird plays it: fixed answers, a boot time to change, an error
    to inject."""

    def __init__(self):
        self.boot = BOOT_FIRST
        self.error: Exception | None = None
        self.lock = threading.Lock()

    def __call__(self, family, cls):
        with self.lock:
            if self.error is not None:
                raise self.error
            if cls == "Agent":
                return bt.DaemonStatus(True, "v0.3.3+birdv1.6.8", "172.17.0.0" if family == "4" else "2001:20::8",
                                       "2021-09-19 20:48:43", self.boot, "2021-09-19 20:48:56")
            if cls == "BGP":
                ip = "172.17.8.104" if family == "4" else "2001:20::8"
                return [bt.Peer(f"Mesh_{ip.replace('.', '_').replace(':', '_')}", "Mesh", "up", "2016-11-21",
                                "", ip, "Established")]
            dest = "172.17.0.0/16" if family == "4" else "2001:20::8/128"
            return [bt.Route(dest, "N/A", "eth0", "direct1", True)]


def agent(boot: str) -> dict:
    return {"birdV4": {"state": "Ready", "version": "v0.3.3+birdv1.6.8", "routerID": "172.17.0.0",
                       "lastBootTime": boot, "lastReconfigurationTime": "2021-09-19 20:48:56"},
            "birdV6": {"state": "Ready", "version": "v0.3.3+birdv1.6.8", "routerID": "2001:20::8",
                       "lastBootTime": boot, "lastReconfigurationTime": "2021-09-19 20:48:56"}}


PEERS = {"numberEstablishedV4": 1, "numberNotEstablishedV4": 0, "numberEstablishedV6": 1,
         "numberNotEstablishedV6": 0,
         "peersV4": [{"peerIP": "172.17.8.104", "type": "NodeMesh", "state": "Established", "since": "2016-11-21"}],
         "peersV6": [{"peerIP": "2001:20::8", "type": "NodeMesh", "state": "Established", "since": "2016-11-21"}]}
ROUTES = {"routesV4": [{"type": "FIB", "destination": "172.17.0.0/16", "gateway": "N/A", "interface": "eth0",
                        "learnedFrom": {"sourceType": "Direct"}}],
          "routesV6": [{"type": "FIB", "destination": "2001:20::8/128", "gateway": "N/A", "interface": "eth0",
                        "learnedFrom": {"sourceType": "Direct"}}]}


def request(name: str, node: str = NODE, period: int | None = 5, classes=("Agent", "BGP", "Routes")) -> Resource:
    spec: dict = {"node": node, "classes": list(classes)}
    if period is not None:
        spec["updatePeriodSeconds"] = period
    return Resource("CalicoNodeStatus", {"name": name}, spec)


@contextmanager
def reporting(client: DatastoreClient, config, query, nodename: str = NODE, syncer: bool = True):
    reporter = NodeStatusReporter(nodename, client, query, reporter_options={"retry_pause": 0.1})
    thread = threading.Thread(target=reporter.run, daemon=True)
    thread.start()
    sync = Syncer(lambda: kv_for(config), resource_sources(["CalicoNodeStatus"]), reporter) if syncer else None
    if sync:
        sync.start()
    try:
        yield reporter
    finally:
        if sync:
            sync.stop(10)
        reporter.stop()
        thread.join(15)
        assert not thread.is_alive()


def get(client, name: str) -> Resource:
    return client.get("CalicoNodeStatus", name)


def written(client, name: str):
    """The stored status once the reporter has written one."""
    def check():
        try:
            res = get(client, name)
        except NotFound:
            return None
        return res if res.status.get("lastUpdated") else None
    return eventually(check, timeout=10)


def stays(client, name: str, rv: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if get(client, name).resource_version != rv:
            return False
        time.sleep(0.25)
    return True


# --------------------------------------------------------------------------------------
# Pure decisions.

def test_dispatcher_waits_for_in_sync_and_keeps_only_this_nodes_requests():
    d = Dispatcher(NODE)
    key = lambda n: etcd_key("CalicoNodeStatus", n)  # noqa: E731
    ours, other, unset = request("a"), request("b", node="node-b"), request("c", period=None)
    problems = d.on_updates([(key("a"), ours), (key("b"), other), (key("c"), unset)])
    assert problems == ["not reporting: error with field CalicoNodeStatus(c).spec.updatePeriodSeconds = '<nil>' "
                        "(must be set for the node's status to be reported)"]
    assert d.actions() == []
    d.on_in_sync()
    actions = d.actions()
    assert [(a.verb, a.name) for a in actions] == [("start", "a")]
    moved = request("a", node="node-b")
    d.on_updates([(key("a"), request("a", period=9))])
    assert [(a.verb, a.name) for a in d.actions()] == [("update", "a")]
    d.on_updates([(key("a"), moved)])
    assert [(a.verb, a.name) for a in d.actions()] == [("stop", "a")]
    d.on_updates([(key("a"), ours), (key("a"), None)])
    assert d.actions() == []  # created and deleted before anything ran
    problems = d.on_updates([(key("x"), request("x", period=86401))])
    assert problems == ["not reporting: error with field CalicoNodeStatus(x).spec.updatePeriodSeconds = '86401' "
                        "(must be a whole number of seconds from 0 to 86400)"]


def test_newer_and_changed():
    old = request("a")
    old.metadata.update(resourceVersion="10")
    same = old.copy()
    same.metadata["resourceVersion"] = "12"
    assert is_newer(same, old) and not is_newer(old, same) and not spec_changed(same, old)
    bumped = same.copy()
    bumped.metadata["generation"] = 2
    assert spec_changed(bumped, old)
    edited = same.copy()
    edited.spec["updatePeriodSeconds"] = 1
    assert spec_changed(edited, old)


class FlakyClient:
    """update_status fails ``failures`` times with a datastore error, then stores."""

    def __init__(self, failures: int):
        self.failures = failures
        self.attempts = 0

    def update_status(self, res):
        self.attempts += 1
        if self.attempts <= self.failures:
            raise DatastoreError("etcd is away")
        out = res.copy()
        out.metadata["resourceVersion"] = str(100 + self.attempts)
        return out


@pytest.mark.parametrize("period,failures,attempts,written", [
    (0, 2, 3, True),      # Calico gives up at once for 0, which no timer retries
    (31, 2, 3, True),     # a long period retries within the report
    (31, 5, 3, False),    # ... three times at most
    (5, 2, 1, False),     # a short period leaves it to the next report
])
def test_write_retries(period, failures, attempts, written):
    from node.nodestatus.reporter import Reporter

    res = request("s1", period=period)
    res.metadata.update(resourceVersion="7", uid="u", creationTimestamp="2024-05-01T10:00:00Z")
    client = FlakyClient(failures)
    reporter = Reporter(res, NODE, client, MockBird(), retry_pause=0.01)
    reporter._report()
    assert client.attempts == attempts
    assert (reporter.writes == 1) is written
    assert reporter.current.resource_version == ("10%d" % attempts if written else "7")


# --------------------------------------------------------------------------------------
# The status-only write.

def test_update_status_on_etcd_writes_only_the_status(client, etcd_kv):
    created = client.create(request("s1"))
    attempt = created.copy()
    attempt.spec["updatePeriodSeconds"] = 77  # not written: only the status is
    attempt.status = {"agent": {"birdV4": {"state": "NotReady"}}}
    out = client.update_status(attempt)
    stored = get(client, "s1")
    assert stored.spec["updatePeriodSeconds"] == 5
    assert stored.status["agent"] == {"birdV4": {"state": "NotReady"}, "birdV6": {}}
    assert out.resource_version == stored.resource_version != created.resource_version
    with pytest.raises(Conflict):
        client.update_status(attempt)  # at the old revision
    client.delete("CalicoNodeStatus", "s1")
    with pytest.raises(NotFound):
        client.update_status(out)


# --------------------------------------------------------------------------------------
# The reporter on etcd (nodestatus_test.go).

def test_interval_zero_reports_once(client, etcd_clean_config):
    bird = MockBird()
    with reporting(client, etcd_clean_config, bird):
        client.create(request("mynodestatus", period=0))
        saved = written(client, "mynodestatus")
        assert saved and saved.status["agent"] == agent(BOOT_FIRST)
        assert saved.status["bgp"] == PEERS and saved.status["routes"] == ROUTES
        bird.boot = BOOT_SECOND
        assert stays(client, "mynodestatus", saved.resource_version, 3)


def test_status_updated_at_the_interval_and_only_when_changed(client, etcd_clean_config):
    bird = MockBird()
    with reporting(client, etcd_clean_config, bird) as reporter:
        client.create(request("mynodestatus", period=2))
        saved = written(client, "mynodestatus")
        assert saved.status["agent"] == agent(BOOT_FIRST)
        bird.boot = BOOT_SECOND
        new = eventually(lambda: (lambda r: r if r.status["agent"] == agent(BOOT_SECOND) else None)(
            get(client, "mynodestatus")), timeout=5)
        assert new, "no update within the interval"
        assert new.status["lastUpdated"] > saved.status["lastUpdated"]
        assert new.status["bgp"] == PEERS and new.status["routes"] == ROUTES
        reports = reporter.reporters["mynodestatus"].reports
        assert stays(client, "mynodestatus", new.resource_version, 4.5)
        assert reporter.reporters["mynodestatus"].reports >= reports + 1  # asked, found no change


def test_populate_error_means_no_update(client, etcd_clean_config, caplog):
    bird = MockBird()
    with reporting(client, etcd_clean_config, bird):
        client.create(request("mynodestatus", period=1))
        saved = written(client, "mynodestatus")
        bird.boot = BOOT_SECOND
        bird.error = RuntimeError("mock a test error")
        assert stays(client, "mynodestatus", saved.resource_version, 3)
    assert "CalicoNodeStatus(mynodestatus): failed to read the status from BIRD, not updating it: mock a test " \
           "error" in caplog.text


def test_reporters_follow_creation_deletion_and_the_node(client, etcd_clean_config):
    bird = MockBird()
    with reporting(client, etcd_clean_config, bird) as reporter:
        client.create(request("mynodestatus", period=5))
        client.create(request("new-status", period=10))
        client.create(request("another-status", node="wrong-node-name", period=10))
        assert eventually(lambda: sorted(reporter.reporters) == ["mynodestatus", "new-status"], timeout=5)
        assert written(client, "new-status")
        threads = dict(reporter.reporters)
        client.delete("CalicoNodeStatus", "mynodestatus")
        assert eventually(lambda: sorted(reporter.reporters) == ["new-status"], timeout=5)
        assert eventually(lambda: not threads["mynodestatus"]._thread.is_alive(), timeout=5)
        moved = get(client, "new-status")
        moved.spec["node"] = "wrong-node-name"
        client.update(moved)
        assert eventually(lambda: reporter.reporters == {}, timeout=5)
        assert get(client, "another-status").status["lastUpdated"] is None


def test_spec_change_restarts_reporting(client, etcd_clean_config):
    bird = MockBird()
    with reporting(client, etcd_clean_config, bird) as reporter:
        client.create(request("mynodestatus", period=0, classes=["Agent"]))
        saved = written(client, "mynodestatus")
        assert "peersV4" not in saved.status["bgp"]
        saved.spec["classes"] = ["Agent", "BGP"]
        client.update(saved)
        new = eventually(lambda: (lambda r: r if r.status["bgp"] == PEERS else None)(get(client, "mynodestatus")),
                         timeout=5)
        assert new, "the spec change did not restart reporting"
        assert reporter.reporters["mynodestatus"].reports == 2


def test_broken_bird_connections_report_not_ready(client, etcd_clean_config, tmp_path):
    with reporting(client, etcd_clean_config, BirdQuery(tmp_path)):
        client.create(request("mynodestatus", period=5))
        saved = written(client, "mynodestatus")
    assert saved.status["agent"] == {"birdV4": {"state": "NotReady"}, "birdV6": {"state": "NotReady"}}
    assert saved.status["bgp"] == {"numberEstablishedV4": 0, "numberNotEstablishedV4": 0,
                                   "numberEstablishedV6": 0, "numberNotEstablishedV6": 0}
    assert saved.status["routes"] == {}


def test_conflict_when_the_syncer_missed_an_update(client, etcd_clean_config):
    bird = MockBird()
    from node.datastore.syncer import SyncStatus, Update, UpdateType

    with reporting(client, etcd_clean_config, bird, syncer=False) as reporter:
        created = client.create(request("mynodestatus", period=5))
        reporter.on_updates([Update(UpdateType.NEW, etcd_key("CalicoNodeStatus", "mynodestatus"), created,
                                    int(created.resource_version))])
        reporter.on_status(SyncStatus.IN_SYNC)
        first = written(client, "mynodestatus")
        # Changed behind the reporter's back: its next write conflicts.
        first.spec["updatePeriodSeconds"] = 1
        client.update(first)
        bird.boot = BOOT_SECOND
        assert eventually(lambda: get(client, "mynodestatus").status["lastUpdated"] != first.status["lastUpdated"]
                          and get(client, "mynodestatus").status["agent"] == agent(BOOT_SECOND), timeout=10)
        assert reporter.reporters["mynodestatus"]._period == 1  # caught up with the new spec


# --------------------------------------------------------------------------------------
# The reporter through the Kubernetes stand-in (status subresource).

def test_reporter_on_kubernetes(kube, kube_config, kube_kv):
    client = DatastoreClient(kube_kv)
    bird = MockBird()
    with reporting(client, kube_config, bird) as reporter:
        client.create(request("mynodestatus", period=1))
        client.create(request("another-status", node="wrong-node-name", period=1))
        saved = written(client, "mynodestatus")
        assert saved.status["agent"] == agent(BOOT_FIRST) and saved.status["bgp"] == PEERS
        assert saved.status["routes"] == ROUTES
        puts = [p for m, p in kube.requests if m == "PUT" and "caliconodestatuses" in p]
        assert puts and all(p.endswith("/caliconodestatuses/mynodestatus/status") for p in puts)
        bird.boot = BOOT_SECOND
        assert eventually(lambda: get(client, "mynodestatus").status["agent"] == agent(BOOT_SECOND), timeout=5)
        assert list(reporter.reporters) == ["mynodestatus"]
        client.delete("CalicoNodeStatus", "mynodestatus")
        assert eventually(lambda: reporter.reporters == {}, timeout=5)
    other = get(client, "another-status")
    assert other.status["lastUpdated"] is None and other.spec["updatePeriodSeconds"] == 1


def test_kubernetes_status_write_keeps_the_spec(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    created = client.create(request("s1"))
    attempt = created.copy()
    attempt.spec["updatePeriodSeconds"] = 77
    attempt.status = {"agent": {"birdV4": {"state": "NotReady"}}}
    client.update_status(attempt)
    stored = get(client, "s1")
    assert stored.spec["updatePeriodSeconds"] == 5
    assert stored.status["agent"]["birdV4"] == {"state": "NotReady"}
    with pytest.raises(Conflict):
        client.update_status(attempt)
    # A full update keeps the stored status (the subresource owns it).
    stored.status = {}
    stored.spec["updatePeriodSeconds"] = 6
    client.update(stored)
    assert get(client, "s1").status["agent"]["birdV4"] == {"state": "NotReady"}


def test_kubernetes_crd_without_status_subresource(kube, kube_kv):
    """Calico's own CRDs up to v3.33 have no status subresource: /status is 404 there and
    the status goes into the object itself."""
    for key, res in list(kube.resources.items()):
        if key[1] == "caliconodestatuses":
            kube.resources[key] = Res(res.kind, res.namespaced)
    client = DatastoreClient(kube_kv)
    created = client.create(request("s1"))
    attempt = created.copy()
    attempt.spec["updatePeriodSeconds"] = 77
    attempt.status = {"agent": {"birdV4": {"state": "Ready"}}}
    client.update_status(attempt)
    stored = get(client, "s1")
    assert stored.spec["updatePeriodSeconds"] == 5 and stored.status["agent"]["birdV4"] == {"state": "Ready"}
    paths = [p for m, p in kube.requests if m == "PUT"]
    assert paths[-2].endswith("/caliconodestatuses/s1/status") and paths[-1].endswith("/caliconodestatuses/s1")
    with pytest.raises(Conflict):
        client.update_status(attempt)


# --------------------------------------------------------------------------------------
# The role's setup.

def test_node_name_from_the_environment_or_the_nodename_file(tmp_path):
    from node.cli.roles.status_reporter import node_name

    (tmp_path / "nodename").write_text("node-from-file")
    assert node_name({"NODENAME": " node-env ", "CALICO_LIB_DIR": str(tmp_path)}) == "node-env"
    assert node_name({"CALICO_LIB_DIR": str(tmp_path)}) == "node-from-file"
    assert node_name({"CALICO_NODENAME_FILE": str(tmp_path / "missing")}) == ""


def test_role_without_a_node_name_exits_1(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "NODENAME"}
    env.update(CALICO_LIB_DIR=str(tmp_path), ETCD_ENDPOINTS="http://127.0.0.1:1")
    result = subprocess.run([str(Path(sys.executable).parent / "calico-node"), "status-reporter"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"NODENAME environment is not set (and there is no nodename file at {tmp_path}/nodename)" in result.stderr
