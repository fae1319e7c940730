"""Endpoint status files (Felix's status file reporter): names, contents and which
endpoints have one (pure), and the directory kept equal to them (a real directory)."""
from __future__ import annotations

import json
import os

import pytest

from node.confd.inputs import read_endpoint_status_dir
from node.felix import types as t
from node.felix.dataplane.status_files import StatusFileWriter
from node.felix.endpoint_status import (
    desired_status_files,
    status_document,
    status_filename,
    status_text,
    workload_status,
)

WEP = t.WorkloadEndpoint(name="cali12345", mac="ee:ee:ee:ee:ee:ee", ipv4_nets=("10.65.0.10/32",),
                         ipv6_nets=("fd00:65::10/128",), local_bgp_peer="peer-a")


@pytest.mark.parametrize("wid, name", [
    # libcalico-go's workloadendpointstatus_test.go vectors.
    (t.WorkloadEndpointID("k8s", "default/testpod1", "eth0"), "k8s default%2Ftestpod1 eth0"),
    (t.WorkloadEndpointID("k8/s", "defaul/t/testp/od1", "eth/0"), "k8%2Fs defaul%2Ft%2Ftestp%2Fod1 eth%2F0"),
    (t.WorkloadEndpointID("k8s", "default/t est pod1", "eth0"), "k8s default%2Ft%20est%20pod1 eth0"),
    # Go's url.PathEscape keeps $&+=:@ and escapes ;,? and the rest.
    (t.WorkloadEndpointID("o", "a$&+=:@b;c,d?e!", "x~y_z.w-v"), "o a$&+=:@b%3Bc%2Cd%3Fe%21 x~y_z.w-v"),
])
def test_status_filename(wid, name):
    assert status_filename(wid) == name


def test_status_document_is_gos_json():
    assert status_text(WEP) == ('{"ifaceName":"cali12345","mac":"ee:ee:ee:ee:ee:ee","ipv4Nets":["10.65.0.10/32"],'
                                '"ipv6Nets":["fd00:65::10/128"],"bgpPeerName":"peer-a"}')
    # Empty fields are left out (omitempty).
    assert status_text(t.WorkloadEndpoint(name="cali1")) == '{"ifaceName":"cali1"}'


@pytest.mark.parametrize("state, up, unconfigured, status", [
    ("active", True, False, "up"),
    ("active", False, False, "down"),     # interface not oper-up
    ("active", True, True, "down"),       # its sysctls could not be written
    ("inactive", True, False, "down"),    # admin down
])
def test_workload_status(state, up, unconfigured, status):
    assert workload_status(t.WorkloadEndpoint(name="cali1", state=state), up, unconfigured) == status


def test_only_endpoints_that_are_up_have_a_file():
    a, b, c = (t.WorkloadEndpointID("k8s", f"ns/{p}", "eth0") for p in "abc")
    eps = {a: WEP, b: t.WorkloadEndpoint(name="calib"), c: t.WorkloadEndpoint(name="calic")}
    assert desired_status_files(eps, ["cali12345", "calib", "calic"], ["calic"], {4: "169.254.0.179"}) == {
        "k8s ns%2Fa eth0": status_document(WEP), "k8s ns%2Fb eth0": {"ifaceName": "calib"}}


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def listing(directory) -> dict[str, str]:
    return {p: open(os.path.join(directory, p)).read() for p in sorted(os.listdir(directory))}


def test_writer_keeps_the_directory_equal_to_the_desired_files(tmp_path):
    clock = Clock()
    writer = StatusFileWriter(str(tmp_path), clock=clock)
    directory = tmp_path / "endpoint-status"
    desired = {"k8s ns%2Fa eth0": status_document(WEP)}
    assert writer.apply(desired) == []
    assert listing(directory) == {"k8s ns%2Fa eth0": status_text(WEP)}
    # Unchanged: nothing written. The confd side reads what we wrote.
    assert writer.apply(desired) == [] and writer.writes == 1
    assert read_endpoint_status_dir(directory)["k8s ns%2Fa eth0"].bgp_peer_name == "peer-a"
    # A change rewrites the file; a file no endpoint wants goes.
    other = {"k8s ns%2Fb eth0": {"ifaceName": "calib"}}
    assert writer.apply(other) == []
    assert listing(directory) == {"k8s ns%2Fb eth0": '{"ifaceName":"calib"}'}


