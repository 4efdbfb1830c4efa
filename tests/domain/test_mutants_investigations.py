"""Found by mutation testing (docs/test-quality.md, "`domain/leaks.py` and `domain/ranges.py`"):
each test failed on mutants of the investigations' statistics that every other test let
through. Values are pinned against scipy (an independent implementation) or worked out by
hand; refusals are pinned to their words, which reach an operator as a problem's `detail`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from regionlock.domain.errors import InvalidInput
from regionlock.domain.leaks import (
    Background,
    GroupCount,
    background_beta_binomial,
    background_iterated,
    beta_binomial_upper_tail,
    bh_q_values,
    binomial_upper_tail,
    estimate_background,
    fit_beta_binomial,
    rank,
)
from regionlock.domain.ranges import ScanWindow, scan_ranges


def refusal(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.message


def betabinom_sf(k: int, n: int, a: float, b: float) -> float:
    """P(X >= k) by summing scipy's pmf (its `sf` is 1 - cdf, which loses the far tail)."""
    return float(stats.betabinom.pmf(np.arange(k, n + 1), n, a, b).sum())


# --- refusals, in words -------------------------------------------------------------------------

ONE = [GroupCount("a", 10, 10, 1)]


@pytest.mark.parametrize(
    ("call", "args", "options", "words"),
    [
        (GroupCount, (5, 1, 1, 0), {}, "group 5: the name must be text"),
        (GroupCount, ("B1", 10.0, 5, 1), {}, "group 'B1': devices must be a whole number"),
        (GroupCount, ("B1", 10, True, 0), {}, "group 'B1': seen must be a whole number"),
        (GroupCount, ("B1", 10, 5, 1.0), {}, "group 'B1': restricted must be a whole number"),
        (GroupCount, ("B1", -1, 0, 0), {}, "group 'B1': devices is negative (-1)"),
        (GroupCount, ("B1", 10, 5, 6), {}, "group 'B1': restricted (6) exceeds seen (5)"),
        (GroupCount, ("B1", 10, 11, 0), {}, "group 'B1': seen (11) exceeds devices (10)"),
        (binomial_upper_tail, (1.5, 10, 0.1), {}, "k must be a whole number, not 1.5"),
        (binomial_upper_tail, (1, True, 0.1), {}, "n must be a whole number, not True"),
        (binomial_upper_tail, (1, -1, 0.1), {}, "n is negative (-1)"),
        (binomial_upper_tail, (1, 10, 1.5), {}, "the probability 1.5 is not in [0, 1]"),
        (binomial_upper_tail, (1, 10, -0.1), {}, "the probability -0.1 is not in [0, 1]"),
        (binomial_upper_tail, (1, 10, math.nan), {}, "the probability nan is not in [0, 1]"),
        (binomial_upper_tail, (1, 10, "0.5"), {}, "the probability '0.5' is not in [0, 1]"),
        (bh_q_values, ([0.1, 1.5],), {}, "the p-value 1.5 is not in [0, 1]"),
        (bh_q_values, ([-0.1],), {}, "the p-value -0.1 is not in [0, 1]"),
        (bh_q_values, (["0.1"],), {}, "the p-value '0.1' is not in [0, 1]"),
        (background_iterated, (ONE,), {"level": 0.0}, "the trimming level 0.0 is not in (0, 1)"),
        (background_iterated, (ONE,), {"level": 1.0}, "the trimming level 1.0 is not in (0, 1)"),
        (
            estimate_background,
            (ONE, "median"),
            {},
            "unknown background method 'median'; use one of ('iterated', 'beta-binomial')",
        ),
        (rank, (ONE,), {"alpha": 0.0}, "alpha 0.0 is not in (0, 1]"),
        (rank, (ONE,), {"alpha": 1.5}, "alpha 1.5 is not in (0, 1]"),
        (rank, (ONE,), {"alpha": "0.1"}, "alpha '0.1' is not in (0, 1]"),
        (rank, (ONE,), {"min_restricted": 1.5}, "min_restricted 1.5 must be a whole number"),
        (rank, (ONE,), {"min_restricted": True}, "min_restricted True must be a whole number"),
        (rank, (ONE,), {"min_restricted": -1}, "min_restricted is negative (-1)"),
        (
            rank,
            (ONE,),
            {"background": "median"},
            "unknown background method 'median'; use ('iterated', 'beta-binomial')",
        ),
        (rank, (["x"],), {}, "'x' is not a GroupCount"),
        (
            rank,
            ([GroupCount("b", 1, 1, 0), GroupCount("a", 1, 1, 0), GroupCount("a", 2, 2, 0)],),
            {},
            "group 'a' is listed twice",
        ),
    ],
)
def test_a_refused_question_says_exactly_what_is_wrong(
    call: object, args: tuple[object, ...], options: dict[str, object], words: str
) -> None:
    assert refusal(call, *args, **options) == words


