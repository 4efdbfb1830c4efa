"""Synthetic fleets for the fleet simulator and the end-to-end demo: pure, seeded data.

`generate_fleet(FleetSpec(...))` gives the devices (import records plus ground truth), `csv_lines`
their import file, and `day_plan(device, day, spec)` where each device really is on a day with
the `signals` of its check-in. No network, no database, no clock: the same spec always gives the
same bytes. See `fleet.py` for the scenario and `places.py` for the real-world tables.
"""

from regionlock.sim.fleet import (
    DayPlan,
    FleetSpec,
    Profile,
    SimDevice,
    csv_lines,
    day_plan,
    expected_restricted_days,
    generate_fleet,
    summary,
)

__all__ = [
    "DayPlan",
    "FleetSpec",
    "Profile",
    "SimDevice",
    "csv_lines",
    "day_plan",
    "expected_restricted_days",
    "generate_fleet",
    "summary",
]
