"""Startup benchmark: the selection rules at scale, and ``calico-node startup`` wall time.

Pure parts: first-found over 1,000 links (none usable, the worst case), an interface=
regex over the same links, and the IP conflict check against 5,000 Nodes. Whole command:
first and second start of ``calico-node startup`` against a private etcd that already
holds 1,000 other Nodes (run in the host namespace with an explicit IP and no kernel
preparation, so it only reads the host's interfaces).

The issue asked for figures, not targets; each is printed beside a floor measured in the
same run. Floors of the pure parts: the same selection over the same objects reduced to
its unavoidable tests, one pass with one precompiled regex search per link name and one
integer test per IPv4 address (the addresses Go's IsGlobalUnicast rejects); for the
conflict check, one pass comparing each Node's IPv4 address (prefix cut off,
``inet_pton``) with ours. Each floor must reach the same answer as the code it is
compared with. Floor of the command: the interpreter started with every module the
startup role has loaded when it exits (found by one more, untimed, start; the bare
interpreter is printed too), plus a range read of the Nodes prefix by a fresh raw etcd3
client against the same etcd; medians of 5. The writes the startup makes (its Node, and
on the first start the default pools and cluster information) are not in the floor.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the etcd launcher

from etcd_server import EtcdServer  # noqa: E402

from node.config import DatastoreConfig  # noqa: E402
from node.datastore.client import DatastoreClient  # noqa: E402
from node.datastore.etcd import EtcdKV  # noqa: E402
from node.model import Resource, etcd_prefix, from_dict  # noqa: E402
from startup.autodetect import HostView, autodetect_cidr  # noqa: E402
from startup.interfaces import DEFAULT_INTERFACES_TO_EXCLUDE, Link, compile_filter  # noqa: E402
from startup.ipconfig import find_conflicts  # noqa: E402

OTHER_NODES = int(os.environ.get("BENCH_NODES", "1000"))
FLOOR_RUNS = 5
# Runs calico-node's entry point and, at exit, writes the names of the modules then
# loaded (those an import statement can load again) to the file named by argv[1].
_LIST_MODULES = """\
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(
    n for n, m in list(sys.modules.items()) if n != "__main__" and getattr(m, "__spec__", None) is not None)))
