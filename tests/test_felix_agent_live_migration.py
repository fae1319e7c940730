"""A KubeVirt live migration seen by the real policy agent (``calico-node felix`` in a node
namespace, real etcd): a LiveMigration selects the local virt-launcher pod as its target,
so the agent holds its route back; the VM's gratuitous ARP, sent from the pod's network
namespace, makes it Live (route at the elevated priority) and hands its address's IPAM
ownership to the target pod; the LiveMigration's removal starts the convergence time
(shortened here), after which the route returns to the normal priority. On the Kubernetes
datastore (the stand-in API server) the agent's IPAM client does the same handover."""
from __future__ import annotations

import json
import socket
import struct

import pytest

from e2e.probes import eventually
from felix_node import _resource, felix_node_on_etcd
from kdd_fixtures import TEST_QPS, k8s_node
from kube_standin import KubeStandin
from node.config import KUBERNETES, DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.factory import kv_for
from node.felix import live_migration as lm
from node.felix import types as t
from node.felix.agent import Agent
from node.felix.dataplane.live_migration import OwnerSwapper
from node.ipam.allocator import IPAM
from node.ipam.block import OwnerAttributeUpdates
from node.ipam.vm import vm_handle_id
from startup_netns import in_netns

SOURCE_POD = "virt-launcher-vm1-src"
TARGET_POD = "virt-launcher-vm1-tgt"


@pytest.fixture
def node(tmp_path):
    with felix_node_on_etcd(env={"FELIX_LIVEMIGRATIONROUTECONVERGENCETIME": "2"}) as n:
        n.log_dir = tmp_path
        yield n


def routes_to(node, ip: str) -> list[tuple[str, int]]:
    out = json.loads(node.ns.run("ip", "-4", "-j", "route", "show", "table", "main").stdout)
    return [(r["dev"], r.get("metric", 0)) for r in out if r["dst"] == ip]


def gratuitous_arp(pod_netns: str, mac: str, ip: str) -> None:
    """What the VM sends once it runs on the target: a gratuitous ARP for its address."""
    mac_bytes = bytes.fromhex(mac.replace(":", ""))
    addr = socket.inet_aton(ip)
    frame = (b"\xff" * 6 + mac_bytes + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
             + mac_bytes + addr + b"\0" * 6 + addr)

    def send():
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
            sock.bind(("eth0", 0))
            sock.send(frame + b"\0" * (60 - len(frame)))
    in_netns(pod_netns, send)


def test_live_migration_target_routes_and_ipam_handover(node, tmp_path):
    node.namespace_profile("vms")
    node.write(_resource("IPPool", "pool", {"cidr": "10.65.0.0/16"}))
    # The VM's address, as the CNI plugin allocates it with KubeVirt address persistence:
    # under the VM's handle, owned by the source pod, the target pod the alternate owner.
    ipam = IPAM(node.client.kv)
    handle = vm_handle_id("", "vms", "vm1")
    got, _ = ipam.auto_assign(num4=1, handle_id=handle, host=node.name,
                              attrs={"namespace": "vms", "pod": SOURCE_POD, "node": "node0"})
    ip = str(got.ips[0]).split("/")[0]
    ipam.set_owner_attributes(ip, handle, OwnerAttributeUpdates(
        alternate_owner_attrs={"namespace": "vms", "pod": TARGET_POD, "node": node.name}))
    pod = node.add_pod(TARGET_POD, ip, namespace="vms",
                       labels={"vm.kubevirt.io/name": "vm1", "kubevirt.io/migrationJobUID": "job-1"})

    node.start_agent(tmp_path)
    node.wait_ready(40)
    assert eventually(lambda: routes_to(node, ip) == [(pod.interface, 1024)], 10), routes_to(node, ip)

    migration = _resource("LiveMigration", "mig1", {
        "source": {"workload": {"orchestratorID": "k8s", "workloadID": f"vms/{SOURCE_POD}"}},
        "target": {"selector": "kubevirt.io/migrationJobUID == 'job-1'"}}, namespace="vms")
    node.write(migration)
    assert eventually(lambda: routes_to(node, ip) == [], 10), node.log_text()[-3000:]

    gratuitous_arp(pod.netns, pod.mac, ip)
    assert eventually(lambda: routes_to(node, ip) == [(pod.interface, 512)], 10), node.log_text()[-3000:]
    # The agent made the target pod its VM address's active owner, through its own IPAM client.
    assert eventually(lambda: (ipam.get_assignment_attributes(ip).secondary or {}).get("pod") == TARGET_POD, 10), \
        node.log_text()[-3000:]
    assert (ipam.get_assignment_attributes(ip).alternate or {}).get("pod") == SOURCE_POD

    node.delete("LiveMigration", "mig1", "vms")  # KubeVirt finished: TimeWait, still elevated
    assert eventually(lambda: "TimeWait" in node.log_text(), 10)
    assert routes_to(node, ip) == [(pod.interface, 512)]
    assert eventually(lambda: routes_to(node, ip) == [(pod.interface, 1024)], 10), node.log_text()[-3000:]
    log = node.log_text()
    assert "Detected GARP/RARP packet on workload interface" in log
    assert "Successfully swapped IPAM owner attributes" in log
    assert log.count("Starting IPAM owner attribute swap") == 1


@pytest.fixture
def kube_datastore(tmp_path):
    """A stand-in API server and the configuration that reaches it (kdd_fixtures' kube and
    kube_config), and a KubeKV on it."""
    with KubeStandin(bookmark_interval=0.2) as kube:
        config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(kube.kubeconfig(tmp_path / "kubeconfig")),
                                 extra={"k8sClientQPS": TEST_QPS})
        kv = kv_for(config)
        try:
            yield kube, config, kv
        finally:
            kv.close()


def test_owner_swap_through_the_agents_ipam_client_on_the_kubernetes_datastore(kube_datastore):
    kube, kube_config, kube_kv = kube_datastore
    DatastoreClient(kube_kv).create(_resource("IPPool", "pool", {"cidr": "10.66.0.0/24"}))
    k8s_node(kube, "node1", internal_ip="10.0.0.11")
    ipam = IPAM(kube_kv)
    handle = vm_handle_id("", "vms", "vm1")
    got, _ = ipam.auto_assign(num4=1, handle_id=handle, host="node1",
                              attrs={"namespace": "vms", "pod": SOURCE_POD, "node": "node0"})
    ip = str(got.ips[0]).split("/")[0]
    ipam.set_owner_attributes(ip, handle, OwnerAttributeUpdates(
        alternate_owner_attrs={"namespace": "vms", "pod": TARGET_POD, "node": "node1"}))

    agent = Agent("node1", {}, lambda: kv_for(kube_config), default_rp_filter="1")
    made = []

    def client():
        made.append(agent._ipam_client())  # IPAM over a KubeKV, as the running agent makes it
        return made[-1]
    wid = t.WorkloadEndpointID("k8s", f"vms/{TARGET_POD}", "eth0")
    OwnerSwapper(client).start(lm.StartOwnerSwap(wid, "vms", TARGET_POD, "vm1")).join(30)
    attr = ipam.get_assignment_attributes(ip)
    assert (attr.secondary["pod"], attr.alternate["pod"]) == (TARGET_POD, SOURCE_POD)
    assert len(made) == 1 and type(made[0].kv).__name__ == "KubeKV"
