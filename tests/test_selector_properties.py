"""Property tests: random selectors against an independent reference evaluator, canonical
round-trips, soundness of index terms, and LabelIndex against brute-force evaluation after
random sequences of selector/endpoint/parent changes."""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.selector import LabelIndex, SelectorError, parse

KEYS = ["a", "b", "c", "k8s.io/x-y_z"]
VALUES = ["", "x", "y", "xy", 'q"', "q'"]
PARENTS = ["p0", "p1", "p2"]

labels_st = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)

_VALUE_OPS = {
    "==": lambda v, want: v == want,
    "!=": None,  # handled specially: true when the label is absent
    "contains": lambda v, want: want in v,
    "starts with": lambda v, want: v.startswith(want),
    "ends with": lambda v, want: v.endswith(want),
}
_SPELLINGS = {
    "==": ["==", " == "],
    "!=": ["!=", " != "],
    "contains": [" contains ", " contains"],
    "starts with": [" starts with ", " startswith", " starts  with\t"],
    "ends with": [" ends with ", " endswith", " ends\twith "],
    "in": [" in ", " in"],
    "not in": [" not in ", " notin", " not\t in "],
}


def _quote(draw, value):
    if '"' in value:
        return f"'{value}'"
    if "'" in value:
        return f'"{value}"'
    q = draw(st.sampled_from(['"', "'"]))
    return q + value + q


def _ws(draw):
    return draw(st.sampled_from(["", " ", "  ", "\t"]))


@st.composite
def leaf(draw):
    """(text, reference function) for one comparison or constant."""
    kind = draw(st.sampled_from(["value", "value", "set", "has", "all", "global"]))
    key = draw(st.sampled_from(KEYS))
    if kind == "value":
        op = draw(st.sampled_from(list(_VALUE_OPS)))
        want = draw(st.sampled_from(VALUES))
        text = key + draw(st.sampled_from(_SPELLINGS[op])) + _quote(draw, want)
        if op == "!=":
            return text, (lambda L: not (key in L and L[key] == want))
        test = _VALUE_OPS[op]
        return text, (lambda L: key in L and test(L[key], want))
    if kind == "set":
        op = draw(st.sampled_from(["in", "not in"]))
        members = draw(st.lists(st.sampled_from(VALUES), max_size=3))
        body = ("," + _ws(draw)).join(_quote(draw, m) for m in members)
        if members and draw(st.booleans()):
            body += ","  # Calico accepts a trailing comma
        spelling = draw(st.sampled_from(_SPELLINGS[op]))
        text = f"{key}{spelling}{{{_ws(draw)}{body}{_ws(draw)}}}"
        if op == "in":
            return text, (lambda L: key in L and L[key] in members)
        return text, (lambda L: not (key in L and L[key] in members))
    if kind == "has":
        return f"has({_ws(draw)}{key}{_ws(draw)})", (lambda L: key in L)
    name = "all" if kind == "all" else "global"
    return f"{name}({_ws(draw)})", (lambda L: True)


def _extend(children):
    """Compound nodes: each value is (text, fn, kind) with kind in leaf/not/and/or."""
    @st.composite
    def compound(draw):
        kind = draw(st.sampled_from(["not", "and", "or"]))
        if kind == "not":
            text, fn, ckind = draw(children)
            # "!" applies to the next operation only, so groups need parentheses.
            if ckind in ("and", "or") or draw(st.booleans()):
                text = f"({_ws(draw)}{text}{_ws(draw)})"
            return "!" + _ws(draw) + text, (lambda L: not fn(L)), "not"
        parts = draw(st.lists(children, min_size=2, max_size=3))
        rendered = []
        for text, _fn, ckind in parts:
            # An || inside && needs parentheses; anything else only sometimes gets them.
            if (kind == "and" and ckind == "or") or draw(st.booleans()):
                text = f"({_ws(draw)}{text}{_ws(draw)})"
            rendered.append(text)
        joiner = _ws(draw) + ("&&" if kind == "and" else "||") + _ws(draw)
        fns = [fn for _t, fn, _k in parts]
        if kind == "and":
            return joiner.join(rendered), (lambda L: all(f(L) for f in fns)), "and"
        return joiner.join(rendered), (lambda L: any(f(L) for f in fns)), "or"
    return compound()


@st.composite
def maybe_negated_leaf(draw):
    """A leaf, a third of the time negated: negations are what the index cannot narrow."""
    text, fn = draw(leaf())
    if draw(st.sampled_from([False, False, True])):
        return "!" + _ws(draw) + text, (lambda L: not fn(L)), "not"
    return text, fn, "leaf"


leaf_nodes = maybe_negated_leaf()
selector_st = st.recursive(leaf_nodes, _extend, max_leaves=6).map(lambda t: (t[0], t[1]))