def test_the_ends_of_every_range_are_accepted() -> None:
    assert GroupCount("empty", 0, 0, 0).devices == 0
    assert binomial_upper_tail(0, 0, 0.0) == 1.0
    assert binomial_upper_tail(1, 1, 1.0) == 1.0
    assert bh_q_values([0.0, 1.0]) == [0.0, 1.0]
    assert background_iterated(ONE, level=0.999).used == ("a",)
    assert [r.group for r in rank(ONE, alpha=1.0, min_restricted=0)] == ["a"]


# --- the beta-binomial tail ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0), (1.0, -1.0), (float("inf"), 1.0), (1.0, float("inf"))],
)
def test_beta_parameters_must_be_positive_and_finite(a: float, b: float) -> None:
    assert refusal(beta_binomial_upper_tail, 3, 10, a, b) == (
        f"the beta parameters ({a!r}, {b!r}) must be positive and finite"
    )


@pytest.mark.parametrize(
    ("k", "n", "a", "b"),
    [
        (1, 150, 2.0, 20.0),  # the first step above 0: 1 - P(X = 0)
        (5, 150, 2.0, 20.0),  # below the mode (about 7): the terms rise before they fall
        (149, 150, 2.0, 20.0),
        (150, 150, 2.0, 20.0),  # k = n: the last term alone, 3.6e-25
    ],
)
def test_the_beta_binomial_tail_matches_scipy_at_every_k(
    k: int, n: int, a: float, b: float
) -> None:
    assert beta_binomial_upper_tail(k, n, a, b) == pytest.approx(
        betabinom_sf(k, n, a, b), rel=1e-9, abs=0.0
    )


def test_the_beta_binomial_tail_is_one_at_or_below_0_and_zero_above_n() -> None:
    assert beta_binomial_upper_tail(0, 150, 2.0, 20.0) == 1.0
    assert beta_binomial_upper_tail(-3, 150, 2.0, 20.0) == 1.0
    assert beta_binomial_upper_tail(151, 150, 2.0, 20.0) == 0.0


def test_the_beta_binomial_tail_is_never_above_one() -> None:
    # P(X = 0 | 50, 20, 1) is 1e-18: the sum of every other term rounds to 1 + 6e-14.
    assert beta_binomial_upper_tail(1, 50, 20.0, 1.0) == 1.0


# --- the beta-binomial background ---------------------------------------------------------------


def test_a_beta_binomial_background_names_every_seen_group_and_its_method() -> None:
    groups = [
        GroupCount("a", 300, 300, 3),
        GroupCount("b", 300, 200, 9),
        GroupCount("one", 5, 1, 0),  # a single device seen still counts
        GroupCount("unseen", 40, 0, 0),
    ]
    prior = fit_beta_binomial(groups)
    assert background_beta_binomial(groups) == Background(
        prior.mean, "beta-binomial", ("a", "b", "one"), 1, prior
    )
    assert prior.mean == 12 / 501


# --- the range scan -----------------------------------------------------------------------------


def test_a_scan_window_reads_out_in_its_wire_format() -> None:
    window = ScanWindow(400, 429, 30, 12, 41.5, 0.002)
    assert list(window.to_json().items()) == [
        ("first_index", 400),
        ("last_index", 429),
        ("devices", 30),
        ("restricted", 12),
        ("llr", 41.5),
        ("p_value", 0.002),
    ]


def test_a_scan_computes_no_logarithm_of_zero() -> None:
    # Runs with no restricted device, or none outside, are common: x log x is 0 there, and
    # numpy must not be asked for log(0) (a RuntimeWarning on every scan, in the service's log).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        windows = scan_ranges([0, 1, 1, 0, 0, 0, 0, 0, 1, 0], permutations=19)
    assert windows[0].first_index == 1 and windows[0].last_index == 2


