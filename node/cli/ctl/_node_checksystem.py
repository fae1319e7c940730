"""``calicoctl node checksystem [-f KERNEL_CONFIG]``: can this host run a Calico node?

The kernel must be 2.6.24 or newer, and each kernel feature Calico's dataplane uses must be
present: a module (or one of its alternative names) found in ``/sys/module``, in
``modules.dep`` or ``modules.builtin`` of the running kernel, or in ``lsmod``; failing
those, one of its ``CONFIG_*`` options set to ``y`` or ``m`` in the kernel config (the
``-f`` file, else the first of the usual places that exists). Optional features only warn.
The report's layout and wording are calicoctl's. One difference: where ``lsmod`` fails
(a kernel without loadable modules has no /proc/modules) calicoctl skips every module
check and fails; here that is a warning and the other sources are still consulted.

Every host path is a field of ``HostView`` so the checks can be run against a made-up
host in tests.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from node.cli.ctl._common import CommandFailed

MIN_KERNEL = "2.6.24"


@dataclass(frozen=True)
class ModuleCheck:
    name: str
    config_options: tuple[str, ...]
    alternatives: tuple[str, ...] = ()
    optional: bool = False


# calicoctl's list, in its order.
MODULES = (
    ModuleCheck("ip_set", ("CONFIG_IP_SET",)),
    ModuleCheck("ip6_tables", ("CONFIG_IP6_NF_IPTABLES",), optional=True),
    ModuleCheck("ip_tables", ("CONFIG_IP_NF_IPTABLES",)),
    ModuleCheck("ipt_ipvs", ("CONFIG_NETFILTER_XT_MATCH_IPVS",), ("xt_ipvs",)),
    ModuleCheck("vfio-pci", ("CONFIG_VFIO", "CONFIG_VFIO_PCI"), ("vfio_pci",)),
    ModuleCheck("xt_bpf", ("CONFIG_BPF", "CONFIG_NETFILTER_XT_MATCH_BPF"), optional=True),
    ModuleCheck("ipt_REJECT", ("CONFIG_IP_NF_TARGET_REJECT", "CONFIG_NFT_REJECT", "CONFIG_NETFILTER_XT_TARGET_REJECT"),
                ("xt_REJECT",)),
    ModuleCheck("xt_rpfilter", ("CONFIG_IP_NF_MATCH_RPFILTER", "CONFIG_IP6_NF_MATCH_RPFILTER",
                                "CONFIG_NETFILTER_XT_MATCH_RPFILTER"), ("ipt_rpfilter",)),
    ModuleCheck("nf_conntrack_netlink", ("CONFIG_NF_CT_NETLINK",)),
    ModuleCheck("xt_addrtype", ("CONFIG_NETFILTER_XT_MATCH_ADDRTYPE",)),
    ModuleCheck("xt_conntrack", ("CONFIG_NETFILTER_XT_MATCH_CONNTRACK",)),
    ModuleCheck("xt_mark", ("CONFIG_NETFILTER_XT_MARK", "CONFIG_IP_NF_TARGET_MARK", "CONFIG_NETFILTER_XT_TARGET_MARK")),
    ModuleCheck("xt_multiport", ("CONFIG_NETFILTER_XT_MATCH_MULTIPORT", "CONFIG_IP_NF_MATCH_MULTIPORT")),
    ModuleCheck("xt_set", ("CONFIG_NETFILTER_XT_SET",), ("ipt_set",)),
    ModuleCheck("xt_u32", ("CONFIG_NETFILTER_XT_MATCH_U32",), optional=True),
)


def _uname_release() -> str:
    return subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()


def _lsmod() -> str:
    return subprocess.run(["lsmod"], capture_output=True, text=True, check=True).stdout


@dataclass
class HostView:
    """Where the checks look. The defaults are the real host."""

    release: Callable[[], str] = _uname_release
    lsmod: Callable[[], str] = _lsmod
    sys_module: Path = Path("/sys/module")
    lib_modules: Path = Path("/lib/modules")
    root: Path = Path("/")

    def config_candidates(self, release: str) -> list[Path]:
        r = self.root
        return [r / "usr/src/linux/.config", r / f"boot/config-{release}", r / f"usr/src/linux-{release}/.config",
                r / f"usr/src/linux-headers-{release}/.config", self.lib_modules / release / "build/.config"]


def result_line(value: str, result: str) -> str:
    return f"\t\t{value:<20}\t\t\t\t\t{result}\n"


def _version_parts(text: str) -> list[int]:
    """The leading dotted numbers of a kernel release ("6.1.0-18-amd64" -> [6, 1, 0])."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return [int(p) for p in match.group(0).split(".")] if match else []


