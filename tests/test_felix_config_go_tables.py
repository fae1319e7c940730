"""Felix v3.32.1's configuration-parsing tables replayed against node/felix/config.py.

Each case cites the Go entry it translates (felix/config/config_params_test.go "CPT:<line>",
felix/config/param_types_test.go "PTT:<line>", felix/stringutils/parse_keyvalue_list_test.go
"KVT:<line>"), or, marked "param_types.go", a behaviour read from the parser itself
(felix/config/param_types.go, config_params.go's tags and regexps). As in the Go
"Config parsing" table, a value is fed as an environment variable and the parsed field,
and whether the agent reports an error (die-on-fail or ``none`` for a non-zero
parameter), are compared; a value Felix replaces with its default is a "problem" here.
"""
from __future__ import annotations

import pytest

from node.felix.config import (
    SOURCE_ENV,
    SOURCE_FILE,
    SOURCE_GLOBAL,
    SOURCE_HOST,
    FelixConfig,
    ProtoPort,
    openstack_active,
)

DEFAULT_IN = (ProtoPort("tcp", 22), ProtoPort("udp", 68), ProtoPort("tcp", 179), ProtoPort("tcp", 2379),
              ProtoPort("tcp", 2380), ProtoPort("tcp", 5473), ProtoPort("tcp", 6443), ProtoPort("tcp", 6666),
              ProtoPort("tcp", 6667))
DEFAULT_OUT = (ProtoPort("udp", 53), ProtoPort("udp", 67)) + DEFAULT_IN[2:]


def _env(name: str, raw: str) -> FelixConfig:
    return FelixConfig.resolve({f"FELIX_{name.upper()}": raw})


def _plain(value):
    """Regexps as their patterns, for comparison."""
    if isinstance(value, tuple) and value and hasattr(value[0], "pattern"):
        return tuple(p.pattern for p in value)
    return value.pattern if hasattr(value, "pattern") else value


