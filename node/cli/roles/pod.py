"""``calico-node pod add|del|list``: what Calico's CNI plugin does for a pod, by hand.

    calico-node pod add NAME [-n NS] [--labels k=v,...] [--ports name:PROTO:port,...]
                             [--ipv6 | --ip ADDR[,ADDR6]] [--netns N]
    calico-node pod del NAME [-n NS]
    calico-node pod list

Run in the host's network namespace (as the CNI plugin runs), with ``NODENAME`` and the
datastore variables set. ``add`` creates a network namespace for the pod, takes its
addresses from Calico IPAM with the CNI plugin's handle and attributes (unless ``--ip``),
wires a ``cali…`` veth as the plugin does (``e2e.pods``) and writes the WorkloadEndpoint;
it prints the pod's addresses (IPv4 first). As with the plugin's IPAM settings, one IPv4
address is assigned and an IPv6 one only when asked: ``--ipv6`` is the plugin's
``"assign_ipv6": "true"``, what a dual-stack cluster's CNI configuration says. ``del``
undoes all of it: releases the addresses, deletes the endpoint, the veth and the
namespace. The pod namespace is ``<node>-<ns>-<pod>`` (or ``--netns``) so an operator can
``ip netns exec`` into it.
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import uuid

from node.config import Paths


def register(subparsers) -> None:
    p = subparsers.add_parser("pod", help="add or delete a pod as Calico's CNI plugin would (demo and tests)")
    sub = p.add_subparsers(dest="pod_command", required=True)
    add = sub.add_parser("add", help="create a pod namespace, address it from IPAM, wire it, write its endpoint")
    add.add_argument("name")
    add.add_argument("-n", "--namespace", default="default")
    add.add_argument("--labels", default="", help="k=v,k2=v2")
    add.add_argument("--ports", default="", help="named ports: name:TCP:80,name2:UDP:53")
    addresses = add.add_mutually_exclusive_group()
    addresses.add_argument("--ipv6", action="store_true",
                           help="assign an IPv6 address too (the CNI plugin's assign_ipv6: \"true\")")
    addresses.add_argument("--ip", default="", metavar="ADDR[,ADDR6]", help="use these addresses instead of asking IPAM")
    add.add_argument("--netns", default="", help="the pod's network namespace (default <node>-<ns>-<pod>)")
    add.set_defaults(func=cmd_add)
    rm = sub.add_parser("del", help="release the pod's addresses and remove its endpoint, veth and namespace")
    rm.add_argument("name")
    rm.add_argument("-n", "--namespace", default="default")
    rm.add_argument("--netns", default="", help="the pod's network namespace (default <node>-<ns>-<pod>)")
    rm.set_defaults(func=cmd_del)
    ls = sub.add_parser("list", help="the pods of this node (its WorkloadEndpoints)")
    ls.set_defaults(func=cmd_list)


class PodError(Exception):
    pass


def _context():
    from node.cli.roles.felix import hostname_from_env
    from node.config import datastore_config_from_env
    from node.datastore.factory import client_for

    node = hostname_from_env(Paths.from_env())
    return node, client_for(datastore_config_from_env())


def _parse_labels(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PodError(f"--labels: {item!r} is not key=value")
        out[key] = value
    return out


def _parse_ports(text: str) -> list[dict]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise PodError(f"--ports: {item!r} is not name:PROTOCOL:port")
        out.append({"name": parts[0], "protocol": parts[1].upper(), "port": int(parts[2])})
    return out


def _parse_ips(text: str) -> list[str]:
    """``--ip``'s addresses: at most one per family, IPv4 first, as IPAM would give them."""
    try:
        addrs = [ipaddress.ip_address(t.strip()) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise PodError(f"--ip: {exc}") from None
    if not addrs or len({a.version for a in addrs}) != len(addrs):
        raise PodError(f"--ip: {text!r} must be one address, or one IPv4 and one IPv6 address")
    return [str(a) for a in sorted(addrs, key=lambda a: a.version)]


def pod_netns(node: str, namespace: str, name: str) -> str:
    return f"{node}-{namespace}-{name}"


def cmd_add(args) -> int:
    from e2e.pods import Pod, wire
    from node.errors import CalicoError
    from node.ipam.allocator import IPAM
    from node.ipam.cni import assign_pod, release_pod

    try:
        labels, ports = _parse_labels(args.labels), _parse_ports(args.ports)
        node, client = _context()
        container_id = uuid.uuid4().hex
        ipam = IPAM(client.kv)
        if args.ip:
            ips = _parse_ips(args.ip)
        else:
            try:
                ips = assign_pod(ipam, node, args.namespace, args.name, container_id, num6=1 if args.ipv6 else 0)
            except BaseException:
                # IPAM keeps what it assigned before failing (an IPv4 address when only the
                # IPv6 one failed) for the runtime's DEL, which follows a failed ADD; here
                # there is no DEL to come, so give it back now.
                release_pod(ipam, container_id)
                raise
        pod = Pod(args.namespace, args.name, node, ips, labels, ports, container_id=container_id)
        netns = args.netns or pod_netns(node, args.namespace, args.name)
        # Like a container runtime, make the namespace unless the caller already did (a
        # namespace made under `ip netns exec` is invisible outside it, so harnesses that
        # run this inside a host namespace create the pod's namespace first).
        made = not os.path.exists(f"/run/netns/{netns}")
        try:
            if made:
                subprocess.run(["ip", "netns", "add", netns], check=True, capture_output=True, text=True)
            wire(pod, "", netns)
            client.create(pod.endpoint())
        except BaseException:
            subprocess.run(["ip", "link", "del", pod.interface], capture_output=True)
            if made:
                subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            if not args.ip:
                release_pod(ipam, container_id)
            raise
    except subprocess.CalledProcessError as exc:
        print(f"pod add: {' '.join(exc.cmd)} failed: {(exc.stderr or '').strip()}", file=sys.stderr)
        return 1
    except (PodError, CalicoError) as exc:
        print(f"pod add: {exc}", file=sys.stderr)
        return 1
    print(" ".join(ips))
    return 0


def cmd_del(args) -> int:
    from e2e.pods import host_interface_name
    from node.errors import CalicoError, NotFound
    from node.ipam.allocator import IPAM
    from node.ipam.cni import release_pod
    from node.model.names import workload_endpoint_name

    try:
        node, client = _context()
        name = workload_endpoint_name({"node": node, "orchestrator": "k8s", "pod": args.name, "endpoint": "eth0"})
        try:
            wep = client.get("WorkloadEndpoint", name, args.namespace)
        except NotFound:
            wep = None
        if wep is not None:
            if wep.spec.get("containerID"):
                release_pod(IPAM(client.kv), wep.spec["containerID"])
            client.delete("WorkloadEndpoint", name, args.namespace)
    except CalicoError as exc:
        print(f"pod del: {exc}", file=sys.stderr)
        return 1
    subprocess.run(["ip", "link", "del", host_interface_name(args.namespace, args.name)], capture_output=True)
    subprocess.run(["ip", "netns", "del", args.netns or pod_netns(node, args.namespace, args.name)],
                   capture_output=True)
    if wep is None:
        print(f"pod del: no pod {args.namespace}/{args.name} on {node} (removed its leftovers, if any)")
    return 0


def cmd_list(args) -> int:
    from node.errors import CalicoError

    try:
        node, client = _context()
        weps = [w for w in client.list("WorkloadEndpoint") if w.spec.get("node") == node]
    except CalicoError as exc:
        print(f"pod list: {exc}", file=sys.stderr)
        return 1
    for w in sorted(weps, key=lambda r: (r.namespace, r.spec.get("pod", ""))):
        print(f"{w.namespace}/{w.spec.get('pod', '')}\t{','.join(w.spec.get('ipNetworks', []))}\t"
              f"{w.spec.get('interfaceName', '')}\t{pod_netns(node, w.namespace, w.spec.get('pod', ''))}")
    return 0
