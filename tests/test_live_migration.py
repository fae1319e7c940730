"""LiveMigration (libcalico-go's internal kind for a workload's live migration in progress):
the model's rules and Calico's JSON, the etcd datastore (stored and followed like any
namespaced v3 resource, as networking-calico writes it), and the Kubernetes datastore,
where it is read-only and converted from KubeVirt's VirtualMachineInstanceMigrations
(checked against the stand-in API server, tests/kube_standin.py, since no kube-apiserver
can run here), with Calico's expectations from libcalico-go's livemigration_test.go.
"""
from __future__ import annotations

import json

import pytest

import kdd_fixtures
from kdd_fixtures import namespace, wait_for
from node.datastore.client import DatastoreClient, OperationNotSupported
from node.datastore.etcd import EtcdKV
from node.datastore.kubernetes import conversion as conv
from node.datastore.kubernetes import kv as kube_kv_module
from node.datastore.kubernetes.kv import KubeKV
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer, SyncStatus, UpdateType
from node.errors import NotFound, ValidationError
from node.model import KINDS, Resource, etcd_key, from_dict, from_storage, kind_info, parse_etcd_key
from syncer_view import SyncerView

# The Kubernetes datastore's fixtures (a stand-in API server and a KubeKV on it).
kube, kube_config, kube_kv = kdd_fixtures.kube, kdd_fixtures.kube_config, kdd_fixtures.kube_kv

KIND = "LiveMigration"
VMIM = ("kubevirt.io/v1", "virtualmachineinstancemigrations")
PREFIX = "/calico/resources/v3/projectcalico.org/livemigrations/"


def _lm(spec, name="lm1", ns="ns1", **meta) -> dict:
    return {"apiVersion": "projectcalico.org/v3", "kind": KIND,
            "metadata": {"name": name, **({"namespace": ns} if ns else {}), **meta}, "spec": spec}


# What networking-calico (OpenStack) writes: one LiveMigration per port, both ends named
# as WorkloadEndpoints.
OPENSTACK_SPEC = {
    "source": {"workloadEndpoint": {"hostname": "compute1", "orchestratorID": "openstack",
                                    "workloadID": "openstack/vm-1", "endpointID": "port-1"}},
    "target": {"workloadEndpoint": {"hostname": "compute2", "orchestratorID": "openstack",
                                    "workloadID": "openstack/vm-1", "endpointID": "port-1"}},
}
OPENSTACK_STORED = (
    '{"kind":"LiveMigration","apiVersion":"projectcalico.org/v3","metadata":{"name":"compute2-openstack-vm-1-port-1",'
    '"namespace":"openstack","uid":"u1","creationTimestamp":"2026-01-02T03:04:05Z"},"spec":{"source":'
    '{"workloadEndpoint":{"hostname":"compute1","orchestratorID":"openstack","workloadID":"openstack/vm-1",'
    '"endpointID":"port-1"}},"target":{"workloadEndpoint":{"hostname":"compute2","orchestratorID":"openstack",'
    '"workloadID":"openstack/vm-1","endpointID":"port-1"}}}}')
KUBEVIRT_SPEC = {"target": {"selector": "(vmi.kubevirt.io/id == 'vm1' || vm.kubevirt.io/name == 'vm1') && "
                                        "kubevirt.io/migrationJobUID == 'uid-1'"},
                 "source": {"workload": {"orchestratorID": "k8s", "workloadID": "ns1/virt-launcher-vm1-abcde"}}}


# -- the model ------------------------------------------------------------------------------

def test_kind_is_namespaced_internal_and_keyed_like_other_v3_resources():
    info = KINDS[KIND]
    assert (info.plural, info.namespaced, info.spec, info.status) == ("livemigrations", True, "LiveMigrationSpec",
                                                                       None)
    assert info.aliases == () and info.extra.get("not_in_calicoctl") and not info.extra.get("read_only")
    assert kind_info("livemigration").kind == KIND
    key = etcd_key(KIND, "lm1", "ns1")
    assert key == PREFIX + "ns1/lm1"
    assert parse_etcd_key(key) == (KIND, "ns1", "lm1")


