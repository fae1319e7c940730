"""manifests/: every object validates against Kubernetes' own schemas (offline, with
kubernetes-validate), the CRDs are structural and cover every kind the model stores, and
what Calico stores for each kind fits its CRD; network-policy-api's ClusterNetworkPolicy
CRD is shipped as upstream released it, serves the version the datastore reads, and
admits the ClusterNetworkPolicies the tests use."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

import kcnp_examples
from node.model.kinds import KINDS
from resource_examples import STORED

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
FILES = ["crds.yaml", "calico.yaml", "calico-etcd.yaml"]
GROUP = "crd.projectcalico.org"
# Kinds the Kubernetes datastore keeps in native (or KubeVirt's) objects, so without a
# CRD. A new kind in the model must either get a CRD (scripts/gen_crds.py) or be added
# here on purpose.
NATIVE_BACKED = {"Node", "WorkloadEndpoint", "Profile", "KubernetesNetworkPolicy", "KubernetesClusterNetworkPolicy",
                 "LiveMigration"}
V1_NAMES = {"IPAMConfiguration": ("IPAMConfig", "ipamconfigs")}
# IPAM records the model stores outside the v3 kinds, with their CRDs.
IPAM_CRDS = {"IPAMBlock": "ipamblocks", "IPAMHandle": "ipamhandles"}
# network-policy-api's ClusterNetworkPolicy CRD: v0.2.0's standard channel, as Calico
# v3.32's calico.yaml ships it, vendored byte for byte (git blob of
# config/crd/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml at v0.2.0).
CNP_CRD_NAME = "clusternetworkpolicies.policy.networking.k8s.io"
CNP_VENDORED = MANIFESTS / "vendor" / "network-policy-api" / "policy.networking.k8s.io_clusternetworkpolicies.yaml"
CNP_UPSTREAM_BLOB = "c16d608815d80fa1627aef60fd1db3b241dd18fc"


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def _crds() -> dict[str, dict]:
    """Calico's own CRDs (crd.projectcalico.org) in crds.yaml, by kind."""
    return {d["spec"]["names"]["kind"]: d for d in _docs("crds.yaml") if d["spec"]["group"] == GROUP}


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
        if command[0] != "/bin/calico-node":  # where Calico's image has it, and so has ours
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
        # The status subresource where Calico v3.32.1's CRDs have it: KubeControllersConfiguration
        # only (IPPool, Tier and CalicoNodeStatus got theirs after v3.32).
        assert ("subresources" in version) == (kind == "KubeControllersConfiguration"), kind
        assert version.get("subresources", {"status": {}}) == {"status": {}}, kind


def test_standin_serves_the_crds_status_subresources():
    """The stand-in API server the Kubernetes tests run against plays crds.yaml's CRDs:
    the status subresource on exactly the kinds whose CRD has it."""
    from kube_standin import _resources

    shipped = {crd["spec"]["names"]["plural"] for crd in _crds().values()
               if "subresources" in crd["spec"]["versions"][0]}
    standin = _resources((GROUP + "/v1",))
    served = {plural for (group, plural), res in standin.items() if group == GROUP + "/v1" and res.status_subresource}
    assert served == shipped == {"kubecontrollersconfigurations"}


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
    assert node["readinessProbe"]["exec"]["command"] == ["/bin/calico-node", "-felix-ready", "-bird-ready"]
    assert node["livenessProbe"]["exec"]["command"] == ["/bin/calico-node", "-felix-live", "-bird-live"]
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
        assert argv[0] == "/bin/calico-node"
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
                  ("blockaffinities", "delete"), ("caliconodestatuses", "update"),
                  ("caliconodestatuses/status", "update")):
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


