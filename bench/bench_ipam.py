"""IPAM benchmark: sequential auto-assignments across many hosts, then releases.

Creates 100 Nodes and a /16 pool (blocks of 64) in a private etcd, then assigns one
address per request (a unique handle each, as the CNI plugin does), cycling through the
hosts, so every host claims its blocks on the way. Prints assignments per second and
etcd round trips per assignment (every get, list and transaction counts as one), then
the same for releasing by handle.
"""
from __future__ import annotations

import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the etcd launcher

from etcd_server import EtcdServer  # noqa: E402

from node.config import DatastoreConfig  # noqa: E402
from node.datastore.etcd import EtcdKV  # noqa: E402
from node.ipam.allocator import IPAM  # noqa: E402
from node.model import from_dict  # noqa: E402

COUNT = int(os.environ.get("BENCH_IPAM_ASSIGNMENTS", "10000"))
HOSTS = int(os.environ.get("BENCH_IPAM_HOSTS", "100"))


class CountingKV:
    """Passes every call to the real EtcdKV and counts the round trips."""

    CALLS = ("get", "list", "create", "update", "put", "delete")

    def __init__(self, kv: EtcdKV):
        self._kv = kv
        self.calls = 0

    def __getattr__(self, name):
        attr = getattr(self._kv, name)
        if name not in self.CALLS:
            return attr

        def counted(*args, **kwargs):
            self.calls += 1
            return attr(*args, **kwargs)

        return counted


def main() -> None:
    server = EtcdServer()
    server.start()
    try:
        kv = EtcdKV(DatastoreConfig(etcd_endpoints=(server.endpoint,)))
        counting = CountingKV(kv)
        ipam = IPAM(counting)
        ipam.client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                      "metadata": {"name": "bench"}, "spec": {"cidr": "10.0.0.0/16"}}))
        hosts = [f"node{i}" for i in range(HOSTS)]
        for host in hosts:
            ipam.client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                                          "metadata": {"name": host}, "spec": {}}))

        counting.calls = 0
        start = time.perf_counter()
        for i in range(COUNT):
            host = hosts[i % HOSTS]
            v4, _ = ipam.auto_assign(num4=1, handle_id=f"k8s-pod-network.bench{i}", host=host,
                                     attrs={"namespace": "bench", "node": host, "pod": f"pod{i}"})
            v4.check()
        assign_s = time.perf_counter() - start
        assign_calls = counting.calls
        blocks = len(ipam.store.list_blocks())

        counting.calls = 0
        start = time.perf_counter()
        for i in range(COUNT):
            ipam.release_by_handle(f"k8s-pod-network.bench{i}")
        release_s = time.perf_counter() - start
        release_calls = counting.calls
        kv.close()

        print(f"assignments:            {COUNT} across {HOSTS} hosts ({blocks} blocks claimed)")
        print(f"assign wall time:       {assign_s:.2f} s")
        print(f"assignments per second: {COUNT / assign_s:.0f}")
        print(f"etcd round trips/assign:{assign_calls / COUNT:.2f}")
        print(f"release wall time:      {release_s:.2f} s")
        print(f"releases per second:    {COUNT / release_s:.0f}")
        print(f"etcd round trips/release:{release_calls / COUNT:.2f}")
        print(f"peak RSS:               {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    finally:
        server.close()


if __name__ == "__main__":
    main()
