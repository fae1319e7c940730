"""libcalico-go's write and read paths for policies, tiers and workload endpoints,
against a real etcd: what is checked, what is defaulted, and the exact bytes stored."""
from __future__ import annotations

import json

import pytest

from node.cli.calicoctl import main as calicoctl
from node.datastore.client import OperationNotSupported, default_policy_types
from node.errors import NotFound, ValidationError
from node.model import Resource, from_dict

pytestmark = pytest.mark.etcd

V3 = "/calico/resources/v3/projectcalico.org/"
RULE = {"action": "Allow"}


def resource(kind: str, name: str, spec: dict, namespace: str = "", labels: dict | None = None):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec})


def tier(client, name: str, **spec):
    return client.create(resource("Tier", name, spec))


def stored(etcd_kv, key: str) -> dict:
    return json.loads(etcd_kv.get(key).value)


TIERED_KINDS = ["NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy", "StagedGlobalNetworkPolicy"]


def namespace_for(kind: str) -> str:
    return "" if "Global" in kind else "prod"


@pytest.mark.parametrize("kind", TIERED_KINDS)
def test_policy_create_needs_its_tier(client, kind):
    ns = namespace_for(kind)
    with pytest.raises(NotFound) as info:
        client.create(resource(kind, "p", {"selector": "all()"}, ns))
    assert info.value.identifier == "Tier(default)"
    with pytest.raises(NotFound) as info:
        client.create(resource(kind, "p", {"selector": "all()", "tier": "gold"}, ns))
    assert info.value.identifier == "Tier(gold)"
    assert str(info.value).startswith("resource does not exist: Tier(gold) with error: ")
    tier(client, "gold")
    assert client.create(resource(kind, "p", {"selector": "all()", "tier": "gold"}, ns)).name == "p"


@pytest.mark.parametrize(("spec", "types"), [
    ({}, ["Ingress"]),
    ({"ingress": [RULE]}, ["Ingress"]),
    ({"egress": [RULE]}, ["Egress"]),
    ({"ingress": [RULE], "egress": [RULE]}, ["Ingress", "Egress"]),
    ({"ingress": [RULE], "types": ["Egress"]}, ["Egress"]),  # an explicit value is kept
])
def test_types_default_from_the_rules_present(client, etcd_kv, spec, types):
    tier(client, "default")
    client.create(resource("GlobalNetworkPolicy", "p", {"selector": "all()", **spec}))
    assert stored(etcd_kv, V3 + "globalnetworkpolicies/p")["spec"]["types"] == types
    assert default_policy_types({"selector": "all()", **spec}) == (None if "types" in spec else types)


def test_tier_label_follows_the_tier_and_the_name_is_kept_in_an_annotation(client, etcd_kv):
    tier(client, "default")
    tier(client, "gold")
    created = client.create(resource("NetworkPolicy", "web", {"selector": "all()", "tier": "gold"}, "prod",
                                     labels={"projectcalico.org/tier": "default", "app": "x"}))
    meta = stored(etcd_kv, V3 + "networkpolicies/prod/web")["metadata"]
    assert meta["labels"] == {"app": "x", "projectcalico.org/tier": "gold"}
    assert meta["annotations"] == {"projectcalico.org/metadata": '{"name":"web"}'}
    got = client.get("NetworkPolicy", "web", "prod")
    assert got == created
    assert "annotations" not in got.metadata
    # Moving the policy to the default tier moves the label too (no tier check on update).
    got.spec["tier"] = ""
    client.update(got)
    assert stored(etcd_kv, V3 + "networkpolicies/prod/web")["metadata"]["labels"]["projectcalico.org/tier"] == \
        "default"


def test_policy_names_with_a_tier_prefix(client, etcd_kv):
    tier(client, "default")
    tier(client, "gold")
    # Written through the client: the name is whatever it was written as.
    client.create(resource("GlobalNetworkPolicy", "default.allow", {"selector": "all()"}))
    assert client.get("GlobalNetworkPolicy", "default.allow").name == "default.allow"
    # Written by Calico before v3.30 (no annotation): a default-tier policy loses the
    # "default." prefix the old backend added; a policy of another tier keeps its name.
    old = {"kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
           "metadata": {"name": "default.legacy"}, "spec": {"selector": "all()", "types": ["Ingress"]}}
    etcd_kv.put(V3 + "globalnetworkpolicies/default.legacy", json.dumps(old))
    legacy = client.get("GlobalNetworkPolicy", "default.legacy")
    assert legacy.name == "legacy"
    assert legacy.labels == {"projectcalico.org/tier": "default"}  # label defaulted on read
    gold = dict(old, metadata={"name": "gold.legacy"}, spec={**old["spec"], "tier": "gold"})
    etcd_kv.put(V3 + "globalnetworkpolicies/gold.legacy", json.dumps(gold))
    assert client.get("GlobalNetworkPolicy", "gold.legacy").name == "gold.legacy"
    assert sorted(p.name for p in client.list("GlobalNetworkPolicy")) == ["default.allow", "gold.legacy", "legacy"]


def test_tier_defaults_on_create(client, etcd_kv):
    tier(client, "silver")
    assert stored(etcd_kv, V3 + "tiers/silver")["spec"] == {"order": 1000000, "defaultAction": "Deny"}
    tier(client, "bronze", order=50, defaultAction="Pass")
    assert stored(etcd_kv, V3 + "tiers/bronze")["spec"] == {"order": 50, "defaultAction": "Pass"}


