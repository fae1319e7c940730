"""Desired routes, neighbours, FDB, tunnel devices and sysctls (node/felix/routes.py).

Vectors from Felix v3.32.1: felix/dataplane/linux/vxlan_mgr_test.go (VTEPs, routes per
interface, FDB), endpoint_mgr_test.go (workload routes, floating IPs, /proc/sys writes,
rp_filter with spoofing), and the spec's §5.1 example text.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from node.datastore.syncer import Update, UpdateType
from node.felix.calc.routes import RouteCalculation, decode_block
from node.felix.config import FelixConfig
from node.felix.routes import (DesiredRoutes, EndpointPieces, FDBEntry, IPIPDevice, Neighbour, Route, RouteClass, RouteConfig,
                               RouteModel, Sysctl, VXLANDevice, apply_messages, desired_routes, endpoint_sysctls,
                               global_sysctls, ipip_device, ipip_routes, noencap_routes, render, render_route,
                               render_sysctl, resolve_routes, route_sort_key, vxlan_allowed_sources, vxlan_device,
                               vxlan_neighbours_and_fdb, vxlan_parent_address, vxlan_routes, workload_neighbours,
                               workload_routes)
from node.felix.types import (IPPoolType, NatInfo, RouteType, RouteUpdate, VXLANTunnelEndpoint,
                              WorkloadEndpoint)
from node.model import ipam as ipam_records
from node.model.resource import Resource

RW = RouteType.REMOTE_WORKLOAD
LW = RouteType.LOCAL_WORKLOAD
RT = RouteType.REMOTE_TUNNEL
VX = IPPoolType.VXLAN


def routes_only(candidates) -> list[Route]:
    return sorted((r for _, r in candidates), key=route_sort_key)


# --------------------------------------------------------------------------------------
# Local workloads.

def test_spec_example_workload_route_text():
    """Spec §5.1: ``10.65.0.5 dev cali1a2b3c4d5e6 proto boot scope link metric 1024``."""
    cfg = RouteConfig(hostname="node1")
    ep = WorkloadEndpoint(name="cali1a2b3c4d5e6", mac="ee:ee:ee:00:00:05", ipv4_nets=("10.65.0.5/32",),
                          ipv6_nets=("fd00:65::5/128",))
    assert [render_route(r) for r in resolve_routes(workload_routes(ep, cfg))] == [
        "10.65.0.5 dev cali1a2b3c4d5e6 proto boot scope link metric 1024",
        "fd00:65::5 dev cali1a2b3c4d5e6 proto boot scope link metric 1024",
    ]
    # Static ARP for IPv4 only, to the endpoint's MAC.
    assert workload_neighbours(ep, cfg) == [Neighbour("10.65.0.5", "cali1a2b3c4d5e6", "ee:ee:ee:00:00:05")]
    # DeviceRouteSourceAddress, another protocol and priority, no IPv6.
    cfg = RouteConfig(hostname="node1", device_route_source_address="192.168.0.1", device_route_protocol=4,
                      ipv4_normal_route_priority=100, ipv6_enabled=False)
    assert [render_route(r) for r in resolve_routes(workload_routes(ep, cfg))] == [
        "10.65.0.5 dev cali1a2b3c4d5e6 proto static scope link src 192.168.0.1 metric 100"]


def test_workload_routes_floating_ips_and_admin_down():
    """endpoint_mgr_test.go: ``10.0.240.2/24`` routes as its network; floating IPs when enabled."""
    ep = WorkloadEndpoint(name="cali12345-ab", mac="01:02:03:04:05:06", ipv4_nets=("10.0.240.2/24",),
                          ipv6_nets=("2001:db8:2::2/128",),
                          ipv4_nat=(NatInfo("172.16.1.3", "10.0.240.2"), NatInfo("172.18.1.4", "10.0.240.2")),
                          ipv6_nat=(NatInfo("2001:db8:3::2", "2001:db8:2::2"),
                                    NatInfo("2001:db8:4::2", "2001:db8:4::2")))
    cfg = RouteConfig(hostname="node1", floating_ips_enabled=True)
    assert routes_only(workload_routes(ep, cfg)) == [
        Route(dst=d, dev="cali12345-ab", proto=3, scope="link", metric=1024)
        for d in ("10.0.240.0/24", "172.16.1.3/32", "172.18.1.4/32",
                  "2001:db8:2::2/128", "2001:db8:3::2/128", "2001:db8:4::2/128")]
    assert workload_neighbours(ep, cfg) == [Neighbour("10.0.240.0", "cali12345-ab", "01:02:03:04:05:06"),
                                            Neighbour("172.16.1.3", "cali12345-ab", "01:02:03:04:05:06"),
                                            Neighbour("172.18.1.4", "cali12345-ab", "01:02:03:04:05:06")]
    assert [r.dst for _, r in workload_routes(ep, RouteConfig(hostname="node1"))] == [
        "10.0.240.0/24", "2001:db8:2::2/128"]
    # An OpenStack endpoint's floating IPs are routed to it even with FloatingIPs off.
    plain = RouteConfig(hostname="node1")
    assert routes_only(workload_routes(ep, plain, openstack=True)) == routes_only(workload_routes(ep, cfg))
    assert workload_neighbours(ep, plain, openstack=True) == workload_neighbours(ep, cfg)
    memo = EndpointPieces()
    assert len(desired_routes(plain, RouteModel(), [ep], memo=memo).routes) == 2
    assert len(desired_routes(plain, RouteModel(), [ep], memo=memo, openstack_interfaces={ep.name}).routes) == 6
    down = WorkloadEndpoint(name="cali12345-ab", state="inactive", ipv4_nets=("10.0.240.2/32",))
    assert workload_routes(down, cfg) == [] and workload_neighbours(down, cfg) == []
    # No MAC, no static ARP entry (the route stays).
    no_mac = WorkloadEndpoint(name="cali9", ipv4_nets=("10.0.0.9/32",))
    assert workload_neighbours(no_mac, cfg) == [] and len(workload_routes(no_mac, cfg)) == 1


def test_workload_sysctls_with_and_without_spoofing():
    """endpoint_mgr_test.go "should write /proc/sys entries" and "with RPF checking disabled"."""
    cfg = RouteConfig(hostname="node1", default_rp_filter="1")
    ep = WorkloadEndpoint(name="cali12345-ab", ipv4_nets=("10.0.240.2/24",))
    assert endpoint_sysctls(ep, cfg) == [
        Sysctl("net/ipv6/conf/cali12345-ab/accept_ra", "0", best_effort=True),
        Sysctl("net/ipv4/conf/cali12345-ab/route_localnet", "1"),
        Sysctl("net/ipv4/neigh/cali12345-ab/proxy_delay", "0", best_effort=True),
        Sysctl("net/ipv4/conf/cali12345-ab/proxy_arp", "1"),
        Sysctl("net/ipv4/conf/cali12345-ab/forwarding", "1"),
        Sysctl("net/ipv4/conf/cali12345-ab/rp_filter", "1"),
        Sysctl("net/ipv6/conf/cali12345-ab/proxy_ndp", "1"),
        Sysctl("net/ipv6/conf/cali12345-ab/forwarding", "1"),
    ]
    spoofer = WorkloadEndpoint(name="cali23456-cd", ipv4_nets=("10.0.240.2/24",),
                               allow_spoofed_source_prefixes=("8.8.8.8/32", "2001:feed::1/64"))
    loose = RouteConfig(hostname="node1", default_rp_filter="2\n", ipv6_enabled=False)
    assert [s for s in endpoint_sysctls(spoofer, loose) if s.path.endswith("rp_filter")] == [
        Sysctl("net/ipv4/conf/cali23456-cd/rp_filter", "0")]
    # The host's default comes through (trimmed) when spoofing is not allowed; no IPv6 sysctls
    # but accept_ra without IPv6 support.
    cfg2 = RouteConfig.from_felix(FelixConfig.resolve({"FELIX_IPV6SUPPORT": "false"}), hostname="node1",
                                  vxlan_enabled=False, vxlan_enabled_v6=False, ipip_enabled=False,
                                  default_rp_filter="2\n")
    assert [render_sysctl(s) for s in endpoint_sysctls(ep, cfg2)] == [
        "net.ipv6.conf.cali12345-ab.accept_ra = 0 (best effort)",
        "net.ipv4.conf.cali12345-ab.route_localnet = 1",
        "net.ipv4.neigh.cali12345-ab.proxy_delay = 0 (best effort)",
        "net.ipv4.conf.cali12345-ab.proxy_arp = 1",
        "net.ipv4.conf.cali12345-ab.forwarding = 1",
        "net.ipv4.conf.cali12345-ab.rp_filter = 2",
    ]
    assert global_sysctls(RouteConfig(hostname="n")) == [
        Sysctl("net/ipv4/ip_forward", "1"), Sysctl("net/ipv6/conf/all/forwarding", "1"),
        Sysctl("net/netfilter/nf_conntrack_acct", "1", best_effort=True)]
    assert global_sysctls(RouteConfig(hostname="n", ip_forwarding=False)) == [
        Sysctl("net/netfilter/nf_conntrack_acct", "1", best_effort=True)]
    # Dots in an interface name become slashes in sysctl notation.
    assert render_sysctl(Sysctl("net/ipv4/conf/eth0.100/rp_filter", "1")) == "net.ipv4.conf.eth0/100.rp_filter = 1"


# --------------------------------------------------------------------------------------
# VXLAN (vxlan_mgr_test.go: node1 is us; VNI 1, port 20, MTU 4444 / 6666).

VX_CFG = RouteConfig(hostname="node1", vxlan_enabled=True, vxlan_enabled_v6=True, vxlan_vni=1, vxlan_port=20,
                     vxlan_mtu=4444, vxlan_mtu_v6=6666)
NODE1 = VXLANTunnelEndpoint(node="node1", mac="00:0a:74:9d:68:16", ipv4_addr="10.0.0.0", parent_device_ip="172.0.0.2",
                            mac_v6="00:0a:74:9d:68:16", ipv6_addr="fd00:10:244::", parent_device_ipv6="fc00:10:96::2")
NODE2 = VXLANTunnelEndpoint(node="node2", mac="00:0a:95:9d:68:16", ipv4_addr="10.0.80.0/32",
                            parent_device_ip="172.0.12.1", mac_v6="00:0a:95:9d:68:16",
                            ipv6_addr="fd00:10:96::/112", parent_device_ipv6="fc00:10:10::1")


def vx_model(*routes: RouteUpdate, vteps=(NODE1, NODE2)) -> RouteModel:
    return RouteModel({r.dst: r for r in routes}, {v.node: v for v in vteps})


V4_ROUTES = (
    RouteUpdate(dst="172.0.1.0/26", types=RW, ip_pool_type=VX, dst_node_name="node2", dst_node_ip="172.8.8.8",
                same_subnet=True),
    RouteUpdate(dst="172.0.2.0/26", types=RW, ip_pool_type=VX, dst_node_name="node2", dst_node_ip="172.8.8.8"),
    RouteUpdate(dst="172.0.0.0/26", types=LW, ip_pool_type=VX, dst_node_name="node1", dst_node_ip="172.8.8.8",
                same_subnet=True),
    # A local /32 (a borrowed address) is never blackholed.
    RouteUpdate(dst="172.0.0.1/32", types=LW, ip_pool_type=VX, dst_node_name="node1", dst_node_ip="172.8.8.7",
                same_subnet=True),
)


def test_vxlan_routes_per_interface():
    """"successfully adds a route to the parent interface": one tunnel route, one same-subnet
    route on eth0, one blackhole; the remote VTEP's FDB entry."""
    model = vx_model(*V4_ROUTES)
    assert [render_route(r) for r in resolve_routes(vxlan_routes(VX_CFG, model, 4, "eth0"))] == [
        "blackhole 172.0.0.0/26 proto 80",
        "172.0.1.0/26 via 172.8.8.8 dev eth0 proto 80 onlink",
        "172.0.2.0/26 via 10.0.80.0 dev vxlan.calico proto boot onlink mtu 4444",
    ]
    assert routes_only(vxlan_routes(VX_CFG, model, 4, "eth0")) == [
        Route(dst="172.0.0.0/26", type="blackhole", proto=80, scope="universe"),
        Route(dst="172.0.1.0/26", dev="eth0", gateway="172.8.8.8", proto=80, scope="universe", onlink=True),
        Route(dst="172.0.2.0/26", dev="vxlan.calico", gateway="10.0.80.0", proto=3, scope="universe", onlink=True,
              mtu=4444),
    ]
    assert vxlan_neighbours_and_fdb(VX_CFG, model, 4) == (
        [Neighbour("10.0.80.0", "vxlan.calico", "00:0a:95:9d:68:16")],
        [FDBEntry("00:0a:95:9d:68:16", "vxlan.calico", "172.0.12.1")])
    assert vxlan_allowed_sources(VX_CFG, model, 4, ("10.0.0.0/24",)) == ["10.0.0.0/24", "172.0.12.1"]


