"""Stand-ins for what ``calico-node health`` talks to: Felix's health endpoint (HTTP),
a BIRD control socket (canned replies per command) and supervisord's XML-RPC socket.
Each runs in a thread of the test process and is closed by its context manager."""
from __future__ import annotations

import http.server
import os
import socket
import socketserver
import threading
import xmlrpc.client
import xmlrpc.server
from pathlib import Path


class FakeFelix:
    """Answers /readiness and /liveness with the status codes set on it."""

    def __init__(self, readiness: int = 200, liveness: int = 200):
        self.status = {"/readiness": readiness, "/liveness": liveness}
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                code = fake.status.get(self.path, 404)
                body = b"ok\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> "FakeFelix":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeBird:
    """A BIRD control socket: greets, then answers each command line with ``replies[cmd]``
    (the raw reply text, codes included); an unknown command gets BIRD's syntax error."""

    GREETING = "0001 BIRD 1.6.8 ready.\n"

    def __init__(self, path: Path, replies: dict[str, str], greeting: str = GREETING):
        self.path = path
        self.replies = replies
        self.greeting = greeting
        self.commands: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(8)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(self.greeting.encode())
                buf = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                    while b"\n" in buf:
                        line, _, buf = buf.partition(b"\n")
                        cmd = line.decode().strip()
                        self.commands.append(cmd)
                        reply = self.replies.get(cmd, "9001 syntax error\n")
                        conn.sendall(reply.encode())
            except OSError:
                return

    def __enter__(self) -> "FakeBird":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _UnixHandler(xmlrpc.server.SimpleXMLRPCRequestHandler):
    disable_nagle_algorithm = False  # TCP_NODELAY does not apply to unix sockets


class _UnixXMLRPCServer(socketserver.ThreadingMixIn, xmlrpc.server.SimpleXMLRPCServer):
    address_family = socket.AF_UNIX
    daemon_threads = True


class FakeSupervisord:
    """supervisord's getProcessInfo/getAllProcessInfo for the programs in ``states``."""

    def __init__(self, path: Path, states: dict[str, str]):
        self.path = path
        self.states = states
        self.server = _UnixXMLRPCServer(str(path), requestHandler=_UnixHandler, logRequests=False, allow_none=True)
        self.server.register_function(self._info, "supervisor.getProcessInfo")
        self.server.register_function(lambda: [self._info(n) for n in self.states], "supervisor.getAllProcessInfo")
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def _info(self, name: str) -> dict:
        if name not in self.states:
            raise xmlrpc.client.Fault(10, f"BAD_NAME: {name}")
        state = self.states[name]
        return {"name": name, "group": name, "statename": state, "pid": 4242 if state == "RUNNING" else 0,
                "description": "pid 4242, uptime 0:01:00" if state == "RUNNING" else "Not started"}

    def __enter__(self) -> "FakeSupervisord":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# -- canned BIRD replies ------------------------------------------------------------------

def protocols_reply(*rows: str, header: str = "name     proto    table    state  since       info") -> str:
    """``show protocols`` as BIRD sends it: the header, the first row with 1002-, then
    space-continued rows, then 0000."""
    base = ["kernel1  Kernel   master   up     2024-01-01", "device1  Device   master   up     2024-01-01"]
    lines = [f"2002-{header}"]
    for i, row in enumerate([*base, *rows]):
        lines.append(("1002-" if i == 0 else " ") + row)
    lines.append("0000 ")
    return "\n".join(lines) + "\n"


STATUS_OK = ("1000-BIRD 1.6.8\n1011-Router ID is 10.0.0.1\n Current server time is 2024-01-01 00:00:10\n"
             " Last reboot on 2024-01-01 00:00:00\n Last reconfiguration on 2024-01-01 00:00:00\n"
             "0013 Daemon is up and running\n")
STATUS_GR = ("1000-BIRD 1.6.8\n1011-Router ID is 10.0.0.1\n Current server time is 2024-01-01 00:00:10\n"
             " Last reboot on 2024-01-01 00:00:00\n Last reconfiguration on 2024-01-01 00:00:00\n"
             "0024-Graceful restart recovery in progress\n  Waiting for 1 protocols to recover\n"
             "  Wait timer is 215/240\n0013 Daemon is up and running\n")
