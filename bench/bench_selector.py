"""Benchmark of node.selector.LabelIndex at cluster scale (not a test).

10,000 endpoints in 50 namespaces (namespace labels inherited from parents) and 2,000
selectors in a policy-like mix.  Prints the time to build the index and the median/p99 cost
of single endpoint label changes, selector changes and a namespace (parent) label change.

Run with ``.venv/bin/python -m bench.bench_selector``.
"""
from __future__ import annotations

import random
import statistics
import time

from node.selector import LabelIndex, parse

N_ENDPOINTS = 10_000
N_SELECTORS = 2_000
N_NAMESPACES = 50
N_APPS = 500
TIERS = ["web", "api", "db", "cache", "queue"]
ENVS = ["prod", "staging", "dev"]
VERSIONS = [f"v{i}" for i in range(10)]
NS_LABEL = "projectcalico.org/namespace"


def make_endpoint(rng: random.Random) -> tuple[dict[str, str], list[str]]:
    ns = f"ns{rng.randrange(N_NAMESPACES)}"
    labels = {
        "app": f"app{rng.randrange(N_APPS)}",
        "tier": rng.choice(TIERS),
        "env": rng.choice(ENVS),
        "version": rng.choice(VERSIONS),
        NS_LABEL: ns,
        "pod-template-hash": f"{rng.getrandbits(40):010x}",
    }
    if rng.random() < 0.05:
        labels["canary"] = "true"
    return labels, [f"kns.{ns}"]


def make_selector(rng: random.Random) -> str:
    """A selector drawn from a mix resembling real policy/ipset selectors."""
    app = lambda: f"app{rng.randrange(N_APPS)}"  # noqa: E731
    r = rng.random()
    if r < 0.40:
        return f"app == '{app()}'"
    if r < 0.55:
        return f"app == '{app()}' && tier == '{rng.choice(TIERS)}'"
    if r < 0.65:
        return f"app in {{'{app()}', '{app()}', '{app()}'}}"
    if r < 0.75:
        return f"{NS_LABEL} == 'ns{rng.randrange(N_NAMESPACES)}' && env == 'prod'"
    if r < 0.80:
        return f"team == 'team{rng.randrange(10)}' && tier == '{rng.choice(TIERS)}'"
    if r < 0.85:
        return (f"(tier == 'web' || tier == 'api') && app starts with 'app{rng.randrange(50)}'"
                f" && version in {{'{rng.choice(VERSIONS)}', '{rng.choice(VERSIONS)}'}}")
    if r < 0.90:
        return f"has(version) && tier == '{rng.choice(TIERS)}' && env == '{rng.choice(ENVS)}'"
    if r < 0.94:
        return rng.choice(["env != 'prod'", "!has(canary)", "version != 'v0'"])
    if r < 0.97:
        return f"tier not in {{'{rng.choice(TIERS)}', '{rng.choice(TIERS)}'}}"
    if r < 0.99:
        return rng.choice(["all()", "global()", f"{NS_LABEL} == 'ns{rng.randrange(N_NAMESPACES)}'"])
    return f"app contains '{rng.randrange(10)}'"


def _time_ms(fn) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e6


