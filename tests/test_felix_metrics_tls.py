"""TLS on the policy agent's /metrics endpoint (PrometheusMetricsCertFile, KeyFile, CAFile
and ClientAuth), checked with real TLS connections on loopback against certificates the
openssl CLI makes here: each client auth mode, TLS versions and ciphers, plain HTTP on
the TLS port, reloading rotated files, bad files, the parameters, and the real agent."""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.felix.config import FelixConfig, v1_config_from_spec
from node.felix.httpserve import PLAIN_HTTP_ANSWER
from node.felix.metrics import FelixMetrics, metrics_server, start_metrics_server
from node.felix.metrics_tls import MetricsTLS, MetricsTLSError, tls_versions

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
"""


@dataclass(frozen=True)
class Certs:
    dir: Path

    def __getattr__(self, name: str) -> str:  # certs.ca1, certs.server_key...
        if name.startswith("_"):
            raise AttributeError(name)
        return str(self.dir / (name.replace("_key", ".key") if name.endswith("_key") else name + ".pem"))

    def pair(self, name: str) -> tuple[str, str]:
        return str(self.dir / f"{name}.pem"), str(self.dir / f"{name}.key")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=Test {name}",
             "-config", "openssl.cnf", "-extensions", "ca", cwd=d)


def _make_leaf(d: Path, name: str, ca: str, kind: str, key: tuple[str, ...] = ("ec", "-pkeyopt",
                                                                               "ec_paramgen_curve:P-256")) -> None:
    _openssl("req", "-new", "-newkey", *key, "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}", "-config", "openssl.cnf", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "2",
             "-out", f"{name}.pem", "-extfile", "openssl.cnf", "-extensions", kind, cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    """ca1 signs server, server2 (RSA) and client1; ca2 signs client2."""
    d = tmp_path_factory.mktemp("certs")
    (d / "openssl.cnf").write_text(OPENSSL_CNF)
    _make_ca(d, "ca1")
    _make_ca(d, "ca2")
    _make_leaf(d, "server", "ca1", "server", ("rsa:2048",))
    _make_leaf(d, "server2", "ca1", "server", ("rsa:2048",))
    _make_leaf(d, "client1", "ca1", "client")
    _make_leaf(d, "client2", "ca2", "client")
    (d / "garbage.pem").write_text("not a certificate\n")
    return Certs(d)


def _client_context(certs: Certs, client: str | None = None, *, version: ssl.TLSVersion | None = None,
                    ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.ca1)  # the client checks the server's certificate too
    if client:
        ctx.load_cert_chain(*certs.pair(client))
    if version is not None:
        if version < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer an old version
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1, on purpose
            ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


@dataclass
class Session:
    server_cn: str
    version: str
    cipher: str
    alpn: str | None


def scrape(port: int, ctx: ssl.SSLContext, host: str = "127.0.0.1") -> tuple[int, bytes, Session]:
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        sock = conn.sock
        session = Session(dict(x[0] for x in sock.getpeercert()["subject"])["commonName"], sock.version(),
                          sock.cipher()[0], sock.selected_alpn_protocol())
        return resp.status, resp.read(), session
    finally:
        conn.close()


def accepted(port: int, ctx: ssl.SSLContext) -> bool:
    """Whether a TLS client is served /metrics (False: the server refused the handshake)."""
    try:
        status, body, _ = scrape(port, ctx)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False
    assert status == 200 and b"felix_host" in body
    return True


@contextmanager
def tls_server(certs: Certs, mode: str, *, cert: str | None = None, key: str | None = None,
               ca: str | None = None, env: dict | None = None):
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    tls = MetricsTLS(cert or certs.server, key or certs.server_key, ca or certs.ca1, mode, env or {})
    server = metrics_server(m, tls)
    server.start("127.0.0.1", 0)
    try:
        yield server.address[1]
    finally:
        server.stop()


# -- client auth modes ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("mode, without, from_ca, from_other_ca", [
    ("NoClientCert", True, True, True),  # no certificate asked for: any client
    ("VerifyClientCertIfGiven", True, True, False),
    ("RequireAndVerifyClientCert", False, True, False),
    # Felix admits the other CA's client here (Go does not verify); Python's ssl cannot
    # ask for a certificate without verifying it, so this mode verifies (documented).
    ("RequireAnyClientCert", False, True, False),
])
def test_client_auth_modes(certs, mode, without, from_ca, from_other_ca, version):
    with tls_server(certs, mode) as port:
        assert accepted(port, _client_context(certs, version=version)) is without
        assert accepted(port, _client_context(certs, "client1", version=version)) is from_ca
        assert accepted(port, _client_context(certs, "client2", version=version)) is from_other_ca


def test_missing_client_certificate_is_told_certificate_required(certs):
    with tls_server(certs, "RequireAndVerifyClientCert") as port:
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED|certificate required"):
            scrape(port, _client_context(certs))
        with pytest.raises(ssl.SSLError, match="UNKNOWN_CA|unknown ca"):
            scrape(port, _client_context(certs, "client2"))


def test_served_over_tls_with_the_server_certificate(certs):
    with tls_server(certs, "RequireAndVerifyClientCert") as port:
        status, body, session = scrape(port, _client_context(certs, "client1"))
        assert status == 200 and b"# TYPE felix_host gauge" in body
        # The client verified the server's certificate for 127.0.0.1 against ca1.
        assert session.server_cn == "server"
        assert session.version == "TLSv1.3"
        assert session.alpn in (None, "http/1.1")
        # By name too (the certificate's DNS SAN).
        assert scrape(port, _client_context(certs, "client1"), host="localhost")[0] == 200


def test_keep_alive_over_tls(certs):
    with tls_server(certs, "NoClientCert") as port:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=_client_context(certs), timeout=5)
        try:
            for _ in range(3):
                conn.request("GET", "/metrics")
                resp = conn.getresponse()
                assert resp.status == 200 and b"felix_host" in resp.read()
            conn.request("GET", "/nope")
            assert conn.getresponse().status == 404
        finally:
            conn.close()


def test_intermediate_in_the_ca_file_is_an_anchor(certs, tmp_path):
    # Go trusts every certificate of its pool; so a CA file holding only the client's own
    # certificate admits that client (and nobody else).
    with tls_server(certs, "RequireAndVerifyClientCert", ca=certs.client2) as port:
        assert accepted(port, _client_context(certs, "client2"))
        assert not accepted(port, _client_context(certs, "client1"))


# -- plain HTTP, versions, ciphers --------------------------------------------------------------

def test_plain_http_on_the_tls_port_gets_gos_400(certs):
    with tls_server(certs, "NoClientCert") as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert (resp.status, resp.read()) == (400, b"Client sent an HTTP request to an HTTPS server.\n")
        finally:
            conn.close()
        assert PLAIN_HTTP_ANSWER.startswith(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        # Other non-TLS bytes: the connection is just closed (or reset), nothing answered.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"hello there\r\n")
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
        assert accepted(port, _client_context(certs))  # and the server still serves


def test_tls_versions(certs):
    with tls_server(certs, "NoClientCert") as port:
        assert accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_2))
        assert accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_3))
        assert not accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_1))
    with tls_server(certs, "NoClientCert", env={"TLS_MIN_VERSION": "1.3"}) as port:
        assert not accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_2))
        assert accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_3))


def test_tls_min_version_and_cipher_parsing(caplog):
    assert tls_versions({}).minimum == ssl.TLSVersion.TLSv1_2
    assert tls_versions({"TLS_MIN_VERSION": "1.2"}).minimum == ssl.TLSVersion.TLSv1_2
    assert tls_versions({"TLS_MIN_VERSION": "1.3"}).minimum == ssl.TLSVersion.TLSv1_3
    with caplog.at_level(logging.WARNING):
        assert tls_versions({"TLS_MIN_VERSION": "1.1"}).minimum == ssl.TLSVersion.TLSv1_2
    assert "TLS_MIN_VERSION" in caplog.text
    default = tls_versions({}).tls12_ciphers
    assert default[0] == "ECDHE-ECDSA-AES256-GCM-SHA384" and len(default) == 9  # Go lists one twice
    assert "AES128-GCM-SHA256" not in default  # legacy suites only when asked for
    picked = tls_versions({"TLS_CIPHER_SUITES": "TLS_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_GCM_SHA256"})
    assert picked.tls12_ciphers == ("AES128-GCM-SHA256",)
    only13 = tls_versions({"TLS_CIPHER_SUITES": "TLS_AES_256_GCM_SHA384"})
    assert only13.minimum == ssl.TLSVersion.TLSv1_3 and only13.tls12_ciphers == ()
    with pytest.raises(MetricsTLSError, match="TLS_CIPHER_SUITES: unsupported cipher: 'RC4'"):
        tls_versions({"TLS_CIPHER_SUITES": "TLS_AES_128_GCM_SHA256,RC4"})


def test_tls12_ciphers(certs):
    legacy = "AES128-GCM-SHA256"  # RSA key exchange: not in Calico's default list
    with tls_server(certs, "NoClientCert") as port:
        session = scrape(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_2))[2]
        assert session.cipher.startswith("ECDHE-RSA-")
        assert not accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_2, ciphers=legacy))
    env = {"TLS_CIPHER_SUITES": "TLS_RSA_WITH_AES_128_GCM_SHA256"}
    with tls_server(certs, "NoClientCert", env=env) as port:
        session = scrape(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_2, ciphers=legacy))[2]
        assert session.cipher == legacy
        assert not accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_2,
                                                  ciphers="ECDHE-RSA-AES128-GCM-SHA256"))
        assert accepted(port, _client_context(certs, version=ssl.TLSVersion.TLSv1_3))


# -- reloading --------------------------------------------------------------------------------

def _put(src: str, dst: Path) -> None:
    """Replace ``dst`` atomically, as a rotated Kubernetes secret is."""
    tmp = dst.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def test_rotated_files_apply_to_the_next_connection(certs, tmp_path, caplog):
    cert, key, ca = tmp_path / "tls.crt", tmp_path / "tls.key", tmp_path / "ca.crt"
    _put(certs.server, cert)
    _put(certs.server_key, key)
    _put(certs.ca1, ca)
    with tls_server(certs, "RequireAndVerifyClientCert", cert=str(cert), key=str(key), ca=str(ca)) as port:
        def server_cn() -> str:
            return scrape(port, _client_context(certs, "client1"))[2].server_cn

        assert server_cn() == "server"
        _put(certs.server2, cert)
        _put(certs.server2_key, key)
        assert server_cn() == "server2"
        # A new CA: the other CA's clients now, and not the old one's.
        _put(certs.ca2, ca)
        assert accepted(port, _client_context(certs, "client2"))
        assert not accepted(port, _client_context(certs, "client1"))
        # A broken key fails handshakes (logged, naming the file) until it is fixed.
        _put(certs.garbage, key)
        with caplog.at_level(logging.ERROR):
            with pytest.raises(ssl.SSLError, match="INTERNAL_ERROR|internal error"):
                scrape(port, _client_context(certs, "client2"))
        assert f"PrometheusMetricsKeyFile {key} holds no PEM private key" in caplog.text
        _put(certs.server2_key, key)
        assert accepted(port, _client_context(certs, "client2"))


def test_stop_cuts_open_tls_connections(certs):
    threads_before = set(threading.enumerate())
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    server = metrics_server(m, MetricsTLS(certs.server, certs.server_key, certs.ca1, "NoClientCert", {}))
    server.start("127.0.0.1", 0)
    port = server.address[1]
    idle = http.client.HTTPSConnection("127.0.0.1", port, context=_client_context(certs), timeout=5)
    idle.request("GET", "/metrics")
    idle.getresponse().read()  # a kept-alive TLS connection
    silent = socket.create_connection(("127.0.0.1", port))  # never says hello
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) <= threads_before
    idle.close()
    silent.close()


# -- the parameters and bad files ------------------------------------------------------------

def _config(**values: str) -> FelixConfig:
    env = {"FELIX_PROMETHEUSMETRICSENABLED": "true", "FELIX_PROMETHEUSMETRICSHOST": "127.0.0.1",
           "FELIX_PROMETHEUSMETRICSPORT": "0"}
    env.update({f"FELIX_{k}": v for k, v in values.items()})
    return FelixConfig.resolve(env)


def test_parameters_defaults_and_sources():
    c = FelixConfig.resolve({})
    assert (c.PrometheusMetricsCertFile, c.PrometheusMetricsKeyFile, c.PrometheusMetricsCAFile) == ("", "", "")
    assert c.PrometheusMetricsClientAuth == "RequireAndVerifyClientCert"
    c = FelixConfig.resolve({"FELIX_PROMETHEUSMETRICSCERTFILE": "/c.pem", "FELIX_PROMETHEUSMETRICSKEYFILE": "/k.pem",
                             "FELIX_PROMETHEUSMETRICSCAFILE": "/ca.pem",
                             "FELIX_PROMETHEUSMETRICSCLIENTAUTH": "verifyclientcertifgiven"})
    assert (c.PrometheusMetricsCertFile, c.PrometheusMetricsKeyFile, c.PrometheusMetricsCAFile) == (
        "/c.pem", "/k.pem", "/ca.pem")
    assert c.PrometheusMetricsClientAuth == "VerifyClientCertIfGiven"  # Felix's oneof ignores case
    spec = {"prometheusMetricsCertFile": "/etc/tls/tls.crt", "prometheusMetricsKeyFile": "/etc/tls/tls.key",
            "prometheusMetricsCAFile": "/etc/tls/ca.crt", "prometheusMetricsClientAuth": "RequireAnyClientCert"}
    c = FelixConfig.resolve({}, global_config=v1_config_from_spec(spec))
    assert (c.PrometheusMetricsCertFile, c.PrometheusMetricsKeyFile, c.PrometheusMetricsCAFile,
            c.PrometheusMetricsClientAuth) == ("/etc/tls/tls.crt", "/etc/tls/tls.key", "/etc/tls/ca.crt",
                                               "RequireAnyClientCert")
    assert c.sources["PrometheusMetricsClientAuth"] == "FelixConfiguration default"


def test_bad_client_auth_value_is_reported_and_the_default_kept():
    c = FelixConfig.resolve({"FELIX_PROMETHEUSMETRICSCLIENTAUTH": "Sometimes"})
    assert c.PrometheusMetricsClientAuth == "RequireAndVerifyClientCert"
    assert any("PrometheusMetricsClientAuth" in p and "Sometimes" in p for p in c.problems)


def _start(config: FelixConfig, caplog) -> object:
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    with caplog.at_level(logging.INFO):
        return start_metrics_server(m, config, env={})


def test_only_the_ca_file_set_is_plain_http(certs, caplog):
    server = _start(_config(PROMETHEUSMETRICSCAFILE=certs.ca1), caplog)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.address[1], timeout=5)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()


def test_from_config_over_tls(certs, caplog):
    server = _start(_config(PROMETHEUSMETRICSCERTFILE=certs.server, PROMETHEUSMETRICSKEYFILE=certs.server_key,
                            PROMETHEUSMETRICSCAFILE=certs.ca1), caplog)
    try:
        port = server.address[1]
        assert accepted(port, _client_context(certs, "client1"))
        assert not accepted(port, _client_context(certs))  # the default: RequireAndVerifyClientCert
    finally:
        server.stop()
    assert "Starting metrics https server" in caplog.text


@pytest.mark.parametrize("files, mode, expected", [
    # Felix: the certificate or key alone turns TLS on, and then all three files are needed.
    (dict(PROMETHEUSMETRICSCERTFILE="server"), "NoClientCert",
     "PrometheusMetricsKeyFile and PrometheusMetricsCAFile not set"),
    (dict(PROMETHEUSMETRICSKEYFILE="server_key", PROMETHEUSMETRICSCAFILE="ca1"), "NoClientCert",
     "PrometheusMetricsCertFile not set"),
    (dict(PROMETHEUSMETRICSCERTFILE="server", PROMETHEUSMETRICSKEYFILE="server_key"), "NoClientCert",
     "PrometheusMetricsCAFile not set"),
    (dict(PROMETHEUSMETRICSCERTFILE="/nonexistent/tls.crt", PROMETHEUSMETRICSKEYFILE="server_key",
          PROMETHEUSMETRICSCAFILE="ca1"), "RequireAndVerifyClientCert",
     "cannot read PrometheusMetricsCertFile /nonexistent/tls.crt: No such file or directory"),
    (dict(PROMETHEUSMETRICSCERTFILE="server", PROMETHEUSMETRICSKEYFILE="server_key",
          PROMETHEUSMETRICSCAFILE="/nonexistent/ca.crt"), "NoClientCert",
     "cannot read PrometheusMetricsCAFile /nonexistent/ca.crt: No such file or directory"),
    (dict(PROMETHEUSMETRICSCERTFILE="garbage", PROMETHEUSMETRICSKEYFILE="server_key",
          PROMETHEUSMETRICSCAFILE="ca1"), "NoClientCert", "PrometheusMetricsCertFile {garbage} holds no PEM certificate"),
    (dict(PROMETHEUSMETRICSCERTFILE="server", PROMETHEUSMETRICSKEYFILE="client1_key",
          PROMETHEUSMETRICSCAFILE="ca1"), "NoClientCert",
     "PrometheusMetricsCertFile {server} and PrometheusMetricsKeyFile {client1_key} do not load"),
])
def test_bad_files_serve_nothing_and_say_why(certs, caplog, files, mode, expected):
    def path(v: str) -> str:
        return v if v.startswith("/") else getattr(certs, v)

    values = {k: path(v) for k, v in files.items()}
    config = _config(PROMETHEUSMETRICSCLIENTAUTH=mode, **values)
    assert _start(config, caplog) is None
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    expected = expected.format(**{v: path(v) for v in files.values()})
    assert any(expected in e for e in errors), errors


def test_encrypted_key_is_refused(certs, tmp_path):
    key = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", certs.server_key, "-aes256", "-passout", "pass:x", "-out", str(key)],
                   check=True, capture_output=True)
    with pytest.raises(MetricsTLSError, match=f"PrometheusMetricsKeyFile {key} holds an encrypted private key"):
        MetricsTLS(certs.server, str(key), certs.ca1, "NoClientCert", {})


def test_ca_file_without_certificates(certs, caplog):
    # Go's AppendCertsFromPEM skips what does not parse: the server starts; no client
    # certificate can then be verified, and clients without one are served where allowed.
    with caplog.at_level(logging.WARNING):
        with tls_server(certs, "NoClientCert", ca=certs.garbage) as port:
            assert accepted(port, _client_context(certs, "client1"))
        assert "holds no usable CA certificate" not in caplog.text
        with tls_server(certs, "VerifyClientCertIfGiven", ca=certs.garbage) as port:
            assert accepted(port, _client_context(certs))
            assert not accepted(port, _client_context(certs, "client1"))
        with tls_server(certs, "RequireAndVerifyClientCert", ca=certs.garbage) as port:
            assert not accepted(port, _client_context(certs, "client1"))
    assert f"PrometheusMetricsCAFile {certs.garbage} holds no usable CA certificate" in caplog.text


def test_bad_cipher_list_serves_nothing(certs, caplog):
    m = FelixMetrics("h", process_metrics=False, runtime_metrics=False)
    config = _config(PROMETHEUSMETRICSCERTFILE=certs.server, PROMETHEUSMETRICSKEYFILE=certs.server_key,
                     PROMETHEUSMETRICSCAFILE=certs.ca1)
    with caplog.at_level(logging.ERROR):
        assert start_metrics_server(m, config, env={"TLS_CIPHER_SUITES": "TLS_FOO"}) is None
    assert "unsupported cipher: 'TLS_FOO'" in caplog.text


# -- the real agent ---------------------------------------------------------------------------

def _agent_scrape(node, certs: Certs, client: str | None, scheme: str = "https") -> str:
    """What a scrape from inside the node namespace gets: the body, or the error's text."""
    load = f"ctx.load_cert_chain({certs.pair(client)[0]!r}, {certs.pair(client)[1]!r})\n" if client else ""
    script = ("import ssl, urllib.request\n"
              f"ctx = ssl.create_default_context(cafile={certs.ca1!r})\n" + load +
              "try:\n"
              f"    print(urllib.request.urlopen('{scheme}://localhost:9091/metrics', context=ctx, timeout=3)"
              ".read().decode())\n"
              "except Exception as e:\n"
              "    print('ERROR', getattr(e, 'code', ''), getattr(e, 'reason', e))\n")
    return node.ns.run("python3", "-c", script, check=False).stdout


