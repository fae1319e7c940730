"""The CNI token monitor (node/cni_token.py, ``calico-node monitor-token``).

* the kubeconfig text, the refresh schedule, CNI_TOKEN_REFRESH_INTERVAL and the token
  parsing, as pure functions (the JWT cases are those of Calico's own tests);
* the monitor against the stand-in API server: the TokenRequest it sends and the file it
  writes (kubeconfig and in-cluster configurations, over TLS), short-lived tokens refreshed
  before they expire, a failing API server leaving the old file in place while the monitor
  retries, a kubeconfig that cannot be written keeping its token (the write retried with
  backoff, no TokenRequest per retry), a server without the TokenRequest API, the pod's
  own token being rotated;
* the role as a process: refreshing until SIGTERM, ``--run-once``, Calico's legacy flag,
  and what it says without a Kubernetes configuration or with CALICO_MANAGE_CNI=false.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kdd_fixtures import kube  # noqa: F401  (fixture)
from kdd_fixtures import service_account, wait_for
from kube_standin import KubeStandin, make_tls
from node import cni_token as ct
from node.cli.calico_node import translate_legacy

CALICO_NODE = str(Path(sys.executable).parent / "calico-node")
TOKEN_PATH = "/api/v1/namespaces/kube-system/serviceaccounts/calico-cni-plugin/token"

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUQ2FsaWNv\n-----END CERTIFICATE-----\n"
# What calico/node writes for that CA, server and token (its template, filled in by hand).
EXPECTED_KUBECONFIG = """# Kubeconfig file for Calico CNI plugin. Installed by calico/node.
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://10.96.0.1:443
    certificate-authority-data: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkekNDQVIyZ0F3SUJBZ0lVUTJGc2FXTnYKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
users:
- name: calico
  user:
    token: header.claims.signature
contexts:
- name: calico-context
  context:
    cluster: local
    user: calico
current-context: calico-context"""


def make_jwt(claims_json: str) -> str:
    """A JWT-shaped token (base64url without padding, as real ones are)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    return ".".join((b64(b'{"alg":"none","typ":"JWT"}'), b64(claims_json.encode()), b64(b"sig")))


# -- pure parts ------------------------------------------------------------------------------

def test_the_kubeconfig_is_byte_for_byte_calicos():
    assert ct.kubeconfig_text("https://10.96.0.1:443", CA_PEM, "header.claims.signature") == EXPECTED_KUBECONFIG
    # No CA (a plain-HTTP server): the field stays, empty, as Go's base64 of nothing.
    empty = ct.kubeconfig_text("http://127.0.0.1:8080", b"", "t")
    assert '    certificate-authority-data: ""\n' in empty
    assert "    server: http://127.0.0.1:8080\n" in empty


def test_the_token_request_asks_for_a_day_and_the_servers_own_audience():
    assert ct.token_request() == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                  "metadata": {}, "spec": {"audiences": [], "expirationSeconds": 86400}}


def test_names_and_paths_follow_their_variables():
    assert ct.service_account_name({}) == "calico-cni-plugin"
    assert ct.service_account_name({"CALICO_CNI_SERVICE_ACCOUNT": "cni-sa"}) == "cni-sa"
    assert ct.kubeconfig_path({}) == Path("/host/etc/cni/net.d/calico-kubeconfig")
    assert ct.kubeconfig_path({"CALICO_CNI_NET_DIR": "/tmp/x/net.d"}) == Path("/tmp/x/net.d/calico-kubeconfig")


NOW = 1_700_000_000.0


