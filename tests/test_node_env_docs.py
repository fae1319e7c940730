"""calico/node's environment variables as Calico v3.32 documents them, checked against
what ``calico-node startup`` does.

The pages: "Configuring calico/node" (calico_versioned_docs/version-3.32/reference/
configure-calico-node.mdx) and "Configure IP autodetection" (.../networking/ipam/
ip-autodetection.mdx). Where a page and v3.32.1's source disagree the source wins, and the
case says so. Startup runs as a real process in its own network namespace against the
test etcd (``startup_harness.NodeHost``); the rest is in-process.
"""
from __future__ import annotations

import logging

import pytest

from node.config import EnvValueError, datastore_config_from_env
from node.errors import ConfigError
from node.supervise import boot
from startup.datastore import ExitNow, load_config
from startup_harness import STARTED, NodeHost, datastore, explain, v3_key
from startup_netns import add_link

ETCD = {"ETCD_ENDPOINTS": "http://127.0.0.1:2379"}


@pytest.fixture
def node_host(etcd_clean, tmp_path):
    with NodeHost(etcd_clean, tmp_path) as host:
        yield host


def ok(result):
    assert result.returncode == 0, explain(result)
    assert result.stdout.splitlines()[-1] == STARTED, explain(result)
    return result


# -- USE_POD_CIDR: a boolean, parsed whatever the datastore ------------------------------
# libcalico-go/lib/apiconfig/apiconfig.go gives K8sUsePodCIDR (and K8sInsecureSkipTLSVerify,
# K8sDisableNodePoll) envconfig tags of type bool; LoadClientConfigFromEnvironment parses
# them with strconv.ParseBool for every datastore type, and node/pkg/calicoclient's
# CreateClient prints "ERROR: Error loading datastore config: ..." and exits 1.

def test_use_pod_cidr_that_is_not_a_boolean_stops_startup_even_on_etcd(node_host, etcd_kv):
    add_link(node_host.ns, "eth0", "10.0.0.11/24")
    for env, named in (({"USE_POD_CIDR": "yes"}, "USE_POD_CIDR='yes'"),
                       ({"CALICO_USE_POD_CIDR": "on", "USE_POD_CIDR": "true"}, "CALICO_USE_POD_CIDR='on'")):
        result = node_host.startup(**env)
        assert result.returncode == 1, explain(result)
        assert result.stdout.startswith(f"ERROR: Error loading datastore config: {named} is not a boolean"), \
            explain(result)
        assert datastore(etcd_kv) == {}
    # Any of ParseBool's spellings is accepted (and changes nothing on etcd).
    ok(node_host.startup(USE_POD_CIDR="TRUE"))
    assert v3_key("nodes", "node1") in datastore(etcd_kv)


@pytest.mark.parametrize("name", ["USE_POD_CIDR", "K8S_INSECURE_SKIP_TLS_VERIFY", "K8S_DISABLE_NODE_POLL"])
def test_datastore_booleans_follow_strconv_parsebool(name):
    for good in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"):
        datastore_config_from_env({**ETCD, name: good})
    for bad in ("yes", "Y", "on", "tRUE", " true"):
        with pytest.raises(EnvValueError, match=f"^{name}={bad!r} is not a boolean"):
            datastore_config_from_env({**ETCD, name: bad})


# -- which of the two messages a datastore setting gets ------------------------------------
# Only envconfig's parse errors are "Error loading datastore config"; an unknown
# DATASTORE_TYPE (libcalico-go/lib/backend/client.go NewClient: "unknown datastore type"),
# both ETCD_ENDPOINTS and ETCD_DISCOVERY_SRV, or an etcd TLS file that does not load
# (etcdv3.NewEtcdV3Client) fail client.New: "ERROR: Error accessing the Calico datastore".

@pytest.mark.parametrize("env,prefix", [
    ({**ETCD, "USE_POD_CIDR": "on"}, "ERROR: Error loading datastore config: USE_POD_CIDR='on'"),
    ({**ETCD, "DATASTORE_TYPE": "consul"}, "ERROR: Error accessing the Calico datastore: unknown datastore type"),
    ({**ETCD, "ETCD_DISCOVERY_SRV": "example.com"},
     "ERROR: Error accessing the Calico datastore: multiple discovery or bootstrap options specified"),
    ({**ETCD, "ETCD_CA_CERT_FILE": "/nonexistent/ca.pem"},
     "ERROR: Error accessing the Calico datastore: ETCD_CA_CERT_FILE"),
])
def test_config_problems_are_reported_where_calico_finds_them(env, prefix, capsys):
    with pytest.raises(ExitNow) as stopped:
        load_config(env)
    assert stopped.value.code == 1
    assert capsys.readouterr().out.startswith(prefix)


