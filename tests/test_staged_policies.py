"""Staged policies (StagedNetworkPolicy, StagedGlobalNetworkPolicy,
StagedKubernetesNetworkPolicy) as resources: validation, defaulting, the bytes stored in
etcd, calicoctl, and the Kubernetes datastore's custom resources."""
from __future__ import annotations

import json

import pytest
import yaml

from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from kdd_fixtures import k8s_node, kube_env, namespace, pod
from node.datastore.client import DatastoreClient
from node.datastore.kubernetes import conversion as conv
from node.errors import NotFound, ValidationError
from node.model import from_dict
from node.felix.dryrun import dry_run
from node.model.kinds import kind_info
from node.selector import parse

V3 = "/calico/resources/v3/projectcalico.org/"
CRD_V1 = "crd.projectcalico.org/v1"


def resource(kind: str, name: str, spec: dict, namespace: str = "", labels: dict | None = None):
    meta: dict = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = labels
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec})


def problems(exc: ValidationError) -> dict[str, str]:
    return {path: reason for path, _, reason in exc.fields}


def stored(etcd_kv, key: str) -> dict:
    return json.loads(etcd_kv.get(key).value)


# -- the model ---------------------------------------------------------------------------

def test_kinds_and_aliases_are_calicoctls():
    for alias in ("stagednetworkpolicy", "stagednetworkpolicies", "stagedpolicy", "snp", "stagedpolicies",
                  "spol", "spols"):
        assert kind_info(alias).kind == "StagedNetworkPolicy"
    for alias in ("stagedglobalnetworkpolicy", "stagedglobalnetworkpolicies", "sgnp", "sgnps"):
        assert kind_info(alias).kind == "StagedGlobalNetworkPolicy"
    for alias in ("stagedkubernetesnetworkpolicy", "stagedkubernetesnetworkpolicies", "stagedkubernetespolicy",
                  "sknp", "stagedkubernetespolicies", "skpol", "skpols"):
        assert kind_info(alias).kind == "StagedKubernetesNetworkPolicy"
    assert (kind_info("snp").namespaced, kind_info("sgnp").namespaced, kind_info("sknp").namespaced) == \
        (True, False, True)


def test_spec_field_order_follows_calicos_structs():
    res = resource("StagedGlobalNetworkPolicy", "p", {
        "namespaceSelector": "a == 'b'", "doNotTrack": True, "applyOnForward": True, "selector": "all()",
        "tier": "gold", "stagedAction": "Learn", "order": 10})
    assert list(res.spec) == ["stagedAction", "tier", "order", "selector", "doNotTrack", "applyOnForward",
                              "namespaceSelector"]
    k8s = resource("StagedKubernetesNetworkPolicy", "p", {
        "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"except": ["10.1.0.0/16"], "cidr": "10.0.0.0/8"}}],
                                               "ports": [{"port": 53, "protocol": "UDP"}]}]}, "ns1")
    # podSelector has no omitempty: an empty selector (every pod) is written as {}.
    assert json.loads(k8s.storage_json())["spec"] == {
        "podSelector": {},
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}],
                    "to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}]}],
        "policyTypes": ["Egress"]}


@pytest.mark.parametrize("kind, namespace", [("StagedNetworkPolicy", "ns1"), ("StagedGlobalNetworkPolicy", ""),
                                             ("StagedKubernetesNetworkPolicy", "ns1")])
def test_staged_action_must_be_one_of_calicos(kind, namespace):
    with pytest.raises(ValidationError) as info:
        resource(kind, "p", {"stagedAction": "Enforce"}, namespace)
    ident = f"{kind}(ns1/p)" if namespace else f"{kind}(p)"
    assert problems(info.value) == {f"{ident}.spec.stagedAction": "must be one of Set, Delete, Learn, Ignore"}


@pytest.mark.parametrize("kind, namespace", [("StagedNetworkPolicy", "ns1"), ("StagedGlobalNetworkPolicy", "")])
def test_a_staged_delete_names_only_its_tier(kind, namespace):
    resource(kind, "p", {"stagedAction": "Delete", "tier": "gold"}, namespace)
    with pytest.raises(ValidationError) as info:
        resource(kind, "p", {"stagedAction": "Delete", "tier": "gold", "selector": "all()", "order": 5}, namespace)
    ident = f"{kind}(ns1/p)" if namespace else f"{kind}(p)"
    assert problems(info.value) == {
        f"{ident}.spec.order": "Spec fields, except Tier, should all be zero-value if stagedAction is Delete "
                               "(also set: order, selector)"}


