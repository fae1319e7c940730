"""IPAM benchmark: sequential auto-assignments across many hosts, then releases.

Creates 100 Nodes and a /16 pool (blocks of 64) in a private etcd, then assigns one
address per request (a unique handle each, as the CNI plugin does), cycling through the
hosts, so every host claims its blocks on the way. Prints assignments per second and
etcd round trips per assignment (every get, list and transaction counts as one; reads
are the gets and lists), then the same for releasing by handle.

Beside the time per assignment and per release it prints the floor measured in the same
run against the same etcd: the time the same number of etcd round trips cost with no
Python work between them. One round trip is the median of raw transactions shaped like
IPAM's block update (a put of the largest stored block's JSON, guarded by a ModRevision
compare, under a separate key prefix) sent back to back with python-etcd3's stubs and
pre-built requests, measured right after each phase. The floor is that median times the
measured round trips; a second, lower one prices the reads at a raw get of the same key.
"""
from __future__ import annotations

import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the etcd launcher

from etcd_server import EtcdServer  # noqa: E402

from bench import loaded_rss_mib  # noqa: E402

from etcd3 import etcdrpc  # noqa: E402

from node.config import DatastoreConfig  # noqa: E402
from node.datastore.etcd import REQUEST_TIMEOUT, EtcdKV  # noqa: E402
from node.ipam.allocator import IPAM  # noqa: E402
from node.model import from_dict  # noqa: E402

COUNT = int(os.environ.get("BENCH_IPAM_ASSIGNMENTS", "10000"))
HOSTS = int(os.environ.get("BENCH_IPAM_HOSTS", "100"))
RTT_SAMPLES = 1000
FLOOR_PREFIX = "/bench-floor"  # the floor's keys, away from everything IPAM reads


class CountingKV:
    """Passes every call to the real EtcdKV and counts the round trips (and the reads)."""

    CALLS = ("get", "list", "create", "update", "put", "delete")
    READS = ("get", "list")

    def __init__(self, kv: EtcdKV):
        self._kv = kv
        self.calls = 0
        self.reads = 0

    def reset(self) -> None:
        self.calls = self.reads = 0

    def __getattr__(self, name):
        attr = getattr(self._kv, name)
        if name not in self.CALLS:
            return attr
        read = name in self.READS

        def counted(*args, **kwargs):
            self.calls += 1
            self.reads += read
            return attr(*args, **kwargs)

        return counted


def round_trip_medians(stub: etcdrpc.KVStub, key: bytes, value: bytes) -> tuple[float, float]:
    """Median seconds of one raw ModRevision-guarded put of ``value`` at ``key`` (IPAM's
    block update) and of one raw get of it, sent back to back."""
    rev = stub.Put(etcdrpc.PutRequest(key=key, value=value), timeout=REQUEST_TIMEOUT).header.revision
    txn = etcdrpc.TxnRequest(
        compare=[etcdrpc.Compare(key=key, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL,
                                 mod_revision=rev)],
        success=[etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value))],
        failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))],
    )
    get = etcdrpc.RangeRequest(key=key)
    txn_s, get_s = [], []
    for _ in range(RTT_SAMPLES):
        txn.compare[0].mod_revision = rev
        start = time.perf_counter()
        resp = stub.Txn(txn, timeout=REQUEST_TIMEOUT)
        txn_s.append(time.perf_counter() - start)
        if not resp.succeeded:
            raise RuntimeError(f"floor transaction on {key!r} lost its compare")
        rev = resp.header.revision
        start = time.perf_counter()
        stub.Range(get, timeout=REQUEST_TIMEOUT)
        get_s.append(time.perf_counter() - start)
    return statistics.median(txn_s), statistics.median(get_s)


def print_phase(what: str, seconds: float, calls: int, reads: int, txn_s: float, get_s: float) -> None:
    per_op, rts, n_reads = seconds / COUNT, calls / COUNT, reads / COUNT
    n_writes = rts - n_reads
    floor = rts * txn_s
    by_kind = n_reads * get_s + n_writes * txn_s
    print(f"{what} wall time: {seconds:8.2f} s ({COUNT / seconds:.0f}/s)")
    print(f"etcd round trips/{what}: {rts:.2f} ({n_reads:.2f} reads, {n_writes:.2f} writes)")
    print(f"per {what}: {per_op * 1000:6.2f} ms ({per_op / floor:.2f}x the floor)   floor ({rts:.2f} round trips "
          f"x {txn_s * 1000:.3f} ms raw CAS txn): {floor * 1000:.2f} ms   with the reads at a raw get "
          f"({get_s * 1000:.3f} ms): {by_kind * 1000:.2f} ms")


def main() -> None:
    server = EtcdServer()
    server.start()
    raw = None
    try:
        kv = EtcdKV(DatastoreConfig(etcd_endpoints=(server.endpoint,)))
        raw = server.client()
        counting = CountingKV(kv)
        ipam = IPAM(counting)
        ipam.client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                      "metadata": {"name": "bench"}, "spec": {"cidr": "10.0.0.0/16"}}))
        hosts = [f"node{i}" for i in range(HOSTS)]
        for host in hosts:
            ipam.client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                                          "metadata": {"name": host}, "spec": {}}))

        counting.reset()
        start = time.perf_counter()
        for i in range(COUNT):
            host = hosts[i % HOSTS]
            v4, _ = ipam.auto_assign(num4=1, handle_id=f"k8s-pod-network.bench{i}", host=host,
                                     attrs={"namespace": "bench", "node": host, "pod": f"pod{i}"})
            v4.check()
        assign_s = time.perf_counter() - start
        assign_calls, assign_reads = counting.calls, counting.reads
        blocks = len(ipam.store.list_blocks())
        # The floor's block: the largest block as stored now, under the floor prefix.
        block_key, block_value, _ = max(ipam.store.list_block_values(), key=lambda item: len(item[1]))
        floor_key = (FLOOR_PREFIX + block_key).encode()
        assign_rtt = round_trip_medians(raw.kvstub, floor_key, block_value)

        counting.reset()
        start = time.perf_counter()
        for i in range(COUNT):
            ipam.release_by_handle(f"k8s-pod-network.bench{i}")
        release_s = time.perf_counter() - start
        release_calls, release_reads = counting.calls, counting.reads
        release_rtt = round_trip_medians(raw.kvstub, floor_key, block_value)
        kv.close()

        print(f"assignments: {COUNT} across {HOSTS} hosts ({blocks} blocks claimed); "
              f"floor transactions put {len(block_value)} bytes (the largest stored block)")
        print_phase("assignment", assign_s, assign_calls, assign_reads, *assign_rtt)
        print_phase("release", release_s, release_calls, release_reads, *release_rtt)
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB   "
              f"floor {loaded_rss_mib('bench.bench_ipam'):.0f} MiB (an interpreter with this benchmark's modules "
              f"loaded, no data)")
    finally:
        if raw is not None:
            raw.close()
        server.close()


if __name__ == "__main__":
    main()
