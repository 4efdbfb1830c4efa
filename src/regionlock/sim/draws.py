"""Reproducible random draws keyed by name: `Draws("device", seed, index)`.

Each stream is BLAKE2b in counter mode over its key: block n is
`blake2b(key || n, digest_size=64)`, read as eight 64-bit numbers, each giving a float in
[0, 1) from its top 53 bits. Why not `random.Random(seed)`:

* independence by construction: a device's stream depends on (seed, index) only, so device
  17 is the same in a fleet of 2,000 and of 100,000, and a day's draws do not depend on how
  many draws earlier days took;
* stability: the output is fixed by the BLAKE2b standard, while the `random` module keeps
  only `random()` stable across Python versions (`choice`, `randrange` have changed);
* cost: opening a stream is one hash (under a microsecond); seeding a Mersenne Twister fills
  2.5 KB of state (about 4 us), which would dominate `day_plan`.
"""

from __future__ import annotations

import hashlib
import struct
from bisect import bisect_right
from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")
_EIGHT_U64 = struct.Struct("<8Q")
_SCALE = 2.0**-53


class Draws:
    """A stream of uniform floats in [0, 1) named by its key parts (ints and strings)."""

    __slots__ = ("_block", "_key", "_pool")

    def __init__(self, *key: int | str) -> None:
        self._key = "/".join(map(str, key)).encode("utf-8") + b"#"
        self._block = 0
        self._pool: list[float] = []

    def random(self) -> float:
        """The next float in [0, 1)."""
        if not self._pool:
            digest = hashlib.blake2b(
                self._key + str(self._block).encode("ascii"), digest_size=64
            ).digest()
            self._block += 1
            # Reversed, so that pop() hands out the block's numbers in their natural order.
            self._pool = [(n >> 11) * _SCALE for n in reversed(_EIGHT_U64.unpack(digest))]
        return self._pool.pop()

    def below(self, n: int) -> int:
        """An int in [0, n)."""
        return min(int(self.random() * n), n - 1)

    def chance(self, p: float) -> bool:
        """True with probability p."""
        return self.random() < p

    def uniform(self, low: float, high: float) -> float:
        """A float in [low, high)."""
        return low + (high - low) * self.random()

    def choice(self, items: Sequence[_T]) -> _T:
        """One of `items`, each equally likely."""
        return items[self.below(len(items))]

    def weighted(self, items: Sequence[_T], cum_weights: Sequence[float]) -> _T:
        """One of `items`, in proportion to weights given as running totals."""
        x = self.random() * cum_weights[-1]
        return items[min(bisect_right(cum_weights, x), len(items) - 1)]
