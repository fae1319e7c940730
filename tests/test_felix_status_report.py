"""Felix's status reports to the datastore: keys and JSON as libcalico-go's model writes and
parses them (its keys_test.go expectations), which endpoint reports there should be
(pure), the reporter's schedule against a fake datastore (rate limit, resync, retries,
refusals), and the reporter against a real etcd (the lease) and the Kubernetes stand-in."""
from __future__ import annotations

import json
import logging
import time

import pytest

import kdd_fixtures
from node.datastore.client import OperationNotSupported
from node.datastore.etcd import EtcdKV
from node.datastore.kubernetes.kv import KubeKV
from node.datastore.records import KV
from node.errors import ConnectionFailed, NotFound
from node.felix import status_report as sr
from node.felix import types as t
from node.felix.config import FelixConfig, v1_config_from_spec
from node.felix.desired import DesiredDataplane
from node.felix.endpoint_status import workload_statuses
from node.felix.rules.names import ALL_INTERFACES
from node.felix.status_reporter import StatusReporter

kube, kube_config = kdd_fixtures.kube, kdd_fixtures.kube_config  # the stand-in API server's fixtures
WID = t.WorkloadEndpointID("o1", "w1", "e1")


# -- keys (libcalico-go's keys_test.go) ---------------------------------------------------------

def test_region_string():
    assert sr.region_string("") == "no-region"
    assert sr.region_string("Europe") == "region-Europe"


def test_status_keys_with_the_no_region_region_string():
    assert sr.active_status_key("h1", sr.region_string("")) == "/calico/felix/v2/no-region/host/h1/status"
    assert sr.last_status_key("h1", sr.region_string("")) == "/calico/felix/v2/no-region/host/h1/last_reported_status"
    assert sr.workload_status_key("h1", sr.region_string(""), WID) == \
        "/calico/felix/v2/no-region/host/h1/workload/o1/w1/endpoint/e1"


def test_status_keys_with_a_region():
    assert sr.active_status_key("h1", "region-Europe") == "/calico/felix/v2/region-Europe/host/h1/status"
    assert sr.workload_status_key("h1", "region-us", WID) == "/calico/felix/v2/region-us/host/h1/workload/o1/w1/endpoint/e1"
    # The list roots Felix's resync uses (etcd lists them with a trailing slash).
    assert sr.workload_status_prefix("h1", "region-us") == "/calico/felix/v2/region-us/host/h1/workload/"
    assert sr.host_endpoint_status_prefix("h1") == "/calico/felix/v1/host/h1/endpoint/"


@pytest.mark.parametrize("region", ["", "region-us/east"])
def test_a_missing_or_slashed_region_string_is_an_error(region):
    with pytest.raises(ValueError):
        sr.active_status_key("h1", region)
    with pytest.raises(ValueError):
        sr.workload_status_key("h1", region, WID)


def test_host_endpoint_status_key_has_no_region():
    assert sr.host_endpoint_status_key("h1", t.HostEndpointID("hep1")) == "/calico/felix/v1/host/h1/endpoint/hep1"
    assert sr.host_endpoint_status_key("h1", t.HostEndpointID("a/b%c")) == "/calico/felix/v1/host/h1/endpoint/a%2fb%25c"


def test_names_are_escaped_as_libcalico_escapes_them():
    wid = t.WorkloadEndpointID("open/stack", "work/load", "end/point")
    key = sr.workload_status_key("foobar", "no-region", wid)
    assert key == "/calico/felix/v2/no-region/host/foobar/workload/open%2fstack/work%2fload/endpoint/end%2fpoint"
    assert sr.parse_workload_status_key(key) == ("no-region", "foobar", wid)
    # Kubernetes workloads are namespace/pod; only % and / are escaped.
    k8s = t.WorkloadEndpointID("k8s", "ns1/pod 50%", "eth0")
    assert sr.workload_status_key("h", "no-region", k8s) == "/calico/felix/v2/no-region/host/h/workload/k8s/ns1%2fpod 50%25/endpoint/eth0"


