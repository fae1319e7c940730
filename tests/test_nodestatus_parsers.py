"""The CalicoNodeStatus reporter's pure parts: BIRD's replies as records (Calico's
bird_status_test.go, peers_test.go and route_test.go vectors), the records as status
fields, ``populate`` and ``show-status``'s tables."""
from __future__ import annotations

import datetime as dt
import logging

import pytest

from node.errors import ValidationError
from node.nodestatus import birdtext as bt
from node.nodestatus import status as st
from node.nodestatus import tables


def lines(text: str) -> list[str]:
    return text.split("\n")


# --------------------------------------------------------------------------------------
# show status (bird_status_test.go)

CALICO_STATUS = """0001 BIRD v0.3.3+birdv1.6.8 ready.
1000-BIRD v0.3.3+birdv1.6.8
1011-Router ID is 172.17.0.3
 Current server time is 2021-09-19 20:48:43
 Last reboot on 2021-09-19 20:10:56
 Last reconfiguration on 2021-09-19 20:10:56
013 Daemon is up and running
"""


def test_scan_status():
    assert bt.scan_status(lines(CALICO_STATUS)) == bt.DaemonStatus(
        ready=True, version="v0.3.3+birdv1.6.8", router_id="172.17.0.3", server_time="2021-09-19 20:48:43",
        last_boot_time="2021-09-19 20:10:56", last_reconfig_time="2021-09-19 20:10:56")


@pytest.mark.parametrize("ready,state", [(True, "Ready"), (False, "NotReady")])
def test_daemon_status_as_api(ready, state):
    daemon = bt.DaemonStatus(ready=ready, version="v0.3.3+birdv1.6.8", router_id="172.17.0.3",
                             server_time="2021-09-19 20:48:43", last_boot_time="2021-09-19 20:48:56",
                             last_reconfig_time="2021-09-19 20:48:56")
    assert st.daemon_status(daemon) == {"state": state, "version": "v0.3.3+birdv1.6.8", "routerID": "172.17.0.3",
                                        "lastBootTime": "2021-09-19 20:48:56",
                                        "lastReconfigurationTime": "2021-09-19 20:48:56"}


def test_debian_bird_version_is_kept():
    # Calico reads the version only from its own BIRD's "BIRD v..." line.
    status = bt.scan_status(["0001 BIRD 1.6.8 ready.", "1000-BIRD 1.6.8", "1011-Router ID is 10.0.0.1",
                             "0013 Daemon is up and running"])
    assert (status.ready, status.version, status.router_id) == (True, "1.6.8", "10.0.0.1")


def test_status_stops_at_graceful_restart_line_keeping_what_it_read(caplog):
    text = CALICO_STATUS.replace("013 Daemon", "0024-Graceful restart recovery in progress\n0013 Daemon")
    with caplog.at_level(logging.WARNING):
        status = bt.scan_status(lines(text))
    assert status.last_reconfig_time == "2021-09-19 20:10:56" and status.ready
    assert "unexpected output line from BIRD: 0024-Graceful restart recovery in progress" in caplog.text


def test_status_without_greeting_is_not_ready():
    assert not bt.scan_status(["1000-BIRD 1.6.8", "0013 Daemon is up and running"]).ready


# --------------------------------------------------------------------------------------
# show protocols / show protocols all (peers_test.go)

PEER_TABLE = """0001 BIRD 1.5.0 ready.
2002-name     proto    table    state  since       info
1002-kernel1  Kernel   master   up     2016-11-21
 device1  Device   master   up     2016-11-21
 direct1  Direct   master   up     2016-11-21
 Mesh_172_17_8_102 BGP      master   up     2016-11-21  Established
 Global_172_17_8_103 BGP      master   up     2016-11-21  Established
 Node_172_17_8_104 BGP      master   down     2016-11-21  Failed  Socket: error
0000
We never get here
"""