def test_stored_json_is_calicos_field_order():
    res = from_dict(_lm({"target": OPENSTACK_SPEC["target"], "source": OPENSTACK_SPEC["source"]},
                        name="compute2-openstack-vm-1-port-1", ns="openstack", uid="u1",
                        creationTimestamp="2026-01-02T03:04:05Z"))
    assert res.storage_json() == OPENSTACK_STORED
    key = etcd_key(KIND, res.name, res.namespace)
    assert from_storage(key, OPENSTACK_STORED, 7).storage_json() == OPENSTACK_STORED
    kubevirt = from_dict(_lm(KUBEVIRT_SPEC))
    assert kubevirt.storage_json() == (
        '{"kind":"LiveMigration","apiVersion":"projectcalico.org/v3","metadata":{"name":"lm1","namespace":"ns1",'
        '"creationTimestamp":null},"spec":{"source":{"workload":{"orchestratorID":"k8s",'
        '"workloadID":"ns1/virt-launcher-vm1-abcde"}},"target":{"selector":"(vmi.kubevirt.io/id == \'vm1\' || '
        'vm.kubevirt.io/name == \'vm1\') \\u0026\\u0026 kubevirt.io/migrationJobUID == \'uid-1\'"}}}')


@pytest.mark.parametrize("spec", [
    OPENSTACK_SPEC,
    KUBEVIRT_SPEC,
    {"target": KUBEVIRT_SPEC["target"]},  # KubeVirt's early phases: no source yet
    {"source": OPENSTACK_SPEC["source"]},
    {},  # both are optional pointers in Calico's type
    {"source": {"workload": {}}, "target": {"workloadEndpoint": {}}},
    {"target": {"selector": "all()"}},
], ids=["openstack", "kubevirt", "target-only", "source-only", "empty", "empty-identifiers", "all"])
def test_valid_live_migrations(spec):
    res = from_dict(_lm(spec))
    assert res.kind == KIND and res.namespace == "ns1"


@pytest.mark.parametrize("spec,error", [
    ({"source": {}},
     "error with field LiveMigration(ns1/lm1).spec.source = '' (exactly one of workload and workloadEndpoint must "
     "be specified; neither is)"),
    ({"source": {"workload": {"workloadID": "ns1/a"}, "workloadEndpoint": {"endpointID": "eth0"}}},
     "error with field LiveMigration(ns1/lm1).spec.source = 'workload, workloadEndpoint' (exactly one of workload "
     "and workloadEndpoint must be specified; both are)"),
    ({"target": {}},
     "error with field LiveMigration(ns1/lm1).spec.target = '' (exactly one of selector and workloadEndpoint must "
     "be specified; neither is)"),
    ({"target": {"selector": "a == 'b'", "workloadEndpoint": {"endpointID": "eth0"}}},
     "error with field LiveMigration(ns1/lm1).spec.target = 'selector, workloadEndpoint' (exactly one of selector "
     "and workloadEndpoint must be specified; both are)"),
    ({"target": {"selector": "a =="}},
     "error with field LiveMigration(ns1/lm1).spec.target.selector = 'a ==' (invalid selector: invalid selector "
     "'a ==' at position 4: expected a quoted string after '==', found end of selector)"),
    ({"target": {"selector": ""}},
     "error with field LiveMigration(ns1/lm1).spec.target.selector = '' (a target selector must not be empty)"),
], ids=["source-neither", "source-both", "target-neither", "target-both", "bad-selector", "empty-selector"])
def test_invalid_live_migrations_name_the_resource_and_field(spec, error):
    with pytest.raises(ValidationError) as info:
        from_dict(_lm(spec))
    assert str(info.value) == error


