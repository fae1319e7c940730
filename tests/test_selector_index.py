"""Behavioural tests of LabelIndex: events, inheritance, queries and narrowing."""
import pytest

from node.selector import LabelIndex, parse


class Recorder:
    def __init__(self):
        self.events = []

    def started(self, sel, ep):
        self.events.append(("start", sel, ep))

    def stopped(self, sel, ep):
        self.events.append(("stop", sel, ep))

    def take(self):
        events, self.events = self.events, []
        return sorted(events)


@pytest.fixture
def rec():
    return Recorder()


@pytest.fixture
def idx(rec):
    return LabelIndex(on_match_started=rec.started, on_match_stopped=rec.stopped)


def test_empty_index_is_quiet(idx, rec):
    idx.update_endpoint("foo", {"a": "b"})
    idx.update_endpoint("bar", {})
    idx.remove_endpoint("nope")
    idx.remove_selector("nope")
    idx.remove_parent("nope")
    assert rec.take() == []
    idx2 = LabelIndex(rec.started, rec.stopped)
    idx2.update_selector("s1", parse("a == 'a1'"))
    idx2.update_selector("s2", "a == 'a1'")
    assert rec.take() == []


def test_selector_lifecycle(idx, rec):
    idx.update_endpoint("l1", {"a": "b", "c": "d"})
    idx.update_selector("e1", "a == 'a1'")
    idx.remove_selector("e1")
    assert rec.take() == []

    idx.update_selector("e1", 'a == "b"')
    assert rec.take() == [("start", "e1", "l1")]
    idx.update_selector("e1", "a=='b'")  # same canonical form: no-op
    idx.update_selector("e1", "c == 'd'")  # still matches
    assert rec.take() == []
    idx.update_selector("e2", "c == 'd'")
    assert rec.take() == [("start", "e2", "l1")]
    idx.update_selector("e2", "a == 'a1'")
    assert rec.take() == [("stop", "e2", "l1")]
    idx.remove_selector("e1")
    assert rec.take() == [("stop", "e1", "l1")]
    assert idx.get_selector("e2") == parse("a == 'a1'")
    assert idx.get_selector("e1") is None


def test_endpoint_lifecycle(idx, rec):
    idx.update_selector("e1", "a == 'a1'")
    idx.update_endpoint("l1", {"a": "b"})
    assert rec.take() == []
    idx.update_endpoint("l1", {"a": "a1"})
    assert rec.take() == [("start", "e1", "l1")]
    idx.update_endpoint("l1", {"a": "a1"})
    idx.update_endpoint("l1", {"a": "a1", "b": "c"})
    assert rec.take() == []
    idx.update_endpoint("l2", {"a": "a1", "b": "b1"})
    assert rec.take() == [("start", "e1", "l2")]
    idx.update_endpoint("l1", {"a": "a2"})
    assert rec.take() == [("stop", "e1", "l1")]
    idx.remove_endpoint("l2")
    assert rec.take() == [("stop", "e1", "l2")]
    assert idx.endpoints_matching("e1") == frozenset()


def test_unnarrowed_selectors_follow_changes(idx, rec):
    idx.update_selector("all", "all()")
    idx.update_selector("nothas", "!has(x)")
    idx.update_selector("ne", "a != 'v'")
    idx.update_selector("notin", "a not in {'v', 'w'}")
    idx.update_selector("never", "!all()")
    idx.update_endpoint("ep", {"a": "v"})
    assert rec.take() == [("start", "all", "ep"), ("start", "nothas", "ep")]
    idx.update_endpoint("ep", {"a": "z"})
    assert rec.take() == [("start", "ne", "ep"), ("start", "notin", "ep")]
    idx.update_endpoint("ep", {"a": "z", "x": "1"})
    assert rec.take() == [("stop", "nothas", "ep")]
    idx.update_endpoint("ep", {})
    assert rec.take() == [("start", "nothas", "ep")]
    assert idx.selectors_matching("ep") == {"all", "nothas", "ne", "notin"}


def test_or_and_negated_selectors(idx, rec):
    idx.update_selector("or", "a == 'x' || has(b)")
    idx.update_selector("demorgan", "!(a != 'x' || has(c))")
    idx.update_endpoint("ep", {"b": ""})
    assert rec.take() == [("start", "or", "ep")]
    idx.update_endpoint("ep", {"a": "x"})
    assert rec.take() == [("start", "demorgan", "ep")]
    idx.update_endpoint("ep", {"a": "x", "c": "1"})
    assert rec.take() == [("stop", "demorgan", "ep")]


def test_own_labels_win_then_first_parent(idx, rec):
    idx.update_parent("p1", {"a": "p1", "b": "p1", "only1": "y"})
    idx.update_parent("p2", {"a": "p2", "b": "p2", "c": "p2"})
    idx.update_endpoint("ep", {"a": "own"}, ["p1", "p2"])
    assert dict(idx.effective_labels("ep")) == {"a": "own", "b": "p1", "c": "p2", "only1": "y"}
    idx.update_endpoint("ep", {"a": "own"}, ["p2", "p1"])
    assert dict(idx.effective_labels("ep")) == {"a": "own", "b": "p2", "c": "p2", "only1": "y"}


