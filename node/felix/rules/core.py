"""Rules, chains, match fragments, actions, rendering and rule IDs, in Felix's exact text.

Felix hands ``iptables-restore`` its own rendering of each rule (``--jump`` not ``-j``,
``--set-mark`` not ``--set-xmark``, protocol numbers as numbers...), and every ``cali:<id>``
comment is a hash over that rendering. So the strings here are not cosmetic: one space or
one ``0x`` of difference changes every ID after it in the chain, and the kernel sync would
rewrite rules that are already right. The fragment texts follow Felix's
``iptables/match_builder.go``, ``iptables/actions.go`` and ``iptables/renderer.go``.

A rule is kept as match fragments + one action + comments; its "body" (comments, matches,
action, space-joined) is computed once, because every rendering and every hash reuses it.
"""
from __future__ import annotations

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Sequence

from node.felix.types import PortRange, cached_hash

RULE_HASH_PREFIX = "cali:"
RULE_ID_LENGTH = 16
MAX_COMMENT_LENGTH = 256

# Address types for -m addrtype.
ADDR_TYPE_LOCAL = "LOCAL"


def _hex(value: int) -> str:
    """Go's ``%#x``: ``0x10000``, and ``0x0`` for zero."""
    return f"{value:#x}"


# --------------------------------------------------------------------------------------
# Match fragments.

def ports_to_multiport(ports: Iterable[PortRange | int]) -> str:
    """``80,8000:8080``: a single port as itself, a range as ``first:last``."""
    parts = []
    for p in ports:
        if isinstance(p, int):
            parts.append(str(p))
        elif p.first == p.last:
            parts.append(str(p.first))
        else:
            parts.append(f"{p.first}:{p.last}")
    return ",".join(parts)


_new_tuple = tuple.__new__


