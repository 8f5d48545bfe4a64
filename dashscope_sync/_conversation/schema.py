"""A function's parameters as JSON Schema, and the model's arguments back as Python values.

Pure: no I/O, no threads. `signature_of` reads a function once, at
registration (`session.tool`): its description (the docstring's first
paragraph), a JSON Schema of its parameters from their type hints, each
parameter's description from a Google-style ``Args:`` section, and a binder
that turns the model's JSON arguments into the call's arguments, checking
and converting each value (an enum member from its value, an attrs class or
a `TypedDict` from an object, an ``int`` from ``3.0``...). A hint it cannot
describe is a `ConfigError` naming the parameter, at registration; arguments
that do not fit are an `ArgumentsError` whose message is meant for the model
(it is sent back to it as the call's error).

Supported hints: ``str``, ``int``, ``float``, ``bool``, ``Literal[...]``,
`enum.Enum` subclasses, ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``,
``dict[str, X]``, ``X | None`` / ``Optional[X]`` (then the parameter is not
required), other unions, ``Annotated[X, "description"]``, `TypedDict`, attrs
classes and dataclasses (nested objects). A parameter with a default is not
required.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, Union

import attrs

from .._errors import ConfigError

__all__ = ["ArgumentsError", "Signature", "jsonable", "parse_arguments", "signature_of"]

#: A node's converter: the JSON value and where it is (for messages) -> the Python value.
_Convert = Callable[[Any, str], Any]
_NONE: Final = type(None)
_ARGS_HEADERS: Final = ("Args:", "Arguments:", "Parameters:", "Params:")
_PARAM_LINE: Final = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


class ArgumentsError(ValueError):
    """The model's arguments do not fit the function (the message says why, for the model)."""


