"""Throwaway network namespaces for tests: unique names, always cleaned up.

    with Namespace() as ns:
        ns.run("ip", "link", "add", "dummy0", "type", "dummy")
        ns.run("ip", "addr", "add", "10.9.0.1/24", "dev", "dummy0")

``veth_pair(a, b)`` joins two namespaces; ``open_linked(a, a_ip, b, b_ip)`` creates two
joined and addressed ones. Names carry the pid and a counter so concurrent runs cannot
collide; ``close()`` deletes the namespace (and so its links). ``Closing`` is the base of
test fixtures whose ``__enter__`` must clean up what it made when it fails.
"""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
from typing import Self

_counter = itertools.count()


class Namespace:
    def __init__(self, prefix: str = "cnt"):
        self.name = f"{prefix}-{os.getpid()}-{next(_counter)}"
        self._open = False

    def __enter__(self) -> "Namespace":
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self._open = True
        try:
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.close()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill what still runs inside (a process there would keep the namespace alive
        after ``ip netns delete``), then delete it."""
        if self._open:
            pids = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True,
                                  check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "delete", self.name], check=False)
            self._open = False

    def run(self, *argv: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """Run a command inside the namespace and capture its output."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], check=check,
                              capture_output=True, text=True, **kwargs)

    def popen(self, *argv: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)


def veth_pair(a: Namespace, a_if: str, b: Namespace, b_if: str) -> None:
    """Create a veth pair with one end in each namespace, both ends up."""
    # The pair is made in this (the host's) namespace: a random name cannot collide with a
    # concurrent run, and a failed move deletes what is still here.
    tmp = f"vt{os.urandom(5).hex()}"
    subprocess.run(["ip", "link", "add", tmp + "a", "type", "veth", "peer", "name", tmp + "b"], check=True)
    try:
        subprocess.run(["ip", "link", "set", tmp + "a", "netns", a.name, "name", a_if], check=True)
        subprocess.run(["ip", "link", "set", tmp + "b", "netns", b.name, "name", b_if], check=True)
    except BaseException:
        for end in (tmp + "a", tmp + "b"):
            subprocess.run(["ip", "link", "del", end], capture_output=True, check=False)
        raise
    a.run("ip", "link", "set", a_if, "up")
    b.run("ip", "link", "set", b_if, "up")


def open_linked(a: Namespace, a_ip: str, b: Namespace, b_ip: str, ifname: str = "eth0") -> None:
    """Create namespaces ``a`` and ``b``, joined by a veth pair named ``ifname`` at both
    ends, addressed ``a_ip``/24 and ``b_ip``/24. On failure the caller closes both
    (closing a namespace that was never created does nothing)."""
    a.__enter__()
    b.__enter__()
    veth_pair(a, ifname, b, ifname)
    a.run("ip", "addr", "add", f"{a_ip}/24", "dev", ifname)
    b.run("ip", "addr", "add", f"{b_ip}/24", "dev", ifname)


class Closing:
    """A context manager whose ``__enter__`` runs ``setup()`` and whose ``__exit__`` runs
    ``close()``. When ``setup()`` fails, ``close()`` runs before the error propagates
    (``__exit__`` does not run when ``__enter__`` raises), so ``close()`` must cope with a
    half-done setup."""

    def setup(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()
