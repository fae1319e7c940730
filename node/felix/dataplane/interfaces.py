"""The host's interfaces and their addresses, read over netlink (pyroute2).

Felix's interface monitor feeds two consumers: host endpoint resolution (which interface
has which addresses) and the ``this-host`` IP set. This module reads that picture once;
the running agent follows netlink events on top of it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pyroute2 import IPRoute


@dataclass(frozen=True)
class Interface:
    name: str
    index: int
    oper_up: bool
    addresses: frozenset[str]
    mtu: int = 0


def read_interfaces(ipr: IPRoute | None = None) -> dict[str, Interface]:
    """Every link of the current network namespace with its IPv4/IPv6 addresses (link-local
    ones included: Felix reads them from the local routing table, which has them)."""
    own = ipr is None
    ipr = ipr or IPRoute()
    try:
        names: dict[int, tuple[str, bool, int]] = {}
        for link in ipr.get_links():
            state = link.get_attr("IFLA_OPERSTATE")
            names[link["index"]] = (link.get_attr("IFLA_IFNAME"), state in ("UP", "UNKNOWN"),
                                    link.get_attr("IFLA_MTU") or 0)
        addrs: dict[int, set[str]] = {i: set() for i in names}
        for addr in ipr.get_addr():
            ip = addr.get_attr("IFA_ADDRESS")
            if ip is None or addr["index"] not in addrs:
                continue
            addrs[addr["index"]].add(ip)
    finally:
        if own:
            ipr.close()
    return {name: Interface(name, index, up, frozenset(addrs[index]), mtu)
            for index, (name, up, mtu) in names.items()}


def addresses_by_name(interfaces: dict[str, Interface]) -> dict[str, frozenset[str]]:
    return {name: iface.addresses for name, iface in interfaces.items()}


DEFAULT_HOST_MTU = 1460


def host_mtu(interfaces: dict[str, Interface], pattern: re.Pattern) -> int:
    """Felix's host MTU: the smallest MTU of the oper-up interfaces matching
    ``MTUIfacePattern``, or 1460 when none match."""
    mtus = [i.mtu for i in interfaces.values() if i.oper_up and i.mtu and pattern.search(i.name)]
    return min(mtus) if mtus else DEFAULT_HOST_MTU