def test_vxlan_falls_back_to_tunnel_without_parent_and_skips_unknown_vteps():
    model = vx_model(*V4_ROUTES)
    assert [r.dst for r in resolve_routes(vxlan_routes(VX_CFG, model, 4, None)) if r.dev == "vxlan.calico"] == [
        "172.0.1.0/26", "172.0.2.0/26"]
    # No VTEP for the destination node yet: no route (it comes with the VTEP).
    assert [r for _, r in vxlan_routes(VX_CFG, vx_model(*V4_ROUTES, vteps=(NODE1,)), 4, "eth0")
            if r.dev == "vxlan.calico"] == []
    # VXLAN off: nothing at all.
    assert vxlan_routes(RouteConfig(hostname="node1"), model, 4, "eth0") == []


def test_vxlan_direct_routes_for_remote_tunnel_addresses():
    """Borrowed tunnel address, and a tunnel address in its own /32 block: on-link, no gateway."""
    for types, borrowed in ((RT, True), (RT | RW, False)):
        model = vx_model(RouteUpdate(dst="10.0.1.1/32", types=types, ip_pool_type=VX, dst_node_name="node2",
                                     dst_node_ip="172.16.0.1", borrowed=borrowed))
        assert routes_only(vxlan_routes(VX_CFG, model, 4, None)) == [
            Route(dst="10.0.1.1/32", dev="vxlan.calico", proto=3, scope="link", mtu=4444)]
        assert render_route(routes_only(vxlan_routes(VX_CFG, model, 4, None))[0]) == \
            "10.0.1.1 dev vxlan.calico proto boot scope link mtu 4444"
    # A tunnel address inside a remote block is covered by the block route.
    model = vx_model(RouteUpdate(dst="10.0.1.0/32", types=RT, ip_pool_type=VX, dst_node_name="node2"))
    assert vxlan_routes(VX_CFG, model, 4, None) == []


