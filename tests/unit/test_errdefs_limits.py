"""Errors quoting long values stay within gRPC's status limit; running out of file
descriptors is RESOURCE_EXHAUSTED; the daemon and shims raise their open-files limit."""

from __future__ import annotations

import errno
import resource
import subprocess
import sys

from pycontainerd import errdefs
from pycontainerd.rlimits import raise_open_files_limit


def test_out_of_descriptors_is_resource_exhausted() -> None:
    for number in (errno.EMFILE, errno.ENFILE):
        assert errdefs.code_of(OSError(number, "x")) == errdefs.Code.RESOURCE_EXHAUSTED
    assert errdefs.code_of(OSError(errno.EIO, "x")) == errdefs.Code.UNKNOWN


def test_echo_cuts_long_values() -> None:
    assert errdefs.echo("short") == "'short'"
    cut = errdefs.echo("x" * 10_000)
    assert cut.startswith("'" + "x" * 100 + "'...") and "10000 characters" in cut


def test_status_messages_fit_the_status_limit() -> None:
    assert errdefs.status_message(errdefs.NotFound("plain")) == "plain: not found"
    assert errdefs.status_message(ValueError()) == "ValueError"
    for text in ("x" * 20_000, "é" * 10_000, "%" * 10_000):
        message = errdefs.status_message(errdefs.NotFound(text))
        encoded = sum(1 if " " <= c <= "~" and c != "%" else 3 * len(c.encode()) for c in message)
        assert encoded < 4200 and "more characters" in message


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = (
        "import resource; from pycontainerd.rlimits import raise_open_files_limit;"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    low = min(256, hard)

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    out = subprocess.run(
        [sys.executable, "-c", code], preexec_fn=lower, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"{(hard, hard)} {(hard, hard)}"
    assert raise_open_files_limit() == (hard, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    del soft