# (cite, parameter, raw, expected parsed value, outcome): outcome "ok" (no problem, no
# error), "default" (replaced by the default, reported), "error" (the agent refuses it).
PARSING = [
    ("CPT:252", "EndpointStatusPathPrefix", "", "/var/run/calico", "ok"),
    ("CPT:254", "FelixHostname", "hostname", "hostname", "ok"),
    ("CPT:255", "FelixHostname", "hostname.foo.bar.com", "hostname.foo.bar.com", "ok"),
    ("CPT:256", "FelixHostname", "1.2.3.4", "1.2.3.4", "ok"),
    ("param_types.go hostname (HostnameRegexp)", "FelixHostname", "host name", "", "default"),
    ("CPT:272", "TyphaAddr", "", "", "ok"),
    ("CPT:273", "TyphaAddr", "foo:1234", "foo:1234", "ok"),
    ("param_types.go authority (AuthorityRegexp)", "TyphaAddr", "foo", "", "default"),
    ("CPT:274", "TyphaK8sServiceName", "", "", "ok"),
    ("CPT:275", "TyphaK8sServiceName", "calico-typha", "calico-typha", "ok"),
    ("CPT:280", "InterfacePrefix", "tap", ("tap",), "ok"),
    ("CPT:281", "InterfacePrefix", "tap,cali", ("tap", "cali"), "ok"),
    ("param_types.go iface-list (IfaceListRegexp has no '.')", "InterfacePrefix", "cali.x", ("cali",), "error"),
    ("param_types.go iface-list", "InterfacePrefix", "cali,", ("cali",), "error"),
    ("CPT:283", "InterfaceExclude", "kube-ipvs0", ("^kube\\-ipvs0$",), "ok"),
    ("CPT:286", "InterfaceExclude", "kube-ipvs0,dummy", ("^kube\\-ipvs0$", "^dummy$"), "ok"),
    ("CPT:290", "InterfaceExclude", "/kube-ipvs/", ("kube-ipvs",), "ok"),
    ("CPT:293", "InterfaceExclude", "kube-ipvs0,dummy,/^veth.*$/", ("^kube\\-ipvs0$", "^dummy$", "^veth.*$"), "ok"),
    ("CPT:298", "InterfaceExclude", "/^kube.*/,/veth/", ("^kube.*", "veth"), "ok"),
    ("CPT:302", "InterfaceExclude", "kube,//", ("^kube\\-ipvs0$",), "default"),
    ("CPT:305", "InterfaceExclude", "/kube,/,dummy", ("^kube\\-ipvs0$",), "default"),
    ("CPT:308", "InterfaceExclude", "/^kube\\K/", ("^kube\\-ipvs0$",), "default"),
    ("param_types.go iface-list-regexp (no whitespace in /.../)", "InterfaceExclude", "/a b/", ("^kube\\-ipvs0$",),
     "default"),
    ("param_types.go iface-list-regexp (NonRegexpIfaceElemRegexp has no '.')", "InterfaceExclude", "eth0.100",
     ("^kube\\-ipvs0$",), "default"),
    ("CPT:312", "ChainInsertMode", "append", "append", "ok"),
    ("CPT:313", "ChainInsertMode", "Append", "append", "ok"),
    ("CPT:315", "IptablesPostWriteCheckIntervalSecs", "1.5", 1.5, "ok"),
    ("CPT:317", "IptablesLockProbeIntervalMillis", "123", 0.123, "ok"),
    ("CPT:319", "IptablesLockProbeIntervalMillis", "garbage", 0.05, "default"),
    ("CPT:322", "DefaultEndpointToHostAction", "RETURN", "RETURN", "ok"),
    ("CPT:324", "DefaultEndpointToHostAction", "ACCEPT", "ACCEPT", "ok"),
    ("CPT:327", "IptablesFilterAllowAction", "RETURN", "RETURN", "ok"),
    ("CPT:329", "IptablesMangleAllowAction", "RETURN", "RETURN", "ok"),
    ("CPT:332", "IptablesFilterDenyAction", "DROP", "DROP", "ok"),
    ("CPT:333", "IptablesFilterDenyAction", "REJECT", "REJECT", "ok"),
    ("CPT:335", "LogFilePath", "/tmp/felix.log", "/tmp/felix.log", "ok"),
    ("CPT:337", "LogSeverityFile", "debug", "DEBUG", "ok"),
    ("CPT:338", "LogSeverityFile", "warning", "WARNING", "ok"),
    ("CPT:339", "LogSeverityFile", "error", "ERROR", "ok"),
    ("CPT:340", "LogSeverityFile", "fatal", "FATAL", "ok"),
    ("param_types.go oneof (LogSeverityFile)", "LogSeverityFile", "verbose", "INFO", "default"),
    ("CPT:342", "LogSeverityScreen", "debug", "DEBUG", "ok"),
    ("CPT:343", "LogSeverityScreen", "warning", "WARNING", "ok"),
    ("CPT:344", "LogSeverityScreen", "error", "ERROR", "ok"),
    ("CPT:345", "LogSeverityScreen", "fatal", "FATAL", "ok"),
    ("CPT:347", "LogSeveritySys", "debug", "DEBUG", "ok"),
    ("CPT:348", "LogSeveritySys", "warning", "WARNING", "ok"),
    ("CPT:349", "LogSeveritySys", "error", "ERROR", "ok"),
    ("CPT:350", "LogSeveritySys", "fatal", "FATAL", "ok"),
    ("CPT:355", "IpInIpEnabled", "true", True, "ok"),
    ("CPT:356", "IpInIpEnabled", "y", True, "ok"),
    ("CPT:357", "IpInIpEnabled", "True", True, "ok"),
    ("param_types.go *bool", "IpInIpEnabled", "maybe", None, "default"),
    ("CPT:359", "IpInIpMtu", "1234", 1234, "ok"),
    ("CPT:360", "IpInIpTunnelAddr", "10.0.0.1", "10.0.0.1", "ok"),
    ("CPT:363", "ReportingIntervalSecs", "31", 31.0, "ok"),
    ("CPT:364", "ReportingTTLSecs", "91", 91.0, "ok"),
    ("CPT:366", "EndpointReportingEnabled", "true", True, "ok"),
    ("CPT:368", "EndpointReportingEnabled", "yes", True, "ok"),
    ("CPT:370", "EndpointReportingDelaySecs", "10", 10.0, "ok"),
    ("CPT:373", "MaxIpsetSize", "12345", 12345, "ok"),
    ("param_types.go int (MaxIpsetSize's tag has no range)", "MaxIpsetSize", "0", 0, "ok"),
    ("CPT:374", "IptablesMarkMask", "0xf0f0", 0xF0F0, "ok"),
    ("CPT:376", "HealthEnabled", "true", True, "ok"),
    ("CPT:377", "HealthHost", "127.0.0.1", "127.0.0.1", "ok"),
    ("param_types.go host-address (HostAddressRegexp)", "HealthHost", "local host", "localhost", "default"),
    ("CPT:378", "HealthPort", "1234", 1234, "ok"),
    ("param_types.go int(0:65535)", "HealthPort", "65536", 9099, "default"),
    ("CPT:380", "PrometheusMetricsEnabled", "true", True, "ok"),
    ("CPT:381", "PrometheusMetricsHost", "10.0.0.1", "10.0.0.1", "ok"),
    ("param_types.go host-address (at most 64 characters)", "PrometheusMetricsHost", "h" * 65, "", "default"),
    ("CPT:382", "PrometheusMetricsPort", "1234", 1234, "ok"),
    ("CPT:383", "PrometheusGoMetricsEnabled", "false", False, "ok"),
    ("CPT:384", "PrometheusProcessMetricsEnabled", "false", False, "ok"),
    ("CPT:386", "FailsafeInboundHostPorts", "1,2,3,4", tuple(ProtoPort("tcp", p) for p in (1, 2, 3, 4)), "ok"),
    ("CPT:393", "FailsafeOutboundHostPorts", "1,2,3,4", tuple(ProtoPort("tcp", p) for p in (1, 2, 3, 4)), "ok"),
    ("CPT:400", "FailsafeInboundHostPorts", "tcp:1,udp:2", (ProtoPort("tcp", 1), ProtoPort("udp", 2)), "ok"),
    ("CPT:405", "FailsafeOutboundHostPorts", "tcp:1,udp:2", (ProtoPort("tcp", 1), ProtoPort("udp", 2)), "ok"),
    ("CPT:410", "FailsafeInboundHostPorts", "tcp:0.0.0.0/0:1,udp:0.0.0.0/0:2",
     (ProtoPort("tcp", 1, "0.0.0.0/0"), ProtoPort("udp", 2, "0.0.0.0/0")), "ok"),
    ("CPT:415", "FailsafeOutboundHostPorts", "tcp:0.0.0.0/0:1,udp:0.0.0.0/0:2",
     (ProtoPort("tcp", 1, "0.0.0.0/0"), ProtoPort("udp", 2, "0.0.0.0/0")), "ok"),
    ("CPT:420", "FailsafeInboundHostPorts", "tcp:[::/0]:1,udp:[::/0]:2",
     (ProtoPort("tcp", 1, "::/0"), ProtoPort("udp", 2, "::/0")), "ok"),
    ("CPT:425", "FailsafeOutboundHostPorts", "tcp:[::/0]:1,udp:[::/0]:2",
     (ProtoPort("tcp", 1, "::/0"), ProtoPort("udp", 2, "::/0")), "ok"),
    ("CPT:430", "FailsafeInboundHostPorts", "1,udp:2", (ProtoPort("tcp", 1), ProtoPort("udp", 2)), "ok"),
    ("CPT:435", "FailsafeOutboundHostPorts", "1,udp:2", (ProtoPort("tcp", 1), ProtoPort("udp", 2)), "ok"),
    ("CPT:440", "FailsafeInboundHostPorts", "1,udp:0.0.0.0/0:2",
     (ProtoPort("tcp", 1), ProtoPort("udp", 2, "0.0.0.0/0")), "ok"),
    ("CPT:445", "FailsafeOutboundHostPorts", "1,udp:0.0.0.0/0:2",
     (ProtoPort("tcp", 1), ProtoPort("udp", 2, "0.0.0.0/0")), "ok"),
    ("CPT:450", "FailsafeInboundHostPorts", "foo:1", DEFAULT_IN, "error"),
    ("CPT:464", "FailsafeInboundHostPorts", "tcp:0.0.0.0/0:1:bar", DEFAULT_IN, "error"),
    ("param_types.go port-list (ParseCIDROrIP takes no netmask)", "FailsafeInboundHostPorts",
     "tcp:10.0.0.0/255.0.0.0:22", DEFAULT_IN, "error"),
    ("CPT:479", "FailsafeInboundHostPorts", "none", (), "ok"),
    ("CPT:480", "FailsafeOutboundHostPorts", "none", (), "ok"),
    ("CPT:482", "FailsafeInboundHostPorts", "", DEFAULT_IN, "ok"),
    ("CPT:495", "FailsafeOutboundHostPorts", "", DEFAULT_OUT, "ok"),
    ("CPT:513", "KubeNodePortRanges", "", ((30000, 32767),), "ok"),
    ("CPT:518", "KubeNodePortRanges", "30001:30002,30030:30040,30500:30600",
     ((30001, 30002), (30030, 30040), (30500, 30600)), "ok"),
    ("param_types.go portrange-list (items are not trimmed)", "KubeNodePortRanges", "30001:30002, 30500",
     ((30000, 32767),), "default"),
    ("param_types.go portrange-list (an empty item is an error)", "KubeNodePortRanges", "30001:30002,",
     ((30000, 32767),), "default"),
    ("param_types.go portrange-list (a named port is refused)", "KubeNodePortRanges", "http",
     ((30000, 32767),), "default"),
    ("CPT:526", "IptablesNATOutgoingInterfaceFilter", "cali-123", "cali-123", "ok"),
    ("CPT:527", "IptablesNATOutgoingInterfaceFilter", "cali@123", "", "default"),
    ("CPT:529", "HealthTimeoutOverrides", "", (), "ok"),
    ("CPT:530", "HealthTimeoutOverrides", "a=90s", (("a", 90.0),), "ok"),
    ("CPT:531", "HealthTimeoutOverrides", "a=90s, b=10ms", (("a", 90.0), ("b", 0.01)), "ok"),
    ("CPT:533", "HealthTimeoutOverrides", "a=0", (("a", 0.0),), "ok"),
    ("CPT:536", "HealthTimeoutOverrides", "foo=bar", (), "default"),
    ("CPT:546", "RequireMTUFile", "true", True, "ok"),
    ("CPT:547", "RequireMTUFile", "y", True, "ok"),
    ("CPT:548", "RequireMTUFile", "True", True, "ok"),
    # Numbers: Go's strconv.ParseInt(raw, 0, 64) / ParseUint(raw, 0, 32) / ParseFloat.
    ("param_types.go int (base 0: hex)", "VXLANPort", "0x12b5", 4789, "ok"),
    ("param_types.go int (base 0: a leading 0 is octal)", "VXLANVNI", "010", 8, "ok"),
    ("param_types.go int (base 0: 08 is not octal)", "VXLANVNI", "08", 4096, "default"),
    ("param_types.go int (base 0: underscores)", "VXLANVNI", "4_096", 4096, "ok"),
    ("param_types.go int (no spaces)", "VXLANPort", " 4790", 4789, "default"),
    ("param_types.go int (64-bit)", "VXLANMTU", "9223372036854775808", 0, "default"),
    ("param_types.go int (DeviceRouteProtocol's tag has no range)", "DeviceRouteProtocol", "300", 300, "ok"),
    ("config_params.go LogActionRateLimitBurst int(0,9999): 0 and up or 9999 and up",
     "LogActionRateLimitBurst", "10000", 10000, "ok"),
    ("config_params.go LogActionRateLimitBurst int(0,9999)", "LogActionRateLimitBurst", "-1", 5, "default"),
    ("param_types.go int(1:2147483646)", "IPv4NormalRoutePriority", "0", 1024, "default"),
    ("param_types.go mark-bitmask (ParseUint: no sign)", "IptablesMarkMask", "+0xff", 0xFFFF0000, "error"),
    ("param_types.go mark-bitmask (2 bits)", "IptablesMarkMask", "0x1", 0xFFFF0000, "error"),
    ("param_types.go mark-bitmask (32-bit)", "IptablesMarkMask", "0x1ffffffff", 0xFFFF0000, "error"),
    ("param_types.go seconds (ParseFloat: exponent)", "IptablesRefreshInterval", "1e2", 100.0, "ok"),
    ("param_types.go seconds (ParseFloat: hex float)", "IptablesRefreshInterval", "0x1p4", 16.0, "ok"),
    ("param_types.go seconds (ParseFloat: no spaces)", "IptablesRefreshInterval", "10 ", 180.0, "default"),
    ("param_types.go seconds (ParseFloat: overflow is ErrRange)", "IptablesRefreshInterval", "1e400", 180.0,
     "default"),
    # Addresses: net.ParseIP and utils.IsIPv4/IsIPv6.
    ("PTT:102", "DeviceRouteSourceAddress", "10.1.1.2", "10.1.1.2", "ok"),
    ("PTT:103", "DeviceRouteSourceAddress", "aabc::1111", "", "default"),
    ("PTT:100", "DeviceRouteSourceAddress", " ", "", "default"),
    ("param_types.go ipv4 (an IPv4-mapped address is IPv4)", "DeviceRouteSourceAddress", "::ffff:10.1.1.2",
     "10.1.1.2", "ok"),
    ("PTT:122", "DeviceRouteSourceAddressIPv6", "aabc::1111", "aabc::1111", "ok"),
    ("PTT:121", "DeviceRouteSourceAddressIPv6", "10.1.1.2", "", "default"),
    ("PTT:120", "DeviceRouteSourceAddressIPv6", " ", "", "default"),
    ("param_types.go ipv6 (net.ParseIP takes no zone)", "DeviceRouteSourceAddressIPv6", "fe80::1%eth0", "",
     "default"),
    ("param_types.go ipv6 (an IPv4-mapped address is not IPv6)", "DeviceRouteSourceAddressIPv6",
     "::ffff:10.1.1.2", "", "default"),
    # CIDR lists (PTT:44 table) through ExternalNodesCIDRList, which is die-on-fail.
    ("PTT:57", "ExternalNodesCIDRList", "1.1.1.1", ("1.1.1.1/32",), "ok"),
    ("PTT:58", "ExternalNodesCIDRList", "1.1.1.1/32", ("1.1.1.1/32",), "ok"),
    ("PTT:59", "ExternalNodesCIDRList", "1.1.1.1/24", ("1.1.1.0/24",), "ok"),
    ("PTT:60", "ExternalNodesCIDRList", "1.1.1.1/24, 2.2.2.2", ("1.1.1.0/24", "2.2.2.2/32"), "ok"),
    ("param_types.go cidr-list (no netmask form)", "ExternalNodesCIDRList", "10.0.0.0/255.0.0.0", (), "error"),
    ("param_types.go cidr-list (only spaces are trimmed)", "ExternalNodesCIDRList", "10.0.0.0/8\t", (), "error"),
    # keyvaluelist (PTT:64 table, KVT) through FeatureDetectOverride.
    ("PTT:76", "FeatureDetectOverride", "  ", (), "ok"),
    ("PTT:77", "FeatureDetectOverride", "key=value", (("key", "value"),), "ok"),
    ("PTT:80", "FeatureDetectOverride", "key=value,malformed", (), "default"),
    ("PTT:81", "FeatureDetectOverride", "  key=value,  v2= x ,,,,", (("key", "value"), ("v2", " x ")), "ok"),
    ("KVT:32", "FeatureDetectOverride", "key=value, none=", (("key", "value"), ("none", "")), "ok"),
    ("KVT:40", "FeatureDetectOverride", "key=key = value,v2=7", (("key", "key = value"), ("v2", "7")), "ok"),
    ("param_types.go keyvaluelist (\\w is ASCII in Go)", "FeatureDetectOverride", "clé=1", (), "default"),
    # Strings, files, regexps, region, log rate, route tables, DSCP, oneof.
    ("param_types.go string (StringRegexp: no newline)", "LogPrefix", "a\nb", "calico-packet", "default"),
    ("param_types.go file (any text)", "EndpointStatusPathPrefix", "/run/x y", "/run/x y", "ok"),
    ("param_types.go log-rate", "LogActionRateLimit", "10/second", "10/second", "ok"),
    ("param_types.go log-rate (no trailing newline)", "LogActionRateLimit", "10/second\n", "", "default"),
    ("param_types.go log-rate", "LogActionRateLimit", "0/second", "", "default"),
    ("CPT:767", "OpenstackRegion", "region1", "region1", "ok"),
    ("CPT:770", "OpenstackRegion", "RegionOne", "", "error"),
    ("CPT:773", "OpenstackRegion", "us/east", "", "error"),
    ("CPT:776", "OpenstackRegion", "my_region", "", "error"),
    ("CPT:779", "OpenstackRegion", "my-region-has-a-very-long-and-extremely-interesting-name", "", "error"),
    ("param_types.go region (IsDNS1123Label: no trailing newline)", "OpenstackRegion", "region1\n", "", "error"),
    ("CPT:782", "RouteTableRange", "1-250", (1, 250), "ok"),
    ("CPT:785", "RouteTableRange", "1-255", None, "error"),
    ("CPT:788", "RouteTableRanges", "1-10000", ((1, 10000),), "ok"),
    ("CPT:792", "RouteTableRanges", "4294967295-4294967296", (), "error"),
    ("CPT:796", "RouteTableRanges", "1-100000000", (), "error"),
    ("CPT:799", "RouteTableRanges", "1-65535,99999-99999", (), "error"),
    ("CPT:802", "RouteTableRanges", "1-65535,1-2147483647", (), "error"),
    ("CPT:805", "RouteTableRanges", "abcde", (), "error"),
    ("param_types.go route-table-ranges (\\d is ASCII in Go)", "RouteTableRanges", "\u0661-\u0662", (), "error"),
    ("param_types.go dscp", "IstioDSCPMark", "af21", 18, "ok"),
    ("param_types.go dscp", "IstioDSCPMark", "63", 63, "ok"),
    ("param_types.go dscp", "IstioDSCPMark", "64", 23, "default"),
    ("CPT:207", "IptablesBackend", "Auto", "auto", "ok"),
    ("param_types.go portrange (0 is a port)", "NATPortRange", "0:100", (0, 100), "ok"),
    ("param_types.go portrange", "NATPortRange", "100:99", None, "default"),
    ("param_types.go portrange", "NATPortRange", "65536", None, "default"),
]


