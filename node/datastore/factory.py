"""Pick and build the datastore backend named by a DatastoreConfig.

Both backends (``EtcdKV`` for etcdv3, ``KubeKV`` for kubernetes) offer the same key/value
interface over Calico's etcd key space, so the resource client, IPAM and the syncer are
the same code on either."""
from __future__ import annotations

from node.config import ETCDV3, KUBERNETES, DatastoreConfig
from node.datastore.client import DatastoreClient
from node.errors import ConfigError


def kv_for(config: DatastoreConfig):
    """The raw key/value backend for ``config`` (the syncer and IPAM use it directly)."""
    if config.datastore_type == ETCDV3:
        from node.datastore.etcd import EtcdKV

        return EtcdKV(config)
    if config.datastore_type == KUBERNETES:
        from node.datastore.kubernetes.kv import KubeKV

        return KubeKV(config)
    raise ConfigError(f"unknown datastore type: {config.datastore_type!r}")


def client_for(config: DatastoreConfig) -> DatastoreClient:
    return DatastoreClient(kv_for(config))