def test_vxlan_ipv6():
    """The IPv6 variants: vxlan-v6.calico, metric 1024, the v6 VTEP addresses."""
    model = vx_model(
        RouteUpdate(dst="fc00:10:244::100/120", types=RW, ip_pool_type=VX, dst_node_name="node2",
                    dst_node_ip="fc00:10:10::8", same_subnet=True),
        RouteUpdate(dst="fc00:10:244::200/120", types=RW, ip_pool_type=VX, dst_node_name="node2",
                    dst_node_ip="fc00:10:10::8"),
        RouteUpdate(dst="fc00:10:244::/120", types=LW, ip_pool_type=VX, dst_node_name="node1",
                    dst_node_ip="fc00:10:10::8", same_subnet=True),
        RouteUpdate(dst="fc00:10:244::1/128", types=LW, ip_pool_type=VX, dst_node_name="node1",
                    dst_node_ip="fc00:10:10::7", same_subnet=True),
        *V4_ROUTES)
    assert [render_route(r) for r in resolve_routes(vxlan_routes(VX_CFG, model, 6, "eth0"))] == [
        "blackhole fc00:10:244::/120 proto 80 metric 1024",
        "fc00:10:244::100/120 via fc00:10:10::8 dev eth0 proto 80 metric 1024 onlink",
        "fc00:10:244::200/120 via fd00:10:96:: dev vxlan-v6.calico proto boot metric 1024 onlink mtu 6666",
    ]
    assert vxlan_neighbours_and_fdb(VX_CFG, model, 6) == (
        [Neighbour("fd00:10:96::", "vxlan-v6.calico", "00:0a:95:9d:68:16")],
        [FDBEntry("00:0a:95:9d:68:16", "vxlan-v6.calico", "fc00:10:10::1")])
    assert vxlan_device(VX_CFG, model, 6, "eth0") == VXLANDevice(
        name="vxlan-v6.calico", vni=1, port=20, mtu=6666, mac="00:0a:74:9d:68:16", address="fd00:10:244::/128",
        parent="eth0", local_ip="fc00:10:96::2")


