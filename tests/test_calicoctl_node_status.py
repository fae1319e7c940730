"""``calicoctl node status``: the policy agent check, BIRD's peers as calicoctl shows them.

The parsing and table cases replay calicoctl's own (status_test.go) against a scripted
control socket; the last test runs real BIRD and BIRD6 in two network namespaces.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from confd_bird import BirdProcess, stop_process, wait_for
from netns import Namespace, veth_pair
from node import bird
from node.cli.ctl import _node_status as status
from node.cli.ctl._common import CommandFailed

FELIX = ["calico-node", "-felix"]
BIRD4 = ["bird", "-R", "-s", "/var/run/calico/bird.ctl"]
BIRD6 = ["bird6", "-R", "-s", "/var/run/calico/bird6.ctl"]

CALICO_TABLE = """0001 BIRD 1.5.0 ready.
2002-name     proto    table    state  since       info
1002-kernel1  Kernel   master   up     2016-11-21
 device1  Device   master   up     2016-11-21
 direct1  Direct   master   up     2016-11-21
 Mesh_172_17_8_102 BGP      master   up     2016-11-21  Established
 Global_172_17_8_103 BGP      master   up     2016-11-21  Established
 Node_172_17_8_104 BGP      master   down     2016-11-21  Failed  Socket: error
0000 
We never get here
"""


class ScriptedBird:
    """A control socket that greets like BIRD and answers any command with ``reply``."""

    def __init__(self, path: Path, text: str):
        greeting, _, reply = text.partition("\n")
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.commands: list[str] = []
        self.thread = threading.Thread(target=self._serve, args=(greeting + "\n", reply), daemon=True)
        self.thread.start()

    def _serve(self, greeting: str, reply: str) -> None:
        conn, _ = self.server.accept()
        with conn:
            conn.sendall(greeting.encode())
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(1024)
                if not chunk:
                    return
                data += chunk
            self.commands.append(data.decode().strip())
            conn.sendall(reply.encode())

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


@pytest.fixture
def run_dirs(tmp_path, monkeypatch):
    """The node's run directory, and an empty stand-in for /var/run/bird."""
    run_dir, fallback = tmp_path / "run", tmp_path / "var-run-bird"
    run_dir.mkdir()
    fallback.mkdir()
    monkeypatch.setattr(status, "FALLBACK_RUN_DIR", fallback)
    return run_dir, fallback


def _status(run_dir: Path, argvs: list[list[str]]) -> str:
    out: list[str] = []
    status.node_status(run_dir, out.append, argvs=lambda: argvs)
    return "".join(out)


@pytest.mark.parametrize("row,peer", [
    ("kernel1  Kernel   master   up     2016-11-21", None),
    ("device1  Device   master   up     2016-11-21", None),
    ("Meshd_172_17_8_102 BGP      master   up     2016-11-21  Established", None),
    ("Mesh_172_17_8_102 BGP      master   up     2016-11-21  Established",
     status.Peer("172.17.8.102", "node-to-node mesh", "up", "2016-11-21", "Established")),
    ("Node_172_17_80_102 BGP      master   up     2016-11-21  Active    Socket: error",
     status.Peer("172.17.80.102", "node specific", "up", "2016-11-21", "Active Socket: error")),
    ("Global_172_17_8_133 BGP master down 2016-11-2 Failed",
     status.Peer("172.17.8.133", "global", "down", "2016-11-2", "Failed")),
    ("Global_10_0_0_1_port_1790 BGP master start 10:00:00 Connect",
     status.Peer("10.0.0.1.port.1790", "global", "start", "10:00:00", "Connect")),
])
def test_peer_rows(row, peer):
    assert status.parse_peer_row(row, ".") == peer


def test_ipv6_peer_names_use_colons():
    peer = status.parse_peer_row("Mesh_fd80_24e2__2 BGP master up 09:13:45 Established", ":")
    assert peer.address == "fd80:24e2::2"


def test_table_from_bird(run_dirs):
    run_dir, _ = run_dirs
    fake = ScriptedBird(run_dir / "bird.ctl", CALICO_TABLE)
    try:
        text = _status(run_dir, [FELIX, BIRD4])
    finally:
        fake.close()
    assert fake.commands == ["show protocols"]
    assert text == """Calico process is running.

IPv4 BGP status
+--------------+-------------------+-------+------------+----------------------+
| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |         INFO         |
+--------------+-------------------+-------+------------+----------------------+
| 172.17.8.102 | node-to-node mesh | up    | 2016-11-21 | Established          |
| 172.17.8.103 | global            | up    | 2016-11-21 | Established          |
| 172.17.8.104 | node specific     | down  | 2016-11-21 | Failed Socket: error |
+--------------+-------------------+-------+------------+----------------------+

INFO: BIRDv6 process: 'bird6' is not running.

"""


