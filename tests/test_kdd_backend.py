"""The Kubernetes datastore backend against a stand-in API server (real HTTP, real client).

What is checked is what the API server ends up holding (Calico's CR encoding, pod and
node annotations) and etcd's semantics through the same DatastoreClient, IPAM and syncer
the etcd backend serves.
"""
from __future__ import annotations

import json
import logging
import time

import pytest

from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from kdd_fixtures import k8s_node, namespace, pod, service_account, wait_for
from kube_standin import KubeStandin
from node.config import KUBERNETES, DatastoreConfig
from node.datastore.client import DatastoreClient, OperationNotSupported
from node.datastore.kubernetes import conversion as conv
from node.datastore.kubernetes.kv import KubeKV
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer, SyncStatus, UpdateType
from node.errors import AlreadyExists, Conflict, DatastoreError, NotFound
from node.ipam.allocator import IPAM
from node.model import from_dict
from node.model import ipam as records
from syncer_view import SyncerView

V1 = "crd.projectcalico.org/v1"
V3 = "projectcalico.org/v3"


def _res(kind, name, spec, **meta):
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name, **meta},
                      "spec": spec})


# -- Calico kinds as custom resources -----------------------------------------------------

def test_calico_resources_are_crs_in_the_v1_group(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    created = client.create(_res("IPPool", "pool1", {"cidr": "10.1.0.0/16"}, labels={"team": "a"}))
    (cr,) = kube.items(V1, "ippools")
    assert cr["metadata"]["name"] == "pool1" and "team" not in (cr["metadata"].get("labels") or {})
    stored = json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])
    assert stored["labels"] == {"team": "a"} and "name" not in stored
    assert cr["spec"]["cidr"] == "10.1.0.0/16" and cr["spec"]["blockSize"] == 26
    assert created.resource_version == cr["metadata"]["resourceVersion"]
    got = client.get("IPPool", "pool1")
    assert got.metadata["uid"] == conv.convert_uid(cr["metadata"]["uid"])
    assert got.labels == {"team": "a"} and got.spec == created.spec
    assert got.metadata["creationTimestamp"] == created.metadata["creationTimestamp"]
    # Updates are compare-and-swap on the resourceVersion.
    got.spec["natOutgoing"] = True
    updated = client.update(got)
    assert kube.get(V1, "ippools", "pool1")["spec"]["natOutgoing"] is True
    with pytest.raises(Conflict, match="IPPool\\(pool1\\)"):
        client.update(got)
    with pytest.raises(AlreadyExists, match="IPPool\\(pool1\\)"):
        client.create(_res("IPPool", "pool1", {"cidr": "10.2.0.0/16"}))
    with pytest.raises(Conflict):
        client.delete("IPPool", "pool1", resource_version=got.resource_version)
    client.delete("IPPool", "pool1", resource_version=updated.resource_version)
    assert kube.items(V1, "ippools") == []
    with pytest.raises(NotFound, match="IPPool\\(pool1\\)"):
        client.get("IPPool", "pool1")


def test_namespaced_crs_and_policy_names(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    namespace(kube, "ns1")
    client.create(_res("Tier", "default", {}))  # startup creates it
    client.create(_res("NetworkPolicy", "allow-dns", {"selector": "all()", "egress": [{"action": "Allow"}]},
                       namespace="ns1"))
    (cr,) = kube.items(V1, "networkpolicies")
    assert cr["metadata"]["namespace"] == "ns1"
    assert json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])["name"] == "allow-dns"
    assert cr["metadata"]["labels"] == {"projectcalico.org/tier": "default"}
    (policy,) = client.list("NetworkPolicy", "ns1")
    assert policy.name == "allow-dns" and policy.spec["types"] == ["Egress"]
    assert policy.labels == {"projectcalico.org/tier": "default"}
    assert client.list("NetworkPolicy", "other") == []
    # A namespace that does not exist is the API server's NotFound, named for the resource.
    with pytest.raises(NotFound, match="networkpolicies/nope/p"):
        client.create(_res("NetworkPolicy", "p", {"selector": "all()"}, namespace="nope"))