def test_a_staged_kubernetes_delete_names_nothing_else():
    resource("StagedKubernetesNetworkPolicy", "p", {"stagedAction": "Delete", "podSelector": {}}, "ns1")
    with pytest.raises(ValidationError) as info:
        resource("StagedKubernetesNetworkPolicy", "p",
                 {"stagedAction": "Delete", "podSelector": {"matchLabels": {"app": "web"}}}, "ns1")
    assert problems(info.value) == {
        "StagedKubernetesNetworkPolicy(ns1/p).spec.podSelector":
            "Spec fields should all be zero-value if stagedAction is Delete (also set: podSelector)"}


def test_a_staged_kubernetes_policy_must_convert():
    with pytest.raises(ValidationError) as info:
        resource("StagedKubernetesNetworkPolicy", "p",
                 {"ingress": [{"ports": [{"port": "99999"}]}], "egress": [{"ports": [{"port": 80, "endPort": 70}]}],
                  "policyTypes": ["Ingress", "Egress"]}, "ns1")
    found = problems(info.value)
    assert set(found) == {"StagedKubernetesNetworkPolicy(ns1/p).spec.ingress[0]",
                          "StagedKubernetesNetworkPolicy(ns1/p).spec.egress[0]"}
    assert found["StagedKubernetesNetworkPolicy(ns1/p).spec.ingress[0]"].startswith(
        "conversion to stagednetworkpolicy failed: k8s rule couldn't be converted: failed to parse k8s port")


def test_a_staged_kubernetes_policy_with_a_foreign_uid_validates():
    res = from_dict({"apiVersion": "projectcalico.org/v3", "kind": "StagedKubernetesNetworkPolicy",
                     "metadata": {"name": "p", "namespace": "ns1", "uid": "not-a-uuid"}, "spec": {}})
    assert res.metadata["uid"] == "not-a-uuid"


def test_staged_kubernetes_selectors_and_peers_are_checked():
    with pytest.raises(ValidationError) as info:
        resource("StagedKubernetesNetworkPolicy", "p", {
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "Is"}]},
            "ingress": [{"from": [{"ipBlock": {"cidr": "nope"}}]}]}, "ns1")
    assert problems(info.value) == {
        "StagedKubernetesNetworkPolicy(ns1/p).spec.podSelector.matchExpressions[0].operator":
            "must be one of In, NotIn, Exists, DoesNotExist",
        "StagedKubernetesNetworkPolicy(ns1/p).spec.ingress[0].from[0].ipBlock.cidr": "invalid CIDR"}


@pytest.mark.parametrize("kind, namespace", [("StagedNetworkPolicy", "ns1"), ("StagedGlobalNetworkPolicy", ""),
                                             ("NetworkPolicy", "ns1"), ("GlobalNetworkPolicy", "")])
def test_policy_spec_checks_of_calicos_validator(kind, namespace):
    ident = f"{kind}(ns1/p)" if namespace else f"{kind}(p)"
    with pytest.raises(ValidationError) as info:
        resource(kind, "p", {
            "types": ["Ingress", "Ingress"],
            "ingress": [{"action": "Allow", "destination": {"services": {"name": "svc", "namespace": "a"}}}],
            "egress": [{"action": "Allow", "http": {"methods": ["GET"]},
                        "source": {"services": {"name": "svc", "namespace": "a"}}}]}, namespace)
    assert problems(info.value) == {
        f"{ident}.spec.types": "'Ingress' type specified more than once",
        f"{ident}.spec.ingress[0].destination.services": "not allowed in ingress rule destination",
        f"{ident}.spec.egress[0].source.services": "not allowed in egress rule source",
        f"{ident}.spec.egress[0].http": "not allowed in egress rule"}


