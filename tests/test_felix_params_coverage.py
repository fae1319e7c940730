"""Every Felix configuration parameter is either acted on by the policy agent or named in
its start-up warning when it asks for something the agent does not do: none is silently
ignored. Also the parameters this coverage work implemented: Felix's own datastore
settings (DatastoreType, Etcd*), the Nftables* settings NFTablesMode=Enabled uses, and
LogDebugFilenameRegex."""
from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pytest

from netns import Namespace
from node.config import datastore_config_from_env
from node.felix import config as fc
from node.felix.agent import DebugFileFilter, apply_debug_file_filter
from node.felix.config import FelixConfig, datastore_env, unsupported_features
from node.felix.dataplane.iptables import IptablesDataplane
from node.felix.dataplane.iptables import from_config as iptables_from_config
from node.felix.dryrun import dry_run

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "felix_golden"
IFACES = {"eth0": ["10.0.0.1"]}

# Every parameter of Felix v3.32.1, in the order felix/config/config_params.go declares
# them (the fields of its Config struct with a ``config:"..."`` tag), with how the agent
# covers it:
#   implemented  the agent acts on it as Felix does;
#   inert        nothing for the agent to act on: Felix v3.32.1 on Linux does nothing with
#                it either, or the agent always behaves as its one meaningful value asks;
#   warned       unsupported_features names it when it asks for something (the value
#                given is such a value, used by the test below);
#   group        only used by Felix when the named (warned) parameter turns its feature on,
#                and that parameter's warning covers it.
FELIX_V3_32_1_PARAMETERS: dict[str, tuple[str, str]] = {
    "UseInternalDataplaneDriver": ("warned", 'false'),
    "DataplaneDriver": ("group", "UseInternalDataplaneDriver"),
    "DataplaneWatchdogTimeout": ("implemented", ""),
    "WireguardEnabled": ("warned", 'true'),
    "WireguardEnabledV6": ("warned", 'true'),
    "WireguardListeningPort": ("group", "WireguardEnabled"),
    "WireguardListeningPortV6": ("group", "WireguardEnabled"),
    "WireguardRoutingRulePriority": ("group", "WireguardEnabled"),
    "WireguardInterfaceName": ("group", "WireguardEnabled"),
    "WireguardInterfaceNameV6": ("group", "WireguardEnabled"),
    "WireguardMTU": ("group", "WireguardEnabled"),
    "WireguardMTUV6": ("group", "WireguardEnabled"),
    "WireguardHostEncryptionEnabled": ("group", "WireguardEnabled"),
    "WireguardPersistentKeepAlive": ("group", "WireguardEnabled"),
    "WireguardThreadingEnabled": ("group", "WireguardEnabled"),
    "NFTablesMode": ("warned", 'Enabled'),
    "BPFEnabled": ("warned", 'true'),
    "BPFDisableUnprivileged": ("group", "BPFEnabled"),
    "BPFJITHardening": ("group", "BPFEnabled"),
    "BPFLogLevel": ("group", "BPFEnabled"),
    "BPFConntrackLogLevel": ("group", "BPFEnabled"),
    "BPFConntrackCleanupMode": ("group", "BPFEnabled"),
    "BPFConntrackTimeouts": ("group", "BPFEnabled"),
    "BPFLogFilters": ("group", "BPFEnabled"),
    "BPFCTLBLogFilter": ("group", "BPFEnabled"),
    "BPFDataIfacePattern": ("group", "BPFEnabled"),
    "BPFL3IfacePattern": ("group", "BPFEnabled"),
    "BPFConnectTimeLoadBalancingEnabled": ("group", "BPFEnabled"),
    "BPFConnectTimeLoadBalancing": ("group", "BPFEnabled"),
    "BPFHostNetworkedNATWithoutCTLB": ("group", "BPFEnabled"),
    "BPFExternalServiceMode": ("group", "BPFEnabled"),
    "BPFDSROptoutCIDRs": ("group", "BPFEnabled"),
    "BPFKubeProxyIptablesCleanupEnabled": ("group", "BPFEnabled"),
    "BPFKubeProxyMinSyncPeriod": ("group", "BPFEnabled"),
    "BPFKubeProxyHealthzPort": ("group", "BPFEnabled"),
    "BPFExtToServiceConnmark": ("group", "BPFEnabled"),
    "BPFPSNATPorts": ("group", "BPFEnabled"),
    "BPFMapSizeNATFrontend": ("group", "BPFEnabled"),
    "BPFMapSizeNATBackend": ("group", "BPFEnabled"),
    "BPFMapSizeNATAffinity": ("group", "BPFEnabled"),
    "BPFMapSizeRoute": ("group", "BPFEnabled"),
    "BPFMapSizeConntrack": ("group", "BPFEnabled"),
    "BPFMapSizePerCPUConntrack": ("group", "BPFEnabled"),
    "BPFMapSizeConntrackScaling": ("group", "BPFEnabled"),
    "BPFMapSizeConntrackCleanupQueue": ("group", "BPFEnabled"),
    "BPFMapSizeIPSets": ("group", "BPFEnabled"),
    "BPFMapSizeIfState": ("group", "BPFEnabled"),
    "BPFHostConntrackBypass": ("group", "BPFEnabled"),
    "BPFEnforceRPF": ("group", "BPFEnabled"),
    "BPFPolicyDebugEnabled": ("group", "BPFEnabled"),
    "BPFForceTrackPacketsFromIfaces": ("group", "BPFEnabled"),
    "BPFDisableGROForIfaces": ("group", "BPFEnabled"),
    "BPFExcludeCIDRsFromNAT": ("group", "BPFEnabled"),
    "BPFRedirectToPeer": ("group", "BPFEnabled"),
    "BPFAttachType": ("group", "BPFEnabled"),
    "BPFExportBufferSizeMB": ("group", "BPFEnabled"),
    "BPFProfiling": ("group", "BPFEnabled"),
    "IstioAmbientMode": ("implemented", ""),
    "IstioDSCPMark": ("implemented", ""),
    "CgroupV2Path": ("inert", 'not read by Felix (its BPF init container uses it)'),
    "DebugBPFCgroupV2": ("group", "BPFEnabled"),
    "DatastoreType": ("implemented", ""),
    "FelixHostname": ("implemented", ""),
    "EtcdAddr": ("implemented", ""),
    "EtcdScheme": ("implemented", ""),
    "EtcdKeyFile": ("implemented", ""),
    "EtcdCertFile": ("implemented", ""),
    "EtcdCaFile": ("implemented", ""),
    "EtcdEndpoints": ("implemented", ""),
    "TyphaAddr": ("warned", 'typha:5473'),
    "TyphaK8sServiceName": ("warned", 'calico-typha'),
    "TyphaK8sNamespace": ("group", "TyphaAddr"),
    "TyphaReadTimeout": ("group", "TyphaAddr"),
    "TyphaWriteTimeout": ("group", "TyphaAddr"),
    "TyphaKeyFile": ("group", "TyphaAddr"),
    "TyphaCertFile": ("group", "TyphaAddr"),
    "TyphaCAFile": ("group", "TyphaAddr"),
    "TyphaCN": ("group", "TyphaAddr"),
    "TyphaURISAN": ("group", "TyphaAddr"),
    "Ipv6Support": ("implemented", ""),
    "IptablesBackend": ("implemented", ""),
    "RouteRefreshInterval": ("implemented", ""),
    "InterfaceRefreshInterval": ("implemented", ""),
    "DeviceRouteSourceAddress": ("implemented", ""),
    "DeviceRouteSourceAddressIPv6": ("implemented", ""),
    "DeviceRouteProtocol": ("implemented", ""),
    "RemoveExternalRoutes": ("implemented", ""),
    "ProgramClusterRoutes": ("implemented", ""),
    "IPForwarding": ("implemented", ""),
    "IptablesRefreshInterval": ("implemented", ""),
    "IptablesPostWriteCheckIntervalSecs": ("implemented", ""),
    "IptablesLockProbeIntervalMillis": ("implemented", ""),
    "FeatureDetectOverride": ("implemented", ""),
    "FeatureGates": ("inert", 'no gate is read anywhere in Felix v3.32.1'),
    "IpsetsRefreshInterval": ("implemented", ""),
    "MaxIpsetSize": ("implemented", ""),
    "XDPRefreshInterval": ("warned", '30'),
    "PolicySyncPathPrefix": ("warned", '/var/run/nodeagent'),
    "NetlinkTimeoutSecs": ("warned", '5'),
    "MetadataAddr": ("implemented", ""),
    "MetadataPort": ("implemented", ""),
    "OpenstackRegion": ("implemented", ""),
    "InterfacePrefix": ("implemented", ""),
    "InterfaceExclude": ("implemented", ""),
    "ChainInsertMode": ("implemented", ""),
    "DefaultEndpointToHostAction": ("implemented", ""),
    "IptablesFilterAllowAction": ("implemented", ""),
    "IptablesMangleAllowAction": ("implemented", ""),
    "IptablesFilterDenyAction": ("implemented", ""),
    "LogPrefix": ("implemented", ""),
    "LogActionRateLimit": ("implemented", ""),
    "LogActionRateLimitBurst": ("implemented", ""),
    "LogFilePath": ("warned", '/var/log/calico/other.log'),
    "LogSeverityFile": ("warned", 'DEBUG'),
    "LogSeverityScreen": ("implemented", ""),
    "LogSeveritySys": ("warned", 'DEBUG'),
    "LogDebugFilenameRegex": ("implemented", ""),
    "VXLANEnabled": ("implemented", ""),
    "VXLANPort": ("implemented", ""),
    "VXLANVNI": ("implemented", ""),
    "VXLANMTU": ("implemented", ""),
    "VXLANMTUV6": ("implemented", ""),
    "IPv4VXLANTunnelAddr": ("implemented", ""),
    "IPv6VXLANTunnelAddr": ("implemented", ""),
    "VXLANTunnelMACAddr": ("implemented", "reaches the VXLAN device from the Node, as in Felix"),
    "VXLANTunnelMACAddrV6": ("implemented", "reaches the VXLAN device from the Node, as in Felix"),
    "IpInIpEnabled": ("implemented", ""),
    "IpInIpMtu": ("implemented", ""),
    "IpInIpTunnelAddr": ("implemented", ""),
    "FloatingIPs": ("implemented", ""),
    "WindowsManageFirewallRules": ("inert", 'Windows only: a no-op in Felix on Linux'),
    "AllowVXLANPacketsFromWorkloads": ("implemented", ""),
    "AllowIPIPPacketsFromWorkloads": ("implemented", ""),
    "AWSSrcDstCheck": ("warned", 'Disable'),
    "ServiceLoopPrevention": ("implemented", ""),
    "WorkloadSourceSpoofing": ("implemented", ""),
    "ReportingIntervalSecs": ("implemented", ""),
    "ReportingTTLSecs": ("implemented", ""),
    "EndpointReportingEnabled": ("implemented", ""),
    "EndpointReportingDelaySecs": ("implemented", ""),
    "EndpointStatusPathPrefix": ("implemented", ""),
    "IptablesMarkMask": ("implemented", ""),
    "DisableConntrackInvalidCheck": ("implemented", ""),
    "HealthEnabled": ("implemented", ""),
    "HealthPort": ("implemented", ""),
    "HealthHost": ("implemented", ""),
    "HealthTimeoutOverrides": ("implemented", ""),
    "PrometheusMetricsEnabled": ("implemented", ""),
    "PrometheusMetricsHost": ("implemented", ""),
    "PrometheusMetricsPort": ("implemented", ""),
    "PrometheusGoMetricsEnabled": ("implemented", ""),
    "PrometheusProcessMetricsEnabled": ("implemented", ""),
    "PrometheusWireGuardMetricsEnabled": ("group", "WireguardEnabled"),
    "PrometheusMetricsCAFile": ("implemented", ""),
    "PrometheusMetricsCertFile": ("implemented", ""),
    "PrometheusMetricsKeyFile": ("implemented", ""),
    "PrometheusMetricsClientAuth": ("implemented", ""),
    "FailsafeInboundHostPorts": ("implemented", ""),
    "FailsafeOutboundHostPorts": ("implemented", ""),
    "FlowLogsFlushInterval": ("group", "FlowLogsGoldmaneServer"),
    "FlowLogsCollectorDebugTrace": ("group", "FlowLogsGoldmaneServer"),
    "FlowLogsGoldmaneServer": ("warned", 'goldmane:7443'),
    "FlowLogsLocalReporter": ("warned", 'Enabled'),
    "FlowLogsPolicyEvaluationMode": ("group", "FlowLogsGoldmaneServer"),
    "KubeNodePortRanges": ("implemented", ""),
    "NATPortRange": ("implemented", ""),
    "NATOutgoingAddress": ("implemented", ""),
    "NATOutgoingExclusions": ("implemented", ""),
    "UsageReportingEnabled": ("warned", 'true'),
    "UsageReportingInitialDelaySecs": ("warned", '10'),
    "UsageReportingIntervalSecs": ("warned", '3600'),
    "ClusterGUID": ("group", "UsageReportingEnabled"),
    "ClusterType": ("implemented", ""),
    "CalicoVersion": ("group", "UsageReportingEnabled"),
    "ExternalNodesCIDRList": ("implemented", ""),
    "DebugMemoryProfilePath": ("warned", '/tmp/felix-mem.pprof'),
    "DebugCPUProfilePath": ("warned", '/tmp/felix-cpu.pprof'),
    "DebugDisableLogDropping": ("inert", "the agent never drops log lines, which is what true asks for"),
    "DebugSimulateCalcGraphHangAfter": ("warned", '5'),
    "DebugSimulateDataplaneHangAfter": ("warned", '5'),
    "DebugSimulateDataplaneApplyDelay": ("warned", '1'),
    "DebugPanicAfter": ("warned", '60'),
    "DebugSimulateDataRace": ("warned", 'true'),
    "DebugHost": ("group", "DebugPort"),
    "DebugPort": ("warned", '6060'),
    "RouteSource": ("implemented", ""),
    "RouteTableRange": ("warned", '1-10'),
    "RouteTableRanges": ("warned", '1-10,20-30'),
    "RouteSyncDisabled": ("implemented", ""),
    "IPv4NormalRoutePriority": ("implemented", ""),
    "IPv4ElevatedRoutePriority": ("implemented", ""),
    "IPv6NormalRoutePriority": ("implemented", ""),
    "IPv6ElevatedRoutePriority": ("implemented", ""),
    "LiveMigrationRouteConvergenceTime": ("implemented", ""),
    "IptablesNATOutgoingInterfaceFilter": ("implemented", ""),
    "SidecarAccelerationEnabled": ("warned", 'true'),
    "XDPEnabled": ("warned", 'true'),
    "GenericXDPEnabled": ("warned", 'true'),
    "Variant": ("warned", 'CalicoEnterprise'),
    "GoGCThreshold": ("warned", '100'),
    "GoMemoryLimitMB": ("warned", '512'),
    "GoMaxProcs": ("warned", '2'),
    "MTUIfacePattern": ("implemented", ""),
    "NftablesRefreshInterval": ("implemented", ""),
    "NftablesFilterAllowAction": ("implemented", ""),
    "NftablesMangleAllowAction": ("implemented", ""),
    "NftablesFilterDenyAction": ("implemented", ""),
    "NftablesMarkMask": ("implemented", ""),
    "RequireMTUFile": ("implemented", ""),
    "BPFMaglevMaxEndpointsPerService": ("group", "BPFEnabled"),
    "BPFMaglevMaxServices": ("group", "BPFEnabled"),
}

