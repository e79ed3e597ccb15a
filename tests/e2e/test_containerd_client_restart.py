"""containerd 2.x's TestContainerRestartPolicyAlways against pycontainerd's restart monitor.

The test (containerd's integration/client suite, see test_containerd_client_suite)
labels a container ``always``, kills its task and expects it running again after
12 s, the monitor's default 10 s interval; then it marks it explicitly stopped,
kills it again and expects it to stay stopped. The daemon runs its default config.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_containerd_client_suite import _results, run_suite, served_names
from tests.support.public_registry import PublicRegistryNames

pytestmark = pytest.mark.e2e

__all__ = ["served_names"]  # the fixture, shared with the whole-suite test

TEST = "TestContainerRestartPolicyAlways"


@pytest.mark.timeout(5 * 60)
def test_containerd_restart_policy_always(served_names: PublicRegistryNames, tmp_path: Path):
    output = run_suite(served_names, tmp_path, ["-test.run", f"^{TEST}$"], "3m", 4 * 60)
    assert _results(output).get(TEST) == "PASS", output[-4000:]
