"""The node's roles on the Kubernetes datastore, end to end against a stand-in API server.

* startup as calico/node runs it in a DaemonSet (a real process in its own network
  namespace, the Node coming from Kubernetes, kubeadm's pod CIDR for the default pool,
  the NetworkUnavailable condition);
* the policy agent's dry run: pods, namespaces, a Kubernetes NetworkPolicy and a Calico
  NetworkPolicy created through the API become Felix's chains;
* the renderer's one-shot BIRD config from Kubernetes Nodes;
* calicoctl with DATASTORE_TYPE=kubernetes.
(The renderer's daemon mode runs the confd golden corpus on this datastore, see
test_confd_golden.py; IPAM's concurrency test runs on it in test_ipam_stress.py.)
"""
from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from kdd_fixtures import k8s_node, kube_env, namespace, pod, service_account
from netns import Namespace
from node.cli import calicoctl
from node.cli.calico_node import main as calico_node
from node.datastore.client import DatastoreClient
from node.datastore.kubernetes import conversion as conv
from node.felix import types as t
from node.felix.dryrun import dry_run
from node.felix.rules.names import policy_chain_name
from node.ipam.allocator import IPAM
from node.model import from_dict
from startup_netns import NetnsRelay, add_link

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")
V1 = "crd.projectcalico.org/v1"


def _res(kind, name, spec, **meta):
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name, **meta},
                      "spec": spec})


# -- startup -------------------------------------------------------------------------------

KUBEADM_CONFIG = """apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
"""


@pytest.fixture
def node_ns(kube, tmp_path):
    """A network namespace for the node, the stand-in reachable from it as 127.0.0.1."""
    with Namespace("kst") as ns:
        add_link(ns, "eth0", "10.0.0.11/24")
        with NetnsRelay(ns, ("127.0.0.1", kube.port)) as relay:
            kubeconfig = tmp_path / "node-kubeconfig"
            kubeconfig.write_text(kube.kubeconfig(tmp_path / "unused").read_text().replace(kube.url, relay.endpoint))
            yield ns, kubeconfig


def _startup(ns, kubeconfig, tmp_path, *args, **env):
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kubeconfig),
            "NODENAME": "node1", "CALICO_LIB_DIR": str(tmp_path / "lib"), "CALICO_RUN_DIR": str(tmp_path / "run"),
            "CALICO_LOG_DIR": str(tmp_path / "log"), "FELIX_IPV6SUPPORT": "false"}
    base.update(env)
    return subprocess.run(["ip", "netns", "exec", ns.name, CALICO_NODE, "startup", "--no-kernel-prep", *args],
                          env=base, capture_output=True, text=True, timeout=60)