class Match(tuple):
    """An ordered tuple of match fragments with Felix's builder methods.

    Each method returns a new Match with one fragment appended, so matches can be shared
    between rules without copying surprises.
    """

    __slots__ = ()

    def __new__(cls, fragments: Iterable[str] = ()):
        return tuple.__new__(cls, fragments)

    def _add(self, fragment: str) -> "Match":
        return _new_tuple(Match, (*self, fragment))  # (Match(...) without the Python __new__)

    def __add__(self, other: Iterable[str]) -> "Match":  # type: ignore[override]
        return _new_tuple(Match, (*self, *other))

    def render(self) -> str:
        return " ".join(self)

    # Marks.
    def mark_clear(self, mark: int) -> "Match":
        if mark == 0:
            raise ValueError("zero mark")
        return self._add(f"-m mark --mark 0/{_hex(mark)}")

    def mark_not_clear(self, mark: int) -> "Match":
        if mark == 0:
            raise ValueError("zero mark")
        return self._add(f"-m mark ! --mark 0/{_hex(mark)}")

    def mark_single_bit_set(self, mark: int) -> "Match":
        if mark == 0 or mark & (mark - 1):
            raise ValueError(f"mark_single_bit_set needs exactly one bit, got {_hex(mark)}")
        return self.mark_matches_with_mask(mark, mark)

    def mark_matches_with_mask(self, mark: int, mask: int) -> "Match":
        if mask == 0 or mark & mask != mark:
            raise ValueError(f"bad mark {_hex(mark)}/{_hex(mask)}")
        return self._add(f"-m mark --mark {_hex(mark)}/{_hex(mask)}")

    def not_mark_matches_with_mask(self, mark: int, mask: int) -> "Match":
        if mask == 0 or mark & mask != mark:
            raise ValueError(f"bad mark {_hex(mark)}/{_hex(mask)}")
        return self._add(f"-m mark ! --mark {_hex(mark)}/{_hex(mask)}")

    # Interfaces, address types, conntrack.
    def in_interface(self, iface: str) -> "Match":
        return self._add(f"--in-interface {iface}")

    def out_interface(self, iface: str) -> "Match":
        return self._add(f"--out-interface {iface}")

    def rpf_check_failed(self) -> "Match":
        return self._add("-m rpfilter --invert --validmark")

    def src_addr_type(self, addr_type: str, limit_iface_out: bool) -> "Match":
        suffix = " --limit-iface-out" if limit_iface_out else ""
        return self._add(f"-m addrtype --src-type {addr_type}{suffix}")

    def not_src_addr_type(self, addr_type: str, limit_iface_out: bool) -> "Match":
        suffix = " --limit-iface-out" if limit_iface_out else ""
        return self._add(f"-m addrtype ! --src-type {addr_type}{suffix}")

    def dest_addr_type(self, addr_type: str) -> "Match":
        return self._add(f"-m addrtype --dst-type {addr_type}")

    def not_dest_addr_type(self, addr_type: str) -> "Match":
        return self._add(f"-m addrtype ! --dst-type {addr_type}")

    def conntrack_state(self, states: str) -> "Match":
        return self._add(f"-m conntrack --ctstate {states}")

    def not_conntrack_state(self, states: str) -> "Match":
        return self._add(f"-m conntrack ! --ctstate {states}")

    # Protocols and addresses.
    def protocol(self, name: str) -> "Match":
        return self._add(f"-p {name}")

    def not_protocol(self, name: str) -> "Match":
        return self._add(f"! -p {name}")

    def protocol_num(self, num: int) -> "Match":
        return self._add(f"-p {num}")

    def not_protocol_num(self, num: int) -> "Match":
        return self._add(f"! -p {num}")

    def source_net(self, net: str) -> "Match":
        return self._add(f"--source {net}")

    def not_source_net(self, net: str) -> "Match":
        return self._add(f"! --source {net}")

    def dest_net(self, net: str) -> "Match":
        return self._add(f"--destination {net}")

    def not_dest_net(self, net: str) -> "Match":
        return self._add(f"! --destination {net}")

    # IP sets.
    def source_ip_set(self, name: str) -> "Match":
        return self._add(f"-m set --match-set {name} src")

    def not_source_ip_set(self, name: str) -> "Match":
        return self._add(f"-m set ! --match-set {name} src")

    def source_ip_port_set(self, name: str) -> "Match":
        return self._add(f"-m set --match-set {name} src,src")

    def not_source_ip_port_set(self, name: str) -> "Match":
        return self._add(f"-m set ! --match-set {name} src,src")

    def dest_ip_set(self, name: str) -> "Match":
        return self._add(f"-m set --match-set {name} dst")

    def not_dest_ip_set(self, name: str) -> "Match":
        return self._add(f"-m set ! --match-set {name} dst")

    def dest_ip_port_set(self, name: str) -> "Match":
        return self._add(f"-m set --match-set {name} dst,dst")

    def not_dest_ip_port_set(self, name: str) -> "Match":
        return self._add(f"-m set ! --match-set {name} dst,dst")

    # Ports.
    def source_ports(self, *ports: int | PortRange) -> "Match":
        return self._add(f"-m multiport --source-ports {ports_to_multiport(ports)}")

    def not_source_ports(self, *ports: int | PortRange) -> "Match":
        return self._add(f"-m multiport ! --source-ports {ports_to_multiport(ports)}")

    def dest_ports(self, *ports: int | PortRange) -> "Match":
        return self._add(f"-m multiport --destination-ports {ports_to_multiport(ports)}")

    def not_dest_ports(self, *ports: int | PortRange) -> "Match":
        return self._add(f"-m multiport ! --destination-ports {ports_to_multiport(ports)}")

    def dest_port(self, port: int) -> "Match":
        return self._add(f"--dport {port}")

    # ICMP.
    def icmp_type(self, t: int) -> "Match":
        return self._add(f"-m icmp --icmp-type {t}")

    def not_icmp_type(self, t: int) -> "Match":
        return self._add(f"-m icmp ! --icmp-type {t}")

    def icmp_type_and_code(self, t: int, c: int) -> "Match":
        return self._add(f"-m icmp --icmp-type {t}/{c}")

    def not_icmp_type_and_code(self, t: int, c: int) -> "Match":
        return self._add(f"-m icmp ! --icmp-type {t}/{c}")

    def icmpv6_type(self, t: int) -> "Match":
        return self._add(f"-m icmp6 --icmpv6-type {t}")

    def not_icmpv6_type(self, t: int) -> "Match":
        return self._add(f"-m icmp6 ! --icmpv6-type {t}")

    def icmpv6_type_and_code(self, t: int, c: int) -> "Match":
        return self._add(f"-m icmp6 --icmpv6-type {t}/{c}")

    def not_icmpv6_type_and_code(self, t: int, c: int) -> "Match":
        return self._add(f"-m icmp6 ! --icmpv6-type {t}/{c}")

    # Rate limit (the rate is e.g. "50/minute").
    def limit(self, rate: str, burst: int) -> "Match":
        if burst == 0:
            return self._add(f"-m limit --limit {rate}")
        return self._add(f"-m limit --limit {rate} --limit-burst {burst}")

    def ip_set_names(self) -> list[str]:
        """The set names after every ``--match-set`` (Felix reads them back the same way)."""
        names = []
        for fragment in self:
            if "--match-set" in fragment:
                words = fragment.split(" ")
                for i, word in enumerate(words[:-1]):
                    if word == "--match-set":
                        names.append(words[i + 1])
        return names