def test_parent_changes_reach_all_children(idx, rec):
    idx.update_selector("prod", "env == 'prod'")
    idx.update_selector("web", "env == 'prod' && role == 'web'")
    # Children can name a parent before it exists.
    idx.update_endpoint("ep1", {"role": "web"}, ["ns"])
    idx.update_endpoint("ep2", {"role": "db"}, ["ns"])
    idx.update_endpoint("ep3", {"role": "web", "env": "dev"}, ["ns"])
    assert rec.take() == []
    idx.update_parent("ns", {"env": "prod"})
    assert rec.take() == [("start", "prod", "ep1"), ("start", "prod", "ep2"),
                          ("start", "web", "ep1")]
    idx.update_parent("ns", {"env": "prod", "unrelated": "x"})
    assert rec.take() == []
    idx.update_parent("ns", {"env": "staging"})
    assert rec.take() == [("stop", "prod", "ep1"), ("stop", "prod", "ep2"),
                          ("stop", "web", "ep1")]
    idx.update_parent("ns", {"env": "prod"})
    rec.take()
    idx.remove_parent("ns")
    assert rec.take() == [("stop", "prod", "ep1"), ("stop", "prod", "ep2"),
                          ("stop", "web", "ep1")]
    # Re-adding the parent after deletion still reaches the children that name it.
    idx.update_parent("ns", {"env": "prod"})
    assert len(rec.take()) == 3


def test_changing_parent_list(idx, rec):
    idx.update_selector("s", "team == 'x'")
    idx.update_parent("px", {"team": "x"})
    idx.update_parent("py", {"team": "y"})
    idx.update_endpoint("ep", {}, ["py"])
    assert rec.take() == []
    idx.update_endpoint("ep", {}, ["px", "py"])
    assert rec.take() == [("start", "s", "ep")]
    idx.update_endpoint("ep", {}, ["py", "px"])
    assert rec.take() == [("stop", "s", "ep")]
    idx.update_endpoint("ep", {}, [])
    idx.update_parent("px", {"team": "x", "v": "2"})  # no longer a child: no events
    assert rec.take() == []
    idx.remove_endpoint("ep")
    idx.remove_parent("px")
    idx.remove_parent("py")
    assert idx.stats()["parents"] == 0 and idx.stats()["endpoints"] == 0


def test_parents_are_dropped_when_unused(idx):
    idx.update_endpoint("ep", {}, ["p"])
    idx.remove_endpoint("ep")
    assert idx.stats()["parents"] == 0
    idx.update_parent("p", {"a": "b"})
    idx.update_endpoint("ep", {}, ["p"])
    idx.remove_parent("p")
    assert idx.stats()["parents"] == 1  # still named by ep
    idx.remove_endpoint("ep")
    assert idx.stats()["parents"] == 0


def test_callbacks_see_a_consistent_index(rec):
    seen = []
    idx = None

    def started(sel, ep):
        seen.append((sel, ep, ep in idx.endpoints_matching(sel), sel in idx.selectors_matching(ep)))

    def stopped(sel, ep):
        seen.append((sel, ep, ep in idx.endpoints_matching(sel), sel in idx.selectors_matching(ep)))

    idx = LabelIndex(started, stopped)
    idx.update_selector("s", "has(a)")
    idx.update_endpoint("e", {"a": "1"})
    idx.remove_selector("s")
    assert seen == [("s", "e", True, True), ("s", "e", False, False)]


def test_queries_return_snapshots(idx):
    idx.update_selector("s", "has(a)")
    idx.update_endpoint("e1", {"a": "1"})
    snapshot = idx.endpoints_matching("s")
    idx.update_endpoint("e2", {"a": "2"})
    assert snapshot == {"e1"}
    assert idx.endpoints_matching("s") == {"e1", "e2"}
    assert idx.selectors_matching("e2") == {"s"}
    assert idx.endpoints_matching("unknown") == frozenset()
    with pytest.raises(TypeError):
        idx.effective_labels("e1")["a"] = "x"
    with pytest.raises(KeyError):
        idx.effective_labels("unknown")


