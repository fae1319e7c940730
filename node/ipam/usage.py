"""Address usage per pool and per block (``calicoctl ipam show``), as a pure computation.

This is libcalico-go v3.32.1's GetUtilization: one group per pool, in the order the
datastore lists the pools (by name), then a last group, "orphaned allocation blocks"
with the CIDR 0.0.0.0/0, for blocks no pool covers any more. Each block, in the order
the datastore lists them (by key: IPv4 before IPv6, and 10.0.0.128/26 before
10.0.0.64/26), joins the first group whose CIDR overlaps it; so an IPv6 block that no
pool covers belongs to no group at all. A block's capacity is its size and its free
count the length of its free list; reservations play no part (v3.32.1 counts a
reserved address as free).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from node.ipam.block import Block, Network
from node.model.resource import Resource

ORPHANED = "orphaned allocation blocks"


@dataclass
class BlockUsage:
    cidr: Network
    capacity: int
    available: int

    @property
    def in_use(self) -> int:
        return self.capacity - self.available


@dataclass
class PoolUsage:
    name: str
    cidr: Network
    blocks: list[BlockUsage] = field(default_factory=list)


def utilization(pools: list[Resource], blocks: list[Block]) -> list[PoolUsage]:
    """``pools`` and ``blocks`` in datastore order; pools whose CIDR does not parse are
    left out (libcalico-go would fail on them)."""
    usage = []
    for pool in pools:
        try:
            usage.append(PoolUsage(pool.name, ipaddress.ip_network(pool.spec.get("cidr", ""), strict=False)))
        except ValueError:
            continue
    usage.append(PoolUsage(ORPHANED, ipaddress.ip_network("0.0.0.0/0")))
    for block in blocks:
        for group in usage:
            if group.cidr.version == block.cidr.version and group.cidr.overlaps(block.cidr):
                group.blocks.append(BlockUsage(block.cidr, block.size, len(block.unallocated or [])))
                break
    return usage
