"""Route dataplane plans without the kernel (node/felix/dataplane/routes.py): ownership,
route/neighbour/FDB/device diffs and the sysctl schedule, on hand-built kernel states.

Ownership facts from Felix v3.32.1 felix/routetable/ownershippol/main_route_table_policy.go;
device facts from vxlan_mgr.go (vxlanLinksIncompat) and route_mgr.go (configureTunnelDevice,
ensureAddressOnLink); sysctl timing from endpoint_mgr.go (configureInterface on oper-up).
"""
from __future__ import annotations

import pytest

from node.felix.config import FelixConfig
from node.felix.dataplane.routes import (AddressAdd, AddressDelete, FDBDelete, FDBSet, IPIPCreate, KernelState,
                                         Link, LinkDelete, LinkSetMTU, LinkSetUp, NeighbourDelete, NeighbourSet,
                                         Ownership, RouteDataplane, RouteDelete, RouteReplace, TxChecksumOff, VXLANCreate, VXLANInfo,
                                         comparable, plan, plan_devices, plan_fdb, plan_neighbours, plan_routes,
                                         plan_sysctls, plan_workload_addresses, sysctl_interface)
from node.felix.routes import (DesiredRoutes, FDBEntry, IPIPDevice, Neighbour, Route, RouteConfig, RouteModel,
                               Sysctl, VXLANDevice, desired_routes)
from node.felix.types import WorkloadEndpoint
from node.rtnl import NetlinkError

OWN = Ownership(("cali",))
CALI = "cali1a2b3c4d5e6"


def wl_route(ip="10.65.0.5/32", dev=CALI, proto=3, **kw) -> Route:
    return Route(dst=ip, dev=dev, proto=proto, scope="link", metric=1024, **kw)


def state(*routes: Route, links=None, **kw) -> KernelState:
    s = KernelState(links=links if links is not None else {
        "eth0": Link("eth0", 2, "veth", True), CALI: Link(CALI, 5, "veth", True)}, **kw)
    for r in routes:
        s.add_route(r)
    return s


# --------------------------------------------------------------------------------------
# Ownership.

def test_ownership_follows_felix_main_table_policy():
    assert OWN.route_is_ours(Route("10.0.0.0/26", None, type="blackhole", proto=80, scope="universe"))
    assert not OWN.route_is_ours(Route("10.0.0.0/26", None, type="blackhole", proto=4, scope="universe"))
    assert OWN.route_is_ours(Route("10.0.1.0/26", "eth0", gateway="192.0.2.11", proto=80))  # same-subnet route
    assert not OWN.route_is_ours(Route("10.0.1.0/26", "eth0", gateway="192.0.2.11", proto=3))  # boot off ours
    assert OWN.route_is_ours(wl_route(proto=4))  # RemoveExternalRoutes: anything on a workload iface
    keep = Ownership(("cali",), remove_external_routes=False)
    assert not keep.route_is_ours(wl_route(proto=4)) and keep.route_is_ours(wl_route(proto=3))
    assert OWN.route_is_ours(Route("10.0.1.0/26", "vxlan.calico", gateway="10.0.1.0", proto=12))
    assert not OWN.route_is_ours(Route("10.0.1.0/26", "vxlan-v6.calico", proto=12))  # not the v4 device
    assert OWN.route_is_ours(Route("fd00:1::/122", "vxlan-v6.calico", proto=12))
    assert not OWN.route_is_ours(Route("fe80::/64", CALI, proto=2, scope="universe"))  # kernel bootstrap
    assert not OWN.route_is_ours(Route("10.0.0.0/26", "tunl0", gateway="192.0.2.11", proto=12))  # BIRD's
    custom = Ownership(("cali",), device_route_protocol=99)
    assert custom.exclusive_protocols == {99}
    assert custom.route_is_ours(Route("10.0.0.0/26", None, type="blackhole", proto=99))
    assert not custom.route_is_ours(Route("10.0.0.0/26", None, type="blackhole", proto=80))


# --------------------------------------------------------------------------------------
# Routes.

def test_missing_route_is_replaced_and_equal_route_left_alone():
    want = [wl_route()]
    assert plan_routes(want, state(), OWN, {CALI}) == [RouteReplace(want[0])]
    assert plan_routes(want, state(wl_route()), OWN, {CALI}) == []


