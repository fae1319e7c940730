"""BGPFilter resources as BIRD functions, and the calls peers make to them.

Each BGPFilter with rules for an address family becomes up to two BIRD functions,
``'bgp_<name>_importFilterV<n>'`` and ``'bgp_<name>_exportFilterV<n>'``. BIRD symbols are
at most 64 characters, so a filter name longer than 45 characters is shortened to its
first 28 characters, ``_`` and the first 16 upper-case hex digits of its SHA-256.
A direction whose rules use ``peerType`` takes a ``bool is_same_as`` argument, which the
calling peer fills with "peer AS equals our AS".
"""
from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from node.model import Resource

BIRD_INT_MAX = 2147483647          # 2^31-1: priority <-> bgp_local_pref conversion
MAX_BIRD_SYMBOL = 64
HASH_CHARS = 16
DIRECTIONS = ("import", "export")

_OPERATORS = {"Equal": "=", "NotEqual": "!=", "In": "~", "NotIn": "!~"}


class FilterError(ValueError):
    """A BGPFilter rule that cannot be expressed in BIRD; the message names the field."""


@dataclass(frozen=True)
class FilterFunction:
    symbol: str                 # quoted BIRD symbol
    takes_peer_type: bool       # has the ``bool is_same_as`` parameter
    statements: tuple[str, ...]


@dataclass(frozen=True)
class BirdFilter:
    """The BIRD functions of one BGPFilter for one address family."""

    name: str
    functions: tuple[FilterFunction, ...]


def shorten_name(name: str, max_len: int) -> str:
    """``name`` if it fits, else a prefix plus a hash suffix that keeps names distinct."""
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest().upper()[:HASH_CHARS]
    return f"{name[:max_len - HASH_CHARS - 1]}_{digest}"


def function_symbol(filter_name: str, direction: str, version: int) -> str:
    """The quoted BIRD symbol of one filter function."""
    fixed = f"bgp__{direction}FilterV{version}"
    return f"'bgp_{shorten_name(filter_name, MAX_BIRD_SYMBOL - len(fixed))}_{direction}FilterV{version}'"


def rules_for(res: Resource, direction: str, version: int) -> list[dict]:
    return list(res.spec.get(f"{direction}V{version}") or [])


def uses_peer_type(rules: list[dict]) -> bool:
    return any(rule.get("peerType") for rule in rules)


def _community_tuple(value: str, where: str) -> str:
    parts = str(value).split(":")
    if len(parts) not in (2, 3):
        raise FilterError(f"{where} = '{value}' (community must be aa:nn or aa:nn:mm)")
    return "(" + ", ".join(parts) + ")"


def _community_attr(value: str) -> str:
    return "bgp_community" if len(str(value).split(":")) == 2 else "bgp_large_community"


def _cidr_condition(rule: dict, version: int, where: str) -> str:
    op = rule.get("matchOperator") or ""
    if not op:
        raise FilterError(f"{where}.matchOperator = '' (an operator is needed with cidr)")
    if op not in _OPERATORS:
        raise FilterError(f"{where}.matchOperator = '{op}' (unexpected operator)")
    cidr = rule["cidr"]
    target = cidr
    prefix = rule.get("prefixLength")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise FilterError(f"{where}.cidr = '{cidr}' (not a CIDR)") from None
        low = net.prefixlen
        high = net.max_prefixlen
        if prefix.get("min") is not None:
            low = max(low, int(prefix["min"]))
        if prefix.get("max") is not None:
            high = min(high, int(prefix["max"]))
        target = f"[ {cidr}{{{low},{high}}} ]"
    return f"(net {_OPERATORS[op]} {target})"


