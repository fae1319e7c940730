"""Fast parsing of the addresses and CIDRs that flow through the policy agent.

Every endpoint address is parsed several times on its way from a resource to an IP-set
member, and ``ipaddress`` parses text in pure Python (about 15 µs a go). Canonical text,
which is nearly all of it, is parsed here by the C socket functions instead, and the
result is the same ``ipaddress`` object; anything else falls back to ``ipaddress`` so
the accepted syntax and the errors are unchanged.
"""
from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4, _V6 = socket.AF_INET, socket.AF_INET6


def _packed(addr: str) -> tuple[int, bytes] | None:
    """(family bits, packed) for canonical address text, else None."""
    family, bits = (_V6, 128) if ":" in addr else (_V4, 32)
    try:
        packed = socket.inet_pton(family, addr)
    except (OSError, ValueError):
        return None
    if socket.inet_ntop(family, packed) != addr:
        return None  # not canonical (leading zeros, upper case...): let ipaddress judge
    return bits, packed


@lru_cache(maxsize=1 << 16)
def parse_network(text: str) -> IPNet:
    """``ipaddress.ip_network(text, strict=False)``, fast for canonical text."""
    addr, sep, plen = text.partition("/")
    parsed = _packed(addr)
    if parsed is not None and (not sep or (plen.isdigit() and plen[:1] != "0" or plen == "0")):
        bits, packed = parsed
        prefix = int(plen) if sep else bits
        if prefix <= bits:
            cls = ipaddress.IPv4Network if bits == 32 else ipaddress.IPv6Network
            return cls((int.from_bytes(packed, "big"), prefix), strict=False)
    return ipaddress.ip_network(text, strict=False)


def version(text: str) -> int | None:
    """The family of an address, CIDR or ``address,proto:port`` member (None: not one)."""
    addr = text.split(",", 1)[0].partition("/")[0]
    if _packed(addr) is not None:
        return 6 if ":" in addr else 4
    try:
        return ipaddress.ip_address(addr).version
    except ValueError:
        return None


def sort_key(text: str) -> tuple:
    """Order members as addresses: family, address bytes, prefix length, the rest."""
    head, _, rest = text.partition(",")
    addr, _, plen = head.partition("/")
    parsed = _packed(addr)
    if parsed is None:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return (2, text.encode(), 0, rest)
        parsed = (ip.max_prefixlen, ip.packed)
    bits, packed = parsed
    return (0 if bits == 32 else 1, packed, int(plen) if plen.isdigit() else bits, rest)
