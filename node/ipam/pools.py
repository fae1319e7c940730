"""Which pools an assignment may use, and the order in which a host walks a pool's blocks.

Pure functions over IPPool resources (as the resource client returns them, with read
defaults applied) and node labels.
"""
from __future__ import annotations

import ipaddress
import random
import time
from typing import Iterator

from node.ipam.block import Address, Network
from node.model.resource import Resource
from node.selector import parse as parse_selector

USE_WORKLOAD = "Workload"
USE_TUNNEL = "Tunnel"
USE_LOADBALANCER = "LoadBalancer"
DEFAULT_ALLOWED_USES = (USE_WORKLOAD, USE_TUNNEL)


def pool_network(pool: Resource) -> Network:
    return ipaddress.ip_network(pool.spec.get("cidr", ""), strict=False)


def block_size(pool: Resource) -> int:
    size = pool.spec.get("blockSize")
    if size:
        return int(size)
    return 26 if pool_network(pool).version == 4 else 122


def allowed_uses(pool: Resource) -> list[str]:
    return list(pool.spec.get("allowedUses") or DEFAULT_ALLOWED_USES)


def is_disabled(pool: Resource) -> bool:
    """Explicitly disabled, or being deleted."""
    return bool(pool.spec.get("disabled")) or bool(pool.metadata.get("deletionTimestamp"))


def marked_unallocatable(pool: Resource) -> bool:
    """kube-controllers' IP pool controller has set the pool's ``Allocatable`` condition to
    False: the pool is disabled, terminating, or overlaps a pool that is already active.
    libcalico-go's pool accessor leaves such a pool out of the enabled pools, so no
    address may come from it (two allocators using overlapping pools of different block
    sizes would each compute a different block for the same address)."""
    for cond in (pool.status or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Allocatable" and cond.get("status") == "False":
            return True
    return False


def enabled_pools(pools: list[Resource], version: int) -> list[Resource]:
    """Pools IPAM may assign from, in name order: not disabled, not being deleted and not
    marked unallocatable; pools with unreadable CIDRs are skipped."""
    out = []
    for pool in pools:
        try:
            net = pool_network(pool)
        except ValueError:
            continue
        if net.version == version and not is_disabled(pool) and not marked_unallocatable(pool):
            out.append(pool)
    return sorted(out, key=lambda p: p.name)


def selects(selector: str, labels: dict) -> bool:
    """An empty selector selects everything; a bad one raises SelectorError."""
    if not selector or not selector.strip():
        return True
    return parse_selector(selector).evaluate(labels or {})


def selects_node(pool: Resource, node_labels: dict) -> bool:
    return selects(pool.spec.get("nodeSelector", ""), node_labels)


def selects_namespace(pool: Resource, namespace_labels: dict | None) -> bool:
    return selects(pool.spec.get("namespaceSelector", ""), namespace_labels or {})


def filter_by_use(pools: list[Resource], use: str) -> list[Resource]:
    return [p for p in pools if use in allowed_uses(p)]


def pool_for_ip(ip: Address, pools: list[Resource]) -> Resource | None:
    for pool in pools:
        try:
            net = pool_network(pool)
        except ValueError:
            continue
        if net.version == ip.version and ip in net:
            return pool
    return None


def block_cidr_for(ip: Address, pool: Resource) -> Network:
    """The block of ``pool`` that contains ``ip``."""
    return ipaddress.ip_network(f"{ip}/{block_size(pool)}", strict=False)


def blocks_within(cidr: Network, pool: Resource) -> Iterator[Network]:
    """Every block-sized subnet of ``cidr`` (which must be at least one block)."""
    size = block_size(pool)
    if cidr.prefixlen > size:
        return iter(())
    return cidr.subnets(new_prefix=size)


def fnv1_32(data: bytes) -> int:
    """32-bit FNV-1 (multiply, then xor), the hash Calico seeds a host's block walk with."""
    h = 0x811C9DC5
    for byte in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= byte
    return h


def walk_seed(host: str, prefixlen: int, max_prefixlen: int) -> int:
    """The same host starts its walk at the same block, so a burst of requests on one
    host lands in one block; single-address blocks use the clock instead."""
    if prefixlen == max_prefixlen:
        return time.time_ns()
    return fnv1_32(host.encode())


def random_blocks(pool: Resource, host: str) -> Iterator[Network]:
    """Every block of ``pool`` exactly once, starting at a host-seeded index and wrapping."""
    net = pool_network(pool)
    size = block_size(pool)
    if size < net.prefixlen:
        return
    count = 1 << (size - net.prefixlen)
    step = 1 << (net.max_prefixlen - size)
    start = random.Random(walk_seed(host, size, net.max_prefixlen)).randrange(count)
    base = int(net.network_address)
    cls = type(net)
    for i in range(count):
        index = (start + i) % count
        yield cls((base + index * step, size))
