"""The policy agent's parameters, and where each value comes from.

Felix reads every parameter from (lowest to highest precedence) its built-in default, the
global FelixConfiguration ``default``, the selector-scoped FelixConfiguration whose
``nodeSelector`` matches this host's Node labels (the oldest, if several do), the per-host
FelixConfiguration ``node.<hostname>`` (and host values libcalico-go derives from this
host's Node), its config file, and ``FELIX_<NAME>`` environment variables, matched
case-insensitively. Datastore values arrive as v3 spec
fields; libcalico-go turns them into Felix's v1 strings (durations as seconds, port lists
as ``tcp:22,udp:68``, ``config.projectcalico.org/<Name>`` annotations as overrides), and
the same string parsers then serve every source. A value that does not parse is reported
with its source and the next lower source wins, so one bad field never stops the agent.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from node.model.dscp import dscp_value
from node.model.schema import parse_go_duration

log = logging.getLogger(__name__)

SOURCE_DEFAULT = "default"
SOURCE_GLOBAL = "FelixConfiguration default"
SOURCE_SELECTOR = "FelixConfiguration selected by nodeSelector"
SOURCE_HOST = "FelixConfiguration node.<hostname>"
SOURCE_FILE = "config file"
SOURCE_ENV = "environment"

# Felix's config file in calico-node (felix.Run("/etc/calico/felix.cfg")); the folder
# moves with CALICO_CONFIG_DIR.
CONFIG_FILE_NAME = "felix.cfg"


class ConfigValueError(ValueError):
    """A parameter value that does not parse; the message names the parameter and value."""


@dataclass(frozen=True)
class ProtoPort:
    """One failsafe entry: ``[proto:][net:]port``."""

    protocol: str
    port: int
    net: str = ""


# --------------------------------------------------------------------------------------
# Parsers: raw string -> typed value (Felix's param_types).

Parser = Callable[[str], Any]


def _fail(name: str, raw: str, why: str) -> ConfigValueError:
    return ConfigValueError(f"failed to parse config parameter {name}; value {raw!r}: {why}")


def parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("true", "1", "yes", "y", "t"):
        return True
    if low in ("false", "0", "no", "n", "f"):
        return False
    raise ValueError("invalid boolean")


_GO_INT_BODY = {2: "[01]", 8: "[0-7]", 10: "[0-9]", 16: "[0-9a-fA-F]"}


def go_parse_int(raw: str, bits: int = 64, unsigned: bool = False) -> int:
    """Go's strconv.ParseInt(raw, 0, bits) (ParseUint with ``unsigned``): an optional sign
    (not for ParseUint), then ``0x``/``0o``/``0b`` or a bare leading ``0`` (octal) choosing
    the base, ASCII digits with ``_`` only between digits (or after a prefix), no spaces,
    and a value that fits in ``bits``. ValueError otherwise."""
    text, negative = raw, False
    if text[:1] in ("+", "-") and not unsigned:
        negative, text = text[0] == "-", text[1:]
    base, digits, prefixed = 10, text, False
    if len(text) >= 2 and text[0] == "0" and text[1] in "xXoObB":
        base, digits, prefixed = {"x": 16, "o": 8, "b": 2}[text[1].lower()], text[2:], True
    elif len(text) >= 2 and text[0] == "0":
        base, digits, prefixed = 8, text[1:], True
    d = _GO_INT_BODY[base]
    if not re.fullmatch(("_?" if prefixed else "") + f"{d}+(?:_{d}+)*", digits):
        raise ValueError(f"invalid syntax {raw!r}")
    value = int(digits.replace("_", ""), base)
    value = -value if negative else value
    lo, hi = (0, 2 ** bits - 1) if unsigned else (-2 ** (bits - 1), 2 ** (bits - 1) - 1)
    if not lo <= value <= hi:
        raise ValueError(f"value out of range {raw!r}")
    return value


def _go_underscore_ok(text: str) -> bool:
    """Go's underscoreOK: every ``_`` sits between digits (a base prefix counts as one)."""
    if text[:1] in ("+", "-"):
        text = text[1:]
    saw, i, hexa = "^", 0, False
    if len(text) >= 2 and text[0] == "0" and text[1].lower() in "box":
        i, saw, hexa = 2, "0", text[1].lower() == "x"
    for ch in text[i:]:
        if "0" <= ch <= "9" or hexa and "a" <= ch.lower() <= "f":
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


_GO_FLOAT_DEC = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9][0-9_]*)?")
_GO_FLOAT_HEX = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+))[pP]([+-]?[0-9][0-9_]*)")
_GO_FLOAT_SPECIAL = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)


def go_parse_float(raw: str) -> float:
    """Go's strconv.ParseFloat(raw, 64): decimal (``1.5``, ``1e3``, ``1_000``) or
    hexadecimal (``0x1p-2``, exponent required) literals, ``inf``/``infinity``/``nan`` in
    any case, no spaces; a finite literal that overflows is an error (ErrRange)."""
    if _GO_FLOAT_SPECIAL.fullmatch(raw):
        return float(raw)
    if "_" in raw and not _go_underscore_ok(raw):
        raise ValueError(f"invalid syntax {raw!r}")
    m = _GO_FLOAT_HEX.fullmatch(raw)
    if m is not None:
        mantissa = m.group(2).replace("_", "")
        if not mantissa.strip("."):
            raise ValueError(f"invalid syntax {raw!r}")
        try:
            value = float.fromhex(f"{m.group(1)}0x{mantissa}p{m.group(3).replace('_', '')}")
        except OverflowError:
            raise ValueError(f"value out of range {raw!r}") from None
        return value
    if not _GO_FLOAT_DEC.fullmatch(raw) or not re.search("[0-9]", raw.split("e")[0].split("E")[0]):
        raise ValueError(f"invalid syntax {raw!r}")
    value = float(raw.replace("_", ""))
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"value out of range {raw!r}")
    return value


def _int(lo: int | None = None, hi: int | None = None) -> Parser:
    """Felix's int parameters (ParseInt base 0, 64-bit) with an optional range."""
    def parse(raw: str) -> int:
        try:
            value = go_parse_int(raw)
        except ValueError:
            raise ValueError("invalid int") from None
        if lo is not None and value < lo:
            raise ValueError(f"value must be at least {lo}")
        if hi is not None and value > hi:
            raise ValueError(f"value must be at most {hi}")
        return value
    return parse


def _seconds(raw: str) -> float:
    try:
        return go_parse_float(raw)
    except ValueError:
        raise ValueError("invalid float") from None


def _millis(raw: str) -> float:
    """Milliseconds in, seconds out (every interval is held in seconds)."""
    return _seconds(raw) / 1000.0


def _oneof(*options: str) -> Parser:
    canonical = {o.lower(): o for o in options}

    def parse(raw: str) -> str:
        try:
            return canonical[raw.lower()]
        except KeyError:
            raise ValueError("unknown option (one of " + ", ".join(options) + ")") from None
    return parse


def _string(raw: str) -> str:
    """Felix's string parameters (its StringRegexp, ``^.*$``: no newline)."""
    if "\n" in raw:
        raise ValueError("invalid string")
    return raw


