"""``calicoctl datastore migrate export|import|lock|unlock``: moving a cluster from etcd to Kubernetes.

Replays Calico v3.32.1's calicoctl/calicoctl/commands/datastore/migrate/export_test.go and
migrateipam_test.go, checks the commands' output and messages against migrate/*.go, and
migrates a populated etcd datastore (real etcd) into the Kubernetes datastore (the API
server stand-in), end to end.
"""
from __future__ import annotations

import io
import json
import re

import pytest

from etcd_server import calicoctl_config
from ipam_fixtures import make_node, make_pool
from kdd_fixtures import k8s_node, kube, kube_config, kube_kv, namespace  # noqa: F401 - fixtures
from node.cli import calicoctl
from node.cli.ctl import datastore as migrate
from node.cli.ctl._migrate_ipam import MigrateIPAM
from node.datastore.client import DatastoreClient
from node.datastore.records import KV
from node.ipam.allocator import IPAM
from node.ipam.tunnel import TunnelAddressAllocator
from node.model import KINDS, from_dict
from node.model import ipam as records

V1 = "crd.projectcalico.org/v1"


def res(kind: str, name: str, spec: dict | None = None, namespace: str = "", **meta) -> object:
    metadata = {"name": name, **({"namespace": namespace} if namespace else {}), **meta}
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": metadata, "spec": spec or {}})


# --------------------------------------------------------------------------------------
# export_test.go

def test_convert_iptables_fields_from_v1_values():
    """export_test.go: "Should properly convert v1 API iptables values to v3 API values"."""
    spec = {"defaultEndpointToHostAction": "DROP", "iptablesFilterAllowAction": "ACCEPT",
            "iptablesMangleAllowAction": "RETURN", "iptablesFilterDenyAction": "DROP"}
    migrate.convert_iptables_fields(spec)
    assert spec == {"defaultEndpointToHostAction": "Drop", "iptablesFilterAllowAction": "Accept",
                    "iptablesMangleAllowAction": "Return", "iptablesFilterDenyAction": "Drop"}


def test_convert_iptables_fields_leaves_v3_values():
    """export_test.go: "Should not change v3 API iptables values"."""
    spec = {"defaultEndpointToHostAction": "Drop", "iptablesFilterAllowAction": "ACCEPT",
            "iptablesMangleAllowAction": "Return", "iptablesFilterDenyAction": "Drop"}
    migrate.convert_iptables_fields(spec)
    assert spec == {"defaultEndpointToHostAction": "Drop", "iptablesFilterAllowAction": "Accept",
                    "iptablesMangleAllowAction": "Return", "iptablesFilterDenyAction": "Drop"}


def test_convert_iptables_fields_without_values():
    """export_test.go: "Should not change any values if no iptables values are set"."""
    spec: dict = {}
    migrate.convert_iptables_fields(spec)
    assert spec == {}


def test_export_covers_all_calico_resources():
    """export_test.go: "should cover all calico resources": every kind but those Kubernetes
    holds (Profiles, WorkloadEndpoints, LiveMigrations, kubernetes*), ClusterInformation
    (made fresh), CalicoNodeStatus (not in KDD) and the IPAM kinds (migrated as records)."""
    plurals = {info.plural for info in KINDS.values()}
    plurals -= {"profiles", "workloadendpoints", "livemigrations", "clusterinformations", "caliconodestatuses",
                "ipamconfigs", "ipamconfigurations", "blockaffinities"}
    plurals = {p for p in plurals if not p.startswith("kubernetes")}
    assert sorted(migrate.ALL_V3_RESOURCES) == sorted(plurals)
    assert len(set(migrate.ALL_V3_RESOURCES)) == len(migrate.ALL_V3_RESOURCES)


def test_export_has_names_for_all_resources():
    """export_test.go: "should have names for all resources"."""
    assert sorted(migrate.DISPLAY) == sorted(migrate.ALL_V3_RESOURCES)


def test_export_order_puts_tiers_before_policies_and_nodes_before_node_configs():
    order = list(migrate.ALL_V3_RESOURCES)
    assert order.index("tiers") < min(order.index(p) for p in order if p.endswith("policies"))
    assert order.index("nodes") < order.index("felixconfigurations")
    assert order.index("nodes") < order.index("bgpconfigurations")


# --------------------------------------------------------------------------------------
# migrateipam_test.go