CONFIG_PARAMS_GO = ("/work/.mirror/projectcalico+calico/repo", "v3.32.1:felix/config/config_params.go")


def _kind(name: str) -> str:
    return FELIX_V3_32_1_PARAMETERS[name][0]


def test_every_felix_parameter_is_implemented_or_warned():
    implemented = {n for n, (k, _) in FELIX_V3_32_1_PARAMETERS.items() if k in ("implemented", "inert")}
    warned = {n for n, (k, _) in FELIX_V3_32_1_PARAMETERS.items() if k in ("warned", "group")}
    assert len(FELIX_V3_32_1_PARAMETERS) == 211
    silent = set(FELIX_V3_32_1_PARAMETERS) - implemented - warned
    assert not silent, f"neither implemented nor warned about: {sorted(silent)}"
    # Each group hangs off a parameter that is itself warned about.
    for name, (kind, leader) in FELIX_V3_32_1_PARAMETERS.items():
        if kind == "group":
            assert _kind(leader) == "warned", (name, leader)
    # Whatever the agent parses is classified, and every implemented or warned parameter
    # the agent needs to read (not a group member or inert one) is parsed.
    parsed = {p.name for p in fc.PARAMS.values()}
    assert parsed <= set(FELIX_V3_32_1_PARAMETERS), sorted(parsed - set(FELIX_V3_32_1_PARAMETERS))
    for name, (kind, _) in FELIX_V3_32_1_PARAMETERS.items():
        if kind in ("implemented", "warned"):
            assert name in parsed, f"{name} is {kind} but the agent does not parse it"


