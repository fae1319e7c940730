"""The CalicoNodeStatus reporter against real etcd and the Kubernetes stand-in: Calico's
nodestatus_test.go cases (BIRD played by a mock, as there), the dispatcher's decisions,
and the status-only write both datastores offer (on Kubernetes: against Calico v3.32.1's
CRD, which has no status subresource, under its calico-node ClusterRole, and against a
CRD with that subresource)."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from e2e.probes import eventually
import yaml

from kdd_fixtures import TEST_QPS
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401 (fixtures)
from kube_standin import LATER_STATUS_SUBRESOURCES, KubeStandin
from node.config import KUBERNETES, DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.factory import kv_for
from node.datastore.kubernetes.kv import KubeKV
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer
from node.errors import Conflict, DatastoreError, NotFound, Unauthorized
from node.model.resource import Resource, etcd_key
from node.nodestatus import birdtext as bt
from node.nodestatus.birdquery import BirdQuery
from node.nodestatus.reporter import NodeStatusReporter
from node.nodestatus.status import Dispatcher, is_newer, spec_changed

NODE = "node-a"
REPO = Path(__file__).resolve().parents[1]
NODE_TOKEN = "calico-node-token"
NODE_USER = "system:serviceaccount:kube-system:calico-node"
# Calico v3.32.1's calico-node ClusterRole (manifests/calico.yaml, calico-node-rbac.yaml),
# its rules for crd.projectcalico.org that name caliconodestatuses, verbatim: read, and
# ``update`` on the resource itself, nothing on caliconodestatuses/status.
CALICO_V3_32_1_RULES = [
    {"apiGroups": ["projectcalico.org", "crd.projectcalico.org"],
     "resources": ["globalfelixconfigs", "globalbgpconfigs", "felixconfigurations", "bgppeers", "bgpfilters",
                   "bgpconfigurations", "ippools", "ipreservations", "ipamblocks", "globalnetworkpolicies",
                   "stagedglobalnetworkpolicies", "networkpolicies", "stagednetworkpolicies",
                   "stagedkubernetesnetworkpolicies", "globalnetworksets", "networksets", "clusterinformations",
                   "hostendpoints", "blockaffinities", "caliconodestatuses", "tiers"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["projectcalico.org", "crd.projectcalico.org"], "resources": ["caliconodestatuses"],
     "verbs": ["update"]},
]
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
# The reporter through the Kubernetes stand-in.

def manifest_rules(name: str = "calico.yaml", role: str = "calico-node") -> list[dict]:
    for doc in yaml.safe_load_all((REPO / "manifests" / name).read_text()):
        if doc and doc.get("kind") == "ClusterRole" and doc["metadata"]["name"] == role:
            return doc["rules"]
    raise AssertionError(f"no ClusterRole {role} in manifests/{name}")


@contextmanager
def node_datastore(kube: KubeStandin, tmp_path, rules: list[dict]):
    """calico-node's view of the stand-in: its token, held to ``rules``."""
    kube.rbac[NODE_TOKEN] = (NODE_USER, rules)
    config = DatastoreConfig(datastore_type=KUBERNETES, extra={"k8sClientQPS": TEST_QPS},
                             kubeconfig=str(kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)))
    kv = KubeKV(config, env={})
    try:
        yield config, DatastoreClient(kv)
    finally:
        kv.close()


def puts(kube: KubeStandin, name: str) -> list[str]:
    """The paths of the PUTs to the CalicoNodeStatus ``name``, "" for the resource itself."""
    out = []
    for method, path in kube.requests:
        path = path.split("?")[0]
        if method == "PUT" and f"/caliconodestatuses/{name}" in path:
            out.append(path.split(f"/caliconodestatuses/{name}", 1)[1])
    return out


def test_reporter_on_kubernetes(kube, kube_config, kube_kv):
    """Calico v3.32.1's CRD (the stand-in's default, as manifests/crds.yaml): no status
    subresource, every write is an update of the resource itself."""
    assert not kube.resources[("crd.projectcalico.org/v1", "caliconodestatuses")].status_subresource
    client = DatastoreClient(kube_kv)
    bird = MockBird()
    with reporting(client, kube_config, bird) as reporter:
        client.create(request("mynodestatus", period=1))
        client.create(request("another-status", node="wrong-node-name", period=1))
        saved = written(client, "mynodestatus")
        assert saved.status["agent"] == agent(BOOT_FIRST) and saved.status["bgp"] == PEERS
        assert saved.status["routes"] == ROUTES
        bird.boot = BOOT_SECOND
        assert eventually(lambda: get(client, "mynodestatus").status["agent"] == agent(BOOT_SECOND), timeout=5)
        assert len(puts(kube, "mynodestatus")) >= 2 and set(puts(kube, "mynodestatus")) == {""}
        assert list(reporter.reporters) == ["mynodestatus"]
        client.delete("CalicoNodeStatus", "mynodestatus")
        assert eventually(lambda: reporter.reporters == {}, timeout=5)
    other = get(client, "another-status")
    assert other.status["lastUpdated"] is None and other.spec["updatePeriodSeconds"] == 1