class ListKV:
    """Just enough of a backend for MigrateIPAM.pull: list by prefix, get by key."""

    def __init__(self, items: dict[str, str]):
        self.items = items

    def list(self, prefix: str):
        return [KV(k, v.encode(), 1, 1) for k, v in sorted(self.items.items()) if k.startswith(prefix)], 1

    def get(self, key: str):
        return KV(key, self.items[key].encode(), 1, 1) if key in self.items else None


def _ipam_records(node: str) -> dict[str, str]:
    handle = f"ipip-tunnel-addr-{node}"
    block = {"cidr": "192.168.201.0/26", "affinity": f"host:{node}", "allocations": [0] + [None] * 63,
             "unallocated": list(range(1, 64)), "sequenceNumber": 0, "sequenceNumberForAllocation": {},
             "deleted": False,
             "attributes": [{"handle_id": handle, "secondary": {"node": node, "type": "ipipTunnelAddress"},
                             "alternateOwnerAttrs": {"node": node, "type": "ipipTunnelAddress"}}]}
    return {records.block_key("192.168.201.0/26"): json.dumps(block),
            records.affinity_key(node, "192.168.201.0/26"): records.encode_affinity("confirmed"),
            records.handle_key(handle): records.encode_handle({"192.168.201.0/26": 1})}


@pytest.mark.parametrize("new_name", ["k8sNodeName", "etcdNodeName"])
def test_ipam_node_names_replaced(new_name):
    """migrateipam_test.go: "Should replace the node names in the IPAM block, block
    affinity, and handle" and "Should not replace ... if the node names are the same"."""
    ipam = MigrateIPAM(node_map={"etcdNodeName": new_name})
    ipam.pull(ListKV(_ipam_records("etcdNodeName")))
    [(block_key, block, _)] = ipam.blocks
    assert block_key == "/calico/ipam/v2/assignment/ipv4/block/192.168.201.0-26"
    assert block["affinity"] == f"host:{new_name}"
    [attr] = block["attributes"]
    assert attr["handle_id"] == f"ipip-tunnel-addr-{new_name}"
    assert attr["secondary"]["node"] == new_name and attr["alternateOwnerAttrs"]["node"] == new_name
    [(affinity_key, _, _)] = ipam.affinities
    assert affinity_key == f"/calico/ipam/v2/host/{new_name}/ipv4/block/192.168.201.0-26"
    [(handle_key, handle, _)] = ipam.handles
    assert handle_key == f"/calico/ipam/v2/handle/ipip-tunnel-addr-{new_name}"
    assert handle == {"block": {"192.168.201.0/26": 1}, "deleted": False}


def test_ipam_json_is_calicos_shape():
    """The IPAM section as migrateIPAM marshals: parts in struct order, empty ones left
    out, each record {"Key", "Value", "TTL"}; and it reads back to the same records."""
    ipam = MigrateIPAM(node_map={})
    ipam.pull(ListKV(_ipam_records("n1")))
    doc = ipam.to_json()
    assert list(doc) == ["block_affinities", "blocks", "handles"]
    assert doc["block_affinities"] == [{"Key": "/calico/ipam/v2/host/n1/ipv4/block/192.168.201.0-26",
                                        "Value": {"state": "confirmed", "deleted": False}, "TTL": 0}]
    assert list(doc["blocks"][0]["Value"]) == ["cidr", "affinity", "allocations", "unallocated", "attributes",
                                               "sequenceNumber", "sequenceNumberForAllocation", "deleted"]
    again = MigrateIPAM.from_json(json.dumps(doc))
    assert (again.affinities, again.blocks, again.handles, again.config) == \
        (ipam.affinities, ipam.blocks, ipam.handles, None)
    assert MigrateIPAM().to_json() == {}


