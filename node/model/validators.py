"""Calico's field and struct validators, registered against the schema by name.

The names match the ``validate:"..."`` tags of Calico's API types (``net``, ``cidrv4``,
``selector``, ``portName``...), so ``node.model.structs`` can say which applies where.
Messages name what is wrong in terms an operator can act on.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from node.model.schema import Collector, register_check, register_struct_check

NAME_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
NAME_SUBDOMAIN = NAME_LABEL + r"(\." + NAME_LABEL + r")*"
NAME_RE = re.compile("^" + NAME_SUBDOMAIN + "$")
TIER_NAME_RE = re.compile("^" + NAME_LABEL + "$")
NETWORK_POLICY_NAME_RE = re.compile(
    "^((" + NAME_LABEL + r")(\." + NAME_LABEL + r")?|((?:knp|ossg)\.default\.(" + NAME_SUBDOMAIN + ")))$")
GLOBAL_NETWORK_POLICY_NAME_RE = re.compile("^(" + NAME_LABEL + r"\.)?" + NAME_LABEL + "$")
CONTAINER_ID_RE = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
INTERFACE_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
BGP_FILTER_INTERFACE_RE = re.compile(r"^[a-zA-Z0-9_.*-]{1,15}$")
IGNORED_INTERFACE_RE = re.compile(r"^[a-zA-Z0-9_.*-]{1,15}$")
IP_TYPE_RE = re.compile(r"^(CalicoNodeIP|InternalIP|ExternalIP)$")
MAC_RE = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
PORT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_MAX = 253

# Kubernetes qualified names (label keys) and label values.
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile("^" + NAME_SUBDOMAIN + "$")


def name_problem(name: str, pattern: re.Pattern = NAME_RE) -> str | None:
    if len(name) > DNS1123_MAX:
        return f"name is too long by {len(name) - DNS1123_MAX} bytes"
    if not pattern.match(name):
        return ("name must consist of lower case alphanumeric characters, '-' or '.' "
                "(regex: " + pattern.pattern.strip("^$") + ")")
    return None


def qualified_name_problem(key: str) -> str | None:
    """Kubernetes' IsQualifiedName: optional DNS subdomain prefix and a 63-char name."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "prefix part must be non-empty"
    if prefix:
        if len(prefix) > DNS1123_MAX or not _DNS1123_SUBDOMAIN.match(prefix):
            return f"prefix part {prefix!r} must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME_PART.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character")
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                "'_' or '.', and must start and end with an alphanumeric character")
    return None


def _network(value: Any, version: int | None, allow_ip: bool = True, strict: bool = False):
    if not isinstance(value, str):
        return None
    try:
        if "/" in value:
            net = ipaddress.ip_network(value, strict=strict)
        elif allow_ip:
            net = ipaddress.ip_network(value)
        else:
            return None
    except ValueError:
        return None
    if version and net.version != version:
        return None
    return net


def _ip(value: Any, version: int | None):
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    if version and ip.version != version:
        return None
    return ip


@register_check("net")
def _net(v): return None if _network(v, None) else "invalid IP network (expected an IP address or CIDR)"


@register_check("netv4")
def _netv4(v): return None if _network(v, 4) else "invalid IPv4 network"


@register_check("netv6")
def _netv6(v): return None if _network(v, 6) else "invalid IPv6 network"


# Calico's "cidr" validators parse with ParseCIDROrIP, so a bare address is accepted too.
@register_check("cidr")
def _cidr(v): return None if _network(v, None) else "invalid CIDR"


@register_check("cidrv4")
def _cidrv4(v): return None if _network(v, 4, allow_ip=False) else "invalid IPv4 CIDR"


@register_check("cidrv6")
def _cidrv6(v): return None if _network(v, 6, allow_ip=False) else "invalid IPv6 CIDR"


@register_check("cidrs")
def _cidrs(v):
    return None if all(_network(x, None) for x in v or []) else "invalid CIDR in list"


@register_check("ip")
def _ipany(v): return None if _ip(v, None) else "invalid IP address"


@register_check("ipv4")
def _ipv4(v): return None if _ip(v, 4) else "invalid IPv4 address"


