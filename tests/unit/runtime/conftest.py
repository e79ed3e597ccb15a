"""Fixtures for the runtime tests: a fake shim binary and a task manager around it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime_testlib import FakeShim

from pycontainerd.events.exchange import Exchange
from pycontainerd.runtime.bundle import BundleStore
from pycontainerd.runtime.manager import TaskManager
from pycontainerd.runtime.shim_binary import DaemonAddresses

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake_shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeShim]:
    # Socket paths are limited to 108 bytes: keep them in a short temp dir.
    sockets = Path(tempfile.mkdtemp(prefix="rt-"))
    binary = tmp_path / "containerd-shim-fake-v1"
    script = Path(__file__).with_name("fake_shim.py")
    binary.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    binary.chmod(0o755)
    monkeypatch.setenv("FAKE_SHIM_SOCKET_DIR", str(sockets))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    try:
        yield FakeShim(binary, sockets)
    finally:
        for pid_file in sockets.glob("*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
        shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture
def make_manager(tmp_path: Path, fake_shim: FakeShim) -> Callable[[Exchange], TaskManager]:
    """A manager (to build inside the running loop) whose runtime maps to the fake shim."""

    def make(exchange: Exchange) -> TaskManager:
        return TaskManager(
            BundleStore(state=tmp_path / "state", root=tmp_path / "root"),
            {"io.containerd.fake.v1": str(fake_shim.binary)},
            DaemonAddresses(
                grpc=str(tmp_path / "d.sock"),
                ttrpc=str(tmp_path / "d.sock.ttrpc"),
                publish_binary=sys.executable,
            ),
            exchange,
        )

    return make
