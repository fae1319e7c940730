"""A small schema language for Calico's Go structs, and the three things we do with it.

Calico stores resources as Go's ``encoding/json`` renders its structs. To write the same
bytes we model each struct as an ordered field list (``node.model.structs``) and:

* ``canonical()`` turns loosely typed input (YAML, JSON, datastore values) into exactly
  what Go would produce after unmarshalling it and marshalling it again: fields in struct
  order, empty ``omitempty`` fields dropped, zero values filled in for fields without
  ``omitempty``, maps sorted, durations and ports in Go's spelling. Type errors are
  collected with the field path rather than raised one at a time.
* ``validate()`` runs Calico's field validators over a canonical value.
* ``go_json()`` encodes a canonical value as compact Go-style JSON.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from node.gofloat import format_float32

STRUCTS: dict[str, "Struct"] = {}

SCALARS = {"string", "strictstring", "bool", "int", "float", "duration", "asn", "protocol", "port", "intorstring",
           "map", "any"}

# Deepest nesting of lists and objects a document may have. Calico's resources nest about
# ten levels; the limit keeps every recursive walk (YAML composer, json, ours) far from
# Python's recursion limit.
MAX_NESTING = 100

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class Type:
    """A parsed type expression: ``*[]@Rule`` is a pointer to a list of Rule structs."""

    kind: str  # a scalar name, "enum", "list" or "struct"
    pointer: bool = False
    elem: "Type | None" = None
    values: tuple[str, ...] = ()
    struct: str = ""


@dataclass(frozen=True)
class Field:
    name: str
    type: Type
    required: bool  # no omitempty: always emitted
    omitzero: bool
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Struct:
    name: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def field_for_key(self, key: str) -> str | None:
        """The field a JSON object key sets, as encoding/json finds it: the field of that
        exact name, else the first whose name equals the key case-insensitively
        (``loadbalancer`` sets ``loadBalancer``)."""
        names = _FIELD_NAMES.get(self.name)
        if names is None:
            names = {f.name: f.name for f in self.fields}
            for f in self.fields:
                names.setdefault(go_fold(f.name), f.name)  # no field name is its own fold
            _FIELD_NAMES[self.name] = names
        return names.get(key) or names.get(go_fold(key))


# Per struct: each field's name, and each folded name to the first field it folds from.
_FIELD_NAMES: dict[str, dict[str, str]] = {}
# The non-ASCII letters encoding/json folds onto ASCII ones (unicode.ToUpper of
# unicode.SimpleFold): the long s, the Kelvin sign and the two Turkish i's.
_GO_FOLD_TO_ASCII = {"\u017f": "S", "\u212a": "K", "\u0131": "I", "\u0130": "I"}


def go_fold(name: str) -> str:
    """``name`` folded as encoding/json folds object keys to match struct fields: ASCII
    letters upper-cased; no other character folds onto an ASCII one but those four."""
    return "".join(c.upper() if c < "\x80" else _GO_FOLD_TO_ASCII.get(c, c) for c in name)


def parse_type(text: str) -> Type:
    pointer = text.startswith("*")
    if pointer:
        text = text[1:]
    if text.startswith("[]"):
        return Type("list", pointer, elem=parse_type(text[2:]))
    if text.startswith("@"):
        return Type("struct", pointer, struct=text[1:])
    if text.startswith("enum:"):
        return Type("enum", pointer, values=tuple(text[5:].split("|")))
    if text not in SCALARS:
        raise ValueError(f"unknown schema type {text!r}")
    return Type(text, pointer)


def F(name: str, type_: str, req: bool = False, omitzero: bool = False, v: str = "") -> Field:
    checks = tuple(c for c in v.split(",") if c and c != "dive")
    return Field(name, parse_type(type_), req, omitzero, checks)


def S(name: str, fields: list[Field]) -> Struct:
    struct = Struct(name, tuple(fields))
    STRUCTS[name] = struct
    return struct


def struct(name: str) -> Struct:
    return STRUCTS[name]


# --------------------------------------------------------------------------------------
# Go duration strings (metav1.Duration marshals with time.Duration.String()).

_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Parse a Go duration ("1m30s", "-1.5h", "0") into nanoseconds."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not total <= INT64_MAX:  # also catches inf from absurdly long digit strings
        raise ValueError(f"invalid duration {text!r}: out of range")
    return sign * int(round(total))


def format_go_duration(ns: int) -> str:
    """Nanoseconds as Go's time.Duration.String() prints them."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                out = _trim_fraction(ns, size) + unit
                break
    else:
        hours, rem = divmod(ns, 3_600_000_000_000)
        minutes, rem = divmod(rem, 60_000_000_000)
        out = ""
        if hours:
            out += f"{hours}h"
        if hours or minutes:
            out += f"{minutes}m"
        out += _trim_fraction(rem, 1_000_000_000) + "s"
    return ("-" if neg else "") + out


