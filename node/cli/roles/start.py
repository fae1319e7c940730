"""``calico-node start``: the image's entrypoint, in the foreground.

    calico-node start [--kernel-prep [--sysctl-root DIR] [--modprobe CMD]]
    calico-node start --print-config

Runs the startup stage, ``allocate-tunnel-addrs --run-once``, then becomes
``supervisord -n`` running the policy agent, the renderer, BIRD/BIRD6, the address
monitor and the tunnel-address allocator as ``CALICO_NETWORKING_BACKEND`` and
``CALICO_DISABLE_FELIX`` ask (see ``node.supervise.boot``). ``--print-config`` prints
the supervisord configuration this environment gets and does nothing else.

As Calico's image, it changes nothing in the host's kernel by itself: ``calicoctl node
run`` loads modules and sets the forwarding and conntrack sysctls before it starts the
container, and the policy agent switches forwarding on (``IPForwarding``). ``--kernel-prep``
has the startup stage do that preparation first (see ``startup.kernel``).

Paths follow CALICO_RUN_DIR, CALICO_LIB_DIR, CALICO_CONFIG_DIR and CALICO_LOG_DIR, so one
``calico-node start`` per network namespace gives independent nodes on one machine.
"""
from __future__ import annotations

from node.cli.roles.startup import add_kernel_prep_arguments


def register(subparsers) -> None:
    p = subparsers.add_parser("start", help="boot the node and supervise its programs (the image entrypoint)")
    add_kernel_prep_arguments(p, help_prefix="startup stage: ")
    p.add_argument("--print-config", action="store_true",
                   help="print the supervisord configuration for this environment and exit")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from node.supervise.boot import StartOptions, boot, print_config

    if args.print_config:
        return print_config()
    return boot(StartOptions(kernel_prep=args.kernel_prep, sysctl_root=args.sysctl_root,
                             modprobe=args.modprobe))
