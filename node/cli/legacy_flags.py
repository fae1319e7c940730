"""Calico's released flag-style command line (``calico-node -startup``, ``-confd``...).

Released calico-node (v3.32 and earlier) is one Go binary driven by boolean flags rather
than subcommands: its runit services run ``calico-node -felix``, ``-confd``,
``-monitor-addresses``..., its DaemonSets probe with ``calico-node -felix-live
-bird-live`` and stop with ``calico-node -shutdown``, and ``/usr/sbin/versions`` runs
``calico-node -v``. ``translate`` maps such a command line onto this project's
subcommands, deciding as Calico's ``main`` decides:

* flags are parsed as Go's ``flag`` package parses them: ``-name`` or ``--name``,
  booleans also as ``-name=true|false`` (strconv.ParseBool's spellings), the valued flags
  (``-threshold-time``, ``-confd-confdir``, ``-flows``) as ``-name=VALUE`` or ``-name
  VALUE``; parsing stops at ``--`` or the first argument that is not a flag;
* more than one of ``-v``, ``-felix``, ``-startup``, ``-confd``, ``-node-services``,
  ``-monitor-addresses``, ``-monitor-token``, ``-status-reporter`` is refused;
* any health flag (``-felix-live``, ``-bird-ready``...) runs the health check, whatever
  else is given; otherwise the first of ``-v``, ``-felix``, ``-startup`` (with
  ``-complete-startup``: mark the network available at once), ``-shutdown``,
  ``-complete-startup``, ``-confd`` (``-confd-run-once``: once), ``-allocate-tunnel-addrs``
  (``-allocate-tunnel-addrs-run-once``: once), ``-node-services``, ``-monitor-addresses``,
  ``-monitor-token``, ``-status-reporter``, ``-hostpath-init``, ``-show-status`` that is
  set picks the role;
* nothing picked: ``No valid options provided. Usage:`` and exit 1, as Calico.

As Calico v3.32 does, the single-service flags that ``-node-services`` superseded
(``-monitor-addresses``, ``-monitor-token``, ``-status-reporter`` and the daemon form of
``-allocate-tunnel-addrs``) still run, with a deprecation warning.

Calico's flags for what this image does not have (``-init``, ``-best-effort``, ``-bpf``,
``-flows``) are recognised and refused with exit 1 and a
sentence saying so. An unknown flag is refused as Go refuses it (``flag provided but not
defined: -x``, exit 1), unless a role was already picked: then it and everything after
it are handed to that role's own options (``calico-node -felix --dry-run``), which
Calico's binary does not have but this one's roles do.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Sequence

from node.cli.roles.health import FLAGS as HEALTH_FLAGS, THRESHOLD_FLAG
from node.gobool import parse_go_bool

# Calico's flags (v3.32.1's node/cmd/calico-node/main.go), each with what it does here.
BOOL_FLAGS = {
    "v": "print the version and exit",
    "node-services": "run complete-startup, the tunnel address allocator, the status reporter, the address "
                     "and CNI token monitors in one process (calico-node node-services)",
    "monitor-addresses": "deprecated: keep the Node's autodetected addresses current "
                         "(calico-node monitor-addresses)",
    "monitor-token": "deprecated: keep the CNI plugin's kubeconfig token fresh (calico-node monitor-token)",
    "status-reporter": "deprecated: report BIRD's status into CalicoNodeStatus resources "
                       "(calico-node status-reporter)",
    "felix": "run the policy agent (calico-node felix)",
    "bpf": "not in this image (eBPF debug tool)",
    "init": "not in this image (eBPF file systems)",
    "best-effort": "not in this image (with -init)",
    "hostpath-init": "create the host directories and give them to NODE_USER_ID (calico-node hostpath-init)",
    "startup": "run the startup stage once (calico-node startup)",
    "shutdown": "the preStop hook (calico-node shutdown)",
    "complete-startup": "mark the Kubernetes node's network available: with -startup at once, "
                        "alone once Calico is ready (calico-node complete-startup)",
    "allocate-tunnel-addrs": "assign this node's tunnel addresses (calico-node allocate-tunnel-addrs)",
    "allocate-tunnel-addrs-run-once": "with -allocate-tunnel-addrs: once, then exit",
    "felix-live": "health: the policy agent's liveness",
    "bird-live": "health: BIRD's liveness",
    "bird6-live": "health: BIRD6's liveness",
    "bird-ready": "health: BIRD's readiness",
    "bird6-ready": "health: BIRD6's readiness",
    "felix-ready": "health: the policy agent's readiness",
    "show-status": "print BIRD's status, peers and routes (calico-node show-status)",
    "confd": "render BIRD's configuration (calico-node confd)",
    "confd-run-once": "with -confd: render once, then exit",
    "confd-keep-stage-file": "with -confd: accepted, no effect here",
}
VALUE_FLAGS = {
    "threshold-time": ("30s", "health: how long after BIRD starts its peers must be up"),
    "confd-confdir": ("/etc/calico/confd", "with -confd: accepted, only the default is used here"),
    "flows": ("0", "not in this image (flow logs)"),
}
DEFAULT_CONFD_CONFDIR = VALUE_FLAGS["confd-confdir"][0]

# At most one of these (Calico's "onlyOne" list).
EXCLUSIVE = ("v", "felix", "startup", "confd", "node-services", "monitor-addresses", "monitor-token",
             "status-reporter")

# In Calico's order of precedence: flag -> the subcommand it runs.
ROLES = (
    ("v", "version"), ("felix", "felix"), ("bpf", None), ("init", None), ("startup", "startup"),
    ("shutdown", "shutdown"), ("complete-startup", "complete-startup"), ("confd", "confd"),
    ("allocate-tunnel-addrs", "allocate-tunnel-addrs"), ("node-services", "node-services"),
    ("monitor-addresses", "monitor-addresses"), ("monitor-token", "monitor-token"),
    ("status-reporter", "status-reporter"), ("hostpath-init", "hostpath-init"), ("show-status", "show-status"),
)

# The single-service flags node-services superseded (Calico still runs them, with a warning).
DEPRECATED = ("monitor-addresses", "monitor-token", "status-reporter")

UNSUPPORTED = {
    "bpf": "this image has no eBPF dataplane",
    "init": "this image has no eBPF dataplane, whose file systems -init mounts",
    "flows": "this image has no flow logs",
}



class LegacyUsage(Exception):
    """The flag-style command line cannot run: ``message`` goes to stdout (as Calico
    prints it), ``details`` to stderr, and the process exits with ``code``."""

    def __init__(self, message: str, code: int = 1, details: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


@dataclass
class Parsed:
    bools: dict[str, bool] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    rest: list[str] = field(default_factory=list)   # what follows the flags
    unknown: str | None = None                       # the first flag not Calico's, if any

    def on(self, name: str) -> bool:
        return self.bools.get(name, False)


def usage() -> str:
    lines = ["Flags (Calico's flag-style command line; each maps onto a calico-node subcommand):"]
    for name in sorted({*BOOL_FLAGS, *VALUE_FLAGS}):
        if name in VALUE_FLAGS:
            default, text = VALUE_FLAGS[name]
            lines.append(f"  -{name} value\n    \t{text} (default {default})")
        else:
            lines.append(f"  -{name}\n    \t{BOOL_FLAGS[name]}")
    return "\n".join(lines)


def is_flag_style(argv: Sequence[str]) -> bool:
    """A command line that starts with a flag other than help (which argparse answers)."""
    return bool(argv) and argv[0].startswith("-") and argv[0] != "-" and argv[0] not in ("-h", "--help")


def parse(argv: Sequence[str]) -> Parsed:
    out = Parsed()
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.rest = list(argv[i + 1:])
            return out
        if not token.startswith("-") or token == "-":
            out.rest = list(argv[i:])
            return out
        body = token[2:] if token.startswith("--") else token[1:]
        if not body or body[0] in "-=":
            raise LegacyUsage(f"bad flag syntax: {token}")
        name, has_value, value = body.partition("=")
        if name in BOOL_FLAGS:
            parsed = parse_go_bool(value) if has_value else True
            if parsed is not None:
                out.bools[name] = parsed
            else:
                raise LegacyUsage(f'invalid boolean value "{value}" for -{name}: parse error')
        elif name in VALUE_FLAGS:
            if not has_value:
                if i + 1 >= len(argv):
                    raise LegacyUsage(f"flag needs an argument: -{name}")
                i += 1
                value = argv[i]
            out.values[name] = value
        else:
            out.unknown = token
            out.rest = list(argv[i:])
            return out
        i += 1
    return out


def _warn(message: str) -> None:
    print(f"calico-node: {message}", file=sys.stderr)


def translate(argv: Sequence[str], warn: Callable[[str], None] = _warn) -> list[str]:
    """The subcommand form of a flag-style command line (anything else is returned as it
    is); ``LegacyUsage`` when Calico would refuse it."""
    argv = list(argv)
    if not is_flag_style(argv):
        return argv
    parsed = parse(argv)
    chosen = [name for name in EXCLUSIVE if parsed.on(name)]
    if len(chosen) > 1:
        raise LegacyUsage("More than one incompatible argument provided")

    health = [name for name in HEALTH_FLAGS if parsed.on(name)]
    role = next(((flag, sub) for flag, sub in ROLES if parsed.on(flag)), None)
    if role is None and not health and "flows" in parsed.values and parsed.values["flows"] not in ("0", ""):
        role = ("flows", None)
    if parsed.unknown is not None and (health or role is None):
        # Go's flag package refuses it before anything runs.
        raise LegacyUsage(f"flag provided but not defined: {parsed.unknown}", details=usage())

    if health:
        out = ["health", *(f"--{name}" for name in health)]
        if THRESHOLD_FLAG in parsed.values:
            out.append(f"--{THRESHOLD_FLAG}={parsed.values[THRESHOLD_FLAG]}")
        return out
    if role is None:
        raise LegacyUsage("No valid options provided. Usage:", details=usage())
    flag, sub = role
    if sub is None:
        raise LegacyUsage(f"calico-node -{flag} is not supported: {UNSUPPORTED.get(flag, UNSUPPORTED['init'])}")

    out = [sub]
    if flag in DEPRECATED or (flag == "allocate-tunnel-addrs" and not parsed.on("allocate-tunnel-addrs-run-once")):
        what = "-allocate-tunnel-addrs daemon mode" if flag == "allocate-tunnel-addrs" else f"-{flag}"
        warn(f"{what} is deprecated, use -node-services instead")
    if sub == "startup" and parsed.on("complete-startup"):
        out.append("--complete-startup")
    elif sub == "confd":
        if parsed.on("confd-run-once"):
            out.append("--oneshot")
        if parsed.on("confd-keep-stage-file"):
            warn("-confd-keep-stage-file has no effect: the renderer writes each file through a "
                 "temporary file that it always removes")
        confdir = parsed.values.get("confd-confdir")
        if confdir is not None and confdir.rstrip("/") != DEFAULT_CONFD_CONFDIR:
            warn(f"-confd-confdir={confdir} is ignored: the renderer's templates come from "
                 "CALICO_TEMPLATES_DIR and its output goes to $CALICO_CONFIG_DIR/confd/config")
    elif sub == "allocate-tunnel-addrs" and parsed.on("allocate-tunnel-addrs-run-once"):
        out.append("--run-once")
    return [*out, *parsed.rest] if parsed.unknown is not None else out
