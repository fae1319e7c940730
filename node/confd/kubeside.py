"""What the renderer reads straight from the Kubernetes API, whatever the datastore.

As Calico's confd does, the renderer has a Kubernetes client of its own, beside the
datastore: it exists when ``KUBECONFIG`` names a usable kubeconfig, or else when the
process runs in a pod (the in-cluster service account). With neither there are no BGP
passwords from Secrets and no per-Service advertisement, on either datastore. Through
that client it follows:

* **Secrets**, one informer per Secret that a BGPPeer's ``password.secretKeyRef`` (or
  the default BGPConfiguration's ``nodeMeshPassword``) names, in ``NAMESPACE``
  (kube-system by default), field-selected on ``metadata.name``: list and watch of that
  one Secret, which a Role limited by ``resourceNames`` can grant. Calico's RBAC grants
  no Secrets; one that cannot be read (403, or not there) only leaves its peers without
  a password, with a warning naming peer and Secret, and never holds up rendering. The
  first time a Secret is named, rendering waits up to half a second for its first
  list. Informers of Secrets no longer named are stopped.
* **Services and EndpointSlices**, cluster-wide, only once Service advertisement is
  configured (``CALICO_ADVERTISE_CLUSTER_IPS``, or ``serviceClusterIPs``,
  ``serviceExternalIPs`` or ``serviceLoadBalancerIPs`` in the default BGPConfiguration),
  and from then on. When that is so at the first render, rendering waits until both
  have been listed (as Calico's confd waits for its route generator); when it becomes
  so later, rendering carries on and their routes join as they are listed.

The first part of this module decides what to follow from the renderer's inputs (pure
functions); the rest follows it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping

from node.confd.inputs import ConfdInputs, Settings
from node.config import DatastoreConfig
from node.datastore.kubernetes.api import KubeAPI, ResourcePath, TokenBucket
from node.datastore.kubernetes.informer import Informer, ObjectKey
from node.errors import ConfigError

log = logging.getLogger(__name__)

SECRETS = ResourcePath("/api/v1", "secrets", True, "Secret")
SERVICES = ResourcePath("/api/v1", "services", True, "Service")
ENDPOINT_SLICES = ResourcePath("/apis/discovery.k8s.io/v1", "endpointslices", True, "EndpointSlice")

# How long rendering waits for a newly named Secret's first list (Calico's 0.5 s).
SECRET_SYNC_WAIT = 0.5
# client-go's defaults for a client built from a rest.Config that sets none.
CLIENT_QPS = 5.0
CLIENT_BURST = 10
SERVICE_ADVERTISEMENT_FIELDS = ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs")


# --------------------------------------------------------------------------------------
# What to follow (pure).

def _ref_name(holder: dict | None) -> str:
    ref = ((holder or {}).get("secretKeyRef")) or {}
    name = ref.get("name") if isinstance(ref, dict) else ""
    return name if isinstance(name, str) else ""


def referenced_secrets(inputs: ConfdInputs) -> set[str]:
    """Names of the Secrets whose keys are BGP passwords: every BGPPeer's
    ``password.secretKeyRef`` and the default BGPConfiguration's ``nodeMeshPassword``."""
    names = {_ref_name(peer.spec.get("password")) for peer in inputs.bgp_peers.values()}
    default = inputs.bgp_configs.get("default")
    if default is not None:
        names.add(_ref_name(default.spec.get("nodeMeshPassword")))
    names.discard("")
    return names


def service_advertisement_configured(inputs: ConfdInputs, settings: Settings) -> bool:
    """Whether Services must be followed: ``CALICO_ADVERTISE_CLUSTER_IPS`` is set, or the
    default BGPConfiguration names some service range."""
    if settings.advertise_cluster_ips:
        return True
    default = inputs.bgp_configs.get("default")
    spec = default.spec if default is not None else {}
    return any(spec.get(name) for name in SERVICE_ADVERTISEMENT_FIELDS)


# --------------------------------------------------------------------------------------
# The client.

def client_configuration_from_env(env: Mapping[str, str], service_account_dir: str | None = None):
    """The renderer's Kubernetes client configuration, or None: ``KUBECONFIG`` when it is
    set and usable, else the in-cluster service account (neither ``$HOME/.kube/config``
    nor the datastore's ``K8S_*`` settings, as in Calico). Logs why there is none."""
    from node.datastore.kubernetes.clientconfig import SERVICE_ACCOUNT_DIR, client_configuration

    account = service_account_dir or SERVICE_ACCOUNT_DIR
    path = env.get("KUBECONFIG", "")
    if path:
        try:
            return client_configuration(DatastoreConfig(kubeconfig=path), env, account, home_fallback=False)
        except ConfigError as exc:
            log.info("cannot use KUBECONFIG for Secrets and Services (%s); trying the in-cluster configuration", exc)
    try:
        return client_configuration(DatastoreConfig(), env, account, home_fallback=False)
    except ConfigError as exc:
        log.warning("no Kubernetes client (%s): BGP passwords from Secrets and Service advertisement are off", exc)
        return None