def test_shape_and_identity_errors():
    with pytest.raises(ValidationError, match=r"LiveMigration\(lm1\)\.metadata\.namespace = '' \(namespace must "
                                              r"be specified for a namespaced resource\)"):
        from_dict(_lm({}, ns=""))
    with pytest.raises(ValidationError, match=r"spec\.source\.workloadEndpoint\.hostnme = .* \(unknown field "
                                              r"\"hostnme\"\)"):
        from_dict(_lm({"source": {"workloadEndpoint": {"hostnme": "h"}}}))
    with pytest.raises(ValidationError, match=r"spec\.target\.selector = '\[\]' \(expected a string\)"):
        from_dict(_lm({"target": {"selector": []}}))


def test_stored_values_are_read_leniently():
    """What another writer stored loads even if it breaks the write rules or has fields
    from a newer Calico (reads never validate, as libcalico-go's don't)."""
    stored = json.dumps(_lm({"source": {"workload": {"workloadID": "a"}, "workloadEndpoint": {"endpointID": "b"}},
                             "target": {"selector": "x == 'y'", "future": 1}, "later": True}))
    res = from_storage(PREFIX + "ns1/lm1", stored, 3)
    assert res.spec == {"source": {"workload": {"workloadID": "a"}, "workloadEndpoint": {"endpointID": "b"}},
                        "target": {"selector": "x == 'y'"}}
    assert res.resource_version == "3"


def test_calicoctl_has_no_command_for_it(ctl):
    # An internal kind: Calico's calicoctl registers no resource helper for it.
    code, _, err = ctl("get", "livemigrations")
    assert code == 1 and "resource type 'livemigrations' is not supported" in err
    assert ctl("label", "livemigration", "lm1", "a=b") == (
        1, "", "failed to get livemigration lm1, error resource type 'livemigration' is not supported\n")
    code, _, err = ctl("create", "-f", "-", stdin=json.dumps(_lm(OPENSTACK_SPEC)))
    assert code == 1
    assert "unknown resource type (LiveMigration) and/or version (projectcalico.org/v3)" in err


# -- the etcd datastore ---------------------------------------------------------------------

def test_etcd_round_trip_with_calicos_key_and_bytes(client, etcd_kv):
    res = from_dict(_lm(OPENSTACK_SPEC, name="compute2-openstack-vm-1-port-1", ns="openstack", uid="u1",
                        creationTimestamp="2026-01-02T03:04:05Z"))
    created = client.create(res)
    item = etcd_kv.get(PREFIX + "openstack/compute2-openstack-vm-1-port-1")
    assert item.value.decode() == OPENSTACK_STORED
    assert created.resource_version == str(item.mod_revision)
    got = client.get(KIND, created.name, "openstack")
    assert got == created and client.list(KIND) == [created] and client.list(KIND, "openstack") == [created]
    assert client.list(KIND, "other") == []
    got.spec["target"]["workloadEndpoint"]["hostname"] = "compute3"
    updated = client.update(got)
    assert json.loads(etcd_kv.get(PREFIX + "openstack/compute2-openstack-vm-1-port-1").value)["spec"]["target"][
        "workloadEndpoint"]["hostname"] == "compute3"
    assert updated.metadata["uid"] == "u1"
    # The write rules apply (libcalico-go's client validates before it writes).
    bad = updated.copy()
    bad.spec["target"]["selector"] = "all()"
    with pytest.raises(ValidationError, match=r"spec\.target = 'selector, workloadEndpoint'"):
        client.update(bad)
    client.delete(KIND, created.name, "openstack")
    with pytest.raises(NotFound, match=r"LiveMigration\(openstack/compute2-openstack-vm-1-port-1\)"):
        client.get(KIND, created.name, "openstack")