@register_check("ipv6")
def _ipv6(v): return None if _ip(v, 6) else "invalid IPv6 address"


@register_check("name")
def _name(v): return name_problem(v) if isinstance(v, str) else "invalid name"


@register_check("containerID")
def _container_id(v): return None if CONTAINER_ID_RE.match(v) else "invalid container ID"


@register_check("interface")
def _interface(v):
    return None if v == "*" or INTERFACE_RE.match(v) else "invalid interface name (1-15 of a-z A-Z 0-9 _ . -)"


@register_check("bgpFilterInterface")
def _bgp_filter_iface(v):
    return None if v == "*" or BGP_FILTER_INTERFACE_RE.match(v) else "invalid interface name or pattern"


@register_check("ignoredInterface")
def _ignored_iface(v):
    return None if v != "*" and IGNORED_INTERFACE_RE.match(v) else "invalid interface name or pattern"


def _prefix_length(v, top: int):
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top:
        return None
    return f"prefix length must be between 0 and {top}"


@register_check("bgpFilterPrefixLengthV4")
def _pl4(v): return _prefix_length(v, 32)


@register_check("bgpFilterPrefixLengthV6")
def _pl6(v): return _prefix_length(v, 128)


@register_check("ipType")
def _ip_type(v): return None if IP_TYPE_RE.match(v) else "must be CalicoNodeIP, InternalIP or ExternalIP"


@register_check("mac")
def _mac(v): return None if MAC_RE.match(v) else "invalid MAC address"


@register_check("portName")
def _port_name(v):
    if len(v) > 15 or not PORT_NAME_RE.match(v):
        return "invalid port name (lower-case alphanumerics and '-', at most 15 characters)"
    return None


@register_check("selector")
def _selector(v):
    from node.selector import SelectorError, validate  # the selector package owns the grammar
    try:
        validate(v)
    except SelectorError as exc:
        return f"invalid selector: {exc}"
    return None


@register_check("labels")
def _labels(v):
    for key, value in (v or {}).items():
        problem = qualified_name_problem(key)
        if problem:
            return f"invalid label key {key!r}: {problem}"
        problem = label_value_problem(value)
        if problem:
            return f"invalid value for label {key!r}: {problem}"
    return None


def split_ip_port(text: str) -> tuple[str, int | None] | None:
    """Split "IP", "IPv4:port" or "[IPv6]:port"; None when malformed."""
    m = re.match(r"^\[([0-9a-fA-F:.]+)\]:(\d+)$", text)
    if m:
        return m.group(1), int(m.group(2))
    m = re.match(r"^(\d+\.\d+\.\d+\.\d+):(\d+)$", text)
    if m:
        return m.group(1), int(m.group(2))
    if _ip(text, None):
        return text, None
    return None


@register_check("IP:port")
def _ip_port(v):
    parts = split_ip_port(v)
    if not parts or not _ip(parts[0], None):
        return "invalid peer IP (expected an IP, IPv4:port or [IPv6]:port)"
    if parts[1] is not None and not 1 <= parts[1] <= 65535:
        return "port must be between 1 and 65535"
    return None


@register_check("reachableBy")
def _reachable_by(v): return None if _ip(v, None) else "invalid reachableBy address"


# Log levels as Calico's CRDs pattern-match them (case-insensitive; empty means default).
LOG_SEVERITY_RE = re.compile(r"^(Trace|Debug|Info|Warning|Error|Fatal)?$", re.IGNORECASE)
BPF_LOG_LEVEL_RE = re.compile(r"^(Off|Info|Debug)?$", re.IGNORECASE)


@register_check("logSeverity")
def _log_severity(v):
    if isinstance(v, str) and LOG_SEVERITY_RE.match(v):
        return None
    return "invalid log level: expected Trace, Debug, Info, Warning, Error or Fatal, in any case"


@register_check("bpfLogLevel")
def _bpf_log_level(v):
    if isinstance(v, str) and BPF_LOG_LEVEL_RE.match(v):
        return None
    return "invalid BPF log level: expected Off, Info or Debug, in any case"


