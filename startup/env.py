"""Reading startup's environment variables with Calico's parsing rules.

Kept in one place because the rules are subtle and differ per variable: booleans are
"true unless it says false", most switches need an exact ``true``, durations use Go's
syntax.
"""
from __future__ import annotations

import logging
from typing import Mapping

from node.model.schema import parse_go_duration

log = logging.getLogger(__name__)

_FALSE_WORDS = ("false", "0", "no", "n", "f")

DEFAULT_POLL_INTERVAL = 60.0


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """Calico's evaluateENVBool: unset gives the default; a set value is true unless it
    is one of false/0/no/n/f (any case), so even an empty value counts as true."""
    if name not in env:
        log.info("%s is %s (defaulted) through environment variable", name, _go_bool(default))
        return default
    value = env[name].lower() not in _FALSE_WORDS
    log.info("%s is %s through environment variable", name, _go_bool(value))
    return value


def _go_bool(value: bool) -> str:
    return "true" if value else "false"


def networking_backend(env: Mapping[str, str]) -> str:
    return env.get("CALICO_NETWORKING_BACKEND", "")


def policy_only(env: Mapping[str, str]) -> bool:
    """Exactly ``none`` (case-sensitive) means Calico does not do the networking here."""
    return networking_backend(env) == "none"


def poll_interval(env: Mapping[str, str]) -> float:
    """AUTODETECT_POLL_INTERVAL in seconds; a bad or non-positive value falls back to 60s."""
    raw = env.get("AUTODETECT_POLL_INTERVAL", "")
    if not raw:
        return DEFAULT_POLL_INTERVAL
    try:
        nanos = parse_go_duration(raw)
    except ValueError as exc:
        log.error("error parsing node IP auto-detect polling interval %s error=%s", raw, exc)
        return DEFAULT_POLL_INTERVAL
    if nanos <= 0:
        log.error("error parsing node IP auto-detect polling interval %s error=interval must be positive", raw)
        return DEFAULT_POLL_INTERVAL
    return nanos / 1e9