def _file(raw: str) -> str:
    """Felix's file parameters (no must-exist): any text is a path."""
    return raw


_HOST_ADDRESS = re.compile(r"[a-zA-Z0-9:._+-]{1,64}")  # Felix's HostAddressRegexp
_AUTHORITY = re.compile(r"[^:/]+:[0-9]+")  # Felix's AuthorityRegexp


def _host_address(raw: str) -> str:
    if not _HOST_ADDRESS.fullmatch(raw):
        raise ValueError("invalid host address")
    return raw


def _authority(raw: str) -> str:
    if not _AUTHORITY.fullmatch(raw):
        raise ValueError("invalid URL authority")
    return raw


def _dscp(raw: str) -> int:
    """Felix's dscp parameter: a decimal number up to 63, or a DSCP name (any case, spaces
    around it ignored, as numorstring.DSCP validates it); held as its number."""
    return dscp_value(raw)


def go_parse_ip(raw: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Go's net.ParseIP, as Felix sees it: dotted IPv4 or IPv6 text without a zone, an
    IPv4-mapped IPv6 address being the IPv4 address (net.IP's To4); None if invalid."""
    if not raw.isascii() or "%" in raw:
        return None
    try:
        return ipaddress.IPv4Address(raw)
    except ValueError:
        pass
    try:
        addr = ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    return addr.ipv4_mapped or addr


def _ip_of(version: int) -> Callable[[str], str]:
    """An address parameter of one family (Felix's ipv4/ipv6 types)."""
    def parse(raw: str) -> str:
        addr = go_parse_ip(raw)
        if addr is None:
            raise ValueError("invalid IP")
        if addr.version != version:
            raise ValueError(f"not an IPv{version} address")
        return str(addr)
    return parse


_ipv4, _ipv6 = _ip_of(4), _ip_of(6)


def go_parse_cidr_or_ip(raw: str) -> str:
    """libcalico-go's ParseCIDROrIP, as text: an address (a /32 or /128) or a CIDR, whose
    host bits are cleared; Go's ParseCIDR takes only a decimal prefix length."""
    addr_text, slash, length = raw.partition("/")
    addr = go_parse_ip(addr_text)
    if addr is None or (slash and not re.fullmatch(r"[0-9]{1,3}", length)):
        raise ValueError(f"invalid CIDR or IP {raw}")
    if slash and addr_text != str(addr) and addr.version == 4 and ":" in addr_text:
        # An IPv4-mapped IPv6 prefix is an IPv6 one for ParseCIDR.
        addr = ipaddress.IPv6Address(addr_text)
    bits = addr.max_prefixlen
    prefix = int(length) if slash else bits
    if prefix > bits:
        raise ValueError(f"invalid CIDR or IP {raw}")
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


_HOSTNAME = re.compile(r"[a-zA-Z0-9_.-]+")  # Felix's HostnameRegexp


def _hostname(raw: str) -> str:
    if not _HOSTNAME.fullmatch(raw):
        raise ValueError("invalid hostname")
    return raw


# Felix's RegionParam: a DNS-1123 label short enough for the namespace name
# "openstack-region-<region>" (63 characters) that networking-calico derives from it.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_REGION_LENGTH = 63 - len("openstack-region-")


def _region(raw: str) -> str:
    if len(raw) > MAX_REGION_LENGTH:
        raise ValueError(f"the value of OpenstackRegion must be {MAX_REGION_LENGTH} chars or fewer")
    if not _DNS_LABEL.fullmatch(raw):
        raise ValueError("the value of OpenstackRegion must be a valid DNS label (lower case alphanumeric "
                         "characters or '-', starting and ending with an alphanumeric character)")
    return raw


# Felix's IfaceListRegexp / NonRegexpIfaceElemRegexp (no dots, unlike InterfaceRegex),
# RegexpIfaceElemRegexp (``/.../`` with no whitespace, Go's \s) and IfaceParamRegexp.
_IFACE_LIST = re.compile(r"[a-zA-Z0-9_-]{1,15}(,[a-zA-Z0-9_-]{1,15})*")
_IFACE_ELEM = re.compile(r"[a-zA-Z0-9_-]{1,15}")
_IFACE_REGEXP_ELEM = re.compile(r"/[^\t\n\f\r ]+/")
_IFACE_PARAM = re.compile(r"[a-zA-Z0-9:._+-]{1,15}")


def _iface_list(raw: str) -> tuple[str, ...]:
    if not _IFACE_LIST.fullmatch(raw):
        raise ValueError("invalid Linux interface name")
    return tuple(raw.split(","))


def _iface_param(raw: str) -> str:
    if not _IFACE_PARAM.fullmatch(raw):
        raise ValueError("invalid Linux interface parameter")
    return raw


def _iface_regexp_list(raw: str) -> tuple[re.Pattern, ...]:
    """Interface names, or ``/regex/`` entries, comma-separated (InterfaceExclude)."""
    out = []
    for token in raw.split(","):
        if _IFACE_REGEXP_ELEM.fullmatch(token):
            try:
                out.append(re.compile(token[1:-1]))
            except re.error:
                raise ValueError("list contains invalid Linux interface name or regex pattern") from None
        elif _IFACE_ELEM.fullmatch(token):
            out.append(re.compile("^" + re.escape(token) + "$"))
        else:
            raise ValueError("list contains invalid Linux interface name or regex pattern")
    return tuple(out)


def _regexp(raw: str) -> re.Pattern:
    try:
        return re.compile(raw)
    except re.error:
        raise ValueError("invalid regular expression") from None


def _mark_bitmask(raw: str) -> int:
    try:
        value = go_parse_int(raw, 32, unsigned=True)
    except ValueError:
        raise ValueError("invalid mark: should be 32-bit int") from None
    if bin(value).count("1") < 2:
        raise ValueError("invalid mark: needs to have 2 bits set")
    return value


def parse_port_list(raw: str) -> tuple[ProtoPort, ...]:
    """``[proto:][net:]port`` entries; IPv6 nets go in brackets (``tcp:[fd00::/8]:22``)."""
    out = []
    for entry in raw.split(","):
        entry = entry.strip(" ")
        if not entry:
            continue
        proto, net = "tcp", ""
        if "[" in entry and "]:" in entry:
            start, end = entry.index("["), entry.index("]:")
            net = entry[start + 1:end]
            entry = entry[:start] + entry[end + 2:]
        parts = entry.split(":")
        if len(parts) > 3:
            raise ValueError("ports should be <protocol>:<net>:<number> or <protocol>:<number> or <number>")
        if len(parts) == 3:
            proto, net, port_text = parts[0].lower(), parts[1], parts[2]
        elif len(parts) == 2:
            proto, port_text = parts[0].lower(), parts[1]
        else:
            port_text = parts[0]
        if proto not in ("tcp", "udp"):
            raise ValueError(f"unknown protocol: {proto}")
        if not re.fullmatch(r"[+-]?[0-9]+", port_text):
            raise ValueError("ports should be integers")
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError("ports must be in range 0-65535")
        if net:
            net = go_parse_cidr_or_ip(net)
        out.append(ProtoPort(proto, port, net))
    return tuple(out)


def _port_range(raw: str) -> tuple[int, int]:
    """numorstring.PortFromString without names: ``N`` or ``N:M``, each 0-65535, N <= M."""
    m = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", raw)
    if not m:
        raise ValueError(f"{raw} is not a valid port range")
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if not 0 <= lo <= hi <= 65535:
        raise ValueError(f"{raw} is not a valid port range")
    return lo, hi


def _port_range_list(raw: str) -> tuple[tuple[int, int], ...]:
    """Every comma-separated item a port range (no spaces or empty items, as in Felix)."""
    return tuple(_port_range(p) for p in raw.split(","))


def _cidr_list(raw: str) -> tuple[str, ...]:
    out = []
    for item in raw.split(","):
        item = item.strip(" ")
        if not item:
            continue
        out.append(go_parse_cidr_or_ip(item))
    return tuple(out)


def _endpoint_list(raw: str) -> tuple[str, ...]:
    """Felix's endpoint-list (EtcdEndpoints): comma-separated ``http(s)://host:port`` URLs,
    all with the same scheme, with no path (``/`` aside), user, query or fragment; empty
    entries skipped."""
    out, scheme = [], None
    for entry in raw.split(","):
        entry = entry.strip(" ")
        if not entry:
            continue
        m = re.fullmatch(r"([a-zA-Z][a-zA-Z0-9+.-]*)://([^/?#@]+)/?", entry)
        if m is None:
            raise ValueError("endpoint contained unsupported URL part; expected http(s)://hostname:port only.")
        if scheme is not None and m.group(1) != scheme:
            raise ValueError("all endpoints must have the same scheme")
        scheme = m.group(1)
        out.append(f"{scheme}://{m.group(2)}")
    return tuple(out)


def _regexp_or_none(raw: str) -> re.Pattern | None:
    """Felix's regexp(nil-on-empty): an empty value is no pattern."""
    return _regexp(raw) if raw else None


_LOG_RATE = re.compile(r"[1-9][0-9]{0,3}/(?:second|minute|hour|day)")


def _log_rate(raw: str) -> str:
    if raw and not _LOG_RATE.fullmatch(raw):
        raise ValueError("invalid rate (expected N/second|minute|hour|day)")
    return raw


_ROUTE_TABLE_RANGE = re.compile(r"([0-9]+)-([0-9]+)")
_ROUTE_TABLE_RANGES = re.compile(r"([0-9]+)-([0-9]+)")
_ROUTE_TABLE_MAX = 0xFFFFFFFF
_ROUTE_TABLE_MAX_TABLES = 0xFFFF


def _route_table_range(raw: str) -> tuple[int, int]:
    """Felix's route-table-range: ``min-max`` within 1-250."""
    m = _ROUTE_TABLE_RANGE.fullmatch(raw)
    if m is None or not 1 <= int(m.group(1)) <= int(m.group(2)) <= 250:
        raise ValueError("must be a range of route table indices within 1-250")
    return int(m.group(1)), int(m.group(2))


def _route_table_ranges(raw: str) -> tuple[tuple[int, int], ...]:
    """Felix's route-table-ranges: every ``min-max`` in the text, each 1 <= min <= max <=
    2^32-1, at most 65535 tables in all. (Felix allocates them to WireGuard's routing
    table, which this agent does not build: the value is only checked.)"""
    found = _ROUTE_TABLE_RANGES.findall(raw)
    if not found:
        raise ValueError("must be a list of route-table ranges")
    ranges, tables = [], 0
    for low_text, high_text in found:
        low, high = int(low_text), int(high_text)
        if low <= 0:
            raise ValueError("min value is not a valid number")
        if low > high:
            raise ValueError("min value is greater than max value")
        if high > _ROUTE_TABLE_MAX:
            raise ValueError("max value is too high")
        tables += high - low + 1
        if tables > _ROUTE_TABLE_MAX_TABLES:
            raise ValueError("targets too many tables")
        ranges.append((low, high))
    return tuple(ranges)


_KEY_VALUE = re.compile(r"\s*(\w+)=(.*)", re.ASCII)


def _key_value_list(raw: str) -> tuple[tuple[str, str], ...]:
    """Felix's keyvaluelist: ``k=v`` items split on commas (empty items skipped; the
    first ``word=`` in an item starts it, spaces in values kept); a later key wins."""
    out: dict[str, str] = {}
    if not raw.strip():
        return ()
    bad = []
    for item in raw.split(","):
        if not item:
            continue
        m = _KEY_VALUE.search(item)
        if m is None:
            bad.append(item)
            continue
        out[m.group(1)] = m.group(2)
    if bad:
        raise ValueError(f"invalid items {bad}")
    return tuple(out.items())


def _key_duration_list(raw: str) -> tuple[tuple[str, float], ...]:
    out = []
    for key, value in _key_value_list(raw):
        try:
            out.append((key, parse_go_duration(value.strip()) / 1e9))
        except ValueError:
            raise ValueError(f"invalid duration {value!r}") from None
    return tuple(out)


# --------------------------------------------------------------------------------------
# The parameters. Defaults are Felix v3.32's (felix/config/config_params.go).

@dataclass(frozen=True)
class Param:
    name: str
    parse: Parser
    default: Any
    local: bool = False  # only from the environment (never from the datastore)
    # Felix's flags: a value that does not parse stops the agent instead of falling back
    # to the default (die-on-fail); ``none`` is refused (non-zero).
    die_on_fail: bool = False
    non_zero: bool = False


_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "FATAL")
MTU_IFACE_PATTERN = r"^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"
DEFAULT_FAILSAFE_IN = "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"
DEFAULT_FAILSAFE_OUT = "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"

_PARAMS = [
    Param("DatastoreType", _oneof("kubernetes", "etcdv3"), "etcdv3", local=True, die_on_fail=True, non_zero=True),
    Param("FelixHostname", _hostname, "", local=True, non_zero=True),
    Param("LogSeverityScreen", _oneof(*_LOG_LEVELS), "INFO"),
    # Felix's own log file and syslog (calico-node's felix.cfg turns both off: the
    # supervisor collects stdout); read only to say they are not built.
    Param("LogFilePath", _file, "/var/log/calico/felix.log", die_on_fail=True),
    Param("LogSeverityFile", _oneof(*_LOG_LEVELS), "INFO"),
    Param("LogSeveritySys", _oneof(*_LOG_LEVELS), "INFO"),
    Param("HealthEnabled", parse_bool, False),
    Param("HealthHost", _host_address, "localhost"),
    Param("HealthPort", _int(0, 65535), 9099),
    Param("HealthTimeoutOverrides", _key_duration_list, ()),
    # Forces detected iptables/kernel feature flags (node/felix/features.py).
    Param("FeatureDetectOverride", _key_value_list, ()),
    Param("PrometheusMetricsEnabled", parse_bool, False),
    Param("PrometheusMetricsHost", _host_address, ""),
    Param("PrometheusMetricsPort", _int(0, 65535), 9091),
    Param("PrometheusGoMetricsEnabled", parse_bool, True),
    Param("PrometheusProcessMetricsEnabled", parse_bool, True),
    # TLS for /metrics (node/felix/metrics_tls.py): on when the cert or key file is set.
    Param("PrometheusMetricsCAFile", _string, ""),
    Param("PrometheusMetricsCertFile", _string, ""),
    Param("PrometheusMetricsKeyFile", _string, ""),
    Param("PrometheusMetricsClientAuth", _oneof("RequireAndVerifyClientCert", "RequireAnyClientCert",
                                                "VerifyClientCertIfGiven", "NoClientCert"),
          "RequireAndVerifyClientCert"),
    Param("Ipv6Support", parse_bool, True),
    Param("InterfacePrefix", _iface_list, ("cali",), die_on_fail=True, non_zero=True),
    Param("InterfaceExclude", _iface_regexp_list, _iface_regexp_list("kube-ipvs0")),
    Param("ChainInsertMode", _oneof("insert", "append"), "insert", die_on_fail=True, non_zero=True),
    Param("DefaultEndpointToHostAction", _oneof("DROP", "RETURN", "ACCEPT"), "DROP", die_on_fail=True, non_zero=True),
    Param("IptablesFilterAllowAction", _oneof("ACCEPT", "RETURN"), "ACCEPT", die_on_fail=True, non_zero=True),
    Param("IptablesMangleAllowAction", _oneof("ACCEPT", "RETURN"), "ACCEPT", die_on_fail=True, non_zero=True),
    Param("IptablesFilterDenyAction", _oneof("DROP", "REJECT"), "DROP", die_on_fail=True, non_zero=True),
    Param("IptablesMarkMask", _mark_bitmask, 0xFFFF0000, die_on_fail=True, non_zero=True),
    Param("IptablesRefreshInterval", _seconds, 180.0),
    Param("IptablesPostWriteCheckIntervalSecs", _seconds, 5.0),
    Param("IptablesLockProbeIntervalMillis", _millis, 0.05),
    Param("IptablesBackend", _oneof("legacy", "nft", "auto"), "auto"),
    Param("NFTablesMode", _oneof("Enabled", "Disabled", "Auto"), "Auto"),
    Param("BPFEnabled", parse_bool, False),
    Param("IpsetsRefreshInterval", _seconds, 90.0),
    Param("MaxIpsetSize", _int(), 1048576, non_zero=True),
    Param("RouteRefreshInterval", _seconds, 90.0),
    Param("InterfaceRefreshInterval", _seconds, 90.0),
    Param("DeviceRouteProtocol", _int(), 3),
    Param("DeviceRouteSourceAddress", _ipv4, ""),
    Param("DeviceRouteSourceAddressIPv6", _ipv6, ""),
    Param("RemoveExternalRoutes", parse_bool, True),
    Param("IPv4NormalRoutePriority", _int(1, 2147483646), 1024),
    Param("IPv4ElevatedRoutePriority", _int(1, 2147483646), 512),
    Param("IPv6NormalRoutePriority", _int(1, 2147483646), 1024),
    Param("IPv6ElevatedRoutePriority", _int(1, 2147483646), 512),
    # Seconds a migrated VM's routes keep the elevated priority once the migration is over.
    Param("LiveMigrationRouteConvergenceTime", _seconds, 30.0),
    Param("RouteSyncDisabled", parse_bool, False),
    Param("RouteTableRange", _route_table_range, None, die_on_fail=True),
    Param("RouteTableRanges", _route_table_ranges, (), die_on_fail=True),
    # Where routes to other nodes' workloads come from: IPAM blocks, or (for addresses
    # Calico's IPAM does not hand out) each workload's own addresses.
    Param("RouteSource", _oneof("WorkloadIPs", "CalicoIPAM"), "CalicoIPAM"),
    # Who programs the IPIP and unencapsulated pools' cluster routes (Felix or BIRD).
    # Felix's newer default, EnabledIPIPOnly, is the one the renderer's default
    # (BGPConfiguration programClusterRoutes EnabledNoEncapOnly) pairs with: v3.32's
    # Disabled would leave IPIP pools without routes.
    Param("ProgramClusterRoutes", _oneof("Enabled", "Disabled", "EnabledIPIPOnly", "EnabledNoEncapOnly"),
          "EnabledIPIPOnly"),
    Param("FailsafeInboundHostPorts", parse_port_list, parse_port_list(DEFAULT_FAILSAFE_IN), die_on_fail=True),
    Param("FailsafeOutboundHostPorts", parse_port_list, parse_port_list(DEFAULT_FAILSAFE_OUT), die_on_fail=True),
    Param("DisableConntrackInvalidCheck", parse_bool, False),
    Param("IpInIpEnabled", parse_bool, None),
    Param("IpInIpMtu", _int(), 0),
    Param("IpInIpTunnelAddr", _ipv4, ""),
    Param("VXLANEnabled", parse_bool, None),
    Param("VXLANPort", _int(), 4789),
    Param("VXLANVNI", _int(), 4096),
    Param("VXLANMTU", _int(), 0),
    Param("VXLANMTUV6", _int(), 0),
    Param("IPv4VXLANTunnelAddr", _ipv4, ""),
    Param("IPv6VXLANTunnelAddr", _ipv6, ""),
    Param("VXLANTunnelMACAddr", _string, ""),
    Param("VXLANTunnelMACAddrV6", _string, ""),
    Param("AllowVXLANPacketsFromWorkloads", parse_bool, False),
    Param("AllowIPIPPacketsFromWorkloads", parse_bool, False),
    Param("MTUIfacePattern", _regexp, re.compile(MTU_IFACE_PATTERN)),
    # Exit when the MTU file for the CNI plugin cannot be written (else only log it).
    Param("RequireMTUFile", parse_bool, False),
    Param("NATOutgoingAddress", _ipv4, ""),
    Param("NATPortRange", _port_range, None),
    Param("NATOutgoingExclusions", _oneof("IPPoolsOnly", "IPPoolsAndHostIPs"), "IPPoolsOnly"),
    Param("IptablesNATOutgoingInterfaceFilter", _iface_param, ""),
    Param("ExternalNodesCIDRList", _cidr_list, (), die_on_fail=True),
    Param("LogPrefix", _string, "calico-packet"),
    Param("LogActionRateLimit", _log_rate, ""),
    # Felix's tag is int(0,9999): two ranges, 0 and up or 9999 and up (not 0 to 9999).
    Param("LogActionRateLimitBurst", _int(0), 5),
    Param("IPForwarding", _oneof("Enabled", "Disabled"), "Enabled"),
    Param("ServiceLoopPrevention", _oneof("Drop", "Reject", "Disabled"), "Drop"),
    Param("KubeNodePortRanges", _port_range_list, ((30000, 32767),)),
    Param("WorkloadSourceSpoofing", _oneof("Disabled", "Any"), "Disabled"),
    Param("FloatingIPs", _oneof("Enabled", "Disabled"), "Disabled"),
    # Istio ambient mode: the "all-istio-weps" IP set and the mangle POSTROUTING DSCP rule.
    Param("IstioAmbientMode", _oneof("Disabled", "Enabled"), "Disabled"),
    Param("IstioDSCPMark", _dscp, 23),
    Param("DataplaneWatchdogTimeout", _seconds, 90.0),
    Param("EndpointStatusPathPrefix", _file, "/var/run/calico"),
    Param("ReportingIntervalSecs", _seconds, 30.0),
    # Felix's status reports to the datastore (node/felix/status_reporter.py).
    Param("ReportingTTLSecs", _seconds, 90.0),
    Param("EndpointReportingEnabled", parse_bool, False),
    Param("EndpointReportingDelaySecs", _seconds, 1.0),
    Param("OpenstackRegion", _region, "", die_on_fail=True),
    Param("ClusterType", _string, ""),
    # Felix features this agent does not have; read only to say so when they are asked for.
    Param("WireguardEnabled", parse_bool, False),
    Param("WireguardEnabledV6", parse_bool, False),
    Param("FlowLogsGoldmaneServer", _string, ""),
    Param("AWSSrcDstCheck", _oneof("DoNothing", "Enable", "Disable"), "DoNothing", non_zero=True),
    Param("TyphaAddr", _authority, "", local=True),
    Param("TyphaK8sServiceName", _string, "", local=True),
    Param("PolicySyncPathPrefix", _file, ""),
    Param("MetadataAddr", _hostname, "127.0.0.1", die_on_fail=True),
    Param("MetadataPort", _int(0, 65535), 8775, die_on_fail=True),
    # The datastore connection's overrides from the config file or FELIX_* variables
    # (Felix's DatastoreConfig; ``datastore_env`` applies them).
    Param("EtcdAddr", _authority, "127.0.0.1:2379", local=True),
    Param("EtcdScheme", _oneof("http", "https"), "http", local=True),
    Param("EtcdKeyFile", _file, "", local=True),
    Param("EtcdCertFile", _file, "", local=True),
    Param("EtcdCaFile", _file, "", local=True),
    Param("EtcdEndpoints", _endpoint_list, (), local=True),
    # Felix's nftables dataplane's own actions, mark mask and refresh interval: with
    # NFTablesMode=Enabled they replace the Iptables* ones (FelixConfig.filter_allow_action...).
    Param("NftablesRefreshInterval", _seconds, 180.0),
    Param("NftablesFilterAllowAction", _oneof("ACCEPT", "RETURN"), "ACCEPT", die_on_fail=True, non_zero=True),
    Param("NftablesMangleAllowAction", _oneof("ACCEPT", "RETURN"), "ACCEPT", die_on_fail=True, non_zero=True),
    Param("NftablesFilterDenyAction", _oneof("DROP", "REJECT"), "DROP", die_on_fail=True, non_zero=True),
    Param("NftablesMarkMask", _mark_bitmask, 0xFFFF0000, die_on_fail=True, non_zero=True),
    # Debug log lines are kept only from source files whose name matches (node/felix/agent.py).
    Param("LogDebugFilenameRegex", _regexp_or_none, None),
    # Felix features this agent does not have (``unsupported_features`` names them when
    # they are asked for); parsed so that a value asking for one can be recognised.
    Param("UseInternalDataplaneDriver", parse_bool, True),
    Param("DataplaneDriver", _file, "calico-iptables-plugin", die_on_fail=True, non_zero=True),
    Param("NetlinkTimeoutSecs", _seconds, 10.0),
    Param("XDPEnabled", parse_bool, True),
    Param("GenericXDPEnabled", parse_bool, False),
    Param("XDPRefreshInterval", _seconds, 90.0),
    Param("SidecarAccelerationEnabled", parse_bool, False),
    Param("Variant", _string, "Calico"),
    Param("GoGCThreshold", _int(-1), 40),
    Param("GoMemoryLimitMB", _int(-1), -1),
    Param("GoMaxProcs", _int(-1), -1),
    Param("UsageReportingEnabled", parse_bool, True),
    Param("UsageReportingInitialDelaySecs", _seconds, 300.0),
    Param("UsageReportingIntervalSecs", _seconds, 86400.0),
    Param("FlowLogsLocalReporter", _oneof("Enabled", "Disabled"), "Disabled"),
    Param("DebugMemoryProfilePath", _file, ""),
    Param("DebugCPUProfilePath", _file, "/tmp/felix-cpu-<timestamp>.pprof"),
    Param("DebugSimulateCalcGraphHangAfter", _seconds, 0.0),
    Param("DebugSimulateDataplaneHangAfter", _seconds, 0.0),
    Param("DebugSimulateDataplaneApplyDelay", _seconds, 0.0),
    Param("DebugPanicAfter", _seconds, 0.0),
    Param("DebugSimulateDataRace", parse_bool, False),
    Param("DebugHost", _host_address, "localhost"),
    Param("DebugPort", _int(0, 65535), 0),
]
PARAMS: dict[str, Param] = {p.name.lower(): p for p in _PARAMS}

# v3 FelixConfigurationSpec JSON field -> Felix parameter, where more than the case differs
# (libcalico-go's ``confignamev1`` tags and Go field names).
V3_FIELD_NAMES = {
    "iptablesPostWriteCheckInterval": "IptablesPostWriteCheckIntervalSecs",
    "iptablesLockProbeInterval": "IptablesLockProbeIntervalMillis",
    "ipipEnabled": "IpInIpEnabled",
    "ipipMTU": "IpInIpMtu",
    "reportingInterval": "ReportingIntervalSecs",
    "reportingTTL": "ReportingTTLSecs",
    "endpointReportingDelay": "EndpointReportingDelaySecs",
    "externalNodesList": "ExternalNodesCIDRList",
    "netlinkTimeout": "NetlinkTimeoutSecs",
    "usageReportingInitialDelay": "UsageReportingInitialDelaySecs",
    "usageReportingInterval": "UsageReportingIntervalSecs",
}
_MILLIS_FIELDS = {"iptablesLockProbeInterval"}
CONFIG_ANNOTATION_PREFIX = "config.projectcalico.org/"


def _v1_value(field: str, value: Any) -> str | None:
    """A v3 spec value in libcalico-go's v1 string form (None: not set)."""
    if value is None or value == "":
        return None
    if field in ("failsafeInboundHostPorts", "failsafeOutboundHostPorts"):
        if not value:
            return "none"
        parts = []
        for pp in value:
            proto = str(pp.get("protocol") or "").lower()
            net = pp.get("net") or ""
            if net:
                parts.append(f"{proto}:[{net}]:{pp.get('port', 0)}" if ":" in net
                             else f"{proto}:{net}:{pp.get('port', 0)}")
            else:
                parts.append(f"{proto}:{pp.get('port', 0)}")
        return ",".join(parts)
    if field == "healthTimeoutOverrides":
        return ",".join(f"{h.get('name')}={h.get('timeout')}" for h in value) or None
    if field == "routeTableRange" and isinstance(value, dict):  # {min, max} -> "min-max"
        return f"{value.get('min', 0)}-{value.get('max', 0)}"
    if field == "routeTableRanges" and isinstance(value, list):  # [{min, max}...] -> "a-b,c-d"
        return ",".join(f"{r.get('min', 0)}-{r.get('max', 0)}" for r in value if isinstance(r, dict))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, str) and re.fullmatch(r"-?(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+", value):
        # A metav1.Duration: v1 wants seconds (or milliseconds for the *Millis parameters).
        seconds = parse_go_duration(value) / 1e9
        return _go_number(seconds * 1000 if field in _MILLIS_FIELDS else seconds)
    return str(value)


