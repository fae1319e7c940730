"""Calico 3.32's IPAM how-to and resource reference pages, followed step by step as an
operator would, against our IPAM and a real etcd.

Pods are added the way the CNI plugin's IPAM adds them (``node.ipam.cni``: auto-assign
with a ``k8s-pod-network.<id>`` handle and the pod's attributes, the pools of the
``cni.projectcalico.org/ipv4pools`` annotation passed as requested CIDRs, a specific
address through ``assign_ip``, release by handle). Each test names the page it follows
(tigera/docs, ``calico_versioned_docs/version-3.32/...``); where a page is vague the
behaviour is v3.32.1's libcalico-go (``libcalico-go/lib/ipam``).
"""
from __future__ import annotations

import ipaddress
import json

import pytest

from ipam_fixtures import Clock, ipam_keys, make_node, make_pool, raw, update_pool
from node.cli.calicoctl import main
from node.errors import ValidationError
from node.ipam.allocator import IPAM, IPAMConfig
from node.ipam.cni import assign_pod, pod_handle, release_pod
from node.ipam.errors import BlockLimit, IPAMError, NoQualifiedPool, PartialAssignment
from node.ipam.tunnel import TunnelAddressAllocator
from node.model import from_dict

pytestmark = pytest.mark.etcd


@pytest.fixture
def ipam(etcd_kv, etcd_clean_config, monkeypatch):
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_clean_config.etcd_endpoints[0])
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    return IPAM(etcd_kv, clock_ns=Clock())


def calicoctl(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def in_net(ips, cidr: str) -> bool:
    net = ipaddress.ip_network(cidr)
    return bool(ips) and all(ipaddress.ip_address(ip) in net for ip in ips)


def blocks(kv) -> dict[str, dict]:
    return {k.rsplit("/", 1)[1]: json.loads(v) for k, v in ipam_keys(kv).items() if "/assignment/" in k}


def affinities(kv, host: str) -> list[str]:
    return sorted(k.rsplit("/", 1)[1] for k in ipam_keys(kv) if f"/host/{host}/" in k)


def reserve(client, name: str, *cidrs: str):
    return client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "IPReservation",
                                    "metadata": {"name": name}, "spec": {"reservedCIDRs": list(cidrs)}}))


# --------------------------------------------------------------------------------------
# networking/ipam/assign-ip-addresses-topology.mdx and ippools.mdx: pools per node


def test_topology_pools_follow_node_labels(ipam, etcd_kv):
    """Two pools, each selecting the nodes of one zone: a node's pods take addresses only
    from its zone's pool; a node no pool selects gets none; relabelling a node moves its
    new pods to the other pool, and its emptied block of the old pool is given up."""
    make_pool(ipam.client, "pool-zone-1", "192.168.0.0/24", blockSize=26, nodeSelector='zone == "zone-1"')
    make_pool(ipam.client, "pool-zone-2", "192.168.1.0/24", blockSize=26, nodeSelector='zone == "zone-2"')
    make_node(ipam.client, "kube-node-1", labels={"zone": "zone-1"})
    make_node(ipam.client, "kube-node-2", labels={"zone": "zone-2"})
    make_node(ipam.client, "kube-node-3")
    assert in_net(assign_pod(ipam, "kube-node-1", "default", "a", "c-a"), "192.168.0.0/24")
    assert in_net(assign_pod(ipam, "kube-node-2", "default", "b", "c-b"), "192.168.1.0/24")
    with pytest.raises(IPAMError, match="^no configured Calico pools for node kube-node-3$"):
        assign_pod(ipam, "kube-node-3", "default", "c", "c-c")
    # The failed request left nothing behind.
    assert raw(etcd_kv, "/calico/ipam/v2/handle/" + pod_handle("c-c")) is None

    node = ipam.client.get("Node", "kube-node-1")
    doc = node.to_dict()
    doc["metadata"]["labels"] = {"zone": "zone-2"}
    ipam.client.update(from_dict(doc))
    old_block = affinities(etcd_kv, "kube-node-1")
    assert len(old_block) == 1 and old_block[0].startswith("192.168.0.")
    # The old pod keeps its address; the next pod comes from zone-2's pool.
    assert in_net(assign_pod(ipam, "kube-node-1", "default", "d", "c-d"), "192.168.1.0/24")
    assert old_block[0] in affinities(etcd_kv, "kube-node-1")  # not empty yet: kept
    release_pod(ipam, "c-a")
    # Releasing the last address of a block whose pool no longer selects the node
    # releases the block (libcalico-go's ensureConsistentAffinity).
    assert old_block[0] not in affinities(etcd_kv, "kube-node-1")
    assert old_block[0] not in blocks(etcd_kv)


