"""Showing a pull or push as it goes: per-blob lines with bytes and speed.

On a terminal the lines are redrawn in place; otherwise a line is printed when
a blob changes state, and at most once per interval while it transfers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO

from ctr.output import binary_size
from pycontainerd.client.progress import ProgressEvent, Status

REDRAW_INTERVAL = 0.1
PLAIN_INTERVAL = 1.0
_ACTIVE = (Status.DOWNLOADING, Status.UPLOADING)
_NOT_TRANSFERRED = (Status.RESOLVING, Status.RESOLVED, Status.EXISTS)


@dataclass
class _Item:
    status: Status
    offset: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    printed_at: float = 0.0
    printed_status: Status | None = None


class ProgressView:
    """A progress callback for the SDK that draws to ``out``."""

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self._out = out
        self._tty = out.isatty() if tty is None else tty
        self._items: dict[str, _Item] = {}
        self._start = time.monotonic()
        self._drawn_lines = 0
        self._last_draw = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        item = self._items.get(event.key)
        if item is None:
            item = self._items[event.key] = _Item(event.status)
        if event.status in _ACTIVE and item.status not in _ACTIVE:
            item.started = time.monotonic()
        item.status, item.offset, item.total = event.status, event.offset, event.total
        if self._tty:
            self._redraw(force=False)
        else:
            self._print_plain(event.key, item)

    def _line(self, key: str, item: _Item) -> str:
        text = f"{key}: {item.status.value:<12}"
        if item.total:
            text += f" {binary_size(item.offset)}/{binary_size(item.total)}"
        if item.status in _ACTIVE:
            elapsed = max(time.monotonic() - item.started, 1e-3)
            text += f" ({binary_size(item.offset / elapsed)}/s)"
        return text

    def _print_plain(self, key: str, item: _Item) -> None:
        now = time.monotonic()
        changed = item.status != item.printed_status
        if not changed and now - item.printed_at < PLAIN_INTERVAL:
            return
        item.printed_status, item.printed_at = item.status, now
        self._out.write(self._line(key, item) + "\n")
        self._out.flush()

    def _redraw(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_INTERVAL:
            return
        self._last_draw = now
        lines = [self._line(key, item) for key, item in self._items.items()]
        lines.append(self._summary())
        up = f"\x1b[{self._drawn_lines}F" if self._drawn_lines else ""
        self._out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._out.flush()
        self._drawn_lines = len(lines)

    def _summary(self) -> str:
        elapsed = time.monotonic() - self._start
        total = sum(i.offset for i in self._items.values() if i.status not in _NOT_TRANSFERRED)
        speed = total / max(elapsed, 1e-3)
        return f"elapsed: {elapsed:.1f} s  total: {binary_size(total)} ({binary_size(speed)}/s)"

    def finish(self) -> None:
        if not self._items:
            return
        if self._tty:
            self._redraw(force=True)
        else:
            self._out.write(self._summary() + "\n")
            self._out.flush()