def test_the_v3_group_stores_objects_as_they_are(tmp_path):
    with KubeStandin(groups=(V3,)) as server:
        config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(server.kubeconfig(tmp_path / "kc")))
        with KubeKV(config, env={}) as kv:
            assert kv.group == V3  # discovered: projectcalico.org served, crd.projectcalico.org not
            client = DatastoreClient(kv)
            client.create(_res("IPPool", "pool1", {"cidr": "10.1.0.0/16"}, labels={"team": "a"}))
            client.create(_res("IPAMConfiguration", "default", {"strictAffinity": True, "autoAllocateBlocks": True}))
            (cr,) = server.items(V3, "ippools")
            assert cr["apiVersion"] == V3 and cr["metadata"]["labels"] == {"team": "a"}
            assert "annotations" not in cr["metadata"]
            assert client.get("IPPool", "pool1").metadata["uid"] == cr["metadata"]["uid"]
            # The IPAM library's configuration is the same ipamconfigurations/default object.
            assert records.decode_config(kv.get(records.CONFIG_KEY).value) == {"strict_affinity": True,
                                                                              "auto_allocate_blocks": True}


def test_api_group_selection(tmp_path, caplog):
    with KubeStandin(groups=(V1, V3)) as both:
        config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(both.kubeconfig(tmp_path / "kc")))
        with KubeKV(config, env={}) as kv:
            assert kv.group == V1  # both served: the v1 CRDs back the v3 API server
        explicit = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=config.kubeconfig,
                                   extra={"calicoAPIGroup": "projectcalico.org/v3"})
        with KubeKV(explicit, env={}) as kv:
            assert kv.group == V3
    # Discovery that fails falls back to v1, with a warning.
    dead = DatastoreConfig(datastore_type=KUBERNETES, extra={"k8sAPIEndpoint": "http://127.0.0.1:9"})
    with caplog.at_level(logging.WARNING):
        with KubeKV(dead, env={}) as kv:
            assert kv.group == V1
    assert "defaulting to crd.projectcalico.org/v1" in caplog.text


# -- native objects ----------------------------------------------------------------------------

