"""Members of the IP sets of rules that match a Kubernetes Service (Felix's ServiceIndex).

A rule's ``destination.services`` becomes a ``svc:`` set (``hash:ip,port``) and its
``source.services`` a ``svcnoport:`` set (``hash:net``), both named after
``<namespace>/<service>`` (see ``rule_scanner``). What fills them is the Service's
EndpointSlices, found by their ``kubernetes.io/service-name`` label in the Service's
namespace; the Service object itself is not read. As Felix does:

* every address of every endpoint counts, whatever its ``conditions`` (ready, serving,
  terminating) and whatever the slice's ``addressType`` (the dataplane keeps each
  family's members in that family's set);
* a ``svcnoport:`` set holds each address as a single-address CIDR (an address given as
  a CIDR is kept as its network); anything else (an FQDN slice's names) is skipped;
* a ``svc:`` set holds ``address,proto:port`` for each address that is an IP and each
  of the slice's ports that has a number (a port without one means "no membership"),
  the protocol being UDP or SCTP when the port says so and TCP otherwise;
* a member several slices contribute (an endpoint moving between slices) is counted,
  and leaves the set with its last contributor.

Only the slices of Services some active rule names cost work: a slice update touches
the (at most two) active sets of its own Service, in proportion to the slice. Slices are
kept as ``EndpointSliceSummary`` records (the addresses and ports only), made by the
syncer's decoder (``decode_endpoint_slice``) so the agent never holds the objects.
Services only exist on the Kubernetes datastore: on etcd Felix does not watch them and
these sets stay empty.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

from node.datastore.kubernetes.keys import KubeObject, parse_native_key
from node.felix.calc.rule_scanner import PROTO_SCTP, PROTO_TCP, PROTO_UDP, IPSetData

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ENDPOINT_SLICE_KIND = "EndpointSlice"

MemberCallback = Callable[[str, str], None]


class EndpointSliceSummary(NamedTuple):
    """What the service sets need from one EndpointSlice."""

    namespace: str
    name: str
    service: str                       # "<namespace>/<kubernetes.io/service-name>"
    nets: tuple[str, ...] = ()         # every address that is an IP or a CIDR, as a CIDR
    ips: tuple[str, ...] = ()          # the addresses that are IPs, canonical
    ports: tuple[str, ...] = ()        # "proto:port" of each port with a number

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def _ip_text(text: str) -> str | None:
    """Canonical text of an IP address as Go's net.ParseIP accepts it, else None."""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        if socket.inet_ntop(family, socket.inet_pton(family, text)) == text and not text.startswith("::ffff:"):
            return text  # canonical already (nearly every address): no need for ipaddress
    except (OSError, ValueError):
        pass
    if "%" in text:  # Go has no zones in a plain address
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # Go holds ::ffff:a.b.c.d as the IPv4 address
    return str(addr)


def _net_text(text: str) -> str | None:
    """Felix's ParseCIDROrIP: an address as its single-address CIDR, a CIDR masked."""
    if "/" not in text:
        ip = _ip_text(text)
        if ip is None:
            return None
        return f"{ip}/{32 if ':' not in ip else 128}"
    addr, _, plen = text.partition("/")
    if _ip_text(addr) is None or not plen.isdigit():
        return None
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        return None


def _port_text(port: Any, where: str) -> str | None:
    if not isinstance(port, dict):
        log.warning("%s: not an object; ignoring it", where)
        return None
    number = port.get("port")
    if number is None:
        return None  # no port: no membership in the port-ful set
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 65535:
        log.warning("%s.port: %r is not a port number; ignoring the port", where, number)
        return None
    proto = port.get("protocol")
    name = {"UDP": PROTO_UDP, "SCTP": PROTO_SCTP}.get(proto, PROTO_TCP) if isinstance(proto, str) else PROTO_TCP
    return f"{name}:{number}"


def summary_from_object(obj: dict, namespace: str = "", name: str = "") -> EndpointSliceSummary:
    """The summary of an EndpointSlice object (its JSON decoded); malformed parts are
    logged with the slice's name and the field, and left out."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = namespace or str(meta.get("namespace") or "")
    name = name or str(meta.get("name") or "")
    ident = f"EndpointSlice({namespace}/{name})"
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    service = labels.get(SERVICE_NAME_LABEL)
    service = service if isinstance(service, str) else ""
    nets: dict[str, None] = {}
    ips: dict[str, None] = {}
    endpoints = obj.get("endpoints") or []
    if not isinstance(endpoints, list):
        log.warning("%s: endpoints is not a list; ignoring it", ident)
        endpoints = []
    for i, ep in enumerate(endpoints):
        addresses = ep.get("addresses") if isinstance(ep, dict) else None
        if not isinstance(addresses, list):
            log.warning("%s: endpoints[%d].addresses is not a list; ignoring the endpoint", ident, i)
            continue
        for addr in addresses:
            if not isinstance(addr, str):
                log.warning("%s: endpoints[%d].addresses: %r is not text; ignoring it", ident, i, addr)
                continue
            if "/" in addr:
                ip, net = None, _net_text(addr)  # a CIDR: the port-less set only
            else:
                ip = _ip_text(addr)
                net = None if ip is None else f"{ip}/{32 if ':' not in ip else 128}"
            if net is None:
                # FQDN slices hold names: Felix skips them quietly.
                log.debug("%s: endpoints[%d]: %r is not an IP address; skipped", ident, i, addr)
                continue
            nets[net] = None
            if ip is not None:
                ips[ip] = None
    ports: dict[str, None] = {}
    raw_ports = obj.get("ports") or []
    if not isinstance(raw_ports, list):
        log.warning("%s: ports is not a list; ignoring it", ident)
        raw_ports = []
    for i, port in enumerate(raw_ports):
        text = _port_text(port, f"{ident}: ports[{i}]")
        if text is not None:
            ports[text] = None
    return EndpointSliceSummary(namespace, name, f"{namespace}/{service}" if service else "",
                                tuple(nets), tuple(ips), tuple(ports))


def decode_endpoint_slice(key: str, value: bytes, revision: int) -> EndpointSliceSummary | None:
    """SyncSource decoder for the EndpointSlice prefix: the summary, not the object."""
    parsed = parse_native_key(key)
    if parsed is None or parsed[0] != ENDPOINT_SLICE_KIND:
        return None
    obj = json.loads(value)
    if not isinstance(obj, dict):
        raise ValueError(f"{key}: stored value is not a JSON object")
    return summary_from_object(obj, parsed[1], parsed[2])


def as_summary(value: Any) -> EndpointSliceSummary | None:
    """An EndpointSlice update's value as a summary (the decoder's, or a KubeObject's)."""
    if isinstance(value, EndpointSliceSummary):
        return value
    if isinstance(value, KubeObject) and value.kind == ENDPOINT_SLICE_KIND:
        return summary_from_object(value.obj, value.namespace, value.name)
    return None