def test_vxlan_device_parameters():
    model = vx_model()
    assert vxlan_parent_address(VX_CFG, model.vteps, 4) == "172.0.0.2"
    assert vxlan_device(VX_CFG, model, 4, "eth0") == VXLANDevice(
        name="vxlan.calico", vni=1, port=20, mtu=4444, mac="00:0a:74:9d:68:16", address="10.0.0.0/32",
        parent="eth0", local_ip="172.0.0.2", learning=False, tx_checksum_offload=True)
    # Defaults: VNI 4096, port 4789, MTU host - 50; old kernels get checksum offload off.
    cfg = RouteConfig(hostname="node1", vxlan_enabled=True, host_mtu=1500, checksum_offload_broken=True)
    assert vxlan_device(cfg, model, 4, "ens3") == VXLANDevice(
        name="vxlan.calico", vni=4096, port=4789, mtu=1450, mac="00:0a:74:9d:68:16", address="10.0.0.0/32",
        parent="ens3", local_ip="172.0.0.2", tx_checksum_offload=False)
    # Not until our own VTEP is known and its parent interface found.
    assert vxlan_device(VX_CFG, vx_model(vteps=(NODE2,)), 4, "eth0") is None
    assert vxlan_parent_address(VX_CFG, {}, 4) == ""
    assert vxlan_device(VX_CFG, model, 4, None) is None


