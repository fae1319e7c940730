"""What startup learns from Kubernetes: whether it runs there, kubeadm's pod CIDRs.

Calico asks the API server for the ``kube-system/kubeadm-config`` and
``kube-system/full-cluster-state`` ConfigMaps and for this host's Node. This build has no
Kubernetes client yet, so ``lookups`` only recognises a Kubernetes configuration and
says what it skips; the parts that work on the fetched data (pod CIDR extraction, the
Node's InternalIP in ``startup.autodetect``) are here for when it has one.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
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
    """Where a Kubernetes client config would come from: KUBECONFIG if that file exists,
    else the in-cluster service account; None when neither is available."""
    path = env.get("KUBECONFIG", "")
    if path:
        return path if os.path.isfile(path) else None
    if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT") and os.path.isfile(token_file):
        return "in-cluster service account"
    return None


def lookups(env: Mapping[str, str], node_name: str) -> K8sInfo:
    source = kube_config_source(env)
    if source is None:
        log.info("Kubernetes configuration not detected; skipping Kubernetes lookups")
        return K8sInfo()
    log.warning("Kubernetes configuration found (%s), but this build has no Kubernetes API client: not "
                "reading the kubeadm-config and full-cluster-state ConfigMaps or Node %s; "
                "'kubernetes-internal-ip' autodetection is unavailable", source, k8s_node_name(env, node_name))
    return K8sInfo()


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
                if not sep or not prefix.isdigit():
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
