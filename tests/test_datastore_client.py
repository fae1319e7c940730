"""The resource client against a real etcd: keys, stored bytes, revisions, errors."""
import json

import pytest

from node.datastore.client import DatastoreClient, DatastoreParseError, decode_kv
from node.errors import AlreadyExists, Conflict, NotFound, ValidationError
from node.model import load_resources
from node.model import ipam
from resource_examples import STORED

KEYS = {
    "Node": "/calico/resources/v3/projectcalico.org/nodes/node1",
    "IPPool": "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool",
    "BGPConfiguration": "/calico/resources/v3/projectcalico.org/bgpconfigurations/default",
    "BGPPeer": "/calico/resources/v3/projectcalico.org/bgppeers/rr1",
    "BGPFilter": "/calico/resources/v3/projectcalico.org/bgpfilters/f1",
    "FelixConfiguration": "/calico/resources/v3/projectcalico.org/felixconfigurations/default",
    "ClusterInformation": "/calico/resources/v3/projectcalico.org/clusterinformations/default",
    "WorkloadEndpoint": "/calico/resources/v3/projectcalico.org/workloadendpoints/default/node1-k8s-nginx--abc-eth0",
    "HostEndpoint": "/calico/resources/v3/projectcalico.org/hostendpoints/node1-eth0",
    "NetworkPolicy": "/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow-web",
    "GlobalNetworkPolicy": "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/deny-icmp",
    "Profile": "/calico/resources/v3/projectcalico.org/profiles/kns.default",
    "Tier": "/calico/resources/v3/projectcalico.org/tiers/default",
    "GlobalNetworkSet": "/calico/resources/v3/projectcalico.org/globalnetworksets/public-dns",
    "NetworkSet": "/calico/resources/v3/projectcalico.org/networksets/prod/office",
    "KubeControllersConfiguration": "/calico/resources/v3/projectcalico.org/kubecontrollersconfigurations/default",
    "CalicoNodeStatus": "/calico/resources/v3/projectcalico.org/caliconodestatuses/node1-status",
}


def res(text):
    (r,) = load_resources("apiVersion: projectcalico.org/v3\n" + text)
    return r


def pool(name="p1", cidr="10.1.0.0/16", extra=""):
    return res(f"kind: IPPool\nmetadata: {{name: {name}}}\nspec: {{cidr: {cidr}{extra}}}")


# What libcalico-go's client stores for the example policies: the tier label (policy
# defaulting), the name annotation (etcdv3 backend) and, for the egress-only global
# policy, types defaulted from its rules.
CLIENT_STORED = {
    "NetworkPolicy":
        '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web",'
        '"namespace":"prod","uid":"u9","creationTimestamp":"2025-05-01T10:00:00Z",'
        '"labels":{"projectcalico.org/tier":"default"},'
        '"annotations":{"projectcalico.org/metadata":"{\\"name\\":\\"allow-web\\"}"}},"spec":{"order":100.5,'
        '"ingress":[{"action":"Allow","protocol":"TCP","source":{"nets":["10.0.0.0/8"],"selector":"role == \'lb\'"},'
        '"destination":{"ports":[80,"8000:8080","http"]}}],"selector":"app == \'web\'","types":["Ingress"]}}',
    "GlobalNetworkPolicy":
        '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"deny-icmp",'
        '"uid":"u10","creationTimestamp":"2025-05-01T10:00:00Z","labels":{"projectcalico.org/tier":"default"},'
        '"annotations":{"projectcalico.org/metadata":"{\\"name\\":\\"deny-icmp\\"}"}},"spec":{"order":10,'
        '"egress":[{"action":"Deny","protocol":"ICMP","icmp":{"type":8}},{"action":"Allow"}],"selector":"all()",'
        '"types":["Egress"],"applyOnForward":true}}',
}


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_every_kind_round_trips_with_calicos_key_and_bytes(client, etcd_kv, kind):
    text, expected = STORED[kind]
    expected = CLIENT_STORED.get(kind, expected)
    if kind in CLIENT_STORED:
        client.create(res(STORED["Tier"][0]))  # a policy's tier must exist
    created = client.create(res(text))
    item = etcd_kv.get(KEYS[kind])
    assert item is not None, f"nothing stored at {KEYS[kind]}"
    assert item.value.decode() == expected
    assert created.resource_version == str(item.mod_revision)
    got = client.get(kind, created.name, created.namespace)
    assert got == created
    assert got in client.list(kind, created.namespace)