def test_contested_address_is_planned_through_the_up_interface_with_the_highest_index():
    a, b = "cali0000000000a", "cali0000000000b"
    eps = [WorkloadEndpoint(name=a, ipv4_nets=("10.65.0.5/32",)), WorkloadEndpoint(name=b, ipv4_nets=("10.65.0.5/32",)),
           WorkloadEndpoint(name=CALI, ipv4_nets=("10.65.0.6/32",))]
    desired = desired_routes(RouteConfig(hostname="node1"), RouteModel(), eps)
    assert [r.dev for r in desired.routes] == [b, CALI]
    assert [(int(c), r.dev) for c, r in desired.contested] == [(0, a), (0, b)]
    links = {"eth0": Link("eth0", 2, "veth", True), CALI: Link(CALI, 5, "veth", True)}

    def planned(a_link: Link, b_link: Link) -> list:
        return plan(desired, KernelState(links={**links, a: a_link, b: b_link}), OWN, families=(4,))

    assert planned(Link(a, 7, "veth", True), Link(b, 8, "veth", False)) == [
        RouteReplace(wl_route("10.65.0.5/32", a, proto=3)), RouteReplace(wl_route("10.65.0.6/32", proto=3))]
    assert planned(Link(a, 9, "veth", True), Link(b, 8, "veth", True))[0] == RouteReplace(
        wl_route("10.65.0.5/32", a, proto=3))
    assert planned(Link(a, 7, "veth", True), Link(b, 8, "veth", True))[0] == RouteReplace(
        wl_route("10.65.0.5/32", b, proto=3))
    assert planned(Link(a, 7, "veth", False), Link(b, 8, "veth", False)) == [
        RouteReplace(wl_route("10.65.0.6/32", proto=3))]
    # Uncontested state has nothing to pick again.
    assert desired_routes(RouteConfig(hostname="node1"), RouteModel(), eps[1:]).contested == ()


def test_different_route_at_the_key_is_replaced_foreign_or_not():
    kernel = state(Route("10.65.0.5/32", "eth0", gateway="192.0.2.1", proto=4, scope="universe", metric=1024))
    assert plan_routes([wl_route()], kernel, OWN, {CALI}) == [RouteReplace(wl_route())]


def test_our_unwanted_routes_deleted_foreign_ones_kept():
    stale = wl_route("10.65.0.9/32")
    blackhole = Route("10.244.0.0/26", None, type="blackhole", proto=80, scope="universe")
    foreign = [Route("203.0.113.0/24", "eth0", gateway="192.0.2.1", proto=4, scope="universe"),
               Route("192.0.2.0/24", "eth0", proto=2, scope="link", src="192.0.2.10"),
               Route("198.18.0.0/16", None, type="blackhole", proto=4, scope="universe")]
    ops = plan_routes([], state(stale, blackhole, *foreign), OWN, {CALI, "eth0"})
    assert ops == [RouteDelete(stale), RouteDelete(blackhole)]  # in address order


def test_routes_on_interfaces_not_usable_wait():
    assert plan_routes([wl_route()], state(), OWN, set()) == []


def test_ipv6_scope_is_not_compared_and_families_filter():
    v6 = Route("fd00:65::5/128", CALI, proto=3, scope="link", metric=1024)
    kernel_v6 = Route("fd00:65::5/128", CALI, proto=3, scope="universe", metric=1024)
    assert plan_routes([v6], state(kernel_v6), OWN, {CALI}) == []
    assert plan_routes([v6], state(), OWN, {CALI}, families=(4,)) == []
    assert comparable(Route("FD00:65:0::5/128", CALI, src="FD00::1")).src == "fd00::1"


# --------------------------------------------------------------------------------------
# Neighbours and FDB.

def test_neighbours_set_when_missing_or_different_and_workload_ones_never_deleted():
    """Felix's route table only sets static ARP entries (route_table.go has no neighbour
    delete): another program's permanent entry on a workload interface stays, and so
    does a removed endpoint's (it goes with its veth)."""
    want = [Neighbour("10.65.0.5", CALI, "ee:aa:bb:cc:dd:05")]
    kernel = state(neighbours={(CALI, "10.65.0.5"): "ee:aa:bb:cc:dd:05"})
    assert plan_neighbours(want, kernel, OWN, {CALI}) == []
    kernel = state(neighbours={(CALI, "10.65.0.5"): "ee:aa:bb:cc:dd:99", (CALI, "10.65.0.7"): "ee:aa:bb:cc:dd:07",
                               (CALI, "fd00::7"): "ee:aa:bb:cc:dd:07", ("eth0", "192.0.2.1"): "52:54:00:00:00:01"})
    assert plan_neighbours(want, kernel, OWN, {CALI, "eth0"}) == [NeighbourSet(want[0])]
    assert plan_neighbours([], kernel, OWN, {CALI, "eth0"}) == []
    assert plan_neighbours(want, state(), OWN, set()) == []  # interface down: later


