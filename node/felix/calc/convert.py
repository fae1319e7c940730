"""v3 resources to Felix's v1 view (libcalico-go's felix-syncer update processors).

Pure functions of one resource each.  The selector strings are composed exactly as
libcalico-go composes them (same parentheses, same quotes) because the v1 selector is
what gets parsed, canonicalised and hashed into IP-set names downstream; only the
namespace/service-account selectors are re-rendered canonically on the way, as Calico
does when it prefixes their labels.

A function raises ``ValueError`` for a resource it cannot use; the graph logs it with the
resource's name and treats the resource as absent, as Felix's validation filter does.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from node.felix import netaddr
from node.felix import types as t
from node.felix.calc import v1
from node.errors import CalicoError
from node.model import Resource, validate_resource
from node.model.dscp import dscp_value
from node.model.names import name_segments
from node.model.validators import STAGED_ACTION_DELETE
from node.selector import SelectorError, parse
from node.selector.rewrite import prefix_labels

log = logging.getLogger(__name__)

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
NAMESPACE_LABEL_PREFIX = "pcns."
SERVICE_ACCOUNT_LABEL_PREFIX = "pcsa."
NAMESPACE_PROFILE_PREFIX = "kns."
_RESERVED_LABEL_PREFIXES = (NAMESPACE_LABEL_PREFIX, SERVICE_ACCOUNT_LABEL_PREFIX)
DEFAULT_TIER = "default"
PERF_HINT_ASSUME_NEEDED = "AssumeNeededOnEveryNode"

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network


# --------------------------------------------------------------------------------------
# Addresses, as Go's net package and libcalico-go's cnet parse and print them.

def parse_cidr_or_ip(text: Any) -> IPNet | None:
    """``cnet.ParseCIDROrIP`` then ``Network()``: a masked network, a bare IP as /32 or
    /128; None if it parses as neither."""
    if not isinstance(text, str) or not text:
        return None
    try:
        if "/" in text or ":" not in text:
            return netaddr.parse_network(text)
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped  # Go's To4(): a v4-mapped address is an IPv4 address
    return ipaddress.ip_network(addr)


def parse_ip(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not isinstance(text, str):
        return None
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def nets_to_strings(nets: Iterable[Any]) -> tuple[str, ...]:
    """Parse, mask and print; unparseable entries are skipped (libcalico-go's
    NormalizeIPNets/ConvertStringsToNets)."""
    if not nets:
        return ()
    out = []
    for text in nets:
        net = parse_cidr_or_ip(text)
        if net is not None:
            out.append(str(net))
    return tuple(out)


_MAC_SEPARATED = re.compile(r"^[0-9A-Fa-f]{2}([:-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2})*$")
_MAC_DOTTED = re.compile(r"^[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4})*$")


def normalise_mac(text: str) -> str:
    """Go's ``net.ParseMAC`` + ``String()``: lower-case, colon separated."""
    if _MAC_SEPARATED.match(text):
        octets = re.split("[:-]", text)
    elif _MAC_DOTTED.match(text):
        octets = [g[i:i + 2] for g in text.split(".") for i in (0, 2)]
    else:
        raise ValueError(f"invalid MAC address {text!r}")
    if len(octets) not in (6, 8, 20):
        raise ValueError(f"invalid MAC address {text!r}")
    return ":".join(o.lower() for o in octets)


