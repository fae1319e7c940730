"""Calico's label selector language and an incremental selector/endpoint match index.

``parse`` returns a ``Selector`` whose ``str()`` and ``unique_id()`` are identical to
libcalico-go's (ipset names are derived from them); ``validate`` checks a selector for
resource validation; ``LabelIndex`` tracks which endpoints each selector matches as either
side changes.
"""
from node.selector.errors import SelectorError
from node.selector.index import LabelIndex
from node.selector.parser import Selector, make_unique_id, parse, validate

__all__ = ["LabelIndex", "Selector", "SelectorError", "make_unique_id", "parse", "validate"]
