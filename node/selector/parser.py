"""Recursive-descent parser producing ``Selector`` objects, with Calico's grammar::

    selector  := <empty> | or_expr
    or_expr   := and_expr ( "||" and_expr )*
    and_expr  := operation ( "&&" operation )*
    operation := "!"* ( has(label) | all() | global() | "(" or_expr ")"
                      | label ("==" | "!=" | "contains" | "starts with" | "ends with") string
                      | label ("in" | "not in") "{" [ string ( "," string )* [","] ] "}" )

Any number of leading ``!`` collapse to one or none.  An empty (or all-blank) selector
means ``all()``.  Results are cached by text, since the same selector strings recur across
policies, rules and resources; ``Selector`` objects are immutable so sharing is safe.
"""
from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping

from node.selector import ast
from node.selector.errors import SelectorError
from node.selector.tokenizer import Kind, Token, tokenize

_PARSE_CACHE_SIZE = 8192
# Parenthesis nesting limit.  Calico has none, but parsing, rendering and the compiled
# matcher all recurse once per level, so Python needs a bound well inside its recursion
# limit; real selectors nest a handful of levels.
MAX_NESTING = 100
_UNSET = object()

_STRING_OPS = {
    Kind.EQ: ast.LabelEq,
    Kind.NE: ast.LabelNe,
    Kind.CONTAINS: ast.LabelContains,
    Kind.STARTS_WITH: ast.LabelStartsWith,
    Kind.ENDS_WITH: ast.LabelEndsWith,
}
_SET_OPS = {Kind.IN: ast.LabelIn, Kind.NOT_IN: ast.LabelNotIn}


def make_unique_id(prefix: str, content: str) -> str:
    """Calico's ``hash.MakeUniqueID``: ``<prefix>:`` + unpadded URL-safe base64 of the
    SHA-224 of ``<prefix>:<content>``."""
    digest = hashlib.sha224(f"{prefix}:{content}".encode("utf-8", "surrogatepass")).digest()
    return f"{prefix}:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Selector:
    """A parsed selector.

    ``str()`` is Calico's canonical form and ``unique_id()`` its hash; two selectors are
    equal exactly when their canonical forms are.
    """
    __slots__ = ("root", "_text", "_uid", "_match", "_labels", "_terms", "_plan")

    def __init__(self, root: ast.Node):
        self.root = root
        self._text = str(root)
        self._uid: str | None = None
        self._match = root.compile()
        self._labels: frozenset[str] | None = None
        self._terms: ast.Terms | object = _UNSET
        self._plan: tuple | None = None

    def evaluate(self, labels: Mapping[str, str]) -> bool:
        """True if the label set matches."""
        return self._match(labels)

    @property
    def matcher(self) -> ast.Matcher:
        """The compiled ``labels -> bool`` function (saves an attribute lookup per call in
        hot loops)."""
        return self._match

    def unique_id(self) -> str:
        """``s:`` + hash of the canonical form; Calico derives ipset names from this."""
        if self._uid is None:
            self._uid = make_unique_id("s", self._text)
        return self._uid

    def label_names(self) -> frozenset[str]:
        """Every label name the selector looks at; its result depends on nothing else."""
        if self._labels is None:
            self._labels = frozenset(self.root.label_names())
        return self._labels

    def index_terms(self) -> ast.Terms:
        """Label terms any matching label set satisfies (see ``ast.Terms``), or None if the
        selector cannot be narrowed down that way (e.g. ``all()``, ``!has(a)``)."""
        if self._terms is _UNSET:
            self._terms = self.root.terms(False)
        return None if self._terms is None else dict(self._terms)

    def search_plan(self) -> tuple[tuple[ast.Terms, ...], bool]:
        """How to find this selector's matches in a label index without testing every
        candidate: term sets that each narrow the candidates (a match satisfies every one
        of them, so their intersection is a superset of the matches), and whether that
        intersection *is* the set of matches (``a == "x"``, ``a in {...}``, ``has(a)`` and
        conjunctions of those), so no label set needs evaluating at all."""
        if self._plan is None:
            parts = self.root.operands if isinstance(self.root, ast.And) else (self.root,)
            narrowing, exact = [], True
            for part in parts:
                terms = part.terms(False)
                if terms is None:
                    exact = False
                    continue
                narrowing.append(terms)
                exact = exact and isinstance(part, (ast.LabelEq, ast.LabelIn, ast.Has))
            self._plan = (tuple(narrowing), exact and bool(narrowing))
        return self._plan

    def __reduce__(self):
        # The compiled matcher is a closure and cannot be pickled; rebuild from the tree.
        return (Selector, (self.root,))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Selector({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Selector):
            return self._text == other._text
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._text)