def kulldorff_llr(c: int, n: int, total_c: int, total_n: int) -> float:
    """Kulldorff's Bernoulli log likelihood ratio, spelled out (0 log 0 = 0), for a window whose
    share exceeds the share outside it."""

    def xlogx(x: float) -> float:
        return x * math.log(x) if x > 0 else 0.0

    out_c, out_n = total_c - c, total_n - n
    inside = xlogx(c) + xlogx(n - c) - xlogx(n)
    outside = xlogx(out_c) + xlogx(out_n - out_c) - xlogx(out_n)
    pooled = xlogx(total_c) + xlogx(total_n - total_c) - xlogx(total_n)
    return inside + outside - pooled


def best_window(batch: list[int]) -> tuple[float, int, int]:
    """By brute force: the highest score over every run of up to half the batch whose share
    exceeds the share outside it, the shortest then the earliest on a tie; (llr, first, last)."""
    total_c, total_n = sum(batch), len(batch)
    found = []
    for size in range(1, total_n // 2 + 1):
        for first in range(total_n - size + 1):
            c = sum(batch[first : first + size])
            if c * (total_n - size) > (total_c - c) * size:
                found.append((-kulldorff_llr(c, size, total_c, total_n), size, first))
    score, size, first = min(found)
    return -score, first, first + size - 1


@pytest.mark.parametrize(
    "batch",
    [
        [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # every device inside restricted
        [0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # 3 of 4 inside, none outside
        [1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        # 5 of 7 inside (5..11), 2 of 19 outside: every term of the ratio counts
        [1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0],
    ],
)
def test_a_windows_score_is_kulldorffs_likelihood_ratio(batch: list[int]) -> None:
    top = scan_ranges(batch, permutations=19)[0]
    llr, first, last = best_window(batch)
    assert (top.first_index, top.last_index) == (first, last)
    assert top.llr == pytest.approx(llr, rel=1e-12)
    inside = batch[first : last + 1]
    assert top.restricted == sum(inside) and top.devices == len(inside)


def test_every_window_found_is_denser_inside_and_scored_exactly() -> None:
    # 12 restricted of 21: single devices score only 0.58, and a long run of mostly restricted
    # devices is a cold spot for the rest; neither may be inflated or let in.
    batch = [1, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 0, 1]
    windows = scan_ranges(batch, permutations=19)
    total_c, total_n = sum(batch), len(batch)
    assert [(w.first_index, w.last_index) for w in windows] == [
        (2, 5), (8, 9), (0, 0), (11, 11), (13, 13), (15, 15), (18, 18), (20, 20),
    ]  # fmt: skip
    for w in windows:
        c, n = w.restricted, w.devices
        assert c * (total_n - n) > (total_c - c) * n  # the share inside exceeds the outside's
        assert w.llr == pytest.approx(kulldorff_llr(c, n, total_c, total_n), rel=1e-12)
    assert windows[-1].llr < 1.0


def test_a_scan_by_default_draws_999_reorderings_from_seed_0_and_keeps_10_windows() -> None:
    batch = [1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    default = scan_ranges(batch)
    assert default == scan_ranges(batch, permutations=999, seed=0, limit=10)
    assert default != scan_ranges(batch, permutations=999, seed=1)
    assert default[0].p_value == 0.127  # 126 of 999 reorderings score as high
    scattered = [0, 0, 1, 0, 0, 0, 0] * 12  # 12 restricted devices, none next to another
    assert len(scan_ranges(scattered, permutations=19)) == 10
    assert len(scan_ranges(scattered, permutations=19, limit=11)) == 11


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"permutations": -1}, "permutations must be a whole number >= 0, not -1"),
        ({"permutations": True}, "permutations must be a whole number >= 0, not True"),
        ({"seed": 1.5}, "seed must be a whole number >= 0, not 1.5"),
        ({"seed": -2}, "seed must be a whole number >= 0, not -2"),
        ({"limit": -1}, "limit must be a whole number >= 0, not -1"),
        ({"limit": False}, "limit must be a whole number >= 0, not False"),
        ({"max_length": 0}, "max_length must be a whole number >= 1, not 0"),
        ({"max_length": True}, "max_length must be a whole number >= 1, not True"),
        ({"max_length": 2.5}, "max_length must be a whole number >= 1, not 2.5"),
    ],
)
def test_a_refused_scan_says_which_option_is_wrong(options: dict[str, object], words: str) -> None:
    assert refusal(scan_ranges, [0, 1, 0, 0], **options) == words


@pytest.mark.parametrize("batch", [[0, 2], [[0, 1]], [0.5], [[0], [1, 0]], ["a"], [None]])
def test_a_batch_that_is_not_flat_zeros_and_ones_is_refused_in_words(batch: object) -> None:
    assert refusal(scan_ranges, batch) == "the batch must be a flat sequence of 0 and 1"


def test_a_scan_limited_to_one_window_returns_the_strongest() -> None:
    batch = [1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert scan_ranges(batch, permutations=19, limit=1) == scan_ranges(batch, permutations=19)[:1]
    assert scan_ranges(batch, permutations=19, limit=0) == []


def test_runs_are_at_most_half_the_batch_and_at_most_1000_devices_by_default() -> None:
    # Three devices: runs of one (3 // 2); the pair of restricted devices is two runs, not one.
    spans = [(w.first_index, w.last_index) for w in scan_ranges([1, 1, 0], permutations=9)]
    assert spans == [(0, 0), (1, 1)]
    # 1,100 restricted devices in a row in 2,400: the longest run scanned holds 1,000.
    top = scan_ranges([1] * 1100 + [0] * 1300, permutations=0, limit=1)[0]
    assert (top.first_index, top.devices, top.restricted) == (0, 1000, 1000)


# --- the binomial tail, both ways of summing ------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        (1, 1, 0.3),
        (1, 2, 0.3),
        (2, 2, 0.3),
        (1, 10, 0.05),  # just above the mean (0.5): summed upwards
        (5, 10, 0.5),  # exactly the mean: from k - 1 downwards
        (6, 10, 0.5),  # just above it
        (3, 10, 0.5),  # below it
        (10, 10, 0.5),
        (9, 10, 0.9),  # k = n p
        (40, 50, 0.9),
        (150, 150, 0.02),  # k = n, far in the tail: 1.4e-255
        (3, 150, 0.005),
        (2, 1000, 0.0001),
        (30, 10_000, 0.001),
        (12_000, 100_000, 0.1),
        (9_500, 100_000, 0.1),
    ],
)
def test_the_binomial_tail_matches_scipy_on_either_side_of_the_mean(
    k: int, n: int, p: float
) -> None:
    expected = math.exp(stats.binom.logsf(k - 1, n, p))
    assert binomial_upper_tail(k, n, p) == pytest.approx(expected, rel=1e-9, abs=0.0)


