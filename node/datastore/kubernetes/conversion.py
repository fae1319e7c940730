"""Kubernetes objects <-> Calico data, as libcalico-go's Kubernetes backend converts them.

Pure functions over plain dicts (decoded JSON): no client, no I/O. The backend
(``node.datastore.kubernetes.kv``) applies them to what the API server returns.

* Calico kinds stored as custom resources: in the ``crd.projectcalico.org/v1`` group the
  Calico metadata (minus name, namespace, resourceVersion and uid) travels as JSON in
  the ``projectcalico.org/metadata`` annotation, only labels and annotations that are
  Calico's own stay on the CR, and the v3 UID is the CR's with every byte bit-reversed
  except bytes 6 and 8. In the ``projectcalico.org/v3`` group objects are stored as-is.
* IPAM blocks, affinities, handles and the IPAM configuration as CRs.
* Native objects: Node, Pod -> WorkloadEndpoint, Namespace and ServiceAccount ->
  Profile, NetworkPolicy -> KubernetesNetworkPolicy, ClusterNetworkPolicy ->
  KubernetesClusterNetworkPolicy; KubeVirt VirtualMachineInstanceMigration -> LiveMigration.

A conversion that cannot be done raises ``ConversionError`` naming the object and field.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import math
import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from node.model.cnet import parse_cidr_or_ip
from node.model.dscp import dscp_from_text
from node.model.schema import Collector, canonical_struct, go_json

GROUP_V1 = "crd.projectcalico.org/v1"
GROUP_V3 = "projectcalico.org/v3"
API_VERSION = GROUP_V3

METADATA_ANNOTATION = "projectcalico.org/metadata"
LABELS_ANNOTATION = "projectcalico.org/labels"
ANNOTATIONS_ANNOTATION = "projectcalico.org/annotations"
POLICY_KINDS_WITH_NAME = ("NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy",
                          "StagedGlobalNetworkPolicy")

NAMESPACE_PROFILE_PREFIX = "kns."
SERVICE_ACCOUNT_PROFILE_PREFIX = "ksa."
NAMESPACE_LABEL_PREFIX = "pcns."
SERVICE_ACCOUNT_LABEL_PREFIX = "pcsa."
NAME_LABEL = "projectcalico.org/name"

ANNOTATION_POD_IP = "cni.projectcalico.org/podIP"
ANNOTATION_POD_IPS = "cni.projectcalico.org/podIPs"
ANNOTATION_AWS_POD_IPS = "vpc.amazonaws.com/pod-ips"
ANNOTATION_CONTAINER_ID = "cni.projectcalico.org/containerID"
ANNOTATION_FLOATING_IPS = "cni.projectcalico.org/floatingIPs"
ANNOTATION_SOURCE_PREFIXES = "cni.projectcalico.org/allowedSourcePrefixes"
ANNOTATION_NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
LABEL_HOSTNAME_HASH = "projectcalico.org/hostname-hash"
LABEL_AFFINITY_TYPE = "projectcalico.org/affinity-type"
LABEL_IP_VERSION = "projectcalico.org/ip-version"

# Node annotations (libcalico-go resources/node.go).
NODE_IPV4_ADDRESS = "projectcalico.org/IPv4Address"
NODE_IPV6_ADDRESS = "projectcalico.org/IPv6Address"
NODE_AS_NUMBER = "projectcalico.org/ASNumber"
NODE_IPIP_TUNNEL_ADDR = "projectcalico.org/IPv4IPIPTunnelAddr"
NODE_RR_CLUSTER_ID = "projectcalico.org/RouteReflectorClusterID"
NODE_VXLAN_TUNNEL_ADDR = "projectcalico.org/IPv4VXLANTunnelAddr"
NODE_VXLAN_MAC = "projectcalico.org/VXLANTunnelMACAddr"
NODE_VXLAN_TUNNEL_ADDR_V6 = "projectcalico.org/IPv6VXLANTunnelAddr"
NODE_VXLAN_MAC_V6 = "projectcalico.org/VXLANTunnelMACAddrV6"
NODE_WG_IPV4 = "projectcalico.org/IPv4WireguardInterfaceAddr"
NODE_WG_IPV6 = "projectcalico.org/IPv6WireguardInterfaceAddr"
NODE_WG_KEY = "projectcalico.org/WireguardPublicKey"
NODE_WG_KEY_V6 = "projectcalico.org/WireguardPublicKeyV6"
NODE_INTERFACES = "projectcalico.org/Interfaces"
NODE_KUBE_LABELS = "projectcalico.org/kube-labels"

ORCHESTRATOR_K8S = "k8s"
DEFAULT_TIER = "default"


class ConversionError(ValueError):
    """An object that cannot be converted; the message names it and the field."""


def _meta(obj: dict) -> dict:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def describe(obj: dict) -> str:
    """``Kind(namespace/name)`` for error messages."""
    meta = _meta(obj)
    name = meta.get("name", "")
    ns = meta.get("namespace", "")
    return f"{obj.get('kind') or 'object'}({ns + '/' if ns else ''}{name})"


# --------------------------------------------------------------------------------------
# UIDs and names.

def _reverse8(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


def convert_uid(uid: str) -> str:
    """libcalico-go's ConvertUID: every byte bit-reversed except bytes 6 and 8 (the UUID
    version and variant), so the result is a valid v4 UUID and the transform is its own
    inverse."""
    try:
        raw = uuid.UUID(uid).bytes
    except (ValueError, TypeError, AttributeError):
        raise ConversionError(f"failed to parse UID for resource: invalid UUID {uid!r}") from None
    out = bytearray(_reverse8(b) for b in raw)
    out[6], out[8] = raw[6], raw[8]
    return str(uuid.UUID(bytes=bytes(out)))


def cidr_to_name(cidr: str) -> str:
    """names.CIDRToName: the masked CIDR with '.', ':' and '/' replaced by '-'."""
    text = str(ipaddress.ip_network(cidr, strict=False))
    return text.replace(".", "-", 3).replace(":", "-", 7).replace("/", "-", 1)


def affinity_name(host: str, cidr: str) -> str:
    """A BlockAffinity CR's name: ``<host>-<cidr name>``; names of 253 characters or more
    keep a truncated host and get an 11-hex SHA-256 suffix."""
    cidrname = cidr_to_name(cidr)
    name = f"{host}-{cidrname}"
    if len(name) >= 253:
        keep = 252 - len(cidrname) - 13
        digest = hashlib.sha256(f"{host}+{cidrname}".encode()).hexdigest()[:11]
        name = f"{host[:keep]}-{cidrname}-{digest}"
    return name


def hostname_hash(host: str) -> str:
    """The ``projectcalico.org/hostname-hash`` label: base32 (no padding) of SHA3-256."""
    return base64.b32encode(hashlib.sha3_256(host.encode()).digest()).decode().rstrip("=")


def affinity_labels(host: str, affinity_type: str, cidr: str) -> dict[str, str]:
    return {LABEL_HOSTNAME_HASH: hostname_hash(host), LABEL_AFFINITY_TYPE: affinity_type,
            LABEL_IP_VERSION: "6" if ":" in cidr else "4"}


def handle_name(handle_id: str) -> str:
    """An IPAMHandle CR's name: the handle ID lowercased."""
    return handle_id.lower()


# --------------------------------------------------------------------------------------
# Calico kinds as custom resources.

_META_ORDER = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
               "annotations", "ownerReferences", "finalizers", "managedFields")


def go_map_json(value: dict | None) -> str:
    """json.Marshal of a Go map[string]string: keys sorted; a nil map is null."""
    if value is None:
        return "null"
    return go_json({k: value[k] for k in sorted(value)})


def _sorted(value):
    return {k: value[k] for k in sorted(value)} if isinstance(value, dict) else value


def _ours(key: str) -> bool:
    return "projectcalico.org/" in key or "operator.tigera.io/" in key


def _object_meta_json(meta: dict) -> str:
    """json.Marshal of a metav1.ObjectMeta: Go's field order, a null creationTimestamp."""
    ordered = {k: (_sorted(meta[k]) if k in ("labels", "annotations") else meta[k])
               for k in _META_ORDER if k in meta and meta[k] not in (None, "", {}, [])}
    ordered.setdefault("creationTimestamp", None)
    out = {}
    for k in _META_ORDER:
        if k in ordered:
            out[k] = ordered[k]
    return go_json(out)


def _translate_owner_refs(refs: Any, from_version: tuple[str, ...], to_version: str) -> Any:
    if not isinstance(refs, list):
        return refs
    out = []
    for ref in refs:
        if isinstance(ref, dict) and ref.get("apiVersion") in from_version:
            ref = dict(ref, apiVersion=to_version)
            if ref.get("uid"):
                ref["uid"] = convert_uid(ref["uid"])
        out.append(ref)
    return out


