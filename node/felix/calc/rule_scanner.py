"""From v1 rules to the dataplane's rules: selectors and named ports become IP-set IDs.

``scan_rules`` is pure: it turns each ``v1.Rule`` into a ``types.ParsedRule`` and reports
the IP sets the rules need (``IPSetData``), keyed by ID.  Felix's choices are kept:

* a positive selector absorbs the negated one, ``(<sel>) && (!(<notSel>))``, so one set
  does the work of two; without a positive selector the negated set stays separate;
* a named port becomes an ``IP,proto:port`` set filtered by the side's positive selector
  (also for negated named ports), and when a side has named ports but no numeric ones the
  plain selector set is dropped, since the named-port set already applies it;
* service matches become ``svc:``/``svcnoport:`` sets.

``IPSetRefs`` is the small piece of state on top: which policy or profile uses which set,
so that a set exists exactly while some active rule refers to it.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from node.felix import types as t
from node.felix.calc import v1
from node.selector import Selector, make_unique_id, parse

ALL = parse("all()")

# Named-port protocols (Felix's ipsetmember.Protocol).
PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ANY = "tcp", "udp", "sctp", "any"
_PROTO_NUMBERS = {PROTO_TCP: 6, PROTO_UDP: 17, PROTO_SCTP: 132, PROTO_ANY: 255}


def protocol_matches(named_proto: str, proto: int | str) -> bool:
    """Felix's ``MatchesModelProtocol``: does an endpoint port's (or rule's) protocol match
    a named-port protocol?  An unset (0) protocol only matches ``any``; ``any`` matches
    every protocol name."""
    if isinstance(proto, int):
        if proto == 0:
            return named_proto == PROTO_ANY
        return proto == _PROTO_NUMBERS[named_proto]
    if named_proto == PROTO_ANY:
        return True
    return proto.lower() == named_proto


def protocol_from(proto: int | str) -> str:
    """Felix's ``ProtocolFrom``: UDP or SCTP when it is one of those, otherwise TCP."""
    if protocol_matches(PROTO_UDP, proto):
        return PROTO_UDP
    if protocol_matches(PROTO_SCTP, proto):
        return PROTO_SCTP
    return PROTO_TCP


@dataclass(frozen=True)
class IPSetData:
    """What one IP set stands for: a selector, a selector's named port, or a service."""

    selector: Selector | None = None
    named_port: str = ""
    named_port_protocol: str = ""  # "" for a plain selector set
    service: str = ""  # "<namespace>/<name>" for a service set
    service_include_ports: bool = False
    fixed_id: str = ""  # a set with a well-known ID (Felix's "all-istio-weps")
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self._unique_id())

    def _unique_id(self) -> str:
        if self.fixed_id:
            return self.fixed_id
        if self.service:
            return make_unique_id("svc" if self.service_include_ports else "svcnoport", self.service)
        sel_id = self.selector.unique_id()
        if not self.named_port_protocol:
            return sel_id
        return make_unique_id("n", f"{sel_id},{self.named_port_protocol},{self.named_port}")

    @property
    def type(self) -> t.IPSetType:
        if self.named_port_protocol or (self.service and self.service_include_ports):
            return t.IPSetType.IP_AND_PORT
        return t.IPSetType.NET


def _split_ports(ports: Iterable[v1.Port]) -> tuple[tuple[t.PortRange, ...], tuple[str, ...]]:
    numeric, named = [], []
    for p in ports:
        if isinstance(p, int):
            numeric.append(t.PortRange(p, p))
        elif ":" in p:
            first, last = p.split(":", 1)
            numeric.append(t.PortRange(int(first), int(last)))
        else:
            named.append(p)
    return tuple(numeric), tuple(named)


def _combine(positive: str, negated: str) -> tuple[str, str]:
    if positive and negated:
        return f"({positive}) && (!({negated}))", ""
    return positive, negated


def _ip_version(rule: v1.Rule) -> int | None:
    if rule.ip_version is not None:
        return rule.ip_version if rule.ip_version in (4, 6) else None
    if rule.protocol == "icmp":
        return 4
    if rule.protocol == "icmpv6":
        return 6
    return None


def _icmp(icmp_type: int | None, icmp_code: int | None) -> t.ICMPMatch | None:
    return None if icmp_type is None else t.ICMPMatch(icmp_type, icmp_code)


