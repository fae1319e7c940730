"""Calico's field and struct validators, registered against the schema by name.

The names match the ``validate:"..."`` tags of Calico's API types (``net``, ``cidrv4``,
``selector``, ``portName``...), so ``node.model.structs`` can say which applies where.
Messages name what is wrong in terms an operator can act on.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Callable

from node.model.cnet import parse_cidr_or_ip
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


# Log levels as libcalico-go's "logLevel" validator matches them: exact case (its CRDs'
# patterns ignore case, but the validator runs on every write, on both datastores, and
# refuses "info"). Empty means the default.
LOG_SEVERITY_RE = re.compile(r"^(Trace|Debug|Info|Warning|Error|Fatal)?$")
BPF_LOG_LEVEL_RE = re.compile(r"^(Off|Info|Debug)?$")


@register_check("logSeverity")
def _log_severity(v):
    if isinstance(v, str) and LOG_SEVERITY_RE.match(v):
        return None
    return "invalid log level: expected Trace, Debug, Info, Warning, Error or Fatal (exactly so capitalised)"


@register_check("bpfLogLevel")
def _bpf_log_level(v):
    if isinstance(v, str) and BPF_LOG_LEVEL_RE.match(v):
        return None
    return "invalid BPF log level: expected Off, Info or Debug (exactly so capitalised)"


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
        for key in ("ports", "notPorts"):
            ports = ent.get(key) or []
            if not ports:
                continue
            if proto is None:
                if not all(_is_named(p) for p in ports):
                    errs.add(f"{path}.{side}.{key}", ports,
                             "rules with numeric port or port range must set protocol to TCP or UDP or SCTP")
            elif not _supports_ports(proto):
                errs.add(f"{path}.{side}.{key}", ports, "rules that specify ports must set protocol to TCP or UDP or SCTP")
    if "icmp" in rule and proto not in ("ICMP", "ICMPv6"):
        errs.add(f"{path}.icmp", rule["icmp"],
                 "rules that specify ICMP fields must set protocol to ICMP or ICMPv6")
    version = rule.get("ipVersion")
    if version is not None and version not in (4, 6):
        errs.add(f"{path}.ipVersion", version, "ipVersion must be 4 or 6")
    _rule_checks(rule, path, errs)


def _supports_ports(proto: Any) -> bool:
    """numorstring.Protocol.SupportsPorts: TCP, UDP or SCTP (names in either case Calico
    knows, or numbers 6, 17, 132)."""
    if isinstance(proto, str) and proto.isdigit():
        proto = int(proto)
    return proto in PORT_PROTOCOLS


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


# --------------------------------------------------------------------------------------
# libcalico-go v3.32.1's remaining field validators (validator.go's registerFieldValidator)
# and struct validators (registerStructValidator), as its validator table exercises them
# (tests/test_model_validator_table.py replays that table).

IFACE_FILTER_RE = re.compile(r"^[a-zA-Z0-9:._+-]{1,15}$")
PROMETHEUS_HOST_RE = re.compile(r"^[a-zA-Z0-9:._+-]{1,64}$")
KEY_VALUE_RE = re.compile(r"^\s*(\w+)=(.*)$")
HEALTH_TIMEOUT_NAME_RE = re.compile(r"^[a-zA-Z0-9_ -]+$")
STANDARD_COMMUNITY_RE = re.compile(r"^(\d+):(\d+)$")
LARGE_COMMUNITY_RE = re.compile(r"^(\d+):(\d+):(\d+)$")
ANNOTATIONS_MAX_BYTES = 256 * (1 << 10)
ROUTE_TABLE_MAX = 0xFFFFFFFF
ROUTE_TABLE_RANGES_MAX_TABLES = 0xFFFF
# The built-in tiers' pinned orders (validateTier) and default actions (the Tier CRD's
# rules): default 1e6 and Deny, kube-admin 1000 and Pass, kube-baseline 1e7 and Pass.
# An unset order or action is judged as what the client's defaulting gives it (1e6, Deny).
DEFAULT_TIER_ORDERS = {"default": 1_000_000.0, "kube-admin": 1_000.0, "kube-baseline": 10_000_000.0}
BUILTIN_TIER_ACTIONS = {"default": "Deny", "kube-admin": "Pass", "kube-baseline": "Pass"}
TIER_DEFAULT_ORDER = DEFAULT_TIER_ORDERS["default"]
TIER_DEFAULT_ACTION = "Deny"
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP", "tcp", "udp", "sctp", 6, 17, 132)


def _regex_check(name: str, pattern: re.Pattern, what: str) -> None:
    register_check(name)(lambda v: None if isinstance(v, str) and pattern.match(v) else what)


_regex_check("dropAcceptReturn", re.compile(r"^(Drop|Accept|Return)$"), "must be Drop, Accept or Return")
_regex_check("acceptReturn", re.compile(r"^(Accept|Return)$"), "must be Accept or Return")
_regex_check("dropReject", re.compile(r"^(Drop|Reject)$"), "must be Drop or Reject")
_regex_check("bpfServiceMode", re.compile(r"^(Tunnel|DSR)$"), "must be Tunnel or DSR")
# (Go's oneof tags; plain strings in the CRDs.)
_regex_check("serviceLoopPrevention", re.compile(r"^(Drop|Reject|Disabled)$"), "must be Drop, Reject or Disabled")
_regex_check("workloadSourceSpoofing", re.compile(r"^(Disabled|Any)$"), "must be Disabled or Any")
_regex_check("ifaceFilter", IFACE_FILTER_RE, "invalid interface filter (1-15 of a-z A-Z 0-9 : . _ + -)")
_regex_check("prometheusHost", PROMETHEUS_HOST_RE, "invalid host (1-64 of a-z A-Z 0-9 : . _ + -)")


@register_check("regexp")
def _regexp(v):
    # Go compiles RE2; Python's syntax is close enough to refuse what the table refuses.
    try:
        re.compile(v)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return None


@register_check("ifaceFilterSlice")
def _iface_filter_slice(v):
    for item in v or []:
        if not isinstance(item, str) or not IFACE_FILTER_RE.match(item):
            return f"invalid interface filter {item!r} (1-15 of a-z A-Z 0-9 : . _ + -)"
    return None


@register_check("keyValueList")
def _key_value_list(v):
    if not v.strip():
        return None
    for item in v.split(","):
        if item and not KEY_VALUE_RE.match(item):
            return f"invalid key=value item {item!r}"
    return None


@register_check("bpfLogFilters")
def _bpf_log_filters(v):
    for key in v or {}:
        if not INTERFACE_RE.match(key):
            return f"invalid interface name {key!r}"
    return None


def _go_parse_ip(text: str):
    """net.ParseIP: an address without a prefix (an IPv4-mapped IPv6 address is IPv4)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _annotation_problems(annotations: Any, path: str, errs: Collector) -> None:
    """validateObjectMetaAnnotations: keys are qualified names once lower-cased, and keys
    plus values hold at most 256 KiB."""
    if not isinstance(annotations, dict):
        return
    total = 0
    for key, value in annotations.items():
        problem = qualified_name_problem(str(key).lower())
        if problem:
            errs.add(f"{path}.annotations", key, f"invalid annotation key: {problem}")
        total += len(str(key).encode()) + len(str(value).encode())
    if total > ANNOTATIONS_MAX_BYTES:
        errs.add(f"{path}.annotations", f"{total} bytes",
                 f"total size of annotations is too large by {total - ANNOTATIONS_MAX_BYTES} bytes")


