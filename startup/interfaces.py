"""Host interfaces as plain data, and Calico's rules for filtering and choosing among them.

Everything here is pure: it works on ``Link`` values read elsewhere (``startup.hostnet``),
so the tricky rules can be tested directly. The rules, each easy to get wrong:

* links are visited in *reverse* kernel order (highest ifindex first);
* include/exclude lists become one regex ``(r1)|(r2)|...`` searched *unanchored*, so
  ``^lo`` also excludes ``lo0`` and ``local1``;
* an address keeps its host bits and prefix (``10.0.0.11/24``);
* "usable" is Go's ``IsGlobalUnicast``, which accepts RFC 1918, CGNAT and ULA addresses.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Interfaces first-found (and skip-interface, and spec.interfaces) never consider.
DEFAULT_INTERFACES_TO_EXCLUDE = (
    r"^docker.*", r"^cbr.*", r"^dummy.*", r"^podman.*", r"^virbr.*", r"^lxcbr.*", r"^veth.*", r"^lo",
    r"^br-.*", r"^cali.*", r"^tunl.*", r"^flannel.*", r"^kube-ipvs.*", r"^cni.*", r"^vxlan\.calico.*",
    r"^vxlan-v6\.calico.*", r"^wireguard\.cali.*", r"^wg-v6\.cali.*", r"^nodelocaldns.*",
)

_IPV4_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_IPV4_LINK_LOCAL = ipaddress.IPv4Network("169.254.0.0/16")


class InterfaceError(Exception):
    """Enumeration or selection found nothing usable, or a regex was invalid."""


@dataclass(frozen=True)
class Link:
    """One kernel link: its index, name and every address on it in kernel order."""

    index: int
    name: str
    addresses: tuple[IPInterface, ...] = ()


@dataclass(frozen=True)
class Interface:
    """A link after filtering: only the addresses of the requested IP versions."""

    name: str
    cidrs: tuple[IPInterface, ...] = field(default_factory=tuple)


def compile_filter(regexes: Sequence[str]) -> re.Pattern | None:
    """Join regexes as Calico does; None for an empty list. Raises InterfaceError if invalid."""
    if not regexes:
        return None
    text = "(" + ")|(".join(regexes) + ")"
    try:
        return re.compile(text)
    except re.error as exc:
        raise InterfaceError(f"invalid interface regex {text!r}: {exc}") from None


def get_interfaces(links: Sequence[Link], include: Sequence[str] = (), exclude: Sequence[str] = (),
                   versions: Iterable[int] = (4, 6)) -> list[Interface]:
    """The links that pass the filters, highest ifindex first, with matching addresses only.

    A link with no address of the requested versions is still listed (with no cidrs).
    """
    inc = compile_filter(include)
    exc = compile_filter(exclude)
    wanted = set(versions)
    out = []
    for link in reversed(links):
        if inc is not None and not inc.search(link.name):
            continue
        if exc is not None and exc.search(link.name):
            continue
        out.append(Interface(link.name, tuple(a for a in link.addresses if a.version in wanted)))
    return out


def is_global_unicast(ip: IPAddress) -> bool:
    """Go's net.IP.IsGlobalUnicast (not Python's is_global, which rejects private ranges)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip in _IPV4_LINK_LOCAL
                    or ip == _IPV4_BROADCAST)
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local)


def first_usable(interfaces: Sequence[Interface], version: int,
                 within: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()
                 ) -> tuple[Interface, IPInterface]:
    """The first usable address (optionally inside one of ``within``), in enumeration order."""
    if not interfaces:
        raise InterfaceError("no valid host interfaces found")
    for iface in interfaces:
        for cidr in iface.cidrs:
            if is_global_unicast(cidr.ip) and (not within or any(cidr.ip in net for net in within
                                                                  if net.version == cidr.version)):
                return iface, cidr
    raise InterfaceError(f"no valid IPv{version} addresses found on the host interfaces")


def find_cidr_of(links: Sequence[Link], ip: IPAddress) -> IPInterface | None:
    """The interface address (with its prefix) that equals ``ip``, on any link, unfiltered."""
    for iface in get_interfaces(links, versions=(ip.version,)):
        for cidr in iface.cidrs:
            if cidr.ip == ip:
                return cidr
    return None


def all_ipv4_addresses(links: Sequence[Link]) -> list[ipaddress.IPv4Address]:
    return [a.ip for link in links for a in link.addresses if a.version == 4]
