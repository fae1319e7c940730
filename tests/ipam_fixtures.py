"""Helpers shared by the IPAM tests: pools, nodes and a controllable clock."""
from __future__ import annotations

from node.datastore.client import DatastoreClient
from node.model import from_dict
from node.model.resource import Resource

# 2025-05-01T10:00:05.123456789Z, the instant used by the spec's block example.
T0 = 1746093605123456789


class Clock:
    """A clock the test moves by hand, so sequence numbers and claim times are known."""

    def __init__(self, ns: int = T0):
        self.ns = ns

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1_000_000_000)


def make_pool(client: DatastoreClient, name: str, cidr: str, **spec) -> Resource:
    return client.create(from_dict({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                    "metadata": {"name": name}, "spec": {"cidr": cidr, **spec}}))


def update_pool(client: DatastoreClient, name: str, **spec) -> Resource:
    pool = client.get("IPPool", name)
    doc = pool.to_dict()
    doc["spec"] = {**doc["spec"], **spec}
    return client.update(from_dict(doc))


def make_node(client: DatastoreClient, name: str, labels: dict | None = None, spec: dict | None = None,
              status: dict | None = None) -> Resource:
    doc = {"apiVersion": "projectcalico.org/v3", "kind": "Node",
           "metadata": {"name": name, **({"labels": labels} if labels else {})}, "spec": spec or {}}
    if status:
        doc["status"] = status
    return client.create(from_dict(doc))


def raw(kv, key: str) -> str | None:
    item = kv.get(key)
    return None if item is None else item.value.decode()


def ipam_keys(kv) -> dict[str, str]:
    items, _ = kv.list("/calico/ipam/v2/")
    return {i.key: i.value.decode() for i in items}