def _assert_round_trip(parsed, again):
    """Re-parsing the canonical form gives the same canonical form and ID, except where a
    parenthesised negation was negated: Calico renders Not(Not(x)) as "!!x", which parses
    back as x (leading "!"s collapse).  Then the second form is a fixed point."""
    canonical = str(parsed)
    if "!!" in canonical:
        assert str(parse(str(again))) == str(again)
    else:
        assert str(again) == canonical
        assert again.unique_id() == parsed.unique_id()


def _terms_hold(terms, labels):
    return any(k in labels and (vals is None or labels[k] in vals) for k, vals in terms.items())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sel=selector_st, label_sets=st.lists(labels_st, min_size=1, max_size=6),
       pad=st.sampled_from(["", " ", "\t "]))
def test_parse_evaluate_and_round_trip(sel, label_sets, pad):
    text, reference = sel
    parsed = parse(pad + text + pad)
    canonical = str(parsed)
    again = parse(canonical)
    _assert_round_trip(parsed, again)
    terms = parsed.index_terms()
    for labels in label_sets:
        expected = reference(labels)
        assert parsed.evaluate(labels) == expected, (text, canonical, labels)
        assert again.evaluate(labels) == expected
        if expected and terms is not None:
            assert _terms_hold(terms, labels), (canonical, terms, labels)
        # The result depends only on the labels the selector names.
        relevant = {k: v for k, v in labels.items() if k in parsed.label_names()}
        assert parsed.evaluate(relevant) == expected


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet='ab ()!=&|"\'{},.-/\tinotc_has()all', max_size=24))
def test_arbitrary_text_parses_or_raises_selector_error(text):
    try:
        sel = parse(text)
    except SelectorError as err:
        assert 0 <= err.position <= len(text)
        assert f"position {err.position}" in str(err)
        return
    _assert_round_trip(sel, parse(str(sel)))


# ----------------------------------------------------------------- the index

# Few ids and small selectors so that sequences often revisit the same endpoint and
# flip the same selector; updates are weighted over deletions.
_index_selector_st = st.recursive(leaf_nodes, _extend, max_leaves=3).map(lambda t: t[0])
_sel_op = st.tuples(st.just("sel"), st.integers(0, 3), _index_selector_st)
_ep_op = st.tuples(st.just("ep"), st.integers(0, 2), labels_st,
                   st.lists(st.sampled_from(PARENTS), max_size=3))
_parent_op = st.tuples(st.just("parent"), st.sampled_from(PARENTS), labels_st)
ops_st = st.lists(st.one_of(
    _sel_op, _sel_op, _ep_op, _ep_op, _ep_op, _parent_op, _parent_op,
    st.tuples(st.just("del_sel"), st.integers(0, 3)),
    st.tuples(st.just("del_ep"), st.integers(0, 2)),
    st.tuples(st.just("del_parent"), st.sampled_from(PARENTS)),
), min_size=10, max_size=40)


def _effective(own, parent_ids, parents):
    labels = {}
    for pid in parent_ids:
        for k, v in parents.get(pid, {}).items():
            labels.setdefault(k, v)
    labels.update(own)
    return labels


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops_st)
def test_index_agrees_with_brute_force(ops):
    active = set()

    def started(sel, ep):
        assert (sel, ep) not in active, "duplicate start"
        active.add((sel, ep))

    def stopped(sel, ep):
        assert (sel, ep) in active, "stop without start"
        active.remove((sel, ep))

    idx = LabelIndex(started, stopped)
    selectors, endpoints, parents = {}, {}, {}
    for op in ops:
        kind = op[0]
        if kind == "sel":
            selectors[op[1]] = parse(op[2])
            idx.update_selector(op[1], op[2])
        elif kind == "del_sel":
            selectors.pop(op[1], None)
            idx.remove_selector(op[1])
        elif kind == "ep":
            endpoints[op[1]] = (op[2], op[3])
            idx.update_endpoint(op[1], op[2], op[3])
        elif kind == "del_ep":
            endpoints.pop(op[1], None)
            idx.remove_endpoint(op[1])
        elif kind == "parent":
            parents[op[1]] = op[2]
            idx.update_parent(op[1], op[2])
        else:
            parents.pop(op[1], None)
            idx.remove_parent(op[1])

        effective = {ep: _effective(own, pids, parents) for ep, (own, pids) in endpoints.items()}
        expected = {(s, e) for s, sel in selectors.items() for e, labels in effective.items()
                    if sel.evaluate(labels)}
        assert active == expected, op
        for ep, labels in effective.items():
            assert dict(idx.effective_labels(ep)) == labels
            assert idx.selectors_matching(ep) == {s for s, e in expected if e == ep}
        for s in selectors:
            assert idx.endpoints_matching(s) == {e for s2, e in expected if s2 == s}
