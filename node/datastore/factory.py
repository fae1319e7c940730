"""Pick and build the datastore backend named by a DatastoreConfig."""
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
        raise ConfigError(
            "the kubernetes datastore is not available in this build yet; "
            "set DATASTORE_TYPE=etcdv3 and ETCD_ENDPOINTS to use an etcd datastore"
        )
    raise ConfigError(f"unknown datastore type: {config.datastore_type!r}")


def client_for(config: DatastoreConfig) -> DatastoreClient:
    return DatastoreClient(kv_for(config))
