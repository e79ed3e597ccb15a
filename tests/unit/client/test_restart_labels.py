"""The SDK's restart labels are the ones the daemon's monitor reads."""

from __future__ import annotations

import pytest

from pycontainerd import errdefs
from pycontainerd.client import restart
from pycontainerd.restart import policy


def test_restart_labels_default_to_always_running() -> None:
    assert restart.restart_labels() == {
        "containerd.io/restart.status": "running",
        "containerd.io/restart.policy": "always",
    }


def test_restart_labels_with_policy_and_log_uri() -> None:
    labels = restart.restart_labels("on-failure:3", log_uri="file:///var/log/c.log")
    assert labels[policy.POLICY_LABEL] == "on-failure:3"
    assert labels[policy.LOG_URI_LABEL] == "file:///var/log/c.log"
    assert policy.should_restart(labels, 1)


def test_a_bad_policy_is_refused_before_it_reaches_the_daemon() -> None:
    with pytest.raises(errdefs.InvalidArgument):
        restart.restart_labels("sometimes")


def test_explicitly_stopped_and_no_restarts() -> None:
    stopped = {**restart.restart_labels(), **restart.explicitly_stopped_labels()}
    assert not policy.should_restart(stopped, 0)
    assert set(restart.no_restart_labels().values()) == {""}
    assert policy.STATUS_LABEL in restart.no_restart_labels()
