"""Field lists of every struct the node reads or writes, in Calico's JSON order.

Each ``S(name, fields)`` is one Go struct of Calico's v3 API (api/pkg/apis/projectcalico/v3
and libcalico-go's internal API): the JSON field names, their order, whether they are
omitted when empty, and the validators Calico applies. The order and omission rules are a
compatibility contract: the datastore bytes we write must equal what libcalico-go writes.

Type notation (see node.model.schema): ``string``, ``bool``, ``int``, ``float``,
``strictstring`` (a string that
no number or boolean converts to), ``duration`` (Go duration string), ``asn`` (AS number), ``protocol`` and ``port``
(number-or-string), ``intorstring``, ``map`` (string to string), ``any`` (kept as given),
``enum:A|B``, ``@Struct``; ``[]T`` is a list, ``*T`` a pointer (emitted whenever set).
``req=True`` means the field has no omitempty and is always emitted.
"""
from node.model.schema import STRUCTS, F, S

S("IPPoolStatus", [
    F("conditions", "[]any"),
])
S("IPPoolSpec", [
    F("cidr", "string", req=True, v='net'),
    F("vxlanMode", "enum:Never|Always|CrossSubnet"),
    F("ipipMode", "enum:Never|Always|CrossSubnet"),
    F("natOutgoing", "bool"),
    F("disabled", "bool"),
    F("disableBGPExport", "bool"),
    F("blockSize", "int"),
    F("nodeSelector", "string", v='selector'),
    F("namespaceSelector", "string", v='selector'),
    F("allowedUses", "[]enum:Workload|Tunnel|LoadBalancer"),
    F("assignmentMode", "*enum:Automatic|Manual"),
])
S("BGPConfigurationSpec", [
    F("logSeverityScreen", "string", v='logSeverity'),
    F("nodeToNodeMeshEnabled", "*bool"),
    F("asNumber", "*asn"),
    F("serviceLoadBalancerIPs", "[]@ServiceLoadBalancerIPBlock", v='dive'),
    F("serviceExternalIPs", "[]@ServiceExternalIPBlock", v='dive'),
    F("serviceClusterIPs", "[]@ServiceClusterIPBlock", v='dive'),
    F("serviceLoadBalancerAggregation", "*enum:Enabled|Disabled"),
    F("communities", "[]@Community", v='dive'),
    F("prefixAdvertisements", "[]@PrefixAdvertisement", v='dive'),
    F("listenPort", "int", v='gt=0'),
    F("nodeMeshPassword", "*@BGPPassword"),
    F("nodeMeshMaxRestartTime", "*duration"),
    F("bindMode", "*enum:None|NodeIP|Auto|Self|Keep"),
    F("ignoredInterfaces", "[]string", v='dive,ignoredInterface'),
    F("localWorkloadPeeringIPV4", "string", v='ipv4'),
    F("localWorkloadPeeringIPV6", "string", v='ipv6'),
    F("programClusterRoutes", "*string"),
    F("ipv4NormalRoutePriority", "*int", v='gte=1,lte=2147483646'),
    F("ipv6NormalRoutePriority", "*int", v='gte=1,lte=2147483646'),
])
S("ServiceLoadBalancerIPBlock", [
    F("cidr", "string", v='net'),
])
S("ServiceExternalIPBlock", [
    F("cidr", "string", v='net'),
])
S("ServiceClusterIPBlock", [
    F("cidr", "string", v='net'),
])
S("Community", [
    F("name", "string", v='nonempty,name'),
    F("value", "string", v='nonempty'),
])
S("PrefixAdvertisement", [
    F("cidr", "string", v='nonempty,net'),
    F("communities", "[]string", v='nonempty'),
])
S("BGPPeerSpec", [
    F("node", "string", v='name'),
    F("nodeSelector", "string", v='selector'),
    F("peerIP", "string", v='IP:port'),
    F("asNumber", "asn"),
    F("localASNumber", "*asn"),
    F("peerSelector", "string", v='selector'),
    F("keepOriginalNextHop", "bool"),
    F("nextHopMode", "*string"),
    F("password", "*@BGPPassword"),
    F("sourceAddress", "enum:UseNodeIP|None"),
    F("maxRestartTime", "*duration"),
    F("keepaliveTime", "*duration"),
    F("numAllowedLocalASNumbers", "*int"),
    F("ttlSecurity", "*int"),
    F("reachableBy", "string", v='reachableBy'),
    F("filters", "[]string", v='dive,name'),
    F("localWorkloadSelector", "string", v='selector'),
    F("reversePeering", "*enum:Auto|Manual"),
])
S("BGPPassword", [
    F("secretKeyRef", "*@SecretKeySelector"),
])
S("BGPFilterSpec", [
    F("exportV4", "[]@BGPFilterRuleV4", v='dive'),
    F("importV4", "[]@BGPFilterRuleV4", v='dive'),
    F("exportV6", "[]@BGPFilterRuleV6", v='dive'),
    F("importV6", "[]@BGPFilterRuleV6", v='dive'),
])
S("BGPFilterRuleV4", [
    F("cidr", "string", v='netv4'),
    F("prefixLength", "*@BGPFilterPrefixLengthV4"),
    F("source", "enum:RemotePeers"),
    F("interface", "string", v='bgpFilterInterface'),
    F("matchOperator", "enum:Equal|NotEqual|In|NotIn"),
    F("peerType", "enum:eBGP|iBGP"),
    F("communities", "*@BGPFilterCommunityMatch"),
    F("asPathPrefix", "[]asn"),
    F("priority", "*int", v='gte=1,lte=2147483646'),
    F("action", "enum:Accept|Reject", req=True, v='nonempty'),
    F("operations", "[]@BGPFilterOperation", v='dive'),
])
S("BGPFilterRuleV6", [
    F("cidr", "string", v='netv6'),
    F("prefixLength", "*@BGPFilterPrefixLengthV6"),
    F("source", "enum:RemotePeers"),
    F("interface", "string", v='bgpFilterInterface'),
    F("matchOperator", "enum:Equal|NotEqual|In|NotIn"),
    F("peerType", "enum:eBGP|iBGP"),
    F("communities", "*@BGPFilterCommunityMatch"),
    F("asPathPrefix", "[]asn"),
    F("priority", "*int", v='gte=1,lte=2147483646'),
    F("action", "enum:Accept|Reject", req=True, v='nonempty'),
    F("operations", "[]@BGPFilterOperation", v='dive'),
])
S("BGPFilterPrefixLengthV4", [
    F("min", "*int", v='bgpFilterPrefixLengthV4'),
    F("max", "*int", v='bgpFilterPrefixLengthV4'),
])
S("BGPFilterPrefixLengthV6", [
    F("min", "*int", v='bgpFilterPrefixLengthV6'),
    F("max", "*int", v='bgpFilterPrefixLengthV6'),
])
S("BGPFilterCommunityMatch", [
    F("values", "[]string", req=True, v='nonempty'),
])
S("BGPFilterOperation", [
    F("addCommunity", "*@BGPFilterAddCommunity"),
    F("prependASPath", "*@BGPFilterPrependASPath"),
    F("setPriority", "*@BGPFilterSetPriority"),
])
S("BGPFilterAddCommunity", [
    F("value", "*string", req=True, v='nonempty'),
])
S("BGPFilterPrependASPath", [
    F("prefix", "[]asn", req=True, v='nonempty'),
])
S("BGPFilterSetPriority", [
    F("value", "*int", req=True, v='nonempty,gte=1,lte=2147483646'),
])
S("ClusterInformationSpec", [
    F("clusterGUID", "string"),
    F("clusterType", "string"),
    F("calicoVersion", "string"),
    F("datastoreReady", "*bool"),
    F("variant", "string"),
])
S("TierStatus", [
    F("conditions", "[]any"),
])
S("TierSpec", [
    F("order", "*float"),
    F("defaultAction", "*enum:Deny|Pass"),
])
S("ProfileSpec", [
    F("ingress", "[]@Rule", v='dive'),
    F("egress", "[]@Rule", v='dive'),
    F("labelsToApply", "map", v='labels'),
])
S("HostEndpointSpec", [
    F("node", "string", v='name'),
    F("interfaceName", "string", v='interface'),
    F("expectedIPs", "[]string", v='dive,ip'),
    F("profiles", "[]string", v='dive,name'),
    F("ports", "[]@EndpointPort", v='dive'),
])
S("EndpointPort", [
    F("name", "string", req=True, v='nonempty,portName'),
    F("protocol", "protocol", req=True),
    F("port", "int", req=True, v='gt=0'),
])
S("NetworkPolicySpec", [
    F("tier", "string", v='name'),
    F("order", "*float"),
    F("ingress", "[]@Rule", v='dive'),
    F("egress", "[]@Rule", v='dive'),
    F("selector", "string", v='selector'),
    F("types", "[]enum:Ingress|Egress"),
    F("serviceAccountSelector", "string", v='selector'),
    F("performanceHints", "[]enum:AssumeNeededOnEveryNode", v='unique'),
])
S("GlobalNetworkPolicySpec", [
    F("tier", "string", v='name'),
    F("order", "*float"),
    F("ingress", "[]@Rule", v='dive'),
    F("egress", "[]@Rule", v='dive'),
    F("selector", "string", v='selector'),
    F("types", "[]enum:Ingress|Egress"),
    F("doNotTrack", "bool"),
    F("preDNAT", "bool"),
    F("applyOnForward", "bool"),
    F("serviceAccountSelector", "string", v='selector'),
    F("namespaceSelector", "string", v='selector'),
    F("performanceHints", "[]enum:AssumeNeededOnEveryNode", v='unique'),
])
# Staged policies: the enforced kind's spec behind a stagedAction (empty means Set).
STAGED_ACTION = F("stagedAction", "enum:Set|Delete|Learn|Ignore")
S("StagedNetworkPolicySpec", [STAGED_ACTION, *STRUCTS["NetworkPolicySpec"].fields])
S("StagedGlobalNetworkPolicySpec", [STAGED_ACTION, *STRUCTS["GlobalNetworkPolicySpec"].fields])
# A Kubernetes NetworkPolicySpec (networking.k8s.io/v1) behind a stagedAction.
S("StagedKubernetesNetworkPolicySpec", [
    STAGED_ACTION,
    F("podSelector", "@LabelSelector", req=True),
    F("ingress", "[]@NetworkPolicyIngressRule"),
    F("egress", "[]@NetworkPolicyEgressRule"),
    F("policyTypes", "[]enum:Ingress|Egress"),
])
S("LabelSelector", [
    F("matchLabels", "map", v='labels'),
    F("matchExpressions", "[]@LabelSelectorRequirement"),
])
S("LabelSelectorRequirement", [
    F("key", "string", req=True),
    F("operator", "enum:In|NotIn|Exists|DoesNotExist", req=True),
    F("values", "[]string"),
])
S("NetworkPolicyIngressRule", [
    F("ports", "[]@NetworkPolicyPort"),
    F("from", "[]@NetworkPolicyPeer"),
])
S("NetworkPolicyEgressRule", [
    F("ports", "[]@NetworkPolicyPort"),
    F("to", "[]@NetworkPolicyPeer"),
])
S("NetworkPolicyPort", [
    F("protocol", "*enum:TCP|UDP|SCTP"),
    F("port", "*intorstring"),
    F("endPort", "*int"),
])
S("NetworkPolicyPeer", [
    F("podSelector", "*@LabelSelector"),
    F("namespaceSelector", "*@LabelSelector"),
    F("ipBlock", "*@IPBlock"),
])
S("IPBlock", [
    F("cidr", "string", req=True, v='nonempty,cidr'),
    F("except", "[]string", v='dive,cidr'),
])
S("Rule", [
    F("action", "enum:Allow|Deny|Log|Pass", req=True),
    F("ipVersion", "*int"),
    F("protocol", "*protocol"),
    F("icmp", "*@ICMPFields"),
    F("notProtocol", "*protocol"),
    F("notICMP", "*@ICMPFields"),
    F("source", "@EntityRule", req=True, omitzero=True),
    F("destination", "@EntityRule", req=True, omitzero=True),
    F("http", "*@HTTPMatch"),
    F("metadata", "*@RuleMetadata"),
])
S("HTTPPath", [
    F("exact", "string"),
    F("prefix", "string"),
])
S("HTTPMatch", [
    F("methods", "[]string"),
    F("paths", "[]@HTTPPath"),
])
S("ICMPFields", [
    F("type", "*int", v='gte=0,lte=254'),
    F("code", "*int", v='gte=0,lte=255'),
])
S("EntityRule", [
    F("nets", "[]string", v='dive,net'),
    F("selector", "string", v='selector'),
    F("namespaceSelector", "string", v='selector'),
    F("services", "*@ServiceMatch"),
    F("ports", "[]port", v='dive'),
    F("notNets", "[]string", v='dive,net'),
    F("notSelector", "string", v='selector'),
    F("notPorts", "[]port", v='dive'),
    F("serviceAccounts", "*@ServiceAccountMatch"),
])
S("ServiceMatch", [
    F("name", "string", v='name'),
    F("namespace", "string", v='name'),
])
S("ServiceAccountMatch", [
    F("names", "[]string"),
    F("selector", "string", v='selector'),
])
S("RuleMetadata", [
    F("annotations", "map"),
])
S("FelixConfigurationSpec", [
    F("nodeSelector", "*string"),
    F("useInternalDataplaneDriver", "*bool"),
    F("dataplaneDriver", "string"),
    F("dataplaneWatchdogTimeout", "*duration"),
    F("ipv6Support", "*bool"),
    F("routeRefreshInterval", "*duration"),
    F("interfaceRefreshInterval", "*duration"),
    F("iptablesRefreshInterval", "*duration"),
    F("iptablesPostWriteCheckInterval", "*duration"),
    F("iptablesLockProbeInterval", "*duration"),
    F("featureDetectOverride", "string", v='keyValueList'),
    F("featureGates", "string", v='keyValueList'),
    F("ipsetsRefreshInterval", "*duration"),
    F("maxIpsetSize", "*int"),
    F("iptablesBackend", "*enum:Legacy|NFT|Auto"),
    F("xdpRefreshInterval", "*duration"),
    F("netlinkTimeout", "*duration"),
    F("metadataAddr", "string"),
    F("metadataPort", "*int"),
    F("openstackRegion", "string"),
    F("interfacePrefix", "string"),
    F("interfaceExclude", "string"),
    F("chainInsertMode", "string"),
    F("defaultEndpointToHostAction", "string", v='dropAcceptReturn'),
    F("iptablesFilterAllowAction", "string", v='acceptReturn'),
    F("iptablesMangleAllowAction", "string", v='acceptReturn'),
    F("iptablesFilterDenyAction", "string", v='dropReject'),
    F("logPrefix", "string"),
    F("logActionRateLimit", "*string"),
    F("logActionRateLimitBurst", "*int"),
    F("logFilePath", "string"),
    F("logSeverityFile", "string", v='logSeverity'),
    F("logSeverityScreen", "string", v='logSeverity'),
    F("logSeveritySys", "string", v='logSeverity'),
    F("logDebugFilenameRegex", "string", v='regexp'),
    F("ipipEnabled", "*bool"),
    F("ipipMTU", "*int"),
    F("vxlanEnabled", "*bool"),
    F("vxlanMTU", "*int"),
    F("vxlanMTUV6", "*int"),
    F("vxlanPort", "*int"),
    F("vxlanVNI", "*int"),
    F("allowVXLANPacketsFromWorkloads", "*bool"),
    F("allowIPIPPacketsFromWorkloads", "*bool"),
    F("reportingInterval", "*duration"),
    F("reportingTTL", "*duration"),
    F("endpointReportingEnabled", "*bool"),
    F("endpointReportingDelay", "*duration"),
    F("endpointStatusPathPrefix", "string"),
    F("iptablesMarkMask", "*int"),
    F("disableConntrackInvalidCheck", "*bool"),
    F("healthEnabled", "*bool"),
    F("healthHost", "*string"),
    F("healthPort", "*int"),
    F("healthTimeoutOverrides", "[]@HealthTimeoutOverride", v='dive'),
    F("prometheusMetricsEnabled", "*bool"),
    F("prometheusMetricsHost", "string", v='prometheusHost'),
    F("prometheusMetricsPort", "*int"),
    F("prometheusGoMetricsEnabled", "*bool"),
    F("prometheusProcessMetricsEnabled", "*bool"),
    F("prometheusWireGuardMetricsEnabled", "*bool"),
    F("prometheusMetricsCAFile", "*string"),
    F("prometheusMetricsCertFile", "*string"),
    F("prometheusMetricsKeyFile", "*string"),
    F("prometheusMetricsClientAuth", "*enum:RequireAndVerifyClientCert|RequireAnyClientCert|VerifyClientCertIfGiven|NoClientCert"),
    F("failsafeInboundHostPorts", "*[]@ProtoPort"),
    F("failsafeOutboundHostPorts", "*[]@ProtoPort"),
    F("kubeNodePortRanges", "*[]port", v='dive'),
    F("policySyncPathPrefix", "string"),
    F("usageReportingEnabled", "*bool"),
    F("usageReportingInitialDelay", "*duration"),
    F("usageReportingInterval", "*duration"),
    F("natPortRange", "*port"),
    F("natOutgoingAddress", "string"),
    F("natOutgoingExclusions", "*enum:IPPoolsOnly|IPPoolsAndHostIPs"),
    F("deviceRouteSourceAddress", "string"),
    F("deviceRouteSourceAddressIPv6", "string"),
    F("deviceRouteProtocol", "*int"),
    F("removeExternalRoutes", "*bool"),
    F("programClusterRoutes", "*string"),
    F("ipForwarding", "string"),
    F("externalNodesList", "*[]string"),
    F("debugMemoryProfilePath", "string"),
    F("debugDisableLogDropping", "*bool"),
    F("debugSimulateCalcGraphHangAfter", "*duration"),
    F("debugSimulateDataplaneHangAfter", "*duration"),
    F("debugSimulateDataplaneApplyDelay", "*duration"),
    F("debugHost", "*string"),
    F("debugPort", "*int", v='gte=0,lte=65535'),
    F("iptablesNATOutgoingInterfaceFilter", "string", v='ifaceFilter'),
    F("sidecarAccelerationEnabled", "*bool"),
    F("xdpEnabled", "*bool"),
    F("genericXDPEnabled", "*bool"),
    F("nftablesMode", "*enum:Enabled|Disabled|Auto"),
    F("nftablesFlowTableOffload", "*enum:All|Disabled"),
    F("nftablesFlowTableDataIfacePattern", "string", v='regexp'),
    F("nftablesRefreshInterval", "*duration"),
    F("nftablesFilterAllowAction", "string", v='acceptReturn'),
    F("nftablesMangleAllowAction", "string", v='acceptReturn'),
    F("nftablesFilterDenyAction", "string", v='dropReject'),
    F("nftablesMarkMask", "*int"),
    F("bpfEnabled", "*bool"),
    F("bpfOverlayHostSourceIP", "*enum:TunnelAddress|HostAddress"),
    F("bpfDisableUnprivileged", "*bool"),
    F("bpfJITHardening", "*enum:Auto|Strict"),
    F("bpfLogLevel", "string", req=True, v='bpfLogLevel'),
    F("bpfConntrackLogLevel", "enum:Off|Debug"),
    F("bpfConntrackMode", "*enum:Auto|Userspace|BPFProgram"),
    F("bpfConntrackTimeouts", "*@BPFConntrackTimeouts"),
    F("bpfIPFragTimeout", "*duration"),
    F("bpfLogFilters", "*map", v='bpfLogFilters'),
    F("bpfCTLBLogFilter", "string"),
    F("bpfDataIfacePattern", "string", v='regexp'),
    F("bpfL3IfacePattern", "string", v='regexp'),
    F("bpfConnectTimeLoadBalancingEnabled", "*bool"),
    F("bpfConnectTimeLoadBalancing", "*enum:TCP|Enabled|Disabled"),
    F("bpfHostNetworkedNATWithoutCTLB", "*enum:Enabled|Disabled"),
    F("bpfExternalServiceMode", "string", v='bpfServiceMode'),
    F("bpfDSROptoutCIDRs", "*[]string", v='cidrs'),
    F("bpfExtToServiceConnmark", "*int", v='gte=0,lte=4294967295'),
    F("bpfKubeProxyIptablesCleanupEnabled", "*bool"),
    F("bpfKubeProxyMinSyncPeriod", "*duration"),
    F("bpfKubeProxyHealthzPort", "*int", v='gte=0,lte=65535'),
    F("bpfPSNATPorts", "*port"),
    F("bpfMapSizeNATFrontend", "*int"),
    F("bpfMapSizeNATBackend", "*int"),
    F("bpfMapSizeNATAffinity", "*int"),
    F("bpfMapSizeRoute", "*int"),
    F("bpfMapSizeConntrack", "*int"),
    F("bpfMapSizePerCpuConntrack", "*int"),
    F("bpfMapSizeConntrackScaling", "string"),
    F("bpfMapSizeConntrackCleanupQueue", "*int", v='gte=1'),
    F("bpfMapSizeIPSets", "*int"),
    F("bpfMapSizeIfState", "*int"),
    F("bpfHostConntrackBypass", "*bool"),
    F("bpfIPFragmentReassemblyEnabled", "*bool"),
    F("bpfEnforceRPF", "string"),
    F("bpfPolicyDebugEnabled", "*bool"),
    F("bpfForceTrackPacketsFromIfaces", "*[]string", v='ifaceFilterSlice'),
    F("bpfDisableGROForIfaces", "string", v='regexp'),
    F("bpfExcludeCIDRsFromNAT", "*[]string", v='cidrs'),
    F("bpfExportBufferSizeMB", "*int"),
    F("istioAmbientMode", "*enum:Enabled|Disabled"),
    F("istioDSCPMark", "*intorstring"),
    F("cgroupV2Path", "string"),
    F("flowLogsPolicyEvaluationMode", "*enum:None|Continuous"),
    F("bpfRedirectToPeer", "string"),
    F("bpfAttachType", "*enum:TC|TCX"),
    F("flowLogsFlushInterval", "*duration"),
    F("flowLogsCollectorDebugTrace", "*bool"),
    F("flowLogsGoldmaneServer", "*string"),
    F("flowLogsLocalReporter", "*string"),
    F("bpfProfiling", "string"),
    F("routeSource", "string", v='regexp'),
    F("routeTableRanges", "[]@RouteTableIDRange", v='dive'),
    F("routeTableRange", "*@RouteTableRange"),
    F("routeSyncDisabled", "*bool"),
    F("ipv4NormalRoutePriority", "*int", v='gte=1,lte=2147483646'),
    F("ipv4ElevatedRoutePriority", "*int", v='gte=1,lte=2147483646'),
    F("ipv6NormalRoutePriority", "*int", v='gte=1,lte=2147483646'),
    F("ipv6ElevatedRoutePriority", "*int", v='gte=1,lte=2147483646'),
    F("liveMigrationRouteConvergenceTime", "*duration"),
    F("wireguardEnabled", "*bool"),
    F("wireguardEnabledV6", "*bool"),
    F("wireguardThreadingEnabled", "*bool"),
    F("wireguardListeningPort", "*int", v='gt=0,lte=65535'),
    F("wireguardListeningPortV6", "*int", v='gt=0,lte=65535'),
    F("wireguardRoutingRulePriority", "*int", v='gt=0,lt=32766'),
    F("wireguardInterfaceName", "string", v='interface'),
    F("wireguardInterfaceNameV6", "string", v='interface'),
    F("wireguardMTU", "*int"),
    F("wireguardMTUV6", "*int"),
    F("wireguardHostEncryptionEnabled", "*bool"),
    F("wireguardKeepAlive", "*duration"),
    F("awsSrcDstCheck", "*enum:DoNothing|Enable|Disable"),
    F("serviceLoopPrevention", "string", v='serviceLoopPrevention'),
    F("workloadSourceSpoofing", "string", v='workloadSourceSpoofing'),
    F("mtuIfacePattern", "string", v='regexp'),
    F("floatingIPs", "*enum:Enabled|Disabled"),
    F("localSubnetL2Reachability", "*enum:Disabled|PodsAndLoadBalancers"),
    F("localSubnetL2ReachabilityRefreshInterval", "*duration"),
    F("windowsManageFirewallRules", "*enum:Enabled|Disabled"),
    F("goGCThreshold", "*int", v='gte=-1'),
    F("goMemoryLimitMB", "*int", v='gte=-1'),
    F("goMaxProcs", "*int", v='gte=-1'),
    F("requireMTUFile", "*bool"),
    F("bpfMaglevMaxEndpointsPerService", "*int", v='gt=0,lte=3000'),
    F("bpfMaglevMaxServices", "*int", v='gt=0,lte=3000'),
])
S("HealthTimeoutOverride", [
    F("name", "string", req=True),
    F("timeout", "duration", req=True),
])
S("RouteTableRange", [
    F("min", "int", req=True),
    F("max", "int", req=True),
])
S("RouteTableIDRange", [
    F("min", "int", req=True),
    F("max", "int", req=True),
])
S("ProtoPort", [
    F("protocol", "string"),
    F("port", "int", req=True),
    F("net", "string"),
])
S("BPFConntrackTimeouts", [
    F("creationGracePeriod", "*string"),
    F("tcpSynSent", "*string"),
    F("tcpEstablished", "*string"),
    F("tcpFinsSeen", "*string"),
    F("tcpResetSeen", "*string"),
    F("udpTimeout", "*string"),
    F("genericTimeout", "*string"),
    F("icmpTimeout", "*string"),
])
S("IPAMConfigurationSpec", [
    F("strictAffinity", "bool", req=True),
    F("maxBlocksPerHost", "int"),
    F("autoAllocateBlocks", "bool", req=True),
    F("kubeVirtVMAddressPersistence", "*enum:Enabled|Disabled"),
    F("ipCooldownSeconds", "int"),
])
S("NodeSpec", [
    F("bgp", "*@NodeBGPSpec"),
    F("ipv4VXLANTunnelAddr", "string", v='ipv4'),
    F("vxlanTunnelMACAddr", "string", v='mac'),
    F("ipv6VXLANTunnelAddr", "string", v='ipv6'),
    F("vxlanTunnelMACAddrV6", "string", v='mac'),
    F("orchRefs", "[]@OrchRef"),
    F("wireguard", "*@NodeWireguardSpec"),
    F("addresses", "[]@NodeAddress"),
    F("interfaces", "[]@NodeInterface"),
])
S("NodeAddress", [
    F("address", "string", req=True, v='net'),
    F("type", "string", v='ipType'),
])
S("NodeInterface", [
    F("name", "string", v='name'),
    F("addresses", "[]string"),
])
S("NodeStatus", [
    F("wireguardPublicKey", "string", v='wireguardPublicKey'),
    F("wireguardPublicKeyV6", "string", v='wireguardPublicKey'),
    F("podCIDRs", "[]string"),
])
S("OrchRef", [
    F("nodeName", "string"),
    F("orchestrator", "string", req=True),
])
S("NodeBGPSpec", [
    F("asNumber", "*asn"),
    F("ipv4Address", "string", v='cidrv4'),
    F("ipv6Address", "string", v='cidrv6'),
    F("ipv4IPIPTunnelAddr", "string", v='ipv4'),
    F("routeReflectorClusterID", "string", v='ipv4'),
])
S("NodeWireguardSpec", [
    F("interfaceIPv4Address", "string", v='ipv4'),
    F("interfaceIPv6Address", "string", v='ipv6'),
])
S("WorkloadEndpointSpec", [
    F("orchestrator", "string", v='name'),
    F("workload", "string", v='name'),
    F("node", "string", v='name'),
    F("containerID", "string", v='containerID'),
    F("pod", "string", v='name'),
    F("endpoint", "string", v='name'),
    F("serviceAccountName", "string", v='name'),
    F("ipNetworks", "[]string", v='dive,net'),
    F("ipNATs", "[]@IPNAT", v='dive'),
    F("ipv4Gateway", "string", v='ipv4'),
    F("ipv6Gateway", "string", v='ipv6'),
    F("profiles", "[]string", v='dive,name'),
    F("interfaceName", "string", v='nonempty,interface'),
    F("mac", "string", v='mac'),
    F("ports", "[]@WorkloadEndpointPort", v='dive'),
    F("allowSpoofedSourcePrefixes", "[]string", v='dive,cidr'),
    F("qosControls", "*@QoSControls"),
])
S("WorkloadEndpointPort", [
    F("name", "string", req=True, v='portName'),
    F("protocol", "protocol", req=True),
    F("port", "int", req=True, v='gt=0'),
    F("hostPort", "int", req=True),
    F("hostIP", "string", req=True, v='net'),
])
S("IPNAT", [
    F("internalIP", "string", req=True, v='ip'),
    F("externalIP", "string", req=True, v='ip'),
])
S("QoSControls", [
    F("ingressBandwidth", "int"),
    F("ingressBurst", "int"),
    F("ingressPeakrate", "int"),
    F("ingressMinburst", "int"),
    F("egressBandwidth", "int"),
    F("egressBurst", "int"),
    F("egressPeakrate", "int"),
    F("egressMinburst", "int"),
    F("ingressPacketRate", "int"),
    F("ingressPacketBurst", "int"),
    F("egressPacketRate", "int"),
    F("egressPacketBurst", "int"),
    F("ingressMaxConnections", "int"),
    F("egressMaxConnections", "int"),
    F("dscp", "*intorstring"),
])
# libcalico-go's internal LiveMigration (internalapi): a live migration of a workload (a
# KubeVirt VM, an OpenStack port) in progress. Source and target are pointers; each, when
# given, names exactly one thing (kubebuilder ExactlyOneOf, checked in validators).
S("LiveMigrationSpec", [
    F("source", "*@LiveMigrationSource"),
    F("target", "*@LiveMigrationTarget"),
])
S("LiveMigrationSource", [
    F("workload", "*@WorkloadIdentifier"),
    F("workloadEndpoint", "*@WorkloadEndpointIdentifier"),
])
S("LiveMigrationTarget", [
    F("selector", "*string", v='selector'),
    F("workloadEndpoint", "*@WorkloadEndpointIdentifier"),
])
S("WorkloadIdentifier", [
    F("hostname", "string"),
    F("orchestratorID", "string"),
    F("workloadID", "string"),
])
S("WorkloadEndpointIdentifier", [
    F("hostname", "string"),
    F("orchestratorID", "string"),
    F("workloadID", "string"),
    F("endpointID", "string"),
])
S("BlockAffinitySpec", [
    F("state", "string", req=True),
    F("node", "string", req=True),
    F("type", "string"),
    F("cidr", "string", req=True),
    F("deleted", "string", req=True),
])
S("SecretKeySelector", [
    F("name", "string"),
    F("key", "string", req=True),
    F("optional", "*bool"),
])
S("ObjectMeta", [
    # Identity fields take strings only (see "strictstring" in node.model.schema).
    F("name", "strictstring"),
    F("generateName", "strictstring"),
    F("namespace", "strictstring"),
    F("selfLink", "strictstring"),
    F("uid", "strictstring"),
    F("resourceVersion", "strictstring"),
    F("generation", "int"),
    # metav1.Time: a struct, so never omitted; its zero value marshals as null.
    F("creationTimestamp", "any", req=True),
    F("deletionTimestamp", "*any"),
    F("deletionGracePeriodSeconds", "*int"),
    F("labels", "map", v="labels"),
    F("annotations", "map"),
    F("ownerReferences", "[]any"),
    F("finalizers", "[]string"),
    F("managedFields", "[]any"),
])

