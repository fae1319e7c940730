"""Configuring the Kubernetes datastore as Calico reads it: environment, kubeconfig,
in-cluster service account, API endpoint overrides, the CRD group."""
from __future__ import annotations

import json
import time

import pytest

from kube_standin import KubeStandin, make_tls
from node.config import KUBERNETES, DatastoreConfig, datastore_config_from_env, datastore_config_from_file
from node.datastore.client import DatastoreClient
from node.datastore.factory import client_for, kv_for
from node.datastore.kubernetes.api import TokenBucket
from node.datastore.kubernetes.clientconfig import client_configuration, explicit_group, kubeconfig_source, rate_limit
from node.datastore.kubernetes.kv import KubeKV
from node.errors import ConfigError, Unauthorized


def test_environment_selects_and_configures_the_kubernetes_datastore(tmp_path):
    cfg = datastore_config_from_env({"KUBECONFIG": "/k/config", "CALICO_K8S_API_ENDPOINT": "https://10.0.0.1:6443",
                                     "K8S_API_ENDPOINT": "ignored", "K8S_CA_FILE": "/ca", "USE_POD_CIDR": "true",
                                     "CALICO_API_GROUP": "projectcalico.org/v3", "K8S_CURRENT_CONTEXT": "ctx",
                                     "K8S_INSECURE_SKIP_TLS_VERIFY": "true"})
    assert cfg.datastore_type == KUBERNETES and cfg.kubeconfig == "/k/config"
    assert cfg.extra == {"k8sAPIEndpoint": "https://10.0.0.1:6443", "k8sCAFile": "/ca", "usePodCIDR": "true",
                         "calicoAPIGroup": "projectcalico.org/v3", "k8sCurrentContext": "ctx",
                         "k8sInsecureSkipTLSVerify": "true"}
    path = tmp_path / "calicoctl.cfg"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n"
                    "  kubeconfig: /k/config\n  k8sAPIToken: secret\n  k8sInsecureSkipTLSVerify: true\n")
    cfg = datastore_config_from_file(str(path))
    assert cfg.kubeconfig == "/k/config"
    assert cfg.extra == {"k8sAPIToken": "secret", "k8sInsecureSkipTLSVerify": "true"}


def _kubeconfig(path, server, context="main", token="", extra_contexts=()):
    contexts = [{"name": context, "context": {"cluster": "c", "user": "u"}}]
    contexts += [{"name": n, "context": {"cluster": n, "user": "u"}} for n, _ in extra_contexts]
    clusters = [{"name": "c", "cluster": {"server": server}}] + [{"name": n, "cluster": {"server": s}}
                                                                 for n, s in extra_contexts]
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "current-context": context,
                                "clusters": clusters, "contexts": contexts,
                                "users": [{"name": "u", "user": {"token": token} if token else {}}]}))
    return path


def test_kubeconfig_files_contexts_and_overrides(tmp_path):
    first = _kubeconfig(tmp_path / "a", "https://first:6443", token="t1", extra_contexts=(("other", "https://o:1"),))
    second = _kubeconfig(tmp_path / "b", "https://second:6443")
    conf = client_configuration(DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=f"{first}:{second}"), {})
    assert conf.host == "https://first:6443"  # a path list: the first file wins
    assert conf.api_key["BearerToken"].endswith("t1")
    conf = client_configuration(DatastoreConfig(datastore_type=KUBERNETES, kubeconfig=str(first),
                                                extra={"k8sCurrentContext": "other"}), {})
    assert conf.host == "https://o:1"
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    conf = client_configuration(DatastoreConfig(
        datastore_type=KUBERNETES, kubeconfig=str(first),
        extra={"k8sAPIEndpoint": "https://override:443", "k8sCAFile": str(ca), "k8sInsecureSkipTLSVerify": "true",
               "k8sAPIToken": "t2"}), {})
    assert (conf.host, conf.ssl_ca_cert, conf.verify_ssl) == ("https://override:443", str(ca), False)
    assert conf.api_key["BearerToken"] == "t2" and conf.api_key_prefix["BearerToken"] == "Bearer"


