"""The IPAM part of ``calicoctl datastore migrate``: blocks, affinities, handles and config.

Calico v3.32.1's migrateipam.go: ``export`` reads every IPAM record from the etcd
datastore (through the backend, as key/value pairs, since IPAM records are not v3
resources), renames the nodes in them to their Kubernetes names, and prints them as one
JSON object; ``import`` creates each record in the Kubernetes datastore. The JSON is
Calico's: ``{"block_affinities": [...], "blocks": [...], "handles": [...], "config": {...}}``
(empty parts left out), each record ``{"Key": <its etcd path>, "Value": <the record>,
"TTL": 0}`` with the record in libcalico-go's field order and spelling.

Node renaming (the map comes from the exported Nodes' ``k8s`` orchestrator references):
a block's allocations' ``secondary``/``alternateOwnerAttrs`` ``node``, the node in
tunnel-address handle IDs (``ipip-tunnel-addr-<node>`` and the VXLAN and WireGuard ones)
and the block's affinity (always written back as ``host:<node>``, as Calico does); an
affinity's host; a tunnel-address handle's ID.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from node.errors import CalicoError
from node.model import ipam as records
from node.model.schema import Collector, canonical_struct

TUNNEL_HANDLE_PREFIXES = ("ipip-tunnel-addr-", "vxlan-tunnel-addr-", "wireguard-tunnel-addr-")

# An affinity's states; "" is what older Calico stored (read as confirmed).
AFFINITY_STATES = ("", records.AFFINITY_CONFIRMED, records.AFFINITY_PENDING, records.AFFINITY_PENDING_DELETION)

# The JSON names of the four parts, in the order Calico's struct has them.
AFFINITIES, BLOCKS, HANDLES, CONFIG = "block_affinities", "blocks", "handles", "config"


class IPAMFileError(CalicoError):
    """The IPAM section of a migration file is not what ``export`` writes."""


# --------------------------------------------------------------------------------------
# Keys as libcalico-go prints them (its Key types' String()).

def block_key_text(cidr: str) -> str:
    return f"BlockKey(cidr={cidr})"


def affinity_key_text(cidr: str, host: str, affinity_type: str) -> str:
    return f"BlockAffinityKey(cidr={cidr}, host={host}, affinityType={affinity_type})"


def handle_key_text(handle_id: str) -> str:
    return f"IPAMHandleKey(id={handle_id})"


CONFIG_KEY_TEXT = "IPAMConfigKey()"


# --------------------------------------------------------------------------------------
# Values in Go's marshalling: struct fields in order (the codecs in node.model.ipam),
# maps with their keys sorted.

def _sorted(value: Any) -> Any:
    return {k: value[k] for k in sorted(value)} if isinstance(value, dict) else value


def block_value(raw: bytes | str) -> dict:
    value = records.decode_block(raw)
    value["sequenceNumberForAllocation"] = _sorted(value.get("sequenceNumberForAllocation"))
    for attr in value.get("attributes") or []:
        if isinstance(attr, dict):
            for name in ("secondary", "alternateOwnerAttrs"):
                if name in attr:
                    attr[name] = _sorted(attr[name])
    return value


def handle_value(raw: bytes | str) -> dict:
    records.decode_handle(raw)  # its per-block counts must be whole numbers
    value = records.decode("IPAMHandle", raw)
    value["block"] = _sorted(value.get("block"))
    return value


def affinity_value(raw: bytes | str) -> dict:
    return records.decode("BlockAffinityValue", raw)


def config_value(raw: bytes | str) -> dict:
    return records.decode_config(raw)


def block_host(block: dict) -> str:
    """AllocationBlock.Host(): the node (or VM) after ``host:`` or ``virtual:``."""
    affinity = block.get("affinity")
    if isinstance(affinity, str):
        for prefix in ("host:", "virtual:"):
            if affinity.startswith(prefix):
                return affinity[len(prefix):]
    return ""


def rename_tunnel_handle(handle_id: str, node_map: dict[str, str]) -> str:
    for prefix in TUNNEL_HANDLE_PREFIXES:
        if handle_id.startswith(prefix) and handle_id[len(prefix):] in node_map:
            handle_id = prefix + node_map[handle_id[len(prefix):]]
    return handle_id


def rename_block_nodes(block: dict, node_map: dict[str, str]) -> None:
    """The node names in a block's allocations and affinity, in place (migrateipam.go)."""
    for attr in block.get("attributes") or []:
        if not isinstance(attr, dict):
            continue
        for owner in ("secondary", "alternateOwnerAttrs"):
            attrs = attr.get(owner)
            if isinstance(attrs, dict) and attrs.get("node", "") in node_map:
                attrs["node"] = node_map[attrs.get("node", "")]
        handle = attr.get("handle_id")
        if isinstance(handle, str):
            attr["handle_id"] = rename_tunnel_handle(handle, node_map)
    host = block_host(block)
    if host in node_map:
        block["affinity"] = f"host:{node_map[host]}"


