"""Addresses for workloads exactly as the Calico CNI plugin requests them.

Tests and the demo create workloads without the real plugin; these helpers produce the
same handle ID (``<network>.<containerID>``), the same allocation attributes and the
same failure handling (a partial assignment is given back and reported), so what they
leave in the datastore is indistinguishable from the plugin's.
"""
from __future__ import annotations

import datetime as _dt
import time

from node.errors import NotFound
from node.ipam.allocator import IPAM

DEFAULT_NETWORK = "k8s-pod-network"


def pod_handle(container_id: str, network: str = DEFAULT_NETWORK) -> str:
    return f"{network}.{container_id}"


def go_time_string(ns: int) -> str:
    """A UTC time as Go's ``time.Time.String()`` prints it (trailing zero nanoseconds dropped)."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + " +0000 UTC"


def pod_attributes(node: str, namespace: str = "", pod: str = "", now_ns: int | None = None) -> dict:
    attrs = {"node": node, "timestamp": go_time_string(time.time_ns() if now_ns is None else now_ns)}
    if pod:
        attrs["pod"] = pod
        attrs["namespace"] = namespace
    return attrs


def assign_pod(ipam: IPAM, node: str, namespace: str, pod: str, container_id: str, *, num4: int = 1,
               num6: int = 0, pools: list[str] | None = None, network: str = DEFAULT_NETWORK) -> list[str]:
    """CNI ADD's IPAM step: the addresses assigned (IPv4 first). On a shortfall the
    partial assignment is released and PartialAssignment raised, as the plugin does."""
    handle = pod_handle(container_id, network)
    attrs = pod_attributes(node, namespace, pod, ipam.clock_ns())
    v4, v6 = ipam.auto_assign(num4=num4, num6=num6, handle_id=handle, attrs=attrs, host=node, pools=pools)
    ips: list[str] = []
    for result in (v4, v6):
        if result is None:
            continue
        err = result.partial_error()
        if err is not None:
            release_pod(ipam, container_id, network)
            raise err
        ips.extend(result.ips)
    return ips


def release_pod(ipam: IPAM, container_id: str, network: str = DEFAULT_NETWORK) -> None:
    """CNI DEL's IPAM step: release by handle; nothing to release is not an error."""
    try:
        ipam.release_by_handle(pod_handle(container_id, network))
    except NotFound:
        pass
