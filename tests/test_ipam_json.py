"""Byte-level JSON of IPAM records after a known sequence of operations.

The expected values are written out as libcalico-go stores them: snake_case and
camelCase field names side by side, null for free ordinals, sequence-number map keys
in Go's string order ("10" before "2"), second-precision claim time.
"""
from __future__ import annotations

import pytest

from ipam_fixtures import T0, Clock, ipam_keys, make_node, make_pool, raw
from node.ipam.allocator import IPAM

pytestmark = pytest.mark.etcd

BLOCK = "/calico/ipam/v2/assignment/ipv4/block/192.168.87.0-28"
AFFINITY = "/calico/ipam/v2/host/node1/ipv4/block/192.168.87.0-28"
TUNNEL_HANDLE = "/calico/ipam/v2/handle/ipip-tunnel-addr-node1"
POD_HANDLE = "/calico/ipam/v2/handle/k8s-pod-network.c1"
TUNNEL_ATTRS = {"node": "node1", "type": "ipipTunnelAddress"}
POD_ATTRS = {"namespace": "default", "node": "node1", "pod": "p1",
             "timestamp": "2025-05-01 10:00:06.123456789 +0000 UTC"}


@pytest.fixture
def ipam(etcd_kv):
    ipam = IPAM(etcd_kv, clock_ns=Clock())
    make_pool(ipam.client, "pool1", "192.168.87.0/28", blockSize=28, ipipMode="Always")
    make_node(ipam.client, "node1")
    return ipam


def test_block_affinity_and_handles_after_assign_and_release(ipam, etcd_kv):
    v4, v6 = ipam.auto_assign(num4=1, handle_id="ipip-tunnel-addr-node1", attrs=TUNNEL_ATTRS, host="node1",
                              intended_use="Tunnel")
    assert v6 is None and v4.ips == ["192.168.87.0"] and v4.networks == ["192.168.87.0/28"]
    assert raw(etcd_kv, BLOCK) == (
        '{"cidr":"192.168.87.0/28","affinity":"host:node1","affinity_claim_time":"2025-05-01T10:00:05Z",'
        '"allocations":[0,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],'
        '"unallocated":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15],'
        '"attributes":[{"handle_id":"ipip-tunnel-addr-node1","secondary":{"node":"node1","type":"ipipTunnelAddress"}}],'
        '"sequenceNumber":1746093605123456790,"sequenceNumberForAllocation":{"0":1746093605123456789},'
        '"deleted":false}')
    assert raw(etcd_kv, AFFINITY) == '{"state":"confirmed","deleted":false}'
    assert raw(etcd_kv, TUNNEL_HANDLE) == '{"block":{"192.168.87.0/28":1},"deleted":false}'

    ipam.clock_ns.advance(1)
    v4, _ = ipam.auto_assign(num4=11, handle_id="k8s-pod-network.c1", attrs=POD_ATTRS, host="node1")
    assert v4.ips == [f"192.168.87.{i}" for i in range(1, 12)]
    seq1 = T0 + 1
    assert raw(etcd_kv, BLOCK) == (
        '{"cidr":"192.168.87.0/28","affinity":"host:node1","affinity_claim_time":"2025-05-01T10:00:05Z",'
        '"allocations":[0,1,1,1,1,1,1,1,1,1,1,1,null,null,null,null],'
        '"unallocated":[12,13,14,15],'
        '"attributes":[{"handle_id":"ipip-tunnel-addr-node1","secondary":{"node":"node1","type":"ipipTunnelAddress"}},'
        '{"handle_id":"k8s-pod-network.c1","secondary":{"namespace":"default","node":"node1","pod":"p1",'
        '"timestamp":"2025-05-01 10:00:06.123456789 +0000 UTC"}}],'
        '"sequenceNumber":1746093605123456791,'
        f'"sequenceNumberForAllocation":{{"0":{T0},"1":{seq1},"10":{seq1},"11":{seq1},"2":{seq1},"3":{seq1},'
        f'"4":{seq1},"5":{seq1},"6":{seq1},"7":{seq1},"8":{seq1},"9":{seq1}}},'
        '"deleted":false}')
    assert raw(etcd_kv, POD_HANDLE) == '{"block":{"192.168.87.0/28":11},"deleted":false}'

    assert ipam.release_ips(["192.168.87.5"]) == []
    assert raw(etcd_kv, POD_HANDLE) == '{"block":{"192.168.87.0/28":10},"deleted":false}'

    ipam.release_by_handle("ipip-tunnel-addr-node1")
    assert raw(etcd_kv, TUNNEL_HANDLE) is None
    # Ordinals go back to the end of the FIFO in release order; the tunnel's attribute
    # is dropped and the pod's is renumbered from 1 to 0.
    assert raw(etcd_kv, BLOCK) == (
        '{"cidr":"192.168.87.0/28","affinity":"host:node1","affinity_claim_time":"2025-05-01T10:00:05Z",'
        '"allocations":[null,0,0,0,0,null,0,0,0,0,0,0,null,null,null,null],'
        '"unallocated":[12,13,14,15,5,0],'
        '"attributes":[{"handle_id":"k8s-pod-network.c1","secondary":{"namespace":"default","node":"node1",'
        '"pod":"p1","timestamp":"2025-05-01 10:00:06.123456789 +0000 UTC"}}],'
        '"sequenceNumber":1746093605123456793,'
        f'"sequenceNumberForAllocation":{{"1":{seq1},"10":{seq1},"11":{seq1},"2":{seq1},"3":{seq1},'
        f'"4":{seq1},"6":{seq1},"7":{seq1},"8":{seq1},"9":{seq1}}},'
        '"deleted":false}')
    # The first assignment also wrote the default IPAM configuration, as libcalico-go's
    # GetIPAMConfig does.
    assert set(ipam_keys(etcd_kv)) == {BLOCK, AFFINITY, POD_HANDLE, "/calico/ipam/v2/config"}