def v3_to_cr(obj: dict, cr_kind: str, group: str) -> dict:
    """A v3 object (as stored in etcd, plus name/namespace/resourceVersion) as the CR to
    write. ``group`` is GROUP_V1 (metadata annotation, UID reversed) or GROUP_V3 (as-is)."""
    meta = copy.deepcopy(_meta(obj))
    kind = obj.get("kind", "")
    body: dict = {"apiVersion": group, "kind": cr_kind}
    if group == GROUP_V3:
        body["metadata"] = {k: v for k, v in meta.items() if v is not None}
    else:
        stored = {k: v for k, v in meta.items() if k not in ("namespace", "resourceVersion", "uid")}
        if kind not in POLICY_KINDS_WITH_NAME:
            stored.pop("name", None)
        if "ownerReferences" in stored:
            stored["ownerReferences"] = _translate_owner_refs(stored["ownerReferences"], (GROUP_V3,), GROUP_V1)
        annotations = {METADATA_ANNOTATION: _object_meta_json(stored)}
        for k, v in (meta.get("annotations") or {}).items():
            if _ours(k):
                annotations[k] = v
        cr_meta: dict = {"name": meta.get("name", "")}
        if meta.get("namespace"):
            cr_meta["namespace"] = meta["namespace"]
        if meta.get("uid"):
            cr_meta["uid"] = convert_uid(meta["uid"])
        if meta.get("resourceVersion"):
            cr_meta["resourceVersion"] = meta["resourceVersion"]
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if _ours(k)}
        if labels:
            cr_meta["labels"] = labels
        cr_meta["annotations"] = annotations
        body["metadata"] = cr_meta
    if "spec" in obj:
        body["spec"] = obj["spec"]
    if obj.get("status") is not None:
        body["status"] = obj["status"]
    return body


def _policy_name(cr_name: str, tier: str) -> str:
    if tier in ("", DEFAULT_TIER):
        return cr_name.removeprefix("default.")
    return cr_name


def cr_to_v3(cr: dict, kind: str, group: str) -> dict:
    """A CR read from the API server as the v3 object Calico presents (for v1, metadata
    from the annotation, UID reversed). The result keeps the CR's resourceVersion."""
    meta = copy.deepcopy(_meta(cr))
    spec = cr.get("spec") if isinstance(cr.get("spec"), dict) else {}
    out: dict = {"kind": kind, "apiVersion": API_VERSION}
    if group == GROUP_V3:
        out["metadata"] = meta
    else:
        if meta.get("uid"):
            meta["uid"] = convert_uid(meta["uid"])
        annotations = dict(meta.get("annotations") or {})
        raw = annotations.pop(METADATA_ANNOTATION, None)
        if raw is None:
            out["metadata"] = meta
        else:
            try:
                stored = json.loads(raw)
            except ValueError as exc:
                raise ConversionError(f"{describe(cr)}: annotation {METADATA_ANNOTATION} is not valid JSON: "
                                      f"{exc}") from None
            if not isinstance(stored, dict):
                raise ConversionError(f"{describe(cr)}: annotation {METADATA_ANNOTATION} is not a JSON object")
            stored["ownerReferences"] = _translate_owner_refs(stored.get("ownerReferences"),
                                                              (GROUP_V1, GROUP_V3), GROUP_V3)
            if stored["ownerReferences"] is None:
                del stored["ownerReferences"]
            labels = dict(meta.get("labels") or {})
            labels.update(stored.get("labels") or {})
            annotations.update(stored.get("annotations") or {})
            name = stored.get("name") or ""
            if not name:
                if kind in POLICY_KINDS_WITH_NAME:
                    name = _policy_name(meta.get("name", ""), spec.get("tier") or "")
                else:
                    name = meta.get("name", "")
            merged = {k: v for k, v in stored.items() if v is not None}
            merged["name"] = name
            for k in ("namespace", "resourceVersion", "uid"):
                if meta.get(k):
                    merged[k] = meta[k]
                else:
                    merged.pop(k, None)
            merged["labels"] = labels
            merged["annotations"] = annotations
            if not merged.get("creationTimestamp") and meta.get("creationTimestamp"):
                merged["creationTimestamp"] = meta["creationTimestamp"]
            out["metadata"] = {k: merged[k] for k in _META_ORDER if k in merged and merged[k] not in ({}, None)}
    out["spec"] = spec
    if cr.get("status") is not None:
        out["status"] = cr["status"]
    for drop in ("managedFields", "selfLink", "generation"):
        out["metadata"].pop(drop, None)
    return out


# --------------------------------------------------------------------------------------
# IPAM records as custom resources.

def block_to_cr_spec(value: dict) -> dict:
    """An AllocationBlock (etcd JSON) as the IPAMBlock CR spec."""
    spec: dict = {"cidr": value.get("cidr", "")}
    if value.get("affinity") is not None:
        spec["affinity"] = value["affinity"]
    if value.get("affinity_claim_time") is not None:
        spec["affinityClaimTime"] = value["affinity_claim_time"]
    spec["allocations"] = value.get("allocations")
    spec["unallocated"] = value.get("unallocated")
    spec["attributes"] = value.get("attributes") or []
    spec["sequenceNumber"] = value.get("sequenceNumber", 0)
    spec["sequenceNumberForAllocation"] = value.get("sequenceNumberForAllocation")
    spec["deleted"] = bool(value.get("deleted"))
    spec["strictAffinity"] = False
    return spec


def cr_spec_to_block(spec: dict) -> dict:
    """An IPAMBlock CR spec as the AllocationBlock record (etcd JSON field names)."""
    cidr = spec.get("cidr", "")
    try:
        cidr = str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        raise ConversionError(f"IPAMBlock spec.cidr {cidr!r} is not a CIDR") from None
    value = {"cidr": cidr, "affinity": spec.get("affinity")}
    if spec.get("affinityClaimTime") is not None:
        value["affinity_claim_time"] = spec["affinityClaimTime"]
    value.update({
        "allocations": spec.get("allocations") or [],
        "unallocated": spec.get("unallocated") or [],
        "attributes": spec.get("attributes") or [],
        "sequenceNumber": spec.get("sequenceNumber") or 0,
        "sequenceNumberForAllocation": spec.get("sequenceNumberForAllocation"),
        "deleted": bool(spec.get("deleted")),
    })
    return value


def affinity_cr(host: str, affinity_type: str, cidr: str, state: str, deleted: bool, group: str) -> dict:
    """A BlockAffinity CR (name, labels, spec) for one affinity record. v1 writes
    ``deleted`` as the string "true"/"false", v3 as a boolean."""
    spec = {"state": state, "node": host, "type": affinity_type, "cidr": cidr,
            "deleted": deleted if group == GROUP_V3 else ("true" if deleted else "false")}
    return {"apiVersion": group, "kind": "BlockAffinity",
            "metadata": {"name": affinity_name(host, cidr), "labels": affinity_labels(host, affinity_type, cidr)},
            "spec": spec}


def affinity_from_cr(cr: dict) -> tuple[str, str, str, str, bool]:
    """(host, affinity type, cidr, state, deleted) of a BlockAffinity CR."""
    spec = cr.get("spec") or {}
    try:
        cidr = str(ipaddress.ip_network(spec.get("cidr", ""), strict=False))
    except ValueError:
        raise ConversionError(f"{describe(cr)}: spec.cidr {spec.get('cidr')!r} is not a CIDR") from None
    deleted = spec.get("deleted")
    if isinstance(deleted, str):
        lowered = deleted.lower()
        if lowered in ("", "false", "f", "0"):
            deleted = False
        elif lowered in ("true", "t", "1"):
            deleted = True
        else:
            raise ConversionError(f"{describe(cr)}: spec.deleted {spec.get('deleted')!r} is not a boolean")
    host = spec.get("node") or ""
    if not host:
        raise ConversionError(f"{describe(cr)}: spec.node is empty")
    return host, spec.get("type") or "host", cidr, spec.get("state") or "", bool(deleted)


def ipam_config_to_cr_spec(value: dict) -> dict:
    """The IPAM library's configuration record as the IPAMConfig(uration) CR spec."""
    spec = {"strictAffinity": bool(value.get("strict_affinity")),
            "autoAllocateBlocks": bool(value.get("auto_allocate_blocks"))}
    if value.get("maxBlocksPerHost"):
        spec["maxBlocksPerHost"] = value["maxBlocksPerHost"]
    if value.get("kubeVirtVMAddressPersistence") is not None:
        spec["kubeVirtVMAddressPersistence"] = value["kubeVirtVMAddressPersistence"]
    if value.get("ipCooldownSeconds"):
        spec["ipCooldownSeconds"] = value["ipCooldownSeconds"]
    return spec


