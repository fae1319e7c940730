"""Renderer benchmark.

The issue asked for figures, not targets, so each figure is printed beside the physical
floor measured in the same run:

1. Render time for a 1,000-node full mesh with 200 affine blocks, 100 IP pools and 50
   BGPFilters (both families: picture + the six files). Floor: ``bird -p`` and
   ``bird6 -p`` reading and parsing the six files produced (medians, summed). No real
   component produces this text, so nothing bounds the render itself from below; the
   floor is the least the real consumer spends on the same config (text in, checked
   structures out, process start included), which is the honest comparison.
2. Time from a BGPPeer write in etcd to BIRD having reloaded with it (the new protocol
   shows in ``show protocols``): a real etcd, the syncer-fed renderer, a real BIRD in a
   network namespace started as the image starts it; median of 20, for a 3-node cluster
   and for the 1,000-node one. Floor: BIRD's own ``configure`` of the config it has just
   loaded, asked as the renderer asks (``node.bird.configure`` on the control socket)
   right after each write's sample, plus a raw etcd3 ``put`` round trip of the same key
   with its stored value, timed after the writes with the renderer stopped (so nothing
   reacts to it); same etcd, same BIRD, median of the per-write sums over as many runs.
   It leaves out the watch delivery and the render, which is what the figure adds to it.

Environment: BENCH_CONFD_NODES (default 1000), BENCH_CONFD_RUNS (render repetitions, 5),
BENCH_CONFD_WRITES (BGPPeer writes per cluster, 20).
"""
from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # etcd and netns helpers

from etcd_server import EtcdServer  # noqa: E402
from netns import Namespace  # noqa: E402

from node import bird  # noqa: E402
from node.confd.daemon import Renderer  # noqa: E402
from node.confd.inputs import ConfdInputs, Settings  # noqa: E402
from node.confd.install import Installer  # noqa: E402
from node.confd.picture import build_picture  # noqa: E402
from node.confd.render import render  # noqa: E402
from node.config import DatastoreConfig  # noqa: E402
from node.datastore.client import DatastoreClient  # noqa: E402
from node.datastore.etcd import EtcdKV  # noqa: E402
from node.model import Resource, from_dict  # noqa: E402
from node.supervise.programs import bird_argv  # noqa: E402

NODES = int(os.environ.get("BENCH_CONFD_NODES", "1000"))
RUNS = int(os.environ.get("BENCH_CONFD_RUNS", "5"))
WRITES = int(os.environ.get("BENCH_CONFD_WRITES", "20"))
BLOCKS, POOLS, FILTERS = 200, 100, 50
ME = "node-0"
# This node's address sorts below every other node's (as a string), so it is the passive
# side of every mesh session: BIRD waits for peers that never come, rather than
# retrying a thousand connections to addresses that do not exist.
MY_IP = "10.0.0.1"


def _res(kind: str, name: str, spec: dict, labels: dict | None = None) -> Resource:
    meta = {"name": name, **({"labels": labels} if labels else {})}
    return from_dict({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta, "spec": spec})


