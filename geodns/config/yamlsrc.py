"""YAML that remembers where each value came from, read with the YAML 1.2 core schema.

Validation errors must name the file and line, so the loader keeps the line of
every mapping key and sequence item beside the plain Python values.

PyYAML resolves plain scalars by YAML 1.1 rules, where ``NO`` (Norway) and
``off`` are booleans, ``010`` is octal 8 and ``1:30`` is the sexagesimal 90:
values a config would then use silently.  The loader here resolves by the 1.2
core schema instead: only ``true``/``false`` are booleans, integers are
decimal (``0o``/``0x`` for the other bases), ``1:30`` and dates stay strings,
and the field checks reject what does not fit, naming the key.  ``.inf`` and
``.nan`` are floats, as in 1.2; the field checks reject them too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import Problem


class LinedMap(dict):
    """A dict whose keys remember their line (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.duplicates: list[tuple[Any, int]] = []


class LinedList(list):
    """A list whose items remember their line (1-based)."""

    line: int = 0

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ten times faster, same marks


class _Loader(_SafeLoader):
    """libyaml's parser (it calls the Python resolver below) with the 1.2 core schema's implicit types."""

    yaml_implicit_resolvers: dict = {}


# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), plus the merge key
# ``<<``, which configs with anchors use.  The first matching resolver wins, so int comes before float.
_CORE = (
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),  # "": an empty value
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    (
        "tag:yaml.org,2002:float",
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
        list("-+.0123456789"),
    ),
    ("tag:yaml.org,2002:merge", r"<<", ["<"]),
)
for _tag, _pattern, _first in _CORE:
    _Loader.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), _first)


def _construct_bool(loader: _Loader, node: yaml.ScalarNode) -> bool:
    value = loader.construct_scalar(node)
    if value.lower() not in ("true", "false"):
        raise yaml.constructor.ConstructorError(None, None, f"expected true or false, not {value!r}", node.start_mark)
    return value.lower() == "true"


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    value = loader.construct_scalar(node)
    try:
        if value.startswith(("0o", "0x")):
            return int(value[2:], 8 if value[1] == "o" else 16)
        return int(value, 10)  # 010 is ten: no octal by leading zero
    except ValueError as exc:  # e.g. more digits than Python converts
        raise yaml.constructor.ConstructorError(None, None, f"bad integer: {exc}", node.start_mark) from None


def _construct_float(loader: _Loader, node: yaml.ScalarNode) -> float:
    value = loader.construct_scalar(node)
    text = value.lower().lstrip("+")
    if text in (".inf", "-.inf", ".nan"):
        return float(text.replace(".", ""))
    try:
        return float(value)
    except ValueError:
        raise yaml.constructor.ConstructorError(None, None, f"bad number {value!r}", node.start_mark) from None


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LinedMap:
    loader.flatten_mapping(node)
    result = LinedMap()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in result:
            result.duplicates.append((key, line))
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = line
    return result


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LinedList:
    result = LinedList()
    result.line = node.start_mark.line + 1
    for item in node.value:
        result.append(loader.construct_object(item, deep=True))
        result.lines.append(item.start_mark.line + 1)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)
_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; a syntax error becomes a Problem with its line."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = exc.problem or str(exc)
        if exc.context:
            reason = f"{exc.context}, {reason}"
        raise _YamlSyntax(Problem(source, line, f"YAML syntax: {reason}")) from None
    except yaml.YAMLError as exc:
        raise _YamlSyntax(Problem(source, None, f"YAML syntax: {exc}")) from None


class _YamlSyntax(Exception):
    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem
