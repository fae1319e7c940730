"""Configuration shared by every role: datastore settings and host paths.

Datastore variables are read the way libcalico-go's apiconfig reads them: each name is
looked up as ``CALICO_<NAME>`` first, then ``<NAME>``. ``calicoctl`` can also read a
``CalicoAPIConfig`` file. Host paths are all movable by environment variables so that
several nodes can run side by side in network namespaces on one machine.

Everything that can be checked without dialling is checked when the config is built, so
every role and calicoctl fail at once with one ``ConfigError`` that names the variable
(or the config-file field) and its value: each ``ETCD_ENDPOINTS`` entry must be
``http(s)://HOST[:PORT]`` or a bare ``HOST:PORT``; ``ETCD_DISCOVERY_SRV`` (used instead
of endpoints, never with them) must be a DNS domain name, whose SRV records are looked up
when the etcd client is built (node/datastore/etcd_srv.py); for etcdv3 the TLS files must exist
and hold PEM data (a CA certificate, a client certificate and its unencrypted key, both
or neither of the last two), as libcalico-go refuses to build an etcd client otherwise.
The boolean variables (``USE_POD_CIDR``, ``K8S_INSECURE_SKIP_TLS_VERIFY``,
``K8S_DISABLE_NODE_POLL``) are parsed as envconfig parses them, whatever the datastore
type: a value strconv.ParseBool refuses is an ``EnvValueError``.
"""
from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

import yaml

from node.errors import ConfigError
from node.gobool import parse_go_bool

ETCDV3 = "etcdv3"
KUBERNETES = "kubernetes"
DATASTORE_TYPES = (ETCDV3, KUBERNETES)

DEFAULT_CALICOCTL_CONFIG = "/etc/calico/calicoctl.cfg"
DEFAULT_ETCD_PORT = 2379

# (field, environment name) pairs, in CalicoAPIConfigSpec's JSON spelling.
_DATASTORE_ENV = {
    "datastoreType": "DATASTORE_TYPE",
    "etcdEndpoints": "ETCD_ENDPOINTS",
    "etcdDiscoverySrv": "ETCD_DISCOVERY_SRV",
    "etcdUsername": "ETCD_USERNAME",
    "etcdPassword": "ETCD_PASSWORD",
    "etcdKeyFile": "ETCD_KEY_FILE",
    "etcdCertFile": "ETCD_CERT_FILE",
    "etcdCACertFile": "ETCD_CA_CERT_FILE",
    "kubeconfig": "KUBECONFIG",
    "k8sAPIEndpoint": "K8S_API_ENDPOINT",
    "k8sKeyFile": "K8S_KEY_FILE",
    "k8sCertFile": "K8S_CERT_FILE",
    "k8sCAFile": "K8S_CA_FILE",
    "k8sInsecureSkipTLSVerify": "K8S_INSECURE_SKIP_TLS_VERIFY",
    "k8sCurrentContext": "K8S_CURRENT_CONTEXT",
    "k8sClientQPS": "K8S_CLIENT_QPS",
    "k8sClientBurst": "K8S_CLIENT_BURST",
    "usePodCIDR": "USE_POD_CIDR",
    "calicoAPIGroup": "CALICO_API_GROUP",
}
# CalicoAPIConfigSpec fields read from a config file only (no environment variable):
# the API token, the inline etcd TLS material and the inline kubeconfig (libcalico-go's
# apiconfig gives them none, so that secrets do not travel in the environment).
_FILE_ONLY = ("k8sAPIToken", "etcdKey", "etcdCert", "etcdCACert", "kubeconfigInline")
# CalicoAPIConfigSpec fields calicoctl accepts and that change nothing it does here
# (Felix's and kube-controllers' node polling).
_FILE_IGNORED = ("k8sDisableNodePoll",)
# A CalicoAPIConfig's top-level fields (TypeMeta, ObjectMeta, spec).
_FILE_TOP = ("apiVersion", "kind", "metadata", "spec")