def _go_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def v1_config_from_spec(spec: Mapping[str, Any] | None, annotations: Mapping[str, str] | None = None
                        ) -> dict[str, str]:
    """A FelixConfiguration's spec (+ config annotations) as Felix parameter strings."""
    out: dict[str, str] = {}
    for field, value in (spec or {}).items():
        if field == "nodeSelector":
            continue  # says where the resource applies; not a parameter (confignamev1:"-")
        name = V3_FIELD_NAMES.get(field, field[:1].upper() + field[1:])
        text = _v1_value(field, value)
        if text is not None:
            out[name] = text
    for key, value in (annotations or {}).items():
        if key.startswith(CONFIG_ANNOTATION_PREFIX):
            out[key[len(CONFIG_ANNOTATION_PREFIX):]] = value
    return out


def v1_config_from_node(node_spec: Mapping[str, Any] | None) -> dict[str, str]:
    """Host parameters libcalico-go derives from this host's Node (felixnodeprocessor)."""
    spec = node_spec or {}
    out = {}
    bgp = spec.get("bgp") or {}
    if bgp.get("ipv4IPIPTunnelAddr"):
        out["IpInIpTunnelAddr"] = bgp["ipv4IPIPTunnelAddr"]
    for field, name in (("ipv4VXLANTunnelAddr", "IPv4VXLANTunnelAddr"),
                        ("ipv6VXLANTunnelAddr", "IPv6VXLANTunnelAddr"),
                        ("vxlanTunnelMACAddr", "VXLANTunnelMACAddr"),
                        ("vxlanTunnelMACAddrV6", "VXLANTunnelMACAddrV6")):
        if spec.get(field):
            out[name] = spec[field]
    return out