def test_route_conflicts_resolve_by_class():
    """A local workload beats a VXLAN route with the same key; a down interface loses."""
    cfg = RouteConfig(hostname="node1", vxlan_enabled_v6=True)
    ep = WorkloadEndpoint(name="cali1", ipv6_nets=("fd00:10:96::/128",))
    model = vx_model(RouteUpdate(dst="fd00:10:96::/128", types=RT | RW, ip_pool_type=VX, dst_node_name="node2"))
    candidates = workload_routes(ep, cfg) + vxlan_routes(cfg, model, 6, None)
    assert {c for c, _ in candidates} == {RouteClass.LOCAL_WORKLOAD, RouteClass.VXLAN_TUNNEL}
    assert [r.dev for r in resolve_routes(candidates)] == ["cali1"]
    assert [r.dev for r in resolve_routes(candidates, up_links={"vxlan-v6.calico": 7})] == ["vxlan-v6.calico"]
    # Within a class, the higher ifindex wins.
    twin = WorkloadEndpoint(name="cali2", ipv6_nets=("fd00:10:96::/128",))
    both = workload_routes(ep, cfg) + workload_routes(twin, cfg)
    assert [r.dev for r in resolve_routes(both, up_links={"cali1": 9, "cali2": 8})] == ["cali1"]
    # IPv4 workload routes (metric 1024) and tunnel routes (metric 0) do not collide.
    ep4 = WorkloadEndpoint(name="cali3", ipv4_nets=("10.0.1.1/32",))
    model4 = vx_model(RouteUpdate(dst="10.0.1.1/32", types=RT, ip_pool_type=VX, dst_node_name="node2",
                                  borrowed=True))
    cfg4 = RouteConfig(hostname="node1", vxlan_enabled=True, vxlan_mtu=1410)
    assert [render_route(r) for r in resolve_routes(workload_routes(ep4, cfg4) +
                                                    vxlan_routes(cfg4, model4, 4, None))] == [
        "10.0.1.1 dev vxlan.calico proto boot scope link mtu 1410",
        "10.0.1.1 dev cali3 proto boot scope link metric 1024",
    ]


# --------------------------------------------------------------------------------------
# IPIP and unencapsulated pools.

IPIP_ROUTES = (
    RouteUpdate(dst="10.0.1.0/26", types=RW, ip_pool_type=IPPoolType.IPIP, dst_node_name="node2",
                dst_node_ip="192.168.0.2"),
    RouteUpdate(dst="10.0.2.0/26", types=RW, ip_pool_type=IPPoolType.IPIP, dst_node_name="node3",
                dst_node_ip="10.9.0.3", same_subnet=False),
    RouteUpdate(dst="10.0.3.0/26", types=RW, ip_pool_type=IPPoolType.IPIP, dst_node_name="node2",
                dst_node_ip="192.168.0.2", same_subnet=True),
    RouteUpdate(dst="10.0.0.0/26", types=LW, ip_pool_type=IPPoolType.IPIP, dst_node_name="node1"),
)


