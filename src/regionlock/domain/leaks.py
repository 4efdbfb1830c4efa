"""Which groups of devices leak into restricted places, with statistics that hold up.

The input is one `GroupCount` per group (a distributor, a batch, a model, a sales region): how
many devices it has, how many have checked in (`seen`) and how many of those are established in
a restricted place (`restricted`). `rank` answers, per group: is its share of restricted devices
larger than the honest background explains, how sure are we, and how sure are we once we account
for having looked at every group at once. The counting itself (from the store, in DuckDB) is not
done here; this module is pure arithmetic on those counts.

The methods, each with its source:

- p-value: the exact one-sided binomial test, P(X >= restricted) for X ~ Binomial(seen,
  background) (Clopper and Pearson's exact reasoning; any statistics text, e.g. Agresti,
  *Categorical Data Analysis*, 3rd ed., 2013, section 1.4).
- q-value: the Benjamini-Hochberg step-up adjustment (Benjamini and Hochberg, "Controlling the
  false discovery rate", JRSS B 57:289-300, 1995).
- background: the rate among the groups that show no leak, found by iterated trimming
  (`background_iterated`, the default), or the mean of a beta-binomial fitted across groups by
  the method of moments (`background_beta_binomial`; Kleinman, "Proportions with extraneous
  variance", JASA 68:46-54, 1973).
- shrunk: the empirical Bayes posterior mean under that beta-binomial fit (Efron and Morris,
  JASA 70:311-319, 1975; Robinson, *Introduction to Empirical Bayes*, 2017).
- wilson_low: the lower end of Wilson's 95 % score interval (Wilson, JASA 22:209-212, 1927).

Where inside a batch the leak sits (runs of consecutive devices) is `regionlock.domain.ranges`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from regionlock.domain.errors import InvalidInput

BackgroundMethod = Literal["iterated", "beta-binomial"]
BACKGROUND_METHODS: tuple[BackgroundMethod, ...] = ("iterated", "beta-binomial")
WILSON_Z = 1.959963984540054  # the 97.5 % normal quantile: a two-sided 95 % interval
_TAIL_EPS = 1e-17  # stop summing once the rest cannot change a double
_MAX_CONCENTRATION = 1e9  # a beta prior this tight is "no spread between groups"
_MAX_ITERATIONS = 50


@dataclass(frozen=True)
class GroupCount:
    """The counts of one group: registered devices, devices seen, seen devices restricted."""

    group: str
    devices: int
    seen: int
    restricted: int

    def __post_init__(self) -> None:
        if not isinstance(self.group, str):
            raise InvalidInput(f"group {self.group!r}: the name must be text")
        for name in ("devices", "seen", "restricted"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"group {self.group!r}: {name} must be a whole number")
            if value < 0:
                raise InvalidInput(f"group {self.group!r}: {name} is negative ({value})")
        if self.restricted > self.seen:
            raise InvalidInput(
                f"group {self.group!r}: restricted ({self.restricted}) exceeds seen ({self.seen})"
            )
        if self.seen > self.devices:
            raise InvalidInput(
                f"group {self.group!r}: seen ({self.seen}) exceeds devices ({self.devices})"
            )


# --- exact tails ------------------------------------------------------------------------------


def _check_tail_args(k: int, n: int, p: float) -> None:
    for name, value in (("k", k), ("n", n)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{name} must be a whole number, not {value!r}")
    if n < 0:
        raise InvalidInput(f"n is negative ({n})")
    if not isinstance(p, int | float) or not 0.0 <= p <= 1.0:  # also refuses NaN
        raise InvalidInput(f"the probability {p!r} is not in [0, 1]")


def _log_binomial_pmf(j: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(j + 1)
        - math.lgamma(n - j + 1)
        + j * math.log(p)
        + (n - j) * math.log1p(-p)
    )


def _geometric_sum(first: int, n: int, ratio_at: float, upward: bool) -> float:
    """1 + r1 + r1*r2 + ...: the tail relative to its first term, summed until the rest, which
    shrinks at least geometrically since the binomial's term ratios decrease, is negligible."""
    total, term, j = 1.0, 1.0, first
    while (j < n) if upward else (j > 0):
        ratio = (n - j) / (j + 1) * ratio_at if upward else j / (n - j + 1) * ratio_at
        term *= ratio
        total += term
        j = j + 1 if upward else j - 1
        if ratio < 1.0 and term * ratio / (1.0 - ratio) <= total * _TAIL_EPS:
            break
    return total


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exact to about 1e-9 relative for n up to 10**6.

    Above the mean, the terms P(X = k), P(X = k + 1), ... are summed, each from the previous by
    the ratio (n - j) / (j + 1) * p / (1 - p), in units of the first term (computed in log
    space with lgamma), stopping when a geometric bound on the rest is below 1e-17 of the sum.
    At or below the mean, 1 - P(X <= k - 1) is computed the same way from k - 1 downwards (the
    result is then at least one half, as k is at most the median, so the subtraction loses
    nothing). Nothing underflows until
    the answer itself is below 1e-308.
    """
    _check_tail_args(k, n, p)
    if k <= 0:
        return 1.0
    if k > n or p == 0.0:
        return 0.0
    if p == 1.0:
        return 1.0
    if k > n * p:
        total = _geometric_sum(k, n, p / (1.0 - p), upward=True)
        return min(1.0, math.exp(_log_binomial_pmf(k, n, p) + math.log(total)))
    total = _geometric_sum(k - 1, n, (1.0 - p) / p, upward=False)
    lower = math.exp(_log_binomial_pmf(k - 1, n, p) + math.log(total))
    return min(1.0, max(0.0, 1.0 - lower))


def beta_binomial_upper_tail(k: int, n: int, a: float, b: float) -> float:
    """P(X >= k) for X ~ BetaBinomial(n, a, b): a binomial whose rate is itself Beta(a, b).

    The terms from k to n are built in log space from P(X = k) (via lgamma) and the ratio
    P(X = j + 1) / P(X = j) = (n - j)(j + a) / ((j + 1)(n - j - 1 + b)), then added with the
    largest factored out. Costs O(n - k) array work, fine for groups of up to millions.
    """
    _check_tail_args(k, n, 0.5)
    if not (a > 0.0 and b > 0.0 and math.isfinite(a) and math.isfinite(b)):
        raise InvalidInput(f"the beta parameters ({a!r}, {b!r}) must be positive and finite")
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_first = (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + math.lgamma(k + a)
        + math.lgamma(n - k + b)
        - math.lgamma(n + a + b)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    j = np.arange(k, n, dtype=np.float64)
    steps = np.log(n - j) + np.log(j + a) - np.log(j + 1.0) - np.log(n - j - 1.0 + b)
    logs = np.concatenate(([0.0], np.cumsum(steps)))
    top = float(logs.max())
    total = top + math.log(float(np.exp(logs - top).sum()))
    return min(1.0, math.exp(log_first + total))


# --- multiple testing -------------------------------------------------------------------------


def bh_q_values(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg q-values, in the order given.

    With the m p-values sorted ascending, the q-value of the i-th is the smallest p_(j) * m / j
    over j >= i, capped at 1 (Benjamini and Hochberg 1995; Yekutieli and Benjamini 1999 for the
    "adjusted p-value" form). Flagging every group with q below alpha keeps the expected share
    of false flags among the flags at or below alpha. Ties get equal q-values.
    """
    values = list(p_values)
    for value in values:
        if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise InvalidInput(f"the p-value {value!r} is not in [0, 1]")
    m = len(values)
    order = sorted(range(m), key=lambda i: values[i])
    q = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, values[i] * (m / rank))  # m / rank >= 1: never below p
        q[i] = running
    return q


