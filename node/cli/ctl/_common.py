"""What every calicoctl command shares: its failure types, the client, kinds and namespaces.

Kept apart from ``node.cli.calicoctl`` so command modules can import it without an
import cycle through the parser that registers them.
"""
from __future__ import annotations

import logging

from node.errors import CalicoError, NotFound
from node.model import KindInfo, Resource, UnknownKind, kind_info

log = logging.getLogger(__name__)

MISMATCH_HINT = "Use --allow-version-mismatch to override"


class CommandFailed(Exception):
    """A user-facing failure: the message is printed as is and calicoctl exits 1."""


class UsageError(CommandFailed):
    """The command line is incomplete; the message is followed by the command's usage."""


def client_from_args(args) -> "object":
    from node.config import calicoctl_datastore_config
    from node.datastore.factory import client_for

    return client_for(calicoctl_datastore_config(getattr(args, "config", None)))


def _release(version: str) -> str:
    """The part of a version calicoctl compares: no leading "v", nothing from the first "-"."""
    return version.removeprefix("v").split("-")[0]


def check_version_mismatch(args, prefix: str = "") -> None:
    """calicoctl's check before a command that reads or writes resources or IPAM: the
    cluster's calicoVersion (ClusterInformation ``default``, written by calico/node) must
    be this calicoctl's release, unless ``--allow-version-mismatch``. Skipped when there is
    no usable client configuration (the command reports that itself), no
    ClusterInformation or no calicoVersion. ``prefix`` is what the command puts before
    its errors (``get``: "failed to get resources: ")."""
    import node

    if getattr(args, "allow_version_mismatch", False):
        log.info("Skip version mismatch checking due to '--allow-version-mismatch' argument")
        return
    try:
        client = client_from_args(args)
    except CalicoError:
        log.info("Skip version mismatch checking due to not being able to connect to the cluster")
        return
    try:
        info = client.get("ClusterInformation", "default")
    except NotFound:
        log.info("Skip version mismatch checking due to ClusterInformation not being present")
        return
    except CalicoError as exc:
        raise CommandFailed(f"{prefix}unable to get Cluster Information to verify version mismatch: {exc}\n"
                            f"{MISMATCH_HINT}") from exc
    finally:
        close = getattr(getattr(client, "kv", None), "close", None)
        if close is not None:
            close()
    cluster = (info.spec or {}).get("calicoVersion") or ""
    if not cluster:
        log.info("Skip version mismatch checking due to CalicoVersion not being set")
        return
    if _release(cluster) != _release(node.__version__):
        raise CommandFailed(f"{prefix}version mismatch.\nClient Version:   {node.__version__}\n"
                            f"Cluster Version:  {_release(cluster)}\n{MISMATCH_HINT}")


def kind_or_fail(name: str, prefix: str = "failed to get resources: ") -> KindInfo:
    """The kind a command-line KIND names (any case, plural or short name)."""
    try:
        info = kind_info(name)
    except UnknownKind as exc:
        raise CommandFailed(f"{prefix}{exc}") from exc
    if info.extra.get("not_in_calicoctl"):
        raise CommandFailed(f"{prefix}resource type '{name}' is not supported")
    return info


def resolve_namespace(res: Resource, cli_namespace: str | None, all_namespaces: bool = False) -> None:
    """calicoctl's namespace rules (handleNamespace), applied in place.

    A namespaced resource without a namespace takes ``-n`` or ``default``; one with a
    namespace must agree with ``-n``; a cluster-wide kind takes neither. With ``-A`` the
    namespace is cleared so a list covers every namespace.
    """
    resource_ns = res.namespace
    if res.info.namespaced:
        if all_namespaces and cli_namespace:
            raise CalicoError("cannot use both --namespace and --all-namespaces flags at the same time")
        if all_namespaces:
            res.metadata.pop("namespace", None)
        elif not resource_ns:
            res.metadata["namespace"] = cli_namespace or "default"
        elif cli_namespace and resource_ns != cli_namespace:
            raise CalicoError(f"resource namespace does not match client namespace. {resource_ns} != {cli_namespace}")
    elif resource_ns:
        raise CalicoError("namespace should not be specified for a non-namespaced resource. "
                          f"{res.kind} is not a namespaced resource")
    elif all_namespaces or cli_namespace:
        raise CalicoError(f"{res.kind} is not namespaced")


def summary_kind(resources: list[Resource]) -> str:
    """The one kind every resource has, or "" when they are of several kinds."""
    kinds = {r.kind for r in resources}
    return kinds.pop() if len(kinds) == 1 else ""
