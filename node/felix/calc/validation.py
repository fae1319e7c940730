"""Felix's validation filter: which converted values the calculation refuses.

Felix validates each v1 value before its calculation graph sees it and treats a value
that fails as *missing* (a deletion), logging why.  The checks here are the ones Felix's
v1 validator and its extra workload-endpoint checks make; each function returns a list
of problems, empty when the value is usable.  The selector checks matter most: a policy
whose combined selector does not parse would otherwise stop the whole calculation.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from node.felix.calc import v1
from node.selector import SelectorError, validate as validate_selector

_LABEL_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,512}$")
_LABEL_VALUE = re.compile(r"^[a-zA-Z0-9]?([a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?$")
_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_INTERFACE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_BACKEND_ACTIONS = {"allow", "deny", "log", "next-tier", ""}
_PROTOCOL_NAMES = {"tcp", "udp", "icmp", "icmpv6", "sctp", "udplite"}
_PORT_PROTOCOLS = {6, 17, 132, "tcp", "udp", "sctp"}
_PERF_HINTS = {"AssumeNeededOnEveryNode"}

# FelixConfiguration workloadSourceSpoofing: only "Any" lets a workload claim prefixes.
SPOOFING_ANY = "Any"


def _selector_problem(what: str, text: str) -> str | None:
    try:
        validate_selector(text)
    except SelectorError as exc:
        return f"{what}: {exc}"
    return None


def _labels_problems(labels: Iterable[tuple[str, str]]) -> list[str]:
    out = []
    for key, value in labels:
        if not _LABEL_NAME.fullmatch(key):
            out.append(f"invalid label name {key!r}")
        elif not _LABEL_VALUE.fullmatch(value):
            out.append(f"invalid value {value!r} for label {key!r}")
    return out


def _protocol_problem(what: str, proto: int | str | None) -> str | None:
    if proto is None:
        return None
    if isinstance(proto, int):
        return None if 1 <= proto <= 255 else f"{what} number {proto} invalid"
    return None if proto in _PROTOCOL_NAMES else f"{what} name {proto!r} invalid"


def _all_named(ports: Iterable[v1.Port]) -> bool:
    return all(isinstance(p, str) and ":" not in p for p in ports)


def rule_problems(rule: v1.Rule) -> list[str]:
    out = []
    if rule.action not in _BACKEND_ACTIONS:
        out.append(f"invalid action {rule.action!r}")
    if rule.ip_version is not None and rule.ip_version not in (4, 6):
        out.append(f"invalid ipVersion {rule.ip_version!r}")
    for what, proto in (("protocol", rule.protocol), ("notProtocol", rule.not_protocol)):
        problem = _protocol_problem(what, proto)
        if problem:
            out.append(problem)
    for what, value, top in (("icmp type", rule.icmp_type, 254), ("icmp code", rule.icmp_code, 255),
                             ("notICMP type", rule.not_icmp_type, 254),
                             ("notICMP code", rule.not_icmp_code, 255)):
        if value is not None and not 0 <= value <= top:
            out.append(f"{what} {value} out of range 0-{top}")
    for what, text in (("source selector", rule.src_selector), ("destination selector", rule.dst_selector),
                       ("source notSelector", rule.not_src_selector),
                       ("destination notSelector", rule.not_dst_selector)):
        if text:
            problem = _selector_problem(what, text)
            if problem:
                out.append(problem)
    for text in rule.original_selectors:
        problem = _selector_problem("selector", text)
        if problem:
            out.append(problem)
    port_lists = (rule.src_ports, rule.not_src_ports, rule.dst_ports, rule.not_dst_ports)
    if rule.protocol is None:
        if not all(_all_named(ports) for ports in port_lists):
            out.append("rules with numeric port or port range must set protocol to TCP or UDP or SCTP")
    elif rule.protocol not in _PORT_PROTOCOLS and any(port_lists):
        out.append("rules that specify ports must set protocol to TCP or UDP or SCTP")
    return out


def policy_problems(policy: v1.Policy) -> list[str]:
    out = []
    problem = _selector_problem("selector", policy.selector)
    if problem:
        out.append(problem)
    for direction, rules in (("ingress", policy.inbound_rules), ("egress", policy.outbound_rules)):
        for i, rule in enumerate(rules):
            out += [f"{direction} rule {i}: {p}" for p in rule_problems(rule)]
    hints = policy.performance_hints
    if len(set(hints)) != len(hints) or not set(hints) <= _PERF_HINTS:
        out.append(f"invalid performanceHints {list(hints)}")
    return out


def profile_problems(profile: v1.Profile) -> list[str]:
    out = _labels_problems(profile.labels)
    for direction, rules in (("ingress", profile.rules.inbound_rules), ("egress", profile.rules.outbound_rules)):
        for i, rule in enumerate(rules):
            out += [f"{direction} rule {i}: {p}" for p in rule_problems(rule)]
    return out


def _port_problems(ports: Iterable[v1.EndpointPort]) -> list[str]:
    out = []
    for port in ports:
        if not _NAME.fullmatch(port.name):
            out.append(f"invalid port name {port.name!r}")
        if not 0 < port.port <= 65535:
            out.append(f"port {port.name!r}: invalid port number {port.port}")
        if port.protocol not in ("tcp", "udp", "sctp"):
            out.append(f"port {port.name!r}: protocol must be tcp, udp or sctp, not {port.protocol!r}")
    return out


def workload_endpoint_problems(ep: v1.WorkloadEndpoint, source_spoofing: str) -> list[str]:
    """Felix checks little on a workload endpoint: it needs an interface, may only ask
    for spoofed sources when the configuration allows it, and its ports need a protocol
    that named-port IP sets can carry."""
    out = []
    if not ep.name:
        out.append("missing workload endpoint name (interfaceName)")
    if ep.allow_spoofed_source_prefixes and source_spoofing != SPOOFING_ANY:
        out.append("source IP spoofing requested but not enabled in Felix configuration")
    return out + _port_problems(ep.ports) if ep.ports else out


def host_endpoint_problems(ep: v1.HostEndpoint) -> list[str]:
    out = []
    if ep.name and ep.name != "*" and not _INTERFACE.fullmatch(ep.name):
        out.append(f"invalid interface name {ep.name!r}")
    out += _labels_problems(ep.labels)
    out += [f"invalid profile name {p!r}" for p in ep.profile_ids if not _NAME.fullmatch(p)]
    return out + _port_problems(ep.ports)


def network_set_problems(ns: v1.NetworkSet) -> list[str]:
    return _labels_problems(ns.labels)
