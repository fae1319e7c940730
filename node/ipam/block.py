"""One allocation block as plain data, and the pure operations on it.

A block is a power-of-two slice of a pool. ``allocations[ordinal]`` points into
``attributes`` (or is None when free); ``unallocated`` is the FIFO of free ordinals, so
a new block hands out its network address first and released ordinals go to the back.
Every function here works on an in-memory ``Block``; the allocator reads one from etcd,
changes it with these functions and writes it back guarded by the revision it read.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import logging
from dataclasses import dataclass, field, replace
from typing import Iterable

from node.errors import AlreadyExists, Conflict, NotFound
from node.ipam.codec import decode_record
from node.ipam.errors import BadBlock, IPAMError, IPInCooldown
from node.model import ipam as records

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

log = logging.getLogger(__name__)

# The handle Windows nodes use to fence off the first and last addresses of a block.
WINDOWS_RESERVED_HANDLE = "windows-reserved-ipam-handle"

# Owner attribute keys (libcalico-go's AttributePod / AttributeNamespace): an owner is
# the pod these two name.
ATTRIBUTE_POD = "pod"
ATTRIBUTE_NAMESPACE = "namespace"


# --------------------------------------------------------------------------------------
# Times as metav1.Time stores them: RFC 3339, UTC, whole seconds.

def format_time(ns: int) -> str:
    return _dt.datetime.fromtimestamp(ns // 1_000_000_000, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch for an RFC 3339 time (fractions and offsets allowed)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    stamp = _dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


def sanitize_handle(handle: str) -> str:
    """Handles written by an old host-local migration can carry a '\\r' tail; drop it."""
    return handle.split("\r", 1)[0]


# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attribute:
    """What an allocation belongs to: a handle and owner attributes (``secondary``).

    ``released_at`` marks the cooldown entry a released ordinal points at until it is
    garbage-collected.
    """

    handle_id: str | None = None
    secondary: dict | None = None
    alternate: dict | None = None
    released_at: str | None = None

    @classmethod
    def from_record(cls, rec: dict) -> "Attribute":
        return cls(rec.get("handle_id"), rec.get("secondary") or None,
                   rec.get("alternateOwnerAttrs") or None, rec.get("releasedAt"))

    def to_record(self) -> dict:
        out: dict = {}
        if self.handle_id is not None:
            out["handle_id"] = self.handle_id
        if self.secondary:
            out["secondary"] = dict(self.secondary)
        if self.alternate:
            out["alternateOwnerAttrs"] = dict(self.alternate)
        if self.released_at is not None:
            out["releasedAt"] = self.released_at
        return out

    @property
    def handle(self) -> str | None:
        return sanitize_handle(self.handle_id) if self.handle_id is not None else None


@dataclass(frozen=True)
class AttributeOwner:
    """A pod, named by namespace and name, that owner attributes may belong to.

    The owner with both fields empty stands for "no owner": it matches only empty
    (absent) attributes.
    """

    namespace: str = ""
    name: str = ""

    def is_empty(self) -> bool:
        return not self.namespace and not self.name

    def matches(self, attrs: dict | None) -> bool:
        """True when ``attrs`` name this pod (both keys present and equal), or, for the
        empty owner, when ``attrs`` is empty."""
        if self.is_empty():
            return not attrs
        if not attrs or ATTRIBUTE_POD not in attrs or ATTRIBUTE_NAMESPACE not in attrs:
            return False
        return attrs[ATTRIBUTE_POD] == self.name and attrs[ATTRIBUTE_NAMESPACE] == self.namespace

    def __str__(self) -> str:
        return f"namespace={self.namespace} pod={self.name}"


@dataclass(frozen=True)
class OwnerAttributeUpdates:
    """What ``set_owner_attributes`` writes (libcalico-go's OwnerAttributeUpdates).

    For each side (active = the block record's ``secondary``, alternate =
    ``alternateOwnerAttrs``): a dict replaces the attributes, ``clear_*`` removes them,
    and neither leaves that side alone. A dict and ``clear_*`` together are refused.
    """

    active_owner_attrs: dict | None = None
    clear_active_owner: bool = False
    alternate_owner_attrs: dict | None = None
    clear_alternate_owner: bool = False

    @property
    def touches_active(self) -> bool:
        return self.active_owner_attrs is not None or self.clear_active_owner

    @property
    def touches_alternate(self) -> bool:
        return self.alternate_owner_attrs is not None or self.clear_alternate_owner


@dataclass(frozen=True)
class OwnerAttributePreconditions:
    """What the current owners must be for ``set_owner_attributes`` to write
    (libcalico-go's OwnerAttributePreconditions).

    A side's precondition is checked only when the updates change that side. An expected
    owner and ``verify_*_empty`` on the same side together are refused.
    """

    expected_active_owner: AttributeOwner | None = None
    verify_active_owner_empty: bool = False
    expected_alternate_owner: AttributeOwner | None = None
    verify_alternate_owner_empty: bool = False

    def active_owner(self) -> AttributeOwner | None:
        return AttributeOwner() if self.verify_active_owner_empty else self.expected_active_owner

    def alternate_owner(self) -> AttributeOwner | None:
        return AttributeOwner() if self.verify_alternate_owner_empty else self.expected_alternate_owner


def validate_owner_request(updates: OwnerAttributeUpdates | None,
                           preconditions: OwnerAttributePreconditions | None) -> None:
    """IPAMError for an update or precondition set that contradicts itself."""
    if updates is None:
        raise IPAMError("updates cannot be None")
    if updates.clear_active_owner and updates.active_owner_attrs is not None:
        raise IPAMError("cannot set both clear_active_owner and active_owner_attrs: they are mutually exclusive")
    if updates.clear_alternate_owner and updates.alternate_owner_attrs is not None:
        raise IPAMError("cannot set both clear_alternate_owner and alternate_owner_attrs: "
                        "they are mutually exclusive")
    if preconditions is not None:
        if preconditions.expected_active_owner is not None and preconditions.verify_active_owner_empty:
            raise IPAMError("cannot set both expected_active_owner and verify_active_owner_empty: "
                            "they are mutually exclusive")
        if preconditions.expected_alternate_owner is not None and preconditions.verify_alternate_owner_empty:
            raise IPAMError("cannot set both expected_alternate_owner and verify_alternate_owner_empty: "
                            "they are mutually exclusive")


def _check_owner(current: dict | None, expected: AttributeOwner | None, ip: Address, side: str) -> None:
    if expected is None or expected.matches(current):
        return
    found = AttributeOwner((current or {}).get(ATTRIBUTE_NAMESPACE, ""), (current or {}).get(ATTRIBUTE_POD, ""))
    raise Conflict(str(ip), f"cannot set {side}: expected {expected} but found {found}")


@dataclass(frozen=True)
class ReleaseOptions:
    """One address to release; ``handle`` and ``sequence_number`` guard against releasing
    an address that has since been reassigned."""

    address: str
    handle: str = ""
    sequence_number: int | None = None


class Reservations:
    """IPReservation CIDRs: addresses that are never handed out."""

    def __init__(self, cidrs: Iterable[str] = ()):
        """Malformed entries (validation keeps them out, other writers may not) are logged
        and skipped, as libcalico-go does."""
        self.nets: list[Network] = []
        for text in cidrs:
            text = text.strip() if isinstance(text, str) else ""
            if not text:
                continue
            try:
                net = ipaddress.ip_network(text if "/" in text else f"{text}/{32 if ':' not in text else 128}",
                                           strict=False)
            except ValueError:
                log.error("Ignoring malformed CIDR %r in IPReservation.", text)
                continue
            self.nets.append(net)

    def __bool__(self) -> bool:
        return bool(self.nets)

    def matches_ip(self, ip: Address) -> bool:
        return any(ip.version == n.version and ip in n for n in self.nets)

    def matches_whole(self, cidr: Network) -> bool:
        return any(cidr.version == n.version and cidr.subnet_of(n) for n in self.nets)

    def matches_some(self, cidr: Network) -> bool:
        return any(cidr.version == n.version and cidr.overlaps(n) for n in self.nets)


NO_RESERVATIONS = Reservations()


@dataclass
class Block:
    cidr: Network
    affinity: str | None
    allocations: list[int | None]
    unallocated: list[int] | None
    attributes: list[Attribute] | None
    sequence_number: int
    seq_for_allocation: dict[str, int] | None = field(default_factory=dict)
    claim_time: str | None = None
    deleted: bool = False
    host_affinity: str | None = None

    # -- construction and encoding ------------------------------------------------------

    @classmethod
    def new(cls, cidr: str | Network, affinity: str | None, now_ns: int) -> "Block":
        """An empty block; its sequence number starts at the creation time so a block
        that is deleted and recreated never repeats a sequence number."""
        net = ipaddress.ip_network(cidr, strict=False) if isinstance(cidr, str) else cidr
        size = net.num_addresses
        return cls(cidr=net, affinity=affinity, allocations=[None] * size, unallocated=list(range(size)),
                   attributes=None, sequence_number=now_ns, seq_for_allocation={},
                   claim_time=format_time(now_ns) if affinity else None)

    @classmethod
    def from_record(cls, rec: dict) -> "Block":
        """A block from its canonical record; BadBlock when the record cannot describe one
        (wrong sizes, indexes that point nowhere, times or sequence maps of the wrong type)."""
        cidr_text = rec.get("cidr") or ""
        try:
            net = ipaddress.ip_network(cidr_text, strict=False)
        except ValueError:
            raise BadBlock(f"IPAM block has an invalid cidr {cidr_text!r}") from None
        allocations = list(rec.get("allocations") or [])
        if len(allocations) != net.num_addresses:
            raise BadBlock(f"IPAM block {net} has {len(allocations)} allocation slots, "
                           f"expected {net.num_addresses}")
        attrs = rec.get("attributes")
        attributes = None if attrs is None else [Attribute.from_record(a or {}) for a in attrs]
        for ordinal, idx in enumerate(allocations):
            if idx is not None and (attributes is None or not 0 <= idx < len(attributes)):
                raise BadBlock(f"IPAM block {net}: allocation {ordinal} indexes a nonexistent attribute {idx}")
        for idx, attr in enumerate(attributes or []):
            if attr.released_at is not None and not isinstance(attr.released_at, str):
                raise BadBlock(f"IPAM block {net}: attribute {idx} has a releasedAt that is not a time: "
                               f"{attr.released_at!r}")
        claim_time = rec.get("affinity_claim_time")
        if claim_time is not None and not isinstance(claim_time, str):
            raise BadBlock(f"IPAM block {net}: affinity_claim_time is not a time: {claim_time!r}")
        unalloc = rec.get("unallocated")
        seqs = rec.get("sequenceNumberForAllocation")
        if seqs is not None and not (isinstance(seqs, dict) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in seqs.values())):
            raise BadBlock(f"IPAM block {net}: sequenceNumberForAllocation is not a map of ordinals to "
                           f"integers: {seqs!r}")
        return cls(cidr=net, affinity=rec.get("affinity"), allocations=allocations,
                   unallocated=None if unalloc is None else list(unalloc),
                   attributes=attributes, sequence_number=int(rec.get("sequenceNumber") or 0),
                   seq_for_allocation=None if seqs is None else {str(k): v for k, v in seqs.items()},
                   claim_time=claim_time, deleted=bool(rec.get("deleted")),
                   host_affinity=rec.get("hostAffinity"))

    @classmethod
    def decode(cls, raw: bytes | str) -> "Block":
        """A block from its stored value; BadBlock for anything Go would not unmarshal."""
        try:
            rec = decode_record("AllocationBlock", raw)
        except ValueError as exc:
            raise BadBlock(f"IPAM block value cannot be decoded: {exc}") from None
        return cls.from_record(rec)

    def to_record(self) -> dict:
        rec: dict = {"cidr": str(self.cidr), "affinity": self.affinity}
        if self.claim_time is not None:
            rec["affinity_claim_time"] = self.claim_time
        rec["allocations"] = list(self.allocations)
        rec["unallocated"] = None if self.unallocated is None else list(self.unallocated)
        rec["attributes"] = None if self.attributes is None else [a.to_record() for a in self.attributes]
        rec["sequenceNumber"] = self.sequence_number
        rec["sequenceNumberForAllocation"] = self.seq_for_allocation
        rec["deleted"] = self.deleted
        if self.host_affinity is not None:
            rec["hostAffinity"] = self.host_affinity
        return rec

    def encode(self) -> str:
        return records.encode_block(self.to_record())

    # -- addressing ---------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self.cidr.num_addresses

    def ordinal_to_ip(self, ordinal: int) -> Address:
        return self.cidr.network_address + ordinal

    def ip_to_ordinal(self, ip: Address) -> int:
        ordinal = int(ip) - int(self.cidr.network_address)
        if ip.version != self.cidr.version or not 0 <= ordinal < self.size:
            raise IPAMError(f"IP {ip} not in block {self.cidr}")
        return ordinal

    def host(self) -> str:
        """The host (or virtual owner) the block is affine to, '' when it has none."""
        if self.affinity and ":" in self.affinity:
            kind, _, host = self.affinity.partition(":")
            if kind in ("host", "virtual"):
                return host
        return ""

    def affinity_type(self) -> str:
        if self.affinity and ":" in self.affinity:
            kind = self.affinity.split(":", 1)[0]
            if kind in ("host", "virtual"):
                return kind
        return ""

    def claim_time_ns(self) -> int:
        if not self.claim_time:
            return 0
        try:
            return parse_time(self.claim_time)
        except ValueError:
            return 0

    # -- queries ------------------------------------------------------------------------

    def attribute_of(self, ordinal: int) -> Attribute | None:
        idx = self.allocations[ordinal]
        return None if idx is None else self.attributes[idx]  # type: ignore[index]

    def assignment_hazard(self) -> str | None:
        """Why handing out addresses from this block would be unsafe, or None: a free-list
        entry outside the block, listed twice, or already allocated (someone else's address)."""
        return _free_list_problem(self, {o for o, idx in enumerate(self.allocations) if idx is not None})

    def num_free(self, reservations: Reservations = NO_RESERVATIONS) -> int:
        """Addresses an assignment could take (none from a block with a broken free list)."""
        if self.assignment_hazard():
            return 0
        free = self.unallocated or []
        if not reservations or not reservations.matches_some(self.cidr):
            return len(free)
        if reservations.matches_whole(self.cidr):
            return 0
        return sum(1 for o in free if not reservations.matches_ip(self.ordinal_to_ip(o)))

    def empty(self) -> bool:
        """True when nothing but Windows-reserved addresses is allocated."""
        for ordinal in range(self.size):
            attr = self.attribute_of(ordinal)
            if attr is None:
                continue
            if attr.handle_id is None or attr.handle_id.lower() != WINDOWS_RESERVED_HANDLE:
                return False
        return True

    def in_use_ips(self) -> list[str]:
        return [str(self.ordinal_to_ip(o)) for o, idx in enumerate(self.allocations) if idx is not None]

    def _attribute_indexes_for_handle(self, handle: str) -> set[int]:
        return {i for i, a in enumerate(self.attributes or []) if a.handle == handle}

    def ips_by_handle(self, handle: str) -> list[str]:
        wanted = self._attribute_indexes_for_handle(handle)
        return [str(self.ordinal_to_ip(o)) for o, idx in enumerate(self.allocations) if idx in wanted]

    def count_by_handle(self) -> dict[str, int]:
        """Live (not cooling-down) allocations per handle: what each handle record should say."""
        counts: dict[str, int] = {}
        for ordinal in range(self.size):
            attr = self.attribute_of(ordinal)
            if attr is None or attr.released_at is not None or attr.handle is None:
                continue
            counts[attr.handle] = counts.get(attr.handle, 0) + 1
        return counts

    def attributes_for_ip(self, ip: Address) -> Attribute:
        """The allocation's handle and owner attributes; NotFound when it is free."""
        attr = self.attribute_of(self.ip_to_ordinal(ip))
        if attr is None:
            raise NotFound(str(ip), "IP is unassigned")
        if attr.released_at is not None:
            raise IPInCooldown(str(ip))
        return Attribute(attr.handle, attr.secondary, attr.alternate)

    def set_owner_attributes(self, ip: Address, handle_id: str, updates: OwnerAttributeUpdates,
                             preconditions: OwnerAttributePreconditions | None = None) -> None:
        """Change the active and/or alternate owner attributes of an allocated address.

        NotFound when the address is free, IPInCooldown while it cools down, IPAMError
        when it belongs to another handle, Conflict when a precondition does not hold
        (nothing is changed then). As in libcalico-go the attribute entry itself is
        changed, so every address of the block that shares it changes with it.
        """
        ordinal = self.ip_to_ordinal(ip)
        idx = self.allocations[ordinal]
        if idx is None:
            raise NotFound(str(ip), "IP is unassigned")
        attr = self.attributes[idx]  # type: ignore[index]
        if attr.released_at is not None:
            raise IPInCooldown(str(ip))
        if attr.handle != handle_id:
            raise IPAMError(f"IP {ip} is not assigned to handle {handle_id}")
        pre = preconditions or OwnerAttributePreconditions()
        if updates.touches_active:
            _check_owner(attr.secondary, pre.active_owner(), ip, "ActiveOwnerAttrs")
        if updates.touches_alternate:
            _check_owner(attr.alternate, pre.alternate_owner(), ip, "AlternateOwnerAttrs")
        secondary, alternate = attr.secondary, attr.alternate
        if updates.touches_active:
            secondary = None if updates.clear_active_owner else (dict(updates.active_owner_attrs) or None)
        if updates.touches_alternate:
            alternate = None if updates.clear_alternate_owner else (dict(updates.alternate_owner_attrs) or None)
        self.attributes[idx] = replace(attr, secondary=secondary, alternate=alternate)  # type: ignore[index]

    def sequence_for(self, ordinal: int) -> int:
        return (self.seq_for_allocation or {}).get(str(ordinal), 0)

    # -- changes ------------------------------------------------------------------------

    def _set_sequence(self, ordinal: int) -> None:
        if self.seq_for_allocation is None:
            self.seq_for_allocation = {}
        self.seq_for_allocation[str(ordinal)] = self.sequence_number

    def _find_or_add_attribute(self, handle: str | None, attrs: dict | None) -> int:
        wanted = Attribute(handle, dict(attrs) if attrs else None)
        if self.attributes is None:
            self.attributes = []
        for idx, existing in enumerate(self.attributes):
            if existing == wanted:
                return idx
        self.attributes.append(wanted)
        return len(self.attributes) - 1

    def _check_affinity(self, affinity: str, affinity_check: bool, mismatch: str) -> None:
        if self.affinity is None:
            if affinity_check:
                raise IPAMError(f"Attempt to assign from block {self.cidr} with no affinity")
        elif affinity_check and self.affinity != affinity:
            raise IPAMError(mismatch)

    def auto_assign(self, num: int, handle: str | None, attrs: dict | None, affinity: str,
                    affinity_check: bool, reservations: Reservations = NO_RESERVATIONS) -> list[str]:
        """Take up to ``num`` free addresses from the head of ``unallocated``."""
        self._check_affinity(affinity, affinity_check,
                             f"Block affinity ({self.affinity}) does not match provided ({affinity})")
        if self.assignment_hazard():
            return []
        taken: list[str] = []
        kept: list[int] = []
        attr_index: int | None = None
        free = self.unallocated or []
        for pos, ordinal in enumerate(free):
            if len(taken) >= num:
                kept.extend(free[pos:])
                break
            ip = self.ordinal_to_ip(ordinal)
            if reservations and reservations.matches_ip(ip):
                kept.append(ordinal)
                continue
            if attr_index is None:
                attr_index = self._find_or_add_attribute(handle, attrs)
            self.allocations[ordinal] = attr_index
            self._set_sequence(ordinal)
            taken.append(str(ip))
        if self.unallocated is not None:
            self.unallocated = kept
        return taken

    def assign(self, ip: Address, handle: str | None, attrs: dict | None, affinity: str,
               affinity_check: bool) -> None:
        """Allocate one specific address; AlreadyExists if it is taken."""
        self._check_affinity(affinity, affinity_check, "Block host affinity does not match")
        ordinal = self.ip_to_ordinal(ip)
        self._set_sequence(ordinal)
        if self.allocations[ordinal] is not None:
            raise AlreadyExists(str(ip), "Address already assigned in block")
        self.allocations[ordinal] = self._find_or_add_attribute(handle, attrs)
        if self.unallocated is not None and ordinal in self.unallocated:
            self.unallocated.remove(ordinal)

    def _add_cooldown_attribute(self, now_ns: int) -> int:
        if self.attributes is None:
            self.attributes = []
        self.attributes.append(Attribute(released_at=format_time(now_ns)))
        return len(self.attributes) - 1

    def release(self, options: list[ReleaseOptions], cooldown_s: int,
                now_ns: int) -> tuple[list[str], dict[str, int]]:
        """Release addresses; returns those that were not allocated and the count
        released per handle. A stale handle or sequence number fails the whole call."""
        unique = {}
        for opt in options:
            unique[opt.address] = opt
        not_allocated: list[str] = []
        ordinals: list[int] = []
        per_handle: dict[str, int] = {}
        for text, opt in unique.items():
            ip = ipaddress.ip_address(text)
            ordinal = self.ip_to_ordinal(ip)
            if opt.sequence_number is not None and opt.sequence_number != self.sequence_for(ordinal):
                raise Conflict(opt.address, f"the given sequence number ({opt.sequence_number}) does not match "
                                            f"({self.sequence_for(ordinal)}) when attempting to release IP")
            attr = self.attribute_of(ordinal)
            if attr is None or attr.released_at is not None:
                not_allocated.append(str(ip))
                continue
            ordinals.append(ordinal)
            handle = attr.handle or ""
            if opt.handle and handle != opt.handle:
                raise Conflict(opt.address, f"the given handle ({opt.handle}) does not match ({handle}) "
                                            "when attempting to release IP")
            if handle:
                per_handle[handle] = per_handle.get(handle, 0) + 1
        if not ordinals:
            return not_allocated, per_handle
        cooldown_index = self._add_cooldown_attribute(now_ns)
        for ordinal in ordinals:
            self.allocations[ordinal] = cooldown_index
            self._set_sequence(ordinal)
        self.garbage_collect(cooldown_s, now_ns)
        return not_allocated, per_handle

    def release_by_handle(self, handle: str, cooldown_s: int, now_ns: int,
                          sequence_number: int | None = None) -> int:
        """Release every address of ``handle``; returns how many were released."""
        indexes = self._attribute_indexes_for_handle(handle)
        if not indexes:
            return 0
        cooldown_index: int | None = None
        count = 0
        for ordinal, idx in enumerate(self.allocations):
            if idx is None or idx not in indexes:
                continue
            if sequence_number is not None and sequence_number != self.sequence_for(ordinal):
                continue
            if cooldown_index is None:
                cooldown_index = self._add_cooldown_attribute(now_ns)
            self.allocations[ordinal] = cooldown_index
            count += 1
        self.garbage_collect(cooldown_s, now_ns)
        return count

    def garbage_collect(self, cooldown_s: int, now_ns: int) -> bool:
        """Free ordinals whose cooldown has passed (to the back of ``unallocated``) and
        drop attributes nothing points at, renumbering the rest. True if anything changed."""
        changed = False
        used: set[int] = set()
        cutoff = now_ns - cooldown_s * 1_000_000_000
        for ordinal, idx in enumerate(self.allocations):
            if idx is None:
                continue
            attr = self.attributes[idx]  # type: ignore[index]
            free_it = attr.released_at is not None
            if free_it and cooldown_s > 0:
                try:
                    free_it = parse_time(attr.released_at) < cutoff  # type: ignore[arg-type]
                except ValueError:
                    free_it = True
            if free_it:
                self.allocations[ordinal] = None
                if self.unallocated is None:
                    self.unallocated = []
                self.unallocated.append(ordinal)
                if self.seq_for_allocation is not None:
                    self.seq_for_allocation.pop(str(ordinal), None)
                changed = True
            else:
                used.add(idx)
        attrs = self.attributes or []
        if len(used) != len(attrs):
            remap: dict[int, int] = {}
            kept: list[Attribute] = []
            for old, attr in enumerate(attrs):
                if old in used:
                    remap[old] = len(kept)
                    kept.append(attr)
            self.attributes = kept
            self.allocations = [None if idx is None else remap[idx] for idx in self.allocations]
            changed = True
        return changed

    def clone(self) -> "Block":
        return replace(self, allocations=list(self.allocations),
                       unallocated=None if self.unallocated is None else list(self.unallocated),
                       attributes=None if self.attributes is None else list(self.attributes),
                       seq_for_allocation=None if self.seq_for_allocation is None else dict(self.seq_for_allocation))


def validate_block(block: Block, now_ns: int) -> str | None:
    """What ``calicoctl ipam check`` finds wrong with a block's structure, or None."""
    attrs = block.attributes or []
    seen_attrs: set[int] = set()
    allocated: set[int] = set()
    for ordinal, idx in enumerate(block.allocations):
        if idx is None:
            continue
        if not 0 <= idx < len(attrs):
            return f"allocation {ordinal} indexes a nonexistent attribute {idx}"
        seen_attrs.add(idx)
        allocated.add(ordinal)
    for idx, attr in enumerate(attrs):
        if idx not in seen_attrs:
            return f"attribute index {idx} exists but is not indexed by an allocation"
        if attr.released_at is not None:
            try:
                future = parse_time(attr.released_at) > now_ns
            except ValueError:
                return f"attribute index {idx} has an unreadable releasedAt {attr.released_at!r}"
            if future:
                return f"attribute index {idx} has releasedAt in the future, suggesting clock skew"
    problem = _free_list_problem(block, allocated)
    if problem:
        return problem
    free = block.unallocated or []
    if len(free) + len(allocated) != block.size:
        return (f"expected {block.size} addresses in this block, but Unallocated ({len(free)}) + "
                f"Allocated ({len(allocated)}) = {len(free) + len(allocated)}")
    return None


def _free_list_problem(block: Block, allocated: set[int]) -> str | None:
    seen: set[int] = set()
    for ordinal in block.unallocated or []:
        if not 0 <= ordinal < len(block.allocations):
            return f"ordinal {ordinal} appears in the Unallocated array but is out of the block"
        if ordinal in seen:
            return f"ordinal {ordinal} appears more than once in Unallocated array"
        if ordinal in allocated:
            return f"ordinal {ordinal} is allocated but appears in Unallocated"
        seen.add(ordinal)
    return None
