"""manifests/calico.yaml and calico-etcd.yaml against Calico v3.32.1's release manifests
(read from the Calico mirror when it is present), and the node's roles against the
ClusterRole they ship.

Every difference in the node's objects (the calico-config ConfigMap, the etcd Secret, the
service accounts, cluster roles and bindings, the calico-node DaemonSet) is listed in
ACCEPTED with the reason the image needs it; a new difference, or an accepted one that is
gone, fails. Cluster roles are compared as the set of (group, resource, verb, names)
grants they make, so layout does not count; the CNI configuration template as the JSON it
becomes.

The RBAC tests run the node's Kubernetes-facing roles against the stand-in API server with
calico-node's token held to calico.yaml's ClusterRole: nothing may be refused.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from kdd_fixtures import TEST_QPS, k8s_node
from kdd_fixtures import kube  # noqa: F401  (fixture)
from node.config import KUBERNETES, DatastoreConfig

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
CALICO_REPO = Path("/work/.mirror/projectcalico+calico/repo")
CALICO_TAG = "v3.32.1"
CALICO_NODE = str(Path(sys.executable).parent / "calico-node")
NODE_TOKEN = "calico-node-token"
NODE_USER = "system:serviceaccount:kube-system:calico-node"

# Objects of Calico's manifests that are not the node's (README, "Known gaps").
NOT_THE_NODE = {("PodDisruptionBudget", "calico-kube-controllers"), ("ServiceAccount", "calico-kube-controllers"),
                ("ClusterRole", "calico-kube-controllers"), ("ClusterRoleBinding", "calico-kube-controllers"),
                ("Deployment", "calico-kube-controllers")}

_NODE = "DaemonSet/calico-node:spec.template.spec"
_CONTAINER = _NODE + ".containers[calico-node]"
_NO_EBPF = "no eBPF dataplane in the image: its bootstrap and BPF filesystem mounts are left out"
_COMMON = {
    _CONTAINER + ".image": "this project's image, calico-node-py:latest (make image)",
    _NODE + ".initContainers[ebpf-bootstrap]": _NO_EBPF,
    _CONTAINER + ".volumeMounts[bpffs]": _NO_EBPF,
    _NODE + ".volumes[bpffs]": _NO_EBPF,
    _NODE + ".volumes[sys-fs]": _NO_EBPF,
    _NODE + ".volumes[nodeproc]": _NO_EBPF,
    _CONTAINER + ".volumeMounts[policysync]": "the policy sync API (PolicySyncPathPrefix) is not built",
    _NODE + ".volumes[policysync]": "the policy sync API (PolicySyncPathPrefix) is not built",
}
ACCEPTED = {
    "calico.yaml": {
        **_COMMON,
        # Calico v3.32 updates a CalicoNodeStatus as a whole (its CRD has no status
        # subresource); the reporter writes /status where a later CRD has one.
        "ClusterRole/calico-node:+crd.projectcalico.org caliconodestatuses/status update":
            "status reporter on CRDs with the status subresource",
        "ClusterRole/calico-node:+projectcalico.org caliconodestatuses/status update":
            "status reporter on CRDs with the status subresource",
    },
    "calico-etcd.yaml": {
        **_COMMON,
        # Calico's `data:` holds only comments (null); ours is an empty map: the same
        # Secret once applied.
        "Secret/calico-etcd-secrets:data": "an empty map where Calico's is null: the same object",
    },
}


def _docs(text: str) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def _calico_manifest(name: str) -> str:
    if not (CALICO_REPO / "HEAD").exists() and not (CALICO_REPO / ".git").exists():
        pytest.skip("no Calico mirror here")
    run = subprocess.run(["git", "-C", str(CALICO_REPO), "show", f"{CALICO_TAG}:manifests/{name}"],
                         capture_output=True, text=True)
    if run.returncode:
        pytest.skip(f"the Calico mirror has no {CALICO_TAG}:manifests/{name}")
    return run.stdout


def _grants(role: dict) -> set[str]:
    return {f"{group} {resource} {verb}" + (f" {sorted(rule['resourceNames'])}" if rule.get("resourceNames") else "")
            for rule in role.get("rules", []) for group in rule["apiGroups"] for resource in rule["resources"]
            for verb in rule["verbs"]}


def _cni_config(text: str) -> dict:
    return json.loads(text.replace("__CNI_MTU__", "1500"))


def _walk(theirs, ours, path: str, out: dict[str, tuple]) -> None:
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in sorted(set(theirs) | set(ours)):
            _walk(theirs.get(key, "<absent>"), ours.get(key, "<absent>"), f"{path}.{key}", out)
    elif (isinstance(theirs, list) and isinstance(ours, list) and theirs and ours
          and all(isinstance(x, dict) and "name" in x for x in theirs + ours)):
        # Containers, env, volumes, mounts: by name (the order of mounts and volumes does
        # not matter; that of env and init containers does, and is compared too).
        by_name = ({x["name"]: x for x in theirs}, {x["name"]: x for x in ours})
        if not path.endswith(("volumes", "volumeMounts")):
            common = [n for n in by_name[0] if n in by_name[1]]
            if common != [n for n in by_name[1] if n in by_name[0]]:
                out[path + "(order)"] = (list(by_name[0]), list(by_name[1]))
        for name in sorted(set(by_name[0]) | set(by_name[1])):
            _walk(by_name[0].get(name, "<absent>"), by_name[1].get(name, "<absent>"), f"{path}[{name}]", out)
    elif theirs != ours:
        out[path] = (theirs, ours)


def differences(theirs_text: str, ours_text: str) -> dict[str, tuple]:
    theirs, ours = _docs(theirs_text), _docs(ours_text)
    out: dict[str, tuple] = {}
    for key in sorted(set(theirs) | set(ours)):
        kind, name = key
        if kind == "CustomResourceDefinition":
            continue  # crds.yaml's, checked by test_manifests.py
        if key in NOT_THE_NODE and key not in ours:
            continue
        label = f"{kind}/{name}"
        if key not in ours or key not in theirs:
            out[label] = (theirs.get(key, "<absent>"), ours.get(key, "<absent>"))
            continue
        a, b = theirs[key], ours[key]
        if kind == "ClusterRole":
            mine, calicos = _grants(b), _grants(a)
            out.update({f"{label}:+{g}": (None, g) for g in mine - calicos})
            out.update({f"{label}:-{g}": (g, None) for g in calicos - mine})
            a, b = {k: v for k, v in a.items() if k != "rules"}, {k: v for k, v in b.items() if k != "rules"}
        if kind == "ConfigMap":
            a, b = json.loads(json.dumps(a)), json.loads(json.dumps(b))
            a["data"]["cni_network_config"] = _cni_config(a["data"]["cni_network_config"])
            b["data"]["cni_network_config"] = _cni_config(b["data"]["cni_network_config"])
        found: dict[str, tuple] = {}
        _walk(a, b, "", found)
        out.update({f"{label}:{path.lstrip('.')}": v for path, v in found.items()})
    return out


@pytest.mark.parametrize("name", ["calico.yaml", "calico-etcd.yaml"])
def test_the_node_objects_match_calicos_but_for_the_accepted_differences(name):
    found = differences(_calico_manifest(name), (MANIFESTS / name).read_text())
    unexplained = {path: found[path] for path in set(found) - set(ACCEPTED[name])}
    assert not unexplained, "differences from Calico's manifest with no reason in ACCEPTED:\n" + "\n".join(
        f"{path}: Calico {v[0]!r}, ours {v[1]!r}" for path, v in sorted(unexplained.items()))
    stale = set(ACCEPTED[name]) - set(found)
    assert not stale, f"accepted differences that are gone (drop them): {sorted(stale)}"


def test_the_comparison_finds_differences():
    """A manifest that strays (a probe period, a toleration, a dropped grant, the CNI
    configuration's version, an env source, a mount) is caught at each place."""
    text = _calico_manifest("calico.yaml")
    docs = list(yaml.safe_load_all(text))
    ds = next(d for d in docs if d and d["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    node = pod["containers"][0]
    node["readinessProbe"]["periodSeconds"] = 5
    pod["tolerations"].pop()
    node["env"][0]["value"] = "etcdv3"
    node["volumeMounts"] = [m for m in node["volumeMounts"] if m["name"] != "var-lib-calico"]
    role = next(d for d in docs if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "calico-node")
    role["rules"] = [r for r in role["rules"] if "nodes/status" not in r["resources"]]
    config = next(d for d in docs if d and d["kind"] == "ConfigMap")
    config["data"]["cni_network_config"] = config["data"]["cni_network_config"].replace('"0.3.1"', '"1.0.0"')
    found = differences(text, yaml.safe_dump_all(docs))
    assert set(found) == {
        _CONTAINER + ".readinessProbe.periodSeconds", _NODE + ".tolerations",
        _CONTAINER + ".env[DATASTORE_TYPE].value", _CONTAINER + ".volumeMounts[var-lib-calico]",
        "ClusterRole/calico-node:- nodes/status patch", "ClusterRole/calico-node:- nodes/status update",
        "ConfigMap/calico-config:data.cni_network_config.cniVersion"}, sorted(found)


def test_the_cni_images_are_calicos_release():
    """install-cni and upgrade-ipam run Calico's CNI plugin of the release the node
    follows."""
    for name in ("calico.yaml", "calico-etcd.yaml"):
        ds = _docs((MANIFESTS / name).read_text())[("DaemonSet", "calico-node")]
        images = {c["name"]: c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]}
        assert set(images.values()) == {f"quay.io/calico/cni:{CALICO_TAG}"}, (name, images)
        config = _docs((MANIFESTS / name).read_text())[("ConfigMap", "calico-config")]
        assert _cni_config(config["data"]["cni_network_config"])["cniVersion"] == "0.3.1", name


# -- the node's roles under calico.yaml's ClusterRole ----------------------------------------

def _rules(name: str = "calico.yaml", role: str = "calico-node") -> list[dict]:
    return _docs((MANIFESTS / name).read_text())[("ClusterRole", role)]["rules"]


@pytest.fixture
def node_kubeconfig(kube, tmp_path) -> Path:
    kube.rbac[NODE_TOKEN] = (NODE_USER, _rules())
    return kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)


def test_the_policy_agent_lists_and_watches_everything_it_follows(kube, node_kubeconfig):
    """Every source Felix's syncer follows on the Kubernetes datastore (Calico kinds,
    pods, namespaces, service accounts, both kinds of native policy, EndpointSlices,
    IPAM blocks, KubeVirt migrations) is listed and watched with calico-node's token."""
    from node.datastore.kubernetes.kv import KubeKV
    from node.felix.pipeline import felix_sources

    k8s_node(kube, "node1")
    config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(node_kubeconfig),
                             extra={"k8sClientQPS": TEST_QPS})
    kv = KubeKV(config, env={})
    watches = []
    try:
        sources = felix_sources({"DATASTORE_TYPE": "kubernetes"})
        assert len(sources) > 20
        for source in sources:
            _items, revision = kv.list(source.prefix)
            watches.append(kv.watch(source.prefix, revision))
        time.sleep(1.0)  # the watches are open
        listed = {path.split("?")[0].rsplit("/", 1)[-1] for method, path in kube.requests if method == "GET"}
        assert {"pods", "namespaces", "serviceaccounts", "networkpolicies", "endpointslices", "ipamblocks",
                "virtualmachineinstancemigrations"} <= listed
    finally:
        for watch in watches:
            watch.cancel()
        kv.close()
    assert kube.forbidden == []