def cr_spec_to_ipam_config(spec: dict) -> dict:
    value: dict = {}
    if spec.get("strictAffinity"):
        value["strict_affinity"] = True
    if spec.get("autoAllocateBlocks"):
        value["auto_allocate_blocks"] = True
    if spec.get("maxBlocksPerHost"):
        value["maxBlocksPerHost"] = int(spec["maxBlocksPerHost"])
    if spec.get("kubeVirtVMAddressPersistence") is not None:
        value["kubeVirtVMAddressPersistence"] = spec["kubeVirtVMAddressPersistence"]
    if spec.get("ipCooldownSeconds"):
        value["ipCooldownSeconds"] = int(spec["ipCooldownSeconds"])
    return value


# --------------------------------------------------------------------------------------
# Nodes.

def _valid_cidr(version: int):
    def check(text: str) -> bool:
        parsed = parse_cidr_or_ip(text)
        return parsed is not None and parsed[0].version == version
    return check


def _valid_network(version: int):
    def check(text: str) -> bool:
        parsed = parse_cidr_or_ip(text)
        return parsed is not None and parsed[0].version == version and parsed[1].network_address == parsed[0]
    return check


_MAC = re.compile(r"^(?:[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){7}"
                  r"|[0-9A-Fa-f]{2}(?:[:-][0-9A-Fa-f]{2}){19}"
                  r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){3}"
                  r"|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){9})$")


def _valid_mac(text: str) -> bool:
    if not _MAC.match(text):
        return False
    seps = {c for c in text if c in ":-."}
    return len(seps) == 1


def _annotation(annotations: dict, key: str, valid) -> str:
    """An annotation's value when it passes ``valid``; invalid values read as unset."""
    value = annotations.get(key) or ""
    if not value or not isinstance(value, str) or not valid(value):
        return ""
    return value


_ASN_TEXT = re.compile(r"([0-9]+)|([0-9]+)\.([0-9]+)")


def _asn_from_string(text: str) -> int | None:
    """numorstring.ASNumberFromString: a plain 32-bit number or the dotted ``high.low`` form,
    ASCII digits only as Go's ParseUint reads them (no sign, spaces or underscores, which
    Python's int() would take: such an annotation is invalid and ignored, as in Calico)."""
    match = _ASN_TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    if match.group(1) is not None:
        value = int(match.group(1))
        return value if value <= 0xFFFFFFFF else None
    high, low = int(match.group(2)), int(match.group(3))
    if high > 0xFFFF or low > 0xFFFF:
        return None
    return (high << 16) + low


def _static_tunnel_address(pod_cidr: str, node: dict) -> str:
    """The first address after the network address of ``spec.podCIDR`` (IPv4 only)."""
    try:
        iface = ipaddress.ip_interface(pod_cidr)
    except ValueError:
        raise ConversionError(f"{describe(node)}: spec.podCIDR {pod_cidr!r} is not a CIDR") from None
    if iface.version != 4:
        return ""
    return str(ipaddress.IPv4Address((int(iface.ip) & 0xFFFFFF00) | ((int(iface.ip) + 1) & 0xFF)))


def k8s_node_to_calico(node: dict, use_pod_cidr: bool = False) -> dict:
    """A Kubernetes Node as the Calico Node (resources.K8sNodeToCalico)."""
    meta = _meta(node)
    annotations = meta.get("annotations") or {}
    name = meta.get("name", "")
    cal_meta: dict = {"name": name}
    if meta.get("uid"):
        cal_meta["uid"] = meta["uid"]
    if meta.get("resourceVersion"):
        cal_meta["resourceVersion"] = meta["resourceVersion"]
    if meta.get("creationTimestamp"):
        cal_meta["creationTimestamp"] = meta["creationTimestamp"]
    labels: dict = {}
    cal_annotations: dict = {}
    if LABELS_ANNOTATION in annotations:
        try:
            parsed = json.loads(annotations[LABELS_ANNOTATION])
            if isinstance(parsed, dict):
                labels = dict(parsed)
        except ValueError:
            pass  # libcalico-go logs and ignores an unparsable labels annotation
    if ANNOTATIONS_ANNOTATION in annotations:
        try:
            parsed = json.loads(annotations[ANNOTATIONS_ANNOTATION])
            if isinstance(parsed, dict):
                cal_annotations = dict(parsed)
        except ValueError:
            pass
    kube_labels = meta.get("labels") or {}
    labels.update(kube_labels)
    cal_annotations[NODE_KUBE_LABELS] = go_map_json(meta.get("labels"))
    if labels:
        cal_meta["labels"] = labels
    cal_meta["annotations"] = cal_annotations

    bgp: dict = {}
    asn_text = annotations.get(NODE_AS_NUMBER)
    if asn_text is not None:
        asn = _asn_from_string(asn_text)
        if asn is not None:
            bgp["asNumber"] = asn
    for field, key, valid in (("ipv4Address", NODE_IPV4_ADDRESS, _valid_cidr(4)),
                              ("ipv6Address", NODE_IPV6_ADDRESS, _valid_cidr(6))):
        value = _annotation(annotations, key, valid)
        if value:
            bgp[field] = value
    wireguard: dict = {}
    spec_k8s = node.get("spec") or {}
    if use_pod_cidr and spec_k8s.get("podCIDR"):
        tunnel = _static_tunnel_address(spec_k8s["podCIDR"], node)
        if tunnel:
            bgp["ipv4IPIPTunnelAddr"] = tunnel
            if annotations.get(NODE_WG_KEY):
                wireguard["interfaceIPv4Address"] = tunnel
    else:
        value = _annotation(annotations, NODE_IPIP_TUNNEL_ADDR, _valid_network(4))
        if value:
            bgp["ipv4IPIPTunnelAddr"] = value
        for field, key, version in (("interfaceIPv4Address", NODE_WG_IPV4, 4),
                                    ("interfaceIPv6Address", NODE_WG_IPV6, 6)):
            value = _annotation(annotations, key, _valid_network(version))
            if value:
                wireguard[field] = value
    rr = _annotation(annotations, NODE_RR_CLUSTER_ID, _valid_network(4))
    if rr:
        bgp["routeReflectorClusterID"] = rr
    spec: dict = {}
    if bgp:
        spec["bgp"] = bgp
    for field, key, valid in (("ipv4VXLANTunnelAddr", NODE_VXLAN_TUNNEL_ADDR, _valid_network(4)),
                              ("vxlanTunnelMACAddr", NODE_VXLAN_MAC, _valid_mac),
                              ("ipv6VXLANTunnelAddr", NODE_VXLAN_TUNNEL_ADDR_V6, _valid_network(6)),
                              ("vxlanTunnelMACAddrV6", NODE_VXLAN_MAC_V6, _valid_mac)):
        value = _annotation(annotations, key, valid)
        if value:
            spec[field] = value
    spec["orchRefs"] = [{"nodeName": name, "orchestrator": ORCHESTRATOR_K8S}]
    if wireguard:
        spec["wireguard"] = wireguard
    addresses = []
    for field in ("ipv4Address", "ipv6Address"):
        if bgp.get(field):
            addresses.append({"address": bgp[field], "type": "CalicoNodeIP"})
    for entry in ((node.get("status") or {}).get("addresses") or []):
        kind = {"InternalIP": "InternalIP", "ExternalIP": "ExternalIP"}.get(entry.get("type"))
        if kind:
            addresses.append({"address": entry.get("address", ""), "type": kind})
    if addresses:
        spec["addresses"] = addresses
    if NODE_INTERFACES in annotations:
        try:
            interfaces = json.loads(annotations[NODE_INTERFACES])
        except ValueError:
            interfaces = None
        if isinstance(interfaces, list):
            cleaned = []
            for iface in interfaces:
                if not isinstance(iface, dict):
                    continue
                entry = {}
                if iface.get("name"):
                    entry["name"] = iface["name"]
                addrs = [a for a in (iface.get("addresses") or []) if _is_ip(a)]
                if addrs:
                    entry["addresses"] = addrs
                cleaned.append(entry)
            spec["interfaces"] = cleaned
    status: dict = {}
    if annotations.get(NODE_WG_KEY):
        status["wireguardPublicKey"] = annotations[NODE_WG_KEY]
    if annotations.get(NODE_WG_KEY_V6):
        status["wireguardPublicKeyV6"] = annotations[NODE_WG_KEY_V6]
    if spec_k8s.get("podCIDRs"):
        status["podCIDRs"] = list(spec_k8s["podCIDRs"])
    return {"kind": "Node", "apiVersion": API_VERSION, "metadata": cal_meta, "spec": spec, "status": status}


