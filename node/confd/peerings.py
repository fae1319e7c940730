"""BGPPeer resources expanded into the peerings one node must configure.

Calico turns every BGPPeer into "v1 peerings": global ones (for every node) and
node-specific ones, keyed by peer address and port. The rules, in order:

1. global BGPPeers (no ``node`` and no ``nodeSelector``) emit global peerings;
2. node-scoped BGPPeers emit peerings for each node they select, unless a global
   peering with the same address and port already exists;
3. unless ``reversePeering: Manual``, every BGPPeer whose remote side is a Calico node
   also gets the reverse peering on that node.

The first peering emitted for a key wins. Calico walks a Go map there, so its winner is
arbitrary; we walk BGPPeers in name order so the result is stable. Only this node's
peerings are computed: no other node's keys can influence them.
"""
from __future__ import annotations

import ipaddress
import logging
import math
from dataclasses import dataclass, replace

from node.confd.cluster import Cluster
from node.confd.inputs import ConfdInputs, LocalWorkload, Settings
from node.model import Resource
from node.model.schema import parse_go_duration
from node.selector import SelectorError, parse

log = logging.getLogger(__name__)

DEFAULT_BGP_PORT = 179
SOURCE_NODE_IP = "UseNodeIP"


@dataclass(frozen=True)
class Peering:
    """One v1 peering value (the JSON Calico stores under ``/calico/bgp/v1/.../peer_vN``)."""

    ip: str
    as_num: str
    local_as_num: str = "0"
    rr_cluster_id: str = ""
    password: str | None = None
    source_addr: str = ""
    restart_time: str = ""
    keepalive_time: str = ""
    port: int = 0
    keep_next_hop: bool = False
    calico_node: bool = False
    num_allow_local_as: int = 0
    ttl_security: int = 0
    filters: tuple[str, ...] = ()
    reachable_by: str = ""
    passive_mode: bool = False
    local_bgp_peer: bool = False
    next_hop_mode: str = ""

    @property
    def version(self) -> int:
        return 6 if ":" in self.ip else 4

    @property
    def key(self) -> str:
        """The last segment of the v1 key: the address, plus ``-port`` unless 0 or 179."""
        if self.port in (0, DEFAULT_BGP_PORT):
            return self.ip
        return f"{self.ip}-{self.port}"


@dataclass
class NodePeerings:
    """This node's peerings: global keys and node-specific keys, each by key segment."""

    global_peers: dict[str, Peering]
    node_peers: dict[str, Peering]

    def for_version(self, version: int) -> tuple[list[Peering], list[Peering]]:
        """(global, node) peerings of one IP family, each sorted by key as ``gets`` sorts."""
        def pick(table: dict[str, Peering]) -> list[Peering]:
            return [table[k] for k in sorted(table) if table[k].version == version]
        return pick(self.global_peers), pick(self.node_peers)


def go_round_seconds(duration: str) -> str:
    """A Go duration rounded to whole seconds, half away from zero (Go's math.Round)."""
    seconds = parse_go_duration(duration) / 1e9
    return str(int(math.copysign(math.floor(abs(seconds) + 0.5), seconds)))


def split_peer_ip(peer_ip: str) -> tuple[str, int]:
    """``ip``, ``ip:port`` or ``[ip]:port`` into (host, port), as Calico's confd splits a
    BGPPeer's peerIP (Go's ``net.SplitHostPort``, then ``strconv.ParseUint(port, 0, 16)``).

    Anything that does not split, or whose port does not parse, comes back whole with
    port 0: a bare address (IPv6 included) that way stays usable, and anything else
    then fails as an address. The port is read as a Go integer literal, so a leading
    ``0`` means octal: ``10.0.0.1:010`` is port 8 and ``10.0.0.1:09`` is no peer at all,
    though calicoctl's validation (base 10) accepts both.
    """
    split = _go_split_host_port(peer_ip)
    if split is None:
        return peer_ip, 0
    host, port_text = split
    port = _go_parse_port(port_text)
    if port is None:
        log.warning("BGPPeer peerIP %s: cannot parse the port %r", peer_ip, port_text)
        return peer_ip, 0
    return host, port


