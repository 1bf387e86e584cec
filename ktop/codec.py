"""From plain JSON data back to frozen dataclasses, driven by type hints.

The inverse of :func:`ktop.snapshot.to_jsonable`: ``decode(SomeDataclass,
json.loads(text))`` rebuilds the object, field by field, from the
dataclass's type hints: nested dataclasses, ``tuple[X, ...]`` and fixed
tuples, ``list``, ``dict`` (keys converted back from JSON strings),
``Optional``/``Union``, ``Literal``, enums, ``Any`` (left as it is) and
forward references such as ``Optional["Snapshot"]``.

Additive changes stay readable both ways: keys the dataclass does not know
are ignored, fields missing from the data take their default. Anything else
raises :class:`DecodeError` naming the place (``processes[3].pid: expected
an integer, got a string``).

A decoder is compiled once per type (a closure per field), so decoding the
thousands of objects of a long recording stays cheap.
Nothing here imports ktop.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import typing
from typing import Any, Callable, Literal, Union, get_args, get_origin

try:  # Python 3.10+: `X | None`
    from types import UnionType
except ImportError:  # pragma: no cover - Python 3.9
    UnionType = None  # type: ignore[assignment,misc]

NoneType = type(None)
Decoder = Callable[[Any], Any]


class DecodeError(ValueError):
    """Data that does not fit the type; ``path`` says where (``.processes[3].pid``)."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.message = message
        self.path = path

    def under(self, step: str) -> DecodeError:
        self.path = step + self.path
        return self

    def __str__(self) -> str:
        where = self.path.lstrip(".")
        return f"{where}: {self.message}" if where else self.message


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


_cache: dict[Any, Decoder] = {}
_lock = threading.Lock()


def decode(tp: Any, data: Any) -> Any:
    """``data`` (from ``json.loads``) as an instance of type ``tp``.

    Raises:
        DecodeError: the data does not fit ``tp``.
    """
    return decoder(tp)(data)


def decoder(tp: Any) -> Decoder:
    """The compiled decoder of ``tp`` (cached)."""
    key = tp
    try:
        return _cache[key]
    except (KeyError, TypeError):
        pass
    dec = _build(tp)
    with _lock:
        try:
            _cache[key] = dec
        except TypeError:  # an unhashable type hint: not cached
            pass
    return dec


def _identity(v: Any) -> Any:
    return v


