"""calicoctl v3.32.1's system tests (calicoctl/tests/st/calicoctl/test_crud.py), replayed
against our calicoctl on a real etcd: the messages and exit codes they assert. Each test
names the Python test it follows; the resources are written anew from the facts of
calicoctl/tests/st/utils/data.py."""
import json

import yaml

NOT_FOUND = "resource does not exist"
CONFLICT = "update conflict"


def doc(kind, name, spec, namespace=None, **meta):
    md = {"name": name, **meta}
    if namespace:
        md["namespace"] = namespace
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": md, "spec": spec}


POOL1 = doc("IPPool", "ippool-name1", {"cidr": "10.0.1.0/24", "ipipMode": "Always", "vxlanMode": "Never",
                                       "blockSize": 27, "allowedUses": ["Workload", "Tunnel"],
                                       "assignmentMode": "Automatic", "nodeSelector": "foo == 'bar'"})
POOL2 = doc("IPPool", "ippool-name2", {"cidr": "fed0:8001::/64", "ipipMode": "Never", "vxlanMode": "Never",
                                       "blockSize": 123, "allowedUses": ["Workload", "Tunnel"],
                                       "assignmentMode": "Automatic", "nodeSelector": "all()"})
TABLE1 = "NAME           CIDR          SELECTOR       \nippool-name1   10.0.1.0/24   foo == 'bar'   \n\n"
TABLE2 = "NAME           CIDR             SELECTOR   \nippool-name2   fed0:8001::/64   all()      \n\n"
PEER_REV1 = doc("BGPPeer", "bgppeer-name-123abc", {"node": "node1", "peerIP": "192.168.0.250", "asNumber": 64514})
PEER_REV2 = doc("BGPPeer", "bgppeer-name-123abc", {"node": "node2", "peerIP": "192.168.0.251", "asNumber": 64515})


def write(ctl, verb, data, fmt="yaml"):
    text = json.dumps(data) if fmt == "json" else yaml.safe_dump(data)
    return ctl(verb, "-f", "@in." + fmt, files={"in." + fmt: text})


def get_yaml(ctl, *args):
    code, out, err = ctl("get", *args, "-o", "yaml")
    assert code == 0, err
    return yaml.safe_load(out)


def test_get(ctl):
    """TestCalicoctlCommands.test_get: tables, and deleting what is gone."""
    assert write(ctl, "create", POOL2) == (0, "Successfully created 1 'IPPool' resource(s)\n", "")
    assert write(ctl, "create", POOL1)[0] == 0
    assert ctl("get", "ippool", "ippool-name1") == (0, TABLE1, "")
    assert ctl("get", "ippool", "ippool-name1", "-o", "wide") == (0, (
        "NAME           CIDR          NAT     IPIPMODE   VXLANMODE   DISABLED   DISABLEBGPEXPORT   SELECTOR       "
        "ASSIGNMENTMODE   \nippool-name1   10.0.1.0/24   false   Always     Never       false      false              "
        "foo == 'bar'   Automatic        \n\n"), "")
    assert ctl("delete", "ippool", "ippool-name1")[0] == 0
    assert write(ctl, "delete", POOL2)[0] == 0
    assert get_yaml(ctl, "ippool")["items"] == []
    code, _, err = ctl("delete", "ippool", "ippool-name2")
    assert code == 1 and NOT_FOUND in err


def test_get_delete_multiple_names(ctl):
    """test_get_delete_multiple_names: one table per name; a missing name is reported on
    stderr after the others are printed, and delete goes on past it."""
    write(ctl, "create", POOL2)
    write(ctl, "create", POOL1)
    assert ctl("get", "ippool", "ippool-name1", "ippool-name2", "--export") == (0, TABLE1 + TABLE2, "")
    assert ctl("get", "ippool", "ippool-name1", "blah", "ippool-name2", "--export") == (
        1, TABLE1 + TABLE2, "resource does not exist: IPPool(blah) with error: <nil>\n")
    code, _, _ = ctl("delete", "ippool", "ippool-name1", "blah", "ippool-name2")
    assert code == 1
    assert get_yaml(ctl, "ippool")["items"] == []
    write(ctl, "create", POOL2)
    write(ctl, "create", POOL1)
    before = [p["spec"] for p in get_yaml(ctl, "ippool")["items"]]
    assert ctl("delete", "ippool", "x", "y", "z")[0] == 1
    assert [p["spec"] for p in get_yaml(ctl, "ippool")["items"]] == before


