"""Endpoint status files: what Felix writes under ``EndpointStatusPathPrefix`` (pure part).

For every local workload endpoint whose interface is up and configured, Felix keeps a
file ``<prefix>/endpoint-status/<orchestrator> <workload> <endpoint>`` (each part
URL-path-escaped) holding a small JSON document: the interface, MAC, addresses and the
BGPPeer that peers with the workload (``localWorkloadSelector``). The Calico CNI plugin
waits for the file before it reports a pod ready (``policy_setup_timeout_seconds``), and
confd reads the peer names to render local-workload BGP sessions. Names and contents are
Felix's (libcalico-go's epstatusfile and names packages), so real Calico tools read ours.
"""
from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from typing import Iterable, Mapping
from urllib.parse import quote

from node.felix import types as t

STATUS_DIR = "endpoint-status"
UP, DOWN = "up", "down"
# Go's url.PathEscape keeps these reserved characters (and the unreserved ones) as they are.
_PATH_SEGMENT_SAFE = "$&+=:@"


@lru_cache(maxsize=1 << 14)
def status_filename(wid: t.WorkloadEndpointID) -> str:
    """``k8s default%2Fpod eth0``: the three parts of the workload endpoint's key, each
    escaped as a URL path segment, joined by spaces."""
    return " ".join(quote(part, safe=_PATH_SEGMENT_SAFE)
                    for part in (wid.orchestrator, wid.workload, wid.endpoint))


@lru_cache(maxsize=1 << 14)
def status_document(wep: t.WorkloadEndpoint) -> dict:
    """The file's JSON object, with Go's field order and empty fields left out (shared
    between calls: do not change it)."""
    doc = {"ifaceName": wep.name, "mac": wep.mac, "ipv4Nets": list(wep.ipv4_nets),
           "ipv6Nets": list(wep.ipv6_nets), "bgpPeerName": wep.local_bgp_peer}
    return {k: v for k, v in doc.items() if v}


def status_text(wep: t.WorkloadEndpoint) -> str:
    """The file's contents as Go's json.Marshal writes them (compact)."""
    return json.dumps(status_document(wep), separators=(",", ":"))


def workload_status(wep: t.WorkloadEndpoint, oper_up: bool, needs_configuring: bool) -> str:
    """Felix's endpoint status: up when the endpoint is admin-up (state ``active``), its
    interface oper-up and fully configured; down otherwise."""
    return UP if wep.state == "active" and oper_up and not needs_configuring else DOWN


def peering_unconfigurable(wep: t.WorkloadEndpoint, peering: Mapping[int, str], families: Iterable[int]) -> bool:
    """A workload with a local BGP peer needs the peering address of every IP family the
    agent runs (Felix's configureInterface fails for it otherwise, so it stays down)."""
    if not wep.local_bgp_peer:
        return False
    for version in families:
        try:
            if ipaddress.ip_address(peering.get(version) or "").version != version:
                return True
        except ValueError:
            return True
    return False


def workload_statuses(endpoints: Mapping[t.WorkloadEndpointID, t.WorkloadEndpoint], up_ifaces: Iterable[str],
                      unconfigured_ifaces: Iterable[str] = (), peering: Mapping[int, str] | None = None,
                      families: Iterable[int] = (4,)) -> dict[t.WorkloadEndpointID, str]:
    """Felix's status (up or down) of each active local workload endpoint, as its endpoint
    manager reports it after an apply (the status files and the datastore reports both
    follow it). ``peering``: BGPConfiguration's local-workload peering address per family."""
    up, unconfigured, families = set(up_ifaces), set(unconfigured_ifaces), tuple(families)
    peering = peering or {}
    return {wid: workload_status(wep, wep.name in up, wep.name in unconfigured
                                 or peering_unconfigurable(wep, peering, families))
            for wid, wep in endpoints.items()}


def desired_status_files(endpoints: Mapping[t.WorkloadEndpointID, t.WorkloadEndpoint], up_ifaces: Iterable[str],
                         unconfigured_ifaces: Iterable[str] = (), peering: Mapping[int, str] | None = None,
                         families: Iterable[int] = (4,),
                         statuses: Mapping[t.WorkloadEndpointID, str] | None = None) -> dict[str, dict]:
    """File name -> document for every endpoint that is up (a down one has no file).
    ``statuses``: ``workload_statuses`` of the same arguments, when the caller has them."""
    if statuses is None:
        statuses = workload_statuses(endpoints, up_ifaces, unconfigured_ifaces, peering, families)
    return {status_filename(wid): status_document(endpoints[wid])
            for wid, status in statuses.items() if status == UP}
