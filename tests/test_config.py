"""Datastore configuration and host paths, as every role reads them."""
import re
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
    with pytest.raises(ConfigError, match="unknown APIVersion 'projectcalico.org/v2'"):  # libcalico-go's words
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


@pytest.mark.parametrize("value,problem", [
    ("http://[::1", "ETCD_ENDPOINTS='http://[::1' is not a valid URL (Invalid IPv6 URL)"),
    ("unix:///run/etcd.sock", "has unsupported scheme 'unix'"),
    ("http://a:1,,http://b:1", "entry 2 is empty"),
    ("http://a:1,", "entry 2 is empty"),
    ("http://a:1, https://:2379", "entry 'https://:2379' has no host name"),
    ("http://a:70000", "Port out of range"),
    ("http://a:0", "has port 0"),
    ("http://a:2379/v3/kv", "a path, query or user part"),
    ("http://user:pw@a:2379", "a path, query or user part"),
    # Python >= 3.11.4 rejects this in urlsplit, older ones in our own check.
    ("http://[10.0.0.1]:2379", r"IPv4 address cannot be in brackets|not an IPv6 address"),
    ("http://bad_host!:2379", "not a valid host name"),
])
def test_malformed_endpoints_are_config_errors_naming_variable_and_value(value, problem):
    with pytest.raises(ConfigError) as info:
        datastore_config_from_env({"ETCD_ENDPOINTS": value})
    assert str(info.value).startswith(f"ETCD_ENDPOINTS={value!r}")
    assert re.search(problem if "|" in problem else re.escape(problem), str(info.value)), str(info.value)
    assert "http://HOST[:PORT]" in str(info.value) or "empty" in str(info.value)


def test_endpoint_forms_that_are_accepted():
    from node.config import parse_etcd_endpoint

    assert parse_etcd_endpoint("10.0.0.1:2379").url == "http://10.0.0.1:2379"
    assert parse_etcd_endpoint("https://etcd-0.etcd.kube-system.svc/").target == "etcd-0.etcd.kube-system.svc:2379"
    assert parse_etcd_endpoint("http://[fd00::1]:12379").target == "[fd00::1]:12379"
    assert parse_etcd_endpoint("[fd00::1]").url == "http://[fd00::1]:2379"
    cfg = datastore_config_from_env({"ETCD_ENDPOINTS": " http://a:1 ,https://b:2"})
    assert cfg.etcd_endpoints == ("http://a:1", "https://b:2")
    # Blank means unset: the kubernetes datastore is chosen, as Calico does.
    assert datastore_config_from_env({"ETCD_ENDPOINTS": "  "}).datastore_type == KUBERNETES


def _openssl(cwd: Path, *args: str) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pems(tmp_path_factory) -> Path:
    """Two self-signed certificate/key pairs, an encrypted key and a non-PEM file."""
    root = tmp_path_factory.mktemp("pems")
    for name in ("a", "b"):
        _openssl(root, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}")
    _openssl(root, "pkey", "-in", "a.key", "-aes256", "-passout", "pass:secret", "-out", "encrypted.key")
    (root / "garbage.pem").write_text("not a certificate\n")
    return root


def test_tls_files_must_hold_usable_pem(pems):
    def config(**files):
        return datastore_config_from_env({"ETCD_ENDPOINTS": "https://a:1", **{k: str(pems / v) for k, v in files.items()}})

    good = config(ETCD_CA_CERT_FILE="b.crt", ETCD_CERT_FILE="a.crt", ETCD_KEY_FILE="a.key")
    assert good.etcd_key_file == str(pems / "a.key")
    cases = [
        (dict(ETCD_CA_CERT_FILE="garbage.pem"), f"ETCD_CA_CERT_FILE={pems}/garbage.pem: no PEM certificate"),
        (dict(ETCD_CA_CERT_FILE="a.key"), f"ETCD_CA_CERT_FILE={pems}/a.key: no PEM certificate"),
        (dict(ETCD_CERT_FILE="garbage.pem", ETCD_KEY_FILE="a.key"), f"ETCD_CERT_FILE={pems}/garbage.pem: no PEM"),
        (dict(ETCD_CERT_FILE="a.crt", ETCD_KEY_FILE="garbage.pem"), f"ETCD_KEY_FILE={pems}/garbage.pem: no PEM private key"),
        (dict(ETCD_CERT_FILE="a.crt", ETCD_KEY_FILE="b.key"),
         f"ETCD_KEY_FILE={pems}/b.key is not the key of the certificate in ETCD_CERT_FILE={pems}/a.crt"),
        (dict(ETCD_CERT_FILE="a.crt", ETCD_KEY_FILE="encrypted.key"), "the private key is encrypted"),
        (dict(ETCD_KEY_FILE="a.key"), "ETCD_KEY_FILE=" + str(pems / "a.key") + " is set but ETCD_CERT_FILE is not"),
    ]
    for files, message in cases:
        with pytest.raises(ConfigError) as info:
            config(**files)
        assert message in str(info.value), (files, str(info.value))
    # The variable actually read is the one named.
    with pytest.raises(ConfigError, match="^CALICO_ETCD_CA_CERT_FILE="):
        datastore_config_from_env({"ETCD_ENDPOINTS": "https://a:1", "CALICO_ETCD_CA_CERT_FILE": str(pems / "garbage.pem")})
