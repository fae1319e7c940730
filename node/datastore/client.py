"""Resource-level datastore client: what startup, the renderer and calicoctl call.

It speaks in ``Resource`` objects and libcalico-go's semantics (create stamps uid and
creationTimestamp, update needs a revision, per-kind defaults and guards, BlockAffinity
mapped onto the IPAM affinity keys); the byte-level work is done by a backend (``EtcdKV``).

Other writers share the datastore, so a stored value may not decode: a list skips it
with a warning naming the key and serves the rest, a get of that key raises
``DatastoreParseError`` naming it.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import logging
import time
import uuid
from typing import Callable, Iterable, Protocol

from node.errors import NO_VALUE, AlreadyExists, CalicoError, Conflict, NotFound, ValidationError
from node.model import ipam
from node.model.kinds import KINDS
from node.model.defaults import kube_controllers_write_defaults
from node.model.names import check_workload_endpoint_name
from node.model.schema import Collector, canonical_struct, go_json
from node.model.validators import STAGED_ACTION_DELETE
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
# libcalico-go pauses between disabling a pool and releasing its affinities so that
# in-flight allocations from the pool can finish.
POOL_RELEASE_PAUSE_S = 0.5


class DatastoreParseError(CalicoError):
    """A stored value that does not decode (libcalico-go's ErrorParsingDatastoreEntry).

    Not a DatastoreError: the datastore answered, so retrying will not help."""

    def __init__(self, key: str, value: bytes | str, err: object):
        self.key = key
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        super().__init__(f"failed to parse datastore entry key={key}; value={text}: {err}")


class OperationNotSupported(CalicoError):
    """A request Calico refuses outright (libcalico-go's ErrorOperationNotSupported)."""

    def __init__(self, operation: str, identifier: str, reason: str = ""):
        self.operation = operation
        self.identifier = identifier
        super().__init__(f"operation {operation} is not supported on {identifier}" + (f": {reason}" if reason else ""))


class KVBackend(Protocol):
    """What the client needs from a key/value store (implemented by ``EtcdKV``)."""

    def get(self, key: str): ...
    def list(self, prefix: str): ...
    def create(self, key: str, value: bytes) -> int: ...
    def update(self, key: str, value: bytes, revision: int) -> int: ...
    def put(self, key: str, value: bytes) -> int: ...
    def delete(self, key: str, revision: int | None = None): ...
    def upgrade_host_affinities(self, node: str) -> int: ...


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


def _default_ippool(res: Resource, old: Resource | None, client: "DatastoreClient", creating: bool) -> None:
    others: list[Resource] = []
    blocks: list[str] = []
    if creating:
        others = client.list("IPPool")
        try:
            blocks = stored_block_cidrs(client.kv, ipaddress.ip_network(res.spec.get("cidr", ""), strict=False).version)
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


# -- policies and tiers ----------------------------------------------------------------

LABEL_TIER = "projectcalico.org/tier"
# The etcdv3 backend keeps the name a policy was written under in this annotation.
METADATA_ANNOTATION = "projectcalico.org/metadata"
DEFAULT_TIER = "default"
# Built-in tiers that always exist and can never be deleted.
PROTECTED_TIERS = ("default", "kube-admin", "kube-baseline")
DEFAULT_TIER_ORDER = 1000000
# Tiered policy kinds: named in a tier, stored with the name they were written under.
POLICY_KINDS = ("NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy", "StagedGlobalNetworkPolicy")


def default_policy_types(spec: dict) -> list[str] | None:
    """What ``types`` becomes when it is empty: rules decide (no egress rules means an
    ingress policy, even with no rules at all). None when ``types`` is already set."""
    if spec.get("types"):
        return None
    if not spec.get("egress"):
        return ["Ingress"]
    if not spec.get("ingress"):
        return ["Egress"]
    return ["Ingress", "Egress"]


def default_policy(res: Resource) -> None:
    """Calico's policy defaulting: ``types`` from the rules, the tier label from the tier.
    A staged deletion keeps no types (libcalico-go clears them after defaulting)."""
    types = default_policy_types(res.spec)
    if res.spec.get("stagedAction") == STAGED_ACTION_DELETE:
        res.spec.pop("types", None)
    elif types is not None:
        res.spec["types"] = types
        res.spec = canonical_struct(res.spec, res.info.spec, "", Collector(), strict=False)
    labels = dict(res.labels)
    labels[LABEL_TIER] = res.spec.get("tier") or DEFAULT_TIER
    res.metadata["labels"] = labels


def _default_policy(res: Resource, old: Resource | None, client: "DatastoreClient", creating: bool) -> None:
    if creating:
        # libcalico-go checks the tier before anything else, and only on create.
        client.get("Tier", res.spec.get("tier") or DEFAULT_TIER)
    default_policy(res)


def _read_default_policy(res: Resource) -> None:
    """The name the policy was written under (from the backend's metadata annotation; for
    policies written before it existed, a default-tier name loses its ``default.``
    prefix) and the tier label when it is missing."""
    meta = res.metadata
    annotations = dict(meta.get("annotations") or {})
    raw = annotations.pop(METADATA_ANNOTATION, None)
    if raw:
        try:
            name = json.loads(raw).get("name")
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"annotation {METADATA_ANNOTATION!r} contained invalid JSON: {exc}") from None
        if not isinstance(name, str) or not name:
            raise ValueError(f"annotation {METADATA_ANNOTATION!r} has no name: {raw!r}")
        meta["name"] = name
    elif (res.spec.get("tier") or DEFAULT_TIER) == DEFAULT_TIER:
        meta["name"] = res.name.removeprefix("default.")
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    labels = dict(res.labels)
    labels.setdefault(LABEL_TIER, DEFAULT_TIER)
    meta["labels"] = labels


def _policy_storage_meta(res: Resource) -> Resource:
    """What the etcdv3 backend stores for a policy: the name it was written under, kept in
    the metadata annotation."""
    stored = res.copy()
    annotations = dict(stored.metadata.get("annotations") or {})
    annotations[METADATA_ANNOTATION] = go_json({"name": res.name})
    stored.metadata["annotations"] = annotations
    stored.metadata = _ordered_meta(stored.metadata)
    return stored


def default_tier(res: Resource) -> None:
    """A tier without order sorts like the default tier; without a default action it denies."""
    changed = False
    if res.spec.get("order") is None:
        res.spec["order"] = DEFAULT_TIER_ORDER
        changed = True
    if res.spec.get("defaultAction") is None:
        res.spec["defaultAction"] = "Deny"
        changed = True
    if changed:
        res.spec = canonical_struct(res.spec, "TierSpec", "", Collector(), strict=False)


def _default_tier(res: Resource, old: Resource | None, client: "DatastoreClient", creating: bool) -> None:
    default_tier(res)


# -- workload endpoints ----------------------------------------------------------------

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"


def workload_endpoint_storage_labels(res: Resource) -> dict:
    """The labels a WorkloadEndpoint is stored with: its namespace and orchestrator always
    win over whatever the writer put under those keys."""
    labels = dict(res.labels)
    labels[LABEL_NAMESPACE] = res.namespace
    labels[LABEL_ORCHESTRATOR] = res.spec.get("orchestrator", "")
    return labels


def _default_workload_endpoint(res: Resource, old: Resource | None, client: "DatastoreClient",
                               creating: bool) -> None:
    """libcalico-go's order: the name (filled in when empty, else it must match the spec's
    identifiers), then the labels."""
    res.metadata["name"] = check_workload_endpoint_name(res)
    res.metadata = _ordered_meta(res.metadata)
    res.metadata["labels"] = workload_endpoint_storage_labels(res)


def _default_kube_controllers(res: Resource, old: Resource | None, client: "DatastoreClient",
                              creating: bool) -> None:
    kube_controllers_write_defaults(res, creating)


WriteHook = Callable[[Resource, "Resource | None", "DatastoreClient", bool], None]
WRITE_DEFAULTS: dict[str, WriteHook] = {
    "IPPool": _default_ippool,
    **{kind: _default_policy for kind in POLICY_KINDS},
    "Tier": _default_tier,
    "WorkloadEndpoint": _default_workload_endpoint,
    "KubeControllersConfiguration": _default_kube_controllers,
}
# libcalico-go's bgpconfig.go ValidateDefaultOnlyFields, in its order: (spec key, Go field
# name, the name its reason gives, whether only a non-empty list counts as set).
DEFAULT_ONLY_BGP_FIELDS = (("nodeToNodeMeshEnabled", "NodeToNodeMeshEnabled", "nodeToNodeMeshEnabled", False),
                           ("asNumber", "ASNumber", "ASNumber", False),
                           ("serviceLoadBalancerIPs", "ServiceLoadBalancerIPs", "ServiceLoadBalancerIPs", True),
                           ("serviceExternalIPs", "ServiceExternalIPs", "ServiceExternalIPs", True),
                           ("serviceClusterIPs", "ServiceClusterIPs", "ServiceClusterIPs", True),
                           ("nodeMeshPassword", "NodeMeshPassword", "nodeMeshPassword", False),
                           ("nodeMeshMaxRestartTime", "NodeMeshMaxRestartTime", "nodeMeshMaxRestartTime", False))


def _check_default_only_bgp_fields(res: Resource) -> None:
    """Cluster-wide BGP settings belong to the ``default`` BGPConfiguration: another one
    that sets them is refused on create and update, after validation, as libcalico-go's
    client refuses it (whichever program writes it)."""
    if res.name == "default":
        return
    spec = res.spec or {}
    problems = [(f"BGPConfiguration.Spec.{go}", NO_VALUE, f"Cannot set {said} on a non default BGP Configuration.")
                for key, go, said, non_empty in DEFAULT_ONLY_BGP_FIELDS
                if spec.get(key) is not None and (not non_empty or len(spec[key]) > 0)]
    if problems:
        raise ValidationError(problems)


# Checks on a resource as it will be written, after validation (libcalico-go's per-kind
# clients that check more than the validator does).
WRITE_CHECKS: dict[str, Callable[[Resource], None]] = {
    "BGPConfiguration": _check_default_only_bgp_fields,
}
# Kinds whose write rules compare against the stored resource on update.
UPDATE_NEEDS_OLD = ("IPPool",)
READ_DEFAULTS: dict[str, Callable[[Resource], None]] = {
    "IPPool": _read_default_ippool,
    **{kind: _read_default_policy for kind in POLICY_KINDS},
}
# Defaults libcalico-go applies to listed items only (its get and watch leave them out).
LIST_DEFAULTS: dict[str, Callable[[Resource], None]] = {
    "Tier": default_tier,
}

def offline_write_defaults(resources: Iterable[Resource]) -> tuple[list[Resource], list[str]]:
    """The write path's defaults for resources that never pass through a datastore (the
    policy agent's and the renderer's ``--from-file`` modes): what each resource would
    look like once calicoctl had stored it. Returns the defaulted resources and one line
    per resource refused (or, for a policy naming a missing tier, flagged) with the
    reason; checks that need other stored data (pool overlaps, block sizes) use the given
    resources only."""
    resources = [r.copy() for r in resources]
    tiers = {r.name for r in resources if r.kind == "Tier"} | set(PROTECTED_TIERS)
    pools = [r for r in resources if r.kind == "IPPool"]
    out: list[Resource] = []
    problems: list[str] = []
    for res in resources:
        try:
            if res.kind == "IPPool":
                found = ippool_write_problems(res, None, pools, ())
                if found:
                    raise ValidationError(found)
            elif res.kind in POLICY_KINDS:
                tier = res.spec.get("tier") or DEFAULT_TIER
                if tier not in tiers:
                    problems.append(f"{res.identifier()}.spec.tier: tier {tier!r} does not exist "
                                    "(calicoctl would refuse it; the policy agent sorts it last)")
                default_policy(res)
            elif res.kind == "Tier":
                default_tier(res)
            elif res.kind == "WorkloadEndpoint":
                res.metadata["name"] = check_workload_endpoint_name(res)
                res.metadata["labels"] = workload_endpoint_storage_labels(res)
            validate_resource(res)
        except CalicoError as exc:
            problems.append(f"skipped {res.identifier()}: {exc}")
            continue
        out.append(res)
    return out, problems


# Synthesised on read, never stored (libcalico-go's default-allow profile).
DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"


def default_allow_profile() -> Resource:
    return Resource("Profile", {"name": DEFAULT_ALLOW_PROFILE, "resourceVersion": "1"},
                    {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]})