# --------------------------------------------------------------------------------------
# Resolution.

class FelixConfig:
    """The effective parameters; read them as attributes (``config.IptablesMarkMask``).

    ``sources[name]`` says where each non-default value came from; ``problems`` lists the
    values that were rejected and replaced with the default (each names its source,
    parameter and value); ``errors`` the ones Felix refuses to start with (a bad value of
    a die-on-fail parameter, ``none`` for a non-zero one).
    """

    def __init__(self, values: dict[str, Any], sources: dict[str, str], problems: list[str],
                 errors: list[str] | None = None):
        self._values = values
        self.sources = sources
        self.problems = problems
        self.errors = list(errors or [])

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    # Felix's accessors for the settings its iptables and nftables dataplanes each have
    # their own parameter for: with NFTablesMode=Enabled Felix programs nftables with the
    # Nftables* ones; this agent programs iptables in that mode (a warning says so), with
    # the same values, so the packets are treated as Felix would treat them.

    def _nft(self) -> bool:
        return self._values.get("NFTablesMode") == "Enabled"

    def filter_allow_action(self) -> str:
        return self.NftablesFilterAllowAction if self._nft() else self.IptablesFilterAllowAction

    def mangle_allow_action(self) -> str:
        return self.NftablesMangleAllowAction if self._nft() else self.IptablesMangleAllowAction

    def filter_deny_action(self) -> str:
        return self.NftablesFilterDenyAction if self._nft() else self.IptablesFilterDenyAction

    def mark_mask(self) -> int:
        return self.NftablesMarkMask if self._nft() else self.IptablesMarkMask

    def table_refresh_interval(self) -> float:
        return self.NftablesRefreshInterval if self._nft() else self.IptablesRefreshInterval

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FelixConfig) and _comparable(self._values) == _comparable(other._values)
                and self.errors == other.errors)

    def differs_only_in(self, other: "FelixConfig", names: frozenset[str]) -> bool:
        """Whether every parameter outside ``names`` (and every error) is the same."""
        mine, theirs = _comparable(self._values), _comparable(other._values)
        return self.errors == other.errors and all(
            mine.get(k) == theirs.get(k) for k in mine.keys() | theirs.keys() if k not in names)

    def __hash__(self) -> int:  # pragma: no cover - configs are compared, not hashed
        return hash(tuple(sorted(_comparable(self._values).items())))

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, *,
                global_config: Mapping[str, str] | None = None,
                host_config: Mapping[str, str] | None = None,
                file_config: Mapping[str, str] | None = None,
                selector_config: Mapping[str, str] | None = None) -> "FelixConfig":
        """Layer the sources: defaults < global < selector-scoped < host < config file <
        ``FELIX_*`` environment, as Felix ranks them.

        ``global_config``, ``selector_config`` (the FelixConfiguration whose nodeSelector
        matches this host) and ``host_config`` are v1 strings (``v1_config_from_spec``),
        ``file_config`` the config file's (``load_config_file``); unknown names are
        ignored, as Felix ignores parameters it does not have. Local parameters (the
        datastore connection and the like) come only from the file and the environment.
        """
        values = {p.name: p.default for p in _PARAMS}
        sources: dict[str, str] = {}
        problems: list[str] = []
        errors: list[str] = []
        layers = [(SOURCE_GLOBAL, global_config or {}), (SOURCE_SELECTOR, selector_config or {}),
                  (SOURCE_HOST, host_config or {}),
                  (SOURCE_FILE, file_config or {}), (SOURCE_ENV, _env_params(env or {}))]
        for source, raw_values in layers:
            for raw_name, raw in raw_values.items():
                param = PARAMS.get(raw_name.lower())
                if param is None:
                    continue
                if param.local and source not in (SOURCE_ENV, SOURCE_FILE):
                    continue
                if raw == "":
                    continue  # an empty value is ignored, as Felix does
                if raw.lower() == "none":
                    if param.non_zero:
                        errors.append(f"{source}: {_fail(param.name, raw, 'it cannot be none')}")
                        continue
                    value = _zero(param)
                else:
                    try:
                        value = param.parse(raw)
                    except ValueError as exc:
                        failure = f"{source}: {_fail(param.name, raw, str(exc))}"
                        if param.die_on_fail:
                            errors.append(failure)
                            continue
                        # As Felix: the default takes the bad value's place, at its priority.
                        problems.append(failure)
                        value = param.default
                values[param.name] = value
                sources[param.name] = source
        for problem in problems:
            log.warning("bad configuration value replaced with the default (%s)", problem)
        for error in errors:
            log.error("configuration value the agent cannot run with (%s)", error)
        return cls(values, sources, problems, errors)