def test_no_peers(run_dirs):
    run_dir, _ = run_dirs
    fake4 = ScriptedBird(run_dir / "bird.ctl", "0001 BIRD 1.6.8 ready.\n2002-name proto table state since info\n"
                                                "1002-device1 Device master up 10:00:00\n0000 \n")
    fake6 = ScriptedBird(run_dir / "bird6.ctl", "0001 BIRD 1.6.8 ready.\n2002-name proto table state since info\n"
                                                 "0000 \n")
    try:
        text = _status(run_dir, [FELIX, BIRD4, BIRD6])
    finally:
        fake4.close()
        fake6.close()
    assert text == ("Calico process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n\n"
                    "IPv6 BGP status\nNo IPv6 peers found.\n\n")


def test_unknown_headings(run_dirs):
    run_dir, _ = run_dirs
    fake = ScriptedBird(run_dir / "bird.ctl", CALICO_TABLE.replace("since ", "foo   "))
    try:
        with pytest.raises(CommandFailed, match="^error executing command: unknown BIRD table output format$"):
            _status(run_dir, [FELIX, BIRD4])
    finally:
        fake.close()


def test_rogue_line(run_dirs):
    run_dir, _ = run_dirs
    fake = ScriptedBird(run_dir / "bird.ctl", "0001 BIRD 1.5.0 ready.\n2002-name proto table state since info\n"
                                              "1002-kernel1 Kernel master up 2016-11-21\n9000\n")
    try:
        with pytest.raises(CommandFailed, match="^error executing command: unexpected output line from BIRD$"):
            _status(run_dirs[0], [FELIX, BIRD4])
    finally:
        fake.close()


def test_socket_in_the_fallback_directory(run_dirs):
    run_dir, fallback = run_dirs
    fake = ScriptedBird(fallback / "bird6.ctl", CALICO_TABLE.replace("_172_17_8_10", "_fd00__"))
    try:
        text = _status(run_dir, [FELIX, BIRD6])
    finally:
        fake.close()
    assert text.startswith("Calico process is running.\n\nINFO: BIRDv4 process: 'bird' is not running.\n\n"
                           "IPv6 BGP status\n+")
    assert "| fd00::2      | node-to-node mesh |" in text


def test_no_socket_at_all(run_dirs):
    run_dir, fallback = run_dirs
    assert _status(run_dir, [FELIX, BIRD4]) == (
        "Calico process is running.\n\nIPv4 BGP status\n"
        f"Error querying BIRD: unable to connect to BIRDv4 socket: dial unix {fallback}/bird.ctl: connect: "
        "no such file or directory\nINFO: BIRDv6 process: 'bird6' is not running.\n\n")


@pytest.mark.parametrize("argv", [["calico-felix"], ["calico-node", "-felix"], ["calico-node", "start"],
                                  ["/usr/bin/python3", "-felix"]])
def test_agent_found_as_calicoctl_finds_it(run_dirs, argv):
    assert _status(run_dirs[0], [["sshd"], argv]) == (
        "Calico process is running.\n\nThe BGP backend process (BIRD) is not running.\n\n")


@pytest.mark.parametrize("argvs", [[], [["sshd"], ["bird"]], [["/usr/bin/calico-node", "felix"]],
                                   [["python3", "/usr/local/bin/calico-node", "-felix"]]])
def test_agent_not_running(run_dirs, argvs):
    with pytest.raises(CommandFailed, match=r"^Calico process is not running\.$"):
        _status(run_dirs[0], argvs)


def test_needs_root(monkeypatch, capsys):
    from node.cli.calicoctl import main
    from node.cli.ctl import _node_run

    monkeypatch.setattr(_node_run.os, "geteuid", lambda: 1000)
    assert main(["node", "status"]) == 1
    assert capsys.readouterr().out == "Need super user privileges: Operation not permitted\n"


# --------------------------------------------------------------------------------------
# Real BIRD and BIRD6 in two namespaces.

A_BIRD = """router id 10.98.0.1;
protocol device { scan time 2; }
protocol bgp Mesh_10_98_0_2 { local 10.98.0.1 as 64512; neighbor 10.98.0.2 as 64512; connect retry time 1; }
protocol bgp Node_10_98_0_3 { local 10.98.0.1 as 64512; neighbor 10.98.0.3 as 64513; connect retry time 1; }
protocol bgp Global_10_98_0_5_port_1790 { local 10.98.0.1 as 64512; neighbor 10.98.0.5 port 1790 as 64512;
  connect retry time 1; }
"""
B_BIRD = """router id 10.98.0.2;
protocol bgp Mesh_10_98_0_1 { local 10.98.0.2 as 64512; neighbor 10.98.0.1 as 64512; connect retry time 1; }
"""
A_BIRD6 = """router id 10.98.0.1;
protocol bgp Mesh_fd00_98__2 { local fd00:98::1 as 64512; neighbor fd00:98::2 as 64512; connect retry time 1; }
"""
B_BIRD6 = """router id 10.98.0.2;
protocol bgp Mesh_fd00_98__1 { local fd00:98::2 as 64512; neighbor fd00:98::1 as 64512; connect retry time 1; }
"""
ROW = re.compile(r"^\| (\S+) +\| (.+?) +\| (\S+) +\| (\d\d:\d\d:\d\d) \| (.+?) +\|$")