def test_startup_in_kdd_mode(kube, kube_kv, node_ns, tmp_path):
    ns, kubeconfig = node_ns
    k8s_node(kube, "node1", labels={"kubernetes.io/hostname": "node1"}, internal_ip="10.0.0.11",
             pod_cidr="10.244.1.0/24")
    kube.patch("v1", "nodes", "node1", {"status": {"conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated"}]}}, subresource="status")
    kube.create("v1", "configmaps", {"metadata": {"name": "kubeadm-config"},
                                     "data": {"ClusterConfiguration": KUBEADM_CONFIG}}, namespace="kube-system")
    old_affinity = _old_affinity(kube, "node1", "10.244.1.0/26")
    result = _startup(ns, kubeconfig, tmp_path, "--complete-startup",
                      IP_AUTODETECTION_METHOD="kubernetes-internal-ip", CALICO_IPV4POOL_IPIP="Always",
                      CLUSTER_TYPE="k8s,bgp")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "Calico node started successfully", result.stdout
    assert "Calico started successfully" in result.stderr  # the condition was set
    # IPAM's host upgrade labelled the affinity an older Calico left for this node.
    assert "Upgraded 1 block affinities belonging to this host." in result.stderr
    assert (kube.get(V1, "blockaffinities", old_affinity)["metadata"]["labels"]
            == conv.affinity_labels("node1", "host", "10.244.1.0/26"))
    # The Node is the Kubernetes Node: addresses went into its annotations (via status).
    node = kube.get("v1", "nodes", "node1")
    assert node["metadata"]["annotations"]["projectcalico.org/IPv4Address"] == "10.0.0.11/24"
    conditions = {c["type"]: c for c in node["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert (conditions["NetworkUnavailable"]["status"], conditions["NetworkUnavailable"]["reason"],
            conditions["NetworkUnavailable"]["message"]) == ("False", "CalicoIsUp", "Calico is running on this node")
    client = DatastoreClient(kube_kv)
    calico_node_res = client.get("Node", "node1")
    assert calico_node_res.spec["bgp"]["ipv4Address"] == "10.0.0.11/24"
    assert calico_node_res.spec["orchRefs"] == [{"nodeName": "node1", "orchestrator": "k8s"}]
    # kubeadm's pod CIDR became the default pool.
    (pool,) = client.list("IPPool")
    assert (pool.name, pool.spec["cidr"], pool.spec["ipipMode"]) == ("default-ipv4-ippool", "10.244.0.0/16", "Always")
    info = client.get("ClusterInformation", "default")
    assert info.spec["clusterType"] == "k8s,bgp,kubeadm,kdd" and info.spec["datastoreReady"] is True
    assert {t.name for t in client.list("Tier")} == {"default", "kube-admin", "kube-baseline"}
    assert [f.name for f in client.list("FelixConfiguration")] == ["default"]  # no node.<name> in KDD
    assert (tmp_path / "lib" / "nodename").read_text() == "node1"
    # A second start changes nothing and succeeds again.
    before = kube.get("v1", "nodes", "node1")["metadata"]["resourceVersion"]
    result = _startup(ns, kubeconfig, tmp_path, IP_AUTODETECTION_METHOD="kubernetes-internal-ip")
    assert result.returncode == 0, result.stderr
    assert kube.get("v1", "nodes", "node1")["metadata"]["resourceVersion"] == before
    assert "No affinities needed to be upgraded." in result.stderr


def _old_affinity(kube, host: str, cidr: str) -> str:
    """A BlockAffinity as a Calico from before the affinity labels wrote it; its name."""
    name = conv.affinity_name(host, cidr)
    kube.create(V1, "blockaffinities", {"apiVersion": V1, "kind": "BlockAffinity", "metadata": {"name": name},
                                        "spec": {"state": "confirmed", "node": host, "cidr": cidr}})
    return name


def test_ipam_host_upgrade_retries_until_the_api_server_answers(kube, kube_kv, caplog):
    from startup.datastore import upgrade_host_ipam

    name = _old_affinity(kube, "node1", "10.244.1.0/26")
    kube.stop()
    waits = []

    def sleep(seconds):
        waits.append(seconds)
        if len(waits) == 3:
            kube.start()  # the API server is back after the third failure
        time.sleep(seconds)

    with caplog.at_level(logging.INFO):
        upgrade_host_ipam(DatastoreClient(kube_kv), "node1", sleep=sleep)
    assert waits == [0.1, 0.2, 0.4]  # doubling from 100 ms
    assert caplog.text.count("Failed to upgrade IPAM blocks of this host.") == 3
    assert "Upgraded 1 block affinities belonging to this host." in caplog.text
    assert kube.get(V1, "blockaffinities", name)["metadata"]["labels"][conv.LABEL_AFFINITY_TYPE] == "host"


def test_ipam_host_upgrade_gives_up_at_its_deadline(kube, kube_kv):
    from startup.datastore import upgrade_host_ipam
    from startup.logs import Fatal

    kube.stop()
    started = time.monotonic()
    with pytest.raises(Fatal, match="Unable to upgrade host's IPAM resources. error="):
        upgrade_host_ipam(DatastoreClient(kube_kv), "node1", deadline=1.0)
    assert 1.0 <= time.monotonic() - started < 5.0  # retried until the deadline, then stopped


def test_startup_fails_clearly_without_its_kubernetes_node(kube, node_ns, tmp_path):
    ns, kubeconfig = node_ns
    result = _startup(ns, kubeconfig, tmp_path, IP="10.0.0.11")
    assert result.returncode == 1
    assert "Failed to read Node from datastore" in result.stderr and "node1" in result.stderr
    assert "Terminating" in result.stderr


def test_network_unavailable_on_shutdown(kube, kube_config, tmp_path):
    from startup import k8s as startup_k8s

    k8s_node(kube, "node1")
    env = kube_env(kube_config, NODENAME="node1", CALICO_LIB_DIR=str(tmp_path))
    stamp = startup_k8s.mark_network_unavailable(env, "node1")
    assert stamp.exists() and oct(stamp.stat().st_mode & 0o777) == "0o644"
    (condition,) = kube.get("v1", "nodes", "node1")["status"]["conditions"]
    assert (condition["status"], condition["reason"]) == ("True", "CalicoIsDown")
    startup_k8s.mark_network_available(env, "node1")
    (condition,) = kube.get("v1", "nodes", "node1")["status"]["conditions"]
    assert (condition["status"], condition["reason"]) == ("False", "CalicoIsUp")
    assert not stamp.exists()
    # Not on Kubernetes (etcd, no kubeconfig): skipped; with CALICO_NETWORKING_BACKEND=none too.
    startup_k8s.mark_network_available({"DATASTORE_TYPE": "etcdv3", "CALICO_LIB_DIR": str(tmp_path)}, "node1")
    startup_k8s.mark_network_available(dict(env, CALICO_NETWORKING_BACKEND="none"), "nope")


def test_policy_only_complete_startup_leaves_the_shutdown_timestamp_and_the_condition(kube, kube_config, tmp_path,
                                                                                      caplog):
    """With CALICO_NETWORKING_BACKEND=none Calico's MarkNetworkAvailable returns before
    anything: no condition, the shutdown timestamp stays, no "started successfully"."""
    from startup import k8s as startup_k8s

    k8s_node(kube, "node1")
    env = kube_env(kube_config, NODENAME="node1", CALICO_LIB_DIR=str(tmp_path), CALICO_NETWORKING_BACKEND="none")
    stamp = startup_k8s.mark_network_unavailable(env, "node1")  # shutdown: the timestamp, no condition
    written = stamp.read_text()
    with caplog.at_level(logging.INFO, logger="startup.k8s"):
        assert startup_k8s.complete_startup(env) == 0
    assert stamp.read_text() == written
    assert "conditions" not in (kube.get("v1", "nodes", "node1").get("status") or {})
    assert "skipping NetworkUnavailable condition update" in caplog.text
    assert "Calico started successfully" not in caplog.text


class _Readiness:
    """A stand-in for Felix's /readiness on loopback: 503 until ``ready`` is set."""

    def __init__(self):
        import http.server
        import threading

        state = self
        self.ready = threading.Event()
        self.asked = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                state.asked += 1
                self.send_response(204 if state.ready.is_set() else 503)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _network_unavailable(kube, name="node1"):
    conditions = (kube.get("v1", "nodes", name).get("status") or {}).get("conditions") or []
    return next(((c["status"], c["reason"]) for c in conditions if c["type"] == "NetworkUnavailable"), None)


@pytest.mark.parametrize("becomes_ready", [True, False])
def test_complete_startup_waits_for_readiness_then_marks_the_network_available(kube, kube_config, tmp_path,
                                                                               becomes_ready):
    """calico-node complete-startup (a supervised program): nothing until the agent is
    ready (or the timeout passes), then NetworkUnavailable=False, then it stays up until
    SIGTERM."""
    import signal
    import time

    from kdd_fixtures import wait_for

    k8s_node(kube, "node1")
    kube.patch("v1", "nodes", "node1", {"status": {"conditions": [
        {"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated"}]}}, subresource="status")
    felix = _Readiness()
    env = dict(kube_env(kube_config, NODENAME="node1", CALICO_LIB_DIR=str(tmp_path),
                        CALICO_NETWORKING_BACKEND="vxlan", FELIX_HEALTHENABLED="true",
                        FELIX_HEALTHHOST="127.0.0.1", FELIX_HEALTHPORT=str(felix.port)),
               PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    timeout = "60s" if becomes_ready else "1s"
    proc = subprocess.Popen([CALICO_NODE, "complete-startup", "--timeout", timeout, "--interval", "100ms"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if becomes_ready:
            wait_for(lambda: felix.asked >= 3, 20, "readiness asked")
            assert _network_unavailable(kube) != ("False", "CalicoIsUp")  # not before it is ready
            felix.ready.set()
        wait_for(lambda: _network_unavailable(kube) == ("False", "CalicoIsUp"), 20, "NetworkUnavailable=False")
        time.sleep(0.3)
        assert proc.poll() is None  # stays up, so supervisord sees it running
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        felix.close()
    assert "Waiting for Calico to become ready" in err
    assert ("Calico failed to become ready, continuing anyway" in err) is (not becomes_ready)
    assert "Calico started successfully" in err


def test_shutdown_hook_marks_the_network_unavailable(kube, kube_config, tmp_path):
    """calico-node -shutdown (the preStop hook): the timestamp file, then
    NetworkUnavailable=True. With the API server gone the timestamp is still written at
    once and the hook keeps retrying (until the grace period ends it, as Calico's does)."""
    import time

    from kdd_fixtures import wait_for

    k8s_node(kube, "node1")
    env = dict(kube_env(kube_config, NODENAME="node1", CALICO_LIB_DIR=str(tmp_path)),
               PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    stamp = tmp_path / "shutdownTS"
    result = subprocess.run([CALICO_NODE, "-shutdown"], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert _network_unavailable(kube) == ("True", "CalicoIsDown")
    assert stamp.read_text().endswith("Z")
    stamp.unlink()
    kube.stop()
    proc = subprocess.Popen([CALICO_NODE, "-shutdown"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(stamp.exists, 10, "the shutdown timestamp")
        time.sleep(1)
        assert proc.poll() is None  # still retrying the condition
    finally:
        proc.kill()
        proc.wait()


def test_shutdown_timestamp_file_moves_with_its_variable(tmp_path, monkeypatch):
    """CALICO_SHUTDOWN_TIMESTAMP_FILE, as Calico reads it, else shutdownTS in the lib
    directory; marking the network available removes whichever it is."""
    from startup import k8s as startup_k8s

    assert startup_k8s.shutdown_timestamp_file({"CALICO_LIB_DIR": str(tmp_path)}) == tmp_path / "shutdownTS"
    explicit = tmp_path / "elsewhere" / "ts"
    env = {"CALICO_LIB_DIR": str(tmp_path), "CALICO_SHUTDOWN_TIMESTAMP_FILE": str(explicit)}
    assert startup_k8s.shutdown_timestamp_file(env) == explicit
    monkeypatch.setattr(startup_k8s, "_update_condition", lambda *args: None)  # (no API server here)
    assert startup_k8s.mark_network_unavailable(env, "node1") == explicit and explicit.read_text().endswith("Z")
    startup_k8s.mark_network_available(env, "node1")
    assert not explicit.exists()


def test_kubernetes_lookups(kube, kube_config, tmp_path):
    from startup import k8s as startup_k8s

    env = kube_env(kube_config)
    k8s_node(kube, "host-a", internal_ip="10.0.0.5")
    kube.create("v1", "configmaps", {"metadata": {"name": "kubeadm-config"},
                                     "data": {"ClusterConfiguration": KUBEADM_CONFIG}}, namespace="kube-system")
    info = startup_k8s.lookups(dict(env, CALICO_K8S_NODE_REF="host-a"), "calico-name")
    assert info.node["metadata"]["name"] == "host-a"
    assert startup_k8s.extract_kubeadm_cidrs(info.kubeadm_config) == ("10.244.0.0/16", "")
    assert info.rancher_state is None
    assert startup_k8s.lookups({}, "x").node is None  # no Kubernetes configuration


# -- the policy agent ------------------------------------------------------------------------

def test_policy_agent_dry_run_from_the_kubernetes_api(kube, kube_config, kube_kv):
    client = DatastoreClient(kube_kv)
    for name, order in (("default", 1000000), ("kube-admin", 1000), ("kube-baseline", 10000000)):
        client.create(_res("Tier", name, {"order": order, "defaultAction": "Deny" if name == "default" else "Pass"}))
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    namespace(kube, "shop", labels={"team": "retail"})
    service_account(kube, "shop", "web-sa")
    pod(kube, "shop", "web-0", "node1", ip="192.168.10.5", labels={"app": "web"}, service_account_name="web-sa")
    pod(kube, "shop", "db-0", "node1", ip="192.168.10.6", labels={"app": "db"})
    pod(kube, "shop", "elsewhere", "node2", ip="192.168.11.7", labels={"app": "web"})
    kube.create("networking.k8s.io/v1", "networkpolicies", {
        "metadata": {"name": "web-ingress"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                              "ports": [{"protocol": "TCP", "port": 8080}]}]}}, namespace="shop")
    client.create(_res("NetworkPolicy", "db-egress", {"selector": "app == 'db'", "order": 10,
                                                      "egress": [{"action": "Deny", "protocol": "UDP"}]},
                       namespace="shop"))
    env = kube_env(kube_config, NODENAME="node1", FELIX_IPV6SUPPORT="false")
    text = dry_run("node1", env, interfaces={"eth0": ["10.0.0.11"]})
    web_iface = conv.veth_name("shop", "web-0")
    db_iface = conv.veth_name("shop", "db-0")
    knp_chain = policy_chain_name("cali-pi-", t.PolicyID("web-ingress", "shop", t.KIND_KUBERNETES_NETWORK_POLICY))
    np_chain = policy_chain_name("cali-po-", t.PolicyID("db-egress", "shop", t.KIND_NETWORK_POLICY))
    # Both local pods have endpoint chains; the pod on node2 does not.
    assert f"cali-tw-{web_iface}" in text and f"cali-fw-{db_iface}" in text
    assert conv.veth_name("shop", "elsewhere") not in text
    # The Kubernetes NetworkPolicy is enforced on web-0's ingress, in v3.32's naming.
    to_web = [line for line in text.splitlines() if line.startswith(f"-A cali-tw-{web_iface} ")]
    assert any(f"--jump {knp_chain}" in line for line in to_web), "\n".join(to_web)
    knp_rules = [line for line in text.splitlines() if line.startswith(f"-A {knp_chain} ")]
    assert any("-p tcp" in line and "--destination-ports 8080" in line and "--set-mark 0x10000/0x10000" in line
               for line in knp_rules), "\n".join(knp_rules)
    # The Calico NetworkPolicy applies to db-0's egress.
    from_db = [line for line in text.splitlines() if line.startswith(f"-A cali-fw-{db_iface} ")]
    assert any(f"--jump {np_chain}" in line for line in from_db), "\n".join(from_db)
    # Namespace and service-account profiles are the endpoints' profiles.
    assert "cali-pri-kns.shop" in text and "cali-pri-ksa.shop.web-sa" in text
    # The same run after the policy is deleted through Kubernetes no longer enforces it.
    kube.delete("networking.k8s.io/v1", "networkpolicies", "web-ingress", "shop")
    assert knp_chain not in dry_run("node1", env, interfaces={"eth0": ["10.0.0.11"]})


def test_policy_agent_routes_from_kdd_ipam(kube, kube_config, kube_kv):
    client = DatastoreClient(kube_kv)
    client.create(_res("IPPool", "pool", {"cidr": "10.200.0.0/24", "blockSize": 28, "vxlanMode": "Always"}))
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    k8s_node(kube, "node2", internal_ip="10.0.0.12")
    for name, ip, tunnel, mac in (("node1", "10.0.0.11", "10.200.0.1", "66:00:00:00:00:01"),
                                  ("node2", "10.0.0.12", "10.200.0.17", "66:00:00:00:00:02")):
        node = client.get("Node", name)
        node.spec.update(bgp={"ipv4Address": f"{ip}/24"}, ipv4VXLANTunnelAddr=tunnel, vxlanTunnelMACAddr=mac)
        client.update(node)
    ipam = IPAM(kube_kv)
    got, _ = ipam.auto_assign(num4=1, handle_id="h2", attrs={"node": "node2"}, host="node2")
    block = str(__import__("ipaddress").ip_network(f"{got.ips[0]}/28", strict=False))
    env = kube_env(kube_config, NODENAME="node1", FELIX_IPV6SUPPORT="false")
    routes = dry_run("node1", env, what="routes", interfaces={"eth0": ["10.0.0.11"]})
    # node2's block is reached over VXLAN through node2's tunnel address (its annotations).
    assert any(block in line and "10.200.0.17" in line and "vxlan.calico" in line for line in routes.splitlines()), \
        routes
    assert "66:00:00:00:00:02" in routes and "10.0.0.12" in routes, routes


# -- the renderer ------------------------------------------------------------------------------

def test_renderer_oneshot_from_kubernetes_nodes(kube, kube_config, kube_kv, tmp_path, monkeypatch):
    client = DatastoreClient(kube_kv)
    for name, ip in (("node1", "10.0.0.11"), ("node2", "10.0.0.12")):
        k8s_node(kube, name, internal_ip=ip)
        node = client.get("Node", name)
        node.spec["bgp"] = {"ipv4Address": f"{ip}/24", "asNumber": 64512}
        client.update(node)
    client.create(_res("IPPool", "pool", {"cidr": "10.200.0.0/16", "ipipMode": "Always"}))
    for key, value in kube_env(kube_config, NODENAME="node1", CALICO_CONFIG_DIR=str(tmp_path / "etc"),
                               CALICO_RUN_DIR=str(tmp_path / "run")).items():
        monkeypatch.setenv(key, value)
    assert calico_node(["confd", "--oneshot", "--no-reload", "--oneshot-timeout", "10"]) == 0
    bird = (tmp_path / "etc" / "confd" / "config" / "bird.cfg").read_text()
    assert "router id 10.0.0.11;" in bird
    assert "protocol bgp Mesh_10_0_0_12 from bgp_template" in bird and "neighbor 10.0.0.12 as 64512" in bird
    assert "Mesh_10_0_0_11" not in bird


# -- calicoctl ------------------------------------------------------------------------------------

@pytest.fixture
def ctl(kube_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATASTORE_TYPE", "kubernetes")
    monkeypatch.setenv("KUBECONFIG", kube_config.kubeconfig)
    monkeypatch.delenv("ETCD_ENDPOINTS", raising=False)
    monkeypatch.setattr(calicoctl, "DEFAULT_CALICOCTL_CONFIG", str(tmp_path / "none.cfg"), raising=False)
    import node.config

    monkeypatch.setattr(node.config, "DEFAULT_CALICOCTL_CONFIG", str(tmp_path / "none.cfg"))

    def run(*args, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = calicoctl.main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_calicoctl_with_the_kubernetes_datastore(kube, kube_kv, ctl):
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    namespace(kube, "shop")
    pod(kube, "shop", "web-0", "node1", ip="192.168.10.5", labels={"app": "web"})
    kube.create("networking.k8s.io/v1", "networkpolicies", {
        "metadata": {"name": "web-ingress"}, "spec": {"podSelector": {"matchLabels": {"app": "web"}}}},
        namespace="shop")
    code, out, err = ctl("apply", "-f", "-", stdin="apiVersion: projectcalico.org/v3\nkind: IPPool\n"
                                                   "metadata: {name: pool1}\nspec: {cidr: 10.5.0.0/16}\n")
    assert (code, out) == (0, "Successfully applied 1 'IPPool' resource(s)\n"), err
    assert kube.get(V1, "ippools", "pool1")["spec"]["cidr"] == "10.5.0.0/16"
    code, out, err = ctl("get", "nodes")
    assert (code, out.split()) == (0, ["NAME", "node1"]), err
    code, out, err = ctl("get", "ippools", "-o", "wide")
    assert code == 0 and "pool1" in out and "10.5.0.0/16" in out, err
    code, out, err = ctl("get", "workloadendpoints", "-n", "shop")
    assert code == 0 and "web-0" in out and "192.168.10.5/32" in out and conv.veth_name("shop", "web-0") in out, err
    code, out, err = ctl("get", "kubernetesnetworkpolicies", "-A", "-o", "yaml")
    assert code == 0 and "name: web-ingress" in out and "projectcalico.org/orchestrator == 'k8s' && app == 'web'" in out
    code, out, err = ctl("get", "profiles")
    assert code == 0 and "kns.shop" in out and "projectcalico-default-allow" in out
    code, out, err = ctl("create", "-f", "-", stdin="apiVersion: projectcalico.org/v3\nkind: Node\n"
                                                    "metadata: {name: node9}\nspec: {}\n")
    assert code == 1 and "Calico Nodes are Kubernetes Nodes" in err
    code, out, err = ctl("ipam", "show")
    assert code == 0 and "10.5.0.0/16" in out, err
    code, out, err = ctl("delete", "ippool", "pool1")
    assert code == 0 and kube.items(V1, "ippools") == [], err