@register_struct_check("ObjectMeta")
def _object_meta(meta: dict, path: str, errs: Collector) -> None:
    _annotation_problems(meta.get("annotations"), path, errs)


@register_struct_check("RuleMetadata")
def _rule_metadata(meta: dict, path: str, errs: Collector) -> None:
    _annotation_problems(meta.get("annotations"), path, errs)


@register_struct_check("WorkloadEndpointPort")
def _workload_endpoint_port(port: dict, path: str, errs: Collector) -> None:
    if port.get("protocol") not in PORT_PROTOCOLS and str(port.get("protocol")) not in ("6", "17", "132"):
        errs.add(f"{path}.protocol", port.get("protocol"), "WorkloadEndpointPort protocol does not support ports")
    if not port.get("name") and not port.get("hostPort"):
        errs.add(f"{path}.name", "", "WorkloadEndpointPort name must not be empty if no hostPort is specified")


@register_struct_check("ProtoPort")
def _proto_port(pp: dict, path: str, errs: Collector) -> None:
    if pp.get("protocol") not in ("TCP", "UDP", "SCTP"):
        errs.add(f"{path}.protocol", pp.get("protocol", ""), "protocol must be 'TCP' or 'UDP' or 'SCTP'")


@register_struct_check("IPNAT")
def _ipnat(nat: dict, path: str, errs: Collector) -> None:
    internal, external = parse_cidr_or_ip(nat.get("internalIP")), parse_cidr_or_ip(nat.get("externalIP"))
    if internal and external and internal[0].version != external[0].version:
        errs.add(f"{path}.externalIP", nat.get("externalIP"), "mismatched IP versions")


