"""Datastore configuration and host paths, as every role reads them."""
from pathlib import Path

import pytest

from node.config import (
    ETCDV3,
    KUBERNETES,
    Paths,
    calicoctl_datastore_config,
    datastore_config_from_env,
    datastore_config_from_file,
)
from node.errors import ConfigError


def test_etcd_is_chosen_when_endpoints_are_set_and_kubernetes_otherwise():
    assert datastore_config_from_env({"ETCD_ENDPOINTS": "http://127.0.0.1:2379"}).datastore_type == ETCDV3
    assert datastore_config_from_env({}).datastore_type == KUBERNETES


def test_calico_prefix_wins_and_endpoints_are_split():
    cfg = datastore_config_from_env({
        "ETCD_ENDPOINTS": "http://a:1", "CALICO_ETCD_ENDPOINTS": "http://b:1, http://c:1",
        "ETCD_USERNAME": "u", "CALICO_ETCD_PASSWORD": "p",
    })
    assert cfg.etcd_endpoints == ("http://b:1", "http://c:1")
    assert cfg.uses_auth and cfg.etcd_username == "u" and cfg.etcd_password == "p"


def test_credentials_are_used_only_in_pairs():
    assert not datastore_config_from_env({"ETCD_ENDPOINTS": "http://a:1", "ETCD_USERNAME": "u"}).uses_auth


def test_unknown_datastore_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown datastore type: 'zookeeper'"):
        datastore_config_from_env({"DATASTORE_TYPE": "zookeeper"})


def test_etcd_without_endpoints_and_discovery_conflicts():
    with pytest.raises(ConfigError, match="needs ETCD_ENDPOINTS"):
        datastore_config_from_env({"DATASTORE_TYPE": "etcdv3"})
    with pytest.raises(ConfigError, match="multiple discovery or bootstrap options"):
        datastore_config_from_env({"ETCD_ENDPOINTS": "http://a:1", "ETCD_DISCOVERY_SRV": "example.com"})


def test_missing_tls_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="ETCD_CA_CERT_FILE: file .*/nope.pem does not exist"):
        datastore_config_from_env({"ETCD_ENDPOINTS": "https://a:1", "ETCD_CA_CERT_FILE": str(tmp_path / "nope.pem")})


def test_calicoctl_config_file(tmp_path):
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   "spec:\n  datastoreType: etcdv3\n  etcdEndpoints: http://127.0.0.1:2379\n")
    assert datastore_config_from_file(str(cfg)).etcd_endpoints == ("http://127.0.0.1:2379",)
    # An explicit --config wins over the environment.
    assert calicoctl_datastore_config(str(cfg), {"ETCD_ENDPOINTS": "http://x:1"}).etcd_endpoints == \
        ("http://127.0.0.1:2379",)


def test_calicoctl_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        datastore_config_from_file(str(tmp_path / "missing.cfg"))
    bad = tmp_path / "bad.cfg"
    bad.write_text("apiVersion: projectcalico.org/v2\nkind: CalicoAPIConfig\n")
    with pytest.raises(ConfigError, match="expected apiVersion 'projectcalico.org/v3'"):
        datastore_config_from_file(str(bad))


def test_host_paths_follow_the_environment():
    default = Paths.from_env({})
    assert default.nodename_file == Path("/var/lib/calico/nodename")
    assert default.bird_socket == Path("/var/run/calico/bird.ctl")
    assert default.confd_output_dir == Path("/etc/calico/confd/config")
    moved = Paths.from_env({"CALICO_RUN_DIR": "/tmp/n1/run", "CALICO_LIB_DIR": "/tmp/n1/lib",
                            "CALICO_CONFIG_DIR": "/tmp/n1/etc", "CALICO_LOG_DIR": "/tmp/n1/log"})
    assert moved.bird6_socket == Path("/tmp/n1/run/bird6.ctl")
    assert moved.nodename_file == Path("/tmp/n1/lib/nodename")
    assert moved.confd_output_dir == Path("/tmp/n1/etc/confd/config")
    assert moved.log_dir == Path("/tmp/n1/log")