def test_create_stamps_uid_and_timestamp_and_update_keeps_them(client, etcd_kv):
    created = client.create(pool())
    meta = created.metadata
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    stored = json.loads(etcd_kv.get(KEYS["IPPool"].replace("default-ipv4-ippool", "p1")).value)
    assert "resourceVersion" not in stored["metadata"]
    # libcalico-go's IPPool defaults are applied before the write.
    assert stored["spec"] == {"cidr": "10.1.0.0/16", "vxlanMode": "Never", "ipipMode": "Never", "blockSize": 26,
                              "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"],
                              "assignmentMode": "Automatic"}
    created.spec["natOutgoing"] = True
    updated = client.update(created)
    assert int(updated.resource_version) > int(created.resource_version)
    assert updated.metadata["uid"] == meta["uid"]


def test_create_of_existing_resource_is_already_exists(client):
    client.create(pool())
    with pytest.raises(AlreadyExists, match=r"resource already exists: IPPool\(p1\)"):
        client.create(pool())


def test_get_missing_is_not_found(client):
    with pytest.raises(NotFound, match=r"resource does not exist: IPPool\(nope\)"):
        client.get("IPPool", "nope")
    with pytest.raises(NotFound):
        client.delete("NetworkPolicy", "nope", "default")


def test_update_with_stale_revision_is_a_conflict(client):
    first = client.create(pool())
    newer = first.copy()
    newer.spec["natOutgoing"] = True
    client.update(newer)
    first.spec["disabled"] = True
    with pytest.raises(Conflict, match=r"update conflict: IPPool\(p1\)"):
        client.update(first)


def test_delete_with_stale_revision_is_a_conflict(client):
    first = client.create(res("kind: Profile\nmetadata: {name: web}\nspec: {}"))
    changed = first.copy()
    changed.metadata["labels"] = {"a": "b"}
    client.update(changed)
    with pytest.raises(Conflict):
        client.delete("Profile", "web", resource_version=first.resource_version)
    assert client.delete("Profile", "web").name == "web"


def test_update_without_revision_is_rejected(client):
    with pytest.raises(ValidationError, match="field must be set for an Update request"):
        client.update(pool())


def test_apply_creates_then_replaces_keeping_uid(client):
    first = client.apply(pool())
    second = client.apply(pool(extra=", natOutgoing: true"))
    assert second.metadata["uid"] == first.metadata["uid"]
    assert client.get("IPPool", "p1").spec["natOutgoing"] is True


def test_overlapping_pool_is_rejected_on_create(client):
    client.create(pool())
    with pytest.raises(ValidationError, match=r"IPPool\(p2\) CIDR overlaps with IPPool\(p1\)"):
        client.create(pool("p2", "10.1.128.0/17"))


def test_pool_cidr_and_block_size_cannot_change(client):
    created = client.create(pool())
    created.spec["cidr"] = "10.2.0.0/16"
    created.spec["blockSize"] = 28
    with pytest.raises(ValidationError) as info:
        client.update(created)
    assert "IPPool CIDR cannot be modified" in str(info.value)
    assert "IPPool BlockSize cannot be modified" in str(info.value)


def test_pool_is_disabled_before_it_is_deleted(client, etcd_kv):
    client.create(pool())
    events = []
    watch = etcd_kv.watch("/calico/resources/v3/projectcalico.org/ippools/", etcd_kv.current_revision() + 1)
    client.delete("IPPool", "p1")
    for event in watch:
        events.append(event)
        if event.type == "delete":
            break
    watch.cancel()
    assert [e.type for e in events] == ["put", "delete"]
    assert json.loads(events[0].value)["spec"]["disabled"] is True


