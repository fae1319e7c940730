"""The CalicoNodeStatus reporter's BIRD side: the commands it sends over a scripted
control socket, then real BIRD and BIRD6 (Debian's 1.6) with protocols named as confd
names them, read by ``BirdQuery``, printed by ``calico-node show-status`` and reported
into etcd by ``calico-node status-reporter``."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from confd_bird import BirdProcess, stop_process, wait_for
from netns import Namespace, veth_pair
from node import bird
from node.model.resource import Resource
from node.nodestatus import birdtext as bt
from node.nodestatus.birdquery import BirdQuery, BirdQueryError
from node.nodestatus.status import populate

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")


class ScriptedBird:
    """A control socket that greets as BIRD does and answers each command from
    ``replies`` (command -> reply text), any number of connections and commands."""

    def __init__(self, path: Path, replies: dict[str, str], greeting: str = "0001 BIRD 1.6.8 ready.\n"):
        self.path = path
        self.replies = replies
        self.greeting = greeting
        self.sessions: list[list[str]] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            commands: list[str] = []
            self.sessions.append(commands)
            with conn:
                conn.sendall(self.greeting.encode())
                buffer = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buffer += chunk
                    while b"\n" in buffer:
                        line, _, buffer = buffer.partition(b"\n")
                        command = line.decode()
                        commands.append(command)
                        conn.sendall(self.replies.get(command, "9001 syntax error\n").encode())

    def close(self) -> None:
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        except OSError:
            pass
        self.server.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


SHOW_PROTOCOLS = ("2002-name     proto    table    state  since       info\n"
                  "1002-kernel1  Kernel   master   up     10:00:00\n"
                  " Mesh_10_0_0_2 BGP      master   up     10:00:01    Established\n"
                  " Node_10_0_0_3_port_1790 BGP      master   start  10:00:01    Active        Socket: Connection refused\n"
                  "0000 \n")


def _all(state: str, address: str) -> str:
    return ("2002-name     proto    table    state  since       info\n"
            "1002-x BGP master up 10:00:01 Established\n"
            "1006-  Description:    Connection to BGP peer\n"
            "   Preference:     100\n"
            f"   BGP state:          {state}\n"
            f"     Neighbor address: {address}\n"
            "     Neighbor AS:      64512\n"
            "0000 \n")


def test_queries_send_calicos_commands(tmp_path):
    fake = ScriptedBird(tmp_path / "bird.ctl", {
        "show status": ("1000-BIRD 1.6.8\n1011-Router ID is 10.0.0.1\n Current server time is 2024-05-01 10:00:02\n"
                        " Last reboot on 2024-05-01 10:00:00\n Last reconfiguration on 2024-05-01 10:00:00\n"
                        "0013 Daemon is up and running\n"),
        "show protocols": SHOW_PROTOCOLS,
        "show protocols all Mesh_10_0_0_2": _all("Established", "10.0.0.2"),
        "show protocols all Node_10_0_0_3_port_1790": _all("Active", "10.0.0.3"),
        "show route": ("1007-10.0.0.0/24        dev eth0 [direct1 10:00:00] * (240)\n"
                       " 10.65.1.0/26       via 10.0.0.2 on eth0 [Mesh_10_0_0_2 10:00:02] * (100/0) [i]\n"
                       "0000 \n"),
    })
    query = BirdQuery(tmp_path)

    def ipv4_only(family, cls):
        if family == "6":
            raise bt.BirdUnavailable("no BIRD6")
        return query(family, cls)

    try:
        status = populate(None, ["Agent", "BGP", "Routes"], ipv4_only).status
    finally:
        fake.close()
    # One connection per query, each with Calico's commands.
    assert fake.sessions == [["show status"],
                             ["show protocols", "show protocols all Mesh_10_0_0_2",
                              "show protocols all Node_10_0_0_3_port_1790"],
                             ["show route"]]
    assert status["agent"]["birdV4"] == {"state": "Ready", "version": "1.6.8", "routerID": "10.0.0.1",
                                         "lastBootTime": "2024-05-01 10:00:00",
                                         "lastReconfigurationTime": "2024-05-01 10:00:00"}
    assert status["bgp"]["peersV4"] == [
        {"peerIP": "10.0.0.2", "type": "NodeMesh", "state": "Established", "since": "10:00:01"},
        {"peerIP": "10.0.0.3", "type": "NodePeer", "state": "Active", "since": "10:00:01"}]
    assert (status["bgp"]["numberEstablishedV4"], status["bgp"]["numberNotEstablishedV4"]) == (1, 1)
    assert status["routes"]["routesV4"][1] == {"type": "FIB", "destination": "10.65.1.0/26", "gateway": "10.0.0.2",
                                               "interface": "eth0",
                                               "learnedFrom": {"sourceType": "NodeMesh", "peerIP": "10.0.0.2"}}


def test_unusable_answers_fail_the_query(tmp_path):
    fake = ScriptedBird(tmp_path / "bird.ctl", {"show protocols": "2002-name proto table state foo info\n0000 \n",
                                                "show route": "9001 Syntax error\n"})
    try:
        query = BirdQuery(tmp_path)
        with pytest.raises(BirdQueryError, match="^Error executing command: unknown BIRD table output format$"):
            query("4", "BGP")
        with pytest.raises(BirdQueryError, match="^Error executing command: unexpected output line from BIRD: "
                                                 "9001 Syntax error$"):
            query("4", "Routes")
        with pytest.raises(bt.BirdUnavailable, match=r"^Error querying BIRD: unable to connect to BIRDv6 socket: "
                                                     rf"dial unix {tmp_path}/bird6.ctl: connect: no such file"):
            query("6", "Agent")
    finally:
        fake.close()


def test_a_silent_bird_times_out(tmp_path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "bird.ctl"))
    server.listen(1)  # accepts (the kernel does) but never greets
    try:
        started = time.monotonic()
        with pytest.raises(BirdQueryError, match="^Error executing command: reading from BIRD"):
            BirdQuery(tmp_path, timeout=0.5)("4", "Agent")
        assert time.monotonic() - started < 5
    finally:
        server.close()


# --------------------------------------------------------------------------------------
# Real BIRD and BIRD6.

A_BIRD = """router id 10.97.0.1;
protocol kernel { learn; persist; scan time 2; import all; export none; }
protocol device { scan time 2; }
protocol direct { interface "eth0"; }
protocol static { route 10.97.64.0/26 blackhole; }
protocol bgp Mesh_10_97_0_2 { local 10.97.0.1 as 64512; neighbor 10.97.0.2 as 64512; connect retry time 1;
  import all; export all; }
