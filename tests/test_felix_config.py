"""The policy agent's parameters: Felix's defaults, parsers and source precedence."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from node.felix.config import (
    SOURCE_ENV,
    SOURCE_FILE,
    SOURCE_GLOBAL,
    SOURCE_HOST,
    ConfigFileError,
    FelixConfig,
    config_file_values,
    load_config_file,
    openstack_active,
    unsupported_features,
    openstack_metadata_ip,
    parse_ini,
    ProtoPort,
    parse_port_list,
    v1_config_from_node,
    v1_config_from_spec,
)


def test_defaults_are_felix_v3_32_defaults():
    c = FelixConfig.resolve({})
    assert c.IptablesMarkMask == 0xFFFF0000
    assert c.ChainInsertMode == "insert"
    assert c.DefaultEndpointToHostAction == "DROP"
    assert c.InterfacePrefix == ("cali",)
    assert [p.pattern for p in c.InterfaceExclude] == ["^kube\\-ipvs0$"]
    assert c.IptablesRefreshInterval == 180.0
    assert c.IptablesLockProbeIntervalMillis == 0.05
    assert c.IpsetsRefreshInterval == 90.0
    assert c.MaxIpsetSize == 1048576
    assert c.IPv4NormalRoutePriority == 1024
    assert c.DeviceRouteProtocol == 3
    assert c.VXLANPort == 4789 and c.VXLANVNI == 4096
    assert c.VXLANEnabled is None and c.IpInIpEnabled is None
    assert c.HealthHost == "localhost" and c.HealthPort == 9099 and c.HealthEnabled is False
    assert c.LogPrefix == "calico-packet" and c.LogActionRateLimitBurst == 5
    assert c.FailsafeInboundHostPorts[:2] == (ProtoPort("tcp", 22), ProtoPort("udp", 68))
    assert c.FailsafeOutboundHostPorts[0] == ProtoPort("udp", 53)
    assert len(c.FailsafeInboundHostPorts) == 9
    assert c.problems == [] and c.sources == {}


def test_precedence_env_over_host_over_global():
    c = FelixConfig.resolve(
        {"FELIX_CHAININSERTMODE": "Append", "felix_logprefix": "pfx"},
        global_config={"ChainInsertMode": "insert", "LogPrefix": "global", "VXLANPort": "4790",
                       "IptablesMarkMask": "0xff000000"},
        host_config={"LogPrefix": "host", "VXLANPort": "4791"},
    )
    assert c.ChainInsertMode == "append" and c.sources["ChainInsertMode"] == SOURCE_ENV
    assert c.LogPrefix == "pfx" and c.sources["LogPrefix"] == SOURCE_ENV
    assert c.VXLANPort == 4791 and c.sources["VXLANPort"] == SOURCE_HOST
    assert c.IptablesMarkMask == 0xFF000000 and c.sources["IptablesMarkMask"] == SOURCE_GLOBAL


def test_bad_value_is_replaced_by_the_default_at_its_source():
    """As Felix: a value that does not parse is reported and the parameter's default takes
    its place at that source's priority (so a lower source does not win)."""
    c = FelixConfig.resolve({"FELIX_IPTABLESREFRESHINTERVAL": "abc"}, global_config={"IptablesRefreshInterval": "10"})
    assert c.IptablesRefreshInterval == 180.0 and c.sources["IptablesRefreshInterval"] == SOURCE_ENV
    assert len(c.problems) == 1 and not c.errors
    assert "IptablesRefreshInterval" in c.problems[0] and "'abc'" in c.problems[0]
    assert c.problems[0].startswith(SOURCE_ENV)


def test_die_on_fail_values_are_errors_whatever_their_source():
    """Felix refuses to start when a die-on-fail parameter does not parse, in any source,
    even one a higher source overrides."""
    c = FelixConfig.resolve({"FELIX_IPTABLESMARKMASK": "0xff000000"}, global_config={"IptablesMarkMask": "0x1"})
    assert c.IptablesMarkMask == 0xFF000000
    assert len(c.errors) == 1 and not c.problems
    assert "IptablesMarkMask" in c.errors[0] and "'0x1'" in c.errors[0]
    assert "needs to have 2 bits set" in c.errors[0] and c.errors[0].startswith(SOURCE_GLOBAL)
    for env in ({"FELIX_CHAININSERTMODE": "middle"}, {"FELIX_INTERFACEPREFIX": "none"},
                {"FELIX_FAILSAFEINBOUNDHOSTPORTS": "tcp:99999"}, {"FELIX_EXTERNALNODESCIDRLIST": "10.0.0.0/40"}):
        assert FelixConfig.resolve(env).errors, env
    # none is refused only for non-zero parameters; the others take their zero value.
    assert FelixConfig.resolve({"FELIX_MAXIPSETSIZE": "none"}).errors
    assert FelixConfig.resolve({"FELIX_LOGPREFIX": "none"}).errors == []
    # Errors count in the comparison that decides a restart.
    assert FelixConfig.resolve({"FELIX_CHAININSERTMODE": "middle"}) != FelixConfig.resolve({})