@dataclass(frozen=True)
class DatastoreConfig:
    """Where the datastore is and how to authenticate to it."""

    datastore_type: str = ETCDV3
    etcd_endpoints: tuple[str, ...] = ()
    # A DNS domain whose etcd-client SRV records give the endpoints (looked up when the
    # etcd client is built: node/datastore/etcd_srv.py); only when etcd_endpoints is empty.
    etcd_discovery_srv: str = ""
    # Where etcd_discovery_srv came from (a variable or a config-file field), for errors.
    etcd_discovery_srv_setting: str = field(default="ETCD_DISCOVERY_SRV", compare=False)
    etcd_username: str = ""
    etcd_password: str = ""
    etcd_key_file: str = ""
    etcd_cert_file: str = ""
    etcd_ca_cert_file: str = ""
    # Inline PEM text (calicoctl.cfg's etcdKey, etcdCert, etcdCACert), used instead of the
    # files; libcalico-go refuses a configuration that has both.
    etcd_key: str = field(default="", repr=False)
    etcd_cert: str = field(default="", repr=False)
    etcd_ca_cert: str = field(default="", repr=False)
    kubeconfig: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def uses_auth(self) -> bool:
        # libcalico-go only uses credentials when both are set.
        return bool(self.etcd_username and self.etcd_password)


def _lookup(env: Mapping[str, str], name: str) -> str:
    """``CALICO_<NAME>`` wins over ``<NAME>``; empty counts as unset."""
    value = env.get("CALICO_" + name, "")
    if value == "":
        # (For CALICO_API_GROUP that is CALICO_CALICO_API_GROUP, then CALICO_API_GROUP.)
        value = env.get(name, "")
    return value


def datastore_type_from_env(env: Mapping[str, str]) -> str:
    """The datastore type as ``datastore_config_from_env`` settles it (``DATASTORE_TYPE``,
    else etcdv3 when ``ETCD_ENDPOINTS`` is set, else kubernetes), without validating the
    rest."""
    return _lookup(env, "DATASTORE_TYPE") or (ETCDV3 if _lookup(env, "ETCD_ENDPOINTS").strip() else KUBERNETES)


def _env_label(env: Mapping[str, str]) -> Callable[[str], str]:
    """Names a setting by the environment variable it was actually read from."""
    def label(fld: str) -> str:
        name = _DATASTORE_ENV[fld]
        return "CALICO_" + name if env.get("CALICO_" + name, "") else name
    return label


def _default_label(fld: str) -> str:
    return _DATASTORE_ENV[fld]


# -- etcd endpoints ---------------------------------------------------------------------

@dataclass(frozen=True)
class EtcdEndpoint:
    url: str      # normalised scheme://host:port
    target: str   # host:port, as gRPC wants it
    secure: bool


_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")
_ENDPOINT_FORM = "use http://HOST[:PORT] or https://HOST[:PORT]"


class _BadEndpoint(Exception):
    """What is wrong with one endpoint, phrased to follow the endpoint's text."""


