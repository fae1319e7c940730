"""EtcdKV against a real etcd: Calico's write semantics, watches, TLS, auth, failures."""
from __future__ import annotations

import threading
import time

import pytest

from etcd_server import EtcdServer, TcpProxy, free_port
from node.config import DatastoreConfig
from node.datastore.etcd import DELETE, PUT, EtcdKV, WatchEvent, parse_endpoint
from node.errors import (
    AlreadyExists,
    Compacted,
    ConfigError,
    Conflict,
    ConnectionFailed,
    NotFound,
    Unauthorized,
)

pytestmark = pytest.mark.etcd

WAIT = 15.0


def wait_until(predicate, timeout: float = WAIT, what: str = "condition") -> None:
    """For state with no event to wait on (thread exit); polls briefly."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def take(watch, count: int, timeout: float = WAIT) -> list[WatchEvent]:
    """Read ``count`` events from a watch on a helper thread, bounded by ``timeout``."""
    events: list = []
    errors: list = []

    def reader():
        try:
            for event in watch:
                events.append(event)
                if len(events) == count:
                    return
        except Exception as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        watch.cancel()
        thread.join(WAIT)
        raise AssertionError(f"got {len(events)} of {count} watch events within {timeout}s: {events}")
    if errors:
        raise errors[0]
    return events


def grpc_request_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "consume_request_iterator" in t.name]


# -- basic operations ---------------------------------------------------------------


def test_create_get_update_put_delete_round_trip(etcd_kv):
    rev = etcd_kv.create("/calico/t/a", b"one")
    got = etcd_kv.get("/calico/t/a")
    assert got.value == b"one" and got.mod_revision == rev and got.create_revision == rev

    rev2 = etcd_kv.update("/calico/t/a", b"two", rev)
    assert rev2 > rev
    assert etcd_kv.get("/calico/t/a").value == b"two"

    rev3 = etcd_kv.put("/calico/t/a", "three")
    assert rev3 > rev2
    assert etcd_kv.get("/calico/t/a").mod_revision == rev3

    deleted = etcd_kv.delete("/calico/t/a", rev3)
    assert deleted.value == b"three" and deleted.mod_revision == rev3
    assert etcd_kv.get("/calico/t/a") is None


def test_create_of_existing_key_raises_already_exists_and_keeps_value(etcd_kv):
    etcd_kv.create("/calico/t/a", b"first")
    with pytest.raises(AlreadyExists) as info:
        etcd_kv.create("/calico/t/a", b"second")
    assert info.value.identifier == "/calico/t/a"
    assert etcd_kv.get("/calico/t/a").value == b"first"


def test_update_and_delete_of_missing_key_raise_not_found(etcd_kv):
    with pytest.raises(NotFound, match="/calico/t/missing"):
        etcd_kv.update("/calico/t/missing", b"x", 5)
    with pytest.raises(NotFound):
        etcd_kv.delete("/calico/t/missing")
    with pytest.raises(NotFound):
        etcd_kv.delete("/calico/t/missing", 5)
    assert etcd_kv.get("/calico/t/missing") is None  # update must not have created it


def test_update_with_stale_revision_conflicts(etcd_kv):
    stale = etcd_kv.create("/calico/t/a", b"v1")
    current = etcd_kv.update("/calico/t/a", b"v2", stale)
    with pytest.raises(Conflict) as info:
        etcd_kv.update("/calico/t/a", b"v3", stale)
    assert info.value.identifier == "/calico/t/a"
    assert str(current) in str(info.value)
    assert etcd_kv.get("/calico/t/a").value == b"v2"


def test_delete_with_stale_revision_conflicts_and_keeps_key(etcd_kv):
    stale = etcd_kv.create("/calico/t/a", b"v1")
    etcd_kv.put("/calico/t/a", b"v2")
    with pytest.raises(Conflict):
        etcd_kv.delete("/calico/t/a", stale)
    assert etcd_kv.get("/calico/t/a").value == b"v2"


def test_list_is_sorted_scoped_to_prefix_and_reports_read_revision(etcd_kv):
    for key in ("/calico/t/c", "/calico/t/a", "/calico/t/b", "/calico/tt/x", "/calico/s"):
        etcd_kv.put(key, key.encode())
    items, revision = etcd_kv.list("/calico/t/")
    assert [kv.key for kv in items] == ["/calico/t/a", "/calico/t/b", "/calico/t/c"]
    assert [kv.value for kv in items] == [b"/calico/t/a", b"/calico/t/b", b"/calico/t/c"]
    assert revision == etcd_kv.current_revision()
    assert etcd_kv.list("/calico/none/") == ([], revision)


# -- watches ------------------------------------------------------------------------


def test_watch_sees_puts_and_deletes_in_order_with_previous_values(etcd_kv):
    _, revision = etcd_kv.list("/calico/w/")
    etcd_kv.put("/calico/other", b"ignored")
    with etcd_kv.watch("/calico/w/", revision + 1) as watch:
        r1 = etcd_kv.create("/calico/w/a", b"1")
        r2 = etcd_kv.update("/calico/w/a", b"2", r1)
        r3 = etcd_kv.create("/calico/w/b", b"x")
        etcd_kv.delete("/calico/w/a")
        r4 = etcd_kv.current_revision()
        events = take(watch, 4)
    assert events == [
        WatchEvent(PUT, "/calico/w/a", b"1", r1, None),
        WatchEvent(PUT, "/calico/w/a", b"2", r2, b"1"),
        WatchEvent(PUT, "/calico/w/b", b"x", r3, None),
        WatchEvent(DELETE, "/calico/w/a", None, r4, b"2"),
    ]


def test_watch_from_list_revision_replays_only_later_changes(etcd_kv):
    etcd_kv.put("/calico/w/early", b"e")
    _, revision = etcd_kv.list("/calico/w/")
    late = etcd_kv.put("/calico/w/late", b"l")  # written before the watch starts
    with etcd_kv.watch("/calico/w/", revision + 1) as watch:
        assert take(watch, 1) == [WatchEvent(PUT, "/calico/w/late", b"l", late, None)]


def test_watch_from_compacted_revision_raises_compacted(etcd, etcd_config):
    with EtcdKV(etcd_config) as kv:
        first = kv.put("/calico/w/a", b"1")
        kv.put("/calico/w/a", b"2")
        latest = kv.put("/calico/w/a", b"3")
        kv.compact(latest)
        watch = kv.watch("/calico/w/", first)
        with pytest.raises(Compacted) as info:
            next(watch)
        assert info.value.requested == first
        assert info.value.compact_revision == latest
        # From the compaction point on, watching works again.
        with kv.watch("/calico/w/", latest) as fresh:
            assert take(fresh, 1)[0].value == b"3"


def test_cancel_ends_a_blocked_iteration_and_frees_grpc_threads(etcd_kv):
    start = etcd_kv.current_revision() + 1
    for _ in range(3):
        watch = etcd_kv.watch("/calico/w/", start)
        done = threading.Event()
        thread = threading.Thread(target=lambda w=watch: (list(w), done.set()), daemon=True)
        thread.start()
        watch.cancel()
        assert done.wait(WAIT), "iteration did not end after cancel()"
        thread.join(WAIT)
    wait_until(lambda: not grpc_request_threads(), what="gRPC request threads to exit")


def test_closing_the_client_cancels_its_watches(etcd_clean_config):
    kv = EtcdKV(etcd_clean_config)
    watch = kv.watch("/calico/w/", kv.current_revision() + 1)
    kv.close()
    assert list(watch) == []


def test_watch_raises_connection_failed_when_etcd_goes_away(etcd, etcd_config):
    with EtcdKV(etcd_config) as kv:
        watch = kv.watch("/calico/w/", kv.current_revision() + 1)
        etcd.stop()
        with pytest.raises(ConnectionFailed, match=etcd.endpoint):
            take(watch, 1)
        etcd.start()
        # The client dials again by itself on the next call.
        assert kv.put("/calico/w/a", b"back") > 0


# -- connecting -----------------------------------------------------------------------


def test_unreachable_endpoint_gives_connection_failed_naming_it():
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(endpoint,)), dial_timeout=2, request_timeout=2)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        kv.get("/calico/x")
    assert time.monotonic() - started < 5
    assert endpoint in str(info.value)
    assert "refused" in str(info.value).lower()
    assert "RpcError" not in str(info.value)
    kv.close()


def test_first_reachable_endpoint_is_used(etcd_clean):
    dead = f"http://127.0.0.1:{free_port()}"
    config = DatastoreConfig(etcd_endpoints=(dead, etcd_clean.endpoint))
    with EtcdKV(config, dial_timeout=2) as kv:
        kv.put("/calico/x", b"1")
        assert kv.endpoint == etcd_clean.endpoint


def test_fails_over_to_next_endpoint_when_current_one_dies(etcd_clean):
    with TcpProxy(etcd_clean.client_port) as proxy:
        config = DatastoreConfig(etcd_endpoints=(proxy.endpoint, etcd_clean.endpoint))
        with EtcdKV(config, dial_timeout=2) as kv:
            kv.put("/calico/x", b"1")
            assert kv.endpoint == proxy.endpoint
            proxy.cut()
            try:
                kv.get("/calico/x")  # may be the call that notices the failure
            except ConnectionFailed as exc:
                assert proxy.endpoint in str(exc)
            assert kv.get("/calico/x").value == b"1"
            assert kv.endpoint == etcd_clean.endpoint


def test_endpoint_parsing_and_config_errors(tmp_path):
    assert parse_endpoint("127.0.0.1:2379").url == "http://127.0.0.1:2379"
    assert parse_endpoint("https://etcd.example").target == "etcd.example:2379"
    with pytest.raises(ConfigError, match="unsupported scheme"):
        parse_endpoint("unix:///run/etcd.sock")
    with pytest.raises(ConfigError, match=r"etcd endpoint 'http://\[::1' is not a valid URL"):
        parse_endpoint("http://[::1")
    # A config built directly (not from the environment) is checked by the client too.
    with pytest.raises(ConfigError, match="has no host name"):
        EtcdKV(DatastoreConfig(etcd_endpoints=("http://:2379",)))
    with pytest.raises(ConfigError, match="no etcd endpoints"):
        EtcdKV(DatastoreConfig())
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="both"):
        EtcdKV(DatastoreConfig(etcd_endpoints=("https://127.0.0.1:2379",), etcd_cert_file=str(cert)))


# -- TLS and auth ---------------------------------------------------------------------


def test_tls_with_ca_and_client_certificate(tls_etcd):
    config = DatastoreConfig(
        etcd_endpoints=(tls_etcd.endpoint,),
        etcd_ca_cert_file=tls_etcd.ca_file,
        etcd_cert_file=tls_etcd.client_cert_file,
        etcd_key_file=tls_etcd.client_key_file,
    )
    assert tls_etcd.endpoint.startswith("https://")
    with EtcdKV(config) as kv:
        start = kv.current_revision() + 1
        with kv.watch("/calico/tls/", start) as watch:
            rev = kv.create("/calico/tls/a", b"secret")
            assert take(watch, 1) == [WatchEvent(PUT, "/calico/tls/a", b"secret", rev, None)]
        assert kv.get("/calico/tls/a").value == b"secret"


def test_tls_server_rejects_client_without_certificate(tls_etcd):
    config = DatastoreConfig(etcd_endpoints=(tls_etcd.endpoint,), etcd_ca_cert_file=tls_etcd.ca_file)
    with EtcdKV(config, dial_timeout=3, request_timeout=3) as kv:
        with pytest.raises(ConnectionFailed, match=tls_etcd.endpoint) as info:
            kv.get("/calico/tls/a")
    assert "etcd refused this client's certificate (none: ETCD_CERT_FILE is not set)" in str(info.value)


def test_tls_with_a_ca_that_did_not_sign_the_server_names_the_ca_file(tls_etcd, tmp_path):
    other = EtcdServer(tls=True)  # never started: only its CA is used
    try:
        config = DatastoreConfig(etcd_endpoints=(tls_etcd.endpoint,), etcd_ca_cert_file=other.ca_file,
                                 etcd_cert_file=tls_etcd.client_cert_file, etcd_key_file=tls_etcd.client_key_file)
        with EtcdKV(config, dial_timeout=3, request_timeout=3) as kv:
            with pytest.raises(ConnectionFailed) as info:
                kv.get("/calico/tls/a")
    finally:
        other.close()
    assert str(info.value) == (
        f"TLS with etcd at {tls_etcd.endpoint} failed: etcd's certificate is not signed by the CA in "
        f"ETCD_CA_CERT_FILE={other.ca_file} (unable to get local issuer certificate); "
        "set ETCD_CA_CERT_FILE to the CA that signed etcd's certificate")


def test_unusable_tls_files_in_a_directly_built_config_are_config_errors(tls_etcd, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("junk")
    config = DatastoreConfig(etcd_endpoints=(tls_etcd.endpoint,), etcd_ca_cert_file=str(garbage))
    with pytest.raises(ConfigError, match=f"ETCD_CA_CERT_FILE={garbage}: no PEM certificate"):
        EtcdKV(config)


@pytest.fixture
def auth_etcd(etcd):
    etcd.enable_auth("s3cret")
    return etcd


def test_username_and_password_authenticate(auth_etcd):
    config = DatastoreConfig(etcd_endpoints=(auth_etcd.endpoint,), etcd_username="root",
                             etcd_password="s3cret")
    with EtcdKV(config) as kv:
        rev = kv.create("/calico/auth/a", b"1")
        assert kv.get("/calico/auth/a").mod_revision == rev
        with kv.watch("/calico/auth/", rev) as watch:
            assert take(watch, 1)[0].key == "/calico/auth/a"


def test_wrong_password_gives_unauthorized(auth_etcd):
    config = DatastoreConfig(etcd_endpoints=(auth_etcd.endpoint,), etcd_username="root",
                             etcd_password="wrong")
    with EtcdKV(config) as kv:
        with pytest.raises(Unauthorized, match="authentication failed") as info:
            kv.get("/calico/auth/a")
    assert auth_etcd.endpoint in str(info.value)


def test_missing_credentials_give_unauthorized(auth_etcd):
    with EtcdKV(DatastoreConfig(etcd_endpoints=(auth_etcd.endpoint,))) as kv:
        with pytest.raises(Unauthorized, match="user name is empty"):
            kv.get("/calico/auth/a")


def test_client_logs_in_again_after_etcd_restart_invalidates_token(auth_etcd):
    config = DatastoreConfig(etcd_endpoints=(auth_etcd.endpoint,), etcd_username="root",
                             etcd_password="s3cret")
    with EtcdKV(config) as kv:
        kv.put("/calico/auth/a", b"1")
        auth_etcd.restart()  # simple tokens live in memory: the old one is now invalid
        try:
            kv.get("/calico/auth/a")  # may be the call that sees the dropped connection
        except ConnectionFailed:
            pass
        assert kv.get("/calico/auth/a").value == b"1"
        rev = kv.put("/calico/auth/a", b"2")
        with kv.watch("/calico/auth/", rev) as watch:
            assert take(watch, 1)[0].value == b"2"
