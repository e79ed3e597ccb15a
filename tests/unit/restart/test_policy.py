"""Restart policies and decisions (containerd's core/runtime/restart rules)."""

from __future__ import annotations

import pytest

from pycontainerd import errdefs
from pycontainerd.restart import policy
from pycontainerd.restart.policy import (
    COUNT_LABEL,
    EXPLICITLY_STOPPED_LABEL,
    POLICY_LABEL,
    Policy,
    parse_policy,
    should_restart,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Policy("always")),
        ("always", Policy("always")),
        ("no", Policy("no")),
        ("on-failure", Policy("on-failure")),
        ("on-failure:10", Policy("on-failure", 10)),
        ("unless-stopped", Policy("unless-stopped")),
    ],
)
def test_policies_parse(text: str, expected: Policy) -> None:
    assert parse_policy(text) == expected


@pytest.mark.parametrize(
    "text", ["unknown", "always:3", "no:1", "unless-stopped:2", "on-failure:x"]
)
def test_bad_policies_are_refused(text: str) -> None:
    with pytest.raises(errdefs.InvalidArgument):
        parse_policy(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [("", "always"), ("on-failure", "on-failure"), ("on-failure:10", "on-failure:10")],
)
def test_policies_print_as_containerd_writes_them(text: str, shown: str) -> None:
    assert str(parse_policy(text)) == shown


@pytest.mark.parametrize(
    ("labels", "exit_status", "restart"),
    [
        ({POLICY_LABEL: "always"}, 0, True),
        ({POLICY_LABEL: "always"}, 137, True),
        ({}, 0, True),  # no policy label is "always"
        ({POLICY_LABEL: "no"}, 1, False),
        ({POLICY_LABEL: "bogus"}, 1, False),
        ({POLICY_LABEL: "on-failure:10", COUNT_LABEL: "1"}, 0, False),
        ({POLICY_LABEL: "on-failure:10"}, 1, True),
        ({POLICY_LABEL: "on-failure:10", COUNT_LABEL: "invalid"}, 1, False),
        ({POLICY_LABEL: "on-failure:10", COUNT_LABEL: "1"}, 1, True),
        ({POLICY_LABEL: "on-failure:3", COUNT_LABEL: "2"}, 1, True),
        ({POLICY_LABEL: "on-failure:3", COUNT_LABEL: "3"}, 1, False),
        ({POLICY_LABEL: "on-failure", COUNT_LABEL: "100"}, 1, True),  # no limit
        ({POLICY_LABEL: "unless-stopped"}, 0, True),
        ({POLICY_LABEL: "unless-stopped", EXPLICITLY_STOPPED_LABEL: "true"}, 0, False),
        ({POLICY_LABEL: "always", EXPLICITLY_STOPPED_LABEL: "1"}, 0, False),
        ({POLICY_LABEL: "always", EXPLICITLY_STOPPED_LABEL: "false"}, 0, True),
        ({POLICY_LABEL: "always", EXPLICITLY_STOPPED_LABEL: "yes"}, 0, True),  # not a Go bool
    ],
)
def test_restart_decisions(labels: dict[str, str], exit_status: int, restart: bool) -> None:
    assert should_restart(labels, exit_status) is restart


def test_restart_count_reads_the_label() -> None:
    assert policy.restart_count({}) == 0
    assert policy.restart_count({COUNT_LABEL: "4"}) == 4
    assert policy.restart_count({COUNT_LABEL: "x"}) == 0