def _trim_fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


# --------------------------------------------------------------------------------------
# AS numbers and ports (numorstring).

def parse_asn(value: Any) -> int:
    """An AS number as a plain or dotted ("1.10" = 1<<16 + 10) value."""
    if isinstance(value, bool):
        raise ValueError("AS number must be a number")
    if isinstance(value, int):
        asn = value
    elif isinstance(value, float) and value.is_integer():
        asn = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+\.\d+", text):
            high, low = (int(p) for p in text.split("."))
            if high > 0xFFFF or low > 0xFFFF:
                raise ValueError(f"invalid dotted AS number {value!r}")
            asn = (high << 16) + low
        elif re.fullmatch(r"\d+", text):
            asn = int(text)
        else:
            raise ValueError(f"invalid AS number {value!r}")
    else:
        raise ValueError(f"invalid AS number {value!r}")
    if not 0 <= asn <= 0xFFFFFFFF:
        raise ValueError(f"AS number {value!r} out of range (0-4294967295)")
    return asn


_PORT_RANGE = re.compile(r"^(\d+):(\d+)$")


def canonical_port(value: Any) -> int | str:
    """A numorstring.Port in its marshalled form: a number, "min:max" or a port name."""
    if isinstance(value, bool):
        raise ValueError("port must be a number or a string")
    if isinstance(value, int):
        if not 0 <= value <= 65535:
            raise ValueError(f"port {value} out of range (1-65535)")
        return value
    if isinstance(value, str):
        if value.isdigit():
            num = int(value)
            if num > 65535:
                raise ValueError(f"invalid port format ({value})")
            return num
        m = _PORT_RANGE.match(value)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > 65535:
                raise ValueError(f"invalid minimum port number in range ({value})")
            if hi > 65535:
                raise ValueError(f"invalid maximum port number in range ({value})")
            if lo > hi:
                raise ValueError(f"port range invalid ({value})")
            return lo if lo == hi else f"{lo}:{hi}"
        return value
    raise ValueError("port must be a number or a string")


# --------------------------------------------------------------------------------------
# Canonicalisation.

OMIT = object()