def test_key_parsing():
    assert sr.parse_workload_status_key("/calico/felix/v2/region-Europe/host/h1/workload/o1/w1/endpoint/e1") == \
        ("region-Europe", "h1", WID)
    assert sr.parse_host_endpoint_status_key("/calico/felix/v1/host/h1/endpoint/x%2fy") == ("h1", t.HostEndpointID("x/y"))
    for bad in ("/calico/felix/v2/region-Europe/host/h1/status", "/calico/felix/v2//foo/host",
                "/calico/felix/v2/r/host/h1/workload/o1/w1/endpoint/e1/extra"):
        assert sr.parse_workload_status_key(bad) is None
    assert sr.own_endpoint_status_key("/calico/felix/v2/no-region/host/h1/workload/o1/w1/endpoint/e1", "h1", "no-region")
    assert not sr.own_endpoint_status_key("/calico/felix/v2/region-Asia/host/h1/workload/o1/w1/endpoint/e1",
                                          "h1", "no-region")
    assert not sr.own_endpoint_status_key("/calico/felix/v1/host/h2/endpoint/x", "h1", "no-region")


# -- values ---------------------------------------------------------------------------------------

def test_status_report_is_gos_json():
    when = 1700000000.75  # 2023-11-14T22:13:20.75Z: RFC 3339 drops the fraction
    assert sr.iso_timestamp(when) == "2023-11-14T22:13:20Z"
    text = sr.status_report_json(sr.iso_timestamp(when), 12.5, True)
    assert text == '{"time":"2023-11-14T22:13:20Z","uptime":12.5,"first_update":true}'
    assert sr.status_report_json("x", 30.0, False) == '{"time":"x","uptime":30,"first_update":false}'
    assert json.loads(sr.status_report_json("x", 10.000123456, False))["uptime"] == 10.000123456


@pytest.mark.parametrize("value, text", [(0.0, "0"), (90.0, "90"), (0.1, "0.1"), (1e-7, "1e-7"),
                                         (1e21, "1e+21"), (1e17, "100000000000000000"), (123.456, "123.456")])
def test_floats_as_go_writes_them(value, text):
    assert sr.go_float(value) == text


def test_endpoint_status_values():
    assert sr.endpoint_status_json("up") == '{"status":"up"}'
    assert sr.parse_endpoint_status(b'{"status":"down","other":1}') == "down"
    assert sr.parse_endpoint_status(b"{}") == ""
    assert sr.parse_endpoint_status(b"not json") is None
    assert sr.parse_endpoint_status(b'["up"]') is None


# -- which reports ---------------------------------------------------------------------------------

def test_host_endpoint_status():
    up = {"eth0", "eth1"}
    assert sr.host_endpoint_status(("eth0", "eth1"), up) == "up"
    assert sr.host_endpoint_status(("eth0", "eth2"), up) == "down"
    assert sr.host_endpoint_status((), up) == "error"  # resolved to no interface
    assert sr.host_endpoint_status((ALL_INTERFACES,), set()) == "up"  # `*`: interfaces do not count


def test_families_combine_to_the_worse_status():
    a, b, c = (t.HostEndpointID(n) for n in "abc")
    v4 = {a: ("eth0",), b: ("eth0",), c: ("eth1",)}
    v6 = {a: ("eth0",), b: (), c: ("eth1",)}
    assert sr.host_endpoint_statuses([v4, v6], ["eth0"]) == {a: "up", b: "error", c: "down"}
    assert sr.worst(["up", "down"]) == "down" and sr.worst([]) == ""


def test_desired_endpoint_reports_from_the_dataplane_picture():
    config = FelixConfig.resolve({})
    dp = DesiredDataplane(config, 4, "h1")
    hep_named, hep_ips, hep_none = t.HostEndpointID("named"), t.HostEndpointID("by-ip"), t.HostEndpointID("none")
    wid = t.WorkloadEndpointID("k8s", "ns1/a", "eth0")
    dp.on_messages([
        t.HostEndpointUpdate(hep_named, t.HostEndpoint(name="eth0")),
        t.HostEndpointUpdate(hep_ips, t.HostEndpoint(expected_ipv4_addrs=("192.0.2.5",))),
        t.HostEndpointUpdate(hep_none, t.HostEndpoint(name="nosuch0")),
        t.WorkloadEndpointUpdate(wid, t.WorkloadEndpoint(name="calia", state="active")),
    ])
    dp.set_interfaces({"eth0": [], "eth1": ["192.0.2.5"], "calia": []})
    dp.complete()
    assert dp.host_endpoint_interfaces() == {hep_named: ("eth0",), hep_ips: ("eth1",), hep_none: ()}
    up = ["eth0", "calia"]
    wl = workload_statuses(dp.active_workload_endpoints(), up)
    heps = sr.host_endpoint_statuses([dp.host_endpoint_interfaces()], up)
    assert sr.desired_endpoint_reports("h1", "region-r1", wl, heps) == {
        "/calico/felix/v2/region-r1/host/h1/workload/k8s/ns1%2fa/endpoint/eth0": "up",
        "/calico/felix/v1/host/h1/endpoint/named": "up",
        "/calico/felix/v1/host/h1/endpoint/by-ip": "down",
        "/calico/felix/v1/host/h1/endpoint/none": "error",
    }


