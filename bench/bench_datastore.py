"""Datastore benchmark: resource write throughput, and list-then-watch to InSync.

Writes 10,000 WorkloadEndpoints through the resource client into a private etcd, applies
1,000 of them again, then times a fresh syncer from start to InSync with all of them
delivered. Prints wall times, rates, etcd round trips per write and the process's peak
RSS (taken before the list floors below).

Beside each figure, the floor measured in the same run against the same etcd: the same
etcd requests sent one after another with python-etcd3's stubs, counting only the time
spent in the calls (each request is built outside the timing), so no Python work between
them. Writes go to the same keys under a separate prefix, with the very values the client
stored (read back from etcd):

* create: one create-if-absent transaction per endpoint (``Version == 0``, as
  ``EtcdKV.create``), sequential as the client sends them;
* apply of an existing endpoint: the client's three round trips per key, a create
  transaction that fails, a get, and a ModRevision compare-and-swap put (also printed
  without the failed create: get + CAS alone);
* list-then-watch: one raw range read of the prefix the syncer lists (sorted by key and
  unpaged, as ``EtcdKV.list``), without decoding; then the same with ``json.loads`` of
  each value. Median of three reads each.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the etcd launcher

from etcd_server import EtcdServer  # noqa: E402

from etcd3 import etcdrpc  # noqa: E402

from bench import loaded_rss_mib  # noqa: E402
from bench.bench_ipam import CountingKV  # noqa: E402
from node.config import DatastoreConfig  # noqa: E402
from node.datastore.client import DatastoreClient  # noqa: E402
from node.datastore.etcd import REQUEST_TIMEOUT, EtcdKV, prefix_range_end  # noqa: E402
from node.datastore.sources import resource_sources  # noqa: E402
from node.datastore.syncer import Syncer, SyncStatus  # noqa: E402
from node.model import from_dict  # noqa: E402

COUNT = int(os.environ.get("BENCH_WEPS", "10000"))
APPLIES = min(1000, COUNT)
FLOOR_PREFIX = b"/bench-floor"  # the floor's keys, outside every prefix the client and syncer use
LIST_REPEATS = 3
PAGE = 1000  # keys per read when fetching the stored values for the write floors


def workload(i: int):
    node = f"node{i % 100}"
    name = f"{node}-k8s-pod{i}-eth0"
    return from_dict({
        "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
        "metadata": {"name": name, "namespace": f"ns{i % 20}",
                     "labels": {"app": f"app{i % 50}", "projectcalico.org/namespace": f"ns{i % 20}",
                                "projectcalico.org/orchestrator": "k8s"}},
        "spec": {"orchestrator": "k8s", "node": node, "pod": f"pod{i}", "endpoint": "eth0",
                 "ipNetworks": [f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}/32"],
                 "profiles": [f"kns.ns{i % 20}"], "interfaceName": f"cali{i:011x}"},
    })


class Counter:
    def __init__(self, target: int):
        self.target, self.seen = target, 0
        self.done = threading.Event()

    def on_status(self, status):
        pass

    def on_updates(self, updates):
        self.seen += len(updates)
        if self.seen >= self.target:
            self.done.set()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def range_request(prefix: bytes) -> etcdrpc.RangeRequest:
    """The request ``EtcdKV.list`` sends for ``prefix``."""
    return etcdrpc.RangeRequest(key=prefix, range_end=prefix_range_end(prefix),
                                sort_order=etcdrpc.RangeRequest.ASCEND, sort_target=etcdrpc.RangeRequest.KEY)


def _put_txn(key: bytes, value: bytes, compare: etcdrpc.Compare) -> etcdrpc.TxnRequest:
    """A put of ``value`` at ``key`` guarded by ``compare``, reading the key back on failure
    (the shape of ``EtcdKV.create`` and ``EtcdKV.update``)."""
    return etcdrpc.TxnRequest(
        compare=[compare],
        success=[etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value))],
        failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=key))],
    )


def create_request(key: bytes, value: bytes) -> etcdrpc.TxnRequest:
    """The transaction ``EtcdKV.create`` sends."""
    return _put_txn(key, value, etcdrpc.Compare(key=key, target=etcdrpc.Compare.VERSION,
                                                result=etcdrpc.Compare.EQUAL, version=0))


def cas_request(key: bytes, value: bytes) -> etcdrpc.TxnRequest:
    """The transaction ``EtcdKV.update`` sends (the revision is filled in before sending)."""
    return _put_txn(key, value, etcdrpc.Compare(key=key, target=etcdrpc.Compare.MOD,
                                                result=etcdrpc.Compare.EQUAL, mod_revision=0))


def stored_values(stub: etcdrpc.KVStub, prefix: bytes) -> dict[bytes, bytes]:
    """Every value under ``prefix`` as stored, read in pages (the floors' input, not timed)."""
    values: dict[bytes, bytes] = {}
    request = range_request(prefix)
    request.limit = PAGE
    while True:
        resp = stub.Range(request, timeout=REQUEST_TIMEOUT)
        values.update((item.key, item.value) for item in resp.kvs)
        if not resp.more:
            return values
        request.key = resp.kvs[-1].key + b"\0"


def floor_creates(stub: etcdrpc.KVStub, keys: list[bytes], values: list[bytes]) -> float:
    """Seconds spent in one create-if-absent transaction per key, sent one after another."""
    spent = 0.0
    for key, value in zip(keys, values):
        request = create_request(FLOOR_PREFIX + key, value)
        start = time.perf_counter()
        resp = stub.Txn(request, timeout=REQUEST_TIMEOUT)
        spent += time.perf_counter() - start
        if not resp.succeeded:
            raise RuntimeError("a floor create found its key present")
    return spent


def floor_applies(stub: etcdrpc.KVStub, keys: list[bytes], values: list[bytes]) -> tuple[float, float]:
    """Seconds spent in a failed create + get + CAS per key, and the part spent in get + CAS."""
    failed_create_s = get_cas_s = 0.0
    for key, value in zip(keys, values):
        key = FLOOR_PREFIX + key
        create, get, update = create_request(key, value), etcdrpc.RangeRequest(key=key), cas_request(key, value)
        start = time.perf_counter()
        created = stub.Txn(create, timeout=REQUEST_TIMEOUT).succeeded
        failed_create_s += time.perf_counter() - start
        if created:
            raise RuntimeError("a floor apply's create found its key absent")
        start = time.perf_counter()
        rev = stub.Range(get, timeout=REQUEST_TIMEOUT).kvs[0].mod_revision
        get_cas_s += time.perf_counter() - start
        update.compare[0].mod_revision = rev
        start = time.perf_counter()
        resp = stub.Txn(update, timeout=REQUEST_TIMEOUT)
        get_cas_s += time.perf_counter() - start
        if not resp.succeeded:
            raise RuntimeError("a floor compare-and-swap lost its compare")
    return failed_create_s + get_cas_s, get_cas_s


def floor_list(stub: etcdrpc.KVStub, request: etcdrpc.RangeRequest, decode: bool) -> tuple[float, int]:
    """Median seconds of one range read (and json.loads of each value when ``decode``)."""
    samples, count = [], 0
    for _ in range(LIST_REPEATS):
        start = time.perf_counter()
        resp = stub.Range(request, timeout=REQUEST_TIMEOUT)
        if decode:
            for item in resp.kvs:
                json.loads(item.value)
        samples.append(time.perf_counter() - start)
        count = len(resp.kvs)
        del resp
    return statistics.median(samples), count


def main() -> None:
    with EtcdServer() as server:
        config = DatastoreConfig(etcd_endpoints=(server.endpoint,))
        kv = EtcdKV(config)
        counting = CountingKV(kv)
        client = DatastoreClient(counting)
        # python-etcd3 for the floors, with EtcdKV's unlimited receive size (the list is large).
        raw = server.client(grpc_options=[("grpc.max_receive_message_length", -1)])
        stub = raw.kvstub
        sources = resource_sources(["WorkloadEndpoint"])
        prefix = sources[0].prefix.encode()
        resources = [workload(i) for i in range(COUNT)]

        counting.reset()
        start = time.perf_counter()
        for res in resources:
            client.create(res)
        elapsed = time.perf_counter() - start
        trips = counting.calls / COUNT
        # The values exactly as the client stored them, in the order it wrote them.
        stored = stored_values(stub, prefix)
        keys = [client.key_for(res.kind, res.name, res.namespace).encode() for res in resources]
        values = [stored[key] for key in keys]
        del stored
        floor_s = floor_creates(stub, keys, values)
        print(f"create: {COUNT} WorkloadEndpoints in {elapsed:.2f} s ({COUNT / elapsed:.0f}/s), "
              f"{trips:.2f} round trips each ({elapsed / floor_s:.2f}x the floor)   "
              f"floor (raw etcd create-if-absent txns): {floor_s:.2f} s ({COUNT / floor_s:.0f}/s)")

        counting.reset()
        start = time.perf_counter()
        for res in resources[:APPLIES]:
            client.apply(res)
        elapsed = time.perf_counter() - start
        trips = counting.calls / APPLIES
        floor_s, get_cas_s = floor_applies(stub, keys[:APPLIES], values[:APPLIES])
        del keys, values
        print(f"apply (existing: create attempt, get, update): {APPLIES} in {elapsed:.2f} s ({APPLIES / elapsed:.0f}/s), "
              f"{trips:.2f} round trips each ({elapsed / floor_s:.2f}x the floor)   "
              f"floor (raw etcd failed create txn + get + CAS txn): {floor_s:.2f} s ({APPLIES / floor_s:.0f}/s); "
              f"get + CAS txn alone: {get_cas_s:.2f} s ({APPLIES / get_cas_s:.0f}/s)")

        counter = Counter(COUNT)
        syncer = Syncer(lambda: EtcdKV(config), sources, counter)
        start = time.perf_counter()
        syncer.start()
        synced = syncer.wait_for_status(SyncStatus.IN_SYNC, 300) and counter.done.wait(300)
        elapsed = time.perf_counter() - start
        syncer.stop()
        kv.close()
        rss = peak_rss_mib()
        request = range_request(prefix)
        list_s, listed = floor_list(stub, request, decode=False)
        decode_s, _ = floor_list(stub, request, decode=True)
        raw.close()
        state = "InSync" if synced else "NOT in sync"
        print(f"list-then-watch: {counter.seen} WorkloadEndpoints, {state} after {elapsed:.2f} s "
              f"({elapsed / list_s:.1f}x the floor)   floor (one raw etcd range read of {listed} keys, "
              f"unpaged as the syncer lists): {list_s:.3f} s; with json.loads of each value: {decode_s:.3f} s")
        print(f"peak RSS: {rss:.0f} MiB   floor {loaded_rss_mib('bench.bench_datastore'):.0f} MiB "
              f"(an interpreter with this benchmark's modules loaded, no data)")


if __name__ == "__main__":
    main()
