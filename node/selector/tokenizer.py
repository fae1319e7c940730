"""Splits selector text into tokens, with exactly the lexical rules of Calico's tokenizer.

The rules that matter for compatibility (so that we accept and reject the same strings):

* Only space and tab are whitespace; a newline or any other character outside a quoted
  string is an error.
* Label names are runs of ``A-Z a-z 0-9 _ . / -`` of 1..512 characters.
* Strings are delimited by ``"`` or ``'`` and have no escapes: a string cannot contain its
  own delimiter, and may contain anything else.
* ``!=`` is always the inequality operator; any other ``!`` is a negation.
* Word operators (``in``, ``not in``, ``contains``, ``starts with``, ``ends with``) are only
  recognised directly after a label and must end at a word boundary; the two-word ones may
  be written without the space (``notin``, ``startswith``, ``endswith``). Anywhere else the
  same words are ordinary label names.
* ``has(``, ``all(`` and ``global(`` are only keywords when the parenthesis follows the
  word immediately; whitespace is allowed inside the parentheses.
* The whole input is tokenized before parsing starts, so lexical errors are reported
  first even when a syntax error occurs earlier in the text.
"""
from __future__ import annotations

import enum
import re
from typing import NamedTuple

from node.selector.errors import SelectorError

MAX_LABEL_LENGTH = 512

_IDENT_CHARS = "A-Za-z0-9_./-"
_IDENT = re.compile(f"[{_IDENT_CHARS}]*")
_BOUNDARY = f"(?![{_IDENT_CHARS}])"
_WS = re.compile(r"[ \t]*")


class Kind(enum.Enum):
    LABEL = "label"
    STRING = "string"
    LBRACE = "'{'"
    RBRACE = "'}'"
    COMMA = "','"
    EQ = "'=='"
    NE = "'!='"
    IN = "'in'"
    NOT = "'!'"
    NOT_IN = "'not in'"
    CONTAINS = "'contains'"
    STARTS_WITH = "'starts with'"
    ENDS_WITH = "'ends with'"
    ALL = "'all()'"
    HAS = "has()"
    LPAREN = "'('"
    RPAREN = "')'"
    AND = "'&&'"
    OR = "'||'"
    GLOBAL = "'global()'"
    EOF = "end of selector"


_token = tuple.__new__  # Token(...) without its Python-level __new__ (same object)


class Token(NamedTuple):
    kind: Kind
    value: str
    pos: int

    def describe(self) -> str:
        """Human description for error messages."""
        if self.kind is Kind.LABEL:
            return f"label {self.value!r}"
        if self.kind is Kind.STRING:
            return f"string {self.value!r}"
        if self.kind is Kind.HAS:
            return f"'has({self.value})'"
        return self.kind.value


# Operators that may follow a label, tried in this order.  The multi-word ones swallow
# trailing whitespace (possessively: no backtracking) before checking for the word
# boundary, as Calico's tokenizer does; so "a not in x" fails at "not".
_LABEL_OPERATORS = [
    (re.compile(f"contains{_BOUNDARY}"), Kind.CONTAINS),
    (re.compile(f"starts[ \\t]*with[ \\t]*+{_BOUNDARY}"), Kind.STARTS_WITH),
    (re.compile(f"ends[ \\t]*with[ \\t]*+{_BOUNDARY}"), Kind.ENDS_WITH),
    (re.compile(f"not[ \\t]*in[ \\t]*+{_BOUNDARY}"), Kind.NOT_IN),
    (re.compile(f"in{_BOUNDARY}"), Kind.IN),
]

_SINGLE_CHAR = {
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    "{": Kind.LBRACE,
    "}": Kind.RBRACE,
    ",": Kind.COMMA,
}

_DOUBLE_CHAR = {
    "=": ("==", Kind.EQ),
    "&": ("&&", Kind.AND),
    "|": ("||", Kind.OR),
}

_NULLARY_FUNCS = (("all(", Kind.ALL), ("global(", Kind.GLOBAL))

# What may legitimately come next, by previous token; used only to word error messages.
_STRING_OPS = (Kind.EQ, Kind.NE, Kind.CONTAINS, Kind.STARTS_WITH, Kind.ENDS_WITH)


