"""The etcd-backed allocator: calico-ipam's algorithm over revision-guarded writes.

It shares the datastore with the real CNI plugin, calicoctl and kube-controllers, so it
follows libcalico-go's protocol step for step:

* a host first uses blocks it already has an affinity for; otherwise it claims a new
  block with a pending affinity, creates the block, then confirms the affinity;
* an assignment writes the handle *before* the block, and takes the handle back if the
  block write loses its race;
* a release writes the block first and the handle after;
* every write compares the etcd revision it read and a lost race is retried (up to
  ``DATASTORE_RETRIES`` times) from a fresh read.

Deliberate differences from libcalico-go (both fix count leaks; neither changes data
layout): handles are incremented by the number of addresses actually taken from a
block (libcalico-go adds the number *requested*), and ``assign_ip`` takes its handle
increment back when its block write loses a race before retrying. One transient error
is retried instead of returned: when one of our own blocks looked free while we
searched but was filled by a concurrent request before we claimed it, the search runs
again (libcalico-go fails the request with "has 0 free ips").

Records other writers left behind are stepped around, never acted on: a block that
does not decode is skipped by the search (and its CIDR is never claimed over it), and a
block whose free list is broken (an entry listed twice, outside the block or already
allocated) yields no addresses, where libcalico-go would hand out an address that is
already someone else's. Each is logged with its key; ``ipam check`` reports them.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from node.datastore.client import DatastoreClient, DatastoreParseError
from node.errors import AlreadyExists, Conflict, NotFound
from node.ipam import pools as P
from node.ipam.block import (
    NO_RESERVATIONS,
    Address,
    Attribute,
    Block,
    Network,
    OwnerAttributePreconditions,
    OwnerAttributeUpdates,
    ReleaseOptions,
    Reservations,
    sanitize_handle,
    validate_owner_request,
)
from node.ipam.errors import (
    BadBlock,
    BlockClaimConflict,
    BlockLimit,
    BlockNotEmpty,
    IPAMError,
    MaxRetries,
    NoFreeBlocks,
    NoQualifiedPool,
    PartialAssignment,
    StaleAffinity,
)
from node.ipam.store import Affinity, Handle, IPAMStore, block_id
from node.model import ipam as records
from node.model.resource import Resource
from node.selector.errors import SelectorError

log = logging.getLogger(__name__)

DATASTORE_RETRIES = 100
# With no maxBlocksPerHost configured, a host may still hold at most this many blocks.
DEFAULT_MAX_BLOCKS_PER_HOST = 20
# Reads (and creations of the default) of the IPAM configuration before giving up.
CONFIG_CREATE_ATTEMPTS = 4
# Another host's empty block is only reclaimed once it has been claimed this long.
EMPTY_BLOCK_MIN_RECLAIM_AGE_NS = 60 * 1_000_000_000
LOAD_BALANCER_HOST = "load-balancer"

# Conditions under which a read-modify-write is simply retried from a fresh read.
_RACE = (Conflict, AlreadyExists)


@dataclass
class IPAMConfig:
    """The library configuration at ``/calico/ipam/v2/config`` (defaults when absent)."""

    strict_affinity: bool = False
    auto_allocate_blocks: bool = True
    max_blocks_per_host: int = 0
    kubevirt_vm_address_persistence: str | None = "Enabled"
    ip_cooldown_seconds: int = 0

    @classmethod
    def from_record(cls, rec: dict) -> "IPAMConfig":
        return cls(strict_affinity=bool(rec.get("strict_affinity")),
                   auto_allocate_blocks=bool(rec.get("auto_allocate_blocks")),
                   max_blocks_per_host=int(rec.get("maxBlocksPerHost") or 0),
                   kubevirt_vm_address_persistence=rec.get("kubeVirtVMAddressPersistence"),
                   ip_cooldown_seconds=int(rec.get("ipCooldownSeconds") or 0))

    def to_record(self) -> dict:
        rec: dict = {"strict_affinity": self.strict_affinity, "auto_allocate_blocks": self.auto_allocate_blocks,
                     "maxBlocksPerHost": self.max_blocks_per_host}
        if self.kubevirt_vm_address_persistence is not None:
            rec["kubeVirtVMAddressPersistence"] = self.kubevirt_vm_address_persistence
        rec["ipCooldownSeconds"] = self.ip_cooldown_seconds
        return rec


@dataclass
class Assignments:
    """What one auto-assign of one IP version produced."""

    version: int
    requested: int
    ips: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)  # each address with its block's prefix
    messages: list[str] = field(default_factory=list)

    def add_message(self, msg: str) -> None:
        if msg not in self.messages:
            self.messages.append(msg)

    def add(self, block: Block, ips: list[str]) -> None:
        self.ips.extend(ips)
        self.networks.extend(f"{ip}/{block.cidr.prefixlen}" for ip in ips)

    def partial_error(self) -> PartialAssignment | None:
        if len(self.ips) >= self.requested:
            return None
        text = f"Assigned {len(self.ips)} out of {self.requested} requested IPv{self.version} addresses"
        for msg in self.messages:
            text += f"; {msg}"
        return PartialAssignment(text, self.ips)

    def check(self) -> "Assignments":
        """Raise PartialAssignment unless every requested address was assigned."""
        err = self.partial_error()
        if err is not None:
            raise err
        return self


@dataclass
class _Claimed:
    block: Block
    revision: int


def _ip(text: str | Address) -> Address:
    if isinstance(text, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return text
    value = text.strip()
    if "/" in value:
        return ipaddress.ip_interface(value).ip
    return ipaddress.ip_address(value)


def _host(host: str | None) -> str:
    return host or socket.gethostname()


class IPAM:
    """calico-ipam over one etcd client. Safe to use from many processes at once."""

    def __init__(self, kv, *, clock_ns: Callable[[], int] = time.time_ns, retries: int = DATASTORE_RETRIES):
        self.kv = kv
        self.store = IPAMStore(kv)
        self.client = DatastoreClient(kv)
        self.clock_ns = clock_ns
        self.retries = retries

    # ----------------------------------------------------------------------------------
    # Configuration, pools, nodes

    def get_config(self) -> IPAMConfig:
        """libcalico-go's GetIPAMConfig: the configuration, written with its defaults
        first if there is none yet (so the first assignment in a cluster leaves
        ``{"auto_allocate_blocks":true,"kubeVirtVMAddressPersistence":"Enabled"}`` at
        ``/calico/ipam/v2/config``, the ``default`` IPAMConfiguration on Kubernetes).
        Another writer getting there first is fine: its record is read back."""
        for _ in range(CONFIG_CREATE_ATTEMPTS):
            got = self.store.get_config_record()
            if got is not None:
                return IPAMConfig.from_record(got[0])
            try:
                self.store.create_config_record(IPAMConfig().to_record())
            except AlreadyExists:
                log.info("Failed to create global IPAM config; another node got there first.")
                continue
        got = self.store.get_config_record()
        if got is None:
            raise IPAMError(f"failed to get ipam config after {CONFIG_CREATE_ATTEMPTS} retries")
        return IPAMConfig.from_record(got[0])

    def read_config(self) -> IPAMConfig:
        """The configuration as stored, defaults when absent, without writing it: for the
        paths (release, look-ups) that libcalico-go runs without reading it at all."""
        got = self.store.get_config_record()
        if got is None:
            return IPAMConfig()
        return IPAMConfig.from_record(got[0])

    def set_config(self, cfg: IPAMConfig) -> None:
        if not cfg.strict_affinity and not cfg.auto_allocate_blocks:
            raise IPAMError("Cannot disable 'StrictAffinity' and 'AutoAllocateBlocks' at the same time")
        if cfg.max_blocks_per_host > 0 and not cfg.strict_affinity:
            raise IPAMError("MaxBlocksPerHost requires StrictAffinity to be enabled")
        self.store.put_config_record(cfg.to_record())

    def all_pools(self) -> list[Resource]:
        return self.client.list("IPPool")

    def _enabled_pools(self, version: int) -> list[Resource]:
        return P.enabled_pools(self.all_pools(), version)

    def _reservations(self) -> Reservations:
        cidrs = self.store.reserved_cidrs()
        return Reservations(cidrs) if cidrs else NO_RESERVATIONS

    def _node_labels(self, host: str) -> dict:
        """The Node must exist: its labels decide which pools select it."""
        return self.client.get("Node", host).labels

    def _gc(self, block: Block, cfg: IPAMConfig) -> Block:
        block.garbage_collect(cfg.ip_cooldown_seconds, self.clock_ns())
        return block

    # ----------------------------------------------------------------------------------
    # Auto-assign

    def auto_assign(self, num4: int = 0, num6: int = 0, handle_id: str | None = None,
                    attrs: dict | None = None, host: str | None = None, pools: Iterable[str] | None = None,
                    intended_use: str = P.USE_WORKLOAD, *, max_blocks_per_host: int = 0,
                    namespace_labels: dict | None = None) -> tuple[Assignments | None, Assignments | None]:
        """Assign ``num4`` IPv4 and ``num6`` IPv6 addresses to ``host``.

        ``pools`` (CIDRs) restricts the choice and bypasses the pools' node selectors.
        Returns one Assignments per requested version; it may hold fewer addresses than
        requested when the pools are full (``.check()`` turns that into an error). Hard
        failures (no usable pool, the per-host block limit) raise; addresses assigned
        before the failure stay recorded under ``handle_id`` for the caller to release.
        """
        hostname = _host(host)
        log.info("Auto-assign %d ipv4, %d ipv6 addrs for host '%s'", num4, num6, hostname)
        wanted = [ipaddress.ip_network(c, strict=False) for c in (pools or [])]
        v4 = v6 = None
        if num4:
            v4 = self._auto_assign(num4, handle_id, attrs, [n for n in wanted if n.version == 4], 4, hostname,
                                   max_blocks_per_host, intended_use, namespace_labels)
        if num6:
            v6 = self._auto_assign(num6, handle_id, attrs, [n for n in wanted if n.version == 6], 6, hostname,
                                   max_blocks_per_host, intended_use, namespace_labels)
        return v4, v6

    def _affinity_for(self, host: str, use: str) -> tuple[str, str]:
        """(affinity type, affinity owner) for a request."""
        if use == P.USE_LOADBALANCER:
            return "virtual", host
        return "host", host

    def _auto_assign(self, num: int, handle: str | None, attrs: dict | None, requested: list[Network],
                     version: int, host: str, max_blocks: int, use: str,
                     namespace_labels: dict | None) -> Assignments:
        if not use:
            raise IPAMError("must specify the intended use when assigning an IP")
        aff_type, owner = self._affinity_for(host, use)
        affinity = f"{aff_type}:{owner}"
        cfg = self.get_config()
        reservations = self._reservations()
        usable, affine = self._prepare_affine_blocks(cfg, requested, version, host, use, namespace_labels)
        owned = len(affine)
        if cfg.max_blocks_per_host > 0 and max_blocks > cfg.max_blocks_per_host:
            max_blocks = cfg.max_blocks_per_host
        elif max_blocks == 0:
            max_blocks = cfg.max_blocks_per_host
        if max_blocks == 0:
            max_blocks = DEFAULT_MAX_BLOCKS_PER_HOST
        result = Assignments(version, num)
        state = _BlockFinder(self, version, aff_type, owner, usable, affine, reservations)

        rounds = 0
        while len(result.ips) < num:
            rounds += 1
            if rounds > num + self.retries:  # each round assigns or uses up a block
                raise MaxRetries()
            if owned >= max_blocks:
                state.allow_new_claim = False
            try:
                claimed, newly = state.find_or_claim(cfg, min_free=1)
            except NoFreeBlocks:
                if cfg.strict_affinity:
                    result.add_message("No more free affine blocks and strict affinity enabled")
                break
            except BlockLimit as exc:
                exc.assignments = result  # what was assigned before the limit was hit
                log.warning("Unable to allocate a new IPAM block; host already has %d blocks but "
                            "blocks per host limit is %d", owned, max_blocks)
                result.add_message(f"Need to allocate an IPAM block but could not - limit of {max_blocks} "
                                   "blocks reached for this node")
                raise
            if newly:
                owned += 1
            block, revision = claimed.block, claimed.revision
            for _ in range(self.retries):
                try:
                    ips = self._assign_from_block(cfg, block, revision, num - len(result.ips), handle, attrs,
                                                  affinity, cfg.strict_affinity, reservations)
                except _RACE + (NotFound,):
                    try:
                        got = self.store.get_block(block.cidr)
                    except BadBlock as exc:
                        log.warning("Skipping block: %s", exc)
                        break
                    if got is None:
                        break
                    block, revision = got
                    continue
                except IPAMError as exc:
                    log.warning("Failed to assign IPs in newly allocated block: %s", exc)
                    result.add_message("Failed to assign IPs in newly allocated block")
                    break
                result.add(block, ips)
                break

        if not cfg.strict_affinity and len(result.ips) < num:
            self._assign_from_non_affine(cfg, result, num, handle, attrs, usable, host, affinity, reservations)
        log.info("Auto-assigned %d out of %d IPv%ds: %s", len(result.ips), num, version, result.ips)
        return result

    def _assign_from_non_affine(self, cfg: IPAMConfig, result: Assignments, num: int, handle: str | None,
                                attrs: dict | None, usable: list[Resource], host: str, affinity: str,
                                reservations: Reservations) -> None:
        """Borrow from blocks affine to other hosts (only when strict affinity is off).

        The blocks are visited in the host's seeded order; one list up front tells us
        which of them exist, so blocks that were never created cost no round trip.
        """
        log.info("Attempting to assign %d more addresses from non-affine blocks", num - len(result.ips))
        existing = {b.cidr for b, _ in self.store.list_blocks(result.version)}
        exhausted: list[str] = []
        for pool in usable:
            walk = P.random_blocks(pool, host)
            while len(result.ips) < num:
                cidr = next(walk, None)
                if cidr is None:
                    exhausted.append(pool.spec["cidr"])
                    log.warning("All addresses exhausted in pool %s", pool.spec["cidr"])
                    break
                if cidr not in existing or (reservations and reservations.matches_whole(cidr)):
                    continue
                for _ in range(self.retries):
                    try:
                        got = self.store.get_block(cidr)
                    except BadBlock as exc:
                        log.warning("Skipping non-affine block: %s", exc)
                        break
                    if got is None:
                        break
                    block, revision = got
                    try:
                        ips = self._assign_from_block(cfg, block, revision, num - len(result.ips), handle, attrs,
                                                      affinity, False, reservations)
                    except _RACE + (NotFound,):
                        continue
                    except IPAMError as exc:
                        log.warning("Failed to assign IPs from non-affine block in pool %s: %s",
                                    pool.spec["cidr"], exc)
                        break
                    if ips:
                        log.info("Successfully assigned IPs from non-affine block %s", cidr)
                        result.add(block, ips)
                    break
        if exhausted:
            result.add_message(f"No IPs available in pools: [{' '.join(exhausted)}]")

    def _assign_from_block(self, cfg: IPAMConfig, block: Block, revision: int, num: int, handle: str | None,
                           attrs: dict | None, affinity: str, affinity_check: bool,
                           reservations: Reservations) -> list[str]:
        """Take addresses from one block: handle first, then the block (CAS)."""
        self._gc(block, cfg)
        ips = block.auto_assign(num, handle, attrs, affinity, affinity_check, reservations)
        if not ips:
            log.info("Block %s is full", block.cidr)
            return []
        if handle is not None:
            self._increment_handle(handle, block.cidr, len(ips))
        try:
            self.store.update_block(block, revision)
        except BaseException:
            if handle is not None:
                self._take_back_handle(handle, block.cidr, len(ips))
            raise
        log.info("Successfully claimed IPs: %s", ips)
        return ips

    def _take_back_handle(self, handle: str, cidr: Network, num: int) -> None:
        try:
            self._decrement_handle(handle, cidr, num)
        except Exception as exc:  # noqa: BLE001 - rollback is best effort; ipam check reports leftovers
            log.warning("Failed to decrement handle %s after a failed block write: %s", handle, exc)

    # ----------------------------------------------------------------------------------
    # Pool choice and this host's affine blocks

    def _determine_pools(self, requested: list[Network], version: int, node_labels: dict,
                         namespace_labels: dict | None) -> tuple[list[Resource], list[Resource]]:
        enabled = self._enabled_pools(version)
        by_cidr = {str(P.pool_network(p)): p for p in enabled}
        if not by_cidr:
            raise NoQualifiedPool()
        chosen = []
        for net in requested:
            pool = by_cidr.get(str(net))
            if pool is None:
                raise IPAMError(f"the given pool ({net}) does not exist, or is not enabled")
            chosen.append(pool)
        if chosen:
            return chosen, enabled
        matching = []
        for pool in enabled:
            if (pool.spec.get("assignmentMode") or "Automatic") != "Automatic":
                continue
            # A selector that does not parse fails the request, as in libcalico-go.
            try:
                node_matches = P.selects_node(pool, node_labels)
                namespace_matches = node_matches and P.selects_namespace(pool, namespace_labels)
            except SelectorError as exc:
                raise IPAMError(f"failed to determine if IPPool({pool.name}) selects this node and "
                                f"namespace: {exc}") from exc
            if not node_matches:
                log.debug("IP pool does not match this node: %s", pool.name)
                continue
            if not namespace_matches:
                continue
            matching.append(pool)
        return matching, enabled

    def _prepare_affine_blocks(self, cfg: IPAMConfig, requested: list[Network], version: int, host: str,
                               use: str, namespace_labels: dict | None) -> tuple[list[Resource], list[Network]]:
        """Usable pools, and this host's affine blocks inside them. Empty affine blocks
        of pools that no longer select the host are released on the way."""
        aff_type, owner = self._affinity_for(host, use)
        labels = {} if use == P.USE_LOADBALANCER else self._node_labels(host)
        selecting, enabled = self._determine_pools(requested, version, labels, namespace_labels)
        if not selecting:
            raise IPAMError(f"no configured Calico pools for node {host}")
        usable = P.filter_by_use(selecting, use)
        if not usable:
            raise NoQualifiedPool(f"no pools match the required use ({use})")
        affine = [a.cidr for a in self.store.list_affinities(owner, version, aff_type)]
        allowed = [c for c in affine if P.pool_for_ip(c.network_address, usable)]
        others = [c for c in affine if not P.pool_for_ip(c.network_address, usable)]
        for cidr in others:
            if P.pool_for_ip(cidr.network_address, selecting):
                continue
            pool = P.pool_for_ip(cidr.network_address, enabled)
            if pool is None or P.selects_node(pool, labels):
                continue
            for _ in range(self.retries):
                try:
                    self._release_block_affinity(cfg, owner, aff_type, cidr, require_empty=True)
                except (BlockClaimConflict, BlockNotEmpty, NotFound):
                    pass
                except _RACE:
                    continue
                log.info("Released affine block %s that no longer selects this host", cidr)
                break
        return usable, allowed

    # ----------------------------------------------------------------------------------
    # Claiming blocks

    def _block_from_affinity(self, aff: Affinity, cfg: IPAMConfig) -> _Claimed:
        """The block an affinity points at: claim it if missing, drop the affinity if the
        block belongs to someone else, finish confirming a pending affinity."""
        affinity = f"{aff.affinity_type}:{aff.host}"
        got = self.store.get_block(aff.cidr)
        if got is None:
            log.info("The referenced block %s doesn't exist, trying to create it", aff.cidr)
            aff = self.store.update_affinity(aff, records.AFFINITY_PENDING)
            return self._claim_affine_block(aff, self.get_config())
        block, revision = got
        if block.affinity != affinity:
            log.warning("Block %s does not match the affinity of %s, deleting stale affinity", aff.cidr, aff.host)
            self.store.delete_affinity(aff)
            raise StaleAffinity(f"Affinity is stale: {aff.host} {aff.cidr}")
        if aff.state != records.AFFINITY_CONFIRMED:
            log.info("Affinity for %s has not been confirmed - attempt to confirm it", aff.cidr)
            aff = self.store.update_affinity(aff, records.AFFINITY_PENDING)
            # Rewriting the block invalidates anyone working from an older read of it.
            revision = self.store.update_block(block, revision)
            self.store.update_affinity(aff, records.AFFINITY_CONFIRMED)
        return _Claimed(block, revision)

    def _pending_affinity(self, owner: str, aff_type: str, cidr: Network) -> Affinity:
        try:
            return self.store.create_affinity(owner, cidr, records.AFFINITY_PENDING, aff_type)
        except AlreadyExists:
            pass
        aff = self.store.get_affinity(owner, cidr, aff_type)
        if aff is None:
            raise Conflict(records.affinity_key(owner, str(cidr), aff_type), "affinity vanished while claiming")
        if aff.state != records.AFFINITY_CONFIRMED:
            return self.store.update_affinity(aff, records.AFFINITY_PENDING)
        return aff

    def _claim_affine_block(self, aff: Affinity, cfg: IPAMConfig) -> _Claimed:
        """Create the block for a pending affinity, then confirm the affinity."""
        affinity = f"{aff.affinity_type}:{aff.host}"
        block = Block.new(aff.cidr, affinity, self.clock_ns())
        try:
            revision = self.store.create_block(block)
        except AlreadyExists:
            got = self.store.get_block(aff.cidr)
            if got is None:
                raise Conflict(records.block_key(str(aff.cidr)), "block vanished while claiming") from None
            existing, revision = got
            self._gc(existing, cfg)
            if existing.affinity == affinity:
                log.info("Block %s is already claimed by this host, confirm the affinity", aff.cidr)
                self._confirm_affinity(aff)
                return _Claimed(existing, revision)
            log.info("Block %s is owned by %s, delete our pending affinity", aff.cidr, existing.affinity)
            try:
                self.store.delete_affinity(aff)
            except Exception as exc:  # noqa: BLE001 - a leftover pending affinity is repaired later
                log.error("Error deleting block affinity %s: %s", aff.key, exc)
            raise BlockClaimConflict(str(aff.cidr), existing.affinity) from None
        log.info("Successfully created block %s", aff.cidr)
        self._confirm_affinity(aff)
        return _Claimed(block, revision)

    def _confirm_affinity(self, aff: Affinity) -> Affinity:
        try:
            return self.store.update_affinity(aff, records.AFFINITY_CONFIRMED)
        except (Conflict, NotFound):
            current = self.store.get_affinity(aff.host, aff.cidr, aff.affinity_type)
            if current is not None and current.state == records.AFFINITY_CONFIRMED:
                return current
            raise

    def _find_usable_block(self, cfg: IPAMConfig, owner: str, aff_type: str, version: int,
                           usable: list[Resource], reservations: Reservations) -> Network:
        """A block CIDR to claim: the first unclaimed one on the host's walk, or one of
        ours with space; failing that an old enough empty block of another host."""
        if not usable:
            raise IPAMError(f"no configured Calico pools for {aff_type}:{owner}")
        ours = f"{aff_type}:{owner}"
        info: dict[Network, tuple[Block, int, int]] = {}
        readable, unreadable = self.store.scan_blocks(version)
        for block, _ in readable:
            self._gc(block, cfg)
            info[block.cidr] = (block, block.num_free(reservations), block.sequence_number)
        # A CIDR whose block, or this owner's affinity for it, does not decode is left
        # alone: claiming it would write over a record we cannot read.
        unusable = {u.cidr for u in unreadable}
        unusable |= {u.cidr for u in self.store.scan_affinities(owner, version, aff_type)[1]}
        empties: list[Block] = []
        for pool in usable:
            for cidr in P.random_blocks(pool, owner):
                if reservations and reservations.matches_whole(cidr):
                    continue
                if cidr in unusable:
                    continue
                found = info.get(cidr)
                if found is None:
                    log.info("Found free block: %s", cidr)
                    return cidr
                block, free, _ = found
                if block.affinity == ours and free:
                    return cidr
                if block.empty() and free:
                    empties.append(block)
        now = self.clock_ns()
        for block in empties:
            age = now - block.claim_time_ns()
            if age < EMPTY_BLOCK_MIN_RECLAIM_AGE_NS:
                log.info("Block %s was claimed %.1fs ago by another node, not trying to reclaim it.",
                         block.cidr, age / 1e9)
                continue
            try:
                self._release_block_affinity(cfg, block.host(), block.affinity_type() or "host", block.cidr,
                                             require_empty=True, required_sequence=info[block.cidr][2])
            except Exception as exc:  # noqa: BLE001 - try the next candidate
                log.warning("Failed to release affinity while trying to reclaim block %s: %s", block.cidr, exc)
                continue
            log.info("Reclaimed empty block: %s", block.cidr)
            return block.cidr
        log.warning("No free blocks found in any pool.")
        raise NoFreeBlocks()

    # ----------------------------------------------------------------------------------
    # Specific addresses

    def assign_ip(self, ip: str | Address, handle_id: str | None = None, attrs: dict | None = None,
                  host: str | None = None, intended_use: str = "") -> None:
        """Assign one given address (claiming its block for ``host`` if it has none).

        AlreadyExists if the address is taken.
        """
        addr = _ip(ip)
        hostname = _host(host)
        log.info("Assigning IP %s to host: %s", addr, hostname)
        aff_type, owner = self._affinity_for(hostname, intended_use)
        affinity = f"{aff_type}:{owner}"
        pool = P.pool_for_ip(addr, self._enabled_pools(addr.version))
        if pool is None:
            raise IPAMError("The provided IP address is not in a configured pool")
        if intended_use and intended_use not in P.allowed_uses(pool):
            raise IPAMError(f"IP address {addr} is in IP pool \"{pool.name}\", which is not allowed for use "
                            f"\"{intended_use}\" (allowedUses: [{' '.join(P.allowed_uses(pool))}])")
        cfg = self.get_config()
        cidr = P.block_cidr_for(addr, pool)
        for _ in range(self.retries):
            got = self.store.get_block(cidr)
            if got is None:
                try:
                    claimed = self._claim_affine_block(self._pending_affinity(owner, aff_type, cidr), cfg)
                except (BlockClaimConflict, NotFound, *_RACE):
                    continue
                block, revision = claimed.block, claimed.revision
                log.info("Claimed new block: %s", cidr)
            else:
                block, revision = got
            self._gc(block, cfg)
            block.assign(addr, handle_id, attrs, affinity, cfg.strict_affinity)
            if handle_id is not None:
                self._increment_handle(handle_id, cidr, 1)
            try:
                self.store.update_block(block, revision)
            except _RACE + (NotFound,):
                if handle_id is not None:
                    self._take_back_handle(handle_id, cidr, 1)
                continue
            except BaseException:
                if handle_id is not None:
                    self._take_back_handle(handle_id, cidr, 1)
                raise
            return
        raise MaxRetries()

    def get_assignment_attributes(self, ip: str | Address) -> Attribute:
        """The handle and owner attributes of an allocated address (``ip_info``).

        NotFound when the address is in no enabled pool, its block does not exist or it
        is not allocated; IPInCooldown while a released address cools down.
        """
        addr = _ip(ip)
        pool = P.pool_for_ip(addr, self._enabled_pools(addr.version))
        if pool is None:
            raise NotFound(str(addr), "No valid IPPool")
        cfg = self.read_config()
        cidr = P.block_cidr_for(addr, pool)
        got = self.store.get_block(cidr)
        if got is None:
            raise NotFound(f"BlockKey(cidr={cidr})")
        return self._gc(got[0], cfg).attributes_for_ip(addr)

    ip_info = get_assignment_attributes

    def set_owner_attributes(self, ip: str | Address, handle_id: str, updates: OwnerAttributeUpdates,
                             preconditions: OwnerAttributePreconditions | None = None) -> None:
        """Set or clear an allocated address's active owner attributes (the record's
        ``secondary``) and/or its alternate owner attributes (``alternateOwnerAttrs``) in
        one block write, as libcalico-go's SetOwnerAttributes does.

        The address must be allocated under ``handle_id``. ``preconditions`` name the
        owners (namespace + pod) the changed sides must have now, or that they must be
        empty. A lost compare-and-swap is redone from a fresh read, preconditions
        included, up to ``retries`` times (then MaxRetries).

        Raises IPAMError for contradictory arguments, an address in no enabled pool or
        allocated under another handle; NotFound when its block does not exist or it is
        not allocated; IPInCooldown while it cools down; Conflict when a precondition
        does not hold (re-read and decide again).
        """
        validate_owner_request(updates, preconditions)
        addr = _ip(ip)
        pool = P.pool_for_ip(addr, self._enabled_pools(addr.version))
        if pool is None:
            raise IPAMError(f"the provided IP address {addr} is not in a configured pool")
        cidr = P.block_cidr_for(addr, pool)
        cfg = self.read_config()
        log.info("Setting owner attributes of %s (handle %s): %s, preconditions %s",
                 addr, handle_id, updates, preconditions)
        for attempt in range(self.retries):
            got = self.store.get_block(cidr)
            if got is None:
                raise NotFound(f"BlockKey(cidr={cidr})")
            block, revision = got
            self._gc(block, cfg)
            block.set_owner_attributes(addr, handle_id, updates, preconditions)
            try:
                self.store.update_block(block, revision)
            except Conflict:
                log.debug("CAS error setting owner attributes of %s - retry #%d", addr, attempt)
                continue
            log.info("Successfully set owner attributes of %s", addr)
            return
        raise MaxRetries()

    def ips_by_handle(self, handle_id: str) -> list[str]:
        handle = self.store.require_handle(sanitize_handle(handle_id))
        cfg = self.read_config()
        out: list[str] = []
        for text in handle.blocks:
            try:
                got = self.store.get_block(ipaddress.ip_network(text, strict=False))
            except (BadBlock, ValueError) as exc:
                log.warning("Couldn't read block %s referenced by handle %s: %s", text, handle_id, exc)
                continue
            if got is None:
                log.warning("Couldn't read block %s referenced by handle %s", text, handle_id)
                continue
            out.extend(self._gc(got[0], cfg).ips_by_handle(handle.handle_id))
        return out

    # ----------------------------------------------------------------------------------
    # Release

    def release_ips(self, addresses: Iterable[str | ReleaseOptions]) -> list[str]:
        """Release addresses; returns those that were not allocated.

        Addresses are grouped per block so each block is written once. Every block is
        attempted; the first failure is raised afterwards.
        """
        opts = []
        for item in addresses:
            opt = item if isinstance(item, ReleaseOptions) else ReleaseOptions(str(item))
            if not opt.address:
                raise IPAMError(f"No IP address specified in options: {opt}")
            opts.append(ReleaseOptions(str(_ip(opt.address)), sanitize_handle(opt.handle), opt.sequence_number))
        all_pools = self.all_pools()
        not_allocated: list[str] = []
        by_block: dict[Network, list[ReleaseOptions]] = {}
        listed: list[Block] | None = None
        for opt in opts:
            addr = _ip(opt.address)
            pool = P.pool_for_ip(addr, all_pools)
            if pool is not None:
                cidr = P.block_cidr_for(addr, pool)
            else:
                log.warning("The IP %s is not in any configured pool, trying to find the block by full scan.", addr)
                if listed is None:
                    listed = [b for b, _ in self.store.list_blocks(addr.version)]
                cidr = next((b.cidr for b in listed if b.cidr.version == addr.version and addr in b.cidr), None)
                if cidr is None:
                    not_allocated.append(str(addr))
                    continue
            by_block.setdefault(cidr, []).append(opt)
        cfg = self.read_config()
        first_error: Exception | None = None
        for cidr, group in by_block.items():
            try:
                not_allocated.extend(self._release_from_block(cfg, cidr, group))
            except Exception as exc:  # noqa: BLE001 - finish the other blocks first
                log.error("Error releasing IPs from block %s: %s", cidr, exc)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return not_allocated

    def _release_from_block(self, cfg: IPAMConfig, cidr: Network, opts: list[ReleaseOptions]) -> list[str]:
        for attempt in range(self.retries):
            got = self.store.get_block(cidr)
            if got is None:
                return [o.address for o in opts]
            block, revision = got
            self._gc(block, cfg)
            not_allocated, per_handle = block.release(opts, cfg.ip_cooldown_seconds, self.clock_ns())
            if len(not_allocated) == len(opts):
                return not_allocated
            try:
                if block.empty() and block.affinity is None:
                    log.info("Deleting non-affine block %s", cidr)
                    self.store.delete_block(block, revision)
                else:
                    self.store.update_block(block, revision)
            except (Conflict, NotFound):
                log.warning("Failed to update block %s - retry #%d", cidr, attempt)
                continue
            for handle, count in per_handle.items():
                try:
                    self._decrement_handle(handle, cidr, count)
                except Exception as exc:  # noqa: BLE001 - the addresses are released; check reports the handle
                    log.warning("Failed to decrement handle %s: %s", handle, exc)
            self._ensure_consistent_affinity(cfg, block)
            return not_allocated
        raise MaxRetries()

    def release_by_handle(self, handle_id: str) -> None:
        """Release every address recorded under a handle; NotFound if there is no such handle."""
        handle_id = sanitize_handle(handle_id)
        handle = self.store.require_handle(handle_id)
        cfg = self.read_config()
        for text in list(handle.blocks):
            self._release_by_handle_in_block(cfg, ipaddress.ip_network(text, strict=False), handle_id)

    def _release_by_handle_in_block(self, cfg: IPAMConfig, cidr: Network, handle_id: str) -> None:
        for attempt in range(self.retries):
            got = self.store.get_block(cidr)
            if got is None:
                return
            block, revision = got
            self._gc(block, cfg)
            count = block.release_by_handle(handle_id, cfg.ip_cooldown_seconds, self.clock_ns())
            if count == 0:
                return
            try:
                if block.empty() and block.affinity is None:
                    log.info("Deleting block %s because it is now empty and has no affinity", cidr)
                    self.store.delete_block(block, revision)
                else:
                    self.store.update_block(block, revision)
            except Conflict:
                log.warning("CAS error for block %s, retry #%d", cidr, attempt)
                continue
            except NotFound:
                continue
            try:
                self._decrement_handle(handle_id, cidr, count)
            except Exception as exc:  # noqa: BLE001 - the addresses are released; check reports the handle
                log.warning("Failed to decrement handle %s: %s", handle_id, exc)
            self._ensure_consistent_affinity(cfg, block)
            return
        raise MaxRetries()

    def _ensure_consistent_affinity(self, cfg: IPAMConfig, block: Block) -> None:
        """After a release: if the block's pool no longer selects its host, give the
        (now possibly empty) block up. Best effort, like libcalico-go."""
        host = block.host()
        if not host or block.affinity_type() != "host":
            return
        try:
            try:
                labels = self._node_labels(host)
            except NotFound:
                return
            pool = P.pool_for_ip(block.cidr.network_address, self._enabled_pools(block.cidr.version))
            if pool is None or P.selects_node(pool, labels):
                return
            log.info("Pool no longer selects node %s, releasing affinity of block %s", host, block.cidr)
            self._release_block_affinity(cfg, host, "host", block.cidr, require_empty=True)
        except (BlockClaimConflict, BlockNotEmpty, NotFound):
            pass
        except Exception as exc:  # noqa: BLE001 - the release itself already succeeded
            log.warning("Error ensuring consistent affinity for block %s: %s", block.cidr, exc)

    # ----------------------------------------------------------------------------------
    # Affinities

    def _release_block_affinity(self, cfg: IPAMConfig, owner: str, aff_type: str, cidr: Network,
                                require_empty: bool, required_sequence: int | None = None) -> None:
        """Give up a host's affinity: mark it pendingDeletion, delete the block if it is
        empty (or strip its affinity if not), then delete the affinity."""
        if not owner:
            raise IPAMError("Hostname must be specified to release block affinity")
        aff = self.store.get_affinity(owner, cidr, aff_type)
        if aff is None:
            raise NotFound(records.affinity_key(owner, str(cidr), aff_type))
        got = self.store.get_block(cidr)
        if got is None:
            raise NotFound(f"BlockKey(cidr={cidr})")
        block, revision = got
        self._gc(block, cfg)
        if required_sequence is not None and required_sequence != block.sequence_number:
            raise IPAMError("IPAM block updated since we last read it")
        if block.affinity is not None and block.affinity != f"{aff_type}:{owner}":
            try:
                self.store.delete_affinity(aff)
            except Exception:  # noqa: BLE001 - stale affinities are harmless and retried later
                log.warning("Failed to delete stale affinity %s", aff.key)
            raise BlockClaimConflict(str(cidr), block.affinity)
        if require_empty and not block.empty():
            log.info("Block %s must be empty but is not empty, refusing to remove affinity.", cidr)
            raise BlockNotEmpty(str(cidr))
        aff = self.store.update_affinity(aff, records.AFFINITY_PENDING_DELETION)
        if block.empty():
            try:
                self.store.delete_block(block, revision)
            except NotFound:
                pass
        else:
            block.affinity = None
            block.claim_time = None
            self.store.update_block(block, revision)
        try:
            self.store.delete_affinity(aff)
        except NotFound:
            pass

    def release_pool_affinities(self, pool: Network) -> None:
        """Release every host's affinity for the blocks of ``pool`` (what deleting a pool
        does): empty blocks are deleted, blocks still in use lose their affinity, and the
        affinity keys go. A block that turns out to belong to someone other than the
        affinity says has its stale affinity dropped, and the pass runs again."""
        log.info("Releasing block affinities within pool '%s'", pool)
        cfg = self.read_config()
        for _ in range(self.retries):
            affinities = [a for a in self.store.list_affinities()
                          if a.cidr.version == pool.version and a.cidr.network_address in pool]
            if not affinities:
                return
            again = False
            for aff in affinities:
                for _ in range(self.retries):
                    try:
                        self._release_block_affinity(cfg, aff.host, aff.affinity_type, aff.cidr, require_empty=False)
                    except BlockClaimConflict:
                        again = True
                    except NotFound:
                        log.debug("No such block %s", aff.cidr)
                    except Conflict:
                        continue
                    except Exception as exc:
                        log.error("Error releasing affinity of %s for block %s: %s", aff.host, aff.cidr, exc)
                        raise
                    break
            if not again:
                return
        raise MaxRetries()

    def release_host_affinities(self, host: str, must_be_empty: bool = False) -> None:
        """Release every block affinity of ``host`` (both IP versions)."""
        cfg = self.read_config()
        stored: Exception | None = None
        for version in (4, 6):
            for aff in self.store.list_affinities(host, version):
                for _ in range(self.retries):
                    try:
                        self._release_block_affinity(cfg, host, "host", aff.cidr, must_be_empty)
                    except (BlockClaimConflict, NotFound):
                        pass
                    except Conflict:
                        continue
                    except Exception as exc:  # noqa: BLE001 - keep releasing the others
                        stored = stored or exc
                    break
        if stored is not None:
            raise stored

    # ----------------------------------------------------------------------------------
    # Handles

    def _increment_handle(self, handle_id: str, cidr: Network, num: int) -> None:
        for _ in range(self.retries):
            handle = self.store.get_handle(handle_id) or Handle(handle_id, {})
            key = block_id(cidr)
            handle.blocks[key] = handle.blocks.get(key, 0) + num
            try:
                self.store.write_handle(handle)
            except _RACE + (NotFound,):
                continue
            return
        raise MaxRetries()

    def _decrement_handle(self, handle_id: str, cidr: Network, num: int) -> None:
        for _ in range(self.retries):
            handle = self.store.require_handle(handle_id)
            key = block_id(cidr)
            current = handle.blocks.get(key)
            if current is None:
                raise IPAMError(f"Tried to decrement block {key} by {num} but it isn't linked to handle {handle_id}")
            if current - num < 0:
                raise IPAMError(f"Tried to decrement block {key} by {num} but it only has {current} "
                                f"addresses on handle {handle_id}")
            if current == num:
                del handle.blocks[key]
            else:
                handle.blocks[key] = current - num
            try:
                if handle.blocks:
                    self.store.write_handle(handle)
                else:
                    self.store.delete_handle(handle)
            except Conflict:
                continue
            except NotFound:
                if handle.blocks:
                    continue
            return
        raise MaxRetries()


class _BlockFinder:
    """State of one auto-assign's search: this host's remaining affine blocks, then
    new claims (unless the per-host block limit has been reached)."""

    def __init__(self, ipam: IPAM, version: int, aff_type: str, owner: str, pools: list[Resource],
                 affine: list[Network], reservations: Reservations):
        self.ipam = ipam
        self.version = version
        self.aff_type = aff_type
        self.owner = owner
        self.pools = pools
        self.remaining = list(affine)
        self.reservations = reservations
        self.allow_new_claim = True

    def find_or_claim(self, cfg: IPAMConfig, min_free: int) -> tuple[_Claimed, bool]:
        ipam = self.ipam
        while self.remaining:
            cidr = self.remaining.pop(0)
            if self.reservations and self.reservations.matches_whole(cidr):
                continue
            for _ in range(ipam.retries):
                aff = ipam.store.get_affinity(self.owner, cidr, self.aff_type)
                if aff is None:
                    break
                try:
                    claimed = ipam._block_from_affinity(aff, cfg)
                except _RACE:
                    continue
                except (IPAMError, NotFound) as exc:
                    log.warning("Couldn't get block %s for affinity, try next one: %s", cidr, exc)
                    break
                ipam._gc(claimed.block, cfg)
                if claimed.block.num_free(self.reservations) >= min_free:
                    return claimed, False
                break
        log.info("Ran out of existing affine blocks for host %s", self.owner)
        if not self.allow_new_claim:
            raise BlockLimit()
        if not cfg.auto_allocate_blocks:
            raise IPAMError("failed to find or claim a block")
        for _ in range(ipam.retries):
            subnet = ipam._find_usable_block(cfg, self.owner, self.aff_type, self.version, self.pools,
                                             self.reservations)
            for _ in range(ipam.retries):
                pending = None
                try:
                    pending = ipam._pending_affinity(self.owner, self.aff_type, subnet)
                    claimed = ipam._block_from_affinity(pending, cfg)
                except _RACE + (NotFound,):
                    continue
                except (BlockClaimConflict, StaleAffinity):
                    break
                except (BadBlock, DatastoreParseError) as exc:
                    # The block (or our affinity for it) became unreadable after the search
                    # listed it: give the claim up and search again, which now skips it.
                    log.warning("Not claiming block %s: %s", subnet, exc)
                    if pending is not None and pending.state == records.AFFINITY_PENDING:
                        try:
                            ipam.store.delete_affinity(pending)
                        except Exception as cleanup:  # noqa: BLE001 - ipam check reports leftovers
                            log.warning("Failed to delete pending affinity %s: %s", pending.key, cleanup)
                    break
                ipam._gc(claimed.block, cfg)
                free = claimed.block.num_free(self.reservations)
                if free >= min_free:
                    return claimed, True
                # One of our own blocks that looked free when we listed filled up
                # before we got to it (another request on this host): look again.
                log.info("Block '%s' has %d free ips which is less than %d ips required; looking again",
                         subnet, free, min_free)
                break
        raise MaxRetries()
