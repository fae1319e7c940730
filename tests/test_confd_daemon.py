"""The long-running renderer against a real etcd, and the ``calico-node confd`` command."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import confd_fixtures as fx
from confd_bird import wait_for
from confd_fixtures import RunningRenderer
from node.confd.inputs import Settings
from node.confd.install import Installer
from node.config import DatastoreConfig
from node.datastore.client import DatastoreClient
from node.datastore.etcd import EtcdKV

REPO = Path(__file__).resolve().parents[1]
CALICO_NODE = [sys.executable, "-m", "node.cli.calico_node"]


def _Running(config, out, settings, **kwargs):
    """This module's renderers use Installer's defaults except the reload (no BIRD here)."""
    return RunningRenderer(config, settings, out, check=True, **kwargs)


def test_nothing_is_rendered_until_the_datastore_is_in_sync(tmp_path):
    # Nothing listens on port 9: the syncer never gets in sync, so no file may appear.
    dead = DatastoreConfig(etcd_endpoints=("http://127.0.0.1:9",))
    with _Running(dead, tmp_path / "out", Settings(nodename="me")) as running:
        time.sleep(1.5)
        assert running.renderer.renders == 0
        assert not (tmp_path / "out").exists()


@pytest.mark.etcd
def test_follows_changes_and_waits_for_its_own_node(tmp_path, client, etcd_clean_config):
    client.create(fx.node("other", ipv4="10.0.0.2/24"))
    with _Running(etcd_clean_config, tmp_path / "out", Settings(nodename="me")) as running:
        # In sync, but this node's Node does not exist yet: nothing is rendered.
        assert wait_for(lambda: running.renderer.last_result is not None, 10)
        assert "does not exist" in running.renderer.last_result.error
        assert not (tmp_path / "out" / "bird.cfg").exists()
        client.create(fx.node("me", ipv4="10.0.0.1/24"))
        assert wait_for(lambda: "protocol bgp Mesh_10_0_0_2" in running.text(), 10)
        client.create(fx.peer("tor", peerIP="10.0.0.254", asNumber=65000))
        assert wait_for(lambda: "protocol bgp Global_10_0_0_254" in running.text(), 10)
        client.delete("BGPPeer", "tor")
        client.delete("Node", "other")
        assert wait_for(lambda: "protocol bgp" not in running.text() and running.text(), 10)
        client.create(fx.affinity("me", "10.244.3.0/26"))
        client.create(fx.affinity("someone-else", "10.244.4.0/26"))
        assert wait_for(lambda: "route 10.244.3.0/26 blackhole;" in running.text("bird_aggr.cfg"), 10)
        assert "10.244.4.0" not in running.text("bird_aggr.cfg")


@pytest.mark.etcd
def test_unchanged_output_is_not_rewritten(tmp_path, client, etcd_clean_config):
    client.create(fx.node("me", ipv4="10.0.0.1/24"))
    with _Running(etcd_clean_config, tmp_path / "out", Settings(nodename="me")) as running:
        assert wait_for(lambda: running.text(), 10)
        assert running.renderer.wait_rendered(10)
        stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
        renders = running.renderer.renders
        for _ in range(5):
            client.update(client.get("Node", "me"))   # a no-op write still reaches the renderer
        assert wait_for(lambda: running.renderer.renders >= renders + 1, 10)
        assert running.renderer.wait_rendered(10)
        assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
        assert running.renderer.last_result.changed == []


@pytest.mark.etcd
def test_endpoint_status_files_add_local_workload_peers(tmp_path, client, etcd_clean_config):
    client.create(fx.node("me", ipv4="10.0.0.1/24"))
    client.create(fx.peer("vm-peer", localWorkloadSelector="app == 'vm'", asNumber=65100))
    status = tmp_path / "status" / "endpoint-status"
    status.mkdir(parents=True)
    settings = Settings(nodename="me", endpoint_status_prefix=str(tmp_path / "status"))
    with _Running(etcd_clean_config, tmp_path / "out", settings, endpoint_status_poll=0.1) as running:
        assert wait_for(lambda: running.text(), 10)
        assert "Local_Workload" not in running.text()
        (status / "pod1").write_text('{"ipv4Nets":["192.168.9.9/32"],"bgpPeerName":"vm-peer"}')
        assert wait_for(lambda: "protocol bgp Local_Workload_192_168_9_9" in running.text(), 10)
        (status / "pod1").unlink()
        assert wait_for(lambda: "Local_Workload" not in running.text(), 10)


@pytest.mark.etcd
def test_sync_loss_holds_the_config_and_recovers(tmp_path, etcd):
    config = DatastoreConfig(etcd_endpoints=(etcd.endpoint,))
    kv = EtcdKV(config)
    client = DatastoreClient(kv)
    try:
        client.create(fx.node("me", ipv4="10.0.0.1/24"))
        with _Running(config, tmp_path / "out", Settings(nodename="me")) as running:
            assert wait_for(lambda: "router id 10.0.0.1" in running.text(), 10)
            good = running.text()
            etcd.stop()
            time.sleep(1)
            assert running.text() == good                 # the last good config stays in place
            etcd.start()
            client.create(fx.node("other", ipv4="10.0.0.2/24"))
            assert wait_for(lambda: "Mesh_10_0_0_2" in running.text(), 30)
    finally:
        kv.close()


# --------------------------------------------------------------------------------------
# The command.

def _env(tmp_path: Path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALICO_", "ETCD_", "DATASTORE"))}
    env.update(NODENAME="me", CALICO_CONFIG_DIR=str(tmp_path / "etc"), CALICO_RUN_DIR=str(tmp_path / "run"),
               CALICO_LIB_DIR=str(tmp_path / "lib"), PYTHONPATH=str(REPO), **extra)
    return env


@pytest.mark.etcd
def test_oneshot_from_the_datastore(tmp_path, client, etcd_clean):
    env = _env(tmp_path, ETCD_ENDPOINTS=etcd_clean.endpoint)
    proc = subprocess.run(CALICO_NODE + ["confd", "--oneshot"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "does not exist" in proc.stderr          # no Node yet
    client.create(fx.node("me", ipv4="10.0.0.1/24"))
    client.create(fx.node("other", ipv4="10.0.0.2/24"))
    proc = subprocess.run(CALICO_NODE + ["confd", "--oneshot"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "etc" / "confd" / "config"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["bird.cfg", "bird6.cfg", "bird_aggr.cfg", "bird6_aggr.cfg", "bird_ipam.cfg", "bird6_ipam.cfg"])
    assert "protocol bgp Mesh_10_0_0_2" in (out / "bird.cfg").read_text()


def test_oneshot_gives_up_when_the_datastore_is_unreachable(tmp_path):
    from etcd_server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    for extra_args, extra_env, limit in ((["--oneshot-timeout", "1.5"], {}, "1.5s"),
                                         ([], {"CALICO_CONFD_ONESHOT_TIMEOUT": "1"}, "1s")):
        env = _env(tmp_path, ETCD_ENDPOINTS=endpoint, **extra_env)
        started = time.monotonic()
        proc = subprocess.run(CALICO_NODE + ["confd", "--oneshot", *extra_args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1, proc.stderr
        assert time.monotonic() - started < 15
        last = proc.stderr.splitlines()[-1]
        assert f"not in sync within {limit}" in last and f"cannot reach etcd at {endpoint}" in last, last
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "etc" / "confd" / "config" / "bird.cfg").exists()
    proc = subprocess.run(CALICO_NODE + ["confd", "--oneshot", "--oneshot-timeout", "soon"],
                          env=_env(tmp_path, ETCD_ENDPOINTS=endpoint), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "confd: --oneshot-timeout='soon' is not a number of seconds (use e.g. 30, or 0 to wait forever)"]


def test_renderer_exits_1_when_its_syncer_stops_for_good(tmp_path):
    from node.confd.daemon import Renderer
    from node.errors import ConfigError

    def broken_factory():
        raise ConfigError("ETCD_CA_CERT_FILE=/nope: no PEM certificate in the file")

    renderer = Renderer(Settings(nodename="me"), Installer(tmp_path / "out", check=False, reload=False),
                        broken_factory)
    assert renderer.run() == 1
    assert isinstance(renderer.syncer.failure, ConfigError)
    assert renderer.renders == 0


def test_oneshot_from_files_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: p}\nspec: {peerIP: 1.2.3.4, "
                   "asNumber: 65000, bogusField: 1}\n")
    cmd = CALICO_NODE + ["confd", "--oneshot", "--from-file", str(bad), "--output-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "bogusField" in proc.stderr
    proc = subprocess.run(CALICO_NODE + ["confd", "--from-file", str(bad)], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "--from-file needs --oneshot" in proc.stderr
