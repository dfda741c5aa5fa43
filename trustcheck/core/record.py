"""Plain data classes without ``dataclasses`` at import time (issue 18, start-up).

``@dataclass`` writes each class's ``__init__``, ``__repr__``, ``__eq__`` (and, frozen,
``__hash__``, ``__setattr__``, ``__delattr__``) as source text and compiles it with
``exec`` when the module is imported: about half a millisecond per class, 8 ms of a
small ``verify`` for the core's classes. The core's records are plain ``__slots__``
classes instead: a hand-written ``__init__`` per class (compiled once into the
bytecode cache) and the rest from :class:`Record` / :class:`FrozenRecord`, which
behave as ``@dataclass(slots=True)`` / ``@dataclass(frozen=True, slots=True)`` do:

* the fields are the annotated names along the class hierarchy, base first, in
  definition order (the ``__init__`` order); ``__slots__`` must list the same names;
* ``repr`` shows ``Name(field=value, ...)`` without the ``_private`` fields (the
  dataclasses had ``repr=False`` on those);
* ``==`` compares every field when both sides have the same class, else
  ``NotImplemented``; a mutable record is unhashable, a frozen one hashes its fields;
* a frozen record refuses attribute assignment and deletion with
  :class:`dataclasses.FrozenInstanceError`;
* ``copy``/``pickle`` rebuild a record through its ``__init__``; :func:`replace` is
  ``dataclasses.replace`` for records;
* ``dataclasses.is_dataclass``, ``fields``, ``asdict``, ``astuple`` and ``replace``
  work on records too (the public classes were dataclasses): their
  ``__dataclass_fields__`` is built when first asked for.

For mypy both bases are ``dataclass_transform`` bases: a frozen record's fields are
read-only to the type checker too, and the hand-written ``__init__`` is the one checked.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar, dataclass_transform

_R = TypeVar("_R", bound="_Fields")


class _DataclassFields:
    """``__dataclass_fields__`` of a record class, built on first use (the
    ``dataclasses`` functions read it; nothing in trustcheck does)."""

    def __get__(self, obj: object, owner: type[_Fields]) -> dict[str, Any]:
        built: dict[str, Any] | None = owner.__dict__.get("_dataclass_fields_")
        if built is None:
            import dataclasses

            hints = {}
            for klass in reversed(owner.__mro__):
                hints.update(klass.__dict__.get("__annotations__", {}))  # noqa: RUF063
            built = {}
            for name in owner._fields:
                f = dataclasses.field()
                f.name = name
                f.type = hints.get(name, Any)
                f._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
                built[name] = f
            type.__setattr__(owner, "_dataclass_fields_", built)
        return built


class _Fields:
    """What both kinds of record share: subclasses annotate their fields, list them
    in ``__slots__`` and write an ``__init__`` taking them in annotation order."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _shown: ClassVar[tuple[str, ...]] = ()
    __dataclass_fields__: ClassVar[Any] = _DataclassFields()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # this class's own annotations, in definition order (no inspect in the core)
        own = tuple(cls.__dict__.get("__annotations__", ()))  # noqa: RUF063
        slots = cls.__dict__.get("__slots__", ())
        if sorted(own) != sorted((slots,) if isinstance(slots, str) else slots):
            raise TypeError(f"{cls.__qualname__}: __slots__ must name the annotated fields")
        cls._fields = (*cls._fields, *own)
        cls._shown = tuple(f for f in cls._fields if not f.startswith("_"))

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._fields)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._shown)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())


@dataclass_transform()
class Record(_Fields):
    """A mutable record (``@dataclass(slots=True)``)."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as a dataclass


@dataclass_transform(frozen_default=True)
class FrozenRecord(_Fields):
    """An immutable record (``@dataclass(frozen=True, slots=True)``): its ``__init__``
    sets the fields with ``object.__setattr__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        from dataclasses import FrozenInstanceError

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __hash__(self) -> int:
        return hash(self._values())


def replace(obj: _R, /, **changes: Any) -> _R:
    """A copy of the record ``obj`` with ``changes`` (``dataclasses.replace``)."""
    unknown = set(changes).difference(obj._fields)
    if unknown:
        raise TypeError(f"{type(obj).__qualname__} has no field {sorted(unknown)[0]!r}")
    return type(obj)(**{**dict(zip(obj._fields, obj._values(), strict=True)), **changes})