@register_struct_check("WorkloadEndpointSpec")
def _workload_endpoint_spec(spec: dict, path: str, errs: Collector) -> None:
    nets = []
    for i, text in enumerate(spec.get("ipNetworks") or []):
        parsed = parse_cidr_or_ip(text)
        if parsed is None:
            continue  # the field check reported it
        if parsed[1].num_addresses != 1:
            errs.add(f"{path}.ipNetworks[{i}]", text, "IP network contains multiple addresses")
        nets.append(parsed[1])
    for i, nat in enumerate(spec.get("ipNATs") or []):
        parsed = parse_cidr_or_ip(nat.get("internalIP"))
        if parsed is None:
            continue
        if not any(parsed[0].version == net.version and parsed[0] in net for net in nets):
            errs.add(f"{path}.ipNATs[{i}]", nat.get("internalIP"), "NAT is not in the endpoint networks")
            break


@register_struct_check("ICMPFields")
def _icmp_fields(icmp: dict, path: str, errs: Collector) -> None:
    if icmp.get("code") is not None and icmp.get("type") is None:
        errs.add(f"{path}.code", icmp["code"], "ICMP code specified without an ICMP type")


def _port_problem(port: Any) -> str | None:
    """numorstring.Port's validator: numbers 1-65535, a range's ends too."""
    if isinstance(port, int):
        return None if port >= 1 else "port range invalid, port number must be between 1 and 65535"
    if isinstance(port, str):
        m = re.match(r"^(\d+):(\d+)$", port)
        if m and int(m.group(1)) < 1:
            return "port range invalid, port number must be between 1 and 65535"
    return None


def _is_named(port: Any) -> bool:
    return isinstance(port, str) and not re.match(r"^\d+(:\d+)?$", port)


def _catch_all(net) -> bool:
    return net.prefixlen == 0 and int(net.network_address) == 0


@register_struct_check("EntityRule")
def _entity_rule(ent: dict, path: str, errs: Collector) -> None:
    for key in ("ports", "notPorts"):
        for i, port in enumerate(ent.get(key) or []):
            problem = _port_problem(port)
            if problem:
                errs.add(f"{path}.{key}[{i}]", port, problem)
    if "global()" in (ent.get("selector") or ""):
        errs.add(f"{path}.selector", ent["selector"], "global() can only be used in an EntityRule namespaceSelector")
    ns_sel = ent.get("namespaceSelector") or ""
    if "global(" in ns_sel and ns_sel.strip() != "global()":
        errs.add(f"{path}.namespaceSelector", ns_sel, "global() cannot be combined with other selectors")
    services = ent.get("services")
    if services is not None:
        if not services.get("name"):
            errs.add(f"{path}.services.name", "", "must specify a service name")
        for key, what in (("namespaceSelector", "NamespaceSelector"), ("selector", "Selector/NotSelector"),
                          ("notSelector", "Selector/NotSelector"), ("serviceAccounts", "ServiceAccounts"),
                          ("nets", "Nets/NotNets"), ("notNets", "Nets/NotNets")):
            if ent.get(key):
                errs.add(f"{path}.services", services, f"cannot specify {what} and Services on the same rule")


