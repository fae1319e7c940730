"""Property: the incremental route calculation agrees with a from-scratch one.

Random sequences of pool, node, block and local-workload changes are fed in random
batches; the messages taken at random points are applied to an empty model. At the end the
model must equal what a fresh calculation computes from the final state alone (fed in a
random order), and no batch may contain a message that changes nothing.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.datastore.syncer import Update, UpdateType
from node.felix.calc.routes import RouteCalculation, compute_from_scratch, decode_block
from node.felix.routes import RouteModel, apply_messages
from node.felix.types import RouteRemove, RouteUpdateMsg, VXLANTunnelEndpointRemove, VXLANTunnelEndpointUpdate
from node.model import ipam as ipam_records
from node.model.resource import Resource

NODES = ("node-a", "node-b", "node-c")
LOCAL = "node-a"
POOL_CIDRS = ("10.0.0.0/16", "10.0.0.0/16", "10.0.0.0/24", "10.0.2.0/29", "fd10::/64")
BLOCK_CIDRS = ("10.0.0.0/26", "10.0.1.0/26", "10.0.2.0/30", "10.0.2.4/32", "fd10::/126")
WEP_NETS = ("10.0.0.5/32", "10.0.1.3/32", "10.0.2.4/32", "10.0.0.0/24", "fd10::2/128")

modes = st.sampled_from(("Never", "Always", "CrossSubnet", "CrossSubnet"))


@st.composite
def pool_values(draw):
    spec = {"cidr": draw(st.sampled_from(POOL_CIDRS)), "vxlanMode": draw(modes), "ipipMode": draw(modes),
            "natOutgoing": draw(st.booleans()),
            "allowedUses": draw(st.sampled_from((["Workload", "Tunnel"], ["LoadBalancer"])))}
    return spec


@st.composite
def node_values(draw, name):
    spec: dict = {}
    if draw(st.integers(0, 3)):
        bgp = {}
        # Our own address moves between prefixes (and so between "same subnet" answers);
        # the others sit inside or outside its /24.
        v4 = draw(st.sampled_from(("192.168.0.1", "192.168.0.1", "")) if name == LOCAL else
                  st.sampled_from(("", "192.168.0.2", "192.168.0.3", "192.168.1.3")))
        if v4:
            bgp["ipv4Address"] = v4 + draw(st.sampled_from(("", "/24", "/24", "/32", "/16")))
        v6 = draw(st.sampled_from(("", "fd00::1/64", "fd00::2/64")))
        if v6:
            bgp["ipv6Address"] = v6
        ipip = draw(st.sampled_from(("", "10.0.1.1", "10.0.0.5")))
        if ipip:
            bgp["ipv4IPIPTunnelAddr"] = ipip
        spec["bgp"] = bgp
    for key, choices in (("ipv4VXLANTunnelAddr", ("", "10.0.0.1", "10.0.1.0", "10.0.2.4", "10.0.9.9")),
                         ("ipv6VXLANTunnelAddr", ("", "fd10::1")),
                         ("vxlanTunnelMACAddr", ("", "aa:bb:cc:dd:ee:01")),
                         ("vxlanTunnelMACAddrV6", ("", "aa:bb:cc:dd:ee:02"))):
        value = draw(st.sampled_from(choices))
        if value:
            spec[key] = value
    addresses = draw(st.lists(st.tuples(st.sampled_from(("192.168.0.2", "10.1.0.1/16", "fd00::9")),
                                        st.sampled_from(("InternalIP", "ExternalIP"))), max_size=2))
    if addresses:
        spec["addresses"] = [{"address": a, "type": t} for a, t in addresses]
    return spec


@st.composite
def block_values(draw, cidr):
    import ipaddress
    n = ipaddress.ip_network(cidr).num_addresses
    affinity = draw(st.sampled_from((None, "host:node-a", "host:node-b", "host:node-c", "virtual:lb")))
    owners = draw(st.dictionaries(st.integers(0, n - 1), st.sampled_from((None,) + NODES), max_size=3))
    attributes, allocations = [], [None] * n
    for ordinal, owner in sorted(owners.items()):
        allocations[ordinal] = len(attributes)
        attributes.append({"secondary": {"node": owner}} if owner else {})
    return {"cidr": cidr, "affinity": affinity, "allocations": allocations,
            "unallocated": [o for o in range(n) if allocations[o] is None], "attributes": attributes,
            "sequenceNumber": 0, "sequenceNumberForAllocation": {}, "deleted": False}


def _maybe(strategy):
    """Mostly a value, sometimes None (a delete)."""
    return st.one_of(st.none(), strategy, strategy, strategy)


@st.composite
def changes(draw):
    """One datastore change: (key, value or None for a delete)."""
    kind = draw(st.sampled_from(("pool", "node", "block", "wep")))
    if kind == "pool":
        name = draw(st.sampled_from(("p1", "p2", "p3")))
        value = draw(_maybe(pool_values().map(lambda s: Resource("IPPool", {"name": name}, s))))
        return f"/calico/resources/v3/projectcalico.org/ippools/{name}", value
    if kind == "node":
        name = draw(st.sampled_from(NODES))
        value = draw(_maybe(node_values(name).map(lambda s: Resource("Node", {"name": name}, s))))
        return f"/calico/resources/v3/projectcalico.org/nodes/{name}", value
    if kind == "block":
        cidr = draw(st.sampled_from(BLOCK_CIDRS))
        key = ipam_records.block_key(cidr)
        rec = draw(_maybe(block_values(cidr)))
        value = None if rec is None else decode_block(key, ipam_records.encode_block(rec).encode(), 1)
        return key, value
    name = draw(st.sampled_from(("w1", "w2")))
    host = draw(st.sampled_from((LOCAL, "node-b")))
    nets = draw(st.lists(st.sampled_from(WEP_NETS), max_size=3, unique=True))
    value = draw(_maybe(st.just(Resource("WorkloadEndpoint", {"name": name, "namespace": "ns"},
                                         {"node": host, "ipNetworks": nets}))))
    return f"/calico/resources/v3/projectcalico.org/workloadendpoints/ns/{name}", value


def _check_batch(model: RouteModel, msgs: list) -> None:
    """Every message changes the model, and each destination or node appears once."""
    seen_routes, seen_vteps = set(), set()
    for msg in msgs:
        if isinstance(msg, RouteUpdateMsg):
            assert model.routes.get(msg.route.dst) != msg.route, msg
            key, seen = msg.route.dst, seen_routes
        elif isinstance(msg, RouteRemove):
            assert msg.dst in model.routes, msg
            key, seen = msg.dst, seen_routes
        elif isinstance(msg, VXLANTunnelEndpointUpdate):
            assert model.vteps.get(msg.vtep.node) != msg.vtep, msg
            key, seen = msg.vtep.node, seen_vteps
        else:
            assert isinstance(msg, VXLANTunnelEndpointRemove)
            assert msg.node in model.vteps, msg
            key, seen = msg.node, seen_vteps
        assert key not in seen, msg
        seen.add(key)


@st.composite
def full_cluster(draw):
    """A starting batch with every node, block and one pool present, so the changes that
    follow meet a populated cluster rather than mostly empty ones."""
    out = []
    for name in NODES:
        spec = draw(node_values(name))
        out.append((f"/calico/resources/v3/projectcalico.org/nodes/{name}", Resource("Node", {"name": name}, spec)))
    for cidr in BLOCK_CIDRS:
        key = ipam_records.block_key(cidr)
        out.append((key, decode_block(key, ipam_records.encode_block(draw(block_values(cidr))).encode(), 1)))
    spec = draw(pool_values())
    spec["cidr"] = "10.0.0.0/16"
    out.append(("/calico/resources/v3/projectcalico.org/ippools/p1", Resource("IPPool", {"name": "p1"}, spec)))
    return out


@settings(max_examples=300, deadline=None)
@given(start=full_cluster(),
       steps=st.lists(st.tuples(st.lists(changes(), min_size=1, max_size=4), st.booleans()), max_size=12),
       order=st.randoms(use_true_random=False), keyless=st.booleans())
def test_incremental_equals_from_scratch(start, steps, order, keyless):
    """... whether deletes carry the last value or, as from the agent's syncer, only the key."""
    steps = [(start, False)] + steps
    calc = RouteCalculation(LOCAL)
    model = RouteModel()
    final: dict[str, object] = {}
    revision = 0
    for batch, take in steps:
        updates = []
        for key, value in batch:
            revision += 1
            if value is None:
                if key in final:
                    last = final.pop(key)
                    updates.append(Update(UpdateType.DELETED, key, None if keyless else last, revision))
            else:
                kind = UpdateType.UPDATED if key in final else UpdateType.NEW
                final[key] = value
                updates.append(Update(kind, key, value, revision))
        calc.on_updates(updates)
        if take:
            msgs = calc.take_messages()
            _check_batch(model, msgs)
            model = apply_messages(model, msgs)
    msgs = calc.take_messages()
    _check_batch(model, msgs)
    model = apply_messages(model, msgs)

    items = list(final.items())
    order.shuffle(items)
    routes, vteps = compute_from_scratch(LOCAL, [Update(UpdateType.NEW, k, v, 1) for k, v in items])
    assert dict(model.routes) == routes
    assert dict(model.vteps) == vteps
    assert calc.routes() == routes and calc.vteps() == vteps
