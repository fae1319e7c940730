"""Strict decoding of IPAM records read from the datastore.

Other writers share these keys. Go's ``json.Unmarshal`` refuses a value whose fields have
the wrong JSON type, so libcalico-go never acts on such a record; the model's lenient
decoder would read the field as its zero value instead (a free-list entry ``"a"`` as
ordinal 0), which is how one bad record turns into a double assignment. Records the
allocator acts on go through here.
"""
from __future__ import annotations

import json
from typing import Any

from node.model.schema import Collector, canonical_struct


def decode_record(struct_name: str, raw: bytes | str) -> dict:
    """One IPAM record as a canonical dict; ValueError naming each mistyped field.

    An empty value reads as an empty record, as the model's decoder reads it.
    """
    text = raw.decode() if isinstance(raw, bytes) else raw
    obj: Any = json.loads(text) if text.strip() else {}
    if not isinstance(obj, dict):
        raise ValueError(f"IPAM {struct_name} value is not a JSON object")
    errs = Collector()
    record = canonical_struct(obj, struct_name, "", errs, strict=False)
    if errs.problems:
        raise ValueError("; ".join(f"field {path} = {value!r} ({reason})" for path, value, reason in errs.problems))
    return record