def test_the_table_is_config_params_go():
    """The table above against the file it cites, where Calico's source is at hand."""
    repo, spec = CONFIG_PARAMS_GO
    if not Path(repo).exists():
        pytest.skip("Calico's source is not checked out beside this repository")
    text = subprocess.run(["git", "-C", repo, "show", spec], capture_output=True, text=True, check=True).stdout
    names = re.findall(r"^\s*([A-Za-z0-9]+)\s+[^`\n]+`config:\"", text, re.M)
    assert names == list(FELIX_V3_32_1_PARAMETERS)


def _source_outside_declarations() -> str:
    """The agent's source with the lines that only declare or rename parameters removed."""
    out = []
    for path in sorted((ROOT / "node").rglob("*.py")):
        for line in path.read_text().splitlines():
            if re.match(r'\s*Param\("', line) or re.match(r'\s*"\w+": "\w+",\s*$', line):
                continue
            out.append(line)
    return "\n".join(out)


def test_no_parameter_is_parsed_and_then_never_used():
    """A parsed parameter is read somewhere (an implemented one by the code that acts on
    it, a warned one by unsupported_features)."""
    text = _source_outside_declarations()
    unused = [p.name for p in fc.PARAMS.values() if not re.search(rf"\b{p.name}\b", text)]
    assert not unused, f"parsed but never read: {unused}"


