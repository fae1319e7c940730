"""Code the IPAM tests run in separate processes (spawned, each with its own datastore client).

``stress_worker`` behaves like a CNI plugin on one host: it assigns addresses and
creates a WorkloadEndpoint for them, or deletes an endpoint and releases its addresses.
``crash_worker`` dies (``os._exit``) at a chosen etcd write, as a killed process would.
"""
from __future__ import annotations

import logging
import os
import random
import time
import traceback

from node.config import DatastoreConfig
from node.datastore.etcd import EtcdKV
from node.ipam.allocator import IPAM
from node.ipam.block import ReleaseOptions
from node.model import from_dict

NAMESPACE = "stress"


def workload(host: str, handle: str, ips: list[str]):
    name = handle.split(".", 1)[1]
    return from_dict({
        "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
        "metadata": {"name": f"{host}-k8s-{name}-eth0", "namespace": NAMESPACE,
                     "labels": {"projectcalico.org/namespace": NAMESPACE, "projectcalico.org/orchestrator": "k8s"}},
        "spec": {"orchestrator": "k8s", "node": host, "pod": name, "endpoint": "eth0",
                 "ipNetworks": [f"{ip}/32" for ip in ips], "interfaceName": f"cali{abs(hash(handle)) % 10**11:011d}"},
    })


def _datastore(target) -> DatastoreConfig:
    """An etcd endpoint, or a whole DatastoreConfig (the Kubernetes datastore)."""
    return target if isinstance(target, DatastoreConfig) else DatastoreConfig(etcd_endpoints=(target,))


def _kube_pod(kv, host: str, name: str, present: bool) -> None:
    """In the Kubernetes datastore a WorkloadEndpoint is a pod the CNI plugin annotates: the
    worker plays the API user who creates it (and deletes it once its endpoint is gone)."""
    from node.datastore.kubernetes.kv import PODS

    if present:
        kv.api.create(PODS.collection(NAMESPACE), {"metadata": {"name": name, "namespace": NAMESPACE},
                                                   "spec": {"nodeName": host, "containers": [{"name": "c"}]}})
    else:
        kv.api.delete(PODS.item(name, NAMESPACE))


def stress_worker(target, worker: int, host: str, duration: float, seed: int, results) -> None:
    from node.datastore.factory import kv_for

    logging.basicConfig(level=logging.ERROR)
    config = _datastore(target)
    kubernetes = config.datastore_type == "kubernetes"
    kv = kv_for(config)
    ipam = IPAM(kv)
    rng = random.Random(seed)
    held: dict[str, list[str]] = {}
    stats = {"assigned": 0, "released": 0, "exhausted": 0, "errors": []}
    serial = 0
    deadline = time.monotonic() + duration
    try:
        while time.monotonic() < deadline:
            if held and rng.random() < min(0.9, len(held) / 16):
                handle = rng.choice(sorted(held))
                ips = held.pop(handle)
                if rng.random() < 0.5:
                    ipam.release_by_handle(handle)
                else:
                    assert ipam.release_ips([ReleaseOptions(ip, handle=handle) for ip in ips]) == []
                wep = workload(host, handle, ips)
                ipam.client.delete("WorkloadEndpoint", wep.name, NAMESPACE)
                if kubernetes:
                    _kube_pod(kv, host, wep.spec["pod"], False)
                stats["released"] += len(ips)
                continue
            serial += 1
            handle = f"k8s-pod-network.w{worker}x{serial}"
            attrs = {"namespace": NAMESPACE, "node": host, "pod": handle.split(".", 1)[1]}
            v4, _ = ipam.auto_assign(num4=rng.choice((1, 1, 2)), handle_id=handle, attrs=attrs, host=host)
            if v4.partial_error() is not None:
                stats["exhausted"] += 1
                if v4.ips:
                    ipam.release_by_handle(handle)  # the CNI plugin gives back a partial result
                continue
            wep = workload(host, handle, v4.ips)
            if kubernetes:
                _kube_pod(kv, host, wep.spec["pod"], True)
            ipam.client.create(wep)
            held[handle] = list(v4.ips)
            stats["assigned"] += len(v4.ips)
    except Exception:  # noqa: BLE001 - reported to the test, which fails on it
        stats["errors"].append(traceback.format_exc())
    finally:
        kv.close()
    results.put((worker, held, stats))


class _CrashingKV:
    """Wraps a real EtcdKV and kills the process at the chosen write, after ``skip``
    matching writes have gone through. A fault injector, not a mock: every write that
    happens reaches the real etcd."""

    def __init__(self, kv: EtcdKV, op: str, key_part: str, skip: int = 0):
        self._kv = kv
        self._op = op
        self._key_part = key_part
        self._skip = skip

    def _maybe_die(self, op: str, key: str) -> None:
        if op == self._op and self._key_part in key:
            if self._skip == 0:
                os._exit(17)
            self._skip -= 1

    def create(self, key, value):
        self._maybe_die("create", key)
        return self._kv.create(key, value)

    def update(self, key, value, revision):
        self._maybe_die("update", key)
        return self._kv.update(key, value, revision)

    def delete(self, key, revision=None):
        self._maybe_die("delete", key)
        return self._kv.delete(key, revision)

    def __getattr__(self, name):
        return getattr(self._kv, name)


def crash_worker(endpoint: str, action: str, op: str, key_part: str, skip: int = 0) -> None:
    """Run one IPAM call that is killed at the given write."""
    kv = _CrashingKV(EtcdKV(DatastoreConfig(etcd_endpoints=(endpoint,))), op, key_part, skip)
    ipam = IPAM(kv)
    if action == "assign":
        ipam.auto_assign(num4=1, handle_id="k8s-pod-network.crash", attrs={"node": "n1"}, host="n1")
    elif action == "release":
        ipam.release_by_handle("k8s-pod-network.crash")
    else:
        raise ValueError(action)
    os._exit(0)
