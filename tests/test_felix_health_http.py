"""The policy agent's health endpoint on a real loopback port, and calico-node's probe client."""
from __future__ import annotations

import http.client
import os
import socket
import threading
import time

import pytest

from node.felix.config import FelixConfig
from node.felix.health import (
    CALC_GRAPH,
    DATAPLANE,
    FELIX_STARTUP,
    HealthAggregator,
    apply_health_config,
    check_felix,
    felix_health_endpoint,
    register_felix_reporters,
)
from node.felix.httpserve import BackgroundHTTPServer, Response, listen_address


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def socket_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def agg(clock):
    aggregator = HealthAggregator(clock)
    yield aggregator
    aggregator.stop_http()


def serve(agg: HealthAggregator) -> int:
    agg.serve_http(True, "127.0.0.1", 0)
    assert agg.http_address is not None
    return agg.http_address[1]


def test_readiness_503_then_200(agg, clock):
    register_felix_reporters(agg)
    port = serve(agg)
    status, headers, body = get(port, "/readiness")
    assert status == 503
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert b"| FelixStartup              | -       | reporting live | reporting non-ready |" in body
    assert get(port, "/liveness")[0] == 200
    for name in (FELIX_STARTUP, CALC_GRAPH, DATAPLANE):
        agg.report(name, live=True, ready=True)
    status, headers, body = get(port, "/readiness")
    assert status == 200
    assert body.decode() == agg.summary().detail
    assert body.startswith(b"+----") and not body.endswith(b"\n")
    assert int(headers["content-length"]) == len(body)
    assert "server" not in headers  # Go sends none


def test_liveness_fails_when_a_reporter_stops_reporting(agg, clock):
    register_felix_reporters(agg)
    port = serve(agg)
    for name in (FELIX_STARTUP, CALC_GRAPH, DATAPLANE):
        agg.report(name, live=True, ready=True)
    assert get(port, "/liveness")[0] == 200
    clock.now += 25  # the dataplane keeps reporting; the calc graph has gone quiet
    agg.report(DATAPLANE, live=True, ready=True)
    assert get(port, "/liveness")[0] == 200
    clock.now += 6
    agg.report(DATAPLANE, live=True, ready=True)
    status, _, body = get(port, "/liveness")
    assert status == 503
    assert b"| CalculationGraph          | 30s     | timed out      | timed out       |" in body
    assert get(port, "/readiness")[0] == 503


def test_no_reporters_answers_200_with_the_empty_table(agg):
    port = serve(agg)
    for path in ("/liveness", "/readiness"):
        status, _, body = get(port, path)
        assert status == 200
        assert body.count(b"\n") == 3


def test_other_paths_get_gos_404_and_any_method_works(agg):
    port = serve(agg)
    status, headers, body = get(port, "/metrics")
    assert (status, body) == (404, b"404 page not found\n")
    assert headers["x-content-type-options"] == "nosniff"
    assert get(port, "/readiness/")[0] == 404
    assert get(port, "/readiness?verbose=1")[0] == 200  # the query is not part of the path
    assert get(port, "/readiness", "POST")[0] == 200
    status, headers, body = get(port, "/readiness", "HEAD")
    assert status == 200 and body == b""


def test_keep_alive_connection_serves_several_requests(agg):
    port = serve(agg)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/liveness")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
    finally:
        conn.close()


def test_stop_leaves_no_thread_or_socket_and_port_is_reusable(agg):
    threads_before = set(threading.enumerate())
    sockets_before = socket_fds()
    port = serve(agg)
    # An idle keep-alive connection must not hold the stop up.
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    idle.request("GET", "/liveness")
    idle.getresponse().read()
    started = time.monotonic()
    agg.serve_http(False)
    assert time.monotonic() - started < 3
    idle.close()
    assert agg.http_address is None
    assert set(threading.enumerate()) <= threads_before
    assert socket_fds() <= sockets_before
    with pytest.raises(ConnectionRefusedError):
        get(port, "/liveness")
    # The same port again, as after a config restart.
    agg.serve_http(True, "127.0.0.1", port)
    assert agg.http_address == ("127.0.0.1", port)
    assert get(port, "/liveness")[0] == 200


def test_serve_http_twice_keeps_the_running_server(agg):
    port = serve(agg)
    agg.serve_http(True, "127.0.0.1", free_port())  # Felix ignores a new address until restart
    assert agg.http_address == ("127.0.0.1", port)


