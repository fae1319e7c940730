"""Address usage per pool and per block (``calicoctl ipam show``), as a pure computation.

Capacity and reserved space of a pool count the whole pool CIDR, including space no
block has been carved from yet; free space is what is neither allocated nor reserved.
Counts are exact: an IPv6 /48 holds 2**80 addresses (libcalico-go's master clamps them
to its int range, released calicoctl reports the real size). Blocks are listed in
address order. Blocks that no pool covers any more are grouped under "orphaned
allocation blocks" (libcalico-go gives that group the CIDR 0.0.0.0/0, so only IPv4
orphans land there).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from node.ipam.block import Block, Network, Reservations
from node.model.resource import Resource

ORPHANED = "orphaned allocation blocks"


@dataclass
class BlockUsage:
    cidr: Network
    capacity: int
    in_use: int
    reserved: int
    available: int


@dataclass
class PoolUsage:
    name: str
    cidr: Network
    blocks: list[BlockUsage] = field(default_factory=list)
    capacity: int = 0
    in_use: int = 0
    reserved: int = 0
    available: int = 0

    @property
    def orphaned(self) -> bool:
        return self.name == ORPHANED and self.cidr.prefixlen == 0


def _intersection(a: Network, b: Network) -> Network | None:
    if a.version != b.version:
        return None
    if a.subnet_of(b):  # type: ignore[arg-type]
        return a
    if b.subnet_of(a):  # type: ignore[arg-type]
        return b
    return None


def _union_size(nets: list[Network]) -> int:
    by_version: dict[int, list[Network]] = {}
    for net in nets:
        by_version.setdefault(net.version, []).append(net)
    return sum(n.num_addresses for group in by_version.values() for n in ipaddress.collapse_addresses(group))


def block_usage(block: Block, reservations: Reservations) -> BlockUsage:
    capacity = block.size
    if reservations.matches_whole(block.cidr):
        reserved = capacity
    elif reservations.matches_some(block.cidr):
        reserved = sum(1 for o in range(capacity) if reservations.matches_ip(block.ordinal_to_ip(o)))
    else:
        reserved = 0
    return BlockUsage(block.cidr, capacity, capacity - len(block.unallocated or []), reserved,
                      block.num_free(reservations))


def utilization(pools: list[Resource], blocks: list[Block], reservations: Reservations) -> list[PoolUsage]:
    usage = []
    for pool in sorted(pools, key=lambda p: p.name):
        try:
            usage.append(PoolUsage(pool.name, ipaddress.ip_network(pool.spec.get("cidr", ""), strict=False)))
        except ValueError:
            continue
    orphans = PoolUsage(ORPHANED, ipaddress.ip_network("0.0.0.0/0"))
    usage.append(orphans)
    for block in sorted(blocks, key=lambda b: (b.cidr.version, int(b.cidr.network_address), b.cidr.prefixlen)):
        for group in usage:
            if group.cidr.version == block.cidr.version and group.cidr.overlaps(block.cidr):
                group.blocks.append(block_usage(block, reservations))
                break
    for group in usage:
        if group is orphans:
            continue
        group.in_use = sum(b.in_use for b in group.blocks)
        group.available = sum(b.available for b in group.blocks)
        reserved_parts = [x for x in (_intersection(r, group.cidr) for r in reservations.nets) if x is not None]
        block_parts = [x for x in (_intersection(b.cidr, group.cidr) for b in group.blocks) if x is not None]
        reserved = _union_size(reserved_parts)
        covered = _union_size(reserved_parts + block_parts)
        group.capacity = group.cidr.num_addresses
        group.reserved = reserved
        group.available += group.cidr.num_addresses - covered
    return usage
