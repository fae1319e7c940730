"""What Calico's CNI plugin does for a pod, on network namespaces.

For a Kubernetes pod the plugin (cni-plugin/pkg/dataplane/linux) creates a veth whose
host side is named ``cali`` + the first 11 hex characters of SHA-1 of
``<namespace>.<pod>`` and carries the MAC ``ee:ee:ee:ee:ee:ee``; the pod side becomes
``eth0`` with the pod's /32 and a default route via 169.254.1.1, which the host side
answers through proxy ARP (a sysctl the policy agent sets). With an IPv6 address the pod
also gets its /128 and a default route via the host side's link-local address, the one
the kernel derives from that MAC (fe80::ecee:eeff:feee:eeee); the plugin turns IPv6 on in
the pod's namespace and duplicate address detection off on both ends (a point-to-point
link has no one to collide with, and DAD would hold the addresses back for a second or
more). It then writes the WorkloadEndpoint with the labels, profiles and ports the pod has.

The host side's sysctls that the policy agent also writes (proxy_arp, route_localnet,
proxy_ndp, forwarding, accept_ra) are left to the agent, so that the tests show it writes
them; the ones only the plugin writes (accept_dad, disable_ipv6) are written here.

This module does the wiring and builds the endpoint; it does not allocate addresses
(callers pass them, or take them from IPAM).
"""
from __future__ import annotations

import hashlib
import ipaddress
import subprocess
import time
from dataclasses import dataclass, field

from node.model import Resource
from node.model.names import workload_endpoint_name

HOST_SIDE_MAC = "ee:ee:ee:ee:ee:ee"
GATEWAY_V4 = "169.254.1.1"
# The EUI-64 link-local address of HOST_SIDE_MAC: the pod's IPv6 gateway.
GATEWAY_V6 = "fe80::ecee:eeff:feee:eeee"
ORCHESTRATOR = "k8s"


def host_interface_name(namespace: str, pod: str, prefix: str = "cali") -> str:
    """Calico's interface name for a Kubernetes pod (conversion.go VethNameForWorkload)."""
    return prefix + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def _ip(*argv: str, netns: str | None = None) -> subprocess.CompletedProcess:
    cmd = ["ip", "netns", "exec", netns, "ip", *argv] if netns else ["ip", *argv]
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def _sysctl(netns: str | None, *settings: str) -> None:
    """``path=value`` settings (slash separated, so interface names may hold dots)."""
    cmd = ["sysctl", "-q", "-w", *settings]
    subprocess.run(["ip", "netns", "exec", netns, *cmd] if netns else cmd, check=True, capture_output=True,
                   text=True)


def _host_side_link_local(host_if: str, host_netns: str) -> str:
    """The host side's IPv6 link-local address once the kernel has given it one. As the
    plugin does, an address derived from a MAC other than HOST_SIDE_MAC (the kernel saw
    the link come up before the MAC change) is reset by taking the link down and up."""
    for _ in range(10):
        out = _ip("-6", "-o", "addr", "show", "dev", host_if, "scope", "link", netns=host_netns).stdout
        addrs = [line.split()[3].split("/")[0] for line in out.splitlines() if " inet6 " in line]
        if addrs and ipaddress.ip_address(addrs[0]) == ipaddress.ip_address(GATEWAY_V6):
            return addrs[0]
        if addrs:
            _ip("link", "set", host_if, "down", netns=host_netns)
            _ip("link", "set", host_if, "address", HOST_SIDE_MAC, netns=host_netns)
            _ip("link", "set", host_if, "up", netns=host_netns)
        time.sleep(0.05)
    raise RuntimeError(f"{host_if} has no IPv6 link-local address {GATEWAY_V6} (is IPv6 off on this host?)")


