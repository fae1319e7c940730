"""The desired dataplane (Felix's managers without the kernel) and the pipeline feeding it.

The end-to-end property: whatever sequence of resource changes arrives, in whatever
batches, the tables and IP sets built incrementally equal the ones built from scratch
over the final resources, and the change reports add up to that state.
"""
from __future__ import annotations

import re
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from felix_calc_builders import LOCAL, delete, put, wep
from node.datastore.syncer import SyncStatus
from node.felix import types as t
from node.felix.calc.offline import updates_from_resources
from node.felix.config import FelixConfig
from node.felix.desired import DesiredDataplane, Encapsulation, canonical_member, encapsulation
from node.felix.pipeline import Pipeline, resolve_config
from node.model import Resource
from test_felix_calc_properties import endpoint_st, ident, other_st, policy_st

# kube-ipvs0 puts the dataplane in IPVS mode (and an "ifaces" op without it takes it out).
# Endpoint marks depend on allocation order only when two names collide; the names the
# generators use do not (so incremental and from-scratch marks agree).
IFACES = {"eth0": ["10.0.0.1", "fd00::1"], "eth1": ["192.168.1.1"], "lo": ["127.0.0.1"],
          "kube-ipvs0": ["10.96.0.1"]}


def _state(pipeline: Pipeline) -> dict:
    return {v: (dp.render_save(), dp.render_ipsets()) for v, dp in pipeline.dataplanes.items()}


def _fresh(resources: list[Resource], env=None, ifaces=IFACES) -> Pipeline:
    p = Pipeline(LOCAL, env or {})
    p.on_updates(updates_from_resources(resources))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces(ifaces)
    return p


class _Replay:
    """What a consumer of ``take_changes`` knows: chains' rule IDs and set members."""

    def __init__(self):
        self.chains: dict[tuple[int, str, str], tuple] = {}
        self.sets: dict[tuple[int, str], set] = {}

    def apply(self, pipeline: Pipeline) -> None:
        for v, dp in pipeline.dataplanes.items():
            changes = dp.take_changes()
            for table, tc in changes.tables.items():
                for c in tc.chains:
                    if c.new_ids is None:
                        del self.chains[(v, table, c.name)]
                    else:
                        self.chains[(v, table, c.name)] = c.new_ids
            ipc = changes.ipsets
            for name in ipc.deleted:
                del self.sets[(v, name)]
            for name, s in ipc.created.items():
                self.sets[(v, name)] = set(s.members)
            for name, members in ipc.added.items():
                assert not members & self.sets[(v, name)], f"{name}: re-added {members}"
                self.sets[(v, name)] |= members
            for name, members in ipc.removed.items():
                assert members <= self.sets[(v, name)], f"{name}: removed unknown {members}"
                self.sets[(v, name)] -= members

    def matches(self, pipeline: Pipeline) -> bool:
        chains = {(v, n, c.name): c.rule_ids for v, dp in pipeline.dataplanes.items()
                  for n, tbl in dp.tables.items() for c in tbl.programmed_chains()}
        sets = {(v, name): s.members for v, dp in pipeline.dataplanes.items() for name, s in dp.ipsets.sets.items()}
        return chains == self.chains and sets == self.sets


# Deletes are as likely as puts, so resources come and go within one example; host
# interface changes are ops too (they move host endpoints and the this-host set).
OP = st.one_of(st.tuples(st.sampled_from(["put", "delete"]), st.one_of(policy_st(), endpoint_st(), other_st())),
               st.tuples(st.just("ifaces"), st.dictionaries(st.sampled_from(["eth0", "eth1", "cali0"]),
                                                            st.lists(st.sampled_from(["10.0.0.1", "10.0.0.2",
                                                                                      "fd00::1"]), max_size=2),
                                                            max_size=3)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(OP, min_size=1, max_size=5), min_size=1, max_size=6), keyless=st.booleans())
