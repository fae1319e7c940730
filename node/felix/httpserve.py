"""A stoppable HTTP server on background threads, for the policy agent's health and
metrics endpoints.

It answers the way Felix's Go servers do where a client can tell: exact-path routes with
Go's ``404 page not found`` elsewhere, any method on a route, HTTP/1.1 keep-alive, and a
listener that, like Felix's, keeps retrying every second while its port is taken. It
also stops completely (listener, open connections and every thread), so tests and config
restarts can start another on the same port.

Given an ``ssl.SSLContext`` it serves HTTPS: each connection's handshake runs on that
connection's own thread (a slow client never holds up the listener), and a client that
speaks plain HTTP to it gets Go's ``400 Bad Request`` ("Client sent an HTTP request to an
HTTPS server.") before the connection is closed.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Mapping

log = logging.getLogger(__name__)

RETRY_INTERVAL = 1.0  # Felix waits a second before listening again
IDLE_TIMEOUT = 60.0  # a keep-alive connection idle this long is closed
TEXT_PLAIN = "text/plain; charset=utf-8"  # what Go's content sniffing says for text
TLS_CLOSE_TIMEOUT = 1.0  # how long closing a TLS connection waits for the client's close_notify

# net/http: the first five bytes of a plain HTTP request that Go's TLS server answers
# with a 400 (tlsRecordHeaderLooksLikeHTTP), and that answer.
_PLAIN_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


Route = Callable[["Request"], Response]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]


def not_found() -> Response:
    """Go's ServeMux answer for a path nobody registered."""
    return Response(404, b"404 page not found\n",
                    [("Content-Type", TEXT_PLAIN), ("X-Content-Type-Options", "nosniff")])


