"""IP autodetection methods (IP_AUTODETECTION_METHOD / IP6_AUTODETECTION_METHOD).

``autodetect_cidr`` picks this node's address for one IP version by one method, over a
``HostView`` (the links, plus how to ask the kernel for a route's source address). Every
method failure returns None with a warning, as Calico does; only an unknown method is
fatal. Results keep the host bits and prefix of the interface address.
"""
from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from startup.interfaces import (
    DEFAULT_INTERFACES_TO_EXCLUDE,
    IPAddress,
    IPInterface,
    InterfaceError,
    Link,
    find_cidr_of,
    first_usable,
    get_interfaces,
)
from startup.logs import Fatal

log = logging.getLogger(__name__)

FIRST_FOUND = "first-found"
CAN_REACH = "can-reach="
INTERFACE = "interface="
SKIP_INTERFACE = "skip-interface="
CIDR = "cidr="
K8S_INTERNAL_IP = "kubernetes-internal-ip"

# List arguments are split on commas with any surrounding blanks (so "{1,2}" breaks).
_LIST_SPLIT = re.compile(r"\s*,\s*")


@dataclass
class HostView:
    """What autodetection may look at: the links, and a route lookup for can-reach."""

    links: Sequence[Link]
    reach: Callable[[str, int], IPAddress]


def split_list(text: str) -> list[str]:
    return _LIST_SPLIT.split(text)


