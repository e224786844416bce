"""Errors that point at the input that caused them.

Every check collects all its problems before failing (as octoDNS does), so a
user fixes a file in one pass instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input: where, and why."""

    source: str  # file path, or a label such as "--dns-listen"
    line: int | None  # 1-based line, when known
    reason: str  # for config files this starts with the key path

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.source}: {self.reason}"
        return f"{self.source}:{self.line}: {self.reason}"


class InputError(Exception):
    """Raised with every problem found in an input (config, zone, CLI)."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ZoneError(InputError):
    """A zone file could not be loaded."""


class ConfigError(InputError):
    """A configuration file or option is invalid."""