def test_requested_pools_bypass_node_selector_but_not_disabled(ipam):
    """legacy-firewalls.mdx: the ipv4pools annotation restricts a pod to the named pools;
    libcalico-go uses requested pools whatever their node selector or assignment mode,
    but a disabled pool cannot be requested."""
    make_pool(ipam.client, "default-pool", "10.60.0.0/24", blockSize=28)
    make_pool(ipam.client, "firewall-a", "10.61.0.0/24", blockSize=28, nodeSelector="!all()")
    make_pool(ipam.client, "manual", "10.62.0.0/24", blockSize=28, assignmentMode="Manual")
    make_pool(ipam.client, "off", "10.63.0.0/24", blockSize=28, disabled=True)
    make_node(ipam.client, "n1")
    assert in_net(assign_pod(ipam, "n1", "default", "a", "a"), "10.60.0.0/24")
    assert in_net(assign_pod(ipam, "n1", "default", "b", "b", pools=["10.61.0.0/24"]), "10.61.0.0/24")
    assert in_net(assign_pod(ipam, "n1", "default", "c", "c", pools=["10.62.0.0/24"]), "10.62.0.0/24")
    with pytest.raises(IPAMError, match=r"^the given pool \(10.63.0.0/24\) does not exist, or is not enabled$"):
        assign_pod(ipam, "n1", "default", "d", "d", pools=["10.63.0.0/24"])
    # Without the annotation, only the Automatic pool that selects the node is used.
    for i in range(5):
        assert in_net(assign_pod(ipam, "n1", "default", f"e{i}", f"e{i}"), "10.60.0.0/24")


# --------------------------------------------------------------------------------------
# reference/resources/ippool.mdx: assignmentMode, allowedUses, disabled, blockSize


def test_manual_pool_is_never_chosen_automatically(ipam):
    """ippool.mdx, Assignment Mode: a Manual pool is used only when asked for."""
    make_pool(ipam.client, "manual", "10.64.0.0/24", assignmentMode="Manual")
    make_node(ipam.client, "n1")
    with pytest.raises(IPAMError, match="^no configured Calico pools for node n1$"):
        assign_pod(ipam, "n1", "default", "a", "a")
    assert in_net(assign_pod(ipam, "n1", "default", "a", "a", pools=["10.64.0.0/24"]), "10.64.0.0/24")
    # A specific address may come from it too.
    ipam.assign_ip("10.64.0.200", handle_id=pod_handle("b"), attrs={"node": "n1"}, host="n1")
    assert ipam.get_assignment_attributes("10.64.0.200").handle_id == pod_handle("b")


def test_allowed_uses_split_workloads_tunnels_and_load_balancers(ipam, etcd_kv):
    """ippool.mdx, Allowed uses: workloads take addresses only from Workload pools,
    tunnel addresses only from Tunnel pools, and a LoadBalancer pool serves neither."""
    make_pool(ipam.client, "lb", "10.65.0.0/24", allowedUses=["LoadBalancer"])
    make_node(ipam.client, "node1", spec={"bgp": {"ipv4Address": "192.0.2.1/24"}})
    with pytest.raises(NoQualifiedPool,
                       match=r"^cannot find a qualified ippool, no pools match the required use \(Workload\)$"):
        assign_pod(ipam, "node1", "default", "a", "a")
    make_pool(ipam.client, "tunnels", "10.66.0.0/28", blockSize=28, allowedUses=["Tunnel"], ipipMode="Always")
    make_pool(ipam.client, "workloads", "10.67.0.0/24", allowedUses=["Workload"], ipipMode="Always")
    for i in range(3):
        assert in_net(assign_pod(ipam, "node1", "default", f"p{i}", f"p{i}"), "10.67.0.0/24")
    TunnelAddressAllocator(ipam, "node1").reconcile()
    tunnel = ipam.client.get("Node", "node1").spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert in_net([tunnel], "10.66.0.0/28")
    # A LoadBalancer address is affine to the virtual load-balancer host, not a node.
    v4, _ = ipam.auto_assign(num4=1, handle_id="svc", host="load-balancer", intended_use="LoadBalancer")
    assert in_net(v4.ips, "10.65.0.0/24")
    assert not [k for k in ipam_keys(etcd_kv) if k.startswith("/calico/ipam/v2/host/") and "10.65.0." in k]
    assert any(k.startswith("/calico/ipam/v2/virtual/load-balancer/ipv4/block/10.65.0.")
               for k in ipam_keys(etcd_kv))


