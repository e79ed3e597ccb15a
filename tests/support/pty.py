"""Drive an interactive program through a pseudo-terminal, as a person at a terminal would.

The program gets the pty's slave side as stdin, stdout, stderr and controlling
terminal (in a session of its own), so it sees a real terminal: it can put it in
raw mode, read its size, and receive SIGWINCH when the test resizes the window
through the master side.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence

DEFAULT_TIMEOUT = 20.0


def set_window_size(fd: int, rows: int, columns: int) -> None:
    """TIOCSWINSZ on `fd`; on a master this signals SIGWINCH to the slave's foreground group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def window_size(fd: int) -> tuple[int, int]:
    rows, columns, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, columns


def _take_controlling_terminal() -> None:
    """In the child, after setsid and the dup2s: make stdin (the slave) its terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtySession:
    """A child process on a fresh pty; read what it prints, type at it, resize it.

    Use as a context manager: on exit the child is killed (its whole session) if
    it is still running, and the master is closed.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        rows: int = 24,
        columns: int = 80,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.master, slave = os.openpty()
        try:
            set_window_size(self.master, rows, columns)
            self.process = subprocess.Popen(
                list(argv),
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_take_controlling_terminal,
                env=dict(env) if env is not None else None,
            )
        except BaseException:
            os.close(self.master)
            raise
        finally:
            os.close(slave)
        self.output = bytearray()
        self._seen = 0  # how much of `output` earlier expectations consumed

    def __enter__(self) -> PtySession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        with contextlib.suppress(OSError):
            os.close(self.master)

    def type(self, text: str) -> None:
        """Send keystrokes; a line typed at a terminal ends with a carriage return."""
        os.write(self.master, text.encode())

    def resize(self, rows: int, columns: int) -> None:
        set_window_size(self.master, rows, columns)

    def _read_some(self, timeout: float) -> bool:
        """Append what is ready to `output`; False at end of file (the child closed the pty)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave descriptor is closed
            return False
        self.output += data
        return bool(data)

    def expect(self, pattern: str | re.Pattern[str], timeout: float = DEFAULT_TIMEOUT) -> re.Match:
        """Wait for `pattern` in output not matched before; return its match."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.output.decode(errors="replace")
            found = regex.search(text, self._seen)
            if found:
                self._seen = found.end()
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read_some(min(remaining, 0.2)):
                raise AssertionError(
                    f"{regex.pattern!r} not seen within {timeout}s; the terminal showed:\n"
                    f"{text[self._seen :]!r}"
                )

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the child to exit (draining the pty meanwhile) and return its exit code."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the program did not exit within {timeout}s; the terminal showed:\n"
                    f"{self.output.decode(errors='replace')[self._seen :]!r}"
                )
            if not self._read_some(0.1):
                time.sleep(0.05)
        return self.process.wait()


__all__ = ["PtySession", "set_window_size", "window_size"]
