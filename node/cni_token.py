"""The CNI token monitor: keeps the Calico CNI plugin's kubeconfig holding a live token.

Calico's CNI plugin reaches the Kubernetes API with the kubeconfig that calico/node writes
into the host's CNI configuration directory, ``calico-kubeconfig``. Its token is not the
node's own: it is one the API server issues for the ``calico-cni-plugin`` service account
through a TokenRequest (``POST /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token``), valid
for 24 hours, so the monitor asks for a new one well before the old one expires.

What it does, as Calico's monitor does:

* the service account is ``CALICO_CNI_SERVICE_ACCOUNT`` (default ``calico-cni-plugin``), in
  the namespace calico/node's own service account is in (the ``namespace`` file beside the
  pod's token);
* the TokenRequest asks for 86400 seconds and no particular audience (the API server's own);
* the next request comes after a quarter of the token's remaining life plus a random jitter
  of up to as much again (so 6 to 12 hours for a 24-hour token), or after
  ``CNI_TOKEN_REFRESH_INTERVAL`` (a Go duration) plus jitter when that is set; a token that
  expires within 20 seconds, and a failed attempt, are retried after 5 to 10 seconds;
* when the pod's own projected token changes (the kubelet rotates it, e.g. after a signing
  key rotation that invalidates the tokens issued so far) a new token is requested at once;
* a server without the TokenRequest API (a 404 on the request, and discovery not listing
  ``serviceaccounts/token``) gets the pod's own token instead, its expiry read from its
  ``exp`` claim;
* the kubeconfig names the API server calico/node itself uses (``KUBECONFIG``'s, else
  ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``) with its CA certificate
  inlined, and is written with mode 0600.

Where this differs from Calico, on purpose: the file is written through a temp file renamed
over the old one, so the CNI plugin never reads half a file; a write that fails (the
directory missing or read-only) keeps the token already issued and retries only the write,
after 5 s, then twice as long each time up to a minute, until that token's normal refresh
time (Calico waits for the next scheduled refresh), so a broken directory costs the API
server no more TokenRequests than a working one; each distinct write failure is logged
once (an error), its repeats only at debug level; and a ``CNI_TOKEN_REFRESH_INTERVAL`` of
zero or less is refused (Calico would ask the API server for tokens in a tight loop).

The directory moves with ``CALICO_CNI_NET_DIR`` (default ``/host/etc/cni/net.d``, where the
calico-node DaemonSet mounts the host's ``/etc/cni/net.d``). Calico's own ``CNI_NET_DIR``
is a different thing, install-cni's name for the host-side directory, so it is not reused.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from node.errors import CalicoError, ConfigError
from node.files import write_atomically

log = logging.getLogger("cni-config-monitor")

SERVICE_ACCOUNT_ENV = "CALICO_CNI_SERVICE_ACCOUNT"
DEFAULT_SERVICE_ACCOUNT = "calico-cni-plugin"
REFRESH_INTERVAL_ENV = "CNI_TOKEN_REFRESH_INTERVAL"
CNI_NET_DIR_ENV = "CALICO_CNI_NET_DIR"
DEFAULT_CNI_NET_DIR = "/host/etc/cni/net.d"
KUBECONFIG_NAME = "calico-kubeconfig"
KUBECONFIG_MODE = 0o600
DEFAULT_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

TOKEN_VALIDITY_SECONDS = 24 * 60 * 60
MIN_RETRY = 5.0        # seconds: after a failure, and for a token about to expire
WRITE_RETRY_CAP = 60.0  # seconds: the longest wait between attempts to write an issued token
REFRESH_FRACTION = 4   # refresh after this fraction of the remaining lifetime
REQUEST_TIMEOUT = 30.0
ROTATION_POLL = 1.0    # seconds between looks at the pod's own token directory
ROTATION_SETTLE = 0.05  # the kubelet's rotation is several renames: wait for them all


class TokenError(CalicoError):
    """No usable token came back (the request failed, or its answer lacks a field)."""


@dataclass(frozen=True)
class Token:
    token: str
    expires: float  # seconds since the epoch


@dataclass(frozen=True)
class Issued:
    """A token and the kubeconfig that carries it, not yet (or not yet successfully)
    written."""
    token: Token
    kubeconfig: str


# -- the pure part ---------------------------------------------------------------------------

def service_account_name(env: Mapping[str, str]) -> str:
    return env.get(SERVICE_ACCOUNT_ENV) or DEFAULT_SERVICE_ACCOUNT


def kubeconfig_path(env: Mapping[str, str]) -> Path:
    return Path(env.get(CNI_NET_DIR_ENV) or DEFAULT_CNI_NET_DIR) / KUBECONFIG_NAME


def token_request(validity_seconds: int = TOKEN_VALIDITY_SECONDS) -> dict:
    """The TokenRequest body: no audiences (the API server's own), a 24-hour lifetime."""
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": {},
            "spec": {"audiences": [], "expirationSeconds": validity_seconds}}


