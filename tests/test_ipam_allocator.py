"""The allocator against a real etcd: pool choice, blocks and affinities, handles, release."""
from __future__ import annotations

import ipaddress
import json

import pytest

from ipam_fixtures import Clock, ipam_keys, make_node, make_pool, raw, update_pool
from node.errors import AlreadyExists, NotFound
from node.ipam.allocator import IPAM, IPAMConfig
from node.ipam.block import ReleaseOptions
from node.ipam.check import check
from node.ipam.errors import BlockLimit, IPAMError, IPInCooldown, NoQualifiedPool, PartialAssignment
from node.errors import Conflict

pytestmark = pytest.mark.etcd


@pytest.fixture
def ipam(etcd_kv):
    return IPAM(etcd_kv, clock_ns=Clock())


def blocks_of(kv) -> dict[str, dict]:
    return {k.rsplit("/", 1)[1]: json.loads(v) for k, v in ipam_keys(kv).items() if "/assignment/" in k}


def handle_counts(kv, handle: str) -> dict | None:
    value = raw(kv, f"/calico/ipam/v2/handle/{handle}")
    return None if value is None else json.loads(value)["block"]


def test_affine_block_is_reused_then_a_second_block_claimed(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.10.0.0/24", blockSize=29)
    make_node(ipam.client, "n1")
    first, _ = ipam.auto_assign(num4=5, handle_id="a", host="n1")
    second, _ = ipam.auto_assign(num4=5, handle_id="b", host="n1")
    nets = {ipaddress.ip_network(n, strict=False) for n in first.networks + second.networks}
    assert len(nets) == 2  # 8-address blocks: the second request fills one and opens another
    assert len(set(first.ips + second.ips)) == 10
    affinities = [k for k in ipam_keys(etcd_kv) if "/host/n1/" in k]
    assert sorted(a.rsplit("/", 1)[1] for a in affinities) == sorted(str(n).replace("/", "-") for n in nets)
    assert sum(handle_counts(etcd_kv, "b").values()) == 5
    assert check(etcd_kv, ipam.clock_ns()).count_mismatches == []


def test_same_host_always_starts_at_the_same_block(etcd_kv):
    """The walk is seeded from the host name: two fresh datastores give the same block."""
    ipam = IPAM(etcd_kv, clock_ns=Clock())
    make_pool(ipam.client, "p", "10.20.0.0/16")
    make_node(ipam.client, "worker-7")
    v4, _ = ipam.auto_assign(num4=1, handle_id="x", host="worker-7")
    ipam.release_host_affinities("worker-7")
    ipam.release_by_handle("x")
    again, _ = ipam.auto_assign(num4=1, handle_id="y", host="worker-7")
    assert again.networks == v4.networks


def test_pool_exhaustion_is_a_clear_partial_assignment(ipam):
    make_pool(ipam.client, "tiny", "10.0.0.0/30", blockSize=30)
    make_node(ipam.client, "n1")
    got, _ = ipam.auto_assign(num4=4, handle_id="h", host="n1")
    assert got.check().ips == ["10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"]
    more, _ = ipam.auto_assign(num4=2, handle_id="h2", host="n1")
    assert more.ips == []
    with pytest.raises(PartialAssignment) as exc:
        more.check()
    assert str(exc.value) == ("Assigned 0 out of 2 requested IPv4 addresses; "
                              "No IPs available in pools: [10.0.0.0/30]")


def test_disabled_pools_are_not_used(ipam):
    make_pool(ipam.client, "off", "10.1.0.0/24", disabled=True)
    make_node(ipam.client, "n1")
    with pytest.raises(NoQualifiedPool, match="^cannot find a qualified ippool$"):
        ipam.auto_assign(num4=1, handle_id="h", host="n1")
    make_pool(ipam.client, "on", "10.2.0.0/24")
    got, _ = ipam.auto_assign(num4=1, handle_id="h", host="n1")
    assert ipaddress.ip_address(got.ips[0]) in ipaddress.ip_network("10.2.0.0/24")
    with pytest.raises(IPAMError, match=r"the given pool \(10.1.0.0/24\) does not exist, or is not enabled"):
        ipam.auto_assign(num4=1, handle_id="h", host="n1", pools=["10.1.0.0/24"])


def test_pools_marked_unallocatable_are_not_used(ipam, etcd_kv):
    """kube-controllers sets Allocatable=False on a pool that overlaps an active one;
    libcalico-go's enabled pools leave it out. Using it would put the same address in a
    /28 block of one pool and a /26 block of the other: two owners for one address."""
    make_pool(ipam.client, "a-wide", "10.30.0.0/16", blockSize=26)
    overlap = {"type": "Allocatable", "status": "False", "reason": "CIDROverlap",
               "message": "CIDR overlaps another pool; disabled to prevent IP allocation conflicts.",
               "lastTransitionTime": "2025-05-01T10:00:00Z"}
    etcd_kv.put("/calico/resources/v3/projectcalico.org/ippools/b-narrow", json.dumps({
        "kind": "IPPool", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "b-narrow", "uid": "0c6a8c6e-0000-4000-8000-000000000001",
                     "creationTimestamp": "2025-05-01T10:00:00Z"},
        "spec": {"cidr": "10.30.0.0/24", "blockSize": 28, "ipipMode": "Never", "vxlanMode": "Never",
                 "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"]},
        "status": {"conditions": [overlap]}}))
    assert ipam.client.get("IPPool", "b-narrow").status["conditions"][0]["status"] == "False"
    make_node(ipam.client, "n1")
    got, _ = ipam.auto_assign(num4=20, handle_id="h", host="n1")
    assert {n.rsplit("/", 1)[1] for n in got.check().networks} == {"26"}
    assert set(blocks_of(etcd_kv)) == {str(ipaddress.ip_network(got.networks[0], strict=False)).replace("/", "-")}
    with pytest.raises(IPAMError, match=r"the given pool \(10.30.0.0/24\) does not exist, or is not enabled"):
        ipam.auto_assign(num4=1, handle_id="h2", host="n1", pools=["10.30.0.0/24"])
    # A pool whose condition says it is allocatable is used as usual.
    etcd_kv.put("/calico/resources/v3/projectcalico.org/ippools/a-wide", json.dumps({
        **json.loads(raw(etcd_kv, "/calico/resources/v3/projectcalico.org/ippools/a-wide")),
        "status": {"conditions": [{**overlap, "status": "True", "reason": "OK"}]}}))
    more, _ = ipam.auto_assign(num4=1, handle_id="h3", host="n1")
    assert more.check().networks[0].endswith("/26")