@register_struct_check("HTTPMatch")
def _http_match(http: dict, path: str, errs: Collector) -> None:
    methods = http.get("methods") or []
    if len(set(methods)) != len(methods):
        errs.add(f"{path}.methods", methods, "invalid methods (duplicates)")
    for i, p in enumerate(http.get("paths") or []):
        exact, prefix = p.get("exact", ""), p.get("prefix", "")
        if exact and prefix:
            errs.add(f"{path}.paths[{i}]", p, "invalid path match: both 'exact' and 'prefix' are set")
            break
        value = exact or prefix
        if not value:
            errs.add(f"{path}.paths[{i}]", p, "invalid path match: either 'exact' or 'prefix' must be set")
            break
        if not value.startswith("/") or any(c in value for c in "? #"):
            errs.add(f"{path}.paths[{i}]", value, "invalid path (must start with '/' and not contain '?', ' ' or '#')")
            break


def _rule_checks(rule: dict, path: str, errs: Collector) -> None:
    """validateRule's checks beyond ports and ICMP fields (see ``_rule``)."""
    proto, not_proto, version = rule.get("protocol"), rule.get("notProtocol"), rule.get("ipVersion")
    if rule.get("action", "") == "":
        errs.add(f"{path}.action", "", "action must be specified (Allow, Deny, Log or Pass)")
    if rule.get("http") is not None and proto is not None and proto != "TCP":
        errs.add(f"{path}.protocol", proto, "rules that specify HTTP fields must set protocol to TCP or empty")
    if rule.get("http") is not None and rule.get("action") != "Allow":
        errs.add(f"{path}.http", rule["http"], "only valid for Allow rules")
    if version is not None:
        if "ICMP" in (proto, not_proto) and version != 4:
            errs.add(f"{path}.ipVersion", version, "must set ipversion to '4' with protocol icmp")
        if "ICMPv6" in (proto, not_proto) and version != 6:
            errs.add(f"{path}.ipVersion", version, "must set ipversion to '6' with protocol icmpv6")
    seen4 = seen6 = False
    for side in ("source", "destination"):
        ent = rule.get(side) or {}
        for key in ("nets", "notNets"):
            v4 = v6 = False
            for text in ent.get(key) or []:
                try:
                    net = ipaddress.ip_network(text, strict=False) if "/" in text else None
                except ValueError:
                    net = None
                if net is None:
                    continue  # the field check reported it (Go also refuses a bare address here)
                v4, v6 = v4 or net.version == 4, v6 or net.version == 6
                if key == "notNets" and _catch_all(net):
                    errs.add(f"{path}.{side}.{key}", text,
                             "catch-all CIDR in negation creates logical contradiction (matches no traffic)")
            if version is not None and ((v4 and version != 4) or (v6 and version != 6)):
                errs.add(f"{path}.{side}.{key}", ent[key], "rule IP version doesn't match CIDR version")
            if (v4 and seen6) or (v6 and seen4) or (v4 and v6):
                errs.add(f"{path}.{side}.{key}", ent[key], "rule contains both IPv4 and IPv6 CIDRs")
            seen4, seen6 = seen4 or v4, seen6 or v6
    dest = rule.get("destination") or {}
    if dest.get("services") is not None:
        for key in ("ports", "notPorts"):
            if dest.get(key):
                errs.add(f"{path}.destination.{key}", dest[key], f"cannot specify {key} with a service selector")


