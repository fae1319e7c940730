"""Errors raised by IPAM, worded as libcalico-go words them (operators grep for these).

Datastore-level outcomes reuse ``node.errors``: an address that is already allocated is
AlreadyExists, an unallocated one NotFound, a stale handle or sequence number Conflict.
"""
from __future__ import annotations

from node.errors import CalicoError


class IPAMError(CalicoError):
    """An IPAM request could not be satisfied."""


class NoQualifiedPool(IPAMError):
    def __init__(self, detail: str = ""):
        super().__init__("cannot find a qualified ippool" + (f", {detail}" if detail else ""))


class BlockLimit(IPAMError):
    def __init__(self) -> None:
        self.assignments = None  # set by auto_assign: the addresses assigned before the limit
        super().__init__("cannot allocate new block due to per host block limit")


class IPInCooldown(IPAMError):
    def __init__(self, ip: str):
        self.ip = ip
        super().__init__(f"address {ip} is in cooldown")


class MaxRetries(IPAMError):
    def __init__(self) -> None:
        super().__init__("Max retries hit - excessive concurrent IPAM requests")


class PartialAssignment(IPAMError):
    """Fewer addresses than requested were assigned (for example, the pools are full)."""

    def __init__(self, message: str, ips: list[str]):
        self.ips = list(ips)
        super().__init__(message)


class BadBlock(IPAMError):
    """A stored block is malformed; named by CIDR so the operator can find it."""


# Internal outcomes of the claim protocol; callers of the allocator never see these.

class NoFreeBlocks(IPAMError):
    def __init__(self) -> None:
        super().__init__("No Free Blocks")


class BlockClaimConflict(IPAMError):
    def __init__(self, cidr: str, affinity: str | None):
        self.cidr = cidr
        super().__init__(f"{cidr} already claimed by {affinity}" if affinity else f"{cidr} already claimed")


class BlockNotEmpty(IPAMError):
    def __init__(self, cidr: str):
        super().__init__(f"block '{cidr}' is not empty")


class StaleAffinity(IPAMError):
    pass