# --------------------------------------------------------------------------------------
# Actions.

@cached_hash
@dataclass(frozen=True)
class Action:
    """One action fragment. ``target`` is the chain a jump/goto refers to (refcounting);
    ``kind`` tells verdicts apart (``return`` rules are stripped from policy chain ends);
    ``label`` is Felix's Go String() for the verdicts whose name appears in comments."""

    fragment: str
    kind: str
    target: str | None = None
    label: str = ""

    def __str__(self) -> str:
        return self.label or self.fragment


ACCEPT = Action("--jump ACCEPT", "accept", label="Accept")
DROP = Action("--jump DROP", "drop", label="Drop")
REJECT = Action("--jump REJECT", "reject", label="Reject")
RETURN = Action("--jump RETURN", "return", label="Return")
NOTRACK = Action("--jump NOTRACK", "notrack", label="NOTRACK")


@lru_cache(maxsize=8192)
def jump(target: str) -> Action:
    return Action(f"--jump {target}", "jump", target)


@lru_cache(maxsize=8192)
def goto(target: str) -> Action:
    return Action(f"--goto {target}", "goto", target)


@lru_cache(maxsize=8192)
def set_mark(mark: int) -> Action:
    """A single-value set: ``--set-mark V/V``."""
    return Action(f"--jump MARK --set-mark {_hex(mark)}/{_hex(mark)}", "mark")


@lru_cache(maxsize=8192)
def set_masked_mark(mark: int, mask: int) -> Action:
    """A masked set; a zero value renders as ``0x0/M``."""
    return Action(f"--jump MARK --set-mark {_hex(mark)}/{_hex(mask)}", "mark")


@lru_cache(maxsize=8192)
def clear_mark(mark: int) -> Action:
    """Clearing renders a literal ``0`` (``--set-mark 0/M``), unlike the masked form."""
    return Action(f"--jump MARK --set-mark 0/{_hex(mark)}", "mark")


def log(prefix: str) -> Action:
    return Action(f'--jump LOG --log-prefix "{prefix}: " --log-level 5', "log")


def masquerade(to_ports: str = "", random_fully: bool = False) -> Action:
    fully = " --random-fully" if random_fully else ""
    if to_ports:
        return Action(f"--jump MASQUERADE --to-ports {to_ports}{fully}", "masq")
    return Action(f"--jump MASQUERADE{fully}", "masq")


def limit_packet_rate(rate: int, burst: int, mark: int) -> Action:
    """Set ``mark`` on packets within ``rate`` a second (bursts of ``burst``)."""
    return Action(f"-m limit --limit {rate}/sec --limit-burst {burst} --jump MARK "
                  f"--set-mark {_hex(mark)}/{_hex(mark)}", "mark")