protocol bgp Node_10_97_0_3 { local 10.97.0.1 as 64512; neighbor 10.97.0.3 as 64513; connect retry time 1; }
"""
B_BIRD = """router id 10.97.0.2;
protocol device { scan time 2; }
protocol static { route 10.97.128.0/26 blackhole; }
protocol bgp Mesh_10_97_0_1 { local 10.97.0.2 as 64512; neighbor 10.97.0.1 as 64512; connect retry time 1;
  import all; export all; }
"""
A_BIRD6 = """router id 10.97.0.1;
protocol device { scan time 2; }
protocol direct { interface "eth0"; }
protocol bgp Node_fd00_97__9 { local fd00:97::1 as 64512; neighbor fd00:97::9 as 64513; connect retry time 1; }
"""


def _established(sock: Path, name: str) -> bool:
    try:
        protocols = {p.name: p for p in bird.show_protocols(sock)}
    except bird.BirdError:
        return False
    return name in protocols and protocols[name].info.startswith("Established")


def _learned(sock: Path, prefix: str) -> bool:
    try:
        with bird.BirdClient(sock) as client:
            return prefix in client.command("show route").text
    except bird.BirdError:
        return False


@pytest.fixture
def real_birds(tmp_path):
    """Node A (bird and bird6, run dir ``a``) meshed with node B (bird); yields A's run dir."""
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    run_a.mkdir()
    run_b.mkdir()
    for path, text in ((run_a / "bird.cfg", A_BIRD), (run_a / "bird6.cfg", A_BIRD6), (run_b / "bird.cfg", B_BIRD)):
        path.write_text(text)
    birds: list[BirdProcess] = []
    try:
        with Namespace("nsra") as ns_a, Namespace("nsrb") as ns_b:
            veth_pair(ns_a, "eth0", ns_b, "eth0")
            ns_a.run("ip", "addr", "add", "10.97.0.1/24", "dev", "eth0")
            ns_a.run("ip", "addr", "add", "fd00:97::1/64", "dev", "eth0", "nodad")
            ns_b.run("ip", "addr", "add", "10.97.0.2/24", "dev", "eth0")
            birds.append(BirdProcess(ns_a, run_a / "bird.cfg", run_a / "bird.ctl").start())
            birds.append(BirdProcess(ns_a, run_a / "bird6.cfg", run_a / "bird6.ctl", binary="bird6").start())
            birds.append(BirdProcess(ns_b, run_b / "bird.cfg", run_b / "bird.ctl").start())
            assert wait_for(lambda: _established(run_a / "bird.ctl", "Mesh_10_97_0_2")
                            and _learned(run_a / "bird.ctl", "10.97.128.0/26"), 60), \
                bird.show_protocols(run_a / "bird.ctl")
            yield run_a
    finally:
        for proc in birds:
            proc.stop()