def detail(session: str, address: str, bgp_state: str) -> str:
    """Calico's mock ``show protocols all`` output (no reply codes, a greeting first)."""
    return f"""0001 BIRD 1.5.0 ready.
name     proto    table    state  since       info
{session.lower()} BGP      master   up     2016-11-21    Established
Preference:     100
Input filter:   ACCEPT
Output filter:  packet_bgp
Routes:         0 imported, 1 exported, 0 preferred
Route change stats:     received   rejected   filtered    ignored   accepted
  Import updates:              0          0          0          0          0
  Import withdraws:            0          0        ---          0          0
  Export updates:              1          0          0        ---          1
  Export withdraws:            0        ---        ---        ---          0
BGP state:          {bgp_state}
  Neighbor address: {address}
  Neighbor AS:      65530
  Neighbor ID:      147.75.36.73
  Neighbor caps:    refresh restart-aware AS4
  Session:          external AS4
  Source address:   10.99.182.129
  Hold timer:       66/90
  Keepalive timer:  18/30
0000
"""


def test_scan_peers_and_complete_them():
    peers = bt.scan_peers(lines(PEER_TABLE), bt.IPV4)
    assert len(peers) == 3
    peers = [bt.complete_peer(peers[0], lines(detail("Mesh_172_17_8_102", "172.17.8.102", "Established"))),
             bt.complete_peer(peers[1], lines(detail("Mesh_172_17_8_103", "172.17.8.103", "Established"))),
             bt.complete_peer(peers[2], lines(detail("Mesh_172_17_8_104", "172.17.8.104", "OpenSent")))]
    assert peers == [
        bt.Peer(session="Mesh_172_17_8_102", peer_ip="172.17.8.102", peer_type="Mesh", state="up",
                since="2016-11-21", bgp_state="Established", info=""),
        bt.Peer(session="Global_172_17_8_103", peer_ip="172.17.8.103", peer_type="Global", state="up",
                since="2016-11-21", bgp_state="Established", info=""),
        bt.Peer(session="Node_172_17_8_104", peer_ip="172.17.8.104", peer_type="Node", state="down",
                since="2016-11-21", bgp_state="OpenSent", info="Socket: error"),
    ]


def test_table_with_unknown_headings_is_refused():
    text = """0001 BIRD 1.5.0 ready.
2002-name     proto    table    state  foo       info
1002-kernel1  Kernel   master   up     2016-11-21
 device1  Device   master   up     2016-11-21
0000
"""
    with pytest.raises(bt.BirdOutputError, match="^unknown BIRD table output format$"):
        bt.scan_peers(lines(text), bt.IPV4)


def test_table_with_a_rogue_entry_is_refused():
    text = """0001 BIRD 1.5.0 ready.
2002-name     proto    table    state  since       info
1002-kernel1  Kernel   master   up     2016-11-21
 device1  Device   master   up     2016-11-21
9000
"""
    with pytest.raises(bt.BirdOutputError, match="^unexpected output line from BIRD: 9000$"):
        bt.scan_peers(lines(text), bt.IPV4)


def test_scan_ipv6_peers():
    text = """0001 BIRD 1.5.0 ready.
2002-name     proto    table    state  since       info
1002-kernel1  Kernel   master   up     2016-11-21
 device1  Device   master   up     2016-11-21
 direct1  Direct   master   up     2016-11-21
 Mesh_2001_20__8 BGP      master   up     2016-11-21  Established
0000
We never get here
"""
    peers = bt.scan_peers(lines(text), bt.IPV6)
    assert len(peers) == 1
    peer = bt.complete_peer(peers[0], lines(detail("Mesh_2001_20__8", "2001:20::8", "Established")))
    assert peer == bt.Peer(session="Mesh_2001_20__8", peer_ip="2001:20::8", peer_type="Mesh", state="up",
                           since="2016-11-21", bgp_state="Established", info="")


def test_peer_as_api():
    peer = bt.Peer(session="Mesh_2001_20__8", peer_ip="2001:20::8", peer_type="Mesh", state="up",
                   since="2016-11-21", bgp_state="Established")
    assert st.peer_status(peer) == {"peerIP": "2001:20::8", "type": "NodeMesh", "state": "Established",
                                    "since": "2016-11-21"}


