"""Table tests for the selector language: matching, canonical forms, unique IDs, rejects.

Expected values come from Calico's own parser/tokenizer tests (libcalico-go/lib/selector),
so these tables pin down behaviour that ipset names and resource validation depend on.
"""
import hashlib
import base64

import pytest

from node.errors import CalicoError
from node.selector import Selector, SelectorError, make_unique_id, parse, validate
from node.selector.tokenizer import MAX_LABEL_LENGTH

# (selector, label sets it must match, label sets it must not match)
MATCH_TABLE = [
    ('a == "b"', [{"a": "b"}, {"a": "b", "c": "d"}], [{}, {"a": "c"}, {"c": "d"}]),
    ('a == "b" && c == "d"', [{"a": "b", "c": "d"}],
     [{}, {"a": "b", "c": "e"}, {"a": "c", "c": "d"}, {"c": "d"}, {"a": "b"}]),
    ('a == "b" || c == "d"', [{"a": "b", "c": "d"}, {"a": "b"}, {"c": "d"}],
     [{}, {"a": "e", "c": "e"}, {"c": "e"}, {"a": "e"}]),
    ('a in {"\'", \'"\', "c"}', [{"a": "c"}, {"a": '"'}, {"a": "'"}], [{}, {"a": "e"}]),
    ('a not in {"\'", \'"\', "c"}', [{}, {"a": "e"}], [{"a": "c"}, {"a": '"'}, {"a": "'"}]),
    ("a == 'a'", [{"a": "a"}], [{"a": "b"}, {}]),
    ('a == "a"', [{"a": "a"}], []),
    ('a != "b"', [{"a": "a"}], []),
    ('a != "a"', [{}], [{"a": "a"}]),
    ("a != 'a'", [], [{"a": "a"}]),
    ('a contains "a"', [{"a": "a"}, {"a": "bab"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"b": "aaa"}]),
    ('a starts with "a"', [{"a": "a"}, {"a": "abb"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"a": "baa"}, {"b": "aaa"}]),
    ('a ends with "a"', [{"a": "a"}, {"a": "bba"}, {"a": "aaa", "b": "c"}],
     [{}, {"a": "b"}, {"a": "aab"}, {"b": "aaa"}]),
    ('a contains ""', [{"a": ""}, {"a": "x"}], [{}]),
    ('a in {"a"}', [{"a": "a"}], [{"a": "b"}]),
    ('!a in {"a"}', [{"a": "b"}, {}], [{"a": "a"}]),
    ('a in {"a", "b"}', [{"a": "a"}, {"a": "b"}], [{"a": "c"}]),
    ('a not in {"d", "e"}', [{"a": "a"}], []),
    ('a not in {"a"}', [], [{"a": "a"}]),
    ("a in {}", [], [{}, {"a": ""}]),
    ("a not in {}", [{}, {"a": ""}], []),
    ("has(a)", [{"a": "b"}, {"a": ""}], [{"b": "b"}]),
    ("!has(a)", [{"b": "b"}], [{"a": "b"}]),
    ("has(b)", [], [{"a": "b"}]),
    ("!!has(b)", [], [{"a": "b"}]),
    ("! has(a)", [], [{"a": "b"}]),
    ("!!! has(a)", [], [{"a": "b"}]),
    ("!!!has(a)", [], [{"a": "b"}]),
    ("!! ! has(a)", [], [{"a": "b"}]),
    ("! !!has(a)", [], [{"a": "b"}]),
    ("", [{}, {"a": "b"}], []),
    (" ", [{}], []),
    ("all()", [{}], []),
    (" all()", [{}, {"a": "b"}], []),
    ("global()", [{}], []),
    (" global()", [{}, {"a": "b"}], []),
    ("!all()", [], [{}, {"a": "b"}]),
    # Boolean expressions.
    ("a == 'a1' && b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a == 'a1' && b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("a != 'a1' && !b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("!a == 'a1' && b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("has(a) && !has(b)", [{"a": "a"}], []),
    ("!has(b) && has(a)", [{"a": "a"}], []),
    ("!(!has(a) || has(b))", [{"a": "a"}], []),
    ("!(has(b) || !has(a))", [{"a": "a"}], []),
    ("a == 'a1' || b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a == 'a1' || b != 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a != 'a1' || b == 'b1'", [{"a": "a1", "b": "b1"}], []),
    ("a != 'a1' || b != 'b1'", [], [{"a": "a1", "b": "b1"}]),
    ("! a == 'a1' || ! b == 'b1'", [], [{"a": "a1", "b": "b1"}]),
    # && binds tighter than ||.
    ("a == 'x' || b == 'y' && c == 'z'", [{"a": "x"}, {"b": "y", "c": "z"}], [{"b": "y"}]),
    ("(a == 'x' || b == 'y') && c == 'z'", [{"a": "x", "c": "z"}], [{"a": "x"}]),
    # Word operators are plain label names elsewhere.
    ('contains contains "contains"', [{"contains": "xcontainsx"}], [{"contains": "x"}]),
    ('in in {"in"}', [{"in": "in"}], [{}]),
    ('not in {"x"}', [{"not": "x"}], [{"not": "y"}]),
    ("has(has) && all == 'all'", [{"has": "", "all": "all"}], [{"all": "all"}]),
    ('calico/k8s_ns == "kube-system" && k8s-app == "kube-dns"',
     [{"calico/k8s_ns": "kube-system", "k8s-app": "kube-dns"}], [{"k8s-app": "kube-dns"}]),
    ("has(calico/k8s_NS-.1/role)", [{"calico/k8s_NS-.1/role": "x"}], [{}]),
    # Non-ASCII and odd characters inside literals.
    ("a == 'h\u00e9 \u2603 {}()&|!='", [{"a": "h\u00e9 \u2603 {}()&|!="}], [{"a": "he"}]),
]


@pytest.mark.parametrize("text,matches,non_matches", MATCH_TABLE)
def test_evaluate(text, matches, non_matches):
    sel = parse(text)
    assert validate(text) is None
    again = parse(str(sel))
    for labels in matches:
        assert sel.evaluate(labels), (text, labels)
        assert again.evaluate(labels), (str(sel), labels)
    for labels in non_matches:
        assert not sel.evaluate(labels), (text, labels)
        assert not again.evaluate(labels), (str(sel), labels)
    assert sel.unique_id() == again.unique_id()


# (input, canonical form, unique ID or None)
CANONICAL_TABLE = [
    ("", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" all() ", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    (" (all() )", "all()", "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
    ("! (has( b)||! has(a ))", "!(has(b) || !has(a))", "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"),
    ('! (a == "b"&&! c != "d")', '!(a == "b" && !c != "d")',
     "s:lh3haoY1ikTRkd4UZu0nWSaIBknYLPJLX16d-w"),
    ("a == \"'\"", "a == \"'\"", None),
    ("a == '\"'", "a == '\"'", None),
    ("a contains '\"'", "a contains '\"'", None),
    ("a contains \"'\"", "a contains \"'\"", None),
    ("a startswith '\"'", "a starts with '\"'", None),
    ("a endswith \"'\"", "a ends with \"'\"", None),
    ("a!='\"'", "a != '\"'", None),
    ('a in {"d"}', 'a in {"d"}', None),
    ('a in {"a", "b"}', 'a in {"a", "b"}', None),
    ('a in {"d", "a", "b"}', 'a in {"a", "b", "d"}', None),
    ('a in {"z", "x", "y", "a"}', 'a in {"a", "x", "y", "z"}', None),
    ('a in {"z", "z", "x", "y", "x", "a"}', 'a in {"a", "x", "y", "z"}', None),
    # Shapes from Calico's visitor tests (without the prefixing).
    ("k == 'v'", 'k == "v"', None),
    ("k != 'v'", 'k != "v"', None),
    ("k contains 'v'", 'k contains "v"', None),
    ("k starts with 'v'", 'k starts with "v"', None),
    ("k ends with 'v'", 'k ends with "v"', None),
    ("k == 'v' && x == 'y'", '(k == "v" && x == "y")', None),
    ("k == 'v' || has(x)", '(k == "v" || has(x))', None),
    ("!(k == 'v')", '!k == "v"', None),
    ("k in {'v'}", 'k in {"v"}', None),
    ("k not in {'v'}", 'k not in {"v"}', None),
    ("!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))",
     '!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})', None),
    # Spellings and spacing.
    ("a notin{'x','y',}", 'a not in {"x", "y"}', None),
    ("a  not \t in  {}", "a not in {}", None),
    ("a in{}", "a in {}", None),
    ("\ta==\"b\"\t", 'a == "b"', None),
    ("label starts  with 'v'", 'label starts with "v"', None),
    ("label ends  with 'v'", 'label ends with "v"', None),
    ("label contains'v'", 'label contains "v"', None),
    ("all( )", "all()", None),
    ("global( )", "global()", None),
    ("has( a )", "has(a)", None),
    ("!!has(a)", "has(a)", None),
    ("!!!has(a)", "!has(a)", None),
    ("((a == 'b'))", 'a == "b"', None),
    # No flattening of nested groups, and precedence shown by parentheses.
    ("a == 'x' || b == 'y' && c == 'z'", '(a == "x" || (b == "y" && c == "z"))', None),
    ("(a == 'x' && b == 'y') && c == 'z'", '((a == "x" && b == "y") && c == "z")', None),
    ("a == 'x' && b == 'y' && c == 'z'", '(a == "x" && b == "y" && c == "z")', None),
    ("a in {'\"', \"'\"}", "a in {'\"', \"'\"}", None),
]


@pytest.mark.parametrize("text,canonical,uid", CANONICAL_TABLE)
def test_canonical_form_and_unique_id(text, canonical, uid):
    sel = parse(text)
    assert str(sel) == canonical
    again = parse(canonical)
    assert str(again) == canonical
    assert again.unique_id() == sel.unique_id()
    assert again == sel and hash(again) == hash(sel)
    if uid is not None:
        assert sel.unique_id() == uid


def test_negated_parenthesised_negation_keeps_calicos_double_bang():
    # Calico keeps Not(Not(x)) when the inner "!" is inside parentheses and renders it as
    # "!!x"; re-parsing collapses the "!"s, so that canonical form is not a fixed point.
    sel = parse('!(!a == "b")')
    assert str(sel) == '!!a == "b"'
    assert str(parse(str(sel))) == 'a == "b"'
    assert sel.unique_id() != parse(str(sel)).unique_id()
    assert sel.evaluate({"a": "b"}) and not sel.evaluate({})
    assert str(parse("!(!(!has(a)))")) == "!!!has(a)"


def test_unique_id_is_sha224_of_prefixed_canonical_form():
    sel = parse("a == 'b'")
    digest = hashlib.sha224(b's:a == "b"').digest()
    assert sel.unique_id() == "s:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")
    # SHA-224 is 28 bytes: 38 characters of unpadded base64.
    assert len(sel.unique_id()) == len("s:") + 38
    assert make_unique_id("test", "content").startswith("test:")


def test_label_length_limit():
    ok = "a" * MAX_LABEL_LENGTH
    assert str(parse(f'{ok} == "v"')) == f'{ok} == "v"'
    assert str(parse(f"has({ok})")) == f"has({ok})"
    for text in (f'{ok}a == "v"', f"has({ok}a)"):
        with pytest.raises(SelectorError, match="at most 512"):
            parse(text)


# (bad selector, position the error must name)
BAD_TABLE = [
    ("b == b", 5),              # label == label
    ("b contains b", 11),
    ("b starts with b", 2),     # multi-word operator must end at a word boundary
    ("b ends with b", 2),
    ("'b1' == b", 0),          # literal on the left
    ("b", 1),                   # bare label
    ("a b", 2),
    ("!", 1),
    ('foo == "bar" &', 13),
    ('foo == "bar" |', 13),
    ("foo != ||", 7),
    ('foo in {"", ||', 12),
    ('foo in ""', 7),           # set literal expected
    ('"FOO', 0),                # unterminated strings
    ("\"FOO'", 0),
    ("'FOO", 0),
    ("(", 1),
    ('(a == "foo"', 11),
    (")", 0),
    ("()", 1),
    ("%", 0),
    ('a == "b" && %', 12),
    ('a == "b" || %', 12),
    ("a ", 2),
    ("has(foo) &&", 11),
    # From the tokenizer tests.
    ('label = "value"', 6),
    ("all(", 4),
    ("global(", 7),
    ("has()", 4),
    ("has(foo", 7),
    ("has( foo ", 9),
    ('a == "b" & has(foo)', 9),
    ('a == "b" | has(foo)', 9),
    ('label starts foo "value"', 6),
    ('label inf "value"', 6),
    ('label ends foo "value"', 6),
    ('label ends withs "value"', 6),
    ('label squiggles "value"', 6),
    ('a not in "bar" && !has(foo) || b in c', 9),
    # From the resource validator tests.
    ("thing=hello &", 5),
    ("this is not valid selector syntax", 5),
    ("kubernetes.io/hostname: == 'casey-crc-kadm-node-4'", 22),
    # Other classes.
    ("a == 'b'\n", 8),          # only space and tab are whitespace
    ("\na == 'b'", 0),
    ("a\u00e9 == 'b'", 1),      # non-ASCII label character
    ("a == 'b' c == 'd'", 9),   # missing boolean operator
    ("a == 'b')", 8),
    ("a in {'x' 'y'}", 10),
    ("a in {,}", 6),
    ("a in {'x',,'y'}", 10),
    ("a in {'x'", 9),
    ("a in 'x'", 5),
    ("a not in x", 2),
    ("a in x", 5),
    ("a ==== 'b'", 4),
    ("a !== 'b'", 4),
    ("a ! = 'b'", 4),
    ("a === 'b'", 4),
    ("has (a)", 4),             # keyword needs the parenthesis immediately
    ("all ()", 4),
    ("has(a b)", 6),
    ("has(a)b", 6),
    ("&& a == 'b'", 0),
    ("a == 'b' &&", 11),
    ("a == 'b' || || c == 'd'", 12),
    ("!!", 2),
    ("!= 'a'", 0),
    ("a == 'b' && (c == 'd' || e == 'f'", 33),
    ("a.b/c == 'b' && ()", 17),
    ("{}", 0),
    ("a contains", 10),
    ("a startswith", 12),
    ("a ends with", 11),
    ("a == 'b' all()", 9),
    ("A == 'b' || b IN {'c'}", 14),
]


@pytest.mark.parametrize("text,position", BAD_TABLE)
def test_rejects(text, position):
    with pytest.raises(SelectorError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, CalicoError)
    assert err.position == position, str(err)
    assert f"at position {position}" in str(err)
    assert "expected" in str(err)
    assert err.selector == text
    with pytest.raises(SelectorError):
        validate(text)


@pytest.mark.parametrize("text,fragment", [
    ("a == b", "expected a quoted string after '=='"),
    ("a in x", "expected a set literal"),
    ("b", "expected an operator"),
    ("a in {'x' 'y'}", "expected ',' or '}'"),
    ("(a == 'b'", "expected ')'"),
    ("'FOO", "closing '"),
    ("a == 'b' &", "expected '&&'"),
    ("%", "found '%'"),
    ("a == 'b' c == 'd'", "found label 'c'"),
    ("a ==", "found end of selector"),
])
def test_error_messages_say_what_was_expected(text, fragment):
    with pytest.raises(SelectorError, match=None) as info:
        parse(text)
    assert fragment in str(info.value)


def test_parse_is_cached_and_selectors_are_values():
    assert parse("a == 'b'") is parse("a == 'b'")
    assert parse("a == 'b'") == parse('a=="b"')
    assert parse("a == 'b'") != parse("a == 'c'")
    assert isinstance(parse(""), Selector)
    assert repr(parse("has(a)")) == "Selector('has(a)')"


def test_nesting_limit():
    from node.selector.parser import MAX_NESTING
    deep = "(" * MAX_NESTING + "has(a)" + ")" * MAX_NESTING
    assert str(parse(deep)) == "has(a)"
    inner = "a == 'x' && (" * MAX_NESTING + "has(a)" + ")" * MAX_NESTING
    assert parse(inner).evaluate({"a": "x"})
    with pytest.raises(SelectorError, match="levels of nested parentheses") as info:
        parse("(" * (MAX_NESTING + 1) + "has(a)" + ")" * (MAX_NESTING + 1))
    assert info.value.position == MAX_NESTING


def test_parse_rejects_non_strings():
    with pytest.raises(TypeError):
        parse(None)


def test_label_names_and_index_terms():
    sel = parse("(a == 'x' || a in {'y', 'z'}) && has(b) && !has(c)")
    assert sel.label_names() == {"a", "b", "c"}
    assert sel.index_terms() == {"a": frozenset({"x", "y", "z"})}
    # De Morgan: !(a != 'x' || b not in {...}) needs a == 'x'.
    assert parse("!(a != 'x' || b not in {'q'})").index_terms() in (
        {"a": frozenset({"x"})}, {"b": frozenset({"q"})})
    assert parse("a == 'x' || has(b)").index_terms() == {"a": frozenset({"x"}), "b": None}
    assert parse("!all()").index_terms() == {}
    for unnarrowed in ("all()", "global()", "!has(a)", "a != 'x'", "a not in {'x'}",
                       "a == 'x' || !has(b)", "!(a == 'x')", "!a contains 'x'"):
        assert parse(unnarrowed).index_terms() is None, unnarrowed
