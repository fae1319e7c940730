"""The thin layer that asks the kernel about this host's network (pyroute2, sockets).

Links come from one RTM_GETLINK dump and addresses from one RTM_GETADDR dump covering
both families, in the kernel's order; nothing parses ``ip`` output.
"""
from __future__ import annotations

import ipaddress
import select
import socket
from collections import defaultdict

from node.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, IPRoute, NetlinkError
from startup.interfaces import IPAddress, Link


def read_links() -> list[Link]:
    """Every link with its addresses, in the kernel's dump order (ascending ifindex on
    current kernels), which is the order Go's net.Interfaces sees; OSError on failure."""
    try:
        with IPRoute() as ipr:
            raw_links = list(ipr.get_links())
            raw_addrs = list(ipr.get_addr())
    except NetlinkError as exc:
        raise OSError(exc.code, f"netlink dump failed: {exc}") from None
    by_index: dict[int, list] = defaultdict(list)
    for msg in raw_addrs:
        address = _address_of(msg)
        if address is not None:
            by_index[msg["index"]].append(address)
    links = []
    for msg in raw_links:
        name = msg.get_attr("IFLA_IFNAME") or ""
        links.append(Link(msg["index"], name, tuple(by_index.get(msg["index"], ()))))
    return links


def _address_of(msg) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """One RTM_NEWADDR as Calico's netlink library reads it.

    IFA_ADDRESS carries the prefix length. IFA_LOCAL, when present, is our own address:
    the kernel sends it equal to IFA_ADDRESS for an ordinary IPv4 address, and only for
    point-to-point addresses (``ip addr add A peer B/len``) does IFA_ADDRESS hold the peer.
    Such an address, and any IPv6 address that has an IFA_LOCAL (IPv6 sends one only with
    a peer), is a host route: the prefix belongs to the peer, so it reads as ``A/32`` or
    ``A/128`` (vishvananda/netlink v1.3.1, which Calico v3.32.1 uses, does the same).
    """
    local = msg.get_attr("IFA_LOCAL")
    peer = msg.get_attr("IFA_ADDRESS")
    try:
        if local:
            ip = ipaddress.ip_address(local.split("%", 1)[0])
            if not (ip.version == 4 and peer and ipaddress.ip_address(peer.split("%", 1)[0]) == ip):
                return ipaddress.ip_interface(ip)  # full-length prefix
        if not peer:
            return None
        return ipaddress.ip_interface(f"{peer.split('%', 1)[0]}/{msg['prefixlen']}")
    except ValueError:
        return None


def reach_source(dest: str, version: int) -> IPAddress:
    """The local address the kernel would use to send UDP to ``dest`` port 80.

    Connecting a UDP socket only chooses a route and source address; nothing is sent.
    ``dest`` may be a host name (resolved in the requested family only).
    """
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    try:
        infos = socket.getaddrinfo(dest, 80, family, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise OSError(f"dial udp{version} {dest}: {exc.strerror}") from None
    except UnicodeError as exc:  # a name the resolver cannot even encode
        raise OSError(f"dial udp{version} {dest}: {exc}") from None
    if not infos:
        raise OSError(f"dial udp{version} {dest}: no suitable address found")
    fam, kind, proto, _, sockaddr = infos[0]
    with socket.socket(fam, kind, proto) as sock:
        sock.connect(sockaddr)
        local = sock.getsockname()[0]
    return ipaddress.ip_address(local.split("%", 1)[0])


class AddressEvents:
    """Netlink address notifications (both families), to react before the next poll."""

    def __init__(self) -> None:
        self._ipr = IPRoute()
        try:
            self._ipr.bind(groups=RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
        except NetlinkError as exc:
            self._ipr.close()
            raise OSError(exc.code, f"cannot subscribe to address events: {exc}") from None

    def wait(self, timeout: float, wake_fd: int | None = None) -> bool:
        """True if an address changed within ``timeout`` seconds (pending events are
        drained); False at once when ``wake_fd`` turns readable."""
        fds = [self._ipr.fileno()] if wake_fd is None else [self._ipr.fileno(), wake_fd]
        ready, _, _ = select.select(fds, [], [], max(timeout, 0.0))
        if self._ipr.fileno() not in ready:
            return False
        self._ipr.get()
        while select.select([self._ipr.fileno()], [], [], 0)[0]:
            self._ipr.get()
        return True

    def close(self) -> None:
        self._ipr.close()
