"""The renderer's own Kubernetes client: BGP passwords from Secrets, Service advertisement,
and USE_POD_CIDR's blocks from the Nodes.

Against the stand-in API server (``kube_standin``), with the RBAC that the shipped
manifests give calico-node enforced on the node's token: Calico's ClusterRole grants no
Secrets, so a Secret the node may not read must leave its peer without a password and a
warning, never a renderer that cannot get in sync.
"""
from __future__ import annotations

import base64
import logging
import threading
from pathlib import Path

import pytest
import yaml

import confd_fixtures as fx
from kdd_fixtures import TEST_QPS, k8s_node, wait_for
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from node.cli.calico_node import main as calico_node
from node.confd.daemon import Renderer
from node.confd.inputs import ConfdInputs, Settings, load_files
from node.confd.install import Installer
from node.confd.kubeside import (SECRETS, client_configuration_from_env, kube_api_factory, referenced_secrets,
                                 service_advertisement_configured)
from node.confd.picture import build_picture
from node.config import KUBERNETES, DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.kubernetes.clientconfig import client_configuration
from node.datastore.kubernetes.informer import Informer
from node.datastore.kubernetes.kv import KubeKV
from node.errors import ConfigError
from node.model import from_dict

REPO = Path(__file__).resolve().parents[1]
NODE_TOKEN = "calico-node-token"
NODE_USER = "system:serviceaccount:kube-system:calico-node"
PEER_PASSWORD = {"secretKeyRef": {"name": "bgp-pw", "key": "pw"}}
# What Calico's docs tell users to add for BGP passwords: a Role in calico-node's namespace.
SECRETS_ROLE = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"],
                 "resourceNames": ["bgp-pw"], "namespace": "kube-system"}]


def manifest_rules(name: str, role: str = "calico-node") -> list[dict]:
    for doc in yaml.safe_load_all((REPO / "manifests" / name).read_text()):
        if doc and doc.get("kind") == "ClusterRole" and doc["metadata"]["name"] == role:
            return doc["rules"]
    raise AssertionError(f"no ClusterRole {role} in manifests/{name}")


def _res(kind, name, spec):
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name}, "spec": spec})


def _secret(kube, name: str, **data: str) -> dict:
    return kube.create("v1", "secrets", {"metadata": {"name": name}, "stringData": data}, namespace="kube-system")


@pytest.fixture
def node_kubeconfig(kube, tmp_path) -> Path:
    """The node's kubeconfig: its service account's token, held to calico.yaml's ClusterRole."""
    kube.rbac[NODE_TOKEN] = (NODE_USER, manifest_rules("calico.yaml"))
    return kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)


def _kdd_node(kube, client, name="node1", ip="10.0.0.11", **kwargs):
    k8s_node(kube, name, internal_ip=ip, **kwargs)
    node = client.get("Node", name)
    node.spec["bgp"] = {"ipv4Address": f"{ip}/24", "asNumber": 64512}
    client.update(node)


def _confd_env(monkeypatch, tmp_path, **env):
    for key in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "ETCD_ENDPOINTS", "DATASTORE_TYPE", "USE_POD_CIDR",
                "CALICO_USE_POD_CIDR", "NAMESPACE"):
        monkeypatch.delenv(key, raising=False)
    base = {"NODENAME": "node1", "CALICO_CONFIG_DIR": str(tmp_path / "etc"), "CALICO_RUN_DIR": str(tmp_path / "run"),
            "K8S_CLIENT_QPS": TEST_QPS}
    for key, value in dict(base, **env).items():
        monkeypatch.setenv(key, value)
    return tmp_path / "etc" / "confd" / "config"


def _oneshot() -> int:
    return calico_node(["confd", "--oneshot", "--no-reload", "--no-check", "--oneshot-timeout", "10"])


# -- what to follow (pure) -----------------------------------------------------------------

def test_the_secrets_followed_are_those_bgp_passwords_name():
    inputs = fx.inputs(fx.peer("a", peerIP="10.0.0.1", asNumber=65000, password=PEER_PASSWORD),
                       fx.peer("b", peerIP="10.0.0.2", asNumber=65000),
                       fx.peer("c", peerIP="10.0.0.3", asNumber=65000,
                               password={"secretKeyRef": {"name": "other", "key": "k"}}),
                       fx.bgp_config("node.x", nodeMeshPassword={"secretKeyRef": {"name": "ignored", "key": "k"}}))
    assert referenced_secrets(inputs) == {"bgp-pw", "other"}
    inputs.put(fx.bgp_config(nodeMeshPassword={"secretKeyRef": {"name": "mesh", "key": "k"}}))
    assert referenced_secrets(inputs) == {"bgp-pw", "other", "mesh"}


