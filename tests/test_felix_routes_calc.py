"""The route calculation (Felix's L3 route resolver and VXLAN resolver).

Vectors come from Felix v3.32.1: felix/calc/states_for_test.go and resources_for_test.go
(the "vxlan*" states), and felix/calc/l3_route_resolver_test.go. Felix's state tests feed
tunnel addresses as HostConfig keys, which the L3 resolver does not see; we feed v3 Nodes,
which carry them, so each state here also has the tunnel-address routes the L3 resolver
computes from Node resources (their shape is the one l3_route_resolver_test.go checks).
"""
from __future__ import annotations

from node.datastore.syncer import Update, UpdateType
from node.felix.calc.routes import (BLOCK_PREFIX, BLOCK_PREFIX_V4, BLOCK_PREFIX_V6, Encapsulation, IPAMBlock,
                                    RouteCalculation, decode_block, vtep_mac)
from node.felix.types import (IPPoolType, RouteRemove, RouteType, RouteUpdate, RouteUpdateMsg,
                              VXLANTunnelEndpoint, VXLANTunnelEndpointRemove, VXLANTunnelEndpointUpdate)
from node.model import ipam as ipam_records
from node.model.resource import Resource

LOCAL = "localhostname"
REMOTE = "remotehostname"
REMOTE2 = "remotehostname2"

LW = RouteType.LOCAL_WORKLOAD
RW = RouteType.REMOTE_WORKLOAD
LH = RouteType.LOCAL_HOST
RH = RouteType.REMOTE_HOST
LT = RouteType.LOCAL_TUNNEL
RT = RouteType.REMOTE_TUNNEL
VX = IPPoolType.VXLAN

_rev = iter(range(1, 1_000_000))


# --------------------------------------------------------------------------------------
# Builders: the values the syncer hands over.

def pool(name: str, cidr: str, *, vxlan: str = "Never", ipip: str = "Never", nat: bool = False,
         uses: tuple[str, ...] = ("Workload", "Tunnel"), gone: bool = False) -> Update:
    res = Resource("IPPool", {"name": name}, {"cidr": cidr, "vxlanMode": vxlan, "ipipMode": ipip,
                                              "natOutgoing": nat, "allowedUses": list(uses)})
    return _upd(f"/calico/resources/v3/projectcalico.org/ippools/{name}", res, gone)


def node(name: str, ipv4: str = "", *, ipv6: str = "", vxlan: str = "", vxlan6: str = "", mac: str = "",
         mac6: str = "", ipip: str = "", bgp: bool = True, addresses: tuple = (), gone: bool = False) -> Update:
    spec: dict = {}
    if bgp:
        spec["bgp"] = {k: v for k, v in (("ipv4Address", ipv4), ("ipv6Address", ipv6),
                                         ("ipv4IPIPTunnelAddr", ipip)) if v}
    for key, value in (("ipv4VXLANTunnelAddr", vxlan), ("vxlanTunnelMACAddr", mac),
                       ("ipv6VXLANTunnelAddr", vxlan6), ("vxlanTunnelMACAddrV6", mac6)):
        if value:
            spec[key] = value
    if addresses:
        spec["addresses"] = [{"address": a, "type": t} for a, t in addresses]
    return _upd(f"/calico/resources/v3/projectcalico.org/nodes/{name}", Resource("Node", {"name": name}, spec), gone)


def block(cidr: str, affinity: str | None, owners: dict[int, str | None] | None = None, *,
          size: int | None = None, gone: bool = False) -> Update:
    """A stored AllocationBlock: ``owners`` maps allocated ordinals to their node (None: no node)."""
    import ipaddress
    n = size or ipaddress.ip_network(cidr).num_addresses
    owners = owners or {}
    attributes, allocations = [], [None] * n
    for ordinal, owner in sorted(owners.items()):
        allocations[ordinal] = len(attributes)
        attributes.append({"handle_id": f"h{ordinal}", "secondary": {"node": owner}} if owner else {})
    rec = {"cidr": cidr, "affinity": affinity, "allocations": allocations,
           "unallocated": [o for o in range(n) if allocations[o] is None], "attributes": attributes,
           "sequenceNumber": 0, "sequenceNumberForAllocation": {}, "deleted": False}
    key = ipam_records.block_key(cidr)
    value = decode_block(key, ipam_records.encode_block(rec).encode(), 1)
    return _upd(key, value, gone)


def wep(name: str, nets: tuple[str, ...], host: str = LOCAL, gone: bool = False) -> Update:
    res = Resource("WorkloadEndpoint", {"name": name, "namespace": "default"},
                   {"node": host, "ipNetworks": list(nets), "interfaceName": "cali1"})
    return _upd(f"/calico/resources/v3/projectcalico.org/workloadendpoints/default/{name}", res, gone)