@pytest.mark.parametrize("expires, override, jitter, delay", [
    (NOW + 86400, None, 0.0, 21600.0),      # a quarter of a day's token...
    (NOW + 86400, None, 0.5, 32400.0),      # ...plus the jitter: 6 to 12 hours
    (NOW + 86400, 90.0, 0.0, 90.0),         # CNI_TOKEN_REFRESH_INTERVAL replaces the quarter
    (NOW + 86400, 90.0, 0.5, 135.0),        # and is jittered too
    (NOW + 40, None, 0.0, 10.0),
    (NOW + 20, None, 0.0, 5.0),             # exactly 20 s left: still a quarter
    (NOW + 19, None, 0.0, 5.0),             # under 20 s left: the 5 s minimum...
    (NOW + 19, 3600.0, 0.0, 5.0),           # ...whatever the override says
    (NOW - 100, None, 0.5, 7.5),            # already expired
    (None, None, 0.0, 5.0),                 # the last attempt failed: 5 to 10 s
    (None, 3600.0, 0.999, 9.995),
])
def test_refresh_schedule(expires, override, jitter, delay):
    assert ct.refresh_delay(expires, NOW, override, jitter) == pytest.approx(delay)


def test_the_refresh_comes_before_expiry_whatever_the_jitter():
    for left in (21.0, 600.0, 86400.0):
        assert ct.refresh_delay(NOW + left, NOW, None, 0.9999) < left


def test_refresh_interval_override():
    assert ct.refresh_override({}) == (None, "")
    assert ct.refresh_override({"CNI_TOKEN_REFRESH_INTERVAL": "1h30m"}) == (5400.0, "")
    assert ct.refresh_override({"CNI_TOKEN_REFRESH_INTERVAL": "500ms"}) == (0.5, "")
    seconds, problem = ct.refresh_override({"CNI_TOKEN_REFRESH_INTERVAL": "often"})
    assert seconds is None and "CNI_TOKEN_REFRESH_INTERVAL='often' is not a Go duration" in problem
    for text in ("0s", "-1m"):
        seconds, problem = ct.refresh_override({"CNI_TOKEN_REFRESH_INTERVAL": text})
        assert seconds is None and "must be longer than zero" in problem


@pytest.mark.parametrize("claims", ['{"exp":"not-a-number"}', '{"exp":true}', '{"exp":null}',
                                    '{"exp":{"nested":1}}'])
def test_a_jwt_whose_exp_is_not_a_number_is_refused(claims):
    with pytest.raises(ct.TokenError, match="exp claim .* is not a number"):
        ct.token_from_jwt(make_jwt(claims), "/sa/token")


def test_jwt_expiry():
    with pytest.raises(ct.TokenError, match="/sa/token: the JWT has no exp claim"):
        ct.token_from_jwt(make_jwt('{"sub":"system:serviceaccount:kube-system:calico-cni-plugin"}'), "/sa/token")
    with pytest.raises(ct.TokenError, match="not a JWT .*2 dot-separated parts"):
        ct.token_from_jwt("a.b", "/sa/token")
    token = make_jwt('{"exp":4102444800}')  # 2100-01-01T00:00:00Z
    assert ct.token_from_jwt(token, "/sa/token") == ct.Token(token, 4102444800.0)


def test_token_request_answers():
    what = "TokenRequest for service account kube-system/calico-cni-plugin"
    answer = {"status": {"token": "abc", "expirationTimestamp": "2100-01-01T00:00:00Z"}}
    assert ct.token_from_response(answer, what) == ct.Token("abc", 4102444800.0)
    with pytest.raises(ct.TokenError, match=f"{what}: the answer has no status.token"):
        ct.token_from_response({"status": {"expirationTimestamp": "2100-01-01T00:00:00Z"}}, what)
    with pytest.raises(ct.TokenError, match="status.expirationTimestamp 'tomorrow' is not an RFC 3339 time"):
        ct.token_from_response({"status": {"token": "abc", "expirationTimestamp": "tomorrow"}}, what)
    with pytest.raises(ct.TokenError, match="the answer has no status"):
        ct.token_from_response({"kind": "Status"}, what)


def test_the_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "calico-kubeconfig"
    ct.write_secret_file(path, "old token")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ct.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ct.write_secret_file(path, "new token")
    assert path.read_text() == "old token"
    assert [p.name for p in tmp_path.iterdir()] == ["calico-kubeconfig"]


# -- the monitor against the stand-in ------------------------------------------------------------

@pytest.fixture
def sa_dir(tmp_path) -> Path:
    """calico-node's own service account directory, as the kubelet mounts it."""
    d = tmp_path / "serviceaccount"
    d.mkdir()
    (d / "namespace").write_text("kube-system")
    return d


