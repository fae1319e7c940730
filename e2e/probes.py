"""Connectivity probes between network namespaces: TCP, UDP and ICMP, with real sockets.

A listener runs inside the target namespace (one small process serving TCP and UDP on a
port, answering each connection or datagram with the peer's address as it saw it, so a
probe also tells which source address arrived: NAT shows up). A probe runs inside the
source namespace and reports success, or failure within a short timeout.
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass

_SERVER = r"""
import selectors, socket, sys
port = int(sys.argv[1]); families = sys.argv[2]
sel = selectors.DefaultSelector()
for version in families:
    family = socket.AF_INET6 if version == "6" else socket.AF_INET
    any_addr = "::" if version == "6" else "0.0.0.0"
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(family, kind); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if version == "6" and len(families) > 1:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((any_addr, port))
        if kind == socket.SOCK_STREAM:
            s.listen(64)
        sel.register(s, selectors.EVENT_READ, kind)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        if key.data == socket.SOCK_STREAM:
            c, peer = key.fileobj.accept()
            try:
                c.settimeout(2); c.recv(64); c.sendall(peer[0].encode())
            except OSError:
                pass
            c.close()
        else:
            data, peer = key.fileobj.recvfrom(64)
            key.fileobj.sendto(peer[0].encode(), peer)
"""

_CLIENT = r"""
import socket, sys
proto, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
mark = int(sys.argv[5], 0)
family = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    s = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(timeout)
    if mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    if proto == "tcp":
        s.connect((host, port)); s.sendall(b"hi"); print(s.recv(64).decode())
    else:
        s.sendto(b"hi", (host, port)); print(s.recvfrom(64)[0].decode())
except OSError as exc:
    print("FAIL", exc); sys.exit(1)
"""


def _netns_cmd(netns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


class Listener:
    """TCP and UDP echo-the-peer-address listener on ``port`` inside ``netns``; ``family``
    4, 6 or 46 (both, on separate sockets, so an IPv4 peer is seen as itself rather than
    as an IPv4-mapped IPv6 address)."""

    def __init__(self, netns: str, port: int, family: int = 4):
        self.netns, self.port = netns, port
        self.proc = subprocess.Popen(_netns_cmd(netns, [sys.executable, "-c", _SERVER, str(port), str(family)]),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"listener on {netns}:{port} did not start: {self.proc.stderr.read()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Result:
    ok: bool
    source_seen: str = ""  # the source address the listener saw (TCP/UDP)
    detail: str = ""


def probe(netns: str | None, proto: str, host: str, port: int = 0, timeout: float = 1.0, mark: int = 0) -> Result:
    """One attempt from ``netns`` to ``host``: ``tcp``/``udp`` to a Listener's port, or
    ``icmp`` (a ping). ``mark``: the socket's packets carry this firewall mark (SO_MARK)."""
    if proto == "icmp":
        run = subprocess.run(_netns_cmd(netns, ["ping", "-c1", "-W", str(max(1, int(timeout))), "-n", host]),
                             capture_output=True, text=True)
        return Result(run.returncode == 0, detail=run.stdout.strip().splitlines()[-1] if run.stdout else "")
    run = subprocess.run(_netns_cmd(netns, [sys.executable, "-c", _CLIENT, proto, host, str(port), str(timeout),
                                            hex(mark)]),
                         capture_output=True, text=True, timeout=timeout + 10)
    out = run.stdout.strip()
    if run.returncode != 0:
        return Result(False, detail=out)
    return Result(True, source_seen=out)


def eventually(check, timeout: float = 10.0, interval: float = 0.2):
    """Call ``check()`` until it returns something truthy or ``timeout`` passes; return
    the last value (so an assertion can show it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


_ECHO = r"""
import socket, sys, threading
port = int(sys.argv[1])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen(16)
print("ready", flush=True)
def serve(c):
    with c:
        while True:
            data = c.recv(4096)
            if not data:
                return
            c.sendall(data)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

_TALKER = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
for line in sys.stdin:
    try:
        s.sendall(line.encode()); print(s.recv(4096).decode().strip(), flush=True)
    except OSError as exc:
        print("ERR", exc, flush=True)
"""


class EchoServer(Listener):
    """A TCP server in ``netns`` that echoes everything on every connection (long-lived
    connections, to check that established flows survive agent restarts and outages)."""

    def __init__(self, netns: str, port: int):
        self.netns, self.port = netns, port
        self.proc = subprocess.Popen(_netns_cmd(netns, [sys.executable, "-c", _ECHO, str(port)]),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError(f"echo server on {netns}:{port} did not start: {self.proc.stderr.read()}")


class Conversation:
    """One established TCP connection from ``netns`` to ``host:port``, kept open; ``say``
    sends a line over it and returns the reply (or an error text)."""

    def __init__(self, netns: str, host: str, port: int):
        self.proc = subprocess.Popen(_netns_cmd(netns, [sys.executable, "-c", _TALKER, host, str(port)]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        if self.proc.stdout.readline().strip() != "connected":
            self.close()
            raise RuntimeError(f"could not connect to {host}:{port}: {self.proc.stderr.read()}")

    def say(self, text: str, timeout: float = 5.0) -> str:
        import select
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return "TIMEOUT"
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Conversation":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
