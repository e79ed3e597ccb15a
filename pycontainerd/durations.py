"""Go duration strings ("90s", "1h30m", "250ms"), as containerd's configs and ctr take them."""

from __future__ import annotations

import re

from pycontainerd.errdefs import InvalidArgument

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration (units required, except for a bare "0")."""
    if text == "0":
        return 0.0
    position, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise InvalidArgument(f"{text!r} is not a duration: use e.g. 250ms, 90s, 30m, 1h30m")
    return seconds