def test_ipip_with_bird_programming_routes():
    """ProgramClusterRoutes Disabled or EnabledNoEncapOnly (BIRD programs the IPIP routes):
    no IPIP routes or blackholes from Felix, only tunl0 with the node's tunnel address and
    host MTU - 20."""
    cfg = RouteConfig(hostname="node1", ipip_enabled=True, ipip_tunnel_addr="10.0.0.1", host_mtu=1460)
    model = RouteModel({r.dst: r for r in IPIP_ROUTES})
    assert ipip_routes(cfg, model, "eth0") == []
    assert ipip_device(cfg, "192.168.0.1", "eth0") == IPIPDevice(name="tunl0", mtu=1440, address="10.0.0.1/32")
    assert ipip_device(RouteConfig(hostname="node1", ipip_enabled=True, ipip_tunnel_addr="10.0.0.1", ipip_mtu=1400,
                                   checksum_offload_broken=True), "192.168.0.1", "eth0") == \
        IPIPDevice(name="tunl0", mtu=1400, address="10.0.0.1/32", tx_checksum_offload=False)
    # Not before the tunnel address and this node's address (and its interface) are known.
    assert ipip_device(RouteConfig(hostname="node1", ipip_enabled=True), "192.168.0.1", "eth0") is None
    assert ipip_device(cfg, "", "eth0") is None
    assert ipip_device(cfg, "192.168.0.1", None) is None
    assert ipip_device(RouteConfig(hostname="node1", ipip_tunnel_addr="10.0.0.1"), "192.168.0.1", "eth0") is None
    desired = desired_routes(cfg, model, parent_devices={4: "eth0"}, local_ipv4="192.168.0.1")
    assert desired.routes == () and desired.ipip_device == IPIPDevice("tunl0", 1440, "10.0.0.1/32")
    assert not desired.clean_ipip_addresses


def test_ipip_and_noencap_when_felix_programs_cluster_routes():
    cfg = RouteConfig(hostname="node1", ipip_enabled=True, program_ipip_cluster_routes=True, host_mtu=1500)
    model = RouteModel({r.dst: r for r in IPIP_ROUTES})
    assert [render_route(r) for r in resolve_routes(ipip_routes(cfg, model, "eth0"))] == [
        "blackhole 10.0.0.0/26 proto 80",
        "10.0.1.0/26 via 192.168.0.2 dev tunl0 proto 80 onlink mtu 1480",
        "10.0.2.0/26 via 10.9.0.3 dev tunl0 proto 80 onlink mtu 1480",
        "10.0.3.0/26 via 192.168.0.2 dev eth0 proto 80 onlink",
    ]
    # A DeviceRouteProtocol other than boot marks these routes too.
    assert {r.proto for _, r in ipip_routes(RouteConfig(hostname="node1", ipip_enabled=True,
                                                        program_ipip_cluster_routes=True,
                                                        device_route_protocol=99),
                                            model, "eth0")} == {99}
    noencap = RouteModel({r.dst: r for r in (
        RouteUpdate(dst="10.1.1.0/26", types=RW, ip_pool_type=IPPoolType.NO_ENCAP, dst_node_name="node2",
                    dst_node_ip="192.168.0.2"),
        RouteUpdate(dst="10.1.2.0/26", types=RW, ip_pool_type=IPPoolType.NO_ENCAP, dst_node_name="node3"),
        RouteUpdate(dst="10.1.0.0/26", types=LW, ip_pool_type=IPPoolType.NO_ENCAP, dst_node_name="node1"))})
    plain = RouteConfig(hostname="node1", program_noencap_cluster_routes=True)
    assert [render_route(r) for r in resolve_routes(noencap_routes(plain, noencap, 4, "eth0"))] == [
        "blackhole 10.1.0.0/26 proto 80",
        "10.1.1.0/26 via 192.168.0.2 dev eth0 proto 80 onlink",
    ]
    # With an overlay on, or with BIRD in charge, the no-encap manager does not run.
    assert noencap_routes(replace(cfg, program_noencap_cluster_routes=True), noencap, 4, "eth0") == []
    assert noencap_routes(RouteConfig(hostname="node1"), noencap, 4, "eth0") == []
    assert noencap_routes(RouteConfig(hostname="node1", program_ipip_cluster_routes=True), noencap, 4, "eth0") == []