def _upd(key: str, value, gone: bool) -> Update:
    return Update(UpdateType.DELETED if gone else UpdateType.NEW, key, value, next(_rev))


def route(dst: str, types: RouteType, pool_type: IPPoolType = IPPoolType.NONE, node_name: str = "",
          node_ip: str = "", **kw) -> RouteUpdate:
    return RouteUpdate(dst=dst, types=types, ip_pool_type=pool_type, dst_node_name=node_name,
                       dst_node_ip=node_ip, **kw)


def vtep_msgs(msgs: list) -> list:
    return [m for m in msgs if isinstance(m, VXLANTunnelEndpointUpdate | VXLANTunnelEndpointRemove)]


def routes_for(msgs: list, dst: str) -> list[RouteUpdate]:
    return [m.route for m in msgs if isinstance(m, RouteUpdateMsg) and m.route.dst == dst]


def run(*updates: Update, calc: RouteCalculation | None = None) -> tuple[RouteCalculation, list]:
    calc = calc or RouteCalculation(LOCAL)
    calc.on_updates(list(updates))
    return calc, calc.take_messages()


# Felix's canned routes (states_for_test.go).
POOL_VXLAN = route("10.0.0.0/16", RouteType.CIDR_INFO, VX, nat_outgoing=True)
REMOTE_HOST = route("192.168.0.2/32", RH, node_name=REMOTE, node_ip="192.168.0.2")
REMOTE_HOST2 = route("192.168.0.3/32", RH, node_name=REMOTE2, node_ip="192.168.0.3")
LOCAL_HOST = route("192.168.0.1/32", LH, node_name=LOCAL, node_ip="192.168.0.1")
REMOTE_VTEP = VXLANTunnelEndpoint(node=REMOTE, mac="66:3e:ca:a4:db:65", ipv4_addr="10.0.1.0",
                                  parent_device_ip="192.168.0.2")
REMOTE2_VTEP = VXLANTunnelEndpoint(node=REMOTE2, mac="66:40:18:59:1f:16", ipv4_addr="10.0.2.0",
                                   parent_device_ip="192.168.0.3")
LOCAL_VTEP = VXLANTunnelEndpoint(node=LOCAL, mac="66:48:f6:56:dc:f1", ipv4_addr="10.0.0.0",
                                 parent_device_ip="192.168.0.1")

VXLAN_WITH_BLOCK = (pool("pool1", "10.0.0.0/16", vxlan="Always", nat=True),
                    block("10.0.1.0/29", f"host:{REMOTE}"),
                    node(REMOTE, "192.168.0.2", vxlan="10.0.1.0"))


# --------------------------------------------------------------------------------------

def test_block_key_prefixes_and_decoder():
    assert BLOCK_PREFIX == "/calico/ipam/v2/assignment/"
    assert BLOCK_PREFIX_V4 == "/calico/ipam/v2/assignment/ipv4/block/"
    assert BLOCK_PREFIX_V6 == "/calico/ipam/v2/assignment/ipv6/block/"
    # remoteIPAMBlockWithBorrows: ordinal 0 has no node, 1 is the owner's, 2 is borrowed.
    value = block("10.0.1.0/29", f"host:{REMOTE}", {0: None, 1: REMOTE, 2: REMOTE2}).value
    assert value == IPAMBlock("10.0.1.0/29", REMOTE, (("10.0.1.2", REMOTE2),))
    assert decode_block("/calico/ipam/v2/host/n1/ipv4/block/10.0.1.0-29", b"{}", 1) is None
    # A virtual owner is an owner too; a block without affinity reports every owned address.
    assert block("10.0.3.0/30", "virtual:lb").value == IPAMBlock("10.0.3.0/30", "lb", ())
    assert block("10.0.4.0/30", None, {1: REMOTE}).value == IPAMBlock("10.0.4.0/30", "", (("10.0.4.1", REMOTE),))


def test_block_in_cooldown_has_no_route():
    """A released address points at a ``releasedAt`` attribute with no node: no route."""
    rec = {"cidr": "10.0.5.0/30", "affinity": f"host:{REMOTE}", "allocations": [0, None, None, None],
           "unallocated": [1, 2, 3], "attributes": [{"releasedAt": "2026-01-01T00:00:00Z"}],
           "sequenceNumber": 0, "sequenceNumberForAllocation": {}, "deleted": False}
    key = ipam_records.block_key("10.0.5.0/30")
    assert decode_block(key, ipam_records.encode_block(rec).encode(), 1) == IPAMBlock("10.0.5.0/30", REMOTE, ())
    # Read as leniently as Felix: an allocation pointing at a missing attribute loses its
    # own route only; the block and its other addresses keep theirs.
    rec.update(allocations=[0, 3, None, None], attributes=[{"secondary": {"node": REMOTE2}}])
    assert decode_block(key, ipam_records.encode_block(rec).encode(), 1) == IPAMBlock(
        "10.0.5.0/30", REMOTE, (("10.0.5.0", REMOTE2),))