@pytest.mark.parametrize("cite,name,raw,expected,outcome", PARSING, ids=[f"{c[0]}:{c[1]}={c[2]!r}" for c in PARSING])
def test_config_parsing_table(cite, name, raw, expected, outcome):
    c = _env(name, raw)
    assert _plain(getattr(c, name)) == expected, cite
    assert bool(c.problems) == (outcome == "default"), (cite, c.problems)
    assert bool(c.errors) == (outcome == "error"), (cite, c.errors)


def test_endpoint_status_path_prefix_none_in_config_file():
    """CPT:214: ``none`` in the config file gives the zero value, the empty path."""
    c = FelixConfig.resolve({}, file_config={"EndpointStatusPathPrefix": "none"})
    assert c.EndpointStatusPathPrefix == "" and c.sources["EndpointStatusPathPrefix"] == SOURCE_FILE


def test_iptables_backend_auto_from_the_datastore():
    """CPT:203: ``Auto`` from a FelixConfiguration is the default, ``auto``."""
    c = FelixConfig.resolve({}, host_config={"IptablesBackend": "Auto"})
    assert c.IptablesBackend == "auto" and not c.problems


def test_override_ignores_lower_priority_sources():
    """CPT:160-178: a higher source's value stands whatever a lower one says."""
    c = FelixConfig.resolve({"FELIX_BPFENABLED": "false"}, host_config={"BPFEnabled": "true"})
    assert c.BPFEnabled is False and c.sources["BPFEnabled"] == SOURCE_ENV


