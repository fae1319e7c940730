"""Tunnel-address reconciliation (``calico-node allocate-tunnel-addrs``).

For each tunnel type, in Calico's order (WireGuard IPv4, WireGuard IPv6, IPIP, VXLAN,
VXLAN IPv6), the node either holds exactly one address from an eligible pool, recorded
in its Node resource and allocated under the type's handle with
``{"node": <node>, "type": <type>}`` attributes, or holds none. Which pools are
eligible is a pure function of the Node and the pools; the reconcile applies the keep /
replace / release rules through the allocator and writes the Node only if it changed.
"""
from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass
from typing import Callable

from node.errors import AlreadyExists, CalicoError, NotFound
from node.ipam import pools as P
from node.ipam.allocator import IPAM
from node.ipam.block import ReleaseOptions
from node.ipam.errors import IPAMError, IPInCooldown
from node.model.resource import Resource
from node.model.schema import Collector, canonical_struct

log = logging.getLogger("node.tunnel_ip_allocator")

WIREGUARD = "wireguardTunnelAddress"
WIREGUARD_V6 = "wireguardV6TunnelAddress"
IPIP = "ipipTunnelAddress"
VXLAN = "vxlanTunnelAddress"
VXLAN_V6 = "vxlanV6TunnelAddress"
ORDER = (WIREGUARD, WIREGUARD_V6, IPIP, VXLAN, VXLAN_V6)

ENCAP_ON = ("Always", "CrossSubnet")


@dataclass(frozen=True)
class TunnelType:
    attr: str
    handle_prefix: str
    version: int
    struct: str | None  # the Node spec sub-struct holding the field, if any
    field: str


TYPES = {
    WIREGUARD: TunnelType(WIREGUARD, "wireguard-tunnel-addr", 4, "wireguard", "interfaceIPv4Address"),
    WIREGUARD_V6: TunnelType(WIREGUARD_V6, "wireguard-v6-tunnel-addr", 6, "wireguard", "interfaceIPv6Address"),
    IPIP: TunnelType(IPIP, "ipip-tunnel-addr", 4, "bgp", "ipv4IPIPTunnelAddr"),
    VXLAN: TunnelType(VXLAN, "vxlan-tunnel-addr", 4, None, "ipv4VXLANTunnelAddr"),
    VXLAN_V6: TunnelType(VXLAN_V6, "vxlan-v6-tunnel-addr", 6, None, "ipv6VXLANTunnelAddr"),
}


# --------------------------------------------------------------------------------------
# Pure part: handles, Node fields, eligible pools.

def handle_and_attrs(nodename: str, attr_type: str) -> tuple[str, dict]:
    return f"{TYPES[attr_type].handle_prefix}-{nodename}", {"node": nodename, "type": attr_type}


def tunnel_address(spec: dict, attr_type: str) -> str:
    t = TYPES[attr_type]
    holder = (spec.get(t.struct) or {}) if t.struct else spec
    return holder.get(t.field, "") or ""


def with_tunnel_address(spec: dict, attr_type: str, addr: str) -> dict:
    """A copy of a Node spec with the type's field set (or cleared when ``addr`` is '').
    A ``bgp`` or ``wireguard`` struct left empty becomes null, as Calico requires."""
    t = TYPES[attr_type]
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec.items()}
    if t.struct is None:
        if addr:
            out[t.field] = addr
        else:
            out.pop(t.field, None)
    else:
        holder = dict(out.get(t.struct) or {})
        if addr:
            holder[t.field] = addr
        else:
            holder.pop(t.field, None)
        if holder:
            out[t.struct] = holder
        else:
            out.pop(t.struct, None)
    return canonical_struct(out, "NodeSpec", "", Collector(), strict=False)


def eligible_pool_cidrs(node: Resource, pools: list[Resource], attr_type: str,
                        host_encryption: bool = False) -> list[str]:
    """CIDRs of the pools this node may take a ``attr_type`` address from, in pool order."""
    status = node.status or {}
    if attr_type in (WIREGUARD, WIREGUARD_V6):
        key = "wireguardPublicKey" if attr_type == WIREGUARD else "wireguardPublicKeyV6"
        if host_encryption or not status.get(key):
            return []
    t = TYPES[attr_type]
    out = []
    for pool in pools:
        try:
            net = P.pool_network(pool)
        except ValueError:
            log.error("IPPool %s has an invalid CIDR %r, skipping it", pool.name, pool.spec.get("cidr"))
            continue
        uses = pool.spec.get("allowedUses") or []
        if uses and P.USE_TUNNEL not in uses:
            continue
        try:
            if not P.selects_node(pool, node.labels):
                continue
        except CalicoError as exc:
            log.error("Failed to compare nodeSelector '%s' for IPPool '%s', skipping: %s",
                      pool.spec.get("nodeSelector"), pool.name, exc)
            continue
        if P.is_disabled(pool) or net.version != t.version:
            continue
        if attr_type in (IPIP,) and pool.spec.get("ipipMode") not in ENCAP_ON:
            continue
        if attr_type in (VXLAN, VXLAN_V6) and pool.spec.get("vxlanMode") not in ENCAP_ON:
            continue
        out.append(str(net))
    return out


