"""Labels asking the daemon's restart monitor to keep a container running.

Pass them at creation (``client.new_container(..., labels=restart_labels())``)
or later (``await container.set_labels(restart_labels("on-failure:3"))``);
``no_restart_labels()`` given to ``set_labels`` removes them again. The policy
text is checked here as the daemon reads it.
"""

from __future__ import annotations

from pycontainerd.restart.policy import (
    COUNT_LABEL,
    EXPLICITLY_STOPPED_LABEL,
    LOG_URI_LABEL,
    POLICY_LABEL,
    STATUS_LABEL,
    Policy,
    parse_policy,
)

__all__ = [
    "COUNT_LABEL",
    "EXPLICITLY_STOPPED_LABEL",
    "LOG_URI_LABEL",
    "POLICY_LABEL",
    "STATUS_LABEL",
    "Policy",
    "explicitly_stopped_labels",
    "no_restart_labels",
    "parse_policy",
    "restart_labels",
]


def restart_labels(
    policy: str | Policy = "always", *, status: str = "running", log_uri: str = ""
) -> dict[str, str]:
    """The labels of a container the monitor keeps at ``status`` under ``policy``;
    restarted tasks send their output to ``log_uri`` (``file://``, ``binary://``), else nowhere."""
    if isinstance(policy, str):
        policy = parse_policy(policy)
    labels = {STATUS_LABEL: status, POLICY_LABEL: str(policy)}
    if log_uri:
        labels[LOG_URI_LABEL] = log_uri
    return labels


def explicitly_stopped_labels(stopped: bool = True) -> dict[str, str]:
    """Mark a container stopped on purpose: the monitor leaves its task alone."""
    return {EXPLICITLY_STOPPED_LABEL: "true" if stopped else "false"}


def no_restart_labels() -> dict[str, str]:
    """For ``set_labels``: remove the status, policy and log URI labels (containerd's
    WithNoRestarts)."""
    return {STATUS_LABEL: "", POLICY_LABEL: "", LOG_URI_LABEL: ""}
