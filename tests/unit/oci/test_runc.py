"""Our specs are accepted by the real runc: run busybox in a throwaway bundle."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycontainerd.oci import (
    generate_spec,
    with_cpus,
    with_default_unix_devices,
    with_env,
    with_hostname,
    with_memory_limit,
    with_privileged,
    with_process_args,
    with_readonly_rootfs,
    with_rlimit,
    with_seccomp_default,
    with_user,
)

# crun is left out: on hybrid cgroup hosts whose v2 hierarchy holds a controller
# (here hugetlb) it refuses to run anything ("cgroups in hybrid mode not supported").
RUNTIMES = [name for name in ("runc",) if shutil.which(name)]
BUSYBOX = shutil.which("busybox")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _remove_cgroups(namespace: str) -> None:
    """Remove the empty cgroup directories runc left under /<namespace> (v1 and v2)."""
    for top in [CGROUP_ROOT / namespace, *CGROUP_ROOT.glob(f"*/{namespace}")]:
        if not top.is_dir():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):  # busy or not ours: leave it
                os.rmdir(dirpath)


class Bundle:
    def __init__(self, runtime: str, path: Path, namespace: str, container_id: str) -> None:
        self.runtime = runtime
        self.path = path
        self.namespace = namespace
        self.container_id = container_id
        self.state = path / "runc-state"
        self.rootfs = path / "rootfs"

    def run(self, *opts) -> subprocess.CompletedProcess[str]:
        spec = generate_spec(self.namespace, self.container_id, *opts)
        (self.path / "config.json").write_text(json.dumps(spec))
        return subprocess.run(
            [
                self.runtime,
                "--root",
                str(self.state),
                "run",
                "--bundle",
                str(self.path),
                self.container_id,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def cleanup(self) -> None:
        subprocess.run(
            [self.runtime, "--root", str(self.state), "delete", "--force", self.container_id],
            capture_output=True,
            timeout=60,
        )
        _remove_cgroups(self.namespace)


@pytest.fixture(params=RUNTIMES)
def bundle(
    request: pytest.FixtureRequest, tmp_path: Path, write_user_db: Callable[[Path], None]
) -> Iterator[Bundle]:
    suffix = uuid.uuid4().hex[:12]
    made = Bundle(request.param, tmp_path, f"pycontainerd-test-{suffix}", f"oci-spec-{suffix}")
    (made.rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, made.rootfs / "bin" / "busybox")
    write_user_db(made.rootfs)
    try:
        yield made
    finally:
        made.cleanup()


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"runtime failed ({result.returncode}): {result.stderr}"


def test_default_spec_runs(bundle: Bundle) -> None:
    _assert_ok(bundle.run(with_process_args("/bin/busybox", "true")))


def test_hardened_spec_runs_as_image_user(bundle: Bundle) -> None:
    script = "/bin/busybox id -u; /bin/busybox id -G; /bin/busybox hostname; echo $GREETING"
    result = bundle.run(
        with_process_args("/bin/busybox", "sh", "-c", script),
        with_user("app", bundle.rootfs),
        with_env(["GREETING=hello"]),
        with_hostname("spec-test"),
        with_readonly_rootfs,
        with_memory_limit(64 << 20),
        with_cpus(0.5),
        with_rlimit("RLIMIT_NOFILE", 512, 256),
        with_default_unix_devices,
        with_seccomp_default,
    )
    _assert_ok(result)
    assert result.stdout.split("\n")[:4] == ["1000", "1000 10 29", "spec-test", "hello"]


def test_privileged_spec_runs(bundle: Bundle) -> None:
    result = bundle.run(
        with_process_args("/bin/busybox", "sh", "-c", "/bin/busybox test -c /dev/null"),
        with_privileged,
    )
    _assert_ok(result)