def test_disabled_pool_keeps_existing_addresses_and_assigns_no_more(ipam):
    """ippool.mdx (disabled) and migrate-pools.mdx: disabling a pool stops new
    assignments from it, automatic or specific; what was assigned stays."""
    make_pool(ipam.client, "old", "10.68.0.0/24", blockSize=28)
    make_node(ipam.client, "n1")
    [ip] = assign_pod(ipam, "n1", "default", "a", "a")
    update_pool(ipam.client, "old", disabled=True)
    with pytest.raises(NoQualifiedPool, match="^cannot find a qualified ippool$"):
        assign_pod(ipam, "n1", "default", "b", "b")
    with pytest.raises(IPAMError, match="^The provided IP address is not in a configured pool$"):
        ipam.assign_ip("10.68.0.99", handle_id=pod_handle("c"), host="n1")
    assert ipam.ips_by_handle(pod_handle("a")) == [ip]


def test_block_size_is_fixed_at_creation(ipam):
    """ippool.mdx: blockSize can only be set when the pool is created."""
    make_pool(ipam.client, "p", "10.69.0.0/24", blockSize=26)
    with pytest.raises(ValidationError, match="IPPool BlockSize cannot be modified"):
        update_pool(ipam.client, "p", blockSize=28)


# --------------------------------------------------------------------------------------
# reference/resources/ipreservation.mdx


def test_reserved_addresses_are_skipped_by_automatic_assignment(ipam, etcd_kv):
    """Reserved addresses are never handed out automatically; a block that is wholly
    reserved is not claimed; a reservation does not release what is already in use."""
    make_pool(ipam.client, "p", "10.70.0.0/29", blockSize=30)
    make_node(ipam.client, "n1")
    ipam.assign_ip("10.70.0.5", handle_id=pod_handle("early"), attrs={"node": "n1"}, host="n1")
    reserve(ipam.client, "r1", "10.70.0.0/30", "10.70.0.4", "10.70.0.5")
    got = assign_pod(ipam, "n1", "default", "a", "a", num4=2)
    assert sorted(got) == ["10.70.0.6", "10.70.0.7"]
    assert sorted(blocks(etcd_kv)) == ["10.70.0.4-30"]  # the reserved /30 was never claimed
    assert ipam.ips_by_handle(pod_handle("early")) == ["10.70.0.5"]
    with pytest.raises(PartialAssignment, match="^Assigned 0 out of 1 requested IPv4 addresses"):
        assign_pod(ipam, "n1", "default", "b", "b")


def test_specific_ip_requests_override_reservations(ipam):
    """The reference page: annotations that force a specific address take precedence over
    IPReservations (v3.32.1's AssignIP does not consult them)."""
    make_pool(ipam.client, "p", "10.71.0.0/24", blockSize=28)
    make_node(ipam.client, "n1")
    reserve(ipam.client, "r1", "10.71.0.10")
    ipam.assign_ip("10.71.0.10", handle_id=pod_handle("pinned"), attrs={"node": "n1"}, host="n1")
    assert ipam.get_assignment_attributes("10.71.0.10").handle_id == pod_handle("pinned")


# --------------------------------------------------------------------------------------
# networking/ipam/migrate-pools.mdx


