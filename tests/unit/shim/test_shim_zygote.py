"""Shims forked by the zygote look and behave like shims exec'ed by `start`."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycontainerd.api.runtime.v2.task import shim_pb2
from pycontainerd.shim_v2 import zygote
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.shim_v2.pool import LOCK_FILE, POOL_SIZE_ENV
from pycontainerd.shim_v2.zygote import LOCK_NAME, SOCKET_NAME
from pycontainerd.shim_v2.zygote_server import _still_current, process_context
from pycontainerd.ttrpc import ServiceStub, TtrpcClient
from tests.support.procs import alive, all_pids, command_line

TASK_SERVICE = shim_pb2.DESCRIPTOR.services_by_name["Task"]
ZYGOTE_MODULE = "pycontainerd.shim_v2.zygote"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _zygotes_of(socket_dir: Path) -> list[int]:
    wanted = ["-m", ZYGOTE_MODULE, str(socket_dir)]
    return [pid for pid in all_pids() if command_line(pid)[1:] == wanted]


def _wait_until(check, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short: socket paths must stay under 108 bytes. Removing it retires the zygote.
    directory = Path(tempfile.mkdtemp(prefix="zyg-"))
    try:
        yield directory
    finally:
        zygotes = _zygotes_of(directory)
        shutil.rmtree(directory, ignore_errors=True)
        for pid in zygotes:
            try:
                _wait_until(lambda pid=pid: not alive(pid), "the zygote to retire", 5)
            finally:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def shim_pids() -> Iterator[list[int]]:
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def start(bundle: Path, socket_dir: Path, container_id: str, marker: str) -> str:
    env = {
        **os.environ,
        "PYCONTAINERD_SHIM_SOCKET_DIR": str(socket_dir),
        "MARKER": marker,
        POOL_SIZE_ENV: "1",  # a shim per container, to see several forked
    }
    env.pop("TTRPC_ADDRESS", None)
    argv = [sys.executable, "-m", "pycontainerd.shim_v2.main", "-namespace", "ns",
            "-address", "/test/c.sock", "-publish-binary", "/bin/true", "-id", container_id,
            "start"]  # fmt: skip
    result = subprocess.run(argv, cwd=bundle, capture_output=True, timeout=30, env=env)
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    return result.stdout.decode()


def make_bundle(base: Path, name: str) -> Path:
    bundle = base / name
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"annotations": {}}))
    return bundle


async def _call(address: str, method: str, request):  # type: ignore[no-untyped-def]
    async with await TtrpcClient.connect(address, timeout=10) as client:
        return await getattr(ServiceStub(client, TASK_SERVICE), method)(request, timeout=10)


def _check_like_exec(pid: int, container_id: str, bundle: Path, address: str, marker: str) -> None:
    """What `start` used to give a shim: command line, session, environment.

    The shim's working directory is ``/`` once it serves (it may outlive the
    bundle it was started in), whether it was exec'ed or forked.
    """
    args = command_line(pid)
    assert args[:3] == [sys.executable, "-m", "pycontainerd.shim_v2.main"]
    flags = dict(zip(args[3::2], args[4::2], strict=False))
    assert flags["-id"] == container_id and flags["-namespace"] == "ns"
    assert flags["-socket"] == address.removeprefix("unix://")
    assert os.stat(flags["-socket"]).st_mode & 0o777 == 0o600, "only root reaches a shim"
    assert int(flags["-listen-fd"]) > 2
    stat = _stat(pid)
    assert int(stat[3]) == pid, "the shim leads its own session"
    assert int(stat[1]) not in _zygotes_of(Path(flags["-socket"]).parent)
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    assert (bundle / "address").read_text() == address
    environ = _environ(pid)
    assert environ["MARKER"] == marker and "TTRPC_ADDRESS" not in environ
    connected = asyncio.run(_call(address, "Connect", shim_pb2.ConnectRequest(id=container_id)))
    assert connected.shim_pid == pid


def test_the_zygote_forks_shims_that_look_exec_ed(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    bundles = [make_bundle(tmp_path, f"c{i}") for i in range(3)]
    addresses = []
    for i, bundle in enumerate(bundles):
        addresses.append(start(bundle, socket_dir, f"c{i}", marker=f"m{i}"))
        shim_pids.append(int((bundle / "shim.pid").read_text()))
    assert len(set(shim_pids)) == 3
    zygotes = _zygotes_of(socket_dir)
    assert len(zygotes) == 1, "the first start left one zygote behind"
    for i, (bundle, address, pid) in enumerate(zip(bundles, addresses, shim_pids, strict=True)):
        _check_like_exec(pid, f"c{i}", bundle, address, marker=f"m{i}")

    for i, address in enumerate(addresses):
        asyncio.run(_call(address, "Shutdown", shim_pb2.ShutdownRequest(id=f"c{i}")))
    _wait_until(lambda: not any(alive(p) for p in shim_pids), "the shims to exit")
    # The shims leave no file behind; the zygote has its socket and lock.
    assert sorted(p.name for p in socket_dir.iterdir()) == [LOCK_FILE, SOCKET_NAME, LOCK_NAME]
    assert stat.S_IMODE(os.stat(socket_dir / SOCKET_NAME).st_mode) == 0o600

    shutil.rmtree(socket_dir)
    _wait_until(lambda: not alive(zygotes[0]), "the zygote to go with its directory")


def test_start_works_when_the_zygote_name_is_taken(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    # The lock held but nobody listening: connecting is refused, and no new zygote can start.
    squatter = open(socket_dir / LOCK_NAME, "wb")  # noqa: SIM115 - closed below
    fcntl.flock(squatter, fcntl.LOCK_EX)
    try:
        bundle = make_bundle(tmp_path, "lone")
        address = start(bundle, socket_dir, "lone", marker="x")
        pid = int((bundle / "shim.pid").read_text())
        shim_pids.append(pid)
        _check_like_exec(pid, "lone", bundle, address, marker="x")
        assert _zygotes_of(socket_dir) == []  # the would-be zygote only forked this shim
    finally:
        squatter.close()


def _ask_for_shim(socket_dir: Path, bundle: Path, container_id: str, timeout: float) -> dict:  # type: ignore[type-arg]
    """A fork request like `start`'s, sent from this process with a wait of `timeout`."""
    address = socket_dir / f"{container_id}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(address))
        listener.listen()
        flags = ShimFlags(namespace="ns", id=container_id, address="/test/c.sock",
                          publish_binary="/bin/true", socket=str(address))  # fmt: skip
        env = {**os.environ, "PYCONTAINERD_SHIM_SOCKET_DIR": str(socket_dir), POOL_SIZE_ENV: "1"}
        env.pop("TTRPC_ADDRESS", None)
        request = zygote.fork_request(flags.to_argv(), str(bundle), env, may_retire=False)
        return zygote._exchange(str(socket_dir), request, [listener.fileno()], timeout)


