"""The policy agent on the Kubernetes datastore, against the API stand-in: rules matching a
Kubernetes Service get their IP sets from the Service's EndpointSlices, live, and host-local
IPAM (USE_POD_CIDR) routes the Nodes' pod CIDRs.

* the agent's own syncer sources and pipeline follow an EndpointSlice as it changes;
* ``calico-node felix --dry-run --routes`` with USE_POD_CIDR, in a node namespace;
* the agent for real: a pod reaches a Service's backend only while the backend's address
  and port are in the Service's EndpointSlice.
"""
from __future__ import annotations

import queue
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.pods import Pod
from e2e.probes import eventually
from felix_node import EXTERNAL_IP, NODE_IP, FelixNode, _resource
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from kdd_fixtures import k8s_node, kube_env, namespace, pod, service_account
from netns import Namespace, open_linked
from node.datastore.client import DatastoreClient
from node.datastore.factory import kv_for
from node.datastore.syncer import Syncer
from node.felix.pipeline import Pipeline, felix_sources
from node.felix.rules.names import ip_set_name
from node.selector import make_unique_id
from startup_netns import NetnsRelay, add_link

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")
DISCOVERY = "discovery.k8s.io/v1"
TIERS = (("default", 1000000, "Deny"), ("kube-admin", 1000, "Pass"), ("kube-baseline", 10000000, "Pass"))


def _tiers(client: DatastoreClient) -> None:
    for name, order, action in TIERS:
        client.create(_resource("Tier", name, {"order": order, "defaultAction": action}))


def _slice(name: str, ns: str, service: str, addresses, ports=((80, "TCP"),)) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
            "ports": [{"name": "", "port": port, "protocol": proto} for port, proto in ports]}


def _services_policy(name: str, ns: str, service: str, service_ns: str, selector: str = "all()"):
    return _resource("NetworkPolicy", name, {
        "selector": selector, "types": ["Egress"],
        "egress": [{"action": "Allow", "destination": {"services": {"name": service, "namespace": service_ns}}}]},
        namespace=ns)


class _Inbox:
    """The syncer's callbacks, queued for the test thread (as the agent queues them)."""

    def __init__(self):
        self.q: queue.SimpleQueue = queue.SimpleQueue()

    def on_updates(self, updates):
        self.q.put(("updates", list(updates)))

    def on_status(self, status):
        self.q.put(("status", status))


def test_the_agents_sources_follow_an_endpoint_slice(kube, kube_config, kube_kv):
    client = DatastoreClient(kube_kv)
    _tiers(client)
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    namespace(kube, "ns1")  # ("default" the stand-in has, as every cluster)
    pod(kube, "ns1", "client", "node1", ip="192.168.10.5", labels={"app": "client"})
    client.create(_services_policy("to-api", "ns1", "kubernetes", "default"))
    kube.create(DISCOVERY, "endpointslices", _slice("kubernetes", "default", "kubernetes", ["10.0.0.11"],
                                                     ports=((6443, "TCP"),)), namespace="default")
    env = kube_env(kube_config, NODENAME="node1", FELIX_IPV6SUPPORT="false")
    pipeline = Pipeline("node1", env)
    inbox = _Inbox()
    syncer = Syncer(lambda: kv_for(kube_config), felix_sources(env), inbox, retain_values=False)
    name = ip_set_name(make_unique_id("svc", "default/kubernetes"), 4)

    def members_become(expected: set[str], timeout: float = 10.0) -> set[str]:
        got: set[str] = set()

        def check() -> bool:
            nonlocal got
            try:
                while True:
                    what, arg = inbox.q.get_nowait()
                    if what == "updates":
                        pipeline.on_updates(arg)
                    else:
                        pipeline.on_status(arg)
            except queue.Empty:
                pass
            pipeline.complete()
            if 4 not in pipeline.dataplanes:
                return False
            got = {line.split(" ", 2)[2] for line in pipeline.dataplanes[4].render_ipsets().splitlines()
                   if line.startswith(f"add {name} ")}
            return got == expected
        eventually(check, timeout)
        return got

    syncer.start()
    try:
        assert members_become({"10.0.0.11,tcp:6443"}) == {"10.0.0.11,tcp:6443"}
        # The API server moves: the set follows the slice, through the watch.
        obj = kube.get(DISCOVERY, "endpointslices", "kubernetes", "default")
        obj["endpoints"] = [{"addresses": ["10.0.0.12"]}, {"addresses": ["10.0.0.13"], "conditions": {"ready": False}}]
        kube.update(DISCOVERY, "endpointslices", obj)
        want = {"10.0.0.12,tcp:6443", "10.0.0.13,tcp:6443"}
        assert members_become(want) == want
        kube.delete(DISCOVERY, "endpointslices", "kubernetes", "default")
        assert members_become(set()) == set()
        rules = pipeline.dataplanes[4].render_save()
        assert f"--match-set {name} dst,dst" in rules
    finally:
        syncer.stop()


