"""Felix's RouteSource through the pipeline and into the kernel.

With ``WorkloadIPs`` the routes to other nodes' workloads come from every workload's own
addresses instead of IPAM blocks (clusters whose pod addresses Calico's IPAM does not
hand out). Felix reads the parameter before building its route resolver; the agent learns
the datastore's value only at the first in-sync, after the updates were fed, so the
pipeline switches the calculation then. The cluster here: this node and node2 on
192.0.2.0/24, a VXLAN pool, a block affine to node2 and pods on both nodes.
"""
from __future__ import annotations

import pytest

from felix_calc_builders import LOCAL, REMOTE, felix_config, node, pool, put, wep
from netns import Namespace
from node.datastore.syncer import SyncStatus
from node.felix.calc.offline import updates_from_resources
from node.felix.dataplane.routes import RouteDataplane
from node.felix.pipeline import Pipeline
from startup_netns import in_netns
from test_felix_routes_calc import block
from test_felix_routes_kernel import route_to

REMOTE_POD = wep("far", node=REMOTE, ips=("10.244.1.7/32",))
BORROWED_POD = wep("borrowed", node=REMOTE, ips=("10.244.5.9/32",))  # in no block of node2's
LOCAL_POD = wep("near", ips=("10.244.0.5/32",), iface="calinear")
CLUSTER = [
    node(LOCAL, "192.0.2.10/24", ipv4VXLANTunnelAddr="10.244.0.1", vxlanTunnelMACAddr="66:00:00:00:00:01"),
    node(REMOTE, "192.0.2.11/24", ipv4VXLANTunnelAddr="10.244.1.0", vxlanTunnelMACAddr="66:00:00:00:00:02"),
    pool("pool1", "10.244.0.0/16", vxlanMode="Always", natOutgoing=True),
    REMOTE_POD, BORROWED_POD, LOCAL_POD,
]
IFACES = {"eth0": ["192.0.2.10"], "lo": ["127.0.0.1"]}


def _pipeline(extra=(), env=None, file_config=None) -> Pipeline:
    p = Pipeline(LOCAL, env or {}, file_config)
    p.on_updates(updates_from_resources(CLUSTER + list(extra)) + [block("10.244.1.0/26", f"host:{REMOTE}")])
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces(IFACES)
    return p


def _remote_routes(p: Pipeline) -> dict[str, str]:
    """Destination -> next hop of the routes through the VXLAN device."""
    return {r.dst: r.gateway for r in p.desired_routes().routes if r.dev == "vxlan.calico"}


BY_BLOCK = {"10.244.1.0/26": "10.244.1.0"}
BY_WORKLOAD = {"10.244.1.7/32": "10.244.1.0", "10.244.5.9/32": "10.244.1.0"}


@pytest.mark.parametrize("where", ["datastore", "per-node", "env", "file"])
def test_workload_ips_from_any_configuration_source(where):
    extra, env, file_config = [], {}, {}
    if where == "datastore":
        extra = [felix_config("default", routeSource="WorkloadIPs")]
    elif where == "per-node":
        extra = [felix_config(f"node.{LOCAL}", routeSource="WorkloadIPs")]
    elif where == "env":
        env = {"FELIX_ROUTESOURCE": "workloadips"}  # read as Felix reads it, in any case
    else:
        file_config = {"RouteSource": "WorkloadIPs"}
    p = _pipeline(extra, env, file_config)
    assert p.config.RouteSource == "WorkloadIPs" and p.routes.route_source == "WorkloadIPs"
    assert _remote_routes(p) == BY_WORKLOAD


def test_calico_ipam_by_default_and_when_the_environment_overrides_the_datastore():
    assert _remote_routes(_pipeline()) == BY_BLOCK
    p = _pipeline([felix_config("default", routeSource="WorkloadIPs")], env={"FELIX_ROUTESOURCE": "CalicoIPAM"})
    assert p.config.RouteSource == "CalicoIPAM" and _remote_routes(p) == BY_BLOCK
    # The calculation was built for WorkloadIPs from the config file, then switched back.
    p = _pipeline([felix_config("default", routeSource="CalicoIPAM")], file_config={"RouteSource": "WorkloadIPs"})
    assert p.config.RouteSource == "WorkloadIPs"  # the file ranks above the datastore
    p = _pipeline([felix_config(f"node.{LOCAL}", routeSource="CalicoIPAM")],
                  env={"FELIX_ROUTESOURCE": ""}, file_config={"RouteSource": "WorkloadIPs"})
    assert p.config.RouteSource == "WorkloadIPs" and _remote_routes(p) == BY_WORKLOAD


def test_a_bad_value_is_reported_and_the_default_used():
    p = _pipeline([felix_config("default", routeSource="Blocks")])
    assert p.config.RouteSource == "CalicoIPAM" and _remote_routes(p) == BY_BLOCK
    assert any("RouteSource" in problem for problem in p.config.problems)
    # none gives the empty zero value, which routes as CalicoIPAM (and stops nothing).
    p = _pipeline([felix_config("default", routeSource="WorkloadIPs")], env={"FELIX_ROUTESOURCE": "none"})
    assert p.config.RouteSource == "" and _remote_routes(p) == BY_BLOCK


def test_updates_after_the_switch_and_a_later_change_restarts():
    p = _pipeline([felix_config("default", routeSource="WorkloadIPs")])
    p.on_updates(put(wep("far", node=REMOTE, ips=("10.244.1.8/32",))))
    p.complete()
    assert _remote_routes(p) == {"10.244.1.8/32": "10.244.1.0", "10.244.5.9/32": "10.244.1.0"}
    assert not p.config_changed
    p.on_updates(put(felix_config("default", routeSource="CalicoIPAM")))
    p.complete()
    assert p.config_changed  # Felix restarts to rebuild its resolver


def test_workload_routes_in_the_kernel():
    """The desired routes of a WorkloadIPs node, programmed into a namespace: each remote
    pod's /32 goes through the VXLAN device to its node's VTEP; the block has no route."""
    p = _pipeline([felix_config("default", routeSource="WorkloadIPs")])
    with Namespace("rsrc") as ns:
        ns.run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "uplink")
        ns.run("ip", "addr", "add", "192.0.2.10/24", "dev", "eth0")
        ns.run("ip", "link", "set", "uplink", "up")
        ns.run("ip", "link", "set", "eth0", "up")
        dp = RouteDataplane()
        result = in_netns(ns, lambda: dp.apply(p.desired_routes(), None))
        assert result.in_sync, result.failures
        for dst in ("10.244.1.7", "10.244.5.9"):  # (ip shows a host route without its /32)
            route = route_to(ns, dst)
            assert (route["gateway"], route["dev"], route["flags"]) == ("10.244.1.0", "vxlan.calico", ["onlink"])
        assert route_to(ns, "10.244.1.0/26") is None
        # The pod moves to another address: its old route goes, the new one comes.
        p.on_updates(put(wep("far", node=REMOTE, ips=("10.244.1.8/32",))))
        p.complete()
        assert in_netns(ns, lambda: dp.apply(p.desired_routes(), None)).in_sync
        assert route_to(ns, "10.244.1.7") is None
        assert route_to(ns, "10.244.1.8")["dev"] == "vxlan.calico"
