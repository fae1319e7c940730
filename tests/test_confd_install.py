"""Installing rendered files: change detection, the bird -p gate, atomic writes, and
reloading a real BIRD over its control socket."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import confd_fixtures as fx
from confd_bird import BirdProcess, wait_for
from netns import Namespace
from node import bird
from node.confd.cycle import render_cycle
from node.confd.inputs import Settings
from node.confd.install import Installer, krt_tunnel_supported, write_atomically
from node.confd.picture import build_picture
from node.confd.render import FAMILY_FILES, render_family

SETTINGS = Settings(nodename="node-a")


def _cluster(*extra):
    return fx.inputs(
        fx.bgp_config(asNumber=64512),
        fx.node("node-a", ipv4="10.99.0.1/24"),
        fx.node("node-b", ipv4="10.99.0.2/24"),
        fx.pool("pool", "10.244.0.0/16"),
        fx.affinity("node-a", "10.244.1.0/26"),
        *extra,
    )


def _files(inputs, version: int = 4) -> dict[str, str]:
    return render_family(build_picture(inputs, SETTINGS).family(version))


def _updated(caplog) -> list[str]:
    return [Path(r.getMessage().split()[2]).name for r in caplog.records
            if r.getMessage().startswith("Target config ")]


def test_write_atomically_replaces_content_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "bird.cfg"
    target.write_text("old")
    inode = target.stat().st_ino
    write_atomically(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_ino != inode            # a new file was renamed over the old one
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path) == ["bird.cfg"]


def test_first_install_writes_includes_before_main_file_and_then_nothing_when_unchanged(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    installer = Installer(tmp_path, reload=False)
    files = _files(_cluster())
    outcome = installer.install_family(4, files)
    assert outcome.installed and not outcome.failed
    assert _updated(caplog) == ["bird_aggr.cfg", "bird_ipam.cfg", "bird.cfg"]
    stamps = {n: (tmp_path / n).stat().st_mtime_ns for n in FAMILY_FILES[4]}
    caplog.clear()
    again = installer.install_family(4, files)
    assert again.changed == [] and not again.installed
    assert _updated(caplog) == []
    assert stamps == {n: (tmp_path / n).stat().st_mtime_ns for n in FAMILY_FILES[4]}


def test_only_changed_files_are_rewritten(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    installer = Installer(tmp_path, reload=False)
    installer.install_family(4, _files(_cluster()))
    caplog.clear()
    outcome = installer.install_family(4, _files(_cluster(fx.affinity("node-a", "10.244.2.0/26"))))
    assert outcome.changed == ["bird_aggr.cfg"]
    assert _updated(caplog) == ["bird_aggr.cfg"]
    assert "route 10.244.2.0/26 blackhole;" in (tmp_path / "bird_aggr.cfg").read_text()


def test_config_bird_rejects_is_logged_and_not_installed(tmp_path, caplog):
    installer = Installer(tmp_path, reload=False)
    installer.install_family(4, _files(_cluster()))
    before = {n: (tmp_path / n).read_text() for n in FAMILY_FILES[4]}
    broken = dict(_files(_cluster(fx.peer("ext", peerIP="10.99.0.9", asNumber=65000))))
    broken["bird_ipam.cfg"] += "\nthis is not bird syntax;\n"
    caplog.set_level(logging.ERROR)
    outcome = installer.install_family(4, broken)
    assert not outcome.installed
    assert "bird_ipam.cfg" in outcome.error and "syntax error" in outcome.error  # BIRD's own message
    assert any("keeping the installed config" in r.getMessage() for r in caplog.records)
    assert before == {n: (tmp_path / n).read_text() for n in FAMILY_FILES[4]}


def test_rejected_config_is_installed_on_first_start_as_calico_does(tmp_path, caplog):
    broken = dict(_files(_cluster()))
    broken["bird.cfg"] += "\nprotocol nonsense {}\n"
    caplog.set_level(logging.WARNING)
    outcome = Installer(tmp_path, reload=False).install_family(4, broken)
    assert outcome.installed and not outcome.failed
    assert (tmp_path / "bird.cfg").read_text() == broken["bird.cfg"]
    assert any("installing it anyway" in r.getMessage() for r in caplog.records)


def test_stock_bird_lacks_krt_tunnel():
    # Debian's BIRD 1.6.8 is upstream BIRD; krt_tunnel exists only in Calico's fork.
    assert krt_tunnel_supported("bird") is False


def test_krt_tunnel_config_is_held_back_with_one_warning_naming_the_pools(tmp_path, caplog):
    installer = Installer(tmp_path, reload=False)
    settings = SETTINGS
    base = _cluster(fx.pool("ipip-a", "10.250.0.0/16", ipipMode="Always"),
                    fx.pool("ipip-b", "10.251.0.0/16", ipipMode="CrossSubnet"))
    assert render_cycle(base, settings, installer).ok
    installed = (tmp_path / "bird_ipam.cfg").read_text()
    asks_for_tunnels = _cluster(fx.bgp_config(asNumber=64512, programClusterRoutes="Enabled"),
                                fx.pool("ipip-a", "10.250.0.0/16", ipipMode="Always"),
                                fx.pool("ipip-b", "10.251.0.0/16", ipipMode="CrossSubnet"))
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        result = render_cycle(asks_for_tunnels, settings, installer)
        assert not result.ok
    warnings = [r.getMessage() for r in caplog.records if "krt_tunnel" in r.getMessage()]
    assert len(warnings) == 1 and "ipip-a, ipip-b" in warnings[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (tmp_path / "bird_ipam.cfg").read_text() == installed
    # The rendered text itself is Calico's, krt_tunnel included.
    rendered = _files(asks_for_tunnels)["bird_ipam.cfg"]
    assert 'if (net ~ 10.250.0.0/16) then { krt_tunnel="tunl0"; accept; }' in rendered
    # The IPv6 family is not affected.
    assert (tmp_path / "bird6.cfg").exists()


# --------------------------------------------------------------------------------------
# A real BIRD.

@pytest.fixture
def namespace():
    # (No dummy interface module in this kernel: a veth pair inside the namespace.)
    with Namespace("cfdi") as ns:
        ns.run("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
        ns.run("ip", "addr", "add", "10.99.0.1/24", "dev", "v0")
        ns.run("ip", "link", "set", "v0", "up")
        ns.run("ip", "link", "set", "v1", "up")
        yield ns


def test_reload_over_control_socket_without_restarting_bird(tmp_path, namespace, caplog):
    caplog.set_level(logging.INFO)
    out, sock = tmp_path / "config", tmp_path / "bird.ctl"
    installer = Installer(out, sockets={4: sock, 6: tmp_path / "bird6.ctl"})
    assert render_cycle(_cluster(), SETTINGS, installer).ok
    with BirdProcess(namespace, out / "bird.cfg", sock) as proc:
        names = {p.name for p in bird.show_protocols(sock)}
        assert "Mesh_10_99_0_2" in names and "Global_10_99_0_9" not in names
        pid = proc.pid
        result = render_cycle(_cluster(fx.peer("ext", peerIP="10.99.0.9", asNumber=65000)), SETTINGS, installer)
        assert result.ok and result.families[0].reloaded
        protocols = {p.name: p for p in bird.show_protocols(sock)}
        assert protocols["Global_10_99_0_9"].proto == "BGP"
        assert proc.alive() and proc.pid == pid
    assert any(r.getMessage().startswith("BIRD (IPv4) reloaded: ") and "Reconfigured" in r.getMessage()
               for r in caplog.records)
    # bird6 is not running: skipped quietly.
    assert not result.families[1].failed and not result.families[1].reloaded


def test_reload_failure_is_reported_not_hidden(tmp_path, namespace, caplog):
    out, sock = tmp_path / "config", tmp_path / "bird.ctl"
    Installer(out, reload=False).install_family(4, _files(_cluster()))
    with BirdProcess(namespace, out / "bird.cfg", sock):
        broken = dict(_files(_cluster()))
        broken["bird_aggr.cfg"] += "\nnot a statement;\n"
        caplog.set_level(logging.ERROR)
        # Without the gate, BIRD itself refuses the file on reload; that must surface.
        outcome = Installer(out, check=False, sockets={4: sock}).install_family(4, broken)
        assert outcome.installed and not outcome.reloaded
        assert "rejected the new config" in outcome.error and "bird_aggr.cfg" in outcome.error
        assert any("reloading BIRD (IPv4) failed" in r.getMessage() for r in caplog.records)
        assert {p.name for p in bird.show_protocols(sock)} >= {"Mesh_10_99_0_2"}  # old config still runs


def test_bird_client_errors_and_protocol_table(tmp_path, namespace):
    with pytest.raises(bird.BirdNotRunning):
        bird.configure(tmp_path / "missing.ctl")
    out, sock = tmp_path / "config", tmp_path / "bird.ctl"
    Installer(out, reload=False).install_family(4, _files(_cluster()))
    with BirdProcess(namespace, out / "bird.cfg", sock):
        with bird.BirdClient(sock) as client:
            reply = client.command("show nonsense")
            assert not reply.ok and reply.code >= 8000
            rows = client.show_protocols()
        by_name = {r.name: r for r in rows}
        assert by_name["kernel1"].proto == "Kernel" and by_name["kernel1"].state == "up"
        mesh = by_name["Mesh_10_99_0_2"]
        assert mesh.proto == "BGP" and mesh.table == "master"
        assert wait_for(lambda: bird.show_protocols(sock), 5)
