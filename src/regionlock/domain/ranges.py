"""Where inside a batch restricted devices concentrate: runs of consecutive IMEIs (or serials)
that point at one carton or one pallet.

The method is Kulldorff's Bernoulli scan statistic over every run of consecutive devices up to
a maximum length, each scored by the likelihood ratio of "the rate inside the run is higher than
outside" against "one rate for the batch", with a Monte Carlo p-value from seeded random
reorderings of the batch (Kulldorff, "A spatial scan statistic", Comm. Statist. Theory Methods
26:1481-1496, 1997; the same test on a line, as SaTScan's Bernoulli model does in space). Pure
arithmetic on a sequence of 0 and 1; the order of the devices comes from the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from regionlock.domain.errors import InvalidInput


@dataclass(frozen=True)
class ScanWindow:
    """A run of consecutive devices (0-based indices into the batch, both ends included)."""

    first_index: int
    last_index: int
    devices: int
    restricted: int
    llr: float
    p_value: float

    def to_json(self) -> dict[str, int | float]:
        """The window as JSON-ready values."""
        return {
            "first_index": self.first_index,
            "last_index": self.last_index,
            "devices": self.devices,
            "restricted": self.restricted,
            "llr": self.llr,
            "p_value": self.p_value,
        }


FloatArray = npt.NDArray[np.float64]


def _xlogx(x: FloatArray) -> FloatArray:
    safe = np.where(x > 0, x, 1.0)
    return np.where(x > 0, x * np.log(safe), 0.0)


def _llr(c: FloatArray, n: float, total_c: float, total_n: float) -> FloatArray:
    """Kulldorff's Bernoulli log likelihood ratio of a window with c of n restricted, 0 unless
    the window's share exceeds the share outside it."""
    out_c, out_n = total_c - c, total_n - n
    ratio = (
        _xlogx(c)
        + _xlogx(n - c)
        - _xlogx(np.asarray(float(n)))
        + _xlogx(out_c)
        + _xlogx(out_n - out_c)
        - _xlogx(np.asarray(float(out_n)))
        - (
            _xlogx(np.asarray(total_c))
            + _xlogx(np.asarray(total_n - total_c))
            - _xlogx(np.asarray(total_n))
        )
    )
    return np.where(c * out_n > out_c * n, np.maximum(ratio, 0.0), 0.0)


def scan_ranges(
    restricted: Sequence[int] | npt.ArrayLike,
    *,
    max_length: int | None = None,
    permutations: int = 999,
    seed: int = 0,
    limit: int = 10,
) -> list[ScanWindow]:
    """Runs of consecutive devices where restricted ones concentrate, strongest first.

    `restricted` is the batch in IMEI (or serial) order, 1 for a restricted device, else 0.
    Every run of 1 to `max_length` devices (default: half the batch, at most 1,000) is scored
    by Kulldorff's likelihood ratio for "the rate inside differs from the rate outside",
    counted only when the inside is higher. The p-value of a run is the share of R random
    reorderings of the batch (a seeded generator, so the answer is reproducible) whose best run
    scores at least as high, as (1 + count) / (R + 1); secondary runs are compared with the
    same distribution of the best, which is conservative, as SaTScan does. Up to `limit` runs
    are returned, none overlapping, each the strongest left after the earlier ones.
    """
    try:
        flags = np.asarray(restricted)
        flat = flags.ndim == 1 and (flags.size == 0 or bool(np.isin(flags, (0, 1)).all()))
    except (TypeError, ValueError):  # ragged or unconvertible input
        flat = False
    if not flat:
        raise InvalidInput("the batch must be a flat sequence of 0 and 1")
    for name, value in (("permutations", permutations), ("seed", seed), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be a whole number >= 0, not {value!r}")
    n = int(flags.size)
    total_c = int(flags.sum()) if n else 0
    if n == 0 or total_c in (0, n) or limit == 0:
        return []
    length = max(1, min(n // 2, 1000)) if max_length is None else max_length
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise InvalidInput(f"max_length must be a whole number >= 1, not {max_length!r}")
    length = min(length, n)
    bits = flags.astype(np.int32)
    prefix = np.concatenate(([0], np.cumsum(bits)))
    starts, lengths, scores = [], [], []
    for size in range(1, length + 1):
        counts = (prefix[size:] - prefix[:-size]).astype(np.float64)
        score = _llr(counts, size, total_c, n)
        keep = np.nonzero(score > 0)[0]
        starts.append(keep)
        lengths.append(np.full(keep.size, size))
        scores.append(score[keep])
    start, size_of, score = (np.concatenate(parts) for parts in (starts, lengths, scores))
    null_best = _null_maxima(bits, length, total_c, permutations, seed)
    chosen: list[ScanWindow] = []
    while score.size and len(chosen) < limit:
        best = int(np.lexsort((start, size_of, -score))[0])
        first, size, llr = int(start[best]), int(size_of[best]), float(score[best])
        tolerance = 1e-9 * max(1.0, llr)
        beaten = int((null_best >= llr - tolerance).sum())
        window_c = int(prefix[first + size] - prefix[first])
        chosen.append(
            ScanWindow(
                first, first + size - 1, size, window_c, llr, (1 + beaten) / (1 + permutations)
            )
        )
        apart = (start + size_of <= first) | (start >= first + size)
        start, size_of, score = start[apart], size_of[apart], score[apart]
    return chosen


def _null_maxima(
    bits: npt.NDArray[np.int32], length: int, total_c: int, permutations: int, seed: int
) -> FloatArray:
    """The best run's score in each of `permutations` seeded reorderings of the batch. For a
    fixed run length the score rises with the count inside, so only each length's highest
    count is needed."""
    rng = np.random.default_rng(seed)
    n = bits.size
    best = np.zeros(permutations)
    chunk = max(1, 2_000_000 // max(n, 1))
    for low in range(0, permutations, chunk):
        rows = min(chunk, permutations - low)
        shuffled = rng.permuted(np.tile(bits, (rows, 1)), axis=1)
        prefix = np.concatenate((np.zeros((rows, 1), np.int32), np.cumsum(shuffled, axis=1)), 1)
        top = np.zeros(rows)
        for size in range(1, length + 1):
            counts = (prefix[:, size:] - prefix[:, :-size]).max(axis=1).astype(np.float64)
            top = np.maximum(top, _llr(counts, size, total_c, n))
        best[low : low + rows] = top
    return best
