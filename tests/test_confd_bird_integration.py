"""Two nodes, each a network namespace with its own renderer (``calico-node confd``) and
its own real BIRD, joined by a veth pair and sharing a real etcd.

Checks the whole chain: the mesh session comes up, an affine block's blackhole on one
node becomes a kernel route on the other, and datastore changes (a new BGPPeer, a new
AS number) reach BIRD through a reload, with BIRD never restarted.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import confd_fixtures as fx
from confd_bird import BirdProcess, stop_process, wait_for
from netns import Namespace, veth_pair
from node import bird
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV

pytestmark = pytest.mark.etcd

CALICO_NODE = [sys.executable, "-m", "node.cli.calico_node"]
REPO = Path(__file__).resolve().parents[1]


class NodeUnderTest:
    """One node: a namespace, a renderer process and (once configured) a BIRD."""

    def __init__(self, name: str, ns: Namespace, root: Path, etcd_endpoint: str):
        self.name = name
        self.ns = ns
        self.config_dir = root / "etc"
        self.run_dir = root / "run"
        self.run_dir.mkdir(parents=True)
        self.output = self.config_dir / "confd" / "config"
        self.socket = self.run_dir / "bird.ctl"
        self.log_path = root / "confd.log"
        self.env = dict(os.environ, NODENAME=name, CALICO_CONFIG_DIR=str(self.config_dir),
                        CALICO_RUN_DIR=str(self.run_dir), ETCD_ENDPOINTS=etcd_endpoint,
                        DATASTORE_TYPE="etcdv3", CALICO_ENDPOINT_STATUS_PATH_PREFIX=str(root / "status"),
                        PYTHONPATH=str(REPO))
        self.renderer: subprocess.Popen | None = None
        self.bird: BirdProcess | None = None

    def start_renderer(self) -> None:
        with open(self.log_path, "w") as log:
            self.renderer = subprocess.Popen(CALICO_NODE + ["confd"], env=self.env, cwd=REPO,
                                             stdout=log, stderr=subprocess.STDOUT)

    def start_bird(self) -> None:
        assert wait_for(lambda: (self.output / "bird.cfg").exists(), 30), self.log()
        self.bird = BirdProcess(self.ns, self.output / "bird.cfg", self.socket).start()

    def protocols(self) -> dict[str, bird.Protocol]:
        return {p.name: p for p in bird.show_protocols(self.socket)}

    def established(self, name: str) -> bool:
        proto = self.protocols().get(name)
        return proto is not None and proto.state == "up" and proto.info.startswith("Established")

    def details(self, name: str) -> str:
        with bird.BirdClient(self.socket) as client:
            return client.command(f"show protocols all {name}").text

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.bird is not None:
            self.bird.stop()
        stop_process(self.renderer, grace=10)


def test_two_nodes_mesh_routes_and_reloads(tmp_path, etcd_clean, etcd_clean_config):
    kv = EtcdKV(etcd_clean_config)
    client = DatastoreClient(kv)
    nodes: list[NodeUnderTest] = []
    with Namespace("cfda") as ns_a, Namespace("cfdb") as ns_b:
        try:
            veth_pair(ns_a, "eth-a", ns_b, "eth-b")
            ns_a.run("ip", "addr", "add", "10.99.0.1/24", "dev", "eth-a")
            ns_b.run("ip", "addr", "add", "10.99.0.2/24", "dev", "eth-b")
            for res in (fx.bgp_config(asNumber=64512, logSeverityScreen="Info"),
                        fx.node("node-a", ipv4="10.99.0.1/24"),
                        fx.node("node-b", ipv4="10.99.0.2/24"),
                        fx.pool("pool", "10.244.0.0/16"),
                        fx.affinity("node-a", "10.244.1.0/26")):
                client.create(res)
            a = NodeUnderTest("node-a", ns_a, tmp_path / "a", etcd_clean.endpoint)
            b = NodeUnderTest("node-b", ns_b, tmp_path / "b", etcd_clean.endpoint)
            nodes = [a, b]
            for node in nodes:
                node.start_renderer()
            for node in nodes:
                node.start_bird()

            # The mesh session comes up (node-a, the lower address, is the passive side).
            assert wait_for(lambda: a.established("Mesh_10_99_0_2") and b.established("Mesh_10_99_0_1"), 60), \
                a.details("Mesh_10_99_0_2")
            # node-a's affine block is a blackhole there and a route via node-a on node-b.
            assert "blackhole 10.244.1.0/26" in ns_a.run("ip", "-4", "route", "show", "10.244.1.0/26").stdout
            assert wait_for(lambda: "10.244.1.0/26 via 10.99.0.1" in
                            ns_b.run("ip", "-4", "route", "show", "10.244.1.0/26").stdout, 30), \
                ns_b.run("ip", "-4", "route").stdout
            pids = [n.bird.pid for n in nodes]

            # A new BGPPeer reaches BIRD through a reload.
            client.create(fx.peer("tor", peerIP="10.99.0.3", asNumber=65001))
            assert wait_for(lambda: "Global_10_99_0_3" in a.protocols() and "Global_10_99_0_3" in b.protocols(),
                            30), a.log()
            assert "Neighbor AS:      65001" in a.details("Global_10_99_0_3")

            # A new AS number too; the mesh re-establishes under it.
            config = client.get("BGPConfiguration", "default")
            config.spec["asNumber"] = 64513
            client.update(config)
            assert wait_for(lambda: "Neighbor AS:      64513" in a.details("Mesh_10_99_0_2")
                            and a.established("Mesh_10_99_0_2") and b.established("Mesh_10_99_0_1"), 90), \
                a.details("Mesh_10_99_0_2")
            assert "local as 64513;" in (a.output / "bird.cfg").read_text()

            # The same BIRD processes all along, reloaded over their control sockets.
            assert [n.bird.pid for n in nodes] == pids and all(n.bird.alive() for n in nodes)
            for node in nodes:
                assert node.renderer.poll() is None, node.log()
                assert "BIRD (IPv4) reloaded: " in node.log()
                assert "ERROR" not in node.log(), node.log()
        finally:
            for node in nodes:
                node.stop()
            kv.close()