def test_default_allow_profile_is_synthesised_not_stored(client, etcd_kv):
    profile = client.get("Profile", "projectcalico-default-allow")
    assert profile.spec == {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}
    assert [p.name for p in client.list("Profile")] == ["projectcalico-default-allow"]
    assert etcd_kv.list("/calico/resources/v3/projectcalico.org/profiles/")[0] == []


def test_block_affinity_kind_maps_onto_ipam_keys(client, etcd_kv):
    aff = res("kind: BlockAffinity\nmetadata: {name: node1-10-0-0-0-26}\n"
              "spec: {node: node1, cidr: 10.0.0.0/26, state: confirmed, deleted: false}")
    client.create(aff)
    item = etcd_kv.get("/calico/ipam/v2/host/node1/ipv4/block/10.0.0.0-26")
    assert item.value == b'{"state":"confirmed","deleted":false}'
    (listed,) = client.list("BlockAffinity")
    assert listed.name == "node1-10-0-0-0-26"
    assert listed.spec == {"state": "confirmed", "node": "node1", "type": "host", "cidr": "10.0.0.0/26",
                           "deleted": "false"}


def test_ipam_records_encode_like_libcalico():
    assert ipam.encode("IPAMHandle", {"block": {"192.168.87.0/26": 1}, "deleted": False}) == \
        '{"block":{"192.168.87.0/26":1},"deleted":false}'
    assert ipam.encode("IPAMConfig", {"auto_allocate_blocks": True}) == '{"auto_allocate_blocks":true}'
    assert ipam.decode("BlockAffinityValue", b"") == {"state": "", "deleted": False}


def test_stored_pool_gets_read_defaults_like_libcalico(etcd_kv):
    etcd_kv.put("/calico/resources/v3/projectcalico.org/ippools/old",
                b'{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"old"},'
                b'"spec":{"cidr":"fd00:1::/64"}}')
    got = DatastoreClient(etcd_kv).get("IPPool", "old")
    assert got.spec["blockSize"] == 122
    assert got.spec["nodeSelector"] == "all()"


def test_malformed_stored_value_is_skipped_by_list(client, etcd_kv):
    client.create(pool())
    etcd_kv.put("/calico/resources/v3/projectcalico.org/ippools/broken", b"{not json")
    assert [p.name for p in client.list("IPPool")] == ["p1"]


def test_decode_kv_ignores_foreign_keys():
    assert decode_kv("/calico/felix/v2/no-region/host/n1/status", b"{}", 3) is None


def test_pool_over_blocks_of_another_size_is_rejected(client, etcd_kv):
    etcd_kv.put(ipam.block_key("10.1.0.0/24"), b'{"cidr":"10.1.0.0/24"}')
    with pytest.raises(ValidationError, match="IPPool blocksSize conflicts with existing allocations"):
        client.create(pool())  # default block size 26 over a /24 block
    client.create(pool(extra=", blockSize: 24"))


def test_decode_kv_names_the_key_of_a_value_it_cannot_decode():
    # The syncer's decoder: whatever goes wrong in one record, the error names its key.
    key = "/calico/resources/v3/projectcalico.org/nodes/n1"
    for value in (b'{"metadata": [1]}', b'{"spec": "x"}', b"not json", b"[]"):
        with pytest.raises(DatastoreParseError) as info:
            decode_kv(key, value, 7)
        assert info.value.key == key
        assert str(info.value).startswith(f"failed to parse datastore entry key={key}; value={value.decode()}: ")
    with pytest.raises(DatastoreParseError, match="key=/calico/ipam/v2/host/n1/ipv4/block/10.0.0.0-26;"):
        decode_kv("/calico/ipam/v2/host/n1/ipv4/block/10.0.0.0-26", b"[]", 7)
    assert decode_kv("/calico/ipam/v2/host/n1/ipv4/block/not-a-cidr", b"{}", 7) is None


def test_kube_controllers_configuration_gets_calicos_write_defaults(client, etcd_kv):
    client.create(res("kind: KubeControllersConfiguration\nmetadata: {name: default}\nspec: {}"))
    stored = json.loads(etcd_kv.get(KEYS["KubeControllersConfiguration"]).value)
    assert stored["spec"] == {"healthChecks": "Enabled", "prometheusMetricsPort": 9094, "controllers": {}}
    with pytest.raises(ValidationError, match="with a name other than"):
        client.create(res("kind: KubeControllersConfiguration\nmetadata: {name: other}\nspec: {}"))