@pytest.mark.parametrize("value, ipip, noencap", [
    (None, True, False),  # the default, EnabledIPIPOnly: the renderer's EnabledNoEncapOnly is its pair
    ("EnabledIPIPOnly", True, False),
    ("EnabledNoEncapOnly", False, True),
    ("Enabled", True, True),
    ("Disabled", False, False),
])
def test_program_cluster_routes_values(value, ipip, noencap):
    env = {"FELIX_PROGRAMCLUSTERROUTES": value} if value else {}
    cfg = RouteConfig.from_felix(FelixConfig.resolve(env), hostname="node1", vxlan_enabled=False,
                                 vxlan_enabled_v6=False, ipip_enabled=True)
    assert (cfg.program_ipip_cluster_routes, cfg.program_noencap_cluster_routes) == (ipip, noencap)


# --------------------------------------------------------------------------------------
# From the calculation's messages to the text a dry run prints.

def _block(cidr: str, affinity: str, owners: dict[int, str]) -> Update:
    import ipaddress
    n = ipaddress.ip_network(cidr).num_addresses
    allocations, attributes = [None] * n, []
    for ordinal, owner in owners.items():
        allocations[ordinal] = len(attributes)
        attributes.append({"secondary": {"node": owner}})
    rec = {"cidr": cidr, "affinity": affinity, "allocations": allocations, "unallocated": [],
           "attributes": attributes, "sequenceNumber": 0, "sequenceNumberForAllocation": {}, "deleted": False}
    key = ipam_records.block_key(cidr)
    return Update(UpdateType.NEW, key, decode_block(key, ipam_records.encode_block(rec).encode(), 1), 1)


def _res(kind: str, name: str, spec: dict, namespace: str = "") -> Update:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return Update(UpdateType.NEW, f"/{kind}/{namespace}/{name}", Resource(kind, meta, spec), 1)


def test_cross_subnet_cluster_end_to_end():
    """Three nodes, a CrossSubnet VXLAN pool: node-b shares our /24, node-c does not."""
    calc = RouteCalculation("node-a")
    calc.on_updates([
        _res("IPPool", "pool", {"cidr": "10.65.0.0/16", "vxlanMode": "CrossSubnet", "natOutgoing": True}),
        _res("Node", "node-a", {"bgp": {"ipv4Address": "192.168.0.1/24"}, "ipv4VXLANTunnelAddr": "10.65.0.0"}),
        _res("Node", "node-b", {"bgp": {"ipv4Address": "192.168.0.2/24"}, "ipv4VXLANTunnelAddr": "10.65.1.0"}),
        _res("Node", "node-c", {"bgp": {"ipv4Address": "192.168.7.3/24"}, "ipv4VXLANTunnelAddr": "10.65.2.0"}),
        _block("10.65.0.0/26", "host:node-a", {0: "node-a", 5: "node-a"}),
        _block("10.65.1.0/26", "host:node-b", {0: "node-b"}),
        _block("10.65.2.0/26", "host:node-c", {0: "node-c"}),
        _res("WorkloadEndpoint", "pod1", {"node": "node-a", "ipNetworks": ["10.65.0.5/32"]}, "default"),
    ])
    model = apply_messages(RouteModel(), calc.take_messages())
    cfg = RouteConfig.from_felix(FelixConfig.resolve({}), hostname="node-a", vxlan_enabled=True,
                                 vxlan_enabled_v6=False, ipip_enabled=False, host_mtu=1500)
    ep = WorkloadEndpoint(name="cali1a2b3c4d5e6", mac="ee:ee:ee:00:00:05", ipv4_nets=("10.65.0.5/32",))
    desired = desired_routes(cfg, model, [ep], parent_devices={4: "eth0"}, local_ipv4="192.168.0.1")
    assert isinstance(desired, DesiredRoutes)
    assert render(desired) == [
        "vxlan.calico: vxlan id 4096 local 192.168.0.1 dev eth0 dstport 4789 nolearning mtu 1450 "
        "address 66:07:02:c1:cc:60 addr 10.65.0.0/32",
        "delete link vxlan-v6.calico",
        "flush addresses of tunl0",
        "blackhole 10.65.0.0/26 proto 80",
        "10.65.0.5 dev cali1a2b3c4d5e6 proto boot scope link metric 1024",
        "10.65.1.0/26 via 192.168.0.2 dev eth0 proto 80 onlink",
        "10.65.2.0/26 via 10.65.2.0 dev vxlan.calico proto boot onlink mtu 1450",
        "10.65.0.5 dev cali1a2b3c4d5e6 lladdr ee:ee:ee:00:00:05 PERMANENT",
        "10.65.1.0 dev vxlan.calico lladdr 66:89:3a:22:7a:ac PERMANENT",
        "10.65.2.0 dev vxlan.calico lladdr 66:1a:b9:f1:6e:af PERMANENT",
        "66:1a:b9:f1:6e:af dev vxlan.calico dst 192.168.7.3 self permanent",
        "66:89:3a:22:7a:ac dev vxlan.calico dst 192.168.0.2 self permanent",
        "net.ipv4.ip_forward = 1",
        "net.ipv6.conf.all.forwarding = 1",
        "net.netfilter.nf_conntrack_acct = 1 (best effort)",
        "net.ipv6.conf.cali1a2b3c4d5e6.accept_ra = 0 (best effort)",
        "net.ipv4.conf.cali1a2b3c4d5e6.route_localnet = 1",
        "net.ipv4.neigh.cali1a2b3c4d5e6.proxy_delay = 0 (best effort)",
        "net.ipv4.conf.cali1a2b3c4d5e6.proxy_arp = 1",
        "net.ipv4.conf.cali1a2b3c4d5e6.forwarding = 1",
        "net.ipv4.conf.cali1a2b3c4d5e6.rp_filter = 1",
        "net.ipv6.conf.cali1a2b3c4d5e6.proxy_ndp = 1",
        "net.ipv6.conf.cali1a2b3c4d5e6.forwarding = 1",
    ]


