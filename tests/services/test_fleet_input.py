"""Fleet files for `policy simulate --fleet`: a bad row is its own problem, never a crash."""

from __future__ import annotations

from regionlock.domain.errors import InvalidInput
from regionlock.services.policy_tools import read_fleet


def test_a_csv_row_with_more_cells_than_the_header_is_that_rows_problem() -> None:
    rows = list(read_fleet(["id,country\n", "a,IR,extra\n", "b,DE\n"], csv_format=True))
    assert isinstance(rows[0], InvalidInput) and "line 2" in rows[0].message
    assert rows[1] == {"id": "b", "country": "DE", "_line": 3}
