"""Each local workload endpoint's part in a live migration (Felix's LiveMigrationCalculator).

A LiveMigration (namespaced; on Kubernetes the datastore makes one of each KubeVirt
VirtualMachineInstanceMigration) names where a workload moves from and to:

* ``spec.source.workload`` (hostname, orchestratorID, workloadID: every endpoint of that
  workload) or, if there is no ``workload``, ``spec.source.workloadEndpoint`` (the same
  plus endpointID: that one endpoint; with an empty endpointID, again every endpoint);
* ``spec.target.workloadEndpoint`` (the same way) and/or ``spec.target.selector``, a
  selector over the endpoints' labels, their profiles' included, as policy selectors
  match them (an empty one selects nothing).

With orchestratorID ``k8s`` the hostname is ignored (namespace/pod is unique already).
A local workload endpoint so named or selected is the migration's SOURCE or TARGET, and
its message carries the role and the LiveMigration's ``metadata.uid``
(``WorkloadEndpoint.live_migration_role``/``live_migration_uid``). When several
LiveMigrations concern one endpoint (transient overlaps), as in Felix: a target selector
match wins, then a direct target, then a direct source, and the uid is the greatest of
the LiveMigrations giving that winning role. Remote endpoints never get a role.

Two choices where Felix's result depends on the order events arrived in, made so that the
result depends only on the current resources (as everywhere in this calculation, an
incremental run equals a fresh one): an endpoint stays a selector target while any
LiveMigration's selector matches it (Felix remembers only the last selector that
matched), and its uid follows the current LiveMigrations (Felix re-sends the endpoint
only when its role changes, keeping the uid it first sent). An endpoint's message is sent
again exactly when its role or uid changes.

A LiveMigration that fails validation (a selector that does not parse, a field of the
wrong type) is logged with its name and field and counts as absent.

Nothing here runs without LiveMigrations: the local workload endpoints are indexed by
workload only while at least one exists (``active``), and the target selectors live in
the shared index of ``workload_selectors``, which exists only while some selector does.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Any, NamedTuple

from node.felix import types as t
from node.felix.calc.workload_selectors import LocalWorkloadSelectors
from node.model import Resource
from node.selector import Selector, SelectorError, parse

log = logging.getLogger(__name__)

KIND = "LiveMigration"

# The pod labels KubeVirt's virt-launcher pods carry the VMI's name in (kubevirt.io/api
# core/v1 VirtualMachineInstanceIDLabel, since KubeVirt 1.7, and
# DeprecatedVirtualMachineNameLabel); Felix reports the first present.
VMI_ID_LABEL = "vmi.kubevirt.io/id"
VM_NAME_LABEL = "vm.kubevirt.io/name"

_SOURCE, _TARGET = 0, 1
_EMPTY: frozenset = frozenset()


def vmi_name(labels: Iterable[tuple[str, str]]) -> str:
    """The KubeVirt VMI name in a workload endpoint's own labels ("" for other workloads)."""
    found = ""
    for key, value in labels:
        if key == VMI_ID_LABEL:
            return value
        if key == VM_NAME_LABEL:
            found = value
    return found


class _Owner(NamedTuple):
    """A workload endpoint (all four set) or every endpoint of a workload (endpoint "")."""
    hostname: str      # "" when the orchestrator is k8s
    orchestrator: str
    workload: str      # "<namespace>/<workload>", as in the endpoint's key
    endpoint: str


_NOBODY = _Owner("", "", "", "")


def _owner(hostname: str, orchestrator: str, workload: str, endpoint: str) -> _Owner:
    return _Owner("" if orchestrator == "k8s" else hostname, orchestrator, workload, endpoint)


class _LiveMigration(NamedTuple):
    uid: str
    named: tuple[_Owner, _Owner]  # (source, target) named directly; _NOBODY for none
    selector: str                 # spec.target.selector ("" for none)
    parsed: Selector | None       # (not compared: the text says it all)

    def same(self, other: "_LiveMigration | None") -> bool:
        return other is not None and self[:3] == other[:3]


class _Invalid(Exception):
    pass


