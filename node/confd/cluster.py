"""The cluster facts every BGP decision starts from, derived once per computation.

This is the information Calico's confd keeps in its ``/calico/bgp/v1`` key tree: each
node's BGP addresses, AS number, route-reflector cluster ID, WireGuard addresses and
labels, the global and per-node values of the default and ``node.<name>``
BGPConfigurations, and the global defaults confd seeds (AS 64512, mesh on, log level
info). Deriving it in one pass keeps the peer computation linear in the cluster size.
"""
from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

from node.confd.inputs import ConfdInputs
from node.model import Resource

log = logging.getLogger(__name__)

DEFAULT_AS = "64512"
DEFAULT_LOG_LEVEL = "info"
GLOBAL_CONFIG = "default"
NODE_CONFIG_PREFIX = "node."


@dataclass(frozen=True)
class NodeBGP:
    """One Node's BGP fields, in the string forms confd's templates see."""

    name: str
    ipv4: str = ""              # address only; "" when unset
    ipv6: str = ""
    network_v4: str | None = None   # masked CIDR of the address; None when unset
    network_v6: str | None = None
    as_num: str | None = None       # None: fall back to the global AS
    rr_cluster_id: str = ""
    wireguard_v4: str = ""
    wireguard_v6: str = ""
    labels: dict = field(default_factory=dict, hash=False, compare=False)

    def ip(self, version: int) -> str:
        return self.ipv4 if version == 4 else self.ipv6

    def wireguard(self, version: int) -> str:
        return self.wireguard_v4 if version == 4 else self.wireguard_v6


def _address(node: str, field_name: str, value: str) -> tuple[str, str]:
    """(address, masked network) of a Node BGP address given as an IP or a CIDR."""
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise ValueError(f"Node({node}).spec.bgp.{field_name} = '{value}' is not an IP address or CIDR") from None
    return str(iface.ip), str(iface.network)


def node_bgp(res: Resource) -> NodeBGP:
    """A Node's BGP fields; raises ValueError naming the field when an address is malformed."""
    spec = res.spec
    bgp = spec.get("bgp") or {}
    wg = spec.get("wireguard") or {}
    ipv4 = ipv6 = ""
    net4 = net6 = None
    if bgp.get("ipv4Address"):
        ipv4, net4 = _address(res.name, "ipv4Address", bgp["ipv4Address"])
    if bgp.get("ipv6Address"):
        ipv6, net6 = _address(res.name, "ipv6Address", bgp["ipv6Address"])
    asn = bgp.get("asNumber")
    return NodeBGP(
        name=res.name, ipv4=ipv4, ipv6=ipv6, network_v4=net4, network_v6=net6,
        as_num=str(asn) if asn is not None else None,
        rr_cluster_id=bgp.get("routeReflectorClusterID") or "",
        wireguard_v4=wg.get("interfaceIPv4Address") or "",
        wireguard_v6=wg.get("interfaceIPv6Address") or "",
        labels=dict(res.labels),
    )


def bird_log_level(severity: str) -> str:
    """BIRD only distinguishes debug, info and none; every other severity means none."""
    level = severity.lower()
    return level if level in ("debug", "info") else "none"


def confd_log_level(bgp_configs, nodename: str, env_level: str = "") -> tuple[str, str]:
    """The level confd itself logs at, as Calico's confd picks it (its client's
    updateLogLevel): ``BGP_LOGSEVERITYSCREEN`` (``env_level``) when set, else this node's
    BGPConfiguration ``node.<nodename>``'s logSeverityScreen, else ``default``'s, else
    info; a BGPConfiguration's severity is first narrowed to BIRD's debug/info/none, so
    Warning, Error and Fatal give "none", which is no log level: confd then logs at info
    and says so. Returns (the level it was given, the logrus level name it sets)."""
    from startup.logs import parse_level

    given = env_level
    if not given:
        for name in (NODE_CONFIG_PREFIX + nodename, GLOBAL_CONFIG):
            res = bgp_configs.get(name)
            if res is not None and res.spec.get("logSeverityScreen"):
                given = bird_log_level(res.spec["logSeverityScreen"])
                break
    if not given:
        return "info", "info"
    level, _refused = parse_level(given)
    return given, level


@dataclass
class Cluster:
    """The cluster facts, indexed for the peer computation."""

    nodes: dict[str, NodeBGP]
    global_config: Resource | None
    node_configs: dict[str, Resource]       # per-node BGPConfigurations by node name
    global_as: str
    mesh_enabled: bool
    global_listen_port: int
    node_listen_ports: dict[str, int]
    node_ips: frozenset[str]                 # every node's BGP address, both families

    @property
    def global_spec(self) -> dict:
        return self.global_config.spec if self.global_config is not None else {}

    def node_as(self, name: str) -> str:
        node = self.nodes.get(name)
        if node is not None and node.as_num is not None:
            return node.as_num
        return self.global_as

    def listen_port(self, name: str) -> int:
        """A node's BGP port: its own BGPConfiguration's, else the global one, else 0."""
        return self.node_listen_ports.get(name) or self.global_listen_port

    def log_level(self, name: str) -> str:
        for res in (self.node_configs.get(name), self.global_config):
            if res is not None and res.spec.get("logSeverityScreen"):
                return bird_log_level(res.spec["logSeverityScreen"])
        return DEFAULT_LOG_LEVEL


def build_cluster(inputs: ConfdInputs) -> Cluster:
    nodes: dict[str, NodeBGP] = {}
    for name in sorted(inputs.nodes):
        try:
            nodes[name] = node_bgp(inputs.nodes[name])
        except ValueError as exc:
            # Calico drops such an update; the node takes no part in BGP until it is fixed.
            log.error("ignoring Node %s for BGP: %s", name, exc)
    global_config = None
    node_configs: dict[str, Resource] = {}
    for name, res in inputs.bgp_configs.items():
        if name == GLOBAL_CONFIG:
            global_config = res
        elif name.startswith(NODE_CONFIG_PREFIX):
            node_configs[name[len(NODE_CONFIG_PREFIX):]] = res
        else:
            log.warning("ignoring BGPConfiguration %s: the name must be 'default' or 'node.<nodename>'", name)
    gspec = global_config.spec if global_config is not None else {}
    global_as = str(gspec["asNumber"]) if gspec.get("asNumber") is not None else DEFAULT_AS
    mesh = gspec.get("nodeToNodeMeshEnabled")
    node_ips = set()
    for node in nodes.values():
        node_ips.update(ip for ip in (node.ipv4, node.ipv6) if ip)
    return Cluster(
        nodes=nodes,
        global_config=global_config,
        node_configs=node_configs,
        global_as=global_as,
        mesh_enabled=True if mesh is None else bool(mesh),
        global_listen_port=int(gspec.get("listenPort") or 0),
        node_listen_ports={n: int(r.spec["listenPort"]) for n, r in node_configs.items() if r.spec.get("listenPort")},
        node_ips=frozenset(node_ips),
    )