def cluster(nodes: int, blocks: int = BLOCKS, pools: int = POOLS, filters: int = FILTERS) -> list[Resource]:
    """A dual-stack full mesh; this node is node-0 at MY_IP (the others do not exist)."""
    out = [_res("BGPConfiguration", "default", {"asNumber": 64512, "logSeverityScreen": "Info"})]
    for i in range(nodes):
        ipv4 = f"{MY_IP}/24" if i == 0 else f"10.{100 + i // 60000}.{(i // 250) % 240}.{i % 250 + 1}/16"
        out.append(_res("Node", f"node-{i}", {"bgp": {"ipv4Address": ipv4, "ipv6Address": f"fd00:99::{i + 1:x}/64"}},
                        {"rack": f"r{i % 20}"}))
    for i in range(pools):
        spec = {"cidr": f"10.{200 + i // 100}.{i % 100}.0/24", "ipipMode": ("Never", "Always", "CrossSubnet")[i % 3],
                "disableBGPExport": i % 10 == 0}
        if i % 7 == 0:
            spec = {"cidr": f"fd10:{i:x}::/64", "vxlanMode": "Always"}
        out.append(_res("IPPool", f"pool-{i}", spec))
    for i in range(blocks):
        state = "pendingDeletion" if i % 50 == 0 else "confirmed"
        out.append(_res("BlockAffinity", f"{ME}-b{i}", {"node": ME, "cidr": f"10.200.{i // 4}.{(i % 4) * 64}/26",
                                                         "state": state, "deleted": "false"}))
    for i in range(filters):
        rule_v4 = {"cidr": f"10.{i}.0.0/16", "matchOperator": "In", "action": "Accept",
                   "prefixLength": {"max": 28}}
        rule_v6 = {"cidr": f"fd00:{i:x}::/48", "matchOperator": "NotIn", "action": "Reject"}
        out.append(_res("BGPFilter", f"filter-{i:02d}" + "-x" * (i % 3 * 10), {
            "importV4": [rule_v4, {"source": "RemotePeers", "peerType": "iBGP", "action": "Reject"}],
            "exportV4": [{"communities": {"values": ["65000:100"]}, "action": "Accept",
                          "operations": [{"prependASPath": {"prefix": [65000, 65001]}}]}],
            "importV6": [rule_v6],
        }))
    filter_names = [r.name for r in out if r.kind == "BGPFilter"]
    for i in range(5):
        out.append(_res("BGPPeer", f"tor-{i}", {"peerIP": f"10.98.0.{i + 1}", "asNumber": 65000 + i,
                                                "filters": filter_names[i * 10:(i + 1) * 10]}))
    return out


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


