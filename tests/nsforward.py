"""Reach a loopback service of this namespace from inside another network namespace.

A socket belongs to the network namespace of the thread that created it. So one thread
can step into a test's namespace, open a listening socket on its 127.0.0.1, step back,
and from then on accept connections made *inside* that namespace while opening the
matching upstream connections *here*. That lets a process under test (the policy agent
in a node namespace) use the test's own etcd on this namespace's loopback, while the test
keeps talking to that etcd directly; no address is added to any host interface.
"""
from __future__ import annotations

import ctypes
import os
import selectors
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def listen_in(netns: str, port: int, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket on ``host:port`` inside the named namespace."""
    result: dict = {}

    def make() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(64)
                result["sock"] = sock
            finally:
                _setns(own)
        except OSError as exc:
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    # A short-lived thread does the namespace switch, so no thread of ours stays in it.
    t = threading.Thread(target=make)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


class Forwarder:
    """Accept in ``netns`` on ``listen_port``; relay each connection to ``target`` here."""

    def __init__(self, netns: str, listen_port: int, target: tuple[str, int]):
        self._listener = listen_in(netns, listen_port)
        self._target = target
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name=f"nsforward-{netns}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        peers: dict[socket.socket, socket.socket] = {}

        def close(sock: socket.socket) -> None:
            other = peers.pop(sock, None)
            for s in (sock, other):
                if s is None:
                    continue
                peers.pop(s, None)
                try:
                    sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()

        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=1.0):
                    if key.data == "wake":
                        return
                    if key.data == "accept":
                        inner, _ = self._listener.accept()
                        try:
                            outer = socket.create_connection(self._target, timeout=5)
                        except OSError:
                            inner.close()
                            continue
                        outer.settimeout(None)
                        peers[inner], peers[outer] = outer, inner
                        sel.register(inner, selectors.EVENT_READ, "pipe")
                        sel.register(outer, selectors.EVENT_READ, "pipe")
                        continue
                    src = key.fileobj
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        close(src)
                        continue
                    try:
                        peers[src].sendall(data)
                    except (OSError, KeyError):
                        close(src)
        finally:
            for s in list(peers):
                close(s)
            sel.close()

    def close(self) -> None:
        self._stop.set()
        self._wake_w.send(b"x")
        self._thread.join(5)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> "Forwarder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
