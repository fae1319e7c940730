"""What keeps the agent's memory down: pyroute2 without the parts it never uses, and a
cap on glibc's malloc arenas."""
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
