"""Autodetection rules over plain interface data (no kernel involved).

The same rules are exercised against real interfaces in test_autodetect_netns.py; here
each tricky case is pinned down exactly with hand-built links.
"""
from __future__ import annotations

import ipaddress
import logging

import pytest

from startup.autodetect import HostView, autodetect_cidr, local_cidr, parse_cidr, split_list
from startup.interfaces import (
    DEFAULT_INTERFACES_TO_EXCLUDE,
    InterfaceError,
    Link,
    find_cidr_of,
    first_usable,
    get_interfaces,
    is_global_unicast,
)
from startup.logs import Fatal


def link(index: int, name: str, *addrs: str) -> Link:
    return Link(index, name, tuple(ipaddress.ip_interface(a) for a in addrs))


def no_reach(dest: str, version: int):
    raise AssertionError("this method must not open a socket")


def host(*links: Link, reach=no_reach) -> HostView:
    return HostView(list(links), reach)


LINKS = [
    link(1, "lo", "127.0.0.1/8", "::1/128"),
    link(2, "eth0", "10.0.0.11/24", "fe80::1/64", "fd00:10::11/64"),
    link(3, "eth1", "192.168.5.7/16"),
    link(4, "docker0", "172.17.0.1/16"),
    link(5, "cali123", "10.99.0.1/32"),
]


# -- enumeration ---------------------------------------------------------------------

def test_links_are_visited_highest_index_first():
    names = [i.name for i in get_interfaces(LINKS)]
    assert names == ["cali123", "docker0", "eth1", "eth0", "lo"]


def test_addresses_keep_host_bits_prefix_and_kernel_order():
    eth0 = [i for i in get_interfaces(LINKS, versions=(4, 6)) if i.name == "eth0"][0]
    assert [str(c) for c in eth0.cidrs] == ["10.0.0.11/24", "fe80::1/64", "fd00:10::11/64"]
    eth0_v6 = [i for i in get_interfaces(LINKS, versions=(6,)) if i.name == "eth0"][0]
    assert [str(c) for c in eth0_v6.cidrs] == ["fe80::1/64", "fd00:10::11/64"]


def test_interface_without_matching_addresses_is_still_listed():
    ifaces = get_interfaces(LINKS, versions=(6,))
    eth1 = [i for i in ifaces if i.name == "eth1"][0]
    assert eth1.cidrs == ()


@pytest.mark.parametrize("name", ["lo", "lo0", "loopback1", "local9", "docker0", "cali123", "veth-x", "tunl0",
                                  "vxlan.calico", "vxlan-v6.calico", "wireguard.cali", "wg-v6.cali", "br-1f",
                                  "kube-ipvs0", "nodelocaldns", "cni0", "flannel.1", "podman1", "virbr0",
                                  "lxcbr0", "cbr0", "dummy7"])
def test_default_exclude_list_is_unanchored_at_the_end(name):
    assert get_interfaces([link(1, name)], exclude=DEFAULT_INTERFACES_TO_EXCLUDE) == []


@pytest.mark.parametrize("name", ["eth0", "ens3", "xlo", "my-docker0", "bond0", "vxlan0", "br0"])
def test_default_exclude_list_keeps_ordinary_names(name):
    assert [i.name for i in get_interfaces([link(1, name)], exclude=DEFAULT_INTERFACES_TO_EXCLUDE)] == [name]


def test_include_regex_is_a_search_not_a_full_match():
    names = [i.name for i in get_interfaces(LINKS, include=["th"])]
    assert names == ["eth1", "eth0"]


def test_invalid_regex_is_an_error():
    with pytest.raises(InterfaceError, match="invalid interface regex"):
        get_interfaces(LINKS, include=["eth("])


# -- usable addresses ----------------------------------------------------------------

@pytest.mark.parametrize("addr,usable", [
    ("10.0.0.1", True), ("192.168.1.1", True), ("172.16.0.1", True), ("100.64.0.1", True),
    ("8.8.8.8", True), ("0.1.2.3", True), ("fd00::1", True), ("fec0::1", True), ("2001:db8::1", True),
    ("0.0.0.0", False), ("127.0.0.1", False), ("127.9.9.9", False), ("224.0.0.1", False),
    ("239.1.1.1", False), ("169.254.1.1", False), ("255.255.255.255", False),
    ("::", False), ("::1", False), ("ff02::1", False), ("fe80::1", False), ("febf::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.1.1.1", True),
])
def test_usable_is_gos_global_unicast(addr, usable):
    assert is_global_unicast(ipaddress.ip_address(addr)) is usable


