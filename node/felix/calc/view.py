"""The dataplane's picture after a stream of calculation messages.

Applying every batch the calculation produced, in order, to an empty ``DataplaneView``
gives what a dataplane would hold.  It is strict about the protocol (a delta to an
unknown set, adding a member twice or removing one that is not there raises), so tests
and ``--dry-run`` printing can use it to check the stream as well as to read it.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from node.felix import types as t


class ProtocolError(AssertionError):
    """The message stream is inconsistent (a calculation bug)."""


class DataplaneView:
    def __init__(self) -> None:
        self.ipsets: dict[str, tuple[t.IPSetType, set[str]]] = {}
        self.policies: dict[t.PolicyID, t.Policy] = {}
        self.profiles: dict[str, t.Profile] = {}
        self.workload_endpoints: dict[t.WorkloadEndpointID, t.WorkloadEndpoint] = {}
        self.host_endpoints: dict[t.HostEndpointID, t.HostEndpoint] = {}
        self.pools: dict[str, t.IPAMPool] = {}
        self.hosts: dict[str, t.HostMetadata] = {}
        self.config: dict | None = None
        self.in_sync = False

    def apply(self, messages: Iterable[Any]) -> "DataplaneView":
        for msg in messages:
            self._apply(msg)
        return self

    def _apply(self, msg: Any) -> None:
        if isinstance(msg, t.IPSetUpdate):
            self.ipsets[msg.id] = (msg.type, set(msg.members))
        elif isinstance(msg, t.IPSetDeltaUpdate):
            if msg.id not in self.ipsets:
                raise ProtocolError(f"delta for unknown IP set {msg.id}")
            members = self.ipsets[msg.id][1]
            if msg.added & msg.removed:
                raise ProtocolError(f"{msg.id}: members both added and removed: {msg.added & msg.removed}")
            if msg.removed - members:
                raise ProtocolError(f"{msg.id}: removing non-members {sorted(msg.removed - members)}")
            if msg.added & members:
                raise ProtocolError(f"{msg.id}: adding existing members {sorted(msg.added & members)}")
            members -= msg.removed
            members |= msg.added
        elif isinstance(msg, t.IPSetRemove):
            self._pop(self.ipsets, msg.id, "IP set")
        elif isinstance(msg, t.ActivePolicyUpdate):
            self._check_sets(msg.policy.inbound_rules + msg.policy.outbound_rules, f"policy {msg.id.id()}")
            self.policies[msg.id] = msg.policy
        elif isinstance(msg, t.ActivePolicyRemove):
            self._pop(self.policies, msg.id, "policy")
        elif isinstance(msg, t.ActiveProfileUpdate):
            self._check_sets(msg.profile.inbound_rules + msg.profile.outbound_rules, f"profile {msg.id}")
            self.profiles[msg.id] = msg.profile
        elif isinstance(msg, t.ActiveProfileRemove):
            self._pop(self.profiles, msg.id, "profile")
        elif isinstance(msg, t.WorkloadEndpointUpdate):
            self._check_endpoint(msg.endpoint.tiers, msg.endpoint.profile_ids, msg.id)
            self.workload_endpoints[msg.id] = msg.endpoint
        elif isinstance(msg, t.WorkloadEndpointRemove):
            self._pop(self.workload_endpoints, msg.id, "workload endpoint")
        elif isinstance(msg, t.HostEndpointUpdate):
            ep = msg.endpoint
            self._check_endpoint(ep.tiers + ep.untracked_tiers + ep.pre_dnat_tiers + ep.forward_tiers,
                                 ep.profile_ids, msg.id)
            self.host_endpoints[msg.id] = msg.endpoint
        elif isinstance(msg, t.HostEndpointRemove):
            self._pop(self.host_endpoints, msg.id, "host endpoint")
        elif isinstance(msg, t.IPAMPoolUpdate):
            self.pools[msg.id] = msg.pool
        elif isinstance(msg, t.IPAMPoolRemove):
            self._pop(self.pools, msg.id, "pool")
        elif isinstance(msg, t.HostMetadataUpdate):
            self.hosts[msg.host.hostname] = msg.host
        elif isinstance(msg, t.HostMetadataRemove):
            self._pop(self.hosts, msg.hostname, "host")
        elif isinstance(msg, t.ConfigUpdate):
            self.config = msg.config
        elif isinstance(msg, t.InSync):
            self.in_sync = True
        else:
            raise ProtocolError(f"unexpected message {msg!r}")

    @staticmethod
    def _pop(table: dict, key: Any, what: str) -> None:
        if key not in table:
            raise ProtocolError(f"removal of unknown {what} {key}")
        del table[key]

    def _check_sets(self, rules: Iterable[t.ParsedRule], owner: str) -> None:
        """Every IP set a rule names must already exist (dependency order)."""
        for rule in rules:
            for field in ("src_ip_set_ids", "dst_ip_set_ids", "not_src_ip_set_ids", "not_dst_ip_set_ids",
                          "src_named_port_ip_set_ids", "dst_named_port_ip_set_ids",
                          "not_src_named_port_ip_set_ids", "not_dst_named_port_ip_set_ids",
                          "dst_ip_port_set_ids"):
                for set_id in getattr(rule, field):
                    if set_id not in self.ipsets:
                        raise ProtocolError(f"{owner} refers to IP set {set_id} before it exists")

    def _check_endpoint(self, tiers: Iterable[t.TierInfo], profile_ids: Iterable[str], ep_id: Any) -> None:
        for tier in tiers:
            for pid in tier.ingress_policies + tier.egress_policies:
                if pid not in self.policies:
                    raise ProtocolError(f"endpoint {ep_id} refers to policy {pid.id()} before it is active")
        for name in profile_ids:
            if name not in self.profiles:
                raise ProtocolError(f"endpoint {ep_id} refers to profile {name} before it is active")

    def snapshot(self) -> dict:
        """Plain, comparable data."""
        return {
            "ipsets": {k: (typ, frozenset(m)) for k, (typ, m) in self.ipsets.items()},
            "policies": dict(self.policies),
            "profiles": dict(self.profiles),
            "workload_endpoints": dict(self.workload_endpoints),
            "host_endpoints": dict(self.host_endpoints),
            "pools": dict(self.pools),
            "hosts": dict(self.hosts),
            "config": self.config,
        }