def test_nodes_come_from_kubernetes_and_updates_go_to_annotations(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    k8s_node(kube, "node1", labels={"kubernetes.io/hostname": "node1"}, internal_ip="10.0.0.1")
    node = client.get("Node", "node1")
    assert node.spec["orchRefs"] == [{"nodeName": "node1", "orchestrator": "k8s"}]
    assert node.spec["addresses"] == [{"address": "10.0.0.1", "type": "InternalIP"}]
    assert node.labels == {"kubernetes.io/hostname": "node1"}
    node.spec["bgp"] = {"ipv4Address": "10.0.0.1/24", "asNumber": 64513}
    node.metadata["labels"] = dict(node.labels, rack="r1")
    updated = client.update(node)
    assert ("PUT", "/api/v1/nodes/node1/status") in kube.requests
    k8s = kube.get("v1", "nodes", "node1")
    annotations = k8s["metadata"]["annotations"]
    assert annotations["projectcalico.org/IPv4Address"] == "10.0.0.1/24"
    assert annotations["projectcalico.org/ASNumber"] == "64513"
    assert json.loads(annotations["projectcalico.org/labels"]) == {"rack": "r1"}
    assert k8s["metadata"]["labels"] == {"kubernetes.io/hostname": "node1"}
    again = client.get("Node", "node1")
    assert again.labels == {"kubernetes.io/hostname": "node1", "rack": "r1"}
    assert again.spec["bgp"] == {"asNumber": 64513, "ipv4Address": "10.0.0.1/24"}
    # A stale revision conflicts, as on etcd.
    with pytest.raises(Conflict, match="Node\\(node1\\)"):
        client.update(node)
    assert updated.resource_version == again.resource_version
    # Nodes are created and deleted through Kubernetes, not through Calico.
    with pytest.raises(OperationNotSupported, match="nodes/node2"):
        client.create(_res("Node", "node2", {}))
    with pytest.raises(OperationNotSupported):
        client.delete("Node", "node1")


def test_pods_are_workload_endpoints_written_by_the_cni_status_patch(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    namespace(kube, "ns1", labels={"team": "a"})
    service_account(kube, "ns1", "web-sa")
    pod(kube, "ns1", "web-0", "node-1", labels={"app": "web"}, service_account_name="web-sa",
        ports=[{"name": "http", "containerPort": 80}])
    pod(kube, "ns1", "pending", "")  # not scheduled: no endpoint
    kube.create("v1", "pods", {"metadata": {"name": "hostnet"}, "spec": {"nodeName": "node-1", "hostNetwork": True}},
                namespace="ns1")
    (wep,) = client.list("WorkloadEndpoint", "ns1")
    assert wep.name == "node--1-k8s-web--0-eth0"
    assert wep.spec.get("ipNetworks", []) == [] and wep.spec["profiles"] == ["kns.ns1", "ksa.ns1.web-sa"]
    assert wep.spec["ports"] == [{"name": "http", "protocol": "TCP", "port": 80, "hostPort": 0, "hostIP": ""}]
    # The CNI plugin's write: the endpoint's addresses patched into the pod's annotations.
    wep.spec["ipNetworks"] = ["192.168.1.5/32"]
    wep.spec["containerID"] = "abc123"
    client.update(wep)
    assert ("PATCH", "/api/v1/namespaces/ns1/pods/web-0/status") in kube.requests
    annotations = kube.get("v1", "pods", "web-0", "ns1")["metadata"]["annotations"]
    assert annotations == {"cni.projectcalico.org/podIP": "192.168.1.5/32",
                           "cni.projectcalico.org/podIPs": "192.168.1.5/32",
                           "cni.projectcalico.org/containerID": "abc123"}
    got = client.get("WorkloadEndpoint", wep.name, "ns1")
    assert got.spec["ipNetworks"] == ["192.168.1.5/32"] and got.spec["containerID"] == "abc123"
    # The kubelet's status wins over the annotation.
    kube.patch("v1", "pods", "web-0", {"status": {"podIP": "192.168.1.6"}}, namespace="ns1", subresource="status")
    assert client.get("WorkloadEndpoint", wep.name, "ns1").spec["ipNetworks"] == ["192.168.1.6/32"]
    # A delete patches the addresses out.
    client.delete("WorkloadEndpoint", wep.name, "ns1")
    annotations = kube.get("v1", "pods", "web-0", "ns1")["metadata"]["annotations"]
    assert annotations["cni.projectcalico.org/podIP"] == "" and annotations["cni.projectcalico.org/podIPs"] == ""
    with pytest.raises(NotFound, match='node--1-k8s-nope-eth0 with error: pods "nope" not found'):
        client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                                 "metadata": {"name": "node--1-k8s-nope-eth0", "namespace": "ns1"},
                                 "spec": {"orchestrator": "k8s", "node": "node-1", "pod": "nope", "endpoint": "eth0",
                                          "interfaceName": conv.veth_name("ns1", "nope"),
                                          "ipNetworks": ["192.168.1.7/32"]}}))


def test_workload_endpoint_delete_with_a_revision_is_guarded_by_it(kube, kube_kv):
    """The CNI plugin's DEL deletes the endpoint at the revision it read; libcalico-go puts
    that revision in the pod patch, so a pod changed since (another sandbox's ADD writing
    its addresses) is a Conflict instead of losing those addresses."""
    client = DatastoreClient(kube_kv)
    namespace(kube, "ns1")
    pod(kube, "ns1", "web-0", "node-1")
    (wep,) = client.list("WorkloadEndpoint", "ns1")
    wep.spec["ipNetworks"] = ["192.168.1.5/32"]
    wep.spec["containerID"] = "old"
    read = client.update(wep)
    wep.spec["ipNetworks"] = ["192.168.1.9/32"]
    wep.spec["containerID"] = "new"
    client.update(wep)
    with pytest.raises(Conflict):
        client.delete("WorkloadEndpoint", wep.name, "ns1", resource_version=read.resource_version)
    annotations = kube.get("v1", "pods", "web-0", "ns1")["metadata"]["annotations"]
    assert annotations["cni.projectcalico.org/podIPs"] == "192.168.1.9/32"
    current = client.get("WorkloadEndpoint", wep.name, "ns1")
    client.delete("WorkloadEndpoint", wep.name, "ns1", resource_version=current.resource_version)
    annotations = kube.get("v1", "pods", "web-0", "ns1")["metadata"]["annotations"]
    assert annotations["cni.projectcalico.org/podIPs"] == "" and annotations["cni.projectcalico.org/containerID"] == "new"


