"""A thin etcd v3 key/value layer: the operations libcalico-go's etcdv3 backend uses.

We use python-etcd3 for its generated gRPC stubs and messages (``etcd3.etcdrpc``) but
drive them ourselves, because two parts of its client do not work for us:

* it sends the auth token as gRPC *call credentials*, which current gRPC refuses to
  send over a plaintext channel, so username/password over ``http://`` fails;
* its watch machinery is one shared thread that redials in a tight loop when etcd is
  down, never stops, and reports compaction only through callbacks.

So this module owns the channel (endpoint choice, TLS, keepalive, token in plain
metadata, re-authentication when etcd restarts and forgets the token) and runs each
watch as its own gRPC stream that a caller iterates and can cancel.

gRPC's C core writes its own log lines to stderr (for example ``E... ssl_transport_security.cc
...`` when a TLS file is unusable, ``I...`` on a failed handshake). Every failure it
reports also comes back as an RPC error that we turn into one clear message, so this
module sets ``GRPC_VERBOSITY=NONE`` before gRPC is first imported, unless the operator
set ``GRPC_VERBOSITY`` (e.g. ``debug`` to troubleshoot a connection). TLS files are
checked with ``ssl`` before any dial (``node.config.check_etcd_tls_files``).

Write semantics follow libcalico-go: create is a ``Version(key) == 0`` transaction,
update and revisioned delete are ``ModRevision(key) == rev`` transactions, put is
unconditional, and an object's revision is its etcd ModRevision.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import weakref
from typing import Iterator

# Before the first ``import grpc`` anywhere in the process: see the module docstring.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

import grpc  # noqa: E402
from etcd3 import etcdrpc  # noqa: E402
from etcd3.etcdrpc import kv_pb2  # noqa: E402

from node.config import (  # noqa: E402
    DEFAULT_ETCD_PORT,
    ETCDV3,
    DatastoreConfig,
    EtcdEndpoint,
    check_etcd_tls_files,
    check_etcd_tls_inline,
    parse_etcd_endpoint,
)
from node.datastore.etcd_srv import SrvLookup, discover_etcd_endpoints  # noqa: E402
from node.datastore.records import DELETE, KV, PUT, WatchEvent  # noqa: E402,F401 (re-exported)
from node.errors import (  # noqa: E402
    AlreadyExists,
    Compacted,
    ConfigError,
    Conflict,
    ConnectionFailed,
    DatastoreError,
    NotFound,
    Unauthorized,
)

log = logging.getLogger(__name__)

# libcalico-go's etcdv3 client settings.
DIAL_TIMEOUT = 10.0
KEEPALIVE_TIME = 30.0
KEEPALIVE_TIMEOUT = 10.0
# Per-request deadline; generous because a list of every resource can be large.
REQUEST_TIMEOUT = 30.0
DEFAULT_PORT = DEFAULT_ETCD_PORT


# etcd reports these auth problems as INVALID_ARGUMENT rather than UNAUTHENTICATED.
_AUTH_FAILURE_MARKERS = (
    "authentication failed",
    "user name is empty",
    "user name not found",
    "permission denied",
    "invalid auth token",
    "invalid auth management",
)
# The token is stale (etcd restarted, token TTL expired, auth store changed): log in again.
_STALE_TOKEN_MARKERS = ("invalid auth token", "revision of auth store is old")


# Endpoints are parsed and checked by node.config when the config is built; EtcdKV
# parses them again (with the same function) for configs built directly.
Endpoint = EtcdEndpoint
parse_endpoint = parse_etcd_endpoint


def _to_bytes(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")


def _to_str(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def prefix_range_end(prefix: bytes) -> bytes:
    """The exclusive end of the key range that starts with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # every key from `prefix` up
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _kv(raw: kv_pb2.KeyValue) -> KV:
    return KV(key=_to_str(raw.key), value=raw.value, mod_revision=raw.mod_revision,
              create_revision=raw.create_revision)


def _details(exc: grpc.RpcError) -> str:
    try:
        return exc.details() or exc.code().name
    except Exception:  # pragma: no cover - non-call RpcError
        return str(exc)


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    try:
        return exc.code()
    except Exception:  # pragma: no cover
        return None


def _is_stale_token(exc: grpc.RpcError) -> bool:
    return any(m in _details(exc) for m in _STALE_TOKEN_MARKERS)


