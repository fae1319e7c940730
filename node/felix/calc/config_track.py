"""Following the datastore's Felix configuration (Felix's ConfigBatcher, reduced).

The calculation does not resolve configuration precedence (``node.felix.config`` does);
it only notices when one of the three inputs changes: FelixConfiguration ``default``,
FelixConfiguration ``node.<hostname>`` and ClusterInformation ``default``.  Like Felix,
it reports nothing before the datastore is in sync, and then the whole picture at once.
"""
from __future__ import annotations

import copy

from node.model import Resource

SPOOFING_DISABLED = "Disabled"


class ConfigTracker:
    def __init__(self, hostname: str):
        self._names = {("FelixConfiguration", "default"): "default",
                       ("FelixConfiguration", f"node.{hostname}"): "node",
                       ("ClusterInformation", "default"): "clusterinfo"}
        self._specs: dict[str, dict] = {"default": {}, "node": {}, "clusterinfo": {}}
        self._sent: dict | None = None

    def update(self, res: Resource, deleted: bool) -> bool:
        """Record a resource; True if it is one of the tracked three and it changed."""
        slot = self._names.get((res.kind, res.name))
        if slot is None:
            return False
        spec = {} if deleted else copy.deepcopy(res.spec or {})
        if spec == self._specs[slot]:
            return False
        self._specs[slot] = spec
        return True

    def pending(self) -> dict | None:
        """The config to report, if it differs from what was last reported."""
        if self._specs == self._sent:
            return None
        self._sent = copy.deepcopy(self._specs)
        return copy.deepcopy(self._specs)

    def workload_source_spoofing(self) -> str:
        """The datastore's WorkloadSourceSpoofing: per-node wins over global."""
        for slot in ("node", "default"):
            value = self._specs[slot].get("workloadSourceSpoofing")
            if value:
                return value
        return SPOOFING_DISABLED
