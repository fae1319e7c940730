"""What the renderer knows: the resources it follows, held as plain data.

The daemon fills a ``ConfdInputs`` from the syncer, the one-shot modes from a datastore
listing or from YAML files; the picture computation only ever reads it. Nothing here
decides anything about BGP: it only stores, replaces and removes resources.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping


from node.confd.services import EndpointSlice, Service, endpoint_slice_from_doc, service_from_doc
from node.config import DatastoreConfig
from node.errors import ValidationError
from node.model import Resource, from_dict, load_documents
from node.model.ipam import parse_pod_cidr

log = logging.getLogger(__name__)

# The resource kinds the renderer follows, and the ConfdInputs field holding each.
FOLLOWED_KINDS: dict[str, str] = {
    "Node": "nodes",
    "BGPConfiguration": "bgp_configs",
    "BGPPeer": "bgp_peers",
    "BGPFilter": "bgp_filters",
    "IPPool": "ip_pools",
    "BlockAffinity": "affinities",
}

# Kubernetes kinds the renderer reads through its Kubernetes client (see kubeside), or from files.
SECRET_KIND = "Secret"
SERVICE_KIND = "Service"
ENDPOINT_SLICE_KIND = "EndpointSlice"
KUBERNETES_KINDS = (SECRET_KIND, SERVICE_KIND, ENDPOINT_SLICE_KIND)
DEFAULT_SECRET_NAMESPACE = "kube-system"
DEFAULT_ENDPOINT_STATUS_PREFIX = "/var/run/calico"


@dataclass(frozen=True)
class Settings:
    """The environment confd honours, read once at start."""

    nodename: str
    router_id: str = ""                 # CALICO_ROUTER_ID ("hash", an IPv4 string, or unset)
    advertise_cluster_ips: str = ""     # CALICO_ADVERTISE_CLUSTER_IPS (overrides serviceClusterIPs)
    secret_namespace: str = DEFAULT_SECRET_NAMESPACE   # NAMESPACE
    endpoint_status_prefix: str = DEFAULT_ENDPOINT_STATUS_PREFIX  # CALICO_ENDPOINT_STATUS_PATH_PREFIX
    k8s_node_ref: str = ""              # CALICO_K8S_NODE_REF: this node's Kubernetes name, if different
    use_pod_cidr: bool = False          # USE_POD_CIDR: this node's blocks are its Node's podCIDRs (host-local IPAM)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """ConfigError when USE_POD_CIDR is not a boolean."""
        from node.datastore.kubernetes.clientconfig import use_pod_cidr

        env = os.environ if env is None else env
        # Read as the datastore settings are: CALICO_USE_POD_CIDR wins over USE_POD_CIDR.
        pod_cidr = env.get("CALICO_USE_POD_CIDR") or env.get("USE_POD_CIDR") or ""
        return cls(
            use_pod_cidr=use_pod_cidr(DatastoreConfig(extra={"usePodCIDR": pod_cidr})),
            nodename=env.get("NODENAME", ""),
            router_id=env.get("CALICO_ROUTER_ID", ""),
            advertise_cluster_ips=env.get("CALICO_ADVERTISE_CLUSTER_IPS", ""),
            secret_namespace=env.get("NAMESPACE") or DEFAULT_SECRET_NAMESPACE,
            # Felix writes endpoint status under the run directory, so follow it when it moves.
            endpoint_status_prefix=(env.get("CALICO_ENDPOINT_STATUS_PATH_PREFIX") or env.get("CALICO_RUN_DIR")
                                    or DEFAULT_ENDPOINT_STATUS_PREFIX),
            k8s_node_ref=env.get("CALICO_K8S_NODE_REF", ""),
        )

    @property
    def kubernetes_node_name(self) -> str:
        return self.k8s_node_ref or self.nodename

    @property
    def endpoint_status_dir(self) -> Path:
        return Path(self.endpoint_status_prefix) / "endpoint-status"


@dataclass(frozen=True)
class LocalWorkload:
    """One endpoint status file that names a BGPPeer (a local-workload BGP peer)."""

    name: str          # the status file's name
    bgp_peer_name: str
    ipv4: str = ""     # address part of the first ipv4Nets entry
    ipv6: str = ""


@dataclass
class ConfdInputs:
    """Every resource the renderer follows, by name.

    ``affinities`` holds BlockAffinity resources for any host; the picture keeps only
    this node's (and none with USE_POD_CIDR, whose blocks are the Node's podCIDRs).
    ``secrets`` is None when no Kubernetes API is available (BGP passwords then render
    as absent, as in Calico); otherwise it maps (namespace, name) to the Secret's
    decoded data, and ``secret_errors`` says why a Secret could not be read (a 403 when
    RBAC grants no Secrets). ``services`` and ``endpoint_slices`` feed per-Service
    route advertisement; they stay empty without a Kubernetes API.
    """

    nodes: dict[str, Resource] = field(default_factory=dict)
    bgp_configs: dict[str, Resource] = field(default_factory=dict)
    bgp_peers: dict[str, Resource] = field(default_factory=dict)
    bgp_filters: dict[str, Resource] = field(default_factory=dict)
    ip_pools: dict[str, Resource] = field(default_factory=dict)
    affinities: dict[str, Resource] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] | None = None
    secret_errors: dict[tuple[str, str], str] = field(default_factory=dict)
    local_workloads: dict[str, LocalWorkload] = field(default_factory=dict)
    services: dict[tuple[str, str], Service] = field(default_factory=dict)
    endpoint_slices: dict[tuple[str, str], EndpointSlice] = field(default_factory=dict)

    def table(self, kind: str) -> dict[str, Resource]:
        return getattr(self, FOLLOWED_KINDS[kind])

    def put(self, res: Resource) -> None:
        self.table(res.kind)[res.name] = res

    def remove(self, kind: str, name: str) -> None:
        self.table(kind).pop(name, None)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        if self.secrets is None:
            return None
        data = self.secrets.get((namespace, name))
        if data is None or key not in data:
            return None
        return data[key]

    def secret_problem(self, namespace: str, name: str, key: str) -> str:
        """Why ``secret_value`` has no value for this key ('' when it has one)."""
        data = (self.secrets or {}).get((namespace, name))
        if data is not None and key in data:
            return ""
        if self.secrets is None:
            return "no Kubernetes client to read Secrets with"
        if data is not None:
            return f"Secret {namespace}/{name} has no key {key!r}"
        error = self.secret_errors.get((namespace, name))
        if error:
            return f"Secret {namespace}/{name} cannot be read: {error}"
        return f"Secret {namespace}/{name} does not exist"


# --------------------------------------------------------------------------------------
# Kubernetes Secrets (from files, or from the API: see kubeside).

def secret_data(doc: dict, source: str) -> tuple[str, str, dict[str, str]]:
    """(namespace, name, data) of a v1 Secret document; ``data`` is base64, ``stringData`` plain."""
    meta = doc.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        raise ValidationError([(f"{source}: Secret.metadata.name", "", "name must be specified")])
    out: dict[str, str] = {}
    for key, value in (doc.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ValidationError([(f"Secret({name}).data.{key}", value, "not valid base64 text")]) from None
    for key, value in (doc.get("stringData") or {}).items():
        out[key] = str(value)
    return meta.get("namespace") or "", name, out


# --------------------------------------------------------------------------------------
# Endpoint status files (Felix writes one per local workload).

def parse_endpoint_status(name: str, text: str) -> LocalWorkload | None:
    """The local-workload peer a status file describes, or None when it names no BGPPeer
    or has no usable address yet."""
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError("endpoint status is not a JSON object")
    peer = obj.get("bgpPeerName") or ""
    if not peer:
        return None
    addrs = {}
    for family, nets_key in ((4, "ipv4Nets"), (6, "ipv6Nets")):
        nets = obj.get(nets_key) or []
        if nets:
            # Go's net.ParseCIDR, as Calico reads it: address/length only (a bare address
            # or a netmask is refused, and with it the whole file, for now).
            parse_pod_cidr(nets[0])
            addrs[family] = str(ipaddress.ip_interface(nets[0]).ip)
    if not addrs:
        log.warning("endpoint status %s has no address yet; ignoring it for now", name)
        return None
    return LocalWorkload(name=name, bgp_peer_name=peer, ipv4=addrs.get(4, ""), ipv6=addrs.get(6, ""))


def read_endpoint_status_dir(directory: Path) -> dict[str, LocalWorkload]:
    """Every local-workload peer described in ``directory`` (missing directory: none)."""
    out: dict[str, LocalWorkload] = {}
    try:
        entries = sorted(p for p in directory.iterdir() if p.is_file())
    except FileNotFoundError:
        return out
    for path in entries:
        try:
            workload = parse_endpoint_status(path.name, path.read_text())
        except (OSError, ValueError) as exc:
            # Felix may still be writing it; the next scan picks it up.
            log.debug("cannot read endpoint status %s yet: %s", path, exc)
            continue
        if workload is not None:
            out[path.name] = workload
    return out


# --------------------------------------------------------------------------------------
# Inputs from resource YAML files (``confd --oneshot --from-file``).

def load_files(paths: Iterable[str], settings: Settings) -> ConfdInputs:
    """Read resource YAML files into a ConfdInputs.

    Every Calico kind the renderer follows is accepted (BlockAffinity included) and
    validated as calicoctl would. The Kubernetes kinds the renderer reads in a Kubernetes
    datastore are accepted too: Secrets (BGP passwords), Services and EndpointSlices
    (Service advertisement). They are taken as the API server stores them when created:
    Service defaults filled in, and no Service status (a create does not persist it).
    Other documents are rejected with an error naming the file and the document.
    Later documents replace earlier ones of the same kind and name.

    Local-workload BGP peers come, as in Calico's one-shot run, from the endpoint status
    files Felix writes on this host (``settings.endpoint_status_dir``), not from the files.
    """
    inputs = ConfdInputs(secrets={}, local_workloads=read_endpoint_status_dir(settings.endpoint_status_dir))
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        for index, doc in enumerate(load_documents(text, path)):
            where = f"{path} (document {index + 1})"
            kind = doc.get("kind") if isinstance(doc, dict) else None
            if kind == SECRET_KIND:
                namespace, name, data = secret_data(doc, where)
                inputs.secrets[(namespace or settings.secret_namespace, name)] = data
            elif kind == SERVICE_KIND:
                svc = service_from_doc(doc, with_status=False)
                inputs.services[svc.key] = svc
            elif kind == ENDPOINT_SLICE_KIND:
                eps = endpoint_slice_from_doc(doc)
                inputs.endpoint_slices[(eps.namespace, eps.name)] = eps
            elif kind in FOLLOWED_KINDS:
                inputs.put(from_dict(doc, strict=True))
            else:
                raise ValidationError([(where, kind or "", "kind not read by the BIRD renderer (expected one of "
                                        f"{', '.join([*FOLLOWED_KINDS, *KUBERNETES_KINDS])})")])
    return inputs