def test_node_selectors_choose_the_pool(ipam):
    make_pool(ipam.client, "rack-a", "10.1.0.0/24", nodeSelector="rack == 'a'")
    make_pool(ipam.client, "rack-b", "10.2.0.0/24", nodeSelector="rack == 'b'")
    make_node(ipam.client, "nb", labels={"rack": "b"})
    make_node(ipam.client, "nc", labels={"rack": "c"})
    got, _ = ipam.auto_assign(num4=3, handle_id="h", host="nb")
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.2.0.0/24") for ip in got.ips)
    with pytest.raises(IPAMError, match="^no configured Calico pools for node nc$"):
        ipam.auto_assign(num4=1, handle_id="h2", host="nc")
    # Naming a pool bypasses its selector, as libcalico-go does.
    forced, _ = ipam.auto_assign(num4=1, handle_id="h3", host="nc", pools=["10.1.0.0/24"])
    assert ipaddress.ip_address(forced.ips[0]) in ipaddress.ip_network("10.1.0.0/24")


def test_allowed_uses_are_honoured(ipam):
    make_pool(ipam.client, "workloads", "10.1.0.0/24", allowedUses=["Workload"])
    make_node(ipam.client, "n1")
    with pytest.raises(NoQualifiedPool, match=r"no pools match the required use \(Tunnel\)"):
        ipam.auto_assign(num4=1, handle_id="t", host="n1", intended_use="Tunnel")
    make_pool(ipam.client, "tunnels", "10.9.0.0/24", allowedUses=["Tunnel"])
    tunnel, _ = ipam.auto_assign(num4=1, handle_id="t", host="n1", intended_use="Tunnel")
    pod, _ = ipam.auto_assign(num4=1, handle_id="w", host="n1")
    assert ipaddress.ip_address(tunnel.ips[0]) in ipaddress.ip_network("10.9.0.0/24")
    assert ipaddress.ip_address(pod.ips[0]) in ipaddress.ip_network("10.1.0.0/24")
    with pytest.raises(IPAMError, match='not allowed for use "Tunnel"'):
        ipam.assign_ip("10.1.0.200", handle_id="t2", host="n1", intended_use="Tunnel")