def _is_ip(text: Any) -> bool:
    try:
        ipaddress.ip_address(text)
    except (ValueError, TypeError):
        return False
    return True


def _set_or_delete(annotations: dict, key: str, value: Any) -> None:
    if value:
        annotations[key] = value
    else:
        annotations.pop(key, None)


def merge_calico_node_into_k8s(calico: dict, k8s_node: dict) -> dict:
    """The Kubernetes Node with the Calico Node's data written into its annotations
    (resources.mergeCalicoNodeIntoK8sNode); a copy, ``k8s_node`` is not changed. Labels
    that came from Kubernetes (recorded in the kube-labels bookkeeping annotation) are
    not written back as Calico labels."""
    out = copy.deepcopy(k8s_node)
    meta = out.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    cmeta = _meta(calico)
    labels = dict(cmeta.get("labels") or {})
    cal_annotations = dict(cmeta.get("annotations") or {})
    raw_kube = cal_annotations.pop(NODE_KUBE_LABELS, "")
    if raw_kube:
        try:
            kube_labels = json.loads(raw_kube) or {}
        except ValueError:
            raise ConversionError(f"Node({cmeta.get('name', '')}).metadata.annotations[{NODE_KUBE_LABELS}] "
                                  "is not valid JSON") from None
        for key in kube_labels:
            labels.pop(key, None)
    _set_or_delete(annotations, LABELS_ANNOTATION, go_map_json(labels) if labels else "")
    _set_or_delete(annotations, ANNOTATIONS_ANNOTATION, go_map_json(cal_annotations) if cal_annotations else "")
    spec = calico.get("spec") or {}
    status = calico.get("status") or {}
    for key, value in ((NODE_VXLAN_TUNNEL_ADDR, spec.get("ipv4VXLANTunnelAddr")),
                       (NODE_VXLAN_MAC, spec.get("vxlanTunnelMACAddr")),
                       (NODE_VXLAN_TUNNEL_ADDR_V6, spec.get("ipv6VXLANTunnelAddr")),
                       (NODE_VXLAN_MAC_V6, spec.get("vxlanTunnelMACAddrV6"))):
        _set_or_delete(annotations, key, value)
    bgp = spec.get("bgp")
    if not bgp:
        for key in (NODE_IPV4_ADDRESS, NODE_IPIP_TUNNEL_ADDR, NODE_IPV6_ADDRESS, NODE_AS_NUMBER, NODE_RR_CLUSTER_ID):
            annotations.pop(key, None)
    else:
        asn = bgp.get("asNumber")
        for key, value in ((NODE_IPV4_ADDRESS, bgp.get("ipv4Address")),
                           (NODE_IPIP_TUNNEL_ADDR, bgp.get("ipv4IPIPTunnelAddr")),
                           (NODE_IPV6_ADDRESS, bgp.get("ipv6Address")),
                           (NODE_AS_NUMBER, None if asn is None else str(asn)),
                           (NODE_RR_CLUSTER_ID, bgp.get("routeReflectorClusterID"))):
            _set_or_delete(annotations, key, value)
    wg = spec.get("wireguard")
    if not wg:
        annotations.pop(NODE_WG_IPV4, None)
        annotations.pop(NODE_WG_IPV6, None)
    else:
        _set_or_delete(annotations, NODE_WG_IPV4, wg.get("interfaceIPv4Address"))
        _set_or_delete(annotations, NODE_WG_IPV6, wg.get("interfaceIPv6Address"))
    _set_or_delete(annotations, NODE_WG_KEY, status.get("wireguardPublicKey"))
    _set_or_delete(annotations, NODE_WG_KEY_V6, status.get("wireguardPublicKeyV6"))
    if spec.get("interfaces") is not None:
        annotations[NODE_INTERFACES] = go_json(
            [canonical_struct(i, "NodeInterface", "", Collector(), strict=False) for i in spec["interfaces"]])
    else:
        annotations.pop(NODE_INTERFACES, None)
    meta["annotations"] = annotations
    return out


# --------------------------------------------------------------------------------------
# Pods as workload endpoints.

def pod_is_workload(pod: dict) -> bool:
    """IsValidCalicoWorkloadEndpoint: scheduled to a node and not host-networked."""
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeName")) and not spec.get("hostNetwork")


def pod_is_finished(pod: dict) -> bool:
    annotations = _meta(pod).get("annotations") or {}
    if _meta(pod).get("deletionTimestamp"):
        if annotations.get(ANNOTATION_POD_IP, None) == "":
            return True
        if annotations.get(ANNOTATION_AWS_POD_IPS, None) == "":
            return True
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded", "Completed")


def _pod_ip_strings(pod: dict) -> list[str]:
    status = pod.get("status") or {}
    annotations = _meta(pod).get("annotations") or {}
    if status.get("podIPs"):
        return [entry.get("ip", "") for entry in status["podIPs"]]
    if status.get("podIP"):
        return [status["podIP"]]
    if annotations.get(ANNOTATION_POD_IPS):
        return annotations[ANNOTATION_POD_IPS].split(",")
    if annotations.get(ANNOTATION_POD_IP):
        return [annotations[ANNOTATION_POD_IP]]
    if annotations.get(ANNOTATION_AWS_POD_IPS):
        return annotations[ANNOTATION_AWS_POD_IPS].split(",")
    return []


def pod_ip_networks(pod: dict) -> list:
    """The pod's addresses as masked networks, in Calico's order of preference."""
    out = []
    for text in _pod_ip_strings(pod):
        try:
            if "/" in text:
                out.append(ipaddress.ip_interface(text).network)
            else:
                ip = ipaddress.ip_address(text)
                out.append(ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}"))
        except ValueError:
            raise ConversionError(f"{describe(dict(pod, kind='Pod'))}: pod IP {text!r} is not an IP address "
                                  "or CIDR") from None
    return out


def veth_name(namespace: str, pod: str, interface_prefix: str = "") -> str:
    """The host-side interface name the CNI plugin gives the pod: the first
    FELIX_INTERFACEPREFIX entry (default ``cali``) plus 11 hex digits of SHA-1."""
    prefix = interface_prefix.split(",")[0] if interface_prefix else "cali"
    return prefix + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def service_account_profile_name(sa: str, namespace: str) -> str:
    return f"{SERVICE_ACCOUNT_PROFILE_PREFIX}{namespace or 'default'}.{sa}"


def _endpoint_ports(containers: Iterable[dict]) -> list[dict]:
    out = []
    for container in containers or ():
        for port in container.get("ports") or ():
            number = port.get("containerPort") or 0
            if not number or not (port.get("hostPort") or port.get("name")):
                continue
            proto = {"UDP": "UDP", "SCTP": "SCTP", "TCP": "TCP", "": "TCP", None: "TCP"}.get(port.get("protocol"))
            if proto is None:
                continue  # an unknown protocol is ignored, as Calico does
            out.append({"name": port.get("name") or "", "protocol": proto, "port": number,
                        "hostPort": port.get("hostPort") or 0, "hostIP": port.get("hostIP") or ""})
    return out


