"""``calico-node startup``: prepare this node's datastore state, once.

Like Calico's startup it changes nothing in the host's kernel: no modules loaded, no
sysctls set (``calicoctl node run`` prepares the host before it starts the image, and the
policy agent sets forwarding itself, as Felix does, unless ``IPForwarding=Disabled``).
``--kernel-prep`` opts in to loading the dataplane's modules and switching forwarding on
first (``startup.kernel``), for an operator who wants the node to do that itself.
"""
from __future__ import annotations

import shlex
from pathlib import Path


def add_kernel_prep_arguments(parser, help_prefix: str = "") -> None:
    """The startup stage's kernel options, shared with ``calico-node start``."""
    parser.add_argument("--kernel-prep", dest="kernel_prep", action="store_true", default=False,
                        help=f"{help_prefix}first load the dataplane's kernel modules and switch on forwarding and "
                             "a larger conntrack table, host-wide outside a network namespace (off by default, "
                             "as in Calico, whose node changes nothing in the kernel at startup)")
    parser.add_argument("--no-kernel-prep", dest="kernel_prep", action="store_false",
                        help=f"{help_prefix}no kernel preparation (the default; kept for older command lines)")
    parser.add_argument("--sysctl-root", default="/proc/sys", metavar="DIR",
                        help=f"{help_prefix}with --kernel-prep: where sysctls are read and written "
                             "(default: /proc/sys)")
    parser.add_argument("--modprobe", default="modprobe", metavar="CMD",
                        help=f"{help_prefix}with --kernel-prep: command used to load kernel modules "
                             "(default: modprobe)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "startup", help="run the startup stage once (Node, default pools, cluster defaults)")
    add_kernel_prep_arguments(p)
    p.add_argument("--complete-startup", action="store_true",
                   help="then mark the Kubernetes node's network available (NetworkUnavailable=False) at once")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from startup.run import Options, run

    options = Options(kernel_prep=args.kernel_prep, sysctl_root=Path(args.sysctl_root),
                      modprobe=tuple(shlex.split(args.modprobe)))
    status = run(options=options)
    if status == 0 and args.complete_startup:
        from startup.k8s import complete_startup

        return complete_startup()
    return status
