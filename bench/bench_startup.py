"""Startup benchmark: the selection rules at scale, and ``calico-node startup`` wall time.

Pure parts: first-found over 1,000 links (none usable, the worst case) and the IP
conflict check against 5,000 Nodes. Whole command: first and second start of
``calico-node startup`` against a private etcd that already holds 1,000 other Nodes
(run in the host namespace with an explicit IP and no kernel preparation, so it only
reads the host's interfaces).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the etcd launcher

from etcd_server import EtcdServer  # noqa: E402

from node.config import DatastoreConfig  # noqa: E402
from node.datastore.client import DatastoreClient  # noqa: E402
from node.datastore.etcd import EtcdKV  # noqa: E402
from node.model import Resource, from_dict  # noqa: E402
from startup.autodetect import HostView, autodetect_cidr  # noqa: E402
from startup.interfaces import Link  # noqa: E402
from startup.ipconfig import find_conflicts  # noqa: E402

OTHER_NODES = int(os.environ.get("BENCH_NODES", "1000"))


def timed(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def bench_selection() -> None:
    links = [Link(i, f"eth{i}", tuple(ipaddress.ip_interface(a) for a in
                                      (f"169.254.{i % 256}.{i // 256}/16", f"fe80::{i:x}/64", "127.0.0.2/8")))
             for i in range(1000)]
    host = HostView(links, lambda dest, version: ipaddress.ip_address("127.0.0.1"))
    per = timed(lambda: autodetect_cidr("first-found", 4, host), 20)
    print(f"first-found over 1000 links with no usable address: {per * 1000:.1f} ms")
    per = timed(lambda: autodetect_cidr("interface=eth99.*", 4, host), 20)
    print(f"interface= regex over 1000 links: {per * 1000:.1f} ms")

    nodes = [Resource("Node", {"name": f"n{i}"}, {"bgp": {"ipv4Address": f"10.{i // 65536}.{(i // 256) % 256}."
                                                                          f"{i % 256}/16"}}, {})
             for i in range(5000)]
    spec = {"bgp": {"ipv4Address": "192.168.0.1/24"}}
    per = timed(lambda: find_conflicts("me", spec, nodes), 5)
    print(f"conflict check against 5000 nodes: {per * 1000:.1f} ms")


def bench_command() -> None:
    with EtcdServer() as server, tempfile.TemporaryDirectory() as tmp:
        kv = EtcdKV(DatastoreConfig(etcd_endpoints=(server.endpoint,)))
        client = DatastoreClient(kv)
        for i in range(OTHER_NODES):
            client.create(from_dict({"kind": "Node", "apiVersion": "projectcalico.org/v3",
                                     "metadata": {"name": f"other{i}"},
                                     "spec": {"bgp": {"ipv4Address": f"10.1.{i // 256}.{i % 256}/16"}}}))
        kv.close()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NODENAME": "bench-node",
               "ETCD_ENDPOINTS": server.endpoint, "IP": "10.200.0.1/16", "CALICO_LIB_DIR": f"{tmp}/lib",
               "CALICO_RUN_DIR": f"{tmp}/run", "CALICO_LOG_DIR": f"{tmp}/log"}
        command = [os.path.join(os.path.dirname(sys.executable), "calico-node"), "startup", "--no-kernel-prep"]
        for label in ("first start", "second start"):
            start = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            status = "ok" if result.returncode == 0 else f"FAILED ({result.stderr.strip().splitlines()[-1]})"
            print(f"calico-node startup, {label}, {OTHER_NODES} other nodes: {elapsed:.2f} s ({status})")


def main() -> None:
    logging.disable(logging.WARNING)  # the "nothing found" warnings would flood the figures
    bench_selection()
    logging.disable(logging.NOTSET)
    bench_command()


if __name__ == "__main__":
    main()
