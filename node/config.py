"""Configuration shared by every role: datastore settings and host paths.

Datastore variables are read the way libcalico-go's apiconfig reads them: each name is
looked up as ``CALICO_<NAME>`` first, then ``<NAME>``. ``calicoctl`` can also read a
``CalicoAPIConfig`` file. Host paths are all movable by environment variables so that
several nodes can run side by side in network namespaces on one machine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import yaml

from node.errors import ConfigError

ETCDV3 = "etcdv3"
KUBERNETES = "kubernetes"
DATASTORE_TYPES = (ETCDV3, KUBERNETES)

DEFAULT_CALICOCTL_CONFIG = "/etc/calico/calicoctl.cfg"

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
    "calicoAPIGroup": "CALICO_API_GROUP",
}


@dataclass(frozen=True)
class DatastoreConfig:
    """Where the datastore is and how to authenticate to it."""

    datastore_type: str = ETCDV3
    etcd_endpoints: tuple[str, ...] = ()
    etcd_username: str = ""
    etcd_password: str = ""
    etcd_key_file: str = ""
    etcd_cert_file: str = ""
    etcd_ca_cert_file: str = ""
    kubeconfig: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def uses_auth(self) -> bool:
        # libcalico-go only uses credentials when both are set.
        return bool(self.etcd_username and self.etcd_password)


def _lookup(env: Mapping[str, str], name: str) -> str:
    """``CALICO_<NAME>`` wins over ``<NAME>``; empty counts as unset."""
    value = env.get("CALICO_" + name, "")
    if value == "" and not name.startswith("CALICO_"):
        value = env.get(name, "")
    return value


def _build(values: Mapping[str, str]) -> DatastoreConfig:
    dstype = values.get("datastoreType", "")
    endpoints = [e.strip() for e in values.get("etcdEndpoints", "").split(",") if e.strip()]
    if values.get("etcdDiscoverySrv") and endpoints:
        raise ConfigError(
            "multiple discovery or bootstrap options specified, use either "
            "ETCD_ENDPOINTS or ETCD_DISCOVERY_SRV"
        )
    if dstype == "":
        dstype = ETCDV3 if endpoints else KUBERNETES
    if dstype not in DATASTORE_TYPES:
        raise ConfigError(f"unknown datastore type: {dstype!r} (expected etcdv3 or kubernetes)")
    if dstype == ETCDV3 and not endpoints:
        if values.get("etcdDiscoverySrv"):
            raise ConfigError("ETCD_DISCOVERY_SRV (DNS SRV discovery) is not supported; set ETCD_ENDPOINTS")
        raise ConfigError("datastore type etcdv3 needs ETCD_ENDPOINTS (for example http://127.0.0.1:2379)")
    for name in ("etcdKeyFile", "etcdCertFile", "etcdCACertFile"):
        path = values.get(name, "")
        if path and not os.path.isfile(path):
            raise ConfigError(f"{_DATASTORE_ENV[name]}: file {path} does not exist or is not a file")
    return DatastoreConfig(
        datastore_type=dstype,
        etcd_endpoints=tuple(endpoints),
        etcd_username=values.get("etcdUsername", ""),
        etcd_password=values.get("etcdPassword", ""),
        etcd_key_file=values.get("etcdKeyFile", ""),
        etcd_cert_file=values.get("etcdCertFile", ""),
        etcd_ca_cert_file=values.get("etcdCACertFile", ""),
        kubeconfig=values.get("kubeconfig", ""),
        extra={k: v for k, v in values.items() if v and (k.startswith("k8s") or k == "calicoAPIGroup")},
    )


def datastore_config_from_env(env: Mapping[str, str] | None = None) -> DatastoreConfig:
    """Datastore settings from the environment, as calico/node reads them."""
    env = os.environ if env is None else env
    return _build({fld: _lookup(env, name) for fld, name in _DATASTORE_ENV.items()})


def datastore_config_from_file(path: str) -> DatastoreConfig:
    """Datastore settings from a calicoctl ``CalicoAPIConfig`` file."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"invalid config file {path}: expected a mapping")
    kind = doc.get("kind", "")
    if kind != "CalicoAPIConfig":
        raise ConfigError(f"invalid config file: expected kind 'CalicoAPIConfig', got '{kind}'")
    api_version = doc.get("apiVersion", "")
    if api_version not in ("projectcalico.org/v3", ""):
        raise ConfigError(
            f"invalid config file: expected apiVersion 'projectcalico.org/v3', got '{api_version}'"
        )
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"invalid config file {path}: spec must be a mapping")
    return _build({k: str(v) for k, v in spec.items() if k in _DATASTORE_ENV and v is not None})


def calicoctl_datastore_config(config_path: str | None, env: Mapping[str, str] | None = None) -> DatastoreConfig:
    """calicoctl's rule: an explicit --config wins; else the default file if it exists; else env."""
    if config_path:
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