@pytest.mark.parametrize("config, message", [
    (DatastoreConfig(datastore_type=KUBERNETES, kubeconfig="/nonexistent"), "KUBECONFIG=/nonexistent: no such file"),
    (DatastoreConfig(datastore_type=KUBERNETES), "no Kubernetes API configuration: set KUBECONFIG"),
    (DatastoreConfig(datastore_type=KUBERNETES, extra={"k8sAPIEndpoint": "http://h:1", "k8sCAFile": "/no/ca"}),
     "K8S_CA_FILE: file /no/ca does not exist"),
    (DatastoreConfig(datastore_type=KUBERNETES, extra={"k8sAPIEndpoint": "http://h:1",
                                                       "k8sInsecureSkipTLSVerify": "maybe"}),
     "K8S_INSECURE_SKIP_TLS_VERIFY='maybe' is not a boolean"),
    (DatastoreConfig(datastore_type=KUBERNETES, extra={"k8sAPIEndpoint": "h:1"}), "must be an http:// or https://"),
])
def test_configuration_errors_name_the_setting(config, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        client_configuration(config, {"HOME": str(tmp_path)})


def test_home_kubeconfig_is_the_default(tmp_path):
    (tmp_path / ".kube").mkdir()
    _kubeconfig(tmp_path / ".kube" / "config", "https://home:6443")
    config = DatastoreConfig(datastore_type=KUBERNETES)
    assert kubeconfig_source(config, {"HOME": str(tmp_path)}) == f"kubeconfig:{tmp_path}/.kube/config"
    assert client_configuration(config, {"HOME": str(tmp_path)}).host == "https://home:6443"
    assert kubeconfig_source(config, {"HOME": str(tmp_path)}, home_fallback=False) == ""


def test_api_group_values():
    assert explicit_group(DatastoreConfig(extra={"calicoAPIGroup": "ProjectCalico.org/V3"})) == "projectcalico.org/v3"
    assert explicit_group(DatastoreConfig(extra={"calicoAPIGroup": "crd.projectcalico.org/v1"})) == \
        "crd.projectcalico.org/v1"
    assert explicit_group(DatastoreConfig()) == ""
    with pytest.raises(ConfigError, match="CALICO_API_GROUP='v9' is not a Calico API group"):
        explicit_group(DatastoreConfig(extra={"calicoAPIGroup": "v9"}))


def test_in_cluster_service_account_over_tls(tmp_path):
    ca, cert, key = make_tls(tmp_path)
    with KubeStandin(token="sa-token", tls=(cert, key)) as server:
        sa_dir = tmp_path / "serviceaccount"
        sa_dir.mkdir()
        (sa_dir / "token").write_text("sa-token")
        (sa_dir / "ca.crt").write_text(ca.read_text())
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port)}
        config = DatastoreConfig(datastore_type=KUBERNETES)
        assert kubeconfig_source(config, env, str(sa_dir)) == "in-cluster"
        conf = client_configuration(config, env, str(sa_dir))
        assert conf.host == f"https://127.0.0.1:{server.port}"
        with KubeKV(config, env, configuration=conf) as kv:
            assert DatastoreClient(kv).list("Profile")[0].name == "kns.default"
        # A wrong token is refused by the server: Unauthorized, naming the request.
        (sa_dir / "token").write_text("stolen")
        with KubeKV(config, env, configuration=client_configuration(config, env, str(sa_dir))) as kv:
            with pytest.raises(Unauthorized, match="401 Unauthorized"):
                DatastoreClient(kv).list("Profile")