@register_struct_check("IPPoolSpec")
def _ippool_spec_more(spec: dict, path: str, errs: Collector) -> None:
    _ippool_spec(spec, path, errs)
    parsed = parse_cidr_or_ip(spec.get("cidr", ""))
    uses = spec.get("allowedUses") or []
    load_balancer = "LoadBalancer" in uses
    ipip, vxlan = spec.get("ipipMode", ""), spec.get("vxlanMode", "")
    if load_balancer and (ipip in ("Always", "CrossSubnet") or vxlan in ("Always", "CrossSubnet")):
        errs.add(f"{path}.ipipMode", ipip or vxlan,
                 "neither IPIPMode nor VXLANMode can be enabled on an IP pool with allowed use LoadBalancer")
    if load_balancer and spec.get("disableBGPExport"):
        errs.add(f"{path}.disableBGPExport", True, "an IP pool with allowed use LoadBalancer cannot disable BGP export")
    if load_balancer and spec.get("nodeSelector", "") not in ("", "all()"):
        # (An empty selector is defaulted to all() before Calico validates it.)
        errs.add(f"{path}.nodeSelector", spec["nodeSelector"],
                 "an IP pool with allowed use LoadBalancer must have node selector all()")
    if "Tunnel" in uses and spec.get("namespaceSelector"):
        errs.add(f"{path}.namespaceSelector", spec["namespaceSelector"],
                 "an IP pool with allowed use Tunnel cannot have a namespaceSelector (tunnel addresses are not "
                 "namespaced)")
    for key in ("nodeSelector", "namespaceSelector"):
        if "global(" in (spec.get(key) or ""):
            errs.add(f"{path}.{key}", spec[key], f"global() is not valid in an IP pool's {key}: use all() instead")
    if spec.get("assignmentMode") == "":
        errs.add(f"{path}.assignmentMode", "", "must be Automatic or Manual")
    if parsed is not None and not spec.get("disabled") and not spec.get("blockSize"):
        default = 26 if parsed[1].version == 4 else 122
        if parsed[1].prefixlen > default:
            errs.add(f"{path}.cidr", spec["cidr"], "IP pool size is too small for use with Calico IPAM: it must be "
                                                    f"equal to or greater than the block size (/{default})")


@register_struct_check("HostEndpointSpec")
def _host_endpoint_spec_more(spec: dict, path: str, errs: Collector) -> None:
    _host_endpoint_spec(spec, path, errs)
    if not spec.get("node"):
        errs.add(f"{path}.node", "", "no node has been specified")


def _community_ok(value: str, path: str, errs: Collector) -> bool:
    """isValidCommunity: aa:nn (16-bit parts) or aa:nn:mm (32-bit parts); a value of the
    right shape with a part out of range is reported and counts as a community."""
    if STANDARD_COMMUNITY_RE.match(value):
        bits = 16
    elif LARGE_COMMUNITY_RE.match(value):
        bits = 32
    else:
        return False
    if any(int(part) >= 1 << bits for part in value.split(":")):
        errs.add(path, value, f"invalid community value, expected {bits} bit value")
    return True


@register_struct_check("BGPConfigurationSpec")
def _bgp_configuration_spec(spec: dict, path: str, errs: Collector) -> None:
    communities = spec.get("communities") or []
    for i, community in enumerate(communities):
        value = community.get("value", "")
        if value and not _community_ok(value, f"{path}.communities[{i}].value", errs):
            errs.add(f"{path}.communities[{i}].value", value, "invalid community value or format used")
    adverts = spec.get("prefixAdvertisements") or []
    if communities and not adverts:
        errs.add(f"{path}.communities", communities, "communities are defined but not used in prefixAdvertisements")
    names = {c.get("name") for c in communities}
    for i, advert in enumerate(adverts):
        for j, value in enumerate(advert.get("communities") or []):
            where = f"{path}.prefixAdvertisements[{i}].communities[{j}]"
            if not _community_ok(value, where, errs) and value not in names:
                errs.add(where, value, "community used is invalid or not defined")
    if spec.get("nodeToNodeMeshEnabled") is False:
        for key in ("nodeMeshPassword", "nodeMeshMaxRestartTime"):
            if spec.get(key) is not None:
                errs.add(f"{path}.{key}", spec[key], f"{key} cannot be set when nodeToNodeMeshEnabled is false")