def _in_any(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, cidrs: list[str]) -> bool:
    return any(ip in ipaddress.ip_network(c) for c in cidrs if ipaddress.ip_network(c).version == ip.version)


# --------------------------------------------------------------------------------------
# Imperative part.

class TunnelAddressAllocator:
    """Reconciles one node's tunnel addresses against the pools in the datastore."""

    def __init__(self, ipam: IPAM, nodename: str, host_encryption: bool = False):
        self.ipam = ipam
        self.nodename = nodename
        self.host_encryption = host_encryption

    def reconcile(self) -> None:
        client = self.ipam.client
        try:
            node = client.get("Node", self.nodename)
        except CalicoError as exc:
            raise IPAMError(f"failed to fetch node resource '{self.nodename}': {exc}") from exc
        try:
            pools = client.list("IPPool")
        except CalicoError as exc:
            raise IPAMError(f"unable to query IP pool configuration: {exc}") from exc
        original = node.copy()
        assigned: dict[str, str] = {}
        try:
            for attr_type in ORDER:
                cidrs = eligible_pool_cidrs(node, pools, attr_type, self.host_encryption)
                if cidrs:
                    ip = self._ensure(node, cidrs, attr_type)
                    if ip:
                        assigned[attr_type] = ip
                else:
                    self._remove(node, attr_type)
            if node.spec != original.spec:
                client.update(node)
        except BaseException:
            for attr_type, ip in assigned.items():
                handle, _ = handle_and_attrs(self.nodename, attr_type)
                try:
                    self.ipam.release_by_handle(handle)
                except Exception as exc:  # noqa: BLE001 - report the original failure
                    log.error("Error releasing IP address on failure IP=%s type=%s: %s", ip, attr_type, exc)
            raise

    def _ensure(self, node: Resource, cidrs: list[str], attr_type: str) -> str:
        """Keep a valid address, or get a new one; returns the address assigned now, if any."""
        addr = tunnel_address(node.spec, attr_type)
        handle, _ = handle_and_attrs(node.name, attr_type)
        release, assign = False, True
        if not addr:
            log.info("Assign a new tunnel address type=%s", attr_type)
            # The Node may have lost track of an allocation (edited by hand): clean up first.
            release = True
        else:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                raise IPAMError(f"failed to parse the CIDR '{addr}'") from None
            try:
                attr = self.ipam.get_assignment_attributes(ip)
            except NotFound:
                log.info("Current address is not assigned, assign a new one currentAddr=%s type=%s",
                         addr, attr_type)
                release = True
            except CalicoError as exc:
                raise IPAMError(f"failed to get assignment attributes for CIDR '{addr}': {exc}") from exc
            else:
                owner = attr.secondary or {}
                if owner.get("type") == attr_type and owner.get("node") == node.name:
                    if not _in_any(ip, cidrs):
                        log.info("Current address is not in a valid pool, release it and reassign "
                                 "currentAddr=%s type=%s", addr, attr_type)
                        release = True
                    else:
                        log.info("Current address is still valid, do nothing currentAddr=%s type=%s",
                                 addr, attr_type)
                        assign = False
                elif not owner and attr.handle_id is None:
                    # From before tunnel addresses had handles: take the same address again,
                    # this time with handle and attributes, unless someone beats us to it.
                    try:
                        self._correct_allocation(addr, node.name, attr_type)
                    except AlreadyExists as exc:
                        log.warning("Failed to correct missing attributes, will assign a new address "
                                    "type=%s: %s", attr_type, exc)
                    else:
                        log.info("Updated tunnel address with allocation attributes type=%s", attr_type)
                        return ""
                else:
                    log.info("Current address is occupied, assign a new one currentAddr=%s type=%s",
                             addr, attr_type)
        if release:
            log.info("Release any old tunnel addresses IP=%s type=%s", addr, attr_type)
            try:
                self.ipam.release_by_handle(handle)
            except NotFound:
                pass
        if not assign:
            return ""
        return self._assign(node, cidrs, attr_type)

    def _correct_allocation(self, addr: str, nodename: str, attr_type: str) -> None:
        self.ipam.release_ips([addr])
        handle, attrs = handle_and_attrs(nodename, attr_type)
        self.ipam.assign_ip(addr, handle_id=handle, attrs=attrs, host=nodename)

    def _assign(self, node: Resource, cidrs: list[str], attr_type: str) -> str:
        handle, attrs = handle_and_attrs(node.name, attr_type)
        version = TYPES[attr_type].version
        v4, v6 = self.ipam.auto_assign(num4=1 if version == 4 else 0, num6=1 if version == 6 else 0,
                                       handle_id=handle, attrs=attrs, host=node.name, pools=cidrs,
                                       intended_use=P.USE_TUNNEL)
        result = v4 if version == 4 else v6
        assert result is not None
        err = result.partial_error()
        if err is not None:
            log.error("Unable to autoassign an IPv%d address type=%s: %s", version, attr_type, err)
            raise err
        ip = result.ips[0]
        node.spec = with_tunnel_address(node.spec, attr_type, ip)
        log.info("Assigned tunnel address to node IP=%s type=%s", ip, attr_type)
        return ip

    def _remove(self, node: Resource, attr_type: str) -> None:
        """No eligible pool: clear the Node field and release what the handle holds."""
        addr = tunnel_address(node.spec, attr_type)
        if addr:
            node.spec = with_tunnel_address(node.spec, attr_type, "")
        handle, _ = handle_and_attrs(node.name, attr_type)
        try:
            self.ipam.release_by_handle(handle)
            return
        except NotFound:
            pass
        if not addr:
            return
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return
        log.info("No IPs with handle, release exact IP handle=%s type=%s", handle, attr_type)
        try:
            attr = self.ipam.get_assignment_attributes(ip)
        except (NotFound, IPInCooldown):
            return
        if not attr.secondary and attr.handle_id is None:
            self.ipam.release_ips([str(ip)])
        elif attr.handle_id == handle:
            # The handle record was lost but the allocation is ours: release it by both.
            self.ipam.release_ips([ReleaseOptions(str(ip), handle=handle)])
        else:
            log.warning("IP address has been reused by something else IP=%s attributes=%s type=%s",
                        ip, attr.secondary, attr_type)