def parse_cidr(text: str) -> tuple[IPAddress, ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """Go's net.ParseCIDR: ``addr/len`` only, host bits allowed; None when it does not parse."""
    addr, sep, prefix = text.partition("/")
    if not sep or not (prefix.isascii() and prefix.isdigit()) or "%" in addr:
        return None
    try:
        iface = ipaddress.ip_interface(f"{addr}/{int(prefix)}")
    except ValueError:
        return None
    return iface.ip, iface.network


def autodetect_cidr(method: str, version: int, host: HostView,
                    k8s_node: Mapping[str, Any] | None = None) -> IPInterface | None:
    """This node's address by ``method``; None when the method finds nothing."""
    if method in ("", FIRST_FOUND):
        return _first_found(host, version)
    if method.startswith(INTERFACE):
        return _by_interface(host, split_list(method[len(INTERFACE):]), version)
    if method.startswith(CIDR):
        nets = []
        for text in split_list(method[len(CIDR):]):
            parsed = parse_cidr(text)
            if parsed is None:
                log.error('Invalid CIDR "%s" for IP autodetection method: %s', text, method)
                return None
            nets.append(parsed[1])
        return _by_cidr(host, nets, version)
    if method.startswith(CAN_REACH):
        return _by_reach(host, method[len(CAN_REACH):], version)
    if method.startswith(SKIP_INTERFACE):
        return _by_skip_interface(host, split_list(method[len(SKIP_INTERFACE):]), version)
    if method.startswith(K8S_INTERNAL_IP):
        if k8s_node is None:
            log.error("Cannot use method 'kubernetes-internal-ip' when not running on a Kubernetes cluster")
            return None
        return _by_k8s_internal_ip(host, k8s_node, version)
    raise Fatal(f"Invalid IP autodetection method: {method}")


def _first_found(host: HostView, version: int) -> IPInterface | None:
    try:
        ifaces = get_interfaces(host.links, (), DEFAULT_INTERFACES_TO_EXCLUDE, (version,))
        iface, cidr = first_usable(ifaces, version)
    except InterfaceError as exc:
        log.warning("Unable to auto-detect an IPv%d address: %s", version, exc)
        return None
    log.info("Using autodetected IPv%d address on interface %s: %s", version, iface.name, cidr)
    return cidr


def _by_interface(host: HostView, regexes: list[str], version: int) -> IPInterface | None:
    # The default exclude list does not apply: the operator named the interfaces.
    try:
        iface, cidr = first_usable(get_interfaces(host.links, regexes, (), (version,)), version)
    except InterfaceError as exc:
        log.warning("Unable to auto-detect an IPv%d address using interface regexes %s: %s",
                    version, _go_list(regexes), exc)
        return None
    log.info("Using autodetected IPv%d address %s on matching interface %s", version, cidr, iface.name)
    return cidr


def _by_cidr(host: HostView, nets: list, version: int) -> IPInterface | None:
    # No include or exclude list: any interface holding an address in range qualifies.
    try:
        iface, cidr = first_usable(get_interfaces(host.links, (), (), (version,)), version, nets)
    except InterfaceError as exc:
        log.warning("Unable to auto-detect an IPv%d address using interface cidr %s: %s",
                    version, _go_list(nets), exc)
        return None
    log.info("Using autodetected IPv%d address %s on interface %s matching cidrs %s",
             version, cidr, iface.name, _go_list(nets))
    return cidr


def _by_skip_interface(host: HostView, regexes: list[str], version: int) -> IPInterface | None:
    try:
        ifaces = get_interfaces(host.links, (), (*DEFAULT_INTERFACES_TO_EXCLUDE, *regexes), (version,))
        iface, cidr = first_usable(ifaces, version)
    except InterfaceError as exc:
        log.warning("Unable to auto-detect an IPv%d address while excluding %s: %s",
                    version, _go_list(regexes), exc)
        return None
    log.info("Using autodetected IPv%d address on interface %s: %s while skipping matching interfaces",
             version, iface.name, cidr)
    return cidr


def _by_reach(host: HostView, dest: str, version: int) -> IPInterface | None:
    try:
        local = host.reach(dest, version)
    except OSError as exc:
        log.warning("Unable to auto-detect IPv%d address by connecting to %s: %s", version, dest, exc)
        return None
    log.info("Auto-detected address by connecting to remote Destination=%s IP=%s", dest, local)
    cidr = find_cidr_of(host.links, local) if local.version == version else None
    if cidr is None:
        log.warning("Unable to auto-detect IPv%d address by connecting to %s: autodetected IPv%d address does "
                    "not match any addresses found on local interfaces: %s", version, dest, version, local)
        return None
    log.info("Using autodetected IPv%d address %s, detected by connecting to %s", version, cidr, dest)
    return cidr


def _by_k8s_internal_ip(host: HostView, k8s_node: Mapping[str, Any], version: int) -> IPInterface | None:
    """The Kubernetes Node's first InternalIP of this version, with its local prefix.

    An InternalIP that is not on a local interface stays a bare IP, which is not a CIDR,
    so the method yields nothing (Calico behaves the same way).
    """
    address = ""
    for entry in ((k8s_node.get("status") or {}).get("addresses") or []):
        if entry.get("type") != "InternalIP":
            continue
        try:
            ip = ipaddress.ip_address(str(entry.get("address", "")))
        except ValueError:
            continue
        if ip.version == version:
            address = local_cidr(str(ip), version, host.links)
            break
    parsed = parse_cidr(address)
    if parsed is None:
        log.error("Unable to parse CIDR %s : invalid CIDR address: %s", address, address)
        return None
    return ipaddress.ip_interface(f"{parsed[0]}/{parsed[1].prefixlen}")


def local_cidr(ip_text: str, version: int, links: Sequence[Link]) -> str:
    """An address with the prefix of the local interface that holds it.

    A value that already has a prefix is returned as is; an address no interface holds
    is returned bare, with a warning.
    """
    if "/" in ip_text:
        return ip_text
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        log.warning("Attempt to get the local CIDR: %s failed, %s is invalid", ip_text, ip_text)
        return ip_text
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Go's IP: an IPv4-mapped address is IPv4
    if ip.version != version:
        log.warning("Attempt to get the local CIDR: %s failed, %s is invalid", ip_text, ip_text)
        return ip_text
    cidr = find_cidr_of(links, ip)
    if cidr is not None:
        log.info("Including CIDR information from host interface. CIDR=%s", cidr)
        return str(cidr)
    log.warning("Unable to find matching host interface for IP %s", ip_text)
    return ip_text


def _go_list(items: Sequence[Any]) -> str:
    return "[" + " ".join(str(i) for i in items) + "]"