def test_incremental_dataplane_equals_from_scratch(batches, keyless):
    """... whether deletes carry the last value or, as from the agent's syncer, only the key."""
    pipeline = Pipeline(LOCAL, {})
    pipeline.on_status(SyncStatus.IN_SYNC)
    pipeline.complete()
    ifaces = IFACES
    pipeline.set_interfaces(ifaces)
    replay = _Replay()
    replay.apply(pipeline)
    state: dict = {}
    for batch in batches:
        updates = []
        for op, value in batch:
            if op == "ifaces":
                ifaces = value
            elif op == "put":
                state[ident(value)] = value
                updates += put(value)
            elif ident(value) in state:
                updates += [replace(u, value=None) if keyless else u for u in delete(state.pop(ident(value)))]
        pipeline.on_updates(updates)
        pipeline.complete()
        pipeline.set_interfaces(ifaces)
        replay.apply(pipeline)
        for dp in pipeline.dataplanes.values():
            assert dp.missing_chains() == {}
        # The desired routes (reused while nothing they depend on changed, and each
        # endpoint's part kept while the endpoint is) are what a fresh start computes.
        assert pipeline.desired_routes() == _fresh(list(state.values()), ifaces=ifaces).desired_routes()
    fresh = _fresh(list(state.values()), ifaces=ifaces)
    assert _state(pipeline) == _state(fresh)
    assert pipeline.desired_routes() == fresh.desired_routes()
    assert replay.matches(pipeline)


def test_desired_routes_are_computed_again_only_after_what_they_depend_on_changed():
    from felix_calc_builders import gnp, node

    p = _fresh([wep("a", ips=("10.65.0.1/32",)), node(LOCAL, "192.168.0.1/24"),
                gnp("web", selector="all()", ingress=[{"action": "Deny"}])])
    first = p.desired_routes()
    assert p.desired_routes() is first
    p.set_interfaces(IFACES)  # the same interfaces again
    assert p.desired_routes() is first
    p.on_updates(put(gnp("web", selector="all()", ingress=[{"action": "Allow"}])))
    assert [type(m) for m in p.complete()] == [t.ActivePolicyUpdate]  # new rules, same endpoints
    assert p.desired_routes() is first
    assert p.desired_routes(host_mtu=1400) is not first  # other arguments
    p.on_updates(put(wep("b", ips=("10.65.0.2/32",))))
    p.complete()
    routes = p.desired_routes()
    assert routes is not first and {r.dst for r in routes.routes} >= {"10.65.0.1/32", "10.65.0.2/32"}
    p.on_updates(put(wep("a", ips=("10.65.0.9/32",))))  # an endpoint's address moves
    p.complete()
    routes = p.desired_routes()
    dsts = {r.dst for r in routes.routes}
    assert "10.65.0.9/32" in dsts and "10.65.0.1/32" not in dsts and "10.65.0.2/32" in dsts
    assert routes == _fresh([wep("a", ips=("10.65.0.9/32",)), wep("b", ips=("10.65.0.2/32",)),
                             node(LOCAL, "192.168.0.1/24"),
                             gnp("web", selector="all()", ingress=[{"action": "Allow"}])]).desired_routes()
    p.set_interfaces({**IFACES, "eth9": ["10.9.9.9"]})
    assert p.desired_routes() is not routes
    routes = p.desired_routes()
    p.on_updates(put(node(LOCAL, "10.9.9.9/24")))  # this host's Node: its address moved
    assert p.desired_routes() is not routes


def test_one_label_change_touches_only_its_sets_and_endpoint():
    web = wep("web", ips=("10.65.0.5/32",), labels={"app": "web"}, iface="caliweb")
    client = wep("client", node="node2", ips=("10.65.1.9/32",), labels={"app": "client"})
    other = wep("other", node="node2", ips=("10.65.1.10/32",), labels={"app": "other"})
    policy = Resource("NetworkPolicy", {"name": "allow", "namespace": "ns1"}, {
        "selector": "app == 'web'", "types": ["Ingress"],
        "ingress": [{"action": "Allow", "source": {"selector": "app == 'client'"}}]})
    profile = Resource("Profile", {"name": "kns.ns1"}, {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]})
    pipeline = _fresh([web, client, other, policy, profile])
    dp = pipeline.dataplanes[4]
    dp.take_changes()
    relabelled = wep("other", node="node2", ips=("10.65.1.10/32",), labels={"app": "client"})
    pipeline.on_updates(put(relabelled))
    pipeline.complete()
    changes = dp.take_changes()
    assert all(not tc.chains and not tc.kernel_chains for tc in changes.tables.values())
    assert not changes.ipsets.created and not changes.ipsets.deleted and not changes.ipsets.removed
    (name, added), = changes.ipsets.added.items()
    assert name.startswith("cali40s:") and added == {"10.65.1.10"}