@pytest.fixture
def net_dir(tmp_path) -> Path:
    d = tmp_path / "net.d"
    d.mkdir()
    return d


def _env(kubeconfig: Path, net_dir: Path, **extra) -> dict[str, str]:
    return {"KUBECONFIG": str(kubeconfig), "CALICO_CNI_NET_DIR": str(net_dir), **extra}


def _issued(server: KubeStandin) -> list[str]:
    return [answer["status"]["token"] for _, _, _, answer in list(server.token_requests)]


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Running:
    """A TokenMonitor.run in a thread, stopped (and joined) on exit, even on failure."""

    def __init__(self, monitor: ct.TokenMonitor):
        self.monitor = monitor
        self.stop = threading.Event()
        self.thread = threading.Thread(target=monitor.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> "Running":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the monitor did not stop"


def test_writes_calicos_kubeconfig_from_a_tokenrequest_over_tls(tmp_path, sa_dir, net_dir):
    from kubernetes.client import Configuration
    from kubernetes.config.kube_config import load_kube_config

    ca, cert, key = make_tls(tmp_path)
    with KubeStandin(tls=(cert, key)) as server:
        service_account(server, "kube-system", "calico-cni-plugin")
        env = _env(server.kubeconfig(tmp_path / "kubeconfig", ca=ca), net_dir)
        token = ct.TokenMonitor(env, ct.read_namespace(str(sa_dir)), str(sa_dir)).refresh()
        [(namespace, name, body, answer)] = server.token_requests
    assert ("POST", TOKEN_PATH) in server.requests
    assert (namespace, name) == ("kube-system", "calico-cni-plugin")
    assert body["spec"] == {"audiences": [], "expirationSeconds": 86400}
    issued = answer["status"]["token"]
    assert token == ct.Token(issued, ct.parse_timestamp(answer["status"]["expirationTimestamp"]))
    assert 86390 < token.expires - time.time() <= 86400
    path = net_dir / "calico-kubeconfig"
    assert path.read_text() == ct.kubeconfig_text(server.url, ca.read_bytes(), issued)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in net_dir.iterdir()) == ["calico-kubeconfig"]  # no temp file left
    # The CNI plugin's view of it: this server, its CA, the issued token.
    conf = Configuration()
    load_kube_config(config_file=str(path), client_configuration=conf, persist_config=False)
    assert conf.host == server.url
    assert Path(conf.ssl_ca_cert).read_bytes() == ca.read_bytes()
    assert conf.api_key["BearerToken"] == f"Bearer {issued}"


def test_in_cluster_the_server_is_the_service_address_and_the_ca_the_pods(tmp_path, sa_dir, net_dir):
    ca, cert, key = make_tls(tmp_path)
    with KubeStandin(token="node-sa-token", tls=(cert, key), namespaces=("calico-system",)) as server:
        service_account(server, "calico-system", "cni-sa")
        (sa_dir / "namespace").write_text("calico-system")
        (sa_dir / "token").write_text("node-sa-token")
        (sa_dir / "ca.crt").write_bytes(ca.read_bytes())
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port),
               "CALICO_CNI_SERVICE_ACCOUNT": "cni-sa", "CALICO_CNI_NET_DIR": str(net_dir)}
        assert ct.check_kube_config(env, str(sa_dir)) == "in-cluster service account"
        monitor = ct.TokenMonitor(env, ct.read_namespace(str(sa_dir)), str(sa_dir))
        token = monitor.refresh()
    assert ("POST", "/api/v1/namespaces/calico-system/serviceaccounts/cni-sa/token") in server.requests
    assert _claims(token.token)["sub"] == "system:serviceaccount:calico-system:cni-sa"
    assert (net_dir / "calico-kubeconfig").read_text() == ct.kubeconfig_text(
        f"https://127.0.0.1:{server.port}", ca.read_bytes(), token.token)