def test_global_kinds_need_a_service_namespace():
    for kind in ("StagedGlobalNetworkPolicy", "GlobalNetworkPolicy"):
        with pytest.raises(ValidationError) as info:
            resource(kind, "p", {"egress": [{"action": "Allow", "destination": {"services": {"name": "svc"}}}]})
        assert problems(info.value) == {
            f"{kind}(p).spec.egress[0].destination.services.namespace": "must specify a namespace"}
    resource("StagedNetworkPolicy", "p", {"egress": [{"action": "Allow", "destination": {"services": {"name": "s"}}}]},
             "ns1")


@pytest.mark.parametrize("kind, namespace, name", [
    ("StagedNetworkPolicy", "ns1", "Bad_Name"), ("StagedGlobalNetworkPolicy", "", "a.b.c"),
    ("StagedKubernetesNetworkPolicy", "ns1", "Bad_Name")])
def test_names_follow_the_enforced_kinds_rules(kind, namespace, name):
    with pytest.raises(ValidationError) as info:
        resource(kind, name, {}, namespace)
    ident = f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"
    assert list(problems(info.value)) == [f"{ident}.metadata.name"]


# -- the client on etcd ------------------------------------------------------------------

@pytest.mark.etcd
def test_staged_network_policy_round_trip(client, etcd_kv):
    client.create(resource("Tier", "gold", {}))
    created = client.create(resource("StagedNetworkPolicy", "web", {
        "stagedAction": "Set", "tier": "gold", "selector": "app == 'web'", "egress": [{"action": "Allow"}]},
        "prod", labels={"projectcalico.org/tier": "other", "team": "a"}))
    value = stored(etcd_kv, V3 + "stagednetworkpolicies/prod/web")
    assert value["kind"] == "StagedNetworkPolicy"
    assert value["metadata"]["labels"] == {"projectcalico.org/tier": "gold", "team": "a"}
    assert value["metadata"]["annotations"] == {"projectcalico.org/metadata": '{"name":"web"}'}
    assert value["spec"] == {"stagedAction": "Set", "tier": "gold", "egress": [{"action": "Allow"}],
                             "selector": "app == 'web'", "types": ["Egress"]}
    got = client.get("StagedNetworkPolicy", "web", "prod")
    assert got == created and "annotations" not in got.metadata
    assert [p.name for p in client.list("StagedNetworkPolicy", "prod")] == ["web"]
    client.delete("StagedNetworkPolicy", "web", "prod")
    with pytest.raises(NotFound, match=r"StagedNetworkPolicy\(prod/web\)"):
        client.get("StagedNetworkPolicy", "web", "prod")


@pytest.mark.etcd
def test_a_staged_delete_is_stored_without_types(client, etcd_kv):
    client.create(resource("Tier", "default", {}))
    client.create(resource("StagedGlobalNetworkPolicy", "gone", {"stagedAction": "Delete"}))
    value = stored(etcd_kv, V3 + "stagedglobalnetworkpolicies/gone")
    assert value["spec"] == {"stagedAction": "Delete"}
    assert value["metadata"]["labels"] == {"projectcalico.org/tier": "default"}
    # The same spec staged as Set gets its types from the rules, as an enforced policy would.
    client.create(resource("StagedGlobalNetworkPolicy", "kept", {}))
    assert stored(etcd_kv, V3 + "stagedglobalnetworkpolicies/kept")["spec"] == {"types": ["Ingress"]}


@pytest.mark.etcd
def test_a_staged_delete_may_be_written_with_types(client, etcd_kv):
    """libcalico-go drops a staged deletion's types before validating, so giving them is no error."""
    client.create(resource("Tier", "default", {}))
    client.create(resource("StagedNetworkPolicy", "gone", {"stagedAction": "Delete", "types": ["Egress"]}, "prod"))
    assert stored(etcd_kv, V3 + "stagednetworkpolicies/prod/gone")["spec"] == {"stagedAction": "Delete"}


@pytest.mark.etcd
def test_legacy_default_tier_names_lose_their_prefix_on_read(client, etcd_kv):
    old = {"kind": "StagedGlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
           "metadata": {"name": "default.legacy"}, "spec": {"selector": "all()", "types": ["Ingress"]}}
    etcd_kv.put(V3 + "stagedglobalnetworkpolicies/default.legacy", json.dumps(old))
    got = client.get("StagedGlobalNetworkPolicy", "default.legacy")
    assert got.name == "legacy" and got.labels == {"projectcalico.org/tier": "default"}


