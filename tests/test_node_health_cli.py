"""``calico-node health`` against stand-ins for Felix, BIRD and supervisord: Calico's
rules, messages and exit codes for every check, in both spellings of the flags."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from health_fakes import STATUS_GR, STATUS_OK, FakeBird, FakeFelix, FakeSupervisord, protocols_reply
from node.cli import calico_node

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "calico/node is not ready: "

MESH_UP = "Mesh_10_0_0_2 BGP      master   up     2024-01-01  Established"
MESH_DOWN = "Mesh_10_0_0_3 BGP      master   start  2024-01-01  Active        Socket: Connection refused"
GLOBAL_DOWN = "Global_10_0_0_9 BGP    master   start  2024-01-01  Connect"
NOT_CALICO = "peer_x   BGP      master   start  2024-01-01  Active"
WORKLOAD = "Local_Workload_10_0_0_7 BGP master start 2024-01-01 Idle"


@pytest.fixture
def node_dirs(monkeypatch):
    """A short-pathed run/lib directory pair (unix socket paths are limited), with a
    nodename file written now, as startup writes it."""
    root = Path(tempfile.mkdtemp(prefix="hc-"))
    (root / "run").mkdir()
    (root / "lib").mkdir()
    (root / "lib" / "nodename").write_text("node1")
    for var in list(os.environ):
        if var.startswith(("CALICO_", "FELIX_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("CALICO_RUN_DIR", str(root / "run"))
    monkeypatch.setenv("CALICO_LIB_DIR", str(root / "lib"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def health(capsys, *args: str) -> tuple[int, str]:
    code = calico_node.main(list(args))
    return code, capsys.readouterr().out


def age_nodename(root: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(root / "lib" / "nodename", (past, past))


# -- arguments ---------------------------------------------------------------------------

def test_no_checks_is_an_error(node_dirs, capsys):
    code, out = health(capsys, "health")
    assert code == 1
    assert out == ("calico/node check error: must specify at least one of -bird-live, -bird6-live, "
                   "-felix-live, -bird, -bird6, or -felix\n")


def test_false_flags_select_nothing(node_dirs, capsys):
    code, out = health(capsys, "health", "-felix-ready=false", "--bird-ready=0")
    assert code == 1 and out.startswith("calico/node check error: must specify")


def test_bad_threshold_is_reported(node_dirs, capsys):
    code, out = health(capsys, "health", "-bird-ready", "-threshold-time=soon")
    assert (code, out) == (1, 'invalid value "soon" for flag -threshold-time: parse error\n')


def test_bad_boolean_is_a_usage_error(node_dirs, capsys):
    with pytest.raises(SystemExit) as exc:
        calico_node.main(["health", "-felix-ready=maybe"])
    assert exc.value.code == 2
    assert 'invalid boolean value "maybe" for -felix-ready' in capsys.readouterr().err


def test_non_numeric_felix_port_fails_like_calico(node_dirs, capsys, monkeypatch):
    monkeypatch.setenv("FELIX_HEALTHPORT", "ninety")
    code = calico_node.main(["health", "-felix-live"])
    assert code == 2
    assert 'Failed to parse value for port "ninety"' in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["health", "--felix-ready", "--felix-live"],
    ["health", "-felix-ready", "-felix-live"],
    ["-felix-ready", "-felix-live"],          # Calico's DaemonSet form: no subcommand
    ["--felix-ready=true", "-felix-live"],
])
def test_translate_legacy_spellings(argv):
    assert calico_node.translate_legacy(argv)[0] == "health"


def test_felix_alias():
    assert calico_node.translate_legacy(["-felix"]) == ["felix"]
    assert calico_node.translate_legacy(["felix", "--dry-run"]) == ["felix", "--dry-run"]


# -- Felix -------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["--", "-"])
def test_felix_ready_and_live(node_dirs, capsys, monkeypatch, spelling):
    with FakeFelix() as felix:
        monkeypatch.setenv("FELIX_HEALTHPORT", str(felix.port))
        assert health(capsys, "health", f"{spelling}felix-ready", f"{spelling}felix-live") == (0, "")
        felix.status["/readiness"] = 503
        assert health(capsys, "health", f"{spelling}felix-ready") == (
            1, f"{PREFIX}felix is not ready: readiness probe reporting 503\n")
        assert health(capsys, "health", f"{spelling}felix-live") == (0, "")
        felix.status["/liveness"] = 500
        assert health(capsys, "health", f"{spelling}felix-live") == (
            1, f"{PREFIX}Felix is not live: liveness probe reporting 500\n")
        felix.status["/readiness"] = 302  # 200-399 is OK, as in Calico (redirects not followed)
        assert health(capsys, "health", f"{spelling}felix-ready") == (0, "")


def test_felix_not_listening(node_dirs, capsys, monkeypatch):
    with FakeFelix() as felix:
        port = felix.port
    monkeypatch.setenv("FELIX_HEALTHPORT", str(port))
    code, out = health(capsys, "-felix-ready")
    assert code == 1
    assert out == (f'{PREFIX}felix is not ready: Get "http://localhost:{port}/readiness": '
                   f"dial tcp localhost:{port}: connect: connection refused\n")


# -- BIRD readiness --------------------------------------------------------------------------

def _bird(root: Path, rows: tuple[str, ...] = (), status: str = STATUS_OK, name: str = "bird.ctl", **kw) -> FakeBird:
    return FakeBird(root / "run" / name, {"show protocols": protocols_reply(*rows, **kw), "show status": status})


@pytest.mark.parametrize("rows,age,status,expected,asks_gr", [
    # No Calico peers at all (other protocols and workload peers do not count): ready.
    ((), 0, STATUS_OK, None, False),
    ((NOT_CALICO, WORKLOAD), 0, STATUS_OK, None, False),
    # Just started: every peer must be up...
    ((MESH_UP,), 0, STATUS_OK, None, True),
    ((MESH_UP, MESH_DOWN, GLOBAL_DOWN), 0, STATUS_OK,
     "BIRD is not ready: BGP not established with 10.0.0.3,10.0.0.9", False),
    # ... and no graceful restart may be running.
    ((MESH_UP,), 0, STATUS_GR, "BIRD is not ready: graceful restart in progress", True),
    # Later, one established peer is enough and graceful restart is not looked at.
    ((MESH_UP, MESH_DOWN), 60, STATUS_GR, None, False),
    ((MESH_DOWN, GLOBAL_DOWN), 60, STATUS_OK, "BIRD is not ready: BGP not established with 10.0.0.3,10.0.0.9", False),
])
def test_bird_ready_rules(node_dirs, capsys, rows, age, status, expected, asks_gr):
    age_nodename(node_dirs, age)
    with _bird(node_dirs, rows, status) as bird:
        code, out = health(capsys, "health", "-bird-ready")
    if expected is None:
        assert (code, out) == (0, "")
    else:
        assert (code, out) == (1, f"{PREFIX}{expected}\n")
    assert bird.commands == ["show protocols", "show status"] if asks_gr else ["show protocols"]


def test_threshold_time_moves_the_rule(node_dirs, capsys):
    age_nodename(node_dirs, 10)
    with _bird(node_dirs, (MESH_UP, MESH_DOWN)):
        assert health(capsys, "-bird-ready")[0] == 1                                   # 10 s < 30 s
        assert health(capsys, "-bird-ready", "-threshold-time=5s") == (0, "")          # 10 s > 5 s
        assert health(capsys, "health", "--bird-ready", "--threshold-time", "1m") == (
            1, f"{PREFIX}BIRD is not ready: BGP not established with 10.0.0.3\n")


def test_bird6_ready_uses_the_v6_socket_and_names(node_dirs, capsys):
    rows = ("Mesh_fd00_10__2 BGP master up 2024-01-01 Established", "Node_fd00_10__3 BGP master start 2024-01-01 Idle")
    with _bird(node_dirs, rows, name="bird6.ctl"):
        assert health(capsys, "-bird6-ready") == (1, f"{PREFIX}BIRD6 is not ready: BGP not established with fd00:10::3\n")


@pytest.mark.parametrize("reply,expected", [
    (protocols_reply(MESH_UP, header="name proto table state"), "error executing command: unknown BIRD table output format"),
    (protocols_reply(MESH_UP).replace("0000 ", "8003 No protocols match"),
     "error executing command: unexpected output line from BIRD: '8003 No protocols match'"),
])
def test_bird_output_problems(node_dirs, capsys, reply, expected):
    with FakeBird(node_dirs / "run" / "bird.ctl", {"show protocols": reply}):
        assert health(capsys, "-bird-ready") == (1, f"{PREFIX}BIRD is not ready: {expected}\n")


def test_bird_not_running(node_dirs, capsys):
    sock = node_dirs / "run" / "bird.ctl"
    assert health(capsys, "-bird-ready") == (
        1, f"{PREFIX}BIRD is not ready: error querying BIRD: unable to connect to BIRDv4 socket: "
           f"dial unix {sock}: connect: no such file or directory\n")


def test_nodename_missing(node_dirs, capsys):
    (node_dirs / "lib" / "nodename").unlink()
    with _bird(node_dirs, (MESH_UP,)):
        assert health(capsys, "-bird-ready") == (
            1, f"{PREFIX}BIRD is not ready: failed to stat() nodename file: stat {node_dirs / 'lib' / 'nodename'}: "
               "no such file or directory\n")


# -- BIRD liveness ----------------------------------------------------------------------

def _supervisord(root: Path, **states: str) -> FakeSupervisord:
    return FakeSupervisord(root / "run" / "supervisor.sock", states)


@pytest.mark.parametrize("spelling", ["--", "-"])
def test_bird_live(node_dirs, capsys, spelling):
    with _supervisord(node_dirs, confd="RUNNING", bird="RUNNING", bird6="RUNNING"), _bird(node_dirs), \
            _bird(node_dirs, name="bird6.ctl"):
        assert health(capsys, "health", f"{spelling}bird-live", f"{spelling}bird6-live") == (0, "")


def test_bird_live_service_down(node_dirs, capsys):
    with _supervisord(node_dirs, confd="BACKOFF", bird="RUNNING"), _bird(node_dirs):
        code, out = health(capsys, "-bird-live")
    assert code == 1
    assert out.startswith(f"{PREFIX}bird/confd is not live: service confd is not running. Output << confd ")
    assert "BACKOFF" in out and out.endswith(" >>\n")


def test_bird6_live_service_missing(node_dirs, capsys):
    with _supervisord(node_dirs, confd="RUNNING", bird="RUNNING"):
        # Calico's `sv status` of a missing service exits 1 (health.go checkService).
        assert health(capsys, "-bird6-live") == (1, f"{PREFIX}bird6/confd is not live: exit status 1\n")


def test_bird_live_without_supervisord(node_dirs, capsys):
    code, out = health(capsys, "-bird-live")
    assert code == 1
    assert out.startswith(f"{PREFIX}bird/confd is not live: cannot reach supervisord at unix://")


def test_bird_live_bird_not_answering(node_dirs, capsys):
    with _supervisord(node_dirs, confd="RUNNING", bird="RUNNING"):
        code, out = health(capsys, "-bird-live")
    # Calico's birdcl exits 1 when BIRD's socket does not answer.
    assert (code, out) == (1, f"{PREFIX}bird is not live: exit status 1\n")


def test_bird_live_bad_response(node_dirs, capsys):
    with _supervisord(node_dirs, confd="RUNNING", bird="RUNNING"), \
            FakeBird(node_dirs / "run" / "bird.ctl", {"show status": STATUS_OK}, greeting="0001 Gobgp ready.\n"):
        code, out = health(capsys, "-bird-live")
    assert code == 1 and out.startswith(f"{PREFIX}bad response from bird: Gobgp ready.")


# -- several checks at once, as a subprocess (exit codes as the probe sees them) -----------

def test_probe_command_lines(node_dirs, monkeypatch):
    age_nodename(node_dirs, 0)
    env = dict(os.environ)
    with FakeFelix() as felix, _bird(node_dirs, (MESH_UP,)):
        env["FELIX_HEALTHPORT"] = str(felix.port)
        ready = [sys.executable, "-m", "node.cli.calico_node", "-felix-ready", "-bird-ready"]
        run = subprocess.run(ready, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert (run.returncode, run.stdout) == (0, ""), run.stderr
        felix.status["/readiness"] = 503
        run = subprocess.run(ready, env=env, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert (run.returncode, run.stdout) == (1, f"{PREFIX}felix is not ready: readiness probe reporting 503\n")


def test_bird_socket_fallback_only_for_the_default_run_dir(node_dirs):
    from node.config import Paths
    from node.supervise.health import bird_socket

    paths = Paths.from_env({"CALICO_RUN_DIR": str(node_dirs / "run")})
    # CALICO_RUN_DIR set: always this node's own socket.
    assert bird_socket(paths, "4", {"CALICO_RUN_DIR": str(node_dirs / "run")}) == node_dirs / "run" / "bird.ctl"
    # Default run dir: Calico's fallback to BIRD's own location when the socket is missing...
    assert bird_socket(paths, "6", {}) == Path("/var/run/bird/bird6.ctl")
    # ... but not when it is there.
    with _bird(node_dirs):
        assert bird_socket(paths, "4", {}) == node_dirs / "run" / "bird.ctl"
