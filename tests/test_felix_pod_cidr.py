"""Host-local IPAM (USE_POD_CIDR): the Nodes' pod CIDRs become the blocks the route
calculation routes, as Felix's syncer makes them (libcalico-go's FelixNodeUpdateProcessor),
and Calico's IPAM blocks are not followed. (Against the Kubernetes API stand-in, through
``calico-node felix --dry-run --routes``: test_kdd_roles.)"""
from __future__ import annotations

import logging

import pytest

from node.datastore.syncer import SyncStatus, Update, UpdateType
from node.felix.calc.pod_cidr import PodCIDRBlocks, use_pod_cidr
from node.felix.calc.routes import BLOCK_PREFIX, IPAMBlock
from node.felix.dryrun import routes_for_family
from node.felix.pipeline import Pipeline, felix_sources
from node.felix.routes import render
from node.errors import ConfigError
from node.model import ipam as ipam_records

from felix_calc_builders import delete, node, pool, put


def k8s_style_node(name: str, cidrs, ip: str = "", tunnel: str = "", mac: str = ""):
    """A Calico Node as the Kubernetes datastore gives it (status.podCIDRs from the
    Kubernetes Node's spec.podCIDRs)."""
    spec = {}
    if tunnel:
        spec.update(ipv4VXLANTunnelAddr=tunnel, vxlanTunnelMACAddr=mac)
    res = node(name, ipv4=f"{ip}/24" if ip else "", **spec)
    if cidrs is not None:
        res.status = {"podCIDRs": list(cidrs)}
    return res


def blocks(updates):
    return [(u.type, u.key, u.value) for u in updates]


def block_update(cidr, host):
    return (UpdateType.NEW, ipam_records.block_key(cidr), IPAMBlock(cidr, host))


def block_delete(cidr):
    return (UpdateType.DELETED, ipam_records.block_key(cidr), None)


# -- Felix's vectors (felixnodeprocessor_test.go, USE_POD_CIDR=true) ---------------------------

def test_a_deleted_node_without_cidrs_gives_no_blocks():
    assert PodCIDRBlocks().node_updated("mynode", None) == []


def test_nodes_become_blocks_and_a_removed_cidr_a_block_deletion():
    tracker = PodCIDRBlocks()
    got = tracker.node_updated("mynode", k8s_style_node("mynode", ["192.168.1.0/24", "192.168.2.0/24"]))
    assert blocks(got) == [block_update("192.168.1.0/24", "mynode"), block_update("192.168.2.0/24", "mynode")]
    got = tracker.node_updated("mynode", k8s_style_node("mynode", ["192.168.1.0/24"]))
    assert blocks(got) == [block_delete("192.168.2.0/24"), block_update("192.168.1.0/24", "mynode")]


# -- the rest of the processor's behaviour ----------------------------------------------------

def test_deletion_cidrs_not_masked_and_bad_entries(caplog):
    tracker = PodCIDRBlocks()
    with caplog.at_level(logging.WARNING):
        got = tracker.node_updated("n1", k8s_style_node("n1", ["10.244.1.7/24", "fd00:1::/64", "10.9.9.9", "x/8"]))
    # A CIDR is masked to its network (Go's ParseCIDR); an address alone is not a CIDR.
    assert blocks(got) == [block_update("10.244.1.0/24", "n1"), block_update("fd00:1::/64", "n1")]
    assert "Node n1: status.podCIDRs entry '10.9.9.9' is not a CIDR" in caplog.text
    assert "Node n1: status.podCIDRs entry 'x/8' is not a CIDR" in caplog.text
    # The Node goes: every block it had goes.
    assert blocks(tracker.node_updated("n1", None)) == [block_delete("10.244.1.0/24"), block_delete("fd00:1::/64")]
    assert tracker.node_updated("n1", None) == []
    # A Node with spec.podCIDR but no status.podCIDRs (Calico reads only the latter).
    assert tracker.node_updated("n2", k8s_style_node("n2", None)) == []


