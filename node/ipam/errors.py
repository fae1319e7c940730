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


# Outcomes of node.ipam.vm.ensure_active_vm_owner_attrs (a KubeVirt live migration's
# ownership handover). ``retryable`` tells the caller whether trying again can help.

class VMOwnerError(IPAMError):
    """The target pod could not (yet) be made the active owner of the VM's addresses:
    a datastore failure, lost races beyond the retry budget, no addresses under the VM's
    handle, an address under another handle. Retry later (``__cause__``, when set, is the
    underlying error)."""

    retryable = True


class VMOwnerNotRetryable(VMOwnerError):
    """The datastore says the handover cannot happen; trying again will not help."""

    retryable = False


class AlternateOwnerEmpty(VMOwnerNotRetryable):
    """No alternate owner is recorded and the target is not the active owner: the target
    pod was deleted before it could be promoted."""

    def __init__(self, ip: str):
        self.ip = ip
        super().__init__(f"AlternateOwnerAttrs is empty for IP {ip}")


class AlternateOwnerMismatch(VMOwnerNotRetryable):
    """The recorded alternate owner is a different pod from the expected target."""

    def __init__(self, ip: str, expected: str, found: str):
        self.ip = ip
        self.expected = expected
        self.found = found
        super().__init__(f"AlternateOwnerAttrs doesn't match expected target owner for IP {ip}: "
                         f"expected {expected}, found {found}")
