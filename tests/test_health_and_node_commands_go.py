"""Calico v3.32.1's own cases for the node's health probe and ``calicoctl node
status|diags``, replayed against ours.

Sources (projectcalico/calico at v3.32.1):
* calicoctl/calicoctl/commands/node/status_test.go: "Parse BIRD peer lines" and
  "Test BIRD Scanner" (run through a scripted BIRD control socket; BIRD itself ends a
  reply with "0000 ", the Go test's bare "0000" is an artefact of its here-document).
* calicoctl/calicoctl/commands/node/status.go printPeers: tablewriter v0.0.5 with its
  defaults, so headings are centred and a long info cell wraps.
* node/pkg/health/health.go: birdcl/sv failures surface as "exit status 1"; birdcl's
  output is quoted whole; node/pkg/health/bird/bird.go: an unrecognised line is quoted.
* calicoctl/calicoctl/commands/node/diags.go: the command order (the container's IP sets
  right after the host's) and getNodeContainerLogs' messages.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from health_fakes import STATUS_OK, FakeBird, FakeSupervisord
from node.cli import calico_node
from test_calicoctl_node_status import CALICO_TABLE
from node.cli.ctl import _node_diags as diags
from node.cli.ctl import _node_status as status
from node.cli.ctl._common import CommandFailed
from node.supervise.health import parse_peer_row as health_peer_row

PREFIX = "calico/node is not ready: "

# -- status_test.go: "Parse BIRD peer lines" ------------------------------------------------

PEER_LINES = [
    ("kernel1  Kernel   master   up     2016-11-21", None),
    ("device1  Device   master   up     2016-11-21", None),
    ("Meshd_172_17_8_102 BGP      master   up     2016-11-21  Established", None),
    ("Mesh_172_17_8_102 BGP      master   up     2016-11-21  Established",
     ("172.17.8.102", "node-to-node mesh", "up", "2016-11-21", "Established", "")),
    ("Node_172_17_80_102 BGP      master   up     2016-11-21  Active    Socket: error",
     ("172.17.80.102", "node specific", "up", "2016-11-21", "Active", "Socket: error")),
    ("Global_172_17_8_133 BGP master down 2016-11-2 Failed",
     ("172.17.8.133", "global", "down", "2016-11-2", "Failed", "")),
]


@pytest.mark.parametrize("line,want", PEER_LINES)
def test_parse_bird_peer_lines(line, want):
    # calicoctl's parser (node status) ...
    peer = status.parse_peer_row(line, ".")
    if want is None:
        assert peer is None
    else:
        ip, kind, state, since, bgp_state, info = want
        assert peer == status.Peer(ip, kind, state, since, bgp_state + (" " + info if info else ""))
    # ... and the probe's copy of it (node/pkg/health/bird/bird.go unmarshalBIRD).
    hp = health_peer_row(line, "4")
    assert (None if hp is None else (hp.peer_ip, hp.peer_type, hp.state, hp.since, hp.bgp_state, hp.info)) == want


# -- status_test.go: "Test BIRD Scanner" -----------------------------------------------------

SCANNER_TABLE = CALICO_TABLE  # (status_test.go's scanner table, as the node status tests have it)


@pytest.fixture
def sock_dir():
    root = Path(tempfile.mkdtemp(prefix="hgo-"))  # short: unix socket paths are limited
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _greeting_and_reply(text: str) -> tuple[str, str]:
    greeting, _, reply = text.partition("\n")
    return greeting + "\n", reply


def _status_section(sock_dir: Path, text: str) -> str:
    greeting, reply = _greeting_and_reply(text)
    out: list[str] = []
    with FakeBird(sock_dir / "bird.ctl", {"show protocols": reply}, greeting=greeting):
        status.bird_peers(4, sock_dir, out.append)
    return "".join(out)


def test_scanner_multiple_valid_and_invalid_lines(sock_dir):
    # The three Calico peers, in order; printPeers draws them with tablewriter's defaults.
    assert _status_section(sock_dir, SCANNER_TABLE) == """
