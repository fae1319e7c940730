"""IPAM records as libcalico-go stores them in etcd: blocks, affinities, handles, config.

These are raw backend structs, not v3 resources: their keys live under
``/calico/ipam/v2/`` and their JSON uses the old snake_case names. Affinities are also
offered as the v3 ``BlockAffinity`` kind so tools and tests can read and write them the
way the Kubernetes datastore presents them.
"""
from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from node.model.resource import Resource
from node.model.schema import Collector, canonical_struct, go_json

IPAM_PREFIX = "/calico/ipam/v2/"
CONFIG_KEY = IPAM_PREFIX + "config"
_AFFINITY_KEY = re.compile(r"^/calico/ipam/v2/(host|virtual)/([^/]+)/ipv(4|6)/block/(.+)$")
_BLOCK_KEY = re.compile(r"^/calico/ipam/v2/assignment/ipv(4|6)/block/(.+)$")


def cidr_key_part(cidr: str) -> str:
    """A CIDR as it appears in IPAM keys: the masked network with '/' replaced by '-'."""
    return str(ipaddress.ip_network(cidr, strict=False)).replace("/", "-", 1)


def parse_pod_cidr(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """One entry of a Node's ``status.podCIDRs`` as libcalico-go's Node update processors
    (Felix's and the BGP one) read it, with Go's ``net.ParseCIDR``: ``address/length``
    only, masked to its network. A bare address (no ``/``), a zone or anything else is a
    ValueError: those processors log it and make no block of it."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a CIDR")
    addr, sep, plen = text.partition("/")
    if not sep or not (plen.isascii() and plen.isdigit()) or "%" in addr:
        raise ValueError(f"{text!r} is not a CIDR")
    ipaddress.ip_address(addr)
    return ipaddress.ip_network(text, strict=False)


def _cidr_from_key_part(part: str) -> str:
    head, _, prefix = part.rpartition("-")
    return str(ipaddress.ip_network(f"{head}/{prefix}"))


def block_key(cidr: str) -> str:
    net = ipaddress.ip_network(cidr, strict=False)
    return f"{IPAM_PREFIX}assignment/ipv{net.version}/block/{cidr_key_part(cidr)}"


def affinity_key(host: str, cidr: str, affinity_type: str = "host") -> str:
    net = ipaddress.ip_network(cidr, strict=False)
    return f"{IPAM_PREFIX}{affinity_type}/{host}/ipv{net.version}/block/{cidr_key_part(cidr)}"


def affinity_prefix(host: str = "", version: int | None = None, affinity_type: str = "host") -> str:
    if not host:
        return f"{IPAM_PREFIX}{affinity_type}/"
    if version is None:
        return f"{IPAM_PREFIX}{affinity_type}/{host}/"
    return f"{IPAM_PREFIX}{affinity_type}/{host}/ipv{version}/block/"


def handle_key(handle_id: str) -> str:
    return f"{IPAM_PREFIX}handle/{handle_id}"


def parse_affinity_key(key: str) -> tuple[str, str, str] | None:
    """(affinity type, host, cidr) for an affinity key, or None."""
    m = _AFFINITY_KEY.match(key)
    if not m:
        return None
    return m.group(1), m.group(2), _cidr_from_key_part(m.group(4))


def parse_block_key(key: str) -> str | None:
    m = _BLOCK_KEY.match(key)
    return _cidr_from_key_part(m.group(2)) if m else None


def encode(struct_name: str, value: dict) -> str:
    """Encode one IPAM record in libcalico-go's field order and spelling."""
    return go_json(canonical_struct(value, struct_name, "", Collector(), strict=False))


def decode(struct_name: str, raw: bytes | str) -> dict:
    """Decode one IPAM record; an empty value reads as an empty record (as Calico does)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    obj: Any = json.loads(text) if text.strip() else {}
    if not isinstance(obj, dict):
        raise ValueError(f"IPAM {struct_name} value is not a JSON object")
    return canonical_struct(obj, struct_name, "", Collector(), strict=False)


# --------------------------------------------------------------------------------------
# Affinities as the v3 BlockAffinity kind.

def affinity_resource_name(host: str, cidr: str) -> str:
    """The v3/CRD name of an affinity: ``<host>-<cidr with . : / as ->``."""
    net = str(ipaddress.ip_network(cidr, strict=False))
    return f"{host}-" + re.sub(r"[.:/]", "-", net)


def affinity_to_resource(key: str, raw: bytes | str, revision: int) -> Resource:
    parsed = parse_affinity_key(key)
    if parsed is None:
        raise ValueError(f"{key} is not an IPAM affinity key")
    aff_type, host, cidr = parsed
    value = decode("BlockAffinityValue", raw)
    spec = canonical_struct({"state": value.get("state") or "confirmed", "node": host, "type": aff_type,
                             "cidr": cidr, "deleted": "true" if value.get("deleted") else "false"},
                            "BlockAffinitySpec", "", Collector(), strict=False)
    meta = {"name": affinity_resource_name(host, cidr), "resourceVersion": str(revision)}
    return Resource("BlockAffinity", meta, spec)


def resource_to_affinity(res: Resource) -> tuple[str, str]:
    """(key, value) in etcd for a v3 BlockAffinity."""
    spec = res.spec
    key = affinity_key(spec["node"], spec["cidr"], spec.get("type") or "host")
    value = encode("BlockAffinityValue", {"state": spec.get("state") or "confirmed",
                                          "deleted": spec.get("deleted") == "true"})
    return key, value


# --------------------------------------------------------------------------------------
# Typed helpers for the IPAM allocator: prefixes, handle keys and each record's codec.
# Go writes map keys sorted; the "any"-typed maps below are sorted here for that reason.

HANDLE_PREFIX = IPAM_PREFIX + "handle/"
_HANDLE_KEY = re.compile(r"^/calico/ipam/v2/handle/([^/]+)$")

AFFINITY_PENDING = "pending"
AFFINITY_CONFIRMED = "confirmed"
AFFINITY_PENDING_DELETION = "pendingDeletion"


def block_prefix(version: int | None = None) -> str:
    if version is None:
        return f"{IPAM_PREFIX}assignment/"
    return f"{IPAM_PREFIX}assignment/ipv{version}/block/"


def parse_handle_key(key: str) -> str | None:
    m = _HANDLE_KEY.match(key)
    return m.group(1) if m else None


def _sorted_map(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): value[k] for k in sorted(value, key=str)}
    return value


def encode_block(record: dict) -> str:
    """An AllocationBlock value exactly as libcalico-go marshals it."""
    value = dict(record)
    value["sequenceNumberForAllocation"] = _sorted_map(value.get("sequenceNumberForAllocation"))
    return encode("AllocationBlock", value)


def decode_block(raw: bytes | str) -> dict:
    return decode("AllocationBlock", raw)


def encode_handle(blocks: dict[str, int], deleted: bool = False) -> str:
    return encode("IPAMHandle", {"block": _sorted_map(blocks), "deleted": deleted})


def decode_handle(raw: bytes | str) -> dict[str, int]:
    """The handle's per-block counts (an absent or null map reads as empty)."""
    value = decode("IPAMHandle", raw)
    blocks = value.get("block") or {}
    if not isinstance(blocks, dict):
        raise ValueError("IPAM handle 'block' is not a JSON object")
    out = {}
    for cidr, count in blocks.items():
        if isinstance(count, bool) or not isinstance(count, int):
            raise ValueError(f"IPAM handle count for block {cidr} is not an integer: {count!r}")
        out[str(cidr)] = count
    return out


def encode_affinity(state: str, deleted: bool = False) -> str:
    return encode("BlockAffinityValue", {"state": state, "deleted": deleted})


def decode_affinity_state(raw: bytes | str) -> str:
    """The affinity's state; an empty value or state reads as confirmed (older data)."""
    return decode("BlockAffinityValue", raw).get("state") or AFFINITY_CONFIRMED


def encode_config(value: dict) -> str:
    return encode("IPAMConfig", value)


def decode_config(raw: bytes | str) -> dict:
    return decode("IPAMConfig", raw)


def block_size_conflict(pool_cidr: str, block_size: int, block_cidrs) -> str | None:
    """The first existing block inside ``pool_cidr`` whose size differs from ``block_size``.

    libcalico-go refuses to create such a pool: its blocks could never be used consistently.
    """
    net = ipaddress.ip_network(pool_cidr, strict=False)
    for cidr in block_cidrs:
        block = ipaddress.ip_network(cidr)
        if block.version == net.version and block.prefixlen != block_size and block.overlaps(net):
            return cidr
    return None


def block_cidrs_in(kv, version: int | None = None) -> list[str]:
    """CIDRs of the IPAM blocks stored in ``kv`` (one IP version, or both)."""
    out = []
    for v in ((version,) if version else (4, 6)):
        items, _ = kv.list(f"{IPAM_PREFIX}assignment/ipv{v}/block/")
        out.extend(cidr for cidr in (parse_block_key(i.key) for i in items) if cidr)
    return out
