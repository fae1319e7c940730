"""Records another writer stored that do not decode, against a real etcd.

A list skips such a record with a warning naming its key and serves the rest; a get of
that key is an error naming it. No role (calicoctl get, ipam check/show, auto-assign,
tunnel addresses) may crash on one.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import subprocess
import sys

import pytest

from ipam_fixtures import Clock, make_node, make_pool, raw
from node.cli.calicoctl import main as calicoctl
from node.datastore.client import DatastoreParseError
from node.ipam import pools as P
from node.ipam.allocator import IPAM
from node.ipam.errors import BadBlock, IPAMError
from node.model import from_dict, ipam as records

pytestmark = pytest.mark.etcd

V3 = "/calico/resources/v3/projectcalico.org/"
CORRUPT = [b'{"metadata": [1]}', b'{"spec": "x"}', b"not json", b"[]"]

# One good resource per kind, and where a foreign record of that kind goes.
GOOD = {
    "IPPool": ({"metadata": {"name": "good"}, "spec": {"cidr": "10.60.0.0/16"}}, V3 + "ippools/bad"),
    "Node": ({"metadata": {"name": "good"}, "spec": {}}, V3 + "nodes/bad"),
    "WorkloadEndpoint": ({"metadata": {"name": "n1-k8s-pod-eth0", "namespace": "ns1"},
                          "spec": {"orchestrator": "k8s", "node": "n1", "pod": "pod", "endpoint": "eth0",
                                   "interfaceName": "cali0"}},
                         V3 + "workloadendpoints/ns1/bad"),
    "IPReservation": ({"metadata": {"name": "good"}, "spec": {"reservedCIDRs": ["10.61.0.0/24"]}},
                      V3 + "ipreservations/bad"),
    "Profile": ({"metadata": {"name": "good"}, "spec": {}}, V3 + "profiles/bad"),
}


def build(kind: str, doc: dict):
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, **doc})


@pytest.fixture
def ctl_env(etcd_clean_config, monkeypatch):
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_clean_config.etcd_endpoints[0])
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)


def ctl(capsys, *argv):
    code = calicoctl(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("value", CORRUPT, ids=["metadata-list", "spec-string", "not-json", "json-array"])
@pytest.mark.parametrize("kind", sorted(GOOD))
def test_list_skips_a_foreign_record_and_get_names_its_key(client, etcd_kv, caplog, kind, value):
    doc, bad_key = GOOD[kind]
    good = client.create(build(kind, doc))
    etcd_kv.put(bad_key, value)
    with caplog.at_level(logging.WARNING):
        listed = client.list(kind, good.namespace)
    assert [r.name for r in listed if r.name != "projectcalico-default-allow"] == [good.name]
    assert any(bad_key in r.getMessage() for r in caplog.records), caplog.text
    namespace = "ns1" if kind == "WorkloadEndpoint" else ""
    with pytest.raises(DatastoreParseError) as info:
        client.get(kind, "bad", namespace)
    assert str(info.value).startswith(f"failed to parse datastore entry key={bad_key}; value={value.decode()}: ")


def test_a_record_claiming_another_kind_is_read_as_the_keys_kind_and_ignored_by_ipam(client, etcd_kv):
    # libcalico-go decodes a value into the type its key names; a pool without a CIDR is
    # then one IPAM cannot use, and it must not stop assignment from the others.
    make_pool(client, "good", "10.71.0.0/24")
    make_node(client, "n1")
    etcd_kv.put(V3 + "ippools/intruder", json.dumps({"kind": "Node", "apiVersion": "projectcalico.org/v3",
                                                     "metadata": {"name": "other"}, "spec": {}}))
    intruder = client.get("IPPool", "intruder")
    assert (intruder.kind, intruder.name, intruder.spec.get("cidr", "")) == ("IPPool", "intruder", "")
    v4, _ = IPAM(etcd_kv).auto_assign(num4=1, handle_id="h", host="n1")
    assert v4.check().ips[0].startswith("10.71.0.")


def test_unreadable_affinity_and_block_keys_are_skipped_by_the_block_affinity_list(client, etcd_kv):
    make_node(client, "n1")
    etcd_kv.put("/calico/ipam/v2/host/n1/ipv4/block/10.62.0.0-26", b'{"state":"confirmed","deleted":false}')
    etcd_kv.put("/calico/ipam/v2/host/n1/ipv4/block/10.62.0.64-26", b"[]")
    etcd_kv.put("/calico/ipam/v2/host/n1/ipv4/block/not-a-cidr", b"{}")  # libcalico-go ignores such keys
    assert [a.name for a in client.list("BlockAffinity")] == ["n1-10-62-0-0-26"]


def test_deleting_a_foreign_record_succeeds_but_a_foreign_pool_cannot_be_retired(client, etcd_kv):
    etcd_kv.put(V3 + "profiles/bad", b"not json")
    gone = client.delete("Profile", "bad")
    assert (gone.kind, gone.name) == ("Profile", "bad")
    assert etcd_kv.get(V3 + "profiles/bad") is None
    # A pool is read (to disable it and find its CIDR) before it is deleted, as in libcalico-go.
    etcd_kv.put(V3 + "ippools/bad", b'{"spec": "x"}')
    with pytest.raises(DatastoreParseError, match=f"key={V3}ippools/bad;"):
        client.delete("IPPool", "bad")
    assert etcd_kv.get(V3 + "ippools/bad") is not None


def test_calicoctl_get_serves_the_rest_and_names_the_bad_key(client, etcd_kv, ctl_env, capsys):
    make_pool(client, "good", "10.63.0.0/16")
    for i, value in enumerate(CORRUPT):
        etcd_kv.put(f"{V3}ippools/bad{i}", value)
    code, out, err = ctl(capsys, "get", "ippools")
    assert code == 0, err
    assert out.splitlines()[1].split() == ["good", "10.63.0.0/16", "all()"]
    assert len(out.splitlines()) == 3  # header, one pool, blank line
    code, out, err = ctl(capsys, "get", "ippool", "bad0", "-o", "yaml")
    assert code == 1
    assert f"failed to parse datastore entry key={V3}ippools/bad0; " in err
    assert "Traceback" not in err


POOL = "10.64.0.0/24"


def free_blocks(etcd_kv, pool) -> list[str]:
    """The blocks of ``pool`` that no stored block occupies yet, in the order node1's
    search visits them."""
    taken = {records.parse_block_key(i.key) for i in etcd_kv.list(records.block_prefix(4))[0]}
    return [str(c) for c in P.random_blocks(pool, "node1") if str(c) not in taken]


def _corrupt_ipam(etcd_kv, pool) -> dict[str, str]:
    """Corrupt records of every IPAM kind, in blocks of ``pool`` nothing uses yet (the
    first ones node1 would try); returns their keys by what they are."""
    free = free_blocks(etcd_kv, pool)
    keys = {
        "block": records.block_key(free[0]),
        "typed-block": records.block_key(free[1]),
        "handle": records.handle_key("k8s-pod-network.broken"),
        "affinity": records.affinity_key("n9", free[2]),
    }
    etcd_kv.put(keys["block"], b'{"metadata": [1]}')
    # Valid JSON whose free list holds a string: Go would refuse it, so must we.
    etcd_kv.put(keys["typed-block"], json.dumps({
        "cidr": free[1], "affinity": None, "allocations": [None] * 64,
        "unallocated": ["a"] + list(range(1, 64)), "attributes": [], "sequenceNumber": 1,
        "sequenceNumberForAllocation": {}, "deleted": False}))
    etcd_kv.put(keys["handle"], b"not json")
    etcd_kv.put(keys["affinity"], b"[]")
    etcd_kv.put(V3 + "ippools/bad", b'{"spec": "x"}')
    etcd_kv.put(V3 + "nodes/bad", b"[]")
    etcd_kv.put(V3 + "workloadendpoints/default/bad", b'{"metadata": [1]}')
    etcd_kv.put(V3 + "ipreservations/bad", b"not json")
    return keys


def test_ipam_check_reports_corrupt_ipam_records_and_skips_corrupt_resources(client, etcd_kv, ctl_env, capsys):
    pool = make_pool(client, "p", POOL)
    make_node(client, "n1")
    ipam = IPAM(etcd_kv)
    ipam.auto_assign(num4=1, handle_id="k8s-pod-network.ok", host="n1")
    keys = _corrupt_ipam(etcd_kv, pool)
    code, out, err = ctl(capsys, "ipam", "check")
    assert code == 1, err  # it found problems
    assert f"  IPAMBlock {keys['block']} is invalid: IPAM block has an invalid cidr ''\n" in out
    assert (f"  IPAMBlock {keys['typed-block']} is invalid: IPAM block value cannot be decoded: "
            "field unallocated[0] = 'a' (expected an integer)\n") in out
    assert "Found 2 invalid IPAMBlocks.\n" in out
    unreadable = sorted([keys["affinity"], keys["handle"]])
    assert (f"  {unreadable[0]} cannot be read.\n  {unreadable[1]} cannot be read.\n"
            "Found 2 unreadable IPAM handles and affinities.\n") in out
    assert "Loading all IPAM pools...\n  10.64.0.0/24\nFound 1 active IP pools.\n" in out
    # The one real allocation has no workload behind it: one leak, plus the four corrupt records.
    assert out.endswith("Check complete; found 5 problems.\n")


def test_ipam_show_skips_corrupt_records(client, etcd_kv, ctl_env, capsys):
    pool = make_pool(client, "p", POOL)
    make_node(client, "n1")
    IPAM(etcd_kv).auto_assign(num4=2, handle_id="k8s-pod-network.ok", host="n1")
    _corrupt_ipam(etcd_kv, pool)
    code, out, err = ctl(capsys, "ipam", "show")
    assert code == 0, err
    assert out.splitlines()[3] == "| IP Pool  | 10.64.0.0/24 |       256 | 2 (1%)     | 254 (99%) |"
    assert len(out.splitlines()) == 5


def test_auto_assign_never_claims_or_uses_a_corrupt_block(client, etcd_kv, caplog):
    pool = make_pool(client, "p", "10.65.0.0/28", blockSize=30)
    make_node(client, "n1")
    walk = [str(c) for c in P.random_blocks(pool, "n1")]
    # The first block of n1's walk does not decode; the second is affine to n1 but its
    # free list names an ordinal that is already allocated.
    bad_key = records.block_key(walk[0])
    etcd_kv.put(bad_key, b"[]")
    hazard_key = records.block_key(walk[1])
    etcd_kv.put(hazard_key, json.dumps({
        "cidr": walk[1], "affinity": "host:n1", "allocations": [0, None, None, None],
        "unallocated": [0, 1, 2, 3], "attributes": [{"handle_id": "someone", "secondary": None}],
        "sequenceNumber": 1, "sequenceNumberForAllocation": {}, "deleted": False}))
    etcd_kv.put(records.affinity_key("n1", walk[1]), b'{"state":"confirmed","deleted":false}')
    before = {k: raw(etcd_kv, k) for k in (bad_key, hazard_key)}
    ipam = IPAM(etcd_kv, clock_ns=Clock())
    with caplog.at_level(logging.WARNING):
        v4, _ = ipam.auto_assign(num4=3, handle_id="h", host="n1")
    assert len(v4.check().ips) == 3
    used = {str(P.block_cidr_for(ipaddress.ip_address(ip), pool)) for ip in v4.ips}
    assert used.isdisjoint(walk[:2])
    assert {k: raw(etcd_kv, k) for k in before} == before
    assert etcd_kv.get(records.affinity_key("n1", walk[0])) is None
    assert any(bad_key in r.getMessage() for r in caplog.records)
    assert any(hazard_key in r.getMessage() and "no addresses will be assigned" in r.getMessage()
               for r in caplog.records)


def test_corrupt_ipam_config_or_handle_is_a_clear_error_naming_the_key(client, etcd_kv):
    make_pool(client, "p", "10.66.0.0/24")
    make_node(client, "n1")
    ipam = IPAM(etcd_kv)
    etcd_kv.put(records.handle_key("k8s-pod-network.x"), b'{"block": [1]}')
    with pytest.raises(DatastoreParseError, match=r"key=/calico/ipam/v2/handle/k8s-pod-network\.x;"):
        ipam.auto_assign(num4=1, handle_id="k8s-pod-network.x", host="n1")
    etcd_kv.put(records.CONFIG_KEY, b'{"strict_affinity": "yes"}')
    with pytest.raises(DatastoreParseError, match="key=/calico/ipam/v2/config; .*strict_affinity"):
        ipam.auto_assign(num4=1, handle_id="k8s-pod-network.y", host="n1")


def test_specific_address_in_a_corrupt_block_is_an_error_naming_the_block(client, etcd_kv):
    make_pool(client, "p", "10.67.0.0/24")
    make_node(client, "n1")
    etcd_kv.put(records.block_key("10.67.0.0/26"), b"not json")
    with pytest.raises(BadBlock, match="IPAM block at /calico/ipam/v2/assignment/ipv4/block/10.67.0.0-26 "):
        IPAM(etcd_kv).assign_ip("10.67.0.5", handle_id="h", host="n1")


def test_allocate_tunnel_addrs_run_once_with_corrupt_records_around(client, etcd_kv, etcd_clean_config):
    make_node(client, "node1")
    pool = make_pool(client, "vx", POOL, vxlanMode="Always")
    keys = _corrupt_ipam(etcd_kv, pool)
    env = {**os.environ, "ETCD_ENDPOINTS": etcd_clean_config.etcd_endpoints[0], "NODENAME": "node1"}
    env.pop("DATASTORE_TYPE", None)
    cmd = [sys.executable, "-m", "node.cli.calico_node", "allocate-tunnel-addrs", "--run-once"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    addr = ipaddress.ip_address(client.get("Node", "node1").spec["ipv4VXLANTunnelAddr"])
    corrupt = [ipaddress.ip_network(records.parse_block_key(keys[k])) for k in ("block", "typed-block")]
    assert addr in ipaddress.ip_network(POOL) and not any(addr in c for c in corrupt)
    assert f"{V3}ippools/bad" in done.stderr


def test_malformed_reservation_entries_are_skipped_and_the_rest_honoured(client, etcd_kv):
    make_pool(client, "p", "10.68.0.0/30", blockSize=30)
    make_node(client, "n1")
    etcd_kv.put(V3 + "ipreservations/r", json.dumps({
        "kind": "IPReservation", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "r"},
        "spec": {"reservedCIDRs": ["not-a-cidr", "10.68.0.0/31"]}}))
    v4, _ = IPAM(etcd_kv).auto_assign(num4=2, handle_id="h", host="n1")
    assert v4.check().ips == ["10.68.0.2", "10.68.0.3"]


def test_a_foreign_pool_with_a_bad_selector_fails_assignment_naming_the_pool(client, etcd_kv):
    make_pool(client, "p", "10.69.0.0/24")
    make_node(client, "n1")
    etcd_kv.put(V3 + "ippools/bad", json.dumps({
        "kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "bad"},
        "spec": {"cidr": "10.70.0.0/24", "nodeSelector": "a =="}}))
    with pytest.raises(IPAMError, match=r"IPPool\(bad\) selects this node and namespace: invalid selector 'a =='"):
        IPAM(etcd_kv).auto_assign(num4=1, handle_id="h", host="n1")
