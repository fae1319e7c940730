"""Tunnel-address reconciliation: one test per rule of the spec's table (§6.2)."""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from ipam_fixtures import Clock, ipam_keys, make_node, make_pool, raw, update_pool
from node.datastore.sources import resource_sources
from node.datastore.syncer import Syncer
from node.errors import NotFound
from node.ipam.allocator import IPAM
from node.ipam.errors import IPAMError
from node.ipam.tunnel import (
    IPIP,
    VXLAN,
    TunnelAddressAllocator,
    TunnelAddressDaemon,
    eligible_pool_cidrs,
    with_tunnel_address,
)

pytestmark = pytest.mark.etcd

NODE_KEY = "/calico/resources/v3/projectcalico.org/nodes/node1"
IPIP_HANDLE = "/calico/ipam/v2/handle/ipip-tunnel-addr-node1"


@pytest.fixture
def ipam(etcd_kv):
    return IPAM(etcd_kv, clock_ns=Clock())


@pytest.fixture
def node(ipam):
    return make_node(ipam.client, "node1", labels={"zone": "a"},
                     spec={"bgp": {"ipv4Address": "192.0.2.10/24"}})


def reconcile(ipam, host_encryption=False):
    TunnelAddressAllocator(ipam, "node1", host_encryption).reconcile()
    return ipam.client.get("Node", "node1")


def stored_node(kv) -> dict:
    return json.loads(raw(kv, NODE_KEY))


