"""Go's strconv.ParseBool, which Calico uses for its flags, environment variables and
feature overrides (kept import-free: the health probe uses it)."""
from __future__ import annotations

_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def parse_go_bool(text: str) -> bool | None:
    """True or False for one of ParseBool's twelve spellings, else None (not a boolean)."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None
