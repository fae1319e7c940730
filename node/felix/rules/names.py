"""Chain and IP-set names, as Felix spells them (``rules/rule_defs.go``, ``hash/unique_id.go``).

Names are part of the observable dataplane: the kernel sync finds our chains by name, and
other tools (and people) grep for them. iptables limits chain names to 28 characters, so
long suffixes are replaced by a hash exactly the way Felix does it; IP set names are cut
at 31 characters.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from node.felix.types import PolicyID

CHAIN_PREFIX = "cali-"
MAX_CHAIN_NAME_LENGTH = 28
MAX_IPSET_NAME_LENGTH = 31
SHORTENED_MARKER = "_"

# Kernel-hook chains (the same names are reused in every table).
CHAIN_PREROUTING = "cali-PREROUTING"
CHAIN_INPUT = "cali-INPUT"
CHAIN_FORWARD = "cali-FORWARD"
CHAIN_OUTPUT = "cali-OUTPUT"
CHAIN_POSTROUTING = "cali-POSTROUTING"

# Static chains.
CHAIN_FAILSAFE_IN = "cali-failsafe-in"
CHAIN_FAILSAFE_OUT = "cali-failsafe-out"
CHAIN_WORKLOAD_TO_HOST = "cali-wl-to-host"
CHAIN_FROM_WORKLOAD_DISPATCH = "cali-from-wl-dispatch"
CHAIN_TO_WORKLOAD_DISPATCH = "cali-to-wl-dispatch"
CHAIN_FROM_HOST_ENDPOINT = "cali-from-host-endpoint"
CHAIN_TO_HOST_ENDPOINT = "cali-to-host-endpoint"
CHAIN_FROM_HEP_FORWARD = "cali-from-hep-forward"
CHAIN_TO_HEP_FORWARD = "cali-to-hep-forward"
CHAIN_RPF_SKIP = "cali-rpf-skip"
CHAIN_CIDR_BLOCK = "cali-cidr-block"
CHAIN_NAT_OUTGOING = "cali-nat-outgoing"
CHAIN_FIP_DNAT = "cali-fip-dnat"
CHAIN_FIP_SNAT = "cali-fip-snat"
CHAIN_EGRESS_DSCP = "cali-egress-dscp"
CHAIN_WIREGUARD_INCOMING_MARK = "cali-wireguard-incoming-mark"
# kube-proxy IPVS mode: INPUT marks forwarded packets by interface, OUTPUT dispatches on it.
CHAIN_FORWARD_CHECK = "cali-forward-check"
CHAIN_FORWARD_ENDPOINT_MARK = "cali-forward-endpoint-mark"
CHAIN_SET_ENDPOINT_MARK = "cali-set-endpoint-mark"
CHAIN_FROM_ENDPOINT_MARK = "cali-from-endpoint-mark"

# Endpoint, policy, profile and policy-group chain prefixes.
WORKLOAD_TO_ENDPOINT_PREFIX = "cali-tw-"
WORKLOAD_FROM_ENDPOINT_PREFIX = "cali-fw-"
HOST_TO_ENDPOINT_PREFIX = "cali-th-"
HOST_FROM_ENDPOINT_PREFIX = "cali-fh-"
HOST_TO_ENDPOINT_FORWARD_PREFIX = "cali-thfw-"
HOST_FROM_ENDPOINT_FORWARD_PREFIX = "cali-fhfw-"
POLICY_INBOUND_PREFIX = "cali-pi-"
POLICY_OUTBOUND_PREFIX = "cali-po-"
PROFILE_INBOUND_PREFIX = "cali-pri-"
PROFILE_OUTBOUND_PREFIX = "cali-pro-"
POLICY_GROUP_INBOUND_PREFIX = "cali-gi-"
POLICY_GROUP_OUTBOUND_PREFIX = "cali-go-"
SET_ENDPOINT_MARK_PREFIX = "cali-sm-"

# The pseudo-interface name of a HostEndpoint with interfaceName "*".
ALL_INTERFACES = "any-interface-at-all"

# Prefixes Felix has ever used for its chains; chains with these are ours to clean up.
HISTORIC_CHAIN_PREFIXES = ("cali-", "califw-", "calitw-", "califh-", "calith-", "calipi-",
                           "calipo-", "felix-")

# Well-known IP set IDs.
IPSET_ID_ALL_POOLS = "network-ip-pools"
IPSET_ID_NAT_OUTGOING_MASQ_POOLS = "masq-ipam-pools"
IPSET_ID_ALL_HOST_NETS = "all-hosts-net"
IPSET_ID_ALL_VXLAN_SOURCE_NETS = "all-vxlan-net"
IPSET_ID_THIS_HOST_IPS = "this-host"
IPSET_ID_DSCP_ENDPOINTS = "dscp-src-net"
IPSET_ID_ALL_ISTIO_WEPS = "all-istio-weps"  # the calculation's (IstioAmbientMode=Enabled)


def length_limited_id(prefix: str, suffix: str, max_length: int = MAX_CHAIN_NAME_LENGTH) -> str:
    """``prefix + suffix`` if it fits, else ``prefix + "_" + base64url(SHA256(suffix))``
    cut to fit. A name of exactly the limit whose suffix starts with ``_`` is hashed too,
    so a real suffix can never collide with a shortened one; an empty suffix is ``_``."""
    if not suffix:
        suffix = SHORTENED_MARKER
    total = len(prefix) + len(suffix)
    if total > max_length or (total == max_length and suffix.startswith(SHORTENED_MARKER)):
        room = max_length - 1 - len(prefix)
        if room <= 0:
            raise ValueError(f"max length {max_length} is too small for prefix {prefix!r}")
        digest = hashlib.sha256(suffix.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return prefix + SHORTENED_MARKER + encoded[:room]
    return prefix + suffix


@lru_cache(maxsize=1 << 14)
def policy_chain_name(prefix: str, policy_id: PolicyID) -> str:
    """``cali-pi-``/``cali-po-`` + ``<kindShort>/[<ns>/]<name>``, length-limited."""
    return length_limited_id(prefix, policy_id.id())


def profile_chain_name(prefix: str, profile_name: str) -> str:
    return length_limited_id(prefix, profile_name)


def endpoint_chain_name(prefix: str, iface_name: str) -> str:
    return length_limited_id(prefix, iface_name)


def ip_set_name(set_id: str, ip_version: int) -> str:
    """The main set name for an ID: ``cali40<id>`` / ``cali60<id>``, cut to 31 characters."""
    if ip_version == 4:
        return ("cali40" + set_id)[:MAX_IPSET_NAME_LENGTH]
    if ip_version == 6:
        return ("cali60" + set_id)[:MAX_IPSET_NAME_LENGTH]
    raise ValueError(f"unknown IP version {ip_version}")
