"""Concurrency: several processes, one datastore (a real etcd, or the Kubernetes datastore
on a stand-in API server), one small pool.

Six spawned workers on three hosts (two per host, so both same-host and cross-host
races happen) assign and release for a few seconds from a 64-address pool cut into
8-address blocks, so blocks are claimed concurrently, fill up, get borrowed from and
run out. Afterwards the datastore must agree exactly with what the workers believe
they hold, and ``ipam check`` must find nothing wrong.
"""
from __future__ import annotations

import json
import multiprocessing
import queue

import pytest

from ipam_fixtures import ipam_keys, make_node, make_pool
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from ipam_workers import crash_worker, stress_worker
from node.datastore.client import DatastoreClient
from node.ipam.allocator import IPAM
from node.ipam.block import Block
from node.ipam.check import check, render

pytestmark = pytest.mark.etcd

WORKERS = 6
# The configuration the first assignment writes (libcalico-go's GetIPAMConfig).
CONFIG_DEFAULTS = '{"auto_allocate_blocks":true,"kubeVirtVMAddressPersistence":"Enabled"}'
HOSTS = 3
DURATION = 8.0


def _run(ctx, target, args, timeout=120):
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        pytest.fail(f"{target.__name__} did not finish")
    return proc.exitcode


@pytest.fixture(params=["etcd", "kdd"])
def datastore(request):
    """(kv, what the workers connect to, add_node): a real etcd, or the Kubernetes datastore
    on a stand-in API server (there Nodes are Kubernetes Nodes, made through the API)."""
    if request.param == "etcd":
        kv = request.getfixturevalue("etcd_kv")
        config = request.getfixturevalue("etcd_clean_config")
        yield kv, config.etcd_endpoints[0], lambda name: make_node(DatastoreClient(kv), name)
        return
    from kdd_fixtures import k8s_node, namespace

    kube = request.getfixturevalue("kube")
    kv = request.getfixturevalue("kube_kv")
    namespace(kube, "stress")
    yield kv, request.getfixturevalue("kube_config"), lambda name: k8s_node(kube, name)


def test_concurrent_assign_and_release_keep_ipam_consistent(datastore):
    etcd_kv, target, add_node = datastore
    client = DatastoreClient(etcd_kv)
    make_pool(client, "small", "10.200.0.0/26", blockSize=29)
    for h in range(HOSTS):
        add_node(f"host{h}")
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=stress_worker, args=(target, w, f"host{w % HOSTS}", DURATION, 1000 + w, results))
             for w in range(WORKERS)]
    for p in procs:
        p.start()
    reports = {}
    try:
        for _ in procs:
            worker, held, stats = results.get(timeout=DURATION + 120)
            reports[worker] = (held, stats)
    except queue.Empty:
        pytest.fail(f"only {len(reports)} of {WORKERS} workers reported")
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    errors = [e for _, stats in reports.values() for e in stats["errors"]]
    assert not errors, errors[0]
    assigned = sum(stats["assigned"] for _, stats in reports.values())
    assert assigned >= 60, f"too little traffic to prove anything ({assigned} assignments)"
    print({w: {k: v for k, v in s.items() if k != "errors"} for w, (_, s) in reports.items()})
    assert sum(stats["exhausted"] for _, stats in reports.values()) > 0, "the pool never ran out"

    # What the workers hold: no address twice, and each under exactly one handle.
    believed: dict[str, str] = {}
    for held, _ in reports.values():
        for handle, ips in held.items():
            for ip in ips:
                assert ip not in believed, f"{ip} handed out to {believed[ip]} and {handle}"
                believed[ip] = handle

    # What the blocks say must be exactly that: nothing lost, nothing leaked.
    recorded: dict[str, str] = {}
    blocks = {}
    for key, value in ipam_keys(etcd_kv).items():
        if "/assignment/" not in key:
            continue
        block = Block.decode(value)
        blocks[str(block.cidr)] = block
        for ordinal in range(block.size):
            attr = block.attribute_of(ordinal)
            if attr is not None:
                assert attr.released_at is None
                recorded[str(block.ordinal_to_ip(ordinal))] = attr.handle_id
        assert block.affinity is None or block.affinity.startswith("host:host")
    assert recorded == believed

    # Handle counts equal the allocations, per block.
    for key, value in ipam_keys(etcd_kv).items():
        if "/handle/" in key:
            handle = key.rsplit("/", 1)[1]
            counts = json.loads(value)["block"]
            real = {cidr: b.count_by_handle().get(handle, 0) for cidr, b in blocks.items()}
            assert counts == {c: n for c, n in real.items() if n}, handle
    result = check(etcd_kv, IPAM(etcd_kv).clock_ns())
    assert result.clean, render(result, show_problem_ips=True)