def rule_statement(rule: dict, version: int, where: str) -> str:
    """One rule as one BIRD statement (the peerType guard included)."""
    action = rule.get("action") or ""
    if action not in ("Accept", "Reject"):
        raise FilterError(f"{where}.action = '{action}' (must be Accept or Reject)")
    conditions = []
    if rule.get("cidr"):
        conditions.append(_cidr_condition(rule, version, where))
    source = rule.get("source") or ""
    if source:
        if source != "RemotePeers":
            raise FilterError(f"{where}.source = '{source}' (unexpected source)")
        conditions.append("((defined(source))&&(source ~ [ RTS_BGP ]))")
    if rule.get("interface"):
        conditions.append(f'((defined(ifname))&&(ifname ~ "{rule["interface"]}"))')
    communities = rule.get("communities")
    if communities is not None:
        values = communities.get("values") or []
        if not values:
            raise FilterError(f"{where}.communities.values = '[]' (empty communities)")
        conditions.append(f"({_community_tuple(values[0], where + '.communities.values[0]')} ~ "
                          f"{_community_attr(values[0])})")
    if rule.get("asPathPrefix"):
        conditions.append(f"(bgp_path ~ [= {' '.join(str(a) for a in rule['asPathPrefix'])} * =])")
    if rule.get("priority") is not None:
        conditions.append(f"(defined(bgp_local_pref)&&(bgp_local_pref = {BIRD_INT_MAX - int(rule['priority'])}))")
    body = _operations(rule.get("operations") or [], where) + [f"{action.lower()};"]
    text = " ".join(body)
    if conditions:
        text = f"if ({'&&'.join(conditions)}) then {{ {text} }}"
    peer_type = rule.get("peerType") or ""
    if peer_type == "iBGP":
        text = f"if (is_same_as) then {{ {text} }}"
    elif peer_type == "eBGP":
        text = f"if (!is_same_as) then {{ {text} }}"
    elif peer_type:
        raise FilterError(f"{where}.peerType = '{peer_type}' (must be iBGP or eBGP)")
    return text


def _operations(operations: list[dict], where: str) -> list[str]:
    out = []
    for i, op in enumerate(operations):
        at = f"{where}.operations[{i}]"
        if op.get("addCommunity") is not None:
            value = op["addCommunity"].get("value")
            if value is None:
                raise FilterError(f"{at}.addCommunity.value = '' (a community value is needed)")
            out.append(f"{_community_attr(value)}.add({_community_tuple(value, at + '.addCommunity.value')});")
        elif op.get("prependASPath") is not None:
            # BIRD prepends one AS at a time, so the last prepended ends up first.
            out.extend(f"bgp_path.prepend({asn});" for asn in reversed(op["prependASPath"].get("prefix") or []))
        elif op.get("setPriority") is not None:
            value = op["setPriority"].get("value")
            if value is None:
                raise FilterError(f"{at}.setPriority.value = '' (a priority is needed)")
            out.append(f"bgp_local_pref = {BIRD_INT_MAX - int(value)};")
        else:
            raise FilterError(f"{at} = '{{}}' (an operation needs addCommunity, prependASPath or setPriority)")
    return out


def bird_filters(filters: dict[str, Resource], version: int) -> list[BirdFilter]:
    """The BIRD functions of every BGPFilter with rules for ``version``, by filter name.

    Raises FilterError naming the filter, rule and field of the first rule BIRD cannot
    express; Calico then fails the whole file rather than drop the rule.
    """
    out = []
    for name in sorted(filters):
        res = filters[name]
        functions = []
        for direction in DIRECTIONS:
            rules = rules_for(res, direction, version)
            if not rules:
                continue
            field = f"{direction}V{version}"
            statements = tuple(rule_statement(rule, version, f"BGPFilter({name}).spec.{field}[{i}]")
                               for i, rule in enumerate(rules))
            functions.append(FilterFunction(function_symbol(name, direction, version),
                                            uses_peer_type(rules), statements))
        if functions:
            out.append(BirdFilter(name, tuple(functions)))
    return out


@dataclass(frozen=True)
class FilterCall:
    symbol: str
    same_as: bool | None   # the argument, when the function takes one


def peer_filter_calls(filter_names: tuple[str, ...], filters: dict[str, Resource], direction: str,
                      version: int, same_as: bool) -> list[FilterCall]:
    """The calls a peer's import or export filter makes to its BGPFilters, in spec order;
    filters that do not exist or have no rules for this direction and family are skipped."""
    calls = []
    for name in filter_names:
        res = filters.get(name)
        if res is None:
            continue
        rules = rules_for(res, direction, version)
        if not rules:
            continue
        calls.append(FilterCall(function_symbol(name, direction, version),
                                same_as if uses_peer_type(rules) else None))
    return calls
