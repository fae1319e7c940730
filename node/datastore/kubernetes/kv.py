"""The Kubernetes datastore as a key/value backend: Calico's etcd key space on the API.

``KubeKV`` has ``EtcdKV``'s interface (get, list, create, update, put, delete, watch,
close), so the resource client, IPAM and the syncer run unchanged on either datastore.
Each part of the key space is served by a mapper that knows which Kubernetes objects
hold it and how to convert them:

==========================================================  ===================================
key prefix                                                  Kubernetes objects
==========================================================  ===================================
``/calico/resources/v3/projectcalico.org/<plural>/``        Calico CRs (v1 or v3 group)
``.../nodes/``                                              Node (annotations, status updates)
``.../workloadendpoints/<ns>/``                             Pod (CNI writes: pod status patch)
``.../profiles/``                                           Namespace (kns.), ServiceAccount (ksa.)
``.../kubernetesnetworkpolicies/<ns>/``                     networking.k8s.io NetworkPolicy
``.../kubernetesclusternetworkpolicies/``                   policy.networking.k8s.io ClusterNetworkPolicy
``.../livemigrations/<ns>/``                                kubevirt.io VirtualMachineInstanceMigration
``/calico/ipam/v2/assignment/``                             IPAMBlock CRs
``/calico/ipam/v2/host/``, ``/calico/ipam/v2/virtual/``     BlockAffinity CRs
``/calico/ipam/v2/handle/``                                 IPAMHandle CRs
``/calico/ipam/v2/config``                                  IPAMConfig(uration) ``default``
``/calico/kubernetes/{secrets,services,endpointslices}/``   the objects themselves, read-only
==========================================================  ===================================

Revisions are resourceVersions (decimal integers, as every etcd-backed API server
issues them). Writes keep etcd's semantics: create fails with AlreadyExists, update
and a revisioned delete are compare-and-swap on the resourceVersion (Conflict when it
moved), so IPAM is as safe under concurrent writers as on etcd. IPAM records are
deleted as libcalico-go deletes them: first marked ``deleted`` (a compare-and-swap),
then removed with UID and resourceVersion preconditions; a record found marked is
finished off and reads as absent.

A list remembers the resourceVersion of each collection it read, so the watch that
follows it starts every collection exactly where its list ended. Watches resume from
the last resourceVersion seen (events and bookmarks) when the server ends them,
reconnect with backoff when the connection drops, and report 410 Gone as Compacted so
the syncer re-lists.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Mapping

from node.config import KUBERNETES, DatastoreConfig
from node.datastore.client import OperationNotSupported  # libcalico-go's ErrorOperationNotSupported
from node.datastore.records import DELETE, KV, PUT, WatchEvent
from node.datastore.kubernetes import conversion as conv
from node.datastore.kubernetes.api import ApiError, KubeAPI, ResourcePath, TokenBucket
from node.datastore.kubernetes.clientconfig import (client_configuration, discover_group, explicit_group, rate_limit,
                                                    use_pod_cidr)
from node.datastore.kubernetes.keys import KUBERNETES_PREFIX, NATIVE_KINDS, native_key
from node.errors import (AlreadyExists, CalicoError, Compacted, ConfigError, Conflict, ConnectionFailed,
                         DatastoreError, NotFound)
from node.model import ipam as records
from node.model.kinds import KINDS
from node.model.resource import V3_PREFIX, etcd_key
from node.model.schema import go_json

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
WATCH_RETRIES = 5
WATCH_BACKOFF_INITIAL = 0.1
WATCH_BACKOFF_MAX = 2.0
# How often a watch looks again for an optional collection the server does not serve
# (libcalico-go's MissingAPIRetryTime).
MISSING_API_RETRY_SECONDS = 30 * 60
PUT_RETRIES = 5


class Expired(Compacted):
    """A watch asked for a resourceVersion the API server no longer has (410 Gone)."""

    def __init__(self, path: str, requested: str, message: str):
        DatastoreError.__init__(self, f"watch of {path} from resourceVersion {requested}: 410 Gone ({message})")
        self.requested = int(requested) if requested.isdigit() else 0
        self.compact_revision = 0


def _rv(obj: dict, what: str) -> int:
    text = ((obj.get("metadata") or {}).get("resourceVersion")) or ""
    try:
        return int(text)
    except ValueError:
        raise DatastoreError(f"{what}: resourceVersion {text!r} is not a decimal integer; this datastore "
                             "needs an etcd-backed API server") from None


def _value(obj: dict) -> bytes:
    """A v3 object as stored in etcd: no resourceVersion."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("resourceVersion", None)
    return go_json(dict(obj, metadata=meta)).encode()