def test_crash_between_handle_and_block_write_is_reported(etcd_kv, etcd_clean_config):
    client = DatastoreClient(etcd_kv)
    make_pool(client, "p", "10.201.0.0/28", blockSize=28)
    make_node(client, "n1")
    endpoint = etcd_clean_config.etcd_endpoints[0]
    ctx = multiprocessing.get_context("spawn")
    # The first block update is the assignment's write (creating the block is a create).
    assert _run(ctx, crash_worker, (endpoint, "assign", "update", "/assignment/")) == 17
    keys = ipam_keys(etcd_kv)
    assert json.loads(keys["/calico/ipam/v2/handle/k8s-pod-network.crash"])["block"] == {"10.201.0.0/28": 1}
    result = check(etcd_kv, 0)
    assert [(m.handle, m.block, m.recorded, m.actual) for m in result.count_mismatches] == [
        ("k8s-pod-network.crash", "10.201.0.0/28", 1, 0)]
    assert [h for h, _ in result.leaked_handles] == ["k8s-pod-network.crash"]
    text = render(result, show_problem_ips=True)
    assert ("  handle k8s-pod-network.crash records 1 addresses in block 10.201.0.0/28, the block has 0.\n"
            in text)
    assert text.endswith("Check complete; found 2 problems.\n")
    # The block itself is intact and usable: the next assignment works and is counted.
    ipam = IPAM(etcd_kv)
    got, _ = ipam.auto_assign(num4=1, handle_id="k8s-pod-network.next", host="n1")
    assert got.ips == ["10.201.0.0"]


def test_crash_between_block_and_handle_write_on_release_is_reported(etcd_kv, etcd_clean_config):
    client = DatastoreClient(etcd_kv)
    make_pool(client, "p", "10.202.0.0/28", blockSize=28)
    make_node(client, "n1")
    ipam = IPAM(etcd_kv)
    ipam.auto_assign(num4=1, handle_id="k8s-pod-network.crash", attrs={"node": "n1"}, host="n1")
    endpoint = etcd_clean_config.etcd_endpoints[0]
    ctx = multiprocessing.get_context("spawn")
    assert _run(ctx, crash_worker, (endpoint, "release", "delete", "/handle/")) == 17
    result = check(etcd_kv, 0)
    assert result.leaked_ips == [] and [h for h, _ in result.leaked_handles] == ["k8s-pod-network.crash"]
    assert len(result.count_mismatches) == 1


def test_crash_before_the_block_is_created_is_repaired(etcd_kv, etcd_clean_config):
    client = DatastoreClient(etcd_kv)
    make_pool(client, "p", "10.203.0.0/28", blockSize=28)
    make_node(client, "n1")
    endpoint = etcd_clean_config.etcd_endpoints[0]
    ctx = multiprocessing.get_context("spawn")
    assert _run(ctx, crash_worker, (endpoint, "assign", "create", "/assignment/")) == 17
    assert ipam_keys(etcd_kv) == {"/calico/ipam/v2/config": CONFIG_DEFAULTS,
                                  "/calico/ipam/v2/host/n1/ipv4/block/10.203.0.0-28":
                                  '{"state":"pending","deleted":false}'}
    assert check(etcd_kv, 0).affinities_without_block == ["/calico/ipam/v2/host/n1/ipv4/block/10.203.0.0-28"]
    got, _ = IPAM(etcd_kv).auto_assign(num4=1, handle_id="k8s-pod-network.again", host="n1")
    assert got.ips == ["10.203.0.0"]
    result = check(etcd_kv, 0)
    assert result.affinities_without_block == [] and result.blocks_without_affinity == []