# IPAM values stored in etcd (libcalico-go backend/model; not v3 resources).
S("AllocationBlock", [
    F("cidr", "string", req=True),
    F("affinity", "*string", req=True),
    F("affinity_claim_time", "*any"),
    F("allocations", "[]*int", req=True),
    F("unallocated", "[]int", req=True),
    F("attributes", "[]@AllocationAttribute", req=True),
    F("sequenceNumber", "int", req=True),
    F("sequenceNumberForAllocation", "any", req=True),
    F("deleted", "bool", req=True),
    F("hostAffinity", "*string"),
])
S("AllocationAttribute", [
    F("handle_id", "*string"),
    F("secondary", "map"),
    F("alternateOwnerAttrs", "map"),
    F("releasedAt", "*any"),
])
S("BlockAffinityValue", [
    F("state", "enum:confirmed|pending|pendingDeletion", req=True),
    F("deleted", "bool", req=True),
])
S("IPAMHandle", [
    F("block", "any", req=True),
    F("deleted", "bool", req=True),
])
S("IPAMConfig", [
    F("strict_affinity", "bool"),
    F("auto_allocate_blocks", "bool"),
    F("maxBlocksPerHost", "int"),
    F("kubeVirtVMAddressPersistence", "*string"),
    F("ipCooldownSeconds", "int"),
])
S("IPReservationSpec", [
    F("reservedCIDRs", "[]string", v="dive,cidr"),
])