def test_policy_change_rewrites_only_its_chain():
    web = wep("web", ips=("10.65.0.5/32",), labels={"app": "web"}, iface="caliweb")
    policy = Resource("NetworkPolicy", {"name": "allow", "namespace": "ns1"}, {
        "selector": "app == 'web'", "types": ["Ingress"], "ingress": [{"action": "Allow", "protocol": "TCP",
                                                                       "destination": {"ports": [80]}}]})
    pipeline = _fresh([web, policy])
    dp = pipeline.dataplanes[4]
    dp.take_changes()
    policy.spec["ingress"][0]["destination"]["ports"] = [80, 443]
    pipeline.on_updates(put(policy))
    pipeline.complete()
    changes = dp.take_changes()
    changed = {(table, c.name) for table, tc in changes.tables.items() for c in tc.chains}
    assert changed == {("filter", "cali-pi-np/ns1/allow")}
    rule = dp.tables["filter"].chain("cali-pi-np/ns1/allow").rules[0]
    assert "--destination-ports 80,443" in rule.body


def test_selector_change_regroups_endpoints_that_use_the_policy():
    """Two policies with the same selector share a group chain; when one's selector text
    changes but it still matches the same endpoints (so the endpoint's tiers do not
    change), the endpoint must still be re-rendered with two inlined jumps."""
    web = wep("web", ips=("10.65.0.5/32",), labels={"app": "web"}, iface="caliweb")
    rules = {"types": ["Ingress"], "ingress": [{"action": "Allow"}]}
    p1 = Resource("NetworkPolicy", {"name": "p1", "namespace": "ns1"}, {"selector": "app == 'web'", "order": 1, **rules})
    p2 = Resource("NetworkPolicy", {"name": "p2", "namespace": "ns1"}, {"selector": "app == 'web'", "order": 2, **rules})
    pipeline = _fresh([web, p1, p2])
    filt = pipeline.dataplanes[4].tables["filter"]
    tw = filt.chain("cali-tw-caliweb")
    assert any(r.action.target and r.action.target.startswith("cali-gi-") for r in tw.rules)
    p2.spec["selector"] = "app == 'web' && has(app)"
    pipeline.on_updates(put(p2))
    pipeline.complete()
    targets = [r.action.target for r in filt.chain("cali-tw-caliweb").rules if r.action.target]
    assert "cali-pi-np/ns1/p1" in targets and "cali-pi-np/ns1/p2" in targets
    assert not any(n.startswith("cali-gi-") for n in filt.programmed_chain_names())


def test_shadowed_workload_takes_over_its_interface():
    a = wep("a", ips=("10.65.0.5/32",), iface="calishared")
    b = wep("b", ips=("10.65.0.6/32",), iface="calishared")
    pipeline = _fresh([a, b])
    dp = pipeline.dataplanes[4]
    # The smallest workload ID (orchestrator, workload, endpoint) wins the interface.
    assert dp._active_wep_by_iface["calishared"].workload == "ns1/a"
    pipeline.on_updates(delete(a))
    pipeline.complete()
    assert dp._active_wep_by_iface["calishared"].workload == "ns1/b"
    assert dp.tables["filter"].is_programmed("cali-tw-calishared")
    pipeline.on_updates(delete(b))
    pipeline.complete()
    assert not dp.tables["filter"].is_programmed("cali-tw-calishared")
    assert "calishared" not in dp.render_save()