def test_use_pod_cidr_reads_like_libcalico_go():
    assert use_pod_cidr({"USE_POD_CIDR": "true"}) and use_pod_cidr({"CALICO_USE_POD_CIDR": "1"})
    assert not use_pod_cidr({}) and not use_pod_cidr({"USE_POD_CIDR": "false"})
    # Not a boolean: libcalico-go's client configuration does not load, and Felix panics.
    with pytest.raises(ConfigError, match="USE_POD_CIDR='yes' is not a boolean"):
        use_pod_cidr({"USE_POD_CIDR": "yes"})
    with pytest.raises(ConfigError):
        felix_sources({"USE_POD_CIDR": "yes"})


def test_ipam_blocks_are_not_followed_with_use_pod_cidr():
    assert BLOCK_PREFIX in {s.prefix for s in felix_sources({})}
    assert BLOCK_PREFIX not in {s.prefix for s in felix_sources({"USE_POD_CIDR": "true"})}


# -- routes ------------------------------------------------------------------------------------

NODES = (k8s_style_node("node1", ["10.244.1.0/24"], "10.0.0.11", "10.244.1.0", "66:00:00:00:00:01"),
         k8s_style_node("node2", ["10.244.2.0/24"], "10.0.0.12", "10.244.2.0", "66:00:00:00:00:02"))


def routes(pipeline):
    pipeline.complete()
    pipeline.set_interfaces({"eth0": ["10.0.0.11"]})
    return render(routes_for_family(pipeline.desired_routes(), 4))


def ipam_block(cidr, host):
    return Update(UpdateType.NEW, ipam_records.block_key(cidr), IPAMBlock(cidr, host), 1)


def test_pod_cidrs_give_vxlan_routes_and_the_local_blackhole():
    pipeline = Pipeline("node1", {"FELIX_IPV6SUPPORT": "false", "USE_POD_CIDR": "true"})
    # A stray IPAM block (another IPAM's leftovers) is not followed.
    pipeline.on_updates(put(pool("p", "10.244.0.0/16", vxlanMode="Always"), *NODES)
                        + [ipam_block("10.244.9.0/26", "node2")])
    pipeline.on_status(SyncStatus.IN_SYNC)
    got = routes(pipeline)
    assert "blackhole 10.244.1.0/24 proto 80" in got, got
    assert "10.244.2.0/24 via 10.244.2.0 dev vxlan.calico proto boot onlink mtu 1410" in got, got
    assert not [line for line in got if "10.244.9." in line], got
    # node2's pod CIDR changes: its route follows.
    moved = k8s_style_node("node2", ["10.244.3.0/24"], "10.0.0.12", "10.244.2.0", "66:00:00:00:00:02")
    pipeline.on_updates(put(moved))
    got = routes(pipeline)
    assert "10.244.3.0/24 via 10.244.2.0 dev vxlan.calico proto boot onlink mtu 1410" in got, got
    assert not [line for line in got if line.startswith("10.244.2.0/24")], got
    # node2 goes (the agent's syncer gives no value): so does its route.
    pipeline.on_updates([Update(UpdateType.DELETED, u.key, None, 3) for u in delete(moved)])
    got = routes(pipeline)
    assert not [line for line in got if "10.244.3.0/24" in line], got
    assert "blackhole 10.244.1.0/24 proto 80" in got


def test_without_use_pod_cidr_the_nodes_cidrs_give_nothing_and_blocks_count():
    pipeline = Pipeline("node1", {"FELIX_IPV6SUPPORT": "false"})
    pipeline.on_updates(put(pool("p", "10.244.0.0/16", vxlanMode="Always"), *NODES)
                        + [ipam_block("10.244.9.0/26", "node2")])
    pipeline.on_status(SyncStatus.IN_SYNC)
    got = routes(pipeline)
    assert not [line for line in got if "10.244.1.0/24" in line or "10.244.2.0/24" in line], got
    assert "10.244.9.0/26 via 10.244.2.0 dev vxlan.calico proto boot onlink mtu 1410" in got, got
