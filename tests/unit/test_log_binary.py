"""The logging-binary URI of a task's stdout as containerd's shim reads it."""

from __future__ import annotations

import pytest

from pycontainerd import errdefs
from pycontainerd.shim_v2.log_binary import binary_command, is_binary_uri


def test_schemes() -> None:
    assert is_binary_uri("binary:///usr/bin/logger")
    assert is_binary_uri("binary-v2:///usr/bin/logger?a=b")
    assert not is_binary_uri("/run/fifo/stdout")
    assert not is_binary_uri("file:///var/log/x")


def test_query_keys_and_first_values_become_arguments() -> None:
    argv = binary_command(
        "binary:///opt/nerdctl?_NERDCTL_INTERNAL_LOGGING=%2Fvar%2Flib%2Fn&x=1&x=2&flag"
    )
    assert argv == ["/opt/nerdctl", "_NERDCTL_INTERNAL_LOGGING", "/var/lib/n", "x", "1", "flag", ""]


def test_relative_path_is_invalid() -> None:
    with pytest.raises(errdefs.InvalidArgument):
        binary_command("binary://logger")