def test_etcd_syncer_lists_then_watches_live_migrations(etcd_clean_config, client, etcd_kv):
    # One written by another writer (networking-calico puts the JSON itself) ...
    etcd_kv.put(PREFIX + "openstack/compute2-openstack-vm-1-port-1", OPENSTACK_STORED)
    recorder = SyncerView()
    syncer = Syncer(lambda: EtcdKV(etcd_clean_config), resource_sources([KIND]), recorder,
                    initial_backoff=0.05, max_backoff=0.2)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        first = PREFIX + "openstack/compute2-openstack-vm-1-port-1"
        value = recorder.state[first]
        assert isinstance(value, Resource) and value.kind == KIND
        assert (value.namespace, value.name, value.metadata["uid"]) == ("openstack", "compute2-openstack-vm-1-port-1",
                                                                        "u1")
        assert value.spec == OPENSTACK_SPEC
        # ... and one the client writes, then changes and deletes.
        created = client.create(from_dict(_lm(KUBEVIRT_SPEC)))
        second = PREFIX + "ns1/lm1"
        wait_for(lambda: second in recorder.state, what="the new LiveMigration")
        assert recorder.state[second].metadata["uid"] == created.metadata["uid"]
        assert recorder.state[second].spec == created.spec
        created.spec.pop("source")
        client.update(created)
        wait_for(lambda: "source" not in recorder.state[second].spec, what="the update")
        client.delete(KIND, "lm1", "ns1")
        wait_for(lambda: second not in recorder.state, what="the delete")
        assert recorder.types(second) == [UpdateType.NEW, UpdateType.UPDATED, UpdateType.DELETED]
        assert list(recorder.state) == [first]
    finally:
        syncer.stop(timeout=10)


# -- the Kubernetes datastore: the conversion -----------------------------------------------

def _vmim_obj(phase: str, vmi_name: str = "my-vmi", source_pod: str = "source-pod-abc", uid: str = "uid-123",
              ns: str = "test-ns", name: str = "vmim-1") -> dict:
    obj = {"apiVersion": VMIM[0], "kind": "VirtualMachineInstanceMigration",
           "metadata": {"name": name, "namespace": ns, "resourceVersion": "100", "uid": uid},
           "spec": {"vmiName": vmi_name}, "status": {"phase": phase}}
    if source_pod:
        obj["status"]["migrationState"] = {"sourcePod": source_pod}
    return obj


EMITTED = ["Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Failed"]
NOT_EMITTED = ["", "Pending", "Succeeded", "Unknown", "WaitingForSync", "Synchronizing"]


@pytest.mark.parametrize("phase", EMITTED)
def test_phases_that_present_a_live_migration(phase):
    lm = conv.vmim_to_live_migration(_vmim_obj(phase))
    assert lm == {"kind": "LiveMigration", "apiVersion": "projectcalico.org/v3",
                  "metadata": {"name": "vmim-1", "namespace": "test-ns", "uid": "uid-123"},
                  "spec": {"source": {"workload": {"orchestratorID": "k8s", "workloadID": "test-ns/source-pod-abc"}},
                           "target": {"selector": "(vmi.kubevirt.io/id == 'my-vmi' || vm.kubevirt.io/name == "
                                                  "'my-vmi') && kubevirt.io/migrationJobUID == 'uid-123'"}}}
    # What the Kubernetes datastore hands out passes the model's write rules.
    from_dict(lm)


@pytest.mark.parametrize("phase", NOT_EMITTED)
def test_phases_that_present_none(phase):
    assert conv.vmim_to_live_migration(_vmim_obj(phase)) is None


def test_source_only_once_kubevirt_names_the_source_pod():
    lm = conv.vmim_to_live_migration(_vmim_obj("Scheduling", source_pod=""))
    assert "source" not in lm["spec"] and lm["spec"]["target"]["selector"]
    obj = _vmim_obj("Running", source_pod="")
    obj["status"]["migrationState"] = {"targetPod": "virt-launcher-vm12-xyz"}  # a state without sourcePod
    assert "source" not in conv.vmim_to_live_migration(obj)["spec"]