# -- USE_POD_CIDR, through the command ---------------------------------------------------------

@pytest.fixture
def node_ns(kube, tmp_path):
    """A node namespace (eth0 10.0.0.11) where the stand-in answers on 127.0.0.1."""
    with Namespace("kpc") as ns:
        add_link(ns, "eth0", "10.0.0.11/24")
        with NetnsRelay(ns, ("127.0.0.1", kube.port)) as relay:
            kubeconfig = tmp_path / "node-kubeconfig"
            kubeconfig.write_text(kube.kubeconfig(tmp_path / "unused").read_text().replace(kube.url, relay.endpoint))
            yield ns, kubeconfig


def test_use_pod_cidr_routes_from_the_dry_run(kube, kube_kv, node_ns, tmp_path):
    ns, kubeconfig = node_ns
    client = DatastoreClient(kube_kv)
    client.create(_resource("IPPool", "pool", {"cidr": "10.244.0.0/16", "vxlanMode": "Always",
                                               "blockSize": 24}))
    for name, ip, cidr, tunnel, mac in (("node1", "10.0.0.11", "10.244.1.0/24", "10.244.1.0", "66:00:00:00:00:01"),
                                        ("node2", "10.0.0.12", "10.244.2.0/24", "10.244.2.0", "66:00:00:00:00:02")):
        k8s_node(kube, name, internal_ip=ip, pod_cidr=cidr)
        calico_node = client.get("Node", name)
        calico_node.spec.update(bgp={"ipv4Address": f"{ip}/24"}, ipv4VXLANTunnelAddr=tunnel, vxlanTunnelMACAddr=mac)
        client.update(calico_node)

    def dry_run(**extra) -> str:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kubeconfig),
               "NODENAME": "node1", "FELIX_IPV6SUPPORT": "false", "CALICO_LIB_DIR": str(tmp_path / "lib"), **extra}
        run = subprocess.run(["ip", "netns", "exec", ns.name, CALICO_NODE, "felix", "--dry-run", "--routes"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    routes = dry_run(USE_POD_CIDR="true").splitlines()
    assert "blackhole 10.244.1.0/24 proto 80" in routes, routes
    # (The MTU follows this namespace's eth0.)
    assert "10.244.2.0/24 via 10.244.2.0 dev vxlan.calico proto boot onlink mtu 1450" in routes, routes
    assert "66:00:00:00:00:02 dev vxlan.calico dst 10.0.0.12 self permanent" in routes, routes
    # Without it, the pod CIDRs mean nothing to Calico (no IPAM blocks here: no such routes).
    assert not [line for line in dry_run().splitlines() if "10.244.1.0/24" in line or "10.244.2.0/24" in line]


# -- the agent for real -------------------------------------------------------------------------

class KubeFelixNode(FelixNode):
    """A FelixNode whose agent follows the Kubernetes API stand-in (pods are Pods)."""

    def __init__(self, kube, kube_kv, workdir: Path):
        super().__init__(DatastoreClient(kube_kv), "127.0.0.1:0")
        self.kube = kube
        self.workdir = workdir
        self._relay: NetnsRelay | None = None
        self.kubeconfig = workdir / "agent-kubeconfig"

    def setup(self) -> None:
        open_linked(self.ns, NODE_IP, self.external, EXTERNAL_IP)
        self.external.run("ip", "route", "add", "10.65.0.0/16", "via", NODE_IP)
        self.ns.run("ip", "route", "add", "default", "via", EXTERNAL_IP)
        self.ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._relay = NetnsRelay(self.ns, ("127.0.0.1", self.kube.port)).__enter__()
        self.kubeconfig.write_text(self.kube.kubeconfig(self.workdir / "unused").read_text()
                                   .replace(self.kube.url, self._relay.endpoint))
        k8s_node(self.kube, self.name, internal_ip=NODE_IP)
        node = self.client.get("Node", self.name)
        node.spec.update(bgp={"ipv4Address": f"{NODE_IP}/24"})
        self.client.update(node)
        _tiers(self.client)
        self.client.create(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))

    def close(self) -> None:
        super().close()
        if self._relay is not None:
            self._relay.__exit__(None, None, None)
            self._relay = None

    def agent_env(self) -> dict[str, str]:
        env = super().agent_env()
        env.pop("ETCD_ENDPOINTS", None)
        env.update({"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(self.kubeconfig), "FELIX_IPV6SUPPORT": "false"})
        return env

    def add_pod(self, name: str, ip: str, namespace: str = "ns1", labels: dict | None = None,
                ports: list | None = None, write: bool = True) -> Pod:
        created = super().add_pod(name, ip, namespace, labels, ports, write=False)
        if write:
            pod(self.kube, namespace, name, self.name, ip=ip, labels=labels)
        return created


def test_a_pod_reaches_a_service_backend_only_while_the_slice_lists_it(kube, kube_kv, tmp_path):
    with KubeFelixNode(kube, kube_kv, tmp_path) as node:
        namespace(kube, "ns1")
        service_account(kube, "ns1", "default")
        node.add_pod("client", "10.65.0.10", labels={"app": "client"})
        node.add_pod("b", "10.65.0.11", labels={"app": "backend"})
        node.add_pod("c", "10.65.0.12", labels={"app": "backend"})
        for where, port in (("b", 80), ("b", 81), ("c", 80)):
            node.listen(where, port)
        node.client.create(_services_policy("to-backend", "ns1", "backend", "ns1", selector="app == 'client'"))
        kube.create(DISCOVERY, "endpointslices", _slice("backend-x1", "ns1", "backend", ["10.65.0.11"]),
                    namespace="ns1")
        node.start_agent(tmp_path)
        node.wait_ready(40)

        def expect(dst, port, ok):
            assert eventually(lambda: node.can("client", "tcp", dst, port) == ok, 15), (
                f"client -> {dst}:{port} expected {'allowed' if ok else 'blocked'}\n{node.log_text()[-3000:]}")

        expect("b", 80, True)          # the backend's address and port are in the slice
        expect("b", 81, False)         # its other port is not
        expect("c", 80, False)         # the other pod is not a backend yet
        obj = kube.get(DISCOVERY, "endpointslices", "backend-x1", "ns1")
        obj["endpoints"].append({"addresses": ["10.65.0.12"], "conditions": {"ready": True}})
        kube.update(DISCOVERY, "endpointslices", obj)
        expect("c", 80, True)
        kube.delete(DISCOVERY, "endpointslices", "backend-x1", "ns1")
        expect("b", 80, False)
        expect("c", 80, False)
        set_name = ip_set_name(make_unique_id("svc", "ns1/backend"), 4)
        assert set_name in node.ns.run("ipset", "list", "-n").stdout