def test_reject_unknown_resource_and_empty_names(ctl):
    """test_reject_unknown_resource, test_empty_name_is_illegal."""
    code, _, err = ctl("get", "somekind", "somename")
    assert code == 1 and "failed to get resources: resource type 'somekind' is not supported" in err
    for args in (("get", "policy", ""), ("get", "policy", "x", "", "y"), ("delete", "policy", ""),
                 ("delete", "policy", "x", "", "y"), ("label", "policy", "", "key", "--remove")):
        assert ctl(*args)[0] == 1, args


def test_delete_with_resource_version(ctl):
    """test_delete_with_resource_version: a stale resourceVersion is an update conflict."""
    write(ctl, "create", PEER_REV1)
    rev0 = get_yaml(ctl, "bgppeer", "bgppeer-name-123abc")
    assert write(ctl, "apply", PEER_REV2)[0] == 0
    rev1 = get_yaml(ctl, "bgppeer", "bgppeer-name-123abc")
    assert rev0["metadata"]["resourceVersion"] != rev1["metadata"]["resourceVersion"]
    code, _, err = write(ctl, "delete", rev0)
    assert code == 1 and CONFLICT in err
    assert write(ctl, "delete", rev1) == (0, "Successfully deleted 1 'BGPPeer' resource(s)\n", "")


def _replace_or_apply_with_resource_version(ctl, verb, rev1_data, rev2_data, kind, name, *ns):
    assert write(ctl, "create" if verb == "replace" else "apply", rev1_data)[0] == 0
    rev0 = get_yaml(ctl, kind, name, *ns)
    assert write(ctl, verb, rev2_data)[0] == 0
    rev1 = get_yaml(ctl, kind, name, *ns)
    assert rev0["metadata"]["resourceVersion"] != rev1["metadata"]["resourceVersion"]
    code, _, err = write(ctl, verb, rev0)
    assert code == 1 and CONFLICT in err
    rev0["metadata"]["resourceVersion"] = rev1["metadata"]["resourceVersion"]
    assert write(ctl, verb, rev0)[0] == 0
    assert ctl("delete", kind, name, *ns)[0] == 0


def test_replace_with_resource_version(ctl):
    """test_replace_with_resource_version (a NetworkPolicy; replacing a deleted one fails)."""
    assert write(ctl, "apply", doc("Tier", "default", {"order": 1000000}))[0] == 0
    np1 = doc("NetworkPolicy", "policy-mypolicy1", {"order": 100, "selector": "type=='database'",
                                                    "types": ["Ingress"]}, "default")
    np2 = doc("NetworkPolicy", "policy-mypolicy1", {"order": 200, "selector": "type=='database'",
                                                    "types": ["Egress"]}, "default")
    _replace_or_apply_with_resource_version(ctl, "replace", np1, np2, "networkpolicy", "policy-mypolicy1")
    code, _, err = write(ctl, "replace", np2)
    assert code == 1 and NOT_FOUND in err


def test_apply_with_resource_version(ctl):
    """test_apply_with_resource_version (a HostEndpoint)."""
    code, _, err = ctl("get", "hostendpoint", "endpoint1", "-o", "yaml")
    assert code == 1 and NOT_FOUND in err
    hep1 = doc("HostEndpoint", "endpoint1", {"interfaceName": "eth0", "profiles": ["prof1", "prof2"],
                                             "node": "host1"}, labels={"type": "database"})
    hep2 = doc("HostEndpoint", "endpoint1", {"interfaceName": "cali7", "profiles": ["prof1", "prof2"],
                                             "node": "host2"}, labels={"type": "frontend"})
    _replace_or_apply_with_resource_version(ctl, "apply", hep1, hep2, "hostendpoint", "endpoint1")


def test_disallow_update_old_resource_version(ctl):
    """test_disallow_update_old_resource_version_replace / _apply."""
    for verb in ("replace", "apply"):
        write(ctl, "create", POOL1)
        rev1 = get_yaml(ctl, "ippool", "ippool-name1")
        assert write(ctl, verb, rev1)[0] == 0
        rev2 = get_yaml(ctl, "ippool", "ippool-name1")
        assert rev1["metadata"]["resourceVersion"] != rev2["metadata"]["resourceVersion"]
        code, _, err = write(ctl, verb, rev1)
        assert code == 1 and CONFLICT in err, verb
        assert ctl("delete", "ippool", "ippool-name1")[0] == 0