class ConfigFileError(ValueError):
    """A Felix config file that cannot be read or parsed; the message names the file."""


def load_config_file(path: str | os.PathLike) -> dict[str, str]:
    """Felix's config file (LoadConfigFile): go-ini's format (``parse_ini``), every
    section's keys merged (a later duplicate wins, with a warning), ``None`` meaning the
    parameter's zero value as in any source. An absent file is no configuration."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigFileError(f"cannot read Felix config file {path}: {exc}") from exc
    values: dict[str, str] = {}
    for name, value in parse_ini(data, str(path)):
        if name in values:
            log.warning("Felix config file %s: %s is set more than once; the last one wins", path, name)
        values[name] = value
    return values


def parse_ini(data: bytes, source: str = "<config>") -> list[tuple[str, str]]:
    """(key, value) pairs of an INI text as go-ini reads it with its default options
    (Felix's ``ini.Load``): a UTF-8 BOM skipped and any bytes accepted; lines trimmed on
    the left; ``#`` and ``;`` lines are comments; ``[section]`` headers (the sections
    themselves do not matter to Felix); ``key = value`` or ``key: value`` split at the
    first ``=`` or ``:``; a value cut at its first ``#`` or ``;`` (inline comment),
    trimmed, then stripped of one pair of surrounding quotes (``'`` or ``"``, not
    occurring inside); a value ending in ``\\`` continues on the next line; a value
    opened with three double quotes or a backquote runs, raw, to its closing one."""
    text = data.decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = text.splitlines()
    out: list[tuple[str, str]] = []
    n = 0
    while n < len(lines):
        line = lines[n].lstrip()
        n += 1
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if "]" not in line:
                raise ConfigFileError(f"cannot parse Felix config file {source}: line {n}: unclosed section: {line}")
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            raise ConfigFileError(f"cannot parse Felix config file {source}: line {n}: "
                                  f"key-value delimiter not found: {line}")
        key, rest = line[:cut].strip(), line[cut + 1:].lstrip()
        if not key:
            raise ConfigFileError(f"cannot parse Felix config file {source}: line {n}: empty key")
        for quote in ('"""', "`"):
            if rest.startswith(quote) and len(rest) > (3 if quote == '"""' else 1):
                body = rest[len(quote):]
                while quote not in body and n < len(lines):
                    body += "\n" + lines[n]
                    n += 1
                if quote not in body:
                    raise ConfigFileError(f"cannot parse Felix config file {source}: line {n}: "
                                          f"no closing {quote} for {key}")
                out.append((key, body[:body.index(quote)]))
                break
        else:
            value = rest.strip()
            while value.endswith("\\"):
                value = value[:-1] + (lines[n].strip() if n < len(lines) else "")
                n += 1
            comment = min((i for i in (value.find("#"), value.find(";")) if i >= 0), default=-1)
            if comment >= 0:
                value = value[:comment].strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" and value[0] not in value[1:-1]:
                value = value[1:-1]
            out.append((key, value))
    return out