# --------------------------------------------------------------------------------------
# Keys and values written by others: decode one record, or say which key is bad.

def ipam_key(parse: Callable[[str], object], key: str):
    """``parse(key)``, or None when the key has the right shape but an unreadable CIDR
    (libcalico-go ignores such keys)."""
    try:
        return parse(key)
    except ValueError:
        return None


def stored_block_cidrs(kv, version: int | None = None) -> list[str]:
    """CIDRs of the IPAM blocks stored in ``kv`` (one IP version, or both)."""
    out = []
    for v in ((version,) if version else (4, 6)):
        items, _ = kv.list(ipam.block_prefix(v))
        out.extend(cidr for cidr in (ipam_key(ipam.parse_block_key, i.key) for i in items) if cidr)
    return out


def decode_kv(key: str, value: bytes, revision: int) -> Resource | None:
    """Decode any key the node follows into a Resource (None for keys we do not model).

    This is the decoder the syncer uses, so every consumer sees the same defaults. A value
    that does not decode raises DatastoreParseError naming the key.
    """
    if parse_etcd_key(key) is not None:
        try:
            res = from_storage(key, value, revision)
            hook = READ_DEFAULTS.get(res.kind)
            if hook:
                hook(res)
        except Exception as exc:  # noqa: BLE001 - whatever another writer stored, name the key
            raise DatastoreParseError(key, value, exc) from exc
        return res
    if ipam_key(ipam.parse_affinity_key, key) is not None:
        try:
            return ipam.affinity_to_resource(key, value, revision)
        except Exception as exc:  # noqa: BLE001
            raise DatastoreParseError(key, value, exc) from exc
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
        if res.kind in POLICY_KINDS:
            return _policy_storage_meta(res).storage_json().encode()
        return res.storage_json().encode()

    def _decode(self, kv_item) -> Resource:
        res = decode_kv(kv_item.key, kv_item.value, kv_item.mod_revision)
        if res is None:
            raise DatastoreParseError(kv_item.key, kv_item.value, "not a resource key")
        return res

    # -- reads --------------------------------------------------------------------------
    def get(self, kind: str, name: str, namespace: str = "") -> Resource:
        kind = KINDS[kind].kind
        if kind == "Profile" and name == DEFAULT_ALLOW_PROFILE:
            return default_allow_profile()
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
        return self.list_at(kind, namespace)[0]

    def list_at(self, kind: str, namespace: str = "") -> tuple[list[Resource], str]:
        """The resources of ``kind`` and the datastore revision they were listed at (a
        list's resourceVersion, as libcalico-go's List gives it)."""
        kind = KINDS[kind].kind
        if kind == "BlockAffinity":
            items, revision = self.kv.list(ipam.affinity_prefix())
            out = self._decode_all(i for i in items if ipam_key(ipam.parse_affinity_key, i.key))
            return sorted(out, key=lambda r: r.name), str(revision)
        items, revision = self.kv.list(etcd_prefix(kind, namespace))
        out = self._decode_all(i for i in items if parse_etcd_key(i.key) is not None)
        hook = LIST_DEFAULTS.get(kind)
        if hook:
            for res in out:
                hook(res)
        if kind == "Profile":
            out.append(default_allow_profile())
        return out, str(revision)

    def _decode_all(self, items) -> list[Resource]:
        """Every item that decodes; the others are skipped with a warning naming the key."""
        out = []
        for item in items:
            try:
                out.append(self._decode(item))
            except DatastoreParseError as exc:
                log.warning("Skipping a stored value that cannot be decoded: %s", exc)
        return out

    # -- writes -------------------------------------------------------------------------
    def _prepare(self, res: Resource, old: Resource | None, creating: bool, unsafe: bool = False) -> Resource:
        res = res.copy()
        if unsafe:  # only pools are written unsafely (see unsafe_create_pool)
            problems = ippool_write_problems(res, None, (), ())
            if problems:
                raise ValidationError(problems)
        else:
            hook = WRITE_DEFAULTS.get(res.kind)
            if hook:
                hook(res, old, self, creating)
        validate_resource(res)
        check = WRITE_CHECKS.get(res.kind)
        if check:
            check(res)
        return res

    def create(self, res: Resource) -> Resource:
        """Create; fails with AlreadyExists. Stamps uid and creationTimestamp like libcalico-go."""
        return self._create(res, unsafe=False)

    def unsafe_create_pool(self, res: Resource) -> Resource:
        """libcalico-go's IPPools().UnsafeCreate: a pool created with its defaults and
        validation but without the checks against the other pools and existing blocks of
        another size (``ipam split``'s pools overlap the pool being split, still there)."""
        if res.kind != "IPPool":
            raise ValidationError([(res.identifier(), res.kind, "only IP pools are created unsafely")])
        return self._create(res, unsafe=True)

    def _create(self, res: Resource, unsafe: bool) -> Resource:
        if res.kind == "Profile" and res.name == DEFAULT_ALLOW_PROFILE:
            raise AlreadyExists(res.identifier(), "the default-allow profile is built in")
        _check_writable(res.kind, res.identifier(), "Create")
        res = self._prepare(res, None, creating=True, unsafe=unsafe)
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
        _check_writable(res.kind, ident, "Update")
        rv = res.resource_version
        if not rv:
            raise ValidationError([(f"{ident}.metadata.resourceVersion", "", "field must be set for an Update request")])
        if res.kind != "BlockAffinity":
            for field in ("creationTimestamp", "uid"):
                if not res.metadata.get(field):
                    raise ValidationError([(f"{ident}.metadata.{field}", "", "field must be set for an Update request")])
        old = None
        if res.kind in UPDATE_NEEDS_OLD:
            try:
                old = self.get(res.kind, res.name, res.namespace)
            except NotFound:
                raise NotFound(ident) from None
        res = self._prepare(res, old, creating=False)
        try:
            new_rev = self.kv.update(self._key_of(res), self._value_of(res), int(rv))
        except NotFound:
            raise NotFound(ident) from None
        except Conflict:
            raise Conflict(ident, f"resource version {rv} is out of date") from None
        res.metadata["resourceVersion"] = str(new_rev)
        return res

    def update_status(self, res: Resource) -> Resource:
        """Write ``res.status`` and nothing else, at ``res``'s resourceVersion
        (libcalico-go's UpdateStatus); Conflict when the stored resource has moved on.

        On Kubernetes the stored object is updated with the new status, as a whole (as
        libcalico-go v3.32.1's Update does), and through the status subresource only
        where the CRD has one (see CRMapper.update_status). On etcd the stored JSON gets
        the new status in place. Either way neither a spec the caller changed nor fields
        of a newer Calico that this model does not know are touched. Returns ``res`` with
        the status as written and the new resourceVersion (and its own spec, which was
        not written)."""
        ident = res.identifier()
        info = KINDS[res.kind]
        _check_writable(res.kind, ident, "UpdateStatus")
        if not info.status:
            raise ValidationError([(f"{ident}.status", "", f"{res.kind} has no status")])
        rv = res.resource_version
        for field, value in (("resourceVersion", rv), ("creationTimestamp", res.metadata.get("creationTimestamp")),
                             ("uid", res.metadata.get("uid"))):
            if not value:
                raise ValidationError([(f"{ident}.metadata.{field}", "", "field must be set for an Update request")])
        if not rv.isdigit():
            raise ValidationError([(f"{ident}.metadata.resourceVersion", rv, "not a resource version of this datastore")])
        errs = Collector()
        status = canonical_struct(res.status or {}, info.status, "status", errs, False)
        if errs.problems:
            raise ValidationError([(f"{ident}.{path}", value, reason) for path, value, reason in errs.problems])
        res = res.copy()
        res.status = status
        key = self._key_of(res)
        try:
            kv_update_status = getattr(self.kv, "update_status", None)
            if kv_update_status is not None:
                new_rev = kv_update_status(key, self._value_of(res), int(rv))
            else:
                current = self.kv.get(key)
                if current is None:
                    raise NotFound(ident)
                if current.mod_revision != int(rv):
                    raise Conflict(ident)
                try:
                    stored = json.loads(current.value)
                except ValueError as exc:
                    raise DatastoreParseError(key, current.value, exc) from None
                if not isinstance(stored, dict):
                    raise DatastoreParseError(key, current.value, "not a JSON object")
                stored["status"] = status
                new_rev = self.kv.update(key, go_json(stored).encode(), int(rv))
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
        return self._delete(kind, name, namespace, resource_version, unsafe=False)

    def unsafe_delete_pool(self, name: str, resource_version: str = "") -> Resource:
        """libcalico-go's IPPools().UnsafeDelete: the pool is disabled (if it is not) and
        deleted without releasing the block affinities in it, so every block keeps its
        host (``ipam split``, whose new pools take the blocks over)."""
        return self._delete("IPPool", name, "", resource_version, unsafe=True)

    def _delete(self, kind: str, name: str, namespace: str, resource_version: str, unsafe: bool) -> Resource:
        kind = KINDS[kind].kind
        ident = identifier(kind, name, namespace)
        if kind == "Profile" and name == DEFAULT_ALLOW_PROFILE:
            raise ValidationError([(ident, name, "the default-allow profile is built in and cannot be deleted")])
        _check_writable(kind, ident, "Delete")
        if kind == "BlockAffinity":
            current = self.get(kind, name)
            key = self._key_of(current)
        else:
            key = etcd_key(kind, name, namespace)
        if kind == "IPPool" and unsafe:
            resource_version = self._disable_pool(name, resource_version)[1]  # affinities kept
        elif kind == "IPPool":
            resource_version = self._retire_pool(name, resource_version)
        elif kind == "Tier":
            self._check_tier_deletable(name)
        try:
            item = self.kv.delete(key, int(resource_version) if resource_version else None)
        except NotFound:
            raise NotFound(ident) from None
        except Conflict:
            raise Conflict(ident, f"resource version {resource_version} is out of date") from None
        try:
            return self._decode(item)
        except DatastoreParseError as exc:
            # The delete itself succeeded; only the old value is unreadable.
            log.warning("Deleted a stored value that cannot be decoded: %s", exc)
            meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
            return Resource(kind, meta)

    def _disable_pool(self, name: str, resource_version: str) -> tuple[Resource, str]:
        """Disable the pool (at ``resource_version`` when given) unless it already is; the
        pool and the revision a following delete must match ("" for any)."""
        try:
            pool = self.get("IPPool", name)
        except NotFound:
            raise NotFound(identifier("IPPool", name)) from None
        if not pool.spec.get("disabled"):
            log.debug("Disabling pool %s", name)
            pool.spec["disabled"] = True
            pool.spec = canonical_struct(pool.spec, "IPPoolSpec", "", Collector(), strict=False)
            if resource_version:
                pool.metadata["resourceVersion"] = resource_version
            self.update(pool)
            resource_version = ""
        return pool, resource_version

    def _retire_pool(self, name: str, resource_version: str) -> str:
        """libcalico-go's pool delete before the key goes: disable the pool so nothing new is
        assigned from it, give in-flight assignments a moment, then release every host's
        block affinities in it (empty blocks deleted, used ones kept without affinity).
        Returns the revision the final delete must match ("" for any)."""
        from node.ipam.allocator import IPAM

        pool, resource_version = self._disable_pool(name, resource_version)
        try:
            cidr = ipaddress.ip_network(pool.spec.get("cidr", ""), strict=False)
        except ValueError:
            cidr = None
        if cidr is not None:
            time.sleep(POOL_RELEASE_PAUSE_S)
            IPAM(self.kv).release_pool_affinities(cidr)
        return resource_version

    def _check_tier_deletable(self, name: str) -> None:
        """Built-in tiers stay; a tier that still holds policies stays (libcalico-go's checks)."""
        if name in PROTECTED_TIERS:
            raise OperationNotSupported("Delete", name, f"Cannot delete {name} tier")
        for kind in POLICY_KINDS:
            for policy in self.list(kind):
                if policy.spec.get("tier") == name:
                    log.debug("%s %s is in tier %s", kind, policy.identifier(), name)
                    raise OperationNotSupported("delete", name, "Cannot delete a non-empty tier")


def _check_writable(kind: str, ident: str, operation: str) -> None:
    """Kinds that mirror objects owned elsewhere (KindInfo.extra["read_only"]) are not written."""
    reason = KINDS[kind].extra.get("read_only")
    if reason:
        raise OperationNotSupported(operation, ident, reason)


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
