"""Following the datastore's Felix configuration (Felix's ConfigBatcher, reduced).

The calculation does not resolve configuration precedence (``node.felix.config`` does);
it only notices when one of its inputs changes: FelixConfiguration ``default``,
FelixConfiguration ``node.<hostname>``, ClusterInformation ``default``, and the
selector-scoped FelixConfigurations (any other name) with this host's Node labels, which
pick the one of them that applies here. Like Felix, it reports nothing before the
datastore is in sync, and then the whole picture at once.

Selector-scoped FelixConfigurations (Felix v3.32): one whose ``spec.nodeSelector``
matches this host's Node labels applies here, ranked between ``default`` and
``node.<hostname>``. If several match, the oldest by ``creationTimestamp`` (then by name)
wins and a warning names them all. One without a nodeSelector matches nowhere; one
whose nodeSelector does not parse is logged and that update ignored (its previous version,
if any, stays, as in Felix); one that fails validation counts as absent (Felix's
validation filter). Without this host's Node, or with one whose metadata has no labels
(Go's nil map in Felix), none applies, not even ``all()``. A ``nodeSelector`` on ``default`` or ``node.*`` is not used (the
model refuses to write one, as Calico's CRD does).
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from node.errors import CalicoError
from node.felix.config import CONFIG_ANNOTATION_PREFIX, parse_value
from node.model import Resource, validate_resource
from node.selector import Selector, SelectorError, parse

log = logging.getLogger(__name__)

SPOOFING_DISABLED = "Disabled"

# Go's zero time: a resource without a creationTimestamp is the oldest.
_ZERO_TIME = _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)

# The FelixConfiguration slots (in precedence order, lowest first).
FELIX_SLOTS = ("default", "selector", "node")


@dataclass(frozen=True)
class SelectorConfig:
    """A selector-scoped FelixConfiguration (Felix's SelectorConfigEntry)."""

    name: str
    selector: Selector | None  # None: no nodeSelector, so it matches no node
    created: _dt.datetime
    spec: dict
    annotations: dict  # its config.projectcalico.org/ annotations only


def is_selector_scoped(name: str) -> bool:
    """Whether a FelixConfiguration of this name is selector-scoped (libcalico-go's
    update processor: neither ``default`` nor ``node.<name>``)."""
    return name != "default" and not name.startswith("node.")


def creation_time(metadata: Mapping[str, Any] | None) -> _dt.datetime:
    """``metadata.creationTimestamp`` as an instant; absent or unreadable is Go's zero time."""
    value = (metadata or {}).get("creationTimestamp") if isinstance(metadata, Mapping) else None
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
    if isinstance(value, str) and value:
        try:
            parsed = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _ZERO_TIME
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.timezone.utc)
    return _ZERO_TIME


def config_annotations(res: Resource) -> dict[str, str]:
    annotations = res.metadata.get("annotations") if isinstance(res.metadata, dict) else None
    return {k: v for k, v in (annotations or {}).items()
            if isinstance(k, str) and k.startswith(CONFIG_ANNOTATION_PREFIX) and isinstance(v, str)}


def matching_configs(entries: Mapping[str, SelectorConfig] | list[SelectorConfig],
                     node_labels: Mapping[str, str] | None) -> list[SelectorConfig]:
    """The selector-scoped configurations that match a node with ``node_labels``, the one
    that applies first: the oldest by creation time, then by name. None match without
    labels (None: no Node, or one whose metadata has no labels, Felix's nil map) and an
    entry without a nodeSelector matches nowhere."""
    if node_labels is None:
        return []
    values = entries.values() if isinstance(entries, Mapping) else entries
    matches = [e for e in values if e.selector is not None and e.selector.evaluate(node_labels)]
    return sorted(matches, key=lambda e: (e.created, e.name))


def warn_overlap(matches: list[SelectorConfig]) -> None:
    if len(matches) > 1:
        log.warning("FelixConfigurations %s all select this node by nodeSelector; using %s, the oldest by "
                    "creationTimestamp (then name). This is likely a misconfiguration.",
                    ", ".join(sorted(e.name for e in matches)), matches[0].name)


def select_config(entries: Mapping[str, SelectorConfig] | list[SelectorConfig],
                  node_labels: Mapping[str, str] | None) -> SelectorConfig | None:
    """The selector-scoped configuration that applies to a node with ``node_labels``
    (Felix's MergeSelectorConfigs), or None; a warning names them if several match."""
    matches = matching_configs(entries, node_labels)
    warn_overlap(matches)
    return matches[0] if matches else None


