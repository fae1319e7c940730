"""Kubernetes Service advertisement: which Service addresses this node announces.

Beside the global service ranges of the default BGPConfiguration, a node announces /32
(/128) routes for individual Services: those with ``externalTrafficPolicy: Local`` and
a ready endpoint on this node, and Cluster-policy Services using a single-address
external or load-balancer IP (or every Cluster Service with endpoints when load-balancer
aggregation is off). Services and EndpointSlices reach the renderer as plain Kubernetes
objects (from files, or from the Kubernetes API through the renderer's own client).
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from node.model.ipam import parse_pod_cidr

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ADVERTISED_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


@dataclass(frozen=True)
class Service:
    """The fields of a v1 Service that matter here, with the API server's defaults."""

    namespace: str
    name: str
    type: str
    cluster_ip: str
    cluster_ips: tuple[str, ...]
    ip_families: tuple[str, ...]
    external_traffic_policy: str
    external_ips: tuple[str, ...]
    load_balancer_ip: str
    ingress_ips: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return self.namespace, self.name


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str
    address_type: str
    endpoints: tuple[tuple[bool, str], ...] = field(default=())   # (ready, nodeName)


def _family(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return ""


def service_from_doc(doc: dict, with_status: bool = True) -> Service:
    """A Service as the API server stores it: ``type`` defaults to ClusterIP,
    ``clusterIPs`` and ``ipFamilies`` follow ``clusterIP``, and NodePort and LoadBalancer
    Services default to the Cluster traffic policy. ``with_status=False`` drops the status,
    as a create through the API does."""
    meta = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    svc_type = spec.get("type") or "ClusterIP"
    cluster_ip = spec.get("clusterIP") or ""
    cluster_ips = tuple(spec.get("clusterIPs") or ([cluster_ip] if cluster_ip and cluster_ip != "None" else []))
    families = tuple(spec.get("ipFamilies") or [f for f in map(_family, cluster_ips) if f])
    policy = spec.get("externalTrafficPolicy") or ("Cluster" if svc_type in ("NodePort", "LoadBalancer") else "")
    ingress = ()
    if with_status:
        ingress = tuple(i.get("ip", "") for i in ((doc.get("status") or {}).get("loadBalancer") or {})
                        .get("ingress") or [] if i.get("ip"))
    return Service(namespace=meta.get("namespace") or "default", name=meta.get("name") or "", type=svc_type,
                   cluster_ip=cluster_ip, cluster_ips=cluster_ips, ip_families=families,
                   external_traffic_policy=policy, external_ips=tuple(spec.get("externalIPs") or ()),
                   load_balancer_ip=spec.get("loadBalancerIP") or "", ingress_ips=ingress)


def endpoint_slice_from_doc(doc: dict) -> EndpointSlice:
    meta = doc.get("metadata") or {}
    endpoints = []
    for ep in doc.get("endpoints") or []:
        ready = (ep.get("conditions") or {}).get("ready")
        endpoints.append((ready is not False, ep.get("nodeName") or ""))
    return EndpointSlice(namespace=meta.get("namespace") or "default", name=meta.get("name") or "",
                         service=(meta.get("labels") or {}).get(SERVICE_NAME_LABEL, ""),
                         address_type=doc.get("addressType") or "", endpoints=tuple(endpoints))


def service_summary(svc: Service | None) -> Service | None:
    """What of a Service can change this node's routes: the parsed Service itself, or
    None when it can change none (absent, a type that is not advertised, or no cluster
    IP), as ``service_routes`` reads it."""
    if svc is None or svc.type not in ADVERTISED_TYPES or svc.cluster_ip in ("", "None"):
        return None
    return svc


def slice_summary(eps: EndpointSlice | None, node_ref: str) -> tuple | None:
    """What of an EndpointSlice can change the routes of the node ``node_ref`` (all that
    ``service_routes`` reads of it): its Service, its address type, and whether it has a
    ready endpoint on that node; None when it has no ready endpoint at all (as if
    absent). Other endpoints coming and going, addresses and ports change nothing."""
    ready = [node for is_ready, node in eps.endpoints if is_ready] if eps is not None else []
    if not ready:
        return None
    return eps.namespace, eps.service, eps.address_type, node_ref in ready


def _nets(cidrs: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The ranges Calico's route generator matches Service addresses against: each entry
    read with Go's ``net.ParseCIDR``, so a bare address is skipped (and logged)."""
    out = []
    for cidr in cidrs:
        try:
            out.append(parse_pod_cidr(cidr))
        except ValueError:
            log.error("BGPConfiguration(default): %r is not a CIDR (address/length); ignoring it", cidr)
    return out


def _inside(ip: str, nets, single_only: bool = False) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net and (not single_only or net.prefixlen == net.max_prefixlen) for net in nets)


@dataclass(frozen=True)
class AdvertisementConfig:
    """What the default BGPConfiguration and this node say about Service advertisement."""

    node_ref: str                  # this node's Kubernetes name (EndpointSlice nodeName)
    excluded: bool                 # labelled out of external load balancing
    advertise_cluster_ips: bool    # some cluster-IP range is configured
    external_cidrs: list[str]
    load_balancer_cidrs: list[str]
    aggregate_load_balancers: bool


def service_routes(services: list[Service], slices: list[EndpointSlice], cfg: AdvertisementConfig) -> set[str]:
    """The /32 and /128 routes this node announces for individual Services."""
    ext_nets = _nets(cfg.external_cidrs)
    lb_nets = _nets(cfg.load_balancer_cidrs)
    by_service: dict[tuple[str, str], list[EndpointSlice]] = {}
    for eps in slices:
        by_service.setdefault((eps.namespace, eps.service), []).append(eps)
    routes: set[str] = set()
    for svc in services:
        if not _advertised(svc, by_service.get(svc.key, []), cfg, ext_nets, lb_nets):
            continue
        addresses = list(svc.cluster_ips) if cfg.advertise_cluster_ips else []
        addresses += [ip for ip in svc.external_ips if ip and _inside(ip, ext_nets)]
        addresses += [ip for ip in svc.ingress_ips if _inside(ip, lb_nets)]
        routes.update(f"{ip}/128" if ":" in ip else f"{ip}/32" for ip in addresses)
    return routes


def _advertised(svc: Service, slices: list[EndpointSlice], cfg: AdvertisementConfig, ext_nets, lb_nets) -> bool:
    if cfg.excluded or svc.type not in ADVERTISED_TYPES or svc.cluster_ip in ("", "None"):
        return False
    local = svc.external_traffic_policy == "Local"
    if svc.external_traffic_policy == "Cluster":
        lb_ips = [svc.load_balancer_ip, *svc.ingress_ips]
        if svc.type == "LoadBalancer" and any(_inside(ip, lb_nets, single_only=True) for ip in lb_ips if ip):
            return True
        if any(_inside(ip, ext_nets, single_only=True) for ip in svc.external_ips if ip):
            return True
    if not local and cfg.aggregate_load_balancers:
        return False  # covered by the global ranges
    for eps in slices:
        if eps.address_type not in svc.ip_families:
            continue
        for ready, node in eps.endpoints:
            if ready and (not local or node == cfg.node_ref):
                return True
    return False
