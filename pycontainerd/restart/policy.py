"""Restart labels and policies, with containerd's names and decisions.

A container opts in with ``containerd.io/restart.status`` (the status it should
have: ``running`` or ``stopped``); ``containerd.io/restart.policy`` says when a
stopped task of a container meant to run is started again: ``always`` (also the
empty policy), ``unless-stopped``, ``on-failure[:N]`` (a non-zero exit, at most
N restarts when N is given) or ``no``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pycontainerd import errdefs

log = logging.getLogger(__name__)

STATUS_LABEL = "containerd.io/restart.status"
POLICY_LABEL = "containerd.io/restart.policy"
LOG_URI_LABEL = "containerd.io/restart.loguri"
COUNT_LABEL = "containerd.io/restart.count"
EXPLICITLY_STOPPED_LABEL = "containerd.io/restart.explicitly-stopped"
#: containerd 1.x's label, ignored since containerd 2.0 (a warning says so).
LOG_PATH_LABEL = "containerd.io/restart.logpath"

ALWAYS = "always"
UNLESS_STOPPED = "unless-stopped"
ON_FAILURE = "on-failure"
NO = "no"
POLICIES = (NO, ALWAYS, ON_FAILURE, UNLESS_STOPPED)


@dataclass(frozen=True)
class Policy:
    name: str
    maximum_retry_count: int = 0

    def __str__(self) -> str:
        if self.maximum_retry_count > 0:
            return f"{self.name}:{self.maximum_retry_count}"
        return self.name


def parse_policy(text: str) -> Policy:
    """A policy label's value; InvalidArgument for one containerd would refuse."""
    name, sep, count = text.partition(":")
    if name in ("", NO, ALWAYS, UNLESS_STOPPED):
        if sep:
            raise errdefs.InvalidArgument(
                f"restart policy {name!r} does not take a maximum retry count"
            )
        return Policy(name or ALWAYS)
    if name == ON_FAILURE:
        if not sep:
            return Policy(ON_FAILURE)
        retries = _go_atoi(count)
        if retries is None:
            raise errdefs.InvalidArgument(f"invalid maximum retry count {count!r}")
        return Policy(ON_FAILURE, retries)
    raise errdefs.InvalidArgument(
        f"restart policy {text!r} is not supported (use one of {', '.join(POLICIES)})"
    )


def _go_atoi(text: str) -> int | None:
    """Go's strconv.Atoi: optional sign and decimal digits only."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    return int(text)


def _go_parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, anything unparsable being false."""
    return text in ("1", "t", "T", "TRUE", "true", "True")


def explicitly_stopped(labels: Mapping[str, str]) -> bool:
    return _go_parse_bool(labels.get(EXPLICITLY_STOPPED_LABEL, ""))


def should_restart(labels: Mapping[str, str], exit_status: int) -> bool:
    """Whether a container meant to run, whose task is not running, is started again."""
    if explicitly_stopped(labels):
        return False
    try:
        policy = parse_policy(labels.get(POLICY_LABEL, ""))
    except errdefs.InvalidArgument as exc:
        log.error("restart policy of a container: %s", exc)
        return False
    if policy.name in (ALWAYS, UNLESS_STOPPED):
        return True
    if policy.name == ON_FAILURE:
        raw_count = labels.get(COUNT_LABEL, "")
        count = _go_atoi(raw_count) if raw_count else 0
        if count is None:
            log.error("restart count %r of a container is not a number", raw_count)
            return False
        limit = policy.maximum_retry_count
        return exit_status != 0 and (limit == 0 or count < limit)
    return False


def restart_count(labels: Mapping[str, str]) -> int:
    """The restarts so far (0 when unset or unreadable, as containerd counts)."""
    return _go_atoi(labels.get(COUNT_LABEL, "")) or 0