@pytest.fixture
def felix_node(etcd, tmp_path):
    from felix_node import FelixNode
    from node.config import DatastoreConfig
    from node.datastore.client import DatastoreClient
    from node.datastore.etcd import EtcdKV

    kv = EtcdKV(DatastoreConfig(etcd_endpoints=(etcd.endpoint,)))

    @contextmanager
    def make(env: dict):
        with FelixNode(DatastoreClient(kv), etcd.endpoint, env=env) as node:
            node.start_agent(tmp_path)
            yield node

    try:
        yield make
    finally:
        kv.close()


def test_agent_serves_metrics_over_tls(felix_node, certs):
    from e2e.probes import eventually

    env = {"FELIX_PROMETHEUSMETRICSENABLED": "true", "FELIX_PROMETHEUSMETRICSPORT": "9091",
           "FELIX_PROMETHEUSMETRICSCERTFILE": certs.server, "FELIX_PROMETHEUSMETRICSKEYFILE": certs.server_key,
           "FELIX_PROMETHEUSMETRICSCAFILE": certs.ca1}
    with felix_node(env) as node:
        node.wait_ready(40)  # health and readiness as ever
        assert eventually(lambda: "# TYPE felix_host gauge" in _agent_scrape(node, certs, "client1"), 15), \
            node.log_text()[-3000:]
        assert _agent_scrape(node, certs, None).startswith("ERROR")  # no client certificate
        assert _agent_scrape(node, certs, "client2").startswith("ERROR")  # another CA's
        assert _agent_scrape(node, certs, None, scheme="http").startswith("ERROR 400")
        assert node.ready()


def test_agent_with_a_missing_key_runs_without_metrics(felix_node, certs):
    env = {"FELIX_PROMETHEUSMETRICSENABLED": "true", "FELIX_PROMETHEUSMETRICSPORT": "9091",
           "FELIX_PROMETHEUSMETRICSCERTFILE": certs.server, "FELIX_PROMETHEUSMETRICSKEYFILE": "/nonexistent/tls.key",
           "FELIX_PROMETHEUSMETRICSCAFILE": certs.ca1}
    with felix_node(env) as node:
        node.wait_ready(40)
        assert "cannot read PrometheusMetricsKeyFile /nonexistent/tls.key" in node.log_text()
        for scheme in ("https", "http"):
            assert "Connection refused" in _agent_scrape(node, certs, "client1", scheme)
        assert node.proc.poll() is None and node.restarts == 0