@pytest.mark.parametrize("name,order,action", [("default", 1_000_000, "Deny"), ("kube-admin", 1_000, "Pass"),
                                               ("kube-baseline", 10_000_000, "Pass")])
def test_built_in_tiers_cannot_be_deleted(client, etcd_kv, name, order, action):
    # (Created with the order and default action Calico pins for each built-in tier.)
    tier(client, name, order=order, defaultAction=action)
    with pytest.raises(OperationNotSupported) as info:
        client.delete("Tier", name)
    assert str(info.value) == f"operation Delete is not supported on {name}: Cannot delete {name} tier"
    assert etcd_kv.get(V3 + f"tiers/{name}") is not None


@pytest.mark.parametrize("name", ["kube-admin", "kube-baseline"])
def test_kube_tiers_need_their_pinned_order_and_action(client, etcd_kv, name):
    # The client's defaults (order 1e6, Deny) are the default tier's, not theirs.
    with pytest.raises(ValidationError, match=rf"Tier\({name}\)\.spec\.order"):
        tier(client, name)
    with pytest.raises(ValidationError, match=rf"Tier\({name}\)\.spec\.defaultAction"):
        tier(client, name, order=1_000 if name == "kube-admin" else 10_000_000, defaultAction="Deny")
    assert etcd_kv.get(V3 + f"tiers/{name}") is None


@pytest.mark.parametrize("kind", TIERED_KINDS)
def test_a_tier_with_policies_cannot_be_deleted(client, etcd_kv, kind):
    tier(client, "gold")
    ns = namespace_for(kind)
    client.create(resource(kind, "p", {"selector": "all()", "tier": "gold"}, ns))
    with pytest.raises(OperationNotSupported) as info:
        client.delete("Tier", "gold")
    assert str(info.value) == "operation delete is not supported on gold: Cannot delete a non-empty tier"
    client.delete(kind, "p", ns)
    assert client.delete("Tier", "gold").name == "gold"
    assert etcd_kv.get(V3 + "tiers/gold") is None


def test_calicoctl_refuses_to_delete_the_default_tier(client, etcd_clean_config, monkeypatch, capsys):
    tier(client, "default")
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_clean_config.etcd_endpoints[0])
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    code = calicoctl(["delete", "tier", "default"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "operation Delete is not supported on default: Cannot delete default tier" in err


def test_workload_endpoint_is_stored_with_its_namespace_and_orchestrator_labels(client, etcd_kv):
    wep = resource("WorkloadEndpoint", "n1-k8s-pod-eth0",
                   {"orchestrator": "k8s", "node": "n1", "pod": "pod", "endpoint": "eth0", "interfaceName": "cali0"},
                   "prod", labels={"app": "web", "projectcalico.org/namespace": "spoofed"})
    created = client.create(wep)
    labels = stored(etcd_kv, V3 + "workloadendpoints/prod/n1-k8s-pod-eth0")["metadata"]["labels"]
    assert labels == {"app": "web", "projectcalico.org/namespace": "prod", "projectcalico.org/orchestrator": "k8s"}
    assert created.labels == labels
    created.metadata["labels"] = {"projectcalico.org/orchestrator": "spoofed"}
    client.update(created)
    labels = stored(etcd_kv, V3 + "workloadendpoints/prod/n1-k8s-pod-eth0")["metadata"]["labels"]
    assert labels == {"projectcalico.org/namespace": "prod", "projectcalico.org/orchestrator": "k8s"}


def test_tier_defaults_on_list_but_not_on_get(client, etcd_kv):
    etcd_kv.put(V3 + "tiers/old", json.dumps({"kind": "Tier", "apiVersion": "projectcalico.org/v3",
                                              "metadata": {"name": "old"}, "spec": {}}))
    assert client.get("Tier", "old").spec == {}
    (listed,) = client.list("Tier")
    assert listed.spec == {"order": 1000000, "defaultAction": "Deny"}


WEP_SPEC = {"orchestrator": "k8s", "node": "n1", "pod": "my-pod", "endpoint": "eth0", "interfaceName": "cali0"}


def test_workload_endpoint_name_must_match_its_identifiers(client, etcd_kv):
    with pytest.raises(ValidationError) as info:
        client.create(resource("WorkloadEndpoint", "n1-k8s-my-pod-eth0", WEP_SPEC, "prod"))
    assert info.value.fields == [(
        "WorkloadEndpoint(prod/n1-k8s-my-pod-eth0).metadata.name", "n1-k8s-my-pod-eth0",
        "the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: "
        "expected name n1-k8s-my--pod-eth0")]
    assert etcd_kv.list(V3 + "workloadendpoints/")[0] == []
    # Without a name, the client fills in the one the identifiers imply.
    created = client.create(Resource("WorkloadEndpoint", {"namespace": "prod"}, dict(WEP_SPEC)))
    assert created.name == "n1-k8s-my--pod-eth0"
    assert etcd_kv.get(V3 + "workloadendpoints/prod/n1-k8s-my--pod-eth0") is not None
    # An update may not move the endpoint to other identifiers under the same name.
    created.spec["endpoint"] = "eth1"
    with pytest.raises(ValidationError, match="expected name n1-k8s-my--pod-eth1"):
        client.update(created)