def test_peer_states_outside_the_api_and_bad_addresses_are_left_out():
    peer = bt.Peer(session="Node_10_0_0_1", peer_ip="not-an-ip", peer_type="Node", state="down",
                   since="10:00:00", bgp_state="Down")
    assert st.peer_status(peer) == {"type": "NodePeer", "since": "10:00:00"}


@pytest.mark.parametrize("name,family,parsed", [
    ("Mesh_172_17_0_5", bt.IPV4, ("Mesh", "172.17.0.5")),
    ("Mesh_fd80_24e2_f998_72d7__2", bt.IPV6, ("Mesh", "fd80:24e2:f998:72d7::2")),
    ("Global_10_0_0_1_port_1790", bt.IPV4, ("Global", "10.0.0.1")),
    ("Local_Workload_10_65_0_2", bt.IPV4, ("Local_Workload", "10.65.0.2")),
    ("Meshd_1_2_3_4", bt.IPV4, None),
    ("kernel1", bt.IPV4, None),
])
def test_session_names(name, family, parsed):
    assert bt.parse_session_name(name, family) == parsed


def test_local_workload_sessions_are_not_peers():
    text = ("0001 BIRD 1.6.8 ready.\n2002-name proto table state since info\n"
            "1002-Local_Workload_10_65_0_2 BGP master up 10:00:00 Established\n"
            " Node_10_0_0_1_port_1790 BGP master start 10:00:00 Connect\n"
            " bgp1 BGP master start 10:00:00 Connect\n0000 ")
    peers = bt.scan_peers(lines(text), bt.IPV4)
    assert [(p.session, p.peer_type) for p in peers] == [("Node_10_0_0_1_port_1790", "Node")]


# --------------------------------------------------------------------------------------
# show route (route_test.go)

ROUTES = """0001 BIRD v0.3.3+birdv1.6.8 ready.
1007-0.0.0.0/0          via 172.17.0.1 on eth0 [kernel1 20:10:57] * (10)
 192.168.110.128/26 via 172.17.0.5 on eth0 [Mesh_172_17_0_5 20:10:57] * (100/0) [i]
 192.168.82.0/26    via 172.17.0.4 on eth0 [Mesh_172_17_0_4 20:11:00] * (100/0) [i]
                    via 100.100.100.100 on em0 [Global_100_100_100_100 20:11:00] (100/?) [AS65001?]
 192.168.162.128/26 blackhole [static1 20:10:56] * (200)
 192.168.162.128/32 dev tunl0 [direct1 20:10:56] * (240)
 192.168.162.129/32 dev calie58e37f9a7f [kernel1 20:11:10] * (10)
 172.17.0.0/16      dev eth0 [direct1 20:10:56] * (240)
0000
"""


def test_scan_routes():
    assert bt.scan_routes(lines(ROUTES)) == [
        bt.Route("0.0.0.0/0", "172.17.0.1", "eth0", "kernel1", True),
        bt.Route("192.168.110.128/26", "172.17.0.5", "eth0", "Mesh_172_17_0_5", True),
        bt.Route("192.168.82.0/26", "172.17.0.4", "eth0", "Mesh_172_17_0_4", True),
        bt.Route("192.168.82.0/26", "100.100.100.100", "em0", "Global_100_100_100_100", False),
        bt.Route("192.168.162.128/26", "N/A", "blackhole", "static1", True),
        bt.Route("192.168.162.128/32", "N/A", "tunl0", "direct1", True),
        bt.Route("192.168.162.129/32", "N/A", "calie58e37f9a7f", "kernel1", True),
        bt.Route("172.17.0.0/16", "N/A", "eth0", "direct1", True),
    ]


