"""containerd 2.x's own client integration tests, run against pycontainerd's socket.

The suite is containerd's ``integration/client`` package at the pinned
containerd version, built with ``go test -c`` (scripts/go-tools.txt). Its
images are public references fixed at compile time (``ghcr.io/containerd/
busybox:1.36``, ...): the test registry answers those names inside a network
namespace of this test's own (tests/support/public_registry.py), serving the
busybox test image under each of them.

The pass count is asserted; the tests that cannot pass here are named below
with their cause, and were measured against containerd 2.x itself on this
machine too (the issue note gives both counts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.images import push_busybox
from tests.support.public_registry import PublicRegistryNames
from tests.support.registry import TestRegistry

SUITE = "containerd2-client-tests"
TIMEOUT = "8m"

#: Images the suite names (containerd's integration/images), all served as busybox.
IMAGES = (
    ("containerd/busybox", "1.36"),
    ("containerd/alpine", "3.14.0"),
    ("pause", "3.10.2"),
    ("containerd/volume-copy-up", "2.2"),
    ("containerd/volume-ownership", "2.1"),
    ("containerd/nginx", "1.27.0"),
)
PUBLIC_NAMES = ("ghcr.io", "registry.k8s.io")

#: Tests that start or restart a containerd daemon of their own (the suite's
#: ``ctrd``), which ``-no-daemon`` does not have: they cannot run against any
#: daemon the suite did not start, containerd's included.
NEEDS_THE_SUITES_OWN_DAEMON = (
    "TestDaemonCustomCgroup",
    "TestDaemonReconnectsToShimIOPipesOnRestart",
    "TestDaemonRestart",
    "TestDaemonRestartWithRunningShim",
    "TestDaemonRuntimeRoot",
    "TestMigration",
    "TestRestartMonitor",
    "TestShimDoesNotLeakPipes",
    "TestShimOOMScore",
    "TestShimTraceContextPropagation",
)

#: Tests that hang here against containerd 2.x as much as against pycontainerd:
#: TestBindLowPortNonOpt SIGTERMs a busybox ``nc`` that is its container's PID 1
#: and has no handler, so the signal is ignored and the task never exits.
HANGS_ON_THIS_MACHINE = ("TestBindLowPortNonOpt",)

#: The fewest top-level tests that must pass: 78 passed in the last runs here
#: (containerd 2.4.2: 79 on the same machine, same images, same skips), less
#: two that depend on timing under load (TestContentClient's resume
#: timestamps, TestContainerExecLargeOutputWithTTY's last bytes).
EXPECTED_PASSES = 76


def _suite_binary() -> str:
    found = shutil.which(SUITE)
    if found is None:
        pytest.fail(f"{SUITE} is not built: run scripts/install.sh --test (scripts/go-tools.sh)")
    return found


@pytest.fixture
def served_names() -> Iterator[PublicRegistryNames]:
    with TestRegistry() as registry:
        for repo, tag in IMAGES:
            push_busybox(registry, repo, tag)
        with PublicRegistryNames(registry, PUBLIC_NAMES) as names:
            yield names


def _results(output: str) -> dict[str, str]:
    """Top-level test name -> PASS, FAIL or SKIP, from ``go test -v`` output."""
    return {
        name: result
        for result, name in re.findall(r"^--- (PASS|FAIL|SKIP): (\S+)", output, re.MULTILINE)
    }


def run_suite(
    served_names: PublicRegistryNames,
    workdir: Path,
    selection: list[str],
    go_timeout: str,
    timeout: float,
) -> str:
    """The suite's ``go test -v`` output against a fresh pycontainerd; ``selection``
    are the -test.run/-test.skip flags."""
    daemon = DaemonProcess(log_level="info").start()
    try:
        argv = [
            _suite_binary(), "-test.v", "-test.root", "-no-daemon", "-no-criu",
            "-address", str(daemon.address), *selection, "-test.timeout", go_timeout,
        ]  # fmt: skip
        completed = subprocess.run(
            served_names.argv(argv),
            capture_output=True,
            text=True,
            cwd=workdir,
            env={**os.environ, **served_names.env},
            timeout=timeout,
        )
    finally:
        daemon.cleanup()
    return completed.stdout + completed.stderr


@pytest.mark.timeout(12 * 60)
def test_containerd_client_integration_suite(served_names: PublicRegistryNames, tmp_path: Path):
    skip = "^(" + "|".join(NEEDS_THE_SUITES_OWN_DAEMON + HANGS_ON_THIS_MACHINE) + ")$"
    output = run_suite(served_names, tmp_path, ["-test.skip", skip], TIMEOUT, 10 * 60)
    (tmp_path / "suite.log").write_text(output)
    results = _results(output)
    passed = sorted(n for n, r in results.items() if r == "PASS")
    failed = sorted(n for n, r in results.items() if r == "FAIL")
    print(f"containerd client suite: {len(passed)} passed, {len(failed)} failed: {failed}")
    assert "panic: test timed out" not in output, output[-4000:]
    assert len(passed) >= EXPECTED_PASSES, (
        f"{len(passed)} passed (expected at least {EXPECTED_PASSES}); failed: {failed}\n"
        + output[-4000:]
    )