def _json_string_list(text: str, what: str, pod: dict) -> list[str]:
    """The annotation as Go's json.Unmarshal into a []string reads it: JSON ``null`` is an
    empty list (the CNI plugin accepts it too, so failing here would leave a networked pod
    without an endpoint)."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ConversionError(f"{describe(dict(pod, kind='Pod'))}: annotation {what}: failed to parse {text!r} "
                              "as JSON") from None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConversionError(f"{describe(dict(pod, kind='Pod'))}: annotation {what}: {text!r} is not a JSON "
                              "list of strings")
    return value


def pod_to_workload_endpoint(pod: dict, interface_prefix: str = "") -> dict:
    """A scheduled, non-host-networked Pod as its WorkloadEndpoint
    (podToDefaultWorkloadEndpoint). Raises ConversionError for a bad IP annotation."""
    from node.model.names import workload_endpoint_name

    meta = _meta(pod)
    spec = pod.get("spec") or {}
    ns = meta.get("namespace", "")
    name = meta.get("name", "")
    annotations = meta.get("annotations") or {}
    sa = spec.get("serviceAccountName") or ""
    profiles = [NAMESPACE_PROFILE_PREFIX + ns]
    if sa:
        profiles.append(service_account_profile_name(sa, ns))
    try:
        wep_name = workload_endpoint_name({"node": spec.get("nodeName", ""), "orchestrator": ORCHESTRATOR_K8S,
                                           "pod": name, "endpoint": "eth0"})
    except Exception as exc:  # ValidationError naming the field
        raise ConversionError(f"Pod({ns}/{name}): {exc}") from None
    nets = pod_ip_networks(pod)
    if pod_is_finished(pod):
        nets = []
    labels = dict(meta.get("labels") or {})
    labels[LABEL_NAMESPACE] = ns
    labels[LABEL_ORCHESTRATOR] = ORCHESTRATOR_K8S
    if sa and len(sa) < 63:
        labels[LABEL_SERVICE_ACCOUNT] = sa
    ip_nats = []
    if ANNOTATION_FLOATING_IPS in annotations and nets:
        externals = _json_string_list(annotations[ANNOTATION_FLOATING_IPS], ANNOTATION_FLOATING_IPS, pod)
        v4 = v6 = None
        for net in nets:
            if net.version == 4:
                if net.prefixlen != 32:
                    raise ConversionError(f"Pod({ns}/{name}): PodIP {net} is not a valid IPv4: Mask size is "
                                          f"{net.prefixlen}, not 32")
                v4 = net
            else:
                if net.prefixlen != 128:
                    raise ConversionError(f"Pod({ns}/{name}): PodIP {net} is not a valid IPv6: Mask size is "
                                          f"{net.prefixlen}, not 128")
                v6 = net
        for ext in externals:
            target = v6 if ":" in ext else v4
            if target is not None:
                ip_nats.append({"internalIP": str(target.network_address), "externalIP": ext})
    source_prefixes = []
    raw_prefixes = annotations.get(ANNOTATION_SOURCE_PREFIXES)
    if raw_prefixes:
        for prefix in _json_string_list(raw_prefixes, ANNOTATION_SOURCE_PREFIXES, pod):
            try:
                source_prefixes.append(str(ipaddress.ip_network(prefix, strict=False)))
            except ValueError:
                raise ConversionError(f"Pod({ns}/{name}): annotation {ANNOTATION_SOURCE_PREFIXES}: failed to parse "
                                      f"{prefix!r} as a CIDR") from None
    ports = _endpoint_ports(spec.get("containers")) + _endpoint_ports(spec.get("initContainers"))
    qos, _problems = qos_controls(annotations)
    wep_meta: dict = {"name": wep_name}
    if meta.get("generateName"):
        wep_meta["generateName"] = meta["generateName"]
    wep_meta["namespace"] = ns
    if meta.get("uid"):
        wep_meta["uid"] = meta["uid"]
    if meta.get("resourceVersion"):
        wep_meta["resourceVersion"] = meta["resourceVersion"]
    if meta.get("creationTimestamp"):
        wep_meta["creationTimestamp"] = meta["creationTimestamp"]
    wep_meta["labels"] = labels
    if ANNOTATION_NETWORK_STATUS in annotations:
        wep_meta["annotations"] = {ANNOTATION_NETWORK_STATUS: annotations[ANNOTATION_NETWORK_STATUS]}
    wep_spec: dict = {"orchestrator": ORCHESTRATOR_K8S, "node": spec.get("nodeName", ""),
                      "containerID": annotations.get(ANNOTATION_CONTAINER_ID, ""), "pod": name,
                      "endpoint": "eth0", "serviceAccountName": sa, "ipNetworks": [str(n) for n in nets],
                      "ipNATs": ip_nats, "profiles": profiles,
                      "interfaceName": veth_name(ns, name, interface_prefix), "ports": ports,
                      "allowSpoofedSourcePrefixes": source_prefixes}
    if qos is not None:
        wep_spec["qosControls"] = qos
    wep_spec = {k: v for k, v in wep_spec.items() if v not in ("", [], None)}
    wep_spec["ipNetworks"] = [str(n) for n in nets]
    return {"kind": "WorkloadEndpoint", "apiVersion": API_VERSION, "metadata": wep_meta, "spec": wep_spec}


def cni_annotations(wep_spec: dict) -> dict[str, str]:
    """The pod annotations the CNI plugin patches in for a WorkloadEndpoint
    (calcCNIAnnotations): none when it has no addresses."""
    ips = wep_spec.get("ipNetworks") or []
    if not ips:
        return {}
    out = {ANNOTATION_POD_IP: ips[0], ANNOTATION_POD_IPS: ",".join(ips)}
    if wep_spec.get("containerID"):
        out[ANNOTATION_CONTAINER_ID] = wep_spec["containerID"]
    return out


def annotation_patch(annotations: dict[str, str], revision: str = "", uid: str = "") -> dict:
    """The strategic-merge patch body that sets ``annotations`` on a pod."""
    metadata: dict = {}
    if annotations:
        metadata["annotations"] = annotations
    if revision:
        metadata["resourceVersion"] = revision
    if uid:
        metadata["uid"] = uid
    return {"metadata": metadata}


# -- QoS annotations (Kubernetes resource quantities) ---------------------------------

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
_SUFFIX = {"Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
           "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60, "n": Decimal("1e-9"), "u": Decimal("1e-6"),
           "m": Decimal("1e-3"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
           "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18}


def quantity_value(text: str) -> int:
    """resource.Quantity's Value(): the quantity rounded up to an integer."""
    m = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"quantities must match the regular expression "
                         f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation:
        raise ValueError(f"invalid quantity {text!r}") from None
    suffix = m.group(2) or ""
    if suffix in _SUFFIX:
        number *= _SUFFIX[suffix]
    elif suffix:
        number *= Decimal(10) ** int(suffix[1:])
    return int(math.ceil(number))


_QOS_LIMITS = {
    "bandwidth": (quantity_value("1k"), quantity_value("1P")),
    "burst": (quantity_value("1k"), 0xFFFFFFFF * 8),
    "peakrate": (quantity_value("1.01k"), quantity_value("1.01P")),
    "minburst": (quantity_value("1k"), quantity_value("100M")),
    "packetRate": (1, quantity_value("10k")),
    "packetBurst": (1, quantity_value("10k")),
    "maxConnections": (1, 0xFFFFFFFF),
}
_QOS_ANNOTATIONS = (
    ("kubernetes.io/ingress-bandwidth", "ingressBandwidth", "bandwidth"),
    ("kubernetes.io/egress-bandwidth", "egressBandwidth", "bandwidth"),
    ("qos.projectcalico.org/ingressBandwidth", "ingressBandwidth", "bandwidth"),
    ("qos.projectcalico.org/egressBandwidth", "egressBandwidth", "bandwidth"),
    ("qos.projectcalico.org/ingressBurst", "ingressBurst", "burst"),
    ("qos.projectcalico.org/egressBurst", "egressBurst", "burst"),
    ("qos.projectcalico.org/ingressPeakrate", "ingressPeakrate", "peakrate"),
    ("qos.projectcalico.org/egressPeakrate", "egressPeakrate", "peakrate"),
    ("qos.projectcalico.org/ingressMinburst", "ingressMinburst", "minburst"),
    ("qos.projectcalico.org/egressMinburst", "egressMinburst", "minburst"),
    ("qos.projectcalico.org/ingressPacketRate", "ingressPacketRate", "packetRate"),
    ("qos.projectcalico.org/egressPacketRate", "egressPacketRate", "packetRate"),
    ("qos.projectcalico.org/ingressPacketBurst", "ingressPacketBurst", "packetBurst"),
    ("qos.projectcalico.org/egressPacketBurst", "egressPacketBurst", "packetBurst"),
    ("qos.projectcalico.org/ingressMaxConnections", "ingressMaxConnections", "maxConnections"),
    ("qos.projectcalico.org/egressMaxConnections", "egressMaxConnections", "maxConnections"),
)
_QOS_ORDER = ("ingressBandwidth", "ingressBurst", "ingressPeakrate", "ingressMinburst", "egressBandwidth",
              "egressBurst", "egressPeakrate", "egressMinburst", "ingressPacketRate", "ingressPacketBurst",
              "egressPacketRate", "egressPacketBurst", "ingressMaxConnections", "egressMaxConnections", "dscp")