def test_endpoint_update_only_evaluates_related_selectors(idx):
    """White-box: count matcher calls to show updates are narrowed by the indexes."""
    calls = []
    for i in range(200):
        idx.update_selector(f"app{i}", f"app == 'app{i}' && tier == 'web'")
    idx.update_selector("nothas", "!has(debug)")
    idx.update_selector("all", "all()")
    for i in range(100):
        idx.update_endpoint(f"ep{i}", {"app": f"app{i % 10}", "tier": "web", "v": "1"})

    def counting(sel_id, fn):
        def wrapped(labels):
            calls.append(sel_id)
            return fn(labels)
        return wrapped
    for sel_id, fn in list(idx._matchers.items()):
        idx._matchers[sel_id] = counting(sel_id, fn)

    idx.update_endpoint("ep3", {"app": "app7", "tier": "web", "v": "1"})
    # Old matches (app3, nothas, all) plus the selectors filed under app7/tier/v.
    assert sorted(calls) == sorted(["app3", "app7", "nothas", "all"])
    assert idx.selectors_matching("ep3") == {"app7", "nothas", "all"}
    calls.clear()
    idx.update_endpoint("ep3", {"app": "app7", "tier": "web", "v": "2"})
    assert "nothas" in calls and "app150" not in calls and len(calls) <= 3
    calls.clear()
    idx.update_endpoint("new", {"zzz": "1"})
    assert sorted(calls) == ["all", "nothas"]


def test_selector_update_only_scans_candidate_endpoints(idx):
    for i in range(300):
        idx.update_endpoint(i, {"app": f"a{i % 30}"})
    scanned = []

    class Spy(dict):
        """Records which endpoints' labels were read (one entry per endpoint)."""

        def get(self, key, default=None):
            if self.get_id not in scanned:
                scanned.append(self.get_id)
            return super().get(key, default)

        def __init__(self, ep, labels):
            super().__init__(labels)
            self.get_id = ep

    idx._labels = {ep: Spy(ep, labels) for ep, labels in idx._labels.items()}
    # Only the 20 candidates the index terms allow are evaluated ...
    idx.update_selector("s", "app in {'a1', 'a2'} && v != 'x'")
    assert len(scanned) == 20
    assert idx.endpoints_matching("s") == {i for i in range(300) if i % 30 in (1, 2)}
    # ... and a selector the index terms describe exactly needs no evaluation at all.
    scanned.clear()
    idx.update_selector("e", "app in {'a1', 'a2'}")
    assert scanned == []
    assert idx.endpoints_matching("e") == {i for i in range(300) if i % 30 in (1, 2)}
    # Conjunctions intersect their terms: only the a1 endpoints with v are candidates.
    for i in range(0, 300, 60):
        idx.update_endpoint(i + 1, {"app": "a1", "v": "y"})
    idx._labels = {ep: Spy(ep, dict(labels)) for ep, labels in idx._labels.items()}
    scanned.clear()
    idx.update_selector("c", "app == 'a1' && has(v) && v != 'x'")
    assert len(scanned) == 5
    assert idx.endpoints_matching("c") == {i + 1 for i in range(0, 300, 60)}


def test_equal_label_maps_are_shared_and_released(idx):
    """White-box: endpoints with equal labels share one dict (own and effective labels),
    which the index drops when the last endpoint using it changes or goes."""
    idx.update_parent("ns", {"team": "a"})
    pairs = (("app", "web"), ("tier", "fe"))
    for i in range(5):
        idx.update_endpoint(f"p{i}", dict(pairs), ["ns"])
    idx.update_endpoint("t", pairs, ["ns"])  # (labels as pairs, as resources carry them)
    idx.update_endpoint("solo", {"app": "web", "tier": "fe"})  # no parent: own == effective
    own = {id(idx._endpoints[ep][0]) for ep in idx._endpoints}
    effective = {id(idx._labels[ep]) for ep in idx._endpoints if ep != "solo"}
    assert len(own) == 1 and len(effective) == 1
    assert idx._labels["solo"] is idx._endpoints["solo"][0]
    assert len(idx._interned) == 2 and sorted(uses for _, uses in idx._interned.values()) == [6, 8]
    # The caller's dict is copied, not kept.
    mine = {"app": "web", "tier": "fe"}
    idx.update_endpoint("p0", mine, ["ns"])
    mine["tier"] = "be"
    assert dict(idx.effective_labels("p0")) == {"team": "a", "app": "web", "tier": "fe"}
    idx.update_endpoint("p0", mine, ["ns"])
    assert dict(idx.effective_labels("p1")) == {"team": "a", "app": "web", "tier": "fe"}
    assert len(idx._interned) == 4
    idx.update_parent("ns", {"team": "b"})
    for ep in list(idx._endpoints):
        idx.remove_endpoint(ep)
    assert idx._interned == {}


def test_match_sets_grow_past_the_small_size_and_shrink_back(idx, rec):
    for i in range(20):
        idx.update_selector(f"s{i}", f"has(a) && b != '{i}'")
    idx.update_endpoint("e", {"a": "1"})
    assert idx.selectors_matching("e") == {f"s{i}" for i in range(20)}
    for i in range(20):
        idx.update_selector(f"s{i}", f"has(a) && b == '{i}'")
        assert idx.selectors_matching("e") == {f"s{j}" for j in range(i + 1, 20)}
    idx.update_endpoint("e", {"a": "1", "b": "3"})
    assert idx.selectors_matching("e") == {"s3"}
    idx.remove_endpoint("e")
    assert idx._ep_matches == {}
    assert sorted(rec.take()).count(("start", "s3", "e")) == 2
