"""``calico-node felix``: the policy agent (Felix's job).

    calico-node felix                         run the agent (program iptables, IP sets, routes)
    calico-node felix --dry-run [--from-file F ...] [--ip-version 4|6] [--ipsets | --routes | --qos]

The agent follows the datastore and keeps this network namespace's dataplane equal to
what Calico's resources ask for (see ``node.felix.agent``). It exits 0 on SIGTERM (the
dataplane stays programmed), 129 when its configuration changes (Felix's restart code),
and 1 on a fatal error; a datastore outage is waited out, never a reason to exit.

The dry run is the operator's "what would be programmed" view: it computes the desired
dataplane exactly as the running agent does and prints it instead of programming it.

* Without ``--from-file`` it reads the datastore (``DATASTORE_TYPE``, ``ETCD_ENDPOINTS``...)
  until in sync (``--sync-timeout``, default 30 s).
* With ``--from-file`` it reads calicoctl-format YAML/JSON files (multi-document, any of the
  kinds the agent follows, and Kubernetes ``discovery.k8s.io/v1`` EndpointSlices, which fill
  the IP sets of rules naming a Service as on the Kubernetes datastore). Each Calico
  document gets the defaults calicoctl's write path gives it; the built-in tiers ``default``, ``kube-admin`` and ``kube-baseline`` are added when
  the files do not define them, as every cluster has them. A document that cannot be
  used is reported on stderr with its file, kind, name and field, and the rest are
  still rendered, as the running agent would.

Output: ``iptables-save`` form for the four tables (``*raw``, ``*mangle``, ``*nat``,
``*filter``) with Felix's own rule rendering and ``cali:`` IDs; ``--ipsets`` prints
``ipset restore`` input instead; ``--routes`` prints the desired routes, neighbours,
tunnel devices and interface sysctls (as an agent just started has them: a live migration
target's routes are held back until its VM announces itself, which a dry run never sees); ``--qos`` prints the workloads' bandwidth limits as
the tc qdiscs, u32 redirect filters and IFB devices the agent would program (the same
for both IP families; the MTUs and packet scheduler clock are this namespace's).

The host is ``NODENAME`` (else ``FELIX_FELIXHOSTNAME``, the nodename file under
``CALICO_LIB_DIR``, or the hostname, lower-cased and trimmed as libcalico-go's
``names.Hostname`` gives it to Felix, so that it names the same Node as ``calico-node
startup`` and ``calicoctl`` do); ``FELIX_*`` variables override the datastore's
FelixConfiguration as they do for the running agent; host endpoints are resolved against
this network namespace's interfaces. ``FELIX_LOGSEVERITYSCREEN`` sets the log level.
"""
from __future__ import annotations

import logging
import os
import socket
import sys

from node.config import Paths

log = logging.getLogger("node.felix")


def register(subparsers) -> None:
    p = subparsers.add_parser("felix", help="the policy agent (iptables, IP sets, routes)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the desired dataplane instead of programming it")
    p.add_argument("--from-file", action="append", default=[], metavar="FILE",
                   help="read resources from calicoctl-format YAML/JSON instead of the datastore (repeatable)")
    p.add_argument("--ip-version", type=int, choices=(4, 6), default=4, help="which family to print (default 4)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--ipsets", action="store_true", help="print ipset restore input instead of the tables")
    what.add_argument("--routes", action="store_true",
                      help="print routes, neighbours, tunnel devices and sysctls instead of the tables")
    what.add_argument("--qos", action="store_true",
                      help="print the bandwidth limits' tc qdiscs, filters and IFB devices instead of the tables")
    p.add_argument("--sync-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="without --from-file: how long to wait for the datastore (default 30)")
    p.set_defaults(func=run)


def hostname_from_env(paths: Paths) -> str:
    for var in ("NODENAME", "FELIX_FELIXHOSTNAME"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        name = paths.nodename_file.read_text().strip()
    except OSError:
        name = ""
    return name or socket.gethostname().strip().lower()


def run(args) -> int:
    from node.cli.role_logging import setup_role_logging
    from node.felix.pipeline import tune_gc

    setup_role_logging("felix")  # Felix's own layout: logutils.ConfigureFormatter("felix")
    tune_gc()
    hostname = hostname_from_env(Paths.from_env())
    if not args.dry_run:
        if args.from_file or args.ipsets or args.routes or args.qos:
            print("felix: --from-file, --ipsets, --routes and --qos go with --dry-run", file=sys.stderr)
            return 1
        return _run_agent(hostname)
    from node.errors import CalicoError
    from node.felix.dryrun import dry_run

    try:
        text = dry_run(hostname, dict(os.environ), files=args.from_file, ip_version=args.ip_version,
                       what="ipsets" if args.ipsets else "routes" if args.routes else "qos" if args.qos else "tables",
                       sync_timeout=args.sync_timeout)
    except CalicoError as exc:  # (the dry run's own errors, and settings it cannot use)
        print(f"felix: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def _run_agent(hostname: str) -> int:
    from node.cli.stop_signals import stop_on_signals
    from node.config import datastore_config_from_env
    from node.datastore.factory import kv_for
    from node.errors import CalicoError
    from node.felix.agent import Agent, limit_malloc_arenas
    from node.felix.config import config_file_values, datastore_env

    # libcalico-go's datastore variables, with Felix's own (DatastoreType, EtcdEndpoints,
    # EtcdAddr...) from its config file or FELIX_* variables over them, as Felix does.
    env = datastore_env(os.environ, config_file_values(os.environ))
    try:
        config = datastore_config_from_env(env)
    except CalicoError as exc:
        print(f"felix: {exc}", file=sys.stderr)
        return 1
    log.info("Felix (calico-node-py) starting for host %s", hostname)
    limit_malloc_arenas()
    # As calico-node's run script (FELIX_FELIXHOSTNAME=$NODENAME): Felix's FelixHostname is
    # the host the agent runs for (the felix_host metric's label, among others).
    env = {**env, "FELIX_FELIXHOSTNAME": hostname}
    try:  # (settings read as the agent starts, such as USE_POD_CIDR, can be refused)
        agent = Agent(hostname, env, lambda: kv_for(config), manage_log_level=True)
        stop_on_signals(agent.stop)
        code = agent.run()
    except CalicoError as exc:
        print(f"felix: {exc}", file=sys.stderr)
        return 1
    log.info("Felix exiting with code %d", code)
    return code