def test_none_for_a_non_zero_parameter_is_an_error():
    """config_params.go resolve: ``none`` for a non-zero parameter sets Config.Err."""
    c = _env("MaxIpsetSize", "none")
    assert c.errors and c.MaxIpsetSize == 1048576


def test_bad_value_takes_the_default_at_its_priority():
    """config_params.go resolve: a bad value is replaced by the default at its own source,
    so a valid value from a lower source does not show through."""
    c = FelixConfig.resolve({"FELIX_LOGSEVERITYFILE": "verbose"}, global_config={"LogSeverityFile": "debug"})
    assert c.LogSeverityFile == "INFO" and c.sources["LogSeverityFile"] == SOURCE_ENV


def test_die_on_fail_in_a_lower_source_is_still_an_error():
    """config_params.go resolve parses every source's value before checking priority."""
    c = FelixConfig.resolve({"FELIX_INTERFACEPREFIX": "cali"}, global_config={"InterfacePrefix": "cali.x"})
    assert c.errors and c.InterfacePrefix == ("cali",)


def test_local_parameters_ignore_the_datastore():
    """config_params.go resolve: local-only parameters (FelixHostname, TyphaAddr, ...) from
    a datastore source are ignored."""
    c = FelixConfig.resolve({}, global_config={"TyphaAddr": "foo:1234", "FelixHostname": "x"},
                            host_config={"DatastoreType": "kubernetes"})
    assert (c.TyphaAddr, c.FelixHostname, c.DatastoreType) == ("", "", "etcdv3")
    assert SOURCE_GLOBAL not in c.sources.values() and SOURCE_HOST not in c.sources.values()