@dataclass
class Pod:
    """A pod: its namespace (the Kubernetes one), name, addresses and where it is wired."""

    namespace: str
    name: str
    node: str
    ips: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[dict] = field(default_factory=list)  # [{"name", "protocol", "port"}]
    service_account: str = "default"
    container_id: str = ""  # the CNI's container ID (the IPAM handle is derived from it)
    netns: str = ""  # the pod's network namespace (set once wired)
    mac: str = ""  # the pod side's MAC

    @property
    def interface(self) -> str:
        return host_interface_name(self.namespace, self.name)

    @property
    def ipv4(self) -> str:
        return next(ip for ip in self.ips if ":" not in ip)

    def endpoint(self) -> Resource:
        """The WorkloadEndpoint the CNI plugin writes for this pod."""
        spec = {
            "orchestrator": ORCHESTRATOR, "node": self.node, "pod": self.name, "endpoint": "eth0",
            "serviceAccountName": self.service_account,
            "ipNetworks": [str(ipaddress.ip_network(ip)) for ip in self.ips],
            "profiles": [f"kns.{self.namespace}", f"ksa.{self.namespace}.{self.service_account}"],
            "interfaceName": self.interface, "mac": self.mac, "ports": list(self.ports),
        }
        if self.container_id:
            spec["containerID"] = self.container_id
        labels = {"projectcalico.org/namespace": self.namespace, "projectcalico.org/orchestrator": ORCHESTRATOR,
                  "projectcalico.org/serviceaccount": self.service_account, **self.labels}
        name = workload_endpoint_name(spec)
        return Resource("WorkloadEndpoint", {"name": name, "namespace": self.namespace, "labels": labels}, spec)


def wire(pod: Pod, host_netns: str, pod_netns: str) -> None:
    """Create the veth between the host namespace and the (existing) pod namespace and
    configure both sides as the CNI plugin does (its DoWorkloadNetnsSetUp, in its order)."""
    host_if = pod.interface
    has_v4 = any(":" not in ip for ip in pod.ips)
    has_v6 = any(":" in ip for ip in pod.ips)
    tmp = "p" + hashlib.sha1(f"{pod_netns}".encode()).hexdigest()[:12]
    _ip("link", "add", host_if, "type", "veth", "peer", "name", tmp, netns=host_netns)
    _ip("link", "set", tmp, "netns", pod_netns, netns=host_netns)
    _ip("link", "set", host_if, "address", HOST_SIDE_MAC, netns=host_netns)
    _ip("link", "set", tmp, "name", "eth0", netns=pod_netns)
    if has_v6:
        # Before the links come up: DAD starts with them.
        _sysctl(pod_netns, "net/ipv6/conf/eth0/accept_dad=0")
        _sysctl(host_netns, f"net/ipv6/conf/{host_if}/accept_dad=0", f"net/ipv6/conf/{host_if}/disable_ipv6=0")
    _ip("link", "set", host_if, "up", netns=host_netns)
    _ip("link", "set", "lo", "up", netns=pod_netns)
    _ip("link", "set", "eth0", "up", netns=pod_netns)
    if has_v4:
        _ip("route", "add", GATEWAY_V4, "dev", "eth0", "scope", "link", netns=pod_netns)
        _ip("route", "add", "default", "via", GATEWAY_V4, "dev", "eth0", netns=pod_netns)
    if has_v6:
        _sysctl(pod_netns, "net/ipv6/conf/all/disable_ipv6=0", "net/ipv6/conf/default/disable_ipv6=0",
                "net/ipv6/conf/lo/disable_ipv6=0")
        gateway = _host_side_link_local(host_if, host_netns)
        _ip("-6", "route", "add", "default", "via", gateway, "dev", "eth0", netns=pod_netns)
    for ip in pod.ips:
        plen = 32 if ":" not in ip else 128
        _ip("addr", "add", f"{ip}/{plen}", "dev", "eth0", netns=pod_netns)
    # The pod is not a router (the plugin's allow_ip_forwarding defaults to false).
    forwarding = ["net/ipv4/ip_forward=0"] * has_v4 + ["net/ipv6/conf/all/forwarding=0"] * has_v6
    if forwarding:
        _sysctl(pod_netns, *forwarding)
    out = _ip("-o", "link", "show", "eth0", netns=pod_netns).stdout
    pod.mac = out.split("link/ether", 1)[1].split()[0]
    pod.netns = pod_netns


def unwire(pod: Pod, host_netns: str) -> None:
    """Remove the host side (which takes the pod side with it)."""
    subprocess.run(["ip", "netns", "exec", host_netns, "ip", "link", "del", pod.interface],
                   capture_output=True, check=False)
