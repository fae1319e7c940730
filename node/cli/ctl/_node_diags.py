"""``calicoctl node diags [--log-dir DIR]``: collect a diagnostics bundle.

As calicoctl: a temporary directory ``$TMPDIR/calico*`` gets ``diagnostics/`` with the
output of a fixed list of commands (routes, addresses, nftables, iptables, IP sets,
the journal of calico-node.service, sockets), the Calico log directory, and the logs of
every container whose name contains ``calico``; the whole is packed as
``diags-YYYYMMDD_HHMMSS.tar.gz`` beside it. A command that fails is reported and skipped.

Containers are reached through the Docker Engine API (``DOCKER_HOST`` chooses the
daemon). One difference from calicoctl: the container ``ipset list`` runs inside the
running ``calico-node`` container (as calicoctl does with crictl) instead of in a new
``calico/node`` container pulled from a registry.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

CONTAINER_FILTER = "calico"
NODE_CONTAINER = "calico-node"


@dataclass(frozen=True)
class DiagCommand:
    info: str
    argv: tuple[str, ...]
    filename: str


COMMANDS = (
    DiagCommand("", ("date",), "date"),
    DiagCommand("", ("hostname",), "hostname"),
    DiagCommand("Dumping routes (IPv4)", ("ip", "-4", "route"), "ipv4_route"),
    DiagCommand("Dumping routes (IPv6)", ("ip", "-6", "route"), "ipv6_route"),
    DiagCommand("Dumping interface info (IPv4)", ("ip", "-4", "addr"), "ipv4_addr"),
    DiagCommand("Dumping interface info (IPv6)", ("ip", "-6", "addr"), "ipv6_addr"),
    DiagCommand("Dumping nftables", ("nft", "-n", "-a", "list", "ruleset"), "nft_ruleset"),
    DiagCommand("Dumping iptables (IPv4)", ("iptables-save", "-c"), "ipv4_tables"),
    DiagCommand("Dumping iptables (IPv6)", ("ip6tables-save", "-c"), "ipv6_tables"),
    DiagCommand("Dumping ipsets", ("ipset", "list"), "ipsets"),
    DiagCommand("Copying journal for calico-node.service", ("journalctl", "-u", "calico-node.service", "--no-pager"),
                "journalctl_calico_node"),
    DiagCommand("Dumping felix stats", ("pkill", "-SIGUSR1", "felix"), ""),
)
NETSTAT = DiagCommand("Dumping netstat", ("netstat", "-a", "-n"), "netstat")
SS = DiagCommand("Dumping ss", ("ss", "-a", "-n"), "ss")


def run_command(cmd: DiagCommand, directory: Path, out: Callable[[str], None]) -> None:
    """Run one command and keep its combined output in ``directory/filename``."""
    if cmd.info:
        out(cmd.info + "\n")
    try:
        proc = subprocess.run(list(cmd.argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        content, ok = proc.stdout, proc.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        content, ok = (exc.output or b"") if isinstance(exc, subprocess.TimeoutExpired) else b"", False
    if not ok:
        out(f"Failed to run command: {' '.join(cmd.argv)}\nError: {content.decode(errors='replace')}\n")
        return
    if cmd.filename:
        (directory / cmd.filename).write_bytes(content)


def _docker():
    """A client for the Docker daemon, or the reason there is none."""
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client, ""
    except Exception as exc:  # no daemon, no socket, bad DOCKER_HOST...
        return None, f"cannot reach the Docker daemon: {exc}"


def container_ipset(client, reason: str, directory: Path, out: Callable[[str], None]) -> None:
    import docker

    if client is None:
        out(f"Skipping container ipset dump: {reason}\n")
        return
    try:
        container = client.containers.get(NODE_CONTAINER)
    except docker.errors.NotFound:
        out(f"Skipping container ipset dump: no {NODE_CONTAINER} container\n")
        return
    except docker.errors.APIError as exc:
        out(f"Skipping container ipset dump: {exc}\n")
        return
    if container.status != "running":
        out(f"Skipping container ipset dump: the {NODE_CONTAINER} container is {container.status}\n")
        return
    out("Dumping ipsets (container)\n")
    try:
        code, output = container.exec_run(["ipset", "list"])
    except docker.errors.APIError as exc:
        out(f"Failed to run command: docker exec {NODE_CONTAINER} ipset list\nError: {exc}\n")
        return
    if code != 0:
        out(f"Failed to run command: docker exec {NODE_CONTAINER} ipset list\n"
            f"Error: {output.decode(errors='replace')}\n")
        return
    (directory / "ipset_container").write_bytes(output)


def _created(container) -> str:
    """When a container was created, as ``docker ps --format {{.CreatedAt}}`` shows it
    (``2024-05-01 10:00:00 +0000 UTC``, local time)."""
    raw = container.attrs.get("Created", 0)
    if isinstance(raw, (int, float)):
        stamp = datetime.fromtimestamp(raw, timezone.utc)
    else:
        match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", str(raw))
        if not match:
            return str(raw)
        zone = "+00:00" if match.group(3) == "Z" else match.group(3)
        fraction = (match.group(2) or "0")[:6].ljust(6, "0")
        stamp = datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}")
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def container_logs(client, reason: str, log_dir: Path, out: Callable[[str], None]) -> None:
    """Every container named ``*calico*`` (pause containers aside): its log as
    ``<name>.log`` and the list with creation times as ``container_creation_time``."""
    import docker

    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        out(f"Error creating log directory: {exc}\n")
        return
    if client is None:
        out(f"Could not run docker command: {reason}\n")
        return
    try:
        containers = client.containers.list(all=True, filters={"name": CONTAINER_FILTER})
    except docker.errors.APIError as exc:
        out(f"Could not run docker command: {exc}\n")
        return
    containers = [c for c in containers if "k8s_POD" not in c.name]
    if not containers:
        return
    out("Copying logs from Calico containers\n")
    listing = "".join(f"{c.name}: {_created(c)}\n" for c in containers)
    (log_dir / "container_creation_time").write_text(listing)
    for container in containers:
        try:
            logs = container.logs(stdout=True, stderr=True)
        except docker.errors.APIError as exc:
            out(f"Could not pull log for container {container.name}: {exc}\n")
            continue
        (log_dir / f"{container.name}.log").write_bytes(logs)


def copy_logs(log_dir: str, target: Path, out: Callable[[str], None]) -> None:
    source = Path(log_dir)
    if not source.exists():
        out(f"Error copying log files: stat {log_dir}: no such file or directory\n")
    elif source.is_dir():
        out("Copying Calico logs\n")
        try:
            shutil.copytree(source, target, symlinks=True)
        except (OSError, shutil.Error) as exc:
            out(f"Error copying log files: {exc}\n")
    else:
        out(f"No logs found in {log_dir}; skipping log copying")


def diags(log_dir: str, out: Callable[[str], None]) -> Path:
    """Collect the bundle; returns the tarball's path."""
    out("Collecting diagnostics\n")
    tmp = Path(tempfile.mkdtemp(prefix="calico"))
    out(f"Using temp dir: {tmp}\n")
    diagnostics = tmp / "diagnostics"
    diagnostics.mkdir()

    commands = list(COMMANDS) + [NETSTAT if shutil.which("netstat") else SS]
    client, reason = _docker()
    try:
        for cmd in commands:
            run_command(cmd, diagnostics, out)
            if cmd.filename == "ipsets":
                # calicoctl's list has the container's IP sets right after the host's.
                container_ipset(client, reason, diagnostics, out)
        copy_logs(log_dir, diagnostics / "logs", out)
        container_logs(client, reason, diagnostics / "logs", out)
    finally:
        if client is not None:
            client.close()

    tarball = f"diags-{time.strftime('%Y%m%d_%H%M%S')}.tar.gz"
    packed = subprocess.run(["tar", "-zcvf", tarball, "diagnostics"], cwd=tmp, capture_output=True, text=True)
    if packed.returncode != 0:
        out(f"Error compressing the diagnostics: exit status {packed.returncode}\n")
    out(f"\nDiags saved to {tmp / tarball}\n")
    out("If required, you can upload the diagnostics bundle to a file sharing service.\n")
    return tmp / tarball