def test_vtep_mac_matches_felix():
    assert vtep_mac(REMOTE) == "66:3e:ca:a4:db:65"
    assert vtep_mac(REMOTE2) == "66:40:18:59:1f:16"
    assert vtep_mac(LOCAL) == "66:48:f6:56:dc:f1"
    assert vtep_mac(REMOTE, 6) == "66:a0:68:c9:4c:79"


def test_vxlan_with_remote_block():
    """states_for_test.go vxlanWithBlock; the tunnel address inside the remote /29 block is
    REMOTE_TUNNEL only (l3_route_resolver_test.go "tunnel IP within IPAM block")."""
    _, msgs = run(*VXLAN_WITH_BLOCK)
    assert msgs == [
        VXLANTunnelEndpointUpdate(REMOTE_VTEP),
        RouteUpdateMsg(POOL_VXLAN),
        RouteUpdateMsg(route("10.0.1.0/29", RW, VX, REMOTE, "192.168.0.2", nat_outgoing=True)),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2", nat_outgoing=True)),
        RouteUpdateMsg(REMOTE_HOST),
    ]


def test_vxlan_with_borrows_and_owner_switch():
    """vxlanWithBlockAndBorrows then vxlanBlockOwnerSwitch: only the changed routes are sent."""
    calc, msgs = run(pool("pool1", "10.0.0.0/16", vxlan="Always", nat=True),
                     block("10.0.1.0/29", f"host:{REMOTE}", {0: None, 1: REMOTE, 2: REMOTE2}),
                     node(REMOTE, "192.168.0.2", vxlan="10.0.1.0"),
                     node(REMOTE2, "192.168.0.3", vxlan="10.0.2.0"))
    assert msgs == [
        VXLANTunnelEndpointUpdate(REMOTE_VTEP),
        VXLANTunnelEndpointUpdate(REMOTE2_VTEP),
        RouteUpdateMsg(POOL_VXLAN),
        RouteUpdateMsg(route("10.0.1.0/29", RW, VX, REMOTE, "192.168.0.2", nat_outgoing=True)),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2", nat_outgoing=True)),
        RouteUpdateMsg(route("10.0.1.2/32", RW, VX, REMOTE2, "192.168.0.3", nat_outgoing=True, borrowed=True)),
        RouteUpdateMsg(route("10.0.2.0/32", RT, VX, REMOTE2, "192.168.0.3", nat_outgoing=True)),
        RouteUpdateMsg(REMOTE_HOST),
        RouteUpdateMsg(REMOTE_HOST2),
    ]
    # remoteIPAMBlockWithBorrowsSwitched: the block now belongs to remotehostname2 and the
    # borrowed address to remotehostname.
    _, msgs = run(block("10.0.1.0/29", f"host:{REMOTE2}", {0: None, 1: REMOTE2, 2: REMOTE}), calc=calc)
    assert msgs == [
        RouteUpdateMsg(route("10.0.1.0/29", RW, VX, REMOTE2, "192.168.0.3", nat_outgoing=True)),
        # remotehostname's tunnel address now sits in remotehostname2's block.
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2", nat_outgoing=True, borrowed=True)),
        RouteUpdateMsg(route("10.0.1.2/32", RW, VX, REMOTE, "192.168.0.2", nat_outgoing=True, borrowed=True)),
    ]


LOCAL_BLOCK_WITH_BORROWS = block("10.0.0.0/29", f"host:{LOCAL}", {0: None, 1: LOCAL, 2: REMOTE})


def test_vxlan_local_block_with_borrows_node_resources():
    """vxlanLocalBlockWithBorrowsNodeRes (nodes with /24 prefixes, pool Always)."""
    _, msgs = run(pool("pool1", "10.0.0.0/16", vxlan="Always", nat=True),
                  node(LOCAL, "192.168.0.1/24", vxlan="10.0.0.0"),
                  node(REMOTE, "192.168.0.2/24", vxlan="10.0.1.0"),
                  LOCAL_BLOCK_WITH_BORROWS)
    assert msgs == [
        VXLANTunnelEndpointUpdate(LOCAL_VTEP),
        VXLANTunnelEndpointUpdate(REMOTE_VTEP),
        RouteUpdateMsg(POOL_VXLAN),
        RouteUpdateMsg(route("10.0.0.0/29", LW, VX, LOCAL, "192.168.0.1", nat_outgoing=True)),
        # Our own tunnel address, inside our own block: a tunnel, not a workload.
        RouteUpdateMsg(route("10.0.0.0/32", LT, VX, LOCAL, "192.168.0.1", nat_outgoing=True)),
        # Borrowed by a remote pod from our block: both local and remote.
        RouteUpdateMsg(route("10.0.0.2/32", RW | LW, VX, REMOTE, "192.168.0.2", nat_outgoing=True, borrowed=True)),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2", nat_outgoing=True)),
        RouteUpdateMsg(LOCAL_HOST),
        RouteUpdateMsg(REMOTE_HOST),
    ]