@pytest.mark.parametrize("how", ["disabled", "nodeSelector"])
def test_migrate_from_one_pool_to_another(ipam, etcd_kv, capsys, how):
    """Add the new pool, disable the old one (manifest: ``disabled: true``; operator:
    ``nodeSelector: "!all()"``), delete the old pods, check new pods use the new pool,
    delete the old pool: its blocks and affinities are gone, the new pool's remain."""
    make_pool(ipam.client, "default-ipv4-ippool", "192.168.0.0/16", ipipMode="Always", natOutgoing=True)
    make_node(ipam.client, "vagrant")
    [old_ip] = assign_pod(ipam, "vagrant", "kube-system", "coredns", "coredns-1")
    assert in_net([old_ip], "192.168.0.0/16")
    make_pool(ipam.client, "new-pool", "10.0.0.0/16", ipipMode="Always", natOutgoing=True)
    if how == "disabled":
        update_pool(ipam.client, "default-ipv4-ippool", disabled=True)
    else:
        update_pool(ipam.client, "default-ipv4-ippool", nodeSelector="!all()")
    # Existing pods are not affected. (Like libcalico-go, ``ipam show --ip`` only looks
    # in enabled pools, so the handle is the way to see it.)
    assert ipam.ips_by_handle(pod_handle("coredns-1")) == [old_ip]
    release_pod(ipam, "coredns-1")
    [new_ip] = assign_pod(ipam, "vagrant", "ippool-test", "nginx", "nginx-1")
    assert in_net([new_ip], "10.0.0.0/16")
    ipam.client.delete("IPPool", "default-ipv4-ippool")
    assert [k for k in ipam_keys(etcd_kv) if "192.168." in k] == []
    assert [b for b in blocks(etcd_kv)] == [str(ipaddress.ip_network(f"{new_ip}/26", strict=False)).replace("/", "-")]
    code, out, err = calicoctl(capsys, "ipam", "show")
    assert (code, err) == (0, "")
    assert "192.168.0.0/16" not in out
    assert "| IP Pool  | 10.0.0.0/16 |     65536 | 1 (0%)     | 65535 (100%) |" in out


# --------------------------------------------------------------------------------------
# networking/ipam/change-block-size.mdx


def test_change_block_size_by_way_of_a_temporary_pool(ipam, etcd_kv):
    """Create a temporary pool, disable the default pool, delete its pods, delete it,
    recreate it with the new block size, disable the temporary pool, move the pods back,
    delete the temporary pool."""
    make_pool(ipam.client, "default-ipv4-ippool", "10.72.0.0/24", blockSize=26)
    make_node(ipam.client, "n1")
    [first] = assign_pod(ipam, "n1", "default", "a", "a")
    make_pool(ipam.client, "temporary-pool", "10.73.0.0/24")
    update_pool(ipam.client, "default-ipv4-ippool", disabled=True)
    release_pod(ipam, "a")
    [tmp] = assign_pod(ipam, "n1", "default", "a2", "a2")
    assert in_net([tmp], "10.73.0.0/24")
    ipam.client.delete("IPPool", "default-ipv4-ippool")
    assert not any(k.startswith("10.72.") for k in blocks(etcd_kv))
    make_pool(ipam.client, "default-ipv4-ippool", "10.72.0.0/24", blockSize=28)
    update_pool(ipam.client, "temporary-pool", disabled=True)
    release_pod(ipam, "a2")
    [again] = assign_pod(ipam, "n1", "default", "a3", "a3")
    assert in_net([again], "10.72.0.0/24")
    assert [c for c in blocks(etcd_kv) if c.startswith("10.72.")] == [
        str(ipaddress.ip_network(f"{again}/28", strict=False)).replace("/", "-")]
    ipam.client.delete("IPPool", "temporary-pool")
    assert sorted(blocks(etcd_kv)) == [str(ipaddress.ip_network(f"{again}/28", strict=False)).replace("/", "-")]
    assert first  # the original pod's address is simply gone with its pool


