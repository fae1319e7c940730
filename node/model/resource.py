"""Resources as plain data: parsing, validation, and Calico's storage encoding.

A ``Resource`` holds canonical dicts (see ``node.model.schema``), so two resources are
equal exactly when libcalico-go would store the same bytes for them, and encoding for
etcd is a plain JSON dump in Go's spelling.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

import node.model.structs  # noqa: F401  (registers the struct definitions)
import node.model.validators  # noqa: F401  (registers the field validators)
from node.errors import ValidationError
from node.model.kinds import API_VERSION, KINDS, KindInfo, UnknownKind
from node.model.schema import Collector, canonical_struct, go_json, validate_struct

V3_PREFIX = "/calico/resources/v3/projectcalico.org/"


@dataclass
class Resource:
    """One Calico v3 resource: kind, metadata, spec and (for some kinds) status."""

    kind: str
    metadata: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    status: dict | None = None

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def name(self) -> str:
        return self.metadata.get("name", "")

    @property
    def namespace(self) -> str:
        return self.metadata.get("namespace", "")

    @property
    def labels(self) -> dict:
        return self.metadata.get("labels") or {}

    @property
    def resource_version(self) -> str:
        return self.metadata.get("resourceVersion", "")

    def identifier(self) -> str:
        """libcalico-go's way of naming a resource in errors: ``Kind(ns/name)``."""
        ref = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind}({ref})"

    def copy(self) -> "Resource":
        return copy.deepcopy(self)

    def to_dict(self) -> dict:
        """The resource as calicoctl prints it and as it is stored (field order kept)."""
        out: dict[str, Any] = {"kind": self.kind, "apiVersion": API_VERSION,
                               "metadata": self.metadata, "spec": self.spec}
        info = self.info
        if info.status:
            if self.status is not None or not info.status_pointer:
                out["status"] = self.status if self.status is not None else {}
        return out

    def storage_json(self) -> str:
        """The exact value libcalico-go writes to etcd (resourceVersion is never stored)."""
        meta = {k: v for k, v in self.metadata.items() if k != "resourceVersion"}
        # Re-walk so an unset creationTimestamp is written as Go writes it (null).
        meta = canonical_struct(meta, "ObjectMeta", "metadata", Collector(), False)
        stored = Resource(self.kind, meta, self.spec, self.status)
        return go_json(stored.to_dict())


def identifier(kind: str, name: str, namespace: str = "") -> str:
    return f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"


# --------------------------------------------------------------------------------------
# Building and validating resources.

def from_dict(obj: Any, strict: bool = True, validate: bool = True) -> Resource:
    """Parse one resource from decoded YAML/JSON.

    ``strict`` rejects unknown fields, as calicoctl does for its input; datastore reads use
    ``strict=False`` so values written by newer Calico versions still load.
    """
    if not isinstance(obj, dict):
        raise ValidationError([("resource", obj, "expected a mapping with kind, apiVersion, metadata and spec")])
    kind_name = obj.get("kind")
    if not kind_name:
        raise ValidationError([("kind", "", "resource kind must be specified")])
    info = KINDS.get(kind_name)
    if info is None:
        hint = ""
        for known in KINDS:
            if known.lower() == str(kind_name).lower():
                hint = f" (did you mean '{known}'?)"
        raise UnknownKind(f"resource kind '{kind_name}' is not supported{hint}")
    api_version = obj.get("apiVersion")
    if api_version != API_VERSION:
        raise ValidationError([(f"{kind_name}.apiVersion", api_version or "",
                                f"apiVersion must be {API_VERSION}")])
    errs = Collector()
    if strict:
        for key in obj:
            if key not in ("kind", "apiVersion", "metadata", "spec", "status"):
                errs.add(key, obj[key], f'unknown field "{key}"')
    meta = canonical_struct(obj.get("metadata") or {}, "ObjectMeta", "metadata", errs, strict)
    spec = canonical_struct(obj.get("spec") or {}, info.spec, "spec", errs, strict)
    status = None
    if info.status and (obj.get("status") is not None or not info.status_pointer):
        status = canonical_struct(obj.get("status") or {}, info.status, "status", errs, strict)
    elif obj.get("status") is not None and strict and not info.status:
        errs.add("status", obj["status"], f"{info.kind} has no status")
    # A metav1.Time null means "not set": keep the dict free of it.
    if meta.get("creationTimestamp") is None:
        meta.pop("creationTimestamp", None)
    res = Resource(info.kind, meta, spec, status)
    if errs.problems:
        raise ValidationError(_prefix(res, errs.problems))
    if validate:
        validate_resource(res)
    return res


