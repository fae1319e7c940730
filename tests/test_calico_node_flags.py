"""Released calico-node's flag-style command line (v3.32.1's main.go) dispatches to this
image's roles; and ``calico-node hostpath-init``."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from node import __version__
from node.cli import calico_node
from node.cli.legacy_flags import LegacyUsage, translate

ROOT = Path(__file__).resolve().parents[1]
CALICO_NODE = [sys.executable, "-m", "node.cli.calico_node"]


def test_v_prints_the_version_and_exits_0():
    run = subprocess.run([*CALICO_NODE, "-v"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert (run.returncode, run.stdout, run.stderr) == (0, f"{__version__}\n", "")


@pytest.mark.parametrize("argv,expected", [
    (["-v"], ["version"]),
    (["--v"], ["version"]),
    (["-felix"], ["felix"]),
    (["-startup"], ["startup"]),
    (["-startup", "-complete-startup"], ["startup", "--complete-startup"]),
    (["-complete-startup", "-startup"], ["startup", "--complete-startup"]),
    (["-complete-startup"], ["complete-startup"]),
    (["-shutdown"], ["shutdown"]),
    (["-confd"], ["confd"]),
    (["-confd", "-confd-run-once"], ["confd", "--oneshot"]),
    (["-confd-run-once=true", "--confd"], ["confd", "--oneshot"]),
    (["-confd", "-confd-run-once=false"], ["confd"]),
    (["-confd", "-confd-confdir", "/etc/calico/confd"], ["confd"]),
    (["-allocate-tunnel-addrs"], ["allocate-tunnel-addrs"]),
    (["-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once"], ["allocate-tunnel-addrs", "--run-once"]),
    (["-monitor-addresses"], ["monitor-addresses"]),
    (["-monitor-token"], ["monitor-token"]),
    (["-hostpath-init"], ["hostpath-init"]),
    (["-status-reporter"], ["status-reporter"]),
    (["-node-services"], ["node-services"]),
    (["-show-status"], ["show-status"]),
    (["-felix-live", "-bird-live"], ["health", "--felix-live", "--bird-live"]),
    (["-bird-ready", "-felix-ready", "-threshold-time", "10s"],
     ["health", "--felix-ready", "--bird-ready", "--threshold-time=10s"]),
    # health checks win over anything else, as in Calico's main
    (["-felix", "-felix-live"], ["health", "--felix-live"]),
    # arguments after the flags are not Calico's: ignored, as Go's flag package leaves them
    (["-startup", "extra"], ["startup"]),
    # this project's own role options after the legacy flag pass through
    (["-felix", "--dry-run"], ["felix", "--dry-run"]),
    (["-monitor-token", "--run-once"], ["monitor-token", "--run-once"]),
    # subcommands are left alone
    (["startup", "--kernel-prep"], ["startup", "--kernel-prep"]),
    (["--help"], ["--help"]),
])
def test_translation(argv, expected):
    assert translate(argv) == expected


def test_every_translation_names_a_role_the_parser_has():
    parser = calico_node.build_parser()
    for argv in (["-v"], ["-felix"], ["-startup", "-complete-startup"], ["-shutdown"], ["-complete-startup"],
                 ["-confd", "-confd-run-once"], ["-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once"],
                 ["-monitor-addresses"], ["-monitor-token"], ["-hostpath-init"], ["-status-reporter"],
                 ["-node-services"], ["-show-status"], ["-felix-ready", "-bird-ready"]):
        args = parser.parse_args(translate(argv))
        assert args.role == translate(argv)[0]
    assert parser.parse_args(translate(["-confd", "-confd-run-once"])).oneshot
    assert parser.parse_args(translate(["-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once"])).run_once
    assert parser.parse_args(translate(["-startup", "-complete-startup"])).complete_startup


@pytest.mark.parametrize("argv,message", [
    (["-felix", "-confd"], "More than one incompatible argument provided"),
    (["-v", "-startup"], "More than one incompatible argument provided"),
    (["-confd-run-once"], "No valid options provided. Usage:"),
    (["-allocate-tunnel-addrs-run-once"], "No valid options provided. Usage:"),
    (["-felix-live=false"], "No valid options provided. Usage:"),
    (["-nonsense"], "flag provided but not defined: -nonsense"),
    (["-v=maybe"], 'invalid boolean value "maybe" for -v: parse error'),
    (["-threshold-time"], "flag needs an argument: -threshold-time"),
    (["---v"], "bad flag syntax: ---v"),
])
def test_what_calico_refuses(argv, message):
    with pytest.raises(LegacyUsage) as info:
        translate(argv)
    assert info.value.message == message and info.value.code == 1


@pytest.mark.parametrize("flag", ["-init", "-bpf", "-flows=10"])
def test_flags_for_what_this_image_lacks_are_refused_plainly(flag):
    with pytest.raises(LegacyUsage, match=r"is not supported: "):
        translate([flag])


@pytest.mark.parametrize("argv,warning", [
    (["-monitor-addresses"], "-monitor-addresses is deprecated, use -node-services instead"),
    (["-monitor-token"], "-monitor-token is deprecated, use -node-services instead"),
    (["-status-reporter"], "-status-reporter is deprecated, use -node-services instead"),
    (["-allocate-tunnel-addrs"], "-allocate-tunnel-addrs daemon mode is deprecated, use -node-services instead"),
    (["-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once"], None),
    (["-node-services"], None),
])
def test_flags_node_services_superseded_still_run_with_calicos_warning(argv, warning):
    warnings: list[str] = []
    translate(argv, warnings.append)
    assert warnings == ([warning] if warning else [])


def test_confd_flags_without_an_equivalent_are_accepted_with_a_warning():
    warnings: list[str] = []
    assert translate(["-confd", "-confd-keep-stage-file", "-confd-confdir=/elsewhere"], warnings.append) == ["confd"]
    assert len(warnings) == 2 and "-confd-keep-stage-file has no effect" in warnings[0]
    assert "-confd-confdir=/elsewhere is ignored" in warnings[1]


def test_refusals_exit_1_with_calicos_message_on_stdout():
    run = subprocess.run([*CALICO_NODE, "-felix", "-startup"], capture_output=True, text=True, timeout=30,
                         cwd=ROOT)
    assert (run.returncode, run.stdout) == (1, "More than one incompatible argument provided\n")
    run = subprocess.run([*CALICO_NODE, "-bogus"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert (run.returncode, run.stdout) == (1, "flag provided but not defined: -bogus\n")
    assert "-allocate-tunnel-addrs-run-once" in run.stderr  # the flag list


@pytest.mark.parametrize("argv,role", [
    (["-startup"], "startup"), (["-confd", "-confd-run-once"], "confd"),
    (["-allocate-tunnel-addrs", "-allocate-tunnel-addrs-run-once"], "allocate-tunnel-addrs"),
    (["-monitor-addresses"], "monitor-addresses"), (["-complete-startup"], "complete-startup"),
])
def test_flags_run_their_role(tmp_path, argv, role):
    """Each flag reaches its role (here each fails on an unusable datastore, in its own words)."""
    env = {"PATH": os.environ["PATH"], "NODENAME": "n1", "DATASTORE_TYPE": "etcdv3",
           "ETCD_ENDPOINTS": "ftp://nowhere:1", "CALICO_RUN_DIR": str(tmp_path / "run"),
           "CALICO_LIB_DIR": str(tmp_path / "lib"), "CALICO_CONFIG_DIR": str(tmp_path / "etc"),
           "CALICO_LOG_DIR": str(tmp_path / "log"), "CALICO_NETWORKING_BACKEND": "bird"}
    if role == "complete-startup":
        # Nothing to wait for, no Kubernetes: it marks nothing and then stays up; a
        # timeout proves it got there.
        env.update(CALICO_NETWORKING_BACKEND="none")
        with pytest.raises(subprocess.TimeoutExpired):
            subprocess.run([*CALICO_NODE, *argv], env=env, capture_output=True, text=True, timeout=5, cwd=ROOT)
        return
    run = subprocess.run([*CALICO_NODE, *argv], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "has unsupported scheme" in run.stdout + run.stderr, (run.stdout, run.stderr)


# -- hostpath-init -------------------------------------------------------------------------

def test_hostpath_init_gives_the_directories_to_the_node_user(tmp_path):
    lib, run_dir, log = tmp_path / "lib", tmp_path / "run", tmp_path / "log"
    (log / "cni").mkdir(parents=True)
    (log / "cni" / "cni.log").write_text("from the CNI plugin\n")
    (log / "cni" / "old").mkdir()
    (log / "cni" / "old" / "cni.log.1").write_text("older\n")
    outside = tmp_path / "outside"
    outside.write_text("not the node's")
    (log / "cni" / "link").symlink_to(outside)
    (log / "felix").mkdir()  # other programs' logs are not the CNI plugin's: left alone
    env = {"PATH": os.environ["PATH"], "NODE_USER_ID": "4321", "CALICO_LIB_DIR": str(lib),
           "CALICO_RUN_DIR": str(run_dir), "CALICO_LOG_DIR": str(log)}
    result = subprocess.run([*CALICO_NODE, "-hostpath-init"], env=env, capture_output=True, text=True,
                            timeout=30, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for path in (lib, run_dir, log, log / "cni", log / "cni" / "cni.log", log / "cni" / "old",
                 log / "cni" / "old" / "cni.log.1"):
        info = path.stat()
        assert (info.st_uid, info.st_gid) == (4321, 0), path
    for created in (lib, run_dir):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700
    assert os.lstat(log / "cni" / "link").st_uid == 4321
    assert outside.stat().st_uid == os.getuid()  # a link's target is not handed over
    assert (log / "felix").stat().st_uid == os.getuid()


def test_hostpath_init_defaults_to_uid_1000_and_refuses_a_bad_one(tmp_path):
    env = {"PATH": os.environ["PATH"], "CALICO_LIB_DIR": str(tmp_path / "lib"),
           "CALICO_RUN_DIR": str(tmp_path / "run"), "CALICO_LOG_DIR": str(tmp_path / "log")}
    result = subprocess.run([*CALICO_NODE, "hostpath-init"], env=env, capture_output=True, text=True, timeout=30,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lib").stat().st_uid == 1000
    result = subprocess.run([*CALICO_NODE, "hostpath-init"], env={**env, "NODE_USER_ID": "calico"},
                            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert (result.returncode, result.stderr) == (2, "panic: Failed to parse value for UID calico\n")