# --- Benjamini-Hochberg, by hand ------------------------------------------------------------------


def test_q_values_are_the_running_minimum_of_p_m_over_rank_from_the_top() -> None:
    # m = 5, sorted: 0.001, 0.008, 0.039, 0.041, 0.6; p m / rank: 0.005, 0.02, 0.065, 0.05125,
    # 0.6; the running minimum from the largest down: 0.005, 0.02, 0.05125, 0.05125, 0.6.
    p = [0.041, 0.6, 0.001, 0.039, 0.008]
    assert bh_q_values(p) == pytest.approx([0.05125, 0.6, 0.005, 0.05125, 0.02], rel=1e-12)
    assert bh_q_values([0.3]) == [0.3]
    assert bh_q_values([0.9, 0.95]) == pytest.approx([0.95, 0.95], rel=1e-12)
    rng = np.random.default_rng(3)
    many = list(rng.beta(0.3, 2.0, size=200))
    assert bh_q_values(many) == pytest.approx(list(stats.false_discovery_control(many)), rel=1e-12)


# --- the beta-binomial fit ------------------------------------------------------------------------


def kleinman(seen: list[int], restricted: list[int]) -> tuple[float, float]:
    """The method of moments as the docstring states it: (mean, concentration)."""
    total, k = sum(seen), len(seen)
    mu = sum(restricted) / total
    s = sum(n * (r / n - mu) ** 2 for n, r in zip(seen, restricted, strict=True))
    room = total - sum(n * n for n in seen) / total - (k - 1)
    rho = (s / (mu * (1 - mu)) - (k - 1)) / room
    return mu, 1 / rho - 1