S("GlobalNetworkSetSpec", [
    F("nets", "[]string", v='dive,cidr'),
])
S("NetworkSetSpec", [
    F("nets", "[]string", v='dive,cidr'),
])
S("KubeControllersConfigurationSpec", [
    F("logSeverityScreen", "enum:None|Debug|Info|Warning|Error|Fatal|Panic"),
    F("healthChecks", "enum:Enabled|Disabled"),
    F("etcdV3CompactionPeriod", "*duration"),
    F("prometheusMetricsPort", "*int", v='gte=0,lte=65535'),
    F("controllers", "@ControllersConfig", req=True),
    F("debugProfilePort", "*int", v='gte=0,lte=65535'),
])
S("ControllersConfig", [
    F("node", "*@NodeControllerConfig"),
    F("policy", "*@ReconcilerConfig"),
    F("workloadEndpoint", "*@ReconcilerConfig"),
    F("serviceAccount", "*@ReconcilerConfig"),
    F("namespace", "*@ReconcilerConfig"),
    F("loadBalancer", "*@LoadBalancerControllerConfig"),
    F("policyMigration", "*@MigrationControllerConfig"),
])
S("MigrationControllerConfig", [
    F("enabled", "enum:Enabled|Disabled"),  # (Go's PolicyNameMigrator)
])
S("NodeControllerConfig", [
    F("reconcilerPeriod", "*duration"),
    F("syncLabels", "enum:Enabled|Disabled"),
    F("hostEndpoint", "*@AutoHostEndpointConfig"),
    F("leakGracePeriod", "*duration"),
])
S("AutoHostEndpointConfig", [
    F("autoCreate", "enum:Enabled|Disabled"),
    F("createDefaultHostEndpoint", "enum:Enabled|Disabled"),
    F("templates", "[]@Template", v='dive'),
])
S("Template", [
    F("generateName", "string", v='name'),
    F("interfaceCIDRs", "[]string", v='cidrs'),
    F("interfacePattern", "string", v='regexp'),
    F("labels", "map", v='labels'),
    F("annotations", "map"),
    F("nodeSelector", "string", v='selector'),
])
# Policy, WorkloadEndpoint, ServiceAccount and Namespace controller configs: one field each.
S("ReconcilerConfig", [
    F("reconcilerPeriod", "*duration"),
])
S("LoadBalancerControllerConfig", [
    F("assignIPs", "enum:AllServices|RequestedServicesOnly"),
])
S("KubeControllersConfigurationStatus", [
    F("runningConfig", "*@KubeControllersConfigurationSpec"),
    F("environmentVars", "map"),
])
S("CalicoNodeStatusSpec", [
    F("node", "string", v='nonempty,name'),
    F("classes", "[]enum:Agent|BGP|Routes", v='nonempty,unique'),
    F("updatePeriodSeconds", "*int", v='nonempty,gte=0,lte=86400'),
])
S("CalicoNodeStatusStatus", [
    # metav1.Time: never omitted, null while unset.
    F("lastUpdated", "any", req=True),
    F("agent", "@CalicoNodeAgentStatus", req=True),
    F("bgp", "@CalicoNodeBGPStatus", req=True),
    F("routes", "@CalicoNodeBGPRouteStatus", req=True),
])
S("CalicoNodeAgentStatus", [
    F("birdV4", "@BGPDaemonStatus", req=True),
    F("birdV6", "@BGPDaemonStatus", req=True),
])
S("CalicoNodeBGPStatus", [
    F("numberEstablishedV4", "int", req=True),
    F("numberNotEstablishedV4", "int", req=True),
    F("numberEstablishedV6", "int", req=True),
    F("numberNotEstablishedV6", "int", req=True),
    F("peersV4", "[]@CalicoNodePeer"),
    F("peersV6", "[]@CalicoNodePeer"),
])
S("CalicoNodeBGPRouteStatus", [
    F("routesV4", "[]@CalicoNodeRoute"),
    F("routesV6", "[]@CalicoNodeRoute"),
])
S("BGPDaemonStatus", [
    F("state", "enum:Ready|NotReady"),
    F("version", "string"),
    F("routerID", "string"),
    F("lastBootTime", "string"),
    F("lastReconfigurationTime", "string"),
])
S("CalicoNodePeer", [
    F("peerIP", "string", v='ip'),
    F("type", "enum:NodeMesh|NodePeer|GlobalPeer"),
    F("state", "enum:Idle|Connect|Active|OpenSent|OpenConfirm|Established|Close"),
    F("since", "string"),
])
S("CalicoNodeRoute", [
    F("type", "enum:FIB|RIB"),
    F("destination", "string"),
    F("gateway", "string"),
    F("interface", "string"),
    # A struct with omitempty: Go still always writes it.
    F("learnedFrom", "@CalicoNodeRouteLearnedFrom"),
])
S("CalicoNodeRouteLearnedFrom", [
    F("sourceType", "enum:Kernel|Static|Direct|NodeMesh|BGPPeer"),
    F("peerIP", "string", v='ip'),
])