def test_unwanted_vxlan_neighbours_of_the_devices_family_deleted():
    """The VXLAN FDB module deletes the permanent entries it does not want, of its own
    family only: IPv4 on vxlan.calico, IPv6 on vxlan-v6.calico."""
    kernel = state(neighbours={("vxlan.calico", "10.244.9.0"): "66:00:00:00:00:09",
                               ("vxlan.calico", "fd00::9"): "66:00:00:00:00:09",
                               ("vxlan-v6.calico", "fd00:244:9::"): "66:00:00:00:00:09",
                               ("vxlan-v6.calico", "10.244.9.1"): "66:00:00:00:00:09"})
    ops = plan_neighbours([], kernel, OWN, {"vxlan.calico", "vxlan-v6.calico"})
    assert sorted(ops, key=str) == [
        NeighbourDelete(Neighbour("10.244.9.0", "vxlan.calico", "66:00:00:00:00:09")),
        NeighbourDelete(Neighbour("fd00:244:9::", "vxlan-v6.calico", "66:00:00:00:00:09"))]


def test_fdb_entries_on_vxlan_devices():
    want = [FDBEntry("66:00:00:00:00:02", "vxlan.calico", "192.0.2.11")]
    kernel = state(fdb={("vxlan.calico", "66:00:00:00:00:03"): "192.0.2.12"})
    assert plan_fdb(want, kernel, {"vxlan.calico"}) == [
        FDBDelete(FDBEntry("66:00:00:00:00:03", "vxlan.calico", "192.0.2.12")), FDBSet(want[0])]
    kernel = state(fdb={("vxlan.calico", "66:00:00:00:00:02"): "192.0.2.11"})
    assert plan_fdb(want, kernel, {"vxlan.calico"}) == []


# --------------------------------------------------------------------------------------
# Devices.

VX = VXLANDevice(name="vxlan.calico", vni=4096, port=4789, mtu=1410, mac="66:00:00:00:00:01",
                 address="10.244.0.1/32", parent="eth0", local_ip="192.0.2.10")


def vx_link(**kw) -> Link:
    info = dict(vni=4096, port=4789, parent_index=2, local="192.0.2.10", learning=False)
    info.update(kw.pop("info", {}))
    args = dict(name="vxlan.calico", index=9, kind="vxlan", oper_up=True, admin_up=True, mtu=1410,
                mac="66:00:00:00:00:01", vxlan=VXLANInfo(**info))
    args.update(kw)
    return Link(**args)


def links(**extra) -> dict[str, Link]:
    out = {"eth0": Link("eth0", 2, "veth", True)}
    out.update(extra)
    return out


def test_missing_vxlan_device_is_created_addressed_and_brought_up():
    ops, up, vanishing = plan_devices(DesiredRoutes(vxlan_devices=(VX,)), KernelState(links=links()))
    assert ops == [VXLANCreate(VX), AddressAdd("vxlan.calico", "10.244.0.1/32"), LinkSetUp("vxlan.calico")]
    assert up == {"vxlan.calico"} and vanishing == set()


def test_matching_vxlan_device_only_gets_what_differs():
    kernel = KernelState(links=links(**{"vxlan.calico": vx_link(mtu=1450, admin_up=False)}),
                         addresses={"vxlan.calico": frozenset({"10.244.0.9/32", "fe80::1/64"})},
                         tx_checksum={"vxlan.calico": True})
    dev = VXLANDevice(**{**VX.__dict__, "tx_checksum_offload": False})
    ops, _, vanishing = plan_devices(DesiredRoutes(vxlan_devices=(dev,)), kernel)
    assert ops == [LinkSetMTU("vxlan.calico", 1410), AddressDelete("vxlan.calico", "10.244.0.9/32"),
                   AddressAdd("vxlan.calico", "10.244.0.1/32"), TxChecksumOff("vxlan.calico"),
                   LinkSetUp("vxlan.calico")]
    assert vanishing == set()
    kernel.addresses = {"vxlan.calico": frozenset({"10.244.0.1/32"})}
    kernel.links["vxlan.calico"] = vx_link()
    assert plan_devices(DesiredRoutes(vxlan_devices=(VX,)), kernel)[0] == []


