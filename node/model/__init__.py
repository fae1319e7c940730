"""Calico's resource model: kinds, validation, and the exact JSON libcalico-go stores."""
from node.model.kinds import API_VERSION, KINDS, KindInfo, UnknownKind, kind_info
from node.model.resource import (
    Resource,
    etcd_key,
    etcd_prefix,
    from_dict,
    from_storage,
    identifier,
    load_documents,
    load_resources,
    parse_etcd_key,
    stub_from_key,
    validate_resource,
)

__all__ = [
    "API_VERSION", "KINDS", "KindInfo", "UnknownKind", "kind_info", "Resource", "etcd_key",
    "etcd_prefix", "from_dict", "from_storage", "identifier", "load_documents", "load_resources",
    "parse_etcd_key", "stub_from_key", "validate_resource",
]