# -- configuration ----------------------------------------------------------------------------------

def test_reporting_parameters():
    config = FelixConfig.resolve({})
    assert (config.ReportingIntervalSecs, config.ReportingTTLSecs) == (30.0, 90.0)
    assert (config.EndpointReportingEnabled, config.EndpointReportingDelaySecs, config.OpenstackRegion) == \
        (False, 1.0, "")
    reporter = StatusReporter.from_felix(lambda: None, "h1", config)
    assert reporter.enabled and not reporter.endpoint_reporting and reporter.region == "no-region"
    spec = v1_config_from_spec({"reportingTTL": "1m30s", "endpointReportingDelay": "2s",
                                "endpointReportingEnabled": True, "openstackRegion": "europe-1",
                                "reportingInterval": "0s"})
    config = FelixConfig.resolve({}, global_config=spec)
    assert (config.ReportingTTLSecs, config.EndpointReportingDelaySecs, config.EndpointReportingEnabled,
            config.OpenstackRegion, config.ReportingIntervalSecs) == (90.0, 2.0, True, "europe-1", 0.0)
    assert StatusReporter.from_felix(lambda: None, "h1", config).region == "region-europe-1"


@pytest.mark.parametrize("region", ["Europe", "a_b", "-ab", "ab-", "a" * 47, "a.b"])
def test_openstack_region_must_be_a_short_dns_label(region):
    config = FelixConfig.resolve({"FELIX_OPENSTACKREGION": region})
    assert config.OpenstackRegion == ""
    assert "OpenstackRegion" in config.errors[0]  # Felix refuses to start with it (die-on-fail)


def test_openstack_region_accepts_a_46_character_label():
    assert FelixConfig.resolve({"FELIX_OPENSTACKREGION": "r" * 46}).OpenstackRegion == "r" * 46


# -- the reporter against a fake datastore -------------------------------------------------------------

class FakeKV:
    def __init__(self):
        self.data: dict[str, bytes] = {}
        self.ttls: dict[str, float | None] = {}
        self.calls: list[tuple] = []
        self.down = False

    def _check(self):
        if self.down:
            raise ConnectionFailed("etcd at http://127.0.0.1:2379 is unreachable")

    def put(self, key, value, *, ttl=None):
        self._check()
        self.calls.append(("put", key))
        self.data[key] = value.encode() if isinstance(value, str) else value
        self.ttls[key] = ttl
        return 1

    def delete(self, key, revision=None):
        self._check()
        self.calls.append(("delete", key))
        if key not in self.data:
            raise NotFound(key)
        return KV(key, self.data.pop(key), 1, 1)

    def list(self, prefix):
        self._check()
        self.calls.append(("list", prefix))
        return [KV(k, v, 1, 1) for k, v in sorted(self.data.items()) if k.startswith(prefix)], 1


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def reporter(kv, clock, **kw) -> StatusReporter:
    kw.setdefault("interval", 30.0)
    return StatusReporter(lambda: kv, "h1", clock=clock, wall_clock=lambda: 1700000000.0, started_at=990.0,
                          rand=lambda: 0.0, **kw)


