"""Drive an OCI runtime binary (runc, crun, ...) through runc's command line.

`OciRuntime` builds the argument lists (global ``--root``, ``--log``,
``--log-format json``, ``--systemd-cgroup``; then ``create``, ``start``, ``exec``,
``kill``, ...) and turns failures into errdefs errors whose message is the
runtime's own complaint, taken from its JSON log or, failing that, its output.

How a command is started and waited for is left to a `CommandRunner`. A shim must
not let anyone but its reaper call waitpid (it reaps every child with
``waitpid(-1)``), so it passes its own runner; other callers can use
`SubprocessRunner`. Output is captured in a memfd rather than a pipe: a runtime's
children (the container's init) may keep a pipe open long after the command
exits, and a memfd never fills up or blocks.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pycontainerd import errdefs

DEFAULT_BINARY = "runc"
#: runc's own default ``--root`` is /run/runc; containerd's shims add a namespace below this.
DEFAULT_ROOT = "/run/containerd/runc"

_LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Stdio:
    """File descriptors a runtime command gets as 0, 1 and 2 (None: /dev/null)."""

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


class CommandRunner(Protocol):
    """Starts a command with the given stdio and waits for it."""

    async def run(self, argv: Sequence[str], stdio: Stdio) -> int:
        """Run `argv` (argv[0] an absolute path) and return its exit code (128+n if killed)."""
        ...


class SubprocessRunner:
    """A `CommandRunner` on asyncio subprocesses (for processes that do not reap)."""

    async def run(self, argv: Sequence[str], stdio: Stdio) -> int:
        devnull = asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=devnull if stdio.stdin is None else stdio.stdin,
            stdout=devnull if stdio.stdout is None else stdio.stdout,
            stderr=devnull if stdio.stderr is None else stdio.stderr,
            process_group=0,
        )
        return exit_code(await proc.wait())


def exit_code(returncode: int) -> int:
    """A subprocess-style return code (negative for a signal) as a shell would report it."""
    return 128 - returncode if returncode < 0 else returncode


def resolve_binary(name: str) -> str:
    """The absolute path of runtime binary `name` (a path or a name looked up in PATH).

    The errors begin with the words of Go's exec package, as containerd's shim
    reports them (clients match ``"runc": executable file not found in $PATH``),
    and end with what to do.
    """
    hint = "install it or set binary_name in the runtime options"
    if os.sep in name:
        if os.access(name, os.X_OK) and os.path.isfile(name):
            return os.path.abspath(name)
        problem = "permission denied" if os.path.exists(name) else "no such file or directory"
        raise errdefs.FailedPrecondition(f'exec: "{name}": stat {name}: {problem}; {hint}')
    path = shutil.which(name)
    if path is None:
        raise errdefs.FailedPrecondition(
            f'exec: "{name}": executable file not found in $PATH; {hint} '
            f"(PATH={os.environ.get('PATH', '')})"
        )
    return path


@dataclass(frozen=True)
class CommandFailure:
    """What is known about a failed runtime command, for error messages."""

    command: str
    code: int
    message: str


def error_for(failure: CommandFailure) -> errdefs.ContainerdError:
    """The errdefs error a failed runtime command stands for."""
    text = f"{failure.command} failed (exit {failure.code}): {failure.message}"
    lowered = failure.message.lower()
    if "already exists" in lowered:
        return errdefs.AlreadyExists(text)
    if "does not exist" in lowered or "container not found" in lowered:
        return errdefs.NotFound(text)
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return errdefs.NotFound(text)
    return errdefs.FailedPrecondition(text)


def kill_error(exc: errdefs.ContainerdError) -> errdefs.ContainerdError:
    """Map a failed ``kill`` the way containerd's shim does: a gone process is NotFound."""
    lowered = str(exc).lower()
    gone = ("container not running", "process already finished", "no such process")
    if any(marker in lowered for marker in gone):
        return errdefs.NotFound(f"process already finished: {exc}")
    return exc


def last_log_error(data: bytes) -> str:
    """The last error message in runc-style JSON log lines (``{"level":"error","msg":..}``)."""
    message = ""
    for line in data.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            message = str(entry.get("msg", ""))
    return message


