"""Fast constructors for frozen slotted dataclasses, for values already known to be valid.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` and then
validates; for a parser whose values come out of ``struct`` (in range by construction) that is
most of the cost. ``trusted_constructor(cls)`` returns a function taking the fields in order
that fills a plain class with the same slots and then assigns ``__class__ = cls`` (CPython
allows it: same layout), so the result is an ordinary, frozen ``cls`` instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_MADE: dict[type, Callable[..., Any]] = {}


def trusted_constructor(cls: type[T]) -> Callable[..., T]:
    """The fast constructor of ``cls`` (made once, then cached)."""
    try:
        return _MADE[cls]
    except KeyError:
        _MADE[cls] = made = _make(cls)
        return made


def _make(cls: type[T]) -> Callable[..., T]:
    names = [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]
    twin = type(f"_Trusted{cls.__name__}", (), {"__slots__": tuple(names)})
    lines = [f"def make({', '.join(names)}):", "    obj = new(twin)"]
    lines += [f"    obj.{name} = {name}" for name in names]
    lines += ["    obj.__class__ = cls", "    return obj"]
    namespace: dict[str, Any] = {"new": object.__new__, "twin": twin, "cls": cls}
    exec("\n".join(lines), namespace)
    make: Callable[..., T] = namespace["make"]
    return make