class Collector:
    """Gathers (path, value, reason) problems while walking a value."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, Any, str]] = []

    def add(self, path: str, value: Any, reason: str) -> None:
        self.problems.append((path, value, reason))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _go_type_name(t: Type) -> str:
    return {"string": "string", "strictstring": "string", "enum": "string", "bool": "bool", "int": "int",
            "float": "number", "duration": "duration string", "map": "map of strings", "list": "list",
            "struct": "object"}.get(t.kind, t.kind)


def _zero(t: Type) -> Any:
    if t.pointer or t.kind in ("list", "map", "any"):
        return None
    if t.kind == "struct":
        return canonical_struct({}, t.struct, "", Collector(), strict=False)
    return {"string": "", "strictstring": "", "enum": "", "bool": False, "int": 0, "float": 0, "duration": "0s",
            "asn": 0, "protocol": 0, "port": 0, "intorstring": 0}[t.kind]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def canonical_value(value: Any, t: Type, path: str, errs: Collector, strict: bool) -> Any:
    """One value as Go would re-marshal it; problems go to ``errs``.

    Every branch checks the Python type before using the value, so a foreign shape (a list
    where an object belongs, an object where a string belongs) becomes a problem naming
    the field, never an exception.
    """
    if value is None:
        return None if (t.pointer or t.kind in ("list", "map", "any")) else _zero(t)
    kind = t.kind
    if kind in ("string", "enum"):
        if isinstance(value, bool):
            return "true" if value else "false"
        if _is_number(value):
            return _number_text(value)
        if isinstance(value, str):
            return value
        errs.add(path, value, f"expected a {_go_type_name(t)}")
        return ""
    if kind == "strictstring":
        # Identity fields: a YAML number or boolean here is a mistake to report, not a
        # value to convert (``name: 12`` must be written ``name: "12"``).
        if isinstance(value, str):
            return value
        errs.add(path, value, "expected a string; quote the value to use it as text")
        return ""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        errs.add(path, value, "expected a boolean (true or false)")
        return False
    if kind == "int":
        if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
            errs.add(path, value, "expected an integer")
            return 0
        if not INT64_MIN <= value <= INT64_MAX:
            errs.add(path, value, "integer out of range (64-bit)")
            return 0
        return int(value)
    if kind == "float":
        return _canonical_float(value, path, errs)
    if kind == "duration":
        if not isinstance(value, str):
            errs.add(path, value, "expected a duration string such as 30s or 1m30s")
            return "0s"
        try:
            return format_go_duration(parse_go_duration(value))
        except ValueError as exc:
            errs.add(path, value, str(exc))
            return "0s"
    if kind == "asn":
        try:
            return parse_asn(value)
        except ValueError as exc:
            errs.add(path, value, str(exc))
            return 0
    if kind == "protocol":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errs.add(path, value, "protocol must be a name or a number")
            return 0
        if isinstance(value, int) and not 0 <= value <= 255:
            errs.add(path, value, "protocol number must be between 1 and 255")
        return value
    if kind == "port":
        try:
            return canonical_port(value)
        except ValueError as exc:
            errs.add(path, value, str(exc))
            return 0
    if kind == "intorstring":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errs.add(path, value, "expected a number or a string")
            return 0
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            errs.add(path, value, "integer out of range (64-bit)")
            return 0
        return value
    if kind == "map":
        if not isinstance(value, dict):
            errs.add(path, value, "expected a map of strings")
            return None
        out = {}
        for k in sorted(value, key=str):
            v = value[k]
            if v is None:
                v = ""
            elif isinstance(v, bool):
                v = "true" if v else "false"
            elif _is_number(v):
                v = _number_text(v)
            elif not isinstance(v, str):
                errs.add(f"{path}[{k}]", v, "expected a string value")
                continue
            out[str(k)] = v
        return out
    if kind == "any":
        problem = json_problem(value, path)
        if problem:
            errs.add(*problem)
            return None
        return value
    if kind == "list":
        if not isinstance(value, list):
            errs.add(path, value, "expected a list")
            return None
        return [canonical_value(v, t.elem, f"{path}[{i}]", errs, strict) for i, v in enumerate(value)]
    if kind == "struct":
        return canonical_struct(value, t.struct, path, errs, strict)
    raise AssertionError(kind)


def _canonical_float(value: Any, path: str, errs: Collector) -> int | float:
    """A float64 field. Small integers stay ints (Go prints them alike); anything else is
    rounded to a float64 as Go's decoder would, so it is encoded as Go encodes it."""
    if not _is_number(value):
        errs.add(path, value, "expected a number")
        return 0
    if isinstance(value, int) and abs(value) <= 1 << 53:
        return value
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        errs.add(path, value, "number out of range (expected a finite 64-bit float)")
        return 0
    return number


def _number_text(value: int | float) -> str:
    """A YAML number where Go wants a string, as sigs.k8s.io/yaml converts it: an integer
    go-yaml holds in 64 bits in full; a float, or an integer too big for 64 bits (go-yaml
    reads those as float64s), as ``strconv.FormatFloat(f, 'g', -1, 32)``, so
    ``1337495556942031415926535`` becomes "1.3374956e+24"; one too big for a float64 too
    stays as written (go-yaml keeps it as a string)."""
    if isinstance(value, int):
        if INT64_MIN <= value <= UINT64_MAX:
            return str(value)
        try:
            value = float(value)
        except OverflowError:
            return str(value)
    return format_float32(value)


