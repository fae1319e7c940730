"""Offline use: run the calculation over a list of resources (files, a dry run, tests)."""
from __future__ import annotations

from collections.abc import Iterable

from node.datastore.syncer import Update, UpdateType
from node.felix.calc.graph import PolicyCalculation
from node.model import KINDS, Resource, etcd_key

_V3 = "/calico/resources/v3/projectcalico.org/"


def resource_key(res: Resource) -> str:
    """The resource's etcd key (also for kinds the model does not register yet)."""
    if res.kind in KINDS:
        return etcd_key(res.kind, res.name, res.namespace)
    plural = res.kind.lower() + "s"
    return f"{_V3}{plural}/{res.namespace}/{res.name}" if res.namespace else f"{_V3}{plural}/{res.name}"


def updates_from_resources(resources: Iterable[Resource], update_type: UpdateType = UpdateType.NEW,
                           first_revision: int = 1) -> list[Update]:
    """Syncer updates for ``resources``, as a list-then-watch snapshot would deliver them."""
    return [Update(update_type, resource_key(res), res, first_revision + i)
            for i, res in enumerate(resources)]


def calculate(hostname: str, resources: Iterable[Resource], **options) -> list:
    """The messages a fresh calculation sends for a datastore holding ``resources``,
    ending with ``InSync``."""
    graph = PolicyCalculation(hostname, **options)
    graph.on_updates(updates_from_resources(resources))
    graph.on_in_sync()
    return graph.take_messages()