def test_services_are_followed_only_once_advertisement_is_configured():
    settings = Settings(nodename="n")
    assert not service_advertisement_configured(fx.inputs(fx.bgp_config(asNumber=64512)), settings)
    # Only the default BGPConfiguration counts, as in Calico.
    assert not service_advertisement_configured(
        fx.inputs(fx.bgp_config("node.n", serviceClusterIPs=[{"cidr": "10.96.0.0/12"}])), settings)
    for field in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs"):
        inputs = fx.inputs(fx.bgp_config(**{field: [{"cidr": "10.96.0.0/12"}]}))
        assert service_advertisement_configured(inputs, settings), field
    assert service_advertisement_configured(ConfdInputs(), Settings(nodename="n", advertise_cluster_ips="10.0.0.0/8"))


def test_a_secret_that_cannot_be_read_leaves_the_peer_without_a_password(caplog):
    inputs = fx.inputs(fx.node("me", ipv4="10.0.0.1/24"),
                       fx.peer("tor", peerIP="10.0.0.254", asNumber=65000, password=PEER_PASSWORD))
    inputs.secrets = {}
    inputs.secret_errors[("kube-system", "bgp-pw")] = "403 Forbidden: secrets is forbidden"
    with caplog.at_level(logging.WARNING):
        (peer,) = build_picture(inputs, Settings(nodename="me")).v4.peers
    assert peer.password == ""
    assert ("Can't read password for BGPPeer tor (Secret kube-system/bgp-pw cannot be read: 403 Forbidden: "
            "secrets is forbidden)") in caplog.text
    caplog.clear()
    inputs.secret_errors.clear()
    inputs.secrets[("kube-system", "bgp-pw")] = {"other": "x"}
    with caplog.at_level(logging.WARNING):
        assert build_picture(inputs, Settings(nodename="me")).v4.peers[0].password == ""
    assert "Secret kube-system/bgp-pw has no key 'pw'" in caplog.text
    inputs.secrets[("kube-system", "bgp-pw")] = {"pw": "s3cret"}
    assert build_picture(inputs, Settings(nodename="me")).v4.peers[0].password == "s3cret"
    inputs.secrets = None  # no Kubernetes client at all: no password, quietly, as in Calico
    caplog.clear()
    assert build_picture(inputs, Settings(nodename="me")).v4.peers[0].password == ""
    assert "Can't read password" not in caplog.text


# -- USE_POD_CIDR ----------------------------------------------------------------------------

def test_use_pod_cidr_setting():
    assert Settings.from_env({"USE_POD_CIDR": "true"}).use_pod_cidr
    assert Settings.from_env({"CALICO_USE_POD_CIDR": "1", "USE_POD_CIDR": "false"}).use_pod_cidr
    assert not Settings.from_env({}).use_pod_cidr
    with pytest.raises(ConfigError, match="USE_POD_CIDR='maybe' is not a boolean"):
        Settings.from_env({"USE_POD_CIDR": "maybe"})


# Entries as Go's net.ParseCIDR reads them (libcalico-go's Node processors): masked; no bare
# address, zone, signed or spaced length, or length too long.
POD_CIDR_ENTRIES = [("10.244.1.7/24", "10.244.1.0/24"), ("fd00:1::5/64", "fd00:1::/64"), ("10.1.2.3", None),
                    ("fd00::1", None), ("x/8", None), ("10.0.0.0/33", None), ("fe80::1%eth0/64", None),
                    ("10.0.0.0/+8", None), ("10.0.0.0/ 8", None), ("10.0.0.0/", None), (7, None)]


@pytest.mark.parametrize("entry, cidr", POD_CIDR_ENTRIES)
def test_pod_cidrs_are_read_as_the_agent_and_calico_read_them(entry, cidr, caplog):
    from node.confd.picture import _pod_cidr_affinities
    from node.felix.calc.pod_cidr import PodCIDRBlocks
    from node.model.ipam import parse_pod_cidr

    me = fx.node("me", ipv4="10.0.0.1/24")
    me.status = {"podCIDRs": [entry]}
    with caplog.at_level(logging.WARNING):
        rendered = [block.cidr for version in (4, 6) for block in _pod_cidr_affinities(fx.inputs(me), "me", version)]
    if cidr is None:
        assert rendered == []
        assert f"Node(me).status.podCIDRs[0] = '{entry}' is not a CIDR; ignoring it" in caplog.text
        with pytest.raises(ValueError):
            parse_pod_cidr(entry)
    else:
        assert rendered == [cidr] and str(parse_pod_cidr(entry)) == cidr
    # The agent makes its blocks of exactly the same entries.
    agent = [u.value.cidr for u in PodCIDRBlocks().node_updated("me", me)]
    assert agent == rendered


