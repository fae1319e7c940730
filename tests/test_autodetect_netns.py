"""Autodetection against real interfaces in a fresh network namespace.

Each test builds links with ``ip`` inside its own namespace, then reads them back with
the production pyroute2 reader and runs the methods from a thread that joined the
namespace (``in_netns``), so can-reach asks the namespace's own routing table.
``ifb`` links stand in for dummies (this kernel has no dummy driver).
"""
from __future__ import annotations

import ipaddress

import pytest

from netns import Namespace
from startup.autodetect import HostView, autodetect_cidr
from startup.hostnet import reach_source, read_links
from startup_netns import add_address, add_link, in_netns


def detect(ns: Namespace, method: str, version: int = 4) -> str | None:
    def work():
        cidr = autodetect_cidr(method, version, HostView(read_links(), reach_source))
        return None if cidr is None else str(cidr)

    return in_netns(ns, work)


@pytest.fixture
def ns():
    """eth0 (veth, two IPv4 + ULA), eth1 (ifb), then excluded names with higher indexes."""
    with Namespace("cad") as ns:
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        add_address(ns, "eth0", "10.0.0.11/24")
        add_address(ns, "eth0", "10.0.0.12/24")
        add_address(ns, "eth0", "fd00:10::11/64")
        ns.run("ip", "link", "set", "peer0", "up")
        ns.run("ip", "link", "set", "eth0", "up")
        add_link(ns, "eth1", "192.168.5.7/16", "fd00:20::7/64")
        add_link(ns, "docker0", "172.17.0.1/16")
        add_link(ns, "cali123", "10.99.0.1/32")
        add_link(ns, "lo0", "10.77.0.1/24")
        yield ns


def test_reader_returns_kernel_order_names_and_prefixes(ns):
    links = in_netns(ns, read_links)
    names = [link.name for link in links]
    assert names == ["lo", "peer0", "eth0", "eth1", "docker0", "cali123", "lo0"]
    assert [link.index for link in links] == sorted(link.index for link in links)
    by_name = {link.name: link for link in links}
    assert [str(a) for a in by_name["eth0"].addresses if a.version == 4] == ["10.0.0.11/24", "10.0.0.12/24"]
    v6 = [a for a in by_name["eth0"].addresses if a.version == 6]
    assert ipaddress.ip_interface("fd00:10::11/64") in v6
    assert any(a.ip.is_link_local for a in v6)  # the kernel's fe80:: address is read too
    assert [str(a) for a in by_name["lo"].addresses if a.version == 4] == ["127.0.0.1/8"]


def test_first_found_prefers_highest_index_and_skips_excluded_names(ns):
    # docker0, cali123 and lo0 come later but are excluded (lo0 through the unanchored ^lo).
    assert detect(ns, "first-found") == "192.168.5.7/16"
    assert detect(ns, "") == "192.168.5.7/16"


def test_first_found_ipv6_skips_link_local(ns):
    assert detect(ns, "first-found", 6) == "fd00:20::7/64"


def test_interface_regex(ns):
    assert detect(ns, "interface=eth0") == "10.0.0.11/24"
    assert detect(ns, "interface=th0") == "10.0.0.11/24"  # unanchored
    assert detect(ns, "interface=eth0,eth1") == "192.168.5.7/16"  # link order, not list order
    assert detect(ns, "interface=docker.*") == "172.17.0.1/16"  # default excludes do not apply
    assert detect(ns, "interface=eth0", 6) == "fd00:10::11/64"
    assert detect(ns, "interface=nomatch") is None


def test_skip_interface(ns):
    assert detect(ns, "skip-interface=eth1") == "10.0.0.11/24"
    assert detect(ns, "skip-interface=eth.*") is None


def test_cidr_ignores_exclude_list(ns):
    assert detect(ns, "cidr=10.99.0.0/16") == "10.99.0.1/32"
    assert detect(ns, "cidr=10.0.0.0/8") == "10.77.0.1/24"  # lo0 has the highest index
    assert detect(ns, "cidr=fd00:10::/32", 6) == "fd00:10::11/64"


def test_can_reach_chooses_the_routes_source_address(ns):
    ns.run("ip", "route", "add", "203.0.113.0/24", "dev", "eth0", "src", "10.0.0.12")
    ns.run("ip", "route", "add", "default", "dev", "eth1")
    ns.run("ip", "-6", "route", "add", "2001:db8::/32", "dev", "eth0", "src", "fd00:10::11")
    assert detect(ns, "can-reach=203.0.113.5") == "10.0.0.12/24"
    assert detect(ns, "can-reach=8.8.8.8") == "192.168.5.7/16"
    assert detect(ns, "can-reach=2001:db8::5", 6) == "fd00:10::11/64"


def test_can_reach_resolves_names_and_does_not_filter_the_result(ns):
    # localhost resolves to 127.0.0.1 (from /etc/hosts); can-reach does not apply the
    # usable-address filter, it only maps the source address to its interface.
    assert detect(ns, "can-reach=localhost") == "127.0.0.1/8"


def test_can_reach_without_a_route_finds_nothing(ns):
    assert detect(ns, "can-reach=203.0.113.5") is None


def test_nothing_usable(ns):
    with Namespace("cad") as bare:
        add_link(bare, "docker0", "172.17.0.1/16")
        add_link(bare, "eth0", "169.254.10.10/16")
        assert detect(bare, "first-found") is None
        assert detect(bare, "first-found", 6) is None
        assert detect(bare, "interface=docker0") == "172.17.0.1/16"
