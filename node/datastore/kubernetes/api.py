"""The Kubernetes API over the official ``kubernetes`` client's transport.

The client (``kubernetes.client.ApiClient``) gives us configuration, authentication
(bearer tokens, refreshed service-account tokens, client certificates, exec plugins),
TLS and connection pooling; we send plain JSON and read plain JSON, because Calico's
objects (custom resources, and native objects whose unknown fields must survive a
read-modify-write) are best handled as dicts rather than the generated model classes.

``KubeAPI`` is the JSON layer: get/list (paged)/create/replace/patch/delete on a path,
and ``WatchStream`` for one chunked watch response; every request but a watch first
takes a token from the client's rate limiter, as client-go's do. API errors come back as
``ApiError`` carrying the HTTP status and the server's Status reason; transport
failures as ``ConnectionFailed`` naming the server.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import urlencode

import urllib3

from node.errors import ConnectionFailed, DatastoreError, Unauthorized

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
LIST_PAGE_SIZE = 500
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(DatastoreError):
    """The API server answered with an error status (``status``, ``reason`` as in its
    Status object, e.g. NotFound, AlreadyExists, Conflict, Expired/Gone)."""

    def __init__(self, status: int, reason: str, message: str, what: str):
        self.status = status
        self.reason = reason
        self.server_message = message
        super().__init__(f"Kubernetes API {what}: {status} {reason}: {message}")


@dataclass(frozen=True)
class ResourcePath:
    """Where a kind of object lives: ``/api/v1`` or ``/apis/<group>/<version>``, its plural,
    and whether it is namespaced. ``optional``: served only once a CRD that a cluster may
    lack is installed (network-policy-api's, KubeVirt's), so its absence is a valid, lasting state."""

    prefix: str
    plural: str
    namespaced: bool
    kind: str = ""
    optional: bool = False

    def collection(self, namespace: str = "") -> str:
        if self.namespaced and namespace:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item(self, name: str, namespace: str = "", subresource: str = "") -> str:
        if self.namespaced and not namespace:
            raise ValueError(f"{self.plural} {name}: a namespace is needed")
        path = f"{self.collection(namespace)}/{name}"
        return f"{path}/{subresource}" if subresource else path

    @property
    def api_version(self) -> str:
        return self.prefix.removeprefix("/apis/").removeprefix("/api/")


def _status_of(data: bytes) -> tuple[str, str]:
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return "", data.decode("utf-8", "replace")[:200]
    if isinstance(body, dict):
        return body.get("reason") or "", body.get("message") or ""
    return "", str(body)[:200]


class TokenBucket:
    """client-go's request rate limiter: up to ``burst`` requests at once, then ``qps`` a
    second. A request that finds no token reserves the next one and waits for it, so
    waiting callers are served in order. Thread-safe."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if qps <= 0 or burst < 1:
            raise ValueError(f"a token bucket needs qps > 0 and burst >= 1, got {qps} and {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token, waiting for it if needed; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.qps) - 1.0
            self._stamp = now
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


class KubeAPI:
    """JSON requests to one API server through a ``kubernetes.client.ApiClient``, each
    one through ``limiter`` when given."""

    def __init__(self, configuration, *, request_timeout: float = REQUEST_TIMEOUT,
                 limiter: TokenBucket | None = None):
        from kubernetes.client import ApiClient

        self.configuration = configuration
        self.host = configuration.host
        self._client = ApiClient(configuration)
        self._timeout = request_timeout
        self._limiter = limiter
        self._closed = False

    def close(self) -> None:
        self._closed = True
        try:
            self._client.rest_client.pool_manager.clear()
        except Exception:  # pragma: no cover - best effort
            pass

    # -- raw requests ---------------------------------------------------------------

    def _send(self, method: str, path: str, *, query: dict | None = None, body: Any = None,
              content_type: str = JSON, timeout: Any = None, stream: bool = False, limited: bool = True):
        if self._closed:
            raise DatastoreError("Kubernetes client is closed")
        what = f"{method} {path}"
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        query_pairs = [(k, v if not isinstance(v, bool) else ("true" if v else "false"))
                       for k, v in (query or {}).items() if v is not None and v != ""]
        if limited and self._limiter is not None:
            self._limiter.acquire()
        try:
            _, url, headers, _, _ = self._client.param_serialize(
                method, path, header_params=headers, auth_settings=["BearerToken"])
            if query_pairs:
                url += "?" + urlencode(query_pairs)
            # The client's REST layer JSON-encodes the body for every */json and */*+json type.
            resp = self._client.call_api(method, url, header_params=headers, body=body,
                                         _request_timeout=timeout or (CONNECT_TIMEOUT, self._timeout))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionFailed(f"cannot reach the Kubernetes API at {self.host} ({what}): {exc}") from None
        except Exception as exc:  # the client's own errors (bad TLS files, exec plugin failures)
            if type(exc).__name__ in ("ApiException", "ApiValueError", "ConfigException"):
                raise ConnectionFailed(f"Kubernetes API at {self.host} ({what}): {exc}") from None
            raise
        raw = resp.response
        if stream and 200 <= resp.status < 300:
            return raw
        try:
            payload = raw.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionFailed(f"Kubernetes API at {self.host} ({what}): connection lost reading the "
                                   f"answer: {exc}") from None
        finally:
            raw.release_conn()
        if resp.status >= 300:
            reason, message = _status_of(payload)
            if resp.status in (401, 403):
                raise Unauthorized(f"Kubernetes API at {self.host} refused {what}: {resp.status} "
                                   f"{reason or 'Unauthorized'}: {message}")
            raise ApiError(resp.status, reason or raw.reason or "", message, what)
        if not payload:
            return {}
        try:
            return json.loads(payload)
        except ValueError:
            raise DatastoreError(f"Kubernetes API at {self.host} ({what}) answered with invalid JSON") from None

    # -- verbs ------------------------------------------------------------------------

    def get(self, path: str, *, timeout: Any = None) -> dict | None:
        """The object at ``path``, or None when it does not exist."""
        try:
            return self._send("GET", path, timeout=timeout)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str, *, label_selector: str = "", field_selector: str = "",
             page_size: int = LIST_PAGE_SIZE) -> tuple[list[dict], str]:
        """Every item of a collection (followed page by page) and the list's resourceVersion.

        A 404 on the collection (the CRD is not installed) is an empty list, as in Calico.
        If a continue token expires mid-way (410) the whole list starts again.
        """
        for _attempt in range(3):
            items: list[dict] = []
            token = ""
            rv = ""
            try:
                while True:
                    body = self._send("GET", path, query={"limit": page_size, "continue": token,
                                                          "labelSelector": label_selector,
                                                          "fieldSelector": field_selector})
                    items.extend(body.get("items") or [])
                    meta = body.get("metadata") or {}
                    rv = rv or meta.get("resourceVersion", "")
                    token = meta.get("continue") or ""
                    if not token:
                        rv = meta.get("resourceVersion", rv)
                        return items, rv
            except ApiError as exc:
                if exc.status == 404:
                    return [], "0"
                if exc.status == 410 and token:
                    log.info("list of %s: continue token expired; listing again", path)
                    continue
                raise
        raise DatastoreError(f"Kubernetes API at {self.host}: list of {path} kept expiring")

    def create(self, path: str, body: dict) -> dict:
        return self._send("POST", path, body=body)

    def replace(self, path: str, body: dict) -> dict:
        return self._send("PUT", path, body=body)

    def patch(self, path: str, body: dict, content_type: str = STRATEGIC_MERGE_PATCH) -> dict:
        return self._send("PATCH", path, body=body, content_type=content_type)

    def delete(self, path: str, *, uid: str = "", resource_version: str = "") -> dict:
        preconditions = {}
        if uid:
            preconditions["uid"] = uid
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if preconditions:
            body["preconditions"] = preconditions
        return self._send("DELETE", path, body=body)

    def server_groups(self) -> list[str]:
        """Names of the API groups the server serves (discovery: ``GET /apis``)."""
        body = self._send("GET", "/apis", timeout=(CONNECT_TIMEOUT, 10.0))
        return [g.get("name", "") for g in body.get("groups") or []]

    def watch(self, path: str, resource_version: str, *, label_selector: str = "", field_selector: str = "",
              timeout_seconds: int = 300) -> "WatchStream":
        """Open a watch on a collection from ``resource_version`` (exclusive), with
        bookmarks. The server ends it after about ``timeout_seconds``."""
        query = {"watch": True, "resourceVersion": resource_version, "allowWatchBookmarks": True,
                 "timeoutSeconds": timeout_seconds, "labelSelector": label_selector,
                 "fieldSelector": field_selector}
        # No read timeout: bookmarks and events arrive at the server's pace; cancel()
        # unblocks a waiting read by shutting the socket down.
        # Not rate-limited, as client-go does not limit watches: a syncer re-opening its
        # watches (every few minutes, and after each error) must not wait behind bursts of
        # other requests, nor use up their tokens.
        raw = self._send("GET", path, query=query, timeout=(CONNECT_TIMEOUT, None), stream=True, limited=False)
        return WatchStream(raw, path, self.host)


class WatchStream:
    """One watch response: iterate for (type, object); ends when the server closes it."""

    def __init__(self, raw, path: str, host: str):
        self._raw = raw
        self.path = path
        self._host = host
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        buffer = b""
        try:
            for chunk in self._raw.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._event(line)
            if buffer.strip():
                yield self._event(buffer)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._closed.is_set():
                return
            raise ConnectionFailed(f"watch of {self.path} on {self._host} broke: {exc}") from None
        finally:
            self.close()

    def _event(self, line: bytes) -> tuple[str, dict]:
        try:
            event = json.loads(line)
        except ValueError:
            raise DatastoreError(f"watch of {self.path} on {self._host}: invalid JSON event "
                                 f"{line[:200]!r}") from None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise DatastoreError(f"watch of {self.path} on {self._host}: malformed event {line[:200]!r}")
        return event.get("type", ""), event["object"]

    def close(self) -> None:
        """Stop reading; a read blocked in another thread returns at once."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            self._raw.shutdown()
        except Exception:  # pragma: no cover - already closed
            pass
        try:
            self._raw.release_conn()
        except Exception:  # pragma: no cover
            pass
