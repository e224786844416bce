"""The random choices a policy chain makes, and a way to list them all instead.

``weighted`` is the one filter that draws at random.  It draws through a
``Dice``: ``pick`` (one index, with probability weight / total) and
``shuffle``.  On the query path the dice are a random generator.  To know
every answer a record can give a client, and how often (``policy.decision``),
the chain is run with an ``Explorer`` instead: it answers each draw from a
script and, run after run, walks every branch of every draw, so each path
through the chain is visited once with its exact probability.  Sampling would
only estimate the shares; this gives them, and lets the fast path pre-encode
each possible answer and choose among them with one random number.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol


class Draws(Protocol):
    """What ``weighted`` draws with: ``Dice`` on the query path, an ``Explorer`` to list every answer a record can give (``policy.decision``)."""

    family: int | None

    def pick(self, weights: Sequence[float], total: float) -> int: ...

    def shuffle(self, items: list) -> None: ...


class Dice:
    """Weighted draws from a random generator: what the query path uses."""

    __slots__ = ("rng",)
    # The one address family whose endpoint order matters to this run of the chain;
    # None: every family's (the query path orders both, for whoever reads the candidates).
    family: int | None = None

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, weights: Sequence[float], total: float) -> int:
        """Index i with probability weights[i] / total (weights positive, total their sum)."""
        r = self.rng.random() * total
        i = 0
        acc = weights[0]
        last = len(weights) - 1
        while r >= acc and i < last:
            i += 1
            acc += weights[i]
        return i

    def shuffle(self, items: list) -> None:
        self.rng.shuffle(items)


class TooManyPaths(Exception):
    """The chain has more random paths than the explorer was allowed to walk."""


class Explorer:
    """Dice that visit every path of draws, one path per run of the chain.

    Use: ``while explorer.next_path(): run the chain; explorer.probability``.
    A path is the list of indexes drawn so far; the next path is found like
    an odometer: the last draw that has an untried branch moves to it, and
    every draw after it starts again from its first branch.
    """

    __slots__ = ("limit", "family", "paths", "_script", "_options", "_probability", "_pos", "_started")

    def __init__(self, limit: int = 256, family: int | None = None):
        self.limit = limit
        # ``select`` reads the addresses of one family only: the other family's
        # endpoint order would multiply the paths without changing any answer.
        self.family = family
        self.paths = 0
        self._script: list[int] = []  # the branch taken at each draw of the current path
        self._options: list[int] = []  # how many branches each of those draws had
        self._probability = 1.0
        self._pos = 0
        self._started = False

    def next_path(self) -> bool:
        """Move to the next path; False when every path has been visited."""
        if self._started:
            script, options = self._script, self._options
            del script[self._pos :], options[self._pos :]  # draws the last run did not reach
            while script and script[-1] + 1 >= options[-1]:
                script.pop()
                options.pop()
            if not script:
                return False
            script[-1] += 1
        self._started = True
        self.paths += 1
        if self.paths > self.limit:
            raise TooManyPaths(f"more than {self.limit} random paths")
        self._pos = 0
        self._probability = 1.0
        return True

    @property
    def probability(self) -> float:
        """The probability of the path just run."""
        return self._probability

    def pick(self, weights: Sequence[float], total: float) -> int:
        pos = self._pos
        if pos == len(self._script):
            self._script.append(0)
            self._options.append(len(weights))
        elif self._options[pos] != len(weights):
            raise RuntimeError(
                "the chain drew differently on the same path: it must be deterministic apart from its draws"
            )
        i = self._script[pos]
        self._pos = pos + 1
        self._probability *= weights[i] / total
        return i

    def shuffle(self, items: list) -> None:
        """Fisher-Yates with uniform picks: every permutation, each equally likely."""
        for i in range(len(items) - 1, 0, -1):
            j = self.pick((1,) * (i + 1), i + 1)
            items[i], items[j] = items[j], items[i]
