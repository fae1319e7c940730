"""DSCP marking (Felix's DSCP manager, iptables mode): a workload's qosControls.dscp or a
host endpoint's qos.projectcalico.org/dscp annotation puts its addresses in the
dscp-src-net set and a DSCP rule in mangle cali-egress-dscp, per IP family."""
from __future__ import annotations

import pytest

from felix_calc_builders import delete, hep, put, wep
from node.datastore.syncer import SyncStatus
from node.felix.calc import convert as cv
from node.felix.pipeline import Pipeline
from node.model.dscp import dscp_value

IFACES = {"eth0": ["10.0.0.1", "fd00::1"], "lo": ["127.0.0.1"]}


@pytest.mark.parametrize("value, number", [(0, 0), (63, 63), ("46", 46), ("046", 46), ("AF21", 18), ("af21", 18),
                                           ("EF", 46), (" cs6 ", 48), ("DF", 0)])
def test_dscp_values(value, number):
    assert dscp_value(value) == number


@pytest.mark.parametrize("value", [64, -1, "64", "AF99", "", True, 1.5, None, " 18", "１８"])
def test_bad_dscp_values(value):
    with pytest.raises(ValueError):
        dscp_value(value)


def test_conversion_reads_the_workload_field_and_the_host_annotation(caplog):
    assert cv.convert_workload_endpoint(wep("a", qosControls={"dscp": "AF11"})).dscp == 10
    assert cv.convert_workload_endpoint(wep("a", qosControls={"ingressPacketRate": 5})).dscp is None
    bad = cv.convert_workload_endpoint(wep("b", qosControls={"dscp": 99}))
    assert bad is not None and bad.dscp is None  # the endpoint stays; only the marking goes
    h = hep("h1", ips=("10.0.0.1",))
    h.metadata["annotations"] = {"qos.projectcalico.org/dscp": "40"}
    assert cv.convert_host_endpoint(h).dscp == 40
    h.metadata["annotations"] = {"qos.projectcalico.org/dscp": "fast"}
    assert cv.convert_host_endpoint(h).dscp is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("WorkloadEndpoint(ns1/" in m and "qosControls.dscp" in m and "99" in m for m in warnings)
    assert any("HostEndpoint(h1)" in m and "qos.projectcalico.org/dscp" in m and "fast" in m for m in warnings)


def _pipeline(*resources) -> Pipeline:
    p = Pipeline("node1", {})
    p.on_updates(put(*resources))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    p.set_interfaces(IFACES)
    return p


def _dscp(p: Pipeline, version: int) -> tuple[set, list]:
    dp = p.dataplanes[version]
    members = set(dp.ipsets.sets[dp.ipsets.name("dscp-src-net")].members)
    rules = [r.body for r in dp.tables["mangle"].chain("cali-egress-dscp").rules]
    return members, rules


def test_endpoints_with_dscp_are_marked_per_family():
    a = wep("a", ips=("10.65.0.5/32", "fd00:65::5/128"), qosControls={"dscp": "EF"})
    b = wep("b", ips=("10.65.0.6/32", "10.65.0.7/32"), qosControls={"dscp": 8})
    c = wep("c", ips=("10.65.0.8/32",))  # no DSCP
    h = hep("h1", ips=("10.0.0.1", "fd00::1"), iface="eth0")
    h.metadata["annotations"] = {"qos.projectcalico.org/dscp": "CS2"}
    p = _pipeline(a, b, c, h)
    assert _dscp(p, 4) == ({"10.0.0.1", "10.65.0.5", "10.65.0.6", "10.65.0.7"}, [
        "--source 10.0.0.1 --jump DSCP --set-dscp 16",
        "--source 10.65.0.5 --jump DSCP --set-dscp 46",
        "--source 10.65.0.6 --jump DSCP --set-dscp 8",
        "--source 10.65.0.7 --jump DSCP --set-dscp 8"])
    # Ordered by the sources' text, as Felix sorts them.
    assert _dscp(p, 6) == ({"fd00::1", "fd00:65::5"}, [
        "--source fd00:65::5 --jump DSCP --set-dscp 46",
        "--source fd00::1 --jump DSCP --set-dscp 16"])
    # Changes follow: a value changes, a marked endpoint goes, the host endpoint's goes.
    p.on_updates(put(wep("a", ips=("10.65.0.5/32", "fd00:65::5/128"), qosControls={"dscp": "AF41"})))
    p.on_updates(delete(b))
    h2 = hep("h1", ips=("10.0.0.1", "fd00::1"), iface="eth0")
    p.on_updates(put(h2))
    p.complete()
    assert _dscp(p, 4) == ({"10.65.0.5"}, ["--source 10.65.0.5 --jump DSCP --set-dscp 34"])
    assert _dscp(p, 6) == ({"fd00:65::5"}, ["--source fd00:65::5 --jump DSCP --set-dscp 34"])
    p.on_updates(delete(a))
    p.complete()
    assert _dscp(p, 4) == (set(), []) and _dscp(p, 6) == (set(), [])