from node.cli.calico_node import main
sys.exit(main())
"""


def timed(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def _select_floor(links: list[Link], include, exclude) -> tuple[str, object] | None:
    """The first usable IPv4 address with nothing but the unavoidable tests: a precompiled
    regex search per link name, one integer test per IPv4 address."""
    for link in reversed(links):  # highest ifindex first, as the selection goes
        if include is not None and not include.search(link.name):
            continue
        if exclude is not None and exclude.search(link.name):
            continue
        for cidr in link.addresses:
            if cidr.version == 4:
                x = int(cidr)
                if not (x == 0 or x >> 24 == 127 or x >> 28 == 14 or x >> 16 == 0xA9FE or x == 0xFFFFFFFF):
                    return link.name, cidr
    return None


def _conflict_floor(node_name: str, spec: dict, nodes: list[Resource]) -> bool:
    """Whether another Node holds our IPv4 address: one inet_pton and compare per Node."""
    ours = socket.inet_pton(socket.AF_INET, spec["bgp"]["ipv4Address"].partition("/")[0])
    found = False
    for other in nodes:
        bgp = other.spec.get("bgp")
        if not bgp or other.name == node_name:
            continue
        text = bgp.get("ipv4Address")
        if text and socket.inet_pton(socket.AF_INET, text.partition("/")[0]) == ours:
            found = True
    return found


def _line(what: str, seconds: float, floor: float, how: str) -> None:
    print(f"{what + ':':52s} {seconds * 1000:7.2f} ms   floor {floor * 1000:6.2f} ms ({how})")


def bench_selection() -> None:
    links = [Link(i, f"eth{i}", tuple(ipaddress.ip_interface(a) for a in
                                      (f"169.254.{i % 256}.{i // 256}/16", f"fe80::{i:x}/64", "127.0.0.2/8")))
             for i in range(1000)]
    host = HostView(links, lambda dest, version: ipaddress.ip_address("127.0.0.1"))
    exclude, include = compile_filter(DEFAULT_INTERFACES_TO_EXCLUDE), compile_filter(["eth99.*"])
    for method, inc, exc, what, how in (
            ("first-found", None, exclude, "first-found over 1000 links with no usable address",
             "one pass: the exclude regex per name, an integer test per IPv4 address"),
            ("interface=eth99.*", include, None, "interface= regex over 1000 links",
             "the same pass with the include regex")):
        usable = [*links, Link(1000, "eth99-usable", (ipaddress.ip_interface("192.0.2.5/24"),))]
        for data in (links, usable):  # as is, and with one usable address
            found = _select_floor(data, inc, exc)
            if autodetect_cidr(method, 4, HostView(data, host.reach)) != (found and found[1]):
                raise SystemExit(f"{method}: the floor's selection disagrees with the real one")
        per = timed(lambda: autodetect_cidr(method, 4, host), 20)
        floor = timed(lambda: _select_floor(links, inc, exc), 20)
        _line(what, per, floor, how)

    nodes = [Resource("Node", {"name": f"n{i}"}, {"bgp": {"ipv4Address": f"10.{i // 65536}.{(i // 256) % 256}."
                                                                          f"{i % 256}/16"}}, {})
             for i in range(5000)]
    spec = {"bgp": {"ipv4Address": "192.168.0.1/24"}}
    clash = [*nodes, Resource("Node", {"name": "clash"}, {"bgp": {"ipv4Address": "192.168.0.1/16"}}, {})]
    for data in (nodes, clash):  # as is, and with one Node holding our address
        if find_conflicts("me", spec, data)[0] != _conflict_floor("me", spec, data):
            raise SystemExit("conflict check: the floor disagrees with the real one")
    per = timed(lambda: find_conflicts("me", spec, nodes), 5)
    floor = timed(lambda: _conflict_floor("me", spec, nodes), 5)
    _line("conflict check against 5000 nodes", per, floor, "one pass: inet_pton of each IPv4 address, compared")


def _median_of(fn, runs: int = FLOOR_RUNS) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _run_ok(argv: list[str], env: dict) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"{os.path.basename(argv[0])} {argv[1]} ... failed: {lines[-1]}")


def _command_floor(server: EtcdServer, command: list[str], env: dict, tmp: str) -> dict:
    """Seconds (medians) for the interpreter bare and with the startup role's modules, and
    for a raw etcd3 range read of the Nodes the startup lists."""
    listing = os.path.join(tmp, "modules")
    _run_ok([sys.executable, "-c", _LIST_MODULES, listing, *command[1:]], env)  # one more start, untimed
    with open(listing) as fh:
        modules = fh.read().split()
    imports = [sys.executable, "-c", "import " + ", ".join(modules)]
    bare = [sys.executable, "-c", "pass"]
    prefix = etcd_prefix("Node")
    counted = []

    def read_nodes() -> None:
        with server.client() as raw:
            counted.append(sum(1 for _ in raw.get_prefix(prefix)))

    return {"modules": len(modules), "bare": _median_of(lambda: _run_ok(bare, env)),
            "imports": _median_of(lambda: _run_ok(imports, env)),
            "read": _median_of(read_nodes), "nodes": counted[-1], "prefix": prefix}


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
        results = []
        for label in ("first start", "second start"):
            start = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            status = "ok" if result.returncode == 0 else f"FAILED ({result.stderr.strip().splitlines()[-1]})"
            results.append((label, elapsed, status))
        try:
            f = _command_floor(server, command, env, tmp)
        except RuntimeError as exc:
            for label, elapsed, status in results:
                print(f"calico-node startup, {label}, {OTHER_NODES} other nodes: {elapsed:.2f} s ({status})")
            print(f"floor not measured: {exc}")
            return
        floor = f["imports"] + f["read"]
        for label, elapsed, status in results:
            print(f"calico-node startup, {label}, {OTHER_NODES} other nodes: {elapsed:.2f} s ({status})   "
                  f"floor {floor:.2f} s")
        print(f"floor: the interpreter importing the {f['modules']} modules loaded when the startup role exits "
              f"{f['imports'] * 1000:.0f} ms (bare interpreter {f['bare'] * 1000:.0f} ms) + a raw etcd range read "
              f"of the {f['nodes']} Nodes under {f['prefix']} {f['read'] * 1000:.1f} ms "
              f"(medians of {FLOOR_RUNS}, same etcd)")


def main() -> None:
    logging.disable(logging.WARNING)  # the "nothing found" warnings would flood the figures
    bench_selection()
    logging.disable(logging.NOTSET)
    bench_command()


if __name__ == "__main__":
    main()