def test_the_beta_binomial_fit_is_kleinmans_method_of_moments() -> None:
    seen, restricted = [100, 200, 150, 300, 80], [1, 10, 3, 30, 0]
    groups = [
        GroupCount(f"g{i}", n, n, r) for i, (n, r) in enumerate(zip(seen, restricted, strict=True))
    ]
    prior = fit_beta_binomial([*groups, GroupCount("unseen", 50, 0, 0)])
    mean, concentration = kleinman(seen, restricted)
    assert prior.mean == pytest.approx(mean, rel=1e-12)
    assert prior.concentration == pytest.approx(concentration, rel=1e-9)
    assert prior.a == pytest.approx(mean * concentration, rel=1e-9)
    assert prior.b == pytest.approx((1 - mean) * concentration, rel=1e-9)


@pytest.mark.parametrize(
    ("counts", "mean"),
    [
        ([], 0.0),  # nothing seen
        ([(10, 0)], 0.0),
        ([(10, 0), (20, 0)], 0.0),  # nobody restricted
        ([(10, 10), (20, 20)], 1.0),  # everybody restricted
        ([(1, 0), (1, 1)], 0.5),  # one device each: no room for a spread (2 - 1 - 1 = 0)
        ([(40, 2), (40, 2), (40, 2)], 0.05),  # the same share everywhere: no spread
        ([(30, 3)], 0.1),  # a single group
    ],
)
def test_a_fit_without_spread_beyond_chance_is_the_tightest_prior(
    counts: list[tuple[int, int]], mean: float
) -> None:
    groups = [GroupCount(f"g{i}", n, n, r) for i, (n, r) in enumerate(counts)]
    prior = fit_beta_binomial([*groups, GroupCount("unseen", 9, 0, 0)])
    assert prior.mean == pytest.approx(mean, rel=1e-12, abs=0.0)
    assert prior.concentration == 1e9


def test_a_spread_wider_than_any_beta_is_capped_not_negative() -> None:
    # 0 of 10 and 10 of 10: rho = (20 - 1) / 9 > 1, capped at 1 - 1e-9: concentration 1e-9.
    prior = fit_beta_binomial([GroupCount("none", 10, 10, 0), GroupCount("all", 10, 10, 10)])
    assert prior.mean == 0.5
    assert prior.concentration == pytest.approx(1 / (1 - 1e-9) - 1, rel=1e-6)


def test_a_prior_at_0_or_1_keeps_both_shapes_positive() -> None:
    from regionlock.domain.leaks import BetaPrior

    assert (BetaPrior(0.0, 100.0).a, BetaPrior(0.0, 100.0).b) == pytest.approx((1e-10, 100.0))
    assert (BetaPrior(1.0, 100.0).a, BetaPrior(1.0, 100.0).b) == pytest.approx((100.0, 1e-10))


# --- the iterated background ----------------------------------------------------------------------


def test_the_iterated_background_trims_until_the_groups_in_use_settle() -> None:
    clean = [GroupCount(f"D{d}", 750, 750, 4) for d in range(2, 10)]
    groups = [*clean, GroupCount("D0", 750, 750, 12), GroupCount("D1", 750, 750, 379)]
    # Round 1 drops D1 (pooled 5.6 %), round 2 drops D0 (12 over 4.1), round 3 keeps the same.
    assert background_iterated([*groups, GroupCount("new", 300, 0, 0)]) == Background(
        32.5 / 6001, "iterated", tuple(g.group for g in clean), 3
    )
    # Nothing leaks: the first round keeps every seen group; Jeffreys' half a device.
    # A group with a single device seen is in use; one with none is not.
    honest = [
        GroupCount("a", 100, 100, 1),
        GroupCount("b", 100, 100, 0),
        GroupCount("one", 5, 1, 0),
        GroupCount("u", 5, 0, 0),
    ]
    assert background_iterated(honest) == Background(1.5 / 202, "iterated", ("a", "b", "one"), 1)
    assert estimate_background(honest) == background_iterated(honest)
    assert estimate_background(honest, "beta-binomial") == background_beta_binomial(honest)