def test_short_lived_tokens_are_replaced_before_they_expire(kube, sa_dir, net_dir, tmp_path):
    service_account(kube, "kube-system", "calico-cni-plugin")
    kube.token_max_seconds = 3  # the server hands out 3-second tokens
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), net_dir)
    # The largest jitter: still a refresh before expiry. A 0.1 s minimum so that a
    # 3-second token is refreshed after a quarter of its life, not clamped.
    monitor = ct.TokenMonitor(env, "kube-system", str(sa_dir), min_retry=0.1, jitter=lambda: 0.999)
    with Running(monitor):
        wait_for(lambda: len(kube.token_requests) >= 3, timeout=15, what="three TokenRequests")
        wait_for(lambda: (net_dir / "calico-kubeconfig").read_text().count(_issued(kube)[-1]) == 1, timeout=5,
                 what="the latest token in the file")
    answers = [answer for _, _, _, answer in list(kube.token_requests)]
    for previous, following in zip(answers, answers[1:]):
        earlier, later = _claims(previous["status"]["token"]), _claims(following["status"]["token"])
        assert later["iat"] < earlier["exp"], "a token was replaced only after it expired"
        assert later["iat"] >= earlier["iat"]
    # Paced by the tokens' lifetime (about 1 to 1.5 s here), not retried in a tight loop.
    assert len(answers) <= 6


def test_a_failing_api_server_leaves_the_old_file_and_is_retried(kube, sa_dir, net_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cni-config-monitor")
    service_account(kube, "kube-system", "calico-cni-plugin")
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), net_dir, CNI_TOKEN_REFRESH_INTERVAL="200ms")
    path = net_dir / "calico-kubeconfig"
    monitor = ct.TokenMonitor(env, "kube-system", str(sa_dir), min_retry=0.1, jitter=lambda: 0.0)

    def posts() -> int:
        return sum(1 for method, p in list(kube.requests) if (method, p) == ("POST", TOKEN_PATH))

    def failures() -> list[str]:
        return [r.getMessage() for r in list(caplog.records) if r.levelno == logging.ERROR]

    with Running(monitor):
        wait_for(path.exists, what="the first kubeconfig")
        kube.delete("v1", "serviceaccounts", "calico-cni-plugin", "kube-system")
        wait_for(failures, what="a failed TokenRequest")  # from now on every attempt fails
        before = path.read_text()
        assert before.count(_issued(kube)[-1]) == 1
        start, started = posts(), time.monotonic()
        wait_for(lambda: posts() >= start + 4, what="retried TokenRequests")
        elapsed = time.monotonic() - started
        assert path.read_text() == before  # the old token stays usable meanwhile
        assert posts() - start <= elapsed / 0.1 + 2  # retried at the minimum interval, no faster
        assert any("kube-system/calico-cni-plugin" in m and '404 NotFound: serviceaccounts "calico-cni-plugin" '
                   "not found" in m for m in failures()), failures()
        # The API server goes away altogether: still the old file, still retrying.
        kube.stop()
        wait_for(lambda: any("cannot reach the Kubernetes API" in m for m in failures()),
                 what="a failed attempt while the API server is down")
        assert path.read_text() == before
        kube.start()
        service_account(kube, "kube-system", "calico-cni-plugin")
        wait_for(lambda: path.read_text() != before, what="a new token once the service account is back")
    assert path.read_text().count(_issued(kube)[-1]) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_the_tokenrequest_api_the_pods_own_token_is_used(kube, sa_dir, net_dir, tmp_path):
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), net_dir)
    own = make_jwt('{"exp":4102444800,"sub":"system:serviceaccount:kube-system:calico-node"}')
    (sa_dir / "token").write_text(own)
    # The TokenRequest API is served but the service account is missing: an error, no fallback.
    with pytest.raises(ct.TokenError, match="kube-system/calico-cni-plugin failed: .*404 NotFound"):
        ct.TokenMonitor(env, "kube-system", str(sa_dir)).refresh()
    assert not (net_dir / "calico-kubeconfig").exists()
    kube.token_request_api = False
    token = ct.TokenMonitor(env, "kube-system", str(sa_dir)).refresh()
    assert token == ct.Token(own, 4102444800.0)
    assert (net_dir / "calico-kubeconfig").read_text() == ct.kubeconfig_text(kube.url, b"", own)
    assert ("GET", "/api/v1") in kube.requests