def test_cross_subnet_follows_our_subnet_and_node_ip_changes():
    """vxlanLocalBlockWithBorrowsCrossSubnetNodeRes, then ...DifferentSubnetNodeRes."""
    calc, msgs = run(pool("pool1", "10.0.0.0/16", vxlan="CrossSubnet"),
                     node(LOCAL, "192.168.0.1/24", vxlan="10.0.0.0"),
                     node(REMOTE, "192.168.0.2/24", vxlan="10.0.1.0"),
                     LOCAL_BLOCK_WITH_BORROWS)
    routes = [m.route for m in msgs if isinstance(m, RouteUpdateMsg)]
    assert routes == [
        route("10.0.0.0/16", RouteType.CIDR_INFO, VX),
        route("10.0.0.0/29", LW, VX, LOCAL, "192.168.0.1", same_subnet=True),
        route("10.0.0.0/32", LT, VX, LOCAL, "192.168.0.1", same_subnet=True),
        route("10.0.0.2/32", RW | LW, VX, REMOTE, "192.168.0.2", same_subnet=True, borrowed=True),
        route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2", same_subnet=True),
        # Host addresses are outside the pool, so never "same subnet".
        LOCAL_HOST,
        REMOTE_HOST,
    ]
    # Our node's address loses its prefix: the remote is no longer in our subnet; our own
    # block still is.
    _, msgs = run(node(LOCAL, "192.168.0.1/32", vxlan="10.0.0.0"), calc=calc)
    assert msgs == [
        RouteUpdateMsg(route("10.0.0.2/32", RW | LW, VX, REMOTE, "192.168.0.2", borrowed=True)),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2")),
    ]
    # The remote's own prefix plays no part (vxlanLocalBlockWithBorrowsDifferentSubnetNodeRes).
    _, msgs = run(node(REMOTE, "192.168.0.2", vxlan="10.0.1.0"), calc=calc)
    assert msgs == []
    # Back to /24: same subnet again.
    _, msgs = run(node(LOCAL, "192.168.0.1/24", vxlan="10.0.0.0"), calc=calc)
    assert msgs == [
        RouteUpdateMsg(route("10.0.0.2/32", RW | LW, VX, REMOTE, "192.168.0.2", same_subnet=True, borrowed=True)),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2", same_subnet=True)),
    ]


def test_local_workload_overrides_borrowed_route():
    """vxlanLocalBlockWithBorrowsLocalWEP: local workload addresses win over the borrow."""
    calc, _ = run(pool("pool1", "10.0.0.0/16", vxlan="Always", nat=True),
                  node(LOCAL, "192.168.0.1", vxlan="10.0.0.0"),
                  node(REMOTE, "192.168.0.2", vxlan="10.0.1.0"),
                  LOCAL_BLOCK_WITH_BORROWS)
    _, msgs = run(wep("wl1", ("10.0.0.1/32", "10.0.0.2/32", "fc00:fe11::1/128", "fc00:fe11::2/128")), calc=calc)
    assert msgs == [
        RouteUpdateMsg(route("10.0.0.1/32", LW, VX, LOCAL, "192.168.0.1", nat_outgoing=True, local_workload=True)),
        RouteUpdateMsg(route("10.0.0.2/32", RW | LW, VX, LOCAL, "192.168.0.1", nat_outgoing=True,
                             local_workload=True, borrowed=True)),
        RouteUpdateMsg(route("fc00:fe11::1/128", LW, node_name=LOCAL, local_workload=True)),
        RouteUpdateMsg(route("fc00:fe11::2/128", LW, node_name=LOCAL, local_workload=True)),
    ]
    # A workload on another node is not ours to route (Felix only sees local endpoints).
    _, msgs = run(wep("wl9", ("10.0.0.5/32",), host=REMOTE), calc=calc)
    assert msgs == []
    _, msgs = run(wep("wl1", (), gone=True), calc=calc)
    assert msgs == [
        RouteRemove("10.0.0.1/32"),
        RouteRemove("fc00:fe11::1/128"),
        RouteRemove("fc00:fe11::2/128"),
        RouteUpdateMsg(route("10.0.0.2/32", RW | LW, VX, REMOTE, "192.168.0.2", nat_outgoing=True, borrowed=True)),
    ]