@pytest.mark.etcd
def test_staged_kubernetes_policy_needs_no_tier(client, etcd_kv):
    spec = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 5432}]}],
            "policyTypes": ["Ingress"]}
    created = client.create(resource("StagedKubernetesNetworkPolicy", "db", spec, "prod"))
    value = stored(etcd_kv, V3 + "stagedkubernetesnetworkpolicies/prod/db")
    assert value["spec"] == spec and "labels" not in value["metadata"] and "annotations" not in value["metadata"]
    assert client.get("StagedKubernetesNetworkPolicy", "db", "prod") == created


# -- calicoctl ---------------------------------------------------------------------------

STAGED_YAML = """
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web, namespace: prod}
spec: {order: 10, selector: app == 'web', ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: gone}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: db, namespace: prod}
spec:
  podSelector:
    matchLabels: {app: db}
    matchExpressions: [{key: tier, operator: In, values: [a, b]}]
"""


@pytest.mark.etcd
def test_calicoctl_create_get_replace_delete(ctl):
    # The default tier is calicoctl's own doing (it initializes the datastore before writing).
    assert ctl("create", "-f", "-", stdin=STAGED_YAML)[:2] == (0, "Successfully created 3 resource(s)\n")
    code, out, _ = ctl("get", "snp", "-n", "prod")
    assert (code, [line.split() for line in out.splitlines()]) == (0, [["NAMESPACE", "NAME", "TIER"],
                                                                      ["prod", "web", "default"], []])
    code, out, _ = ctl("get", "stagedpolicies", "-A", "-o", "wide")
    assert [line.split() for line in out.splitlines()[:2]] == [
        ["NAMESPACE", "NAME", "TIER", "ORDER", "SELECTOR"], ["prod", "web", "default", "10", "app", "==", "'web'"]]
    code, out, _ = ctl("get", "sgnp", "-o", "wide")
    assert [line.split() for line in out.splitlines()[:2]] == [["NAME", "TIER", "ORDER", "SELECTOR"],
                                                               ["gone", "default", "<nil>"]]  # (Go prints a nil order)
    code, out, _ = ctl("get", "sknp", "db", "-n", "prod", "-o", "wide")
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAMESPACE", "NAME", "PODSELECTOR"]
    assert row[header.index("PODSELECTOR"):].rstrip() == (
        "&LabelSelector{MatchLabels:map[string]string{app: db,},MatchExpressions:[]LabelSelectorRequirement{"
        "LabelSelectorRequirement{Key:tier,Operator:In,Values:[a b],},},}")
    code, out, _ = ctl("get", "stagedglobalnetworkpolicy", "gone", "-o", "yaml")
    doc = yaml.safe_load(out)
    assert doc["spec"] == {"stagedAction": "Delete"}
    assert doc["metadata"]["labels"] == {"projectcalico.org/tier": "default"}
    # Replacing the deletion with a staged Set is an ordinary update.
    doc["spec"] = {"stagedAction": "Set", "selector": "all()", "egress": [{"action": "Deny"}]}
    assert ctl("replace", "-f", "-", stdin=yaml.safe_dump(doc))[0] == 0
    code, out, _ = ctl("get", "sgnp", "gone", "-o", "json")
    assert json.loads(out)["spec"]["types"] == ["Egress"]
    code, out, err = ctl("apply", "-f", "-", stdin=STAGED_YAML.replace("{stagedAction: Delete}",
                                                                      "{stagedAction: Delete, order: 3}"))
    assert code == 1 and "StagedGlobalNetworkPolicy(gone).spec.order" in err
    assert ctl("delete", "-f", "-", stdin=STAGED_YAML)[:2] == (
        0, "Successfully deleted 3 resource(s)\n")
    assert ctl("get", "sknp", "-A")[1].splitlines()[1:] == [""]


# -- the Kubernetes datastore ------------------------------------------------------------

