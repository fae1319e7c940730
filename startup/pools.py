"""Default IP pools: what CALICO_IPV4POOL_* / CALICO_IPV6POOL_* ask for, checked up front.

``plan_default_pools`` turns the environment, the existing pools and the host's
addresses into the pools to create (pure, apart from logging and the random ULA), or
stops with Calico's message for the first bad value. ``check_pool`` applies the rules
the datastore client enforces on create, so every planned pool is known to be
acceptable before anything is written. Existing pools are never modified: a family
with any pool at all (disabled ones included) gets no default pool.
"""
from __future__ import annotations

import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from node.datastore.client import DatastoreClient, ippool_write_problems
from node.errors import AlreadyExists, CalicoError, ValidationError
from node.model import API_VERSION, Resource, from_dict, validate_resource
from node.model import ipam
from node.selector import SelectorError, parse as parse_selector
from startup.autodetect import parse_cidr
from startup.env import env_bool
from startup.k8s import extract_kubeadm_cidrs
from startup.logs import Fatal

log = logging.getLogger(__name__)

DEFAULT_IPV4_POOL_CIDR = "192.168.0.0/16"
DEFAULT_IPV4_POOL_NAME = "default-ipv4-ippool"
DEFAULT_IPV6_POOL_NAME = "default-ipv6-ippool"
DEFAULT_BLOCK_SIZE = {4: 26, 6: 122}
BLOCK_SIZE_RANGE = {4: (20, 32), 6: (116, 128)}
# Tried in order when the preferred pool overlaps an address of this host.
FALLBACK_IPV4_POOLS = tuple(f"172.{i}.0.0/16" for i in range(16, 32))

_ATOI = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class PoolPlan:
    """One pool to create, with the settings its log lines mention."""

    resource: Resource
    version: int
    nat_outgoing: bool

    @property
    def cidr(self) -> str:
        return self.resource.spec["cidr"]


