"""``calicoctl node checksystem [-f KERNEL_CONFIG]``: can this host run a Calico node?

As calicoctl v3.32.1 does it:

* Kernel version: ``uname -r`` (trimmed) must compare >= 2.6.24 the way go-version's
  ``CompareNormalized`` compares, so ``2.6.24-rc1`` or ``2.6.24-foo`` is *older* than
  2.6.24. If ``uname`` fails the row is ``FAIL`` and ``Error executing command: ...``.
* Kernel modules: ``uname -r`` is run again and then ``lsmod``; if either fails,
  ``Error executing command: ...`` is printed and no module is checked (the check fails).
  Each of the 19 modules in ``REQUIRED_MODULES`` is present when any of these matches:
  ``/<module>.ko`` in a line of ``/lib/modules/<release>/modules.dep`` or
  ``modules.builtin``; the module name anywhere in ``lsmod``'s output (unanchored); a
  line ``<OPTION>=<anything>`` in the kernel config (``-f``, else the first of the usual
  places that exists), so ``OPTION=n`` counts; a line that is exactly ``<OPTION>`` in
  ``/proc/net/ip_tables_matches`` (which is how ``xt_icmp``/``xt_icmp6``, whose "option"
  is ``icmp``, are found). Names and options are used as regular expressions, unescaped,
  as calicoctl does. A missing module prints a warning and a ``FAIL`` row; if
  ``ip6_tables`` is the only one missing, an IPv6 warning follows and the check passes.
* calicoctl keeps its modules in a Go map, so its row order changes from run to run;
  here the rows are printed sorted by module name.

A failed check prints calicoctl's error on stderr (exit status 1). Every host path is a
field of ``HostView`` so the checks can be run against a made-up host in tests.
"""
from __future__ import annotations

import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from node.cli.ctl._common import CommandFailed

MIN_KERNEL = "2.6.24"

# Module -> the kernel config option (or ip_tables_matches line) that also proves it.
REQUIRED_MODULES = {
    "ip_set": "CONFIG_IP_SET",
    "ip6_tables": "CONFIG_IP6_NF_IPTABLES",
    "ip_tables": "CONFIG_IP_NF_IPTABLES",
    "ipt_ipvs": "CONFIG_NETFILTER_XT_MATCH_IPVS",
    "vfio-pci": "CONFIG_VFIO",
    "xt_bpf": "CONFIG_BPF",
    "ipt_REJECT": "CONFIG_NFT_REJECT",
    "ipt_rpfilter": "CONFIG_IP_NF_MATCH_RPFILTER",
    "xt_rpfilter": "CONFIG_IP_NF_MATCH_RPFILTER",
    "ipt_set": "CONFIG_NET_EMATCH_IPSET",
    "nf_conntrack_netlink": "CONFIG_NF_CT_NETLINK",
    "xt_addrtype": "CONFIG_NETFILTER_XT_MATCH_ADDRTYPE",
    "xt_conntrack": "CONFIG_NETFILTER_XT_MATCH_CONNTRACK",
    "xt_icmp": "icmp",
    "xt_icmp6": "icmp",
    "xt_mark": "CONFIG_IP_NF_TARGET_MARK",
    "xt_multiport": "CONFIG_IP_NF_MATCH_MULTIPORT",
    "xt_set": "CONFIG_NETFILTER_XT_SET",
    "xt_u32": "CONFIG_NETFILTER_XT_MATCH_U32",
}
IPV6_ONLY_MODULE = "ip6_tables"


def _uname_release() -> str:
    """``uname -r``'s output, untrimmed (the version-mismatch message prints it as is)."""
    return subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout


def _lsmod() -> str:
    return subprocess.run(["lsmod"], capture_output=True, text=True, check=True).stdout


@dataclass
class HostView:
    """Where the checks look. The defaults are the real host."""

    release: Callable[[], str] = _uname_release
    lsmod: Callable[[], str] = _lsmod
    lib_modules: Path = Path("/lib/modules")
    root: Path = Path("/")
    ip_tables_matches: Path = Path("/proc/net/ip_tables_matches")

    def config_candidates(self, release: str) -> list[Path]:
        r = self.root
        return [r / "usr/src/linux/.config", r / f"boot/config-{release}", r / f"usr/src/linux-{release}/.config",
                r / f"usr/src/linux-headers-{release}/.config", self.lib_modules / release / "build/.config"]


def result_line(value: str, result: str) -> str:
    return f"\t\t{value:<20}\t\t\t\t\t{result}\n"


def exec_error(command: str, exc: Exception) -> str:
    """How Go's os/exec words a command that could not run or did not exit 0."""
    if isinstance(exc, subprocess.CalledProcessError):
        if exc.returncode < 0:
            name = signal.strsignal(-exc.returncode) or f"signal {-exc.returncode}"
            return f"signal: {name.lower()}"
        return f"exit status {exc.returncode}"
    if isinstance(exc, FileNotFoundError):
        return f'exec: "{command}": executable file not found in $PATH'
    if isinstance(exc, OSError) and exc.strerror:
        return f"fork/exec {command}: {exc.strerror.lower()}"
    return str(exc)


