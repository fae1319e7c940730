"""Typed reads and revision-guarded writes of IPAM records in etcd.

Every write is one etcd transaction: creates are ``Version == 0``, updates and deletes
are ``ModRevision == <revision we read>``. A lost race therefore surfaces as
AlreadyExists, Conflict or NotFound, and the allocator re-reads and retries.

Other writers share these keys. Listing skips a value that does not decode, with a
warning naming its key, and reports which keys those were (``Unreadable``) so nobody
claims a block over them; reading one such key raises an error naming it (BadBlock for
blocks, DatastoreParseError for the rest).
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from node.datastore.client import DatastoreClient, DatastoreParseError, ipam_key
from node.errors import NotFound
from node.ipam.block import Block, Network
from node.ipam.codec import decode_record
from node.ipam.errors import BadBlock
from node.model import ipam as records

log = logging.getLogger(__name__)



@dataclass
class Affinity:
    """One host's claim on one block (``/calico/ipam/v2/<type>/<host>/ipvN/block/<cidr>``)."""

    host: str
    cidr: Network
    state: str
    revision: int
    affinity_type: str = "host"

    @property
    def key(self) -> str:
        return records.affinity_key(self.host, str(self.cidr), self.affinity_type)


@dataclass
class Handle:
    handle_id: str
    blocks: dict[str, int]
    revision: int = 0  # 0: not stored yet

    @property
    def key(self) -> str:
        return records.handle_key(self.handle_id)


@dataclass
class Unreadable:
    """A stored IPAM value that does not decode (the reason is logged): its key and what
    the key names."""

    key: str
    cidr: Network
    host: str = ""
    affinity_type: str = ""


def block_id(cidr: Network) -> str:
    """How handles name a block: the CIDR with its '/'."""
    return str(cidr)