# CPT:551-589 "OpenStack heuristic tests": (cluster type, metadata addr, port, prefixes).
OPENSTACK = [
    ("CPT:571", None, None, None, None, False),
    ("CPT:573", "openstack", None, None, None, True),
    ("CPT:574", "openstack,k8s", None, None, None, True),
    ("CPT:575", "k8s,openstack", None, None, None, True),
    ("CPT:576", "k8s,openstack,k8s", None, None, None, True),
    ("CPT:578", None, "10.0.0.1", None, None, True),
    ("CPT:579", None, "none", None, None, False),
    ("CPT:580", None, "", None, None, False),
    ("CPT:582", None, None, "1234", None, True),
    ("CPT:583", None, None, "none", None, False),
    ("CPT:585", None, None, None, "tap", True),
    ("CPT:586", None, None, None, "cali,tap", True),
    ("CPT:587", None, None, None, "tap,cali", True),
    ("CPT:588", None, None, None, "cali", False),
]


@pytest.mark.parametrize("cite,cluster_type,addr,port,prefixes,expected", OPENSTACK, ids=[o[0] for o in OPENSTACK])
def test_openstack_heuristic(cite, cluster_type, addr, port, prefixes, expected):
    env = {f"FELIX_{k}": v for k, v in (("CLUSTERTYPE", cluster_type), ("METADATAADDR", addr),
                                        ("METADATAPORT", port), ("INTERFACEPREFIX", prefixes)) if v is not None}
    c = FelixConfig.resolve(env)
    assert not c.errors, cite
    assert openstack_active(c) is expected, cite


