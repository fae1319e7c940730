"""Fixtures and builders for the Kubernetes datastore tests (import the fixtures by name).

``kube`` is a fresh stand-in API server (``kube_standin.KubeStandin``) per test;
``kube_config`` the DatastoreConfig that reaches it through a kubeconfig file, and
``kube_kv`` a KubeKV on it. Like Calico's own tests, these raise the client's rate limit
(K8S_CLIENT_QPS, 5 a second by default) so that stress tests are not throttled; tests
that build their own configuration keep the default. The builders create Kubernetes objects the way kubectl and
the kubelet would: through the API, pods first without status, then the status.
"""
from __future__ import annotations

import time

import pytest

from kube_standin import KubeStandin
from node.config import KUBERNETES, DatastoreConfig
from node.datastore.kubernetes.kv import KubeKV


TEST_QPS = "1000"


@pytest.fixture
def kube():
    with KubeStandin(bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
def kube_config(kube, tmp_path) -> DatastoreConfig:
    return DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(kube.kubeconfig(tmp_path / "kubeconfig")),
                           extra={"k8sClientQPS": TEST_QPS})


@pytest.fixture
def kube_kv(kube_config):
    kv = KubeKV(kube_config, env={})
    try:
        yield kv
    finally:
        kv.close()


def kube_env(kube_config: DatastoreConfig, **extra) -> dict[str, str]:
    """The environment a role reads to reach the stand-in."""
    env = {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": kube_config.kubeconfig, "K8S_CLIENT_QPS": TEST_QPS}
    env.update(extra)
    return env


def k8s_node(kube: KubeStandin, name: str, labels: dict | None = None, internal_ip: str = "",
             pod_cidr: str = "") -> dict:
    obj: dict = {"metadata": {"name": name, **({"labels": labels} if labels else {})}, "spec": {}}
    if pod_cidr:
        obj["spec"] = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    if internal_ip:
        obj["status"] = {"addresses": [{"type": "InternalIP", "address": internal_ip},
                                       {"type": "Hostname", "address": name}]}
    return kube.create("v1", "nodes", obj)


def namespace(kube: KubeStandin, name: str, labels: dict | None = None) -> dict:
    return kube.create("v1", "namespaces", {"metadata": {"name": name, **({"labels": labels} if labels else {})}})


def service_account(kube: KubeStandin, ns: str, name: str, labels: dict | None = None) -> dict:
    return kube.create("v1", "serviceaccounts", {"metadata": {"name": name, **({"labels": labels} if labels else {})}},
                       namespace=ns)


def pod(kube: KubeStandin, ns: str, name: str, node: str, ip: str = "", labels: dict | None = None,
        service_account_name: str = "", ports: list | None = None) -> dict:
    """A scheduled pod; with ``ip`` the kubelet has reported it Running with that address."""
    spec: dict = {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": ports or []}]}
    if service_account_name:
        spec["serviceAccountName"] = service_account_name
    created = kube.create("v1", "pods", {"metadata": {"name": name, **({"labels": labels} if labels else {})},
                                         "spec": spec}, namespace=ns)
    if ip:
        created = kube.patch("v1", "pods", name, {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}},
                             namespace=ns, subresource="status")
    return created


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    assert predicate(), f"timed out waiting for {what}"
