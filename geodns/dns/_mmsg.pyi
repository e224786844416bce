# The compiled UDP loop (_mmsg.c); see udp.py.
from collections.abc import Callable, Sequence

BATCH: int
ROUNDS: int

class Batch:
    def __init__(self, fd: int, v6: bool, bounds: Sequence[float] = ...) -> None: ...
    def serve(
        self,
        memo: dict | None,
        slow: Callable[[bytes, int | bytes], bytes | None],
        clients: dict | None = ...,
        hook: tuple | None = ...,
    ) -> tuple[int, tuple | None, int, BaseException | None]: ...