def test_block_moving_between_hosts():
    calc, _ = run(pool("pool1", "10.0.0.0/16", vxlan="Always", nat=True),
                  node(LOCAL, "192.168.0.1/24", vxlan="10.0.0.0"),
                  node(REMOTE, "192.168.0.2/24", vxlan="10.0.1.0"),
                  block("10.0.3.0/26", f"host:{REMOTE}", {4: REMOTE}))
    _, msgs = run(block("10.0.3.0/26", f"host:{LOCAL}", {4: REMOTE}), calc=calc)
    assert msgs == [
        RouteUpdateMsg(route("10.0.3.0/26", LW, VX, LOCAL, "192.168.0.1", nat_outgoing=True)),
        # The remote pod keeps its address, which is now borrowed from our block.
        RouteUpdateMsg(route("10.0.3.4/32", RW | LW, VX, REMOTE, "192.168.0.2", nat_outgoing=True, borrowed=True)),
    ]
    _, msgs = run(block("10.0.3.0/26", f"host:{LOCAL}", gone=True), calc=calc)
    assert msgs == [RouteRemove("10.0.3.0/26"), RouteRemove("10.0.3.4/32")]


def test_node_ip_change_moves_host_route_vtep_and_next_hops():
    """vxlanWithBlockAndDifferentNodeIP, done with a Node resource."""
    calc, _ = run(*VXLAN_WITH_BLOCK)
    _, msgs = run(node(REMOTE, "192.168.0.3", vxlan="10.0.1.0"), calc=calc)
    assert msgs == [
        RouteRemove("192.168.0.2/32"),
        VXLANTunnelEndpointUpdate(VXLANTunnelEndpoint(node=REMOTE, mac="66:3e:ca:a4:db:65", ipv4_addr="10.0.1.0",
                                                      parent_device_ip="192.168.0.3")),
        RouteUpdateMsg(route("10.0.1.0/29", RW, VX, REMOTE, "192.168.0.3", nat_outgoing=True)),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.3", nat_outgoing=True)),
        RouteUpdateMsg(route("192.168.0.3/32", RH, node_name=REMOTE, node_ip="192.168.0.3")),
    ]
    # vxlanHostIPDelete: without an address the node drops out; the block route stays,
    # without a next hop, and the VTEP is withdrawn.
    _, msgs = run(node(REMOTE, vxlan="10.0.1.0"), calc=calc)
    assert msgs == [
        RouteRemove("10.0.1.0/32"),
        RouteRemove("192.168.0.3/32"),
        VXLANTunnelEndpointRemove(REMOTE),
        RouteUpdateMsg(route("10.0.1.0/29", RW, VX, REMOTE, nat_outgoing=True)),
    ]


def test_vtep_only_when_complete():
    calc, msgs = run(node(REMOTE, vxlan="10.0.1.0"))
    assert msgs == []  # no node IP yet
    _, msgs = run(node(REMOTE, "192.168.0.2/24"), calc=calc)
    assert vtep_msgs(msgs) == []  # no tunnel address now
    _, msgs = run(node(REMOTE, "192.168.0.2/24", vxlan="10.0.1.0"), calc=calc)
    assert vtep_msgs(msgs) == [VXLANTunnelEndpointUpdate(REMOTE_VTEP)]
    # vxlanWithMAC: a MAC on the node replaces the derived one.
    _, msgs = run(node(REMOTE, "192.168.0.2/24", vxlan="10.0.1.0", mac="66:74:c5:72:3f:01"), calc=calc)
    assert msgs == [VXLANTunnelEndpointUpdate(VXLANTunnelEndpoint(
        node=REMOTE, mac="66:74:c5:72:3f:01", ipv4_addr="10.0.1.0", parent_device_ip="192.168.0.2"))]
    # vxlanTunnelIPDelete: no tunnel address, no VTEP.
    _, msgs = run(node(REMOTE, "192.168.0.2/24"), calc=calc)
    assert vtep_msgs(msgs) == [VXLANTunnelEndpointRemove(REMOTE)]
    # Deleting a node that never had a VTEP sends no VTEP remove.
    _, msgs = run(node(REMOTE2, "192.168.0.3", gone=True), calc=calc)
    assert msgs == []


def test_dual_stack_vteps():
    """vxlanV4V6WithBlock, then ...NodeResIPv6Delete and ...NodeResBGPDelete."""
    calc, msgs = run(node(REMOTE, "192.168.0.2/24", ipv6="dead:beef:1::2/96", vxlan="10.0.1.0",
                          vxlan6="feed:beef:0:0:1::0"))
    full = VXLANTunnelEndpoint(node=REMOTE, mac="66:3e:ca:a4:db:65", ipv4_addr="10.0.1.0",
                               parent_device_ip="192.168.0.2", mac_v6="66:a0:68:c9:4c:79",
                               ipv6_addr="feed:beef:0:0:1::", parent_device_ipv6="dead:beef:1::2")
    assert vtep_msgs(msgs) == [VXLANTunnelEndpointUpdate(full)]
    _, msgs = run(node(REMOTE, "192.168.0.2/24", vxlan="10.0.1.0", vxlan6="feed:beef:0:0:1::0"), calc=calc)
    assert vtep_msgs(msgs) == [
        VXLANTunnelEndpointUpdate(REMOTE_VTEP)]
    _, msgs = run(node(REMOTE, bgp=False, vxlan="10.0.1.0", vxlan6="feed:beef:0:0:1::0"), calc=calc)
    assert vtep_msgs(msgs) == [
        VXLANTunnelEndpointRemove(REMOTE)]