def test_defaults_warn_about_nothing():
    assert unsupported_features(FelixConfig.resolve({})) == []


@pytest.mark.parametrize("name", [n for n, (k, _) in FELIX_V3_32_1_PARAMETERS.items() if k == "warned"])
def test_each_warned_parameter_is_named_when_set(name):
    value = FELIX_V3_32_1_PARAMETERS[name][1]
    config = FelixConfig.resolve({f"FELIX_{name.upper()}": value})
    assert name in config.sources and not config.problems and not config.errors
    warnings = unsupported_features(config)
    assert any(re.search(rf"\b{name}\b", w) for w in warnings), (name, warnings)
    # From the datastore too, where the parameter is not local.
    if not fc.PARAMS[name.lower()].local:
        config = FelixConfig.resolve({}, global_config={name: value})
        assert any(re.search(rf"\b{name}\b", w) for w in unsupported_features(config)), name


def test_group_warnings_say_the_group_is_unused():
    warnings = unsupported_features(FelixConfig.resolve({"FELIX_BPFENABLED": "true", "FELIX_WIREGUARDENABLED": "true",
                                                         "FELIX_TYPHAADDR": "typha:5473",
                                                         "FELIX_USEINTERNALDATAPLANEDRIVER": "false"}))
    text = "\n".join(warnings)
    assert "the BPF* parameters are not used" in text
    assert "the Wireguard* parameters are not used" in text
    assert "the other Typha* parameters are not used" in text
    assert "DataplaneDriver=calico-iptables-plugin" in text


