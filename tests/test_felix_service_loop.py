"""Service loop prevention (Felix's service loop manager): the service CIDRs that
BGPConfiguration ``default`` advertises are dropped (or rejected) in cali-cidr-block when
nothing on this node answers for them, so traffic to them cannot loop between routers."""
from __future__ import annotations

from felix_calc_builders import delete, put
from node.datastore.syncer import SyncStatus
from node.felix import types as t
from node.felix.pipeline import Pipeline
from node.model import Resource

IFACES = {"eth0": ["10.0.0.1"], "lo": ["127.0.0.1"]}


def bgp_config(name="default", **spec) -> Resource:
    return Resource("BGPConfiguration", {"name": name}, spec)


def _pipeline(env=None, *resources) -> Pipeline:
    p = Pipeline("node1", env or {})
    p.on_updates(put(*resources))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces(IFACES)
    return p


def blocked(p: Pipeline, version: int) -> list[str]:
    return [r.body for r in p.dataplanes[version].tables["filter"].chain("cali-cidr-block").rules]


SERVICES = bgp_config(serviceClusterIPs=[{"cidr": "10.96.0.0/12"}, {"cidr": "fd00:96::/112"}],
                      serviceExternalIPs=[{"cidr": "192.0.2.0/24"}],
                      serviceLoadBalancerIPs=[{"cidr": "198.51.100.0/24"}])


def test_advertised_service_cidrs_are_blocked_per_family():
    p = _pipeline({}, SERVICES, bgp_config("node.node1", serviceClusterIPs=[{"cidr": "172.16.0.0/16"}]))
    # Sorted, as Felix sorts them; only the default configuration counts.
    assert blocked(p, 4) == ["--destination 10.96.0.0/12 --jump DROP", "--destination 192.0.2.0/24 --jump DROP",
                             "--destination 198.51.100.0/24 --jump DROP"]
    assert blocked(p, 6) == ["--destination fd00:96::/112 --jump DROP"]
    assert "-A cali-FORWARD" in p.dataplanes[4].render_save()
    # Changed, then deleted.
    p.on_updates(put(bgp_config(serviceClusterIPs=[{"cidr": "10.96.0.0/16"}])))
    p.complete()
    assert blocked(p, 4) == ["--destination 10.96.0.0/16 --jump DROP"] and blocked(p, 6) == []
    p.on_updates(delete(bgp_config()))
    p.complete()
    assert blocked(p, 4) == []


def test_reject_and_disabled():
    assert blocked(_pipeline({"FELIX_SERVICELOOPPREVENTION": "Reject"}, SERVICES), 4)[0] == (
        "--destination 10.96.0.0/12 --jump REJECT")
    assert blocked(_pipeline({"FELIX_SERVICELOOPPREVENTION": "Disabled"}, SERVICES), 4) == []


def test_an_invalid_configuration_counts_as_absent(caplog):
    p = _pipeline({}, bgp_config(serviceClusterIPs=[{"cidr": "10.96.0.0/33"}]))
    assert blocked(p, 4) == []
    assert any("BGPConfiguration(default)" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_the_calculation_passes_the_peering_addresses_on():
    p = Pipeline("node1", {})
    p.on_updates(put(bgp_config(localWorkloadPeeringIPV4="169.254.0.179", localWorkloadPeeringIPV6="fe80::179",
                                serviceClusterIPs=[{"cidr": ""}, {"cidr": "10.96.0.0/12"}])))
    p.on_status(SyncStatus.IN_SYNC)
    messages = p.complete()
    assert t.GlobalBGPConfigUpdate(t.GlobalBGPConfig(
        service_cluster_cidrs=("10.96.0.0/12",), local_workload_peering_ipv4="169.254.0.179",
        local_workload_peering_ipv6="fe80::179")) in messages