def config_file_values(env: Mapping[str, str]) -> dict[str, str]:
    """The values of this node's Felix config file (``$CALICO_CONFIG_DIR/felix.cfg``, the
    image ships Calico's); one that cannot be used is logged and counts as empty, so a
    bad file never stops the agent (Felix would keep retrying to start)."""
    path = Path(env.get("CALICO_CONFIG_DIR") or "/etc/calico") / CONFIG_FILE_NAME
    try:
        return load_config_file(path)
    except ConfigFileError as exc:
        log.error("%s; its settings are ignored", exc)
        return {}


def _asked(config: FelixConfig, name: str) -> bool:
    """Whether a parameter's effective value differs from Felix's default."""
    value, default = config.as_dict()[name], PARAMS[name.lower()].default
    return _comparable({name: value}) != _comparable({name: default})


def unsupported_features(config: FelixConfig) -> list[str]:
    """What the configuration asks for that this agent does not do, each with what it
    does instead (the agent logs them at start, so the difference is never silent).

    Each Felix parameter the agent does not act on is named here when it is set to a
    value other than Felix's default, or is covered by the warning of the feature it
    belongs to (a BPF map size only matters with BPFEnabled, a Typha certificate only
    with TyphaAddr...); tests/test_felix_params_coverage.py holds the whole list."""
    out = []
    if config.BPFEnabled:
        out.append("BPFEnabled: there is no eBPF dataplane; iptables is programmed instead, and "
                   "kube-proxy must stay in charge of services (the BPF* parameters are not used)")
    if config.NFTablesMode == "Enabled":
        out.append("NFTablesMode=Enabled: there is no native nftables dataplane; iptables rules are "
                   "programmed instead (through iptables-nft when that backend is chosen), with the "
                   "Nftables* actions, mark mask and refresh interval")
    for name in ("WireguardEnabled", "WireguardEnabledV6"):
        if getattr(config, name):
            out.append(f"{name}: WireGuard encryption is not built; traffic between nodes is not encrypted "
                       "(the Wireguard* parameters are not used)")
    ranges = [name for name in ("RouteTableRange", "RouteTableRanges") if _asked(config, name)]
    if ranges:
        out.append(f"{'/'.join(ranges)}: Felix v3.32 allocates only WireGuard's routing tables from these "
                   "ranges, and WireGuard is not built; the agent uses no routing table of its own")
    if config.FlowLogsGoldmaneServer:
        out.append("FlowLogsGoldmaneServer: flow logs are not built; no flows are reported")
    if config.FlowLogsLocalReporter == "Enabled":
        out.append("FlowLogsLocalReporter=Enabled: flow logs are not built; no flows are reported to the "
                   "local socket")
    if config.PolicySyncPathPrefix:
        out.append("PolicySyncPathPrefix: the policy sync API (application layer policy) is not built")
    if config.LogFilePath and "LogFilePath" in config.sources:
        out.append(f"LogFilePath={config.LogFilePath}: the agent writes no log file of its own; its log goes to "
                   "stdout, which supervisord keeps in $CALICO_LOG_DIR/felix/current")
    if config.LogFilePath and _asked(config, "LogSeverityFile"):
        out.append(f"LogSeverityFile={config.LogSeverityFile}: the agent writes no log file of its own; "
                   "LogSeverityScreen sets the level of its only log, stdout")
    if config.LogSeveritySys and "LogSeveritySys" in config.sources:
        out.append(f"LogSeveritySys={config.LogSeveritySys}: the agent does not log to syslog")
    if config.AWSSrcDstCheck != "DoNothing":
        out.append(f"AWSSrcDstCheck={config.AWSSrcDstCheck}: the agent does not call AWS's EC2 API; set the "
                   "instances' source/destination check yourself (it must be off for unencapsulated routing)")
    if config.TyphaAddr or config.TyphaK8sServiceName:
        out.append("Typha (TyphaAddr/TyphaK8sServiceName): Typha is not supported; the agent follows the "
                   "datastore directly (the other Typha* parameters are not used)")
    if not config.UseInternalDataplaneDriver:
        out.append(f"UseInternalDataplaneDriver=false: external dataplane drivers (DataplaneDriver="
                   f"{config.DataplaneDriver}) are not supported; the agent programs its own dataplane")
    if _asked(config, "NetlinkTimeoutSecs"):
        out.append(f"NetlinkTimeoutSecs={config.NetlinkTimeoutSecs:g}: netlink requests are not given a "
                   "timeout of their own; a request the kernel does not answer waits")
    if config.XDPEnabled and "XDPEnabled" in config.sources:
        out.append("XDPEnabled: XDP acceleration is not built; host endpoints' untracked deny rules drop "
                   "packets in the raw table instead")
    xdp = [name for name in ("GenericXDPEnabled", "XDPRefreshInterval") if _asked(config, name)]
    if xdp:
        out.append(f"{', '.join(xdp)}: XDP acceleration is not built; there is no XDP state to program or refresh")
    if config.SidecarAccelerationEnabled:
        out.append("SidecarAccelerationEnabled: sockmap acceleration of sidecar traffic is not built; "
                   "that traffic takes the normal path")
    if _asked(config, "Variant"):
        out.append(f"Variant={config.Variant}: Felix would keep its dataplane inactive for a variant other "
                   "than Calico; the agent programs it as usual")
    go = [f"{name}={getattr(config, name)}" for name in ("GoGCThreshold", "GoMemoryLimitMB", "GoMaxProcs")
          if _asked(config, name)]
    if go:
        out.append(f"{', '.join(go)}: Go runtime settings have no counterpart in this Python agent; "
                   "its garbage collector keeps its own tuning")
    if config.UsageReportingEnabled and "UsageReportingEnabled" in config.sources:
        out.append("UsageReportingEnabled: the agent sends no usage reports to projectcalico.org "
                   "(ClusterGUID, ClusterType and CalicoVersion are not reported)")
    usage = [name for name in ("UsageReportingInitialDelaySecs", "UsageReportingIntervalSecs")
             if _asked(config, name)]
    if usage:
        out.append(f"{', '.join(usage)}: the agent sends no usage reports")
    debug = [name for name in _DEBUG_PARAMS if _asked(config, name)]
    if debug:
        out.append(f"{', '.join(debug)}: Felix's debugging aids (profile files, the pprof server on "
                   "DebugHost:DebugPort, simulated hangs, panics and data races) are not built")
    return out