def test_scan_routes_with_several_blackhole_and_unreachable_routes():
    text = """0001 BIRD v0.3.3+birdv1.6.8 ready.
1007-0.0.0.0/0          via 172.17.0.1 on eth0 [kernel1 20:10:57] * (10)
 192.168.69.128/26  blackhole [static1 09:23:20] * (200)
                   unreachable [Mesh_10_128_0_244 09:23:24 from 10.128.0.244] (100/-) [i]
                   blackhole [kernel1 09:23:21] (10)
 192.168.36.64/26   via 10.128.0.1 on ens4 [Mesh_10_128_0_241 09:23:23 from 10.128.0.241] * (100/?) [i]
                   unreachable [Mesh_10_128_0_244 09:23:24 from 10.128.0.244] (100/-) [i]
                   via 10.128.0.1 on ens4 [Mesh_10_128_0_241 09:23:23 from 10.128.0.241] (100/?) [i]
                   unreachable [Mesh_10_128_0_200 09:23:23 from 10.128.0.200] (100/-) [i]
                   via 192.168.36.64 on vxlan.calico [kernel1 09:23:21] (10)
0000
"""
    assert bt.scan_routes(lines(text)) == [
        bt.Route("0.0.0.0/0", "172.17.0.1", "eth0", "kernel1", True),
        bt.Route("192.168.69.128/26", "N/A", "blackhole", "static1", True),
        bt.Route("192.168.69.128/26", "N/A", "unreachable", "Mesh_10_128_0_244", False),
        bt.Route("192.168.69.128/26", "N/A", "blackhole", "kernel1", False),
        bt.Route("192.168.36.64/26", "10.128.0.1", "ens4", "Mesh_10_128_0_241", True),
        bt.Route("192.168.36.64/26", "N/A", "unreachable", "Mesh_10_128_0_244", False),
        bt.Route("192.168.36.64/26", "10.128.0.1", "ens4", "Mesh_10_128_0_241", False),
        bt.Route("192.168.36.64/26", "N/A", "unreachable", "Mesh_10_128_0_200", False),
        bt.Route("192.168.36.64/26", "192.168.36.64", "vxlan.calico", "kernel1", False),
    ]


@pytest.mark.parametrize("route,api", [
    (bt.Route("192.168.110.128/26", "172.17.0.5", "eth0", "Mesh_172_17_0_5", True),
     {"type": "FIB", "destination": "192.168.110.128/26", "gateway": "172.17.0.5", "interface": "eth0",
      "learnedFrom": {"sourceType": "NodeMesh", "peerIP": "172.17.0.5"}}),
    (bt.Route("192.168.110.128/26", "172.17.0.5", "eth0", "Global_172_17_0_5", False),
     {"type": "RIB", "destination": "192.168.110.128/26", "gateway": "172.17.0.5", "interface": "eth0",
      "learnedFrom": {"sourceType": "BGPPeer", "peerIP": "172.17.0.5"}}),
    (bt.Route("192.168.162.129/32", "N/A", "calie58e37f9a7f", "kernel1", True),
     {"type": "FIB", "destination": "192.168.162.129/32", "gateway": "N/A", "interface": "calie58e37f9a7f",
      "learnedFrom": {"sourceType": "Kernel"}}),
    (bt.Route("172.17.0.0/16", "N/A", "eth0", "direct1", True),
     {"type": "FIB", "destination": "172.17.0.0/16", "gateway": "N/A", "interface": "eth0",
      "learnedFrom": {"sourceType": "Direct"}}),
    # Beyond Calico's: a local workload's session (Calico fails the whole update on it),
    # a peer on another port, a static route.
    (bt.Route("10.65.0.0/24", "10.65.0.2", "cali1", "Local_Workload_10_65_0_2", True),
     {"type": "FIB", "destination": "10.65.0.0/24", "gateway": "10.65.0.2", "interface": "cali1",
      "learnedFrom": {"sourceType": "BGPPeer", "peerIP": "10.65.0.2"}}),
    (bt.Route("10.9.0.0/16", "10.0.0.1", "eth0", "Node_10_0_0_1_port_1790", False),
     {"type": "RIB", "destination": "10.9.0.0/16", "gateway": "10.0.0.1", "interface": "eth0",
      "learnedFrom": {"sourceType": "BGPPeer", "peerIP": "10.0.0.1"}}),
    (bt.Route("10.66.0.0/26", "N/A", "blackhole", "static1", True),
     {"type": "FIB", "destination": "10.66.0.0/26", "gateway": "N/A", "interface": "blackhole",
      "learnedFrom": {"sourceType": "Static"}}),
])
def test_route_as_api(route, api):
    assert st.route_status(route, bt.IPV4) == api


