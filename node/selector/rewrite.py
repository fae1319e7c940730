"""Rewriting selectors: prefixing every label name (libcalico-go's ``PrefixVisitor``).

Calico turns a policy's ``namespaceSelector`` and ``serviceAccountSelector`` into ordinary
selectors over labels that the namespace/service-account profiles hand down to their
endpoints under a prefix (``pcns.``, ``pcsa.``).  ``app == "x"`` in a namespace selector
becomes ``pcns.app == "x"``.  Every comparison, set test and ``has()`` is rewritten;
``all()``/``global()`` and the boolean structure are kept as they are.

The result is a new ``Selector`` (selectors are immutable and cached, so the input is
never modified); its ``str()`` is the canonical form libcalico-go prints after visiting.
"""
from __future__ import annotations

from collections.abc import Callable

from node.selector import ast
from node.selector.parser import Selector, parse

_VALUE_OPS = (ast.LabelEq, ast.LabelNe, ast.LabelContains, ast.LabelStartsWith, ast.LabelEndsWith)
_SET_OPS = (ast.LabelIn, ast.LabelNotIn)


def rename_labels(selector: Selector | str, rename: Callable[[str], str]) -> Selector:
    """A copy of ``selector`` with every label name passed through ``rename``."""
    if isinstance(selector, str):
        selector = parse(selector)
    return Selector(_rename(selector.root, rename))


def prefix_labels(selector: Selector | str, prefix: str) -> Selector:
    """A copy of ``selector`` with ``prefix`` put in front of every label name."""
    return rename_labels(selector, lambda label: prefix + label)


def _rename(node: ast.Node, rename: Callable[[str], str]) -> ast.Node:
    if isinstance(node, _VALUE_OPS):
        return type(node)(rename(node.label), node.value)
    if isinstance(node, _SET_OPS):
        return type(node)(rename(node.label), node.values)
    if isinstance(node, ast.Has):
        return ast.Has(rename(node.label))
    if isinstance(node, ast.Not):
        return ast.Not(_rename(node.operand, rename))
    if isinstance(node, (ast.And, ast.Or)):
        return type(node)([_rename(op, rename) for op in node.operands])
    if isinstance(node, (ast.All, ast.Global)):
        return node
    raise TypeError(f"unknown selector node {type(node).__name__}")