def test_host_endpoint_resolution_follows_felix():
    cfg = FelixConfig.resolve({})
    dp = DesiredDataplane(cfg, 4)
    by_name = t.HostEndpointID("b-named")
    by_ip = t.HostEndpointID("a-by-ip")
    other_iface = t.HostEndpointID("0-other")
    star = t.HostEndpointID("z-star")
    star2 = t.HostEndpointID("y-star")
    dp.on_messages([
        t.HostEndpointUpdate(by_name, t.HostEndpoint(name="eth0")),
        t.HostEndpointUpdate(by_ip, t.HostEndpoint(name="", expected_ipv4_addrs=("10.0.0.1",))),
        # Names another interface: never a candidate for eth0, even with eth0's address.
        t.HostEndpointUpdate(other_iface, t.HostEndpoint(name="eth9", expected_ipv4_addrs=("10.0.0.1",))),
        t.HostEndpointUpdate(star, t.HostEndpoint(name="*")),
        t.HostEndpointUpdate(star2, t.HostEndpoint(name="*")),
    ])
    dp.set_interfaces({"eth0": ["10.0.0.1"], "kube-ipvs0": ["10.0.0.1"], "caliabc": ["10.0.0.1"]})
    dp.complete()
    # Matching by name does not beat matching by address: the smallest ID wins.
    assert dp.resolve_host_endpoints() == {"eth0": by_ip, "any-interface-at-all": star2}
    save = dp.render_save()
    assert "--goto cali-fh-eth0" in save and "--goto cali-fh-any-interface-at-all" in save
    assert "kube-ipvs0" not in save and "cali-fh-caliabc" not in save


def test_encapsulation_follows_pools_unless_configured():
    pools = [t.IPAMPool("10.0.0.0/16", vxlan_mode="CrossSubnet"), t.IPAMPool("fd00::/64", vxlan_mode="Always"),
             t.IPAMPool("10.1.0.0/16", ipip_mode="Always")]
    assert encapsulation(FelixConfig.resolve({}), pools) == Encapsulation(True, True, True)
    off = FelixConfig.resolve({"FELIX_VXLANENABLED": "false", "FELIX_IPINIPENABLED": "false"})
    # Felix has no IPv6 VXLAN override: the v6 pool still turns it on.
    assert encapsulation(off, pools) == Encapsulation(False, False, True)
    assert encapsulation(FelixConfig.resolve({}), []) == Encapsulation(False, False, False)


def test_members_follow_felix_spelling():
    assert canonical_member("10.0.0.1/32") == "10.0.0.1"
    assert canonical_member("10.0.0.0/24") == "10.0.0.0/24"
    assert canonical_member("fd00::1/128") == "fd00::1"
    assert canonical_member("10.0.0.1/32,tcp:80") == "10.0.0.1,tcp:80"


def test_config_precedence_through_the_pipeline():
    node = Resource("Node", {"name": LOCAL}, {"bgp": {"ipv4Address": "10.0.0.1/24"},
                                              "ipv4VXLANTunnelAddr": "10.65.0.1"})
    specs = {"default": {"chainInsertMode": "Append", "logPrefix": "global"},
             "node": {"logPrefix": "host"}}
    cfg = resolve_config({"FELIX_CHAININSERTMODE": "insert"}, specs, node)
    assert cfg.ChainInsertMode == "insert" and cfg.LogPrefix == "host"
    assert cfg.IPv4VXLANTunnelAddr == "10.65.0.1"


def test_config_change_after_start_is_flagged():
    pipeline = _fresh([])
    assert not pipeline.config_changed
    fc = Resource("FelixConfiguration", {"name": "default"}, {"chainInsertMode": "Append"})
    pipeline.on_updates(put(fc))
    pipeline.complete()
    assert pipeline.config_changed


def test_own_node_deleted_by_key_alone_is_a_config_change():
    """The agent's syncer sends deletes without values: this host's Node is still recognised."""
    node = Resource("Node", {"name": LOCAL}, {"ipv4VXLANTunnelAddr": "10.65.0.1"})
    pipeline = _fresh([node])
    assert not pipeline.config_changed
    pipeline.on_updates([replace(u, value=None) for u in delete(node)])
    pipeline.complete()
    assert pipeline.config_changed


