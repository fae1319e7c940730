"""Datastore benchmark: resource write throughput, and list-then-watch to InSync.

Writes 10,000 WorkloadEndpoints through the resource client into a private etcd, then
times a fresh syncer from start to InSync with all of them delivered. Prints wall times,
rates and the process's peak RSS.
"""
from __future__ import annotations

import os
import resource
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the etcd launcher

from etcd_server import EtcdServer  # noqa: E402

from node.config import DatastoreConfig  # noqa: E402
from node.datastore.client import DatastoreClient  # noqa: E402
from node.datastore.etcd import EtcdKV  # noqa: E402
from node.datastore.sources import resource_sources  # noqa: E402
from node.datastore.syncer import Syncer, SyncStatus  # noqa: E402
from node.model import from_dict  # noqa: E402

COUNT = int(os.environ.get("BENCH_WEPS", "10000"))


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


def main() -> None:
    with EtcdServer() as server:
        config = DatastoreConfig(etcd_endpoints=(server.endpoint,))
        kv = EtcdKV(config)
        client = DatastoreClient(kv)
        resources = [workload(i) for i in range(COUNT)]
        start = time.perf_counter()
        for res in resources:
            client.create(res)
        elapsed = time.perf_counter() - start
        print(f"create: {COUNT} WorkloadEndpoints in {elapsed:.2f} s ({COUNT / elapsed:.0f}/s)")

        start = time.perf_counter()
        for res in resources[:1000]:
            client.apply(res)
        elapsed = time.perf_counter() - start
        print(f"apply (existing, get+update): 1000 in {elapsed:.2f} s ({1000 / elapsed:.0f}/s)")

        counter = Counter(COUNT)
        syncer = Syncer(lambda: EtcdKV(config), resource_sources(["WorkloadEndpoint"]), counter)
        start = time.perf_counter()
        syncer.start()
        synced = syncer.wait_for_status(SyncStatus.IN_SYNC, 300) and counter.done.wait(300)
        elapsed = time.perf_counter() - start
        syncer.stop()
        kv.close()
        state = "InSync" if synced else "NOT in sync"
        print(f"list-then-watch: {counter.seen} WorkloadEndpoints, {state} after {elapsed:.2f} s")
        print(f"peak RSS: {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
