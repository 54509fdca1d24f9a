"""``Record``: the base of the small value classes every command imports.

A frozen ``@dataclass`` costs ~0.8 ms to define (it generates and ``exec``\\ s
its methods) and the ``dataclasses`` module ~10 ms more to import here (it
pulls in ``inspect``, ``ast``, ``dis`` and ``tokenize``): a quarter of a no-op
``dsv status`` of 20,000 files (docs/architecture.md, "Start-up of status").
The classes on that path, and on those of ``commit``, ``checkout``, ``diff``
and ``log`` (13-17 dataclasses each), write their ``__init__`` by hand and
take equality, hashing and ``repr`` from their ``__slots__`` here. Commands
that import DuckDB or pydantic anyway (audit, drift, metrics, fsck, report)
keep dataclasses.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Self


init_field = object.__setattr__
"""Sets a field of a :class:`FrozenRecord` in its ``__init__`` (as a frozen dataclass's ``__init__`` does)."""


class Record:
    """Equality, hash and ``repr`` from ``__slots__`` (the fields, in order); subclasses write ``__init__``.

    Two records are equal when they are of the same class with equal fields, as
    dataclasses compare. A record whose fields are mutable (lists) is hashable
    only if its class sets ``__hash__ = None`` (mutable records should).
    """

    __slots__: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "__match_args__" not in cls.__dict__:
            setattr(cls, "__match_args__", tuple(cls.__dict__.get("__slots__", ())))  # noqa: B010 - positional patterns, as dataclasses allow (mypy refuses the plain assignment)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__) + ")"


class FrozenRecord(Record):
    """A :class:`Record` whose fields cannot be assigned after ``__init__`` (as a frozen dataclass).

    ``__init__`` sets each field with :data:`init_field` and takes them
    positionally in ``__slots__`` order, which is how pickle and ``copy``
    rebuild a record.
    """

    __slots__: tuple[str, ...] = ()

    def replace(self, **changes: object) -> "Self":
        """A copy with ``changes`` (``dataclasses.replace``; ``__init__`` takes the fields by name)."""
        fields: dict[str, object] = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return type(self)(**fields)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # pickle and copy rebuild through __init__ (fields in __slots__ order), never by assignment.
        return type(self), self._values()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a {type(self).__name__} is immutable")
