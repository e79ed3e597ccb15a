"""Only the daemon's own root-owned helpers exchange fork requests with the zygote.

The zygote used to listen on an abstract unix name derived from its socket
directory: any local user could bind that name first and receive every fork
request (with the shim's socket and environment), and root in a container
sharing the network namespace could make the zygote retire and take its place.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_shim_zygote as shared

from pycontainerd.shim_v2.zygote import LOCK_NAME, SOCKET_NAME, zygote_address
from tests.support.procs import alive

# The zygote tests' fixtures: a short socket dir (its zygote retired after), shims killed after.
socket_dir, shim_pids = shared.socket_dir, shared.shim_pids
_zygotes_of, make_bundle, start = shared._zygotes_of, shared.make_bundle, shared.start
PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])

#: Listens where told for a few seconds; prints what it received as JSON.
SQUATTER = textwrap.dedent(
    """
    import json, os, select, socket, sys
    address = sys.argv[1].encode() if sys.argv[1].startswith("@") else sys.argv[1]
    if isinstance(address, bytes):
        address = b"\\0" + address[1:]
    elif os.path.exists(address):
        os.unlink(address)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(address)
    s.listen(8)
    print("ready", flush=True)
    got = {"connections": 0, "messages": [], "fds": 0}
    while select.select([s], [], [], float(sys.argv[2]))[0]:
        conn, _ = s.accept()
        got["connections"] += 1
        conn.settimeout(2)
        try:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 4)
        except OSError:
            continue
        if data:
            got["messages"].append(data.decode(errors="replace"))
        got["fds"] += len(fds)
    print(json.dumps(got), flush=True)
    """
)


def _old_abstract_name(directory: Path) -> str:
    """The name the zygote listened on before: '@' for the leading NUL."""
    digest = hashlib.sha256(os.path.abspath(directory).encode()).hexdigest()[:32]
    return "@pycontainerd-shim-zygote/" + digest


@pytest.fixture
def unprivileged_user() -> Iterator[str]:
    name = "zyg" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/false", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", name], check=False)


def _squat(prefix: list[str], address: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*prefix, "/usr/bin/python3", "-c", SQUATTER, address, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _what_it_got(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = proc.communicate(timeout=60)
    return json.loads(out.strip().splitlines()[-1])


def test_a_user_who_binds_the_old_name_gets_nothing(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int], unprivileged_user: str
) -> None:
    os.chmod(socket_dir, 0o711)  # as the daemon's state dir: others may traverse it
    squatter = _squat(["runuser", "-u", unprivileged_user, "--"], _old_abstract_name(socket_dir), 3)
    try:
        for i in range(2):  # the first forks the zygote, the second is forked by it
            bundle = make_bundle(tmp_path, f"c{i}")
            shared._check_like_exec(*_started(bundle, socket_dir, f"c{i}", shim_pids))
        assert len(_zygotes_of(socket_dir)) == 1
        # The user cannot reach the zygote's socket file either.
        probe = subprocess.run(
            ["runuser", "-u", unprivileged_user, "--", "/usr/bin/python3", "-c",
             "import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); "
             "s.connect(sys.argv[1])", zygote_address(str(socket_dir))],
            capture_output=True, text=True, cwd="/", timeout=30,
        )  # fmt: skip
        assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
    finally:
        got = _what_it_got(squatter)
    assert got == {"connections": 0, "messages": [], "fds": 0}


def _started(
    bundle: Path, directory: Path, container_id: str, shim_pids: list[int]
) -> tuple[int, str, Path, str, str]:
    address = start(bundle, directory, container_id, marker=container_id)
    pid = int((bundle / "shim.pid").read_text())
    shim_pids.append(pid)
    return pid, container_id, bundle, address, container_id


FOREIGN_REQUESTS = textwrap.dedent(
    """
    import json, socket, sys
    from pycontainerd.shim_v2 import zygote
    replies = []
    requests = [
        ({"retire": True}, []),
        ({**zygote.fork_request(["-id", "x"], "/", {}), "python": "/elsewhere"}, [0]),
        (zygote.fork_request(["-id", "x"], "/", {}), [0]),
    ]
    for request, fds in requests:
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
            conn.settimeout(10)
            conn.connect(zygote.zygote_address(sys.argv[1]))
            socket.send_fds(conn, [json.dumps(request).encode()], fds)
            replies.append(json.loads(conn.recv(1 << 16) or b"{}"))
    print(json.dumps(replies))
    """
)

FOREIGN = ["unshare", "--mount", "--pid", "--fork", "--mount-proc"]


def test_root_in_other_namespaces_cannot_retire_the_zygote(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    _started(make_bundle(tmp_path, "first"), socket_dir, "first", shim_pids)
    (zygote_pid,) = _zygotes_of(socket_dir)
    foreign = subprocess.run(
        [*FOREIGN, sys.executable, "-c", FOREIGN_REQUESTS, str(socket_dir)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": PACKAGE_ROOT},
    )  # fmt: skip
    assert foreign.returncode == 0, foreign.stderr
    replies = json.loads(foreign.stdout)
    assert all("refused" in reply.get("error", "") for reply in replies), replies
    assert alive(zygote_pid) and _zygotes_of(socket_dir) == [zygote_pid]
    # It still serves us: the next shim comes from the same zygote.
    shared._check_like_exec(*_started(make_bundle(tmp_path, "next"), socket_dir, "next", shim_pids))
    assert _zygotes_of(socket_dir) == [zygote_pid]


def test_an_impostor_in_other_namespaces_receives_no_request(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    """Root elsewhere may replace the socket file (it shares the filesystem), or bind the
    old abstract name (it shares the network namespace): `start` sends it nothing."""
    _started(make_bundle(tmp_path, "first"), socket_dir, "first", shim_pids)
    (zygote_pid,) = _zygotes_of(socket_dir)
    old_name = _squat(FOREIGN, _old_abstract_name(socket_dir), 4)
    impostor = _squat(FOREIGN, zygote_address(str(socket_dir)), 4)
    try:
        shared._wait_until(lambda: not alive(zygote_pid), "the zygote to see its socket gone")
        # A `start` connects to the impostor, sees who it is, sends nothing, and
        # starts its shim anyway.
        bundle = make_bundle(tmp_path, "after")
        shared._check_like_exec(*_started(bundle, socket_dir, "after", shim_pids))
    finally:
        got = [_what_it_got(old_name), _what_it_got(impostor)]
    assert got[0] == {"connections": 0, "messages": [], "fds": 0}
    assert got[1]["messages"] == [] and got[1]["fds"] == 0, got
    assert got[1]["connections"] >= 1, "the impostor was asked, and told nothing"


def test_a_socket_left_by_a_killed_zygote_does_not_stop_the_next(
    tmp_path: Path, socket_dir: Path, shim_pids: list[int]
) -> None:
    _started(make_bundle(tmp_path, "first"), socket_dir, "first", shim_pids)
    (zygote_pid,) = _zygotes_of(socket_dir)
    os.kill(zygote_pid, signal.SIGKILL)
    shared._wait_until(lambda: not alive(zygote_pid), "the zygote to die")
    assert (socket_dir / SOCKET_NAME).exists() and (socket_dir / LOCK_NAME).exists()
    _started(make_bundle(tmp_path, "second"), socket_dir, "second", shim_pids)
    (new_zygote,) = _zygotes_of(socket_dir)
    assert new_zygote != zygote_pid
    _started(make_bundle(tmp_path, "third"), socket_dir, "third", shim_pids)
    assert _zygotes_of(socket_dir) == [new_zygote]