@register_check("wireguardPublicKey")
def _wg_key(v):
    import base64
    try:
        return None if len(base64.b64decode(v, validate=True)) == 32 else "invalid WireGuard public key"
    except ValueError:
        return "invalid WireGuard public key"


# --------------------------------------------------------------------------------------
# Struct-level checks (whole-object rules that a single field cannot express).

@register_struct_check("IPPoolSpec")
def _ippool_spec(spec: dict, path: str, errs: Collector) -> None:
    cidr = spec.get("cidr", "")
    p = f"{path}.cidr"
    if not cidr:
        errs.add(p, cidr, "IPPool CIDR must be specified")
        return
    net = _network(cidr, None, allow_ip=True)
    if net is None:
        return  # the field check already reported it
    if "/" in cidr and ipaddress.ip_network(cidr, strict=False).network_address != ipaddress.ip_interface(cidr).ip:
        errs.add(p, cidr, "IP pool CIDR is not strictly masked")
    block = spec.get("blockSize", 0)
    if block:
        lo, hi = (20, 32) if net.version == 4 else (116, 128)
        if not lo <= block <= hi:
            errs.add(f"{path}.blockSize", block,
                     f"block size must be between {lo} and {hi} for IPv{net.version}")
        elif net.prefixlen > block:
            errs.add(f"{path}.blockSize", block,
                     f"the pool prefix /{net.prefixlen} is longer than the block size /{block}")
    ipip = spec.get("ipipMode", "")
    vxlan = spec.get("vxlanMode", "")
    if ipip not in ("", "Never") and vxlan not in ("", "Never"):
        errs.add(f"{path}.ipipMode", ipip, "IPIP and VXLAN cannot both be enabled on the same pool")
    if net.version == 6 and ipip not in ("", "Never"):
        errs.add(f"{path}.ipipMode", ipip, "IPIP is not supported on an IPv6 pool")
    link_local = ipaddress.ip_network("169.254.0.0/16" if net.version == 4 else "fe80::/10")
    if net.overlaps(link_local):
        errs.add(p, cidr, f"IP pool range overlaps with the link-local range {link_local}")
    if "LoadBalancer" in spec.get("allowedUses", []) and len(spec["allowedUses"]) > 1:
        errs.add(f"{path}.allowedUses", spec["allowedUses"],
                 "LoadBalancer cannot be combined with other allowed uses")


@register_struct_check("NodeSpec")
def _node_spec(spec: dict, path: str, errs: Collector) -> None:
    if "bgp" in spec and spec["bgp"] == {}:
        errs.add(f"{path}.bgp", spec["bgp"], "Spec.BGP should not be empty")


@register_struct_check("Rule")
def _rule(rule: dict, path: str, errs: Collector) -> None:
    proto = rule.get("protocol")
    for side in ("source", "destination"):
        ent = rule.get(side) or {}
        if (ent.get("ports") or ent.get("notPorts")) and proto not in ("TCP", "UDP", "SCTP", 6, 17, 132):
            numeric = any(isinstance(p, int) or ":" in str(p) for p in
                          (ent.get("ports") or []) + (ent.get("notPorts") or []))
            if numeric:
                errs.add(f"{path}.{side}.ports", ent.get("ports") or ent.get("notPorts"),
                         "rules with numeric port or port range must set protocol to TCP or UDP or SCTP")
    if ("icmp" in rule or "notICMP" in rule) and proto not in ("ICMP", "ICMPv6", 1, 58):
        errs.add(f"{path}.icmp", rule.get("icmp") or rule.get("notICMP"),
                 "ICMP fields require protocol ICMP or ICMPv6")
    version = rule.get("ipVersion")
    if version is not None and version not in (4, 6):
        errs.add(f"{path}.ipVersion", version, "ipVersion must be 4 or 6")