def _found(text: str, i: int) -> str:
    """Describe the input at offset ``i`` for an error message."""
    if i >= len(text):
        return "end of selector"
    word = _IDENT.match(text, i).group()
    return repr(word[:40] if word else text[i])


def _cut_label(text: str, i: int, context: str) -> tuple[str, int]:
    """Read a label name starting at ``i``; return it and the offset after it."""
    name = _IDENT.match(text, i).group()
    if not name:
        raise SelectorError(text, i, context, _found(text, i))
    if len(name) > MAX_LABEL_LENGTH:
        raise SelectorError(text, i, f"a label name of at most {MAX_LABEL_LENGTH} characters",
                            f"one of {len(name)} characters")
    return name, i + len(name)


def _expected_operand(prev: Kind) -> str:
    if prev in _STRING_OPS:
        return "a quoted string"
    if prev in (Kind.IN, Kind.NOT_IN):
        return "'{'"
    if prev in (Kind.LBRACE, Kind.COMMA):
        return "a quoted string or '}'"
    return "a label name, has(), all(), global(), '!' or '('"


# Token kinds as module constants for the loop below (an attribute of the Kind enum class
# costs a lookup each time).
_K_EOF = Kind.EOF
_K_HAS = Kind.HAS
_K_LABEL = Kind.LABEL
_K_NE = Kind.NE
_K_NOT = Kind.NOT
_K_STRING = Kind.STRING


def tokenize(text: str) -> list[Token]:
    """Return the tokens of ``text``, always ending with an EOF token."""
    tokens: list[Token] = []
    append = tokens.append
    n = len(text)
    i = _WS.match(text, 0).end()
    prev = _K_EOF  # stands for "nothing yet"
    while i < n:
        c = text[i]
        if c in _SINGLE_CHAR:
            append(_token(Token, (_SINGLE_CHAR[c], "", i)))
            i += 1
        elif c == '"' or c == "'":
            end = text.find(c, i + 1)
            if end < 0:
                raise SelectorError(text, i, f"a closing {c} for the string started here",
                                    "end of selector")
            append(_token(Token, (_K_STRING, text[i + 1:end], i)))
            i = end + 1
        elif c in _DOUBLE_CHAR:
            op, kind = _DOUBLE_CHAR[c]
            if not text.startswith(op, i):
                raise SelectorError(text, i, repr(op), repr(text[i:i + 2]))
            append(_token(Token, (kind, "", i)))
            i += 2
        elif c == "!":
            if text.startswith("!=", i):
                append(_token(Token, (_K_NE, "", i)))
                i += 2
            else:
                append(_token(Token, (_K_NOT, "", i)))
                i += 1
        elif prev is _K_LABEL:
            for pattern, kind in _LABEL_OPERATORS:
                m = pattern.match(text, i)
                if m:
                    append(_token(Token, (kind, "", i)))
                    i = m.end()
                    break
            else:
                raise SelectorError(
                    text, i,
                    f"an operator (==, !=, in, not in, contains, starts with, ends with) "
                    f"after label {tokens[-1].value!r}",
                    _found(text, i))
        elif text.startswith("has(", i):
            j = _WS.match(text, i + 4).end()
            name, j = _cut_label(text, j, "a label name inside has(")
            j = _WS.match(text, j).end()
            if not text.startswith(")", j):
                raise SelectorError(text, j, "')' to close has(", _found(text, j))
            append(_token(Token, (_K_HAS, name, i)))
            i = j + 1
        else:
            for prefix, kind in _NULLARY_FUNCS:
                if text.startswith(prefix, i):
                    j = _WS.match(text, i + len(prefix)).end()
                    if not text.startswith(")", j):
                        raise SelectorError(text, j, f"')' to close {prefix}", _found(text, j))
                    append(_token(Token, (kind, "", i)))
                    i = j + 1
                    break
            else:
                name, j = _cut_label(text, i, _expected_operand(prev))
                append(_token(Token, (_K_LABEL, name, i)))
                i = j
        prev = tokens[-1].kind
        if i < n and (text[i] == " " or text[i] == "\t"):
            i = _WS.match(text, i).end()
    append(_token(Token, (_K_EOF, "", n)))
    return tokens