def test_v3_field_names_of_the_new_parameters():
    v1 = fc.v1_config_from_spec({"netlinkTimeout": "15s", "usageReportingInterval": "1h",
                                 "usageReportingInitialDelay": "30s", "xdpEnabled": True,
                                 "nftablesFilterAllowAction": "Return"})
    assert v1 == {"NetlinkTimeoutSecs": "15", "UsageReportingIntervalSecs": "3600",
                  "UsageReportingInitialDelaySecs": "30", "XdpEnabled": "true",
                  "NftablesFilterAllowAction": "Return"}
    config = FelixConfig.resolve({}, global_config=v1)
    assert (config.NetlinkTimeoutSecs, config.UsageReportingIntervalSecs, config.XDPEnabled,
            config.NftablesFilterAllowAction) == (15.0, 3600.0, True, "RETURN")


# --------------------------------------------------------------------------------------
# Felix's own datastore settings (Felix's DatastoreConfig).

def test_datastore_env_overrides():
    base = {"ETCD_ENDPOINTS": "http://10.0.0.9:2379", "DATASTORE_TYPE": "kubernetes"}
    assert datastore_env(base) == base  # nothing of Felix's: libcalico-go's variables as they are
    env = datastore_env({**base, "FELIX_ETCDENDPOINTS": "https://a:2379/, https://b:2379"})
    cfg = datastore_config_from_env(env)
    assert cfg.datastore_type == "etcdv3"
    assert cfg.etcd_endpoints == ("https://a:2379", "https://b:2379")
    # EtcdAddr with EtcdScheme when EtcdEndpoints is not set; the TLS files.
    env = datastore_env(base, {"EtcdAddr": "10.1.1.1:4001", "EtcdScheme": "https", "EtcdCaFile": "/ca.pem",
                               "EtcdCertFile": "/c.pem", "EtcdKeyFile": "/k.pem"})
    assert (env["CALICO_ETCD_ENDPOINTS"], env["CALICO_DATASTORE_TYPE"]) == ("https://10.1.1.1:4001", "etcdv3")
    assert (env["CALICO_ETCD_CA_CERT_FILE"], env["CALICO_ETCD_CERT_FILE"], env["CALICO_ETCD_KEY_FILE"]) == (
        "/ca.pem", "/c.pem", "/k.pem")
    # EtcdEndpoints wins over EtcdAddr; the environment over the config file.
    env = datastore_env({"FELIX_ETCDENDPOINTS": "http://e:2379"}, {"EtcdAddr": "f:2379", "EtcdEndpoints": "http://g:1"})
    assert env["CALICO_ETCD_ENDPOINTS"] == "http://e:2379"
    # DatastoreType alone; the datastore's FelixConfiguration cannot move the connection.
    assert datastore_env({"FELIX_DATASTORETYPE": "kubernetes", **base})["CALICO_DATASTORE_TYPE"] == "kubernetes"
    assert FelixConfig.resolve({}, global_config={"EtcdAddr": "x:1"}).sources == {}