def test_a_learning_vxlan_device_or_one_with_unknown_port_local_or_mac_is_kept():
    """Felix creates the device with learning off but does not compare learning on an
    existing one, nor the port, local address or MAC when the kernel reports none."""
    kernel = KernelState(links=links(**{"vxlan.calico": vx_link(info=dict(learning=True))}),
                         addresses={"vxlan.calico": frozenset({"10.244.0.1/32"})})
    assert plan_devices(DesiredRoutes(vxlan_devices=(VX,)), kernel)[0] == []
    kernel.links["vxlan.calico"] = vx_link(mac="", info=dict(port=0, local=""))
    assert plan_devices(DesiredRoutes(vxlan_devices=(VX,)), kernel)[0] == []


def test_the_v6_vxlan_device_keeps_only_its_tunnel_address_link_local_included():
    """Felix's ensureAddressOnLink removes every other address of the family, so the
    kernel's IPv6 link-local address on vxlan-v6.calico goes too."""
    vx6 = VXLANDevice(name="vxlan-v6.calico", vni=4096, port=4789, mtu=1390, mac="66:00:00:00:00:01",
                      address="fd00:244::1/128", parent="eth0", local_ip="fd00:192::10")
    link = vx_link(name="vxlan-v6.calico", mtu=1390, info=dict(local="fd00:192::10"))
    kernel = KernelState(links=links(**{"vxlan-v6.calico": link}),
                         addresses={"vxlan-v6.calico": frozenset({"fd00:244::1/128", "fe80::6400:ff:fe00:1/64"})})
    assert plan_devices(DesiredRoutes(vxlan_devices=(vx6,)), kernel)[0] == [
        AddressDelete("vxlan-v6.calico", "fe80::6400:ff:fe00:1/64")]


def test_incompatible_vxlan_device_is_recreated_and_its_routes_reprogrammed():
    """What Felix's vxlanLinksIncompat compares: type, flow-based mode, VNI, underlay,
    local address, l2miss, port, GBP, MAC."""
    for change in (dict(info=dict(vni=1)), dict(info=dict(port=8472)), dict(info=dict(parent_index=7)),
                   dict(info=dict(local="192.0.2.99")), dict(mac="66:00:00:00:00:99"),
                   dict(info=dict(l2miss=True)), dict(info=dict(gbp=True)), dict(info=dict(flow_based=True)),
                   dict(kind="veth", vxlan=None)):
        kernel = KernelState(links=links(**{"vxlan.calico": vx_link(**change)}))
        ops, up, vanishing = plan_devices(DesiredRoutes(vxlan_devices=(VX,)), kernel)
        assert ops[:2] == [LinkDelete("vxlan.calico"), VXLANCreate(VX)], change
        assert vanishing == {"vxlan.calico"}
    route = Route("10.244.1.0/26", "vxlan.calico", gateway="10.244.1.0", proto=3, scope="universe", onlink=True)
    kernel = KernelState(links=links(**{"vxlan.calico": vx_link(info=dict(vni=1))}),
                         neighbours={("vxlan.calico", "10.244.1.0"): "66:00:00:00:00:02"})
    kernel.add_route(route)
    desired = DesiredRoutes(routes=(route,), neighbours=(Neighbour("10.244.1.0", "vxlan.calico", "66:00:00:00:00:02"),),
                            vxlan_devices=(VX,))
    ops = plan(desired, kernel, OWN)
    # The device goes with everything on it: the same route and neighbour go in again.
    assert RouteReplace(route) in ops and NeighbourSet(desired.neighbours[0]) in ops
    assert not any(isinstance(op, (RouteDelete, NeighbourDelete)) for op in ops)


def test_absent_devices_deleted_and_tunl0_handling():
    kernel = KernelState(links=links(**{"vxlan.calico": vx_link(), "tunl0": Link("tunl0", 3, "ipip", True, mtu=1480)}),
                         addresses={"tunl0": frozenset({"10.244.0.1/32"})})
    ops, _, vanishing = plan_devices(DesiredRoutes(absent_devices=("vxlan.calico", "vxlan-v6.calico"),
                                                   clean_ipip_addresses=True), kernel)
    assert ops == [LinkDelete("vxlan.calico"), AddressDelete("tunl0", "10.244.0.1/32")]
    assert vanishing == {"vxlan.calico"}

    ipip = IPIPDevice(name="tunl0", mtu=1440, address="10.244.0.2/32")
    ops, up, _ = plan_devices(DesiredRoutes(ipip_device=ipip), kernel)
    assert ops == [LinkSetMTU("tunl0", 1440), AddressDelete("tunl0", "10.244.0.1/32"), AddressAdd("tunl0", "10.244.0.2/32")]
    assert up == {"tunl0"}

    bare = KernelState(links=links())
    ops, up, _ = plan_devices(DesiredRoutes(ipip_device=ipip), bare)
    assert ops == [IPIPCreate(ipip), AddressAdd("tunl0", "10.244.0.2/32"), LinkSetUp("tunl0")]
    # Once the kernel said it cannot make tunl0, nothing is planned for it.
    assert plan_devices(DesiredRoutes(ipip_device=ipip), bare, ipip_unavailable=True)[:2] == ([], set())