class IPAMStore:
    """IPAM records over a key/value backend (``EtcdKV`` or anything with its methods)."""

    def __init__(self, kv):
        self.kv = kv

    # -- blocks -------------------------------------------------------------------------

    @staticmethod
    def decode_block(key: str, raw: bytes | str) -> Block:
        """A stored block; BadBlock naming the key when it does not decode. A block whose
        free list is broken decodes (it can still be released from and checked) but is
        logged, since no address will be assigned from it."""
        try:
            block = Block.decode(raw)
        except Exception as exc:  # noqa: BLE001 - whatever another writer stored, name the key
            raise BadBlock(f"IPAM block at {key} cannot be decoded: {exc}") from None
        hazard = block.assignment_hazard()
        if hazard:
            log.warning("IPAM block at %s is inconsistent (%s); no addresses will be assigned from it", key, hazard)
        return block

    def get_block(self, cidr: Network) -> tuple[Block, int] | None:
        key = records.block_key(str(cidr))
        item = self.kv.get(key)
        if item is None:
            return None
        return self.decode_block(key, item.value), item.mod_revision

    def scan_blocks(self, version: int | None = None) -> tuple[list[tuple[Block, int]], list[Unreadable]]:
        """Every readable block with its revision, and the blocks that do not decode (each
        logged by key): one bad block must not hide the rest."""
        items, _ = self.kv.list(records.block_prefix(version))
        out, bad = [], []
        for item in items:
            cidr = ipam_key(records.parse_block_key, item.key)
            if cidr is None:
                continue
            try:
                out.append((self.decode_block(item.key, item.value), item.mod_revision))
            except BadBlock as exc:
                log.warning("Skipping IPAM block: %s", exc)
                bad.append(Unreadable(item.key, _net(cidr)))
        return out, bad

    def list_blocks(self, version: int | None = None) -> list[tuple[Block, int]]:
        """Every readable block; a malformed one is logged (by key) and skipped."""
        return self.scan_blocks(version)[0]

    def list_block_values(self) -> list[tuple[str, bytes, int]]:
        """Raw (key, value, revision) of every block, for the checker."""
        items, _ = self.kv.list(records.block_prefix())
        return [(i.key, i.value, i.mod_revision) for i in items if ipam_key(records.parse_block_key, i.key)]

    def create_block(self, block: Block) -> int:
        return self.kv.create(records.block_key(str(block.cidr)), block.encode())

    def update_block(self, block: Block, revision: int) -> int:
        """Write a changed block; every write moves its sequence number on by one."""
        block.sequence_number += 1
        return self.kv.update(records.block_key(str(block.cidr)), block.encode(), revision)

    def delete_block(self, block: Block, revision: int) -> None:
        self.kv.delete(records.block_key(str(block.cidr)), revision)

    # -- affinities ---------------------------------------------------------------------

    def get_affinity(self, host: str, cidr: Network, affinity_type: str = "host") -> Affinity | None:
        key = records.affinity_key(host, str(cidr), affinity_type)
        item = self.kv.get(key)
        if item is None:
            return None
        return Affinity(host, cidr, _affinity_state(key, item.value), item.mod_revision, affinity_type)

    def scan_affinities(self, host: str = "", version: int | None = None,
                        affinity_type: str = "host") -> tuple[list[Affinity], list[Unreadable]]:
        """Readable affinities, and the ones that do not decode (each logged by key)."""
        items, _ = self.kv.list(records.affinity_prefix(host, version, affinity_type))
        out, bad = [], []
        for item in items:
            parsed = ipam_key(records.parse_affinity_key, item.key)
            if parsed is None:
                continue
            kind, owner, cidr = parsed
            try:
                state = _affinity_state(item.key, item.value)
            except DatastoreParseError as exc:
                log.warning("Skipping IPAM affinity: %s", exc)
                bad.append(Unreadable(item.key, _net(cidr), owner, kind))
                continue
            out.append(Affinity(owner, _net(cidr), state, item.mod_revision, kind))
        return out, bad

    def list_affinities(self, host: str = "", version: int | None = None,
                        affinity_type: str = "host") -> list[Affinity]:
        return self.scan_affinities(host, version, affinity_type)[0]

    def create_affinity(self, host: str, cidr: Network, state: str, affinity_type: str = "host") -> Affinity:
        aff = Affinity(host, cidr, state, 0, affinity_type)
        aff.revision = self.kv.create(aff.key, records.encode_affinity(state))
        return aff

    def update_affinity(self, aff: Affinity, state: str) -> Affinity:
        revision = self.kv.update(aff.key, records.encode_affinity(state), aff.revision)
        return Affinity(aff.host, aff.cidr, state, revision, aff.affinity_type)

    def delete_affinity(self, aff: Affinity) -> None:
        self.kv.delete(aff.key, aff.revision)

    # -- handles ------------------------------------------------------------------------

    def get_handle(self, handle_id: str) -> Handle | None:
        key = records.handle_key(handle_id)
        item = self.kv.get(key)
        if item is None:
            return None
        return Handle(handle_id, _handle_blocks(key, item.value), item.mod_revision)

    def require_handle(self, handle_id: str) -> Handle:
        handle = self.get_handle(handle_id)
        if handle is None:
            raise NotFound(f"IPAMHandleKey(id={handle_id})")
        return handle

    def list_handles(self) -> list[tuple[Handle | None, str, int]]:
        """(handle or None when unreadable, key, revision) for every handle key."""
        items, _ = self.kv.list(records.HANDLE_PREFIX)
        out = []
        for item in items:
            handle_id = records.parse_handle_key(item.key)
            if handle_id is None:
                continue
            try:
                out.append((Handle(handle_id, _handle_blocks(item.key, item.value), item.mod_revision),
                            item.key, item.mod_revision))
            except DatastoreParseError as exc:
                log.warning("Unreadable IPAM handle: %s", exc)
                out.append((None, item.key, item.mod_revision))
        return out

    def write_handle(self, handle: Handle) -> Handle:
        """Create (revision 0) or update the handle at the revision it was read."""
        value = records.encode_handle(handle.blocks)
        if handle.revision:
            revision = self.kv.update(handle.key, value, handle.revision)
        else:
            revision = self.kv.create(handle.key, value)
        return Handle(handle.handle_id, dict(handle.blocks), revision)

    def delete_handle(self, handle: Handle) -> None:
        self.kv.delete(handle.key, handle.revision)

    # -- configuration and reservations -------------------------------------------------

    def get_config_record(self) -> tuple[dict, int] | None:
        """The IPAM configuration; DatastoreParseError naming the key when it does not
        decode (guessing defaults could silently drop strict affinity)."""
        item = self.kv.get(records.CONFIG_KEY)
        if item is None:
            return None
        try:
            return decode_record("IPAMConfig", item.value), item.mod_revision
        except Exception as exc:  # noqa: BLE001
            raise DatastoreParseError(records.CONFIG_KEY, item.value, exc) from exc

    def put_config_record(self, value: dict) -> None:
        self.kv.put(records.CONFIG_KEY, records.encode_config(value))

    def create_config_record(self, value: dict) -> None:
        """Write the configuration only if there is none (AlreadyExists otherwise)."""
        self.kv.create(records.CONFIG_KEY, records.encode_config(value))

    def reserved_cidrs(self) -> list[str]:
        """``spec.reservedCIDRs`` of every IPReservation (the client skips unreadable ones)."""
        return [cidr for res in DatastoreClient(self.kv).list("IPReservation")
                for cidr in res.spec.get("reservedCIDRs") or []]


def _net(cidr: str) -> Network:
    return ipaddress.ip_network(cidr)


def _affinity_state(key: str, raw: bytes) -> str:
    """The affinity's state; an empty value or state reads as confirmed (older data)."""
    try:
        return decode_record("BlockAffinityValue", raw).get("state") or records.AFFINITY_CONFIRMED
    except Exception as exc:  # noqa: BLE001 - whatever another writer stored, name the key
        raise DatastoreParseError(key, raw, exc) from exc


def _handle_blocks(key: str, raw: bytes) -> dict[str, int]:
    try:
        return records.decode_handle(raw)
    except Exception as exc:  # noqa: BLE001
        raise DatastoreParseError(key, raw, exc) from exc