def parse_timestamp(text: str) -> float:
    """An RFC 3339 timestamp (metav1.Time) as seconds since the epoch."""
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return stamp.timestamp()


def token_from_response(body: object, what: str) -> Token:
    """The token and its expiry from a TokenRequest answer; ``what`` names the request."""
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, dict):
        raise TokenError(f"{what}: the answer has no status")
    token = status.get("token")
    if not isinstance(token, str) or not token:
        raise TokenError(f"{what}: the answer has no status.token")
    stamp = status.get("expirationTimestamp")
    try:
        expires = parse_timestamp(stamp) if isinstance(stamp, str) else None
    except ValueError:
        expires = None
    if expires is None:
        raise TokenError(f"{what}: status.expirationTimestamp {stamp!r} is not an RFC 3339 time")
    return Token(token, expires)


def token_from_jwt(text: str, source: str) -> Token:
    """A service-account token (a JWT) and the expiry its ``exp`` claim gives; ``source``
    names where it came from."""
    parts = text.split(".")
    if len(parts) != 3:
        raise TokenError(f"{source}: not a JWT (it has {len(parts)} dot-separated parts, not 3)")
    claims_b64 = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(claims_b64))
    except (ValueError, TypeError) as exc:
        raise TokenError(f"{source}: the JWT's claims do not decode: {exc}") from None
    if not isinstance(claims, dict):
        raise TokenError(f"{source}: the JWT's claims are not a JSON object")
    if "exp" not in claims:
        raise TokenError(f"{source}: the JWT has no exp claim")
    exp = claims["exp"]
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise TokenError(f"{source}: the JWT's exp claim {exp!r} is not a number")
    return Token(text, float(int(exp)))


def kubeconfig_text(server: str, ca_data: bytes, token: str) -> str:
    """The CNI plugin's kubeconfig, byte for byte as calico/node writes it (no final newline;
    the CA inlined even when empty)."""
    ca = base64.b64encode(ca_data).decode("ascii")
    return ("# Kubeconfig file for Calico CNI plugin. Installed by calico/node.\n"
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: local\n"
            "  cluster:\n"
            f"    server: {server}\n"
            f'    certificate-authority-data: "{ca}"\n'
            "users:\n"
            "- name: calico\n"
            "  user:\n"
            f"    token: {token}\n"
            "contexts:\n"
            "- name: calico-context\n"
            "  context:\n"
            "    cluster: local\n"
            "    user: calico\n"
            "current-context: calico-context")


def refresh_override(env: Mapping[str, str]) -> tuple[float | None, str]:
    """(CNI_TOKEN_REFRESH_INTERVAL in seconds or None, why the value set is ignored or "")."""
    from node.model.schema import parse_go_duration

    text = env.get(REFRESH_INTERVAL_ENV, "")
    if not text:
        return None, ""
    try:
        seconds = parse_go_duration(text) / 1e9
    except ValueError:
        return None, (f"{REFRESH_INTERVAL_ENV}={text!r} is not a Go duration (e.g. 1h30m); "
                      "refreshing after a quarter of each token's lifetime instead")
    if seconds <= 0:
        return None, (f"{REFRESH_INTERVAL_ENV}={text!r} must be longer than zero; "
                      "refreshing after a quarter of each token's lifetime instead")
    return seconds, ""


def refresh_delay(expires: float | None, now: float, override: float | None, jitter: float,
                  min_retry: float = MIN_RETRY, fraction: float = REFRESH_FRACTION) -> float:
    """Seconds until the next TokenRequest. ``expires`` is None after a failure; ``jitter``
    is in [0, 1) and adds up to as much again, so that nodes spread their requests."""
    if expires is None or expires < now + min_retry * fraction:
        base = min_retry
    elif override is not None:
        base = override
    else:
        base = (expires - now) / fraction
    return base * (1.0 + jitter)


# -- the shell -------------------------------------------------------------------------------

def read_namespace(service_account_dir: str) -> str:
    """The namespace calico/node runs in, from its service account's ``namespace`` file."""
    path = Path(service_account_dir) / "namespace"
    try:
        namespace = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the service account namespace from {path}: "
                          f"{exc.strerror or exc}") from None
    if not namespace:
        raise ConfigError(f"the service account namespace file {path} is empty")
    return namespace