def _bgp(name: str, spec: dict):
    from node.model import Resource

    return Resource("BGPConfiguration", {"name": name}, dict(spec))


@pytest.mark.parametrize("spec, fields", [
    ({"nodeToNodeMeshEnabled": False}, ["NodeToNodeMeshEnabled"]),
    ({"asNumber": 65001, "nodeMeshPassword": {"secretKeyRef": {"name": "s", "key": "k"}}},
     ["ASNumber", "NodeMeshPassword"]),
    ({"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}], "nodeMeshMaxRestartTime": "10s"},
     ["ServiceClusterIPs", "NodeMeshMaxRestartTime"]),
])
def test_only_the_default_bgp_configuration_sets_cluster_wide_fields(client, spec, fields):
    # bgpconfig.go ValidateDefaultOnlyFields, in the client: whoever writes, on create,
    # update and apply; the default one takes them all.
    assert client.create(_bgp("default", spec)).name == "default"
    with pytest.raises(ValidationError) as caught:
        client.create(_bgp("node.me", spec))
    said = [f"BGPConfiguration.Spec.{f} (Cannot set " for f in fields]
    if len(fields) == 1:
        assert str(caught.value).startswith("error with field " + said[0])
    else:
        assert str(caught.value).startswith("error with the following fields:\n-  " + said[0])
        assert all(f"-  {s}" in str(caught.value) for s in said)
    with pytest.raises(NotFound):
        client.get("BGPConfiguration", "node.me")
    stored = client.create(_bgp("node.me", {"logSeverityScreen": "Debug", "serviceClusterIPs": []}))
    stored.spec.update(spec)
    with pytest.raises(ValidationError, match="on a non default BGP Configuration"):
        client.update(stored)
    with pytest.raises(ValidationError, match="on a non default BGP Configuration"):
        client.apply(_bgp("node.me", spec))
    assert client.get("BGPConfiguration", "node.me").spec == {"logSeverityScreen": "Debug"}  # [] is not set


def test_an_errored_field_without_a_value_or_reason_prints_as_go_prints_it():
    from node.errors import NO_VALUE

    assert str(ValidationError([("A.B", NO_VALUE, "why")])) == "error with field A.B (why)"
    assert str(ValidationError([("A.B", "x", "")])) == "error with field A.B = 'x'"
    assert str(ValidationError([("A.B", None, "why")])) == "error with field A.B = '<nil>' (why)"


def test_unsafe_pool_writes_skip_the_overlap_checks_and_keep_affinities(client, etcd_kv):
    # libcalico-go's IPPools().UnsafeCreate / UnsafeDelete, which ipam split uses.
    from node.ipam.allocator import IPAM

    client.create(pool())
    client.create(res("kind: Node\nmetadata: {name: n1}\nspec: {}"))
    IPAM(etcd_kv).auto_assign(num4=1, handle_id="h1", host="n1")  # n1 gets an affine block in p1
    with pytest.raises(ValidationError, match="overlaps"):
        client.create(pool("p2", "10.1.0.0/17"))
    child = client.unsafe_create_pool(pool("p2", "10.1.0.0/17"))
    assert child.spec["blockSize"] == 26 and child.spec["ipipMode"] == "Never"   # defaults still filled in
    with pytest.raises(ValidationError, match="only IP pools"):
        client.unsafe_create_pool(res("kind: Profile\nmetadata: {name: x}\nspec: {}"))
    with pytest.raises(ValidationError):
        client.unsafe_create_pool(pool("p3", "10.2.0.0/16", ", blockSize: 33"))  # validation still applies
    affinities = client.list("BlockAffinity")
    assert affinities
    client.unsafe_delete_pool("p1")
    assert [p.name for p in client.list("IPPool")] == ["p2"]
    assert [a.name for a in client.list("BlockAffinity")] == [a.name for a in affinities]
