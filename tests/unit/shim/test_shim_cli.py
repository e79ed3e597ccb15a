"""The shim binary's `start` and `delete` actions, as containerd runs them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.shim_v2.options import RuntimeOptions, write_options
from pycontainerd.shim_v2.pool import LOCK_FILE
from pycontainerd.shim_v2.zygote import LOCK_NAME, SOCKET_NAME
from pycontainerd.ttrpc import ServiceStub, TtrpcClient
from tests.support.procs import exists

TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Socket paths must stay under 108 bytes: a short directory, not tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="shim-s-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def shim(
    bundle: Path, socket_dir: Path, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "PYCONTAINERD_SHIM_SOCKET_DIR": str(socket_dir),
        "PYCONTAINERD_SHIM_POOL_IDLE": "0",
    }
    env.pop("TTRPC_ADDRESS", None)
    argv = [sys.executable, "-m", "pycontainerd.shim_v2.main", "-namespace", "ns",
            "-address", "/test/c.sock", "-publish-binary", "/bin/true", *args]  # fmt: skip
    return subprocess.run(argv, cwd=bundle, input=stdin, capture_output=True, timeout=30, env=env)


def make_bundle(base: Path, name: str, group: str = "") -> Path:
    bundle = base / name
    bundle.mkdir()
    annotations = {"io.containerd.runc.v2.group": group} if group else {}
    (bundle / "config.json").write_text(json.dumps({"annotations": annotations}))
    return bundle


async def _call(address: str, method: str, request):  # type: ignore[no-untyped-def]
    async with await TtrpcClient.connect(address, timeout=10) as client:
        return await getattr(ServiceStub(client, TASK_SERVICE), method)(request, timeout=10)


def test_start_serves_and_groups_share_a_shim(tmp_path: Path, socket_dir: Path) -> None:
    first = make_bundle(tmp_path, "c1", group="g")
    second = make_bundle(tmp_path, "c2", group="g")
    alone = make_bundle(tmp_path, "c3")
    pids: list[int] = []
    try:
        result = shim(first, socket_dir, "-id", "c1", "start", stdin=b"\x0a\x00")
        assert result.returncode == 0, result.stderr
        address = result.stdout.decode()
        assert address.startswith("unix://" + str(socket_dir)) and result.stderr == b""
        assert (first / "address").read_text() == address
        pid = int((first / "shim.pid").read_text())
        pids.append(pid)

        connected = asyncio.run(_call(address, "Connect", shim_pb2.ConnectRequest(id="c1")))
        assert (connected.shim_pid, connected.task_pid) == (pid, 0)

        grouped = shim(second, socket_dir, "-id", "c2", "start")
        assert grouped.stdout.decode() == address
        assert int((second / "shim.pid").read_text()) == pid

        other = shim(alone, socket_dir, "-id", "c3", "start")
        assert other.returncode == 0 and other.stdout.decode() != address
        pids.append(int((alone / "shim.pid").read_text()))

        # Each placed container is let go of (never created here, as after a failed create).
        for running, task_id in ((address, "c1"), (address, "c2"), (other.stdout.decode(), "c3")):
            asyncio.run(_call(running, "Shutdown", shim_pb2.ShutdownRequest(id=task_id)))
        deadline = time.monotonic() + 10
        while any(exists(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(exists(p) for p in pids), "shim did not exit after Shutdown"
        # The shims leave nothing behind; the zygote its socket and lock.
        assert sorted(p.name for p in socket_dir.iterdir()) == [LOCK_FILE, SOCKET_NAME, LOCK_NAME]
    finally:
        for pid in pids:
            if exists(pid):
                os.kill(pid, signal.SIGKILL)


def test_delete_reports_a_killed_init(tmp_path: Path, socket_dir: Path) -> None:
    bundle = make_bundle(tmp_path, "dead")
    fake = tmp_path / "fake-runc"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/calls\n')
    fake.chmod(0o755)
    write_options(str(bundle), RuntimeOptions(binary_name=str(fake), root="/some/root"))
    (bundle / "init.pid").write_text("4242")
    result = shim(bundle, socket_dir, "-id", "dead", "-bundle", str(bundle), "delete")
    assert result.returncode == 0, result.stderr
    response = shim_pb2.DeleteResponse.FromString(result.stdout)
    assert (response.pid, response.exit_status) == (4242, 137)
    assert response.exited_at.seconds > 0
    assert (tmp_path / "calls").read_text().split()[-3:] == ["delete", "--force", "dead"]


def test_bad_invocations_fail_with_a_message(tmp_path: Path, socket_dir: Path) -> None:
    bundle = make_bundle(tmp_path, "b")
    env = {
        **os.environ,
        "PYCONTAINERD_SHIM_SOCKET_DIR": str(socket_dir),
        "PYCONTAINERD_SHIM_POOL_IDLE": "0",
    }
    no_namespace = subprocess.run(
        [sys.executable, "-m", "pycontainerd.shim_v2.main", "-id", "x", "start"],
        cwd=bundle, capture_output=True, env=env, timeout=30,
    )  # fmt: skip
    assert no_namespace.returncode == 1 and b"namespace cannot be empty" in no_namespace.stderr
    unknown = shim(bundle, socket_dir, "-id", "x", "frobnicate")
    assert unknown.returncode == 1 and b"unknown action" in unknown.stderr