def _parse_endpoint(entry: str) -> EtcdEndpoint:
    text = entry.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _BadEndpoint(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise _BadEndpoint(f"has unsupported scheme {parts.scheme!r}")
    host = parts.hostname or ""
    if not host:
        raise _BadEndpoint("has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise _BadEndpoint("has a path, query or user part, which etcd endpoints cannot have")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _BadEndpoint(f"has {host!r} in brackets, which is not an IPv6 address") from None
        host = f"[{host}]"
    elif not _DNS_NAME.fullmatch(host):
        raise _BadEndpoint(f"has host {host!r}, which is not a valid host name or IPv4 address "
                           "(IPv6 addresses go in brackets)")
    if port == 0:
        raise _BadEndpoint("has port 0")
    port = port or DEFAULT_ETCD_PORT
    return EtcdEndpoint(url=f"{parts.scheme}://{host}:{port}", target=f"{host}:{port}",
                        secure=parts.scheme == "https")


def parse_etcd_endpoint(entry: str) -> EtcdEndpoint:
    """One endpoint: ``http(s)://host[:port]`` or a bare ``host:port`` (plaintext, like
    etcdctl); IPv6 hosts in brackets. The port defaults to 2379. Raises ConfigError
    saying what is wrong with ``entry``."""
    try:
        return _parse_endpoint(entry)
    except _BadEndpoint as exc:
        raise ConfigError(f"etcd endpoint {entry!r} {exc}; {_ENDPOINT_FORM}") from None


def _split_endpoints(raw: str, name: str) -> list[str]:
    """The comma-separated entries of ``raw``, each checked; empty entries are errors."""
    if not raw.strip():
        return []
    entries = [e.strip() for e in raw.split(",")]
    for number, entry in enumerate(entries, 1):
        if not entry:
            raise ConfigError(f"{name}={raw!r}: entry {number} is empty; separate endpoints with single "
                              "commas, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379")
        try:
            _parse_endpoint(entry)
        except _BadEndpoint as exc:
            subject = f"{name}={raw!r}" if len(entries) == 1 else f"{name}={raw!r}: entry {entry!r}"
            raise ConfigError(f"{subject} {exc}; {_ENDPOINT_FORM}") from None
    return entries


# -- TLS files --------------------------------------------------------------------------

class _EncryptedKey(Exception):
    """Raised from the password callback: the key needs a passphrase we do not have."""


def _refuse_password() -> str:
    raise _EncryptedKey()


def check_etcd_tls_files(ca_file: str, cert_file: str, key_file: str,
                         label: Callable[[str], str] = _default_label) -> None:
    """Fail with a ConfigError naming the variable and file unless every TLS file that is
    set exists and holds what gRPC will need (checked with ``ssl`` before any dial, so
    gRPC's own log lines about unusable files never appear)."""
    def named(fld: str, path: str) -> str:
        return f"{label(fld)}={path}"

    for fld, path in (("etcdCACertFile", ca_file), ("etcdCertFile", cert_file), ("etcdKeyFile", key_file)):
        if path and not os.path.isfile(path):
            raise ConfigError(f"{label(fld)}: file {path} does not exist or is not a file")
    if bool(cert_file) != bool(key_file):
        given, missing = ("etcdCertFile", "etcdKeyFile") if cert_file else ("etcdKeyFile", "etcdCertFile")
        raise ConfigError(f"{named(given, cert_file or key_file)} is set but {label(missing)} is not; "
                          "etcd client TLS needs both the certificate and its key (or neither)")

    def load_certificates(fld: str, path: str, what: str) -> None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
        except ssl.SSLError:
            raise ConfigError(f"{named(fld, path)}: no PEM certificate in the file; it must hold {what}") from None
        except OSError as exc:
            raise ConfigError(f"{named(fld, path)}: cannot read the file: {exc.strerror}") from None

    if ca_file:
        load_certificates("etcdCACertFile", ca_file, "the CA certificate that signed etcd's certificate")
    if cert_file:
        load_certificates("etcdCertFile", cert_file, "this client's certificate")
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_file, key_file, password=_refuse_password)
        except _EncryptedKey:
            raise ConfigError(f"{named('etcdKeyFile', key_file)}: the private key is encrypted; "
                              "etcd clients need an unencrypted PEM key") from None
        except ssl.SSLError as exc:
            if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
                raise ConfigError(f"{named('etcdKeyFile', key_file)} is not the key of the certificate in "
                                  f"{named('etcdCertFile', cert_file)}") from None
            raise ConfigError(f"{named('etcdKeyFile', key_file)}: no PEM private key in the file") from None
        except OSError as exc:
            raise ConfigError(f"{named('etcdKeyFile', key_file)}: cannot read the file: {exc.strerror}") from None


def check_etcd_tls_inline(ca_cert: str, cert: str, key: str) -> None:
    """The inline counterpart of ``check_etcd_tls_files`` (calicoctl.cfg's etcdCACert,
    etcdCert, etcdKey): as libcalico-go, the certificate and key are both required (the CA
    is optional) and must be PEM; errors carry libcalico-go's "could not initialize
    etcdv3 client" prefix."""
    import tempfile

    prefix = "could not initialize etcdv3 client: "
    if not cert or not key:
        raise ConfigError(prefix + "Certificate and Key must both be present inline.")
    if ca_cert:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=ca_cert)
        except (ssl.SSLError, ValueError):
            raise ConfigError(prefix + "etcdCACert: Cannot decode PEM block containing certificate") from None
    # ssl loads a key pair only from files: a private directory holds them for the check.
    with tempfile.TemporaryDirectory(prefix="calicoctl-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, text in ((cert_path, cert), (key_path, key)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
                fh.write(text)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert_path, key_path, password=_refuse_password)
        except _EncryptedKey:
            raise ConfigError(prefix + "etcdKey: the private key is encrypted; etcd clients need an "
                              "unencrypted PEM key") from None
        except ssl.SSLError as exc:
            if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
                raise ConfigError(prefix + "etcdKey is not the key of the certificate in etcdCert") from None
            raise ConfigError(prefix + "etcdCert and etcdKey must hold a PEM certificate and its "
                              "PEM private key") from None