def test_whole_plan_from_the_desired_state_producer():
    cfg = RouteConfig(hostname="node1")
    ep = WorkloadEndpoint(name=CALI, mac="ee:aa:bb:cc:dd:05", ipv4_nets=("10.65.0.5/32",), ipv6_nets=("fd00:65::5/128",))
    desired = desired_routes(cfg, RouteModel(), [ep])
    ops = plan(desired, state(), OWN)
    assert ops == [RouteReplace(wl_route()),
                   RouteReplace(Route("fd00:65::5/128", CALI, proto=3, scope="universe", metric=1024)),
                   NeighbourSet(Neighbour("10.65.0.5", CALI, "ee:aa:bb:cc:dd:05"))]
    down = state(links={"eth0": Link("eth0", 2, "veth", True), CALI: Link(CALI, 5, "veth", False)})
    assert plan(desired, down, OWN) == []


# --------------------------------------------------------------------------------------
# Sysctls.

def test_sysctl_interface():
    assert sysctl_interface("net/ipv4/conf/cali1/rp_filter") == "cali1"
    assert sysctl_interface("net/ipv4/neigh/cali1/proxy_delay") == "cali1"
    assert sysctl_interface("net/ipv6/conf/vxlan.calico/accept_ra") == "vxlan.calico"
    assert sysctl_interface("net/ipv4/conf/all/forwarding") is None
    assert sysctl_interface("net/ipv4/ip_forward") is None


def test_sysctls_when_up_again_after_recreation_and_on_change():
    a = Sysctl(f"net/ipv4/conf/{CALI}/proxy_arp", "1")
    b = Sysctl(f"net/ipv4/conf/{CALI}/rp_filter", "1")
    g = Sysctl("net/ipv4/ip_forward", "1")
    up = {CALI: Link(CALI, 5, "veth", True)}
    assert plan_sysctls([a, b, g], {CALI: Link(CALI, 5, "veth", False)}, {}) == [g]  # nothing while down
    assert plan_sysctls([a, b], {}, {}) == []  # nor while absent
    assert plan_sysctls([a, b, g], up, {}) == [a, b, g]
    done = {CALI: (5, frozenset({a, b})), None: (0, frozenset({g}))}
    assert plan_sysctls([a, b, g], up, done) == []
    assert plan_sysctls([a, b, g], {CALI: Link(CALI, 6, "veth", True)}, done) == [a, b]  # re-created veth
    b0 = Sysctl(f"net/ipv4/conf/{CALI}/rp_filter", "0")  # spoofing now allowed
    assert plan_sysctls([a, b0, g], up, done) == [b0]


def test_from_felix_configuration():
    config = FelixConfig.resolve({"FELIX_INTERFACEPREFIX": "tap,cali", "FELIX_DEVICEROUTEPROTOCOL": "99",
                                  "FELIX_REMOVEEXTERNALROUTES": "false", "FELIX_IPV6SUPPORT": "false",
                                  "FELIX_ROUTEREFRESHINTERVAL": "30"})
    dp = RouteDataplane.from_felix(config)
    assert dp.ownership == Ownership(("tap", "cali"), 99, False)
    assert dp.families == (4,) and dp.refresh_interval == 30
    assert dp.route_sync and dp.conntrack is not None
    off = RouteDataplane.from_felix(FelixConfig.resolve({"FELIX_ROUTESYNCDISABLED": "true"}))
    assert not off.route_sync and off.conntrack is None


