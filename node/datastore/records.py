"""The plain records both key/value backends hand out: a stored key (``KV``) and a
change seen by a watch (``WatchEvent``, of type ``PUT`` or ``DELETE``).

They live apart from ``node.datastore.etcd`` so that the syncer and the Kubernetes
backend can use them without loading gRPC and the etcd client: on the Kubernetes
datastore those would be about 16 MB of a node's resident memory for nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

PUT = "put"
DELETE = "delete"


@dataclass(frozen=True)
class KV:
    """One stored key; ``mod_revision`` is what callers pass back to update/delete."""

    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class WatchEvent:
    """A change seen by a watch. ``value`` is None for deletes; ``prev_value`` is None
    when the key was new (or the previous version is no longer retained)."""

    type: str
    key: str
    value: bytes | None
    mod_revision: int
    prev_value: bytes | None
