"""WorkloadEndpoint names, as libcalico-go builds and checks them (lib/names).

A WorkloadEndpoint is found by name alone, so Calico derives the name from the spec's
identifiers: ``<node>-<orchestrator>-<third>-<endpoint>``, where the third segment is the
pod for ``k8s``, the container ID for ``cni``, the orchestrator again for ``libnetwork``
and the workload otherwise. Each segment's own dashes are doubled so the name can be
split again. The datastore client checks (or fills in) the name on every write; the
CNI-like pod helper computes it.
"""
from __future__ import annotations

from typing import Any

from node.errors import ValidationError
from node.model.resource import Resource

KIND = "WorkloadEndpoint"


def _error(ident: str, path: str, value: Any, reason: str) -> ValidationError:
    return ValidationError([(f"{ident}.{path}", value, reason)])

# The third name segment per orchestrator (the spec field it comes from); any other
# orchestrator uses "workload".
THIRD_SEGMENT = {"k8s": "pod", "cni": "containerID", "libnetwork": "orchestrator"}


def _segments(ids: dict[str, Any], ident: str = KIND) -> list[tuple[str, Any]]:
    """(spec field, value) for each name segment; the node is always required."""
    node = ids.get("node") or ""
    if not node:
        raise _error(ident, "spec.node", "", "field should be assigned")
    orchestrator = ids.get("orchestrator") or ""
    third = THIRD_SEGMENT.get(orchestrator, "workload")
    fields = ("node", "orchestrator", third, "endpoint")
    return [(f, ids.get(f) or "") for f in fields]


def _escape(ident: str, field: str, value: str) -> str:
    if value.startswith("-"):
        raise _error(ident, f"spec.{field}", value, "field must not begin with a '-'")
    if value.endswith("-"):
        raise _error(ident, f"spec.{field}", value, "field must not end with a '-'")
    return value.replace("-", "--")


def workload_endpoint_name(ids: dict[str, Any], allow_prefix: bool = False, ident: str = KIND) -> str:
    """The name Calico requires for a WorkloadEndpoint with these identifiers.

    ``ids`` holds spec fields (node, orchestrator, endpoint, pod, workload, containerID);
    a WorkloadEndpoint's spec dict will do. A missing segment is an error naming the
    field, unless ``allow_prefix``: then the name up to the first missing segment,
    ending in "-", is returned (the key prefix a list by identifiers uses). ``ident``
    names the resource in errors.
    """
    parts: list[str] = []
    for field, value in _segments(ids, ident):
        if not isinstance(value, str):
            raise _error(ident, f"spec.{field}", value, "expected a string")
        if not value:
            if allow_prefix:
                return "-".join(parts) + "-"
            raise _error(ident, f"spec.{field}", "", "field should be assigned")
        parts.append(_escape(ident, field, value))
    return "-".join(parts)


def split_name(name: str) -> list[str]:
    """The dash-separated segments of a name, with doubled dashes restored to one."""
    parts: list[str] = []
    start = 0
    i = 1
    while i < len(name):
        if name[i] == "-":
            if i < len(name) - 1 and name[i + 1] == "-":
                i += 2
                continue
            parts.append(name[start:i].replace("--", "-"))
            start = i + 1
        i += 1
    parts.append(name[start:].replace("--", "-"))
    return parts


def name_segments(name: str, count: int) -> list[str] | None:
    """Exactly ``count`` segments of ``name``, or None when it has a different number."""
    if len(name) < 2 * count - 1:
        return None
    if "--" not in name and name[0] != "-" and name[-1] != "-":
        parts = name.split("-")  # no escaped dashes and no empty parts: a plain split (fast path)
    else:
        parts = split_name(name)
    return parts if len(parts) == count else None


def name_matches(name: str, ids: dict[str, Any]) -> bool:
    """Whether ``name`` fits the identifiers given; an empty identifier matches anything.

    A prefix listing can return endpoints of a longer pod name (``pod-1`` under the
    prefix for ``pod``), so listings by identifiers filter with this.
    """
    segments = _segments(ids)
    parts = name_segments(name, len(segments))
    if parts is None:
        return False
    return all(not value or value == part for (_, value), part in zip(segments, parts))


def check_workload_endpoint_name(res: Resource) -> str:
    """The name to store for the WorkloadEndpoint ``res`` on create or update.

    An empty name gets the one its spec implies (libcalico-go fills it in); any other
    name must equal it. Raises ValidationError naming the resource and field otherwise.
    """
    ident = res.identifier() if res.name else KIND
    expected = workload_endpoint_name(res.spec, ident=ident)
    if not res.name:
        return expected
    if res.name != expected:
        raise _error(ident, "metadata.name", res.name,
                     "the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: "
                     f"expected name {expected}")
    return res.name


def parse_workload_endpoint_name(name: str) -> dict[str, str]:
    """The identifiers a name spells out (node, orchestrator and what follows).

    Raises ValueError for an empty name or one with more segments than its orchestrator
    has fields.
    """
    if not name:
        raise ValueError("cannot parse an empty WorkloadEndpoint name")
    parts = split_name(name)
    ids = {"node": parts[0]}
    if len(parts) > 1:
        ids["orchestrator"] = parts[1]
        fields = (THIRD_SEGMENT.get(parts[1], "workload"), "endpoint")
        rest = parts[2:]
        if len(rest) > len(fields):
            raise ValueError(f"cannot parse WorkloadEndpoint name {name!r}: too many segments")
        for field, part in zip(fields, rest):
            ids[field] = part
    return ids