class OciRuntime:
    """One runtime binary with one state root and log file, run through `runner`."""

    def __init__(
        self,
        runner: CommandRunner,
        *,
        binary: str = DEFAULT_BINARY,
        root: str = "",
        log_path: str = "",
        systemd_cgroup: bool = False,
    ) -> None:
        self.runner = runner
        self.binary = resolve_binary(binary or DEFAULT_BINARY)
        self.root = root
        self.log_path = log_path
        self.systemd_cgroup = systemd_cgroup

    def global_args(self) -> list[str]:
        args = [self.binary]
        if self.root:
            args += ["--root", self.root]
        if self.log_path:
            args += ["--log", self.log_path, "--log-format", "json"]
        if self.systemd_cgroup:
            args.append("--systemd-cgroup")
        return args

    async def create(
        self,
        container_id: str,
        bundle: str,
        *,
        pid_file: str,
        console_socket: str = "",
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        stdio: Stdio | None = None,
    ) -> None:
        """``create``: set up the container; its init waits for `start`."""
        args = ["create", "--bundle", bundle, "--pid-file", pid_file]
        args += _console_args(console_socket)
        if no_pivot:
            args.append("--no-pivot")
        if no_new_keyring:
            args.append("--no-new-keyring")
        await self.run([*args, container_id], stdio=stdio)

    async def start(self, container_id: str) -> None:
        await self.run(["start", container_id])

    async def exec(
        self,
        container_id: str,
        process_file: str,
        *,
        pid_file: str,
        console_socket: str = "",
        stdio: Stdio | None = None,
    ) -> None:
        """``exec --detach``: start the process described by JSON file `process_file`."""
        args = ["exec", "--process", process_file, "--pid-file", pid_file, "--detach"]
        args += _console_args(console_socket)
        await self.run([*args, container_id], stdio=stdio)

    async def kill(self, container_id: str, sig: int, *, all_processes: bool = False) -> None:
        """``kill``: signal the init (or every process with `all_processes`)."""
        args = ["kill"] + (["--all"] if all_processes else [])
        try:
            await self.run([*args, container_id, str(int(sig))])
        except errdefs.ContainerdError as exc:
            raise kill_error(exc) from None

    async def delete(self, container_id: str, *, force: bool = False) -> None:
        await self.run(["delete"] + (["--force"] if force else []) + [container_id])

    async def pause(self, container_id: str) -> None:
        await self.run(["pause", container_id])

    async def resume(self, container_id: str) -> None:
        await self.run(["resume", container_id])

    async def state(self, container_id: str) -> dict[str, Any]:
        return _json_object(await self.output(["state", container_id]), "state")

    async def ps(self, container_id: str) -> list[int]:
        data = json.loads(await self.output(["ps", "--format", "json", container_id]) or b"[]")
        return [int(pid) for pid in data or []]

    async def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """``update --resources -``: apply OCI LinuxResources (JSON on stdin)."""
        await self.run(
            ["update", "--resources", "-", container_id], input=json.dumps(resources).encode()
        )

    async def stats(self, container_id: str) -> dict[str, Any]:
        """``events --stats``: one statistics event; returns its ``data`` object."""
        event = _json_object(await self.output(["events", "--stats", container_id]), "events")
        data = event.get("data")
        return data if isinstance(data, dict) else {}

    async def version(self) -> str:
        return (await self.output(["--version"], global_args=False)).decode(errors="replace")

    async def output(self, args: Sequence[str], *, global_args: bool = True) -> bytes:
        """Run a command and return what it printed on stdout."""
        out = _memfd("stdout")
        try:
            await self.run(args, stdio=Stdio(stdout=out), global_args=global_args)
            return _read_all(out)
        finally:
            os.close(out)

    async def run(
        self,
        args: Sequence[str],
        *,
        stdio: Stdio | None = None,
        input: bytes | None = None,
        global_args: bool = True,
    ) -> None:
        """Run one runtime command; raise an errdefs error if it fails.

        With `stdio` given (a container's own stdio), the runtime's complaints can only
        come from its log; otherwise stderr is captured too.
        """
        argv = (self.global_args() if global_args else [self.binary]) + list(args)
        log_start = _size(self.log_path)
        opened: list[int] = []
        try:
            stdio = stdio or Stdio()
            if stdio.stderr is None:
                captured = _memfd("stderr")
                opened.append(captured)
                stdout = captured if stdio.stdout is None else stdio.stdout
                stdio = Stdio(stdio.stdin, stdout, captured)
            if input is not None:
                source = _memfd("stdin")
                opened.append(source)
                os.write(source, input)
                os.lseek(source, 0, os.SEEK_SET)
                stdio = Stdio(source, stdio.stdout, stdio.stderr)
            code = await self.runner.run(argv, stdio)
            if code == 0:
                return
            message = last_log_error(_read_from(self.log_path, log_start))
            if not message and opened:
                message = _read_all(opened[0]).decode(errors="replace").strip()
            command = f"{os.path.basename(self.binary)} {args[0] if args else ''}".strip()
            message = message.removeprefix(f"{command} failed: ")
            if not message and code > 128:
                message = f"killed by {_signal_name(code - 128)}"
            raise error_for(CommandFailure(command, code, message or "no error message"))
        finally:
            for fd in opened:
                os.close(fd)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _console_args(console_socket: str) -> list[str]:
    return ["--console-socket", console_socket] if console_socket else []


def _json_object(data: bytes, command: str) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError as exc:
        raise errdefs.FailedPrecondition(
            f"runtime {command} printed something that is not JSON: {data[:200]!r}"
        ) from exc
    if not isinstance(value, dict):
        raise errdefs.FailedPrecondition(f"runtime {command} printed {value!r}, not an object")
    return value


def _memfd(name: str) -> int:
    return os.memfd_create(f"oci-runtime-{name}", os.MFD_CLOEXEC)


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


def _read_from(path: str, offset: int) -> bytes:
    """What was appended to `path` after `offset` (at most the last 64 KiB of it)."""
    if not path:
        return b""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(offset, size - _LOG_TAIL_BYTES) if size >= offset else 0)
            return f.read()
    except OSError:
        return b""