def _describe(path: ResourcePath, obj: dict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return f"{path.plural} {ns + '/' if ns else ''}{meta.get('name', '')}"


@dataclass(frozen=True)
class Source:
    """One collection read for a key prefix: the path, and the selectors narrowing it."""

    path: ResourcePath
    namespace: str = ""
    label_selector: str = ""

    @property
    def collection(self) -> str:
        return self.path.collection(self.namespace)

    @property
    def ident(self) -> tuple:
        return (self.path.prefix, self.path.plural, self.namespace, self.label_selector)


class Mapper:
    """One part of the key space (``prefix``) and the Kubernetes objects behind it."""

    prefix: str
    read_only_reason = ""

    def __init__(self, api: KubeAPI):
        self.api = api

    # reads
    def sources(self, prefix: str) -> list[Source]:
        raise NotImplementedError

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        """The (key, value) pairs this object shows as (none when it is filtered out)."""
        raise NotImplementedError

    def keys(self, source: Source, obj: dict) -> list[str]:
        """Every key this object could show as, filtered or not (for deletes)."""
        return [k for k, _ in self.items(source, obj)]

    def get(self, key: str) -> KV | None:
        raise NotImplementedError

    # writes
    def _refuse(self, operation: str, key: str):
        raise OperationNotSupported(operation, key, self.read_only_reason or "read-only in the Kubernetes datastore")

    def create(self, key: str, value: bytes) -> int:
        self._refuse("Create", key)

    def update(self, key: str, value: bytes, revision: int) -> int:
        self._refuse("Update", key)

    def update_status(self, key: str, value: bytes, revision: int) -> int:
        self._refuse("UpdateStatus", key)

    def put(self, key: str, value: bytes) -> int:
        self._refuse("Apply", key)

    def delete(self, key: str, revision: int | None) -> KV:
        self._refuse("Delete", key)


def _errors(key: str, exc: ApiError, revision=None):
    """Calico's error for an API error on ``key``."""
    if exc.status == 404:
        return NotFound(key, exc.server_message)
    if exc.status == 409 and exc.reason == "AlreadyExists":
        return AlreadyExists(key, exc.server_message)
    if exc.status == 409:
        return Conflict(key, f"revision {revision} is out of date: {exc.server_message}" if revision
                        else exc.server_message)
    return exc


def _namespace_of(mapper_prefix: str, prefix: str) -> str:
    """The namespace a prefix inside a namespaced kind names in full ('' for none or a
    partial one, which is then filtered by key)."""
    rest = prefix[len(mapper_prefix):] if prefix.startswith(mapper_prefix) else ""
    return rest.split("/")[0] if "/" in rest else ""


def _kv(key: str, value: bytes, revision: int) -> KV:
    return KV(key=key, value=value, mod_revision=revision, create_revision=revision)


# --------------------------------------------------------------------------------------
# Calico kinds as custom resources.

class CRMapper(Mapper):
    def __init__(self, api: KubeAPI, kind: str, group: str):
        super().__init__(api)
        info = KINDS[kind]
        self.kind = kind
        self.group = group
        self.namespaced = info.namespaced
        self.prefix = f"{V3_PREFIX}{info.plural}/"
        plural, cr_kind = info.plural, kind
        if kind == "IPAMConfiguration" and group == conv.GROUP_V1:
            plural, cr_kind = "ipamconfigs", "IPAMConfig"
        self.cr_kind = cr_kind
        self.path = ResourcePath(f"/apis/{group}", plural, info.namespaced, cr_kind)

    def _locate(self, key: str) -> tuple[str, str]:
        rest = key[len(self.prefix):].split("/")
        if self.namespaced:
            if len(rest) != 2 or not all(rest):
                raise NotFound(key, "not a key of a namespaced resource")
            return rest[0], rest[1]
        if len(rest) != 1 or not rest[0]:
            raise NotFound(key, "not a resource key")
        return "", rest[0]

    def sources(self, prefix: str) -> list[Source]:
        return [Source(self.path, _namespace_of(self.prefix, prefix) if self.namespaced else "")]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        v3 = conv.cr_to_v3(obj, self.kind, self.group)
        meta = obj.get("metadata") or {}
        key = etcd_key(self.kind, meta.get("name", ""), meta.get("namespace", "")) if self.namespaced else \
            etcd_key(self.kind, meta.get("name", ""))
        if self.kind in conv.POLICY_KINDS_WITH_NAME:
            # The etcd backend's way of keeping the name a policy was written under.
            annotations = dict(v3["metadata"].get("annotations") or {})
            annotations[conv.METADATA_ANNOTATION] = go_json({"name": v3["metadata"]["name"]})
            v3["metadata"]["annotations"] = annotations
        return [(key, _value(v3))]

    def keys(self, source: Source, obj: dict) -> list[str]:
        meta = obj.get("metadata") or {}
        return [etcd_key(self.kind, meta.get("name", ""), meta.get("namespace", "")) if self.namespaced
                else etcd_key(self.kind, meta.get("name", ""))]

    def _get_cr(self, key: str) -> dict | None:
        namespace, name = self._locate(key)
        return self.api.get(self.path.item(name, namespace))

    def get(self, key: str) -> KV | None:
        obj = self._get_cr(key)
        if obj is None:
            return None
        return self._one(key, obj)

    def _one(self, key: str, obj: dict) -> KV:
        for k, value in self.items(Source(self.path), obj):
            return _kv(key, value, _rv(obj, _describe(self.path, obj)))
        raise NotFound(key)

    def _body(self, key: str, value: bytes, revision: int | None) -> dict:
        namespace, name = self._locate(key)
        obj = json.loads(value)
        meta = dict(obj.get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        if self.kind in conv.POLICY_KINDS_WITH_NAME:
            annotations.pop(conv.METADATA_ANNOTATION, None)  # the etcd backend's name record
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        meta["name"] = name
        if namespace:
            meta["namespace"] = namespace
        if revision is not None:
            meta["resourceVersion"] = str(revision)
        obj["metadata"] = meta
        body = conv.v3_to_cr(obj, self.cr_kind, self.group)
        # The API server assigns UIDs on create; on update the resourceVersion is the
        # precondition (a UID from a resource the caller built itself would not match).
        body["metadata"].pop("uid", None)
        return body

    def create(self, key: str, value: bytes) -> int:
        body = self._body(key, value, None)
        try:
            out = self.api.create(self.path.collection(body["metadata"].get("namespace", "")), body)
        except ApiError as exc:
            raise _errors(key, exc) from None
        return _rv(out, key)

    def update(self, key: str, value: bytes, revision: int) -> int:
        body = self._body(key, value, revision)
        namespace, name = self._locate(key)
        try:
            out = self.api.replace(self.path.item(name, namespace), body)
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        return _rv(out, key)

    def update_status(self, key: str, value: bytes, revision: int) -> int:
        """Only the status of ``value``, at ``revision``.

        As libcalico-go v3.32.1 writes it (clientv3's CalicoNodeStatus().Update(), the one
        status write Calico's node makes): one update (PUT) of the whole object, status
        included, at ``revision``. Calico's v3.32.1 CRDs have no status subresource for
        it and its calico-node ClusterRole grants ``update`` on ``caliconodestatuses``
        only, so a write through ``/status`` would be refused (403) before the API
        server even looks for the subresource. The object written is the stored one
        with ``value``'s status put in (so, as on etcd, neither a spec the caller
        changed nor fields this model does not know are touched): one GET, and a
        Conflict when the stored object is no longer at ``revision``.

        A CRD that does have the status subresource (Calico's after v3.32, or CRDs an
        older release of this project installed) keeps the stored status on that
        update: when the answer still carries the old status instead of the one sent,
        the status is written once more through ``/status`` at the resourceVersion the
        update answered with. Never more than that one retry: a Conflict there is the
        caller's, as any other."""
        body = self._body(key, value, revision)
        namespace, name = self._locate(key)
        try:
            current = self._get_cr(key)
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        if current is None:
            raise NotFound(key)
        if _rv(current, key) != revision:
            raise Conflict(key, f"revision {revision} is out of date")
        status = body.get("status")
        before = current.get("status")
        new = dict(current)
        if status is None:
            new.pop("status", None)
        else:
            new["status"] = status
        try:
            out = self.api.replace(self.path.item(name, namespace), new)
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        after = out.get("status")
        if after != status and after == before:
            # The status subresource owns the status: the update above kept the stored one.
            out["status"] = status
            if status is None:
                out.pop("status", None)
            try:
                out = self.api.replace(self.path.item(name, namespace, "status"), out)
            except ApiError as exc:
                raise _errors(key, exc, _rv(out, key)) from None
        return _rv(out, key)

    def put(self, key: str, value: bytes) -> int:
        for _ in range(PUT_RETRIES):
            current = self._get_cr(key)
            try:
                if current is None:
                    return self.create(key, value)
                body = self._body(key, value, _rv(current, key))
                if current.get("metadata", {}).get("uid"):
                    body["metadata"]["uid"] = current["metadata"]["uid"]
                namespace, name = self._locate(key)
                return _rv(self.api.replace(self.path.item(name, namespace), body), key)
            except (AlreadyExists, Conflict):
                continue
            except ApiError as exc:
                if exc.status == 409:
                    continue
                raise _errors(key, exc) from None
        raise Conflict(key, f"kept changing during {PUT_RETRIES} attempts to write it")

    def delete(self, key: str, revision: int | None) -> KV:
        current = self._get_cr(key)
        if current is None:
            raise NotFound(key)
        old = self._one(key, current)
        if revision is not None and revision != old.mod_revision:
            raise Conflict(key, f"revision {revision} does not match stored revision {old.mod_revision}")
        namespace, name = self._locate(key)
        try:
            self.api.delete(self.path.item(name, namespace), uid=current["metadata"].get("uid", ""),
                            resource_version=str(old.mod_revision))
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        return old


LEGACY_KNP_PREFIX = "knp.default."


class NetworkPolicyMapper(CRMapper):
    """Calico NetworkPolicies are CRs; a name with the legacy ``knp.default.`` prefix (how
    Calico up to v3.31 presented a Kubernetes NetworkPolicy) reads that Kubernetes
    NetworkPolicy as a read-only NetworkPolicy. Lists hold only the CRs, so each
    Kubernetes NetworkPolicy is enforced once, as its KubernetesNetworkPolicy."""

    def _legacy(self, key: str) -> tuple[str, str] | None:
        namespace, name = self._locate(key)
        if name.startswith(LEGACY_KNP_PREFIX):
            return namespace, name
        return None

    def get(self, key: str) -> KV | None:
        legacy = self._legacy(key)
        if legacy is None:
            return super().get(key)
        namespace, name = legacy
        obj = self.api.get(NETWORK_POLICIES.item(name[len(LEGACY_KNP_PREFIX):], namespace))
        if obj is None:
            return None
        policy, _ = conv.k8s_network_policy_to_calico(obj, kind="NetworkPolicy")
        policy["metadata"]["name"] = name
        policy["metadata"]["annotations"] = {conv.METADATA_ANNOTATION: go_json({"name": name})}
        return _kv(key, _value(policy), _rv(obj, key))

    def _refuse_legacy(self, operation: str, key: str) -> None:
        if self._legacy(key) is not None:
            raise OperationNotSupported(operation, key, "a knp.default. NetworkPolicy is a Kubernetes NetworkPolicy; "
                                                        "change it through the Kubernetes API")

    def create(self, key: str, value: bytes) -> int:
        self._refuse_legacy("Create", key)
        return super().create(key, value)

    def update(self, key: str, value: bytes, revision: int) -> int:
        self._refuse_legacy("Update", key)
        return super().update(key, value, revision)

    def put(self, key: str, value: bytes) -> int:
        self._refuse_legacy("Apply", key)
        return super().put(key, value)

    def delete(self, key: str, revision: int | None) -> KV:
        self._refuse_legacy("Delete", key)
        return super().delete(key, revision)


# --------------------------------------------------------------------------------------
# IPAM records.

class _IPAMMapper(Mapper):
    """Shared by blocks, affinities and handles: the two-step delete and the handling of
    records found marked deleted."""

    plural: str
    cr_kind: str

    def __init__(self, api: KubeAPI, group: str):
        super().__init__(api)
        self.group = group
        self.path = ResourcePath(f"/apis/{group}", self.plural, False, self.cr_kind)

    def sources(self, prefix: str) -> list[Source]:
        return [Source(self.path)]

    def _name(self, key: str) -> str:
        raise NotImplementedError

    def _record(self, obj: dict) -> tuple[str, bytes, bool] | None:
        """(key, value, deleted) for a CR, or None when it is not a record of this mapper."""
        raise NotImplementedError

    def _cr(self, key: str, value: bytes, deleted: bool) -> dict:
        """The CR body (apiVersion, kind, metadata.name/labels, spec) for a record."""
        raise NotImplementedError

    def _wrap(self, body: dict, revision: int | None) -> dict:
        obj = {"kind": body["kind"], "metadata": dict(body["metadata"]), "spec": body["spec"]}
        if revision is not None:
            obj["metadata"]["resourceVersion"] = str(revision)
        return conv.v3_to_cr(obj, self.cr_kind, self.group)

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        rec = self._record(obj)
        if rec is None or rec[2]:
            return []
        return [(rec[0], rec[1])]

    def keys(self, source: Source, obj: dict) -> list[str]:
        rec = self._record(obj)
        return [rec[0]] if rec else []

    def get(self, key: str) -> KV | None:
        obj = self.api.get(self.path.item(self._name(key)))
        if obj is None:
            return None
        rec = self._record(obj)
        if rec is None or rec[0] != key:
            return None
        if rec[2]:
            self._finish_delete(obj)
            return None
        return _kv(key, rec[1], _rv(obj, key))

    def _finish_delete(self, obj: dict) -> None:
        """Remove a record a deleter marked and did not get to remove (libcalico-go does
        this when it reads one)."""
        meta = obj.get("metadata") or {}
        try:
            self.api.delete(self.path.item(meta.get("name", "")), uid=meta.get("uid", ""),
                            resource_version=meta.get("resourceVersion", ""))
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def create(self, key: str, value: bytes) -> int:
        try:
            out = self.api.create(self.path.collection(), self._wrap(self._cr(key, value, False), None))
        except ApiError as exc:
            raise _errors(key, exc) from None
        return _rv(out, key)

    def update(self, key: str, value: bytes, revision: int) -> int:
        try:
            out = self.api.replace(self.path.item(self._name(key)), self._wrap(self._cr(key, value, False), revision))
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        rec = self._record(out)
        if rec is not None and rec[0] != key:
            raise DatastoreError(f"{key}: the API server stored it as {rec[0]}")
        return _rv(out, key)

    def put(self, key: str, value: bytes) -> int:
        for _ in range(PUT_RETRIES):
            current = self.get(key)
            try:
                if current is None:
                    return self.create(key, value)
                return self.update(key, value, current.mod_revision)
            except (AlreadyExists, Conflict):
                continue
        raise Conflict(key, f"kept changing during {PUT_RETRIES} attempts to write it")

    def delete(self, key: str, revision: int | None) -> KV:
        obj = self.api.get(self.path.item(self._name(key)))
        rec = self._record(obj) if obj is not None else None
        if rec is None or rec[0] != key or rec[2]:
            if rec is not None and rec[2]:
                self._finish_delete(obj)
            raise NotFound(key)
        old = _kv(key, rec[1], _rv(obj, key))
        if revision is None:
            revision = old.mod_revision
        uid = obj["metadata"].get("uid", "")
        # Step 1: mark it deleted, compare-and-swap on the revision the caller read.
        try:
            marked = self.api.replace(self.path.item(self._name(key)), self._marked_body(key, rec[1], revision, obj))
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        # Step 2: remove exactly the object we marked.
        try:
            self.api.delete(self.path.item(self._name(key)), uid=uid,
                            resource_version=marked["metadata"]["resourceVersion"])
        except ApiError as exc:
            if exc.status != 404:
                raise _errors(key, exc, revision) from None
        return old

    def _marked_body(self, key: str, value: bytes, revision: int, current: dict) -> dict:
        body = self._wrap(self._cr(key, value, True), revision)
        if current["metadata"].get("uid"):
            body["metadata"]["uid"] = current["metadata"]["uid"]
        return body


class BlockMapper(_IPAMMapper):
    prefix = records.IPAM_PREFIX + "assignment/"
    plural = "ipamblocks"
    cr_kind = "IPAMBlock"

    def _name(self, key: str) -> str:
        cidr = records.parse_block_key(key)
        if cidr is None:
            raise NotFound(key, "not an IPAM block key")
        return conv.cidr_to_name(cidr)

    def _record(self, obj: dict):
        spec = obj.get("spec") or {}
        try:
            value = conv.cr_spec_to_block(spec)
        except conv.ConversionError as exc:
            raise conv.ConversionError(f"{conv.describe(obj)}: {exc}") from None
        return records.block_key(value["cidr"]), records.encode_block(value).encode(), value["deleted"]

    def _cr(self, key: str, value: bytes, deleted: bool) -> dict:
        record = records.decode_block(value)
        record["deleted"] = deleted
        spec = conv.block_to_cr_spec(record)
        return {"kind": "IPAMBlock", "metadata": {"name": self._name(key)}, "spec": spec}


class AffinityMapper(_IPAMMapper):
    plural = "blockaffinities"
    cr_kind = "BlockAffinity"

    def __init__(self, api: KubeAPI, group: str, affinity_type: str):
        super().__init__(api, group)
        self.affinity_type = affinity_type
        self.prefix = f"{records.IPAM_PREFIX}{affinity_type}/"

    def sources(self, prefix: str) -> list[Source]:
        selector = [f"{conv.LABEL_AFFINITY_TYPE}={self.affinity_type}"]
        rest = prefix[len(self.prefix):] if len(prefix) > len(self.prefix) else ""
        parts = rest.split("/")
        if parts and parts[0] and (len(parts) > 1):
            selector.insert(0, f"{conv.LABEL_HOSTNAME_HASH}={conv.hostname_hash(parts[0])}")
            if len(parts) > 2 and parts[1] in ("ipv4", "ipv6"):
                selector.append(f"{conv.LABEL_IP_VERSION}={parts[1][-1]}")
        return [Source(self.path, label_selector=",".join(selector))]

    def _name(self, key: str) -> str:
        parsed = records.parse_affinity_key(key)
        if parsed is None:
            raise NotFound(key, "not an IPAM affinity key")
        return conv.affinity_name(parsed[1], parsed[2])

    def _record(self, obj: dict):
        host, aff_type, cidr, state, deleted = conv.affinity_from_cr(obj)
        if aff_type != self.affinity_type:
            return None
        return (records.affinity_key(host, cidr, aff_type), records.encode_affinity(state or "confirmed").encode(),
                deleted)

    def _cr(self, key: str, value: bytes, deleted: bool) -> dict:
        parsed = records.parse_affinity_key(key)
        if parsed is None:
            raise NotFound(key, "not an IPAM affinity key")
        aff_type, host, cidr = parsed
        state = records.decode_affinity_state(value)
        cr = conv.affinity_cr(host, aff_type, cidr, state, deleted, self.group)
        return {"kind": "BlockAffinity", "metadata": cr["metadata"], "spec": cr["spec"]}


class HandleMapper(_IPAMMapper):
    prefix = records.HANDLE_PREFIX
    plural = "ipamhandles"
    cr_kind = "IPAMHandle"

    def _name(self, key: str) -> str:
        handle = records.parse_handle_key(key)
        if handle is None:
            raise NotFound(key, "not an IPAM handle key")
        return conv.handle_name(handle)

    def _record(self, obj: dict):
        spec = obj.get("spec") or {}
        handle = spec.get("handleID") or ""
        if not handle:
            raise conv.ConversionError(f"{conv.describe(obj)}: spec.handleID is empty")
        return (records.handle_key(handle), records.encode_handle(spec.get("block") or {}).encode(),
                bool(spec.get("deleted")))

    def get(self, key: str) -> KV | None:
        # Handle IDs differing only in case share one CR (its name is the lowercased ID),
        # as in Calico: a read by either ID finds it.
        obj = self.api.get(self.path.item(self._name(key)))
        if obj is None:
            return None
        rec = self._record(obj)
        if rec[2]:
            self._finish_delete(obj)
            return None
        return _kv(key, rec[1], _rv(obj, key))

    def _cr(self, key: str, value: bytes, deleted: bool) -> dict:
        handle = records.parse_handle_key(key)
        blocks = records.decode_handle(value)
        return {"kind": "IPAMHandle", "metadata": {"name": conv.handle_name(handle)},
                "spec": {"handleID": handle, "block": {k: blocks[k] for k in sorted(blocks)}, "deleted": deleted}}


class IPAMConfigMapper(Mapper):
    """The IPAM library's configuration record, kept in the same ``default`` CR as the
    v3 IPAMConfiguration resource."""

    prefix = records.CONFIG_KEY

    def __init__(self, api: KubeAPI, group: str):
        super().__init__(api)
        self.group = group
        plural, kind = ("ipamconfigs", "IPAMConfig") if group == conv.GROUP_V1 else \
            ("ipamconfigurations", "IPAMConfiguration")
        self.cr_kind = kind
        self.path = ResourcePath(f"/apis/{group}", plural, False, kind)

    def sources(self, prefix: str) -> list[Source]:
        return [Source(self.path)]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        if (obj.get("metadata") or {}).get("name") != "default":
            return []
        value = conv.cr_spec_to_ipam_config(obj.get("spec") or {})
        return [(records.CONFIG_KEY, records.encode_config(value).encode())]

    def keys(self, source: Source, obj: dict) -> list[str]:
        return [records.CONFIG_KEY] if (obj.get("metadata") or {}).get("name") == "default" else []

    def get(self, key: str) -> KV | None:
        if key != records.CONFIG_KEY:
            return None
        obj = self.api.get(self.path.item("default"))
        if obj is None:
            return None
        return _kv(key, self.items(Source(self.path), obj)[0][1], _rv(obj, key))

    def _write(self, key: str, value: bytes, current: dict | None) -> int:
        spec = conv.ipam_config_to_cr_spec(records.decode_config(value))
        if current is None:
            body = conv.v3_to_cr({"kind": self.cr_kind, "metadata": {"name": "default"}, "spec": spec},
                                 self.cr_kind, self.group)
            out = self.api.create(self.path.collection(), body)
        else:
            body = dict(current, spec=dict(current.get("spec") or {}, **spec))
            for field in ("maxBlocksPerHost", "kubeVirtVMAddressPersistence", "ipCooldownSeconds"):
                if field not in spec:
                    body["spec"].pop(field, None)
            out = self.api.replace(self.path.item("default"), body)
        return _rv(out, key)

    def create(self, key: str, value: bytes) -> int:
        if key != records.CONFIG_KEY:
            self._refuse("Create", key)
        try:
            return self._write(key, value, None)
        except ApiError as exc:
            raise _errors(key, exc) from None

    def update(self, key: str, value: bytes, revision: int) -> int:
        current = self.api.get(self.path.item("default"))
        if current is None:
            raise NotFound(key)
        if _rv(current, key) != revision:
            raise Conflict(key, f"revision {revision} does not match stored revision {_rv(current, key)}")
        try:
            return self._write(key, value, current)
        except ApiError as exc:
            raise _errors(key, exc, revision) from None

    def put(self, key: str, value: bytes) -> int:
        for _ in range(PUT_RETRIES):
            current = self.api.get(self.path.item("default"))
            try:
                return self._write(key, value, current)
            except ApiError as exc:
                if exc.status != 409:
                    raise _errors(key, exc) from None
        raise Conflict(key, f"kept changing during {PUT_RETRIES} attempts to write it")

    def delete(self, key: str, revision: int | None) -> KV:
        current = self.api.get(self.path.item("default"))
        if current is None:
            raise NotFound(key)
        old = self.get(key)
        try:
            self.api.delete(self.path.item("default"), uid=current["metadata"].get("uid", ""),
                            resource_version=str(revision) if revision is not None else "")
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        return old


# --------------------------------------------------------------------------------------
# Native objects.

NODES = ResourcePath("/api/v1", "nodes", False, "Node")
PODS = ResourcePath("/api/v1", "pods", True, "Pod")
NAMESPACES = ResourcePath("/api/v1", "namespaces", False, "Namespace")
SERVICE_ACCOUNTS = ResourcePath("/api/v1", "serviceaccounts", True, "ServiceAccount")
NETWORK_POLICIES = ResourcePath("/apis/networking.k8s.io/v1", "networkpolicies", True, "NetworkPolicy")
CLUSTER_NETWORK_POLICIES = ResourcePath("/apis/policy.networking.k8s.io/v1alpha2", "clusternetworkpolicies", False,
                                        "ClusterNetworkPolicy", optional=True)
CONFIG_MAPS = ResourcePath("/api/v1", "configmaps", True, "ConfigMap")
# KubeVirt's CRD, which a cluster without KubeVirt lacks.
VIRTUAL_MACHINE_INSTANCE_MIGRATIONS = ResourcePath("/apis/kubevirt.io/v1", "virtualmachineinstancemigrations", True,
                                                   "VirtualMachineInstanceMigration", optional=True)


class NodeMapper(Mapper):
    prefix = f"{V3_PREFIX}nodes/"
    read_only_reason = "Calico Nodes are Kubernetes Nodes; create and delete them through Kubernetes"

    def __init__(self, api: KubeAPI, pod_cidr: bool):
        super().__init__(api)
        self.use_pod_cidr = pod_cidr

    def sources(self, prefix: str) -> list[Source]:
        return [Source(NODES)]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        node = conv.k8s_node_to_calico(obj, self.use_pod_cidr)
        return [(etcd_key("Node", node["metadata"]["name"]), _value(node))]

    def _name(self, key: str) -> str:
        name = key[len(self.prefix):]
        if not name or "/" in name:
            raise NotFound(key, "not a Node key")
        return name

    def get(self, key: str) -> KV | None:
        obj = self.api.get(NODES.item(self._name(key)))
        if obj is None:
            return None
        return _kv(key, self.items(Source(NODES), obj)[0][1], _rv(obj, key))

    def update(self, key: str, value: bytes, revision: int) -> int:
        """Merge the Calico Node into the Kubernetes Node's annotations and write them
        through the status subresource, compare-and-swap on ``revision``."""
        name = self._name(key)
        current = self.api.get(NODES.item(name))
        if current is None:
            raise NotFound(key)
        merged = conv.merge_calico_node_into_k8s(json.loads(value), current)
        merged["metadata"]["resourceVersion"] = str(revision)
        try:
            out = self.api.replace(NODES.item(name, subresource="status"), merged)
        except ApiError as exc:
            raise _errors(key, exc, revision) from None
        return _rv(out, key)

    def put(self, key: str, value: bytes) -> int:
        for _ in range(PUT_RETRIES):
            current = self.get(key)
            if current is None:
                self._refuse("Create", key)
            try:
                return self.update(key, value, current.mod_revision)
            except Conflict:
                continue
        raise Conflict(key, f"kept changing during {PUT_RETRIES} attempts to write it")


class WorkloadEndpointMapper(Mapper):
    """Pods as WorkloadEndpoints. A write is the CNI plugin's: the endpoint's addresses
    and container ID patched into the pod's annotations through the status subresource;
    a delete patches the addresses out."""

    prefix = f"{V3_PREFIX}workloadendpoints/"

    def __init__(self, api: KubeAPI, env: Mapping[str, str]):
        super().__init__(api)
        self.env = env

    def sources(self, prefix: str) -> list[Source]:
        namespace = _namespace_of(self.prefix, prefix)
        return [Source(PODS, namespace)]

    def _prefix_value(self) -> str:
        return self.env.get("FELIX_INTERFACEPREFIX", "")

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        if not conv.pod_is_workload(obj):
            return []
        try:
            wep = conv.pod_to_workload_endpoint(obj, self._prefix_value())
        except conv.ConversionError as exc:
            log.warning("Skipping a pod that cannot be converted to a WorkloadEndpoint: %s", exc)
            return []
        return [(etcd_key("WorkloadEndpoint", wep["metadata"]["name"], wep["metadata"]["namespace"]), _value(wep))]

    def keys(self, source: Source, obj: dict) -> list[str]:
        from node.model.names import workload_endpoint_name

        meta = obj.get("metadata") or {}
        node = (obj.get("spec") or {}).get("nodeName") or ""
        if not node:
            return []
        try:
            name = workload_endpoint_name({"node": node, "orchestrator": "k8s", "pod": meta.get("name", ""),
                                           "endpoint": "eth0"})
        except CalicoError:
            return []
        return [etcd_key("WorkloadEndpoint", name, meta.get("namespace", ""))]

    def _locate(self, key: str) -> tuple[str, str, str]:
        from node.model.names import parse_workload_endpoint_name

        rest = key[len(self.prefix):].split("/")
        if len(rest) != 2 or not all(rest):
            raise NotFound(key, "not a WorkloadEndpoint key")
        try:
            ids = parse_workload_endpoint_name(rest[1])
        except ValueError as exc:
            raise NotFound(key, str(exc)) from None
        if not ids.get("pod"):
            raise NotFound(key, "malformed WorkloadEndpoint name - unable to determine Pod name")
        return rest[0], ids["pod"], rest[1]

    def get(self, key: str) -> KV | None:
        namespace, pod, _ = self._locate(key)
        obj = self.api.get(PODS.item(pod, namespace))
        if obj is None:
            return None
        for k, value in self.items(Source(PODS), obj):
            if k == key:
                return _kv(key, value, _rv(obj, key))
        return None

    def _patch(self, key: str, annotations: dict, revision: int | None = None) -> dict:
        namespace, pod, _ = self._locate(key)
        body = conv.annotation_patch(annotations, str(revision) if revision is not None else "")
        try:
            return self.api.patch(PODS.item(pod, namespace, subresource="status"), body)
        except ApiError as exc:
            raise _errors(key, exc, revision) from None

    def create(self, key: str, value: bytes) -> int:
        spec = json.loads(value).get("spec") or {}
        return _rv(self._patch(key, conv.cni_annotations(spec)), key)

    def update(self, key: str, value: bytes, revision: int) -> int:
        return self.create(key, value)

    def put(self, key: str, value: bytes) -> int:
        return self.create(key, value)

    def delete(self, key: str, revision: int | None) -> KV:
        """Patch the addresses out; with a revision the patch carries it as
        libcalico-go's does, so a pod changed since it was read (a new sandbox's ADD
        writing its own addresses) is a Conflict, not addresses wiped."""
        old = self.get(key)
        if old is None:
            raise NotFound(key)
        self._patch(key, {conv.ANNOTATION_POD_IP: "", conv.ANNOTATION_POD_IPS: ""}, revision)
        return old


class ProfileMapper(Mapper):
    prefix = f"{V3_PREFIX}profiles/"
    read_only_reason = "profiles are Kubernetes Namespaces (kns.) and ServiceAccounts (ksa.)"

    def sources(self, prefix: str) -> list[Source]:
        return [Source(NAMESPACES), Source(SERVICE_ACCOUNTS)]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        if source.path is NAMESPACES:
            profile = conv.namespace_to_profile(obj)
        else:
            profile = conv.service_account_to_profile(obj)
        return [(etcd_key("Profile", profile["metadata"]["name"]), _value(profile))]

    def get(self, key: str) -> KV | None:
        name = key[len(self.prefix):]
        if name.startswith(conv.NAMESPACE_PROFILE_PREFIX):
            obj = self.api.get(NAMESPACES.item(conv.profile_name_to_namespace(name)))
            source = Source(NAMESPACES)
        elif name.startswith(conv.SERVICE_ACCOUNT_PROFILE_PREFIX):
            try:
                ns, sa = conv.profile_name_to_service_account(name)
            except conv.ConversionError:
                return None
            obj = self.api.get(SERVICE_ACCOUNTS.item(sa, ns))
            source = Source(SERVICE_ACCOUNTS)
        else:
            return None
        if obj is None:
            return None
        return _kv(key, self.items(source, obj)[0][1], _rv(obj, key))


class KubernetesNetworkPolicyMapper(Mapper):
    prefix = f"{V3_PREFIX}kubernetesnetworkpolicies/"
    read_only_reason = "Kubernetes NetworkPolicies are written through Kubernetes"

    def sources(self, prefix: str) -> list[Source]:
        namespace = _namespace_of(self.prefix, prefix)
        return [Source(NETWORK_POLICIES, namespace)]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        policy, problems = conv.k8s_network_policy_to_calico(obj)
        for problem in problems:
            log.warning("NetworkPolicy %s/%s: %s (rule dropped)", policy["metadata"]["namespace"],
                        policy["metadata"]["name"], problem)
        return [(etcd_key("KubernetesNetworkPolicy", policy["metadata"]["name"], policy["metadata"]["namespace"]),
                 _value(policy))]

    def get(self, key: str) -> KV | None:
        rest = key[len(self.prefix):].split("/")
        if len(rest) != 2:
            return None
        obj = self.api.get(NETWORK_POLICIES.item(rest[1], rest[0]))
        if obj is None:
            return None
        return _kv(key, self.items(Source(NETWORK_POLICIES), obj)[0][1], _rv(obj, key))


class KubernetesClusterNetworkPolicyMapper(Mapper):
    """ClusterNetworkPolicies (network-policy-api v1alpha2) as KubernetesClusterNetworkPolicy.
    One that is malformed shows as nothing, so an edit that breaks it withdraws the
    version enforced before (Calico's tombstone)."""

    prefix = f"{V3_PREFIX}kubernetesclusternetworkpolicies/"
    read_only_reason = "Kubernetes ClusterNetworkPolicies are written through Kubernetes"

    def sources(self, prefix: str) -> list[Source]:
        return [Source(CLUSTER_NETWORK_POLICIES)]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        name = (obj.get("metadata") or {}).get("name", "")
        policy, problems = conv.k8s_cluster_network_policy_to_calico(obj)
        if policy is None:
            log.warning("Skipping malformed ClusterNetworkPolicy %s: %s", name, "; ".join(problems))
            return []
        for problem in problems:
            log.warning("ClusterNetworkPolicy %s: %s", name, problem)
        return [(etcd_key("KubernetesClusterNetworkPolicy", name), _value(policy))]

    def keys(self, source: Source, obj: dict) -> list[str]:
        return [etcd_key("KubernetesClusterNetworkPolicy", (obj.get("metadata") or {}).get("name", ""))]

    def get(self, key: str) -> KV | None:
        name = key[len(self.prefix):]
        if not name or "/" in name:
            return None
        obj = self.api.get(CLUSTER_NETWORK_POLICIES.item(name))
        if obj is None:
            return None
        items = self.items(Source(CLUSTER_NETWORK_POLICIES), obj)
        return _kv(key, items[0][1], _rv(obj, key)) if items else None


class LiveMigrationMapper(Mapper):
    """KubeVirt's VirtualMachineInstanceMigrations as LiveMigrations, read-only (Calico has
    no CRD for them). A migration in a phase Calico presents no LiveMigration for shows as
    nothing, so a watch sees its LiveMigration come when it is scheduled and go when it
    succeeds. Without KubeVirt (its CRD not installed) the list is empty and the watch looks
    again later, as for network-policy-api's ClusterNetworkPolicies (``optional``)."""

    prefix = f"{V3_PREFIX}livemigrations/"
    read_only_reason = "LiveMigration is read-only in the Kubernetes backend"

    def sources(self, prefix: str) -> list[Source]:
        return [Source(VIRTUAL_MACHINE_INSTANCE_MIGRATIONS, _namespace_of(self.prefix, prefix))]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        live_migration = conv.vmim_to_live_migration(obj)
        if live_migration is None:
            return []
        meta = live_migration["metadata"]
        return [(etcd_key("LiveMigration", meta["name"], meta["namespace"]), _value(live_migration))]

    def keys(self, source: Source, obj: dict) -> list[str]:
        meta = obj.get("metadata") or {}
        if not meta.get("name") or not meta.get("namespace"):
            return []
        return [etcd_key("LiveMigration", meta["name"], meta["namespace"])]

    def get(self, key: str) -> KV | None:
        rest = key[len(self.prefix):].split("/")
        if len(rest) != 2 or not all(rest):
            return None
        obj = self.api.get(VIRTUAL_MACHINE_INSTANCE_MIGRATIONS.item(rest[1], rest[0]))
        if obj is None:
            return None
        items = self.items(Source(VIRTUAL_MACHINE_INSTANCE_MIGRATIONS), obj)
        return _kv(key, items[0][1], _rv(obj, key)) if items else None

    def _refuse(self, operation: str, key: str):
        # Named as libcalico-go names it: LiveMigration(namespace/name).
        rest = key[len(self.prefix):].split("/")
        ident = f"LiveMigration({'/'.join(rest)})" if len(rest) == 2 and all(rest) else key
        raise OperationNotSupported(operation, ident, self.read_only_reason)


class NativeMapper(Mapper):
    """Secrets, Services and EndpointSlices, passed through as they are."""

    read_only_reason = "read-only Kubernetes objects"

    def __init__(self, api: KubeAPI, kind: str):
        super().__init__(api)
        plural, api_prefix = NATIVE_KINDS[kind]
        self.kind = kind
        self.prefix = f"{KUBERNETES_PREFIX}{plural}/"
        self.path = ResourcePath(api_prefix, plural, True, kind)

    def sources(self, prefix: str) -> list[Source]:
        namespace = _namespace_of(self.prefix, prefix)
        return [Source(self.path, namespace)]

    def items(self, source: Source, obj: dict) -> list[tuple[str, bytes]]:
        meta = obj.get("metadata") or {}
        return [(native_key(self.kind, meta.get("namespace", ""), meta.get("name", "")),
                 json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())]

    def get(self, key: str) -> KV | None:
        rest = key[len(self.prefix):].split("/")
        if len(rest) != 2:
            return None
        obj = self.api.get(self.path.item(rest[1], rest[0]))
        if obj is None:
            return None
        return _kv(key, self.items(Source(self.path), obj)[0][1], _rv(obj, key))


# --------------------------------------------------------------------------------------
# The backend.

# Calico kinds kept as custom resources (BlockAffinity lives in the IPAM key space).
CR_KINDS = tuple(k for k, info in KINDS.items()
                 if info.v3_storage and k not in ("Node", "WorkloadEndpoint", "Profile", "KubernetesNetworkPolicy",
                                                  "KubernetesClusterNetworkPolicy", "LiveMigration"))


class KubeKV:
    """Key/value operations on the Kubernetes API, with Calico's semantics (see the
    module docstring). Thread-safe."""

    def __init__(self, config: DatastoreConfig, env: Mapping[str, str] | None = None, *,
                 configuration=None, request_timeout: float | None = None):
        if config.datastore_type != KUBERNETES:
            raise ConfigError(f"KubeKV needs datastore type {KUBERNETES!r}, not {config.datastore_type!r}")
        env = dict(os.environ if env is None else env)
        self.config = config
        group = explicit_group(config)
        pod_cidr = use_pod_cidr(config)
        if configuration is None:
            configuration = client_configuration(config, env)
        kwargs = {"request_timeout": request_timeout} if request_timeout else {}
        limit = rate_limit(config)
        self.api = KubeAPI(configuration, limiter=TokenBucket(*limit) if limit else None, **kwargs)
        if not group:
            group = discover_group(self.api)
        log.info("Using API group %s for the Calico CRD backend", group)
        self.group = group
        self.mappers: list[Mapper] = [
            (NetworkPolicyMapper if kind == "NetworkPolicy" else CRMapper)(self.api, kind, group) for kind in CR_KINDS]
        self._affinities = AffinityMapper(self.api, group, "host")
        self.mappers += [
            NodeMapper(self.api, pod_cidr), WorkloadEndpointMapper(self.api, env), ProfileMapper(self.api),
            KubernetesNetworkPolicyMapper(self.api), KubernetesClusterNetworkPolicyMapper(self.api),
            LiveMigrationMapper(self.api), BlockMapper(self.api, group),
            self._affinities, AffinityMapper(self.api, group, "virtual"),
            HandleMapper(self.api, group), IPAMConfigMapper(self.api, group),
        ]
        self.mappers += [NativeMapper(self.api, kind) for kind in NATIVE_KINDS]
        self._lock = threading.Lock()
        # prefix -> (list revision, {source ident: resourceVersion}) of its last list.
        self._listed: dict[str, tuple[int, dict[tuple, str]]] = {}
        self._watches: set[KubeWatch] = set()
        self._closed = False

    @property
    def endpoint(self) -> str:
        return self.api.host

    # -- key routing ------------------------------------------------------------------

    def _mapper(self, key: str) -> Mapper | None:
        for mapper in self.mappers:
            if key == mapper.prefix or (mapper.prefix.endswith("/") and key.startswith(mapper.prefix)):
                return mapper
        return None

    def _write_mapper(self, key: str, operation: str) -> Mapper:
        mapper = self._mapper(key)
        if mapper is None:
            raise OperationNotSupported(operation, key, "no Kubernetes object holds this key")
        return mapper

    def _covering(self, prefix: str) -> list[tuple[Mapper, list[Source]]]:
        out = []
        for mapper in self.mappers:
            if mapper.prefix.startswith(prefix):
                out.append((mapper, mapper.sources(mapper.prefix)))
            elif prefix.startswith(mapper.prefix):
                out.append((mapper, mapper.sources(prefix)))
        return out

    # -- reads --------------------------------------------------------------------------

    def get(self, key: str) -> KV | None:
        mapper = self._mapper(key)
        if mapper is None:
            return None
        try:
            return mapper.get(key)
        except conv.ConversionError as exc:
            raise DatastoreError(f"{key}: {exc}") from None

    def _convert(self, mapper: Mapper, source: Source, obj: dict, prefix: str) -> list[KV]:
        try:
            pairs = mapper.items(source, obj)
        except conv.ConversionError as exc:
            log.warning("Skipping %s: %s", _describe(source.path, obj), exc)
            return []
        pairs = [(key, value) for key, value in pairs if key.startswith(prefix)]
        if not pairs:
            return []
        revision = _rv(obj, _describe(source.path, obj))
        return [_kv(key, value, revision) for key, value in pairs]

    def list(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under ``prefix`` sorted by key, and a revision to watch from."""
        items: list[KV] = []
        revisions: dict[tuple, str] = {}
        for mapper, sources in self._covering(prefix):
            for source in sources:
                objs, rv = self.api.list(source.collection, label_selector=source.label_selector)
                revisions[source.ident] = rv
                for obj in objs:
                    items.extend(self._convert(mapper, source, obj, prefix))
        items.sort(key=lambda kv: kv.key)
        token = max((int(rv) for rv in revisions.values() if rv.isdigit()), default=0)
        with self._lock:
            self._listed[prefix] = (token, revisions)
        return items, token

    def upgrade_host_affinities(self, node: str) -> int:
        """libcalico-go's IPAM UpgradeHost: label this node's BlockAffinity CRs that a
        Calico from before the labels wrote (hostname-hash, affinity-type, ip-version), so
        the label-selected lists and watches find them. Only the node's own CRs, so that
        nodes doing this at once do not contend. Returns how many it labelled; after trying
        every one, raises DatastoreError naming those it could not update."""
        path = self._affinities.path
        objs, _rv_token = self.api.list(path.collection(), label_selector="!" + conv.LABEL_AFFINITY_TYPE)
        upgraded, failures = 0, []
        for obj in objs:
            spec = obj.get("spec") or {}
            if spec.get("node") != node:
                continue
            # Labelled from the fields as they are, as Calico does, without parsing the
            # rest: a CR this node cannot use (a bad CIDR, an odd ``deleted``) must not
            # stop the node starting; the IPAM reads report it by name.
            cidr = spec.get("cidr") if isinstance(spec.get("cidr"), str) else ""
            meta = obj["metadata"]
            meta["labels"] = {**(meta.get("labels") or {}),
                              **conv.affinity_labels(node, spec.get("type") or "host", cidr)}
            try:
                self.api.replace(path.item(meta["name"]), obj)
            except DatastoreError as exc:
                failures.append(f"{conv.describe(obj)}: {exc}")
                continue
            upgraded += 1
        if failures:
            raise DatastoreError("failed to upgrade some block affinities: " + "; ".join(failures))
        return upgraded

    # -- writes -------------------------------------------------------------------------

    def create(self, key: str, value: bytes | str) -> int:
        return self._write_mapper(key, "Create").create(key, value.encode() if isinstance(value, str) else value)

    def update(self, key: str, value: bytes | str, revision: int) -> int:
        if revision < 1:
            raise ValueError(f"update of {key} needs the stored revision, got {revision}")
        return self._write_mapper(key, "Update").update(key, value.encode() if isinstance(value, str) else value,
                                                         revision)

    def update_status(self, key: str, value: bytes | str, revision: int) -> int:
        """Write only the status of the object behind ``key`` (CRMapper.update_status: an
        update of the whole object, as Calico v3.32 does, and ``/status`` only where the
        CRD has that subresource)."""
        if revision < 1:
            raise ValueError(f"status update of {key} needs the stored revision, got {revision}")
        return self._write_mapper(key, "UpdateStatus").update_status(
            key, value.encode() if isinstance(value, str) else value, revision)

    def put(self, key: str, value: bytes | str, *, ttl: float | None = None) -> int:
        """``ttl`` is accepted for EtcdKV's interface: Kubernetes objects have none, and the
        keys that carry one (Felix's status reports) are refused here, as in Calico."""
        return self._write_mapper(key, "Apply").put(key, value.encode() if isinstance(value, str) else value)

    def delete(self, key: str, revision: int | None = None) -> KV:
        return self._write_mapper(key, "Delete").delete(key, revision)

    # -- watches ------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> "KubeWatch":
        """Watch every key under ``prefix`` after the list that returned
        ``start_revision - 1`` (each collection from where that list read it)."""
        with self._lock:
            if self._closed:
                raise DatastoreError("Kubernetes client is closed")
            token, revisions = self._listed.get(prefix, (None, {}))
        plans = []
        for mapper, sources in self._covering(prefix):
            for source in sources:
                rv = revisions.get(source.ident) if token == start_revision - 1 else None
                plans.append((mapper, source, rv or str(max(start_revision - 1, 0))))
        watch = KubeWatch(self, prefix, plans)
        with self._lock:
            self._watches.add(watch)
        watch.start()
        return watch

    def _forget(self, watch: "KubeWatch") -> None:
        with self._lock:
            self._watches.discard(watch)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            watches = list(self._watches)
        for watch in watches:
            watch.cancel()
        self.api.close()

    def __enter__(self) -> "KubeKV":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _End:
    """Queue sentinel: one source's thread has stopped."""


class KubeWatch:
    """A watch over every collection behind a key prefix; iterate for WatchEvents.

    One thread per collection follows its watch stream, resuming from the last
    resourceVersion it saw when the server ends the stream and reconnecting with
    backoff when the connection drops. Iteration raises Compacted (Expired) when a
    resourceVersion is gone (410), ConnectionFailed when reconnecting keeps failing,
    DatastoreError for other errors; it ends after ``cancel()``.
    """

    def __init__(self, kv: KubeKV, prefix: str, plans: list[tuple[Mapper, Source, str]]):
        self.prefix = prefix
        self.start_revision = 0
        self._kv = kv
        self._plans = plans
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cancelled = threading.Event()
        self._streams: dict[int, object] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._failed: BaseException | None = None

    def start(self) -> None:
        """Open every collection's watch, then follow them in the background. Returns once
        the API server has accepted each watch (as the etcd backend returns once etcd
        has), so a watch that cannot be set up (410 Gone, a collection the server does
        not serve, refused credentials) raises here and the syncer never claims to be in
        sync on top of it. An optional collection that is not served is no error: its
        list was empty, and its watch looks for it again later."""
        opened = []
        try:
            for mapper, source, rv in self._plans:
                opened.append(self._open(source, rv))
        except BaseException:
            for stream in opened:
                if stream is not None:
                    stream.close()
            self._cancelled.set()
            self._kv._forget(self)
            raise
        for index, ((mapper, source, rv), stream) in enumerate(zip(self._plans, opened)):
            thread = threading.Thread(target=self._follow, args=(index, mapper, source, rv, stream),
                                      name=f"kube-watch-{source.path.plural}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _open(self, source: Source, rv: str):
        """The watch stream; None for an optional collection the server does not serve."""
        try:
            return self._kv.api.watch(source.collection, rv, label_selector=source.label_selector,
                                      timeout_seconds=WATCH_TIMEOUT_SECONDS)
        except ApiError as exc:
            if exc.status == 410:
                raise Expired(source.collection, rv, exc.server_message) from None
            if exc.status == 404 and source.path.optional:
                return None
            if exc.status == 404:
                raise DatastoreError(f"the API server at {self._kv.api.host} does not serve "
                                     f"{source.collection} (are Calico's CRDs installed?)") from None
            raise

    def _wait(self, delay: float) -> bool:
        """Sleep ``delay``; True if cancelled meanwhile."""
        return self._cancelled.wait(delay)

    def _follow(self, index: int, mapper: Mapper, source: Source, rv: str, stream) -> None:
        failures = 0
        delay = WATCH_BACKOFF_INITIAL
        served = stream is not None
        try:
            while not self._cancelled.is_set():
                if stream is None:
                    try:
                        stream = self._open(source, rv)
                    except ConnectionFailed:
                        failures += 1
                        if failures > WATCH_RETRIES:
                            raise
                        if self._wait(delay):
                            return
                        delay = min(delay * 2, WATCH_BACKOFF_MAX)
                        continue
                    if stream is None:
                        if served:
                            # Its CRD went away: a re-list withdraws what it held.
                            raise DatastoreError(f"{source.collection} is no longer served")
                        # Not installed: look again later, as Calico does. A watch from
                        # resourceVersion 0 then starts with every object as ADDED.
                        log.debug("%s is not served; looking again in %ss", source.collection,
                                  MISSING_API_RETRY_SECONDS)
                        if self._wait(MISSING_API_RETRY_SECONDS):
                            return
                        rv = "0"
                        continue
                    if not served:
                        log.info("%s is now served; following it", source.collection)
                    served = True
                with self._lock:
                    self._streams[index] = stream
                if self._cancelled.is_set():
                    stream.close()
                    return
                try:
                    for kind, obj in stream:
                        failures = 0
                        delay = WATCH_BACKOFF_INITIAL
                        if kind == "ERROR":
                            code = obj.get("code")
                            if code == 410:
                                raise Expired(source.collection, rv, obj.get("message", ""))
                            raise DatastoreError(f"watch of {source.collection} on {self._kv.api.host}: "
                                                 f"{code} {obj.get('reason', '')}: {obj.get('message', '')}")
                        new_rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if kind == "BOOKMARK":
                            rv = new_rv
                            continue
                        for event in self._events(mapper, source, kind, obj):
                            self._queue.put(event)
                        rv = new_rv
                except ConnectionFailed:
                    if self._cancelled.is_set():
                        return
                    failures += 1
                    if failures > WATCH_RETRIES:
                        raise
                    log.info("watch of %s dropped; resuming from resourceVersion %s", source.collection, rv)
                    if self._wait(delay):
                        return
                    delay = min(delay * 2, WATCH_BACKOFF_MAX)
                    continue
                finally:
                    stream = None
                    with self._lock:
                        self._streams.pop(index, None)
                # The server ended the watch (its timeout): resume where it stopped.
                log.debug("watch of %s ended; resuming from resourceVersion %s", source.collection, rv)
        except DatastoreError as exc:
            if not self._cancelled.is_set():
                self._queue.put(exc)
        except Exception as exc:  # keep the consumer informed whatever goes wrong
            if not self._cancelled.is_set():
                log.exception("watch of %s failed", source.collection)
                self._queue.put(DatastoreError(f"watch of {source.collection} failed: {exc}"))
        finally:
            self._queue.put(_End())

    def _events(self, mapper: Mapper, source: Source, kind: str, obj: dict) -> list[WatchEvent]:
        rev = _rv(obj, _describe(source.path, obj))
        if kind == "DELETED":
            try:
                keys = mapper.keys(source, obj)
            except conv.ConversionError:
                keys = []
            return [WatchEvent(DELETE, k, None, rev, None) for k in keys if k.startswith(self.prefix)]
        present = {kv.key: kv for kv in self._kv._convert(mapper, source, obj, self.prefix)}
        try:
            possible = mapper.keys(source, obj)
        except conv.ConversionError:
            possible = []
        out = [WatchEvent(PUT, kv.key, kv.value, rev, None) for kv in present.values()]
        out += [WatchEvent(DELETE, k, None, rev, None) for k in possible
                if k not in present and k.startswith(self.prefix)]
        return out

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        while True:
            if self._cancelled.is_set() and self._queue.empty():
                raise StopIteration
            item = self._queue.get()
            if isinstance(item, _End):
                if self._cancelled.is_set():
                    raise StopIteration
                continue
            if isinstance(item, BaseException):
                self.cancel()
                raise item
            return item

    def cancel(self) -> None:
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.close()
        self._queue.put(_End())
        self._kv._forget(self)

    def __enter__(self) -> "KubeWatch":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()
