"""Host-local IPAM (``USE_POD_CIDR``): the Nodes' pod CIDRs stand in for IPAM blocks.

With ``USE_POD_CIDR`` set, Felix's syncer does not watch Calico's IPAM blocks (pod
addresses come from each node's Kubernetes pod CIDR, not from Calico's IPAM); instead
its Node update processor (libcalico-go's FelixNodeUpdateProcessor) turns each Node's
``status.podCIDRs`` into allocation blocks affine to ``host:<node>`` with no
allocations, keyed by the CIDR. The Kubernetes datastore fills ``status.podCIDRs`` from
the Kubernetes Node's ``spec.podCIDRs`` (``spec.podCIDR`` alone gives none). As Felix:

* every update of a Node re-sends a block for each of its current CIDRs, and a
  deletion for each CIDR it had before and has no more (compared as written);
* an entry that is not a CIDR is logged with the Node and skipped;
* a Node's deletion deletes the blocks of all its CIDRs.

The blocks then drive the route calculation exactly as IPAM blocks would: a remote
node's CIDR is routed to it (over VXLAN or IPIP when its pool says so), this host's own
gets a blackhole route.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping

from node.datastore.syncer import Update, UpdateType
from node.felix.calc.routes import IPAMBlock
from node.model import ipam as ipam_records
from node.model.resource import Resource

log = logging.getLogger(__name__)


def datastore_setting(env: Mapping[str, str], name: str) -> str:
    """A libcalico-go datastore variable: ``CALICO_<NAME>``, else ``<NAME>`` (empty: unset)."""
    return env.get("CALICO_" + name, "") or env.get(name, "")


def use_pod_cidr(env: Mapping[str, str]) -> bool:
    """``USE_POD_CIDR`` as the datastore client reads it (strconv.ParseBool's spellings);
    a value that is not a boolean is a ConfigError, as libcalico-go's client configuration
    then fails to load (Felix panics, confd exits)."""
    from node.config import DatastoreConfig
    from node.datastore.kubernetes.clientconfig import use_pod_cidr as parse_use_pod_cidr

    return parse_use_pod_cidr(DatastoreConfig(extra={"usePodCIDR": datastore_setting(env, "USE_POD_CIDR")}))


def _pod_cidrs(node: Resource) -> list[str]:
    cidrs = node.status.get("podCIDRs") if isinstance(node.status, dict) else None
    if not cidrs:
        return []
    if not isinstance(cidrs, list):
        log.warning("Node %s: status.podCIDRs is not a list; no blocks from it", node.name)
        return []
    out = []
    for entry in cidrs:
        if isinstance(entry, str):
            out.append(entry)
        else:
            log.warning("Node %s: status.podCIDRs entry %r is not a CIDR; no block for it", node.name, entry)
    return out


def _parse(node: str, text: str) -> str | None:
    """Go's net.ParseCIDR (shared with the BIRD renderer): ``addr/len`` only, masked to its network."""
    try:
        return str(ipam_records.parse_pod_cidr(text))
    except ValueError:
        log.warning("Node %s: status.podCIDRs entry %r is not a CIDR; no block for it", node, text)
        return None


class PodCIDRBlocks:
    """Node updates in, block updates out (the tracker of each Node's last CIDRs)."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, ...]] = {}

    def node_updated(self, name: str, node: Resource | None, revision: int = 0) -> list[Update]:
        """The block updates one Node update stands for (``node`` None: deleted)."""
        current = tuple(_pod_cidrs(node)) if node is not None else ()
        previous = self._seen.get(name, ())
        if current:
            self._seen[name] = current
        else:
            self._seen.pop(name, None)
        out: list[Update] = []
        for text in previous:
            if text in current:
                continue
            cidr = _parse(name, text)
            if cidr is not None:
                out.append(Update(UpdateType.DELETED, ipam_records.block_key(cidr), None, revision))
        for text in current:
            cidr = _parse(name, text)
            if cidr is not None:
                out.append(Update(UpdateType.NEW, ipam_records.block_key(cidr), IPAMBlock(cidr, name), revision))
        return out