def test_endpoint_pieces_recompute_only_changed_endpoints():
    from node.felix.routes import EndpointPieces, RouteConfig, workload_routes

    cfg = RouteConfig(hostname=LOCAL)
    a = t.WorkloadEndpoint(name="calia", ipv4_nets=("10.65.0.1/32",))
    b = t.WorkloadEndpoint(name="calib", ipv4_nets=("10.65.0.2/32",))
    memo = EndpointPieces()
    first = memo.pieces(cfg, [a, b])
    assert first[0][0] == workload_routes(a, cfg)
    again = memo.pieces(cfg, [a, b])
    assert again[0][0] is first[0][0] and again[1][0] is first[1][0]  # kept
    moved = t.WorkloadEndpoint(name="calia", ipv4_nets=("10.65.0.9/32",))
    third = memo.pieces(cfg, [moved, b])
    assert [r.dst for _, r in third[0][0]] == ["10.65.0.9/32"] and third[1][0] is first[1][0]
    assert memo.pieces(cfg, [b])[0][0] is first[1][0]  # an endpoint gone is forgotten ...
    assert memo.pieces(cfg, [moved, b])[0][0] is not third[0][0]  # ... and computed afresh when back
    other = RouteConfig(hostname=LOCAL, device_route_protocol=80)
    changed = memo.pieces(other, [moved, b])
    assert [r.proto for _, r in changed[1][0]] == [80]  # a new configuration recomputes everything


def test_route_parents_are_felix_managers_ones():
    """IPIP and no-encap routes leave through the interface with this node's own address
    of their family; VXLAN through its VTEP's parent. A VTEP of one family only must not
    take the other family's parent away (Felix's ipip_mgr/noencap_mgr use HostMetadata)."""
    from felix_calc_builders import node, pool

    own = node(LOCAL, "", bgp={"ipv4Address": "10.0.0.1/24", "ipv6Address": "fd00::1/64",
                               "ipv4IPIPTunnelAddr": "10.65.9.1"}, ipv6VXLANTunnelAddr="fd00:65::1")
    p = _fresh([own, pool("v4", "10.65.0.0/16", ipipMode="Always", vxlanMode="Never"),
                pool("v6", "fd00:65::/64", vxlanMode="Always", ipipMode="Never")],
               env={"FELIX_IPV6SUPPORT": "true"})
    vtep = p.route_model.vteps[LOCAL]
    assert vtep.parent_device_ip == "" and vtep.parent_device_ipv6 == "fd00::1"  # an IPv6-only VTEP
    routes = p.desired_routes()
    assert routes.ipip_device is not None  # (configured only once its parent is found)
    assert [(d.name, d.parent) for d in routes.vxlan_devices] == [("vxlan-v6.calico", "eth0")]


IPVS_CHAINS = ("cali-forward-check", "cali-forward-endpoint-mark", "cali-set-endpoint-mark",
               "cali-from-endpoint-mark")


def test_kube_ipvs0_turns_ipvs_support_on_and_off():
    """Felix enables its kube-proxy IPVS support when kube-ipvs0 exists (and restarts when it
    comes or goes); the agent re-renders in place to the same result."""
    a = wep("a", ips=("10.65.0.5/32",), iface="calia")
    b = wep("b", ips=("10.65.0.6/32",), iface="calib")
    no_ipvs = {k: v for k, v in IFACES.items() if k != "kube-ipvs0"}
    pipeline = _fresh([a], ifaces=no_ipvs)
    filt = pipeline.dataplanes[4].tables["filter"]
    assert not any(filt.is_programmed(c) for c in IPVS_CHAINS + ("cali-sm-calia",))
    pipeline.set_interfaces({**no_ipvs, "kube-ipvs0": []})  # present, even without addresses
    pipeline.complete()
    assert all(filt.is_programmed(c) for c in IPVS_CHAINS + ("cali-sm-calia",))
    assert _state(pipeline) == _state(_fresh([a], ifaces={**no_ipvs, "kube-ipvs0": []}))
    # Endpoints coming and going: their mark chains follow, and a freed mark is reusable.
    pipeline.on_updates(put(b))
    pipeline.complete()
    save = pipeline.dataplanes[4].render_save()
    assert "--in-interface calib --goto cali-sm-calib" in save and "--goto cali-fw-calib" in save
    dp = pipeline.dataplanes[4]
    assert dp._epmarks.names() == {"calia", "calib"}
    pipeline.on_updates(delete(b))
    pipeline.complete()
    assert not filt.is_programmed("cali-sm-calib") and "calib" not in dp.render_save()
    assert dp._epmarks.names() == {"calia"}
    # Back to iptables mode: nothing of IPVS support is left.
    pipeline.set_interfaces(no_ipvs)
    pipeline.complete()
    assert not any(filt.is_programmed(c) for c in IPVS_CHAINS + ("cali-sm-calia",))
    assert _state(pipeline) == _state(_fresh([a], ifaces=no_ipvs))