@register_struct_check("BGPPeerSpec")
def _bgp_peer_spec(spec: dict, path: str, errs: Collector) -> None:
    if spec.get("node") and spec.get("nodeSelector"):
        errs.add(f"{path}.nodeSelector", spec["nodeSelector"], "cannot set both node and nodeSelector")
    if spec.get("peerIP") and spec.get("peerSelector"):
        errs.add(f"{path}.peerSelector", spec["peerSelector"], "cannot set both peerIP and peerSelector")
    reach, peer = spec.get("reachableBy"), spec.get("peerIP")
    if reach and peer:
        parts = split_ip_port(peer)
        if parts and _ip(reach, None) and _ip(parts[0], None) and \
                _ip(reach, None).version != _ip(parts[0], None).version:
            errs.add(f"{path}.reachableBy", reach, "ReachableBy and PeerIP address family mismatched")


@register_struct_check("EndpointPort")
def _endpoint_port(port: dict, path: str, errs: Collector) -> None:
    if port.get("protocol") not in ("TCP", "UDP", "SCTP"):
        errs.add(f"{path}.protocol", port.get("protocol"), "EndpointPort protocol must be 'TCP', 'UDP' or 'SCTP'")


@register_struct_check("HostEndpointSpec")
def _host_endpoint_spec(spec: dict, path: str, errs: Collector) -> None:
    # Without either, Calico cannot tell which host interface the endpoint governs.
    if not spec.get("interfaceName") and not spec.get("expectedIPs"):
        errs.add(f"{path}.interfaceName", "", "at least one of interfaceName or expectedIPs must be specified")


# --------------------------------------------------------------------------------------
# Whole-resource checks (rules that look at metadata and spec together), by kind.

ResourceCheck = Callable[[dict, dict, Collector], None]
RESOURCE_CHECKS: dict[str, ResourceCheck] = {}

# Calico sets this label itself when it maps a namespace into its v1 model; a network set
# that carries it would be misfiled.
NAMESPACE_LABEL = "projectcalico.org/namespace"


def _no_namespace_label(metadata: dict, spec: dict, errs: Collector) -> None:
    if NAMESPACE_LABEL in (metadata.get("labels") or {}):
        errs.add("metadata.labels", NAMESPACE_LABEL, f"{NAMESPACE_LABEL} is not a valid label name")


RESOURCE_CHECKS["NetworkSet"] = _no_namespace_label
RESOURCE_CHECKS["GlobalNetworkSet"] = _no_namespace_label

# FelixConfiguration's nodeSelector (Calico's CRD rules; libcalico-go's validator does not
# parse it, so a selector that does not parse is stored, and the policy agent logs and
# ignores it).
FELIX_NODE_SELECTOR_MAX = 1024


def _felix_configuration(metadata: dict, spec: dict, errs: Collector) -> None:
    name = metadata.get("name") or ""
    if "nodeSelector" not in spec or spec["nodeSelector"] is None:
        return
    selector = spec["nodeSelector"]
    if name == "default" or name.startswith("node."):
        errs.add("spec.nodeSelector", selector,
                 "nodeSelector must not be set on the 'default' or per-node ('node.*') FelixConfiguration; "
                 "give the selector-scoped configuration another name")
    if isinstance(selector, str) and len(selector) > FELIX_NODE_SELECTOR_MAX:
        errs.add("spec.nodeSelector", f"{selector[:40]}...",
                 f"must be no more than {FELIX_NODE_SELECTOR_MAX} characters (it has {len(selector)})")


RESOURCE_CHECKS["FelixConfiguration"] = _felix_configuration


# --------------------------------------------------------------------------------------
# Policy specs (libcalico-go's validateNetworkPolicySpec / validateGlobalNetworkPolicySpec).

