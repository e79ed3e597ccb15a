"""User namespaces with the real ctr: ``ctr run --uidmap/--gidmap``.

The container's root is host uid/gid 100000; its bundle must be reachable by
that group, as containerd prepares it, for both a writable and a read-only
rootfs. ctr chowns the snapshot for the mapped root (WithRemappedSnapshot).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ctr_env import CtrRunEnv, ctr_run_env
from tests.support.daemon import DaemonProcess
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

HOST_ROOT = 100000
MAPPING = (f"--uidmap=0:{HOST_ROOT}:65536", f"--gidmap=0:{HOST_ROOT}:65536")


@pytest.fixture
def env(daemon: DaemonProcess, busybox_pushed) -> Iterator[CtrRunEnv]:  # type: ignore[no-untyped-def]
    with ctr_run_env(daemon, busybox_pushed.ref) as run_env:
        yield run_env


def _host_ids(pid: int) -> tuple[int, int]:
    """The real uid and gid of a process as the host sees them."""
    fields = {
        line.split(":")[0]: line.split()[1]
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith(("Uid:", "Gid:"))
    }
    return int(fields["Uid"]), int(fields["Gid"])


@pytest.mark.parametrize("rootfs", ["writable", "read-only"])
def test_root_inside_is_the_mapped_uid_outside(env: CtrRunEnv, busybox_pushed, rootfs: str) -> None:  # type: ignore[no-untyped-def]
    read_only = ("--read-only",) if rootfs == "read-only" else ()
    name = f"userns-{rootfs}"
    out = env.ctr.ok(
        *env.run_args("--rm", *read_only, *MAPPING, busybox_pushed.ref, name, "sh", "-c", "id -u; id -g")
    )  # fmt: skip
    assert out.split() == ["0", "0"]
    env.ctr.ok(*env.run_args("-d", *read_only, *MAPPING, busybox_pushed.ref, name, "sleep", "60"))
    pid = env.tasks()[name][0]
    assert _host_ids(pid) == (HOST_ROOT, HOST_ROOT)
    bundle = env.bundle(name)
    assert (bundle.stat().st_mode & 0o777, bundle.stat().st_gid) == (0o710, HOST_ROOT)
    env.ctr.ok("tasks", "kill", "-s", "SIGKILL", name)
    wait_for(lambda: env.tasks().get(name, (0, "STOPPED"))[1] == "STOPPED")
    env.ctr.ok("tasks", "rm", name)
    env.ctr.ok("containers", "rm", name)
    env.assert_clean(name)


@pytest.mark.parametrize("remap", ["chowned-snapshot", "remap-labels"])
def test_writes_in_a_writable_remapped_rootfs(env: CtrRunEnv, busybox_pushed, remap: str) -> None:  # type: ignore[no-untyped-def]
    """ctr chowns a snapshot of its own, or with --remap-labels asks the snapshotter.

    Our overlayfs does with the labels what containerd's does without idmapped
    mounts: the snapshot's own top directory belongs to the mapped root.
    """
    labels = ("--remap-labels",) if remap == "remap-labels" else ()
    script = "touch /made && ls -ln /made && cat /proc/self/uid_map"
    args = ("--rm", *labels, *MAPPING, busybox_pushed.ref, f"w-{remap}", "sh", "-c", script)
    out = env.ctr.ok(*env.run_args(*args)).split()
    assert out[2:4] == ["0", "0"], out  # owned by root inside
    assert out[-3:] == ["0", str(HOST_ROOT), "65536"], out