def _go_split_host_port(text: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``: None where it returns an error."""
    i = text.rfind(":")
    if i < 0:
        return None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 != i:
            return None              # no "]", or "]" not directly before the last ":"
        host, j, k = text[1:end], 1, end + 1
    else:
        host, j, k = text[:i], 0, 0
        if ":" in host:
            return None              # too many colons (an unbracketed IPv6 address)
    if "[" in text[j:] or "]" in text[k:]:
        return None
    return host, text[i + 1:]


_GO_INT_PREFIXES = {"b": 2, "o": 8, "x": 16}


def _go_parse_port(text: str) -> int | None:
    """``strconv.ParseUint(text, 0, 16)``: a decimal, ``0x``/``0o``/``0b`` or leading-``0``
    octal literal up to 65535; None where Go returns an error (underscores are refused)."""
    if not text or not text.isascii():
        return None
    base, digits = 10, text
    if text[0] == "0":
        if len(text) >= 3 and text[1].lower() in _GO_INT_PREFIXES:
            base, digits = _GO_INT_PREFIXES[text[1].lower()], text[2:]
        else:
            base, digits = 8, text[1:]
    try:
        value = int(digits, base) if digits else 0
    except ValueError:
        return None
    if not digits.isalnum() or value > 0xFFFF:
        return None
    return value


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class _Computation:
    """One run of the peering rules for one node."""

    def __init__(self, inputs: ConfdInputs, cluster: Cluster, settings: Settings):
        self.inputs = inputs
        self.cluster = cluster
        self.settings = settings
        self.nodename = settings.nodename
        self.global_peers: dict[str, Peering] = {}
        self.node_peers: dict[str, Peering] = {}
        self._selector_cache: dict[str, list[str]] = {}

    # -- helpers ------------------------------------------------------------------------

    def nodes_matching(self, selector: str, owner: str) -> list[str]:
        """Node names whose labels match ``selector``, sorted (an invalid selector: none)."""
        cached = self._selector_cache.get(selector)
        if cached is not None:
            return cached
        try:
            sel = parse(selector)
        except SelectorError as exc:
            log.error("BGPPeer %s: cannot parse selector %r: %s", owner, selector, exc)
            names: list[str] = []
        else:
            names = [n for n, node in self.cluster.nodes.items() if sel.evaluate(node.labels)]
        names.sort()
        self._selector_cache[selector] = names
        return names

    def nodes_with_ip_port_and_as(self, ip: str, asn: int, port: int) -> list[str]:
        """Calico nodes that are the given peer: same address, same AS and (if given) port."""
        cluster = self.cluster
        want_as = cluster.global_as if asn == 0 else str(asn)
        out = []
        for name, node in cluster.nodes.items():
            if ip not in (node.ipv4, node.ipv6):
                continue
            if cluster.node_as(name) != want_as:
                continue
            if port:
                # Calico's check, quirk included: a matching per-node port does not save a
                # node from a different global port.
                node_port = cluster.node_listen_ports.get(name)
                if node_port is not None and node_port != port:
                    continue
                if cluster.global_listen_port and cluster.global_listen_port != port:
                    continue
            out.append(name)
        return sorted(out)

    def password(self, peer: Resource) -> str | None:
        ref = ((peer.spec.get("password") or {}).get("secretKeyRef")) or None
        if ref is None or self.inputs.secrets is None:
            return None
        namespace, name, key = self.settings.secret_namespace, ref.get("name", ""), ref.get("key", "")
        value = self.inputs.secret_value(namespace, name, key)
        if value is None:
            log.warning("Can't read password for BGPPeer %s (%s); the peering has no password",
                        peer.name, self.inputs.secret_problem(namespace, name, key))
        return value

    def common_fields(self, peers: list[Peering], res: Resource) -> list[Peering]:
        """Password, source address and timers, shared by the selector and address paths."""
        spec = res.spec
        fields = {
            "password": self.password(res),
            "source_addr": spec.get("sourceAddress") or SOURCE_NODE_IP,
        }
        if spec.get("maxRestartTime") is not None:
            fields["restart_time"] = go_round_seconds(spec["maxRestartTime"])
        if spec.get("keepaliveTime") is not None:
            fields["keepalive_time"] = go_round_seconds(spec["keepaliveTime"])
        return [replace(p, **fields) for p in peers]

    @staticmethod
    def next_hop(spec: dict) -> dict:
        if spec.get("nextHopMode") is not None:
            return {"next_hop_mode": spec["nextHopMode"]}
        return {"keep_next_hop": bool(spec.get("keepOriginalNextHop"))}

    def node_as_peers(self, name: str, versions: tuple[int, ...], res: Resource) -> list[Peering]:
        """A Calico node as the remote side of a peering, one per address family."""
        node = self.cluster.nodes.get(name)
        if node is None:
            return []
        spec = res.spec
        out = []
        for version in versions:
            ip = node.ip(version)
            if not ip:
                continue
            out.append(Peering(
                ip=ip,
                as_num=self.cluster.node_as(name),
                rr_cluster_id=node.rr_cluster_id,
                port=self.cluster.listen_port(name),
                ttl_security=int(spec.get("ttlSecurity") or 0),
                filters=tuple(spec.get("filters") or ()),
                reachable_by=spec.get("reachableBy") or "",
                **self.next_hop(spec),
            ))
        return out

    def local_workload_peers(self, res: Resource) -> list[Peering]:
        spec = res.spec
        out = []
        workloads: list[LocalWorkload] = [w for _, w in sorted(self.inputs.local_workloads.items())]
        for workload in workloads:
            if workload.bgp_peer_name != res.name:
                continue
            for ip in (workload.ipv4, workload.ipv6):
                if not ip:
                    continue
                out.append(Peering(
                    ip=ip,
                    as_num=str(spec.get("asNumber") or 0),
                    local_as_num=str(spec.get("localASNumber") or 0),
                    filters=tuple(spec.get("filters") or ()),
                    source_addr="None",
                    passive_mode=True,
                    local_bgp_peer=True,
                    ))
        return out

    def address_peer(self, res: Resource) -> list[Peering]:
        """The peer named by ``peerIP`` (``ip``, ``ip:port`` or ``[ip]:port``)."""
        spec = res.spec
        host, port = split_peer_ip(spec.get("peerIP") or "")
        ip = _parse_ip(host)
        if ip is None:
            log.error("BGPPeer %s: peerIP %r is not assigned or is malformed; skipping it",
                      res.name, spec.get("peerIP") or "")
            return []
        asn = int(spec.get("asNumber") or 0)
        if port == 0:
            matches = self.nodes_with_ip_port_and_as(host, asn, 0)
            if matches:
                port = self.cluster.listen_port(matches[0])
        reachable_by = spec.get("reachableBy") or ""
        if reachable_by:
            via = _parse_ip(reachable_by)
            if via is None:
                log.error("BGPPeer %s: reachableBy %r is not an IP address; skipping it", res.name, reachable_by)
                return []
            if via.version != ip.version:
                log.error("BGPPeer %s: reachableBy %s is not in the same IP family as peerIP %s; skipping it",
                          res.name, reachable_by, host)
                return []
        peer = Peering(
            ip=str(ip),
            as_num=str(asn),
            local_as_num=str(spec.get("localASNumber") or 0),
            port=port,
            calico_node=host in self.cluster.node_ips,
            ttl_security=int(spec.get("ttlSecurity") or 0),
            filters=tuple(spec.get("filters") or ()),
            num_allow_local_as=int(spec.get("numAllowedLocalASNumbers") or 0),
            reachable_by=reachable_by,
            **self.next_hop(spec),
        )
        return self.common_fields([peer], res)

    # -- emission -----------------------------------------------------------------------

    def emit_global(self, peer: Peering) -> None:
        self.global_peers.setdefault(peer.key, peer)

    def emit_node(self, peer: Peering) -> None:
        if peer.key in self.global_peers:
            return  # a global peering to the same address and port covers this node
        self.node_peers.setdefault(peer.key, peer)

    def run(self) -> NodePeerings:
        peers = [self.inputs.bgp_peers[n] for n in sorted(self.inputs.bgp_peers)]
        for global_pass in (True, False):
            for res in peers:
                spec = res.spec
                is_global = not spec.get("nodeSelector") and not spec.get("node")
                if is_global != global_pass:
                    continue
                if not global_pass:
                    if spec.get("nodeSelector"):
                        local_nodes = self.nodes_matching(spec["nodeSelector"], res.name)
                    else:
                        local_nodes = [spec["node"]]
                    if self.nodename not in local_nodes:
                        continue
                if spec.get("localWorkloadSelector"):
                    derived = self.local_workload_peers(res)
                elif spec.get("peerSelector"):
                    derived = []
                    for name in self.nodes_matching(spec["peerSelector"], res.name):
                        derived.extend(self.node_as_peers(name, (4, 6), res))
                    derived = self.common_fields(derived, res)
                else:
                    derived = self.address_peer(res)
                for peer in derived:
                    (self.emit_global if global_pass else self.emit_node)(peer)
        for res in peers:
            self.reverse(res)
        return NodePeerings(self.global_peers, self.node_peers)

    def reverse(self, res: Resource) -> None:
        """Add the reverse of ``res`` on this node when this node is its remote side."""
        spec = res.spec
        if spec.get("reversePeering") == "Manual" or spec.get("localWorkloadSelector"):
            return
        if spec.get("peerSelector"):
            local_nodes = self.nodes_matching(spec["peerSelector"], res.name)
            versions: tuple[int, ...] = (4, 6)
        else:
            host, port = split_peer_ip(spec.get("peerIP") or "")
            local_nodes = self.nodes_with_ip_port_and_as(host, int(spec.get("asNumber") or 0), port)
            versions = (6,) if ":" in host else (4,)
        if self.nodename not in local_nodes:
            return
        if spec.get("nodeSelector"):
            remote_nodes = self.nodes_matching(spec["nodeSelector"], res.name)
        elif spec.get("node"):
            remote_nodes = [spec["node"]]
        else:
            remote_nodes = sorted(self.cluster.nodes)
        derived: list[Peering] = []
        for name in remote_nodes:
            derived.extend(self.node_as_peers(name, versions, res))
        for peer in self.common_fields(derived, res):
            self.emit_node(peer)


def compute_peerings(inputs: ConfdInputs, cluster: Cluster, settings: Settings) -> NodePeerings:
    """This node's global and node-specific peerings."""
    return _Computation(inputs, cluster, settings).run()
