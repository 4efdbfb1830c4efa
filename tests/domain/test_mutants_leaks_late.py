"""Found by mutation testing (docs/test-quality.md, "`domain/leaks.py` and `domain/ranges.py`",
the two trimming-round mutants left then): `background_iterated` trims for at most 50 rounds.
No fleet in the other tests needs more than a few rounds, so 48 or 51 rounds went unnoticed;
the fleet below needs one round for each of its 51 leaking groups."""

from __future__ import annotations

import pytest
from scipy import stats

from regionlock.domain.leaks import Background, GroupCount, background_iterated

# 100,000 devices seen in each group. "base" leaks nothing (1 %); each of g01 to g51 is
# flagged only against a rate that still holds it, and once it is dropped the lower rate
# exposes the one below it: iterated trimming drops g51 in round 1, g50 in round 2, and so on,
# one group a round (checked against scipy below). Built greedily: each group restricted just
# enough to lift the pooled rate past the previous group's flagging threshold.
SEEN = 100_000
LEAKING = [
    1155, 1196, 1224, 1245, 1261, 1275, 1287, 1298, 1307, 1316,
    1324, 1331, 1338, 1344, 1350, 1355, 1360, 1365, 1370, 1374,
    1378, 1382, 1386, 1390, 1393, 1397, 1400, 1403, 1406, 1409,
    1412, 1415, 1417, 1420, 1422, 1425, 1427, 1430, 1432, 1434,
    1436, 1438, 1441, 1443, 1445, 1447, 1448, 1450, 1452, 1454,
    1456,
]  # fmt: skip
RESTRICTED = {"base": 1000, **{f"g{j:02d}": r for j, r in enumerate(LEAKING, start=1)}}
LADDER = [GroupCount(name, SEEN, SEEN, r) for name, r in RESTRICTED.items()]


def pooled(groups: list[GroupCount]) -> float:
    """The pooled rate as `_jeffreys_rate` defines it: half a device restricted, one seen."""
    return (sum(g.restricted for g in groups) + 0.5) / (sum(g.seen for g in groups) + 1.0)


def p_value(g: GroupCount, rate: float) -> float:
    return float(stats.binom.sf(g.restricted - 1, g.seen, rate))


def test_the_ladder_drops_exactly_one_group_a_round() -> None:
    # With base and g01..gj in use, gj is below the 1 % level and g(j-1) is not: scipy's tail,
    # not the module's, so the fleet is what the tests below say it is.
    for j in range(1, len(LADDER)):
        rate = pooled(LADDER[: j + 1])
        assert p_value(LADDER[j], rate) < 0.01
        assert p_value(LADDER[j - 1], rate) >= 0.01
    assert p_value(LADDER[1], pooled(LADDER[:1])) < 0.01  # base alone exposes g01 too


@pytest.mark.parametrize("leaking", [48, 49])
def test_trimming_that_settles_within_50_rounds_runs_to_the_end(leaking: int) -> None:
    # `leaking` rounds drop one group each; the next round keeps the same: it has settled.
    fleet = LADDER[: leaking + 1]
    assert background_iterated(fleet) == Background(
        pooled(LADDER[:1]), "iterated", ("base",), leaking + 1
    )


def test_trimming_stops_after_50_rounds_whether_or_not_it_has_settled() -> None:
    # 51 leaking groups need 51 rounds of dropping and a 52nd to see it settle: the 50th
    # round's set is returned, g01 still in use, and its rate.
    assert background_iterated(LADDER) == Background(
        pooled(LADDER[:2]), "iterated", ("base", "g01"), 50
    )
    # One group fewer: 50 rounds of dropping leave base alone, not yet seen to be settled.
    assert background_iterated(LADDER[:51]) == Background(
        pooled(LADDER[:1]), "iterated", ("base",), 50
    )