def in_net(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def test_ipip_address_assigned_when_a_pool_appears_and_kept_across_runs(ipam, node, etcd_kv):
    assert reconcile(ipam).spec == node.spec  # no pool yet: nothing to do
    make_pool(ipam.client, "ipip", "10.50.0.0/24", ipipMode="Always")
    first = reconcile(ipam)
    addr = first.spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert in_net(addr, "10.50.0.0/24") and "/" not in addr
    assert stored_node(etcd_kv)["spec"]["bgp"] == {"ipv4Address": "192.0.2.10/24", "ipv4IPIPTunnelAddr": addr}
    assert ipam.get_assignment_attributes(addr).secondary == {"node": "node1", "type": "ipipTunnelAddress"}
    assert ipam.get_assignment_attributes(addr).handle_id == "ipip-tunnel-addr-node1"
    again = reconcile(ipam)
    assert again.resource_version == first.resource_version  # unchanged Node is not rewritten
    assert again.spec["bgp"]["ipv4IPIPTunnelAddr"] == addr
    assert json.loads(raw(etcd_kv, IPIP_HANDLE))["block"] == {str(ipaddress.ip_network(f"{addr}/26", strict=False)): 1}


def test_vxlan_v4_and_v6_addresses(ipam, node, etcd_kv):
    make_pool(ipam.client, "vx4", "10.51.0.0/24", vxlanMode="CrossSubnet")
    make_pool(ipam.client, "vx6", "fd00:51::/120", vxlanMode="Always", blockSize=122)
    make_pool(ipam.client, "plain6", "fd00:52::/120", blockSize=122)
    spec = reconcile(ipam).spec
    assert in_net(spec["ipv4VXLANTunnelAddr"], "10.51.0.0/24")
    assert in_net(spec["ipv6VXLANTunnelAddr"], "fd00:51::/120")
    assert "ipv4IPIPTunnelAddr" not in spec["bgp"]
    assert ipam.get_assignment_attributes(spec["ipv6VXLANTunnelAddr"]).secondary == {
        "node": "node1", "type": "vxlanV6TunnelAddress"}
    assert "/calico/ipam/v2/handle/vxlan-v6-tunnel-addr-node1" in ipam_keys(etcd_kv)


def test_address_moves_when_its_pool_is_disabled(ipam, node, etcd_kv):
    make_pool(ipam.client, "a-pool", "10.52.0.0/24", ipipMode="Always")
    make_pool(ipam.client, "b-pool", "10.53.0.0/24", ipipMode="Always")
    old = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert in_net(old, "10.52.0.0/24")  # pools are tried in name order
    update_pool(ipam.client, "a-pool", disabled=True)
    new = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert in_net(new, "10.53.0.0/24")
    update_pool(ipam.client, "a-pool", disabled=False)
    with pytest.raises(NotFound):
        ipam.get_assignment_attributes(old)  # the old address was released
    assert list(json.loads(raw(etcd_kv, IPIP_HANDLE))["block"]) == [
        str(ipaddress.ip_network(f"{new}/26", strict=False))]


def test_address_moves_when_its_pool_no_longer_selects_the_node(ipam, node):
    make_pool(ipam.client, "a-pool", "10.54.0.0/24", ipipMode="Always", nodeSelector="zone == 'a'")
    make_pool(ipam.client, "b-pool", "10.55.0.0/24", ipipMode="Always")
    old = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert in_net(old, "10.54.0.0/24")
    update_pool(ipam.client, "a-pool", nodeSelector="zone == 'b'")
    new = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert in_net(new, "10.55.0.0/24")
    with pytest.raises(NotFound):
        ipam.get_assignment_attributes(old)


def test_address_released_when_no_pool_is_eligible(ipam, node, etcd_kv):
    make_pool(ipam.client, "ipip", "10.56.0.0/24", ipipMode="Always")
    addr = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    update_pool(ipam.client, "ipip", ipipMode="Never")
    spec = reconcile(ipam).spec
    assert spec["bgp"] == {"ipv4Address": "192.0.2.10/24"}
    assert raw(etcd_kv, IPIP_HANDLE) is None
    with pytest.raises(NotFound):
        ipam.get_assignment_attributes(addr)


def test_emptied_bgp_struct_becomes_null(ipam, etcd_kv):
    make_node(ipam.client, "node1")
    make_pool(ipam.client, "ipip", "10.57.0.0/24", ipipMode="Always")
    reconcile(ipam)
    update_pool(ipam.client, "ipip", ipipMode="Never")
    reconcile(ipam)
    assert stored_node(etcd_kv)["spec"] == {}


def test_pool_without_tunnel_use_is_not_eligible(ipam, node):
    make_pool(ipam.client, "pods-only", "10.58.0.0/24", ipipMode="Always", allowedUses=["Workload"])
    assert "ipv4IPIPTunnelAddr" not in reconcile(ipam).spec["bgp"]


def test_legacy_allocation_without_handle_is_taken_over_in_place(ipam, node, etcd_kv):
    make_pool(ipam.client, "ipip", "10.59.0.0/24", ipipMode="Always")
    ipam.assign_ip("10.59.0.7", host="node1")  # written by an old release: no handle, no attributes
    ipam.client.update(node_with(ipam, IPIP, "10.59.0.7"))
    spec = reconcile(ipam).spec
    assert spec["bgp"]["ipv4IPIPTunnelAddr"] == "10.59.0.7"
    attrs = ipam.get_assignment_attributes("10.59.0.7")
    assert (attrs.handle_id, attrs.secondary) == ("ipip-tunnel-addr-node1", {"node": "node1", "type": IPIP})


def test_legacy_address_taken_by_someone_else_meanwhile_gets_a_new_one(etcd_kv, node):
    class Racing(IPAM):
        """Real IPAM; a pod grabs the legacy address right after it is released."""

        def release_ips(self, addresses):
            out = super().release_ips(addresses)
            self.assign_ip("10.60.0.7", handle_id="k8s-pod-network.racer", attrs={"pod": "racer"}, host="node1")
            return out

    ipam = Racing(etcd_kv, clock_ns=Clock())
    make_pool(ipam.client, "ipip", "10.60.0.0/24", ipipMode="Always")
    IPAM(etcd_kv).assign_ip("10.60.0.7", host="node1")
    ipam.client.update(node_with(ipam, IPIP, "10.60.0.7"))
    new = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert new != "10.60.0.7" and in_net(new, "10.60.0.0/24")
    assert ipam.get_assignment_attributes("10.60.0.7").handle_id == "k8s-pod-network.racer"


def test_address_of_a_pod_without_attributes_is_left_alone(ipam, node):
    make_pool(ipam.client, "ipip", "10.61.0.0/24", ipipMode="Always")
    ipam.assign_ip("10.61.0.9", handle_id="k8s-pod-network.old", host="node1")  # handle but no attributes
    ipam.client.update(node_with(ipam, IPIP, "10.61.0.9"))
    new = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert new != "10.61.0.9"
    assert ipam.get_assignment_attributes("10.61.0.9").handle_id == "k8s-pod-network.old"


def test_address_belonging_to_something_else_is_replaced(ipam, node):
    make_pool(ipam.client, "ipip", "10.62.0.0/24", ipipMode="Always")
    ipam.assign_ip("10.62.0.3", handle_id="k8s-pod-network.p", attrs={"node": "node1", "pod": "p"}, host="node1")
    ipam.client.update(node_with(ipam, IPIP, "10.62.0.3"))
    new = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert new != "10.62.0.3"
    assert ipam.get_assignment_attributes("10.62.0.3").secondary == {"node": "node1", "pod": "p"}


def test_unallocated_address_is_replaced_and_stray_handle_cleared(ipam, node, etcd_kv):
    make_pool(ipam.client, "ipip", "10.63.0.0/24", ipipMode="Always")
    first = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    ipam.client.update(node_with(ipam, IPIP, "10.63.0.200"))  # hand-edited to a free address
    new = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    assert new != "10.63.0.200"
    # The handle was released before the new assignment, so it holds exactly one address.
    assert ipam.ips_by_handle("ipip-tunnel-addr-node1") == [new]
    assert sum(json.loads(raw(etcd_kv, IPIP_HANDLE))["block"].values()) == 1
    # The allocation the Node had lost track of went back to the pool.
    assert new != first
    with pytest.raises(NotFound):
        ipam.get_assignment_attributes(first)


def test_unparseable_address_is_an_error(ipam, node, etcd_kv):
    make_pool(ipam.client, "ipip", "10.64.0.0/24", ipipMode="Always")
    doc = stored_node(etcd_kv)
    doc["spec"]["bgp"]["ipv4IPIPTunnelAddr"] = "not-an-ip"
    etcd_kv.put(NODE_KEY, json.dumps(doc))
    with pytest.raises(IPAMError, match="failed to parse the CIDR 'not-an-ip'"):
        reconcile(ipam)


def test_failure_later_in_the_pass_releases_what_this_pass_assigned(ipam, node, etcd_kv):
    make_pool(ipam.client, "ipip", "10.65.0.0/24", ipipMode="Always")
    make_pool(ipam.client, "vxlan", "10.73.0.0/24", vxlanMode="Always")
    doc = stored_node(etcd_kv)
    doc["spec"]["ipv4VXLANTunnelAddr"] = "bogus"  # VXLAN is handled after IPIP and fails
    etcd_kv.put(NODE_KEY, json.dumps(doc))
    with pytest.raises(IPAMError, match="failed to parse the CIDR 'bogus'"):
        reconcile(ipam)
    assert raw(etcd_kv, IPIP_HANDLE) is None
    assert "ipv4IPIPTunnelAddr" not in stored_node(etcd_kv)["spec"]["bgp"]
    assert [k for k in ipam_keys(etcd_kv) if "/handle/" in k] == []


def test_remove_releases_ancient_allocation_without_handle(ipam, node):
    make_pool(ipam.client, "plain", "10.66.0.0/24")
    ipam.assign_ip("10.66.0.4", host="node1")
    ipam.client.update(node_with(ipam, IPIP, "10.66.0.4"))
    assert "ipv4IPIPTunnelAddr" not in reconcile(ipam).spec["bgp"]
    with pytest.raises(NotFound):
        ipam.get_assignment_attributes("10.66.0.4")


def test_remove_releases_our_allocation_whose_handle_record_was_lost(ipam, node, etcd_kv):
    make_pool(ipam.client, "ipip", "10.67.0.0/24", ipipMode="Always")
    addr = reconcile(ipam).spec["bgp"]["ipv4IPIPTunnelAddr"]
    etcd_kv.delete(IPIP_HANDLE)
    update_pool(ipam.client, "ipip", ipipMode="Never")
    reconcile(ipam)
    with pytest.raises(NotFound):
        ipam.get_assignment_attributes(addr)


def test_remove_leaves_a_reused_address_alone_and_warns(ipam, node, caplog):
    make_pool(ipam.client, "plain", "10.68.0.0/24")
    ipam.assign_ip("10.68.0.5", handle_id="k8s-pod-network.q", attrs={"pod": "q"}, host="node1")
    ipam.client.update(node_with(ipam, IPIP, "10.68.0.5"))
    with caplog.at_level(logging.WARNING, logger="node.tunnel_ip_allocator"):
        assert "ipv4IPIPTunnelAddr" not in reconcile(ipam).spec["bgp"]
    assert "IP address has been reused by something else" in caplog.text
    assert ipam.get_assignment_attributes("10.68.0.5").handle_id == "k8s-pod-network.q"


def test_wireguard_addresses_follow_the_public_keys(ipam, etcd_kv):
    make_node(ipam.client, "node1", status={"wireguardPublicKey": "jlkVyQYooZYzI2wFfNhSZez5eWh44yfq1wKVjLvSXgY="})
    make_pool(ipam.client, "v4", "10.69.0.0/24")
    make_pool(ipam.client, "v6", "fd00:69::/120", blockSize=122)
    spec = reconcile(ipam).spec
    assert in_net(spec["wireguard"]["interfaceIPv4Address"], "10.69.0.0/24")
    assert "interfaceIPv6Address" not in spec["wireguard"]
    node = ipam.client.get("Node", "node1")
    node.status = {**node.status, "wireguardPublicKeyV6": "hpUH2mpSYQ4MLPUwP7PKJnaLHQvR3cG8Hqr03c8RqWY="}
    ipam.client.update(node)
    spec = reconcile(ipam).spec
    assert in_net(spec["wireguard"]["interfaceIPv6Address"], "fd00:69::/120")
    assert ipam.get_assignment_attributes(spec["wireguard"]["interfaceIPv6Address"]).secondary == {
        "node": "node1", "type": "wireguardV6TunnelAddress"}
    assert reconcile(ipam, host_encryption=True).spec.get("wireguard") is None
    assert raw(etcd_kv, "/calico/ipam/v2/handle/wireguard-tunnel-addr-node1") is None
    assert raw(etcd_kv, "/calico/ipam/v2/handle/wireguard-v6-tunnel-addr-node1") is None


def test_eligibility_is_pure():
    from node.model import from_dict

    node = from_dict({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                      "metadata": {"name": "n", "labels": {"x": "1"}}, "spec": {}})

    def pool(name, **spec):
        return from_dict({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": name},
                          "spec": spec})

    pools = [pool("a", cidr="10.0.0.0/24", ipipMode="Always"),
             pool("b", cidr="10.1.0.0/24", ipipMode="CrossSubnet", nodeSelector="x == '2'"),
             pool("c", cidr="10.2.0.0/24", ipipMode="Always", disabled=True),
             pool("d", cidr="10.3.0.0/24", ipipMode="Always", allowedUses=["Tunnel"]),
             pool("e", cidr="fd00::/64", vxlanMode="Always"),
             pool("f", cidr="10.4.0.0/24", vxlanMode="Always")]
    assert eligible_pool_cidrs(node, pools, IPIP) == ["10.0.0.0/24", "10.3.0.0/24"]
    assert eligible_pool_cidrs(node, pools, VXLAN) == ["10.4.0.0/24"]
    assert with_tunnel_address({"bgp": {"ipv4IPIPTunnelAddr": "10.0.0.1"}}, IPIP, "") == {}


def node_with(ipam, attr_type, addr):
    node = ipam.client.get("Node", "node1")
    node.spec = with_tunnel_address(node.spec, attr_type, addr)
    return node


def test_daemon_follows_pool_changes(ipam, node, etcd_clean_config):
    from node.datastore.etcd import EtcdKV

    daemon = TunnelAddressDaemon(TunnelAddressAllocator(ipam, "node1"), retry_initial=0.05)
    syncer = Syncer(lambda: EtcdKV(etcd_clean_config), resource_sources(["IPPool", "Node"]), daemon)
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    syncer.start()
    loop.start()

    def ipip_addr():
        bgp = ipam.client.get("Node", "node1").spec.get("bgp") or {}
        return bgp.get("ipv4IPIPTunnelAddr", "")

    def wait_for(pred, what):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            value = ipip_addr()
            if pred(value):
                return value
            time.sleep(0.05)
        pytest.fail(f"daemon did not {what} (IPIP address now {ipip_addr()!r})")

    try:
        make_pool(ipam.client, "a-pool", "10.70.0.0/24", ipipMode="Always")
        first = wait_for(lambda a: in_net(a, "10.70.0.0/24") if a else False, "assign an address")
        make_pool(ipam.client, "b-pool", "10.71.0.0/24", ipipMode="Always")
        update_pool(ipam.client, "a-pool", disabled=True)
        wait_for(lambda a: in_net(a, "10.71.0.0/24") if a else False, "move the address")
        update_pool(ipam.client, "b-pool", ipipMode="Never")
        wait_for(lambda a: a == "", "release the address")
        with pytest.raises(NotFound):
            ipam.get_assignment_attributes(first)
        # The node's own labels decide its pools too.
        update_pool(ipam.client, "b-pool", ipipMode="Always", nodeSelector="zone == 'b'")
        time.sleep(0.3)
        assert ipip_addr() == ""
        n = ipam.client.get("Node", "node1")
        n.metadata["labels"] = {"zone": "b"}
        ipam.client.update(n)
        wait_for(lambda a: in_net(a, "10.71.0.0/24") if a else False, "follow the node's labels")
    finally:
        stop.set()
        syncer.stop(10)
        loop.join(10)


class GatedAllocator(TunnelAddressAllocator):
    """Counts reconciles; ``hold()`` makes the next one wait at its start until released."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.entered = threading.Event()
        self._gate: threading.Event | None = None

    def hold(self) -> threading.Event:
        self._gate = threading.Event()
        self.entered.clear()
        return self._gate

    def reconcile(self) -> None:
        self.calls += 1
        gate, self._gate = self._gate, None
        if gate is not None:
            self.entered.set()
            gate.wait(30)
        super().reconcile()


def _wait(pred, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_daemon_holds_while_out_of_sync_and_reconciles_when_back(etcd, etcd_config, caplog):
    from node.datastore.etcd import EtcdKV
    from node.datastore.syncer import SyncStatus

    caplog.set_level(logging.INFO, logger="node.tunnel_ip_allocator")
    kv = EtcdKV(etcd_config, dial_timeout=2)
    ipam = IPAM(kv, clock_ns=Clock())
    make_node(ipam.client, "node1", spec={"bgp": {"ipv4Address": "192.0.2.10/24"}})
    make_pool(ipam.client, "a-pool", "10.80.0.0/24", ipipMode="Always")
    allocator = GatedAllocator(ipam, "node1")
    daemon = TunnelAddressDaemon(allocator, retry_initial=0.05, retry_max=0.2)
    syncer = Syncer(lambda: EtcdKV(etcd_config, dial_timeout=2), resource_sources(["IPPool", "Node"]), daemon,
                    initial_backoff=0.05, max_backoff=0.5)
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    syncer.start()
    loop.start()

    def ipip_addr() -> str:
        return (ipam.client.get("Node", "node1").spec.get("bgp") or {}).get("ipv4IPIPTunnelAddr", "")

    def failures() -> int:
        return sum("failed to reconcile tunnel address" in r.getMessage() for r in caplog.records)

    try:
        _wait(lambda: ipip_addr() and daemon.reconciles == 1, "the first reconcile")
        assert in_net(ipip_addr(), "10.80.0.0/24")

        # A change starts a reconcile; sync is lost while it runs, so it fails.
        gate = allocator.hold()
        update_pool(ipam.client, "a-pool", disabled=True)
        assert allocator.entered.wait(20)
        etcd.stop()
        assert syncer.wait_for_status(SyncStatus.WAIT_FOR_DATASTORE, 20)
        assert not daemon.in_sync
        gate.set()
        _wait(lambda: failures() == 1, "the reconcile under way to fail")
        # Out of sync: no retry, whatever the retry delay (50 ms here).
        time.sleep(1.5)
        assert allocator.calls == 2 and failures() == 1

        # Back in sync: the pending reconcile runs and releases the address.
        etcd.start()
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 20)
        _wait(lambda: ipip_addr() == "", "the address to be released")
        assert daemon.in_sync and allocator.calls == 3

        # Every return to sync reconciles once, even when nothing changed meanwhile.
        etcd.stop()
        assert syncer.wait_for_status(SyncStatus.WAIT_FOR_DATASTORE, 20)
        time.sleep(0.5)
        assert allocator.calls == 3
        etcd.start()
        assert syncer.wait_for_status(SyncStatus.IN_SYNC, 20)
        _wait(lambda: allocator.calls == 4 and daemon.reconciles == 3, "a reconcile after the resync")
        assert any("sync lost" in r.getMessage() for r in caplog.records)
    finally:
        stop.set()
        syncer.stop(10)
        loop.join(10)
        kv.close()


def test_cli_run_once_and_missing_nodename(etcd_clean_config, ipam, node):
    make_pool(ipam.client, "vx", "10.72.0.0/24", vxlanMode="Always")
    env = {**os.environ, "ETCD_ENDPOINTS": etcd_clean_config.etcd_endpoints[0], "NODENAME": "node1"}
    env.pop("DATASTORE_TYPE", None)
    cmd = [sys.executable, "-m", "node.cli.calico_node", "allocate-tunnel-addrs", "--run-once"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    addr = ipam.client.get("Node", "node1").spec["ipv4VXLANTunnelAddr"]
    assert f"Assigned tunnel address to node IP={addr} type=vxlanTunnelAddress" in done.stderr
    env.pop("NODENAME")
    missing = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "NODENAME environment is not set" in missing.stderr


def test_cli_daemon_assigns_then_stops_on_sigterm(etcd_clean_config, ipam, node):
    import signal

    env = {**os.environ, "ETCD_ENDPOINTS": etcd_clean_config.etcd_endpoints[0], "NODENAME": "node1"}
    env.pop("DATASTORE_TYPE", None)
    proc = subprocess.Popen([sys.executable, "-m", "node.cli.calico_node", "allocate-tunnel-addrs"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        make_pool(ipam.client, "vx", "10.74.0.0/24", vxlanMode="Always")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not ipam.client.get("Node", "node1").spec.get("ipv4VXLANTunnelAddr"):
            time.sleep(0.1)
        assert in_net(ipam.client.get("Node", "node1").spec.get("ipv4VXLANTunnelAddr", "0.0.0.0"), "10.74.0.0/24")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
