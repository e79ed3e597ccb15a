"""The daemon starts its own shim through the zygote, without the `start` command."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import socket
import sys
from pathlib import Path

import pytest
import test_shim_zygote as shared

import pycontainerd
from pycontainerd.runtime.own_shim import is_own_shim, start_through_zygote
from pycontainerd.shim_v2 import zygote
from pycontainerd.shim_v2.pool import LOCK_FILE, POOL_SIZE_ENV
from pycontainerd.shim_v2.start import SOCKET_DIR_ENV
from tests.support.procs import alive

# The zygote tests' fixtures: a short socket dir (its zygote retired after), shims killed after.
socket_dir = shared.socket_dir
shim_pids = shared.shim_pids
_zygotes_of, make_bundle = shared._zygotes_of, shared.make_bundle

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(pycontainerd.__file__)))


def _start_args(container_id: str) -> list[str]:
    return ["-namespace", "ns", "-address", "/test/c.sock", "-publish-binary", "/bin/true",
            "-id", container_id, "start"]  # fmt: skip


def _env(socket_dir: Path, marker: str) -> dict[str, str]:
    # The same package as this process, so that the zygote `start` forks serves us too.
    env = {**os.environ, SOCKET_DIR_ENV: str(socket_dir), "MARKER": marker, POOL_SIZE_ENV: "1"}
    env["PYTHONPATH"] = PACKAGE_ROOT
    env.pop("TTRPC_ADDRESS", None)
    return env


def _first_start(tmp_path: Path, socket_dir: Path, monkeypatch, shim_pids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Run the `start` command once, which leaves a zygote serving `socket_dir`."""
    monkeypatch.setenv("PYTHONPATH", PACKAGE_ROOT)
    bundle = make_bundle(tmp_path, "first")
    shared.start(bundle, socket_dir, "first", marker="first")
    shim_pids.append(int((bundle / "shim.pid").read_text()))
    assert len(_zygotes_of(socket_dir)) == 1


def test_our_shim_is_known_by_its_name() -> None:
    assert is_own_shim("/usr/local/bin/containerd-shim-pyrunc-v2")
    assert not is_own_shim("/usr/bin/containerd-shim-runc-v2")


def test_without_a_zygote_the_caller_runs_the_command(
    tmp_path: Path, socket_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = make_bundle(tmp_path, "c")
    with caplog.at_level(logging.INFO, logger="pycontainerd.runtime.own_shim"):
        address = asyncio.run(
            start_through_zygote(_start_args("c"), str(bundle), _env(socket_dir, ""))
        )
    assert address is None
    assert "started no shim: no zygote to ask" in caplog.text, "the daemon's log says why"
    assert _zygotes_of(socket_dir) == [], "the daemon never forks a zygote itself"
    assert [p.name for p in socket_dir.iterdir()] == [LOCK_FILE], (
        "no socket is left for the command"
    )


def test_the_zygote_forks_the_daemons_shim(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    _first_start(tmp_path, socket_dir, monkeypatch, shim_pids)
    # `start` forked the zygote while it held the placement lock: the zygote let go of it.
    lock = os.open(socket_dir / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if a zygote kept it
    finally:
        os.close(lock)
    bundle = make_bundle(tmp_path, "direct")
    env = _env(socket_dir, "direct")
    address = asyncio.run(start_through_zygote(_start_args("direct"), str(bundle), env))
    assert address is not None and address.startswith("unix://" + str(socket_dir))
    assert (bundle / "address").read_text() == address
    pid = int((bundle / "shim.pid").read_text())
    shim_pids.append(pid)
    shared._check_like_exec(pid, "direct", bundle, address, marker="direct")


def test_a_misfit_daemon_is_refused_without_retiring_the_zygote(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    _first_start(tmp_path, socket_dir, monkeypatch, shim_pids)
    (zygote_pid,) = _zygotes_of(socket_dir)
    request = zygote.fork_request(["-id", "x"], str(tmp_path), {}, may_retire=False)
    request["package"] = "/elsewhere/pycontainerd"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        pid, why_not = zygote.ask_zygote(str(socket_dir), request, listener.fileno())
    assert pid is None and why_not == "refused: another interpreter or package"
    assert alive(zygote_pid) and _zygotes_of(socket_dir) == [zygote_pid]

    bundle = make_bundle(tmp_path, "after")
    address = asyncio.run(
        start_through_zygote(_start_args("after"), str(bundle), _env(socket_dir, "after"))
    )
    assert address is not None
    shim_pids.append(int((bundle / "shim.pid").read_text()))
    # A shim just forked shows the zygote's command line until it takes its own.
    shared._wait_until(lambda: _zygotes_of(socket_dir) == [zygote_pid], "one zygote, the same")


def test_the_umask_is_read_without_changing_it() -> None:
    previous = os.umask(0o027)
    try:
        assert zygote.current_umask() == 0o027
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(previous)


def test_identity_compares_the_real_interpreter(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "python-link"
    link.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(link))
    assert zygote.code_identity()["python"] == os.path.realpath(sys.executable)
    assert json.dumps(zygote.code_identity())
