"""What startup learns from Kubernetes, and the NetworkUnavailable node condition.

Startup asks the API server for the ``kube-system/kubeadm-config`` and
``kube-system/full-cluster-state`` ConfigMaps (kubeadm's pod CIDRs for the default pools,
the cluster type) and for this host's Node (its InternalIP for the
``kubernetes-internal-ip`` autodetection method). The client configuration is the one
client-go's ``BuildConfigFromFlags("", $KUBECONFIG)`` builds: the ``KUBECONFIG`` file,
else the in-cluster service account; with neither, Kubernetes is not used. Requests
time out after 2 s, as in Calico.

``mark_network_available`` sets the Node's NetworkUnavailable condition to False once
Calico is up (``calico-node complete-startup``, which the running node supervises, and
``calico-node startup --complete-startup``); ``mark_network_unavailable`` sets it to True
on shutdown (``calico-node -shutdown``, the DaemonSet's preStop hook).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from node.config import KUBERNETES, DatastoreConfig, Paths
from node.errors import CalicoError, ConfigError, Unauthorized

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_TOKEN = SERVICE_ACCOUNT_DIR + "/token"
KUBEADM_CONFIG_MAP = "kubeadm-config"
RANCHER_STATE_CONFIG_MAP = "full-cluster-state"
LOOKUP_TIMEOUT = 2.0
CONDITION_TIMEOUT = 30.0
SHUTDOWN_TIMESTAMP_FILE = "shutdownTS"
_POD_SUBNET = re.compile(r"podSubnet: (.*)")


@dataclass(frozen=True)
class K8sInfo:
    """Kubernetes data startup uses; all None when not on Kubernetes."""

    kubeadm_config: Mapping[str, str] | None = None  # the ConfigMap's data
    rancher_state: Mapping[str, str] | None = None
    node: Mapping[str, Any] | None = None  # the k8s Node object


def k8s_node_name(env: Mapping[str, str], node_name: str) -> str:
    return env.get("CALICO_K8S_NODE_REF") or node_name


def kube_config_source(env: Mapping[str, str], token_file: str = SERVICE_ACCOUNT_TOKEN) -> str | None:
    """Where startup's Kubernetes client config comes from: KUBECONFIG if that file
    exists, else the in-cluster service account (``token_file`` and the ``ca.crt``
    beside it); None when neither is available."""
    from node.datastore.kubernetes.clientconfig import kubeconfig_source

    source = kubeconfig_source(DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=env.get("KUBECONFIG", "")),
                               env, os.path.dirname(token_file), home_fallback=False)
    if source.startswith("kubeconfig:"):
        path = source.split(":", 1)[1]
        return path if any(os.path.isfile(p) for p in path.split(os.pathsep) if p) else None
    if source == "in-cluster":
        return "in-cluster service account"
    return None


def kube_api(env: Mapping[str, str], service_account_dir: str = SERVICE_ACCOUNT_DIR,
             timeout: float = LOOKUP_TIMEOUT):
    """A Kubernetes API client as startup builds it, or None without a configuration."""
    from node.datastore.kubernetes.api import KubeAPI
    from node.datastore.kubernetes.clientconfig import client_configuration

    if kube_config_source(env, os.path.join(service_account_dir, "token")) is None:
        return None
    config = DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=env.get("KUBECONFIG", ""))
    conf = client_configuration(config, env, service_account_dir, home_fallback=False)
    return KubeAPI(conf, request_timeout=timeout)


def _config_map(api, name: str) -> tuple[Mapping[str, str] | None, bool]:
    """(the ConfigMap's data or None, whether access was refused)."""
    from node.datastore.kubernetes.kv import CONFIG_MAPS

    try:
        obj = api.get(CONFIG_MAPS.item(name, "kube-system"), timeout=(LOOKUP_TIMEOUT, LOOKUP_TIMEOUT))
    except Unauthorized:
        return None, True
    if obj is None:
        return None, False
    return dict(obj.get("data") or {}), False


def lookups(env: Mapping[str, str], node_name: str, service_account_dir: str = SERVICE_ACCOUNT_DIR) -> K8sInfo:
    """The kubeadm and Rancher ConfigMaps and this host's Kubernetes Node. ConfigMaps that
    are absent, or that we may not read, count as absent; any other failure, or a
    missing Node, ends startup."""
    from startup.logs import Fatal

    try:
        api = kube_api(env, service_account_dir)
    except ConfigError as exc:
        # client-go's BuildConfigFromFlags failing means Calico skips these lookups.
        log.warning("Kubernetes configuration found (%s), but it cannot be used: %s; skipping Kubernetes lookups",
                    kube_config_source(env, os.path.join(service_account_dir, "token")), exc)
        return K8sInfo()
    if api is None:
        log.info("Kubernetes configuration not detected; skipping Kubernetes lookups")
        return K8sInfo()
    try:
        try:
            kubeadm, refused = _config_map(api, KUBEADM_CONFIG_MAP)
        except CalicoError as exc:
            log.error("failed to query kubeadm's config map error=%s", exc)
            raise Fatal("") from None
        if refused:
            log.info("Unauthorized to query kubeadm configmap, assuming not on kubeadm. CIDR detection will not occur.")
        try:
            rancher, refused = _config_map(api, RANCHER_STATE_CONFIG_MAP)
        except CalicoError as exc:
            log.error("failed to query Rancher's cluster state config map error=%s", exc)
            raise Fatal("") from None
        if refused:
            # Calico's quirk: a refusal here clears the kubeadm result, not the Rancher one.
            kubeadm = None
            log.info("Unauthorized to query rancher configmap, assuming not on rancher. CIDR detection will not "
                     "occur.")
        try:
            node = read_node(api, k8s_node_name(env, node_name))
        except CalicoError as exc:
            log.error("Failed to read Node from datastore error=%s", exc)
            raise Fatal("") from None
        return K8sInfo(kubeadm_config=kubeadm, rancher_state=rancher, node=node)
    finally:
        api.close()


def read_node(api, name: str, timeout: float = LOOKUP_TIMEOUT) -> Mapping[str, Any]:
    """The Kubernetes Node ``name``; a missing Node is an error, as client-go's Get makes
    it. Raises CalicoError."""
    from node.datastore.kubernetes.kv import NODES

    node = api.get(NODES.item(name), timeout=(timeout, timeout))
    if node is None:
        raise CalicoError(f"nodes {name!r} not found")
    return node


def extract_kubeadm_cidrs(data: Mapping[str, str]) -> tuple[str, str]:
    """(IPv4, IPv6) pod CIDRs from the first ``podSubnet: ...`` line in the ConfigMap.

    Entries are split on commas without trimming, and reading stops at the first entry
    that is not a CIDR (so ``a/16, b/48`` yields only the first).
    """
    match = None
    for value in data.values():
        match = _POD_SUBNET.search(value)
        if match:
            break
    v4 = v6 = ""
    if match:
        for entry in match.group(1).split(","):
            addr, sep, prefix = entry.partition("/")
            try:
                # Go's net.ParseCIDR: ASCII digits only, and no IPv6 zone (Python accepts both).
                if not sep or not (prefix.isascii() and prefix.isdigit()) or "%" in addr:
                    raise ValueError(entry)
                net = ipaddress.ip_interface(f"{addr}/{int(prefix)}")
            except ValueError:
                break
            if net.version == 4 and not v4:
                v4 = entry
            elif net.version == 6 and not v6:
                v6 = entry
            if v4 and v6:
                break
    return v4, v6


# --------------------------------------------------------------------------------------
# The NetworkUnavailable condition.

def set_network_unavailable(api, node_name: str, unavailable: bool, timeout: float = CONDITION_TIMEOUT,
                            pause: float = 0.5) -> None:
    """Patch the Node's status with the NetworkUnavailable condition, retrying for
    ``timeout`` seconds (SetNodeNetworkUnavailableCondition)."""
    from node.datastore.client import now_rfc3339
    from node.datastore.kubernetes.api import STRATEGIC_MERGE_PATCH
    from node.datastore.kubernetes.kv import NODES

    log.info("Setting NetworkUnavailable to %s", "true" if unavailable else "false")
    now = now_rfc3339()
    if unavailable:
        condition = {"type": "NetworkUnavailable", "status": "True", "reason": "CalicoIsDown",
                     "message": "Calico is shutting down on this node"}
    else:
        condition = {"type": "NetworkUnavailable", "status": "False", "reason": "CalicoIsUp",
                     "message": "Calico is running on this node"}
    condition.update(lastHeartbeatTime=now, lastTransitionTime=now)
    patch = {"status": {"conditions": [condition]}}
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.patch(NODES.item(node_name, subresource="status"), patch, STRATEGIC_MERGE_PATCH)
            return
        except CalicoError as exc:
            if time.monotonic() >= deadline:
                raise CalicoError(f"timed out patching node, last error was: {exc}") from None
            log.warning("Failed to set NetworkUnavailable; will retry error=%s", exc)
            time.sleep(pause)


def _condition_target(env: Mapping[str, str], node_name: str, service_account_dir: str):
    """(api, k8s node name) for a condition update, or None to skip it."""
    if env.get("CALICO_NETWORKING_BACKEND") == "none":
        log.info("Calico is not managing networking, skipping NetworkUnavailable condition update")
        return None
    api = kube_api(env, service_account_dir)
    if api is None:
        if env.get("DATASTORE_TYPE", "") != KUBERNETES:
            log.info("Kubernetes configuration not detected; skipping NetworkUnavailable condition update")
            return None
        raise ConfigError("Failed to build Kubernetes config: no KUBECONFIG and no in-cluster service account")
    return api, k8s_node_name(env, node_name)


def _update_condition(env: Mapping[str, str], node_name: str, service_account_dir: str, unavailable: bool) -> None:
    """Set NetworkUnavailable on this host's Node, unless ``_condition_target`` skips it."""
    target = _condition_target(env, node_name, service_account_dir)
    if target is not None:
        api, name = target
        try:
            set_network_unavailable(api, name, unavailable)
        finally:
            api.close()


def shutdown_timestamp_file(env: Mapping[str, str]) -> Path:
    """``CALICO_SHUTDOWN_TIMESTAMP_FILE``, else ``shutdownTS`` in the lib directory
    (Calico's default, ``/var/lib/calico/shutdownTS``, when CALICO_LIB_DIR is unset)."""
    explicit = env.get("CALICO_SHUTDOWN_TIMESTAMP_FILE")
    return Path(explicit) if explicit else Paths.from_env(env).lib_dir / SHUTDOWN_TIMESTAMP_FILE


def mark_network_available(env: Mapping[str, str], node_name: str,
                           service_account_dir: str = SERVICE_ACCOUNT_DIR) -> None:
    """Set NetworkUnavailable to False, then remove the shutdown timestamp file
    (MarkNetworkAvailable). Raises CalicoError when the update fails. With
    ``CALICO_NETWORKING_BACKEND=none`` it does nothing at all, as in Calico: the condition
    is not Calico's to set, the shutdown timestamp stays, and "Calico started
    successfully" is not logged."""
    if env.get("CALICO_NETWORKING_BACKEND") == "none":
        log.info("Calico is not managing networking, skipping NetworkUnavailable condition update")
        return
    _update_condition(env, node_name, service_account_dir, False)
    shutdown_file = shutdown_timestamp_file(env)
    try:
        shutdown_file.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CalicoError(f"Unable to remove shutdown timestamp file {shutdown_file}: {exc.strerror}") from None
    log.info("Calico started successfully")


def mark_network_unavailable(env: Mapping[str, str], node_name: str,
                             service_account_dir: str = SERVICE_ACCOUNT_DIR) -> Path:
    """Calico's shutdown: write the shutdown timestamp (RFC 3339, mode 0644), then set
    NetworkUnavailable to True. Returns the timestamp file."""
    from node.datastore.client import now_rfc3339

    path = shutdown_timestamp_file(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(now_rfc3339())
    path.chmod(0o644)
    _update_condition(env, node_name, service_account_dir, True)
    return path


def complete_startup(env: Mapping[str, str] | None = None) -> int:
    """``calico-node startup --complete-startup``'s last step: mark the node's network
    available now. 0 on success; 1 (after ``Terminating``) when the update fails."""
    from startup.logs import Fatal, terminate
    from startup.nodename import determine_node_name

    env = dict(os.environ if env is None else env)
    try:
        mark_network_available(env, determine_node_name(env))
    except CalicoError as exc:
        return terminate(Fatal(f"Unable to set NetworkUnavailable to False error={exc}"))
    return 0