def test_a_file_holding_a_list_of_resources(ctl):
    """test_create_all_invalid_resources / test_apply_all_invalid_resources give calicoctl a
    JSON array (and a YAML sequence) of resources: that is a list of resources, as in
    calicoctl's createResourcesFromBytes."""
    peers = [doc("BGPPeer", f"bgppeer-{i}", {"node": "node1", "peerIP": f"10.0.0.{i}", "asNumber": 64515})
             for i in (1, 2)]
    assert ctl("create", "-f", "@l.json", files={"l.json": json.dumps(peers)}) == (
        0, "Successfully created 2 'BGPPeer' resource(s)\n", "")
    assert ctl("apply", "-f", "@l.yaml", files={"l.yaml": yaml.safe_dump(peers)}) == (
        0, "Successfully applied 2 'BGPPeer' resource(s)\n", "")
    # Invalid ones fail, with no "Partial success" and the bad value named.
    for p in peers:
        p["spec"]["peerIP"] = "badpeerIP"
    for verb in ("create", "apply"):
        code, out, err = ctl(verb, "-f", "@bad.json", files={"bad.json": json.dumps(peers)})
        assert code == 1 and "Partial success" not in out + err and "'badpeerIP'" in err


def test_non_namespaced_kinds_refuse_a_namespace(ctl):
    """_test_non_namespaced (test_non_namespaced_ippool, _bgppeer...): "is not namespaced"."""
    for data in (POOL1, PEER_REV1):
        assert write(ctl, "create", data)[0] == 0
        kind, name = data["kind"], data["metadata"]["name"]
        assert ctl("get", kind)[0] == 0 and ctl("get", kind, "-o", "wide")[0] == 0
        for args in (("get", kind, name, "--namespace", "default", "-o", "yaml"),
                     ("get", kind, "--all-namespaces", "-o", "yaml")):
            code, _, err = ctl(*args)
            assert code == 1 and f"{kind} is not namespaced" in err, args
        assert write(ctl, "delete", data)[0] == 0


def test_bgpconfig_default_only_fields(ctl):
    """test_bgpconfig: nodeToNodeMeshEnabled (and the other default-only fields) may not be
    set on a BGPConfiguration other than "default" (libcalico-go's bgpconfig.go)."""
    assert write(ctl, "create", doc("BGPConfiguration", "default", {
        "logSeverityScreen": "Info", "nodeToNodeMeshEnabled": True, "asNumber": 6512,
        "serviceLoadBalancerAggregation": "Enabled"}))[0] == 0
    other = doc("BGPConfiguration", "bgpconfiguration1", {"logSeverityScreen": "Info",
                                                           "serviceLoadBalancerAggregation": "Enabled"})
    assert write(ctl, "create", other)[0] == 0
    other["spec"]["logSeverityScreen"] = "Debug"
    assert write(ctl, "apply", other)[0] == 0
    other["spec"]["nodeToNodeMeshEnabled"] = True
    assert write(ctl, "apply", other) == (1, "", (
        "failed to apply 'BGPConfiguration' resource: [error with field BGPConfiguration.Spec.NodeToNodeMeshEnabled "
        "(Cannot set nodeToNodeMeshEnabled on a non default BGP Configuration.)]\n"))
    other["spec"]["asNumber"] = 65000
    code, _, err = write(ctl, "replace", other)
    assert code == 1 and err.startswith("failed to replace 'BGPConfiguration' resource: error with the following "
                                        "fields:\n-  BGPConfiguration.Spec.NodeToNodeMeshEnabled (Cannot set")
    assert "-  BGPConfiguration.Spec.ASNumber (Cannot set ASNumber on a non default" in err
    assert ctl("delete", "bgpconfig", "bgpconfiguration1")[0] == 0