def _none(v: Any) -> None:
    if v is not None:
        raise DecodeError(f"expected null, got {_kind(v)}")
    return None


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise DecodeError(f"expected a boolean, got {_kind(v)}")
    return v


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise DecodeError(f"expected an integer, got {_kind(v)}")
    return v


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DecodeError(f"expected a number, got {_kind(v)}")
    return float(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise DecodeError(f"expected a string, got {_kind(v)}")
    return v


def _array(v: Any) -> list:
    if not isinstance(v, (list, tuple)):
        raise DecodeError(f"expected an array, got {_kind(v)}")
    return v  # type: ignore[return-value]


def _key(tp: Any) -> Decoder:
    """JSON object keys are strings: convert them back for int/float/bool keys."""
    if tp is int:
        def k(s):
            try:
                return int(s)
            except (TypeError, ValueError):
                raise DecodeError(f"expected an integer key, got {s!r}") from None
        return k
    if tp is float:
        return lambda s: float(s)
    return decoder(tp)


def _build(tp: Any) -> Decoder:
    if tp is Any or tp is object:
        return _identity
    if tp is None or tp is NoneType:
        return _none
    if isinstance(tp, (str, typing.ForwardRef)):
        raise TypeError(f"unresolved forward reference {tp!r}: decode the dataclass that holds it")
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is Union or (UnionType is not None and origin is UnionType):
        return _union(args)
    if origin is Literal:
        allowed = args

        def lit(v):
            if v not in allowed:
                raise DecodeError(f"expected one of {list(allowed)!r}, got {v!r}")
            return v
        return lit
    if origin is tuple or tp is tuple:
        return _tuple(args)
    if origin in (list, set, frozenset) or tp in (list, set, frozenset) or \
            origin in (typing.Sequence, _abc("Sequence")):
        make = {set: set, frozenset: frozenset}.get(origin or tp, list)
        sub = decoder(args[0]) if args else _identity
        return _seq(sub, make)
    if origin is dict or tp is dict or origin is _abc("Mapping"):
        kd = _key(args[0]) if args else _identity
        vd = decoder(args[1]) if args else _identity
        return _dict(kd, vd)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        def en(v):
            try:
                return tp(v)
            except ValueError:
                raise DecodeError(f"not a {tp.__name__}: {v!r}") from None
        return en
    if tp is bool:
        return _bool
    if tp is int:
        return _int
    if tp is float:
        return _float
    if tp is str:
        return _str
    if isinstance(tp, typing.TypeVar):
        return _identity
    raise TypeError(f"cannot decode type {tp!r}")


def _abc(name: str):
    import collections.abc

    return getattr(collections.abc, name)


def _union(args: tuple) -> Decoder:
    allow_none = NoneType in args
    subs = [decoder(a) for a in args if a is not NoneType]

    if len(subs) == 1:
        only = subs[0]

        def opt(v):
            if v is None:
                if allow_none:
                    return None
                raise DecodeError("expected a value, got null")
            return only(v)
        return opt

    def union(v):
        if v is None and allow_none:
            return None
        first: DecodeError | None = None
        for s in subs:
            try:
                return s(v)
            except DecodeError as exc:
                first = first or exc
        raise first or DecodeError(f"no type fits {_kind(v)}")
    return union


def _tuple(args: tuple) -> Decoder:
    if not args:
        return lambda v: tuple(_array(v))
    if len(args) == 2 and args[1] is Ellipsis:
        return _seq(decoder(args[0]), tuple)
    if args == ((),):  # tuple[()]
        args = ()
    subs = [decoder(a) for a in args]
    n = len(subs)

    def fixed(v):
        items = _array(v)
        if len(items) != n:
            raise DecodeError(f"expected {n} items, got {len(items)}")
        out = []
        for i, (s, x) in enumerate(zip(subs, items)):
            try:
                out.append(s(x))
            except DecodeError as exc:
                raise exc.under(f"[{i}]") from None
        return tuple(out)
    return fixed


def _seq(sub: Decoder, make) -> Decoder:
    if sub is _identity:
        return lambda v: make(_array(v))

    def seq(v):
        items = _array(v)
        try:
            return make([sub(x) for x in items])
        except DecodeError as exc:
            for i, x in enumerate(items):  # find the index (error path only)
                try:
                    sub(x)
                except DecodeError:
                    raise exc.under(f"[{i}]") from None
            raise
    return seq


def _dict(kd: Decoder, vd: Decoder) -> Decoder:
    def dct(v):
        if not isinstance(v, dict):
            raise DecodeError(f"expected an object, got {_kind(v)}")
        out = {}
        for k, x in v.items():
            try:
                out[kd(k)] = vd(x)
            except DecodeError as exc:
                raise exc.under(f"[{k!r}]") from None
        return out
    return dct


def _dataclass(cls: type) -> Decoder:
    spec: list[tuple[str, Decoder, bool]] = []
    ready = False

    def resolve() -> None:
        nonlocal ready
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            tp = hints.get(f.name, Any)
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            spec.append((f.name, decoder(tp), required))
        ready = True

    def dc(v):
        if not ready:
            resolve()
        if not isinstance(v, dict):
            raise DecodeError(f"expected an object ({cls.__name__}), got {_kind(v)}")
        kw = {}
        for name, sub, required in spec:
            if name in v:
                try:
                    kw[name] = sub(v[name])
                except DecodeError as exc:
                    raise exc.under(f".{name}") from None
            elif required:
                raise DecodeError(f"missing field of {cls.__name__}", f".{name}")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:  # a __post_init__ check
            raise DecodeError(f"{cls.__name__}: {exc}") from None
    return dc