def test_new_pool_refused_over_blocks_of_another_size(ipam):
    """change-block-size.mdx warns that the old pool's blocks must be gone before the
    pool is recreated with another block size; libcalico-go refuses the create."""
    make_pool(ipam.client, "default-ipv4-ippool", "10.74.0.0/24", blockSize=26)
    make_node(ipam.client, "n1")
    assign_pod(ipam, "n1", "default", "a", "a")
    update_pool(ipam.client, "default-ipv4-ippool", disabled=True)
    # Deleting the pool strips the affinity but the in-use block stays.
    ipam.client.delete("IPPool", "default-ipv4-ippool")
    with pytest.raises(ValidationError, match="blocksSize conflicts with existing allocations"):
        make_pool(ipam.client, "default-ipv4-ippool", "10.74.0.0/24", blockSize=28)


# --------------------------------------------------------------------------------------
# strictAffinity, maxBlocksPerHost (calicoctl ipam configure; reference/resources/ipamconfig.mdx)


def test_borrowing_and_strict_affinity(ipam, etcd_kv, capsys):
    """ippool.mdx (Block sizes): a host that cannot get a block of its own borrows from
    another host's block; ``calicoctl ipam configure --strictaffinity=true`` stops it."""
    make_pool(ipam.client, "p", "10.75.0.0/29", blockSize=29)
    make_node(ipam.client, "n1")
    make_node(ipam.client, "n2")
    assign_pod(ipam, "n1", "default", "a", "a")
    [borrowed] = assign_pod(ipam, "n2", "default", "b", "b")
    assert in_net([borrowed], "10.75.0.0/29") and affinities(etcd_kv, "n2") == []
    code, out, err = calicoctl(capsys, "ipam", "show", "--show-borrowed")
    assert code == 0 and borrowed in out and "n2" in out
    code, out, err = calicoctl(capsys, "ipam", "configure", "--strictaffinity=true")
    assert (code, out, err) == (0, "Successfully set StrictAffinity to: true\n", "")
    with pytest.raises(PartialAssignment, match="No more free affine blocks and strict affinity enabled"):
        assign_pod(ipam, "n2", "default", "c", "c")
    # The block's owner still uses it.
    assert in_net(assign_pod(ipam, "n1", "default", "d", "d"), "10.75.0.0/29")


def test_max_blocks_per_host(ipam, capsys):
    """``ipam configure --max-blocks-per-host`` needs strict affinity, then caps the
    blocks a host may claim."""
    make_pool(ipam.client, "p", "10.76.0.0/24", blockSize=30)
    make_node(ipam.client, "n1")
    code, out, err = calicoctl(capsys, "ipam", "configure", "--max-blocks-per-host=1")
    assert (code, err) == (1, "error: MaxBlocksPerHost requires StrictAffinity to be enabled\n")
    code, out, err = calicoctl(capsys, "ipam", "configure", "--strictaffinity=true", "--max-blocks-per-host=1")
    assert code == 0
    assert ipam.get_config() == IPAMConfig(strict_affinity=True, max_blocks_per_host=1)
    assert len(assign_pod(ipam, "n1", "default", "a", "a", num4=4)) == 4
    with pytest.raises(BlockLimit, match="^cannot allocate new block due to per host block limit$"):
        assign_pod(ipam, "n1", "default", "b", "b")
    code, out, err = calicoctl(capsys, "ipam", "show", "--show-configuration")
    assert "| StrictAffinity               | true " in out
    assert "| MaxBlocksPerHost             |" in out and " 1 |" in out


# --------------------------------------------------------------------------------------
# networking/ipam/ipv6.mdx: dual stack and IPv6 only