def test_an_unknown_datastore_type_is_not_a_parse_error():
    with pytest.raises(ConfigError) as raised:
        datastore_config_from_env({**ETCD, "DATASTORE_TYPE": "consul"})
    assert not isinstance(raised.value, EnvValueError)


# -- CALICO_STARTUP_LOGLEVEL ---------------------------------------------------------------
# The page lists "DEBUG, INFO, WARNING, ERROR, CRITICAL, or NONE" with default ERROR; v3.32.1's
# ConfigureLogging (node/pkg/lifecycle/startup/startup.go) defaults to info and uses
# logrus.ParseLevel, which knows neither CRITICAL nor NONE: those log its error (the
# value quoted as Go's %q does) and carry on at info. The source wins.

def test_startup_log_levels_the_page_lists_but_logrus_refuses(node_host):
    add_link(node_host.ns, "eth0", "10.0.0.11/24")
    result = ok(node_host.startup(CALICO_STARTUP_LOGLEVEL="NONE"))
    assert 'Failed to parse log level, defaulting to info. error=not a valid logrus Level: "NONE"' in result.stderr
    assert "Early log level set to info" in result.stderr
    assert "[INFO]" in result.stderr and "[DEBUG]" not in result.stderr
    result = ok(node_host.startup(CALICO_STARTUP_LOGLEVEL="Error"))
    assert "[INFO]" not in result.stderr


@pytest.mark.parametrize("raw,level", [
    ("", logging.INFO), ("CRITICAL", logging.INFO), ("NONE", logging.INFO), ("chatty", logging.INFO),
    ("WARN", logging.WARNING), ("warning", logging.WARNING), ("Error", logging.ERROR), ("debug", logging.DEBUG),
    ("fatal", logging.CRITICAL),
])
def test_calico_node_start_reads_the_level_as_startup_does(raw, level):
    """``calico-node start``'s own lines follow the same logrus rules as the startup it runs."""
    try:
        boot._configure_logging({"CALICO_STARTUP_LOGLEVEL": raw} if raw else {})
        assert boot.log.level == level
    finally:
        for handler in list(boot.log.handlers):
            boot.log.removeHandler(handler)
        boot.log.propagate = True
        boot.log.setLevel(logging.NOTSET)


# -- the pages' own examples, run for real ---------------------------------------------------

def test_ip_autodetection_examples_from_the_docs(node_host, etcd_kv):
    """configure-calico-node.mdx "IP autodetection methods": the skip-interface, cidr and
    interface examples, word for word, with IP/IP6=autodetect so each start re-detects."""
    add_link(node_host.ns, "enp6s0f0", "10.0.1.5/24")
    add_link(node_host.ns, "eth0", "10.0.2.7/24", "2001:4860::9/64")
    add_link(node_host.ns, "ens3", "10.0.3.9/24")

    def detected(**env) -> dict:
        ok(node_host.startup(IP="autodetect", **env))
        return datastore(etcd_kv)[v3_key("nodes", "node1")]["spec"]["bgp"]

    assert detected(IP_AUTODETECTION_METHOD="skip-interface=enp6s0f0,eth.*")["ipv4Address"] == "10.0.3.9/24"
    # Interfaces are visited highest index first: eth0 before enp6s0f0.
    assert detected(IP_AUTODETECTION_METHOD="cidr=10.0.1.0/24,10.0.2.0/24")["ipv4Address"] == "10.0.2.7/24"
    assert detected(IP_AUTODETECTION_METHOD="interface=eth.*")["ipv4Address"] == "10.0.2.7/24"
    bgp = detected(IP_AUTODETECTION_METHOD="first-found", IP6="autodetect",
                   IP6_AUTODETECTION_METHOD="cidr=2001:4860::0/64")
    assert (bgp["ipv4Address"], bgp["ipv6Address"]) == ("10.0.3.9/24", "2001:4860::9/64")


def test_node_name_example_from_the_docs(node_host, etcd_kv):
    """configure-calico-node.mdx "Node name determination": NODENAME empty, no nodename
    file, HOSTNAME=host-A gives host-a, which is cached and used on the next start."""
    add_link(node_host.ns, "eth0", "10.0.0.11/24")
    ok(node_host.startup(NODENAME="", HOSTNAME="host-A"))
    assert (node_host.lib_dir / "nodename").read_text() == "host-a"
    result = ok(node_host.startup(NODENAME="", HOSTNAME="host-B"))
    assert "Using stored node name host-a" in result.stderr
    nodes = [k for k in datastore(etcd_kv) if "/nodes/" in k]
    assert nodes == [v3_key("nodes", "host-a")]