@attrs.frozen(kw_only=True)
class Signature:
    """What registration learns of a function.

    Attributes:
        description: The docstring's first paragraph (empty without a docstring).
        parameters: The JSON Schema of its parameters (an ``object``).
        bind: Turns the model's JSON arguments (a dict) into ``(args, kwargs)``
            for the call; raises `ArgumentsError`.
    """

    description: str
    parameters: Mapping[str, Any]
    bind: Callable[[Mapping[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


def signature_of(fn: Callable[..., object], name: str) -> Signature:
    """Read ``fn``'s description, parameter schema and argument binder.

    Raises:
        ConfigError: A parameter without a type hint or with one this module
            cannot describe (``object``, ``Any``...), or ``*args``/``**kwargs``.
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"tool {name!r}: cannot read the signature of {fn!r}: {exc}") from None
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:  # a hint naming something undefined: user code
        raise ConfigError(f"tool {name!r}: cannot resolve its type hints: {exc}") from None
    doc = inspect.getdoc(fn) or ""
    described = _arg_descriptions(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    converters: dict[str, _Convert] = {}
    positional: list[str] = []
    for param in sig.parameters.values():
        where = f"tool {name!r}, parameter {param.name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise ConfigError(
                f"{where}: {star}{param.name} cannot be described to the model; "
                "give each parameter a name and a type hint"
            )
        if param.name not in hints:
            raise ConfigError(f"{where}: it has no type hint (the model needs its type)")
        schema, convert, optional = _node(hints[param.name], where)
        if param.name in described and "description" not in schema:
            schema = {**schema, "description": described[param.name]}
        properties[param.name] = schema
        converters[param.name] = convert
        if param.default is param.empty and not optional:
            required.append(param.name)
        if param.kind is param.POSITIONAL_ONLY:
            positional.append(param.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    known = frozenset(properties)
    needed = tuple(required)

    def bind(arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ArgumentsError(
                f"unexpected argument(s) {', '.join(unknown)}; "
                f"{name} takes {', '.join(properties) or 'no arguments'}"
            )
        missing = [key for key in needed if key not in arguments]
        if missing:
            raise ArgumentsError(f"missing required argument(s) {', '.join(missing)}")
        values = {key: converters[key](value, key) for key, value in arguments.items()}
        args = tuple(values.pop(key) for key in positional if key in values)
        return args, values

    return Signature(description=_first_paragraph(doc), parameters=parameters, bind=bind)


def parse_arguments(raw: str) -> dict[str, Any]:
    """The model's JSON arguments text as a dict (empty text: no arguments).

    Raises:
        ArgumentsError: Not JSON, or not an object.
    """
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ArgumentsError(f"the arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ArgumentsError(f"the arguments must be a JSON object, got {_short(value)}")
    return value


def jsonable(value: Any) -> Any:
    """A tool's result in JSON terms: enum members as their values, attrs
    instances and dataclasses as objects, tuples and sets as lists."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if attrs.has(type(value)):
        return {f.name: jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return value


# The schema of one hint ----------------------------------------------------------


def _node(hint: Any, where: str) -> tuple[dict[str, Any], _Convert, bool]:
    """The JSON Schema and converter of one hint, and whether None is allowed."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        inner, *notes = typing.get_args(hint)
        schema, convert, optional = _node(inner, where)
        texts = [note for note in notes if isinstance(note, str)]
        if texts:
            schema = {**schema, "description": " ".join(texts)}
        return schema, convert, optional
    if origin is Union or origin is types.UnionType:
        members = [arg for arg in typing.get_args(hint) if arg is not _NONE]
        optional = len(members) < len(typing.get_args(hint))
        if len(members) == 1:
            schema, convert, _ = _node(members[0], where)
        else:
            schema, convert = _union([_node(m, where)[:2] for m in members])
        if optional:
            convert = _or_none(convert)
        return schema, convert, optional
    return (*_plain(hint, origin, where), False)


def _plain(hint: Any, origin: Any, where: str) -> tuple[dict[str, Any], _Convert]:
    if hint is bool:
        return {"type": "boolean"}, _check_bool
    if hint is int:
        return {"type": "integer"}, _check_int
    if hint is float:
        return {"type": "number"}, _check_float
    if hint is str:
        return {"type": "string"}, _check_str
    if origin is Literal:
        return _literal(typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if origin in (list, Sequence) or hint in (list, Sequence):
        args = typing.get_args(hint)
        if not args:
            raise ConfigError(f"{where}: say what the list holds (list[str], list[int]...)")
        item, convert = _node(args[0], f"{where} (its items)")[:2]
        return {"type": "array", "items": item}, _list_of(convert)
    if origin is tuple:
        return _tuple(typing.get_args(hint), where)
    if origin in (dict, Mapping):
        args = typing.get_args(hint)
        if len(args) != 2 or args[0] is not str:
            raise ConfigError(f"{where}: a dict needs string keys (dict[str, X])")
        value, convert = _node(args[1], f"{where} (its values)")[:2]
        return {"type": "object", "additionalProperties": value}, _dict_of(convert)
    if isinstance(hint, type) and typing.is_typeddict(hint):
        return _typeddict(hint, where)
    if isinstance(hint, type) and (attrs.has(hint) or dataclasses.is_dataclass(hint)):
        return _record(hint, where)
    shown = getattr(hint, "__name__", None) or repr(hint)
    raise ConfigError(
        f"{where}: its type hint {shown} cannot be described to the model (use str, int, "
        "float, bool, a Literal, an Enum, a list, a TypedDict or an attrs class)"
    )


def _literal(values: tuple[Any, ...]) -> tuple[dict[str, Any], _Convert]:
    schema: dict[str, Any] = {"enum": list(values)}
    kinds = {_json_type(v) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema = {"type": kinds.pop(), **schema}
    allowed = list(values)

    def convert(value: Any, at: str) -> Any:
        for choice in allowed:
            if value == choice and type(value) is type(choice):
                return choice
        raise ArgumentsError(f"{at}: expected one of {_choices(allowed)}, got {_short(value)}")

    return schema, convert


def _enum(cls: type[enum.Enum]) -> tuple[dict[str, Any], _Convert]:
    values = [member.value for member in cls]
    schema, check = _literal(tuple(values))

    def convert(value: Any, at: str) -> Any:
        return cls(check(value, at))

    return schema, convert


def _tuple(args: tuple[Any, ...], where: str) -> tuple[dict[str, Any], _Convert]:
    if len(args) == 2 and args[1] is Ellipsis:
        item, each = _node(args[0], f"{where} (its items)")[:2]
        listed = _list_of(each)
        return {"type": "array", "items": item}, lambda v, at: tuple(listed(v, at))
    if not args:
        raise ConfigError(f"{where}: say what the tuple holds (tuple[int, ...])")
    nodes = [_node(arg, f"{where} (item {i})")[:2] for i, arg in enumerate(args)]
    schema = {
        "type": "array",
        "prefixItems": [node[0] for node in nodes],
        "minItems": len(nodes),
        "maxItems": len(nodes),
    }

    def convert(value: Any, at: str) -> Any:
        if not isinstance(value, list) or len(value) != len(nodes):
            raise ArgumentsError(
                f"{at}: expected a list of {len(nodes)} items, got {_short(value)}"
            )
        pairs = enumerate(zip(nodes, value, strict=True))
        return tuple(node[1](v, f"{at}[{i}]") for i, (node, v) in pairs)

    return schema, convert


def _typeddict(cls: type, where: str) -> tuple[dict[str, Any], _Convert]:
    hints = typing.get_type_hints(cls)  # Required/NotRequired stripped: the keys say it
    required = sorted(getattr(cls, "__required_keys__", frozenset(hints)))
    return _object(cls.__name__, hints, required, lambda values: cls(**values), where)


def _record(cls: type, where: str) -> tuple[dict[str, Any], _Convert]:
    hints = typing.get_type_hints(cls, include_extras=True)
    if attrs.has(cls):
        fields = [(f.name, f.default is attrs.NOTHING) for f in attrs.fields(cls) if f.init]
        names = {f.name: f.alias or f.name for f in attrs.fields(cls)}
    else:
        missing = dataclasses.MISSING
        fields = [
            (f.name, f.default is missing and f.default_factory is missing)
            for f in dataclasses.fields(cls)
            if f.init
        ]
        names = {name: name for name, _ in fields}
    required = [name for name, needed in fields if needed]
    shown = {name: hints[name] for name, _ in fields}

    def build(values: dict[str, Any]) -> Any:
        return cls(**{names[key]: value for key, value in values.items()})

    return _object(cls.__name__, shown, required, build, where)


def _object(
    title: str,
    hints: Mapping[str, Any],
    required: list[str],
    build: Callable[[dict[str, Any]], Any],
    where: str,
) -> tuple[dict[str, Any], _Convert]:
    nodes = {key: _node(hint, f"{where} ({title}.{key})") for key, hint in hints.items()}
    needed = [key for key in required if not nodes[key][2]]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {key: node[0] for key, node in nodes.items()},
    }
    if needed:
        schema["required"] = needed

    def convert(value: Any, at: str) -> Any:
        if not isinstance(value, dict):
            raise ArgumentsError(f"{at}: expected an object, got {_short(value)}")
        unknown = sorted(set(value) - set(nodes))
        if unknown:
            raise ArgumentsError(f"{at}: unexpected key(s) {', '.join(unknown)}")
        missing = [key for key in needed if key not in value]
        if missing:
            raise ArgumentsError(f"{at}: missing key(s) {', '.join(missing)}")
        values = {key: nodes[key][1](v, f"{at}.{key}") for key, v in value.items()}
        try:
            return build(values)
        except (TypeError, ValueError) as exc:  # the class's own validation
            raise ArgumentsError(f"{at}: {exc}") from None

    return schema, convert


def _union(nodes: list[tuple[dict[str, Any], _Convert]]) -> tuple[dict[str, Any], _Convert]:
    def convert(value: Any, at: str) -> Any:
        reasons = []
        for _, each in nodes:
            try:
                return each(value, at)
            except ArgumentsError as exc:
                reasons.append(str(exc))
        raise ArgumentsError(" or ".join(reasons))

    return {"anyOf": [node[0] for node in nodes]}, convert


# Converters ----------------------------------------------------------------------


def _check_bool(value: Any, at: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ArgumentsError(f"{at}: expected true or false, got {_short(value)}")


def _check_int(value: Any, at: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # models write 3.0 for 3
    raise ArgumentsError(f"{at}: expected an integer, got {_short(value)}")


def _check_float(value: Any, at: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ArgumentsError(f"{at}: expected a number, got {_short(value)}")


def _check_str(value: Any, at: str) -> str:
    if isinstance(value, str):
        return value
    raise ArgumentsError(f"{at}: expected a string, got {_short(value)}")


def _or_none(convert: _Convert) -> _Convert:
    return lambda value, at: None if value is None else convert(value, at)


def _list_of(convert: _Convert) -> _Convert:
    def each(value: Any, at: str) -> list[Any]:
        if not isinstance(value, list):
            raise ArgumentsError(f"{at}: expected a list, got {_short(value)}")
        return [convert(v, f"{at}[{i}]") for i, v in enumerate(value)]

    return each


def _dict_of(convert: _Convert) -> _Convert:
    def each(value: Any, at: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ArgumentsError(f"{at}: expected an object, got {_short(value)}")
        return {k: convert(v, f"{at}.{k}") for k, v in value.items()}

    return each


# Messages and docstrings -------------------------------------------------------------


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _short(value: Any) -> str:
    """A JSON value for a message to the model, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _choices(values: list[Any]) -> str:
    return ", ".join(_short(v) for v in values)


def _first_paragraph(doc: str) -> str:
    lines = []
    for line in doc.strip().splitlines():
        if not line.strip():
            break
        lines.append(line.strip())
    return " ".join(lines)


def _arg_descriptions(doc: str) -> dict[str, str]:
    """Each parameter's description from a Google-style ``Args:`` section."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    inside = False
    base = param_indent = 0
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not inside:
            if stripped in _ARGS_HEADERS:
                inside, base, current = True, indent, None
            continue
        if not stripped:
            continue
        if indent <= base:
            inside = False  # the next section, or the text after
            continue
        match = _PARAM_LINE.match(stripped)
        if match is not None and (current is None or indent <= param_indent):
            current, param_indent = match[1], indent
            found[current] = match[2].strip()
        elif current is not None:
            found[current] = f"{found[current]} {stripped}".strip()
    return found