class LiveMigrations:
    """Tracks the LiveMigrations; tells ``on_changed(key)`` whenever a local workload
    endpoint's (role, uid) in ``role_of`` changes. ``local_endpoints()`` lists the keys of
    the local workload endpoints (read when the first LiveMigration arrives)."""

    def __init__(self, on_changed: Callable[[Hashable], None], selectors: LocalWorkloadSelectors,
                 local_endpoints: Callable[[], Iterable[Any]]):
        self._on_changed = on_changed
        self._selectors = selectors
        selectors.add_user(KIND, self._match_changed)
        self._local_endpoints = local_endpoints
        # (namespace, name) -> the LiveMigration, for the valid ones.
        self._lms: dict[tuple[str, str], _LiveMigration] = {}
        # Owner named directly as source / as target -> the LiveMigrations naming it.
        self._named: tuple[dict[_Owner, set], dict[_Owner, set]] = ({}, {})
        # Target selector text -> the LiveMigrations using it (filed once in the index).
        self._by_selector: dict[str, set] = {}
        # While active: workload (an _Owner with endpoint "") -> endpoint id -> key.
        self._workloads: dict[_Owner, dict[str, Any]] | None = None
        # Endpoints whose matches changed during a LiveMigration update (refreshed after it).
        self._deferred: set | None = None
        # Local workload endpoint key -> (role, uid), for the endpoints with a role.
        self.role_of: dict[Any, tuple[str, str]] = {}

    @property
    def active(self) -> bool:
        """True while some LiveMigration exists: only then do the local workload
        endpoints need to be passed in."""
        return self._workloads is not None

    # ------------------------------------------------------------------ inputs

    def on_live_migration(self, res: Resource, deleted: bool) -> None:
        lm_key = (res.namespace, res.name)
        new = None
        if not deleted:
            try:
                new = _parse(res)
            except _Invalid as exc:
                log.error("LiveMigration %s/%s is invalid, so it gives no workload endpoint a role: %s",
                          res.namespace, res.name, exc)
        old = self._lms.get(lm_key)
        if new is old or (new is not None and new.same(old)):
            return
        if new is None:
            log.info("LiveMigration %s/%s deleted", res.namespace, res.name)
        else:
            log.info("LiveMigration %s/%s (uid %r): source %s, target %s%s", res.namespace, res.name, new.uid,
                     _describe(new.named[_SOURCE]), _describe(new.named[_TARGET]),
                     f", target selector {new.selector!r}" if new.selector else "")
        if self._workloads is None:
            self._workloads = workloads = {}
            for key in self._local_endpoints():
                workloads.setdefault(_owner(key.hostname, key.orchestrator, key.workload, ""), {})[key.endpoint] = key
        self._deferred = affected = set()
        try:
            if old is not None:
                affected.update(self._concerned(old))
                del self._lms[lm_key]
            if new is not None:
                self._lms[lm_key] = new
            for which in (_SOURCE, _TARGET):
                before = _NOBODY if old is None else old.named[which]
                after = _NOBODY if new is None else new.named[which]
                if before != after:
                    if before != _NOBODY:
                        _discard(self._named[which], before, lm_key)
                    if after != _NOBODY:
                        self._named[which].setdefault(after, set()).add(lm_key)
            before = "" if old is None else old.selector
            after = "" if new is None else new.selector
            if before != after:
                if before:
                    if _discard(self._by_selector, before, lm_key):
                        self._selectors.set_selector(KIND, before, None)
                if after:
                    users = self._by_selector.setdefault(after, set())
                    users.add(lm_key)
                    if len(users) == 1:
                        self._selectors.set_selector(KIND, after, new.parsed)
            if new is not None:
                affected.update(self._concerned(new))
        finally:
            self._deferred = None
        for key in affected:
            self._refresh(key)
        if not self._lms:
            self._workloads = None  # (every role is gone with the last LiveMigration)

    # Only while ``active``:

    def endpoint_updated(self, key: Any) -> None:
        """A local workload endpoint exists (new or changed; only its key matters)."""
        endpoints = self._workloads.setdefault(_owner(key.hostname, key.orchestrator, key.workload, ""), {})
        if endpoints.get(key.endpoint) == key:
            return
        endpoints[key.endpoint] = key
        self._refresh(key)

    def endpoint_removed(self, key: Any) -> None:
        workload = _owner(key.hostname, key.orchestrator, key.workload, "")
        endpoints = self._workloads.get(workload)
        if endpoints is None or endpoints.get(key.endpoint) != key:
            return
        del endpoints[key.endpoint]
        if not endpoints:
            del self._workloads[workload]
        if self.role_of.pop(key, None) is not None:
            self._on_changed(key)

    # ------------------------------------------------------------------ internals

    def _concerned(self, lm: _LiveMigration) -> list:
        """The known local endpoints ``lm`` names or selects."""
        found = []
        for owner in lm.named:
            if owner == _NOBODY:
                continue
            endpoints = self._workloads.get(owner._replace(endpoint=""))
            if not endpoints:
                continue
            if owner.endpoint:
                key = endpoints.get(owner.endpoint)
                if key is not None:
                    found.append(key)
            else:
                found.extend(endpoints.values())
        if lm.selector:
            found.extend(self._selectors.endpoints_matching(KIND, lm.selector))
        return found

    def _match_changed(self, _selector: str, key: Hashable) -> None:
        if self._deferred is not None:
            self._deferred.add(key)
        else:
            self._refresh(key)

    def _refresh(self, key: Any) -> None:
        role = self._role(key)
        if role == self.role_of.get(key):
            return
        if role is None:
            del self.role_of[key]
        else:
            self.role_of[key] = role
        self._on_changed(key)

    def _role(self, key: Any) -> tuple[str, str] | None:
        workload = _owner(key.hostname, key.orchestrator, key.workload, "")
        endpoints = self._workloads.get(workload) if self._workloads is not None else None
        if endpoints is None or endpoints.get(key.endpoint) != key:
            return None  # (not a known local workload endpoint)
        lms: set = set()
        for text in self._selectors.selectors_matching(KIND, key):
            lms.update(self._by_selector[text])
        if lms:
            return t.LIVE_MIGRATION_TARGET, self._uid(lms)
        exact = workload._replace(endpoint=key.endpoint)
        for which, role in ((_TARGET, t.LIVE_MIGRATION_TARGET), (_SOURCE, t.LIVE_MIGRATION_SOURCE)):
            named = self._named[which]
            lms = named.get(exact, _EMPTY) | named.get(workload, _EMPTY)
            if lms:
                return role, self._uid(lms)
        return None

    def _uid(self, lm_keys: Iterable[tuple[str, str]]) -> str:
        return max(self._lms[k].uid for k in lm_keys)