def test_writer_reads_the_directory_at_start_and_every_interval(tmp_path):
    directory = tmp_path / "endpoint-status"
    directory.mkdir()
    # Left by an earlier run: one still wanted (same object, other formatting), one stale,
    # one unreadable, and a directory (never touched).
    (directory / "k8s ns%2Fa eth0").write_text(json.dumps(status_document(WEP), indent=2))
    (directory / "k8s ns%2Fold eth0").write_text('{"ifaceName":"caliold"}')
    (directory / "k8s ns%2Fb eth0").write_text('{"ifaceName":')
    (directory / "subdir").mkdir()
    clock = Clock()
    writer = StatusFileWriter(str(tmp_path), clock=clock)
    desired = {"k8s ns%2Fa eth0": status_document(WEP), "k8s ns%2Fb eth0": {"ifaceName": "calib"}}
    assert writer.apply(desired) == []
    assert sorted(os.listdir(directory)) == ["k8s ns%2Fa eth0", "k8s ns%2Fb eth0", "subdir"]
    assert writer.writes == 1 and writer.removals == 1  # only the unreadable one rewritten
    # Someone deletes a file: trusted until the interval passes, then restored.
    (directory / "k8s ns%2Fa eth0").unlink()
    clock.now = 5.0
    writer.apply(desired)
    assert not (directory / "k8s ns%2Fa eth0").exists()
    clock.now = 10.0
    writer.apply(desired)
    assert (directory / "k8s ns%2Fa eth0").read_text() == status_text(WEP)


def test_writer_failures_name_the_file_and_the_rest_goes_on(tmp_path):
    directory = tmp_path / "endpoint-status"
    directory.mkdir()
    (directory / "blocked").mkdir()  # a directory where a file should be written
    writer = StatusFileWriter(str(tmp_path))
    failures = writer.apply({"blocked": {"ifaceName": "cali1"}, "fine": {"ifaceName": "cali2"}})
    assert len(failures) == 1 and str(directory / "blocked") in failures[0]
    assert (directory / "fine").read_text() == '{"ifaceName":"cali2"}'
    # A missing prefix is created; an impossible one is a failure naming the directory.
    assert StatusFileWriter(str(tmp_path / "new" / "prefix")).apply({}) == []
    assert (tmp_path / "new" / "prefix" / "endpoint-status").is_dir()
    (tmp_path / "file").write_text("")
    failures = StatusFileWriter(str(tmp_path / "file")).apply({})
    assert failures and "endpoint-status" in failures[0]


def test_status_prefix_follows_the_run_directory_unless_configured():
    from node.felix.agent import endpoint_status_prefix
    assert endpoint_status_prefix("/var/run/calico", {}) == "/var/run/calico"
    assert endpoint_status_prefix("/var/run/calico", {"CALICO_RUN_DIR": "/tmp/n1/run"}) == "/tmp/n1/run"
    assert endpoint_status_prefix("/srv/status", {"CALICO_RUN_DIR": "/tmp/n1/run"}) == "/srv/status"
    assert endpoint_status_prefix("", {"CALICO_RUN_DIR": "/tmp/n1/run"}) == ""  # off
    # Set explicitly (even to the default): kept.
    assert endpoint_status_prefix("/var/run/calico", {"CALICO_RUN_DIR": "/tmp/n1/run"},
                                  configured=True) == "/var/run/calico"


def test_a_peered_workload_needs_the_peering_address_of_every_family():
    """Felix's configureInterface fails for a workload with a local BGP peer while the
    peering address of any family it runs is missing (or not an address of that
    family), so the workload is down and has no file."""
    wid = t.WorkloadEndpointID("k8s", "ns/a", "eth0")
    peered = {wid: t.WorkloadEndpoint(name="calia", local_bgp_peer="p")}
    plain = {wid: t.WorkloadEndpoint(name="calia")}
    both = {4: "169.254.0.179", 6: "fd00::179"}
    assert desired_status_files(peered, ["calia"], (), both, (4, 6))
    assert desired_status_files(peered, ["calia"], (), {4: "169.254.0.179"}, (4,))
    assert not desired_status_files(peered, ["calia"], (), {4: "169.254.0.179"}, (4, 6))
    assert not desired_status_files(peered, ["calia"], (), {4: "fd00::179"}, (4,))
    assert not desired_status_files(peered, ["calia"], (), {}, (4,))
    assert desired_status_files(plain, ["calia"], (), {}, (4, 6))
