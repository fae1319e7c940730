"""``calico-node confd``: render BIRD's config from the datastore (Calico's confd, for BIRD).

    calico-node confd                         follow the datastore, re-render on change
    calico-node confd --oneshot [--oneshot-timeout SECONDS]
                                              render once from the datastore and exit
    calico-node confd --oneshot --from-file F [--from-file G ...] --output-dir DIR
                                              render once from resource YAML files

Environment: NODENAME (else the nodename file under CALICO_LIB_DIR), CALICO_ROUTER_ID,
CALICO_ADVERTISE_CLUSTER_IPS, NAMESPACE, CALICO_ENDPOINT_STATUS_PATH_PREFIX,
BGP_LOGSEVERITYSCREEN (this command's own log level; when unset, as in Calico,
the logSeverityScreen of BGPConfiguration node.<NODENAME>, else default's, else info), CALICO_CONFIG_DIR / CALICO_RUN_DIR
(output directory and BIRD control sockets), CALICO_TEMPLATES_DIR, USE_POD_CIDR (this
node's blocks are its Node's podCIDRs), and the datastore variables (DATASTORE_TYPE,
ETCD_ENDPOINTS, ...).

Whatever the datastore, BGP passwords are read from Secrets and Services are followed
for advertisement through a Kubernetes client of the renderer's own: KUBECONFIG, else
the in-cluster service account; with neither there is none (``node.confd.kubeside``).

``--oneshot`` from the datastore waits at most ``--oneshot-timeout`` seconds (else
``CALICO_CONFD_ONESHOT_TIMEOUT``, else 30) for the datastore to be in sync, then exits 1
naming the last datastore error; 0 waits forever. The long-running form never gives up
on the datastore; it exits 1 only if its syncer stops for good (a configuration error
or a bug), so that supervisor restarts it.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from node.config import Paths, datastore_config_from_env
from node.errors import CalicoError, ConfigError

log = logging.getLogger("node.confd")

ONESHOT_TIMEOUT_ENV = "CALICO_CONFD_ONESHOT_TIMEOUT"
DEFAULT_ONESHOT_TIMEOUT = 30.0


def register(subparsers) -> None:
    p = subparsers.add_parser("confd", help="render BIRD config from the datastore (confd)")
    p.add_argument("--oneshot", action="store_true", help="render once and exit (1 if that failed)")
    p.add_argument("--oneshot-timeout", metavar="SECONDS", default=None,
                   help=f"with --oneshot: give up (exit 1) if the datastore is not in sync within SECONDS "
                        f"(default ${ONESHOT_TIMEOUT_ENV}, else {DEFAULT_ONESHOT_TIMEOUT:g}; 0 waits forever)")
    p.add_argument("--from-file", action="append", default=[], metavar="FILE",
                   help="with --oneshot: render from resource YAML files instead of a datastore (repeatable)")
    p.add_argument("--output-dir", metavar="DIR",
                   help="where to write the six files (default $CALICO_CONFIG_DIR/confd/config)")
    p.add_argument("--no-check", action="store_true", help="install without checking with bird -p first")
    p.add_argument("--no-reload", action="store_true", help="do not tell BIRD to reload")
    p.set_defaults(func=run)


def _nodename(paths: Paths) -> str:
    name = os.environ.get("NODENAME", "")
    if not name:
        try:
            name = paths.nodename_file.read_text().strip()
        except OSError:
            name = ""
    return name


def _oneshot_timeout(args) -> float | None:
    """Seconds to wait for sync in --oneshot (None: forever); ConfigError if malformed."""
    if args.oneshot_timeout is not None:
        name, raw = "--oneshot-timeout", args.oneshot_timeout
    else:
        name, raw = ONESHOT_TIMEOUT_ENV, os.environ.get(ONESHOT_TIMEOUT_ENV, "")
        if not raw.strip():
            return DEFAULT_ONESHOT_TIMEOUT
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(f"{name}={raw!r} is not a number of seconds (use e.g. 30, or 0 to wait forever)")
    return seconds or None


def set_confd_log_level(given: str, level: str) -> None:
    """Set this process's log level as Calico's confd sets its own (confd's log.SetLevel):
    a value logrus does not take (a BGPConfiguration's Warning, Error or Fatal, which
    confd reads as "none") sets info, with a warning naming it."""
    from startup.logs import level_number, parse_level

    _name, refused = parse_level(given)
    logging.getLogger().setLevel(level_number(level))
    if refused:
        log.warning("Failed to parse log level, defaulting to INFO error=not a valid logrus Level: %s level=%s",
                    json.dumps(given), given)
    else:
        log.info("confd log level set to %s", level)


def run(args) -> int:
    from dataclasses import replace

    from node.cli.role_logging import setup_role_logging
    from node.cli.stop_signals import stop_on_signals
    from node.confd.cycle import render_cycle
    from node.confd.inputs import Settings, load_files
    from node.confd.install import Installer

    setup_role_logging("confd")
    paths = Paths.from_env()
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"confd: {exc}", file=sys.stderr)
        return 1
    if not settings.nodename:
        settings = replace(settings, nodename=_nodename(paths))
    if not settings.nodename:
        print("confd: NODENAME is not set (and no nodename file at %s)" % paths.nodename_file, file=sys.stderr)
        return 1
    output = Path(args.output_dir) if args.output_dir else paths.confd_output_dir

    if args.from_file:
        if not args.oneshot:
            print("confd: --from-file needs --oneshot", file=sys.stderr)
            return 1
        try:
            inputs = load_files(args.from_file, settings)
        except (CalicoError, OSError) as exc:
            print(f"confd: {exc}", file=sys.stderr)
            return 1
        # An offline render: never touches the running BIRD.
        installer = Installer(output, check=not args.no_check, reload=False)
        if installer.check:
            _ = installer.krt_tunnel  # probe the installed BIRD once, at start (logged)
        try:
            result = render_cycle(inputs, settings, installer)
        except OSError as exc:
            print(f"confd: writing to {output} failed: {exc}", file=sys.stderr)
            return 1
        return 0 if result.ok else 1

    from node.confd.daemon import Renderer
    from node.confd.kubeside import client_configuration_from_env, kube_api_factory
    from node.datastore.factory import kv_for

    try:
        deadline = _oneshot_timeout(args) if args.oneshot else None
        config = datastore_config_from_env()
        kv_for(config).close()  # fail fast on an unusable datastore configuration
    except CalicoError as exc:
        print(f"confd: {exc}", file=sys.stderr)
        return 1
    installer = Installer(output, check=not args.no_check, reload=not args.no_reload,
                          sockets={4: paths.bird_socket, 6: paths.bird6_socket})
    _ = installer.krt_tunnel  # probe the installed BIRD once, at start (logged)
    kube_config = client_configuration_from_env(os.environ)
    renderer = Renderer(settings, installer, lambda: kv_for(config),
                        kube_api=kube_api_factory(kube_config) if kube_config is not None else None,
                        on_log_level=set_confd_log_level, env_log_level=os.environ.get("BGP_LOGSEVERITYSCREEN", ""))

    stop_on_signals(renderer.stop, log)
    log.info("confd starting for node %s; writing to %s", settings.nodename, output)
    return renderer.run(oneshot=args.oneshot, deadline=deadline)
