"""TLS for the policy agent's ``/metrics`` endpoint, set up as Felix v3.32 sets it up
(libcalico-go's metricsserver over Calico's crypto/pkg/tls).

The endpoint speaks TLS when PrometheusMetricsCertFile or PrometheusMetricsKeyFile is
set. Felix then needs the certificate, its key *and* PrometheusMetricsCAFile (whatever
PrometheusMetricsClientAuth says); if any cannot be loaded it serves no metrics at all
(never plain HTTP) and keeps running, and so do we, with an error naming the parameter
and the file. TLS 1.2 and 1.3 are offered (``TLS_MIN_VERSION=1.3`` drops 1.2), TLS 1.2
with Calico's cipher list or the Go-named ciphers of ``TLS_CIPHER_SUITES``. The three
files are read again when they change on disk (Felix re-reads them at every handshake),
so a rotated certificate or CA applies to the next connection; a change that does not
load fails handshakes, with the error logged, until it is fixed.

Client certificates (Go's tls.ClientAuthType -> Python's ssl verify mode):

- ``NoClientCert``: none is asked for (CERT_NONE).
- ``VerifyClientCertIfGiven``: one is asked for; a client without one is served, one
  whose certificate does not chain to PrometheusMetricsCAFile is refused (CERT_OPTIONAL).
- ``RequireAndVerifyClientCert`` (the default): a certificate chaining to
  PrometheusMetricsCAFile is required (CERT_REQUIRED).
- ``RequireAnyClientCert``: Go requires a certificate but does not verify it. Python's
  ssl cannot ask for a certificate without verifying it (it has no verify callback), so
  this mode verifies too, as RequireAndVerifyClientCert does: every client Felix admits
  with a certificate from the CA is admitted, clients with other certificates are refused
  where Felix lets them in. Adding such a certificate (or its issuer) to the CA file
  admits it: every certificate in that file is trusted as an anchor, as Go trusts its pool.
"""
from __future__ import annotations

import logging
import os
import re
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

CLIENT_AUTH_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,  # Go does not verify; see the module docstring
}
DEFAULT_CLIENT_AUTH = "RequireAndVerifyClientCert"

# crypto/pkg/tls: Go's names of the TLS 1.2 suites Calico allows, as OpenSSL names them.
_TLS12_OPENSSL = {
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    # Legacy (no forward secrecy): only when TLS_CIPHER_SUITES names them.
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
}
_LEGACY = {"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256"}
# TLS 1.3's suites: accepted names; like Go, they cannot be switched off.
TLS13_CIPHERS = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256")
DEFAULT_TLS12_CIPHERS = tuple(name for name in _TLS12_OPENSSL if name not in _LEGACY)

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)


class MetricsTLSError(ValueError):
    """TLS for /metrics cannot be set up; the message names the parameter and the file."""


def tls_requested(config) -> bool:
    """Whether Felix serves /metrics over TLS: the certificate or the key file is set."""
    return bool(config.PrometheusMetricsCertFile or config.PrometheusMetricsKeyFile)


@dataclass(frozen=True)
class TLSVersions:
    """What Calico's NewTLSConfig takes from the environment."""

    minimum: ssl.TLSVersion
    tls12_ciphers: tuple[str, ...]  # OpenSSL names, in order


def tls_versions(env: Mapping[str, str] | None = None) -> TLSVersions:
    """``TLS_MIN_VERSION`` ("", "1.2" or "1.3"; anything else is 1.2 with a warning) and
    ``TLS_CIPHER_SUITES`` (Go names, comma-separated; an unknown one is an error)."""
    env = os.environ if env is None else env
    raw_min = env.get("TLS_MIN_VERSION", "")
    if raw_min in ("", "1.2"):
        minimum = ssl.TLSVersion.TLSv1_2
    elif raw_min == "1.3":
        minimum = ssl.TLSVersion.TLSv1_3
    else:
        log.warning("Invalid TLS_MIN_VERSION %r (supported versions: 1.2, 1.3), defaulting to TLS 1.2",
                    raw_min)
        minimum = ssl.TLSVersion.TLSv1_2
    raw_ciphers = env.get("TLS_CIPHER_SUITES", "")
    if raw_ciphers == "":
        names = DEFAULT_TLS12_CIPHERS
    else:
        names = []
        for name in (n.strip() for n in raw_ciphers.split(",")):
            if name in TLS13_CIPHERS:
                continue
            if name not in _TLS12_OPENSSL:
                raise MetricsTLSError(f"TLS_CIPHER_SUITES: unsupported cipher: {name!r}")
            names.append(name)
        if not names:
            # Only TLS 1.3 suites listed: Go's server then completes no TLS 1.2 handshake.
            minimum = ssl.TLSVersion.TLSv1_3
    return TLSVersions(minimum, tuple(_TLS12_OPENSSL[n] for n in names))


def _refuse_password() -> bytes:
    raise MetricsTLSError("encrypted private key")


