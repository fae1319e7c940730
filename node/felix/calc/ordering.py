"""Policy ordering and an endpoint's tier lists (Felix's policy sorter and the tier split
in its event sequencer), as pure functions.

* Tiers: tiers with a Tier resource first, then ascending ``order`` with no order last,
  then name.  A tier that exists only because a policy names it sorts after every real
  tier and, having no default action of Pass, ends with a drop.
* Policies in a tier: ascending ``order`` (none is +inf), ties broken by the string
  ``"<name>/<namespace>/<kind>"``.
* Per endpoint: keep the tiers with a policy that applies to it, then split them into the
  normal, untracked (doNotTrack), pre-DNAT (ingress only) and forward (applyOnForward)
  lists; untracked and pre-DNAT tiers always pass at their end.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from node.felix import types as t
from node.felix.calc import v1

DEFAULT_ACTION_DENY = "Deny"
DEFAULT_ACTION_PASS = "Pass"


@dataclass(frozen=True)
class PolicyMeta:
    """What ordering needs of a policy (Felix's policyMetadata)."""

    tier: str
    order: float = math.inf
    flags: int = 0

    @property
    def do_not_track(self) -> bool:
        return bool(self.flags & v1.FLAG_DO_NOT_TRACK)

    @property
    def pre_dnat(self) -> bool:
        return bool(self.flags & v1.FLAG_PRE_DNAT)

    @property
    def apply_on_forward(self) -> bool:
        return bool(self.flags & v1.FLAG_APPLY_ON_FORWARD)

    @property
    def ingress(self) -> bool:
        return bool(self.flags & v1.FLAG_INGRESS)

    @property
    def egress(self) -> bool:
        return bool(self.flags & v1.FLAG_EGRESS)


def policy_meta(policy: v1.Policy) -> PolicyMeta:
    """Types decide the directions; no types at all means both (older data)."""
    flags = 0
    if policy.do_not_track:
        flags |= v1.FLAG_DO_NOT_TRACK
    if policy.pre_dnat:
        flags |= v1.FLAG_PRE_DNAT
    if policy.apply_on_forward:
        flags |= v1.FLAG_APPLY_ON_FORWARD
    if not policy.types:
        flags |= v1.FLAG_INGRESS | v1.FLAG_EGRESS
    for kind in policy.types:
        if kind.lower() == "ingress":
            flags |= v1.FLAG_INGRESS
        elif kind.lower() == "egress":
            flags |= v1.FLAG_EGRESS
    return PolicyMeta(policy.tier or "default", math.inf if policy.order is None else policy.order, flags)


def tier_sort_key(name: str, tier: v1.Tier | None) -> tuple:
    """Felix's TierLess as a key: real tiers first, ordered tiers before unordered ones."""
    order = None if tier is None else tier.order
    return (tier is None, order is None, 0.0 if order is None else order, name)


def policy_sort_key(pid: t.PolicyID, meta: PolicyMeta) -> tuple:
    """Felix's PolKVLess as a key."""
    return (meta.order, f"{pid.name}/{pid.namespace}/{pid.kind}")


@dataclass(frozen=True)
class ResolvedTier:
    """One tier of an endpoint's policy list, before the split by policy kind."""

    name: str
    default_action: str
    policies: tuple[tuple[t.PolicyID, PolicyMeta], ...]


def resolve_tiers(policy_ids: Iterable[t.PolicyID], metas: Mapping[t.PolicyID, PolicyMeta],
                  tiers: Mapping[str, v1.Tier]) -> list[ResolvedTier]:
    """The ordered tiers holding the given policies (those that apply to one endpoint).

    A tier without a Tier resource gets the default action Deny: Felix leaves it empty,
    which renders the same end-of-tier drop."""
    by_tier: dict[str, list[tuple[t.PolicyID, PolicyMeta]]] = {}
    for pid in policy_ids:
        meta = metas[pid]
        by_tier.setdefault(meta.tier, []).append((pid, meta))
    out = []
    for name in sorted(by_tier, key=lambda n: tier_sort_key(n, tiers.get(n))):
        pols = sorted(by_tier[name], key=lambda pm: policy_sort_key(*pm))
        tier = tiers.get(name)
        out.append(ResolvedTier(name, tier.default_action if tier else DEFAULT_ACTION_DENY, tuple(pols)))
    return out


@dataclass(frozen=True)
class TierSplit:
    normal: tuple[t.TierInfo, ...] = ()
    untracked: tuple[t.TierInfo, ...] = ()
    pre_dnat: tuple[t.TierInfo, ...] = ()
    forward: tuple[t.TierInfo, ...] = ()


def split_tiers(resolved: Iterable[ResolvedTier]) -> TierSplit:
    """Felix's tierInfoToProtoTierInfo.  A policy is untracked if doNotTrack, else pre-DNAT
    if preDNAT (ingress only), else normal (and also forward if applyOnForward).  A tier
    is kept in a list only if it has an ingress or egress policy there."""
    lists: dict[str, list[t.TierInfo]] = {"normal": [], "untracked": [], "pre_dnat": [], "forward": []}
    for tier in resolved:
        acc = {k: ([], []) for k in lists}
        for pid, meta in tier.policies:
            if meta.do_not_track:
                targets = [("untracked", True)]
            elif meta.pre_dnat:
                targets = [("pre_dnat", False)]
            else:
                targets = [("forward", True)] if meta.apply_on_forward else []
                targets.append(("normal", True))
            for kind, egress_allowed in targets:
                ingress, egress = acc[kind]
                if meta.ingress:
                    ingress.append(pid)
                if egress_allowed and meta.egress:
                    egress.append(pid)
        for kind, (ingress, egress) in acc.items():
            if ingress or egress:
                action = tier.default_action if kind in ("normal", "forward") else DEFAULT_ACTION_PASS
                lists[kind].append(t.TierInfo(tier.name, tuple(ingress), tuple(egress), action))
    return TierSplit(*(tuple(lists[k]) for k in ("normal", "untracked", "pre_dnat", "forward")))