def _translate(code: grpc.StatusCode | None, details: str, endpoint: str, what: str) -> DatastoreError:
    """Map a gRPC status to our error classes with a message naming the endpoint."""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return ConnectionFailed(f"cannot reach etcd at {endpoint} ({what}): {details}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return ConnectionFailed(f"etcd at {endpoint} did not answer in time ({what})")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) or any(
        m in details for m in _AUTH_FAILURE_MARKERS
    ):
        return Unauthorized(f"etcd at {endpoint} rejected {what}: {details}")
    status = f"{code.name}: " if code is not None else ""
    return DatastoreError(f"etcd at {endpoint} failed {what}: {status}{details}")


class _Connection:
    """One dialled channel to one endpoint plus the auth token used on it."""

    def __init__(self, endpoint: Endpoint, channel: grpc.Channel):
        self.endpoint = endpoint
        self.channel = channel
        self.metadata: tuple[tuple[str, str], ...] | None = None
        self.kv = etcdrpc.KVStub(channel)
        self.watch = etcdrpc.WatchStub(channel)
        self.maintenance = etcdrpc.MaintenanceStub(channel)
        self.auth = etcdrpc.AuthStub(channel)
        self.lease = etcdrpc.LeaseStub(channel)


class EtcdKV:
    """Key/value operations against an etcd v3 cluster, with Calico's error semantics.

    Thread-safe. The channel is dialled lazily on first use; after a connection failure
    it is dropped and the next call dials again, starting with the next endpoint, so a
    dead cluster member is skipped.
    """

    def __init__(self, config: DatastoreConfig, *, dial_timeout: float = DIAL_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT, srv_lookup: SrvLookup | None = None):
        if config.datastore_type != ETCDV3:
            raise ConfigError(f"EtcdKV needs datastore type {ETCDV3!r}, not {config.datastore_type!r}")
        urls = config.etcd_endpoints
        if not urls and config.etcd_discovery_srv:
            # Once, here, as libcalico-go's NewEtcdV3Client does (``srv_lookup``: tests' DNS).
            urls = discover_etcd_endpoints(config.etcd_discovery_srv, config.etcd_discovery_srv_setting, srv_lookup)
            log.info("etcd endpoints from %s=%s: %s", config.etcd_discovery_srv_setting, config.etcd_discovery_srv,
                     ",".join(urls))
        if not urls:
            raise ConfigError("no etcd endpoints configured (set ETCD_ENDPOINTS or ETCD_DISCOVERY_SRV)")
        self._endpoints = [parse_endpoint(url) for url in urls]
        self._dial_timeout = dial_timeout
        self._request_timeout = request_timeout
        self._credentials = (config.etcd_username, config.etcd_password) if config.uses_auth else None
        self._tls = self._load_tls(config) if any(e.secure for e in self._endpoints) else None
        self._tls_files = (config.etcd_ca_cert_file, config.etcd_cert_file)
        # With calicoctl.cfg's inline PEM text, a TLS failure names those fields instead.
        self._tls_inline = (bool(config.etcd_ca_cert), bool(config.etcd_cert)) \
            if config.etcd_ca_cert or config.etcd_cert or config.etcd_key else None
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        self._next_endpoint = 0
        self._closed = False
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

    # -- connection management ----------------------------------------------------

    @staticmethod
    def _load_tls(config: DatastoreConfig) -> grpc.ChannelCredentials:
        if config.etcd_cert or config.etcd_key or config.etcd_ca_cert:
            # calicoctl.cfg's inline PEM text (etcdCACert, etcdCert, etcdKey).
            check_etcd_tls_inline(config.etcd_ca_cert, config.etcd_cert, config.etcd_key)
            return grpc.ssl_channel_credentials(
                root_certificates=config.etcd_ca_cert.encode() if config.etcd_ca_cert else None,
                private_key=config.etcd_key.encode(), certificate_chain=config.etcd_cert.encode())
        # Usually already done when the config was built; repeated for configs built directly.
        check_etcd_tls_files(config.etcd_ca_cert_file, config.etcd_cert_file, config.etcd_key_file)

        def read(path: str, what: str) -> bytes | None:
            if not path:
                return None
            try:
                with open(path, "rb") as fh:
                    return fh.read()
            except OSError as exc:
                raise ConfigError(f"cannot read etcd {what} {path}: {exc.strerror}") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read(config.etcd_ca_cert_file, "CA certificate"),
            private_key=read(config.etcd_key_file, "key"),
            certificate_chain=read(config.etcd_cert_file, "certificate"),
        )

    def _open_channel(self, endpoint: Endpoint) -> grpc.Channel:
        options = [
            ("grpc.keepalive_time_ms", int(KEEPALIVE_TIME * 1000)),
            ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT * 1000)),
            # Lists of every resource can exceed gRPC's 4 MiB default.
            ("grpc.max_receive_message_length", -1),
        ]
        if endpoint.secure:
            return grpc.secure_channel(endpoint.target, self._tls, options=options)
        return grpc.insecure_channel(endpoint.target, options=options)

    def _dial_one(self, endpoint: Endpoint) -> _Connection:
        channel = self._open_channel(endpoint)
        conn = _Connection(endpoint, channel)
        what = "connect"
        try:
            # Status needs no auth; it proves the transport (and TLS) works.
            conn.maintenance.Status(etcdrpc.StatusRequest(), timeout=self._dial_timeout)
            if self._credentials is not None:
                what = f"login as user {self._credentials[0]!r}"
            self._authenticate(conn)
        except grpc.RpcError as exc:
            channel.close()
            details = _details(exc)
            if endpoint.secure:
                tls_problem = self._tls_problem(details)
                if tls_problem:
                    raise ConnectionFailed(f"TLS with etcd at {endpoint.url} failed: {tls_problem}") from None
            raise _translate(_code(exc), details, endpoint.url, what) from None
        except BaseException:
            channel.close()
            raise
        return conn

    def _tls_problem(self, details: str) -> str:
        """A plain account of a failed TLS handshake, or '' if ``details`` is not one. It
        names the settings the material came from: the ETCD_*_FILE variables (or their
        calicoctl.cfg fields), or calicoctl.cfg's inline etcdCACert, etcdCert and etcdKey."""
        if self._tls_inline is not None:
            ca_name, cert_name, key_name = "etcdCACert", "etcdCert", "etcdKey"
            has_ca, has_cert = self._tls_inline
            trusted = "the CA in etcdCACert" if has_ca else "any system CA (etcdCACert is not set)"
            given = "etcdCert" if has_cert else "none: etcdCert is not set"
        else:
            ca_name, cert_name, key_name = "ETCD_CA_CERT_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"
            ca_file, cert_file = self._tls_files
            trusted = f"the CA in ETCD_CA_CERT_FILE={ca_file}" if ca_file else \
                "any system CA (ETCD_CA_CERT_FILE is not set)"
            given = f"ETCD_CERT_FILE={cert_file}" if cert_file else "none: ETCD_CERT_FILE is not set"
        if "CERTIFICATE_VERIFY_FAILED" in details:
            reason = details.rsplit("CERTIFICATE_VERIFY_FAILED:", 1)[-1].strip()
            reason = reason[:-len(": OK")] if reason.endswith(": OK") else reason
            return (f"etcd's certificate is not signed by {trusted} ({reason}); "
                    f"set {ca_name} to the CA that signed etcd's certificate")
        if "TSI_DATA_CORRUPTED" in details or "BAD_CERTIFICATE" in details or "CERTIFICATE_REQUIRED" in details:
            return (f"etcd refused this client's certificate ({given}); set {cert_name} and "
                    f"{key_name} to a certificate signed by a CA that etcd trusts")
        if "handshake" in details.lower():
            return details
        return ""

    def _authenticate(self, conn: _Connection) -> None:
        if self._credentials is None:
            conn.metadata = None
            return
        user, password = self._credentials
        try:
            resp = conn.auth.Authenticate(etcdrpc.AuthenticateRequest(name=user, password=password),
                                          timeout=self._request_timeout)
        except grpc.RpcError as exc:
            if "authentication is not enabled" in _details(exc):
                log.debug("etcd at %s has auth disabled; ignoring configured credentials", conn.endpoint.url)
                conn.metadata = None
                return
            raise
        conn.metadata = (("token", resp.token),)

    def _dial(self) -> _Connection:
        failures = []
        count = len(self._endpoints)
        for offset in range(count):
            index = (self._next_endpoint + offset) % count
            endpoint = self._endpoints[index]
            try:
                conn = self._dial_one(endpoint)
            except ConnectionFailed as exc:
                log.debug("etcd endpoint %s unusable: %s", endpoint.url, exc)
                failures.append(str(exc))
                continue
            self._next_endpoint = index
            log.debug("connected to etcd at %s", endpoint.url)
            return conn
        if count == 1:
            raise ConnectionFailed(failures[0])
        raise ConnectionFailed("cannot reach any etcd endpoint: " + "; ".join(failures))

    def _connection(self) -> _Connection:
        with self._lock:
            if self._closed:
                raise DatastoreError("etcd client is closed")
            if self._conn is None:
                self._conn = self._dial()
            return self._conn

    def _invalidate(self, conn: _Connection) -> None:
        """Drop a connection that failed, so the next call dials (the next endpoint first)."""
        with self._lock:
            if self._conn is not conn:
                return
            self._conn = None
            self._next_endpoint = (self._endpoints.index(conn.endpoint) + 1) % len(self._endpoints)
        conn.channel.close()

    def _reauthenticate(self, conn: _Connection) -> None:
        with self._lock:
            if self._conn is not conn:
                return
            self._authenticate(conn)

    def _call(self, what: str, rpc):
        """Run ``rpc(conn)``; re-login once on a stale token; translate gRPC errors."""
        relogged = False
        while True:
            conn = self._connection()
            try:
                return rpc(conn)
            except grpc.RpcError as exc:
                if not relogged and self._credentials is not None and _is_stale_token(exc):
                    relogged = True
                    log.info("etcd auth token rejected (%s); logging in again", _details(exc))
                    try:
                        self._reauthenticate(conn)
                    except grpc.RpcError as auth_exc:
                        exc = auth_exc
                    else:
                        continue
                err = _translate(_code(exc), _details(exc), conn.endpoint.url, what)
                if isinstance(err, ConnectionFailed):
                    self._invalidate(conn)
                raise err from None

    @property
    def endpoint(self) -> str:
        """The endpoint currently (or next to be) used; for log messages."""
        with self._lock:
            conn = self._conn
            return conn.endpoint.url if conn else self._endpoints[self._next_endpoint].url

    # -- key/value operations -----------------------------------------------------

    def get(self, key: str) -> KV | None:
        request = etcdrpc.RangeRequest(key=_to_bytes(key))
        resp = self._call(f"get {key}", lambda c: c.kv.Range(
            request, timeout=self._request_timeout, metadata=c.metadata))
        return _kv(resp.kvs[0]) if resp.kvs else None

    def list(self, prefix: str) -> tuple[list[KV], int]:
        """All keys under ``prefix`` sorted by key, and the store revision of the read.

        A watch started at ``revision + 1`` sees exactly the changes after this list.
        """
        raw = _to_bytes(prefix) or b"\x00"
        request = etcdrpc.RangeRequest(
            key=raw, range_end=prefix_range_end(_to_bytes(prefix)),
            sort_order=etcdrpc.RangeRequest.ASCEND, sort_target=etcdrpc.RangeRequest.KEY,
        )
        resp = self._call(f"list {prefix}", lambda c: c.kv.Range(
            request, timeout=self._request_timeout, metadata=c.metadata))
        return [_kv(item) for item in resp.kvs], resp.header.revision

    def current_revision(self) -> int:
        request = etcdrpc.RangeRequest(key=b"\x00", count_only=True)
        resp = self._call("read revision", lambda c: c.kv.Range(
            request, timeout=self._request_timeout, metadata=c.metadata))
        return resp.header.revision

    def _txn(self, what: str, compare: list, success: list, failure: list) -> etcdrpc.TxnResponse:
        request = etcdrpc.TxnRequest(compare=compare, success=success, failure=failure)
        return self._call(what, lambda c: c.kv.Txn(request, timeout=self._request_timeout,
                                                   metadata=c.metadata))

    def create(self, key: str, value: bytes | str) -> int:
        """Store a new key; returns its revision. AlreadyExists if the key is present."""
        raw = _to_bytes(key)
        resp = self._txn(
            f"create {key}",
            compare=[etcdrpc.Compare(key=raw, target=etcdrpc.Compare.VERSION,
                                     result=etcdrpc.Compare.EQUAL, version=0)],
            success=[etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=raw, value=_to_bytes(value)))],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=raw))],
        )
        if not resp.succeeded:
            raise AlreadyExists(key)
        return resp.header.revision

    def update(self, key: str, value: bytes | str, revision: int) -> int:
        """Replace a key only if it is still at ``revision``; returns the new revision."""
        if revision < 1:
            raise ValueError(f"update of {key} needs the stored revision, got {revision}")
        raw = _to_bytes(key)
        resp = self._txn(
            f"update {key}",
            compare=[etcdrpc.Compare(key=raw, target=etcdrpc.Compare.MOD,
                                     result=etcdrpc.Compare.EQUAL, mod_revision=revision)],
            success=[etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=raw, value=_to_bytes(value)))],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=raw))],
        )
        if not resp.succeeded:
            self._raise_failed_compare(key, revision, resp)
        return resp.header.revision

    def put(self, key: str, value: bytes | str, *, ttl: float | None = None) -> int:
        """Unconditional write (calicoctl apply); returns the new revision. With ``ttl``
        (seconds) the key is attached to a new lease of that many whole seconds, so etcd
        deletes it unless it is written again in time (libcalico-go's KVPair.TTL: a lease
        granted per write, the previous one left to expire)."""
        lease = 0
        if ttl is not None and ttl > 0:
            grant = etcdrpc.LeaseGrantRequest(TTL=int(ttl))
            lease = self._call(f"grant a {int(ttl)}s lease for {key}", lambda c: c.lease.LeaseGrant(
                grant, timeout=self._request_timeout, metadata=c.metadata)).ID
        request = etcdrpc.PutRequest(key=_to_bytes(key), value=_to_bytes(value), lease=lease)
        resp = self._call(f"put {key}", lambda c: c.kv.Put(
            request, timeout=self._request_timeout, metadata=c.metadata))
        return resp.header.revision

    def delete(self, key: str, revision: int | None = None) -> KV:
        """Delete one key (only if still at ``revision`` when given); returns what was deleted."""
        raw = _to_bytes(key)
        compare = []
        if revision is not None:
            if revision < 1:
                raise ValueError(f"delete of {key} with a revision needs one >= 1, got {revision}")
            compare.append(etcdrpc.Compare(key=raw, target=etcdrpc.Compare.MOD,
                                           result=etcdrpc.Compare.EQUAL, mod_revision=revision))
        resp = self._txn(
            f"delete {key}",
            compare=compare,
            success=[etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(key=raw, prev_kv=True))],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=raw))],
        )
        if not resp.succeeded:
            self._raise_failed_compare(key, revision, resp)
        deleted = resp.responses[0].response_delete_range
        if deleted.deleted == 0 or not deleted.prev_kvs:
            raise NotFound(key)
        return _kv(deleted.prev_kvs[0])

    def upgrade_host_affinities(self, node: str) -> int:
        """IPAM UpgradeHost's labelling of older block affinities: nothing to do in etcd,
        which stores the v1 affinity records (one key per host and block, no labels)."""
        return 0

    @staticmethod
    def _raise_failed_compare(key: str, revision: int | None, resp: etcdrpc.TxnResponse) -> None:
        current = resp.responses[0].response_range.kvs
        if not current:
            raise NotFound(key)
        raise Conflict(key, f"revision {revision} does not match stored revision {current[0].mod_revision}")

    def compact(self, revision: int) -> None:
        """Discard history before ``revision``; waits until the compaction is applied."""
        request = etcdrpc.CompactionRequest(revision=revision, physical=True)
        self._call(f"compact to {revision}", lambda c: c.kv.Compact(
            request, timeout=self._request_timeout, metadata=c.metadata))

    # -- watches ------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> "Watch":
        """Watch every key under ``prefix`` from ``start_revision`` (inclusive).

        Returns once etcd has registered the watch, so any write made afterwards is
        seen. A compacted ``start_revision`` surfaces as Compacted from the iterator.
        """
        relogged = False
        while True:
            conn = self._connection()
            watch = Watch(self, conn, prefix, start_revision, self._request_timeout)
            try:
                watch._await_created()
            except _StaleToken:
                if relogged or self._credentials is None:
                    raise Unauthorized(f"etcd at {conn.endpoint.url} rejected watch {prefix}: "
                                       "invalid auth token") from None
                relogged = True
                try:
                    self._reauthenticate(conn)
                except grpc.RpcError as exc:
                    err = _translate(_code(exc), _details(exc), conn.endpoint.url, "login")
                    if isinstance(err, ConnectionFailed):
                        self._invalidate(conn)
                    raise err from None
                continue
            self._watches.add(watch)
            return watch

    def close(self) -> None:
        """Cancel open watches and close the channel; further calls raise DatastoreError."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        for watch in list(self._watches):
            watch.cancel()
        if conn is not None:
            conn.channel.close()

    def __enter__(self) -> "EtcdKV":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _StaleToken(Exception):
    """Internal: etcd refused to create a watch because our token is stale."""


def _request_stream(requests: queue.SimpleQueue) -> Iterator[etcdrpc.WatchRequest]:
    # A module-level generator (not a method) so gRPC's sender thread holds no
    # reference to the Watch; ``None`` ends the stream and frees that thread.
    while True:
        request = requests.get()
        if request is None:
            return
        yield request


class Watch:
    """One etcd watch stream on a key prefix: iterate it for WatchEvents, in revision order.

    Iteration blocks until events arrive. It ends (StopIteration) after ``cancel()``;
    it raises Compacted if the start revision was compacted away, ConnectionFailed if
    the connection drops, Unauthorized/DatastoreError if etcd cancels the watch.
    """

    def __init__(self, kv: EtcdKV, conn: _Connection, prefix: str, start_revision: int,
                 create_timeout: float):
        self.prefix = prefix
        self.start_revision = start_revision
        self._kv = kv
        self._conn = conn
        self._create_timeout = create_timeout
        self._pending: collections.deque[WatchEvent] = collections.deque()
        self._cancelled = threading.Event()
        self._finished = False
        self._create_expired = False
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        raw = _to_bytes(prefix)
        create = etcdrpc.WatchCreateRequest(
            key=raw or b"\x00", range_end=prefix_range_end(raw),
            start_revision=start_revision, prev_kv=True,
        )
        self._requests.put(etcdrpc.WatchRequest(create_request=create))
        self._call = conn.watch.Watch(_request_stream(self._requests), metadata=conn.metadata)

    def _await_created(self) -> None:
        """Block until etcd confirms the watch (bounded by the request timeout)."""
        timer = threading.Timer(self._create_timeout, self._expire_create)
        timer.daemon = True
        timer.start()
        try:
            resp = self._next_response()
        finally:
            timer.cancel()
        if resp.created and resp.canceled:
            self._finish()
            if any(m in resp.cancel_reason for m in _STALE_TOKEN_MARKERS):
                raise _StaleToken(resp.cancel_reason)
        self._absorb(resp)

    def _expire_create(self) -> None:
        self._create_expired = True
        self._call.cancel()

    def _next_response(self) -> etcdrpc.WatchResponse:
        url = self._conn.endpoint.url
        try:
            return next(self._call)
        except StopIteration:
            self._finish()
            if self._cancelled.is_set():
                raise
            raise ConnectionFailed(f"etcd at {url} closed the watch on {self.prefix}") from None
        except grpc.RpcError as exc:
            self._finish()
            if self._cancelled.is_set():
                raise StopIteration from None
            if self._create_expired:
                err: DatastoreError = ConnectionFailed(
                    f"etcd at {url} did not confirm the watch on {self.prefix} "
                    f"within {self._create_timeout}s")
            else:
                # CANCELLED here means the channel was closed under us (another call failed).
                err = _translate(_code(exc), _details(exc), url, f"watch {self.prefix}")
            if isinstance(err, ConnectionFailed):
                self._kv._invalidate(self._conn)
            raise err from None

    def _absorb(self, resp: etcdrpc.WatchResponse) -> None:
        if resp.compact_revision:
            self._finish()
            raise Compacted(self.start_revision, resp.compact_revision)
        if resp.canceled:
            self._finish()
            raise _translate(None, resp.cancel_reason or "watch cancelled by server",
                             self._conn.endpoint.url, f"watch {self.prefix}")
        for event in resp.events:
            prev = event.prev_kv.value if event.HasField("prev_kv") else None
            if event.type == kv_pb2.Event.DELETE:
                self._pending.append(WatchEvent(DELETE, _to_str(event.kv.key), None,
                                                event.kv.mod_revision, prev))
            else:
                self._pending.append(WatchEvent(PUT, _to_str(event.kv.key), event.kv.value,
                                                event.kv.mod_revision, prev))

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> WatchEvent:
        while not self._pending:
            if self._finished or self._cancelled.is_set():
                raise StopIteration
            self._absorb(self._next_response())
        return self._pending.popleft()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._requests.put(None)

    def cancel(self) -> None:
        """Stop the watch; a blocked iteration ends with StopIteration. Idempotent."""
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        self._requests.put(None)
        self._call.cancel()

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()

    def __del__(self) -> None:
        try:
            self.cancel()
        except Exception:
            pass