def test_first_usable_skips_unusable_addresses_in_kernel_order():
    ifaces = get_interfaces([link(1, "eth0", "169.254.3.3/16", "10.1.1.1/24", "10.2.2.2/24")], versions=(4,))
    iface, cidr = first_usable(ifaces, 4)
    assert (iface.name, str(cidr)) == ("eth0", "10.1.1.1/24")


def test_first_usable_errors():
    with pytest.raises(InterfaceError, match="no valid host interfaces found"):
        first_usable([], 4)
    with pytest.raises(InterfaceError, match="no valid IPv6 addresses found on the host interfaces"):
        first_usable(get_interfaces([link(1, "eth0", "fe80::1/64")], versions=(6,)), 6)


# -- methods -------------------------------------------------------------------------

def test_first_found_takes_highest_index_non_excluded_interface(caplog):
    caplog.set_level(logging.INFO)
    assert str(autodetect_cidr("first-found", 4, host(*LINKS))) == "192.168.5.7/16"
    assert "Using autodetected IPv4 address on interface eth1: 192.168.5.7/16" in caplog.text
    assert str(autodetect_cidr("", 4, host(*LINKS))) == "192.168.5.7/16"


def test_first_found_ipv6_skips_link_local():
    assert str(autodetect_cidr("first-found", 6, host(*LINKS))) == "fd00:10::11/64"


def test_first_found_nothing(caplog):
    assert autodetect_cidr("first-found", 4, host(link(1, "lo", "127.0.0.1/8"), link(2, "docker0", "172.17.0.1/16"))) is None
    assert "Unable to auto-detect an IPv4 address: no valid host interfaces found" in caplog.text


def test_interface_method_ignores_default_excludes_and_regex_order():
    # docker0 is excluded by default, but interface= names it; link order decides, not regex order.
    assert str(autodetect_cidr("interface=eth.*,docker0", 4, host(*LINKS))) == "172.17.0.1/16"
    assert str(autodetect_cidr("interface=eth0", 4, host(*LINKS))) == "10.0.0.11/24"
    # Blanks are only trimmed around commas: a leading blank stays part of the regex.
    assert str(autodetect_cidr("interface=eth9 , eth0", 4, host(*LINKS))) == "10.0.0.11/24"
    assert autodetect_cidr("interface= eth0", 4, host(*LINKS)) is None


def test_interface_method_list_split_breaks_regex_with_comma(caplog):
    # "eth[0-9]{1,2}" is split at the comma into "eth[0-9]{1" and "2}", an invalid regex.
    assert split_list("eth[0-9]{1,2}") == ["eth[0-9]{1", "2}"]
    assert autodetect_cidr("interface=eth[0-9]{1,2}", 4, host(*LINKS)) is None
    assert "Unable to auto-detect an IPv4 address using interface regexes" in caplog.text


def test_skip_interface_adds_to_default_excludes():
    assert str(autodetect_cidr("skip-interface=eth1", 4, host(*LINKS))) == "10.0.0.11/24"
    assert autodetect_cidr("skip-interface=eth.*", 4, host(*LINKS)) is None


def test_cidr_method_ignores_default_excludes():
    assert str(autodetect_cidr("cidr=172.16.0.0/12", 4, host(*LINKS))) == "172.17.0.1/16"
    assert str(autodetect_cidr("cidr=10.99.0.0/16, 10.0.0.0/24", 4, host(*LINKS))) == "10.99.0.1/32"
    assert str(autodetect_cidr("cidr=fd00::/8", 6, host(*LINKS))) == "fd00:10::11/64"
    assert autodetect_cidr("cidr=11.0.0.0/8", 4, host(*LINKS)) is None


def test_cidr_method_with_host_bits_is_masked_and_bad_cidr_yields_nothing(caplog):
    assert str(autodetect_cidr("cidr=10.0.0.77/24", 4, host(*LINKS))) == "10.0.0.11/24"
    assert autodetect_cidr("cidr=10.0.0.1", 4, host(*LINKS)) is None
    assert 'Invalid CIDR "10.0.0.1" for IP autodetection method: cidr=10.0.0.1' in caplog.text