def test_kubernetes_datastore_keeps_staged_policies_as_crs(kube, kube_kv):
    client = DatastoreClient(kube_kv)
    namespace(kube, "prod")
    client.create(resource("Tier", "default", {}))
    snp = client.create(resource("StagedNetworkPolicy", "web", {"stagedAction": "Learn", "selector": "all()"},
                                 "prod"))
    (cr,) = kube.items(CRD_V1, "stagednetworkpolicies")
    assert cr["kind"] == "StagedNetworkPolicy" and cr["metadata"]["namespace"] == "prod"
    assert json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])["name"] == "web"
    assert cr["spec"]["stagedAction"] == "Learn"
    got = client.get("StagedNetworkPolicy", "web", "prod")
    assert (got.name, got.spec, got.labels) == ("web", snp.spec, {"projectcalico.org/tier": "default"})

    client.create(resource("StagedGlobalNetworkPolicy", "all", {"stagedAction": "Delete"}))
    (cr,) = kube.items(CRD_V1, "stagedglobalnetworkpolicies")
    assert cr["spec"] == {"stagedAction": "Delete"}
    assert [p.name for p in client.list("StagedGlobalNetworkPolicy")] == ["all"]

    sknp = client.create(resource("StagedKubernetesNetworkPolicy", "db",
                                  {"podSelector": {"matchLabels": {"app": "db"}}}, "prod"))
    (cr,) = kube.items(CRD_V1, "stagedkubernetesnetworkpolicies")
    assert cr["metadata"]["namespace"] == "prod" and cr["spec"]["podSelector"] == {"matchLabels": {"app": "db"}}
    assert client.get("StagedKubernetesNetworkPolicy", "db", "prod").spec == sknp.spec
    for kind, name, ns in (("StagedNetworkPolicy", "web", "prod"), ("StagedGlobalNetworkPolicy", "all", ""),
                           ("StagedKubernetesNetworkPolicy", "db", "prod")):
        client.delete(kind, name, ns)
    assert [kube.items(CRD_V1, plural) for plural in ("stagednetworkpolicies", "stagedglobalnetworkpolicies",
                                                      "stagedkubernetesnetworkpolicies")] == [[], [], []]


def test_policy_agent_reads_staged_policies_from_the_kubernetes_api(kube, kube_config, kube_kv):
    """The felix syncer over the Kubernetes datastore: a staged Kubernetes policy for a
    local pod gets the IP set of its peer, and neither a chain nor a jump nor a drop."""
    client = DatastoreClient(kube_kv)
    client.create(resource("Tier", "default", {"order": 1000000, "defaultAction": "Deny"}))
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    namespace(kube, "shop")
    pod(kube, "shop", "web-0", "node1", ip="192.168.10.5", labels={"app": "web"})
    pod(kube, "shop", "db-0", "node2", ip="192.168.11.6", labels={"app": "db"})
    client.create(resource("StagedKubernetesNetworkPolicy", "web-ingress", {
        "podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "db"}}}]}]}, "shop"))
    env = kube_env(kube_config, NODENAME="node1", FELIX_IPV6SUPPORT="false")
    interfaces = {"eth0": ["10.0.0.11"]}
    sets = dry_run("node1", env, what="ipsets", interfaces=interfaces)
    peer = parse("(projectcalico.org/namespace == 'shop') && "
                 "(projectcalico.org/orchestrator == 'k8s' && app == 'db')").unique_id()
    assert f"add cali40{peer[:25]} 192.168.11.6" in sets.splitlines()
    tables = dry_run("node1", env, interfaces=interfaces)
    to_web = [line for line in tables.splitlines() if line.startswith(f"-A cali-tw-{conv.veth_name('shop', 'web-0')} ")]
    assert any("Start of tier default" in line for line in to_web)
    assert not any("End of tier" in line or "cali-pi-" in line for line in to_web), "\n".join(to_web)
    assert "sknp" not in tables
    # Staging its deletion instead withdraws it, IP set and all.
    staged = client.get("StagedKubernetesNetworkPolicy", "web-ingress", "shop")
    staged.spec = {"stagedAction": "Delete", "podSelector": {}}
    client.update(staged)
    assert peer[:25] not in dry_run("node1", env, what="ipsets", interfaces=interfaces)
    assert "Start of tier default" not in dry_run("node1", env, interfaces=interfaces)