def _check_status(status: dict) -> None:
    v4, v6 = status["agent"]["birdV4"], status["agent"]["birdV6"]
    assert (v4["state"], v4["version"], v4["routerID"]) == ("Ready", "1.6.8", "10.97.0.1"), v4
    assert (v6["state"], v6["version"], v6["routerID"]) == ("Ready", "1.6.8", "10.97.0.1"), v6
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", v4["lastBootTime"]), v4
    bgp = status["bgp"]
    peers = {p["peerIP"]: p for p in bgp["peersV4"]}
    assert peers["10.97.0.2"]["type"] == "NodeMesh" and peers["10.97.0.2"]["state"] == "Established"
    assert peers["10.97.0.3"]["type"] == "NodePeer"
    assert peers["10.97.0.3"]["state"] in ("Idle", "Connect", "Active")
    assert (bgp["numberEstablishedV4"], bgp["numberNotEstablishedV4"]) == (1, 1)
    assert [p["peerIP"] for p in bgp["peersV6"]] == ["fd00:97::9"] and bgp["peersV6"][0]["type"] == "NodePeer"
    assert (bgp["numberEstablishedV6"], bgp["numberNotEstablishedV6"]) == (0, 1)
    routes = {r["destination"]: r for r in status["routes"]["routesV4"]}
    assert routes["10.97.128.0/26"] == {"type": "FIB", "destination": "10.97.128.0/26", "gateway": "10.97.0.2",
                                        "interface": "eth0",
                                        "learnedFrom": {"sourceType": "NodeMesh", "peerIP": "10.97.0.2"}}
    assert routes["10.97.64.0/26"] == {"type": "FIB", "destination": "10.97.64.0/26", "gateway": "N/A",
                                       "interface": "blackhole", "learnedFrom": {"sourceType": "Static"}}
    assert routes["10.97.0.0/24"]["learnedFrom"] == {"sourceType": "Direct"}
    routes6 = {r["destination"]: r for r in status["routes"]["routesV6"]}
    assert routes6["fd00:97::/64"]["interface"] == "eth0"


def test_real_bird(real_birds, etcd_clean_config, client):
    run_a = real_birds
    _check_status(populate(None, ["Agent", "BGP", "Routes"], BirdQuery(run_a)).status)

    env = dict(os.environ, CALICO_RUN_DIR=str(run_a))
    shown = subprocess.run([CALICO_NODE, "-show-status"], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for heading in ("bird v4 status", "bird v4 BGP peers", "bird v4 routes", "bird v6 status", "bird v6 BGP peers",
                    "bird v6 routes"):
        assert f"\n{heading}\n+" in text, text
    assert re.search(r"^\| true +\| 1\.6\.8 +\| 10\.97\.0\.1 +\|", text, re.M), text
    assert re.search(r"^\| 10\.97\.0\.2 +\| Mesh +\| up +\| \S+ +\| Established +\|$", text, re.M), text
    assert re.search(r"^\| 10\.97\.128\.0/26 +\| 10\.97\.0\.2 +\| eth0 +\| Mesh_10_97_0_2 +\| \* +\|$", text, re.M)
    assert text.endswith("+\n\n\n")

    # The reporter role, as node-services runs it, against real etcd.
    client.create(Resource("CalicoNodeStatus", {"name": "node-a-status"},
                           {"node": "node-a", "classes": ["Agent", "BGP", "Routes"], "updatePeriodSeconds": 1}))
    client.create(Resource("CalicoNodeStatus", {"name": "node-b-status"},
                           {"node": "node-b", "classes": ["Agent"], "updatePeriodSeconds": 1}))
    log_path = run_a / "reporter.log"
    env.update(ETCD_ENDPOINTS=etcd_clean_config.etcd_endpoints[0], NODENAME="node-a", DATASTORE_TYPE="etcdv3")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([CALICO_NODE, "-status-reporter"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        status = wait_for(lambda: client.get("CalicoNodeStatus", "node-a-status").status
                          if client.get("CalicoNodeStatus", "node-a-status").status.get("lastUpdated") else None, 30)
        assert status, log_path.read_text()
        _check_status(status)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", status["lastUpdated"])
        client.delete("CalicoNodeStatus", "node-a-status")
        assert wait_for(lambda: "CalicoNodeStatus(node-a-status): stopped reporting" in log_path.read_text(), 10), \
            log_path.read_text()
        other = client.get("CalicoNodeStatus", "node-b-status")
        assert other.status["lastUpdated"] is None and other.status["agent"] == {"birdV4": {}, "birdV6": {}}
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(15) == 0, log_path.read_text()
    finally:
        stop_process(proc, grace=5)
    stored = json.loads(client.kv.get("/calico/resources/v3/projectcalico.org/caliconodestatuses/node-b-status").value)
    assert stored["spec"] == {"node": "node-b", "classes": ["Agent"], "updatePeriodSeconds": 1}