def _policy_spec(spec: dict, path: str, errs: Collector, global_: bool) -> None:
    """Types given once each; services only on the side of a rule that can match them (a
    global policy's also naming their namespace); no HTTP match on egress."""
    seen: set[str] = set()
    for kind in spec.get("types") or []:
        if kind in seen:
            errs.add(f"{path}.types", spec["types"], f"'{kind}' type specified more than once")
        seen.add(kind)
    for i, rule in enumerate(spec.get("egress") or []):
        if (rule.get("source") or {}).get("services") is not None:
            errs.add(f"{path}.egress[{i}].source.services", rule["source"]["services"],
                     "not allowed in egress rule source")
        if rule.get("http") is not None:
            errs.add(f"{path}.egress[{i}].http", rule["http"], "not allowed in egress rule")
        services = (rule.get("destination") or {}).get("services")
        if global_ and services is not None and not services.get("namespace"):
            errs.add(f"{path}.egress[{i}].destination.services.namespace", "", "must specify a namespace")
    for i, rule in enumerate(spec.get("ingress") or []):
        if (rule.get("destination") or {}).get("services") is not None:
            errs.add(f"{path}.ingress[{i}].destination.services", rule["destination"]["services"],
                     "not allowed in ingress rule destination")
        services = (rule.get("source") or {}).get("services")
        if global_ and services is not None and not services.get("namespace"):
            errs.add(f"{path}.ingress[{i}].source.services.namespace", "", "must specify a namespace")


for _spec_name, _global in (("NetworkPolicySpec", False), ("StagedNetworkPolicySpec", False),
                            ("GlobalNetworkPolicySpec", True), ("StagedGlobalNetworkPolicySpec", True)):
    register_struct_check(_spec_name)(lambda spec, path, errs, g=_global: _policy_spec(spec, path, errs, g))

STAGED_ACTION_DELETE = "Delete"


def _staged_delete_is_empty(metadata: dict, spec: dict, errs: Collector, tiered: bool) -> bool:
    """A staged deletion names the policy (and, tiered, its tier) and nothing else; a tiered
    one's types do not count, as the write path drops them before validating."""
    if spec.get("stagedAction") != STAGED_ACTION_DELETE:
        return False
    keep = ("stagedAction", "tier", "types") if tiered else ("stagedAction",)
    extra = [k for k, value in spec.items() if k not in keep and value not in ({}, None)]
    if extra:
        what = "Spec fields, except Tier," if tiered else "Spec fields"
        errs.add(f"spec.{extra[0]}", spec[extra[0]],
                 f"{what} should all be zero-value if stagedAction is Delete (also set: {', '.join(extra)})")
    return True


RESOURCE_CHECKS["StagedNetworkPolicy"] = lambda m, s, e: _staged_delete_is_empty(m, s, e, True)
RESOURCE_CHECKS["StagedGlobalNetworkPolicy"] = lambda m, s, e: _staged_delete_is_empty(m, s, e, True)


def _staged_kubernetes_policy(metadata: dict, spec: dict, errs: Collector) -> None:
    """Unless it stages a deletion, the policy must convert to the NetworkPolicy it would
    enforce, and that policy must be valid."""
    if _staged_delete_is_empty(metadata, spec, errs, False):
        return
    from node.datastore.kubernetes.conversion import k8s_network_policy_spec_to_calico

    converted, problems = k8s_network_policy_spec_to_calico(spec)
    for problem in problems:
        where, _, reason = problem.partition(": ")
        errs.add(where, "", f"conversion to stagednetworkpolicy failed: {reason}")
    _policy_spec(converted, "spec", errs, False)


RESOURCE_CHECKS["StagedKubernetesNetworkPolicy"] = _staged_kubernetes_policy


# --------------------------------------------------------------------------------------
# LiveMigration (libcalico-go internalapi): a source or target that is given names exactly
# one thing (its kubebuilder ExactlyOneOf markers).

def _exactly_one(value: dict, path: str, errs: Collector, fields: tuple[str, str]) -> None:
    given = [f for f in fields if value.get(f) is not None]
    if len(given) == 1:
        return
    state = "neither is" if not given else "both are"
    errs.add(path, ", ".join(given), f"exactly one of {fields[0]} and {fields[1]} must be specified; {state}")


@register_struct_check("LiveMigrationSource")
def _live_migration_source(source: dict, path: str, errs: Collector) -> None:
    _exactly_one(source, path, errs, ("workload", "workloadEndpoint"))


@register_struct_check("LiveMigrationTarget")
def _live_migration_target(target: dict, path: str, errs: Collector) -> None:
    _exactly_one(target, path, errs, ("selector", "workloadEndpoint"))
    if target.get("selector") == "":
        # The policy agent reads an empty selector as none: the target would match nothing.
        errs.add(f"{path}.selector", "", "a target selector must not be empty")
