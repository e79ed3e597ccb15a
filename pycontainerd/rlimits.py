"""Process limits set at start-up (cheap to import: every shim's `start` runs this)."""

from __future__ import annotations

import resource


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit, as Go programs do at start.

    The usual soft limit (1024) is a relic of select(2); the daemon holds a
    descriptor or more per stream and per shim connection, and a shim one per
    container's stdio. Returns the (soft, hard) limits now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):
            return soft, hard
    return hard, hard
