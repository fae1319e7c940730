"""Felix's status reports in the datastore: their keys, their values, and which there
should be (pure; node/felix/status_reporter.py writes them).

networking-calico, Calico's OpenStack driver, reads two kinds of report from etcd, and the
keys and JSON are libcalico-go's (model.ActiveStatusReportKey, LastStatusReportKey,
WorkloadEndpointStatusKey, HostEndpointStatusKey), so the driver reads ours:

* process status, every ``ReportingIntervalSecs``: ``/calico/felix/v2/<region>/host/
  <hostname>/status`` on a lease of ``ReportingTTLSecs`` (the driver counts an agent whose
  key has expired as dead) and ``.../last_reported_status`` without one, both holding
  model.StatusReport: ``{"time": <RFC 3339, UTC, whole seconds>, "uptime": <seconds since
  the process started>, "first_update": <true until a report has been stored>}``;
* endpoint status (``EndpointReportingEnabled``): ``/calico/felix/v2/<region>/host/
  <hostname>/workload/<orchestrator>/<workload>/endpoint/<endpoint>`` for each active local
  workload endpoint and ``/calico/felix/v1/host/<hostname>/endpoint/<id>`` (no region:
  HostEndpointStatusKey predates regions) for each local host endpoint, holding
  ``{"status": "up"|"down"|"error"}``; the driver turns them into Neutron port states.

``<region>`` is model.RegionString(OpenstackRegion): ``no-region`` when it is empty,
``region-<name>`` otherwise. The orchestrator, workload and endpoint names are escaped as
libcalico-go's escapeName does (``%`` as ``%25``, ``/`` as ``%2f``; nothing else).

A workload endpoint's status is the one the status files follow
(``endpoint_status.workload_statuses``); a host endpoint is up when it resolved to
interfaces that are all oper-up (a ``*`` one ignores them), down when one is not, and
``error`` when it resolved to none; where the IP families disagree, the worse status
wins (error, then down), as Felix's status combiner decides.
"""
from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from functools import lru_cache
from typing import Iterable, Mapping

from node.felix import types as t
from node.felix.rules.names import ALL_INTERFACES

NO_REGION = "no-region"
REGION_PREFIX = "region-"
UP, DOWN, ERROR = "up", "down", "error"
_SEVERITY = {UP: 1, DOWN: 2, ERROR: 3}

_WORKLOAD_STATUS_KEY = re.compile(r"^/?calico/felix/v2/([^/]+)/host/([^/]+)/workload/([^/]+)/([^/]+)/endpoint/([^/]+)$")
_HOST_ENDPOINT_STATUS_KEY = re.compile(r"^/?calico/felix/v1/host/([^/]+)/endpoint/([^/]+)$")


# -- keys ---------------------------------------------------------------------------------

def region_string(region: str) -> str:
    """model.RegionString: the key segment for an OpenStack region."""
    return REGION_PREFIX + region if region else NO_REGION


def escape_name(name: str) -> str:
    """libcalico-go's escapeName, for the name segments of status keys."""
    return name.replace("%", "%25").replace("/", "%2f")


def unescape_name(name: str) -> str:
    return name.replace("%2f", "/").replace("%25", "%")


def _checked(hostname: str, region: str) -> None:
    """What libcalico-go checks before it makes a key with a region in it."""
    if not hostname:
        raise ValueError("a status key needs the hostname")
    if not region:
        raise ValueError("a status key needs the region string (no-region when there is none)")
    if "/" in region:
        raise ValueError(f"RegionString {region} is invalid because it includes a slash")


def host_status_root(hostname: str, region: str) -> str:
    _checked(hostname, region)
    return f"/calico/felix/v2/{region}/host/{hostname}"


def active_status_key(hostname: str, region: str) -> str:
    """ActiveStatusReportKey: the process status on a lease. ``region`` is a region string."""
    return host_status_root(hostname, region) + "/status"


def last_status_key(hostname: str, region: str) -> str:
    """LastStatusReportKey: the same report, kept after the agent stops."""
    return host_status_root(hostname, region) + "/last_reported_status"


@lru_cache(maxsize=1 << 14)
def workload_status_key(hostname: str, region: str, wid: t.WorkloadEndpointID) -> str:
    """WorkloadEndpointStatusKey of a workload endpoint of this host."""
    if not (wid.orchestrator and wid.workload and wid.endpoint):
        raise ValueError(f"workload endpoint ID {wid} lacks a part")
    return (f"{host_status_root(hostname, region)}/workload/{escape_name(wid.orchestrator)}/"
            f"{escape_name(wid.workload)}/endpoint/{escape_name(wid.endpoint)}")


@lru_cache(maxsize=1 << 12)
def host_endpoint_status_key(hostname: str, hid: t.HostEndpointID) -> str:
    """HostEndpointStatusKey of a host endpoint of this host (no region in it)."""
    if not hostname or not hid.endpoint_id:
        raise ValueError("a host endpoint status key needs the hostname and the endpoint's name")
    return f"/calico/felix/v1/host/{hostname}/endpoint/{escape_name(hid.endpoint_id)}"


