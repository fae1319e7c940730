"""Resource-level datastore client: what startup, the renderer and calicoctl call.

It speaks in ``Resource`` objects and libcalico-go's semantics (create stamps uid and
creationTimestamp, update needs a revision, IPPool defaults, BlockAffinity mapped onto
the IPAM affinity keys); the byte-level work is done by a backend (``EtcdKV``).
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import logging
import uuid
from typing import Callable, Iterable, Protocol

from node.errors import AlreadyExists, Conflict, NotFound, ValidationError
from node.model import ipam
from node.model.kinds import KINDS
from node.model.schema import Collector, canonical_struct
from node.model.resource import (
    Resource,
    etcd_key,
    etcd_prefix,
    from_storage,
    identifier,
    parse_etcd_key,
    validate_resource,
)

log = logging.getLogger(__name__)

UPDATE_RETRIES = 5


class KVBackend(Protocol):
    """What the client needs from a key/value store (implemented by ``EtcdKV``)."""

    def get(self, key: str): ...
    def list(self, prefix: str): ...
    def create(self, key: str, value: bytes) -> int: ...
    def update(self, key: str, value: bytes, revision: int) -> int: ...
    def put(self, key: str, value: bytes) -> int: ...
    def delete(self, key: str, revision: int | None = None): ...


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------
# Per-kind defaulting done by libcalico-go's typed clients before a write.

def ippool_write_problems(res: Resource, old: Resource | None, other_pools: Iterable[Resource],
                          block_cidrs: Iterable[str]) -> list[tuple[str, object, str]]:
    """libcalico-go's pool rules for a create (``old`` None) or an update, over plain data.

    Fills in the pool defaults on ``res`` and returns the problems found; ``other_pools``
    and ``block_cidrs`` (existing IPAM blocks of the pool's IP version) matter on create
    only. Startup calls this to check every default pool before it writes any.
    """
    spec = res.spec
    cidr = spec.get("cidr", "")
    p = f"{res.identifier()}.spec"
    if not cidr:
        raise ValidationError([(f"{p}.cidr", "", "IPPool CIDR must be specified")])
    try:
        net = ipaddress.ip_network(cidr, strict=False)
        ip = ipaddress.ip_interface(cidr).ip if "/" in cidr else ipaddress.ip_address(cidr)
    except ValueError:
        raise ValidationError([(f"{p}.cidr", cidr, "IPPool CIDR must be a valid subnet")]) from None
    problems = []
    if net.network_address != ip:
        problems.append((f"{p}.cidr", cidr, "IPPool CIDR is not strictly masked"))
    spec["cidr"] = str(net)
    if old is not None:
        if ipaddress.ip_network(old.spec["cidr"], strict=False) != net:
            problems.append((f"{p}.cidr", cidr, "IPPool CIDR cannot be modified"))
    for mode in ("vxlanMode", "ipipMode"):
        if not spec.get(mode):
            spec[mode] = "Never"
    if not spec.get("blockSize"):
        spec["blockSize"] = 26 if net.version == 4 else 122
    if old is not None and old.spec.get("blockSize") and old.spec["blockSize"] != spec["blockSize"]:
        problems.append((f"{p}.blockSize", spec["blockSize"], "IPPool BlockSize cannot be modified"))
    if not spec.get("nodeSelector"):
        spec["nodeSelector"] = "all()"
    if not spec.get("allowedUses"):
        spec["allowedUses"] = ["Workload", "Tunnel"]
    if old is not None and "LoadBalancer" in old.spec.get("allowedUses", []):
        if any(u != "LoadBalancer" for u in spec["allowedUses"]):
            problems.append((f"{p}.allowedUses", spec["allowedUses"],
                             "IPPool allowed use cannot be changed from LoadBalancer to Workload or Tunnel"))
    if not spec.get("assignmentMode"):
        spec["assignmentMode"] = "Automatic"
    if old is None:
        for other in other_pools:
            if other.name == res.name:
                continue
            try:
                other_net = ipaddress.ip_network(other.spec.get("cidr", ""), strict=False)
            except ValueError:
                log.error("IPPool %s is configured with an invalid CIDR %r", other.name, other.spec.get("cidr"))
                continue
            if other_net.version == net.version and other_net.overlaps(net):
                problems.append((f"{p}.cidr", cidr, f"IPPool({res.name}) CIDR overlaps with "
                                                    f"IPPool({other.name}) CIDR {other.spec['cidr']}"))
        conflict = ipam.block_size_conflict(str(net), spec["blockSize"], block_cidrs)
        if conflict:
            problems.append((f"{p}.blockSize", spec["blockSize"], "IPPool blocksSize conflicts with existing "
                                                                  f"allocations that use a different blockSize "
                                                                  f"(block {conflict})"))
    # Keep Go's field order after defaulting.
    res.spec = canonical_struct(spec, "IPPoolSpec", "", Collector(), strict=False)
    return problems


def _default_ippool(res: Resource, old: Resource | None, client: "DatastoreClient") -> None:
    others: list[Resource] = []
    blocks: list[str] = []
    if old is None:
        others = client.list("IPPool")
        try:
            blocks = ipam.block_cidrs_in(client.kv, ipaddress.ip_network(res.spec.get("cidr", ""), strict=False).version)
        except ValueError:
            pass  # an unparsable CIDR is reported by ippool_write_problems
    problems = ippool_write_problems(res, old, others, blocks)
    if problems:
        raise ValidationError(problems)


def _read_default_ippool(res: Resource) -> None:
    """Defaults libcalico-go fills in when it reads a pool (convertIpPoolFromStorage)."""
    spec = res.spec
    try:
        version = ipaddress.ip_network(spec.get("cidr", ""), strict=False).version
    except ValueError:
        return
    changed = False
    for key, default in (("blockSize", 26 if version == 4 else 122), ("allowedUses", ["Workload", "Tunnel"]),
                         ("nodeSelector", "all()"), ("ipipMode", "Never"), ("vxlanMode", "Never"),
                         ("assignmentMode", "Automatic")):
        if not spec.get(key):
            spec[key] = default
            changed = True
    if changed:
        res.spec = canonical_struct(spec, "IPPoolSpec", "", Collector(), strict=False)


WRITE_DEFAULTS: dict[str, Callable[[Resource, Resource | None, "DatastoreClient"], None]] = {
    "IPPool": _default_ippool,
}
READ_DEFAULTS: dict[str, Callable[[Resource], None]] = {
    "IPPool": _read_default_ippool,
}

# Synthesised on read, never stored (libcalico-go's default-allow profile).
DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"


def _default_allow_profile() -> Resource:
    return Resource("Profile", {"name": DEFAULT_ALLOW_PROFILE, "resourceVersion": "1"},
                    {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]})


# --------------------------------------------------------------------------------------

def decode_kv(key: str, value: bytes, revision: int) -> Resource | None:
    """Decode any key the node follows into a Resource (None for keys we do not model).

    This is the decoder the syncer uses, so every consumer sees the same defaults.
    """
    if parse_etcd_key(key) is not None:
        res = from_storage(key, value, revision)
        hook = READ_DEFAULTS.get(res.kind)
        if hook:
            hook(res)
        return res
    if ipam.parse_affinity_key(key) is not None:
        return ipam.affinity_to_resource(key, value, revision)
    return None


class DatastoreClient:
    """CRUD on Calico resources over a key/value backend, with libcalico-go's rules."""

    def __init__(self, kv: KVBackend):
        self.kv = kv

    # -- keys ---------------------------------------------------------------------------
    @staticmethod
    def key_for(kind: str, name: str, namespace: str = "") -> str:
        if kind == "BlockAffinity":
            raise ValueError("BlockAffinity keys are derived from the spec (node and cidr)")
        return etcd_key(kind, name, namespace)

    def _key_of(self, res: Resource) -> str:
        if res.kind == "BlockAffinity":
            return ipam.resource_to_affinity(res)[0]
        return etcd_key(res.kind, res.name, res.namespace)

    def _value_of(self, res: Resource) -> bytes:
        if res.kind == "BlockAffinity":
            return ipam.resource_to_affinity(res)[1].encode()
        return res.storage_json().encode()

    def _decode(self, kv_item) -> Resource:
        res = decode_kv(kv_item.key, kv_item.value, kv_item.mod_revision)
        if res is None:
            raise ValueError(f"{kv_item.key}: not a resource key")
        return res

    # -- reads --------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str = "") -> Resource:
        kind = KINDS[kind].kind
        if kind == "Profile" and name == DEFAULT_ALLOW_PROFILE:
            return _default_allow_profile()
        if kind == "BlockAffinity":
            for res in self.list("BlockAffinity"):
                if res.name == name:
                    return res
            raise NotFound(identifier(kind, name))
        item = self.kv.get(etcd_key(kind, name, namespace))
        if item is None:
            raise NotFound(identifier(kind, name, namespace))
        return self._decode(item)

    def list(self, kind: str, namespace: str = "") -> list[Resource]:
        kind = KINDS[kind].kind
        if kind == "BlockAffinity":
            items, _ = self.kv.list(ipam.affinity_prefix())
            out = [ipam.affinity_to_resource(i.key, i.value, i.mod_revision)
                   for i in items if ipam.parse_affinity_key(i.key)]
            return sorted(out, key=lambda r: r.name)
        items, _ = self.kv.list(etcd_prefix(kind, namespace))
        out = []
        for item in items:
            if parse_etcd_key(item.key) is None:
                continue
            try:
                out.append(self._decode(item))
            except (ValueError, ValidationError) as exc:
                log.error("Skipping malformed value at %s: %s", item.key, exc)
        if kind == "Profile":
            out.append(_default_allow_profile())
        return out

    # -- writes -------------------------------------------------------------------------
    def _prepare(self, res: Resource, old: Resource | None) -> Resource:
        res = res.copy()
        hook = WRITE_DEFAULTS.get(res.kind)
        if hook:
            hook(res, old, self)
        validate_resource(res)
        return res

    def create(self, res: Resource) -> Resource:
        """Create; fails with AlreadyExists. Stamps uid and creationTimestamp like libcalico-go."""
        if res.kind == "Profile" and res.name == DEFAULT_ALLOW_PROFILE:
            raise AlreadyExists(res.identifier(), "the default-allow profile is built in")
        res = self._prepare(res, None)
        meta = res.metadata
        meta.pop("resourceVersion", None)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        res.metadata = _ordered_meta(meta)
        try:
            rev = self.kv.create(self._key_of(res), self._value_of(res))
        except AlreadyExists:
            raise AlreadyExists(res.identifier()) from None
        res.metadata["resourceVersion"] = str(rev)
        res.metadata = _ordered_meta(res.metadata)
        return res

    def update(self, res: Resource) -> Resource:
        """Update at the given resourceVersion; fails with Conflict when it is stale."""
        ident = res.identifier()
        rv = res.resource_version
        if not rv:
            raise ValidationError([(f"{ident}.metadata.resourceVersion", "", "field must be set for an Update request")])
        if res.kind != "BlockAffinity":
            for field in ("creationTimestamp", "uid"):
                if not res.metadata.get(field):
                    raise ValidationError([(f"{ident}.metadata.{field}", "", "field must be set for an Update request")])
        old = None
        if res.kind in WRITE_DEFAULTS:
            try:
                old = self.get(res.kind, res.name, res.namespace)
            except NotFound:
                raise NotFound(ident) from None
        res = self._prepare(res, old)
        try:
            new_rev = self.kv.update(self._key_of(res), self._value_of(res), int(rv))
        except NotFound:
            raise NotFound(ident) from None
        except Conflict:
            raise Conflict(ident, f"resource version {rv} is out of date") from None
        res.metadata["resourceVersion"] = str(new_rev)
        return res

    def replace(self, res: Resource) -> Resource:
        """calicoctl's replace: with a resourceVersion it must be current; without one the
        current metadata is merged in and the update retried on conflict."""
        rv = res.resource_version
        if rv:
            current = self.get(res.kind, res.name, res.namespace)
            if current.resource_version != rv:
                raise Conflict(current.identifier(),
                               f"resource version '{rv}' is out of date (latest: {current.resource_version}). "
                               "Update the resource YAML/JSON in order to make changes")
            return self.update(_merge_meta(current, res))
        last: Exception | None = None
        for _ in range(UPDATE_RETRIES):
            current = self.get(res.kind, res.name, res.namespace)
            try:
                return self.update(_merge_meta(current, res))
            except Conflict as exc:
                last = exc
        raise last  # type: ignore[misc]

    def apply(self, res: Resource) -> Resource:
        """Create, or replace when it exists (calicoctl apply)."""
        if res.kind == "ClusterInformation":
            raise ValidationError([(res.identifier(), "", "ClusterInformation is read-only: apply is not supported")])
        original_rv = res.resource_version
        attempt = res.copy()
        attempt.metadata.pop("resourceVersion", None)
        try:
            return self.create(attempt)
        except AlreadyExists:
            pass
        res = res.copy()
        if original_rv:
            res.metadata["resourceVersion"] = original_rv
        else:
            res.metadata.pop("resourceVersion", None)
        return self.replace(res)

    def delete(self, kind: str, name: str, namespace: str = "", resource_version: str = "") -> Resource:
        """Delete, guarded by resource_version when given; returns the deleted resource."""
        kind = KINDS[kind].kind
        ident = identifier(kind, name, namespace)
        if kind == "Profile" and name == DEFAULT_ALLOW_PROFILE:
            raise ValidationError([(ident, name, "the default-allow profile is built in and cannot be deleted")])
        if kind == "BlockAffinity":
            current = self.get(kind, name)
            key = self._key_of(current)
        else:
            key = etcd_key(kind, name, namespace)
        if kind == "IPPool":
            # libcalico-go disables a pool before deleting it so no new addresses come from it.
            try:
                pool = self.get(kind, name)
            except NotFound:
                raise NotFound(ident) from None
            if resource_version and pool.resource_version != resource_version:
                raise Conflict(ident, f"resource version {resource_version} is out of date")
            if not pool.spec.get("disabled"):
                pool.spec["disabled"] = True
                pool.spec = canonical_struct(pool.spec, "IPPoolSpec", "", Collector(), strict=False)
                pool = self.update(pool)
            resource_version = pool.resource_version
        try:
            item = self.kv.delete(key, int(resource_version) if resource_version else None)
        except NotFound:
            raise NotFound(ident) from None
        except Conflict:
            raise Conflict(ident, f"resource version {resource_version} is out of date") from None
        return self._decode(item)


_META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
               "annotations", "ownerReferences", "finalizers", "managedFields")


def _ordered_meta(meta: dict) -> dict:
    return {k: meta[k] for k in _META_ORDER if k in meta}


def _merge_meta(current: Resource, new: Resource) -> Resource:
    """Carry the server-owned metadata of ``current`` into ``new`` (mergeMetadataForUpdate)."""
    merged = new.copy()
    for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
        if field in current.metadata:
            merged.metadata[field] = current.metadata[field]
    merged.metadata = _ordered_meta(merged.metadata)
    return merged
