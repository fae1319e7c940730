"""Tier and policy ordering, and the per-endpoint tier split (Felix's policy_sorter_test.go
and event_sequencer's tierInfoToProtoTierInfo)."""
from __future__ import annotations

import math

import pytest

from node.felix import types as t
from node.felix.calc import v1
from node.felix.calc.ordering import (PolicyMeta, ResolvedTier, policy_meta, policy_sort_key, resolve_tiers,
                                      split_tiers, tier_sort_key)

GNP = "GlobalNetworkPolicy"
NP = "NetworkPolicy"
BOTH = v1.FLAG_INGRESS | v1.FLAG_EGRESS


def sort_tiers(entries):
    """entries: (name, v1.Tier or None for "no Tier resource")."""
    return [name for name, tier in sorted(entries, key=lambda e: tier_sort_key(*e))]


@pytest.mark.parametrize("entries,expected", [
    # valid sorts ahead of invalid
    ([("bar", None), ("foo", v1.Tier(10, "Deny"))], ["foo", "bar"]),
    # both invalid, both nil order: name
    ([("foo", None), ("bar", None)], ["bar", "foo"]),
    # both valid, both nil order: name
    ([("foo", v1.Tier(None, "Deny")), ("bar", v1.Tier(None, "Deny"))], ["bar", "foo"]),
    # both valid: order
    ([("bar", v1.Tier(10, "Deny")), ("foo", v1.Tier(1, "Deny"))], ["foo", "bar"]),
    # non-nil orders ahead of nil
    ([("bar", v1.Tier(None, "Deny")), ("baz", v1.Tier(10, "Deny")), ("foo", v1.Tier(1, "Deny"))],
     ["foo", "baz", "bar"]),
    # equal order: name
    ([("baz", v1.Tier(10, "Deny")), ("foo", v1.Tier(10, "Deny"))], ["baz", "foo"]),
    # the built-in tiers
    ([("kube-baseline", v1.Tier(10_000_000, "Pass")), ("default", v1.Tier(1_000_000, "Deny")),
      ("kube-admin", v1.Tier(1000, "Pass"))], ["kube-admin", "default", "kube-baseline"]),
])
def test_tier_order(entries, expected):
    assert sort_tiers(entries) == expected
    assert sort_tiers(list(reversed(entries))) == expected


def test_policy_order():
    pols = [
        (t.PolicyID("b", "", GNP), PolicyMeta("default", 10.0)),
        (t.PolicyID("a", "", GNP), PolicyMeta("default")),  # no order: +inf
        (t.PolicyID("a", "ns1", NP), PolicyMeta("default", 10.0)),
        (t.PolicyID("a", "", GNP), PolicyMeta("default", 10.0)),
        (t.PolicyID("z", "", GNP), PolicyMeta("default", 1.5)),
    ]
    got = [(p.name, p.namespace, m.order) for p, m in sorted(pols, key=lambda pm: policy_sort_key(*pm))]
    # Ties on order by "<name>/<namespace>/<kind>": "a//GlobalNetworkPolicy" < "a/ns1/NetworkPolicy".
    assert got == [("z", "", 1.5), ("a", "", 10.0), ("a", "ns1", 10.0), ("b", "", 10.0), ("a", "", math.inf)]


def test_policy_meta_from_types():
    pid = t.PolicyID("p")
    assert policy_meta(v1.Policy(pid, "", order=None)) == PolicyMeta("default", math.inf, BOTH)
    assert policy_meta(v1.Policy(pid, "", types=("ingress",))).flags == v1.FLAG_INGRESS
    assert policy_meta(v1.Policy(pid, "", types=("Egress",))).flags == v1.FLAG_EGRESS
    meta = policy_meta(v1.Policy(pid, "", tier="t", order=3, types=("ingress", "egress"), do_not_track=True,
                                 pre_dnat=True, apply_on_forward=True))
    assert meta == PolicyMeta("t", 3.0, BOTH | v1.FLAG_DO_NOT_TRACK | v1.FLAG_PRE_DNAT | v1.FLAG_APPLY_ON_FORWARD)


def test_resolve_tiers_groups_orders_and_defaults_missing_tiers_to_deny():
    p = {name: t.PolicyID(name, "", GNP) for name in ("a", "b", "c", "d")}
    metas = {p["a"]: PolicyMeta("tier-b", 5.0, BOTH), p["b"]: PolicyMeta("tier-a", 1.0, BOTH),
             p["c"]: PolicyMeta("tier-a", 0.5, BOTH), p["d"]: PolicyMeta("ghost", 1.0, BOTH)}
    tiers = {"tier-a": v1.Tier(20, "Pass"), "tier-b": v1.Tier(10, "Deny")}
    got = resolve_tiers(p.values(), metas, tiers)
    assert [(r.name, r.default_action, [pid.name for pid, _ in r.policies]) for r in got] == [
        ("tier-b", "Deny", ["a"]), ("tier-a", "Pass", ["c", "b"]), ("ghost", "Deny", ["d"])]


def test_split_tiers():
    def pol(name, flags):
        return (t.PolicyID(name, "", GNP), PolicyMeta("t1", 1.0, flags))
    resolved = [
        ResolvedTier("t1", "Deny", (
            pol("normal", BOTH),
            pol("fwd", BOTH | v1.FLAG_APPLY_ON_FORWARD),
            pol("untracked", BOTH | v1.FLAG_DO_NOT_TRACK | v1.FLAG_APPLY_ON_FORWARD),
            pol("prednat", BOTH | v1.FLAG_PRE_DNAT | v1.FLAG_APPLY_ON_FORWARD),
        )),
        ResolvedTier("t2", "Pass", (pol("egress-only-prednat", v1.FLAG_EGRESS | v1.FLAG_PRE_DNAT),)),
    ]
    ids = {name: t.PolicyID(name, "", GNP) for name in ("normal", "fwd", "untracked", "prednat")}
    split = split_tiers(resolved)
    assert split.normal == (t.TierInfo("t1", (ids["normal"], ids["fwd"]), (ids["normal"], ids["fwd"]), "Deny"),)
    assert split.forward == (t.TierInfo("t1", (ids["fwd"],), (ids["fwd"],), "Deny"),)
    # Untracked and pre-DNAT tiers always pass at their end; pre-DNAT is ingress only, so
    # an egress-only pre-DNAT policy leaves its tier out altogether.
    assert split.untracked == (t.TierInfo("t1", (ids["untracked"],), (ids["untracked"],), "Pass"),)
    assert split.pre_dnat == (t.TierInfo("t1", (ids["prednat"],), (), "Pass"),)
