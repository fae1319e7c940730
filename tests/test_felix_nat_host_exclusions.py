"""NATOutgoingExclusions=IPPoolsAndHostIPs: traffic from pods to any node's address is not
masqueraded, through the ``all-hosts-net`` IP set of each family (Felix's hosts IP set
manager runs for IPv6 too when the option is on, without the external node CIDRs, which
are for IPIP and so IPv4 only). Programmed into a namespace with both backends: the IPv6
nat table references the set, so the set must exist for the restore to succeed.
"""
from __future__ import annotations

import pytest

from felix_calc_builders import LOCAL, REMOTE, node, pool
from netns import Namespace
from node.datastore.syncer import SyncStatus
from node.felix.calc.offline import updates_from_resources
from node.felix.dataplane.ipsets import IPSetsDataplane, run_command
from node.felix.dataplane.iptables import IptablesDataplane, subprocess_runner
from node.felix.features import Features
from node.felix.pipeline import Pipeline

ENV = {"FELIX_NATOUTGOINGEXCLUSIONS": "IPPoolsAndHostIPs", "FELIX_EXTERNALNODESCIDRLIST": "198.51.100.0/24"}


def _bgp(suffix: str) -> dict:
    return {"bgp": {"ipv4Address": f"192.0.2.{suffix}/24", "ipv6Address": f"fd00:2::{suffix}/64"}}


def _pipeline(env) -> Pipeline:
    p = Pipeline(LOCAL, env)
    p.on_updates(updates_from_resources([
        node(LOCAL, **_bgp("10")), node(REMOTE, **_bgp("11")),
        pool("v4", "10.65.0.0/16", natOutgoing=True), pool("v6", "fd00:65::/64", natOutgoing=True)]))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces({"eth0": ["192.0.2.10", "fd00:2::10"], "lo": ["127.0.0.1"]})
    return p


def _members(p: Pipeline, version: int) -> set[str] | None:
    s = p.dataplanes[version].ipsets.sets.get(f"cali{version}0all-hosts-net")
    return None if s is None else set(s.members)


def test_both_families_get_the_hosts_set():
    p = _pipeline(ENV)
    assert _members(p, 4) == {"192.0.2.10", "192.0.2.11", "198.51.100.0/24"}
    assert _members(p, 6) == {"fd00:2::10", "fd00:2::11"}
    nat6 = p.dataplanes[6].render_save()
    assert "--match-set cali60all-hosts-net dst" in nat6
    # Without the option neither family needs it (no IPIP here).
    p = _pipeline({})
    assert _members(p, 4) is None and _members(p, 6) is None


@pytest.mark.parametrize("backend", ["legacy", "nft"])
def test_ipv6_nat_table_programs(backend):
    p = _pipeline(ENV)
    dp = p.dataplanes[6]
    with Namespace("nathx") as ns:
        def run(argv, stdin=None):
            return subprocess_runner(["ip", "netns", "exec", ns.name, *argv], stdin)

        def run_ipset(argv, stdin=None):
            return run_command(["ip", "netns", "exec", ns.name, *argv], stdin)
        sets = IPSetsDataplane(dp.ipsets, runner=run_ipset)
        ipt = IptablesDataplane(6, dp.tables, backend=backend, run=run, features=Features())
        sets.apply_updates()
        assert ipt.apply().restore_errors == 0
        sets.apply_deletions()
        listing = ns.run("ipset", "list", "cali60all-hosts-net").stdout
        assert "fd00:2::10" in listing and "fd00:2::11" in listing
        saved = ns.run(f"ip6tables-{backend}-save", "-t", "nat").stdout
        assert "--match-set cali60all-hosts-net dst" in saved