def test_route_from_an_unknown_protocol():
    with pytest.raises(st.UnknownRouteSource, match="protocol 'ospf1'"):
        st.route_status(bt.Route("10.0.0.0/8", "10.1.1.1", "eth1", "ospf1", True), bt.IPV4)


def test_prohibited_and_multipath_routes_and_next_hop_lines():
    text = ("0001 BIRD 1.6.8 ready.\n"
            "1007-10.1.0.0/16        prohibited [kernel1 10:00:00] * (10)\n"
            " 10.2.0.0/16        multipath [static1 10:00:00] * (200)\n"
            " \tvia 10.0.0.1 on eth0 weight 1\n"
            " \tvia 10.0.0.2 on eth0 weight 1\n"
            "                    via 10.0.0.3 on eth0 [Mesh_10_0_0_3 10:00:01] (100/0) [i]\n"
            "0000 ")
    assert bt.scan_routes(lines(text)) == [
        bt.Route("10.1.0.0/16", "N/A", "prohibited", "kernel1", True),
        bt.Route("10.2.0.0/16", "N/A", "multipath", "static1", True),
        bt.Route("10.2.0.0/16", "10.0.0.3", "eth0", "Mesh_10_0_0_3", False),
    ]


def test_a_line_not_understood_is_skipped_and_its_destination_carried(caplog):
    text = ("0001 BIRD 1.6.8 ready.\n"
            "1007-10.1.0.0/16        strange [kernel1 10:00:00] * (10)\n"
            "                    via 10.0.0.3 on eth0 [Mesh_10_0_0_3 10:00:01] (100/0) [i]\n"
            "0000 ")
    with caplog.at_level(logging.WARNING):
        routes = bt.scan_routes(lines(text))
    assert routes == [bt.Route("10.1.0.0/16", "10.0.0.3", "eth0", "Mesh_10_0_0_3", False)]
    assert "not understood, skipped: 10.1.0.0/16" in caplog.text


def test_routes_reply_with_a_rogue_line_is_refused():
    with pytest.raises(bt.BirdOutputError, match="^unexpected output line from BIRD: 8001 Route not found$"):
        bt.scan_routes(["0001 BIRD 1.6.8 ready.", "8001 Route not found"])


# --------------------------------------------------------------------------------------
# populate

V4_STATUS = bt.DaemonStatus(True, "1.6.8", "10.0.0.1", "2021-09-19 20:48:43", "2021-09-19 20:48:51",
                            "2021-09-19 20:48:56")
V4_PEER = bt.Peer("Mesh_10_0_0_2", "Mesh", "up", "2016-11-21", "Established", "10.0.0.2", "Established")
V4_DOWN = bt.Peer("Node_10_0_0_3", "Node", "start", "2016-11-21", "Connect", "10.0.0.3", "Connect")
V4_ROUTE = bt.Route("172.17.0.0/16", "N/A", "eth0", "direct1", True)


def answers(table: dict):
    """A query answering from ``table`` ((family, class) -> answer or exception)."""
    asked = []

    def query(family, cls):
        asked.append((family, cls))
        answer = table[(family, cls)]
        if isinstance(answer, Exception):
            raise answer
        return answer
    query.asked = asked
    return query


FULL = {("4", "Agent"): V4_STATUS, ("4", "BGP"): [V4_PEER, V4_DOWN], ("4", "Routes"): [V4_ROUTE],
        ("6", "Agent"): bt.BirdUnavailable("no bird6"), ("6", "BGP"): bt.BirdUnavailable("no bird6"),
        ("6", "Routes"): bt.BirdUnavailable("no bird6")}