def test_a_missing_cni_directory_is_named_and_nothing_is_created(kube, sa_dir, tmp_path):
    service_account(kube, "kube-system", "calico-cni-plugin")
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "absent")
    with pytest.raises(ct.TokenError, match=r"cannot write the CNI kubeconfig .*/absent/calico-kubeconfig: .*"
                                            r"does not exist; CALICO_CNI_NET_DIR moves it"):
        ct.TokenMonitor(env, "kube-system", str(sa_dir)).refresh()
    assert not (tmp_path / "absent").exists()


class CountedWrites:
    """Wraps cni_token.write_secret_file: when each write was tried, and with which token."""

    def __init__(self, monkeypatch):
        self.attempts: list[tuple[float, str]] = []
        real = ct.write_secret_file

        def counted(path, content, *args, **kwargs):
            self.attempts.append((time.monotonic(), content.split("    token: ")[1].split("\n")[0]))
            return real(path, content, *args, **kwargs)

        monkeypatch.setattr(ct, "write_secret_file", counted)


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.levelno >= logging.ERROR]


def test_an_unwritable_kubeconfig_keeps_its_token_and_retries_only_the_write(kube, sa_dir, tmp_path, caplog,
                                                                             monkeypatch):
    """CALICO_CNI_NET_DIR missing, then not a directory: the one token issued is kept and
    written once the directory is there; no TokenRequest per retry, the write retried with
    a capped backoff, each distinct failure logged once."""
    caplog.set_level(logging.DEBUG, logger="cni-config-monitor")
    service_account(kube, "kube-system", "calico-cni-plugin")
    net_dir = tmp_path / "net.d"  # absent
    path = net_dir / "calico-kubeconfig"
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), net_dir)
    writes = CountedWrites(monkeypatch)
    monitor = ct.TokenMonitor(env, "kube-system", str(sa_dir), min_retry=0.05, write_retry_cap=0.2,
                              jitter=lambda: 0.0)
    with Running(monitor):
        wait_for(lambda: len(writes.attempts) >= 8, timeout=10, what="retried writes")
        assert len(kube.token_requests) == 1  # a day-long token: its refresh is hours away
        [issued] = _issued(kube)
        assert {token for _, token in writes.attempts} == {issued}
        # Backoff: 0.05 s, twice as long each time, capped at 0.2 s.
        gaps = [b[0] - a[0] for a, b in zip(writes.attempts, writes.attempts[1:])]
        assert 0.04 <= gaps[0] < 0.5, gaps
        assert gaps[1] >= 0.09 and all(gap >= 0.18 for gap in gaps[2:]), gaps
        assert all(gap < 1.0 for gap in gaps), gaps  # uncapped, the seventh would be 3.2 s
        [missing] = _errors(caplog)
        assert f"cannot write the CNI kubeconfig {path}: No such file or directory" in missing
        assert "does not exist; CALICO_CNI_NET_DIR moves it" in missing
        assert "keeping the token issued" in missing
        # Another failure: logged once more, once.
        net_dir.write_text("a file where the directory should be")
        wait_for(lambda: len(_errors(caplog)) == 2, what="the new failure logged")
        tried = len(writes.attempts)
        wait_for(lambda: len(writes.attempts) >= tried + 3, what="more retried writes")
        assert len(_errors(caplog)) == 2 and "Not a directory" in _errors(caplog)[1]
        # The directory appears: the token already issued is written, no new request.
        net_dir.unlink()
        net_dir.mkdir()
        wait_for(path.exists, timeout=5, what="the kubeconfig")
        tried = len(writes.attempts)
        time.sleep(0.5)
        assert len(writes.attempts) == tried  # written: nothing more until the refresh
    assert len(kube.token_requests) == 1
    assert path.read_text() == ct.kubeconfig_text(kube.url, b"", issued)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    messages = [r.getMessage() for r in caplog.records]
    assert any(m == f"The CNI kubeconfig {path} can be written again" for m in messages), messages
    assert len(_errors(caplog)) == 2


