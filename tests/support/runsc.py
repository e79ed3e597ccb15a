"""gVisor's runsc for the second-runtime tests, and wrappers that adapt a runtime to this host.

``runsc`` is not in Debian 12; ``scripts/fetch-runsc.sh`` downloads the next
release's static build into a cache (once) and prints its path. A wrapper script
is what ctr gets as ``--runc-binary``: it adds the flags this host needs
(runsc: no network stack of its own, no cgroups) in front of runc's command line
that our shim speaks.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path

from tests.support.fetched import fetch

#: Set to a runsc binary to use it instead of the fetched one.
RUNSC_ENV = "PYCONTAINERD_TEST_RUNSC"
#: What runsc needs on this host: the sandbox has no network of its own to set up
#: (that needs a veth in a netns), and the hybrid cgroup layout is not one it manages.
RUNSC_HOST_FLAGS = ("--network=none", "--ignore-cgroups")


def find_runsc() -> Path:
    """A runsc binary: $PYCONTAINERD_TEST_RUNSC, runsc on PATH, or fetched into the cache.

    Skips the calling test when the package registry has no runsc for this machine
    (a real limit); fails it on any other fetch error.
    """
    configured = os.environ.get(RUNSC_ENV) or shutil.which("runsc")
    if configured:
        return Path(configured)
    return fetch("fetch-runsc.sh")[-1]


def write_wrapper(path: Path, command: Sequence[str], comment: str = "") -> Path:
    """An executable shell script at `path` running `command` followed by its own arguments."""
    lines = ["#!/bin/sh"]
    if comment:
        lines += [f"# {line}" for line in comment.splitlines()]
    lines.append(f'exec {shlex.join(command)} "$@"')
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    return path


def runsc_wrapper(directory: Path, runsc: Path) -> Path:
    """A ``--runc-binary`` for ctr that runs `runsc` with the flags this host needs."""
    return write_wrapper(
        directory / "runsc-host",
        [str(runsc), *RUNSC_HOST_FLAGS],
        comment="runsc with no network stack and no cgroup management (see tests/support/runsc.py)",
    )


__all__ = ["RUNSC_HOST_FLAGS", "find_runsc", "runsc_wrapper", "write_wrapper"]
