"""calicoctl ipam check and the LoadBalancer Services whose addresses Calico's
kube-controllers assigns (check.go's service load balancer pass; the rule is
loadbalancer_controller.go's IsCalicoManagedLoadBalancer): those addresses are in use,
not leaked, so ``ipam release --from-report`` never frees them."""
from __future__ import annotations

import pytest

from ipam_fixtures import make_node, make_pool
from kdd_fixtures import kube, kube_config, kube_kv  # noqa: F401  (fixtures)
from node.cli.calicoctl import main
from node.ipam.allocator import IPAM
from node.ipam.check import is_calico_managed_load_balancer
from node.model import Resource


def svc(name, lb_class=None, annotations=None, ips=(), type_="LoadBalancer"):
    spec = {"type": type_}
    if lb_class is not None:
        spec["loadBalancerClass"] = lb_class
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
            "spec": spec, "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}


POOLS = {"projectcalico.org/ipv4pools": '["lb"]'}


@pytest.mark.parametrize("service, assign_ips, managed", [
    (svc("a"), "AllServices", True),
    (svc("a", lb_class="calico"), "AllServices", True),
    (svc("a", lb_class="metallb"), "AllServices", False),
    (svc("a", type_="ClusterIP"), "AllServices", False),
    (svc("a"), "RequestedServicesOnly", False),
    (svc("a", lb_class="calico"), "RequestedServicesOnly", True),
    (svc("a", annotations=POOLS), "RequestedServicesOnly", True),
    (svc("a", annotations={"projectcalico.org/loadBalancerIPs": '["10.9.0.5"]'}), "RequestedServicesOnly", True),
    (svc("a", annotations={"projectcalico.org/ipv6pools": ""}), "RequestedServicesOnly", False),
    (svc("a", lb_class="metallb", annotations=POOLS), "RequestedServicesOnly", False),
    (svc("a"), "", False),
])
def test_which_services_calico_manages(service, assign_ips, managed):
    assert is_calico_managed_load_balancer(service, assign_ips) is managed


@pytest.fixture
def ipam(etcd_kv, etcd_clean_config, monkeypatch):
    monkeypatch.setenv("ETCD_ENDPOINTS", etcd_clean_config.etcd_endpoints[0])
    monkeypatch.delenv("DATASTORE_TYPE", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    ipam = IPAM(etcd_kv)
    make_pool(ipam.client, "lb", "10.9.0.0/24", blockSize=28, allowedUses=["LoadBalancer"])
    make_node(ipam.client, "n1")
    for ip in ("10.9.0.5", "10.9.0.6"):
        ipam.assign_ip(ip, handle_id=f"lb-{ip}", host="n1", attrs={"service": "x"})
    return ipam


def _kcc(client, assign_ips="AllServices"):
    client.create(Resource("KubeControllersConfiguration", {"name": "default"},
                           {"controllers": {"loadBalancer": {"assignIPs": assign_ips}}}))


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_without_kube_controllers_there_are_no_services_to_look_for(ipam, capsys):
    code, out, _ = run(capsys, "ipam", "check")
    assert "Loading all service load balancer IPs.\nNo configuration for LoadBalancer kubecontroller found, " \
           "skipping service check\n" in out
    assert "Found 2 IPs that are allocated in IPAM but not actually in use." in out and code == 1


def test_on_etcd_a_configured_load_balancer_controller_needs_a_kubeconfig(ipam, capsys):
    _kcc(ipam.client)
    assert run(capsys, "ipam", "check") == (
        1, "", "KUBECONFIG environment variable or --kubeconfig parameter not set\n")


def test_managed_services_addresses_are_in_use(ipam, capsys, kube, tmp_path, monkeypatch):  # noqa: F811
    _kcc(ipam.client)
    for service in (svc("web", ips=["10.9.0.5"]), svc("other", lb_class="metallb", ips=["10.9.0.6"])):
        created = kube.create("v1", "services", service, namespace="default")  # (status is dropped)
        created["status"] = service["status"]
        kube.update("v1", "services", created, subresource="status")
    kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
    for argv, env in ((("--kubeconfig", kubeconfig), None), ((), kubeconfig)):
        if env:
            monkeypatch.setenv("KUBECONFIG", env)
        code, out, _ = run(capsys, "ipam", "check", "--show-all-ips", *argv)
        assert "Loading all service load balancer IPs.\n  10.9.0.5 belongs to web\n" \
               "Found 1 service load balancer(s).\n" in out
        assert "Found 1 IPs that are allocated in IPAM but not actually in use." in out  # 10.9.0.6, metallb's
        assert code == 1


def test_on_kubernetes_the_datastores_own_api_lists_the_services(kube_kv):  # noqa: F811
    import argparse

    from node.cli.ctl.ipam import _check_kube_api

    assert _check_kube_api(argparse.Namespace(kubeconfig=""), kube_kv) is kube_kv.api