def check_kube_config(env: Mapping[str, str], service_account_dir: str) -> str:
    """Where the Kubernetes client configuration comes from; ConfigError when there is none."""
    from startup.k8s import kube_config_source

    source = kube_config_source(env, os.path.join(service_account_dir, "token"))
    if source is not None:
        return source
    if env.get("KUBECONFIG"):
        raise ConfigError(f"KUBECONFIG={env['KUBECONFIG']}: no such file")
    raise ConfigError("no Kubernetes API configuration: KUBECONFIG is not set and there is no in-cluster "
                      f"service account (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT and "
                      f"{service_account_dir}/token); set CALICO_MANAGE_CNI=false where calico/node does not "
                      "manage the CNI plugin's kubeconfig")


def write_secret_file(path: Path, content: str, mode: int = KUBECONFIG_MODE) -> None:
    """Write ``path`` so a reader sees the old token or the new one, never half a file; the
    temp file is private from the start, as it holds the token."""
    write_atomically(path, content, mode)


def _directory_signature(directory: str) -> tuple:
    """What changes when the kubelet rotates the projected token in ``directory``: the
    directory's entries (a new timestamped directory, the ``..data`` link renamed) and the
    token file it links to."""
    out: list = []
    for path in (directory, os.path.join(directory, "token")):
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        except OSError as exc:
            out.append(exc.errno)
    return tuple(out)