def parse_rule(rule: v1.Rule) -> tuple[t.ParsedRule, tuple[IPSetData, ...]]:
    """One rule with its selectors and named ports replaced by IP-set IDs."""
    src_text, not_src_text = _combine(rule.src_selector, rule.not_src_selector)
    dst_text, not_dst_text = _combine(rule.dst_selector, rule.not_dst_selector)
    src_sel = parse(src_text) if src_text else None
    dst_sel = parse(dst_text) if dst_text else None

    src_numeric, src_named = _split_ports(rule.src_ports)
    dst_numeric, dst_named = _split_ports(rule.dst_ports)
    not_src_numeric, not_src_named = _split_ports(rule.not_src_ports)
    not_dst_numeric, not_dst_named = _split_ports(rule.not_dst_ports)

    proto = PROTO_ANY if rule.protocol is None else protocol_from(rule.protocol)

    def named_sets(names: tuple[str, ...], sel: Selector | None) -> list[IPSetData]:
        return [IPSetData(sel or ALL, name, proto) for name in names]

    src_np = named_sets(src_named, src_sel)
    dst_np = named_sets(dst_named, dst_sel)
    not_src_np = named_sets(not_src_named, src_sel)
    not_dst_np = named_sets(not_dst_named, dst_sel)

    src_sets = [IPSetData(src_sel)] if src_sel and (src_numeric or not src_named) else []
    dst_sets = [IPSetData(dst_sel)] if dst_sel and (dst_numeric or not dst_named) else []
    not_src_sets = [IPSetData(parse(not_src_text))] if not_src_text else []
    not_dst_sets = [IPSetData(parse(not_dst_text))] if not_dst_text else []

    dst_ip_port_sets = []
    if rule.dst_service:
        dst_ip_port_sets.append(IPSetData(service=f"{rule.dst_service_namespace}/{rule.dst_service}",
                                          service_include_ports=True))
    if rule.src_service:
        src_sets.append(IPSetData(service=f"{rule.src_service_namespace}/{rule.src_service}"))

    def ids(sets: list[IPSetData]) -> tuple[str, ...]:
        return tuple(s.id for s in sets)

    parsed = t.ParsedRule(
        action=rule.action,
        ip_version=_ip_version(rule),
        protocol=rule.protocol,
        src_net=rule.src_nets,
        src_ports=src_numeric,
        src_named_port_ip_set_ids=ids(src_np),
        src_ip_set_ids=ids(src_sets),
        dst_net=rule.dst_nets,
        dst_ports=dst_numeric,
        dst_named_port_ip_set_ids=ids(dst_np),
        dst_ip_set_ids=ids(dst_sets),
        dst_ip_port_set_ids=ids(dst_ip_port_sets),
        icmp=_icmp(rule.icmp_type, rule.icmp_code),
        not_protocol=rule.not_protocol,
        not_src_net=rule.not_src_nets,
        not_src_ports=not_src_numeric,
        not_src_named_port_ip_set_ids=ids(not_src_np),
        not_src_ip_set_ids=ids(not_src_sets),
        not_dst_net=rule.not_dst_nets,
        not_dst_ports=not_dst_numeric,
        not_dst_named_port_ip_set_ids=ids(not_dst_np),
        not_dst_ip_set_ids=ids(not_dst_sets),
        not_icmp=_icmp(rule.not_icmp_type, rule.not_icmp_code),
        annotations=rule.annotations,
    )
    sets = (src_np + dst_np + not_src_np + not_dst_np + src_sets + dst_sets + dst_ip_port_sets
            + not_src_sets + not_dst_sets)
    return parsed, tuple(sets)


def scan_rules(inbound: Iterable[v1.Rule], outbound: Iterable[v1.Rule]) -> tuple[
        tuple[t.ParsedRule, ...], tuple[t.ParsedRule, ...], dict[str, IPSetData]]:
    """Both directions' parsed rules and every IP set they use, by ID."""
    sets: dict[str, IPSetData] = {}
    out = []
    for rules in (inbound, outbound):
        parsed = []
        for rule in rules:
            p, rule_sets = parse_rule(rule)
            parsed.append(p)
            for s in rule_sets:
                sets[s.id] = s
        out.append(tuple(parsed))
    return out[0], out[1], sets


def scan_policy(policy: v1.Policy) -> tuple[t.Policy, dict[str, IPSetData]]:
    """An active policy as the dataplane gets it (ActivePolicyUpdate's body).  Both
    directions' rules are always included, whatever ``types`` says: the endpoint's tier
    lists decide which direction is used."""
    inbound, outbound, sets = scan_rules(policy.inbound_rules, policy.outbound_rules)
    msg = t.Policy(
        namespace=policy.namespace,
        inbound_rules=inbound,
        outbound_rules=outbound,
        untracked=policy.do_not_track,
        pre_dnat=policy.pre_dnat,
        original_selector=str(parse(policy.selector)),
        perf_hints=policy.performance_hints,
        tier=policy.tier,
    )
    return msg, sets


# Felix's rules for a profile that is referenced but missing (or invalid): drop all.
DUMMY_DROP_RULES = v1.ProfileRules((v1.Rule(action="deny"),), (v1.Rule(action="deny"),))


def scan_profile(rules: v1.ProfileRules) -> tuple[t.Profile, dict[str, IPSetData]]:
    inbound, outbound, sets = scan_rules(rules.inbound_rules, rules.outbound_rules)
    return t.Profile(inbound, outbound), sets


class IPSetRefs:
    """Which rules (policies, profiles) use which IP sets.

    ``update(owner, sets)`` replaces an owner's sets and returns the sets that became
    used by anyone (first user) and the IDs no longer used by anyone (last user gone).
    """

    def __init__(self) -> None:
        self._by_owner: dict[object, frozenset[str]] = {}
        self._users: dict[str, set] = {}
        self.sets: dict[str, IPSetData] = {}

    def update(self, owner: object, sets: dict[str, IPSetData]) -> tuple[list[IPSetData], list[str]]:
        old = self._by_owner.get(owner, frozenset())
        new = frozenset(sets)
        if new:
            self._by_owner[owner] = new
        else:
            self._by_owner.pop(owner, None)
        activated, deactivated = [], []
        for uid in sorted(new - old):
            users = self._users.get(uid)
            if users is None:
                self._users[uid] = {owner}
                self.sets[uid] = sets[uid]
                activated.append(sets[uid])
            else:
                users.add(owner)
        for uid in sorted(old - new):
            users = self._users[uid]
            users.discard(owner)
            if not users:
                del self._users[uid]
                del self.sets[uid]
                deactivated.append(uid)
        return activated, deactivated
