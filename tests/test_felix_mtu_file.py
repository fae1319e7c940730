"""The pods' MTU (Felix's determinePodMTU) and the MTU file the CNI plugin reads.

Felix's fv tests (felix/fv/mtu_test.go, vxlan_test.go) expect ``/var/lib/calico/mtu`` to
hold the host interface's MTU less the VXLAN overhead (50, or 70 when IPv6 VXLAN is on
too), or an explicitly configured VXLANMTU.
"""
from __future__ import annotations

import logging

import pytest

from felix_calc_builders import LOCAL, felix_config, node, pool
from node.datastore.syncer import SyncStatus
from node.felix.calc.offline import updates_from_resources
from node.felix.dataplane.mtu_file import MTUFileWriter
from node.felix.pipeline import Pipeline


def _pod_mtu(*resources, host_mtu=1312, env=None) -> int:
    p = Pipeline(LOCAL, env or {})
    p.on_updates(updates_from_resources([node(LOCAL, "192.0.2.10/24"), *resources]))
    p.on_status(SyncStatus.IN_SYNC)
    p.complete()
    return p.pod_mtu(host_mtu)


V4_VXLAN = pool("v4", "10.244.0.0/16", vxlanMode="Always")
V6_VXLAN = pool("v6", "fd00:244::/64", vxlanMode="Always")
V4_IPIP = pool("v4ipip", "10.245.0.0/16", ipipMode="Always")


@pytest.mark.parametrize("resources, want", [
    ((), 1312),                                   # no encapsulation: the host's MTU
    ((pool("plain", "10.246.0.0/16"),), 1312),
    ((V4_VXLAN,), 1312 - 50),
    ((V4_VXLAN, V6_VXLAN), 1312 - 70),            # the smallest of the encapsulations in use
    ((V4_IPIP,), 1312 - 20),
    ((V4_IPIP, V4_VXLAN), 1312 - 50),
    ((V4_VXLAN, felix_config("default", vxlanMTU=1300, vxlanMTUV6=1300)), 1300),
    ((V4_VXLAN, felix_config("default", ipipMTU=1000)), 1262),  # IPIP not in use: its MTU does not count
])
def test_pod_mtu(resources, want):
    assert _pod_mtu(*resources) == want


def test_pod_mtu_follows_the_host_and_the_environment():
    assert _pod_mtu(V4_VXLAN, host_mtu=9001) == 8951
    assert _pod_mtu(V4_VXLAN, env={"FELIX_VXLANMTU": "1400"}) == 1400
    assert _pod_mtu(env={"FELIX_VXLANENABLED": "true"}) == 1262  # the override turns VXLAN on without pools


def test_writer_writes_once_and_repairs_after_its_reread_interval(tmp_path):
    now = [0.0]
    writer = MTUFileWriter(tmp_path / "lib", reread_interval=90, clock=lambda: now[0])
    path = tmp_path / "lib" / "mtu"
    assert writer.apply(1262, 1312) is None
    assert path.read_text() == "1262" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert writer.apply(1262, 1312) is None and writer.writes == 1
    assert writer.apply(1242, 1312) is None and path.read_text() == "1242" and writer.writes == 2
    path.unlink()
    now[0] = 30.0
    assert writer.apply(1242) is None and not path.exists()  # not looked at yet
    now[0] = 91.0
    assert writer.apply(1242) is None and path.read_text() == "1242" and writer.writes == 3
    assert [p.name for p in (tmp_path / "lib").iterdir()] == ["mtu"]  # no temporary file left


def test_writer_keeps_a_file_that_already_says_the_same(tmp_path):
    (tmp_path / "mtu").write_text("1262\n")  # as another writer might have left it
    writer = MTUFileWriter(tmp_path)
    assert writer.apply(1262) is None and writer.writes == 0


def test_writer_failure_is_reported_once_and_retried(tmp_path, caplog):
    blocker = tmp_path / "lib"
    blocker.write_text("not a directory")
    writer = MTUFileWriter(blocker)
    with caplog.at_level(logging.ERROR):
        first = writer.apply(1262)
        assert first is not None and str(blocker / "mtu") in first
        assert writer.apply(1262) == first
    assert len([r for r in caplog.records if "MTU file" in r.getMessage()]) == 1
    blocker.unlink()
    assert writer.apply(1262) is None and (blocker / "mtu").read_text() == "1262"


def test_writer_warns_when_the_pods_mtu_exceeds_the_hosts(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        MTUFileWriter(tmp_path).apply(1450, 1312)
    assert "larger than the host interface's MTU 1312" in caplog.text


def _agent_step(env):
    from node.datastore.syncer import SyncStatus
    from node.felix.agent import Agent, _Status, _Updates

    agent = Agent(LOCAL, env, kv_factory=lambda: None, default_rp_filter="1")
    agent._interfaces = {}
    agent._handle(_Updates(updates_from_resources([node(LOCAL, "192.0.2.10/24"), V4_VXLAN])))
    agent._handle(_Status(SyncStatus.IN_SYNC))
    agent._step()
    return agent


def test_agent_writes_the_file_before_programming_and_require_mtu_file_stops_it(tmp_path, monkeypatch):
    """As Felix: the MTU file is written as the dataplane is built, before the first apply;
    with RequireMTUFile a file that cannot be written stops the agent there."""
    from node.felix.agent import Agent

    applied = []
    monkeypatch.setattr(Agent, "_apply", lambda self: applied.append(
        self.mtu_file.path.read_text() if self.mtu_file.path.exists() else None))
    lib = tmp_path / "lib"
    agent = _agent_step({"CALICO_LIB_DIR": str(lib), "FELIX_IPTABLESBACKEND": "legacy"})
    assert agent.exit_code is None and applied == ["1410"]  # written before the apply ran (1460 - 50)
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    agent = _agent_step({"CALICO_LIB_DIR": str(blocker), "FELIX_REQUIREMTUFILE": "true"})
    assert agent.exit_code == 1 and agent.iptables == {}
    agent = _agent_step({"CALICO_LIB_DIR": str(blocker), "FELIX_IPTABLESBACKEND": "legacy"})
    assert agent.exit_code is None and applied[-1] is None  # without RequireMTUFile only logged