def kernel_at_least(release: str, minimum: str = MIN_KERNEL) -> bool:
    have, need = _version_parts(release), _version_parts(minimum)
    if not have:
        return False
    width = max(len(have), len(need))
    return have + [0] * (width - len(have)) >= need + [0] * (width - len(need))


def _in_module_list(path: Path, module: str) -> bool:
    pattern = re.compile("/" + re.escape(module) + r"\.ko(\.(gz|xz|zst|bz2))?")
    try:
        with open(path, errors="replace") as fh:
            return any(pattern.search(line) for line in fh)
    except OSError:
        return False


def _in_lsmod(lsmod: str, module: str) -> bool:
    for candidate in {module, module.replace("-", "_"), module.replace("_", "-")}:
        if re.search(r"(?m)^" + re.escape(candidate) + r"\s", lsmod):
            return True
    return False


def _in_config(path: Path | None, option: str) -> bool:
    if path is None:
        return False
    pattern = re.compile("^" + re.escape(option) + "=[ym]")
    try:
        with open(path, errors="replace") as fh:
            return any(pattern.match(line) for line in fh)
    except OSError:
        return False


def module_available(check: ModuleCheck, host: HostView, release: str, lsmod: str, config: Path | None) -> bool:
    dep = host.lib_modules / release / "modules.dep"
    builtin = host.lib_modules / release / "modules.builtin"
    for name in (check.name, *check.alternatives):
        if (host.sys_module / name.replace("-", "_")).exists():
            return True
        if _in_module_list(dep, name) or _in_module_list(builtin, name) or _in_lsmod(lsmod, name):
            return True
    return any(_in_config(config, option) for option in check.config_options)


def checksystem(kernel_config: str, out: Callable[[str], None], host: HostView = HostView()) -> None:
    """Print the report; raise CommandFailed when the host falls short."""
    ok = True
    out("Checking kernel version...\n")
    try:
        release = host.release()
    except (OSError, subprocess.CalledProcessError) as exc:
        out(result_line("", "FAIL"))
        reason = f"exit status {exc.returncode}" if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        out(f"Error executing command: {reason}\n")
        release = ""
        ok = False
    if release:
        if kernel_at_least(release):
            out(result_line(release, "OK"))
        else:
            out(result_line(release, "FAIL"))
            out(f"Minimum kernel version to run Calico is {MIN_KERNEL}. Detected kernel version: {release}\n")
            ok = False

    out("Checking kernel modules...\n")
    try:
        lsmod = host.lsmod()
    except (OSError, subprocess.CalledProcessError) as exc:
        # calicoctl gives up on the module checks here; a kernel without loadable-module
        # support (no /proc/modules) has no lsmod, yet its built-in features are in
        # /sys/module and its config, so the checks go on without lsmod.
        reason = f"exit status {exc.returncode}" if isinstance(exc, subprocess.CalledProcessError) else str(exc)
        out(f"WARNING: lsmod failed ({reason}); checking without it\n")
        lsmod = ""
    if kernel_config:
        config: Path | None = Path(kernel_config)
    else:
        config = next((p for p in host.config_candidates(release) if p.exists()), None)
    for check in MODULES:
        if module_available(check, host, release, lsmod, config):
            out(result_line(check.name, "OK"))
        elif check.optional:
            out(f"WARNING: Unable to detect optional module/feature {check.name}; continuing\n")
            out(result_line(check.name, "SKIP"))
        else:
            out(f"WARNING: Unable to detect the {check.name} module as Loaded/Builtin module or lsmod\n")
            out(result_line(check.name, "FAIL"))
            ok = False
    if not ok:
        raise CommandFailed("system doesn't meet one or more minimum systems requirements to run Calico")
    out("System meets minimum system requirements to run Calico!\n")