def test_while_the_write_fails_tokens_are_requested_only_at_their_refresh_time(kube, sa_dir, tmp_path,
                                                                                 monkeypatch):
    """Short-lived (3 s) tokens and a directory that never appears: a new token when the
    old one is due for refresh (about every 0.75 s), not one per write attempt."""
    service_account(kube, "kube-system", "calico-cni-plugin")
    kube.token_max_seconds = 3
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), tmp_path / "absent")
    writes = CountedWrites(monkeypatch)
    monitor = ct.TokenMonitor(env, "kube-system", str(sa_dir), min_retry=0.05, write_retry_cap=0.1,
                              jitter=lambda: 0.0)
    with Running(monitor):
        time.sleep(2.5)
    requests = len(kube.token_requests)
    assert 2 <= requests <= 5, requests  # 2.5 s / 0.75 s, give or take
    assert len(writes.attempts) >= 3 * requests  # the write was retried in between
    # Each token was tried until the next one came, and never after.
    tokens = [token for _, token in writes.attempts]
    assert tokens == sorted(tokens, key=_issued(kube).index)
    assert not (tmp_path / "absent").exists()


def test_the_manifests_rbac_lets_calico_node_request_the_cni_token_and_no_other(kube, sa_dir, net_dir, tmp_path):
    import yaml

    manifest = Path(__file__).resolve().parent.parent / "manifests" / "calico.yaml"
    role = next(d for d in yaml.safe_load_all(manifest.read_text())
                if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "calico-node")
    kube.rbac["calico-node-token"] = ("system:serviceaccount:kube-system:calico-node", role["rules"])
    service_account(kube, "kube-system", "calico-cni-plugin")
    service_account(kube, "kube-system", "other")
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token="calico-node-token")
    token = ct.TokenMonitor(_env(kubeconfig, net_dir), "kube-system", str(sa_dir)).refresh()
    assert token.token == _issued(kube)[-1]
    other = ct.TokenMonitor(_env(kubeconfig, net_dir, CALICO_CNI_SERVICE_ACCOUNT="other"), "kube-system", str(sa_dir))
    with pytest.raises(ct.TokenError, match="kube-system/other failed: .*403 Forbidden"):
        other.refresh()
    assert kube.forbidden == [("create", "serviceaccounts/token", "kube-system", "other")]
    assert (net_dir / "calico-kubeconfig").read_text().count(token.token) == 1


def _kubelet_project(directory: Path, token: str, stamp: str) -> Path:
    """Write the token as the kubelet's atomic writer does: a new timestamped directory,
    ``..data_tmp`` pointing at it renamed over ``..data``, ``token`` linking through it."""
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    new = directory / f"..{stamp}"
    new.mkdir()
    (new / "token").write_text(token)
    (new / "namespace").write_text("kube-system")
    os.symlink(new.name, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")
    for name in ("token", "namespace"):
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    if old:
        for child in (directory / old).iterdir():
            child.unlink()
        (directory / old).rmdir()
    return new


def test_a_rotated_pod_token_brings_a_new_cni_token_at_once(kube, net_dir, tmp_path):
    service_account(kube, "kube-system", "calico-cni-plugin")
    sa = tmp_path / "projected"
    sa.mkdir()
    _kubelet_project(sa, "first", "2026_01_01_00_00_00.1")
    env = _env(kube.kubeconfig(tmp_path / "kubeconfig"), net_dir)
    monitor = ct.TokenMonitor(env, ct.read_namespace(str(sa)), str(sa), rotation_poll=0.1)
    with Running(monitor):
        wait_for(lambda: len(kube.token_requests) == 1, what="the first TokenRequest")
        time.sleep(0.5)
        assert len(kube.token_requests) == 1  # the next one is hours away...
        _kubelet_project(sa, "second", "2026_01_01_01_00_00.2")
        wait_for(lambda: len(kube.token_requests) == 2, timeout=3, what="a TokenRequest after the rotation")
        time.sleep(0.5)
    assert len(kube.token_requests) == 2  # ...and one rotation brings one request
    assert (net_dir / "calico-kubeconfig").read_text().count(_issued(kube)[-1]) == 1


# -- the role as a process ---------------------------------------------------------------------

def _role_env(**extra) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}