def test_a_group_whose_p_value_is_exactly_the_level_stays_in_use() -> None:
    groups = [GroupCount("a", 100, 100, 1), GroupCount("b", 100, 100, 3)]
    rate = 4.5 / 201
    level = binomial_upper_tail(3, 100, rate)  # b's p-value against the pooled rate
    assert background_iterated(groups, level=level).used == ("a", "b")
    assert background_iterated(groups, level=math.nextafter(level, 1.0)).used == ("a",)


# --- the ranking ----------------------------------------------------------------------------------


def test_every_field_of_a_row_is_what_the_docstring_says() -> None:
    groups = [
        GroupCount("a", 300, 200, 2),
        GroupCount("b", 250, 250, 3),
        GroupCount("c", 400, 400, 30),
        GroupCount("one", 10, 1, 1),  # a single device seen is tested too
        GroupCount("u", 100, 0, 0),
    ]
    bg = background_iterated(groups)
    prior = fit_beta_binomial(groups)
    tested = [g for g in groups if g.seen]
    p = {g.group: math.exp(stats.binom.logsf(g.restricted - 1, g.seen, bg.rate)) for g in tested}
    q = dict(zip(p, stats.false_discovery_control(list(p.values())), strict=True))
    rows = {r.group: r for r in rank(groups, alpha=0.05, min_restricted=3)}
    for g in groups:
        row = rows[g.group]
        assert (row.devices, row.seen, row.restricted) == (g.devices, g.seen, g.restricted)
        assert row.share == (g.restricted / g.seen if g.seen else 0.0)
        assert row.expected == pytest.approx(g.seen * bg.rate, rel=1e-12, abs=0.0)
        assert row.p_value == pytest.approx(p.get(g.group, 1.0), rel=1e-9)
        assert row.q_value == pytest.approx(q.get(g.group, 1.0), rel=1e-9)
        assert row.shrunk == pytest.approx(
            (g.restricted + prior.a) / (g.seen + prior.a + prior.b), rel=1e-12
        )
        if g.seen:
            ci = stats.binomtest(g.restricted, g.seen).proportion_ci(method="wilson")
            assert row.wilson_low == pytest.approx(ci.low, abs=1e-12)
        else:
            assert row.wilson_low == 0.0
    assert [name for name, row in rows.items() if row.flagged] == ["c"]


def test_a_group_is_flagged_below_alpha_with_at_least_min_restricted() -> None:
    groups = [GroupCount(f"g{i}", 500, 500, 2) for i in range(8)] + [GroupCount("x", 500, 500, 9)]
    x = next(r for r in rank(groups) if r.group == "x")
    assert x.q_value < 0.01
    assert next(r for r in rank(groups, min_restricted=9) if r.group == "x").flagged
    assert not next(r for r in rank(groups, min_restricted=10) if r.group == "x").flagged
    assert not next(r for r in rank(groups, alpha=x.q_value) if r.group == "x").flagged
    above = math.nextafter(x.q_value, 1.0)
    assert next(r for r in rank(groups, alpha=above) if r.group == "x").flagged


def test_ties_are_ranked_by_shrunk_rate_then_by_name() -> None:
    groups = [
        GroupCount("zeta", 100, 100, 0),
        GroupCount("alpha", 100, 100, 0),
        GroupCount("small", 10, 10, 0),  # the same p and q (1), a higher shrunk rate
        GroupCount("unseen-b", 50, 0, 0),
        GroupCount("unseen-a", 50, 0, 0),
    ]
    order = [r.group for r in rank(groups)]
    assert order == ["unseen-a", "unseen-b", "small", "alpha", "zeta"]


# --- Wilson's lower bound -------------------------------------------------------------------------


def test_wilsons_lower_bound_matches_scipy_and_the_formula_for_any_z() -> None:
    from regionlock.domain.leaks import wilson_lower

    for k, n in [(1, 1), (3, 3), (0, 5), (2, 7), (40, 1000), (999, 1000)]:
        low = stats.binomtest(k, n).proportion_ci(0.95, method="wilson").low
        assert wilson_lower(k, n) == pytest.approx(low, abs=1e-14)
    assert wilson_lower(0, 5) == 0.0
    assert wilson_lower(0, -1) == 0.0
    # z = 1 for 2 of 8, by hand: (0.25 + 1/16 - sqrt(0.25 * 0.75 / 8 + 1/256)) / (1 + 1/8).
    by_hand = (0.25 + 1 / 16 - math.sqrt(0.25 * 0.75 / 8 + 1 / 256)) / (1 + 1 / 8)
    assert wilson_lower(2, 8, z=1.0) == pytest.approx(by_hand, rel=1e-14)
    low_90 = stats.binomtest(2, 8).proportion_ci(0.90, method="wilson").low
    assert wilson_lower(2, 8, z=stats.norm.ppf(0.95)) == pytest.approx(low_90, abs=1e-14)


