"""DSCP values as Calico's API spells them (numorstring.DSCP): a number from 0 to 63, or
one of the standard names (DF, EF, AFxy, CSx) in any case."""
from __future__ import annotations

DSCP_VALUES = {
    "DF": 0, "EF": 46,
    "AF11": 10, "AF12": 12, "AF13": 14, "AF21": 18, "AF22": 20, "AF23": 22,
    "AF31": 26, "AF32": 28, "AF33": 30, "AF41": 34, "AF42": 36, "AF43": 38,
    "CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48,
}


def canonical_dscp_name(text: str) -> str | None:
    """The known name ``text`` spells (case-insensitively), in its canonical case."""
    return next((name for name in DSCP_VALUES if name.lower() == text.lower()), None)


def _number(text: str) -> int | None:
    """Go's ParseUint(text, 10, 8): plain ASCII digits, no sign or spaces, up to 255."""
    if text.isascii() and text.isdigit() and int(text) <= 255:
        return int(text)
    return None


def dscp_value(value: int | str) -> int:
    """The DSCP number of an API value (numorstring.DSCP's Validate and ToUint8): a number
    up to 63, digits as text, or a name (spaces around it and case ignored); ValueError
    for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a DSCP value")
    number = value if isinstance(value, int) else _number(value) if isinstance(value, str) else None
    if number is not None:
        if not 0 <= number <= 63:
            raise ValueError(f"DSCP must be between 0 and 63, not {number}")
        return number
    if isinstance(value, str):
        name = canonical_dscp_name(value.strip())
        if name is not None:
            return DSCP_VALUES[name]
    raise ValueError(f"{value!r} is not a valid DSCP value")


def dscp_from_text(text: str) -> int | str:
    """What Calico stores for a DSCP given as text (DSCPFromString, then JSON): a known
    name in its canonical case, digits as a number, anything else as given. ValueError
    when that is not a valid DSCP."""
    name = canonical_dscp_name(text)
    if name is not None:
        return name
    dscp_value(text)  # raises when invalid
    number = _number(text)
    return number if number is not None else text
