"""Running a command's main coroutine: on uvloop where it is installed (Linux), else asyncio."""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
