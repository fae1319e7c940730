"""etcd endpoints from DNS SRV records (``ETCD_DISCOVERY_SRV``), as libcalico-go finds them.

libcalico-go's etcdv3 backend hands the domain to etcd's client SRV helper with the
service ``etcd-client`` and no service-name suffix (libcalico-go has no setting for one,
so there is no ``ETCD_DISCOVERY_SRV_SERVICE_NAME``). That helper asks, in this order:

1. ``_etcd-client-ssl._tcp.<domain>``: each record becomes ``https://<target>:<port>``;
2. ``_etcd-client._tcp.<domain>``: each record becomes ``http://<target>:<port>``.

The https endpoints come first, then the http ones; within each lookup the records are in
the order Go's resolver returns them: by priority, lowest first, and shuffled by weight
within a priority (RFC 2782). Discovery fails only when *both* lookups fail; a domain with
records for one of the two names is enough. ``ETCD_ENDPOINTS`` and ``ETCD_DISCOVERY_SRV``
together are refused when the config is built (node/config.py), as in libcalico-go.

Two details differ from the Go client on purpose: a target's trailing dot is dropped
(Go keeps ``etcd1.example.com.``; it names the same host, and Go's TLS hostname check
ignores the dot as well), and a ``.`` target, which RFC 2782 defines as "service not
available here", is skipped rather than turned into an unusable endpoint.

The lookup runs once, when the etcd client is built (as libcalico-go does in
NewEtcdV3Client). A failure is a ``ConnectionFailed``: startup prints it and exits 1,
and long-running roles retry building the client with their usual backoff.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from node.errors import ConnectionFailed

SERVICE = "etcd-client"
# (scheme, service label) in the order etcd's client asks for them.
_SERVICES = (("https", f"_{SERVICE}-ssl"), ("http", f"_{SERVICE}"))


@dataclass(frozen=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # a host name, as DNS gives it (usually with a trailing dot)


class SrvLookupFailed(Exception):
    """One SRV lookup found nothing usable; the message says why (raised by a lookup)."""


SrvLookup = Callable[[str], Sequence[SrvRecord]]


# -- functional core ----------------------------------------------------------------------

def srv_queries(domain: str) -> tuple[tuple[str, str], ...]:
    """(scheme, SRV name) pairs for ``domain``, in the order they are asked (a trailing
    dot on ``domain`` makes the names absolute: no search list is applied)."""
    return tuple((scheme, f"{label}._tcp.{domain}") for scheme, label in _SERVICES)


def order_records(records: Iterable[SrvRecord], randbelow: Callable[[int], int]) -> list[SrvRecord]:
    """Records by priority (lowest first); within one priority, a weighted shuffle in which
    a record of weight w is picked next with probability w / (sum of weights left), and
    records of weight 0 stay last, in their sorted order. ``randbelow(n)`` returns an
    integer in [0, n)."""
    ordered = sorted(records, key=lambda r: (r.priority, r.weight))
    out: list[SrvRecord] = []
    start = 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end].priority == ordered[start].priority:
            end += 1
        out.extend(_shuffle_by_weight(ordered[start:end], randbelow))
        start = end
    return out


def _shuffle_by_weight(group: list[SrvRecord], randbelow: Callable[[int], int]) -> list[SrvRecord]:
    left = list(group)
    picked: list[SrvRecord] = []
    total = sum(r.weight for r in left)
    while total > 0 and len(left) > 1:
        point = randbelow(total)
        running = 0
        for index, record in enumerate(left):
            running += record.weight
            if running > point:
                break
        chosen = left.pop(index)
        picked.append(chosen)
        total -= chosen.weight
    return picked + left


def endpoint_url(scheme: str, record: SrvRecord) -> str:
    return f"{scheme}://{record.target.rstrip('.')}:{record.port}"


def endpoints_from_results(results: Sequence[tuple[str, str, Sequence[SrvRecord] | str]],
                           setting: str, domain: str) -> tuple[str, ...]:
    """Combine the lookups' outcomes: ``(scheme, SRV name, records or the error text)`` per
    lookup, records already ordered. Raises ConnectionFailed naming ``setting`` and
    ``domain`` when no lookup gave a usable record."""
    endpoints: list[str] = []
    problems: list[str] = []
    for scheme, name, outcome in results:
        if isinstance(outcome, str):
            problems.append(f"{name}: {outcome}")
            continue
        usable = [r for r in outcome if r.target.rstrip(".")]
        if not usable:
            problems.append(f"{name}: only '.' targets (service not available)" if outcome
                            else f"{name}: no records")
        endpoints.extend(endpoint_url(scheme, r) for r in usable)
    if not endpoints:
        raise ConnectionFailed(f"{setting}={domain}: failed to discover etcd endpoints through SRV discovery: "
                               + "; ".join(problems))
    return tuple(endpoints)


# -- imperative shell ---------------------------------------------------------------------

def dns_srv_lookup(name: str) -> list[SrvRecord]:
    """The SRV records for ``name`` from the system's resolver (``/etc/resolv.conf``, its
    search list applied as Go's resolver applies it), via dnspython."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.Resolver().resolve(name, "SRV", search=True)
    except dns.exception.DNSException as exc:
        raise SrvLookupFailed(str(exc) or type(exc).__name__) from None
    return [SrvRecord(int(r.priority), int(r.weight), int(r.port), r.target.to_text()) for r in answer]


def discover_etcd_endpoints(domain: str, setting: str = "ETCD_DISCOVERY_SRV", lookup: SrvLookup | None = None,
                            randbelow: Callable[[int], int] = random.randrange) -> tuple[str, ...]:
    """etcd endpoint URLs for ``domain``: https ones from ``_etcd-client-ssl._tcp``, then
    http ones from ``_etcd-client._tcp``. ``lookup`` (default: DNS) returns a name's
    records or raises SrvLookupFailed. Raises ConnectionFailed when neither name has any."""
    lookup = lookup or dns_srv_lookup
    results: list[tuple[str, str, Sequence[SrvRecord] | str]] = []
    for scheme, name in srv_queries(domain):
        try:
            results.append((scheme, name, order_records(lookup(name), randbelow)))
        except SrvLookupFailed as exc:
            results.append((scheme, name, str(exc)))
    return endpoints_from_results(results, setting, domain)