def _read(param: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise MetricsTLSError(f"cannot read {param} {path}: {exc.strerror or exc}") from None


class MetricsTLS:
    """The server side of /metrics TLS: ``context`` is what the listener wraps connections
    with; each handshake switches to the context of the files as they are now."""

    def __init__(self, cert_file: str, key_file: str, ca_file: str,
                 client_auth: str = DEFAULT_CLIENT_AUTH, env: Mapping[str, str] | None = None):
        client_auth = client_auth or DEFAULT_CLIENT_AUTH  # as Calico's StringToTLSClientAuthType
        if client_auth not in CLIENT_AUTH_MODES:
            raise MetricsTLSError(f"PrometheusMetricsClientAuth {client_auth!r} is not one of "
                                  + ", ".join(CLIENT_AUTH_MODES))
        self.cert_file, self.key_file, self.ca_file = cert_file, key_file, ca_file
        self.client_auth = client_auth
        self.versions = tls_versions(env)
        self._check_set()
        self._lock = threading.Lock()
        self._signature = self._stat()
        self._current = self._load()
        # The listener's context: its hello callback hands each connection the current one.
        self.context = self._current
        self.context.sni_callback = self._on_client_hello
        if client_auth == "RequireAnyClientCert":
            log.warning("PrometheusMetricsClientAuth=RequireAnyClientCert: client certificates are "
                        "verified against PrometheusMetricsCAFile %s (Felix accepts any certificate; "
                        "Python's ssl cannot ask for one without verifying it)", ca_file)

    @classmethod
    def from_config(cls, config, env: Mapping[str, str] | None = None) -> "MetricsTLS":
        return cls(config.PrometheusMetricsCertFile, config.PrometheusMetricsKeyFile,
                   config.PrometheusMetricsCAFile, config.PrometheusMetricsClientAuth, env)

    def _check_set(self) -> None:
        missing = [param for param, path in (("PrometheusMetricsCertFile", self.cert_file),
                                             ("PrometheusMetricsKeyFile", self.key_file),
                                             ("PrometheusMetricsCAFile", self.ca_file)) if not path]
        if missing:
            raise MetricsTLSError(
                f"{' and '.join(missing)} not set: TLS for /metrics (on because "
                "PrometheusMetricsCertFile or PrometheusMetricsKeyFile is set) needs the "
                "certificate, its key and the CA file, whatever PrometheusMetricsClientAuth says")

    def current(self) -> ssl.SSLContext:
        """The context for the files as they are now (re-read when one changed)."""
        with self._lock:
            signature = self._stat()
            if signature != self._signature:
                self._current = self._load()  # raises; the next handshake tries again
                self._signature = signature
                log.info("Prometheus metrics TLS: reloaded %s, %s and %s",
                         self.cert_file, self.key_file, self.ca_file)
            return self._current

    def _on_client_hello(self, conn: ssl.SSLObject, server_name: str | None, _ctx) -> int | None:
        try:
            context = self.current()
        except Exception as exc:  # noqa: BLE001 - whatever it is, this handshake fails, the server stays
            log.error("Failed to reload the Prometheus metrics TLS configuration: %s", exc)
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR  # as Go answers a failed GetConfigForClient
        if conn.context is not context:
            conn.context = context
        return None

    def _stat(self) -> tuple:
        out = []
        for path in (self.cert_file, self.key_file, self.ca_file):
            try:
                st = os.stat(path)
                out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            except OSError as exc:
                out.append(exc.errno)
        return tuple(out)

    def _load(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = self.versions.minimum
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        if self.versions.tls12_ciphers:
            ctx.set_ciphers(":".join(self.versions.tls12_ciphers))
        ctx.options |= ssl.OP_NO_RENEGOTIATION  # Go's server never renegotiates
        ctx.set_alpn_protocols(["http/1.1"])  # no HTTP/2 here (Go would offer h2 too)
        self._load_key_pair(ctx)
        anchors = self._load_client_cas(ctx)
        ctx.verify_mode = CLIENT_AUTH_MODES[self.client_auth]
        # Go trusts every certificate of its pool as an anchor, intermediates included.
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if anchors == 0 and self.client_auth != "NoClientCert":
            log.warning("PrometheusMetricsCAFile %s holds no usable CA certificate: every client "
                        "certificate will be refused (PrometheusMetricsClientAuth=%s)",
                        self.ca_file, self.client_auth)
        return ctx

    def _load_key_pair(self, ctx: ssl.SSLContext) -> None:
        cert, key = self.cert_file, self.key_file
        if b"-----BEGIN CERTIFICATE-----" not in _read("PrometheusMetricsCertFile", cert):
            raise MetricsTLSError(f"PrometheusMetricsCertFile {cert} holds no PEM certificate")
        key_pem = _read("PrometheusMetricsKeyFile", key)
        if b"PRIVATE KEY-----" not in key_pem:
            raise MetricsTLSError(f"PrometheusMetricsKeyFile {key} holds no PEM private key")
        if b"ENCRYPTED" in key_pem:
            raise MetricsTLSError(f"PrometheusMetricsKeyFile {key} holds an encrypted private key "
                                  "(it must not be encrypted)")
        try:
            ctx.load_cert_chain(cert, key, password=_refuse_password)
        except (ssl.SSLError, MetricsTLSError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            raise MetricsTLSError(f"PrometheusMetricsCertFile {cert} and PrometheusMetricsKeyFile {key} "
                                  f"do not load as a certificate and its key: {reason}") from None
        except OSError as exc:
            raise MetricsTLSError(f"cannot read PrometheusMetricsCertFile {cert} or "
                                  f"PrometheusMetricsKeyFile {key}: {exc.strerror or exc}") from None

    def _load_client_cas(self, ctx: ssl.SSLContext) -> int:
        """The CA file's certificates as trust anchors; like Go's AppendCertsFromPEM, blocks
        that do not parse are skipped (with a warning here). Returns how many loaded."""
        pem = _read("PrometheusMetricsCAFile", self.ca_file)
        loaded = 0
        for block in _PEM_CERT.findall(pem):
            try:
                ctx.load_verify_locations(cadata=ssl.PEM_cert_to_DER_cert(block.decode("ascii")))
                loaded += 1
            except (ValueError, ssl.SSLError) as exc:
                log.warning("PrometheusMetricsCAFile %s: skipping a certificate that does not parse (%s)",
                            self.ca_file, exc)
        return loaded
