"""Crash safety: a process killed mid-operation leaves nothing cleanup() cannot reclaim.

Each crash runs in a forked child that opens its own snapshotter and dies
with os._exit() at a chosen step, so no Python cleanup code runs, as after a
kill -9. The test process then reopens the root, as a restarted daemon would.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from pycontainerd.mount import Mount
from pycontainerd.snapshots.base import DirectorySnapshotter

CRASH_STATUS = 77

Opener = Callable[[], DirectorySnapshotter]


def _die(*_args: object, **_kwargs: object) -> None:
    os._exit(CRASH_STATUS)


def _crash_in_child(
    open_snapshotter: Opener, monkeypatch: pytest.MonkeyPatch, target: str, action: str
) -> None:
    """Fork; in the child replace `target` with a sudden death, then run `action`."""
    pid = os.fork()
    if pid == 0:
        try:
            monkeypatch.setattr(target, _die)
            snapshotter = open_snapshotter()
            name, _, argument = action.partition(":")
            getattr(snapshotter, name)(argument)
        finally:
            os._exit(1)  # the crash point was not reached
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == CRASH_STATUS


def _entries(s: DirectorySnapshotter) -> dict[str, list[str]]:
    return {
        d: sorted(os.listdir(os.path.join(s.root, d))) for d in ("snapshots", "staging", "removing")
    }


def _write_marker(directory: str) -> None:
    with open(os.path.join(directory, "stale-marker"), "w") as f:
        f.write("left by a crash")


def _seed(open_snapshotter: Opener) -> DirectorySnapshotter:
    s = open_snapshotter()
    s.prepare("base-active")
    s.commit("base", "base-active")
    s.prepare("keep", "base")
    return s


def _assert_clean_after_cleanup(open_snapshotter: Opener, names: list[str]) -> None:
    restarted = open_snapshotter()
    restarted.cleanup()
    assert [i.name for i in restarted.walk()] == names
    entries = _entries(restarted)
    assert entries["staging"] == [] and entries["removing"] == []
    assert len(entries["snapshots"]) == len(names)


def test_crash_while_populating_a_new_snapshot(open_snapshotter: Opener, monkeypatch) -> None:
    _seed(open_snapshotter).close()
    _crash_in_child(
        open_snapshotter,
        monkeypatch,
        "pycontainerd.snapshots.base.DirectorySnapshotter._record",
        "prepare:half",
    )
    restarted = open_snapshotter()
    assert len(_entries(restarted)["staging"]) == 1  # the half-built directory
    _assert_clean_after_cleanup(open_snapshotter, ["base", "keep"])


def test_crash_after_rename_before_commit(open_snapshotter: Opener, monkeypatch) -> None:
    _seed(open_snapshotter).close()
    _crash_in_child(
        open_snapshotter,
        monkeypatch,
        "pycontainerd.snapshots.base.fsync_dir",
        "prepare:half",
    )
    restarted = open_snapshotter()
    # The directory is in place under an id the database never committed.
    assert len(_entries(restarted)["snapshots"]) == 3
    assert [i.name for i in restarted.walk()] == ["base", "keep"]
    # The next prepare gets that same id again: the stale directory must not leak into it.
    stale_id = max(int(n) for n in _entries(restarted)["snapshots"])
    _write_marker(restarted.snapshot_dir(stale_id))
    [again] = restarted.prepare("again")
    stale_dir = restarted.snapshot_dir(stale_id)
    assert again.source in (stale_dir, os.path.join(stale_dir, "fs"))
    assert "stale-marker" not in os.listdir(stale_dir)
    restarted.remove("again")
    _assert_clean_after_cleanup(open_snapshotter, ["base", "keep"])


def test_crash_after_remove_commit_before_rename(open_snapshotter: Opener, monkeypatch) -> None:
    _seed(open_snapshotter).close()
    _crash_in_child(
        open_snapshotter,
        monkeypatch,
        "pycontainerd.snapshots.base.DirectorySnapshotter._move_to_trash",
        "remove:keep",
    )
    restarted = open_snapshotter()
    assert [i.name for i in restarted.walk()] == ["base"]
    assert len(_entries(restarted)["snapshots"]) == 2  # the orphan of "keep"
    _assert_clean_after_cleanup(open_snapshotter, ["base"])


def test_crash_while_deleting_the_renamed_directory(open_snapshotter: Opener, monkeypatch) -> None:
    _seed(open_snapshotter).close()
    _crash_in_child(
        open_snapshotter, monkeypatch, "pycontainerd.snapshots.fsutil.remove_tree", "remove:keep"
    )
    restarted = open_snapshotter()
    assert len(_entries(restarted)["removing"]) == 1
    _assert_clean_after_cleanup(open_snapshotter, ["base"])


def test_cleanup_spares_work_in_progress(open_snapshotter: Opener) -> None:
    s = _seed(open_snapshotter)
    staging = s._new_in_flight_dir(os.path.join(s.root, "staging"), "new-")
    try:
        s.cleanup()
        assert os.path.isdir(staging)
    finally:
        s._forget_in_flight(staging)
    s.cleanup()
    assert not os.path.exists(staging)
    assert [i.name for i in s.walk()] == ["base", "keep"]


def test_cleanup_unmounts_before_deleting(open_snapshotter: Opener, workdir: str) -> None:
    s = _seed(open_snapshotter)
    precious = os.path.join(workdir, "precious")
    os.mkdir(precious)
    with open(os.path.join(precious, "file"), "w") as f:
        f.write("must survive")
    orphan = os.path.join(s.root, "snapshots", "999", "fs")
    os.makedirs(orphan)
    Mount(type="bind", source=precious, options=["rbind"]).mount(orphan)
    s.cleanup()
    assert not os.path.exists(os.path.dirname(orphan))
    assert os.listdir(precious) == ["file"]