def generate_ula_prefix(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """An RFC 4193 ULA /48: fd, then 40 random bits, the rest zero."""
    raw = bytes([0xFD]) + random_bytes(5) + bytes(10)
    return f"{ipaddress.IPv6Address(raw)}/48"


def select_default_ipv4_pool(host_addresses: Iterable[ipaddress.IPv4Address]) -> str:
    """192.168.0.0/16 unless a host address is inside it; then the first free 172.16-31/16;
    192.168.0.0/16 again if every candidate is taken."""
    addresses = list(host_addresses)
    for candidate in (DEFAULT_IPV4_POOL_CIDR, *FALLBACK_IPV4_POOLS):
        net = ipaddress.ip_network(candidate)
        if not any(a in net for a in addresses):
            return candidate
    return DEFAULT_IPV4_POOL_CIDR


def parse_mode(value: str) -> str | None:
    """An IPIP/VXLAN mode word (already lower-cased) as the API spells it; None if unknown."""
    if value in ("", "off", "never"):
        return "Never"
    if value in ("crosssubnet", "cross-subnet"):
        return "CrossSubnet"
    if value == "always":
        return "Always"
    return None


def _block_size(env: Mapping[str, str], version: int) -> int:
    raw = env.get(f"CALICO_IPV{version}POOL_BLOCK_SIZE", "")
    if raw == "":
        size = DEFAULT_BLOCK_SIZE[version]
    elif _ATOI.fullmatch(raw):
        size = int(raw)
    else:
        raise Fatal(f'Unable to convert blocksize to int error=strconv.Atoi: parsing "{raw}": invalid syntax')
    lo, hi = BLOCK_SIZE_RANGE[version]
    if not lo <= size <= hi:
        raise Fatal(f"Invalid blocksize {size} for version {version}")
    return size


def _node_selector(env: Mapping[str, str], version: int) -> str:
    text = env.get(f"CALICO_IPV{version}POOL_NODE_SELECTOR", "")
    try:
        parse_selector(text)
    except SelectorError as exc:
        raise Fatal(f"Invalid node selector '{text}' for version {version}: {exc}") from None
    return text


def _network(text: str, version: int) -> str:
    parsed = parse_cidr(text)
    if parsed is None or parsed[1].version != version:
        raise Fatal(f"Invalid CIDR specified in CALICO_IPV{version}POOL_CIDR '{text}'")
    return str(parsed[1])  # host bits are dropped, as Calico does


def present_versions(pools: Sequence[Resource]) -> set[int]:
    """IP versions that already have a pool (any pool, disabled included)."""
    versions = set()
    for pool in pools:
        parsed = parse_cidr(pool.spec.get("cidr", ""))
        if parsed is None:
            log.warning("Error parsing CIDR '%s'. Skipping the IPPool.", pool.spec.get("cidr", ""))
            continue
        versions.add(parsed[1].version)
    return versions


def _pool(name: str, version: int, cidr: str, ipip: str, vxlan: str, nat: bool, block: int, selector: str,
          no_export: bool) -> Resource:
    spec = {"cidr": cidr, "vxlanMode": vxlan, "ipipMode": ipip, "natOutgoing": nat, "disableBGPExport": no_export,
            "blockSize": block, "nodeSelector": selector or "all()", "allowedUses": ["Workload", "Tunnel"],
            "assignmentMode": "Automatic"}
    return from_dict({"kind": "IPPool", "apiVersion": API_VERSION, "metadata": {"name": name}, "spec": spec},
                     strict=True, validate=False)


def _ipv6_vxlan(env: Mapping[str, str], v4_on: bool) -> str:
    """CALICO_IPV6POOL_VXLAN, lower-cased. Calico v3.32.1 reads it together with the IPv4
    pool's settings, so with CALICO_IPV4POOL_CIDR=none it is never read and the default
    IPv6 pool gets VXLAN mode Never (a bad value is not even noticed)."""
    value = env.get("CALICO_IPV6POOL_VXLAN", "")
    if v4_on:
        return value.lower()
    if value:
        log.warning("CALICO_IPV6POOL_VXLAN=%s is ignored while CALICO_IPV4POOL_CIDR is none, as in Calico; "
                    "the default IPv6 pool gets VXLAN mode Never", value)
    return ""


def plan_default_pools(env: Mapping[str, str], existing: Sequence[Resource],
                       host_ipv4: Iterable[ipaddress.IPv4Address], ipv6_supported: Callable[[], bool],
                       kubeadm_config: Mapping[str, str] | None = None,
                       ula: Callable[[], str] = generate_ula_prefix) -> list[PoolPlan]:
    """The default pools to create; raises Fatal (Calico's message) for any bad setting."""
    v4_text = env.get("CALICO_IPV4POOL_CIDR", "")
    v6_text = env.get("CALICO_IPV6POOL_CIDR", "")
    if env.get("NO_DEFAULT_POOLS", "").lower() == "true":
        if v4_text or v6_text:
            raise Fatal("Invalid configuration with NO_DEFAULT_POOLS defined and CALICO_IPV4POOL_CIDR or "
                        "CALICO_IPV6POOL_CIDR defined.")
        log.info("Skipping IP pool configuration")
        return []
    v4_on, v6_on = v4_text != "none", v6_text != "none"
    if not v4_on:
        log.info("Skipping IPv4 pool configuration")
    if not v6_on:
        log.info("Skipping IPv6 pool configuration")
    if ((v4_on and not v4_text) or (v6_on and not v6_text)) and kubeadm_config is not None:
        found4, found6 = extract_kubeadm_cidrs(kubeadm_config)
        if v4_on and not v4_text:
            v4_text = found4
            log.info("found v4=%s in the kubeadm config map", v4_text)
        if v6_on and not v6_text:
            v6_text = found6
            log.info("found v6=%s in the kubeadm config map", v6_text)

    settings: dict[int, dict] = {}
    if v4_on:
        block = _block_size(env, 4)
        selector = _node_selector(env, 4)
        if not v4_text:
            v4_text = select_default_ipv4_pool(host_ipv4)
            log.info("Selected default IP pool is '%s'", v4_text)
        settings[4] = {"cidr": _network(v4_text, 4), "block": block, "selector": selector,
                       "ipip": env.get("CALICO_IPV4POOL_IPIP", "").lower(),
                       "vxlan": env.get("CALICO_IPV4POOL_VXLAN", "").lower()}
    if v6_on:
        block = _block_size(env, 6)
        selector = _node_selector(env, 6)
        if not v6_text:
            v6_text = ula()
        # IPIP cannot carry IPv6, so CALICO_IPV6POOL_IPIP is never read.
        settings[6] = {"cidr": _network(v6_text, 6), "block": block, "selector": selector, "ipip": "never",
                       "vxlan": _ipv6_vxlan(env, v4_on)}

    present = present_versions(existing)
    plans = []
    for version, default_nat, name in ((4, True, DEFAULT_IPV4_POOL_NAME), (6, False, DEFAULT_IPV6_POOL_NAME)):
        if version not in settings or version in present:
            continue
        if version == 6 and not ipv6_supported():
            continue
        s = settings[version]
        nat = env_bool(env, f"CALICO_IPV{version}POOL_NAT_OUTGOING", default_nat)
        no_export = env_bool(env, f"CALICO_IPV{version}POOL_DISABLE_BGP_EXPORT", False)
        ipip = parse_mode(s["ipip"])
        if ipip is None:
            raise Fatal(f"Unrecognized IPIP mode specified in CALICO_IPV4POOL_IPIP '{s['ipip']}'")
        vxlan = parse_mode(s["vxlan"])
        if vxlan is None:
            raise Fatal(f"Unrecognized VXLAN mode specified in CALICO_IPV{version}POOL_VXLAN '{s['vxlan']}'")
        res = _pool(name, version, s["cidr"], ipip, vxlan, nat, s["block"], s["selector"], no_export)
        plans.append(PoolPlan(res, version, nat))
    return plans


def check_pool(pool: Resource, existing: Sequence[Resource], block_cidrs: Sequence[str]) -> None:
    """The datastore client's rules for creating ``pool``, without writing it.

    Startup checks every default pool this way before it writes anything, so a bad
    value leaves nothing behind. Raises ValidationError naming each problem.
    """
    candidate = pool.copy()
    problems = ippool_write_problems(candidate, None, existing, block_cidrs)
    if problems:
        raise ValidationError(problems)
    validate_resource(candidate)


def existing_blocks(client: DatastoreClient) -> list[str]:
    """CIDRs of every IPAM block in the datastore (both versions)."""
    return ipam.block_cidrs_in(client.kv)


def validate_plans(plans: Sequence[PoolPlan], existing: Sequence[Resource], blocks: Sequence[str]) -> None:
    """Check every planned pool before any is created, so a bad one leaves nothing behind."""
    for plan in plans:
        try:
            check_pool(plan.resource, existing, blocks)
        except ValidationError as exc:
            raise Fatal(f"Failed to create default IPv{plan.version} IP pool: {plan.cidr} error={exc}") from None


def create_pools(client: DatastoreClient, plans: Sequence[PoolPlan]) -> None:
    for plan in plans:
        spec = plan.resource.spec
        no_export = "true" if spec.get("disableBGPExport") else "false"
        log.info("Ensure default IPv%d pool is created. IPIP mode: %s, VXLAN mode: %s, DisableBGPExport: %s",
                 plan.version, spec["ipipMode"], spec["vxlanMode"], no_export)
        try:
            client.create(plan.resource)
        except AlreadyExists:
            log.info("Default IPv%d pool %s already exists", plan.version, plan.resource.name)
            continue
        except CalicoError as exc:
            raise Fatal(f"Failed to create default IPv{plan.version} IP pool: {plan.cidr} error={exc}") from None
        log.info("Created default IPv%d pool (%s) with NAT outgoing %s. IPIP mode: %s, VXLAN mode: %s, "
                 "DisableBGPExport: %s", plan.version, plan.cidr, "true" if plan.nat_outgoing else "false",
                 spec["ipipMode"], spec["vxlanMode"], no_export)
