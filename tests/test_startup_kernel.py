"""Kernel preparation.

The host's sysctls and modules must not change in tests, so most tests aim the code at
a temporary sysctl tree and a fake ``modprobe`` script (a stand-in for the real
command, which would load modules into the host kernel). The last test runs the real
thing against /proc/sys inside a fresh network namespace, where ip_forward and IPv6
forwarding are per-namespace, and checks that the host's values did not move.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from netns import Namespace
from startup.kernel import CONNTRACK_MAX, MODULES, prepare_kernel
from startup.logs import Fatal
from startup_harness import NodeHost, datastore, explain
from startup_netns import add_link


def sysctl_tree(root: Path, ipv6: bool = True, conntrack: str | None = "65536") -> Path:
    (root / "net/ipv4").mkdir(parents=True)
    (root / "net/ipv4/ip_forward").write_text("0\n")
    if ipv6:
        (root / "net/ipv6/conf/all").mkdir(parents=True)
        (root / "net/ipv6/conf/all/forwarding").write_text("0\n")
    if conntrack is not None:
        (root / "net/netfilter").mkdir(parents=True)
        (root / "net/netfilter/nf_conntrack_max").write_text(conntrack + "\n")
    return root


def fake_modprobe(tmp: Path, failing: tuple[str, ...] = ()) -> tuple[list[str], Path]:
    """A modprobe stand-in: records each call and fails for the named modules."""
    log = tmp / "modprobe.log"
    script = tmp / "modprobe"
    cases = "".join(f"  {m}) echo 'modprobe: FATAL: Module {m} not found' >&2; exit 1;;\n" for m in failing)
    script.write_text("#!/bin/sh\n"
                      f"echo \"$@\" >> {log}\n"
                      "case \"$1\" in\n" + cases + "esac\nexit 0\n")
    script.chmod(0o755)
    return [str(script)], log


def test_sets_what_differs_and_reports_it(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    root = sysctl_tree(tmp_path / "sys")
    modprobe, calls = fake_modprobe(tmp_path, failing=("ipip", "xt_rpfilter"))
    report = prepare_kernel(root, modprobe)
    assert (root / "net/ipv4/ip_forward").read_text() == "1"
    assert (root / "net/ipv6/conf/all/forwarding").read_text() == "1"
    assert (root / "net/netfilter/nf_conntrack_max").read_text() == str(CONNTRACK_MAX)
    assert report.changed == {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1",
                              "net.netfilter.nf_conntrack_max": "1000000"}
    assert "Set net.ipv4.ip_forward to 1 (was 0)" in caplog.text
    # Every module is tried, one call each; each failure is exactly one warning.
    assert calls.read_text().split() == list(MODULES)
    assert report.failed_modules == ["xt_rpfilter", "ipip"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["Could not load kernel module xt_rpfilter (modprobe: FATAL: Module xt_rpfilter not found); "
                        "continuing without it",
                        "Could not load kernel module ipip (modprobe: FATAL: Module ipip not found); "
                        "continuing without it"]


def test_leaves_correct_values_alone(tmp_path):
    root = sysctl_tree(tmp_path / "sys", conntrack="2000000")
    for name in ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"):
        (root / name).write_text("1\n")
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    report = prepare_kernel(root, fake_modprobe(tmp_path)[0])
    assert report.changed == {} and report.failed_modules == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (root / "net/netfilter/nf_conntrack_max").read_text() == "2000000\n"  # never lowered


def test_without_ipv6_only_ipv4_forwarding_is_set(tmp_path):
    root = sysctl_tree(tmp_path / "sys", ipv6=False)
    report = prepare_kernel(root, fake_modprobe(tmp_path)[0])
    assert set(report.changed) == {"net.ipv4.ip_forward", "net.netfilter.nf_conntrack_max"}


def test_conntrack_limit_failure_is_only_a_warning(tmp_path, caplog):
    root = sysctl_tree(tmp_path / "sys", conntrack=None)
    report = prepare_kernel(root, fake_modprobe(tmp_path)[0])
    assert "net.netfilter.nf_conntrack_max" not in report.changed
    assert "Could not set nf_conntrack_max. This may have an impact at scale." in caplog.text


def test_forwarding_that_cannot_be_enabled_is_fatal(tmp_path):
    root = tmp_path / "sys"
    root.mkdir()
    with pytest.raises(Fatal, match="Could not enable ipv4 forwarding"):
        prepare_kernel(root, fake_modprobe(tmp_path)[0])


def test_missing_modprobe_warns_once_per_module(tmp_path, caplog):
    root = sysctl_tree(tmp_path / "sys")
    report = prepare_kernel(root, [str(tmp_path / "no-such-modprobe")])
    assert report.failed_modules == list(MODULES)
    assert sum("Could not load kernel module" in r.getMessage() for r in caplog.records) == len(MODULES)


def test_startup_leaves_the_kernel_alone_by_default(etcd_clean, tmp_path):
    """As Calico's startup: no module loaded, no sysctl written (calicoctl node run and
    the policy agent do that), even when told where sysctls and modprobe are."""
    root = sysctl_tree(tmp_path / "sys")
    before = {p: p.read_text() for p in root.rglob("*") if p.is_file()}
    modprobe, calls = fake_modprobe(tmp_path)
    with NodeHost(etcd_clean, tmp_path / "node") as host:
        add_link(host.ns, "eth0", "10.0.0.11/24")
        result = host.startup("--sysctl-root", str(root), "--modprobe", modprobe[0])
    assert result.returncode == 0, explain(result)
    assert "Calico node started successfully" in result.stdout
    assert not calls.exists()
    assert {p: p.read_text() for p in root.rglob("*") if p.is_file()} == before
    for message in ("Running command to load modules", "Enabling IPv4 forwarding", "Increasing conntrack limit"):
        assert message not in result.stderr


def test_startup_prepares_the_kernel_first_when_asked(etcd_clean, etcd_kv, tmp_path):
    root = sysctl_tree(tmp_path / "sys")
    modprobe, calls = fake_modprobe(tmp_path, failing=("ipip",))
    with NodeHost(etcd_clean, tmp_path / "node") as host:
        add_link(host.ns, "eth0", "10.0.0.11/24")
        result = host.startup("--kernel-prep", "--sysctl-root", str(root), "--modprobe", modprobe[0])
    assert result.returncode == 0, explain(result)
    assert (root / "net/ipv4/ip_forward").read_text() == "1"
    assert calls.read_text().split() == list(MODULES)
    assert result.stderr.count("Could not load kernel module") == 1
    assert result.stderr.index("Enabling IPv4 forwarding") < result.stderr.index("Determined node name")
    # The IPv6 pool follows the same sysctl tree's idea of IPv6 support.
    assert "/calico/resources/v3/projectcalico.org/ippools/default-ipv6-ippool" in datastore(etcd_kv)


def test_startup_without_ipv6_in_the_sysctl_tree_creates_no_ipv6_pool(etcd_clean, etcd_kv, tmp_path):
    root = sysctl_tree(tmp_path / "sys", ipv6=False)
    with NodeHost(etcd_clean, tmp_path / "node") as host:
        add_link(host.ns, "eth0", "10.0.0.11/24")
        result = host.startup("--sysctl-root", str(root), "--modprobe", fake_modprobe(tmp_path)[0][0])
    assert result.returncode == 0, explain(result)
    assert "IPv6 supported on this platform: false" in result.stderr
    assert [k for k in datastore(etcd_kv) if "/ippools/" in k] == [
        "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"]


def test_real_sysctls_inside_a_namespace(tmp_path):
    host_values = {p: Path(p).read_text() for p in ("/proc/sys/net/ipv4/ip_forward",
                                                    "/proc/sys/net/ipv6/conf/all/forwarding")}
    modprobe, _ = fake_modprobe(tmp_path)
    code = ("import sys; from startup.kernel import prepare_kernel; "
            "r = prepare_kernel(modprobe=sys.argv[1:]); print(sorted(r.changed))")
    with Namespace("ckp") as ns:
        # A new namespace inherits ip_forward from the host on many kernels (1 wherever
        # Docker runs): set the precondition this test needs instead of assuming it.
        ns.run("sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")
        assert ns.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
        assert ns.run("cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "0"
        result = ns.run(sys.executable, "-c", code, *modprobe, check=False)
        assert result.returncode == 0, result.stderr
        assert ns.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        assert ns.run("cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
        assert "'net.ipv4.ip_forward'" in result.stdout
    # The conntrack limit is read-only inside a namespace: a warning, not a failure.
    assert "Could not set nf_conntrack_max" in result.stderr
    assert {p: Path(p).read_text() for p in host_values} == host_values