def test_a_windows_p_value_counts_the_seeded_reorderings_whose_best_run_scores_as_high() -> None:
    # The null distribution spelled out: R reorderings of the batch, each row shuffled on its
    # own by numpy's generator from `seed`; in each, the best run of 1 to `length` devices.
    batch = [1, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    permutations, seed, length = 99, 4, 13
    rows = np.random.default_rng(seed).permuted(np.tile(batch, (permutations, 1)), axis=1)
    total_c, total_n = sum(batch), len(batch)
    null = []
    for row in rows.tolist():
        best = 0.0
        for size in range(1, length + 1):
            for first in range(total_n - size + 1):
                c = sum(row[first : first + size])
                if c * (total_n - size) > (total_c - c) * size:
                    best = max(best, kulldorff_llr(c, size, total_c, total_n))
        null.append(best)
    windows = scan_ranges(batch, permutations=permutations, seed=seed)
    for w in windows:
        beaten = sum(score >= w.llr - 1e-9 * max(1.0, w.llr) for score in null)
        assert w.p_value == (1 + beaten) / (1 + permutations)
    assert 0.0 < windows[0].p_value < 0.5 < windows[-1].p_value  # a spread of p-values


def test_reorderings_drawn_in_several_chunks_are_all_counted() -> None:
    # 2,500 devices: 800 reorderings a chunk (2,000,000 // 2,500), so 999 take two.
    batch = [0] * 2500
    batch[1000:1004] = [1, 1, 1, 1]
    batch[10] = batch[2000] = 1
    top = scan_ranges(batch, permutations=999, max_length=5, limit=1)[0]
    assert (top.first_index, top.last_index, top.p_value) == (1000, 1003, 0.001)


def test_a_fleet_of_two_tiny_groups_still_fits_its_spread() -> None:
    # 0 of 1 and 2 of 2: room = 3 - 5/3 - 1 = 1/3 (under one device, still room), rho = 6,
    # capped: the widest prior, not "no spread".
    prior = fit_beta_binomial([GroupCount("one", 1, 1, 0), GroupCount("two", 2, 2, 2)])
    assert prior.mean == pytest.approx(2 / 3)
    assert prior.concentration == pytest.approx(1 / (1 - 1e-9) - 1, rel=1e-6)


def test_the_trimming_level_reaches_the_iterated_background() -> None:
    groups = [GroupCount("a", 100, 100, 1), GroupCount("b", 100, 100, 3)]
    level = math.nextafter(binomial_upper_tail(3, 100, 4.5 / 201), 1.0)  # b's p-value is 0.38
    assert estimate_background(groups, level=level).used == ("a",)
    assert estimate_background(groups).used == ("a", "b")


def test_by_default_a_group_needs_three_restricted_devices_to_be_flagged() -> None:
    clean = [GroupCount(f"c{i}", 1000, 1000, 0) for i in range(20)]
    rows = {
        r.group: r
        for r in rank([*clean, GroupCount("two", 10, 10, 2), GroupCount("three", 10, 10, 3)])
    }
    assert rows["two"].q_value < 1e-6 and not rows["two"].flagged
    assert rows["three"].flagged


def test_the_trimming_level_reaches_the_ranking() -> None:
    groups = [GroupCount("a", 100, 100, 1), GroupCount("b", 100, 100, 3)]
    level = math.nextafter(binomial_upper_tail(3, 100, 4.5 / 201), 1.0)
    rows = {r.group: r for r in rank(groups, trim_level=level)}
    assert rows["b"].expected == pytest.approx(100 * 1.5 / 101, rel=1e-12)  # from a alone
    assert rank(groups)[0].expected == pytest.approx(100 * 4.5 / 201, rel=1e-12)