def test_bad_endpoint_lists_are_refused():
    for bad in ("http://a:1/path", "http://user@a:1", "http://a:1,https://b:1", "a:1"):
        config = FelixConfig.resolve({"FELIX_ETCDENDPOINTS": bad})
        assert config.problems and config.EtcdEndpoints == (), bad


def test_dry_run_reaches_the_datastore_through_felix_etcd_addr(etcd_clean_config):
    # ETCD_ENDPOINTS points nowhere; Felix's EtcdAddr (over it) at the real etcd.
    target = etcd_clean_config.etcd_endpoints[0].split("://")[1]
    env = {"ETCD_ENDPOINTS": "http://127.0.0.1:1", "FELIX_ETCDADDR": target}
    text = dry_run("node1", env, interfaces=IFACES, sync_timeout=20)
    assert "*filter" in text and ":cali-FORWARD" in text
    from node.felix.dryrun import DryRunError
    with pytest.raises(DryRunError):
        dry_run("node1", {"ETCD_ENDPOINTS": "http://127.0.0.1:1"}, interfaces=IFACES, sync_timeout=1)


# --------------------------------------------------------------------------------------
# NFTablesMode=Enabled: Felix's nftables dataplane uses the Nftables* settings; the agent
# programs iptables with them.

NFT = {"FELIX_NFTABLESMODE": "Enabled", "FELIX_NFTABLESFILTERALLOWACTION": "RETURN",
       "FELIX_NFTABLESMANGLEALLOWACTION": "RETURN", "FELIX_NFTABLESFILTERDENYACTION": "REJECT",
       "FELIX_NFTABLESMARKMASK": "0xff00", "FELIX_NFTABLESREFRESHINTERVAL": "33"}
IPT = {"FELIX_NFTABLESMODE": "Auto", "FELIX_IPTABLESFILTERALLOWACTION": "RETURN",
       "FELIX_IPTABLESMANGLEALLOWACTION": "RETURN", "FELIX_IPTABLESFILTERDENYACTION": "REJECT",
       "FELIX_IPTABLESMARKMASK": "0xff00", "FELIX_IPTABLESREFRESHINTERVAL": "33"}


