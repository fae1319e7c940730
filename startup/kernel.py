"""Kernel preparation for the startup stage, only when an operator asks for it.

Calico's node image changes nothing in the host's kernel at startup: ``calicoctl node
run`` loads ``xt_set`` and ``ip6_tables``, switches forwarding on and raises the conntrack
limit before it starts the container (``node.cli.ctl._node_run.prepare_kernel``, skipped
when ``CALICO_CTL_CONTAINER`` is set), and the policy agent sets forwarding itself unless
``IPForwarding=Disabled``, as Felix does. So ``calico-node startup`` and ``calico-node
start`` run this only with ``--kernel-prep``, for an operator who wants the node to
prepare the kernel itself. Then:

* the kernel modules the dataplane uses are loaded best effort (a container often cannot
  load modules, and built-in ones need no loading): each failure is one warning. Kernel
  modules are the host's even from inside a network namespace; ``ipip`` creates the
  ``tunl0`` device in every namespace;
* forwarding is switched on (fatal if that is impossible, since no traffic would be
  routed): the network namespace's own sysctl, the host's when run in the host's
  namespace;
* the conntrack table limit is raised like ``calicoctl node run`` raises it (a warning if
  it cannot be; a larger limit is left as it is).

Only values that differ are written, and each change is logged, so a read-only /proc/sys
that is already right is fine.

The sysctl root and the modprobe command are parameters so tests can aim them at a
temporary directory and a fake command instead of the host.
"""
from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from startup.logs import Fatal

log = logging.getLogger(__name__)

# Netfilter pieces the policy agent's rules use (as `calicoctl node checksystem` lists
# them), ip6_tables and xt_set that `calicoctl node run` loads, and the IPIP tunnel.
MODULES = (
    "ip_tables", "ip6_tables", "ip_set", "xt_set", "xt_conntrack", "xt_mark", "xt_multiport",
    "xt_addrtype", "xt_rpfilter", "xt_REJECT", "nf_conntrack_netlink", "ipip",
)
CONNTRACK_MAX = 1000000
DEFAULT_SYSCTL_ROOT = Path("/proc/sys")


@dataclass
class KernelReport:
    """What preparation did: modules that failed to load and sysctls it changed."""

    failed_modules: list[str] = field(default_factory=list)
    changed: dict[str, str] = field(default_factory=dict)


def load_modules(modprobe: Sequence[str], modules: Sequence[str] = MODULES) -> list[str]:
    """Run ``modprobe <module>`` for each module; return those that failed (one warning each)."""
    failed = []
    for module in modules:
        try:
            result = subprocess.run([*modprobe, module], capture_output=True, text=True, timeout=30)
            reason = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
            ok = result.returncode == 0
        except (OSError, subprocess.TimeoutExpired) as exc:
            ok, reason = False, str(exc)
        if not ok:
            log.warning("Could not load kernel module %s (%s); continuing without it", module, reason)
            failed.append(module)
    return failed


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def set_sysctl(root: Path, name: str, value: str, report: KernelReport) -> None:
    """Set ``name`` (dotted) to ``value`` if it differs; OSError when that fails."""
    path = root / name.replace(".", "/")
    current = _read(path)
    if current == value:
        log.debug("%s is already %s", name, value)
        return
    _write(path, value)
    report.changed[name] = value
    log.info("Set %s to %s (was %s)", name, value, current if current is not None else "unreadable")


def prepare_kernel(sysctl_root: Path = DEFAULT_SYSCTL_ROOT, modprobe: Sequence[str] = ("modprobe",),
                   modules: Sequence[str] = MODULES) -> KernelReport:
    report = KernelReport()
    log.info("Running command to load modules: %s %s", " ".join(modprobe), " ".join(modules))
    report.failed_modules = load_modules(modprobe, modules)
    log.info("Enabling IPv4 forwarding")
    try:
        set_sysctl(sysctl_root, "net.ipv4.ip_forward", "1", report)
    except OSError as exc:
        raise Fatal(f"Could not enable ipv4 forwarding: {exc}") from None
    if (sysctl_root / "net" / "ipv6").exists():
        log.info("Enabling IPv6 forwarding")
        try:
            set_sysctl(sysctl_root, "net.ipv6.conf.all.forwarding", "1", report)
        except OSError as exc:
            raise Fatal(f"Could not enable ipv6 forwarding: {exc}") from None
    log.info("Increasing conntrack limit")
    path = sysctl_root / "net" / "netfilter" / "nf_conntrack_max"
    current = _read(path)
    if current is not None and current.isdigit() and int(current) >= CONNTRACK_MAX:
        log.debug("net.netfilter.nf_conntrack_max is already %s", current)
    else:
        try:
            set_sysctl(sysctl_root, "net.netfilter.nf_conntrack_max", str(CONNTRACK_MAX), report)
        except OSError:
            log.warning("Could not set nf_conntrack_max. This may have an impact at scale.")
    return report
