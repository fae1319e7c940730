"""Resources as plain data: parsing, validation, and Calico's storage encoding.

A ``Resource`` holds canonical dicts (see ``node.model.schema``), so two resources are
equal exactly when libcalico-go would store the same bytes for them, and encoding for
etcd is a plain JSON dump in Go's spelling.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import yaml

import node.model.structs  # noqa: F401  (registers the struct definitions)
from node.errors import ValidationError
from node.model.kinds import API_VERSION, KINDS, KindInfo, UnknownKind
from node.model.schema import (
    MAX_NESTING,
    Collector,
    canonical_struct,
    decode_over,
    go_fold,
    go_json,
    nested_too_deeply,
    validate_struct,
)
from node.model.validators import RESOURCE_CHECKS, name_problem

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

    # The accessors read hand-built metadata defensively: validation names the problem.
    def _meta(self, key: str, kind: type, default: Any) -> Any:
        value = self.metadata.get(key) if isinstance(self.metadata, dict) else None
        return value if isinstance(value, kind) else default

    # (``_meta`` inlined in the three accessors the policy agent reads per endpoint.)
    @property
    def name(self) -> str:
        metadata = self.metadata
        value = metadata.get("name") if isinstance(metadata, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def namespace(self) -> str:
        metadata = self.metadata
        value = metadata.get("namespace") if isinstance(metadata, dict) else None
        return value if isinstance(value, str) else ""

    @property
    def labels(self) -> dict:
        metadata = self.metadata
        value = metadata.get("labels") if isinstance(metadata, dict) else None
        return value if isinstance(value, dict) and value else {}

    @property
    def resource_version(self) -> str:
        return self._meta("resourceVersion", str, "")

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
            if self.status is not None:
                out["status"] = self.status
            elif not info.status_pointer:
                # A non-pointer status struct is always written, as its zero value.
                out["status"] = canonical_struct({}, info.status, "status", Collector(), False)
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
    ``strict=False`` so values written by newer Calico versions still load. Any shape
    problem (a list for metadata, a string for spec, a number for a name) is a
    ValidationError naming the field, whatever the input.
    """
    return _build(obj, strict, validate, None)


def _build(obj: Any, strict: bool, validate: bool, ident: str | None, shallow: bool = False) -> Resource:
    """from_dict's body; ``ident`` names the resource in errors when its metadata cannot
    (a datastore value is named by its key even when its metadata is garbage);
    ``shallow`` when the caller knows it cannot nest too deeply."""
    if not isinstance(obj, dict):
        raise ValidationError([(ident or "resource", obj,
                                "expected a mapping with kind, apiVersion, metadata and spec")])
    if not shallow and nested_too_deeply(obj):
        raise ValidationError([(ident or "resource", "",
                                f"document nested too deeply (more than {MAX_NESTING} levels of lists and objects)")])
    kind_name = obj.get("kind")
    if not kind_name:
        raise ValidationError([(_join_ident(ident, "kind"), "", "resource kind must be specified")])
    if not isinstance(kind_name, str):
        raise ValidationError([(_join_ident(ident, "kind"), kind_name, "expected a string")])
    info = KINDS.get(kind_name)
    if info is None:
        hint = ""
        for known in KINDS:
            if known.lower() == kind_name.lower():
                hint = f" (did you mean '{known}'?)"
        raise UnknownKind(f"resource kind '{kind_name}' is not supported{hint}")
    api_version = obj.get("apiVersion")
    if api_version != API_VERSION:
        raise ValidationError([(f"{kind_name}.apiVersion", api_version or "",
                                f"apiVersion must be {API_VERSION}")])
    errs = Collector()
    if any(key not in _TOP_LEVEL for key in obj):
        obj = _top_level_fields(obj, errs, strict)
    meta = canonical_struct(_or_empty(obj.get("metadata")), "ObjectMeta", "metadata", errs, strict)
    spec = canonical_struct(_or_empty(obj.get("spec")), info.spec, "spec", errs, strict)
    status = None
    if info.status and (obj.get("status") is not None or not info.status_pointer):
        status = canonical_struct(_or_empty(obj.get("status")), info.status, "status", errs, strict)
    elif obj.get("status") is not None and strict and not info.status:
        errs.add("status", obj["status"], f"{info.kind} has no status")
    # A metav1.Time null means "not set": keep the dict free of it.
    if meta.get("creationTimestamp") is None:
        meta.pop("creationTimestamp", None)
    res = Resource(info.kind, meta, spec, status)
    if errs.problems:
        raise ValidationError(_prefix(res, errs.problems, ident))
    if validate:
        _validate_canonical(res)
    return res