def test_process_status_after_ten_seconds_then_every_interval():
    kv, clock = FakeKV(), Clock()
    rep = reporter(kv, clock, ttl=90.0)
    assert rep.run_once() == 10.0 and not kv.calls
    clock.now += 10
    assert rep.run_once() == 30.0
    active, last = "/calico/felix/v2/no-region/host/h1/status", "/calico/felix/v2/no-region/host/h1/last_reported_status"
    assert kv.calls == [("put", active), ("put", last)]
    assert (kv.ttls[active], kv.ttls[last]) == (90.0, None)
    assert json.loads(kv.data[active]) == {"time": "2023-11-14T22:13:20Z", "uptime": 20, "first_update": True}
    clock.now += 30
    rep.run_once()
    assert json.loads(kv.data[active])["first_update"] is False


def test_process_status_retries_and_keeps_first_update_until_stored(caplog):
    kv, clock = FakeKV(), Clock()
    rep = reporter(kv, clock, initial_delay=0)
    kv.down = True
    with caplog.at_level(logging.DEBUG, "node.felix.status_reporter"):
        rep.run_once()
        clock.now += 30
        rep.run_once()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # the active and the last key, once each however long it lasts
    kv.down = False
    clock.now += 30
    rep.run_once()
    assert json.loads(kv.data["/calico/felix/v2/no-region/host/h1/status"])["first_update"] is True


def test_a_zero_interval_turns_process_status_off():
    kv, clock = FakeKV(), Clock()
    rep = reporter(kv, clock, interval=0.0)
    assert not rep.enabled
    clock.now += 100
    rep.run_once()
    assert not kv.calls


KEY_A = "/calico/felix/v2/no-region/host/h1/workload/k8s/ns1%2fa/endpoint/eth0"
KEY_B = "/calico/felix/v2/no-region/host/h1/workload/k8s/ns1%2fb/endpoint/eth0"
KEY_HEP = "/calico/felix/v1/host/h1/endpoint/hep1"


def endpoint_reporter(kv, clock, **kw):
    return reporter(kv, clock, interval=0.0, endpoint_reporting=True, endpoint_delay=1.0, **kw)


def drain(rep, clock, rounds=20):
    for _ in range(rounds):
        wait = rep.run_once()
        clock.now += max(wait, 0.001) if wait < 3600 else 0


def test_endpoint_reports_resync_first_then_one_write_per_delay():
    kv, clock = FakeKV(), Clock()
    kv.data.update({
        KEY_A: b'{"status":"up"}',                      # already right: not rewritten
        KEY_B: b'{"status":"up"}',                      # an earlier run's endpoint: deleted
        "/calico/felix/v1/host/h1/endpoint/old": b"garbage",  # unreadable and unwanted: deleted
        "/calico/felix/v2/no-region/host/h2/workload/k8s/x/endpoint/eth0": b'{"status":"up"}',  # other host
        "/calico/felix/v2/region-r/host/h1/workload/k8s/x/endpoint/eth0": b'{"status":"up"}',   # other region
    })
    rep = endpoint_reporter(kv, clock)
    rep.set_endpoint_statuses({KEY_A: "up", KEY_HEP: "down"})
    assert rep.run_once() == 1.0  # listed, then one operation; the next one a delay later
    assert kv.calls[:2] == [("list", "/calico/felix/v2/no-region/host/h1/workload/"),
                            ("list", "/calico/felix/v1/host/h1/endpoint/")]
    assert len(kv.calls) == 3
    drain(rep, clock)
    ops = [c for c in kv.calls if c[0] != "list"]
    assert sorted(ops) == [("delete", "/calico/felix/v1/host/h1/endpoint/old"), ("delete", KEY_B), ("put", KEY_HEP)]
    assert set(kv.data) == {KEY_A, KEY_HEP, "/calico/felix/v2/no-region/host/h2/workload/k8s/x/endpoint/eth0",
                            "/calico/felix/v2/region-r/host/h1/workload/k8s/x/endpoint/eth0"}
    assert kv.data[KEY_HEP] == b'{"status":"down"}'


