"""`ctr run --log-uri binary://...`: the shim hands a task's output to a logging program.

This is how nerdctl's `run -d` logs: containerd's shim starts the program named
by the URI with the query as arguments, the output pipes as descriptors 3 and 4
and a readiness pipe as descriptor 5. The test's program is a shell script that
records its arguments, environment and both streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ctr_env import CtrRunEnv, ctr_run_env
from tests.support.daemon import DaemonProcess
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

LOGGER = """#!/bin/sh
# Arguments: <dir> <value of the query key "dir"> ("" here).
out="$1"
echo "$@" > "$out/args"
env > "$out/env"
exec 5>&-  # ready (before any child could inherit the pipe)
cat <&4 > "$out/stderr" &
cat <&3 > "$out/stdout.part"
wait
mv "$out/stdout.part" "$out/stdout"
"""


@pytest.fixture
def env(daemon: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(daemon, busybox_pushed.ref) as run_env:
        yield run_env


def _logger(tmp_path: Path) -> Path:
    script = tmp_path / "logger.sh"
    script.write_text(LOGGER)
    script.chmod(0o755)
    return script


def test_binary_log_uri_gets_both_streams_args_and_environment(
    env: CtrRunEnv,
    busybox_pushed,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    logger = _logger(tmp_path)
    uri = f"binary://{logger}?{tmp_path}"
    result = env.run(
        "-d", "--log-uri", uri, busybox_pushed.ref, "logged",
        "sh", "-c", "echo to-out; echo to-err >&2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    # The program reads end of file once the task's output closes, and finishes.
    wait_for(lambda: (tmp_path / "stdout").exists(), "the logger to finish", timeout=20)
    assert (tmp_path / "stdout").read_text() == "to-out\n"
    assert (tmp_path / "stderr").read_text() == "to-err\n"
    assert (tmp_path / "args").read_text().split() == [str(tmp_path)]
    environment = dict(
        line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines() if "=" in line
    )
    assert environment["CONTAINER_ID"] == "logged"
    assert environment["CONTAINER_NAMESPACE"] == env.namespace
    env.ctr.ok("tasks", "delete", "logged")
    env.ctr.ok("containers", "delete", "logged")


def test_binary_v2_logger_that_never_says_ready_fails_the_create(
    env: CtrRunEnv,
    busybox_pushed,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    silent = tmp_path / "silent.sh"
    silent.write_text("#!/bin/sh\nexit 0\n")
    silent.chmod(0o755)
    result = env.run(
        "-d", "--log-uri", f"binary-v2://{silent}", busybox_pushed.ref, "nolog", "true"
    )
    assert result.returncode != 0
    assert "did not say it was ready" in result.stderr.decode()
    assert "nolog" not in env.tasks()