def test_can_reach_uses_route_source_and_all_interfaces(caplog):
    caplog.set_level(logging.INFO)
    asked = []

    def reach(dest, version):
        asked.append((dest, version))
        return ipaddress.ip_address("10.99.0.1")  # on cali123, which first-found would exclude

    assert str(autodetect_cidr("can-reach=8.8.8.8", 4, host(*LINKS, reach=reach))) == "10.99.0.1/32"
    assert asked == [("8.8.8.8", 4)]
    assert "Using autodetected IPv4 address 10.99.0.1/32, detected by connecting to 8.8.8.8" in caplog.text


def test_can_reach_source_not_on_any_interface(caplog):
    found = autodetect_cidr("can-reach=1.2.3.4", 4, host(*LINKS, reach=lambda d, v: ipaddress.ip_address("10.5.5.5")))
    assert found is None
    assert "autodetected IPv4 address does not match any addresses found on local interfaces: 10.5.5.5" in caplog.text


def test_can_reach_unreachable(caplog):
    def reach(dest, version):
        raise OSError("connect: Network is unreachable")

    assert autodetect_cidr("can-reach=1.2.3.4", 4, host(*LINKS, reach=reach)) is None
    assert "Unable to auto-detect IPv4 address by connecting to 1.2.3.4" in caplog.text


def test_kubernetes_internal_ip_without_kubernetes(caplog):
    assert autodetect_cidr("kubernetes-internal-ip", 4, host(*LINKS), None) is None
    assert "Cannot use method 'kubernetes-internal-ip' when not running on a Kubernetes cluster" in caplog.text


def test_kubernetes_internal_ip_takes_local_prefix():
    k8s_node = {"status": {"addresses": [{"type": "Hostname", "address": "h"},
                                         {"type": "InternalIP", "address": "fd00:10::11"},
                                         {"type": "InternalIP", "address": "10.0.0.11"}]}}
    assert str(autodetect_cidr("kubernetes-internal-ip", 4, host(*LINKS), k8s_node)) == "10.0.0.11/24"
    assert str(autodetect_cidr("kubernetes-internal-ip", 6, host(*LINKS), k8s_node)) == "fd00:10::11/64"


def test_kubernetes_internal_ip_not_on_a_local_interface_yields_nothing():
    k8s_node = {"status": {"addresses": [{"type": "InternalIP", "address": "10.200.0.1"}]}}
    assert autodetect_cidr("kubernetes-internal-ip", 4, host(*LINKS), k8s_node) is None


def test_unknown_method_is_fatal():
    with pytest.raises(Fatal, match="Invalid IP autodetection method: bogus"):
        autodetect_cidr("bogus", 4, host(*LINKS))
    with pytest.raises(Fatal, match="Invalid IP autodetection method: First-Found"):
        autodetect_cidr("First-Found", 4, host(*LINKS))


# -- helpers ---------------------------------------------------------------------------

def test_local_cidr():
    assert local_cidr("10.0.0.11", 4, LINKS) == "10.0.0.11/24"
    assert local_cidr("::ffff:10.0.0.11", 4, LINKS) == "10.0.0.11/24"  # IPv4-mapped is IPv4, as in Go
    assert local_cidr("10.0.0.11/16", 4, LINKS) == "10.0.0.11/16"
    assert local_cidr("10.7.7.7", 4, LINKS) == "10.7.7.7"
    assert local_cidr("fd00:10::11", 4, LINKS) == "fd00:10::11"


def test_find_cidr_of_searches_every_link():
    assert str(find_cidr_of(LINKS, ipaddress.ip_address("172.17.0.1"))) == "172.17.0.1/16"
    assert find_cidr_of(LINKS, ipaddress.ip_address("172.17.0.2")) is None


@pytest.mark.parametrize("text,ok", [("10.0.0.0/8", True), ("10.0.0.1/8", True), ("fd00::/48", True),
                                     ("10.0.0.1", False), ("10.0.0.0/33", False), ("10.0.0.0/255.0.0.0", False),
                                     ("fe80::1%eth0/64", False), ("", False), ("garbage/8", False)])
def test_parse_cidr_is_strict_like_go(text, ok):
    assert (parse_cidr(text) is not None) is ok