def test_endpoint_changes_coalesce_and_deletions_follow():
    kv, clock = FakeKV(), Clock()
    rep = endpoint_reporter(kv, clock)
    rep.set_endpoint_statuses({KEY_A: "up"})
    rep.run_once()
    assert kv.data[KEY_A] == b'{"status":"up"}'
    # Within one delay: down, up again, and a new endpoint that comes and goes.
    rep.set_endpoint_statuses({KEY_A: "down", KEY_B: "up"})
    rep.set_endpoint_statuses({KEY_A: "up"})
    kv.calls.clear()
    drain(rep, clock)
    writes = [c for c in kv.calls if c[0] != "list"]  # (the drain goes through resyncs)
    assert writes == []  # nothing differs from what is stored
    rep.set_endpoint_statuses({})
    drain(rep, clock)
    writes = [c for c in kv.calls if c[0] != "list"]
    assert writes == [("delete", KEY_A)] and KEY_A not in kv.data


def test_endpoint_writes_are_retried_after_an_outage(caplog):
    kv, clock = FakeKV(), Clock()
    rep = endpoint_reporter(kv, clock)
    kv.down = True
    rep.set_endpoint_statuses({KEY_A: "up"})
    with caplog.at_level(logging.DEBUG, "node.felix.status_reporter"):
        drain(rep, clock, 30)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] and \
        len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2  # the resync and the write
    kv.down = False
    drain(rep, clock, 30)
    assert kv.data == {KEY_A: b'{"status":"up"}'}
    # A key deleted behind the reporter's back is written again at the next resync.
    del kv.data[KEY_A]
    clock.now += rep.resync_interval
    drain(rep, clock)
    assert kv.data == {KEY_A: b'{"status":"up"}'}


def test_a_datastore_without_status_keys_is_skipped_quietly(caplog):
    class Refusing(FakeKV):
        def put(self, key, value, *, ttl=None):
            self.calls.append(("put", key))
            raise OperationNotSupported("Apply", key, "no Kubernetes object holds this key")

    kv, clock = Refusing(), Clock()
    rep = reporter(kv, clock, initial_delay=0, endpoint_reporting=True)
    rep.set_endpoint_statuses({KEY_A: "up"})
    with caplog.at_level(logging.DEBUG, "node.felix.status_reporter"):
        drain(rep, clock)
        clock.now += 1000
        drain(rep, clock)
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert len([c for c in kv.calls if c[0] == "put"]) == 2  # one refusal of each kind, then no more
    assert not rep.endpoint_reporting and rep.interval == 0


# -- the reporter against real datastores -------------------------------------------------------------

def test_active_status_is_on_a_lease_that_expires(etcd_clean, etcd_clean_config, etcd_kv):
    rep = StatusReporter(lambda: EtcdKV(etcd_clean_config), "h1", interval=0.5, ttl=2.0, initial_delay=0)
    active = "/calico/felix/v2/no-region/host/h1/status"
    last = "/calico/felix/v2/no-region/host/h1/last_reported_status"
    rep.start()
    try:
        deadline = time.monotonic() + 10
        while rep.process_reports < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        rep.stop()
    assert rep.process_reports >= 2
    with etcd_clean.client() as client:
        value, meta = client.get(active)
        assert json.loads(value)["first_update"] is False
        assert meta.lease_id != 0
        assert client.get_lease_info(meta.lease_id).grantedTTL == 2
        _, last_meta = client.get(last)
        assert last_meta.lease_id == 0
    deadline = time.monotonic() + 10
    while etcd_kv.get(active) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert etcd_kv.get(active) is None  # the lease ran out with nobody renewing it
    assert json.loads(etcd_kv.get(last).value)["uptime"] > 0


def test_kubernetes_datastore_is_skipped_quietly(kube_config, caplog):
    """libcalico-go's Kubernetes backend refuses these keys (ErrorOperationNotSupported):
    one debug line each, then the reporter's thread ends."""
    made = []

    def factory():
        made.append(KubeKV(kube_config, env={}))
        return made[-1]
    rep = StatusReporter(factory, "h1", interval=0.2, initial_delay=0, endpoint_reporting=True,
                         endpoint_delay=0.05)
    with caplog.at_level(logging.DEBUG, "node.felix.status_reporter"):
        rep.start()
        rep.set_endpoint_statuses({KEY_A: "up"})
        rep._thread.join(10)
        assert not rep._thread.is_alive()
        rep.stop()
    assert not rep.interval and not rep.endpoint_reporting and len(made) == 1
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("node.felix.status_reporter") and r.levelno > logging.DEBUG] == []
    assert any("doesn't support" in r.getMessage() for r in caplog.records)