def test_node_without_bgp_uses_internal_ip_for_routes_but_has_no_vtep():
    _, msgs = run(pool("pool1", "10.0.0.0/16", vxlan="Always"),
                  block("10.0.1.0/29", f"host:{REMOTE}"),
                  node(REMOTE, bgp=False, vxlan="10.0.1.0",
                       addresses=(("10.9.0.2/16", "ExternalIP"), ("192.168.0.2/24", "InternalIP"))))
    assert msgs == [
        RouteUpdateMsg(route("10.0.0.0/16", RouteType.CIDR_INFO, VX)),
        RouteUpdateMsg(route("10.0.1.0/29", RW, VX, REMOTE, "192.168.0.2")),
        RouteUpdateMsg(route("10.0.1.0/32", RT, VX, REMOTE, "192.168.0.2")),
        # Every address of the node is a host route.
        RouteUpdateMsg(route("10.9.0.2/32", RH, node_name=REMOTE, node_ip="192.168.0.2")),
        RouteUpdateMsg(REMOTE_HOST),
    ]


def test_pool_modes_and_switch():
    """Never gives NO_ENCAP, IPIP gives IPIP; vxlanToIPIPSwitch re-types the routes inside."""
    calc, msgs = run(pool("v6", "feed:beef::/64"), block("feed:beef:0:0:1::/96", f"host:{REMOTE}", size=8),
                     node(REMOTE, "192.168.0.2"))
    assert msgs == [
        RouteUpdateMsg(REMOTE_HOST),
        RouteUpdateMsg(route("feed:beef::/64", RouteType.CIDR_INFO, IPPoolType.NO_ENCAP)),
        RouteUpdateMsg(route("feed:beef:0:0:1::/96", RW, IPPoolType.NO_ENCAP, REMOTE)),
    ]
    calc, _ = run(*VXLAN_WITH_BLOCK)
    assert calc.encapsulation() == Encapsulation(ipip_enabled=False, vxlan_enabled=True, vxlan_enabled_v6=False)
    _, msgs = run(pool("pool1", "10.0.0.0/16", ipip="Always"), calc=calc)
    assert msgs == [
        RouteUpdateMsg(route("10.0.0.0/16", RouteType.CIDR_INFO, IPPoolType.IPIP)),
        RouteUpdateMsg(route("10.0.1.0/29", RW, IPPoolType.IPIP, REMOTE, "192.168.0.2")),
        RouteUpdateMsg(route("10.0.1.0/32", RT, IPPoolType.IPIP, REMOTE, "192.168.0.2")),
    ]
    assert calc.encapsulation() == Encapsulation(ipip_enabled=True)
    assert calc.encapsulation(ipip_override=False, vxlan_override=True) == Encapsulation(vxlan_enabled=True)
    _, msgs = run(pool("pool1", "10.0.0.0/16", gone=True), calc=calc)
    assert msgs == [
        RouteRemove("10.0.0.0/16"),
        RouteUpdateMsg(route("10.0.1.0/29", RW, node_name=REMOTE, node_ip="192.168.0.2")),
        RouteUpdateMsg(route("10.0.1.0/32", RT, node_name=REMOTE, node_ip="192.168.0.2")),
    ]


def test_load_balancer_only_pool_keeps_nat_but_no_type():
    """l3_route_resolver_test.go: LoadBalancer-only pools, and mixed-use pools."""
    _, msgs = run(pool("lb", "10.96.0.0/16", nat=True, uses=("LoadBalancer",)),
                  block("10.96.1.0/26", "virtual:loadbalancer"),
                  node(REMOTE, "192.168.0.2"))
    blocks = routes_for(msgs, "10.96.1.0/26")
    assert blocks == [route("10.96.1.0/26", RW, IPPoolType.NONE, "loadbalancer", nat_outgoing=True)]
    _, msgs = run(pool("mixed", "10.0.0.0/16", vxlan="Always", nat=True, uses=("Workload", "LoadBalancer")),
                  block("10.0.1.0/26", f"host:{REMOTE}"), node(REMOTE, "192.168.0.2", vxlan="10.0.1.1"))
    assert [r.ip_pool_type for r in routes_for(msgs, "10.0.1.0/26")] == [VX]


