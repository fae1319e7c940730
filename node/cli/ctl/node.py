"""``calicoctl node run|status|checksystem|diags``: the commands run on the node's host.

* ``run``: start the node image in Docker (node/cli/ctl/_node_run.py); ``--dryrun``
  prints the docker command instead.
* ``status``: is the policy agent running, and BIRD's BGP peers (_node_status.py).
* ``checksystem [-f KERNEL_CONFIG]``: kernel version and features (_node_checksystem.py).
* ``diags [--log-dir DIR]``: a diagnostics tarball (_node_diags.py).

All but ``run --dryrun`` need root, as calicoctl's do.
"""
from __future__ import annotations

import sys

from node.cli.ctl._common import CommandFailed

NODE_HELP = ("Manage the Calico node on this host: start it, check its status, check the host, "
             "gather diagnostics.")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _say(text: str) -> None:
    print(text, flush=True)


def register(subparsers) -> None:
    node = subparsers.add_parser("node", help="Calico node management", description=NODE_HELP)
    sub = node.add_subparsers(dest="node_command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the Calico node container image",
                       description="Start the Calico node container on this host. Most options mirror fields of "
                                   "the Node resource and are autodetected when omitted.")
    p.add_argument("--ip", default="", help="this node's IPv4 routing address, or autodetect")
    p.add_argument("--ip6", default="", help="this node's IPv6 routing address, or autodetect")
    p.add_argument("--as", dest="as_number", default="", help="this node's AS number (plain or dotted)")
    p.add_argument("--name", default="", help="the node's name (default: this host's name)")
    p.add_argument("--ip-autodetection-method", default="first-found",
                   help="how to find the IPv4 address: first-found, can-reach=DEST, interface=REGEX,... "
                        "or skip-interface=REGEX,...")
    p.add_argument("--ip6-autodetection-method", default="first-found", help="the same for IPv6")
    p.add_argument("--log-dir", default="/var/log/calico", help="host directory for Calico's logs")
    p.add_argument("--node-image", default="quay.io/calico/node:latest", help="the node image to run")
    p.add_argument("--backend", default="bird", help="networking backend: bird or none")
    p.add_argument("--dryrun", action="store_true", help="print the docker command instead of running it")
    p.add_argument("--init-system", action="store_true",
                   help="run in the foreground (for an init system) and remove the container when it stops")
    p.add_argument("--no-default-ippools", action="store_true", help="do not create the default IP pools")
    p.add_argument("--felix-config", default="", help="a host file mounted as /etc/calico/felix.cfg")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="view the status of the Calico node on this host",
                       description="Show whether the Calico node's policy agent runs and the state of its BGP "
                                   "peers. Run it on the node itself.")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("checksystem", help="check that this host can run a Calico node",
                       description="Check the kernel version and the kernel features Calico needs.")
    p.add_argument("-f", "--kernel-config", default="", help="kernel config file to read instead of the usual places")
    p.set_defaults(func=cmd_checksystem)

    p = sub.add_parser("diags", help="gather a diagnostics bundle for the Calico node",
                       description="Collect logs and system information into a tarball.")
    p.add_argument("--log-dir", default="/var/log/calico", help="the directory holding Calico's logs")
    p.set_defaults(func=cmd_diags)


def _stdout_failure(exc: CommandFailed) -> int:
    print(exc, flush=True)
    return 1


def cmd_run(args) -> int:
    from node.cli.ctl._node_run import RunOptions, StdoutFailure, run_node

    opts = RunOptions(ip=args.ip, ip6=args.ip6, as_number=args.as_number, name=args.name,
                      ip_autodetection_method=args.ip_autodetection_method,
                      ip6_autodetection_method=args.ip6_autodetection_method, log_dir=args.log_dir,
                      node_image=args.node_image, backend=args.backend, config=args.config,
                      felix_config=args.felix_config, dryrun=args.dryrun, init_system=args.init_system,
                      no_default_ippools=args.no_default_ippools)
    try:
        return run_node(opts, out=_say)
    except StdoutFailure as exc:
        return _stdout_failure(exc)


def _as_root(action) -> int:
    """Run ``action`` once the root check passes (calicoctl prints that failure on stdout)."""
    from node.cli.ctl._node_run import StdoutFailure, enforce_root

    try:
        enforce_root()
    except StdoutFailure as exc:
        return _stdout_failure(exc)
    action()
    return 0


def cmd_status(args) -> int:
    from node.cli.ctl._node_status import node_status
    from node.config import Paths

    return _as_root(lambda: node_status(Paths.from_env().run_dir, _write))


def cmd_checksystem(args) -> int:
    from node.cli.ctl._node_checksystem import checksystem

    return _as_root(lambda: checksystem(args.kernel_config, _write))


def cmd_diags(args) -> int:
    from node.cli.ctl._node_diags import diags

    return _as_root(lambda: diags(args.log_dir, _write))