def test_target_selector_text_is_calicos():
    # libcalico-go's livemigration_test.go, "typical VMIM progressions".
    assert conv.live_migration_target_selector("vm12", "c05275a7-f85b-42d5-a1d0-acdd49c26d57") == (
        "(vmi.kubevirt.io/id == 'vm12' || vm.kubevirt.io/name == 'vm12') && "
        "kubevirt.io/migrationJobUID == 'c05275a7-f85b-42d5-a1d0-acdd49c26d57'")


@pytest.mark.parametrize("change", ["no-vmi-name", "no-uid", "vmi-name-not-a-string", "no-status", "no-spec"])
def test_incomplete_migrations_present_none(change):
    obj = _vmim_obj("Running")
    if change == "no-vmi-name":
        obj["spec"]["vmiName"] = ""
    elif change == "no-uid":
        del obj["metadata"]["uid"]
    elif change == "vmi-name-not-a-string":
        obj["spec"]["vmiName"] = ["x"]
    elif change == "no-status":
        del obj["status"]
    else:
        del obj["spec"]
    assert conv.vmim_to_live_migration(obj) is None


def test_metadata_kept_from_the_migration():
    obj = _vmim_obj("Running")
    obj["metadata"].update({"creationTimestamp": "2026-01-02T03:04:05Z", "labels": {"kubevirt.io/vmi-name": "my-vmi"},
                            "annotations": {"kubevirt.io/latest-observed-api-version": "v1"},
                            "finalizers": ["kubevirt.io/migrationJobFinalize"], "generation": 3,
                            "ownerReferences": [{"kind": "VirtualMachineInstance", "name": "my-vmi", "uid": "x"}]})
    meta = conv.vmim_to_live_migration(obj)["metadata"]
    # The UID is the VMIM's as it is (not the bit-reversed form of Calico's v1 CRs).
    assert meta == {"name": "vmim-1", "namespace": "test-ns", "uid": "uid-123",
                    "creationTimestamp": "2026-01-02T03:04:05Z", "labels": {"kubevirt.io/vmi-name": "my-vmi"},
                    "annotations": {"kubevirt.io/latest-observed-api-version": "v1"}}


# -- the Kubernetes datastore: the backend against the stand-in API server ------------------

def _vmim(kube, ns: str, name: str, phase: str = "", vmi_name: str = "my-vmi", source_pod: str = "") -> dict:
    """A migration as KubeVirt makes one: created without status, then the status set
    through the status subresource (KubeVirt's CRD has one)."""
    obj = kube.create(*VMIM, {"metadata": {"name": name}, "spec": {"vmiName": vmi_name}}, namespace=ns)
    if phase or source_pod:
        obj = _status(kube, ns, name, phase, source_pod)
    return obj


def _status(kube, ns: str, name: str, phase: str, source_pod: str = "") -> dict:
    status: dict = {"phase": phase}
    if source_pod:
        status["migrationState"] = {"sourcePod": source_pod}
    return kube.patch(*VMIM, name, {"status": status}, namespace=ns, subresource="status", strategic=False)


