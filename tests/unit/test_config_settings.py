"""Numeric plugin settings are checked against their bounds, with the setting named."""

from __future__ import annotations

import pytest

from pycontainerd.config import number_setting
from pycontainerd.errdefs import InvalidArgument

URI = "io.containerd.gc.v1.scheduler"


@pytest.mark.parametrize("value", [0, 0.02, 0.5, 1])
def test_values_within_bounds_are_floats(value: float) -> None:
    assert number_setting(URI, {"x": value}, "x", minimum=0, maximum=1) == float(value)


@pytest.mark.parametrize("value", [-0.1, 0.6, "0.1", True, None])
def test_values_out_of_bounds_or_not_numbers_are_refused(value: object) -> None:
    with pytest.raises(InvalidArgument, match=r'plugins\."io\.containerd\.gc\.v1\.scheduler"\.x'):
        number_setting(URI, {"x": value}, "x", minimum=0, maximum=0.5)


def test_without_a_maximum_only_the_minimum_bounds() -> None:
    assert number_setting(URI, {"n": 10_000}, "n", minimum=1) == 10_000.0
    with pytest.raises(InvalidArgument, match=">= 1"):
        number_setting(URI, {"n": 0}, "n", minimum=1)
