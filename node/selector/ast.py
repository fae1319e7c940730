"""Selector syntax tree: canonical rendering, compiled matching and index terms.

Every node can

* ``render(out)``: append its fragments of Calico's canonical string.  The shape of that
  string is a compatibility contract (the unique ID, and so every ipset name, is a hash of
  it): ``&&``/``||`` groups are always parenthesised, a parenthesised single term is not,
  ``!`` is written directly before its operand, set members are sorted and de-duplicated,
  and literals use double quotes unless they contain one.
* ``compile()``: return a closure ``labels -> bool``.  Selectors are evaluated millions of
  times by the label index, so the tree is turned into nested closures once instead of
  being walked with method dispatch on every call.
* ``terms(negated)``: return *index terms* (see ``Terms``) that any matching label set must
  satisfy, so the index can skip label sets that cannot match.

Label values are strings; a missing label is looked up as ``None``, which is why ``!=`` and
``not in`` match label sets that lack the label (as in Calico).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Optional

Matcher = Callable[[Mapping[str, str]], bool]

# Index terms: ``{label: values}`` meaning "a matching label set has at least one of these
# labels, with a value in ``values`` (or any value when ``values`` is None)".  The empty
# dict means "matches nothing"; ``None`` instead of a dict means "no useful restriction".
Terms = Optional[dict[str, Optional[frozenset[str]]]]

# Relative cost of an "any value" term compared with one specific value; used to pick the
# most selective alternative for an ``&&``.  Values almost always win, as in Calico.
PRESENCE_COST = 1000


def terms_cost(terms: dict[str, frozenset[str] | None]) -> int:
    return sum(PRESENCE_COST if vals is None else len(vals) for vals in terms.values())


def _union_terms(parts: Iterable[Terms]) -> Terms:
    """Terms for "any of these matches" (an ``||``)."""
    merged: dict[str, frozenset[str] | None] = {}
    for part in parts:
        if part is None:
            return None
        for label, vals in part.items():
            if label in merged:
                old = merged[label]
                merged[label] = None if old is None or vals is None else old | vals
            else:
                merged[label] = vals
    return merged


def _best_terms(parts: Iterable[Terms]) -> Terms:
    """Terms for "all of these match" (an ``&&``): any operand's terms hold, so take the
    most selective."""
    best: Terms = None
    for part in parts:
        if part is not None and (best is None or terms_cost(part) < terms_cost(best)):
            best = part
    return best


def _quoted(value: str) -> str:
    # Calico has no escapes: a literal containing " must be written with ' and vice versa
    # (a literal cannot contain both, since the tokenizer cannot produce one).
    q = "'" if '"' in value else '"'
    return q + value + q


class Node:
    __slots__ = ()

    def render(self, out: list[str]) -> None:
        raise NotImplementedError

    def compile(self) -> Matcher:
        raise NotImplementedError

    def terms(self, negated: bool = False) -> Terms:
        raise NotImplementedError

    def label_names(self) -> set[str]:
        raise NotImplementedError

    def __str__(self) -> str:
        out: list[str] = []
        self.render(out)
        return "".join(out)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"


class _LabelValueOp(Node):
    """Base of the ``label <op> "value"`` comparisons."""
    __slots__ = ("label", "value")
    op = ""

    def __init__(self, label: str, value: str):
        self.label = label
        self.value = value

    def render(self, out: list[str]) -> None:
        out += (self.label, self.op, _quoted(self.value))

    def label_names(self) -> set[str]:
        return {self.label}

    def terms(self, negated: bool = False) -> Terms:
        # contains / starts with / ends with need the label to exist (any value) and,
        # negated, match label sets without it.
        return None if negated else {self.label: None}


class LabelEq(_LabelValueOp):
    __slots__ = ()
    op = " == "

    def compile(self) -> Matcher:
        label, value = self.label, self.value
        return lambda labels: labels.get(label) == value

    def terms(self, negated: bool = False) -> Terms:
        return None if negated else {self.label: frozenset((self.value,))}


class LabelNe(_LabelValueOp):
    __slots__ = ()
    op = " != "

    def compile(self) -> Matcher:
        label, value = self.label, self.value
        return lambda labels: labels.get(label) != value

    def terms(self, negated: bool = False) -> Terms:
        # !(a != "x") only matches a label set with a == "x".
        return {self.label: frozenset((self.value,))} if negated else None


class LabelContains(_LabelValueOp):
    __slots__ = ()
    op = " contains "

    def compile(self) -> Matcher:
        label, value = self.label, self.value

        def match(labels: Mapping[str, str]) -> bool:
            v = labels.get(label)
            return v is not None and value in v
        return match


class LabelStartsWith(_LabelValueOp):
    __slots__ = ()
    op = " starts with "

    def compile(self) -> Matcher:
        label, value = self.label, self.value

        def match(labels: Mapping[str, str]) -> bool:
            v = labels.get(label)
            return v is not None and v.startswith(value)
        return match


class LabelEndsWith(_LabelValueOp):
    __slots__ = ()
    op = " ends with "

    def compile(self) -> Matcher:
        label, value = self.label, self.value

        def match(labels: Mapping[str, str]) -> bool:
            v = labels.get(label)
            return v is not None and v.endswith(value)
        return match


class _LabelSetOp(Node):
    """Base of ``label in {...}`` and ``label not in {...}``."""
    __slots__ = ("label", "values", "_set")
    op = ""

    def __init__(self, label: str, values: Iterable[str]):
        self.label = label
        # Canonical order: sorted by code point, which is the same order as Go's byte-wise
        # comparison of the UTF-8 encodings.
        self.values = tuple(sorted(set(values)))
        self._set = frozenset(self.values)

    def render(self, out: list[str]) -> None:
        out += (self.label, self.op, "{", ", ".join(map(_quoted, self.values)), "}")

    def label_names(self) -> set[str]:
        return {self.label}


class LabelIn(_LabelSetOp):
    __slots__ = ()
    op = " in "

    def compile(self) -> Matcher:
        label, values = self.label, self._set
        return lambda labels: labels.get(label) in values

    def terms(self, negated: bool = False) -> Terms:
        return None if negated else {self.label: self._set}


class LabelNotIn(_LabelSetOp):
    __slots__ = ()
    op = " not in "

    def compile(self) -> Matcher:
        label, values = self.label, self._set
        return lambda labels: labels.get(label) not in values

    def terms(self, negated: bool = False) -> Terms:
        return {self.label: self._set} if negated else None


class Has(Node):
    __slots__ = ("label",)

    def __init__(self, label: str):
        self.label = label

    def render(self, out: list[str]) -> None:
        out += ("has(", self.label, ")")

    def compile(self) -> Matcher:
        label = self.label
        return lambda labels: label in labels

    def terms(self, negated: bool = False) -> Terms:
        return None if negated else {self.label: None}

    def label_names(self) -> set[str]:
        return {self.label}


class _Constant(Node):
    """``all()`` and ``global()``: both match every label set."""
    __slots__ = ()
    text = ""

    def render(self, out: list[str]) -> None:
        out.append(self.text)

    def compile(self) -> Matcher:
        return lambda labels: True

    def terms(self, negated: bool = False) -> Terms:
        return {} if negated else None

    def label_names(self) -> set[str]:
        return set()


class All(_Constant):
    __slots__ = ()
    text = "all()"


class Global(_Constant):
    __slots__ = ()
    text = "global()"


class Not(Node):
    __slots__ = ("operand",)

    def __init__(self, operand: Node):
        self.operand = operand

    def render(self, out: list[str]) -> None:
        out.append("!")
        self.operand.render(out)

    def compile(self) -> Matcher:
        inner = self.operand.compile()
        return lambda labels: not inner(labels)

    def terms(self, negated: bool = False) -> Terms:
        return self.operand.terms(not negated)

    def label_names(self) -> set[str]:
        return self.operand.label_names()


class _BoolOp(Node):
    """Base of ``&&`` and ``||`` with two or more operands."""
    __slots__ = ("operands",)
    joiner = ""

    def __init__(self, operands: list[Node]):
        self.operands = tuple(operands)

    def render(self, out: list[str]) -> None:
        out.append("(")
        first = True
        for op in self.operands:
            if not first:
                out.append(self.joiner)
            first = False
            op.render(out)
        out.append(")")

    def label_names(self) -> set[str]:
        names: set[str] = set()
        for op in self.operands:
            names |= op.label_names()
        return names


class And(_BoolOp):
    __slots__ = ()
    joiner = " && "

    def compile(self) -> Matcher:
        fns = tuple(op.compile() for op in self.operands)
        if len(fns) == 2:
            a, b = fns
            return lambda labels: a(labels) and b(labels)

        def match(labels: Mapping[str, str]) -> bool:
            for fn in fns:
                if not fn(labels):
                    return False
            return True
        return match

    def terms(self, negated: bool = False) -> Terms:
        # De Morgan: !(x && y) == !x || !y.
        parts = (op.terms(negated) for op in self.operands)
        return _union_terms(parts) if negated else _best_terms(parts)


class Or(_BoolOp):
    __slots__ = ()
    joiner = " || "

    def compile(self) -> Matcher:
        fns = tuple(op.compile() for op in self.operands)
        if len(fns) == 2:
            a, b = fns
            return lambda labels: a(labels) or b(labels)

        def match(labels: Mapping[str, str]) -> bool:
            for fn in fns:
                if fn(labels):
                    return True
            return False
        return match

    def terms(self, negated: bool = False) -> Terms:
        # De Morgan: !(x || y) == !x && !y.
        parts = (op.terms(negated) for op in self.operands)
        return _best_terms(parts) if negated else _union_terms(parts)