def bench_render() -> None:
    resources = cluster(NODES)
    inputs = ConfdInputs()
    for res in resources:
        inputs.put(res)
    settings = Settings(nodename=ME)
    pictures, renders = [], []
    files = {}
    for _ in range(RUNS):
        t0 = time.perf_counter()
        picture = build_picture(inputs, settings)
        t1 = time.perf_counter()
        files = render(picture).files
        t2 = time.perf_counter()
        pictures.append(t1 - t0)
        renders.append(t2 - t1)
    total = [p + r for p, r in zip(pictures, renders)]
    parses = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            Path(tmp, name).write_text(text)
        for binary, name in (("bird", "bird.cfg"), ("bird6", "bird6.cfg")):
            times = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                proc = subprocess.run([binary, "-p", "-c", name], cwd=tmp, capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    raise SystemExit(f"{binary} -p rejected the benchmark config: {proc.stderr}")
            parses[f"{binary} -p {name}"] = statistics.median(times)
    floor = sum(parses.values())
    print(f"cluster: {NODES} nodes (full mesh, dual stack), {BLOCKS} affine blocks, {POOLS} IP pools, "
          f"{FILTERS} BGPFilters, 5 global peers")
    print(f"  picture (both families):  median {_median_ms(pictures)} over {RUNS} runs")
    print(f"  templates (six files):    median {_median_ms(renders)}")
    print(f"  render total:             median {_median_ms(total)}   floor {floor * 1000:.1f} ms")
    print(f"  output: bird.cfg {len(files['bird.cfg']) // 1024} KiB, bird6.cfg {len(files['bird6.cfg']) // 1024} KiB, "
          f"{files['bird.cfg'].count('protocol bgp')} IPv4 sessions")
    print("  floor: BIRD reading and parsing that output, " + " + ".join(
        f"{what} {seconds * 1000:.1f} ms" for what, seconds in parses.items()) + f" (medians of {RUNS}, same run)")


class _InstallMarks(logging.Handler):
    """Records when the renderer logs that it installed a new bird.cfg."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.installed = 0.0
        self._logger = logging.getLogger("node.confd.install")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Target config ") and message.split()[2].endswith("/bird.cfg"):
            self.installed = record.created

    def clear(self) -> None:
        self.installed = 0.0

    def __enter__(self):
        self._logger.addHandler(self)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False  # keep the benchmark's output to its figures
        return self

    def __exit__(self, *exc):
        self._logger.removeHandler(self)
        self._logger.propagate = True
        self._logger.setLevel(logging.NOTSET)


def _load(client: DatastoreClient, resources: list[Resource]) -> None:
    for res in resources:
        client.create(res)


def _put_floor(server: EtcdServer) -> list[float]:
    """Seconds for a raw etcd3 put of each benchmark BGPPeer's key with its stored value."""
    puts = []
    raw = server.client()
    try:
        for i in range(WRITES):
            key = DatastoreClient.key_for("BGPPeer", f"bench-{i}")
            value, _ = raw.get(key)
            t0 = time.perf_counter()
            raw.put(key, value)
            puts.append(time.perf_counter() - t0)
    finally:
        raw.close()
    return puts


def bench_reload(nodes: int) -> None:
    server = EtcdServer()
    server.start()
    config = DatastoreConfig(etcd_endpoints=(server.endpoint,))
    kv = EtcdKV(config)
    client = DatastoreClient(kv)
    renderer = thread = proc = None
    try:
        with Namespace("cfdbench") as ns, tempfile.TemporaryDirectory() as tmp:
            ns.run("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
            ns.run("ip", "addr", "add", f"{MY_IP}/16", "dev", "v0")
            ns.run("ip", "link", "set", "v0", "up")
            ns.run("ip", "link", "set", "v1", "up")
            t0 = time.perf_counter()
            _load(client, cluster(nodes, blocks=min(BLOCKS, 20 * nodes), pools=min(POOLS, 10 * nodes),
                                  filters=min(FILTERS, 10 * nodes)))
            load_s = time.perf_counter() - t0
            out, sock = Path(tmp, "config"), Path(tmp, "bird.ctl")
            installer = Installer(out, sockets={4: sock, 6: Path(tmp, "bird6.ctl")})
            renderer = Renderer(Settings(nodename=ME), installer, lambda: EtcdKV(config))
            thread = threading.Thread(target=renderer.run, daemon=True)
            t0 = time.perf_counter()
            thread.start()
            while not (out / "bird.cfg").exists():
                time.sleep(0.01)
            first_s = time.perf_counter() - t0
            # As the image starts it: -d logs to stderr. Without -d BIRD logs to syslog,
            # and where /dev/log is missing (here) glibc writes every line to /dev/console,
            # a write per protocol on each configure that swamps the figures.
            proc = ns.popen(*bird_argv("bird", str(sock), str(out / "bird.cfg")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:
                try:
                    bird.show_protocols(sock)
                    break
                except bird.BirdError:
                    time.sleep(0.02)
            samples, installed, configures = [], [], []
            marks = _InstallMarks()
            with bird.BirdClient(sock) as bc, marks:
                for i in range(WRITES):
                    name = f"Global_10_97_0_{i + 1}"
                    marks.clear()
                    start = time.time()
                    client.create(_res("BGPPeer", f"bench-{i}", {"peerIP": f"10.97.0.{i + 1}", "asNumber": 65100}))
                    while not any(p.name == name for p in bird.parse_protocols(bc.command(f"show protocols {name}"))):
                        time.sleep(0.002)
                    samples.append(time.time() - start)
                    installed.append(marks.installed - start)
                    # Floor, BIRD's part, under the same conditions: re-read the config it
                    # has just loaded, asked as the renderer asks.
                    t0 = time.perf_counter()
                    bird.configure(sock)
                    configures.append(time.perf_counter() - t0)
            renderer.stop()
            thread.join(timeout=30)
            renderer = None
            puts = _put_floor(server)  # with the renderer stopped, so nothing reacts to them
            floor = [p + c for p, c in zip(puts, configures)]
            print(f"BGPPeer write -> BIRD reloaded with it ({nodes} nodes; etcd load {load_s:.1f}s, "
                  f"first render after start {first_s * 1000:.0f} ms):")
            print(f"  median {_median_ms(samples)}, min {min(samples) * 1000:.1f} ms, "
                  f"max {max(samples) * 1000:.1f} ms over {WRITES} writes   floor {_median_ms(floor)}")
            print(f"  of which write -> new bird.cfg checked and installed: median {_median_ms(installed)} "
                  f"(the rest is BIRD's own 'configure')")
            print(f"  floor: etcd put of the same key {_median_ms(puts)} + BIRD 'configure' of its unchanged "
                  f"config {_median_ms(configures)} (same etcd and BIRD, medians of {WRITES})")
    finally:
        if renderer is not None:
            renderer.stop()
            thread.join(timeout=30)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        kv.close()
        server.close()


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    bench_render()
    if os.geteuid() != 0:
        print("(reload timing needs root for network namespaces; skipped)")
        return
    bench_reload(3)
    bench_reload(NODES)


if __name__ == "__main__":
    main()