def test_get_and_list_convert_migrations(kube, kube_kv):
    namespace(kube, "test-ns")
    namespace(kube, "other-ns")
    running = _vmim(kube, "test-ns", "vmim-1", "Running", source_pod="source-pod-abc")
    _vmim(kube, "test-ns", "vmim-2", "TargetReady", vmi_name="vmi-b", source_pod="src-pod-2")
    _vmim(kube, "other-ns", "vmim-3", "Failed", vmi_name="vmi-c", source_pod="src-pod-3")
    _vmim(kube, "test-ns", "vmim-done", "Succeeded", source_pod="source-pod-abc")
    _vmim(kube, "test-ns", "vmim-pending", "Pending")
    _vmim(kube, "test-ns", "vmim-no-src", "Scheduling", vmi_name="vmi-d")
    client = DatastoreClient(kube_kv)
    got = client.get(KIND, "vmim-1", "test-ns")
    uid = running["metadata"]["uid"]
    assert (got.kind, got.name, got.namespace, got.metadata["uid"]) == (KIND, "vmim-1", "test-ns", uid)
    assert got.resource_version == running["metadata"]["resourceVersion"]
    assert got.metadata["creationTimestamp"] == running["metadata"]["creationTimestamp"]
    assert got.spec == {"source": {"workload": {"orchestratorID": "k8s", "workloadID": "test-ns/source-pod-abc"}},
                        "target": {"selector": conv.live_migration_target_selector("my-vmi", uid)}}
    assert got.to_dict()["apiVersion"] == "projectcalico.org/v3"
    assert sorted(r.name for r in client.list(KIND, "test-ns")) == ["vmim-1", "vmim-2", "vmim-no-src"]
    assert sorted((r.namespace, r.name) for r in client.list(KIND)) == [
        ("other-ns", "vmim-3"), ("test-ns", "vmim-1"), ("test-ns", "vmim-2"), ("test-ns", "vmim-no-src")]
    assert "source" not in client.get(KIND, "vmim-no-src", "test-ns").spec
    assert client.list(KIND, "empty-ns") == []
    # A migration in a phase that presents nothing, and one that does not exist, are not found.
    for name in ("vmim-done", "vmim-pending", "nonexistent"):
        with pytest.raises(NotFound, match=rf"LiveMigration\(test-ns/{name}\)"):
            client.get(KIND, name, "test-ns")


def test_live_migrations_are_read_only(kube, kube_kv):
    namespace(kube, "test-ns")
    _vmim(kube, "test-ns", "vmim-1", "Running", source_pod="p")
    client = DatastoreClient(kube_kv)
    current = client.get(KIND, "vmim-1", "test-ns")
    reason = "LiveMigration is read-only in the Kubernetes backend"
    new = from_dict(_lm(KUBEVIRT_SPEC, name="test", ns="test-ns"))
    with pytest.raises(OperationNotSupported) as info:
        client.create(new)
    assert str(info.value) == f"operation Create is not supported on LiveMigration(test-ns/test): {reason}"
    with pytest.raises(OperationNotSupported, match=rf"operation Update is not supported on "
                                                    rf"LiveMigration\(test-ns/vmim-1\): {reason}"):
        client.update(current)
    with pytest.raises(OperationNotSupported, match=rf"operation Delete is not supported on "
                                                    rf"LiveMigration\(test-ns/vmim-1\): {reason}"):
        client.delete(KIND, "vmim-1", "test-ns")
    with pytest.raises(OperationNotSupported, match="read-only"):
        client.apply(new)
    with pytest.raises(OperationNotSupported, match="read-only"):
        kube_kv.put(PREFIX + "test-ns/vmim-1", b"{}")
    # Nothing was written to the API server.
    assert [o["metadata"]["name"] for o in kube.items(*VMIM)] == ["vmim-1"]
    assert kube.get(*VMIM, "vmim-1", "test-ns")["status"]["phase"] == "Running"


def _syncer(config, recorder: SyncerView) -> Syncer:
    return Syncer(lambda: KubeKV(config, env={}), resource_sources([KIND]), recorder,
                  initial_backoff=0.05, max_backoff=0.2)