def _build(values: Mapping[str, str], label: Callable[[str], str] = _default_label) -> DatastoreConfig:
    dstype = values.get("datastoreType", "")
    endpoints = _split_endpoints(values.get("etcdEndpoints", ""), label("etcdEndpoints"))
    discovery_srv = values.get("etcdDiscoverySrv", "").strip()
    if discovery_srv and endpoints:
        raise ConfigError(
            "multiple discovery or bootstrap options specified, use either "
            "ETCD_ENDPOINTS or ETCD_DISCOVERY_SRV"
        )
    if dstype == "":
        dstype = ETCDV3 if endpoints else KUBERNETES
    if dstype not in DATASTORE_TYPES:
        raise ConfigError(f"unknown datastore type: {dstype!r} (expected etcdv3 or kubernetes)")
    if dstype == ETCDV3 and not endpoints:
        if not discovery_srv:
            raise ConfigError("datastore type etcdv3 needs ETCD_ENDPOINTS (for example http://127.0.0.1:2379) "
                              "or ETCD_DISCOVERY_SRV (a DNS domain with etcd-client SRV records)")
        if not _DNS_NAME.fullmatch(discovery_srv):
            raise ConfigError(f"{label('etcdDiscoverySrv')}={discovery_srv!r} is not a DNS domain name; it names "
                              "the domain whose _etcd-client-ssl._tcp and _etcd-client._tcp SRV records list etcd")
    inline = [values.get(f, "") for f in ("etcdCACert", "etcdCert", "etcdKey")]
    if dstype == ETCDV3 and any(inline):
        if any(values.get(f, "") for f in ("etcdCACertFile", "etcdCertFile", "etcdKeyFile")):
            # libcalico-go's NewEtcdV3Client, word for word.
            raise ConfigError("Cannot mix inline certificate-key and certificate / key files")
        check_etcd_tls_inline(*inline)
    elif dstype == ETCDV3:
        check_etcd_tls_files(values.get("etcdCACertFile", ""), values.get("etcdCertFile", ""),
                             values.get("etcdKeyFile", ""), label)
    return DatastoreConfig(
        datastore_type=dstype,
        etcd_endpoints=tuple(endpoints),
        etcd_discovery_srv=discovery_srv if dstype == ETCDV3 else "",
        etcd_discovery_srv_setting=label("etcdDiscoverySrv"),
        etcd_username=values.get("etcdUsername", ""),
        etcd_password=values.get("etcdPassword", ""),
        etcd_key_file=values.get("etcdKeyFile", ""),
        etcd_cert_file=values.get("etcdCertFile", ""),
        etcd_ca_cert_file=values.get("etcdCACertFile", ""),
        etcd_key=values.get("etcdKey", ""),
        etcd_cert=values.get("etcdCert", ""),
        etcd_ca_cert=values.get("etcdCACert", ""),
        kubeconfig=values.get("kubeconfig", ""),
        extra={k: v for k, v in values.items()
               if v and (k.startswith("k8s") or k in ("calicoAPIGroup", "usePodCIDR", "kubeconfigInline"))},
    )


class EnvValueError(ConfigError):
    """A datastore variable whose value does not parse as its type. libcalico-go's
    envconfig parses these while *loading* the configuration from the environment, for
    every datastore type, before any client is built (calico/node reports it as "Error
    loading datastore config"; every other configuration problem surfaces when the
    client is built)."""


# CalicoAPIConfigSpec's boolean fields, in the struct's order (the order envconfig
# reads them, so the first bad one is reported). K8S_DISABLE_NODE_POLL changes nothing
# here, but Calico parses it all the same.
_ENV_BOOLEANS = ("K8S_INSECURE_SKIP_TLS_VERIFY", "K8S_DISABLE_NODE_POLL", "USE_POD_CIDR")


def _check_env_booleans(env: Mapping[str, str]) -> None:
    """strconv.ParseBool for each boolean that is set (CALICO_<NAME> first, as everywhere
    here); USE_POD_CIDR=yes stops Calico even on etcd, where the setting has no use."""
    for name in _ENV_BOOLEANS:
        raw = _lookup(env, name)
        if raw and parse_go_bool(raw) is None:
            used = "CALICO_" + name if env.get("CALICO_" + name, "") else name
            raise EnvValueError(f"{used}={raw!r} is not a boolean (use true or false)")