def test_use_pod_cidr_that_is_not_a_boolean_stops_the_agent_as_the_renderer():
    """libcalico-go's client configuration does not load (envconfig's ParseBool fails):
    Felix panics and confd exits, whatever the datastore. Both read it with clientconfig's
    ``use_pod_cidr``."""
    from node.felix.calc.pod_cidr import use_pod_cidr as agent_use_pod_cidr

    for env in ({"USE_POD_CIDR": "maybe"}, {"CALICO_USE_POD_CIDR": "yes", "USE_POD_CIDR": "true"}):
        with pytest.raises(ConfigError, match="is not a boolean"):
            Settings.from_env(env)
        with pytest.raises(ConfigError, match="is not a boolean"):
            agent_use_pod_cidr(env)
    for env, want in (({"CALICO_USE_POD_CIDR": "1", "USE_POD_CIDR": "false"}, True), ({"USE_POD_CIDR": "F"}, False),
                      ({}, False)):
        assert Settings.from_env(env).use_pod_cidr is want and agent_use_pod_cidr(env) is want


POD_CIDR_FILE = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: me}
spec: {bgp: {ipv4Address: 10.0.0.1/24, ipv6Address: "fd00::1/64"}}
status: {podCIDRs: ["10.244.1.0/24", "fd00:244:1::/64", "bogus", "10.1.2.3"]}
---
apiVersion: projectcalico.org/v3
kind: BlockAffinity
metadata: {name: me-10-99-0-0-26}
spec: {node: me, cidr: 10.99.0.0/26, state: confirmed, deleted: "false"}
"""


def test_use_pod_cidr_renders_the_node_pod_cidrs_from_files(tmp_path, monkeypatch, caplog):
    (tmp_path / "in.yaml").write_text(POD_CIDR_FILE)
    out = tmp_path / "out"
    monkeypatch.setenv("NODENAME", "me")
    for use, expect, absent in (("true", "10.244.1.0/24", "10.99.0.0/26"), ("false", "10.99.0.0/26", "10.244.1.0")):
        monkeypatch.setenv("USE_POD_CIDR", use)
        with caplog.at_level(logging.WARNING):
            assert calico_node(["confd", "--oneshot", "--no-check", "--from-file", str(tmp_path / "in.yaml"),
                                "--output-dir", str(out)]) == 0
        aggr = (out / "bird_aggr.cfg").read_text()
        assert f"route {expect} blackhole;" in aggr and f"if ( net = {expect} ) then {{ accept; }}" in aggr, aggr
        assert absent not in aggr
    monkeypatch.setenv("USE_POD_CIDR", "true")
    assert calico_node(["confd", "--oneshot", "--no-check", "--from-file", str(tmp_path / "in.yaml"),
                        "--output-dir", str(out)]) == 0
    aggr6 = (out / "bird6_aggr.cfg").read_text()
    assert "route fd00:244:1::/64 blackhole;" in aggr6 and "10.244" not in aggr6
    assert "Node(me).status.podCIDRs[2] = 'bogus' is not a CIDR; ignoring it" in caplog.text
    # A bare address is no CIDR either (Go's ParseCIDR, as Calico and the agent read it).
    assert "Node(me).status.podCIDRs[3] = '10.1.2.3' is not a CIDR; ignoring it" in caplog.text
    assert "10.1.2.3" not in (out / "bird_aggr.cfg").read_text()


def test_use_pod_cidr_renders_the_kubernetes_node_pod_cidrs(kube, kube_kv, node_kubeconfig, tmp_path, monkeypatch):
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client, pod_cidr="10.244.7.0/24")
    # An affinity left from calico-ipam: with USE_POD_CIDR it is not even read.
    client.create(_res("BlockAffinity", "node1-10-99-0-0-26",
                       {"node": "node1", "cidr": "10.99.0.0/26", "state": "confirmed", "deleted": "false"}))
    out = _confd_env(monkeypatch, tmp_path, DATASTORE_TYPE="kubernetes", KUBECONFIG=str(node_kubeconfig),
                     USE_POD_CIDR="true")
    kube.requests.clear()
    assert _oneshot() == 0
    aggr = (out / "bird_aggr.cfg").read_text()
    assert "route 10.244.7.0/24 blackhole;" in aggr and "if ( net = 10.244.7.0/24 ) then { accept; }" in aggr
    assert "10.99.0.0" not in aggr
    assert not [path for _, path in kube.requests if "blockaffinities" in path]
    assert kube.forbidden == []


# -- the Kubernetes datastore under calico.yaml's RBAC -------------------------------------------

@pytest.mark.parametrize("manifest", ["calico.yaml", "calico-etcd.yaml"])
def test_manifests_grant_what_the_renderer_reads_from_kubernetes(manifest):
    """As Calico's: Services and EndpointSlices to list and watch (for advertisement), no
    Secrets at all (an operator adds a Role for BGP passwords)."""
    granted = {(group, resource, verb) for rule in manifest_rules(manifest) for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"] if not rule.get("resourceNames")}
    for group, resource in (("", "services"), ("discovery.k8s.io", "endpointslices")):
        assert {(group, resource, "list"), (group, resource, "watch")} <= granted, resource
    assert not [rule for rule in manifest_rules(manifest) if "secrets" in rule["resources"]]



def test_oneshot_renders_under_calico_rbac_and_reads_a_granted_secret(kube, kube_kv, node_kubeconfig, tmp_path,
                                                                     monkeypatch, caplog):
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    client.create(_res("BGPPeer", "tor", {"peerIP": "10.0.0.254", "asNumber": 65000, "password": PEER_PASSWORD}))
    _secret(kube, "bgp-pw", pw="s3cret")
    _secret(kube, "unrelated", pw="nope")
    out = _confd_env(monkeypatch, tmp_path, DATASTORE_TYPE="kubernetes", KUBECONFIG=str(node_kubeconfig))
    # calico.yaml grants no Secrets: the render still happens, the peer without password.
    with caplog.at_level(logging.WARNING):
        assert _oneshot() == 0
    bird = (out / "bird.cfg").read_text()
    assert "protocol bgp Global_10_0_0_254 from bgp_template" in bird and "password" not in bird
    assert ("Can't read password for BGPPeer tor (Secret kube-system/bgp-pw cannot be read: Kubernetes API at "
            f"{kube.url} refused GET /api/v1/namespaces/kube-system/secrets: 403 Forbidden: secrets \"bgp-pw\" "
            f"is forbidden: User \"{NODE_USER}\" cannot list resource \"secrets\" in API group \"\" in the "
            "namespace \"kube-system\")") in caplog.text, caplog.text
    # The only request refused was that one Secret's list: everything else confd reads,
    # calico.yaml grants. No Service was read (no advertisement is configured).
    assert set(kube.forbidden) == {("list", "secrets", "kube-system", "bgp-pw")}
    assert not [path for _, path in kube.requests if "/services" in path or "/endpointslices" in path]
    # With the Role Calico's docs describe (that one Secret), the password is there.
    kube.rbac[NODE_TOKEN][1].extend(SECRETS_ROLE)
    assert _oneshot() == 0
    assert 'password "s3cret";' in (out / "bird.cfg").read_text()
    secret_reads = [path for _, path in kube.requests if "/secrets" in path]
    assert secret_reads and all("fieldSelector=metadata.name%3Dbgp-pw" in path for path in secret_reads)


def _renderer(settings, out, kv_config, kubeconfig) -> Renderer:
    return Renderer(settings, Installer(out, check=False, reload=False), lambda: KubeKV(kv_config, env={}),
                    endpoint_status_poll=0.2, informer_backoff=(0.1, 0.2),
                    kube_api=kube_api_factory(client_configuration(DatastoreConfig(kubeconfig=str(kubeconfig)), {})))


class _Running:
    def __init__(self, renderer: Renderer):
        self.renderer = renderer
        self.status: list[int] = []
        self.thread = threading.Thread(target=lambda: self.status.append(renderer.run()), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.renderer

    def __exit__(self, *exc):
        self.renderer.stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive() and self.status == [0]


def test_daemon_follows_secrets_and_services_under_calico_rbac(kube, kube_kv, node_kubeconfig, tmp_path):
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    _kdd_node(kube, client, "node2", "10.0.0.12")
    client.create(_res("BGPPeer", "tor", {"peerIP": "10.0.0.254", "asNumber": 65000, "password": PEER_PASSWORD}))
    _secret(kube, "bgp-pw", pw="first")
    node_config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(node_kubeconfig),
                                  extra={"k8sClientQPS": TEST_QPS})
    out = tmp_path / "out"
    renderer = _renderer(Settings(nodename="node1"), out, node_config, node_kubeconfig)

    def bird() -> str:
        path = out / "bird.cfg"
        return path.read_text() if path.exists() else ""

    with _Running(renderer):
        # In sync and rendered, though the Secret is refused.
        assert renderer.wait_rendered(15)
        assert "protocol bgp Global_10_0_0_254" in bird() and "password" not in bird()
        assert ("list", "secrets", "kube-system", "bgp-pw") in kube.forbidden
        # Granted later: the informer's retry reads it and the peer gets its password.
        kube.rbac[NODE_TOKEN][1].extend(SECRETS_ROLE)
        wait_for(lambda: 'password "first";' in bird(), 15, "the password once the Secret may be read")
        kube.patch("v1", "secrets", "bgp-pw", {"stringData": {"pw": "second"}}, namespace="kube-system")
        wait_for(lambda: 'password "second";' in bird(), 15, "the changed password")
        # Service advertisement switched on: Services and EndpointSlices are followed from now.
        assert not [path for _, path in kube.requests if "/services" in path]
        kube.create("v1", "services", {"metadata": {"name": "web"}, "spec": {
            "type": "NodePort", "clusterIP": "10.96.5.5", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}]}}, namespace="default")
        kube.create("discovery.k8s.io/v1", "endpointslices", {
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.1.5"], "nodeName": "node1",
                                                  "conditions": {"ready": True}}]}, namespace="default")
        client.create(_res("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
        wait_for(lambda: "route 10.96.5.5/32 blackhole;" in (out / "bird_aggr.cfg").read_text(), 15,
                 "the Local Service's route")
        assert renderer.service_watcher is not None and renderer.service_watcher.synced
        # The peer goes: its Secret is no longer watched.
        client.delete("BGPPeer", "tor")
        wait_for(lambda: "Global_10_0_0_254" not in bird(), 15, "the peer's removal")
        wait_for(lambda: renderer.secret_watcher.names == set(), 5, "the Secret's informer to stop")
    forbidden = {(verb, resource) for verb, resource, _, _ in kube.forbidden}
    assert forbidden == {("list", "secrets")}, kube.forbidden


def test_oneshot_gives_up_naming_services_that_cannot_be_listed(kube, kube_kv, tmp_path, monkeypatch, caplog):
    # RBAC that grants everything but Services: with advertisement configured the render
    # waits for them (as Calico's route generator does), so a one-shot gives up and says why.
    rules = [rule for rule in manifest_rules("calico.yaml") if "services" not in rule["resources"]]
    kube.rbac[NODE_TOKEN] = (NODE_USER, rules)
    kubeconfig = kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    client.create(_res("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
    _confd_env(monkeypatch, tmp_path, DATASTORE_TYPE="kubernetes", KUBECONFIG=str(kubeconfig))
    with caplog.at_level(logging.ERROR):
        assert calico_node(["confd", "--oneshot", "--no-reload", "--no-check", "--oneshot-timeout", "2"]) == 1
    assert "giving up: the Services and EndpointSlices were not listed within 2s" in caplog.text
    assert "Services: Kubernetes API at" in caplog.text and "cannot list resource \"services\"" in caplog.text


def _local_service(kube, ip="10.96.5.5", node="node1"):
    kube.create("v1", "services", {"metadata": {"name": "web"}, "spec": {
        "type": "NodePort", "clusterIP": ip, "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}},
        namespace="default")
    kube.create("discovery.k8s.io/v1", "endpointslices", {
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.1.5"], "nodeName": node,
                                              "conditions": {"ready": True}}]}, namespace="default")


def test_advertisement_configured_later_does_not_hold_up_rendering(kube, kube_kv, tmp_path):
    """Calico's confd waits for its route generator only when advertisement is configured
    at start; one started by a later update leaves rendering going. So Services that
    cannot be listed (RBAC here; an API outage alike) must not freeze every later change."""
    rules = [rule for rule in manifest_rules("calico.yaml") if "services" not in rule["resources"]]
    kube.rbac[NODE_TOKEN] = (NODE_USER, rules)
    kubeconfig = kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    _local_service(kube)
    node_config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(kubeconfig),
                                  extra={"k8sClientQPS": TEST_QPS})
    out = tmp_path / "out"
    renderer = _renderer(Settings(nodename="node1"), out, node_config, kubeconfig)

    def text(name: str) -> str:
        path = out / name
        return path.read_text() if path.exists() else ""

    with _Running(renderer):
        assert renderer.wait_rendered(15)
        assert renderer.service_watcher is None
        client.create(_res("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
        # The global range is rendered at once, though the Services are refused.
        wait_for(lambda: "route 10.96.0.0/12 blackhole;" in text("bird_aggr.cfg"), 15, "the cluster-IP range")
        wait_for(lambda: any(resource == "services" for _, resource, _, _ in kube.forbidden), 15,
                 "the refused list of Services")
        # And so is every later change: a peer, another node.
        client.create(_res("BGPPeer", "tor", {"peerIP": "10.0.0.254", "asNumber": 65000}))
        _kdd_node(kube, client, "node2", "10.0.0.12")
        wait_for(lambda: "protocol bgp Global_10_0_0_254" in text("bird.cfg")
                 and "protocol bgp Mesh_10_0_0_12" in text("bird.cfg"), 15, "the peer and the new node")
        assert renderer.wait_rendered(15)  # nothing waits for the Services
        assert not renderer.service_watcher.synced and "10.96.5.5/32" not in text("bird_aggr.cfg")
        # Granted later: the informer's retry lists them and the Local Service's route joins.
        kube.rbac[NODE_TOKEN] = (NODE_USER, manifest_rules("calico.yaml"))
        wait_for(lambda: "route 10.96.5.5/32 blackhole;" in text("bird_aggr.cfg"), 15, "the Service's route")
        assert renderer.service_watcher.synced


def test_advertisement_configured_at_start_waits_for_the_services(kube, kube_kv, tmp_path):
    """Configured before the first render, the daemon waits for the Services (Calico's
    start-up wait for its route generator): nothing is rendered while they are refused."""
    rules = [rule for rule in manifest_rules("calico.yaml") if "services" not in rule["resources"]]
    kube.rbac[NODE_TOKEN] = (NODE_USER, rules)
    kubeconfig = kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    _local_service(kube)
    client.create(_res("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
    node_config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(kubeconfig),
                                  extra={"k8sClientQPS": TEST_QPS})
    out = tmp_path / "out"
    renderer = _renderer(Settings(nodename="node1"), out, node_config, kubeconfig)
    with _Running(renderer):
        wait_for(lambda: any(resource == "services" for _, resource, _, _ in kube.forbidden), 15,
                 "the refused list of Services")
        assert not renderer.wait_rendered(1.0) and renderer.renders == 0
        kube.rbac[NODE_TOKEN] = (NODE_USER, manifest_rules("calico.yaml"))
        assert renderer.wait_rendered(15)
        aggr = (out / "bird_aggr.cfg").read_text()
        assert "route 10.96.0.0/12 blackhole;" in aggr and "route 10.96.5.5/32 blackhole;" in aggr


# -- the etcd datastore with a Kubernetes client ------------------------------------------------

@pytest.mark.etcd
def test_etcd_datastore_reads_passwords_and_services_through_kubeconfig(kube, client, etcd_clean, tmp_path,
                                                                       monkeypatch, caplog):
    # calico-etcd.yaml's ClusterRole, plus the Secrets Role.
    kube.rbac[NODE_TOKEN] = (NODE_USER, manifest_rules("calico-etcd.yaml") + SECRETS_ROLE)
    kubeconfig = kube.kubeconfig(tmp_path / "node-kubeconfig", token=NODE_TOKEN)
    client.create(fx.node("node1", ipv4="10.0.0.11/24"))
    client.create(fx.peer("tor", peerIP="10.0.0.254", asNumber=65000, password=PEER_PASSWORD))
    client.create(fx.bgp_config(serviceClusterIPs=[{"cidr": "10.96.0.0/12"}]))
    _secret(kube, "bgp-pw", pw="from-kubernetes")
    kube.create("v1", "services", {"metadata": {"name": "web"}, "spec": {
        "type": "NodePort", "clusterIP": "10.96.5.5", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}},
        namespace="default")
    kube.create("discovery.k8s.io/v1", "endpointslices", {
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.168.1.5"], "nodeName": "node1"}]},
        namespace="default")
    out = _confd_env(monkeypatch, tmp_path, ETCD_ENDPOINTS=etcd_clean.endpoint, KUBECONFIG=str(kubeconfig))
    assert _oneshot() == 0
    assert 'password "from-kubernetes";' in (out / "bird.cfg").read_text()
    assert "route 10.96.5.5/32 blackhole;" in (out / "bird_aggr.cfg").read_text()
    assert kube.forbidden == []
    # Without a Kubernetes client (no KUBECONFIG, not in a pod) there is neither, as in Calico.
    monkeypatch.delenv("KUBECONFIG")
    with caplog.at_level(logging.WARNING):
        assert _oneshot() == 0
    assert "password" not in (out / "bird.cfg").read_text()
    assert "route 10.96.5.5/32" not in (out / "bird_aggr.cfg").read_text()
    assert "route 10.96.0.0/12 blackhole;" in (out / "bird_aggr.cfg").read_text()
    assert "no Kubernetes client" in caplog.text


def test_client_configuration_follows_calicos_rule(kube, tmp_path, caplog):
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig")
    nowhere = str(tmp_path / "no-service-account")
    assert client_configuration_from_env({"KUBECONFIG": str(kubeconfig)}, nowhere).host == kube.url
    # Neither $HOME/.kube/config nor K8S_API_ENDPOINT (the datastore's settings) count.
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(kubeconfig.read_text())
    with caplog.at_level(logging.INFO):
        assert client_configuration_from_env({"HOME": str(tmp_path), "K8S_API_ENDPOINT": kube.url}, nowhere) is None
        assert client_configuration_from_env({"KUBECONFIG": str(tmp_path / "missing")}, nowhere) is None
    assert "KUBECONFIG=" in caplog.text and "no such file" in caplog.text
    assert "BGP passwords from Secrets and Service advertisement are off" in caplog.text
    # In a pod: the service account (its token, the cluster's CA).
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("pod-token")
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    conf = client_configuration_from_env(in_pod, service_account_dir=str(account))
    assert conf.host == "https://10.96.0.1:443" and conf.ssl_ca_cert == str(account / "ca.crt")
    # KUBECONFIG wins over the pod's account; an unusable one falls back to it.
    assert client_configuration_from_env(dict(in_pod, KUBECONFIG=str(kubeconfig)),
                                         service_account_dir=str(account)).host == kube.url
    assert client_configuration_from_env(dict(in_pod, KUBECONFIG=str(tmp_path / "missing")),
                                         service_account_dir=str(account)).host == "https://10.96.0.1:443"


# -- the informer ------------------------------------------------------------------------------

def test_informer_reports_refusal_then_follows_one_secret(kube, tmp_path):
    kube.rbac[NODE_TOKEN] = (NODE_USER, [])
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token=NODE_TOKEN)
    api = kube_api_factory(client_configuration(DatastoreConfig(kubeconfig=str(kubeconfig)), {}))()
    seen: list[tuple[str, str | None]] = []
    errors: list[str] = []
    informer = Informer(api, SECRETS, namespace="kube-system", field_selector="metadata.name=bgp-pw",
                        what="Secret kube-system/bgp-pw", backoff_initial=0.05, backoff_max=0.1,
                        on_object=lambda key, obj: seen.append(
                            (key[1], None if obj is None else obj["data"]["pw"])),
                        on_error=errors.append)
    _secret(kube, "bgp-pw", pw="one")
    _secret(kube, "other", pw="x")
    try:
        informer.start()
        assert informer.wait_settled(5) and not informer.synced
        wait_for(lambda: errors, 5, "the refusal")
        assert "403 Forbidden" in errors[0] and "cannot list resource \"secrets\"" in errors[0]
        kube.rbac[NODE_TOKEN] = (NODE_USER, SECRETS_ROLE)
        wait_for(lambda: informer.synced, 5, "the list once granted")
        assert informer.last_error == ""
        kube.patch("v1", "secrets", "bgp-pw", {"stringData": {"pw": "two"}}, namespace="kube-system")
        kube.patch("v1", "secrets", "other", {"stringData": {"pw": "y"}}, namespace="kube-system")
        kube.delete("v1", "secrets", "bgp-pw", "kube-system")
        wait_for(lambda: len(seen) == 3, 5, "the change and the deletion")
        assert seen == [("bgp-pw", base64.b64encode(b"one").decode()), ("bgp-pw", base64.b64encode(b"two").decode()),
                        ("bgp-pw", None)]
    finally:
        informer.stop()
        api.close()
    assert not informer._thread.is_alive()


def test_load_files_still_takes_secrets(tmp_path):
    (tmp_path / "s.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: bgp-pw}\n"
                                     "stringData: {pw: x}\n")
    inputs = load_files([str(tmp_path / "s.yaml")], Settings(nodename="n"))
    assert inputs.secret_value("kube-system", "bgp-pw", "pw") == "x"


def test_a_secret_that_does_not_decode_is_named_with_its_peer(kube, kube_kv, kube_config, tmp_path, monkeypatch,
                                                             caplog):
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    client.create(_res("BGPPeer", "tor", {"peerIP": "10.0.0.254", "asNumber": 65000, "password": PEER_PASSWORD}))
    kube.create("v1", "secrets", {"metadata": {"name": "bgp-pw"}, "data": {"pw": "not base64!"}},
                namespace="kube-system")
    out = _confd_env(monkeypatch, tmp_path, DATASTORE_TYPE="kubernetes", KUBECONFIG=kube_config.kubeconfig)
    with caplog.at_level(logging.WARNING):
        assert _oneshot() == 0
    assert "password" not in (out / "bird.cfg").read_text()
    assert ("Can't read password for BGPPeer tor (Secret kube-system/bgp-pw cannot be read: "
            "error with field Secret(bgp-pw).data.pw = 'not base64!' (not valid base64 text))") in caplog.text


# -- Service and EndpointSlice events render only when they can change this node's routes ------

def _svc_doc(name="web", **spec):
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": "1"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.5.5", **spec}}


def _slice_doc(name="web-1", service="web", endpoints=(), address_type="IPv4"):
    return {"metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type,
            "endpoints": [{"addresses": [addr], "nodeName": node, "conditions": {"ready": ready}}
                          for addr, node, ready in endpoints]}


def test_service_events_that_cannot_change_the_routes_render_nothing(tmp_path):
    renderer = Renderer(Settings(nodename="node1"), Installer(tmp_path, check=False, reload=False), lambda: None)

    def event(handler, key, obj, *, renders: bool):
        before = renderer._generation
        handler(("default", key), obj)
        assert renderer._generation - before == (1 if renders else 0), (key, obj)

    svc, eps = renderer._service_object, renderer._slice_object
    # Services: one of a type not advertised, or headless, changes no route.
    event(svc, "name", {"metadata": {"name": "name"}, "spec": {"type": "ExternalName", "externalName": "x"}},
          renders=False)
    event(svc, "headless", _svc_doc("headless", clusterIP="None"), renders=False)
    event(svc, "headless", None, renders=False)
    event(svc, "web", _svc_doc(), renders=True)
    # A change to what is not read (labels, ports, a new resourceVersion) renders nothing.
    changed = _svc_doc(ports=[{"port": 8080}])
    changed["metadata"].update(labels={"a": "b"}, resourceVersion="2")
    event(svc, "web", changed, renders=False)
    event(svc, "web", _svc_doc(externalTrafficPolicy="Local", type="NodePort"), renders=True)
    assert renderer.inputs.services[("default", "web")].external_traffic_policy == "Local"
    # EndpointSlices: without a ready endpoint a slice counts as absent.
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.2.5", "node2", False)]), renders=False)
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.2.5", "node2", True)]), renders=True)
    # More endpoints elsewhere, or new addresses: the same routes.
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.2.6", "node2", True), ("192.168.3.5", "node3", True),
                                              ("192.168.1.5", "node1", False)]), renders=False)
    # A ready endpoint on this node does change them (Local Services), and its going too.
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.1.5", "node1", True)]), renders=True)
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.1.5", "node1", True), ("192.168.1.6", "node1", True)]),
          renders=False)
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.2.5", "node2", True)]), renders=True)
    event(eps, "web-1", _slice_doc(endpoints=[("192.168.2.5", "node2", True)], address_type="IPv6"), renders=True)
    event(eps, "web-1", _slice_doc(service="other", endpoints=[("192.168.2.5", "node2", True)],
                                   address_type="IPv6"), renders=True)
    event(eps, "web-1", None, renders=True)
    event(eps, "web-1", None, renders=False)
    # What was stored is always the latest (a later render reads it).
    event(svc, "web", None, renders=True)
    assert set(renderer.inputs.services) == {("default", "name")} and renderer.inputs.endpoint_slices == {}


def test_daemon_renders_service_events_only_when_they_change_its_routes(kube, kube_kv, node_kubeconfig, tmp_path):
    client = DatastoreClient(kube_kv)
    _kdd_node(kube, client)
    _local_service(kube)
    client.create(_res("BGPConfiguration", "default", {"serviceClusterIPs": [{"cidr": "10.96.0.0/12"}]}))
    node_config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(node_kubeconfig),
                                  extra={"k8sClientQPS": TEST_QPS})
    out = tmp_path / "out"
    renderer = _renderer(Settings(nodename="node1"), out, node_config, node_kubeconfig)
    key = ("default", "web-1")
    with _Running(renderer):
        assert renderer.wait_rendered(15)
        assert "route 10.96.5.5/32 blackhole;" in (out / "bird_aggr.cfg").read_text()
        renders = renderer.renders
        # An endpoint elsewhere joins: the informer has it, and nothing is rendered.
        kube.patch("discovery.k8s.io/v1", "endpointslices", "web-1", {"endpoints": [
            {"addresses": ["192.168.1.5"], "nodeName": "node1", "conditions": {"ready": True}},
            {"addresses": ["192.168.2.5"], "nodeName": "node2", "conditions": {"ready": True}}]},
            namespace="default")
        wait_for(lambda: len(renderer.inputs.endpoint_slices[key].endpoints) == 2, 15, "the slice's change")
        assert renderer.wait_rendered(5) and renderer.renders == renders
        # The local endpoint goes: the Local Service's route goes with it.
        kube.patch("discovery.k8s.io/v1", "endpointslices", "web-1", {"endpoints": [
            {"addresses": ["192.168.2.5"], "nodeName": "node2", "conditions": {"ready": True}}]},
            namespace="default")
        wait_for(lambda: "10.96.5.5/32" not in (out / "bird_aggr.cfg").read_text(), 15, "the route's withdrawal")
        assert renderer.wait_rendered(5) and renderer.renders == renders + 1
        # The informers keep resourceVersions, not the objects.
        stores = [informer._store for informer in renderer.service_watcher.informers]
        assert all(stores) and all(isinstance(rv, str) for store in stores for rv in store.values())