@register_struct_check("BGPPeerSpec")
def _bgp_peer_spec_more(spec: dict, path: str, errs: Collector) -> None:
    _bgp_peer_spec(spec, path, errs)
    asn = spec.get("asNumber", 0)
    if asn and spec.get("peerSelector"):
        errs.add(f"{path}.asNumber", asn, "asNumber must be empty when peerSelector is specified")
    # A local-workload peer names its AS itself and finds its peers by the selector alone.
    if spec.get("localWorkloadSelector"):
        if not asn:
            errs.add(f"{path}.asNumber", asn, "asNumber must be set when localWorkloadSelector is specified")
        for key in ("peerIP", "peerSelector"):
            if spec.get(key):
                errs.add(f"{path}.{key}", spec[key], f"{key} must be empty when localWorkloadSelector is specified")
    # keepOriginalNextHop is deprecated in favour of nextHopMode; the two cannot be combined.
    if spec.get("keepOriginalNextHop") and spec.get("nextHopMode") is not None:
        errs.add(f"{path}.keepOriginalNextHop", True,
                 "keepOriginalNextHop (deprecated) must not be true when nextHopMode is set")
    if spec.get("reachableBy") and not spec.get("peerIP"):
        errs.add(f"{path}.reachableBy", spec["reachableBy"], "reachableBy must be empty when peerIP is empty")


def _bgp_filter_rule(rule: dict, path: str, errs: Collector) -> None:
    """A rule's cidr and matchOperator come together; a prefixLength needs a cidr."""
    cidr, op = rule.get("cidr", ""), rule.get("matchOperator", "")
    if cidr and not op:
        errs.add(f"{path}.matchOperator", "", "matchOperator must be set when cidr is set")
    if op and not cidr:
        errs.add(f"{path}.cidr", "", "cidr must be set when matchOperator is set")
    if not cidr and rule.get("prefixLength") is not None:
        errs.add(f"{path}.prefixLength", rule["prefixLength"], "cidr must be set when prefixLength is set")


register_struct_check("BGPFilterRuleV4")(_bgp_filter_rule)
register_struct_check("BGPFilterRuleV6")(_bgp_filter_rule)


@register_struct_check("BGPFilterOperation")
def _bgp_filter_operation(op: dict, path: str, errs: Collector) -> None:
    given = [k for k in ("addCommunity", "prependASPath", "setPriority") if op.get(k) is not None]
    if len(given) != 1:
        errs.add(path, ", ".join(given) or "none", "exactly one operation must be set")


@register_struct_check("BlockAffinitySpec")
def _block_affinity_spec(spec: dict, path: str, errs: Collector) -> None:
    if spec.get("deleted") == "true":
        errs.add(f"{path}.deleted", "true", 'deleted cannot be set to "true"')


@register_struct_check("HealthTimeoutOverride")
def _health_timeout_override(hto: dict, path: str, errs: Collector) -> None:
    if not HEALTH_TIMEOUT_NAME_RE.match(hto.get("name", "")):
        errs.add(f"{path}.name", hto.get("name", ""), "name should match " + HEALTH_TIMEOUT_NAME_RE.pattern)
    if str(hto.get("timeout", "")).startswith("-"):
        errs.add(f"{path}.timeout", hto["timeout"], "timeout should not be negative")


@register_struct_check("RouteTableRange")
def _route_table_range(r: dict, path: str, errs: Collector) -> None:
    lo, hi = r.get("min", 0), r.get("max", 0)
    if not (lo >= 1 and hi >= lo and hi <= 250):
        errs.add(path, f"{lo}-{hi}", "must be a range of route table indices within 1..250")


@register_struct_check("RouteTableIDRange")
def _route_table_id_range(r: dict, path: str, errs: Collector) -> None:
    lo, hi = r.get("min", 0), r.get("max", 0)
    if lo > hi:
        errs.add(path, f"{lo}-{hi}", "min value cannot be greater than max value")
    if lo <= 0:
        errs.add(path, f"{lo}-{hi}", "cannot target indices < 1")
    if hi > ROUTE_TABLE_MAX:
        errs.add(path, f"{lo}-{hi}", "max index too high")