def test_syncer_follows_a_migration_through_its_phases(kube, kube_config):
    """KubeVirt's usual sequence (livemigration_test.go's "typical VMIM progressions"):
    nothing while Pending, the LiveMigration from Scheduled on (its source once KubeVirt
    names the source pod), gone once the migration has Succeeded."""
    namespace(kube, "test-ns")
    _vmim(kube, "test-ns", "already", "Running", vmi_name="vm0", source_pod="virt-launcher-vm0-aaaaa")
    recorder = SyncerView()
    syncer = _syncer(kube_config, recorder)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        assert list(recorder.state) == [PREFIX + "test-ns/already"]
        key = PREFIX + "test-ns/vmim-progression"
        vmim = _vmim(kube, "test-ns", "vmim-progression", "Pending", vmi_name="vm12")
        uid = vmim["metadata"]["uid"]
        selector = conv.live_migration_target_selector("vm12", uid)
        _status(kube, "test-ns", "vmim-progression", "Scheduled")
        wait_for(lambda: key in recorder.state, what="the LiveMigration once Scheduled")
        lm = recorder.state[key]
        assert (lm.kind, lm.namespace, lm.name, lm.metadata["uid"]) == (KIND, "test-ns", "vmim-progression", uid)
        assert lm.spec == {"target": {"selector": selector}}
        for phase in ("PreparingTarget", "TargetReady", "Running"):
            vmim = _status(kube, "test-ns", "vmim-progression", phase, source_pod="virt-launcher-vm12-snq7w")
            rv = int(vmim["metadata"]["resourceVersion"])
            wait_for(lambda: recorder.state.get(key) is not None
                     and int(recorder.state[key].resource_version) == rv, what=f"the update in {phase}")
            assert recorder.state[key].spec == {
                "source": {"workload": {"orchestratorID": "k8s", "workloadID": "test-ns/virt-launcher-vm12-snq7w"}},
                "target": {"selector": selector}}
        _status(kube, "test-ns", "vmim-progression", "Succeeded", source_pod="virt-launcher-vm12-snq7w")
        wait_for(lambda: key not in recorder.state, what="the LiveMigration to go once Succeeded")
        assert recorder.types(key) == [UpdateType.NEW] + [UpdateType.UPDATED] * 3 + [UpdateType.DELETED]
        # A failed migration keeps its LiveMigration (the target keeps its routing) until
        # the migration object goes.
        _status(kube, "test-ns", "already", "Failed", source_pod="virt-launcher-vm0-aaaaa")
        wait_for(lambda: recorder.types(PREFIX + "test-ns/already")[-1:] == [UpdateType.UPDATED], what="Failed")
        kube.delete(*VMIM, "already", "test-ns")
        wait_for(lambda: recorder.state == {}, what="the delete")
        assert recorder.statuses.count(SyncStatus.IN_SYNC) == 1
    finally:
        syncer.stop(timeout=10)


def test_cluster_without_kubevirt_is_in_sync_and_picks_it_up_later(kube, kube_config, kube_kv, monkeypatch):
    """Without KubeVirt's CRD the list is empty and the watch looks again later, as for
    network-policy-api's CRD (the backend's ``optional`` collections)."""
    monkeypatch.setattr(kube_kv_module, "MISSING_API_RETRY_SECONDS", 0.2)
    res = kube.resources.pop(VMIM)
    namespace(kube, "test-ns")
    client = DatastoreClient(kube_kv)
    assert client.list(KIND) == [] and client.list(KIND, "test-ns") == []
    with pytest.raises(NotFound):
        client.get(KIND, "vmim-1", "test-ns")
    recorder = SyncerView()
    syncer = _syncer(kube_config, recorder)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        assert recorder.state == {}
        # KubeVirt is installed and a migration starts: it arrives without a resync.
        kube.resources[VMIM] = res
        _vmim(kube, "test-ns", "vmim-1", "Scheduling")
        wait_for(lambda: PREFIX + "test-ns/vmim-1" in recorder.state, what="the migration after the CRD came")
        assert recorder.statuses.count(SyncStatus.IN_SYNC) == 1
        # KubeVirt is removed: a re-list withdraws its LiveMigrations, and the syncer is in sync again.
        kube.resources.pop(VMIM)
        kube.drop_watches()
        wait_for(lambda: recorder.state == {}, what="the withdrawal after the CRD went")
        wait_for(lambda: syncer.status is SyncStatus.IN_SYNC, what="in sync without the CRD")
    finally:
        syncer.stop(timeout=10)