# --------------------------------------------------------------------------------------
# Long-running form: reconcile whenever the syncer (re)gains sync, and on every relevant
# change (a pool, or this node's labels or WireGuard keys) while it is in sync.

class TunnelAddressDaemon:
    """Syncer callbacks plus the loop that reconciles when they say so.

    Reconciles happen only while the syncer is in sync. When sync is lost
    (WAIT_FOR_DATASTORE or RESYNC_IN_PROGRESS) the daemon holds: it starts no reconcile
    and does not retry a failed one, because what triggered it may be stale. Each return
    to IN_SYNC reconciles once, whether or not the re-list showed a difference, since the
    IPAM records it does not follow may have changed while it was not watching.
    """

    def __init__(self, allocator: TunnelAddressAllocator, *, retry_initial: float = 1.0, retry_max: float = 30.0):
        self.allocator = allocator
        self.nodename = allocator.nodename
        self._data: dict[str, object] = {}
        self._cond = threading.Condition()
        self._in_sync = False
        self._pending = False  # a reconcile is due (done as soon as we are in sync)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.reconciles = 0

    @property
    def in_sync(self) -> bool:
        with self._cond:
            return self._in_sync

    # Syncer callbacks (syncer thread).

    def on_status(self, status) -> None:
        from node.datastore.syncer import SyncStatus

        with self._cond:
            in_sync = status == SyncStatus.IN_SYNC
            if in_sync and not self._in_sync:
                log.info("Datastore is in sync; reconciling tunnel addresses")
                self._pending = True
            elif self._in_sync and not in_sync:
                log.info("Datastore sync lost (%s); not reconciling tunnel addresses until it is back", status)
            self._in_sync = in_sync
            self._cond.notify_all()

    def on_updates(self, updates) -> None:
        from node.datastore.syncer import UpdateType

        with self._cond:
            for update in updates:
                key = update.key
                if update.type == UpdateType.DELETED or update.value is None:
                    if self._data.pop(key, None) is not None:
                        self._pending = True
                    continue
                res = update.value
                if res.kind == "IPPool":
                    data: object = (res.spec, bool(res.metadata.get("deletionTimestamp")))
                elif res.kind == "Node":
                    if res.name != self.nodename:
                        continue
                    status = res.status or {}
                    data = (res.labels, status.get("wireguardPublicKey", ""), status.get("wireguardPublicKeyV6", ""))
                else:
                    self._pending = True
                    continue
                if self._data.get(key) != data:
                    self._data[key] = data
                    self._pending = True
            self._cond.notify_all()

    # Main loop (caller's thread).

    def _due(self) -> bool:
        return self._in_sync and self._pending

    def run(self, stop: threading.Event, on_error: Callable[[Exception], None] | None = None) -> None:
        """Reconcile whenever one is due and we are in sync, until ``stop`` is set."""
        delay = self.retry_initial
        while not stop.is_set():
            with self._cond:
                # ``stop`` is a plain Event, so look at it at least every half second.
                self._cond.wait_for(self._due, 0.5)
                if stop.is_set() or not self._due():
                    continue
                self._pending = False
            try:
                self.allocator.reconcile()
                self.reconciles += 1
                delay = self.retry_initial
            except Exception as exc:  # noqa: BLE001 - keep the role alive; retry after a pause
                log.error("failed to reconcile tunnel address: %s", exc)
                if on_error is not None:
                    on_error(exc)
                with self._cond:
                    self._pending = True  # retried once the pause is over, if still in sync
                stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