def test_a_role_missing_a_grant_is_refused(kube, tmp_path):
    """The stand-in really holds the token to the rules: without the pods rule, listing
    the workload endpoints is refused."""
    from node.datastore.kubernetes.kv import KubeKV

    rules = [r for r in _rules() if not ("pods" in r["resources"] and "list" in r["verbs"])]
    kube.rbac[NODE_TOKEN] = (NODE_USER, rules)
    config = DatastoreConfig(datastore_type=KUBERNETES,
                             kubeconfig=str(kube.kubeconfig(tmp_path / "kc", token=NODE_TOKEN)),
                             extra={"k8sClientQPS": TEST_QPS})
    kv = KubeKV(config, env={})
    try:
        with pytest.raises(Exception):
            kv.list("/calico/resources/v3/projectcalico.org/workloadendpoints/")
    finally:
        kv.close()
    assert ("list", "pods", "", "") in kube.forbidden


KUBEADM_CONFIG = """apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
"""


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_startup_tunnel_addresses_and_shutdown_under_the_node_role(kube, tmp_path):
    """As the DaemonSet runs them with calico-node's token: startup (the Node's
    annotations through nodes/status, kubeadm's ConfigMap, the default pool, tiers,
    FelixConfiguration, ClusterInformation, IPAM's host-affinity upgrade), the tunnel
    address allocator (IPAM blocks, affinities, handles, the IPAM configuration),
    complete-startup's NetworkUnavailable condition and the preStop hook: nothing is
    refused."""
    from netns import Namespace
    from startup_netns import NetnsRelay, add_link

    k8s_node(kube, "node1", labels={"kubernetes.io/hostname": "node1"}, internal_ip="10.0.0.11",
             pod_cidr="10.244.1.0/24")
    kube.create("v1", "configmaps", {"metadata": {"name": "kubeadm-config"},
                                     "data": {"ClusterConfiguration": KUBEADM_CONFIG}}, namespace="kube-system")
    kube.rbac[NODE_TOKEN] = (NODE_USER, _rules())
    with Namespace("kmr") as ns:
        add_link(ns, "eth0", "10.0.0.11/24")
        with NetnsRelay(ns, ("127.0.0.1", kube.port)) as relay:
            kubeconfig = tmp_path / "node-kubeconfig"
            kubeconfig.write_text(kube.kubeconfig(tmp_path / "unused", token=NODE_TOKEN).read_text()
                                  .replace(kube.url, relay.endpoint))
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DATASTORE_TYPE": "kubernetes",
                   "KUBECONFIG": str(kubeconfig), "NODENAME": "node1", "CALICO_LIB_DIR": str(tmp_path / "lib"),
                   "CALICO_RUN_DIR": str(tmp_path / "run"), "CALICO_LOG_DIR": str(tmp_path / "log"),
                   "FELIX_IPV6SUPPORT": "false", "IP_AUTODETECTION_METHOD": "kubernetes-internal-ip",
                   "CALICO_IPV4POOL_IPIP": "Always", "CLUSTER_TYPE": "k8s,bgp", "CALICO_NETWORKING_BACKEND": "bird"}
            for argv in (["startup", "--no-kernel-prep", "--complete-startup"],
                         ["allocate-tunnel-addrs", "--run-once"], ["-shutdown"]):
                result = subprocess.run(["ip", "netns", "exec", ns.name, CALICO_NODE, *argv], env=env,
                                        capture_output=True, text=True, timeout=60)
                assert result.returncode == 0, (argv, result.stderr[-3000:], kube.forbidden)
    assert kube.forbidden == []
    writes = {(method, path.split("?")[0]) for method, path in kube.requests if method != "GET"}
    assert ("PUT", "/api/v1/nodes/node1/status") in writes  # the Node's annotations
    assert ("PATCH", "/api/v1/nodes/node1/status") in writes  # NetworkUnavailable
    assert any(method == "POST" and path.endswith("/ipamhandles") for method, path in writes)  # tunnel address
    assert any(method == "POST" and path.endswith("/tiers") for method, path in writes)
    node = kube.get("v1", "nodes", "node1")
    assert node["metadata"]["annotations"]["projectcalico.org/IPv4IPIPTunnelAddr"].startswith("10.244.")
