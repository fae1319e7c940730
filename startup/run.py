"""The startup sequence (``calico-node startup``), in Calico's order.

Every value that could be invalid is checked before the first write: the Node is
computed (addresses, conflicts, AS number) and the default pools are planned and
validated first, so a bad setting stops startup with nothing half-written. Success
ends with ``Calico node started successfully`` on stdout, the line tools wait for.

Like Calico's, it loads no kernel module and sets no sysctl; ``Options.kernel_prep``
(``calico-node startup --kernel-prep``) opts in to ``startup.kernel``'s preparation first.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from node import __version__
from node.errors import CalicoError
from startup import cluster, k8s, pools
from startup.autodetect import HostView
from startup.datastore import ExitNow, load_config, make_client, maybe_wait, upgrade_host_ipam
from startup.dirs import ensure_directories
from startup.env import env_bool
from startup.hostnet import reach_source, read_links
from startup.interfaces import Link, all_ipv4_addresses
from startup.kernel import DEFAULT_SYSCTL_ROOT, prepare_kernel
from startup.logs import Fatal, configure, terminate
from startup.node import desired_node, ensure_node
from startup.nodename import determine_node_name, nodename_file, write_nodename_file

log = logging.getLogger(__name__)

STARTED_LINE = "Calico node started successfully"


@dataclass(frozen=True)
class Options:
    kernel_prep: bool = False  # Calico's startup touches no module and no sysctl
    sysctl_root: Path = DEFAULT_SYSCTL_ROOT
    modprobe: Sequence[str] = ("modprobe",)


def host_links() -> list[Link]:
    try:
        return read_links()
    except OSError as exc:
        raise Fatal(f"Unable to query host interfaces error={exc}") from None


def ipv6_supported(env: Mapping[str, str], sysctl_root: Path) -> bool:
    """FELIX_IPV6SUPPORT (default true) and a kernel with IPv6 (net/ipv6 under /proc/sys)."""
    if not env_bool(env, "FELIX_IPV6SUPPORT", True):
        return False
    supported = (sysctl_root / "net" / "ipv6").exists()
    log.info("IPv6 supported on this platform: %s", "true" if supported else "false")
    return supported


def run(env: Mapping[str, str] | None = None, options: Options = Options()) -> int:
    env = dict(os.environ if env is None else env)
    configure("startup", env)
    try:
        _run(env, options)
    except ExitNow as exc:
        return exc.code
    except Fatal as exc:
        return terminate(exc)
    print(STARTED_LINE, flush=True)
    return 0


def _run(env: Mapping[str, str], options: Options) -> None:
    if options.kernel_prep:
        prepare_kernel(options.sysctl_root, options.modprobe)
    name = determine_node_name(env)
    log.info("Starting node %s with version %s", name, __version__)
    config = load_config(env)
    client = make_client(config)
    try:
        maybe_wait(env, client)
        upgrade_host_ipam(client, name)
        kube = k8s.lookups(env, name)
        links = host_links()
        host = HostView(links, reach_source)

        # Compute everything first; write only once nothing can be rejected.
        plan = desired_node(client, name, env, host, kube.node)
        try:
            existing_pools = client.list("IPPool")
            blocks = pools.existing_blocks(client)
        except CalicoError as exc:
            raise Fatal(f"Unable to fetch IP pool list error={exc}") from None
        pool_plans = pools.plan_default_pools(
            env, existing_pools, all_ipv4_addresses(links), lambda: ipv6_supported(env, options.sysctl_root),
            kube.kubeadm_config)
        pools.validate_plans(pool_plans, existing_pools, blocks)

        # A Node create initialises the datastore first, as libcalico-go's does.
        def initialise() -> None:
            cluster.ensure_initialized(client, "", "", config.datastore_type)

        ensure_node(client, name, env, host, kube.node, on_create=initialise, first_plan=plan)
        ensure_directories(env)
        pools.create_pools(client, pool_plans)
        cluster_type = cluster.cluster_type_for(env.get("CLUSTER_TYPE", ""), kube.kubeadm_config is not None,
                                                kube.rancher_state is not None)
        try:
            cluster.ensure_default_config(client, name, __version__, cluster_type, config.datastore_type)
        except CalicoError as exc:
            raise Fatal(f"Unable to set global default configuration error={exc}") from None
        write_nodename_file(nodename_file(env), name)
        log.info("Using node name: %s", name)
    except CalicoError as exc:
        # A datastore failure in a step that has no more specific message.
        raise Fatal(f"Datastore operation failed error={exc}") from None
    finally:
        client.kv.close()