def qos_controls(annotations: dict) -> tuple[dict | None, list[str]]:
    """The WorkloadEndpoint's qosControls from the pod's bandwidth and QoS annotations
    (handleQoSControlsAnnotations), and the problems found (Calico logs them and keeps
    processing: out-of-range values are clamped, incomplete settings dropped)."""
    qos = {k: 0 for k in _QOS_ORDER if k != "dscp"}
    problems: list[str] = []
    for key, field, limit in _QOS_ANNOTATIONS:
        if key not in annotations:
            continue
        low, high = _QOS_LIMITS[limit]
        try:
            value = quantity_value(annotations[key])
        except ValueError as exc:
            problems.append(f"annotation {key}: {exc}")
            qos[field] = 0
            continue
        if value < low:
            problems.append(f"annotation {key}: {annotations[key]!r} is too small; using {low}")
            value = low
        elif value > high:
            problems.append(f"annotation {key}: {annotations[key]!r} is too large; using {high}")
            value = high
        qos[field] = value
    for side in ("ingress", "egress"):
        if qos[f"{side}Burst"] and not qos[f"{side}Bandwidth"]:
            problems.append(f"{side} bandwidth must be specified when {side} burst is specified")
            qos[f"{side}Burst"] = 0
        if qos[f"{side}Peakrate"] and (not qos[f"{side}Bandwidth"]
                                       or qos[f"{side}Bandwidth"] >= qos[f"{side}Peakrate"]):
            problems.append(f"{side} peakrate must be greater than {side} bandwidth when specified")
            qos[f"{side}Peakrate"] = 0
        if qos[f"{side}Minburst"] and not qos[f"{side}Peakrate"]:
            problems.append(f"{side} peakrate must be specified when {side} minburst is specified")
            qos[f"{side}Minburst"] = 0
        if qos[f"{side}PacketBurst"] and not qos[f"{side}PacketRate"]:
            problems.append(f"{side} packet rate must be specified when {side} packet burst is specified")
            qos[f"{side}PacketBurst"] = 0
        if qos[f"{side}Bandwidth"] and not qos[f"{side}Burst"]:
            qos[f"{side}Burst"] = quantity_value("4Gi")
        if qos[f"{side}PacketRate"] and not qos[f"{side}PacketBurst"]:
            qos[f"{side}PacketBurst"] = 5
    out: dict = {k: v for k, v in qos.items() if v}
    dscp_text = annotations.get("qos.projectcalico.org/dscp")
    if dscp_text is not None:
        # numorstring.DSCPFromString, validated, as the stored JSON has it.
        try:
            out["dscp"] = dscp_from_text(dscp_text)
        except ValueError:
            problems.append(f"annotation qos.projectcalico.org/dscp: {dscp_text!r} is not a DSCP value")
    if not out:
        return None, problems
    return {k: out[k] for k in _QOS_ORDER if k in out}, problems


# --------------------------------------------------------------------------------------
# Namespaces and service accounts as profiles.

