"""How IP / IP6 and the autodetection methods set a Node's addresses and interfaces.

``configure_ips`` applies Calico's rules to a Node spec (a plain dict) and reports
whether the addresses or ``spec.interfaces`` changed; ``find_conflicts`` compares the
result with the other Nodes. Both are pure apart from logging and the route lookup
that ``can-reach`` makes through the HostView. The rules that surprise people:

* IPv4 is autodetected when ``IP=autodetect`` *or* when ``IP`` is unset and the Node
  has no address yet; so without ``IP=autodetect`` an existing address never changes.
* IPv6 is autodetected only with ``IP6=autodetect``.
* ``IP=none`` keeps an existing address (it is not cleared).
* an explicit ``IP`` without a prefix takes the prefix of the local interface holding
  it (``/32`` if none does); an explicit ``IP6`` gets no such lookup (``/128``).
* only the address is compared with other Nodes, never the prefix length.
"""
from __future__ import annotations

import ipaddress
import logging
from typing import Any, Mapping, Sequence

from startup.autodetect import HostView, autodetect_cidr, local_cidr, parse_cidr
from startup.interfaces import DEFAULT_INTERFACES_TO_EXCLUDE, IPAddress, Link, get_interfaces
from startup.logs import Fatal

log = logging.getLogger(__name__)


class IPConfigError(Exception):
    """Addresses could not be configured; startup terminates, the monitor exits."""