def v1_protocol(value: Any) -> int | str | None:
    """numorstring.Protocol ``ToV1()``: numbers stay numbers (a numeric string is a
    number, as the JSON decoding makes it), names are lower-cased."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid protocol {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.isdigit() and int(value) <= 255:
            return int(value)
        return value.lower()
    raise ValueError(f"invalid protocol {value!r}")


def sorted_pairs(mapping: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((mapping or {}).items()))


# --------------------------------------------------------------------------------------
# Selectors.

def parse_selector_attach_prefix(text: str, prefix: str) -> str:
    """A v3 namespace/service-account selector as its v1 form: every label prefixed, then
    printed canonically.  Calico drops a selector it cannot parse (logging it), so do we."""
    try:
        return str(prefix_labels(parse(text), prefix))
    except SelectorError as exc:
        log.error("Failed to parse selector %r (for prefix %s): %s", text, prefix, exc)
        return ""


def prefix_and_append_selector(current: str, new: str, prefix: str) -> str:
    if new:
        prefixed = parse_selector_attach_prefix(new, prefix)
        if prefixed:
            current = f"({current}) && {prefixed}" if current else prefixed
    return current


def network_policy_selector(selector: str, namespace: str, sa_selector: str) -> str:
    """A NetworkPolicy's v1 selector: scoped to its namespace, then the service-account
    selector appended with its labels prefixed."""
    if namespace:
        ns_sel = f"{LABEL_NAMESPACE} == '{namespace}'"
        selector = f"({selector}) && {ns_sel}" if selector else ns_sel
    return prefix_and_append_selector(selector, sa_selector, SERVICE_ACCOUNT_LABEL_PREFIX)


def global_policy_selector(selector: str, ns_selector: str, sa_selector: str) -> str:
    """A GlobalNetworkPolicy's v1 selector.  ``all()`` is replaced textually in the whole
    combined string, as Calico does (so it also rewrites the policy's own selector)."""
    if ns_selector:
        selector = prefix_and_append_selector(selector, ns_selector, NAMESPACE_LABEL_PREFIX)
        selector = selector.replace("all()", f"has({LABEL_NAMESPACE})")
    if sa_selector:
        selector = prefix_and_append_selector(selector, sa_selector, SERVICE_ACCOUNT_LABEL_PREFIX)
        selector = selector.replace("all()", f"has({LABEL_SERVICE_ACCOUNT})")
    return selector


def service_accounts_selector(match: Mapping[str, Any]) -> str:
    """An EntityRule's ``serviceAccounts`` as one selector: the prefixed selector ANDed
    with a canonical ``projectcalico.org/serviceaccount in {...}``."""
    updated = ""
    if match.get("selector"):
        updated = parse_selector_attach_prefix(match["selector"], SERVICE_ACCOUNT_LABEL_PREFIX)
    names = match.get("names") or []
    if not names:
        return updated
    text = f"{LABEL_SERVICE_ACCOUNT} in {{ '" + "', '".join(names) + "' }"
    try:
        names_sel = str(parse(text))
    except SelectorError as exc:
        log.error("Failed to parse service account names %s: %s", text, exc)
        return ""
    return f"({updated}) && ({names_sel})" if updated else names_sel


def entity_rule_selector(entity: Mapping[str, Any], namespace: str) -> str:
    """The one v1 selector for an EntityRule's selector, namespaceSelector and
    serviceAccounts, scoped to the policy's namespace (libcalico-go's
    GetEntityRuleSelector).  ``notSelector`` only triggers the scoping; it is kept apart."""
    sa_sel = ""
    if entity.get("serviceAccounts") is not None:
        sa_sel = service_accounts_selector(entity["serviceAccounts"])
    ns_selector_text = entity.get("namespaceSelector") or ""
    endpoint_sel = entity.get("selector") or ""
    not_sel = entity.get("notSelector") or ""

    ns_sel = ""
    if ns_selector_text:
        ns_sel = parse_selector_attach_prefix(ns_selector_text, NAMESPACE_LABEL_PREFIX)
        ns_sel = ns_sel.replace("all()", f"has({LABEL_NAMESPACE})")
        ns_sel = ns_sel.replace("global()", f"!has({LABEL_NAMESPACE})")
    elif namespace:
        ns_sel = f"{LABEL_NAMESPACE} == '{namespace}'"

    parts = [s for s in (sa_sel, endpoint_sel) if s]
    selector = parts[0] if len(parts) == 1 else ("(" + ") && (".join(parts) + ")" if parts else "")
    if ns_sel and (selector or not_sel or ns_selector_text):
        selector = f"({ns_sel}) && ({selector})" if selector else ns_sel
    return selector


# --------------------------------------------------------------------------------------
# Rules.

def _action(action: str) -> str:
    return "next-tier" if action == "Pass" else action.lower()


def _ports(values: Any) -> tuple[v1.Port, ...]:
    if not values:
        return ()
    out = []
    for p in values:
        if isinstance(p, bool) or not isinstance(p, (int, str)):
            raise ValueError(f"invalid port {p!r}")
        if isinstance(p, str) and p.isdigit():
            p = int(p)
        out.append(p)
    return tuple(out)


def _icmp(fields: Mapping[str, Any] | None) -> tuple[int | None, int | None]:
    if not fields:
        return None, None
    return fields.get("type"), fields.get("code")


def convert_rule(rule: Mapping[str, Any], namespace: str) -> v1.Rule:
    """One v3 rule as Felix sees it (libcalico-go's RuleAPIV3ToBackend)."""
    src = rule.get("source") or {}
    dst = rule.get("destination") or {}
    icmp_type, icmp_code = _icmp(rule.get("icmp"))
    not_icmp_type, not_icmp_code = _icmp(rule.get("notICMP"))
    src_svc = src.get("services") or {}
    dst_svc = dst.get("services") or {}
    originals = []
    for ent in (src, dst):
        for field_name in ("selector", "namespaceSelector", "notSelector"):
            if ent.get(field_name):
                originals.append(ent[field_name])
        sam = ent.get("serviceAccounts") or {}
        if sam.get("selector"):
            originals.append(sam["selector"])
    metadata = rule.get("metadata") or {}
    return v1.Rule(
        action=_action(rule.get("action", "")),
        ip_version=rule.get("ipVersion"),
        protocol=v1_protocol(rule.get("protocol")),
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        not_protocol=v1_protocol(rule.get("notProtocol")),
        not_icmp_type=not_icmp_type,
        not_icmp_code=not_icmp_code,
        src_nets=nets_to_strings(src.get("nets")),
        src_selector=entity_rule_selector(src, namespace),
        src_ports=_ports(src.get("ports")),
        src_service=src_svc.get("name", ""),
        src_service_namespace=src_svc.get("namespace", ""),
        dst_nets=nets_to_strings(dst.get("nets")),
        dst_selector=entity_rule_selector(dst, namespace),
        dst_ports=_ports(dst.get("ports")),
        dst_service=dst_svc.get("name", ""),
        dst_service_namespace=dst_svc.get("namespace", ""),
        not_src_nets=nets_to_strings(src.get("notNets")),
        not_src_selector=src.get("notSelector") or "",
        not_src_ports=_ports(src.get("notPorts")),
        not_dst_nets=nets_to_strings(dst.get("notNets")),
        not_dst_selector=dst.get("notSelector") or "",
        not_dst_ports=_ports(dst.get("notPorts")),
        original_selectors=tuple(originals),
        has_http_match=rule.get("http") is not None,
        annotations=sorted_pairs(metadata.get("annotations")),
    )


def convert_rules(rules: Any, namespace: str) -> tuple[v1.Rule, ...]:
    return tuple(convert_rule(r, namespace) for r in rules or ())


# --------------------------------------------------------------------------------------
# Policies, profiles, tiers.

# A staged policy is converted as the kind it stages (keeping its own kind in its ID).
STAGED_ENFORCED_KIND = {
    t.KIND_STAGED_NETWORK_POLICY: t.KIND_NETWORK_POLICY,
    t.KIND_STAGED_GLOBAL_NETWORK_POLICY: t.KIND_GLOBAL_NETWORK_POLICY,
    t.KIND_STAGED_KUBERNETES_NETWORK_POLICY: t.KIND_KUBERNETES_NETWORK_POLICY,
}
POLICY_KINDS = {t.KIND_NETWORK_POLICY, t.KIND_GLOBAL_NETWORK_POLICY, t.KIND_KUBERNETES_NETWORK_POLICY,
                t.KIND_KUBERNETES_CLUSTER_NETWORK_POLICY, *STAGED_ENFORCED_KIND}
# Namespaced policy kinds: a Kubernetes NetworkPolicy (KDD) is enforced like a NetworkPolicy.
NAMESPACED_POLICY_KINDS = {t.KIND_NETWORK_POLICY, t.KIND_KUBERNETES_NETWORK_POLICY,
                           t.KIND_STAGED_NETWORK_POLICY, t.KIND_STAGED_KUBERNETES_NETWORK_POLICY}


def policy_id(res: Resource) -> t.PolicyID:
    if res.kind in NAMESPACED_POLICY_KINDS:
        return t.PolicyID(res.name, res.namespace, res.kind)
    return t.PolicyID(res.name, "", res.kind)


def _staged_kubernetes_spec(res: Resource) -> dict:
    """The Calico NetworkPolicy spec a StagedKubernetesNetworkPolicy's Kubernetes spec
    converts to, as a Kubernetes NetworkPolicy's does; a rule that does not convert makes
    the whole policy unusable (libcalico-go's staged processor drops it)."""
    from node.datastore.kubernetes.conversion import k8s_network_policy_spec_to_calico

    spec, problems = k8s_network_policy_spec_to_calico(res.spec)
    if problems:
        raise ValueError("; ".join(problems))
    return spec


def convert_policy(res: Resource) -> v1.Policy | None:
    """A NetworkPolicy, GlobalNetworkPolicy, KubernetesNetworkPolicy or
    KubernetesClusterNetworkPolicy (the network/global policy processors), or a staged
    one, converted as the kind it stages; None for a staged deletion, which the policy
    agent never hears of."""
    spec = res.spec
    kind = res.kind
    if kind in STAGED_ENFORCED_KIND:
        if spec.get("stagedAction") == STAGED_ACTION_DELETE:
            return None
        if kind == t.KIND_STAGED_KUBERNETES_NETWORK_POLICY:
            spec = _staged_kubernetes_spec(res)
        kind = STAGED_ENFORCED_KIND[kind]
    ns = res.namespace if kind in NAMESPACED_POLICY_KINDS else ""
    if kind in NAMESPACED_POLICY_KINDS:
        if not ns:
            raise ValueError(f"a {res.kind} needs a namespace")
        selector = network_policy_selector(spec.get("selector") or "", ns,
                                           spec.get("serviceAccountSelector") or "")
    else:
        selector = global_policy_selector(spec.get("selector") or "",
                                          spec.get("namespaceSelector") or "",
                                          spec.get("serviceAccountSelector") or "")
    order = spec.get("order")
    glob = kind == t.KIND_GLOBAL_NETWORK_POLICY
    return v1.Policy(
        id=policy_id(res),
        selector=selector,
        tier=spec.get("tier") or DEFAULT_TIER,
        order=None if order is None else float(order),
        namespace=ns,
        inbound_rules=convert_rules(spec.get("ingress"), ns),
        outbound_rules=convert_rules(spec.get("egress"), ns),
        types=tuple(str(x).lower() for x in spec.get("types") or ()),
        do_not_track=glob and bool(spec.get("doNotTrack")),
        pre_dnat=glob and bool(spec.get("preDNAT")),
        apply_on_forward=glob and bool(spec.get("applyOnForward")),
        performance_hints=tuple(spec.get("performanceHints") or ()),
    )


def convert_profile(res: Resource) -> v1.Profile:
    spec = res.spec
    return v1.Profile(
        rules=v1.ProfileRules(convert_rules(spec.get("ingress"), ""), convert_rules(spec.get("egress"), "")),
        labels=sorted_pairs(spec.get("labelsToApply")),
    )


def convert_tier(res: Resource) -> v1.Tier:
    """Any default action but Pass means Deny (libcalico-go's tier processor)."""
    order = res.spec.get("order")
    action = "Pass" if res.spec.get("defaultAction") == "Pass" else "Deny"
    return v1.Tier(None if order is None else float(order), action)


# --------------------------------------------------------------------------------------
# Endpoints and network sets.

@lru_cache(maxsize=4096)
def _shared_value(value: tuple) -> tuple:
    return value


def _shared(value: tuple) -> tuple:
    """One object per distinct (immutable) tuple, e.g. the profile list every endpoint of
    a namespace has: thousands of endpoints keep one copy instead of one each."""
    try:
        return _shared_value(value)
    except TypeError:  # unhashable entries: kept as they are
        return value


def workload_endpoint_key(res: Resource) -> v1.WorkloadEndpointKey:
    """The v1 key comes from the resource *name* (node-orchestrator-workload-endpoint)."""
    name, namespace = res.name, res.namespace
    parts = name_segments(name, 4)
    if parts is None or not namespace:
        raise ValueError(f"name {name!r} is not <node>-<orchestrator>-<workload>-<endpoint>")
    # Host and orchestrator names repeat across thousands of endpoints: one copy each.
    return v1.WorkloadEndpointKey(sys.intern(parts[0]), sys.intern(parts[1]), f"{namespace}/{parts[2]}", parts[3])


def _endpoint_ports(ports: Any, skip_unnamed: bool) -> tuple[v1.EndpointPort, ...]:
    out = []
    for p in ports or ():
        if skip_unnamed and not p.get("name"):
            continue
        out.append(v1.EndpointPort(p.get("name", ""), v1_protocol(p.get("protocol", 0)), int(p.get("port", 0))))
    return tuple(out)


# QoSControls' documented ranges (libcalico-go's internalapi.QoSControls): rates and
# bursts are xt_limit's (at most 10,000), connection counts xt_connlimit's (a uint32).
_MAX_PACKET_RATE = 10_000
_MAX_CONNECTIONS = 4_294_967_295
_DEFAULT_PACKET_BURST = 5
# The bandwidth limits' ranges (the same documentation; its Kubernetes conversion
# enforces them): bandwidth and peakrate in bits per second, burst in bits (at most a
# uint32 of bytes), minburst in bytes. A bandwidth without a burst gets 4Gi bits.
_BANDWIDTH_RANGE = (1_000, 10**15)
_BURST_RANGE = (1_000, 0xFFFFFFFF * 8)
_PEAKRATE_RANGE = (1_010, 101 * 10**13)
_MINBURST_RANGE = (1_000, 10**8)
_DEFAULT_BURST = 4 * 2**30


def _qos_int(spec: Mapping, field: str, res: Resource, maximum: int) -> int:
    """One QoSControls number, or 0 (no limit) with a warning naming the endpoint and
    field when it is out of its range (Felix would refuse to render it)."""
    value = spec.get(field) or 0
    if type(value) is not int or not 0 <= value <= maximum:
        log.warning("WorkloadEndpoint %s/%s: qosControls.%s %r is not between 0 and %d; not applied",
                    res.namespace, res.name, field, value, maximum)
        return 0
    return value


def _qos_in_range(spec: Mapping, field: str, res: Resource, bounds: tuple[int, int]) -> int:
    """One bandwidth setting: 0 (unset), or a number within ``bounds``; anything else is
    0 with a warning naming the endpoint and field."""
    value = spec.get(field) or 0
    low, high = bounds
    if type(value) is not int or not (value == 0 or low <= value <= high):
        log.warning("WorkloadEndpoint %s/%s: qosControls.%s %r is not between %d and %d; not applied",
                    res.namespace, res.name, field, value, low, high)
        return 0
    return value


def _bandwidth_limits(spec: Mapping, side: str, res: Resource) -> dict[str, int]:
    """One direction's token bucket settings. A burst, peakrate or minburst without what
    it refines (the bandwidth; the peakrate for minburst), and a peakrate not above the
    bandwidth (the kernel refuses it), are dropped with a warning; a bandwidth without a
    burst gets the default burst."""
    bandwidth = _qos_in_range(spec, f"{side}Bandwidth", res, _BANDWIDTH_RANGE)
    burst = _qos_in_range(spec, f"{side}Burst", res, _BURST_RANGE)
    peakrate = _qos_in_range(spec, f"{side}Peakrate", res, _PEAKRATE_RANGE)
    minburst = _qos_in_range(spec, f"{side}Minburst", res, _MINBURST_RANGE)

    def drop(field: str, why: str) -> int:
        log.warning("WorkloadEndpoint %s/%s: qosControls.%s%s %s; not applied", res.namespace, res.name, side,
                    field, why)
        return 0

    if not bandwidth:
        for field, value in (("Burst", burst), ("Peakrate", peakrate), ("Minburst", minburst)):
            if value:
                drop(field, f"is set without {side}Bandwidth")
        return {}
    if peakrate and peakrate <= bandwidth:
        peakrate = drop("Peakrate", f"{peakrate} is not above {side}Bandwidth {bandwidth}")
    if minburst and not peakrate:
        minburst = drop("Minburst", f"is set without {side}Peakrate")
    return {f"{side}_bandwidth": bandwidth, f"{side}_burst": burst or _DEFAULT_BURST,
            f"{side}_peakrate": peakrate, f"{side}_minburst": minburst}


def qos_controls(res: Resource) -> t.QoSControls | None:
    """The packet-rate, connection and bandwidth limits of a WorkloadEndpoint (None when
    it has none); a packet rate without a burst gets Calico's default burst of 5."""
    spec = res.spec.get("qosControls")
    if not spec:
        return None
    values = {}
    for side in ("ingress", "egress"):
        rate = _qos_int(spec, f"{side}PacketRate", res, _MAX_PACKET_RATE)
        values[f"{side}_packet_rate"] = rate
        values[f"{side}_packet_burst"] = (
            _qos_int(spec, f"{side}PacketBurst", res, _MAX_PACKET_RATE) or _DEFAULT_PACKET_BURST) if rate else 0
        values[f"{side}_max_connections"] = _qos_int(spec, f"{side}MaxConnections", res, _MAX_CONNECTIONS)
        values.update(_bandwidth_limits(spec, side, res))
    return t.QoSControls(**values) if any(values.values()) else None


DSCP_ANNOTATION = "qos.projectcalico.org/dscp"


def _dscp(value, res: Resource, field: str) -> int | None:
    """A DSCP setting's number, or None (not applied) with a warning naming the endpoint
    and field when it is not a DSCP value (Felix's DSCP manager skips it)."""
    try:
        return dscp_value(value)
    except ValueError as exc:
        log.warning("%s: %s: %s; not applied", res.identifier(), field, exc)
        return None


def convert_workload_endpoint(res: Resource) -> v1.WorkloadEndpoint | None:
    """None for an endpoint without IP networks: Felix cannot render it yet."""
    spec = res.spec
    networks = spec.get("ipNetworks")
    if not networks:
        return None
    v4, v6 = [], []
    for text in networks:
        fast = netaddr.v4_network_text(text) if type(text) is str else None
        if fast is not None:  # canonical IPv4, printed without building the network
            v4.append(fast)
            continue
        net = parse_cidr_or_ip(text)
        if net is None:
            raise ValueError(f"invalid ipNetworks entry {text!r}")
        (v4 if net.version == 4 else v6).append(str(net))
    nat4, nat6 = [], []
    for nat in spec.get("ipNATs") or ():
        int_ip, ext_ip = parse_ip(nat.get("internalIP")), parse_ip(nat.get("externalIP"))
        if int_ip is not None and ext_ip is not None:
            (nat4 if int_ip.version == 4 else nat6).append((str(ext_ip), str(int_ip)))
    # A workload may not claim another namespace's or service account's labels.
    account = spec.get("serviceAccountName")
    if account:
        labels = {k: v for k, v in res.labels.items() if not k.startswith(_RESERVED_LABEL_PREFIXES)}
        labels[LABEL_SERVICE_ACCOUNT] = account
        label_pairs = sorted_pairs(labels)
    else:  # the same pairs, without the intermediate dict
        label_pairs = tuple(sorted([(k, v) for k, v in res.labels.items()
                                    if not k.startswith(_RESERVED_LABEL_PREFIXES)]))
    spoofed = []
    for text in spec.get("allowSpoofedSourcePrefixes") or ():
        net = parse_cidr_or_ip(text)
        if net is None:
            raise ValueError(f"invalid allowSpoofedSourcePrefixes entry {text!r}")
        spoofed.append(str(net))
    mac = spec.get("mac") or ""
    ports = spec.get("ports")
    annotations = res.metadata.get("annotations")
    qos = spec.get("qosControls")
    dscp = qos.get("dscp") if qos else None
    return v1.WorkloadEndpoint(  # (positionally: one per endpoint of the cluster)
        spec.get("interfaceName") or "",                              # name
        label_pairs,                                                  # labels
        _shared(tuple(spec.get("profiles") or ())),                   # profile_ids
        normalise_mac(mac) if mac else "",                            # mac
        tuple(v4),                                                    # ipv4_nets
        tuple(v6),                                                    # ipv6_nets
        tuple(nat4),                                                  # ipv4_nat
        tuple(nat6),                                                  # ipv6_nat
        _endpoint_ports(ports, skip_unnamed=True) if ports else (),   # ports
        tuple(spoofed),                                               # allow_spoofed_source_prefixes
        sorted_pairs(annotations) if annotations else (),             # annotations
        qos_controls(res) if qos else None,                           # qos_controls
        _dscp(dscp, res, "qosControls.dscp") if dscp is not None else None,  # dscp
    )


def host_endpoint_key(res: Resource) -> v1.HostEndpointKey:
    return v1.HostEndpointKey(res.spec.get("node") or "", res.name)


def convert_host_endpoint(res: Resource) -> v1.HostEndpoint:
    spec = res.spec
    dscp = (res.metadata.get("annotations") or {}).get(DSCP_ANNOTATION)
    v4, v6 = [], []
    for text in spec.get("expectedIPs") or ():
        addr = parse_ip(text)
        if addr is not None:
            (v4 if addr.version == 4 else v6).append(str(addr))
    return v1.HostEndpoint(
        name=spec.get("interfaceName") or "",
        labels=sorted_pairs(res.labels),
        profile_ids=tuple(spec.get("profiles") or ()),
        expected_ipv4_addrs=tuple(v4),
        expected_ipv6_addrs=tuple(v6),
        ports=_endpoint_ports(spec.get("ports"), skip_unnamed=False),
        dscp=_dscp(dscp, res, f"annotation {DSCP_ANNOTATION}") if dscp is not None else None,
    )


NETWORK_SET_KINDS = {"NetworkSet", "GlobalNetworkSet"}


def network_set_key(res: Resource) -> v1.NetworkSetKey:
    if res.kind == "NetworkSet":
        if not res.namespace:
            raise ValueError("a NetworkSet needs a namespace")
        return v1.NetworkSetKey(f"{res.namespace}/{res.name}")
    return v1.NetworkSetKey(res.name)


def convert_network_set(res: Resource) -> v1.NetworkSet:
    """A NetworkSet also carries its namespace label and inherits from the namespace's
    profile, so namespace selectors reach it."""
    nets = []
    for text in res.spec.get("nets") or ():
        net = parse_cidr_or_ip(text)
        if net is None:
            log.warning("Invalid CIDR %r in %s; ignoring it", text, res.identifier())
            continue
        nets.append(str(net))
    labels = dict(res.labels)
    parents: tuple[str, ...] = ()
    if res.kind == "NetworkSet":
        labels[LABEL_NAMESPACE] = res.namespace
        parents = (NAMESPACE_PROFILE_PREFIX + res.namespace,)
    return v1.NetworkSet(tuple(nets), sorted_pairs(labels), parents)


# --------------------------------------------------------------------------------------
# Pools and hosts (passed through to the dataplane).

_ENCAP_MODES = ("Always", "CrossSubnet")


def convert_ip_pool(res: Resource) -> tuple[str, t.IPAMPool]:
    """The pool keyed as Felix keys it: the masked CIDR with '/' turned into '-'."""
    text = res.spec.get("cidr") or ""
    if "/" not in text:
        raise ValueError(f"invalid pool CIDR {text!r}")
    net = parse_cidr_or_ip(text)
    if net is None:
        raise ValueError(f"invalid pool CIDR {text!r}")
    ipip = res.spec.get("ipipMode")
    vxlan = res.spec.get("vxlanMode")
    uses = tuple(res.spec.get("allowedUses") or ("Workload", "Tunnel"))
    pool = t.IPAMPool(
        cidr=str(net),
        masquerade=bool(res.spec.get("natOutgoing")),
        ipip_mode=ipip if ipip in _ENCAP_MODES else "Never",
        vxlan_mode=vxlan if vxlan in _ENCAP_MODES else "Never",
        allowed_uses=uses,
    )
    return str(net).replace("/", "-", 1), pool


def _node_address(spec: Mapping[str, Any], kind: str, version: int) -> str:
    for entry in spec.get("addresses") or ():
        if entry.get("type") == kind:
            net = parse_cidr_or_ip(entry.get("address"))
            addr = parse_ip((entry.get("address") or "").split("/")[0])
            if net is not None and addr is not None and addr.version == version:
                return str(addr)
    return ""


def convert_node(res: Resource) -> t.HostMetadata:
    """A Node's addresses for the dataplane: the BGP addresses without their prefix length,
    falling back to the InternalIP then ExternalIP address for IPv4 (as the HostIP key
    does)."""
    spec = res.spec
    bgp = spec.get("bgp") or {}

    def bare(text: str) -> str:
        addr = parse_ip((text or "").split("/")[0]) if text else None
        return str(addr) if addr is not None else ""

    v4 = bare(bgp.get("ipv4Address", ""))
    if not v4:
        v4 = _node_address(spec, "InternalIP", 4) or _node_address(spec, "ExternalIP", 4)
    asn = bgp.get("asNumber")
    return t.HostMetadata(
        hostname=res.name,
        ipv4_addr=v4,
        ipv6_addr=bare(bgp.get("ipv6Address", "")),
        asnumber="" if asn is None else str(asn),
        labels=sorted_pairs(res.labels),
    )


def convert_global_bgp_config(res: Resource) -> t.GlobalBGPConfig:
    """BGPConfiguration ``default`` as the dataplane sees it (Felix's passthrough): the
    service CIDRs in the resource's order (entries without a CIDR skipped) and the
    local-workload peering addresses. An invalid resource raises (it counts as absent,
    as Felix's validation filter makes it)."""
    try:
        validate_resource(res)
    except CalicoError as exc:
        raise ValueError(str(exc)) from None
    spec = res.spec

    def cidrs(field: str) -> tuple[str, ...]:
        return tuple(block["cidr"] for block in spec.get(field) or () if block.get("cidr"))

    return t.GlobalBGPConfig(
        service_cluster_cidrs=cidrs("serviceClusterIPs"),
        service_external_cidrs=cidrs("serviceExternalIPs"),
        service_loadbalancer_cidrs=cidrs("serviceLoadBalancerIPs"),
        local_workload_peering_ipv4=spec.get("localWorkloadPeeringIPV4") or "",
        local_workload_peering_ipv6=spec.get("localWorkloadPeeringIPV6") or "",
    )