def namespace_to_profile(ns: dict) -> dict:
    meta = _meta(ns)
    name = meta.get("name", "")
    labels = {NAMESPACE_LABEL_PREFIX + k: v for k, v in (meta.get("labels") or {}).items()}
    labels[NAMESPACE_LABEL_PREFIX + NAME_LABEL] = name
    pmeta: dict = {"name": NAMESPACE_PROFILE_PREFIX + name}
    if meta.get("uid"):
        pmeta["uid"] = convert_uid(meta["uid"])
    if meta.get("creationTimestamp"):
        pmeta["creationTimestamp"] = meta["creationTimestamp"]
    return {"kind": "Profile", "apiVersion": API_VERSION, "metadata": pmeta,
            "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}], "labelsToApply": labels}}


def service_account_to_profile(sa: dict) -> dict:
    meta = _meta(sa)
    name = meta.get("name", "")
    labels = {SERVICE_ACCOUNT_LABEL_PREFIX + k: v for k, v in (meta.get("labels") or {}).items()}
    labels[SERVICE_ACCOUNT_LABEL_PREFIX + NAME_LABEL] = name
    pmeta: dict = {"name": service_account_profile_name(name, meta.get("namespace", ""))}
    if meta.get("uid"):
        pmeta["uid"] = convert_uid(meta["uid"])
    if meta.get("creationTimestamp"):
        pmeta["creationTimestamp"] = meta["creationTimestamp"]
    return {"kind": "Profile", "apiVersion": API_VERSION, "metadata": pmeta, "spec": {"labelsToApply": labels}}


def profile_name_to_namespace(name: str) -> str:
    if not name.startswith(NAMESPACE_PROFILE_PREFIX):
        raise ConversionError(f"Profile {name} not backed by a Namespace")
    return name[len(NAMESPACE_PROFILE_PREFIX):]


def profile_name_to_service_account(name: str) -> tuple[str, str]:
    """(namespace, service account) of a ``ksa.<ns>.<sa>`` profile name."""
    if not name.startswith(SERVICE_ACCOUNT_PROFILE_PREFIX):
        raise ConversionError(f"Profile {name} not backed by a ServiceAccount")
    parts = name.split(".", 2)
    if len(parts) != 3:
        raise ConversionError(f"Profile {name} is not formatted correctly")
    return parts[1], parts[2]


# --------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy -> Calico policy.

def k8s_selector_to_calico(selector: dict | None, pod: bool) -> str:
    """A label selector as a Calico selector; pod selectors also require the k8s
    orchestrator label, and an empty namespace selector selects every namespace."""
    parts = [f"{LABEL_ORCHESTRATOR} == 'k8s'"] if pod else []
    if selector is None:
        return " && ".join(parts)
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not pod and not match_labels and not expressions:
        return "all()"
    for key in sorted(match_labels):
        parts.append(f"{key} == '{match_labels[key]}'")
    for expr in expressions:
        values = "', '".join(expr.get("values") or [])
        op = expr.get("operator")
        key = expr.get("key", "")
        if op == "In":
            parts.append(f"{key} in {{ '{values}' }}")
        elif op == "NotIn":
            parts.append(f"{key} not in {{ '{values}' }}")
        elif op == "Exists":
            parts.append(f"has({key})")
        elif op == "DoesNotExist":
            parts.append(f"! has({key})")
    return " && ".join(parts)


_PORT_RANGE = re.compile(r"^(\d+):(\d+)$")
# numorstring.NamedPort's rule for a port name (NetworkPolicy and ClusterNetworkPolicy ports).
_PORT_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")


def _parse_port(text: str):
    """numorstring.PortFromString: a number, ``min:max``, or a port name."""
    if text.isdigit():
        value = int(text)
        if value > 65535:
            raise ValueError(f"port {text} is out of range")
        return value
    m = _PORT_RANGE.match(text)
    if m:
        low, high = int(m.group(1)), int(m.group(2))
        if low > high or high > 65535:
            raise ValueError(f"invalid port range {text}")
        return (low, high)
    if _PORT_NAME.match(text) and not text.isdigit():
        return text
    raise ValueError(f"invalid port {text}")


def simplify_ports(ports: list) -> list:
    """SimplifyPorts: coalesce numeric ports and ranges, named ports first."""
    if len(ports) <= 1:
        return ports
    names = [p for p in ports if isinstance(p, str)]
    numbers: list[int] = []
    for p in ports:
        if isinstance(p, int):
            numbers.append(p)
        elif isinstance(p, tuple):
            numbers.extend(range(p[0], p[1] + 1))
    if len(numbers) <= 1:
        return ports
    numbers.sort()
    out: list = list(names)
    i = 0
    while i < len(numbers):
        first = last = numbers[i]
        i += 1
        while i < len(numbers) and numbers[i] <= last + 1:
            last = numbers[i]
            i += 1
        out.append(first if first == last else (first, last))
    return out


def _port_json(port) -> Any:
    """numorstring.Port's JSON: a range of one port (``endPort`` equal to ``port``) is that
    port's number."""
    if isinstance(port, tuple):
        return port[0] if port[0] == port[1] else f"{port[0]}:{port[1]}"
    return port


_PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")


def _protocol_json(text: str):
    """numorstring.ProtocolFromString: a known name in its canonical case, else as given."""
    for name in _PROTOCOL_NAMES:
        if name.lower() == text.lower():
            return name
    return text


def _k8s_rule(peers: list | None, ports: list | None, ingress: bool) -> list[dict]:
    """One k8s rule as Calico rules: one per protocol and peer (k8sRuleToCalico)."""
    peer_list: list = list(peers or []) or [None]
    port_list: list = []
    for p in ports or []:
        entry = {"protocol": p.get("protocol") or "TCP"}
        if p.get("port") is not None:
            entry["port"] = str(p["port"])
        if p.get("endPort") is not None:
            entry["endPort"] = p["endPort"]
        port_list.append(entry)
    if not port_list:
        port_list = [None]
    by_protocol: dict[str, list | None] = {}
    for port in port_list:
        if port is None:
            by_protocol = {"": None}
            break
        values = None
        if "port" in port:
            text = port["port"]
            if "endPort" in port:
                text = f"{text}:{port['endPort']}"
            values = [_parse_port(text)]
        proto = port["protocol"]
        if values is None:
            by_protocol[proto] = None
        elif proto not in by_protocol or by_protocol[proto]:
            by_protocol[proto] = (by_protocol.get(proto) or []) + values
    rules = []
    for proto in sorted(by_protocol):
        calico_ports = by_protocol[proto]
        if calico_ports is not None:
            calico_ports = simplify_ports(calico_ports)
        for peer in peer_list:
            entity = _peer_fields(peer)
            rule: dict = {"action": "Allow"}
            if proto:
                rule["protocol"] = _protocol_json(proto)
            ports_json = [_port_json(p) for p in calico_ports] if calico_ports else None
            if ingress:
                if entity:
                    rule["source"] = entity
                if ports_json:
                    rule["destination"] = {"ports": ports_json}
            else:
                dest = {}
                if ports_json:
                    dest["ports"] = ports_json
                dest.update(entity)
                if dest:
                    rule["destination"] = dest
            rules.append(rule)
    return rules


def _peer_fields(peer: dict | None) -> dict:
    if peer is None:
        return {}
    block = peer.get("ipBlock")
    if block is not None:
        try:
            nets = [str(ipaddress.ip_network(block.get("cidr", ""), strict=False))]
        except ValueError:
            return {}
        not_nets = []
        for exc in block.get("except") or []:
            try:
                not_nets.append(str(ipaddress.ip_network(exc, strict=False)))
            except ValueError:
                break  # as k8sPeerToCalicoFields: the exceptions read before the bad one stay
        out = {"nets": nets}
        if not_nets:
            out["notNets"] = not_nets
        return out
    out = {}
    selector = k8s_selector_to_calico(peer.get("podSelector"), pod=True)
    ns_selector = k8s_selector_to_calico(peer.get("namespaceSelector"), pod=False)
    if selector:
        out["selector"] = selector
    if ns_selector:
        out["namespaceSelector"] = ns_selector
    return out


def k8s_network_policy_spec_to_calico(spec: dict) -> tuple[dict, list[str]]:
    """Only the rules of a Kubernetes NetworkPolicy spec as the Calico spec (a staged one's:
    no object metadata, so no made-up UID can fail it), and the rules it dropped."""
    policy, problems = k8s_network_policy_to_calico({"metadata": {}, "spec": spec})
    return policy["spec"], problems


def _policy_meta(meta: dict, pmeta: dict) -> dict:
    """``pmeta`` with the Kubernetes object's UID (converted as Calico converts it; a
    ConversionError when it cannot be), resourceVersion and creationTimestamp."""
    if meta.get("uid"):
        pmeta["uid"] = convert_uid(meta["uid"])
    if meta.get("resourceVersion"):
        pmeta["resourceVersion"] = meta["resourceVersion"]
    if meta.get("creationTimestamp"):
        pmeta["creationTimestamp"] = meta["creationTimestamp"]
    return pmeta


def k8s_network_policy_to_calico(np: dict, kind: str = "KubernetesNetworkPolicy") -> tuple[dict, list[str]]:
    """A k8s NetworkPolicy as the Calico policy Felix enforces (K8sNetworkPolicyToCalico):
    order 1000, tier default, pod selector scoped to k8s endpoints. Rules that cannot
    be converted are dropped and reported in the second value (Calico does the same)."""
    meta = _meta(np)
    spec = np.get("spec") or {}
    problems: list[str] = []
    ingress: list[dict] = []
    for index, rule in enumerate(spec.get("ingress") or []):
        try:
            ingress.extend(_k8s_rule(rule.get("from"), rule.get("ports"), True))
        except ValueError as exc:
            problems.append(f"spec.ingress[{index}]: k8s rule couldn't be converted: failed to parse k8s port: {exc}")
    egress: list[dict] = []
    for index, rule in enumerate(spec.get("egress") or []):
        try:
            egress.extend(_k8s_rule(rule.get("to"), rule.get("ports"), False))
        except ValueError as exc:
            problems.append(f"spec.egress[{index}]: k8s rule couldn't be converted: failed to parse k8s port: {exc}")
    declared = spec.get("policyTypes") or []
    types = []
    if "Ingress" in declared:
        types.append("Ingress")
    if "Egress" in declared:
        types.append("Egress")
    if not types:
        types = ["Ingress"]
    pmeta = _policy_meta(meta, {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")})
    pspec: dict = {"tier": DEFAULT_TIER, "order": 1000,
                   "selector": k8s_selector_to_calico(spec.get("podSelector") or {}, pod=True)}
    if ingress:
        pspec["ingress"] = ingress
    if egress:
        pspec["egress"] = egress
    pspec["types"] = types
    return {"kind": kind, "apiVersion": API_VERSION, "metadata": pmeta, "spec": pspec}, problems


# --------------------------------------------------------------------------------------
# Kubernetes ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2) -> Calico policy.

# The network-policy-api tiers and the Calico tiers that hold them (both default to Pass).
CLUSTER_NETWORK_POLICY_TIERS = {"Admin": "kube-admin", "Baseline": "kube-baseline"}
# The rule annotation that carries a ClusterNetworkPolicy rule's name.
CNP_RULE_NAME_ANNOTATION = "name"
_CNP_ACTIONS = {"Accept": "Allow", "Deny": "Deny", "Pass": "Pass"}
_CNP_PROTOCOLS = (("tcp", "TCP"), ("udp", "UDP"), ("sctp", "SCTP"))
_CIDR_TEXT = re.compile(r"^([0-9A-Fa-f.:]+)/(\d+)$")


def _cnp_port(port: dict | None):
    """A ClusterNetworkPolicy Port (a number or a range) as a Calico port; None for any."""
    if not port:
        return None
    number = port.get("number") or 0
    if number:
        if not isinstance(number, int) or not 0 < number <= 65535:
            raise ValueError(f"port number {number} is out of range")
        return number
    span = port.get("range")
    if span is None:
        return None
    start, end = span.get("start") or 0, span.get("end") or 0
    if not all(isinstance(x, int) and 0 <= x <= 65535 for x in (start, end)):
        raise ValueError(f"port range {start}-{end} is out of range")
    if start > end:
        raise ValueError(f"minimum port number ({start}) is greater than maximum port number ({end}) in port range")
    return (start, end)


def _cnp_protocol_ports(protocols: list | None) -> dict[str, list | None]:
    """Protocol ("" when none) -> its ports (None for every port), as unpackCNPProtocols
    groups them: no protocols, or an empty entry, means any protocol and any port."""
    by_protocol: dict[str, list | None] = {}
    for entry in protocols or [{}]:
        entry = entry or {}
        protocol, port = "", None
        for field_name, name in _CNP_PROTOCOLS:
            if entry.get(field_name) is not None:
                protocol = name
                port = _cnp_port(entry[field_name].get("destinationPort"))
                break
        else:
            port = entry.get("destinationNamedPort") or None
            if port is not None and not (isinstance(port, str) and _PORT_NAME.match(port)):
                raise ValueError(f"invalid name for named port ({port})")
        if not protocol and port is None:
            return {"": None}
        if port is None:
            by_protocol[protocol] = None
        elif protocol not in by_protocol or by_protocol[protocol]:
            by_protocol[protocol] = (by_protocol.get(protocol) or []) + [port]
    return by_protocol


def _cnp_network(text) -> str:
    """A networks peer's CIDR as Go's ParseCIDR reads and prints it: the prefix length
    may have leading zeros, and an IPv4-mapped IPv6 network is printed as the IPv4 one
    (``::ffff:1.2.3.4/120`` is ``1.2.3.0/24``)."""
    match = _CIDR_TEXT.match(text) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError
        net = ipaddress.ip_network(f"{match.group(1)}/{int(match.group(2))}", strict=False)
    except ValueError:
        raise ValueError(f"invalid CIDR in ANP rule: invalid CIDR address: {text}") from None
    if net.version == 6 and net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
        net = ipaddress.ip_network((net.network_address.ipv4_mapped, net.prefixlen - 96))
    return str(net)


def _cnp_peer(peer: dict, egress: bool) -> dict:
    """One peer as EntityRule fields; a peer with none of the fields Calico supports
    (namespaces, pods, and for egress networks) is an error."""
    out: dict = {}
    if not isinstance(peer, dict):
        peer = {}
    if peer.get("namespaces") is not None:
        out["namespaceSelector"] = k8s_selector_to_calico(peer["namespaces"], pod=False)
    if peer.get("pods") is not None:
        pods = peer["pods"]
        out["selector"] = k8s_selector_to_calico(pods.get("podSelector") or {}, pod=True)
        out["namespaceSelector"] = k8s_selector_to_calico(pods.get("namespaceSelector") or {}, pod=False)
    if egress and peer.get("networks"):
        out["nets"] = [_cnp_network(text) for text in peer["networks"]]
    if not out:
        raise ValueError(f"none of supported fields in {'To' if egress else 'From'!r} is set.")
    return out


def _cnp_rule(rule: dict, egress: bool, notes: list[str]) -> list[dict]:
    """One ClusterNetworkPolicy rule as Calico rules: one per protocol and peer.

    Calico keeps an all-digit destinationNamedPort as a port name, which no Kubernetes
    port name can equal (they need a letter), so it never matches; a stored rule cannot
    carry it (its JSON reads back as a number), so it is left out instead, with a note,
    and a protocol whose ports were all such names gets no rule, matching as little."""
    action = rule.get("action")
    if action not in _CNP_ACTIONS:
        raise ValueError(f"unsupported cluster network policy action {action}")
    try:
        by_protocol = _cnp_protocol_ports(rule.get("protocols"))
    except ValueError as exc:
        raise ValueError(f"failed to parse k8s protocol: {exc}") from None
    peers = rule.get("to" if egress else "from") or []
    name = rule.get("name") or ""
    for peer in peers:  # a bad peer fails the rule even when no port is left to match
        _cnp_peer(peer, egress)
    rules = []
    for protocol in sorted(by_protocol):
        ports = by_protocol[protocol]
        if ports:
            digits = [p for p in ports if isinstance(p, str) and p.isdigit()]
            if digits:
                notes.append(f"named port(s) {', '.join(digits)} can never match a Kubernetes port name; left out")
                ports = [p for p in ports if p not in digits]
                if not ports:
                    continue
        ports_json = [_port_json(p) for p in simplify_ports(ports)] if ports else None
        for peer in peers:
            entity = _cnp_peer(peer, egress)
            out: dict = {"action": _CNP_ACTIONS[action]}
            if name:
                out["metadata"] = {"annotations": {CNP_RULE_NAME_ANNOTATION: name}}
            if protocol:
                out["protocol"] = protocol
            dest = {"ports": ports_json} if ports_json else {}
            if egress:
                dest.update(entity)
            else:
                out["source"] = entity
            if dest:
                out["destination"] = dest
            rules.append(out)
    return rules


def k8s_cluster_network_policy_to_calico(cnp: dict) -> tuple[dict | None, list[str]]:
    """A ClusterNetworkPolicy as the global policy Felix enforces
    (K8sClusterNetworkPolicyToCalico): tier kube-admin or kube-baseline, order the
    priority, selectors from the subject. A rule that cannot be converted is dropped,
    or replaced by a bare Deny when its action was Deny or Pass, so a broken rule never
    lets through what it meant to stop. A bad tier or a missing subject gives None (the
    policy is withdrawn). Either way the second value says what was wrong, by field."""
    meta = _meta(cnp)
    spec = cnp.get("spec") if isinstance(cnp.get("spec"), dict) else {}
    tier_name = spec.get("tier")
    if tier_name not in CLUSTER_NETWORK_POLICY_TIERS:
        return None, [f"spec.tier: invalid cluster network policy tier {tier_name}"]
    subject = spec.get("subject") if isinstance(spec.get("subject"), dict) else {}
    try:
        if subject.get("namespaces") is not None:
            ns_selector = k8s_selector_to_calico(subject["namespaces"], pod=False)
            selector = k8s_selector_to_calico(None, pod=True)
        elif subject.get("pods") is not None:
            ns_selector = k8s_selector_to_calico(subject["pods"].get("namespaceSelector") or {}, pod=False)
            selector = k8s_selector_to_calico(subject["pods"].get("podSelector") or {}, pod=True)
        else:
            return None, ["spec.subject: no subject selector specified"]
    except (TypeError, AttributeError):
        return None, ["spec.subject: a selector of the wrong shape"]
    priority = spec.get("priority") or 0
    if isinstance(priority, bool) or not isinstance(priority, int):
        return None, [f"spec.priority: {priority!r} is not an integer"]
    problems: list[str] = []
    converted: dict[str, list[dict]] = {"ingress": [], "egress": []}
    for direction in ("ingress", "egress"):
        for index, rule in enumerate(spec.get(direction) or []):
            rule = rule if isinstance(rule, dict) else {}
            notes: list[str] = []
            try:
                converted[direction].extend(_cnp_rule(rule, direction == "egress", notes))
                problems.extend(f"spec.{direction}[{index}]: {note}" for note in notes)
            except (ValueError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: a field of the wrong shape (a string for an
                # object...), which the CRD's schema would have refused.
                fail_closed = rule.get("action") in ("Deny", "Pass")
                problems.append(f"spec.{direction}[{index}]: k8s rule couldn't be converted: {exc}"
                                f"{' (replaced by a deny-all rule)' if fail_closed else ' (rule dropped)'}")
                if fail_closed:
                    converted[direction].append({"action": "Deny"})
    try:
        pmeta = _policy_meta(meta, {"name": meta.get("name", "")})
    except ConversionError as exc:
        return None, [f"metadata.uid: {exc}"]
    pspec: dict = {"tier": CLUSTER_NETWORK_POLICY_TIERS[tier_name], "order": priority,
                   "selector": selector, "namespaceSelector": ns_selector}
    types = []
    for direction, type_name in (("ingress", "Ingress"), ("egress", "Egress")):
        if converted[direction]:
            pspec[direction] = converted[direction]
            types.append(type_name)
    if types:
        pspec["types"] = types
    return ({"kind": "KubernetesClusterNetworkPolicy", "apiVersion": API_VERSION, "metadata": pmeta,
             "spec": pspec}, problems)


# --------------------------------------------------------------------------------------
# KubeVirt VirtualMachineInstanceMigration (kubevirt.io/v1) -> LiveMigration.

# The migration phases in which Calico presents a LiveMigration: from Scheduling, so that
# the target's role reaches the policy agent no later than the target pod's endpoint, and
# still when Failed (the target keeps its routing until it is cleaned up). Pending,
# Succeeded and anything else present nothing.
VMIM_LIVE_MIGRATION_PHASES = ("Scheduling", "Scheduled", "PreparingTarget", "TargetReady", "Running", "Failed")
# KubeVirt's labels on the target virt-launcher pod: the VMI's name (vmi.kubevirt.io/id
# from KubeVirt v1.7; the older vm.kubevirt.io/name, which every version sets) and the
# migration's UID.
KUBEVIRT_VMI_ID_LABEL = "vmi.kubevirt.io/id"
KUBEVIRT_VM_NAME_LABEL = "vm.kubevirt.io/name"
KUBEVIRT_MIGRATION_JOB_LABEL = "kubevirt.io/migrationJobUID"


def live_migration_target_selector(vmi_name: str, migration_uid: str) -> str:
    """The selector of a migration's target pod, worded as libcalico-go words it."""
    return (f"({KUBEVIRT_VMI_ID_LABEL} == '{vmi_name}' || {KUBEVIRT_VM_NAME_LABEL} == '{vmi_name}') && "
            f"{KUBEVIRT_MIGRATION_JOB_LABEL} == '{migration_uid}'")


def vmim_to_live_migration(vmim: dict) -> dict | None:
    """A VirtualMachineInstanceMigration as the LiveMigration libcalico-go presents for it,
    or None while it presents none (a phase outside VMIM_LIVE_MIGRATION_PHASES, no
    ``spec.vmiName`` or no UID). The UID, labels, annotations and creation time are the
    VMIM's own; the source pod (``status.migrationState.sourcePod``) appears only once
    KubeVirt has set it."""
    meta = _meta(vmim)
    spec = vmim.get("spec") if isinstance(vmim.get("spec"), dict) else {}
    status = vmim.get("status") if isinstance(vmim.get("status"), dict) else {}
    if status.get("phase") not in VMIM_LIVE_MIGRATION_PHASES:
        return None
    vmi_name, uid = spec.get("vmiName"), meta.get("uid")
    if not isinstance(vmi_name, str) or not vmi_name or not isinstance(uid, str) or not uid:
        return None
    namespace = meta.get("namespace") or ""
    lmeta: dict = {"name": meta.get("name", ""), "namespace": namespace, "uid": uid}
    for field in ("creationTimestamp", "labels", "annotations"):
        if meta.get(field):
            lmeta[field] = meta[field]
    lspec: dict = {}
    state = status.get("migrationState") if isinstance(status.get("migrationState"), dict) else {}
    source_pod = state.get("sourcePod")
    if isinstance(source_pod, str) and source_pod:
        lspec["source"] = {"workload": {"orchestratorID": "k8s", "workloadID": f"{namespace}/{source_pod}"}}
    lspec["target"] = {"selector": live_migration_target_selector(vmi_name, uid)}
    return {"kind": "LiveMigration", "apiVersion": API_VERSION, "metadata": lmeta, "spec": lspec}