class ConfigTracker:
    def __init__(self, hostname: str):
        self.hostname = hostname
        self._names = {("FelixConfiguration", "default"): "default",
                       ("FelixConfiguration", f"node.{hostname}"): "node",
                       ("ClusterInformation", "default"): "clusterinfo"}
        self._specs: dict[str, dict] = {"default": {}, "selector": {}, "node": {}, "clusterinfo": {}}
        self._annotations: dict[str, dict] = {}
        self._selector_configs: dict[str, SelectorConfig] = {}
        self._node_labels: dict | None = None
        self._matching: tuple[str, ...] = ()  # the names of the matching ones, the selected first
        self._reported_matching: tuple[str, ...] = ()
        self._sent: dict | None = None

    def update(self, res: Resource, deleted: bool) -> bool:
        """Record a resource; True if the configuration it feeds changed."""
        if res.kind == "FelixConfiguration" and is_selector_scoped(res.name):
            if not self._on_selector_config(res, deleted):
                return False
            return self._reselect()
        slot = self._names.get((res.kind, res.name))
        if slot is None:
            return False
        spec = {} if deleted else copy.deepcopy(res.spec or {})
        annotations = {} if deleted or res.kind != "FelixConfiguration" else config_annotations(res)
        if spec == self._specs[slot] and annotations == self._annotations.get(slot, {}):
            return False
        self._specs[slot] = spec
        self._set_annotations(slot, annotations)
        return True

    def on_node_labels(self, labels: Mapping[str, str] | None) -> bool:
        """This host's Node labels (None: no usable Node); True if the configuration changed."""
        labels = None if labels is None else dict(labels)
        if labels == self._node_labels:
            return False
        self._node_labels = labels
        return self._reselect()

    def _on_selector_config(self, res: Resource, deleted: bool) -> bool:
        """Record a selector-scoped FelixConfiguration; True if the recorded set changed."""
        name = res.name
        if not deleted:
            try:
                validate_resource(res)
            except CalicoError as exc:
                log.warning("Validation failed for %s; treating it as missing: %s", res.identifier(), exc)
                deleted = True
        if deleted:
            return self._selector_configs.pop(name, None) is not None
        text = (res.spec or {}).get("nodeSelector") or ""
        selector = None
        if text:
            try:
                selector = parse(text)
            except SelectorError as exc:
                log.warning("FelixConfiguration %s: nodeSelector %r does not parse (%s); ignoring this update",
                            name, text, exc)
                return False
        entry = SelectorConfig(name=name, selector=selector, created=creation_time(res.metadata),
                               spec=copy.deepcopy(res.spec or {}), annotations=config_annotations(res))
        if self._selector_configs.get(name) == entry:
            return False
        self._selector_configs[name] = entry
        log.info("Selector-scoped FelixConfiguration %s (nodeSelector %r) updated", name, text)
        return True

    def _reselect(self) -> bool:
        matches = matching_configs(self._selector_configs, self._node_labels)
        self._matching = tuple(e.name for e in matches)
        winner = matches[0] if matches else None
        spec = copy.deepcopy(winner.spec) if winner is not None else {}
        spec.pop("nodeSelector", None)
        annotations = dict(winner.annotations) if winner is not None else {}
        if spec == self._specs["selector"] and annotations == self._annotations.get("selector", {}):
            return False
        self._specs["selector"] = spec
        self._set_annotations("selector", annotations)
        return True

    def _set_annotations(self, slot: str, annotations: dict) -> None:
        if annotations:
            self._annotations[slot] = annotations
        else:
            self._annotations.pop(slot, None)

    def _snapshot(self) -> dict:
        return {**copy.deepcopy(self._specs), "annotations": copy.deepcopy(self._annotations)}

    def pending(self) -> dict | None:
        """The config to report, if it differs from what was last reported: the specs of
        ``default``, the selected ``selector`` one, ``node`` (this host's) and
        ``clusterinfo``, and ``annotations`` (slot -> its config.projectcalico.org/
        annotations, for slots that have some)."""
        if self._matching != self._reported_matching:
            # Said once the datastore is in sync, and again when the selection changes.
            self._reported_matching = self._matching
            matches = [self._selector_configs[name] for name in self._matching]
            warn_overlap(matches)
            if matches:
                log.info("FelixConfiguration %s applies to this node (its nodeSelector matches)", matches[0].name)
        snapshot = self._snapshot()
        if snapshot == self._sent:
            return None
        self._sent = snapshot
        return copy.deepcopy(snapshot)

    def workload_source_spoofing(self) -> str:
        """The datastore's WorkloadSourceSpoofing: per-node over selector-scoped over global
        (an annotation over its resource's field)."""
        for slot in reversed(FELIX_SLOTS):
            for key, value in self._annotations.get(slot, {}).items():
                if key[len(CONFIG_ANNOTATION_PREFIX):].lower() == "workloadsourcespoofing":
                    parsed = parse_value("WorkloadSourceSpoofing", value)
                    if parsed is not None:
                        return parsed or SPOOFING_DISABLED
            parsed = parse_value("WorkloadSourceSpoofing", self._specs[slot].get("workloadSourceSpoofing"))
            if parsed is not None:
                return parsed or SPOOFING_DISABLED
        return SPOOFING_DISABLED
