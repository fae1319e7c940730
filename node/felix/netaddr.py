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
_inet_pton, _inet_ntop = socket.inet_pton, socket.inet_ntop


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


def v4_network_text(text: str) -> str | None:
    """``str(parse_network(text))`` for canonical IPv4 text (``a.b.c.d`` or
    ``a.b.c.d/n``), computed without building ``ipaddress`` objects; None for anything
    else, which the caller then parses the general way (so what is accepted, and how it
    prints, is unchanged). For IPv4 the C functions print exactly as ``ipaddress`` does."""
    addr, sep, plen = text.partition("/")
    try:
        packed = _inet_pton(_V4, addr)
    except (OSError, ValueError):
        return None
    if _inet_ntop(_V4, packed) != addr:
        return None
    if not sep or plen == "32":
        return addr + "/32"
    if not (plen.isascii() and plen.isdigit()) or plen[0] == "0" and plen != "0":
        return None
    prefix = int(plen)
    if prefix > 32:
        return None
    masked = int.from_bytes(packed, "big") & (0xFFFFFFFF ^ (0xFFFFFFFF >> prefix))
    return f"{_inet_ntop(_V4, masked.to_bytes(4, 'big'))}/{prefix}"


@lru_cache(maxsize=1 << 16)
def network_text(text: str) -> str:
    """``str(parse_network(text))``: the masked CIDR, without ``ipaddress`` objects for
    canonical IPv4 text."""
    fast = v4_network_text(text)
    return fast if fast is not None else str(parse_network(text))


def member_text(text: str) -> str:
    """An address or CIDR as an IP-set member is written: ``parse_network(text)`` printed
    as the bare address when it is a /32 or /128, else as the masked CIDR. Raises as
    ``parse_network`` does."""
    fast = v4_network_text(text)
    if fast is not None:  # canonical IPv4 (a host address prints as itself)
        return fast[:-3] if fast.endswith("/32") else fast
    net = parse_network(text)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


@lru_cache(maxsize=1 << 16)
def version(text: str) -> int | None:
    """The family of an address, CIDR or ``address,proto:port`` member (None: not one)."""
    addr = text.split(",", 1)[0].partition("/")[0]
    if ":" not in addr:
        try:
            _inet_pton(_V4, addr)  # accepts exactly the dotted quads ipaddress accepts
            return 4
        except (OSError, ValueError):
            pass
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
    if ":" not in addr:
        try:  # IPv4: accepted exactly when canonical (so ``_packed`` would agree)
            return (0, _inet_pton(_V4, addr), int(plen) if plen.isdigit() else 32, rest)
        except (OSError, ValueError):
            pass
    parsed = _packed(addr)
    if parsed is None:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return (2, text.encode(), 0, rest)
        parsed = (ip.max_prefixlen, ip.packed)
    bits, packed = parsed
    return (0 if bits == 32 else 1, packed, int(plen) if plen.isdigit() else bits, rest)
