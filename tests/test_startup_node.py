"""Writing the Node with optimistic concurrency, against a real etcd.

Another writer (allocate-tunnel-addrs, an operator) may change the Node between our
read and our write. ``Racing`` is a real client that lets such a writer run just
before each of its Node writes; startup must re-read, recompute and keep the other
writer's fields. The host's links are plain data here: only the write logic is
under test.
"""
from __future__ import annotations

import ipaddress

import pytest

from node.datastore.client import DatastoreClient
from node.model import API_VERSION, from_dict
from startup.autodetect import HostView
from startup.interfaces import Link
from startup.logs import Fatal
from startup.node import desired_node, ensure_node

LINKS = [Link(2, "eth0", (ipaddress.ip_interface("10.0.0.11/24"),))]
HOST = HostView(LINKS, lambda dest, version: ipaddress.ip_address("10.0.0.11"))


class Racing(DatastoreClient):
    """Runs ``interfere(attempt)`` before each Node create/update it is asked to make."""

    def __init__(self, kv, interfere):
        super().__init__(kv)
        self.interfere = interfere
        self.attempts = 0

    def _race(self, res):
        if res.kind == "Node":
            self.attempts += 1
            self.interfere(self.attempts)

    def create(self, res):
        self._race(res)
        return super().create(res)

    def update(self, res):
        self._race(res)
        return super().update(res)


def node(name, spec):
    return from_dict({"kind": "Node", "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec})


def set_tunnel(other: DatastoreClient, address: str) -> None:
    current = other.get("Node", "node1")
    current.spec["bgp"]["ipv4IPIPTunnelAddr"] = address
    other.update(current)


def test_update_conflict_rereads_and_keeps_the_other_writers_change(etcd_kv):
    other = DatastoreClient(etcd_kv)
    other.create(node("node1", {"bgp": {"ipv4Address": "10.0.0.11/24"}}))
    racing = Racing(etcd_kv, lambda n: set_tunnel(other, "192.168.2.0") if n == 1 else None)
    ensure_node(racing, "node1", {"AS": "64513"}, HOST, None)
    assert racing.attempts == 2
    stored = other.get("Node", "node1")
    assert stored.spec["bgp"] == {"asNumber": 64513, "ipv4Address": "10.0.0.11/24",
                                  "ipv4IPIPTunnelAddr": "192.168.2.0"}


def test_create_race_turns_into_an_update(etcd_kv):
    other = DatastoreClient(etcd_kv)

    def someone_else_creates(n):
        if n == 1:
            other.create(node("node1", {"bgp": {"ipv4Address": "10.0.0.11/24", "ipv4IPIPTunnelAddr": "192.168.3.0"}}))

    initialised = []
    racing = Racing(etcd_kv, someone_else_creates)
    ensure_node(racing, "node1", {"AS": "64600"}, HOST, None, on_create=lambda: initialised.append(True))
    assert racing.attempts == 2 and initialised == [True]
    assert other.get("Node", "node1").spec["bgp"] == {"asNumber": 64600, "ipv4Address": "10.0.0.11/24",
                                                      "ipv4IPIPTunnelAddr": "192.168.3.0"}


def test_no_write_when_nothing_changed(etcd_kv):
    other = DatastoreClient(etcd_kv)
    other.create(node("node1", {"bgp": {"ipv4Address": "10.0.0.11/24", "asNumber": 64513}}))
    racing = Racing(etcd_kv, lambda n: None)
    plan = ensure_node(racing, "node1", {"AS": "64513"}, HOST, None)
    assert racing.attempts == 0 and not plan.needs_write


def test_endless_conflicts_are_fatal(etcd_kv):
    other = DatastoreClient(etcd_kv)
    other.create(node("node1", {"bgp": {"ipv4Address": "10.0.0.11/24"}}))
    racing = Racing(etcd_kv, lambda n: set_tunnel(other, f"192.168.{n}.0"))
    with pytest.raises(Fatal, match="Unable to set node resource configuration"):
        ensure_node(racing, "node1", {"AS": "64513"}, HOST, None)
    assert racing.attempts == 5


def test_ipv6_detection_failure_also_clears_the_autodetected_ipv4_address(etcd_kv):
    # Calico's quirk: with IP=autodetect, any detection failure on a stored Node clears
    # the IPv4 address, even when it was the IPv6 detection that failed.
    client = DatastoreClient(etcd_kv)
    client.create(node("node1", {"bgp": {"ipv4Address": "10.0.0.99/24", "asNumber": 64513}}))
    with pytest.raises(Fatal, match="failed to autodetect an IPv6 address"):
        desired_node(client, "node1", {"IP": "autodetect", "IP6": "autodetect"}, HOST, None)
    assert client.get("Node", "node1").spec["bgp"] == {"asNumber": 64513}


def test_conflict_with_an_explicit_ip_clears_nothing(etcd_kv):
    client = DatastoreClient(etcd_kv)
    stored = client.create(node("node1", {"bgp": {"ipv4Address": "10.0.0.99/24"}}))
    client.create(node("node2", {"bgp": {"ipv4Address": "10.0.0.11/24"}}))
    with pytest.raises(Fatal, match="IPv4 address conflict"):
        desired_node(client, "node1", {"IP": "10.0.0.11"}, HOST, None)
    assert client.get("Node", "node1").resource_version == stored.resource_version