def test_slash32_pool_and_block_and_tunnel_in_slash32_block():
    """vxlanSlash32 (one route, no separate CIDR_INFO) and l3_route_resolver_test.go's
    /32 tunnel block, which is a tunnel and a workload."""
    _, msgs = run(pool("p32", "10.0.0.0/32", vxlan="Always", nat=True),
                  block("10.0.0.0/32", f"host:{REMOTE}"), node(REMOTE, "192.168.0.2"))
    assert msgs == [RouteUpdateMsg(route("10.0.0.0/32", RW, VX, REMOTE, "192.168.0.2", nat_outgoing=True)),
                    RouteUpdateMsg(REMOTE_HOST)]
    _, msgs = run(pool("pool1", "10.0.0.0/16", vxlan="Always"), block("10.0.1.0/32", f"host:{REMOTE}"),
                  node(REMOTE, "192.168.0.2", vxlan="10.0.1.0"))
    assert routes_for(msgs, "10.0.1.0/32") == [
        route("10.0.1.0/32", RT | RW, VX, REMOTE, "192.168.0.2")]


def test_conflicting_pools_lowest_name_wins():
    calc, msgs = run(pool("b-pool", "10.0.0.0/16", vxlan="Always"), pool("a-pool", "10.0.0.0/16", ipip="Always"))
    assert msgs == [RouteUpdateMsg(route("10.0.0.0/16", RouteType.CIDR_INFO, IPPoolType.IPIP))]
    _, msgs = run(pool("a-pool", "10.0.0.0/16", gone=True), calc=calc)
    assert msgs == [RouteUpdateMsg(route("10.0.0.0/16", RouteType.CIDR_INFO, VX))]


def test_coalescing_and_ignored_kinds():
    calc = RouteCalculation(LOCAL)
    calc.on_updates([block("10.0.3.0/26", f"host:{REMOTE}")])
    calc.on_updates([block("10.0.3.0/26", f"host:{REMOTE}", gone=True)])
    affinity = Resource("BlockAffinity", {"name": "x"}, {"node": REMOTE, "cidr": "10.0.3.0/26"})
    calc.on_updates([Update(UpdateType.NEW, "/calico/ipam/v2/host/x/ipv4/block/10.0.3.0-26", affinity, 3),
                     # A delete for something never seen (the syncer may resend one) is a no-op.
                     pool("nope", "10.1.0.0/16", gone=True)])
    assert calc.take_messages() == []
    # An unchanged re-send (an upsert after a failed batch) sends nothing either.
    calc, _ = run(*VXLAN_WITH_BLOCK)
    _, msgs = run(*VXLAN_WITH_BLOCK, calc=calc)
    assert msgs == []


# --------------------------------------------------------------------------------------
# RouteSource WorkloadIPs: remote workloads' routes from their own addresses, not blocks.

VXLAN_WITH_WEP_IPS = (pool("pool1", "10.0.0.0/16", vxlan="Always", nat=True),
                      node(REMOTE2, "192.168.0.3", vxlan="10.0.2.0"))
WEP_ROUTE_ON_REMOTE2 = route("10.0.0.5/32", RW, VX, REMOTE2, "192.168.0.3", nat_outgoing=True)
WEP_ROUTE_ON_REMOTE = route("10.0.0.5/32", RW, VX, REMOTE, "192.168.0.2", nat_outgoing=True)


def test_workload_ips_follow_felix_states():
    """states_for_test.go vxlanWithWEPIPs -> ...AndWEP -> ...AndWEPDuplicate -> ...AndWEP:
    a remote workload's /32 is routed to its node; the same address on a node that sorts
    lower masks it; removing that one brings the first back."""
    calc, msgs = run(*VXLAN_WITH_WEP_IPS, calc=RouteCalculation(LOCAL, "WorkloadIPs"))
    assert msgs == [VXLANTunnelEndpointUpdate(REMOTE2_VTEP), RouteUpdateMsg(POOL_VXLAN),
                    RouteUpdateMsg(route("10.0.2.0/32", RT, VX, REMOTE2, "192.168.0.3", nat_outgoing=True)),
                    RouteUpdateMsg(REMOTE_HOST2)]
    _, msgs = run(wep("wl-on-2", ("10.0.0.5/32",), host=REMOTE2), calc=calc)
    assert msgs == [RouteUpdateMsg(WEP_ROUTE_ON_REMOTE2)]
    _, msgs = run(node(REMOTE, "192.168.0.2", vxlan="10.0.1.0"), wep("wl-on-1", ("10.0.0.5/32",), host=REMOTE),
                  calc=calc)
    assert vtep_msgs(msgs) == [VXLANTunnelEndpointUpdate(REMOTE_VTEP)]
    assert routes_for(msgs, "10.0.0.5/32") == [WEP_ROUTE_ON_REMOTE]
    _, msgs = run(wep("wl-on-1", (), host=REMOTE, gone=True), calc=calc)
    assert msgs == [RouteUpdateMsg(WEP_ROUTE_ON_REMOTE2)]
    _, msgs = run(wep("wl-on-2", (), host=REMOTE2, gone=True), calc=calc)
    assert msgs == [RouteRemove("10.0.0.5/32")]