def test_nftables_settings_replace_the_iptables_ones_in_nftables_mode():
    config = FelixConfig.resolve(NFT)
    assert (config.filter_allow_action(), config.mangle_allow_action(), config.filter_deny_action(),
            config.mark_mask(), config.table_refresh_interval()) == ("RETURN", "RETURN", "REJECT", 0xFF00, 33.0)
    # Without NFTablesMode=Enabled they are Felix's iptables settings, the Nftables* ones unused.
    config = FelixConfig.resolve({**NFT, "FELIX_NFTABLESMODE": "Auto"})
    assert (config.filter_allow_action(), config.filter_deny_action(), config.mark_mask(),
            config.table_refresh_interval()) == ("ACCEPT", "DROP", 0xFFFF0000, 180.0)
    dp = iptables_from_config(4, {}, FelixConfig.resolve(NFT), backend="legacy", exists=lambda n: True)
    assert dp.refresh_interval == 33.0
    # A bad value stops the agent, as the iptables ones do.
    assert FelixConfig.resolve({"FELIX_NFTABLESFILTERDENYACTION": "LOG"}).errors


@pytest.mark.parametrize("scenario", ["two-tiers", "host-endpoint"])
def test_nftables_mode_renders_with_the_nftables_settings(scenario):
    files = [str(GOLDEN / scenario / "resources.yaml")]
    nft = dry_run("node1", NFT, files=files, interfaces=IFACES)
    assert nft == dry_run("node1", IPT, files=files, interfaces=IFACES)
    assert nft != dry_run("node1", {}, files=files, interfaces=IFACES)
    # The deny action, and marks from the 0xff00 mask (accept 0x100 instead of 0x10000).
    assert "--jump REJECT" in nft and "--mark 0x100/0x100" in nft and "0x10000/0x10000" not in nft


def test_nftables_mode_settings_programmed_into_the_kernel():
    from test_felix_iptables_kernel import desired

    # (A REJECT deny action cannot be programmed: the raw table's reverse-path check takes
    # it and REJECT is a filter-table target, with the Iptables* settings as with these.)
    dd = desired("two-tiers", 4, {**NFT, "FELIX_NFTABLESFILTERDENYACTION": "DROP"})
    with Namespace("nftp") as ns:
        ns.run("ipset", "restore", "-exist", input=dd.render_ipsets())
        dp = IptablesDataplane(4, dd.tables, backend="legacy", run=_runner(ns), post_write_interval=3600)
        stats = dp.apply()
        assert stats.restore_errors == 0
        saved = ns.run("iptables-legacy-save", "-t", "filter").stdout
        ours = [line for line in saved.splitlines() if line.startswith("-A cali-")]
        # The allow action RETURN where ACCEPT would be, and the marks from 0xff00.
        assert any("--mark 0x100/0x100 -j RETURN" in line for line in ours), ours
        assert not any(line.endswith("-j ACCEPT") for line in ours if "cali-pi-" in line or "cali-po-" in line)
        assert not any("0x10000/0x10000" in line for line in ours)


def _runner(ns: Namespace):
    from node.felix.dataplane.iptables import subprocess_runner

    def run(argv, stdin=None):
        return subprocess_runner(["ip", "netns", "exec", ns.name, *argv], stdin)
    return run


# --------------------------------------------------------------------------------------
# LogDebugFilenameRegex.

def test_debug_lines_only_from_matching_files(caplog):
    config = FelixConfig.resolve({"FELIX_LOGDEBUGFILENAMEREGEX": "params_cov"})
    assert isinstance(config.LogDebugFilenameRegex, re.Pattern)
    assert FelixConfig.resolve({}).LogDebugFilenameRegex is None
    root = logging.getLogger()
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        apply_debug_file_filter(config.LogDebugFilenameRegex)
        logging.getLogger("node.felix.test").debug("kept: this file matches")
        apply_debug_file_filter(re.compile("^routes\\.py$"))
        assert sum(isinstance(f, DebugFileFilter) for f in handler.filters) == 1  # replaced, not added
        logging.getLogger("node.felix.test").debug("dropped: this file does not match")
        logging.getLogger("node.felix.test").info("kept: not a debug line")
        apply_debug_file_filter(None)
        logging.getLogger("node.felix.test").debug("kept: no filter")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert seen == ["kept: this file matches", "kept: not a debug line", "kept: no filter"]
