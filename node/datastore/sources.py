"""Which keys a consumer follows: build syncer sources from resource kinds.

Every consumer (startup, renderer, policy agent, IPAM) names the kinds it wants and gets
decoded ``Resource`` values with the same read defaults as the client. The Kubernetes
objects only the Kubernetes datastore has (Secret, Service, EndpointSlice) are named the
same way and arrive as ``KubeObject`` values; an etcd datastore has none of them.
"""
from __future__ import annotations

from node.datastore.client import decode_kv, default_allow_profile
from node.datastore.kubernetes.keys import NATIVE_KINDS, decode_native, native_prefix
from node.datastore.syncer import SyncSource
from node.model import ipam
from node.model.kinds import KINDS
from node.datastore.records import KV
from node.model.resource import etcd_key, etcd_prefix


def resource_sources(kinds: list[str], affinity_host: str | None = None,
                     namespaces: dict[str, str] | None = None) -> list[SyncSource]:
    """One source per kind. ``BlockAffinity`` follows one host's affinities when
    ``affinity_host`` is given (the renderer's view), otherwise every host's.
    ``namespaces`` restricts a namespaced kind to one namespace (the renderer reads
    Secrets from its own namespace only)."""
    sources = []
    for name in kinds:
        namespace = (namespaces or {}).get(name, "")
        if name in NATIVE_KINDS:
            sources.append(SyncSource(prefix=native_prefix(name, namespace), decode=decode_native))
            continue
        kind = KINDS[name].kind
        if kind == "BlockAffinity":
            prefix = ipam.affinity_prefix(affinity_host or "")
        else:
            prefix = etcd_prefix(kind, namespace)
        builtin = (default_allow_record(),) if kind == "Profile" else ()
        sources.append(SyncSource(prefix=prefix, decode=decode_kv, builtin=builtin))
    return sources


def default_allow_record() -> KV:
    """The default-allow profile as a stored record at revision 1, as libcalico-go's etcd
    and Kubernetes backends add it to every list of profiles (so Felix's syncer, and
    ours, deliver it: endpoints and host endpoints that name it get its allow rules)."""
    res = default_allow_profile()
    return KV(etcd_key("Profile", res.name), res.storage_json().encode(), 1, 1)
