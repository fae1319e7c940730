"""AS numbers as the AS variable gives them: plain (``64512``) or dotted (``1.10``)."""
from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def parse_as_number(text: str) -> int:
    """A 32-bit AS number; dotted ``a.b`` (16-bit parts) means ``a << 16 | b``.

    Strict like Go's ParseUint: no signs, blanks or underscores.
    """
    if _DIGITS.fullmatch(text) and int(text) <= 0xFFFFFFFF:
        return int(text)
    parts = text.split(".")
    if len(parts) == 2 and all(_DIGITS.fullmatch(p) and int(p) <= 0xFFFF for p in parts):
        return (int(parts[0]) << 16) + int(parts[1])
    raise ValueError(f"invalid AS Number format ({text})")
