"""calicoctl's command line: options anywhere, usage errors, --log-level, and the
top-level handler (no traceback ever reaches the user; Ctrl-C exits 130) of both
calicoctl and calico-node."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcd_server import free_port
from node.cli import calico_node, calicoctl
from node.datastore.client import DatastoreClient

CALICOCTL = str(Path(sys.executable).with_name("calicoctl"))

POOL = """apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool1}
spec: {cidr: 10.9.0.0/16}
"""
TIER = "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: 1000000}\n"
POLICY = ("apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: name, namespace: prod}\n"
          "spec: {selector: all(), order: 5}\n")


def write_config(path: Path, endpoint: str) -> Path:
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                    f"spec:\n  datastoreType: etcdv3\n  etcdEndpoints: {endpoint}\n")
    return path


@pytest.fixture
def ctl(etcd_clean_config, tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path / "calicoctl.cfg", etcd_clean_config.etcd_endpoints[0])

    def run(*args, stdin=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = calicoctl.main([*args, "-c", str(cfg)])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


# --------------------------------------------------------------------------------------
# Options anywhere.

def test_options_may_come_anywhere(ctl):
    assert ctl("apply", "-f", "-", stdin=POOL)[0] == 0
    code, out, err = ctl("get", "ippool", "-o", "yaml", "pool1")
    assert (code, err) == (0, "") and "name: pool1" in out and "cidr: 10.9.0.0/16" in out
    code, out, _ = ctl("get", "-o", "wide", "ippools")
    assert out.splitlines()[0].split()[:3] == ["NAME", "CIDR", "NAT"] and out.splitlines()[1].startswith("pool1")
    code, out, _ = ctl("get", "ippool", "pool1", "-l", "panic", "-o", "json")  # a global option after the command
    assert code == 0 and '"name": "pool1"' in out
    assert ctl("apply", "-f", "-", stdin=TIER)[0] == 0
    assert ctl("apply", "-f", "-", stdin=POLICY)[0] == 0
    code, out, err = ctl("get", "networkpolicy", "-n", "prod", "name")
    assert (code, err) == (0, "")
    assert [line.split() for line in out.splitlines()] == [["NAMESPACE", "NAME", "TIER"],
                                                           ["prod", "name", "default"], []]
    code, out, err = ctl("delete", "ippool", "pool1", "--skip-not-exists")
    assert (code, out, err) == (0, "Successfully deleted 1 'IPPool' resource(s)\n", "")
    code, out, err = ctl("delete", "ippool", "pool1", "--skip-not-exists")
    assert (code, out, err) == (0, "Skipped 1 'IPPool' resource(s) that did not exist\n", "")


def test_get_without_kind_says_kind_is_required_and_names_optional(ctl):
    code, out, err = ctl("get")
    assert code == 1 and out == ""
    first, usage = err.splitlines()
    assert first.startswith("calicoctl get: a resource KIND is required (NAMEs are optional")
    assert usage.startswith("usage: calicoctl get (KIND [NAME...] | -f FILE")
    code, _, err = ctl("get", "ippool", "", "-o", "yaml")
    assert (code, err) == (1, "resource name may not be empty\n")


def test_delete_without_names_and_bad_options_are_usage_errors(ctl):
    code, _, err = ctl("delete", "ippool")
    assert code == 1 and "a resource KIND and one or more NAMEs are required" in err
    assert "usage: calicoctl delete" in err
    with pytest.raises(SystemExit) as exc:
        ctl("get", "ippools", "--no-such-option")
    assert exc.value.code == 1


def test_namespace_rules(ctl):
    code, _, err = ctl("get", "ippools", "-A")
    assert (code, err) == (1, "IPPool is not namespaced\n")
    code, _, err = ctl("get", "networkpolicy", "np1", "-A")
    assert (code, err) == (1, "cannot use --all-namespace flag for getting a single resource\n")
    code, _, err = ctl("get", "networkpolicy", "-A", "-n", "prod")
    assert (code, err) == (1, "cannot use both --namespace and --all-namespaces flags at the same time\n")


# --------------------------------------------------------------------------------------
# --log-level

def test_log_level_configures_logging_and_is_undone(ctl):
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    code, _, err = ctl("get", "ippools")
    assert (code, err) == (0, "")  # panic, the default: nothing logged
    code, _, err = ctl("--log-level=debug", "get", "ippools")
    assert code == 0
    assert any(line.startswith('time="') and " level=debug msg=\"connected to etcd at " in line
               for line in err.splitlines()), err
    assert (root.level, root.handlers) == (level, handlers)
    code, _, err = ctl("-l", "loud", "get", "ippools")
    assert (code, err) == (1, "unknown log level: loud, expected one of: panic, fatal, error, warn, info, debug\n")


# --------------------------------------------------------------------------------------
# The top-level handler.

def _boom(*_args, **_kwargs):
    raise RuntimeError("boom\nsecond line")


def test_unexpected_exception_is_one_line_and_a_hint(ctl, monkeypatch):
    monkeypatch.setattr(DatastoreClient, "list_at", _boom)
    code, out, err = ctl("get", "ippools")
    assert (code, out) == (1, "")
    assert err == ("calicoctl get failed: unexpected RuntimeError: boom | second line\n"
                   "Rerun with --log-level=debug to log the details.\n")
    code, _, err = ctl("get", "ippools", "--log-level", "debug")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert err.rstrip().endswith("calicoctl get failed: unexpected RuntimeError: boom | second line")


def test_nested_command_is_named_and_ctrl_c_exits_130_quietly(ctl, monkeypatch):
    import node.ipam.allocator

    monkeypatch.setattr(node.ipam.allocator.IPAM, "all_pools", _boom)
    code, _, err = ctl("ipam", "show")
    assert code == 1 and err.startswith("calicoctl ipam show failed: unexpected RuntimeError: boom")

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(DatastoreClient, "list_at", interrupt)
    assert ctl("get", "ippools") == (130, "", "")


def test_calico_node_unexpected_exception_names_the_log_level_variable(monkeypatch, capsys):
    import startup.run

    monkeypatch.setattr(startup.run, "run", _boom)
    monkeypatch.delenv("CALICO_STARTUP_LOGLEVEL", raising=False)
    assert calico_node.main(["startup"]) == 1
    err = capsys.readouterr().err
    assert err == ("calico-node startup failed: unexpected RuntimeError: boom | second line\n"
                   "Set CALICO_STARTUP_LOGLEVEL=debug to log the traceback.\n")
    monkeypatch.setenv("CALICO_STARTUP_LOGLEVEL", "debug")
    assert calico_node.main(["startup"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "Set CALICO_STARTUP_LOGLEVEL" not in err

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(startup.run, "run", interrupt)
    assert calico_node.main(["startup"]) == 130
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("argv, stdin, expect", [
    (["get"], "", "a resource KIND is required"),
    # The version check comes first and needs the datastore (calicoctl's order); without it
    # the file is read and found wanting.
    (["create", "-f", "-"], "\x00\x01 not: [yaml", "unable to get Cluster Information to verify version "
                                                   "mismatch: cannot reach etcd"),
    (["create", "-f", "-", "--allow-version-mismatch"], "\x00\x01 not: [yaml", "failed to execute command"),
    (["create", "-f", "-", "--allow-version-mismatch"],
     "kind: IPPool\napiVersion: projectcalico.org/v3\nmetadata: {name: [x]}\n", "failed to execute command"),
    (["create", "-f", "/nonexistent/dir/file.yaml", "--allow-version-mismatch"], "",
     "could not read /nonexistent/dir/file.yaml"),
    (["get", "ippools", "-o", "custom-columns="], "", "need to specify at least one column"),
    (["patch", "ippool", "p", "-p", "{"], "", "hit error: performing strategic merge patch: the patch is"),
    (["label", "nodes", "n1", "k=v", "--remove", "--overwrite"], "", "--overwrite cannot be used with --remove"),
    (["version", "--poll", "ten"], "", "invalid poll duration specified: ten"),
    (["get", "ippools"], "", "failed to get resources: unable to get Cluster Information to verify version "
                             "mismatch: cannot reach etcd"),
    (["--allow-version-mismatch", "get", "ippools"], "", "failed to get resources: cannot reach etcd"),
])
def test_no_traceback_from_the_installed_command(tmp_path, argv, stdin, expect):
    """The console script, end to end, against a datastore that is not there."""
    cfg = write_config(tmp_path / "c.cfg", f"http://127.0.0.1:{free_port()}")
    proc = subprocess.run([CALICOCTL, *argv, "-c", str(cfg)], input=stdin, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr and expect in proc.stderr, proc.stderr


_WORDS = ["get", "create", "apply", "replace", "delete", "label", "patch", "version", "ipam", "show",
          "check", "release", "ippool", "ippools", "networkpolicy", "node", "nodes", "bogus", "p1", "",
          "-o", "yaml", "json", "wide", "custom-columns=NAME,CIDR", "custom-columns=X", "go-template={{.}}",
          "-n", "prod", "-A", "-f", "-", "-R", "--skip-empty", "--skip-exists", "--skip-not-exists",
          "--overwrite", "--remove", "k=v", "-p", '{"spec":{}}', "-t", "merge", "json", "--client",
          "--ip", "10.0.0.1", "--export", "-l", "info", "=", "--", "-x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(_WORDS), max_size=7), st.sampled_from(["", POOL, "kind: [", "- 1\n- 2\n"]))
def test_any_command_line_ends_in_an_exit_code(tmp_path, argv, stdin):
    """Whatever the words, main returns (or argparse exits) with a code and no traceback."""
    cfg = write_config(tmp_path / "c.cfg", f"http://127.0.0.1:{free_port()}")
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = calicoctl.main([*argv, "-c", str(cfg)])
            except SystemExit as exc:
                code = exc.code
    finally:
        sys.stdin = old_stdin
    assert code in (0, 1), (argv, err.getvalue())
    assert "Traceback" not in err.getvalue() and "failed: unexpected" not in err.getvalue(), (argv, err.getvalue())