def test_kubeconfig_token_over_tls_and_the_factory(tmp_path):
    ca, cert, key = make_tls(tmp_path)
    with KubeStandin(token="user-token", tls=(cert, key)) as server:
        path = server.kubeconfig(tmp_path / "kubeconfig", token="user-token", ca=ca)
        config = datastore_config_from_env({"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(path)})
        kv = kv_for(config)
        try:
            assert isinstance(kv, KubeKV)
        finally:
            kv.close()
        client = client_for(config)
        try:
            assert [n.name for n in client.list("Node")] == []
        finally:
            client.kv.close()


# -- the client's rate limit (K8S_CLIENT_QPS / K8S_CLIENT_BURST) ---------------------------

def test_rate_limit_settings_as_calico_reads_them(tmp_path):
    def limit(**env):
        return rate_limit(datastore_config_from_env({"DATASTORE_TYPE": "kubernetes", **env}))

    assert limit() == (5.0, 100)  # client-go's QPS, Calico's burst
    assert limit(K8S_CLIENT_QPS="20.5", K8S_CLIENT_BURST="7") == (20.5, 7)
    assert limit(K8S_CLIENT_QPS="0", K8S_CLIENT_BURST="0") == (5.0, 100)  # 0 means unset, as in Calico
    assert limit(K8S_CLIENT_QPS="-1") is None  # client-go: a negative QPS turns the limit off
    assert limit(K8S_CLIENT_QPS="-1", K8S_CLIENT_BURST="-3") is None  # (no limit: no burst to check)
    for env, message in (({"K8S_CLIENT_QPS": "fast"}, "K8S_CLIENT_QPS='fast' is not a number"),
                         ({"K8S_CLIENT_BURST": "1.5"}, "K8S_CLIENT_BURST='1.5' is not a whole number"),
                         ({"K8S_CLIENT_BURST": "-3"}, "K8S_CLIENT_BURST='-3' must be positive")):
        with pytest.raises(ConfigError, match=message):
            limit(**env)
    path = tmp_path / "calicoctl.cfg"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n  datastoreType: kubernetes\n"
                    "  kubeconfig: /k/config\n  k8sClientQPS: 50\n  k8sClientBurst: 20\n")
    assert rate_limit(datastore_config_from_file(str(path))) == (50.0, 20)


def test_token_bucket_allows_the_burst_then_paces_requests_in_order():
    now = [100.0]
    waits = []

    def sleep(seconds):
        waits.append(seconds)

    bucket = TokenBucket(qps=2.0, burst=3, clock=lambda: now[0], sleep=sleep)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    # Two more at the same instant: each reserves the next token in turn.
    assert [bucket.acquire() for _ in range(2)] == [0.5, 1.0]
    assert waits == [0.5, 1.0]
    now[0] += 60.0  # a long pause refills the bucket to its burst, not beyond
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire() == 0.5
    with pytest.raises(ValueError):
        TokenBucket(qps=0, burst=1)


def test_requests_to_the_api_server_are_rate_limited(tmp_path):
    with KubeStandin() as server:
        path = server.kubeconfig(tmp_path / "kubeconfig")
        env = {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(path), "CALICO_API_GROUP": "crd.projectcalico.org/v1"}
        kv = KubeKV(datastore_config_from_env(dict(env, K8S_CLIENT_QPS="20", K8S_CLIENT_BURST="5")), env={})
        try:
            started = time.monotonic()
            for _ in range(25):
                assert kv.get("/calico/resources/v3/projectcalico.org/ippools/none") is None
            # 5 at once, then 20 more at 20 a second: at least a second.
            assert time.monotonic() - started >= 0.95
        finally:
            kv.close()
        # Watches take no token (client-go does not limit them): with one token a second
        # at most, three watches and then a read all go at once.
        slow = KubeKV(datastore_config_from_env(dict(env, K8S_CLIENT_QPS="0.5", K8S_CLIENT_BURST="1")), env={})
        watches = []
        try:
            started = time.monotonic()
            for _ in range(3):
                watches.append(slow.api.watch("/apis/crd.projectcalico.org/v1/ippools", "0", timeout_seconds=5))
            assert slow.get("/calico/resources/v3/projectcalico.org/ippools/none") is None
            assert time.monotonic() - started < 1.0
        finally:
            for w in watches:
                w.close()
            slow.close()
        unlimited = KubeKV(datastore_config_from_env(dict(env, K8S_CLIENT_QPS="-1")), env={})
        try:
            assert unlimited.api._limiter is None
        finally:
            unlimited.close()
