"""Unusable datastore settings give one clear line from every role and from calicoctl.

Each case runs the real entry points (``.venv/bin/calico-node``, ``.venv/bin/calicoctl``)
as subprocesses with a clean environment, and checks that the failure is a single line
naming the variable (or file) and value, with exit status 1, and that neither a Python
traceback nor gRPC's own C-core log lines reach the terminal. ``GRPC_VERBOSITY`` and
``GRPC_TRACE`` are removed from the environment, so the suppression tested is the one
the commands do themselves.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from etcd_server import EtcdServer

BIN = Path(sys.executable).parent
CALICO_NODE = str(BIN / "calico-node")
CALICOCTL = str(BIN / "calicoctl")

# Roles that print Calico's "ERROR: ..." line on stdout (their log goes to stderr).
STDOUT_ROLES = (["startup", "--no-kernel-prep"], ["monitor-addresses", "--poll-only"])
# Roles and calicoctl commands that print their one line on stderr.
STDERR_COMMANDS = (
    [CALICO_NODE, "confd"],
    [CALICO_NODE, "confd", "--oneshot"],
    [CALICO_NODE, "allocate-tunnel-addrs"],
    [CALICO_NODE, "allocate-tunnel-addrs", "--run-once"],
    [CALICOCTL, "get", "ippools"],
    [CALICOCTL, "ipam", "show"],
)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALICO_", "ETCD_", "DATASTORE", "GRPC_", "NODENAME", "KUBECONFIG"))}
    env.update(NODENAME="node1", CALICO_LIB_DIR=str(tmp_path / "lib"), CALICO_RUN_DIR=str(tmp_path / "run"),
               CALICO_CONFIG_DIR=str(tmp_path / "etc"), CALICO_LOG_DIR=str(tmp_path / "log"), **extra)
    return env


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def assert_no_noise(proc: subprocess.CompletedProcess) -> None:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    assert ".cc:" not in both, both  # gRPC C-core log lines (ssl_transport_security.cc and friends)


def one_stderr_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert_no_noise(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def one_stdout_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert_no_noise(proc)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: "), proc.stdout
    assert "[ERROR]" not in proc.stderr and "[WARNING]" not in proc.stderr, proc.stderr
    return lines[0]


# -- ETCD_ENDPOINTS ---------------------------------------------------------------------

BAD_ENDPOINTS = [
    ("http://[::1", "is not a valid URL"),
    ("unix:///run/etcd.sock", "unsupported scheme 'unix'"),
    ("http://127.0.0.1:2379,,http://127.0.0.1:2380", "entry 2 is empty"),
    ("http://127.0.0.1:2379,ftp://127.0.0.1:2380", "entry 'ftp://127.0.0.1:2380' has unsupported scheme"),
    ("http://127.0.0.1:99999", "is not a valid URL (Port out of range"),
    ("http://etcd host:2379", "not a valid host name"),
]


@pytest.mark.parametrize("value,problem", BAD_ENDPOINTS, ids=[v for v, _ in BAD_ENDPOINTS])
def test_malformed_endpoints_give_one_line_from_every_command(tmp_path, value, problem):
    env = clean_env(tmp_path, ETCD_ENDPOINTS=value)
    expected = f"ETCD_ENDPOINTS={value!r}"
    # Every command for the first two values; the checks are shared, so one role and
    # calicoctl suffice for the rest.
    every = value in (BAD_ENDPOINTS[0][0], BAD_ENDPOINTS[1][0])
    for args in STDOUT_ROLES if every else ():
        line = one_stdout_error(run([CALICO_NODE, *args], env))
        assert expected in line and problem in line, line
    for cmd in STDERR_COMMANDS if every else (STDERR_COMMANDS[3], STDERR_COMMANDS[4]):
        line = one_stderr_line(run(cmd, env))
        assert expected in line and problem in line, (cmd, line)


def test_calico_prefixed_variable_and_calicoctl_config_file_are_named(tmp_path):
    env = clean_env(tmp_path, CALICO_ETCD_ENDPOINTS="http://[::1", ETCD_ENDPOINTS="http://127.0.0.1:2379")
    line = one_stderr_line(run([CALICO_NODE, "allocate-tunnel-addrs", "--run-once"], env))
    assert "CALICO_ETCD_ENDPOINTS='http://[::1'" in line
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   "spec:\n  datastoreType: etcdv3\n  etcdEndpoints: 'https://[fe80::1'\n")
    line = one_stderr_line(run([CALICOCTL, "-c", str(cfg), "get", "nodes"], clean_env(tmp_path)))
    assert f"etcdEndpoints in {cfg}='https://[fe80::1' is not a valid URL" in line


# -- TLS files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_servers():
    """A TLS etcd, and a second (never started) one whose CA and client pair do not match it."""
    server, other = EtcdServer(tls=True), EtcdServer(tls=True)
    try:
        server.start()
        yield server, other
    finally:
        server.close()
        other.close()


def _tls_env(tmp_path, server, **files) -> dict[str, str]:
    settings = {"ETCD_CA_CERT_FILE": server.ca_file, "ETCD_CERT_FILE": server.client_cert_file,
                "ETCD_KEY_FILE": server.client_key_file}
    settings.update(files)
    return clean_env(tmp_path, ETCD_ENDPOINTS=server.endpoint, **{k: v for k, v in settings.items() if v})


def test_good_tls_files_work(tmp_path, tls_servers):
    server, _ = tls_servers
    proc = run([CALICOCTL, "get", "ippools"], _tls_env(tmp_path, server))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def _tls_cases(tmp_path: Path, server: EtcdServer, other: EtcdServer):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    missing = str(tmp_path / "missing.pem")
    return [
        (dict(ETCD_CA_CERT_FILE=str(garbage)), f"ETCD_CA_CERT_FILE={garbage}: no PEM certificate"),
        (dict(ETCD_CERT_FILE=str(garbage)), f"ETCD_CERT_FILE={garbage}: no PEM certificate"),
        (dict(ETCD_KEY_FILE=str(garbage)), f"ETCD_KEY_FILE={garbage}: no PEM private key"),
        (dict(ETCD_KEY_FILE=missing), f"ETCD_KEY_FILE: file {missing} does not exist"),
        (dict(ETCD_KEY_FILE=""), f"ETCD_CERT_FILE={server.client_cert_file} is set but ETCD_KEY_FILE is not"),
        (dict(ETCD_KEY_FILE=other.client_key_file),
         f"ETCD_KEY_FILE={other.client_key_file} is not the key of the certificate in "
         f"ETCD_CERT_FILE={server.client_cert_file}"),
    ]


def test_unusable_tls_files_give_one_line_naming_the_file(tmp_path, tls_servers):
    server, other = tls_servers
    for files, expected in _tls_cases(tmp_path, server, other):
        env = _tls_env(tmp_path, server, **files)
        line = one_stderr_line(run([CALICOCTL, "get", "ippools"], env))
        assert line == f"Failed to create Calico API client: {expected}" or expected in line, (files, line)
        line = one_stderr_line(run([CALICO_NODE, "allocate-tunnel-addrs", "--run-once"], env))
        assert expected in line, (files, line)
        line = one_stdout_error(run([CALICO_NODE, "startup", "--no-kernel-prep"], env))
        assert expected in line, (files, line)


def test_ca_that_did_not_sign_the_server_gives_one_line(tmp_path, tls_servers):
    server, other = tls_servers
    env = _tls_env(tmp_path, server, ETCD_CA_CERT_FILE=other.ca_file)
    expected = (f"TLS with etcd at {server.endpoint} failed: etcd's certificate is not signed by the CA in "
                f"ETCD_CA_CERT_FILE={other.ca_file}")
    # (--allow-version-mismatch: the version check before it would add calicoctl's override hint)
    line = one_stderr_line(run([CALICOCTL, "get", "ippools", "--allow-version-mismatch"], env))
    assert line.startswith("failed to get resources: " + expected), line
    line = one_stderr_line(run([CALICO_NODE, "allocate-tunnel-addrs", "--run-once"], env))
    assert expected in line, line


def test_client_certificate_the_server_does_not_trust_gives_one_line(tmp_path, tls_servers):
    server, other = tls_servers
    env = _tls_env(tmp_path, server, ETCD_CERT_FILE=other.client_cert_file, ETCD_KEY_FILE=other.client_key_file)
    line = one_stderr_line(run([CALICOCTL, "get", "ippools", "--allow-version-mismatch"], env))
    assert f"etcd refused this client's certificate (ETCD_CERT_FILE={other.client_cert_file})" in line, line
