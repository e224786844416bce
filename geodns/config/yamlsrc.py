"""YAML that remembers where each value came from.

Validation errors must name the file and line, so the loader keeps the line of
every mapping key and sequence item beside the plain Python values.
"""
from __future__ import annotations

from typing import Any

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


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):   # libyaml: ten times faster, same marks
    pass


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


def parse_yaml(text: str, source: str) -> Any:
    """Parse one YAML document; a syntax error becomes a Problem with its line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
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