def test_clusterinfo_is_read_only(ctl, client):
    """test_clusterinfo: calicoctl may not create, apply, replace or delete it."""
    ci = doc("ClusterInformation", "default", {"clusterGUID": "cluster-guid1", "datastoreReady": True})
    assert write(ctl, "create", ci) == (1, "", "failed to create 'ClusterInformation' resource: "
                                               "[operation create or apply is not supported on ClusterInformation]\n")
    code, _, err = ctl("delete", "clusterinfo", "default")
    assert code == 1 and "operation delete is not supported on ClusterInformation" in err
    code, _, err = write(ctl, "apply", ci)
    assert code == 1 and "operation apply is not supported on ClusterInformation: resource is readonly" in err
    code, _, err = write(ctl, "replace", ci)
    assert code == 1 and "operation apply or replace is not supported on ClusterInformation" in err
    # Nothing of the file was written; the one there is what calicoctl's initialization made
    # before its writes (EnsureInitialized), as calicoctl's is.
    assert get_yaml(ctl, "clusterinfo", "default")["spec"]["clusterGUID"] != "cluster-guid1"


def test_disallow_crud_on_knp_defaults(ctl):
    """test_disallow_crud_on_knp_defaults: a NetworkPolicy named knp.default.* is Kubernetes'."""
    write(ctl, "apply", doc("Tier", "default", {"order": 1000000}))
    knp = doc("NetworkPolicy", "knp.default.foobarfizz", {"order": 100, "selector": "all()"}, "default")
    reason = "kubernetes network policies must be managed through the kubernetes API"
    code, _, err = write(ctl, "create", knp)
    assert code == 1 and "is not supported on" in err and reason in err
    for verb in ("apply", "replace"):
        code, _, err = write(ctl, verb, knp)
        assert code == 1 and NOT_FOUND in err, verb
    code, _, err = write(ctl, "delete", knp)
    assert code == 1 and "operation delete is not supported on" in err and reason in err


def test_label_command(ctl):
    """test_label_command."""
    write(ctl, "create", doc("WorkloadEndpoint", "node1-k8s-abcd-eth0", {
        "node": "node1", "orchestrator": "k8s", "pod": "abcd", "endpoint": "eth0", "interfaceName": "cali1234",
        "ipNetworks": ["10.0.0.1/32"]}, "namespace1", labels={"projectcalico.org/namespace": "namespace1"}))
    wep = ("workloadendpoint", "node1-k8s-abcd-eth0", "--namespace=namespace1")
    assert ctl("label", *wep[:2], "app=web", wep[2])[0] == 0
    assert get_yaml(ctl, *wep)["metadata"]["labels"]["app"] == "web"
    code, _, err = ctl("label", *wep[:2], "app=order", wep[2])
    assert code == 1 and "key app is already present" in err
    assert ctl("label", *wep[:2], "app=order", wep[2], "--overwrite")[0] == 0
    assert get_yaml(ctl, *wep)["metadata"]["labels"]["app"] == "order"
    assert ctl("label", *wep[:2], "app", wep[2], "--remove")[0] == 0
    assert "app" not in get_yaml(ctl, *wep)["metadata"]["labels"]
    node = doc("Node", "node1", {"bgp": {"ipv4Address": "1.2.3.4/24", "ipv6Address": "aa:bb:cc::ff/120"}})
    write(ctl, "create", node)
    assert ctl("label", "nodes", "node1", "cluster=frontend")[0] == 0
    assert get_yaml(ctl, "nodes", "node1")["metadata"]["labels"]["cluster"] == "frontend"
    write(ctl, "apply", node)
    code, _, err = ctl("label", "nodes", "node1", "cluster", "--remove")
    assert code == 1 and "cannot remove label" in err


def test_patch(ctl):
    """test_patch: a node and a pool; labels and annotations kept."""
    write(ctl, "create", doc("Node", "node1", {"bgp": {"ipv4Address": "1.2.3.4/24"}}))
    assert ctl("patch", "nodes", "node1", "-p", '{"spec":{"bgp": {"routeReflectorClusterID": "192.168.0.1"}}}')[0] == 0
    assert get_yaml(ctl, "nodes", "node1")["spec"]["bgp"]["routeReflectorClusterID"] == "192.168.0.1"
    pool = json.loads(json.dumps(POOL1))
    pool["metadata"].update(labels={"test-label": "label-1"}, annotations={"test-annotation": "annotation-1"})
    write(ctl, "create", pool)
    assert ctl("patch", "ippool", "ippool-name1", "-p", '{"spec":{"natOutgoing": true}}')[0] == 0
    got = get_yaml(ctl, "ippool", "ippool-name1")
    assert got["spec"]["natOutgoing"] is True
    assert got["metadata"]["labels"]["test-label"] == "label-1"
    assert got["metadata"]["annotations"]["test-annotation"] == "annotation-1"