# --- background and shrinkage -----------------------------------------------------------------


@dataclass(frozen=True)
class BetaPrior:
    """A Beta(mean * concentration, (1 - mean) * concentration) spread of rates across groups."""

    mean: float
    concentration: float

    @property
    def a(self) -> float:
        return max(self.mean, 1e-12) * self.concentration

    @property
    def b(self) -> float:
        return max(1.0 - self.mean, 1e-12) * self.concentration


@dataclass(frozen=True)
class Background:
    """The honest rate of restricted devices that a group is tested against.

    `used` names the groups the rate was estimated from (all of them for beta-binomial);
    `prior` is set for the beta-binomial method, whose tests use the fitted spread.
    """

    rate: float
    method: BackgroundMethod
    used: tuple[str, ...]
    iterations: int = 0
    prior: BetaPrior | None = None


def fit_beta_binomial(groups: Sequence[GroupCount]) -> BetaPrior:
    """Fit a beta distribution of rates across groups by the method of moments.

    The mean is the pooled rate mu = sum(restricted) / sum(seen) (N = sum(seen), k groups). Each
    group's share has variance mu(1 - mu)(1 + (seen - 1) rho) / seen, with rho = 1 / (a + b + 1)
    the intra-group correlation; equating S = sum(seen * (share - mu)^2) to its expectation
    mu(1 - mu)[(k - 1) + rho (N - sum(seen^2) / N - (k - 1))] gives rho (Kleinman 1973). A rho
    at or below 0 (no spread beyond chance) is reported as a very tight prior.
    """
    used = [g for g in groups if g.seen > 0]
    seen = np.array([g.seen for g in used], dtype=np.float64)
    restricted = np.array([g.restricted for g in used], dtype=np.float64)
    total = float(seen.sum())
    if total == 0.0:
        return BetaPrior(0.0, _MAX_CONCENTRATION)
    mu = float(restricted.sum()) / total
    if mu in (0.0, 1.0) or len(used) < 2:
        return BetaPrior(mu, _MAX_CONCENTRATION)
    spread = float((seen * (restricted / seen - mu) ** 2).sum()) / (mu * (1.0 - mu))
    room = total - float((seen**2).sum()) / total - (len(used) - 1)
    rho = (spread - (len(used) - 1)) / room if room > 0 else 0.0
    if rho <= 0.0:
        return BetaPrior(mu, _MAX_CONCENTRATION)
    rho = min(rho, 1.0 - 1e-9)
    return BetaPrior(mu, min(_MAX_CONCENTRATION, 1.0 / rho - 1.0))