def test_namespaces_and_service_accounts_are_profiles(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    namespace(kube, "ns1", labels={"team": "a"})
    service_account(kube, "ns1", "sa1", labels={"role": "db"})
    names = [p.name for p in client.list("Profile")]
    assert names == ["kns.default", "kns.kube-system", "kns.ns1", "ksa.ns1.sa1", "projectcalico-default-allow"]
    kns = client.get("Profile", "kns.ns1")
    assert kns.spec["labelsToApply"] == {"pcns.team": "a", "pcns.projectcalico.org/name": "ns1"}
    assert kns.metadata["uid"] == conv.convert_uid(kube.get("v1", "namespaces", "ns1")["metadata"]["uid"])
    ksa = client.get("Profile", "ksa.ns1.sa1")
    assert ksa.spec == {"labelsToApply": {"pcsa.role": "db", "pcsa.projectcalico.org/name": "sa1"}}
    with pytest.raises(NotFound):
        client.get("Profile", "kns.missing")
    with pytest.raises(OperationNotSupported, match="Namespaces"):
        client.create(_res("Profile", "mine", {}))


def test_kubernetes_network_policies_are_read_only(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    kube.create("networking.k8s.io/v1", "networkpolicies", {
        "metadata": {"name": "allow-web"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                 "ingress": [{"ports": [{"port": 80}]}], "policyTypes": ["Ingress"]}}, namespace="default")
    (knp,) = client.list("KubernetesNetworkPolicy")
    assert (knp.kind, knp.name, knp.namespace) == ("KubernetesNetworkPolicy", "allow-web", "default")
    assert knp.spec["selector"] == "projectcalico.org/orchestrator == 'k8s' && app == 'web'"
    assert knp.spec["ingress"] == [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}]
    assert client.get("KubernetesNetworkPolicy", "allow-web", "default").spec == knp.spec
    # Only Calico's own NetworkPolicies are NetworkPolicies (v3.32 semantics) ...
    assert client.list("NetworkPolicy") == []
    # ... but the legacy name still reads it, as a NetworkPolicy (as up to v3.31), read-only.
    legacy = client.get("NetworkPolicy", "knp.default.allow-web", "default")
    assert (legacy.kind, legacy.name, legacy.spec["order"]) == ("NetworkPolicy", "knp.default.allow-web", 1000)
    assert legacy.spec["selector"] == knp.spec["selector"] and legacy.labels == {"projectcalico.org/tier": "default"}
    with pytest.raises(NotFound):
        client.get("NetworkPolicy", "knp.default.nope", "default")
    with pytest.raises(OperationNotSupported, match="knp.default"):
        client.delete("NetworkPolicy", "knp.default.allow-web", "default")
    with pytest.raises(OperationNotSupported, match="read-only"):
        client.create(knp)
    with pytest.raises(OperationNotSupported, match="read-only"):
        client.delete("KubernetesNetworkPolicy", "allow-web", "default")


# -- IPAM ------------------------------------------------------------------------------------------

def test_ipam_records_are_crs(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    client.create(_res("IPPool", "pool1", {"cidr": "10.5.0.0/24", "blockSize": 28}))
    k8s_node(kube, "node1")
    ipam = IPAM(kube_kv)
    got, _ = ipam.auto_assign(num4=2, handle_id="K8s-Pod-Network.ABC", attrs={"node": "node1"}, host="node1")
    assert len(got.ips) == 2
    (block,) = kube.items(V1, "ipamblocks")
    cidr = block["spec"]["cidr"]
    assert block["metadata"]["name"] == conv.cidr_to_name(cidr)
    assert block["spec"]["affinity"] == "host:node1" and block["spec"]["strictAffinity"] is False
    assert block["spec"]["attributes"][0]["handle_id"] == "K8s-Pod-Network.ABC"
    (affinity,) = kube.items(V1, "blockaffinities")
    assert affinity["metadata"]["name"] == f"node1-{conv.cidr_to_name(cidr)}"
    assert affinity["metadata"]["labels"] == conv.affinity_labels("node1", "host", cidr)
    assert affinity["spec"] == {"state": "confirmed", "node": "node1", "type": "host", "cidr": cidr,
                                "deleted": "false"}
    (handle,) = kube.items(V1, "ipamhandles")
    assert handle["metadata"]["name"] == "k8s-pod-network.abc"
    assert handle["spec"] == {"handleID": "K8s-Pod-Network.ABC", "block": {cidr: 2}, "deleted": False}
    # Keys and values read back exactly as the etcd backend stores them.
    items, _ = kube_kv.list("/calico/ipam/v2/")
    keys = [i.key for i in items]
    # (the IPAMConfig "default" is the configuration the assignment created, as
    # libcalico-go's GetIPAMConfig does)
    assert keys == [records.block_key(cidr), records.CONFIG_KEY, records.handle_key("K8s-Pod-Network.ABC"),
                    records.affinity_key("node1", cidr)]
    (config,) = kube.items(V1, "ipamconfigs")
    assert config["metadata"]["name"] == "default"
    assert [r.name for r in client.list("BlockAffinity")] == [affinity["metadata"]["name"]]
    # Release: the handle goes in two steps (marked deleted, then removed).
    ipam.release_by_handle("K8s-Pod-Network.ABC")
    assert kube.items(V1, "ipamhandles") == []
    puts = [p for m, p in kube.requests if m == "PUT" and "/ipamhandles/" in p]
    assert puts, "the handle was marked deleted before it was removed"
    ipam.release_host_affinities("node1")
    assert kube.items(V1, "blockaffinities") == [] and kube.items(V1, "ipamblocks") == []


def _old_affinity(kube, host: str, cidr: str, **labels) -> None:
    """A BlockAffinity as a Calico from before the affinity labels wrote it."""
    kube.create(V1, "blockaffinities", {
        "apiVersion": V1, "kind": "BlockAffinity",
        "metadata": {"name": conv.affinity_name(host, cidr), **({"labels": labels} if labels else {})},
        "spec": {"state": "confirmed", "node": host, "cidr": cidr, "deleted": "false"}})


def test_upgrade_host_labels_this_nodes_older_affinities_only(kube, kube_kv):
    _old_affinity(kube, "node1", "10.5.0.0/26", team="a")
    _old_affinity(kube, "node1", "fd00:5::/122")
    _old_affinity(kube, "node2", "10.5.0.64/26")
    # Invisible to the label-selected listing until labelled.
    assert kube_kv.list("/calico/ipam/v2/host/node1/")[0] == []

    assert kube_kv.upgrade_host_affinities("node1") == 2
    labelled = {a["spec"]["cidr"]: a["metadata"].get("labels") for a in kube.items(V1, "blockaffinities")}
    assert labelled == {"10.5.0.0/26": {"team": "a", **conv.affinity_labels("node1", "host", "10.5.0.0/26")},
                        "fd00:5::/122": conv.affinity_labels("node1", "host", "fd00:5::/122"),
                        "10.5.0.64/26": None}  # another node's: left to that node
    assert labelled["fd00:5::/122"][conv.LABEL_IP_VERSION] == "6"
    items, _ = kube_kv.list("/calico/ipam/v2/host/node1/")
    assert [i.key for i in items] == [records.affinity_key("node1", "10.5.0.0/26"),
                                      records.affinity_key("node1", "fd00:5::/122")]
    assert kube_kv.upgrade_host_affinities("node1") == 0  # nothing left to do


def test_upgrade_host_labels_affinities_it_cannot_otherwise_read(kube, kube_kv):
    """As Calico: labelled from the fields as they are, so a corrupt CR of this node's
    does not stop the node starting (IPAM reads name it later)."""
    kube.create(V1, "blockaffinities", {"apiVersion": V1, "kind": "BlockAffinity", "metadata": {"name": "broken"},
                                        "spec": {"node": "node1", "cidr": "not-a-cidr", "deleted": "maybe"}})
    assert kube_kv.upgrade_host_affinities("node1") == 1
    assert kube.get(V1, "blockaffinities", "broken")["metadata"]["labels"] == conv.affinity_labels(
        "node1", "host", "not-a-cidr")


def test_upgrade_host_names_the_affinities_it_could_not_label(kube, kube_kv, monkeypatch):
    _old_affinity(kube, "node1", "10.5.0.0/26")
    _old_affinity(kube, "node1", "10.5.0.64/26")
    bad = conv.affinity_name("node1", "10.5.0.64/26")
    replace = kube_kv.api.replace

    def refuse_one(path, obj):
        if path.endswith("/" + bad):
            raise DatastoreError("the API server refused it")
        return replace(path, obj)

    monkeypatch.setattr(kube_kv.api, "replace", refuse_one)
    with pytest.raises(DatastoreError, match=rf"BlockAffinity\({bad}\): the API server refused it"):
        kube_kv.upgrade_host_affinities("node1")
    # The other one was still labelled.
    good = kube.get(V1, "blockaffinities", conv.affinity_name("node1", "10.5.0.0/26"))
    assert good["metadata"]["labels"] == conv.affinity_labels("node1", "host", "10.5.0.0/26")


def test_records_left_marked_deleted_read_as_absent_and_are_finished_off(kube, kube_kv):
    kube.create(V1, "ipamhandles", {"metadata": {"name": "h1"},
                                    "spec": {"handleID": "h1", "block": {"10.0.0.0/26": 1}, "deleted": True}})
    assert kube_kv.get(records.handle_key("h1")) is None
    assert kube.items(V1, "ipamhandles") == []
    kube.create(V1, "ipamhandles", {"metadata": {"name": "h2"},
                                    "spec": {"handleID": "h2", "block": {"10.0.0.0/26": 1}, "deleted": True}})
    assert kube_kv.list(records.HANDLE_PREFIX)[0] == []
    # A create over a record still marked deleted is AlreadyExists until a read finishes it.
    with pytest.raises(AlreadyExists):
        kube_kv.create(records.handle_key("h2"), records.encode_handle({"10.0.0.0/26": 1}))
    assert kube_kv.get(records.handle_key("h2")) is None
    kube_kv.create(records.handle_key("h2"), records.encode_handle({"10.0.0.0/26": 1}))


def test_ipam_compare_and_swap(kube, kube_kv):
    key = records.block_key("10.9.0.0/30")
    value = records.encode_block({"cidr": "10.9.0.0/30", "affinity": None, "allocations": [None] * 4,
                                  "unallocated": [0, 1, 2, 3], "attributes": [], "sequenceNumber": 1,
                                  "sequenceNumberForAllocation": {}, "deleted": False})
    rev = kube_kv.create(key, value)
    with pytest.raises(AlreadyExists):
        kube_kv.create(key, value)
    rev2 = kube_kv.update(key, value.replace('"sequenceNumber":1', '"sequenceNumber":2'), rev)
    with pytest.raises(Conflict, match="10.9.0.0-30"):
        kube_kv.update(key, value, rev)
    with pytest.raises(Conflict):
        kube_kv.delete(key, rev)
    assert kube_kv.delete(key, rev2).mod_revision == rev2
    with pytest.raises(NotFound):
        kube_kv.update(key, value, rev2)


def test_ipam_config_shares_the_ipam_configuration_resource(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    client.create(_res("IPAMConfiguration", "default", {"strictAffinity": False, "autoAllocateBlocks": True,
                                                        "kubeVirtVMAddressPersistence": "Enabled"}))
    (cr,) = kube.items(V1, "ipamconfigs")
    assert cr["kind"] == "IPAMConfig" and cr["metadata"]["name"] == "default"
    assert records.decode_config(kube_kv.get(records.CONFIG_KEY).value) == {
        "auto_allocate_blocks": True, "kubeVirtVMAddressPersistence": "Enabled"}
    kube_kv.put(records.CONFIG_KEY, records.encode_config({"strict_affinity": True, "auto_allocate_blocks": True}))
    spec = client.get("IPAMConfiguration", "default").spec
    assert spec["strictAffinity"] is True and spec["autoAllocateBlocks"] is True
    assert "kubeVirtVMAddressPersistence" not in spec


def test_keys_nothing_holds_are_refused_by_name(kube_kv):
    assert kube_kv.get("/calico/felix/v2/no-region/host/n1/status") is None
    with pytest.raises(OperationNotSupported, match="/calico/felix/v2/x"):
        kube_kv.put("/calico/felix/v2/x", b"{}")


# -- list-then-watch ---------------------------------------------------------------------------------

def _lists(kube, path_part):
    return [p for m, p in kube.requests if m == "GET" and path_part in p and "watch=" not in p]


def _watches(kube, path_part):
    return [p for m, p in kube.requests if m == "GET" and path_part in p and "watch=true" in p]


@pytest.fixture
def synced(kube, kube_config):
    recorder = SyncerView()
    syncer = Syncer(lambda: KubeKV(kube_config, env={}), resource_sources(["IPPool", "Profile", "WorkloadEndpoint"]),
                    recorder, initial_backoff=0.05, max_backoff=0.2)
    syncer.start()
    assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
    yield recorder, syncer
    syncer.stop(timeout=10)


def test_syncer_lists_then_watches_every_source(kube, kube_kv, synced):
    recorder, syncer = synced
    assert recorder.statuses[:3] == [SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC]
    # (with the built-in default-allow profile, as libcalico-go's Kubernetes backend lists it)
    assert recorder.names("Profile") == ["kns.default", "kns.kube-system", "projectcalico-default-allow"]
    client = DatastoreClient(kube_kv)
    client.create(_res("IPPool", "p1", {"cidr": "10.1.0.0/16"}))
    namespace(kube, "ns1")
    pod(kube, "ns1", "a", "n1", ip="10.1.0.5")
    wait_for(lambda: recorder.names("WorkloadEndpoint") == ["n1-k8s-a-eth0"], what="the endpoint")
    wait_for(lambda: recorder.names("IPPool") == ["p1"] and "kns.ns1" in recorder.names("Profile"))
    kube.patch("v1", "pods", "a", {"spec": {"hostNetwork": True}}, namespace="ns1")
    # A pod that stops being an endpoint is a delete for the consumer.
    wait_for(lambda: recorder.names("WorkloadEndpoint") == [], what="the endpoint's delete")
    client.delete("IPPool", "p1")
    wait_for(lambda: recorder.names("IPPool") == [])
    assert syncer.status is SyncStatus.IN_SYNC


def test_watches_resume_from_the_last_resource_version_after_a_drop(kube, kube_kv, synced):
    recorder, syncer = synced
    lists_before = len(_lists(kube, "/ippools"))
    # Bookmarks move each watch's resourceVersion on while nothing happens to it.
    kube.create("v1", "configmaps", {"metadata": {"name": "unrelated"}}, namespace="default")
    rv = kube.rv
    wait_for(lambda: ("ippools", rv) in kube.bookmarks, what="a bookmark on the pools' watch")
    time.sleep(0.1)  # let the client read it
    kube.drop_watches()
    kube.create(V1, "ippools", {"metadata": {"name": "p2"}, "spec": {"cidr": "10.2.0.0/16"}})
    wait_for(lambda: recorder.names("IPPool") == ["p2"], what="the pool after the drop")
    resumed = _watches(kube, "/ippools")[-1]
    assert f"resourceVersion={rv}" in resumed, resumed  # resumed from the bookmark, not the list
    assert len(_lists(kube, "/ippools")) == lists_before, "a dropped watch is resumed, not re-listed"
    assert syncer.status is SyncStatus.IN_SYNC


def test_gone_resource_versions_are_relisted_and_missed_deletes_delivered(kube, kube_kv, synced):
    recorder, syncer = synced
    client = DatastoreClient(kube_kv)
    client.create(_res("IPPool", "p1", {"cidr": "10.1.0.0/16"}))
    client.create(_res("IPPool", "p2", {"cidr": "10.2.0.0/16"}))
    wait_for(lambda: recorder.names("IPPool") == ["p1", "p2"])
    lists_before = len(_lists(kube, "/ippools"))
    # The API server restarts and loses its watch history; meanwhile p1 goes.
    kube.stop()
    client_p1 = kube.get(V1, "ippools", "p1")
    kube.delete(V1, "ippools", "p1")
    kube.create(V1, "ippools", dict(client_p1, metadata={"name": "p3"}))
    kube.compact()
    kube.start()
    wait_for(lambda: recorder.names("IPPool") == ["p2", "p3"], timeout=15, what="the re-listed pools")
    assert len(_lists(kube, "/ippools")) > lists_before
    deleted = [u for u in recorder.updates if u.type is UpdateType.DELETED and u.key.endswith("/ippools/p1")]
    assert deleted and deleted[-1].value.name == "p1"
    wait_for(lambda: syncer.status is SyncStatus.IN_SYNC)


def test_unreachable_api_server_is_reported_and_recovered_from(kube, kube_kv, synced):
    recorder, syncer = synced
    kube.stop()
    wait_for(lambda: syncer.status is not SyncStatus.IN_SYNC, timeout=20, what="the syncer to notice")
    assert "cannot reach the Kubernetes API" in syncer.last_error or "watch of" in syncer.last_error
    kube.start()
    DatastoreClient(kube_kv).create(_res("IPPool", "back", {"cidr": "10.3.0.0/16"}))
    wait_for(lambda: recorder.names("IPPool") == ["back"], timeout=20, what="recovery")
    wait_for(lambda: syncer.status is SyncStatus.IN_SYNC)


def test_watches_the_server_ends_are_resumed(kube, kube_config, monkeypatch):
    from node.datastore.kubernetes import kv as kv_module

    monkeypatch.setattr(kv_module, "WATCH_TIMEOUT_SECONDS", 1)
    recorder = SyncerView()
    syncer = Syncer(lambda: KubeKV(kube_config, env={}), resource_sources(["IPPool"]), recorder)
    syncer.start()
    try:
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 10)
        time.sleep(2.5)  # the server ends each watch after a second
        assert len(_watches(kube, "/ippools")) >= 3
        kube.create(V1, "ippools", {"metadata": {"name": "p1"}, "spec": {"cidr": "10.1.0.0/16"}})
        wait_for(lambda: recorder.names("IPPool") == ["p1"])
        assert len(_lists(kube, "/ippools")) == 1 and syncer.status is SyncStatus.IN_SYNC
    finally:
        syncer.stop(timeout=10)


def test_missing_crds_are_reported_by_name(tmp_path):
    with KubeStandin(groups=()) as server:
        config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(server.kubeconfig(tmp_path / "kc")),
                                 extra={"calicoAPIGroup": V1})
        syncer = Syncer(lambda: KubeKV(config, env={}), resource_sources(["IPPool"]), SyncerView(),
                        initial_backoff=0.05, max_backoff=0.1)
        syncer.start()
        try:
            wait_for(lambda: "does not serve /apis/crd.projectcalico.org/v1/ippools (are Calico's CRDs installed?)"
                     in syncer.last_error, what="the syncer's error")
            assert syncer.status is not SyncStatus.IN_SYNC
        finally:
            syncer.stop(timeout=10)