def test_rbac_lets_the_kdd_node_follow_kubevirt_migrations():
    """LiveMigrations come from KubeVirt's VirtualMachineInstanceMigrations: get, list and
    watch, as Calico's manifest grants them (read-only: nothing more)."""
    from node.datastore.kubernetes.kv import VIRTUAL_MACHINE_INSTANCE_MIGRATIONS as VMIMS

    role = next(d for d in _docs("calico.yaml")
                if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "calico-node")
    group = VMIMS.api_version.split("/")[0]
    assert group == "kubevirt.io"
    verbs = {v for rule in role["rules"] if group in rule["apiGroups"] and VMIMS.plural in rule["resources"]
             for v in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    assert "livemigrations.crd.projectcalico.org" not in {d["metadata"]["name"] for d in _docs("crds.yaml")}


# -- network-policy-api's ClusterNetworkPolicy CRD ---------------------------------------

def _git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _cnp_crd() -> dict:
    (crd,) = [d for d in _docs("crds.yaml") if d["metadata"]["name"] == CNP_CRD_NAME]
    return crd


def test_crds_yaml_ships_network_policy_api_crd_verbatim():
    """The vendored file is upstream's, byte for byte; crds.yaml carries its text unchanged
    (not re-serialized) after a comment naming its source and licence; only crds.yaml
    (the Kubernetes datastore's CRDs) has it."""
    data = CNP_VENDORED.read_bytes()
    assert _git_blob(data) == CNP_UPSTREAM_BLOB, "the vendored CRD is not network-policy-api v0.2.0's file"
    license_text = (CNP_VENDORED.parent / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    crds_text = (MANIFESTS / "crds.yaml").read_text()
    assert crds_text.count(data.decode()) == 1
    comment = crds_text[:crds_text.index(data.decode())].rsplit("---\n", 1)[1]
    assert comment and all(line.startswith("# ") for line in comment.splitlines()), comment
    for needle in ("https://github.com/kubernetes-sigs/network-policy-api", "tag v0.2.0",
                   "config/crd/standard/policy.networking.k8s.io_clusternetworkpolicies.yaml",
                   "Apache License 2.0", "manifests/vendor/network-policy-api/LICENSE"):
        assert needle in comment, needle
    crd = _cnp_crd()
    assert crd == yaml.safe_load(data)
    annotations = crd["metadata"]["annotations"]
    assert annotations["policy.networking.k8s.io/bundle-version"] == "v0.2.0"
    assert annotations["policy.networking.k8s.io/channel"] == "standard"
    # Like Calico's, the etcd manifest has no CRDs; calico.yaml leaves them to crds.yaml.
    for name in ("calico.yaml", "calico-etcd.yaml"):
        assert not [d for d in _docs(name) if d["kind"] == "CustomResourceDefinition"], name


def test_the_generator_checks_the_vendored_crd(monkeypatch):
    """gen_crds.py records the same upstream blob and refuses a copy that does not hash to it."""
    spec = importlib.util.spec_from_file_location("gen_crds", REPO / "scripts" / "gen_crds.py")
    gen = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gen_crds", gen)  # dataclasses look their module up
    spec.loader.exec_module(gen)
    (vendored,) = gen.VENDORED_CRDS
    assert (vendored.file, vendored.blob, vendored.tag) == (CNP_VENDORED, CNP_UPSTREAM_BLOB, "v0.2.0")
    with pytest.raises(SystemExit, match="vendored files are copied, not edited"):
        dataclasses.replace(vendored, blob="0" * 40).text()


def test_cluster_network_policy_crd_serves_what_the_datastore_reads():
    """The API version, plural, kind and scope node/datastore/kubernetes reads
    ClusterNetworkPolicies through (and the stand-in API server serves in the tests) are
    the CRD's, and that version is served and stored."""
    from kube_standin import _resources
    from node.datastore.kubernetes.kv import CLUSTER_NETWORK_POLICIES as path

    crd = _cnp_crd()
    group, version = path.api_version.split("/")
    assert (group, version) == ("policy.networking.k8s.io", kcnp_examples.API_VERSION.split("/")[1])
    assert crd["spec"]["group"] == group
    assert crd["spec"]["scope"] == ("Namespaced" if path.namespaced else "Cluster")
    names = crd["spec"]["names"]
    assert (names["plural"], names["kind"]) == (path.plural, path.kind)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    assert served["served"] and served["storage"]
    standin = _resources(())[(path.api_version, path.plural)]
    assert (standin.kind, standin.namespaced) == (path.kind, path.namespaced)


def _cnp_schema() -> dict:
    (version,) = [v for v in _cnp_crd()["spec"]["versions"] if v["name"] == "v1alpha2"]
    return _as_json_schema(version["schema"]["openAPIV3Schema"])


def _cnp_object(name: str, spec: dict) -> dict:
    return {"apiVersion": kcnp_examples.API_VERSION, "kind": "ClusterNetworkPolicy", "metadata": {"name": name},
            "spec": copy.deepcopy(spec)}


@pytest.mark.parametrize("name", sorted(kcnp_examples.WELL_FORMED))
def test_the_tests_cluster_network_policies_fit_the_crd(name):
    """The ClusterNetworkPolicies the KDD and conversion tests use are ones an API server
    with the shipped CRD admits (its OpenAPI schema; its CEL rules, such as isCIDR and
    start < end, are not evaluated here)."""
    jsonschema.validate(_cnp_object(name, kcnp_examples.WELL_FORMED[name]), _cnp_schema())


def _with(spec: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(spec)
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is _with:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


ADMIN, BASELINE = kcnp_examples.ADMIN, kcnp_examples.BASELINE
# Malformed specs, each with where the schema must find the fault.
REJECTED = {
    # test_kdd_kcnp.py's malformed policies: the stand-in takes them, the CRD does not.
    "unknown tier": (_with(BASELINE, ("tier",), "Frontline"), ["tier"]),
    "empty subject": (_with(ADMIN, ("subject",), {}), ["subject"]),
    # What test_kcnp_conversion.py says the CRD refuses.
    "Log action": (_with(ADMIN, ("ingress", 0, "action"), "Log"), ["ingress", 0, "action"]),
    "peer of the wrong shape": (_with(ADMIN, ("ingress", 0, "from"), [{"pods": "web"}]),
                                ["ingress", 0, "from", 0, "pods"]),
    "protocol as a string": (_with(ADMIN, ("ingress", 0, "protocols"), ["tcp"]), ["ingress", 0, "protocols", 0]),
    "selector labels as a list": (_with(BASELINE, ("subject",), {"namespaces": {"matchLabels": ["a"]}}),
                                  ["subject", "namespaces", "matchLabels"]),
    # Others.
    "no tier": (_with(ADMIN, ("tier",), _with), []),
    "priority over 1000": (_with(ADMIN, ("priority",), 1001), ["priority"]),
    "egress rule without to": (_with(ADMIN, ("egress", 0, "to"), _with), ["egress", 0]),
    "two subjects": (_with(ADMIN, ("subject", "namespaces"), {}), ["subject"]),
    "port 0": (_with(ADMIN, ("ingress", 0, "protocols"), [{"tcp": {"destinationPort": {"number": 0}}}]),
               ["ingress", 0, "protocols", 0, "tcp", "destinationPort", "number"]),
    "pods peer without podSelector": (_with(BASELINE, ("ingress", 0, "from", 0, "pods", "podSelector"), _with),
                                      ["ingress", 0, "from", 0, "pods"]),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_the_crd_rejects_malformed_cluster_network_policies(case):
    spec, where = REJECTED[case]
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(_cnp_object("bad", spec), _cnp_schema())
    assert list(caught.value.absolute_path) == ["spec", *where], caught.value.message


def test_kubernetes_validate_checks_the_vendored_crd():
    """The CRD object itself is valid for the apiextensions.k8s.io/v1 schema (the
    every-object test covers it through crds.yaml); a broken copy is refused."""
    crd = copy.deepcopy(_cnp_crd())
    kubernetes_validate.validate(crd, latest_version(), strict=True)
    crd["spec"]["scope"] = ["Cluster"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, latest_version(), strict=True)
