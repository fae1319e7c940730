"""Deleting an IPPool releases its block affinities first, as libcalico-go does, so no
node keeps a blackhole route or aggregate for a pool that is gone. Real etcd."""
from __future__ import annotations

import ipaddress
import json

import pytest

from ipam_fixtures import Clock, ipam_keys, make_node, make_pool
from node.cli.calicoctl import main as calicoctl
from node.datastore.client import DatastoreClient
from node.ipam.allocator import IPAM
from node.model import ipam as records

pytestmark = pytest.mark.etcd

POOL_KEY = "/calico/resources/v3/projectcalico.org/ippools/"


def block_of(ip: str) -> str:
    """The /28 block (both pools' block size) holding ``ip``."""
    return str(ipaddress.ip_network(f"{ip}/28", strict=False))


@pytest.fixture
def two_hosts(etcd_kv):
    """p1 has a block on n1 (two of three addresses still in use) and an emptied block on
    n2; p2 has a block on n2 that must survive p1's deletion."""
    client = DatastoreClient(etcd_kv)
    make_pool(client, "p1", "10.90.0.0/24", blockSize=28)
    make_pool(client, "p2", "10.91.0.0/24", blockSize=28)
    make_node(client, "n1")
    make_node(client, "n2")
    ipam = IPAM(etcd_kv, clock_ns=Clock())
    v4, _ = ipam.auto_assign(num4=3, handle_id="h1", host="n1", pools=["10.90.0.0/24"])
    ipam.auto_assign(num4=2, handle_id="h2", host="n2", pools=["10.90.0.0/24"])
    ipam.auto_assign(num4=1, handle_id="h3", host="n2", pools=["10.91.0.0/24"])
    n2_p1_block = block_of(ipam.ips_by_handle("h2")[0])
    ipam.release_by_handle("h2")
    ipam.release_ips([v4.ips[2]])
    return ipam, {
        "n1_p1": block_of(v4.ips[0]),
        "n2_p1": n2_p1_block,
        "n2_p2": block_of(ipam.ips_by_handle("h3")[0]),
        "kept": v4.ips[:2],
    }


def delete_with_client(ipam, etcd_clean_config, monkeypatch, capsys):
    ipam.client.delete("IPPool", "p1")


def delete_with_calicoctl(ipam, etcd_clean_config, monkeypatch, capsys):
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_clean_config.etcd_endpoints[0])
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    code = calicoctl(["delete", "ippool", "p1"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (0, "Successfully deleted 1 'IPPool' resource(s)\n", "")


@pytest.mark.parametrize("delete", [delete_with_client, delete_with_calicoctl], ids=["client", "calicoctl"])
def test_pool_delete_releases_its_affinities(two_hosts, etcd_kv, etcd_clean_config, monkeypatch, capsys, delete):
    ipam, blocks = two_hosts
    before = ipam_keys(etcd_kv)
    delete(ipam, etcd_clean_config, monkeypatch, capsys)
    after = ipam_keys(etcd_kv)
    # The emptied block and both of p1's affinities are gone; the block still in use stays,
    # without an affinity; p2's records and the live handles are untouched.
    assert sorted(after) == sorted([
        records.block_key(blocks["n1_p1"]),
        records.block_key(blocks["n2_p2"]),
        records.affinity_key("n2", blocks["n2_p2"]),
        records.handle_key("h1"),
        records.handle_key("h3"),
        records.CONFIG_KEY,  # written by the first assignment, as libcalico-go does
    ])
    for key in (records.block_key(blocks["n2_p2"]), records.affinity_key("n2", blocks["n2_p2"]),
                records.handle_key("h1"), records.handle_key("h3")):
        assert after[key] == before[key]
    kept = json.loads(after[records.block_key(blocks["n1_p1"])])
    was = json.loads(before[records.block_key(blocks["n1_p1"])])
    assert was["affinity"] == "host:n1" and "affinity_claim_time" in was
    assert kept["affinity"] is None and "affinity_claim_time" not in kept
    assert kept["allocations"] == was["allocations"] and kept["unallocated"] == was["unallocated"]
    assert kept["sequenceNumber"] == was["sequenceNumber"] + 1
    assert sorted(ipam.ips_by_handle("h1")) == sorted(blocks["kept"])
    pools, _ = etcd_kv.list(POOL_KEY)
    assert [p.key for p in pools] == [POOL_KEY + "p2"]


def test_pool_is_disabled_then_affinities_released_then_deleted(two_hosts, etcd_kv):
    ipam, blocks = two_hosts
    watch = etcd_kv.watch("/calico/", etcd_kv.current_revision() + 1)
    ipam.client.delete("IPPool", "p1")
    events = []
    for event in watch:
        events.append(event)
        if event.type == "delete" and event.key == POOL_KEY + "p1":
            break
    watch.cancel()
    n1_aff = records.affinity_key("n1", blocks["n1_p1"])
    n2_aff = records.affinity_key("n2", blocks["n2_p1"])
    assert (events[0].type, events[0].key) == ("put", POOL_KEY + "p1")
    assert json.loads(events[0].value)["spec"]["disabled"] is True
    # Each affinity is marked pendingDeletion before its block changes, and deleted after.
    for aff, block in ((n1_aff, blocks["n1_p1"]), (n2_aff, blocks["n2_p1"])):
        touched = [(e.type, e.key) for e in events if e.key in (aff, records.block_key(block))]
        block_event = "put" if aff == n1_aff else "delete"
        assert touched == [("put", aff), (block_event, records.block_key(block)), ("delete", aff)]
        pending = next(e for e in events if e.key == aff and e.type == "put")
        assert json.loads(pending.value)["state"] == "pendingDeletion"
    assert (events[-1].type, events[-1].key) == ("delete", POOL_KEY + "p1")
    assert len(events) == 1 + 6 + 1


def test_deleted_pools_blocks_are_not_assigned_from_and_its_cidr_is_reusable(two_hosts, etcd_kv):
    ipam, blocks = two_hosts
    ipam.client.delete("IPPool", "p1")
    v4, _ = ipam.auto_assign(num4=1, handle_id="h4", host="n1")
    assert v4.ips[0].startswith("10.91.0.")
    # A new pool over the same CIDR starts clean: n1 claims a fresh block in it.
    make_pool(ipam.client, "p1b", "10.90.0.0/24", blockSize=28)
    v4, _ = ipam.auto_assign(num4=1, handle_id="h5", host="n1", pools=["10.90.0.0/24"])
    claimed = block_of(v4.ips[0])
    assert claimed != blocks["n1_p1"]
    assert etcd_kv.get(records.affinity_key("n1", claimed)) is not None
