"""Typed reads and revision-guarded writes of IPAM records in etcd.

Every write is one etcd transaction: creates are ``Version == 0``, updates and deletes
are ``ModRevision == <revision we read>``. A lost race therefore surfaces as
AlreadyExists, Conflict or NotFound, and the allocator re-reads and retries.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from node.datastore.client import DatastoreClient
from node.errors import NotFound
from node.ipam.block import Block, Network
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


def block_id(cidr: Network) -> str:
    """How handles name a block: the CIDR with its '/'."""
    return str(cidr)


class IPAMStore:
    """IPAM records over a key/value backend (``EtcdKV`` or anything with its methods)."""

    def __init__(self, kv):
        self.kv = kv

    # -- blocks -------------------------------------------------------------------------

    def get_block(self, cidr: Network) -> tuple[Block, int] | None:
        item = self.kv.get(records.block_key(str(cidr)))
        if item is None:
            return None
        return Block.decode(item.value), item.mod_revision

    def list_blocks(self, version: int | None = None) -> list[tuple[Block, int]]:
        """Every readable block; a malformed one is logged (by key) and skipped."""
        items, _ = self.kv.list(records.block_prefix(version))
        out = []
        for item in items:
            if records.parse_block_key(item.key) is None:
                continue
            try:
                out.append((Block.decode(item.value), item.mod_revision))
            except Exception as exc:  # noqa: BLE001 - one bad block must not hide the rest
                log.error("Skipping malformed IPAM block at %s: %s", item.key, exc)
        return out

    def list_block_values(self) -> list[tuple[str, bytes, int]]:
        """Raw (key, value, revision) of every block, for the checker."""
        items, _ = self.kv.list(records.block_prefix())
        return [(i.key, i.value, i.mod_revision) for i in items if records.parse_block_key(i.key)]

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
        item = self.kv.get(records.affinity_key(host, str(cidr), affinity_type))
        if item is None:
            return None
        return Affinity(host, cidr, records.decode_affinity_state(item.value), item.mod_revision, affinity_type)

    def list_affinities(self, host: str = "", version: int | None = None,
                        affinity_type: str = "host") -> list[Affinity]:
        items, _ = self.kv.list(records.affinity_prefix(host, version, affinity_type))
        out = []
        for item in items:
            parsed = records.parse_affinity_key(item.key)
            if parsed is None:
                continue
            kind, owner, cidr = parsed
            try:
                state = records.decode_affinity_state(item.value)
            except ValueError as exc:
                log.error("Skipping malformed IPAM affinity at %s: %s", item.key, exc)
                continue
            out.append(Affinity(owner, ipaddress.ip_network(cidr), state, item.mod_revision, kind))
        return out

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
        item = self.kv.get(records.handle_key(handle_id))
        if item is None:
            return None
        return Handle(handle_id, records.decode_handle(item.value), item.mod_revision)

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
                out.append((Handle(handle_id, records.decode_handle(item.value), item.mod_revision),
                            item.key, item.mod_revision))
            except ValueError as exc:
                log.error("Unreadable IPAM handle at %s: %s", item.key, exc)
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
        item = self.kv.get(records.CONFIG_KEY)
        if item is None:
            return None
        return records.decode_config(item.value), item.mod_revision

    def put_config_record(self, value: dict) -> None:
        self.kv.put(records.CONFIG_KEY, records.encode_config(value))

    def reserved_cidrs(self) -> list[str]:
        """``spec.reservedCIDRs`` of every IPReservation (the client skips unreadable ones)."""
        return [cidr for res in DatastoreClient(self.kv).list("IPReservation")
                for cidr in res.spec.get("reservedCIDRs") or []]
