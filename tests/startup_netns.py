"""Helpers for startup tests that need a namespace's interfaces *and* the test etcd.

``in_netns(ns, fn)`` runs ``fn`` in a thread that has joined the namespace (the thread
ends afterwards, so nothing else in the test process moves). ``NetnsRelay`` makes the
host-side test etcd reachable as ``127.0.0.1:<port>`` from inside a namespace: its
listening socket is created inside the namespace, and each accepted connection is
piped to the real endpoint from the host side. Nothing is added to the host's own
network; traffic stays on loopback.

The kernel here has no ``dummy`` link type, so tests use ``ifb`` links (and veth
pairs) wherever Calico's tests would use dummies.
"""
from __future__ import annotations

import ctypes
import os
import socket
import threading
from typing import Any, Callable

from netns import Namespace

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _join(ns_name: str) -> None:
    fd = os.open(f"/var/run/netns/{ns_name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns_name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(ns: Namespace | str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)`` evaluated inside the namespace; exceptions are re-raised."""
    name = ns if isinstance(ns, str) else ns.name
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            _join(name)
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=work, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def add_link(ns: Namespace, name: str, *addresses: str, up: bool = True) -> None:
    """An ifb link (a dummy stand-in) named ``name`` with the given addresses."""
    ns.run("ip", "link", "add", name, "type", "ifb")
    for addr in addresses:
        add_address(ns, name, addr)
    if up:
        ns.run("ip", "link", "set", name, "up")


def add_address(ns: Namespace, link: str, addr: str) -> None:
    family = "-6" if ":" in addr else "-4"
    extra = ["nodad"] if family == "-6" else []
    ns.run("ip", family, "addr", "add", addr, "dev", link, *extra)


class NetnsRelay:
    """``127.0.0.1:<port>`` inside a namespace, forwarded to ``target`` on the host."""

    def __init__(self, ns: Namespace, target: tuple[str, int]):
        self.ns = ns
        self.target = target
        self._listener: socket.socket | None = None
        self._closed = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.port = 0

    def __enter__(self) -> "NetnsRelay":
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            return sock

        self._listener = in_netns(self.ns, make)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(self.target, timeout=5)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            for sock in (inner, outer):
                # gRPC writes small frames; Nagle plus delayed ACKs would stall each one.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._track(sock)
            for src, dst in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True, name="relay-pipe").start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __exit__(self, *exc) -> None:
        self._closed.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            socks, self._socks = list(self._socks), set()
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass
