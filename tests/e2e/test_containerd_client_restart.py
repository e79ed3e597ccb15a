"""containerd 2.x's TestContainerRestartPolicyAlways against pycontainerd's restart monitor.

The test (containerd's integration/client suite, see test_containerd_client_suite)
labels a container ``always``, kills its task and expects it running again after
12 s, the monitor's default 10 s interval; then it marks it explicitly stopped,
kills it again and expects it to stay stopped. The daemon runs its default config.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_containerd_client_suite import _results, _suite_binary, served_names
from tests.support.daemon import DaemonProcess
from tests.support.public_registry import PublicRegistryNames

pytestmark = pytest.mark.e2e

__all__ = ["served_names"]  # the fixture, shared with the whole-suite test

TEST = "TestContainerRestartPolicyAlways"


@pytest.mark.timeout(5 * 60)
def test_containerd_restart_policy_always(served_names: PublicRegistryNames, tmp_path: Path):
    binary = _suite_binary()
    daemon = DaemonProcess(log_level="info").start()
    try:
        argv = [
            binary, "-test.v", "-test.root", "-no-daemon", "-no-criu",
            "-address", str(daemon.address), "-test.run", f"^{TEST}$", "-test.timeout", "3m",
        ]  # fmt: skip
        completed = subprocess.run(
            served_names.argv(argv),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **served_names.env},
            timeout=4 * 60,
        )
    finally:
        daemon.cleanup()
    output = completed.stdout + completed.stderr
    assert _results(output).get(TEST) == "PASS", output[-4000:]
