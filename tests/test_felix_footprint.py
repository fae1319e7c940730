"""What keeps the agent's memory down: pyroute2 without the parts it never uses, no etcd
client on the Kubernetes datastore, no prometheus_client with metrics off, slotted
records for what exists once per endpoint or rule, and a cap on glibc's malloc arenas."""
from __future__ import annotations

import os
import subprocess
import sys

CHECK = """
import sys
import node.felix.agent
unused = sorted(m for m in ("pyroute2.ndb", "pyroute2.ipdb", "pyroute2.ipvs", "sqlite3") if m in sys.modules)
from node.rtnl import IPRoute
with IPRoute() as ipr:
    assert any(link.get_attr("IFLA_IFNAME") == "lo" for link in ipr.get_links())
from pyroute2 import NDB, IPRoute as full_iproute, config   # the package's own names still work
assert full_iproute is IPRoute and NDB.__module__ == "pyroute2.ndb.main" and config.__name__ == "pyroute2.config"
try:
    from pyroute2 import NoSuchName
except ImportError:
    pass
else:
    raise AssertionError("a missing name imported")
print(unused)
"""


def test_agent_loads_only_the_netlink_parts_and_the_package_stays_whole():
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


ARENAS = """
import ctypes, os, sys, tempfile, threading
from node.felix.agent import limit_malloc_arenas
applied = limit_malloc_arenas() if sys.argv[1] == "limit" else None
together = threading.Barrier(6)
def work():   # six threads alive at once, each allocating through glibc (above pymalloc's size)
    blobs = [bytes(4096) for _ in range(200)]
    together.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as out:
    fp = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(fp))
    libc.fclose(ctypes.c_void_p(fp))
    heaps = open(out.name).read().count("<heap nr=")
print(applied, heaps)
"""


def _arenas(how: str, operator_choice: str = "") -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if operator_choice:
        env["MALLOC_ARENA_MAX"] = operator_choice
    run = subprocess.run([sys.executable, "-c", ARENAS, how], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    applied, heaps = run.stdout.split()
    return applied, int(heaps)


def test_malloc_arenas_are_capped_unless_the_operator_chose():
    assert _arenas("default")[1] > 2          # an arena per thread allocating at the same time
    assert _arenas("limit") == ("True", 2)
    assert _arenas("limit", operator_choice="4") == ("False", 4)


TRIM = """
from node.felix.agent import release_freed_memory
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
blobs = [bytes(4000) + bytes([i % 256]) for i in range(20_000)]   # 80 MB from malloc's heap
pin = bytes(4000) + b"pin"                                         # above them: the heap cannot shrink
del blobs
before = rss()
release_freed_memory()
print(before, rss())
"""


def test_freed_memory_goes_back_to_the_kernel():
    run = subprocess.run([sys.executable, "-c", TRIM], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    before, after = map(int, run.stdout.split())
    assert before - after > 50, (before, after)


KDD_IMPORTS = """
import sys
import node.cli.calico_node, node.cli.roles.felix, node.felix.agent, node.felix.dryrun
import node.datastore.factory, node.datastore.sources, node.datastore.syncer, node.datastore.kubernetes.kv
print(sorted(m for m in ("grpc", "etcd3", "node.datastore.etcd", "prometheus_client") if m in sys.modules))
"""


def test_the_agent_on_kubernetes_loads_no_etcd_client_and_no_metrics_library_until_asked():
    """gRPC and the etcd client (about 16 MB resident) load only with EtcdKV; the
    Kubernetes backend and the syncer share gRPC-free records. prometheus_client loads
    when the agent starts its metrics (Felix's default is off)."""
    run = subprocess.run([sys.executable, "-c", KDD_IMPORTS], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_per_endpoint_and_per_rule_records_have_no_instance_dict():
    import dataclasses

    from node.felix import types as t
    from node.felix.calc import v1

    for cls in (v1.Rule, v1.Policy, v1.WorkloadEndpoint, t.ParsedRule, t.Policy, t.WorkloadEndpoint, t.RouteUpdate):
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        first = dataclasses.fields(cls)[0].name
        values = {name: "x" for name in required} | {first: "x"}
        record = cls(**values)
        assert not hasattr(record, "__dict__"), cls
        # Still a frozen dataclass: equal by value, hashable, replaceable, immutable.
        again = cls(**values)
        assert record == again and hash(record) == hash(again)
        assert getattr(dataclasses.replace(record, **{first: "y"}), first) == "y"
        try:
            setattr(record, first, "z")
        except dataclasses.FrozenInstanceError:
            pass
        else:
            raise AssertionError(f"{cls.__name__} is mutable")