def test_route_sync_disabled_leaves_routes_neighbours_and_addresses_alone():
    """Felix's RouteSyncDisabled: no route, static neighbour or workload address is written
    or removed; devices and FDB entries still are."""
    stray = wl_route("10.65.0.9/32")
    kernel = state(stray)
    kernel.neighbours[(CALI, "10.65.0.9")] = "ee:ee:ee:ee:ee:09"
    kernel.addresses = {CALI: frozenset({"10.99.0.1/24"})}
    desired = DesiredRoutes(routes=(wl_route(),), neighbours=(Neighbour(CALI, "10.65.0.5", "ee:aa:bb:cc:dd:05"),),
                            workload_addresses=((CALI, "169.254.0.179/32"),))
    assert plan(desired, kernel, OWN)  # with route sync: plenty to do
    assert plan(desired, kernel, OWN, route_sync=False) == []


class _ExistsIPRoute:
    """An IPRoute whose link creation finds the device already there (EEXIST)."""

    def __init__(self, code: int = 17):
        self.code = code
        self.added = []

    def link(self, cmd, **attrs):
        self.added.append(attrs["ifname"])
        raise NetlinkError(self.code, "File exists" if self.code == 17 else "Operation not supported")

    def link_lookup(self, ifname):
        return [42]


def test_tunnel_device_that_appeared_meanwhile_counts_as_created():
    """As Felix's route manager: EEXIST on creation means the device is there (loading the
    ipip module for the request creates tunl0 itself); other errors still fail."""
    dp = RouteDataplane()
    indexes = {"eth0": 2}
    assert dp._execute(_ExistsIPRoute(), IPIPCreate(IPIPDevice("tunl0", 1440, "10.65.0.1/32")), indexes)
    vxlan = VXLANDevice("vxlan.calico", 4096, 4789, 1410, "66:aa:bb:cc:dd:ee", "10.65.0.1/32", "eth0", "10.0.0.1")
    assert dp._execute(_ExistsIPRoute(), VXLANCreate(vxlan), indexes)
    assert indexes == {"eth0": 2, "tunl0": 42, "vxlan.calico": 42}
    with pytest.raises(NetlinkError):
        dp._execute(_ExistsIPRoute(95), IPIPCreate(IPIPDevice("tunl0", 1440, "10.65.0.1/32")), {})


def test_workload_addresses_plan():
    """Exactly the wanted addresses on workload interfaces (scope link), the IPv6
    link-local one kept; interfaces not up wait; other interfaces are not ours."""
    kernel = state(links={"eth0": Link("eth0", 2, "veth", True), CALI: Link(CALI, 5, "veth", True),
                          "cali2": Link("cali2", 6, "veth", True), "cali3": Link("cali3", 7, "veth", False)})
    kernel.addresses = {CALI: frozenset({"fe80::1/64", "10.99.0.1/24"}),
                        "cali2": frozenset({"169.254.0.179/32"}), "eth0": frozenset({"192.0.2.1/24"})}
    want = [(CALI, "169.254.0.179/32"), ("cali3", "169.254.0.179/32")]
    usable = {"eth0", CALI, "cali2"}
    assert plan_workload_addresses(want, kernel, OWN, usable) == [
        AddressDelete(CALI, "10.99.0.1/24"), AddressAdd(CALI, "169.254.0.179/32", scope_link=True),
        AddressDelete("cali2", "169.254.0.179/32")]
    assert plan_workload_addresses([(CALI, "10.99.0.1/24")], state(), OWN, {CALI}) == [
        AddressAdd(CALI, "10.99.0.1/24", scope_link=True)]
    # With IPv6 off, IPv6 addresses are not ours to remove.
    kernel.addresses = {CALI: frozenset({"fd00::5/128", "10.99.0.1/24"})}
    assert plan_workload_addresses([], kernel, OWN, usable, families=(4,)) == [AddressDelete(CALI, "10.99.0.1/24")]


def test_peering_addresses_for_peered_workloads_only():
    cfg = RouteConfig(hostname="node1")
    peered = WorkloadEndpoint(name="calia", local_bgp_peer="p")
    plain = WorkloadEndpoint(name="calib")
    peering = {4: "169.254.0.179", 6: "fd00::179"}
    assert desired_routes(cfg, RouteModel(), [plain, peered], peering_addresses=peering).workload_addresses == (
        ("calia", "169.254.0.179/32"), ("calia", "fd00::179/128"))
    v4_only = RouteConfig(hostname="node1", ipv6_enabled=False)
    assert desired_routes(v4_only, RouteModel(), [peered], peering_addresses=peering).workload_addresses == (
        ("calia", "169.254.0.179/32"),)
    assert desired_routes(cfg, RouteModel(), [peered], peering_addresses={4: ""}).workload_addresses == ()