_TOP_LEVEL = ("kind", "apiVersion", "metadata", "spec", "status")
_TOP_LEVEL_FOLDED = {go_fold(name): name for name in _TOP_LEVEL}


def _top_level_fields(obj: dict, errs: Collector, strict: bool) -> dict:
    """``obj`` with the keys Go's decoder matches case-insensitively (``Spec:``) under
    their field names; kind and apiVersion are what calicoctl read first, exactly, so a
    differently cased copy of them is dropped. Other keys are unknown fields."""
    out: dict = {}
    for key, item in sorted(obj.items(), key=lambda kv: str(kv[0])):
        name = key if key in _TOP_LEVEL else _TOP_LEVEL_FOLDED.get(go_fold(str(key)))
        if name is None:
            if strict:
                errs.add(str(key), item, f'unknown field "{key}"')
        elif name == key or name not in ("kind", "apiVersion"):
            out[name] = decode_over(out[name], item) if name in out else item
    return out


def _or_empty(value: Any) -> Any:
    """Go decodes a null struct as its zero value; anything else is checked as given."""
    return {} if value is None else value


def _join_ident(ident: str | None, path: str) -> str:
    return f"{ident}.{path}" if ident else path


def validate_resource(res: Resource) -> None:
    """Calico's validation of a whole resource; raises ValidationError naming each field.

    The checks are written for canonical values, so the resource is first re-walked as
    Go would decode it; a type problem there is reported instead of crashing a check.
    """
    errs = Collector()
    info = res.info
    meta = canonical_struct(res.metadata, "ObjectMeta", "metadata", errs, False)
    spec = canonical_struct(res.spec, info.spec, "spec", errs, False)
    if errs.problems:
        raise ValidationError(_prefix(res, errs.problems))
    _validate_canonical(Resource(res.kind, meta, spec, res.status))


def _validate_canonical(res: Resource) -> None:
    errs = Collector()
    info = res.info
    name = res.name
    if not name:
        errs.add("metadata.name", "", "name must be specified")
    else:
        problem = name_problem(name, info.name_pattern)
        if problem:
            errs.add("metadata.name", name, problem)
    if info.namespaced and not res.namespace:
        errs.add("metadata.namespace", "", "namespace must be specified for a namespaced resource")
    if not info.namespaced and res.namespace:
        errs.add("metadata.namespace", res.namespace, f"{info.kind} is not namespaced")
    validate_struct(res.metadata, "ObjectMeta", "metadata", errs)
    validate_struct(res.spec, info.spec, "spec", errs)
    check = RESOURCE_CHECKS.get(info.kind)
    if check:
        check(res.metadata, res.spec, errs)
    if errs.problems:
        raise ValidationError(_prefix(res, errs.problems))


def _prefix(res: Resource, problems: Iterable[tuple[str, Any, str]],
            ident: str | None = None) -> list[tuple[str, Any, str]]:
    if ident is None:
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


def stub_from_key(key: str) -> Resource | None:
    """The identity of the resource at a v3 key, with an empty spec: what a deletion that
    arrives without the last value (a syncer that keeps no values) names."""
    parsed = parse_etcd_key(key)
    if parsed is None:
        return None
    kind, namespace, name = parsed
    meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return Resource(kind, meta, {})