@register_struct_check("FelixConfigurationSpec")
def _felix_configuration_spec(spec: dict, path: str, errs: Collector) -> None:
    ranges = spec.get("kubeNodePortRanges")
    if ranges is not None:
        if len(ranges) > 7:
            errs.add(f"{path}.kubeNodePortRanges", ranges, "node port ranges list is too long (max 7)")
        if any(_is_named(p) for p in ranges):
            errs.add(f"{path}.kubeNodePortRanges", ranges, "node port ranges should not contain named ports")
    for i, text in enumerate(spec.get("externalNodesList") or []):
        parsed = parse_cidr_or_ip(text)
        if parsed is None:
            errs.add(f"{path}.externalNodesList[{i}]", text, "has invalid CIDR(s)")
        elif parsed[0].version != 4:
            errs.add(f"{path}.externalNodesList[{i}]", text, "has invalid IPv6 CIDR")
    region = spec.get("openstackRegion", "")
    if len(region) > 63 - len("openstack-region-"):
        errs.add(f"{path}.openstackRegion", region, "is too long")
    elif region and not TIER_NAME_RE.match(region):  # (a DNS-1123 label)
        errs.add(f"{path}.openstackRegion", region, "must be a valid DNS label")
    for key, version in (("natOutgoingAddress", 4), ("deviceRouteSourceAddress", 4),
                         ("deviceRouteSourceAddressIPv6", 6)):
        text = spec.get(key, "")
        if text:
            ip = _go_parse_ip(text)
            if ip is None or ip.version != version:
                errs.add(f"{path}.{key}", text, f"is not a valid IPv{version} address")
    id_ranges = spec.get("routeTableRanges")
    if spec.get("routeTableRange") is not None and id_ranges is not None:
        errs.add(f"{path}.routeTableRange", spec["routeTableRange"],
                 "cannot be set when routeTableRanges is also set")
    if id_ranges:
        tables = sum(r.get("max", 0) - r.get("min", 0) + 1 for r in id_ranges)
        if tables > ROUTE_TABLE_RANGES_MAX_TABLES:
            errs.add(f"{path}.routeTableRanges", id_ranges, "targets too many tables")


def _policy_spec_more(spec: dict, path: str, errs: Collector, global_: bool) -> None:
    _policy_spec(spec, path, errs, global_)
    keys = ("selector", "serviceAccountSelector", "namespaceSelector") if global_ else \
        ("selector", "serviceAccountSelector")
    for key in keys:
        if "global()" in (spec.get(key) or ""):
            errs.add(f"{path}.{key}", spec[key], "global() can only be used in an EntityRule namespaceSelector")
    if global_:
        pre_dnat, untracked = spec.get("preDNAT"), spec.get("doNotTrack")
        if pre_dnat and untracked:
            errs.add(f"{path}.preDNAT", True, "preDNAT and doNotTrack cannot both be true")
        if pre_dnat and spec.get("egress"):
            errs.add(f"{path}.egress", spec["egress"], "a preDNAT policy cannot have egress rules")
        if pre_dnat and "Egress" in (spec.get("types") or []):
            errs.add(f"{path}.types", spec["types"], "a preDNAT policy cannot have the Egress type")
        if (pre_dnat or untracked) and not spec.get("applyOnForward"):
            errs.add(f"{path}.applyOnForward", False, "applyOnForward must be true if preDNAT or doNotTrack is true")


for _spec_name, _global in (("NetworkPolicySpec", False), ("StagedNetworkPolicySpec", False),
                            ("GlobalNetworkPolicySpec", True), ("StagedGlobalNetworkPolicySpec", True)):
    register_struct_check(_spec_name)(lambda spec, path, errs, g=_global: _policy_spec_more(spec, path, errs, g))


def _tier(metadata: dict, spec: dict, errs: Collector) -> None:
    name = metadata.get("name") or ""
    if len(name) > 63:
        errs.add("metadata.name", name, f"name is too long by {len(name) - 63} bytes")
    if name in DEFAULT_TIER_ORDERS:
        order = spec.get("order")
        if (TIER_DEFAULT_ORDER if order is None else order) != DEFAULT_TIER_ORDERS[name]:
            errs.add("spec.order", order, f"{name} tier order must be {DEFAULT_TIER_ORDERS[name]:g}")
        action = spec.get("defaultAction")
        if (action or TIER_DEFAULT_ACTION) != BUILTIN_TIER_ACTIONS[name]:
            errs.add("spec.defaultAction", action,
                     f"the '{name}' tier must have default action '{BUILTIN_TIER_ACTIONS[name]}'")


RESOURCE_CHECKS["Tier"] = _tier