def _summary(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (f"median {statistics.median(samples):7.3f} ms   p99 {p99:7.3f} ms   "
            f"max {samples[-1]:7.3f} ms   (n={len(samples)})")


def main() -> None:
    rng = random.Random(20240601)
    events = [0, 0]

    def started(_sel, _ep):
        events[0] += 1

    def stopped(_sel, _ep):
        events[1] += 1

    endpoints = {f"ep{i}": make_endpoint(rng) for i in range(N_ENDPOINTS)}
    selector_texts = {f"sel{i}": make_selector(rng) for i in range(N_SELECTORS)}
    namespaces = {f"kns.ns{i}": {"projectcalico.org/name": f"ns{i}", "team": f"team{i % 10}"}
                  for i in range(N_NAMESPACES)}

    start = time.perf_counter()
    selectors = {sid: parse(text) for sid, text in selector_texts.items()}
    parse_s = time.perf_counter() - start

    idx = LabelIndex(started, stopped)
    start = time.perf_counter()
    for pid, labels in namespaces.items():
        idx.update_parent(pid, labels)
    for eid, (labels, parents) in endpoints.items():
        idx.update_endpoint(eid, labels, parents)
    for sid, sel in selectors.items():
        idx.update_selector(sid, sel)
    build_s = time.perf_counter() - start

    # The same build in the other order (selectors first, then endpoints arrive).
    idx2 = LabelIndex(started, stopped)
    start = time.perf_counter()
    for sid, sel in selectors.items():
        idx2.update_selector(sid, sel)
    for pid, labels in namespaces.items():
        idx2.update_parent(pid, labels)
    for eid, (labels, parents) in endpoints.items():
        idx2.update_endpoint(eid, labels, parents)
    build2_s = time.perf_counter() - start
    del idx2

    stats = idx.stats()
    print(f"selector index benchmark: {stats['endpoints']} endpoints, {stats['selectors']} "
          f"selectors ({stats['unnarrowed_selectors']} not narrowable), "
          f"{stats['parents']} parents, {stats['matches']} matches")
    print(f"parse {N_SELECTORS} selectors:                 {parse_s * 1000:8.1f} ms")
    print(f"build (endpoints first, then selectors): {build_s * 1000:8.1f} ms")
    print(f"build (selectors first, then endpoints): {build2_s * 1000:8.1f} ms")

    ids = list(endpoints)

    def label_change(key: str, values: list[str]) -> list[float]:
        samples = []
        for _ in range(2000):
            eid = rng.choice(ids)
            labels, parents = endpoints[eid]
            labels = dict(labels)
            labels[key] = rng.choice([v for v in values if v != labels.get(key)])
            endpoints[eid] = (labels, parents)
            samples.append(_time_ms(lambda: idx.update_endpoint(eid, labels, parents)))
        return samples

    version_samples = label_change("version", VERSIONS)
    app_samples = label_change("app", [f"app{i}" for i in range(N_APPS)])
    tier_samples = label_change("tier", TIERS)
    hash_samples = label_change("pod-template-hash", [f"{i:010x}" for i in range(100)])
    all_samples = version_samples + app_samples + tier_samples + hash_samples
    print("endpoint label change:")
    print(f"  version (few selectors)      {_summary(version_samples)}")
    print(f"  app (most selectors)         {_summary(app_samples)}")
    print(f"  tier (many selectors)        {_summary(tier_samples)}")
    print(f"  pod-template-hash (none)     {_summary(hash_samples)}")
    print(f"  all of the above             {_summary(all_samples)}")

    sel_ids = list(selectors)
    sel_samples = []
    for _ in range(500):
        sid = rng.choice(sel_ids)
        new = parse(make_selector(rng))
        sel_samples.append(_time_ms(lambda: idx.update_selector(sid, new)))
    print(f"selector change                {_summary(sel_samples)}")

    parent_samples = []
    for i in range(50):
        pid = f"kns.ns{rng.randrange(N_NAMESPACES)}"
        labels = {"projectcalico.org/name": pid[4:], "team": f"team{rng.randrange(10)}"}
        parent_samples.append(_time_ms(lambda: idx.update_parent(pid, labels)))
    print(f"namespace label change (~{N_ENDPOINTS // N_NAMESPACES} children)"
          f"  {_summary(parent_samples)}")
    print(f"events: {events[0]} started, {events[1]} stopped")
    median = statistics.median(all_samples)
    verdict = "meets" if median < 1.0 else "MISSES"
    print(f"label change median {median:.3f} ms {verdict} the < 1 ms goal")


if __name__ == "__main__":
    main()