def json_problem(value: Any, path: str) -> tuple[str, Any, str] | None:
    """The first part of ``value`` that JSON (and so Go) cannot hold, as a problem.

    Kept-as-given values are written to etcd verbatim, so they may only contain null,
    booleans, finite numbers, strings, lists and string-keyed objects.
    """
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item is None or isinstance(item, (bool, int, str)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return where, item, "expected a finite number"
            continue
        if isinstance(item, list):
            stack.extend((x, f"{where}[{i}]") for i, x in enumerate(item))
            continue
        if isinstance(item, dict):
            for k, x in item.items():
                if not isinstance(k, str):
                    return where, k, "object keys must be strings"
                stack.append((x, _join(where, k)))
            continue
        return where, item, ("expected JSON data (null, boolean, number, string, list or object), "
                             f"not {type(item).__name__}")
    return None


def nested_too_deeply(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether lists and objects in ``value`` nest more than ``limit`` levels deep.

    Iterative, so it answers for any depth; safe on self-referencing values (YAML aliases
    can build them), which count as infinitely deep. A container already explored at the
    same or a greater depth is not explored again, so shared subtrees cost little.
    """
    seen: dict[int, int] = {}
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        if seen.get(id(item), 0) >= depth:
            continue
        seen[id(item)] = depth
        stack.extend((child, depth + 1) for child in children)
    return False


def canonical_struct(value: Any, name: str, path: str, errs: Collector, strict: bool) -> dict:
    """A struct value in field order with Go's omission rules applied.

    A value that is not a mapping is reported at ``path`` and treated as the empty struct.
    """
    if not isinstance(value, dict):
        errs.add(path or name, value, "expected an object")
        value = {}
    st = STRUCTS[name]
    known = {f.name for f in st.fields}
    if any(key not in known for key in value):
        value = _keys_as_fields(value, st, path, errs, strict)
    out: dict[str, Any] = {}
    for f in st.fields:
        present = f.name in value
        raw = value.get(f.name)
        fpath = _join(path, f.name)
        if not present or raw is None:
            # Go never omits a non-pointer struct (omitempty does not apply to structs).
            always = f.type.kind == "struct" and not f.type.pointer
            if (f.required or always) and not f.omitzero:
                out[f.name] = _zero(f.type)
            continue
        canon = canonical_value(raw, f.type, fpath, errs, strict)
        if f.type.pointer:
            if canon is not None:
                out[f.name] = canon
            continue
        if f.omitzero and f.type.kind == "struct" and canon == _zero(f.type):
            continue
        if not f.required and f.type.kind != "struct" and _omitempty(canon):
            continue
        out[f.name] = canon
    return out


def _keys_as_fields(value: dict, st: Struct, path: str, errs: Collector, strict: bool) -> dict:
    """``value`` keyed by the fields its keys set, as encoding/json decodes an object into
    a struct: a key matching no field exactly sets the one it matches case-insensitively;
    two keys setting one field are decoded into it in turn, in key order (sigs.k8s.io/yaml
    hands encoding/json the keys sorted), as ``decode_over`` does. Keys that set no field
    are dropped, and are errors if ``strict``."""
    out: dict = {}
    for key, item in sorted(value.items(), key=lambda kv: str(kv[0])):
        field = st.field_for_key(str(key))
        if field is None:
            if strict:
                errs.add(_join(path, str(key)), item, f'unknown field "{key}"')
            continue
        out[field] = decode_over(out[field], item) if field in out else item
    return out


def decode_over(prev: Any, new: Any) -> Any:
    """What decoding ``new`` into a field that already holds ``prev`` leaves there: objects
    merge, key by key; any other value replaces the old one."""
    if isinstance(prev, dict) and isinstance(new, dict):
        merged = dict(prev)
        for k, v in sorted(new.items(), key=lambda kv: str(kv[0])):
            merged[k] = decode_over(merged[k], v) if k in merged else v
        return merged
    return new


def _omitempty(value: Any) -> bool:
    if value is None or value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return True
    return value == "" or (isinstance(value, (list, dict)) and len(value) == 0)


# --------------------------------------------------------------------------------------
# Validation over canonical values.

Check = Callable[[Any], "str | None"]
FIELD_CHECKS: dict[str, Check] = {}


def register_check(name: str) -> Callable[[Check], Check]:
    def deco(fn: Check) -> Check:
        FIELD_CHECKS[name] = fn
        return fn
    return deco


_RANGE_CHECK = re.compile(r"^(gt|gte|lt|lte)=(-?\d+)$")


def _run_check(check: str, value: Any) -> str | None:
    m = _RANGE_CHECK.match(check)
    if m:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        op, bound = m.group(1), int(m.group(2))
        ok = {"gt": value > bound, "gte": value >= bound, "lt": value < bound, "lte": value <= bound}[op]
        if ok:
            return None
        words = {"gt": "greater than", "gte": "at least", "lt": "less than", "lte": "at most"}[op]
        return f"must be {words} {bound}"
    if check == "nonempty":
        return "must be specified" if value in (None, "", [], {}) else None
    if check == "unique":
        if isinstance(value, list) and len(set(map(str, value))) != len(value):
            return "values must be unique"
        return None
    fn = FIELD_CHECKS.get(check)
    if fn is None:
        return None  # validators Calico has for fields the node never interprets
    return fn(value)


def validate_struct(value: Any, name: str, path: str, errs: Collector) -> None:
    if not isinstance(value, dict):
        errs.add(path or name, value, "expected an object")
        return
    st = STRUCTS[name]
    for f in st.fields:
        if f.name not in value:
            if "nonempty" in f.checks:
                errs.add(_join(path, f.name), "", "must be specified")
            continue
        validate_value(value[f.name], f, _join(path, f.name), errs)
    hook = STRUCT_CHECKS.get(name)
    if hook:
        hook(value, path, errs)


# Checks that judge a whole list rather than each element.
LIST_CHECKS = frozenset({"unique", "nonempty", "cidrs"})


def validate_value(value: Any, f: Field, path: str, errs: Collector) -> None:
    """Calico's checks on one canonical value (see ``validate_resource`` for why canonical)."""
    t = f.type
    if t.kind == "enum" and value not in ("", None) and value not in t.values:
        errs.add(path, value, "must be one of " + ", ".join(t.values))
    if t.kind == "list":
        if value is not None and not isinstance(value, list):
            errs.add(path, value, "expected a list")
            return
        elem = t.elem
        for i, item in enumerate(value or []):
            ipath = f"{path}[{i}]"
            if elem.kind == "struct":
                validate_struct(item, elem.struct, ipath, errs)
            elif elem.kind == "enum" and item not in elem.values:
                errs.add(ipath, item, "must be one of " + ", ".join(elem.values))
            else:
                for check in f.checks:
                    if check in LIST_CHECKS:
                        continue
                    reason = _run_check(check, item)
                    if reason:
                        errs.add(ipath, item, reason)
        for check in f.checks:
            if check in LIST_CHECKS:
                reason = _run_check(check, value)
                if reason:
                    errs.add(path, value, reason)
        return
    if t.kind == "struct":
        validate_struct(value, t.struct, path, errs)
        return
    if t.kind == "protocol":
        reason = check_protocol(value)
        if reason:
            errs.add(path, value, reason)
    for check in f.checks:
        if value == "" and check != "nonempty":
            continue
        reason = _run_check(check, value)
        if reason:
            errs.add(path, value, reason)


PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")


def check_protocol(value: Any) -> str | None:
    if isinstance(value, int):
        return "protocol number invalid" if not 1 <= value <= 255 else None
    if isinstance(value, str) and value.isdigit():
        return "protocol number invalid" if not 1 <= int(value) <= 255 else None
    if value not in PROTOCOL_NAMES:
        return "protocol name invalid (one of " + ", ".join(PROTOCOL_NAMES) + ", or a number 1-255)"
    return None


StructCheck = Callable[[dict, str, Collector], None]
STRUCT_CHECKS: dict[str, StructCheck] = {}


def register_struct_check(name: str) -> Callable[[StructCheck], StructCheck]:
    def deco(fn: StructCheck) -> StructCheck:
        STRUCT_CHECKS[name] = fn
        return fn
    return deco


# --------------------------------------------------------------------------------------
# Encoding.

_REPR_FLOAT = re.compile(r"^(\d+)(?:\.(\d*))?(?:e([+-]\d+))?$")


def _shortest_digits(value: float) -> tuple[str, int]:
    """(digits, point) with value == 0.<digits> * 10**point, digits the shortest that
    round-trip (Python's repr and Go's strconv both pick them); ``value`` > 0."""
    m = _REPR_FLOAT.match(repr(value))
    if m is None:
        raise ValueError(f"cannot format {value!r}")
    whole, frac, exp = m.group(1), m.group(2) or "", int(m.group(3) or 0)
    digits = whole + frac
    point = len(whole) + exp
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json writes it.

    Plain decimal (strconv 'f' with shortest digits) when 1e-6 <= |f| < 1e21 or f is zero;
    otherwise exponent form ('e'), where Go shortens a two-digit negative exponent with a
    leading zero (1e-07 -> 1e-7) and keeps the rest (1e+21, 1e-10).
    """
    if not math.isfinite(value):
        raise ValueError(f"JSON cannot hold {value!r}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    size = abs(value)
    digits, point = _shortest_digits(size)
    if 1e-6 <= size < 1e21:
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        if point >= len(digits):
            return sign + digits + "0" * (point - len(digits))
        return f"{sign}{digits[:point]}.{digits[point:]}"
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp_text = f"{abs(exp):02d}"
    if exp < 0 and exp_text[0] == "0" and len(exp_text) == 2:
        exp_text = exp_text[1]
    return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{exp_text}"


def _prepare(o: Any, floats: list[str]) -> Any:
    """Swap floats for placeholders so they can be written in Go's spelling."""
    if isinstance(o, float):
        floats.append(go_float(o))
        return f"\x00{len(floats) - 1}\x00"
    if isinstance(o, dict):
        return {k: _prepare(v, floats) for k, v in o.items()}
    if isinstance(o, list):
        return [_prepare(v, floats) for v in o]
    return o


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes it (HTML-safe escapes, Go floats)."""
    floats: list[str] = []
    text = json.dumps(_prepare(value, floats), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_reject)
    if floats:
        text = re.sub(r'"\\u0000(\d+)\\u0000"', lambda m: floats[int(m.group(1))], text)
    return _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], text)


def _reject(o: Any) -> Any:
    raise TypeError(f"cannot encode {type(o).__name__} as JSON")