def test_ipv6_assignment_release_and_exhaustion(ipam, etcd_kv):
    make_pool(ipam.client, "v6", "fd00:1::/126", blockSize=126)
    make_pool(ipam.client, "v4", "10.3.0.0/30", blockSize=30)
    make_node(ipam.client, "n1")
    v4, v6 = ipam.auto_assign(num4=1, num6=4, handle_id="dual", host="n1")
    assert v4.ips == ["10.3.0.0"]
    assert v6.check().ips == ["fd00:1::", "fd00:1::1", "fd00:1::2", "fd00:1::3"]
    assert handle_counts(etcd_kv, "dual") == {"10.3.0.0/30": 1, "fd00:1::/126": 4}
    _, none_left = ipam.auto_assign(num6=1, handle_id="x", host="n1")
    assert none_left.partial_error() is not None
    assert "No IPs available in pools: [fd00:1::/126]" in str(none_left.partial_error())
    assert ipam.release_ips(["fd00:1::2", "fd00:1::2"]) == []
    again, _ = ipam.auto_assign(num6=0, num4=0, handle_id="x", host="n1")
    assert again is None
    _, reuse = ipam.auto_assign(num6=1, handle_id="x", host="n1")
    assert reuse.ips == ["fd00:1::2"]
    assert ipam.get_assignment_attributes("fd00:1::2").handle_id == "x"