def kube_api_factory(configuration) -> Callable[[], KubeAPI]:
    """A factory for the renderer's client, rate-limited as client-go limits one by default."""
    return lambda: KubeAPI(configuration, limiter=TokenBucket(CLIENT_QPS, CLIENT_BURST))


# --------------------------------------------------------------------------------------
# Following it.

class SecretWatcher:
    """One informer per named Secret (see the module docstring).

    The callbacks get the Secret's name and the informer they come from (so that a late
    callback from a stopped informer can be told apart): ``on_object(name, informer,
    obj)`` with ``obj`` None when the Secret is gone, ``on_synced(name, informer)``,
    ``on_error(name, informer, text)``."""

    def __init__(self, api: KubeAPI, namespace: str, *, on_object, on_synced, on_error,
                 backoff: tuple[float, float] | None = None):
        self.api = api
        self.namespace = namespace
        self._on_object = on_object
        self._on_synced = on_synced
        self._on_error = on_error
        self._backoff = backoff
        self._informers: dict[str, Informer] = {}
        self._lock = threading.Lock()

    def is_current(self, name: str, informer: Informer) -> bool:
        with self._lock:
            return self._informers.get(name) is informer

    @property
    def names(self) -> set[str]:
        with self._lock:
            return set(self._informers)

    def track(self, names: set[str]) -> tuple[list[Informer], list[str]]:
        """Follow exactly ``names``: start informers for new ones, stop the others.
        Returns (the informers started, the names dropped)."""
        started: list[Informer] = []
        with self._lock:
            dropped = sorted(set(self._informers) - names)
            stopping = [self._informers.pop(name) for name in dropped]
            for name in sorted(names - set(self._informers)):
                informer = self._informer(name)
                self._informers[name] = informer
                started.append(informer)
        for informer in stopping:
            informer.stop(timeout=0)
        for name in dropped:
            log.info("no longer watching Secret %s/%s: no BGP password refers to it", self.namespace, name)
        for informer in started:
            log.info("watching %s for a BGP password", informer.what)
            informer.start()
        return started, dropped

    def _informer(self, name: str) -> Informer:
        holder: list[Informer] = []
        kwargs = {}
        if self._backoff is not None:
            kwargs = {"backoff_initial": self._backoff[0], "backoff_max": self._backoff[1]}
        informer = Informer(
            self.api, SECRETS, namespace=self.namespace, field_selector=f"metadata.name={name}",
            what=f"Secret {self.namespace}/{name}",
            on_object=lambda key, obj: self._on_object(name, holder[0], obj),
            on_synced=lambda: self._on_synced(name, holder[0]),
            on_error=lambda text: self._on_error(name, holder[0], text), **kwargs)
        holder.append(informer)
        return informer

    @staticmethod
    def wait_settled(informers: list[Informer], budget: float) -> None:
        """Wait until each informer's first list answered or failed, at most ``budget``
        seconds in all."""
        deadline = time.monotonic() + budget
        for informer in informers:
            if not informer.wait_settled(max(0.0, deadline - time.monotonic())):
                log.warning("%s was not read within %gs; rendering without it for now", informer.what, budget)

    def stop(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
            self._informers.clear()
        for informer in informers:
            informer.stop(timeout=1.0)


class ServiceWatcher:
    """Calico's route generator's informers: every Service and EndpointSlice.
    ``on_service(key, obj)`` / ``on_slice(key, obj)`` (``obj`` None when gone) and
    ``on_synced()`` once both have listed."""

    def __init__(self, api: KubeAPI, *, on_service: Callable[[ObjectKey, dict | None], None],
                 on_slice: Callable[[ObjectKey, dict | None], None], on_synced: Callable[[], None],
                 backoff: tuple[float, float] | None = None):
        kwargs = {}
        if backoff is not None:
            kwargs = {"backoff_initial": backoff[0], "backoff_max": backoff[1]}
        self.informers = [
            Informer(api, SERVICES, what="Services", on_object=on_service, on_synced=on_synced, **kwargs),
            Informer(api, ENDPOINT_SLICES, what="EndpointSlices", on_object=on_slice, on_synced=on_synced,
                     **kwargs),
        ]

    def start(self) -> "ServiceWatcher":
        log.info("Service advertisement is configured: following Services and EndpointSlices")
        for informer in self.informers:
            informer.start()
        return self

    @property
    def synced(self) -> bool:
        return all(informer.synced for informer in self.informers)

    @property
    def last_error(self) -> str:
        return "; ".join(f"{i.what}: {i.last_error}" for i in self.informers if i.last_error and not i.synced)

    def stop(self) -> None:
        for informer in self.informers:
            informer.stop(timeout=1.0)