def test_a_mark_mask_too_small_is_a_configuration_error(caplog):
    """Felix refuses to start without a bit for each mark (the endpoint mark included):
    nothing is rendered, the error names the parameter, and a later change is noticed."""
    env = {"FELIX_IPTABLESMARKMASK": "0x1f0000"}
    pipeline = _fresh([wep("a", ips=("10.65.0.5/32",), iface="calia")], env=env)
    assert pipeline.dataplanes == {} and "IptablesMarkMask 0x1f0000 has 5 bits" in pipeline.config_error
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("IptablesMarkMask 0x1f0000" in m and "programming nothing" in m for m in errors)
    pipeline.on_updates(put(Resource("FelixConfiguration", {"name": "default"}, {"logSeverityScreen": "Debug"})))
    assert pipeline.complete() == [] and pipeline.config_changed


def test_agent_with_an_unusable_mark_mask_programs_nothing_and_restarts_on_change():
    from node.felix.agent import CONFIG_CHANGED_RC, Agent

    agent = Agent(LOCAL, {}, kv_factory=lambda: None, default_rp_filter="1")
    agent._interfaces = {}
    agent._handle(_agent_updates([wep("a", ips=("10.65.0.5/32",), iface="calia"),
                                  Resource("FelixConfiguration", {"name": "default"}, {"iptablesMarkMask": 0x1F0000})]))
    agent._handle(_agent_status(SyncStatus.IN_SYNC))
    agent._step()
    assert agent.iptables == {} and agent.routes is None and agent.exit_code is None
    assert not agent.health.summary().ready
    agent._handle(_agent_updates([Resource("FelixConfiguration", {"name": "default"}, {"iptablesMarkMask": 0xFFFF0000})]))
    agent._step()
    assert agent.exit_code == CONFIG_CHANGED_RC


def _agent_updates(resources):
    from node.felix.agent import _Updates
    return _Updates(updates_from_resources(resources))


def _agent_status(status):
    from node.felix.agent import _Status
    return _Status(status)


def test_the_pipeline_passes_workload_interfaces_to_the_route_side():
    p = _fresh([], ifaces={"eth0": ["10.0.0.1"], "calinew": [], "tap1": []})
    paths = [s.path for s in p.desired_routes().sysctls]
    assert "net/ipv4/conf/calinew/proxy_arp" in paths and not any("/tap1/" in path for path in paths)
    p.set_interfaces({"eth0": ["10.0.0.1"]})
    assert not any("/calinew/" in s.path for s in p.desired_routes().sysctls)