def from_storage(key: str, value: bytes | str, revision: int) -> Resource:
    """Decode a stored v3 value; tolerant of unknown fields, strict about structure.

    The key decides kind, name and namespace (libcalico-go decodes into the key's type).
    Undecodable bytes raise ValueError; a decodable value of the wrong shape raises
    ValidationError naming the resource by its key and the field.
    """
    parsed = parse_etcd_key(key)
    if parsed is None:
        raise ValueError(f"{key} is not a Calico v3 resource key")
    kind, namespace, name = parsed
    try:
        obj = json.loads(value)
    except RecursionError:
        raise ValueError(f"{key}: stored value is nested too deeply to decode") from None
    except ValueError as exc:
        raise ValueError(f"{key}: stored value is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{key}: stored value is not a JSON object")
    obj = dict(obj, kind=kind, apiVersion=API_VERSION)
    meta = obj.get("metadata")
    if meta is None:
        meta = {}
    if isinstance(meta, dict):
        meta = dict(meta, name=name, resourceVersion=str(revision))
        if namespace:
            meta["namespace"] = namespace
        obj["metadata"] = meta
    # Decoded JSON nests at most once per opening bracket in its text (strings included), so
    # a value with few of them needs no walk (most values: a walk is half of a decode).
    if isinstance(value, str):
        value = value.encode()
    shallow = value.count(b"{") + value.count(b"[") < MAX_NESTING
    return _build(obj, False, False, identifier(kind, name, namespace), shallow)


# --------------------------------------------------------------------------------------
# YAML/JSON documents as calicoctl reads them.

class _GoYAMLLoader(yaml.SafeLoader):
    """YAML scalars as Go's sigs.k8s.io/yaml reads them.

    YAML 1.1 booleans (``yes``) stay booleans (and become "true" where a string is
    expected), but there are no timestamps, no ``=`` values and no base-60 numbers:
    ``5663:12`` is the string "5663:12" (a BGP community), not the integer 339792. As in
    go-yaml, an exponent alone makes a float (``1e-7``).

    Two guards keep hostile input to a clear error: nesting deeper than MAX_NESTING is
    refused while composing (PyYAML's composer recurses once per level), and a scalar an
    explicit tag cannot convert (``!!int abc``) is a YAML error, not a Python exception.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.value!r} as {tag}", node.start_mark) from None


class _GoYAMLStrictLoader(_GoYAMLLoader):
    """As go-yaml's strict mode (calicoctl reads its input with UnmarshalStrict): a key
    given twice in one mapping, or given again after a ``<<`` merge brought it in, is an
    error at the second value."""

    def construct_mapping(self, mapping: Any, deep: bool = False) -> Any:
        if isinstance(mapping, yaml.MappingNode):
            self.flatten_mapping(mapping)
            seen = set()
            for key_node, value_node in mapping.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    typed = (type(key), key)  # go-yaml compares typed keys: 1 and "1" differ
                    duplicate = typed in seen
                    seen.add(typed)
                except TypeError:  # unhashable keys are refused by the constructor itself
                    continue
                if duplicate:
                    shown = json.dumps(key) if isinstance(key, str) else _key_text(key)
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {shown} already set in map", value_node.start_mark)
        return super().construct_mapping(mapping, deep)


class _TooDeep(Exception):
    """Raised by the composer past MAX_NESTING; ``mark`` says where."""

    def __init__(self, mark: Any) -> None:
        super().__init__(str(mark))
        self.mark = mark


def _too_deep(source: str, where: str = "") -> ValidationError:
    return ValidationError([(source, "", f"document nested too deeply (more than {MAX_NESTING} levels of "
                                         f"lists and objects){where}")])


_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
# go-yaml's float syntax (a dot or an exponent: 1.5, .5, 1e-7, 2E+3), integers left to _INT.
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
                    r"|[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+))"
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


def load_documents(text: str, source: str = "input", unique_keys: bool = False) -> list[dict]:
    """Every resource document in a YAML/JSON stream, with ``List`` kinds expanded;
    ``unique_keys`` refuses a key given twice in a mapping, as calicoctl does (otherwise the
    last one counts)."""
    loader = _GoYAMLStrictLoader if unique_keys else _GoYAMLLoader
    try:
        docs = [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as exc:
        raise ValidationError([(source, "", f"cannot parse YAML/JSON: {exc}")]) from exc
    except _TooDeep as exc:
        raise _too_deep(source, f", at line {exc.mark.line + 1}, column {exc.mark.column + 1}") from None
    out: list[dict] = []
    for doc in docs:
        if nested_too_deeply(doc):  # aliases can nest (even loop) past what the composer saw
            raise _too_deep(source)
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
    return [from_dict(doc, strict=strict) for doc in load_documents(text, source, unique_keys=strict)]