def test_populate_asks_each_class_ipv4_first():
    query = answers(FULL)
    result = st.populate(None, ["Agent", "BGP", "Routes"], query)
    assert query.asked == [("4", "Agent"), ("4", "BGP"), ("4", "Routes"),
                           ("6", "Agent"), ("6", "BGP"), ("6", "Routes")]
    assert result.warnings == ()
    assert result.status == {
        "lastUpdated": None,
        "agent": {"birdV4": {"state": "Ready", "version": "1.6.8", "routerID": "10.0.0.1",
                             "lastBootTime": "2021-09-19 20:48:51", "lastReconfigurationTime": "2021-09-19 20:48:56"},
                  "birdV6": {"state": "NotReady"}},
        # A BIRD6 that does not answer empties IPv6 only (Calico would wipe IPv4 too).
        "bgp": {"numberEstablishedV4": 1, "numberNotEstablishedV4": 1, "numberEstablishedV6": 0,
                "numberNotEstablishedV6": 0,
                "peersV4": [{"peerIP": "10.0.0.2", "type": "NodeMesh", "state": "Established", "since": "2016-11-21"},
                            {"peerIP": "10.0.0.3", "type": "NodePeer", "state": "Connect", "since": "2016-11-21"}]},
        "routes": {"routesV4": [{"type": "FIB", "destination": "172.17.0.0/16", "gateway": "N/A",
                                 "interface": "eth0", "learnedFrom": {"sourceType": "Direct"}}]},
    }


def test_no_bird_at_all_is_not_ready_and_empty():
    down = {(f, c): bt.BirdUnavailable("none") for f in "46" for c in st.CLASSES}
    result = st.populate(None, ["Agent", "BGP", "Routes"], answers(down))
    assert result.status == {
        "lastUpdated": None, "agent": {"birdV4": {"state": "NotReady"}, "birdV6": {"state": "NotReady"}},
        "bgp": {"numberEstablishedV4": 0, "numberNotEstablishedV4": 0, "numberEstablishedV6": 0,
                "numberNotEstablishedV6": 0},
        "routes": {}}


def test_any_other_query_failure_propagates():
    table = dict(FULL)
    table[("6", "Routes")] = RuntimeError("unexpected output line from BIRD: 9001")
    with pytest.raises(RuntimeError):
        st.populate(None, ["Agent", "BGP", "Routes"], answers(table))


def test_classes_not_asked_keep_their_last_values_and_lastupdated_stays():
    before = st.populate(None, ["Agent", "BGP", "Routes"], answers(FULL)).status
    before = st.stamped(before, dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.timezone.utc))
    query = answers({("4", "Agent"): bt.BirdUnavailable("x"), ("6", "Agent"): bt.BirdUnavailable("x")})
    after = st.populate(before, ["Agent"], query).status
    assert after["agent"]["birdV4"] == {"state": "NotReady"}
    assert after["bgp"] == before["bgp"] and after["routes"] == before["routes"]
    assert after["lastUpdated"] == "2024-05-01T10:00:00Z"


def test_unknown_classes_and_route_sources_are_warned_about_and_left_out():
    table = {("4", "Routes"): [V4_ROUTE, bt.Route("10.0.0.0/8", "10.1.1.1", "eth1", "ospf1", True)],
             ("6", "Routes"): []}
    result = st.populate(None, ["Routes", "Disks"], answers(table))
    assert result.status["routes"] == {"routesV4": [{"type": "FIB", "destination": "172.17.0.0/16",
                                                     "gateway": "N/A", "interface": "eth0",
                                                     "learnedFrom": {"sourceType": "Direct"}}]}
    assert result.warnings[0] == "spec.classes: 'Disks' is not one of Agent, BGP, Routes; ignored"
    assert "learned from protocol 'ospf1'" in result.warnings[1]


def test_stamped_is_rfc3339_utc_seconds():
    now = dt.datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert st.stamped({"agent": {}}, now) == {"agent": {}, "lastUpdated": "2024-05-01T10:00:00Z"}


def test_validate_status_names_the_resource_and_field():
    bad = st.canonical_status({"bgp": {"peersV4": [{"peerIP": "10.0.0.1.port.1790", "type": "NodeMesh"}]}})
    with pytest.raises(ValidationError, match=r"CalicoNodeStatus\(s1\)\.status\.bgp\.peersV4\[0\]\.peerIP"):
        st.validate_status(bad, "CalicoNodeStatus(s1)")
    st.validate_status(st.populate(None, ["Agent", "BGP", "Routes"], answers(FULL)).status, "CalicoNodeStatus(s1)")


# --------------------------------------------------------------------------------------
# show-status tables (tablewriter v0.0.5's defaults)