def _shims_named(container_id: str) -> list[int]:
    def shim_id(args: list[str]) -> str | None:
        if args[1:3] != ["-m", "pycontainerd.shim_v2.main"]:
            return None
        return dict(zip(args[3::2], args[4::2], strict=False)).get("-id")

    return [pid for pid in all_pids() if shim_id(command_line(pid)) == container_id]


def test_a_shim_forked_after_its_caller_gave_up_does_not_stay(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    """`start` falls back to a shim of its own when the zygote is slow: the late one must go.

    Otherwise two shims would serve one socket, the late one unknown to anybody.
    """
    bundle = make_bundle(tmp_path, "first")
    start(bundle, socket_dir, "first", marker="m")
    shim_pids.append(int((bundle / "shim.pid").read_text()))
    [zygote_pid] = _zygotes_of(socket_dir)

    answered = _ask_for_shim(socket_dir, bundle, "in-time", timeout=10)
    assert isinstance(answered.get("pid"), int), answered  # this process is a caller it serves
    shim_pids.append(answered["pid"])
    assert _shims_named("in-time") == [answered["pid"]]

    late = _ask_for_shim(socket_dir, bundle, "too-late", timeout=1e-6)
    assert "no answer" in late.get("error", ""), late
    # The zygote answers one caller at a time: once the next is answered, it
    # has dealt with the late request.
    after = _ask_for_shim(socket_dir, bundle, "after", timeout=10)
    assert isinstance(after.get("pid"), int), after
    shim_pids.append(after["pid"])
    try:
        _wait_until(lambda: _shims_named("too-late") == [], "the late shim to be ended", 5)
    finally:
        shim_pids.extend(_shims_named("too-late"))
    assert _zygotes_of(socket_dir) == [zygote_pid], "the zygote went on serving"


_UNREPORTED_START = """
import os, socket, sys
from pycontainerd.shim_v2 import zygote
from pycontainerd.shim_v2.flags import ShimFlags
from pycontainerd.shim_v2.zygote_server import become_zygote

socket_dir, bundle = sys.argv[1], sys.argv[2]
address = os.path.join(socket_dir, "unreported.sock")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(address)
listener.listen()
flags = ShimFlags(namespace="ns", id="unreported", address="/test/c.sock",
                  publish_binary="/bin/true", socket=address)
request = zygote.fork_request(flags.to_argv(), bundle)
read_end, write_end = os.pipe()
os.close(read_end)  # `start` stopped waiting for the report
child = os.fork()
if child == 0:
    become_zygote(request, listener.fileno(), write_end, socket_dir)
os.close(write_end)
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status))
"""


def test_a_shim_whose_start_stopped_waiting_does_not_stay(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    """The zygote `start` forks reports the first shim's pid on a pipe; when `start`
    has given up by then (and failed the task), the shim must not stay behind."""
    bundle = make_bundle(tmp_path, "unreported")
    env = {**os.environ, "PYCONTAINERD_SHIM_SOCKET_DIR": str(socket_dir), POOL_SIZE_ENV: "1"}
    env.pop("TTRPC_ADDRESS", None)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _UNREPORTED_START, str(socket_dir), str(bundle)],
            capture_output=True, text=True, timeout=30, env=env,
        )  # fmt: skip
        assert result.stdout.strip() == "1", result.stderr  # the would-be zygote gave up too
        _wait_until(lambda: _shims_named("unreported") == [], "the unreported shim to end", 5)
    finally:
        shim_pids.extend(_shims_named("unreported"))