def test_dual_stack_and_ipv6_only(ipam, etcd_kv, capsys):
    """With ``assign_ipv4`` and ``assign_ipv6`` each pod gets one address of each family
    from the default pools (blocks /26 and /122); IPv6 only needs no IPv4 pool."""
    make_pool(ipam.client, "default-ipv6-ippool", "fd5f:2b12:a3c4::/48")
    make_node(ipam.client, "n1")
    [v6only] = assign_pod(ipam, "n1", "default", "a", "a", num4=0, num6=1)
    assert in_net([v6only], "fd5f:2b12:a3c4::/48")
    assert [c for c in blocks(etcd_kv)][0].endswith("-122")
    with pytest.raises(NoQualifiedPool):
        assign_pod(ipam, "n1", "default", "b", "b", num4=1, num6=1)
    make_pool(ipam.client, "default-ipv4-ippool", "192.168.0.0/16")
    v4, v6 = assign_pod(ipam, "n1", "default", "c", "c", num4=1, num6=1)
    assert in_net([v4], "192.168.0.0/16") and in_net([v6], "fd5f:2b12:a3c4::/48")
    assert sorted(ipam.ips_by_handle(pod_handle("c"))) == sorted([v4, v6])
    code, out, err = calicoctl(capsys, "ipam", "show", "--ip", v6)
    assert (code, err) == (0, "")
    assert out.startswith(f"IP {v6} is in use\nHandle ID: {pod_handle('c')}\n")
    release_pod(ipam, "c")
    code, out, err = calicoctl(capsys, "ipam", "show", "--ip", v4)
    assert out == f"{v4} is not assigned\n"


# --------------------------------------------------------------------------------------
# networking/ipam/use-specific-ip.mdx and the calicoctl ipam release reference


def test_specific_ip_and_release(ipam, capsys):
    """A pod asking for an address (``cni.projectcalico.org/ipAddrs``) gets exactly it,
    or an error when it is taken or outside every pool; ``calicoctl ipam release``
    frees an address by hand."""
    make_pool(ipam.client, "p", "10.77.0.0/24")
    make_node(ipam.client, "n1")
    ipam.assign_ip("10.77.0.42", handle_id=pod_handle("a"), attrs={"node": "n1", "pod": "a"}, host="n1")
    with pytest.raises(Exception, match="already"):
        ipam.assign_ip("10.77.0.42", handle_id=pod_handle("b"), host="n1")
    with pytest.raises(IPAMError, match="^The provided IP address is not in a configured pool$"):
        ipam.assign_ip("10.99.0.1", handle_id=pod_handle("b"), host="n1")
    code, out, err = calicoctl(capsys, "ipam", "release", "--ip=10.77.0.42")
    assert (code, out, err) == (0, "Successfully released IP address 10.77.0.42\n", "")
    code, out, err = calicoctl(capsys, "ipam", "release", "--ip=10.77.0.42")
    assert (code, err) == (1, "IP address 10.77.0.42 is not assigned\n")


# --------------------------------------------------------------------------------------
# reference/resources/ipamconfig.mdx: the configuration every assignment reads


def test_first_assignment_writes_the_default_ipam_configuration(ipam, etcd_kv, capsys):
    """The page gives the defaults (strictAffinity false, KubeVirt persistence Enabled).
    v3.32.1's GetIPAMConfig, which every assignment calls, creates the record with them
    when there is none, so a cluster that has assigned an address has one; releases and
    look-ups do not read it, and so write nothing."""
    make_pool(ipam.client, "p", "10.78.0.0/24")
    make_node(ipam.client, "n1")
    ipam.release_ips(["10.78.0.1"])
    calicoctl(capsys, "ipam", "show", "--ip", "10.78.0.1")
    assert raw(etcd_kv, "/calico/ipam/v2/config") is None
    assign_pod(ipam, "n1", "default", "a", "a")
    assert json.loads(raw(etcd_kv, "/calico/ipam/v2/config")) == {
        "auto_allocate_blocks": True, "kubeVirtVMAddressPersistence": "Enabled"}
    # An existing configuration is read, never replaced.
    etcd_kv.put("/calico/ipam/v2/config", '{"strict_affinity":true,"auto_allocate_blocks":true}')
    ipam.assign_ip("10.78.0.200", handle_id=pod_handle("b"), attrs={"node": "n1"}, host="n1")
    assert json.loads(raw(etcd_kv, "/calico/ipam/v2/config")) == {"strict_affinity": True,
                                                                    "auto_allocate_blocks": True}
    # `ipam show --show-configuration` stays a pure read (a deliberate difference: the
    # README lists it).
    etcd_kv.delete("/calico/ipam/v2/config")
    code, out, err = calicoctl(capsys, "ipam", "show", "--show-configuration")
    assert code == 0 and "| StrictAffinity               | false " in out
    assert raw(etcd_kv, "/calico/ipam/v2/config") is None
