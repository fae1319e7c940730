"""``calicoctl node run``: the docker command ``--dryrun`` prints, calicoctl's flag checks,
the kernel preparation and the privileged fallback. (The real run against Docker is in
tests/test_image.py.)"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from etcd_server import EtcdServer
from node.cli.calicoctl import main
from node.cli.ctl import _node_run as noderun

START = "Use the following command to start the calico/node container:\n\n"
HINT = ("If you are running calico/node in an init system, use the --init-system flag\n"
        "to display the appropriate start and stop commands.\n")
STOP = "Use the following command to stop the calico/node container:\n\ndocker stop calico-node\n\n"
PREPARE_KERNEL = noderun.prepare_kernel  # the real one (the autouse fixture replaces it)
VOLUMES = ("-v /var/log/calico:/var/log/calico -v /var/run/calico:/var/run/calico -v /var/lib/calico:/var/lib/calico "
           "-v /lib/modules:/lib/modules -v /run:/run")


def _config(tmp_path: Path, **spec: str) -> str:
    spec = {"datastoreType": "etcdv3", "etcdEndpoints": "http://10.0.0.1:2379", **spec}
    body = "".join(f"  {k}: {v}\n" for k, v in spec.items())
    path = tmp_path / "calicoctl.cfg"
    path.write_text(f"apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n{body}")
    return str(path)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["node", "run", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(autouse=True)
def _host(monkeypatch):
    """A fixed host name; and nothing here may touch the host or Docker."""
    monkeypatch.setattr(socket, "gethostname", lambda: " Host1.Example \n")

    def forbidden(*_a, **_k):
        raise AssertionError("this test must not reach the host or Docker")

    monkeypatch.setattr(noderun, "prepare_kernel", forbidden)
    monkeypatch.setattr(noderun, "docker_client", forbidden)
    monkeypatch.delenv("CALICO_CTL_CONTAINER", raising=False)


def test_dryrun_defaults(capsys, tmp_path):
    code, out, err = _run(capsys, "--dryrun", "-c", _config(tmp_path))
    assert (code, err) == (0, "")
    assert out == (START + "docker run --net=host --privileged --name=calico-node -d --restart=always "
                   "-e NODENAME=host1.example -e CALICO_NETWORKING_BACKEND=bird -e CALICO_MANAGE_CNI=false "
                   "-e ETCD_ENDPOINTS=http://10.0.0.1:2379 -e ETCD_DISCOVERY_SRV= "
                   f"{VOLUMES} quay.io/calico/node:latest\n\n" + HINT)


def test_dryrun_every_option_for_an_init_system(capsys, tmp_path):
    felix_cfg = tmp_path / "felix.cfg"
    code, out, err = _run(capsys, "--dryrun", "--init-system", "-c", _config(tmp_path), "--name=node-7",
                          "--ip", "autodetect", "--ip6=fd00::7", "--as", "1.10",
                          "--ip-autodetection-method=can-reach=127.0.0.1",
                          "--ip6-autodetection-method", "interface=eth.*,ens.*", "--no-default-ippools",
                          "--backend", "none", "--log-dir", "/srv/calico-logs", "--felix-config", str(felix_cfg),
                          "--node-image=calico-node-py:latest")
    assert (code, err) == (0, "")
    assert out == (START + "docker run --net=host --privileged --name=calico-node --rm "
                   "-e NODENAME=node-7 -e CALICO_NETWORKING_BACKEND=none -e CALICO_MANAGE_CNI=false "
                   "-e NO_DEFAULT_POOLS=true -e IP_AUTODETECTION_METHOD=can-reach=127.0.0.1 "
                   "-e IP6_AUTODETECTION_METHOD=interface=eth.*,ens.* -e AS=65546 -e IP=autodetect -e IP6=fd00::7 "
                   "-e ETCD_ENDPOINTS=http://10.0.0.1:2379 -e ETCD_DISCOVERY_SRV= "
                   "-v /srv/calico-logs:/var/log/calico -v /var/run/calico:/var/run/calico "
                   "-v /var/lib/calico:/var/lib/calico -v /lib/modules:/lib/modules -v /run:/run "
                   f"-v {felix_cfg}:/etc/calico/felix.cfg calico-node-py:latest\n\n" + STOP)


def test_dryrun_etcd_tls_files_and_several_endpoints(capsys, tmp_path):
    certs = EtcdServer(tls=True)  # only for its CA, certificate and key (never started)
    try:
        cfg = _config(tmp_path, etcdEndpoints="https://10.0.0.1:2379,https://10.0.0.2:2379",
                      etcdCACertFile=certs.ca_file, etcdCertFile=certs.client_cert_file,
                      etcdKeyFile=certs.client_key_file)
        code, out, err = _run(capsys, "--dryrun", "-c", cfg, "--ip=10.0.0.9", "--name", "n1")
    finally:
        certs.close()
    assert (code, err) == (0, "")
    assert out == (START + "docker run --net=host --privileged --name=calico-node -d --restart=always "
                   "-e NODENAME=n1 -e CALICO_NETWORKING_BACKEND=bird -e CALICO_MANAGE_CNI=false -e IP=10.0.0.9 "
                   "-e ETCD_ENDPOINTS=https://10.0.0.1:2379,https://10.0.0.2:2379 -e ETCD_DISCOVERY_SRV= "
                   "-e ETCD_CA_CERT_FILE=/etc/calico/certs/ca_cert.crt -e ETCD_KEY_FILE=/etc/calico/certs/key.pem "
                   f"-e ETCD_CERT_FILE=/etc/calico/certs/cert.crt {VOLUMES} "
                   f"-v {certs.ca_file}:/etc/calico/certs/ca_cert.crt -v {certs.client_key_file}:/etc/calico/certs/key.pem "
                   f"-v {certs.client_cert_file}:/etc/calico/certs/cert.crt quay.io/calico/node:latest\n\n" + HINT)


def test_dryrun_passes_srv_discovery_on(capsys, tmp_path):
    code, out, err = _run(capsys, "--dryrun", "-c", _config(tmp_path, etcdEndpoints='""',
                                                            etcdDiscoverySrv="etcd.example.com"))
    assert (code, err) == (0, "")
    assert "-e ETCD_ENDPOINTS= -e ETCD_DISCOVERY_SRV=etcd.example.com " in out


def test_dryrun_reads_the_environment_without_a_config_file(capsys, monkeypatch):
    monkeypatch.setattr("node.config.DEFAULT_CALICOCTL_CONFIG", "/nonexistent/calicoctl.cfg")
    monkeypatch.setenv("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    code, out, _ = _run(capsys, "--dryrun", "--name=n2")
    assert code == 0
    assert "-e NODENAME=n2 " in out and "-e ETCD_ENDPOINTS=http://127.0.0.1:2379 -e ETCD_DISCOVERY_SRV= " in out


# Each bad value gives calicoctl's message (on the stream calicoctl uses) and exit 1,
# without a dry run too: nothing is prepared or started (the autouse fixture fails the
# test if the kernel preparation or the Docker client is reached).
BAD = [
    (["--ip", "10.0.0.1/24"], "out", "Error executing command: invalid IP address specified: 10.0.0.1/24"),
    (["--ip", "fd00::1"], "err", "error executing command: --ip is wrong IP version"),
    (["--ip6", "10.0.0.1"], "err", "error executing command: --ip6 is wrong IP version"),
    (["--ip6", "fe80::1%eth0"], "out", "Error executing command: invalid IP address specified: fe80::1%eth0"),
    (["--ip", "010.0.0.1"], "out", "Error executing command: invalid IP address specified: 010.0.0.1"),
    (["--as", "4294967296"], "out", "Error executing command: invalid AS Number specified: 4294967296"),
    (["--as", "65536.1"], "out", "Error executing command: invalid AS Number specified: 65536.1"),
    (["--backend", "vxlan"], "err", "error executing command: unknown backend 'vxlan'"),
    (["--backend", "BIRD"], "err", "error executing command: unknown backend 'BIRD'"),
    (["--ip-autodetection-method", "cidr=10.0.0.0/8"], "err",
     "error executing command: invalid IP autodetection method: cidr=10.0.0.0/8"),
    (["--ip-autodetection-method", "kubernetes-internal-ip"], "err",
     "error executing command: invalid IP autodetection method: kubernetes-internal-ip"),
    (["--ip-autodetection-method", "can-reach=::1"], "err",
     "error executing command: address for IP autodetection does not resolve to an IPv4 address: ::1"),
    (["--ip6-autodetection-method", "can-reach=127.0.0.1"], "err",
     "error executing command: address for IP autodetection does not resolve to an IPv6 address: 127.0.0.1"),
    (["--ip-autodetection-method", "can-reach="], "err",
     "error executing command: cannot resolve address specified for IP autodetection: "),
    (["--ip6-autodetection-method", "skip-interface=eth0,eth["], "err",
     "error executing command: invalid interface regex specified for IP autodetection: eth["),
    (["--ip-autodetection-method", "interface=(eth"], "err",
     "error executing command: invalid interface regex specified for IP autodetection: (eth"),
]


@pytest.mark.parametrize("dryrun", [True, False], ids=["dryrun", "run"])
@pytest.mark.parametrize("flags,stream,message", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_flag_values(capsys, tmp_path, flags, stream, message, dryrun):
    code, out, err = _run(capsys, *(["--dryrun"] if dryrun else []), "-c", _config(tmp_path), *flags)
    assert code == 1
    assert (out if stream == "out" else err) == message + "\n"
    assert (err if stream == "out" else out) == ""


def test_config_must_name_an_etcd_datastore(capsys, tmp_path):
    cfg = tmp_path / "k8s.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n")
    code, out, err = _run(capsys, "--dryrun", "-c", str(cfg))
    assert (code, out, err) == (1, "", "error executing command: unsupported backend specified in config\n")


def test_config_file_that_does_not_exist(capsys):
    code, out, err = _run(capsys, "-c", "/nonexistent/calicoctl.cfg")
    assert (code, out, err) == (1, "Error reading config file: /nonexistent/calicoctl.cfg\n", "")


def test_config_file_that_does_not_parse(capsys, tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("kind: Something\n")
    code, out, err = _run(capsys, "--dryrun", "-c", str(cfg))
    assert code == 1 and out == ""
    # libcalico-go checks the apiVersion (missing here) before the kind.
    assert err == "error executing command: invalid config file: unknown APIVersion ''\n"


def test_real_run_needs_root(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(noderun.os, "geteuid", lambda: 1000)
    code, out, err = _run(capsys, "-c", _config(tmp_path))
    assert (code, out, err) == (1, "Need super user privileges: Operation not permitted\n", "")


# --------------------------------------------------------------------------------------
# Pieces of the real run that can be checked without Docker.

def test_privileges_probe_reads_the_bounding_set(tmp_path):
    status, last = tmp_path / "status", tmp_path / "cap_last_cap"
    last.write_text("40\n")
    status.write_text("Name:\tx\nCapBnd:\t000001ffffffffff\n")
    assert noderun.host_privileges(str(status), str(last)) == noderun.Privileges()
    status.write_text("CapBnd:\t000001fffeffffff\n")  # bit 24, CAP_SYS_RESOURCE, missing
    probe = noderun.host_privileges(str(status), str(last))
    assert probe.missing == ("SYS_RESOURCE",)
    status.write_text("CapBnd:\t0000003ffefffeff\n")  # and bit 8 (SETPCAP); caps past 37 unknown here
    last.write_text("37\n")
    assert noderun.host_privileges(str(status), str(last)).missing == ("SETPCAP", "SYS_RESOURCE")


def test_fallback_command_replaces_privileged_with_the_explicit_set(tmp_path):
    plan = noderun.ContainerPlan({"NODENAME": "n"}, [("/var/log/calico", "/var/log/calico")], "img", False)
    fallback = noderun.Privileges(("SYS_RESOURCE",))
    assert " ".join(noderun.docker_command(plan, fallback)) == (
        "docker run --net=host --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined "
        "--security-opt apparmor=unconfined --security-opt systempaths=unconfined --name=calico-node -d "
        "--restart=always -e NODENAME=n -v /var/log/calico:/var/log/calico -v /sys:/sys img")
    assert fallback.note() == (
        "Note: this host's capability bounding set lacks CAP_SYS_RESOURCE, so Docker cannot start a --privileged "
        "container here; using the equivalent explicit set instead: --cap-add ALL --cap-drop SYS_RESOURCE "
        "--security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined "
        "-v /sys:/sys")


def _sysctl_tree(root: Path, forward: str = "0", conntrack: str = "65536", ipv6: bool = True) -> Path:
    (root / "net/ipv4").mkdir(parents=True)
    (root / "net/ipv4/ip_forward").write_text(forward + "\n")
    if ipv6:
        (root / "net/ipv6/conf/all").mkdir(parents=True)
        (root / "net/ipv6/conf/all/forwarding").write_text("0\n")
    (root / "net/netfilter").mkdir(parents=True)
    (root / "net/netfilter/nf_conntrack_max").write_text(conntrack + "\n")
    return root


def test_kernel_preparation_messages_and_sysctls(tmp_path):
    root = _sysctl_tree(tmp_path / "sys")
    lines: list[str] = []
    PREPARE_KERNEL(lines.append, root, modprobe=("false",))  # module loading is best effort
    assert lines == ["Running command to load modules: false -a xt_set ip6_tables", "Enabling IPv4 forwarding",
                     "Enabling IPv6 forwarding", "Increasing conntrack limit"]
    assert (root / "net/ipv4/ip_forward").read_text() == "1"
    assert (root / "net/ipv6/conf/all/forwarding").read_text() == "1"
    assert (root / "net/netfilter/nf_conntrack_max").read_text() == "1000000"


def test_kernel_preparation_runs_the_modprobe_it_prints(tmp_path):
    calls = tmp_path / "calls"
    fake = tmp_path / "modprobe"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 1\n")  # a failure is not fatal
    fake.chmod(0o755)
    lines: list[str] = []
    PREPARE_KERNEL(lines.append, _sysctl_tree(tmp_path / "sys"), modprobe=(str(fake),))
    assert lines[0] == f"Running command to load modules: {fake} -a xt_set ip6_tables"
    assert calls.read_text() == "-a xt_set ip6_tables\n"


def test_kernel_preparation_without_ipv6_and_with_a_larger_conntrack_table(tmp_path):
    root = _sysctl_tree(tmp_path / "sys", conntrack="2000000", ipv6=False)
    lines: list[str] = []
    PREPARE_KERNEL(lines.append, root, modprobe=("true",))
    assert "Enabling IPv6 forwarding" not in lines
    assert (root / "net/netfilter/nf_conntrack_max").read_text().strip() == "2000000"  # never lowered


def test_kernel_preparation_failures(tmp_path):
    root = _sysctl_tree(tmp_path / "sys")
    (root / "net/netfilter/nf_conntrack_max").unlink()
    (root / "net/netfilter").rmdir()
    lines: list[str] = []
    PREPARE_KERNEL(lines.append, root, modprobe=("true",))
    assert lines[-1] == "WARNING: Could not set nf_conntrack_max. This may have an impact at scale."
    (root / "net/ipv4/ip_forward").unlink()
    (root / "net/ipv4").rmdir()
    with pytest.raises(noderun.CommandFailed, match="^ERROR: Could not enable ipv4 forwarding$"):
        PREPARE_KERNEL(lines.append, root, modprobe=("true",))