def limit_num_connections(limit: int) -> Action:
    """Reset a new TCP connection while ``limit`` are open (all sources counted as one)."""
    return Action(f"-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m connlimit --connlimit-above {limit} "
                  "--connlimit-mask 0 -j REJECT --reject-with tcp-reset", "reject")


def snat(to_addr: str, random_fully: bool = False) -> Action:
    fully = " --random-fully" if random_fully else ""
    return Action(f"--jump SNAT --to-source {to_addr}{fully}", "snat")


def join_host_port(host: str, port: int | str) -> str:
    """Go's net.JoinHostPort: IPv6 hosts go in brackets."""
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def dnat(addr: str, port: int = 0) -> Action:
    if port == 0:
        return Action(f"--jump DNAT --to-destination {addr}", "dnat")
    return Action(f"--jump DNAT --to-destination {join_host_port(addr, port)}", "dnat")


def dscp(value: int) -> Action:
    return Action(f"--jump DSCP --set-dscp {value}", "dscp")


# --------------------------------------------------------------------------------------
# Rules and chains.

_SHELL_UNSAFE = re.compile(r"[^\w @%+=:,./-]", re.ASCII)


@lru_cache(maxsize=4096)
def comment_fragment(text: str) -> str:
    """``-m comment --comment "<text>"`` with unsafe characters replaced by ``_`` and the
    text cut to 256 characters (iptables' limit)."""
    safe = _SHELL_UNSAFE.sub("_", text)[:MAX_COMMENT_LENGTH]
    return f'-m comment --comment "{safe}"'


_NO_MATCH = Match()