def test_peers_table():
    peers = [bt.Peer("Mesh_172_17_8_102", "Mesh", "up", "2016-11-21", "", "172.17.8.102", "Established"),
             bt.Peer("Node_172_17_8_104", "Node", "down", "2016-11-21", "Socket: error", "172.17.8.104", "OpenSent")]
    assert tables.peers_table(peers) == (
        "+--------------+-----------+-------+------------+-------------+\n"
        "| PEER ADDRESS | PEER TYPE | STATE |   SINCE    |  BGPSTATE   |\n"
        "+--------------+-----------+-------+------------+-------------+\n"
        "| 172.17.8.102 | Mesh      | up    | 2016-11-21 | Established |\n"
        "| 172.17.8.104 | Node      | down  | 2016-11-21 | OpenSent    |\n"
        "+--------------+-----------+-------+------------+-------------+\n")


def test_empty_table_has_its_heading_only():
    assert tables.routes_table([]) == (
        "+-------------+---------+-------+-------------+---------+\n"
        "| DESTINATION | GATEWAY | IFACE | LEARNEDFROM | PRIMARY |\n"
        "+-------------+---------+-------+-------------+---------+\n"
        "+-------------+---------+-------+-------------+---------+\n")


def test_numbers_are_right_aligned_and_titles_lose_underscores():
    assert tables.render_table(["a_b", "n"], [["x", "7"], ["longer", "1,000"]]) == (
        "+--------+-------+\n"
        "|  A B   |   N   |\n"
        "+--------+-------+\n"
        "| x      |     7 |\n"
        "| longer | 1,000 |\n"
        "+--------+-------+\n")


def test_show_text():
    table = {("4", "Agent"): V4_STATUS, ("4", "BGP"): [V4_PEER], ("4", "Routes"): [V4_ROUTE],
             ("6", "Agent"): bt.BirdUnavailable("Error querying BIRD: unable to connect to BIRDv6 socket: dial unix "
                                                "/r/bird6.ctl: connect: no such file or directory"),
             ("6", "BGP"): bt.BirdUnavailable("Error querying BIRD: no"),
             ("6", "Routes"): RuntimeError("Error executing command: unexpected output line from BIRD: 9001")}
    assert tables.show_text(answers(table)) == (
        "\nbird v4 status\n"
        "+-------+---------+----------+---------------------+---------------------+---------------------+\n"
        "| READY | VERSION | ROUTEID  |     SERVERTIME      |      LASTBOOT       |    LASTRECONFIG     |\n"
        "+-------+---------+----------+---------------------+---------------------+---------------------+\n"
        "| true  | 1.6.8   | 10.0.0.1 | 2021-09-19 20:48:43 | 2021-09-19 20:48:51 | 2021-09-19 20:48:56 |\n"
        "+-------+---------+----------+---------------------+---------------------+---------------------+\n"
        "\nbird v4 BGP peers\n"
        "+--------------+-----------+-------+------------+-------------+\n"
        "| PEER ADDRESS | PEER TYPE | STATE |   SINCE    |  BGPSTATE   |\n"
        "+--------------+-----------+-------+------------+-------------+\n"
        "| 10.0.0.2     | Mesh      | up    | 2016-11-21 | Established |\n"
        "+--------------+-----------+-------+------------+-------------+\n"
        "\nbird v4 routes\n"
        "+---------------+---------+-------+-------------+---------+\n"
        "|  DESTINATION  | GATEWAY | IFACE | LEARNEDFROM | PRIMARY |\n"
        "+---------------+---------+-------+-------------+---------+\n"
        "| 172.17.0.0/16 | N/A     | eth0  | direct1     | *       |\n"
        "+---------------+---------+-------+-------------+---------+\n"
        "\n\n"
        "Error getting birdStatus: Error querying BIRD: unable to connect to BIRDv6 socket: dial unix /r/bird6.ctl: "
        "connect: no such file or directory\n"
        "Error getting bird BGP peers: Error querying BIRD: no\n"
        "Error getting birdRoutes: Error executing command: unexpected output line from BIRD: 9001\n"
        "\n\n")
