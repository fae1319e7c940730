"""Connecting to the Kubernetes API as Calico does, and choosing the CRD group.

Where the client configuration comes from (libcalico-go's CreateKubernetesClientset):

1. ``KUBECONFIG`` (a path, or a ``:``-separated list merged with the first file
   winning), else ``$HOME/.kube/config`` when it exists;
2. otherwise the in-cluster service account (``KUBERNETES_SERVICE_HOST``/``_PORT``
   and ``/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}``);
3. otherwise ``K8S_API_ENDPOINT`` alone.

A calicoctl.cfg's ``kubeconfigInline`` (a kubeconfig's text) comes before all of these
and takes no overrides, as in libcalico-go.

On top of whichever applies, ``K8S_API_ENDPOINT``, ``K8S_CERT_FILE``, ``K8S_KEY_FILE``,
``K8S_CA_FILE``, ``K8S_INSECURE_SKIP_TLS_VERIFY``, ``K8S_CURRENT_CONTEXT`` and the
config file's ``k8sAPIToken`` override the matching settings.

Requests are rate-limited as client-go limits Calico's: a token bucket of
``K8S_CLIENT_BURST`` requests (Calico's 100 when unset) refilled at ``K8S_CLIENT_QPS``
per second (client-go's 5 when unset; a negative value turns the limit off).

The CRD group is ``CALICO_API_GROUP`` when set; otherwise discovery decides:
``projectcalico.org/v3`` only when the server serves ``projectcalico.org`` and not
``crd.projectcalico.org``; ``crd.projectcalico.org/v1`` otherwise, including when
discovery fails.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import yaml

from node.config import DatastoreConfig
from node.datastore.kubernetes.conversion import GROUP_V1, GROUP_V3
from node.errors import CalicoError, ConfigError
from node.gobool import parse_go_bool

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _parse_bool(text: str, name: str) -> bool:
    """strconv.ParseBool, as envconfig reads booleans (empty: unset, false)."""
    value = parse_go_bool(text) if text else False
    if value is not None:
        return value
    raise ConfigError(f"{name}={text!r} is not a boolean (use true or false)")


def use_pod_cidr(config: DatastoreConfig) -> bool:
    return _parse_bool(config.extra.get("usePodCIDR", ""), "USE_POD_CIDR")


DEFAULT_QPS = 5.0  # client-go's, which Calico keeps unless K8S_CLIENT_QPS is set
DEFAULT_BURST = 100  # Calico's, so that IPAM's bursts of requests are not throttled


def rate_limit(config: DatastoreConfig) -> tuple[float, int] | None:
    """(requests per second, burst) for the client, or None when K8S_CLIENT_QPS is negative.
    Raises ConfigError naming the setting when a value is not a number."""
    extra = config.extra
    qps_text = str(extra.get("k8sClientQPS", "")).strip()
    burst_text = str(extra.get("k8sClientBurst", "")).strip()
    try:
        qps = float(qps_text) if qps_text else 0.0
    except ValueError:
        raise ConfigError(f"K8S_CLIENT_QPS={qps_text!r} is not a number of requests per second") from None
    try:
        burst = int(burst_text) if burst_text else 0
    except ValueError:
        raise ConfigError(f"K8S_CLIENT_BURST={burst_text!r} is not a whole number of requests") from None
    if qps < 0:
        return None  # no limit, so no burst to check
    if burst < 0:
        raise ConfigError(f"K8S_CLIENT_BURST={burst_text!r} must be positive (or unset for {DEFAULT_BURST})")
    return (qps or DEFAULT_QPS, burst or DEFAULT_BURST)


def kubeconfig_source(config: DatastoreConfig, env: Mapping[str, str] | None = None,
                      service_account_dir: str = SERVICE_ACCOUNT_DIR, home_fallback: bool = True) -> str:
    """Which configuration applies: "kubeconfig:<paths>", "in-cluster", "endpoint" or "".
    ``home_fallback=False`` leaves ``$HOME/.kube/config`` out (client-go's
    BuildConfigFromFlags, which startup uses, does not look there)."""
    env = os.environ if env is None else env
    if config.extra.get("kubeconfigInline"):
        return "inline"
    if config.kubeconfig:
        return f"kubeconfig:{config.kubeconfig}"
    home = env.get("HOME", "")
    if home_fallback and home and (Path(home) / ".kube" / "config").is_file():
        return f"kubeconfig:{Path(home) / '.kube' / 'config'}"
    if (env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT")
            and (Path(service_account_dir) / "token").is_file()):
        return "in-cluster"
    if config.extra.get("k8sAPIEndpoint"):
        return "endpoint"
    return ""


def client_configuration(config: DatastoreConfig, env: Mapping[str, str] | None = None,
                         service_account_dir: str = SERVICE_ACCOUNT_DIR, home_fallback: bool = True):
    """A ``kubernetes.client.Configuration`` for ``config`` (see the module docstring).

    Raises ConfigError naming the setting when there is nothing to connect with or the
    kubeconfig cannot be used."""
    from kubernetes.client import Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader
    from kubernetes.config.kube_config import load_kube_config

    env = os.environ if env is None else env
    extra = config.extra
    source = kubeconfig_source(config, env, service_account_dir, home_fallback)
    conf = Configuration()
    if source == "inline":
        from kubernetes.config.kube_config import load_kube_config_from_dict

        try:
            loaded = yaml.safe_load(extra["kubeconfigInline"])
            if not isinstance(loaded, dict):
                raise ValueError("not a kubeconfig (a YAML or JSON mapping)")
            load_kube_config_from_dict(loaded, client_configuration=conf, persist_config=False)
        except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"kubeconfigInline: cannot use the Kubernetes client configuration: {exc}") from None
        return _finish(conf)
    if source.startswith("kubeconfig:"):
        paths = source.split(":", 1)[1]
        existing = [p for p in paths.split(os.pathsep) if p and os.path.isfile(os.path.expanduser(p))]
        if not existing:
            raise ConfigError(f"KUBECONFIG={paths}: no such file")
        try:
            load_kube_config(config_file=paths, context=extra.get("k8sCurrentContext") or None,
                             client_configuration=conf, persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"KUBECONFIG={paths}: cannot use the Kubernetes client configuration: {exc}") from None
    elif source == "in-cluster":
        try:
            InClusterConfigLoader(token_filename=str(Path(service_account_dir) / "token"),
                                  cert_filename=str(Path(service_account_dir) / "ca.crt"),
                                  environ=dict(env)).load_and_set(conf)
        except (ConfigException, OSError) as exc:
            raise ConfigError(f"in-cluster Kubernetes configuration (service account in {service_account_dir}): "
                              f"{exc}") from None
    elif source == "":
        raise ConfigError("no Kubernetes API configuration: set KUBECONFIG, run in a pod with a service account "
                          "(KUBERNETES_SERVICE_HOST), or set K8S_API_ENDPOINT")
    if extra.get("k8sAPIEndpoint"):
        conf.host = extra["k8sAPIEndpoint"].rstrip("/")
    for fld, attr, name in (("k8sCertFile", "cert_file", "K8S_CERT_FILE"), ("k8sKeyFile", "key_file", "K8S_KEY_FILE"),
                            ("k8sCAFile", "ssl_ca_cert", "K8S_CA_FILE")):
        path = extra.get(fld)
        if path:
            if not os.path.isfile(path):
                raise ConfigError(f"{name}: file {path} does not exist or is not a file")
            setattr(conf, attr, path)
    if _parse_bool(extra.get("k8sInsecureSkipTLSVerify", ""), "K8S_INSECURE_SKIP_TLS_VERIFY"):
        conf.verify_ssl = False
    if extra.get("k8sAPIToken"):
        conf.api_key["BearerToken"] = extra["k8sAPIToken"]
        conf.api_key_prefix["BearerToken"] = "Bearer"
    return _finish(conf)


def _finish(conf):
    if not conf.host.startswith(("http://", "https://")):
        raise ConfigError(f"Kubernetes API server {conf.host!r} must be an http:// or https:// URL")
    # Every syncer source holds a watch connection; keep them pooled.
    conf.connection_pool_maxsize = max(conf.connection_pool_maxsize or 0, 64)
    conf.retries = 1
    return conf


def explicit_group(config: DatastoreConfig) -> str:
    """The CRD group CALICO_API_GROUP names ('' when unset)."""
    value = config.extra.get("calicoAPIGroup", "")
    if not value:
        return ""
    if value.lower() == GROUP_V3.lower():
        return GROUP_V3
    if value.lower() == GROUP_V1.lower():
        return GROUP_V1
    raise ConfigError(f"CALICO_API_GROUP={value!r} is not a Calico API group (use {GROUP_V1} or {GROUP_V3})")


def discover_group(api) -> str:
    """Calico's auto-discovery: v3 only when projectcalico.org is served and
    crd.projectcalico.org is not; v1 otherwise, and when discovery fails."""
    try:
        groups = set(api.server_groups())
    except CalicoError as exc:
        log.warning("Failed to query API server for supported API groups, cannot autodiscover API group, "
                    "defaulting to %s: %s", GROUP_V1, exc)
        return GROUP_V1
    v3 = "projectcalico.org" in groups
    v1 = "crd.projectcalico.org" in groups
    log.info("Auto-discovered Calico API groups v3present=%s v1present=%s", v3, v1)
    return GROUP_V3 if v3 and not v1 else GROUP_V1