def test_openstack_special_cases_follow_the_configuration():
    """A non-default MetadataAddr turns on Felix's OpenStack special cases: the metadata
    DNAT and accept rules and DHCP from workloads (raw and to the host); a metadata host
    name turns them on without the metadata rules (Felix cannot parse it as an address)."""
    def openstack_rules(env):
        save = _fresh([], env=env).dataplanes[4].render_save()
        return [re.sub(r'-m comment --comment "cali:[^"]*" ', "", line) for line in save.splitlines()
                if "169.254.169.254" in line or "10.0.0.5" in line or "--source-ports 68" in line]

    assert openstack_rules({}) == []
    dhcp = ["-A cali-PREROUTING -p udp --source 0.0.0.0 -m multiport --source-ports 68 "
            "-m multiport --destination-ports 67 --jump ACCEPT",
            "-A cali-wl-to-host -p udp -m multiport --source-ports 68 -m multiport --destination-ports 67 --jump ACCEPT"]
    assert openstack_rules({"FELIX_METADATAADDR": "10.0.0.5", "FELIX_METADATAPORT": "9000"}) == [
        dhcp[0],
        "-A cali-PREROUTING -p tcp -m multiport --destination-ports 80 --destination 169.254.169.254/32 "
        "--jump DNAT --to-destination 10.0.0.5:9000",
        "-A cali-wl-to-host -p tcp --destination 10.0.0.5 -m multiport --destination-ports 9000 --jump ACCEPT",
        dhcp[1],
    ]
    assert openstack_rules({"FELIX_METADATAADDR": "metadata.internal"}) == dhcp


def test_agent_reports_unready_after_failed_applies_in_a_row_and_ready_after_a_success():
    """Felix restarts (unready) when a table keeps failing; the agent keeps retrying but
    its dataplane reporter says not ready from the third failed apply in a row."""
    from node.felix import health as hl
    from node.felix.agent import FAILED_APPLIES_BEFORE_UNREADY, Agent

    agent = Agent(LOCAL, {}, kv_factory=lambda: None, default_rp_filter="1")
    agent._interfaces = {}

    def dataplane_ready() -> bool:
        return agent.health._reporters[hl.DATAPLANE].ready
    agent._record_apply(0.01, [])
    assert dataplane_ready()
    for n in range(1, FAILED_APPLIES_BEFORE_UNREADY + 1):
        agent._record_apply(0.01, ["iptables (IPv4): iptables-restore failed"])
        agent._report_dataplane()  # (the loop's periodic report must not undo it)
        assert dataplane_ready() is (n < FAILED_APPLIES_BEFORE_UNREADY)
    agent._record_apply(0.01, [])
    assert dataplane_ready()


def test_no_table_is_written_while_ip_sets_fail_and_the_failure_path_never_raises():
    """As Felix: tables wait for the IP sets (a rule must not go live against a missing or
    half-updated set); the failed apply only queues fresh reads (a re-read that fails again
    is the retry's to report, not an exception out of the agent's loop)."""
    from types import SimpleNamespace

    from node.felix.agent import Agent
    from node.felix.dataplane.ipsets import IPSetsError

    calls = []

    class Sets:
        fail = True

        def apply_updates(self):
            calls.append("ipsets")
            if self.fail:
                raise IPSetsError("ipset restore failed: Set cannot be created")

        def apply_deletions(self):
            calls.append("ipset deletions")
            return False

        def queue_resync(self):
            calls.append("ipsets resync queued")

        def refresh(self):
            raise IPSetsError("still failing")

    class Tables:
        def apply(self):
            calls.append("iptables")
            return SimpleNamespace(reschedule_after=None)

        def refresh(self):
            calls.append("iptables re-read queued")

    agent = Agent(LOCAL, {}, kv_factory=lambda: None, default_rp_filter="1")
    agent._interfaces = {}
    sets = Sets()
    agent.ipsets, agent.iptables = {4: sets}, {4: Tables()}
    agent.pipeline = SimpleNamespace(
        dataplanes={4: SimpleNamespace(active_workload_endpoints=dict)},
        config=SimpleNamespace(MTUIfacePattern="^eth"), pod_mtu=lambda mtu: mtu,
        desired_routes=lambda **kw: None)
    agent.mtu_file = SimpleNamespace(apply=lambda *a: None)
    agent.routes = SimpleNamespace(apply=lambda *a: SimpleNamespace(in_sync=True, failures=[]),
                                   recheck_after=lambda: None, refresh=lambda: None, unconfigured=frozenset())
    agent._apply()
    assert calls == ["ipsets", "iptables re-read queued", "ipsets resync queued"]
    assert agent._failed_applies == 1
    calls.clear()
    sets.fail = False
    agent._apply()
    assert calls == ["ipsets", "iptables", "ipset deletions"] and agent._failed_applies == 0