# --------------------------------------------------------------------------------------

@dataclass
class MigrateIPAM:
    """The IPAM records being moved, as (key path, value, TTL) triples per part."""

    node_map: dict[str, str] | None = None
    affinities: list[tuple[str, dict, int]] = field(default_factory=list)
    blocks: list[tuple[str, dict, int]] = field(default_factory=list)
    handles: list[tuple[str, dict, int]] = field(default_factory=list)
    config: tuple[str, dict, int] | None = None

    # -- reading a datastore ----------------------------------------------------------
    def pull(self, kv, affinity_types: tuple[str, ...] = ("host",)) -> None:
        """Read every IPAM record from ``kv`` (libcalico-go's backend List of blocks,
        affinities of ``affinity_types`` and handles, and Get of the config). Export reads
        host affinities only, as Calico's ``BlockAffinityListOptions{}`` does."""
        node_map = self.node_map
        blocks = []
        items, _ = kv.list(records.block_prefix())
        for item in items:
            cidr = records.parse_block_key(item.key) if _parses(records.parse_block_key, item.key) else None
            if cidr is None:
                continue
            value = _decode(block_value, item)
            if node_map is not None:
                rename_block_nodes(value, node_map)
            blocks.append((records.block_key(cidr), value, 0))
        affinities = []
        for affinity_type in affinity_types:
            items, _ = kv.list(records.affinity_prefix(affinity_type=affinity_type))
            for item in items:
                parsed = records.parse_affinity_key(item.key) if _parses(records.parse_affinity_key,
                                                                          item.key) else None
                if parsed is None:
                    continue
                kind, host, cidr = parsed
                if node_map is not None:
                    host = node_map.get(host, host)
                affinities.append((records.affinity_key(host, cidr, kind), _decode(affinity_value, item), 0))
        handles = []
        items, _ = kv.list(records.HANDLE_PREFIX)
        for item in items:
            handle_id = records.parse_handle_key(item.key)
            if handle_id is None:
                continue
            handle_id = rename_tunnel_handle(handle_id, node_map or {})
            handles.append((records.handle_key(handle_id), _decode(handle_value, item), 0))
        item = kv.get(records.CONFIG_KEY)
        self.config = (records.CONFIG_KEY, _decode(config_value, item), 0) if item is not None else None
        self.affinities, self.blocks, self.handles = affinities, blocks, handles

    def is_empty(self) -> bool:
        return not (self.affinities or self.blocks or self.handles or self.config)

    def count(self) -> int:
        return len(self.affinities) + len(self.blocks) + len(self.handles) + (1 if self.config else 0)

    # -- the JSON ---------------------------------------------------------------------
    def to_json(self) -> dict:
        """The object Calico marshals (omitempty: empty parts are left out)."""
        out: dict[str, Any] = {}
        for name, part in ((AFFINITIES, self.affinities), (BLOCKS, self.blocks), (HANDLES, self.handles)):
            if part:
                out[name] = [{"Key": key, "Value": value, "TTL": ttl} for key, value, ttl in part]
        if self.config is not None:
            key, value, ttl = self.config
            out[CONFIG] = {"Key": key, "Value": value, "TTL": ttl}
        return out

    @classmethod
    def from_json(cls, text: str) -> "MigrateIPAM":
        """The IPAM section of a migration file, each record checked: its key must be
        the kind of IPAM key its part holds, its value a record of that kind."""
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise IPAMFileError(f"the IPAM section is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise IPAMFileError(f"the IPAM section must be a JSON object, not {type(doc).__name__}")
        out = cls()
        out.affinities = [_entry(AFFINITIES, i, e, _affinity_key, "BlockAffinityValue", affinity_value)
                          for i, e in enumerate(_part(doc, AFFINITIES))]
        out.blocks = [_entry(BLOCKS, i, e, _block_key, "AllocationBlock", block_value)
                      for i, e in enumerate(_part(doc, BLOCKS))]
        out.handles = [_entry(HANDLES, i, e, _handle_key, "IPAMHandle", handle_value)
                       for i, e in enumerate(_part(doc, HANDLES))]
        config = doc.get(CONFIG)
        if config is not None:
            out.config = _entry(CONFIG, None, config, _config_key, "IPAMConfig", config_value)
        return out

    # -- writing a datastore ----------------------------------------------------------
    def push(self, kv) -> tuple[int, int, list[str]]:
        """Create every record in ``kv`` (PushToDatastore): (records, attempted, errors).
        As in Calico, every record is attempted and counted, failed or not, and every
        error is worded "error trying to create block affinity <key>: ..." whatever the
        record (migrateipam.go's wording)."""
        errors: list[str] = []
        handled = 0
        plan = []
        for key, value, _ttl in self.affinities:
            kind, host, cidr = records.parse_affinity_key(key)
            plan.append((key, records.encode("BlockAffinityValue", value), affinity_key_text(cidr, host, kind)))
        for key, value, _ttl in self.blocks:
            plan.append((key, records.encode_block(value), block_key_text(records.parse_block_key(key))))
        for key, value, _ttl in self.handles:
            plan.append((key, records.encode("IPAMHandle", value), handle_key_text(records.parse_handle_key(key))))
        if self.config is not None:
            plan.append((records.CONFIG_KEY, records.encode_config(self.config[1]), CONFIG_KEY_TEXT))
        for key, value, text in plan:
            try:
                kv.create(key, value.encode())
            except CalicoError as exc:
                errors.append(f"error trying to create block affinity {text}: {exc}")
            handled += 1
        return self.count(), handled, errors


def _parses(parse, key: str) -> bool:
    try:
        return parse(key) is not None
    except ValueError:
        return False  # the right shape but an unreadable CIDR: libcalico-go skips such keys


def _decode(decode, item) -> dict:
    try:
        return decode(item.value)
    except (ValueError, TypeError) as exc:
        raise CalicoError(f"cannot read the IPAM record at {item.key}: {exc}") from None


def _part(doc: dict, name: str) -> list:
    part = doc.get(name)
    if part is None:
        return []
    if not isinstance(part, list):
        raise IPAMFileError(f"{name}: expected a list of records, found {type(part).__name__}")
    return part


def _entry(part: str, index: int | None, entry: Any, parse_key, struct: str, decode) -> tuple[str, dict, int]:
    where = part if index is None else f"{part}[{index}]"
    if not isinstance(entry, dict):
        raise IPAMFileError(f"{where}: expected an object with Key, Value and TTL, found {type(entry).__name__}")
    key = entry.get("Key")
    if not isinstance(key, str):
        raise IPAMFileError(f"{where}.Key: expected the record's key path, found {json.dumps(key)}")
    key = parse_key(where, key)
    value = entry.get("Value")
    if not isinstance(value, dict):
        raise IPAMFileError(f"{where}.Value: expected a JSON object, found {json.dumps(value)}")
    errs = Collector()
    canonical_struct(value, struct, "", errs, strict=False)
    if errs.problems:
        path, bad, reason = errs.problems[0]
        raise IPAMFileError(f"{where}.Value.{path} = {json.dumps(bad)}: {reason}")
    try:
        value = decode(json.dumps(value))
    except (ValueError, TypeError) as exc:
        raise IPAMFileError(f"{where}.Value: {exc}") from None
    if struct == "BlockAffinityValue" and value.get("state") not in AFFINITY_STATES:
        raise IPAMFileError(f"{where}.Value.state = {json.dumps(value.get('state'))}: not an affinity state "
                            f"(one of {', '.join(s for s in AFFINITY_STATES if s)})")
    ttl = entry.get("TTL", 0)
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise IPAMFileError(f"{where}.TTL: expected a whole number of nanoseconds, found {json.dumps(ttl)}")
    return key, value, ttl


def _block_key(where: str, key: str) -> str:
    try:
        cidr = records.parse_block_key(key)
    except ValueError:
        cidr = None
    if cidr is None:
        raise IPAMFileError(f"{where}.Key: '{key}' is not an IPAM block key "
                            "(/calico/ipam/v2/assignment/ipv<4|6>/block/<cidr>)")
    return records.block_key(cidr)


def _affinity_key(where: str, key: str) -> str:
    try:
        parsed = records.parse_affinity_key(key)
    except ValueError:
        parsed = None
    if parsed is None:
        raise IPAMFileError(f"{where}.Key: '{key}' is not a block affinity key "
                            "(/calico/ipam/v2/<host|virtual>/<node>/ipv<4|6>/block/<cidr>)")
    kind, host, cidr = parsed
    return records.affinity_key(host, cidr, kind)


def _config_key(where: str, key: str) -> str:
    if key != records.CONFIG_KEY:
        raise IPAMFileError(f"{where}.Key: '{key}' is not the IPAM configuration's key ({records.CONFIG_KEY})")
    return key


def _handle_key(where: str, key: str) -> str:
    handle_id = records.parse_handle_key(key)
    if handle_id is None:
        raise IPAMFileError(f"{where}.Key: '{key}' is not an IPAM handle key (/calico/ipam/v2/handle/<id>)")
    return key