def datastore_config_from_env(env: Mapping[str, str] | None = None) -> DatastoreConfig:
    """Datastore settings from the environment, as calico/node reads them. Raises
    EnvValueError for a value that does not parse, ConfigError for any other problem."""
    env = os.environ if env is None else env
    _check_env_booleans(env)
    return _build({fld: _lookup(env, name) for fld, name in _DATASTORE_ENV.items()}, _env_label(env))


class ConfigFileUnreadable(Exception):
    """``--config`` names a file that does not exist: calicoctl prints "Error reading
    config file: PATH" on stdout and exits 1 there and then, whatever the command (so this
    is not a CalicoError that a command would wrap or skip)."""

    def __init__(self, path: str):
        super().__init__(f"Error reading config file: {path}")


def _unknown_field(path: str, name: str) -> ConfigError:
    # libcalico-go reads the file with yaml.UnmarshalStrict; this is its wording.
    return ConfigError(f"syntax error in {path}: failed to parse config as YAML/JSON: error unmarshaling JSON: "
                       f'while decoding JSON: json: unknown field "{name}"')


def datastore_config_from_file(path: str) -> DatastoreConfig:
    """Datastore settings from a calicoctl ``CalicoAPIConfig`` file (YAML or JSON). As in
    libcalico-go, a field CalicoAPIConfig does not have is an error, and the apiVersion
    must be ``projectcalico.org/v3`` and the kind ``CalicoAPIConfig``."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"invalid config file {path}: expected a mapping")
    for name in doc:
        if name not in _FILE_TOP:
            raise _unknown_field(path, str(name))
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"invalid config file {path}: spec must be a mapping")
    for name in spec:
        if name not in _DATASTORE_ENV and name not in _FILE_ONLY and name not in _FILE_IGNORED:
            raise _unknown_field(path, str(name))
    # Checked once the whole file has parsed, in this order, as libcalico-go does.
    api_version = doc.get("apiVersion") or ""
    if api_version != "projectcalico.org/v3":
        raise ConfigError(f"invalid config file: unknown APIVersion '{api_version}'")
    kind = doc.get("kind") or ""
    if kind != "CalicoAPIConfig":
        raise ConfigError(f"invalid config file: expected kind 'CalicoAPIConfig', got '{kind}'")
    return _build({k: _file_text(v) for k, v in spec.items() if (k in _DATASTORE_ENV or k in _FILE_ONLY)
                   and v is not None},
                  lambda fld: f"{fld} in {path}")


def _file_text(value) -> str:
    """A config-file value as its environment spelling (YAML booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def calicoctl_datastore_config(config_path: str | None, env: Mapping[str, str] | None = None) -> DatastoreConfig:
    """calicoctl's rule: an explicit --config wins (ConfigFileUnreadable when it does not
    exist); else the default file if it exists; else env."""
    if config_path and config_path != DEFAULT_CALICOCTL_CONFIG:
        if not os.path.exists(config_path):
            raise ConfigFileUnreadable(config_path)
        return datastore_config_from_file(config_path)
    if os.path.exists(DEFAULT_CALICOCTL_CONFIG):
        return datastore_config_from_file(DEFAULT_CALICOCTL_CONFIG)
    return datastore_config_from_env(env)


@dataclass(frozen=True)
class Paths:
    """Every host path the image uses, each movable by an environment variable."""

    run_dir: Path
    lib_dir: Path
    config_dir: Path
    log_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Paths":
        env = os.environ if env is None else env
        return cls(
            run_dir=Path(env.get("CALICO_RUN_DIR") or "/var/run/calico"),
            lib_dir=Path(env.get("CALICO_LIB_DIR") or "/var/lib/calico"),
            config_dir=Path(env.get("CALICO_CONFIG_DIR") or "/etc/calico"),
            log_dir=Path(env.get("CALICO_LOG_DIR") or "/var/log/calico"),
        )

    @property
    def nodename_file(self) -> Path:
        return self.lib_dir / "nodename"

    @property
    def bird_socket(self) -> Path:
        return self.run_dir / "bird.ctl"

    @property
    def bird6_socket(self) -> Path:
        return self.run_dir / "bird6.ctl"

    @property
    def confd_dir(self) -> Path:
        return self.config_dir / "confd"

    @property
    def confd_output_dir(self) -> Path:
        return self.confd_dir / "config"
