"""``calico-node startup``: prepare the kernel and this node's datastore state, once."""
from __future__ import annotations

import shlex
from pathlib import Path


def add_kernel_prep_arguments(parser, help_prefix: str = "") -> None:
    """The startup stage's kernel options, shared with ``calico-node start``."""
    parser.add_argument("--no-kernel-prep", action="store_true",
                        help=f"{help_prefix}skip loading kernel modules and setting forwarding/conntrack sysctls")
    parser.add_argument("--sysctl-root", default="/proc/sys", metavar="DIR",
                        help=f"{help_prefix}where sysctls are read and written (default: /proc/sys)")
    parser.add_argument("--modprobe", default="modprobe", metavar="CMD",
                        help=f"{help_prefix}command used to load kernel modules (default: modprobe)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "startup", help="run the startup stage once (kernel preparation, Node, default pools, cluster defaults)")
    add_kernel_prep_arguments(p)
    p.add_argument("--complete-startup", action="store_true",
                   help="then mark the Kubernetes node's network available (NetworkUnavailable=False) at once")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from startup.run import Options, run

    options = Options(kernel_prep=not args.no_kernel_prep, sysctl_root=Path(args.sysctl_root),
                      modprobe=tuple(shlex.split(args.modprobe)))
    status = run(options=options)
    if status == 0 and args.complete_startup:
        from startup.k8s import complete_startup

        return complete_startup()
    return status
