# The subnet templates' answer in C (_subnets.c); see fastpath.py's FastPath.hook.
from collections.abc import Callable
from typing import Any

HOOK: Any

class Context:
    def __init__(
        self,
        entries: dict,
        seen: set,
        seen_before: set,
        seen_again: Callable[[int], bool],
        seen_max: int,
        ttl: Callable[[Any], int],
        exact: frozenset,
        areas: tuple | None,
    ) -> None: ...