IPv4 BGP status
+--------------+-------------------+-------+------------+----------------------+
| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |         INFO         |
+--------------+-------------------+-------+------------+----------------------+
| 172.17.8.102 | node-to-node mesh | up    | 2016-11-21 | Established          |
| 172.17.8.103 | global            | up    | 2016-11-21 | Established          |
| 172.17.8.104 | node specific     | down  | 2016-11-21 | Failed Socket: error |
+--------------+-------------------+-------+------------+----------------------+
"""


def test_status_table_wraps_long_info_like_tablewriter(sock_dir):
    text = SCANNER_TABLE.replace("Failed  Socket: error", "Active  Socket: Connection refused")
    section = _status_section(sock_dir, text)
    assert "| 172.17.8.104 | node specific     | down  | 2016-11-21 | Active Socket: Connection      |\n" \
           "|              |                   |       |            | refused                        |\n" in section


def test_scanner_rejects_invalid_headings(sock_dir):
    text = SCANNER_TABLE.replace("since       info", "foo       info")
    with pytest.raises(CommandFailed, match="^error executing command: unknown BIRD table output format$"):
        _status_section(sock_dir, text)


def test_scanner_rejects_a_rogue_entry(sock_dir):
    text = ("0001 BIRD 1.5.0 ready.\n2002-name     proto    table    state  since       info\n"
            "1002-kernel1  Kernel   master   up     2016-11-21\n device1  Device   master   up     2016-11-21\n9000\n")
    with pytest.raises(CommandFailed, match="^error executing command: unexpected output line from BIRD$"):
        _status_section(sock_dir, text)


# -- health.go / bird.go -------------------------------------------------------------------

@pytest.fixture
def node_dirs(monkeypatch, sock_dir):
    (sock_dir / "run").mkdir()
    (sock_dir / "lib").mkdir()
    (sock_dir / "lib" / "nodename").write_text("node1")
    for var in list(os.environ):
        if var.startswith(("CALICO_", "FELIX_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("CALICO_RUN_DIR", str(sock_dir / "run"))
    monkeypatch.setenv("CALICO_LIB_DIR", str(sock_dir / "lib"))
    return sock_dir


def _health(capsys, *args: str) -> tuple[int, str]:
    code = calico_node.main(list(args))
    return code, capsys.readouterr().out


def test_probe_quotes_a_rogue_line_as_bird_go_does(node_dirs, capsys):
    # bird.go scanBIRDPeers: "unexpected output line from BIRD: '%s'", wrapped by GetPeers.
    _, reply = _greeting_and_reply(SCANNER_TABLE.replace("0000 \n", "9000\n"))
    with FakeBird(node_dirs / "run" / "bird.ctl", {"show protocols": reply}):
        assert _health(capsys, "-bird-ready") == (
            1, f"{PREFIX}BIRD is not ready: error executing command: unexpected output line from BIRD: '9000'\n")


def test_probe_graceful_restart_rogue_line(node_dirs, capsys):
    # bird.go GRInProgress: the same wording, not wrapped.
    _, reply = _greeting_and_reply(SCANNER_TABLE.replace("Failed", "Established"))
    with FakeBird(node_dirs / "run" / "bird.ctl", {"show protocols": reply, "show status": "1000-BIRD 1.6.8\n7777\n"}):
        assert _health(capsys, "-bird-ready") == (
            1, f"{PREFIX}BIRD is not ready: unexpected output line from BIRD: '7777'\n")


def test_bird_live_missing_service_is_sv_exit_status(node_dirs, capsys):
    # health.go checkService: `sv status` of a missing service fails; the error is exec's.
    with FakeSupervisord(node_dirs / "run" / "supervisor.sock", {"confd": "RUNNING"}):
        assert _health(capsys, "-bird-live") == (1, f"{PREFIX}bird/confd is not live: exit status 1\n")


def test_bird_live_birdcl_failure_is_exit_status(node_dirs, capsys):
    # health.go: birdcl cannot reach BIRD -> exit status 1.
    with FakeSupervisord(node_dirs / "run" / "supervisor.sock", {"confd": "RUNNING", "bird6": "RUNNING"}):
        assert _health(capsys, "-bird6-live") == (1, f"{PREFIX}bird6 is not live: exit status 1\n")


def test_bird_live_bad_response_quotes_birdcl_output(node_dirs, capsys):
    # health.go: "bad response from bird: %s" with birdcl's whole output (each line ends
    # in a newline; code 0000 lines are not printed), then Run's own newline.
    with FakeSupervisord(node_dirs / "run" / "supervisor.sock", {"confd": "RUNNING", "bird": "RUNNING"}), \
            FakeBird(node_dirs / "run" / "bird.ctl", {"show status": STATUS_OK}, greeting="0001 Gobgp ready.\n"):
        code, out = _health(capsys, "-bird-live")
    assert code == 1
    assert out == (f"{PREFIX}bad response from bird: Gobgp ready.\nBIRD 1.6.8\nRouter ID is 10.0.0.1\n"
                   "Current server time is 2024-01-01 00:00:10\nLast reboot on 2024-01-01 00:00:00\n"
                   "Last reconfiguration on 2024-01-01 00:00:00\nDaemon is up and running\n\n")


# -- diags.go --------------------------------------------------------------------------------

def test_diags_order_and_docker_messages(monkeypatch, tmp_path):
    ran: list[str] = []
    monkeypatch.setattr(diags.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "calico1"))
    (tmp_path / "calico1").mkdir()
    monkeypatch.setattr(diags, "run_command", lambda cmd, directory, out: ran.append(cmd.filename or cmd.info))
    monkeypatch.setattr(diags, "_docker", lambda: (None, "cannot reach the Docker daemon: nope"))
    monkeypatch.setattr(diags, "container_ipset", lambda client, reason, directory, out: ran.append("ipset_container"))
    out: list[str] = []
    diags.diags(str(tmp_path / "no-logs"), out.append)
    # diags.go runDiags: the fixed list, ipset_container right after ipsets, netstat/ss last.
    assert ran[:13] == ["date", "hostname", "ipv4_route", "ipv6_route", "ipv4_addr", "ipv6_addr", "nft_ruleset",
                        "ipv4_tables", "ipv6_tables", "ipsets", "ipset_container", "journalctl_calico_node",
                        "Dumping felix stats"]
    assert ran[13] in ("netstat", "ss") and len(ran) == 14
    text = "".join(out)
    assert f"Error copying log files: stat {tmp_path / 'no-logs'}: no such file or directory\n" in text
    # getNodeContainerLogs: a failed `docker ps` is "Could not run docker command: ...".
    assert "Could not run docker command: cannot reach the Docker daemon: nope\n" in text
    assert text.endswith("If required, you can upload the diagnostics bundle to a file sharing service.\n")
    assert "\nDiags saved to " + str(tmp_path / "calico1") + "/diags-" in text


class _Container:
    def __init__(self, name: str):
        self.name = name
        self.attrs = {"Created": "2024-05-01T10:00:00Z"}

    def logs(self, stdout: bool, stderr: bool) -> bytes:
        return f"{self.name} log\n".encode()


class _Client:
    class containers:  # noqa: N801 (docker's attribute)
        @staticmethod
        def list(all: bool, filters: dict) -> list[_Container]:  # noqa: A002
            return [_Container("calico-node"), _Container("k8s_POD_calico-node-x")]


def test_container_logs_message(tmp_path):
    out: list[str] = []
    diags.container_logs(_Client(), "", tmp_path / "logs", out.append)
    assert out == ["Copying logs from Calico containers\n"]
    assert (tmp_path / "logs" / "calico-node.log").read_bytes() == b"calico-node log\n"
    assert not (tmp_path / "logs" / "k8s_POD_calico-node-x.log").exists()