class TokenMonitor:
    """Requests CNI tokens and writes them into the kubeconfig, for ever (``run``) or once
    (``refresh``). Timing and randomness are injectable for tests, as in Calico's
    refresher."""

    def __init__(self, env: Mapping[str, str], namespace: str,
                 service_account_dir: str = DEFAULT_SERVICE_ACCOUNT_DIR, *,
                 validity_seconds: int = TOKEN_VALIDITY_SECONDS, min_retry: float = MIN_RETRY,
                 fraction: float = REFRESH_FRACTION, clock: Callable[[], float] = time.time,
                 jitter: Callable[[], float] = random.random, rotation_poll: float = ROTATION_POLL,
                 write_retry_cap: float = WRITE_RETRY_CAP):
        self.env = dict(env)
        self.namespace = namespace
        self.service_account = service_account_name(env)
        self.service_account_dir = service_account_dir
        self.path = kubeconfig_path(env)
        self.validity_seconds = validity_seconds
        self.min_retry = min_retry
        self.fraction = fraction
        self.clock = clock
        self.jitter = jitter
        self.rotation_poll = rotation_poll
        self.write_retry_cap = write_retry_cap
        self.override, problem = refresh_override(env)
        if problem:
            log.error("%s", problem)
        self._token_api: bool | None = None  # whether discovery lists serviceaccounts/token

    @property
    def what(self) -> str:
        return f"TokenRequest for service account {self.namespace}/{self.service_account}"

    def _api(self):
        from startup.k8s import kube_api

        api = kube_api(self.env, self.service_account_dir, timeout=REQUEST_TIMEOUT)
        if api is None:
            check_kube_config(self.env, self.service_account_dir)  # raises, naming what is missing
        return api

    def _token_api_served(self, api) -> bool:
        """Does the server serve TokenRequest (discovery of the core group)? A successful
        answer is remembered; a failed discovery counts as no, this time."""
        if self._token_api is None:
            try:
                listing = api.get("/api/v1") or {}
            except CalicoError as exc:
                log.debug("discovery of /api/v1 failed: %s", exc)
                return False
            self._token_api = any(r.get("name") == "serviceaccounts/token"
                                  for r in listing.get("resources") or [] if isinstance(r, dict))
        return self._token_api

    def request_token(self, api) -> Token:
        from node.datastore.kubernetes.api import ApiError
        from node.datastore.kubernetes.kv import SERVICE_ACCOUNTS

        path = SERVICE_ACCOUNTS.item(self.service_account, self.namespace, "token")
        try:
            body = api.create(path, token_request(self.validity_seconds))
        except ApiError as exc:
            if exc.status == 404 and not self._token_api_served(api):
                log.debug("The API server has no TokenRequest API; using the pod's own token")
                return self._own_token()
            raise TokenError(f"{self.what} failed: {exc}") from None
        except CalicoError as exc:
            raise TokenError(f"{self.what} failed: {exc}") from None
        return token_from_response(body, self.what)

    def _own_token(self) -> Token:
        path = Path(self.service_account_dir) / "token"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenError(f"the API server has no TokenRequest API, and the pod's own token {path} cannot "
                             f"be read: {exc.strerror or exc}") from None
        return token_from_jwt(text, str(path))

    def _cluster(self, api) -> tuple[str, bytes]:
        """(server URL, CA certificate bytes) of the API server the client reaches."""
        conf = api.configuration
        ca_file = getattr(conf, "ssl_ca_cert", None)
        if not ca_file:
            return conf.host, b""
        try:
            return conf.host, Path(ca_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the API server's CA certificate {ca_file}: "
                              f"{exc.strerror or exc}") from None

    def issue(self) -> Issued:
        """Request a token (one TokenRequest) and lay out the kubeconfig for it; writes
        nothing. Raises CalicoError."""
        api = self._api()
        try:
            server, ca_data = self._cluster(api)  # first: an unreadable CA costs no TokenRequest
            token = self.request_token(api)
        finally:
            api.close()
        return Issued(token, kubeconfig_text(server, ca_data, token.token))

    def write(self, issued: Issued) -> None:
        """Write the kubeconfig of an issued token. Raises TokenError (the old file stays as
        it was)."""
        try:
            write_secret_file(self.path, issued.kubeconfig)
        except OSError as exc:
            hint = f" (the directory {self.path.parent} does not exist; {CNI_NET_DIR_ENV} moves it)" \
                if not self.path.parent.is_dir() else ""
            raise TokenError(f"cannot write the CNI kubeconfig {self.path}: {exc.strerror or exc}{hint}") from None
        log.info("Wrote the CNI kubeconfig %s with a new token for %s/%s (valid until %s)",
                 self.path, self.namespace, self.service_account, _utc(issued.token.expires))

    def refresh(self) -> Token:
        """Request a token and write the kubeconfig. Raises CalicoError (the old file
        stays as it was)."""
        issued = self.issue()
        self.write(issued)
        return issued.token

    def _wait(self, delay: float, stop: threading.Event) -> bool:
        """Sleep ``delay`` seconds; return early (True) when the pod's own token was rotated."""
        deadline = time.monotonic() + delay
        signature = _directory_signature(self.service_account_dir)
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if stop.wait(min(left, self.rotation_poll)):
                return False
            current = _directory_signature(self.service_account_dir)
            if current != signature:
                while not stop.wait(ROTATION_SETTLE):  # one request for the whole rotation
                    settled = _directory_signature(self.service_account_dir)
                    if settled == current:
                        break
                    current = settled
                log.info("The pod's service account token in %s changed; requesting a new CNI token now",
                         self.service_account_dir)
                return True
        return False

    def run(self, stop: threading.Event) -> None:
        """Keep the kubeconfig fresh until ``stop`` is set.

        One TokenRequest per refresh period: a token whose kubeconfig cannot be written is
        kept, and only the write is retried (backing off from ``min_retry`` to
        ``write_retry_cap``) until the token's refresh time, or until the pod's own token
        is rotated; then a new token is requested, as after a successful write."""
        issued: Issued | None = None
        written = False
        refresh_at = 0.0          # time.monotonic() of the next TokenRequest
        write_backoff = 0.0       # the last wait between write attempts (0: none failed)
        write_failure = ""        # the last write failure logged at error level
        while not stop.is_set():
            if issued is None or time.monotonic() >= refresh_at:
                try:
                    issued = self.issue()
                except CalicoError as exc:
                    log.error("Failed to refresh the CNI kubeconfig (%s/%s): %s", self.namespace,
                              self.service_account, exc)
                    issued = None
                    delay = refresh_delay(None, self.clock(), self.override, self.jitter(), self.min_retry,
                                          self.fraction)
                    log.info("Retrying the %s in %.1fs", self.what, delay)
                    self._wait(delay, stop)
                    continue
                written = False
                refresh_at = time.monotonic() + refresh_delay(issued.token.expires, self.clock(), self.override,
                                                              self.jitter(), self.min_retry, self.fraction)
            if not written:
                try:
                    self.write(issued)
                except TokenError as exc:
                    write_backoff = min(max(write_backoff * 2, self.min_retry), self.write_retry_cap)
                    left = max(refresh_at - time.monotonic(), 0.0)
                    if str(exc) != write_failure:
                        write_failure = str(exc)
                        log.error("Failed to write the CNI kubeconfig (%s/%s): %s; keeping the token issued "
                                  "(valid until %s) and retrying the write until the next %s in %.0fs "
                                  "(repeats of this error are logged at debug level)", self.namespace,
                                  self.service_account, exc, _utc(issued.token.expires), self.what, left)
                    else:
                        log.debug("Writing the CNI kubeconfig failed again: %s", exc)
                    if self._wait(min(write_backoff, left), stop):
                        refresh_at = 0.0  # the pod's token rotated: a new token at once
                    continue
                written = True
                if write_failure:
                    log.info("The CNI kubeconfig %s can be written again", self.path)
                write_backoff, write_failure = 0.0, ""
            left = max(refresh_at - time.monotonic(), 0.0)
            log.debug("Next %s in %.1fs", self.what, left)
            if self._wait(left, stop):
                refresh_at = 0.0


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
