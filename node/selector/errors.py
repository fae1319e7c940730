"""The one error type the selector package raises for bad selector text."""
from __future__ import annotations

from node.errors import CalicoError


class SelectorError(CalicoError, ValueError):
    """A selector string that Calico would reject.

    ``position`` is the character offset into ``selector`` where the problem was found
    and ``expected`` says what the parser wanted there; both are also in the message so
    that an operator reading a validation error can find the fault without a debugger.
    """

    def __init__(self, selector: str, position: int, expected: str, found: str | None = None):
        self.selector = selector
        self.position = position
        self.expected = expected
        self.found = found
        detail = f"expected {expected}"
        if found is not None:
            detail += f", found {found}"
        super().__init__(f"invalid selector {selector!r} at position {position}: {detail}")
