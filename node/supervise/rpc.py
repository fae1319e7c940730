"""supervisord's XML-RPC interface over its unix socket (what supervisorctl talks to).

Used by the health checks (is confd / bird running?), by the restarter, and by tests.
"""
from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from typing import Any

# supervisor/xmlrpc.py Faults.
BAD_NAME = 10
SPAWN_ERROR = 50
ALREADY_STARTED = 60

RUNNING = "RUNNING"


class SupervisorError(Exception):
    """supervisord could not be asked, or refused the call (``code``: its fault code)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class Unreachable(SupervisorError):
    """Nothing answers on the socket."""


class NoSuchProcess(SupervisorError):
    """supervisord has no program of that name."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float):
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host):  # one connection per call: calls are rare
        return _UnixConnection(self._path, self._timeout)


def socket_path(server_url: str) -> str:
    if not server_url.startswith("unix://"):
        raise ValueError(f"not a unix:// supervisord URL: {server_url!r}")
    return server_url[len("unix://"):]


class Supervisor:
    """A supervisord reached at ``unix://<path>``."""

    def __init__(self, server_url: str, timeout: float = 5.0):
        self.server_url = server_url
        self.path = socket_path(server_url)
        self._proxy = xmlrpc.client.ServerProxy("http://localhost/RPC2",
                                                transport=_UnixTransport(self.path, timeout))

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == BAD_NAME:
                raise NoSuchProcess(f"supervisord at {self.server_url} has no program {args[0]!r}") from None
            raise SupervisorError(f"supervisord at {self.server_url}: {method} failed: {fault.faultString}",
                                  fault.faultCode) from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            raise Unreachable(f"cannot reach supervisord at {self.server_url}: {reason}") from None

    def process_info(self, name: str) -> dict:
        return self._call("getProcessInfo", name)

    def all_process_info(self) -> list[dict]:
        return self._call("getAllProcessInfo")

    def start_process(self, name: str, wait: bool = False) -> bool:
        return self._call("startProcess", name, wait)

    def state(self) -> str:
        return self._call("getState")["statename"]


def status_line(info: dict) -> str:
    """One program's status as supervisorctl prints it."""
    return f"{info['name']:<33}{info['statename']:<10}{info.get('description', '')}".rstrip()
