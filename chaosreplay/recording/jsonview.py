"""The JSON rendering of recorded values: byte strings become {"$bytes": "<base64>"}."""

from __future__ import annotations

import base64
from typing import Any


def to_json(value: Any) -> Any:
    """A msgpack-decoded value as JSON-ready data (bytes as base64, odd map keys as repr)."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return {k if isinstance(k, str | int | float | bool) or k is None else repr(k):
                to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