def _discard(index: dict, key: Hashable, item: Hashable) -> bool:
    """Take ``item`` out of ``index[key]``; True if that emptied (and removed) it."""
    members = index.get(key)
    if members is None:
        return False
    members.discard(item)
    if members:
        return False
    del index[key]
    return True


def _describe(owner: _Owner) -> str:
    if owner == _NOBODY:
        return "none"
    what = "/".join(p for p in (owner.hostname, owner.orchestrator, owner.workload) if p)
    return f"{what} endpoint {owner.endpoint}" if owner.endpoint else f"{what} (every endpoint)"


# ---------------------------------------------------------------------- parsing

def _parse(res: Resource) -> _LiveMigration:
    """The LiveMigration as Felix reads it. (Calico validates nothing more of this internal
    kind: its "exactly one of" markers are not enforced, so this does not enforce them.)"""
    uid = res.metadata.get("uid") if isinstance(res.metadata, dict) else None
    if uid is None:
        uid = ""
    elif not isinstance(uid, str):
        raise _Invalid(f"metadata.uid {uid!r} is not a string")
    spec = _mapping(res.spec, "spec")
    source = _mapping(spec.get("source"), "spec.source")
    target = _mapping(spec.get("target"), "spec.target")
    # (As Felix reads it: a source's workload wins over its workloadEndpoint.)
    if source.get("workload") is not None:
        named_source = _identifier(source["workload"], "spec.source.workload", False)
    else:
        named_source = _identifier(source.get("workloadEndpoint"), "spec.source.workloadEndpoint", True)
    named_target = _identifier(target.get("workloadEndpoint"), "spec.target.workloadEndpoint", True)
    selector = target.get("selector")
    parsed = None
    if selector is None:
        selector = ""
    elif not isinstance(selector, str):
        raise _Invalid(f"spec.target.selector {selector!r} is not a string")
    elif selector:
        try:
            parsed = parse(selector)
        except SelectorError as exc:
            raise _Invalid(f"spec.target.selector {selector!r} is not a valid selector ({exc})") from None
    return _LiveMigration(uid, (named_source, named_target), selector, parsed)


def _mapping(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Invalid(f"{field} {value!r} is not an object")
    return value


def _identifier(value: Any, field: str, with_endpoint: bool) -> _Owner:
    fields = _mapping(value, field)
    parts = []
    for name in ("hostname", "orchestratorID", "workloadID") + (("endpointID",) if with_endpoint else ()):
        part = fields.get(name)
        if part is None:
            part = ""
        elif not isinstance(part, str):
            raise _Invalid(f"{field}.{name} {part!r} is not a string")
        parts.append(part)
    if not with_endpoint:
        parts.append("")
    return _owner(*parts)  # (_NOBODY when nothing is set: names nobody)
