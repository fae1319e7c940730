"""``calicoctl node diags``: the bundle's files, the log copy and the container logs.

Both tests run the command inside a network namespace made for them, so what it records
(addresses, routes, rules) is known, and write the bundle under the test's own TMPDIR.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from docker_env import NamespacedDockerd, node_image, ns_command, system_docker
from netns import Namespace

FILES = ["date", "hostname", "ipv4_route", "ipv6_route", "ipv4_addr", "ipv6_addr", "ipv4_tables", "ipv6_tables",
         "ipsets"]


def _calicoctl() -> str:
    script = Path(sys.executable).parent / "calicoctl"
    return str(script) if script.exists() else "calicoctl"


def _diags(ns: Namespace, tmp_path: Path, env: dict[str, str]) -> tuple[str, Path, dict[str, bytes]]:
    (tmp_path / "tmp").mkdir()
    log_dir = tmp_path / "calico-logs"
    (log_dir / "felix").mkdir(parents=True)
    (log_dir / "felix" / "current").write_text("felix was here\n")
    env = {"TMPDIR": str(tmp_path / "tmp"), "PATH": os.environ["PATH"], **env}
    run = subprocess.run(ns_command(ns, [_calicoctl(), "node", "diags", "--log-dir", str(log_dir)], env),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    match = re.search(r"^Diags saved to (.+\.tar\.gz)$", run.stdout, re.M)
    assert match, run.stdout
    tarball = Path(match.group(1))
    assert tarball.parent.parent == tmp_path / "tmp" and tarball.parent.name.startswith("calico")
    assert re.fullmatch(r"diags-\d{8}_\d{6}\.tar\.gz", tarball.name)
    with tarfile.open(tarball) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return run.stdout, tarball, members


def test_diags_without_docker(tmp_path):
    with Namespace("diag") as ns:
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        ns.run("ip", "addr", "add", "10.77.0.1/24", "dev", "eth0")
        ns.run("ip", "link", "set", "eth0", "up")
        out, _, files = _diags(ns, tmp_path, {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    lines = out.splitlines()
    assert lines[0] == "Collecting diagnostics"
    assert lines[1].startswith("Using temp dir: ")
    for info in ("Dumping routes (IPv4)", "Dumping interface info (IPv4)", "Dumping iptables (IPv4)",
                 "Dumping ipsets", "Copying journal for calico-node.service", "Dumping felix stats",
                 "Copying Calico logs"):
        assert info in lines, out
    assert any(line.startswith("Skipping container ipset dump: cannot reach the Docker daemon") for line in lines)
    assert any(line.startswith("Could not run docker command: cannot reach the Docker daemon") for line in lines)
    # calicoctl's order: the container's IP sets right after the host's.
    skip = next(i for i, line in enumerate(lines) if line.startswith("Skipping container ipset dump"))
    assert lines.index("Dumping ipsets") < skip < lines.index("Copying journal for calico-node.service")
    assert lines[-1] == "If required, you can upload the diagnostics bundle to a file sharing service."
    for name in FILES:
        assert f"diagnostics/{name}" in files, sorted(files)
    assert b"inet 10.77.0.1/24" in files["diagnostics/ipv4_addr"]
    assert b"10.77.0.0/24 dev eth0" in files["diagnostics/ipv4_route"]
    assert files["diagnostics/logs/felix/current"] == b"felix was here\n"
    assert ("diagnostics/netstat" in files) or ("diagnostics/ss" in files)


@pytest.mark.docker
def test_diags_collects_container_logs(tmp_path):
    image = node_image()
    with NamespacedDockerd("diagd") as daemon:
        daemon.load_image(system_docker(), image)
        daemon.client.containers.run(image, ["-c", "echo node output; echo node errors >&2; sleep 600"],
                                            entrypoint="sh", name="calico-node", network_mode="host",
                                            cap_add=["NET_ADMIN"], detach=True)
        daemon.client.containers.run(image, ["-c", "echo done"], entrypoint="sh", name="calico-kube-controllers",
                                     network_mode="none", detach=True).wait(timeout=60)
        daemon.client.containers.run(image, ["-c", "true"], entrypoint="sh", name="unrelated", network_mode="none",
                                     detach=True).wait(timeout=60)
        daemon.ns.run("ipset", "create", "cali40test", "hash:ip")
        out, _, files = _diags(daemon.ns, tmp_path, daemon.env)
    assert "Dumping ipsets (container)" in out.splitlines()
    assert "Copying logs from Calico containers" in out.splitlines()
    assert b"Name: cali40test" in files["diagnostics/ipset_container"]
    # (stdout and stderr, in whichever order Docker stored them)
    assert sorted(files["diagnostics/logs/calico-node.log"].splitlines()) == [b"node errors", b"node output"]
    assert files["diagnostics/logs/calico-kube-controllers.log"] == b"done\n"
    assert "diagnostics/logs/unrelated.log" not in files
    listing = files["diagnostics/logs/container_creation_time"].decode().splitlines()
    assert sorted(line.split(":")[0] for line in listing) == ["calico-kube-controllers", "calico-node"]
    for line in listing:
        assert re.fullmatch(r"[\w-]+: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", line), line
