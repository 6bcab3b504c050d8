"""JSON from strangers, parsed with a bound on nesting.

`json.loads` recurses once per level: `[[[[…` 100,000 deep raises RecursionError, which is not
a ValueError, so every "not valid JSON → 400" branch missed it and the request answered 500
(one of those routes, the Channel framework's event callback, needs no authentication). A body
that parses but nests hundreds of levels would fail the same way later (validation, storing,
logging). No payload we accept nests more than a handful of levels, so anything deeper than
MAX_DEPTH is refused here, as a ValueError, like any other malformed body.

`loads` is used for every request body: directly by the webhooks, and through
`SafeJSONProvider` (installed on the app) by `request.get_json`.
"""
from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider

#: Deepest nesting of arrays/objects accepted in a request body.
MAX_DEPTH = 64


class JSONTooDeep(ValueError):
    """The document nests arrays/objects deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def _depth_ok(value: Any) -> bool:
    # Iterative, so checking depth cannot itself recurse.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > MAX_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def loads(data: str | bytes | bytearray, **kwargs: Any) -> Any:
    """`json.loads`, raising JSONTooDeep (a ValueError) for a document nested too deep."""
    try:
        value = json.loads(data, **kwargs)
    except RecursionError:
        raise JSONTooDeep() from None
    if not _depth_ok(value):
        raise JSONTooDeep()
    return value


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with `loads` bounded: `request.get_json(silent=True)` then gives
    None for a too-deep body (the route's 400), and `get_json()` a 400 Bad Request."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)