def workload_status_prefix(hostname: str, region: str) -> str:
    """What Felix lists to find this host's workload endpoint status keys."""
    return host_status_root(hostname, region) + "/workload/"


def host_endpoint_status_prefix(hostname: str) -> str:
    """What Felix lists to find this host's host endpoint status keys."""
    return f"/calico/felix/v1/host/{hostname}/endpoint/"


def parse_workload_status_key(key: str) -> tuple[str, str, t.WorkloadEndpointID] | None:
    """(region string, hostname, endpoint ID) of a WorkloadEndpointStatusKey, or None."""
    m = _WORKLOAD_STATUS_KEY.match(key)
    if m is None:
        return None
    region, host, orch, workload, endpoint = m.groups()
    return region, host, t.WorkloadEndpointID(unescape_name(orch), unescape_name(workload), unescape_name(endpoint))


def parse_host_endpoint_status_key(key: str) -> tuple[str, t.HostEndpointID] | None:
    """(hostname, host endpoint ID) of a HostEndpointStatusKey, or None."""
    m = _HOST_ENDPOINT_STATUS_KEY.match(key)
    if m is None:
        return None
    return m.group(1), t.HostEndpointID(unescape_name(m.group(2)))


def own_endpoint_status_key(key: str, hostname: str, region: str) -> bool:
    """Whether a listed key is one of this host's endpoint status keys in its region (the
    keys Felix's resync keeps in line; anything else under the prefixes is left alone)."""
    wl = parse_workload_status_key(key)
    if wl is not None:
        return wl[0] == region and wl[1] == hostname
    hep = parse_host_endpoint_status_key(key)
    return hep is not None and hep[0] == hostname


# -- values -------------------------------------------------------------------------------

def iso_timestamp(epoch: float) -> str:
    """Go's time.Now().UTC().Format(time.RFC3339): whole seconds, ``Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json writes it: the shortest digits that read back the
    same, in plain notation (exponent form only below 1e-6 or from 1e21 on)."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"JSON has no {value}")
    if value == 0:
        return "0"
    if 1e-6 <= abs(value) < 1e21:
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = repr(value).partition("e")
    mantissa = mantissa[:-2] if mantissa.endswith(".0") else mantissa
    return f"{mantissa}e{'-' if exponent.startswith('-') else '+'}{int(exponent.lstrip('+-'))}"


def status_report_json(timestamp: str, uptime: float, first_update: bool) -> str:
    """model.StatusReport as Go's json.Marshal writes it."""
    return (f'{{"time":{json.dumps(timestamp)},"uptime":{go_float(uptime)},'
            f'"first_update":{"true" if first_update else "false"}}}')


def endpoint_status_json(status: str) -> str:
    """model.WorkloadEndpointStatus / HostEndpointStatus as Go's json.Marshal writes it."""
    return json.dumps({"status": status}, separators=(",", ":"))


def parse_endpoint_status(raw: bytes | str) -> str | None:
    """The status a stored endpoint report holds; None when it does not parse as one."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    status = doc.get("status", "")
    return status if isinstance(status, str) else None


# -- which reports there should be ----------------------------------------------------------

def worst(statuses: Iterable[str]) -> str:
    """Felix's status combiner: error over down over up ('' when no family reports one)."""
    return max(statuses, key=lambda s: _SEVERITY.get(s, 0), default="")


def host_endpoint_status(ifaces: Iterable[str], up_ifaces: set[str] | frozenset[str]) -> str:
    """One IP family's status of a host endpoint from the interfaces it resolved to."""
    ifaces = tuple(ifaces)
    if not ifaces:
        return ERROR
    real = [name for name in ifaces if name != ALL_INTERFACES]
    return UP if all(name in up_ifaces for name in real) else DOWN


def host_endpoint_statuses(per_family: Iterable[Mapping[t.HostEndpointID, Iterable[str]]],
                           up_ifaces: Iterable[str]) -> dict[t.HostEndpointID, str]:
    """Each local host endpoint's status, from each IP family's resolution (interfaces per
    endpoint, ``DesiredDataplane.host_endpoint_interfaces``) combined."""
    up = frozenset(up_ifaces)
    by_id: dict[t.HostEndpointID, list[str]] = {}
    for resolved in per_family:
        for hid, ifaces in resolved.items():
            by_id.setdefault(hid, []).append(host_endpoint_status(ifaces, up))
    return {hid: worst(statuses) for hid, statuses in by_id.items()}


def desired_endpoint_reports(hostname: str, region: str,
                             workloads: Mapping[t.WorkloadEndpointID, str],
                             host_endpoints: Mapping[t.HostEndpointID, str]) -> dict[str, str]:
    """Key -> status of every endpoint status report this host should have stored
    (``region``: the region string). An endpoint whose ID cannot make a key (an empty
    part: libcalico-go refuses to write it) has none."""
    out: dict[str, str] = {}
    for wid, status in workloads.items():
        if status and wid.orchestrator and wid.workload and wid.endpoint:
            out[workload_status_key(hostname, region, wid)] = status
    for hid, status in host_endpoints.items():
        if status and hid.endpoint_id:
            out[host_endpoint_status_key(hostname, hid)] = status
    return out