def test_busy_port_is_retried_until_free(agg):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        agg.serve_http(True, "127.0.0.1", port)
        assert agg.http_address is None
    finally:
        blocker.close()
    deadline = time.monotonic() + 5
    while agg.http_address is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agg.http_address == ("127.0.0.1", port)
    assert get(port, "/readiness")[0] == 200


def test_a_failing_route_answers_500_and_the_server_lives_on():
    def broken(request):
        raise RuntimeError("boom")

    server = BackgroundHTTPServer("t", {"/x": broken, "/y": lambda r: Response(200, b"ok")})
    server.start("127.0.0.1", 0)
    try:
        port = server.address[1]
        assert get(port, "/x")[0] == 500
        assert get(port, "/y")[:3:2] == (200, b"ok")
    finally:
        server.stop()


def test_config_enables_the_endpoint(agg, clock):
    port = free_port()
    config = FelixConfig.resolve({"FELIX_HEALTHENABLED": "true", "FELIX_HEALTHHOST": "127.0.0.1",
                                  "FELIX_HEALTHPORT": str(port),
                                  "FELIX_HEALTHTIMEOUTOVERRIDES": "CalculationGraph=5s"})
    register_felix_reporters(agg)
    apply_health_config(agg, config)
    assert agg.http_address == ("127.0.0.1", port)
    body = get(port, "/readiness")[2]
    assert b"5s (override)" in body
    apply_health_config(agg, FelixConfig.resolve({}))  # HealthEnabled defaults to false
    assert agg.http_address is None


def test_default_endpoint_is_localhost_9099():
    config = FelixConfig.resolve({})
    assert (config.HealthEnabled, config.HealthHost, config.HealthPort) == (False, "localhost", 9099)
    assert listen_address("localhost", 9099)[1] == ("127.0.0.1", 9099)
    assert listen_address("", 9099)[1:] == (("::", 9099), True)
    assert listen_address("::1", 9099)[:2] == (socket.AF_INET6, ("::1", 9099))


# -- calico-node's probe client -------------------------------------------------------------

def test_probe_messages(agg):
    register_felix_reporters(agg)
    port = serve(agg)
    assert check_felix("readiness", "127.0.0.1", port) == (
        False, "calico/node is not ready: felix is not ready: readiness probe reporting 503")
    assert check_felix("liveness", "127.0.0.1", port) == (True, "")
    agg.report(CALC_GRAPH, live=False, ready=False)
    assert check_felix("liveness", "127.0.0.1", port) == (
        False, "calico/node is not ready: Felix is not live: liveness probe reporting 503")
    for name in (FELIX_STARTUP, CALC_GRAPH, DATAPLANE):
        agg.report(name, live=True, ready=True)
    assert check_felix("readiness", "127.0.0.1", port) == (True, "")


def test_probe_connection_refused():
    port = free_port()
    ok, message = check_felix("readiness", "127.0.0.1", port)
    assert not ok
    assert message == (f'calico/node is not ready: felix is not ready: Get "http://127.0.0.1:{port}/readiness": '
                       f"dial tcp 127.0.0.1:{port}: connect: connection refused")


def test_probe_times_out_on_a_silent_server():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel accepts the connection; nobody ever answers
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        ok, message = check_felix("liveness", "127.0.0.1", port, timeout=0.3)
        assert time.monotonic() - started < 2
    finally:
        silent.close()
    assert not ok
    assert message == (f'calico/node is not ready: Felix is not live: Get "http://127.0.0.1:{port}/liveness": '
                       "context deadline exceeded")


def test_probe_rejects_unknown_kind():
    with pytest.raises(ValueError):
        check_felix("startup")


def test_probe_endpoint_from_environment():
    assert felix_health_endpoint({}) == ("localhost", 9099)
    assert felix_health_endpoint({"FELIX_HEALTHHOST": "10.0.0.1", "FELIX_HEALTHPORT": "9199"}) == ("10.0.0.1", 9199)
    with pytest.raises(ValueError, match="Failed to parse value for port \"x\""):
        felix_health_endpoint({"FELIX_HEALTHPORT": "x"})


def test_stop_while_retrying_a_busy_port(caplog):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    threads_before = set(threading.enumerate())
    aggregator = HealthAggregator()
    try:
        aggregator.serve_http(True, "127.0.0.1", blocker.getsockname()[1])
        assert aggregator.http_address is None
        assert "Health endpoint failed, trying to restart it..." in caplog.text
        aggregator.stop_http()
        assert set(threading.enumerate()) <= threads_before
    finally:
        aggregator.stop_http()
        blocker.close()