# --- go-version's CompareNormalized (no normalising despite the name) -------------------

_SPECIAL_FORMS = {"SNAPSHOT": -7, "snapshot": -7, "dev": -6, "alpha": -5, "a": -5, "beta": -4, "b": -4,
                  "RC": -3, "rc": -3, "#": -2, "p": 1, "pl": 1}
_UNKNOWN_FORM = -7
_INT64_MAX = 2 ** 63 - 1


def _prep_version(version: str) -> list[str]:
    if not version:
        return [""]
    version = re.sub(r"[_\-+]", ".", version)
    version = re.sub(r"([^.0-9]+)", r".\1.", version)
    version = re.sub(r"\.{2,}", ".", version)
    return version.split(".")


def _num_version(value: str) -> int:
    if value == "":
        return 0
    if re.fullmatch(r"[0-9]+", value) and int(value) <= _INT64_MAX:
        return int(value)
    return _SPECIAL_FORMS.get(value, _UNKNOWN_FORM)


def _compare_simple(version1: str, version2: str) -> int:
    v1, v2 = _prep_version(version1), _prep_version(version2)
    for i in range(max(len(v1), len(v2))):
        if i < len(v1) and i < len(v2) and v1[i] == v2[i]:
            continue
        r = _num_version(v1[i]) if i < len(v1) else 0
        l = _num_version(v2[i]) if i < len(v2) else 0  # noqa: E741
        if r != l:
            return -1 if r < l else 1
    return 0


def kernel_at_least(release: str, minimum: str = MIN_KERNEL) -> bool:
    return _compare_simple(release, minimum) >= 0


# --- the module checks --------------------------------------------------------------------

def _file_has_line(path: Path | str, pattern: str) -> bool:
    """Does any line (split at \\n, a trailing \\r dropped) of ``path`` match ``pattern``
    (a search, not anchored unless the pattern is)? An unreadable file matches nothing."""
    try:
        regex = re.compile(pattern)
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            for raw in fh:
                text = raw[:-1] if raw.endswith("\n") else raw
                if text.endswith("\r") and raw.endswith("\n"):
                    text = text[:-1]
                if regex.search(text):
                    return True
    except (OSError, re.error):
        return False
    return False


def module_available(module: str, option: str, host: HostView, release: str, lsmod: str,
                     config: Path | None) -> bool:
    modules_dir = host.lib_modules / release
    if _file_has_line(modules_dir / "modules.dep", rf"\/{module}.ko"):
        return True
    if _file_has_line(modules_dir / "modules.builtin", rf"\/{module}.ko"):
        return True
    try:
        if re.search(module, lsmod):
            return True
    except re.error:
        return False
    if config is not None and _file_has_line(config, f"^{option}=."):
        return True
    return _file_has_line(host.ip_tables_matches, f"^{option}$")


def _check_kernel_version(host: HostView, out: Callable[[str], None]) -> bool:
    try:
        raw = host.release()
    except (OSError, subprocess.CalledProcessError) as exc:
        out(result_line("", "FAIL"))
        out(f"Error executing command: {exec_error('uname', exc)}\n")
        return False
    release = raw.strip()
    if not kernel_at_least(release):
        out(result_line(release, "FAIL"))
        out(f"Minimum kernel version to run Calico is {MIN_KERNEL}. Detected kernel version: {raw}")
        return False
    out(result_line(release, "OK"))
    return True


def _check_kernel_modules(kernel_config: str, host: HostView, out: Callable[[str], None]) -> bool:
    try:
        release = host.release().strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        out(f"Error executing command: {exec_error('uname', exc)}\n")
        return False
    if kernel_config:
        config: Path | None = Path(kernel_config)
    else:
        config = next((p for p in host.config_candidates(release) if p.exists()), None)
    try:
        lsmod = host.lsmod()
    except (OSError, subprocess.CalledProcessError) as exc:
        out(f"Error executing command: {exec_error('lsmod', exc)}\n")
        return False
    missing = []
    for module in sorted(REQUIRED_MODULES):
        if module_available(module, REQUIRED_MODULES[module], host, release, lsmod, config):
            out(result_line(module, "OK"))
        else:
            out(f"WARNING: Unable to detect the {module} module as Loaded/Builtin module or lsmod\n")
            missing.append(module)
            out(result_line(module, "FAIL"))
    if missing == [IPV6_ONLY_MODULE]:
        out(f"WARNING: IPv6 will be unavailable as {IPV6_ONLY_MODULE} kernel module is not found\n")
        return True
    return not missing


def checksystem(kernel_config: str, out: Callable[[str], None], host: HostView = HostView()) -> None:
    """Print the report; raise CommandFailed when the host falls short."""
    out("Checking kernel version...\n")
    ok = _check_kernel_version(host, out)
    out("Checking kernel modules...\n")
    ok = _check_kernel_modules(kernel_config, host, out) and ok
    if not ok:
        raise CommandFailed("system doesn't meet one or more minimum systems requirements to run Calico")
    out("System meets minimum system requirements to run Calico!\n")
