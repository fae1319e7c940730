"""manifests/: every object validates against Kubernetes' own schemas (offline, with
kubernetes-validate), the CRDs are structural and cover every kind the model stores, and
what Calico stores for each kind fits its CRD."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from node.model.kinds import KINDS
from resource_examples import STORED

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
FILES = ["crds.yaml", "calico.yaml", "calico-etcd.yaml"]
GROUP = "crd.projectcalico.org"
# Kinds the Kubernetes datastore keeps in native objects, so without a CRD. A new kind
# in the model must either get a CRD (scripts/gen_crds.py) or be added here on purpose.
NATIVE_BACKED = {"Node", "WorkloadEndpoint", "Profile", "KubernetesNetworkPolicy", "KubernetesClusterNetworkPolicy"}
V1_NAMES = {"IPAMConfiguration": ("IPAMConfig", "ipamconfigs")}
# IPAM records the model stores outside the v3 kinds, with their CRDs.
IPAM_CRDS = {"IPAMBlock": "ipamblocks", "IPAMHandle": "ipamhandles"}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def _crds() -> dict[str, dict]:
    return {d["spec"]["names"]["kind"]: d for d in _docs("crds.yaml")}


@pytest.mark.parametrize("name", FILES)
def test_every_object_validates_against_kubernetes_schemas(name):
    version = latest_version()
    docs = _docs(name)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_kubernetes_validate_rejects_a_broken_object():
    """The validator is really checking (a typo'd field under strict mode fails)."""
    ds = copy.deepcopy(next(d for d in _docs("calico.yaml") if d["kind"] == "DaemonSet"))
    ds["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "IfNotPresent"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, latest_version(), strict=True)


def _exec_commands(doc: dict):
    """Every exec command (probes, lifecycle hooks) of a DaemonSet's containers."""
    pod = doc["spec"]["template"]["spec"]
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        for where in ("livenessProbe", "readinessProbe", "startupProbe"):
            if "exec" in container.get(where, {}):
                yield container["name"], where, container[where]["exec"]["command"]
        for hook, action in (container.get("lifecycle") or {}).items():
            if "exec" in action:
                yield container["name"], hook, action["exec"]["command"]


@pytest.mark.parametrize("name", ["calico.yaml", "calico-etcd.yaml"])
def test_the_daemonsets_calico_node_commands_are_ones_the_image_understands(name):
    """Probes and the preStop hook call our calico-node with Calico's flag spellings."""
    from node.cli.calico_node import build_parser, translate_legacy

    (ds,) = [d for d in _docs(name) if d["kind"] == "DaemonSet"]
    seen = set()
    for container, where, command in _exec_commands(ds):
        if command[0] != "calico-node":
            continue
        args = build_parser().parse_args(translate_legacy(command[1:]))
        seen.add((container, where, args.role))
    assert {("calico-node", "livenessProbe", "health"), ("calico-node", "readinessProbe", "health"),
            ("calico-node", "preStop", "shutdown")} <= seen, seen


def test_crds_are_up_to_date_with_the_model():
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_crds.py"), "--check"], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr


def test_every_stored_kind_has_a_crd():
    crds = _crds()
    expected: dict[str, str] = dict(IPAM_CRDS)
    for kind, info in KINDS.items():
        if kind in NATIVE_BACKED:
            continue
        v1_kind, plural = V1_NAMES.get(kind, (kind, info.plural))
        expected[v1_kind] = plural
    missing = sorted(set(expected) - set(crds))
    assert not missing, f"kinds the model stores without a CRD in manifests/crds.yaml: {missing}"
    assert not set(crds) - set(expected), "CRDs for kinds the model does not store"
    for kind, plural in expected.items():
        crd = crds[kind]
        names = crd["spec"]["names"]
        assert crd["metadata"]["name"] == f"{plural}.{GROUP}"
        assert (names["plural"], names["singular"], names["listKind"]) == (plural, kind.lower(), f"{kind}List")
        assert crd["spec"]["group"] == GROUP
    for kind, info in KINDS.items():
        if kind in NATIVE_BACKED:
            continue
        crd = crds[V1_NAMES.get(kind, (kind,))[0]]
        assert crd["spec"]["scope"] == ("Namespaced" if info.namespaced else "Cluster"), kind
        version = crd["spec"]["versions"][0]
        # Kinds with a status have Calico's status subresource.
        assert ("subresources" in version) == (info.status is not None), kind


def _structural_problems(schema: dict, path: str) -> list[str]:
    """The rules of a structural schema that matter here: a type everywhere (except
    int-or-string and preserve-unknown-fields nodes), required names that exist, enums
    that fit the type."""
    problems = []
    if "type" not in schema and not (schema.get("x-kubernetes-int-or-string")
                                     or schema.get("x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{path}: no type")
    for name in schema.get("required", []):
        if name not in schema.get("properties", {}):
            problems.append(f"{path}: required {name} is not a property")
    if "enum" in schema and not all(isinstance(v, str) for v in schema["enum"]):
        problems.append(f"{path}: non-string enum")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: both properties and additionalProperties")
    for name, sub in schema.get("properties", {}).items():
        problems += _structural_problems(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        problems += _structural_problems(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        problems += _structural_problems(schema["additionalProperties"], f"{path}{{}}")
    for sub in schema.get("anyOf", []):
        if set(sub) - {"type"}:
            problems.append(f"{path}: anyOf may only carry types here")
    return problems


def test_crd_schemas_are_structural():
    problems = []
    for kind, crd in _crds().items():
        problems += _structural_problems(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], kind)
    assert not problems, "\n".join(problems)


def _as_json_schema(schema):
    """OpenAPI's ``nullable`` in JSON Schema terms (the rest validates as it is)."""
    if isinstance(schema, list):
        return [_as_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _as_json_schema(v) for k, v in schema.items()}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@pytest.mark.parametrize("kind", sorted(k for k in STORED if k not in NATIVE_BACKED))
def test_what_calico_stores_fits_the_crd(kind):
    crd = _crds()[V1_NAMES.get(kind, (kind,))[0]]
    schema = _as_json_schema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    stored = json.loads(STORED[kind][1])
    body = {"apiVersion": f"{GROUP}/v1", "kind": crd["spec"]["names"]["kind"],
            "metadata": {"name": stored["metadata"]["name"]}, "spec": stored.get("spec", {})}
    if stored.get("status"):
        body["status"] = stored["status"]
    jsonschema.validate(body, schema)
    # ... and the schema really constrains: a string where the spec wants a list fails.
    broken = copy.deepcopy(body)
    first_list = next((k for k, s in schema["properties"]["spec"].get("properties", {}).items()
                       if s.get("type") == "array"), None)
    if first_list:
        broken["spec"][first_list] = "not-a-list"
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_ipam_crds_fit_what_calico_writes():
    crds = _crds()
    block = _as_json_schema(crds["IPAMBlock"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    jsonschema.validate({"spec": {"cidr": "10.244.1.0/26", "affinity": "host:node1", "allocations": [0, None, 1],
                                  "unallocated": [3, 4], "attributes": [{"handle_id": "k8s-pod-network.abc",
                                                                         "secondary": {"node": "node1"}}],
                                  "sequenceNumber": 3, "sequenceNumberForAllocation": {"0": 1, "2": 3},
                                  "deleted": False, "strictAffinity": False}}, block)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"cidr": "10.244.1.0/26", "allocations": [], "attributes": [],
                                      "unallocated": []}}, block)  # strictAffinity is required
    handle = _as_json_schema(crds["IPAMHandle"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    jsonschema.validate({"spec": {"handleID": "k8s-pod-network.abc", "block": {"10.244.1.0/26": 1},
                                  "deleted": False}}, handle)


def _daemonset(name: str) -> dict:
    return next(d for d in _docs(name) if d["kind"] == "DaemonSet")


@pytest.mark.parametrize("name", ["calico.yaml", "calico-etcd.yaml"])
def test_daemonset_shape(name):
    ds = _daemonset(name)
    pod = ds["spec"]["template"]["spec"]
    node = next(c for c in pod["containers"] if c["name"] == "calico-node")
    assert node["image"] == "calico-node-py:latest"
    assert pod["hostNetwork"] is True and pod["priorityClassName"] == "system-node-critical"
    assert pod["serviceAccountName"] == "calico-node"
    assert {"effect": "NoSchedule", "operator": "Exists"} in pod["tolerations"]
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in pod["tolerations"]
    assert node["securityContext"]["privileged"] is True
    assert node["readinessProbe"]["exec"]["command"] == ["calico-node", "-felix-ready", "-bird-ready"]
    assert node["livenessProbe"]["exec"]["command"] == ["calico-node", "-felix-live", "-bird-live"]
    env = {e["name"]: e for e in node["env"]}
    assert env["FELIX_HEALTHENABLED"]["value"] == "true"
    assert env["CALICO_NETWORKING_BACKEND"]["valueFrom"]["configMapKeyRef"] == {"name": "calico-config",
                                                                              "key": "calico_backend"}
    mounts = {m["mountPath"]: m["name"] for m in node["volumeMounts"]}
    volumes = {v["name"] for v in pod["volumes"]}
    assert set(mounts.values()) <= volumes
    for path in ("/var/run/calico", "/var/lib/calico", "/lib/modules", "/run/xtables.lock"):
        assert path in mounts
    config = next(d for d in _docs(name) if d["kind"] == "ConfigMap")
    json.loads(config["data"]["cni_network_config"].replace("__CNI_MTU__", "1500"))
    for container in pod["initContainers"] + pod["containers"]:
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref["name"] == "calico-config":
                assert ref["key"] in config["data"], (container["name"], ref)
    if name == "calico.yaml":
        assert env["DATASTORE_TYPE"]["value"] == "kubernetes"
    else:
        assert "DATASTORE_TYPE" not in env
        assert [e["name"] for e in node["env"][:5]] == ["ETCD_ENDPOINTS", "ETCD_CA_CERT_FILE", "ETCD_KEY_FILE",
                                                         "ETCD_CERT_FILE", "CALICO_K8S_NODE_REF"]
        assert mounts["/calico-secrets"] == "etcd-certs"


def test_probe_commands_are_accepted_by_calico_node():
    """The probes' legacy flag spelling maps onto calico-node's health command."""
    from node.cli.calico_node import build_parser, translate_legacy

    node = next(c for c in _daemonset("calico.yaml")["spec"]["template"]["spec"]["containers"]
                if c["name"] == "calico-node")
    for probe in ("livenessProbe", "readinessProbe"):
        argv = node[probe]["exec"]["command"]
        assert argv[0] == "calico-node"
        args = build_parser().parse_args(translate_legacy(argv[1:]))
        assert args.role == "health"


def test_rbac_grants_the_kdd_node_what_it_writes():
    role = next(d for d in _docs("calico.yaml") if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "calico-node")
    granted: set[tuple[str, str]] = set()
    for rule in role["rules"]:
        if GROUP in rule["apiGroups"]:
            granted |= {(r, v) for r in rule["resources"] for v in rule["verbs"]}
    for plural in {crd["spec"]["names"]["plural"] for crd in _crds().values()} - {"kubecontrollersconfigurations",
                                                                                  "ipamhandles", "ipamconfigs"}:
        assert (plural, "get") in granted or (plural, "list") in granted, plural
    for write in (("ippools", "create"), ("felixconfigurations", "create"), ("clusterinformations", "update"),
                  ("tiers", "create"), ("ipamblocks", "update"), ("ipamhandles", "create"),
                  ("blockaffinities", "delete"), ("caliconodestatuses", "update")):
        assert write in granted, write


def test_rbac_lets_the_kdd_node_follow_the_native_policies():
    """The policy agent lists and watches Kubernetes NetworkPolicies and ClusterNetworkPolicies
    (the rule Calico's manifest has: list and watch, no get)."""
    from node.datastore.kubernetes.kv import CLUSTER_NETWORK_POLICIES, NETWORK_POLICIES

    role = next(d for d in _docs("calico.yaml") if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "calico-node")
    for path in (NETWORK_POLICIES, CLUSTER_NETWORK_POLICIES):
        group = path.api_version.split("/")[0]
        verbs = {v for rule in role["rules"] if group in rule["apiGroups"] and path.plural in rule["resources"]
                 for v in rule["verbs"]}
        assert {"list", "watch"} <= verbs, path.plural
