"""``calico-node health``: the node's liveness and readiness probes (Calico's checks).

    calico-node health [--felix-live] [--felix-ready] [--bird-live] [--bird6-live]
                       [--bird-ready] [--bird6-ready] [--threshold-time=30s]

Calico's legacy single-dash spelling works too (``-felix-ready -bird-ready``,
``-threshold-time=30s``), and so does the flag-only form its DaemonSets use,
``calico-node -felix-live -bird-live``. Boolean flags also take ``=true``/``=false``.

Exit 0 and no output when every selected check passes; otherwise the first failure,
``calico/node is not ready: ...``, on stdout and exit 1. See ``node.supervise.health``
for what each check does. FELIX_HEALTHHOST / FELIX_HEALTHPORT locate Felix's endpoint;
CALICO_RUN_DIR the BIRD and supervisord sockets; CALICO_LIB_DIR the nodename file.
"""
from __future__ import annotations

import argparse
import sys

from node.gobool import parse_go_bool

FLAGS = ("felix-live", "felix-ready", "bird-live", "bird6-live", "bird-ready", "bird6-ready")
THRESHOLD_FLAG = "threshold-time"



class _GoBool(argparse.Action):
    """A Go boolean flag: ``-name`` or ``-name=VALUE`` (strconv.ParseBool's spellings)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs="?", const="true", default=False, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        value = parse_go_bool(values)
        if value is not None:
            setattr(namespace, self.dest, value)
        else:
            parser.error(f'invalid boolean value "{values}" for {option_string}: parse error')


def register(subparsers) -> None:
    p = subparsers.add_parser("health", help="run the node's liveness/readiness checks (probe command)",
                              allow_abbrev=False)
    for flag in FLAGS:
        p.add_argument(f"--{flag}", f"-{flag}", dest=flag.replace("-", "_"), action=_GoBool, metavar="BOOL",
                       help=f"run the {flag.replace('-', ' ')} check")
    p.add_argument(f"--{THRESHOLD_FLAG}", f"-{THRESHOLD_FLAG}", dest="threshold_time", default="30s",
                   metavar="DURATION",
                   help="Go duration; BIRD readiness: how long after startup all peers must be up (default 30s)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from node.cli.role_logging import setup_role_logging
    from node.felix.health import felix_health_endpoint
    from node.model.schema import parse_go_duration
    from node.supervise.health import Selection, run_checks

    setup_role_logging("health")
    try:
        threshold = parse_go_duration(args.threshold_time) / 1e9
    except ValueError:
        print(f'invalid value "{args.threshold_time}" for flag -threshold-time: parse error')
        return 1
    selection = Selection(**{flag.replace("-", "_"): getattr(args, flag.replace("-", "_")) for flag in FLAGS})
    if selection.felix_live or selection.felix_ready:
        try:
            felix_health_endpoint()
        except ValueError as exc:
            # Calico panics when FELIX_HEALTHPORT is not a number.
            print(f"panic: {exc}", file=sys.stderr)
            return 2
    failure = run_checks(selection, threshold)
    if failure:
        print(failure)
        return 1
    return 0
