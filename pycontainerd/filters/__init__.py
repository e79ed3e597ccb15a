"""containerd's filter language: parse filter strings and match objects.

A filter string is a comma separated list of selectors that must all match
(``name==foo,labels."a.b"~=^x``); several filter strings are OR-ed together
(:func:`parse_all`). Objects are seen through an *adaptor*: a callable that
maps a field path to ``(value, present)``. :func:`adapt` builds one from
plain dicts, which is what every store uses.

containerd's parser has no in-string OR: ``|`` and ``/`` are only alternative
quote marks for regular expression values (``labels.x~=/a|b/``).
"""

from pycontainerd.filters.adaptors import Adaptor, FieldValue, adapt
from pycontainerd.filters.matchers import ALWAYS, All, Any, Filter, Operator, Selector
from pycontainerd.filters.offload import parse_all_off_loop, select, select_now
from pycontainerd.filters.parser import FilterParseError, parse, parse_all

__all__ = [
    "ALWAYS",
    "Adaptor",
    "All",
    "Any",
    "FieldValue",
    "Filter",
    "FilterParseError",
    "Operator",
    "Selector",
    "adapt",
    "parse",
    "parse_all",
    "parse_all_off_loop",
    "select",
    "select_now",
]