class Rule:
    """Match fragments, an optional action and comments; immutable once built."""

    __slots__ = ("match", "action", "comments", "body", "hash_tail")

    def __init__(self, match: Sequence[str] = (), action: Action | None = None,
                 comments: Sequence[str] = ()):
        if type(match) is not Match:
            match = _NO_MATCH if match == () and type(match) is tuple else Match(match)
        if type(comments) is not tuple:
            comments = tuple(comments)
        fragment = action.fragment if action is not None else ""
        if comments:
            parts = [comment_fragment(c) for c in comments]
            if match:
                parts.append(" ".join(match))
            if fragment:
                parts.append(fragment)
            body = " ".join(parts)
        elif match:  # (the same joining, without the list)
            body = f"{' '.join(match)} {fragment}" if fragment else " ".join(match)
        else:
            body = fragment
        # (Slots set through their descriptors: __setattr__ refuses, the rule being immutable.)
        _set_match(self, match)
        _set_action(self, action)
        _set_comments(self, comments)
        _set_body(self, body)
        # What the rule adds to its hash input, encoded once (rules are hashed in every
        # chain that holds them, and many are shared).
        _set_hash_tail(self, (" " + body).encode() if body else b"")

    def __setattr__(self, name, value):
        raise AttributeError("Rule is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rule):
            return NotImplemented
        return (self.match == other.match and self.action == other.action
                and self.comments == other.comments)

    def __hash__(self) -> int:
        return hash((self.match, self.action, self.comments))

    def __repr__(self) -> str:
        return f"Rule({self.body!r})"

    def with_comments(self, *extra: str) -> "Rule":
        return Rule(self.match, self.action, self.comments + tuple(extra))

    @property
    def target(self) -> str | None:
        """The chain this rule jumps or goes to, if any."""
        return self.action.target if self.action is not None else None

    def ip_set_names(self) -> list[str]:
        return self.match.ip_set_names()


_set_match, _set_action, _set_comments, _set_body, _set_hash_tail = (
    Rule.match.__set__, Rule.action.__set__, Rule.comments.__set__, Rule.body.__set__,
    Rule.hash_tail.__set__)


def _with_hash(op: str, chain: str, rule_id: str, body: str) -> str:
    head = f'{op} {chain} -m comment --comment "{RULE_HASH_PREFIX}{rule_id}"' if rule_id \
        else f"{op} {chain}"
    return f"{head} {body}" if body else head


def render_append(rule: Rule, chain: str, rule_id: str = "") -> str:
    """``-A <chain> [-m comment --comment "cali:<id>"] <body>``; no hash comment when the
    ID is empty (as Felix's unit tests render)."""
    return _with_hash("-A", chain, rule_id, rule.body)


def render_insert(rule: Rule, chain: str, rule_id: str = "", position: int | None = None) -> str:
    """``-I <chain> [<n>] ...``: Felix inserts at the top, one rule at a time, in reverse."""
    target = chain if position is None else f"{chain} {position}"
    return _with_hash("-I", target, rule_id, rule.body)


def render_replace(rule: Rule, chain: str, position: int, rule_id: str = "") -> str:
    return _with_hash("-R", f"{chain} {position}", rule_id, rule.body)


def render_delete_by_index(chain: str, position: int) -> str:
    return f"-D {chain} {position}"


def hash_input(rule: Rule, chain: str) -> str:
    """The string Felix hashes: the append rendering with the literal ``HASH`` in place of
    the hash comment."""
    body = rule.body
    return f"-A {chain} HASH {body}" if body else f"-A {chain} HASH"


class lazy_property:
    """``functools.cached_property`` without its lock (Python 3.11 takes one on every first
    computation, a measurable cost across thousands of chains): computed on first access
    and stored in the instance dict, which later accesses read directly. The values it
    caches are pure functions of immutable objects, so a race computes the same value."""

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


_ID_BYTES = RULE_ID_LENGTH * 3 // 4  # 16 base64 characters encode exactly 12 bytes
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def rule_hashes(chain_name: str, rules: Sequence[Rule]) -> list[str]:
    """Chained SHA-224 IDs: seed with the chain name, then each rule hashes the previous
    digest plus its own hash input; the ID is the first 16 base64url characters.

    The 16 characters encode exactly the digest's first 12 bytes, so the IDs of a whole
    chain are encoded in one go (12-byte groups never straddle a base64 quantum)."""
    sha224 = hashlib.sha224
    digest = sha224(chain_name.encode()).digest()
    prefix = f"-A {chain_name} HASH".encode()  # + " <body>" when there is a body
    heads = []
    for rule in rules:
        digest = sha224(digest + prefix + rule.hash_tail).digest()
        heads.append(digest[:_ID_BYTES])
    text = binascii.b2a_base64(b"".join(heads), newline=False).translate(_URLSAFE).decode()
    return [text[i:i + RULE_ID_LENGTH] for i in range(0, len(text), RULE_ID_LENGTH)]


@dataclass(frozen=True, eq=True)
class Chain:
    """A named list of rules. ``force_programming`` keeps it programmed without references
    (Felix's AssumeNeededOnEveryNode perf hint)."""

    name: str
    rules: tuple[Rule, ...] = ()
    force_programming: bool = field(default=False)

    def __post_init__(self):
        if not isinstance(self.rules, tuple):
            object.__setattr__(self, "rules", tuple(self.rules))

    @lazy_property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(rule_hashes(self.name, self.rules))

    @lazy_property
    def targets(self) -> tuple[str, ...]:
        """The chains the rules jump or go to, in rule order (repeats kept: the tables
        count one reference per rule)."""
        return tuple(r.action.target for r in self.rules
                     if r.action is not None and r.action.target is not None)

    def referenced_chains(self) -> list[str]:
        return [r.action.target for r in self.rules
                if r.action is not None and r.action.target is not None]

    def ip_set_names(self) -> list[str]:
        names: list[str] = []
        for r in self.rules:
            names.extend(r.match.ip_set_names())
        return names

    def render(self) -> list[str]:
        """Every rule as an ``-A`` line with its ``cali:`` ID (``render_append``, inlined)."""
        head = f'-A {self.name} -m comment --comment "{RULE_HASH_PREFIX}'
        return [f'{head}{i}" {r.body}' if r.body else f'{head}{i}"'
                for r, i in zip(self.rules, self.rule_ids)]


def find_chain(chains: Iterable[Chain], name: str) -> Chain | None:
    for chain in chains:
        if chain.name == name:
            return chain
    return None