def test_released_block_keeps_empty_attributes_and_map(ipam, etcd_kv):
    ipam.auto_assign(num4=1, handle_id="h", host="node1")
    ipam.release_by_handle("h")
    assert raw(etcd_kv, BLOCK) == (
        '{"cidr":"192.168.87.0/28","affinity":"host:node1","affinity_claim_time":"2025-05-01T10:00:05Z",'
        '"allocations":[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],'
        '"unallocated":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,0],'
        '"attributes":[],"sequenceNumber":1746093605123456791,"sequenceNumberForAllocation":{},"deleted":false}')


def test_ipv6_block_json(etcd_kv):
    ipam = IPAM(etcd_kv, clock_ns=Clock())
    make_pool(ipam.client, "pool6", "fd5f:2b12:a3c4::/125", blockSize=125)
    make_node(ipam.client, "node1")
    _, v6 = ipam.auto_assign(num6=2, handle_id="vxlan-v6-tunnel-addr-node1", host="node1",
                             attrs={"node": "node1", "type": "vxlanV6TunnelAddress"}, intended_use="Tunnel")
    assert v6.ips == ["fd5f:2b12:a3c4::", "fd5f:2b12:a3c4::1"]
    assert raw(etcd_kv, "/calico/ipam/v2/assignment/ipv6/block/fd5f:2b12:a3c4::-125") == (
        '{"cidr":"fd5f:2b12:a3c4::/125","affinity":"host:node1","affinity_claim_time":"2025-05-01T10:00:05Z",'
        '"allocations":[0,0,null,null,null,null,null,null],"unallocated":[2,3,4,5,6,7],'
        '"attributes":[{"handle_id":"vxlan-v6-tunnel-addr-node1","secondary":{"node":"node1",'
        '"type":"vxlanV6TunnelAddress"}}],"sequenceNumber":1746093605123456790,'
        '"sequenceNumberForAllocation":{"0":1746093605123456789,"1":1746093605123456789},"deleted":false}')
    assert raw(etcd_kv, "/calico/ipam/v2/host/node1/ipv6/block/fd5f:2b12:a3c4::-125") == \
        '{"state":"confirmed","deleted":false}'
    assert raw(etcd_kv, "/calico/ipam/v2/handle/vxlan-v6-tunnel-addr-node1") == \
        '{"block":{"fd5f:2b12:a3c4::/125":2},"deleted":false}'


def test_reads_blocks_written_by_older_calico(ipam, etcd_kv):
    """Older writers left attributes null, no claim time and no sequence map."""
    etcd_kv.put(BLOCK, '{"cidr":"192.168.87.0/28","affinity":"host:node1","allocations":'
                       '[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],'
                       '"unallocated":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15],"attributes":null,'
                       '"sequenceNumber":7,"sequenceNumberForAllocation":null,"deleted":false}')
    etcd_kv.put(AFFINITY, "")  # an empty affinity value reads as confirmed
    v4, _ = ipam.auto_assign(num4=1, handle_id="h", host="node1")
    assert v4.ips == ["192.168.87.0"]
    assert raw(etcd_kv, BLOCK) == (
        '{"cidr":"192.168.87.0/28","affinity":"host:node1","allocations":'
        '[0,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null],'
        '"unallocated":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15],"attributes":[{"handle_id":"h"}],'
        '"sequenceNumber":8,"sequenceNumberForAllocation":{"0":7},"deleted":false}')
    assert raw(etcd_kv, AFFINITY) == ""
