"""The roles' log lines: one setup (``node.cli.role_logging``), Calico's Go layout
(libcalico-go's logutils Formatter), each role under the component calico-node's main.go
gives it, at the level its own variable sets.

    2025-05-01 10:00:00.123 [INFO][42] cni-config-monitor/monitor_token.py 49: <message>
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import calico_node, role_logging

ROOT = Path(__file__).resolve().parents[1]
CALICO_NODE = [sys.executable, "-m", "node.cli.calico_node"]
LINE = re.compile(r"(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \[(?P<level>DEBUG|INFO|WARNING|ERROR|FATAL)\]"
                  r"\[(?P<pid>\d+)\] (?P<component>[a-z-]+)/(?P<file>\w+\.py) (?P<line>[1-9]\d*): (?P<message>.*)")

NODE_YAML = """apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: n1
spec:
  bgp:
    ipv4Address: 192.0.2.1/24
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "NODENAME", "KUBECONFIG", "KUBERNETES_", "FELIX_",
                                "BGP_", "LOG_LEVEL"))}
    env.update(CALICO_LIB_DIR=str(tmp_path / "lib"), CALICO_RUN_DIR=str(tmp_path / "run"),
               CALICO_CONFIG_DIR=str(tmp_path / "etc"), CALICO_LOG_DIR=str(tmp_path / "log"), **extra)
    return env


def _lines(stderr: str, pid: int) -> list[re.Match]:
    """Every log line of the run, each checked against the layout."""
    out = []
    for text in stderr.splitlines():
        match = LINE.fullmatch(text)
        assert match, f"not in Calico's layout: {text!r}"
        assert int(match["pid"]) == pid
        stamp = dt.datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S.%f")
        assert abs((dt.datetime.now() - stamp).total_seconds()) < 120  # local time, as logrus's
        out.append(match)
    return out