def test_empty_is_ignored_and_none_clears():
    c = FelixConfig.resolve({"FELIX_LOGPREFIX": "", "FELIX_FAILSAFEINBOUNDHOSTPORTS": "none"})
    assert c.LogPrefix == "calico-packet"
    assert c.FailsafeInboundHostPorts == ()


def test_local_parameters_never_come_from_the_datastore():
    c = FelixConfig.resolve({}, global_config={"FelixHostname": "other", "DatastoreType": "kubernetes"})
    assert c.FelixHostname == "" and c.DatastoreType == "etcdv3"


@pytest.mark.parametrize("raw, expected", [
    ("tcp:22,udp:68", (ProtoPort("tcp", 22), ProtoPort("udp", 68))),
    ("22", (ProtoPort("tcp", 22),)),
    ("UDP:10.0.0.0/8:53", (ProtoPort("udp", 53, "10.0.0.0/8"),)),
    ("tcp:[fd00::/8]:22", (ProtoPort("tcp", 22, "fd00::/8"),)),
    ("tcp:10.1.2.3:22", (ProtoPort("tcp", 22, "10.1.2.3/32"),)),
    (" tcp:1 , ,udp:2", (ProtoPort("tcp", 1), ProtoPort("udp", 2))),
])
def test_port_lists(raw, expected):
    assert parse_port_list(raw) == expected