def test_staleness_checks(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("x = 1\n")
    st = module.stat()
    stamps = [(str(module), st.st_mtime_ns, st.st_size)]
    assert _still_current(stamps)
    module.write_text("x = 22\n")
    assert not _still_current(stamps)
    assert not _still_current([(str(tmp_path / "gone.py"), 0, 0)])

    assert process_context(os.getpid()) == process_context("self")
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert process_context(child.pid) == process_context("self")
    finally:
        child.kill()
        child.wait()


def test_a_forked_process_can_take_a_command_line() -> None:
    code = (
        "from pycontainerd.shim_v2.proctitle import set_command_line\n"
        "assert set_command_line(['prog', '-id', 'x'], {'A': '1'})\n"
        "print(open('/proc/self/cmdline', 'rb').read(), open('/proc/self/environ', 'rb').read())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30, check=True)
    assert out.stdout.strip() == repr(b"prog\0-id\0x\0").encode() + b" " + repr(b"A=1\0").encode()


def _standalone_zygote(socket_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", ZYGOTE_MODULE, str(socket_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_a_zygote_for_a_removed_directory_does_not_stay(tmp_path: Path) -> None:
    """A daemon may stop (its state dir removed) while the zygote it started still imports."""
    gone = _standalone_zygote(tmp_path / "never-made")
    try:
        assert gone.wait(30) == 1
        assert b"gone" in gone.stderr.read()  # type: ignore[union-attr]
    finally:
        if gone.poll() is None:
            gone.kill()

    directory = Path(tempfile.mkdtemp(prefix="zyg-"))
    during = _standalone_zygote(directory)
    try:
        shutil.rmtree(directory)  # most likely while it imports
        assert during.wait(30) in (0, 1), "the zygote outlived its directory"
    finally:
        if during.poll() is None:
            during.kill()
        during.wait()