# CPT:810-845 "Config InterfaceExclude".
EXCLUDE = [
    ("CPT:819", "", ("^kube\\-ipvs0$",)),
    ("CPT:822", "kube-ipvs0", ("^kube\\-ipvs0$",)),
    ("CPT:825", "kube-ipvs0,veth1", ("^kube\\-ipvs0$", "^veth1$")),
    ("CPT:829", "/^veth.*/", ("^veth.*",)),
    ("CPT:832", "/veth/,/^kube.*/", ("veth", "^kube.*")),
    ("CPT:836", "kube-ipvs0,/veth/,/^kube.*/", ("^kube\\-ipvs0$", "veth", "^kube.*")),
    ("CPT:841", "not.a.valid.interf@e!!", ("^kube\\-ipvs0$",)),
    ("CPT:844", "/^kube\\K/", ("^kube\\-ipvs0$",)),
]


@pytest.mark.parametrize("cite,raw,expected", EXCLUDE, ids=[e[0] for e in EXCLUDE])
def test_interface_exclude(cite, raw, expected):
    c = FelixConfig.resolve({"FELIX_INTERFACEEXCLUDE": raw})
    assert not c.errors, cite
    assert _plain(c.InterfaceExclude) == expected, cite
    for pattern in c.InterfaceExclude:
        assert pattern.search("kube-ipvs0") or pattern.search("veth1") or expected == ("^kube\\-ipvs0$",)


def test_config_copy_layers():
    """CPT:851-866: the environment's LogSeverityScreen and HealthTimeoutOverrides win over
    the global FelixConfiguration's; its other values stay."""
    c = FelixConfig.resolve({"FELIX_LOGSEVERITYSCREEN": "Info", "FELIX_HEALTHTIMEOUTOVERRIDES": "a=6s"},
                            global_config={"LogSeverityScreen": "Debug",
                                           "HealthTimeoutOverrides": "a=10s, b=0,c=50ms",
                                           "DisableConntrackInvalidCheck": "true"})
    assert c.LogSeverityScreen == "INFO" and c.HealthTimeoutOverrides == (("a", 6.0),)
    assert c.DisableConntrackInvalidCheck is True and not c.problems
