"""Second OCI runtimes under our Python shim, chosen with `ctr run --runc-binary`.

gVisor's runsc (fetched by scripts/fetch-runsc.sh) runs through a wrapper that
adds ``--network=none --ignore-cgroups``. Debian's crun 1.8 refuses a hybrid
cgroup layout whose v2 hierarchy holds a controller; its wrapper runs it in a
private mount namespace without the v2 hierarchy, where crun sees the legacy
(v1) layout, which it supports.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ctr_env import CtrRunEnv, ctr_run_env
from tests.support.daemon import DaemonProcess
from tests.support.runsc import find_runsc, runsc_wrapper, write_wrapper
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

CGROUP_V2_IN_HYBRID = Path("/sys/fs/cgroup/unified")
CRUN_HYBRID_REFUSAL = "cgroups in hybrid mode not supported"


@pytest.fixture(scope="module")
def runsc() -> Path:
    return find_runsc()


@pytest.fixture
def env(daemon: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(daemon, busybox_pushed.ref) as run_env:
        yield run_env


def _crun() -> str:
    crun = shutil.which("crun")
    if crun is None:
        pytest.fail("crun is not installed: apt-get install crun (scripts/install.sh --test)")
    return crun


def hybrid_with_v2_controllers() -> bool:
    """The layout crun 1.8 refuses: v1 controllers plus a v2 hierarchy holding some."""
    controllers = CGROUP_V2_IN_HYBRID / "cgroup.controllers"
    return controllers.exists() and controllers.read_text().strip() != ""


def crun_wrapper(directory: Path, crun: str) -> Path:
    """crun as-is, or on a hybrid host in a mount namespace without the v2 hierarchy."""
    if not hybrid_with_v2_controllers():
        return write_wrapper(directory / "crun-host", [crun])
    hide_v2 = f'umount -l {CGROUP_V2_IN_HYBRID} && exec "$0" "$@"'
    return write_wrapper(
        directory / "crun-host",
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", hide_v2, crun],
        comment="crun sees a legacy (v1) cgroup layout: the hybrid one it refuses, minus v2",
    )


def check_runtime_lifecycle(env: CtrRunEnv, runtime: Path, image: str) -> None:
    """run --rm with output and exit codes, then run -d, exec, ps, pause/resume, kill, rm."""
    binary = ("--runc-binary", str(runtime))
    hello = env.run("--rm", *binary, image, "once", "echo", "hello")
    assert (hello.returncode, hello.stdout) == (0, b"hello\n"), hello.stderr
    failed = env.run("--rm", *binary, image, "fails", "sh", "-c", "echo out; exit 3")
    assert (failed.returncode, failed.stdout) == (3, b"out\n"), failed.stderr
    assert env.containers() == []

    started = env.run("-d", *binary, image, "bg", "sleep", "1000")
    assert started.returncode == 0, started.stderr
    assert env.tasks()["bg"][1] == "RUNNING"
    assert env.exec("bg", "e1", "sh", "-c", "echo from-exec; echo err >&2") == "from-exec\n"
    assert env.ctr.ok("tasks", "ps", "bg").count("\n") >= 2
    metrics = dict(
        line.split(maxsplit=1) for line in env.ctr.ok("tasks", "metrics", "bg").splitlines()[3:]
    )
    assert int(metrics["pids.current"]) >= 1 and int(metrics["memory.usage_in_bytes"]) > 0
    env.ctr.ok("tasks", "pause", "bg")
    assert env.tasks()["bg"][1] == "PAUSED"
    env.ctr.ok("tasks", "resume", "bg")
    assert env.tasks()["bg"][1] == "RUNNING"

    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", "bg")
    wait_for(lambda: env.tasks()["bg"][1] == "STOPPED", what="the killed task to stop")
    removed = env.ctr.run("tasks", "rm", "bg")
    assert removed.returncode == 0, removed.stderr
    assert f"exit code {128 + signal.SIGKILL}" in removed.stderr.decode()
    env.ctr.ok("containers", "rm", "bg")
    env.assert_clean("once", "fails", "bg")
    assert env.runtime_state() == []
    env.assert_no_shims()


def test_runsc_runs_containers_through_our_shim(
    env: CtrRunEnv, runsc: Path, busybox_pushed, tmp_path: Path
) -> None:
    wrapper = runsc_wrapper(tmp_path, runsc)
    check_runtime_lifecycle(env, wrapper, busybox_pushed.ref)


def test_runsc_runs_a_gvisor_kernel(
    env: CtrRunEnv, runsc: Path, busybox_pushed, tmp_path: Path
) -> None:
    """The container really is in gVisor: its kernel log is gVisor's, not the host's."""
    wrapper = runsc_wrapper(tmp_path, runsc)
    result = env.run("--rm", "--runc-binary", str(wrapper), busybox_pushed.ref, "k", "uname", "-v")
    host = Path("/proc/sys/kernel/version").read_text().strip()
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() != host


def test_crun_runs_containers_through_our_shim(
    env: CtrRunEnv, busybox_pushed, tmp_path: Path
) -> None:
    wrapper = crun_wrapper(tmp_path, _crun())
    check_runtime_lifecycle(env, wrapper, busybox_pushed.ref)


def test_crun_refusing_the_cgroup_layout_is_a_clear_error(env: CtrRunEnv, busybox_pushed) -> None:
    if not hybrid_with_v2_controllers():
        pytest.skip("this host's cgroup layout is one crun accepts: there is no refusal to see")
    result = env.run("--rm", "--runc-binary", _crun(), busybox_pushed.ref, "refused", "true")
    message = result.stderr.decode()
    assert result.returncode != 0
    assert CRUN_HYBRID_REFUSAL in message and "failed precondition" in message, message
    assert env.containers() == []
    env.assert_clean("refused")