def test_workload_interfaces_without_an_endpoint_get_the_sysctls_too():
    """Felix configures every workload interface that comes up, endpoint or not (the CNI
    plugin creates the veth before the endpoint reaches the agent)."""
    cfg = RouteConfig(hostname="node1")
    ep = WorkloadEndpoint(name="calia", ipv4_nets=("10.65.0.5/32",), allow_spoofed_source_prefixes=("10.9.0.0/16",))
    desired = desired_routes(cfg, RouteModel(), [ep], workload_interfaces=["calia", "calib"])
    by_iface = {}
    for s in desired.sysctls:
        parts = s.path.split("/")
        if len(parts) > 3 and parts[3] in ("calia", "calib"):
            by_iface.setdefault(parts[3], {})["/".join(parts[:3] + parts[4:])] = s.value
    assert by_iface["calib"] == {"net/ipv6/conf/accept_ra": "0", "net/ipv4/conf/route_localnet": "1",
                                 "net/ipv4/neigh/proxy_delay": "0", "net/ipv4/conf/proxy_arp": "1",
                                 "net/ipv4/conf/forwarding": "1", "net/ipv4/conf/rp_filter": "1",
                                 "net/ipv6/conf/proxy_ndp": "1", "net/ipv6/conf/forwarding": "1"}
    assert by_iface["calia"]["net/ipv4/conf/rp_filter"] == "0"  # the endpoint's own (spoofing allowed)
    assert sum(1 for s in desired.sysctls if "/calia/" in s.path) == 8  # once, from the endpoint


def test_default_ipip_cluster_gets_its_routes_from_the_agent():
    """Calico's manifests' default pool is IPIP Always, and the renderer's default
    (EnabledNoEncapOnly) leaves IPIP routes out of BIRD's kernel export: with the agent's
    default the remote block goes through tunl0 and the local block is a blackhole."""
    from felix_calc_builders import node, pool
    from node.datastore.syncer import SyncStatus
    from node.felix.calc.offline import updates_from_resources
    from node.felix.pipeline import Pipeline
    from test_felix_routes_calc import block

    def routes(env):
        p = Pipeline("node1", env)
        p.on_updates(updates_from_resources([
            node("node1", "192.0.2.10/24", ipv4IPIPTunnelAddr="10.65.0.1"),
            node("node2", "192.0.2.11/24"),
            pool("default-ipv4-ippool", "10.65.0.0/16", ipipMode="Always", natOutgoing=True)]) +
            [block("10.65.0.0/26", "host:node1"), block("10.65.1.0/26", "host:node2")])
        p.on_status(SyncStatus.IN_SYNC)
        p.complete()
        p.set_interfaces({"eth0": ["192.0.2.10"], "lo": ["127.0.0.1"]})
        return sorted(render_route(r) for r in p.desired_routes(host_mtu=1500).routes)

    assert routes({}) == ["10.65.1.0/26 via 192.0.2.11 dev tunl0 proto 80 onlink mtu 1480",
                          "blackhole 10.65.0.0/26 proto 80"]
    assert routes({"FELIX_PROGRAMCLUSTERROUTES": "Disabled"}) == []
