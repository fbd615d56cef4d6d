"""The run-time check of a POST method's keyword arguments, for implementations that take them
as ``**request: Unpack[...]`` instead of spelling the protocol's signature out again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["check_request"]


def check_request(method: str, request: Mapping[str, Any], shape: Any) -> None:
    """Raise the TypeError Python raises for a missing or unknown keyword argument."""
    required: frozenset[str] = shape.__required_keys__
    missing = sorted(required - request.keys())
    if missing:
        raise TypeError(f"{method}() missing required keyword-only argument: {missing[0]!r}")
    unknown = sorted(request.keys() - required - shape.__optional_keys__)
    if unknown:
        raise TypeError(f"{method}() got an unexpected keyword argument {unknown[0]!r}")