def test_the_legacy_flag_names_the_role():
    assert translate_legacy(["-monitor-token"]) == ["monitor-token"]


def test_the_role_refreshes_until_sigterm(kube, sa_dir, net_dir, tmp_path):
    service_account(kube, "kube-system", "calico-cni-plugin")
    env = _role_env(KUBECONFIG=str(kube.kubeconfig(tmp_path / "kubeconfig")), CALICO_CNI_NET_DIR=str(net_dir),
                    CNI_TOKEN_REFRESH_INTERVAL="300ms")
    path = net_dir / "calico-kubeconfig"
    proc = subprocess.Popen([CALICO_NODE, "monitor-token", "--service-account-dir", str(sa_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(path.exists, timeout=20, what="the kubeconfig")
        first = path.read_text()
        wait_for(lambda: path.read_text() != first, timeout=10, what="a refreshed token")
        written = path.read_text()
        token = written.split("    token: ")[1].split("\n")[0]
        assert token in _issued(kube)
        assert written == ct.kubeconfig_text(kube.url, b"", token)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Keeping " + str(path) + " current for service account kube-system/calico-cni-plugin" in err
    assert "Wrote the CNI kubeconfig" in err


def test_the_role_run_once_through_calicos_legacy_flag(kube, sa_dir, net_dir, tmp_path):
    service_account(kube, "kube-system", "calico-cni-plugin")
    env = _role_env(KUBECONFIG=str(kube.kubeconfig(tmp_path / "kubeconfig")), CALICO_CNI_NET_DIR=str(net_dir))
    run = subprocess.run([CALICO_NODE, "-monitor-token", "--run-once", "--service-account-dir", str(sa_dir)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert (net_dir / "calico-kubeconfig").read_text() == ct.kubeconfig_text(kube.url, b"", _issued(kube)[-1])
    # A failed request: exit 1, naming the service account.
    kube.delete("v1", "serviceaccounts", "calico-cni-plugin", "kube-system")
    run = subprocess.run([CALICO_NODE, "monitor-token", "--run-once", "--service-account-dir", str(sa_dir)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "kube-system/calico-cni-plugin" in run.stderr and "404 NotFound" in run.stderr


def test_the_role_without_a_kubernetes_configuration_fails_saying_why(sa_dir, net_dir, tmp_path):
    run = subprocess.run([CALICO_NODE, "monitor-token", "--service-account-dir", str(sa_dir)],
                         env=_role_env(CALICO_CNI_NET_DIR=str(net_dir)), capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "no Kubernetes API configuration" in run.stderr
    assert "set CALICO_MANAGE_CNI=false" in run.stderr
    run = subprocess.run([CALICO_NODE, "monitor-token", "--service-account-dir", str(sa_dir)],
                         env=_role_env(KUBECONFIG=str(tmp_path / "missing")), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert f"KUBECONFIG={tmp_path / 'missing'}: no such file" in run.stderr
    # A configuration but no namespace file (not in a pod): Calico cannot start either.
    (tmp_path / "kubeconfig").write_text("{}")
    run = subprocess.run([CALICO_NODE, "monitor-token", "--service-account-dir", str(tmp_path / "nowhere")],
                         env=_role_env(KUBECONFIG=str(tmp_path / "kubeconfig")), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1
    assert f"cannot read the service account namespace from {tmp_path / 'nowhere' / 'namespace'}" in run.stderr
    assert not list(net_dir.iterdir())


def test_the_role_with_calico_manage_cni_false_does_nothing_and_stays_up(sa_dir, net_dir):
    env = _role_env(CALICO_MANAGE_CNI="false", CALICO_CNI_NET_DIR=str(net_dir))
    run = subprocess.run([CALICO_NODE, "monitor-token", "--run-once", "--service-account-dir", str(sa_dir)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "CALICO_MANAGE_CNI=false" in run.stderr
    proc = subprocess.Popen([CALICO_NODE, "monitor-token", "--service-account-dir", str(sa_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, "it exited, and a supervisor would restart it over and over"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert not list(net_dir.iterdir())