def _run(argv: list[str], env: dict[str, str], *, stop_after: float | None = None) -> tuple[int, list[re.Match]]:
    proc = subprocess.Popen([*CALICO_NODE, *argv], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        if stop_after is None:
            _, err = proc.communicate(timeout=60)
        else:
            try:
                _, err = proc.communicate(timeout=stop_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, _lines(err, proc.pid)


def _one(lines: list[re.Match], text: str) -> re.Match:
    found = [m for m in lines if text in m["message"]]
    assert len(found) == 1, [m.group(0) for m in lines]
    return found[0]


def test_monitor_token(tmp_path):
    code, lines = _run(["monitor-token", "--run-once"], _env(tmp_path, CALICO_MANAGE_CNI="false"))
    assert code == 0
    line = _one(lines, "CALICO_MANAGE_CNI=false")
    assert (line["level"], line["component"], line["file"]) == ("INFO", "cni-config-monitor", "monitor_token.py")


def test_status_reporter(tmp_path):
    code, lines = _run(["status-reporter"], _env(tmp_path))
    assert code == 1
    line = _one(lines, "NODENAME environment is not set")
    assert (line["level"], line["component"], line["file"]) == ("ERROR", "status-reporter", "status_reporter.py")


def test_allocate_tunnel_addrs(tmp_path):
    code, lines = _run(["allocate-tunnel-addrs", "--run-once"], _env(tmp_path))
    assert code == 1
    line = _one(lines, "NODENAME environment is not set")
    assert (line["level"], line["component"], line["file"]) == ("ERROR", "tunnel-ip-allocator",
                                                                "allocate_tunnel_addrs.py")


def test_allocate_tunnel_addrs_reads_log_level_after_calico_log_level(tmp_path):
    env = _env(tmp_path, NODENAME="n1", USE_POD_CIDR="true", LOG_LEVEL="debug")
    code, lines = _run(["allocate-tunnel-addrs", "--run-once"], env)
    assert code == 0
    line = _one(lines, "Using host-local IPAM, no need to allocate a tunnel IP")
    assert (line["level"], line["component"]) == ("DEBUG", "tunnel-ip-allocator")
    code, lines = _run(["allocate-tunnel-addrs", "--run-once"], {**env, "CALICO_LOG_LEVEL": "info"})
    assert code == 0 and lines == []


def test_confd(tmp_path):
    (tmp_path / "node.yaml").write_text(NODE_YAML)
    argv = ["confd", "--oneshot", "--from-file", str(tmp_path / "node.yaml"), "--output-dir", str(tmp_path / "out"),
            "--no-check"]
    code, lines = _run(argv, _env(tmp_path, NODENAME="n1"))
    assert code == 0
    line = _one(lines, f"Target config {tmp_path / 'out' / 'bird.cfg'} has been updated")
    assert (line["level"], line["component"], line["file"]) == ("INFO", "confd", "install.py")
    # BGP_LOGSEVERITYSCREEN sets its level.
    code, lines = _run(argv, _env(tmp_path, NODENAME="n1", BGP_LOGSEVERITYSCREEN="warning"))
    assert code == 0 and [m for m in lines if m["level"] == "INFO"] == []


def test_felix(tmp_path):
    """As Felix's own lines (logutils.ConfigureFormatter("felix")); a test reading the
    agent's log for "[DEBUG]" still finds it."""
    (tmp_path / "node.yaml").write_text(NODE_YAML)
    env = _env(tmp_path, NODENAME="n1", FELIX_LOGSEVERITYSCREEN="Debug")
    code, lines = _run(["felix", "--dry-run", "--from-file", str(tmp_path / "node.yaml")], env)
    assert code == 0
    assert lines and {m["component"] for m in lines} == {"felix"}
    assert "DEBUG" in {m["level"] for m in lines}
    assert "[DEBUG][" in lines[0].group(0)


def test_complete_startup_and_its_sigterm(tmp_path):
    env = _env(tmp_path, NODENAME="n1", CALICO_NETWORKING_BACKEND="none")
    code, lines = _run(["complete-startup"], env, stop_after=3)
    assert code == 0  # stopped by SIGTERM, cleanly
    line = _one(lines, "Calico is not managing networking")
    assert (line["level"], line["component"]) == ("INFO", "complete-startup")


def test_shutdown_and_a_level_that_is_not_one(tmp_path):
    code, lines = _run(["shutdown"], _env(tmp_path, NODENAME="n1", CALICO_STARTUP_LOGLEVEL="loud"))
    assert code == 0
    line = _one(lines, "Shutting down node n1")
    assert (line["level"], line["component"], line["file"]) == ("INFO", "shutdown", "shutdown.py")
    refused = _one(lines, "Failed to parse log level")
    assert refused["level"] == "ERROR" and "CALICO_STARTUP_LOGLEVEL='loud'" in refused["message"]
    assert lines[0] is refused  # said first, before anything is logged at the fallback level


@pytest.mark.parametrize("role,env,level", [
    ("monitor-token", {"CALICO_STARTUP_LOGLEVEL": "DEBUG"}, "debug"),
    ("confd", {"BGP_LOGSEVERITYSCREEN": "warn"}, "warning"),
    ("felix", {"FELIX_LOGSEVERITYSCREEN": "Fatal"}, "fatal"),
    ("felix", {"FELIX_LOGSEVERITYSCREEN": "trace"}, "trace"),
    ("allocate-tunnel-addrs", {"CALICO_LOG_LEVEL": "error", "LOG_LEVEL": "debug"}, "error"),
    ("allocate-tunnel-addrs", {"LOG_LEVEL": "debug"}, "debug"),
    ("status-reporter", {}, "info"),
    ("health", {"CALICO_STARTUP_LOGLEVEL": "debug"}, "info"),  # the probe has no level variable
])
def test_each_role_reads_its_own_level_variable(role, env, level):
    assert role_logging.role_log_level(role, env)[0] == level


def test_the_level_variables_are_the_ones_calico_node_reports():
    assert calico_node.ROLE_LOG_LEVEL_ENV is role_logging.ROLE_LOG_LEVEL_ENV


def test_in_process_existing_handlers_are_left_alone(caplog):
    root = logging.getLogger()
    before = list(root.handlers)
    role_logging.setup_role_logging("confd", {"BGP_LOGSEVERITYSCREEN": "debug"})
    assert root.handlers == before
