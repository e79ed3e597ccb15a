"""The shim's only caller of waitpid: reaps every child and says who exited how.

As a child subreaper the shim inherits the container's processes once the OCI
runtime command that forked them exits, so one SIGCHLD handler reaps everything
with ``waitpid(-1, WNOHANG)``. No other code may wait for children (asyncio's
subprocess watchers would race with it), so runtime commands are started here too,
with `spawn`: the pid's waiter is registered in the same event-loop step as the
fork, before any SIGCHLD callback can run, so a runtime command's exit is never
mistaken for a container process's exit (the role of Go's ``reaper.Monitor``).

Exits of pids nobody waits for go to `on_exit`; an exit that callback does not
claim is kept for a while (`claim`), because a process started by ``runc exec``
can exit before the shim has read its pid file.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence

from pycontainerd import errdefs
from pycontainerd.oci.runtime import Stdio

log = logging.getLogger(__name__)

#: Unclaimed exits kept for late claimers, and for how long.
_UNCLAIMED_LIMIT = 1024
_UNCLAIMED_SECONDS = 120.0


def exit_status(wait_status: int) -> int:
    """A waitpid status as containerd reports it: the exit code, or 128+signal."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    if os.WIFEXITED(wait_status):
        return os.WEXITSTATUS(wait_status)
    return 255


ExitCallback = Callable[[int, int], bool]
"""``on_exit(pid, status) -> claimed``: called for exits of pids started elsewhere."""


class Reaper:
    """Reaps children on SIGCHLD; `spawn` starts a command and returns its exit future."""

    def __init__(self, on_exit: ExitCallback | None = None) -> None:
        self.on_exit = on_exit
        self._waiters: dict[int, asyncio.Future[int]] = {}
        self._unclaimed: collections.OrderedDict[int, tuple[int, float]] = collections.OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None

    def install(self) -> None:
        """Start reaping on this thread's running loop (call once, from the loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_signal_handler(signal.SIGCHLD, self.reap)
        self.reap()  # children that exited before the handler was in place

    def uninstall(self) -> None:
        if self._loop is not None:
            self._loop.remove_signal_handler(signal.SIGCHLD)
            self._loop = None

    def spawn(
        self,
        argv: Sequence[str],
        stdio: Stdio,
        *,
        extra_fds: Sequence[int] = (),
        env: Mapping[str, str] | None = None,
    ) -> tuple[int, asyncio.Future[int]]:
        """Start `argv` in its own process group; return its pid and a future of its status.

        `extra_fds` become the child's descriptors 3, 4, ... in order; `env`
        replaces the shim's environment when given.
        """
        if self._loop is None:
            raise errdefs.FailedPrecondition("reaper is not installed; call install() first")
        actions: list[tuple[int, ...]] = []
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        # Above every target number first, so that no dup2 overwrites a later source.
        floor = 3 + len(extra_fds)
        lifted = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in extra_fds]
        try:
            for target, fd in enumerate((stdio.stdin, stdio.stdout, stdio.stderr)):
                actions.append((os.POSIX_SPAWN_DUP2, devnull if fd is None else fd, target))
            for target, fd in enumerate(lifted, start=3):
                actions.append((os.POSIX_SPAWN_DUP2, fd, target))
            try:
                pid = os.posix_spawn(argv[0], list(argv), os.environ if env is None else env,
                                     file_actions=actions, setpgroup=0)  # fmt: skip
            except OSError as exc:
                raise errdefs.FailedPrecondition(f"cannot run {argv[0]}: {exc}") from exc
        finally:
            os.close(devnull)
            for fd in lifted:
                os.close(fd)
        waiter = self._loop.create_future()
        self._waiters[pid] = waiter
        return pid, waiter

    async def run(self, argv: Sequence[str], stdio: Stdio) -> int:
        """`CommandRunner` for `OciRuntime`: spawn and wait; returns the exit status."""
        _pid, waiter = self.spawn(argv, stdio)
        return await waiter

    def claim(self, pid: int) -> int | None:
        """Take the status of `pid` if it exited unclaimed in the last while."""
        entry = self._unclaimed.pop(pid, None)
        return None if entry is None else entry[0]

    def reap(self) -> None:
        """Collect every exited child (the SIGCHLD handler)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            self._dispatch(pid, exit_status(status))

    def _dispatch(self, pid: int, status: int) -> None:
        waiter = self._waiters.pop(pid, None)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(status)
            return
        claimed = False
        if self.on_exit is not None:
            try:
                claimed = self.on_exit(pid, status)
            except Exception:  # one bad callback must not stop reaping
                log.exception("exit callback failed for pid %d", pid)
        if not claimed:
            self._remember(pid, status)

    def _remember(self, pid: int, status: int) -> None:
        now = time.monotonic()
        self._unclaimed[pid] = (status, now)
        while self._unclaimed:
            oldest_pid, (_status, when) = next(iter(self._unclaimed.items()))
            if len(self._unclaimed) <= _UNCLAIMED_LIMIT and now - when < _UNCLAIMED_SECONDS:
                break
            del self._unclaimed[oldest_pid]


def set_child_subreaper(enabled: bool = True) -> None:
    """prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants become our children."""
    import ctypes

    from pycontainerd.shim_v2.libc import libc

    pr_set_child_subreaper = 36
    if libc().prctl(pr_set_child_subreaper, int(enabled), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise errdefs.FailedPrecondition(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(err)}")
