"""Printing like ctr: aligned columns, human sizes and ages, label lists, JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def print_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    padding: int = 1,
    out: TextIO | None = None,
) -> None:
    """Columns padded to their widest cell, like Go's tabwriter with space padding."""
    out = out or sys.stdout
    table = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [cell.ljust(width + padding) for cell, width in zip(row[:-1], widths, strict=False)]
        out.write("".join(cells) + row[-1] + "\n")


def human_size(size: float) -> str:
    """Decimal units with 4 significant digits: ``1.033MB`` (ctr content ls)."""
    unit = 0
    while size >= 1000 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_DECIMAL_UNITS[unit]}"


def binary_size(size: float) -> str:
    """Binary units with one decimal: ``1009.8 KiB`` (ctr images ls, progress)."""
    unit = 0
    while size >= 1024 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.1f} {_BINARY_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """Rough age wording as docker and ctr print it (``3 minutes``, ``About an hour``)."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole < 60:
        return "1 second" if whole == 1 else f"{whole} seconds"
    minutes = whole // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = round(seconds / 3600)
    steps = (
        (48, 1, "hours"),
        (24 * 14, 24, "days"),
        (24 * 60, 24 * 7, "weeks"),
        (24 * 730, 24 * 30, "months"),
    )
    if hours == 1:
        return "About an hour"
    for limit, per_unit, name in steps:
        if hours < limit:
            return f"{hours // per_unit} {name}"
    return f"{int(seconds // 3600) // (24 * 365)} years"


def age(when: datetime | None) -> str:
    if when is None:
        return "-"
    return human_duration((datetime.now(UTC) - when).total_seconds())


def labels_text(labels: Mapping[str, str]) -> str:
    """``k=v,k2=v2`` sorted by key, or ``-`` when there are none."""
    if not labels:
        return "-"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


def print_json(value: Any, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def add_format_option(parser: Any) -> None:
    """``--format table|json`` for a listing command."""
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format (default table)"
    )


def when(value: datetime | None) -> str:
    """An ISO time for JSON output ("" when unknown)."""
    return value.isoformat() if value is not None else ""
