"""Go durations in config settings (the restart monitor's interval, the GC scheduler's)."""

from __future__ import annotations

import pytest

from pycontainerd import errdefs
from pycontainerd.config import duration_seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("10s", 10.0),
        ("100ms", 0.1),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("500us", 0.0005),
        ("0", 0.0),
        (" 2s ", 2.0),
        (3, 3.0),
        (0.25, 0.25),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert duration_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "10", "1d", "s", "ten seconds", True, None, ["1s"]])
def test_bad_durations_are_refused(value: object) -> None:
    with pytest.raises(errdefs.InvalidArgument, match="is not a duration"):
        duration_seconds(value)