@pytest.mark.parametrize("raw, why", [
    ("sctp:22", "unknown protocol: sctp"), ("tcp:x", "ports should be integers"),
    ("tcp:70000", "range 0-65535"), ("a:b:c:d", "ports should be"), ("tcp:bad:22", "invalid CIDR or IP bad"),
])
def test_bad_port_lists(raw, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_port_list(raw)


def test_bool_and_oneof_spellings():
    c = FelixConfig.resolve({"FELIX_HEALTHENABLED": "Y", "FELIX_DEFAULTENDPOINTTOHOSTACTION": "accept",
                             "FELIX_IPV6SUPPORT": "0", "FELIX_INTERFACEEXCLUDE": "kube-ipvs0,/^veth.*/"})
    assert c.HealthEnabled is True and c.Ipv6Support is False
    assert c.DefaultEndpointToHostAction == "ACCEPT"
    assert [p.pattern for p in c.InterfaceExclude] == ["^kube\\-ipvs0$", "^veth.*"]


def test_v3_spec_becomes_v1_strings():
    spec = {
        "iptablesRefreshInterval": "1m30s", "iptablesLockProbeInterval": "100ms",
        "iptablesPostWriteCheckInterval": "1s", "ipipEnabled": True, "ipipMTU": 1400,
        "chainInsertMode": "Append", "logSeverityScreen": "Info", "ipv6Support": False,
        "failsafeInboundHostPorts": [{"protocol": "TCP", "port": 22}, {"protocol": "UDP", "port": 53, "net": "fd00::/8"},
                                     {"protocol": "TCP", "port": 80, "net": "10.0.0.0/8"}],
        "failsafeOutboundHostPorts": [], "externalNodesList": ["10.0.0.0/24", "10.1.0.0/24"],
        "healthTimeoutOverrides": [{"name": "InternalDataplaneMainLoop", "timeout": "2m0s"}],
        "nodeSelector": "all()", "defaultEndpointToHostAction": "",
    }
    v1 = v1_config_from_spec(spec, {"config.projectcalico.org/LogPrefix": "annotated", "other": "x"})
    assert v1 == {
        "IptablesRefreshInterval": "90", "IptablesLockProbeIntervalMillis": "100",
        "IptablesPostWriteCheckIntervalSecs": "1", "IpInIpEnabled": "true", "IpInIpMtu": "1400",
        "ChainInsertMode": "Append", "LogSeverityScreen": "Info", "Ipv6Support": "false",
        "FailsafeInboundHostPorts": "tcp:22,udp:[fd00::/8]:53,tcp:10.0.0.0/8:80",
        "FailsafeOutboundHostPorts": "none", "ExternalNodesCIDRList": "10.0.0.0/24,10.1.0.0/24",
        "HealthTimeoutOverrides": "InternalDataplaneMainLoop=2m0s", "LogPrefix": "annotated",
    }
    c = FelixConfig.resolve({}, global_config=v1)
    assert c.IptablesRefreshInterval == 90.0 and c.IptablesLockProbeIntervalMillis == 0.1
    assert c.IpInIpEnabled is True and c.ChainInsertMode == "append" and c.LogSeverityScreen == "INFO"
    assert c.FailsafeInboundHostPorts == (ProtoPort("tcp", 22), ProtoPort("udp", 53, "fd00::/8"),
                                          ProtoPort("tcp", 80, "10.0.0.0/8"))
    assert c.FailsafeOutboundHostPorts == ()
    assert c.HealthTimeoutOverrides == (("InternalDataplaneMainLoop", 120.0),)
    assert c.problems == []


def test_node_derived_host_values():
    assert v1_config_from_node({"bgp": {"ipv4Address": "10.0.0.1/24", "ipv4IPIPTunnelAddr": "192.168.0.1"},
                                "ipv4VXLANTunnelAddr": "192.168.1.1", "vxlanTunnelMACAddr": "66:aa:bb:cc:dd:ee"}) == {
        "IpInIpTunnelAddr": "192.168.0.1", "IPv4VXLANTunnelAddr": "192.168.1.1",
        "VXLANTunnelMACAddr": "66:aa:bb:cc:dd:ee"}


@pytest.mark.parametrize("env,active", [
    ({}, False),
    ({"FELIX_CLUSTERTYPE": "k8s,bgp"}, False),
    ({"FELIX_CLUSTERTYPE": "OpenStack,bgp"}, True),  # any case, anywhere in the list
    ({"FELIX_METADATAADDR": "10.0.0.5"}, True),
    ({"FELIX_METADATAADDR": "127.0.0.1"}, False),
    ({"FELIX_METADATAADDR": "metadata.internal"}, True),  # a host name: active, no metadata rules
    ({"FELIX_METADATAPORT": "8775"}, False),
    ({"FELIX_METADATAPORT": "9000"}, True),
    ({"FELIX_METADATAPORT": "0"}, False),
    ({"FELIX_INTERFACEPREFIX": "cali,tap"}, True),
    ({"FELIX_INTERFACEPREFIX": "tapx"}, False),  # only the exact prefix "tap" counts
])
def test_openstack_active_follows_felix_heuristics(env, active):
    assert openstack_active(FelixConfig.resolve(env)) is active


def test_metadata_address_and_port_parse_as_felix_does():
    c = FelixConfig.resolve({})
    assert (c.MetadataAddr, c.MetadataPort, openstack_metadata_ip(c)) == ("127.0.0.1", 8775, "127.0.0.1")
    assert openstack_metadata_ip(FelixConfig.resolve({"FELIX_METADATAADDR": "metadata.internal"})) == ""
    bad = FelixConfig.resolve({"FELIX_METADATAADDR": "fd00::1", "FELIX_METADATAPORT": "70000"},
                              global_config={"MetadataAddr": "10.0.0.9"})
    # Felix's hostname pattern has no ':'; both are die-on-fail: Felix refuses to start.
    assert any("MetadataAddr" in p and "invalid hostname" in p for p in bad.errors), bad.errors
    assert any("MetadataPort" in p for p in bad.errors), bad.errors


def test_config_file_is_felixs_ini_between_the_datastore_and_the_environment(tmp_path, caplog):
    cfg = tmp_path / "felix.cfg"
    cfg.write_text("# Felix's config file\nLogPrefix = top\n[global]\nMetadataAddr = 10.0.0.5\n"
                   "ChainInsertMode = append\n; another comment\nDatastoreType = kubernetes\n"
                   "[more]\nmetadataport = 9000\nLogPrefix = again\n")
    with caplog.at_level(logging.WARNING, logger="node.felix.config"):
        values = load_config_file(cfg)
    assert values == {"LogPrefix": "again", "MetadataAddr": "10.0.0.5", "ChainInsertMode": "append",
                      "DatastoreType": "kubernetes", "metadataport": "9000"}
    assert any("LogPrefix is set more than once" in r.getMessage() for r in caplog.records)
    c = FelixConfig.resolve({"FELIX_CHAININSERTMODE": "insert"}, file_config=values,
                            host_config={"MetadataAddr": "192.0.2.1", "MetadataPort": "1"},
                            global_config={"LogPrefix": "global"})
    assert (c.MetadataAddr, c.MetadataPort, c.ChainInsertMode, c.LogPrefix) == ("10.0.0.5", 9000, "insert", "again")
    assert c.sources["MetadataAddr"] == SOURCE_FILE and c.sources["ChainInsertMode"] == SOURCE_ENV
    assert c.DatastoreType == "kubernetes"  # a local parameter: the file may set it, the datastore may not
    assert load_config_file(tmp_path / "absent.cfg") == {}


def test_the_images_config_file_turns_the_metadata_rules_off():
    """rootfs/etc/calico/felix.cfg says MetadataAddr = None, as Calico's image does: an
    OpenStack host gets its metadata rules only from FELIX_METADATAADDR (or its own file)."""
    shipped = load_config_file(Path(__file__).parents[1] / "rootfs" / "etc" / "calico" / "felix.cfg")
    assert shipped["MetadataAddr"] == "None"
    c = FelixConfig.resolve({"FELIX_INTERFACEPREFIX": "tap"}, file_config=shipped,
                            global_config={"MetadataAddr": "10.0.0.5"})
    assert c.MetadataAddr == "" and openstack_active(c) and openstack_metadata_ip(c) == ""
    c = FelixConfig.resolve({"FELIX_METADATAADDR": "10.0.0.5"}, file_config=shipped)
    assert openstack_metadata_ip(c) == "10.0.0.5"


def test_a_bad_config_file_is_named_and_ignored(tmp_path, caplog):
    (tmp_path / "felix.cfg").write_text("[global\nMetadataAddr = 10.0.0.5\n")
    with pytest.raises(ConfigFileError, match=str(tmp_path / "felix.cfg")):
        load_config_file(tmp_path / "felix.cfg")
    with caplog.at_level(logging.ERROR, logger="node.felix.config"):
        assert config_file_values({"CALICO_CONFIG_DIR": str(tmp_path)}) == {}
    assert any("felix.cfg" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)
    (tmp_path / "felix.cfg").write_text("[global]\nMetadataPort = 9000\n")
    assert config_file_values({"CALICO_CONFIG_DIR": str(tmp_path)}) == {"MetadataPort": "9000"}


def test_features_this_agent_lacks_are_named_when_asked_for():
    assert unsupported_features(FelixConfig.resolve({})) == []
    asked = FelixConfig.resolve({"FELIX_BPFENABLED": "true", "FELIX_NFTABLESMODE": "Enabled",
                                 "FELIX_WIREGUARDENABLED": "true", "FELIX_FLOWLOGSGOLDMANESERVER": "goldmane:7443",
                                 "FELIX_POLICYSYNCPATHPREFIX": "/var/run/nodeagent",
                                 "FELIX_TYPHAK8SSERVICENAME": "calico-typha"},
                                global_config={"WireguardEnabledV6": "true", "AWSSrcDstCheck": "Disable"})
    named = [text.split(":")[0].split("=")[0].split(" ")[0] for text in unsupported_features(asked)]
    assert named == ["BPFEnabled", "NFTablesMode", "WireguardEnabled", "WireguardEnabledV6",
                     "FlowLogsGoldmaneServer", "PolicySyncPathPrefix", "AWSSrcDstCheck", "Typha"]
    # Felix's log file and syslog: said only when a source asks for them (the image's
    # felix.cfg turns them off with None, as calico-node's does).
    assert unsupported_features(FelixConfig.resolve({}, file_config={
        "LogFilePath": "None", "LogSeverityFile": "None", "LogSeveritySys": "None"})) == []
    named = [text.split("=")[0] for text in unsupported_features(FelixConfig.resolve(
        {"FELIX_LOGFILEPATH": "/var/log/calico/felix.log", "FELIX_LOGSEVERITYSYS": "Warning"}))]
    assert named == ["LogFilePath", "LogSeveritySys"]
    # Typha's address is local: the datastore cannot set it.
    assert unsupported_features(FelixConfig.resolve({}, global_config={"TyphaAddr": "10.0.0.1:5473"})) == []
    assert unsupported_features(FelixConfig.resolve({"FELIX_NFTABLESMODE": "Auto"})) == []


@pytest.mark.parametrize("text, expected", [
    # go-ini's defaults, as Felix loads its file.
    (b"MetadataAddr = None # no OpenStack\n", [("MetadataAddr", "None")]),  # inline comments
    (b"MetadataAddr = 10.0.0.5 ; nova\n", [("MetadataAddr", "10.0.0.5")]),
    (b"MetadataPort = 9000\n  [global]\n  HealthEnabled = true\n", [("MetadataPort", "9000"), ("HealthEnabled", "true")]),
    (b"\tLogPrefix:\tcali\n", [("LogPrefix", "cali")]),  # ':' delimits too, indentation ignored
    (b"EtcdEndpoints = http://10.0.0.1:2379\n", [("EtcdEndpoints", "http://10.0.0.1:2379")]),
    (b"A = \"q\"\nB = 'cali'\nC = \"a\"b\"\nD = \"x\n", [("A", "q"), ("B", "cali"), ("C", "\"a\"b\""), ("D", "\"x")]),
    (b"D = one\\\n  two\n", [("D", "onetwo")]),  # continuation
    (b"E = \"\"\"multi\nline # kept\"\"\"\nF = `raw;#`\n", [("E", "multi\nline # kept"), ("F", "raw;#")]),
    (b"\xef\xbb\xbf[global]\n# caf\xe9 \xff\nLogPrefix = x\n", [("LogPrefix", "x")]),  # BOM, any bytes
])
def test_config_file_follows_go_ini(text, expected):
    assert parse_ini(text) == expected


@pytest.mark.parametrize("text, why", [
    (b"[global\nA = 1\n", "unclosed section"),
    (b"[global]\nnot a pair\n", "delimiter not found"),
    (b"E = \"\"\"never closed\n", "no closing"),
])
def test_config_file_errors_name_the_line(text, why, tmp_path):
    (tmp_path / "felix.cfg").write_bytes(text)
    with pytest.raises(ConfigFileError, match=why):
        load_config_file(tmp_path / "felix.cfg")


def test_a_config_file_in_another_encoding_does_not_stop_the_agent(tmp_path):
    (tmp_path / "felix.cfg").write_bytes("[global]\n# métadonnées\nMetadataPort = 9000\n".encode("latin-1"))
    assert config_file_values({"CALICO_CONFIG_DIR": str(tmp_path)}) == {"MetadataPort": "9000"}


@pytest.mark.parametrize("env, value, ok", [
    ({"FELIX_ROUTETABLERANGE": "1-250"}, (1, 250), True),
    ({"FELIX_ROUTETABLERANGE": "0-10"}, None, False),
    ({"FELIX_ROUTETABLERANGE": "10-251"}, None, False),
    ({"FELIX_ROUTETABLERANGE": "20-10"}, None, False),
    ({"FELIX_ROUTETABLERANGES": "1-10,100-200"}, ((1, 10), (100, 200)), True),
    ({"FELIX_ROUTETABLERANGES": "1-250,253-255"}, ((1, 250), (253, 255)), True),  # reserved: Felix only logs
    ({"FELIX_ROUTETABLERANGES": "0-10"}, (), False),
    ({"FELIX_ROUTETABLERANGES": "10-5"}, (), False),
    ({"FELIX_ROUTETABLERANGES": "1-70000"}, (), False),  # more than 65535 tables
    ({"FELIX_ROUTETABLERANGES": "1-4294967296"}, (), False),
    ({"FELIX_ROUTETABLERANGES": "tables"}, (), False),
])
def test_route_table_ranges_are_checked_as_felix_checks_them(env, value, ok):
    """Felix allocates these to WireGuard's routing table, which the agent has not got;
    but a value Felix cannot parse stops Felix (die-on-fail), and so the agent."""
    cfg = FelixConfig.resolve(env)
    name = "RouteTableRanges" if "FELIX_ROUTETABLERANGES" in env else "RouteTableRange"
    assert getattr(cfg, name) == value and (not cfg.errors) is ok


def test_route_table_ranges_from_a_felix_configuration():
    """libcalico-go's converters: {min, max} -> "min-max", a list -> "a-b,c-d"
    (configurationprocessor_test.go: RouteTableRanges {{43, 211}} is "43-211")."""
    v1 = v1_config_from_spec({"routeTableRange": {"min": 1, "max": 250},
                              "routeTableRanges": [{"min": 43, "max": 211}]})
    assert v1 == {"RouteTableRange": "1-250", "RouteTableRanges": "43-211"}
    cfg = FelixConfig.resolve({}, global_config=v1)
    assert (cfg.RouteTableRange, cfg.RouteTableRanges, cfg.errors) == ((1, 250), ((43, 211),), [])


def test_route_table_ranges_validate_as_calicos_type():
    """v3's routeTableRanges is a list of {min, max} (RouteTableIDRange), as Calico's CRD
    has it; a string is refused."""
    from node.errors import ValidationError
    from node.model import from_dict

    doc = {"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"},
           "spec": {"routeTableRanges": [{"min": 1, "max": 10}]}}
    res = from_dict(doc)
    assert v1_config_from_spec(res.spec)["RouteTableRanges"] == "1-10"
    with pytest.raises(ValidationError, match="routeTableRanges"):
        from_dict({**doc, "spec": {"routeTableRanges": "1-10"}})
