"""What the renderers need to know about Felix's configuration (Felix's ``rules.Config``).

The renderers are pure functions of this dataclass plus the calculation's messages, so a
test (or the dry run) can render any configuration without the rest of the agent. Defaults
are Felix's defaults; the glue maps the resolved Felix parameters onto these fields
(``RulesConfig.from_mark_mask`` for the mark bits).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple

from node.felix.rules.core import ACCEPT, DROP, REJECT, RETURN, Action
from node.felix.types import cached_hash

DEFAULT_MARK_MASK = 0xFFFF0000


class FailsafePort(NamedTuple):
    """One failsafe entry (``[proto:][net:]port``). Any object with these three attributes
    will do, e.g. ``node.felix.config.ProtoPort``; this package does not import the config
    loader so that rendering stays a leaf with no I/O or datastore dependencies."""

    protocol: str
    port: int
    net: str = ""


DEFAULT_FAILSAFE_INBOUND = tuple(FailsafePort(p, n) for p, n in (
    ("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473),
    ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)))
DEFAULT_FAILSAFE_OUTBOUND = tuple(FailsafePort(p, n) for p, n in (
    ("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473),
    ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)))


@dataclass(frozen=True)
class MarkBits:
    accept: int
    pass_: int
    drop: int
    scratch0: int
    scratch1: int
    wireguard: int
    endpoint: int


def allocate_marks(mask: int = DEFAULT_MARK_MASK, wireguard: bool = False) -> MarkBits:
    """Felix's allocation: single bits from the lowest set bit of the mask up, in the order
    accept, pass, drop, scratch0, scratch1, (wireguard when enabled); every remaining bit
    forms the endpoint mark, which must have at least one. Raises if the mask has too few
    bits, as Felix refuses to start (its rule renderer checks every mark is set)."""
    bits = [1 << i for i in range(32) if mask & (1 << i)]
    single = 6 if wireguard else 5  # the single-bit marks
    if len(bits) <= single:
        raise ValueError(f"IptablesMarkMask {mask:#x} has {len(bits)} bits; Felix needs at least "
                         f"{single + 1} (accept, pass, drop, two scratch bits, {'WireGuard, ' if wireguard else ''}"
                         f"and at least one for the endpoint mark)")
    accept, pass_, drop, scratch0, scratch1 = bits[:5]
    wg = bits[5] if wireguard else 0
    endpoint = 0
    for b in bits[single:]:
        endpoint |= b
    return MarkBits(accept, pass_, drop, scratch0, scratch1, wg, endpoint)


_DEFAULT_MARKS = allocate_marks()


@lru_cache(maxsize=64)
def _interned(cfg: "RulesConfig") -> "RulesConfig":
    """The first of the equal configs seen lately (they are immutable, so any will do)."""
    return cfg


@cached_hash
@dataclass(frozen=True)
class RulesConfig:
    """Felix's rules.Config, with Felix's defaults."""

    workload_iface_prefixes: tuple[str, ...] = ("cali",)

    mark_accept: int = _DEFAULT_MARKS.accept
    mark_pass: int = _DEFAULT_MARKS.pass_
    mark_drop: int = _DEFAULT_MARKS.drop
    mark_scratch0: int = _DEFAULT_MARKS.scratch0
    mark_scratch1: int = _DEFAULT_MARKS.scratch1
    mark_endpoint: int = _DEFAULT_MARKS.endpoint
    mark_wireguard: int = 0
    # kube-proxy in IPVS mode (Felix turns this on when kube-ipvs0 exists): the lowest
    # endpoint-mark bit then marks packets from interfaces that are not Calico endpoints.
    kube_ipvs_support: bool = False
    mark_non_cali_endpoint: int = 0
    kube_node_port_ranges: tuple[tuple[int, int], ...] = ((30000, 32767),)

    failsafe_inbound_host_ports: tuple[FailsafePort, ...] = DEFAULT_FAILSAFE_INBOUND
    failsafe_outbound_host_ports: tuple[FailsafePort, ...] = DEFAULT_FAILSAFE_OUTBOUND

    ipip_enabled: bool = False
    ipip_tunnel_address: str = ""
    vxlan_enabled: bool = False
    vxlan_enabled_v6: bool = False
    vxlan_port: int = 4789
    vxlan_vni: int = 4096
    vxlan_tunnel_address: str = ""
    vxlan_tunnel_address_v6: str = ""
    allow_vxlan_packets_from_workloads: bool = False
    allow_ipip_packets_from_workloads: bool = False

    wireguard_enabled: bool = False
    wireguard_enabled_v6: bool = False
    wireguard_interface_name: str = "wireguard.cali"
    wireguard_interface_name_v6: str = "wg-v6.cali"
    wireguard_listening_port: int = 51820
    wireguard_listening_port_v6: int = 51821
    wireguard_encrypt_host_traffic: bool = False

    log_prefix: str = "calico-packet"
    log_action_rate_limit: str = ""
    log_action_rate_limit_burst: int = 5

    endpoint_to_host_action: str = "DROP"  # DROP | RETURN | ACCEPT (REJECT also accepted)
    filter_allow_action: str = "ACCEPT"  # ACCEPT | RETURN
    mangle_allow_action: str = "ACCEPT"  # ACCEPT | RETURN
    filter_deny_action: str = "DROP"  # DROP | REJECT

    disable_conntrack_invalid: bool = False

    nat_port_range: tuple[int, int] | None = None
    nat_outgoing_interface_filter: str = ""
    nat_outgoing_address: str = ""
    nat_outgoing_exclusions: str = "IPPoolsOnly"  # IPPoolsOnly | IPPoolsAndHostIPs

    service_loop_prevention: str = "Drop"  # Drop | Reject | Disabled

    # IstioAmbientMode=Enabled: mangle POSTROUTING marks new TCP connections between two
    # ambient-mode workloads (the "all-istio-weps" IP set) with this DSCP value.
    istio_ambient_mode_enabled: bool = False
    istio_dscp_mark: int = 23

    openstack_special_cases: bool = False
    openstack_metadata_ip: str = ""
    openstack_metadata_port: int = 8775

    # iptables/kernel features (Felix detects them): --random-fully on MASQUERADE needs
    # iptables >= 1.6.2 and kernel >= 3.14, on SNAT iptables >= 1.6.0 and kernel >= 3.14.
    masq_fully_random: bool = True
    snat_fully_random: bool = True

    @classmethod
    def from_mark_mask(cls, mask: int = DEFAULT_MARK_MASK, **kwargs) -> "RulesConfig":
        """A config whose mark bits are allocated from ``IptablesMarkMask`` as Felix does
        (a WireGuard bit only when ``wireguard_enabled`` or ``wireguard_enabled_v6``; with
        ``kube_ipvs_support`` the lowest endpoint bit is the non-Calico endpoint mark)."""
        wg = bool(kwargs.get("wireguard_enabled") or kwargs.get("wireguard_enabled_v6"))
        m = allocate_marks(mask, wireguard=wg)
        if kwargs.get("kube_ipvs_support"):
            kwargs.setdefault("mark_non_cali_endpoint", m.endpoint & -m.endpoint)
        cfg = cls(mark_accept=m.accept, mark_pass=m.pass_, mark_drop=m.drop,
                  mark_scratch0=m.scratch0, mark_scratch1=m.scratch1,
                  mark_endpoint=m.endpoint, mark_wireguard=m.wireguard, **kwargs)
        # One object per distinct value (it is immutable): the renderers' caches are keyed
        # by it, and a key found by identity skips comparing some fifty fields.
        return _interned(cfg)

    def replace(self, **changes) -> "RulesConfig":
        return replace(self, **changes)

    # Derived values ------------------------------------------------------------------

    @property
    def all_calico_mark_bits(self) -> int:
        """accept|pass|scratch0|scratch1; the drop bit is deliberately not included."""
        return self.mark_accept | self.mark_pass | self.mark_scratch0 | self.mark_scratch1

    @property
    def deny_action(self) -> Action:
        return REJECT if self.filter_deny_action == "REJECT" else DROP

    @property
    def filter_allow(self) -> Action:
        return RETURN if self.filter_allow_action == "RETURN" else ACCEPT

    @property
    def mangle_allow(self) -> Action:
        return RETURN if self.mangle_allow_action == "RETURN" else ACCEPT

    @property
    def endpoint_to_host(self) -> Action:
        return {"DROP": DROP, "REJECT": REJECT, "ACCEPT": ACCEPT}.get(
            self.endpoint_to_host_action, RETURN)

    @property
    def block_cidr_action(self) -> Action | None:
        return {"Drop": DROP, "Reject": REJECT}.get(self.service_loop_prevention)