# Felix's debugging parameters that ask for something (DebugDisableLogDropping asks for
# what the agent always does: it never drops log lines).
_DEBUG_PARAMS = ("DebugMemoryProfilePath", "DebugCPUProfilePath", "DebugSimulateCalcGraphHangAfter",
                 "DebugSimulateDataplaneHangAfter", "DebugSimulateDataplaneApplyDelay", "DebugPanicAfter",
                 "DebugSimulateDataRace", "DebugPort")


_DATASTORE_PARAMS = ("DatastoreType", "EtcdAddr", "EtcdScheme", "EtcdEndpoints", "EtcdKeyFile", "EtcdCertFile",
                     "EtcdCaFile")


def datastore_env(env: Mapping[str, str], file_config: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the agent builds its datastore client from: ``env`` with Felix's
    own datastore settings from its config file or ``FELIX_*`` variables laid over the
    libcalico-go ones (Felix's DatastoreConfig): ``DatastoreType``; ``EtcdEndpoints``, else
    ``EtcdScheme://EtcdAddr`` when ``EtcdAddr`` is set (either makes the datastore etcdv3);
    ``EtcdKeyFile``, ``EtcdCertFile`` and ``EtcdCaFile``. Values that do not parse are
    left out (the resolution reports them)."""
    out = dict(env)
    names = {n.lower() for n in _DATASTORE_PARAMS}
    config = FelixConfig.resolve({k: v for k, v in env.items() if k.upper().startswith("FELIX_")
                                  and k[len("FELIX_"):].lower() in names},
                                 file_config={k: v for k, v in (file_config or {}).items() if k.lower() in names})

    def set_(name: str, value: str) -> None:
        out["CALICO_" + name] = value  # (CALICO_<NAME> wins over <NAME>, node.config._lookup)
        log.info("Overriding %s from felix config to %s", name, value)

    if "DatastoreType" in config.sources:
        set_("DATASTORE_TYPE", config.DatastoreType)
    if "EtcdEndpoints" in config.sources and config.EtcdEndpoints:
        set_("ETCD_ENDPOINTS", ",".join(config.EtcdEndpoints))
        set_("DATASTORE_TYPE", "etcdv3")
    elif "EtcdAddr" in config.sources:
        set_("ETCD_ENDPOINTS", f"{config.EtcdScheme}://{config.EtcdAddr}")
        set_("DATASTORE_TYPE", "etcdv3")
    for name, target in (("EtcdKeyFile", "ETCD_KEY_FILE"), ("EtcdCertFile", "ETCD_CERT_FILE"),
                         ("EtcdCaFile", "ETCD_CA_CERT_FILE")):
        if name in config.sources:
            set_(target, getattr(config, name))
    return out


def parse_value(name: str, raw: str | None) -> Any:
    """One parameter's raw text as Felix parses it (``None`` gives the zero value); None
    when it is empty or does not parse."""
    if not raw:
        return None
    param = PARAMS[name.lower()]
    try:
        return _zero(param) if raw.lower() == "none" else param.parse(raw)
    except ValueError:
        return None


def local_value(name: str, env: Mapping[str, str], file_config: Mapping[str, str]) -> Any:
    """A parameter from the two local sources, the environment over the config file, as
    Felix parses it (None when neither sets it usably): for the few the calculation must
    know before the datastore's configuration is read."""
    for raw_values in (_env_params(env), file_config):
        for raw_name, raw in raw_values.items():
            if raw_name.lower() == name.lower():
                value = parse_value(name, raw)
                if value is not None:
                    return value
    return None


def openstack_active(config: FelixConfig) -> bool:
    """Whether Felix's OpenStack special cases apply (Felix's OpenstackActive): the cluster
    type says OpenStack, or, for OpenStack plugins that do not set it, the metadata address
    or port is not the default, or the workload interfaces include ``tap``."""
    if "openstack" in config.ClusterType.lower():
        return True
    if config.MetadataAddr not in ("", "127.0.0.1"):
        return True
    if config.MetadataPort not in (0, 8775):
        return True
    return "tap" in config.InterfacePrefix


def openstack_metadata_ip(config: FelixConfig) -> str:
    """The metadata service's address for the special-case rules, when ``MetadataAddr`` is
    an address (Felix parses it as an IP: a host name means no metadata rules). Those
    rules are IPv4 ones, and the parameter only admits IPv4 literals."""
    try:
        return str(ipaddress.IPv4Address(config.MetadataAddr))
    except ValueError:
        return ""


def _env_params(env: Mapping[str, str]) -> dict[str, str]:
    return {k[len("FELIX_"):]: v for k, v in env.items() if k.upper().startswith("FELIX_")}


def _zero(param: Param) -> Any:
    default = param.default
    if isinstance(default, bool):
        return False
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return type(default)(0)
    if isinstance(default, tuple):
        return ()
    if isinstance(default, str):
        return ""
    return None


def _comparable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(p.pattern for p in v) if isinstance(v, tuple) and v and isinstance(v[0], re.Pattern)
                else v.pattern if isinstance(v, re.Pattern) else v) for k, v in values.items()}