@pytest.mark.parametrize("crd,rules", [
    ("v3.32.1", "calico"),     # Calico's own install: its CRD and its ClusterRole
    ("v3.32.1", "manifest"),   # this project's crds.yaml and calico.yaml
    ("subresource", "manifest"),  # CRDs with the status subresource (Calico's later ones)
])
def test_reporter_writes_the_status_under_rbac(kube, kube_kv, tmp_path, crd, rules):
    """calico-node's token, held to a ClusterRole, writes its CalicoNodeStatus's status;
    the spec stays as it was created and no request is refused."""
    if crd == "subresource":
        for plural in LATER_STATUS_SUBRESOURCES:
            kube.set_status_subresource(plural, True)
    admin = DatastoreClient(kube_kv)
    created = admin.create(request("mynodestatus", period=1))
    with node_datastore(kube, tmp_path, CALICO_V3_32_1_RULES if rules == "calico" else manifest_rules()) as (
            config, client):
        with reporting(client, config, MockBird()):
            saved = written(admin, "mynodestatus")
            assert saved, f"no status written; refused: {kube.forbidden}"
    assert saved.status["agent"] == agent(BOOT_FIRST) and saved.status["bgp"] == PEERS
    assert saved.status["routes"] == ROUTES
    assert saved.spec == created.spec
    stored = kube.get("crd.projectcalico.org/v1", "caliconodestatuses", "mynodestatus")
    assert stored["spec"] == {"node": NODE, "classes": ["Agent", "BGP", "Routes"], "updatePeriodSeconds": 1}
    assert kube.forbidden == []
    # The resource itself, and /status right after it only when the CRD has that subresource.
    writes = puts(kube, "mynodestatus")
    if crd == "subresource":
        assert writes and writes == ["", "/status"] * (len(writes) // 2)
    else:
        assert writes and set(writes) == {""}


@pytest.mark.parametrize("subresource", [False, True])
def test_kubernetes_status_write_keeps_the_spec(kube, kube_kv, subresource):
    kube.set_status_subresource("caliconodestatuses", subresource)
    client = DatastoreClient(kube_kv)
    created = client.create(request("s1"))
    stored_spec = kube.get("crd.projectcalico.org/v1", "caliconodestatuses", "s1")["spec"]
    attempt = created.copy()
    attempt.spec["updatePeriodSeconds"] = 77  # not written: only the status is
    attempt.metadata["labels"] = {"not": "written"}
    attempt.status = {"agent": {"birdV4": {"state": "NotReady"}}}
    before = len(kube.requests)
    out = client.update_status(attempt)
    sent = [m for m, _ in kube.requests[before:]]
    stored = get(client, "s1")
    assert stored.spec["updatePeriodSeconds"] == 5 and not stored.metadata.get("labels")
    assert kube.get("crd.projectcalico.org/v1", "caliconodestatuses", "s1")["spec"] == stored_spec
    assert stored.status["agent"]["birdV4"] == {"state": "NotReady"}
    assert out.resource_version == stored.resource_version != created.resource_version
    # One read, the update and, only for the subresource, /status.
    assert sent == (["GET", "PUT", "PUT"] if subresource else ["GET", "PUT"])
    assert puts(kube, "s1") == (["", "/status"] if subresource else [""])
    with pytest.raises(Conflict):
        client.update_status(attempt)  # at the old revision
    # The same status again: one update that changes nothing, no /status.
    again = out.copy()
    assert client.update_status(again).resource_version == out.resource_version
    assert puts(kube, "s1")[-1] == ""
    if subresource:
        # A full update keeps the stored status (the subresource owns it).
        stored.status = {}
        stored.spec["updatePeriodSeconds"] = 6
        client.update(stored)
        assert get(client, "s1").status["agent"]["birdV4"] == {"state": "NotReady"}
    client.delete("CalicoNodeStatus", "s1")
    with pytest.raises(NotFound):
        client.update_status(out)


def test_kubernetes_status_write_does_not_loop(kube, kube_kv, monkeypatch):
    """With the status subresource, a /status write that conflicts (the object moved on
    between the update and it) is the caller's Conflict: one update, one /status, no more."""
    kube.set_status_subresource("caliconodestatuses", True)
    client = DatastoreClient(kube_kv)
    created = client.create(request("s1"))
    real = kube._store_update

    def racing(api_version, plural, namespace, name, obj, subresource):
        if subresource == "status":
            current = kube.objects[(api_version, plural, "", name)]
            real(api_version, plural, namespace, name, {**current, "spec": {**current["spec"], "node": "moved"}}, "")
        return real(api_version, plural, namespace, name, obj, subresource)

    monkeypatch.setattr(kube, "_store_update", racing)
    attempt = created.copy()
    attempt.status = {"agent": {"birdV4": {"state": "Ready"}}}
    with pytest.raises(Conflict):
        client.update_status(attempt)
    assert puts(kube, "s1") == ["", "/status"]


def test_kubernetes_subresource_crd_under_calicos_clusterrole_is_refused_once(kube, kube_kv, tmp_path):
    """A CRD with the status subresource under Calico v3.32.1's ClusterRole (no
    caliconodestatuses/status): the update goes through, keeps the old status, and the
    one /status write after it is refused: Unauthorized, not retried."""
    kube.set_status_subresource("caliconodestatuses", True)
    created = DatastoreClient(kube_kv).create(request("s1"))
    with node_datastore(kube, tmp_path, CALICO_V3_32_1_RULES) as (_, client):
        attempt = client.get("CalicoNodeStatus", "s1")
        attempt.status = {"agent": {"birdV4": {"state": "Ready"}}}
        with pytest.raises(Unauthorized, match="caliconodestatuses/status"):
            client.update_status(attempt)
    assert puts(kube, "s1") == ["", "/status"]
    assert kube.forbidden == [("update", "caliconodestatuses/status", "", "s1")]
    assert kube.get("crd.projectcalico.org/v1", "caliconodestatuses", "s1")["metadata"]["resourceVersion"] == \
        created.resource_version


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