def slice_members(s: EndpointSliceSummary, include_ports: bool) -> tuple[str, ...]:
    """The members one slice puts into a service set (each once)."""
    if not include_ports:
        return s.nets
    return tuple(f"{ip},{port}" for ip in s.ips for port in s.ports)


class _ActiveSet:
    __slots__ = ("id", "service", "include_ports", "refs")

    def __init__(self, set_id: str, service: str, include_ports: bool):
        self.id = set_id
        self.service = service
        self.include_ports = include_ports
        self.refs: dict[str, int] = {}


class ServiceIndex:
    """The active service sets' members, kept up to date as EndpointSlices change.

    ``on_added(set_id, member)``/``on_removed(set_id, member)`` report membership
    changes; a set being removed reports nothing (the set itself goes)."""

    def __init__(self, on_added: MemberCallback, on_removed: MemberCallback):
        self._on_added = on_added
        self._on_removed = on_removed
        self._slices: dict[str, EndpointSliceSummary] = {}
        self._slices_by_service: dict[str, dict[str, EndpointSliceSummary]] = {}
        self._sets: dict[str, _ActiveSet] = {}
        self._sets_by_service: dict[str, dict[str, _ActiveSet]] = {}

    # ------------------------------------------------------------------ slices

    def update_slice(self, s: EndpointSliceSummary) -> None:
        key = s.key
        old = self._slices.get(key)
        if old == s:
            return
        if not s.service:
            # No Service names it (or no rule could: a rule names a Service by name).
            self.remove_slice(key)
            return
        if old is not None and old.service != s.service:
            # The label moved the slice to another Service (Felix would leave the old
            # Service's sets as they were; here they lose what the slice gave them).
            self.remove_slice(key)
            old = None
        self._contribute(s.service, old, s)
        self._slices[key] = s
        self._slices_by_service.setdefault(s.service, {})[key] = s

    def remove_slice(self, key: str) -> None:
        """``key`` is ``<namespace>/<name>``; an unknown slice is ignored."""
        old = self._slices.pop(key, None)
        if old is None:
            return
        self._contribute(old.service, old, None)
        by_service = self._slices_by_service[old.service]
        del by_service[key]
        if not by_service:
            del self._slices_by_service[old.service]

    def _contribute(self, service: str, old: EndpointSliceSummary | None,
                    new: EndpointSliceSummary | None) -> None:
        for active in self._sets_by_service.get(service, {}).values():
            refs = active.refs
            # Additions first, so a member the slice keeps never leaves the set.
            if new is not None:
                for m in slice_members(new, active.include_ports):
                    count = refs.get(m, 0)
                    refs[m] = count + 1
                    if count == 0:
                        self._on_added(active.id, m)
            if old is not None:
                for m in slice_members(old, active.include_ports):
                    count = refs[m] - 1
                    if count:
                        refs[m] = count
                    else:
                        del refs[m]
                        self._on_removed(active.id, m)

    # ------------------------------------------------------------------ sets

    def update_set(self, ipset: IPSetData) -> None:
        """Start filling a service set (a known ID is a no-op: the ID fixes the content)."""
        if ipset.id in self._sets or not ipset.service:
            return
        active = _ActiveSet(ipset.id, ipset.service, ipset.service_include_ports)
        self._sets[ipset.id] = active
        self._sets_by_service.setdefault(ipset.service, {})[ipset.id] = active
        for s in self._slices_by_service.get(ipset.service, {}).values():
            for m in slice_members(s, active.include_ports):
                count = active.refs.get(m, 0)
                active.refs[m] = count + 1
                if count == 0:
                    self._on_added(active.id, m)

    def remove_set(self, set_id: str) -> None:
        active = self._sets.pop(set_id, None)
        if active is None:
            return
        by_service = self._sets_by_service[active.service]
        del by_service[set_id]
        if not by_service:
            del self._sets_by_service[active.service]

    def members(self, set_id: str) -> frozenset[str]:
        active = self._sets.get(set_id)
        return frozenset(active.refs) if active is not None else frozenset()

    def __contains__(self, set_id: str) -> bool:
        return set_id in self._sets