# Token kinds as module constants: the parser compares every token with several, and
# an attribute of the Kind enum class costs a lookup each time.
_ALL = Kind.ALL
_AND = Kind.AND
_COMMA = Kind.COMMA
_GLOBAL = Kind.GLOBAL
_HAS = Kind.HAS
_LABEL = Kind.LABEL
_LBRACE = Kind.LBRACE
_LPAREN = Kind.LPAREN
_NOT = Kind.NOT
_OR = Kind.OR
_RBRACE = Kind.RBRACE
_RPAREN = Kind.RPAREN
_STRING = Kind.STRING


class _Parser:
    """One parse of one token list; ``i`` indexes the next unconsumed token.

    The token list always ends with EOF, which no rule consumes, so lookahead never runs
    off the end.
    """

    def __init__(self, text: str, tokens: list[Token]):
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    def error(self, tok: Token, expected: str) -> SelectorError:
        return SelectorError(self.text, tok.pos, expected, tok.describe())

    def parse_or(self) -> ast.Node:
        operands = [self.parse_and()]
        while self.tokens[self.i].kind is _OR:
            self.i += 1
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else ast.Or(operands)

    def parse_and(self) -> ast.Node:
        operands = [self.parse_operation()]
        while self.tokens[self.i].kind is _AND:
            self.i += 1
            operands.append(self.parse_operation())
        return operands[0] if len(operands) == 1 else ast.And(operands)

    def parse_operation(self) -> ast.Node:
        tokens = self.tokens
        negated = False
        while tokens[self.i].kind is _NOT:
            negated = not negated
            self.i += 1
        tok = tokens[self.i]
        kind = tok.kind
        if kind is _HAS:
            self.i += 1
            node: ast.Node = ast.Has(tok.value)
        elif kind is _ALL:
            self.i += 1
            node = ast.All()
        elif kind is _GLOBAL:
            self.i += 1
            node = ast.Global()
        elif kind is _LABEL:
            node = self.parse_comparison()
        elif kind is _LPAREN:
            if self.depth >= MAX_NESTING:
                raise self.error(tok, f"at most {MAX_NESTING} levels of nested parentheses")
            self.i += 1
            self.depth += 1
            node = self.parse_or()
            self.depth -= 1
            closing = tokens[self.i]
            if closing.kind is not _RPAREN:
                raise self.error(closing, "')' or a boolean operator")
            self.i += 1
        else:
            raise self.error(tok, "a label name, has(), all(), global(), '!' or '('")
        return ast.Not(node) if negated else node

    def parse_comparison(self) -> ast.Node:
        tokens = self.tokens
        label, op = tokens[self.i], tokens[self.i + 1]
        self.i += 2
        if op.kind in _STRING_OPS:
            literal = tokens[self.i]
            if literal.kind is not _STRING:
                raise self.error(literal, f"a quoted string after {op.kind.value}")
            self.i += 1
            return _STRING_OPS[op.kind](label.value, literal.value)
        if op.kind in _SET_OPS:
            return _SET_OPS[op.kind](label.value, self.parse_set(op))
        raise self.error(op, f"an operator (==, !=, in, not in, contains, starts with, "
                             f"ends with) after label {label.value!r}")

    def parse_set(self, op: Token) -> list[str]:
        tokens = self.tokens
        brace = tokens[self.i]
        if brace.kind is not _LBRACE:
            raise self.error(brace, f"a set literal '{{...}}' after {op.kind.value}")
        self.i += 1
        values = []
        while tokens[self.i].kind is _STRING:
            values.append(tokens[self.i].value)
            self.i += 1
            if tokens[self.i].kind is not _COMMA:
                break
            self.i += 1
        closing = tokens[self.i]
        if closing.kind is not _RBRACE:
            expected = "',' or '}'" if values and tokens[self.i - 1].kind is _STRING \
                else "a quoted string or '}'"
            raise self.error(closing, expected)
        self.i += 1
        return values


def _parse_uncached(text: str) -> Selector:
    tokens = tokenize(text)
    if tokens[0].kind is Kind.EOF:
        return Selector(ast.All())
    p = _Parser(text, tokens)
    root = p.parse_or()
    rest = tokens[p.i]
    if rest.kind is not Kind.EOF:
        raise p.error(rest, "'&&', '||' or end of selector")
    return Selector(root)


@functools.lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_cached(text: str) -> Selector:
    return _parse_uncached(text)


def parse(text: str) -> Selector:
    """Parse selector text; raise ``SelectorError`` for anything Calico rejects."""
    if not isinstance(text, str):
        raise TypeError(f"selector must be a str, not {type(text).__name__}")
    return _parse_cached(text)


def validate(text: str) -> None:
    """Raise ``SelectorError`` if Calico would reject ``text``; otherwise return None."""
    parse(text)
