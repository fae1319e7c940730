"""Keys for the Kubernetes objects that only exist in the Kubernetes datastore.

The renderer reads Secrets (BGP passwords), Services and EndpointSlices (Service
advertisement) from the Kubernetes API. They are followed through the same syncer as
every Calico resource, under keys of their own next to Calico's key space:
``/calico/kubernetes/<plural>/<namespace>/<name>``, with the object's JSON as the value.
An etcd datastore simply has nothing under these prefixes.

This module has no dependency on the Kubernetes client, so consumers can name these
sources whatever the backend.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

KUBERNETES_PREFIX = "/calico/kubernetes/"

# kind -> (plural used in the key, API path prefix)
NATIVE_KINDS = {
    "Secret": ("secrets", "/api/v1"),
    "Service": ("services", "/api/v1"),
    "EndpointSlice": ("endpointslices", "/apis/discovery.k8s.io/v1"),
}


@dataclass(frozen=True)
class KubeObject:
    """A Kubernetes object as read from the API (the decoded JSON in ``obj``)."""

    kind: str
    namespace: str
    name: str
    obj: dict


def native_prefix(kind: str, namespace: str = "") -> str:
    plural = NATIVE_KINDS[kind][0]
    return f"{KUBERNETES_PREFIX}{plural}/{namespace + '/' if namespace else ''}"


def native_key(kind: str, namespace: str, name: str) -> str:
    return f"{native_prefix(kind, namespace)}{name}"


def parse_native_key(key: str) -> tuple[str, str, str] | None:
    """(kind, namespace, name) for a native-object key, or None."""
    if not key.startswith(KUBERNETES_PREFIX):
        return None
    parts = key[len(KUBERNETES_PREFIX):].split("/")
    if len(parts) != 3:
        return None
    for kind, (plural, _) in NATIVE_KINDS.items():
        if parts[0] == plural:
            return kind, parts[1], parts[2]
    return None


def decode_native(key: str, value: bytes, revision: int) -> KubeObject | None:
    """The syncer decoder for native-object keys."""
    parsed = parse_native_key(key)
    if parsed is None:
        return None
    kind, namespace, name = parsed
    obj = json.loads(value)
    if not isinstance(obj, dict):
        raise ValueError(f"{key}: stored value is not a JSON object")
    return KubeObject(kind, namespace, name, obj)