@pytest.mark.parametrize("doc, message", [
    ("[]", "the IPAM section must be a JSON object, not list"),
    ('{"blocks": {}}', "blocks: expected a list of records, found dict"),
    ('{"blocks": [{"Key": "/calico/ipam/v2/handle/x", "Value": {}, "TTL": 0}]}',
     "blocks[0].Key: '/calico/ipam/v2/handle/x' is not an IPAM block key"),
    ('{"handles": [{"Key": "/calico/ipam/v2/handle/x", "Value": {"block": {"10.0.0.0/26": "one"}}}]}',
     "handles[0].Value: IPAM handle count for block 10.0.0.0/26 is not an integer: 'one'"),
    ('{"block_affinities": [{"Key": "/calico/ipam/v2/host/n/ipv4/block/10.0.0.0-26", "Value": null}]}',
     "block_affinities[0].Value: expected a JSON object, found null"),
    ('{"block_affinities": [{"Key": "/calico/ipam/v2/host/n/ipv4/block/10.0.0.0-26", '
     '"Value": {"state": "gone"}}]}', "block_affinities[0].Value.state = \"gone\""),
    ('{"config": {"Key": "/calico/ipam/v2/other", "Value": {}}}', "config.Key: '/calico/ipam/v2/other' is not"),
    ('{"handles": [{"Key": "/calico/ipam/v2/handle/x", "Value": {"block": {}}, "TTL": "0"}]}',
     'handles[0].TTL: expected a whole number of nanoseconds, found "0"'),
])
def test_ipam_section_errors_name_the_record_and_field(doc, message):
    from node.cli.ctl._migrate_ipam import IPAMFileError

    with pytest.raises(IPAMFileError) as err:
        MigrateIPAM.from_json(doc)
    assert message in str(err.value)


# --------------------------------------------------------------------------------------
# The commands.