def _jeffreys_rate(groups: Sequence[GroupCount]) -> float:
    # Half a device added to the restricted and one to the seen, so that a clean background of
    # 0 out of 2,000 is not taken as exactly 0 (then a single device would be "infinitely"
    # significant). This is the mean of the Jeffreys Beta(1/2, 1/2) posterior.
    restricted = sum(g.restricted for g in groups)
    seen = sum(g.seen for g in groups)
    return (restricted + 0.5) / (seen + 1.0)


def background_iterated(groups: Sequence[GroupCount], *, level: float = 0.01) -> Background:
    """The rate among the groups that show no leak, by iterated trimming.

    Start from every seen group; estimate the rate from those in use; test every group against
    it with the exact binomial upper tail; keep in use only the groups whose p-value is at least
    `level`; repeat until the groups in use stop changing (at most 50 rounds). Dropping a group
    that leaks lowers the rate, which can only reveal more leaks, so the set shrinks until it
    settles; a group that leaks ten times more than another therefore no longer hides it.
    """
    if not 0.0 < level < 1.0:
        raise InvalidInput(f"the trimming level {level!r} is not in (0, 1)")
    seen = [g for g in groups if g.seen > 0]
    used = seen
    rate = _jeffreys_rate(used)
    iterations = 0
    for iterations in range(1, _MAX_ITERATIONS + 1):  # noqa: B007 - reported below
        kept = [g for g in seen if binomial_upper_tail(g.restricted, g.seen, rate) >= level]
        if not kept or [g.group for g in kept] == [g.group for g in used]:
            break
        used = kept
        rate = _jeffreys_rate(used)
    return Background(rate, "iterated", tuple(g.group for g in used), iterations)


def background_beta_binomial(groups: Sequence[GroupCount]) -> Background:
    """The mean of a beta-binomial fitted across all seen groups (`fit_beta_binomial`).

    Tests against it use the beta-binomial tail, which allows for honest variation between
    groups. Every group, leaking or not, enters the fit: a heavy leaker raises both the mean
    and the spread, which is why this is not the default (see docs/investigations.md).
    """
    prior = fit_beta_binomial(groups)
    used = tuple(g.group for g in groups if g.seen > 0)
    return Background(prior.mean, "beta-binomial", used, 1, prior)


def estimate_background(
    groups: Sequence[GroupCount], method: BackgroundMethod = "iterated", *, level: float = 0.01
) -> Background:
    """The background by the named method; see `background_iterated` for why it is default."""
    if method == "iterated":
        return background_iterated(groups, level=level)
    if method == "beta-binomial":
        return background_beta_binomial(groups)
    raise InvalidInput(f"unknown background method {method!r}; use one of {BACKGROUND_METHODS}")