def parse_cidr_or_ip(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """libcalico's ParseCIDROrIP: ``addr/len`` keeps the host bits; a bare address gets a
    full-length prefix (an IPv4-mapped IPv6 address is the IPv4 address, as Go's IP
    is). None when it is neither."""
    parsed = parse_cidr(text)
    if parsed is not None:
        return ipaddress.ip_interface(f"{parsed[0]}/{parsed[1].prefixlen}")
    if "/" in text or "%" in text:
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return ipaddress.ip_interface(addr)


def parse_ip_environment(name: str, value: str, version: int) -> str:
    """An explicit IP/IP6 value as the Node stores it; a wrong or unparsable value is fatal."""
    cidr = parse_cidr_or_ip(value)
    if cidr is None or cidr.version != version:
        raise Fatal(f"Environment does not contain a valid IPv{version} address: {name}={value}")
    log.info("Using IPv%d address from environment: %s=%s", version, name, value)
    return str(cidr)


def validate_ip(value: str, links: Sequence[Link]) -> None:
    """Warn (only warn) when no local interface holds the address we are about to use."""
    if not value:
        return
    cidr = parse_cidr_or_ip(value)
    if cidr is None:
        raise Fatal(f"Failed to parse autodetected CIDR '{value}'")
    ifaces = get_interfaces(links, versions=(cidr.version,))
    if not ifaces:
        log.info("No interfaces found for validating IP configuration")
    for iface in ifaces:
        for have in iface.cidrs:
            if have.ip == cidr.ip:
                log.debug("IPv%d address %s discovered on interface %s", cidr.version, cidr.ip, iface.name)
                return
    log.warning("Unable to confirm IPv%d address %s is assigned to this host", cidr.version, cidr.ip)


def _configure_family(bgp: dict, env: Mapping[str, str], version: int, host: HostView,
                      k8s_node: Mapping[str, Any] | None) -> None:
    var = "IP" if version == 4 else "IP6"
    field = "ipv4Address" if version == 4 else "ipv6Address"
    value = env.get(var, "")
    stored = bgp.get(field, "")
    detect = value == "autodetect" or (version == 4 and value == "" and stored == "")
    if detect:
        method = env.get("IP_AUTODETECTION_METHOD" if version == 4 else "IP6_AUTODETECTION_METHOD", "")
        cidr = autodetect_cidr(method, version, host, k8s_node)
        if cidr is not None:
            bgp[field] = str(cidr)
        elif not stored:
            log.warning("Couldn't autodetect an IPv%d address. If auto-detecting, choose a different "
                        "autodetection method. Otherwise provide an explicit address.", version)
            raise IPConfigError(f"failed to autodetect an IPv{version} address")
        else:
            log.warning("Autodetection of IPv%d address failed, keeping existing value: %s", version, stored)
            validate_ip(stored, host.links)
    elif value == "none" and stored:
        log.info("Autodetection for IPv%d disabled, keeping existing value: %s", version, stored)
        validate_ip(stored, host.links)
    elif value != "none":
        if value:
            explicit = local_cidr(value, version, host.links) if version == 4 else value
            bgp[field] = parse_ip_environment(var, explicit, version)
        validate_ip(bgp.get(field, ""), host.links)


def interfaces_for(env: Mapping[str, str], links: Sequence[Link]) -> list[dict]:
    """``spec.interfaces``: non-excluded links, sorted by name, with every address of the
    families that IP / IP6 turn on (link-local included), as plain IPs."""
    versions = [v for v, var in ((4, "IP"), (6, "IP6")) if env.get(var, "") not in ("", "none")]
    if not versions:
        return []
    ifaces = sorted(get_interfaces(links, (), DEFAULT_INTERFACES_TO_EXCLUDE, versions), key=lambda i: i.name)
    out = []
    for iface in ifaces:
        entry: dict[str, Any] = {"name": iface.name}
        if iface.cidrs:
            entry["addresses"] = [str(c.ip) for c in iface.cidrs]
        out.append(entry)
    return out


def configure_ips(spec: dict, env: Mapping[str, str], host: HostView,
                  k8s_node: Mapping[str, Any] | None = None) -> bool:
    """Set the Node spec's addresses and interfaces in place; True if any of them changed.

    Raises IPConfigError when detection fails, Fatal for a malformed IP/IP6 value or an
    unknown autodetection method.
    """
    if spec.get("bgp") is None:
        log.info("Initialize BGP data")
        spec["bgp"] = {}
    bgp = spec["bgp"]
    old4, old6 = bgp.get("ipv4Address", ""), bgp.get("ipv6Address", "")
    old_interfaces = spec.get("interfaces") or []
    _configure_family(bgp, env, 4, host, k8s_node)
    _configure_family(bgp, env, 6, host, k8s_node)
    interfaces = interfaces_for(env, host.links)
    if interfaces:
        spec["interfaces"] = interfaces
    else:
        spec.pop("interfaces", None)
    if bgp.get("ipv4Address", "") != old4:
        log.info("Node IPv4 changed, will check for conflicts")
        return True
    if bgp.get("ipv6Address", "") != old6:
        log.info("Node IPv6 changed, will check for conflicts")
        return True
    if interfaces != old_interfaces:
        log.info("Node interfaces changed")
        return True
    return False


def _address_of(text: str, node_name: str, version: int) -> IPAddress | None:
    if not text:
        return None
    parsed = parse_cidr(text)  # the usual form, without parse_cidr_or_ip's second parse
    if parsed is not None:
        return parsed[0]
    cidr = parse_cidr_or_ip(text)
    if cidr is None:
        raise IPConfigError(f"Error parsing IPv{version} CIDR '{text}' for node '{node_name}'")
    return cidr.ip


def find_conflicts(node_name: str, spec: dict, nodes: Sequence) -> tuple[bool, bool, str]:
    """(IPv4 conflict, IPv6 conflict, error text) against every other Node's addresses.

    A Node with our name but a different address only gets a warning: addresses do
    change, though it may also mean two hosts share a name.
    """
    bgp = spec.get("bgp") or {}
    ours4 = _address_of(bgp.get("ipv4Address", ""), node_name, 4)
    ours6 = _address_of(bgp.get("ipv6Address", ""), node_name, 6)
    v4 = v6 = False
    error = ""
    for other in nodes:
        their_bgp = other.spec.get("bgp")
        if their_bgp is None:
            continue
        theirs4 = _address_of(their_bgp.get("ipv4Address", ""), other.name, 4)
        theirs6 = _address_of(their_bgp.get("ipv6Address", ""), other.name, 6)
        if other.name == node_name:
            if theirs4 and ours4 and theirs4 != ours4:
                log.warning("IPv4 address has changed. This could happen if there are multiple nodes with the "
                            "same name. node=%s original=%s updated=%s", other.name, theirs4, ours4)
            if theirs6 and ours6 and theirs6 != ours6:
                log.warning("IPv6 address has changed. This could happen if there are multiple nodes with the "
                            "same name. node=%s original=%s updated=%s", other.name, theirs6, ours6)
            continue
        if theirs4 and ours4 and theirs4 == ours4:
            log.warning("Calico node '%s' is already using the IPv4 address %s.", other.name, ours4)
            error, v4 = "IPv4 address conflict", True
        if theirs6 and ours6 and theirs6 == ours6:
            log.warning("Calico node '%s' is already using the IPv6 address %s.", other.name, ours6)
            error, v6 = "IPv6 address conflict", True
    return v4, v6, error
