"""Text as calicoctl's Go libraries write it: numbers as Go formats them, JSON as
``json.MarshalIndent`` writes it and YAML as ``sigs.k8s.io/yaml`` (JSON, then
go.yaml.in/yaml/v2 v2.4) writes it.

What differs from Python's own writers, and matters to scripts reading the output:

* a float prints as Go's ``%v`` (``strconv.FormatFloat(f, 'g', -1, 64)``): 1000000 is
  ``1e+06`` in a table and 1234567.5 is ``1.2345675e+06`` in YAML;
* JSON escapes ``<``, ``>`` and ``&`` (``\\u003c``, ``\\u003e``, ``\\u0026``), as
  encoding/json does, and writes integral floats without a fraction;
* YAML quotes with double quotes, and only strings that yaml.v2 would read back as
  something else (``"5"``, ``"2024-01-01T00:00:00Z"``, ``"y"``, ``""``); strings with a
  line break are literal blocks; map keys are in yaml.v2's order (runs of digits compare
  as numbers, non-letters before letters).
"""
from __future__ import annotations

import datetime
import functools
import json
import math
import re
from typing import Any

import yaml

from node.gofloat import exp_form, fixed_form, format_float64, shortest_digits

# --------------------------------------------------------------------------------------
# Numbers


def go_float(f: float) -> str:
    """Go's ``%v`` of a float64 (``FormatFloat(f, 'g', -1, 64)``)."""
    return format_float64(f)


def go_json_float(f: float) -> str:
    """A float64 as encoding/json writes it."""
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    digits, dp = shortest_digits(f)
    if abs(f) < 1e-6 or abs(f) >= 1e21:
        text = exp_form(f < 0, digits, dp)
        return re.sub(r"e-0(\d)$", r"e-\1", text)
    return fixed_form(f < 0, digits, dp)


def go_value(value: Any) -> str:
    """A value as a Go template prints it (``fmt.Fprint``): a missing pointer field is
    ``<nil>``, floats are ``%v``."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


# --------------------------------------------------------------------------------------
# JSON

_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_HTML_RE = re.compile("[<>&\u2028\u2029]")


def _json_string(s: str) -> str:
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group()], json.dumps(s, ensure_ascii=False))


def _json(value: Any, pad: str) -> str:
    inner = pad + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        body = ",\n".join(f"{inner}{_json_string(str(k))}: {_json(v, inner)}" for k, v in value.items())
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + _json(v, inner) for v in value) + "\n" + pad + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_json_float(value)
    return _json_string(str(value))


def marshal_json(value: Any) -> str:
    """``json.MarshalIndent(value, "", "  ")``: no newline at the end, as Go writes it."""
    return _json(value, "")


# --------------------------------------------------------------------------------------
# YAML

_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
            "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF",
            "", "~", "null", "Null", "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF",
            "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"}
_HINTS = set("+-0123456789yYnNtTfFoO~.")
_TIME = r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.\d+)?"
_TIMESTAMPS = (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[Tt]" + _TIME + r"(?:Z|[+-]\d{2}:\d{2})$"),
               re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2}) " + _TIME + "$"),
               re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$"))


def _is_timestamp(s: str) -> bool:
    """yaml.v2's parseTimestamp: one of its time.Parse layouts accepts ``s``."""
    for pattern in _TIMESTAMPS:
        m = pattern.match(s)
        if not m:
            continue
        nums = [int(g) for g in m.groups()]
        try:
            datetime.date(*nums[:3])
        except ValueError:
            continue
        if len(nums) == 3 or (nums[3] < 24 and nums[4] < 60 and nums[5] < 60):
            return True
    return False


_DIGITS = {16: re.compile(r"[0-9a-fA-F]+"), 10: re.compile(r"[0-9]+"), 8: re.compile(r"[0-7]+"),
           2: re.compile(r"[01]+")}


def _go_parses_int(s: str) -> bool:
    """strconv.ParseInt(s, 0, 64) or ParseUint(s, 0, 64) succeeds (``s`` without "_")."""
    sign, body = (s[0], s[1:]) if s[:1] in "+-" else ("", s)
    base = {"0x": 16, "0o": 8, "0b": 2}.get(body[:2].lower())
    if base:
        body = body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, body = 8, body[1:]
    else:
        base = 10
    if not _DIGITS[base].fullmatch(body):
        return False
    value = int(body, base)
    return value <= 2 ** 63 if sign == "-" else value < 2 ** 64


def yaml_needs_quotes(s: str) -> bool:
    """yaml.v2 quotes a string that would resolve to another type when read back."""
    if s in _SPECIAL:
        return True
    if s[0] not in _HINTS:
        return False
    if _BASE60.match(s):
        return True
    if s[0] == ".":
        try:
            float(s)
        except ValueError:
            return False
        return True
    if s[0] in "+-0123456789":
        if _is_timestamp(s):
            return True
        plain = s.replace("_", "")
        if plain and _go_parses_int(plain):
            return True
        if _YAML_FLOAT.match(plain) and not math.isinf(float(plain)):
            return True
    return False


def _go_key_less(a: str, b: str) -> bool:
    """yaml.v2's ordering of string map keys (sorter.go keyList.Less)."""
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            continue
        la, lb = ca.isalpha(), cb.isalpha()
        if la and lb:
            return ca < cb
        if la or lb:
            return lb
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdigit():
            an = an * 10 + int(a[ai])
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdigit():
            bn = bn * 10 + int(b[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def _key_cmp(a: str, b: str) -> int:
    return -1 if _go_key_less(a, b) else (1 if _go_key_less(b, a) else 0)


_KEY = functools.cmp_to_key(_key_cmp)
_STR = "tag:yaml.org,2002:str"


class _GoYamlDumper(yaml.SafeDumper):
    """PyYAML's emitter (a port of libyaml, as yaml.v2's is) with yaml.v2's choices:
    no implicit typing by PyYAML, every scalar's style chosen here."""

    yaml_implicit_resolvers: dict = {}


def _scalar(dumper, text: str, style: str | None = None):
    return dumper.represent_scalar(_STR, text, style=style)


def _represent_str(dumper, s: str):
    if "\n" in s:
        return _scalar(dumper, s, "|")
    return _scalar(dumper, s, '"' if yaml_needs_quotes(s) else None)


def _represent_float(dumper, f: float):
    if f.is_integer() and abs(f) < 1e21:  # encoding/json wrote it as an integer
        return _scalar(dumper, str(int(f)))
    text = go_float(f)
    return _scalar(dumper, {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text))


def _represent_dict(dumper, d: dict):
    items = sorted(((str(k), v) for k, v in d.items()), key=lambda kv: _KEY(kv[0]))
    return dumper.represent_mapping("tag:yaml.org,2002:map", items)


_GoYamlDumper.add_representer(str, _represent_str)
_GoYamlDumper.add_representer(bool, lambda d, b: _scalar(d, "true" if b else "false"))
_GoYamlDumper.add_representer(int, lambda d, i: _scalar(d, str(i)))
_GoYamlDumper.add_representer(float, _represent_float)
_GoYamlDumper.add_representer(type(None), lambda d, _: _scalar(d, "null"))
_GoYamlDumper.add_representer(dict, _represent_dict)


def marshal_yaml(value: Any) -> str:
    """``sigs.k8s.io/yaml.Marshal(value)``."""
    return yaml.dump(value, Dumper=_GoYamlDumper, default_flow_style=False, sort_keys=False,
                     allow_unicode=True, width=80)