def wilson_lower(restricted: int, seen: int, z: float = WILSON_Z) -> float:
    """Lower end of Wilson's score interval for a share: the smallest rate consistent with it.

    (p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n) with p = restricted / seen, n =
    seen (Wilson 1927). 0 when nothing is seen. A group of 8 with 1 restricted gets 0.0224.
    """
    if seen <= 0:
        return 0.0
    share = restricted / seen
    z2 = z * z
    centre = share + z2 / (2 * seen)
    margin = z * math.sqrt(share * (1 - share) / seen + z2 / (4 * seen * seen))
    return max(0.0, (centre - margin) / (1 + z2 / seen))


# --- ranking ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeakRow:
    """One group's line in the ranking; see docs/investigations.md for how to read it."""

    group: str
    devices: int
    seen: int
    restricted: int
    share: float
    expected: float
    p_value: float
    q_value: float
    shrunk: float
    wilson_low: float
    flagged: bool

    def to_json(self) -> dict[str, str | int | float | bool]:
        """The row as JSON-ready values, keys in the documented order."""
        return {
            "group": self.group,
            "devices": self.devices,
            "seen": self.seen,
            "restricted": self.restricted,
            "share": self.share,
            "expected": self.expected,
            "p_value": self.p_value,
            "q_value": self.q_value,
            "shrunk": self.shrunk,
            "wilson_low": self.wilson_low,
            "flagged": self.flagged,
        }


def rank(
    groups: Sequence[GroupCount],
    *,
    alpha: float = 0.01,
    min_restricted: int = 3,
    background: BackgroundMethod = "iterated",
    trim_level: float = 0.01,
) -> list[LeakRow]:
    """Every group tested against the robust background, strongest evidence first.

    p_value is the one-sided exact test of the group's restricted count against seen x
    background (binomial; beta-binomial when that background is chosen); q_value is its
    Benjamini-Hochberg adjustment over the groups with at least one device seen (unseen groups
    are listed with p = q = 1 and do not count); shrunk is the empirical Bayes posterior mean
    of the group's rate; flagged is q < alpha with at least `min_restricted` restricted devices.
    Sorted by q, then p, then shrunk (highest first), then name. No group, or no device seen:
    an empty list.
    """
    if not isinstance(alpha, int | float) or not 0.0 < alpha <= 1.0:
        raise InvalidInput(f"alpha {alpha!r} is not in (0, 1]")
    if isinstance(min_restricted, bool) or not isinstance(min_restricted, int):
        raise InvalidInput(f"min_restricted {min_restricted!r} must be a whole number")
    if min_restricted < 0:
        raise InvalidInput(f"min_restricted is negative ({min_restricted})")
    if background not in BACKGROUND_METHODS:
        raise InvalidInput(f"unknown background method {background!r}; use {BACKGROUND_METHODS}")
    for g in groups:
        if not isinstance(g, GroupCount):
            raise InvalidInput(f"{g!r} is not a GroupCount")
    names = [g.group for g in groups]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InvalidInput(f"group {duplicate!r} is listed twice")
    tested = [g for g in groups if g.seen > 0]
    if not tested:
        return []
    bg = estimate_background(groups, background, level=trim_level)
    # A prior at the concentration cap means no spread between groups: the beta-binomial is
    # then the binomial, whose tail stays exact where lgamma of 1e9 would not.
    if bg.prior is not None and bg.prior.concentration < _MAX_CONCENTRATION:
        p_values = [
            beta_binomial_upper_tail(g.restricted, g.seen, bg.prior.a, bg.prior.b) for g in tested
        ]
    else:
        p_values = [binomial_upper_tail(g.restricted, g.seen, bg.rate) for g in tested]
    q_values = dict(zip((g.group for g in tested), bh_q_values(p_values), strict=True))
    p_of = dict(zip((g.group for g in tested), p_values, strict=True))
    prior = bg.prior or fit_beta_binomial(groups)
    rows = []
    for g in groups:
        p, q = p_of.get(g.group, 1.0), q_values.get(g.group, 1.0)
        rows.append(
            LeakRow(
                group=g.group,
                devices=g.devices,
                seen=g.seen,
                restricted=g.restricted,
                share=g.restricted / g.seen if g.seen else 0.0,
                expected=g.seen * bg.rate,
                p_value=p,
                q_value=q,
                shrunk=(g.restricted + prior.a) / (g.seen + prior.a + prior.b),
                wilson_low=wilson_lower(g.restricted, g.seen),
                flagged=q < alpha and g.restricted >= min_restricted,
            )
        )
    rows.sort(key=lambda r: (r.q_value, r.p_value, -r.shrunk, r.group))
    return rows
