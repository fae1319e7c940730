"""libcalico-go's cnet parsing that several readers share."""
from __future__ import annotations

import ipaddress
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr_or_ip(text: Any) -> tuple[Address, Network] | None:
    """cnet.ParseCIDROrIP: the address as written and its (masked) network, a bare address
    being a host network; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        if "/" in text:
            iface = ipaddress.ip_interface(text)
            return iface.ip, iface.network
        addr = ipaddress.ip_address(text)
        return addr, ipaddress.ip_network(addr)
    except ValueError:
        return None