@pytest.fixture
def run(capsys, monkeypatch):
    """calicoctl in-process with a given config file: run(cfg, *args, stdin=)."""

    def call(cfg, *args, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = calicoctl.main(["-c", str(cfg), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.fixture
def etcd_cfg(etcd_clean_config, tmp_path):
    return calicoctl_config(tmp_path / "etcd.cfg", etcd_clean_config.etcd_endpoints[0])


@pytest.fixture
def kdd_cfg(kube_config, tmp_path):
    path = tmp_path / "kdd.cfg"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"
                    f"spec: {{datastoreType: kubernetes, kubeconfig: '{kube_config.kubeconfig}', "
                    "k8sClientQPS: 1000}\n")
    return path


@pytest.fixture
def kdd(kube_kv):
    return DatastoreClient(kube_kv)


def ready(client) -> object:
    return client.get("ClusterInformation", "default").spec.get("datastoreReady")


@pytest.mark.etcd
def test_lock_creates_cluster_information_and_unlock_reverts(run, etcd_cfg, client):
    """lock.go: EnsureInitialized (ClusterInformation, the default tiers), then
    datastoreReady=false, "Datastore locked."; unlock.go: true, "Datastore unlocked."."""
    assert run(etcd_cfg, "datastore", "migrate", "lock") == (0, "Datastore locked.\n", "")
    assert ready(client) is False
    assert {t.name for t in client.list("Tier")} == {"default", "kube-admin", "kube-baseline"}
    assert run(etcd_cfg, "datastore", "migrate", "unlock") == (0, "Datastore unlocked.\n", "")
    assert ready(client) is True


@pytest.mark.etcd
def test_unlock_without_cluster_information(run, etcd_cfg):
    code, out, err = run(etcd_cfg, "datastore", "migrate", "unlock")
    assert (code, out) == (1, "")
    assert err == ("error retrieving ClusterInformation for unlocking: resource does not exist: "
                   "ClusterInformation(default) with error: <nil>\n")


@pytest.mark.etcd
def test_export_needs_a_locked_datastore(run, etcd_cfg, client):
    code, out, err = run(etcd_cfg, "datastore", "migrate", "export")
    assert (code, out) == (1, "")
    assert err == ("error while checking if datastore was locked: error retrieving ClusterInformation: "
                   "resource does not exist: ClusterInformation(default) with error: <nil>\n")
    run(etcd_cfg, "datastore", "migrate", "lock")
    run(etcd_cfg, "datastore", "migrate", "unlock")
    code, out, err = run(etcd_cfg, "datastore", "migrate", "export")
    assert (code, out, err) == (1, "", "datastore is not locked. Run the `calicoctl datastore migrate lock` "
                                       "command in order to begin migration\n")


@pytest.mark.etcd
def test_lock_version_mismatch_is_refused(run, etcd_cfg, client):
    """lock, unlock and export check the cluster's version as every calicoctl command
    does (import deliberately does not)."""
    from startup.cluster import build

    client.create(build("ClusterInformation", "default", {"calicoVersion": "v3.1.0", "datastoreReady": True}))
    code, _, err = run(etcd_cfg, "datastore", "migrate", "lock")
    assert code == 1 and "version mismatch." in err and "Cluster Version:  3.1.0" in err
    assert ready(client) is True
    assert run(etcd_cfg, "datastore", "migrate", "lock", "--allow-version-mismatch")[:2] == (0, "Datastore locked.\n")


def _section_items(text: str) -> dict[str, list[dict]]:
    """{ListKind: items} of export's YAML part."""
    import yaml

    out = {}
    for doc in yaml.safe_load_all(text):
        if doc:
            out[doc["kind"]] = doc["items"]
    return out


@pytest.mark.etcd
def test_export_stream(run, etcd_cfg, client, etcd_kv):
    """export.go: each kind's list as YAML and "---", then "===" and ClusterInformation as
    JSON, then "===" and the IPAM JSON. Items lose uid, resourceVersion and
    creationTimestamp (which Go prints as null); the list keeps its resourceVersion;
    Kubernetes NetworkPolicies (knp.default.*) and Profiles are left out; node names
    become the k8s orchestrator's, in node.<name> configurations too; v1 iptables actions
    get the v3 spelling."""
    run(etcd_cfg, "datastore", "migrate", "lock")
    make_pool(client, "pool1", "10.1.0.0/24")
    make_node(client, "etcd-a", spec={"orchRefs": [{"orchestrator": "k8s", "nodeName": "kube-a"}]})
    client.create(res("NetworkPolicy", "allow", {"selector": "all()"}, namespace="web"))
    client.create(res("NetworkPolicy", "knp.default.from-k8s", {"selector": "all()"}, namespace="web"))
    client.create(res("StagedNetworkPolicy", "staged-default", {"selector": "all()"}, namespace="default"))
    client.create(res("StagedNetworkPolicy", "staged-web", {"selector": "all()"}, namespace="web"))
    client.create(res("Profile", "p1"))
    client.create(res("BGPConfiguration", "node.etcd-a", {"logSeverityScreen": "Debug"}))
    # A v1-era FelixConfiguration, as stored before the v3 API's spelling.
    client.create(res("FelixConfiguration", "node.etcd-a", {"defaultEndpointToHostAction": "Return"}))
    key = "/calico/resources/v3/projectcalico.org/felixconfigurations/node.etcd-a"
    stored = json.loads(etcd_kv.get(key).value)
    stored["spec"]["defaultEndpointToHostAction"] = "DROP"
    etcd_kv.put(key, json.dumps(stored).encode())

    code, out, err = run(etcd_cfg, "datastore", "migrate", "export")
    assert code == 0, err
    v3, info, ipam = out.split("===\n")
    assert v3.count("---\n") == len(migrate.ALL_V3_RESOURCES) and v3.endswith("---\n")
    first = v3.split("---\n")[0]
    assert re.fullmatch(
        'apiVersion: projectcalico.org/v3\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: IPPool\n'
        '  metadata:\n    creationTimestamp: null\n    name: pool1\n  spec:\n    allowedUses:\n    - Workload\n'
        '    - Tunnel\n    assignmentMode: Automatic\n    blockSize: 26\n    cidr: 10.1.0.0/24\n    ipipMode: Never\n'
        '    nodeSelector: all\\(\\)\n    vxlanMode: Never\nkind: IPPoolList\n'
        'metadata:\n  resourceVersion: "[0-9]+"\n', first), first
    lists = _section_items(v3)
    assert list(lists) == ["IPPoolList", "BGPPeerList", "TierList", "GlobalNetworkPolicyList",
                           "StagedGlobalNetworkPolicyList", "GlobalNetworkSetList", "HostEndpointList",
                           "KubeControllersConfigurationList", "NetworkPolicyList", "StagedNetworkPolicyList",
                           "StagedKubernetesNetworkPolicyList", "NetworkSetList", "NodeList",
                           "BGPConfigurationList", "FelixConfigurationList", "IPReservationList", "BGPFilterList"]
    assert lists["BGPPeerList"] == []
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in lists["NetworkPolicyList"]] == \
        [("web", "allow")]
    # As Calico, only the default namespace's staged policies (it lists them without -A).
    assert [p["metadata"]["name"] for p in lists["StagedNetworkPolicyList"]] == ["staged-default"]
    assert [n["metadata"]["name"] for n in lists["NodeList"]] == ["kube-a"]
    assert [c["metadata"]["name"] for c in lists["BGPConfigurationList"]] == ["node.kube-a"]
    [felix] = lists["FelixConfigurationList"]
    assert felix["metadata"] == {"creationTimestamp": None, "name": "node.kube-a"}
    assert felix["spec"]["defaultEndpointToHostAction"] == "Drop"
    assert "Profile" not in v3
    cluster = json.loads(info)
    assert list(cluster) == ["kind", "apiVersion", "metadata", "spec"]
    assert cluster["spec"]["datastoreReady"] is False and cluster["metadata"]["uid"]
    assert info.startswith('{\n  "kind": "ClusterInformation",\n  "apiVersion": "projectcalico.org/v3",\n')
    assert ipam == "{}\n"


@pytest.mark.etcd
def test_export_needs_a_k8s_orchestrator_reference(run, etcd_cfg, client):
    run(etcd_cfg, "datastore", "migrate", "lock")
    make_node(client, "bare-metal")
    code, out, err = run(etcd_cfg, "datastore", "migrate", "export")
    assert code == 1
    assert err == ("unable to process metadata for export for Node resource: node bare-metal missing a 'k8s' "
                   "orchestrator reference. Unable to export data unless every node has a 'k8s' orchestrator "
                   "reference\n")
    # What came before the nodes was already printed, as calicoctl streams it.
    assert out.startswith("apiVersion: projectcalico.org/v3\n") and "kind: NetworkSetList" in out
    assert "NodeList" not in out and "===" not in out


def test_export_refuses_the_kubernetes_datastore(run, kdd_cfg, kdd):
    run(kdd_cfg, "datastore", "migrate", "lock")
    code, out, err = run(kdd_cfg, "datastore", "migrate", "export")
    assert (code, out, err) == (1, "", "invalid datastore type: kubernetes to export from for datastore migration. "
                                       "Datastore type must be etcdv3\n")


def test_import_refuses_etcd(run, tmp_path):
    cfg = calicoctl_config(tmp_path / "etcd.cfg", "http://127.0.0.1:1")
    code, out, err = run(cfg, "datastore", "migrate", "import", "-f", str(tmp_path / "x"))
    assert (code, out, err) == (1, "", "invalid datastore type: etcdv3 to import to for datastore migration. "
                                       "Datastore type must be kubernetes\n")


def test_import_needs_a_filename(capsys):
    with pytest.raises(SystemExit) as exited:
        calicoctl.main(["datastore", "migrate", "import"])
    assert exited.value.code == 1
    assert "the following arguments are required: -f/--filename" in capsys.readouterr().err


EMPTY_EXPORT = "apiVersion: projectcalico.org/v3\nitems: []\nkind: IPPoolList\nmetadata: {}\n---\n===\n" \
               '{"kind": "ClusterInformation", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "default"},' \
               ' "spec": {"clusterGUID": "abc", "calicoVersion": "v3.32.1"}}\n===\n'


def test_import_installs_crds_and_refuses_a_used_datastore(run, kdd_cfg, kube, kdd, tmp_path):
    """import.go: the CRDs are created (updated when they exist); a target holding a
    Calico resource or an IPAM record is refused, the built-in tiers do not count."""
    k8s_node(kube, "kube-a")
    kdd.create(res("IPPool", "existing", {"cidr": "10.9.0.0/24"}))
    (tmp_path / "export.txt").write_text(EMPTY_EXPORT + "{}\n")
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", str(tmp_path / "export.txt"))
    assert (code, out) == (1, "")
    assert err == ("datastore already has Calico resources: found existing Calico IPPool resource. Clear out all "
                   "Calico resources by deleting all Calico CRDs\n")
    crds = kube.items("apiextensions.k8s.io/v1", "customresourcedefinitions")
    assert len(crds) == 23 and {c["spec"]["group"] for c in crds} == {"crd.projectcalico.org",
                                                                      "policy.networking.k8s.io"}
    assert "ippools.crd.projectcalico.org" in {c["metadata"]["name"] for c in crds}

    kdd.delete("IPPool", "existing")
    from startup.cluster import ensure_tier

    ensure_tier(kdd, "default", 1000000, "Deny")  # a built-in tier is no obstacle
    kdd.kv.create(records.handle_key("leftover"), records.encode_handle({"10.9.0.0/26": 1}).encode())
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", str(tmp_path / "export.txt"))
    assert (code, err) == (1, "datastore already has Calico resources: found existing IPAM resources. Clear out "
                              "all Calico resources by deleting all Calico CRDs\n")
    # The CRDs existed this time: replaced at their resourceVersion.
    assert len(kube.items("apiextensions.k8s.io/v1", "customresourcedefinitions")) == 23


def test_import_file_errors(run, kdd_cfg, kube, kdd, tmp_path):
    missing = tmp_path / "missing.txt"
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", str(missing))
    # The target is locked before the file is read, as in Calico.
    assert (code, out) == (1, "Datastore locked.\n")
    assert err == f"error while reading migration file: open {missing}: no such file or directory\n"
    assert ready(kdd) is False

    # That import got as far as initialising the target: it is not empty any more.
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", str(missing))
    assert (code, out) == (1, "")
    assert err == ("datastore already has Calico resources: found existing Calico ClusterInformation resource. "
                   "Clear out all Calico resources by deleting all Calico CRDs\n")
    clear_calico(kube)
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", "-", stdin="just yaml\n===\n")
    assert (code, out) == (1, "Datastore locked.\n")
    assert err == ("error while reading migration file: imported file: /dev/stdin is improperly formatted. "
                   "Try recreating with 'calicoctl export'\n")


def clear_calico(kube) -> None:
    """What Calico tells the operator to do before importing again: remove every Calico
    resource (deleting the CRDs); the built-in tiers may stay."""
    from kube_standin import CALICO_PLURALS

    for plural in (*CALICO_PLURALS, "ipamconfigs"):
        for obj in kube.items(V1, plural):
            if not (plural == "tiers" and obj["metadata"]["name"] in ("default", "kube-admin", "kube-baseline")):
                kube.delete(V1, plural, obj["metadata"]["name"], obj["metadata"].get("namespace", ""))


def _import(run, kdd_cfg, tmp_path, text: str):
    path = tmp_path / "export.txt"
    path.write_text(text)
    return run(kdd_cfg, "datastore", "migrate", "import", "-f", str(path))


def test_import_ipam_section_problems(run, kdd_cfg, kube, kdd, tmp_path):
    code, out, err = _import(run, kdd_cfg, tmp_path, EMPTY_EXPORT.replace(
        "items: []", "items:\n- {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: p},"
                     " spec: {cidr: 10.2.0.0/24}}") + "{}\n")
    assert code == 1
    assert out == ("Datastore locked.\nSuccessfully applied 1 'IPPool' resource(s)\nImporting IPAM resources\n")
    assert err == "no IPAM resources specified in file\n"
    info = kdd.get("ClusterInformation", "default")
    assert (info.spec["clusterGUID"], info.spec["calicoVersion"]) == ("abc", "v3.32.1")

    clear_calico(kube)
    code, out, err = _import(run, kdd_cfg, tmp_path, EMPTY_EXPORT.replace(
        "items: []", "items:\n- {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: p},"
                     " spec: {cidr: 10.2.0.0/24}}") + '{"blocks": [{"Key": "/nope", "Value": {}, "TTL": 0}]}\n')
    assert code == 1 and out.endswith("Importing IPAM resources\n")
    assert err == ("failed to read IPAM resources: blocks[0].Key: '/nope' is not an IPAM block key "
                   "(/calico/ipam/v2/assignment/ipv<4|6>/block/<cidr>)\n")


def test_import_v3_section_problems(run, kdd_cfg, kube, kdd, tmp_path):
    bad = EMPTY_EXPORT.replace("items: []", "items:\n- {apiVersion: projectcalico.org/v3, kind: IPPool, "
                                            "metadata: {name: p}, spec: {cidr: 10.2.0.0/24, blockSize: 99}}")
    code, out, err = _import(run, kdd_cfg, tmp_path, bad + "{}\n")
    assert (code, out) == (1, "Datastore locked.\n")
    assert err.startswith("failed to import v3 resources: failed to import v3 resources: failed to execute command: ")
    assert "blockSize" in err
    clear_calico(kube)
    code, out, err = _import(run, kdd_cfg, tmp_path, EMPTY_EXPORT + "{}\n")
    assert err == ("failed to import v3 resources: failed to import v3 resources: failed to apply any resources: "
                   f"[no resources specified in the v3 resources section of {tmp_path / 'export.txt'}]\n")


def test_import_warns_about_nodes_kubernetes_lacks(run, kdd_cfg, kube, kdd, tmp_path):
    """applyV3: a Node without a Kubernetes node is skipped with Calico's warning (a line
    it leaves unterminated); other errors fail the import."""
    k8s_node(kube, "kube-a")
    nodes = ("kind: NodeList\napiVersion: projectcalico.org/v3\nitems:\n"
             "- {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: kube-a},"
             " spec: {bgp: {ipv4Address: 10.0.0.1/24}}}\n"
             "- {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: gone}, spec: {}}\n---\n")
    code, out, err = _import(run, kdd_cfg, tmp_path, nodes + EMPTY_EXPORT + "{}\n")
    assert code == 1 and err == "no IPAM resources specified in file\n"
    assert out == ("Datastore locked.\n[WARNING] Attempted to import node Node(gone) from etcd that references a "
                   "nonexistent Kubernetes node. Skipping that node. Non-Kubernetes nodes are not supported in the "
                   "Kubernetes datastore and will be skipped.Importing IPAM resources\n")
    assert kdd.get("Node", "kube-a").spec["bgp"]["ipv4Address"] == "10.0.0.1/24"


# --------------------------------------------------------------------------------------
# End to end.

def _ipam_state(kv) -> dict:
    ipam = MigrateIPAM()
    ipam.pull(kv)
    return ipam.to_json()


def _listing(client, kind: str) -> dict:
    out = {}
    for r in client.list(kind, ""):
        meta = {k: v for k, v in r.metadata.items() if k in ("labels", "annotations")}
        out[(r.namespace, r.name)] = (meta, r.spec)
    return out


@pytest.mark.etcd
def test_migrate_etcd_to_kubernetes(run, etcd_cfg, kdd_cfg, client, etcd_kv, kube, kdd, tmp_path):
    """The documented migration: populate etcd (pools, policies, profiles, BGP
    configuration, nodes, IPAM allocations and tunnel addresses), lock it, export, import
    into the Kubernetes datastore, unlock that; the Kubernetes side then lists the same
    resources and IPAM records, with node names the Kubernetes ones."""
    # -- the etcd cluster, as calico/node's startup initialised it
    import node
    from startup.cluster import ensure_initialized

    ensure_initialized(client, node.__version__, "k8s,bgp", "etcdv3")
    make_pool(client, "pool-a", "10.10.0.0/16", ipipMode="Always", natOutgoing=True)
    make_pool(client, "pool-6", "fd00:10::/112", blockSize=122)
    for etcd_name, kube_name, ip in (("etcd-1", "kube-1", "192.0.2.1"), ("etcd-2", "kube-2", "192.0.2.2")):
        make_node(client, etcd_name, labels={"rack": "r1"},
                  spec={"bgp": {"ipv4Address": f"{ip}/24"},
                        "orchRefs": [{"orchestrator": "k8s", "nodeName": kube_name}]})
        k8s_node(kube, kube_name, internal_ip=ip)
    namespace(kube, "shop")
    client.create(res("Tier", "security", {"order": 100}))
    client.create(res("GlobalNetworkPolicy", "security.deny-db", {"tier": "security", "selector": "role == 'db'",
                                                                   "types": ["Ingress"], "ingress": [{"action": "Deny"}]}))
    client.create(res("NetworkPolicy", "allow-web", {"selector": "app == 'web'", "ingress": [{"action": "Allow"}]},
                      namespace="shop", labels={"team": "a"}))
    client.create(res("NetworkPolicy", "knp.default.k8s-one", {"selector": "all()"}, namespace="shop"))
    client.create(res("GlobalNetworkSet", "blocked", {"nets": ["198.51.100.0/24"]}))
    client.create(res("NetworkSet", "partners", {"nets": ["203.0.113.0/24"]}, namespace="shop"))
    client.create(res("Profile", "legacy", {"ingress": [{"action": "Allow"}]}))
    client.create(res("BGPConfiguration", "default", {"asNumber": 64513, "nodeToNodeMeshEnabled": False}))
    client.create(res("BGPConfiguration", "node.etcd-1", {"logSeverityScreen": "Debug"}))
    client.create(res("BGPPeer", "tor", {"peerIP": "192.0.2.254", "asNumber": 64600}))
    client.create(res("FelixConfiguration", "default", {"logSeverityScreen": "Warning"}))
    client.create(res("FelixConfiguration", "node.etcd-2", {"defaultEndpointToHostAction": "Accept"}))
    client.create(res("HostEndpoint", "etcd-1-eth0", {"node": "etcd-1", "interfaceName": "eth0"}))
    client.create(res("IPReservation", "reserved", {"reservedCIDRs": ["10.10.255.0/24"]}))
    ipam = IPAM(etcd_kv)
    for node_name in ("etcd-1", "etcd-2"):
        TunnelAddressAllocator(ipam, node_name).reconcile()
        for i in range(2):
            v4, v6 = ipam.auto_assign(num4=1, num6=1, handle_id=f"k8s-pod-network.{node_name[-1]}{i}",
                                      attrs={"node": node_name, "namespace": "shop", "pod": f"web-{i}"},
                                      host=node_name)
            assert v4.ips and v6.ips
    cfg = ipam.get_config()
    cfg.strict_affinity = True
    ipam.set_config(cfg)
    etcd_ipam = _ipam_state(etcd_kv)
    assert any(h["Key"].endswith("ipip-tunnel-addr-etcd-1") for h in etcd_ipam["handles"])

    # -- lock, export
    assert run(etcd_cfg, "datastore", "migrate", "lock") == (0, "Datastore locked.\n", "")
    code, exported, err = run(etcd_cfg, "datastore", "migrate", "export")
    assert code == 0, err
    (tmp_path / "etcd-data").write_text(exported)
    guid = client.get("ClusterInformation", "default").spec["clusterGUID"]

    # -- import, unlock
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", str(tmp_path / "etcd-data"))
    assert code == 0, err
    assert re.fullmatch(r"Datastore locked\.\nSuccessfully applied \d+ resource\(s\)\nImporting IPAM resources\n"
                        r"Successfully applied \d+ IPAM resource\(s\)\nDatastore information successfully imported\. "
                        r"Please refer to the datastore migration documentation for next steps\.\n", out), out
    assert f"Successfully applied {etcd_ipam_count(etcd_ipam)} IPAM resource(s)" in out
    assert ready(kdd) is False
    assert run(kdd_cfg, "datastore", "migrate", "unlock") == (0, "Datastore unlocked.\n", "")
    info = kdd.get("ClusterInformation", "default")
    assert info.spec["datastoreReady"] is True and info.spec["clusterGUID"] == guid

    # -- the Kubernetes side has what etcd had
    for kind in ("IPPool", "Tier", "GlobalNetworkPolicy", "GlobalNetworkSet", "NetworkSet", "BGPPeer",
                 "HostEndpoint", "IPReservation"):
        assert _listing(kdd, kind) == _listing(client, kind), kind
    etcd_policies = _listing(client, "NetworkPolicy")
    del etcd_policies[("shop", "knp.default.k8s-one")]
    assert _listing(kdd, "NetworkPolicy") == etcd_policies
    assert set(_listing(kdd, "BGPConfiguration")) == {("", "default"), ("", "node.kube-1")}
    assert _listing(kdd, "BGPConfiguration")[("", "default")] == _listing(client, "BGPConfiguration")[("", "default")]
    felix = _listing(kdd, "FelixConfiguration")
    assert set(felix) == {("", "default"), ("", "node.kube-2")}
    assert felix[("", "node.kube-2")][1]["defaultEndpointToHostAction"] == "Accept"
    for kube_name, ip in (("kube-1", "192.0.2.1/24"), ("kube-2", "192.0.2.2/24")):
        node = kdd.get("Node", kube_name)
        assert node.spec["bgp"]["ipv4Address"] == ip and node.metadata["labels"]["rack"] == "r1"
    assert "legacy" not in {p.name for p in kdd.list("Profile")}

    renamed = json.loads(json.dumps(etcd_ipam).replace("etcd-1", "kube-1").replace("etcd-2", "kube-2"))
    assert _ipam_state(kdd.kv) == renamed
    # calico-ipam on the Kubernetes side sees the same allocations under the new names.
    kube_ipam = IPAM(kdd.kv)
    assert kube_ipam.get_config().strict_affinity is True
    assert len(kube_ipam.ips_by_handle("k8s-pod-network.10")) == 2
    assert len(kube_ipam.ips_by_handle("ipip-tunnel-addr-kube-1")) == 1
    tunnel = kdd.get("Node", "kube-1").spec["bgp"].get("ipv4IPIPTunnelAddr")
    assert tunnel and kube_ipam.get_assignment_attributes(tunnel).handle_id == "ipip-tunnel-addr-kube-1"

    # A second import finds the datastore in use.
    code, out, err = run(kdd_cfg, "datastore", "migrate", "import", "-f", str(tmp_path / "etcd-data"))
    assert code == 1 and err.startswith("datastore already has Calico resources: found existing Calico IPPool")


def etcd_ipam_count(doc: dict) -> int:
    return sum(len(doc.get(p, [])) for p in ("block_affinities", "blocks", "handles")) + (1 if "config" in doc else 0)