def test_workload_ips_ignore_blocks_and_move_workloads():
    """Blocks route nothing with WorkloadIPs; a workload that moves node, or changes its
    address, moves its route; a local one is still a local workload."""
    calc, _ = run(*VXLAN_WITH_BLOCK, node(REMOTE2, "192.168.0.3", vxlan="10.0.2.0"),
                  calc=RouteCalculation(LOCAL, "WorkloadIPs"))
    assert "10.0.1.0/29" not in calc.routes()
    _, msgs = run(wep("a", ("10.0.1.3/32",), host=REMOTE), calc=calc)
    assert msgs == [RouteUpdateMsg(route("10.0.1.3/32", RW, VX, REMOTE, "192.168.0.2", nat_outgoing=True))]
    _, msgs = run(wep("a", ("10.0.1.3/32",), host=REMOTE2), calc=calc)
    assert msgs == [RouteUpdateMsg(route("10.0.1.3/32", RW, VX, REMOTE2, "192.168.0.3", nat_outgoing=True))]
    _, msgs = run(wep("a", ("10.0.1.4/32",), host=REMOTE2), calc=calc)
    assert msgs == [RouteRemove("10.0.1.3/32"),
                    RouteUpdateMsg(route("10.0.1.4/32", RW, VX, REMOTE2, "192.168.0.3", nat_outgoing=True))]
    _, msgs = run(wep("mine", ("10.0.9.9/32",)), calc=calc)
    assert msgs == [RouteUpdateMsg(route("10.0.9.9/32", LW, VX, LOCAL, nat_outgoing=True, local_workload=True))]


def _mixed_cluster() -> list[Update]:
    return [*VXLAN_WITH_BLOCK, node(REMOTE2, "192.168.0.3", vxlan="10.0.2.0"),
            block("10.0.2.0/29", f"host:{REMOTE2}", {3: REMOTE}),
            wep("r1", ("10.0.1.3/32",), host=REMOTE), wep("r2", ("10.0.2.5/32",), host=REMOTE2),
            wep("mine", ("10.0.9.9/32",))]


def test_switching_route_source_matches_building_with_it():
    """The agent learns the datastore's RouteSource after the updates: switching gives the
    routes a calculation built with that source gives, both ways, and the messages bring
    what was already handed out to the new answer."""
    updates = _mixed_cluster()
    workloads = [(u.key, u.value.spec["node"], tuple(u.value.spec["ipNetworks"])) for u in updates
                 if getattr(u.value, "kind", "") == "WorkloadEndpoint"]
    for first, second in (("CalicoIPAM", "WorkloadIPs"), ("WorkloadIPs", "CalicoIPAM")):
        want = RouteCalculation(LOCAL, second)
        want.on_updates(updates)
        calc, before = run(*updates, calc=RouteCalculation(LOCAL, first))
        first_routes = calc.routes()
        calc.set_route_source(second, workloads)
        assert calc.route_source == second
        assert calc.routes() == want.routes() != first_routes
        seen = {m.route.dst: m.route for m in before if isinstance(m, RouteUpdateMsg)}
        for m in calc.take_messages():
            if isinstance(m, RouteRemove):
                seen.pop(m.dst)
            elif isinstance(m, RouteUpdateMsg):
                seen[m.route.dst] = m.route
        assert seen == want.routes()
        # Later updates keep working in the new mode: the remote workload goes away.
        _, msgs = run(wep("r1", (), host=REMOTE, gone=True), calc=calc)
        want.on_updates([wep("r1", (), host=REMOTE, gone=True)])
        assert calc.routes() == want.routes()


def test_any_other_route_source_reads_as_calico_ipam():
    """Felix's resolver tests for WorkloadIPs only: ``none`` (the empty zero value) or
    anything else routes by blocks, and never stops the calculation."""
    for value in ("", "Blocks", "workloadips"):
        assert RouteCalculation(LOCAL, value).route_source == "CalicoIPAM"
        calc = RouteCalculation(LOCAL, "WorkloadIPs")
        calc.set_route_source(value)
        assert calc.route_source == "CalicoIPAM"


def test_device_route_protocol_keeps_its_low_byte_as_netlink_writes_it():
    """Felix takes any number for DeviceRouteProtocol; a route's protocol is one byte, so
    300 is written (and owned) as 44."""
    from node.felix.config import FelixConfig
    from node.felix.routes import RouteConfig

    config = FelixConfig.resolve({"FELIX_DEVICEROUTEPROTOCOL": "300"})
    assert config.DeviceRouteProtocol == 300
    route_config = RouteConfig.from_felix(config, hostname="h", vxlan_enabled=False, vxlan_enabled_v6=False,
                                          ipip_enabled=False)
    assert route_config.device_route_protocol == 44
