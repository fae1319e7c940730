"""Cluster-wide objects every Calico datastore needs, created when absent.

ClusterInformation ``default`` (GUID, version, cluster type, datastoreReady), the
default tiers, FelixConfiguration ``default`` and (etcd only) ``node.<name>``, and
BGPConfiguration ``default``. Existing objects are only ever filled in, never
overwritten, so a second start writes nothing.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Callable

from node.config import KUBERNETES
from node.datastore.client import DatastoreClient
from node.errors import AlreadyExists, CalicoError, Conflict, NotFound, Unauthorized
from node.model import API_VERSION, Resource, from_dict

log = logging.getLogger(__name__)

CLUSTER_INFO_NAME = "default"
RETRY_SLEEP = 1.0
MAX_ATTEMPTS = 30

# (name, order, default action), as libcalico-go's EnsureInitialized creates them.
DEFAULT_TIERS = (
    ("default", 1000000, "Deny"),
    ("kube-admin", 1000, "Pass"),
    ("kube-baseline", 10000000, "Pass"),
)


def build(kind: str, name: str, spec: dict) -> Resource:
    """A resource in canonical (Go field order) form."""
    return from_dict({"kind": kind, "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec},
                     strict=True, validate=False)


def cluster_type_for(env_type: str, kubeadm: bool, rancher: bool) -> str:
    """CLUSTER_TYPE plus ``kubeadm`` / ``rancher`` when those clusters were recognised."""
    parts = env_type
    for flag, word in ((kubeadm, "kubeadm"), (rancher, "rancher")):
        if flag:
            parts = word if not parts else f"{parts},{word}"
    return parts


def datastore_cluster_type(cluster_type: str, datastore_type: str) -> str:
    """The Kubernetes datastore always appends ``kdd`` (after trimming one trailing comma)."""
    if datastore_type != KUBERNETES:
        return cluster_type
    if not cluster_type:
        return "kdd"
    trimmed = cluster_type[:-1] if cluster_type.endswith(",") else cluster_type
    return f"{trimmed},kdd"


def merge_cluster_type(existing: str, local: str) -> str:
    """The existing entries, in their order, then each local entry the existing value
    lacks. As in libcalico-go, only the *existing* entries are checked, so a local entry
    repeated in CLUSTER_TYPE is appended each time (``a`` + ``b,b`` gives ``a,b,b``)."""
    if not local:
        return existing
    if not existing:
        return local
    merged = existing.split(",")
    known = set(merged)
    merged.extend(entry for entry in local.split(",") if entry not in known)
    return ",".join(merged)


def new_guid() -> str:
    return uuid.uuid4().hex


def updated_cluster_info_spec(spec: dict, version: str, cluster_type: str) -> dict:
    """The spec with version, GUID, readiness and type filled in (pure)."""
    out = dict(spec)
    if version and out.get("calicoVersion", "") != version:
        out["calicoVersion"] = version
    if not out.get("clusterGUID"):
        out["clusterGUID"] = new_guid()
    if out.get("datastoreReady") is None:
        out["datastoreReady"] = True
    merged = merge_cluster_type(out.get("clusterType", ""), cluster_type)
    if merged:
        out["clusterType"] = merged
    return out


def ensure_cluster_information(client: DatastoreClient, version: str, cluster_type: str, datastore_type: str,
                               sleep: Callable[[float], None] = time.sleep) -> None:
    cluster_type = datastore_cluster_type(cluster_type, datastore_type)
    for _ in range(MAX_ATTEMPTS):
        try:
            current = client.get("ClusterInformation", CLUSTER_INFO_NAME)
        except NotFound:
            spec = {"clusterGUID": new_guid(), "clusterType": cluster_type, "calicoVersion": version,
                    "datastoreReady": True}
            try:
                client.create(build("ClusterInformation", CLUSTER_INFO_NAME, spec))
            except AlreadyExists:
                log.info("Failed to create global ClusterInformation; another node got there first.")
                sleep(RETRY_SLEEP)
                continue
            return
        spec = updated_cluster_info_spec(current.spec, version, cluster_type)
        if build("ClusterInformation", CLUSTER_INFO_NAME, spec).spec == current.spec:
            return
        wanted = current.copy()
        wanted.spec = build("ClusterInformation", CLUSTER_INFO_NAME, spec).spec
        try:
            client.update(wanted)
        except Conflict as exc:
            log.warning("Conflict while updating cluster information, may retry error=%s", exc)
            sleep(RETRY_SLEEP)
            continue
        return
    raise CalicoError(f"could not initialise ClusterInformation({CLUSTER_INFO_NAME}) after {MAX_ATTEMPTS} attempts")


def ensure_tier(client: DatastoreClient, name: str, order: int, action: str) -> None:
    try:
        client.create(build("Tier", name, {"order": order, "defaultAction": action}))
    except AlreadyExists:
        log.debug("Tier %s already exists.", name)
        return
    except Unauthorized as exc:
        log.warning("Unauthorized to create tier %s. error=%s", name, exc)
        return
    log.info("Tier %s is now available.", name)


def ensure_initialized(client: DatastoreClient, version: str, cluster_type: str, datastore_type: str) -> None:
    """libcalico-go's EnsureInitialized: ClusterInformation and the default tiers.

    Every part is attempted; the first error is raised afterwards.
    """
    errors: list[CalicoError] = []
    try:
        ensure_cluster_information(client, version, cluster_type, datastore_type)
    except CalicoError as exc:
        log.info("Unable to initialize ClusterInformation error=%s", exc)
        errors.append(exc)
    for name, order, action in DEFAULT_TIERS:
        try:
            ensure_tier(client, name, order, action)
        except CalicoError as exc:
            log.info("Unable to initialize %s Tier error=%s", name, exc)
            errors.append(exc)
    if errors:
        raise errors[0]


def _fill_felix(client: DatastoreClient, name: str, defaults: dict) -> None:
    """Create FelixConfiguration ``name`` with ``defaults``, or fill the ones it lacks."""
    try:
        current = client.get("FelixConfiguration", name)
    except NotFound:
        try:
            client.create(build("FelixConfiguration", name, defaults))
        except AlreadyExists as exc:
            log.info("Ignoring conflict when setting value %s", exc.identifier)
        return
    missing = {k: v for k, v in defaults.items() if current.spec.get(k) in (None, "")}
    if not missing:
        log.debug("FelixConfiguration %s already has its default values", name)
        return
    wanted = current.copy()
    wanted.spec = build("FelixConfiguration", name, {**current.spec, **missing}).spec
    try:
        client.update(wanted)
    except Conflict as exc:
        log.info("Ignoring conflict when setting value %s", exc.identifier)


def ensure_bgp_configuration(client: DatastoreClient) -> None:
    try:
        client.get("BGPConfiguration", "default")
        log.debug("Default BGPConfig exists.")
        return
    except NotFound:
        pass
    try:
        client.create(build("BGPConfiguration", "default", {}))
    except AlreadyExists as exc:
        log.info("Ignoring conflict when setting value %s", exc.identifier)


def ensure_default_config(client: DatastoreClient, node_name: str, version: str, cluster_type: str,
                          datastore_type: str) -> None:
    """Everything ``ensureDefaultConfig`` sets up; raises the first datastore error."""
    ensure_initialized(client, version, cluster_type, datastore_type)
    # Felix reports no status by default and logs to the screen at Info.
    _fill_felix(client, "default", {"reportingInterval": "0s", "logSeverityScreen": "Info"})
    if datastore_type != KUBERNETES:
        # Let workloads reach services on their host unless policy says otherwise.
        _fill_felix(client, f"node.{node_name}", {"defaultEndpointToHostAction": "Return"})
    ensure_bgp_configuration(client)