def validate_resource(res: Resource) -> None:
    """Calico's validation of a whole resource; raises ValidationError naming each field."""
    errs = Collector()
    info = res.info
    name = res.name
    if not name:
        errs.add("metadata.name", "", "name must be specified")
    else:
        from node.model.validators import name_problem
        problem = name_problem(name, info.name_pattern)
        if problem:
            errs.add("metadata.name", name, problem)
    if info.namespaced and not res.namespace:
        errs.add("metadata.namespace", "", "namespace must be specified for a namespaced resource")
    if not info.namespaced and res.namespace:
        errs.add("metadata.namespace", res.namespace, f"{info.kind} is not namespaced")
    validate_struct(res.metadata, "ObjectMeta", "metadata", errs)
    validate_struct(res.spec, info.spec, "spec", errs)
    if errs.problems:
        raise ValidationError(_prefix(res, errs.problems))


def _prefix(res: Resource, problems: Iterable[tuple[str, Any, str]]) -> list[tuple[str, Any, str]]:
    ident = res.identifier() if res.name else res.kind
    return [(f"{ident}.{path}", value, reason) for path, value, reason in problems]


# --------------------------------------------------------------------------------------
# etcd keys and values.

def etcd_key(kind: str, name: str, namespace: str = "") -> str:
    info = KINDS[kind]
    if info.namespaced:
        if not namespace:
            raise ValueError(f"{kind} {name}: a namespace is needed to build its key")
        return f"{V3_PREFIX}{info.plural}/{namespace}/{name}"
    return f"{V3_PREFIX}{info.plural}/{name}"


def etcd_prefix(kind: str, namespace: str = "") -> str:
    info = KINDS[kind]
    if info.namespaced and namespace:
        return f"{V3_PREFIX}{info.plural}/{namespace}/"
    return f"{V3_PREFIX}{info.plural}/"


_PLURALS = {info.plural: info.kind for info in KINDS.values() if info.v3_storage}


def parse_etcd_key(key: str) -> tuple[str, str, str] | None:
    """(kind, namespace, name) for a v3 resource key, or None for any other key."""
    if not key.startswith(V3_PREFIX):
        return None
    parts = key[len(V3_PREFIX):].split("/")
    kind = _PLURALS.get(parts[0])
    if kind is None:
        return None
    if KINDS[kind].namespaced:
        return (kind, parts[1], parts[2]) if len(parts) == 3 else None
    return (kind, "", parts[1]) if len(parts) == 2 else None


def from_storage(key: str, value: bytes | str, revision: int) -> Resource:
    """Decode a stored v3 value; tolerant of unknown fields, strict about structure."""
    parsed = parse_etcd_key(key)
    if parsed is None:
        raise ValueError(f"{key} is not a Calico v3 resource key")
    kind, namespace, name = parsed
    import json
    obj = json.loads(value)
    if not isinstance(obj, dict):
        raise ValueError(f"{key}: stored value is not a JSON object")
    obj.setdefault("kind", kind)
    obj["apiVersion"] = API_VERSION
    res = from_dict(obj, strict=False, validate=False)
    res.metadata["name"] = name
    if namespace:
        res.metadata["namespace"] = namespace
    res.metadata["resourceVersion"] = str(revision)
    res.metadata = canonical_struct(res.metadata, "ObjectMeta", "metadata", Collector(), False)
    if res.metadata.get("creationTimestamp") is None:
        res.metadata.pop("creationTimestamp", None)
    return res


# --------------------------------------------------------------------------------------
# YAML/JSON documents as calicoctl reads them.

class _GoYAMLLoader(yaml.SafeLoader):
    """YAML scalars as Go's sigs.k8s.io/yaml reads them.

    YAML 1.1 booleans (``yes``) stay booleans (and become "true" where a string is
    expected), but there are no timestamps, no ``=`` values and no base-60 numbers:
    ``5663:12`` is the string "5663:12" (a BGP community), not the integer 339792.
    """


_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_REPLACED = {"tag:yaml.org,2002:int": _INT, "tag:yaml.org,2002:float": _FLOAT}
_GoYAMLLoader.yaml_implicit_resolvers = {
    ch: [(tag, _REPLACED.get(tag, rx)) for tag, rx in resolvers
         if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _stringify_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {_key_text(k): _stringify_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_stringify_keys(v) for v in obj]
    return obj


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def load_documents(text: str, source: str = "input") -> list[dict]:
    """Every resource document in a YAML/JSON stream, with ``List`` kinds expanded."""
    try:
        docs = [d for d in yaml.load_all(text, Loader=_GoYAMLLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise ValidationError([(source, "", f"cannot parse YAML/JSON: {exc}")]) from exc
    out: list[dict] = []
    for doc in docs:
        doc = _stringify_keys(doc)
        if isinstance(doc, dict) and (doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List")):
            items = doc.get("items") or []
            if not isinstance(items, list):
                raise ValidationError([(f"{source}.items", items, "a List's items must be a list")])
            out.extend(items)
        else:
            out.append(doc)
    return out


def load_resources(text: str, source: str = "input", strict: bool = True) -> list[Resource]:
    return [from_dict(doc, strict=strict) for doc in load_documents(text, source)]