def _established(sock: Path, name: str) -> bool:
    try:
        protocols = {p.name: p for p in bird.show_protocols(sock)}
    except bird.BirdError:
        return False
    return name in protocols and protocols[name].state == "up" and protocols[name].info.startswith("Established")


def _calicoctl() -> list[str]:
    script = Path(sys.executable).parent / "calicoctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "node.cli.calicoctl"]


def test_status_of_real_bird_peers(tmp_path):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    run_a.mkdir()
    run_b.mkdir()
    for path, text in ((run_a / "bird.cfg", A_BIRD), (run_b / "bird.cfg", B_BIRD),
                       (run_a / "bird6.cfg", A_BIRD6), (run_b / "bird6.cfg", B_BIRD6)):
        path.write_text(text)
    birds: list[BirdProcess] = []
    # A stand-in for the policy agent: calicoctl only looks at the argv.
    agent = subprocess.Popen(["bash", "-c", "exec -a calico-node sleep 300"])
    try:
        with Namespace("nsta") as ns_a, Namespace("nstb") as ns_b:
            veth_pair(ns_a, "eth0", ns_b, "eth0")
            ns_a.run("ip", "addr", "add", "10.98.0.1/24", "dev", "eth0")
            ns_a.run("ip", "addr", "add", "fd00:98::1/64", "dev", "eth0", "nodad")
            ns_b.run("ip", "addr", "add", "10.98.0.2/24", "dev", "eth0")
            ns_b.run("ip", "addr", "add", "10.98.0.5/24", "dev", "eth0")
            ns_b.run("ip", "addr", "add", "fd00:98::2/64", "dev", "eth0", "nodad")
            for ns, run in ((ns_a, run_a), (ns_b, run_b)):
                birds.append(BirdProcess(ns, run / "bird.cfg", run / "bird.ctl").start())
                birds.append(BirdProcess(ns, run / "bird6.cfg", run / "bird6.ctl", binary="bird6").start())
            assert wait_for(lambda: _established(run_a / "bird.ctl", "Mesh_10_98_0_2")
                            and _established(run_a / "bird6.ctl", "Mesh_fd00_98__2"), 60), \
                bird.show_protocols(run_a / "bird.ctl")

            env = dict(os.environ, CALICO_RUN_DIR=str(run_a))
            run = subprocess.run([*_calicoctl(), "node", "status"], env=env, capture_output=True, text=True,
                                 timeout=60)
    finally:
        for proc in birds:
            proc.stop()
        stop_process(agent, grace=5)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert text.startswith("Calico process is running.\n\nIPv4 BGP status\n+"), text
    v4, _, v6 = text.partition("\nIPv6 BGP status\n")
    assert text.endswith("+\n\n")

    def rows(section: str) -> dict[str, tuple[str, ...]]:
        lines = section.strip().splitlines()
        borders = [line for line in lines if line.startswith("+")]
        assert len(borders) == 3 and len(set(borders)) == 1, section
        table = [line for line in lines if line.startswith("|")]
        # tablewriter's defaults, as calicoctl: headings centred, a long info cell wrapped
        # onto continuation lines (first cell blank).
        assert re.match(r"^\| +PEER ADDRESS +\| +PEER TYPE +\| +STATE +\| +SINCE +\| +INFO +\|$", table[0]), table[0]
        assert all(len(line) == len(borders[0]) for line in table), section
        out = {}
        for line in table[1:]:
            if line.startswith("|  "):
                continue
            match = ROW.match(line)
            assert match, line
            out[match.group(1)] = match.groups()[1:]
        return out

    peers4 = rows(v4[v4.index("+"):])
    assert list(peers4) == ["10.98.0.2", "10.98.0.3", "10.98.0.5.port.1790"]
    assert peers4["10.98.0.2"][:2] == ("node-to-node mesh", "up") and peers4["10.98.0.2"][3] == "Established"
    assert peers4["10.98.0.3"][:2] == ("node specific", "start")
    assert peers4["10.98.0.3"][3].split()[0] in ("Idle", "Connect", "Active")
    assert peers4["10.98.0.5.port.1790"][:2] == ("global", "start")
    assert peers4["10.98.0.5.port.1790"][3].split()[0] in ("Idle", "Connect", "Active")
    peers6 = rows(v6)
    assert list(peers6) == ["fd00:98::2"]
    assert peers6["fd00:98::2"][:2] == ("node-to-node mesh", "up") and peers6["fd00:98::2"][3] == "Established"
