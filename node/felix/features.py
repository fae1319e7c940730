"""What this host's iptables and kernel support, as Felix's feature detector tells it.

Felix reads ``iptables --version`` (whatever the backend) and the kernel version from
/proc/version, derives a few flags from them, and lets ``FeatureDetectOverride``
(``Flag=true,Other=false``; an empty or unparsable value keeps the detected one) force any
of them. The flags this agent acts on: ``RestoreSupportsLock`` (iptables-restore's
``--wait`` arguments), ``SNATFullyRandom`` and ``MASQFullyRandom`` (``--random-fully`` on
NAT-outgoing rules) and ``ChecksumOffloadBroken`` (TX checksum offload turned off on the
VXLAN device, for kernels up to 5.7 that corrupt SNATted VXLAN packets: Calico issue 3145).
"""
from __future__ import annotations

import dataclasses
import logging
import re
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from node.gobool import parse_go_bool

log = logging.getLogger(__name__)

IPTABLES_FALLBACK_VERSION = (1, 4, 7)
KERNEL_FALLBACK_VERSION = (3, 10, 0)

# Felix's flag names -> ours, for the flags this agent acts on.
FLAG_FIELDS = {
    "RestoreSupportsLock": "restore_supports_lock",
    "SNATFullyRandom": "snat_fully_random",
    "MASQFullyRandom": "masq_fully_random",
    "ChecksumOffloadBroken": "checksum_offload_broken",
}
# Felix's other flags: accepted, but nothing here depends on them.
OTHER_FLAGS = ("NFLogSize", "IPIPDeviceIsL3", "KernelSideRouteFiltering", "KernelHasUDPGSOFix",
               "NFTablesSupported")



@dataclass(frozen=True)
class Features:
    """The flags (the defaults are a modern host's: what the renderers assume when
    nothing was detected)."""

    restore_supports_lock: bool = True
    snat_fully_random: bool = True
    masq_fully_random: bool = True
    checksum_offload_broken: bool = False


def parse_version(text: str) -> tuple[int, ...] | None:
    """``1.8.9`` -> ``(1, 8, 9)``; like Felix, at most four parts split on ``.`` and ``-``.
    Tuples compare as Felix's versions do (a shorter equal prefix is older)."""
    try:
        return tuple(int(p) for p in re.split(r"[.-]", text, maxsplit=3))
    except ValueError:
        return None


def iptables_version(version_output: str) -> tuple[int, ...]:
    """The version in ``iptables --version`` output; the oldest supported one (1.4.7) when
    it cannot be read, which turns the optional features off."""
    m = re.search(r"v(\d+\.\d+\.\d+)", version_output)
    parsed = parse_version(m.group(1)) if m else None
    if parsed is None:
        log.warning("cannot parse iptables version from %r; assuming 1.4.7 (no optional features)",
                    version_output.strip())
        return IPTABLES_FALLBACK_VERSION
    return parsed


def kernel_version(proc_version: str) -> tuple[int, ...]:
    m = re.search(r"Linux version (\d+\.\d+\.\d+(?:-\d+)?)", proc_version)
    parsed = parse_version(m.group(1)) if m else None
    if parsed is None:
        log.warning("cannot parse the kernel version from %r; assuming 3.10.0", proc_version.strip())
        return KERNEL_FALLBACK_VERSION
    return parsed


def features_for(ipt: tuple[int, ...], kernel: tuple[int, ...]) -> Features:
    new_kernel = kernel >= (3, 14, 0)
    return Features(restore_supports_lock=ipt >= (1, 6, 2),
                    snat_fully_random=ipt >= (1, 6, 0) and new_kernel,
                    masq_fully_random=ipt >= (1, 6, 2) and new_kernel,
                    checksum_offload_broken=kernel <= (5, 7, 0))


def with_overrides(features: Features, overrides: Mapping[str, str] | Sequence[tuple[str, str]]) -> Features:
    """``features`` with FeatureDetectOverride applied as Felix applies it: each flag set
    to its value when that is one of Go's booleans; a value that is not (an empty one
    included) or a flag Felix does not know is logged and ignored."""
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    changes: dict[str, bool] = {}
    for flag, raw in items:
        value = parse_go_bool(raw)
        if value is None:
            if raw:  # (an empty value is documented as "detect it")
                log.warning("FeatureDetectOverride: %s=%r is not a boolean; keeping the detected value", flag, raw)
            continue
        if flag in FLAG_FIELDS:
            changes[FLAG_FIELDS[flag]] = value
            log.info("FeatureDetectOverride: %s forced to %s", flag, value)
        elif flag in OTHER_FLAGS:
            log.info("FeatureDetectOverride: %s=%s has no effect on this agent", flag, value)
        else:
            log.warning("FeatureDetectOverride: unknown feature flag %r; ignoring", flag)
    return dataclasses.replace(features, **changes)


class _Result:
    def __init__(self, returncode: int, stdout: str):
        self.returncode, self.stdout = returncode, stdout


def _run(argv: Sequence[str], stdin: str | None = None) -> _Result:
    try:
        res = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, check=False)
    except OSError:
        return _Result(127, "")
    return _Result(res.returncode, res.stdout)


def detect_features(run: Callable = _run, proc_version: str | None = None) -> Features:
    """Felix runs plain ``iptables --version`` whatever the backend, and reads the kernel's
    version from /proc/version. ``run(argv, stdin)`` returns an object with ``returncode``
    and ``stdout``."""
    res = run(["iptables", "--version"], None)
    ipt = iptables_version(res.stdout if res.returncode == 0 else "")
    if proc_version is None:
        try:
            with open("/proc/version", encoding="utf-8") as f:
                proc_version = f.read()
        except OSError:
            proc_version = ""
    return features_for(ipt, kernel_version(proc_version))


__all__ = ["FLAG_FIELDS", "Features", "detect_features", "features_for", "iptables_version", "kernel_version",
           "parse_version", "with_overrides"]