def listen_address(host: str, port: int) -> tuple[socket.AddressFamily, tuple, bool]:
    """Where Go's ``net.Listen("tcp", host:port)`` would listen: (family, address, dual-stack).

    An empty host is every address of both families; a name resolves to its first IPv4
    address when it has one (so ``localhost`` is 127.0.0.1), as Go prefers for listening.
    """
    if host == "":
        if socket.has_ipv6:
            return socket.AF_INET6, ("::", port), True
        return socket.AF_INET, ("0.0.0.0", port), False
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(literal)
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        family, _, _, _, sockaddr = infos[0]
        return family, sockaddr, False
    if ip.version == 6:
        return socket.AF_INET6, (literal, port), False
    return socket.AF_INET, (literal, port), False


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that joins its handler threads and can cut open connections."""

    daemon_threads = False  # server_close() joins them
    block_on_close = True

    def __init__(self, family: socket.AddressFamily, address: tuple, dual_stack: bool,
                 handler: type[BaseHTTPRequestHandler], name: str = "",
                 tls: ssl.SSLContext | None = None):
        self.address_family = family
        self._dual_stack = dual_stack
        self._name = name
        self._tls = tls
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._closing = False
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would reverse-resolve the address (getfqdn); we do not
        # need the name and a reverse lookup can stall without DNS.
        if self._dual_stack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def finish_request(self, request, client_address) -> None:
        if self._tls is None:
            super().finish_request(request, client_address)
            return
        conn = self._tls_accept(request, client_address)
        if conn is None:
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            self._tls_close(conn)

    def _tls_accept(self, request: socket.socket, client_address) -> ssl.SSLSocket | None:
        """The TLS connection over ``request`` once its handshake is done; None (after
        Go's 400 to a plain HTTP client, or a logged handshake error) when there is none."""
        request.settimeout(IDLE_TIMEOUT)
        try:
            head = request.recv(5, socket.MSG_PEEK | socket.MSG_WAITALL)
        except OSError:
            return None
        if head in _PLAIN_HTTP_STARTS:
            log.info("%s: TLS handshake error from %s: client sent an HTTP request to an HTTPS server",
                     self._name, _peer(client_address))
            _answer_plain_http(request)
            return None
        try:
            conn = self._tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            log.info("%s: TLS setup failed for %s: %s", self._name, _peer(client_address), exc)
            return None
        with self._conns_lock:  # the socket is conn's now: cut_connections must find it
            self._conns.discard(request)
            if self._closing:
                conn.close()
                return None
            self._conns.add(conn)
        try:
            conn.do_handshake()
        except (OSError, ValueError) as exc:
            log.info("%s: TLS handshake error from %s: %s", self._name, _peer(client_address), exc)
            _drain_and_close(conn)  # so the client reads the alert rather than a reset
            with self._conns_lock:
                self._conns.discard(conn)
            return None
        return conn

    def _tls_close(self, conn: ssl.SSLSocket) -> None:
        try:
            conn.settimeout(TLS_CLOSE_TIMEOUT)
            conn.unwrap()  # close_notify, as Go's tls.Conn.Close sends
        except (OSError, ValueError):
            pass
        finally:
            with self._conns_lock:  # tracked until here, so stop() cuts a slow unwrap short
                self._conns.discard(conn)
            conn.close()

    def cut_connections(self) -> None:
        """End idle keep-alive connections so their handler threads finish."""
        with self._conns_lock:
            self._closing = True
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _peer(client_address) -> str:
    host, port = client_address[:2]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _answer_plain_http(sock: socket.socket) -> None:
    """Go's answer to plain HTTP on a TLS port."""
    try:
        sock.sendall(PLAIN_HTTP_ANSWER)
    except OSError:
        pass
    _drain_and_close(sock)


def _drain_and_close(sock: socket.socket) -> None:
    """Close after reading what the client still sends (for TLS_CLOSE_TIMEOUT at most):
    closing with unread data would reset the connection, and a reset can overtake the
    answer or alert the client has not read yet."""
    try:
        sock.shutdown(socket.SHUT_WR)  # on an SSLSocket: the TLS layer goes, the socket stays
        deadline = time.monotonic() + TLS_CLOSE_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                break
    except (OSError, ValueError):
        pass
    finally:
        sock.close()


def _handler_class(name: str, routes: Mapping[str, Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = IDLE_TIMEOUT

        def _serve(self) -> None:
            path = self.path.split("?", 1)[0]
            route = routes.get(path)
            if route is None:
                response = not_found()
            else:
                try:
                    response = route(Request(self.command, path, dict(self.headers.items())))
                except Exception:  # a broken route must not kill the server
                    log.exception("%s: handler for %s failed", name, path)
                    response = Response(500, b"internal error\n", [("Content-Type", TEXT_PLAIN)])
            self.send_response(response.status)
            for key, value in response.headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def send_response(self, code: int, message: str | None = None) -> None:
            # Go's server sends Date but no Server header.
            self.log_request(code)
            self.send_response_only(code, message)
            self.send_header("Date", self.date_time_string())

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _serve

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s: %s - %s", name, self.address_string(), format % args)

    return Handler


class BackgroundHTTPServer:
    """Serves ``routes`` (exact paths) on host:port from background threads until stopped,
    over TLS when given an SSLContext (``tls``)."""

    def __init__(self, name: str, routes: Mapping[str, Route], *, tls: ssl.SSLContext | None = None):
        self.name = name
        self.tls = tls  # None: plain HTTP
        self._handler = _handler_class(name, dict(routes))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._attempted = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.endpoint: tuple[str, int] | None = None  # what start() was asked for

    @property
    def running(self) -> bool:
        return self._thread is not None

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound (host, port), with the real port when 0 was asked for; None until bound."""
        with self._lock:
            if self._server is None:
                return None
            host, port = self._server.server_address[:2]
            return host, port

    def start(self, host: str, port: int, *, wait: float = 5.0) -> None:
        """Start serving; returns once the first attempt to listen succeeded or failed.

        A failed attempt (port taken) is retried every second in the background.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.name} server already started")
        self._stop.clear()
        self._attempted.clear()
        self.endpoint = (host, port)
        self._thread = threading.Thread(target=self._run, args=(host, port),
                                        name=f"{self.name} listener", daemon=True)
        self._thread.start()
        self._attempted.wait(wait)

    def _run(self, host: str, port: int) -> None:
        while not self._stop.is_set():
            try:
                server = _Server(*listen_address(host, port), self._handler, self.name, self.tls)
            except OSError as exc:
                log.error("%s endpoint failed, trying to restart it... (%s:%s: %s)",
                          self.name, host, port, exc)
                self._attempted.set()
                self._stop.wait(RETRY_INTERVAL)
                continue
            with self._lock:
                if self._stop.is_set():
                    server.server_close()
                    return
                self._server = server
            log.info("%s endpoint listening on %s", self.name, server.server_address[:2])
            self._attempted.set()
            server.serve_forever(poll_interval=0.2)
            return

    def stop(self) -> None:
        """Stop listening, cut open connections and join every thread; start() may follow."""
        if self._thread is None:
            return
        self._stop.set()
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.cut_connections()
            server.server_close()
        self._thread.join()
        self._thread = None
        self.endpoint = None