def test_assign_ip_claims_the_block_and_rejects_duplicates(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.4.0.0/24", blockSize=28)
    make_node(ipam.client, "n1")
    ipam.assign_ip("10.4.0.37", handle_id="fixed", attrs={"node": "n1"}, host="n1")
    assert raw(etcd_kv, "/calico/ipam/v2/host/n1/ipv4/block/10.4.0.32-28") == '{"state":"confirmed","deleted":false}'
    with pytest.raises(AlreadyExists, match="resource already exists: 10.4.0.37 with error: "
                                            "Address already assigned in block"):
        ipam.assign_ip("10.4.0.37", handle_id="other", host="n1")
    assert handle_counts(etcd_kv, "other") is None
    with pytest.raises(IPAMError, match="not in a configured pool"):
        ipam.assign_ip("10.99.0.1", host="n1")
    attrs = ipam.get_assignment_attributes("10.4.0.37")
    assert (attrs.handle_id, attrs.secondary) == ("fixed", {"node": "n1"})
    # The next auto-assign uses the same affine block and skips the taken address.
    got, _ = ipam.auto_assign(num4=6, handle_id="auto", host="n1")
    assert got.ips == [f"10.4.0.{i}" for i in (32, 33, 34, 35, 36, 38)]


def test_release_reports_unallocated_and_guards_handles(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.5.0.0/28", blockSize=28)
    make_node(ipam.client, "n1")
    got, _ = ipam.auto_assign(num4=2, handle_id="h", host="n1")
    assert sorted(ipam.release_ips(["10.5.0.9", "10.77.0.1"])) == ["10.5.0.9", "10.77.0.1"]
    with pytest.raises(Conflict, match="update conflict: 10.5.0.0"):
        ipam.release_ips([ReleaseOptions("10.5.0.0", handle="someone-else")])
    seq = json.loads(raw(etcd_kv, "/calico/ipam/v2/assignment/ipv4/block/10.5.0.0-28"))[
        "sequenceNumberForAllocation"]["1"]
    with pytest.raises(Conflict):
        ipam.release_ips([ReleaseOptions("10.5.0.1", sequence_number=seq + 5)])
    assert ipam.release_ips([ReleaseOptions("10.5.0.1", handle="h", sequence_number=seq)]) == []
    assert handle_counts(etcd_kv, "h") == {"10.5.0.0/28": 1}
    assert ipam.ips_by_handle("h") == ["10.5.0.0"]
    with pytest.raises(NotFound, match="10.5.0.1 with error: IP is unassigned"):
        ipam.get_assignment_attributes("10.5.0.1")
    ipam.release_by_handle("h")
    assert handle_counts(etcd_kv, "h") is None
    with pytest.raises(NotFound, match=r"IPAMHandleKey\(id=h\)"):
        ipam.release_by_handle("h")


def test_release_outside_any_pool_finds_the_block_by_scan(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.6.0.0/28", blockSize=28)
    make_node(ipam.client, "n1")
    ipam.auto_assign(num4=2, handle_id="h", host="n1")
    ipam.client.delete("IPPool", "p")
    assert ipam.release_ips(["10.6.0.1"]) == []
    assert handle_counts(etcd_kv, "h") == {"10.6.0.0/28": 1}


def test_unknown_node_is_an_error(ipam):
    make_pool(ipam.client, "p", "10.7.0.0/24")
    with pytest.raises(NotFound, match=r"Node\(ghost\)"):
        ipam.auto_assign(num4=1, handle_id="h", host="ghost")


def test_per_host_block_limit(ipam):
    make_pool(ipam.client, "p", "10.8.0.0/24", blockSize=30)
    make_node(ipam.client, "n1")
    got, _ = ipam.auto_assign(num4=8, handle_id="h", host="n1", max_blocks_per_host=2)
    ipam.release_ips([got.ips[5]])
    with pytest.raises(BlockLimit, match="^cannot allocate new block due to per host block limit$") as exc:
        ipam.auto_assign(num4=2, handle_id="h2", host="n1", max_blocks_per_host=2)
    # The one free address was taken before the limit stopped the request; it stays
    # recorded under the handle for the caller to release.
    assert exc.value.assignments.ips == [got.ips[5]]
    assert ipam.ips_by_handle("h2") == [got.ips[5]]
    ipam.set_config(IPAMConfig(strict_affinity=True, max_blocks_per_host=1))
    with pytest.raises(BlockLimit):
        ipam.auto_assign(num4=1, handle_id="h", host="n1")


def test_borrowing_and_strict_affinity(ipam, etcd_kv):
    make_pool(ipam.client, "one-block", "10.9.0.0/29", blockSize=29)
    make_node(ipam.client, "owner")
    make_node(ipam.client, "borrower")
    ipam.auto_assign(num4=2, handle_id="o", host="owner")
    got, _ = ipam.auto_assign(num4=1, handle_id="b", attrs={"node": "borrower"}, host="borrower")
    assert got.ips == ["10.9.0.2"]
    block = blocks_of(etcd_kv)["10.9.0.0-29"]
    assert block["affinity"] == "host:owner"
    assert not any("/host/borrower/" in k for k in ipam_keys(etcd_kv))
    ipam.set_config(IPAMConfig(strict_affinity=True))
    denied, _ = ipam.auto_assign(num4=1, handle_id="b2", host="borrower")
    assert str(denied.partial_error()) == ("Assigned 0 out of 1 requested IPv4 addresses; "
                                           "No more free affine blocks and strict affinity enabled")


def test_empty_block_of_another_host_is_reclaimed_after_a_minute(ipam, etcd_kv):
    make_pool(ipam.client, "one-block", "10.9.0.0/29", blockSize=29)
    make_node(ipam.client, "old")
    make_node(ipam.client, "new")
    ipam.auto_assign(num4=1, handle_id="o", host="old")
    ipam.release_by_handle("o")
    ipam.set_config(IPAMConfig(strict_affinity=True))
    early, _ = ipam.auto_assign(num4=1, handle_id="n", host="new")
    assert early.ips == []
    ipam.clock_ns.advance(61)
    later, _ = ipam.auto_assign(num4=1, handle_id="n", host="new")
    assert later.ips == ["10.9.0.0"]
    keys = ipam_keys(etcd_kv)
    assert "/calico/ipam/v2/host/old/ipv4/block/10.9.0.0-29" not in keys
    assert blocks_of(etcd_kv)["10.9.0.0-29"]["affinity"] == "host:new"


def test_pending_affinity_left_by_a_crash_is_completed(ipam, etcd_kv):
    """A client that died after writing its pending affinity but before creating the
    block leaves just the affinity; the next request on that host finishes the claim."""
    make_pool(ipam.client, "p", "10.11.0.0/28", blockSize=28)
    make_node(ipam.client, "n1")
    etcd_kv.create("/calico/ipam/v2/host/n1/ipv4/block/10.11.0.0-28", '{"state":"pending","deleted":false}')
    assert not check(etcd_kv, ipam.clock_ns()).clean
    got, _ = ipam.auto_assign(num4=1, handle_id="h", host="n1")
    assert got.ips == ["10.11.0.0"]
    assert raw(etcd_kv, "/calico/ipam/v2/host/n1/ipv4/block/10.11.0.0-28") == '{"state":"confirmed","deleted":false}'
    assert blocks_of(etcd_kv)["10.11.0.0-28"]["affinity"] == "host:n1"


def test_stale_affinity_for_another_hosts_block_is_dropped(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.12.0.0/27", blockSize=28)
    make_node(ipam.client, "a")
    make_node(ipam.client, "b")
    got, _ = ipam.auto_assign(num4=1, handle_id="ha", host="a")
    block = ipaddress.ip_network(got.networks[0], strict=False)
    stale = f"/calico/ipam/v2/host/b/ipv4/block/{str(block).replace('/', '-')}"
    etcd_kv.create(stale, '{"state":"confirmed","deleted":false}')
    result = check(etcd_kv, ipam.clock_ns())
    assert result.affinities_without_block == [stale]
    mine, _ = ipam.auto_assign(num4=1, handle_id="hb", host="b")
    assert raw(etcd_kv, stale) is None
    assert ipaddress.ip_address(mine.ips[0]) not in block


def test_affinity_released_when_pool_stops_selecting_node(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.13.0.0/28", blockSize=28)
    make_node(ipam.client, "n1", labels={"zone": "a"})
    ipam.auto_assign(num4=1, handle_id="h", host="n1")
    update_pool(ipam.client, "p", nodeSelector="zone == 'b'")
    ipam.release_by_handle("h")
    # The block emptied and its pool no longer selects n1: affinity and block are gone
    # (what is left is the configuration the assignment wrote, as libcalico-go does).
    assert list(ipam_keys(etcd_kv)) == ["/calico/ipam/v2/config"]


def test_cooldown_keeps_released_addresses_out_of_reach(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.14.0.0/30", blockSize=30)
    make_node(ipam.client, "n1")
    ipam.set_config(IPAMConfig(ip_cooldown_seconds=30))
    assert json.loads(raw(etcd_kv, "/calico/ipam/v2/config")) == {
        "auto_allocate_blocks": True, "kubeVirtVMAddressPersistence": "Enabled", "ipCooldownSeconds": 30}
    ipam.auto_assign(num4=4, handle_id="h", host="n1")
    ipam.release_ips(["10.14.0.1"])
    block = blocks_of(etcd_kv)["10.14.0.0-30"]
    assert block["attributes"][block["allocations"][1]] == {"releasedAt": "2025-05-01T10:00:05Z"}
    with pytest.raises(IPInCooldown, match="address 10.14.0.1 is in cooldown"):
        ipam.get_assignment_attributes("10.14.0.1")
    assert ipam.auto_assign(num4=1, handle_id="x", host="n1")[0].ips == []
    assert check(etcd_kv, ipam.clock_ns()).count_mismatches == []
    ipam.clock_ns.advance(31)
    assert ipam.auto_assign(num4=1, handle_id="x", host="n1")[0].ips == ["10.14.0.1"]


def test_reserved_addresses_are_skipped(ipam, etcd_kv):
    make_pool(ipam.client, "p", "10.15.0.0/28", blockSize=28)
    make_node(ipam.client, "n1")
    etcd_kv.put("/calico/resources/v3/projectcalico.org/ipreservations/r1",
                '{"kind":"IPReservation","apiVersion":"projectcalico.org/v3","metadata":{"name":"r1"},'
                '"spec":{"reservedCIDRs":["10.15.0.0/31","10.15.0.5"]}}')
    got, _ = ipam.auto_assign(num4=4, handle_id="h", host="n1")
    assert got.ips == ["10.15.0.2", "10.15.0.3", "10.15.0.4", "10.15.0.6"]


def test_config_validation(ipam):
    with pytest.raises(IPAMError, match="Cannot disable 'StrictAffinity' and 'AutoAllocateBlocks'"):
        ipam.set_config(IPAMConfig(strict_affinity=False, auto_allocate_blocks=False))
    with pytest.raises(IPAMError, match="MaxBlocksPerHost requires StrictAffinity"):
        ipam.set_config(IPAMConfig(max_blocks_per_host=3))
    assert ipam.get_config() == IPAMConfig()


def test_cni_helpers_write_what_the_plugin_writes(ipam, etcd_kv):
    from node.ipam.cni import assign_pod, go_time_string, release_pod

    make_pool(ipam.client, "p", "10.16.0.0/30", blockSize=30)
    make_pool(ipam.client, "p6", "fd00:16::/126", blockSize=126)
    make_node(ipam.client, "n1")
    ips = assign_pod(ipam, "n1", "default", "web-1", "3f2a9c", num6=1)
    assert ips == ["10.16.0.0", "fd00:16::"]
    attrs = ipam.get_assignment_attributes("10.16.0.0")
    assert attrs.handle_id == "k8s-pod-network.3f2a9c"
    assert attrs.secondary == {"namespace": "default", "node": "n1", "pod": "web-1",
                               "timestamp": "2025-05-01 10:00:05.123456789 +0000 UTC"}
    assert go_time_string(1746093605_000000000) == "2025-05-01 10:00:05 +0000 UTC"
    assign_pod(ipam, "n1", "default", "web-2", "aa", num4=3)
    with pytest.raises(PartialAssignment, match="Assigned 0 out of 1 requested IPv4 addresses"):
        assign_pod(ipam, "n1", "default", "web-3", "bb")
    assert handle_counts(etcd_kv, "k8s-pod-network.bb") is None
    release_pod(ipam, "3f2a9c")
    release_pod(ipam, "3f2a9c")  # a repeated DEL is fine
    assert handle_counts(etcd_kv, "k8s-pod-network.3f2a9c") is None
